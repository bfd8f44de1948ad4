"""Statistics speed (issues 6 and 12): statistics and exports against the sqlite3 CLI, ingestion rate.

Full: 1,000,000 call records on SQLite; quick: 20,000.
- per-user statistics for one month through fsctl.services.stats.user_stats, against /usr/bin/sqlite3 running
  the same SQL on the same file in the same run (target: within 1.5x);
- whole commands against the sqlite3 CLI, in pairs (the median of the pairs' ratios), the whole
  data set (August to October): `fsctl stats users --format csv` against the same SQL (goal <= 1.15x),
  `fsctl cdr list --format csv` against the same query in `.mode csv` (goal <= 1.3x), and
  `fsctl stats report` against the six queries the report ran before issue 12 (goal <= 1.0x; the
  queries it runs now are timed too);
- CSV export of every call record in-process: rate and tracemalloc peak (target: flat, independent
  of the row count);
- ingestion of CHANNEL_HANGUP_COMPLETE events through fsctl.services.cdr.ingest_hangups in batches of 1,000
  (target: >= 5,000 events/s).
"""

import datetime as dt
import os
import random
import shutil
import sqlite3
import subprocess
import tempfile
import time
import tracemalloc

from fsctl.db import close_database, open_database
from fsctl.model import Tenant, User
from fsctl.services import cdr, stats

from ._paired import FSCTL, env_with, paired, run_command, verdict

SQLITE_CLI = "/usr/bin/sqlite3"
START = dt.datetime(2026, 8, 1)
DAYS = 92  # August to October: "a month" is a third of the rows
USERS = [str(100 + i) for i in range(60)]


def _populate(path, n):
    """n calls (with their per-user rows) written straight through sqlite3, like months of traffic."""
    rnd = random.Random(6)
    con = sqlite3.connect(path)
    con.execute("PRAGMA synchronous=OFF")
    con.execute("PRAGMA journal_mode=WAL")
    tenant_id = con.execute("SELECT id FROM tenant WHERE domain='acme.example'").fetchone()[0]
    statuses = ["answered"] * 6 + ["missed"] * 2 + ["abandoned", "busy"]
    step = DAYS * 86400 / n
    calls, parties = [], []
    call_id = 0
    for i in range(n):
        call_id += 1
        started = START + dt.timedelta(seconds=int(i * step))
        s = started.strftime("%Y-%m-%d %H:%M:%S")
        status = rnd.choice(statuses)
        user = rnd.choice(USERS)
        inbound = rnd.random() < 0.6
        talk = rnd.randint(10, 600) if status == "answered" else 0
        calls.append(
            (
                tenant_id,
                f"bench-{i:08d}",
                "in" if inbound else "internal",
                "+37061234567" if inbound else rnd.choice(USERS),
                "",
                user,
                "+37052000000" if inbound else None,
                "group" if inbound else "user",
                "200" if inbound else user,
                user if status == "answered" else None,
                s,
                s,
                talk + 5,
                talk,
                "NORMAL_CLEARING",
                status,
                user if status == "missed" else "",
                1,
            )
        )
        parties.append((call_id, tenant_id, user, s, 1, int(status == "answered"), int(status == "missed"), 0, talk))
        if not inbound:
            other = USERS[(USERS.index(user) + 1) % len(USERS)]
            parties.append((call_id, tenant_id, other, s, 0, 0, 0, 1, 0))
        if len(calls) >= 50000:
            _flush(con, calls, parties)
    _flush(con, calls, parties)
    con.commit()
    con.close()


def _flush(con, calls, parties):
    con.executemany(
        "INSERT INTO call_record (tenant_id, uuid, direction, caller, caller_name, callee, did, target_kind, target, "
        "answered_by, started_at, ended_at, duration, talk_time, hangup_cause, status, missed_by, complete, "
        "caller_left, a_answered) VALUES (?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,0,0)",
        calls,
    )
    con.executemany(
        "INSERT INTO call_party (call_id, tenant_id, user_number, started_at, received, answered, missed, placed, "
        "talk_time) VALUES (?,?,?,?,?,?,?,?,?)",
        parties,
    )
    calls.clear()
    parties.clear()


