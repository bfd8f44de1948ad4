"""SFTP: downloads (resumable, verified, pipelined) and uploads of a node's configuration files
(`push_files`). The only module of fsctl that speaks SFTP.

The transport is OpenSSH's own client, `ssh -s ... sftp` (Debian's openssh-client): its C code
does the key exchange and the cipher, this module speaks SFTP version 3 over its standard
input and output. Each file is written to `<name>.part`, resumed at the .part's size, checked
against the expected size and SHA-256 (hashed as the bytes arrive), and only then renamed to
its final name; a mismatch deletes the .part and is reported. Host keys are checked against a
known_hosts file only (`StrictHostKeyChecking yes`): an unknown or a changed key is refused and
keys are never added. No ssh_config is read (`-F /dev/null`): the settings say everything.

One connection keeps many READ requests in flight, across file boundaries: the next files are
opened while the current one's last bytes are on the way, so many small files cost no round
trip each (OpenSSH's `sftp` fetches one file after the other). An upload goes to a temporary
name, its WRITEs in flight together, then is renamed over the old file (posix-rename@openssh.com).

Why one module: the ssh process (Connection), the pipelined SFTP session over it (_Session) and
the parallel fetch (fetch_all) share one failure model (a lost connection keeps the .part of the
file begun and hands the others back) and the wire's packet layout; apart, each would have to
expose what the others must not touch.
"""

import collections
import dataclasses
import errno
import fcntl
import hashlib
import os
import queue
import shutil
import stat
import struct
import subprocess
import tempfile
import threading

from ..errors import OperationError, UnreachableError

READ_SIZE = 1 << 17  # bytes per READ request (OpenSSH's server answers up to 255 KB)
MAX_IN_FLIGHT = 1 << 23  # bytes requested and not yet received, per connection
MAX_OPEN_AHEAD = 64  # files opened ahead of the one being written, per connection
RECV_BUFFER = 1 << 22
PIPE_SIZE = 1 << 20  # ssh's output pipe (Linux's default of 64 KB means four times the wake-ups)
COPY_CHUNK = 1 << 20
MAX_PACKET = 1 << 20  # larger SFTP packets are a protocol error (OpenSSH sends at most 256 KB)
_F_SETPIPE_SZ = 1031

# SFTP v3 (draft-ietf-secsh-filexfer-02): packet types, status codes, open flags.
_FXP_INIT, _FXP_VERSION, _FXP_OPEN, _FXP_CLOSE, _FXP_READ, _FXP_WRITE = 1, 2, 3, 4, 5, 6
_FXP_REMOVE, _FXP_MKDIR, _FXP_STAT, _FXP_EXTENDED = 13, 14, 17, 200
_FXP_STATUS, _FXP_HANDLE, _FXP_DATA, _FXP_ATTRS = 101, 102, 103, 105
_FX_OK, _FX_EOF, _FX_NO_SUCH_FILE = 0, 1, 2
_FXF_READ, _FXF_WRITE, _FXF_CREAT, _FXF_TRUNC = 0x01, 0x02, 0x08, 0x10
_ATTR_SIZE = 0x01
WRITE_SIZE = 1 << 15  # bytes per WRITE request (what OpenSSH's sftp sends)

# AES-GCM first: with AES-NI it is the cheapest of OpenSSH's ciphers for both ends.
CIPHERS = "^aes128-gcm@openssh.com,aes256-gcm@openssh.com"


class HostKeyError(OperationError):
    """The server's host key is unknown or differs from known_hosts: the connection is refused."""


class VerifyError(OperationError):
    """A downloaded file does not match the expected size or SHA-256."""


class ConnectionLost(Exception):
    """The SFTP connection broke (ssh exited, or spoke nonsense)."""


