"""Rendering and apply speed (issue 3): printed figures, never asserted.

- full render + validate of N tenants x 100 users (goal: 1,000 tenants in < 3 s on one core);
- apply after one user changed in that set, reload excluded (goal < 100 ms);
- peak memory (tracemalloc) of a full render for two tree sizes: flat in the number of tenants.
Quick mode: 50 tenants. The figures include writing the files into a folder of the system's
temporary directory (TMPDIR): the bench also prints what writing as many bytes into as many
new files costs there without fsctl.
"""

import os
import shutil
import tempfile
import time
import tracemalloc

from lxml import etree

from fsctl import db, render
from fsctl.freeswitch import xmlcheck
from fsctl.model import Did, Group, GroupMember, Ivr, IvrEntry, Tenant, User
from fsctl.services import apply

USERS = 100


def _populate(n_tenants):
    """Bulk-insert tenants with 100 users, a group, an IVR and a DID each."""
    with db.transaction():
        Tenant.insert_many(
            [
                {
                    "domain": f"t{i:04d}.example",
                    "name": f"Tenant {i} & Co",
                    "timezone": "Europe/Vilnius",
                    "fallback": "group:200",
                }
                for i in range(n_tenants)
            ]
        ).execute()
        tenants = list(Tenant.select(Tenant.id, Tenant.domain).order_by(Tenant.id))
        for t in tenants:
            rows = [
                {
                    "tenant": t.id,
                    "number": str(100 + u),
                    "name": f"User {u} <{t.domain}>",
                    "sip_password": f"password-{t.id}-{u}-xx",
                    "vm_pin": "1234",
                    "email": f"u{u}@{t.domain}",
                    "record": u % 10 == 0,
                }
                for u in range(USERS)
            ]
            User.insert_many(rows).execute()
        groups = [{"tenant": t.id, "number": "200", "name": "Sales", "fallback": "voicemail:100"} for t in tenants]
        Group.insert_many(groups).execute()
        ivrs = [{"tenant": t.id, "number": "500", "name": "Main", "exit_destination": "group:200"} for t in tenants]
        Ivr.insert_many(ivrs).execute()
        for t in tenants:
            group = Group.get((Group.tenant == t.id) & (Group.number == "200"))
            members = User.select(User.id).where((User.tenant == t.id) & (User.number.in_(["101", "102", "103"])))
            GroupMember.insert_many(
                [{"group": group.id, "user": m.id, "position": i} for i, m in enumerate(members, 1)]
            ).execute()
            ivr = Ivr.get((Ivr.tenant == t.id) & (Ivr.number == "500"))
            IvrEntry.insert_many(
                [
                    {"ivr": ivr.id, "digits": "1", "destination": "group:200"},
                    {"ivr": ivr.id, "digits": "2", "destination": "user:101"},
                ]
            ).execute()
            Did.create(tenant=t.id, number=f"+3705{t.id:07d}", destination="ivr:500", name="Main")


def _setup(folder, n_tenants):
    db.close_database()
    db.open_database(f"sqlite:///{folder}/bench.db")
    _populate(n_tenants)


def _full_render(out):
    digests = render.render_tree(out)
    xmlcheck.check_paths(out, sorted(digests))
    return digests


def _raw_writes(folder, count, size):
    """Seconds to write `size` bytes into `count` new files here, as plainly as Python can: what
    the render's figure owes to the file system (one test VM: 0.1 s on tmpfs, 2.2 s on its ext4)."""
    sub = os.path.join(folder, "raw-writes")
    os.makedirs(sub)
    data = b"x" * (size // count)
    t0 = time.perf_counter()
    for i in range(count):
        fd = os.open(os.path.join(sub, f"f{i}.xml"), os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o644)
        os.write(fd, data)
        os.close(fd)
    return time.perf_counter() - t0


def _peak_memory(folder, n_tenants):
    sub = os.path.join(folder, f"mem{n_tenants}")
    os.makedirs(sub)
    _setup(sub, n_tenants)
    render.render_tree(os.path.join(sub, "warm-up"))  # compiled templates and caches are not per tenant
    tracemalloc.start()
    render.render_tree(os.path.join(sub, "out"))
    _, peak = tracemalloc.get_traced_memory()
    tracemalloc.stop()
    return peak


def run(quick: bool) -> list[tuple[str, str]]:
    """The figures of this benchmark."""
    n = 50 if quick else 1000
    folder = tempfile.mkdtemp(prefix="fsctl-render-bench-")
    lines = []
    try:
        _setup(folder, n)
        # Start from a quiet disk: what the set-up (or an earlier run's clean-up) left for the
        # kernel to write back would otherwise slow this run's file writes by seconds, or not.
        os.sync()
        out = os.path.join(folder, "out")
        t0 = time.perf_counter()
        digests = render.render_tree(out)
        t1 = time.perf_counter()
        xmlcheck.check_paths(out, sorted(digests))
        t2 = time.perf_counter()
        size = sum(os.path.getsize(os.path.join(out, p)) for p in digests)
        t3 = time.perf_counter()
        for rel in digests:  # what any lxml validation costs before checking anything
            with open(os.path.join(out, rel), "rb") as fh:
                etree.fromstring(fh.read(), etree.XMLParser(resolve_entities=False, huge_tree=True))
        parse_only = time.perf_counter() - t3
        lines += [
            (
                f"full render, {n} tenants x {USERS} users",
                f"{t1 - t0:.2f} s ({len(digests)} files, {size / 1e6:.1f} MB)",
            ),
            ("full validate (lxml, whole tree)", f"{t2 - t1:.2f} s"),
            ("  of which reading + lxml parsing alone", f"{parse_only:.2f} s"),
            ("full render + validate (goal < 3 s for 1,000 tenants)", f"{t2 - t0:.2f} s"),
        ]
        lines.append(
            (
                f"  writing {size / 1e6:.1f} MB in {len(digests)} new files here (the disk, not fsctl)",
                f"{_raw_writes(folder, len(digests), size):.2f} s",
            )
        )
        conf = os.path.join(folder, "conf")
        t0 = time.perf_counter()
        apply.apply_config(conf, lambda: "+OK [Success]")
        lines.append(("first apply of the whole tree (reload stubbed)", f"{time.perf_counter() - t0:.2f} s"))
        with db.transaction():
            user = User.select().join(Tenant).where(Tenant.domain == "t0001.example", User.number == "150").get()
            user.name = "Changed"
            user.save()
            Tenant.update(revision=Tenant.revision + 1).where(Tenant.domain == "t0001.example").execute()
        t0 = time.perf_counter()
        result = apply.apply_config(conf, lambda: "+OK [Success]")
        elapsed = time.perf_counter() - t0
        lines.append(
            (
                "apply after one user changed (goal < 100 ms before the reload)",
                f"{elapsed * 1000:.0f} ms ({len(result.written)} file written)",
            )
        )
        t0 = time.perf_counter()
        apply.apply_config(conf, lambda: "+OK [Success]")
        lines.append(("apply with nothing changed (no reload)", f"{(time.perf_counter() - t0) * 1000:.0f} ms"))
        small, large = (10, 40) if quick else (50, 200)
        p_small, p_large = _peak_memory(folder, small), _peak_memory(folder, large)
        lines += [
            (f"peak memory of a full render, {small} tenants (tracemalloc)", f"{p_small / 1e6:.1f} MB"),
            (f"peak memory of a full render, {large} tenants (tracemalloc)", f"{p_large / 1e6:.1f} MB"),
        ]
    finally:
        db.close_database()
        shutil.rmtree(folder, ignore_errors=True)
    return lines
