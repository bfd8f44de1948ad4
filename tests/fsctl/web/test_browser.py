"""A real browser against a real fsctl-web: Debian's headless Chromium driven by Selenium and chromedriver.

fsctl-web runs as its own process on a free loopback port with a SQLite database and a real WAV.
The browser signs in, searches, plays a recording (the audio element reports its duration),
marks it, downloads it (the bytes' SHA-256 is the catalogue's), signs out; then a user of the
other tenant sees none of it. Chromium runs with background networking off: nothing leaves
127.0.0.1. FSCTL_TEST_SCREENSHOTS=DIR keeps the screenshots (the README's come from here).
"""

import contextlib
import datetime as dt
import email
import hashlib
import math
import os
import struct
import subprocess
import sys
import time
import urllib.request
import wave
from pathlib import Path

import pytest

from fsctl import db as fsdb
from fsctl.model import Recording, RecordingGroup, RecordingGroupMember, RecordingGroupSupervisor, Tenant, User
from fsctl.services import recordings as rec, webauth
from tests.conftest import free_port
from tests.fsctl.services.test_stats import add_call

CHROMIUM, CHROMEDRIVER = "/usr/bin/chromium", "/usr/bin/chromedriver"
PASSWORD = "correct horse battery"
FLAGS = (
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--disable-default-apps",
    "--disable-extensions",
    "--no-default-browser-check",
    "--autoplay-policy=no-user-gesture-required",
    "--window-size=1360,900",
    "--mute-audio",
)


def tone_wav(path, seconds=6.0, rate=8000):
    """A real recording: a 440 Hz tone, 16-bit mono."""
    os.makedirs(os.path.dirname(path), exist_ok=True)
    frames = b"".join(
        struct.pack("<h", int(8000 * math.sin(2 * math.pi * 440 * i / rate))) for i in range(int(seconds * rate))
    )
    with wave.open(str(path), "wb") as w:
        w.setnchannels(1)
        w.setsampwidth(2)
        w.setframerate(rate)
        w.writeframes(frames)


def prepare(tmp_path):
    """The database and recordings fsctl-web will serve: acme.example (admin 100, users 101, 102) and beta.example."""
    url = f"sqlite:///{tmp_path}/web.db"
    root = tmp_path / "recordings"
    fsdb.open_database(url)
    try:
        acme = Tenant.create(domain="acme.example", name="ACME", timezone="Europe/Vilnius")
        beta = Tenant.create(domain="beta.example", name="Beta", timezone="UTC")
        people = {
            ("acme.example", "100"): ("Rasa Admin", "admin"),
            ("acme.example", "101"): ("Ona Onaitė", "user"),
            ("acme.example", "102"): ("Jonas Jonaitis", "user"),
            ("beta.example", "201"): ("Beta User", "user"),
        }
        for (domain, number), (name, role) in people.items():
            User.create(
                tenant=acme if domain == "acme.example" else beta,
                number=number,
                name=name,
                sip_password="s" * 24,
                role=role,
                record=True,
            )
            webauth.set_web_password(domain, number, PASSWORD)
        group = RecordingGroup.create(tenant=acme, name="sales")
        RecordingGroupMember.create(group=group, user=User.get(User.number == "101"))
        RecordingGroupSupervisor.create(group=group, user=User.get(User.number == "100"))
        start = dt.datetime(2026, 11, 20, 8, 0, 0)
        rows = {}
        calls = [
            ("acme.example", "101", "in", "+37060012345"),
            ("acme.example", "101", "out", "+37052000111"),
            ("acme.example", "102", "in", "+37061100000"),
            ("beta.example", "201", "in", "+37069999999"),
        ]
        for i, (domain, user, direction, counterpart) in enumerate(calls):
            started = start + dt.timedelta(minutes=17 * i)
            rel = rec.recording_relpath(domain, started, user, direction, counterpart, f"call-{i}")
            tone_wav(root / rel, seconds=6.0 + i)
            os.utime(root / rel, (started.timestamp(), started.timestamp()))
            rows[(domain, user, direction)] = rec.catalogue_recording(str(root / rel), str(root))
        Recording.update(note="Invoice question", colour="yellow", note_fold="invoice question").where(
            Recording.id == rows[("acme.example", "101", "out")].id
        ).execute()
        add_call(acme, "c-1", start, "+37060012345", "101", "answered", {"101": dict(received=1, answered=1)})
        add_call(
            acme,
            "c-2",
            start + dt.timedelta(hours=2),
            "+37069990000",
            "101",
            "missed",
            {"101": dict(received=1, missed=1)},
        )
        ids = {k: r.id for k, r in rows.items()}
        digests = {k: r.sha256 for k, r in rows.items()}
    finally:
        fsdb.close_database()
    return url, str(root), ids, digests


