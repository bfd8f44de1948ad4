"""FreeSWITCH Event Socket protocol: pure parsing and command building, no sockets.

The wire format (see shared/freeswitch/FACTS.md, "Event Socket"): every message
from FreeSWITCH is a header block of ``Name: value`` lines ended by a blank line, then
exactly ``Content-Length`` body bytes. ``text/event-plain`` bodies are themselves a header
block whose VALUES are URL-encoded one by one, optionally followed by the event's own body
(``BACKGROUND_JOB`` result) after an inner ``Content-Length``. We split first and decode each
value afterwards: greenswitch decodes the whole body first, which glues the job result onto
the inner Content-Length, turns body lines into fake headers and splits a value holding an
encoded newline (FACTS.md, "The greenswitch client").

Commands are plain text ended by a blank line; the builders below return the exact wire
string (``"api status\\n\\n"``) and refuse CR/LF inside arguments, which would let an argument
inject headers or a whole second command.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass, field
from itertools import repeat as _repeat
from urllib.parse import unquote

from .chanvars import UNIQUE_ID

__all__ = [
    "ProtocolError",
    "Message",
    "Event",
    "Headers",
    "Reader",
    "parse_headers",
    "parse_event",
    "parse_plain_event",
    "peek_plain_header",
    "parse_json_event",
    "auth",
    "api",
    "bgapi",
    "sendmsg_execute",
    "sendmsg_hangup",
    "event",
    "nixevent",
    "noevents",
    "filter",
    "filter_delete",
    "linger",
    "nolinger",
    "myevents",
    "exit",
]

#: Largest header block accepted before the stream is declared out of sync.
MAX_HEADER_BYTES = 1 << 20
#: Largest Content-Length accepted (a `show channels` with thousands of calls stays far below).
MAX_BODY_BYTES = 64 << 20

EVENT_CONTENT_TYPES = ("text/event-plain", "text/event-json")


class ProtocolError(Exception):
    """The byte stream does not follow the Event Socket framing (the connection must be dropped)."""


@dataclass(frozen=True)
class Message:
    """One framed message from FreeSWITCH: outer headers (raw values) and decoded body."""

    headers: dict
    body: str = ""

    @property
    def content_type(self) -> str:
        """The Content-Type header, or "" when absent."""
        return self.headers.get("Content-Type", "")

    @property
    def reply_text(self) -> str:
        """The Reply-Text header of a command/reply, or "" when absent."""
        return self.headers.get("Reply-Text", "")

    @property
    def is_event(self) -> bool:
        """True for text/event-plain and text/event-json messages."""
        return self.content_type in EVENT_CONTENT_TYPES


@dataclass(frozen=True)
class Event:
    """One FreeSWITCH event: its name, its decoded headers and its own body ("" if none)."""

    name: str
    headers: dict = field(default_factory=dict)
    body: str = ""

    def get(self, name: str, default=None):
        """Return the decoded value of header ``name``, or ``default``."""
        return self.headers.get(name, default)

    def __getitem__(self, name: str) -> str:
        return self.headers[name]

    def __contains__(self, name: object) -> bool:
        return name in self.headers

    @property
    def uuid(self) -> str | None:
        """The channel's Unique-ID, or None for events that concern no channel."""
        return self.headers.get(UNIQUE_ID)

    @property
    def subclass(self) -> str | None:
        """The Event-Subclass of a CUSTOM event (e.g. "sofia::register"), else None."""
        return self.headers.get("Event-Subclass")


def _decode(data: bytes) -> str:
    return data.decode("utf-8", errors="replace")


