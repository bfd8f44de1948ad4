"""Validate generated FreeSWITCH XML before FreeSWITCH sees it (lxml; rules from FACTS.md).

FreeSWITCH's own parser is lenient and its preprocessor silently drops lines (FACTS.md,
"reloadxml and the XML preprocessor"), so a broken file can load with `+OK [Success]` and
lose users or routes. Two levels:

- `check_file(path, relpath)` -> a *summary* (plain, JSON-serialisable dict: names the file
  defines and references it makes) or `XmlCheckError` with every problem of that file:
  well-formed, root `<include>` with the expected children, `<include>`/`</include>` alone
  on their lines, no `<?`, `$${` or `X-PRE-PROCESS`, `${...}` only for known variables,
  regexes anchored `^...$`, actions only in the last condition, no time attribute mixed with
  `field=`, the time zone set before any time condition, users with an a1-hash and no
  password.
- `check_tree(summaries)` -> problems across files: duplicate domains, contexts, extensions,
  users, IVR menus, conference profiles, queues, agents; every transfer target, user, menu,
  queue, profile and agent referenced exists; no tenant context bridges to another
  tenant's user.

Summaries are cheap to keep (apply caches them per file), so validating a tree after one
tenant changed only parses that tenant's files.

Why one module of ~620 lines: it is a rule table (one checker per kind of file) over one
summary format; the per-file and cross-file halves agree on that format field by field.
"""

from __future__ import annotations

import re
from pathlib import Path

from lxml import etree

from ..errors import OperationError
from . import chanvars as cv

# The variables fsctl's templates may expand with ${...}; tenant text never produces `${`.
# Transfer targets known only at call time: the fallback's `$1` (fsctl_resume, each value
# checked where it is set) and the digits a user keys in to transfer a call.
DYNAMIC_TARGETS = frozenset({"$1", "${digits}"})
ALLOWED_VARIABLES = frozenset(
    {
        "dialed_domain",
        "dialed_user",
        "sofia_contact",
        "destination_number",
        "user_name",
        "digits",
        cv.DOMAIN_NAME,
        cv.FSCTL_IN_FALLBACK,
        cv.FSCTL_TOLL,
        cv.FSCTL_TIMERULE_HIT,
        cv.OUTBOUND_CALLER_ID,
        cv.FSCTL_RECORD,
        cv.FSCTL_RESUME,
        cv.FSCTL_DID,
        cv.FSCTL_OUTBOUND_NAME,
        cv.CALLER_ID_NAME_VAR,
    }
)
# Expected children of <include> per kind of file (the first folder of the relative path).
ROOT_CHILDREN = {
    "directory": "domain",
    "dialplan": "context",
    "ivr": "menu",
    "conference": "profile",
    "callcenter/queues": "queue",
    "callcenter/agents": "agent",
    "callcenter/tiers": "tier",
}
TIME_ATTRS = (
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
)
_LEG_USER_RE = re.compile(r"^user/([^@]+)@(.+)\Z")
_LEG_PREFIX_RE = re.compile(r"^(\[[^\]]*\]|\{[^}]*\}|<[^>]*>)+")
_LEG_SPLIT_RE = re.compile(r"[,|]")
_UNESCAPE_RE = re.compile(r"\\(.)")
# A run of literal characters or one escaped character; atomic (`(?>...)`, `*+`): the characters
# that end a run (`(`, `|`, `)`, `$`) are never literal, so nothing is given back, and a long
# alternation is matched run by run, in linear time.
_LIT = r"(?>[^\\.^$*+?{}\[\]|()]+|\\.)"
_LITERAL_ALTS_RE = re.compile(rf"^\^({_LIT}*+)(?:\(({_LIT}++(?:\|{_LIT}++)*+)\))?({_LIT}*+)\$$")
_ALTERNATIVE_RE = re.compile(rf"{_LIT}++")


def _alternatives(group):
    """The alternatives of a matched `(a|b\\|c)` group's text: split on `|` unless escaped."""
    return group.split("|") if "\\" not in group else _ALTERNATIVE_RE.findall(group)


