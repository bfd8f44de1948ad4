"""FreeSWITCH's handling of a multiset argument, transcribed to Python for tests.

Every application argument is first expanded (src/switch_channel.c,
switch_channel_expand_variables_check: here only its backslash rules, for `$`-free text).
mod_dptools' multiset then takes `^^<delim>`, splits the rest with switch_separate_string
(src/switch_utils.c: separate_string_char_delim, then cleanup_separated_string on each part)
and hands each part to base_set, which cuts `name=value` at the first `=`. This model follows
that code step by step (including where a quote pairs with one anywhere later in the text) so
that `fsctl.calllogic.plan.multiset` can be checked against it for any value; the live test
against the real build checks the model.
"""

ESCAPE_META = "\\"
_UNESCAPE = {"n": "\n", "r": "\r", "t": "\t", "s": " "}


def expand_argument(text: str) -> str:
    """The expansion of a `$`-free argument: runs only when the text holds `\\` followed by
    `\\`, n, s, t or `'`; then `\\\\` -> `\\` and `\\'` -> nothing, other text copied."""
    if not any(a == "\\" and b in "\\nst'" for a, b in zip(text, text[1:])):
        return text
    out, i = [], 0
    while i < len(text):
        if text[i] == "\\" and text[i + 1 : i + 2] == "\\":
            out.append("\\")
            i += 2
        elif text[i] == "\\" and text[i + 1 : i + 2] == "'":
            i += 2
        else:
            out.append(text[i])
            i += 1
    return "".join(out)


def base_set(part: str) -> str:
    """mod_dptools base_set: `name=value` cut at the first `=`, the value expanded (again)."""
    name, eq, value = part.partition("=")
    return f"{name}{eq}{expand_argument(value)}"


def set_app(arg: str) -> str:
    """The `name=value` the `set` application sets for its argument, as sent."""
    return base_set(expand_argument(arg))


def multiset_parts(arg: str) -> list[str]:
    """The `name=value` parts multiset sets for its argument (`^^<delim>...`), as sent."""
    return [base_set(part) for part in _split_multiset(expand_argument(arg))]


def _split_multiset(arg: str) -> list[str]:
    delim = " "
    if arg.startswith("^^"):
        delim, arg = arg[2], arg[3:]
    assert delim != " ", "the blank-delimiter variant is not modelled (fsctl never uses it)"
    return separate_string_char_delim(arg, delim)


def separate_string_char_delim(buf: str, delim: str, arraylen: int = 256) -> list[str]:
    """Split at `delim` outside quotes; a `\\` makes the next character literal."""
    parts, start, i, inside, n = [], 0, 0, False, len(buf)
    state = "START"
    while i < n and len(parts) < arraylen:
        if state == "START":
            start = i
            parts.append(None)  # filled when the part ends
            state = "FIND_DELIM"
            continue
        ch = buf[i]
        if ch == ESCAPE_META:
            i += 1  # the escaped character is skipped (C: past the end if the text ends in `\`)
        elif ch == "'" and (inside or "'" in buf[i + 1 :]):
            inside = not inside
        elif ch == delim and not inside:
            parts[-1] = buf[start:i]
            state = "START"
        i += 1
    if parts and parts[-1] is None:
        parts[-1] = buf[start:]
    return [cleanup_separated_string(p, delim) for p in parts]


def cleanup_separated_string(part: str, delim: str) -> str:
    """Leading blanks skipped, escapes resolved, unescaped paired quotes dropped, trailing blanks cut."""
    i, n = 0, len(part)
    while i < n and part[i] == " ":
        i += 1
    out, end, inside = [], None, False
    while i < n:
        ch = part[i]
        if ch == ESCAPE_META:
            nxt = part[i + 1] if i + 1 < n else ""
            if nxt and (nxt in ("'", '"', delim, ESCAPE_META) or nxt in _UNESCAPE):
                out.append(_UNESCAPE.get(nxt, nxt))
                end = len(out)
                i += 2
                continue
        if ch == "'" and (inside or "'" in part[i + 1 :]):
            inside = not inside
            if inside:
                end = len(out)
        else:
            out.append(ch)
            if ch != " " or inside:
                end = len(out)
        i += 1
    return "".join(out if end is None else out[:end])
