"""One tenant's configuration as the call logic sees it: frozen snapshots, no database.

The provisioning layer (fsctl/) builds a `TenantConfig` from its rows; the call decisions
(`fsctl.calllogic.decide`) read nothing else. `Destination` is also the provisioning layer's
parser for `kind:target` texts, so it stays dependency-free and stable.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from datetime import date
from functools import cached_property
from types import MappingProxyType
from typing import Iterable, Mapping

__all__ = [
    "DESTINATION_KINDS",
    "NUMBERED_KINDS",
    "WEEKDAYS",
    "Destination",
    "Forwarding",
    "Tenant",
    "User",
    "Group",
    "Did",
    "Ivr",
    "TimeRange",
    "Holiday",
    "TimeRule",
    "Queue",
    "Conference",
    "BlacklistEntry",
    "TenantConfig",
    "parse_hhmm",
    "format_hhmm",
    "canonical_number",
    "outbound_name",
]

DESTINATION_KINDS = (
    "user",
    "group",
    "ivr",
    "queue",
    "timerule",
    "voicemail",
    "conference",
    "external",
    "hangup",
)
# Kinds whose target is a number in the tenant's numbering plan.
NUMBERED_KINDS = ("user", "group", "ivr", "queue", "conference")
WEEKDAYS = ("mon", "tue", "wed", "thu", "fri", "sat", "sun")  # index = datetime.weekday()

_CAUSE_RE = re.compile(r"^[A-Z][A-Z0-9_]*\Z")
# A target is one token: no blanks, no control characters, no dial-string separators.
_TARGET_RE = re.compile(r"^[^\s,|\[\]{}<>'\"\\$]+\Z")
# The ring-group rules (R-GRP, R-SEQ), one home: provisioning checks them, the call logic obeys them.
GROUP_STRATEGIES = ("simultaneous", "random", "sequential")
GROUP_ORDERS = ("fixed", "rotating")
SEQUENTIAL_RING_TIMES = (10, 20, 30)  # seconds per member of a sequential group
SEQUENTIAL_MAX_MEMBERS = 12
MAX_GROUP_MEMBERS = 100  # any other group


@dataclass(frozen=True, order=True)
class Destination:
    """A typed reference to where a call goes: `kind:target` (`user:101`, `hangup:USER_BUSY`)."""

    kind: str
    target: str = ""

    def __post_init__(self):
        if self.kind not in DESTINATION_KINDS:
            raise ValueError(f"destination kind {self.kind!r} is not one of {', '.join(DESTINATION_KINDS)}")
        if not isinstance(self.target, str):
            raise TypeError("destination target must be a string")
        if self.kind == "hangup":
            if self.target and not _CAUSE_RE.match(self.target):
                raise ValueError(f"hang-up cause {self.target!r} must look like USER_BUSY")
        elif not self.target:
            raise ValueError(f"destination {self.kind} needs a target ({self.kind}:...)")
        elif not _TARGET_RE.match(self.target):
            raise ValueError(f"destination target {self.target!r} contains a forbidden character")

    @classmethod
    def parse(cls, text: str) -> "Destination":
        """`kind:target` text (or a bare `hangup`) -> Destination; ValueError/TypeError if malformed."""
        if isinstance(text, Destination):
            return text
        if not isinstance(text, str):
            raise TypeError(f"a destination is text, not {type(text).__name__}")
        kind, sep, target = text.strip().partition(":")
        return cls(kind.strip().lower(), target.strip() if sep else "")

    @classmethod
    def hangup(cls, cause: str = "") -> "Destination":
        """The hang-up destination, optionally with a FreeSWITCH cause."""
        return cls("hangup", cause)

    def __str__(self) -> str:
        return f"{self.kind}:{self.target}" if self.target else self.kind


def _dest(value) -> Destination | None:
    if value is None or value == "":
        return None
    return Destination.parse(value)


def parse_hhmm(text: str | int) -> int:
    """'HH:MM' (00:00..24:00) -> minutes since midnight; ints pass through."""
    if isinstance(text, int):
        minutes = text
    else:
        m = re.fullmatch(r"(\d{1,2}):(\d{2})", str(text).strip())
        if not m or int(m.group(2)) > 59:
            raise ValueError(f"time {text!r} must look like HH:MM")
        minutes = int(m.group(1)) * 60 + int(m.group(2))
    if not 0 <= minutes <= 1440:
        raise ValueError(f"time {text!r} must be between 00:00 and 24:00")
    return minutes


def format_hhmm(minutes: int) -> str:
    """Minutes since midnight -> 'HH:MM'."""
    return f"{minutes // 60:02d}:{minutes % 60:02d}"


# What a caller name may not carry through a dial string's `[name=value]` or a SIP display name.
_DIAL_UNSAFE = str.maketrans(
    {"'": "\u2019", '"': "\u201d", "[": "(", "]": ")", "{": "(", "}": ")", ",": "\u201a", "\\": "/"}
)


def outbound_name(
    tenant_name: str,
    tenant_outbound_name: str | None = None,
    did_name: str | None = None,
    user_outbound_name: str | None = None,
) -> str:
    """The caller name a user's outside call shows the carrier (issue 11: never the internal name).

    The user's own, else the tenant's, else the name of the public number the call goes out
    with, else the tenant's name; made safe for a dial string's per-leg variables and a SIP
    display name (quotes, brackets, braces and commas become look-alikes).
    """
    name = user_outbound_name or tenant_outbound_name or did_name or tenant_name or ""
    return " ".join(name.split()).translate(_DIAL_UNSAFE)


def canonical_number(number: str | None) -> str:
    """A phone number for comparisons: digits only, keeping a leading '+'; '00' prefix -> '+'."""
    text = (number or "").strip()
    plus = text.startswith("+")
    digits = "".join(ch for ch in text if ch.isdigit())
    if plus:
        return "+" + digits
    if digits.startswith("00") and len(digits) > 2:
        return "+" + digits[2:]
    return digits


@dataclass(frozen=True)
class Forwarding:
    """A user's forwarding rules; each is a Destination or None."""

    always: Destination | None = None
    busy: Destination | None = None
    no_answer: Destination | None = None
    unreachable: Destination | None = None

    def __post_init__(self):
        for name in ("always", "busy", "no_answer", "unreachable"):
            object.__setattr__(self, name, _dest(getattr(self, name)))

    def active(self) -> dict[str, Destination]:
        """The rules that are set, {rule: destination}."""
        return {n: getattr(self, n) for n in ("always", "busy", "no_answer", "unreachable") if getattr(self, n)}


