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
"""

import dataclasses
import datetime as _dt
import os
import re
import shutil
import stat
import tempfile
import zoneinfo

from .. import validate
from ..errors import ValidationError
from ..model import Recording, Tenant, utcnow
from . import recordings

MANIFEST = "SHA256SUMS"
_DAY_RE = re.compile(r"^[0-9]{4}-[0-9]{2}-[0-9]{2}\Z")


@dataclasses.dataclass
class TenantPublication:
    """What one run did for one tenant."""

    domain: str
    day: _dt.date
    linked: int = 0
    copied: int = 0
    unchanged: int = 0
    missing: list = dataclasses.field(default_factory=list)  # catalogued but the file is gone
    removed: list = dataclasses.field(default_factory=list)  # expired day folders deleted

    @property
    def published(self):
        """How many recordings the day's folder holds."""
        return self.linked + self.copied + self.unchanged


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


def publish(recordings_dir, publish_dir, hour=6, keep_days=3, day=None, now=None, force=False, domains=None,
            link=os.link):
    """Publish the day's recordings of each tenant (or of `domains`) and expire old day folders.

    `link(source, target)` makes the hard link; when it raises OSError (another file system),
    the file is copied.
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
            raise ValidationError("--date", wanted.isoformat(), f"{tenant.domain} may publish it from "
                                  f"{ready:%Y-%m-%d %H:%M} {tenant.timezone} (use --force to publish early)")
        plan.append((tenant, tz, wanted))
    return [_publish_tenant(t, tz, d, recordings_dir, publish_dir, keep_days, now, link) for t, tz, d in plan]


def _publish_tenant(tenant, tz, day, recordings_dir, publish_dir, keep_days, now, link):
    report = TenantPublication(tenant.domain, day)
    root = os.path.join(publish_dir, tenant.domain)
    folder = os.path.join(root, day.isoformat())
    start, end = day_bounds_utc(day, tz)
    rows = (Recording.select(Recording.path, Recording.sha256, Recording.size)
            .where((Recording.tenant == tenant) & (Recording.started_at >= start) & (Recording.started_at < end))
            .order_by(Recording.path).tuples())
    lines = []
    changed = False
    for rel, digest, size in rows:
        source = recordings.resolve(recordings_dir, rel)
        name = os.path.basename(rel)
        if not os.path.isfile(source):
            report.missing.append(rel)
            continue
        os.makedirs(folder, exist_ok=True)
        how = _place(source, os.path.join(folder, name), size, link)
        setattr(report, how, getattr(report, how) + 1)
        changed = changed or how != "unchanged"
        lines.append(f"{digest}  {name}\n")
    now_ts = now.replace(tzinfo=_dt.timezone.utc).timestamp()
    if lines:
        manifest = os.path.join(folder, MANIFEST)
        text = "".join(lines)
        if changed or _read(manifest) != text:
            _write_atomic(manifest, text, now_ts)
    report.removed = _expire(root, now.replace(tzinfo=_dt.timezone.utc).astimezone(tz).date(), keep_days, now_ts)
    return report


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
    fd, tmp = tempfile.mkstemp(dir=os.path.dirname(path), prefix=".tmp-")
    with os.fdopen(fd, "w", encoding="utf-8") as fh:
        fh.write(text)
    os.chmod(tmp, 0o644)
    os.utime(tmp, (published_ts, published_ts))
    os.replace(tmp, path)


def _expire(root, today, keep_days, now_ts):
    """Delete day folders older than `keep_days` days before `today` and published at least `keep_days`
    days before `now_ts`; returns their names."""
    removed = []
    if not os.path.isdir(root):
        return removed
    oldest = today - _dt.timedelta(days=keep_days)
    for name in sorted(os.listdir(root)):
        if not _DAY_RE.match(name):
            continue
        try:
            folder_day = _dt.date.fromisoformat(name)
        except ValueError:
            continue
        path = os.path.join(root, name)
        if folder_day < oldest and os.path.isdir(path) and not os.path.islink(path) \
                and not _published_within(path, now_ts, keep_days):
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
