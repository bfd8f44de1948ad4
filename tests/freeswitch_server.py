"""A private FreeSWITCH for the tests: the shared build, a copy of its stock configuration.

`FreeSwitch(prefix, name, ...)` copies `<prefix>/etc/freeswitch` into a private folder, makes every
port private and free (SIP internal/external and their TLS and WebSocket bindings, the Event Socket,
the RTP range), adds the carriers' gateways it is given, and applies the README's install steps with
`fsctl freeswitch setup` (the command an operator runs, with this switch's own settings file: its
`conf/fsctl` folder, Event Socket port and password, mod_xml_cdr folder). `start()` runs it and waits
until its Event Socket answers and both SIP profiles run; `stop()` stops it; `remove()` deletes the
folder. Several run side by side (and beside other FreeSWITCHes on this machine).

Used by the live layer (tests/live: one switch), the cluster tests (tests/cluster: a switch per
node) and tests/fsctl/calllogic/test_multiset_live.py. `Esl` is a small synchronous Event Socket
client for the tests' own observations (api commands, sendmsg, events); the product's client is
fs_scripts'. Without the shared build (`../shared/freeswitch/runtime` beside the repository, or
FSCTL_TEST_FREESWITCH_RUNTIME) these tests skip with `NO_BUILD`, one reason; in CI it is there.
"""

from __future__ import annotations

import json
import os
import random
import re
import shutil
import signal
import socket
import subprocess
import tempfile
import threading
import time
import urllib.parse
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
RUNTIME = Path(os.environ.get("FSCTL_TEST_FREESWITCH_RUNTIME") or ROOT.parent / "shared" / "freeswitch" / "runtime")
NO_BUILD = f"live FreeSWITCH tests need the shared build {RUNTIME} (absent on this machine)"
ESL_PASSWORD = "live-test-esl-secret"
_RTP_TAKEN: list[tuple[int, int]] = []  # the RTP ranges handed out in this process


def build_missing() -> bool:
    """True when the shared build is not beside the repository (the tests needing it then skip: NO_BUILD)."""
    return not (RUNTIME / "install.sh").is_file()


def free_port() -> int:
    """A port free on 127.0.0.1 for both TCP and UDP now."""
    for _ in range(100):
        with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as t:
            t.bind(("127.0.0.1", 0))
            port = t.getsockname()[1]
        try:
            with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as u:
                u.bind(("127.0.0.1", port))
            return port
        except OSError:
            continue
    raise RuntimeError("no free port")


def free_rtp_range(size=400, low=10000, high=16000, tries=50) -> tuple[int, int]:
    """A range of UDP ports on 127.0.0.1 that are all free now (for FreeSWITCH's RTP).

    Below the kernel's ephemeral ports (/proc/sys/net/ipv4/ip_local_port_range, 32768 up): every
    socket a test binds to port 0 lands there, and FreeSWITCH failed a call with "RTP Bind Error"
    (INCOMPATIBLE_DESTINATION) when a phone's socket had taken its next RTP port. And below a stock
    FreeSWITCH's range (16384-32768) that another instance on this machine may use. Never one
    overlapping a range handed out before in this process: the cluster's nodes pick theirs before
    any of them binds.
    """
    try:
        with open("/proc/sys/net/ipv4/ip_local_port_range") as fh:
            high = min(high, int(fh.read().split()[0]))
    except (OSError, ValueError, IndexError):
        pass
    for _ in range(tries):
        start = random.randrange(low, high - size) & ~1
        if any(start <= end and taken <= start + size - 1 for taken, end in _RTP_TAKEN):
            continue
        socks = []
        try:
            for port in range(start, start + size):
                s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
                socks.append(s)
                s.bind(("127.0.0.1", port))
            _RTP_TAKEN.append((start, start + size - 1))
            return start, start + size - 1
        except OSError:
            continue
        finally:
            for s in socks:
                s.close()
    raise RuntimeError("no free RTP port range found")


def build_prefix() -> str:
    """Unpack the shared build (idempotent; installs its runtime libraries as root) and return its prefix."""
    result = subprocess.run(["sh", str(RUNTIME / "install.sh")], capture_output=True, text=True, timeout=900)
    if result.returncode != 0:
        raise RuntimeError(f"install.sh failed: {result.stderr.strip()}")
    return result.stdout.strip().splitlines()[-1]


def set_var(vars_xml: Path, name: str, value: str) -> None:
    """`<X-PRE-PROCESS cmd="set" data="name=value"/>` in vars.xml (the line must exist)."""
    text = vars_xml.read_text()
    new, n = re.subn(r'(data=")' + re.escape(name) + r'=[^"]*(")', rf"\g<1>{name}={value}\g<2>", text)
    assert n, f"{name} not in {vars_xml}"
    vars_xml.write_text(new)


