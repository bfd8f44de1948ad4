"""Call plans: ordered, frozen steps that say what to do with a call and why.

A plan is a tuple of steps. Each step carries the `reason` (the rule that chose it, shown
by `fsctl trace`) and turns itself into FreeSWITCH application executions with the pure
`to_apps() -> [(app, arg), ...]`; the Event Socket service sends those with `sendmsg`.

Execution model (what the service does, and what `walk` simulates):
- steps run in order;
- a `Bridge` that connects ends the plan (`hangup_after_bridge=true`);
- a `Bridge` that fails (its cause is the channel variable `originate_disposition`) runs the
  steps of the first `Branch` listing that cause *instead of* the rest of the plan, or, when
  no branch lists it, carries on with the next step;
- `Hangup`, `Transfer` and `Voicemail` end the plan;
- running out of steps hangs up with the last bridge's cause (NORMAL_CLEARING if none).

Tenant text must never reach FreeSWITCH's `${...}` expansion nor split an Event Socket
message (FACTS.md, "reloadxml and the XML preprocessor"): `neutralise` replaces `$` with the
full-width dollar and drops control characters; dial strings accept a fixed alphabet only.
Every application argument is expanded before the application runs
(switch_channel_expand_variables_check, src/switch_channel.c), which also turns `\\\\` into `\\`
and deletes `\\'`; `set` and `multiset` expand each value once more (mod_dptools base_set): a
`set` value goes through `set_value`, and `multiset` escapes for those and for its own split.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from typing import Iterable, Sequence

from ..freeswitch import chanvars as cv, dialstring

__all__ = [
    "Step",
    "SetVar",
    "SetCallerName",
    "Answer",
    "Playback",
    "StartRecording",
    "Leg",
    "Branch",
    "Bridge",
    "Voicemail",
    "Transfer",
    "Hangup",
    "neutralise",
    "multiset",
    "multiset_escape",
    "setvar_multi",
    "expansion_safe",
    "expanded",
    "set_value",
    "plan_apps",
    "walk",
    "drive",
    "explain",
    "iter_steps",
]

SAFE_DOLLAR = "\uff04"  # FULLWIDTH DOLLAR SIGN: looks like '$', never expanded
_CONTROL_RE = re.compile(r"[\x00-\x1f\x7f]")
_VAR_NAME_RE = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*\Z")
# What a dial-string target (user/101@acme.example, sofia/gateway/gw/+370...) may contain.
_DIAL_TARGET_RE = re.compile(r"^[A-Za-z0-9_.@:+*#/-]+\Z")
_CAUSE_RE = re.compile(r"^[A-Z][A-Z0-9_]*\Z")
_TOKEN_RE = re.compile(r"^[A-Za-z0-9_.@+*#-]+\Z")


def neutralise(text: object) -> str:
    """Tenant text made safe for an application argument: no `$` expansion, no control chars."""
    return _CONTROL_RE.sub("", str(text)).replace("$", SAFE_DOLLAR)


def expansion_safe(text: str) -> str:
    """`$`-free text written so that one FreeSWITCH expansion gives it back.

    The expansion (src/switch_channel.c, switch_channel_expand_variables_check) turns `\\\\`
    into `\\` and deletes `\\'` (both characters), so a backslash is doubled.
    """
    return text.replace("\\", "\\\\")


def set_value(text: str) -> str:
    """The value of a `set` argument that the channel variable gets exactly.

    It is expanded twice: as the application's argument, then as the value (base_set in
    mod_dptools.c). A contact named `a\\\\'b` became `a\\'b`, and `x\\'` lost its quote.
    """
    return expansion_safe(expansion_safe(text))


def expanded(arg: str) -> str:
    """What that expansion makes of a `$`-free argument: `\\\\` -> `\\`, `\\'` -> nothing."""
    if "\\" not in arg:
        return arg
    out, i, n = [], 0, len(arg)
    while i < n:
        if arg[i] == "\\" and i + 1 < n and arg[i + 1] in "\\'":
            if arg[i + 1] == "\\":
                out.append("\\")
            i += 2
            continue
        out.append(arg[i])
        i += 1
    return "".join(out)


def _var_name(name: str) -> str:
    if not _VAR_NAME_RE.match(name or ""):
        raise ValueError(f"channel variable name {name!r} is not an identifier")
    return name


@dataclass(frozen=True)
class Step:
    """One thing to do with the call; `reason` says which rule chose it."""

    reason: str = field(default="", kw_only=True)
    terminal = False  # a step after which the plan ends

    @property
    def kind(self) -> str:
        return type(self).__name__

    def to_apps(self) -> list[tuple[str, str]]:  # pragma: no cover - abstract
        raise NotImplementedError


@dataclass(frozen=True)
class SetVar(Step):
    """Set a channel variable on the caller's channel."""

    name: str
    value: str

    def __post_init__(self):
        _var_name(self.name)

    def to_apps(self):
        return [("set", f"{self.name}={set_value(neutralise(self.value))}")]


