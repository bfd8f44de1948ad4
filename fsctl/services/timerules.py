"""Time rules: weekday/hour ranges and holidays in a time zone; one route on match, one on no match. R-TIME."""

from .. import validate
from ..errors import ConflictError, ValidationError
from ..model import Holiday, TimeRange, TimeRule
from .common import check_destination, get_tenant, touch
from .numbered import getter, lister, remover

_NOUN = {"model": TimeRule, "key": "name", "label": "time rule"}
get_timerule = getter("timerule", **_NOUN)
list_timerules = lister("timerule", **_NOUN)
remove_timerule = remover("timerule", get=get_timerule, key="name", label="time rule")


def parse_range(text, field="timerule.range"):
    """'mon-fri 09:00-18:00' -> (weekdays, start, end); the end may be past midnight (22:00-06:00)."""
    try:
        days, hours = text.strip().split()
        start, end = hours.split("-")
    except ValueError:
        raise ValidationError(field, text, "must look like 'mon-fri 09:00-18:00'") from None
    try:
        days = validate.weekdays(days, field)
        start = validate.time_of_day(start, field)
        end = validate.time_of_day(end, field)
    except ValidationError as exc:
        raise ValidationError(field, text, exc.rule) from None
    if start == end or start == "24:00":
        raise ValidationError(field, text, "start and end must differ and start must be before 24:00")
    return days, start, end


def parse_holiday(text, field="timerule.holiday"):
    """'2026-12-24', '2026-12-24..2026-12-26' or '2026-12-31 14:00-24:00' -> (start, end, t0, t1)."""
    parts = text.strip().split()
    if not parts or len(parts) > 2:
        raise ValidationError(
            field, text, "must look like 2026-12-24, 2026-12-24..2026-12-26 or '2026-12-31 14:00-24:00'"
        )
    if ".." in parts[0]:
        a, b = parts[0].split("..", 1)
    else:
        a = b = parts[0]
    try:
        start, end = validate.date(a, field), validate.date(b, field)
    except ValidationError as exc:
        raise ValidationError(field, text, exc.rule) from None
    if end < start:
        raise ValidationError(field, text, "the end date is before the start date")
    t0 = t1 = None
    if len(parts) == 2:
        try:
            t0, t1 = parts[1].split("-")
        except ValueError:
            raise ValidationError(field, text, "the times must look like 14:00-24:00") from None
        try:
            t0, t1 = validate.time_of_day(t0, field), validate.time_of_day(t1, field)
        except ValidationError as exc:
            raise ValidationError(field, text, exc.rule) from None
        if t0 >= t1:
            raise ValidationError(field, text, "a holiday's start time must be before its end time")
    return start, end, t0, t1


def add_timerule(domain, name, match, nomatch, ranges=(), holidays=(), timezone=None):
    """Create a time rule from range and holiday texts."""
    tenant = get_tenant(domain)
    name = validate.slug(name, "timerule.name")
    if TimeRule.select().where((TimeRule.tenant == tenant) & (TimeRule.name == name)).exists():
        raise ConflictError(f'timerule.name "{name}": already exists in {tenant.domain}')
    rule = TimeRule.create(
        tenant=tenant,
        name=name,
        timezone=validate.timezone(timezone, "timerule.timezone") if timezone else None,
        match_destination="hangup",
        nomatch_destination="hangup",
    )
    # Destinations are checked after creation so a rule may point at itself only through others.
    rule.match_destination = _dest(tenant, rule, match, "timerule.match")
    rule.nomatch_destination = _dest(tenant, rule, nomatch, "timerule.nomatch")
    rule.save()
    _replace_ranges(rule, ranges)
    _replace_holidays(rule, holidays)
    touch(tenant)
    return rule


def edit_timerule(domain, name, match=None, nomatch=None, ranges=None, holidays=None, timezone=None, add_holidays=()):
    """Change a time rule; `ranges`/`holidays` replace the lists, `add_holidays` appends."""
    rule = get_timerule(domain, name)
    tenant = rule.tenant
    if match is not None:
        rule.match_destination = _dest(tenant, rule, match, "timerule.match")
    if nomatch is not None:
        rule.nomatch_destination = _dest(tenant, rule, nomatch, "timerule.nomatch")
    if timezone is not None:
        rule.timezone = validate.timezone(timezone, "timerule.timezone") if timezone else None
    rule.save()
    if ranges is not None:
        _replace_ranges(rule, ranges)
    if holidays is not None:
        _replace_holidays(rule, holidays)
    for text in add_holidays:
        start, end, t0, t1 = parse_holiday(text)
        Holiday.create(rule=rule, start_date=start, end_date=end, start_time=t0, end_time=t1)
    touch(tenant)
    return rule


def timerule_dict(rule):
    """The stable JSON shape of a time rule."""
    return {
        "name": rule.name,
        "timezone": rule.timezone,
        "match": rule.match_destination,
        "nomatch": rule.nomatch_destination,
        "ranges": [f"{r.weekdays} {r.start}-{r.end}" for r in rule.ranges.order_by(TimeRange.id)],
        "holidays": [_holiday_text(h) for h in rule.holidays.order_by(Holiday.start_date, Holiday.id)],
    }


def _dest(tenant, rule, text, field):
    value = check_destination(tenant, text, field)
    if value == f"timerule:{rule.name}":
        raise ValidationError(field, text, "a time rule cannot route to itself")
    circle = _timerule_circle(tenant, rule.name, value)
    if circle:
        # In XML (a menu's digit to a time rule) such a circle transfers until FreeSWITCH gives up.
        raise ValidationError(field, text, f"time rules would route in a circle ({' -> '.join(circle)})")
    return value


def _timerule_circle(tenant, name, value):
    """The time rules from `value` back to rule `name` through time rules only, or []."""
    rules = {
        r.name: (r.match_destination, r.nomatch_destination) for r in TimeRule.select().where(TimeRule.tenant == tenant)
    }
    stack = [(value, [name])]
    seen = set()
    while stack:
        target, path = stack.pop()
        if not target.startswith("timerule:"):
            continue
        other = target.split(":", 1)[1]
        if other == name:
            return path + [name]
        if other in seen:
            continue
        seen.add(other)
        stack += [(t, path + [other]) for t in rules.get(other, ())]
    return []


def _replace_ranges(rule, ranges):
    parsed = [parse_range(text) for text in ranges]
    TimeRange.delete().where(TimeRange.rule == rule).execute()
    for days, start, end in parsed:
        TimeRange.create(rule=rule, weekdays=days, start=start, end=end)


def _replace_holidays(rule, holidays):
    parsed = [parse_holiday(text) for text in holidays]
    Holiday.delete().where(Holiday.rule == rule).execute()
    for start, end, t0, t1 in parsed:
        Holiday.create(rule=rule, start_date=start, end_date=end, start_time=t0, end_time=t1)


def _holiday_text(h):
    text = str(h.start_date) if h.start_date == h.end_date else f"{h.start_date}..{h.end_date}"
    if h.start_time:
        text += f" {h.start_time}-{h.end_time}"
    return text