class XmlCheckError(OperationError):
    """Generated XML that must not reach FreeSWITCH; `.problems` lists every finding."""

    def __init__(self, problems):
        self.problems = list(problems)
        more = f" (and {len(self.problems) - 1} more)" if len(self.problems) > 1 else ""
        super().__init__(f"generated XML refused: {self.problems[0]}{more}")


def kind_of(relpath: str) -> str:
    """The kind of a rendered file from its relative path (directory, dialplan, ivr, ...)."""
    parts = relpath.split("/") if isinstance(relpath, str) else Path(relpath).parts
    if parts and parts[0] == "callcenter" and len(parts) > 2:
        return f"callcenter/{parts[1]}"
    return parts[0] if parts else ""


def _unescape(text):
    """A regex literal's text: `\\*97` -> `*97`."""
    return _UNESCAPE_RE.sub(r"\1", text) if "\\" in text else text


def literal_alternatives(expression: str):
    """What `$1` can be in an anchored literal regex (`^vm-(101|102)$`; `^101$`: the literal), else None."""
    m = _LITERAL_ALTS_RE.match(expression or "")
    if not m:
        return None
    prefix, group, suffix = m.groups()
    if group is None:
        return [_unescape(prefix + suffix)] if prefix + suffix else None
    if "\\" not in group:
        return group.split("|")
    return [_unescape(alt) for alt in _alternatives(group)]


# After every `${`: the variable name, or "" when no name follows (one C-level scan per text).
_VARIABLE_RE = re.compile(r"\$\{([A-Za-z_][A-Za-z0-9_]*)?")


def _variables(text):
    """The names after every `${` of a text."""
    return set(_VARIABLE_RE.findall(text))


def _variables_and_load_time(text):
    """(the names after every `${`, whether one of them is a `$${`): one scan of the text."""
    names, load_time = set(), False
    for m in _VARIABLE_RE.finditer(text):
        names.add(m.group(1) or "")
        if not load_time and m.start() and text[m.start() - 1] == "$":
            load_time = True
    return names, load_time


def _stripped_bounds(text):
    """(start, end) of `text.strip()` without copying the text (a tenant file can be large)."""
    start, end = 0, len(text)
    while start < end and text[start].isspace():
        start += 1
    while end > start and text[end - 1].isspace():
        end -= 1
    return start, end


def _text_problems(text, relpath):
    """Line rules of the preprocessor (FACTS.md): a fast pass on the whole text, lines only on a hit."""
    problems = []
    start, end = _stripped_bounds(text)
    if not (text.startswith("<include>\n", start, end) and text.endswith("\n</include>", start, end)):
        problems.append(f"{relpath}: must start with a line <include> and end with a line </include>")
    names, load_time = _variables_and_load_time(text)
    # Whole-text scans, as few as possible (a broader test only costs a line pass that finds nothing):
    # with the first and last lines checked above, two "include>" are exactly one <include> and one
    # </include>; "<?" needs a "?", rare in generated XML.
    suspicious = (
        problems
        or text.count("include>") != 2  # (alone on the first/last line: above)
        or ("?" in text and "<?" in text)
        or load_time
        or "X-PRE-PROCESS" in text
        or not names <= ALLOWED_VARIABLES
    )
    if suspicious:
        problems += _line_problems(text, relpath)
    return problems


def _line_problems(text, relpath):
    problems = []
    for number, line in enumerate(text.splitlines(), 1):
        stripped = line.strip()
        if ("<include>" in line or "</include>" in line) and stripped not in ("<include>", "</include>"):
            problems.append(
                f"{relpath} line {number}: <include> shares its line with other text "
                "(the preprocessor drops the whole line)"
            )
        if "<?" in line:
            problems.append(f"{relpath} line {number}: '<?' (the preprocessor drops the line)")
        if "$${" in line:
            problems.append(f"{relpath} line {number}: '$${{' (expanded when FreeSWITCH loads the file)")
        if "X-PRE-PROCESS" in line:
            problems.append(f"{relpath} line {number}: X-PRE-PROCESS in a generated file")
        for name in sorted(_variables(line)):
            if name not in ALLOWED_VARIABLES:
                problems.append(f"{relpath} line {number}: ${{{name}}} is not a variable fsctl renders")
    return problems


