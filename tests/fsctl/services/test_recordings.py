"""Recordings (R-REC): layout, catalogue, import, marks, search, access rights, retention and quota.

Database tests run on SQLite and on the real PostgreSQL server (`db`, `fsctl`); recordings
are real WAV files in a temporary folder.
"""

import datetime as dt
import hashlib
import json
import os
import wave

import click
import pytest
from hypothesis import HealthCheck, given, settings, strategies as st

from fsctl.errors import NotFoundError, ValidationError
from fsctl.model import Recording, RecordingGroup, RecordingGroupMember, RecordingGroupSupervisor, Tenant, User, utcnow
from fsctl.services import recordings as rec, users
from tests.fsctl.test_provisioning_cli import refused

T0 = dt.datetime(2026, 11, 20, 9, 30, 0)


def write_wav(path, seconds=4.0, rate=8000, fill=b"\x01\x02"):
    """A mono 16-bit WAV of `seconds` (16,000 bytes of audio per second at 8 kHz)."""
    os.makedirs(os.path.dirname(path), exist_ok=True)
    with wave.open(str(path), "wb") as w:
        w.setnchannels(1)
        w.setsampwidth(2)
        w.setframerate(rate)
        w.writeframes(fill * int(seconds * rate))
    return path


def make_recording(
    root,
    domain="acme.example",
    user="101",
    direction="in",
    counterpart="+37060000001",
    started=T0,
    uuid="c0ffee-1",
    seconds=4.0,
    fill=b"\x01\x02",
    catalogue=True,
):
    """Write a recording file in the documented layout (and catalogue it); returns (row or None, rel path)."""
    rel = rec.recording_relpath(domain, started, user, direction, counterpart, uuid)
    write_wav(os.path.join(root, rel), seconds, fill=fill)
    finished = (started + dt.timedelta(seconds=seconds)).replace(tzinfo=dt.timezone.utc).timestamp()
    os.utime(os.path.join(root, rel), (finished, finished))  # written when the call ended
    row = rec.catalogue_recording(os.path.join(root, rel), root) if catalogue else None
    return row, rel


def make_tenants():
    """acme.example (users 100-105; 100 admin, 104 supervisor of sales {101, 102} and of ops {103}) and
    beta.example (user 201)."""
    acme = Tenant.create(domain="acme.example", name="ACME", timezone="Europe/Vilnius")
    beta = Tenant.create(domain="beta.example", name="Beta", timezone="UTC")
    roles = {"100": "admin", "104": "supervisor", "105": "supervisor"}
    users = {
        n: User.create(
            tenant=acme, number=n, name=f"User {n}", sip_password="x" * 16, role=roles.get(n, "user"), record=True
        )
        for n in ("100", "101", "102", "103", "104", "105")
    }
    User.create(tenant=beta, number="201", name="B 201", sip_password="x" * 16, record=True)
    for name, members in (("sales", ("101", "102")), ("ops", ("103",))):
        group = RecordingGroup.create(tenant=acme, name=name)
        for m in members:
            RecordingGroupMember.create(group=group, user=users[m])
        RecordingGroupSupervisor.create(group=group, user=users["104"])
    return acme, beta


@pytest.fixture
def root(tmp_path):
    path = tmp_path / "recordings"
    path.mkdir()
    return str(path)


# --- layout --------------------------------------------------------------------------------------


def test_layout_round_trip():
    rel = rec.recording_relpath("acme.example", T0, "101", "out", "+37060000001", "a1b2-c3")
    assert rel == "acme.example/2026/11/20/20261120T093000Z_101_out_+37060000001_a1b2-c3.wav"
    fields = rec.parse_relpath(rel)
    assert fields == rec.PathFields("acme.example", "101", "out", "+37060000001", T0, "a1b2-c3")
    anonymous = rec.recording_relpath("acme.example", T0, "101", "in", "", "u")
    assert "_in_anonymous_u.wav" in anonymous and rec.parse_relpath(anonymous).counterpart == ""


