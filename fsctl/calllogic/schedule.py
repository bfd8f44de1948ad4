"""Time rules evaluated purely: the instant is passed in, never read from the clock (R-TIME).

Semantics, on the local wall clock of the rule's time zone (or the tenant's):
- a range `days start-end` matches on one of `days` from `start` (inclusive) to `end`
  (exclusive), to the minute; when `end <= start` it crosses midnight and its second part
  belongs to the next day (`fri 22:00-06:00` covers Saturday 00:00-06:00);
- a holiday matching the local date (and its daily time window, if any) overrides every
  range: the rule does not match;
- across DST changes the wall clock is what counts: in the repeated hour of a fall-back
  both instants are evaluated by their local time; the skipped hour of a spring-forward
  never occurs.
"""

from __future__ import annotations

from datetime import datetime, timedelta
from functools import lru_cache
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from .callconfig import WEEKDAYS, TimeRule

__all__ = ["ScheduleError", "matches", "local_time", "zone"]


class ScheduleError(ValueError):
    """A time rule that cannot be evaluated (unknown time zone, naive instant)."""


@lru_cache(maxsize=256)
def zone(name: str) -> ZoneInfo:
    """The ZoneInfo for an IANA name, or ScheduleError."""
    try:
        return ZoneInfo(name)
    except (ZoneInfoNotFoundError, ValueError, TypeError) as exc:
        raise ScheduleError(f"unknown time zone {name!r}") from exc


def local_time(now_utc: datetime, tz_name: str) -> datetime:
    """`now_utc` (aware) on the wall clock of `tz_name`."""
    if now_utc.tzinfo is None or now_utc.utcoffset() is None:
        raise ScheduleError("the instant must be timezone-aware")
    return now_utc.astimezone(zone(tz_name))


def _describe(local: datetime, tz_name: str) -> str:
    return f"local {WEEKDAYS[local.weekday()]} {local:%Y-%m-%d %H:%M} {tz_name}"


def matches(rule: TimeRule, now_utc: datetime, default_tz: str) -> tuple[bool, str]:
    """(whether the rule matches at `now_utc`, the human-readable reason)."""
    tz_name = rule.timezone or default_tz
    local = local_time(now_utc, tz_name)
    day = local.date()
    minute = local.hour * 60 + local.minute
    where = _describe(local, tz_name)

    for holiday in rule.holidays:
        t0, t1 = holiday.window
        if holiday.start_date <= day <= holiday.end_date and t0 <= minute < t1:
            label = f" {holiday.name!r}" if holiday.name else ""
            return False, f"time rule {rule.name}: holiday{label} {holiday} ({where})"

    weekday = local.weekday()
    yesterday = (day - timedelta(days=1)).weekday()
    for rng in rule.ranges:
        if rng.start < rng.end:
            hit = weekday in rng.weekdays and rng.start <= minute < rng.end
        else:
            # Crossing midnight: today's evening part, or the morning part of a range that
            # started yesterday.
            hit = (weekday in rng.weekdays and minute >= rng.start) or (yesterday in rng.weekdays and minute < rng.end)
        if hit:
            return True, f"time rule {rule.name}: range {rng} ({where})"
    if not rule.ranges:
        return False, f"time rule {rule.name}: no ranges ({where})"
    return False, f"time rule {rule.name}: outside {', '.join(str(r) for r in rule.ranges)} ({where})"