@dataclasses.dataclass(frozen=True)
class Endpoint:
    """Where and how to connect: host, port, user, private key file, known_hosts file."""

    host: str
    port: int
    username: str
    key_file: str
    known_hosts: str
    timeout: float = 10.0

    def __str__(self):
        return f"{self.host}:{self.port}"

    @classmethod
    def from_settings(cls, settings) -> "Endpoint":
        """The recordings server the settings name (sftp_host, sftp_port, sftp_user, sftp_key, sftp_known_hosts)."""
        s = settings
        return cls(s.sftp_host, s.sftp_port, s.sftp_user, s.sftp_key, s.sftp_known_hosts)


@dataclasses.dataclass(frozen=True)
class Transfer:
    """One file to fetch: remote path, local final path, expected size and SHA-256 (hex)."""

    remote_path: str
    local_path: str
    size: int
    sha256: str


@dataclasses.dataclass
class Result:
    """What happened to a Transfer: fetched, resumed, skipped or failed (with the error)."""

    transfer: Transfer
    status: str
    resumed_from: int = 0
    error: str = ""


def default_jobs():
    """Connections to use when not told: one per core, at most 4. (Measured on 2 cores, 500 x 1 MB:
    two connections 1.6 s, one 1.8-2.0 s, three or four 1.8-1.9 s: a second session's files are
    created and opened while the first one's bytes arrive.)"""
    return max(1, min(4, os.cpu_count() or 1))


def ssh_command(endpoint):
    """The argument list that opens the SFTP subsystem on the endpoint with OpenSSH's client."""
    ssh = shutil.which("ssh")
    if ssh is None:
        raise OperationError("sftp: the OpenSSH client (ssh) is not installed (Debian package openssh-client)")
    timeout = max(1, int(round(endpoint.timeout)))
    options = {
        "BatchMode": "yes",
        "StrictHostKeyChecking": "yes",
        "UpdateHostKeys": "no",
        "CheckHostIP": "no",
        "UserKnownHostsFile": os.path.expanduser(endpoint.known_hosts),
        "GlobalKnownHostsFile": "/dev/null",
        "IdentityAgent": "none",
        "ConnectTimeout": str(timeout),
        "ServerAliveInterval": str(timeout),
        "ServerAliveCountMax": "3",
        "Ciphers": CIPHERS,
        "LogLevel": "ERROR",
        "ControlPath": "none",
        "ForwardAgent": "no",
        "ForwardX11": "no",
        "ClearAllForwardings": "yes",
    }
    if endpoint.key_file:
        options["IdentitiesOnly"] = "yes"
    command = [ssh, "-F", "/dev/null"]
    for key, value in options.items():
        command += ["-o", f"{key}={value}"]
    if endpoint.key_file:
        command += ["-i", os.path.expanduser(endpoint.key_file)]
    return command + ["-p", str(int(endpoint.port)), "-l", endpoint.username, "-s", "--", endpoint.host, "sftp"]


