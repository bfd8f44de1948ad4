"""fsctl.freeswitch.callcenter: the callcenter_config commands planned from callcenter files, and how they are sent.

The replies used here are those of mod_callcenter's source (tests/fakes/callcenter.py says where);
there is no recorded capture of mod_callcenter.
"""

import textwrap

import pytest

from fsctl.errors import OperationError
from fsctl.freeswitch import callcenter as cc
from tests.fakes.callcenter import FakeCallcenter

Q = "600@acme.example"
AGENT = {
    "type": "callback",
    "contact": "[leg_timeout=20]user/102@acme.example",
    "status": "Available",
    "max-no-answer": "3",
    "wrap-up-time": "10",
    "reject-delay-time": "10",
    "busy-delay-time": "30",
}
PARAMS = (("strategy", "longest-idle-agent"), ("max-wait-time", "120"))


def state(queues=None, agents=None, tiers=None):
    return cc.State(queues=queues or {}, agents=agents or {}, tiers=tiers or {})


def texts(commands):
    return [c.text for c in commands]


def agent_add_texts(name, contact_number):
    contact = f"[leg_timeout=20]user/{contact_number}@acme.example"
    return [
        f"callcenter_config agent add {name} callback",
        f"callcenter_config agent set contact {name} {contact}",
        f"callcenter_config agent set status {name} Available",
        f"callcenter_config agent set wrap_up_time {name} 10",
        f"callcenter_config agent set max_no_answer {name} 3",
        f"callcenter_config agent set reject_delay_time {name} 10",
        f"callcenter_config agent set busy_delay_time {name} 30",
    ]


BASE = state({Q: PARAMS}, {"102@acme.example": AGENT}, {(Q, "102@acme.example"): ("1", "1")})


# --- diff: the smallest set of commands -----------------------------------------------------


def test_nothing_changed_means_no_command():
    assert cc.diff_commands(BASE, state(dict(BASE.queues), dict(BASE.agents), dict(BASE.tiers))) == []


def test_queue_added_is_loaded_with_its_agents_and_tiers():
    assert texts(cc.diff_commands(state(), BASE)) == [
        f"callcenter_config queue load {Q}",
        *agent_add_texts("102@acme.example", "102"),
        f"callcenter_config tier add {Q} 102@acme.example 1 1",
    ]


def test_queue_changed_is_reloaded():
    changed = state({Q: (("strategy", "round-robin"), ("max-wait-time", "120"))}, BASE.agents, BASE.tiers)
    assert texts(cc.diff_commands(BASE, changed)) == [f"callcenter_config queue reload {Q}"]


def test_queue_removed_is_unloaded_after_its_tiers_and_agents():
    assert texts(cc.diff_commands(BASE, state())) == [
        f"callcenter_config tier del {Q} 102@acme.example",
        "callcenter_config agent del 102@acme.example",
        f"callcenter_config queue unload {Q}",
    ]


def test_agent_added_and_removed():
    new = state(
        BASE.queues,
        {"103@acme.example": dict(AGENT, contact="[leg_timeout=20]user/103@acme.example")},
        {(Q, "103@acme.example"): ("1", "1")},
    )
    assert texts(cc.diff_commands(BASE, new)) == [
        *agent_add_texts("103@acme.example", "103"),
        f"callcenter_config tier del {Q} 102@acme.example",
        f"callcenter_config tier add {Q} 103@acme.example 1 1",
        "callcenter_config agent del 102@acme.example",
    ]


def test_agent_changed_sets_only_what_changed():
    new = state(
        BASE.queues, {"102@acme.example": dict(AGENT, **{"wrap-up-time": "20", "type": "uuid-standby"})}, BASE.tiers
    )
    assert texts(cc.diff_commands(BASE, new)) == [
        "callcenter_config agent set type 102@acme.example uuid-standby",
        "callcenter_config agent set wrap_up_time 102@acme.example 20",
    ]


def test_tier_changed_sets_level_and_position():
    new = state(BASE.queues, BASE.agents, {(Q, "102@acme.example"): ("2", "3")})
    assert texts(cc.diff_commands(BASE, new)) == [
        f"callcenter_config tier set level {Q} 102@acme.example 2",
        f"callcenter_config tier set position {Q} 102@acme.example 3",
    ]


