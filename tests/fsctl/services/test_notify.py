"""Missed-call notifications and CRM events against a real SMTP server (aiosmtpd) and a local HTTP server."""

import datetime as dt
import email
import json
import threading
from email import policy
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest
from aiosmtpd.controller import Controller

from fsctl.config import Settings, allowed_networks
from fsctl.errors import ValidationError
from fsctl.model import CallRecord as CallRecordModel, CrmCall, NotifyRule, Outbox, User, utcnow
from fsctl.services import cdr, notify
from tests.conftest import free_port
from tests.fsctl.services.test_cdr import a_leg, b_leg, make_tenant, s

# Deliveries are queued at the real time; "now" for drain is a little after it.
# Ahead of every row the default notifier stamps with the real clock during the run (a minute
# was too little once the module ran more than a minute after its import on a loaded machine).
NOW = utcnow().replace(microsecond=0) + dt.timedelta(hours=1)
REC = "/var/lib/freeswitch/recordings/acme.example/2026/11/23/20261123T070942Z_c1_102.wav"


class Mailbox:
    """aiosmtpd handler that keeps every message."""

    def __init__(self):
        self.messages = []

    async def handle_DATA(self, server, session, envelope):
        self.messages.append((envelope.rcpt_tos, email.message_from_bytes(envelope.content, policy=policy.default)))
        return "250 OK"


@pytest.fixture
def smtp():
    box = Mailbox()
    controller = Controller(box, hostname="127.0.0.1", port=free_port())
    controller.start()
    box.port = controller.port
    yield box
    controller.stop()


class Web:
    """A local HTTP server: records every request, answers from a script (then 200 {})."""

    def __init__(self):
        self.requests = []
        self.replies = []  # (status, body) in order, per request
        web = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self):
                body = self.rfile.read(int(self.headers.get("Content-Length", 0)))
                web.requests.append((self.path, self.headers.get("Content-Type"), json.loads(body)))
                status, reply = web.replies.pop(0) if web.replies else (200, {})
                data = json.dumps(reply).encode()
                self.send_response(status)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

            def log_message(self, *args):
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", free_port()), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}"
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self.thread.start()

    def bodies(self):
        return [r[2] for r in self.requests]

    def close(self):
        self.server.shutdown()
        self.server.server_close()


@pytest.fixture
def web():
    server = Web()
    yield server
    server.close()


# The test servers listen on loopback, which webhooks may reach only when the settings allow it.
LOOPBACK = allowed_networks("127.0.0.0/8")


def settings(smtp=None, **kw):
    kw.setdefault("webhook_allow_networks", "127.0.0.0/8")
    kw.setdefault("notify_timeout", 5.0)
    return Settings(
        smtp_port=smtp.port if smtp else 1,
        notify_backoff=30.0,
        notify_max_attempts=3,
        recordings_url="https://rec.example.invalid/files",
        **kw,
    )


def transport(conf):
    return notify.Transport.from_settings(conf)


def missed_group_call(uuid="m-a"):
    return [
        b_leg(f"{uuid}-101", uuid, "101", end=s(20), cause="ORIGINATOR_CANCEL", caller="+37061111111"),
        b_leg(f"{uuid}-102", uuid, "102", end=s(20), cause="ORIGINATOR_CANCEL", caller="+37061111111"),
        a_leg(
            uuid,
            caller="+37061111111",
            caller_name="Jonas",
            did="+37052000000",
            route="group:200",
            end=s(20),
            cause="ORIGINATOR_CANCEL",
            disposition="recv_cancel",
        ),
    ]


def answered_group_call(uuid="c1"):
    return [
        b_leg(f"{uuid}-101", uuid, "101", end=s(9), cause="LOSE_RACE", caller="+37061111111"),
        b_leg(f"{uuid}-102", uuid, "102", answer=s(9), end=s(129), caller="+37061111111"),
        a_leg(
            uuid,
            caller="+37061111111",
            did="+37052000000",
            route="group:200",
            answer=s(9),
            end=s(129),
            bridged_to=f"{uuid}-102",
            bridged_user="102",
            recording=REC,
        ),
    ]


