"""The call-logic service down: calls go on in pure XML (the watchdog), and nothing is lost.

README "Where each feature runs": with `fs-scripts run` stopped, nothing takes a parked call;
after `handoff_watchdog` seconds the scheduled transfer resumes it in XML: a group rings its
members, the blacklist still refuses, and the calls reach the call log through the
`mod_xml_cdr` import (the systemd timer's `fsctl cdr import`).
"""

import json

CALLER = "+37069990003"
BLOCKED = "+37069990666"


def test_calls_go_on_in_xml_while_the_service_is_stopped(live_debug):
    live = live_debug
    t = live.tenant("down")
    for n in ("102", "103"):
        t.user(n)
    t.fsctl(
        "group", "add", "200", "--name", "Sales", "--strategy", "simultaneous", "--member", "102", "--member", "103"
    )
    t.fsctl("blacklist", "add", BLOCKED)
    did = live.did()
    t.fsctl("did", "add", did, "--to", "group:200")
    live.apply()
    p102, p103 = t.phone("102", answer_after=0.5), t.phone("103", policy="ring")
    live.stop_service()
    assert live.service.returncode == 0, live.service_log()  # SIGTERM: a clean stop
    assert live.service_log().rstrip().endswith("INFO fs_scripts: stopped")
    try:
        call = live.inbound(did, CALLER)
        uuid = live.uuid_of(call)
        # Nobody takes the park: after the watchdog the group rings in XML.
        assert p102.wait_invite(30).caller == CALLER
        assert p103.wait_invite(15).caller == CALLER
        call.wait_answered(15)
        assert live.in_fallback(uuid)
        call.bye()
        p102.incoming(p102.invites[0]).wait_ended(10)

        # The blacklist holds without the service: the watchdog's first stop refuses the caller.
        blocked = live.inbound(did, BLOCKED)
        blocked.wait_ended(30)
        assert blocked.code == 603, blocked.code
        assert len(p102.invites) == 1 and len(p103.invites) == 1  # nobody rang for it
    finally:
        live.start_service()

    # Nothing is lost: the service never saw these calls; the mod_xml_cdr import brings them in.
    out = live.fsctl("cdr", "import", str(live.fs.dir / "xml_cdr"), "--json").stdout
    assert json.loads(out)["failed"] == [], out
    answered = t.wait_call(lambda c: c["caller"] == CALLER, timeout=5)
    assert answered["status"] == "answered" and answered["answered_by"] == "102", answered
    refused = t.wait_call(lambda c: c["caller"] == BLOCKED, timeout=5)
    assert refused["status"] == "refused" and refused["hangup_cause"] == "CALL_REJECTED", refused