class Esl:
    """A blocking Event Socket client: `api()` and an event log the tests can wait on."""

    def __init__(self, port: int, password: str, events: str = "", host="127.0.0.1"):
        self.sock = socket.create_connection((host, port), timeout=10)
        self.sock.settimeout(None)
        self.file = self.sock.makefile("rb")
        self.lock = threading.Lock()  # one command at a time
        self.cond = threading.Condition()
        self.replies: list[dict] = []
        self.events: list[dict] = []
        self.by_uuid: dict[str, list] = {}  # Unique-ID -> its events (waits scan one channel's, not all)
        self.by_call_id: dict[str, str] = {}  # SIP Call-ID -> the channel FreeSWITCH made for it
        self.closed = False
        self._read_message()  # auth/request
        self.thread = threading.Thread(target=self._reader, daemon=True, name="live-esl")
        self.thread.start()
        reply = self._command(f"auth {password}")
        if reply["headers"].get("Reply-Text") != "+OK accepted":
            raise RuntimeError(f"Event Socket refused the password: {reply}")
        if events:
            self._command(f"event plain {events}")

    def _read_message(self) -> dict:
        headers = {}
        while True:
            line = self.file.readline()
            if not line:
                raise EOFError("Event Socket closed")
            line = line.decode().rstrip("\n")
            if not line:
                if headers:
                    break
                continue
            name, _, value = line.partition(": ")
            headers[name] = value
        body = b""
        if "Content-Length" in headers:
            body = self.file.read(int(headers["Content-Length"]))
        return {"headers": headers, "body": body.decode("utf-8", "replace")}

    def _reader(self):
        try:
            while True:
                msg = self._read_message()
                ctype = msg["headers"].get("Content-Type", "")
                with self.cond:
                    if ctype == "text/event-plain":
                        event = {}
                        head, _, body = msg["body"].partition("\n\n")
                        for line in head.splitlines():
                            name, _, value = line.partition(": ")
                            event[name] = urllib.parse.unquote(value)
                        event["_body"] = body
                        event["_at"] = time.monotonic()
                        self.events.append(event)
                        uuid = event.get("Unique-ID", "")
                        self.by_uuid.setdefault(uuid, []).append(event)
                        call_id = event.get("variable_sip_call_id")
                        if call_id and event.get("Event-Name") == "CHANNEL_CREATE":
                            self.by_call_id.setdefault(call_id, uuid)
                    elif ctype in ("command/reply", "api/response"):
                        self.replies.append(msg)
                    self.cond.notify_all()
        except (EOFError, OSError, ValueError):
            with self.cond:
                self.closed = True
                self.cond.notify_all()

    def _command(self, line: str, timeout=30.0, raw=False) -> dict:
        with self.lock:
            with self.cond:
                before = len(self.replies)
            self.sock.sendall((line if raw else line + "\n\n").encode())
            with self.cond:
                if not self.cond.wait_for(lambda: len(self.replies) > before or self.closed, timeout):
                    raise TimeoutError(f"no reply to {line!r}")
                if len(self.replies) <= before:
                    raise EOFError("Event Socket closed")
                return self.replies.pop(before)

    def api(self, command: str, timeout=30.0) -> str:
        return self._command(f"api {command}", timeout)["body"]

    def execute(self, uuid: str, app: str, arg: str = "", timeout=30.0) -> str:
        """`sendmsg` execute of `app` on channel `uuid`; the Reply-Text (the channel runs it at its next tick)."""
        from fsctl.freeswitch import eslproto

        return self._command(eslproto.sendmsg_execute(uuid, app, arg), timeout, raw=True)["headers"]["Reply-Text"]

    def wait_event(self, predicate, timeout=30.0, what="event", uuid=None):
        """The first event (ever received; of channel `uuid` if given) matching `predicate`."""
        with self.cond:
            found = []

            def ready():
                pool = self.by_uuid.get(uuid, ()) if uuid is not None else self.events
                found[:] = [e for e in pool if predicate(e)]
                return bool(found)

            if not self.cond.wait_for(ready, timeout):
                raise AssertionError(f"no {what} within {timeout} s")
            return found[0]

    def find(self, predicate, uuid=None) -> list[dict]:
        with self.cond:
            pool = self.by_uuid.get(uuid, ()) if uuid is not None else self.events
            return [e for e in pool if predicate(e)]

    def uuid_of_call_id(self, call_id, timeout=15.0) -> str:
        with self.cond:
            if not self.cond.wait_for(lambda: call_id in self.by_call_id, timeout):
                raise AssertionError(f"no channel for SIP call {call_id} within {timeout} s")
            return self.by_call_id[call_id]

    def close(self):
        try:
            self.sock.close()
        except OSError:
            pass


