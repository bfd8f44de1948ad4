"""Statistics and exports on SQLite and PostgreSQL: figures, time zones, formats, streaming."""

import datetime as dt
import json
import tracemalloc

import pytest

from fsctl.db import database
from fsctl.model import CallRecord, Tenant
from fsctl.services import cdr, stats
from tests.fsctl.services.test_cdr import a_leg, b_leg, make_tenant

UTC = dt.timezone.utc


def at(text):
    """A naive UTC datetime from 'YYYY-MM-DD HH:MM'."""
    return dt.datetime.fromisoformat(text)


def day_of_calls():
    """Six calls of acme.example (Europe/Vilnius, UTC+2 in November)."""
    t = at("2026-11-10 08:00")
    m = lambda minutes: t + dt.timedelta(minutes=minutes)  # noqa: E731
    return [
        # 1. DID +37052000000 -> group 200, answered by 102 after 10 s, 100 s talk
        b_leg("1-101", "c1", "101", start=m(0), end=m(0) + dt.timedelta(seconds=10), cause="LOSE_RACE"),
        b_leg(
            "1-102",
            "c1",
            "102",
            start=m(0),
            answer=m(0) + dt.timedelta(seconds=10),
            end=m(0) + dt.timedelta(seconds=110),
        ),
        a_leg(
            "c1",
            caller="+37061111111",
            did="+37052000000",
            route="group:200",
            start=m(0),
            answer=m(0) + dt.timedelta(seconds=10),
            end=m(0) + dt.timedelta(seconds=110),
            bridged_to="1-102",
            bridged_user="102",
        ),
        # 2. DID -> group 200, nobody answered: missed for 101, 102, 103
        *[
            b_leg(f"2-{u}", "c2", u, start=m(30), end=m(30) + dt.timedelta(seconds=20), cause="ORIGINATOR_CANCEL")
            for u in ("101", "102", "103")
        ],
        a_leg(
            "c2",
            caller="+37062222222",
            did="+37052000000",
            route="group:200",
            start=m(30),
            end=m(30) + dt.timedelta(seconds=20),
            cause="ORIGINATOR_CANCEL",
            disposition="recv_cancel",
        ),
        # 3. internal 101 -> 102, answered, 40 s talk
        b_leg(
            "3-102",
            "c3",
            "102",
            start=m(60),
            answer=m(60) + dt.timedelta(seconds=5),
            end=m(60) + dt.timedelta(seconds=45),
        ),
        a_leg(
            "c3",
            caller="101",
            dest="102",
            route="user:102",
            start=m(60),
            answer=m(60) + dt.timedelta(seconds=5),
            end=m(60) + dt.timedelta(seconds=45),
            bridged_to="3-102",
            bridged_user="102",
        ),
        # 4. DID +37052000001 -> queue 600, caller left while 101 rang (abandoned)
        b_leg("4-101", "c4", "101", queue=True, start=m(90), end=m(91), cause="ORIGINATOR_CANCEL"),
        a_leg(
            "c4",
            caller="+37063333333",
            did="+37052000001",
            route="queue:600",
            start=m(90),
            answer=m(90),
            end=m(92),
            app="callcenter",
            cc_queue="600@acme.example",
        ),
        # 5. 104 calls out, answered, 60 s
        b_leg("5-gw", "c5", "+37060000000", start=m(120), answer=m(121), end=m(122), gateway="default", caller="104"),
        a_leg(
            "c5",
            caller="104",
            dest="+37060000000",
            route="external:+37060000000",
            start=m(120),
            answer=m(121),
            end=m(122),
            bridged_to="5-gw",
            bridged_channel="sofia/gateway/default/+37060000000",
        ),
        # 6. late evening UTC = next day in Vilnius: 22:30 UTC = 00:30 local, voicemail of 103
        a_leg(
            "c6",
            caller="+37064444444",
            did="+37052000001",
            route="voicemail:103",
            start=at("2026-11-10 22:30"),
            answer=at("2026-11-10 22:30"),
            end=at("2026-11-10 22:31"),
            app="voicemail",
            app_arg="default acme.example 103",
        ),
    ]


@pytest.fixture
def acme(db):
    tenant = make_tenant(db)
    report = cdr.ingest_hangups(day_of_calls())
    assert report.errors == []
    return tenant


def data(fsctl, *args):
    return json.loads(fsctl(*args, "--json").stdout)


PERIOD = ("--from", "2026-11-01", "--to", "2026-11-30")


