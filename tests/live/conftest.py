"""The live layer: the product on a real FreeSWITCH (the shared 1.11.3 build), real SIP on loopback.

One FreeSWITCH, one `fs-scripts run` and one SMTP server per test session (starting FreeSWITCH
costs seconds); each test provisions its own fresh tenant(s) instead of restarting anything.
The FreeSWITCH (tests/freeswitch_server.py) is a private copy of the build's stock tree with private
ports, to which `fsctl freeswitch setup` applies the README's install steps, as an operator does.

Every test here is marked `freeswitch`. Without the shared build (`../shared/freeswitch/runtime`
next to the repository, or FSCTL_TEST_FREESWITCH_RUNTIME) they all skip with one reason; in CI the
build is there and they run.
"""

from __future__ import annotations

import itertools
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
from tests.freeswitch_server import ESL_PASSWORD, NO_BUILD, FreeSwitch, build_missing, build_prefix, free_port

from .sipua import Phone

LIVE_DIR = Path(__file__).resolve().parent
PASSWORD = "Live-pass-1234"  # every test user's SIP password
CARRIER_GATEWAY = "carrier"  # the tenants' outbound gateway: the carrier UA of the session


def pytest_collection_modifyitems(config, items):
    build = not build_missing()
    for item in items:
        if LIVE_DIR in Path(str(item.fspath)).resolve().parents:
            item.add_marker(pytest.mark.freeswitch)
            item.add_marker(pytest.mark.servers)  # (make test-fast leaves them out)
            if not build:
                item.add_marker(pytest.mark.skip(reason=NO_BUILD))


class Smtp:
    """A real SMTP server (aiosmtpd) on a free loopback port, keeping what it receives."""

    def __init__(self):
        from aiosmtpd.controller import Controller

        self.messages = []
        outer = self

        class Handler:
            async def handle_DATA(self, server, session, envelope):
                outer.messages.append(envelope)
                return "250 OK"

        self.port = free_port()
        self.controller = Controller(Handler(), hostname="127.0.0.1", port=self.port)
        self.controller.start()

    def wait(self, predicate, timeout=60.0):
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            found = [m for m in self.messages if predicate(m)]
            if found:
                return found[0]
            time.sleep(0.2)
        raise AssertionError(f"no such e-mail within {timeout} s (received: {len(self.messages)})")

    def stop(self):
        self.controller.stop()