@dataclass(frozen=True)
class SetCallerName(Step):
    """Present a caller name (from the tenant's phonebook, R-CLI)."""

    name: str

    def to_apps(self):
        return [("set", f"{cv.EFFECTIVE_CALLER_ID_NAME}={set_value(neutralise(self.name))}")]


@dataclass(frozen=True)
class Answer(Step):
    """Answer the call (`early`: pre-answer, media flows but the call is not billed yet)."""

    early: bool = False

    def to_apps(self):
        return [("pre_answer" if self.early else "answer", "")]


@dataclass(frozen=True)
class Playback(Step):
    """Play a file or tone stream to the caller."""

    file: str

    def to_apps(self):
        return [("playback", neutralise(self.file))]


@dataclass(frozen=True)
class StartRecording(Step):
    """Record the whole call (both legs) from now on, into `path` (R-REC)."""

    path: str

    def to_apps(self):
        path = neutralise(self.path)
        return [
            ("set", f"{cv.RECORD_STEREO}=true"),
            ("set", f"{cv.FSCTL_RECORDING_PATH}={path}"),
            ("record_session", path),
        ]


@dataclass(frozen=True)
class Leg:
    """One leg of a bridge: a dial target, its ring time, per-leg variables."""

    target: str
    timeout: int
    variables: tuple[tuple[str, str], ...] = ()

    def __post_init__(self):
        if not _DIAL_TARGET_RE.match(self.target or ""):
            raise ValueError(f"dial target {self.target!r} contains a forbidden character")
        if not isinstance(self.timeout, int) or self.timeout <= 0:
            raise ValueError(f"leg timeout {self.timeout!r} must be a positive number of seconds")
        for name, value in self.variables:
            _var_name(name)
            # `]` ends per-leg variables and `'` quotes a value holding `,` (the separator).
            if any(ch in value for ch in "[]'"):
                raise ValueError(f"per-leg variable {name}={value!r} may not contain [ ] or '")

    def dial_string(self) -> str:
        """`[leg_timeout=20,...]user/101@acme.example`; values neutralised, with `,` single-quoted."""
        return dialstring.leg(self.target, self.timeout, [(n, neutralise(v)) for n, v in self.variables])


@dataclass(frozen=True)
class Branch:
    """Steps to run when a bridge fails with one of `causes` (name: busy, no_answer...)."""

    name: str
    causes: frozenset[str]
    steps: tuple[Step, ...]

    def __post_init__(self):
        object.__setattr__(self, "causes", frozenset(self.causes))
        object.__setattr__(self, "steps", tuple(self.steps))
        for cause in self.causes:
            if not _CAUSE_RE.match(cause):
                raise ValueError(f"cause {cause!r} must look like USER_BUSY")


