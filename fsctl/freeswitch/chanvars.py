"""Every channel-variable and event-header name fsctl reads or sets (one place): the call logic,
the rendered dialplan and directory, the call records and the recording catalogue.

Event headers are as FreeSWITCH sends them in plain events (values URL-decoded by the
parser); channel variables appear in events as `variable_<name>` (see
tests/data/esl-captures/esl_events_plain_call.txt, CHANNEL_PARK).
"""

# --- event headers read from CHANNEL_PARK / CHANNEL_HANGUP / CHANNEL_EXECUTE_COMPLETE ---
EVENT_NAME = "Event-Name"
UNIQUE_ID = "Unique-ID"
CALLER_ID_NUMBER = "Caller-Caller-ID-Number"
CALLER_ID_NAME = "Caller-Caller-ID-Name"
DESTINATION_NUMBER = "Caller-Destination-Number"
CALLER_CONTEXT = "Caller-Context"
CALL_DIRECTION = "Call-Direction"
HANGUP_CAUSE = "Hangup-Cause"
APPLICATION = "Application"
APPLICATION_UUID = "Application-UUID"
APPLICATION_RESPONSE = "Application-Response"
# ... and by the call records / CRM events from CHANNEL_HANGUP_COMPLETE, CHANNEL_PROGRESS, CHANNEL_ANSWER
CHANNEL_NAME = "Channel-Name"
CALLER_RDNIS = "Caller-RDNIS"
CALLEE_ID_NUMBER = "Caller-Callee-ID-Number"
OTHER_LEG_CONTEXT = "Other-Leg-Context"
EVENT_DATE_TIMESTAMP = "Event-Date-Timestamp"  # microseconds since 1970

# Prefix FreeSWITCH puts before channel variables in event headers.
VARIABLE_PREFIX = "variable_"

# --- channel variables read ---
DOMAIN_NAME = "domain_name"
USER_CONTEXT = "user_context"
ORIGINATE_DISPOSITION = "originate_disposition"  # cause of a failed bridge, SUCCESS otherwise
LAST_BRIDGE_HANGUP_CAUSE = "last_bridge_hangup_cause"
# Read by the call records (one leg's facts at hang-up; mod_xml_cdr files carry the same names).
UUID = "uuid"
HANGUP_CAUSE_VAR = "hangup_cause"  # the variable; HANGUP_CAUSE is the event header
CHANNEL_NAME_VAR = "channel_name"  # the variable; CHANNEL_NAME is the event header
START_EPOCH = "start_epoch"
ANSWER_EPOCH = "answer_epoch"
END_EPOCH = "end_epoch"
BRIDGE_EPOCH = "bridge_epoch"
ORIGINATING_LEG_UUID = "originating_leg_uuid"
ORIGINATOR = "originator"
DIALED_DOMAIN = "dialed_domain"
DIALED_USER = "dialed_user"
SIP_GATEWAY_NAME = "sip_gateway_name"
SIP_GATEWAY = "sip_gateway"
SIP_HANGUP_DISPOSITION = "sip_hangup_disposition"
LAST_APP = "last_app"
LAST_ARG = "last_arg"
CURRENT_APPLICATION = "current_application"
CURRENT_APPLICATION_DATA = "current_application_data"
LAST_BRIDGE_TO = "last_bridge_to"
BRIDGE_UUID = "bridge_uuid"
BRIDGE_CHANNEL = "bridge_channel"
CC_MEMBER_SESSION_UUID = "cc_member_session_uuid"  # mod_callcenter: the caller's leg an agent leg serves
CC_AGENT = "cc_agent"
CC_QUEUE = "cc_queue"
# Set by fsctl's rendered dialplan before parking the call for a decision.
FSCTL_TENANT = "fsctl_tenant"  # the tenant domain (public-number calls have no domain_name)
FSCTL_OUTBOUND = "fsctl_outbound"  # "true": an outside number, toll-checked by the dialplan
FSCTL_DID = "fsctl_did"  # the public number (E.164) the call came in on; absent for internal calls

