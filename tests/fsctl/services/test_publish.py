"""`fsctl rec publish`: the daily drop folders for the tenants' SFTP accounts, and the conf/ files."""

import datetime as dt
import errno
import os
import subprocess

import pytest

from fsctl.errors import ValidationError
from fsctl.model import Recording
from fsctl.services import publish as pub
from tests.fsctl.services.test_recordings import cli_setup, make_recording, make_tenants, refused
from tests.sshd import SSHD, SshdServer

REPO = os.path.dirname(os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__)))))
# 06:00 in Vilnius (UTC+2 in November): acme.example's 2026-11-20 is due; beta.example (UTC) is at 04:00.
NOW = dt.datetime(2026, 11, 21, 4, 0)


@pytest.fixture
def world(db, tmp_path):
    root, drop = str(tmp_path / "recordings"), str(tmp_path / "sftp")
    os.makedirs(root)
    make_tenants()
    rows = {
        # acme.example, Europe/Vilnius: its 2026-11-20 is 2026-11-19T22:00Z .. 2026-11-20T22:00Z
        "a_first": make_recording(root, started=dt.datetime(2026, 11, 19, 22, 0), uuid="a1")[0],
        "a_last": make_recording(root, started=dt.datetime(2026, 11, 20, 21, 59, 59), uuid="a2")[0],
        "a_next": make_recording(root, started=dt.datetime(2026, 11, 20, 22, 0), uuid="a3")[0],
        "a_before": make_recording(root, started=dt.datetime(2026, 11, 19, 21, 59, 59), uuid="a0")[0],
        # beta.example, UTC: due at this moment is 2026-11-19
        "b_19": make_recording(
            root, domain="beta.example", user="201", started=dt.datetime(2026, 11, 19, 12), uuid="b1"
        )[0],
        "b_20": make_recording(
            root, domain="beta.example", user="201", started=dt.datetime(2026, 11, 20, 12), uuid="b2"
        )[0],
    }
    return root, drop, rows


def listing(folder):
    return sorted(os.listdir(folder)) if os.path.isdir(folder) else []


def test_publishes_the_due_day_of_each_tenant_in_its_time_zone(world):
    root, drop, rows = world
    done = pub.publish(root, drop, now=NOW)
    assert [(r.domain, r.day.isoformat(), r.linked, r.copied, r.unchanged) for r in done] == [
        ("acme.example", "2026-11-20", 2, 0, 0),
        ("beta.example", "2026-11-19", 1, 0, 0),
    ]
    acme = os.path.join(drop, "acme.example", "2026-11-20")
    names = sorted(os.path.basename(rows[k].path) for k in ("a_first", "a_last"))
    assert listing(acme) == sorted(["SHA256SUMS", *names])
    assert listing(os.path.join(drop, "beta.example")) == ["2026-11-19"]
    for key in ("a_first", "a_last"):  # hard links: no second copy of the audio
        assert (
            os.stat(os.path.join(acme, os.path.basename(rows[key].path))).st_ino
            == os.stat(os.path.join(root, rows[key].path)).st_ino
        )
    manifest = open(os.path.join(acme, "SHA256SUMS")).read()
    assert manifest == "".join(
        f"{r.sha256}  {os.path.basename(r.path)}\n"
        for r in sorted((rows["a_first"], rows["a_last"]), key=lambda r: r.path)
    )
    check = subprocess.run(["sha256sum", "-c", "--strict", "SHA256SUMS"], cwd=acme, capture_output=True, text=True)
    assert check.returncode == 0 and check.stdout.count(": OK") == 2
    # idempotent: a second run changes nothing
    before = {n: os.stat(os.path.join(acme, n)).st_ino for n in names}
    again = pub.publish(root, drop, now=NOW + dt.timedelta(minutes=15))
    assert [(r.linked, r.copied, r.unchanged) for r in again] == [(0, 0, 2), (0, 0, 1)]
    assert {n: os.stat(os.path.join(acme, n)).st_ino for n in names} == before
    assert open(os.path.join(acme, "SHA256SUMS")).read() == manifest


