"""Recordings with more than one FreeSWITCH (issue 16): the catalogue says which node holds each file;
import and purge work on one node's folder. Both engines; real WAV files in private folders.
"""

import datetime as dt
import json
import os

import pytest

from fsctl.model import Node, Recording, Tenant
from fsctl.services import nodes, recordings as rec
from tests.conftest import free_port
from tests.fsctl.services.test_recordings import T0, make_recording, make_tenants
from tests.fsctl.services.test_sftp import local_files, sshd  # noqa: F401 (the real sshd fixture)
from tests.fsctl.test_provisioning_cli import refused


def add_nodes(*names, **recordings_dirs):
    for i, name in enumerate(names):
        nodes.add_node(
            name, f"127.0.0.1:{8021 + i}", f"127.0.0.1:{5060 + 100 * i}", recordings_dir=recordings_dirs.get(name, "")
        )


@pytest.fixture
def folders(tmp_path):
    """Each node's recordings folder (and the single FreeSWITCH's, "local")."""
    out = {}
    for name in ("fs1", "fs2", "local"):
        out[name] = str(tmp_path / f"rec-{name}")
        os.makedirs(out[name])
    return out


def test_catalogue_says_which_node_holds_the_file(db, folders):
    make_tenants()
    add_nodes("fs1", "fs2")
    row, rel = make_recording(folders["fs1"], uuid="a", catalogue=False)
    row = rec.catalogue_recording(os.path.join(folders["fs1"], rel), folders["fs1"], node="fs1")
    assert row.node == "fs1" and rec.recording_dict(row)["node"] == "fs1"
    # the same event again (a replay) changes nothing
    assert rec.catalogue_recording(os.path.join(folders["fs1"], rel), folders["fs1"], node="fs1").id == row.id
    # a copy of the file on another node does not take the row away from fs1
    make_recording(folders["fs2"], uuid="a", catalogue=False)
    again = rec.catalogue_recording(os.path.join(folders["fs2"], rel), folders["fs2"], node="fs2")
    assert (again.id, Recording.get_by_id(row.id).node) == (row.id, "fs1")
    # without nodes nothing changes: no node, the single FreeSWITCH
    local, _ = make_recording(folders["local"], uuid="b")
    assert local.node is None


def test_import_of_a_node_folder(db, folders):
    make_tenants()
    add_nodes("fs1", "fs2")
    _, on1 = make_recording(folders["fs1"], uuid="one", catalogue=False)
    _, on2 = make_recording(folders["fs2"], uuid="two", user="102", catalogue=False)
    # catalogued before the nodes existed (no node): the node whose folder holds it takes it
    before, _ = make_recording(folders["fs2"], uuid="old", user="103")
    assert before.node is None
    report = rec.import_recordings(folders["fs1"], node="fs1")
    assert (report.added, report.updated, report.unchanged, report.skipped) == (1, 0, 0, [])
    report = rec.import_recordings(folders["fs2"], node="fs2")
    assert (report.added, report.updated, report.unchanged, report.skipped) == (1, 1, 0, [])
    assert {r.call_uuid: r.node for r in Recording.select()} == {"one": "fs1", "two": "fs2", "old": "fs2"}
    assert rec.import_recordings(folders["fs2"], node="fs2").unchanged == 2  # idempotent
    # a copy of fs1's file in fs2's folder: skipped, the catalogue keeps fs1
    make_recording(folders["fs2"], uuid="one", catalogue=False)
    report = rec.import_recordings(folders["fs2"], node="fs2")
    assert report.skipped == [(on1, "catalogued on node fs1")] and Recording.get(Recording.path == on1).node == "fs1"
    # fs1 removed (its tenants moved, its files copied to fs2): fs2's import takes its rows over
    Tenant.update(home_node=nodes.get_node("fs2"), standby_node=None, draining_node=None).execute()
    nodes.remove_node("fs1")
    report = rec.import_recordings(folders["fs2"], node="fs2")
    assert (report.updated, report.skipped) == (1, []) and Recording.get(Recording.path == on1).node == "fs2"
    assert Recording.get(Recording.path == on2).node == "fs2"


