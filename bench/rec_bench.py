"""Recordings: `rec pull` (fsctl.services.sftp) against OpenSSH's own sftp client, and search over the catalogue.

Both clients fetch from the same private sshd on 127.0.0.1 (tests/sshd.py) in the same run:
one big file and many 1 MB files. Goals: >= 0.8x OpenSSH on the big file, >= 1.0x on the many
small files, and a typical filtered search page over 1,000,000 catalogue rows in < 50 ms.
"""

import datetime as dt
import hashlib
import os
import random
import shutil
import statistics
import subprocess
import tempfile
import time

from fsctl import db as fsdb
from fsctl.model import Tenant, User
from fsctl.services import recordings as rec, sftp

MB = 1024 * 1024


def _write_random(path, size):
    chunk = os.urandom(4 * MB)
    with open(path, "wb") as fh:
        left = size
        while left > 0:
            fh.write(chunk[: min(left, len(chunk))])
            left -= len(chunk)
    with open(path, "rb") as fh:
        return hashlib.file_digest(fh, "sha256").hexdigest()


def _openssh_get(server, remote_glob, local_dir):
    os.makedirs(local_dir, exist_ok=True)
    started = time.perf_counter()
    subprocess.run(
        ["sftp", "-q", "-i", server.client_key, "-o", f"UserKnownHostsFile={server.known_hosts}",
         "-o", "StrictHostKeyChecking=yes", "-o", "BatchMode=yes", "-P", str(server.port), "-b", "-",
         f"{server.user}@127.0.0.1"],
        input=f"get {remote_glob} {local_dir}/\n".encode(), check=True, capture_output=True,
    )
    return time.perf_counter() - started


def _fsctl_get(server, files, local_dir, jobs):
    endpoint = sftp.Endpoint("127.0.0.1", server.port, server.user, server.client_key, server.known_hosts)
    transfers = [sftp.Transfer(path, os.path.join(local_dir, os.path.basename(path)), size, digest)
                 for path, size, digest in files]
    started = time.perf_counter()
    results = sftp.fetch_all(endpoint, transfers, jobs=jobs)
    elapsed = time.perf_counter() - started
    bad = [r for r in results if r.status != "fetched"]
    if bad:
        raise RuntimeError(f"fsctl pull failed: {bad[0].error}")
    return elapsed


def _best(fn, repeat):
    return min(fn() for _ in range(repeat))


def _transfer_figures(quick, work):
    from tests.sshd import SshdServer

    server = SshdServer(os.path.join(work, "sshd")).start()
    try:
        remote = os.path.join(work, "remote")
        os.makedirs(os.path.join(remote, "many"))
        big_size = (20 if quick else 200) * MB
        count = 50 if quick else 500
        big = os.path.join(remote, "big.bin")
        big_files = [(big, big_size, _write_random(big, big_size))]
        many = []
        for i in range(count):
            path = os.path.join(remote, "many", f"r{i:04d}.bin")
            many.append((path, MB, _write_random(path, MB)))
        repeat = 2 if quick else 3
        figures = []
        for label, files, glob, jobs in (("1 x %d MB" % (big_size // MB), big_files, big, 1),
                                         (f"{count} x 1 MB", many, os.path.join(remote, "many", "*"), 4)):
            def openssh():
                target = os.path.join(work, "local-openssh")
                shutil.rmtree(target, ignore_errors=True)
                return _openssh_get(server, glob, target)

            def fsctl_():
                target = os.path.join(work, "local-fsctl")
                shutil.rmtree(target, ignore_errors=True)
                return _fsctl_get(server, files, target, jobs)

            t_ssh, t_fsctl = _best(openssh, repeat), _best(fsctl_, repeat)
            total = sum(f[1] for f in files) / MB
            figures += [
                (f"pull {label}: OpenSSH sftp", f"{t_ssh:.2f} s ({total / t_ssh:.0f} MB/s)"),
                (f"pull {label}: fsctl ({jobs} connection{'s' if jobs > 1 else ''})",
                 f"{t_fsctl:.2f} s ({total / t_fsctl:.0f} MB/s)"),
                (f"pull {label}: fsctl speed / OpenSSH (goal >= {'0.8' if jobs == 1 else '1.0'})",
                 f"{t_ssh / t_fsctl:.2f}x"),
            ]
        return figures
    finally:
        server.stop()


def load_catalogue(database, rows):
    """`rows` synthetic recordings over 20 tenants (half in t000.example), 180 days, 100 users each;
    every 97th has the note "call back". Returns (tenants, seconds it took)."""
    tenants = [Tenant.create(domain=f"t{i:03d}.example", name=f"T{i}") for i in range(20)]
    rnd = random.Random(5)
    start = dt.datetime(2026, 5, 1)
    colours = rec.COLOURS + ("",) * 20
    columns = ("tenant_id", "user_number", "user_name", "direction", "counterpart", "started_at", "duration",
               "path", "size", "sha256", "note", "colour", "field1", "field2", "field3", "created_at",
               "user_name_fold", "note_fold", "field1_fold", "field2_fold", "field3_fold")
    sql = (f"INSERT INTO recording ({', '.join(columns)}) VALUES ({', '.join('?' * len(columns))})")
    began = time.perf_counter()
    with database.atomic():
        batch = []
        for i in range(rows):
            tenant = tenants[i % len(tenants)] if i % 2 else tenants[0]  # one big tenant: half the rows
            when = start + dt.timedelta(seconds=rnd.randrange(180 * 86400))
            user = str(100 + rnd.randrange(100))
            batch.append((tenant.id, user, "", rnd.choice(("in", "out", "internal")),
                          f"+3706{rnd.randrange(10**7):07d}", when.strftime("%Y-%m-%d %H:%M:%S"),
                          rnd.uniform(3, 600), f"{tenant.domain}/{i}.wav", 100_000, "0" * 64,
                          "call back" if i % 97 == 0 else "", rnd.choice(colours), "", "", "", when,
                          "", "call back" if i % 97 == 0 else "", "", "", ""))
            if len(batch) == 10_000:
                database.cursor().executemany(sql, batch)
                batch = []
        if batch:
            database.cursor().executemany(sql, batch)
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
                rec.make_filters(since="2026-09-01", until="2026-09-07"), f"100@{big}"),
            "tenant admin, one week, user + min length": (
                rec.make_filters(since="2026-09-01", until="2026-09-07", user="150", min_length="60"), f"100@{big}"),
            "tenant admin, counterpart prefix, no dates": (rec.make_filters(counterpart="+370612"), f"100@{big}"),
            "tenant admin, colour red, no dates": (rec.make_filters(colour="red"), f"100@{big}"),
            "operator, one day, all tenants": (rec.make_filters(since="2026-09-01", until="2026-09-01"), None),
            # worst case: a text that matches nothing scans the whole range
            "tenant admin, one month, note text matching nothing": (
                rec.make_filters(since="2026-09-01", until="2026-09-30", note="zzz"), f"100@{big}"),
        }
        User.create(tenant=tenants[0], number="100", name="admin", sip_password="x" * 16, role="admin")
        figures = [(f"search: catalogue rows (SQLite, loaded in {load:.0f} s)", f"{rows:,}")]
        for label, (filters, as_user) in cases.items():
            times = []
            for _ in range(7):
                t0 = time.perf_counter()
                page = rec.search(filters, as_user, limit=50)
                [rec.recording_dict(r) for r in page]
                times.append(time.perf_counter() - t0)
            figures.append((f"search: {label} (50 rows; goal < 50 ms)",
                            f"{statistics.median(times) * 1000:.1f} ms (median of 7), {len(page)} rows"))
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
