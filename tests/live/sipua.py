"""A small SIP user agent for the live tests: UDP on loopback, one socket per phone.

What it does (RFC 3261 as far as FreeSWITCH needs it, nothing more):
- REGISTER with digest authentication (qop=auth), answering the MWI NOTIFY that follows;
- calls out (INVITE, 407 challenge, ACK, BYE, CANCEL) and in (100/180/200 or 486/603/480,
  re-INVITE/UPDATE answered with the same media, BYE, CANCEL -> 487);
- in-dialog REFER (a phone's transfer button) and RFC 2833 DTMF over RTP (PCMU, event 101);
- records every INVITE it receives (who rang), every dialog's state and final status, so a test
  proves on the wire which phone rang, who answered and how the call ended.

One receiver thread per phone; every public method is safe to call from any thread, and every
wait has a deadline (tests wait for an event, never sleep for one).
"""

from __future__ import annotations

import hashlib
import itertools
import random
import re
import socket
import struct
import threading
import time
from dataclasses import dataclass, field

COMPACT = {
    "v": "via",
    "f": "from",
    "t": "to",
    "i": "call-id",
    "m": "contact",
    "l": "content-length",
    "c": "content-type",
    "k": "supported",
    "r": "refer-to",
    "b": "referred-by",
    "o": "event",
}
T1 = 0.5
_counter = itertools.count(1)


def _token(n=10):
    return "".join(random.choice("abcdefghijklmnopqrstuvwxyz0123456789") for _ in range(n))


class SipMessage:
    """A parsed SIP request or response."""

    def __init__(self, first: str, headers: list[tuple[str, str]], body: str = ""):
        self.first = first
        self.headers = headers
        self.body = body

    @classmethod
    def parse(cls, data: bytes) -> "SipMessage":
        text = data.decode("utf-8", "replace")
        head, _, body = text.partition("\r\n\r\n")
        lines = head.split("\r\n")
        headers = []
        for line in lines[1:]:
            if line[:1] in " \t" and headers:  # folded line
                name, value = headers[-1]
                headers[-1] = (name, value + " " + line.strip())
                continue
            name, _, value = line.partition(":")
            name = name.strip().lower()
            headers.append((COMPACT.get(name, name), value.strip()))
        return cls(lines[0], headers, body)

    @property
    def is_response(self) -> bool:
        return self.first.startswith("SIP/2.0 ")

    @property
    def status(self) -> int:
        return int(self.first.split()[1])

    @property
    def method(self) -> str:
        return self.first.split()[0]

    @property
    def uri(self) -> str:
        return self.first.split()[1]

    def get(self, name: str, default: str = "") -> str:
        name = name.lower()
        for n, v in self.headers:
            if n == name:
                return v
        return default

    def all(self, name: str) -> list[str]:
        name = name.lower()
        return [v for n, v in self.headers if n == name]

    @property
    def cseq(self) -> tuple[int, str]:
        num, method = self.get("cseq").split()
        return int(num), method

    @property
    def branch(self) -> str:
        m = re.search(r"branch=([^;,\s]+)", self.get("via"))
        return m.group(1) if m else ""

    def to_bytes(self) -> bytes:
        body = self.body.encode()
        lines = [self.first] + [
            f"{n.title() if n != 'call-id' else 'Call-ID'}: {v}" for n, v in self.headers if n != "content-length"
        ]
        lines.append(f"Content-Length: {len(body)}")
        return ("\r\n".join(lines) + "\r\n\r\n").encode() + body


def tag_of(header: str) -> str:
    m = re.search(r";tag=([^;>\s]+)", header)
    return m.group(1) if m else ""


def uri_of(header: str) -> str:
    m = re.search(r"<([^>]+)>", header)
    return m.group(1) if m else header.split(";")[0].strip()


def user_of(header: str) -> str:
    m = re.search(r"sips?:([^@;>]+)@", header)
    return m.group(1) if m else ""


