"""Nodes and placement (fsctl node ..., tenant add --node, tenant move), on SQLite and PostgreSQL."""

import datetime as dt
import json

import pytest

from fsctl.db import transaction
from fsctl.model import CallRecord, Tenant
from fsctl.services import nodes, tenants, users
from tests.fsctl.test_provisioning_cli import data, refused

T0 = dt.datetime(2026, 11, 20, 12, 0)


def add_node(fsctl, name, port, *extra):
    return fsctl("node", "add", name, "--esl", f"127.0.0.1:{port + 1000}", "--sip", f"127.0.0.1:{port}", *extra)


def placement(fsctl, domain):
    shown = data(fsctl, "tenant", "show", domain)
    return shown["home_node"], shown["standby_node"], shown["draining_node"]


# --- nodes --------------------------------------------------------------------------------


def test_node_add_list_show_edit_remove(fsctl):
    result = add_node(fsctl, "fs1", 5060)
    assert result.stderr.strip() == "node fs1 added"
    fsctl(
        "node",
        "add",
        "fs2",
        "--esl",
        "127.0.0.1:9021",
        "--sip",
        "127.0.0.1:6060",
        "--public",
        "127.0.0.1:6090",
        "--esl-password",
        "s3cret",
        "--conf-dir",
        "/srv/fs2/fsctl",
    )
    rows = data(fsctl, "node", "list")
    assert [r["name"] for r in rows] == ["fs1", "fs2"]
    assert rows[0] == {
        "name": "fs1",
        "esl": "127.0.0.1:6060",
        "sip": "127.0.0.1:5060",
        "public": "127.0.0.1:5080",
        "conf_dir": "",
        "sftp": "",
        "remote_dir": "",
        "recordings_dir": "",
        "home": 0,
        "standby": 0,
        "draining": 0,
        "load": 0,
        "applied": 0,
    }
    assert rows[1]["public"] == "127.0.0.1:6090" and rows[1]["conf_dir"] == "/srv/fs2/fsctl"
    assert "s3cret" not in json.dumps(rows)  # the password is never printed
    fsctl(
        "node",
        "edit",
        "fs2",
        "--sip",
        "127.0.0.1:7060",
        "--sftp",
        "fsctl@127.0.0.1",
        "--remote-dir",
        "/etc/freeswitch/fsctl/",
    )
    shown = data(fsctl, "node", "show", "fs2")
    assert shown["sip"] == "127.0.0.1:7060" and shown["public"] == "127.0.0.1:6090"
    assert shown["sftp"] == "fsctl@127.0.0.1:22" and shown["remote_dir"] == "/etc/freeswitch/fsctl"
    # The SFTP account alone (recordings; the XML stays in the conf dir), and where the node records.
    result = fsctl("node", "edit", "fs1", "--sftp", "rec@127.0.0.1:2222", "--recordings-dir", "/srv/rec/")
    assert result.stderr.strip() == "node fs1 updated"  # its XML still goes to its conf dir: nothing to render again
    shown = data(fsctl, "node", "show", "fs1")
    assert (shown["sftp"], shown["remote_dir"], shown["recordings_dir"]) == ("rec@127.0.0.1:2222", "", "/srv/rec")
    assert "renders every tenant there again" in fsctl("node", "edit", "fs1", "--remote-dir", "/etc/fs/fsctl").stderr
    assert fsctl("node", "remove", "fs2").stderr.strip() == "node fs2 removed"
    assert [r["name"] for r in data(fsctl, "node", "list")] == ["fs1"]


