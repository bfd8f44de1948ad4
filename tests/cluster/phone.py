"""A small SIP phone over UDP on loopback for the cluster tests: it registers and calls through a
proxy (Kamailio) with digest authentication, answers the calls it gets, and hangs up.

Enough SIP for these tests, no more: requests are retransmitted every 0.5 s until answered (UDP),
replies are matched by Call-ID and CSeq, dialogs keep their route set (Record-Route) so that
in-dialog requests go back through Kamailio, and the phone answers OPTIONS / NOTIFY (the MWI that
FreeSWITCH sends after a REGISTER) / MESSAGE with 200. Media is announced (PCMU on a port of its
own) but never sent. To fold into tests/live's phone once that layer is on main.
"""

from __future__ import annotations

import hashlib
import itertools
import re
import socket
import threading
import time
import uuid


def _md5(text):
    return hashlib.md5(text.encode()).hexdigest()


def parse(data: bytes) -> dict:
    head, _, body = data.partition(b"\r\n\r\n")
    lines = head.decode("utf-8", "replace").split("\r\n")
    headers = []
    for line in lines[1:]:
        name, _, value = line.partition(":")
        headers.append((name.strip().lower(), value.strip()))
    return {"start": lines[0], "headers": headers, "body": body}


def hdr(msg, name, default=""):
    name = name.lower()
    short = {"via": "v", "from": "f", "to": "t", "call-id": "i", "contact": "m", "content-length": "l"}.get(name)
    for key, value in msg["headers"]:
        if key == name or key == short:
            return value
    return default


def hdrs(msg, name):
    return [value for key, value in msg["headers"] if key == name.lower()]


def uri_of(value):
    """The URI inside `<...>` (or the value up to its parameters)."""
    m = re.search(r"<([^>]*)>", value)
    return m.group(1) if m else value.split(";")[0].strip()


def tag_of(value):
    m = re.search(r";\s*tag=([^;>\s]+)", value)
    return m.group(1) if m else ""


class Call:
    """One call's dialog as this phone sees it."""

    def __init__(self, call_id, local, remote, remote_target, route, outgoing):
        self.call_id, self.local, self.remote = call_id, local, remote
        self.remote_target, self.route, self.outgoing = remote_target, route, outgoing
        self.status = 0  # final status of the INVITE (outgoing) or 200 (incoming, answered)
        self.ended = threading.Event()
        self.invite = None  # the INVITE that made it (incoming)
        self.answered_at = None