def test_missed_call_mail_and_webhook_sent_once_with_retry(db, smtp, web):
    make_tenant(db)
    notify.add_rule("acme.example", "user", "101", "email")
    notify.add_rule("acme.example", "group", "200", "webhook", web.url + "/missed", allow=LOOPBACK)
    notify.add_rule("acme.example", "user", "103", "email")  # 103 did not ring: not told
    web.replies = [(500, {"error": "try later"})]
    cdr.ingest_hangups(missed_group_call())
    assert Outbox.select().count() == 2
    conf = settings(smtp)

    first = notify.drain(transport(conf), conf, now=NOW)
    assert (first.sent, first.retried, first.failed) == (1, 1, 0)
    assert first.errors == [f"missed:m-a:2: POST {web.url}/missed: HTTP 500"]
    [(rcpt, message)] = smtp.messages
    assert rcpt == ["u101@acme.example"] and message["Subject"] == "Missed call from +37061111111 (Jonas)"
    assert message["From"] == "pbx@localhost"
    assert "Rang: 101, 102" in message.get_content()

    assert notify.drain(transport(conf), conf, now=NOW + dt.timedelta(seconds=29)).sent == 0  # backoff
    later = notify.drain(transport(conf), conf, now=NOW + dt.timedelta(seconds=30))
    assert (later.sent, later.retried) == (1, 0)
    assert [r[0] for r in web.requests] == ["/missed", "/missed"]
    body = web.bodies()[1]
    assert (body["event"], body["scope"], body["number"], body["tenant"]) == (
        "missed_call",
        "group",
        "200",
        "acme.example",
    )
    assert (body["call"]["uuid"], body["call"]["status"], body["call"]["missed_by"]) == (
        "m-a",
        "missed",
        ["101", "102"],
    )

    cdr.ingest_hangups(missed_group_call())  # the same call again (re-import, replay): nothing new
    cdr.ingest_hangups(missed_group_call()[::-1])
    assert Outbox.select().count() == 2
    assert notify.drain(transport(conf), conf, now=NOW + dt.timedelta(days=1)).sent == 0
    assert len(smtp.messages) == 1 and len(web.requests) == 2


def test_backoff_doubles_then_gives_up(db, web):
    make_tenant(db)
    notify.add_rule("acme.example", "user", "102", "webhook", web.url + "/down", allow=LOOPBACK)
    web.replies = [(503, {})] * 3
    cdr.ingest_hangups(missed_group_call())
    conf = settings()
    when = NOW
    for expected_wait in (30, 60):
        assert notify.drain(transport(conf), conf, now=when).retried == 1
        row = Outbox.get()
        assert row.next_attempt_at == when + dt.timedelta(seconds=expected_wait)
        when = row.next_attempt_at
    final = notify.drain(transport(conf), conf, now=when)
    assert (final.failed, Outbox.get().state, Outbox.get().attempts) == (1, "failed", 3)
    assert Outbox.get().last_error == f"POST {web.url}/down: HTTP 503"
    assert notify.drain(transport(conf), conf, now=when + dt.timedelta(days=1)).failed == 0


def test_answered_and_abandoned_calls_notify_nobody(db, smtp):
    make_tenant(db)
    for user in ("101", "102"):
        notify.add_rule("acme.example", "user", user, "email")
    notify.add_rule("acme.example", "group", "200", "email", "sales@acme.example")
    cdr.ingest_hangups(answered_group_call())
    cdr.ingest_hangups(
        [
            b_leg("q-101", "q-a", "101", queue=True, end=s(30), cause="ORIGINATOR_CANCEL"),
            a_leg(
                "q-a",
                caller="+37063333333",
                did="+37052000001",
                route="queue:600",
                answer=s(1),
                end=s(40),
                app="callcenter",
                cc_queue="600@acme.example",
            ),
        ]
    )
    assert Outbox.select().count() == 0


def test_user_without_address_fails_later_not_silently(db, smtp):
    make_tenant(db)
    notify.add_rule("acme.example", "user", "101", "email")
    User.update(email=None).where(User.number == "101").execute()
    cdr.ingest_hangups(missed_group_call())
    conf = settings(smtp)
    assert notify.drain(transport(conf), conf, now=NOW).errors == ["missed:m-a:1: no e-mail address"]
    assert smtp.messages == []


# --- CRM --------------------------------------------------------------------------------------


def channel_event(name, leg):
    return {**leg, "Event-Name": name}


def test_crm_webhook_gets_ringing_answered_finished(db, web):
    make_tenant(db)
    notify.add_hook("acme.example", web.url + "/crm", allow=LOOPBACK)
    legs = answered_group_call()
    notify.enqueue_channel_event(channel_event("CHANNEL_PROGRESS", legs[0]), now=NOW)
    notify.enqueue_channel_event(channel_event("CHANNEL_PROGRESS", legs[1]), now=NOW)
    notify.enqueue_channel_event(channel_event("CHANNEL_PROGRESS", legs[1]), now=NOW)  # duplicate: once
    notify.enqueue_channel_event(channel_event("CHANNEL_ANSWER", legs[1]), now=NOW)
    assert notify.enqueue_channel_event(channel_event("CHANNEL_ANSWER", legs[2]), now=NOW) == 0  # caller's leg
    cdr.ingest_hangups(legs)
    conf = settings()
    assert notify.drain(transport(conf), conf, now=NOW + dt.timedelta(minutes=5)).sent == 4
    bodies = web.bodies()
    assert [(b["event"], b.get("user")) for b in bodies] == [
        ("ringing", "101"),
        ("ringing", "102"),
        ("answered", "102"),
        ("finished", None),
    ]
    assert bodies[0]["caller"] == "+37061111111" and bodies[0]["call_uuid"] == "c1"
    finished = bodies[3]
    assert (
        finished["recording_url"]
        == "https://rec.example.invalid/files/acme.example/2026/11/23/20261123T070942Z_c1_102.wav"
    )
    assert (finished["call"]["status"], finished["call"]["answered_by"], finished["call"]["talk_time"]) == (
        "answered",
        "102",
        120,
    )


