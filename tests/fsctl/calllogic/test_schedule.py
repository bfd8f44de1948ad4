"""Time rules (R-TIME): ranges, midnight, holidays, time zones and DST, against a brute force."""

from datetime import date, datetime, timedelta, timezone
from zoneinfo import ZoneInfo

import pytest
from hypothesis import given, settings, strategies as st

from fsctl.calllogic.callconfig import Holiday, TimeRange, TimeRule
from fsctl.calllogic.schedule import ScheduleError, matches

UTC = timezone.utc


def utc(*args):
    return datetime(*args, tzinfo=UTC)


OFFICE = TimeRule("office", (TimeRange.from_text("mon-fri", "09:00", "18:00"),))


@pytest.mark.parametrize(
    "instant, expected",
    [
        (utc(2026, 11, 23, 7, 0), True),  # Monday 09:00 EET (UTC+2)
        (utc(2026, 11, 23, 6, 59), False),  # 08:59
        (utc(2026, 11, 23, 15, 59, 59), True),  # 17:59:59
        (utc(2026, 11, 23, 16, 0), False),  # 18:00 is the end, exclusive
        (utc(2026, 11, 28, 10, 0), False),  # Saturday
        (utc(2026, 7, 6, 6, 0), True),  # Monday 09:00 EEST (UTC+3)
        (utc(2026, 7, 6, 5, 59), False),
        (utc(2026, 7, 6, 14, 59), True),  # 17:59 EEST
        (utc(2026, 7, 6, 15, 0), False),
    ],
)
def test_office_hours_in_the_tenant_zone(instant, expected):
    hit, reason = matches(OFFICE, instant, "Europe/Vilnius")
    assert hit is expected
    assert "office" in reason and "Europe/Vilnius" in reason


def test_reason_names_the_range_and_local_time():
    hit, reason = matches(OFFICE, utc(2026, 11, 23, 8, 30), "Europe/Vilnius")
    assert hit
    assert reason == (
        "time rule office: range mon,tue,wed,thu,fri 09:00-18:00 (local mon 2026-11-23 10:30 Europe/Vilnius)"
    )


def test_rule_zone_wins_over_the_tenant_zone():
    rule = TimeRule("ny", (TimeRange.from_text("mon-fri", "09:00", "17:00"),), timezone="America/New_York")
    # Monday 14:00 UTC = 09:00 EST; in Vilnius it would be 16:00 (also inside, so test 13:59 too).
    assert matches(rule, utc(2026, 11, 23, 14, 0), "Europe/Vilnius")[0] is True
    assert matches(rule, utc(2026, 11, 23, 13, 59), "Europe/Vilnius")[0] is False
    assert "America/New_York" in matches(rule, utc(2026, 11, 23, 14, 0), "Europe/Vilnius")[1]


def test_default_zone_applies_when_the_rule_has_none():
    # Monday 07:30 UTC: 09:30 in Vilnius (match), 07:30 in UTC (no match).
    assert matches(OFFICE, utc(2026, 11, 23, 7, 30), "Europe/Vilnius")[0] is True
    assert matches(OFFICE, utc(2026, 11, 23, 7, 30), "UTC")[0] is False


NIGHT = TimeRule("night", (TimeRange.from_text("fri", "22:00", "06:00"),))


@pytest.mark.parametrize(
    "local, expected",
    [
        (datetime(2026, 11, 27, 23, 0), True),  # Friday 23:00
        (datetime(2026, 11, 27, 22, 0), True),  # Friday 22:00, start inclusive
        (datetime(2026, 11, 27, 21, 59), False),
        (datetime(2026, 11, 28, 0, 0), True),  # Saturday 00:00, the part after midnight
        (datetime(2026, 11, 28, 5, 59), True),
        (datetime(2026, 11, 28, 6, 0), False),
        (datetime(2026, 11, 27, 3, 0), False),  # Friday morning: that part belongs to Thursday
        (datetime(2026, 11, 26, 23, 0), False),  # Thursday night
    ],
)
def test_range_crossing_midnight(local, expected):
    assert matches(NIGHT, local.replace(tzinfo=UTC), "UTC")[0] is expected