class Connection:
    """An SFTP session over an `ssh` process: started at once, usable after `ready()`; `close()` ends it.

    `Connection(endpoint)` waits for the server's SFTP version (and raises HostKeyError,
    OperationError or UnreachableError); `Connection(endpoint, wait=False)` returns as soon as
    ssh runs, so the handshake overlaps other work until `ready()`.
    """

    def __init__(self, endpoint, wait=True):
        self.endpoint = endpoint
        self.proc = None
        self._is_ready = False
        self._error = None  # raised by ready(): a caller that never needs the connection never sees it
        known = self._known = os.path.expanduser(endpoint.known_hosts)
        try:
            with open(known, "rb"):
                pass
            command = ssh_command(endpoint)
        except OSError as exc:
            self._error = HostKeyError(
                f'sftp known_hosts "{known}": cannot be read ({exc.strerror or exc}): refusing to connect'
            )
        except OperationError as exc:
            self._error = exc
        if self._error is not None:
            if wait:
                raise self._error
            return
        self._stderr = tempfile.TemporaryFile()
        self.proc = subprocess.Popen(
            command, stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=self._stderr, bufsize=0, close_fds=True
        )
        self._reader = self.proc.stdout
        self._out = self.proc.stdin.fileno()
        try:
            fcntl.fcntl(self._reader.fileno(), _F_SETPIPE_SZ, PIPE_SIZE)
        except OSError:  # above /proc/sys/fs/pipe-max-size: the default works too
            pass
        self._buf = bytearray(RECV_BUFFER)
        self._view = memoryview(self._buf)
        self._start = self._end = 0
        self._next_id = 1
        try:
            self._send(struct.pack(">IBI", 5, _FXP_INIT, 3))
        except ConnectionLost:
            # ssh exited already (refused, unreachable, a bad key): ready() reports why, from its
            # stderr, when (and only if) this connection is used.
            self._error = self._failure()
        if wait:
            self.ready()

    @property
    def pid(self):
        """The ssh process's id (None once closed)."""
        return self.proc.pid if self.proc is not None else None

    def ready(self):
        """Wait for the server's SFTP version; raises the connection's error (host key, login, unreachable)."""
        if self._is_ready:
            return self
        if self._error is not None:
            raise self._error
        try:
            kind, _payload = next(self.packets())
        except (ConnectionLost, StopIteration):
            raise self._failure() from None
        if kind != _FXP_VERSION:
            self.close()
            raise OperationError(f"sftp server {self.endpoint}: not an SFTP server (packet {kind} before VERSION)")
        self._is_ready = True
        return self

    def _failure(self):
        """The error ssh reported (it has exited or is about to)."""
        try:
            self.proc.wait(timeout=self.endpoint.timeout + 5)
        except subprocess.TimeoutExpired:
            pass
        self._stderr.seek(0)
        text = self._stderr.read().decode("utf-8", "replace").replace("\r", "")
        code = self.proc.returncode
        self.close()
        ep, known = self.endpoint, self._known
        if "REMOTE HOST IDENTIFICATION HAS CHANGED" in text or "Host key for " in text and "has changed" in text:
            return HostKeyError(
                f"sftp server {ep}: host key differs from the one in {known}: refusing to connect "
                "(possible impostor; check and update known_hosts)"
            )
        if "Host key verification failed" in text or "host key is known for" in text:
            return HostKeyError(
                f"sftp server {ep}: host key is not in {known}: refusing to connect "
                "(verify its fingerprint, then add it to known_hosts)"
            )
        lines = [line.strip() for line in text.splitlines() if line.strip()]
        last = lines[-1] if lines else f"ssh exited with status {code}"
        if "Permission denied" in text or "Too many authentication failures" in text:
            return OperationError(f"sftp server {ep}: authentication as {ep.username} failed: {last}")
        if (
            last.startswith("ssh: ")
            or "Connection closed" in last
            or "Connection reset" in last
            or "timed out" in last
            or code == 255
        ):
            reason = last.rsplit(": ", 1)[-1] if last.startswith("ssh: ") else last
            return UnreachableError(f"sftp server {ep} is unreachable: {reason}")
        return OperationError(f"sftp server {ep}: the SFTP session failed: {last}")

    def request_id(self):
        """A new request id."""
        rid = self._next_id
        self._next_id = (rid + 1) & 0xFFFFFFFF
        return rid

    def _send(self, data):
        view = memoryview(data)
        try:
            while view:
                view = view[os.write(self._out, view) :]
        except OSError as exc:  # ssh has gone: the reader sees the end of its output
            raise ConnectionLost(f"the connection was lost ({exc.strerror or exc})") from None

    def send(self, data):
        """Send request bytes (one or many packets)."""
        self._send(data)

    def exchange(self, requests):
        """Send requests [(type, body)] at once and return their replies [(type, payload)] in the same
        order (each payload starts with its request id, as _Session sees them)."""
        ids, out = [], bytearray()
        for kind, body in requests:
            rid = self.request_id()
            ids.append(rid)
            out += struct.pack(">IBI", 5 + len(body), kind, rid)
            out += body
        self._send(out)
        replies = {}
        packets = self.packets()
        while len(replies) < len(ids):
            kind, payload = next(packets)
            replies[struct.unpack_from(">I", payload)[0]] = (kind, bytes(payload))
        return [replies[rid] for rid in ids]

    def packets(self):
        """Yield (type, payload memoryview) for each reply as it arrives; payload valid until the next one.

        Reads large blocks into one buffer and hands out views into it: no copy of the data.
        Raises ConnectionLost when the stream ends.
        """
        buf, view = self._buf, self._view
        while True:
            start, end = self._start, self._end
            while end - start >= 4:
                (size,) = struct.unpack_from(">I", buf, start)
                if size == 0 or size > MAX_PACKET:
                    raise ConnectionLost(f"the sftp server sent a bad packet ({size} bytes)")
                if end - start < 4 + size:
                    break
                self._start = start + 4 + size
                yield buf[start + 4], view[start + 5 : start + 4 + size]
                start, end = self._start, self._end
            if start == end:
                start = end = 0
            elif len(buf) - end < MAX_PACKET + 4:  # move the partial packet to the front (at most one packet)
                buf[: end - start] = buf[start:end]
                start, end = 0, end - start
            self._start, self._end = start, end  # (the next generator, exchange's, starts from here)
            try:
                n = self._reader.readinto(view[end:])
            except OSError as exc:
                raise ConnectionLost(f"the connection was lost ({exc.strerror or exc})") from None
            if not n:
                raise ConnectionLost("the sftp server closed the connection")
            self._end = end + n

    def close(self):
        """End the session and the ssh process (quietly when it has already gone)."""
        proc = self.proc
        if proc is None:
            return
        for stream in (proc.stdin, proc.stdout):
            try:
                stream.close()
            except OSError:
                pass
        try:
            proc.wait(timeout=2)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
        self._stderr.close()
        self.proc = None


