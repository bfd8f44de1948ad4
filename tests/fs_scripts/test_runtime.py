"""The running service's sinks: hang-ups become catalogued recordings and linked call records."""

import dataclasses
import datetime as dt
import os

from fs_scripts import runtime
from fsctl.config import Settings
from fsctl.model import CallRecord, Recording, Tenant
from tests.fsctl.services.test_cdr import a_leg, b_leg, make_tenant
from tests.fsctl.services.test_notify import smtp  # noqa: F401 (the fixture)
from tests.fsctl.services.test_recordings import write_wav


def test_hangups_catalogue_the_recording_then_link_the_call(sdb, tmp_path):
    make_tenant(sdb)
    root = tmp_path / "recordings"
    settings = dataclasses.replace(Settings(), recordings_dir=str(root))
    start = dt.datetime(2026, 11, 10, 8, 0)
    rel = "acme.example/2026/11/10/20261110T080000Z_102_in_+37061111111_call-1.wav"
    write_wav(os.path.join(root, rel), seconds=5)
    answered = start + dt.timedelta(seconds=3)
    end = start + dt.timedelta(seconds=60)
    a = a_leg(
        "call-1",
        caller="+37061111111",
        did="+37052000000",
        route="user:102",
        start=start,
        answer=answered,
        end=end,
        bridged_to="b-1",
        bridged_user="102",
    )
    a["variable_fsctl_recording_path"] = str(root / rel)
    batch = [b_leg("b-1", "call-1", "102", start=start, answer=answered, end=end), a]
    for sink in runtime.hangup_sinks(settings):
        sink(batch)
    recording = Recording.get()
    assert (recording.path, recording.user_number, recording.direction, recording.counterpart) == (
        rel,
        "102",
        "in",
        "+37061111111",
    )
    assert recording.duration == 5.0 and len(recording.sha256) == 64
    call = CallRecord.get(CallRecord.uuid == "call-1")
    assert call.recording_id == recording.id and call.status == "answered"
    # The same events again (a replay) change nothing.
    for sink in runtime.hangup_sinks(settings):
        sink(batch)
    assert Recording.select().count() == 1 and CallRecord.select().count() == 1


def test_the_service_of_a_node_catalogues_its_recordings_on_that_node(sdb, tmp_path):
    """`fs-scripts run --node fs2`: the recording is on fs2's disk, and the catalogue says so; the call ran there."""
    from fsctl.services import nodes

    make_tenant(sdb)
    nodes.add_node("fs2", "127.0.0.1:8021", "127.0.0.1:5060", recordings_dir=str(tmp_path / "fs2-recordings"))
    from fsctl.services.nodeapply import node_settings

    settings = node_settings(Settings(recordings_dir=str(tmp_path / "elsewhere")), nodes.get_node("fs2"))
    assert settings.recordings_dir == str(tmp_path / "fs2-recordings")
    rel = "acme.example/2026/11/10/20261110T080000Z_102_in_+37061111111_call-9.wav"
    write_wav(os.path.join(settings.recordings_dir, rel), seconds=4)
    a = a_leg("call-9", caller="+37061111111", did="+37052000000", route="user:102")
    a["variable_fsctl_recording_path"] = os.path.join(settings.recordings_dir, rel)
    for sink in runtime.hangup_sinks(settings, node="fs2"):
        sink([a])
    assert (Recording.get().path, Recording.get().node) == (rel, "fs2")
    assert [(c.uuid, c.node, c.recording_id) for c in CallRecord.select()] == [("call-9", "fs2", Recording.get().id)]


def test_a_path_outside_the_folder_is_skipped(sdb, tmp_path):
    make_tenant(sdb)
    settings = dataclasses.replace(Settings(), recordings_dir=str(tmp_path / "recordings"))
    outside = tmp_path / "elsewhere.wav"
    write_wav(str(outside))
    a = a_leg("call-2", route="user:102")
    a["variable_fsctl_recording_path"] = str(outside)
    runtime.hangup_sinks(settings)[0]([a])
    assert Recording.select().count() == 0
    assert Tenant.select().count() >= 1


def test_the_service_delivers_e_mail_through_the_configured_server(sdb, smtp):  # noqa: F811 (the fixture)
    """The service built its transport as Transport(settings): the settings object as SMTP host, every e-mail failed."""
    from fsctl.model import NotifyRule, Outbox
    from fsctl.services import cdr
    from tests.fsctl.services.test_notify import missed_group_call

    tenant = make_tenant(sdb)
    NotifyRule.create(tenant=tenant, scope="user", number="101", channel="email", address="ona@acme.example")
    cdr.ingest_hangups(missed_group_call())
    Outbox.update(next_attempt_at=dt.datetime(2000, 1, 1)).execute()  # due now
    settings = dataclasses.replace(Settings(), smtp_port=smtp.port)
    report = runtime.deliverer(settings)()
    assert (report.sent, report.errors) == (1, [])
    assert smtp.messages[0][0] == ["ona@acme.example"]


def test_the_services_delivery_round_mails_a_missed_call_in_the_tenants_time_zone(sdb, smtp):  # noqa: F811 (the fixture)
    """Issue 11: every delivery round of fs-scripts failed (the settings object was handed to
    notify.Transport as the SMTP host). The round the service runs sends the e-mail, its time read
    in the tenant's zone (the capture's call started 2026-11-23 07:09:42 UTC: 09:09:42 in Vilnius)."""
    from fsctl.db import transaction
    from fsctl.services import cdr, notify
    from tests.fsctl.services.test_notify import missed_group_call

    make_tenant(sdb)
    with transaction():
        notify.add_rule("acme.example", "user", "101", "email")
    cdr.ingest_hangups(missed_group_call(), notifier=notify.enqueue_for_calls)
    settings = dataclasses.replace(Settings(), smtp_port=smtp.port, notify_timeout=5.0)
    report = runtime.deliverer(settings)()
    assert (report.sent, report.errors) == (1, [])
    [(rcpt, message)] = smtp.messages
    assert rcpt == ["u101@acme.example"]
    assert "When: 2026-11-23 09:09:42 EET" in message.get_content()


def test_the_call_records_wait_for_a_writer_instead_of_failing(sdb, sqlite_url, tmp_path):
    """Seen on the live switch: fs-scripts' call records failed with "database is locked" while fsctl
    provisioned. A deferred transaction that read, then writes after another connection committed,
    fails at once (WAL); the sinks take the write lock when they begin, and wait for it."""
    import sqlite3
    import threading
    import time

    from fsctl.db import sqlite_path

    make_tenant(sdb)
    other = sqlite3.connect(sqlite_path(sqlite_url), timeout=10, check_same_thread=False, isolation_level=None)
    other.execute("BEGIN IMMEDIATE")  # fsctl in the middle of a command
    other.execute("UPDATE tenant SET revision = revision + 1")

    def commit_soon():
        time.sleep(0.5)
        other.execute("COMMIT")

    threading.Thread(target=commit_soon).start()
    start = dt.datetime(2026, 11, 10, 8, 0)
    batch = [
        b_leg("b-9", "call-9", "102", start=start, end=start + dt.timedelta(seconds=9)),
        a_leg(
            "call-9",
            caller="+37061111111",
            did="+37052000000",
            route="user:102",
            start=start,
            end=start + dt.timedelta(seconds=9),
        ),
    ]
    sink = runtime.hangup_sinks(dataclasses.replace(Settings(), recordings_dir=str(tmp_path)))[1]
    sink(batch)
    assert CallRecord.get(CallRecord.uuid == "call-9").status
