"""Tests of the Event Socket wrapper against the fake FreeSWITCH (FACTS.md "Event Socket" and
"The greenswitch client": each fact is a test here)."""

import _thread
import logging
import socket
import threading
import time

import gevent
import gevent.event
import pytest

from fsctl.freeswitch.esl import (
    EslAuthError,
    EslCommandError,
    EslError,
    EslThreadError,
    EslTimeoutError,
    EslUnreachableError,
    EventSocket,
)
from tests.fakes import captures

PLAYBACK = "/srv/sounds/testdata/tone440_1s.wav"

pytestmark = pytest.mark.usefixtures("hang_guard")


def _free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class Ticker:
    """A greenlet that counts while the hub is free; a frozen hub stops it."""

    def __init__(self):
        self.ticks = 0
        self.greenlet = gevent.spawn(self._run)

    def _run(self):
        while True:
            self.ticks += 1
            gevent.sleep(0.005)

    def stop(self):
        self.greenlet.kill()


@pytest.fixture
def watchdog():
    """Interrupt the test run instead of hanging forever if the hub freezes (the greenswitch bug)."""
    timer = threading.Timer(5, _thread.interrupt_main)
    timer.daemon = True
    timer.start()
    yield
    timer.cancel()


# ---------------------------------------------------------------- connect and auth


def test_connect_authenticates_and_subscribes(fake_fs, esl):
    assert fake_fs.received[:2] == [
        "auth ClueCon",
        "event plain CHANNEL_PARK CHANNEL_EXECUTE_COMPLETE CHANNEL_HANGUP_COMPLETE BACKGROUND_JOB HEARTBEAT",
    ]
    assert esl.healthy()
    esl.close()
    assert not esl.healthy()


def test_wrong_password_is_an_auth_error(fake_fs, make_esl):
    # The fake answers with esl_auth_fail.txt: -ERR invalid, a disconnect notice, close.
    client = make_esl(password="WrongPassword")
    with pytest.raises(EslAuthError):
        client.connect()
    assert fake_fs.received == ["auth WrongPassword"]
    assert not client.healthy()
    assert captures.load("esl_auth_fail.txt").recvs[2].headers["Reply-Text"] == "-ERR invalid"


def test_nothing_listening_is_unreachable_quickly(make_esl):
    client = EventSocket("127.0.0.1", _free_port(), timeout=0.3)
    start = time.monotonic()
    with pytest.raises(EslUnreachableError):
        client.connect()
    assert time.monotonic() - start < 1


def test_no_greeting_is_unreachable_not_a_hang():
    server = socket.socket()
    server.bind(("127.0.0.1", 0))
    server.listen(1)  # accepts (kernel backlog) but never speaks
    try:
        client = EventSocket("127.0.0.1", server.getsockname()[1], timeout=0.2)
        start = time.monotonic()
        with pytest.raises(EslUnreachableError, match="greeting"):
            client.connect()
        assert time.monotonic() - start < 1
    finally:
        server.close()


def test_commands_without_connection_fail_at_once(make_esl):
    client = make_esl()
    with pytest.raises(EslUnreachableError):
        client.api("status")


# ---------------------------------------------------------------- api


def test_api_returns_the_body_verbatim(fake_fs, esl):
    status = captures.load("esl_api_replies_idle.txt").recvs[2].body.decode()
    assert esl.api("status") == status
    assert esl.api("show channels as json") == '{"row_count": 0}\n'
    assert esl.api("reloadxml") == "+OK [Success]\n"


@pytest.mark.parametrize("case", ["G0", "M1", "M2", "M3", "M5", "M6"])
def test_reloadxml_recorded_replies_are_returned_for_the_caller_to_judge(fake_fs, esl, case):
    # FACTS.md: reloadxml errors also start with +OK; the wrapper must not hide them.
    fake_fs.set_reloadxml(case)
    expected = fake_fs.reloadxml_cases[case].split(b"\n\n", 1)[1].decode()
    assert esl.api("reloadxml") == expected


