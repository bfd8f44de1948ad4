"""The installation steps of README "Installing on a stock FreeSWITCH", as edits of its XML files.

`fsctl freeswitch setup /etc/freeswitch` runs them; the live tests run the same function on a
copy of the stock configuration, so the README's install section is what is tested. Every
step is idempotent: a second run changes nothing.

The files are edited as text, line by line, so that everything else in them (comments, the
`X-PRE-PROCESS` lines, the stock layout) stays as it was; each result is parsed with lxml
before it replaces the original (`os.replace`). What the steps need to know about the
preprocessor (FACTS.md "reloadxml and the XML preprocessor"): a line holding `<include>` or
`<?` is dropped, so every line written here is one element on a line of its own, and
`X-PRE-PROCESS` runs even inside a comment, so an include line is "present" wherever it is.

The values are data below (one home): the profile parameters, the include lines, the modules.
`conf/freeswitch/*.xml` shows the same settings for reading; tests/fsctl/test_freeswitch_setup.py
keeps them equal.
"""

from __future__ import annotations

import os
import re
import tempfile
from dataclasses import dataclass
from pathlib import Path

from ..errors import OperationError, ValidationError

PUBLIC_CONTEXT = "fsctl-public"

# Step 1: fsctl's rendered folders, included into the stock files: (file, container, folder).
INCLUDES = (
    ("freeswitch.xml", 'section name="directory"', "directory"),
    ("freeswitch.xml", 'section name="dialplan"', "dialplan"),
    ("autoload_configs/ivr.conf.xml", "menus", "ivr"),
    ("autoload_configs/conference.conf.xml", "profiles", "conference"),
    ("autoload_configs/callcenter.conf.xml", "queues", "callcenter/queues"),
    ("autoload_configs/callcenter.conf.xml", "agents", "callcenter/agents"),
    ("autoload_configs/callcenter.conf.xml", "tiers", "callcenter/tiers"),
)

# Step 2: SIP profiles (FACTS.md "Multi-tenant SIP"). Profile parameters apply when the
# profile starts (`sofia profile internal restart`), not on reloadxml.
INTERNAL_PROFILE = (
    # Off (None: no such parameter; a live one is commented out), or REGISTER 101@acme.example is
    # refused 403 against the profile's own domain. The stock 1.11.3 file has them commented out
    # already; older stock files have them live.
    ("force-register-domain", None),
    ("force-subscription-domain", None),
    ("force-register-db-domain", None),
    # The digest realm is the From host: acme.example's users authenticate in acme.example.
    ("challenge-realm", "auto_from"),
    # A phone and a softphone of the same user both ring.
    ("multiple-registrations", "contact"),
    # Always challenge: fsctl renders an a1-hash for every user, never an empty credential.
    ("auth-calls", "true"),
    ("accept-blind-reg", "false"),
    ("accept-blind-auth", "false"),
    # Calls from users run in their tenant's context (the directory sets user_context).
    ("context", "public"),
)
EXTERNAL_PROFILE = (
    # Calls from the carriers: every DID hands its call to its tenant (dialplan/public.xml).
    ("context", PUBLIC_CONTEXT),
    # A carrier's leg never transfers: obeyed, an outside caller's REFER would send the answering
    # user's leg, with the user's toll class, to any number the caller names (toll fraud).
    ("disable-transfer", "true"),
)


# Step 3: the Event Socket, on loopback with the operator's own password.
def event_socket_params(port: int, password: str) -> tuple:
    return (
        ("nat-map", "false"),
        ("listen-ip", "127.0.0.1"),
        ("listen-port", str(port)),
        ("password", password),
        ("apply-inbound-acl", "loopback.auto"),
    )


# Step 4: the modules fsctl's XML and the call-logic service use.
MODULES = (
    "mod_sofia",
    "mod_event_socket",
    "mod_commands",
    "mod_dptools",
    "mod_dialplan_xml",
    "mod_voicemail",
    "mod_conference",
    "mod_callcenter",
    "mod_sndfile",
    "mod_native_file",
    "mod_local_stream",
    "mod_tone_stream",
    "mod_xml_cdr",
)


# Step 5: the call log's safety net, one mod_xml_cdr file per leg (README "The safety net").
def xml_cdr_params(log_dir: str) -> tuple:
    return (
        ("log-dir", log_dir),
        # Both legs: the legs a call rang tell who missed it (group members, queue agents).
        ("log-b-leg", "true"),
        ("prefix-a-leg", "true"),
        # No dated subfolders on SIGHUP.
        ("rotate", "false"),
    )


# Step 6: how many new channels FreeSWITCH accepts per second (stock 30; both legs of a call count).
DEFAULT_SESSIONS_PER_SECOND = 100

