"""Call decisions by example: every routing rule of R-SEQ, R-GRP, R-FWD, R-TIME, R-DID, R-BLACK,
R-CLI, R-VM, R-REC, and the two tiers of failure."""

import random
from datetime import date, datetime, timezone
from pathlib import Path
from urllib.parse import unquote

import pytest

from fsctl.calllogic.callconfig import (
    BlacklistEntry,
    Conference,
    Did,
    Forwarding,
    Group,
    Holiday,
    Ivr,
    Queue,
    Tenant,
    TenantConfig,
    TimeRange,
    TimeRule,
    User,
)
from fsctl.calllogic.decide import (
    CallFacts,
    Decision,
    DecisionError,
    RotationState,
    RotationUpdate,
    decide,
    decide_fallback,
    explain,
)
from fsctl.calllogic.plan import (
    Answer,
    Bridge,
    Hangup,
    Playback,
    SetCallerName,
    SetVar,
    StartRecording,
    Transfer,
    Voicemail,
    plan_apps,
    walk,
)

D = "acme.example"
MONDAY_NOON = datetime(2026, 11, 23, 10, 0, tzinfo=timezone.utc)  # 12:00 in Vilnius
SATURDAY_NOON = datetime(2026, 11, 28, 10, 0, tzinfo=timezone.utc)
CAPTURES = Path(__file__).resolve().parents[2] / "data" / "esl-captures"


def config(users=(), groups=(), dids=(), time_rules=(), blacklist=(), contacts=(), fallback="hangup", **kw):
    base_users = {
        u.number: u for u in [User("101", "Ona"), User("102", "Petras"), User("103", "Rasa"), User("104", "Tomas")]
    }
    for u in users:
        base_users[u.number] = u
    return TenantConfig.build(
        Tenant(D, "Europe/Vilnius", fallback=fallback, gateway="pstn"),
        users=base_users.values(),
        groups=groups,
        dids=dids,
        time_rules=time_rules,
        blacklist=blacklist,
        contacts=contacts,
        ivrs=[Ivr("500", "Main menu")],
        queues=[Queue("600", "Sales")],
        conferences=[Conference("700", "Room", pin="1234")],
        **kw,
    )


def internal(dialled, caller="104", **kw):
    return CallFacts(D, caller, dialled, caller_name="Tomas", uuid="u-1", **kw)


def inbound(did, caller="+37061234567", **kw):
    return CallFacts(D, caller, did, did=did, direction="inbound", uuid="u-2", **kw)


def kinds(steps):
    return [s.kind for s in steps]


def bridges(steps):
    return [s for s in steps if isinstance(s, Bridge)]


def dial(step):
    return [leg.target for leg in step.legs]


# --- numbering plan, unknown numbers ------------------------------------------------------


def test_unknown_number_hangs_up_no_route_destination():
    d = decide(internal("999"), config(), MONDAY_NOON)
    assert d == Decision((Hangup("NO_ROUTE_DESTINATION", reason="999 is not a number of acme.example"),))
    assert plan_apps(d.plan) == [("hangup", "NO_ROUTE_DESTINATION")]


def test_unknown_did_hangs_up_no_route_destination():
    d = decide(inbound("+37052999999"), config(), MONDAY_NOON)
    assert d.plan[-1].cause == "NO_ROUTE_DESTINATION"
    assert "did +37052999999" in d.plan[-1].reason


def test_call_for_another_tenant_is_refused():
    with pytest.raises(DecisionError):
        decide(CallFacts("other.example", "101", "102"), config(), MONDAY_NOON)


def test_naive_now_is_refused():
    with pytest.raises(ValueError):
        decide(internal("101"), config(), datetime(2026, 11, 23, 10, 0))


# --- R-BLACK -------------------------------------------------------------------------------


def test_blacklisted_exact_caller_is_rejected():
    cfg = config(dids=[Did("+37052000000", "user:101")], blacklist=[BlacklistEntry("+37061234567", note="spam")])
    d = decide(inbound("+37052000000"), cfg, MONDAY_NOON)
    assert kinds(d.plan) == ["Hangup"]
    assert d.plan[0].cause == "CALL_REJECTED"
    assert d.plan[0].reason == "caller +37061234567 is blacklisted (exact +37061234567) (spam)"


def test_blacklisted_prefix_matches_whatever_the_number_format():
    cfg = config(dids=[Did("+37052000000", "user:101")], blacklist=[BlacklistEntry("+3706", "prefix")])
    d = decide(inbound("+37052000000", caller="0037069999999"), cfg, MONDAY_NOON)
    assert plan_apps(d.plan) == [("hangup", "CALL_REJECTED")]
    assert "prefix +3706" in d.plan[0].reason


def test_not_blacklisted_caller_goes_through():
    cfg = config(dids=[Did("+37052000000", "user:101")], blacklist=[BlacklistEntry("+3706", "prefix")])
    d = decide(inbound("+37052000000", caller="+37052111111"), cfg, MONDAY_NOON)
    assert "Bridge" in kinds(d.plan)


def test_blacklist_never_applies_to_internal_callers():
    cfg = config(blacklist=[BlacklistEntry("10", "prefix")])
    d = decide(internal("102", caller="101"), cfg, MONDAY_NOON)
    assert "Bridge" in kinds(d.plan)