def test_range_crossing_midnight_on_sunday_wraps_to_monday():
    rule = TimeRule("sun-night", (TimeRange.from_text("sun", "20:00", "02:00"),))
    assert matches(rule, utc(2026, 11, 30, 1, 0), "UTC")[0] is True  # Monday 01:00
    assert matches(rule, utc(2026, 11, 30, 2, 0), "UTC")[0] is False


def test_range_until_midnight():
    rule = TimeRule("evening", (TimeRange.from_text("mon", "18:00", "24:00"),))
    assert matches(rule, utc(2026, 11, 23, 23, 59), "UTC")[0] is True
    assert matches(rule, utc(2026, 11, 24, 0, 0), "UTC")[0] is False


def test_holiday_overrides_ranges():
    rule = TimeRule("office", OFFICE.ranges, (Holiday(date(2026, 12, 24), date(2026, 12, 26), name="Christmas"),))
    hit, reason = matches(rule, utc(2026, 12, 24, 10, 0), "Europe/Vilnius")  # Thursday noon
    assert hit is False
    assert "holiday 'Christmas' 2026-12-24..2026-12-26" in reason
    assert matches(rule, utc(2026, 12, 23, 10, 0), "Europe/Vilnius")[0] is True
    assert matches(rule, utc(2026, 12, 28, 10, 0), "Europe/Vilnius")[0] is True


def test_holiday_dates_are_local_dates():
    rule = TimeRule(
        "office",
        (TimeRange.from_text("mon-sun", "00:00", "24:00"),),
        (Holiday(date(2026, 12, 24), date(2026, 12, 24)),),
    )
    # 2026-12-23 22:30 UTC is already the 24th in Vilnius (UTC+2).
    assert matches(rule, utc(2026, 12, 23, 22, 30), "Europe/Vilnius")[0] is False
    assert matches(rule, utc(2026, 12, 23, 22, 30), "UTC")[0] is True


def test_holiday_with_a_time_window():
    rule = TimeRule("office", OFFICE.ranges, (Holiday(date(2026, 12, 31), date(2026, 12, 31), "14:00", "24:00"),))
    assert matches(rule, utc(2026, 12, 31, 13, 59), "UTC")[0] is True
    assert matches(rule, utc(2026, 12, 31, 14, 0), "UTC")[0] is False


def test_multi_day_holiday_window_applies_each_day():
    rule = TimeRule("office", OFFICE.ranges, (Holiday(date(2026, 12, 24), date(2026, 12, 25), "12:00", "24:00"),))
    assert matches(rule, utc(2026, 12, 25, 11, 0), "UTC")[0] is True  # Friday morning
    assert matches(rule, utc(2026, 12, 25, 12, 30), "UTC")[0] is False


def test_no_ranges_never_matches():
    assert matches(TimeRule("empty"), utc(2026, 11, 23, 10, 0), "UTC") == (
        False,
        "time rule empty: no ranges (local mon 2026-11-23 10:00 UTC)",
    )


def test_naive_instant_and_unknown_zone_are_refused():
    with pytest.raises(ScheduleError):
        matches(OFFICE, datetime(2026, 11, 23, 10, 0), "UTC")
    with pytest.raises(ScheduleError):
        matches(OFFICE, utc(2026, 11, 23, 10, 0), "Mars/Olympus")


def test_time_range_validation():
    with pytest.raises(ValueError):
        TimeRange.from_text("mon", "09:00", "09:00")
    with pytest.raises(ValueError):
        TimeRange.from_text("mon", "24:00", "06:00")
    with pytest.raises(ValueError):
        TimeRange.from_text("mon", "9", "10:00")
    with pytest.raises(ValueError):
        TimeRange.from_text("funday", "09:00", "10:00")
    with pytest.raises(ValueError):
        Holiday(date(2026, 1, 2), date(2026, 1, 1))
    assert TimeRange.from_text("sat-mon", "10:00", "11:00").weekdays == frozenset({5, 6, 0})


# --- DST -----------------------------------------------------------------------------
# Europe/Vilnius: 2026-03-29 03:00 EET -> 04:00 EEST (01:00 UTC);
#                 2026-10-25 04:00 EEST -> 03:00 EET (01:00 UTC).
# America/New_York: 2026-03-08 02:00 EST -> 03:00 EDT (07:00 UTC);
#                   2026-11-01 02:00 EDT -> 01:00 EST (06:00 UTC).


def _minutes(start, end):
    t = start
    while t < end:
        yield t
        t += timedelta(minutes=1)


