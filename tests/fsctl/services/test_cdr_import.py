"""The call log's safety net: `fsctl cdr import DIR --move-to ARCHIVE --min-age S`, the mod_xml_cdr
snippet and the systemd timer that runs it (conf/).

The files are tests/data/xml_cdr: three calls (8b25adfa: 101 calls 102, answered; 5d0e...0001:
group 200 answered by 102; 5d0e...0002: group 200, missed by 101 and 102), five B-legs, and in
bad/ three files that cannot be imported.
"""

import errno
import json
import os
import re
import shlex
import shutil
import subprocess
import time
from pathlib import Path

import pytest
from lxml import etree

from fsctl.db import database
from fsctl.model import CallLeg, CallParty, CallRecord, Outbox
from fsctl.services import cdr, notify
from tests.fsctl.services.test_cdr import CAPTURE_A, CAPTURE_B, DATA, capture_events, make_tenant
from tests.fsctl.services.test_notify import fsctl_db

REPO = Path(__file__).resolve().parents[3]
CALL_1 = "5d0e2a1c-0000-4000-8000-000000000001"
CALL_2 = "5d0e2a1c-0000-4000-8000-000000000002"
GOOD = sorted(p.name for p in DATA.glob("*.cdr.xml"))
BAD = ["bad/no_start.cdr.xml", "bad/other_tenant.cdr.xml", "bad/truncated.cdr.xml"]
DIR = "/var/log/freeswitch/xml_cdr"


def copy_data(tmp_path, with_bad=True, name="xml_cdr"):
    target = tmp_path / name
    shutil.copytree(DATA, target, copy_function=shutil.copy)  # fresh times, as just written
    if not with_bad:
        shutil.rmtree(target / "bad")
    return target


def listing(folder):
    """Files below a folder, relative, sorted (fsctl's own dot files left out)."""
    folder = Path(folder)
    if not folder.is_dir():
        return []
    return sorted(
        str(p.relative_to(folder))
        for p in folder.rglob("*")
        if p.is_file() and not p.name.startswith(".fsctl-cdr-import.")
    )


def age(folder, when):
    for path in Path(folder).rglob("*.xml"):
        os.utime(path, (when, when))


def snapshot():
    """Everything an import writes: calls, legs, parties, queued notifications."""
    calls = sorted(
        (c.uuid, c.status, c.answered_by, c.missed_by, c.direction, c.duration, c.talk_time, c.complete)
        for c in CallRecord.select()
    )
    legs = sorted((l.call.uuid, l.uuid, l.user_number, l.result, l.talk_time) for l in CallLeg.select())
    parties = sorted(
        (p.call.uuid, p.user_number, p.received, p.answered, p.missed, p.placed, p.talk_time)
        for p in CallParty.select()
    )
    return calls, legs, parties, sorted(o.key for o in Outbox.select())


class Crash(BaseException):
    """The process dies (kill -9, power cut): nothing after it runs."""


# --- moving what was imported --------------------------------------------------------------