def test_purge_of_one_node_removes_its_share_of_the_whole_plan(db, folders):
    """The quota counts a user's recordings on every node; each node's purge removes the files on its disk."""
    make_tenants()
    add_nodes("fs1", "fs2")
    now = dt.datetime(2026, 11, 22, 12, 0)
    # user 102: four recordings of ~800 kB against a 2 MB quota, oldest first on fs1, fs2, fs1, fs2
    made = []
    for i, name in enumerate(("fs1", "fs2", "fs1", "fs2")):
        row, _ = make_recording(
            folders[name],
            user="102",
            started=now - dt.timedelta(hours=10 - i),
            uuid=f"q{i}",
            seconds=50,
            catalogue=False,
        )
        made.append(rec.catalogue_recording(os.path.join(folders[name], _), folders[name], node=name))
    old, old_rel = make_recording(folders["fs2"], started=now - dt.timedelta(days=181), uuid="old", catalogue=False)
    old = rec.catalogue_recording(os.path.join(folders["fs2"], old_rel), folders["fs2"], node="fs2")
    whole = rec.purge(folders["fs1"], 180, 2, now=now, dry_run=True, every_node=True)
    assert [(i.id, i.node, i.reason) for i in whole.items] == [
        (old.id, "fs2", "expired"),
        (made[0].id, "fs1", "quota"),
        (made[1].id, "fs2", "quota"),
    ]
    plan = rec.purge(folders["fs1"], 180, 2, now=now, node="fs1")
    assert [i.id for i in plan.items] == [made[0].id] and [i.id for i in plan.elsewhere] == [old.id, made[1].id]
    assert not os.path.exists(os.path.join(folders["fs1"], made[0].path))
    assert all(os.path.exists(os.path.join(folders["fs2"], r.path)) for r in (old, made[1]))
    # fs1 again before fs2 ran: nothing more there (fs2's share still counts for the quota)
    assert rec.purge(folders["fs1"], 180, 2, now=now, node="fs1").items == []
    plan = rec.purge(folders["fs2"], 180, 2, now=now, node="fs2")
    assert sorted(i.id for i in plan.items) == sorted([old.id, made[1].id]) and plan.elsewhere == []
    assert {r.id for r in Recording.select()} == {made[2].id, made[3].id}
    assert all(os.path.exists(os.path.join(folders[r.node], r.path)) for r in Recording.select())


def test_import_and_purge_cli_with_nodes(fsctl, folders):
    from fsctl import db as fsdb

    fsdb.open_database(fsctl.url)
    make_tenants()
    add_nodes("fs1", "fs2", fs2=folders["fs2"])
    _, rel = make_recording(folders["fs1"], uuid="a", started=T0, catalogue=False)
    _, rel2 = make_recording(folders["fs2"], uuid="b", started=T0, catalogue=False)
    fsdb.close_database()
    fsctl.env["FSCTL_RECORDINGS_DIR"] = folders["local"]
    assert (
        refused(fsctl, "rec", "import")
        == 'Error: --node "": must name the node whose recordings folder this is (nodes: fs1, fs2)'
    )
    assert refused(fsctl, "rec", "import", "--node", "fs9") == 'Error: node "fs9" does not exist'
    assert (
        fsctl("rec", "import", "--node", "fs1", "--dir", folders["fs1"]).stdout
        == "1 added, 0 updated, 0 unchanged, 0 skipped\n"
    )
    # fs2 records into its own --recordings-dir: the default folder of its import
    assert fsctl("rec", "import", "--node", "fs2").stdout == "1 added, 0 updated, 0 unchanged, 0 skipped\n"
    rows = json.loads(fsctl("rec", "search", "--json").stdout)
    assert sorted((r["path"], r["node"]) for r in rows) == [(rel, "fs1"), (rel2, "fs2")]
    fsctl.env["FSCTL_RECORDING_RETENTION_DAYS"] = "1"
    assert (
        refused(fsctl, "rec", "purge")
        == 'Error: --node "": must name the node whose recordings this run removes (nodes: fs1, fs2)'
    )
    dry = fsctl("rec", "purge", "--dry-run")
    assert [line.rsplit(" ", 2)[1:] for line in dry.stdout.splitlines()] == [["on", "fs1"], ["on", "fs2"]]
    result = fsctl("rec", "purge", "--node", "fs2")
    assert result.stdout.splitlines() == [
        f"purged {rows[0]['id'] if rows[0]['node'] == 'fs2' else rows[1]['id']} acme.example 101 "
        f"2026-11-20T09:30:00Z {rel2} (expired) on fs2"
    ]
    assert (
        result.stderr.splitlines()[-1]
        == "1 more on other nodes, left to their own purge (fsctl rec purge --node NAME): fs1 1"
    )
    assert not os.path.exists(os.path.join(folders["fs2"], rel2)) and os.path.exists(os.path.join(folders["fs1"], rel))
    assert [r["node"] for r in json.loads(fsctl("rec", "search", "--json").stdout)] == ["fs1"]


