"""Tests of fsctl.freeswitch.eslproto against the byte-exact captures (FACTS.md "Event Socket")."""

import json

import pytest
from hypothesis import given, settings, strategies as st

from fsctl.freeswitch import eslproto
from fsctl.freeswitch.eslproto import Event, Message, ProtocolError, Reader
from tests.fakes import captures

ALL_CAPTURES = [
    "esl_auth_fail.txt",
    "esl_auth_ok_exit.txt",
    "esl_api_replies_idle.txt",
    "esl_events_plain_call.txt",
    "esl_events_json_call.txt",
    "esl_events_plain_bridge_acme.txt",
    "esl_outbound_socket.txt",
    "esl_reloadxml_errors.txt",
]


def _expected(record):
    return record.headers, record.body.decode("utf-8")


# ---------------------------------------------------------------- framing


@pytest.mark.parametrize("name", ALL_CAPTURES)
def test_reader_frames_every_recorded_message(name):
    cap = captures.load(name)
    reader = Reader()
    messages = reader.feed(cap.stream())
    assert [(m.headers, m.body) for m in messages] == [_expected(r) for r in cap.recvs]
    assert reader.pending_bytes == 0


def test_reader_byte_by_byte_equals_all_at_once():
    stream = captures.load("esl_api_replies_idle.txt").stream()
    reader = Reader()
    one_by_one = []
    for i in range(len(stream)):
        one_by_one += reader.feed(stream[i : i + 1])
    assert one_by_one == Reader().feed(stream)


@settings(max_examples=40, deadline=None)
@given(st.lists(st.integers(min_value=1, max_value=4000), min_size=1, max_size=60))
def test_reader_any_chunking_gives_the_same_messages(cuts):
    stream = captures.load("esl_events_plain_call.txt").stream()[:60000]
    whole = Reader().feed(stream)
    reader = Reader()
    got, pos = [], 0
    for size in cuts:
        got += reader.feed(stream[pos : pos + size])
        pos += size
    got += reader.feed(stream[pos:])
    assert got == whole


def test_truncated_body_waits_for_more_bytes():
    rec = captures.load("esl_api_replies_idle.txt").recvs[2]  # api status reply, 364-byte body
    reader = Reader()
    half = len(rec.data) // 2
    assert reader.feed(rec.data[:half]) == []
    assert reader.feed(b"") == []
    assert reader.pending_bytes == half
    (message,) = reader.feed(rec.data[half:])
    assert message.body == rec.body.decode()


def test_truncated_header_block_waits_for_more_bytes():
    reader = Reader()
    assert reader.feed(b"Content-Type: command/reply\nReply-Text: +OK") == []
    assert reader.feed(b"\n") == []
    (message,) = reader.feed(b"\n")
    assert message.reply_text == "+OK"


@pytest.mark.parametrize("length", [b"12x", b"-1", b"", b"0x10", b"99999999999"])
def test_malformed_content_length_is_a_protocol_error(length):
    with pytest.raises(ProtocolError):
        Reader().feed(b"Content-Type: api/response\nContent-Length: " + length + b"\n\nabc")


def test_header_line_without_colon_is_a_protocol_error():
    with pytest.raises(ProtocolError):
        Reader().feed(b"Content-Type: api/response\ngarbage line\n\n")


def test_endless_header_block_is_a_protocol_error():
    reader = Reader()
    with pytest.raises(ProtocolError):
        for _ in range(300):
            reader.feed(b"X-Header: " + b"a" * 4000 + b"\n")


def test_message_accessors():
    (greeting, reply) = Reader().feed(
        captures.load("esl_auth_ok_exit.txt").recvs[0].data + captures.load("esl_auth_ok_exit.txt").recvs[1].data
    )
    assert greeting.content_type == "auth/request"
    assert not greeting.is_event
    assert reply.reply_text == "+OK accepted"


# ---------------------------------------------------------------- events


def _events(name, event_name=None):
    cap = captures.load(name)
    return [
        eslproto.parse_event(m)
        for m in Reader().feed(cap.stream())
        if m.is_event
        if event_name is None or eslproto.parse_event(m).name == event_name
    ]