@pytest.mark.parametrize(
    "rel, rule",
    [
        ("../etc/passwd", "must be a relative path inside the recordings folder"),
        ("/etc/passwd", "must be a relative path inside the recordings folder"),
        (
            "acme.example/2026/11/20/../../../../beta.example/x.wav",
            "must be a relative path inside the recordings folder",
        ),
        ("acme.example/2026/11/21/20261120T093000Z_101_in_1_u.wav", "date folders must match the file's start time"),
        (
            "acme.example/2026/11/20/20261120T093000Z_101_sideways_1_u.wav",
            "file name must be YYYYMMDDTHHMMSSZ_USER_DIRECTION_COUNTERPART_UUID.wav",
        ),
        ("acme.example/20261120T093000Z_101_in_1_u.wav", "must look like DOMAIN/YYYY/MM/DD/FILE.wav"),
    ],
)
def test_layout_refuses_bad_paths(rel, rule):
    with pytest.raises(ValidationError) as err:
        rec.parse_relpath(rel)
    assert err.value.field == "recording.path" and err.value.rule == rule


# --- catalogue -----------------------------------------------------------------------------------


def test_catalogue_recording_fills_every_field(db, root):
    acme, _ = make_tenants()
    row, rel = make_recording(root, seconds=4.5)
    data = open(os.path.join(root, rel), "rb").read()
    got = Recording.get_by_id(row.id)
    assert (got.tenant_id, got.user_number, got.user_name, got.direction, got.counterpart, got.started_at) == (
        acme.id,
        "101",
        "User 101",
        "in",
        "+37060000001",
        T0,
    )
    assert got.path == rel and got.size == len(data) and got.sha256 == hashlib.sha256(data).hexdigest()
    assert got.duration == 4.5 and got.call_uuid == "c0ffee-1"
    # the event may come twice (or after an import): same row, marks kept
    rec.mark(row.id, note="keep me")
    again = rec.catalogue_recording(rel, root, duration=4.4)
    assert again.id == row.id and Recording.select().count() == 1
    assert Recording.get_by_id(row.id).note == "keep me" and Recording.get_by_id(row.id).duration == 4.4


def test_catalogue_short_file_names_of_the_call_logic(db, root):
    # fs_scripts/decide.py writes <stamp>_<uuid>_<user>.wav: the event supplies direction and counterpart.
    make_tenants()
    rel = "acme.example/2026/11/20/20261120T093000Z_4f1c-77aa_101.wav"
    write_wav(os.path.join(root, rel))
    row = rec.catalogue_recording(os.path.join(root, rel), root, direction="out", counterpart="+37060000009")
    assert (row.user_number, row.direction, row.counterpart, row.started_at, row.call_uuid) == (
        "101",
        "out",
        "+37060000009",
        T0,
        "4f1c-77aa",
    )
    rel2 = "acme.example/2026/11/20/20261120T093000Z_9999_102.wav"
    write_wav(os.path.join(root, rel2))
    os.utime(os.path.join(root, rel2), (T0.timestamp(), T0.timestamp()))
    assert rec.import_recordings(root).added == 1  # import alone cannot know the direction
    assert (Recording.get(Recording.path == rel2).user_number, Recording.get(Recording.path == rel2).direction) == (
        "102",
        "",
    )


def test_catalogue_missing_file_is_not_an_error(db, root):
    # FreeSWITCH deletes recordings shorter than RECORD_MIN_SEC (3 s) (FACTS.md).
    make_tenants()
    rel = rec.recording_relpath("acme.example", T0, "101", "in", "1", "short")
    assert rec.catalogue_recording(os.path.join(root, rel), root) is None
    assert Recording.select().count() == 0


def test_catalogue_refuses_paths_outside_the_folder(db, root, tmp_path):
    make_tenants()
    outside = tmp_path / "outside"
    rel = rec.recording_relpath("acme.example", T0, "101", "in", "1", "u")
    write_wav(str(outside / rel))
    for path in (str(outside / rel), os.path.join(root, "..", "outside", rel), "../outside/" + rel):
        with pytest.raises(ValidationError) as err:
            rec.catalogue_recording(path, root)
        assert err.value.field == "recording.path"
    # a symbolic link inside the folder that points outside is refused too
    link = os.path.join(root, "acme.example")
    os.symlink(str(outside / "acme.example"), link)
    with pytest.raises(ValidationError):
        rec.catalogue_recording(os.path.join(root, rel), root)
    with pytest.raises(ValidationError):  # what purge and publish use to reach a file
        rec.resolve(root, rel)
    assert rec.import_recordings(root).added == 0
    assert Recording.select().count() == 0