def test_err_reply_is_a_command_error_with_the_text(fake_fs, esl):
    with pytest.raises(EslCommandError) as info:
        esl.api("uuid_kill 00000000-0000-0000-0000-000000000000")
    assert info.value.reply == "-ERR No such channel!\n"
    with pytest.raises(EslCommandError) as info:
        esl.api("this_command_does_not_exist foo bar")
    assert info.value.reply == "-ERR this_command_does_not_exist Command not found!\n"


def test_header_injection_is_refused_before_sending(fake_fs, esl):
    before = list(fake_fs.received)
    with pytest.raises(ValueError):
        esl.api("status\n\nexit")
    with pytest.raises(ValueError):
        esl.execute("u1", "playback", "x.wav\ncall-command: hangup")
    assert fake_fs.received == before
    assert esl.api("version").startswith("FreeSWITCH Version")


def test_replies_are_matched_to_commands_in_order(fake_fs, esl):
    for i in range(30):
        fake_fs.set_api_reply(f"echo {i}", f"reply {i}\n")
    jobs = [gevent.spawn(esl.api, f"echo {i}") for i in range(30)]
    gevent.joinall(jobs, timeout=3, raise_error=True)
    assert [job.value for job in jobs] == [f"reply {i}\n" for i in range(30)]


def test_a_command_leaves_at_once_while_another_awaits_its_reply(fake_fs, esl):
    # Nagle's algorithm would hold the second command until FreeSWITCH acknowledged the first
    # (its reply, or the 40 ms delayed ACK): one call's command waiting on another call's reply.
    fake_fs.fault("silent", on="api status")
    for _ in range(3):
        start = len(fake_fs.received)
        waiting = gevent.spawn(esl.api, "status", timeout=0.5)
        fake_fs.wait_for_command("api status", start=start)
        sent = time.monotonic()
        second = gevent.spawn(esl.api, "version", timeout=0.5)
        fake_fs.wait_for_command("api version", start=start)
        assert time.monotonic() - sent < 0.03
        gevent.killall([waiting, second])


def test_events_before_the_reply_are_not_taken_for_it(fake_fs, make_esl):
    # FACTS.md: API and PRIVATE_COMMAND events may arrive before the command's reply.
    client = make_esl(events=("ALL",))
    client.connect()
    seen = []
    client.on("ALL", lambda event: seen.append(event.name))
    fake_fs.fault("events_first", on="api", count=None)
    assert client.api("version").startswith("FreeSWITCH Version 1.11.3-dev")
    assert client.api("global_getvar local_ip_v4") == "127.0.0.1"
    fake_fs.wait_for(lambda: seen.count("PRIVATE_COMMAND") == 2)
    assert seen.count("API") == 2


# ---------------------------------------------------------------- timeouts and drops


def test_silence_is_a_timeout_not_a_hang(fake_fs, esl):
    fake_fs.fault("silent")
    start = time.monotonic()
    with pytest.raises(EslTimeoutError):
        esl.api("status", timeout=0.2)
    assert 0.15 < time.monotonic() - start < 0.6
    assert not esl.healthy()  # a reply is overdue


def test_late_reply_keeps_later_replies_aligned(fake_fs, esl):
    fake_fs.fault("delay", on="api status", seconds=0.3)
    with pytest.raises(EslTimeoutError):
        esl.api("status", timeout=0.1)
    assert esl.api("version", timeout=1).startswith("FreeSWITCH Version")


@pytest.mark.parametrize("reconnect", [False, True])
def test_dropped_socket_mid_command_is_unreachable(fake_fs, make_esl, reconnect):
    client = make_esl(reconnect=reconnect)
    client.connect()
    fake_fs.fault("drop", on="api reloadxml")
    start = time.monotonic()
    with pytest.raises(EslUnreachableError):
        client.api("reloadxml", timeout=2)
    assert time.monotonic() - start < 0.5


def test_pending_commands_all_fail_when_the_connection_drops(fake_fs, esl):
    fake_fs.fault("silent")
    jobs = [gevent.spawn(esl.api, "status", timeout=5) for _ in range(3)]
    fake_fs.wait_for(lambda: fake_fs.received.count("api status") == 3)
    fake_fs.drop_all()
    gevent.joinall(jobs, timeout=1)
    assert all(job.ready() for job in jobs)
    assert all(isinstance(job.exception, EslUnreachableError) for job in jobs)


