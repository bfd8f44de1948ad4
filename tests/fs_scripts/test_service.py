"""End to end through the fake FreeSWITCH: a parked call, the service's commands, in order.

The tenant is provisioned in a real SQLite database with fsctl's services; the fake replays a
recorded CHANNEL_PARK with the hand-off variables of the rendered dialplan, answers each
execution, and scripts bridge outcomes as the `originate_disposition` that each bridge's
CHANNEL_EXECUTE_COMPLETE carries. A call's commands are read in the order they were written:
APIs about the channel (`sched_del`, `uuid_setvar_multi`) and its applications.
"""

import datetime as dt

import gevent
import pytest

from fs_scripts.service import CallService
from fs_scripts.store import DatabaseStore
from fsctl.services import blacklist, dids, groups, tenants, timerules, users

NOON = dt.datetime(2026, 12, 2, 10, 0, tzinfo=dt.timezone.utc)  # a Wednesday, 12:00 in Vilnius


@pytest.fixture
def tenant(sdb):
    tenants.add_tenant("acme.example", "ACME", "Europe/Vilnius")
    for n in ("101", "102", "103", "104"):
        users.add_user("acme.example", n, f"User {n}")
    groups.add_group(
        "acme.example",
        "200",
        "Hunt",
        strategy="sequential",
        order="rotating",
        ring_time=10,
        members=["102", "103", "104"],
        fallback="voicemail:101",
    )
    timerules.add_timerule("acme.example", "office", "group:200", "voicemail:101", ["mon-fri 08:00-17:00"])
    dids.add_did("acme.example", "+37052000000", "timerule:office")
    blacklist.add_entry("acme.example", "+1900", "prefix")
    return "acme.example"


class Recorder:
    def __init__(self):
        self.batches = []

    def __call__(self, batch):
        self.batches.append(batch)


@pytest.fixture
def service(tenant, esl):
    sink = Recorder()
    # The store runs database work in gevent's thread pool, as in production.
    svc = CallService(esl, DatabaseStore(hangup_sinks=[sink]), clock=lambda: NOON)
    svc.attach()
    svc.sink = sink
    yield svc
    svc.stop(timeout=5)


def park(fake, dialled, caller="101", did=None, **extra):
    headers = {
        "Caller-Destination-Number": dialled,
        "Caller-Caller-ID-Number": caller,
        "variable_fsctl_tenant": "acme.example",
        "variable_domain_name": "acme.example",
    }
    if did:
        headers["variable_fsctl_did"] = did
    headers.update(extra)
    return fake.park_call(headers=headers)


def script_bridge(fake, uuid, *outcomes):
    """Successive bridges of the call end with these originate_disposition values."""
    fake.bridge_outcomes[uuid] = list(outcomes)


def commands(fake, uuid):
    """What was written about the call, in order: ("sched_del", "") and ("uuid_setvar_multi", arg)
    for the APIs naming it, (app, arg) for its executions."""
    got = []
    for cmd in list(fake.received):
        if cmd.startswith(f"api sched_del {uuid}"):
            got.append(("sched_del", ""))
        elif cmd.startswith(f"api uuid_setvar_multi {uuid} "):
            got.append(("uuid_setvar_multi", cmd[len(f"api uuid_setvar_multi {uuid} ") :]))
        elif cmd.startswith(f"sendmsg {uuid}\n") and "call-command: execute" in cmd:
            headers = dict(line.split(": ", 1) for line in cmd.split("\n")[1:] if ": " in line)
            got.append((headers["execute-app-name"], headers.get("execute-app-arg", "")))
    return got


def executions(fake, uuid, count, timeout=5.0):
    """The commands about the call once `count` of them arrived."""
    deadline = gevent.get_hub().loop.now() + timeout
    while True:
        got = commands(fake, uuid)
        if len(got) >= count or gevent.get_hub().loop.now() > deadline:
            return got
        gevent.sleep(0.01)