# --- R-CLI ---------------------------------------------------------------------------------


def test_caller_name_comes_from_the_contacts():
    cfg = config(dids=[Did("+37052000000", "user:101")], contacts={"+37061234567": "UAB Jonas"})
    d = decide(inbound("+37052000000"), cfg, MONDAY_NOON)
    assert d.plan[0] == SetCallerName("UAB Jonas", reason="caller +37061234567 is 'UAB Jonas' in the contacts")
    assert d.plan[0].to_apps() == [("set", "effective_caller_id_name=UAB Jonas")]


def test_caller_name_from_contacts_is_neutralised():
    cfg = config(dids=[Did("+37052000000", "user:101")], contacts={"+37061234567": "Evil ${system(rm -rf /)}"})
    apps = plan_apps(decide(inbound("+37052000000"), cfg, MONDAY_NOON).plan)
    assert apps[0][0] == "set" and apps[0][1].startswith("effective_caller_id_name=Evil ")
    assert all("${" not in arg for _, arg in apps)


def test_no_contact_no_caller_name_step():
    d = decide(inbound("+37052000000"), config(dids=[Did("+37052000000", "user:101")]), MONDAY_NOON)
    assert "SetCallerName" not in kinds(d.plan)


# --- R-DID ---------------------------------------------------------------------------------


def test_each_did_runs_its_own_destination():
    cfg = config(
        dids=[Did("+37052000000", "user:101"), Did("+37052000001", "ivr:500"), Did("+37052000002", "queue:600")]
    )
    assert dial(bridges(decide(inbound("+37052000000"), cfg, MONDAY_NOON).plan)[0]) == ["user/101@acme.example"]
    assert decide(inbound("+37052000001"), cfg, MONDAY_NOON).plan[-1] == Transfer(
        "ivr-500", D, reason="did +37052000001 -> ivr:500: hand over to the dialplan's ivr"
    )
    assert decide(inbound("+37052000002"), cfg, MONDAY_NOON).plan[-1].extension == "queue-600"


def test_did_written_differently_still_found():
    cfg = config(dids=[Did("+37052000000", "user:101")])
    assert bridges(decide(inbound("0037052000000"), cfg, MONDAY_NOON).plan)


def test_user_dialling_an_own_did_gets_its_scenario():
    cfg = config(dids=[Did("+37052000000", "ivr:500")])
    d = decide(internal("+37052000000"), cfg, MONDAY_NOON)
    assert plan_apps(d.plan)[-1] == ("transfer", "ivr-500 XML acme.example")
    assert d.plan[-1].reason.startswith("dialled did +37052000000 -> ivr:500")
    assert decide(internal("+37052000001"), cfg, MONDAY_NOON).plan[-1].cause == "NO_ROUTE_DESTINATION"


def test_route_variable_records_the_entry_destination():
    d = decide(
        inbound("+37052000000"),
        config(dids=[Did("+37052000000", "group:200")], groups=[Group("200", members=("101",))]),
        MONDAY_NOON,
    )
    assert SetVar("fsctl_route", "group:200", reason="did +37052000000 -> group:200") in d.plan


# --- user, R-FWD, R-VM ---------------------------------------------------------------------


def test_plain_user_rings_then_voicemail_on_every_failure():
    d = decide(internal("101"), config(), MONDAY_NOON)
    (bridge,) = bridges(d.plan)
    assert bridge.to_apps()[-1] == ("bridge", "[leg_timeout=20]user/101@acme.example")
    for cause in ("USER_BUSY", "NO_ANSWER", "USER_NOT_REGISTERED"):
        assert walk(d.plan, [cause])[-1] == Voicemail("101", D, reason=walk(d.plan, [cause])[-1].reason)
    assert kinds(walk(d.plan, ["SUCCESS"])) == ["SetVar", "Bridge"]


def test_user_ring_time_is_the_no_answer_timeout():
    d = decide(internal("101"), config(users=[User("101", no_answer_timeout=35)]), MONDAY_NOON)
    assert bridges(d.plan)[0].legs[0].timeout == 35


def test_user_without_voicemail_hangs_up_with_the_matching_cause():
    d = decide(internal("101"), config(users=[User("101", vm_enabled=False)]), MONDAY_NOON)
    assert walk(d.plan, ["USER_BUSY"])[-1].cause == "USER_BUSY"
    assert walk(d.plan, ["CALL_REJECTED"])[-1].cause == "USER_BUSY"
    assert walk(d.plan, ["NO_ANSWER"])[-1].cause == "NO_ANSWER"
    assert walk(d.plan, ["USER_NOT_REGISTERED"])[-1].cause == "SUBSCRIBER_ABSENT"


def test_forward_always_goes_straight_to_the_destination():
    cfg = config(users=[User("101", forwarding=Forwarding(always="user:102"))])
    d = decide(internal("101"), cfg, MONDAY_NOON)
    assert [dial(b) for b in bridges(d.plan)] == [["user/102@acme.example"]]
    assert "forwards always" in bridges(d.plan)[0].reason


def test_forward_always_to_external_uses_the_tenant_gateway():
    cfg = config(users=[User("101", forwarding=Forwarding(always="external:+37061111111"))])
    d = decide(internal("101"), cfg, MONDAY_NOON)
    assert plan_apps(d.plan)[-1] == (
        "bridge",
        "[leg_timeout=60,force_transfer_context=acme.example]sofia/gateway/pstn/+37061111111",
    )


