"""Live: two tenants on two FreeSWITCH nodes behind Kamailio, on one PostgreSQL (issue 16).

alpha lives on fs1 (standby fs2), beta on fs2 (standby fs1). Their phones register and call
through Kamailio; a carrier's call to a DID reaches the tenant's node; a recorded call on each node
is catalogued as on that node, its call record says so, each node's mod_xml_cdr import merges into
it and rec pull fetches each file from its node; `fsctl check` asks each node; alpha's queue runs in
fs1's mod_callcenter; fs1 stops, alpha's phones, numbers and queue go to fs2 and an apply (and a
check) goes on without fs1; fs1 comes back; a tenant moves without dropping the call it has up; moved
again to a third node, its old home drains: it keeps the tenant until its last call there ends. The
tests run in order on one cluster (tests/cluster/conftest.py).
"""

from __future__ import annotations

import datetime as dt
import json
import time

import pytest

from .conftest import PASSWORD

ALPHA, BETA = "alpha.cluster.test", "beta.cluster.test"
ALPHA_DID, BETA_DID = "+37052100001", "+37052100002"
ALPHA_QUEUE_DID = "+37052100003"  # alpha's queue 600, agent 101


@pytest.fixture(scope="module")
def platform(cluster):
    """The two tenants provisioned and applied; fs-scripts running for each node."""
    fsctl = cluster.fsctl
    for domain, home, standby, did, target in (
        (ALPHA, "fs1", "fs2", ALPHA_DID, "user:101"),
        (BETA, "fs2", "fs1", BETA_DID, "user:102"),
    ):
        fsctl("tenant", "add", domain, "--name", domain, "--node", home, "--standby", standby)
        for number in ("101", "102"):
            fsctl("user", "add", domain, number, "--name", f"User {number}", "--password", PASSWORD)
        fsctl("user", "add", domain, "104", "--name", "Recorded", "--password", PASSWORD, "--record")
        fsctl("did", "add", domain, did, "--to", target)
    fsctl("queue", "add", ALPHA, "600", "--name", "Support", "--agent", "101", "--max-wait", "60")
    fsctl("did", "add", ALPHA, ALPHA_QUEUE_DID, "--to", "queue:600")
    result = fsctl("apply")
    cluster.apply_output = result.stderr
    for name in ("fs1", "fs2"):
        cluster.start_service(name)
    phones = {(d, n): cluster.phone(d, n) for d in (ALPHA, BETA) for n in ("101", "102")}
    cluster.carrier = cluster.phone("carrier.invalid", "carrier")
    return phones


def wait_for(predicate, timeout=30.0, what="condition"):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = predicate()
        if value:
            return value
        time.sleep(0.2)
    raise AssertionError(f"no {what} within {timeout} s")


def calls_on(node) -> list:
    """The channels a node has up (`show channels as json`, written ~1 s after the fact)."""
    return json.loads(node.api("show channels as json") or "{}").get("rows") or []


def call_and_hang_up(caller, callee, number, domain=None):
    """caller dials `number`; callee's phone must ring and answer; the caller hangs up. The Call."""
    start = len(callee.incoming)
    call = caller.call(number, domain)
    assert call.status == 200, f"{caller.aor} -> {number}: {call.status}"
    assert callee.wait_ringing(start=start) is not None
    assert caller.hangup(call) == 200
    return call


def test_apply_places_each_tenant_on_its_two_nodes_and_kamailio_knows_them(cluster, platform):
    lines = cluster.apply_output.strip().splitlines()
    assert lines[0].startswith("fs1: 2 tenants rendered") and lines[0].endswith("reloadxml: +OK [Success]")
    # mod_callcenter does not read its queues on reloadxml: apply tells each node holding alpha (home and standby)
    assert lines[1] == f"fs1: callcenter: 12 commands for {ALPHA}: +OK"
    assert lines[2].startswith("fs2: 2 tenants rendered") and lines[2].endswith("reloadxml: +OK [Success]")
    assert lines[3] == f"fs2: callcenter: 12 commands for {ALPHA}: +OK"
    assert lines[4] == "kamailio: 2 domains, 3 DIDs, 4 sets; reloaded dispatcher, fsctl_domains, fsctl_dids"
    rows = json.loads(cluster.fsctl("status", "--json").stdout)
    assert [(r["domain"], r["node"], r["role"], r["status"]) for r in rows] == [
        (ALPHA, "fs1", "home", "applied"),
        (ALPHA, "fs2", "standby", "applied"),
        (BETA, "fs1", "standby", "applied"),
        (BETA, "fs2", "home", "applied"),
    ]
    assert "alpha.cluster.test" in cluster.kam.kamcmd("htable.dump", "fsctl_domains")