def settle(fake, uuid, timeout=5.0, quiet=0.15):
    """Every execution of the call, once some arrived and none came for `quiet` seconds."""
    deadline = gevent.get_hub().loop.now() + timeout
    last, since = None, gevent.get_hub().loop.now()
    while gevent.get_hub().loop.now() < deadline:
        got = commands(fake, uuid)
        now = gevent.get_hub().loop.now()
        if got != last:
            last, since = got, now
        elif got and now - since >= quiet:
            return got
        gevent.sleep(0.02)
    return last


def test_sequential_group_rings_in_order_then_fallback(fake_fs, service):
    uuid = park(fake_fs, "200")
    script_bridge(fake_fs, uuid, "NO_ANSWER")
    apps = settle(fake_fs, uuid)
    assert apps == [
        ("sched_del", ""),
        # The plan's four `set`s go as one API: no application, no media tick (FACTS.md).
        (
            "uuid_setvar_multi",
            "fsctl_route=group:200;fsctl_target=group:200;continue_on_fail=true;hangup_after_bridge=true",
        ),
        (
            "bridge",
            "[leg_timeout=10]user/102@acme.example|[leg_timeout=10]user/103@acme.example|"
            "[leg_timeout=10]user/104@acme.example",
        ),
        ("answer", ""),
        ("voicemail", "default acme.example 101"),
    ]
    assert service.stats.decided == 1


def test_rotation_moves_to_the_next_member_per_call(fake_fs, service):
    firsts = []
    for _ in range(4):
        uuid = park(fake_fs, "200")
        script_bridge(fake_fs, uuid, "SUCCESS")
        bridge = [arg for app, arg in settle(fake_fs, uuid) if app == "bridge"][0]
        firsts.append(bridge.split("|")[0])
    assert firsts == [
        "[leg_timeout=10]user/102@acme.example",
        "[leg_timeout=10]user/103@acme.example",
        "[leg_timeout=10]user/104@acme.example",
        "[leg_timeout=10]user/102@acme.example",
    ]


def test_answered_bridge_ends_the_plan(fake_fs, service):
    uuid = park(fake_fs, "200")
    script_bridge(fake_fs, uuid, "SUCCESS")
    apps = settle(fake_fs, uuid)
    assert apps[-1][0] == "bridge"


def test_did_time_rule_and_blacklist(fake_fs, service):
    uuid = park(fake_fs, "+37052000000", caller="+37061234567", did="+37052000000")
    script_bridge(fake_fs, uuid, "SUCCESS")
    assert [app for app, _ in settle(fake_fs, uuid)] == ["sched_del", "uuid_setvar_multi", "bridge"]
    refused = park(fake_fs, "+37052000000", caller="+19005550000", did="+37052000000")
    assert settle(fake_fs, refused) == [("sched_del", ""), ("hangup", "CALL_REJECTED")]


def test_calls_without_the_hand_off_are_not_ours(fake_fs, service):
    uuid = fake_fs.park_call()  # the recorded park: no fsctl_tenant variable
    gevent.sleep(0.2)
    assert [e for e in fake_fs.executions if e[0] == uuid] == []
    assert service.stats.ignored >= 1


def test_caller_hangs_up_during_the_plan(fake_fs, service):
    uuid = park(fake_fs, "200")
    # The bridge never completes until the caller hangs up.
    fake_fs.execute_results["bridge"] = lambda u, app, arg: None
    assert executions(fake_fs, uuid, 3)[-1][0] == "bridge"
    fake_fs.execute_results["bridge"] = "_none_"
    fake_fs.hangup_call(uuid, "ORIGINATOR_CANCEL")
    gevent.sleep(0.3)
    assert [app for app, _ in settle(fake_fs, uuid)][-1] == "bridge"  # nothing sent after the hang-up
    assert not service.active


def test_the_plan_is_written_back_to_back_without_waiting_for_replies(fake_fs, service):
    uuid = "0f0f0f0f-1111-4222-8333-444444444444"
    fake_fs.fault("silent", on=f"api sched_del {uuid}")
    fake_fs.park_call(
        uuid,
        {"Caller-Destination-Number": "200", "Caller-Caller-ID-Number": "101", "variable_fsctl_tenant": "acme.example"},
    )
    # FreeSWITCH runs a connection's commands in order: neither the plan's variables nor its bridge
    # wait for the replies of what was written before them (one media tick: FACTS.md).
    fake_fs.wait_for_command(f"sendmsg {uuid}\ncall-command: execute\nexecute-app-name: bridge", timeout=1)
    assert [c.split("\n")[0][:30] for c in fake_fs.received if uuid in c.split("\n")[0]] == [
        f"api sched_del {uuid}"[:30],
        f"api uuid_setvar_multi {uuid}"[:30],
        f"sendmsg {uuid}"[:30],
    ]


