"""`fsctl apply` / `status` with several nodes, each a fake FreeSWITCH (one of them down), and
delivery over SFTP to a real OpenSSH sshd."""

import datetime as dt
import json
import os
import re
from pathlib import Path

import pytest

from fsctl import render
from fsctl.config import Settings
from fsctl.db import transaction
from fsctl.freeswitch.esl import EventSocket
from fsctl.model import AppliedConfig, NodeConfig, Tenant
from fsctl.services import apply as single, nodeapply, nodes, queues, users
from tests.conftest import free_port
from tests.fakes import captures
from tests.fakes.fake_freeswitch import FakeFreeSWITCH
from tests.fsctl.render.test_render import make_demo
from tests.fsctl.services.test_sftp import sshd  # noqa: F401 (the real sshd fixture)

T0 = dt.datetime(2026, 11, 20, 12, 0)


@pytest.fixture
def fakes():
    """Two running fake FreeSWITCHes; stopped afterwards (with any started by the test)."""
    started = [FakeFreeSWITCH().start(), FakeFreeSWITCH().start()]
    yield started
    for fake in started:
        fake.stop()


def settings_for(tmp_path, **more):
    return Settings(conf_dir=str(tmp_path / "conf"), esl_timeout=0.5, **more)


def fast_reloader(settings, node):
    """A node's reloader with the tests' short timeouts."""
    s = nodeapply.node_settings(settings, node)
    return nodeapply.node_reloader(
        settings,
        node,
        lambda: EventSocket(s.esl_host, s.esl_port, s.esl_password, timeout=0.5, reconnect=False, events=()),
    )


def apply_all(settings, **kwargs):
    kwargs.setdefault("now", T0)
    return nodeapply.apply_nodes(settings, reloader_factory=fast_reloader, **kwargs)


def three_nodes(fakes):
    """fs1 and fs2 up (fakes), fs3 down (nothing listens); acme fs1/fs2, beta fs2/fs1, gamma fs3/fs1."""
    dead = free_port()
    with transaction():
        nodes.add_node("fs1", f"127.0.0.1:{fakes[0].port}", "127.0.0.1:5060")
        nodes.add_node("fs2", f"127.0.0.1:{fakes[1].port}", "127.0.0.1:6060")
        nodes.add_node("fs3", f"127.0.0.1:{dead}", "127.0.0.1:7060")
    make_demo("acme.example")
    make_demo("beta.example", "Beta", did_prefix="+3705300000")
    make_demo("gamma.example", "Gamma", did_prefix="+3705400000")
    with transaction():
        for domain, home, spare in (
            ("acme.example", "fs1", "fs2"),
            ("beta.example", "fs2", "fs1"),
            ("gamma.example", "fs3", "fs1"),
        ):
            Tenant.update(home_node=nodes.get_node(home), standby_node=nodes.get_node(spare)).where(
                Tenant.domain == domain
            ).execute()
    return dead


def conf(settings, name):
    return Path(settings.conf_dir) / "nodes" / name


def domains_in(folder):
    return sorted(p.stem for p in (folder / "directory").glob("*.xml"))


def public_numbers(folder):
    text = (folder / render.PUBLIC_FILE).read_text()
    return sorted(n for n in ("+37052000000", "+37053000000", "+37054000000") if f"fsctl_did={n}" in text)


def reloads(fake):
    return [c for c in fake.received if c == "api reloadxml"]


