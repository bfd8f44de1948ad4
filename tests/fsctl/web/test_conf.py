"""The web workspace's sample files: the systemd unit verifies, the nginx site names no real host."""

import re
import shutil
import subprocess
from pathlib import Path

import pytest

from fsctl.config import load_settings

REPO = Path(__file__).resolve().parents[3]


def test_systemd_unit_verifies(tmp_path):
    assert shutil.which("systemd-analyze"), "systemd-analyze is missing: run make sysdeps as root"
    text = (REPO / "conf/systemd/fsctl-web.service").read_text().replace("/opt/fsctl/bin/fsctl-web", "/bin/true")
    (tmp_path / "fsctl-web.service").write_text(text)
    check = subprocess.run(
        ["systemd-analyze", "verify", str(tmp_path / "fsctl-web.service")], capture_output=True, text=True
    )
    assert check.returncode == 0, check.stderr
    assert [line for line in check.stderr.splitlines() if "fsctl-web" in line] == []


@pytest.mark.parametrize("name", ["conf/nginx/fsctl-web.conf", "conf/systemd/fsctl-web.service", "conf/fsctl.toml"])
def test_only_loopback_or_placeholder_hosts(name):
    text = (REPO / name).read_text()
    urls = re.findall(r"(?:https?|postgresql)://[^\s\"'<>;]*", text)
    assert [u for u in urls if not re.match(r"[a-z]+://(127\.0\.0\.1|localhost|[^/$]*\.invalid|\$host)", u)] == []
    assert [a for a in re.findall(r"\b\d{1,3}(?:\.\d{1,3}){3}\b", text) if not a.startswith("127.")] == []


def test_sample_settings_load():
    settings = load_settings(str(REPO / "conf/fsctl.toml"), environ={})
    assert (settings.web_host, settings.web_port, settings.web_secure_cookies) == ("127.0.0.1", 8090, True)
