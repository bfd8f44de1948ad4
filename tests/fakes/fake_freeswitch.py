"""A fake FreeSWITCH Event Socket server on 127.0.0.1 that answers with recorded bytes.

Honesty first: every reply that a capture holds is sent byte for byte as recorded
(tests/data/esl-captures, a copy of shared/freeswitch/esl-captures, loaded with tests.fakes.captures); generated events
are recorded events with a few headers rewritten. It runs in plain OS threads (like the
real FreeSWITCH it is another "process"), so a client that freezes the gevent hub cannot
freeze the fake too; its waiting helpers poll with ``gevent.sleep`` so they never block
the hub of the test that calls them.

Usage (the pytest fixture ``fake_fs`` in tests/fs_scripts/conftest.py does start/stop)::

    fake = FakeFreeSWITCH().start()          # fake.host, fake.port (a free port), fake.password
    ...
    fake.stop()

What it does, per connection (FACTS.md "Event Socket"):
- greeting ``auth/request``; ``auth PW`` → ``+OK accepted``, or ``-ERR invalid`` + disconnect
  notice + close; any other command before auth → ``-ERR command not found``.
- ``api CMD``: answered from ``fake.api_replies`` (exact command text → reply). Pre-filled from
  esl_api_replies_idle.txt and esl_reloadxml_errors.txt (recorded bytes). Built in:
  ``uuid_kill UUID`` / ``uuid_getvar UUID VAR`` for parked calls, ``-ERR No such channel!``
  otherwise; an unknown command gets ``-ERR <cmd> Command not found!`` as FreeSWITCH does.
  ``reloadxml`` answers ``+OK [Success]`` (and a RELOADXML event) unless scripted otherwise.
  ``callcenter_config ...`` is answered by ``fake.callcenter`` (tests.fakes.callcenter: replies
  taken from mod_callcenter's source, no capture exists); ``fake.callcenter = None`` is a
  FreeSWITCH without mod_callcenter (``-ERR callcenter_config Command not found!``).
- ``bgapi CMD`` (+ optional caller-chosen ``Job-UUID``) → ``+OK Job-UUID: ...`` at once, then a
  ``BACKGROUND_JOB`` event carrying the api result, only to connections subscribed to it.
- ``event plain|json NAMES`` / ``nixevent`` / ``noevents`` / ``filter`` / ``filter delete``.
- ``sendmsg UUID`` execute → ``+OK``, CHANNEL_EXECUTE, then CHANNEL_EXECUTE_COMPLETE with
  ``Application-UUID`` = the ``Event-UUID`` sent and ``Application-Response`` from
  ``fake.execute_results``; ``-ERR invalid session id [UUID]`` for a channel it does not know.
  ``sendmsg UUID`` hangup → CHANNEL_HANGUP_COMPLETE. A ``bridge`` completion carries
  ``variable_originate_disposition``: the next of ``fake.bridge_outcomes[uuid]``, else SUCCESS.
- ``api sched_del UUID`` → ``+OK Deleted: N``; ``api uuid_setvar_multi UUID a=b;c=d`` sets the
  parked channel's variables (split as FreeSWITCH does) and lists them in ``fake.setvars``.
- ``exit`` → ``+OK bye`` + disconnect notice + close.

API for tests:
- ``fake.received``: every command received (all connections), in order, without its
  terminating blank line (``"api reloadxml"``, ``"sendmsg <uuid>\\ncall-command: ..."``).
- ``fake.set_api_reply("reloadxml", "+OK [Success]\\n")``: body text, raw bytes of a whole
  message, or a callable ``f(command) -> str``. ``fake.set_reloadxml("M1")`` picks a recorded
  reloadxml reply by its case label (``fake.reloadxml_cases``: G0, M1 ... M11, G1).
- ``fake.execute_results["playback"] = "FILE NOT FOUND"`` or a callable
  ``f(uuid, app, arg) -> str | None`` (None: never completes, like a long bridge).
  Default: ``FILE PLAYED`` for playback, ``_none_`` otherwise. ``fake.executions`` lists
  ``(uuid, app, arg, application_uuid)``. ``fake.execute_delay`` seconds before COMPLETE.
- ``fake.park_call(uuid=None, headers=None) -> uuid``: a recorded CHANNEL_PARK with another
  Unique-ID (and header overrides, e.g. ``{"Caller-Destination-Number": "102"}``); the call
  becomes known for sendmsg/uuid_kill. ``fake.hangup_call(uuid, cause)``.
- ``fake.inject_event(headers, body="")``: any event; ``fake.inject_recorded(name, ...)``.
- faults: ``fake.fault(kind, on=None, count=1, **params)`` applies to the next ``count``
  commands starting with ``on`` (None: any command after auth; count None: until
  ``fake.clear_faults()``; "silent" defaults to count None, the others to 1). Kinds: ``"drop"`` (close the socket, no reply), ``"silent"``
  (never reply), ``"truncate"`` (send half of the reply then stall), ``"delay"``
  (``seconds=``), ``"events_first"`` (an API and a PRIVATE_COMMAND event before the reply,
  to subscribed connections), ``"malformed"`` (a reply with a bad Content-Length).
  ``fake.slow(delay)`` delivers every byte one at a time (``fake.slow(None)`` to stop).
  ``fake.restart(down=0.2, notice=False)``: close every connection, refuse connects for
  ``down`` seconds, accept again on the same port.
- waiting (gevent-friendly): ``fake.wait_for_command(prefix, timeout)``,
  ``fake.wait_connections(n, timeout)``, ``fake.wait_subscribed(timeout)``.
- ``fake.send_heartbeat()`` sends the recorded HEARTBEAT event;
  ``fake.send_disconnect_notice(close=False)`` the recorded disconnect notice;
  ``fake.send_raw(bytes)`` anything else.
- ``fake.hold_jobs = True`` holds BACKGROUND_JOB events; ``fake.release_jobs(reverse=True)``
  sends them (out of order, to prove matching by Job-UUID).
"""

