"""The web workspace in-process: two tenants, their users, recordings (real WAV files) and calls."""

import dataclasses
import datetime as dt
import re

import pytest
from starlette.testclient import TestClient

from fsctl.config import Settings
from fsctl.model import RecordingGroup, RecordingGroupMember, RecordingGroupSupervisor, Tenant, User, WebCredential
from fsctl.services import webauth
from fsctl.web.app import create_app
from tests.fsctl.services.test_recordings import make_recording
from tests.fsctl.services.test_stats import add_call

NOW = dt.datetime(2026, 11, 21, 12, 0, 0)
PASSWORD = "correct horse battery"
# acme.example: 100 admin, 101 and 102 users, 104 supervisor of "sales" {101, 102}; beta.example: 200 admin, 201 user.
ACME = {"100": "admin", "101": "user", "102": "user", "103": "user", "104": "supervisor"}
BETA = {"200": "admin", "201": "user"}


@dataclasses.dataclass
class World:
    settings: Settings
    root: str
    recs: dict  # (domain, user) -> [recording rows]
    mail: list

    def client(self, login=None, password=PASSWORD, scheme="http"):
        """A TestClient, signed in as `login` when given."""
        app = create_app(self.settings, clock=lambda: NOW, open_db=False, mailer=self.mail.append)
        client = TestClient(app, base_url=f"{scheme}://127.0.0.1")
        if login:
            sign_in(client, login, password)
        return client


def csrf_of(html):
    return re.search(r'name="csrf" value="([^"]+)"', html)[1]


def sign_in(client, login, password=PASSWORD):
    page = client.get("/sign-in")
    response = client.post(
        "/sign-in",
        data={"csrf": csrf_of(page.text), "login": login, "password": password, "next": "/recordings"},
        follow_redirects=False,
    )
    assert response.status_code == 303, response.text
    return response


def build_world(tmp_path, secure=False):
    root = tmp_path / "recordings"
    root.mkdir()
    acme = Tenant.create(domain="acme.example", name="ACME", timezone="Europe/Vilnius")
    beta = Tenant.create(domain="beta.example", name="Beta", timezone="UTC")
    users = {}
    hashed = None
    for tenant, table in ((acme, ACME), (beta, BETA)):
        for number, role in table.items():
            user = users[(tenant.domain, number)] = User.create(
                tenant=tenant,
                number=number,
                name=f"User {number}",
                sip_password="s" * 24,
                role=role,
                record=True,
                vm_pin="1234",
                email=f"u{number}@{tenant.domain}",
            )
            if hashed is None:  # argon2 is slow by design: hash once, the same password for everyone
                webauth.set_web_password(tenant.domain, number, PASSWORD, now=NOW)
                hashed = WebCredential.get().password_hash
            else:
                WebCredential.create(user=user, password_hash=hashed, updated_at=NOW)
    sales = RecordingGroup.create(tenant=acme, name="sales")
    for n in ("101", "102"):
        RecordingGroupMember.create(group=sales, user=users[("acme.example", n)])
    RecordingGroupSupervisor.create(group=sales, user=users[("acme.example", "104")])
    recs = {}
    start = dt.datetime(2026, 11, 20, 9, 0, 0)
    i = 0
    for domain, numbers in (("acme.example", ("100", "101", "102", "103", "104")), ("beta.example", ("200", "201"))):
        for n in numbers:
            for k in range(2):
                i += 1
                row, _ = make_recording(
                    str(root),
                    domain=domain,
                    user=n,
                    counterpart=f"+3706{i:07d}",
                    started=start + dt.timedelta(minutes=i),
                    uuid=f"u-{i}",
                    seconds=3.5 + k,
                    fill=bytes([i % 256, k]),
                )
                recs.setdefault((domain, n), []).append(row)
    day = dt.datetime(2026, 11, 20, 10, 0, 0)
    add_call(acme, "c-1", day, "+37069900001", "101", "answered", {"101": dict(received=1, answered=1)})
    add_call(
        acme, "c-2", day + dt.timedelta(hours=1), "+37069900002", "101", "missed", {"101": dict(received=1, missed=1)}
    )
    add_call(
        acme, "c-3", day + dt.timedelta(hours=2), "+37069900003", "103", "missed", {"103": dict(received=1, missed=1)}
    )
    add_call(beta, "c-4", day, "+37069900004", "201", "missed", {"201": dict(received=1, missed=1)})
    settings = Settings(
        database="unused",
        recordings_dir=str(root),
        web_secure_cookies=secure,
        web_base_url="http://127.0.0.1:1",
        conf_dir=str(tmp_path / "conf"),
    )
    return World(settings, str(root), recs, [])


@pytest.fixture
def world(db, tmp_path):
    """Both engines."""
    return build_world(tmp_path)


@pytest.fixture
def sworld(sdb, tmp_path):
    """SQLite only (engine-independent behaviour)."""
    return build_world(tmp_path)