@pytest.mark.parametrize(
    "args, message",
    [
        (
            ("fs1", "--esl", "127.0.0.1", "--sip", "127.0.0.1:5060"),
            'Error: node.esl "127.0.0.1": must be HOST:PORT, e.g. 127.0.0.1:5060',
        ),
        (
            ("fs1", "--esl", "127.0.0.1:8021", "--sip", "127.0.0.1:70000"),
            'Error: node.sip "127.0.0.1:70000": must be HOST:PORT, e.g. 127.0.0.1:5060',
        ),
        (
            ("fs1", "--esl", "127.0.0.1:8021", "--sip", "bad host:5060"),
            'Error: node.sip "bad host:5060": must be HOST:PORT, e.g. 127.0.0.1:5060',
        ),
        (
            ("FS 1", "--esl", "127.0.0.1:8021", "--sip", "127.0.0.1:5060"),
            "Error: node.name \"FS 1\": must start with a lowercase letter, then lowercase letters, digits or '-' (max 32)",
        ),
        (
            ("fs1", "--esl", "127.0.0.1:8021", "--sip", "127.0.0.1:5060", "--conf-dir", "relative/dir"),
            'Error: node.conf_dir "relative/dir": must be an absolute path',
        ),
        (
            ("fs1", "--esl", "127.0.0.1:8021", "--sip", "127.0.0.1:5060", "--remote-dir", "/etc/freeswitch/fsctl"),
            'Error: node.remote_dir "/etc/freeswitch/fsctl": needs --sftp USER@HOST[:PORT] (the account that uploads the '
            "files there)",
        ),
        (
            ("fs1", "--esl", "127.0.0.1:8021", "--sip", "127.0.0.1:5060", "--recordings-dir", "rec"),
            'Error: node.recordings_dir "rec": must be an absolute path',
        ),
        (
            ("fs1", "--esl", "127.0.0.1:8021", "--sip", "127.0.0.1:5060", "--sftp", "127.0.0.1", "--remote-dir", "/x"),
            'Error: node.sftp "127.0.0.1": must be USER@HOST or USER@HOST:PORT',
        ),
    ],
)
def test_node_add_rules(fsctl, args, message):
    assert refused(fsctl, "node", "add", *args) == message
    assert data(fsctl, "node", "list") == []


def test_node_duplicate_and_unknown(fsctl):
    add_node(fsctl, "fs1", 5060)
    assert (
        refused(fsctl, "node", "add", "fs1", "--esl", "127.0.0.1:1", "--sip", "127.0.0.1:2")
        == 'Error: node "fs1" already exists'
    )
    assert refused(fsctl, "node", "show", "fs9") == 'Error: node "fs9" does not exist'
    assert refused(fsctl, "node", "edit", "fs9", "--sip", "127.0.0.1:5060") == 'Error: node "fs9" does not exist'


# --- placement ----------------------------------------------------------------------------


def test_without_nodes_tenants_are_as_before(fsctl):
    fsctl("tenant", "add", "acme.example", "--name", "ACME")
    assert "home_node" not in data(fsctl, "tenant", "show", "acme.example")
    assert (
        refused(fsctl, "tenant", "add", "b.example", "--name", "B", "--node", "fs1")
        == 'Error: node "fs1" does not exist'
    )
    assert (
        refused(fsctl, "tenant", "move", "acme.example", "--to", "fs1")
        == 'Error: tenant "acme.example" has no home node: the platform has no nodes (fsctl node add)'
    )


def test_first_nodes_place_existing_tenants(fsctl):
    fsctl("tenant", "add", "acme.example", "--name", "ACME")
    fsctl("tenant", "add", "beta.example", "--name", "Beta")
    assert add_node(fsctl, "fs1", 5060).stderr.strip() == "node fs1 added; 2 tenants placed (home or standby)"
    assert placement(fsctl, "acme.example") == ("fs1", None, None)
    assert add_node(fsctl, "fs2", 6060).stderr.strip() == "node fs2 added; 2 tenants placed (home or standby)"
    assert placement(fsctl, "acme.example") == ("fs1", "fs2", None)
    assert placement(fsctl, "beta.example") == ("fs1", "fs2", None)
    add_node(fsctl, "fs3", 7060)  # everyone has a home and a standby: nothing changes
    assert placement(fsctl, "beta.example") == ("fs1", "fs2", None)
    rows = {r["name"]: r for r in data(fsctl, "node", "list")}
    assert (rows["fs1"]["home"], rows["fs2"]["standby"], rows["fs3"]["home"]) == (2, 2, 0)