def _reason(exc):
    return getattr(exc, "strerror", None) or str(exc) or exc.__class__.__name__


def local_complete(transfer):
    """True when the final local file is a regular file (not a link) with the expected size and SHA-256."""
    try:
        fd = os.open(transfer.local_path, os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK)
    except OSError:
        return False
    with os.fdopen(fd, "rb") as fh:
        st = os.fstat(fh.fileno())
        if not stat.S_ISREG(st.st_mode) or st.st_size != transfer.size:
            return False
        return _digest_file(fh, hashlib.sha256()).hexdigest() == transfer.sha256


def _digest_file(fh, h):
    while chunk := fh.read(COPY_CHUNK):
        h.update(chunk)
    return h


# A partial file: never through a link (someone who can write in --dest could point
# `<name>.part` at another file, which the fetch would then append to).
_PART_FLAGS = os.O_RDWR | os.O_APPEND | os.O_NOFOLLOW | os.O_NONBLOCK
PART_MODE = 0o640


def _open_part(part, create):
    """The `.part` file's descriptor, for reading and appending (created when `create`; None when it
    does not exist and may not be created); a link or a non-file is refused (VerifyError)."""
    try:
        fd = os.open(part, _PART_FLAGS | (os.O_CREAT if create else 0), PART_MODE)
    except FileNotFoundError:
        if create:
            raise
        return None
    except OSError as exc:
        if exc.errno == errno.ELOOP:
            raise VerifyError(f'"{part}": is a symbolic link: refused, not touched') from None
        raise
    if not stat.S_ISREG(os.fstat(fd).st_mode):
        os.close(fd)
        raise VerifyError(f'"{part}": is not a regular file: refused, not touched')
    return fd


def _discard(path):
    try:
        os.unlink(path)
    except FileNotFoundError:
        pass


