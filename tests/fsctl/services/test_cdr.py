"""Call records: classification (a table of cases), ingestion of hang-up events, mod_xml_cdr import.

Events are built from the real CHANNEL_HANGUP_COMPLETE headers of
esl_events_plain_bridge_acme.txt (101 calls 102 in acme.example), changed only where a
scenario needs it (`a_leg`, `b_leg`). Other test modules import these builders.
"""

import datetime as dt
import json
import shutil
from pathlib import Path

import pytest
from hypothesis import given, strategies as st

from fsctl.errors import ValidationError
from fsctl.model import CallLeg, CallParty, CallRecord, Group, GroupMember, Recording, Tenant, User
from fsctl.services import cdr
from fsctl.services.cdr import CallRecordFacts as CallFacts, LegFacts, classify
from tests.fakes.captures import load

DATA = Path(__file__).resolve().parents[2] / "data" / "xml_cdr"
T0 = dt.datetime(2026, 11, 23, 7, 9, 42)  # the capture's call
CAPTURE_A = "8b25adfa-2dd4-401e-ae78-57dd0af53490"
CAPTURE_B = "33612f13-a646-4cf3-8fde-142e2ceb7f3d"

_BRIDGE_VARS = (
    "last_bridge_to",
    "bridge_uuid",
    "bridge_channel",
    "bridge_epoch",
    "bridge_uepoch",
    "dialed_user",
    "dialed_domain",
    "originated_legs",
    "originate_causes",
    "signal_bond",
    "last_bridge_role",
    "bridge_hangup_cause",
    "answer_epoch",
    "answer_uepoch",
    "bridge_stamp",
    "answer_stamp",
)


def capture_events():
    """The capture's two CHANNEL_HANGUP_COMPLETE events, in arrival order (B-leg first)."""
    return [r.event_headers() for r in load("esl_events_plain_bridge_acme.txt").events("CHANNEL_HANGUP_COMPLETE")]


def _epoch(t):
    return str(int(t.replace(tzinfo=dt.timezone.utc).timestamp())) if t else "0"


def _times(h, start, answer, end):
    h["variable_start_epoch"] = _epoch(start)
    h["variable_answer_epoch"] = _epoch(answer)
    h["variable_end_epoch"] = _epoch(end)
    h["variable_billsec"] = str(int((end - answer).total_seconds())) if answer else "0"
    h["variable_duration"] = str(int((end - start).total_seconds()))


def a_leg(
    uuid,
    *,
    caller="101",
    dest="102",
    start=T0,
    answer=None,
    end=None,
    cause="NORMAL_CLEARING",
    did=None,
    route=None,
    app="bridge",
    app_arg="",
    bridged_to=None,
    bridged_user=None,
    bridged_channel=None,
    disposition="recv_bye",
    tenant="acme.example",
    recording=None,
    cc_queue=None,
    caller_name=None,
):
    """The caller's leg at hang-up, from the capture's A-leg."""
    h = {k: v for k, v in capture_events()[1].items() if k[len("variable_") :] not in _BRIDGE_VARS}
    end = end or start + dt.timedelta(seconds=30)
    h["Unique-ID"] = h["Caller-Unique-ID"] = h["variable_uuid"] = h["variable_call_uuid"] = uuid
    h["Caller-Caller-ID-Number"] = caller
    h["Caller-Caller-ID-Name"] = caller_name or caller
    h["variable_effective_caller_id_name"] = caller_name or ""
    h["Caller-Destination-Number"] = dest
    h["Hangup-Cause"] = h["variable_hangup_cause"] = cause
    h["variable_sip_hangup_disposition"] = disposition
    h["variable_last_app"] = app
    h["variable_last_arg"] = app_arg
    for name in ("user_context", "domain_name"):
        h[f"variable_{name}"] = tenant
    h["Caller-Context"] = tenant
    if did:
        h["variable_fsctl_did"] = did
        h["variable_fsctl_tenant"] = tenant
    if route:
        h["variable_fsctl_route"] = route
    if recording:
        h["variable_fsctl_recording_path"] = recording
    if cc_queue:
        h["variable_cc_queue"] = cc_queue
    if bridged_to:
        h["variable_last_bridge_to"] = h["variable_bridge_uuid"] = bridged_to
        h["variable_bridge_epoch"] = _epoch(answer)
        h["variable_bridge_channel"] = bridged_channel or f"sofia/internal/{bridged_user}@127.0.0.1:5102"
        if bridged_user:
            h["variable_dialed_user"] = bridged_user
    _times(h, start, answer, end)
    return h


