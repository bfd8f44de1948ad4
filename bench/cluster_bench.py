"""`fsctl apply` across nodes (issue 16): printed figures, never asserted.

1,000 tenants x 100 users (bench/render_bench.py's set), placed by load on 4 nodes (each tenant
on its home and its standby: ~500 per node). fs1-fs3 are fake FreeSWITCHes (tests/fakes: the
Event Socket answers reloadxml at once, so the figures are fsctl's own work, as in the render
bench); fs4 is down (nothing listens on its port: connection refused). Figures: the wall time of
the first apply and of later ones, how many tenants each node runs afterwards, and the routing
data for Kamailio (kamcmd stubbed). Quick mode: 50 tenants.
"""

import os
import shutil
import socket
import tempfile
import time

from bench.render_bench import _populate
from fsctl import db
from fsctl.config import Settings
from fsctl.model import NodeConfig, Tenant, User
from fsctl.services import kamailio, nodeapply, nodes


def _closed_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _placed(node):
    return (
        Tenant.select()
        .where(
            (Tenant.state == "active")
            & ((Tenant.home_node == node) | (Tenant.standby_node == node) | (Tenant.draining_node == node))
        )
        .count()
    )


def run(quick: bool) -> list[tuple[str, str]]:
    """The figures of this benchmark."""
    from tests.fakes.fake_freeswitch import FakeFreeSWITCH

    n = 50 if quick else 1000
    folder = tempfile.mkdtemp(prefix="fsctl-cluster-bench-")
    fakes = [FakeFreeSWITCH().start() for _ in range(3)]
    lines = []
    try:
        db.close_database()
        db.open_database(f"sqlite:///{folder}/bench.db")
        with db.transaction():
            for i, fake in enumerate(fakes, 1):
                nodes.add_node(f"fs{i}", f"127.0.0.1:{fake.port}", f"127.0.0.1:{5060 + 100 * i}")
            nodes.add_node("fs4", f"127.0.0.1:{_closed_port()}", "127.0.0.1:5460")
        _populate(n)
        t0 = time.perf_counter()
        with db.transaction():
            placed = nodes.place_unplaced()
        lines.append(
            (
                f"placing {n} tenants by load on 4 nodes (home + standby)",
                f"{time.perf_counter() - t0:.2f} s ({len(placed)} placed)",
            )
        )
        settings = Settings(
            conf_dir=os.path.join(folder, "conf"), kamailio_dir=os.path.join(folder, "kamailio"), esl_timeout=5.0
        )
        os.sync()
        t0 = time.perf_counter()
        result = nodeapply.apply_nodes(settings)
        elapsed = time.perf_counter() - t0
        by = {r.node: r for r in result.nodes}
        lines.append((f"first fsctl apply, {n} tenants x 100 users, 4 nodes (fs4 down)", f"{elapsed:.2f} s"))
        for name in ("fs1", "fs2", "fs3", "fs4"):
            node = nodes.get_node(name)
            runs = NodeConfig.select().where(NodeConfig.node == node).count()
            state = "applied" if not by[name].error else f"not applied ({by[name].error.split(' (')[0]})"
            lines.append(
                (
                    f"  {name}: tenants it runs / tenants placed there",
                    f"{runs} / {_placed(node)}, {state}, {by[name].pending} pending",
                )
            )
        reachable_ok = all(not by[f"fs{i}"].error and by[f"fs{i}"].pending == 0 for i in (1, 2, 3))
        lines.append(("  the reachable three fully applied", "yes" if reachable_ok else "NO"))
        t0 = time.perf_counter()
        nodeapply.apply_nodes(settings)
        lines.append(
            ("fsctl apply again, nothing changed (fs4 still down)", f"{(time.perf_counter() - t0) * 1000:.0f} ms")
        )
        with db.transaction():
            user = User.select().join(Tenant).where(Tenant.domain == "t0001.example", User.number == "150").get()
            user.name = "Changed"
            user.save()
            Tenant.update(revision=Tenant.revision + 1).where(Tenant.domain == "t0001.example").execute()
        t0 = time.perf_counter()
        again = nodeapply.apply_nodes(settings)
        written = sum(len(r.result.written) for r in again.nodes if r.result)
        lines.append(
            (
                "fsctl apply after one user changed (its two nodes)",
                f"{(time.perf_counter() - t0) * 1000:.0f} ms ({written} files written)",
            )
        )
        t0 = time.perf_counter()
        routing = kamailio.apply_routing(settings, kamcmd=lambda *args: "Ok.")
        lines.append(
            (
                f"Kamailio routing data for {n} tenants (kamcmd stubbed)",
                f"{(time.perf_counter() - t0) * 1000:.0f} ms ({routing['summary']})",
            )
        )
    finally:
        for fake in fakes:
            fake.stop()
        db.close_database()
        shutil.rmtree(folder, ignore_errors=True)
    return lines