@dataclass(frozen=True)
class Bridge(Step):
    """Ring legs one after another (`sequential`, `|`) or all at once (`simultaneous`, `,`)."""

    legs: tuple[Leg, ...]
    mode: str = "sequential"
    on_fail: tuple[Branch, ...] = ()

    def __post_init__(self):
        object.__setattr__(self, "legs", tuple(self.legs))
        object.__setattr__(self, "on_fail", tuple(self.on_fail))
        if not self.legs:
            raise ValueError("a bridge needs at least one leg")
        if self.mode not in ("sequential", "simultaneous"):
            raise ValueError(f"bridge mode {self.mode!r} must be sequential or simultaneous")

    def dial_string(self) -> str:
        return dialstring.join((leg.dial_string() for leg in self.legs), self.mode)

    def to_apps(self):
        return dialstring.bridge_apps(self.dial_string())

    def branch(self, cause: str) -> Branch | None:
        """The branch to run after the bridge failed with `cause`, or None (carry on)."""
        for br in self.on_fail:
            if cause in br.causes:
                return br
        return None


@dataclass(frozen=True)
class Voicemail(Step):
    """Leave a message in a user's mailbox."""

    user: str
    domain: str
    profile: str = "default"
    terminal = True

    def __post_init__(self):
        for token in (self.user, self.domain, self.profile):
            if not _TOKEN_RE.match(token or ""):
                raise ValueError(f"voicemail argument {token!r} contains a forbidden character")

    def to_apps(self):
        return [("answer", ""), ("voicemail", f"{self.profile} {self.domain} {self.user}")]


@dataclass(frozen=True)
class Transfer(Step):
    """Hand the call to an extension of the XML dialplan (IVR, queue, conference)."""

    extension: str
    context: str
    dialplan: str = "XML"
    terminal = True

    def __post_init__(self):
        for token in (self.extension, self.context, self.dialplan):
            if not _TOKEN_RE.match(token or ""):
                raise ValueError(f"transfer argument {token!r} contains a forbidden character")

    def to_apps(self):
        return [("transfer", f"{self.extension} {self.dialplan} {self.context}")]


@dataclass(frozen=True)
class Hangup(Step):
    """End the call with a FreeSWITCH hang-up cause (mapped to a SIP status by mod_sofia)."""

    cause: str = "NORMAL_CLEARING"
    terminal = True

    def __post_init__(self):
        if not _CAUSE_RE.match(self.cause or ""):
            raise ValueError(f"hang-up cause {self.cause!r} must look like USER_BUSY")

    def to_apps(self):
        return [("hangup", self.cause)]


MULTISET_DELIMITERS = "|~!;#%@"
MULTISET_MAX = 256  # mod_dptools multiset splits into at most 256 variables


def multiset(assignments: Sequence[str]) -> tuple[str, str] | None:
    """Several `set` arguments (`name=value`) as one `multiset` application, or None.

    mod_dptools' multiset takes `^^<delimiter>` then the assignments separated by that
    character: one execution instead of one per variable, setting what the `set`s would. None
    when fewer than two are given or too many. The delimiter is one that no value holds when
    there is one (else `|`, escaped); each assignment is escaped for the expansion of its value,
    then for multiset's split (`multiset_escape`), then the whole for the expansion every
    argument goes through first.
    """
    if not 2 <= len(assignments) <= MULTISET_MAX:
        return None
    # What each `set` would have set (its argument expanded, then its value: names have no `\\`),
    # written for base_set's expansion of the value.
    parts = [expansion_safe(expanded(expanded(a))) for a in assignments]
    delim = next((d for d in MULTISET_DELIMITERS if not any(d in p for p in parts)), MULTISET_DELIMITERS[0])
    return ("multiset", f"^^{delim}" + delim.join(expansion_safe(multiset_escape(p, delim)) for p in parts))


SETVAR_MULTI_MAX = 64  # mod_commands uuid_setvar_multi splits into at most 64 variables