def test_user_statistics(acme, fsctl):
    rows = data(fsctl, "stats", "users", "acme.example", *PERIOD)
    assert rows == [
        {
            "user": "101",
            "name": "User 101",
            "received": 3,
            "answered": 0,
            "missed": 1,
            "placed": 1,
            "avg_talk_time": 0.0,
            "talk_time": 0,
        },
        {
            "user": "102",
            "name": "User 102",
            "received": 3,
            "answered": 2,
            "missed": 1,
            "placed": 0,
            "avg_talk_time": 70.0,
            "talk_time": 140,
        },
        {
            "user": "103",
            "name": "User 103",
            "received": 2,
            "answered": 0,
            "missed": 2,
            "placed": 0,
            "avg_talk_time": 0.0,
            "talk_time": 0,
        },
        {
            "user": "104",
            "name": "User 104",
            "received": 0,
            "answered": 0,
            "missed": 0,
            "placed": 1,
            "avg_talk_time": 0.0,
            "talk_time": 0,
        },
    ]


def test_user_statistics_csv_is_the_documented_schema(acme, fsctl, tmp_path):
    out = tmp_path / "users.csv"
    result = fsctl("stats", "users", "acme.example", *PERIOD, "--format", "csv", "--output", str(out))
    assert result.stderr.strip() == f"4 rows written to {out}"
    assert out.read_text().splitlines() == [
        "user,name,received,answered,missed,placed,avg_talk_time,talk_time",
        "101,User 101,3,0,1,1,0.0,0",
        "102,User 102,3,2,1,0,70.0,140",
        "103,User 103,2,0,2,0,0.0,0",
        "104,User 104,0,0,0,1,0.0,0",
    ]


def test_groups_queues_dids(acme, fsctl):
    assert data(fsctl, "stats", "groups", "acme.example", *PERIOD) == [
        {
            "group": "200",
            "calls": 2,
            "answered": 1,
            "missed": 1,
            "abandoned": 0,
            "busy": 0,
            "failed": 0,
            "refused": 0,
            "avg_talk_time": 100.0,
            "talk_time": 100,
        }
    ]
    assert data(fsctl, "stats", "queues", "acme.example", *PERIOD) == [
        {
            "queue": "600",
            "calls": 1,
            "answered": 0,
            "missed": 0,
            "abandoned": 1,
            "busy": 0,
            "failed": 0,
            "refused": 0,
            "avg_talk_time": 0.0,
            "talk_time": 0,
        }
    ]
    dids = data(fsctl, "stats", "dids", "acme.example", *PERIOD)
    assert [(d["did"], d["calls"], d["answered"], d["missed"], d["abandoned"]) for d in dids] == [
        ("+37052000000", 2, 1, 1, 0),
        ("+37052000001", 2, 0, 1, 1),
    ]


def test_hourly_and_daily_use_the_tenant_time_zone(acme, fsctl):
    hourly = data(fsctl, "stats", "hourly", "acme.example", *PERIOD)
    assert [h["hour"] for h in hourly] == list(range(24))
    assert {h["hour"]: h["calls"] for h in hourly if h["calls"]} == {0: 1, 10: 2, 11: 2, 12: 1}
    daily = data(fsctl, "stats", "daily", "acme.example", "--from", "2026-11-09", "--to", "2026-11-12")
    assert [(d["date"], d["calls"], d["answered"], d["missed"]) for d in daily] == [
        ("2026-11-09", 0, 0, 0),
        ("2026-11-10", 5, 3, 1),
        ("2026-11-11", 1, 0, 1),
        ("2026-11-12", 0, 0, 0),
    ]


def test_quarter_hour_time_zone(db, fsctl):
    """Asia/Kathmandu is UTC+05:45: 18:10 UTC is 23:55 local, 18:20 UTC is 00:05 the next day."""
    make_tenant(db, tz="Asia/Kathmandu")
    refused = dict(cause="NO_ROUTE_DESTINATION", disposition="send_refuse")
    cdr.ingest_hangups(
        [a_leg("k1", start=at("2026-11-23 18:10"), **refused), a_leg("k2", start=at("2026-11-23 18:20"), **refused)]
    )
    daily = data(fsctl, "stats", "daily", "acme.example", "--from", "2026-11-23", "--to", "2026-11-24")
    assert [(d["date"], d["calls"]) for d in daily] == [("2026-11-23", 1), ("2026-11-24", 1)]
    hourly = data(fsctl, "stats", "hourly", "acme.example", "--from", "2026-11-23", "--to", "2026-11-24")
    assert {h["hour"]: h["failed"] for h in hourly if h["calls"]} == {23: 1, 0: 1}


