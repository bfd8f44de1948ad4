"""Tenant text made safe for FreeSWITCH XML, and the SIP digest credential (pure).

Tenant text (names, e-mail, paths) is XML-escaped by Jinja's autoescape and passed through
`xml_text` first: `$` becomes the full-width dollar (FACTS.md: `${...}` is expanded at call
time, `$${...}` at load time), control characters are dropped, and `X-PRE-PROCESS` (which the
preprocessor honours even in comments) gets non-breaking hyphens.
"""

from __future__ import annotations

import hashlib
import re

from ..calllogic.plan import neutralise

_SAFE_HYPHEN = "\u2011"  # NON-BREAKING HYPHEN


_NEUTRALISED = re.compile(r"[\x00-\x1f\x7f$-]")  # what neutralise or the X-PRE-PROCESS rule changes


def xml_text(value) -> str:
    """Tenant text made safe for a FreeSWITCH XML value: no `$` expansion, no preprocessor command."""
    if type(value) is str and not _NEUTRALISED.search(value):
        return value  # (most names and addresses: nothing to change)
    text = neutralise("" if value is None else value)
    if "-" in text and "X-PRE-PROCESS" in text.upper():  # (upper() only when it could match)
        text = re.sub("x-pre-process", lambda m: m.group(0).replace("-", _SAFE_HYPHEN), text, flags=re.I)
    return text


def a1_hash(user: str, realm: str, password: str) -> str:
    """md5(`user:realm:password`): the SIP digest credential FreeSWITCH accepts as `a1-hash`."""
    return hashlib.md5(f"{user}:{realm}:{password}".encode()).hexdigest()
