"""Kamailio's configuration and routing data (fsctl render kamailio, fsctl apply), checked by
golden files, by `kamailio -c`, and by a real Kamailio in front of fake SIP nodes."""

import json
import os
import time
from pathlib import Path

import pytest

from fsctl import render
from fsctl.config import Settings
from fsctl.db import transaction
from fsctl.errors import OperationError, UnreachableError
from fsctl.model import NodeConfig, Tenant
from fsctl.render import kamailio as rk
from fsctl.services import dids, kamailio, nodes, tenants
from tests.fakes.sipnode import FakeNode, UdpClient, header, status
from tests.kamailio_server import KamailioServer

GOLDEN = Path(__file__).resolve().parents[2] / "data" / "golden" / "kamailio"
FILES = ["dbtext/fsctl_dids", "dbtext/fsctl_domains", "dbtext/version", "dispatcher.list", "kamailio.cfg"]


def golden_settings(**more):
    values = {
        "kamailio_listen": "udp:127.0.0.1:5060 tcp:127.0.0.1:5060",
        "kamailio_ctl": "unix:/run/kamailio/kamailio_ctl",
        "kamailio_expires": 120,
        "kamailio_ping_interval": 5,
    }
    values.update(more)
    return Settings(**values)


def platform():
    """fs1, fs2, fs3; acme on fs1/fs2 (2 DIDs), beta on fs2/fs1 (1 DID), delta on fs3/fs1, gamma suspended."""
    with transaction():
        nodes.add_node("fs1", "127.0.0.1:8021", "127.0.0.1:5060")
        nodes.add_node("fs2", "127.0.0.1:8022", "127.0.0.1:6060", public="127.0.0.1:6090")
        nodes.add_node("fs3", "127.0.0.1:8023", "127.0.0.1:7060")
        tenants.add_tenant("acme.example", "ACME", node="fs1", standby="fs2")
        tenants.add_tenant("beta.example", "Beta", node="fs2", standby="fs1")
        tenants.add_tenant("delta.example", "Delta", node="fs3", standby="fs1")
        tenants.add_tenant("gamma.example", "Gamma", node="fs1", standby="fs2")
        for number, domain in (
            ("+37052000000", "acme.example"),
            ("+37052000001", "acme.example"),
            ("+37053000000", "beta.example"),
            ("+37054000000", "gamma.example"),
        ):
            dids.add_did(domain, number, "hangup")
        tenants.edit_tenant("gamma.example", state="suspended")


def produced(out):
    return {rel: (out / rel).read_text().replace(str(out), "@DIR@") for rel in FILES}


def test_golden_files(db, tmp_path):
    """On SQLite and PostgreSQL: the same bytes."""
    platform()
    out = tmp_path / "kamailio"
    kamailio.render_all(golden_settings(), out, check=False)
    files = produced(out)
    if os.environ.get("FSCTL_TEST_UPDATE_GOLDEN"):
        for rel, text in files.items():
            (GOLDEN / rel).parent.mkdir(parents=True, exist_ok=True)
            (GOLDEN / rel).write_text(text)
    for rel in FILES:
        assert files[rel] == (GOLDEN / rel).read_text(), rel


def test_routing_tables_say_domain_and_did_to_set(db):
    platform()
    routing = rk.build_routing()
    ids = {n.name: n.id for n in nodes.list_nodes()}
    acme = rk.set_id(ids["fs1"], ids["fs2"])
    assert routing["domains"] == {
        "acme.example": acme,
        "beta.example": rk.set_id(ids["fs2"], ids["fs1"]),
        "delta.example": rk.set_id(ids["fs3"], ids["fs1"]),
    }  # not the suspended one
    assert routing["dids"] == {
        "37052000000": acme + rk.CARRIERS_SET,
        "37052000001": acme + rk.CARRIERS_SET,
        "37053000000": rk.set_id(ids["fs2"], ids["fs1"], carriers=True),
    }
    assert routing["sets"][acme] == [(ids["fs1"], 10), (ids["fs2"], 5)]
    assert rk.pair_of(acme + rk.CARRIERS_SET) == (ids["fs1"], ids["fs2"], True)