def test_truncated_body_does_not_freeze_the_hub(fake_fs, esl, watchdog):
    # FACTS.md: greenswitch spins on a truncated body and freezes the hub.
    fake_fs.fault("truncate", on="api status")
    ticker = Ticker()
    try:
        start = time.monotonic()
        with pytest.raises(EslTimeoutError):
            esl.api("status", timeout=0.2)
        assert time.monotonic() - start < 0.6
        assert ticker.ticks >= 10  # the other greenlet kept running meanwhile
    finally:
        ticker.stop()


def test_slow_byte_by_byte_delivery(fake_fs, esl):
    fake_fs.slow(0)
    assert esl.api("status", timeout=2) == fake_fs.api_replies["status"].split(b"\n\n", 1)[1].decode()
    uuid = fake_fs.park_call()
    assert esl.execute(uuid, "playback", PLAYBACK, timeout=3) == "FILE PLAYED"


def test_malformed_length_drops_the_connection(fake_fs, make_esl):
    client = make_esl(reconnect=True)
    client.connect()
    fake_fs.fault("malformed", on="api status")
    with pytest.raises(EslUnreachableError):
        client.api("status", timeout=1)
    fake_fs.wait_for(lambda: client.connections == 2)  # and comes back
    assert client.api("version").startswith("FreeSWITCH")


def test_disconnect_notice_is_handled_as_a_close(fake_fs, make_esl):
    client = make_esl(reconnect=False)
    client.connect()
    fake_fs.fault("silent")
    job = gevent.spawn(client.api, "status", timeout=5)
    fake_fs.wait_for_command("api status")
    fake_fs.send_disconnect_notice(close=False)  # the socket itself stays open
    job.join(timeout=1)
    assert isinstance(job.exception, EslUnreachableError)
    assert "disconnect notice" in str(job.exception)
    assert not client.healthy()


def test_linger_notice_is_not_a_close(fake_fs, esl):
    linger = next(
        r.data for r in captures.load("esl_outbound_socket.txt").recvs if b"Content-Disposition: linger" in r.data
    )
    fake_fs.send_raw(linger)
    assert esl.api("version").startswith("FreeSWITCH")
    assert esl.connections == 1 and esl.healthy()


def test_rude_rejection_is_unreachable(fake_fs, make_esl):
    client = make_esl(reconnect=False)
    client.connect()
    fake_fs.fault("silent")
    job = gevent.spawn(client.api, "status", timeout=5)
    fake_fs.wait_for_command("api status")
    fake_fs.send_raw(b"Content-Type: text/rude-rejection\nContent-Length: 35\n\nAccess Denied, go away.\n1234567890\n")
    job.join(timeout=1)
    assert isinstance(job.exception, EslUnreachableError)


# ---------------------------------------------------------------- bgapi


def test_commands_need_their_events_whatever_the_caller_subscribes(fake_fs, make_esl):
    # FACTS.md: BACKGROUND_JOB only arrives when subscribed; same for the execute completions.
    client = make_esl(events=("CHANNEL_PARK",))
    client.connect()
    assert fake_fs.received[1] == "event plain CHANNEL_PARK BACKGROUND_JOB CHANNEL_EXECUTE_COMPLETE HEARTBEAT"
    assert client.bgapi("version").startswith("FreeSWITCH Version")
    assert client.execute(fake_fs.park_call(), "answer") == "_none_"


def test_bgapi_returns_the_background_job_body(fake_fs, esl):
    assert esl.bgapi("show channels as json") == '{"row_count": 0}\n'
    command = fake_fs.wait_for_command("bgapi show channels as json")
    assert "\nJob-UUID: " in command  # our own Job-UUID