class Live:
    """The running switch, the service, the carrier, and helpers to provision and call."""

    _numbers = itertools.count(1)

    def __init__(self, work: Path, fs: FreeSwitch, settings: Path, carrier: Phone, smtp: Smtp):
        self.work = work
        self.fs = fs
        self.settings = settings
        self.carrier = carrier
        self.smtp = smtp
        self.esl = None
        self.service = None
        self.health_port = None
        self.phones: list[Phone] = []

    # -- fsctl ---------------------------------------------------------------------------------------
    def fsctl(self, *args, ok=True, input=None):
        runner = CliRunner()
        result = runner.invoke(
            cli,
            ["--config", str(self.settings), "--debug", *args],
            input=input,
            env={"FSCTL_CONFIG": str(self.settings), "FSCTL_DATABASE": None},
            catch_exceptions=False,
        )
        if ok and result.exit_code != 0:
            raise AssertionError(f"fsctl {' '.join(args)} exited {result.exit_code}: {result.stderr}{result.stdout}")
        return result

    def apply(self):
        return self.fsctl("apply")

    def tenant(self, label: str, tz: str = "UTC", **options) -> "Tenant":
        domain = f"{label}-{next(self._numbers)}.live.test"
        args = ["tenant", "add", domain, "--name", f"Tenant {label}", "--tz", tz, "--gateway", CARRIER_GATEWAY]
        self.fsctl(*args)
        return Tenant(self, domain)

    def did(self) -> str:
        """A fresh public number (E.164), unique in the session."""
        return f"+3705{2000000 + next(self._numbers) * 7:07d}"

    # -- phones --------------------------------------------------------------------------------------
    def phone(self, domain: str, number: str, policy="answer", register=True, answer_after=0.3) -> Phone:
        phone = Phone(
            f"{number}@{domain}",
            self.fs.internal,
            user=number,
            domain=domain,
            password=PASSWORD,
            policy=policy,
            answer_after=answer_after,
        )
        self.phones.append(phone)
        if register:
            status = phone.register()
            assert status == 200, f"REGISTER {number}@{domain}: {status}"
        return phone

    def inbound(self, did: str, caller: str = "+37069990001", name: str | None = None):
        """A call from the carrier to a public number (external profile)."""
        return self.carrier.call(
            did, from_user=caller, from_name=name, request_host=f"127.0.0.1:{self.fs.external_port}"
        )

    def media(self, tenant, name="welcome", seconds=1.0):
        """A greeting/music media of the tenant (fsctl media add)."""
        path = tone_wav(self.work / f"{tenant.domain}-{name}.wav", seconds)
        tenant.fsctl("media", "add", name, str(path))
        return name

    # -- the switch's own view (Event Socket) -------------------------------------------------------
    def uuid_of(self, call, timeout=15.0) -> str:
        """FreeSWITCH's channel UUID of a UA's call (matched by its SIP Call-ID)."""
        return self.esl.uuid_of_call_id(call.call_id, timeout)

    def wait_app(self, uuid, app, timeout=15.0, arg_contains="") -> dict:
        """The CHANNEL_EXECUTE of `app` on channel `uuid`."""
        return self.esl.wait_event(
            lambda e: (
                e.get("Event-Name") == "CHANNEL_EXECUTE"
                and e.get("Application") == app
                and arg_contains in e.get("Application-Data", "")
            ),
            timeout,
            f"{app} {arg_contains} on {uuid}",
            uuid=uuid,
        )

    def in_fallback(self, uuid) -> bool:
        """Whether the channel went to the XML fallback (the service never took its park)."""
        return bool(
            self.esl.find(
                lambda e: (
                    e.get("Event-Name") == "CHANNEL_EXECUTE"
                    and e.get("Application-Data", "").startswith("fsctl_in_fallback=true")
                ),
                uuid=uuid,
            )
        )

    # -- the call log --------------------------------------------------------------------------------
    def calls(self, domain: str) -> list[dict]:
        return json.loads(self.fsctl("cdr", "list", domain, "--json").stdout)

    def wait_call(self, domain: str, predicate=lambda c: True, timeout=30.0) -> dict:
        """The first call record of `domain` matching `predicate` (the service writes them on hang-up)."""
        deadline = time.monotonic() + timeout
        rows = []
        while time.monotonic() < deadline:
            rows = self.calls(domain)
            found = [r for r in rows if predicate(r)]
            if found:
                return found[0]
            time.sleep(0.3)
        raise AssertionError(f"no such call record in {domain} within {timeout} s: {rows}")

    # -- the service ---------------------------------------------------------------------------------
    def start_service(self):
        self.health_port = free_port()
        log = open(self.work / "fs-scripts.log", "ab")
        self.service = subprocess.Popen(
            [
                sys.executable,
                "-c",
                "from fs_scripts.cli import main; main()",
                "run",
                "--config",
                str(self.settings),
                "--health-port",
                str(self.health_port),
                "--log-level",
                "INFO",
            ],
            stdout=log,
            stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL,
            start_new_session=True,
            env={k: v for k, v in os.environ.items() if not k.startswith("FSCTL_")},
        )
        self.wait_service()

    def _heard(self) -> int:
        reply = self.esl.api("global_getvar fsctl_service_seen").strip()
        return int(reply) if reply.isdigit() else 0

    def wait_service(self, timeout=30.0):
        started = int(self.esl.api("strepoch").strip())
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.service.poll() is not None:
                raise RuntimeError(f"fs-scripts exited {self.service.returncode}: {self.service_log()}")
            try:
                with urllib.request.urlopen(f"http://127.0.0.1:{self.health_port}/health", timeout=2) as r:
                    healthy = r.status == 200
            except OSError:
                healthy = False
            # Connected, and its heartbeat (what fsctl check reads) newer than this start.
            if healthy and self._heard() >= started:
                return
            time.sleep(0.2)
        raise RuntimeError(f"fs-scripts not healthy within {timeout} s: {self.service_log()}")

    def stop_service(self):
        if self.service is not None and self.service.poll() is None:
            self.service.terminate()
            try:
                self.service.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self.service.kill()
                self.service.wait(timeout=5)

    def service_log(self, lines=80) -> str:
        path = self.work / "fs-scripts.log"
        return "\n".join(path.read_text(errors="replace").splitlines()[-lines:]) if path.exists() else ""