def test_a_moved_tenant_follows_its_new_home_once_that_node_runs_it(db):
    platform()
    ids = {n.name: n.id for n in nodes.list_nodes()}
    with transaction():
        nodes.move_tenant(Tenant.get(Tenant.domain == "acme.example"), "fs3")
    # fs3 does not run acme yet: Kamailio keeps sending it to fs1 (draining), standby fs2.
    assert rk.build_routing()["domains"]["acme.example"] == rk.set_id(ids["fs1"], ids["fs2"])
    NodeConfig.create(node=ids["fs3"], domain="acme.example", revision=1, digest="x")
    assert rk.build_routing()["domains"]["acme.example"] == rk.set_id(ids["fs3"], ids["fs2"])
    assert rk.build_routing()["dids"]["37052000000"] == rk.set_id(ids["fs3"], ids["fs2"], carriers=True)


# --- kamailio -c ----------------------------------------------------------------------------


@pytest.mark.parametrize("variant", ["platform", "one node", "no tenants", "several sockets", "override"])
def test_kamailio_accepts_every_rendered_config(sdb, tmp_path, variant):
    settings = golden_settings()
    if variant == "platform":
        platform()
    elif variant == "one node":
        with transaction():
            nodes.add_node("fs1", "127.0.0.1:8021", "127.0.0.1:5060")
            tenants.add_tenant("acme.example", "ACME")
            dids.add_did("acme.example", "+37052000000", "hangup")
    elif variant == "several sockets":
        platform()
        settings = golden_settings(
            kamailio_listen="udp:127.0.0.1:5060 tcp:127.0.0.1:5060 udp:127.0.0.1:5070",
            kamailio_expires=3600,
            kamailio_ping_interval=30,
        )
    elif variant == "override":
        platform()
        own = tmp_path / "templates"
        own.mkdir()
        packaged = (render.packaged_templates_dir() / "kamailio.cfg").read_text()
        (own / "kamailio.cfg").write_text(packaged.replace("children={{ children }}", "children=2\n# operator's own"))
        settings = golden_settings(templates_dir=str(own))
    done = kamailio.render_all(settings, tmp_path / "out")  # check=True: kamailio -c
    assert done["checked"] is True
    assert kamailio.check_cfg(tmp_path / "out" / "kamailio.cfg") == ""
    if variant == "override":
        assert "# operator's own" in (tmp_path / "out" / "kamailio.cfg").read_text()


def test_kamailio_refuses_a_broken_config_and_says_why(tmp_path):
    bad = tmp_path / "kamailio.cfg"
    bad.write_text("#!KAMAILIO\nrequest_route {\n\tnosuchfunction();\n}\n")
    with pytest.raises(OperationError, match=r"^kamailio refuses .*kamailio.cfg: .*"):
        kamailio.check_cfg(bad)


def test_render_kamailio_cli(fsctl_sqlite, tmp_path):
    fsctl = fsctl_sqlite
    fsctl("node", "add", "fs1", "--esl", "127.0.0.1:8021", "--sip", "127.0.0.1:5060")
    fsctl("tenant", "add", "acme.example", "--name", "ACME")
    out = tmp_path / "k"
    result = fsctl("render", "kamailio", "--out", str(out))
    assert result.stderr.strip() == (
        f"5 files rendered into {out} (checked with kamailio -c); restart Kamailio if "
        "kamailio.cfg changed (the routing data needs no restart: fsctl apply reloads it)"
    )
    assert "acme.example:0:1:10000:0" in (out / "dbtext/fsctl_domains").read_text()
    assert json.loads(fsctl("render", "kamailio", "--out", str(out), "--json").stdout)["checked"] is True
    assert (
        fsctl("render", "kamailio", ok=False).stderr.strip()
        == 'Error: --out "": give a folder, or set kamailio_dir in the settings'
    )
    own = tmp_path / "templates"
    own.mkdir()
    (own / "kamailio.cfg").write_text("#!KAMAILIO\nlisten={{ nosuch }}\n")
    fsctl.env["FSCTL_TEMPLATES_DIR"] = str(own)
    assert (
        fsctl("render", "kamailio", "--out", str(out), ok=False).stderr.strip()
        == f"Error: template {own}/kamailio.cfg line 2: 'nosuch' is undefined"
    )
    assert fsctl("render", ok=False).exit_code == 2  # the FreeSWITCH render still needs --out


