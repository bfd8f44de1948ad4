"""mod_xml_cdr files: read back, imported in batches, archived durably (fcntl lock, fsync, move).

FACTS.md: mod_cdr_csv does not escape its fields, so the XML files are the safe format to read
back after an outage. The fsctl-cdr-import timer runs `import_xml_cdr_dir` every 5 minutes and
moves what it imported to an archive (`move_file`, after the commit), so a call the service
missed is never lost.
"""

from __future__ import annotations

import contextlib
import errno
import fcntl
import os
import shutil
import stat
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable
from urllib.parse import unquote

from ...db import database
from ...errors import ValidationError, first_line
from ...freeswitch import chanvars as cv
from ...freeswitch.channel import parse_channel
from .ingest import ingest_hangups


def xml_cdr_headers(data: bytes) -> dict:
    """The hang-up event headers equivalent to one mod_xml_cdr file (ValidationError if malformed)."""
    from lxml import etree

    parser = etree.XMLParser(resolve_entities=False, no_network=True, huge_tree=False, load_dtd=False)
    try:
        root = etree.fromstring(data, parser)
    except etree.XMLSyntaxError as exc:
        raise ValidationError(
            "xml", first_line(exc.msg or str(exc), "parse error"), "must be well-formed XML (a mod_xml_cdr file)"
        ) from None
    if root.tag != "cdr":
        raise ValidationError("xml root", root.tag, "must be <cdr> (a mod_xml_cdr file)")
    variables = root.find("variables")
    if variables is None:
        raise ValidationError("cdr", "variables", "must have a <variables> element")
    headers = {cv.EVENT_NAME: "CHANNEL_HANGUP_COMPLETE"}
    for var in variables:
        if isinstance(var.tag, str):
            # mod_xml_cdr URL-encodes every variable value (switch_ivr_set_xml_chan_var).
            headers[cv.header(var.tag)] = unquote(var.text or "")
    direction = root.findtext("channel_data/direction")
    if direction:
        headers[cv.CALL_DIRECTION] = direction
    headers[cv.UNIQUE_ID] = headers.get(cv.header(cv.UUID), "")
    if cv.header(cv.HANGUP_CAUSE_VAR) in headers:
        headers[cv.HANGUP_CAUSE] = headers[cv.header(cv.HANGUP_CAUSE_VAR)]
    # The first <callflow> is the channel's current caller profile (as in the event headers).
    profile = root.find("callflow/caller_profile")
    if profile is not None:
        for tag, header in (
            ("caller_id_number", cv.CALLER_ID_NUMBER),
            ("caller_id_name", cv.CALLER_ID_NAME),
            ("destination_number", cv.DESTINATION_NUMBER),
            ("context", cv.CALLER_CONTEXT),
            ("rdnis", cv.CALLER_RDNIS),
            ("chan_name", cv.CHANNEL_NAME),
        ):
            text = profile.findtext(tag)
            if text:
                headers[header] = text
    return headers


@dataclass
class ImportReport:
    """What `import_xml_cdr_dir` did: files read, calls created/updated, failures (path, reason), files moved."""

    files: int = 0
    calls_created: int = 0
    calls_updated: int = 0
    legs: int = 0
    failed: list = field(default_factory=list)
    too_new: list = field(default_factory=list)  # paths left for the next run (younger than min_age, or their call)
    moved: int = 0
    not_moved: list = field(default_factory=list)  # (path, reason): imported, the move failed; re-imported next run
    archive_deleted: int | None = None  # archived files deleted (None: not looked at in this run)


ARCHIVE_LOCK = ".fsctl-cdr-import.lock"


PURGE_STAMP = ".fsctl-cdr-import.purged"


def _reason(exc: Exception) -> str:
    """Why a file could not be read, on one line."""
    if isinstance(exc, ValidationError):
        return str(exc)
    if isinstance(exc, OSError):
        return exc.strerror or str(exc)
    return f"cannot be read ({exc.__class__.__name__}: {first_line(str(exc), 'no detail')})"


def _read_regular(path: Path) -> tuple[bytes, os.stat_result]:
    """A file's bytes and status, never through a link (ValidationError for a link or a non-file).

    FreeSWITCH's user can write in the folder the import reads (as another user, root on older
    installations): a `x.cdr.xml` link to any file must not be read, nor moved.
    """
    try:
        fd = os.open(path, os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK)
    except OSError as exc:
        if exc.errno == errno.ELOOP:
            raise ValidationError("file", path.name, "is a symbolic link: refused (not read, not moved)") from None
        raise
    with os.fdopen(fd, "rb") as fh:
        st = os.fstat(fh.fileno())
        if not stat.S_ISREG(st.st_mode):
            raise ValidationError("file", path.name, "is not a regular file: refused (not read, not moved)")
        return fh.read(), st