@pytest.mark.parametrize(
    "rule, cause",
    [
        ("busy", "USER_BUSY"),
        ("no_answer", "NO_ANSWER"),
        ("no_answer", "NO_USER_RESPONSE"),
        ("unreachable", "USER_NOT_REGISTERED"),
        ("unreachable", "SUBSCRIBER_ABSENT"),
    ],
)
def test_conditional_forwarding_follows_the_bridge_outcome(rule, cause):
    cfg = config(users=[User("101", forwarding=Forwarding(**{rule: "user:103"}))])
    d = decide(internal("101"), cfg, MONDAY_NOON)
    ran = walk(d.plan, [cause])
    assert dial(bridges(ran)[-1]) == ["user/103@acme.example"]
    # the other outcomes still reach 101's voicemail
    other = {"busy": "NO_ANSWER", "no_answer": "USER_BUSY", "unreachable": "USER_BUSY"}[rule]
    assert walk(d.plan, [other])[-1].user == "101"


def test_forward_chain_keeps_branching():
    cfg = config(
        users=[
            User("101", forwarding=Forwarding(busy="user:102")),
            User("102", forwarding=Forwarding(no_answer="voicemail:103")),
        ]
    )
    d = decide(internal("101", caller="104"), cfg, MONDAY_NOON)
    assert walk(d.plan, ["USER_BUSY", "NO_ANSWER"])[-1] == Voicemail(
        "103", D, reason=walk(d.plan, ["USER_BUSY", "NO_ANSWER"])[-1].reason
    )
    assert walk(d.plan, ["USER_BUSY", "USER_BUSY"])[-1].user == "102"


def test_voicemail_destination():
    cfg = config(dids=[Did("+37052000000", "voicemail:102")])
    d = decide(inbound("+37052000000"), cfg, MONDAY_NOON)
    assert plan_apps(d.plan)[-2:] == [("answer", ""), ("voicemail", "default acme.example 102")]


# --- loops ---------------------------------------------------------------------------------


def test_forwarding_loop_goes_to_the_tenant_fallback_with_a_reason():
    cfg = config(
        users=[
            User("101", forwarding=Forwarding(always="user:102")),
            User("102", forwarding=Forwarding(always="user:101")),
        ],
        fallback="voicemail:103",
    )
    d = decide(internal("101"), cfg, MONDAY_NOON)
    assert d.plan[-1].kind == "Voicemail" and d.plan[-1].user == "103"
    assert "loop (user:101 -> user:102 -> user:101)" in d.plan[-1].reason
    assert "tenant fallback" in d.plan[-1].reason


def test_loop_when_the_fallback_loops_too_hangs_up():
    cfg = config(
        users=[
            User("101", forwarding=Forwarding(always="user:102")),
            User("102", forwarding=Forwarding(always="user:101")),
        ],
        fallback="user:101",
    )
    d = decide(internal("101"), cfg, MONDAY_NOON)
    assert d.plan[-1].cause == "NORMAL_TEMPORARY_FAILURE"
    assert "fallback loops too" in d.plan[-1].reason


def test_time_rule_loop_is_detected():
    rules = [
        TimeRule("a", match="timerule:b", nomatch="timerule:b"),
        TimeRule("b", match="timerule:a", nomatch="timerule:a"),
    ]
    cfg = config(dids=[Did("+37052000000", "timerule:a")], time_rules=rules)
    d = decide(inbound("+37052000000"), cfg, MONDAY_NOON)
    assert d.plan[-1].kind == "Hangup"
    assert "loop" in d.plan[-1].reason


def test_conditional_forward_cycle_terminates():
    cfg = config(
        users=[
            User("101", forwarding=Forwarding(busy="user:102", no_answer="user:102", unreachable="user:102")),
            User("102", forwarding=Forwarding(busy="user:101", no_answer="user:101", unreachable="user:101")),
        ],
        fallback="hangup:USER_BUSY",
    )
    d = decide(internal("101"), cfg, MONDAY_NOON)
    ran = walk(d.plan, ["USER_BUSY", "USER_BUSY"])
    assert [dial(b) for b in bridges(ran)] == [["user/101@acme.example"], ["user/102@acme.example"]]
    assert ran[-1].cause == "USER_BUSY" and "loop" in ran[-1].reason


def test_group_fallback_back_to_the_same_group_is_a_loop():
    cfg = config(groups=[Group("200", members=("101",), fallback="group:200")])
    d = decide(internal("200"), cfg, MONDAY_NOON)
    assert len(bridges(d.plan)) == 1
    assert d.plan[-1].kind == "Hangup" and "loop" in d.plan[-1].reason


# --- R-TIME --------------------------------------------------------------------------------

OFFICE = TimeRule(
    "office",
    (TimeRange.from_text("mon-fri", "09:00", "18:00"),),
    (Holiday(date(2026, 12, 24), date(2026, 12, 26), name="Christmas"),),
    match="group:200",
    nomatch="voicemail:101",
)


def office_config():
    return config(
        dids=[Did("+37052000000", "timerule:office")],
        time_rules=[OFFICE],
        groups=[Group("200", members=("101", "102"), strategy="sequential", ring_time=10)],
    )