@pytest.fixture
def server(tmp_path):
    """fsctl-web as a real process on a free loopback port."""
    url, root, ids, digests = prepare(tmp_path)
    with web_process(tmp_path, url, root) as base:
        yield base, ids, digests


@contextlib.contextmanager
def web_process(tmp_path, url, root, **settings):
    """Run fsctl-web on a free loopback port with these settings (FSCTL_<NAME> variables); yield its URL."""
    port = free_port()
    env = {
        **{k: v for k, v in os.environ.items() if not k.startswith("FSCTL_")},
        "FSCTL_CONFIG": "",
        "FSCTL_DATABASE": url,
        "FSCTL_RECORDINGS_DIR": root,
        "FSCTL_WEB_SECURE_COOKIES": "false",
        "FSCTL_WEB_BASE_URL": f"http://127.0.0.1:{port}",
        **{f"FSCTL_{k.upper()}": str(v) for k, v in settings.items()},
    }
    log = open(tmp_path / "fsctl-web.log", "wb")
    proc = subprocess.Popen(
        [str(Path(sys.executable).with_name("fsctl-web")), "--port", str(port), "--log-level", "warning"],
        env=env,
        stdout=log,
        stderr=subprocess.STDOUT,
    )
    base = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + 60
    while True:
        try:
            with urllib.request.urlopen(base + "/sign-in", timeout=5) as r:
                if r.status == 200:
                    break
        except OSError:
            pass
        if proc.poll() is not None or time.monotonic() > deadline:
            proc.kill()
            raise RuntimeError("fsctl-web did not start: " + (tmp_path / "fsctl-web.log").read_text())
        time.sleep(0.2)
    try:
        yield base
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=20)
        except subprocess.TimeoutExpired:
            proc.kill()
        log.close()


@pytest.fixture
def browser(tmp_path):
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service

    # Debian's chromium and chromedriver (make sysdeps installs them): never a downloaded browser.
    assert os.access(CHROMIUM, os.X_OK) and os.access(CHROMEDRIVER, os.X_OK), (
        "chromium / chromium-driver missing: run make sysdeps as root"
    )
    downloads = tmp_path / "downloads"
    downloads.mkdir()
    options = webdriver.ChromeOptions()
    options.binary_location = CHROMIUM
    for flag in FLAGS:
        options.add_argument(flag)
    options.add_argument(f"--user-data-dir={tmp_path / 'chromium-profile'}")
    options.add_experimental_option(
        "prefs",
        {
            "download.default_directory": str(downloads),
            "download.prompt_for_download": False,
            "safebrowsing.enabled": False,
        },
    )
    service = Service(executable_path=CHROMEDRIVER, log_output=str(tmp_path / "chromedriver.log"))
    driver = webdriver.Chrome(service=service, options=options)
    driver.set_page_load_timeout(60)
    driver.downloads = downloads
    try:
        yield driver
    finally:
        driver.quit()


def wait_for(fn, what, timeout=30):
    deadline = time.monotonic() + timeout
    while True:
        value = fn()
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        time.sleep(0.1)


def screenshot(driver, name, tmp_path):
    target = Path(os.environ.get("FSCTL_TEST_SCREENSHOTS") or tmp_path)
    target.mkdir(parents=True, exist_ok=True)
    driver.save_screenshot(str(target / name))


def sign_in(driver, base, login):
    from selenium.webdriver.common.by import By

    driver.get(base + "/recordings")
    assert "/sign-in" in driver.current_url
    driver.find_element(By.ID, "login").send_keys(login)
    driver.find_element(By.ID, "password").send_keys(PASSWORD)
    driver.find_element(By.ID, "sign-in").click()
    wait_for(lambda: driver.current_url.endswith("/recordings"), "the recordings page")


