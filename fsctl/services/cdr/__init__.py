"""Call records (R-STAT, R-MISSED): one CallRecord per call, from FreeSWITCH's channels.

FreeSWITCH reports every *channel* (leg) separately: a CHANNEL_HANGUP_COMPLETE event, or a
mod_xml_cdr file, per leg. A call is the caller's leg (the "A-leg") plus every leg the PBX
rang for it (group members, queue agents, transfer targets, the gateway of an outgoing call).
This package

- reads a leg's headers into a `Channel` (fsctl.freeswitch.channel, pure),
- classifies a call from its facts with one pure function, `classify` (`classify`),
- merges legs into CallRecord / CallLeg / CallParty rows, idempotently (unique call UUID; legs
  keyed by their own UUID), in batches (`channels` merges, `ingest` writes),
- imports mod_xml_cdr files (`files.import_xml_cdr_dir`); FACTS.md: mod_cdr_csv does not escape
  its fields, so the XML files are the safe format to read back after an outage. The
  fsctl-cdr-import timer runs it every 5 minutes and moves what it imported to an archive
  (`move_file`, after the commit), so a call the service missed is never lost.

Here the entry points are wired to the notifier (fsctl.services.notify.enqueue_for_calls) unless
a caller passes its own: `ingest` and `files` take it as an argument and never import notify.
"""

from __future__ import annotations

from typing import Callable, Iterable

from ...freeswitch.channel import Channel, parse_channel
from ...model import call_dict, iso_utc
from . import files as _files, ingest as _ingest
from .channels import CallState, apply_channel, finish_state, new_state
from .classify import DIRECTIONS, LEG_RESULTS, STATUSES, CallRecordFacts, LegFacts, Outcome, classify, leg_result
from .files import ImportReport, move_file, purge_archive, xml_cdr_headers
from .ingest import IngestReport


def _notifier(notifier: Callable | None) -> Callable:
    if notifier is not None:
        return notifier
    from .. import notify  # its mail and web transports are only loaded by what ingests calls

    return notify.enqueue_for_calls


def ingest_hangup(headers: dict, notifier: Callable | None = None) -> IngestReport:
    """Ingest one CHANNEL_HANGUP_COMPLETE event (ingest.ingest_hangup), notifications queued by default."""
    return _ingest.ingest_hangup(headers, _notifier(notifier))


def ingest_hangups(events: Iterable[dict], notifier: Callable | None = None, node: str | None = None) -> IngestReport:
    """Ingest hang-up events in one transaction (ingest.ingest_hangups), notifications queued by default."""
    return _ingest.ingest_hangups(events, _notifier(notifier), node=node)


def ingest_batch(events: Iterable[dict]) -> IngestReport:
    """A batch of hang-up events with the default notifier (what fs-scripts feeds)."""
    return ingest_hangups(events)


def import_xml_cdr_dir(directory, batch: int = 500, notifier: Callable | None = None, **options) -> ImportReport:
    """Import a folder of mod_xml_cdr files (files.import_xml_cdr_dir), notifications queued by default."""
    return _files.import_xml_cdr_dir(directory, batch, _notifier(notifier), **options)


__all__ = [
    "DIRECTIONS",
    "LEG_RESULTS",
    "STATUSES",
    "CallRecordFacts",
    "LegFacts",
    "Outcome",
    "classify",
    "leg_result",
    "Channel",
    "parse_channel",
    "CallState",
    "new_state",
    "apply_channel",
    "finish_state",
    "IngestReport",
    "ingest_hangup",
    "ingest_hangups",
    "ingest_batch",
    "xml_cdr_headers",
    "ImportReport",
    "import_xml_cdr_dir",
    "move_file",
    "purge_archive",
    "call_dict",
    "iso_utc",
]
