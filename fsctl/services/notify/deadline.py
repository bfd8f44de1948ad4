"""One deadline for a whole network exchange: the name look-up, the connection, every read and write.

A socket timeout bounds one operation only: a server answering a byte at a time holds the
exchange for as long as it likes. The name look-up (getaddrinfo) has no timeout at all: the C
library's resolver tries each name server for as long as resolv.conf says, and a delivery
waited with it past the outbox claim. Here each step gets what is left of one deadline
(a `time.monotonic()` value), and the look-up runs in a thread that is waited for only until
the deadline (the thread ends by itself when the resolver gives up; nothing waits for it).
"""

from __future__ import annotations

import ipaddress
import socket
import threading
import time


class DeadlineExpired(TimeoutError):
    """The deadline passed before the exchange was done."""


def left(deadline: float) -> float:
    """Seconds left before `deadline`; DeadlineExpired when none."""
    remaining = deadline - time.monotonic()
    if remaining <= 0:
        raise DeadlineExpired("no complete answer within the deadline")
    return remaining


def settimeout(sock, deadline: float) -> None:
    """Give the next operation on `sock` what is left of the deadline."""
    sock.settimeout(left(deadline))


def resolve(host: str, port: int, deadline: float, resolver=None) -> list:
    """getaddrinfo(host, port, SOCK_STREAM) answered before `deadline`, else DeadlineExpired.

    `resolver` is getaddrinfo's stand-in for names (tests inject one: no real name is ever looked
    up). An address literal is no look-up: it is answered at once, without the resolver.
    """
    try:
        ipaddress.ip_address(host.strip("[]").split("%", 1)[0])
    except ValueError:
        pass
    else:
        return socket.getaddrinfo(host.strip("[]"), port, type=socket.SOCK_STREAM, flags=socket.AI_NUMERICHOST)
    resolver = resolver or socket.getaddrinfo
    wait = left(deadline)
    answer: dict = {}
    done = threading.Event()

    def look_up():
        try:
            answer["infos"] = resolver(host, port, type=socket.SOCK_STREAM)
        except BaseException as exc:  # noqa: BLE001 - handed to the caller
            answer["error"] = exc
        finally:
            done.set()

    threading.Thread(target=look_up, name=f"getaddrinfo {host}", daemon=True).start()
    if not done.wait(wait):
        raise DeadlineExpired(f"{host}: no address within the deadline")
    if "error" in answer:
        raise answer["error"]
    return answer["infos"]


def connect(infos, deadline: float) -> socket.socket:
    """A socket connected to the first address of `infos` that answers before the deadline."""
    last: OSError | None = None
    for family, kind, proto, _name, sockaddr in infos:
        sock = socket.socket(family, kind, proto)
        try:
            settimeout(sock, deadline)
            sock.connect(sockaddr)
            return sock
        except OSError as exc:
            sock.close()
            last = exc
            if isinstance(exc, TimeoutError):
                break
    if isinstance(last, TimeoutError) or time.monotonic() >= deadline:
        raise DeadlineExpired("no connection within the deadline")
    raise last or OSError("no address to connect to")


class LineReader:
    """The reading side of a socket for smtplib (its `file`): lines, each read within the deadline."""

    def __init__(self, sock, deadline: float):
        self.sock, self.deadline, self.buffer = sock, deadline, b""

    def readline(self, limit: int = -1) -> bytes:
        while b"\n" not in self.buffer and (limit < 0 or len(self.buffer) < limit):
            settimeout(self.sock, self.deadline)
            chunk = self.sock.recv(4096)
            if not chunk:
                break
            self.buffer += chunk
        end = self.buffer.find(b"\n") + 1 or len(self.buffer)
        if limit >= 0:
            end = min(end, limit)
        line, self.buffer = self.buffer[:end], self.buffer[end:]
        return line

    def close(self) -> None:
        self.buffer = b""
