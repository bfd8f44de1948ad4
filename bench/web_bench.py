"""fsctl-web: the recordings search page and the API search over a 1,000,000-row catalogue, p50/p99.

The catalogue is bench/rec_bench.py's (20 tenants, half the rows in one; SQLite). Requests go
through the whole application in-process (Starlette's test client: routing, session or token
check, CSRF-free GETs, the services' search, Jinja or JSON), not through a socket.
"""

import re
import shutil
import statistics
import tempfile
import time

from fsctl import db as fsdb
from fsctl.config import Settings
from fsctl.model import User
from fsctl.services import tokens, webauth

from .rec_bench import load_catalogue

PASSWORD = "bench password 1"


def _percentiles(times):
    times = sorted(times)
    p99 = times[min(len(times) - 1, int(round(0.99 * (len(times) - 1))))]
    return statistics.median(times) * 1000, p99 * 1000


def run(quick: bool) -> list[tuple[str, str]]:
    """p50/p99 per page of the search page and of the API search."""
    from starlette.testclient import TestClient

    from fsctl.web.app import create_app

    work = tempfile.mkdtemp(prefix="fsctl-web-bench-")
    rows = 20_000 if quick else 1_000_000
    repeat = 20 if quick else 100
    database = fsdb.open_database(f"sqlite:///{work}/bench.db")
    try:
        tenants, load = load_catalogue(database, rows)
        big = tenants[0]
        User.create(tenant=big, number="100", name="Admin", sip_password="x" * 16, role="admin")
        webauth.set_web_password(big.domain, "100", PASSWORD)
        _, secret = tokens.add_token(big.domain, "bench", "read")
        app = create_app(
            Settings(database="unused", recordings_dir=work, web_secure_cookies=False, web_api_rate_per_minute=10**6),
            open_db=False,
        )  # the most the settings allow
        client = TestClient(app, base_url="http://127.0.0.1")
        page = client.get("/sign-in")
        csrf = re.search(r'name="csrf" value="([^"]+)"', page.text)[1]
        assert (
            client.post(
                "/sign-in",
                data={"csrf": csrf, "login": f"100@{big.domain}", "password": PASSWORD},
                follow_redirects=False,
            ).status_code
            == 303
        )
        cases = {
            "first page, no filter": "",
            "one week": "from=2026-09-01&to=2026-09-07",
            "one week, user + min length": "from=2026-09-01&to=2026-09-07&user=150&min_length=60",
            "colour red, page 20": "colour=red&page=20",
            "note text, one month": "from=2026-09-01&to=2026-09-30&note=call+back",
        }
        figures = [(f"catalogue rows (SQLite, loaded in {load:.0f} s); tenant admin of the big tenant", f"{rows:,}")]
        for label, query in cases.items():
            api_query = query.replace("page=20", "offset=950")
            for kind, url, headers in (
                ("page", f"/recordings?{query}", {}),
                ("API ", f"/api/v1/recordings?{api_query}", {"authorization": f"Bearer {secret}"}),
            ):
                times = []
                for _ in range(repeat):
                    t0 = time.perf_counter()
                    response = client.get(url, headers=headers)
                    times.append(time.perf_counter() - t0)
                    assert response.status_code == 200, response.text[:200]
                p50, p99 = _percentiles(times)
                figures.append((f"{kind} {label} (50 rows)", f"p50 {p50:.1f} ms, p99 {p99:.1f} ms ({repeat} requests)"))
        return figures
    finally:
        fsdb.close_database()
        shutil.rmtree(work, ignore_errors=True)
