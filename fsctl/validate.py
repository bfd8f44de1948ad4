"""Input rules. Each check returns the clean value or raises ValidationError(field, value, rule)."""

import datetime as _dt
import re
import zoneinfo

from .errors import ValidationError

DOMAIN_RE = re.compile(r"^(?=.{1,253}\Z)([a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?\.)+[a-z]([a-z0-9-]{0,61}[a-z0-9])?\Z")
EXTENSION_RE = re.compile(r"^[0-9]{2,6}\Z")
E164_RE = re.compile(r"^\+[1-9][0-9]{6,14}\Z")
PHONE_RE = re.compile(r"^\+?[0-9]{1,20}\Z")
PREFIX_RE = re.compile(r"^\+?[0-9]{1,20}\Z")
PIN_RE = re.compile(r"^[0-9]{4,12}\Z")
NAME_RE = re.compile(r"^[a-z0-9][a-z0-9_.-]{0,63}\Z")
EMAIL_RE = re.compile(r"^[^@\s<>\"]+@[^@\s<>\"]+\.[^@\s<>\"]+\Z")
TIME_RE = re.compile(r"^([01][0-9]|2[0-3]):[0-5][0-9]\Z|^24:00\Z")
# Refused in tenant text: every C0 control (tab, LF and CR included: a name is one line, and a
# line break would split an e-mail header, a CSV row or an Event Socket message), DEL, the C1
# controls (U+0085 NEXT LINE among them), the Unicode line and paragraph separators
# (U+2028/U+2029: line breaks to e-mail, JSON-in-JavaScript and many terminals), surrogates,
# and U+FFFE/U+FFFF (XML 1.0 cannot carry them; lxml refuses them).
CONTROL_RE = re.compile("[\x00-\x1f\x7f-\x9f\u2028\u2029\ud800-\udfff\ufffe\uffff]")
# Multi-line text (a recording's note): the same, but LF and TAB are text.
MULTILINE_CONTROL_RE = re.compile("[\x00-\x08\x0b-\x1f\x7f-\x9f\u2028\u2029\ud800-\udfff\ufffe\uffff]")

WEEKDAYS = ("mon", "tue", "wed", "thu", "fri", "sat", "sun")


def domain(value, field="tenant.domain"):
    """A lowercase DNS name with at least two labels (the tenant's SIP domain)."""
    text = (value or "").strip().lower().rstrip(".")
    if not DOMAIN_RE.match(text):
        raise ValidationError(field, value, "must be a DNS name like acme.example (letters, digits, '-', dots)")
    return text


def extension(value, field):
    """A short internal number: 2 to 6 digits."""
    text = (value or "").strip()
    if not EXTENSION_RE.match(text):
        raise ValidationError(field, value, "must be 2 to 6 digits")
    return text


def e164(value, field):
    """A public number in E.164: + then 7 to 15 digits."""
    text = re.sub(r"[ ()-]", "", (value or "").strip())
    if text.startswith("00"):
        text = "+" + text[2:]
    if not E164_RE.match(text):
        raise ValidationError(field, value, "must be an E.164 number like +37052000000")
    return text


def phone(value, field):
    """Any dialable number: digits with an optional leading +, at most 20 digits."""
    text = re.sub(r"[ ()-]", "", (value or "").strip())
    if not PHONE_RE.match(text):
        raise ValidationError(field, value, "must be digits with an optional leading +")
    return text


def prefix(value, field):
    """A number prefix: digits with an optional leading +; spaces, '(', ')' and '-' dropped (as for numbers)."""
    text = re.sub(r"[ ()-]", "", (value or "").strip())
    if not PREFIX_RE.match(text):
        raise ValidationError(field, value, "must be digits with an optional leading +")
    return text


def text(value, field, max_len=200, required=True, multiline=False):
    """Free tenant text: any Unicode, stored as given, one line without control characters.

    `multiline=True` (a recording's note, which only fsctl's own output shows) also takes line
    feeds and tabs.
    """
    if value is None:
        value = ""
    if required and not value.strip():
        raise ValidationError(field, value, "must not be empty")
    if len(value) > max_len:
        raise ValidationError(field, value, f"must be at most {max_len} characters")
    if (MULTILINE_CONTROL_RE if multiline else CONTROL_RE).search(value):
        rule = (
            "must not contain control characters"
            if multiline
            else "must be one line without control characters (tabs and line breaks included)"
        )
        raise ValidationError(field, value, rule)
    return value