def test_every_node_gets_its_tenants_and_a_dead_one_stays_pending(db, fakes, tmp_path):
    three_nodes(fakes)
    settings = settings_for(tmp_path)
    result = apply_all(settings)
    by = {n.node: n for n in result.nodes}
    assert by["fs1"].result.rendered == ["acme.example", "beta.example", "gamma.example"]  # home, standby x2
    assert by["fs2"].result.rendered == ["acme.example", "beta.example"]
    assert not by["fs1"].error and not by["fs2"].error and by["fs1"].pending == by["fs2"].pending == 0
    assert by["fs3"].error.startswith("FreeSWITCH 127.0.0.1:") and "unreachable" in by["fs3"].error
    assert by["fs3"].exit_code == 3 and by["fs3"].pending == 1 and result.exit_code == 3
    assert domains_in(conf(settings, "fs1")) == ["acme.example", "beta.example", "gamma.example"]
    assert domains_in(conf(settings, "fs2")) == ["acme.example", "beta.example"]
    assert not conf(settings, "fs3").exists()  # nothing rendered for a node that cannot be reached
    # Each node's public context routes the numbers of its own tenants only.
    assert public_numbers(conf(settings, "fs2")) == ["+37052000000", "+37053000000"]
    assert public_numbers(conf(settings, "fs1")) == ["+37052000000", "+37053000000", "+37054000000"]
    assert reloads(fakes[0]) == reloads(fakes[1]) == ["api reloadxml"]
    assert {(r.node.name, r.domain) for r in NodeConfig.select()} == {
        ("fs1", "acme.example"),
        ("fs1", "beta.example"),
        ("fs1", "gamma.example"),
        ("fs2", "acme.example"),
        ("fs2", "beta.example"),
    }
    assert AppliedConfig.select().count() == 0  # the single-FreeSWITCH record is not used with nodes
    rows = [(r["domain"], r["node"], r["role"], r["status"]) for r in nodeapply.node_status(settings)]
    assert rows == [
        ("acme.example", "fs1", "home", "applied"),
        ("acme.example", "fs2", "standby", "applied"),
        ("beta.example", "fs1", "standby", "applied"),
        ("beta.example", "fs2", "home", "applied"),
        ("gamma.example", "fs1", "standby", "applied"),
        ("gamma.example", "fs3", "home", "pending"),
    ]

    # Nothing changed: no reload anywhere; fs3 still pending.
    again = apply_all(settings)
    assert [n.result.rendered for n in again.nodes if n.result] == [[], []]
    assert reloads(fakes[0]) == reloads(fakes[1]) == ["api reloadxml"]

    # fs3 comes up: the next apply catches up there only.
    fs3 = FakeFreeSWITCH(port=nodes.get_node("fs3").esl_port).start()
    fakes.append(fs3)
    caught_up = apply_all(settings)
    assert caught_up.exit_code == 0
    assert {n.node: n.result.rendered for n in caught_up.nodes} == {"fs1": [], "fs2": [], "fs3": ["gamma.example"]}
    assert domains_in(conf(settings, "fs3")) == ["gamma.example"]
    assert all(r["status"] == "applied" for r in nodeapply.node_status(settings))


def test_one_change_reaches_both_nodes_of_the_tenant_only(db, fakes, tmp_path):
    three_nodes(fakes)
    settings = settings_for(tmp_path)
    apply_all(settings)
    with transaction():
        users.edit_user("beta.example", "102", name="Ona Onaitė")
    result = apply_all(settings)
    by = {n.node: n for n in result.nodes}
    assert by["fs1"].result.written == by["fs2"].result.written == ["directory/beta.example.xml"]
    assert len(reloads(fakes[0])) == len(reloads(fakes[1])) == 2
    for name in ("fs1", "fs2"):
        assert 'value="Ona Onaitė"' in (conf(settings, name) / "directory/beta.example.xml").read_text()


def test_a_refused_reload_on_one_node_restores_it_and_not_the_others(db, fakes, tmp_path):
    three_nodes(fakes)
    settings = settings_for(tmp_path)
    apply_all(settings)
    before = (conf(settings, "fs2") / "directory/acme.example.xml").read_bytes()
    with transaction():
        users.edit_user("acme.example", "102", name="Changed")
    fakes[1].set_reloadxml("M1")  # FACTS.md: "+OK [[error near line ...": refused
    result = apply_all(settings)
    by = {n.node: n for n in result.nodes}
    assert by["fs2"].exit_code == 1 and "refused the configuration" in by["fs2"].error and by["fs2"].pending == 1
    assert (conf(settings, "fs2") / "directory/acme.example.xml").read_bytes() == before
    assert not by["fs1"].error and by["fs1"].result.written == ["directory/acme.example.xml"]
    status = {(r["domain"], r["node"]): r["status"] for r in nodeapply.node_status(settings)}
    assert status[("acme.example", "fs1")] == "applied" and status[("acme.example", "fs2")] == "pending"