def test_phones_register_through_kamailio_on_their_home_node(cluster, platform):
    for (domain, number), phone in platform.items():
        assert phone.register() == 200, (domain, number)
    fs1, fs2 = cluster.nodes["fs1"], cluster.nodes["fs2"]
    assert wait_for(lambda: fs1.registered(ALPHA) == {"101", "102"}, what="alpha on fs1")
    assert wait_for(lambda: fs2.registered(BETA) == {"101", "102"}, what="beta on fs2")
    assert fs1.registered(BETA) == set() and fs2.registered(ALPHA) == set()
    # A domain Kamailio does not know is refused by Kamailio itself.
    stranger = cluster.phone("nope.cluster.test", "101")
    assert stranger.register() == 403


def test_calls_within_each_tenant_through_kamailio(cluster, platform):
    a101, a102 = platform[(ALPHA, "101")], platform[(ALPHA, "102")]
    b101, b102 = platform[(BETA, "101")], platform[(BETA, "102")]
    beta_rang = len(b102.incoming)
    call_and_hang_up(a101, a102, "102")
    assert len(b102.incoming) == beta_rang  # alpha's 102, not beta's
    call_and_hang_up(b101, b102, "102")
    call_and_hang_up(b102, b101, "101")


def test_a_did_reaches_the_node_of_its_tenant(cluster, platform):
    fs1, fs2 = cluster.nodes["fs1"], cluster.nodes["fs2"]
    a101, b102 = platform[(ALPHA, "101")], platform[(BETA, "102")]
    for did, phone, home, other in ((ALPHA_DID, a101, fs1, fs2), (BETA_DID, b102, fs2, fs1)):
        start = len(phone.incoming)
        call = cluster.carrier.call(did, "127.0.0.1")
        assert call.status == 200, (did, call.status)
        assert phone.wait_ringing(start=start) is not None
        wait_for(
            lambda n=home, d=did: any(r.get("initial_dest") == d for r in calls_on(n)),
            what=f"the call of {did} on its home node",
        )
        assert not any(r.get("initial_dest") == did for r in calls_on(other))
        assert cluster.carrier.hangup(call) == 200
    # A number no tenant has: Kamailio refuses it.
    assert cluster.carrier.call("+37059999999", "127.0.0.1").status == 404


def node_checks(cluster, *args):
    """`fsctl check --json` (with args): {(node, check): finding} and the exit code."""
    result = cluster.fsctl("check", "--json", *args, ok=False)
    return {(f["node"], f["check"]): f for f in json.loads(result.stdout)}, result


