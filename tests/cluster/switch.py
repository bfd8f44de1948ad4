"""A private FreeSWITCH node for the cluster tests: the shared build, a copy of its stock configuration.

`Switch(prefix, name, password)` copies `<prefix>/etc/freeswitch` into a private folder and gives
the copy private free ports (internal and external SIP, their TLS and WebSocket bindings, the Event
Socket, an RTP range), then the README's install steps that these tests need: fsctl's directory,
dialplan and callcenter folders included (`conf/fsctl`, the node's `--conf-dir`), mod_xml_cdr writing
into the node's `xml_cdr` folder, the external profile's context
`fsctl-public`, the Event Socket password. `start()` runs it (a child process of the test) and waits until its
Event Socket answers and both SIP profiles run; `stop()` stops it by that pid; `remove()` deletes
the folder. Two of them run side by side (and beside other FreeSWITCHes on this machine).

To fold into tests/live (the single-node live layer) once it is on main: its FreeSWITCH fixture
does the same with `fsctl freeswitch setup`; only the node's `--conf-dir` is specific here.
"""

from __future__ import annotations

import os
import re
import shutil
import signal
import socket
import subprocess
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
RUNTIME = Path(os.environ.get("FSCTL_FREESWITCH_RUNTIME") or ROOT.parent / "shared" / "freeswitch" / "runtime")


def free_port() -> int:
    """A port free on 127.0.0.1 for both TCP and UDP now."""
    for _ in range(100):
        with socket.socket() as t:
            t.bind(("127.0.0.1", 0))
            port = t.getsockname()[1]
        try:
            with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as u:
                u.bind(("127.0.0.1", port))
            return port
        except OSError:
            continue
    raise RuntimeError("no free port")


def free_rtp_range(size=200) -> tuple:
    """An even-started range of UDP ports, all free now, for one FreeSWITCH's RTP."""
    import random

    rng = random.Random()
    for _ in range(200):
        start = rng.randrange(20000, 60000 - size, 2)
        try:
            for port in range(start, start + size, 10):  # a sample: binding each of 200 costs too long
                with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as u:
                    u.bind(("127.0.0.1", port))
            return start, start + size - 1
        except OSError:
            continue
    raise RuntimeError("no free RTP range")


def build_prefix() -> str:
    """Unpack the shared build once (install.sh is idempotent) and return its prefix."""
    proc = subprocess.run(["sh", str(RUNTIME / "install.sh")], capture_output=True, text=True, timeout=900)
    if proc.returncode != 0:
        raise RuntimeError(f"install.sh failed: {proc.stderr.strip()}")
    return proc.stdout.strip().splitlines()[-1]


def _set_var(vars_xml: Path, name: str, value: str):
    text = vars_xml.read_text()
    new, count = re.subn(r'(data=")' + re.escape(name) + r'=[^"]*(")', rf"\g<1>{name}={value}\g<2>", text)
    assert count, f"{name} not in {vars_xml}"
    vars_xml.write_text(new)


def _param(path: Path, name: str, value: str):
    """Set `<param name=NAME value=...>` in a profile file (uncommenting it if needed, adding it if absent)."""
    text = path.read_text()
    pattern = r'(?:<!--\s*)?<param\s+name="' + re.escape(name) + r'"\s+value="[^"]*"\s*/>(?:\s*-->)?'
    line = f'<param name="{name}" value="{value}"/>'
    new, count = re.subn(pattern, line, text)
    if not count:
        new = text.replace("<settings>", f"<settings>\n    {line}", 1)
    path.write_text(new)