def test_a_node_whose_files_go_elsewhere_gets_them_all_again(fsctl_sqlite, fakes, tmp_path):
    fsctl = fsctl_sqlite
    fsctl.env.update({"FSCTL_CONF_DIR": str(tmp_path / "conf"), "FSCTL_ESL_TIMEOUT": "0.5"})
    fsctl("node", "add", "fs1", "--esl", f"127.0.0.1:{fakes[0].port}", "--sip", "127.0.0.1:5060")
    fsctl("tenant", "add", "acme.example", "--name", "ACME")
    fsctl("apply")
    assert fsctl("node", "edit", "fs1", "--sip", "127.0.0.1:5070").stderr.strip() == "node fs1 updated"
    assert fsctl("apply").stderr.strip().splitlines()[0] == "fs1: nothing to apply"
    moved = fsctl("node", "edit", "fs1", "--conf-dir", str(tmp_path / "elsewhere"))
    assert moved.stderr.strip() == (
        "node fs1 updated; its files go to the new place: the next fsctl apply renders every tenant there again"
    )
    assert fsctl("apply").stderr.strip().splitlines()[0].startswith("fs1: 1 tenants rendered")
    assert (tmp_path / "elsewhere" / "directory" / "acme.example.xml").exists()


def test_a_wrong_password_is_reported_for_that_node(db, fakes, tmp_path):
    three_nodes(fakes)
    with transaction():
        nodes.edit_node("fs2", esl_password="wrong")
    result = apply_all(settings_for(tmp_path))
    by = {n.node: n for n in result.nodes}
    assert by["fs2"].error == "FreeSWITCH refused the Event Socket password: nothing applied there"
    assert by["fs2"].exit_code == 1 and not by["fs1"].error


def test_move_drains_the_old_home_once_its_calls_are_over(db, fakes, tmp_path):
    three_nodes(fakes)
    settings = settings_for(tmp_path)
    fs3 = FakeFreeSWITCH(port=nodes.get_node("fs3").esl_port).start()
    fakes.append(fs3)
    apply_all(settings)
    with transaction():
        nodes.move_tenant(Tenant.get(Tenant.domain == "acme.example"), "fs3")
    # The move: fs3 gets acme; fs1 (old home) keeps it, draining; fs2 stays the standby.
    result = apply_all(settings, now=T0)
    assert {n.node: n.result.rendered for n in result.nodes}["fs3"] == ["acme.example"]
    assert result.draining_started == ["acme.example"]
    acme = Tenant.get(Tenant.domain == "acme.example")
    assert acme.draining_node.name == "fs1" and acme.drain_after == T0 + dt.timedelta(seconds=120)
    assert "acme.example" in domains_in(conf(settings, "fs1"))
    roles = {(r["node"], r["role"]) for r in nodeapply.node_status(settings) if r["domain"] == "acme.example"}
    assert roles == {("fs3", "home"), ("fs2", "standby"), ("fs1", "draining")}

    # Before drain_after: not even asked.
    apply_all(settings, now=T0 + dt.timedelta(seconds=60))
    assert "api show channels as json" not in fakes[0].received
    # After it, with a call of acme still up on fs1 (the recorded 2-row reply): kept.
    busy = captures.load("esl_events_plain_bridge_acme.txt")
    reply = next(r.body for r in busy.records if r.kind == "recv" and r.body.startswith(b'{"row_count":2'))
    fakes[0].set_api_reply("show channels as json", reply.decode())
    late = T0 + dt.timedelta(seconds=121)
    assert apply_all(settings, now=late).drained == []
    assert "acme.example" in domains_in(conf(settings, "fs1"))
    # The call is over: acme leaves fs1 in the same apply.
    fakes[0].set_api_reply("show channels as json", '{"row_count": 0}\n')
    result = apply_all(settings, now=late)
    assert result.drained == [("acme.example", "fs1")]
    assert {n.node: n.result.removed for n in result.nodes}["fs1"] == ["acme.example"]
    assert "acme.example" not in domains_in(conf(settings, "fs1"))
    assert Tenant.get(Tenant.domain == "acme.example").draining_node is None


def test_tenant_channels_reads_show_channels_as_json():
    busy = captures.load("esl_events_plain_bridge_acme.txt")
    reply = next(r.body for r in busy.records if r.kind == "recv" and r.body.startswith(b'{"row_count":2'))
    assert nodeapply.tenant_channels(reply.decode(), "acme.example") == 2
    assert nodeapply.tenant_channels(reply.decode(), "cme.example") == 0
    assert nodeapply.tenant_channels(reply.decode(), "acme.example.org") == 0
    assert nodeapply.tenant_channels('{"row_count": 0}', "acme.example") == 0
    one = json.dumps(
        {
            "row_count": 1,
            "rows": [
                {
                    "name": "sofia/external/+37060000000@127.0.0.1:5090",
                    "context": "fsctl-public",
                    "initial_context": "fsctl-public",
                    "presence_id": "102@beta.example",
                }
            ],
        }
    )
    assert nodeapply.tenant_channels(one, "beta.example") == 1  # a DID call ringing beta's 102


