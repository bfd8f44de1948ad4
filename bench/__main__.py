"""Run every bench/*_bench.py module's `run(quick)` and print its figures.

python -m bench [--quick] [name ...]
"""

import argparse
import importlib
import pkgutil
import sys
import time
import traceback

import bench


def main(argv=None):
    parser = argparse.ArgumentParser(prog="python -m bench", description=__doc__)
    parser.add_argument("--quick", action="store_true", help="Small sizes: seconds, not minutes.")
    parser.add_argument("names", nargs="*", help="Only these benchmarks (e.g. render stats).")
    args = parser.parse_args(argv)
    names = sorted(m.name for m in pkgutil.iter_modules(bench.__path__) if m.name.endswith("_bench"))
    if args.names:
        names = [n for n in names if n[: -len("_bench")] in args.names or n in args.names]
    failed = 0
    for name in names:
        module = importlib.import_module(f"bench.{name}")
        print(f"== {name[: -len('_bench')]}", flush=True)
        started = time.perf_counter()
        try:
            for figure, value in module.run(args.quick):
                print(f"  {figure:<60} {value}", flush=True)
        except Exception:  # a broken benchmark must not hide the others' figures
            failed += 1
            traceback.print_exc()
        print(f"  ({time.perf_counter() - started:.1f} s)", flush=True)
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
