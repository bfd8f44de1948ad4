"""Properties of group ringing (R-SEQ, R-GRP) and of plans, over generated configurations."""

from collections import Counter
from datetime import datetime, timezone

from hypothesis import given, settings, strategies as st

from fsctl.calllogic.callconfig import Destination, Did, Forwarding, Group, Tenant, TenantConfig, User
from fsctl.calllogic.decide import CallFacts, RotationState, decide, ring_order
from fsctl.calllogic.plan import Bridge, iter_steps, walk
from fsctl.freeswitch import chanvars

D = "acme.example"
NOW = datetime(2026, 11, 23, 10, 0, tzinfo=timezone.utc)
CHANVAR_NAMES = {v for k, v in vars(chanvars).items() if k.isupper() and isinstance(v, str)}
POOL = [str(n) for n in range(100, 130)]
GROUP_NUMBER = "200"


@st.composite
def sequential_groups(draw, strategy="sequential"):
    members = draw(st.lists(st.sampled_from(POOL), min_size=1, max_size=12, unique=True))
    # The group's own number may sneak into the list: it must never ring.
    if draw(st.booleans()):
        members.insert(draw(st.integers(0, len(members))), GROUP_NUMBER)
    return Group(
        GROUP_NUMBER,
        "G",
        strategy,
        draw(st.sampled_from(["fixed", "rotating"])),
        draw(st.sampled_from([10, 20, 30])),
        tuple(members),
        fallback=draw(st.sampled_from(["hangup", "user:129", "voicemail:129"])),
    )


def cfg_for(group):
    return TenantConfig.build(Tenant(D, "Europe/Vilnius"), users=[User(n) for n in POOL], groups=[group])


def rung(decision):
    (first,) = [s for s in decision.plan if isinstance(s, Bridge)][:1]
    return [leg.target.split("/")[1].split("@")[0] for leg in first.legs]


def is_rotation(seq, base):
    return len(seq) == len(base) and any(seq == base[k:] + base[:k] for k in range(len(base)))


@settings(max_examples=300, deadline=None)
@given(group=sequential_groups(), start=st.integers(0, 10_000))
def test_sequential_ring_order_is_a_rotation_each_member_once_never_the_group(group, start):
    members = [m for m in group.members if m != GROUP_NUMBER]
    d = decide(CallFacts(D, "129", GROUP_NUMBER), cfg_for(group), NOW, RotationState({GROUP_NUMBER: start}))
    order = rung(d)
    assert GROUP_NUMBER not in order
    assert Counter(order) == Counter(members)  # each member exactly once: one cycle
    assert is_rotation(order, members)
    if group.order == "fixed":
        assert order == members
        assert d.rotation_update == ()
    else:
        assert order[0] == members[start % len(members)]
        (upd,) = d.rotation_update
        assert upd.previous == start and upd.next_start == (start % len(members) + 1) % len(members)
    bridge = next(s for s in d.plan if isinstance(s, Bridge))
    assert bridge.mode == "sequential"
    assert all(leg.timeout == group.ring_time for leg in bridge.legs)
    assert bridge.dial_string().count("|") == len(members) - 1


@settings(max_examples=100, deadline=None)
@given(group=sequential_groups(), start=st.integers(0, 50), rounds=st.integers(1, 4))
def test_consecutive_calls_start_on_each_member_equally_often(group, start, rounds):
    group = Group(group.number, group.name, "sequential", "rotating", group.ring_time, group.members, group.fallback)
    members = [m for m in group.members if m != GROUP_NUMBER]
    cfg = cfg_for(group)
    state = RotationState({GROUP_NUMBER: start})
    firsts = Counter()
    for _ in range(rounds * len(members)):
        d = decide(CallFacts(D, "129", GROUP_NUMBER), cfg, NOW, state)
        firsts[rung(d)[0]] += 1
        state = state.apply(d.rotation_update)
    assert firsts == Counter({m: rounds for m in members})


