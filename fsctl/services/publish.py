"""The daily drop-folder job: each tenant's previous-day recordings for its SFTP account (R-REC).

    <publish_dir>/<domain>/<YYYY-MM-DD>/<recording file name>    (hard link, or a copy)
    <publish_dir>/<domain>/<YYYY-MM-DD>/SHA256SUMS                (`sha256sum -c` format)

A day (in the tenant's time zone) is published from `publish_hour` (06:00) of the next day;
folders older than `publish_keep_days` (3) are deleted by the same run, but never sooner than
`publish_keep_days` after they were published: a catch-up `--date` of an older day stays its
3 days too (the time of publication is the manifest's modification time, set from the run's
clock when the folder's content changes). Files are hard-linked
from the recordings folder when it is on the same file system (no extra space; the drop
folder must then be served read-only, `internal-sftp -R`, as a write would change the
original), copied otherwise. Running it again is harmless: what is there and correct stays.

With nodes (issue 16) the job runs where the drop folders are; a recording on a node's disk
(`Recording.node`) is fetched from that node over SFTP (`fetch`: fsctl.services.recfetch, size
and SHA-256 checked) into `<publish_dir>/<domain>/.fsctl-incoming/` (0700: the customer's account
cannot enter it) and renamed into the day folder. A node that cannot be reached leaves its files
out of this run (`TenantPublication.waiting`); the manifest lists what the folder holds, and the
next run (the timer's, 15 minutes later) adds the rest and rewrites it.
"""

import dataclasses
import datetime as _dt
import os
import re
import shutil
import stat
import zoneinfo

from .. import validate
from ..errors import ValidationError
from ..files import write_atomic
from ..model import Recording, Tenant, utcnow
from . import recordings

MANIFEST = "SHA256SUMS"
INCOMING = ".fsctl-incoming"  # files fetched from nodes, before they are renamed into their day folder
_DAY_RE = re.compile(r"^[0-9]{4}-[0-9]{2}-[0-9]{2}\Z")


@dataclasses.dataclass
class TenantPublication:
    """What one run did for one tenant."""

    domain: str
    day: _dt.date
    linked: int = 0
    copied: int = 0
    unchanged: int = 0
    fetched: int = 0  # fetched from the node holding them
    missing: list = dataclasses.field(default_factory=list)  # catalogued but the file is gone
    removed: list = dataclasses.field(default_factory=list)  # expired day folders deleted
    waiting: list = dataclasses.field(default_factory=list)  # (path, why): on a node, not fetched this time
    unreachable: dict = dataclasses.field(default_factory=dict)  # node -> error (cannot be reached now)
    refused: dict = dataclasses.field(default_factory=dict)  # node -> error (host key, login: fix it)

    @property
    def published(self):
        """How many recordings the day's folder holds."""
        return self.linked + self.copied + self.unchanged + self.fetched


def default_day(now_utc, tz, hour):
    """The most recent day (in `tz`) whose publication time (`hour` next day) has passed."""
    local = now_utc.replace(tzinfo=_dt.timezone.utc).astimezone(tz)
    return (local - _dt.timedelta(hours=hour)).date() - _dt.timedelta(days=1)


def publish_time(day, tz, hour):
    """When `day` may be published: `hour` o'clock of the next day in `tz` (aware)."""
    return _dt.datetime.combine(day + _dt.timedelta(days=1), _dt.time(hour), tzinfo=tz)


def day_bounds_utc(day, tz):
    """[start, end) of a local day as naive UTC (DST-safe)."""

    def utc(d):
        return _dt.datetime.combine(d, _dt.time(), tzinfo=tz).astimezone(_dt.timezone.utc).replace(tzinfo=None)

    return utc(day), utc(day + _dt.timedelta(days=1))


