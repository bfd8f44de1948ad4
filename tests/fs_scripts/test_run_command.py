"""`fs-scripts run` as the operator starts it: a process, a settings file, the fake FreeSWITCH."""

import contextlib
import json
import os
import signal
import subprocess
import sys
import time
import urllib.request

import gevent

from fsctl.db import close_database, open_database
from fsctl.services import groups, tenants, users
from tests.conftest import free_port


@contextlib.contextmanager
def _service(args, env, tmp_path):
    """`fs-scripts ARGS` as a process whose output goes to a file (never a pipe nobody reads),
    stopped with SIGTERM as systemd stops it."""
    with open(tmp_path / "fs-scripts.log", "wb") as log:
        proc = subprocess.Popen(
            [sys.executable, "-c", "from fs_scripts.cli import main; main()", *args],
            env=env,
            stdout=log,
            stderr=subprocess.STDOUT,
        )
        try:
            yield proc
        finally:
            if proc.poll() is None:
                proc.send_signal(signal.SIGTERM)
            try:
                proc.wait(10)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()


def test_run_routes_a_parked_call_and_reports_health(fake_fs, tmp_path):
    url = f"sqlite:///{tmp_path}/fsctl.db"
    open_database(url)
    tenants.add_tenant("acme.example", "ACME", "Europe/Vilnius")
    for n in ("101", "102"):
        users.add_user("acme.example", n, f"U{n}")
    groups.add_group("acme.example", "200", "G", members=["101", "102"])
    close_database()
    cfg = tmp_path / "fsctl.toml"
    cfg.write_text(
        f'[fsctl]\ndatabase = "{url}"\nesl_host = "127.0.0.1"\nesl_port = {fake_fs.port}\n'
        f'esl_password = "ClueCon"\nrecordings_dir = "{tmp_path}/rec"\n'
    )
    port = free_port()
    env = dict(os.environ, FSCTL_CONFIG=str(cfg))
    with _service(["run", "--health-port", str(port)], env, tmp_path) as service:
        health = None
        for _ in range(200):
            gevent.sleep(0.05)
            try:
                with urllib.request.urlopen(f"http://127.0.0.1:{port}/health", timeout=1) as reply:
                    health = json.loads(reply.read())
                    break
            except OSError:
                continue
        assert health is not None and health["freeswitch"] == "connected"
        fake_fs.wait_subscribed(5)
        uuid = fake_fs.park_call(
            headers={
                "Caller-Destination-Number": "200",
                "Caller-Caller-ID-Number": "101",
                "variable_fsctl_tenant": "acme.example",
            }
        )
        deadline = time.monotonic() + 10
        apps = []
        while time.monotonic() < deadline and "bridge" not in apps:
            gevent.sleep(0.05)
            apps = [app for u, app, _arg, _ in fake_fs.executions if u == uuid]
        assert f"api sched_del {uuid}" in fake_fs.received and apps == ["bridge"]
        fake_fs.hangup_call(
            uuid,
            "NORMAL_CLEARING",
            headers={"variable_fsctl_tenant": "acme.example", "variable_domain_name": "acme.example"},
        )
        assert _wait_for_call_record(url, uuid)
        service.send_signal(signal.SIGTERM)
        assert service.wait(30) == 0  # stopped, not killed: the shutdown wrote what it held
    assert (tmp_path / "fs-scripts.log").read_text().rstrip().endswith("INFO fs_scripts: stopped")


def _wait_for_call_record(url, uuid, deadline=10.0):
    from fsctl.model import CallRecord

    open_database(url)
    try:
        end = time.monotonic() + deadline
        while time.monotonic() < end:
            if CallRecord.select().where(CallRecord.uuid == uuid).exists():
                return True
            time.sleep(0.05)
        return False
    finally:
        close_database()


def test_run_refuses_a_database_that_does_not_exist(tmp_path):
    """A mistyped database setting must not start the service on a new, empty database."""
    url = f"sqlite:///{tmp_path}/typo.db"
    result = subprocess.run(
        [sys.executable, "-c", "from fs_scripts.cli import main; main()", "run", "--database", url],
        env=dict(os.environ, FSCTL_CONFIG=""),
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert result.returncode == 2
    assert result.stderr == f'Error: database "{url}": {tmp_path}/typo.db does not exist (`fsctl init` creates it)\n'
    assert not (tmp_path / "typo.db").exists()


def test_run_with_node_serves_that_nodes_event_socket(fake_fs, tmp_path):
    """`fs-scripts run --node fs2` connects to fs2's Event Socket from the database, not the settings'."""
    from fsctl.model import CallRecord, Recording
    from fsctl.services import nodes
    from tests.fsctl.services.test_cdr import a_leg
    from tests.fsctl.services.test_recordings import write_wav

    url = f"sqlite:///{tmp_path}/fsctl.db"
    open_database(url)
    tenants.add_tenant("acme.example", "ACME", "Europe/Vilnius")
    users.add_user("acme.example", "102", "U102")
    nodes.add_node("fs1", f"127.0.0.1:{free_port()}", "127.0.0.1:5060")
    nodes.add_node("fs2", f"127.0.0.1:{fake_fs.port}", "127.0.0.1:6060", recordings_dir=f"{tmp_path}/fs2-rec")
    close_database()
    cfg = tmp_path / "fsctl.toml"
    cfg.write_text(
        f'[fsctl]\ndatabase = "{url}"\nesl_host = "127.0.0.1"\nesl_port = {free_port()}\n'
        f'recordings_dir = "{tmp_path}/rec"\n'
    )
    env = dict(os.environ, FSCTL_CONFIG=str(cfg))
    with _service(["run", "--node", "fs2"], env, tmp_path):
        fake_fs.wait_subscribed(10)
        # A recorded call ends on fs2: its file is in fs2's --recordings-dir, catalogued as on fs2.
        rel = "acme.example/2026/11/10/20261110T080000Z_102_in_+37061111111_call-n2.wav"
        write_wav(f"{tmp_path}/fs2-rec/{rel}", seconds=4)
        fake_fs.inject_event(
            a_leg(
                "call-n2",
                caller="+37061111111",
                did="+37052000000",
                route="user:102",
                recording=f"{tmp_path}/fs2-rec/{rel}",
            )
        )
        open_database(url, create=False)
        try:
            deadline = time.monotonic() + 30
            while not Recording.select().exists() and time.monotonic() < deadline:
                time.sleep(0.1)
            assert [(r.path, r.node) for r in Recording.select()] == [(rel, "fs2")]
            deadline = time.monotonic() + 30
            while not CallRecord.select().exists() and time.monotonic() < deadline:
                time.sleep(0.1)
            assert [(c.uuid, c.node) for c in CallRecord.select()] == [("call-n2", "fs2")]
        finally:
            close_database()
    bad = subprocess.run(
        [sys.executable, "-c", "from fs_scripts.cli import main; main()", "run", "--node", "fs9"],
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert bad.returncode == 2 and bad.stderr.strip() == 'Error: node "fs9" does not exist'