def test_time_rule_match_routes_to_the_match_destination():
    d = decide(inbound("+37052000000"), office_config(), MONDAY_NOON)
    (bridge,) = bridges(d.plan)
    assert dial(bridge) == ["user/101@acme.example", "user/102@acme.example"]
    assert "range mon,tue,wed,thu,fri 09:00-18:00 (local mon 2026-11-23 12:00 Europe/Vilnius): match" in bridge.reason


def test_time_rule_no_match_routes_to_the_nomatch_destination():
    d = decide(inbound("+37052000000"), office_config(), SATURDAY_NOON)
    assert d.plan[-1].kind == "Voicemail" and d.plan[-1].user == "101"
    assert "no match" in d.plan[-1].reason


def test_holiday_routes_to_nomatch():
    d = decide(inbound("+37052000000"), office_config(), datetime(2026, 12, 24, 10, 0, tzinfo=timezone.utc))
    assert d.plan[-1].kind == "Voicemail"
    assert "holiday 'Christmas'" in d.plan[-1].reason


def test_time_rule_in_its_own_zone():
    rule = TimeRule(
        "ny",
        (TimeRange.from_text("mon-fri", "09:00", "17:00"),),
        match="user:101",
        nomatch="user:102",
        timezone="America/New_York",
    )
    cfg = config(dids=[Did("+37052000000", "timerule:ny")], time_rules=[rule])
    # 12:00 in Vilnius is 05:00 in New York.
    assert dial(bridges(decide(inbound("+37052000000"), cfg, MONDAY_NOON).plan)[0]) == ["user/102@acme.example"]


def test_nested_time_rules():
    rules = [
        TimeRule(
            "weekend", (TimeRange.from_text("sat-sun", "00:00", "24:00"),), match="user:103", nomatch="timerule:office"
        ),
        OFFICE,
    ]
    cfg = config(
        dids=[Did("+37052000000", "timerule:weekend")], time_rules=rules, groups=[Group("200", members=("104",))]
    )
    assert dial(bridges(decide(inbound("+37052000000"), cfg, SATURDAY_NOON).plan)[0]) == ["user/103@acme.example"]
    assert dial(bridges(decide(inbound("+37052000000"), cfg, MONDAY_NOON).plan)[0]) == ["user/104@acme.example"]


def test_time_rule_with_a_bad_zone_is_a_decision_error():
    rule = TimeRule("bad", match="user:101", nomatch="user:102", timezone="Mars/Olympus")
    cfg = config(dids=[Did("+37052000000", "timerule:bad")], time_rules=[rule])
    with pytest.raises(DecisionError, match="Mars/Olympus"):
        decide(inbound("+37052000000"), cfg, MONDAY_NOON)


# --- R-SEQ, R-GRP --------------------------------------------------------------------------


def test_sequential_fixed_group_rings_each_member_once_in_order_then_the_fallback():
    group = Group("200", "Sales", "sequential", "fixed", 20, ("103", "101", "102"), fallback="voicemail:104")
    d = decide(internal("200", caller="104"), config(groups=[group]), MONDAY_NOON)
    (bridge,) = bridges(d.plan)
    assert bridge.to_apps() == [
        ("set", "continue_on_fail=true"),
        ("set", "hangup_after_bridge=true"),
        (
            "bridge",
            "[leg_timeout=20]user/103@acme.example|[leg_timeout=20]user/101@acme.example|[leg_timeout=20]user/102@acme.example",
        ),
    ]
    assert "one cycle" in bridge.reason
    assert kinds(walk(d.plan, ["NO_ANSWER"])) == ["SetVar", "SetVar", "Bridge", "Voicemail"]
    assert d.plan[1].to_apps() == [("set", "fsctl_target=group:200")]  # per-group statistics
    assert d.rotation_update == ()


def test_sequential_group_without_fallback_hangs_up_after_one_cycle():
    group = Group("200", strategy="sequential", ring_time=30, members=("101", "102"))
    d = decide(internal("200"), config(groups=[group]), MONDAY_NOON)
    assert kinds(d.plan) == ["SetVar", "SetVar", "Bridge", "Hangup"]
    assert [leg.timeout for leg in d.plan[2].legs] == [30, 30]


def test_group_own_number_never_rings():
    group = Group("200", strategy="sequential", members=("101", "200", "102", "101"))
    d = decide(internal("200"), config(groups=[group]), MONDAY_NOON)
    assert dial(bridges(d.plan)[0]) == ["user/101@acme.example", "user/102@acme.example"]


def test_rotating_group_starts_after_the_previous_start():
    group = Group("200", strategy="sequential", order="rotating", members=("101", "102", "103"))
    cfg = config(groups=[group])
    state = RotationState()
    starts = []
    for _ in range(4):
        d = decide(internal("200"), cfg, MONDAY_NOON, state)
        starts.append(dial(bridges(d.plan)[0]))
        state = state.apply(d.rotation_update)
    assert [s[0] for s in starts] == [
        "user/101@acme.example",
        "user/102@acme.example",
        "user/103@acme.example",
        "user/101@acme.example",
    ]
    assert starts[1] == ["user/102@acme.example", "user/103@acme.example", "user/101@acme.example"]