from __future__ import annotations

import functools
import json
import queue
import re
import socket
import threading
import time
import uuid as uuidlib
from urllib.parse import unquote

from tests.fakes import captures
from tests.fakes.callcenter import FakeCallcenter

__all__ = ["FakeFreeSWITCH", "KNOWN_EVENTS", "url_encode"]

PLAIN_CALL = "esl_events_plain_call.txt"
IDLE = "esl_api_replies_idle.txt"
RELOADXML = "esl_reloadxml_errors.txt"
AUTH_FAIL = "esl_auth_fail.txt"
AUTH_OK = "esl_auth_ok_exit.txt"

_UNSET = object()

# switch_event.c EVENT_NAMES (what "event plain" accepts; anything else is ignored).
KNOWN_EVENTS = frozenset(
    """
CUSTOM CLONE CHANNEL_CREATE CHANNEL_DESTROY CHANNEL_STATE CHANNEL_CALLSTATE CHANNEL_ANSWER
CHANNEL_HANGUP CHANNEL_HANGUP_COMPLETE CHANNEL_EXECUTE CHANNEL_EXECUTE_COMPLETE CHANNEL_HOLD
CHANNEL_UNHOLD CHANNEL_BRIDGE CHANNEL_UNBRIDGE CHANNEL_PROGRESS CHANNEL_PROGRESS_MEDIA
CHANNEL_OUTGOING CHANNEL_PARK CHANNEL_UNPARK CHANNEL_APPLICATION CHANNEL_ORIGINATE CHANNEL_UUID
API LOG INBOUND_CHAN OUTBOUND_CHAN STARTUP SHUTDOWN PUBLISH UNPUBLISH TALK NOTALK SESSION_CRASH
MODULE_LOAD MODULE_UNLOAD DTMF MESSAGE PRESENCE_IN NOTIFY_IN PRESENCE_OUT PRESENCE_PROBE
MESSAGE_WAITING MESSAGE_QUERY ROSTER CODEC BACKGROUND_JOB DETECTED_SPEECH DETECTED_TONE
PRIVATE_COMMAND HEARTBEAT TRAP ADD_SCHEDULE DEL_SCHEDULE EXE_SCHEDULE RE_SCHEDULE RELOADXML
NOTIFY PHONE_FEATURE PHONE_FEATURE_SUBSCRIBE SEND_MESSAGE RECV_MESSAGE REQUEST_PARAMS
CHANNEL_DATA GENERAL COMMAND SESSION_HEARTBEAT CLIENT_DISCONNECTED SERVER_DISCONNECTED
SEND_INFO RECV_INFO RECV_RTCP_MESSAGE SEND_RTCP_MESSAGE CALL_SECURE NAT RECORD_START RECORD_STOP
PLAYBACK_START PLAYBACK_STOP CALL_UPDATE FAILURE SOCKET_DATA MEDIA_BUG_START MEDIA_BUG_STOP
CONFERENCE_DATA_QUERY CONFERENCE_DATA CALL_SETUP_REQ CALL_SETUP_RESULT CALL_DETAIL DEVICE_STATE
TEXT SHUTDOWN_REQUESTED ALL
""".split()
)

# switch_utils.c switch_url_encode: these and every byte outside printable ASCII are escaped.
_URL_UNSAFE = set(b'\r\n #%&+:;<=>?@[\\]^`{|}"')
# byte -> its encoding, for str.translate over the UTF-8 bytes read as latin-1 (one char per byte).
_URL_TABLE = {b: "%%%02X" % b if b in _URL_UNSAFE or b < 0x20 or b > 0x7E else chr(b) for b in range(256)}


def separate_setvar_multi(assignments: str) -> list[tuple[str, str]]:
    """`a=b;c=d` split as mod_commands' uuid_setvar_multi does (switch_separate_string on `;`)."""
    from tests.fakes.separate_string import separate_string_char_delim

    pairs = []
    for part in separate_string_char_delim(assignments.strip(), ";", 64):
        name, _, value = part.partition("=")
        pairs.append((name, value))
    return pairs


def url_encode(value: str) -> str:
    """Encode a header value the way FreeSWITCH serialises plain events."""
    return str(value).encode("utf-8").decode("latin-1").translate(_URL_TABLE)


def _sleep(seconds: float) -> None:
    try:
        import gevent

        gevent.sleep(seconds)
    except ImportError:  # pragma: no cover - the project always has gevent
        time.sleep(seconds)


def _api_message(body: str | bytes) -> bytes:
    data = body.encode("utf-8") if isinstance(body, str) else body
    return b"Content-Type: api/response\nContent-Length: %d\n\n" % len(data) + data


def _reply_message(text: str) -> bytes:
    return ("Content-Type: command/reply\nReply-Text: %s\n\n" % text).encode("utf-8")


def _api_body(message: bytes) -> bytes:
    return message.split(b"\n\n", 1)[1]


