"""The call-flow matrix on the real switch: every way a call enters x every kind of destination.

One call proves one (entry, destination) pair, each in a tenant of its own: the destination is
reached (the phone that rings and answers, the menu, queue agent, voicemail box or conference
FreeSWITCH runs, the carrier that gets the INVITE, the hang-up cause), and the call leaves its
record in the call log. Every tenant is provisioned first, one `fsctl apply` loads them all,
then the calls run concurrently (FreeSWITCH's sessions-per-second is raised by the install steps).

Pairings left out are the ones that cannot work, and each is said why in NOT_PAIRED; the routes
that cannot work are refused at provisioning (tests/fsctl/test_provisioning_cli.py).
"""

from __future__ import annotations

import itertools
import time
import traceback
from concurrent.futures import ThreadPoolExecutor

import pytest

CALLER = "+37069990002"
_externals = itertools.count(1)
PROVED = "proved"

# --- destinations: provision(case) -> destination text; prove(case) raises unless reached --------------

DESTINATIONS = {}


def destination(kind, number=None):
    def register(cls):
        cls.kind, cls.number = kind, number
        DESTINATIONS[kind] = cls
        return cls

    return register


class Destination:
    kind = ""
    number = None  # what a phone dials to reach it (None: not dialable)
    answered = True  # the call ends answered (call log)

    def provision(self, c) -> str:
        raise NotImplementedError

    def prove(self, c):
        raise NotImplementedError


@destination("user", "301")
class UserDest(Destination):
    def provision(self, c):
        c.user("301")
        return "user:301"

    def prove(self, c):
        c.phones["301"].wait_invite(40)
        c.answerer = "301"
        c.phones["301"].wait_answered_incoming(15)


class _Group(Destination):
    strategy, order, first = "simultaneous", "fixed", None

    def provision(self, c):
        c.user(
            "401",
            policy="busy" if self.strategy == "sequential" and self.order == "fixed" else "answer",
            answer_after=1.0,
        )
        c.user("402", answer_after=1.0)
        c.t.fsctl(
            "group",
            "add",
            "400",
            "--name",
            "G",
            "--strategy",
            self.strategy,
            "--order",
            self.order,
            "--ring-time",
            "10",
            "--member",
            "401",
            "--member",
            "402",
        )
        return "group:400"

    def prove(self, c):
        phones = {n: c.phones[n] for n in ("401", "402")}
        _until(lambda: any(p.invites for p in phones.values()), 40, "no member rang")
        if self.strategy == "simultaneous":
            phones["401"].wait_invite(10), phones["402"].wait_invite(10)
        if self.first:
            other = "402" if self.first == "401" else "401"
            firsts = {n: p.invites[0].at for n, p in phones.items() if p.invites}
            assert self.first in firsts and firsts[self.first] <= firsts.get(other, float("inf")), firsts
        _until(
            lambda: any(not x.outgoing and x.answered_at for p in phones.values() for x in list(p.calls.values())),
            30,
            "no member answered",
        )
        c.target = "group:400"


def _until(predicate, timeout, message):
    deadline = time.monotonic() + timeout
    while not predicate():
        assert time.monotonic() < deadline, message
        time.sleep(0.1)


@destination("group-simultaneous", "400")
class GroupSimultaneous(_Group):
    strategy = "simultaneous"


@destination("group-random", "400")
class GroupRandom(_Group):
    strategy = "random"


@destination("group-sequential-fixed", "400")
class GroupSequentialFixed(_Group):
    strategy, order, first = "sequential", "fixed", "401"  # 401 is busy: then 402


@destination("group-sequential-rotating", "400")
class GroupSequentialRotating(_Group):
    strategy, order, first = "sequential", "rotating", "401"  # a fresh rotation starts at the first


@destination("ivr", "500")
class IvrDest(Destination):
    answered = False

    def provision(self, c):
        c.live.media(c.t, "menu")
        c.t.fsctl("ivr", "add", "500", "--name", "Menu", "--greeting", "menu", "--entry", "9=hangup")
        return "ivr:500"

    def prove(self, c):
        c.live.wait_app(c.uuid, "ivr", 40, arg_contains=f"500@{c.t.domain}")
        c.target = "ivr:500"


@destination("queue", "600")
class QueueDest(Destination):
    def provision(self, c):
        c.user("601")
        c.t.fsctl("queue", "add", "600", "--name", "Q", "--agent", "601", "--max-wait", "60")
        return "queue:600"

    def prove(self, c):
        c.live.wait_app(c.uuid, "callcenter", 40, arg_contains=f"600@{c.t.domain}")
        c.phones["601"].wait_invite(20)
        c.phones["601"].wait_answered_incoming(15)
        c.answerer, c.target = "601", "queue:600"