class Tenant:
    """One fresh tenant of a test."""

    def __init__(self, live: Live, domain: str):
        self.live = live
        self.domain = domain

    def __str__(self):
        return self.domain

    def fsctl(self, noun, verb, *args, ok=True):
        """`fsctl NOUN VERB <domain> ARGS...`."""
        return self.live.fsctl(noun, verb, self.domain, *args, ok=ok)

    def user(self, number, *args):
        self.fsctl("user", "add", number, "--name", f"User {number}", "--password", PASSWORD, *args)
        return number

    def phone(self, number, policy="answer", **kw) -> Phone:
        return self.live.phone(self.domain, number, policy=policy, **kw)

    def calls(self):
        return self.live.calls(self.domain)

    def wait_call(self, predicate=lambda c: True, timeout=30.0):
        return self.live.wait_call(self.domain, predicate, timeout)


def _write_settings(path: Path, fs: FreeSwitch, work: Path, smtp_port: int):
    path.write_text(
        "[fsctl]\n"
        f'database = "sqlite:///{work}/fsctl.db"\n'
        f'conf_dir = "{fs.fsctl_dir}"\n'
        'esl_host = "127.0.0.1"\n'
        f"esl_port = {fs.esl_port}\n"
        f'esl_password = "{ESL_PASSWORD}"\n'
        "esl_timeout = 10.0\n"
        f'recordings_dir = "{fs.recordings}"\n'
        f'media_dir = "{work}/media"\n'
        f'xml_cdr_dir = "{fs.xml_cdr}"\n'
        'smtp_host = "127.0.0.1"\n'
        f"smtp_port = {smtp_port}\n"
        'smtp_from = "pbx@live.test"\n'
        "notify_backoff = 1.0\n"
        "calls_per_second = 20\n"
        'webhook_allow_networks = "127.0.0.0/8"\n'  # the tests' CRM server is on loopback
    )


@pytest.fixture(scope="session")
def live(tmp_path_factory):
    """The session's running switch, service and carrier (see the module docstring)."""
    if build_missing():
        pytest.skip(NO_BUILD)
    prefix = build_prefix()
    work = tmp_path_factory.mktemp("live")
    smtp = Smtp()
    carrier = Phone("carrier", ("127.0.0.1", 0), user="carrier", domain="127.0.0.1")
    settings = work / "fsctl.toml"
    # The stock configuration and the README's install steps (fsctl freeswitch setup).
    fs = FreeSwitch(prefix, "live", gateways={CARRIER_GATEWAY: carrier.port}, sessions_per_second=300)
    _write_settings(settings, fs, work, smtp.port)
    env = Live(work, fs, settings, carrier, smtp)
    try:
        env.fsctl("init")
        fs.start()
        carrier.server = fs.external
        env.esl = fs.esl(
            "CHANNEL_CREATE CHANNEL_ANSWER CHANNEL_HANGUP_COMPLETE CHANNEL_PARK CHANNEL_EXECUTE "
            "CHANNEL_BRIDGE CUSTOM callcenter::info conference::maintenance"
        )
        env.apply()
        env.start_service()
        yield env
    finally:
        env.stop_service()
        for phone in env.phones + [carrier]:
            phone.close()
        if env.esl is not None:
            env.esl.close()
        fs.stop()
        smtp.stop()
        if os.environ.get("FSCTL_TEST_LIVE_KEEP"):
            print(f"live work folders kept: {work} {fs.dir}")
        else:
            fs.remove()


@pytest.fixture
def live_debug(live, request):
    """On failure, print the service's log and FreeSWITCH's log tail."""
    yield live
    if getattr(request.node, "rep_call", None) is not None and request.node.rep_call.failed:
        print("---- fs-scripts ----\n" + live.service_log())
        print("---- freeswitch ----\n" + live.fs.log_tail(120))


@pytest.hookimpl(tryfirst=True, hookwrapper=True)
def pytest_runtest_makereport(item, call):
    outcome = yield
    rep = outcome.get_result()
    setattr(item, "rep_" + rep.when, rep)


def tone_wav(path: Path, seconds: float = 1.0, hz: int = 440) -> Path:
    """A PCM WAV tone (the build has no sound files; a menu without its greeting fails at once)."""
    import math
    import struct
    import wave

    rate = 8000
    with wave.open(str(path), "wb") as w:
        w.setnchannels(1)
        w.setsampwidth(2)
        w.setframerate(rate)
        w.writeframes(
            b"".join(
                struct.pack("<h", int(8000 * math.sin(2 * math.pi * hz * i / rate))) for i in range(int(rate * seconds))
            )
        )
    return path