def publish(
    recordings_dir,
    publish_dir,
    hour=6,
    keep_days=3,
    day=None,
    now=None,
    force=False,
    domains=None,
    link=os.link,
    fetch=None,
):
    """Publish the day's recordings of each tenant (or of `domains`) and expire old day folders.

    `link(source, target)` makes the hard link; when it raises OSError (another file system),
    the file is copied. `fetch(items)`: fetches [(Recording, local path)] from their nodes and
    returns a recfetch.FetchReport; without it, recordings on nodes wait (listed in `waiting`).
    """
    now = now or utcnow()
    if day is not None:
        day = validate.date(day, "--date")
    tenants = Tenant.select().order_by(Tenant.domain)
    if domains:
        tenants = tenants.where(Tenant.domain.in_([validate.domain(d, "--tenant") for d in domains]))
    plan = []
    for tenant in tenants:  # every tenant is checked before anything is written
        tz = zoneinfo.ZoneInfo(tenant.timezone or "UTC")
        wanted = day or default_day(now, tz, hour)
        ready = publish_time(wanted, tz, hour)
        if not force and now.replace(tzinfo=_dt.timezone.utc) < ready:
            raise ValidationError(
                "--date",
                wanted.isoformat(),
                f"{tenant.domain} may publish it from "
                f"{ready:%Y-%m-%d %H:%M} {tenant.timezone} (use --force to publish early)",
            )
        plan.append((tenant, tz, wanted))
    return [_publish_tenant(t, tz, d, recordings_dir, publish_dir, keep_days, now, link, fetch) for t, tz, d in plan]


def _publish_tenant(tenant, tz, day, recordings_dir, publish_dir, keep_days, now, link, fetch):
    report = TenantPublication(tenant.domain, day)
    root = os.path.join(publish_dir, tenant.domain)
    folder = os.path.join(root, day.isoformat())
    start, end = day_bounds_utc(day, tz)
    rows = list(
        Recording.select(Recording.path, Recording.sha256, Recording.size, Recording.node)
        .where((Recording.tenant == tenant) & (Recording.started_at >= start) & (Recording.started_at < end))
        .order_by(Recording.path)
    )
    lines = {}  # row index -> manifest line, in the rows' order
    changed = False
    remote = []  # (index, row, target): on a node, not in the day folder yet
    for index, row in enumerate(rows):
        rel, name = row.path, os.path.basename(row.path)
        target = os.path.join(folder, name)
        if row.node is not None:
            if _present(target, row.size):
                report.unchanged += 1
                lines[index] = f"{row.sha256}  {name}\n"
            else:
                remote.append((index, row, target))
            continue
        source = recordings.resolve(recordings_dir, rel)
        if not os.path.isfile(source):
            report.missing.append(rel)
            continue
        os.makedirs(folder, exist_ok=True)
        how = _place(source, target, row.size, link)
        setattr(report, how, getattr(report, how) + 1)
        changed = changed or how != "unchanged"
        lines[index] = f"{row.sha256}  {name}\n"
    if remote:
        for index in _fetch_into(report, remote, root, folder, fetch):
            row = rows[index]
            lines[index] = f"{row.sha256}  {os.path.basename(row.path)}\n"
            changed = True
    lines = [lines[i] for i in sorted(lines)]
    now_ts = now.replace(tzinfo=_dt.timezone.utc).timestamp()
    if lines:
        manifest = os.path.join(folder, MANIFEST)
        text = "".join(lines)
        if changed or _read(manifest) != text:
            _write_atomic(manifest, text, now_ts)
    report.removed = _expire(root, now.replace(tzinfo=_dt.timezone.utc).astimezone(tz).date(), keep_days, now_ts)
    return report


def _present(target, size):
    """True when the day folder holds the file already (a regular file of the catalogue's size)."""
    try:
        st = os.lstat(target)
    except FileNotFoundError:
        return False
    return stat.S_ISREG(st.st_mode) and st.st_size == size