def test_rotating_group_update_is_compare_and_set_ready():
    group = Group("200", strategy="sequential", order="rotating", members=("101", "102", "103"))
    d = decide(internal("200"), config(groups=[group]), MONDAY_NOON, RotationState({"200": 5}))
    assert d.rotation_update == (RotationUpdate("200", previous=5, next_start=0),)
    assert dial(bridges(d.plan)[0])[0] == "user/103@acme.example"  # 5 % 3 = 2


def test_rotating_group_in_two_branches_gives_one_update_and_one_order():
    group = Group("200", strategy="sequential", order="rotating", members=("102", "103"))
    cfg = config(users=[User("101", forwarding=Forwarding(busy="group:200", no_answer="group:200"))], groups=[group])
    d = decide(internal("101"), cfg, MONDAY_NOON, RotationState({"200": 1}))
    assert d.rotation_update == (RotationUpdate("200", 1, 0),)
    busy, no_answer = (bridges(walk(d.plan, [cause]))[-1] for cause in ("USER_BUSY", "NO_ANSWER"))
    assert dial(busy) == dial(no_answer) == ["user/103@acme.example", "user/102@acme.example"]


def test_rotation_is_not_touched_for_other_groups():
    g1 = Group("200", strategy="sequential", order="rotating", members=("101", "102"))
    g2 = Group("201", strategy="sequential", order="fixed", members=("101", "102"))
    d = decide(internal("201"), config(groups=[g1, g2]), MONDAY_NOON, RotationState({"200": 1}))
    assert d.rotation_update == ()


def test_simultaneous_group_rings_all_at_once():
    group = Group("200", strategy="simultaneous", ring_time=25, members=("101", "102", "103"))
    d = decide(internal("200", caller="104"), config(groups=[group]), MONDAY_NOON)
    (bridge,) = bridges(d.plan)
    assert bridge.mode == "simultaneous"
    assert bridge.to_apps()[-1] == (
        "bridge",
        "[leg_timeout=25]user/101@acme.example,[leg_timeout=25]user/102@acme.example,[leg_timeout=25]user/103@acme.example",
    )


def test_random_group_order_comes_from_the_seed_not_the_global_rng():
    group = Group("200", strategy="random", members=tuple(str(n) for n in range(101, 105)))
    cfg = config(groups=[group])
    orders = set()
    for seed in range(30):
        random.seed(1)
        first = dial(bridges(decide(internal("200", random_seed=seed), cfg, MONDAY_NOON).plan)[0])
        random.seed(2)
        second = dial(bridges(decide(internal("200", random_seed=seed), cfg, MONDAY_NOON).plan)[0])
        assert first == second
        assert sorted(first) == [f"user/{n}@acme.example" for n in range(101, 105)]
        orders.add(tuple(first))
    assert len(orders) > 5
    assert bridges(decide(internal("200"), cfg, MONDAY_NOON).plan)[0].mode == "sequential"


def test_empty_group_goes_to_its_fallback():
    d = decide(internal("200"), config(groups=[Group("200", members=(), fallback="user:101")]), MONDAY_NOON)
    assert dial(bridges(d.plan)[0]) == ["user/101@acme.example"]
    assert "no members" in bridges(d.plan)[0].reason


def test_sequential_member_with_forwarding_is_a_decision_error():
    cfg = config(
        users=[User("102", forwarding=Forwarding(busy="user:103"))],
        groups=[Group("200", strategy="sequential", members=("101", "102"))],
    )
    with pytest.raises(DecisionError, match="102"):
        decide(internal("200"), cfg, MONDAY_NOON)


@pytest.mark.parametrize(
    "group, message",
    [
        (Group("200", strategy="sequential", ring_time=15, members=("101",)), "10, 20 or 30"),
        (Group("200", strategy="sequential", members=tuple(str(n) for n in range(101, 114))), "more than 12"),
        (Group("200", strategy="hunt", members=("101",)), "unknown strategy"),
        (Group("200", strategy="sequential", order="lifo", members=("101",)), "unknown order"),
        (Group("200", ring_time=0, members=("101",)), "bad ring time"),
    ],
)
def test_group_outside_the_product_limits_is_a_decision_error(group, message):
    users = [User(str(n)) for n in range(101, 114)]
    with pytest.raises(DecisionError, match=message):
        decide(internal("200", caller="101"), config(users=users, groups=[group]), MONDAY_NOON)


def test_sequential_group_of_twelve_is_fine():
    users = [User(str(n)) for n in range(101, 113)]
    group = Group("200", strategy="sequential", ring_time=10, members=tuple(u.number for u in users) + ("200",))
    d = decide(internal("200", caller="104"), config(users=users, groups=[group]), MONDAY_NOON)
    assert len(bridges(d.plan)[0].legs) == 12


def test_group_member_that_is_not_a_user_is_a_decision_error():
    with pytest.raises(DecisionError, match="user 999"):
        decide(internal("200"), config(groups=[Group("200", members=("101", "999"))]), MONDAY_NOON)


# --- hand-offs, external ----------------------------------------------------------------


@pytest.mark.parametrize("number, ext", [("500", "ivr-500"), ("600", "queue-600"), ("700", "conference-700")])
def test_ivr_queue_conference_are_handed_to_the_dialplan(number, ext):
    d = decide(internal(number), config(), MONDAY_NOON)
    assert plan_apps(d.plan)[-1] == ("transfer", f"{ext} XML acme.example")