class _File:
    """One transfer in a session: its .part, its hash so far, its requests and early replies."""

    __slots__ = (
        "index",
        "transfer",
        "end",
        "part",
        "hash",
        "offset",
        "written",
        "requested",
        "handle",
        "fd",
        "early",
        "probed",
        "done",
    )

    def __init__(self, index, transfer):
        self.index, self.transfer, self.end = index, transfer, transfer.size
        self.part = transfer.local_path + ".part"
        os.makedirs(os.path.dirname(transfer.local_path) or ".", exist_ok=True)
        self.hash = hashlib.sha256()
        self.offset = 0
        self.handle = None
        self.fd = _open_part(self.part, create=False)  # an earlier run's bytes (a link: VerifyError)
        if self.fd is not None:
            size = os.fstat(self.fd).st_size
            if size > self.end:
                os.ftruncate(self.fd, 0)
            elif size:
                self.offset = size
                with os.fdopen(os.dup(self.fd), "rb") as fh:
                    _digest_file(fh, self.hash)
        self.written = self.requested = self.offset
        self.early = {}  # offset -> bytes or status, for replies that came before earlier bytes
        self.probed = self.done = False

    def close_fd(self):
        if self.fd is not None:
            os.close(self.fd)
            self.fd = None


class _Session:
    """Fetch transfers over one Connection, many requests in flight across file boundaries."""

    def __init__(self, conn, take, give_back, finish, progress):
        self.conn, self.take, self.give_back, self.finish, self.progress = conn, take, give_back, finish, progress
        self.files = collections.deque()  # opened, in order
        self.requests = {}  # request id -> (file, kind, offset, length)
        self.in_flight = 0
        self.read_size = READ_SIZE
        self.out = bytearray()
        self.more = True  # take() may still give work

    def _request(self, f, kind, body, offset=0, length=0):
        rid = self.conn.request_id()
        self.requests[rid] = (f, kind, offset, length)
        self.out += struct.pack(">IBI", 5 + len(body), kind, rid)
        self.out += body

    def _read(self, f, offset, length):
        self._request(
            f,
            _FXP_READ,
            struct.pack(">I", len(f.handle)) + f.handle + struct.pack(">QI", offset, length),
            offset,
            length,
        )
        self.in_flight += length

    def _open_more(self):
        while (
            self.more
            and len(self.files) < MAX_OPEN_AHEAD
            and self.in_flight < MAX_IN_FLIGHT
            and (not self.files or self.files[-1].probed)
        ):
            item = self.take()
            if item is None:
                self.more = False
                break
            try:
                f = _File(*item)
            except VerifyError as exc:  # its .part is a link or no file: refused, nothing touched
                self.finish(item[0], Result(item[1], "failed", error=exc.message))
                continue
            except OSError as exc:  # its folder or .part cannot be made or read here
                self.finish(item[0], Result(item[1], "failed", error=f'"{item[1].local_path}": {_reason(exc)}'))
                continue
            path = os.fsencode(f.transfer.remote_path)
            self._request(f, _FXP_OPEN, struct.pack(">I", len(path)) + path + struct.pack(">II", _FXF_READ, 0))
            self.files.append(f)

    def _request_reads(self):
        for f in self.files:
            if f.handle is None:
                return
            while f.requested < f.end and self.in_flight < MAX_IN_FLIGHT:
                length = min(self.read_size, f.end - f.requested)
                self._read(f, f.requested, length)
                f.requested += length
            if f.requested < f.end:
                return
            if not f.probed:  # one byte past the end must be EOF: a longer remote file is caught
                self._read(f, f.end, 1)
                f.probed = True

    def run(self):
        """Fetch until take() gives nothing more; raises ConnectionLost or OSError (local disk)."""
        packets = self.conn.packets()
        while True:
            self._open_more()
            self._request_reads()
            if not self.files:
                return
            if self.out:
                self.conn.send(self.out)
                self.out = bytearray()
            kind, payload = next(packets)
            self._reply(kind, payload)

    def abandon(self, reason):
        """The connection is gone (or the disk failed): files begun keep their .part; the others go back."""
        for f in self.files:
            f.done = True
            f.close_fd()
            if f.written > f.offset:
                self.finish(
                    f.index,
                    Result(
                        f.transfer,
                        "failed",
                        error=f'"{f.transfer.remote_path}": {reason} (partial file kept; run again to resume)',
                    ),
                )
            else:
                self.give_back(f.index)
        self.files.clear()

    def _reply(self, kind, payload):
        (rid,) = struct.unpack_from(">I", payload)
        entry = self.requests.pop(rid, None)
        if entry is None:
            raise ConnectionLost(f"the sftp server answered an unknown request ({rid})")
        f, request, offset, length = entry
        if request == _FXP_READ:
            self.in_flight -= length
        if f.done:
            return
        if request == _FXP_OPEN:
            if kind == _FXP_HANDLE:
                (n,) = struct.unpack_from(">I", payload, 4)
                f.handle = bytes(payload[8 : 8 + n])
                if self.progress and f.offset:
                    self.progress(f.transfer, f.offset)
            else:
                code, message = _status(kind, payload)
                what = (
                    "missing on the sftp server"
                    if code == _FX_NO_SUCH_FILE
                    else f"cannot be opened on the sftp server ({message or f'SFTP status {code}'})"
                )
                self._fail(f, f'"{f.transfer.remote_path}": {what}', discard=False)
        elif request == _FXP_READ:
            if kind == _FXP_DATA:
                (n,) = struct.unpack_from(">I", payload, 4)
                if n > length or n > len(payload) - 8:
                    raise ConnectionLost(f"the sftp server sent {n} bytes for a read of {length}")
                data = payload[8 : 8 + n]
                if 0 < n < length and offset < f.end:  # a short read: ask for the rest
                    if n >= 1 << 14 and offset + n < f.end:
                        self.read_size = min(self.read_size, n)
                    self._read(f, offset + n, length - n)
                elif n == 0:
                    data = -1
            else:
                data = _status(kind, payload)[0]
            if offset == f.written:
                self._apply(f, offset, data)
                while not f.done and f.written in f.early:
                    self._apply(f, f.written, f.early.pop(f.written))
            else:
                f.early[offset] = data if isinstance(data, int) else bytes(data)

    def _apply(self, f, offset, data):
        """The reply for the next bytes of f, in file order."""
        if isinstance(data, int):
            if data == _FX_EOF and offset == f.end:
                self._complete(f)
            elif data == _FX_EOF:
                self._fail(f, f"the file ends early at byte {offset} of {f.end}")
            else:
                self._fail(f, f"the file cannot be read (SFTP status {data}) at byte {offset} of {f.end}")
        elif offset >= f.end:
            self._fail(f, f"the file is longer than the {f.end} bytes of the catalogue")
        else:
            if f.fd is None:
                try:
                    f.fd = _open_part(f.part, create=True)
                except VerifyError as exc:  # a link planted since: refused, not touched
                    self._fail(f, exc.message, discard=False)
                    return
            view = memoryview(data)
            while view:
                view = view[os.write(f.fd, view) :]
            f.hash.update(data)
            f.written += len(data)
            if self.progress:
                self.progress(f.transfer, len(data))

    def _complete(self, f):
        if f.fd is None:  # nothing written by this run: an empty file
            f.fd = _open_part(f.part, create=True)
        f.close_fd()
        self._close_remote(f)
        # No fsync: a file cut short by a crash fails the SHA-256 check of the next run and is fetched again.
        if f.written != f.end or f.hash.hexdigest() != f.transfer.sha256:
            self._fail(f, f'"{f.transfer.remote_path}": SHA-256 differs from the catalogue (file discarded)')
            return
        os.replace(f.part, f.transfer.local_path)
        f.done = True
        self.files.remove(f)
        self.finish(f.index, Result(f.transfer, "resumed" if f.offset else "fetched", resumed_from=f.offset))

    def _fail(self, f, message, discard=True):
        if discard:
            f.close_fd()
            _discard(f.part)
            if not message.startswith('"'):
                message = f'"{f.transfer.remote_path}": {message} (file discarded)'
        self._close_remote(f)
        f.done = True
        f.early.clear()
        self.files.remove(f)
        self.finish(f.index, Result(f.transfer, "failed", error=message))

    def _close_remote(self, f):
        if f.handle is not None:
            self._request(f, _FXP_CLOSE, struct.pack(">I", len(f.handle)) + f.handle)
            f.handle = None


