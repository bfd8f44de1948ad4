"""A wheel (not only the editable checkout) carries the templates and renders with them."""

import configparser
import subprocess
import sys
import zipfile
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def test_every_package_is_declared():
    """setup.cfg lists the packages (templates/ ships as fsctl.templates): none may be forgotten."""
    config = configparser.ConfigParser()
    config.read(ROOT / "setup.cfg")
    declared = set(config["options"]["packages"].split())
    found = {
        ".".join(init.parent.relative_to(ROOT).parts)
        for top in ("fsctl", "fs_scripts")
        for init in (ROOT / top).rglob("__init__.py")
    }
    assert declared == found | {"fsctl.templates"}


def test_wheel_carries_templates_and_renders(tmp_path):
    wheels = tmp_path / "wheels"
    subprocess.run(
        [sys.executable, "-m", "pip", "wheel", "-q", "--no-deps", "-w", str(wheels), str(ROOT)],
        check=True,
        capture_output=True,
        timeout=300,
    )
    (wheel,) = wheels.glob("fsctl-*.whl")
    names = set(zipfile.ZipFile(wheel).namelist())
    packaged = {n for n in names if n.startswith("fsctl/templates/")}
    assert {f"fsctl/templates/{p.name}" for p in (ROOT / "templates").iterdir()} == packaged
    assert "fs_scripts/service.py" in names and "fsctl/cli.py" in names
    # fsctl-web's pages and static files travel with it (setup.cfg package_data)
    assert {
        "fsctl/web/templates/base.html",
        "fsctl/web/templates/recordings.html",
        "fsctl/web/static/app.js",
        "fsctl/web/static/style.css",
    } <= names
    site = tmp_path / "site"
    subprocess.run(
        [sys.executable, "-m", "pip", "install", "-q", "--no-deps", "--target", str(site), str(wheel)],
        check=True,
        capture_output=True,
        timeout=300,
    )
    # The installed copy, first on the path, must find its own templates and render a tenant.
    script = (
        "import sys; sys.path.insert(0, sys.argv[1])\n"
        "import fsctl, fsctl.render as r\n"
        "assert fsctl.__file__.startswith(sys.argv[1]), fsctl.__file__\n"
        "d = r.packaged_templates_dir(); assert str(d).startswith(sys.argv[1]), d\n"
        "from fsctl.db import open_database\n"
        "from fsctl.services import tenants, users\n"
        "open_database('sqlite:///' + sys.argv[2] + '/w.db')\n"
        "tenants.add_tenant('acme.example', 'ACME'); users.add_user('acme.example', '101', 'One')\n"
        "out = r.render_tree(sys.argv[2] + '/out')\n"
        "assert 'directory/acme.example.xml' in out, out\n"
    )
    subprocess.run([sys.executable, "-c", script, str(site), str(tmp_path)], check=True, timeout=120)