def _new_summary(kind):
    return {
        "kind": kind,
        "domains": [],
        "users": {},
        "contexts": {},
        "menus": [],
        "profiles": [],
        "queues": [],
        "agents": [],
        "tiers": [],
        "refs": [],
    }


def check_file(path, relpath: str) -> dict:
    """Check one rendered file; return its summary or raise XmlCheckError with every problem."""
    kind = kind_of(relpath)
    with open(path, "rb") as fh:
        data = fh.read()  # one file: a tenant's share of the tree, never the whole tree
    problems = _text_problems(data.decode("utf-8", "replace"), relpath)
    summary = _new_summary(kind)
    try:
        # (Whitespace between elements is not kept: no checker reads it, and it is a third of the nodes.)
        root = etree.fromstring(data, etree.XMLParser(resolve_entities=False, huge_tree=True, remove_blank_text=True))
    except etree.XMLSyntaxError as exc:
        raise XmlCheckError(problems + [f"{relpath}: not well-formed XML: {exc}"]) from None
    expected = ROOT_CHILDREN.get(kind)
    if expected is None:
        problems.append(f"{relpath}: unknown kind of file (expected one of {', '.join(ROOT_CHILDREN)})")
    if root.tag != "include":
        problems.append(f"{relpath}: root element is <{root.tag}>, expected <include>")
    for child in root:
        if not isinstance(child.tag, str):
            continue
        if child.tag != expected:
            problems.append(f"{relpath} line {child.sourceline}: <{child.tag}> where <{expected}> is expected")
            continue
        _CHECKERS[kind](child, relpath, summary, problems)
    if problems:
        raise XmlCheckError(problems)
    return summary


def _where(relpath, el):
    return f"{relpath} line {el.sourceline}"


# Where FreeSWITCH looks a user up (src/switch_xml.c, switch_xml_locate_user): each
# <groups><group><users><user>, then the domain's own <user> children. A user anywhere else is
# invisible to it, so it is not a user here either (references to it fail).
_USER_PATHS = (("groups", "group", "users", "user"), ("user",))
# Param names FreeSWITCH compares case-insensitively (strcasecmp in mod_sofia): `Password` is a password.
_CREDENTIALS = frozenset({"password", "a1-hash", "reverse-auth-pass"})
_A1_RE = re.compile(r"[0-9a-f]{32}")
_A1_FULLMATCH = _A1_RE.fullmatch
# User params that are no credential (exact names; any other name is looked at closely).
_NOT_CREDENTIALS = frozenset(
    {
        "vm-password",
        "vm-mailto",
        "vm-email-all-messages",
        "vm-attach-file",
        "dial-string",
        "vm-enabled",
        "vm-notify-mailto",
        "vm-keep-local-after-email",
    }
)


def _children(el, path):
    """The elements at `path` (tag by tag, children only) below `el`."""
    level = [el]
    for tag in path:
        level = [child for parent in level for child in parent.iterchildren(tag)]
    return level


def _credential_problems(user):
    """What is wrong with a user's credentials (FACTS.md: none means no authentication)."""
    a1_values, password = [], False
    for params in user.iterchildren("params"):
        for param in params.iterchildren("param"):
            key = (param.get("name") or "").lower()
            if key == "a1-hash":
                a1_values.append(param.get("value") or "")
            elif key == "password":
                password = True
    if len(a1_values) == 1 and not password and _A1_RE.fullmatch(a1_values[0]):
        return ()  # (the common case, first)
    found = []
    if not a1_values or not all(_A1_RE.fullmatch(v) for v in a1_values):
        found.append("has no a1-hash")
    elif len(a1_values) > 1:  # (FreeSWITCH would take the last one: ambiguous)
        found.append("has more than one a1-hash")
    if password:
        found.append("has a plain password")
    return found