def test_cli_apply_and_status_with_nodes(fsctl_sqlite, fakes, tmp_path):
    fsctl = fsctl_sqlite
    fsctl.env.update({"FSCTL_CONF_DIR": str(tmp_path / "conf"), "FSCTL_ESL_TIMEOUT": "0.5"})
    fsctl("node", "add", "fs1", "--esl", f"127.0.0.1:{fakes[0].port}", "--sip", "127.0.0.1:5060")
    fsctl(
        "node",
        "add",
        "fs2",
        "--esl",
        f"127.0.0.1:{free_port()}",
        "--sip",
        "127.0.0.1:6060",
        "--conf-dir",
        str(tmp_path / "fs2-conf"),
    )
    fsctl("tenant", "add", "acme.example", "--name", "ACME")
    fsctl("user", "add", "acme.example", "101", "--name", "Ona")
    result = fsctl("apply", ok=False)
    assert result.exit_code == 3
    lines = result.stderr.strip().splitlines()
    assert lines[0] == "fs1: 1 tenants rendered, 0 removed, 3 files written, 0 deleted; reloadxml: +OK [Success]"
    assert re.fullmatch(
        r"fs2: not applied: FreeSWITCH 127\.0\.0\.1:(\d+) unreachable \(cannot connect to FreeSWITCH "
        r"at 127\.0\.0\.1:\1: \[Errno 111\] Connection refused\): nothing applied there, its tenants "
        r"stay pending; the next fsctl apply retries \(1 tenants pending there\)",
        lines[1],
    ), lines[1]
    assert lines[2] == (
        "Error: 1 of 2 nodes not fully applied (fs2): their tenants stay pending, the next fsctl apply retries"
    )
    assert sorted(os.listdir(tmp_path / "conf" / "nodes" / "fs1" / "directory")) == ["acme.example.xml"]
    status = json.loads(fsctl("status", "--json").stdout)
    assert [(r["domain"], r["node"], r["role"], r["status"], r["change"]) for r in status] == [
        ("acme.example", "fs1", "home", "applied", ""),
        ("acme.example", "fs2", "standby", "pending", "render"),
    ]
    # Only fs1: exit 0, nothing to do.
    only = fsctl("apply", "--node", "fs1")
    assert only.stderr.strip() == "fs1: nothing to apply"
    assert fsctl("apply", "--node", "fs9", ok=False).stderr.strip() == 'Error: --node "fs9" does not exist'
    as_json = json.loads(fsctl("apply", "--json", ok=False).stdout)
    assert [(n["node"], n["ok"], n["pending"]) for n in as_json["nodes"]] == [("fs1", True, 0), ("fs2", False, 1)]


def test_cli_apply_without_nodes_refuses_node_option(fsctl_sqlite):
    assert (
        fsctl_sqlite("apply", "--node", "fs1", ok=False).stderr.strip()
        == 'Error: --node "fs1": there are no nodes (fsctl node add)'
    )


def test_auto_apply_with_nodes_applies_every_node(fsctl_sqlite, fakes, tmp_path):
    fsctl = fsctl_sqlite
    fsctl.env.update({"FSCTL_CONF_DIR": str(tmp_path / "conf"), "FSCTL_ESL_TIMEOUT": "0.5"})
    fsctl("node", "add", "fs1", "--esl", f"127.0.0.1:{fakes[0].port}", "--sip", "127.0.0.1:5060")
    fsctl("node", "add", "fs2", "--esl", f"127.0.0.1:{fakes[1].port}", "--sip", "127.0.0.1:6060")
    result = fsctl("--apply", "tenant", "add", "acme.example", "--name", "ACME")
    assert "fs1: 1 tenants rendered" in result.stderr and "fs2: 1 tenants rendered" in result.stderr
    assert reloads(fakes[0]) == reloads(fakes[1]) == ["api reloadxml"]
    fsctl("node", "add", "fs3", "--esl", f"127.0.0.1:{free_port()}", "--sip", "127.0.0.1:7060")
    fsctl("--apply", "tenant", "move", "acme.example", "--to", "fs1", "--standby", "fs3", ok=False)
    moved = fsctl("--apply", "user", "add", "acme.example", "101", "--name", "Ona", ok=False)
    assert moved.exit_code == 3
    assert moved.stderr.strip().splitlines()[-1].startswith("Error: saved; not applied everywhere: fs3: FreeSWITCH ")