# --- rec pull: each file from the node that holds it (the real sshd) ----------------------------


@pytest.fixture
def cluster_recordings(fsctl_sqlite, sshd, folders):  # noqa: F811 (the sshd fixture)
    """fs1 and fs2 reachable over the sshd, each with its recordings folder; one recording of each node
    and one of the time before nodes (no node, on the settings' recordings server)."""
    from fsctl import db as fsdb

    fsctl = fsctl_sqlite
    fsdb.open_database(fsctl.url)
    make_tenants()
    rels = {}
    _, rels[None] = make_recording(folders["local"], uuid="before")
    add_nodes("fs1", "fs2")
    for i, name in enumerate(("fs1", "fs2")):
        _, rel = make_recording(
            folders[name],
            user=f"10{i + 1}",
            uuid=f"on-{name}",
            catalogue=False,
            started=T0 + dt.timedelta(minutes=i + 1),
        )
        rec.catalogue_recording(os.path.join(folders[name], rel), folders[name], node=name)
        rels[name] = rel
    fsdb.close_database()
    fsctl.env.update(
        {
            "FSCTL_SFTP_HOST": "127.0.0.1",
            "FSCTL_SFTP_PORT": str(sshd.port),
            "FSCTL_SFTP_USER": sshd.user,
            "FSCTL_SFTP_KEY": sshd.client_key,
            "FSCTL_SFTP_KNOWN_HOSTS": sshd.known_hosts,
            "FSCTL_SFTP_REMOTE_DIR": folders["local"],
            "FSCTL_RECORDINGS_DIR": folders["local"],
        }
    )
    for name in ("fs1", "fs2"):
        fsctl("node", "edit", name, "--sftp", f"{sshd.user}@127.0.0.1:{sshd.port}", "--recordings-dir", folders[name])
    return fsctl, rels


def test_pull_fetches_each_file_from_its_node(cluster_recordings, tmp_path):
    fsctl, rels = cluster_recordings
    dest = str(tmp_path / "pulled")
    rows = json.loads(fsctl("rec", "pull", "--dest", dest, "--json").stdout)
    assert sorted((r["node"] or "", r["status"]) for r in rows) == [
        ("", "fetched"),
        ("fs1", "fetched"),
        ("fs2", "fetched"),
    ]
    for node, rel in rels.items():
        source = os.path.join({None: "rec-local"}.get(node, f"rec-{node}"), rel)
        assert open(os.path.join(dest, rel), "rb").read() == open(str(tmp_path / source), "rb").read()
    assert fsctl("rec", "pull", "--dest", dest).stderr.strip() == "0 fetched, 0 resumed, 3 skipped, 0 failed"


