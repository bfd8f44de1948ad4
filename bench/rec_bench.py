"""Recordings: `rec pull` against OpenSSH's own sftp client, and search over the catalogue.

Both clients fetch from the same private sshd on 127.0.0.1 (tests/sshd.py) in the same run,
in pairs (sftp, then fsctl; the median of the pairs' ratios): one big file and many 1 MB files,
each as the whole `fsctl rec pull` command (catalogue query, connection, transfer, checks)
against `sftp -b` (connection, transfer), and fsctl's library call alone (fsctl.services.sftp.fetch_all).
Goals (issue 12): the whole command >= 0.9x sftp's speed on 1 x 200 MB, >= 1.2x on 500 x 1 MB;
a typical filtered search page over 1,000,000 catalogue rows in < 50 ms.
"""

import datetime as dt
import hashlib
import os
import random
import shutil
import statistics
import sys
import tempfile
import time

from fsctl import db as fsdb, migrations
from fsctl.model import Recording, Tenant, User
from fsctl.services import recordings as rec, sftp

from ._paired import FSCTL, env_with, paired, percentile, run_command, verdict

MB = 1024 * 1024
DOMAIN = "pull.example"


def _write_random(path, size):
    chunk = os.urandom(4 * MB)
    with open(path, "wb") as fh:
        left = size
        while left > 0:
            fh.write(chunk[: min(left, len(chunk))])
            left -= len(chunk)
    with open(path, "rb") as fh:
        return hashlib.file_digest(fh, "sha256").hexdigest()


def _fresh(local_dir):
    """An empty folder, the disk quiet: what an earlier run wrote or deleted is written back first."""
    shutil.rmtree(local_dir, ignore_errors=True)
    os.sync()


def _openssh_get(server, remote_glob, local_dir):
    _fresh(local_dir)
    os.makedirs(local_dir)
    return run_command(
        [
            "sftp",
            "-q",
            "-i",
            server.client_key,
            "-o",
            f"UserKnownHostsFile={server.known_hosts}",
            "-o",
            "StrictHostKeyChecking=yes",
            "-o",
            "BatchMode=yes",
            "-P",
            str(server.port),
            "-b",
            "-",
            f"{server.user}@127.0.0.1",
        ],
        input=f"get {remote_glob} {local_dir}/\n".encode(),
    )


def _fsctl_fetch(server, files, local_dir):
    _fresh(local_dir)
    endpoint = sftp.Endpoint("127.0.0.1", server.port, server.user, server.client_key, server.known_hosts)
    transfers = [
        sftp.Transfer(path, os.path.join(local_dir, os.path.basename(path)), size, digest)
        for path, size, digest in files
    ]
    started = time.perf_counter()
    results = sftp.fetch_all(endpoint, transfers)
    elapsed = time.perf_counter() - started
    bad = [r for r in results if r.status != "fetched"]
    if bad:
        raise RuntimeError(f"fsctl pull failed: {bad[0].error}")
    return elapsed


def _catalogue(path, remote, day_files):
    """A catalogue whose recordings are the remote files: {day: [(rel, size, sha256)]}."""
    fsdb.open_database(f"sqlite:///{path}")
    try:
        tenant = Tenant.create(domain=DOMAIN, name="Pull")
        rows = []
        for day, files in day_files.items():
            for i, (full, size, digest) in enumerate(files):
                rows.append(
                    {
                        "tenant": tenant.id,
                        "user_number": "100",
                        "direction": "in",
                        "counterpart": "",
                        "started_at": dt.datetime.combine(day, dt.time(9)) + dt.timedelta(seconds=i),
                        "duration": 60,
                        "path": os.path.relpath(full, remote),
                        "size": size,
                        "sha256": digest,
                    }
                )
        with fsdb.transaction():
            Recording.insert_many(rows).execute()
    finally:
        fsdb.close_database()