class Phone:
    """user@domain registering and calling through `proxy` (host, port)."""

    def __init__(self, user, domain, password, proxy, answer=True):
        self.user, self.domain, self.password, self.proxy = user, domain, password, tuple(proxy)
        self.answer = answer
        self.sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        self.sock.bind(("127.0.0.1", 0))
        self.port = self.sock.getsockname()[1]
        self.cseq = itertools.count(1)
        self.reg_call_id = uuid.uuid4().hex
        self.reg_tag = uuid.uuid4().hex[:8]
        self.lock = threading.Condition()
        self.replies = {}  # (call-id, cseq number) -> [replies]
        self.incoming = []  # Calls that rang here
        self.calls = {}  # call-id -> Call
        self.requests = []  # every request received (start line, for the tests' look)
        self.running = True
        self.thread = threading.Thread(target=self._loop, daemon=True, name=f"phone-{user}@{domain}")
        self.thread.start()

    @property
    def aor(self):
        return f"sip:{self.user}@{self.domain}"

    @property
    def contact(self):
        return f"<sip:{self.user}@127.0.0.1:{self.port}>"

    # ------------------------------------------------------------------ wire
    def _send(self, text, addr=None):
        try:
            self.sock.sendto(text.encode(), addr or self.proxy)
        except OSError:
            pass

    def _request(self, method, uri, call_id, cseq, from_, to, extra=(), body="", branch=None):
        branch = branch or "z9hG4bK" + uuid.uuid4().hex
        lines = [
            f"{method} {uri} SIP/2.0",
            f"Via: SIP/2.0/UDP 127.0.0.1:{self.port};branch={branch};rport",
            "Max-Forwards: 70",
            f"From: {from_}",
            f"To: {to}",
            f"Call-ID: {call_id}",
            f"CSeq: {cseq} {method}",
            f"Contact: {self.contact}",
            "User-Agent: fsctl-cluster-test",
            *extra,
        ]
        if body:
            lines.append("Content-Type: application/sdp")
        lines.append(f"Content-Length: {len(body.encode())}")
        return "\r\n".join(lines) + "\r\n\r\n" + body, branch

    def _transact(self, text, call_id, cseq, timeout):
        """Send a request (retransmitted every 0.5 s until a reply comes); return its final reply or None."""
        key = (call_id, cseq)
        with self.lock:
            self.replies[key] = []
        deadline = time.monotonic() + timeout
        next_send = 0.0
        while time.monotonic() < deadline:
            with self.lock:
                got = self.replies[key]
                final = [r for r in got if int(r["start"].split()[1]) >= 200]
                if final:
                    return final[0]
                if not got and time.monotonic() >= next_send:
                    self._send(text)
                    next_send = time.monotonic() + 0.5
                self.lock.wait(0.05)
        return None

    def _auth(self, reply, method, uri):
        """The Authorization / Proxy-Authorization header answering a 401 / 407."""
        code = int(reply["start"].split()[1])
        challenge = hdr(reply, "WWW-Authenticate" if code == 401 else "Proxy-Authenticate")
        params = dict(re.findall(r'(\w+)="?([^",]*)"?', challenge))
        realm, nonce = params.get("realm", ""), params.get("nonce", "")
        ha1, ha2 = _md5(f"{self.user}:{realm}:{self.password}"), _md5(f"{method}:{uri}")
        name = "Authorization" if code == 401 else "Proxy-Authorization"
        value = f'Digest username="{self.user}", realm="{realm}", nonce="{nonce}", uri="{uri}", algorithm=MD5'
        if "auth" in params.get("qop", "").split(","):
            cnonce, nc = uuid.uuid4().hex[:16], "00000001"
            response = _md5(f"{ha1}:{nonce}:{nc}:{cnonce}:auth:{ha2}")
            value += f', qop=auth, nc={nc}, cnonce="{cnonce}", response="{response}"'
        else:
            value += f', response="{_md5(f"{ha1}:{nonce}:{ha2}")}"'
        if params.get("opaque"):
            value += f', opaque="{params["opaque"]}"'
        return f"{name}: {value}"

    # ------------------------------------------------------------------ registration
    def register(self, expires=60, timeout=20.0) -> int:
        """REGISTER (answering the challenge); the final status, 0 when nothing answered."""
        uri = f"sip:{self.domain}"
        frm, to = f"<{self.aor}>;tag={self.reg_tag}", f"<{self.aor}>"
        extra = [f"Expires: {expires}"]
        for _ in range(3):
            cseq = next(self.cseq)
            text, _ = self._request("REGISTER", uri, self.reg_call_id, cseq, frm, to, extra)
            reply = self._transact(text, self.reg_call_id, cseq, timeout)
            if reply is None:
                return 0
            code = int(reply["start"].split()[1])
            if code not in (401, 407):
                self.last_register = reply
                return code
            extra = [f"Expires: {expires}", self._auth(reply, "REGISTER", uri)]
        return code

    # ------------------------------------------------------------------ calls
    def _sdp(self):
        return (
            f"v=0\r\no=- 1 1 IN IP4 127.0.0.1\r\ns=-\r\nc=IN IP4 127.0.0.1\r\nt=0 0\r\n"
            f"m=audio {self.port + 1} RTP/AVP 0 101\r\na=rtpmap:0 PCMU/8000\r\na=rtpmap:101 telephone-event/8000\r\n"
            "a=sendrecv\r\n"
        )

    def call(self, number, domain=None, timeout=30.0) -> Call:
        """INVITE number@domain (answering challenges); the Call, answered (status 200) or not."""
        uri = f"sip:{number}@{domain or self.domain}"
        call_id = uuid.uuid4().hex
        frm, to = f"<{self.aor}>;tag={uuid.uuid4().hex[:8]}", f"<{uri}>"
        extra = []
        deadline = time.monotonic() + timeout
        for _ in range(3):
            cseq = next(self.cseq)
            text, branch = self._request("INVITE", uri, call_id, cseq, frm, to, extra, self._sdp())
            reply = self._transact(text, call_id, cseq, max(1.0, deadline - time.monotonic()))
            if reply is None:
                call = Call(call_id, frm, to, uri, [], True)
                return call
            code = int(reply["start"].split()[1])
            if code >= 300:  # ACK of a failure: same branch, hop by hop (Kamailio absorbs it)
                ack, _ = self._request("ACK", uri, call_id, cseq, frm, hdr(reply, "To"), branch=branch)
                self._send(ack)
            if code in (401, 407):
                extra = [self._auth(reply, "INVITE", uri)]
                continue
            # The caller's route set: the Record-Route entries in reverse order.
            route = [x.strip() for value in hdrs(reply, "record-route") for x in value.split(",")][::-1]
            call = Call(call_id, frm, hdr(reply, "To"), uri_of(hdr(reply, "Contact")) or uri, route, True)
            call.status, call.cseq = code, cseq
            if code == 200:
                call.answered_at = time.monotonic()
                self._in_dialog(call, "ACK", cseq)
                with self.lock:
                    self.calls[call_id] = call
            return call
        call = Call(call_id, frm, to, uri, [], True)
        call.status = code
        return call

    def _in_dialog(self, call, method, cseq=None):
        cseq = cseq or next(self.cseq)
        extra = [f"Route: {r}" for r in call.route]
        text, _ = self._request(method, call.remote_target, call.call_id, cseq, call.local, call.remote, extra)
        return text, cseq

    def hangup(self, call, timeout=10.0) -> int:
        """BYE an answered call; the final status of the BYE."""
        text, cseq = self._in_dialog(call, "BYE")
        reply = self._transact(text, call.call_id, cseq, timeout)
        call.ended.set()
        return int(reply["start"].split()[1]) if reply else 0

    def wait_ringing(self, timeout=30.0, start=0) -> Call | None:
        """The first call that rang this phone after index `start` (waiting up to `timeout`)."""
        deadline = time.monotonic() + timeout
        with self.lock:
            while time.monotonic() < deadline:
                if len(self.incoming) > start:
                    return self.incoming[start]
                self.lock.wait(0.1)
        return None

    # ------------------------------------------------------------------ receiving
    def _loop(self):
        self.sock.settimeout(0.2)
        while self.running:
            try:
                data, peer = self.sock.recvfrom(65535)
            except socket.timeout:
                continue
            except OSError:
                return
            if not data.strip():
                continue
            msg = parse(data)
            if msg["start"].startswith("SIP/2.0"):
                cseq = hdr(msg, "CSeq").split()
                key = (hdr(msg, "Call-ID"), int(cseq[0])) if cseq else None
                with self.lock:
                    if key in self.replies:
                        self.replies[key].append(msg)
                    self.lock.notify_all()
            else:
                self._on_request(msg, peer)

    def _reply(self, req, code, reason, peer, to_tag=None, extra=(), body=""):
        lines = [f"SIP/2.0 {code} {reason}"]
        lines += [f"Via: {v}" for v in hdrs(req, "via")]
        if code < 300 and req["start"].startswith("INVITE"):
            lines += [f"Record-Route: {v}" for v in hdrs(req, "record-route")]
        to = hdr(req, "To")
        if to_tag and not tag_of(to):
            to += f";tag={to_tag}"
        lines += [
            f"From: {hdr(req, 'From')}",
            f"To: {to}",
            f"Call-ID: {hdr(req, 'Call-ID')}",
            f"CSeq: {hdr(req, 'CSeq')}",
            f"Contact: {self.contact}",
            *extra,
        ]
        if body:
            lines.append("Content-Type: application/sdp")
        lines.append(f"Content-Length: {len(body.encode())}")
        self._send("\r\n".join(lines) + "\r\n\r\n" + body, peer)

    def _on_request(self, req, peer):
        method = req["start"].split()[0]
        call_id = hdr(req, "Call-ID")
        with self.lock:
            self.requests.append(req["start"])
        if method == "INVITE":
            with self.lock:
                call = self.calls.get(call_id)
                if call is None:
                    route = [r for v in hdrs(req, "record-route") for r in (x.strip() for x in v.split(","))]
                    call = Call(call_id, hdr(req, "To"), hdr(req, "From"), uri_of(hdr(req, "Contact")), route, False)
                    call.invite, call.tag = req, uuid.uuid4().hex[:8]
                    call.local = f"{hdr(req, 'To')};tag={call.tag}"
                    self.calls[call_id] = call
                    self.incoming.append(call)
                    self.lock.notify_all()
            self._reply(req, 180, "Ringing", peer, call.tag)
            if self.answer:
                call.status = 200
                call.answered_at = call.answered_at or time.monotonic()
                self._reply(req, 200, "OK", peer, call.tag, body=self._sdp())
        elif method == "ACK":
            pass
        elif method == "BYE":
            self._reply(req, 200, "OK", peer)
            with self.lock:
                call = self.calls.get(call_id)
            if call is not None:
                call.ended.set()
        elif method == "CANCEL":
            self._reply(req, 200, "OK", peer)
            with self.lock:
                call = self.calls.get(call_id)
            if call is not None and call.invite is not None:
                self._reply(call.invite, 487, "Request Terminated", peer, call.tag)
                call.ended.set()
        else:  # OPTIONS, NOTIFY (message waiting), MESSAGE, INFO...
            self._reply(req, 200, "OK", peer)

    def close(self):
        self.running = False
        self.sock.close()
        self.thread.join(2)