def test_bitrix24_register_and_finish(db, web):
    make_tenant(db)
    notify.add_hook("acme.example", web.url + "/rest/1/s3cret/", "bitrix24", allow=LOOPBACK)
    web.replies = [
        (200, {"result": {"CALL_ID": "externalCall.1a"}}),
        (200, {"result": {}}),
        (200, {"result": {"CALL_ID": "externalCall.2b"}}),
        (200, {"result": {}}),
    ]
    legs = answered_group_call()
    notify.enqueue_channel_event(channel_event("CHANNEL_PROGRESS", legs[0]), now=NOW)
    notify.enqueue_channel_event(channel_event("CHANNEL_PROGRESS", legs[1]), now=NOW)
    cdr.ingest_hangups(legs)
    cdr.ingest_hangups(missed_group_call())  # no ringing event seen: registered at the end
    cdr.ingest_hangups(
        [
            a_leg(
                "int-a",
                caller="101",
                dest="102",
                route="user:102",
                answer=s(2),
                end=s(9),
                bridged_to="int-b",
                bridged_user="102",
            )
        ]
    )  # internal: not for Bitrix24
    conf = settings()
    assert notify.drain(transport(conf), conf, now=NOW + dt.timedelta(minutes=5)).sent == 5
    base = "/rest/1/s3cret"
    requests = [(path, body) for path, _, body in web.requests]
    assert requests[0] == (
        f"{base}/telephony.externalcall.register.json",
        {
            "USER_PHONE_INNER": "101",
            "PHONE_NUMBER": "+37061111111",
            "TYPE": 2,
            "CALL_START_DATE": requests[0][1]["CALL_START_DATE"],
            "CRM_CREATE": 1,
            "SHOW": 1,
        },
    )
    assert requests[1:] == [
        (
            f"{base}/telephony.externalcall.finish.json",
            {
                "CALL_ID": "externalCall.1a",
                "USER_PHONE_INNER": "102",
                "DURATION": 120,
                "STATUS_CODE": "200",
                "RECORD_URL": "https://rec.example.invalid/files/acme.example/2026/11/23/20261123T070942Z_c1_102.wav",
            },
        ),
        (
            f"{base}/telephony.externalcall.register.json",
            {
                "USER_PHONE_INNER": "101",
                "PHONE_NUMBER": "+37061111111",
                "TYPE": 2,
                "CALL_START_DATE": "2026-11-23T07:09:42Z",
                "CRM_CREATE": 1,
                "SHOW": 0,
                "LINE_NUMBER": "+37052000000",
            },
        ),
        (
            f"{base}/telephony.externalcall.finish.json",
            {
                "CALL_ID": "externalCall.2b",
                "USER_PHONE_INNER": "101",
                "DURATION": 0,
                "STATUS_CODE": "304",
                "FAILED_REASON": "missed",
            },
        ),
    ]
    assert all(ctype == "application/json; charset=utf-8" for _, ctype, _ in web.requests)
    assert [(c.call_uuid, c.external_id, c.finished) for c in CrmCall.select().order_by(CrmCall.id)] == [
        ("c1", "externalCall.1a", True),
        ("m-a", "externalCall.2b", True),
    ]


def test_bitrix24_error_reply_is_retried(db, web):
    make_tenant(db)
    notify.add_hook("acme.example", web.url + "/rest/1/s3cret", "bitrix24", allow=LOOPBACK)
    web.replies = [(200, {"error": "QUERY_LIMIT_EXCEEDED", "error_description": "Too many requests"})]
    cdr.ingest_hangups(missed_group_call())
    conf = settings()
    report = notify.drain(transport(conf), conf, now=NOW)
    assert report.errors == [
        "crm:m-a:finished:1: telephony.externalcall.register: QUERY_LIMIT_EXCEEDED: Too many requests"
    ]
    web.replies = [(200, {"result": {"CALL_ID": "externalCall.9"}}), (200, {"result": {}})]
    assert notify.drain(transport(conf), conf, now=NOW + dt.timedelta(seconds=30)).sent == 1
    assert len(web.requests) == 3


# --- CLI ----------------------------------------------------------------------------------------


def refused(fsctl, *args):
    result = fsctl(*args, ok=False)
    assert result.exit_code == 2, result.output
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1
    return lines[0]


