"""Voice menus (auto-attendant), multi-level through ivr:NNN destinations. R-IVR."""

import re

from .. import validate
from ..errors import NotFoundError, ValidationError
from ..model import Ivr, IvrEntry
from .common import (
    assert_number_free,
    check_destination,
    check_media,
    get_numbered,
    get_tenant,
    touch,
)
from .numbered import getter, lister, remover

DIGITS_RE = re.compile(r"^[0-9*#]{1,8}\Z")


get_ivr = getter("ivr")
list_ivrs = lister("ivr")
# A menu's own entries route too: they do not count.
remove_ivr = remover("ivr", own=lambda ivr: [(IvrEntry, e.id) for e in ivr.entries] + [(Ivr, ivr.id)])


def add_ivr(
    domain,
    number,
    name,
    greeting=None,
    invalid_sound=None,
    timeout=5,
    max_failures=3,
    max_timeouts=3,
    digit_len=4,
    exit_destination="hangup",
    entries=None,
):
    """Create a menu; `entries` maps digits to destination texts."""
    tenant = get_tenant(domain)
    number = validate.extension(number, "ivr.number")
    assert_number_free(tenant, number, "ivr.number")
    ivr = Ivr.create(
        tenant=tenant,
        number=number,
        name=validate.text(name, "ivr.name"),
        greeting=check_media(tenant, greeting, "ivr.greeting"),
        invalid_sound=check_media(tenant, invalid_sound, "ivr.invalid_sound"),
        timeout=validate.integer(timeout, "ivr.timeout", 1, 60),
        max_failures=validate.integer(max_failures, "ivr.max_failures", 1, 10),
        max_timeouts=validate.integer(max_timeouts, "ivr.max_timeouts", 1, 10),
        digit_len=validate.integer(digit_len, "ivr.digit_len", 1, 8),
        exit_destination=check_destination(tenant, exit_destination, "ivr.exit_destination", source=f"ivr:{number}"),
    )
    for digits, target in (entries or {}).items():
        _set_entry(tenant, ivr, digits, target)
    touch(tenant)
    return ivr


def edit_ivr(
    domain,
    number,
    name=None,
    greeting=None,
    invalid_sound=None,
    timeout=None,
    max_failures=None,
    max_timeouts=None,
    digit_len=None,
    exit_destination=None,
    set_entries=None,
    remove_entries=(),
):
    """Change a menu; `set_entries` adds or replaces digit actions, `remove_entries` drops them."""
    tenant = get_tenant(domain)
    ivr = get_numbered(tenant, "ivr", number)
    if name is not None:
        ivr.name = validate.text(name, "ivr.name")
    if greeting is not None:
        ivr.greeting = check_media(tenant, greeting, "ivr.greeting")
    if invalid_sound is not None:
        ivr.invalid_sound = check_media(tenant, invalid_sound, "ivr.invalid_sound")
    if timeout is not None:
        ivr.timeout = validate.integer(timeout, "ivr.timeout", 1, 60)
    if max_failures is not None:
        ivr.max_failures = validate.integer(max_failures, "ivr.max_failures", 1, 10)
    if max_timeouts is not None:
        ivr.max_timeouts = validate.integer(max_timeouts, "ivr.max_timeouts", 1, 10)
    if digit_len is not None:
        ivr.digit_len = validate.integer(digit_len, "ivr.digit_len", 1, 8)
    if exit_destination is not None:
        ivr.exit_destination = check_destination(
            tenant, exit_destination, "ivr.exit_destination", source=f"ivr:{ivr.number}"
        )
    ivr.save()
    for digits in remove_entries:
        deleted = IvrEntry.delete().where((IvrEntry.ivr == ivr) & (IvrEntry.digits == digits)).execute()
        if not deleted:
            raise NotFoundError("ivr entry", digits, f"ivr {ivr.number}")
    for digits, target in (set_entries or {}).items():
        _set_entry(tenant, ivr, digits, target)
    touch(tenant)
    return ivr


def entries_of(ivr):
    """The menu's digit actions, ordered by digits."""
    return list(IvrEntry.select().where(IvrEntry.ivr == ivr).order_by(IvrEntry.digits))


def ivr_dict(ivr):
    """The stable JSON shape of a menu."""
    return {
        "number": ivr.number,
        "name": ivr.name,
        "greeting": ivr.greeting,
        "invalid_sound": ivr.invalid_sound,
        "timeout": ivr.timeout,
        "max_failures": ivr.max_failures,
        "max_timeouts": ivr.max_timeouts,
        "digit_len": ivr.digit_len,
        "exit_destination": ivr.exit_destination,
        "entries": {e.digits: e.destination for e in entries_of(ivr)},
    }


def _set_entry(tenant, ivr, digits, target):
    digits = str(digits).strip()
    if not DIGITS_RE.match(digits):
        raise ValidationError("ivr.entry", digits, "digits must be 1 to 8 of 0-9, * and #")
    if len(digits) > ivr.digit_len:
        raise ValidationError("ivr.entry", digits, f"longer than the menu's digit_len {ivr.digit_len}")
    text = check_destination(tenant, target, f"ivr.entry.{digits}")
    entry = IvrEntry.get_or_none((IvrEntry.ivr == ivr) & (IvrEntry.digits == digits))
    if entry is None:
        IvrEntry.create(ivr=ivr, digits=digits, destination=text)
    else:
        entry.destination = text
        entry.save()