def _fetch_into(report, remote, root, folder, fetch):
    """Fetch recordings on nodes into the tenant's incoming folder, then rename each into the day folder.

    Returns the indexes placed; the others are in `report.waiting` (and their nodes, when
    unreachable, in `report.unreachable`).
    """
    if fetch is None:
        report.waiting.extend((row.path, f"on node {row.node}: not fetched") for _, row, _ in remote)
        return []
    incoming = os.path.join(root, INCOMING)
    os.makedirs(incoming, exist_ok=True)
    os.chmod(incoming, 0o700)  # the customer's account sees the name, never the partial files
    result = fetch([(row, os.path.join(incoming, os.path.basename(row.path))) for _, row, _ in remote])
    report.unreachable.update(result.unreachable)
    report.refused.update(result.refused)
    placed = []
    for (index, row, target), done in zip(remote, result.results):
        if done.status == "failed":
            report.waiting.append((row.path, done.error))
            continue
        os.makedirs(folder, exist_ok=True)
        os.replace(done.transfer.local_path, target)
        report.fetched += 1
        placed.append(index)
    return placed


def _read(path):
    try:
        with open(path, encoding="utf-8") as fh:
            return fh.read()
    except FileNotFoundError:
        return None


def _place(source, target, size, link):
    """Hard-link (or copy) source to target atomically; returns linked, copied or unchanged."""
    try:
        st_t = os.stat(target)
        st_s = os.stat(source)
        if (st_t.st_ino, st_t.st_dev) == (st_s.st_ino, st_s.st_dev) or st_t.st_size == size == st_s.st_size:
            return "unchanged"
    except FileNotFoundError:
        pass
    tmp = target + ".tmp"
    if os.path.lexists(tmp):
        os.unlink(tmp)
    try:
        # A hard link shares the recording's inode, so its owner and mode: the customer's account
        # reads the published file, and a recording only FreeSWITCH's group may read (as installed,
        # README) is copied instead; the copy is fsctl's, in the tenant folder's group.
        if not os.stat(source).st_mode & stat.S_IROTH:
            raise PermissionError("the recording is not readable by the customer's account")
        link(source, tmp)
        how = "linked"
    except OSError:  # another file system (EXDEV), links not allowed, or not readable: copy
        shutil.copyfile(source, tmp)
        how = "copied"
    os.replace(tmp, target)
    return how


def _write_atomic(path, text, published_ts):
    """Write the manifest atomically; its modification time records when the folder was published."""
    write_atomic(path, text.encode("utf-8"), mode=0o644, mtime=published_ts)


def _expire(root, today, keep_days, now_ts):
    """Delete day folders older than `keep_days` days before `today` and published at least `keep_days`
    days before `now_ts`; returns their names."""
    removed = []
    if not os.path.isdir(root):
        return removed
    _expire_incoming(os.path.join(root, INCOMING), now_ts - keep_days * 86400)
    oldest = today - _dt.timedelta(days=keep_days)
    for name in sorted(os.listdir(root)):
        if not _DAY_RE.match(name):
            continue
        try:
            folder_day = _dt.date.fromisoformat(name)
        except ValueError:
            continue
        path = os.path.join(root, name)
        if (
            folder_day < oldest
            and os.path.isdir(path)
            and not os.path.islink(path)
            and not _published_within(path, now_ts, keep_days)
        ):
            shutil.rmtree(path)
            removed.append(name)
    return removed


def _published_within(folder, now_ts, keep_days):
    """Was the folder published (its manifest written) less than `keep_days` days before `now_ts`?"""
    try:
        published = os.stat(os.path.join(folder, MANIFEST)).st_mtime
    except FileNotFoundError:
        return False
    return now_ts - published < keep_days * 86400


def _expire_incoming(incoming, cutoff_ts):
    """Delete what a fetch left in the incoming folder (a node gone for good) older than `cutoff_ts`."""
    try:
        names = os.listdir(incoming)
    except FileNotFoundError:
        return
    for name in names:
        path = os.path.join(incoming, name)
        try:
            st = os.lstat(path)
            if stat.S_ISREG(st.st_mode) and st.st_mtime < cutoff_ts:
                os.unlink(path)
        except FileNotFoundError:
            continue