def test_resync_reloads_adds_and_deletes_whatever_may_be_there():
    maybe = cc.union(
        BASE.keys(),
        {
            "queues": {"601@acme.example"},
            "agents": {"104@acme.example"},
            "tiers": {("601@acme.example", "104@acme.example")},
        },
    )
    assert texts(cc.resync_commands(maybe, BASE)) == [
        f"callcenter_config queue reload {Q}",
        *agent_add_texts("102@acme.example", "102"),
        "callcenter_config tier del 601@acme.example 104@acme.example",
        f"callcenter_config tier add {Q} 102@acme.example 1 1",
        "callcenter_config agent del 104@acme.example",
        "callcenter_config queue unload 601@acme.example",
    ]


@pytest.mark.parametrize("bad", ["a b", "x'y", 'x"y', "a\\b", "", "a\nb"])
def test_an_argument_callcenter_config_would_split_is_refused(bad):
    with pytest.raises(ValueError, match="cannot be a callcenter_config argument"):
        cc.agent_set("contact", "102@acme.example", bad)


# --- the files ------------------------------------------------------------------------------


def write(folder, kind, text):
    path = folder / f"{kind}.xml"
    path.write_text(textwrap.dedent(text))
    return path


def test_read_state_from_rendered_files(tmp_path):
    paths = {
        "queues": write(
            tmp_path,
            "queues",
            f"""\
            <include>
              <queue name="{Q}">
                <param name="strategy" value="longest-idle-agent"/>
                <param name="max-wait-time" value="120"/>
              </queue>
            </include>
            """,
        ),
        "agents": write(
            tmp_path,
            "agents",
            """\
            <include>
              <agent name="102@acme.example" type="callback" contact="[leg_timeout=20]user/102@acme.example"
                     status="Available" max-no-answer="3" wrap-up-time="10" reject-delay-time="10"
                     busy-delay-time="30" color="blue"/>
            </include>
            """,
        ),
        "tiers": write(
            tmp_path,
            "tiers",
            f"""\
            <include>
              <tier agent="102@acme.example" queue="{Q}" level="1" position="1"/>
            </include>
            """,
        ),
    }
    assert cc.read_state(paths) == BASE  # "color": mod_callcenter's load_agent() reads no such attribute
    assert cc.read_state({"queues": None}) == state()


def test_read_state_refuses_what_add_cannot_send(tmp_path):
    agents = write(tmp_path, "agents", '<include>\n<agent name="102@acme.example" contact="x"/>\n</include>\n')
    with pytest.raises(OperationError, match='agent "102@acme.example" has no type'):
        cc.read_state({"agents": agents})
    assert cc.read_state({"agents": agents}, strict=False).agents == {"102@acme.example": {"contact": "x"}}


def test_domain_of():
    assert cc.domain_of("callcenter/tiers/acme.example.xml") == "acme.example"
    assert cc.domain_of("dialplan/acme.example.xml") is None
    assert cc.domain_of("callcenter/other/acme.example.xml") is None


def test_pending_marker_round_trip(tmp_path):
    assert cc.load_pending(tmp_path) == {}
    cc.save_pending(tmp_path, {"acme.example": BASE.keys()})
    assert cc.load_pending(tmp_path) == {"acme.example": BASE.keys()}
    cc.save_pending(tmp_path, {})
    assert not (tmp_path / cc.PENDING_FILE).exists()
    (tmp_path / cc.PENDING_FILE).write_text("{not json")
    with pytest.raises(OperationError, match="unreadable"):
        cc.load_pending(tmp_path)


# --- sending --------------------------------------------------------------------------------


def plan_for(domain, new, old=None):
    old = old or state()
    return cc.TenantPlan(domain, cc.diff_commands(old, new), cc.union(old.keys(), new.keys()))


