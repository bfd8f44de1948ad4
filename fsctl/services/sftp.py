"""SFTP downloads: resumable, verified, parallel; uploads of a node's configuration files
(`push_files`). The only module of fsctl that imports paramiko.

Each file is written to `<name>.part`, resumed at the .part's size, checked against the
expected size and SHA-256, and only then renamed to its final name; a mismatch deletes the
.part and is reported. Host keys are checked against a known_hosts file: an unknown or a
changed key is refused (paramiko's RejectPolicy; keys are never added automatically).
"""

import collections
import dataclasses
import errno
import hashlib
import os
import queue
import stat
import struct
import threading

import paramiko

from ..errors import OperationError, UnreachableError

# paramiko's defaults (2 MB window, 32 KB packets and reads) leave most of a fast link idle.
WINDOW_SIZE = 1 << 27
MAX_PACKET_SIZE = 1 << 18
READ_REQUEST_SIZE = 1 << 17  # OpenSSH caps reads just under 256 KB; a short read stalls the prefetch
PREFETCH_REQUESTS = 128
COPY_CHUNK = 1 << 20


class HostKeyError(OperationError):
    """The server's host key is unknown or differs from known_hosts: the connection is refused."""


class VerifyError(OperationError):
    """A downloaded file does not match the expected size or SHA-256."""


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


# AES-GCM first: one pass per packet instead of AES-CTR plus a separate HMAC.
CIPHERS = ("aes128-gcm@openssh.com", "aes256-gcm@openssh.com", "aes128-ctr", "aes256-ctr")


def _transport(sock, **kwargs):
    transport = paramiko.Transport(sock, default_window_size=WINDOW_SIZE, default_max_packet_size=MAX_PACKET_SIZE,
                                   **kwargs)
    options = transport.get_security_options()
    options.ciphers = [c for c in CIPHERS if c in options.ciphers] + [c for c in options.ciphers if c not in CIPHERS]
    return transport


class Connection:
    """An SSH connection with one SFTP channel; host key checked, closed by `close()`."""

    def __init__(self, endpoint):
        self.endpoint = endpoint
        known = os.path.expanduser(endpoint.known_hosts)
        self.client = paramiko.SSHClient()
        try:
            self.client.load_host_keys(known)
        except (OSError, paramiko.SSHException) as exc:
            raise HostKeyError(f'sftp known_hosts "{known}": cannot be read ({exc}): refusing to connect') from None
        self.client.set_missing_host_key_policy(paramiko.RejectPolicy())
        try:
            self.client.connect(
                endpoint.host, port=endpoint.port, username=endpoint.username,
                key_filename=os.path.expanduser(endpoint.key_file) if endpoint.key_file else None,
                timeout=endpoint.timeout, banner_timeout=endpoint.timeout, auth_timeout=endpoint.timeout,
                allow_agent=False, look_for_keys=not endpoint.key_file, transport_factory=_transport,
            )
        except paramiko.BadHostKeyException:
            self.client.close()
            raise HostKeyError(f"sftp server {endpoint}: host key differs from the one in {known}: "
                               "refusing to connect (possible impostor; check and update known_hosts)") from None
        except paramiko.AuthenticationException as exc:
            self.client.close()
            raise OperationError(f"sftp server {endpoint}: authentication as {endpoint.username} failed: {exc}") \
                from None
        except paramiko.SSHException as exc:
            self.client.close()
            if "known_hosts" in str(exc):
                raise HostKeyError(f"sftp server {endpoint}: host key is not in {known}: refusing to connect "
                                   "(verify its fingerprint, then add it to known_hosts)") from None
            raise UnreachableError(f"sftp server {endpoint}: SSH failed: {exc}") from None
        except (OSError, EOFError) as exc:
            self.client.close()
            raise UnreachableError(f"sftp server {endpoint} is unreachable: {_reason(exc)}") from None
        self.sftp = paramiko.SFTPClient.from_transport(
            self.client.get_transport(), window_size=WINDOW_SIZE, max_packet_size=MAX_PACKET_SIZE
        )
        self.sftp.get_channel().settimeout(max(endpoint.timeout, 30.0))

    def close(self):
        """Close the SFTP channel and the connection (quietly when the connection is already gone)."""
        try:
            self.sftp.close()
        except (OSError, EOFError, paramiko.SSHException):
            pass
        finally:
            self.client.close()