@dataclass(frozen=True)
class Tenant:
    """The tenant itself: SIP domain, time zone, where undecidable calls go, outbound gateway."""

    domain: str
    timezone: str = "UTC"
    fallback: Destination = Destination("hangup")
    gateway: str = "default"
    recordings_root: str = "/var/lib/freeswitch/recordings"  # fsctl Settings.recordings_dir
    # Played to the caller before a recorded call (R-REC: the parties must be told).
    recording_announcement: str = "tone_stream://%(400,0,800)"
    # Played to a recorded user (B-leg) when they answer.
    recording_beep: str = "tone_stream://%(200,0,1000)"

    def __post_init__(self):
        object.__setattr__(self, "fallback", Destination.parse(self.fallback))


@dataclass(frozen=True)
class User:
    """A user (extension) as the call logic needs it."""

    number: str
    name: str = ""
    record: bool = False
    vm_enabled: bool = True
    forwarding: Forwarding = Forwarding()
    no_answer_timeout: int = 20
    # The caller name this user's outside calls show (`outbound_name`); "" keeps the caller's own.
    outbound_name: str = ""


@dataclass(frozen=True)
class Group:
    """A ring group: simultaneous, random or sequential (fixed or rotating order)."""

    number: str
    name: str = ""
    strategy: str = "simultaneous"
    order: str = "fixed"
    ring_time: int = 20
    members: tuple[str, ...] = ()
    fallback: Destination = Destination("hangup")

    def __post_init__(self):
        object.__setattr__(self, "members", tuple(str(m) for m in self.members))
        object.__setattr__(self, "fallback", Destination.parse(self.fallback))


@dataclass(frozen=True)
class Did:
    """A public number (E.164) and the destination of its scenario."""

    number: str
    destination: Destination
    name: str = ""

    def __post_init__(self):
        object.__setattr__(self, "destination", Destination.parse(self.destination))


@dataclass(frozen=True)
class Ivr:
    """A voice menu; the dialplan runs it (decisions only hand the call over)."""

    number: str
    name: str = ""
    greeting: str | None = None
    exit_destination: Destination = Destination("hangup")

    def __post_init__(self):
        object.__setattr__(self, "exit_destination", Destination.parse(self.exit_destination))


