"""Issue 12, the real switch: calls from sipp through the shared FreeSWITCH build and `fs-scripts`.

A private FreeSWITCH on free loopback ports (tests/freeswitch_server.py: the stock configuration, the
README's install steps by `fsctl freeswitch setup`), one tenant whose public number rings a
group of one member; `fs-scripts run` decides every call, on SQLite, at its production log level.
sipp (Debian `sip-tester`) is the carrier (`-sn uac`: INVITE, ACK, 0.5 s, BYE) and the member's
phone (`-sn uas`, answering at once; registered by the tests' UA from the port sipp then takes).

An Event Socket observer (its own connection) times, by arrival:
- post-dial delay: the caller's channel created (its INVITE) -> the member's channel going out
  (CHANNEL_OUTGOING, just before FreeSWITCH sends the member's INVITE);
- park -> first command: CHANNEL_PARK -> the first CHANNEL_EXECUTE the service caused on it, and
  park -> bridge (the plan's last command: FACTS.md, a parked channel runs a command at its next
  media tick, one tick = 20 ms);
- failed calls: sipp's count, and the service's own (`/health`: failed, fallbacks);
- CPU: the service's (and FreeSWITCH's, the reference) user+system time over a run, per call.
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import threading
import time
import urllib.request
from pathlib import Path

from ._paired import percentile

RATES = (20, 40)  # the latency points
PROBE_RATES = (60, 80, 100)  # tried upwards for the largest rate with no failed call
SECONDS = 10  # of calls per rate
TICK_MS = 20.0
CPU_GOAL_MS = 2.0
PARK_P99_GOAL_MS = 25.0
DID = "+37052000777"


def _clk_tck():
    return os.sysconf("SC_CLK_TCK")


def cpu_seconds(pid: int) -> float:
    """User + system CPU seconds of a process (and its reaped children: none here)."""
    with open(f"/proc/{pid}/stat") as fh:
        fields = fh.read().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / _clk_tck()


class Observer:
    """A lean Event Socket reader: arrival time of the events the figures need, per channel."""

    EVENTS = "CHANNEL_CREATE CHANNEL_OUTGOING CHANNEL_PARK CHANNEL_EXECUTE CHANNEL_HANGUP_COMPLETE"

    def __init__(self, port, password):
        from fsctl.freeswitch import eslproto

        self._proto = eslproto
        self.sock = socket.create_connection(("127.0.0.1", port), timeout=10)
        self.reader = eslproto.Reader()
        self.lock = threading.Lock()
        self.created = {}  # A-leg uuid -> arrival
        self.outgoing = {}  # A-leg uuid -> first B-leg CHANNEL_OUTGOING arrival
        self.parked = {}  # uuid -> park arrival
        self.executed = {}  # uuid -> [(arrival, app)] after its park
        self.causes = {}  # uuid -> hang-up cause (inbound legs)
        self._pending = []
        self._next()  # auth/request
        self._send(f"auth {password}")
        self._send(f"event plain {self.EVENTS}")
        self.thread = threading.Thread(target=self._loop, daemon=True)
        self.thread.start()

    def _next(self):
        while not self._pending:
            data = self.sock.recv(262144)
            if not data:
                raise EOFError
            self._pending.extend(self.reader.feed(data))
        return self._pending.pop(0)

    def _send(self, line):
        self.sock.sendall((line + "\n\n").encode())
        reply = self._next()
        if not reply.reply_text.startswith("+OK"):
            raise RuntimeError(f"{line.split()[0]}: {reply.reply_text}")

    def _loop(self):
        peek = self._proto.peek_plain_header
        try:
            while True:
                data = self.sock.recv(262144)
                if not data:
                    return
                now = time.monotonic()
                for msg in self.reader.feed(data):
                    if msg.content_type != "text/event-plain":
                        continue
                    body = msg.body
                    name = peek(body, "Event-Name")
                    uuid = peek(body, "Unique-ID")
                    with self.lock:
                        if name == "CHANNEL_CREATE":
                            if peek(body, "Call-Direction") == "inbound":
                                self.created[uuid] = now
                        elif name == "CHANNEL_OUTGOING":
                            self.outgoing.setdefault(peek(body, "Other-Leg-Unique-ID"), now)
                        elif name == "CHANNEL_PARK":
                            self.parked[uuid] = now
                            self.executed[uuid] = []
                        elif name == "CHANNEL_EXECUTE":
                            if uuid in self.executed:
                                self.executed[uuid].append((now, peek(body, "Application")))
                        elif name == "CHANNEL_HANGUP_COMPLETE":
                            if uuid in self.created:
                                self.causes[uuid] = peek(body, "Hangup-Cause")
        except OSError:
            return

    def reset(self):
        with self.lock:
            for table in (self.created, self.outgoing, self.parked, self.executed, self.causes):
                table.clear()

    def figures(self):
        """(pdd ms, park->first command ms, park->bridge ms, answered A legs, A legs) of the run."""
        with self.lock:
            pdd = [(self.outgoing[u] - t) * 1000 for u, t in self.created.items() if u in self.outgoing]
            first, bridge = [], []
            for uuid, at in self.parked.items():
                apps = self.executed.get(uuid, [])
                if apps:
                    first.append((apps[0][0] - at) * 1000)
                bridged = [t for t, app in apps if app == "bridge"]
                if bridged:
                    bridge.append((bridged[0] - at) * 1000)
            ok = sum(1 for c in self.causes.values() if c == "NORMAL_CLEARING")
            return pdd, first, bridge, ok, len(self.created)

    def close(self):
        try:
            self.sock.close()
        except OSError:
            pass


class Rig:
    """FreeSWITCH, the service, the member's sipp and the observer, for one benchmark."""

    def __init__(self, database=None):
        self.work = Path(tempfile.mkdtemp(prefix="fsctl-live-bench-"))
        self.database = database or f"sqlite:///{self.work}/fsctl.db"
        self.procs = []
        self.fs = None
        self.service = None
        self.observer = None

    def fsctl(self, *args):
        from click.testing import CliRunner

        from fsctl.cli import cli

        result = CliRunner().invoke(
            cli,
            ["--config", str(self.settings), *args],
            env={"FSCTL_CONFIG": str(self.settings), "FSCTL_DATABASE": None},
        )
        if result.exit_code != 0:
            raise RuntimeError(f"fsctl {' '.join(args)}: {result.output}")
        return result.output

    def start(self):
        from tests.freeswitch_server import ESL_PASSWORD, FreeSwitch, build_prefix, free_port
        from tests.live.sipua import Phone

        prefix = build_prefix()
        # The stock configuration and the README's install steps (fsctl freeswitch setup).
        self.fs = fs = FreeSwitch(
            prefix,
            "bench",
            gateways={"carrier": free_port()},
            sessions_per_second=1000,
            rtp_ports=2000,
            workdir=str(self.work / "fs"),
        )
        self.settings = self.work / "fsctl.toml"
        self.settings.write_text(
            "[fsctl]\n"
            f'database = "{self.database}"\n'
            f'conf_dir = "{fs.fsctl_dir}"\n'
            f'esl_host = "127.0.0.1"\nesl_port = {fs.esl_port}\nesl_password = "{ESL_PASSWORD}"\n'
            f'recordings_dir = "{fs.recordings}"\nmedia_dir = "{self.work}/media"\n'
            f'xml_cdr_dir = "{fs.xml_cdr}"\n'
            "calls_per_second = 1000\n"
        )
        self.fsctl("init")
        fs.start()
        # Production log level (the stock configuration logs DEBUG to its file).
        esl = fs.esl()
        try:
            esl.api("fsctl loglevel warning")
        finally:
            esl.close()
        domain = "bench.live.test"
        self.fsctl("tenant", "add", domain, "--name", "Bench", "--tz", "UTC", "--gateway", "carrier")
        self.fsctl("user", "add", domain, "101", "--name", "Member", "--password", "Bench-pass-1234")
        self.fsctl(
            "group",
            "add",
            domain,
            "400",
            "--name",
            "Line",
            "--strategy",
            "simultaneous",
            "--ring-time",
            "20",
            "--member",
            "101",
        )
        self.fsctl("did", "add", domain, DID, "--to", "group:400")
        self.fsctl("apply")
        # Register 101 from a port, then hand the port to sipp's answering phone.
        phone = Phone(f"101@{domain}", fs.internal, user="101", domain=domain, password="Bench-pass-1234")
        status = phone.register(expires=3600)
        port = phone.port
        phone.close()
        if status != 200:
            raise RuntimeError(f"REGISTER 101: {status}")
        self._spawn(["sipp", "-sn", "uas", "-i", "127.0.0.1", "-p", str(port), "-nostdin", "-bind_local"])
        self.observer = Observer(fs.esl_port, ESL_PASSWORD)
        self.start_service()
        return self

    def _spawn(self, argv, **kw):
        proc = subprocess.Popen(
            argv,
            stdin=subprocess.DEVNULL,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
            start_new_session=True,
            **kw,
        )
        self.procs.append(proc)
        return proc

    def start_service(self, argv_prefix=None):
        from tests.freeswitch_server import free_port

        self.health_port = free_port()
        env = {k: v for k, v in os.environ.items() if not k.startswith("FSCTL_")}
        argv = argv_prefix or [sys.executable, "-c", "from fs_scripts.cli import main; main()"]
        log = open(self.work / "fs-scripts.log", "ab")
        self.service = subprocess.Popen(
            [
                *argv,
                "run",
                "--config",
                str(self.settings),
                "--health-port",
                str(self.health_port),
                "--log-level",
                "INFO",
            ],
            stdin=subprocess.DEVNULL,
            stdout=log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
            env=env,
        )
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            if self.health().get("freeswitch") == "connected":
                time.sleep(1.0)  # subscribed, warmed up
                return
            time.sleep(0.2)
        raise RuntimeError("fs-scripts not healthy within 30 s: " + (self.work / "fs-scripts.log").read_text()[-2000:])

    def stop_service(self):
        if self.service is not None and self.service.poll() is None:
            self.service.send_signal(signal.SIGTERM)
            try:
                self.service.wait(timeout=15)
            except subprocess.TimeoutExpired:
                self.service.kill()
                self.service.wait(timeout=5)
        self.service = None

    def health(self):
        try:
            with urllib.request.urlopen(f"http://127.0.0.1:{self.health_port}/health", timeout=2) as r:
                return json.loads(r.read())
        except OSError as exc:
            body = getattr(exc, "read", None)
            if body is not None:
                try:
                    return json.loads(body())
                except ValueError:
                    pass
            return {}

    def load(self, rate, calls, hold_ms=500):
        """Run `calls` calls at `rate` calls/s; the figures of the run (a dict)."""
        self.observer.reset()
        before = self.health()
        svc0, fs0 = cpu_seconds(self.service.pid), cpu_seconds(self.fs.pid)
        started = time.monotonic()
        stat = self.work / f"uac-{rate}.csv"
        proc = subprocess.run(
            [
                "sipp",
                f"127.0.0.1:{self.fs.external_port}",
                "-sn",
                "uac",
                "-s",
                DID,
                "-i",
                "127.0.0.1",
                "-p",
                "0",
                "-r",
                str(rate),
                "-m",
                str(calls),
                "-l",
                str(rate * 10),
                "-d",
                str(hold_ms),
                "-nostdin",
                "-timeout",
                str(calls // rate + 60),
                "-timeout_error",
                "-recv_timeout",
                "30000",
                "-trace_stat",
                "-stf",
                str(stat),
                "-fd",
                "3600",
            ],
            stdin=subprocess.DEVNULL,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.PIPE,
            timeout=calls / rate + 120,
        )
        elapsed = time.monotonic() - started
        # The last hang-ups reach the service's writer after sipp's BYE: let it drain.
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline:
            h = self.health()
            if h.get("hangups", 0) - before.get("hangups", 0) >= 2 * calls and h.get("active", 1) == 0:
                break
            time.sleep(0.2)
        time.sleep(0.5)
        after = self.health()
        svc = cpu_seconds(self.service.pid) - svc0
        fsw = cpu_seconds(self.fs.pid) - fs0
        failed_sipp = _sipp_failed(stat, calls, proc.returncode)
        pdd, first, bridge, ok, legs = self.observer.figures()
        decided = after.get("calls", 0) - before.get("calls", 0)
        return {
            "rate": rate,
            "calls": calls,
            "seconds": elapsed,
            "sipp_failed": failed_sipp,
            "service_failed": (after.get("failed", 0) - before.get("failed", 0))
            + (after.get("fallbacks", 0) - before.get("fallbacks", 0)),
            "decided": decided,
            "answered": ok,
            "legs": legs,
            "pdd": pdd,
            "first": first,
            "bridge": bridge,
            "svc_cpu_ms": 1000 * svc / max(1, decided),
            "fs_cpu_ms": 1000 * fsw / max(1, calls),
            "load": os.getloadavg()[0],
        }

    def close(self):
        self.stop_service()
        if self.observer is not None:
            self.observer.close()
        for proc in self.procs:
            if proc.poll() is None:
                proc.kill()
                proc.wait(timeout=5)
        if self.fs is not None:
            self.fs.stop()
        shutil.rmtree(self.work, ignore_errors=True)


def _sipp_failed(stat: Path, calls: int, returncode: int) -> int:
    """Failed calls from sipp's statistics file (its last row), else from its exit status."""
    try:
        lines = stat.read_text().splitlines()
        head, last = lines[0].split(";"), lines[-1].split(";")
        row = dict(zip(head, last))
        return int(row["FailedCall(C)"])
    except (OSError, IndexError, KeyError, ValueError):
        return 0 if returncode == 0 else calls


def _ms(values, p):
    return f"{percentile(values, p):.1f}" if values else "n/a"


def missing():
    """Why the live benchmark cannot run here, or ""."""
    from tests.freeswitch_server import RUNTIME

    if not (RUNTIME / "install.sh").is_file():
        return f"skipped: the shared FreeSWITCH build is absent ({RUNTIME})"
    if shutil.which("sipp") is None:
        return "skipped: sipp is not installed (Debian sip-tester)"
    return ""


def run(quick):
    why = missing()
    if why:
        yield "live switch (sipp, real FreeSWITCH)", why
        return
    seconds = 3 if quick else SECONDS
    rig = Rig().start()
    try:
        rig.load(10, 20)  # warm-up: caches, first registrations look-ups
        runs = {}
        for rate in RATES:
            runs[rate] = rig.load(rate, rate * seconds)
        for rate in RATES:
            r = runs[rate]
            yield (
                f"post-dial delay at {rate}/s p50 / p99 (ms)",
                f"{_ms(r['pdd'], 50)} / {_ms(r['pdd'], 99)}   (n={len(r['pdd'])}, load {r['load']:.1f})",
            )
        for rate in RATES:
            r = runs[rate]
            p99 = percentile(r["first"], 99) if r["first"] else float("inf")
            yield (
                f"park -> first command at {rate}/s p50 / p99 (ms)",
                f"{_ms(r['first'], 50)} / {_ms(r['first'], 99)}   ref one tick {TICK_MS:.0f} ms; goal p99 <= "
                f"{PARK_P99_GOAL_MS:.0f}: {'OK' if p99 <= PARK_P99_GOAL_MS else 'MISSED'}",
            )
            yield (
                f"park -> bridge at {rate}/s p50 / p99 (ms)",
                f"{_ms(r['bridge'], 50)} / {_ms(r['bridge'], 99)}   (goal: one tick after the park)",
            )
        best = 0
        for rate in RATES + PROBE_RATES:
            r = runs.get(rate) or rig.load(rate, rate * seconds)
            runs[rate] = r
            failures = r["sipp_failed"] + r["service_failed"]
            yield (
                f"{rate} calls/s x {r['calls']}: failed (sipp / service)",
                f"{r['sipp_failed']} / {r['service_failed']}   park->bridge p99 {_ms(r['bridge'], 99)} ms, "
                f"load {r['load']:.1f}",
            )
            if failures:
                break
            best = rate
        yield "largest rate tried with no failed call (calls/s)", f"{best}   (tried {', '.join(map(str, runs))})"
        cpu = [runs[rate]["svc_cpu_ms"] for rate in RATES]
        fs_cpu = [runs[rate]["fs_cpu_ms"] for rate in RATES]
        share = statistics.median(cpu) / statistics.median(fs_cpu) if statistics.median(fs_cpu) else float("nan")
        yield (
            "the service's CPU per call, SQLite (ms)",
            f"{' / '.join(f'{c:.2f}' for c in cpu)} at {' / '.join(map(str, RATES))}/s   ref FreeSWITCH "
            f"{statistics.median(fs_cpu):.1f} ms per call ({share:.0%}); goal <= {CPU_GOAL_MS:.0f} ms: "
            f"{'OK' if statistics.median(cpu) <= CPU_GOAL_MS else 'MISSED'}",
        )
    finally:
        rig.close()
