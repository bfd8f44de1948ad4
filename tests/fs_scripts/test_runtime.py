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
    a = a_leg("call-1", caller="+37061111111", did="+37052000000", route="user:102", start=start, answer=answered,
              end=end, bridged_to="b-1", bridged_user="102")
    a["variable_fsctl_recording_path"] = str(root / rel)
    batch = [b_leg("b-1", "call-1", "102", start=start, answer=answered, end=end), a]
    for sink in runtime.hangup_sinks(settings):
        sink(batch)
    recording = Recording.get()
    assert (recording.path, recording.user_number, recording.direction, recording.counterpart) == (
        rel, "102", "in", "+37061111111")
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