def slug(value, field):
    """A short identifier: lowercase letters, digits, '_', '.', '-' (max 64)."""
    text_ = (value or "").strip()
    if not NAME_RE.match(text_):
        raise ValidationError(field, value, "must be lowercase letters, digits, '_', '.' or '-' (max 64)")
    return text_


def timezone(value, field="tenant.timezone"):
    """An IANA time zone name such as Europe/Vilnius."""
    text_ = (value or "").strip()
    try:
        if not text_ or text_.startswith("/") or ".." in text_:
            raise ValueError
        zoneinfo.ZoneInfo(text_)
    except (ValueError, zoneinfo.ZoneInfoNotFoundError):
        raise ValidationError(field, value, "must be an IANA time zone like Europe/Vilnius") from None
    return text_


def choice(value, field, allowed):
    """One of a fixed set of words."""
    if value not in allowed:
        raise ValidationError(field, value, "must be one of " + ", ".join(str(a) for a in allowed))
    return value


def integer(value, field, low=None, high=None, allowed=None):
    """An integer, optionally within [low, high] or one of `allowed`."""
    try:
        number = int(str(value).strip())
    except (TypeError, ValueError):
        raise ValidationError(field, value, "must be a whole number") from None
    if allowed is not None and number not in allowed:
        raise ValidationError(field, value, "must be one of " + ", ".join(str(a) for a in allowed))
    if low is not None and number < low or high is not None and number > high:
        raise ValidationError(field, value, f"must be between {low} and {high}")
    return number


def pin(value, field):
    """A numeric PIN of 4 to 12 digits."""
    text_ = (value or "").strip()
    if not PIN_RE.match(text_):
        raise ValidationError(field, value, "must be 4 to 12 digits")
    return text_


def email(value, field):
    """An e-mail address."""
    text_ = (value or "").strip()
    if not EMAIL_RE.match(text_) or len(text_) > 254 or CONTROL_RE.search(text_):
        raise ValidationError(field, value, "must be an e-mail address like name@example.com")
    return text_


def sip_password(value, field="user.password"):
    """A SIP password: 12 to 128 printable ASCII characters (no spaces)."""
    if value is None or not (12 <= len(value) <= 128) or not all(33 <= ord(c) < 127 for c in value):
        raise ValidationError(field, "***", "must be 12 to 128 printable ASCII characters without spaces")
    return value


def time_of_day(value, field):
    """HH:MM (00:00 to 24:00)."""
    text_ = (value or "").strip()
    if not TIME_RE.match(text_):
        raise ValidationError(field, value, "must be a time HH:MM between 00:00 and 24:00")
    return text_


def date(value, field):
    """An ISO date YYYY-MM-DD."""
    if isinstance(value, _dt.date):
        return value
    try:
        return _dt.date.fromisoformat((value or "").strip())
    except ValueError:
        raise ValidationError(field, value, "must be a date YYYY-MM-DD") from None


def weekdays(value, field):
    """Weekdays as 'mon-fri', 'sat,sun', 'mon,wed-fri' or 'all'; returns 'mon,tue,...'."""
    text_ = (value or "").strip().lower()
    if text_ in ("all", "*", "daily"):
        return ",".join(WEEKDAYS)
    days = []
    try:
        for part in text_.split(","):
            part = part.strip()
            if "-" in part:
                a, b = (p.strip()[:3] for p in part.split("-", 1))
                i, j = WEEKDAYS.index(a), WEEKDAYS.index(b)
                if j < i:
                    raise ValueError
                days.extend(WEEKDAYS[i : j + 1])
            else:
                days.append(WEEKDAYS[WEEKDAYS.index(part[:3])])
    except ValueError:
        raise ValidationError(field, value, "must be weekdays like mon-fri or sat,sun") from None
    return ",".join(d for d in WEEKDAYS if d in days)
