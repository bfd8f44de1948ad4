"""Assembling the running service: the store and its sinks, the health endpoint."""

from __future__ import annotations

import json
import logging

from .service import RECOVERY, CallService
from .store import DatabaseStore

log = logging.getLogger("fs_scripts.runtime")
ANNOUNCE_EVERY = 5.0  # seconds between the heartbeats `fsctl check` reads (fsctl_service_seen)


def hangup_sinks(settings, node=None):
    """What hang-up events feed: call records (fsctl.services.cdr) and the recording catalogue.

    `node`: the node this service serves (`fs-scripts run --node`): its recordings are catalogued
    as on that node's disk (`settings.recordings_dir` is the node's folder then), its calls and
    legs as having run there.

    Each sink writes under SQLite's write lock taken when it begins (transaction(write=True)): they
    read before they write, and a deferred transaction fails at once with "database is locked" when
    fsctl committed in between (seen on the live switch while tests provisioned tenants).
    """
    from fsctl.db import transaction
    from fsctl.services import cdr, notify, recordings

    def recording_catalogue(batch):
        with transaction(write=True):
            recordings.catalogue_from_hangups(batch, settings.recordings_dir, node=node)

    def call_records(batch):
        # Missed-call notifications and CRM "finished" events queued with the records. A call
        # that cannot be recorded is only that call (its mod_xml_cdr files stay for the import).
        with transaction(write=True):
            report = cdr.ingest_hangups(batch, notifier=notify.enqueue_for_calls, node=node)
        for index, reason, _ in report.errors:
            headers = batch[index]
            log.warning(
                "call %s (leg %s) not recorded: %s; %s",
                headers.get("variable_call_uuid", "?"),
                headers.get("Unique-ID", "?"),
                reason,
                RECOVERY,
            )

    # Recordings first: a call record links to its recording by call UUID when it is written.
    return [recording_catalogue, call_records]


def channel_sinks():
    """What ringing/answered events feed: the CRM hooks' outbox.

    One query per batch finds the tenants that have a CRM hook; the events of the others are
    dropped before `enqueue_channel_event`, which costs two queries per event (profiled under
    sipp load: 15 % of the service's CPU, for tenants that mostly have no hook).
    """
    from fsctl.db import transaction
    from fsctl.model import CrmHook, Tenant
    from fsctl.services import notify

    def crm(batch):
        with transaction(write=True):
            hooked = {domain for (domain,) in CrmHook.select(Tenant.domain).join(Tenant).distinct().tuples()}
            if not hooked:
                return
            for headers in batch:
                found = notify.crm_event(headers)
                if found is not None and found[1] in hooked:
                    notify.enqueue_channel_event(headers)

    return [crm]


def deliverer(settings):
    """Drain the notification outbox once (what `fsctl notify send` does)."""
    from fsctl.services import notify

    transport = notify.Transport.from_settings(settings)  # (was Transport(settings): the settings as SMTP host)

    def deliver():
        return notify.drain(transport, settings)

    return deliver


def build_service(esl, settings, clock=None, node=None):
    """A CallService on the fsctl database of `settings` (serving the node named `node`, if any)."""
    store = DatabaseStore(
        recordings_root=settings.recordings_dir,
        hangup_sinks=hangup_sinks(settings, node),
        channel_sinks=channel_sinks(),
        deliver=deliverer(settings),
    )
    kwargs = {"clock": clock} if clock else {}
    return CallService(esl, store, announce_every=ANNOUNCE_EVERY, **kwargs)


def health(esl, service):
    """(healthy, details) for monitoring."""
    ok = esl.healthy()
    stats = service.stats
    return ok, {
        "freeswitch": "connected" if ok else "unreachable",
        "calls": stats.calls,
        "decided": stats.decided,
        "fallbacks": stats.fallbacks,
        "failed": stats.failed,
        "active": len(service.active),
        "hangups": stats.hangups,
        "hangups_dropped": stats.hangups_dropped,
        "hangup_queue": service.hangups.qsize(),
    }


def serve_health(esl, service, port, host="127.0.0.1"):
    """Serve GET /health on loopback (200 healthy, 503 not) in a greenlet; returns the server."""
    from gevent.pywsgi import WSGIServer

    def app(environ, start_response):
        if environ.get("PATH_INFO") != "/health":
            start_response("404 Not Found", [("Content-Type", "text/plain")])
            return [b"not found\n"]
        ok, details = health(esl, service)
        start_response("200 OK" if ok else "503 Service Unavailable", [("Content-Type", "application/json")])
        return [json.dumps(details).encode() + b"\n"]

    server = WSGIServer((host, port), app, log=None)
    server.start()
    log.info("health endpoint on http://%s:%d/health", host, server.server_port)
    return server