def b_leg(
    uuid,
    call_uuid,
    user,
    *,
    start=T0,
    answer=None,
    end=None,
    cause="NORMAL_CLEARING",
    queue=False,
    gateway=None,
    caller="101",
    tenant="acme.example",
):
    """A leg the call rang (group member, queue agent, gateway), from the capture's B-leg."""
    h = dict(capture_events()[0])
    end = end or start + dt.timedelta(seconds=20)
    h["Unique-ID"] = h["Caller-Unique-ID"] = h["variable_uuid"] = h["variable_call_uuid"] = uuid
    h["Caller-Caller-ID-Number"] = caller
    h["Caller-Destination-Number"] = h["Caller-Callee-ID-Number"] = user
    h["Hangup-Cause"] = h["variable_hangup_cause"] = cause
    h["variable_dialed_domain"] = h["variable_user_context"] = tenant
    for name in ("originator", "originating_leg_uuid", "last_bridge_to", "bridge_uuid", "signal_bond"):
        h.pop(f"variable_{name}", None)
    if queue:
        # mod_callcenter originates agent legs without an originator session.
        h.pop("variable_dialed_user", None)
        h["variable_cc_member_session_uuid"] = call_uuid
        h["variable_cc_agent"] = f"{user}@{tenant}"
        h["variable_cc_queue"] = f"600@{tenant}"
    else:
        h["variable_originator"] = h["variable_originating_leg_uuid"] = call_uuid
        h["variable_dialed_user"] = user
    if gateway:
        h.pop("variable_dialed_user", None)
        h["variable_sip_gateway_name"] = gateway
        h["Channel-Name"] = f"sofia/gateway/{gateway}/{user}"
    _times(h, start, answer, end)
    return h


def make_tenant(db=None, domain="acme.example", users=("101", "102", "103", "104"), tz="Europe/Vilnius"):
    """A tenant with users and group 200 (101, 102, 103)."""
    tenant = Tenant.create(domain=domain, name="ACME", timezone=tz)
    made = {
        n: User.create(tenant=tenant, number=n, name=f"User {n}", sip_password="x" * 20, email=f"u{n}@acme.example")
        for n in users
    }
    group = Group.create(tenant=tenant, number="200", name="Sales")
    for i, n in enumerate(("101", "102", "103")):
        if n in made:
            GroupMember.create(group=group, user=made[n], position=i + 1)
    return tenant


def s(seconds):
    return T0 + dt.timedelta(seconds=seconds)


# --- the classification table ---------------------------------------------------------------


def L(user, result, via="", external=False):
    return LegFacts(user, result, via, external)