class FreeSwitch:
    """One private FreeSWITCH process (see the module docstring).

    Per-switch differences are parameters: `name` (its folder's and messages' name), `esl_password`,
    `gateways` ({name: port} of carriers on loopback, written into the external profile) and
    `sessions_per_second` (`fsctl freeswitch setup --sessions-per-second`), `rtp_ports` (the size of its
    RTP range), `workdir` (default: a fresh temporary folder). Its folders: `conf`
    (FreeSWITCH's configuration), `fsctl_dir` (`conf/fsctl`: fsctl's `conf_dir`, a node's
    `--conf-dir`), `recordings` (a node's `--recordings-dir`), `xml_cdr` (mod_xml_cdr's `log-dir`).
    """

    def __init__(
        self,
        prefix: str,
        name: str = "fs",
        esl_password: str = ESL_PASSWORD,
        gateways: dict[str, int] | None = None,
        sessions_per_second: int | None = None,
        rtp_ports: int = 400,
        workdir: str | None = None,
    ):
        self.prefix, self.name, self.esl_password = prefix, name, esl_password
        self.dir = Path(workdir or tempfile.mkdtemp(prefix=f"fsctl-{name}-"))
        self.conf = self.dir / "conf"
        self.fsctl_dir = self.conf / "fsctl"
        self.recordings = self.dir / "recordings"
        self.xml_cdr = self.dir / "xml_cdr"
        self.internal_port, self.external_port, self.esl_port = free_port(), free_port(), free_port()
        self.rtp = free_rtp_range(rtp_ports)
        self.process = None
        self._prepare(gateways or {}, sessions_per_second)

    @property
    def internal(self):
        return ("127.0.0.1", self.internal_port)

    @property
    def external(self):
        return ("127.0.0.1", self.external_port)

    def _prepare(self, gateways: dict[str, int], sessions_per_second: int | None) -> None:
        """The private copy of the stock configuration, with private ports, then the install steps."""
        for sub in ("log", "db", "run", "temp", "recordings", "storage", "sounds", "cache"):
            (self.dir / sub).mkdir(parents=True, exist_ok=True)
        shutil.copytree(Path(self.prefix) / "etc" / "freeswitch", self.conf)
        # Private ports (not install steps: a test's own machine matters). Another FreeSWITCH may
        # run on this machine at the same time.
        set_var(self.conf / "vars.xml", "internal_sip_port", str(self.internal_port))
        set_var(self.conf / "vars.xml", "external_sip_port", str(self.external_port))
        set_var(self.conf / "vars.xml", "internal_tls_port", str(free_port()))
        set_var(self.conf / "vars.xml", "external_tls_port", str(free_port()))
        internal = self.conf / "sip_profiles" / "internal.xml"
        text = internal.read_text()
        text = re.sub(r'name="ws-binding"\s+value="[^"]*"', f'name="ws-binding" value="127.0.0.1:{free_port()}"', text)
        text = re.sub(
            r'name="wss-binding"\s+value="[^"]*"', f'name="wss-binding" value="127.0.0.1:{free_port()}"', text
        )
        internal.write_text(text)
        switch = self.conf / "autoload_configs" / "switch.conf.xml"
        text = switch.read_text()
        text = text.replace(
            '<!-- <param name="rtp-start-port" value="16384"/> -->',
            f'<param name="rtp-start-port" value="{self.rtp[0]}"/>',
        )
        text = text.replace(
            '<!-- <param name="rtp-end-port" value="32768"/> -->', f'<param name="rtp-end-port" value="{self.rtp[1]}"/>'
        )
        assert f'value="{self.rtp[0]}"' in text and f'value="{self.rtp[1]}"' in text, "rtp ports not set"
        switch.write_text(text)
        # The carriers our tenants' gateways reach (a UA of the test on loopback).
        for name, port in gateways.items():
            (self.conf / "sip_profiles" / "external" / f"{name}.xml").write_text(
                "<include>\n"
                f'  <gateway name="{name}">\n'
                f'    <param name="proxy" value="127.0.0.1:{port}"/>\n'
                '    <param name="register" value="false"/>\n'
                '    <param name="username" value="fsctl"/>\n'
                '    <param name="password" value="unused"/>\n'
                '    <param name="caller-id-in-from" value="true"/>\n'
                "  </gateway>\n"
                "</include>\n"
            )
        # The README's install steps, as an operator runs them on this switch's machine: its own
        # settings file (conf_dir, Event Socket, mod_xml_cdr folder), then `fsctl freeswitch setup`.
        from click.testing import CliRunner

        from fsctl.cli import cli

        settings = self.dir / "fsctl.toml"
        values = {
            "database": f"sqlite:///{self.dir}/fsctl-setup.db",
            "conf_dir": str(self.fsctl_dir),
            "esl_host": "127.0.0.1",
            "esl_port": self.esl_port,
            "esl_password": self.esl_password,
            "xml_cdr_dir": str(self.xml_cdr),
        }
        settings.write_text("[fsctl]\n" + "".join(f"{k} = {json.dumps(v)}\n" for k, v in values.items()))
        args = ["--config", str(settings), "freeswitch", "setup", str(self.conf)]
        if sessions_per_second:
            args += ["--sessions-per-second", str(sessions_per_second)]
        result = CliRunner().invoke(
            cli, args, env={"FSCTL_CONFIG": str(settings), "FSCTL_DATABASE": None}, catch_exceptions=False
        )
        if result.exit_code != 0:
            raise RuntimeError(f"fsctl freeswitch setup exited {result.exit_code}: {result.stderr}{result.stdout}")

    def command(self) -> list[str]:
        p, w = self.prefix, self.dir
        return [
            f"{p}/bin/freeswitch",
            "-nonat",
            "-nonatmap",
            "-nc",
            "-nf",
            "-base",
            p,
            "-mod",
            f"{p}/lib/freeswitch/mod",
            "-conf",
            str(self.conf),
            "-log",
            str(w / "log"),
            "-db",
            str(w / "db"),
            "-run",
            str(w / "run"),
            "-temp",
            str(w / "temp"),
            "-recordings",
            str(self.recordings),
            "-storage",
            str(w / "storage"),
            "-sounds",
            str(w / "sounds"),
            "-cache",
            str(w / "cache"),
        ]

    def start(self, timeout=90.0) -> "FreeSwitch":
        """Start FreeSWITCH (again, after `stop()`); wait until its Event Socket answers and both SIP profiles run."""
        pidfile = self.dir / "run" / "freeswitch.pid"
        if pidfile.exists():
            pidfile.unlink()
        # -nf: FreeSWITCH stays this process; its own session, so a test's signals do not reach it.
        self.process = subprocess.Popen(
            self.command(),
            env=dict(os.environ, LD_LIBRARY_PATH=f"{self.prefix}/lib"),
            stdin=subprocess.DEVNULL,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
            start_new_session=True,
        )
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise RuntimeError(
                    f"{self.name}: FreeSWITCH exited {self.process.returncode} at start; log: {self.log_tail()}"
                )
            try:
                if "is ready" in self.api("status") and self.api("sofia status").count("RUNNING") >= 2:
                    return self
            except (OSError, EOFError, RuntimeError, TimeoutError):
                pass
            time.sleep(0.2)
        raise RuntimeError(f"{self.name}: FreeSWITCH not ready within {timeout} s; log: {self.log_tail()}")

    def esl(self, events: str = "") -> Esl:
        """A connection to the Event Socket, subscribed to `events` (names, space separated) if given."""
        return Esl(self.esl_port, self.esl_password, events)

    def api(self, command: str) -> str:
        """One api command on a connection of its own."""
        esl = self.esl()
        try:
            return esl.api(command)
        finally:
            esl.close()

    def registered(self, domain: str) -> set:
        """The users of `domain` registered on this switch (its core database)."""
        rows = json.loads(self.api("show registrations as json") or "{}").get("rows") or []
        return {r["reg_user"] for r in rows if r.get("realm") == domain}

    @property
    def pid(self) -> int | None:
        return self.process.pid if self.process is not None else None

    def running(self) -> bool:
        """True while the FreeSWITCH process lives."""
        return self.process is not None and self.process.poll() is None

    def log_tail(self, lines=60) -> str:
        path = self.dir / "log" / "freeswitch.log"
        if not path.exists():
            return "(no log)"
        return "\n".join(path.read_text(errors="replace").splitlines()[-lines:])

    def stop(self, timeout=30.0, kill=False) -> None:
        """Stop this FreeSWITCH by its pid (TERM, then KILL; `kill`: KILL at once) and wait until it is gone."""
        if not self.running():
            return
        if not kill:
            os.kill(self.process.pid, signal.SIGTERM)
            try:
                self.process.wait(timeout)
            except subprocess.TimeoutExpired:
                pass
        if self.running():
            os.kill(self.process.pid, signal.SIGKILL)
            self.process.wait()

    def remove(self) -> None:
        shutil.rmtree(self.dir, ignore_errors=True)
        if self.rtp in _RTP_TAKEN:
            _RTP_TAKEN.remove(self.rtp)
