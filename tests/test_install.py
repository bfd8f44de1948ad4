"""The installation: every systemd unit runs as the fsctl user with a private umask, and the
README's install section creates that user and gives the files the modes it states."""

import re
import shutil
import subprocess
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
UNITS = sorted((REPO / "conf" / "systemd").glob("*.service"))
README = (REPO / "README.md").read_text()


def service_section(path):
    """The [Service] settings of a unit as {key: [values]}."""
    values, section = {}, None
    for line in path.read_text().splitlines():
        line = line.strip()
        if line.startswith("["):
            section = line
        elif section == "[Service]" and "=" in line and not line.startswith("#"):
            key, value = line.split("=", 1)
            values.setdefault(key, []).append(value)
    return values


@pytest.mark.parametrize("unit", UNITS, ids=lambda p: p.name)
def test_every_unit_runs_as_the_fsctl_user(unit):
    """The service ran as a user nothing created, the timers as root on the same SQLite file."""
    service = service_section(unit)
    assert service.get("User") == ["fsctl"] and service.get("Group") == ["fsctl"]
    assert service.get("SupplementaryGroups") == ["freeswitch"]
    assert service.get("UMask") == ["0027"]


def test_units_verify(tmp_path):
    assert shutil.which("systemd-analyze"), "systemd-analyze is missing: run make sysdeps as root"
    for path in (REPO / "conf" / "systemd").iterdir():
        text = re.sub(r"/opt/fsctl/bin/[a-z-]+", "/bin/true", path.read_text())
        (tmp_path / path.name).write_text(text)
    check = subprocess.run(
        ["systemd-analyze", "verify", *sorted(str(p) for p in tmp_path.glob("*.service"))],
        capture_output=True,
        text=True,
    )
    assert check.returncode == 0, check.stderr
    assert [line for line in check.stderr.splitlines() if "fsctl" in line or "fs-scripts" in line] == []


def test_the_health_port_is_the_same_in_the_unit_and_the_readme():
    """The unit said 8088, the README 8099."""
    unit = (REPO / "conf" / "systemd" / "fs-scripts.service").read_text()
    [port] = re.findall(r"--health-port (\d+)", unit)
    assert set(re.findall(r"--health-port (\d+)", README)) == {port}
    assert set(re.findall(r"curl -s 127\.0\.0\.1:(\d+)/health", README)) == {port}


def test_the_readme_installs_the_user_and_the_modes_it_promises():
    section = README.split("## Installing for real", 1)[1].split("### Settings", 1)[0]
    for command in (
        "adduser --system --group --home /var/lib/fsctl --no-create-home fsctl",
        "adduser fsctl freeswitch",
        "install -d -o fsctl -g fsctl -m 0700 /var/lib/fsctl",
        "install -o root -g fsctl -m 0640 conf/fsctl.toml /etc/fsctl/fsctl.toml",
        "install -d -o fsctl -g freeswitch -m 2750 /etc/freeswitch/fsctl",
        "sudo -u fsctl /opt/fsctl/bin/fsctl --database sqlite:////var/lib/fsctl/fsctl.db init",
    ):
        assert command in section, command
    from fsctl.db import DB_FILE_MODE
    from fsctl.render import FILE_MODE

    assert f"| `0{DB_FILE_MODE:o}` | SIP passwords" in section
    assert f"| `0{FILE_MODE:o}` | a1-hashes" in section
    assert "## Security: what fsctl promises" in README