def test_external_destination_via_gateway():
    cfg = config(dids=[Did("+37052000000", "external:+4930123456")])
    d = decide(inbound("+37052000000"), cfg, MONDAY_NOON)
    assert dial(bridges(d.plan)[0]) == ["sofia/gateway/pstn/+4930123456"]


# --- R-REC ---------------------------------------------------------------------------------


def test_recorded_user_hears_the_announcement_and_is_recorded_before_bridging():
    cfg = config(users=[User("101", record=True)])
    d = decide(CallFacts(D, "104", "101", uuid="8b25adfa-2dd4"), cfg, MONDAY_NOON)
    assert kinds(d.plan)[:6] == ["SetVar", "SetVar", "Answer", "Playback", "StartRecording", "Bridge"]
    assert d.plan[2] == Answer(early=True, reason=d.plan[2].reason)
    assert d.plan[3] == Playback("tone_stream://%(400,0,800)", reason=d.plan[3].reason)
    # The layout of fsctl.calllogic.recpath: user, direction and counterpart are in the name.
    assert d.plan[4].path == (
        "/var/lib/freeswitch/recordings/acme.example/2026/11/23/20261123T100000Z_101_internal_104_8b25adfa-2dd4.wav"
    )
    assert "R-REC" in d.plan[4].reason
    # the recorded user is told too: a beep on their own leg when they answer
    assert bridges(d.plan)[0].to_apps()[-1] == (
        "bridge",
        "[leg_timeout=20,execute_on_answer_1='playback tone_stream://%(200,0,1000)']user/101@acme.example",
    )


def test_beep_stays_on_the_recorded_leg_only():
    cfg = config(users=[User("101", record=True, forwarding=Forwarding(busy="user:102"))])
    d = decide(internal("101"), cfg, MONDAY_NOON)
    ran = walk(d.plan, ["USER_BUSY"])
    assert bridges(ran)[-1].legs[0].variables == ()
    assert "bridge_pre_execute" not in str(plan_apps(d.plan))


def test_call_from_a_recorded_user_is_recorded():
    cfg = config(users=[User("104", record=True)])
    d = decide(internal("101", caller="104"), cfg, MONDAY_NOON)
    recs = [s for s in d.plan if isinstance(s, StartRecording)]
    assert len(recs) == 1 and recs[0].path.endswith("Z_104_internal_101_u-1.wav")
    assert kinds(d.plan).index("StartRecording") < kinds(d.plan).index("Bridge")


def test_recording_starts_once_when_both_parties_are_recorded():
    cfg = config(users=[User("104", record=True), User("101", record=True)])
    d = decide(internal("101", caller="104"), cfg, MONDAY_NOON)
    assert kinds(d.plan).count("StartRecording") == 1


def test_unrecorded_user_has_no_recording_steps():
    d = decide(internal("101"), config(), MONDAY_NOON)
    assert not {"StartRecording", "Playback", "Answer"} & set(kinds(d.plan))


def test_recorded_group_member_is_recorded_on_its_own_leg():
    cfg = config(users=[User("102", record=True)], groups=[Group("200", strategy="sequential", members=("101", "102"))])
    d = decide(internal("200", caller="104"), cfg, MONDAY_NOON)
    bridge = bridges(d.plan)[0]
    assert bridge.legs[0].variables == ()
    variables = dict(bridge.legs[1].variables)
    assert variables["execute_on_answer_1"].startswith("playback ")
    assert variables["execute_on_answer_2"].startswith("record_session /var/lib/freeswitch/recordings/acme.example/")
    # The member's leg carries the path, so its hang-up event catalogues the file.
    assert variables["fsctl_recording_path"] == variables["execute_on_answer_2"].split(" ", 1)[1]
    assert "Playback" in kinds(d.plan)  # the caller is told


# --- two tiers of failure -------------------------------------------------------------------


@pytest.mark.parametrize(
    "did_dest, extra, message",
    [
        ("user:999", {}, "user 999 does not exist"),
        ("group:299", {}, "group 299 does not exist"),
        ("timerule:none", {}, "time rule none does not exist"),
        ("ivr:599", {}, "ivr 599 does not exist"),
        ("queue:699", {}, "queue 699 does not exist"),
        ("conference:799", {}, "conference 799 does not exist"),
        ("voicemail:101", {"users": [User("101", vm_enabled=False)]}, "voicemail switched off"),
        ("external:12", {}, "not a phone number"),
    ],
)
def test_inconsistent_configuration_raises_decision_error(did_dest, extra, message):
    cfg = config(dids=[Did("+37052000000", did_dest)], **extra)
    with pytest.raises(DecisionError, match=message):
        decide(inbound("+37052000000"), cfg, MONDAY_NOON)


def test_decide_fallback_routes_the_tenant_fallback():
    cfg = config(fallback="user:103")
    d = decide_fallback(internal("101"), cfg, MONDAY_NOON, "group 200 broken")
    assert dial(bridges(d.plan)[0]) == ["user/103@acme.example"]
    assert bridges(d.plan)[0].reason.startswith("group 200 broken; tenant fallback -> user:103")


def test_decide_fallback_hangs_up_when_the_fallback_is_broken_too():
    d = decide_fallback(internal("101"), config(fallback="user:999"), MONDAY_NOON, "boom")
    assert d.plan == (Hangup("NORMAL_TEMPORARY_FAILURE", reason=d.plan[0].reason),)
    assert "boom; tenant fallback failed" in d.plan[0].reason