def _status(kind, payload):
    """(code, message) of a STATUS reply; a reply of another type is a protocol error."""
    if kind != _FXP_STATUS:
        raise ConnectionLost(f"the sftp server sent packet type {kind} where a status was due")
    (code,) = struct.unpack_from(">I", payload, 4)
    message = ""
    if len(payload) >= 12:
        (n,) = struct.unpack_from(">I", payload, 8)
        message = bytes(payload[12 : 12 + n]).decode("utf-8", "replace")
    return code, message


def fetch_all(endpoint, transfers, jobs=None, progress=None, connect=Connection, started=None):
    """Fetch many files over `jobs` connections (default: default_jobs()), each its own ssh process.

    Complete, verified local files are skipped without connecting. `started`: a Connection
    already under way (made with wait=False), used as the first one, or closed when nothing
    needs fetching. Raises UnreachableError, HostKeyError or OperationError when the first
    connection cannot be made; per-file failures are in the Results.
    """
    results = [None] * len(transfers)
    pending = queue.Queue()
    for i, transfer in enumerate(transfers):
        if local_complete(transfer):
            results[i] = Result(transfer, "skipped")
            if progress:
                progress(transfer, transfer.size)
        else:
            pending.put(i)
    count = min(max(1, int(jobs or default_jobs())), pending.qsize())
    if count == 0:
        if started is not None:
            started.close()
        return results
    try:
        first = (started or connect(endpoint)).ready()  # the first one tells unreachable / host key at once
    except BaseException:
        if started is not None:
            started.close()
        raise
    lock = threading.Lock()

    def take():
        try:
            i = pending.get_nowait()
        except queue.Empty:
            return None
        return i, transfers[i]

    def finish(i, result):
        with lock:
            results[i] = result

    def work(conn):
        session = _Session(conn, take, pending.put, finish, progress)
        try:
            session.run()
        except (ConnectionLost, OSError) as exc:
            # The connection broke (or the local disk failed): .part files stay for the next run.
            session.abandon(_reason(exc))
        finally:
            conn.close()

    def start():
        try:
            conn = connect(endpoint).ready()
        except (UnreachableError, HostKeyError, OperationError):
            return
        work(conn)

    threads = [threading.Thread(target=start, daemon=True) for _ in range(count - 1)]
    for t in threads:
        t.start()
    work(first)
    for t in threads:
        t.join()
    for i, result in enumerate(results):
        if result is None:
            results[i] = Result(
                transfers[i],
                "failed",
                error=f'"{transfers[i].remote_path}": not fetched, the connections were lost (run again)',
            )
    return results