def _reason(exc):
    errors = getattr(exc, "errors", None)  # paramiko's NoValidConnectionsError: one error per address
    if isinstance(errors, dict) and errors:
        exc = next(iter(errors.values()))
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
_PART_FLAGS = os.O_RDWR | os.O_CREAT | os.O_APPEND | os.O_NOFOLLOW | os.O_NONBLOCK
PART_MODE = 0o640


def _open_part(part):
    """The `.part` file, opened for reading and appending; a link or a non-file is refused."""
    try:
        fd = os.open(part, _PART_FLAGS, PART_MODE)
    except OSError as exc:
        if exc.errno == errno.ELOOP:
            raise VerifyError(f'"{part}": is a symbolic link: refused, not touched') from None
        raise
    if not stat.S_ISREG(os.fstat(fd).st_mode):
        os.close(fd)
        raise VerifyError(f'"{part}": is not a regular file: refused, not touched')
    return os.fdopen(fd, "a+b")


def fetch(sftp, transfer, progress=None):
    """Fetch one file over an open SFTPClient into `.part`, resuming, verify, rename; returns a Result."""
    final = transfer.local_path
    part = final + ".part"
    os.makedirs(os.path.dirname(final) or ".", exist_ok=True)
    h = hashlib.sha256()
    out = _open_part(part)
    with out:
        offset = os.fstat(out.fileno()).st_size
        if offset > transfer.size:
            out.truncate(0)
            offset = 0
        elif offset:
            out.seek(0)
            _digest_file(out, h)
        try:
            remote = sftp.open(transfer.remote_path, "rb")
        except FileNotFoundError:
            if not offset:
                _discard(part)
            raise VerifyError(f'"{transfer.remote_path}": missing on the sftp server') from None
        with remote:
            if progress and offset:
                progress(transfer, offset)
            done = offset
            try:
                for chunk in _pipelined_read(sftp.sock, remote.handle, offset, transfer.size):
                    out.write(chunk)
                    h.update(chunk)
                    done += len(chunk)
                    if progress:
                        progress(transfer, len(chunk))
            except VerifyError as exc:
                _discard(part)
                raise VerifyError(f'"{transfer.remote_path}": {exc.message} (file discarded)') from None
            # No fsync: a file cut short by a crash fails the SHA-256 check of the next run and is fetched again.
    if done != transfer.size or h.hexdigest() != transfer.sha256:
        _discard(part)
        raise VerifyError(f'"{transfer.remote_path}": SHA-256 differs from the catalogue (file discarded)')
    os.replace(part, final)
    return Result(transfer, "resumed" if offset else "fetched", resumed_from=offset)


# SFTP v3 packet types (draft-ietf-secsh-filexfer-02) for the pipelined reader.
_FXP_READ, _FXP_STATUS, _FXP_DATA = 5, 101, 103
_FX_EOF = 1
_REQUEST_IDS = 0x70000000  # far above the request numbers paramiko's SFTPClient uses


def _pipelined_read(channel, handle, start, end):
    """Yield the bytes [start, end) of an open remote file, in order, with many READs in flight.

    paramiko's own prefetch slows down badly on large files (a 10 ms polling sleep and
    quadratic buffer handling), so the READ requests and DATA replies are exchanged directly
    on the SFTP channel, which nobody else uses meanwhile; replies are parsed from large
    receives. Raises EOFError when the connection drops, VerifyError when the file ends early.
    """
    pending = collections.deque()  # (request id, offset, length) in file order
    replies = {}
    buf = bytearray()
    pos = 0
    next_offset, next_id = start, _REQUEST_IDS

    def request(offset, length):
        nonlocal next_id
        body = struct.pack(">BII", _FXP_READ, next_id, len(handle)) + handle + struct.pack(">QI", offset, length)
        channel.sendall(struct.pack(">I", len(body)) + body)
        next_id += 1
        return next_id - 1, offset, length

    probed = False
    while pending or not probed:
        while len(pending) < PREFETCH_REQUESTS and next_offset < end:
            length = min(READ_REQUEST_SIZE, end - next_offset)
            pending.append(request(next_offset, length))
            next_offset += length
        if next_offset >= end and not probed:
            # One byte past the end must be EOF: a longer remote file is caught without a stat round trip.
            pending.append(request(end, 1))
            probed = True
        rid, offset, length = pending[0]
        while rid not in replies:
            while len(buf) - pos < 4 or len(buf) - pos < 4 + struct.unpack_from(">I", buf, pos)[0]:
                data = channel.recv(COPY_CHUNK)
                if not data:
                    raise EOFError("the sftp server closed the connection")
                if pos:
                    del buf[:pos]
                    pos = 0
                buf += data
            size, kind, reply_id = struct.unpack_from(">IBI", buf, pos)
            if kind == _FXP_DATA:
                count = struct.unpack_from(">I", buf, pos + 9)[0]
                replies[reply_id] = bytes(buf[pos + 13:pos + 13 + count])
            elif kind == _FXP_STATUS:
                replies[reply_id] = struct.unpack_from(">I", buf, pos + 9)[0]
            pos += 4 + size
        reply = replies.pop(rid)
        pending.popleft()
        if offset == end:
            if reply != _FX_EOF:
                raise VerifyError(f"the file is longer than the {end} bytes of the catalogue")
            continue
        if isinstance(reply, int):
            what = "ends early" if reply == _FX_EOF else f"cannot be read (SFTP status {reply})"
            raise VerifyError(f"the file {what} at byte {offset} of {end}")
        if len(reply) < length:  # a short read: ask for the rest before anything later
            pending.appendleft(request(offset + len(reply), length - len(reply)))
        if reply:
            yield reply