def _cdr_files(directory: Path) -> list[Path]:
    # Links are listed too: the import refuses each (rglob does not descend into linked folders).
    return sorted(p for p in directory.rglob("*.xml") if p.is_symlink() or p.is_file())


def _seconds_option(value, option: str) -> float:
    try:
        number = float(value)
    except (TypeError, ValueError):
        number = -1.0
    if not 0 <= number < float("inf"):
        raise ValidationError(option, value, "must be a number of seconds >= 0")
    return number


def _days_option(value, option: str) -> int:
    try:
        number = int(str(value).strip())
    except ValueError:
        number = 0
    if number < 1:
        raise ValidationError(option, value, "must be a whole number of days >= 1")
    return number


def _archive_folder(directory: Path, move_to) -> Path:
    """The archive folder, checked: outside `directory`, created if missing, writable (ValidationError if not)."""
    source, target = os.path.realpath(directory), os.path.realpath(move_to)
    if os.path.commonpath([source, target]) in (source, target):
        # Inside DIR the next run would import the archive again; containing DIR, a file's relative
        # path could lead back into DIR.
        raise ValidationError(
            "--move-to", move_to, "must be a folder outside DIR (not DIR, not inside it, not containing it)"
        )
    try:
        os.makedirs(target, exist_ok=True)
        fd, probe = tempfile.mkstemp(dir=target, prefix=".fsctl-probe-")
        os.close(fd)
        os.unlink(probe)
    except OSError as exc:
        raise ValidationError(
            "--move-to", move_to, f"must be a folder fsctl can create and write to ({exc.strerror or exc})"
        ) from None
    return Path(target)


@contextlib.contextmanager
def _archive_lock(archive: Path | None):
    """One import at a time moves files into an archive (a second one waits)."""
    if archive is None:
        yield
        return
    with open(archive / ARCHIVE_LOCK, "a") as fh:
        fcntl.flock(fh.fileno(), fcntl.LOCK_EX)
        yield


def _fsync_dir(path: Path) -> None:
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def move_file(source: Path, target: Path, rename: Callable = os.replace) -> None:
    """Move a file to `target`, folders created: a rename, or across file systems a durable copy, then unlink."""
    target.parent.mkdir(parents=True, exist_ok=True)
    try:
        rename(source, target)  # atomic on one file system; keeps the file's time (retention counts from it)
        return
    except OSError as exc:
        if exc.errno != errno.EXDEV:
            raise
    # Another file system: the copy is on disk under its final name before the source goes, so a
    # crash leaves the file in both places (imported again next time, harmless), never in none.
    fd, tmp = tempfile.mkstemp(dir=target.parent, prefix=f".{target.name}.", suffix=".part")
    try:
        with os.fdopen(fd, "wb") as out, open(source, "rb") as src:
            shutil.copyfileobj(src, out)
            out.flush()
            os.fsync(out.fileno())
        shutil.copystat(source, tmp)
        os.replace(tmp, target)
    except BaseException:
        with contextlib.suppress(OSError):
            os.unlink(tmp)
        raise
    _fsync_dir(target.parent)
    os.unlink(source)


def purge_archive(archive: Path, keep_days: int, now: float, every: float = 86400) -> int | None:
    """Delete archived files (*.xml) older than `keep_days`, then empty folders; None if done under `every` s ago."""
    # At most once a day: the archive holds weeks of files and the timer runs every 5 minutes.
    stamp = archive / PURGE_STAMP
    try:
        if 0 <= now - stamp.stat().st_mtime < every:
            return None
    except FileNotFoundError:
        pass
    cutoff = now - keep_days * 86400
    deleted = 0
    for path in sorted(archive.rglob("*.xml")):
        try:
            st = path.lstat()  # a link is judged by itself, never by what it points to
            if (stat.S_ISREG(st.st_mode) or stat.S_ISLNK(st.st_mode)) and st.st_mtime < cutoff:
                path.unlink()
                deleted += 1
        except FileNotFoundError:
            continue
    for folder in sorted((p for p in archive.rglob("*") if p.is_dir()), reverse=True):  # deepest first
        with contextlib.suppress(OSError):  # not empty
            folder.rmdir()
    stamp.touch()
    os.utime(stamp, (now, now))
    return deleted