def test_very_deep_branching_is_bounded():
    users = [
        User(
            str(n), forwarding=Forwarding(busy=f"user:{n + 1}", no_answer=f"user:{n + 1}", unreachable=f"user:{n + 1}")
        )
        for n in range(300, 340)
    ]
    cfg = config(users=users + [User("340")])
    with pytest.raises(DecisionError, match="steps"):
        decide(internal("300"), cfg, MONDAY_NOON)


# --- explain, facts from events ----------------------------------------------------------


def test_explain_rows():
    d = decide(internal("101"), config(users=[User("101", vm_enabled=False)]), MONDAY_NOON)
    rows = explain(d)
    assert rows[0] == {
        "step": "SetVar",
        "apps": [["set", "fsctl_route=user:101"]],
        "reason": "dialled 101 -> user:101",
        "depth": 0,
        "branch": "",
    }
    assert [(r["step"], r["depth"]) for r in rows] == [
        ("SetVar", 0),
        ("Bridge", 0),
        ("Hangup", 1),
        ("Hangup", 1),
        ("Hangup", 0),
    ]
    assert rows[2]["branch"].startswith("busy (") and rows[3]["branch"].startswith("no_answer (")
    assert all(r["reason"] for r in rows)


def _first_event(path, name):
    """The decoded headers of the first plain event `name` in a capture."""
    text = path.read_text(errors="replace")
    for block in text.split("\n\n"):
        if f"Event-Name: {name}\n" in block + "\n":
            headers = {}
            for line in block.splitlines():
                key, sep, value = line.partition(": ")
                if sep and not key.startswith("#"):
                    headers[key] = unquote(value)
            return headers
    raise AssertionError(f"no {name} in {path}")


def test_facts_from_a_real_channel_park_event():
    headers = _first_event(CAPTURES / "esl_events_plain_call.txt", "CHANNEL_PARK")
    facts = CallFacts.from_event(headers)
    assert facts.uuid == "5b3085ff-48ea-4cdb-b16f-79982ccc7b1e"
    assert (facts.caller_number, facts.caller_name, facts.dialled) == ("1000", "1000", "7701")
    assert facts.domain == "default"  # user_context of the vanilla 1000
    assert facts.did is None and facts.direction == "internal"
    assert facts.random_seed == CallFacts.from_event(headers).random_seed


def test_facts_from_a_real_tenant_call():
    headers = _first_event(CAPTURES / "esl_events_plain_bridge_acme.txt", "CHANNEL_HANGUP")
    facts = CallFacts.from_event(headers, random_seed=7)
    assert (facts.domain, facts.caller_number, facts.dialled) == ("acme.example", "101", "102")
    d = decide(facts, config(), MONDAY_NOON)
    assert ("bridge", "[leg_timeout=20]user/102@acme.example") in plan_apps(d.plan)


def test_facts_for_a_public_number_call():
    headers = {
        "Unique-ID": "abc",
        "Caller-Caller-ID-Number": "+37061234567",
        "Caller-Destination-Number": "+37052000000",
        "variable_fsctl_tenant": "acme.example",
        "variable_fsctl_did": "+37052000000",
        "variable_domain_name": "127.0.0.1",
    }
    facts = CallFacts.from_event(headers)
    assert (facts.domain, facts.did, facts.direction) == ("acme.example", "+37052000000", "inbound")


def test_recording_paths_follow_the_catalogue_layout():
    """Every recording path parses back to the call's facts with fsctl.services.recordings.parse_relpath."""
    from fsctl.services.recordings import parse_relpath

    cfg = config(users=[User("101", record=True)], dids=[Did("+37052000000", "user:101")])
    d = decide(inbound("+37052000000", caller="+37061234567"), cfg, MONDAY_NOON)
    path = [s for s in d.plan if isinstance(s, StartRecording)][0].path
    fields = parse_relpath(path.split("/var/lib/freeswitch/recordings/", 1)[1])
    assert (fields.domain, fields.user, fields.direction, fields.counterpart) == (
        "acme.example",
        "101",
        "in",
        "+37061234567",
    )
    cfg = config(users=[User("101", record=True)], dids=[Did("+37052000000", "external:+4930123456")])
    internal_out = decide(
        CallFacts(D, "101", "102", uuid="u-9"), config(users=[User("101", record=True), User("102")]), MONDAY_NOON
    )
    path = [s for s in internal_out.plan if isinstance(s, StartRecording)][0].path
    fields = parse_relpath(path.split("recordings/", 1)[1])
    assert (fields.user, fields.direction, fields.counterpart) == ("101", "internal", "102")


def test_outgoing_call_of_a_recorded_user_is_recorded_then_bridged_to_the_gateway():
    cfg = config(users=[User("101", record=True)])
    facts = CallFacts(D, "101", "+4930123456", uuid="u-out", outbound=True)
    d = decide(facts, cfg, MONDAY_NOON)
    assert kinds(d.plan)[-2:] == ["StartRecording", "Bridge"]
    assert dial(bridges(d.plan)[0]) == ["sofia/gateway/pstn/+4930123456"]
    assert "_101_out_+4930123456_u-out.wav" in [s for s in d.plan if isinstance(s, StartRecording)][0].path
    # Without the dialplan's hand-off flag an unknown number is no route (the toll check is the dialplan's).
    plain = decide(CallFacts(D, "101", "+4930123456", uuid="u-out"), cfg, MONDAY_NOON)
    assert plain.plan[-1].to_apps() == [("hangup", "NO_ROUTE_DESTINATION")]