def test_pull_with_one_node_unreachable_fetches_the_others_and_exits_3(cluster_recordings, tmp_path, sshd):  # noqa: F811
    fsctl, rels = cluster_recordings
    dest = str(tmp_path / "pulled")
    closed = free_port()
    fsctl("node", "edit", "fs2", "--sftp", f"{sshd.user}@127.0.0.1:{closed}")
    result = fsctl("rec", "pull", "--dest", dest, ok=False)
    assert result.exit_code == 3
    assert result.stderr.strip().splitlines() == [
        f'failed "{tmp_path}/rec-fs2/{rels["fs2"]}": not fetched: fs2 unreachable',
        f"fs2: 1 recordings not fetched: sftp server 127.0.0.1:{closed} is unreachable: Connection refused",
        "2 fetched, 0 resumed, 0 skipped, 1 failed",
        "Error: 1 of 3 recordings not fetched (fs2 unreachable); the others are here: run again to fetch the rest",
    ]
    assert sorted(local_files(dest)) == sorted([rels[None], rels["fs1"]])
    # only fs2's recordings asked for: that node is the whole story
    only = fsctl("rec", "pull", "--dest", dest, "--user", "102", ok=False)
    assert (only.exit_code, only.stderr.strip()) == (
        3,
        f"Error: fs2: sftp server 127.0.0.1:{closed} is unreachable: Connection refused",
    )
    # fs2 is back: the next run fetches its file, the others are there already
    fsctl("node", "edit", "fs2", "--sftp", f"{sshd.user}@127.0.0.1:{sshd.port}")
    rows = json.loads(fsctl("rec", "pull", "--dest", dest, "--json").stdout)
    assert sorted((r["node"] or "", r["status"]) for r in rows) == [
        ("", "skipped"),
        ("fs1", "skipped"),
        ("fs2", "fetched"),
    ]


def test_pull_from_a_node_without_an_account_or_with_an_unknown_host_key(cluster_recordings, tmp_path, sshd):  # noqa: F811
    fsctl, rels = cluster_recordings
    dest = str(tmp_path / "pulled")
    from fsctl import db as fsdb

    fsdb.open_database(fsctl.url)
    Node.update(sftp="").where(Node.name == "fs2").execute()
    fsdb.close_database()
    result = fsctl("rec", "pull", "--dest", dest, ok=False)
    assert result.exit_code == 1
    assert result.stderr.strip().splitlines()[-1] == (
        f'Error: 1 of 3 recordings failed: "{tmp_path}/rec-fs2/{rels["fs2"]}": not fetched: node fs2 has no SFTP account '
        "(fsctl node edit fs2 --sftp USER@HOST[:PORT])"
    )
    assert sorted(local_files(dest)) == sorted([rels[None], rels["fs1"]])
    # rec publish cannot fetch it either: the rest is published, that file is listed, exit 1
    fsctl.env["FSCTL_PUBLISH_DIR"] = str(tmp_path / "sftp")
    fsctl.clock = lambda: dt.datetime(2026, 11, 21, 4, 0)
    result = fsctl("rec", "publish", "--tenant", "acme.example", ok=False)
    assert result.exit_code == 1 and result.stdout.startswith("acme.example 2026-11-20: 2 recordings")
    assert (
        result.stderr.strip().splitlines()[-1]
        == "Error: 1 recordings on nodes not published (listed above): everything else is"
    )
    # a node whose host key is not known is refused, never trusted on first use
    known = tmp_path / "known_hosts"
    known.write_text("")
    fsctl.env["FSCTL_SFTP_KNOWN_HOSTS"] = str(known)
    fsctl("node", "edit", "fs2", "--sftp", f"{sshd.user}@127.0.0.1:{sshd.port}")
    result = fsctl("rec", "pull", "--dest", dest, "--user", "102", ok=False)
    assert (result.exit_code, result.stderr.strip()) == (
        1,
        f"Error: fs2: sftp server 127.0.0.1:{sshd.port}: host key is not in {known}: refusing to connect "
        "(verify its fingerprint, then add it to known_hosts)",
    )
    assert known.read_text() == ""


