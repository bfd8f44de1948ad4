"""The one FreeSWITCH Event Socket wrapper of fsctl (the only module that imports greenswitch).

Design. greenswitch 0.0.19 is the transport and nothing more: ``_Transport`` subclasses its
``InboundESL`` and keeps its socket attributes (host, port, password, sock, connected), but
replaces every part FACTS.md ("The greenswitch client") shows to be unsafe:

- ``connect`` is bounded by ``timeout`` (greenswitch waits for the greeting forever);
- its receive loop (``receive_events``) is replaced by ``recv`` + ``eslproto.Reader``: a
  truncated body simply waits for more bytes inside a cooperative ``recv`` (greenswitch's
  reader spins and freezes the hub); events are parsed header by header;
- ``send`` is replaced: every write and every wait for a reply is bounded by a timeout, and a
  lost connection fails every waiter with EslUnreachableError (greenswitch blocks forever);
- handlers do not run one after another in one greenlet: each (event, handler) pair gets its
  own greenlet from a bounded pool, fed from a bounded queue that drops the oldest event.

Matching (FACTS.md "Event Socket"): replies (``command/reply``, ``api/response``) are matched
to commands strictly in order, and events are never taken for replies even when they arrive
first (API, PRIVATE_COMMAND); ``bgapi`` is matched by the Job-UUID we choose; ``execute`` by
the ``Event-UUID`` we choose, which FreeSWITCH returns as ``Application-UUID`` in
CHANNEL_EXECUTE_COMPLETE. Matching happens in the reader, before the handler queue, so a
slow consumer can never make a command miss its own completion.

Supervision: with ``reconnect=True`` a supervisor greenlet reconnects with exponential
backoff and jitter after a drop or a FreeSWITCH restart, authenticates and re-subscribes; while
it does, commands wait for the connection up to their timeout, then raise
EslUnreachableError. When idle for ``heartbeat`` seconds it sends a probe (``api status``); a
probe without a reply drops the connection. HEARTBEAT is always subscribed so that
``healthy()`` can tell a silent FreeSWITCH from a quiet one.

Threads: a gevent socket belongs to the hub of the OS thread that created it; greenswitch hangs
when called from another thread. Every public method checks the caller's OS thread and raises
EslThreadError (an EslError) instead.

Why one module of ~650 lines: the transport, the reply matching, the handler pool and the
supervisor share one connection state and its locks; split, each part would reach into the
others' internals.
"""

from __future__ import annotations

import collections
import logging
import random
import time
import uuid as uuidlib

import gevent
import gevent.event
import gevent.lock
import gevent.monkey
import gevent.pool
import greenswitch.esl as _greenswitch

from . import eslproto
from .eslproto import Event, Message

__all__ = [
    "EslError",
    "EslUnreachableError",
    "EslAuthError",
    "EslTimeoutError",
    "EslCommandError",
    "EslThreadError",
    "EventSocket",
    "Event",
    "Reply",
]

DEFAULT_EVENTS = ("CHANNEL_PARK", "CHANNEL_EXECUTE_COMPLETE", "CHANNEL_HANGUP_COMPLETE", "BACKGROUND_JOB")
# Needed by bgapi(), execute() and healthy() whatever the caller subscribes to.
_REQUIRED_EVENTS = ("BACKGROUND_JOB", "CHANNEL_EXECUTE_COMPLETE", "HEARTBEAT")

# The real OS thread id, even if someone monkey-patched threading.
_os_thread_id = gevent.monkey.get_original("_thread", "get_ident")


class EslError(Exception):
    """Base class of every Event Socket error."""


class EslUnreachableError(EslError):
    """Cannot connect, or the connection was lost and not back within the timeout."""


class EslAuthError(EslError):
    """FreeSWITCH refused the password (``-ERR invalid``)."""


class EslTimeoutError(EslError):
    """A command got no reply (or no completion) in time."""


class EslCommandError(EslError):
    """FreeSWITCH answered ``-ERR ...``; ``.reply`` holds the text verbatim."""

    def __init__(self, reply: str, command: str = "") -> None:
        super().__init__(f"{command.split(chr(10))[0]!s}: {reply.strip()}" if command else reply.strip())
        self.reply = reply
        self.command = command


class EslThreadError(EslError):
    """The EventSocket was called from an OS thread other than the one that created it."""