def _check_domain(el, relpath, summary, problems):
    name = el.get("name") or ""
    if not name:
        problems.append(f"{_where(relpath, el)}: <domain> without a name")
    summary["domains"].append(name)
    ids = summary["users"].setdefault(name, [])
    seen = set(ids)
    for path in _USER_PATHS:
        for user in _children(el, path):  # one pass: ids and credentials of every user
            uid = user.get("id") or ""
            if not uid:
                problems.append(f"{_where(relpath, user)}: <user> without an id in {name}")
            elif uid in seen:
                problems.append(f"{relpath}: duplicate user {uid} in domain {name}")
            seen.add(uid)
            ids.append(uid)
            # The common case in one lean pass: exactly one param named "a1-hash" (32 hex digits)
            # and every other name one that is no credential in any case. Anything else:
            # _credential_problems looks again and says what is wrong.
            # (One C-level walk over every param below the user, a superset of its params/param;
            # then the a1-hash param found must sit in the user's own <params>.)
            a1, count, other = None, 0, False
            for param in user.iter("param"):
                key = param.get("name")
                if key == "a1-hash":
                    count += 1
                    a1 = param
                elif key not in _NOT_CREDENTIALS:
                    other = True
            if count == 1 and not other:
                parent = a1.getparent()
                other = parent.tag != "params" or parent.getparent() is not user
            if count != 1 or other or not _A1_FULLMATCH(a1.get("value") or ""):
                for problem in _credential_problems(user):
                    problems.append(f"{_where(relpath, user)}: user {uid} of {name} {problem}")
    # FreeSWITCH merges the domain's and the group's params into each user (switch_xml_merge_user):
    # a credential there would be every user's.
    for params in _children(el, ("params",)) + _children(el, ("groups", "group", "params")):
        for param in params.iterchildren("param"):
            if (param.get("name") or "").lower() in _CREDENTIALS:
                problems.append(
                    f"{_where(relpath, param)}: param {param.get('name')} shared by every user of {name}"
                    " (credentials belong to one user)"
                )


def _bridge_refs(data, alternatives, context, line):
    refs = []
    for leg in _LEG_SPLIT_RE.split(data):
        leg = _LEG_PREFIX_RE.sub("", leg.strip())
        m = _LEG_USER_RE.match(leg)
        if not m:
            continue
        user, domain = m.groups()
        users = alternatives if user == "$1" and alternatives else [user]
        # One reference for every user the leg can reach (check_tree reports each user).
        refs.append({"type": "user", "users": users, "domain": domain, "from": context, "line": line})
    return refs


def _transfer_ref(words, context, line):
    if words and words[0] in ("-bleg", "-both"):
        words = words[1:]  # which leg moves; the target follows
    if len(words) >= 3 and words[1] == "XML":
        return {"type": "transfer", "target": words[0], "context": words[2], "from": context, "line": line}
    return {"type": "bad", "what": "transfer without an XML context", "line": line}


def _action_refs(app, data, alternatives, context, line):
    words = data.split()
    if app == "transfer" and words:
        return [_transfer_ref(words, context, line)]
    if app == "sched_transfer" and len(words) >= 2:
        return [_transfer_ref(words[1:], context, line)]
    if app == "bridge":
        return _bridge_refs(data, alternatives, context, line)
    if app == "ivr":
        return [{"type": "menu", "name": data, "line": line}]
    if app == "callcenter":
        return [{"type": "queue", "name": data, "line": line}]
    if app == "conference" and "@" in data:
        return [{"type": "profile", "name": data.split("@", 1)[1].split("+", 1)[0], "line": line}]
    if app == "voicemail" and len(words) >= 3 and words[0] == "default":
        users = alternatives if words[2] == "$1" and alternatives else [words[2]]
        return [{"type": "user", "users": users, "domain": words[1], "from": context, "line": line}]
    return []


