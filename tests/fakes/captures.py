"""Parser for the byte-exact Event Socket captures (format: esl-captures/README.md).

Each capture file is a sequence of marker lines (``#>> SEND``, ``#<< RECV``, ``#-- NOTE``,
``#xx CLOSED``, ``####``), each followed by exactly the bytes it announces. ``load(name)``
returns a Capture whose records keep those bytes untouched (the readability ``\\n`` of
``nl_added=1`` is removed), so the fake FreeSWITCH can replay them verbatim.

The directory is found in this order: ``$FSCTL_TEST_ESL_CAPTURES``, ``tests/data/esl-captures`` (a
byte-exact copy of shared/freeswitch/esl-captures, kept in the repository so a clean clone
tests on its own), then ``../shared/freeswitch/esl-captures`` beside the repository.
"""

from __future__ import annotations

import functools
import os
import re
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import unquote

_SHARED = Path(__file__).resolve().parents[3] / "shared" / "freeswitch" / "esl-captures"
_LOCAL = Path(__file__).resolve().parent.parent / "data" / "esl-captures"

_MARKER = re.compile(rb"^(#>> SEND|#<< RECV|#-- NOTE|#xx CLOSED|####)(.*)$")
_FIELDS = re.compile(rb"(\w+)=(\S+)")


class CaptureFormatError(ValueError):
    """A capture file does not follow the README's format."""


@dataclass(frozen=True)
class Record:
    """One marker of a capture: kind is "send", "recv", "note", "closed" or "comment"."""

    kind: str
    data: bytes = b""
    t: float = 0.0
    n: int = 0
    header_bytes: int = 0
    body_bytes: int = 0
    text: str = ""

    @property
    def header_block(self) -> bytes:
        """A RECV record's header block without its blank line."""
        return self.data[: self.header_bytes].rstrip(b"\n")

    @property
    def headers(self) -> dict:
        """A RECV record's outer headers (raw values)."""
        out = {}
        for line in self.header_block.split(b"\n"):
            name, _, value = line.decode().partition(": ")
            out[name] = value
        return out

    @property
    def body(self) -> bytes:
        """A RECV record's Content-Length body."""
        return self.data[self.header_bytes :]

    @property
    def content_type(self) -> str:
        """A RECV record's Content-Type."""
        return self.headers.get("Content-Type", "")

    @property
    def command(self) -> str:
        """A SEND record's command text without its terminating blank line."""
        return self.data.decode().rstrip("\n")

    def event_headers(self) -> dict:
        """A text/event-plain RECV record's event headers, URL-decoded (minimal, for fixtures)."""
        block = self.body.split(b"\n\n", 1)[0].decode()
        out = {}
        for line in block.split("\n"):
            name, _, value = line.partition(": ")
            out[name] = unquote(value)
        return out

    @property
    def event_name(self) -> str:
        """The Event-Name of an event RECV record, or ""."""
        if self.content_type == "text/event-plain":
            m = re.search(rb"^Event-Name: (\S+)$", self.body, re.M)
            return m.group(1).decode() if m else ""
        if self.content_type == "text/event-json":
            m = re.search(rb'"Event-Name":"([^"]+)"', self.body)
            return m.group(1).decode() if m else ""
        return ""


@dataclass(frozen=True)
class Capture:
    """All records of one capture file."""

    name: str
    records: tuple

    @property
    def recvs(self) -> list:
        """The RECV records in order."""
        return [r for r in self.records if r.kind == "recv"]

    @property
    def sends(self) -> list:
        """The SEND records in order."""
        return [r for r in self.records if r.kind == "send"]

    def stream(self) -> bytes:
        """Exactly the bytes a client reads: every RECV payload concatenated."""
        return b"".join(r.data for r in self.recvs)

    def events(self, name: str | None = None) -> list:
        """Event RECV records, optionally only those with Event-Name ``name``."""
        evs = [r for r in self.recvs if r.content_type.startswith("text/event-")]
        return [r for r in evs if name is None or r.event_name == name]

    def exchanges(self) -> list:
        """(send record, [recv records until the next send]) pairs, in order."""
        out = []
        for rec in self.records:
            if rec.kind == "send":
                out.append((rec, []))
            elif rec.kind == "recv" and out:
                out[-1][1].append(rec)
        return out

    def notes(self) -> list:
        """The NOTE records (annotations made while recording)."""
        return [r for r in self.records if r.kind == "note"]


def captures_dir() -> Path:
    """The directory holding the capture files."""
    env = os.environ.get("FSCTL_TEST_ESL_CAPTURES")
    if env:
        return Path(env)
    if _LOCAL.is_dir():
        return _LOCAL
    return _SHARED


def parse(data: bytes, name: str = "<bytes>") -> Capture:
    """Parse the raw content of a capture file."""
    records = []
    pos = 0
    size = len(data)
    while pos < size:
        eol = data.find(b"\n", pos)
        if eol < 0:
            eol = size
        line = data[pos:eol]
        pos = eol + 1
        m = _MARKER.match(line)
        if not m:
            raise CaptureFormatError(f"{name}: unexpected line at byte {pos}: {line[:60]!r}")
        kind, rest = m.group(1), m.group(2)
        fields = {k.decode(): v.decode() for k, v in _FIELDS.findall(rest)}
        t = float(fields.get("t", 0))
        if kind == b"#>> SEND":
            n = int(fields["bytes"])
            records.append(Record("send", data[pos : pos + n], t=t))
            pos += n
        elif kind == b"#<< RECV":
            hb, bb = int(fields["header_bytes"]), int(fields["body_bytes"])
            payload = data[pos : pos + hb + bb]
            if len(payload) != hb + bb or not payload[:hb].endswith(b"\n\n"):
                raise CaptureFormatError(f"{name}: RECV n={fields.get('n')} is short or unframed")
            records.append(Record("recv", payload, t=t, n=int(fields["n"]), header_bytes=hb, body_bytes=bb))
            pos += hb + bb + int(fields.get("nl_added", "0"))
        elif kind == b"#xx CLOSED":
            records.append(Record("closed", t=t))
        elif kind == b"#-- NOTE":
            text = rest.decode(errors="replace").strip()
            text = re.sub(r"^t=\S+\s*", "", text)
            records.append(Record("note", t=t, text=text))
        else:
            records.append(Record("comment", text=rest.decode(errors="replace").strip()))
    return Capture(name, tuple(records))


@functools.lru_cache(maxsize=None)
def load(name: str) -> Capture:
    """Load and parse a capture file by name (e.g. "esl_auth_fail.txt"); cached."""
    path = captures_dir() / name
    return parse(path.read_bytes(), name)