def test_bgapi_is_matched_by_job_uuid_not_by_order(fake_fs, esl):
    fake_fs.set_api_reply("first", "one\n")
    fake_fs.set_api_reply("second", "two\n")
    fake_fs.hold_jobs = True
    a = gevent.spawn(esl.bgapi, "first", timeout=2)
    b = gevent.spawn(esl.bgapi, "second", timeout=2)
    fake_fs.wait_for(lambda: len(fake_fs._held_jobs) == 2)
    fake_fs.inject_event({"Event-Name": "BACKGROUND_JOB", "Job-UUID": "someone-else", "Job-Command": "x"}, "three\n")
    fake_fs.release_jobs(reverse=True)
    gevent.joinall([a, b], timeout=2, raise_error=True)
    assert (a.value, b.value) == ("one\n", "two\n")


def test_bgapi_error_result_and_timeout(fake_fs, esl):
    with pytest.raises(EslCommandError) as info:
        esl.bgapi("this_command_does_not_exist")
    assert info.value.reply == "-ERR this_command_does_not_exist Command not found!\n"
    fake_fs.hold_jobs = True
    with pytest.raises(EslTimeoutError):
        esl.bgapi("status", timeout=0.2)
    assert not esl._jobs  # nothing left behind


# ---------------------------------------------------------------- execute


def test_execute_returns_application_response(fake_fs, esl):
    uuid = fake_fs.park_call()
    assert esl.execute(uuid, "playback", PLAYBACK) == "FILE PLAYED"
    fake_fs.execute_results["playback"] = "FILE NOT FOUND"
    assert esl.execute(uuid, "playback", "/nonexistent/file.wav") == "FILE NOT FOUND"
    (sent,) = [c for c in fake_fs.received if c.startswith("sendmsg") and "nonexistent" in c]
    assert "\nevent-lock: true\n" in sent and "\nEvent-UUID: " in sent


def test_execute_is_matched_by_application_uuid_not_app_name(fake_fs, esl):
    uuid = fake_fs.park_call()
    fake_fs.execute_delay = 0.1
    job = gevent.spawn(esl.execute, uuid, "playback", PLAYBACK, timeout=2)
    fake_fs.wait_for(lambda: fake_fs.executions)
    # A completion of the same app on the same channel, but another execution.
    fake_fs.inject_event(
        {
            "Event-Name": "CHANNEL_EXECUTE_COMPLETE",
            "Unique-ID": uuid,
            "Application": "playback",
            "Application-Response": "FILE NOT FOUND",
            "Application-UUID": "not-ours",
        }
    )
    job.join(timeout=2)
    assert job.value == "FILE PLAYED"


def test_only_events_someone_takes_are_parsed(fake_fs, esl):
    uuid = fake_fs.park_call()  # CHANNEL_PARK, subscribed by default, has no handler here
    esl.execute(uuid, "set", "a=b", wait=False)  # its completion concerns nobody
    fake_fs.send_heartbeat()
    fake_fs.wait_for(lambda: esl.unparsed == 3)
    assert esl.execute(uuid, "playback", PLAYBACK) == "FILE PLAYED"  # awaited: parsed
    seen = []
    esl.on("CHANNEL_EXECUTE_COMPLETE", lambda event: seen.append(event.get("Application")))
    esl.execute(uuid, "set", "c=d", wait=False)  # a handler takes it: parsed
    fake_fs.wait_for(lambda: seen == ["set"])
    assert esl.unparsed == 3


def test_execute_per_leg_results(fake_fs, esl):
    a, b = fake_fs.park_call(), fake_fs.park_call()
    fake_fs.execute_results["bridge"] = lambda uuid, app, arg: "_none_" if uuid == a else "USER_BUSY"
    jobs = [gevent.spawn(esl.execute, leg, "bridge", "user/102@acme.example", timeout=2) for leg in (b, a)]
    gevent.joinall(jobs, timeout=2, raise_error=True)
    assert [j.value for j in jobs] == ["USER_BUSY", "_none_"]


def test_execute_on_unknown_channel_is_a_command_error(esl):
    with pytest.raises(EslCommandError) as info:
        esl.execute("11111111-0000-0000-0000-000000000000", "answer")
    assert info.value.reply.startswith("-ERR invalid session id")


def test_execute_timeout(fake_fs, esl):
    uuid = fake_fs.park_call()
    fake_fs.execute_results["bridge"] = lambda *args: None  # never completes
    with pytest.raises(EslTimeoutError):
        esl.execute(uuid, "bridge", "user/102@acme.example", timeout=0.2)
    assert not esl._executions


