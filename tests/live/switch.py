"""A private FreeSWITCH for the live tests: the shared build, a copy of its stock configuration.

`FreeSwitch.start()` copies `<prefix>/etc/freeswitch` into a private folder, makes every port
private and free (SIP internal/external and their WebSocket bindings, the Event Socket, the RTP
range), applies the README's install steps with `fsctl freeswitch setup` (the same function an
operator runs), and starts FreeSWITCH there. `Esl` is a small synchronous Event Socket client
for the tests' own observations (api commands, events); the product's client is fs_scripts.esl.
"""

from __future__ import annotations

import os
import re
import shutil
import socket
import subprocess
import tempfile
import threading
import time
import urllib.parse
from pathlib import Path

from .sipua import free_rtp_range, pid_alive

ROOT = Path(__file__).resolve().parents[2]
RUNTIME = Path(os.environ.get("FSCTL_TEST_FREESWITCH_RUNTIME") or ROOT.parent / "shared" / "freeswitch" / "runtime")
ESL_PASSWORD = "live-test-esl-secret"


def free_port(kind=socket.SOCK_STREAM) -> int:
    """A TCP (and UDP) port on 127.0.0.1 that is free now."""
    for _ in range(50):
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

    def _command(self, line: str, timeout=30.0) -> dict:
        with self.lock:
            with self.cond:
                before = len(self.replies)
            self.sock.sendall((line + "\n\n").encode())
            with self.cond:
                if not self.cond.wait_for(lambda: len(self.replies) > before or self.closed, timeout):
                    raise TimeoutError(f"no reply to {line!r}")
                if len(self.replies) <= before:
                    raise EOFError("Event Socket closed")
                return self.replies.pop(before)

    def api(self, command: str, timeout=30.0) -> str:
        return self._command(f"api {command}", timeout)["body"]

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
    """One private FreeSWITCH process (see the module docstring)."""

    def __init__(self, prefix: str, setup, workdir: str | None = None):
        self.prefix = prefix
        self.dir = Path(workdir or tempfile.mkdtemp(prefix="fsctl-live-fs-"))
        self.conf = self.dir / "conf"
        self.setup = setup  # function(conf folder) applying the install steps (fsctl freeswitch setup)
        self.internal_port = free_port()
        self.external_port = free_port()
        self.esl_port = free_port()
        self.rtp = free_rtp_range()
        self.process = None
        self.pid = None

    @property
    def internal(self):
        return ("127.0.0.1", self.internal_port)

    @property
    def external(self):
        return ("127.0.0.1", self.external_port)

    def prepare(self, gateways: dict[str, int]) -> None:
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
        text = re.sub(r'name="wss-binding"\s+value="[^"]*"', f'name="wss-binding" value="127.0.0.1:{free_port()}"',
                      text)
        internal.write_text(text)
        switch = self.conf / "autoload_configs" / "switch.conf.xml"
        text = switch.read_text()
        text = text.replace('<!-- <param name="rtp-start-port" value="16384"/> -->',
                            f'<param name="rtp-start-port" value="{self.rtp[0]}"/>')
        text = text.replace('<!-- <param name="rtp-end-port" value="32768"/> -->',
                            f'<param name="rtp-end-port" value="{self.rtp[1]}"/>')
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
                "</include>\n")
        # The README's install steps, as an operator runs them.
        self.setup(self.conf)

    def command(self) -> list[str]:
        p, w = self.prefix, self.dir
        return [f"{p}/bin/freeswitch", "-nonat", "-nonatmap", "-nc", "-nf", "-base", p,
                "-mod", f"{p}/lib/freeswitch/mod", "-conf", str(self.conf), "-log", str(w / "log"),
                "-db", str(w / "db"), "-run", str(w / "run"), "-temp", str(w / "temp"),
                "-recordings", str(w / "recordings"), "-storage", str(w / "storage"),
                "-sounds", str(w / "sounds"), "-cache", str(w / "cache")]

    def start(self, timeout=60.0) -> "FreeSwitch":
        env = dict(os.environ, LD_LIBRARY_PATH=f"{self.prefix}/lib")
        self.process = subprocess.Popen(self.command(), env=env, stdin=subprocess.DEVNULL,
                                        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                                        start_new_session=True)
        deadline = time.monotonic() + timeout
        pidfile = self.dir / "run" / "freeswitch.pid"
        while time.monotonic() < deadline:
            if pidfile.exists() and pidfile.read_text().strip():
                self.pid = int(pidfile.read_text().strip())
            try:
                esl = Esl(self.esl_port, ESL_PASSWORD)
                try:
                    status = esl.api("status")
                    sofia = esl.api("sofia status")
                finally:
                    esl.close()
                if "is ready" in status and sofia.count("RUNNING") >= 2:
                    return self
            except (OSError, EOFError, RuntimeError, TimeoutError):
                pass
            if self.process.poll() is not None and not (self.pid and pid_alive(self.pid)):
                raise RuntimeError(f"FreeSWITCH exited at start; log: {self.log_tail()}")
            time.sleep(0.2)
        raise RuntimeError(f"FreeSWITCH's Event Socket did not answer within {timeout} s; log: {self.log_tail()}")

    def esl(self, events: str = "") -> Esl:
        return Esl(self.esl_port, ESL_PASSWORD, events)

    def log_tail(self, lines=60) -> str:
        path = self.dir / "log" / "freeswitch.log"
        if not path.exists():
            return "(no log)"
        return "\n".join(path.read_text(errors="replace").splitlines()[-lines:])

    def stop(self, timeout=20.0) -> None:
        pid = self.pid or (self.process.pid if self.process else None)
        if pid and pid_alive(pid):
            os.kill(pid, 15)
            deadline = time.monotonic() + timeout
            while pid_alive(pid) and time.monotonic() < deadline:
                if self.process is not None:
                    self.process.poll()
                time.sleep(0.1)
            if pid_alive(pid):
                os.kill(pid, 9)
        if self.process is not None:
            try:
                self.process.wait(timeout=5)
            except subprocess.TimeoutExpired:
                pass

    def remove(self) -> None:
        shutil.rmtree(self.dir, ignore_errors=True)