_TIME_ATTR_SET = frozenset(TIME_ATTRS)
# Applications whose data references something (_action_refs); the others have no references.
_REF_APPS = frozenset({"transfer", "sched_transfer", "bridge", "ivr", "callcenter", "conference", "voicemail"})


def _check_context(el, relpath, summary, problems):
    name = el.get("name") or ""
    if not name:
        problems.append(f"{_where(relpath, el)}: <context> without a name")
    if name in summary["contexts"]:
        problems.append(f"{_where(relpath, el)}: context {name} twice in one file")
    ctx = summary["contexts"].setdefault(name, {"extensions": [], "patterns": []})
    ext_names, patterns, refs = ctx["extensions"], ctx["patterns"], summary["refs"]
    seen = set(ext_names)
    timezone_set = False
    for ext in el.iterchildren("extension"):
        ext_name = ext.get("name") or ""
        if ext_name in seen:
            problems.append(f"{_where(relpath, ext)}: extension {ext_name} twice in context {name}")
        seen.add(ext_name)
        ext_names.append(ext_name)
        conditions = list(ext.iterchildren("condition"))
        last = len(conditions) - 1
        destination = None  # the first condition's destination regex: what `$1` can be
        for i, cond in enumerate(conditions):
            expression = cond.get("expression")
            if expression is not None and not (expression.startswith("^") and expression.endswith("$")):
                problems.append(f"{_where(relpath, cond)}: regex {expression!r} is not anchored ^...$")
            field = cond.get("field")
            keys = cond.keys()
            if not _TIME_ATTR_SET.isdisjoint(keys):
                times = [a for a in TIME_ATTRS if a in keys]
                if field is not None:
                    problems.append(f"{_where(relpath, cond)}: time attribute {times[0]} mixed with field=")
                if not timezone_set:
                    problems.append(f"{_where(relpath, cond)}: time condition before the time zone is set")
            if field == "destination_number" and i == 0:
                # A transfer target must reach an extension that ends the hunt, not a continue="true" one.
                if ext.get("continue") != "true":
                    patterns.append(expression or "")
                destination = expression or ""
            first = True
            for act in cond.iterchildren("action", "anti-action"):  # (in document order)
                if first and i != last:
                    # FACTS.md: actions of a matching condition run even if a later condition fails.
                    problems.append(f"{_where(relpath, cond)}: actions in a condition that is not the last one")
                first = False
                app = act.get("application") or ""
                if app == "set":
                    if (
                        not timezone_set
                        and act.get("inline") == "true"
                        and (act.get("data") or "").startswith("timezone=")
                    ):
                        timezone_set = True
                elif app in _REF_APPS:
                    data = act.get("data") or ""
                    alternatives = literal_alternatives(destination) if destination and "$1" in data else None
                    for ref in _action_refs(app, data, alternatives, name, act.sourceline):
                        ref["file"] = relpath
                        refs.append(ref)


def _check_menu(el, relpath, summary, problems):
    summary["menus"].append(el.get("name") or "")
    for entry in el.iterfind("entry"):
        words = (entry.get("param") or "").split()
        if words and words[0] in ("transfer", "bridge"):
            for ref in _action_refs(words[0], " ".join(words[1:]), None, None, entry.sourceline):
                ref["file"] = relpath
                summary["refs"].append(ref)


def _check_profile(el, relpath, summary, problems):
    summary["profiles"].append(el.get("name") or "")


def _cc_argument_problems(el, relpath, attributes, problems):
    """mod_callcenter's callcenter_config splits its arguments on spaces: names must have none."""
    for attribute in attributes:
        value = el.get(attribute) or ""
        if not value or any(ch.isspace() or ch in "'\"" for ch in value):
            problems.append(
                f"{_where(relpath, el)}: <{el.tag}> {attribute} {value!r} must be one word"
                " (callcenter_config arguments are split on spaces)"
            )


def _check_queue(el, relpath, summary, problems):
    summary["queues"].append(el.get("name") or "")
    _cc_argument_problems(el, relpath, ("name",), problems)


