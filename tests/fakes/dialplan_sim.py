"""What FreeSWITCH's XML dialplan queues for a call: a model of mod_dialplan_xml's hunt, for tests.

Written from src/mod/dialplans/mod_dialplan_xml/mod_dialplan_xml.c (dialplan_hunt, parse_exten):
- extensions are tried in order from the first (`auto_hunt` unset); the first that *proceeds*
  ends the hunt unless it has `continue="true"`;
- conditions are ANDed: a condition whose regex fails queues its anti-actions (the extension
  then proceeds if it had any) and stops the extension (`break="on-false"`, the default);
- a condition that matches queues its actions, `$1`... taken from *its own* regex;
- `inline="true"` actions run while hunting (here: `set`), so later conditions see them;
- a `field` containing `$` is expanded from the channel's variables (missing: empty), else it
  names a caller-profile field (destination_number, caller_id_number...).

Time conditions and `break` values other than the default are not modelled: a test that meets
one gets NotImplementedError rather than a wrong answer.
"""

from __future__ import annotations

import re

_VAR_RE = re.compile(r"\$\{([A-Za-z0-9_]+)\}")
_CAPTURE_RE = re.compile(r"\$(\d)")
_TIME_ATTRS = {
    "year",
    "yday",
    "mon",
    "mday",
    "week",
    "mweek",
    "wday",
    "hour",
    "minute",
    "minute-of-day",
    "time-of-day",
    "date-time",
    "tod_tz_offset",
}


def expand(text: str, channel: dict) -> str:
    """`${name}` replaced by the channel variable (empty when unset), as switch_channel_expand_variables."""
    return _VAR_RE.sub(lambda m: str(channel.get(m.group(1), "")), text)


def hunt(context, destination: str, variables: dict | None = None, caller_id_number: str = "") -> list:
    """[(application, data)] queued for a call to `destination` in `context` (an lxml <context>)."""
    channel = dict(variables or {})
    channel.setdefault("destination_number", destination)
    channel.setdefault("caller_id_number", caller_id_number)
    queued = []
    for extension in context.iterchildren("extension"):
        if _parse_exten(extension, channel, queued) and extension.get("continue") != "true":
            break
    return queued


def _parse_exten(extension, channel, queued) -> bool:
    proceed = False
    for condition in extension.iterchildren("condition"):
        if _TIME_ATTRS & set(condition.keys()) or condition.get("break"):
            raise NotImplementedError(f"extension {extension.get('name')}: time conditions and break= are not modelled")
        field, expression = condition.get("field"), expand(condition.get("expression") or "", channel)
        if field is None:
            match, proceed = None, True
        else:
            value = expand(field, channel) if "$" in field else str(channel.get(field, ""))
            match = re.search(expression, value)  # PCRE; fsctl's patterns are in the common subset
            if match is None:
                proceed = False  # (switch_regex_perform's result), unless anti-actions follow
                for anti in condition.iterchildren("anti-action"):
                    queued.append((anti.get("application"), anti.get("data")))
                    proceed = True
                return proceed
            proceed = True
        for action in condition.iterchildren("action"):
            data = action.get("data")
            if data is not None and match is not None and "(" in expression:
                data = _CAPTURE_RE.sub(
                    lambda m: match.group(int(m.group(1))) or "" if int(m.group(1)) <= (match.re.groups or 0) else "",
                    data,
                )
            if action.get("inline") == "true":
                if action.get("application") != "set":
                    raise NotImplementedError(f"inline {action.get('application')} is not modelled")
                name, _, value = (data or "").partition("=")
                channel[name] = expand(value, channel)
            else:
                queued.append((action.get("application"), data))
    return proceed