def test_a_call_gone_before_it_was_taken_counts_as_failed(fake_fs, service):
    gone = "0f0f0f0f-1111-4222-8333-444444444444"  # a CHANNEL_PARK for a channel FreeSWITCH no longer has
    fake_fs.inject_recorded(
        "CHANNEL_PARK", uuid=gone, headers={"Caller-Destination-Number": "200", "variable_fsctl_tenant": "acme.example"}
    )
    fake_fs.wait_for(lambda: service.stats.failed == 1 and not service.active)
    # The plan's variables got "-ERR No such channel!", its bridge "-ERR invalid session id"; nothing follows.
    assert commands(fake_fs, gone) == [
        ("sched_del", ""),
        (
            "uuid_setvar_multi",
            "fsctl_route=group:200;fsctl_target=group:200;continue_on_fail=true;hangup_after_bridge=true",
        ),
        (
            "bridge",
            "[leg_timeout=10]user/102@acme.example|[leg_timeout=10]"
            "user/103@acme.example|[leg_timeout=10]user/104@acme.example",
        ),
    ]


def test_a_unique_id_with_a_line_feed_is_left_to_the_dialplan(fake_fs, service):
    """Such a Unique-ID (an origination_uuid) cannot be addressed: it stayed in `active` forever."""
    bad = "0f0f0f0f-1111-4222-8333-44444444444\nx"
    fake_fs.inject_recorded(
        "CHANNEL_PARK",
        uuid="0f0f0f0f-1111-4222-8333-44444444444%0Ax",
        headers={"Unique-ID": bad, "Caller-Destination-Number": "200", "variable_fsctl_tenant": "acme.example"},
    )
    fake_fs.wait_for(lambda: service.stats.ignored == 1)
    assert not service.active and service.stats.calls == 0
    assert not [c for c in fake_fs.received if c.startswith("sendmsg 0f0f0f0f")]
    uuid = park(fake_fs, "200")  # the next call is taken as usual
    assert executions(fake_fs, uuid, 3)[-1][0] == "bridge"


def test_a_call_it_cannot_decide_resumes_in_the_dialplan(fake_fs, service):
    uuid = park(fake_fs, "200", variable_fsctl_tenant="nope.example")
    assert settle(fake_fs, uuid) == [("sched_del", ""), ("transfer", "fsctl-fallback XML nope.example")]
    assert service.stats.failed == 1


def test_rotation_is_written_behind_and_survives_a_restart(fake_fs, service, tenant):
    from fsctl.model import Tenant
    from fsctl.services.snapshot import load_rotation

    for _ in range(2):
        uuid = park(fake_fs, "200")
        script_bridge(fake_fs, uuid, "SUCCESS")
        settle(fake_fs, uuid)
    service.store.flush()
    assert load_rotation(Tenant.get()).start_for("200") == 2
    # A new service (a restart) starts where the old one stopped.
    fresh = DatabaseStore()
    config, rotation = fresh.load("acme.example")
    assert rotation.start_for("200") == 2
    fresh.close()


def test_stopping_writes_the_events_already_received(service):
    """SIGTERM's shutdown: a hang-up the service holds is written before the workers stop."""
    service.hangups.put(
        ("hangup", {"Unique-ID": "0b6c3a43-6d0e-4c8e-9a55-8a2b3d1c7e01", "Hangup-Cause": "NORMAL_CLEARING"})
    )
    service.stop(timeout=5)
    assert [h["Unique-ID"] for batch in service.sink.batches for h in batch] == ["0b6c3a43-6d0e-4c8e-9a55-8a2b3d1c7e01"]