# --- apply_routing --------------------------------------------------------------------------


class FakeKamcmd:
    """Records the kamcmd commands; `fail` makes the next one fail like kamcmd does."""

    def __init__(self):
        self.calls, self.fail = [], None

    def __call__(self, *args):
        if self.fail:
            error, self.fail = self.fail, None
            raise error
        self.calls.append(" ".join(args))
        return "Ok."


def test_apply_routing_reloads_only_what_changed(db, tmp_path):
    platform()
    settings = golden_settings(kamailio_dir=str(tmp_path / "k"))
    kamcmd = FakeKamcmd()
    first = kamailio.apply_routing(settings, kamcmd)
    assert kamcmd.calls == ["dispatcher.reload", "htable.reload fsctl_domains", "htable.reload fsctl_dids"]
    assert first["summary"] == "3 domains, 3 DIDs, 5 sets; reloaded dispatcher, fsctl_domains, fsctl_dids"
    assert kamailio.apply_routing(settings, kamcmd)["reloaded"] == []
    assert len(kamcmd.calls) == 3
    with transaction():
        dids.add_did("beta.example", "+37053000009", "hangup")
    assert kamailio.apply_routing(settings, kamcmd)["reloaded"] == ["fsctl_dids"]
    # A table rewritten within the same second still looks newer to db_text (whole-second mtimes).
    before = os.stat(tmp_path / "k" / "dbtext" / "fsctl_dids").st_mtime
    with transaction():
        dids.remove_did("beta.example", "+37053000009")
    kamailio.apply_routing(settings, kamcmd)
    assert int(os.stat(tmp_path / "k" / "dbtext" / "fsctl_dids").st_mtime) > int(before)


def test_a_failed_reload_is_done_again_by_the_next_apply(db, tmp_path):
    platform()
    settings = golden_settings(kamailio_dir=str(tmp_path / "k"))
    kamcmd = FakeKamcmd()
    kamcmd.fail = UnreachableError("Kamailio unix:/x unreachable (connect: No such file or directory)")
    with pytest.raises(UnreachableError):
        kamailio.apply_routing(settings, kamcmd)
    assert (tmp_path / "k" / kamailio.PENDING).exists()
    done = kamailio.apply_routing(settings, kamcmd)  # nothing changed since, all reloaded anyway
    assert done["reloaded"] == ["dispatcher", "fsctl_domains", "fsctl_dids"]
    assert not (tmp_path / "k" / kamailio.PENDING).exists()


def test_a_moved_pairs_set_stays_one_more_apply(db, tmp_path):
    platform()
    settings = golden_settings(kamailio_dir=str(tmp_path / "k"))
    ids = {n.name: n.id for n in nodes.list_nodes()}
    kamailio.apply_routing(settings, FakeKamcmd())
    with transaction():
        nodes.move_tenant(Tenant.get(Tenant.domain == "delta.example"), "fs2", standby="fs3")
        NodeConfig.create(node=ids["fs2"], domain="delta.example", revision=1, digest="x")
    old = str(rk.set_id(ids["fs3"], ids["fs1"]))
    new = str(rk.set_id(ids["fs2"], ids["fs3"]))
    kamailio.apply_routing(settings, FakeKamcmd())
    listed = (tmp_path / "k" / "dispatcher.list").read_text()
    assert f"\n{new} " in listed and f"\n{old} " in listed  # the loaded tables named the old set
    kamailio.apply_routing(settings, FakeKamcmd())
    assert f"\n{old} " not in (tmp_path / "k" / "dispatcher.list").read_text()


def test_kamcmd_errors_are_reported(tmp_path):
    script = tmp_path / "kamcmd"
    script.write_text(
        "#!/bin/sh\necho 'ERROR: connect_unix_sock: connect(/nowhere): No such file or directory [2]' >&2\nexit 255\n"
    )
    script.chmod(0o755)
    kamcmd = kamailio.Kamcmd(Settings(kamcmd=str(script), kamailio_ctl="unix:/nowhere"))
    with pytest.raises(UnreachableError, match=r"^Kamailio unix:/nowhere unreachable \(ERROR: connect_unix_sock"):
        kamcmd("dispatcher.reload")
    with pytest.raises(OperationError, match="not found"):
        kamailio.Kamcmd(Settings(kamcmd=str(tmp_path / "none")))("dispatcher.reload")


