"""`make demo` (tools/demo.sh) provisions, renders and traces on a fresh SQLite database."""

import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def test_demo_script(tmp_path):
    fsctl = Path(sys.executable).parent / "fsctl"
    out = tmp_path / "demo"
    result = subprocess.run(
        ["sh", str(ROOT / "tools" / "demo.sh"), str(out)],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=300,
        env={"PATH": "/usr/bin:/bin", "FSCTL": str(fsctl)},
    )
    assert result.returncode == 0, result.stdout[-2000:] + result.stderr[-2000:]
    text = result.stdout + result.stderr
    assert "8 files rendered" in text and "and validated" in text
    assert (out / "freeswitch" / "dialplan" / "acme.example.xml").is_file()
    assert "holiday 2026-12-24..2026-12-26" in text and "voicemail default acme.example 101" in text
    assert (out / "fsctl.db").is_file()