class PlainEvent:
    """A recorded plain event as an ordered list of (name, encoded value) plus its own body.

    The pairs are tuples: a fake that keeps thousands of calls (the service benchmark) then
    holds one list per event for the garbage collector to scan, not one per header.
    """

    def __init__(self, record_body: bytes) -> None:
        block, _, rest = record_body.partition(b"\n\n")
        self.lines: list[tuple[str, str]] = []
        for line in block.decode("utf-8").split("\n"):
            name, _, value = line.partition(": ")
            self.lines.append((name, value))
        self.body = b""
        if any(n == "Content-Length" for n, _ in self.lines):
            self.lines = [ln for ln in self.lines if ln[0] != "Content-Length"]
            self.body = rest

    @classmethod
    def from_headers(cls, headers: dict, body: str | bytes = b"") -> "PlainEvent":
        """Build an event from decoded header values."""
        ev = cls.__new__(cls)
        ev.lines = [(str(k), url_encode(v)) for k, v in headers.items()]
        ev.body = body.encode("utf-8") if isinstance(body, str) else body
        return ev

    def copy(self) -> "PlainEvent":
        """A copy (the pairs are immutable)."""
        ev = PlainEvent.__new__(PlainEvent)
        ev.lines = list(self.lines)
        ev.body = self.body
        return ev

    def frozen(self) -> "PlainEvent":
        """A copy to keep: its pairs in one tuple, which the garbage collector stops scanning."""
        ev = self.copy()
        ev.lines = tuple(self.lines)
        return ev

    def get(self, name: str, default=None):
        """The decoded value of ``name``."""
        for n, v in self.lines:
            if n == name:
                return unquote(v)
        return default

    @property
    def name(self) -> str:
        """Event-Name."""
        return self.get("Event-Name", "")

    def set(self, name: str, value: str) -> "PlainEvent":
        """Set (or append) header ``name`` to the decoded ``value``."""
        enc = url_encode(value)
        for i, line in enumerate(self.lines):
            if line[0] == name:
                self.lines[i] = (name, enc)
                return self
        self.lines.append((name, enc))
        return self

    def derive(self, old: str, new: str, values: dict) -> "PlainEvent":
        """A copy with ``replace_everywhere(old, new)`` then ``set`` of each value, in one pass."""
        encoded = {name: url_encode(value) for name, value in values.items()}
        ev = PlainEvent.__new__(PlainEvent)
        ev.lines = [(n, encoded.pop(n)) if n in encoded else (n, v.replace(old, new)) for n, v in self.lines]
        ev.lines.extend(encoded.items())
        ev.body = self.body.replace(old.encode(), new.encode())
        return ev

    def replace_everywhere(self, old: str, new: str) -> "PlainEvent":
        """Replace a string (e.g. the recorded call uuid) in every value and the body."""
        self.lines = [(n, v.replace(old, new)) for n, v in self.lines]
        self.body = self.body.replace(old.encode(), new.encode())
        return self

    def plain_body(self) -> bytes:
        """The text/event-plain body as FreeSWITCH serialises it."""
        text = "".join([f"{n}: {v}\n" for n, v in self.lines]).encode("utf-8")
        if self.body:
            return text + b"Content-Length: %d\n\n" % len(self.body) + self.body
        return text + b"\n"

    def wire(self, fmt: str = "plain") -> bytes:
        """The whole message for a connection subscribed in ``fmt`` (plain or json)."""
        if fmt == "json":
            obj = {n: unquote(v) for n, v in self.lines}
            if self.body:
                obj["Content-Length"] = str(len(self.body))
                obj["_body"] = self.body.decode("utf-8", "replace")
            data = json.dumps(obj, separators=(",", ":")).encode("utf-8")
            ctype = b"text/event-json"
        else:
            data = self.plain_body()
            ctype = b"text/event-plain"
        return b"Content-Length: %d\nContent-Type: %s\n\n" % (len(data), ctype) + data