def remote_join(remote_dir, rel):
    """The remote path of a catalogue path under the server's recordings folder."""
    return remote_dir.rstrip("/") + "/" + rel


def push_files(connection, local_root, remote_root, paths):
    """Make each relative path under `remote_root` what it is under `local_root`: uploaded to a
    temporary name then renamed over the old file (OpenSSH's posix-rename: atomic for FreeSWITCH's
    reader), or removed when it is gone locally. Raises UnreachableError when the connection fails."""
    made = set()
    try:
        for rel in paths:
            local = os.path.join(local_root, rel)
            remote = remote_join(remote_root, rel)
            if os.path.exists(local):
                folder, name = remote.rsplit("/", 1)
                _remote_makedirs(connection, folder, made)
                tmp = f"{folder}/.{name}.fsctl-tmp"
                _upload(connection, local, tmp)
                _expect_ok(
                    connection.exchange([(_FXP_EXTENDED, _strings(b"posix-rename@openssh.com", tmp, remote))]),
                    f"renaming {tmp}",
                )
            else:
                [(kind, payload)] = connection.exchange([(_FXP_REMOVE, _strings(remote))])
                code, message = _status(kind, payload)
                if code not in (_FX_OK, _FX_NO_SUCH_FILE):
                    raise SftpStatusError(f"removing {remote}: {message or f'SFTP status {code}'}")
    except (OSError, ConnectionLost, SftpStatusError) as exc:
        raise UnreachableError(
            f"sftp server {connection.endpoint}: pushing {remote_root} failed: {_reason(exc)}"
        ) from None