class Esl:
    """A blocking Event Socket client for the tests' own look at a node (`api`)."""

    def __init__(self, port, password, timeout=10.0):
        self.sock = socket.create_connection(("127.0.0.1", port), timeout=timeout)
        self.buf = b""
        self._read()  # auth/request
        self.sock.sendall(f"auth {password}\n\n".encode())
        reply = self._read()
        if b"+OK accepted" not in reply[0]:
            raise RuntimeError("Event Socket refused the password")

    def _read(self):
        while b"\n\n" not in self.buf:
            data = self.sock.recv(65536)
            if not data:
                raise EOFError("Event Socket closed")
            self.buf += data
        head, _, self.buf = self.buf.partition(b"\n\n")
        length = 0
        for line in head.split(b"\n"):
            if line.lower().startswith(b"content-length:"):
                length = int(line.split(b":")[1])
        while len(self.buf) < length:
            data = self.sock.recv(65536)
            if not data:
                raise EOFError("Event Socket closed")
            self.buf += data
        body, self.buf = self.buf[:length], self.buf[length:]
        return head, body

    def api(self, command) -> str:
        self.sock.sendall(f"api {command}\n\n".encode())
        while True:
            head, body = self._read()
            if b"api/response" in head:
                return body.decode("utf-8", "replace")

    def close(self):
        self.sock.close()