def test_move_to_moves_exactly_the_imported_files_and_rerunning_is_a_no_op(fsctl, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    fsctl("tenant", "add", "acme.example", "--name", "ACME")
    copy_data(tmp_path)
    result = fsctl("cdr", "import", "xml_cdr", "--move-to", "archive", ok=False)
    assert result.exit_code == 1
    assert result.stderr.splitlines() == [
        "11 files: 3 calls created, 0 updated, 5 legs, 3 failed, 0 skipped (too new), 8 moved to archive",
        '  xml_cdr/bad/no_start.cdr.xml: variable_start_epoch "": must be present (seconds since 1970)',
        '  xml_cdr/bad/other_tenant.cdr.xml: tenant "other.example": is not a tenant of this PBX',
        '  xml_cdr/bad/truncated.cdr.xml: xml "Premature end of data in tag variables line 10, line 15, column 1": '
        "must be well-formed XML (a mod_xml_cdr file)",
    ]
    assert listing("xml_cdr") == BAD  # the failed files stay where they were
    assert listing("archive") == GOOD  # same relative paths
    for name in GOOD:
        assert (tmp_path / "archive" / name).read_bytes() == (DATA / name).read_bytes()
    with fsctl_db(fsctl):
        before = snapshot()
    again = fsctl("cdr", "import", "xml_cdr", "--move-to", "archive", ok=False)
    assert again.exit_code == 1
    assert (
        again.stderr.splitlines()[0]
        == "3 files: 0 calls created, 0 updated, 0 legs, 3 failed, 0 skipped (too new), 0 moved to archive"
    )
    with fsctl_db(fsctl):
        assert snapshot() == before
    assert listing("xml_cdr") == BAD and listing("archive") == GOOD


def test_json_report_has_stable_keys(fsctl, tmp_path):
    fsctl("tenant", "add", "acme.example", "--name", "ACME")
    directory = copy_data(tmp_path, with_bad=False)
    archive = tmp_path / "archive"
    result = fsctl("cdr", "import", str(directory), "--move-to", str(archive), "--archive-keep-days", "30", "--json")
    assert json.loads(result.stdout) == {
        "files": 8,
        "calls_created": 3,
        "calls_updated": 0,
        "legs": 5,
        "failed": [],
        "skipped_too_new": [],
        "moved": 8,
        "not_moved": [],
        "archive_deleted": 0,
    }
    assert result.stderr == ""


def test_the_service_and_the_files_make_the_same_call(db, tmp_path):
    """A call the service recorded is imported again from its files: merged, nothing changes."""
    make_tenant(db)
    cdr.ingest_hangups(capture_events())  # as fs-scripts does
    recorded = snapshot()
    directory = tmp_path / "xml_cdr"
    directory.mkdir()
    for name in (f"a_{CAPTURE_A}.cdr.xml", f"b_{CAPTURE_B}.cdr.xml"):
        shutil.copy(DATA / name, directory / name)
    result = cdr.import_xml_cdr_dir(directory, move_to=tmp_path / "archive")
    assert (result.calls_created, result.calls_updated, result.moved, result.failed) == (0, 1, 2, [])
    assert snapshot() == recorded


def test_freeswitch_file_names_and_subfolders(db, tmp_path):
    """mod_xml_cdr names files a_<uuid>.cdr.xml / <uuid>.cdr.xml; the parser reads variables, not names."""
    make_tenant(db)
    directory = tmp_path / "xml_cdr"
    rotated = directory / "2026-11-23-09-00-00"  # rotate=true makes dated folders
    rotated.mkdir(parents=True)
    for name in GOOD:
        shutil.copy(DATA / name, rotated / (name[2:] if name.startswith("b_") else name))
    archive = tmp_path / "archive"
    result = cdr.import_xml_cdr_dir(directory, move_to=archive)
    assert (result.files, result.calls_created, result.legs, result.moved, result.failed) == (8, 3, 5, 8, [])
    assert listing(archive) == sorted(f"2026-11-23-09-00-00/{n[2:] if n.startswith('b_') else n}" for n in GOOD)
    assert listing(directory) == []
    assert {c.uuid: c.status for c in CallRecord.select()} == {
        CAPTURE_A: "answered",
        CALL_1: "answered",
        CALL_2: "missed",
    }


# --- a crash between the commit and the moves ----------------------------------------------


def test_crash_after_the_commit_loses_nothing_and_notifies_once(db, tmp_path):
    make_tenant(db)
    rule = notify.add_rule("acme.example", "user", "101", "email")
    directory, archive = copy_data(tmp_path, with_bad=False), tmp_path / "archive"
    moved = []

    def move_then_die(source, target):
        if len(moved) == 2:
            raise Crash()
        cdr.move_file(source, target)
        moved.append(source.name)

    with pytest.raises(Crash):
        cdr.import_xml_cdr_dir(directory, move_to=archive, move=move_then_die)
    crashed = snapshot()
    calls, legs, _, outbox = crashed
    assert [c[:4] for c in calls] == [
        (CALL_1, "answered", "102", ""),
        (CALL_2, "missed", None, "101,102"),
        (CAPTURE_A, "answered", "102", ""),
    ]
    assert len(legs) == 5 and outbox == [f"missed:{CALL_2}:{rule.id}"]
    assert moved == [f"a_{CALL_1}.cdr.xml", "b_7f1c0e9a-0000-4000-8000-000000000011.cdr.xml"]
    assert len(listing(directory)) == 6  # imported, not moved

    completed = []

    def notifier(ids):
        completed.extend(ids)
        notify.enqueue_for_calls(ids)

    again = cdr.import_xml_cdr_dir(directory, move_to=archive, notifier=notifier)
    # call 1 (its last B-leg), call 2 and the capture's call are imported again as updates
    assert (again.files, again.calls_created, again.calls_updated, again.moved, again.failed) == (6, 0, 3, 6, [])
    assert completed == []  # no call completed a second time: no second notification
    assert snapshot() == crashed
    assert listing(directory) == [] and listing(archive) == GOOD


def test_crash_before_the_commit_moves_nothing(db, tmp_path):
    make_tenant(db)
    directory, archive = copy_data(tmp_path, with_bad=False), tmp_path / "archive"

    def die(ids):
        raise Crash()

    with pytest.raises(Crash):
        cdr.import_xml_cdr_dir(directory, move_to=archive, notifier=die)
    assert CallRecord.select().count() == 0 and listing(directory) == GOOD and listing(archive) == []
    result = cdr.import_xml_cdr_dir(directory, move_to=archive)
    assert (result.calls_created, result.moved) == (3, 8)


def test_a_file_that_cannot_be_moved_is_reported_and_imported_again(fsctl, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    fsctl("tenant", "add", "acme.example", "--name", "ACME")
    copy_data(tmp_path, with_bad=False)
    blocker = tmp_path / "archive" / f"a_{CALL_1}.cdr.xml"
    (blocker / "x").mkdir(parents=True)  # a folder where the file should go
    result = fsctl("cdr", "import", "xml_cdr", "--move-to", "archive", ok=False)
    assert result.exit_code == 1
    assert result.stderr.splitlines() == [
        "8 files: 3 calls created, 0 updated, 5 legs, 0 failed, 0 skipped (too new), 7 moved to archive",
        f"  xml_cdr/a_{CALL_1}.cdr.xml: imported, not moved (Is a directory); the next run imports it again",
    ]
    shutil.rmtree(blocker)
    again = fsctl("cdr", "import", "xml_cdr", "--move-to", "archive")
    assert again.stderr.splitlines() == [
        "1 files: 0 calls created, 1 updated, 2 legs, 0 failed, 0 skipped (too new), 1 moved to archive"
    ]
    assert listing("xml_cdr") == [] and listing("archive") == GOOD


def test_move_across_file_systems_copies_durably_then_unlinks(tmp_path):
    source, target = tmp_path / "in" / "a.cdr.xml", tmp_path / "out" / "sub" / "a.cdr.xml"
    source.parent.mkdir()
    source.write_bytes(b"<cdr/>")
    os.utime(source, (1_000_000_000, 1_000_000_000))

    def other_device(src, dst):
        raise OSError(errno.EXDEV, "Invalid cross-device link")

    cdr.move_file(source, target, rename=other_device)
    assert not source.exists() and target.read_bytes() == b"<cdr/>"
    assert target.stat().st_mtime == 1_000_000_000  # retention counts from when FreeSWITCH wrote it
    assert sorted(os.listdir(target.parent)) == ["a.cdr.xml"]  # no .part left

    source.write_bytes(b"<cdr/>")

    def refused(src, dst):
        raise PermissionError(errno.EACCES, "Permission denied")

    with pytest.raises(PermissionError):
        cdr.move_file(source, target, rename=refused)
    assert source.exists()


# --- files still being written ----------------------------------------------------------------


def test_min_age_leaves_young_files_and_their_call_for_the_next_run(db, tmp_path):
    make_tenant(db)
    directory, archive = copy_data(tmp_path, with_bad=False), tmp_path / "archive"
    now = time.time()
    age(directory, now - 3600)
    young = directory / "b_7f1c0e9a-0000-4000-8000-000000000012.cdr.xml"  # a leg of call 1
    os.utime(young, (now - 10, now - 10))
    half = directory / "a_5d0e2a1c-0000-4000-8000-000000000003.cdr.xml"  # FreeSWITCH is writing it
    half.write_bytes((DATA / f"a_{CALL_2}.cdr.xml").read_bytes()[:3000])
    os.utime(half, (now - 1, now - 1))
    first = cdr.import_xml_cdr_dir(directory, move_to=archive, min_age=30, now=now)
    assert first.too_new == sorted(
        str(directory / n)
        for n in (f"a_{CALL_1}.cdr.xml", "b_7f1c0e9a-0000-4000-8000-000000000011.cdr.xml", young.name, half.name)
    )
    assert (first.files, first.calls_created, first.moved, first.failed) == (9, 2, 5, [])
    assert sorted(c.uuid for c in CallRecord.select()) == [CALL_2, CAPTURE_A]
    later = cdr.import_xml_cdr_dir(directory, move_to=archive, min_age=30, now=now + 60)
    assert (later.files, later.calls_created, later.calls_updated, later.moved, later.too_new) == (4, 1, 0, 3, [])
    assert [p for p, _ in later.failed] == [str(half)]  # still broken once old: a real failure, it stays
    assert listing(directory) == [half.name] and listing(archive) == GOOD


def test_min_age_on_the_command_line(fsctl, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    fsctl("tenant", "add", "acme.example", "--name", "ACME")
    copy_data(tmp_path)  # just written: every file is too new, even the broken ones
    result = fsctl("cdr", "import", "xml_cdr", "--move-to", "archive", "--min-age", "30")
    assert result.stderr.splitlines() == [
        "11 files: 0 calls created, 0 updated, 0 legs, 0 failed, 11 skipped (too new), 0 moved to archive"
    ]
    assert listing("archive") == []


# --- retention of the archive --------------------------------------------------------------


def test_archive_keep_days_deletes_old_files_at_most_once_a_day(sdb, tmp_path):
    directory, archive = tmp_path / "xml_cdr", tmp_path / "archive"
    directory.mkdir()
    now = time.time()
    for rel, days in (("2026-10-01-00-00-00/old.cdr.xml", 31), ("new.cdr.xml", 29), ("keep.txt", 99)):
        (archive / rel).parent.mkdir(parents=True, exist_ok=True)
        (archive / rel).write_text("x")
        os.utime(archive / rel, (now - days * 86400, now - days * 86400))
    first = cdr.import_xml_cdr_dir(directory, move_to=archive, keep_days=30, now=now)
    assert first.archive_deleted == 1
    assert listing(archive) == ["keep.txt", "new.cdr.xml"]  # and the emptied folder is gone
    assert sorted(os.listdir(archive)) == [
        ".fsctl-cdr-import.lock",
        ".fsctl-cdr-import.purged",
        "keep.txt",
        "new.cdr.xml",
    ]
    assert cdr.import_xml_cdr_dir(directory, move_to=archive, keep_days=30, now=now + 3600).archive_deleted is None
    assert cdr.import_xml_cdr_dir(directory, move_to=archive, keep_days=1, now=now + 86400).archive_deleted == 1
    assert listing(archive) == ["keep.txt"]


def test_move_to_refuses_to_run_inside_a_transaction(sdb, tmp_path):
    (tmp_path / "xml_cdr").mkdir()
    with database.atomic(), pytest.raises(RuntimeError):
        cdr.import_xml_cdr_dir(tmp_path / "xml_cdr", move_to=tmp_path / "archive")


# --- bad input --------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "args,message",
    [
        (
            ["--move-to", "xml_cdr"],
            'Error: --move-to "xml_cdr": must be a folder outside DIR (not DIR, not inside it, not containing it)',
        ),
        (
            ["--move-to", "xml_cdr/archive"],
            'Error: --move-to "xml_cdr/archive": must be a folder outside DIR (not DIR, not inside it, not containing it)',
        ),
        (
            ["--move-to", "."],
            'Error: --move-to ".": must be a folder outside DIR (not DIR, not inside it, not containing it)',
        ),
        (
            ["--move-to", "notes.txt"],
            'Error: --move-to "notes.txt": must be a folder fsctl can create and write to (File exists)',
        ),
        (
            ["--move-to", "notes.txt/archive"],
            'Error: --move-to "notes.txt/archive": must be a folder fsctl can create and write to (Not a directory)',
        ),
        (["--move-to", "archive", "--min-age", "-5"], 'Error: --min-age "-5": must be a number of seconds >= 0'),
        (
            ["--move-to", "archive", "--min-age", "half a minute"],
            'Error: --min-age "half a minute": must be a number of seconds >= 0',
        ),
        (["--archive-keep-days", "30"], 'Error: --archive-keep-days "30": needs --move-to (it cleans that archive)'),
        (
            ["--move-to", "archive", "--archive-keep-days", "0"],
            'Error: --archive-keep-days "0": must be a whole number of days >= 1',
        ),
    ],
)
def test_bad_options_are_refused_and_nothing_moves(fsctl_sqlite, tmp_path, monkeypatch, args, message):
    monkeypatch.chdir(tmp_path)
    fsctl_sqlite("tenant", "add", "acme.example", "--name", "ACME")
    copy_data(tmp_path)
    (tmp_path / "notes.txt").write_text("not a folder")
    result = fsctl_sqlite("cdr", "import", "xml_cdr", *args, ok=False)
    assert (result.exit_code, result.stderr) == (2, message + "\n")
    assert listing("xml_cdr") == sorted(GOOD + BAD)
    assert not (tmp_path / "archive").exists()
    with fsctl_db(fsctl_sqlite):
        assert CallRecord.select().count() == 0


def test_an_archive_fsctl_cannot_write_to_is_refused(fsctl_sqlite, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    copy_data(tmp_path)
    if os.geteuid() == 0:
        locked = "/sys/fsctl-archive"  # root may write anywhere, except sysfs (EPERM, or EROFS in a container)
    else:
        (tmp_path / "locked").mkdir(mode=0o555)
        locked = "locked/archive"
    result = fsctl_sqlite("cdr", "import", "xml_cdr", "--move-to", locked, ok=False)
    assert result.exit_code == 2
    assert result.stderr.startswith(f'Error: --move-to "{locked}": must be a folder fsctl can create and write to (')
    assert result.stderr.endswith(")\n") and len(result.stderr.splitlines()) == 1
    assert listing("xml_cdr") == sorted(GOOD + BAD)  # nothing read or moved


# --- conf/: the mod_xml_cdr snippet and the systemd units ------------------------------------

# The params mod_xml_cdr.c's load function reads (signalwire/freeswitch, src/mod/xml_int/mod_xml_cdr).
MOD_XML_CDR_PARAMS = {
    "cred",
    "url",
    "log-http-and-disk",
    "timeout",
    "delay",
    "log-b-leg",
    "prefix-a-leg",
    "disable-100-continue",
    "encode",
    "retries",
    "rotate",
    "log-dir",
    "err-log-dir",
    "enable-cacert-check",
    "ssl-cert-path",
    "ssl-key-path",
    "ssl-key-password",
    "ssl-version",
    "ssl-cacert-file",
    "enable-ssl-verifyhost",
    "auth-scheme",
    "cookie-file",
}
CONF_FILES = (
    "conf/freeswitch/xml_cdr.conf.xml",
    "conf/systemd/fsctl-cdr-import.service",
    "conf/systemd/fsctl-cdr-import.timer",
)


def unit(name):
    """A systemd unit as {section: [(key, value)]}; comments and blank lines skipped."""
    sections, current = {}, None
    for line in (REPO / "conf" / "systemd" / name).read_text().splitlines():
        if not line.strip() or line.startswith("#"):
            continue
        if line.startswith("["):
            current = sections.setdefault(line.strip("[]"), [])
        else:
            key, _, value = line.partition("=")
            current.append((key, value))
    return sections


def test_xml_cdr_snippet_writes_both_legs_to_the_folder_the_timer_reads():
    root = etree.parse(str(REPO / "conf" / "freeswitch" / "xml_cdr.conf.xml")).getroot()
    assert (root.tag, root.get("name")) == ("configuration", "xml_cdr.conf")
    params = {p.get("name"): p.get("value") for p in root.iter("param")}
    assert set(params) <= MOD_XML_CDR_PARAMS
    assert params == {"log-dir": DIR, "log-b-leg": "true", "prefix-a-leg": "true", "rotate": "false"}  # no url
    text = (REPO / "conf" / "freeswitch" / "xml_cdr.conf.xml").read_text()
    assert "X-PRE-PROCESS" not in text and "$${" not in text  # both act even inside comments (FACTS.md)


def test_systemd_units_run_the_import_every_five_minutes(fsctl, tmp_path):
    service, timer = unit("fsctl-cdr-import.service"), unit("fsctl-cdr-import.timer")
    exec_start = dict(service["Service"])["ExecStart"]
    assert exec_start == (
        f"/opt/fsctl/bin/fsctl cdr import {DIR} --move-to {DIR}.imported --min-age 30 --archive-keep-days 30"
    )
    assert ("Type", "oneshot") in service["Service"]
    assert timer["Timer"] == [("OnCalendar", "*-*-* *:00/5:00"), ("Persistent", "true"), ("AccuracySec", "30s")]
    assert timer["Install"] == [("WantedBy", "timers.target")]
    # the command line is one fsctl accepts (paths moved into the test folder)
    fsctl("tenant", "add", "acme.example", "--name", "ACME")
    copy_data(tmp_path, with_bad=False, name="xml_cdr")
    args = shlex.split(exec_start.replace(DIR, str(tmp_path / "xml_cdr")))[1:]
    fsctl(*args)
    assert listing(tmp_path / "xml_cdr") == GOOD  # just copied: too new for --min-age 30


@pytest.mark.servers  # systemd-analyze
def test_systemd_units_verify(tmp_path):
    # .ci/sysdeps.sh installs Debian's systemd package when systemd-analyze is missing (make test).
    assert shutil.which("systemd-analyze"), "systemd-analyze is missing: run make sysdeps as root"
    for name in ("fsctl-cdr-import.service", "fsctl-cdr-import.timer"):
        text = (REPO / "conf" / "systemd" / name).read_text().replace("/opt/fsctl/bin/fsctl", "/bin/true")
        (tmp_path / name).write_text(text)
    check = subprocess.run(
        [
            "systemd-analyze",
            "verify",
            str(tmp_path / "fsctl-cdr-import.service"),
            str(tmp_path / "fsctl-cdr-import.timer"),
        ],
        capture_output=True,
        text=True,
    )
    assert check.returncode == 0, check.stderr
    assert [l for l in check.stderr.splitlines() if "fsctl-cdr-import" in l] == []


@pytest.mark.parametrize("name", CONF_FILES)
def test_conf_files_name_only_loopback_or_placeholder_hosts(name):
    text = (REPO / name).read_text()
    urls = re.findall(r"[a-z][a-z0-9+.-]*://[^\s\"'<>]*", text)
    addresses = re.findall(r"\b\d{1,3}(?:\.\d{1,3}){3}\b", text)
    assert [u for u in urls if not re.match(r"[a-z]+://(127\.0\.0\.1|localhost|[^/]*\.invalid)(:|/|$)", u)] == []
    assert [a for a in addresses if not a.startswith("127.")] == []


# --- one bad call never blocks the others ----------------------------------------------------


def cdr_file(path, headers):
    """A mod_xml_cdr file carrying these hang-up headers (variables URL-encoded, the caller profile)."""
    from urllib.parse import quote

    cdr_el = etree.Element("cdr")
    etree.SubElement(etree.SubElement(cdr_el, "channel_data"), "direction").text = "inbound"
    variables = etree.SubElement(cdr_el, "variables")
    for name, value in headers.items():
        if name.startswith("variable_"):
            etree.SubElement(variables, name[len("variable_") :]).text = quote(value, safe="")
    profile = etree.SubElement(etree.SubElement(cdr_el, "callflow"), "caller_profile")
    for tag, header in (
        ("caller_id_number", "Caller-Caller-ID-Number"),
        ("caller_id_name", "Caller-Caller-ID-Name"),
        ("destination_number", "Caller-Destination-Number"),
        ("context", "Caller-Context"),
    ):
        if headers.get(header):
            etree.SubElement(profile, tag).text = headers[header]
    Path(path).parent.mkdir(parents=True, exist_ok=True)
    Path(path).write_bytes(etree.tostring(cdr_el, xml_declaration=True, encoding="utf-8"))


REFUSE_TRIGGER = {
    "sqlite": [
        "CREATE TRIGGER refuse_666 BEFORE INSERT ON call_record WHEN NEW.caller = '+666' "
        "BEGIN SELECT RAISE(ABORT, 'refused by a test trigger'); END"
    ],
    "postgres": [
        "CREATE FUNCTION refuse_666() RETURNS trigger AS $$ BEGIN IF NEW.caller = '+666' THEN "
        "RAISE EXCEPTION 'refused by a test trigger'; END IF; RETURN NEW; END $$ LANGUAGE plpgsql",
        "CREATE TRIGGER refuse_666 BEFORE INSERT ON call_record FOR EACH ROW EXECUTE FUNCTION refuse_666()",
    ],
}


def test_one_bad_call_never_blocks_the_others(fsctl, tmp_path):
    """A call UUID over 64 characters (or a *98 call in a long domain) failed the whole batch on PostgreSQL,
    an overflowing start_epoch stopped the import with a traceback: every run failed again, nothing moved."""
    from tests.fsctl.services.test_cdr import T0, a_leg

    long_domain = "a-very-long-tenant-domain-name-for-testing-lengths.example"  # 58 characters
    fsctl("tenant", "add", "acme.example", "--name", "ACME")
    fsctl("tenant", "add", long_domain, "--name", "Long")
    fsctl("user", "add", long_domain, "101", "--name", "Ona")
    engine = "postgres" if fsctl.url.startswith("postgresql") else "sqlite"
    with fsctl_db(fsctl):
        for statement in REFUSE_TRIGGER[engine]:
            database.execute_sql(statement)
    folder = tmp_path / "xml_cdr"
    cdr_file(folder / "a_good.cdr.xml", a_leg("good-1", caller="+37060000001"))
    long_uuid = "u" * 300
    cdr_file(folder / "a_long_uuid.cdr.xml", a_leg(long_uuid, caller="+37060000002"))
    overflow = a_leg("overflow-1", caller="+37060000003")
    overflow["variable_start_epoch"] = "99999999999999999999"
    cdr_file(folder / "a_overflow.cdr.xml", overflow)
    cdr_file(
        folder / "a_checks_voicemail.cdr.xml",  # *98: the caller listened to a mailbox
        a_leg(
            "vm-check-1",
            caller="101",
            dest="*98",
            app="voicemail",
            app_arg=f"check default {long_domain}",
            tenant=long_domain,
            answer=T0,
        ),
    )
    cdr_file(folder / "a_refused.cdr.xml", a_leg("refused-1", caller="+666"))
    cdr_file(folder / "a_good_too.cdr.xml", a_leg("good-2", caller="+37060000004"))
    result = fsctl("cdr", "import", str(folder), "--move-to", str(tmp_path / "archive"), ok=False)
    assert result.exit_code == 1
    lines = result.stderr.splitlines()
    assert (
        lines[0] == "6 files: 3 calls created, 0 updated, 0 legs, 3 failed, 0 skipped (too new), "
        f"3 moved to {tmp_path / 'archive'}"
    )
    assert (
        lines[1] == f'  {folder}/a_long_uuid.cdr.xml: call_record.uuid "{"u" * 77}...": must be at most 255 characters'
    )
    assert (
        lines[2] == f'  {folder}/a_overflow.cdr.xml: variable_start_epoch "99999999999999999999": '
        "must be a time before the year 10000"
    )
    assert lines[3].startswith(f"  {folder}/a_refused.cdr.xml: the database refused the call: ")
    assert "refused by a test trigger" in lines[3] and len(lines) == 4
    assert listing(folder) == ["a_long_uuid.cdr.xml", "a_overflow.cdr.xml", "a_refused.cdr.xml"]
    with fsctl_db(fsctl):
        calls = {c.uuid: c for c in CallRecord.select()}
    assert sorted(calls) == ["good-1", "good-2", "vm-check-1"]
    assert calls["vm-check-1"].voicemail is None and calls["vm-check-1"].status != "missed"


def test_the_service_batch_writer_keeps_the_good_calls(fsctl, caplog):
    """fs-scripts' hang-up sink lost its whole batch with one call the database refused."""
    from fs_scripts.runtime import hangup_sinks
    from fsctl.config import Settings
    from tests.fsctl.services.test_cdr import a_leg

    fsctl("tenant", "add", "acme.example", "--name", "ACME")
    engine = "postgres" if fsctl.url.startswith("postgresql") else "sqlite"
    with fsctl_db(fsctl):
        for statement in REFUSE_TRIGGER[engine]:
            database.execute_sql(statement)
        batch = [
            a_leg("svc-1", caller="+37060000001"),
            a_leg("svc-2", caller="+666"),
            a_leg("u" * 300),
            a_leg("svc-3", caller="+37060000003"),
        ]
        for sink in hangup_sinks(Settings(recordings_dir=str(fsctl.tmp_path / "rec"))):
            sink(batch)
        assert sorted(c.uuid for c in CallRecord.select()) == ["svc-1", "svc-3"]
    refused = [r.getMessage() for r in caplog.records if "not recorded" in r.getMessage()]
    assert len(refused) == 2 and "svc-2" in refused[0] + refused[1]


def test_links_in_the_folder_are_refused_not_followed(fsctl, tmp_path):
    """FreeSWITCH's user writes the folder that root's import read: a link made it read (and move) any file."""
    from tests.fsctl.services.test_cdr import a_leg

    fsctl("tenant", "add", "acme.example", "--name", "ACME")
    folder, outside = tmp_path / "xml_cdr", tmp_path / "elsewhere"
    cdr_file(folder / "a_good.cdr.xml", a_leg("good-1"))
    cdr_file(outside / "secret.cdr.xml", a_leg("outside-1"))  # a file the link points at
    os.symlink(outside / "secret.cdr.xml", folder / "a_link.cdr.xml")
    os.symlink(tmp_path / "nowhere.xml", folder / "a_dangling.cdr.xml")
    os.symlink(outside, folder / "linked_folder")
    result = fsctl("cdr", "import", str(folder), "--move-to", str(tmp_path / "archive"), ok=False)
    assert result.exit_code == 1
    assert result.stderr.splitlines() == [
        f"3 files: 1 calls created, 0 updated, 0 legs, 2 failed, 0 skipped (too new), 1 moved to {tmp_path / 'archive'}",
        f'  {folder}/a_dangling.cdr.xml: file "a_dangling.cdr.xml": is a symbolic link: refused (not read, not moved)',
        f'  {folder}/a_link.cdr.xml: file "a_link.cdr.xml": is a symbolic link: refused (not read, not moved)',
    ]
    assert os.path.islink(folder / "a_link.cdr.xml") and (outside / "secret.cdr.xml").is_file()
    assert listing(tmp_path / "archive") == ["a_good.cdr.xml"]
    with fsctl_db(fsctl):
        assert [c.uuid for c in CallRecord.select()] == ["good-1"]