def test_background_job_result_is_the_event_body():
    # FACTS.md: greenswitch glues the result onto the inner Content-Length.
    jobs = _events("esl_api_replies_idle.txt", "BACKGROUND_JOB")
    by_uuid = {e["Job-UUID"]: e for e in jobs}
    chosen = by_uuid["11111111-2222-3333-4444-555555555555"]
    assert chosen.body == '{"row_count": 0}\n'
    assert chosen["Job-Command"] == "show"
    assert chosen["Job-Command-Arg"] == "channels as json"
    assert chosen["Content-Length"] == "17"
    status = by_uuid["1ff87376-717b-4a79-8e6b-2a5b20284e8b"]
    assert status.body.startswith("UP 0 years") and status.body.endswith("8192K\n")
    assert len(status.body.encode()) == int(status["Content-Length"])
    for event in jobs:  # body lines never become headers
        assert not any(h.startswith(("UP 0", "FreeSWITCH (Version", "{")) for h in event.headers)


def test_body_lines_with_colon_space_do_not_become_headers():
    inner = "Event-Name: BACKGROUND_JOB\nJob-UUID: j1\nContent-Length: 24\n\nReply-Text: fake\nX: y\n\n\n"
    event = eslproto.parse_plain_event(inner)
    assert event.body == "Reply-Text: fake\nX: y\n\n\n"[:24]
    assert "Reply-Text" not in event and "X" not in event


def test_url_encoded_newline_stays_inside_its_value():
    body = "Event-Name: CHANNEL_PARK\nvariable_note: line1%0AInjected%3A%20yes\nUnique-ID: u1\n\n"
    event = eslproto.parse_plain_event(body)
    assert event["variable_note"] == "line1\nInjected: yes"
    assert "Injected" not in event
    assert event.uuid == "u1"


def test_recorded_sdp_with_crlf_stays_one_header():
    park = _events("esl_events_plain_call.txt", "CHANNEL_EXECUTE")[0]
    sdp = park["variable_switch_r_sdp"]
    assert sdp.startswith("v=0\r\no=user1") and "\r\nm=audio 16002 RTP/AVP 8 0 101" in sdp
    assert "m=audio 16002 RTP/AVP 8 0 101\r" not in park.headers  # no fake header from a line


def test_values_are_decoded_header_by_header():
    park = _events("esl_events_plain_call.txt", "CHANNEL_PARK")[0]
    assert park.name == "CHANNEL_PARK"
    assert park.uuid == "5b3085ff-48ea-4cdb-b16f-79982ccc7b1e"
    assert park.get("FreeSWITCH-IPv6") == "fd00::2"
    assert park.get("Channel-Name") == "sofia/internal/1000@127.0.0.1"
    assert park.get("Caller-Destination-Number") == "7701"
    assert park.get("No-Such-Header", "dflt") == "dflt"
    assert park.body == ""


def test_execute_complete_carries_application_uuid_and_response():
    done = [
        e
        for e in _events("esl_events_plain_call.txt", "CHANNEL_EXECUTE_COMPLETE")
        if e.get("Application-UUID", "").startswith("aaaaaaaa")
    ]
    assert [(e["Application-UUID"], e["Application-Response"]) for e in done] == [
        ("aaaaaaaa-0000-4000-8000-000000000001", "FILE PLAYED"),
        ("aaaaaaaa-0000-4000-8000-000000000002", "FILE NOT FOUND"),
    ]


@pytest.mark.parametrize(
    "name", ["esl_events_plain_call.txt", "esl_events_plain_bridge_acme.txt", "esl_api_replies_idle.txt"]
)
def test_peeked_header_equals_the_parsed_one(name):
    for record in captures.load(name).events():
        if record.content_type != "text/event-plain":
            continue
        body = record.body.decode("utf-8")
        event = eslproto.parse_plain_event(body)
        for header in ("Event-Name", "Application-UUID", "Job-UUID", "Channel-Name", "variable_switch_r_sdp"):
            assert eslproto.peek_plain_header(body, header) == event.get(header)


def test_peek_does_not_read_the_event_body():
    body = "Event-Name: BACKGROUND_JOB\nJob-UUID: j-1\nContent-Length: 30\n\nApplication-UUID: fake\nx: y\n"
    assert eslproto.peek_plain_header(body, "Job-UUID") == "j-1"
    assert eslproto.peek_plain_header(body, "Application-UUID") is None
    assert eslproto.peek_plain_header("Event-Name: HEARTBEAT", "Event-Name") == "HEARTBEAT"