class _Templates:
    """Recorded messages the fake answers with (loaded once)."""

    def __init__(self) -> None:
        fail, ok, idle = captures.load(AUTH_FAIL), captures.load(AUTH_OK), captures.load(IDLE)
        call = captures.load(PLAIN_CALL)
        self.greeting = fail.recvs[0].data
        self.not_found = fail.recvs[1].data  # -ERR command not found
        self.invalid = fail.recvs[2].data  # -ERR invalid
        self.disconnect = fail.recvs[3].data  # text/disconnect-notice
        self.accepted = ok.recvs[1].data
        self.bye = ok.recvs[2].data
        self.api_replies: dict = {}
        self.replies: dict = {}  # non-api command → recorded reply
        for send, recvs in idle.exchanges() + captures.load(RELOADXML).exchanges():
            cmd = send.command
            if not recvs:
                continue
            first = recvs[0]
            if cmd.startswith("api ") and first.content_type == "api/response":
                self.api_replies.setdefault(cmd[4:], first.data)
            elif not cmd.startswith(("api", "bgapi", "sendmsg", "auth")):
                self.replies.setdefault(cmd, first.data)
        self.no_channel = _api_body(self.api_replies["uuid_kill 00000000-0000-0000-0000-000000000000"])
        self.unknown_api = _api_body(self.api_replies["this_command_does_not_exist foo bar"])
        # bgapi: the caller-chosen Job-UUID exchange (command/reply + BACKGROUND_JOB).
        send, recvs = next((s, r) for s, r in idle.exchanges() if "Job-UUID:" in s.command)
        self.job_uuid = send.command.split("Job-UUID: ")[1].strip()
        self.bgapi_reply = recvs[0].data
        self.background_job = PlainEvent(recvs[1].body)
        self.sendmsg_ok = next(
            r
            for s, rs in call.exchanges()
            if s.command.startswith("sendmsg")
            for r in rs
            if r.content_type == "command/reply"
        ).data
        self.invalid_session = next(rs[0].data for s, rs in idle.exchanges() if s.command.startswith("sendmsg"))
        self.enabled = {
            "plain": self.replies["event plain BACKGROUND_JOB"],
            "json": self.replies["event json BACKGROUND_JOB"],
        }
        self.no_keywords = self.replies["event plain NOSUCHEVENT"]
        self.nixed = self.replies["nixevent BACKGROUND_JOB"]
        self.noevents = self.replies["noevents"]
        # Recorded events used as templates, keyed by name (first occurrence).
        self.call_uuid = "5b3085ff-48ea-4cdb-b16f-79982ccc7b1e"
        self.events: dict = {}
        for rec in call.events():
            self.events.setdefault(rec.event_name, PlainEvent(rec.body))
        # The playback execution (Application-UUID aaaaaaaa-...-0001) as templates.
        pb = [r for r in call.events() if b"aaaaaaaa-0000-4000-8000-000000000001" in r.body]
        self.execute = PlainEvent(next(r.body for r in pb if r.event_name == "CHANNEL_EXECUTE"))
        self.execute_complete = PlainEvent(next(r.body for r in pb if r.event_name == "CHANNEL_EXECUTE_COMPLETE"))
        self.private_command = self.events["PRIVATE_COMMAND"]
        reload_cap = captures.load(RELOADXML)
        self.reloadxml_event = PlainEvent(reload_cap.events("RELOADXML")[0].body)
        self.reloadxml_cases: dict = {}
        label = None
        for rec in reload_cap.records:
            if rec.kind == "note":
                m = re.match(r"CASE (\S+)", rec.text)
                label = m.group(1) if m else label
            elif (
                rec.kind == "recv"
                and label
                and rec.content_type == "api/response"
                and rec.body.startswith(b"+OK [")
                and label not in self.reloadxml_cases
            ):
                self.reloadxml_cases[label] = rec.data


@functools.lru_cache(maxsize=None)
def _recorded(capture: str, name: str, index: int) -> PlainEvent:
    """The ``index``-th recorded event ``name`` of a capture, parsed once (copy before changing it)."""
    recs = captures.load(capture).events(name)
    if not recs:
        raise KeyError(f"no {name} event in {capture}")
    return PlainEvent(recs[index].body)


_TEMPLATES: _Templates | None = None


def templates() -> _Templates:
    """The recorded templates (parsed on first use)."""
    global _TEMPLATES
    if _TEMPLATES is None:
        _TEMPLATES = _Templates()
    return _TEMPLATES