def test_new_tenants_go_to_the_least_loaded_node(fsctl):
    for name, port in (("fs1", 5060), ("fs2", 6060), ("fs3", 7060)):
        add_node(fsctl, name, port)
    assert (
        fsctl("tenant", "add", "a.example", "--name", "A").stderr.strip()
        == "tenant a.example added on fs1 (standby fs2)"
    )
    for n in ("101", "102"):
        fsctl("user", "add", "a.example", n, "--name", n)
    fsctl("tenant", "add", "b.example", "--name", "B")  # fs1 has 2 users: fs2, standby fs3 (fs3 by name)
    assert placement(fsctl, "b.example") == ("fs2", "fs3", None)
    fsctl("user", "add", "b.example", "101", "--name", "x")
    fsctl("tenant", "add", "c.example", "--name", "C")
    assert placement(fsctl, "c.example") == ("fs3", "fs2", None)
    fsctl("tenant", "add", "d.example", "--name", "D", "--node", "fs1", "--standby", "fs3")
    assert placement(fsctl, "d.example") == ("fs1", "fs3", None)
    assert (
        refused(fsctl, "tenant", "add", "e.example", "--name", "E", "--node", "fs1", "--standby", "fs1")
        == 'Error: tenant.standby "fs1": must differ from the home node'
    )
    assert (
        refused(fsctl, "tenant", "add", "e.example", "--name", "E", "--standby", "fs1")
        == 'Error: tenant.standby "fs1": needs --node (the tenant\'s home node)'
    )
    assert (
        refused(fsctl, "tenant", "add", "e.example", "--name", "E", "--node", "fs9")
        == 'Error: node "fs9" does not exist'
    )


def test_load_counts_users_and_calls_of_the_last_24_hours(db):
    with transaction():
        fs1, _ = nodes.add_node("fs1", "127.0.0.1:8021", "127.0.0.1:5060")
        fs2, _ = nodes.add_node("fs2", "127.0.0.1:8022", "127.0.0.1:6060")
        a = tenants.add_tenant("a.example", "A", node="fs1", standby="fs2")
        users.add_user("a.example", "101", "One")
        b = tenants.add_tenant("b.example", "B", node="fs2", standby="fs1")
        for i, hours_ago in enumerate((1, 2, 23, 25, 48)):
            CallRecord.create(
                tenant=b, uuid=f"u{i}", direction="in", started_at=T0 - dt.timedelta(hours=hours_ago), status="answered"
            )
    assert nodes.loads(now=T0) == {fs1.id: 1, fs2.id: 3}  # 1 user; 3 calls within 24 h (25 h and 48 h: not)
    assert nodes.loads(now=T0 + dt.timedelta(hours=22, minutes=30)) == {fs1.id: 1, fs2.id: 1}
    with transaction():
        c = tenants.add_tenant("c.example", "C", now=T0)
    assert (c.home_node.name, c.standby_node.name) == ("fs1", "fs2")
    with transaction():
        d = tenants.add_tenant("d.example", "D", now=T0 + dt.timedelta(days=3))  # the calls are old: a tie
    assert (d.home_node.name, d.standby_node.name) == ("fs2", "fs1")
    assert a.home_node.name == "fs1"


def test_node_with_tenants_cannot_be_removed(fsctl):
    add_node(fsctl, "fs1", 5060)
    add_node(fsctl, "fs2", 6060)
    fsctl("tenant", "add", "acme.example", "--name", "ACME")
    assert refused(fsctl, "node", "remove", "fs2") == (
        'Error: node "fs2" still holds tenants (1 as standby): move them first '
        "(fsctl tenant move DOMAIN --to NODE [--standby NODE])"
    )
    add_node(fsctl, "fs3", 7060)
    fsctl("tenant", "move", "acme.example", "--to", "fs3", "--standby", "fs1")
    assert placement(fsctl, "acme.example") == ("fs3", "fs1", None)  # fs1 stays (standby): nothing drains
    fsctl("node", "remove", "fs2")
    assert refused(fsctl, "node", "remove", "fs3") == (
        'Error: node "fs3" still holds tenants (1 as home): move them first '
        "(fsctl tenant move DOMAIN --to NODE [--standby NODE])"
    )