class _Transport(_greenswitch.InboundESL):
    """greenswitch's InboundESL used as a socket owner only (see the module docstring)."""

    def open(self) -> None:
        """Open the TCP connection, bounded by ``self.timeout``."""
        self.sock = _greenswitch.socket.create_connection((self.host, self.port), timeout=self.timeout)
        self.sock.settimeout(None)
        # Commands are small and each one waits for its reply: with Nagle's algorithm a command
        # written while an earlier one is unacknowledged waits for that ACK (up to the peer's
        # delayed-ACK timer, 40 ms on Linux) before it leaves.
        self.sock.setsockopt(_greenswitch.socket.IPPROTO_TCP, _greenswitch.socket.TCP_NODELAY, 1)
        self.connected = True

    def connect(self):
        """Disabled: greenswitch's version waits for the greeting without a timeout."""
        raise NotImplementedError("use EventSocket.connect()")

    def send(self, data):
        """Disabled: greenswitch's version has no timeout (FACTS.md)."""
        raise NotImplementedError("use EventSocket commands")

    def receive_events(self):
        """Disabled: greenswitch's reader freezes the hub on a truncated body (FACTS.md)."""
        raise NotImplementedError("EventSocket reads with eslproto.Reader")

    def stop(self) -> None:
        """Close the socket without greenswitch's blocking ``exit``."""
        self.connected = False
        sock = getattr(self, "sock", None)
        if sock is not None:
            try:
                sock.close()
            except OSError:
                pass


class _Session:
    """One authenticated connection: its transport, reader greenlet and reply FIFO."""

    def __init__(self, transport: _Transport) -> None:
        self.transport = transport
        self.pending: collections.deque = collections.deque()  # [AsyncResult, deadline]
        self.write_lock = gevent.lock.Semaphore()
        self.greeting = gevent.event.Event()
        self.lost = gevent.event.Event()
        self.reason = ""
        self.ready = False
        self.dead = False
        self.notice = False
        self.last_rx = time.monotonic()
        self.reader: gevent.Greenlet | None = None


class Reply:
    """The reply to a command written by ``execute_pipelined``, awaited when needed."""

    def __init__(self, esl: "EventSocket", wire: str, result, deadline: float, what: str) -> None:
        self._esl, self._wire, self._result, self._deadline, self._what = esl, wire, result, deadline, what

    def wait(self) -> str:
        """Wait for the reply (bounded by the command's timeout); its text; EslCommandError on ``-ERR``."""
        msg = self._esl._wait(self._result, self._deadline, self._what)
        text = msg.body if msg.content_type == "api/response" else msg.reply_text
        if text.startswith("-ERR"):
            raise EslCommandError(text, self._wire.strip())
        return text


