"""The call log with more than one FreeSWITCH (issue 16): every node's service and every node's
mod_xml_cdr import feed the one database; a call is one record whichever nodes report its legs.
Both engines.
"""

import datetime as dt
import json
import re
import shlex
import shutil
import subprocess

import pytest

from fsctl.model import CallLeg, CallRecord, Outbox
from fsctl.services import cdr, nodes
from tests.fsctl.services.test_cdr import CAPTURE_A, T0, a_leg, b_leg, make_tenant
from tests.fsctl.services.test_cdr_import import (
    CALL_1,
    CALL_2,
    GOOD,
    REPO,
    cdr_file,
    copy_data,
    listing,
    snapshot,
)
from tests.fsctl.services.test_notify import fsctl_db
from tests.fsctl.test_provisioning_cli import refused


def add_nodes():
    nodes.add_node("fs1", "127.0.0.1:8021", "127.0.0.1:5060")
    nodes.add_node("fs2", "127.0.0.1:8022", "127.0.0.1:6060")


def legs_by_node():
    return sorted((leg.call.uuid, leg.uuid, leg.node) for leg in CallLeg.select())


def test_a_call_whose_legs_two_nodes_report_is_one_record(db, tmp_path):
    """The caller's leg from fs1's service, the leg it rang from fs2's mod_xml_cdr folder: one call, fs1's."""
    make_tenant(db)
    add_nodes()
    start, answered = T0, T0 + dt.timedelta(seconds=4)
    end = T0 + dt.timedelta(seconds=64)
    a = a_leg(
        "x-1",
        caller="+37061111111",
        did="+37052000000",
        route="user:102",
        start=start,
        answer=answered,
        end=end,
        bridged_to="x-b1",
        bridged_user="102",
    )
    cdr.ingest_hangups([a], node="fs1")  # as fs-scripts run --node fs1 does
    first = snapshot()
    assert [(c.uuid, c.node) for c in CallRecord.select()] == [("x-1", "fs1")]
    assert legs_by_node() == [("x-1", "x-b1", "fs1")]  # known only from the caller's leg so far
    folder = tmp_path / "fs2-xml_cdr"
    cdr_file(folder / "b_x-b1.cdr.xml", b_leg("x-b1", "x-1", "102", start=start, answer=answered, end=end))
    result = cdr.import_xml_cdr_dir(folder, move_to=tmp_path / "fs2-archive", node="fs2")
    assert (result.calls_created, result.calls_updated, result.failed) == (0, 1, [])
    assert [(c.uuid, c.node, c.status, c.answered_by) for c in CallRecord.select()] == [
        ("x-1", "fs1", "answered", "102")
    ]
    assert legs_by_node() == [("x-1", "x-b1", "fs2")]
    assert snapshot()[0] == first[0] and snapshot()[3] == first[3]  # the same call, nothing notified twice
    # and the other way round: the leg first (from fs2), the caller's leg later (from fs1)
    cdr.ingest_hangups([b_leg("y-b1", "y-1", "102", start=start, end=end, cause="NO_ANSWER")], node="fs2")
    assert CallRecord.get(CallRecord.uuid == "y-1").node == "fs2"  # provisional
    cdr.ingest_hangups([a_leg("y-1", route="user:102", start=start, end=end)], node="fs1")
    assert CallRecord.get(CallRecord.uuid == "y-1").node == "fs1"
    assert ("y-1", "y-b1", "fs2") in legs_by_node()
    # a source that does not know its node (a replay by hand without --node) keeps what was known
    cdr.ingest_hangups(
        [
            a_leg("y-1", route="user:102", start=start, end=end),
            b_leg("y-b1", "y-1", "102", start=start, end=end, cause="NO_ANSWER"),
        ]
    )
    assert CallRecord.get(CallRecord.uuid == "y-1").node == "fs1" and ("y-1", "y-b1", "fs2") in legs_by_node()
    assert CallRecord.select().count() == 2