CASES = [
    # (name, facts, status, missed_by, answered_by)
    ("direct call answered", CallFacts("internal", "user", "102", legs=(L("102", "answered"),)), "answered", (), "102"),
    (
        "group answered by one member: missed by nobody",
        CallFacts("in", "group", "200", legs=(L("101", "cancelled"), L("102", "answered"), L("103", "no_answer"))),
        "answered",
        (),
        "102",
    ),
    (
        "group nobody answered: missed for each member who rang, not the busy one",
        CallFacts(
            "in",
            "group",
            "200",
            "ORIGINATOR_CANCEL",
            legs=(L("101", "no_answer"), L("102", "busy"), L("103", "cancelled")),
            caller_left=True,
        ),
        "missed",
        ("101", "103"),
        None,
    ),
    (
        "group nobody answered, then voicemail of 104",
        CallFacts("in", "group", "200", legs=(L("101", "no_answer"),), voicemail="104", a_answered=True),
        "missed",
        ("101", "104"),
        None,
    ),
    (
        "user forwarded to voicemail without ringing",
        CallFacts("in", "user", "102", voicemail="102", a_answered=True),
        "missed",
        ("102",),
        None,
    ),
    ("user phone offline", CallFacts("internal", "user", "103", "USER_NOT_REGISTERED"), "missed", ("103",), None),
    (
        "every member busy",
        CallFacts("in", "group", "200", "USER_BUSY", legs=(L("101", "busy"), L("102", "busy"))),
        "busy",
        (),
        None,
    ),
    (
        "caller left during the IVR greeting",
        CallFacts("in", "ivr", "500", a_answered=True, caller_left=True),
        "abandoned",
        (),
        None,
    ),
    (
        "caller left the queue while agents rang: not missed by the agents",
        CallFacts(
            "in",
            "queue",
            "600",
            legs=(L("101", "no_answer", "queue"), L("102", "cancelled", "queue")),
            queue="600",
            a_answered=True,
            caller_left=True,
        ),
        "abandoned",
        (),
        None,
    ),
    (
        "queue call answered by an agent",
        CallFacts("in", "queue", "600", legs=(L("102", "answered", "queue"),), queue="600"),
        "answered",
        (),
        "102",
    ),
    ("blacklisted caller refused", CallFacts("in", None, None, "CALL_REJECTED"), "refused", (), None),
    (
        "outgoing call answered",
        CallFacts("out", "external", "+37060000000", legs=(L("+37060000000", "answered", external=True),)),
        "answered",
        (),
        None,
    ),
    (
        "outgoing call busy",
        CallFacts("out", "external", "+37060000000", "USER_BUSY", legs=(L("+37060000000", "busy", external=True),)),
        "busy",
        (),
        None,
    ),
    (
        "outgoing call not answered",
        CallFacts(
            "out", "external", "+37060000000", "NO_ANSWER", legs=(L("+37060000000", "no_answer", external=True),)
        ),
        "failed",
        (),
        None,
    ),
    (
        "caller hung up before anything rang",
        CallFacts("internal", None, None, "ORIGINATOR_CANCEL", caller_left=True),
        "abandoned",
        (),
        None,
    ),
    ("unknown number", CallFacts("internal", None, None, "NO_ROUTE_DESTINATION"), "failed", (), None),
    ("conference joined", CallFacts("internal", "conference", "700", a_answered=True), "answered", (), None),
    (
        "transfer: first answerer is who answered",
        CallFacts("in", "user", "101", legs=(L("101", "answered"), L("103", "answered"))),
        "answered",
        (),
        "101",
    ),
]


@pytest.mark.parametrize("name,facts,status,missed_by,answered_by", CASES, ids=[c[0] for c in CASES])
def test_classify_table(name, facts, status, missed_by, answered_by):
    out = classify(facts)
    assert (out.status, out.missed_by, out.answered_by) == (status, missed_by, answered_by), out.rule


def test_classify_covers_every_status():
    assert {c[2] for c in CASES} == set(cdr.STATUSES)


USERS = st.sampled_from(["101", "102", "103", "104"])
LEGS = st.builds(LegFacts, USERS, st.sampled_from(cdr.LEG_RESULTS), st.sampled_from(["", "queue"]), st.booleans())
FACTS = st.builds(
    CallFacts,
    st.sampled_from(cdr.DIRECTIONS),
    st.sampled_from([None, "user", "group", "queue", "ivr", "voicemail"]),
    st.one_of(st.none(), USERS),
    st.sampled_from(
        ["NORMAL_CLEARING", "NO_ANSWER", "USER_BUSY", "CALL_REJECTED", "ORIGINATOR_CANCEL", "USER_NOT_REGISTERED"]
    ),
    st.lists(LEGS, max_size=4).map(tuple),
    st.one_of(st.none(), USERS),
    st.one_of(st.none(), st.just("600")),
    st.booleans(),
    st.booleans(),
)


@given(FACTS)
def test_classification_invariants(facts):
    out = classify(facts)
    assert out.status in cdr.STATUSES
    assert bool(out.missed_by) == (out.status == "missed")  # missed means missed by somebody, and only then
    if out.answered_by:
        assert out.status == "answered"
    offered = {l.user for l in facts.legs if l.result != "busy" and l.via != "queue" and not l.external}
    assert set(out.missed_by) <= offered | {facts.voicemail, facts.route_target}
    if any(l.result == "answered" for l in facts.legs):
        assert out.status == "answered"  # a call somebody answered is never missed for the others