STOCK_ESL_PASSWORD = "ClueCon"
_SAFE_VALUE = re.compile(r"^[A-Za-z0-9._~+=:@%^*!#/,-]+$")
_COMMENT = re.compile(r"<!--.*?-->", re.S)


@dataclass(frozen=True)
class Change:
    """One edit of one file, for people: `sip_profiles/internal.xml: context "public" (was "default")`."""

    path: str
    what: str

    def __str__(self):
        return f"{self.path}: {self.what}"


def include_line(folder: str, fsctl_dir: str) -> str:
    """The include line of one of fsctl's rendered folders (`$${conf_dir}` is FreeSWITCH's conf folder)."""
    return f'<X-PRE-PROCESS cmd="include" data="{fsctl_dir}/{folder}/*.xml"/>'


def fsctl_dir_reference(conf: Path, fsctl_conf_dir: str) -> str:
    """`$${conf_dir}/fsctl` when fsctl writes into FreeSWITCH's own conf folder, else the absolute path."""
    target = Path(fsctl_conf_dir).resolve()
    if target == (Path(conf) / "fsctl").resolve():
        return "$${conf_dir}/fsctl"
    return str(target)


class _File:
    """One XML file being edited as text."""

    def __init__(self, conf: Path, rel: str):
        self.rel = rel
        self.path = conf / rel
        try:
            self.text = self.path.read_text(encoding="utf-8")
        except FileNotFoundError:
            raise OperationError(f"{self.path}: not found; is this a FreeSWITCH configuration folder?") from None
        self.original = self.text
        self.changes: list[Change] = []

    def _comments(self):
        return [m.span() for m in _COMMENT.finditer(self.text)]

    def _live(self, pattern, start=0, end=None):
        """Matches of `pattern` outside comments, between start and end."""
        spans = self._comments()
        end = len(self.text) if end is None else end
        return [
            m
            for m in re.finditer(pattern, self.text[:end])
            if m.start() >= start and not any(a <= m.start() < b for a, b in spans)
        ]

    def block(self, tag_open: str):
        """(start of the inside, start of the closing tag line) of the first live `<tag_open ...>` element."""
        name = tag_open.split()[0]
        opening = self._live(r"<" + re.escape(tag_open) + r"(\s[^>]*)?>")
        if not opening:
            raise OperationError(f"{self.path}: no <{tag_open}> element (not a stock FreeSWITCH file?)")
        start = opening[0].end()
        closing = self._live(r"</" + re.escape(name) + r"\s*>", start)
        if not closing:
            raise OperationError(f"{self.path}: <{tag_open}> is not closed")
        line_start = self.text.rfind("\n", 0, closing[0].start()) + 1
        return start, line_start, closing[0].start()

    def insert_before_close(self, tag_open: str, line: str):
        _start, line_start, close = self.block(tag_open)
        indent = re.match(r"[ \t]*", self.text[line_start:close]).group(0) + "  "
        if self.text[line_start:close].strip():  # the closing tag shares its line: start a new one
            self.text = self.text[:close] + "\n" + indent + line + "\n" + self.text[close:]
        else:
            self.text = self.text[:line_start] + indent + line + "\n" + self.text[line_start:]

    def set_param(self, block: str, name: str, value: str | None):
        """`<param name=NAME value=VALUE/>` inside the first live `block`: replaced, or added at its end.

        `value=None`: the parameter must not be there; each live occurrence is commented out.
        """
        start, _line, close = self.block(block)
        pattern = r'<param\s+name="' + re.escape(name) + r'"\s+value="([^"]*)"\s*/?>(\s*</param>)?'
        found = self._live(pattern, start, close)
        if value is None:
            for match in reversed(found):
                old = match.group(0).replace("--", "- -")
                self.text = self.text[: match.start()] + f"<!-- off for fsctl: {old} -->" + self.text[match.end() :]
                self.changes.append(Change(self.rel, f'{name} off (was "{match.group(1)}")'))
            return
        if not found:
            self.insert_before_close(block, f'<param name="{name}" value="{value}"/>')
            self.changes.append(Change(self.rel, f'{name} "{value}" (added)'))
            return
        for match in reversed(found):  # every live occurrence: FreeSWITCH reads them all, the last wins
            if match.group(1) != value:
                self.text = (
                    self.text[: match.start()] + f'<param name="{name}" value="{value}"/>' + self.text[match.end() :]
                )
                self.changes.append(Change(self.rel, f'{name} "{value}" (was "{match.group(1)}")'))

    def ensure_line(self, block: str, needle: str, line: str, what: str, in_comments: bool = False):
        """Add `line` at the end of `block` unless `needle` occurs outside comments (or anywhere)."""
        if needle in self.text if in_comments else self._live(re.escape(needle)):
            return
        self.insert_before_close(block, line)
        self.changes.append(Change(self.rel, what))

    def save(self, dry_run: bool):
        if self.text == self.original:
            return []
        from lxml import etree

        try:
            etree.fromstring(self.text.encode("utf-8"), etree.XMLParser(resolve_entities=False))
        except etree.XMLSyntaxError as exc:  # pragma: no cover - the edits keep the file well-formed
            raise OperationError(f"{self.path}: the edited file would not parse ({exc}); left unchanged") from None
        if not dry_run:
            fd, tmp = tempfile.mkstemp(dir=self.path.parent, prefix=f".{self.path.name}.", suffix=".tmp")
            try:
                with os.fdopen(fd, "w", encoding="utf-8") as fh:
                    fh.write(self.text)
                os.chmod(tmp, self.path.stat().st_mode & 0o7777)
                os.replace(tmp, self.path)
            except BaseException:
                if os.path.exists(tmp):
                    os.unlink(tmp)
                raise
        return self.changes