class Switch:
    """One private FreeSWITCH node (see the module docstring)."""

    def __init__(self, prefix: str, name: str, password: str):
        self.prefix, self.name, self.password = prefix, name, password
        self.dir = Path(tempfile.mkdtemp(prefix=f"fsctl-cluster-{name}-"))
        self.conf = self.dir / "conf"
        self.fsctl_dir = self.conf / "fsctl"  # the node's --conf-dir: the includes read $${conf_dir}/fsctl
        self.recordings = self.dir / "recordings"  # the node's --recordings-dir (fs-scripts records there)
        self.xml_cdr = self.dir / "xml_cdr"  # mod_xml_cdr's folder (conf/freeswitch/xml_cdr.conf.xml)
        self.internal_port, self.external_port, self.esl_port = free_port(), free_port(), free_port()
        self.rtp = free_rtp_range()
        self.pid = None
        self.process = None
        self._prepare()

    def _prepare(self):
        for sub in ("log", "db", "run", "temp", "recordings", "storage", "sounds", "cache", "xml_cdr"):
            (self.dir / sub).mkdir(parents=True, exist_ok=True)
        shutil.copytree(Path(self.prefix) / "etc" / "freeswitch", self.conf)
        self.fsctl_dir.mkdir()
        conf = self.conf
        # Private ports: this machine may run other FreeSWITCHes meanwhile.
        _set_var(conf / "vars.xml", "internal_sip_port", str(self.internal_port))
        _set_var(conf / "vars.xml", "external_sip_port", str(self.external_port))
        _set_var(conf / "vars.xml", "internal_tls_port", str(free_port()))
        _set_var(conf / "vars.xml", "external_tls_port", str(free_port()))
        internal = conf / "sip_profiles" / "internal.xml"
        _param(internal, "ws-binding", f"127.0.0.1:{free_port()}")
        _param(internal, "wss-binding", f"127.0.0.1:{free_port()}")
        switch = conf / "autoload_configs" / "switch.conf.xml"
        _param(switch, "rtp-start-port", str(self.rtp[0]))
        _param(switch, "rtp-end-port", str(self.rtp[1]))
        events = conf / "autoload_configs" / "event_socket.conf.xml"
        _param(events, "listen-port", str(self.esl_port))
        _param(events, "password", self.password)
        # The README's install steps (conf/freeswitch/*): fsctl's folders included, the profiles set.
        main = conf / "freeswitch.xml"
        text = main.read_text()
        for section in ("directory", "dialplan"):
            stock = f'<X-PRE-PROCESS cmd="include" data="{section}/*.xml"/>'
            assert stock in text
            text = text.replace(stock, stock + f'\n    <X-PRE-PROCESS cmd="include" data="$${{conf_dir}}/fsctl/{section}/*.xml"/>')
        main.write_text(text)
        # Queues (mod_callcenter reads its queues, agents and tiers from callcenter.conf when it loads).
        callcenter = conf / "autoload_configs" / "callcenter.conf.xml"
        text = callcenter.read_text()
        for section in ("queues", "agents", "tiers"):
            text = text.replace(f"<{section}>", f'<{section}>\n    <X-PRE-PROCESS cmd="include" '
                                                f'data="$${{conf_dir}}/fsctl/callcenter/{section}/*.xml"/>', 1)
        callcenter.write_text(text)
        # The call log's safety net (step 5): fsctl's mod_xml_cdr settings, this node's own folder.
        xml_cdr = (ROOT / "conf" / "freeswitch" / "xml_cdr.conf.xml").read_text()
        (conf / "autoload_configs" / "xml_cdr.conf.xml").write_text(
            xml_cdr.replace('value="/var/log/freeswitch/xml_cdr"', f'value="{self.xml_cdr}"'))
        for name, value in (("force-register-domain", ""), ("force-subscription-domain", ""),
                            ("force-register-db-domain", ""), ("challenge-realm", "auto_from"),
                            ("multiple-registrations", "contact"), ("auth-calls", "true"),
                            ("accept-blind-reg", "false"), ("accept-blind-auth", "false"), ("context", "public")):
            _param(internal, name, value)
        _param(conf / "sip_profiles" / "external.xml", "context", "fsctl-public")
        _param(conf / "sip_profiles" / "external.xml", "disable-transfer", "true")

    def start(self, timeout=90.0):
        """Start FreeSWITCH; wait until its Event Socket answers and both SIP profiles run."""
        p, w = self.prefix, self.dir
        cmd = [f"{p}/bin/freeswitch", "-nonat", "-nonatmap", "-nc", "-nf", "-base", p, "-mod", f"{p}/lib/freeswitch/mod",
               "-conf", str(self.conf), "-log", str(w / "log"), "-db", str(w / "db"), "-run", str(w / "run"),
               "-temp", str(w / "temp"), "-recordings", str(w / "recordings"), "-storage", str(w / "storage"),
               "-sounds", str(w / "sounds"), "-cache", str(w / "cache")]
        pidfile = w / "run" / "freeswitch.pid"
        if pidfile.exists():
            pidfile.unlink()
        # (-nf: FreeSWITCH stays this process; its own session, so a test's signals do not reach it.)
        self.process = subprocess.Popen(cmd, env=dict(os.environ, LD_LIBRARY_PATH=f"{p}/lib"),
                                        stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL,
                                        stderr=subprocess.DEVNULL, start_new_session=True)
        self.pid = self.process.pid
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise RuntimeError(f"{self.name}: FreeSWITCH exited {self.process.returncode}: {self.log_tail()}")
            try:
                if "is ready" in self.api("status") and self.api("sofia status").count("RUNNING") >= 2:
                    return self
            except (OSError, EOFError, RuntimeError):
                pass
            time.sleep(0.2)
        raise RuntimeError(f"{self.name}: FreeSWITCH not ready within {timeout} s: {self.log_tail()}")

    def api(self, command) -> str:
        esl = Esl(self.esl_port, self.password)
        try:
            return esl.api(command)
        finally:
            esl.close()

    def registered(self, domain) -> set:
        """The users of `domain` registered on this node (its core database)."""
        import json

        rows = json.loads(self.api("show registrations as json") or "{}").get("rows") or []
        return {r["reg_user"] for r in rows if r.get("realm") == domain}

    def running(self) -> bool:
        """True while the FreeSWITCH process lives."""
        return self.process is not None and self.process.poll() is None

    def stop(self, timeout=30.0):
        """Stop this FreeSWITCH by its pid (TERM, then KILL) and wait until it is gone."""
        if not self.running():
            return
        os.kill(self.pid, signal.SIGTERM)
        deadline = time.monotonic() + timeout
        while self.running() and time.monotonic() < deadline:
            time.sleep(0.1)
        if self.running():
            os.kill(self.pid, signal.SIGKILL)
            self.process.wait()

    def log_tail(self, lines=40) -> str:
        path = self.dir / "log" / "freeswitch.log"
        return "\n".join(path.read_text(errors="replace").splitlines()[-lines:]) if path.exists() else "(no log)"

    def remove(self):
        shutil.rmtree(self.dir, ignore_errors=True)