class SftpStatusError(Exception):
    """The server refused a request (its status message)."""


def _strings(*values):
    out = bytearray()
    for value in values:
        data = value if isinstance(value, bytes) else os.fsencode(value)
        out += struct.pack(">I", len(data)) + data
    return bytes(out)


def _expect_ok(replies, what):
    for kind, payload in replies:
        code, message = _status(kind, payload)
        if code != _FX_OK:
            raise SftpStatusError(f"{what}: {message or f'SFTP status {code}'}")


def _remote_size(connection, path):
    """The size of a remote path, or None when it does not exist."""
    [(kind, payload)] = connection.exchange([(_FXP_STAT, _strings(path))])
    if kind != _FXP_ATTRS:
        code, message = _status(kind, payload)
        if code == _FX_NO_SUCH_FILE:
            return None
        raise SftpStatusError(f"{path}: {message or f'SFTP status {code}'}")
    (flags,) = struct.unpack_from(">I", payload, 4)
    return struct.unpack_from(">Q", payload, 8)[0] if flags & _ATTR_SIZE else -1


def _remote_makedirs(connection, folder, made):
    if folder in made or not folder:
        return
    if _remote_size(connection, folder) is None:
        _remote_makedirs(connection, folder.rsplit("/", 1)[0], made)
        _expect_ok(connection.exchange([(_FXP_MKDIR, _strings(folder) + struct.pack(">I", 0))]), f"mkdir {folder}")
    made.add(folder)


def _upload(connection, local, remote):
    """Write the local file to `remote` (created or truncated), its WRITEs in flight together; checked by size."""
    flags = _FXF_WRITE | _FXF_CREAT | _FXF_TRUNC
    [(kind, payload)] = connection.exchange([(_FXP_OPEN, _strings(remote) + struct.pack(">II", flags, 0))])
    if kind != _FXP_HANDLE:
        code, message = _status(kind, payload)
        raise SftpStatusError(f"opening {remote}: {message or f'SFTP status {code}'}")
    (n,) = struct.unpack_from(">I", payload, 4)
    handle = bytes(payload[8 : 8 + n])
    size = 0
    try:
        with open(local, "rb") as fh:
            while chunk := fh.read(WRITE_SIZE * 64):  # at most 64 WRITEs in flight
                writes = [
                    (_FXP_WRITE, _strings(handle) + struct.pack(">Q", size + i) + _strings(chunk[i : i + WRITE_SIZE]))
                    for i in range(0, len(chunk), WRITE_SIZE)
                ]
                _expect_ok(connection.exchange(writes), f"writing {remote}")
                size += len(chunk)
    finally:
        _expect_ok(connection.exchange([(_FXP_CLOSE, _strings(handle))]), f"closing {remote}")
    if _remote_size(connection, remote) != size:
        raise SftpStatusError(f"{remote}: size mismatch after the upload")
