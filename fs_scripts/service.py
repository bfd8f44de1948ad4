"""The call-logic service: FreeSWITCH parks a scenario call, we decide and run its plan.

Flow (STYLE.md "Shape"): CHANNEL_PARK event -> CallFacts -> tenant snapshot + rotation state
(database, in a thread pool) -> `decide` (pure) -> the plan, written to the Event Socket
back to back: its variables with the API `uuid_setvar_multi`, its applications with `sendmsg
execute`, a bridge (or any app that lasts) awaited by Application-UUID (fsctl.freeswitch.esl).

One media tick. A parked channel runs a `sendmsg` application only at its next pass through
the park loop, every 20 ms (FACTS.md); an API runs at once in the Event Socket's thread, before
FreeSWITCH reads the next command. So the watchdog is cancelled with the API `sched_del <uuid>`
(what the `sched_cancel` application does: the dialplan's `sched_transfer` task group is the
channel's uuid, src/switch_ivr_async.c) and the plan's `set`s become one `uuid_setvar_multi`:
the bridge is the channel's only application and starts at the first tick after the park.

The rendered dialplan sets `fsctl_tenant` (and `fsctl_did` for public numbers), schedules a
transfer to the tenant's fallback extension a few seconds ahead (`sched_transfer`), and parks
the call. The first thing the service sends is `sched_del <uuid>`, so a call the service never
takes (service down, FreeSWITCH event queue full) still reaches the fallback in bounded time.
FreeSWITCH's own `park_timeout` would only hang up (src/switch_ivr.c, switch_ivr_park), so it
is not the safety net.

Database work (snapshots, rotation compare-and-set, call records) runs in gevent's thread
pool, never on the hub: a SQLite lock wait would stall every call (FACTS.md, greenswitch).
Hang-up events are queued (bounded) and written in batches by one worker.
"""

from __future__ import annotations

import datetime as dt
import logging
import re
import time
from dataclasses import dataclass

import gevent
import gevent.queue

from fsctl.calllogic.decide import CallFacts, DecisionError, decide, decide_fallback
from fsctl.calllogic.plan import Bridge, drive, multiset, setvar_multi
from fsctl.freeswitch import chanvars as cv
from fsctl.freeswitch.esl import EslCommandError, EslError

log = logging.getLogger("fs_scripts.service")
# What recovers the calls whose events the service could not record (conf/systemd/fsctl-cdr-import.*).
RECOVERY = "fsctl-cdr-import.timer imports them from FreeSWITCH's mod_xml_cdr files"

PASSED_CAUSES = ("SUCCESS", "ORIGINATOR_CANCEL")
# Applications that return at once: sent without waiting for their completion (the channel
# runs its queued applications in order), which saves a round trip each.
INSTANT_APPS = frozenset(
    {"set", "multiset", "unset", "export", "sched_cancel", "pre_answer", "answer", "record_session"}
)


# The channel events the CRM "ringing" / "answered" webhooks (fsctl.services.notify) come from.
CRM_EVENTS = ("CHANNEL_PROGRESS", "CHANNEL_PROGRESS_MEDIA", "CHANNEL_ANSWER")

# A channel's Unique-ID as a command can carry it: no blank, no control character, bounded.
_UUID_RE = re.compile(r"[^\s\x00-\x1f\x7f]{1,256}\Z")


def utcnow() -> dt.datetime:
    """The clock the service decides with (aware UTC)."""
    return dt.datetime.now(dt.timezone.utc)


@dataclass
class Stats:
    """Counters for the health check and the benchmark."""

    calls: int = 0
    decided: int = 0
    fallbacks: int = 0
    failed: int = 0
    ignored: int = 0
    hangups: int = 0
    hangups_dropped: int = 0
    channel_events: int = 0
    rotation_retries: int = 0
    superseded: int = 0  # plans ended by a second park of their channel


