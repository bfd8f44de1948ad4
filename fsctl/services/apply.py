"""Apply the rendered configuration to a running FreeSWITCH, all or nothing.

`apply_config` (one exclusive lock per conf dir, `fcntl.flock`):

1. recover: a journal left by a crashed apply is rolled back first (see below);
2. plan: active tenants whose `Tenant.revision` differs from `AppliedConfig.revision` are
   rendered; tenants deleted or suspended since the last apply have their files removed;
   nothing to do -> no reload (FACTS.md: FreeSWITCH's memory grows with every reload);
3. render the changed tenants (and dialplan/public.xml) into `<conf>/.fsctl-staging/`;
   files whose bytes did not change are left alone;
4. validate with `fsctl.freeswitch.xmlcheck`: every staged file fully, the rest of the tree from the
   summaries cached in `<conf>/.fsctl-index` (re-read when a file's size or mtime changed);
5. journal: hard links of the files about to be replaced go to `<conf>/.fsctl-journal/backup/`,
   then `manifest.json` lists every path touched (and whether it existed); only then is each
   file moved in with `os.replace` (atomic per file) and removed files unlinked;
6. `reloadxml` through the injected `reload()`; only the exact body `+OK [Success]` is
   success (FACTS.md: parse errors also start with `+OK`). Any other reply, `-ERR`, a
   timeout or an unreachable socket -> the journal is rolled back (previous files restored,
   new files deleted) and nothing is recorded; FreeSWITCH keeps its old configuration
   (a failed reload changes nothing, FACTS.md);
7. success: the journal becomes `<conf>/.fsctl-previous/` (the files as they were before this
   apply, for a manual look back), the index is updated and the revisions are recorded in
   `AppliedConfig`, inside the same lock;
8. mod_callcenter does not re-read its queues, agents and tiers on reloadxml: once the revisions
   are committed, the `callcenter_config` commands planned in step 4 from the callcenter files
   being replaced (`fsctl.freeswitch.callcenter`) go over the same Event Socket connection. A refused
   command does not undo the XML: the tenant stays pending in `<conf>/.fsctl-callcenter.json`
   (written right after the reload, before the first command) and every later apply, even one
   with nothing to render, sends it again until mod_callcenter took it all.

A crash between file writes leaves the journal; the next apply restores the previous
files before doing anything else, so the files again match what FreeSWITCH runs.

Scope. Without nodes the conf dir is the one FreeSWITCH's and every active tenant goes there
(`EVERYTHING`, revisions in `AppliedConfig`). With nodes, fsctl.services.nodeapply runs this same apply
once per node (`OnNode`): the node's own conf dir holds the tenants placed on it, its public
context their DIDs only, and its revisions are recorded in `NodeConfig`. A node whose files
travel over SFTP passes `push`: called once the files are in place locally, before reloadxml
(and again with the restored files after a rollback).
"""

from __future__ import annotations

import contextlib
import fcntl
import hashlib
import marshal
import os
import shutil
from dataclasses import dataclass, field
from pathlib import Path

from .. import render
from ..db import transaction
from ..errors import OperationError, UnreachableError
from ..freeswitch import callcenter, xmlcheck
from ..model import AppliedConfig, Tenant, utcnow
from .applied import EVERYTHING
from .journal import (  # noqa: F401 (the journal's names, as apply's callers and tests use them)
    JOURNAL_DIR,
    MANIFEST,
    _fsync_dir,
    _prune_empty_dirs,
    _write_atomic,
    _write_json_atomic,
    begin_journal,
    rollback_journal,
)

LOCK_FILE = ".fsctl-apply.lock"
STAGING_DIR = ".fsctl-staging"
PREVIOUS_DIR = ".fsctl-previous"
INDEX_FILE = ".fsctl-index"  # marshal behind a sha256 (JSON took 30 ms of a one-user apply to read and write)
OLD_INDEX_FILE = ".fsctl-index.json"  # (the index's name before: dropped, its summaries are re-read once)
INDEX_MAGIC = b"fsctl-index 1\n"
CACHE_DIR = ".fsctl-cache"  # compiled templates (jinja2 bytecode cache)
SUCCESS_REPLY = "+OK [Success]"
# The folders fsctl owns inside the conf dir (everything *.xml below them is validated).
MANAGED_DIRS = render.MANAGED_DIRS