def _literal(value):
    if isinstance(value, dt.datetime):
        return "'" + value.strftime("%Y-%m-%d %H:%M:%S") + "'"
    return str(value)


def _cli_sql(sql, params):
    """A query with its parameters written in, for the sqlite3 CLI."""
    return sql.replace("?", "{}").format(*[_literal(p) for p in params]) + ";"


# The report's queries before issue 12: the 15-minute buckets twice (daily, hourly), one scan
# each for groups, queues and DIDs, and the per-user sums (the reference of the report's goal).
_STATUS_SUMS = ", ".join(f"SUM(CASE WHEN status = '{s}' THEN 1 ELSE 0 END)" for s in stats.STATUS_COLUMNS)
_OLD_BUCKETS = (
    "SELECT (CAST(strftime('%s', started_at) AS INTEGER) / 900) AS b, COUNT(*), {sums}, "
    "SUM(CASE WHEN status = 'answered' THEN talk_time ELSE 0 END) FROM call_record "
    "WHERE tenant_id = ? AND started_at >= ? AND started_at < ? GROUP BY b ORDER BY b"
)
_OLD_KEYED = (
    "SELECT {key} AS k, COUNT(*), {sums}, SUM(CASE WHEN status = 'answered' THEN talk_time ELSE 0 END) "
    "FROM call_record WHERE tenant_id = ? AND started_at >= ? AND started_at < ? AND {where} "
    "GROUP BY {key} ORDER BY {key}"
)


def _old_report_sql(tenant_id, start, end):
    params = [tenant_id, start, end]
    queries = [_OLD_BUCKETS.format(sums=_STATUS_SUMS)] * 2
    for key, where in (
        ("target", "target_kind = 'group'"),
        ("COALESCE(queue, target)", "(target_kind = 'queue' OR queue IS NOT NULL)"),
        ("did", "did IS NOT NULL"),
    ):
        queries.append(_OLD_KEYED.format(key=key, where=where, sums=_STATUS_SUMS))
    queries.append(stats.user_stats_sql(tenant_id, start, end)[0])
    return "\n".join(_cli_sql(q, params) for q in queries)


def _whole_commands(path, tenant, quick):
    """The whole commands against the sqlite3 CLI, in pairs, over the whole data set."""
    first, last = START.date().isoformat(), (START + dt.timedelta(days=DAYS - 1)).date().isoformat()
    start, end = stats.period(tenant, first, last)
    period = ["--from", first, "--to", last]
    env = env_with(database=f"sqlite:///{path}")
    folder = os.path.dirname(path)
    out = os.path.join(folder, "out.csv")
    repeat = 3 if quick else 5
    figures = []

    def to_file(argv, stdin=None):
        def run():
            with open(out, "wb") as fh:
                return run_command(argv, env=env, input=stdin, stdout=fh)

        return run

    users_sql = _cli_sql(*stats.user_stats_sql(tenant.id, start, end))
    t_cli, t_cmd, ratio = paired(
        to_file([SQLITE_CLI, "-csv", path, users_sql]),
        to_file([FSCTL, "stats", "users", tenant.domain, *period, "--format", "csv"]),
        repeat,
    )
    figures += [
        ("stats users --format csv (whole command), all calls", f"{t_cmd:.2f} s"),
        ("  sqlite3 CLI, same SQL (whole command)", f"{t_cli:.2f} s"),
        ("  ratio fsctl / sqlite3, paired median (goal <= 1.15)", f"{ratio:.2f} {verdict(ratio, 1.15, quick=quick)}"),
    ]
    calls_sql = _cli_sql(*stats.call_rows_sql(tenant.id, start, end))
    script = f".headers on\n.mode csv\n{calls_sql}\n".encode()
    t_cli, t_cmd, ratio = paired(
        to_file([SQLITE_CLI, path], stdin=script),
        to_file([FSCTL, "cdr", "list", tenant.domain, *period, "--format", "csv"]),
        repeat,
    )
    with open(out, "rb") as fh:
        rows = sum(1 for _ in fh) - 1
    figures += [
        (f"cdr list --format csv (whole command), {rows:,} rows", f"{t_cmd:.2f} s ({rows / t_cmd:,.0f} rows/s)"),
        ("  sqlite3 CLI .mode csv, same query (whole command)", f"{t_cli:.2f} s ({rows / t_cli:,.0f} rows/s)"),
        ("  ratio fsctl / sqlite3, paired median (goal <= 1.3)", f"{ratio:.2f} {verdict(ratio, 1.3, quick=quick)}"),
    ]
    html = os.path.join(folder, "report.html")
    report = [FSCTL, "stats", "report", tenant.domain, *period, "--out", html]
    now_sql = "\n".join([_cli_sql(*stats.call_figures_sql(tenant.id, start, end)), users_sql])
    t_old, t_cmd, ratio = paired(
        to_file([SQLITE_CLI, path], stdin=_old_report_sql(tenant.id, start, end).encode()), to_file(report), repeat
    )
    t_now, _, ratio_now = paired(to_file([SQLITE_CLI, path], stdin=now_sql.encode()), to_file(report), repeat)
    figures += [
        ("stats report (whole command, HTML)", f"{t_cmd:.2f} s"),
        ("  sqlite3 CLI, the report's six queries before issue 12", f"{t_old:.2f} s"),
        (
            "  ratio fsctl / those queries, paired median (goal <= 1.0)",
            f"{ratio:.2f} {verdict(ratio, 1.0, quick=quick)}",
        ),
        ("  sqlite3 CLI, the report's two queries now; ratio", f"{t_now:.2f} s; {ratio_now:.2f}"),
    ]
    return figures