def test_move_swaps_drains_and_refuses_no_change(fsctl):
    for name, port in (("fs1", 5060), ("fs2", 6060), ("fs3", 7060)):
        add_node(fsctl, name, port)
    fsctl("tenant", "add", "acme.example", "--name", "ACME", "--node", "fs1", "--standby", "fs2")
    result = fsctl("tenant", "move", "acme.example", "--to", "fs2")
    assert result.stderr.strip() == "tenant acme.example moved: home fs2, standby fs1; fsctl apply carries it out"
    assert placement(fsctl, "acme.example") == ("fs2", "fs1", None)  # home and standby swapped
    result = fsctl("tenant", "move", "acme.example", "--to", "fs3")
    assert result.stderr.strip() == (
        "tenant acme.example moved: home fs3, standby fs1, draining fs2; fsctl apply carries it out"
    )
    assert placement(fsctl, "acme.example") == ("fs3", "fs1", "fs2")
    assert refused(fsctl, "node", "remove", "fs2").startswith('Error: node "fs2" still holds tenants (1 as draining)')
    assert (
        refused(fsctl, "tenant", "move", "acme.example", "--to", "fs3")
        == 'Error: tenant "acme.example" already lives on fs3 with standby fs1'
    )
    assert (
        refused(fsctl, "tenant", "move", "acme.example", "--to", "fs3", "--standby", "fs3")
        == 'Error: tenant.standby "fs3": must differ from the home node'
    )
    assert refused(fsctl, "tenant", "move", "acme.example", "--to", "fs9") == 'Error: node "fs9" does not exist'
    # Back to the draining node before it drained: it is simply the home again.
    fsctl("tenant", "move", "acme.example", "--to", "fs2")
    assert placement(fsctl, "acme.example") == ("fs2", "fs1", "fs3")


def test_tenant_list_shows_placement_once_nodes_exist(fsctl):
    fsctl("tenant", "add", "acme.example", "--name", "ACME")
    before = data(fsctl, "tenant", "list")
    assert set(before[0]) == {
        "domain",
        "name",
        "timezone",
        "state",
        "max_users",
        "max_channels",
        "fallback",
        "gateway",
        "outbound_name",
        "revision",
        "users",
    }
    add_node(fsctl, "fs1", 5060)
    row = data(fsctl, "tenant", "list")[0]
    assert (row["home_node"], row["standby_node"], row["draining_node"]) == ("fs1", None, None)
    table = fsctl("tenant", "list").stdout
    assert "home_node" in table and "fs1" in table


def test_a_refused_move_changes_nothing(fsctl):
    add_node(fsctl, "fs1", 5060)
    add_node(fsctl, "fs2", 6060)
    fsctl("tenant", "add", "acme.example", "--name", "ACME")
    refused(fsctl, "tenant", "move", "acme.example", "--to", "fs2", "--standby", "fs2")
    assert placement(fsctl, "acme.example") == ("fs1", "fs2", None)


def test_tenant_row_keeps_placement_ids(db):
    with transaction():
        nodes.add_node("fs1", "127.0.0.1:8021", "127.0.0.1:5060")
        tenants.add_tenant("a.example", "A")
    tenant = Tenant.get(Tenant.domain == "a.example")
    assert tenant.home_node.name == "fs1" and tenant.standby_node_id is None and tenant.drain_after is None


def test_the_per_node_fs_scripts_unit_verifies(tmp_path):
    """conf/systemd/fs-scripts@.service: one instance per node (`fs-scripts run --node %i`)."""
    import shutil
    import subprocess
    from pathlib import Path

    assert shutil.which("systemd-analyze"), "systemd-analyze is missing: run make sysdeps as root"
    text = (Path(__file__).resolve().parents[3] / "conf" / "systemd" / "fs-scripts@.service").read_text()
    assert "ExecStart=/opt/fsctl/bin/fs-scripts run --node %i --health-port ${HEALTH_PORT}" in text
    (tmp_path / "fs-scripts@.service").write_text(text.replace("/opt/fsctl/bin/fs-scripts", "/bin/true"))
    (tmp_path / "fs-scripts@fs1.service").symlink_to(tmp_path / "fs-scripts@.service")
    check = subprocess.run(
        ["systemd-analyze", "verify", str(tmp_path / "fs-scripts@fs1.service")], capture_output=True, text=True
    )
    assert check.returncode == 0, check.stderr
    assert [line for line in check.stderr.splitlines() if "fs-scripts" in line] == []