def test_refuses_a_day_before_its_publication_time(world):
    root, drop, rows = world
    with pytest.raises(ValidationError) as err:
        pub.publish(root, drop, day="2026-11-20", now=NOW - dt.timedelta(minutes=1))
    assert (
        str(err.value) == '--date "2026-11-20": acme.example may publish it from 2026-11-21 06:00 '
        "Europe/Vilnius (use --force to publish early)"
    )
    with pytest.raises(ValidationError):  # beta.example's 2026-11-20 is due at 06:00 UTC, after acme's
        pub.publish(root, drop, day="2026-11-20", now=NOW)
    assert listing(drop) == []  # nothing written for any tenant
    done = pub.publish(root, drop, day="2026-11-20", now=NOW, force=True)
    assert [r.published for r in done] == [2, 1]


def test_old_day_folders_are_deleted(world):
    root, drop, rows = world
    tenant_dir = os.path.join(drop, "acme.example")
    for name in ("2026-11-16", "2026-11-17", "2026-11-18", "keep-me"):
        os.makedirs(os.path.join(tenant_dir, name))
    done = pub.publish(root, drop, now=NOW)
    # today (Vilnius) is 2026-11-21: the 18th, 19th and 20th stay 3 days, older ones go
    assert done[0].removed == ["2026-11-16", "2026-11-17"]
    assert listing(tenant_dir) == ["2026-11-18", "2026-11-20", "keep-me"]
    done = pub.publish(root, drop, now=NOW + dt.timedelta(days=3))  # 2026-11-24 06:00 local
    assert "2026-11-20" in done[0].removed and "2026-11-21" not in done[0].removed


def test_a_catch_up_publish_stays_its_days_from_now(world):
    root, drop, rows = world
    later = NOW + dt.timedelta(days=10)  # 2026-12-01 06:00 in Vilnius: the 20th is long expired by its name
    done = pub.publish(root, drop, day="2026-11-20", now=later, domains=["acme.example"])
    assert (done[0].published, done[0].removed) == (2, [])
    folder = os.path.join(drop, "acme.example", "2026-11-20")
    assert len(listing(folder)) == 3
    # the due day's runs (every 15 minutes) do not delete it before 3 days after the catch-up ...
    done = pub.publish(
        root, drop, now=later + dt.timedelta(days=3) - dt.timedelta(minutes=15), domains=["acme.example"]
    )
    assert done[0].removed == [] and len(listing(folder)) == 3
    # ... and neither does re-publishing it unchanged move its time of publication
    pub.publish(root, drop, day="2026-11-20", now=later + dt.timedelta(days=2), domains=["acme.example"])
    done = pub.publish(root, drop, now=later + dt.timedelta(days=3), domains=["acme.example"])
    assert done[0].removed == ["2026-11-20"] and not os.path.exists(folder)


def test_missing_files_and_copies(world):
    root, drop, rows = world
    os.unlink(os.path.join(root, rows["a_last"].path))

    def no_links(source, target):
        raise OSError(errno.EXDEV, "Invalid cross-device link")

    done = pub.publish(root, drop, now=NOW, link=no_links)
    assert (done[0].copied, done[0].linked, done[0].missing) == (1, 0, [rows["a_last"].path])
    folder = os.path.join(drop, "acme.example", "2026-11-20")
    copy = os.path.join(folder, os.path.basename(rows["a_first"].path))
    assert os.stat(copy).st_ino != os.stat(os.path.join(root, rows["a_first"].path)).st_ino
    assert open(copy, "rb").read() == open(os.path.join(root, rows["a_first"].path), "rb").read()
    assert (
        open(os.path.join(folder, "SHA256SUMS")).read()
        == f"{rows['a_first'].sha256}  {os.path.basename(rows['a_first'].path)}\n"
    )
    assert Recording.select().count() == 6  # publishing never touches the catalogue