# --- rec publish: the drop folders hold every node's recordings ---------------------------------


def test_publish_fetches_recordings_from_their_nodes(cluster_recordings, tmp_path, sshd):  # noqa: F811
    import subprocess

    fsctl, rels = cluster_recordings
    drop = tmp_path / "sftp"
    fsctl.env["FSCTL_PUBLISH_DIR"] = str(drop)
    fsctl.clock = lambda: dt.datetime(2026, 11, 21, 4, 0)  # 06:00 in Vilnius: acme.example's 2026-11-20 is due
    closed = free_port()
    fsctl("node", "edit", "fs2", "--sftp", f"{sshd.user}@127.0.0.1:{closed}")
    result = fsctl("rec", "publish", "--tenant", "acme.example", ok=False)
    assert result.exit_code == 3
    assert result.stdout == (
        "acme.example 2026-11-20: 2 recordings (1 linked, 0 copied, 1 fetched from nodes, 0 already there)\n"
    )
    assert result.stderr.strip().splitlines() == [
        f'warning: acme.example {rels["fs2"]}: not published yet ("{tmp_path}/rec-fs2/{rels["fs2"]}": not fetched: '
        "fs2 unreachable)",
        f"fs2: sftp server 127.0.0.1:{closed} is unreachable: Connection refused",
        "Error: fs2 not reached: their recordings wait for the next run (everything else is published)",
    ]
    day = drop / "acme.example" / "2026-11-20"
    names = sorted(os.listdir(day))
    assert names == sorted(["SHA256SUMS", os.path.basename(rels[None]), os.path.basename(rels["fs1"])])
    assert subprocess.run(["sha256sum", "-c", "--strict", "SHA256SUMS"], cwd=day, capture_output=True).returncode == 0
    incoming = drop / "acme.example" / ".fsctl-incoming"
    assert oct(os.stat(incoming).st_mode & 0o777) == "0o700" and os.listdir(incoming) == []
    # fs2 is back: the next run adds its recording and rewrites the manifest
    fsctl("node", "edit", "fs2", "--sftp", f"{sshd.user}@127.0.0.1:{sshd.port}")
    result = fsctl("rec", "publish", "--tenant", "acme.example")
    assert result.stdout == (
        "acme.example 2026-11-20: 3 recordings (0 linked, 0 copied, 1 fetched from nodes, 2 already there)\n"
    )
    assert len(open(day / "SHA256SUMS").read().splitlines()) == 3
    assert subprocess.run(["sha256sum", "-c", "--strict", "SHA256SUMS"], cwd=day, capture_output=True).returncode == 0
    assert (
        open(day / os.path.basename(rels["fs2"]), "rb").read() == open(tmp_path / "rec-fs2" / rels["fs2"], "rb").read()
    )
    assert (
        fsctl("rec", "publish", "--tenant", "acme.example").stdout
        == "acme.example 2026-11-20: 3 recordings (0 linked, 0 copied, 3 already there)\n"
    )


def test_a_recording_of_a_removed_node_is_reported_not_fetched(db, folders, tmp_path):
    from fsctl.config import Settings
    from fsctl.services import recfetch

    make_tenants()
    add_nodes("fs1")
    row, rel = make_recording(folders["fs1"], uuid="orphan", catalogue=False)
    row = rec.catalogue_recording(os.path.join(folders["fs1"], rel), folders["fs1"], node="fs1")
    Recording.update(node="fs9").where(Recording.id == row.id).execute()  # catalogued on a node since removed
    row = Recording.get_by_id(row.id)
    report = recfetch.fetch(
        recfetch.plan([(row, str(tmp_path / "out" / rel))], Settings()),
        connect=lambda endpoint: pytest.fail("no connection for a node that is gone"),
    )
    assert [(r.status, r.error.split(": not fetched: ")[1]) for r in report.results] == [
        ("failed", "node fs9 no longer exists (the file stayed on its disk)")
    ]
    assert (report.exit_code, report.nodes) == (1, ["fs9"])