def setvar_multi(assignments: Sequence[str]) -> str | None:
    """Several `set` arguments (`name=value`) as the argument of the API `uuid_setvar_multi`, or None.

    The API sets the variables at once from the Event Socket's thread (mod_commands.c,
    uuid_setvar_multi_function), where an application waits for the channel's next media tick
    (FACTS.md): the plan's variables cost no tick. An API argument is not expanded, so each
    variable gets what its `set` would have set (its argument expanded twice, see `set_value`),
    escaped for the API's split on `;` (switch_separate_string, as multiset's: `multiset_escape`).
    None when there are none, too many, or one would be empty (`set` unsets an empty value).
    """
    if not 1 <= len(assignments) <= SETVAR_MULTI_MAX:
        return None
    parts = [expanded(expanded(a)) for a in assignments]
    if any(p.endswith("=") or "=" not in p for p in parts):
        return None
    return ";".join(multiset_escape(p, ";") for p in parts)


def multiset_escape(assignment: str, delim: str) -> str:
    """One `name=value` written so that multiset's split gives it back exactly.

    multiset splits with switch_separate_string (src/switch_utils.c,
    separate_string_char_delim + cleanup_separated_string): a `\\` makes the next character
    literal, so a value ending in `\\` (a contact named `Jonas\\`) swallowed the delimiter and
    the next variable with it; an unescaped `'` pairs with any later `'` of the whole argument
    and quotes what lies between (delimiters included), then is dropped; blanks at the end of
    each part are trimmed. Escaped: `\\` -> `\\\\`, `'` -> `\\'`, the delimiter -> `\\<delim>`,
    trailing blanks -> `\\s` (cleanup_separated_string turns each back into the character).
    """
    out = assignment.replace("\\", "\\\\").replace("'", "\\'").replace(delim, "\\" + delim)
    kept = out.rstrip(" ")
    return kept + "\\s" * (len(out) - len(kept))


def plan_apps(steps: Sequence[Step]) -> list[tuple[str, str]]:
    """The applications of the plan's main line (branches excluded), in order."""
    apps = []
    for step in steps:
        apps.extend(step.to_apps())
        if step.terminal:
            break
    return apps


def drive(steps: Sequence[Step]):
    """The execution model as a generator: yields each step to run; `send` a Bridge's outcome.

    The outcome is 'SUCCESS', 'ORIGINATOR_CANCEL' or the failure cause (originate_disposition).
    The service runs plans with it and `walk` simulates them with it: one model, two users.
    """
    queue = list(steps)
    while queue:
        step = queue.pop(0)
        outcome = yield step
        if step.terminal:
            return
        if isinstance(step, Bridge):
            if outcome is None or outcome in ("SUCCESS", "ORIGINATOR_CANCEL"):
                return  # answered (hangup_after_bridge) or the caller hung up
            br = step.branch(outcome)
            if br is not None:
                queue = list(br.steps)


def walk(steps: Sequence[Step], outcomes: Iterable[str] = ()) -> list[Step]:
    """The steps that run when successive bridges end with `outcomes` ('SUCCESS' or a cause).

    Bridges beyond the given outcomes are taken as answered (SUCCESS).
    """
    results = iter(outcomes)
    ran: list[Step] = []
    runner = drive(steps)
    try:
        step = next(runner)
        while True:
            ran.append(step)
            step = runner.send(next(results, "SUCCESS") if isinstance(step, Bridge) else None)
    except StopIteration:
        pass
    return ran


def iter_steps(steps: Sequence[Step], depth: int = 0, branch: str = ""):
    """Every step with its depth and the branch it belongs to, branches after their bridge."""
    for step in steps:
        yield step, depth, branch
        if isinstance(step, Bridge):
            for br in step.on_fail:
                label = f"{branch} > " if branch else ""
                label += f"{br.name} ({','.join(sorted(br.causes))})"
                yield from iter_steps(br.steps, depth + 1, label)


def explain(steps: Sequence[Step]) -> list[dict]:
    """Rows for `fsctl trace`: step, apps, reason, plus depth and branch for nested steps."""
    return [
        {
            "step": step.kind,
            "apps": [[app, arg] for app, arg in step.to_apps()],
            "reason": step.reason,
            "depth": depth,
            "branch": branch,
        }
        for step, depth, branch in iter_steps(steps)
    ]