class _Conn:
    """One client connection: a reader thread parsing commands, a writer thread sending bytes.

    Bytes go straight to the socket from the thread that produces them when nothing is queued
    and the socket takes them without blocking (as FreeSWITCH writes from the thread at hand);
    otherwise they queue for the writer thread, in order. A hand-off to the writer would cost
    every message a thread switch under the GIL, which the service benchmark would measure as
    the service's latency.
    """

    def __init__(self, fake: "FakeFreeSWITCH", sock: socket.socket) -> None:
        self.fake = fake
        self.sock = sock
        self.authed = False
        self.fmt: str | None = None
        self.all_events = False
        self.events: set = set()
        self.subclasses: set = set()
        self.filters: list = []
        self.stalled = False
        self.closed = False
        self.out: queue.Queue = queue.Queue()
        self._out_lock = threading.Lock()
        self._queued = 0  # items put in `out` and not yet written (sends go through it meanwhile)
        self.reader = threading.Thread(target=self._read_loop, daemon=True, name="fakefs-read")
        self.writer = threading.Thread(target=self._write_loop, daemon=True, name="fakefs-write")

    def start(self) -> None:
        """Start the writer, greet, start the reader."""
        self.writer.start()
        self.send(templates().greeting)
        self.reader.start()

    # ------------------------------------------------------------ output
    def send(self, data: bytes) -> None:
        """Send bytes to the client in order (dropped once closed or stalled)."""
        if self.closed or self.stalled:
            return
        with self._out_lock:
            if not self._queued and self.fake._slow is None:
                try:
                    sent = self.sock.send(data, socket.MSG_DONTWAIT)
                except BlockingIOError:
                    sent = 0
                except OSError:
                    sent = 0  # the writer meets the error again and closes
                if sent == len(data):
                    return
                data = data[sent:]
            self._enqueue(data)

    def _enqueue(self, data: bytes | None) -> None:
        self._queued += 1
        self.out.put(data)

    def close_after_output(self) -> None:
        """Close once everything queued so far is sent."""
        with self._out_lock:
            self._enqueue(None)

    def kill(self) -> None:
        """Close at once (no more output)."""
        self.closed = True
        with self._out_lock:
            self._enqueue(None)
        try:
            self.sock.shutdown(socket.SHUT_RDWR)
        except OSError:
            pass

    def _write_loop(self) -> None:
        while True:
            data = self.out.get()
            if data is None:
                break
            try:
                delay = self.fake._slow
                if delay is None:
                    self.sock.sendall(data)
                else:
                    for i in range(len(data)):
                        self.sock.sendall(data[i : i + 1])
                        if delay:
                            time.sleep(delay)
            except OSError:
                break
            with self._out_lock:
                self._queued -= 1
        self.closed = True
        try:
            self.sock.shutdown(socket.SHUT_RDWR)
        except OSError:
            pass
        self.sock.close()

    def wants(self, ev: PlainEvent) -> bool:
        """True when this connection subscribed to ``ev`` and its filters let it through."""
        if not self.authed or self.fmt is None or self.closed:
            return False
        name = ev.name
        if not (
            self.all_events or name in self.events or (name == "CUSTOM" and ev.get("Event-Subclass") in self.subclasses)
        ):
            return False
        for header, value in self.filters:
            if ev.get(header) != value:
                return False
        return True

    def send_event(self, ev: PlainEvent) -> None:
        """Send ``ev`` in the subscribed format if wanted."""
        if self.wants(ev):
            self.send(ev.wire(self.fmt))

    # ------------------------------------------------------------ input
    def _read_loop(self) -> None:
        buf = b""
        while not self.closed:
            try:
                chunk = self.sock.recv(65536)
            except OSError:
                break
            if not chunk:
                break
            buf += chunk
            while b"\n\n" in buf and not self.closed:
                raw, buf = buf.split(b"\n\n", 1)
                cmd = raw.decode("utf-8", "replace").strip("\r\n")
                if not cmd.strip():
                    continue
                self.fake._record(cmd)
                try:
                    self.handle(cmd)
                except Exception as exc:  # keep the fake alive, surface it to the test
                    self.fake.errors.append(f"{cmd!r}: {exc!r}")
        self.closed = True
        with self._out_lock:
            self._enqueue(None)

    def handle(self, cmd: str) -> None:
        """Answer one command (auth first, faults, then the normal reply)."""
        t = templates()
        fake = self.fake
        if self.stalled:
            return
        if not self.authed:
            if cmd.startswith("auth "):
                if cmd[5:].strip() == fake.password:
                    self.authed = True
                    self.send(t.accepted)
                else:
                    self.send(t.invalid)
                    self.send(t.disconnect)
                    self.close_after_output()
                    self.closed = True
            else:
                self.send(t.not_found)
            return
        fault = fake._take_fault(cmd)
        if fault is not None:
            kind = fault["kind"]
            if kind == "drop":
                self.kill()
                return
            if kind == "silent":
                return
            if kind == "delay":
                time.sleep(fault.get("seconds", 0.1))
            if kind == "malformed":
                self.send(b"Content-Type: api/response\nContent-Length: 12x\n\n")
                return
            if kind == "events_first":
                api_ev = t.events["API"].copy()
                verb, _, arg = cmd.partition(" ")
                api_ev.set("API-Command", arg.split(" ")[0] if verb in ("api", "bgapi") else verb)
                fake._broadcast(api_ev)
                fake._broadcast(t.private_command.copy())
        reply, after = self.respond(cmd)
        if fault is not None and fault["kind"] == "truncate" and reply:
            self.send(reply[: max(1, len(reply) // 2)])
            self.stalled = True
            return
        if reply:
            self.send(reply)
        for action in after:
            action()

    def respond(self, cmd: str):
        """Return (reply bytes, [actions to run after the reply])."""
        t = templates()
        fake = self.fake
        first_line, _, rest = cmd.partition("\n")
        headers = {}
        for line in rest.split("\n"):
            if ": " in line:
                k, _, v = line.partition(": ")
                headers[k.strip()] = v.strip()
        verb, _, arg = first_line.strip().partition(" ")
        arg = arg.strip()
        if verb == "exit":
            return t.bye, [lambda: self.send(t.disconnect), self.close_after_output]
        if verb == "api":
            if not arg:
                return t.not_found, []
            return fake._api(arg, self)
        if verb == "bgapi":
            if not arg:
                return t.not_found, []
            job = headers.get("Job-UUID") or str(uuidlib.uuid4())
            reply = t.bgapi_reply.replace(t.job_uuid.encode(), job.encode())
            return reply, [lambda: fake._background_job(job, arg)]
        if verb == "event":
            fmt, _, names = arg.partition(" ")
            if fmt not in ("plain", "json"):
                return t.not_found, []
            ok = False
            custom = False
            for name in names.split():
                if custom:
                    self.subclasses.add(name)
                    ok = True
                elif name == "CUSTOM":
                    custom = True
                    ok = True
                elif name == "ALL":
                    self.all_events = ok = True
                elif name in KNOWN_EVENTS:
                    self.events.add(name)
                    ok = True
            if not ok:
                return t.no_keywords, []
            self.fmt = fmt
            return t.enabled[fmt], []
        if verb == "nixevent":
            for name in arg.split():
                self.events.discard(name)
                self.subclasses.discard(name)
                if name == "ALL":
                    self.all_events = False
            return t.nixed, []
        if verb == "noevents":
            self.fmt = None
            self.events.clear()
            self.subclasses.clear()
            self.all_events = False
            return t.noevents, []
        if verb == "filter":
            parts = arg.split(" ", 2)
            if parts[0] == "delete" and len(parts) >= 2:
                value = parts[2] if len(parts) > 2 else ""
                self.filters = [f for f in self.filters if f[0] != parts[1] or (value and f[1] != value)]
                return _reply_message("+OK filter deleted. [%s][%s]" % (parts[1], value)), []
            if len(parts) >= 2:
                value = arg.split(" ", 1)[1]
                self.filters.append((parts[0], value))
                return _reply_message("+OK filter added. [%s]=[%s]" % (parts[0], value)), []
            return _reply_message("-ERR invalid syntax"), []
        if verb == "sendmsg":
            return fake._sendmsg(arg, headers)
        if verb == "linger":
            return _reply_message("+OK will linger"), []
        if verb == "nolinger":
            return _reply_message("+OK will not linger"), []
        return t.not_found, []


class FakeFreeSWITCH:
    """A scripted FreeSWITCH Event Socket on 127.0.0.1 (see the module docstring)."""

    def __init__(self, password: str = "ClueCon", *, host: str = "127.0.0.1", port: int = 0) -> None:
        t = templates()
        self.password = password
        self.host = host
        self.port = port
        self.received: list = []
        self.errors: list = []
        self.accepted = 0
        self.api_replies: dict = dict(t.api_replies)
        self.reloadxml_cases: dict = dict(t.reloadxml_cases)
        self.execute_results: dict = {}
        self.execute_delay = 0.0
        self.executions: list = []
        self.setvars: list = []  # (uuid, uuid_setvar_multi assignments) in order
        self.bridge_outcomes: dict = {}  # uuid -> originate_disposition of its successive bridges
        self.channels: dict = {}
        self.callcenter: FakeCallcenter | None = FakeCallcenter()
        self._faults: list = []
        self._slow: float | None = None
        self._conns: list = []
        self._lock = threading.RLock()
        self._listener: socket.socket | None = None
        self._running = False
        self._accepting = threading.Event()
        self._thread: threading.Thread | None = None
        self._timers: list = []
        self.hold_jobs = False
        self._held_jobs: list = []

    # ------------------------------------------------------------ life cycle
    def start(self) -> "FakeFreeSWITCH":
        """Listen (on a free port when port is 0) and accept connections in a thread."""
        self._listen()
        self._running = True
        self._thread = threading.Thread(target=self._accept_loop, daemon=True, name="fakefs-accept")
        self._thread.start()
        return self

    def stop(self) -> None:
        """Close every connection and the listening socket; join the threads."""
        self._running = False
        for timer in self._timers:
            timer.cancel()
        self._close_listener()
        for conn in self.connections:
            conn.kill()
        if self._thread:
            self._thread.join(2)
        for conn in list(self._all_conns()):
            conn.writer.join(2)
            conn.reader.join(2)

    def __enter__(self) -> "FakeFreeSWITCH":
        return self.start()

    def __exit__(self, *exc) -> None:
        self.stop()

    @property
    def address(self) -> tuple:
        """(host, port) to connect to."""
        return (self.host, self.port)

    @property
    def connections(self) -> list:
        """Live connections."""
        with self._lock:
            return [c for c in self._conns if not c.closed]

    def _all_conns(self):
        with self._lock:
            return list(self._conns)

    def _listen(self) -> None:
        sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        sock.bind((self.host, self.port))
        sock.listen(64)
        sock.settimeout(0.02)
        self.port = sock.getsockname()[1]
        self._listener = sock
        self._accepting.set()

    def _close_listener(self) -> None:
        self._accepting.clear()
        with self._lock:
            sock, self._listener = self._listener, None
        if sock is not None:
            try:  # on Linux this stops listening at once, even while accept() polls it
                sock.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass
            sock.close()

    def _accept_loop(self) -> None:
        while self._running:
            sock = self._listener
            if sock is None:
                time.sleep(0.005)
                continue
            try:
                client, _ = sock.accept()
            except (socket.timeout, OSError):
                continue
            client.settimeout(None)
            client.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
            conn = _Conn(self, client)
            with self._lock:
                self._conns.append(conn)
                self.accepted += 1
            conn.start()

    def _record(self, cmd: str) -> None:
        with self._lock:
            self.received.append(cmd)

    # ------------------------------------------------------------ scripting
    def set_api_reply(self, command: str, reply) -> None:
        """Script ``api COMMAND``: body text, a whole raw message (bytes), or f(command) -> str."""
        self.api_replies[command] = reply

    def set_reloadxml(self, case_or_body: str) -> None:
        """Script ``api reloadxml`` with a recorded case label ("G0", "M1"...) or a body text."""
        if case_or_body in self.reloadxml_cases:
            self.api_replies["reloadxml"] = self.reloadxml_cases[case_or_body]
        else:
            self.api_replies["reloadxml"] = case_or_body

    def fault(self, kind: str, on: str | None = None, count=_UNSET, **params) -> None:
        """Arm a fault for the next ``count`` commands starting with ``on`` (default 1; silent: all)."""
        if kind not in ("drop", "silent", "truncate", "delay", "events_first", "malformed"):
            raise ValueError(f"unknown fault {kind!r}")
        if count is _UNSET:
            count = None if kind == "silent" else 1
        with self._lock:
            self._faults.append(dict(params, kind=kind, on=on, count=count))

    def clear_faults(self) -> None:
        """Disarm every fault, stop slow delivery and release stalled connections' silence."""
        with self._lock:
            self._faults.clear()
        self._slow = None

    def slow(self, delay: float | None = 0.0) -> None:
        """Deliver every byte separately with ``delay`` seconds between bytes (None: normal)."""
        self._slow = delay

    def restart(self, down: float = 0.2, notice: bool = False) -> None:
        """Close all connections, refuse connects for ``down`` seconds, then accept again."""
        self._close_listener()
        for conn in self.connections:
            if notice:
                conn.send(templates().disconnect)
                conn.close_after_output()
                conn.closed = True
            else:
                conn.kill()

        def back() -> None:
            if self._running:
                self._listen()

        timer = threading.Timer(down, back)
        timer.daemon = True
        self._timers.append(timer)
        timer.start()

    def send_disconnect_notice(self, close: bool = False) -> None:
        """Send the recorded text/disconnect-notice to every connection (and close if asked)."""
        for conn in self.connections:
            conn.send(templates().disconnect)
            if close:
                conn.close_after_output()
                conn.closed = True

    def send_raw(self, data: bytes) -> None:
        """Send arbitrary bytes to every live connection (e.g. a recorded message)."""
        for conn in self.connections:
            conn.send(data)

    def drop_all(self) -> None:
        """Close every connection now (FreeSWITCH crashed or the network broke)."""
        for conn in self.connections:
            conn.kill()

    def _take_fault(self, cmd: str):
        with self._lock:
            for fault in self._faults:
                if fault["on"] is None or cmd.startswith(fault["on"]):
                    if fault["count"] is not None:
                        fault["count"] -= 1
                        if fault["count"] <= 0:
                            self._faults.remove(fault)
                    return fault
        return None

    # ------------------------------------------------------------ events
    def _broadcast(self, ev: PlainEvent) -> None:
        for conn in self.connections:
            conn.send_event(ev)

    def _subscribed(self, name: str) -> bool:
        """True when some connection may want events called ``name`` (before building one)."""
        return any(c.authed and c.fmt is not None and (c.all_events or name in c.events) for c in self.connections)

    def inject_event(self, headers: dict, body: str = "") -> None:
        """Send an event built from decoded headers (Event-Name required) to subscribers."""
        if "Event-Name" not in headers:
            raise ValueError("an event needs Event-Name")
        self._broadcast(PlainEvent.from_headers(headers, body))

    def recorded_event(self, name: str, *, capture: str = PLAIN_CALL, index: int = 0) -> PlainEvent:
        """A copy of the ``index``-th recorded event ``name`` of a capture."""
        return _recorded(capture, name, index).copy()

    def inject_recorded(
        self,
        name: str,
        *,
        uuid: str | None = None,
        headers: dict | None = None,
        capture: str = PLAIN_CALL,
        index: int = 0,
    ) -> str | None:
        """Replay a recorded event, its call uuid replaced by ``uuid``; return the Unique-ID."""
        ev = self.recorded_event(name, capture=capture, index=index)
        old = ev.get("Unique-ID")
        if uuid and old:
            ev.replace_everywhere(old, uuid)
        for key, value in (headers or {}).items():
            ev.set(key, value)
        self._broadcast(ev)
        return ev.get("Unique-ID")

    def park_call(self, uuid: str | None = None, headers: dict | None = None) -> str:
        """Hand a call to the service: a recorded CHANNEL_PARK with a new Unique-ID."""
        uuid = uuid or str(uuidlib.uuid4())
        ev = self.recorded_event("CHANNEL_PARK")
        ev.replace_everywhere(templates().call_uuid, uuid)
        for key, value in (headers or {}).items():
            ev.set(key, value)
        with self._lock:
            self.channels[uuid] = ev.frozen()
        self._broadcast(ev)
        return uuid

    def hangup_call(self, uuid: str, cause: str = "NORMAL_CLEARING", headers: dict | None = None) -> None:
        """End a known call: CHANNEL_HANGUP_COMPLETE with ``cause`` (and ``headers`` set over the capture's)."""
        with self._lock:
            self.channels.pop(uuid, None)
        ev = self.recorded_event("CHANNEL_HANGUP_COMPLETE")
        ev.replace_everywhere(templates().call_uuid, uuid)
        ev.set("Hangup-Cause", cause)
        ev.set("variable_hangup_cause", cause)
        for name, value in (headers or {}).items():
            ev.set(name, value)
        self._broadcast(ev)

    def send_heartbeat(self) -> None:
        """Send the recorded HEARTBEAT event to subscribers."""
        self._broadcast(self.recorded_event("HEARTBEAT"))

    # ------------------------------------------------------------ commands
    def _api_result(self, command: str) -> bytes:
        """The whole api/response message for ``command`` (without side effects)."""
        t = templates()
        reply = self.api_replies.get(command)
        if reply is None:
            verb, _, arg = command.partition(" ")
            args = arg.split()
            if verb == "uuid_kill":
                if args and args[0] in self.channels:
                    return _api_message("+OK\n")
                return _api_message(t.no_channel)
            if verb == "sched_del":  # (mod_commands: deletes the task group, +OK even when none)
                return _api_message("+OK Deleted: %d\n" % (1 if args and args[0] in self.channels else 0))
            if verb == "uuid_setvar_multi":
                if not args or args[0] not in self.channels:
                    return _api_message(t.no_channel)
                return _api_message("+OK")
            if verb == "uuid_getvar":
                ev = self.channels.get(args[0]) if args else None
                if ev is None:
                    return _api_message(t.no_channel)
                return _api_message(ev.get("variable_" + (args[1] if len(args) > 1 else ""), "_undef_"))
            if verb == "reloadxml":
                return self.reloadxml_cases["G0"]
            if verb == "callcenter_config" and self.callcenter is not None:
                with self._lock:
                    return _api_message(self.callcenter.api(arg))
            return _api_message(t.unknown_api.replace(b"this_command_does_not_exist", verb.encode()))
        if callable(reply):
            reply = reply(command)
        if isinstance(reply, bytes):
            return reply
        return _api_message(reply)

    def _api(self, command: str, conn: _Conn):
        message = self._api_result(command)
        after = []
        verb, _, arg = command.partition(" ")
        if verb == "uuid_kill" and arg.split() and arg.split()[0] in self.channels:
            after.append(lambda: self.hangup_call(arg.split()[0], "NORMAL_CLEARING"))
        if verb == "uuid_setvar_multi" and _api_body(message).startswith(b"+OK"):
            uuid, _, assignments = arg.partition(" ")
            with self._lock:
                self.setvars.append((uuid, assignments))
            ev = self.channels.get(uuid)
            if ev is not None:
                ev = ev.copy()
                for name, value in separate_setvar_multi(assignments):
                    ev.set("variable_" + name, value)
                self.channels[uuid] = ev.frozen()
        if verb == "reloadxml" and _api_body(message).startswith(b"+OK [Success]"):
            # FACTS.md: RELOADXML fires only on success.
            after.append(lambda: self._broadcast(templates().reloadxml_event.copy()))
        return message, after

    def release_jobs(self, reverse: bool = False) -> int:
        """Send the BACKGROUND_JOB events held while ``hold_jobs`` was set; return how many."""
        with self._lock:
            held, self._held_jobs = self._held_jobs, []
        for job, command in reversed(held) if reverse else held:
            self._background_job(job, command, hold=False)
        return len(held)

    def _background_job(self, job: str, command: str, hold: bool | None = None) -> None:
        if self.hold_jobs if hold is None else hold:
            with self._lock:
                self._held_jobs.append((job, command))
            return
        result = _api_body(self._api_result(command))
        ev = templates().background_job.copy()
        verb, _, arg = command.partition(" ")
        ev.set("Job-UUID", job)
        ev.set("Job-Command", verb)
        ev.lines = [ln for ln in ev.lines if ln[0] != "Job-Command-Arg"]
        if arg:
            ev.set("Job-Command-Arg", arg)
        ev.body = result
        self._broadcast(ev)

    def _sendmsg(self, uuid: str, headers: dict):
        t = templates()
        if uuid not in self.channels:
            return t.invalid_session.replace(b"00000000-0000-0000-0000-000000000000", uuid.encode()), []
        command = headers.get("call-command", "")
        if command == "hangup":
            return t.sendmsg_ok, [lambda: self.hangup_call(uuid, headers.get("hangup-cause", "NORMAL_CLEARING"))]
        if command != "execute":
            return t.sendmsg_ok, []
        app = headers.get("execute-app-name", "")
        arg = headers.get("execute-app-arg", "")
        app_uuid = headers.get("Event-UUID") or str(uuidlib.uuid4())
        with self._lock:
            self.executions.append((uuid, app, arg, app_uuid))

        def make(template: PlainEvent, **more) -> PlainEvent:
            return template.derive(
                t.call_uuid, uuid, {"Application": app, "Application-Data": arg, "Application-UUID": app_uuid, **more}
            )

        def run() -> None:
            if self._subscribed("CHANNEL_EXECUTE"):
                self._broadcast(make(t.execute))
            result = self.execute_results.get(app, "FILE PLAYED" if app == "playback" else "_none_")
            if callable(result):
                result = result(uuid, app, arg)
            if result is None:
                return  # never completes (a bridge that lasts)
            more = {"Application-Response": result, "variable_current_application_response": result}
            if app == "bridge":
                # The completion carries the channel's variables: a bridge's outcome among them.
                outcomes = self.bridge_outcomes.get(uuid)
                more["variable_originate_disposition"] = outcomes.pop(0) if outcomes else "SUCCESS"
            done = make(t.execute_complete, **more)
            if self.execute_delay:
                timer = threading.Timer(self.execute_delay, self._broadcast, (done,))
                timer.daemon = True
                self._timers.append(timer)
                timer.start()
            else:
                self._broadcast(done)

        return t.sendmsg_ok, [run]

    # ------------------------------------------------------------ waiting (gevent friendly)
    def wait_for(self, predicate, timeout: float = 2.0, what: str = "condition"):
        """Poll ``predicate()`` until truthy (returned), else AssertionError naming ``what`` (text or callable)."""
        deadline = time.monotonic() + timeout
        while True:
            value = predicate()
            if value:
                return value
            if time.monotonic() > deadline:
                raise AssertionError(f"fake FreeSWITCH: timed out waiting for {what() if callable(what) else what}")
            _sleep(0.002)

    def wait_for_command(self, prefix: str, timeout: float = 2.0, start: int = 0) -> str:
        """Wait until a command starting with ``prefix`` was received; return it."""

        def find():
            with self._lock:
                return next((c for c in self.received[start:] if c.startswith(prefix)), None)

        return self.wait_for(find, timeout, f"a command starting with {prefix!r}")

    def wait_connections(self, n: int = 1, timeout: float = 2.0) -> None:
        """Wait until ``n`` connections are live."""
        self.wait_for(lambda: len(self.connections) >= n, timeout, f"{n} connection(s)")

    def wait_subscribed(self, timeout: float = 2.0) -> None:
        """Wait until some live connection has subscribed to events."""
        self.wait_for(lambda: any(c.fmt for c in self.connections), timeout, "an event subscription")