def _split_headers(text: str) -> dict:
    """``Name: value`` lines into a dict of raw values (last one wins), checked line by line.

    Fast path, split in C: every line is ``Name: value`` as FreeSWITCH writes it (no CR, a name
    without blanks or colons). Anything else (CRLF, ``Name:value``, blank lines, a malformed
    line) takes the line-by-line path, which strips, skips or refuses as before.
    """
    if "\r" not in text:
        try:
            headers = dict(map(str.split, text.split("\n"), _repeat(": "), _repeat(1)))
        except ValueError:  # a line without ": "
            headers = None
        if headers is not None and "" not in headers:
            names = "".join(headers)
            if ":" not in names and " " not in names and names.isprintable():
                return headers
    headers = {}
    for line in text.split("\n"):
        if line.endswith("\r"):
            line = line[:-1]
        if not line:
            continue
        name, sep, value = line.partition(":")
        if not sep:
            raise ProtocolError(f"malformed header line {line[:80].encode()!r}")
        name = name.strip()
        if not name:
            raise ProtocolError(f"malformed header line {line[:80].encode()!r}")
        if value.startswith(" "):
            value = value[1:]
        headers[name] = value
    return headers


class Headers(Mapping):
    """An event's headers, each value URL-decoded when first read (read-only).

    A CHANNEL_* event carries ~150 headers, most of them channel variables no consumer reads;
    decoding every ``%XX`` value up front was a third of the service's event cost. Reads go
    through ``__getitem__``, so ``dict(headers)``, ``items()`` and ``get`` all see decoded values.
    """

    __slots__ = ("_raw", "_decoded")

    def __init__(self, raw: dict) -> None:
        self._raw = raw
        self._decoded: dict = {}

    def __getitem__(self, name: str) -> str:
        value = self._raw[name]
        if "%" not in value:
            return value
        decoded = self._decoded.get(name)
        if decoded is None:
            decoded = self._decoded[name] = unquote(value, errors="replace")
        return decoded

    def get(self, name, default=None):
        """The decoded value of header ``name``, or ``default``."""
        value = self._raw.get(name)
        if value is None:
            return default
        return self[name] if "%" in value else value

    def __contains__(self, name: object) -> bool:
        return name in self._raw

    def __iter__(self):
        return iter(self._raw)

    def __len__(self) -> int:
        return len(self._raw)

    def __repr__(self) -> str:
        return f"Headers({dict(self)!r})"


def parse_headers(block: bytes, *, urldecode: bool = False) -> dict:
    """Parse ``Name: value`` lines (no blank line) into a dict; optionally URL-decode each value.

    Hot path (every message): the block is decoded once and split by one regular expression;
    only values that hold a ``%`` go through ``unquote``.
    """
    headers = _split_headers(block.decode("utf-8", errors="replace"))
    if urldecode:
        for name, value in headers.items():
            if "%" in value:
                headers[name] = unquote(value, errors="replace")
    return headers


def _content_length(headers: dict) -> int:
    raw = headers.get("Content-Length")
    if raw is None:
        return 0
    raw = raw.strip()
    if not raw.isdigit():
        raise ProtocolError(f"malformed Content-Length {raw!r}")
    length = int(raw)
    if length > MAX_BODY_BYTES:
        raise ProtocolError(f"Content-Length {length} exceeds {MAX_BODY_BYTES}")
    return length


class Reader:
    """Incremental framer: ``feed(bytes)`` returns the messages completed so far, in order.

    A partial header block or body is kept until more bytes arrive (it never blocks or spins);
    a malformed Content-Length or an oversized header block raises ProtocolError.
    """

    def __init__(self) -> None:
        self._buf = bytearray()
        self._scan = 0  # where to resume searching for the blank line
        self._headers: dict | None = None  # parsed header block awaiting its body
        self._need = 0
        self._header_len = 0  # size of the parsed header block awaiting its body

    @property
    def pending_bytes(self) -> int:
        """How many received bytes do not form a whole message yet."""
        return len(self._buf) + self._header_len

    def feed(self, data: bytes) -> list[Message]:
        """Add received bytes; return every message they complete (possibly none)."""
        self._buf += data
        out: list[Message] = []
        while True:
            if self._headers is None:
                end = self._buf.find(b"\n\n", self._scan)
                if end < 0:
                    self._scan = max(0, len(self._buf) - 1)
                    if len(self._buf) > MAX_HEADER_BYTES:
                        raise ProtocolError("header block too long (no blank line)")
                    return out
                block = bytes(self._buf[:end])
                del self._buf[: end + 2]
                self._scan = 0
                if not block.strip():
                    continue  # stray blank lines between messages
                headers = parse_headers(block)
                self._need = _content_length(headers)
                self._headers = headers
                self._header_len = end + 2
            if len(self._buf) < self._need:
                return out
            body = bytes(self._buf[: self._need])
            del self._buf[: self._need]
            out.append(Message(self._headers, _decode(body)))
            self._headers = None
            self._need = 0
            self._header_len = 0


