"""The fake FreeSWITCH must answer like the real one: checked against the captures, byte for byte.

These tests talk to the fake over a plain blocking socket with their own tiny framer, so
that the fake is not judged by the parser it is meant to test.
"""

import json
import re
import socket
import time
from urllib.parse import unquote

import pytest

from tests.fakes import captures
from tests.fakes.fake_freeswitch import FakeFreeSWITCH, PlainEvent, url_encode


class RawClient:
    """A blocking Event Socket client with an independent framer."""

    def __init__(self, fake, timeout=2.0):
        self.sock = socket.create_connection(fake.address, timeout=timeout)
        self.buf = b""

    def send(self, data):
        self.sock.sendall(data if isinstance(data, bytes) else data.encode())

    def _fill(self):
        chunk = self.sock.recv(65536)
        if not chunk:
            raise EOFError
        self.buf += chunk

    def read_message(self):
        """Exactly one message's bytes (header block + Content-Length body)."""
        while b"\n\n" not in self.buf:
            self._fill()
        head, _ = self.buf.split(b"\n\n", 1)
        m = re.search(rb"^Content-Length: (\d+)$", head, re.M)
        total = len(head) + 2 + (int(m.group(1)) if m else 0)
        while len(self.buf) < total:
            self._fill()
        msg, self.buf = self.buf[:total], self.buf[total:]
        return msg

    def read_exact(self, n):
        while len(self.buf) < n:
            self._fill()
        data, self.buf = self.buf[:n], self.buf[n:]
        return data

    def at_eof(self, timeout=1.0):
        self.sock.settimeout(timeout)
        try:
            return self.sock.recv(1) == b""
        except ConnectionResetError:
            return True

    def nothing_within(self, seconds):
        self.sock.settimeout(seconds)
        try:
            data = self.sock.recv(1)
        except socket.timeout:
            return True
        self.buf += data
        return False

    def close(self):
        self.sock.close()


@pytest.fixture
def raw(fake_fs):
    clients = []

    def connect(auth=True):
        client = RawClient(fake_fs)
        clients.append(client)
        assert client.read_message() == b"Content-Type: auth/request\n\n"
        if auth:
            client.send("auth ClueCon\n\n")
            assert client.read_message() == b"Content-Type: command/reply\nReply-Text: +OK accepted\n\n"
        return client

    yield connect
    for client in clients:
        client.close()


def _body(message):
    return message.split(b"\n\n", 1)[1]


def _event_name(message):
    return re.search(rb"^Event-Name: (\S+)$", _body(message), re.M).group(1).decode()


def _plain_headers(message):
    block = _body(message).split(b"\n\n", 1)[0].decode()
    return {k: unquote(v) for k, _, v in (line.partition(": ") for line in block.split("\n"))}


# ---------------------------------------------------------------- whole captures


@pytest.mark.parametrize("name", ["esl_auth_fail.txt", "esl_auth_ok_exit.txt"])
def test_replaying_auth_captures_yields_exactly_the_recorded_bytes(fake_fs, name):
    cap = captures.load(name)
    client = RawClient(fake_fs)
    got = b""
    for record in cap.records:
        if record.kind == "send":
            client.send(record.data)
        elif record.kind == "recv":
            got += client.read_exact(len(record.data))
    assert got == cap.stream()
    assert client.at_eof()  # "#xx CLOSED"
    assert [r.kind for r in cap.records if r.kind == "closed"] == ["closed"]
    client.close()


def test_replaying_the_idle_api_capture(fake_fs, raw):
    """Every reply is byte-exact except what FreeSWITCH generates anew (Job-UUIDs, job events)."""
    cap = captures.load("esl_api_replies_idle.txt")
    client = raw(auth=False)
    exact = 0
    for send, recvs in cap.exchanges():
        client.send(send.data)
        got = [client.read_message() for _ in recvs]
        command = send.command
        if command.startswith("bgapi") and "Job-UUID:" not in command:
            job = re.search(rb"Job-UUID: (\S+)\n", got[0]).group(1)
            assert got[0] == recvs[0].data.replace(recvs[0].headers["Job-UUID"].encode(), job)
            if len(recvs) > 1:  # subscribed: the BACKGROUND_JOB event follows
                assert recvs[1].content_type == got[1].split(b"\n")[1][len(b"Content-Type: ") :].decode()
                assert job in got[1]
            continue
        assert got == [r.data for r in recvs], command
        exact += 1
    assert exact == len(cap.exchanges()) - 4  # 4 bgapi without a caller-chosen Job-UUID
    assert client.at_eof()