@destination("timerule")
class TimeRuleDest(Destination):
    def provision(self, c):
        c.user("311")
        c.user("312", register=False)
        c.t.fsctl(
            "time-rule",
            "add",
            "always",
            "--range",
            "mon-sun 00:00-24:00",
            "--match",
            "user:311",
            "--nomatch",
            "user:312",
        )
        return "timerule:always"

    def prove(self, c):
        c.phones["311"].wait_invite(40)
        c.phones["311"].wait_answered_incoming(15)
        c.answerer = "311"


@destination("voicemail")
class VoicemailDest(Destination):
    answered = False

    def provision(self, c):
        c.user("321", register=False)
        return "voicemail:321"

    def prove(self, c):
        c.live.wait_app(c.uuid, "voicemail", 40, arg_contains=f"default {c.t.domain} 321")


@destination("conference", "700")
class ConferenceDest(Destination):
    answered = False

    def provision(self, c):
        c.t.fsctl("conference", "add", "700", "--name", "Room")
        return "conference:700"

    def prove(self, c):
        c.live.wait_app(c.uuid, "conference", 40, arg_contains=f"{c.t.domain}-700")


@destination("external")
class ExternalDest(Destination):
    def provision(self, c):
        c.external = f"0612{next(_externals):05d}"
        return f"external:{c.external}"

    def prove(self, c):
        carrier = c.live.carrier
        _until(
            lambda: [i for i in list(carrier.invites) if i.to == c.external],
            40,
            f"the carrier got no INVITE for {c.external}",
        )
        mine = [i for i in list(carrier.invites) if i.to == c.external]
        leg = carrier.incoming(mine[0])
        leg.wait_answered(15)
        # The carrier sees a name from the tenant, never an internal one.
        assert "User " not in mine[0].caller_name, mine[0].caller_name


@destination("hangup")
class HangupDest(Destination):
    answered = False

    def provision(self, c):
        return "hangup:USER_BUSY"

    def prove(self, c):
        c.live.wait_app(c.uuid, "hangup", 40, arg_contains="USER_BUSY")
        c.call.wait_ended(15)


# --- entries: provision(case, destination text); start(case) places the call and drives it there -------

ENTRIES = {}


def entry(name):
    def register(cls):
        cls.name = name
        ENTRIES[name] = cls
        return cls

    return register


class Entry:
    name = ""

    def provision(self, c, dest):
        raise NotImplementedError

    def start(self, c):
        raise NotImplementedError


def _from_did(c, dest):
    c.did = c.live.did()
    c.t.fsctl("did", "add", c.did, "--to", dest)


def _inbound(c):
    c.call = c.live.inbound(c.did, CALLER)
    c.uuid = c.live.uuid_of(c.call)


@entry("internal")
class Internal(Entry):
    def provision(self, c, dest):
        c.user("101")

    def start(self, c):
        number = c.dest.number or c.external
        c.call = c.phones["101"].call(number)
        c.uuid = c.live.uuid_of(c.call)


@entry("did")
class PublicNumber(Entry):
    def provision(self, c, dest):
        _from_did(c, dest)

    def start(self, c):
        _inbound(c)


class _Menu(Entry):
    def menu(self, c, dest):
        c.live.media(c.t, "welcome")
        c.t.fsctl("ivr", "add", "510", "--name", "Main", "--greeting", "welcome", "--entry", f"1={dest}")
        _from_did(c, "ivr:510")

    def start(self, c):
        _inbound(c)
        c.live.wait_app(c.uuid, "ivr", 20, arg_contains=f"510@{c.t.domain}")
        c.call.wait_answered(15)
        c.call.send_dtmf("1")


@entry("ivr-digit")
class IvrDigit(_Menu):
    def provision(self, c, dest):
        self.menu(c, dest)


@entry("timerule-in-xml")
class TimeRuleInXml(_Menu):
    """A menu's digit to a time rule: the rule runs in the XML dialplan (time zone set first)."""

    def provision(self, c, dest):
        c.t.fsctl(
            "time-rule",
            "add",
            "branch",
            "--range",
            "mon-sun 00:00-24:00",
            "--match",
            dest,
            "--nomatch",
            "hangup:CALL_REJECTED",
        )
        self.menu(c, "timerule:branch")