def test_check_asks_each_node_on_its_own_event_socket(cluster, platform):
    """`fsctl check` with nodes: every node's install steps, from its own FreeSWITCH; --node one of them."""
    fs1, fs2 = cluster.nodes["fs1"], cluster.nodes["fs2"]
    # fs-scripts stamps its heartbeat every 5 s once connected: wait for both nodes' first one.
    wait_for(
        lambda: all(f["ok"] for (_, check), f in node_checks(cluster)[0].items() if check == "call-logic service"),
        what="both nodes' call-logic heartbeat",
    )
    findings, result = node_checks(cluster)
    assert {node for node, _ in findings} == {"fs1", "fs2"}
    # Each node has both tenants (home of one, standby of the other) and finds their XML where its includes put it.
    for node in ("fs1", "fs2"):
        assert (
            findings[(node, "include lines")]["ok"]
            and findings[(node, "include lines")]["detail"] == "the XML of 2 applied tenants found"
        ), node
        assert findings[(node, "call-logic service")]["detail"].startswith("fs-scripts connected")
    # The only thing missing: these test nodes write mod_xml_cdr files into their own folders (two nodes on one
    # machine), not the xml_cdr_dir setting; each line names the folder that node's FreeSWITCH loaded.
    missing = {key: f for key, f in findings.items() if not f["ok"]}
    assert set(missing) == {("fs1", "mod_xml_cdr files"), ("fs2", "mod_xml_cdr files")}, missing
    for name, node in (("fs1", fs1), ("fs2", fs2)):
        assert f'log-dir "{node.xml_cdr}"' in missing[(name, "mod_xml_cdr files")]["detail"]
    assert result.exit_code == 1 and result.stderr.strip().endswith("checks, 2 missing")
    lines = cluster.fsctl("check", ok=False).stdout.splitlines()
    assert [line.split(":")[0] for line in lines] == ["fs1"] * (len(lines) // 2) + ["fs2"] * (len(lines) // 2)
    # One node: its checks only.
    one, result = node_checks(cluster, "--node", "fs2")
    assert set(one) == {key for key in findings if key[0] == "fs2"} and result.exit_code == 1
    assert cluster.fsctl("check", "--node", "fs9", ok=False).stderr.startswith('Error: node "fs9"')


def test_each_nodes_recordings_and_calls_carry_their_node_and_come_from_it(cluster, platform, tmp_path):
    """A recorded call on each node: fs-scripts --node catalogues the file on that node's disk and the call
    as that node's; each node's mod_xml_cdr folder imported with --node merges into the same records; rec
    pull fetches each file from the node that holds it."""
    fs1, fs2 = cluster.nodes["fs1"], cluster.nodes["fs2"]
    for domain, node, caller in ((ALPHA, fs1, platform[(ALPHA, "101")]), (BETA, fs2, platform[(BETA, "102")])):
        recorded = cluster.phone(domain, "104")  # every call to or from 104 is recorded
        assert recorded.register() == 200
        wait_for(lambda n=node, d=domain: "104" in n.registered(d), what=f"{domain} 104 registered")
        call = caller.call("104")
        assert call.status == 200 and recorded.wait_ringing() is not None
        time.sleep(4.5)  # the call lasts longer than RECORD_MIN_SEC (3 s), or FreeSWITCH deletes the file
        assert caller.hangup(call) == 200

    def recordings():
        return json.loads(cluster.fsctl("rec", "search", "--user", "104", "--json").stdout)

    rows = wait_for(lambda: len(recordings()) == 2 and recordings(), what="both recordings catalogued")
    by_tenant = {r["tenant"]: r for r in rows}
    assert (by_tenant[ALPHA]["node"], by_tenant[BETA]["node"]) == ("fs1", "fs2")
    assert (fs1.recordings / by_tenant[ALPHA]["path"]).is_file() and (
        fs2.recordings / by_tenant[BETA]["path"]
    ).is_file()
    assert not (fs2.recordings / by_tenant[ALPHA]["path"]).exists()

    def calls(domain):
        return json.loads(
            cluster.fsctl("cdr", "list", domain, "--from", "2000-01-01", "--to", "2100-01-01", "--json").stdout
        )

    with_recording = {
        d: wait_for(lambda d=d: [c for c in calls(d) if c["recording"]], what=f"{d}'s recorded call")
        for d in (ALPHA, BETA)
    }
    assert [c["node"] for c in with_recording[ALPHA]] == ["fs1"]
    assert [c["node"] for c in with_recording[BETA]] == ["fs2"]
    before = {d: len(calls(d)) for d in (ALPHA, BETA)}
    # each node's mod_xml_cdr folder, imported as its timer does: the calls are there already, merged
    for name, node in (("fs1", fs1), ("fs2", fs2)):
        report = json.loads(
            cluster.fsctl(
                "cdr",
                "import",
                str(node.xml_cdr),
                "--node",
                name,
                "--move-to",
                str(tmp_path / f"archive-{name}"),
                "--json",
            ).stdout
        )
        assert report["failed"] == [] and report["calls_created"] == 0 and report["calls_updated"] > 0, report
    assert {d: len(calls(d)) for d in (ALPHA, BETA)} == before
    assert [c["node"] for c in calls(ALPHA) if c["recording"]] == ["fs1"]
    # rec pull: each file from its node's SFTP account and folder
    dest = tmp_path / "pulled"
    pulled = json.loads(cluster.fsctl("rec", "pull", "--user", "104", "--dest", str(dest), "--json").stdout)
    assert sorted((r["node"], r["status"]) for r in pulled) == [("fs1", "fetched"), ("fs2", "fetched")]
    for row, node in ((by_tenant[ALPHA], fs1), (by_tenant[BETA], fs2)):
        assert (dest / row["path"]).read_bytes() == (node.recordings / row["path"]).read_bytes()


def queue_members(node, queue=f"600@{ALPHA}") -> int:
    """Callers waiting or being served in a queue of that node's mod_callcenter (not those who left: it keeps
    them as Abandoned for discard-abandoned-after seconds)."""
    lines = [line.split("|") for line in node.api(f"callcenter_config queue list members {queue}").splitlines()]
    if not lines or "state" not in lines[0]:
        return 0
    state = lines[0].index("state")
    return sum(1 for row in lines[1:] if len(row) > state and row[state] not in ("Abandoned", ""))


def queue_call(cluster, agent, node):
    """A carrier calls alpha's queue: `node`'s mod_callcenter takes the caller and offers it to `agent`."""
    start = len(agent.incoming)
    call = cluster.carrier.call(ALPHA_QUEUE_DID, "127.0.0.1")
    assert call.status == 200, call.status  # the queue answers the caller
    assert agent.wait_ringing(start=start) is not None
    assert queue_members(node) == 1
    assert cluster.carrier.hangup(call) == 200
    wait_for(lambda: queue_members(node) == 0, what="the caller gone from the queue")


def test_a_queue_runs_on_its_tenants_home_node_and_the_standby_has_it_ready(cluster, platform):
    fs1, fs2 = cluster.nodes["fs1"], cluster.nodes["fs2"]
    a101 = platform[(ALPHA, "101")]
    # fsctl apply told both nodes' mod_callcenter (reloadxml does not): the standby is ready for a failover.
    for node in (fs1, fs2):
        assert f"600@{ALPHA}" in node.api("callcenter_config queue list"), node.name
        assert f"101@{ALPHA}" in node.api("callcenter_config agent list"), node.name
    queue_call(cluster, a101, fs1)  # the caller waits in fs1's mod_callcenter only
    assert queue_members(fs2) == 0


def test_node_down_its_tenant_fails_over_and_comes_back(cluster, platform):
    fs1, fs2 = cluster.nodes["fs1"], cluster.nodes["fs2"]
    a101, a102 = platform[(ALPHA, "101")], platform[(ALPHA, "102")]
    fs1.stop()
    # The next registration reaches the standby at once (Kamailio tries the next node of the set).
    assert a101.register() == 200
    assert wait_for(lambda: "101" in fs2.registered(ALPHA), what="alpha 101 on fs2")
    # Probing takes fs1 out: new requests go straight to fs2.
    assert cluster.wait_flags("fs1", "I"), cluster.kam.destinations()
    assert a102.register() == 200
    assert wait_for(lambda: fs2.registered(ALPHA) == {"101", "102"}, what="alpha on fs2")
    call_and_hang_up(a101, a102, "102")
    start = len(a101.incoming)
    call = cluster.carrier.call(ALPHA_DID, "127.0.0.1")
    assert call.status == 200 and a101.wait_ringing(start=start) is not None
    assert cluster.carrier.hangup(call) == 200
    queue_call(cluster, a101, fs2)  # the queue's callers wait in the standby's mod_callcenter now

    # An apply while fs1 is down: fs2 takes the change, fs1 keeps it pending (exit 3).
    cluster.fsctl("user", "add", ALPHA, "103", "--name", "User 103", "--password", PASSWORD)
    result = cluster.fsctl("apply", ok=False)
    assert result.exit_code == 3, result.stderr
    assert "fs2: 1 tenants rendered" in result.stderr and "fs1: not applied: FreeSWITCH" in result.stderr
    status = {(r["domain"], r["node"]): r["status"] for r in json.loads(cluster.fsctl("status", "--json").stdout)}
    assert status[(ALPHA, "fs1")] == "pending" and status[(ALPHA, "fs2")] == "applied"
    a103 = cluster.phone(ALPHA, "103")
    assert a103.register() == 200  # on fs2, which has it
    # fsctl check while fs1 is down: fs2 is checked all the same, fs1 is named, exit 3.
    findings, result = node_checks(cluster)
    assert result.exit_code == 3 and {node for node, _ in findings} == {"fs2"}, result.stderr
    assert f"fs1: not checked: FreeSWITCH fs1 (127.0.0.1:{fs1.esl_port}) unreachable" in result.stderr
    assert (
        result.stderr.strip().splitlines()[-1]
        == "Error: fs1 not checked: FreeSWITCH unreachable (the others are above)"
    )

    # fs1 is back: probing brings it in again, the next apply catches up, phones return to it.
    fs1.start()
    assert cluster.wait_flags("fs1", "A"), cluster.kam.destinations()
    caught_up = cluster.fsctl("apply")
    assert caught_up.stderr.startswith("fs1: 1 tenants rendered")
    assert all(r["status"] == "applied" for r in json.loads(cluster.fsctl("status", "--json").stdout))
    cluster.wait_service("fs1")  # fs-scripts reconnected by itself
    for phone in (a101, a102, a103):
        assert phone.register() == 200
    # (104's registration from before the stop may still be in fs1's table: a superset)
    assert wait_for(lambda: fs1.registered(ALPHA) >= {"101", "102", "103"}, what="alpha back on fs1")
    call_and_hang_up(a103, a101, "101")


def test_a_move_keeps_the_call_in_progress_and_sends_new_ones_to_the_new_home(cluster, platform):
    fs1, fs2 = cluster.nodes["fs1"], cluster.nodes["fs2"]
    b101, b102 = platform[(BETA, "101")], platform[(BETA, "102")]
    start = len(b102.incoming)
    ongoing = b101.call("102")  # up on fs2, beta's home
    assert ongoing.status == 200 and b102.wait_ringing(start=start) is not None
    wait_for(lambda: any(r.get("context") == BETA for r in calls_on(fs2)), what="beta's call on fs2")
    result = cluster.fsctl("tenant", "move", BETA, "--to", "fs1")
    assert "home fs1, standby fs2" in result.stderr
    applied = cluster.fsctl("apply")
    assert "kamailio: 2 domains, 3 DIDs" in applied.stderr
    # New registrations and calls go to fs1 now.
    for phone in (b101, b102):
        assert phone.register() == 200
    assert wait_for(lambda: fs1.registered(BETA) == {"101", "102"}, what="beta on fs1")
    call_and_hang_up(b102, b101, "101")
    # The call that was up on fs2 is still up there and ends normally (its BYE follows its route to fs2).
    assert any(r.get("context") == BETA for r in calls_on(fs2))
    assert b101.hangup(ongoing) == 200
    wait_for(lambda: not any(r.get("context") == BETA for r in calls_on(fs2)), what="the call over on fs2")


def test_the_old_home_drains_keeping_the_tenant_until_its_last_call_there_ends(cluster, platform):
    """A move to a third node: the old home (neither the new home nor the standby) drains. fsctl apply keeps
    the tenant's configuration there while a call of the tenant is up on it (`show channels`), even past
    drain_after, and takes it off, by the same apply, once that call is over."""
    fs1 = cluster.nodes["fs1"]
    fs3 = cluster.add_node("fs3")
    b101, b102 = platform[(BETA, "101")], platform[(BETA, "102")]
    # beta lives on fs1 since the move above (standby fs2); its phones registered there.
    start = len(b102.incoming)
    ongoing = b101.call("102")
    assert ongoing.status == 200 and b102.wait_ringing(start=start) is not None
    wait_for(lambda: any(r.get("context") == BETA for r in calls_on(fs1)), what="beta's call on fs1")
    moved = cluster.fsctl("tenant", "move", BETA, "--to", "fs3")
    assert "home fs3, standby fs2, draining fs1" in moved.stderr, moved.stderr
    applied = cluster.fsctl("apply")
    assert "fs3: 1 tenants rendered" in applied.stderr, applied.stderr
    roles = {
        (r["domain"], r["node"]): (r["role"], r["status"]) for r in json.loads(cluster.fsctl("status", "--json").stdout)
    }
    assert roles[(BETA, "fs1")] == ("draining", "applied") and roles[(BETA, "fs3")] == ("home", "applied")
    # New registrations go to fs3 (Kamailio's new set for beta: fs3, then fs2).
    assert cluster.wait_flags("fs3", "A"), cluster.kam.destinations()
    assert b102.register() == 200
    assert wait_for(lambda: "102" in fs3.registered(BETA), what="beta 102 on fs3")

    def later():  # past drain_after (now + kamailio_expires, 60 s here): every phone has re-registered by then
        return dt.datetime.now(dt.timezone.utc).replace(tzinfo=None) + dt.timedelta(seconds=61)

    # Past drain_after but beta's call is still up on fs1: fs1 keeps beta.
    kept = cluster.fsctl("apply", clock=later)
    assert "drained" not in kept.stderr, kept.stderr
    assert fs1.api(f"xml_locate directory domain name {BETA}").lstrip().startswith("<")
    assert any(r.get("context") == BETA for r in calls_on(fs1))
    # The call ends (its BYE follows its route to fs1); the next apply takes beta off fs1.
    assert b101.hangup(ongoing) == 200
    wait_for(lambda: not any(r.get("context") == BETA for r in calls_on(fs1)), what="the call over on fs1")
    drained = cluster.fsctl("apply", clock=later)
    assert f"fs1: drained, {BETA} taken off (its calls there are over)" in drained.stderr, drained.stderr
    assert fs1.api(f"xml_locate directory domain name {BETA}").strip().startswith("can't find")
    rows = json.loads(cluster.fsctl("status", "--json").stdout)
    assert sorted((r["node"], r["role"]) for r in rows if r["domain"] == BETA) == [("fs2", "standby"), ("fs3", "home")]
