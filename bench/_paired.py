"""Shared by the benchmarks: paired runs against a reference, whole commands, percentiles.

A figure against its reference is measured in pairs (the reference and fsctl, in alternating
order) in the same run, and the ratio printed is the median of the pairs' ratios: on a shared
machine the load changes from one second to the next, and a pair sees the same load.
"""

import os
import statistics
import subprocess
import sys
import time

FSCTL = os.path.join(os.path.dirname(sys.executable), "fsctl")


def percentile(values, p):
    """The p-th percentile (nearest rank) of values."""
    values = sorted(values)
    if not values:
        return float("nan")
    return values[min(len(values) - 1, max(0, int(round(p / 100 * (len(values) - 1)))))]


def run_command(argv, env=None, input=None, stdout=subprocess.DEVNULL):
    """Seconds a whole command took (it must succeed)."""
    started = time.perf_counter()
    proc = subprocess.run(argv, env=env, input=input, stdout=stdout, stderr=subprocess.PIPE)
    elapsed = time.perf_counter() - started
    if proc.returncode:
        raise RuntimeError(f"{' '.join(argv[:6])}... exited {proc.returncode}: {proc.stderr.decode()[-600:]}")
    return elapsed


def paired(reference, ours, repeat):
    """Run reference() and ours() (each returning seconds) `repeat` times in pairs, the reference
    first in one pair and second in the next (what one leaves behind, the other meets as often).

    Returns (median reference seconds, median ours seconds, median of ours/reference).
    """
    refs, mine, ratios = [], [], []
    for i in range(repeat):
        times = {}
        for name, fn in (("ref", reference), ("ours", ours))[:: 1 if i % 2 == 0 else -1]:
            times[name] = fn()
        refs.append(times["ref"])
        mine.append(times["ours"])
        ratios.append(times["ours"] / times["ref"])
    return statistics.median(refs), statistics.median(mine), statistics.median(ratios)


def verdict(ratio, goal, higher_is_better=False, quick=False):
    """'OK' or 'MISSED' against a goal; a quick run's small data sets are not what the goal is set for."""
    if quick:
        return "(quick run: the goal is for the full size)"
    ok = ratio >= goal if higher_is_better else ratio <= goal
    return "OK" if ok else "MISSED"


def env_with(**values):
    """os.environ plus FSCTL_* settings (names in lower case, as the settings file spells them)."""
    env = dict(os.environ)
    env["FSCTL_CONFIG"] = os.devnull  # no /etc/fsctl/fsctl.toml of the machine
    for key, value in values.items():
        env[f"FSCTL_{key.upper()}"] = str(value)
    return env