def test_browser_user_journey_and_tenant_isolation(server, browser, tmp_path):
    from selenium.webdriver.common.by import By
    from selenium.webdriver.support.ui import Select

    base, ids, digests = server
    driver = browser
    sign_in(driver, base, "101@acme.example")
    rows = driver.find_elements(By.CSS_SELECTOR, "#recordings tbody tr[data-id]")
    assert [int(r.get_attribute("data-id")) for r in rows] == [
        ids[("acme.example", "101", "out")],
        ids[("acme.example", "101", "in")],
    ]
    assert "Ona Onaitė" in driver.find_element(By.ID, "whoami").text
    # Search: counterpart prefix and a note word.
    driver.find_element(By.ID, "f-counterpart").send_keys("+370600")
    driver.find_element(By.ID, "search").click()
    wait_for(lambda: "counterpart=%2B370600" in driver.current_url, "the search")
    rows = driver.find_elements(By.CSS_SELECTOR, "#recordings tbody tr[data-id]")
    assert [int(r.get_attribute("data-id")) for r in rows] == [ids[("acme.example", "101", "in")]]
    driver.get(base + "/recordings?note=INVOICE")
    rows = driver.find_elements(By.CSS_SELECTOR, "#recordings tbody tr[data-id]")
    assert [int(r.get_attribute("data-id")) for r in rows] == [ids[("acme.example", "101", "out")]]
    driver.get(base + "/recordings")
    screenshot(driver, "web-recordings.png", tmp_path)
    # Open, play.
    rid = ids[("acme.example", "101", "in")]
    driver.find_element(By.CSS_SELECTOR, f'tr[data-id="{rid}"] a.rec-link').click()
    wait_for(lambda: driver.current_url.endswith(f"/recordings/{rid}"), "the recording page")
    duration = wait_for(
        lambda: driver.execute_script(
            "var a = document.getElementById('player'); return a.readyState >= 1 ? a.duration : 0;"
        ),
        "audio metadata",
    )
    assert 5.9 < duration < 6.1
    driver.execute_script("document.getElementById('player').play();")
    wait_for(
        lambda: driver.execute_script("return document.getElementById('player').currentTime;") > 0.2,
        "the audio to play",
    )
    driver.execute_script("document.getElementById('player').pause();")
    # Mark: a too long field is refused with its message, then a good mark is saved.
    driver.find_element(By.ID, "m-note").send_keys("Call back Monday")
    Select(driver.find_element(By.ID, "m-colour")).select_by_value("red")
    driver.find_element(By.ID, "m-field1").send_keys("x" * 129)
    driver.find_element(By.ID, "save-mark").click()
    error = wait_for(lambda: driver.find_elements(By.ID, "error-field1"), "the field error")[0].text
    assert "must be at most 128 characters" in error
    field1 = driver.find_element(By.ID, "m-field1")
    field1.clear()
    field1.send_keys("order 7781")
    driver.find_element(By.ID, "save-mark").click()
    wait_for(lambda: "marks saved" in driver.page_source, "the saved mark")
    assert driver.find_element(By.ID, "m-note").get_attribute("value") == "Call back Monday"
    assert Select(driver.find_element(By.ID, "m-colour")).first_selected_option.get_attribute("value") == "red"
    screenshot(driver, "web-recording.png", tmp_path)
    # Download: the bytes are the catalogue's.
    driver.find_element(By.ID, "download").click()
    done = wait_for(lambda: [p for p in driver.downloads.iterdir() if p.suffix == ".wav"], "the download")
    data = done[0].read_bytes()
    assert (
        hashlib.sha256(data).hexdigest()
        == digests[("acme.example", "101", "in")]
        == driver.find_element(By.ID, "sha256").text
    )
    # The list shows the mark.
    driver.get(base + "/recordings?colour=red")
    rows = driver.find_elements(By.CSS_SELECTOR, "#recordings tbody tr[data-id]")
    assert [int(r.get_attribute("data-id")) for r in rows] == [rid] and "Call back Monday" in rows[0].text
    # My calls: missed first.
    driver.get(base + "/calls?from=2026-11-01&to=2026-11-30")
    first = driver.find_element(By.CSS_SELECTOR, "#calls tbody tr")
    assert "missed" in first.get_attribute("class") and "+37069990000" in first.text
    # Sign out: the pages are closed again.
    driver.find_element(By.ID, "sign-out").click()
    wait_for(lambda: "/sign-in" in driver.current_url, "the sign-in page")
    driver.get(base + f"/recordings/{rid}")
    assert "/sign-in" in driver.current_url
    # The other tenant's user sees none of it.
    sign_in(driver, base, "201@beta.example")
    rows = driver.find_elements(By.CSS_SELECTOR, "#recordings tbody tr[data-id]")
    assert [int(r.get_attribute("data-id")) for r in rows] == [ids[("beta.example", "201", "in")]]
    page = driver.page_source
    for secret in ("acme.example", "Call back Monday", "+37060012345", digests[("acme.example", "101", "in")]):
        assert secret not in page
    for url in (f"/recordings/{rid}", f"/api/v1/recordings/{rid}"):
        driver.get(base + url)
        assert "Call back Monday" not in driver.page_source and "acme.example" not in driver.page_source
        assert "Not found" in driver.page_source or '"does not exist"' in driver.page_source
    for url in (f"/recordings/{rid}/audio", f"/recordings/{rid}/download", f"/api/v1/recordings/{rid}/audio"):
        status = driver.execute_async_script(
            "var done = arguments[1]; fetch(arguments[0], {credentials: 'same-origin'})"
            ".then(function (r) { done(r.status); }, function () { done(-1); });",
            base + url,
        )
        assert status == 404, (url, status)
    driver.get(base + "/recordings?note=call+back")
    assert driver.find_elements(By.ID, "no-recordings")