def _discard(path):
    try:
        os.unlink(path)
    except FileNotFoundError:
        pass


def fetch_all(endpoint, transfers, jobs=4, progress=None, connect=Connection):
    """Fetch many files over `jobs` connections in parallel (each its own SFTP channel).

    Complete, verified local files are skipped without connecting. Raises UnreachableError or
    HostKeyError when no connection can be made; per-file failures are in the Results.
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
    count = min(max(1, int(jobs)), pending.qsize())
    if count == 0:
        return results
    connections = [connect(endpoint)]  # the first one tells unreachable / host key problems at once
    lock = threading.Lock()

    def work(conn):
        while True:
            try:
                i = pending.get_nowait()
            except queue.Empty:
                break
            transfer = transfers[i]
            try:
                result = fetch(conn.sftp, transfer, progress)
            except VerifyError as exc:
                result = Result(transfer, "failed", error=exc.message)
            except (OSError, EOFError, paramiko.SSHException) as exc:
                # The connection broke (or the disk failed): the .part stays for the next run.
                with lock:
                    results[i] = Result(transfer, "failed", error=f'"{transfer.remote_path}": {_reason(exc)} '
                                        "(partial file kept; run again to resume)")
                break
            with lock:
                results[i] = result
        conn.close()

    def start(conn=None):
        try:
            conn = conn or connect(endpoint)
        except (UnreachableError, HostKeyError, OperationError):
            return
        work(conn)

    threads = [threading.Thread(target=start, args=(connections[0],), daemon=True)]
    threads += [threading.Thread(target=start, daemon=True) for _ in range(count - 1)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    for i, result in enumerate(results):
        if result is None:
            results[i] = Result(transfers[i], "failed", error=f'"{transfers[i].remote_path}": not fetched, '
                                "the connections were lost (run again)")
    return results


def remote_join(remote_dir, rel):
    """The remote path of a catalogue path under the server's recordings folder."""
    return remote_dir.rstrip("/") + "/" + rel



def push_files(connection, local_root, remote_root, paths):
    """Make each relative path under `remote_root` what it is under `local_root`: uploaded to a
    temporary name then renamed over the old file (OpenSSH's posix-rename: atomic for FreeSWITCH's
    reader), or removed when it is gone locally. Raises UnreachableError when the connection fails."""
    sftp = connection.sftp
    made = set()
    try:
        for rel in paths:
            local = os.path.join(local_root, rel)
            remote = remote_join(remote_root, rel)
            if os.path.exists(local):
                _remote_makedirs(sftp, remote.rsplit("/", 1)[0], made)
                tmp = remote.rsplit("/", 1)
                tmp = f"{tmp[0]}/.{tmp[1]}.fsctl-tmp"
                sftp.put(local, tmp, confirm=True)
                sftp.posix_rename(tmp, remote)
            else:
                try:
                    sftp.remove(remote)
                except FileNotFoundError:
                    pass
    except (OSError, EOFError, paramiko.SSHException) as exc:
        raise UnreachableError(f"sftp server {connection.endpoint}: pushing {remote_root} failed: {_reason(exc)}") \
            from None


def _remote_makedirs(sftp, folder, made):
    if folder in made or not folder:
        return
    try:
        sftp.stat(folder)
    except FileNotFoundError:
        _remote_makedirs(sftp, folder.rsplit("/", 1)[0], made)
        sftp.mkdir(folder)
    made.add(folder)
