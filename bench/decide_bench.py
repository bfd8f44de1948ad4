"""Call decisions: how long `decide` takes for typical and worst-case tenants (pure CPU)."""

import time
from datetime import datetime, timedelta, timezone

from fsctl.calllogic.callconfig import (
    BlacklistEntry,
    Did,
    Forwarding,
    Group,
    Holiday,
    Tenant,
    TenantConfig,
    TimeRange,
    TimeRule,
    User,
)
from fsctl.calllogic.decide import CallFacts, RotationState, decide

D = "bench.example"


def _tenant(users=100):
    """100 users (every 10th recorded, every 7th forwarding when busy), a rotating group of 12."""
    numbers = [str(1000 + i) for i in range(users)]

    def forwarding(i):
        return Forwarding(busy=f"user:{numbers[(i + 1) % users]}") if i % 7 == 0 and i else Forwarding()

    # R-SEQ: members of a sequential group have no forwarding.
    members = tuple(n for i, n in enumerate(numbers) if i and i % 7)[:12]
    day = datetime(2026, 1, 1).date()
    return TenantConfig.build(
        Tenant(D, "Europe/Vilnius", fallback="voicemail:1000"),
        users=[User(n, record=(i % 10 == 0), forwarding=forwarding(i)) for i, n in enumerate(numbers)],
        groups=[Group("200", strategy="sequential", order="rotating", members=members)],
        dids=[Did("+37052000000", "timerule:office"), Did("+37052000001", f"user:{numbers[7]}")],
        time_rules=[
            TimeRule(
                "office",
                (TimeRange.from_text("mon-fri", "09:00", "18:00"), TimeRange.from_text("sat", "10:00", "14:00")),
                tuple(Holiday(day + timedelta(days=40 * k), day + timedelta(days=40 * k + 1)) for k in range(9)),
                match="group:200",
                nomatch="voicemail:1000",
            )
        ],
        blacklist=[BlacklistEntry(f"+3706{k:04d}", "prefix") for k in range(200)],
        contacts={f"+3706{k:07d}": f"Contact {k}" for k in range(5000)},
    )


def _rate(fn, n):
    started = time.perf_counter()
    for i in range(n):
        fn(i)
    elapsed = time.perf_counter() - started
    return n / elapsed, elapsed / n * 1e6


def run(quick=False):
    """Yield (figure, value) pairs."""
    n = 2_000 if quick else 20_000
    cfg = _tenant()
    now = datetime(2026, 11, 23, 10, 0, tzinfo=timezone.utc)
    state = {"rot": RotationState()}

    def did_call(i):
        call = CallFacts(D, f"+3705{i:07d}", "+37052000000", did="+37052000000", direction="inbound", uuid=str(i))
        d = decide(call, cfg, now + timedelta(minutes=i % 600), state["rot"])
        state["rot"] = state["rot"].apply(d.rotation_update)

    def internal_call(i):
        decide(CallFacts(D, "1001", "1007", uuid=str(i)), cfg, now)

    rate, us = _rate(did_call, n)
    yield "DID -> time rule -> rotating group of 12 (decisions/s)", f"{rate:,.0f} ({us:.0f} us each)"
    rate, us = _rate(internal_call, n)
    yield "internal call to a user with busy forwarding (decisions/s)", f"{rate:,.0f} ({us:.0f} us each)"