def test_browser_signs_in_with_a_link_mailed_through_a_real_smtp_server(tmp_path, browser):
    """No password: the user asks for a link on the sign-in page, fsctl-web mails it through a real SMTP server
    (aiosmtpd on loopback), the browser follows the mailed link and is signed in; the link works once."""
    from aiosmtpd.controller import Controller
    from selenium.webdriver.common.by import By

    url, root, ids, _digests = prepare(tmp_path)
    fsdb.open_database(url)
    try:
        User.update(email="jonas@acme.example").where(User.number == "102").execute()
    finally:
        fsdb.close_database()
    received = []

    class Mailbox:
        async def handle_DATA(self, server, session, envelope):
            received.append((envelope.rcpt_tos, email.message_from_bytes(envelope.content)))
            return "250 OK"

    smtp = Controller(Mailbox(), hostname="127.0.0.1", port=free_port())
    smtp.start()
    try:
        with web_process(
            tmp_path, url, root, smtp_host="127.0.0.1", smtp_port=smtp.port, smtp_from="pbx@acme.example"
        ) as base:
            driver = browser
            driver.get(base + "/sign-in")
            driver.find_element(By.ID, "link-login").send_keys("102@acme.example")
            driver.find_element(By.ID, "send-link").click()
            wait_for(lambda: driver.find_elements(By.ID, "link-sent"), "the link-sent notice")
            [(rcpt, message)] = wait_for(lambda: list(received), "the e-mail")
            assert rcpt == ["jonas@acme.example"] and message["From"] == "pbx@acme.example"
            assert message["Subject"] == "Sign in to your phone system (acme.example)"
            body = message.get_payload(decode=True).decode()
            [link] = [line for line in body.splitlines() if line.startswith(base + "/sign-in/link/")]
            driver.get(link)  # following the link signs nobody in by itself (a mail scanner may fetch it)
            driver.get(base + "/recordings")
            assert "/sign-in" in driver.current_url
            driver.get(link)
            driver.find_element(By.ID, "use-link").click()
            wait_for(lambda: driver.current_url.endswith("/recordings"), "the recordings page")
            assert "Jonas Jonaitis" in driver.find_element(By.ID, "whoami").text
            rows = driver.find_elements(By.CSS_SELECTOR, "#recordings tbody tr[data-id]")
            assert [int(r.get_attribute("data-id")) for r in rows] == [ids[("acme.example", "102", "in")]]
            driver.find_element(By.ID, "sign-out").click()
            wait_for(lambda: "/sign-in" in driver.current_url, "the sign-in page")
            driver.get(link)  # once only
            driver.find_element(By.ID, "use-link").click()
            wait_for(
                lambda: "this sign-in link is not valid (used, expired or mistyped)" in driver.page_source,
                "the refusal",
            )
            driver.get(base + "/recordings")
            assert "/sign-in" in driver.current_url
            assert len(received) == 1
    finally:
        smtp.stop()