def test_execute_without_timeout_fails_when_the_connection_is_lost(fake_fs, esl):
    uuid = fake_fs.park_call()
    fake_fs.execute_results["bridge"] = lambda *args: None  # a bridge that lasts an hour
    job = gevent.spawn(esl.execute, uuid, "bridge", "user/102@acme.example")
    fake_fs.wait_for(lambda: fake_fs.executions)
    gevent.sleep(0.6)  # longer than the default timeout: still waiting
    assert not job.ready()
    fake_fs.drop_all()
    job.join(timeout=1)
    assert isinstance(job.exception, EslUnreachableError)


# ---------------------------------------------------------------- events and handlers


def test_handlers_get_parsed_events(fake_fs, esl):
    got = gevent.event.AsyncResult()
    esl.on("CHANNEL_PARK", got.set)
    uuid = fake_fs.park_call(headers={"Caller-Destination-Number": "102"})
    event = got.get(timeout=2)
    assert (event.name, event.uuid, event["Caller-Destination-Number"]) == ("CHANNEL_PARK", uuid, "102")
    assert event["Channel-Name"] == "sofia/internal/1000@127.0.0.1"


def test_url_encoded_newline_stays_in_its_header(fake_fs, esl):
    got = gevent.event.AsyncResult()
    esl.on("CHANNEL_PARK", got.set)
    fake_fs.inject_event({"Event-Name": "CHANNEL_PARK", "Unique-ID": "u1", "variable_note": "line1\nInjected: yes"})
    event = got.get(timeout=2)
    assert event["variable_note"] == "line1\nInjected: yes"
    assert "Injected" not in event


def test_a_slow_handler_never_stalls_others(fake_fs, esl):
    release = gevent.event.Event()
    hangups = []
    esl.on("CHANNEL_PARK", lambda event: release.wait())
    esl.on("CHANNEL_HANGUP_COMPLETE", lambda event: hangups.append(event.uuid))
    uuid = fake_fs.park_call()
    fake_fs.park_call()
    fake_fs.hangup_call(uuid)
    fake_fs.wait_for(lambda: hangups == [uuid])
    assert esl.api("version").startswith("FreeSWITCH")
    release.set()


def test_handler_exception_is_logged_and_others_continue(fake_fs, make_esl, caplog):
    client = make_esl(logger=logging.getLogger("test.esl"))
    client.connect()
    seen = []
    client.on("CHANNEL_PARK", lambda event: 1 / 0)
    client.on("CHANNEL_PARK", lambda event: seen.append(event.uuid))
    uuid = fake_fs.park_call()
    fake_fs.wait_for(lambda: seen == [uuid])
    assert "ZeroDivisionError" in caplog.text


def test_event_queue_is_bounded_and_drops_the_oldest(fake_fs, make_esl, caplog):
    client = make_esl(max_queue=5, max_handlers=1, logger=logging.getLogger("test.esl"))
    client.connect()
    release = gevent.event.Event()
    handled = []

    def slow(event):
        release.wait()
        handled.append(int(event["Seq"]))

    client.on("CHANNEL_PARK", slow)
    for i in range(50):
        fake_fs.inject_event({"Event-Name": "CHANNEL_PARK", "Unique-ID": f"u{i}", "Seq": str(i)})
    # At most 1 running + 1 held by the full pool + 5 queued survive; the rest is dropped.
    fake_fs.wait_for(lambda: client.dropped + len(client._queue) == 48)
    gevent.sleep(0.05)
    assert len(client._queue) <= 5 and client.dropped >= 43
    assert "event queue full" in caplog.text
    release.set()
    fake_fs.wait_for(lambda: len(handled) == 50 - client.dropped)
    assert sorted(handled)[-5:] == [45, 46, 47, 48, 49]  # the oldest were dropped
    # bgapi/execute completions are matched before the queue: still work.
    assert client.bgapi("status").startswith("UP 0 years")


