"""fsctl trace and the model -> snapshot bridge (both engines)."""

import json

from fsctl.calllogic.decide import RotationUpdate
from fsctl.services import dids, groups, tenants, timerules, users
from fsctl.services.snapshot import build_tenant_config, load_rotation, save_rotation


def provision(fsctl):
    fsctl("tenant", "add", "acme.example", "--name", "ACME", "--tz", "Europe/Vilnius")
    for n in ("101", "102", "103"):
        fsctl("user", "add", "acme.example", n, "--name", f"U{n}")
    fsctl(
        "group",
        "add",
        "acme.example",
        "200",
        "--name",
        "Hunt",
        "--strategy",
        "sequential",
        "--order",
        "rotating",
        "--ring-time",
        "10",
        "--member",
        "101",
        "--member",
        "102",
        "--member",
        "103",
        "--fallback",
        "voicemail:101",
    )
    fsctl(
        "timerule",
        "add",
        "acme.example",
        "office",
        "--range",
        "mon-fri 08:00-17:00",
        "--holiday",
        "2026-12-24",
        "--match",
        "group:200",
        "--nomatch",
        "voicemail:102",
    )
    fsctl("did", "add", "acme.example", "+37052000000", "--to", "timerule:office")
    fsctl("blacklist", "add", "acme.example", "+1900", "--prefix")
    fsctl("contact", "add", "acme.example", "+37069999999", "--name", "Jonas $HOME")


def trace(fsctl, *args):
    return json.loads(fsctl("trace", "acme.example", *args, "--json").stdout)


def test_trace_follows_time_rule_and_holiday(fsctl):
    provision(fsctl)
    working = trace(fsctl, "+37069999999", "+37052000000", "--at", "2026-12-02 10:30")
    assert working["direction"] == "inbound" and working["at"] == "2026-12-02T10:30:00+02:00"
    steps = [row["step"] for row in working["plan"]]
    assert steps[0] == "SetCallerName" and "Bridge" in steps
    bridge = next(r for r in working["plan"] if r["step"] == "Bridge")
    assert "[leg_timeout=10]user/101@acme.example|[leg_timeout=10]user/102@acme.example" in bridge["apps"][-1][1]
    assert working["rotation"] == [{"group": "200", "from": 0, "to": 1}]
    holiday = trace(fsctl, "+37069999999", "+37052000000", "--at", "2026-12-24 10:30")
    assert holiday["plan"][-1]["step"] == "Voicemail" and "holiday" in holiday["plan"][-1]["reason"]


def test_trace_blacklisted_and_unknown(fsctl):
    provision(fsctl)
    refused = trace(fsctl, "+19005551234", "+37052000000")
    assert [r["apps"] for r in refused["plan"]] == [[["hangup", "CALL_REJECTED"]]]
    unknown = trace(fsctl, "101", "999")
    assert unknown["plan"][-1]["apps"] == [["hangup", "NO_ROUTE_DESTINATION"]]


def test_trace_reads_rotation_state(fsctl):
    provision(fsctl)
    from fsctl.model import Tenant

    save_rotation(Tenant.get(), [RotationUpdate("200", 0, 2)])
    result = trace(fsctl, "101", "200", "--at", "2026-12-02 10:30")
    bridge = next(r for r in result["plan"] if r["step"] == "Bridge")
    assert bridge["apps"][-1][1].startswith("[leg_timeout=10]user/103@acme.example|")


def test_trace_bad_input(fsctl):
    provision(fsctl)
    result = fsctl("trace", "acme.example", "101", "200", "--at", "tomorrow", ok=False)
    assert result.exit_code == 2
    assert result.stderr.strip() == 'Error: trace.at "tomorrow": must be a date and time like 2026-12-24 18:30'


def test_snapshot_matches_model(db):
    tenants.add_tenant("acme.example", "ACME", "Europe/Vilnius")
    for n in ("101", "102"):
        users.add_user("acme.example", n, f"U{n}")
    users.edit_user("acme.example", "101", forward={"busy": "voicemail:101"})
    groups.add_group("acme.example", "200", "G", strategy="sequential", members=["102"], ring_time=30)
    timerules.add_timerule(
        "acme.example", "night", "user:101", "user:102", ["fri 22:00-06:00"], ["2026-12-24 14:00-24:00"]
    )
    dids.add_did("acme.example", "+37052000000", "timerule:night")
    from fsctl.model import Tenant

    config = build_tenant_config(Tenant.get())
    assert str(config.users["101"].forwarding.busy) == "voicemail:101"
    assert config.groups["200"].members == ("102",) and config.groups["200"].ring_time == 30
    rule = config.time_rules["night"]
    assert str(rule.ranges[0]) == "fri 22:00-06:00" and str(rule.holidays[0]) == "2026-12-24 14:00-24:00"
    assert str(config.dids["+37052000000"].destination) == "timerule:night"


def test_rotation_compare_and_set(db):
    tenants.add_tenant("acme.example", "ACME")
    for n in ("101", "102"):
        users.add_user("acme.example", n, f"U{n}")
    groups.add_group("acme.example", "200", "G", strategy="sequential", order="rotating", members=["101", "102"])
    from fsctl.model import Tenant

    tenant = Tenant.get()
    assert save_rotation(tenant, [RotationUpdate("200", 0, 1)]) == []
    # A second writer that read the old state loses, and the state is not overwritten.
    assert save_rotation(tenant, [RotationUpdate("200", 0, 1)]) == ["200"]
    assert load_rotation(tenant).start_for("200") == 1
    assert save_rotation(tenant, [RotationUpdate("200", 1, 0)]) == []
    assert load_rotation(tenant).start_for("200") == 0
    # Changing the members restarts the rotation.
    assert save_rotation(tenant, [RotationUpdate("200", 0, 1)]) == []
    groups.edit_group("acme.example", "200", add_members=[])
    assert load_rotation(tenant).start_for("200") == 0


def test_rotation_moves_that_follow_each_other_are_one_compare_and_set(db):
    tenants.add_tenant("acme.example", "ACME")
    for n in ("101", "102", "103"):
        users.add_user("acme.example", n, f"U{n}")
    groups.add_group("acme.example", "200", "G", strategy="sequential", order="rotating", members=["101", "102", "103"])
    from fsctl.model import GroupRotation, Tenant

    tenant = Tenant.get()
    chain = [RotationUpdate("200", 0, 1), RotationUpdate("200", 1, 2), RotationUpdate("200", 2, 0)]
    assert save_rotation(tenant, chain) == []
    assert GroupRotation.get().calls == 3 and load_rotation(tenant).start_for("200") == 0
    assert save_rotation(tenant, chain[:2]) == []
    assert GroupRotation.get().calls == 5 and load_rotation(tenant).start_for("200") == 2
    # Another writer moved it from 2 to 0: the whole chain read from the old state loses.
    assert save_rotation(tenant, [RotationUpdate("200", 2, 0), RotationUpdate("200", 0, 1)]) == []
    assert save_rotation(tenant, [RotationUpdate("200", 2, 0), RotationUpdate("200", 0, 1)]) == ["200"]
    assert GroupRotation.get().calls == 7 and load_rotation(tenant).start_for("200") == 1
