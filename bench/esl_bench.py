"""Event Socket wrapper: event → command round trip through the fake FreeSWITCH (tests/fakes).

A CHANNEL_PARK leaves the fake; the wrapper parses it and runs the handler in its own greenlet;
the handler executes ``answer`` (sendmsg with Event-UUID) and waits for the matching
CHANNEL_EXECUTE_COMPLETE. Figures: latency from the event leaving the fake to the sendmsg
received by the fake, and to the handler's ``execute`` returning; plus plain ``api`` round
trips. Calls are offered at 500 per second. ``run(quick)`` returns (figure, value) pairs, as ``python -m bench`` prints them.
"""

import threading
import time


def _percentile(values, p):
    values = sorted(values)
    if not values:
        return float("nan")
    return values[min(len(values) - 1, max(0, int(round(p / 100 * (len(values) - 1)))))]


def _ms(values):
    return (
        f"p50 {_percentile(values, 50) * 1e3:.2f} ms, p99 {_percentile(values, 99) * 1e3:.2f} ms, "
        f"max {max(values) * 1e3:.2f} ms"
    )


def run(quick=False):
    """Measure the round trips; return [(figure, value), ...]."""
    import gevent
    import gevent.event

    from fsctl.freeswitch.esl import EventSocket
    from tests.fakes.fake_freeswitch import FakeFreeSWITCH

    calls = 200 if quick else 2000
    rate = 500.0  # calls per second offered
    fake = FakeFreeSWITCH().start()
    parked_at, command_at, done_at = {}, {}, {}
    lock = threading.Lock()
    original = fake._record

    def record(cmd):
        now = time.perf_counter()
        if cmd.startswith("sendmsg "):
            with lock:
                command_at.setdefault(cmd.split()[1].strip(), now)
        original(cmd)

    fake._record = record
    esl = EventSocket(fake.host, fake.port, "ClueCon", timeout=5.0)
    try:
        esl.connect()
        finished = gevent.event.Event()

        def on_park(event):
            esl.execute(event.uuid, "answer", timeout=5.0)
            done_at[event.uuid] = time.perf_counter()
            if len(done_at) == calls:
                finished.set()

        esl.on("CHANNEL_PARK", on_park)
        for i in range(calls):
            uuid = f"00000000-0000-4000-8000-{i:012d}"
            parked_at[uuid] = time.perf_counter()
            fake.park_call(uuid)
            gevent.sleep(1.0 / rate)
        finished.wait(timeout=60)
        to_command = [command_at[u] - t for u, t in parked_at.items() if u in command_at]
        to_done = [done_at[u] - t for u, t in parked_at.items() if u in done_at]
        api = []
        for _ in range(calls // 2):
            start = time.perf_counter()
            esl.api("version")
            api.append(time.perf_counter() - start)
        return [
            ("calls (CHANNEL_PARK events)", f"{calls} at {rate:.0f}/s"),
            ("event leaves fake -> sendmsg received", _ms(to_command)),
            ("event leaves fake -> execute() returned", _ms(to_done)),
            ("api version round trip", _ms(api)),
            ("calls without a completed execute", f"{calls - len(to_done)}"),
            ("events dropped by the wrapper", f"{esl.dropped}"),
        ]
    finally:
        esl.close()
        fake.stop()
