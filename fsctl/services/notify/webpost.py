"""One HTTP POST to a tenant's webhook: a total deadline, public addresses only, no redirect.

Webhook and CRM URLs are typed by tenants, so the request is made here rather than by urllib:

- urllib's timeout bounds each socket operation; a server answering a byte a second held a
  delivery for 80 s, beyond the outbox claim, and another drainer sent the row again. Here one
  deadline bounds the whole exchange (`deadline`: the name look-up, connect, TLS, request, reply).
- The address is checked after the name is resolved, on the address actually connected to:
  loopback, private, link-local and every other non-public address (169.254.169.254, ::1,
  0x7f000001) is refused unless a network of `allow` holds it.
- A 3xx answer is an answer: redirects are never followed (a 303 led urllib to GET an
  internal admin page on another local port).
- The reply is read up to MAX_REPLY bytes; anything that is not HTTP is an error of this
  delivery, never an exception that escapes it.
"""

from __future__ import annotations

import ipaddress
import re
import socket
import ssl
import time
from urllib.parse import urlsplit

from . import deadline as _deadline

MAX_REPLY = 1 << 20  # bytes of a webhook's answer fsctl reads (its JSON is small)
MAX_HEAD = 64 << 10


class PostError(Exception):
    """The POST did not get an HTTP answer (the message says why, on one line)."""


def redact_url(url: str) -> str:
    """A URL as errors and listings show it: no password, no query values, no Bitrix24 webhook code.

    A Bitrix24 inbound webhook is `https://<portal>/rest/<user id>/<code>/`: the code is the
    credential, so it becomes `***`.
    """
    parts = urlsplit(url)
    netloc = parts.netloc.rsplit("@", 1)[-1]
    path = re.sub(r"(/rest/[0-9]+/)[^/]+", r"\1***", parts.path)
    return f"{parts.scheme}://{netloc}{path}" + ("?***" if parts.query else "")


def literal_address(host: str):
    """The IP address a host name written as a number stands for (`127.1`, `0x7f000001`, `::1`), or None."""
    host = (host or "").strip("[]")
    try:
        return ipaddress.ip_address(host.split("%", 1)[0])
    except ValueError:
        pass
    if re.fullmatch(r"[0-9a-fA-FxX.]+", host):
        try:  # the C library reads these forms as IPv4 too (inet_aton)
            return ipaddress.IPv4Address(socket.inet_aton(host))
        except OSError:
            return None
    return None


def refused_address(address, allow=()) -> bool:
    """Whether a webhook may not go to this address: not public and in no allowed network."""
    if address.version == 6 and address.ipv4_mapped is not None:
        address = address.ipv4_mapped
    if any(address in network for network in allow):
        return False
    return not address.is_global or address.is_multicast


def refused_host(host: str, allow=()) -> bool:
    """Whether a URL's host is refused as written (`localhost`, a non-public address literal)."""
    name = (host or "").lower().rstrip(".")
    if name == "localhost" or name.endswith(".localhost"):
        return not any(ipaddress.ip_address("127.0.0.1") in n for n in allow)
    address = literal_address(name)
    return address is not None and refused_address(address, allow)


def post(url: str, body: bytes, headers: dict, deadline: float, allow=(), resolver=None) -> tuple[int, bytes]:
    """POST `body` to `url` before `deadline` (time.monotonic()); (status, reply body) or PostError.

    `resolver` stands in for socket.getaddrinfo (tests); the look-up is bounded by the deadline too.
    """
    parts = urlsplit(url)
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise PostError("not an http:// or https:// URL")
    host = parts.hostname
    port = parts.port or (443 if parts.scheme == "https" else 80)
    if refused_host(host, allow):
        raise PostError(f"{host} is not a public address (allow its network with webhook_allow_networks)")
    sock = _connect(host, port, deadline, allow, resolver)
    try:
        if parts.scheme == "https":
            _settimeout(sock, deadline)
            sock = ssl.create_default_context().wrap_socket(sock, server_hostname=host)
        path = (parts.path or "/") + (f"?{parts.query}" if parts.query else "")
        head = [
            f"POST {path} HTTP/1.1",
            f"Host: {parts.netloc.rsplit('@', 1)[-1]}",
            "Connection: close",
            f"Content-Length: {len(body)}",
        ] + [f"{k}: {v}" for k, v in headers.items()]
        _settimeout(sock, deadline)
        sock.sendall(("\r\n".join(head) + "\r\n\r\n").encode("latin-1") + body)
        return _read_reply(sock, deadline)
    except (OSError, ssl.SSLError) as exc:
        if isinstance(exc, TimeoutError) or time.monotonic() >= deadline:
            raise PostError("no complete answer within the deadline") from None
        raise PostError(str(exc) or exc.__class__.__name__) from None
    finally:
        sock.close()


