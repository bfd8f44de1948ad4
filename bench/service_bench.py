"""Issue 4: from the CHANNEL_PARK that hands a call over to the commands written back.

10,000 calls at 200 calls per second through the fake FreeSWITCH (tests/fakes), which runs in
its own process as FreeSWITCH would; the tenant in a real SQLite database; the service as in
production (database work in the thread pool, rotating sequential group of 12 members).
Figures: latency from the event leaving the fake (timed as it is handed to the socket, once
the fake has built it) to (a) the first command received for the call (`sched_cancel`, sent
before deciding) and (b) the first command of the decided plan; calls lost (no plan) or
duplicated (two plans). Goal: p99 of (b) under 5 ms.
"""

import datetime as dt
import gc
import multiprocessing
import tempfile
import threading
import time

HEADERS = {
    "Caller-Destination-Number": "200",
    "Caller-Caller-ID-Number": "101",
    "variable_fsctl_tenant": "acme.example",
}


def _percentile(values, p):
    values = sorted(values)
    if not values:
        return float("nan")
    return values[min(len(values) - 1, max(0, int(round(p / 100 * (len(values) - 1)))))]


def _freeswitch(conn, calls, rate):
    """The child process: a fake FreeSWITCH that parks `calls` calls at `rate` and times replies."""
    from tests.fakes.fake_freeswitch import FakeFreeSWITCH

    fake = FakeFreeSWITCH().start()
    sent_at, first_at, plan_at, plans = {}, {}, {}, {}
    lock = threading.Lock()
    original = fake._record
    broadcast = fake._broadcast

    def park(ev):
        if ev.name == "CHANNEL_PARK":
            uuid = ev.get("Unique-ID")
            with lock:
                sent_at[uuid] = time.perf_counter()
        broadcast(ev)

    def record(cmd):
        now = time.perf_counter()
        if cmd.startswith("sendmsg "):
            uuid = cmd.split()[1]
            with lock:
                first_at.setdefault(uuid, now)
                if "fsctl_route=" in cmd:
                    plan_at.setdefault(uuid, now)
                    plans[uuid] = plans.get(uuid, 0) + 1
        original(cmd)

    fake._record = record
    fake._broadcast = park
    conn.send(fake.port)
    conn.recv()  # the service is connected
    fake.wait_subscribed(10)
    # The fake stands for FreeSWITCH, a C program: what it loaded before the calls (recorded
    # captures, modules) is frozen, so its full collections scan only the calls (8 ms -> <1 ms).
    gc.collect()
    gc.freeze()
    start = time.perf_counter()
    for i in range(calls):
        delay = start + i / rate - time.perf_counter()
        if delay > 0:
            time.sleep(delay)
        fake.park_call(uuid=f"bench-{i:06d}-0000-0000-0000-000000000000", headers=HEADERS)
    deadline = time.perf_counter() + 30
    while len(plan_at) < calls and time.perf_counter() < deadline:
        time.sleep(0.05)
    conn.send((sent_at, first_at, plan_at, plans))
    conn.recv()  # the service has disconnected
    fake.stop()


def run(quick=False):
    import gevent

    from fs_scripts.service import CallService
    from fs_scripts.store import DatabaseStore
    from fsctl.db import close_database, open_database
    from fsctl.freeswitch.esl import EventSocket
    from fsctl.services import groups, tenants, users

    calls = 1000 if quick else 10000
    rate = 200.0
    folder = tempfile.mkdtemp(prefix="fsctl-bench-")
    open_database(f"sqlite:///{folder}/bench.db")
    tenants.add_tenant("acme.example", "ACME", "Europe/Vilnius")
    for n in range(101, 113):
        users.add_user("acme.example", str(n), f"U{n}")
    groups.add_group(
        "acme.example",
        "200",
        "Hunt",
        strategy="sequential",
        order="rotating",
        ring_time=10,
        members=[str(n) for n in range(101, 113)],
    )

    parent, child = multiprocessing.get_context("spawn").Pipe()
    proc = multiprocessing.get_context("spawn").Process(target=_freeswitch, args=(child, calls, rate), daemon=True)
    proc.start()
    port = parent.recv()
    esl = EventSocket("127.0.0.1", port, "ClueCon", timeout=5.0)
    esl.connect()
    noon = dt.datetime(2026, 12, 2, 10, 0, tzinfo=dt.timezone.utc)
    service = CallService(esl, DatabaseStore(), clock=lambda: noon)
    service.attach()
    parent.send("go")
    while not parent.poll():
        gevent.sleep(0.05)
    sent_at, first_at, plan_at, plans = parent.recv()
    esl.close()
    parent.send("stop")
    proc.join(10)
    close_database()

    ordered = sorted(sent_at)  # bench-000000..., in the order the calls were offered
    tenth = max(1, len(ordered) // 10)
    deciles = [
        [(plan_at[u] - sent_at[u]) * 1000 for u in ordered[i : i + tenth] if u in plan_at]
        for i in range(0, len(ordered), tenth)
    ]
    first = [(first_at[u] - t) * 1000 for u, t in sent_at.items() if u in first_at]
    decided = [(plan_at[u] - t) * 1000 for u, t in sent_at.items() if u in plan_at]
    return [
        ("calls offered (rate/s)", f"{calls} ({rate:.0f}/s), fake FreeSWITCH in its own process"),
        ("first command (sched_cancel) p50 / p99 ms", f"{_percentile(first, 50):.2f} / {_percentile(first, 99):.2f}"),
        (
            "first plan command p50 / p99 ms (goal p99 < 5)",
            f"{_percentile(decided, 50):.2f} / {_percentile(decided, 99):.2f}",
        ),
        ("first plan command p99 ms per tenth of the run", " ".join(f"{_percentile(d, 99):.1f}" for d in deciles)),
        ("calls lost / duplicated", f"{calls - len(plan_at)} / {sum(1 for n in plans.values() if n > 1)}"),
        (
            "decisions / rotation retries / failures",
            f"{service.stats.decided} / {service.stats.rotation_retries} / {service.stats.failed}",
        ),
    ]