def test_outbound_flag_comes_from_the_dialplan_and_never_applies_to_public_calls():
    headers = {
        "Unique-ID": "u",
        "Caller-Destination-Number": "+4930123456",
        "Caller-Caller-ID-Number": "101",
        "variable_fsctl_tenant": D,
        "variable_fsctl_outbound": "true",
    }
    assert CallFacts.from_event(headers).outbound is True
    assert CallFacts.from_event({**headers, "variable_fsctl_did": "+37052000000"}).outbound is False


# --- issue 11: a park decides for where the call is now; the carrier's leg is the tenant's -------------


def test_a_public_number_call_parked_again_is_decided_for_the_number_it_was_sent_to():
    """FACTS.md: a transfer that parks raises a second CHANNEL_PARK, fsctl_did still set. Parked in the
    public context it is the DID's scenario; parked in the tenant's context (a menu's digit, a time
    rule, a fallback, a transfer sent it there) it is the number it is at now."""
    group = Group("200", strategy="simultaneous", members=("102", "103"))
    cfg = config(groups=[group], dids=[Did("+37052000000", "ivr:500")])
    at_did = inbound("+37052000000", context="fsctl-public")
    assert at_did.at_did
    assert plan_apps(decide(at_did, cfg, MONDAY_NOON).plan)[-1] == ("transfer", "ivr-500 XML acme.example")
    sent_on = CallFacts(D, "+37061234567", "200", did="+37052000000", direction="inbound", uuid="u-2", context=D)
    assert not sent_on.at_did
    d = decide(sent_on, cfg, MONDAY_NOON)
    assert [dial(b) for b in bridges(d.plan)] == [["user/102@acme.example", "user/103@acme.example"]]
    assert d.plan[0] == SetVar("fsctl_route", "group:200", reason=d.plan[0].reason)
    # Still a caller from outside: the blacklist holds on every park.
    listed = config(groups=[group], dids=[Did("+37052000000", "ivr:500")], blacklist=[BlacklistEntry("+37061234567")])
    assert plan_apps(decide(sent_on, listed, MONDAY_NOON).plan) == [("hangup", "CALL_REJECTED")]


def test_the_context_comes_from_the_park_event():
    headers = {
        "Unique-ID": "u-9",
        "Caller-Caller-ID-Number": "+37061234567",
        "Caller-Destination-Number": "200",
        "Caller-Context": "acme.example",
        "variable_fsctl_tenant": D,
        "variable_fsctl_did": "+37052000000",
    }
    facts = CallFacts.from_event(headers)
    assert (facts.context, facts.did, facts.at_did) == ("acme.example", "+37052000000", False)
    assert CallFacts.from_event({**headers, "Caller-Context": "fsctl-public"}).at_did


def test_an_outside_call_carries_the_tenants_transfer_context_and_the_outbound_name():
    """A REFER from the user moves the carrier's leg, resolved in its own context (FACTS.md); the
    carrier sees the user's outbound name (the tenant's or the DID's), never the internal name."""
    cfg = config(users=[User("101", "Vartotojas 101 Žąsinas", record=True, outbound_name="ACME UAB")])
    d = decide(CallFacts(D, "101", "061230001", uuid="u-3", outbound=True), cfg, MONDAY_NOON)
    (leg,) = bridges(d.plan)[0].legs
    assert dict(leg.variables) == {"force_transfer_context": D, "origination_caller_id_name": "ACME UAB"}
    assert "Žąsinas" not in bridges(d.plan)[0].dial_string()
    # A public number's caller forwarded out keeps their own name: no name is put on the leg.
    cfg = config(dids=[Did("+37052000000", "external:+4930123456")])
    (leg,) = bridges(decide(inbound("+37052000000"), cfg, MONDAY_NOON).plan)[0].legs
    assert dict(leg.variables) == {"force_transfer_context": D}


def test_outbound_name_rule():
    from fsctl.calllogic.callconfig import outbound_name

    assert outbound_name("ACME", None, None) == "ACME"
    assert outbound_name("ACME", None, "Main line") == "Main line"
    assert outbound_name("ACME", "ACME UAB", "Main line") == "ACME UAB"
    assert outbound_name("ACME", "ACME UAB", "Main line", "Sales desk") == "Sales desk"
    # Safe inside `[name=value]` of a dial string and as a SIP display name.
    assert outbound_name('Jonas\' [shop], "best"  ') == "Jonas\u2019 (shop)\u201a \u201dbest\u201d"


def test_a_dialled_number_with_a_trailing_line_feed_is_no_route():
    """`$` in Python accepts a trailing newline: "+4930123456\\n" went to the gateway (and on to the wire)."""
    cfg = config(users=[User("101")])
    d = decide(CallFacts(D, "101", "+4930123456\n", uuid="u-out", outbound=True), cfg, MONDAY_NOON)
    assert d.plan[-1].to_apps() == [("hangup", "NO_ROUTE_DESTINATION")]
    assert not bridges(d.plan)