@settings(max_examples=100, deadline=None)
@given(group=sequential_groups("random"), seed=st.integers(0, 2**32))
def test_random_order_is_a_permutation_without_the_group(group, seed):
    members = [m for m in group.members if m != GROUP_NUMBER]
    d = decide(CallFacts(D, "129", GROUP_NUMBER, random_seed=seed), cfg_for(group), NOW)
    assert sorted(rung(d)) == sorted(members)
    assert rung(d) == list(ring_order(group, 0, seed))
    assert d.rotation_update == ()


@settings(max_examples=100, deadline=None)
@given(group=sequential_groups("simultaneous"))
def test_simultaneous_rings_everyone_at_once(group):
    members = [m for m in group.members if m != GROUP_NUMBER]
    d = decide(CallFacts(D, "129", GROUP_NUMBER), cfg_for(group), NOW)
    bridge = next(s for s in d.plan if isinstance(s, Bridge))
    assert bridge.mode == "simultaneous" and rung(d) == members
    assert "|" not in bridge.dial_string()


# --- generated tenants: every plan terminates, is bounded and carries reasons ---------------

NUMS = ["101", "102", "103", "104"]
dest_texts = st.sampled_from(
    [f"user:{n}" for n in NUMS]
    + ["group:200", "group:201", "voicemail:101", "hangup", "hangup:USER_BUSY", "external:+37061111111", "ivr:500"]
)
optional = st.none() | dest_texts


@st.composite
def tenants(draw):
    users = [
        User(
            n,
            record=draw(st.booleans()),
            vm_enabled=True,
            forwarding=Forwarding(
                draw(st.none() | dest_texts) if draw(st.booleans()) else None,
                draw(optional),
                draw(optional),
                draw(optional),
            ),
        )
        for n in NUMS
    ]
    groups = [
        Group(
            "200",
            strategy="simultaneous",
            members=tuple(draw(st.lists(st.sampled_from(NUMS), max_size=4))),
            fallback=draw(dest_texts),
        ),
        Group(
            "201",
            strategy="random",
            members=tuple(draw(st.lists(st.sampled_from(NUMS), max_size=4))),
            fallback=draw(dest_texts),
        ),
    ]
    from fsctl.calllogic.callconfig import Ivr

    return TenantConfig.build(
        Tenant(D, fallback=draw(dest_texts)),
        users=users,
        groups=groups,
        ivrs=[Ivr("500")],
        dids=[Did("+37052000000", draw(dest_texts))],
    )


@settings(max_examples=200, deadline=None)
@given(
    cfg=tenants(),
    outcomes=st.lists(st.sampled_from(["USER_BUSY", "NO_ANSWER", "USER_NOT_REGISTERED", "SUCCESS"]), max_size=12),
)
def test_any_plan_is_finite_reasoned_and_safe(cfg, outcomes):
    call = CallFacts(D, "+37061234567", "+37052000000", did="+37052000000", direction="inbound", uuid="x")
    d = decide(call, cfg, NOW)
    steps = [s for s, _, _ in iter_steps(d.plan)]
    assert steps and len(steps) < 2000
    assert all(s.reason for s in steps)
    ran = walk(d.plan, outcomes)
    # A run ends on a terminal step, an answered bridge or a bridge whose failure ends the plan.
    assert ran[-1].terminal or isinstance(ran[-1], Bridge)
    for s in steps:
        for app, arg in s.to_apps():
            assert "${" not in arg and "\n" not in arg
            if app == "set":
                assert arg.split("=", 1)[0] in CHANVAR_NAMES  # names live in fs_scripts.chanvars
        if isinstance(s, Bridge):
            for leg in s.legs:
                assert all(name.rstrip("_12") in CHANVAR_NAMES for name, _ in leg.variables)
    # On the path a call takes, each recorded user's recording starts at most once (the plan is a
    # tree: separate busy / no-answer branches may each reach the same recorded user).
    started = [s.path for s in ran if s.kind == "StartRecording"]
    assert len(started) == len(set(started)) <= len(NUMS) + 1


def test_destination_module_stays_dependency_free():
    import fsctl.calllogic.callconfig as mod

    source = open(mod.__file__).read()
    assert "import peewee" not in source and "from fsctl" not in source
    assert str(Destination.parse("user:101")) == "user:101"