def parse_plain_event(body: str | bytes) -> Event:
    """Parse a text/event-plain body header by header, URL-decoding each value on its own."""
    raw = body.encode("utf-8") if isinstance(body, str) else body
    end = raw.find(b"\n\n")
    if end < 0:
        block, rest = raw, b""
    else:
        block, rest = raw[:end], raw[end + 2 :]
    headers = Headers(_split_headers(block.decode("utf-8", errors="replace")))
    own_body = b""
    if "Content-Length" in headers:
        # The event's own body (e.g. a BACKGROUND_JOB result), FACTS.md "Event Socket".
        own_body = rest[: _content_length(headers)]
    return Event(headers.get("Event-Name", ""), headers, _decode(own_body))


def peek_plain_header(body: str, name: str) -> str | None:
    """The decoded value of one header of a text/event-plain body, without parsing the others.

    For deciding whether an event is worth parsing; it reads the ``Name: value`` form that
    FreeSWITCH serialises (switch_event_serialize) and the first occurrence only.
    """
    key = name + ": "
    if body.startswith(key):
        start = len(key)
    else:
        # Searched up to the header only (Event-Name is the first one), not the whole block:
        # found after the blank line that ends the header block, it is body text.
        found = body.find("\n" + key)
        if found < 0 or body.find("\n\n", 0, found + 1) >= 0:
            return None
        start = found + 1 + len(key)
    stop = body.find("\n", start)
    value = body[start:] if stop < 0 else body[start:stop]
    if value.endswith("\r"):
        value = value[:-1]
    return unquote(value, errors="replace") if "%" in value else value


def _json_value(value) -> str:
    # Arrays are JSON lists in event-json but "ARRAY::a|:b" in event-plain: use the plain form.
    if isinstance(value, str):
        return value
    if isinstance(value, list):
        return "ARRAY::" + "|:".join(str(v) for v in value)
    return json.dumps(value)


def parse_json_event(body: str | bytes) -> Event:
    """Parse a text/event-json body; ``_body`` becomes the event body."""
    try:
        obj = json.loads(body)
    except ValueError as exc:
        raise ProtocolError(f"malformed JSON event: {exc}") from None
    if not isinstance(obj, dict):
        raise ProtocolError("JSON event is not an object")
    own_body = obj.pop("_body", "")
    headers = {str(k): _json_value(v) for k, v in obj.items()}
    return Event(headers.get("Event-Name", ""), headers, own_body if isinstance(own_body, str) else "")


def parse_event(message: Message) -> Event:
    """Turn a text/event-plain or text/event-json message into an Event."""
    if message.content_type == "text/event-plain":
        return parse_plain_event(message.body)
    if message.content_type == "text/event-json":
        return parse_json_event(message.body)
    raise ProtocolError(f"not an event: Content-Type {message.content_type!r}")


# ---------------------------------------------------------------- command builders


def _clean(value: str, what: str) -> str:
    value = str(value)
    if "\n" in value or "\r" in value:
        raise ValueError(f"{what} must not contain CR or LF: {value[:60]!r}")
    return value


def _command(line: str, headers: list[tuple[str, str]] = ()) -> str:
    parts = [line]
    parts.extend(f"{_clean(k, 'header name')}: {_clean(v, k)}" for k, v in headers)
    return "\n".join(parts) + "\n\n"


def auth(password: str) -> str:
    """``auth PASSWORD``."""
    return _command("auth " + _clean(password, "password"))