def test_a_recording_the_customer_could_not_read_is_copied(world):
    """A hard link shares the recording's mode: as installed (FreeSWITCH's group only) the customer's
    account could not read it; such a recording is copied, the copy the tenant folder's."""
    root, drop, rows = world
    private = os.path.join(root, rows["a_first"].path)
    os.chmod(private, 0o640)
    done = pub.publish(root, drop, now=NOW)
    assert (done[0].linked, done[0].copied) == (1, 1)
    folder = os.path.join(drop, "acme.example", "2026-11-20")
    copy = os.path.join(folder, os.path.basename(rows["a_first"].path))
    assert os.stat(copy).st_ino != os.stat(private).st_ino and open(copy, "rb").read() == open(private, "rb").read()
    linked = os.path.join(folder, os.path.basename(rows["a_last"].path))
    assert os.stat(linked).st_ino == os.stat(os.path.join(root, rows["a_last"].path)).st_ino


def test_publish_cli(fsctl, tmp_path):
    root = str(tmp_path / "recordings")
    os.makedirs(root)
    cli_setup(fsctl, root)
    drop = str(tmp_path / "sftp")
    fsctl.env["FSCTL_PUBLISH_DIR"] = drop
    fsctl.clock = lambda: NOW
    result = fsctl("rec", "publish", "--date", "2026-11-20", "--tenant", "acme.example")
    assert result.stdout == "acme.example 2026-11-20: 2 recordings (2 linked, 0 copied, 0 already there)\n"
    assert refused(fsctl, "rec", "publish", "--date", "2026-11-21").startswith(
        'Error: --date "2026-11-21": acme.example'
    )
    assert (
        refused(fsctl, "rec", "publish", "--date", "20.11.2026")
        == 'Error: --date "20.11.2026": must be a date YYYY-MM-DD'
    )
    assert listing(drop) == ["acme.example"]


@pytest.mark.servers  # OpenSSH's sshd -t
def test_sshd_snippet_is_valid(tmp_path):
    server = SshdServer(str(tmp_path / "sshd"))
    server.keygen(server.host_key)
    snippet = os.path.join(REPO, "conf", "sshd", "fsctl-sftp.conf")
    config = tmp_path / "sshd_config"
    config.write_text(f"HostKey {server.host_key}\nSubsystem sftp internal-sftp\nInclude {snippet}\n")
    check = subprocess.run([SSHD, "-t", "-f", str(config)], capture_output=True, text=True)
    assert check.returncode == 0, check.stderr
    text = open(snippet).read()
    for line in (
        "Match Group fsctl-sftp",
        "ChrootDirectory /srv/sftp\n",
        "ForceCommand internal-sftp -R -d /%u",
        "AllowTcpForwarding no",
    ):
        assert line in text


def test_systemd_units():
    service = open(os.path.join(REPO, "conf", "systemd", "fsctl-rec-publish.service")).read()
    timer = open(os.path.join(REPO, "conf", "systemd", "fsctl-rec-publish.timer")).read()
    assert "ExecStart=/opt/fsctl/bin/fsctl rec publish\n" in service and "Type=oneshot" in service
    assert "OnCalendar=*-*-* *:00/15:00" in timer and "Persistent=true" in timer
    # the publication time comes from the command; the timer only has to run often enough
    assert pub.default_day(dt.datetime(2026, 11, 21, 3, 59), pub.zoneinfo.ZoneInfo("Europe/Vilnius"), 6) == dt.date(
        2026, 11, 19
    )
    assert pub.default_day(dt.datetime(2026, 11, 21, 4, 0), pub.zoneinfo.ZoneInfo("Europe/Vilnius"), 6) == dt.date(
        2026, 11, 20
    )