def test_import_is_idempotent_and_recovers_missed_recordings(db, root):
    make_tenants()
    make_recording(root, uuid="u1", catalogue=False)
    make_recording(root, uuid="u2", user="102", direction="out", counterpart="+4470000", catalogue=False)
    junk = os.path.join(root, "acme.example", "2026", "11", "20", "notes.txt")
    open(junk, "w").write("x")
    make_recording(root, domain="gone.example", uuid="u3", catalogue=False)
    report = rec.import_recordings(root)
    assert (report.added, report.updated, report.unchanged) == (2, 0, 0)
    assert sorted(r for _, r in report.skipped) == [
        "file name must be YYYYMMDDTHHMMSSZ_USER_DIRECTION_COUNTERPART_UUID.wav",
        "tenant gone.example does not exist",
    ]
    out = Recording.get(Recording.call_uuid == "u2")
    assert (out.user_number, out.direction, out.counterpart, out.started_at, out.duration) == (
        "102",
        "out",
        "+4470000",
        T0,
        4.0,
    )
    rec.mark(out.id, colour="red")
    # recorded while the service was down: the next import adds it, the others stay as they are
    make_recording(root, uuid="u4", started=T0 + dt.timedelta(hours=1), catalogue=False)
    report = rec.import_recordings(root)
    assert (report.added, report.updated, report.unchanged) == (1, 0, 2)
    assert Recording.select().count() == 3 and Recording.get_by_id(out.id).colour == "red"
    # a recording still being written (changed seconds ago) waits for the next import
    _, busy = make_recording(root, uuid="u5", catalogue=False)
    os.utime(os.path.join(root, busy))
    report = rec.import_recordings(root)
    assert report.added == 0 and (busy, "still being written") in report.skipped
    assert rec.import_recordings(root, now=utcnow() + dt.timedelta(seconds=11)).added == 1


# --- marks ---------------------------------------------------------------------------------------


def test_mark_api_validation_and_access(db, root):
    make_tenants()
    row, _ = make_recording(root)
    got = rec.mark(
        row.id,
        as_user="101@acme.example",
        note="Perskambinti — ☎ 🙂",
        colour="green",
        fields={"field1": "a" * 128, 2: "ąčę", "field3": ""},
    )
    assert (got.note, got.colour, got.field1, got.field2, got.field3) == (
        "Perskambinti — ☎ 🙂",
        "green",
        "a" * 128,
        "ąčę",
        "",
    )
    with pytest.raises(ValidationError) as err:
        rec.mark(row.id, fields={"field2": "b" * 129})
    assert str(err.value) == 'recording.field2 "' + "b" * 77 + '...": must be at most 128 characters'
    with pytest.raises(ValidationError) as err:
        rec.mark(row.id, colour="pink")
    assert str(err.value) == 'recording.colour "pink": must be one of red, orange, yellow, green, blue, purple, grey'
    with pytest.raises(ValidationError) as err:
        rec.mark(row.id, fields={"field4": "x"})
    assert err.value.field == "recording.fields"
    for other in ("102@acme.example", "201@beta.example"):
        with pytest.raises(NotFoundError):
            rec.mark(row.id, as_user=other, note="not mine")
    stored = Recording.get_by_id(row.id)
    assert (stored.note, stored.field2) == ("Perskambinti — ☎ 🙂", "ąčę")


def test_a_note_may_span_lines_the_fields_may_not(db, root):
    """A note is the one multi-line text (only fsctl's own output shows it); CR, U+2028 and the rest stay out."""
    make_tenants()
    row, _ = make_recording(root)
    assert rec.mark(row.id, note="Call back Monday\n\tabout order 7781").note == "Call back Monday\n\tabout order 7781"
    for bad in ("a\rb", "a\u2028b", "a\x85b", "a\x00b"):
        with pytest.raises(ValidationError) as err:
            rec.mark(row.id, note=bad)
        assert err.value.rule == "must not contain control characters"
    for bad in ("a\nb", "a\tb", "a\u2029b"):
        with pytest.raises(ValidationError) as err:
            rec.mark(row.id, fields={"field1": bad})
        assert err.value.field == "recording.field1"
    assert Recording.get_by_id(row.id).note == "Call back Monday\n\tabout order 7781"


FIELD_TEXT = st.text(st.characters(blacklist_categories=("Cs", "Cc")), max_size=128)


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(
    value=FIELD_TEXT,
    extra=st.text(st.characters(blacklist_categories=("Cs", "Cc")), min_size=129, max_size=300),
    which=st.sampled_from(rec.FIELD_NAMES),
)
def test_mark_fields_property(db, root, value, extra, which):
    if not Tenant.select().exists():
        make_tenants()
        make_recording(root)
    row = Recording.select().first()
    rec.mark(row.id, fields={which: value})
    assert getattr(Recording.get_by_id(row.id), which) == value  # stored exactly, never cut or stripped
    with pytest.raises(ValidationError) as err:
        rec.mark(row.id, fields={which: extra})
    assert err.value.field == f"recording.{which}" and err.value.rule == "must be at most 128 characters"
    assert getattr(Recording.get_by_id(row.id), which) == value