def test_notify_cli(fsctl, smtp, web):
    fsctl.env["FSCTL_WEBHOOK_ALLOW_NETWORKS"] = "127.0.0.0/8"
    fsctl("tenant", "add", "acme.example", "--name", "ACME")
    fsctl("user", "add", "acme.example", "101", "--name", "Ona", "--email", "ona@acme.example")
    fsctl("user", "add", "acme.example", "102", "--name", "Jonas")
    fsctl("group", "add", "acme.example", "200", "--name", "Sales", "--member", "101", "--member", "102")
    fsctl("notify", "add", "acme.example", "--user", "101")
    fsctl("notify", "add", "acme.example", "--group", "200", "--channel", "webhook", "--to", web.url + "/g")
    assert (
        refused(fsctl, "notify", "add", "acme.example", "--user", "102")
        == 'Error: --to "": user 102 has no e-mail address: give one'
    )
    assert (
        refused(fsctl, "notify", "add", "acme.example", "--group", "200", "--channel", "webhook", "--to", "ftp://x")
        == 'Error: --to "ftp://x": must be an http:// or https:// URL'
    )
    assert (
        refused(fsctl, "notify", "add", "acme.example", "--user", "109")
        == 'Error: user "109" does not exist in acme.example'
    )
    assert (
        refused(fsctl, "notify", "add", "acme.example", "--user", "101")
        == "Error: user 101: this email notification already exists"
    )
    rules = json.loads(fsctl("notify", "list", "acme.example", "--json").stdout)
    assert rules == [
        {"id": 1, "scope": "user", "number": "101", "channel": "email", "address": ""},
        {"id": 2, "scope": "group", "number": "200", "channel": "webhook", "address": web.url + "/g"},
    ]
    fsctl("crm", "add", "acme.example", web.url + "/rest/1/x", "--mode", "bitrix24")
    assert json.loads(fsctl("crm", "list", "acme.example", "--json").stdout) == [
        {"id": 1, "mode": "bitrix24", "url": web.url + "/rest/1/x"}
    ]
    fsctl("crm", "remove", "acme.example", "1")
    assert refused(fsctl, "crm", "remove", "acme.example", "1") == 'Error: CRM hook "1" does not exist in acme.example'

    fsctl.env["FSCTL_SMTP_PORT"] = str(smtp.port)
    with fsctl_db(fsctl):
        cdr.ingest_hangups(missed_group_call())
    sent = json.loads(fsctl("notify", "send", "--json").stdout)
    assert (sent["sent"], sent["failed"]) == (2, 0)
    assert smtp.messages[0][0] == ["ona@acme.example"] and web.bodies()[0]["number"] == "200"
    outbox = json.loads(fsctl("notify", "outbox", "acme.example", "--json").stdout)
    assert [(o["key"], o["state"]) for o in outbox] == [("missed:m-a:2", "sent"), ("missed:m-a:1", "sent")]
    fsctl("notify", "remove", "acme.example", "2")
    assert refused(fsctl, "notify", "remove", "acme.example", "x") == 'Error: id "x": must be a whole number'
    assert [r.id for r in NotifyRule.select()] == [1]


class fsctl_db:
    """Bind the models to the CLI's database for a moment (to ingest as the service would)."""

    def __init__(self, fsctl):
        self.url = fsctl.url

    def __enter__(self):
        from fsctl.db import open_database

        open_database(self.url)

    def __exit__(self, *exc):
        from fsctl.db import close_database

        close_database()


def test_notify_send_exits_1_when_a_delivery_fails_for_good(fsctl):
    fsctl.env["FSCTL_WEBHOOK_ALLOW_NETWORKS"] = "127.0.0.0/8"
    fsctl("tenant", "add", "acme.example", "--name", "ACME")
    fsctl("user", "add", "acme.example", "101", "--name", "Ona")
    closed = f"http://127.0.0.1:{free_port()}/nobody"
    fsctl("notify", "add", "acme.example", "--user", "101", "--channel", "webhook", "--to", closed)
    with fsctl_db(fsctl):
        cdr.ingest_hangups(
            [a_leg("u-a", route="user:101", dest="101", cause="USER_NOT_REGISTERED", disposition="send_refuse")]
        )
    fsctl.env["FSCTL_NOTIFY_MAX_ATTEMPTS"] = "1"
    result = fsctl("notify", "send", ok=False)
    assert result.exit_code == 1
    lines = result.stderr.strip().splitlines()
    assert lines[0] == "0 sent, 0 to retry, 1 failed"
    assert lines[1].startswith(f"  missed:u-a:1: POST {closed}: ")
    assert lines[-1] == "Error: 1 deliveries failed for good (fsctl notify outbox --state failed)"
    assert json.loads(fsctl("notify", "outbox", "--state", "failed", "--json").stdout)[0]["attempts"] == 1


def test_import_queues_notifications_unless_told_not_to(fsctl, tmp_path):
    from tests.fsctl.services.test_cdr import DATA

    fsctl("tenant", "add", "acme.example", "--name", "ACME")
    for n in ("101", "102"):
        fsctl("user", "add", "acme.example", n, "--name", f"User {n}", "--email", f"u{n}@acme.example")
    fsctl("notify", "add", "acme.example", "--user", "101")
    fsctl("cdr", "import", str(DATA), "--no-notify", ok=False)
    assert json.loads(fsctl("notify", "outbox", "--json").stdout) == []
    with fsctl_db(fsctl):
        CallRecordModel.delete().execute()
    fsctl("cdr", "import", str(DATA), ok=False)
    outbox = json.loads(fsctl("notify", "outbox", "--json").stdout)
    assert [(o["key"], o["target"]) for o in outbox] == [
        ("missed:5d0e2a1c-0000-4000-8000-000000000002:1", "u101@acme.example")
    ]


