"""What the call-logic service reads and writes, kept off the gevent hub.

Every database call runs in gevent's thread pool (peewee keeps one connection per thread),
so a slow query or a SQLite lock wait blocks one pool thread, never the event loop.

- Tenant snapshots are cached per tenant and rebuilt only when `Tenant.revision` changes.
  The revision itself is looked up at most every `revision_ttl` seconds (1 s), in the
  background while calls go on with the snapshot they have: a change reaches the calls within
  about a second, and no call of a busy tenant waits for a query.
- Rotation state: the service decides a tenant's calls one at a time (`tenant_lock`), keeps
  the state in memory, and writes the changes behind, in order, with compare-and-set. They are
  collected for `rotation_linger` seconds (50 ms) and written per tenant in one transaction,
  a group's successive moves as one compare-and-set: one write per call cost about a
  millisecond of a pool thread, whose Python code holds the GIL that the hub needs to
  answer the next calls. A lost compare-and-set means another service process moved the
  rotation: the state is reloaded from the database for the next call. A new revision
  (members changed) reloads it too.
"""

from __future__ import annotations

import logging
import threading
import time

import gevent
import gevent.lock
import gevent.queue

from fsctl.db import transaction
from fsctl.model import CrmHook, Tenant
from fsctl.services.snapshot import build_tenant_config, load_rotation, save_rotation

log = logging.getLogger("fs_scripts.store")