def _cli_seconds(path, sql):
    started = time.perf_counter()
    out = subprocess.run([SQLITE_CLI, path, sql], capture_output=True, text=True, check=True)
    return time.perf_counter() - started, out.stdout.count("\n")


class _Sink:
    def __init__(self):
        self.chars = 0

    def write(self, text):
        self.chars += len(text)


def _events(n_calls, offset):
    """A-leg + B-leg CHANNEL_HANGUP_COMPLETE headers per call (the header names of the real captures)."""
    base = int(dt.datetime(2026, 11, 2, tzinfo=dt.timezone.utc).timestamp())
    events = []
    for i in range(n_calls):
        a, b = f"ing-a-{offset + i:08d}", f"ing-b-{offset + i:08d}"
        t = str(base + offset + i)
        end = str(base + offset + i + 60)
        user = USERS[i % len(USERS)]
        common = {
            "Event-Name": "CHANNEL_HANGUP_COMPLETE",
            "Hangup-Cause": "NORMAL_CLEARING",
            "Caller-Caller-ID-Number": "+37061234567",
            "Caller-Caller-ID-Name": "Caller",
            "variable_start_epoch": t,
            "variable_answer_epoch": t,
            "variable_end_epoch": end,
            "variable_billsec": "60",
            "variable_user_context": "acme.example",
            "variable_domain_name": "acme.example",
            "Caller-Context": "acme.example",
        }
        events.append(
            {
                **common,
                "Unique-ID": b,
                "Call-Direction": "outbound",
                "variable_originator": a,
                "variable_originating_leg_uuid": a,
                "variable_dialed_user": user,
                "Caller-Destination-Number": user,
                "Channel-Name": f"sofia/internal/{user}@127.0.0.1",
            }
        )
        events.append(
            {
                **common,
                "Unique-ID": a,
                "Call-Direction": "inbound",
                "variable_fsctl_did": "+37052000000",
                "variable_fsctl_tenant": "acme.example",
                "variable_fsctl_route": "group:200",
                "Caller-Destination-Number": "+37052000000",
                "variable_last_bridge_to": b,
                "variable_bridge_epoch": t,
                "variable_dialed_user": user,
                "variable_sip_hangup_disposition": "recv_bye",
                "variable_last_app": "bridge",
            }
        )
    return events