@pytest.mark.parametrize(
    "answered,cause,result",
    [
        (True, "NORMAL_CLEARING", "answered"),
        (False, "USER_BUSY", "busy"),
        (False, "CALL_REJECTED", "busy"),
        (False, "NO_ANSWER", "no_answer"),
        (False, "LOSE_RACE", "cancelled"),
        (False, "ORIGINATOR_CANCEL", "cancelled"),
        (False, "USER_NOT_REGISTERED", "failed"),
    ],
)
def test_leg_result(answered, cause, result):
    assert cdr.leg_result(answered, cause) == result


# --- parsing the real capture ---------------------------------------------------------------


def test_parse_capture_legs():
    b, a = (cdr.parse_channel(h) for h in capture_events())
    assert (a.is_a_leg, a.uuid, a.call_uuid, a.tenant) == (True, CAPTURE_A, CAPTURE_A, "acme.example")
    assert (a.caller, a.caller_name, a.callee, a.bridged_to, a.bridged_user) == (
        "101",
        "Acme 101",
        "102",
        CAPTURE_B,
        "102",
    )
    assert a.started_at == T0 and a.ended_at == s(2) and a.caller_left  # sip_hangup_disposition recv_bye
    assert (b.is_a_leg, b.uuid, b.call_uuid, b.user, b.tenant) == (False, CAPTURE_B, CAPTURE_A, "102", "acme.example")
    assert b.answered_at == T0


@pytest.mark.parametrize(
    "change,message",
    [
        ({"Unique-ID": "", "variable_uuid": ""}, 'Unique-ID "": must be present (the channel\'s UUID)'),
        ({"variable_start_epoch": "soon"}, 'variable_start_epoch "soon": must be a whole number of seconds since 1970'),
        ({"variable_start_epoch": "0"}, 'variable_start_epoch "0": must be after 1970'),
    ],
)
def test_parse_rejects_bad_headers(change, message):
    headers = {**capture_events()[1], **change}
    with pytest.raises(ValidationError) as info:
        cdr.parse_channel(headers)
    assert str(info.value) == message


# --- ingestion (both engines) ---------------------------------------------------------------


def record(uuid):
    return CallRecord.get(CallRecord.uuid == uuid)


def parties(uuid):
    return {
        p.user_number: (p.received, p.answered, p.missed, p.placed, p.talk_time)
        for p in CallParty.select().join(CallRecord).where(CallRecord.uuid == uuid)
    }


def test_capture_call_is_one_record_and_idempotent(db):
    make_tenant(db)
    events = capture_events()
    first = cdr.ingest_hangups(events)
    assert (first.calls_created, first.calls_updated, first.errors) == (1, 0, [])
    for batch in (events, events[::-1], [events[1]], [events[0]]):  # again, reversed, one leg at a time
        cdr.ingest_hangups(batch)
    assert CallRecord.select().count() == 1 and CallLeg.select().count() == 1
    call = record(CAPTURE_A)
    assert (call.status, call.direction, call.caller, call.callee, call.answered_by) == (
        "answered",
        "internal",
        "101",
        "102",
        "102",
    )
    assert (call.started_at, call.ended_at, call.duration, call.talk_time, call.complete) == (T0, s(2), 2, 2, True)
    assert parties(CAPTURE_A) == {"101": (0, 0, 0, 1, 0), "102": (1, 1, 0, 0, 2)}


def test_calls_link_to_their_catalogued_recording(db):
    tenant = make_tenant(db)
    path = "acme.example/2026/11/23/20261123T070942Z_8b25adfa_101.wav"
    rec = Recording.create(
        tenant=tenant, user_number="101", direction="internal", started_at=T0, path=path, call_uuid=CAPTURE_A
    )
    b, a = capture_events()
    cdr.ingest_hangups([b, {**a, "variable_fsctl_recording_path": "/var/lib/freeswitch/recordings/" + path}])
    call = record(CAPTURE_A)
    assert call.recording_id == rec.id and call.recording_path.endswith(path)