def test_json_events_match_plain_events_of_the_same_call():
    plain = {e["Event-Sequence"]: e for e in _events("esl_events_plain_call.txt")}
    json_events = _events("esl_events_json_call.txt")
    assert len(json_events) > 50
    compared = 0
    for event in json_events:
        twin = plain.get(event["Event-Sequence"])
        if twin is not None:
            assert event.name == twin.name
            assert event.headers == twin.headers
            assert event.body == twin.body
            compared += 1
    assert compared > 50


def test_json_background_job_body():
    (job,) = [e for e in _events("esl_api_replies_idle.txt", "BACKGROUND_JOB") if e["Job-Command"] == "version"]
    assert job.body.startswith("FreeSWITCH Version 1.11.3-dev")
    assert "_body" not in job.headers


def test_custom_event_subclass():
    custom = _events("esl_events_plain_call.txt", "CUSTOM")[0]
    assert custom.subclass == "sofia::pre_register"


def test_parse_event_rejects_non_events_and_bad_json():
    with pytest.raises(ProtocolError):
        eslproto.parse_event(Message({"Content-Type": "api/response"}, "x"))
    with pytest.raises(ProtocolError):
        eslproto.parse_event(Message({"Content-Type": "text/event-json"}, "{not json"))
    with pytest.raises(ProtocolError):
        eslproto.parse_event(Message({"Content-Type": "text/event-json"}, "[1]"))


def test_event_accessors():
    event = Event("HEARTBEAT", {"Event-Name": "HEARTBEAT"})
    assert event.uuid is None and event.subclass is None and event.get("x") is None


# ---------------------------------------------------------------- builders


def _sent(name):
    return [r.data.decode() for r in captures.load(name).sends]


def test_builders_reproduce_the_recorded_commands():
    idle = _sent("esl_api_replies_idle.txt")
    call = _sent("esl_events_plain_call.txt")
    assert eslproto.auth("ClueCon") in idle
    assert eslproto.api("status") in idle
    assert eslproto.api("show channels as json") in idle
    assert eslproto.bgapi("show channels as json", "11111111-2222-3333-4444-555555555555") in idle
    assert eslproto.event("BACKGROUND_JOB", "plain") in idle
    assert eslproto.event(["BACKGROUND_JOB"], "json") in idle
    assert eslproto.filter("Event-Name", "BACKGROUND_JOB") in idle
    assert eslproto.filter_delete("Event-Name", "BACKGROUND_JOB") in idle
    assert eslproto.nixevent("BACKGROUND_JOB") in idle
    assert eslproto.noevents() in idle
    assert eslproto.exit() in idle
    assert eslproto.event("ALL") in call
    assert (
        eslproto.sendmsg_execute(
            "5b3085ff-48ea-4cdb-b16f-79982ccc7b1e",
            "playback",
            "/srv/sounds/testdata/tone440_1s.wav",
            event_uuid="aaaaaaaa-0000-4000-8000-000000000001",
        )
        in call
    )
    assert (
        eslproto.sendmsg_execute(
            "5b3085ff-48ea-4cdb-b16f-79982ccc7b1e",
            "playback",
            "/nonexistent/file.wav",
            event_uuid="aaaaaaaa-0000-4000-8000-000000000002",
            event_lock=False,
        )
        in call
    )
    outbound = _sent("esl_outbound_socket.txt")
    assert eslproto.linger() in outbound
    assert eslproto.myevents() in outbound
    assert eslproto.sendmsg_hangup("") in outbound


@pytest.mark.parametrize(
    "build",
    [
        lambda: eslproto.api("status\n\nexit"),
        lambda: eslproto.api("status\r"),
        lambda: eslproto.api(""),
        lambda: eslproto.auth("ClueCon\nevent plain ALL"),
        lambda: eslproto.bgapi("status", "id\nX-Evil: 1"),
        lambda: eslproto.bgapi(" ", "id"),
        lambda: eslproto.sendmsg_execute("u1", "playback", "a.wav\n\nexit"),
        lambda: eslproto.sendmsg_execute("u1\ncall-command: hangup", "playback"),
        lambda: eslproto.sendmsg_execute("u1", "play back"),
        lambda: eslproto.sendmsg_execute("u1", "playback", "x", event_uuid="e\r\n"),
        lambda: eslproto.event(["CHANNEL_PARK\nnoevents"]),
        lambda: eslproto.event([]),
        lambda: eslproto.event("ALL", "yaml"),
        lambda: eslproto.filter("Event-Name", "X\nY"),
        lambda: eslproto.sendmsg_hangup("u1", "NORMAL\nX"),
    ],
)
def test_builders_reject_header_injection(build):
    with pytest.raises(ValueError):
        build()