# --- the trigram index ---------------------------------------------------------------------------

# Letters that fold (ß -> ss, İ -> i + combining dot, K the Kelvin sign -> k), quotes, LIKE's
# wildcards and spaces: the index must find exactly what the scan finds.
SEARCH_TEXT = st.text(st.sampled_from(list('aAbzZ "%_ßsSŪūİi\u0307Kk9')), max_size=10)


@settings(max_examples=50, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(
    texts=st.lists(SEARCH_TEXT, min_size=6, max_size=6),
    term=SEARCH_TEXT.filter(lambda t: t.strip()),
    which=st.sampled_from(rec.FOLDED),
)
def test_text_search_through_the_index_is_the_scan(db, root, texts, term, which):
    if not Tenant.select().exists():
        make_tenants()
        for i in range(6):
            make_recording(root, started=T0 + dt.timedelta(minutes=i), uuid=f"t{i}")
    rows = list(Recording.select().order_by(Recording.id))
    for row, text in zip(rows, texts):  # changed in place: the index follows every update
        if which == "user_name":
            Recording.update(user_name=text, user_name_fold=rec.fold(text)).where(Recording.id == row.id).execute()
        else:
            rec.mark(row.id, **({"note": text} if which == "note" else {"fields": {which: text}}))
    filters = rec.make_filters(**{which: term})
    expected = [row.id for row, text in reversed(list(zip(rows, texts))) if rec.fold(term) in rec.fold(text)]
    assert [r.id for r in rec.search(filters)] == expected
    assert [r.id for r in rec.search(filters, index=False)] == expected
    if rec._is_sqlite():  # the triggers kept the FTS5 index consistent (raises when not)
        from fsctl.db import database

        database.execute_sql("INSERT INTO recording_fts (recording_fts) VALUES ('integrity-check')")


def _plan(query):
    sql, params = query.sql()
    from fsctl.db import database

    if rec._is_sqlite():
        return " ".join(str(r[-1]) for r in database.execute_sql("EXPLAIN QUERY PLAN " + sql, params).fetchall())
    with database.atomic():
        database.execute_sql("SET LOCAL enable_seqscan = off")  # a few rows: make the planner show its index
        return " ".join(r[0] for r in database.execute_sql("EXPLAIN " + sql, params).fetchall())


def test_long_terms_use_the_trigram_index_short_ones_scan(db, root):
    make_tenants()
    for i in range(3):
        make_recording(root, started=T0 + dt.timedelta(minutes=i), uuid=f"i{i}")
    index = "recording_fts" if rec._is_sqlite() else "recording_note_fold_trgm"
    assert index in _plan(rec.query(rec.make_filters(note="zzz")))
    if rec._is_sqlite():  # PostgreSQL's planner weighs its indexes by itself
        assert index in _plan(rec.query(rec.make_filters(note="zzz", user="101", tenant="acme.example")))
        assert index not in _plan(rec.query(rec.make_filters(note="zz")))  # two letters: no trigram, LIKE alone
    row = Recording.select().first()
    rec.mark(row.id, note="Skambinti rytoj")
    assert [r.id for r in rec.search(rec.make_filters(note="RYTOJ"))] == [row.id]
    Recording.delete().where(Recording.id == row.id).execute()  # gone from the index too
    assert rec.search(rec.make_filters(note="RYTOJ")) == []


def test_a_common_text_is_found_by_the_scan(sdb):
    acme, _ = make_tenants()
    rows = [
        {
            "tenant": acme.id,
            "user_number": "101",
            "direction": "in",
            "started_at": T0 + dt.timedelta(seconds=i),
            "path": f"common/{i}.wav",
            "note": "Call back",
            "note_fold": "call back",
        }
        for i in range(rec.MAX_CANDIDATES + 1)
    ]
    Recording.insert_many(rows).execute()
    common = rec.make_filters(note="back")
    assert "recording_fts" not in _plan(rec.query(common))  # the newest rows match: the scan stops at once
    assert [r.id for r in rec.search(common, limit=3)] == [r.id for r in rec.search(common, limit=3, index=False)]
    Recording.update(note="Call back tomorrow", note_fold="call back tomorrow").where(
        Recording.path == "common/7.wav"
    ).execute()
    rare = rec.make_filters(note="tomorrow")
    assert "recording_fts" in _plan(rec.query(rare))
    assert [r.path for r in rec.search(rare)] == ["common/7.wav"]


def cli_setup(fsctl, root):
    """Tenants through the library on the CLI's database, recordings in `root`."""
    from fsctl import db as fsdb

    fsdb.open_database(fsctl.url)
    make_tenants()
    rows = [
        make_recording(root, uuid="u1")[0],
        make_recording(root, user="102", uuid="u2", started=T0 + dt.timedelta(minutes=5))[0],
        make_recording(root, domain="beta.example", user="201", uuid="u3")[0],
    ]
    fsdb.close_database()
    fsctl.env["FSCTL_RECORDINGS_DIR"] = root
    return [r.id for r in rows]


def test_mark_cli(fsctl, root):
    own, other, beta = cli_setup(fsctl, root)
    fsctl("rec", "mark", str(own), "--as", "101@acme.example", "--note", "ok", "--colour", "red", "--field1", "x" * 128)
    shown = json.loads(fsctl("rec", "show", str(own), "--json").stdout)
    assert (shown["note"], shown["colour"], shown["field1"]) == ("ok", "red", "x" * 128)
    assert (
        refused(fsctl, "rec", "mark", str(own), "--note", "changed", "--field3", "é" * 129)
        == 'Error: recording.field3 "' + "é" * 77 + '...": must be at most 128 characters'
    )
    assert (
        refused(fsctl, "rec", "mark", str(own), "--colour", "pink")
        == 'Error: recording.colour "pink": must be one of red, orange, yellow, green, blue, purple, grey'
    )
    assert (
        refused(fsctl, "rec", "mark", str(beta), "--as", "101@acme.example", "--note", "x")
        == f'Error: recording "{beta}" does not exist'
    )
    assert (
        refused(fsctl, "rec", "mark", str(own), "--as", "101", "--note", "x")
        == 'Error: --as "101": must be USER@DOMAIN like 101@acme.example'
    )
    shown = json.loads(fsctl("rec", "show", str(own), "--json").stdout)
    assert (shown["note"], shown["field3"]) == ("ok", "")  # nothing changed by the refused commands
    # --if-version: saved only on the version read; an older one is refused, naming the current one.
    seen = shown["mark_version"]
    fsctl("rec", "mark", str(own), "--note", "newer", "--if-version", seen)
    now = json.loads(fsctl("rec", "show", str(own), "--json").stdout)["mark_version"]
    assert now != seen
    assert refused(fsctl, "rec", "mark", str(own), "--note", "stale", "--if-version", seen) == (
        f'Error: version "{seen}": the marks of recording {own} were changed meanwhile: the current version is '
        f"{now} (read them again, then save)"
    )
    assert json.loads(fsctl("rec", "show", str(own), "--json").stdout)["note"] == "newer"


# --- access rights -------------------------------------------------------------------------------


def test_supervisor_rights_need_the_supervisor_role(db, root):
    """A demoted supervisor kept seeing the group's recordings; a plain user listed as supervisor did too."""
    make_tenants()
    for n in ("101", "102", "103", "104"):
        make_recording(root, user=n, uuid=f"a{n}")

    def visible(as_user):
        return sorted(r.user_number for r in rec.search(as_user=as_user))

    assert visible("104@acme.example") == ["101", "102", "103", "104"]
    users.edit_user("acme.example", "104", role="user")  # demoted: still listed as supervisor
    assert visible("104@acme.example") == ["104"]
    sales = RecordingGroup.get(RecordingGroup.name == "sales")
    RecordingGroupSupervisor.create(group=sales, user=User.get(User.number == "103"))  # a plain user listed
    assert visible("103@acme.example") == ["103"]
    users.edit_user("acme.example", "103", role="supervisor")
    assert visible("103@acme.example") == ["101", "102", "103"]


def ids(fsctl, *args):
    return sorted(r["id"] for r in json.loads(fsctl("rec", "search", "--json", *args).stdout))


def test_access_rights(db, root):
    make_tenants()
    made = {}
    for n in ("100", "101", "102", "103", "104", "105"):
        made[n] = make_recording(root, user=n, uuid=f"a{n}")[0].id
    made["201"] = make_recording(root, domain="beta.example", user="201", uuid="b201")[0].id

    def visible(as_user):
        return sorted(r.user_number for r in rec.search(as_user=as_user))

    assert visible("101@acme.example") == ["101"]
    assert visible("104@acme.example") == ["101", "102", "103", "104"]  # two groups, and their own
    assert visible("105@acme.example") == ["105"]  # a supervisor without groups: own only
    assert visible("100@acme.example") == ["100", "101", "102", "103", "104", "105"]
    assert visible("201@beta.example") == ["201"]
    assert visible(None) == ["100", "101", "102", "103", "104", "105", "201"]
    with pytest.raises(NotFoundError) as err:
        rec.get_recording(made["201"], "100@acme.example")
    assert str(err.value) == f'recording "{made["201"]}" does not exist'
    with pytest.raises(NotFoundError):
        rec.get_recording(made["105"], "104@acme.example")
    # a tenant filter cannot widen what a user sees
    assert rec.search(rec.make_filters(tenant="beta.example"), "100@acme.example") == []
    with pytest.raises(NotFoundError) as err:
        rec.viewer("999@acme.example")
    assert str(err.value) == 'user "999" does not exist in acme.example'


def test_access_rights_cli(fsctl, root):
    own, other, beta = cli_setup(fsctl, root)
    assert ids(fsctl, "--as", "101@acme.example") == [own]
    assert ids(fsctl, "--as", "100@acme.example") == sorted([own, other])
    assert ids(fsctl) == sorted([own, other, beta])
    assert (
        refused(fsctl, "rec", "show", str(beta), "--as", "100@acme.example")
        == f'Error: recording "{beta}" does not exist'
    )
    assert refused(fsctl, "rec", "search", "--as", "101@nope.example") == 'Error: tenant "nope.example" does not exist'


# --- search --------------------------------------------------------------------------------------


def test_search_filters_and_paging(db, root):
    make_tenants()
    specs = [  # user, counterpart, minutes after T0, seconds
        ("101", "+37060000001", 0, 3.5),
        ("101", "+37052000002", 60, 10),
        ("102", "+4470000003", 120, 20),
        ("102", "+37060000004", 24 * 60, 30),
        ("103", "", 48 * 60, 5),
    ]
    rows = [
        make_recording(root, user=u, counterpart=c, started=T0 + dt.timedelta(minutes=m), uuid=f"s{i}", seconds=s)[0]
        for i, (u, c, m, s) in enumerate(specs)
    ]
    rec.mark(rows[1].id, note="Customer ANGRY about invoice", colour="red", fields={"field2": "ticket-77"})
    rec.mark(rows[3].id, note="100% happy_path", colour="red")

    def found(**kw):
        return [r.id for r in rec.search(rec.make_filters(**kw))]

    ids_ = [r.id for r in rows]
    assert found() == ids_[::-1]  # newest first
    assert found(since="2026-11-21", until="2026-11-21") == [ids_[3]]
    assert found(since="2026-11-20T10:30:00Z", until="2026-11-20T11:30:00+00:00") == [ids_[1]]
    assert found(until="2026-11-20T11:31:00+02:00") == [ids_[0]]
    assert found(min_length="10", max_length="20") == [ids_[2], ids_[1]]
    assert found(user="102") == [ids_[3], ids_[2]]
    assert found(counterpart="+3706") == [ids_[3], ids_[0]]
    assert found(counterpart="+37052") == [ids_[1]]
    assert found(colour="red") == [ids_[3], ids_[1]]
    assert found(note="angry") == [ids_[1]]
    assert found(note="100%") == [ids_[3]] and found(note="y_p") == [ids_[3]]  # LIKE wildcards are literal
    assert found(note="%") == [ids_[3]]
    assert found(field2="ticket") == [ids_[1]]
    # Any case, any script (the database's LIKE folds ASCII only; SQLite's and a C-locale PostgreSQL's).
    rec.mark(rows[0].id, note="Skambino dėl SĄSKAITOS", fields={"field3": "Ąžuolas"})
    assert found(note="sąskaitos") == [ids_[0]] and found(note="DĖL") == [ids_[0]]
    assert found(field3="ąŽUOL") == [ids_[0]]
    rec.mark(rows[0].id, note="")  # a cleared note no longer matches
    assert found(note="sąskaitos") == []
    # The recorded user's name (R-REC search fields), as it was when recorded.
    assert found(user_name="user 10") == ids_[::-1]
    assert found(user_name="USER 102") == [ids_[3], ids_[2]]
    assert [r.id for r in rec.search(limit=2, offset=1)] == [ids_[3], ids_[2]]
    for kw, message in [
        ({"since": "yesterday"}, '--from "yesterday": must be a date YYYY-MM-DD or a time YYYY-MM-DDTHH:MM[:SS][Z]'),
        ({"min_length": "-1"}, '--min-length "-1": must be a number of seconds >= 0'),
        ({"counterpart": "37%"}, '--counterpart "37%": must be digits with an optional leading +'),
        ({"colour": "pink"}, '--colour "pink": must be one of red, orange, yellow, green, blue, purple, grey'),
        ({"field1": "x" * 129}, '--field1 "' + "x" * 77 + '...": must be at most 128 characters'),
    ]:
        with pytest.raises(ValidationError) as err:
            rec.make_filters(**kw)
        assert str(err.value) == message


def test_search_cli_json(fsctl, root):
    own, other, beta = cli_setup(fsctl, root)
    rows = json.loads(fsctl("rec", "search", "--as", "100@acme.example", "--user", "102", "--json").stdout)
    assert rows == [
        {
            "id": other,
            "tenant": "acme.example",
            "user": "102",
            "user_name": "User 102",
            "direction": "in",
            "counterpart": "+37060000001",
            "started_at": "2026-11-20T09:35:00Z",
            "duration": 4.0,
            "size": rows[0]["size"],
            "sha256": rows[0]["sha256"],
            "path": "acme.example/2026/11/20/20261120T093500Z_102_in_+37060000001_u2.wav",
            "node": None,
            "note": "",
            "colour": "",
            "field1": "",
            "field2": "",
            "field3": "",
            "mark_version": "3e94db2a36e61976",
        }
    ]
    assert ids(fsctl, "--limit", "1", "--offset", "1") == [beta]  # same start: higher id first
    assert ids(fsctl, "--user-name", "uSeR 102") == [other]
    assert refused(fsctl, "rec", "search", "--limit", "0") == '--limit "0": must be between 1 and 10000'.join(
        ["Error: ", ""]
    )
    table = fsctl("rec", "search").stdout
    assert "acme.example" in table and "beta.example" in table


def test_search_uses_an_index(sdb):
    # The typical page (a tenant, a time range, newest first) reads an index, not the table.
    q = rec.query(rec.Filters(since=T0, until=T0 + dt.timedelta(days=1)), None).where(Recording.tenant == 1)
    sql, params = q.limit(50).sql()
    plan = " ".join(str(r) for r in sdb.execute_sql("EXPLAIN QUERY PLAN " + sql, params).fetchall())
    assert "USING INDEX recording_tenant_id_started_at_id" in plan and "TEMP B-TREE" not in plan, plan


# --- retention and quota -------------------------------------------------------------------------


def test_purge_retention_and_quota(db, root):
    make_tenants()
    now = dt.datetime(2026, 11, 22, 12, 0)
    old, old_rel = make_recording(root, started=now - dt.timedelta(days=181), uuid="old")
    kept, _ = make_recording(root, started=now - dt.timedelta(days=179), uuid="kept")
    # user 102: 4 recordings of ~400 kB each against a 1 MB quota: the 2 oldest go
    q = [
        make_recording(root, user="102", started=now - dt.timedelta(hours=10 - i), uuid=f"q{i}", seconds=25)[0]
        for i in range(4)
    ]
    # user 103: one recording bigger than the quota on its own is kept (the newest always is)
    big, _ = make_recording(root, user="103", started=now - dt.timedelta(hours=1), uuid="big", seconds=70)
    dry = rec.purge(root, 180, 1, now=now, dry_run=True)
    assert [(i.id, i.reason) for i in dry.items] == [(old.id, "expired"), (q[0].id, "quota"), (q[1].id, "quota")]
    assert dry.warnings == [
        "acme.example user 102 is over the 1 MB recording quota: 2 oldest recordings purged",
        "acme.example user 103 is over the 1 MB recording quota: 0 oldest recordings purged, "
        "the newest alone is 1.1 MB",
    ]
    assert Recording.select().count() == 7 and os.path.exists(os.path.join(root, old_rel))
    os.unlink(os.path.join(root, q[1].path))  # a file already gone (e.g. a crash after unlink) is fine
    plan = rec.purge(root, 180, 1, now=now)
    assert len(plan.items) == 3
    left = {r.id for r in Recording.select()}
    assert left == {kept.id, q[2].id, q[3].id, big.id}
    assert not os.path.exists(os.path.join(root, old_rel)) and not os.path.exists(os.path.join(root, q[0].path))
    # what is left is consistent: every row has its file, and import brings nothing back
    assert all(os.path.exists(os.path.join(root, r.path)) for r in Recording.select())
    assert rec.import_recordings(root).added == 0
    assert rec.purge(root, 180, 1, now=now).items == []


@pytest.mark.parametrize(
    "retention, quota, field",
    [(180, -1, "recording_quota_mb"), (180, 0, "recording_quota_mb"), (0, 30, "recording_retention_days")],
)
def test_purge_refuses_a_non_positive_quota_or_retention(db, root, retention, quota, field):
    """A negative quota would purge all but each user's newest recording: the library refuses it too."""
    make_tenants()
    now = dt.datetime(2026, 11, 22, 12, 0)
    for i in range(3):
        make_recording(root, started=now - dt.timedelta(hours=i), uuid=f"r{i}")
    with pytest.raises(ValidationError, match=f"{field} .*: must be between 1 and"):
        rec.purge(root, retention, quota, now=now)
    assert Recording.select().count() == 3


def test_purge_cli(fsctl, root):
    own, other, beta = cli_setup(fsctl, root)
    fsctl.env["FSCTL_RECORDING_RETENTION_DAYS"] = "1"
    result = fsctl("rec", "purge", "--dry-run")
    assert (
        result.stdout.splitlines()[0] == f"would purge {own} acme.example 101 2026-11-20T09:30:00Z "
        "acme.example/2026/11/20/20261120T093000Z_101_in_+37060000001_u1.wav (expired)"
    )
    assert "3 recordings would purge" in result.stderr
    assert len(ids(fsctl)) == 3
    result = fsctl("rec", "purge")
    assert len(result.stdout.splitlines()) == 3 and ids(fsctl) == []
    assert [f for _, _, files in os.walk(root) for f in files] == []


def test_every_rec_command_has_help():
    from fsctl.cli import cli

    group = cli.get_command(click.Context(cli), "rec")  # commands load when asked for
    assert group.help
    for name, command in group.commands.items():
        assert command.help and command.help.strip(), name


def test_import_cli(fsctl, root):
    cli_setup(fsctl, root)
    make_recording(root, uuid="new", catalogue=False, started=T0 + dt.timedelta(days=1))
    other = os.path.join(os.path.dirname(root), "elsewhere")
    os.makedirs(other)
    assert fsctl("rec", "import").stdout == "1 added, 0 updated, 3 unchanged, 0 skipped\n"
    assert fsctl("rec", "import").stdout == "0 added, 0 updated, 4 unchanged, 0 skipped\n"
    assert fsctl("rec", "import", "--dir", other).stdout == "0 added, 0 updated, 0 unchanged, 0 skipped\n"
    assert (
        refused(fsctl, "rec", "import", "--dir", other + "/missing")
        == f'Error: recordings_dir "{other}/missing": must be an existing folder'
    )


def test_every_mark_is_audited_with_who_when_and_what(fsctl, root):
    from fsctl.model import MarkAudit

    fsctl.env["FSCTL_RECORDINGS_DIR"] = root
    fsctl("tenant", "add", "acme.example", "--name", "ACME")
    fsctl("user", "add", "acme.example", "100", "--name", "Admin", "--role", "admin")
    fsctl("user", "add", "acme.example", "101", "--name", "Ona", "--record")
    row, _ = make_recording(root)
    fsctl.clock = lambda: T0
    fsctl("rec", "mark", str(row.id), "--as", "101@acme.example", "--note", "call back", "--colour", "red")
    fsctl("rec", "mark", str(row.id), "--as", "101@acme.example", "--note", "call back")  # no change: no row
    assert MarkAudit.select().count() == 1
    refused(fsctl, "rec", "mark", str(row.id), "--as", "101@acme.example", "--note", "ok", "--field1", "x" * 129)
    assert MarkAudit.select().count() == 1 and Recording.get_by_id(row.id).note == "call back"  # nothing half-saved
    rec.mark(
        row.id, as_user=rec.tenant_viewer("acme.example"), fields={"field2": "CRM 7"}, actor="token:crm", via="api"
    )
    audit = json.loads(fsctl("rec", "audit", "--as", "100@acme.example", "--json").stdout)
    assert [(a["actor"], a["via"], a["changes"]) for a in audit] == [
        ("token:crm", "api", {"field2": ["", "CRM 7"]}),
        ("101@acme.example", "cli", {"colour": ["", "red"], "note": ["", "call back"]}),
    ]
    assert (
        refused(fsctl, "rec", "audit", "--as", "101@acme.example")
        == 'Error: mark.audit "101": only a tenant admin sees the audit of marks'
    )