def _transfer_figures(quick, work):
    from tests.sshd import SshdServer

    server = SshdServer(os.path.join(work, "sshd")).start()
    try:
        remote = os.path.join(work, "remote")
        big_day, many_day = dt.date(2026, 5, 1), dt.date(2026, 5, 2)
        big_dir = os.path.join(remote, DOMAIN, "2026", "05", "01")
        many_dir = os.path.join(remote, DOMAIN, "2026", "05", "02")
        os.makedirs(big_dir)
        os.makedirs(many_dir)
        big_size = (20 if quick else 200) * MB
        count = 50 if quick else 500
        big = os.path.join(big_dir, "big.bin")
        big_files = [(big, big_size, _write_random(big, big_size))]
        many = []
        for i in range(count):
            path = os.path.join(many_dir, f"r{i:04d}.bin")
            many.append((path, MB, _write_random(path, MB)))
        database = os.path.join(work, "pull.db")
        _catalogue(database, remote, {big_day: big_files, many_day: many})
        env = env_with(
            database=f"sqlite:///{database}",
            sftp_host="127.0.0.1",
            sftp_port=server.port,
            sftp_user=server.user,
            sftp_key=server.client_key,
            sftp_known_hosts=server.known_hosts,
            sftp_remote_dir=remote,
        )
        repeat = 3 if quick else 7
        figures = [("pull: connections fsctl uses here (one per core, at most 4)", str(sftp.default_jobs()))]
        cases = (
            ("1 x %d MB" % (big_size // MB), big_files, big, big_day, 0.9),
            (f"{count} x 1 MB", many, os.path.join(many_dir, "*"), many_day, 1.2),
        )
        for label, files, glob, day, goal in cases:
            total = sum(f[1] for f in files) / MB
            local_ssh, local_fsctl = os.path.join(work, "local-openssh"), os.path.join(work, "local-fsctl")

            def openssh():
                return _openssh_get(server, glob, local_ssh)

            def command():
                _fresh(local_fsctl)
                return run_command(
                    [
                        FSCTL,
                        "rec",
                        "pull",
                        "--tenant",
                        DOMAIN,
                        "--from",
                        day.isoformat(),
                        "--to",
                        day.isoformat(),
                        "--dest",
                        local_fsctl,
                    ],
                    env=env,
                )

            t_ssh, t_cmd, ratio = paired(openssh, command, repeat)
            speed = 1 / ratio
            figures += [
                (f"pull {label}: OpenSSH sftp -b, whole command (median)", f"{t_ssh:.2f} s ({total / t_ssh:.0f} MB/s)"),
                (f"pull {label}: fsctl rec pull, whole command (median)", f"{t_cmd:.2f} s ({total / t_cmd:.0f} MB/s)"),
                (
                    f"pull {label}: fsctl speed / sftp, paired median (goal >= {goal})",
                    f"{speed:.2f}x {verdict(speed, goal, higher_is_better=True, quick=quick)}",
                ),
            ]
            t_ssh, t_lib, ratio = paired(openssh, lambda: _fsctl_fetch(server, files, local_fsctl), repeat)
            figures.append((f"pull {label}: fetch_all in-process {t_lib:.2f} s, speed / sftp", f"{1 / ratio:.2f}x"))
        return figures
    finally:
        server.stop()


def load_catalogue(database, rows):
    """`rows` synthetic recordings over 20 tenants (half in t000.example), 180 days, 100 users each;
    every 97th has the note "call back". Returns (tenants, seconds it took).

    Loaded as an older catalogue would be, then indexed as the version 4 migration does (the
    index's triggers cost a statement journal per inserted row, ~20 us: 30 s more here)."""
    tenants = [Tenant.create(domain=f"t{i:03d}.example", name=f"T{i}") for i in range(20)]
    rnd = random.Random(5)
    start = dt.datetime(2026, 5, 1)
    colours = rec.COLOURS + ("",) * 20
    columns = (
        "tenant_id",
        "user_number",
        "user_name",
        "direction",
        "counterpart",
        "started_at",
        "duration",
        "path",
        "size",
        "sha256",
        "note",
        "colour",
        "field1",
        "field2",
        "field3",
        "created_at",
        "user_name_fold",
        "note_fold",
        "field1_fold",
        "field2_fold",
        "field3_fold",
    )
    sql = f"INSERT INTO recording ({', '.join(columns)}) VALUES ({', '.join('?' * len(columns))})"
    for name in ("insert", "delete", "update"):
        database.execute_sql(f"DROP TRIGGER recording_fts_{name}")
    began = time.perf_counter()
    with database.atomic():
        batch = []
        for i in range(rows):
            tenant = tenants[i % len(tenants)] if i % 2 else tenants[0]  # one big tenant: half the rows
            when = start + dt.timedelta(seconds=rnd.randrange(180 * 86400))
            user = str(100 + rnd.randrange(100))
            batch.append(
                (
                    tenant.id,
                    user,
                    "",
                    rnd.choice(("in", "out", "internal")),
                    f"+3706{rnd.randrange(10**7):07d}",
                    when.strftime("%Y-%m-%d %H:%M:%S"),
                    rnd.uniform(3, 600),
                    f"{tenant.domain}/{i}.wav",
                    100_000,
                    "0" * 64,
                    "call back" if i % 97 == 0 else "",
                    rnd.choice(colours),
                    "",
                    "",
                    "",
                    when,
                    "",
                    "call back" if i % 97 == 0 else "",
                    "",
                    "",
                    "",
                )
            )
            if len(batch) == 10_000:
                database.cursor().executemany(sql, batch)
                batch = []
        if batch:
            database.cursor().executemany(sql, batch)
    with database.atomic():
        migrations.search_index(database)
    database.execute_sql("ANALYZE")
    return tenants, time.perf_counter() - began


def _search_figures(quick, work):
    rows = 20_000 if quick else 1_000_000
    database = fsdb.open_database(f"sqlite:///{work}/bench.db")
    try:
        tenants, load = load_catalogue(database, rows)
        big = tenants[0].domain
        cases = {
            "tenant admin, one week, first page": (
                rec.make_filters(since="2026-09-01", until="2026-09-07"),
                f"100@{big}",
            ),
            "tenant admin, one week, user + min length": (
                rec.make_filters(since="2026-09-01", until="2026-09-07", user="150", min_length="60"),
                f"100@{big}",
            ),
            "tenant admin, counterpart prefix, no dates": (rec.make_filters(counterpart="+370612"), f"100@{big}"),
            "tenant admin, colour red, no dates": (rec.make_filters(colour="red"), f"100@{big}"),
            "operator, one day, all tenants": (rec.make_filters(since="2026-09-01", until="2026-09-01"), None),
            # worst case: a text that matches nothing scans the whole range
            "tenant admin, one month, note text matching nothing": (
                rec.make_filters(since="2026-09-01", until="2026-09-30", note="zzz"),
                f"100@{big}",
            ),
        }
        User.create(tenant=tenants[0], number="100", name="admin", sip_password="x" * 16, role="admin")
        figures = [(f"search: catalogue rows (SQLite, loaded and indexed in {load:.0f} s)", f"{rows:,}")]
        for label, (filters, as_user) in cases.items():
            times = []
            for _ in range(7):
                t0 = time.perf_counter()
                page = rec.search(filters, as_user, limit=50)
                [rec.recording_dict(r) for r in page]
                times.append(time.perf_counter() - t0)
            figures.append(
                (
                    f"search: {label} (50 rows; goal < 50 ms)",
                    f"{statistics.median(times) * 1000:.1f} ms (median of 7), {len(page)} rows",
                )
            )
        # Text search (issue 12): p99 in-process through the trigram index, the same search by LIKE
        # alone (the scan it replaces), and the whole command.
        texts = {
            "note zzz, operator, every tenant": (rec.make_filters(note="zzz"), None),
            "note zzz, tenant admin, one month": (
                rec.make_filters(since="2026-09-01", until="2026-09-30", note="zzz"),
                f"100@{big}",
            ),
            "note 'call back' (1% of the rows), operator": (rec.make_filters(note="call back"), None),
            "note 'ca' (2 letters: LIKE alone), operator": (rec.make_filters(note="ca"), None),
        }
        runs = 30 if quick else 200
        for label, (filters, as_user) in texts.items():
            times = []
            for _ in range(runs):
                t0 = time.perf_counter()
                page = [rec.recording_dict(r) for r in rec.search(filters, as_user, limit=50)]
                times.append(time.perf_counter() - t0)
            t0 = time.perf_counter()
            scan = rec.search(filters, as_user, limit=50, index=False)
            t_scan = time.perf_counter() - t0
            assert [r.id for r in scan] == [r["id"] for r in page]
            goal = " (goal p99 < 20 ms)" if "zzz" in label else ""
            mark = f" {verdict(percentile(times, 99), 0.02, quick=quick)}" if goal else ""
            figures.append(
                (
                    f"search: {label}{goal}",
                    f"p50 {percentile(times, 50) * 1e3:.1f} ms, p99 {percentile(times, 99) * 1e3:.1f} ms"
                    f"{mark}, {len(page)} rows; by LIKE alone {t_scan * 1e3:.0f} ms",
                )
            )
        env = env_with(database=f"sqlite:///{work}/bench.db")
        whole, floor = [], []
        for _ in range(5 if quick else 15):
            floor.append(run_command([sys.executable, "-c", "pass"]))
            whole.append(run_command([FSCTL, "rec", "search", "--note", "zzz"], env=env))
        figures.append(
            (
                "search: fsctl rec search --note zzz, whole command (goal < 0.1 s)",
                f"{statistics.median(whole):.3f} s {verdict(statistics.median(whole), 0.1, quick=quick)} "
                f"(median; python -c pass {statistics.median(floor):.3f} s)",
            )
        )
        return figures
    finally:
        fsdb.close_database()


def run(quick: bool) -> list[tuple[str, str]]:
    """The figures: transfer speeds against OpenSSH, search times over the catalogue."""
    work = tempfile.mkdtemp(prefix="fsctl-rec-bench-")
    try:
        return _transfer_figures(quick, work) + _search_figures(quick, work)
    finally:
        shutil.rmtree(work, ignore_errors=True)