def run(quick: bool) -> list[tuple[str, str]]:
    n = 20_000 if quick else 1_000_000
    n_ingest_calls = 2_500 if quick else 25_000
    figures = []
    tmp = tempfile.mkdtemp(prefix="fsctl-stats-bench-")
    path = os.path.join(tmp, "bench.db")
    try:
        open_database(f"sqlite:///{path}")
        tenant = Tenant.create(domain="acme.example", name="Bench", timezone="Europe/Vilnius")
        for u in USERS:
            User.create(tenant=tenant, number=u, name=f"User {u}", sip_password="x" * 20)
        close_database()
        started = time.perf_counter()
        _populate(path, n)
        figures.append((f"populate {n:,} call records (sqlite3 executemany)", f"{time.perf_counter() - started:.1f} s"))
        open_database(f"sqlite:///{path}")
        tenant = Tenant.get(Tenant.domain == "acme.example")

        # per-user statistics for October (local time), fsctl vs the sqlite3 CLI
        start, end = stats.period(tenant, "2026-10-01", "2026-10-31")
        sql, params = stats.user_stats_sql(tenant.id, start, end)
        cli_sql = _cli_sql(sql, params)
        ours, cli, rows = [], [], 0
        for _ in range(3):
            t0 = time.perf_counter()
            rows = len(list(stats.user_stats(tenant, start, end)))
            ours.append(time.perf_counter() - t0)
            seconds, cli_rows = _cli_seconds(path, cli_sql)
            cli.append(seconds)
        ratio = min(ours) / min(cli)
        figures.append(
            ("per-user statistics, one month: fsctl (best of 3)", f"{min(ours) * 1000:.0f} ms ({rows} users)")
        )
        figures.append(
            (
                "per-user statistics, one month: sqlite3 CLI, same SQL (best of 3)",
                f"{min(cli) * 1000:.0f} ms ({cli_rows} rows)",
            )
        )
        figures.append(
            ("  ratio fsctl / sqlite3 CLI (target <= 1.5)", f"{ratio:.2f} {'OK' if ratio <= 1.5 else 'MISSED'}")
        )

        figures += _whole_commands(path, tenant, quick)

        # CSV export of every call record, streamed: tuples from the cursor (as `cdr list` does),
        # and dicts (iter_calls + write_csv, the library's row-by-row API)
        all_start, all_end = dt.datetime(2026, 1, 1), dt.datetime(2027, 1, 1)
        t0 = time.perf_counter()
        count = stats.write_csv_batches(stats.call_rows(tenant, all_start, all_end), stats.CALL_COLUMNS, _Sink())
        seconds = time.perf_counter() - t0
        figures.append(
            (
                f"CSV export of all {count:,} call records (tuples, writerows)",
                f"{seconds:.1f} s ({count / seconds:,.0f} rows/s)",
            )
        )
        t0 = time.perf_counter()
        count = stats.write_csv(stats.iter_calls(tenant, all_start, all_end), stats.CALL_COLUMNS, _Sink())
        seconds = time.perf_counter() - t0
        figures.append(
            (
                f"CSV export of all {count:,} call records (dicts, writerow)",
                f"{seconds:.1f} s ({count / seconds:,.0f} rows/s)",
            )
        )
        peaks = []
        for limit_end in (START + dt.timedelta(days=DAYS // 10), all_end):
            tracemalloc.start()
            counted = stats.write_csv_batches(
                stats.call_rows(tenant, all_start, limit_end), stats.CALL_COLUMNS, _Sink()
            )
            peaks.append((counted, tracemalloc.get_traced_memory()[1]))
            tracemalloc.stop()
        for counted, peak in peaks:
            figures.append((f"  tracemalloc peak exporting {counted:,} rows", f"{peak / 1e6:.2f} MB"))

        # ingestion of hang-up events
        events = _events(n_ingest_calls, 0)
        t0 = time.perf_counter()
        for i in range(0, len(events), 1000):
            report = cdr.ingest_hangups(events[i : i + 1000])
            assert not report.errors, report.errors[:1]
        seconds = time.perf_counter() - t0
        rate = len(events) / seconds
        figures.append(
            (
                f"ingest {len(events):,} hang-up events (batches of 1,000)",
                f"{rate:,.0f} events/s {'OK' if rate >= 5000 else 'MISSED'} (target >= 5,000)",
            )
        )
        close_database()
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    return figures