@entry("group-fallback")
class GroupFallback(Entry):
    def provision(self, c, dest):
        c.user("411", register=False)  # unreachable: the group hands over at once
        c.t.fsctl(
            "group",
            "add",
            "410",
            "--name",
            "Hunt",
            "--strategy",
            "sequential",
            "--ring-time",
            "10",
            "--member",
            "411",
            "--fallback",
            dest,
        )
        _from_did(c, "group:410")

    def start(self, c):
        _inbound(c)


class _Forwarding(Entry):
    rule, number, policy, extra = "", "", "ring", ()

    def provision(self, c, dest):
        c.user("101")
        c.user(self.number, *self.extra, policy=self.policy, register=self.policy is not None)
        c.t.fsctl("user", "edit", self.number, "--forward", self.rule, dest)

    def start(self, c):
        c.call = c.phones["101"].call(self.number)
        c.uuid = c.live.uuid_of(c.call)


@entry("forward-busy")
class ForwardBusy(_Forwarding):
    rule, number, policy = "busy", "331", "busy"


@entry("forward-no-answer")
class ForwardNoAnswer(_Forwarding):
    rule, number, policy, extra = "no_answer", "332", "ring", ("--no-answer-timeout", "5")


@entry("forward-unreachable")
class ForwardUnreachable(_Forwarding):
    rule, number, policy = "unreachable", "333", None


@entry("queue-overflow")
class QueueOverflow(Entry):
    def provision(self, c, dest):
        c.user("611", register=False)  # no agent can take it: the overflow after the max wait
        c.t.fsctl(
            "queue", "add", "610", "--name", "Busy line", "--agent", "611", "--max-wait", "10", "--overflow", dest
        )
        _from_did(c, "queue:610")

    def start(self, c):
        _inbound(c)


@entry("tenant-fallback")
class TenantFallback(Entry):
    """Two groups falling back to each other: the call logic stops the loop at the tenant's fallback."""

    def provision(self, c, dest):
        c.user("421", register=False)
        c.user("423", register=False)
        c.t.fsctl(
            "group", "add", "420", "--name", "A", "--strategy", "sequential", "--ring-time", "10", "--member", "421"
        )
        c.t.fsctl(
            "group",
            "add",
            "422",
            "--name",
            "B",
            "--strategy",
            "sequential",
            "--ring-time",
            "10",
            "--member",
            "423",
            "--fallback",
            "group:420",
        )
        c.t.fsctl("group", "edit", "420", "--fallback", "group:422")
        c.t.fsctl("tenant", "edit", "--fallback", dest)
        _from_did(c, "group:420")

    def start(self, c):
        _inbound(c)


class _Transfer(Entry):
    """A public number's call answered by 341, then transferred by 341."""

    def provision(self, c, dest):
        c.user("341")
        _from_did(c, "user:341")

    def answered_leg(self, c):
        _inbound(c)
        c.call.wait_answered(20)
        return c.phones["341"].wait_answered_incoming(15)

    def b_uuid(self, c, leg):
        return c.live.esl.wait_event(
            lambda e: e.get("Event-Name") == "CHANNEL_ANSWER" and e.get("variable_sip_call_id") == leg.call_id,
            15,
            "341's leg",
        )["Unique-ID"]


@entry("refer")
class Refer(_Transfer):
    def start(self, c):
        leg = self.answered_leg(c)
        assert leg.refer(c.dest.number) == 202


@entry("star1")
class Star1(_Transfer):
    def start(self, c):
        leg = self.answered_leg(c)
        b = self.b_uuid(c, leg)
        leg.send_dtmf("*1")
        c.live.wait_app(b, "read", 15)
        leg.send_dtmf(f"{c.dest.number}#")


@entry("star4")
class Star4(_Transfer):
    """Attended: 341 talks to the target first, then hangs up; att_xfer dials users only."""

    def start(self, c):
        leg = self.answered_leg(c)
        b = self.b_uuid(c, leg)
        leg.send_dtmf("*4")
        c.live.wait_app(b, "read", 15)
        leg.send_dtmf(f"{c.dest.number}#")
        c.phones[c.dest.number].wait_answered_incoming(30)
        leg.bye()  # the caller and the target are connected


