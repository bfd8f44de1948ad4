"""Files written whole or not at all: the one home of temp file + fsync + `os.replace`.

A reader (FreeSWITCH, a customer's SFTP client, the next `fsctl` run) sees the old file or the
new one, never half of one; after a crash the temp file is all that can be left (`.NAME.*.tmp`).
"""

from __future__ import annotations

import contextlib
import os
import tempfile
from pathlib import Path


def write_atomic(path, data: bytes, *, mode: int | None = None, mtime: float | None = None) -> None:
    """Replace `path` with `data` (synced to disk first); `mode` (default 0600) and `mtime` set before."""
    path = Path(path)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "wb") as fh:
            fh.write(data)
            fh.flush()
            os.fsync(fh.fileno())
        if mode is not None:
            os.chmod(tmp, mode)
        if mtime is not None:
            os.utime(tmp, (mtime, mtime))
        os.replace(tmp, path)
    except BaseException:
        with contextlib.suppress(OSError):
            os.unlink(tmp)
        raise


def umask_mode(mode: int = 0o666) -> int:
    """`mode` as a plain `open()` would create it under the process's umask."""
    mask = os.umask(0)
    os.umask(mask)
    return mode & ~mask


def fsync_dir(path) -> None:
    """Make a folder's entries (a rename, a new file) durable; quietly nothing where unsupported."""
    with contextlib.suppress(OSError):
        fd = os.open(path, os.O_RDONLY)
        try:
            os.fsync(fd)
        finally:
            os.close(fd)
