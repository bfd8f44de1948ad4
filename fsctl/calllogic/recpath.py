"""Where a call recording is written: the one on-disk layout (pure, shared with fsctl.services.recordings).

    <domain>/<YYYY>/<MM>/<DD>/<YYYYMMDDTHHMMSSZ>_<user>_<in|out|internal>_<counterpart>_<uuid>.wav

relative to the recordings folder; the date and stamp are the call's start in UTC, so
`fsctl rec import` can rebuild every catalogue field from the path alone.
"""

from __future__ import annotations

import re
from datetime import datetime

STAMP = "%Y%m%dT%H%M%SZ"
EXTENSION = ".wav"
ANONYMOUS = "anonymous"
DIRECTIONS = ("in", "out", "internal")


def relpath(domain: str, started_at: datetime, user: str, direction: str, counterpart: str, call_uuid: str) -> str:
    """The relative path of a recording of these facts (the caller validates domain, user, direction)."""
    counterpart = re.sub(r"[^+0-9]", "", counterpart or "")[:32] or ANONYMOUS
    if counterpart != ANONYMOUS and not re.fullmatch(r"\+?[0-9]{1,31}", counterpart):
        counterpart = ANONYMOUS
    token = re.sub(r"[^A-Za-z0-9-]", "-", call_uuid or "")[:64] or "none"
    return f"{domain}/{started_at:%Y/%m/%d}/{started_at:{STAMP}}_{user}_{direction}_{counterpart}_{token}{EXTENSION}"