def test_service_batch_entry_point(db):
    make_tenant(db)
    report = cdr.ingest_batch(capture_events())
    assert (report.events, report.calls_created, report.legs) == (2, 1, 1)


def test_a_conflicting_writer_makes_the_batch_merge_on_a_second_attempt(db):
    make_tenant(db)
    calls = []

    def notifier(ids):
        calls.append(list(ids))
        if len(calls) == 1:  # as if another writer had inserted the same call meanwhile
            import peewee

            raise peewee.IntegrityError("UNIQUE constraint failed: call_record.uuid")

    report = cdr.ingest_hangups(capture_events(), notifier=notifier)
    assert len(calls) == 2 and report.calls_created == 1 and CallRecord.select().count() == 1


def test_leg_before_caller_leg_makes_a_provisional_record(db):
    make_tenant(db)
    b, a = capture_events()
    cdr.ingest_hangup(b)
    call = record(CAPTURE_A)
    assert not call.complete and call.status == "answered" and parties(CAPTURE_A) == {"102": (1, 1, 0, 0, 2)}
    cdr.ingest_hangup(a)
    assert record(CAPTURE_A).complete and parties(CAPTURE_A)["101"] == (0, 0, 0, 1, 0)


def test_caller_leg_alone_knows_who_answered_and_the_real_leg_replaces_it(db):
    make_tenant(db)
    b, a = capture_events()
    cdr.ingest_hangup(a)
    assert record(CAPTURE_A).answered_by == "102"
    assert [(l.uuid, l.result) for l in CallLeg.select()] == [(CAPTURE_B, "answered")]
    cdr.ingest_hangup(b)
    assert CallLeg.select().count() == 1


def test_group_call_answered_by_one_member_is_missed_by_nobody(db):
    tenant = make_tenant(db)
    events = [
        b_leg("g-101", "g-a", "101", end=s(8), cause="LOSE_RACE"),
        b_leg("g-103", "g-a", "103", end=s(1), cause="USER_BUSY"),
        b_leg("g-102", "g-a", "102", answer=s(8), end=s(68)),
        a_leg(
            "g-a",
            caller="+37061111111",
            dest="+37052000000",
            did="+37052000000",
            route="group:200",
            answer=s(8),
            end=s(68),
            bridged_to="g-102",
            bridged_user="102",
        ),
    ]
    cdr.ingest_hangups(events)
    call = record("g-a")
    assert (call.status, call.answered_by, call.missed_by, call.direction, call.did) == (
        "answered",
        "102",
        "",
        "in",
        "+37052000000",
    )
    assert (call.target_kind, call.target, call.talk_time) == ("group", "200", 60)
    assert parties("g-a") == {"101": (1, 0, 0, 0, 0), "102": (1, 1, 0, 0, 60), "103": (1, 0, 0, 0, 0)}
    assert sorted((l.user_number, l.result) for l in call.legs) == [
        ("101", "cancelled"),
        ("102", "answered"),
        ("103", "busy"),
    ]
    assert tenant.calls.count() == 1


def test_group_call_nobody_answered_is_missed_for_those_who_rang(db):
    make_tenant(db)
    cdr.ingest_hangups(
        [
            b_leg("m-101", "m-a", "101", end=s(20), cause="ORIGINATOR_CANCEL"),
            b_leg("m-102", "m-a", "102", end=s(20), cause="ORIGINATOR_CANCEL"),
            b_leg("m-103", "m-a", "103", end=s(1), cause="USER_BUSY"),
            a_leg(
                "m-a",
                caller="+37061111111",
                did="+37052000000",
                route="group:200",
                end=s(20),
                cause="ORIGINATOR_CANCEL",
                disposition="recv_cancel",
            ),
        ]
    )
    call = record("m-a")
    assert (call.status, call.missed_by) == ("missed", "101,102")
    assert parties("m-a") == {"101": (1, 0, 1, 0, 0), "102": (1, 0, 1, 0, 0), "103": (1, 0, 0, 0, 0)}