def test_recorded_reloadxml_cases_and_reloadxml_event(fake_fs, raw):
    cap = captures.load("esl_reloadxml_errors.txt")
    client = raw()
    send, (reply,) = cap.exchanges()[1]  # event plain RELOADXML
    client.send(send.data)
    assert client.read_message() == reply.data
    assert set(fake_fs.reloadxml_cases) >= {"G0", "M1", "M2", "M5", "G1"}
    for label, recorded in fake_fs.reloadxml_cases.items():
        fake_fs.set_reloadxml(label)
        client.send("api reloadxml\n\n")
        assert client.read_message() == recorded
        ok = _body(recorded) == b"+OK [Success]\n"
        # FACTS.md: on error no RELOADXML event fires.
        if ok:
            assert _event_name(client.read_message()) == "RELOADXML"
        else:
            assert client.nothing_within(0.05)
    assert _body(fake_fs.reloadxml_cases["M1"]) == b"+OK [[error near line 6677]: unexpected closing tag </usr>]\n"


def test_recorded_lookup_replies_from_the_reloadxml_capture(raw):
    cap = captures.load("esl_reloadxml_errors.txt")
    client = raw()
    for send, recvs in cap.exchanges()[3:8]:  # user_data, xml_locate, user_exists x3 (case G0)
        client.send(send.data)
        assert client.read_message() == recvs[0].data


def test_execute_reproduces_the_recorded_playback_events_exactly(fake_fs, raw):
    cap = captures.load("esl_events_plain_call.txt")
    send, recvs = next((s, r) for s, r in cap.exchanges() if "000000000001" in s.command)
    client = raw()
    client.send("event plain CHANNEL_EXECUTE CHANNEL_EXECUTE_COMPLETE\n\n")
    client.read_message()
    fake_fs.park_call("5b3085ff-48ea-4cdb-b16f-79982ccc7b1e")
    client.send(send.data)
    reply, execute, complete = (client.read_message() for _ in range(3))
    recorded = {_event_name(r.data): r.data for r in recvs if r.content_type == "text/event-plain"}
    assert reply == recvs[0].data == b"Content-Type: command/reply\nReply-Text: +OK\n\n"
    assert execute == recorded["CHANNEL_EXECUTE"]
    assert complete == recorded["CHANNEL_EXECUTE_COMPLETE"]
    assert fake_fs.executions == [
        (
            "5b3085ff-48ea-4cdb-b16f-79982ccc7b1e",
            "playback",
            "/srv/sounds/testdata/tone440_1s.wav",
            "aaaaaaaa-0000-4000-8000-000000000001",
        )
    ]


def test_execute_results_per_app_and_per_leg(fake_fs, raw):
    client = raw()
    client.send("event plain CHANNEL_EXECUTE_COMPLETE\n\n")
    client.read_message()
    a, b = fake_fs.park_call(), fake_fs.park_call()
    fake_fs.execute_results["playback"] = lambda uuid, app, arg: "FILE NOT FOUND" if uuid == b else "FILE PLAYED"
    for leg, expected in ((a, "FILE PLAYED"), (b, "FILE NOT FOUND")):
        client.send(
            f"sendmsg {leg}\ncall-command: execute\nexecute-app-name: playback\n"
            f"execute-app-arg: x.wav\nEvent-UUID: ev-{leg}\n\n"
        )
        assert client.read_message().endswith(b"Reply-Text: +OK\n\n")
        headers = _plain_headers(client.read_message())
        assert (headers["Unique-ID"], headers["Application-UUID"], headers["Application-Response"]) == (
            leg,
            f"ev-{leg}",
            expected,
        )