def _check_agent(el, relpath, summary, problems):
    summary["agents"].append(el.get("name") or "")
    _cc_argument_problems(el, relpath, ("name",), problems)
    if not el.get("type"):  # (mod_callcenter's load_config skips an agent without one)
        problems.append(f"{_where(relpath, el)}: agent {el.get('name')} has no type")
    for ref in _bridge_refs(el.get("contact") or "", None, None, el.sourceline):
        ref["file"] = relpath
        summary["refs"].append(ref)


def _check_tier(el, relpath, summary, problems):
    agent, queue = el.get("agent") or "", el.get("queue") or ""
    summary["tiers"].append([agent, queue])
    _cc_argument_problems(el, relpath, ("agent", "queue"), problems)
    for attribute in ("level", "position"):
        if not (el.get(attribute) or "").isdigit():
            problems.append(f"{_where(relpath, el)}: tier {agent} in {queue} has no numeric {attribute}")
    summary["refs"].append({"type": "agent", "name": agent, "line": el.sourceline, "file": relpath})
    summary["refs"].append({"type": "queue", "name": queue, "line": el.sourceline, "file": relpath})


_CHECKERS = {
    "directory": _check_domain,
    "dialplan": _check_context,
    "ivr": _check_menu,
    "conference": _check_profile,
    "callcenter/queues": _check_queue,
    "callcenter/agents": _check_agent,
    "callcenter/tiers": _check_tier,
}


def check_tree(summaries: dict, public_contexts=("fsctl-public",), refs_from=None) -> list[str]:
    """Problems across the files of one tree ({relpath: summary}); [] when it is consistent.

    `refs_from` limits the reference checks to those files (the others were checked when they
    were written, and a tenant's files only reach into that tenant); duplicates are always
    checked over the whole tree.
    """
    problems = []
    owners = {}
    order = sorted(summaries)
    for what in ("domains", "menus", "profiles", "queues", "agents"):
        seen = {}
        for rel in order:
            for name in summaries[rel].get(what, ()):
                if name in seen:
                    problems.append(f"{rel}: duplicate {what[:-1]} {name} (also in {seen[name]})")
                else:
                    seen[name] = rel
        owners[what] = seen
    contexts, users = {}, {}
    for rel in order:
        s = summaries[rel]
        for name, ctx in s.get("contexts", {}).items():
            if name in contexts:
                problems.append(f"{rel}: duplicate context {name} (also in {contexts[name][0]})")
            else:
                contexts[name] = (rel, [p for p in ctx["patterns"] if p])
        for domain, ids in s.get("users", {}).items():
            # A domain in two files is reported above; within a file check_file reports duplicates.
            users.setdefault(domain, set(ids))
    tiers, matchers = set(), {}
    for rel in order:
        for agent, queue in summaries[rel].get("tiers", ()):
            if (agent, queue) in tiers:
                problems.append(f"{rel}: duplicate tier {agent} in {queue}")
            tiers.add((agent, queue))
        if refs_from is not None and rel not in refs_from:
            continue
        for ref in summaries[rel].get("refs", ()):
            if ref["type"] == "user":
                found = _user_ref_problems(ref, users, public_contexts)
                if found:
                    where = f"{ref.get('file', rel)} line {ref.get('line')}"
                    problems += [f"{where}: {problem}" for problem in found]
                continue
            problem = _check_ref(ref, contexts, owners, public_contexts, matchers)
            if problem:
                problems.append(f"{ref.get('file', rel)} line {ref.get('line')}: {problem}")
    return problems


# An escaped letter, digit or underscore is a class or an anchor (\\d, \\b...), not a literal.
_ESCAPED_WORD_RE = re.compile(r"\\[A-Za-z0-9_]")