@dataclass(frozen=True)
class TimeRange:
    """Weekdays (0 = Monday) and minutes since midnight; end <= start crosses midnight.

    The weekday is the day the range starts: `fri 22:00-06:00` covers Friday 22:00 to
    Saturday 06:00.
    """

    weekdays: frozenset[int]
    start: int
    end: int

    def __post_init__(self):
        days = frozenset(self.weekdays)
        if not days or not all(isinstance(d, int) and 0 <= d <= 6 for d in days):
            raise ValueError(f"weekdays {sorted(days)!r} must be 0 (mon) .. 6 (sun)")
        object.__setattr__(self, "weekdays", days)
        object.__setattr__(self, "start", parse_hhmm(self.start))
        object.__setattr__(self, "end", parse_hhmm(self.end))
        if self.start >= 1440:
            raise ValueError("a range cannot start at 24:00")
        if self.start == self.end:
            raise ValueError("a range's start and end must differ")

    @classmethod
    def from_text(cls, weekdays: str, start: str, end: str) -> "TimeRange":
        """('mon,tue,wed' or 'mon-fri', 'HH:MM', 'HH:MM') -> TimeRange."""
        days = set()
        for part in weekdays.lower().replace(" ", "").split(","):
            if "-" in part:
                a, b = part.split("-", 1)
                i, j = WEEKDAYS.index(a[:3]), WEEKDAYS.index(b[:3])
                days.update(range(i, j + 1) if i <= j else [*range(i, 7), *range(0, j + 1)])
            elif part:
                days.add(WEEKDAYS.index(part[:3]))
        return cls(frozenset(days), start, end)

    @property
    def crosses_midnight(self) -> bool:
        return self.end < self.start

    def __str__(self) -> str:
        days = ",".join(WEEKDAYS[d] for d in sorted(self.weekdays))
        return f"{days} {format_hhmm(self.start)}-{format_hhmm(self.end)}"


@dataclass(frozen=True)
class Holiday:
    """Dates (inclusive) when the rule does not match; with times, only between them each day."""

    start_date: date
    end_date: date
    start_time: int | None = None
    end_time: int | None = None
    name: str = ""

    def __post_init__(self):
        if self.end_date < self.start_date:
            raise ValueError("a holiday's end date is before its start date")
        for attr in ("start_time", "end_time"):
            value = getattr(self, attr)
            if value is not None:
                object.__setattr__(self, attr, parse_hhmm(value))
        t0 = 0 if self.start_time is None else self.start_time
        t1 = 1440 if self.end_time is None else self.end_time
        if t0 >= t1:
            raise ValueError("a holiday's start time must be before its end time")

    @property
    def window(self) -> tuple[int, int]:
        """(start, end) minutes of the day the holiday covers."""
        return (0 if self.start_time is None else self.start_time, 1440 if self.end_time is None else self.end_time)

    def __str__(self) -> str:
        days = str(self.start_date) if self.start_date == self.end_date else f"{self.start_date}..{self.end_date}"
        if self.start_time is None and self.end_time is None:
            return days
        t0, t1 = self.window
        return f"{days} {format_hhmm(t0)}-{format_hhmm(t1)}"


@dataclass(frozen=True)
class TimeRule:
    """Working time: ranges and holidays in a time zone (None: the tenant's)."""

    name: str
    ranges: tuple[TimeRange, ...] = ()
    holidays: tuple[Holiday, ...] = ()
    match: Destination = Destination("hangup")
    nomatch: Destination = Destination("hangup")
    timezone: str | None = None

    def __post_init__(self):
        object.__setattr__(self, "ranges", tuple(self.ranges))
        object.__setattr__(self, "holidays", tuple(self.holidays))
        object.__setattr__(self, "match", Destination.parse(self.match))
        object.__setattr__(self, "nomatch", Destination.parse(self.nomatch))


@dataclass(frozen=True)
class Queue:
    """A call queue; mod_callcenter runs it, the overflow is where it gives up to."""

    number: str
    name: str = ""
    overflow: Destination = Destination("hangup")
    max_wait: int = 300

    def __post_init__(self):
        object.__setattr__(self, "overflow", Destination.parse(self.overflow))


@dataclass(frozen=True)
class Conference:
    """A conference room, optionally with a PIN."""

    number: str
    name: str = ""
    pin: str | None = None