def test_call_log_filters(acme, fsctl):
    all_calls = data(fsctl, "cdr", "list", "acme.example", *PERIOD)
    assert [c["uuid"] for c in all_calls] == ["c1", "c2", "c3", "c4", "c5", "c6"]
    assert all_calls[0] == {
        "uuid": "c1",
        "started_at": "2026-11-10T08:00:00Z",
        "direction": "in",
        "caller": "+37061111111",
        "caller_name": "+37061111111",
        "callee": "+37052000000",
        "did": "+37052000000",
        "target": "group:200",
        "status": "answered",
        "answered_by": "102",
        "missed_by": "",
        "duration": 110,
        "talk_time": 100,
        "hangup_cause": "NORMAL_CLEARING",
        "recording": None,
        "node": None,
    }
    missed_103 = data(fsctl, "cdr", "list", "acme.example", *PERIOD, "--user", "103", "--status", "missed")
    assert [c["uuid"] for c in missed_103] == ["c2", "c6"]
    of_101 = data(fsctl, "cdr", "list", "acme.example", *PERIOD, "--user", "101")
    assert [c["uuid"] for c in of_101] == ["c1", "c2", "c3", "c4"]  # rang, missed, placed, queue offer
    one_day = data(fsctl, "cdr", "list", "acme.example", "--from", "2026-11-11", "--to", "2026-11-11")
    assert [c["uuid"] for c in one_day] == ["c6"]  # 00:30 local on the 11th
    table = fsctl("cdr", "list", "acme.example", *PERIOD, "--status", "abandoned").stdout
    assert "+37063333333" in table and "queue:600" in table and "+37061111111" not in table  # c4 only


@pytest.mark.parametrize(
    "args,message",
    [
        (("--from", "yesterday"), 'Error: --from "yesterday": must be a date YYYY-MM-DD or a time YYYY-MM-DDTHH:MM'),
        (
            ("--from", "2026-11-30", "--to", "2026-11-01"),
            'Error: --from "2026-11-30": must be before --to (2026-11-01)',
        ),
        (("--user", "1x"), 'Error: --user "1x": must be 2 to 6 digits'),
    ],
)
def test_bad_filters_are_one_line_errors(acme, fsctl, args, message):
    result = fsctl("cdr", "list", "acme.example", *args, ok=False)
    assert result.exit_code == 2 and result.stderr.strip() == message and result.stdout == ""


def test_unknown_tenant_and_table_to_file(fsctl, tmp_path):
    result = fsctl("stats", "users", "nope.example", ok=False)
    assert (result.exit_code, result.stderr.strip()) == (2, 'Error: tenant "nope.example" does not exist')
    fsctl("tenant", "add", "acme.example", "--name", "A")
    result = fsctl("stats", "users", "acme.example", "--format", "table", "--output", str(tmp_path / "x"), ok=False)
    assert result.exit_code == 2 and "--output needs --format csv or json" in result.stderr
    assert not (tmp_path / "x").exists()


def test_period_defaults_and_times():
    tenant = Tenant(domain="a.example", name="A", timezone="Europe/Vilnius")
    # 30 days back crosses the end of summer time (25 October): the local midnights stay midnights
    assert stats.period(tenant, None, None, today=dt.date(2026, 11, 23)) == (
        at("2026-10-24 21:00"),
        at("2026-11-23 22:00"),
    )
    assert stats.period(tenant, "2026-11-01T08:30", "2026-11-01T09:00+00:00") == (
        at("2026-11-01 06:30"),
        at("2026-11-01 09:00"),
    )


# --- streaming ----------------------------------------------------------------------------------


class Sink:
    """A text file that only counts."""

    def __init__(self):
        self.chars = 0

    def write(self, text):
        self.chars += len(text)


def _bulk(tenant, n):
    base = at("2026-11-01 00:00")
    rows = [
        dict(
            tenant=tenant.id,
            uuid=f"bulk-{i:07d}",
            direction="in",
            caller="+37061234567",
            caller_name="A caller with a fairly long name, to weigh",
            callee="+37052000000",
            did="+37052000000",
            started_at=base + dt.timedelta(seconds=i),
            status="missed",
            missed_by="101,102",
            complete=True,
            hangup_cause="ORIGINATOR_CANCEL",
        )
        for i in range(n)
    ]
    with database.atomic():
        for i in range(0, n, 1000):
            CallRecord.insert_many(rows[i : i + 1000]).execute()