# --- delivery over SFTP ---------------------------------------------------------------------


def sftp_node(sshd, fake, remote, name="fs1"):  # noqa: F811
    with transaction():
        nodes.add_node(
            name,
            f"127.0.0.1:{fake.port}",
            "127.0.0.1:5060",
            sftp=f"{sshd.user}@127.0.0.1:{sshd.port}",
            remote_dir=str(remote),
        )


def sftp_settings(tmp_path, sshd):  # noqa: F811
    return settings_for(tmp_path, sftp_key=sshd.client_key, sftp_known_hosts=sshd.known_hosts)


def tree(folder):
    """fsctl's files in a folder (not its own bookkeeping: journal, previous files, index)."""
    return {rel: (folder / rel).read_bytes() for rel in single.managed_files(folder)}


def test_sftp_node_gets_exactly_the_local_copy(db, fakes, sshd, tmp_path):  # noqa: F811
    remote = tmp_path / "remote-fs"
    sftp_node(sshd, fakes[0], remote)
    make_demo("acme.example")
    settings = sftp_settings(tmp_path, sshd)
    result = apply_all(settings)
    assert result.exit_code == 0, result.as_dict()
    local = conf(settings, "fs1")
    assert tree(remote) == tree(local) and "directory/acme.example.xml" in tree(remote)
    assert not (local / nodeapply.PUSH_PENDING).exists()
    # A change: only that file travels; a suspended tenant's files go away remotely too.
    with transaction():
        users.edit_user("acme.example", "102", name="Ona Onaitė")
    apply_all(settings)
    assert tree(remote) == tree(local) and "Ona Onaitė" in (remote / "directory/acme.example.xml").read_text()
    with transaction():
        Tenant.update(state="suspended", revision=Tenant.revision + 1).execute()
    apply_all(settings)
    assert tree(remote) == tree(local) and "directory/acme.example.xml" not in tree(remote)


def test_sftp_refused_reload_pushes_the_old_files_back(db, fakes, sshd, tmp_path):  # noqa: F811
    remote = tmp_path / "remote-fs"
    sftp_node(sshd, fakes[0], remote)
    make_demo("acme.example")
    settings = sftp_settings(tmp_path, sshd)
    apply_all(settings)
    before = tree(remote)
    with transaction():
        users.edit_user("acme.example", "102", name="Changed")
    fakes[0].set_reloadxml("M1")
    result = apply_all(settings)
    assert result.exit_code == 1 and tree(remote) == before == tree(conf(settings, "fs1"))


def test_sftp_unreachable_node_is_skipped_and_an_interrupted_push_completed(db, fakes, sshd, tmp_path):  # noqa: F811
    remote = tmp_path / "remote-fs"
    sftp_node(sshd, fakes[0], remote)
    make_demo("acme.example")
    settings = sftp_settings(tmp_path, sshd)
    with transaction():
        nodes.edit_node("fs1", sftp=f"{sshd.user}@127.0.0.1:{free_port()}")
    result = apply_all(settings)
    assert result.exit_code == 3 and "sftp server 127.0.0.1:" in result.nodes[0].error
    assert result.nodes[0].pending == 1 and reloads(fakes[0]) == [] and not remote.exists()
    with transaction():
        nodes.edit_node("fs1", sftp=f"{sshd.user}@127.0.0.1:{sshd.port}")
    apply_all(settings)
    assert tree(remote) == tree(conf(settings, "fs1"))
    # A push cut short (the connection lost after the reload was refused, say): what was written down
    # as undelivered goes first at the next apply, whatever else it does.
    local = conf(settings, "fs1")
    (remote / "directory/acme.example.xml").write_text("<include>\n</include>\n")
    single._write_json_atomic(local / nodeapply.PUSH_PENDING, ["directory/acme.example.xml"])
    result = apply_all(settings)
    assert result.nodes[0].result.rendered == [] and tree(remote) == tree(local)
    assert not (local / nodeapply.PUSH_PENDING).exists()


# --- queues: each node's mod_callcenter holds the queues of the tenants placed there ----------