def test_cli_apply_reports_kamailio(fsctl_sqlite, tmp_path):
    from tests.fakes.fake_freeswitch import FakeFreeSWITCH

    fake = FakeFreeSWITCH().start()
    try:
        fsctl = fsctl_sqlite
        log = tmp_path / "kamcmd.log"
        script = tmp_path / "kamcmd"
        script.write_text(f'#!/bin/sh\necho "$@" >> {log}\necho Ok.\n')
        script.chmod(0o755)
        fsctl.env.update(
            {
                "FSCTL_CONF_DIR": str(tmp_path / "conf"),
                "FSCTL_KAMAILIO_DIR": str(tmp_path / "k"),
                "FSCTL_KAMCMD": str(script),
                "FSCTL_KAMAILIO_CTL": "unix:/tmp/x.sock",
            }
        )
        fsctl("node", "add", "fs1", "--esl", f"127.0.0.1:{fake.port}", "--sip", "127.0.0.1:5060")
        fsctl("tenant", "add", "acme.example", "--name", "ACME")
        result = fsctl("apply")
        assert (
            result.stderr.strip().splitlines()[-1]
            == "kamailio: 1 domains, 0 DIDs, 1 sets; reloaded dispatcher, fsctl_domains, fsctl_dids"
        )
        assert log.read_text().splitlines() == [
            "-s unix:/tmp/x.sock dispatcher.reload",
            "-s unix:/tmp/x.sock htable.reload fsctl_domains",
            "-s unix:/tmp/x.sock htable.reload fsctl_dids",
        ]
        assert (
            fsctl("apply").stderr.strip().splitlines()[-1]
            == "kamailio: routing unchanged (1 domains, 0 DIDs, 1 sets): no reload"
        )
        script.write_text("#!/bin/sh\necho 'ERROR: connect_unix_sock: connect(x): No such file' >&2\nexit 255\n")
        fsctl("did", "add", "acme.example", "+37052000000", "--to", "hangup")
        failed = fsctl("apply", ok=False)
        assert (
            failed.exit_code == 3 and failed.stderr.strip().splitlines()[-1] == "Error: kamailio's routing not applied"
        )
    finally:
        fake.stop()


# --- a real Kamailio in front of fake nodes -------------------------------------------------


@pytest.fixture
def kam():
    server = KamailioServer()
    yield server
    server.stop()


@pytest.fixture
def sip_nodes():
    made = {name: (FakeNode(), FakeNode()) for name in ("fs1", "fs2")}  # (internal, external) per node
    yield made
    for pair in made.values():
        for node in pair:
            node.close()


def running_platform(kam, sip_nodes, tmp_path):
    """fs1/fs2 as fake SIP nodes; acme on fs1/fs2 with a DID; Kamailio started on fsctl's config."""
    with transaction():
        for name, (internal, external) in sip_nodes.items():
            nodes.add_node(name, "127.0.0.1:9", f"127.0.0.1:{internal.port}", public=f"127.0.0.1:{external.port}")
        tenants.add_tenant("acme.example", "ACME", node="fs1", standby="fs2")
        dids.add_did("acme.example", "+37052000000", "hangup")
    settings = Settings(**kam.settings_values(), kamailio_expires=60)
    kamailio.render_all(settings, kam.folder)
    kam.start()
    return settings


