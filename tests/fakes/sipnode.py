"""SIP over UDP on loopback for the Kamailio tests: a message parser, a request builder, and a
fake FreeSWITCH node that answers OPTIONS probes and records what Kamailio forwards to it.

Only what those tests need (no SDP, no retransmissions): a request is sent once and its final
reply awaited with a deadline.
"""

from __future__ import annotations

import socket
import threading
import time
import uuid


def parse(data: bytes) -> dict:
    """{"start": first line, "headers": [(name, value)], "body": bytes} of one SIP message."""
    head, _, body = data.partition(b"\r\n\r\n")
    lines = head.decode("utf-8", "replace").split("\r\n")
    headers = []
    for line in lines[1:]:
        name, _, value = line.partition(":")
        headers.append((name.strip(), value.strip()))
    return {"start": lines[0], "headers": headers, "body": body}


def header(msg: dict, name: str, default=None):
    """The first value of a header (case-insensitive), or default."""
    for key, value in msg["headers"]:
        if key.lower() == name.lower():
            return value
    return default


def headers(msg: dict, name: str) -> list:
    """Every value of a header (case-insensitive), in order."""
    return [value for key, value in msg["headers"] if key.lower() == name.lower()]


def status(msg: dict) -> int:
    """A reply's status code."""
    return int(msg["start"].split()[1])


def reply_to(request: dict, code: int, reason: str, extra=(), to_tag=True) -> bytes:
    """A reply echoing Via, From, To (with a tag), Call-ID and CSeq."""
    lines = [f"SIP/2.0 {code} {reason}"]
    lines += [f"Via: {v}" for v in headers(request, "Via")]
    lines += [f"Record-Route: {v}" for v in headers(request, "Record-Route")]
    to = header(request, "To")
    if to_tag and ";tag=" not in to:
        to += ";tag=" + uuid.uuid4().hex[:8]
    lines += [
        f"From: {header(request, 'From')}",
        f"To: {to}",
        f"Call-ID: {header(request, 'Call-ID')}",
        f"CSeq: {header(request, 'CSeq')}",
        *extra,
        "Content-Length: 0",
    ]
    return ("\r\n".join(lines) + "\r\n\r\n").encode()


class UdpClient:
    """One UDP socket on a free loopback port that sends requests and waits for their final replies."""

    def __init__(self):
        self.sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        self.sock.bind(("127.0.0.1", 0))
        self.port = self.sock.getsockname()[1]

    def request(self, method, uri, target, from_uri, to_uri=None, extra=(), call_id=None, timeout=10.0):
        """Send one request to `target` (host, port); return the final reply (dict), or None at the deadline."""
        branch = "z9hG4bK" + uuid.uuid4().hex
        call_id = call_id or uuid.uuid4().hex
        lines = [
            f"{method} {uri} SIP/2.0",
            f"Via: SIP/2.0/UDP 127.0.0.1:{self.port};branch={branch};rport",
            "Max-Forwards: 70",
            f"From: <{from_uri}>;tag={uuid.uuid4().hex[:8]}",
            f"To: <{to_uri or from_uri}>",
            f"Call-ID: {call_id}",
            f"CSeq: 1 {method}",
            f"Contact: <sip:test@127.0.0.1:{self.port}>",
            *extra,
            "Content-Length: 0",
        ]
        self.sock.sendto(("\r\n".join(lines) + "\r\n\r\n").encode(), target)
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            self.sock.settimeout(max(0.05, deadline - time.monotonic()))
            try:
                data, _ = self.sock.recvfrom(65535)
            except socket.timeout:
                break
            msg = parse(data)
            if msg["start"].startswith("SIP/2.0") and status(msg) >= 200 and header(msg, "Call-ID") == call_id:
                return msg
        return None

    def receive(self, method, timeout=10.0):
        """The next request of `method` that reaches this socket (answered 200), or None at the deadline."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            self.sock.settimeout(max(0.05, deadline - time.monotonic()))
            try:
                data, peer = self.sock.recvfrom(65535)
            except socket.timeout:
                break
            msg = parse(data)
            if msg["start"].startswith(method + " "):
                self.sock.sendto(reply_to(msg, 200, "OK"), peer)
                return msg
        return None

    def close(self):
        self.sock.close()


class FakeNode:
    """A UDP SIP endpoint standing in for a FreeSWITCH profile: 200 to OPTIONS and to every other
    request (recorded in `requests`), until `silent = True` (it then answers nothing at all)."""

    def __init__(self):
        self.sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        self.sock.bind(("127.0.0.1", 0))
        self.port = self.sock.getsockname()[1]
        self.requests: list = []
        self.options = 0
        self.silent = False
        self._running = True
        self._thread = threading.Thread(target=self._loop, daemon=True)
        self._thread.start()

    def _loop(self):
        self.sock.settimeout(0.2)
        while self._running:
            try:
                data, peer = self.sock.recvfrom(65535)
            except socket.timeout:
                continue
            except OSError:
                return
            msg = parse(data)
            if msg["start"].startswith("SIP/2.0") or self.silent:
                continue
            method = msg["start"].split()[0]
            if method == "OPTIONS":
                self.options += 1
            else:
                self.requests.append(msg)
            if method != "ACK":
                try:
                    self.sock.sendto(reply_to(msg, 200, "OK"), peer)
                except OSError:  # closed meanwhile
                    return

    def send_via(self, proxy, method, uri, route, call_id=None):
        """Send a request from this node to `uri` through `proxy`, with `route` as its Route (a phone's Path)."""
        lines = [
            f"{method} {uri} SIP/2.0",
            f"Via: SIP/2.0/UDP 127.0.0.1:{self.port};branch=z9hG4bK{uuid.uuid4().hex}",
            "Max-Forwards: 70",
            f"Route: {route}",
            f"From: <sip:node@127.0.0.1:{self.port}>;tag=n1",
            f"To: <{uri}>",
            f"Call-ID: {call_id or uuid.uuid4().hex}",
            f"CSeq: 1 {method}",
            f"Contact: <sip:node@127.0.0.1:{self.port}>",
            "Content-Length: 0",
        ]
        self.sock.sendto(("\r\n".join(lines) + "\r\n\r\n").encode(), proxy)

    def wait_request(self, method, timeout=10.0, start=0):
        """The first recorded request of `method` after index `start`, waiting up to `timeout`."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            for msg in self.requests[start:]:
                if msg["start"].startswith(method + " "):
                    return msg
            time.sleep(0.02)
        return None

    def wait_probed(self, count=1, timeout=15.0):
        """Wait until Kamailio has sent `count` OPTIONS probes (True), or the deadline (False)."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.options >= count:
                return True
            time.sleep(0.05)
        return False

    def close(self):
        self._running = False
        self.sock.close()
        self._thread.join(2)