def test_stopping_writes_the_rotation_moves_still_queued(tenant):
    from fsctl.calllogic.decide import RotationUpdate
    from fsctl.model import Tenant
    from fsctl.services.snapshot import load_rotation

    store = DatabaseStore(rotation_linger=0.5)
    store.load("acme.example")
    store.save_rotation("acme.example", [RotationUpdate("200", 0, 2)])
    store.close()
    assert load_rotation(Tenant.get()).start_for("200") == 2


def test_rotation_moved_by_another_process_is_reloaded(fake_fs, service, tenant):
    from fsctl.calllogic.decide import RotationUpdate
    from fsctl.model import Tenant
    from fsctl.services.snapshot import save_rotation

    uuid = park(fake_fs, "200")
    script_bridge(fake_fs, uuid, "SUCCESS")
    settle(fake_fs, uuid)
    service.store.flush()
    # Another service process takes the next two calls.
    assert save_rotation(Tenant.get(), [RotationUpdate("200", 1, 2)]) == []
    assert save_rotation(Tenant.get(), [RotationUpdate("200", 2, 0)]) == []
    # Our next call still used its memory (start 1): its write loses, and memory is dropped...
    uuid = park(fake_fs, "200")
    script_bridge(fake_fs, uuid, "SUCCESS")
    assert [a for app, a in settle(fake_fs, uuid) if app == "bridge"][0].startswith("[leg_timeout=10]user/103@")
    service.store.flush()
    # ...so the call after it starts from the database's state again (0 -> member 102).
    uuid = park(fake_fs, "200")
    script_bridge(fake_fs, uuid, "SUCCESS")
    assert [a for app, a in settle(fake_fs, uuid) if app == "bridge"][0].startswith("[leg_timeout=10]user/102@")


def test_a_burst_of_rotation_moves_is_written_in_one_transaction(tenant):
    from fsctl.calllogic.decide import RotationUpdate
    from fsctl.model import GroupRotation, Tenant
    from fsctl.services.snapshot import load_rotation

    writes = []

    def run(fn, args):
        writes.append(fn.__name__)
        return gevent.get_hub().threadpool.apply(fn, args)

    store = DatabaseStore(run=run, rotation_linger=0.5)
    store.load("acme.example")
    for previous, next_start in [(0, 1), (1, 2), (2, 0), (0, 1)]:
        store.save_rotation("acme.example", [RotationUpdate("200", previous, next_start)])
        gevent.sleep(0.01)  # calls a few milliseconds apart
    assert store.load("acme.example")[1].start_for("200") == 1  # memory moves at once
    store.flush()
    assert writes.count("_save_rotation") == 1
    assert load_rotation(Tenant.get()).start_for("200") == 1 and GroupRotation.get().calls == 4
    store.close()


def test_hangups_reach_the_sinks_in_batches(fake_fs, service):
    uuid = park(fake_fs, "200")
    script_bridge(fake_fs, uuid, "SUCCESS")
    settle(fake_fs, uuid)
    fake_fs.hangup_call(uuid, "NORMAL_CLEARING")
    for _ in range(100):
        if service.sink.batches:
            break
        gevent.sleep(0.02)
    rows = [h for batch in service.sink.batches for h in batch]
    assert [h["Unique-ID"] for h in rows] == [uuid]
    assert rows[0]["Hangup-Cause"] == "NORMAL_CLEARING"


def test_service_survives_a_freeswitch_restart(fake_fs, make_esl, tenant):
    client = make_esl()
    svc = CallService(client, DatabaseStore(), clock=lambda: NOON)
    svc.attach()
    supervisor = gevent.spawn(client.run_forever)
    try:
        fake_fs.wait_subscribed(2)
        fake_fs.restart(down=0.2)
        gevent.sleep(0.3)
        for _ in range(100):
            if client.healthy() and fake_fs.connections:
                break
            gevent.sleep(0.05)
        fake_fs.wait_subscribed(2)
        uuid = park(fake_fs, "200")
        script_bridge(fake_fs, uuid, "SUCCESS")
        assert [app for app, _ in settle(fake_fs, uuid)][-1] == "bridge"
    finally:
        client.close()
        supervisor.kill()
        svc.stop(timeout=5)