def test_custom_subclass_and_all_handlers(fake_fs, make_esl):
    client = make_esl(events=("CHANNEL_PARK", "CUSTOM sofia::register"))
    client.connect()
    assert fake_fs.received[1].endswith("HEARTBEAT CUSTOM sofia::register")
    custom, everything = [], []
    client.on("sofia::register", custom.append)
    client.on("ALL", everything.append)
    fake_fs.inject_recorded("CUSTOM", index=2)  # sofia::register
    fake_fs.park_call()
    fake_fs.wait_for(lambda: len(everything) == 2)
    assert [e.subclass for e in custom] == ["sofia::register"]
    assert sum(c.startswith("event plain") for c in fake_fs.received) == 1  # already subscribed
    client.on("sofia::unregister", custom.append)  # a new subclass: subscribed after CUSTOM
    fake_fs.wait_for_command("event plain CUSTOM sofia::unregister")
    fake_fs.inject_event({"Event-Name": "CUSTOM", "Event-Subclass": "sofia::unregister"})
    fake_fs.wait_for(lambda: len(custom) == 2)


def test_on_subscribes_to_a_new_event_while_connected(fake_fs, esl):
    got = gevent.event.AsyncResult()
    esl.on("CHANNEL_ANSWER", got.set)
    fake_fs.wait_for_command("event plain CHANNEL_ANSWER")
    fake_fs.inject_recorded("CHANNEL_ANSWER", uuid="abc")
    assert got.get(timeout=2).uuid == "abc"


# ---------------------------------------------------------------- supervision


def test_reconnects_and_resubscribes_after_a_restart(fake_fs, esl):
    parks = []
    esl.on("CHANNEL_PARK", lambda event: parks.append(event.uuid))
    fake_fs.restart(down=0.3)
    fake_fs.wait_for(lambda: not esl.healthy())
    with pytest.raises(EslUnreachableError, match="not back within"):
        esl.api("status", timeout=0.05)
    fake_fs.wait_for(lambda: esl.healthy(), timeout=3)
    assert esl.connections == 2
    assert fake_fs.received.count("auth ClueCon") == 2
    assert sum(c.startswith("event plain CHANNEL_PARK") for c in fake_fs.received) == 2
    uuid = fake_fs.park_call()
    fake_fs.wait_for(lambda: parks == [uuid])


def test_command_waits_for_the_reconnection_within_its_timeout(fake_fs, esl):
    fake_fs.restart(down=0.15)
    fake_fs.wait_for(lambda: not esl.healthy())
    assert esl.api("version", timeout=2).startswith("FreeSWITCH")


def test_run_forever_waits_for_freeswitch_and_close_ends_it(fake_fs, make_esl):
    fake_fs.restart(down=0.3)  # FreeSWITCH still starting
    client = make_esl()
    runner = gevent.spawn(client.run_forever)
    fake_fs.wait_for(lambda: client.healthy(), timeout=3)
    assert not runner.ready()
    client.close()
    runner.join(timeout=1)
    assert runner.successful()


def test_run_forever_without_reconnect_raises_when_lost(fake_fs, make_esl):
    client = make_esl(reconnect=False)
    runner = gevent.spawn(client.run_forever)
    fake_fs.wait_for(lambda: client.healthy())
    fake_fs.drop_all()
    runner.join(timeout=1)
    assert isinstance(runner.exception, EslUnreachableError)


def test_silent_freeswitch_is_detected_by_the_keepalive(fake_fs, make_esl):
    client = make_esl(heartbeat=0.1, timeout=0.2)
    client.connect()
    fake_fs.fault("silent", on="api status", count=1)
    fake_fs.wait_for(lambda: client.connections == 2, timeout=3)  # probe unanswered → reconnect
    assert fake_fs.received.count("api status") >= 1
    fake_fs.wait_for(lambda: client.healthy())


def test_healthy_needs_recent_traffic(fake_fs, make_esl):
    client = make_esl(heartbeat=0.05, reconnect=False)
    client.connect()
    assert client.healthy()
    gevent.sleep(0.2)
    assert not client.healthy()  # nothing heard for 3 heartbeats
    fake_fs.send_heartbeat()
    fake_fs.wait_for(client.healthy)