def test_sendmsg_execute_headers():
    wire = eslproto.sendmsg_execute("u1", "bridge", "user/102@acme.example", event_uuid="e1", loops=2)
    assert wire == (
        "sendmsg u1\ncall-command: execute\nexecute-app-name: bridge\n"
        "execute-app-arg: user/102@acme.example\nloops: 2\nevent-lock: true\nEvent-UUID: e1\n\n"
    )
    assert "execute-app-arg" not in eslproto.sendmsg_execute("u1", "answer")


def test_json_round_trip_of_builders_is_text():
    assert json.dumps(eslproto.api("status"))  # builders return str, ready to encode
    assert eslproto.linger(5) == "linger 5\n\n"
    assert eslproto.nolinger() == "nolinger\n\n"
    assert eslproto.myevents("u1") == "myevents u1\n\n"
    assert eslproto.filter_delete("Event-Name") == "filter delete Event-Name\n\n"


# --- the fast header split and lazily decoded headers (issue 12) -----------------------------


def _slow_split(text):
    """The line-by-line reference: what every header block meant before the fast path."""
    out = {}
    for line in text.split("\n"):
        line = line[:-1] if line.endswith("\r") else line
        if not line:
            continue
        name, sep, value = line.partition(":")
        assert sep and name.strip()
        out[name.strip()] = value[1:] if value.startswith(" ") else value
    return out


@pytest.mark.parametrize("name", ["esl_events_plain_call.txt", "esl_events_plain_bridge_acme.txt"])
def test_fast_split_equals_line_by_line_on_every_recorded_event(name):
    from urllib.parse import unquote

    for rec in captures.load(name).events():
        body = rec.data[rec.header_bytes :].decode()
        block = body.split("\n\n", 1)[0]
        event = eslproto.parse_plain_event(body)
        expected = {k: unquote(v, errors="replace") for k, v in _slow_split(block).items()}
        assert dict(event.headers) == expected
        assert len(event.headers) == len(expected)


@pytest.mark.parametrize(
    "block, expected",
    [
        ("A: 1\r\nB: 2", {"A": "1", "B": "2"}),  # CRLF
        ("A:1\nB:  2", {"A": "1", "B": " 2"}),  # no space; only one space dropped
        (" A : 1\nB: x: y", {"A": "1", "B": "x: y"}),  # blanks around a name
        ("A:b: c", {"A": "b: c"}),  # the name ends at the first colon
        ("A: 1\n\nB: 2", {"A": "1", "B": "2"}),  # a blank line
        ("A: 1\nA: 2", {"A": "2"}),  # the last one wins
        ("A\x0b: 1", {"A": "1"}),  # other whitespace stripped from a name
    ],
)
def test_unusual_header_lines_mean_what_they_meant(block, expected):
    assert eslproto.parse_headers(block.encode()) == expected
    if "\n\n" not in block:  # (in an event, a blank line ends the header block)
        assert dict(eslproto.parse_plain_event(block).headers) == expected


@pytest.mark.parametrize("block", [": 1", "A: 1\nno colon here", "  : x"])
def test_malformed_header_lines_are_still_refused(block):
    with pytest.raises(ProtocolError):
        eslproto.parse_headers(block.encode())


def test_headers_are_decoded_when_read_and_read_only():
    event = eslproto.parse_plain_event("Event-Name: X\nA: 100%25\nB: a%0Ab\nC: plain\n\n")
    headers = event.headers
    assert isinstance(headers, eslproto.Headers)
    assert headers["A"] == "100%" and headers["A"] == "100%"  # decoded once, not twice
    assert headers.get("B") == "a\nb" and headers.get("C") == "plain" and headers.get("D", "-") == "-"
    assert "A" in headers and "D" not in headers and len(headers) == 4
    assert dict(headers) == {"Event-Name": "X", "A": "100%", "B": "a\nb", "C": "plain"}
    assert list(headers.items())[1] == ("A", "100%")
    assert headers == {"Event-Name": "X", "A": "100%", "B": "a\nb", "C": "plain"}
    with pytest.raises(TypeError):
        headers["A"] = "changed"