# --- channel variables set by plans ---
CONTINUE_ON_FAIL = "continue_on_fail"
HANGUP_AFTER_BRIDGE = "hangup_after_bridge"
LEG_TIMEOUT = "leg_timeout"  # per-leg, in [] of a dial string
EFFECTIVE_CALLER_ID_NAME = "effective_caller_id_name"
EXECUTE_ON_ANSWER = "execute_on_answer"  # per-leg: app run on the leg when it answers
EXECUTE_ON_PRE_BRIDGE = "execute_on_pre_bridge"  # app run on the channel when a bridge of it starts
RINGBACK = "ringback"  # what a pre-answered caller hears while legs ring
RECORD_STEREO = "RECORD_STEREO"
FSCTL_RECORDING_PATH = "fsctl_recording_path"  # read back from CHANNEL_HANGUP by the catalogue
FSCTL_ROUTE = "fsctl_route"  # the destination the decision started from (for CDR / trace)
FSCTL_TARGET = "fsctl_target"  # the group or queue that rang in the end (per-group/queue statistics)
RECORD_SECONDS = "record_seconds"  # read back from CHANNEL_HANGUP: the recording's length

# --- channel variables of the rendered XML (dialplan hand-off, directory) ---
FSCTL_WATCHDOG = "fsctl_watchdog"  # seconds until the watchdog transfer to fsctl-fallback
FSCTL_IN_FALLBACK = "fsctl_in_fallback"  # "true" once the call runs the tenant fallback in XML
FSCTL_RESUME = "fsctl_resume"  # the extension a handed-over call resumes at in fallback mode
FSCTL_TOLL = "fsctl_toll"  # directory: the user's toll class
FSCTL_RECORD = "fsctl_record"  # directory: "true" when the user's calls are recorded
FSCTL_TENANT_NAME = "fsctl_tenant_name"  # directory: the tenant's name (display only)
FSCTL_DID_NAME = "fsctl_did_name"  # public context: the DID's name (display only)
FSCTL_TIMERULE_HIT = "fsctl_timerule_hit"  # set inline while hunting a timerule-* extension
OUTBOUND_CALLER_ID = "outbound_caller_id_number"  # directory: caller ID for external calls
FSCTL_OUTBOUND_NAME = "fsctl_outbound_name"  # directory: the caller name outside calls show (issue 11)
CALLER_ID_NAME_VAR = "caller_id_name"  # the channel's caller name (a public number's caller keeps it)
# Where a SIP REFER (a phone's transfer button) is resolved: in the context of the leg being
# transferred, unless that leg has this variable (FACTS.md "Calls through parked channels").
FORCE_TRANSFER_CONTEXT = "force_transfer_context"
ORIGINATION_CALLER_ID_NAME = "origination_caller_id_name"  # per-leg: the caller name the new leg shows
EFFECTIVE_CALLER_ID_NUMBER = "effective_caller_id_number"


def header(variable: str) -> str:
    """The event header that carries a channel variable (`variable_<name>`)."""
    return VARIABLE_PREFIX + variable


# A global variable fs-scripts stamps with FreeSWITCH's own clock (strepoch) every few seconds while it
# is connected; `fsctl check` reads it to tell whether the call-logic service is there.
FSCTL_SERVICE_SEEN = "fsctl_service_seen"

# --- contexts and extensions of the rendered dialplan the call logic relies on ---
# The context of every public number: a park there is a call arriving on a DID; a park anywhere
# else (a tenant's context, after a menu, a time rule, a fallback or a transfer) is for the
# number the channel was transferred to (FACTS.md: the second CHANNEL_PARK keeps fsctl_did).
PUBLIC_CONTEXT = "fsctl-public"
# The watchdog's target: resumes a handed-over call in XML (fsctl_resume) or the tenant fallback.
FALLBACK_EXTENSION = "fsctl-fallback"