def display_of(header: str) -> str:
    m = re.match(r'\s*"((?:[^"\\]|\\.)*)"\s*<', header)
    if m:
        return m.group(1).replace('\\"', '"').replace("\\\\", "\\")
    m = re.match(r"\s*([^<\"]+?)\s*<", header)
    return m.group(1) if m else ""


def digest(method: str, uri: str, challenge: str, user: str, password: str) -> str:
    """The Authorization value answering a Digest challenge (MD5, qop=auth when offered)."""
    params = dict(re.findall(r'(\w+)="?([^",]*)"?', challenge))
    realm, nonce = params.get("realm", ""), params.get("nonce", "")
    ha1 = hashlib.md5(f"{user}:{realm}:{password}".encode()).hexdigest()
    ha2 = hashlib.md5(f"{method}:{uri}".encode()).hexdigest()
    parts = [f'username="{user}"', f'realm="{realm}"', f'nonce="{nonce}"', f'uri="{uri}"', "algorithm=MD5"]
    if "auth" in params.get("qop", "").split(","):
        nc, cnonce = "00000001", _token(12)
        response = hashlib.md5(f"{ha1}:{nonce}:{nc}:{cnonce}:auth:{ha2}".encode()).hexdigest()
        parts += ["qop=auth", f"nc={nc}", f'cnonce="{cnonce}"']
    else:
        response = hashlib.md5(f"{ha1}:{nonce}:{ha2}".encode()).hexdigest()
    parts.append(f'response="{response}"')
    if "opaque" in params:
        parts.append(f'opaque="{params["opaque"]}"')
    return "Digest " + ", ".join(parts)


def sdp_media(body: str):
    """(ip, port, telephone-event payload type) of an SDP body's audio, or None."""
    ip = re.search(r"^c=IN IP4 (\S+)", body, re.M)
    m = re.search(r"^m=audio (\d+) ", body, re.M)
    te = re.search(r"^a=rtpmap:(\d+) telephone-event/8000", body, re.M)
    if not ip or not m:
        return None
    return ip.group(1), int(m.group(1)), int(te.group(1)) if te else 101


class SipError(AssertionError):
    """A SIP exchange did not go as the test expected."""


@dataclass
class Invite:
    """An INVITE a phone received: who was calling whom, and how the phone answered it."""

    call_id: str
    caller: str  # the From user part
    caller_name: str  # the From display name
    to: str
    at: float
    headers: dict = field(default_factory=dict)