def test_vilnius_spring_forward_skipped_hour_never_matches():
    rule = TimeRule("gap", (TimeRange.from_text("sun", "03:00", "04:00"),))
    assert not any(
        matches(rule, t, "Europe/Vilnius")[0] for t in _minutes(utc(2026, 3, 28, 22, 0), utc(2026, 3, 29, 4, 0))
    )


def test_vilnius_spring_forward_range_spanning_the_gap():
    rule = TimeRule("early", (TimeRange.from_text("sun", "02:00", "05:00"),))
    assert matches(rule, utc(2026, 3, 29, 0, 59), "Europe/Vilnius")[0] is True  # 02:59 EET
    assert matches(rule, utc(2026, 3, 29, 1, 0), "Europe/Vilnius")[0] is True  # 04:00 EEST
    assert matches(rule, utc(2026, 3, 29, 1, 59), "Europe/Vilnius")[0] is True  # 04:59 EEST
    assert matches(rule, utc(2026, 3, 29, 2, 0), "Europe/Vilnius")[0] is False  # 05:00 EEST
    # Two hours of real time instead of three.
    hits = [
        t for t in _minutes(utc(2026, 3, 28, 22, 0), utc(2026, 3, 29, 6, 0)) if matches(rule, t, "Europe/Vilnius")[0]
    ]
    assert len(hits) == 120


def test_vilnius_fall_back_repeated_hour_matches_twice():
    rule = TimeRule("repeat", (TimeRange.from_text("sun", "03:00", "04:00"),))
    assert matches(rule, utc(2026, 10, 25, 0, 30), "Europe/Vilnius")[0] is True  # 03:30 EEST
    assert matches(rule, utc(2026, 10, 25, 1, 30), "Europe/Vilnius")[0] is True  # 03:30 EET
    assert matches(rule, utc(2026, 10, 24, 23, 59), "Europe/Vilnius")[0] is False  # 02:59 EEST
    assert matches(rule, utc(2026, 10, 25, 2, 0), "Europe/Vilnius")[0] is False  # 04:00 EET
    hits = [
        t for t in _minutes(utc(2026, 10, 24, 20, 0), utc(2026, 10, 25, 6, 0)) if matches(rule, t, "Europe/Vilnius")[0]
    ]
    assert len(hits) == 120


def test_vilnius_office_hours_follow_the_wall_clock_across_dst():
    assert matches(OFFICE, utc(2026, 3, 27, 7, 0), "Europe/Vilnius")[0] is True  # Fri 09:00 EET
    assert matches(OFFICE, utc(2026, 3, 27, 6, 0), "Europe/Vilnius")[0] is False
    assert matches(OFFICE, utc(2026, 3, 30, 6, 0), "Europe/Vilnius")[0] is True  # Mon 09:00 EEST
    assert matches(OFFICE, utc(2026, 3, 30, 5, 59), "Europe/Vilnius")[0] is False
    assert matches(OFFICE, utc(2026, 10, 26, 7, 0), "Europe/Vilnius")[0] is True  # Mon 09:00 EET
    assert matches(OFFICE, utc(2026, 10, 26, 6, 0), "Europe/Vilnius")[0] is False


def test_new_york_spring_forward():
    gap = TimeRule("gap", (TimeRange.from_text("sun", "02:00", "03:00"),))
    assert not any(
        matches(gap, t, "America/New_York")[0] for t in _minutes(utc(2026, 3, 8, 4, 0), utc(2026, 3, 8, 10, 0))
    )
    office = TimeRule("office", (TimeRange.from_text("mon-fri", "09:00", "17:00"),))
    assert matches(office, utc(2026, 3, 6, 14, 0), "America/New_York")[0] is True  # Fri 09:00 EST
    assert matches(office, utc(2026, 3, 9, 13, 0), "America/New_York")[0] is True  # Mon 09:00 EDT
    assert matches(office, utc(2026, 3, 9, 12, 59), "America/New_York")[0] is False