def test_queue_and_ivr_callers_who_leave_are_abandoned(db):
    make_tenant(db)
    cdr.ingest_hangups(
        [
            b_leg("q-101", "q-a", "101", queue=True, end=s(30), cause="ORIGINATOR_CANCEL"),
            a_leg(
                "q-a",
                caller="+37061111111",
                did="+37052000000",
                route="queue:600",
                answer=s(1),
                end=s(40),
                app="callcenter",
                cc_queue="600@acme.example",
            ),
            a_leg(
                "i-a",
                caller="+37062222222",
                did="+37052000001",
                route="ivr:500",
                answer=s(1),
                end=s(9),
                app="playback",
                disposition="recv_bye",
            ),
        ]
    )
    assert (record("q-a").status, record("q-a").queue, record("q-a").missed_by) == ("abandoned", "600", "")
    assert parties("q-a") == {"101": (1, 0, 0, 0, 0)}  # offered, but not a missed call of the agent
    assert record("i-a").status == "abandoned" and parties("i-a") == {}


def test_transferred_call_counts_for_both_users(db):
    make_tenant(db)
    cdr.ingest_hangups(
        [
            b_leg("t-101", "t-a", "101", answer=s(5), end=s(35)),  # 101 answers, then blind-transfers to 103
            b_leg("t-103", "t-a", "103", start=s(35), answer=s(40), end=s(100)),
            a_leg(
                "t-a",
                caller="+37061111111",
                did="+37052000000",
                route="user:101",
                answer=s(5),
                end=s(100),
                bridged_to="t-103",
                bridged_user="103",
            ),
        ]
    )
    call = record("t-a")
    assert (call.status, call.answered_by, call.talk_time) == ("answered", "101", 90)
    assert parties("t-a") == {"101": (1, 1, 0, 0, 30), "103": (1, 1, 0, 0, 60)}


def test_voicemail_refused_and_outgoing(db):
    make_tenant(db)
    cdr.ingest_hangups(
        [
            a_leg(
                "v-a",
                caller="+37061111111",
                did="+37052000000",
                route="voicemail:103",
                answer=s(1),
                end=s(30),
                app="voicemail",
                app_arg="default acme.example 103",
            ),
            a_leg(
                "r-a",
                caller="+19005550000",
                did="+37052000000",
                end=s(0),
                cause="CALL_REJECTED",
                app="hangup",
                disposition="send_refuse",
            ),
            b_leg("o-gw", "o-a", "+37060000000", answer=s(5), end=s(65), gateway="default"),
            a_leg(
                "o-a",
                caller="104",
                dest="+37060000000",
                route="external:+37060000000",
                answer=s(5),
                end=s(65),
                bridged_to="o-gw",
                bridged_channel="sofia/gateway/default/+37060000000",
            ),
        ]
    )
    assert (record("v-a").status, record("v-a").voicemail, record("v-a").missed_by) == ("missed", "103", "103")
    assert parties("v-a") == {"103": (1, 0, 1, 0, 0)}
    assert record("r-a").status == "refused" and parties("r-a") == {}
    out = record("o-a")
    assert (out.status, out.direction, out.answered_by, out.talk_time) == ("answered", "out", None, 60)
    assert parties("o-a") == {"104": (0, 0, 0, 1, 0)}


def test_batch_reports_bad_events_and_keeps_the_good_ones(db):
    make_tenant(db)
    good = a_leg("ok-a", end=s(5), cause="NO_ANSWER", route="user:102")
    stranger = a_leg("x-a", tenant="other.example")
    broken = {**a_leg("bad-a"), "variable_start_epoch": ""}
    report = cdr.ingest_hangups([good, stranger, broken])
    assert [(i, msg) for i, msg, _ in report.errors] == [
        (2, 'variable_start_epoch "": must be present (seconds since 1970)'),
        (1, 'tenant "other.example": is not a tenant of this PBX'),
    ]
    assert [c.uuid for c in CallRecord.select()] == ["ok-a"]
    with pytest.raises(ValidationError):
        cdr.ingest_hangup(stranger)
    assert CallRecord.select().count() == 1


# --- mod_xml_cdr import -------------------------------------------------------------------------