def api(command: str) -> str:
    """``api COMMAND`` (blocking API call, reply is an api/response)."""
    command = _clean(command, "api command").strip()
    if not command:
        raise ValueError("api command must not be empty")
    return _command("api " + command)


def bgapi(command: str, job_uuid: str) -> str:
    """``bgapi COMMAND`` with a caller-chosen ``Job-UUID`` header (FACTS.md "Event Socket")."""
    command = _clean(command, "bgapi command").strip()
    if not command:
        raise ValueError("bgapi command must not be empty")
    return _command("bgapi " + command, [("Job-UUID", _clean(job_uuid, "Job-UUID"))])


def sendmsg_execute(
    uuid: str,
    app: str,
    arg: str = "",
    *,
    event_uuid: str | None = None,
    event_lock: bool = True,
    loops: int | None = None,
) -> str:
    """``sendmsg UUID`` with ``call-command: execute``; Event-UUID comes back as Application-UUID."""
    app = _clean(app, "application").strip()
    if not app or " " in app:
        raise ValueError(f"bad application name {app!r}")
    headers = [("call-command", "execute"), ("execute-app-name", app)]
    if arg != "":
        headers.append(("execute-app-arg", _clean(arg, "execute-app-arg")))
    if loops is not None:
        headers.append(("loops", str(int(loops))))
    if event_lock:
        headers.append(("event-lock", "true"))
    if event_uuid:
        headers.append(("Event-UUID", _clean(event_uuid, "Event-UUID")))
    line = "sendmsg " + _clean(uuid, "uuid").strip() if uuid else "sendmsg"
    return _command(line, headers)


def sendmsg_hangup(uuid: str, cause: str = "NORMAL_CLEARING") -> str:
    """``sendmsg UUID`` with ``call-command: hangup``."""
    line = "sendmsg " + _clean(uuid, "uuid").strip() if uuid else "sendmsg"
    return _command(line, [("call-command", "hangup"), ("hangup-cause", _clean(cause, "cause"))])


def event(events, fmt: str = "plain") -> str:
    """``event plain|json|xml NAME ...`` (names, or "ALL"; CUSTOM subclasses after CUSTOM)."""
    if fmt not in ("plain", "json", "xml"):
        raise ValueError(f"unknown event format {fmt!r}")
    names = [events] if isinstance(events, str) else list(events)
    names = [_clean(n, "event name").strip() for n in names]
    if not names or not all(names) or any(" " in n for n in names):
        raise ValueError(f"bad event names {events!r}")
    return _command(f"event {fmt} " + " ".join(names))


def nixevent(events) -> str:
    """``nixevent NAME ...``."""
    names = [events] if isinstance(events, str) else list(events)
    return _command("nixevent " + " ".join(_clean(n, "event name") for n in names))


def noevents() -> str:
    """``noevents``."""
    return _command("noevents")


def filter(header: str, value: str) -> str:  # noqa: A001 - the ESL command is called filter
    """``filter HEADER VALUE``."""
    return _command(f"filter {_clean(header, 'filter header')} {_clean(value, 'filter value')}")


def filter_delete(header: str, value: str = "") -> str:
    """``filter delete HEADER [VALUE]``."""
    line = f"filter delete {_clean(header, 'filter header')}"
    if value:
        line += " " + _clean(value, "filter value")
    return _command(line)


def linger(seconds: int | None = None) -> str:
    """``linger [SECONDS]`` (outbound mode: keep the socket after hang-up)."""
    return _command("linger" if seconds is None else f"linger {int(seconds)}")


def nolinger() -> str:
    """``nolinger``."""
    return _command("nolinger")


def myevents(uuid: str | None = None) -> str:
    """``myevents [UUID]``."""
    return _command("myevents" if not uuid else "myevents " + _clean(uuid, "uuid"))


def exit() -> str:  # noqa: A001 - the ESL command is called exit
    """``exit`` (FreeSWITCH answers +OK bye, a disconnect notice, then closes)."""
    return _command("exit")