@dataclass
class ApplyResult:
    """What an apply did: tenants rendered and removed, files written and deleted, the reply."""

    rendered: list = field(default_factory=list)
    removed: list = field(default_factory=list)
    written: list = field(default_factory=list)
    deleted: list = field(default_factory=list)
    reloaded: bool = False
    reply: str = ""
    recovered: list = field(default_factory=list)
    #: one {"domain", "command", "reply", "status"} per callcenter_config command (fsctl.freeswitch.callcenter.send)
    callcenter: list = field(default_factory=list)
    #: tenants whose callcenter commands were pending from an earlier apply, sent again this time
    callcenter_retried: list = field(default_factory=list)
    #: tenants whose callcenter commands are still not all done (the next apply sends them again)
    callcenter_pending: list = field(default_factory=list)

    def as_dict(self):
        """The stable JSON shape."""
        return {
            "rendered": self.rendered,
            "removed": self.removed,
            "written": self.written,
            "deleted": self.deleted,
            "reloaded": self.reloaded,
            "reply": self.reply,
            "recovered": self.recovered,
            "callcenter": {
                "commands": self.callcenter,
                "retried": self.callcenter_retried,
                "pending": self.callcenter_pending,
            },
        }


@contextlib.contextmanager
def apply_lock(conf: Path):
    """Hold the exclusive apply lock of a conf dir (waits for another apply to finish)."""
    conf.mkdir(parents=True, exist_ok=True)
    with open(conf / LOCK_FILE, "a+") as fh:
        fcntl.flock(fh.fileno(), fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(fh.fileno(), fcntl.LOCK_UN)


class EslReloader:
    """`reload()` sends `reloadxml`, `api(cmd)` any other command, on one Event Socket connection.

    The connection opens on first use and stays open until `close()` (apply_config closes it), so
    the callcenter_config commands that follow a reload go over the same connection.
    """

    def __init__(self, settings, factory=None):
        self._settings = settings
        self._make = factory or self._default_factory
        self._esl = None
        self.where = f"{settings.esl_host}:{settings.esl_port}"

    def _default_factory(self):
        from fsctl.freeswitch.esl import EventSocket

        s = self._settings
        return EventSocket(s.esl_host, s.esl_port, s.esl_password, timeout=s.esl_timeout, reconnect=False, events=())

    def _connection(self):
        if self._esl is None:
            esl = self._make()
            try:
                esl.connect()
            except BaseException:
                with contextlib.suppress(Exception):
                    esl.close()
                raise
            self._esl = esl
        return self._esl

    def __call__(self):
        return self.api("reloadxml")

    def api(self, command):
        """Run `api COMMAND`; the reply text (fsctl.freeswitch.esl errors as raised there)."""
        return self._connection().api(command)

    def close(self):
        """Close the connection, if open."""
        esl, self._esl = self._esl, None
        if esl is not None:
            with contextlib.suppress(Exception):
                esl.close()


def esl_reloader(settings, factory=None):
    """An EslReloader for the configured Event Socket; `factory()` builds the connection."""
    return EslReloader(settings, factory)


# --------------------------------------------------------------------------- journal
def recover(conf: Path) -> list:
    """Roll back what a crashed apply left half-done (before anything else touches the files)."""
    shutil.rmtree(conf / STAGING_DIR, ignore_errors=True)
    return rollback_journal(conf)


# --------------------------------------------------------------------------- index
def _load_index(conf: Path) -> dict:
    """The cached summaries, {} when missing or not intact (then every file is read once more).

    marshal reads them six times faster than JSON; it is not meant for damaged input, so the
    bytes are only unmarshalled when their sha256 matches the one written with them.
    """
    try:
        with open(conf / INDEX_FILE, "rb") as fh:
            blob = fh.read()
    except OSError:
        return {}
    head, _, payload = blob.partition(b"\n")
    digest, payload = payload[:64], payload[65:]
    if head + b"\n" != INDEX_MAGIC or hashlib.sha256(payload).hexdigest().encode() != digest:
        return {}
    try:
        index = marshal.loads(payload)
    except (EOFError, ValueError, TypeError):
        return {}
    return index if isinstance(index, dict) else {}


def _write_index(conf: Path, index: dict):
    payload = marshal.dumps(index)
    _write_atomic(conf / INDEX_FILE, INDEX_MAGIC + hashlib.sha256(payload).hexdigest().encode() + b"\n" + payload)
    with contextlib.suppress(FileNotFoundError):
        (conf / OLD_INDEX_FILE).unlink()


def managed_stamps(conf: Path) -> dict:
    """{relative path: [size, mtime_ns]} of every *.xml below fsctl's folders of the conf dir.

    One directory scan (no per-file path objects): apply after a one-user change must not pay
    for the thousands of files it does not touch.
    """
    found = {}
    root = str(conf)

    def scan(folder, rel_dir):
        try:
            entries = list(os.scandir(folder))
        except (FileNotFoundError, NotADirectoryError):
            return
        for entry in entries:
            if entry.name.startswith("."):
                continue
            rel = f"{rel_dir}/{entry.name}"
            if entry.is_dir(follow_symlinks=False):
                scan(entry.path, rel)
            elif entry.name.endswith(".xml"):
                st = entry.stat()
                found[rel] = [st.st_size, st.st_mtime_ns]

    for top in MANAGED_DIRS:
        scan(os.path.join(root, top), top)
    return found


MODES_STAMP = ".fsctl-modes-0640"


def tighten_modes_once(conf: Path) -> int:
    """Once per conf dir: files an older fsctl wrote 0644 (a1-hashes, PINs) made 0640; how many.

    New files are written 0640 (render.FILE_MODE); the journal and `.fsctl-previous` hold hard
    links of them. A stamp file marks the conf dir as done.
    """
    if (conf / MODES_STAMP).exists():
        return 0
    changed = 0
    for top in (*MANAGED_DIRS, PREVIOUS_DIR):
        for folder, _dirs, files in os.walk(conf / top):
            for name in files:
                path = os.path.join(folder, name)
                with contextlib.suppress(OSError):
                    st = os.lstat(path)
                    if st.st_mode & 0o007 and not os.path.islink(path):
                        os.chmod(path, render.FILE_MODE)
                        changed += 1
    (conf / MODES_STAMP).touch()
    return changed


def managed_files(conf: Path) -> list:
    """Every *.xml below fsctl's folders of the conf dir, as relative paths."""
    return sorted(managed_stamps(conf))


def _stamp(path: Path):
    st = os.stat(path)
    return [st.st_size, st.st_mtime_ns]


def _summaries(conf: Path, stamps: dict, index: dict) -> dict:
    """Summaries of files already in place ({rel: stamp}): from the index when unchanged, else re-checked."""
    out = {}
    for rel, stamp in stamps.items():
        entry = index.get(rel)
        if entry is not None and entry.get("stamp") == stamp:
            out[rel] = entry["summary"]
        else:
            out[rel] = xmlcheck.check_file(conf / rel, rel)
            index[rel] = {"stamp": stamp, "summary": xmlcheck.slim(out[rel])}
    return out


def _same_bytes(a: Path, b: Path) -> bool:
    if not b.exists() or a.stat().st_size != b.stat().st_size:
        return False
    with open(a, "rb") as fa, open(b, "rb") as fb:
        while True:
            x, y = fa.read(1 << 16), fb.read(1 << 16)
            if x != y:
                return False
            if not x:
                return True


# --------------------------------------------------------------------------- apply
def plan(full=False, scope=EVERYTHING):
    """(tenants to render, domains to remove): revision differs from the applied one, or gone."""
    applied = scope.applied()
    active = dict(render.plain_rows(render.active_tenants(scope.node).select(Tenant.domain, Tenant.revision)))
    wanted = [d for d, rev in active.items() if full or applied.get(d) != rev]
    changed = list(render.active_tenants(scope.node).where(Tenant.domain.in_(wanted))) if wanted else []
    removed = sorted(d for d in applied if d not in active)
    return changed, removed


def apply_config(
    conf_dir,
    reload,
    *,
    templates_dir="",
    watchdog=6,
    full=False,
    after_write=None,
    env=None,
    scope=EVERYTHING,
    push=None,
):
    """Render what changed, validate, write atomically, reloadxml; roll back on any failure.

    Then send mod_callcenter what changed (`reload.api`); a refusal there raises
    `callcenter.CallcenterError` (with `.result`) but leaves the XML applied. `scope`: which
    tenants this conf dir holds (EVERYTHING, or OnNode(node)); `push`: a node's SFTP delivery
    (fsctl.services.nodeapply.SftpPush), or None when FreeSWITCH reads the conf dir itself.
    """
    conf = Path(conf_dir)
    try:
        with apply_lock(conf):
            result = ApplyResult(recovered=recover(conf))
            tighten_modes_once(conf)
            if push is not None:
                push.resume(conf)  # what an earlier apply could not deliver (or take back) goes first
            with transaction(write=True):
                plans = _apply_locked(
                    conf, reload, result, templates_dir, watchdog, full, after_write, env, scope, push
                )
            if plans is None:  # nothing rendered: only tenants left pending by an earlier apply
                plans = callcenter.plan(conf, None, (), (), callcenter.load_pending(conf))
            if plans:
                _sync_callcenter(conf, reload, result, plans)
    finally:
        close = getattr(reload, "close", None)
        if close is not None:
            close()
    return result


def _sync_callcenter(conf, reload, result, plans):
    """Send the callcenter plans after the XML is committed; raise CallcenterError if any failed."""
    outcome = callcenter.sync(conf, plans, _callcenter_api(reload))
    result.callcenter = outcome.records
    result.callcenter_retried = [p.domain for p in plans if p.retry]
    result.callcenter_pending = outcome.pending
    if outcome.error:
        raise callcenter.CallcenterError(outcome.error, result, outcome.exit_code)


def _callcenter_api(reload):
    """`api(text) -> reply` over the reload's connection: `-ERR` replies returned, a lost link raised."""
    from fsctl.freeswitch.esl import EslCommandError, EslError

    api = getattr(reload, "api", None)

    def call(command):
        if api is None:
            raise callcenter.ConnectionLostError("no Event Socket to send it on (reload has no api)")
        try:
            reply = api(command)
        except EslCommandError as exc:
            return exc.reply
        except EslError as exc:
            # After a timeout the connection may hold a late reply: nothing more is sent on it.
            raise callcenter.ConnectionLostError(str(exc)) from None
        return reply if isinstance(reply, str) else reply.decode("utf-8", "replace")

    return call


def _apply_locked(conf, reload, result, templates_dir, watchdog, full, after_write, env, scope, push):
    """Steps 2-7; return the callcenter plans (None when there was nothing to render)."""
    changed, removed = plan(full, scope)
    result.rendered = [t.domain for t in changed]
    result.removed = removed
    if not changed and not removed and not result.recovered:
        return None
    env = env or render.make_environment(templates_dir, bytecode_dir=conf / CACHE_DIR)
    stage = conf / STAGING_DIR
    shutil.rmtree(stage, ignore_errors=True)
    stage.mkdir(parents=True)
    try:
        staged, tenant_digests = {}, {}
        for tenant, data in render.load_tenants(changed):
            digests = render.render_tenant(env, data, stage, watchdog, atomic=False)
            staged.update(digests)
            tenant_digests[tenant.domain] = hashlib.sha256(
                "".join(f"{k}={v}\n" for k, v in sorted(digests.items())).encode()
            ).hexdigest()
        index = _load_index(conf)
        public_source = render.public_source_digest(watchdog, scope.node)
        public_entry = index.get(render.PUBLIC_FILE)
        if not (
            public_entry
            and public_entry.get("source") == public_source
            and (conf / render.PUBLIC_FILE).exists()
            and public_entry.get("stamp") == _stamp(conf / render.PUBLIC_FILE)
        ):
            staged[render.PUBLIC_FILE] = render.render_public(env, stage, watchdog, atomic=False, node=scope.node)
        # Files of removed tenants, and files a changed tenant no longer needs (its last queue went...).
        stale = [rel for d in removed for rel in render.tenant_paths(d)]
        stale += [rel for t in changed for rel in render.tenant_paths(t.domain) if rel not in staged]
        deletes = sorted(rel for rel in stale if (conf / rel).exists())
        writes = sorted(rel for rel in staged if not _same_bytes(stage / rel, conf / rel))

        # Validate the tree as it will be: staged files fully, the others from the index.
        new_summaries = {rel: xmlcheck.check_file(stage / rel, rel) for rel in staged}
        keep = {rel: stamp for rel, stamp in managed_stamps(conf).items() if rel not in staged and rel not in deletes}
        tree = _summaries(conf, keep, index)
        tree.update(new_summaries)
        problems = xmlcheck.check_tree(tree, refs_from=set(new_summaries))
        if problems:
            raise xmlcheck.XmlCheckError(problems)
        # Before anything moves: the callcenter files being replaced are the state to diff from.
        plans = callcenter.plan(conf, stage, writes, deletes, callcenter.load_pending(conf))

        if writes or deletes or result.recovered:
            begin_journal(conf, writes + deletes)
            try:
                for rel in writes:
                    (conf / rel).parent.mkdir(parents=True, exist_ok=True)
                    os.replace(stage / rel, conf / rel)
                    if after_write:
                        after_write(rel)
                for rel in deletes:
                    (conf / rel).unlink()
                    if after_write:
                        after_write(rel)
                if push is not None:
                    push.deliver(conf, writes + deletes)
                result.reply = _reload(reload)
                # Write-ahead: from here on a crash or a refused command leaves the tenants pending.
                callcenter.mark_pending(conf, plans)
            except BaseException:
                restored = rollback_journal(conf)
                if push is not None:
                    push.take_back(conf, restored)
                raise
            result.reloaded = True
            result.written, result.deleted = writes, deletes
            previous = conf / PREVIOUS_DIR
            shutil.rmtree(previous, ignore_errors=True)
            os.replace(conf / JOURNAL_DIR, previous)
        for rel in deletes:
            index.pop(rel, None)
        for rel, summary in new_summaries.items():
            index[rel] = {"stamp": _stamp(conf / rel), "summary": xmlcheck.slim(summary)}
        if render.PUBLIC_FILE in new_summaries:
            index[render.PUBLIC_FILE]["source"] = public_source
        _write_index(conf, index)
        scope.record(changed, removed, tenant_digests, utcnow())
    finally:
        shutil.rmtree(stage, ignore_errors=True)
    return plans


def _reload(reload) -> str:
    """Run reloadxml; return the reply, or raise the domain error for a refusal or no answer."""
    from fsctl.freeswitch.esl import EslAuthError, EslCommandError, EslTimeoutError, EslUnreachableError

    where = getattr(reload, "where", "the Event Socket")
    try:
        reply = reload()
    except EslUnreachableError as exc:
        raise UnreachableError(
            f"FreeSWITCH {where} unreachable ({exc}): previous files restored, nothing applied"
        ) from None
    except EslTimeoutError as exc:
        raise UnreachableError(
            f"FreeSWITCH {where} did not answer reloadxml ({exc}): previous files restored, "
            "nothing recorded; run fsctl apply again"
        ) from None
    except EslAuthError:
        raise OperationError(
            f"FreeSWITCH {where} refused the Event Socket password (esl_password): "
            "previous files restored, nothing applied"
        ) from None
    except EslCommandError as exc:
        raise OperationError(
            f"FreeSWITCH refused reloadxml: {exc.reply.strip()}: previous files restored, nothing applied"
        ) from None
    text = reply if isinstance(reply, str) else reply.decode("utf-8", "replace")
    if text.rstrip("\n") != SUCCESS_REPLY:
        # FACTS.md: a parse error is reported as `+OK [[error near line N]: ...]`.
        raise OperationError(
            f"FreeSWITCH refused the configuration: {text.strip()}: previous files restored, nothing applied"
        )
    return text.rstrip("\n")


def config_status(callcenter_pending=()):
    """Per tenant: applied and current revision, and applied / pending / removed.

    `callcenter_pending`: domains whose XML is applied but whose mod_callcenter commands are not
    all done yet (callcenter.load_pending): pending, change "callcenter".
    """
    applied = {a.domain: a for a in AppliedConfig.select()}
    rows = []
    for t in Tenant.select().order_by(Tenant.domain):
        a = applied.pop(t.domain, None)
        if t.state != "active":
            status, change = ("pending", "remove") if a else ("removed", "")
        elif a is None or a.revision != t.revision:
            status, change = "pending", "render"
        elif t.domain in callcenter_pending:
            status, change = "pending", "callcenter"
        else:
            status, change = "applied", ""
        rows.append(_status_row(t.domain, t.state, a, t.revision, status, change))
    for domain, a in applied.items():
        rows.append(_status_row(domain, "deleted", a, None, "pending", "remove"))
    return sorted(rows, key=lambda r: r["domain"])


def _status_row(domain, state, applied, revision, status, change):
    return {
        "domain": domain,
        "state": state,
        "applied_revision": applied.revision if applied else None,
        "revision": revision,
        "status": status,
        "change": change,
        "applied_at": applied.applied_at.isoformat(sep=" ", timespec="seconds") if applied else None,
    }