def _literal_strings(pattern):
    """Every string an anchored literal regex (`^101$`, `^vm-(101|102)$`) fully matches, else None."""
    m = _LITERAL_ALTS_RE.match(pattern)
    if not m or _ESCAPED_WORD_RE.search(pattern):
        return None
    prefix, group, suffix = m.groups()
    alts = _alternatives(group) if group is not None else [""]
    if "\\" not in pattern:  # (the common case: extension numbers and names)
        return {prefix + alt + suffix for alt in alts} if prefix or suffix else set(alts)
    return {_unescape(prefix + alt + suffix) for alt in alts}


def _matcher(patterns):
    """(literal strings, other patterns) of a context: a set look-up before any regex."""
    literals, others = set(), []
    for pattern in patterns:
        strings = _literal_strings(pattern)
        if strings is None:
            others.append(pattern)
        else:
            literals |= strings
    return literals, others


def _matches(patterns, target, cache={}):  # noqa: B006 - a cache of compiled patterns
    for pattern in patterns:
        compiled = cache.get(pattern)
        if compiled is None:
            if len(cache) > 10000:
                cache.clear()
            compiled = cache[pattern] = re.compile(pattern)
        if compiled.fullmatch(target):
            return True
    return False


def _user_ref_problems(ref, users, public_contexts):
    """A reference to users (every user a leg or a mailbox can be): one problem per bad user."""
    origin, domain = ref.get("from"), ref["domain"]
    if origin and origin not in public_contexts and domain != origin:
        return [f"context {origin} reaches user {u}@{domain} of another tenant" for u in ref["users"]]
    known = users.get(domain, _NO_USERS)
    if known.issuperset(ref["users"]):  # (the common case, in one C call)
        return []
    return [f"user {u}@{domain} is not in the directory" for u in ref["users"] if u not in known]


_NO_USERS = frozenset()


def _check_ref(ref, contexts, owners, public_contexts, matchers):
    """The problem with a reference other than to users (_user_ref_problems), or None."""
    kind = ref["type"]
    if kind == "bad":
        return ref["what"]
    if kind == "transfer":
        ctx = contexts.get(ref["context"])
        if ctx is None:
            return f"transfer to {ref['target']} in context {ref['context']}, which does not exist"
        if ref["from"] and ref["from"] not in public_contexts and ref["context"] != ref["from"]:
            return f"context {ref['from']} transfers into another tenant's context {ref['context']}"
        # `$1` (the fallback extension resuming `fsctl_resume`) is known only at call time; the
        # values it takes are hand-off numbers, each checked where it is set.
        target = ref["target"]
        if target not in DYNAMIC_TARGETS:
            matcher = matchers.get(ref["context"])
            if matcher is None:
                matcher = matchers[ref["context"]] = _matcher(ctx[1])
            if target not in matcher[0] and not _matches(matcher[1], target):
                return f"transfer to {target}: no extension of context {ref['context']} matches it"
        return None
    table = {"menu": "menus", "queue": "queues", "profile": "profiles", "agent": "agents"}[kind]
    if ref["name"] not in owners[table]:
        return f"{kind} {ref['name']} is referenced but not defined"
    return None


def slim(summary: dict) -> dict:
    """What other files are checked against: names and transfer patterns (no references, users,
    extension names or empty lists: apply keeps one per file of the tree, read on every apply).

    (References only reach into the referring tenant's own files, which are re-checked with it.)
    """
    out = {k: v for k, v in summary.items() if v and k not in ("refs", "users", "contexts")}
    if summary.get("contexts"):
        out["contexts"] = {name: {"patterns": ctx["patterns"]} for name, ctx in summary["contexts"].items()}
    return out


def check_paths(root, relpaths) -> dict:
    """Check the files `relpaths` under `root` and the tree they form; {relpath: summary} or XmlCheckError."""
    summaries, problems = {}, []
    for rel in relpaths:
        try:
            summaries[rel] = check_file(Path(root) / rel, rel)
        except XmlCheckError as exc:
            problems += exc.problems
    if problems:
        raise XmlCheckError(problems)
    problems = check_tree(summaries)
    if problems:
        raise XmlCheckError(problems)
    return summaries