class EventSocket:
    """A supervised FreeSWITCH inbound Event Socket connection (see the module docstring)."""

    def __init__(
        self,
        host="127.0.0.1",
        port=8021,
        password="ClueCon",
        *,
        timeout=5.0,
        events=DEFAULT_EVENTS,
        reconnect=True,
        backoff=(0.1, 5.0),
        max_queue=10000,
        logger=None,
        heartbeat=20.0,
        max_handlers=10000,
    ) -> None:
        self.host = host
        self.port = port
        self.password = password
        self.timeout = float(timeout)
        self.reconnect = reconnect
        self.backoff = (float(backoff[0]), float(backoff[1]))
        self.max_queue = int(max_queue)
        self.heartbeat = float(heartbeat)
        self.log = logger or logging.getLogger("fs_scripts.esl")
        #: events dropped because the handler queue was full
        self.dropped = 0
        #: events not parsed because no handler and no command waited for them
        self.unparsed = 0
        #: successful (re)connections so far
        self.connections = 0
        self._events = [e for e in (events or ()) if e]
        self._base_events = tuple(self._events)
        self._thread = _os_thread_id()
        self._handlers: dict = {}
        self._queue: collections.deque = collections.deque()
        self._queue_ready = gevent.event.Event()
        self._pool = gevent.pool.Pool(max_handlers)
        self._dispatcher: gevent.Greenlet | None = None
        self._supervisor: gevent.Greenlet | None = None
        self._session: _Session | None = None
        self._connected = gevent.event.Event()
        self._closed = gevent.event.Event()
        self._jobs: dict = {}  # Job-UUID -> (session, AsyncResult)
        self._executions: dict = {}  # Application-UUID -> (session, AsyncResult)
        self._last_drop_log = 0.0

    # ------------------------------------------------------------------ public API
    def connect(self) -> None:
        """Connect, authenticate and subscribe; raise EslUnreachableError or EslAuthError."""
        self._check_thread()
        self._closed.clear()
        if self._alive():
            return
        self._install(self._open_session())
        if self.reconnect and not self._supervisor:
            self._supervisor = gevent.spawn(self._supervise)

    def close(self) -> None:
        """Close the connection, stop supervision, fail every pending command."""
        self._check_thread()
        self._closed.set()
        current = gevent.getcurrent()
        for greenlet in (self._supervisor, self._dispatcher):
            if greenlet is not None and greenlet is not current:
                greenlet.kill(block=False)
        self._supervisor = self._dispatcher = None
        if self._session is not None:
            self._lose(self._session, "closed by the application")
        self._queue.clear()
        self._pool.kill(block=False)

    def api(self, command: str, timeout: float | None = None) -> str:
        """Run ``api COMMAND``; return the body verbatim; EslCommandError on ``-ERR``."""
        self._check_thread()
        wire = eslproto.api(command)
        msg = self._command(wire, self._timeout(timeout))
        text = msg.body if msg.content_type == "api/response" else msg.reply_text
        if text.startswith("-ERR"):
            raise EslCommandError(text, wire.strip())
        return text

    def bgapi(self, command: str, timeout: float | None = None) -> str:
        """Run ``bgapi COMMAND`` with our own Job-UUID; return the BACKGROUND_JOB body."""
        self._check_thread()
        limit = self._timeout(timeout)
        deadline = time.monotonic() + limit
        job = str(uuidlib.uuid4())
        wire = eslproto.bgapi(command, job)
        session = self._wait_session(deadline)
        result = gevent.event.AsyncResult()
        # Registered before sending: the event may overtake the reply (FACTS.md "Event Socket").
        self._jobs[job] = (session, result)
        try:
            msg = self._command(wire, limit, session=session, deadline=deadline)
            if msg.reply_text.startswith("-ERR"):
                raise EslCommandError(msg.reply_text, wire.strip())
            event = self._wait(result, deadline, f"bgapi {command!r} (Job-UUID {job})")
        finally:
            self._jobs.pop(job, None)
        if event.body.startswith("-ERR"):
            raise EslCommandError(event.body, wire.strip())
        return event.body

    def execute(self, uuid: str, app: str, arg: str = "", timeout: float | None = None, wait: bool = True) -> str:
        """Execute an app on a channel (sendmsg, event-lock); return its Application-Response.

        ``wait=False`` returns once FreeSWITCH accepted the message (``+OK``), without waiting
        for the completion: with event-lock the channel runs its queued apps in order, so
        instant apps (``set``, ``sched_cancel``) need not cost a completion round trip each.
        """
        # timeout=None waits for the completion as long as the connection lives (a bridge can
        # last an hour); the sendmsg reply itself is still bounded by self.timeout.
        self._check_thread()
        app_uuid = str(uuidlib.uuid4())
        wire = eslproto.sendmsg_execute(uuid, app, arg, event_uuid=app_uuid, event_lock=True)
        now = time.monotonic()
        if not wait:
            msg = self._command(wire, self.timeout if timeout is None else float(timeout))
            if msg.reply_text.startswith("-ERR"):
                raise EslCommandError(msg.reply_text, wire.strip())
            return ""
        return self._execute(uuid, app, arg, timeout, app_uuid, wire, now).get("Application-Response", "")

    def _execute(self, uuid, app, arg, timeout, app_uuid=None, wire=None, now=None) -> Event:
        if app_uuid is None:
            self._check_thread()
            app_uuid = str(uuidlib.uuid4())
            wire = eslproto.sendmsg_execute(uuid, app, arg, event_uuid=app_uuid, event_lock=True)
            now = time.monotonic()
        deadline = None if timeout is None else now + float(timeout)
        reply_deadline = now + self.timeout if deadline is None else deadline
        session = self._wait_session(reply_deadline)
        result = gevent.event.AsyncResult()
        # Matched by Application-UUID, never by app name (FACTS.md "Event Socket").
        self._executions[app_uuid] = (session, result)
        try:
            msg = self._command(wire, reply_deadline - now, session=session, deadline=reply_deadline)
            if msg.reply_text.startswith("-ERR"):
                raise EslCommandError(msg.reply_text, wire.strip())
            event = self._wait(result, deadline, f"{app} on {uuid} (Application-UUID {app_uuid})")
        finally:
            self._executions.pop(app_uuid, None)
        return event

    def execute_pipelined(self, uuid: str, app: str, arg: str = "", timeout: float | None = None) -> "Reply":
        """Write an execute (sendmsg, event-lock) and return at once; ``.wait()`` checks its reply.

        FreeSWITCH answers in order and queues a channel's apps in order, so the commands
        written after this one need not wait for its ``+OK``: each round trip saved is one
        less hop between the two processes on a call's way.
        """
        self._check_thread()
        wire = eslproto.sendmsg_execute(uuid, app, arg, event_uuid=str(uuidlib.uuid4()), event_lock=True)
        result, deadline, what = self._send(wire, self.timeout if timeout is None else float(timeout))
        return Reply(self, wire, result, deadline, what)

    def api_pipelined(self, command: str, timeout: float | None = None) -> "Reply":
        """Write ``api COMMAND`` and return at once; ``.wait()`` gives its body (EslCommandError on ``-ERR``).

        FreeSWITCH runs an ``api`` in the connection's thread before it reads the next command,
        so what is written after it (a ``sendmsg``) finds its effect done, without a round trip.
        """
        self._check_thread()
        wire = eslproto.api(command)
        result, deadline, what = self._send(wire, self.timeout if timeout is None else float(timeout))
        return Reply(self, wire, result, deadline, what)

    def execute_event(self, uuid: str, app: str, arg: str = "", timeout: float | None = None) -> Event:
        """Execute an app on a channel like ``execute`` and return its whole CHANNEL_EXECUTE_COMPLETE.

        The completion carries the channel's variables as they were when the app returned (a
        bridge's ``originate_disposition``): no ``uuid_getvar`` round trip to read them.
        """
        return self._execute(uuid, app, arg, timeout)

    def on(self, event_name: str, handler) -> None:
        """Call ``handler(event)`` in its own greenlet for each such event ("ALL": every event)."""
        self._check_thread()
        self._handlers.setdefault(event_name, []).append(handler)
        if event_name != "ALL" and event_name not in self._subscription():
            self._events.append(event_name)
            if self._alive():
                gevent.spawn(self._subscribe_quietly, self._session, event_name)

    def off(self, event_name: str, handler) -> None:
        """Stop calling ``handler`` for ``event_name``; unsubscribe (``nixevent``) when nothing else wants it.

        Events asked for at construction, and those bgapi/execute/healthy need, stay subscribed;
        so do CUSTOM subclasses (what ``nixevent CUSTOM x::y`` removes is not verified here).
        """
        self._check_thread()
        handlers = self._handlers.get(event_name, [])
        if handler in handlers:
            handlers.remove(handler)
        if handlers:
            return
        self._handlers.pop(event_name, None)
        if (
            event_name in self._events
            and event_name not in self._base_events
            and event_name not in _REQUIRED_EVENTS
            and "::" not in event_name
        ):
            self._events.remove(event_name)
            if self._alive():
                gevent.spawn(self._unsubscribe_quietly, self._session, event_name)

    def healthy(self) -> bool:
        """True when connected, authenticated, no reply overdue and traffic seen recently."""
        self._check_thread()
        session = self._session
        if not self._alive():
            return False
        now = time.monotonic()
        if session.pending and now > session.pending[0][1]:
            return False
        return now - session.last_rx <= 3 * self.heartbeat

    def run_forever(self) -> None:
        """Stay connected until close(): reconnect with backoff and re-subscribe after drops."""
        self._check_thread()
        self._closed.clear()
        delay = self.backoff[0]
        while not self._alive() and not self._closed.is_set():
            try:
                self.connect()
            except EslAuthError:
                raise
            except EslUnreachableError as exc:
                if not self.reconnect:
                    raise
                self.log.warning("FreeSWITCH unreachable (%s); retrying in %.1fs", exc, delay)
                self._closed.wait(self._jitter(delay))
                delay = min(delay * 2, self.backoff[1])
        if not self.reconnect:
            session = self._session
            while session is not None and not self._closed.is_set():
                gevent.wait([session.lost, self._closed], count=1)
                if session.lost.is_set() and not self._closed.is_set():
                    raise EslUnreachableError(f"FreeSWITCH connection lost: {session.reason}")
            return
        if not self._supervisor and not self._closed.is_set():
            self._supervisor = gevent.spawn(self._supervise)
        self._closed.wait()

    # ------------------------------------------------------------------ internals
    def _check_thread(self) -> None:
        if _os_thread_id() != self._thread:
            raise EslThreadError(
                "EventSocket used from another OS thread: it belongs to the thread that created "
                "it (gevent sockets cannot cross threads; use greenlets, not threads)"
            )

    def _timeout(self, timeout: float | None) -> float:
        return self.timeout if timeout is None else float(timeout)

    def _alive(self) -> bool:
        session = self._session
        return session is not None and session.ready and not session.dead

    def _subscription(self) -> list:
        if "ALL" in self._events:
            return ["ALL"]
        names, subclasses, custom = [], [], False
        for name in list(self._events) + list(_REQUIRED_EVENTS):
            for word in name.split():
                if word == "CUSTOM":
                    custom = True
                    continue
                target = subclasses if "::" in word else names
                if word not in target:
                    target.append(word)
        # Subclass names must follow the CUSTOM keyword (mod_event_socket's "event" parser).
        return names + (["CUSTOM"] + subclasses if subclasses or custom else [])

    def _jitter(self, delay: float) -> float:
        return delay * random.uniform(0.5, 1.0)

    def _open_session(self) -> _Session:
        transport = _Transport(self.host, self.port, self.password, timeout=self.timeout)
        deadline = time.monotonic() + self.timeout
        try:
            with gevent.Timeout(self.timeout):
                transport.open()
        except (OSError, gevent.Timeout) as exc:
            transport.stop()
            raise EslUnreachableError(f"cannot connect to FreeSWITCH at {self.host}:{self.port}: {exc}") from None
        session = _Session(transport)
        session.reader = gevent.spawn(self._read_loop, session)
        try:
            if not session.greeting.wait(max(0.0, deadline - time.monotonic())):
                if session.dead:
                    raise EslUnreachableError(f"connection closed before the greeting: {session.reason}")
                raise EslUnreachableError(f"no Event Socket greeting from {self.host}:{self.port}")
            if session.dead:
                raise EslUnreachableError(f"connection closed before the greeting: {session.reason}")
            reply = self._command(eslproto.auth(self.password), self.timeout, session=session).reply_text
            if reply != "+OK accepted":
                # -ERR invalid, then a disconnect notice and close (FACTS.md "Event Socket").
                raise EslAuthError(f"FreeSWITCH refused the Event Socket password ({reply})")
            wire = eslproto.event(self._subscription(), "plain")
            reply = self._command(wire, self.timeout, session=session).reply_text
            if not reply.startswith("+OK"):
                raise EslCommandError(reply, wire.strip())
        except BaseException:
            self._lose(session, "connection setup failed")
            raise
        session.ready = True
        return session

    def _install(self, session: _Session) -> None:
        self._session = session
        self.connections += 1
        if self._dispatcher is None or self._dispatcher.dead:
            self._dispatcher = gevent.spawn(self._dispatch_loop)
        self._connected.set()
        self.log.info("connected to FreeSWITCH at %s:%s", self.host, self.port)

    def _read_loop(self, session: _Session) -> None:
        reader = eslproto.Reader()
        reason = "connection closed by FreeSWITCH"
        sock = session.transport.sock
        try:
            while not session.dead:
                data = sock.recv(65536)
                if not data:
                    break
                session.last_rx = time.monotonic()
                for message in reader.feed(data):
                    self._on_message(session, message)
                    if session.dead:
                        return
        except eslproto.ProtocolError as exc:
            reason = f"protocol error: {exc}"
            self.log.error("Event Socket %s; dropping the connection", reason)
        except OSError as exc:
            reason = f"socket error: {exc}"
        self._lose(session, reason)

    def _on_message(self, session: _Session, message: Message) -> None:
        ctype = message.content_type
        if ctype in ("command/reply", "api/response"):
            if session.pending:
                session.pending.popleft()[0].set(message)
            else:
                self.log.warning("Event Socket reply without a command: %r", message.reply_text or message.body[:80])
        elif message.is_event:
            if not self._wanted(message):
                self.unparsed += 1
                return
            try:
                event = eslproto.parse_event(message)
            except eslproto.ProtocolError as exc:
                self.log.error("unparsable event skipped: %s", exc)
                return
            self._on_event(event)
        elif ctype == "auth/request":
            session.greeting.set()
        elif ctype == "text/disconnect-notice":
            if message.headers.get("Content-Disposition") == "linger":
                return
            # A disconnect notice means FreeSWITCH is closing this socket: treat it as a close.
            session.notice = True
            self._lose(session, "disconnect notice from FreeSWITCH")
        elif ctype == "text/rude-rejection":
            self._lose(session, "rejected by FreeSWITCH (event socket ACL): " + message.body.strip())
        elif ctype != "log/data":
            self.log.debug("ignored Event Socket message %r", ctype)

    def _wanted(self, message: Message) -> bool:
        """False for a plain event that no handler takes and no command waits for.

        Parsing an event costs a fraction of a millisecond of the hub, and most are of no use:
        CHANNEL_EXECUTE_COMPLETE of the apps sent without waiting (``wait=False``), HEARTBEAT.
        """
        if message.content_type != "text/event-plain" or "ALL" in self._handlers:
            return True
        body = message.body
        name = eslproto.peek_plain_header(body, "Event-Name")
        if name is None or name == "CUSTOM" or name in self._handlers:
            return True
        if name == "CHANNEL_EXECUTE_COMPLETE":
            return eslproto.peek_plain_header(body, "Application-UUID") in self._executions
        if name == "BACKGROUND_JOB":
            return eslproto.peek_plain_header(body, "Job-UUID") in self._jobs
        return False

    def _on_event(self, event: Event) -> None:
        name = event.name
        if name == "BACKGROUND_JOB":
            waiter = self._jobs.pop(event.get("Job-UUID"), None)
            if waiter:
                waiter[1].set(event)
        elif name == "CHANNEL_EXECUTE_COMPLETE":
            waiter = self._executions.pop(event.get("Application-UUID"), None)
            if waiter:
                waiter[1].set(event)
        if not self._handlers_for(event):
            return
        if len(self._queue) >= self.max_queue:
            self._queue.popleft()
            self.dropped += 1
            now = time.monotonic()
            if now - self._last_drop_log >= 1.0:
                self._last_drop_log = now
                self.log.warning(
                    "event queue full (%d): dropped oldest events, %d so far", self.max_queue, self.dropped
                )
        self._queue.append(event)
        self._queue_ready.set()

    def _handlers_for(self, event: Event) -> list:
        handlers = list(self._handlers.get(event.name, ()))
        if event.name == "CUSTOM" and event.subclass:
            handlers += self._handlers.get(event.subclass, ())
        handlers += self._handlers.get("ALL", ())
        return handlers

    def _dispatch_loop(self) -> None:
        while True:
            self._queue_ready.wait()
            while self._queue:
                event = self._queue.popleft()
                for handler in self._handlers_for(event):
                    self._pool.spawn(self._run_handler, handler, event)  # blocks when the pool is full
            self._queue_ready.clear()

    def _run_handler(self, handler, event: Event) -> None:
        try:
            handler(event)
        except Exception:
            self.log.exception("handler %r failed on %s %s", handler, event.name, event.uuid or "")

    def _lose(self, session: _Session, reason: str) -> None:
        if session.dead:
            return
        session.dead = True
        session.reason = reason
        session.transport.stop()
        error = EslUnreachableError(f"FreeSWITCH connection lost: {reason}")
        while session.pending:
            session.pending.popleft()[0].set_exception(error)
        for table in (self._jobs, self._executions):
            for key, (owner, result) in list(table.items()):
                if owner is session:
                    table.pop(key, None)
                    result.set_exception(error)
        session.lost.set()
        if self._session is session:
            self._session = None
            self._connected.clear()
            if session.ready and not self._closed.is_set():
                self.log.warning("FreeSWITCH connection lost: %s", reason)
        reader = session.reader
        if reader is not None and reader is not gevent.getcurrent():
            reader.kill(block=False)

    def _wait_session(self, deadline: float | None) -> _Session:
        if self._alive():
            return self._session
        if self._closed.is_set():
            raise EslUnreachableError("EventSocket is closed")
        if not (self.reconnect and self._supervisor):
            raise EslUnreachableError("not connected to FreeSWITCH")
        remaining = None if deadline is None else max(0.0, deadline - time.monotonic())
        self._connected.wait(remaining)
        if not self._alive():
            raise EslUnreachableError(
                f"FreeSWITCH connection lost and not back within {remaining:.1f}s"
                if remaining is not None
                else "FreeSWITCH connection lost"
            )
        return self._session

    def _command(
        self, wire: str, timeout: float, *, session: _Session | None = None, deadline: float | None = None
    ) -> Message:
        return self._wait(*self._send(wire, timeout, session=session, deadline=deadline))

    def _send(
        self, wire: str, timeout: float, *, session: _Session | None = None, deadline: float | None = None
    ) -> tuple:
        """Write a command; return (its reply's AsyncResult, deadline, what) for ``_wait``."""
        if deadline is None:
            deadline = time.monotonic() + timeout
        if session is None:
            session = self._wait_session(deadline)
        if session.dead:
            raise EslUnreachableError(f"FreeSWITCH connection lost: {session.reason}")
        result = gevent.event.AsyncResult()
        what = wire.split("\n", 1)[0]
        if what.startswith("auth "):
            what = "auth ****"
        remaining = max(0.0, deadline - time.monotonic())
        if not session.write_lock.acquire(timeout=remaining):
            raise EslTimeoutError(f"{what}: could not write within {timeout:.1f}s")
        try:
            # Appended and written under one lock: replies come back in this order.
            session.pending.append([result, deadline])
            try:
                with gevent.Timeout(max(0.0, deadline - time.monotonic())):
                    session.transport.sock.sendall(wire.encode("utf-8"))
            except gevent.Timeout:
                # A partial write desynchronises the stream: the connection is unusable.
                self._lose(session, f"write of {what!r} timed out")
                raise EslTimeoutError(f"{what}: could not write within {timeout:.1f}s") from None
            except OSError as exc:
                self._lose(session, f"write failed: {exc}")
                raise EslUnreachableError(f"FreeSWITCH connection lost: {exc}") from None
        finally:
            session.write_lock.release()
        return result, deadline, what

    def _wait(self, result: gevent.event.AsyncResult, deadline: float | None, what: str):
        remaining = None if deadline is None else max(0.0, deadline - time.monotonic())
        try:
            return result.get(timeout=remaining)
        except gevent.Timeout:
            raise EslTimeoutError(f"{what}: no reply from FreeSWITCH within the timeout") from None

    def _subscribe_quietly(self, session: _Session, name: str) -> None:
        try:
            words = ["CUSTOM", name] if "::" in name else [name]
            self._command(eslproto.event(words, "plain"), self.timeout, session=session)
        except EslError as exc:
            self.log.warning("could not subscribe to %s now (%s); done at the next reconnect", name, exc)

    def _unsubscribe_quietly(self, session: _Session, name: str) -> None:
        try:
            self._command(eslproto.nixevent([name]), self.timeout, session=session)
        except EslError as exc:
            self.log.warning("could not unsubscribe from %s now (%s); done at the next reconnect", name, exc)

    def _supervise(self) -> None:
        delay = self.backoff[0]
        while not self._closed.is_set():
            session = self._session
            if session is not None and not session.dead:
                if session.lost.wait(self.heartbeat):
                    continue
                if time.monotonic() - session.last_rx >= self.heartbeat and not session.dead:
                    try:  # keepalive probe: a silent FreeSWITCH is a lost FreeSWITCH
                        self._command(eslproto.api("status"), self.timeout, session=session)
                    except EslTimeoutError:
                        self._lose(session, "no reply to the keepalive probe")
                    except EslError:
                        pass
                continue
            try:
                self._install(self._open_session())
                delay = self.backoff[0]
            except EslError as exc:
                wait = self._jitter(delay)
                self.log.warning("reconnect to FreeSWITCH failed (%s); next try in %.2fs", exc, wait)
                self._closed.wait(wait)
                delay = min(delay * 2, self.backoff[1])