NUMBERED = (
    "user",
    "group-simultaneous",
    "group-random",
    "group-sequential-fixed",
    "group-sequential-rotating",
    "ivr",
    "queue",
    "conference",
)
# Pairings that cannot work, and why (everything else in ENTRIES x DESTINATIONS is a call below).
NOT_PAIRED = {
    ("internal", "timerule"): "a time rule has no number to dial",
    ("internal", "voicemail"): "a mailbox is reached by *98 or a route, not by a number",
    ("internal", "hangup"): "hang-up has no number to dial",
    **{
        (e, d): "a transfer goes to a number of the tenant (to an outside number: refused by the toll check, "
        "a public number's caller has no toll class)"
        for e in ("refer", "star1")
        for d in ("timerule", "voicemail", "external", "hangup")
    },
    **{
        ("star4", d): "an attended transfer consults a user (att_xfer dials user/<digits>)"
        for d in DESTINATIONS
        if d != "user"
    },
}
# One group strategy per entry is enough where the group only stands for "a group" (all four are
# proven from the public number, the menu and internal dialling).
ALL_GROUPS = ("internal", "did", "ivr-digit")
PAIRS = [
    (e, d)
    for e in ENTRIES
    for d in DESTINATIONS
    if (e, d) not in NOT_PAIRED and not (d.startswith("group-") and d != "group-simultaneous" and e not in ALL_GROUPS)
]


class Case:
    """One call of the matrix: its tenant, phones, and what it proved."""

    def __init__(self, live, entry_name, dest_kind):
        self.live = live
        self.entry = ENTRIES[entry_name]()
        self.dest = DESTINATIONS[dest_kind]()
        self.label = f"{entry_name} -> {dest_kind}"
        self.t = live.tenant(f"mx-{entry_name}-{dest_kind}".replace("_", "-")[:50])
        self.users, self.phones = [], {}
        self.call = self.uuid = self.did = self.external = self.answerer = self.target = None
        self.outcome = None

    def user(self, number, *args, policy="answer", register=True, answer_after=0.3):
        self.t.user(number, *args)
        if register and policy is not None:
            self.users.append((number, policy, answer_after))

    def provision(self):
        text = self.dest.provision(self)
        self.entry.provision(self, text)

    def register(self):
        for number, policy, answer_after in self.users:
            self.phones[number] = self.t.phone(number, policy=policy, answer_after=answer_after)

    def run(self):
        """The call, proven on the wire (concurrently with the others: no in-process fsctl here)."""
        try:
            self.entry.start(self)
            self.dest.prove(self)
            if self.dest.answered:
                # Answered means bridged: hang up only once FreeSWITCH connected the caller (an agent's
                # 200 OK comes before mod_callcenter's bridge; a caller leaving first abandoned the queue).
                self.live.esl.wait_event(
                    lambda e: e.get("Event-Name") == "CHANNEL_BRIDGE", 20, "the caller's bridge", uuid=self.uuid
                )
                self.call.wait(lambda x: x.state in ("confirmed", "ended"), 15, "the caller not answered")
            self.call.hangup()
            self.outcome = PROVED
        except BaseException:  # reported by the pair's own test
            self.outcome = traceback.format_exc(limit=8)

    def check_record(self):
        """Then its record in the call log (fsctl cdr list; one command at a time)."""
        if self.outcome != PROVED:
            return
        try:
            record = self.t.wait_call(lambda r: True, timeout=30)
            if self.dest.answered:
                assert record["status"] == "answered", record
            if self.answerer and self.entry.name not in ("refer", "star1", "star4"):
                assert record["answered_by"] == self.answerer, record
            if self.target and self.entry.name in ("did", "internal", "ivr-digit"):
                assert record["target"] == self.target, record
        except BaseException:
            self.outcome = "call log: " + traceback.format_exc(limit=4)


@pytest.fixture(scope="module")
def matrix(live):
    """Every pair's outcome: provisioned, applied once, called concurrently."""
    started = time.monotonic()
    cases = {(e, d): Case(live, e, d) for e, d in PAIRS}
    for case in cases.values():
        case.provision()
    live.apply()
    with ThreadPoolExecutor(max_workers=16) as pool:
        list(pool.map(lambda c: c.register(), cases.values()))
    with ThreadPoolExecutor(max_workers=24) as pool:
        list(pool.map(lambda c: c.run(), cases.values()))
    for case in cases.values():
        case.check_record()
    print(f"matrix: {len(cases)} calls in {time.monotonic() - started:.1f} s")
    return {key: case.outcome for key, case in cases.items()}


@pytest.mark.parametrize("entry_name, dest_kind", PAIRS, ids=[f"{e}->{d}" for e, d in PAIRS])
def test_pair(matrix, entry_name, dest_kind):
    """One call from this entry reaches this kind of destination on the real switch."""
    assert matrix[(entry_name, dest_kind)] == PROVED, matrix[(entry_name, dest_kind)]


def test_every_pair_is_called_or_said_why_not():
    for e in ENTRIES:
        for d in DESTINATIONS:
            assert (e, d) in PAIRS or (e, d) in NOT_PAIRED or (d.startswith("group-") and e not in ALL_GROUPS)
