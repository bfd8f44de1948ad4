"""Missed-call notifications (R-MISSED) and CRM call events (R-CRM), through an outbox.

- NotifyRule: a user's or a group's missed calls go by e-mail or webhook (JSON POST).
- CrmHook: every call's events (ringing, answered, finished with the recording link) go to a
  webhook, or to Bitrix24's telephony REST methods (telephony.externalcall.register and
  telephony.externalcall.finish) in `bitrix24` mode.
- Outbox: each delivery is one row with a unique key per (call, target), so ingesting the same
  call again never sends twice; `drain` delivers what is due and retries failures with
  exponential backoff (settings notify_backoff, notify_max_attempts), keeping failures.

By job: `rules` (who is notified), `outbox` (queueing and delivery), `transports` (SMTP, HTTP,
the e-mail, Bitrix24). This module gathers the names the rest of fsctl uses.
"""

from .outbox import (
    MAX_BACKOFF,
    DrainReport,
    crm_event,
    drain,
    enqueue_channel_event,
    enqueue_for_calls,
    list_outbox,
    outbox_dict,
)
from .rules import (
    CHANNELS,
    CRM_MODES,
    SCOPES,
    add_hook,
    add_rule,
    check_url,
    hook_dict,
    list_hooks,
    list_rules,
    remove_hook,
    remove_rule,
    rule_dict,
)
from .transports import BITRIX_STATUS, DeliveryError, Transport, missed_call_email, recording_url

__all__ = [
    "BITRIX_STATUS",
    "CHANNELS",
    "CRM_MODES",
    "MAX_BACKOFF",
    "SCOPES",
    "DeliveryError",
    "DrainReport",
    "Transport",
    "add_hook",
    "add_rule",
    "check_url",
    "crm_event",
    "drain",
    "enqueue_channel_event",
    "enqueue_for_calls",
    "hook_dict",
    "list_hooks",
    "list_outbox",
    "list_rules",
    "missed_call_email",
    "outbox_dict",
    "recording_url",
    "remove_hook",
    "remove_rule",
    "rule_dict",
]
