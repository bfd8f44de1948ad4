"""Every channel-variable and event-header name the call logic reads or sets (one place).

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

# Prefix FreeSWITCH puts before channel variables in event headers.
VARIABLE_PREFIX = "variable_"

# --- channel variables read ---
DOMAIN_NAME = "domain_name"
USER_CONTEXT = "user_context"
ORIGINATE_DISPOSITION = "originate_disposition"  # cause of a failed bridge, SUCCESS otherwise
LAST_BRIDGE_HANGUP_CAUSE = "last_bridge_hangup_cause"
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
RINGBACK = "ringback"  # what a pre-answered caller hears while legs ring
RECORD_STEREO = "RECORD_STEREO"
FSCTL_RECORDING_PATH = "fsctl_recording_path"  # read back from CHANNEL_HANGUP by the catalogue
FSCTL_ROUTE = "fsctl_route"  # the destination the decision started from (for CDR / trace)
FSCTL_TARGET = "fsctl_target"  # the group or queue that rang in the end (per-group/queue statistics)


def header(variable: str) -> str:
    """The event header that carries a channel variable (`variable_<name>`)."""
    return VARIABLE_PREFIX + variable

# --- extensions of the rendered tenant context the call logic relies on ---
# The watchdog's target: resumes a handed-over call in XML (fsctl_resume) or the tenant fallback.
FALLBACK_EXTENSION = "fsctl-fallback"
