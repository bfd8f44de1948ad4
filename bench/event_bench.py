"""Issue 12, in process: a captured call's events through the Event Socket wrapper and the service.

The real FreeSWITCH call of ``esl_events_plain_bridge_acme.txt`` (shared/freeswitch/esl-captures),
reduced to the events ``fs-scripts`` subscribes to (as FreeSWITCH would send them: park,
execute completions, hang-ups, CRM ringing/answered), is framed by ``eslproto.Reader`` and handed
to ``EventSocket._on_message`` (peek, parse, match, queue), then consumed as the service does:
the park's facts read, the hang-ups and channel events queued, the hang-ups read as the call
records read them (``parse_channel``). No socket, no database: the less noisy figure next to the
live CPU per call (bench/live_bench.py). ``run(quick)`` returns (figure, value) pairs.
"""

import statistics
import time


def run(quick=False):
    """Events per second and milliseconds per call's events; [(figure, value), ...]."""
    from fs_scripts.service import CRM_EVENTS, CallService
    from fsctl.calllogic.decide import CallFacts
    from fsctl.freeswitch import eslproto
    from fsctl.freeswitch.channel import parse_channel
    from fsctl.freeswitch.esl import DEFAULT_EVENTS, EventSocket
    from tests.fakes import captures

    wanted = set(DEFAULT_EVENTS) | set(CRM_EVENTS) | {"HEARTBEAT"}
    events = [r for r in captures.load("esl_events_plain_bridge_acme.txt").events() if r.event_name in wanted]
    stream = b"".join(r.data for r in events)
    esl = EventSocket("127.0.0.1", 1)
    service = CallService(esl, None)
    for name in ("CHANNEL_PARK", "CHANNEL_HANGUP_COMPLETE", *CRM_EVENTS):
        esl.on(name, lambda event: None)

    def one_call():
        reader = eslproto.Reader()
        for start in range(0, len(stream), 65536):
            for message in reader.feed(stream[start : start + 65536]):
                esl._on_message(None, message)
        while esl._queue:
            event = esl._queue.popleft()
            if event.name == "CHANNEL_PARK":
                CallFacts.from_event(event.headers)
            else:
                service._enqueue("hangup" if event.name == "CHANNEL_HANGUP_COMPLETE" else "channel", event)
        while not service.hangups.empty():
            kind, headers = service.hangups.get_nowait()
            if kind == "hangup":
                parse_channel(headers)

    calls = 50 if quick else 300
    one_call()
    runs = []
    for _ in range(3 if quick else 7):
        start = time.perf_counter()
        for _ in range(calls):
            one_call()
        runs.append((time.perf_counter() - start) / calls)
    per_call = statistics.median(runs)
    return [
        (
            "captured call: events the service subscribes to",
            f"{len(events)} events, {len(stream)} bytes (CRM ones only while a tenant has a hook)",
        ),
        ("events read, parsed and consumed per second", f"{len(events) / per_call:,.0f}"),
        ("CPU per call's events, in process (ms)", f"{per_call * 1e3:.3f}   (median of {len(runs)} runs)"),
    ]