class DatabaseStore:
    """Tenant snapshots, rotation state and hang-up sinks backed by the fsctl database."""

    def __init__(
        self,
        recordings_root=None,
        hangup_sinks=(),
        channel_sinks=(),
        deliver=None,
        run=None,
        revision_ttl=1.0,
        clock=time.monotonic,
        rotation_linger=0.05,
    ):
        self.recordings_root = recordings_root
        self.revision_ttl = revision_ttl
        self.rotation_linger = rotation_linger
        self._clock = clock
        self._fresh = {}  # domain -> (checked at, revision, TenantConfig), read on the hub
        self._refreshing = set()  # domains whose revision is being looked up in the background
        self._pending = gevent.queue.Queue()  # rotation updates to write behind, in order
        self._persister = None
        self.hangup_sinks = list(hangup_sinks)
        self.channel_sinks = list(channel_sinks)
        self._deliver = deliver
        self._run = run or gevent.get_hub().threadpool.apply
        self._cache = {}  # domain -> (revision, TenantConfig); touched by pool threads
        self._cache_lock = threading.Lock()
        self._rotation = {}  # domain -> (revision, RotationState); touched by the hub only
        self._locks = {}

    def tenant_lock(self, domain):
        """A gevent lock serialising the decisions of one tenant's calls (rotation order)."""
        lock = self._locks.get(domain)
        if lock is None:
            lock = self._locks[domain] = gevent.lock.RLock()
        return lock

    def load(self, domain):
        """(TenantConfig, RotationState) of a tenant, or (None, None) if it does not serve calls."""
        now = self._clock()
        fresh = self._fresh.get(domain)
        if fresh is not None and domain in self._rotation:
            if now - fresh[0] >= self.revision_ttl and domain not in self._refreshing:
                # Stale: look again in the background; this call goes on with what we have.
                self._refreshing.add(domain)
                gevent.spawn(self._refresh, domain)
            return fresh[2], self._rotation[domain][1]
        return self._load_now(domain)

    def _refresh(self, domain):
        try:
            self._load_now(domain)
        except Exception:
            log.exception("could not refresh the configuration of %s; keeping the last one", domain)
        finally:
            self._refreshing.discard(domain)

    def _load_now(self, domain):
        now = self._clock()
        revision, config, fresh_rotation = self._run(self._load, (domain, domain not in self._rotation))
        if config is None:
            self._fresh.pop(domain, None)
            return None, None
        self._fresh[domain] = (now, revision, config)
        cached = self._rotation.get(domain)
        if fresh_rotation is not None and (cached is None or cached[0] != revision):
            self._rotation[domain] = (revision, fresh_rotation)
        elif cached is not None and cached[0] != revision:
            # The configuration changed (members may have): the database holds the truth.
            self._rotation[domain] = (revision, self._run(self._load_rotation, (domain,)))
        return config, self._rotation[domain][1]

    def save_rotation(self, domain, updates):
        """Apply rotation updates in memory now and write them behind (compare-and-set); returns []."""
        updates = tuple(updates)
        revision, state = self._rotation.get(domain, (None, None))
        if state is not None:
            self._rotation[domain] = (revision, state.apply(updates))
        self._pending.put((domain, updates))
        if self._persister is None or self._persister.dead:
            self._persister = gevent.spawn(self._persist)
        return []

    def flush(self, timeout=5.0):
        """Wait until every rotation update is written (tests, shutdown)."""
        deadline = self._clock() + timeout
        while (not self._pending.empty() or self._writing) and self._clock() < deadline:
            gevent.sleep(0.01)

    def close(self, timeout=5.0):
        """Write the rotation moves still queued, then stop the writer (the service's shutdown)."""
        self.flush(timeout)
        if not self._pending.empty():
            log.warning(
                "stopping with the rotation of %d calls unwritten: the next call starts from the last stored state",
                self._pending.qsize(),
            )
        if self._persister is not None:
            self._persister.kill(block=False)
            self._persister = None

    _writing = False

    def _persist(self):
        while True:
            batch = [self._pending.get()]
            self._writing = True
            try:
                deadline = time.monotonic() + self.rotation_linger
                while True:
                    remaining = deadline - time.monotonic()
                    if remaining <= 0:
                        break
                    try:
                        batch.append(self._pending.get(timeout=remaining))
                    except gevent.queue.Empty:
                        break
                while not self._pending.empty():
                    batch.append(self._pending.get_nowait())
                by_domain = {}  # domain -> its updates, in decision order
                for domain, updates in batch:
                    by_domain.setdefault(domain, []).extend(updates)
                for domain, updates in by_domain.items():
                    try:
                        lost = self._run(self._save_rotation, (domain, updates))
                    except Exception:
                        log.exception("could not store the rotation of %s; reloading it from the database", domain)
                        lost = True
                    if lost:
                        # Another service process moved it (or the write failed): the database decides.
                        self._rotation.pop(domain, None)
                        self._fresh.pop(domain, None)
            finally:
                self._writing = False

    def record_hangups(self, batch):
        """Hand a batch of CHANNEL_HANGUP_COMPLETE headers to every sink (call records, recordings)."""
        return self._run(self._record, (self.hangup_sinks, batch))

    def record_channel_events(self, batch):
        """Hand a batch of ringing/answered channel events to the CRM sinks."""
        return self._run(self._record, (self.channel_sinks, batch))

    def has_crm_hooks(self):
        """True when some tenant has a CRM hook (the service then subscribes to channel events)."""
        return self._run(self._has_crm_hooks, ())

    def deliver(self):
        """Deliver due notifications (in a pool thread: SMTP and HTTP may be slow)."""
        if self._deliver is not None:
            return self._run(self._deliver, ())
        return None

    # --- run in pool threads ------------------------------------------------------------------

    def _has_crm_hooks(self):
        return CrmHook.select().exists()

    def _tenant(self, domain):
        return Tenant.get_or_none(Tenant.domain == (domain or "").lower())

    def _load(self, domain, with_rotation):
        tenant = self._tenant(domain)
        if tenant is None or tenant.state != "active":
            return None, None, None
        with self._cache_lock:
            cached = self._cache.get(tenant.domain)
        if cached is None or cached[0] != tenant.revision:
            config = build_tenant_config(tenant, self.recordings_root)
            with self._cache_lock:
                self._cache[tenant.domain] = (tenant.revision, config)
        else:
            config = cached[1]
        return tenant.revision, config, load_rotation(tenant) if with_rotation else None

    def _load_rotation(self, domain):
        tenant = self._tenant(domain)
        return load_rotation(tenant)

    def _save_rotation(self, domain, updates):
        tenant = self._tenant(domain)
        if tenant is None:
            return []
        # The write lock up front (fsctl.db.transaction: BEGIN IMMEDIATE on SQLite).
        with transaction(write=True):
            return save_rotation(tenant, updates)

    def _record(self, sinks, batch):
        for sink in sinks:
            try:
                sink(batch)
            except Exception:  # one sink failing must not starve the others
                log.exception("hang-up sink %s failed on %d events", getattr(sink, "__name__", sink), len(batch))