def _settimeout(sock, deadline: float) -> None:
    try:
        _deadline.settimeout(sock, deadline)
    except _deadline.DeadlineExpired:
        raise PostError("no complete answer within the deadline") from None


def _connect(host: str, port: int, deadline: float, allow, resolver=None) -> socket.socket:
    try:
        infos = _deadline.resolve(host, port, deadline, resolver)
    except _deadline.DeadlineExpired:
        raise PostError(f"{host}: no address within the deadline") from None
    except OSError as exc:
        raise PostError(f"{host}: {exc.strerror or exc}") from None
    if not infos:
        raise PostError(f"{host}: no address")
    allowed, refused = [], []
    for info in infos:
        address = ipaddress.ip_address(info[4][0].split("%", 1)[0])
        if refused_address(address, allow):
            refused.append(str(address))
        else:
            allowed.append(info)
    if not allowed:
        raise PostError(
            f"{host} is {', '.join(refused)}: not a public address (allow its network with webhook_allow_networks)"
        )
    try:
        return _deadline.connect(allowed, deadline)
    except _deadline.DeadlineExpired:
        raise PostError("no complete answer within the deadline") from None
    except OSError as exc:
        raise PostError(f"{host}:{port}: {exc.strerror or exc}") from None


def _read_reply(sock, deadline: float) -> tuple[int, bytes]:
    data = b""
    while b"\r\n\r\n" not in data:
        if len(data) > MAX_HEAD:
            raise PostError("not an HTTP answer (no end of headers)")
        chunk = _recv(sock, deadline)
        if not chunk:
            raise PostError("not an HTTP answer (the connection closed)" if data else "no answer (connection closed)")
        data += chunk
    head, _, rest = data.partition(b"\r\n\r\n")
    lines = head.decode("latin-1").split("\r\n")
    match = re.fullmatch(r"HTTP/1\.[01] ([0-9]{3})(?: .*)?", lines[0])
    if not match:
        raise PostError(f"not an HTTP answer: {lines[0][:60]!r}")
    status = int(match.group(1))
    fields = {}
    for line in lines[1:]:
        name, sep, value = line.partition(":")
        if not sep:
            raise PostError(f"not an HTTP answer: header line {line[:60]!r}")
        fields[name.strip().lower()] = value.strip()
    if "chunked" in fields.get("transfer-encoding", "").lower():
        return status, _dechunk(sock, rest, deadline)
    if "content-length" in fields:
        try:
            length = int(fields["content-length"])
        except ValueError:
            raise PostError(f"not an HTTP answer: Content-Length {fields['content-length'][:20]!r}") from None
        want = min(length, MAX_REPLY)
        while len(rest) < want:
            chunk = _recv(sock, deadline)
            if not chunk:
                raise PostError(f"the answer ended early ({len(rest)} of {length} bytes)")
            rest += chunk
        return status, rest[:want]
    while len(rest) < MAX_REPLY:  # to the end of the connection
        chunk = _recv(sock, deadline)
        if not chunk:
            break
        rest += chunk
    return status, rest[:MAX_REPLY]


def _dechunk(sock, data: bytes, deadline: float) -> bytes:
    out = b""
    while True:
        while b"\r\n" not in data:
            more = _recv(sock, deadline)
            if not more:
                raise PostError("the answer ended early (chunked)")
            data += more
        line, _, data = data.partition(b"\r\n")
        try:
            size = int(line.split(b";", 1)[0].strip(), 16)
        except ValueError:
            raise PostError("not an HTTP answer (bad chunk size)") from None
        if size == 0 or len(out) >= MAX_REPLY:
            return out[:MAX_REPLY]
        while len(data) < size + 2:
            more = _recv(sock, deadline)
            if not more:
                raise PostError("the answer ended early (chunked)")
            data += more
        out += data[:size]
        data = data[size + 2 :]


def _recv(sock, deadline: float) -> bytes:
    _settimeout(sock, deadline)
    return sock.recv(65536)