def test_every_nodes_folder_is_imported_with_its_node(fsctl, tmp_path):
    fsctl("tenant", "add", "acme.example", "--name", "ACME")
    fsctl("node", "add", "fs1", "--esl", "127.0.0.1:8021", "--sip", "127.0.0.1:5060")
    fsctl("node", "add", "fs2", "--esl", "127.0.0.1:8022", "--sip", "127.0.0.1:6060")
    on1 = copy_data(tmp_path, with_bad=False, name="fs1")  # three calls written by fs1
    on2 = tmp_path / "fs2"  # fs2 wrote one call
    on2.mkdir()
    with fsctl_db(fsctl):
        cdr_file(on2 / "a_z-1.cdr.xml", a_leg("z-1", caller="+37062222222", did="+37052000000", route="user:102"))
    # with nodes, an import must say whose folder it reads (and reads nothing before)
    assert (
        refused(fsctl, "cdr", "import", str(on1), "--move-to", str(tmp_path / "archive1"))
        == 'Error: --node "": must name the node whose mod_xml_cdr folder this is (nodes: fs1, fs2)'
    )
    assert listing(on1) == GOOD
    assert refused(fsctl, "cdr", "import", str(on1), "--node", "fs9") == 'Error: node "fs9" does not exist'
    for name, folder in (("fs1", on1), ("fs2", on2)):
        result = fsctl(
            "cdr", "import", str(folder), "--node", name, "--move-to", str(tmp_path / f"archive-{name}"), "--json"
        )
        assert json.loads(result.stdout)["failed"] == [] and listing(folder) == []
    calls = json.loads(
        fsctl("cdr", "list", "acme.example", "--from", "2000-01-01", "--to", "2100-01-01", "--json").stdout
    )
    assert {c["uuid"]: c["node"] for c in calls} == {CAPTURE_A: "fs1", CALL_1: "fs1", CALL_2: "fs1", "z-1": "fs2"}
    # the same files imported again from the other node's archive (copied there by hand): still one record each
    shutil.copytree(tmp_path / "archive-fs1", tmp_path / "again")
    result = fsctl("cdr", "import", str(tmp_path / "again"), "--node", "fs2", "--json")
    assert (json.loads(result.stdout)["calls_created"], json.loads(result.stdout)["calls_updated"]) == (0, 3)
    with fsctl_db(fsctl):
        assert CallRecord.select().count() == 4
        assert Outbox.select().count() == len({o.key for o in Outbox.select()})


# --- the per-node timers (conf/systemd/*@.{service,timer}) ----------------------------------------

PER_NODE_UNITS = ("fsctl-cdr-import@", "fsctl-rec-purge@")


@pytest.mark.servers  # systemd-analyze
@pytest.mark.parametrize("name", PER_NODE_UNITS)
def test_per_node_units_verify(tmp_path, name):
    assert shutil.which("systemd-analyze"), "systemd-analyze is missing: run make sysdeps as root"
    for kind in ("service", "timer"):
        text = (REPO / "conf" / "systemd" / f"{name}.{kind}").read_text()
        (tmp_path / f"{name}.{kind}").write_text(re.sub(r"/opt/fsctl/bin/[a-z-]+", "/bin/true", text))
        (tmp_path / f"{name}fs1.{kind}").symlink_to(tmp_path / f"{name}.{kind}")
    check = subprocess.run(
        ["systemd-analyze", "verify", str(tmp_path / f"{name}fs1.service"), str(tmp_path / f"{name}fs1.timer")],
        capture_output=True,
        text=True,
    )
    assert check.returncode == 0, check.stderr
    assert [line for line in check.stderr.splitlines() if "fsctl" in line] == []


def test_per_node_units_run_commands_fsctl_accepts(fsctl, tmp_path):
    """Each per-node unit's command line, with the node for %i and the folders moved into the test's."""
    fsctl("tenant", "add", "acme.example", "--name", "ACME")
    fsctl(
        "node",
        "add",
        "fs1",
        "--esl",
        "127.0.0.1:8021",
        "--sip",
        "127.0.0.1:5060",
        "--recordings-dir",
        str(tmp_path / "rec"),
    )
    (tmp_path / "rec").mkdir()
    copy_data(tmp_path, with_bad=False, name="xml_cdr")
    for name in PER_NODE_UNITS:
        [exec_start] = [
            line.split("=", 1)[1]
            for line in (REPO / "conf" / "systemd" / f"{name}.service").read_text().splitlines()
            if line.startswith("ExecStart=")
        ]
        assert "--node %i" in exec_start
        line = exec_start.replace("%i", "fs1").replace("/var/log/freeswitch", str(tmp_path))
        result = fsctl(*shlex.split(line)[1:])
        assert result.exit_code == 0
    assert listing(tmp_path / "xml_cdr") == GOOD  # just copied: too new for --min-age 30