class Call:
    """One dialog (one INVITE transaction and what follows)."""

    def __init__(self, phone: "Phone", call_id: str, outgoing: bool):
        self.phone = phone
        self.call_id = call_id
        self.outgoing = outgoing
        self.local_tag = _token()
        self.remote_tag = ""
        self.local_uri = ""
        self.remote_uri = ""
        self.remote_target = ""
        self.local_cseq = random.randint(1, 1000)
        self.state = "calling"  # calling | early | confirmed | ended
        self.code = None  # the final response code of the INVITE
        self.ended_by = ""  # "local" | "remote" | "cancel" | "failure"
        self.responses: list[int] = []  # every response code to the INVITE (outgoing)
        self.invite: SipMessage | None = None  # the INVITE (received or sent last)
        self.last_response: bytes | None = None  # for retransmitted INVITEs (incoming)
        self.notifies: list[str] = []  # sipfrag bodies of NOTIFYs (REFER progress)
        self.rtp = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        self.rtp.bind(("127.0.0.1", 0))
        self.rtp.setblocking(False)
        self.remote_media = None
        self.answered_at = None
        self.ended_at = None
        self.acked = False  # the ACK of our 200 OK (incoming calls)
        self._ssrc = random.getrandbits(32)
        self._seq = random.getrandbits(16)
        self._ts = random.getrandbits(32)
        self._primed = False

    def __repr__(self):
        return f"<Call {self.phone.name} {'out' if self.outgoing else 'in'} {self.state} {self.code}>"

    # -- waiting ---------------------------------------------------------------------------------
    def wait(self, predicate, timeout: float, what: str):
        with self.phone.cond:
            if not self.phone.cond.wait_for(lambda: predicate(self), timeout):
                raise SipError(f"{self.phone.name}: {what} within {timeout} s (call {self})")

    def wait_answered(self, timeout=30.0):
        self.wait(lambda c: c.state in ("confirmed", "ended"), timeout, "not answered")
        if self.state != "confirmed" and self.answered_at is None:
            raise SipError(f"{self.phone.name}: call ended with {self.code} instead of being answered")
        return self

    def wait_ended(self, timeout=30.0):
        self.wait(lambda c: c.state == "ended", timeout, "not ended")
        return self

    def wait_code(self, timeout=30.0) -> int:
        """The INVITE's final response code (outgoing calls)."""
        self.wait(lambda c: c.code is not None, timeout, "no final response")
        return self.code

    # -- actions ---------------------------------------------------------------------------------
    def _request(self, method: str, extra=(), body: str = "", content_type: str = "") -> SipMessage:
        with self.phone.cond:
            self.local_cseq += 1
            cseq = self.local_cseq
        headers = [
            ("via", self.phone.via()),
            ("max-forwards", "70"),
            ("from", f"<{self.local_uri}>;tag={self.local_tag}"),
            ("to", f"<{self.remote_uri}>" + (f";tag={self.remote_tag}" if self.remote_tag else "")),
            ("call-id", self.call_id),
            ("cseq", f"{cseq} {method}"),
            ("contact", self.phone.contact()),
            ("user-agent", "fsctl-live-ua"),
            *extra,
        ]
        if content_type:
            headers.append(("content-type", content_type))
        return SipMessage(f"{method} {self.remote_target or self.remote_uri} SIP/2.0", headers, body)

    def bye(self, timeout=10.0):
        if self.state == "ended":
            return self
        msg = self._request("BYE")
        with self.phone.cond:
            self.state, self.ended_by, self.ended_at = "ended", "local", time.monotonic()
            self.phone.cond.notify_all()
        self.phone.transact(msg, timeout=timeout)
        return self

    def hangup(self, timeout=10.0):
        """End the call whatever its state: BYE when answered, CANCEL while ringing (then BYE if the
        answer crossed the CANCEL)."""
        if self.state == "confirmed":
            return self.bye(timeout)
        if self.state in ("calling", "early") and self.outgoing:
            try:
                return self.cancel(timeout)
            except SipError:
                if self.state == "confirmed":
                    return self.bye(timeout)
                raise
        return self

    def cancel(self, timeout=10.0):
        """CANCEL an outgoing call that has not been answered yet."""
        invite = self.invite
        headers = [
            ("via", invite.get("via")),
            ("max-forwards", "70"),
            ("from", invite.get("from")),
            ("to", invite.get("to")),
            ("call-id", self.call_id),
            ("cseq", f"{invite.cseq[0]} CANCEL"),
            ("user-agent", "fsctl-live-ua"),
        ]
        self.phone.transact(SipMessage(f"CANCEL {invite.uri} SIP/2.0", headers), timeout=timeout)
        self.wait(lambda c: c.state == "ended", timeout, "not ended after CANCEL")
        return self

    def refer(self, target: str, timeout=10.0) -> int:
        """Blind transfer with the phone's transfer button: REFER to `target` (a number or URI)."""
        uri = target if target.startswith("sip:") else f"sip:{target}@{self.phone.domain}"
        msg = self._request("REFER", extra=[("refer-to", f"<{uri}>"), ("referred-by", f"<{self.local_uri}>")])
        return self.phone.transact(msg, timeout=timeout).status

    def send_rtp_silence(self, packets=5):
        if not self.remote_media:
            raise SipError(f"{self.phone.name}: no remote media to send to")
        ip, port, _te = self.remote_media
        for _ in range(packets):
            self._seq = (self._seq + 1) & 0xFFFF
            self._ts = (self._ts + 160) & 0xFFFFFFFF
            header = struct.pack("!BBHII", 0x80, 0, self._seq, self._ts, self._ssrc)
            self.rtp.sendto(header + b"\xff" * 160, (ip, port))
            time.sleep(0.02)

    def send_dtmf(self, digits: str, gap=0.15):
        """RFC 2833 events on the call's RTP stream (after a little audio so the stream exists)."""
        if not self.remote_media:
            raise SipError(f"{self.phone.name}: no remote media to send DTMF to")
        ip, port, te = self.remote_media
        if not self._primed:
            # FreeSWITCH confirms the remote address on the first packets it receives and then
            # flushes its buffer: events sent with them are lost. Send some audio first.
            self.send_rtp_silence(15)
            time.sleep(0.1)
            self._primed = True
        self.send_rtp_silence(2)
        events = {**{str(i): i for i in range(10)}, "*": 10, "#": 11}
        for digit in digits:
            event = events[digit]
            self._ts = (self._ts + 160) & 0xFFFFFFFF
            ts = self._ts
            for i in range(8):
                end = i >= 5
                duration = min(i + 1, 6) * 160
                self._seq = (self._seq + 1) & 0xFFFF
                marker = 0x80 if i == 0 else 0
                header = struct.pack("!BBHII", 0x80, marker | te, self._seq, ts, self._ssrc)
                payload = struct.pack("!BBH", event, (0x80 if end else 0) | 10, duration)
                self.rtp.sendto(header + payload, (ip, port))
                if not end:
                    time.sleep(0.02)
            self._ts = (self._ts + 960) & 0xFFFFFFFF
            time.sleep(gap)

    def rtp_packets(self) -> int:
        """How many RTP packets have arrived since the last call (drains the socket)."""
        n = 0
        while True:
            try:
                self.rtp.recv(2048)
                n += 1
            except BlockingIOError:
                return n

    def close(self):
        try:
            self.rtp.close()
        except OSError:
            pass


