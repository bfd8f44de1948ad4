"""Start-up (issue 12): whole `fsctl` commands against the Python floor, in pairs.

- `fsctl --version` against `python -c pass` (the venv's interpreter: its site and the editable
  install's finder included): goal <= 0.08 s;
- `fsctl tenant list` on the demo database (tools/demo.sh) against a Python that only imports
  click, peewee, rich (console, table), jinja2 and lxml: goal <= 1.3x;
- `fsctl --help` (every command listed, none imported).
The median of the pairs' ratios; the times are the medians of each side.
"""

import os
import shutil
import subprocess
import sys
import tempfile

from ._paired import FSCTL, env_with, paired, run_command, verdict

IMPORTS = "import click, peewee, rich.console, rich.table, jinja2, lxml.etree"


def run(quick: bool) -> list[tuple[str, str]]:
    """The figures of this benchmark."""
    repeat = 10 if quick else 40
    folder = tempfile.mkdtemp(prefix="fsctl-startup-bench-")
    try:
        demo = os.path.join(folder, "demo")
        subprocess.run(
            ["sh", "tools/demo.sh", demo],
            env={**os.environ, "FSCTL": FSCTL},
            check=True,
            capture_output=True,
            cwd=os.path.dirname(os.path.dirname(os.path.abspath(__file__))),
        )
        env = env_with(database=f"sqlite:///{demo}/fsctl.db")

        def python_floor():
            return run_command([sys.executable, "-c", "pass"])

        def version():
            return run_command([FSCTL, "--version"], env=env)

        t_py, t_version, ratio_version = paired(python_floor, version, repeat)
        t_imports, t_list, ratio_list = paired(
            lambda: run_command([sys.executable, "-c", IMPORTS]),
            lambda: run_command([FSCTL, "tenant", "list"], env=env),
            repeat,
        )
        _, t_help, ratio_help = paired(python_floor, lambda: run_command([FSCTL, "--help"], env=env), repeat)
        return [
            ("python -c pass (the floor)", f"{t_py * 1000:.0f} ms"),
            (
                "fsctl --version (goal <= 80 ms)",
                f"{t_version * 1000:.0f} ms {verdict(t_version, 0.08)} ({ratio_version:.1f}x the floor, paired)",
            ),
            ("fsctl --help (every command listed)", f"{t_help * 1000:.0f} ms ({ratio_help:.1f}x the floor)"),
            ("python importing click, peewee, rich, jinja2, lxml", f"{t_imports * 1000:.0f} ms"),
            ("fsctl tenant list, demo database", f"{t_list * 1000:.0f} ms"),
            ("  ratio to those imports, paired median (goal <= 1.3)", f"{ratio_list:.2f} {verdict(ratio_list, 1.3)}"),
        ]
    finally:
        shutil.rmtree(folder, ignore_errors=True)