def test_sendmsg_to_an_unknown_channel_is_refused_like_freeswitch(raw):
    client = raw()
    client.send("sendmsg 11111111-0000-0000-0000-000000000000\ncall-command: execute\nexecute-app-name: answer\n\n")
    assert client.read_message() == (
        b"Content-Type: command/reply\nReply-Text: -ERR invalid session id [11111111-0000-0000-0000-000000000000]\n\n"
    )


def test_park_call_replays_the_recorded_event_with_a_new_uuid(fake_fs, raw):
    client = raw()
    client.send("event plain CHANNEL_PARK\n\n")
    client.read_message()
    uuid = fake_fs.park_call("0f0f0f0f-1111-4222-8333-444444444444", {"Caller-Destination-Number": "102"})
    message = client.read_message()
    recorded = captures.load("esl_events_plain_call.txt").events("CHANNEL_PARK")[0].data
    expected = recorded.replace(b"5b3085ff-48ea-4cdb-b16f-79982ccc7b1e", uuid.encode()).replace(
        b"Caller-Destination-Number: 7701\n", b"Caller-Destination-Number: 102\n"
    )
    assert len(expected) == len(recorded) - 1
    assert message == expected.replace(b"Content-Length: 7108", b"Content-Length: 7107")
    client.send(f"api uuid_getvar {uuid} sip_from_user\n\n")
    assert _body(client.read_message()) == b"1000"
    client.send(f"api uuid_kill {uuid}\n\n")
    assert _body(client.read_message()) == b"+OK\n"
    client.send(f"api uuid_kill {uuid}\n\n")
    assert _body(client.read_message()) == b"-ERR No such channel!\n"


def test_every_recorded_plain_event_round_trips_through_the_fake_serialiser():
    for name in ("esl_events_plain_call.txt", "esl_events_plain_bridge_acme.txt", "esl_api_replies_idle.txt"):
        for record in captures.load(name).events():
            if record.content_type == "text/event-plain":
                event = PlainEvent(record.body)
                assert event.wire("plain") == record.data
                for _, value in event.lines:
                    assert url_encode(unquote(value)) == value


# ---------------------------------------------------------------- protocol behaviour


def test_commands_before_auth_and_received_log(fake_fs, raw):
    client = raw(auth=False)
    client.send("api status\n\n")
    assert client.read_message() == b"Content-Type: command/reply\nReply-Text: -ERR command not found\n\n"
    client.send("auth ClueCon\n\n")
    client.read_message()
    client.send("api version\n\n")
    client.read_message()
    assert fake_fs.received == ["api status", "auth ClueCon", "api version"]


def test_bgapi_event_only_when_subscribed_and_json_format(fake_fs, raw):
    client = raw()
    client.send("bgapi version\nJob-UUID: j-1\n\n")
    assert client.read_message() == b"Content-Type: command/reply\nReply-Text: +OK Job-UUID: j-1\nJob-UUID: j-1\n\n"
    assert client.nothing_within(0.05)
    client.send("event json BACKGROUND_JOB\n\n")
    client.read_message()
    client.send("bgapi version\nJob-UUID: j-2\n\n")
    client.read_message()
    message = client.read_message()
    assert message.split(b"\n")[1] == b"Content-Type: text/event-json"
    obj = json.loads(_body(message))
    assert (obj["Job-UUID"], obj["Job-Command"]) == ("j-2", "version")
    assert obj["_body"].startswith("FreeSWITCH Version 1.11.3-dev")


def test_held_jobs_are_released_in_reverse(fake_fs, raw):
    client = raw()
    client.send("event plain BACKGROUND_JOB\n\n")
    client.read_message()
    fake_fs.hold_jobs = True
    for job in ("j-1", "j-2"):
        client.send(f"bgapi status\nJob-UUID: {job}\n\n")
        client.read_message()
    assert client.nothing_within(0.05)
    assert fake_fs.release_jobs(reverse=True) == 2
    assert [_plain_headers(client.read_message())["Job-UUID"] for _ in range(2)] == ["j-2", "j-1"]