def import_xml_cdr_dir(
    directory,
    batch: int = 500,
    notifier: Callable | None = None,
    move_to=None,
    min_age=0,
    keep_days=None,
    now: float | None = None,
    move: Callable = move_file,
    node: str | None = None,
) -> ImportReport:
    """Import every mod_xml_cdr file under `directory`, idempotently; bad files are reported and skipped.

    `move_to`: once a batch is committed, its imported files are moved there (same relative
    path); files that failed stay. A crash between the commit and the move leaves files that
    the next run imports again (calls unique by UUID, notifications queued once). `min_age`:
    files modified less than that many seconds before `now` (time.time()) may still be being
    written by FreeSWITCH: they, and the other files of their call, wait for the next run.
    `keep_days` (with `move_to`): archived files older than that are deleted. `node`: the node
    whose mod_xml_cdr folder this is (its calls and legs say so; ingest.ingest_hangups).
    """
    directory = Path(directory)
    if not directory.is_dir():
        raise ValidationError("directory", str(directory), "must be an existing directory of mod_xml_cdr files")
    min_age = _seconds_option(min_age, "--min-age")
    if keep_days is not None:
        keep_days = _days_option(keep_days, "--archive-keep-days")
        if move_to is None:
            raise ValidationError("--archive-keep-days", keep_days, "needs --move-to (it cleans that archive)")
    archive = _archive_folder(directory, move_to) if move_to is not None else None
    if archive is not None and database.in_transaction():
        raise RuntimeError(
            "import_xml_cdr_dir(move_to=...) commits each batch before moving its files: call it outside a transaction"
        )
    now = time.time() if now is None else now
    report = ImportReport()
    with _archive_lock(archive):
        # Group the legs of one call into the same batch: read the call UUID of every file first.
        keyed: list[tuple[str, Path]] = []
        waiting: set[str] = set()  # calls with a file too new
        for path in _cdr_files(directory):
            try:
                data, st = _read_regular(path)
            except FileNotFoundError:  # moved or deleted meanwhile
                continue
            except (OSError, ValidationError) as exc:
                report.files += 1
                report.failed.append((str(path), _reason(exc)))
                continue
            young = min_age > 0 and st.st_mtime > now - min_age
            report.files += 1
            try:
                ch = parse_channel(xml_cdr_headers(data))
            except Exception as exc:  # anything a malformed file makes the parser raise: listed, skipped
                if young:  # perhaps half written: not a failure yet
                    report.too_new.append(str(path))
                else:
                    report.failed.append((str(path), _reason(exc)))
                continue
            if young:
                report.too_new.append(str(path))
                waiting.add(ch.call_uuid)
                continue
            keyed.append((ch.call_uuid, path))
        report.too_new.extend(str(path) for uuid, path in keyed if uuid in waiting)
        keyed = sorted(item for item in keyed if item[0] not in waiting)
        i = 0
        while i < len(keyed):
            j = min(i + batch, len(keyed))
            while j < len(keyed) and keyed[j][0] == keyed[j - 1][0]:
                j += 1
            parsed: list[tuple[Path, dict]] = []
            for _, path in keyed[i:j]:
                try:
                    parsed.append((path, xml_cdr_headers(_read_regular(path)[0])))
                except FileNotFoundError:
                    report.files -= 1
                except Exception as exc:
                    report.failed.append((str(path), _reason(exc)))
            result = ingest_hangups([h for _, h in parsed], notifier=notifier, node=node)  # committed on return
            refused = set()
            for index, reason, _ in result.errors:
                refused.add(index)
                report.failed.append((str(parsed[index][0]), reason))
            report.calls_created += result.calls_created
            report.calls_updated += result.calls_updated
            report.legs += result.legs
            if archive is not None:
                for index, (path, _) in enumerate(parsed):
                    if index in refused:
                        continue
                    try:
                        move(path, archive / path.relative_to(directory))
                        report.moved += 1
                    except FileNotFoundError:  # gone meanwhile: nothing left to move
                        continue
                    except OSError as exc:
                        report.not_moved.append((str(path), exc.strerror or str(exc)))
            i = j
        if keep_days is not None:
            report.archive_deleted = purge_archive(archive, keep_days, now)
    report.failed.sort()
    report.too_new.sort()
    return report
