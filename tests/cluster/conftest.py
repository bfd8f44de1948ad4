"""Two FreeSWITCH nodes behind a real Kamailio, on one PostgreSQL: the cluster, live on loopback.

Started once per module (FreeSWITCH takes seconds to start): PostgreSQL (its own database on the
session's server), two nodes from the shared build (tests/freeswitch_server.py: the stock configuration
and `fsctl freeswitch setup`, as the live layer's), Kamailio on fsctl's
rendered configuration (tests/kamailio_server.py), `fs-scripts run --node` for each node, and an
OpenSSH sshd that is every node's SFTP account (`node add --sftp`: recordings are fetched from it).
fsctl is run as an operator does, through its command line with a settings file.

Every test here is marked `freeswitch`. Without the shared build (`../shared/freeswitch/runtime`
beside the repository, or FSCTL_TEST_FREESWITCH_RUNTIME) they skip with one reason; in CI they run.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import pytest
from click.testing import CliRunner

from fsctl.cli import cli
from tests.freeswitch_server import NO_BUILD, FreeSwitch, build_missing, build_prefix, free_port
from tests.kamailio_server import KamailioServer
from tests.sshd import SshdServer

from .phone import Phone

HERE = Path(__file__).resolve().parent
ESL_PASSWORD = "cluster-test-esl-secret"
PASSWORD = "Cluster-pass-1234"  # every test user's SIP password


def pytest_collection_modifyitems(config, items):
    build = not build_missing()
    for item in items:
        if HERE in Path(str(item.fspath)).resolve().parents:
            item.add_marker(pytest.mark.freeswitch)
            if not build:
                item.add_marker(pytest.mark.skip(reason=NO_BUILD))


def node_add_args(name, node) -> list[str]:
    """`fsctl node add` for a running test node: its Event Socket, SIP, public SIP and folders."""
    return [
        "node",
        "add",
        name,
        "--esl",
        f"127.0.0.1:{node.esl_port}",
        "--sip",
        f"127.0.0.1:{node.internal_port}",
        "--public",
        f"127.0.0.1:{node.external_port}",
        "--conf-dir",
        str(node.fsctl_dir),
        "--recordings-dir",
        str(node.recordings),
    ]


class Cluster:
    """The running platform and the helpers the tests use."""

    def __init__(self, work: Path, settings: Path, nodes: dict, kam: KamailioServer):
        self.work, self.settings, self.nodes, self.kam = work, settings, nodes, kam
        self.services = {}
        self.phones = []

    def fsctl(self, *args, ok=True, clock=None):
        """fsctl with the cluster's settings; `clock`: the commands' "now" (naive UTC), else the real one."""
        result = CliRunner().invoke(
            cli,
            ["--config", str(self.settings), *args],
            env={"FSCTL_CONFIG": str(self.settings), "FSCTL_DATABASE": None},
            catch_exceptions=False,
            obj={"clock": clock} if clock else None,
        )
        if ok and result.exit_code != 0:
            raise AssertionError(f"fsctl {' '.join(args)} exited {result.exit_code}: {result.stderr}{result.stdout}")
        return result

    def add_node(self, name) -> FreeSwitch:
        """Another node started and added (`fsctl node add`) while the platform runs; stopped with the others."""
        node = self.nodes[name] = FreeSwitch(build_prefix(), name, ESL_PASSWORD)
        node.start()
        self.fsctl(*node_add_args(name, node))
        return node

    @property
    def kamailio(self):
        return ("127.0.0.1", self.kam.port)

    def phone(self, domain, number, answer=True) -> Phone:
        phone = Phone(number, domain, PASSWORD, self.kamailio, answer=answer)
        self.phones.append(phone)
        return phone

    def start_service(self, name):
        """`fs-scripts run --node NAME` (its health endpoint tells when it is connected)."""
        port = free_port()
        log = open(self.work / f"fs-scripts-{name}.log", "ab")
        proc = subprocess.Popen(
            [
                sys.executable,
                "-c",
                "from fs_scripts.cli import main; main()",
                "run",
                "--node",
                name,
                "--config",
                str(self.settings),
                "--health-port",
                str(port),
            ],
            stdout=log,
            stderr=log,
            env=dict(os.environ, FSCTL_CONFIG=str(self.settings)),
        )
        self.services[name] = (proc, port, log)
        self.wait_service(name)

    def wait_service(self, name, timeout=60.0):
        """Until `fs-scripts run --node NAME` reports FreeSWITCH connected."""
        proc, port, _ = self.services[name]
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if proc.poll() is not None:
                raise RuntimeError(f"fs-scripts for {name} exited {proc.returncode}")
            try:
                with urllib.request.urlopen(f"http://127.0.0.1:{port}/health", timeout=2) as reply:
                    if json.loads(reply.read()).get("freeswitch") == "connected":
                        return
            except OSError:
                pass
            time.sleep(0.2)
        raise RuntimeError(f"fs-scripts for {name} not connected within {timeout} s")

    def destination_flags(self, name, public=False) -> set:
        """Kamailio's dispatcher flags (A active, I inactive, P probing) of a node, over every set."""
        node = self.nodes[name]
        uri = f"sip:127.0.0.1:{node.external_port if public else node.internal_port}"
        return {flags for (_, u), flags in self.kam.destinations().items() if u == uri}

    def wait_flags(self, name, flag, timeout=60.0):
        """Until every set lists the node with `flag` (A or I); True, or False at the deadline."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            flags = self.destination_flags(name)
            if flags and all(flag in f for f in flags):
                return True
            time.sleep(0.2)
        return False

    def stop(self):
        for phone in self.phones:
            phone.close()
        for proc, _, log in self.services.values():
            proc.terminate()
            try:
                proc.wait(15)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()
            log.close()


def _database(postgres_server) -> str:
    """A database of its own on the session's PostgreSQL (other tests reset theirs)."""
    name = "fsctl_cluster"
    base = ["-h", "127.0.0.1", "-p", str(postgres_server.port), "-U", "postgres"]
    postgres_server._run(f"{postgres_server.bindir}/psql", *base, "-c", f"DROP DATABASE IF EXISTS {name}")
    postgres_server._run(f"{postgres_server.bindir}/psql", *base, "-c", f"CREATE DATABASE {name}")
    return f"postgresql://postgres@127.0.0.1:{postgres_server.port}/{name}"