def test_event_filters_and_unknown_event_names(fake_fs, raw):
    client = raw()
    client.send("event plain NOSUCHEVENT\n\n")
    assert client.read_message() == b"Content-Type: command/reply\nReply-Text: -ERR no keywords supplied\n\n"
    client.send("event plain CHANNEL_PARK\n\n")
    client.read_message()
    client.send("filter Unique-ID u-2\n\n")
    assert client.read_message() == b"Content-Type: command/reply\nReply-Text: +OK filter added. [Unique-ID]=[u-2]\n\n"
    fake_fs.park_call("u-1")
    fake_fs.park_call("u-2")
    assert _plain_headers(client.read_message())["Unique-ID"] == "u-2"
    fake_fs.inject_event({"Event-Name": "CHANNEL_ANSWER", "Unique-ID": "u-2"})  # not subscribed
    assert client.nothing_within(0.05)


def test_inject_event_encodes_values(fake_fs, raw):
    client = raw()
    client.send("event plain CUSTOM example::thing\n\n")
    client.read_message()
    fake_fs.inject_event({"Event-Name": "CUSTOM", "Event-Subclass": "example::thing", "Note": "a\nb: c"}, body="hi")
    assert _body(client.read_message()) == (
        b"Event-Name: CUSTOM\nEvent-Subclass: example%3A%3Athing\nNote: a%0Ab%3A%20c\nContent-Length: 2\n\nhi"
    )


# ---------------------------------------------------------------- faults


def test_fault_drop_closes_without_reply(fake_fs, raw):
    client = raw()
    fake_fs.fault("drop", on="api reloadxml")
    client.send("api reloadxml\n\n")
    assert client.at_eof()


def test_fault_silent_never_replies(fake_fs, raw):
    client = raw()
    fake_fs.fault("silent")
    client.send("api status\n\n")
    assert client.nothing_within(0.1)
    fake_fs.clear_faults()
    client.send("api version\n\n")
    assert _body(client.read_message()).startswith(b"FreeSWITCH Version")


def test_fault_truncate_sends_half_then_stalls(fake_fs, raw):
    client = raw()
    fake_fs.fault("truncate", on="api status")
    client.send("api status\n\n")
    full = fake_fs.api_replies["status"]
    assert client.read_exact(len(full) // 2) == full[: len(full) // 2]
    client.send("api version\n\n")
    assert client.nothing_within(0.1)


def test_fault_events_first_and_malformed(fake_fs, raw):
    client = raw()
    client.send("event plain ALL\n\n")
    client.read_message()
    fake_fs.fault("events_first", on="api version")
    client.send("api version\n\n")
    first, second, third = (client.read_message() for _ in range(3))
    assert (_event_name(first), _event_name(second)) == ("API", "PRIVATE_COMMAND")
    assert third.startswith(b"Content-Type: api/response")
    fake_fs.fault("malformed")
    client.send("api version\n\n")
    bad = b"Content-Type: api/response\nContent-Length: 12x\n\n"
    assert client.read_exact(len(bad)) == bad


def test_fault_delay_and_slow_delivery(fake_fs, raw):
    client = raw()
    fake_fs.fault("delay", seconds=0.1)
    start = time.monotonic()
    client.send("api version\n\n")
    client.read_message()
    assert time.monotonic() - start >= 0.1
    fake_fs.slow(0.0005)
    client.send("api status\n\n")
    first = client.sock.recv(65536)
    assert len(first) < 20  # delivered in tiny pieces
    client.buf = first
    assert client.read_message() == fake_fs.api_replies["status"]


def test_restart_refuses_then_accepts(fake_fs, raw):
    client = raw()
    fake_fs.restart(down=0.3)
    assert client.at_eof()
    with pytest.raises(ConnectionRefusedError):
        socket.create_connection(fake_fs.address, timeout=1).close()
    time.sleep(0.35)
    again = raw()
    again.send("api version\n\n")
    assert again.read_message().startswith(b"Content-Type: api/response")
    assert fake_fs.accepted == 2


def test_unknown_fault_kind_is_refused(fake_fs):
    with pytest.raises(ValueError):
        fake_fs.fault("explode")


def test_context_manager_and_free_port():
    with FakeFreeSWITCH() as one, FakeFreeSWITCH() as two:
        assert one.port and two.port and one.port != two.port