def test_export_streams_in_constant_memory(db):
    tenant = make_tenant(db)
    n = 20000
    _bulk(tenant, n)
    start, end = at("2026-11-01 00:00"), at("2026-12-01 00:00")
    sink = Sink()
    with database.atomic():
        tracemalloc.start()
        try:
            count = stats.write_csv(stats.iter_calls(tenant, start, end), stats.CALL_COLUMNS, sink)
            _, peak = tracemalloc.get_traced_memory()
        finally:
            tracemalloc.stop()
    assert count == n and sink.chars > n * 100
    # A list of the rows would take > 20 MB here; streaming stays far below.
    assert peak < 2_500_000, peak


def test_postgres_exports_through_a_server_side_cursor(db):
    tenant = make_tenant(db)
    _bulk(tenant, 10)
    rows = stats.iter_calls(tenant, at("2026-11-01 00:00"), at("2026-12-01 00:00"))
    with database.atomic():
        first = next(rows)
        if stats._is_pg():
            open_cursors = database.execute_sql(
                "SELECT count(*) FROM pg_cursors WHERE name LIKE 'fsctl_stream_%%'"
            ).fetchone()[0]
            assert open_cursors == 1
        assert first["uuid"] == "bulk-0000000" and len(list(rows)) == 9


def test_group_reached_through_a_time_rule_counts_for_the_group(db, fsctl):
    """fsctl_route is where the call started (the time rule); fsctl_target the group that rang."""
    make_tenant(db)
    t = at("2026-11-10 09:00")
    a = a_leg(
        "tr1",
        caller="+37065555555",
        did="+37052000000",
        route="timerule:office",
        start=t,
        end=t + dt.timedelta(seconds=20),
        cause="ORIGINATOR_CANCEL",
        disposition="recv_cancel",
    )
    a["variable_fsctl_target"] = "group:200"
    report = cdr.ingest_hangups(
        [b_leg("tr1-101", "tr1", "101", start=t, end=t + dt.timedelta(seconds=20), cause="ORIGINATOR_CANCEL"), a]
    )
    assert report.errors == []
    groups = data(fsctl, "stats", "groups", "acme.example", *PERIOD)
    assert [(g["group"], g["calls"], g["missed"]) for g in groups] == [("200", 1, 1)]


# --- one scan for the report, CSV straight from the database's tuples ---------------------------


def _odd_calls(tenant):
    """Rows the ingestion does not make but a database may hold: NULL keys, text that CSV must quote."""
    base = at("2026-11-20 10:00")
    rows = [
        dict(
            uuid="odd-1",
            direction="in",
            caller='+370 "6"',
            caller_name="Name, with comma\nand line",
            callee="200",
            target_kind="group",
            target=None,
            status="missed",
        ),
        dict(
            uuid="odd-2",
            direction="in",
            caller="x",
            caller_name="",
            callee="600",
            target_kind="queue",
            target="600",
            queue=None,
            did="+37052000009",
            status="answered",
            talk_time=7,
            duration=9,
        ),
        dict(
            uuid="odd-3",
            direction="in",
            caller="y",
            caller_name="Ūla",
            callee="",
            target_kind="",
            target="zzz",
            queue="q@acme",
            did=None,
            status="busy",
        ),
        dict(
            uuid="odd-4",
            direction="internal",
            caller="101",
            caller_name="a,b",
            callee="102",
            target_kind=None,
            target=None,
            did=None,
            status="failed",
            missed_by="101,102",
            recording_path='rec/"x",y.wav',
        ),
    ]
    with database.atomic():
        for i, row in enumerate(rows):
            CallRecord.create(tenant=tenant, started_at=base + dt.timedelta(minutes=17 * i), complete=True, **row)


def test_report_scan_equals_the_reports(acme):
    _odd_calls(acme)
    for first, last in (("2026-11-01", "2026-11-30"), ("2026-11-10", "2026-11-10"), ("2026-11-20", "2026-11-21")):
        start, end = stats.period(acme, first, last)
        figures = stats.call_figures(acme, start, end)
        assert figures["daily"] == list(stats.daily_stats(acme, start, end))
        assert figures["hourly"] == list(stats.hourly_stats(acme, start, end))
        for by in ("groups", "queues", "dids"):
            assert figures[by] == list(stats.keyed_stats(acme, start, end, by)), by
    assert [g["group"] for g in figures["groups"]] == [None]  # a group call without its group
    assert [q["queue"] for q in figures["queues"]] == ["600", "q@acme"]