def test_xml_cdr_headers_match_the_event_headers():
    headers = cdr.xml_cdr_headers((DATA / "a_8b25adfa-2dd4-401e-ae78-57dd0af53490.cdr.xml").read_bytes())
    a = cdr.parse_channel(headers)
    assert (a.uuid, a.caller, a.caller_name, a.callee, a.tenant, a.bridged_to) == (
        CAPTURE_A,
        "101",
        "Acme 101",
        "102",
        "acme.example",
        CAPTURE_B,
    )
    assert headers["variable_sip_full_from"] == "<sip:101@acme.example>;tag=26890SIPpTag011"  # URL-decoded


def _import_dir(tmp_path, with_bad=True):
    target = tmp_path / "xml_cdr"
    shutil.copytree(DATA, target)
    if not with_bad:
        shutil.rmtree(target / "bad")
    return target


def test_import_cli_counts_skips_bad_files_and_is_idempotent(fsctl, tmp_path):
    fsctl("tenant", "add", "acme.example", "--name", "ACME", "--tz", "Europe/Vilnius")
    for n in ("101", "102", "103"):
        fsctl("user", "add", "acme.example", n, "--name", f"User {n}")
    fsctl(
        "group",
        "add",
        "acme.example",
        "200",
        "--name",
        "Sales",
        "--member",
        "101",
        "--member",
        "102",
        "--member",
        "103",
    )
    directory = _import_dir(tmp_path)
    result = fsctl("cdr", "import", str(directory), "--json", ok=False)
    assert result.exit_code == 1
    data = json.loads(result.stdout)
    bad = directory / "bad"
    assert data["failed"] == [
        {
            "path": str(bad / "no_start.cdr.xml"),
            "reason": 'variable_start_epoch "": must be present (seconds since 1970)',
        },
        {"path": str(bad / "other_tenant.cdr.xml"), "reason": 'tenant "other.example": is not a tenant of this PBX'},
        {
            "path": str(bad / "truncated.cdr.xml"),
            "reason": 'xml "Premature end of data in tag variables line 10, line 15, column 1": '
            "must be well-formed XML (a mod_xml_cdr file)",
        },
    ]
    assert (data["files"], data["calls_created"], data["calls_updated"]) == (11, 3, 0)
    assert f"{bad / 'truncated.cdr.xml'}: xml " in result.stderr
    again = json.loads(fsctl("cdr", "import", str(directory), "--json", ok=False).stdout)
    assert (again["calls_created"], again["calls_updated"]) == (0, 3)
    calls = json.loads(
        fsctl("cdr", "list", "acme.example", "--from", "2026-11-01", "--to", "2026-11-30", "--json").stdout
    )
    assert [(c["uuid"], c["status"], c["answered_by"], c["missed_by"]) for c in calls] == [
        (CAPTURE_A, "answered", "102", ""),
        ("5d0e2a1c-0000-4000-8000-000000000001", "answered", "102", ""),
        ("5d0e2a1c-0000-4000-8000-000000000002", "missed", None, "101,102"),
    ]


def test_import_clean_directory_exits_zero(fsctl, tmp_path):
    fsctl("tenant", "add", "acme.example", "--name", "ACME")
    result = fsctl("cdr", "import", str(_import_dir(tmp_path, with_bad=False)))
    assert result.stderr.startswith("8 files: 3 calls created, 0 updated, 5 legs, 0 failed")


def test_import_refuses_a_missing_directory(fsctl, tmp_path):
    result = fsctl("cdr", "import", str(tmp_path / "nope"), ok=False)
    assert result.exit_code == 2
    assert (
        result.stderr.strip() == f'Error: directory "{tmp_path / "nope"}": must be an existing directory of '
        "mod_xml_cdr files"
    )


def test_import_keeps_the_legs_of_a_call_in_one_batch(db, tmp_path):
    make_tenant(db)
    result = cdr.import_xml_cdr_dir(_import_dir(tmp_path, with_bad=False), batch=1)
    # files are grouped by call before batching: each call is written once, complete
    assert (result.files, result.calls_created, result.calls_updated, result.legs, result.failed) == (8, 3, 0, 5, [])