class CallService:
    """Routes parked scenario calls; `store` gives configuration and persists state."""

    def __init__(
        self,
        esl,
        store,
        clock=utcnow,
        max_rotation_tries=3,
        hangup_queue=10000,
        on_decided=None,
        crm_events=True,
        deliver_every=10.0,
        announce_every=0.0,
        crm_every=5.0,
    ):
        self.esl = esl
        self.store = store
        self.clock = clock
        self.max_rotation_tries = max_rotation_tries
        self.stats = Stats()
        self.active: dict[str, gevent.Greenlet] = {}  # uuid -> the greenlet running its plan
        self.gone: set[str] = set()
        # Events written to the database by one worker, in batches: ("hangup" | "channel", headers).
        self.hangups = gevent.queue.Queue(maxsize=hangup_queue)
        self.crm_events = crm_events
        self.deliver_every = deliver_every
        self._deliverer = None
        # Stamp a FreeSWITCH global variable with its own clock now and then: `fsctl check` reads it.
        self.announce_every = announce_every
        self._announcer = None
        self.on_decided = on_decided  # callback(uuid, decision), for tests and benchmarks
        # How often to look whether some tenant has a CRM hook (channel events subscribed or not).
        self.crm_every = crm_every
        self._crm_watcher = None
        self._crm_subscribed = False
        self._writer = None

    def attach(self) -> None:
        """Register the event handlers and start the hang-up writer."""
        self.esl.on("CHANNEL_PARK", self.on_park)
        self.esl.on("CHANNEL_HANGUP_COMPLETE", self.on_hangup)
        if self.crm_events:
            if callable(getattr(self.store, "has_crm_hooks", None)):
                # Subscribed only while some tenant has a CRM hook (see _crm_loop).
                if self._crm_watcher is None:
                    self._crm_watcher = gevent.spawn(self._crm_loop)
            else:
                self._crm_subscribe(True)
        if self._writer is None:
            self._writer = gevent.spawn(self._write_events)
        if self.deliver_every and self._deliverer is None:
            self._deliverer = gevent.spawn(self._deliver_loop)
        if self.announce_every and self._announcer is None:
            self._announcer = gevent.spawn(self._announce_loop)

    def detach(self) -> None:
        """Stop the background workers (tests, shutdown)."""
        for worker in (self._writer, self._deliverer, self._announcer, self._crm_watcher):
            if worker is not None:
                worker.kill(block=False)
        self._writer = self._deliverer = self._announcer = self._crm_watcher = None

    def stop(self, timeout=10.0) -> None:
        """Write what is queued (hang-ups, channel events, rotation moves), then stop the workers.

        The service's shutdown (SIGTERM): a hang-up event already received is written, not dropped."""
        deadline = time.monotonic() + timeout
        while (not self.hangups.empty() or self._writing) and self._writer is not None and time.monotonic() < deadline:
            gevent.sleep(0.01)
        if not self.hangups.empty():
            log.warning("stopping with %d events unwritten (%s)", self.hangups.qsize(), RECOVERY)
        self.detach()
        self.store.close(max(0.0, deadline - time.monotonic()))

    _writing = False

    # --- parked calls -----------------------------------------------------------------------

    def on_park(self, event) -> None:
        """A parked channel: ours when the dialplan set fsctl_tenant; decide and run the plan."""
        headers = event.headers
        uuid = headers.get(cv.UNIQUE_ID, "")
        if not headers.get(cv.header(cv.FSCTL_TENANT)) or not uuid:
            self.stats.ignored += 1
            return
        if not _UUID_RE.match(uuid):
            # Every command names the channel on its first line: a Unique-ID with a blank or a
            # line break (set by an origination_uuid) cannot be addressed, and was kept in
            # `active` forever. The dialplan's watchdog takes such a call.
            self.stats.ignored += 1
            log.warning("call %r: a Unique-ID the Event Socket cannot address; left to the dialplan watchdog", uuid)
            return
        previous = self.active.get(uuid)
        if previous is not None and previous is not gevent.getcurrent():
            # A channel parks only in a hand-off extension (a failed bridge of a plan does not park
            # it again: one CHANNEL_PARK on the real switch). A second park is the channel sent on
            # (a transfer, REFER or *1 to a group): its old plan is over, the new park is decided
            # for where the call is now (FACTS.md, issue 11).
            self.stats.superseded += 1
            previous.kill(block=True, timeout=5)
            self.active.pop(uuid, None)
        self.active[uuid] = gevent.getcurrent()
        self.stats.calls += 1
        domain = headers.get(cv.header(cv.FSCTL_TENANT))
        try:
            # Take the call: cancel the dialplan's watchdog transfer (sched_transfer to the
            # fallback extension, in the task group named by the channel's uuid), with the API
            # at once rather than an application a media tick later (see the module docstring).
            # Its reply is not awaited before deciding and sending the plan: FreeSWITCH runs a
            # connection's commands in order, so the plan still comes after it.
            taken = self.esl.api_pipelined(f"sched_del {uuid}")
        except (EslError, ValueError) as exc:  # ValueError: refused by the command builder
            self.stats.failed += 1
            log.warning("call %s: could not take it (%s); the dialplan watchdog will", uuid, exc)
            self.active.pop(uuid, None)
            return
        try:
            decision = self.decide(headers)
            if self.on_decided is not None:
                self.on_decided(uuid, decision)
            self.run_plan(uuid, decision.plan)
            try:
                taken.wait()  # long since answered: the plan's replies came after it
            except EslCommandError as exc:  # (sched_del answers +OK even for a channel gone)
                self.stats.failed += 1
                log.warning("call %s: could not take it (%s); the caller is gone", uuid, exc)
        except EslError as exc:
            self.stats.failed += 1
            log.warning("call %s: Event Socket failed while running its plan: %s", uuid, exc)
        except Exception:  # unexpected: log it and let the dialplan resume the call in XML
            self.stats.failed += 1
            log.exception("call %s: unexpected error; resuming it in the dialplan", uuid)
            self._resume_in_dialplan(uuid, domain)
        except gevent.GreenletExit:
            # Every answered call ends here (its bridge lasts until the hang-up): not worth a line.
            log.debug("call %s hung up while its plan ran", uuid)
        finally:
            if self.active.get(uuid) is gevent.getcurrent():  # (a newer park may own the channel now)
                self.active.pop(uuid, None)
                self.gone.discard(uuid)

    def _resume_in_dialplan(self, uuid, domain) -> None:
        """Send a call we cannot decide to the tenant context's fallback extension (XML)."""
        try:
            self.esl.execute(uuid, "transfer", f"{cv.FALLBACK_EXTENSION} XML {domain}", wait=False)
        except EslError as exc:
            log.warning("call %s: could not resume it in the dialplan: %s", uuid, exc)

    def decide(self, headers):
        """The decision for a parked call; rotation persisted with compare-and-set (retried)."""
        facts = CallFacts.from_event(headers)
        now = self.clock()
        # One decision at a time per tenant: rotating groups hand out members in call order.
        with self.store.tenant_lock(facts.domain):
            for _attempt in range(self.max_rotation_tries):
                config, rotation = self.store.load(facts.domain)
                if config is None:
                    raise DecisionError(f"tenant {facts.domain!r} does not exist or is suspended")
                try:
                    decision = decide(facts, config, now, rotation)
                    self.stats.decided += 1
                except DecisionError as exc:
                    log.warning("call %s: %s; tenant fallback", facts.uuid, exc)
                    decision = decide_fallback(facts, config, now, str(exc), rotation)
                    self.stats.fallbacks += 1
                if not decision.rotation_update or not self.store.save_rotation(facts.domain, decision.rotation_update):
                    return decision
                # Another service process moved the rotation first: decide again on fresh state.
                self.stats.rotation_retries += 1
        return decision

    def run_plan(self, uuid, steps) -> None:
        """Send the plan's applications in order, following bridge outcomes (plan.drive).

        Consecutive `set`s become one `uuid_setvar_multi` (an API, done before the next
        application is even queued); instant applications are written without waiting for their
        reply; an application that lasts (bridge, playback, voicemail) is awaited, and every
        reply written before it has then come (replies come in order) and is checked.
        """
        runner = drive(steps)
        outcome = None
        last_cause = "NORMAL_CLEARING"
        sets = []  # consecutive `set`s, sent as one uuid_setvar_multi before the next other app
        written = []  # replies of commands written without waiting, checked at the next wait
        accepted = False  # FreeSWITCH took a command of the plan: the channel was there

        def flush():
            if sets:
                arg = setvar_multi(sets)
                if arg is not None:
                    written.append(self.esl.api_pipelined(f"uuid_setvar_multi {uuid} {arg}"))
                else:
                    merged = multiset(sets)
                    for app, value in [merged] if merged else [("set", a) for a in sets]:
                        written.append(self.esl.execute_pipelined(uuid, app, value))
                sets.clear()

        def settle():
            nonlocal accepted
            while written:
                written.pop(0).wait()
                accepted = True

        try:
            try:
                step = next(runner)
                while True:
                    if uuid in self.gone:
                        return
                    completion = None
                    for app, arg in step.to_apps():
                        if app == "set":
                            sets.append(arg)
                            continue
                        flush()
                        if app in INSTANT_APPS:
                            written.append(self.esl.execute_pipelined(uuid, app, arg))
                            continue
                        completion = self.esl.execute_event(uuid, app, arg)
                        accepted = True
                        settle()
                    outcome = None
                    if isinstance(step, Bridge):
                        outcome = self.bridge_outcome(uuid, completion)
                        if outcome is None:
                            return  # the channel is gone
                        if outcome not in PASSED_CAUSES:
                            last_cause = outcome
                    step = runner.send(outcome)
            except StopIteration:
                pass
            flush()
            settle()
        except EslCommandError as exc:
            # -ERR invalid session id / No such channel: the caller hung up; nothing left to do.
            if not accepted:  # before FreeSWITCH took anything of the plan: the call was not taken
                self.stats.failed += 1
                log.warning("call %s: could not take it (%s); the caller is gone", uuid, exc)
            else:
                log.info("call %s ended while its plan ran: %s", uuid, exc)
            return
        if outcome is None or outcome not in PASSED_CAUSES:
            if uuid not in self.gone and not getattr(step, "terminal", False):
                self.esl.execute(uuid, "hangup", last_cause)

    def bridge_outcome(self, uuid, completion=None):
        """SUCCESS or the cause of a failed bridge; None when the channel no longer exists.

        Read from the bridge's CHANNEL_EXECUTE_COMPLETE, which carries the channel's variables;
        `uuid_getvar` only when it does not (an Event Socket without verbose channel events).
        """
        if uuid in self.gone:
            return None
        value = None if completion is None else completion.get(cv.header(cv.ORIGINATE_DISPOSITION))
        if value is None:
            try:
                value = self.esl.api(f"uuid_getvar {uuid} {cv.ORIGINATE_DISPOSITION}")
            except EslCommandError:
                return None
        value = value.strip()
        return value if value and value != "_undef_" else "SUCCESS"

    # --- hang-ups ---------------------------------------------------------------------------

    def on_hangup(self, event) -> None:
        """Queue the hang-up for the call records; never block the event loop."""
        uuid = event.headers.get(cv.UNIQUE_ID, "")
        runner = self.active.get(uuid)
        if runner is not None:
            # The channel is gone: stop its plan even if an execution never completes.
            self.gone.add(uuid)
            if runner is not gevent.getcurrent():
                runner.kill(block=False)
        self.stats.hangups += 1
        self._enqueue("hangup", event)

    def on_channel_event(self, event) -> None:
        """Queue a ringing/answered channel event for the CRM hooks."""
        self.stats.channel_events += 1
        self._enqueue("channel", event)

    def _crm_subscribe(self, wanted: bool) -> None:
        if wanted == self._crm_subscribed:
            return
        for name in CRM_EVENTS:
            (self.esl.on if wanted else self.esl.off)(name, self.on_channel_event)
        self._crm_subscribed = wanted

    def _crm_loop(self) -> None:
        """Channel events for the CRM hooks, subscribed only while some tenant has a hook.

        Two to five of them per call (both legs ringing, answered), each ~150 headers that
        FreeSWITCH serialises and we read, for nothing when no tenant has a hook (the common
        case). A hook added is served from the next look, within `crm_every` seconds.
        """
        while True:
            try:
                self._crm_subscribe(bool(self.store.has_crm_hooks()))
            except Exception:  # the database is away: keep what we have, look again
                log.exception("could not look for CRM hooks; looking again in %.0fs", self.crm_every)
            gevent.sleep(self.crm_every)

    def _enqueue(self, kind, event) -> None:
        try:
            # The headers as parsed (read-only, each value decoded when first read): the writer
            # reads a few dozen of the ~150, so copying them all decoded was wasted work.
            self.hangups.put_nowait((kind, event.headers))
        except gevent.queue.Full:
            # FreeSWITCH's mod_xml_cdr files are the safety net: `fsctl cdr import` recovers them
            # (fsctl-cdr-import.timer, every 5 minutes).
            self.stats.hangups_dropped += 1
            log.error("event queue full: dropped %s of %s (%s)", kind, event.headers.get(cv.UNIQUE_ID, ""), RECOVERY)

    def _write_events(self, batch_size=500, linger=0.05) -> None:
        while True:
            batch = [self.hangups.get()]
            self._writing = True  # from the first event taken: stop() waits for the whole batch
            deadline = time.monotonic() + linger
            while len(batch) < batch_size:
                remaining = deadline - time.monotonic()
                if remaining <= 0:
                    break
                try:
                    batch.append(self.hangups.get(timeout=remaining))
                except gevent.queue.Empty:
                    break
            hangups = [h for kind, h in batch if kind == "hangup"]
            channel = [h for kind, h in batch if kind == "channel"]
            try:
                if channel:
                    self.store.record_channel_events(channel)
                if hangups:
                    self.store.record_hangups(hangups)
            except Exception:  # a failed batch is logged; the xml_cdr import recovers calls
                log.exception("could not record %d events (%s)", len(batch), RECOVERY)
            finally:
                self._writing = False

    def _announce_loop(self) -> None:
        """`fsctl_service_seen` = FreeSWITCH's strepoch, every `announce_every` seconds while connected."""
        command = f"expand global_setvar {cv.FSCTL_SERVICE_SEEN}=${{strepoch()}}"
        while True:
            try:
                self.esl.api(command)
            except Exception as exc:  # not connected (yet): try again soon
                log.debug("could not announce the service: %s", exc)
                gevent.sleep(min(0.5, self.announce_every))
                continue
            gevent.sleep(self.announce_every)

    def _deliver_loop(self) -> None:
        """Send due notifications and CRM events now and then (fsctl notify send does the same)."""
        while True:
            gevent.sleep(self.deliver_every)
            try:
                self.store.deliver()
            except Exception:
                log.exception("notification delivery failed; retried on the next round")