def _check_value(field: str, value: str, secret: bool = False):
    if not _SAFE_VALUE.match(value or ""):
        shown = "(hidden)" if secret else value
        raise ValidationError(
            field,
            shown,
            "may only hold letters, digits and . _ ~ + = : @ % ^ * ! # / , - (it is written into FreeSWITCH's XML)",
        )


def setup(
    conf,
    *,
    fsctl_conf_dir: str,
    esl_port: int,
    esl_password: str,
    xml_cdr_dir: str,
    sessions_per_second: int = DEFAULT_SESSIONS_PER_SECOND,
    dry_run: bool = False,
) -> list[Change]:
    """Apply the install steps to the FreeSWITCH configuration folder `conf`; the changes made (or to make)."""
    conf = Path(conf)
    if not (conf / "freeswitch.xml").is_file():
        raise ValidationError("conf", str(conf), "must be FreeSWITCH's configuration folder (with freeswitch.xml)")
    if esl_password == STOCK_ESL_PASSWORD:
        raise ValidationError(
            "esl_password", esl_password, "must not be FreeSWITCH's public default; set your own in fsctl.toml"
        )
    _check_value("esl_password", esl_password, secret=True)
    if not isinstance(esl_port, int) or not 1 <= esl_port <= 65535:
        raise ValidationError("esl_port", esl_port, "must be a TCP port (1-65535)")
    if not isinstance(sessions_per_second, int) or sessions_per_second < 1:
        raise ValidationError("--sessions-per-second", sessions_per_second, "must be a whole number >= 1")
    if not os.path.isabs(xml_cdr_dir):
        raise ValidationError("--xml-cdr-dir", xml_cdr_dir, "must be an absolute folder")
    _check_value("--xml-cdr-dir", xml_cdr_dir)

    files: dict[str, _File] = {}

    def edit(rel):
        if rel not in files:
            files[rel] = _File(conf, rel)
        return files[rel]

    reference = fsctl_dir_reference(conf, fsctl_conf_dir)
    for rel, container, folder in INCLUDES:
        line = include_line(folder, reference)
        # X-PRE-PROCESS runs even inside a comment: an include line anywhere is in force.
        edit(rel).ensure_line(
            container,
            f'data="{reference}/{folder}/*.xml"',
            line,
            f"include {reference}/{folder}/*.xml",
            in_comments=True,
        )
    for name, value in INTERNAL_PROFILE:
        edit("sip_profiles/internal.xml").set_param("settings", name, value)
    for name, value in EXTERNAL_PROFILE:
        edit("sip_profiles/external.xml").set_param("settings", name, value)
    for name, value in event_socket_params(esl_port, esl_password):
        edit("autoload_configs/event_socket.conf.xml").set_param("settings", name, value)
    for module in MODULES:
        edit("autoload_configs/modules.conf.xml").ensure_line(
            "modules", f'<load module="{module}"/>', f'<load module="{module}"/>', f"load {module}"
        )
    for name, value in xml_cdr_params(xml_cdr_dir):
        edit("autoload_configs/xml_cdr.conf.xml").set_param("settings", name, value)
    edit("autoload_configs/switch.conf.xml").set_param("settings", "sessions-per-second", str(sessions_per_second))

    changes = []
    for f in files.values():
        changes += f.save(dry_run)
    if not dry_run:
        Path(xml_cdr_dir).mkdir(parents=True, exist_ok=True)
        Path(fsctl_conf_dir).mkdir(parents=True, exist_ok=True)
    # A password is never printed.
    return [Change(c.path, "password (set)") if c.what.startswith('password "') else c for c in changes]