def test_every_new_command_has_help(fsctl):
    for args in (
        ("cdr",),
        ("cdr", "list"),
        ("cdr", "import"),
        ("notify",),
        ("notify", "add"),
        ("notify", "send"),
        ("notify", "outbox"),
        ("crm", "add"),
        ("stats",),
        ("stats", "users"),
        ("stats", "report"),
    ):
        result = fsctl(*args, "--help")
        assert result.exit_code == 0 and "Usage:" in result.stdout


# --- hardening: poisoned rows, deadlines, targets, secrets ---------------------------------------


class RawServer:
    """A TCP server on loopback answering each connection with `answer(conn)` (anything, not only HTTP)."""

    def __init__(self, answer):
        import socket

        self.sock = socket.socket()
        self.sock.bind(("127.0.0.1", 0))
        self.sock.listen(16)
        self.port = self.sock.getsockname()[1]
        self.url = f"http://127.0.0.1:{self.port}"
        self.answer, self.requests, self.stop = answer, [], threading.Event()
        self.thread = threading.Thread(target=self._serve, daemon=True)
        self.thread.start()

    def _serve(self):
        while not self.stop.is_set():
            try:
                conn, _ = self.sock.accept()
            except OSError:
                return
            threading.Thread(target=self._one, args=(conn,), daemon=True).start()

    def _one(self, conn):
        with conn:
            conn.settimeout(30)
            try:
                data = b""
                while b"\r\n\r\n" not in data:
                    chunk = conn.recv(65536)
                    if not chunk:
                        return
                    data += chunk
                self.requests.append(data.split(b"\r\n", 1)[0].decode())
                self.answer(conn, self.stop)
            except OSError:
                pass

    def close(self):
        self.stop.set()
        self.sock.close()


@pytest.fixture
def raw_servers():
    made = []

    def make(answer):
        made.append(RawServer(answer))
        return made[-1]

    yield make
    for server in made:
        server.close()


def garbage(conn, stop):
    conn.sendall(b"this is not HTTP at all\r\n\r\n")


def cut_short(conn, stop):
    conn.sendall(b'HTTP/1.1 200 OK\r\nContent-Length: 1000\r\n\r\n{"ok"')  # IncompleteRead for urllib


def drip(conn, stop):
    conn.sendall(b"HTTP/1.1 200 OK\r\n")
    while not stop.wait(0.2):  # a byte every 0.2 s, for as long as the client listens
        conn.sendall(b"X")


def test_a_poisoned_row_fails_alone_and_ends_failed(db, smtp, raw_servers, web):
    """A caller number with CR/LF or a name with U+2028 raised in the e-mail header, a webhook answering
    garbage raised in urllib: `notify send` stopped for everyone and the row was claimed again forever."""
    make_tenant(db)
    bad_http, cut = raw_servers(garbage), raw_servers(cut_short)
    notify.add_rule("acme.example", "user", "101", "email")
    notify.add_rule("acme.example", "group", "200", "webhook", bad_http.url + "/g", allow=LOOPBACK)
    notify.add_hook("acme.example", cut.url + "/crm", allow=LOOPBACK)
    notify.add_hook("acme.example", web.url + "/crm", allow=LOOPBACK)
    call = missed_group_call()
    call[-1]["Caller-Caller-ID-Number"] = "+37061111111\r\nBcc: victim@example.invalid"
    call[-1]["variable_effective_caller_id_name"] = "Jo\u2028nas\r\nX-Evil: 1"
    cdr.ingest_hangups(call)
    Outbox.create(
        tenant=Outbox.get().tenant,
        key="poisoned",
        channel="webhook",
        target=web.url + "/p",
        payload="{not json",
        next_attempt_at=NOW,
    )
    conf = settings(smtp)
    first = notify.drain(transport(conf), conf, now=NOW)
    assert (first.sent, first.retried) == (2, 3)  # the e-mail and the good hook; three failed attempts
    assert sorted(e.split(": ", 1)[0] for e in first.errors) == ["crm:m-a:finished:1", "missed:m-a:2", "poisoned"]
    errors = {e.split(": ", 1)[0]: e.split(": ", 1)[1] for e in first.errors}
    assert errors["missed:m-a:2"] == f"POST {bad_http.url}/g: not an HTTP answer: 'this is not HTTP at all'"
    assert errors["crm:m-a:finished:1"] == f"POST {cut.url}/crm: the answer ended early (5 of 1000 bytes)"
    assert errors["poisoned"].startswith("JSONDecodeError: ")
    [(rcpt, message)] = smtp.messages
    assert rcpt == ["u101@acme.example"]
    # (the number kept to its 32 characters by the call records, each line break a blank)
    assert message["Subject"] == "Missed call from +37061111111 Bcc: victim@exampl (Jo nas X-Evil: 1)"
    assert message["Bcc"] is None and message["X-Evil"] is None
    when = NOW
    for _ in range(2):  # notify_max_attempts = 3: the bad rows end failed, nothing else is sent again
        when += dt.timedelta(hours=2)
        notify.drain(transport(conf), conf, now=when)
    states = {o.key: (o.state, o.attempts) for o in Outbox.select()}
    assert states == {
        "missed:m-a:1": ("sent", 1),
        "missed:m-a:2": ("failed", 3),
        "crm:m-a:finished:1": ("failed", 3),
        "crm:m-a:finished:2": ("sent", 1),
        "poisoned": ("failed", 3),
    }
    assert notify.drain(transport(conf), conf, now=when + dt.timedelta(days=1)).errors == []
    assert len(smtp.messages) == 1 and len(web.requests) == 1