def test_configuration_changes_reach_the_service_without_a_restart(tenant):
    store = DatabaseStore(revision_ttl=0.05)
    config, _ = store.load("acme.example")
    assert config.groups["200"].members == ("102", "103", "104")
    groups.edit_group("acme.example", "200", members=["104", "103"])
    gevent.sleep(0.06)
    stale, _ = store.load("acme.example")  # served at once; the look-up runs in the background
    assert stale.groups["200"].members == ("102", "103", "104")
    for _ in range(100):
        gevent.sleep(0.02)
        config, rotation = store.load("acme.example")
        if config.groups["200"].members == ("104", "103"):
            break
    assert config.groups["200"].members == ("104", "103") and rotation.start_for("200") == 0
    tenants.edit_tenant("acme.example", state="suspended")
    gevent.sleep(0.06)
    store.load("acme.example")
    for _ in range(100):
        gevent.sleep(0.02)
        if store.load("acme.example") == (None, None):
            break
    assert store.load("acme.example") == (None, None)


def test_a_second_park_of_a_channel_supersedes_its_running_plan(fake_fs, service):
    """Issue 11: a public number's call bridged to its time rule's group (the bridge still running)
    is transferred to 104 (a REFER, *1): the channel parks again, in the tenant's context, with
    fsctl_did still set. The new park is decided for 104; the old plan stops."""
    fake_fs.execute_results["bridge"] = lambda uuid, app, arg: None  # the first bridge runs on
    uuid = park(
        fake_fs, "+37052000000", caller="+37061234567", did="+37052000000", **{"Caller-Context": "fsctl-public"}
    )
    first = executions(fake_fs, uuid, 3)
    assert first[-1][0] == "bridge" and "user/102@acme.example" in first[-1][1]
    fake_fs.execute_results.pop("bridge")
    script_bridge(fake_fs, uuid, "SUCCESS")
    fake_fs.park_call(
        uuid=uuid,
        headers={
            "Caller-Destination-Number": "104",
            "Caller-Caller-ID-Number": "+37061234567",
            "Caller-Context": "acme.example",
            "variable_fsctl_tenant": "acme.example",
            "variable_fsctl_did": "+37052000000",
        },
    )
    apps = settle(fake_fs, uuid)
    assert apps[len(first) :][0] == ("sched_del", "")
    assert [arg for app, arg in apps if app == "bridge"][-1] == "[leg_timeout=20]user/104@acme.example"
    assert service.stats.superseded == 1 and uuid not in service.active


def test_crm_channel_events_are_subscribed_only_while_a_tenant_has_a_hook(tenant, esl, fake_fs):
    import ipaddress

    from fsctl.model import CrmHook
    from fsctl.services.notify import rules

    channel = Recorder()
    svc = CallService(esl, DatabaseStore(channel_sinks=[channel]), clock=lambda: NOON, crm_every=0.05)
    svc.attach()
    try:
        gevent.sleep(0.3)  # several looks, no hook
        assert not [c for c in fake_fs.received if c.startswith("event plain CHANNEL_ANSWER")]
        fake_fs.inject_event({"Event-Name": "CHANNEL_ANSWER", "Unique-ID": "u1"})
        rules.add_hook("acme.example", "http://127.0.0.1:9/hook", allow=[ipaddress.ip_network("127.0.0.0/8")])
        fake_fs.wait_for_command("event plain CHANNEL_ANSWER")
        fake_fs.wait_for_command("event plain CHANNEL_PROGRESS_MEDIA")
        fake_fs.inject_event({"Event-Name": "CHANNEL_ANSWER", "Unique-ID": "u2"})
        fake_fs.wait_for(lambda: [h["Unique-ID"] for b in channel.batches for h in b] == ["u2"], 3.0)
        CrmHook.delete().execute()
        fake_fs.wait_for_command("nixevent CHANNEL_ANSWER")
        fake_fs.inject_event({"Event-Name": "CHANNEL_ANSWER", "Unique-ID": "u3"})
        esl.api("status")
        gevent.sleep(0.2)  # the writer's linger
        assert [h["Unique-ID"] for b in channel.batches for h in b] == ["u2"]
    finally:
        svc.stop(timeout=5)