def test_new_york_fall_back():
    rule = TimeRule("repeat", (TimeRange.from_text("sun", "01:00", "02:00"),))
    assert matches(rule, utc(2026, 11, 1, 5, 30), "America/New_York")[0] is True  # 01:30 EDT
    assert matches(rule, utc(2026, 11, 1, 6, 30), "America/New_York")[0] is True  # 01:30 EST
    assert matches(rule, utc(2026, 11, 1, 7, 0), "America/New_York")[0] is False  # 02:00 EST
    night = TimeRule("night", (TimeRange.from_text("sat", "22:00", "02:00"),))
    # Saturday 22:00 EDT to Sunday 02:00 EST: five hours of real time.
    hits = [
        t
        for t in _minutes(utc(2026, 10, 31, 20, 0), utc(2026, 11, 1, 12, 0))
        if matches(night, t, "America/New_York")[0]
    ]
    assert len(hits) == 5 * 60


# --- properties against a brute-force reference ----------------------------------------

ZONES = [
    "UTC",
    "Europe/Vilnius",
    "America/New_York",
    "Europe/London",
    "Australia/Lord_Howe",  # 30-minute DST shift
    "Asia/Kathmandu",  # +05:45
    "America/St_Johns",  # -03:30 with DST
    "Pacific/Chatham",  # +12:45 / +13:45
    "Pacific/Kiritimati",  # +14
    "America/Santiago",  # southern hemisphere DST
]

TRANSITIONS = [
    utc(2026, 3, 29, 1, 0),
    utc(2026, 10, 25, 1, 0),
    utc(2026, 3, 8, 7, 0),
    utc(2026, 11, 1, 6, 0),
    utc(2027, 3, 28, 1, 0),
    utc(2025, 10, 26, 1, 0),
]

minutes_of_day = st.integers(0, 1439)
ranges = st.builds(
    lambda days, start, length: TimeRange(frozenset(days), start, (start + length) % 1440 or 1440),
    st.sets(st.integers(0, 6), min_size=1),
    minutes_of_day,
    st.integers(1, 1439),
)


@st.composite
def holidays(draw):
    start = draw(st.dates(date(2025, 1, 1), date(2028, 12, 31)))
    end = start + timedelta(days=draw(st.integers(0, 5)))
    if draw(st.booleans()):
        t0 = draw(st.integers(0, 1439))
        t1 = draw(st.integers(t0 + 1, 1440))
        return Holiday(start, end, t0, t1)
    return Holiday(start, end)


rules = st.builds(
    lambda r, h, tz: TimeRule("r", tuple(r), tuple(h), timezone=tz),
    st.lists(ranges, min_size=0, max_size=3),
    st.lists(holidays(), max_size=2),
    st.none() | st.sampled_from(ZONES),
)

instants = st.datetimes(datetime(2025, 1, 1), datetime(2028, 12, 31)).map(lambda d: d.replace(tzinfo=UTC)) | st.builds(
    lambda base, delta: base + timedelta(seconds=delta), st.sampled_from(TRANSITIONS), st.integers(-4 * 3600, 4 * 3600)
)


def reference(rule, now, default_tz):
    """Brute force: enumerate the (weekday, minute) pairs the ranges cover."""
    local = datetime.fromtimestamp(now.timestamp(), ZoneInfo(rule.timezone or default_tz))
    minute = local.hour * 60 + local.minute
    for h in rule.holidays:
        t0, t1 = h.window
        if h.start_date <= local.date() <= h.end_date and minute in range(t0, t1):
            return False
    covered = set()
    for r in rule.ranges:
        for wd in r.weekdays:
            if r.start < r.end:
                covered.update((wd, m) for m in range(r.start, r.end))
            else:
                covered.update((wd, m) for m in range(r.start, 1440))
                covered.update(((wd + 1) % 7, m) for m in range(0, r.end))
    return (local.weekday(), minute) in covered


@settings(max_examples=400, deadline=None)
@given(rule=rules, now=instants, default_tz=st.sampled_from(ZONES))
def test_matches_agrees_with_brute_force(rule, now, default_tz):
    hit, reason = matches(rule, now, default_tz)
    assert hit == reference(rule, now, default_tz)
    assert reason.startswith("time rule r: ")
    assert (rule.timezone or default_tz) in reason


@settings(max_examples=100, deadline=None)
@given(rule=rules, now=instants, default_tz=st.sampled_from(ZONES), offset=st.integers(-14 * 60, 14 * 60))
def test_result_does_not_depend_on_how_the_instant_is_expressed(rule, now, default_tz, offset):
    other = now.astimezone(timezone(timedelta(minutes=offset)))
    assert matches(rule, other, default_tz)[0] == matches(rule, now, default_tz)[0]