def test_csv_export_is_the_json_export(acme, fsctl):
    _odd_calls(acme)
    import csv
    import io

    json_rows = data(fsctl, "cdr", "list", "acme.example", *PERIOD)
    text = fsctl("cdr", "list", "acme.example", *PERIOD, "--format", "csv").stdout
    parsed = list(csv.reader(io.StringIO(text)))
    assert parsed[0] == list(stats.LOG_COLUMNS)
    assert parsed[1:] == [["" if r[c] is None else str(r[c]) for c in stats.LOG_COLUMNS] for r in json_rows]
    odd = {r["uuid"]: r for r in json_rows}
    assert odd["odd-1"]["target"] == "group:None" and odd["odd-1"]["missed_by"] == ""
    assert odd["odd-3"]["target"] is None and odd["odd-4"]["recording"] == 'rec/"x",y.wav'
    assert odd["odd-1"]["started_at"] == "2026-11-20T10:00:00Z"
    # what the writer made of each row is what csv.writer makes of the row's values
    expected = io.StringIO()
    writer = csv.writer(expected, lineterminator="\n")
    writer.writerow(stats.LOG_COLUMNS)
    writer.writerows([[r[c] for c in stats.LOG_COLUMNS] for r in json_rows])
    assert text == expected.getvalue()


def test_call_log_page_missed_first_and_user_daily(db):
    """stats.call_log (a page, newest first, missed first on request, per set of users) and stats.user_daily."""
    import datetime as dt

    from fsctl.model import Tenant as T
    from fsctl.services import stats as st

    t = T.create(domain="acme.example", name="ACME", timezone="Europe/Vilnius")
    day = dt.datetime(2026, 11, 20, 21, 30)  # 23:30 in Vilnius: the 20th; the next call is the 21st there
    add_call(t, "a", day, "+3701", "101", "answered", {"101": dict(received=1, answered=1)})
    add_call(t, "b", day + dt.timedelta(hours=1), "+3702", "101", "missed", {"101": dict(received=1, missed=1)})
    add_call(
        t,
        "c",
        day + dt.timedelta(hours=2),
        "+3703",
        "102",
        "answered",
        {"102": dict(received=1, answered=1), "101": dict(received=1)},
    )
    start, end = dt.datetime(2026, 11, 19), dt.datetime(2026, 11, 23)
    uuids = [c["uuid"] for c in st.call_log(t, start, end)]
    assert uuids == ["c", "b", "a"]
    assert [c["uuid"] for c in st.call_log(t, start, end, missed_first=True)] == ["b", "c", "a"]
    assert [(c["uuid"], c["missed"]) for c in st.call_log(t, start, end, users={"102"}, missed_first=True)] == [
        ("c", False)
    ]
    assert [c["uuid"] for c in st.call_log(t, start, end, users={"101"}, limit=2, offset=1)] == ["b", "a"]
    assert st.call_log(t, start, end, users=set()) == []
    daily = st.user_daily(t, start, end, "101")
    assert [(d["date"], d["received"], d["answered"], d["missed"]) for d in daily if d["received"]] == [
        ("2026-11-20", 1, 1, 0),
        ("2026-11-21", 2, 0, 1),
    ]
    assert [d["date"] for d in daily] == ["2026-11-19", "2026-11-20", "2026-11-21", "2026-11-22", "2026-11-23"]


def add_call(tenant, uuid, started, caller, callee, status, parties):
    """A call record with its parties: parties = {user: dict(received=.., answered=.., missed=.., placed=..)}."""
    from fsctl.model import CallParty, CallRecord

    call = CallRecord.create(
        tenant=tenant,
        uuid=uuid,
        direction="in",
        caller=caller,
        callee=callee,
        status=status,
        started_at=started,
        ended_at=started + dt.timedelta(seconds=40),
        duration=40,
        talk_time=30 if status == "answered" else 0,
        missed_by=",".join(u for u, p in parties.items() if p.get("missed")),
        answered_by=next((u for u, p in parties.items() if p.get("answered")), None),
    )
    for user, p in parties.items():
        CallParty.create(
            call=call,
            tenant=tenant,
            user_number=user,
            started_at=started,
            talk_time=30 if p.get("answered") else 0,
            **p,
        )
    return call