def test_send_everything_ok_against_the_fake_module():
    fake = FakeCallcenter()
    records, done, lost = cc.send([plan_for("acme.example", BASE)], fake.run)
    assert done == ["acme.example"] and lost == ""
    assert {r["status"] for r in records} == {"ok"} and {r["reply"] for r in records} == {"+OK"}
    assert fake.queues == {Q: 1} and set(fake.agents) == {"102@acme.example"}
    assert fake.agents["102@acme.example"]["status"] == "Available"
    assert fake.tiers == {(Q, "102@acme.example"): {"level": "1", "position": "1", "state": "Ready"}}


def test_an_existing_agent_or_tier_is_updated_like_load_config_does():
    fake = FakeCallcenter()
    fake.run("callcenter_config agent add 102@acme.example callback")
    fake.run(f"callcenter_config tier add {Q} 102@acme.example 5 5")
    records, done, _ = cc.send([plan_for("acme.example", BASE)], fake.run)
    assert done == ["acme.example"]
    assert [(r["command"], r["reply"], r["status"]) for r in records if r["status"] == "exists"] == [
        ("callcenter_config agent add 102@acme.example callback", "-ERR Agent already exist!", "exists"),
        (f"callcenter_config tier add {Q} 102@acme.example 1 1", "-ERR Tier already exist!", "exists"),
    ]
    assert [r["command"] for r in records][-2:] == [
        f"callcenter_config tier set level {Q} 102@acme.example 1",
        f"callcenter_config tier set position {Q} 102@acme.example 1",
    ]
    assert "callcenter_config agent set type 102@acme.example callback" in [r["command"] for r in records]
    assert fake.tiers[(Q, "102@acme.example")] == {"level": "1", "position": "1", "state": "Ready"}


def test_a_refusal_stops_its_tenant_only():
    fake = FakeCallcenter(xml_queues={"600@beta.example"})  # acme's queue is not in callcenter.conf
    beta = state({"600@beta.example": PARAMS})
    records, done, lost = cc.send([plan_for("acme.example", BASE), plan_for("beta.example", beta)], fake.run)
    assert done == ["beta.example"] and lost == ""
    acme = [(r["status"], r["reply"]) for r in records if r["domain"] == "acme.example"]
    assert acme[0] == ("failed", "-ERR Invalid Queue not found!")
    assert {s for s, _ in acme[1:]} == {"not sent"} and len(acme) == 9
    assert fake.commands == [f"callcenter_config queue load {Q}", "callcenter_config queue load 600@beta.example"]


def test_a_lost_connection_stops_everything():
    def api(text):
        raise cc.ConnectionLostError("FreeSWITCH connection lost: socket error")

    records, done, lost = cc.send([plan_for("acme.example", BASE), plan_for("beta.example", BASE)], api)
    assert done == [] and lost == "FreeSWITCH connection lost: socket error"
    assert records[0]["status"] == "failed" and records[0]["reply"] == f"no answer ({lost})"
    assert {r["status"] for r in records[1:]} == {"not sent"}


def test_sync_keeps_failed_tenants_pending(tmp_path):
    fake = FakeCallcenter()
    fake.fail["callcenter_config agent set status 102@acme.example Available"] = "-ERR Invalid Agent Status!\n"
    outcome = cc.sync(tmp_path, [plan_for("acme.example", BASE)], fake.run)
    assert outcome.pending == ["acme.example"] and outcome.exit_code == 1
    assert outcome.error == (
        "callcenter_config agent set status 102@acme.example Available: "
        "-ERR Invalid Agent Status!; the XML is applied, callcenter changes pending for "
        "acme.example: fsctl apply sends them again"
    )
    assert cc.load_pending(tmp_path) == {"acme.example": BASE.keys()}
    fake.fail.clear()
    retry = cc.plan(tmp_path, None, (), (), cc.load_pending(tmp_path))
    assert [p.retry for p in retry] == [True]  # no files under tmp_path: everything it may have is deleted
    assert texts(retry[0].commands) == [
        f"callcenter_config tier del {Q} 102@acme.example",
        "callcenter_config agent del 102@acme.example",
        f"callcenter_config queue unload {Q}",
    ]
    assert cc.sync(tmp_path, retry, fake.run).error == ""
    assert cc.load_pending(tmp_path) == {} and fake.agents == {} and fake.queues == {}