def silent(conn, stop):
    stop.wait(120)  # takes the request, never answers


@pytest.mark.parametrize("answer", [drip, silent])
def test_one_deadline_per_delivery_shorter_than_the_claim(db, raw_servers, answer):
    """A server dripping a byte a second held a send for 80 s (the timeout was per read), past the 60 s claim.
    A server that takes the request and never answers is cut off at the same deadline."""
    import time

    make_tenant(db)
    slow = raw_servers(answer)
    notify.add_rule("acme.example", "user", "102", "webhook", slow.url + "/slow", allow=LOOPBACK)
    cdr.ingest_hangups(missed_group_call())
    conf = settings(notify_timeout=1.0)
    assert notify.outbox.claim_seconds(conf) >= 60 > conf.notify_timeout
    started = time.monotonic()
    report = notify.drain(transport(conf), conf, now=NOW)
    elapsed = time.monotonic() - started
    assert report.errors == [f"missed:m-a:1: POST {slow.url}/slow: no complete answer within the deadline"]
    assert elapsed < 30  # one second of deadline; the server would drip for as long as it is read
    assert Outbox.get().next_attempt_at == NOW + dt.timedelta(seconds=30)  # backoff, not the claim


@pytest.mark.parametrize(
    "url",
    [
        "http://169.254.169.254/latest/meta-data/",
        "http://[::1]:8080/admin",
        "http://0x7f000001/",
        "http://127.1/",
        "http://2130706433/",
        "http://localhost:9000/",
        "http://10.1.2.3/",
        "http://192.168.0.1/",
        "http://[::ffff:127.0.0.1]/",
        "http://0.0.0.0/",
        "https://[fe80::1]/",
    ],
)
def test_webhook_targets_must_be_public(db, url):
    make_tenant(db)
    with pytest.raises(ValidationError) as err:
        notify.add_rule("acme.example", "user", "101", "webhook", url)
    assert err.value.rule.startswith("must be a public address")
    with pytest.raises(ValidationError):
        notify.add_hook("acme.example", url)
    if "169.254" not in url and "[" not in url and "192.168" not in url and "10.1" not in url and "0.0.0.0" not in url:
        notify.add_rule("acme.example", "user", "101", "webhook", url, allow=LOOPBACK)  # allowed by the setting
    with pytest.raises(ValidationError):
        notify.add_hook("acme.example", "http://169.254.169.254/", allow=LOOPBACK)  # still not that one
    assert notify.add_hook("acme.example", "https://crm.example.invalid/hook").url == "https://crm.example.invalid/hook"


def test_webhook_policy_on_the_command_line(fsctl):
    fsctl("tenant", "add", "acme.example", "--name", "ACME")
    fsctl("user", "add", "acme.example", "101", "--name", "Ona")
    assert refused(
        fsctl,
        "notify",
        "add",
        "acme.example",
        "--user",
        "101",
        "--channel",
        "webhook",
        "--to",
        "http://169.254.169.254/latest",
    ) == (
        'Error: --to "http://169.254.169.254/latest": must be a public address (loopback, private and link-local '
        "ones only when webhook_allow_networks holds them)"
    )
    assert refused(
        fsctl, "crm", "add", "acme.example", "http://127.0.0.1:8080/rest/1/s3cret", "--mode", "bitrix24"
    ) == (
        'Error: --url "http://127.0.0.1:8080/rest/1/***": must be a public address (loopback, private and '
        "link-local ones only when webhook_allow_networks holds them)"
    )
    fsctl.env["FSCTL_WEBHOOK_ALLOW_NETWORKS"] = "127.0.0.0/8"
    fsctl("crm", "add", "acme.example", "http://127.0.0.1:8080/rest/1/s3cret", "--mode", "bitrix24")
    fsctl.env["FSCTL_WEBHOOK_ALLOW_NETWORKS"] = "127.0.0.0/33"
    assert (
        refused(fsctl, "crm", "list", "acme.example")
        == 'Error: setting webhook_allow_networks "127.0.0.0/33": must be networks like 127.0.0.0/8, comma-separated'
    )