def test_close_fails_pending_commands(fake_fs, esl):
    fake_fs.fault("silent")
    job = gevent.spawn(esl.api, "status", timeout=5)
    fake_fs.wait_for_command("api status")
    esl.close()
    job.join(timeout=1)
    assert isinstance(job.exception, EslUnreachableError)
    with pytest.raises(EslUnreachableError):
        esl.api("status")


# ---------------------------------------------------------------- threads


def test_calls_from_another_os_thread_are_refused(esl):
    # FACTS.md: greenswitch's send() from another thread hangs.
    outcome = []

    def other_thread():
        try:
            esl.api("status")
        except EslError as exc:
            outcome.append(exc)

    thread = threading.Thread(target=other_thread, daemon=True)
    thread.start()
    thread.join(timeout=2)
    assert not thread.is_alive()
    assert len(outcome) == 1 and isinstance(outcome[0], EslThreadError)
    assert "another OS thread" in str(outcome[0])
    assert esl.api("version").startswith("FreeSWITCH")  # still fine from its own thread


def test_execute_without_waiting_returns_on_the_ok(fake_fs, esl):
    uuid = fake_fs.park_call()
    fake_fs.execute_results["set"] = lambda u, app, arg: None  # never completes
    assert esl.execute(uuid, "set", "a=b", wait=False) == ""
    assert [(app, arg) for u, app, arg, _ in fake_fs.executions if u == uuid] == [("set", "a=b")]
    with pytest.raises(EslTimeoutError):
        esl.execute(uuid, "set", "c=d", timeout=0.2)


def test_pipelined_execute_writes_now_and_checks_its_reply_later(fake_fs, esl):
    uuid = fake_fs.park_call()
    first = esl.execute_pipelined(uuid, "set", "a=b")
    gone = esl.execute_pipelined("00000000-0000-0000-0000-000000000000", "set", "c=d")
    assert esl.execute(uuid, "playback", PLAYBACK) == "FILE PLAYED"  # replies stay in order
    first.wait()
    with pytest.raises(EslCommandError, match="invalid session id"):
        gone.wait()
    assert [(app, arg) for u, app, arg, _ in fake_fs.executions if u == uuid] == [
        ("set", "a=b"),
        ("playback", PLAYBACK),
    ]


def test_execute_without_waiting_still_reports_err(fake_fs, esl):
    with pytest.raises(EslCommandError, match="invalid session id"):
        esl.execute("00000000-0000-0000-0000-000000000000", "set", "a=b", wait=False)


def test_off_unsubscribes_an_event_nothing_else_wants(fake_fs, esl):
    got = []

    def first(event):
        got.append(("first", event.name))

    def second(event):
        got.append(("second", event.name))

    esl.on("CHANNEL_ANSWER", first)
    esl.on("CHANNEL_ANSWER", second)
    fake_fs.wait_for_command("event plain CHANNEL_ANSWER")
    esl.off("CHANNEL_ANSWER", first)  # another handler still wants it: still subscribed
    fake_fs.inject_event({"Event-Name": "CHANNEL_ANSWER", "Unique-ID": "u1"})
    fake_fs.wait_for(lambda: got == [("second", "CHANNEL_ANSWER")])
    esl.off("CHANNEL_ANSWER", second)
    fake_fs.wait_for_command("nixevent CHANNEL_ANSWER")
    fake_fs.inject_event({"Event-Name": "CHANNEL_ANSWER", "Unique-ID": "u2"})
    esl.off("CHANNEL_PARK", first)  # asked for at construction: never nixed
    esl.off("CHANNEL_EXECUTE_COMPLETE", first)  # needed by execute(): never nixed
    fake_fs.park_call()
    assert esl.api("status")  # a round trip: the events above have come, or never will
    assert got == [("second", "CHANNEL_ANSWER")]
    assert not [c for c in fake_fs.received if c.startswith("nixevent") and c != "nixevent CHANNEL_ANSWER"]
    assert esl.execute(fake_fs.park_call(), "answer") == "_none_"
    # A reconnect subscribes to what is wanted now, without CHANNEL_ANSWER.
    assert "CHANNEL_ANSWER" not in esl._subscription()