@dataclass(frozen=True)
class BlacklistEntry:
    """A refused caller: an exact number or a prefix."""

    pattern: str
    match: str = "exact"  # exact | prefix
    note: str = ""

    def __post_init__(self):
        if self.match not in ("exact", "prefix"):
            raise ValueError(f"blacklist match {self.match!r} must be exact or prefix")

    def matches(self, caller: str) -> bool:
        """Whether the caller number is refused by this entry (numbers compared canonically)."""
        pattern, number = canonical_number(self.pattern), canonical_number(caller)
        if not pattern or not number:
            return False
        if self.match == "exact":
            return number == pattern
        return number.startswith(pattern)


def _index(items: Iterable, key: str) -> Mapping:
    out = {}
    for item in items:
        k = getattr(item, key)
        if k in out:
            raise ValueError(f"duplicate {type(item).__name__.lower()} {k!r}")
        out[k] = item
    return MappingProxyType(out)


@dataclass(frozen=True, eq=False)
class TenantConfig:
    """Everything the decisions may read about one tenant (build it with `TenantConfig.build`)."""

    tenant: Tenant
    users: Mapping[str, User] = field(default_factory=lambda: MappingProxyType({}))
    groups: Mapping[str, Group] = field(default_factory=lambda: MappingProxyType({}))
    dids: Mapping[str, Did] = field(default_factory=lambda: MappingProxyType({}))
    ivrs: Mapping[str, Ivr] = field(default_factory=lambda: MappingProxyType({}))
    time_rules: Mapping[str, TimeRule] = field(default_factory=lambda: MappingProxyType({}))
    queues: Mapping[str, Queue] = field(default_factory=lambda: MappingProxyType({}))
    conferences: Mapping[str, Conference] = field(default_factory=lambda: MappingProxyType({}))
    blacklist: tuple[BlacklistEntry, ...] = ()
    contacts: Mapping[str, str] = field(default_factory=lambda: MappingProxyType({}))

    @classmethod
    def build(
        cls,
        tenant: Tenant,
        users: Iterable[User] = (),
        groups: Iterable[Group] = (),
        dids: Iterable[Did] = (),
        ivrs: Iterable[Ivr] = (),
        time_rules: Iterable[TimeRule] = (),
        queues: Iterable[Queue] = (),
        conferences: Iterable[Conference] = (),
        blacklist: Iterable[BlacklistEntry] = (),
        contacts: Mapping[str, str] | Iterable[tuple[str, str]] = (),
    ) -> "TenantConfig":
        """Index lists by number/name; contacts are keyed by canonical number."""
        pairs = contacts.items() if isinstance(contacts, Mapping) else contacts
        return cls(
            tenant=tenant,
            users=_index(users, "number"),
            groups=_index(groups, "number"),
            dids=MappingProxyType({canonical_number(d.number): d for d in dids}),
            ivrs=_index(ivrs, "number"),
            time_rules=_index(time_rules, "name"),
            queues=_index(queues, "number"),
            conferences=_index(conferences, "number"),
            blacklist=tuple(blacklist),
            contacts=MappingProxyType({canonical_number(n): name for n, name in pairs}),
        )

    def numbered(self, number: str) -> Destination | None:
        """What owns `number` in the numbering plan, as a Destination, or None."""
        for kind, table in (
            ("user", self.users),
            ("group", self.groups),
            ("ivr", self.ivrs),
            ("queue", self.queues),
            ("conference", self.conferences),
        ):
            if number in table:
                return Destination(kind, number)
        return None

    def contact_name(self, number: str) -> str | None:
        """The phonebook name of a caller number, or None."""
        key = canonical_number(number)
        return self.contacts.get(key) if key else None

    @cached_property
    def _blacklist_index(self) -> tuple[dict[str, BlacklistEntry], list[tuple[str, BlacklistEntry]]]:
        exact: dict[str, BlacklistEntry] = {}
        prefixes: list[tuple[str, BlacklistEntry]] = []
        for entry in self.blacklist:
            pattern = canonical_number(entry.pattern)
            if not pattern:
                continue
            if entry.match == "exact":
                exact.setdefault(pattern, entry)
            else:
                prefixes.append((pattern, entry))
        prefixes.sort(key=lambda p: -len(p[0]))  # the longest (most specific) prefix first
        return exact, prefixes

    def blacklisted(self, number: str) -> BlacklistEntry | None:
        """The blacklist entry refusing `number` (exact first, then the longest prefix), or None."""
        caller = canonical_number(number)
        if not caller:
            return None
        exact, prefixes = self._blacklist_index
        if caller in exact:
            return exact[caller]
        for pattern, entry in prefixes:
            if caller.startswith(pattern):
                return entry
        return None