def queues_of(fake):
    return sorted(fake.callcenter.queues)


def test_each_nodes_mod_callcenter_holds_exactly_its_tenants_queues(db, fakes, tmp_path):
    """A queue's callers wait in the mod_callcenter of the node Kamailio sent them to: the home, the standby
    after a failover, the old home while it drains. Each of them has the tenant's queues, agents and tiers
    (mod_callcenter reads them only at load or from callcenter_config); a node the tenant leaves has none."""
    from tests.fsctl.services.test_apply import files_state, module_state

    three_nodes(fakes)
    settings = settings_for(tmp_path)
    fs3 = FakeFreeSWITCH(port=nodes.get_node("fs3").esl_port).start()
    fakes.append(fs3)
    by_node = dict(zip(("fs1", "fs2", "fs3"), fakes))
    assert apply_all(settings).exit_code == 0
    for name, fake in by_node.items():
        assert module_state(fake) == files_state(conf(settings, name)), name
    assert queues_of(by_node["fs1"]) == ["600@acme.example", "600@beta.example", "600@gamma.example"]
    assert queues_of(by_node["fs2"]) == ["600@acme.example", "600@beta.example"]
    assert queues_of(by_node["fs3"]) == ["600@gamma.example"]

    # A change of acme's queue reaches acme's two nodes, not fs3.
    marks = {name: len(fake.received) for name, fake in by_node.items()}
    with transaction():
        queues.edit_queue("acme.example", "600", strategy="round-robin")
    apply_all(settings)
    sent = {
        name: [c for c in fake.received[marks[name] :] if "callcenter_config" in c] for name, fake in by_node.items()
    }
    assert sent == {
        "fs1": ["api callcenter_config queue reload 600@acme.example"],
        "fs2": ["api callcenter_config queue reload 600@acme.example"],
        "fs3": [],
    }

    # beta's standby moves from fs1 to fs3: fs3 loads beta's queue, fs1 unloads it (its agents and tiers go).
    with transaction():
        nodes.move_tenant(Tenant.get(Tenant.domain == "beta.example"), "fs2", standby="fs3")
    apply_all(settings)
    assert queues_of(by_node["fs3"]) == ["600@beta.example", "600@gamma.example"]
    assert queues_of(by_node["fs1"]) == ["600@acme.example", "600@gamma.example"]
    assert not any(a.endswith("@beta.example") for a in by_node["fs1"].callcenter.agents)
    for name, fake in by_node.items():
        assert module_state(fake) == files_state(conf(settings, name)), name

    # acme moves to fs3: fs1 drains, and keeps acme's queue until its calls there are over.
    with transaction():
        nodes.move_tenant(Tenant.get(Tenant.domain == "acme.example"), "fs3")
    apply_all(settings, now=T0)
    assert "600@acme.example" in queues_of(by_node["fs1"]) and "600@acme.example" in queues_of(by_node["fs3"])
    by_node["fs1"].set_api_reply("show channels as json", '{"row_count": 0}\n')
    assert apply_all(settings, now=T0 + dt.timedelta(seconds=121)).drained == [("acme.example", "fs1")]
    assert queues_of(by_node["fs1"]) == ["600@gamma.example"]
    assert not any(a.endswith("@acme.example") for a in by_node["fs1"].callcenter.agents)
    for name, fake in by_node.items():
        assert module_state(fake) == files_state(conf(settings, name)), name


def test_a_node_down_gets_the_queue_change_when_it_is_back(db, fakes, tmp_path):
    from tests.fsctl.services.test_apply import files_state, module_state

    three_nodes(fakes)
    settings = settings_for(tmp_path)
    apply_all(settings)
    fakes[1].stop()  # fs2, acme's standby
    with transaction():
        queues.edit_queue("acme.example", "600", agents=["102"])
    result = apply_all(settings)
    assert {n.node: bool(n.error) for n in result.nodes} == {"fs1": False, "fs2": True, "fs3": True}
    assert "103@acme.example" not in fakes[0].callcenter.agents
    back = FakeFreeSWITCH(port=nodes.get_node("fs2").esl_port).start()
    fakes.append(back)
    back.callcenter = fakes[1].callcenter  # the module's own database outlives the restart (mod_callcenter.c)
    apply_all(settings)
    assert module_state(back) == files_state(conf(settings, "fs2"))
    assert "103@acme.example" not in back.callcenter.agents