@pytest.fixture(scope="module")
def cluster(postgres_server, tmp_path_factory):
    """Nodes fs1 and fs2 running, Kamailio in front, the settings file; nothing provisioned yet."""
    work = tmp_path_factory.mktemp("cluster")
    prefix = build_prefix()
    nodes = {name: FreeSwitch(prefix, name, ESL_PASSWORD) for name in ("fs1", "fs2")}
    kam = KamailioServer()
    sshd = SshdServer(str(work / "sshd"))  # every node's SFTP account (rec pull fetches from the node)
    cl = None
    try:
        sshd.start()
        values = {
            "database": _database(postgres_server),
            "conf_dir": str(work / "conf"),
            "esl_password": ESL_PASSWORD,
            "esl_timeout": 5.0,
            "recordings_dir": str(work / "recordings"),
            "media_dir": str(work / "media"),
            **kam.settings_values(),
            "kamailio_expires": 60,
            "sftp_key": sshd.client_key,
            "sftp_known_hosts": sshd.known_hosts,
        }
        settings = work / "fsctl.toml"
        settings.write_text("[fsctl]\n" + "".join(f"{k} = {json.dumps(v)}\n" for k, v in values.items()))
        for node in nodes.values():
            node.start()
        cl = Cluster(work, settings, nodes, kam)
        cl.fsctl("init")  # only init creates the database
        for name, node in nodes.items():
            cl.fsctl(*node_add_args(name, node), "--sftp", f"{sshd.user}@127.0.0.1:{sshd.port}")
        cl.fsctl("render", "kamailio")
        kam.start()
        yield cl
    finally:
        if cl is not None:
            cl.stop()
        kam.stop()
        sshd.stop()
        for node in nodes.values():
            node.stop()
            node.remove()
