"""First contact: registration and a plain internal call on the real switch."""


def test_internal_call(live_debug):
    live = live_debug
    t = live.tenant("smoke")
    t.user("101")
    t.user("102")
    live.apply()
    a = t.phone("101")
    b = t.phone("102")
    call = a.call("102")
    invite = b.wait_invite(timeout=10)
    assert invite.caller == "101"
    call.wait_answered(timeout=10)
    call.bye()
    b.incoming(invite).wait_ended(timeout=10)
    record = t.wait_call(lambda c: c["callee"] == "102")
    assert record["status"] == "answered" and record["answered_by"] == "102", record