class Phone:
    """A SIP endpoint: a registered phone of a tenant, or a carrier (no registration)."""

    def __init__(
        self,
        name: str,
        server: tuple[str, int],
        user: str = "",
        domain: str = "",
        password: str = "",
        policy: str = "answer",
        answer_after: float = 0.3,
    ):
        self.name = name
        self.server = server
        self.user = user or name
        self.domain = domain or "127.0.0.1"
        self.password = password
        self.policy = policy  # answer | busy | reject | ring | unavailable
        self.answer_after = answer_after
        self.sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        self.sock.bind(("127.0.0.1", 0))
        self.port = self.sock.getsockname()[1]
        self.cond = threading.Condition()
        self.calls: dict[str, Call] = {}
        self.invites: list[Invite] = []  # every new INVITE received, in order
        self.requests: list[str] = []  # method of every request received
        self._transactions: dict[tuple, list] = {}  # (branch, method) -> [responses]
        self._closed = False
        self._thread = threading.Thread(target=self._receive, name=f"sip-{name}", daemon=True)
        self._thread.start()

    def __repr__(self):
        return f"<Phone {self.user}@{self.domain} :{self.port}>"

    # -- headers ----------------------------------------------------------------------------------
    def via(self) -> str:
        return f"SIP/2.0/UDP 127.0.0.1:{self.port};branch=z9hG4bK{_token(14)};rport"

    def contact(self) -> str:
        return f"<sip:{self.user}@127.0.0.1:{self.port}>"

    def aor(self) -> str:
        return f"sip:{self.user}@{self.domain}"

    # -- transport ---------------------------------------------------------------------------------
    def send(self, msg: SipMessage, addr=None):
        self.sock.sendto(msg.to_bytes(), addr or self.server)

    def transact(self, msg: SipMessage, timeout=10.0, auth_tries=2) -> SipMessage:
        """Send a non-INVITE request (retransmitted), answer a 401/407 challenge; the final response."""
        for _attempt in range(auth_tries + 1):
            response = self._exchange(msg, timeout)
            if response.status in (401, 407) and self.password:
                msg = self._authorised(msg, response)
                continue
            return response
        return response

    def _exchange(self, msg: SipMessage, timeout: float) -> SipMessage:
        branch = (msg.branch, msg.method)  # a CANCEL shares its INVITE's branch
        with self.cond:
            self._transactions[branch] = []
        deadline = time.monotonic() + timeout
        interval = T1
        try:
            while True:
                self.send(msg)
                with self.cond:
                    self.cond.wait_for(
                        lambda: any(r.status >= 200 for r in self._transactions[branch]),
                        min(interval, max(0.0, deadline - time.monotonic())),
                    )
                    final = [r for r in self._transactions[branch] if r.status >= 200]
                    if final:
                        return final[0]
                    provisional = bool(self._transactions[branch])
                if time.monotonic() >= deadline:
                    raise SipError(f"{self.name}: no final response to {msg.first} within {timeout} s")
                if not provisional:
                    interval = min(interval * 2, 4.0)
        finally:
            with self.cond:
                self._transactions.pop(branch, None)

    def _authorised(self, msg: SipMessage, challenge: SipMessage) -> SipMessage:
        header, answer = (
            ("www-authenticate", "authorization")
            if challenge.status == 401
            else ("proxy-authenticate", "proxy-authorization")
        )
        value = digest(msg.method, msg.uri, challenge.get(header), self.user, self.password)
        num, method = msg.cseq
        headers = [(n, v) for n, v in msg.headers if n not in ("via", "cseq", "authorization", "proxy-authorization")]
        headers = [("via", self.via()), ("cseq", f"{num + 1} {method}")] + headers + [(answer, value)]
        return SipMessage(msg.first, headers, msg.body)

    # -- registration ------------------------------------------------------------------------------
    def register(self, expires=600, timeout=10.0) -> int:
        """REGISTER (digest auth); the final status (200 when registered)."""
        call_id = f"reg-{_token(16)}"
        headers = [
            ("via", self.via()),
            ("max-forwards", "70"),
            ("from", f"<{self.aor()}>;tag={_token()}"),
            ("to", f"<{self.aor()}>"),
            ("call-id", call_id),
            ("cseq", "1 REGISTER"),
            ("contact", self.contact()),
            ("expires", str(expires)),
            ("user-agent", "fsctl-live-ua"),
        ]
        response = self.transact(SipMessage(f"REGISTER sip:{self.domain} SIP/2.0", headers), timeout=timeout)
        return response.status

    # -- calls -------------------------------------------------------------------------------------
    def call(
        self, target: str, from_user: str | None = None, from_name: str | None = None, request_host: str | None = None
    ) -> Call:
        """Start a call to `target` (a number); returns at once, the call proceeds in the background."""
        call_id = f"{_token(16)}@fsctl-live"
        c = Call(self, call_id, outgoing=True)
        user = from_user or self.user
        c.local_uri = f"sip:{user}@{self.domain}"
        c.remote_uri = f"sip:{target}@{request_host or self.domain}"
        display = f'"{from_name}" ' if from_name else ""
        with self.cond:
            self.calls[call_id] = c
        body = self._sdp(c)
        headers = [
            ("via", self.via()),
            ("max-forwards", "70"),
            ("from", f"{display}<{c.local_uri}>;tag={c.local_tag}"),
            ("to", f"<{c.remote_uri}>"),
            ("call-id", call_id),
            ("cseq", f"{c.local_cseq} INVITE"),
            ("contact", f"<sip:{user}@127.0.0.1:{self.port}>"),
            ("user-agent", "fsctl-live-ua"),
            ("allow", "INVITE, ACK, BYE, CANCEL, OPTIONS, NOTIFY, REFER, INFO, UPDATE"),
            ("content-type", "application/sdp"),
        ]
        c.invite = SipMessage(f"INVITE {c.remote_uri} SIP/2.0", headers, body)
        threading.Thread(target=self._invite_client, args=(c,), name=f"invite-{self.name}", daemon=True).start()
        return c

    def _invite_client(self, c: Call, auth_tries=2):
        tries = 0
        while True:
            msg = c.invite
            branch = (msg.branch, "INVITE")
            with self.cond:
                self._transactions[branch] = []
            deadline = time.monotonic() + 32 * T1
            interval = T1
            final = None
            while final is None:
                self.send(msg)
                with self.cond:
                    self.cond.wait_for(
                        lambda: bool(self._transactions[branch]), min(interval, max(0.0, deadline - time.monotonic()))
                    )
                    if self._transactions[branch]:
                        break
                if time.monotonic() >= deadline:
                    with self.cond:
                        c.state, c.code, c.ended_by = "ended", 408, "failure"
                        self.cond.notify_all()
                    return
                interval *= 2
            # A response arrived: wait for the final one (as long as the call rings).
            with self.cond:
                self.cond.wait_for(
                    lambda: any(r.status >= 200 for r in self._transactions[branch]) or c.state == "ended"
                )
                finals = [r for r in self._transactions[branch] if r.status >= 200]
                self._transactions.pop(branch, None)
            if not finals:
                return
            final = finals[0]
            if final.status in (401, 407) and self.password and tries < auth_tries:
                tries += 1
                c.invite = self._authorised(msg, final)
                continue
            if final.status in (401, 407):
                with self.cond:
                    c.state, c.code, c.ended_by = "ended", final.status, "failure"
                    self.cond.notify_all()
            return

    def _ack_failure(self, c: Call, response: SipMessage):
        invite = c.invite
        headers = [
            ("via", invite.get("via")),
            ("max-forwards", "70"),
            ("from", invite.get("from")),
            ("to", response.get("to")),
            ("call-id", c.call_id),
            ("cseq", f"{invite.cseq[0]} ACK"),
        ]
        self.send(SipMessage(f"ACK {invite.uri} SIP/2.0", headers))

    def _ack_success(self, c: Call, response: SipMessage):
        headers = [
            ("via", self.via()),
            ("max-forwards", "70"),
            ("from", c.invite.get("from")),
            ("to", response.get("to")),
            ("call-id", c.call_id),
            ("cseq", f"{response.cseq[0]} ACK"),
            ("contact", self.contact()),
        ]
        self.send(SipMessage(f"ACK {c.remote_target or c.remote_uri} SIP/2.0", headers))

    def _sdp(self, c: Call, te=101) -> str:
        port = c.rtp.getsockname()[1]
        sess = next(_counter) + 1000
        return (
            f"v=0\r\no=- {sess} {sess} IN IP4 127.0.0.1\r\ns=fsctl-live\r\nc=IN IP4 127.0.0.1\r\nt=0 0\r\n"
            f"m=audio {port} RTP/AVP 0 {te}\r\na=rtpmap:0 PCMU/8000\r\na=rtpmap:{te} telephone-event/8000\r\n"
            f"a=fmtp:{te} 0-16\r\na=ptime:20\r\na=sendrecv\r\n"
        )

    # -- receiving ---------------------------------------------------------------------------------
    def _receive(self):
        while not self._closed:
            try:
                data, addr = self.sock.recvfrom(65535)
            except OSError:
                return
            if not data.strip():
                continue  # keep-alive
            try:
                msg = SipMessage.parse(data)
                if msg.is_response:
                    self._on_response(msg)
                else:
                    self._on_request(msg, addr)
            except Exception as exc:  # a test UA must never die silently
                if not self._closed:
                    print(f"{self.name}: error handling {data[:80]!r}: {exc!r}")

    def _on_response(self, msg: SipMessage):
        num, method = msg.cseq
        with self.cond:
            waiting = self._transactions.get((msg.branch, method))
            if waiting is not None:
                waiting.append(msg)
            c = self.calls.get(msg.get("call-id"))
            if method == "INVITE" and c is not None and c.outgoing:
                c.responses.append(msg.status)
                if 100 < msg.status < 200 and c.state == "calling":
                    c.state = "early"
                    media = sdp_media(msg.body)
                    if media:
                        c.remote_media = media
                elif 200 <= msg.status < 300:
                    if c.state != "ended":
                        c.remote_tag = tag_of(msg.get("to"))
                        c.remote_target = uri_of(msg.get("contact")) or c.remote_uri
                        media = sdp_media(msg.body)
                        if media:
                            c.remote_media = media
                        if c.state != "confirmed":
                            c.state, c.code, c.answered_at = "confirmed", msg.status, time.monotonic()
                elif msg.status >= 300 and msg.status not in (401, 407):
                    c.state, c.code, c.ended_at = "ended", msg.status, time.monotonic()
                    c.ended_by = c.ended_by or "failure"
                    if msg.status == 487:
                        c.ended_by = "cancel"
                self.cond.notify_all()
            else:
                self.cond.notify_all()
        if method == "INVITE" and c is not None and c.outgoing:
            if 200 <= msg.status < 300:
                self._ack_success(c, msg)  # (again for a retransmitted 200)
            elif msg.status >= 300:
                self._ack_failure(c, msg)

    def _reply(
        self, req: SipMessage, addr, status: int, reason: str, to_tag: str = "", body: str = "", extra=()
    ) -> bytes:
        to = req.get("to")
        if to_tag and "tag=" not in to:
            to = f"{to};tag={to_tag}"
        headers = [("via", v) for v in req.all("via")] + [
            ("from", req.get("from")),
            ("to", to),
            ("call-id", req.get("call-id")),
            ("cseq", req.get("cseq")),
        ]
        if req.method in ("INVITE", "UPDATE") and status < 300:
            headers.append(("contact", self.contact()))
        headers += list(extra)
        if body:
            headers.append(("content-type", "application/sdp"))
        wire = SipMessage(f"SIP/2.0 {status} {reason}", headers, body).to_bytes()
        # Responses go where the request came from (rport behaviour).
        self.sock.sendto(wire, addr)
        return wire

    def _on_request(self, req: SipMessage, addr):
        method = req.method
        call_id = req.get("call-id")
        with self.cond:
            self.requests.append(method)
            c = self.calls.get(call_id)
        if method == "INVITE":
            if c is not None and not tag_of(req.get("to")):
                if c.invite is not None and c.invite.branch == req.branch and c.last_response:
                    self.sock.sendto(c.last_response, addr)  # a retransmission
                return
            if c is not None:  # re-INVITE: same media
                media = sdp_media(req.body)
                if media:
                    c.remote_media = media
                self._reply(req, addr, 200, "OK", body=self._sdp(c, (c.remote_media or (0, 0, 101))[2]))
                return
            self._incoming_invite(req, addr)
        elif method == "ACK":
            if c is not None:
                with self.cond:
                    c.acked = True
                    if c.state == "early" and c.code == 200:
                        c.state = "confirmed"
                    self.cond.notify_all()
        elif method == "BYE":
            self._reply(req, addr, 200, "OK")
            if c is not None:
                with self.cond:
                    if c.state != "ended":
                        c.state, c.ended_by, c.ended_at = "ended", "remote", time.monotonic()
                    self.cond.notify_all()
        elif method == "CANCEL":
            self._reply(req, addr, 200, "OK")
            if c is not None and c.state != "ended" and c.invite is not None:
                c.last_response = self._reply(c.invite, addr, 487, "Request Terminated", c.local_tag)
                with self.cond:
                    c.state, c.code, c.ended_by, c.ended_at = "ended", 487, "cancel", time.monotonic()
                    self.cond.notify_all()
        elif method == "UPDATE" and c is not None:
            self._reply(req, addr, 200, "OK", body=self._sdp(c) if req.body else "")
        elif method == "NOTIFY":
            self._reply(req, addr, 200, "OK")
            if c is not None:
                with self.cond:
                    c.notifies.append(req.body)
                    self.cond.notify_all()
        else:  # OPTIONS, INFO, MESSAGE...
            self._reply(req, addr, 200, "OK")

    def _incoming_invite(self, req: SipMessage, addr):
        c = Call(self, req.get("call-id"), outgoing=False)
        c.invite = req
        c.remote_tag = tag_of(req.get("from"))
        c.remote_uri = uri_of(req.get("from"))
        c.local_uri = uri_of(req.get("to"))
        c.remote_target = uri_of(req.get("contact"))
        c.remote_media = sdp_media(req.body)
        invite = Invite(
            c.call_id,
            user_of(req.get("from")),
            display_of(req.get("from")),
            user_of(req.get("to")),
            time.monotonic(),
            {n: v for n, v in req.headers},
        )
        with self.cond:
            self.calls[c.call_id] = c
            self.invites.append(invite)
            policy = self.policy
            self.cond.notify_all()
        self._reply(req, addr, 100, "Trying")
        if policy == "busy":
            self._fail(c, addr, 486, "Busy Here")
        elif policy == "reject":
            self._fail(c, addr, 603, "Decline")
        elif policy == "unavailable":
            self._fail(c, addr, 480, "Temporarily Unavailable")
        else:
            c.last_response = self._reply(req, addr, 180, "Ringing", c.local_tag)
            with self.cond:
                c.state = "early"
            if policy == "answer":
                timer = threading.Timer(self.answer_after, self._answer, args=(c, addr))
                timer.daemon = True
                timer.start()

    def _fail(self, c: Call, addr, status, reason):
        c.last_response = self._reply(c.invite, addr, status, reason, c.local_tag)
        with self.cond:
            c.state, c.code, c.ended_by, c.ended_at = "ended", status, "local", time.monotonic()
            self.cond.notify_all()

    def _answer(self, c: Call, addr):
        with self.cond:
            if c.state == "ended":
                return
        te = (c.remote_media or (0, 0, 101))[2]
        c.last_response = self._reply(c.invite, addr, 200, "OK", c.local_tag, body=self._sdp(c, te))
        with self.cond:
            c.code, c.answered_at = 200, time.monotonic()
            c.state = "confirmed"
            self.cond.notify_all()
        # RFC 3261 13.3.1.4: the 200 OK is sent again (T1, 2T1... up to T2) until its ACK arrives; a
        # lost 200 would otherwise leave FreeSWITCH ringing a phone that answered.
        wire, interval, deadline = c.last_response, T1, time.monotonic() + 64 * T1
        while True:
            with self.cond:
                self.cond.wait_for(lambda: c.acked or c.state == "ended" or self._closed, interval)
                if c.acked or c.state == "ended" or self._closed or time.monotonic() > deadline:
                    return
            self.sock.sendto(wire, addr)
            interval = min(interval * 2, 4.0)

    def answer(self, c: Call):
        """Answer a ringing incoming call now (policy "ring")."""
        self._answer(c, self.server_addr_of(c))

    def server_addr_of(self, c: Call):
        m = re.search(r"SIP/2.0/UDP ([0-9.]+):(\d+)", c.invite.get("via"))
        return (m.group(1), int(m.group(2))) if m else self.server

    # -- waiting for what others do ----------------------------------------------------------------
    def wait_invite(self, timeout=30.0, since=0) -> Invite:
        """The first INVITE received after the first `since` ones."""
        with self.cond:
            if not self.cond.wait_for(lambda: len(self.invites) > since, timeout):
                raise SipError(f"{self.name}: no INVITE within {timeout} s")
            return self.invites[since]

    def incoming(self, invite: Invite) -> Call:
        return self.calls[invite.call_id]

    def wait_answered_incoming(self, timeout=30.0) -> Call:
        """The first incoming call this phone answered."""
        with self.cond:
            ok = self.cond.wait_for(lambda: any(not c.outgoing and c.answered_at for c in self.calls.values()), timeout)
            if not ok:
                raise SipError(f"{self.name}: answered no call within {timeout} s (INVITEs: {len(self.invites)})")
            return next(c for c in self.calls.values() if not c.outgoing and c.answered_at)

    def close(self):
        self._closed = True
        try:
            self.sock.close()
        except OSError:
            pass
        for c in list(self.calls.values()):
            c.close()