def wait_flag(kam, destination, flag, timeout=20.0):
    """Wait until Kamailio's dispatcher shows `flag` (A active, I inactive) for a destination."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if flag in kam.destinations().get(destination, ""):
            return True
        time.sleep(0.2)
    return False


def test_kamailio_routes_registrations_and_dids_and_fails_over(sdb, kam, sip_nodes, tmp_path):
    running_platform(kam, sip_nodes, tmp_path)
    fs1, fs2 = sip_nodes["fs1"], sip_nodes["fs2"]
    assert fs1[0].wait_probed() and fs2[0].wait_probed()  # OPTIONS probing of every node
    phone = UdpClient()
    kamailio_addr = ("127.0.0.1", kam.port)
    try:
        # A phone of acme registers: to fs1 (home), with Path, its expiry capped at 60 s.
        reply = phone.request(
            "REGISTER", "sip:acme.example", kamailio_addr, "sip:101@acme.example", extra=["Expires: 3600"]
        )
        assert reply is not None and status(reply) == 200
        forwarded = fs1[0].wait_request("REGISTER")
        assert forwarded is not None and header(forwarded, "Expires") == "60"
        path = header(forwarded, "Path")
        assert path.startswith(f"<sip:127.0.0.1:{kam.port};lr;received=")
        assert fs2[0].requests == []
        # The node reaches the phone back through Kamailio: a request routed by that Path arrives.
        fs1[0].send_via(kamailio_addr, "INVITE", f"sip:101@127.0.0.1:{phone.port}", path)
        assert phone.receive("INVITE") is not None
        # Unknown domain, unknown number: refused by Kamailio itself.
        assert status(phone.request("REGISTER", "sip:nope.example", kamailio_addr, "sip:101@nope.example")) == 403
        assert (
            status(
                phone.request(
                    "INVITE",
                    "sip:+37059999999@127.0.0.1",
                    kamailio_addr,
                    "sip:+37060000000@carrier.invalid",
                    to_uri="sip:+37059999999@127.0.0.1",
                )
            )
            == 404
        )
        # A DID (written with 00) goes to the home node's external profile.
        assert (
            status(
                phone.request(
                    "INVITE",
                    "sip:0037052000000@127.0.0.1",
                    kamailio_addr,
                    "sip:+37060000000@carrier.invalid",
                    to_uri="sip:0037052000000@127.0.0.1",
                )
            )
            == 200
        )
        assert fs1[1].wait_request("INVITE") is not None and fs2[1].requests == []
        # fs1 stops answering: the next REGISTER reaches fs2 (failover within the transaction's timer).
        fs1[0].silent = True
        reply = phone.request("REGISTER", "sip:acme.example", kamailio_addr, "sip:101@acme.example")
        assert reply is not None and status(reply) == 200
        assert fs2[0].wait_request("REGISTER") is not None
        # Probing has marked fs1 inactive: the next one goes straight to fs2.
        home = (rk.set_id(nodes.get_node("fs1").id, nodes.get_node("fs2").id), f"sip:127.0.0.1:{fs1[0].port}")
        assert wait_flag(kam, home, "I")
        # fs1 answers again: probing brings it back, registrations return to it.
        fs1[0].silent = False
        assert wait_flag(kam, home, "A")
        count = len(fs1[0].requests)
        assert status(phone.request("REGISTER", "sip:acme.example", kamailio_addr, "sip:101@acme.example")) == 200
        assert fs1[0].wait_request("REGISTER", start=count) is not None
    finally:
        phone.close()


def test_routing_changes_reach_a_running_kamailio_without_restart(sdb, kam, sip_nodes, tmp_path):
    settings = running_platform(kam, sip_nodes, tmp_path)
    phone = UdpClient()
    kamailio_addr = ("127.0.0.1", kam.port)
    try:
        assert status(phone.request("REGISTER", "sip:beta.example", kamailio_addr, "sip:101@beta.example")) == 403
        with transaction():
            tenants.add_tenant("beta.example", "Beta", node="fs2", standby="fs1")
        done = kamailio.apply_routing(settings)  # the real kamcmd, the real control socket
        assert done["reloaded"] == ["dispatcher", "fsctl_domains"]
        assert status(phone.request("REGISTER", "sip:beta.example", kamailio_addr, "sip:101@beta.example")) == 200
        assert sip_nodes["fs2"][0].wait_request("REGISTER") is not None
        with transaction():
            tenants.edit_tenant("beta.example", state="suspended")
        kamailio.apply_routing(settings)
        assert status(phone.request("REGISTER", "sip:beta.example", kamailio_addr, "sip:101@beta.example")) == 403
        pid = kam.proc.pid
        assert kam.proc.poll() is None and kam.proc.pid == pid  # never restarted
    finally:
        phone.close()