def test_delivery_checks_the_address_and_never_follows_a_redirect(db, raw_servers):
    """A 303 made urllib GET an internal admin page on another local port; a row queued before the
    policy (or a name resolving to a private address) is checked when it is sent."""
    make_tenant(db)
    admin = raw_servers(lambda conn, stop: conn.sendall(b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\n{}"))

    def redirect(conn, stop):
        conn.sendall(
            f"HTTP/1.1 303 See Other\r\nLocation: {admin.url}/internal-admin\r\nContent-Length: 0\r\n\r\n".encode()
        )

    moved = raw_servers(redirect)
    notify.add_rule("acme.example", "user", "101", "webhook", moved.url + "/m", allow=LOOPBACK)
    notify.add_rule("acme.example", "user", "102", "webhook", admin.url + "/direct", allow=LOOPBACK)
    cdr.ingest_hangups(missed_group_call())
    strict = settings(webhook_allow_networks="")  # the policy without the loopback allowance
    report = notify.drain(transport(strict), strict, now=NOW)
    assert sorted(report.errors) == [
        f"missed:m-a:1: POST {moved.url}/m: 127.0.0.1 is not a public address (allow its network with "
        "webhook_allow_networks)",
        f"missed:m-a:2: POST {admin.url}/direct: 127.0.0.1 is not a public address (allow its network with "
        "webhook_allow_networks)",
    ]
    assert moved.requests == [] and admin.requests == []
    conf = settings()
    report = notify.drain(transport(conf), conf, now=NOW + dt.timedelta(hours=1))
    assert report.errors == [f"missed:m-a:1: POST {moved.url}/m: HTTP 303 (redirects are not followed)"]
    assert moved.requests == ["POST /m HTTP/1.1"] and admin.requests == ["POST /direct HTTP/1.1"]


def test_bitrix24_webhook_code_never_shown(fsctl, web):
    """The Bitrix24 code is the hook's password: it appeared in errors and in `notify outbox`."""
    fsctl.env["FSCTL_WEBHOOK_ALLOW_NETWORKS"] = "127.0.0.0/8"
    fsctl("tenant", "add", "acme.example", "--name", "ACME")
    fsctl("user", "add", "acme.example", "101", "--name", "Ona")
    fsctl("user", "add", "acme.example", "102", "--name", "Jonas")
    fsctl("group", "add", "acme.example", "200", "--name", "Sales", "--member", "101", "--member", "102")
    fsctl("crm", "add", "acme.example", web.url + "/rest/7/s3cr3tc0de", "--mode", "bitrix24")
    fsctl(
        "notify",
        "add",
        "acme.example",
        "--user",
        "101",
        "--channel",
        "webhook",
        "--to",
        web.url + "/hook?token=t0ps3cret",
    )
    web.replies = [(500, {})] * 2
    with fsctl_db(fsctl):
        cdr.ingest_hangups(missed_group_call())
    result = fsctl("notify", "send", ok=False)
    outbox = fsctl("notify", "outbox", "acme.example", "--json").stdout
    for text in (result.stderr, outbox):
        assert "s3cr3tc0de" not in text and "t0ps3cret" not in text
    assert f"POST {web.url}/rest/7/***/telephony.externalcall.register.json: HTTP 500" in result.stderr
    assert f"{web.url}/hook?***" in outbox


class SilentNameServer:
    """A name server on loopback (UDP) that takes every query and never answers. `resolver` is
    getaddrinfo's stand-in the transport is given: it sends the query there, as the C library's
    resolver would, and waits for the answer with no timeout of its own (no real name is looked up)."""

    def __init__(self):
        import socket

        self.sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        self.sock.bind(("127.0.0.1", 0))
        self.clients, self.answered = [], threading.Event()

    def resolver(self, host, port, *args, **kwargs):
        import socket

        client = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        client.bind(("127.0.0.1", 0))
        self.clients.append(client)
        query = b"\x12\x34\x01\x00\x00\x01\x00\x00\x00\x00\x00\x00"  # id, recursion desired, one question
        query += b"".join(bytes([len(label)]) + label.encode() for label in host.split(".")) + b"\x00\x00\x01\x00\x01"
        client.sendto(query, self.sock.getsockname())
        client.settimeout(40)  # a look-up left unbounded by the code under test fails the test in 40 s
        try:
            client.recvfrom(512)  # the name server's answer: none comes until the test releases it
        except TimeoutError:
            raise OSError("the name server did not answer in 40 s") from None
        self.answered.set()
        raise OSError("released by the test")

    def questions(self) -> list[str]:
        """The names asked so far (each query's QNAME)."""
        self.sock.settimeout(5)
        names = []
        for _ in self.clients:
            data, _ = self.sock.recvfrom(512)
            labels, at = [], 12
            while data[at]:
                labels.append(data[at + 1 : at + 1 + data[at]].decode())
                at += 1 + data[at]
            names.append(".".join(labels))
        return names

    def close(self):
        for client in self.clients:  # the resolver threads end
            self.sock.sendto(b"released", client.getsockname())
        self.sock.close()


def test_webhook_name_lookup_is_within_the_deadline(db):
    """getaddrinfo had no bound: a name whose name servers did not answer held the delivery as long as the
    resolver tried, past the outbox claim. The look-up gets what is left of the delivery's deadline."""
    import time

    make_tenant(db)
    dns = SilentNameServer()
    notify.add_rule("acme.example", "user", "102", "webhook", "http://crm.example.invalid/hook")
    cdr.ingest_hangups(missed_group_call())
    conf = settings(notify_timeout=1.0)
    started = time.monotonic()
    try:
        report = notify.drain(notify.Transport(timeout=1.0, resolver=dns.resolver), conf, now=NOW)
        elapsed = time.monotonic() - started
        assert not dns.answered.is_set()  # returned while the look-up still waited for the name server
        assert dns.questions() == ["crm.example.invalid"]
    finally:
        dns.close()
    assert report.errors == [
        "missed:m-a:1: POST http://crm.example.invalid/hook: crm.example.invalid: no address within the deadline"
    ]
    assert elapsed < 30 and Outbox.get().state == "pending" and Outbox.get().attempts == 1


def test_webhook_name_resolving_to_a_private_address_is_refused(db, web):
    make_tenant(db)
    notify.add_rule("acme.example", "user", "102", "webhook", "http://crm.example.invalid/hook")
    cdr.ingest_hangups(missed_group_call())

    def to_the_test_server(host, port, *args, **kwargs):  # the name "resolves" to the local test server
        import socket

        return [(socket.AF_INET, socket.SOCK_STREAM, 6, "", ("127.0.0.1", web.server.server_address[1]))]

    conf = settings(notify_timeout=5.0)
    report = notify.drain(notify.Transport(resolver=to_the_test_server), conf, now=NOW)
    assert report.errors == [
        "missed:m-a:1: POST http://crm.example.invalid/hook: crm.example.invalid is 127.0.0.1: "
        "not a public address (allow its network with webhook_allow_networks)"
    ]
    report = notify.drain(
        notify.Transport(resolver=to_the_test_server, allow=LOOPBACK), conf, now=NOW + dt.timedelta(hours=1)
    )
    assert report.sent == 1 and web.requests[0][0] == "/hook"


class StallingSmtp:
    """An SMTP server on loopback that accepts a connection and then never greets (`silent`) or greets a
    byte every 0.2 s, never a whole line (`drip`), until stopped."""

    def __init__(self, how):
        import socket

        self.sock = socket.socket()
        self.sock.bind(("127.0.0.1", 0))
        self.sock.listen(4)
        self.port = self.sock.getsockname()[1]
        self.how, self.stop, self.connections = how, threading.Event(), 0
        threading.Thread(target=self._serve, daemon=True).start()

    def _serve(self):
        try:
            conn, _ = self.sock.accept()
        except OSError:
            return
        self.connections += 1
        with conn:
            try:
                if self.how == "silent":
                    self.stop.wait(120)
                    return
                for byte in b"220 slow.example.invalid ESMTP" * 10:
                    if self.stop.wait(0.2):  # each read gets one byte well within any per-read timeout
                        return
                    conn.sendall(bytes([byte]))
            except OSError:
                pass

    def close(self):
        self.stop.set()
        self.sock.close()


@pytest.mark.parametrize("how", ["silent", "drip", "silent name server"])
def test_email_delivery_has_one_deadline(db, how):
    """smtplib's timeout is per socket operation: a server greeting a byte every 0.2 s held the delivery for a
    minute with a 1 s timeout, and the look-up of smtp_host had no bound at all. The whole session (look-up,
    connection, every reply) has one deadline, shorter than the claim."""
    import time

    make_tenant(db)
    User.update(email="u102@acme.example").where(User.number == "102").execute()
    notify.add_rule("acme.example", "user", "102", "email")
    cdr.ingest_hangups(missed_group_call())
    server, dns = StallingSmtp("drip" if how == "drip" else "silent"), SilentNameServer()
    conf = settings(server, notify_timeout=1.0)
    assert notify.outbox.claim_seconds(conf) >= 60 > conf.notify_timeout
    host = "mail.example.invalid" if how == "silent name server" else "127.0.0.1"
    mail = notify.Transport(host, server.port, timeout=1.0, resolver=dns.resolver)
    started = time.monotonic()
    try:
        report = notify.drain(mail, conf, now=NOW)
        elapsed = time.monotonic() - started
        assert not server.stop.is_set() and not dns.answered.is_set()  # returned while the servers still stalled
        if how == "silent name server":
            assert dns.questions() == ["mail.example.invalid"] and server.connections == 0
        else:
            assert server.connections == 1
    finally:
        server.close()
        dns.close()
    assert report.errors == [f"missed:m-a:1: smtp {host}:{server.port}: not done within the deadline (1 s)"]
    assert elapsed < 30 and Outbox.get().state == "pending" and Outbox.get().attempts == 1
