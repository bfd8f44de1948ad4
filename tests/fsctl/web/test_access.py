"""Every route x every role x both tenants: who gets what, and nobody sees another tenant's data."""

import ast
import pathlib
import subprocess
import sys

import pytest

from fsctl.services import tokens
from fsctl.web import api, pages
from tests.fsctl.web.conftest import csrf_of

ANON, USER, SUPERVISOR, ADMIN, BETA_USER, BETA_ADMIN, TOKEN_READ, TOKEN_MARK = (
    "anon",
    "101@acme.example",
    "104@acme.example",
    "100@acme.example",
    "201@beta.example",
    "200@beta.example",
    "token-read",
    "token-mark",
)
IDENTITIES = (ANON, USER, SUPERVISOR, ADMIN, BETA_USER, BETA_ADMIN, TOKEN_READ, TOKEN_MARK)
ACME_SIDE = {USER, SUPERVISOR, ADMIN, TOKEN_READ, TOKEN_MARK}

# Recording ids by whose they are: own101 (101's), own102 (in 104's group, not 101's), own103 (only the admin's
# view), beta201 (the other tenant's).
R = ("own101", "own102", "own103", "beta201")

# (method, path, what the path refers to) -> expected status per identity (missing: the default of the kind).
PAGE, API = "page", "api"
REDIRECT = 303


def page_expect(public=False, admin=False, rec=None):
    """Expected page status: anonymous callers (and tokens: pages take no token) go to the sign-in page."""
    out = {}
    for who in IDENTITIES:
        if who in (ANON, TOKEN_READ, TOKEN_MARK):
            out[who] = 200 if public else REDIRECT
        elif admin:
            out[who] = 200 if who in (ADMIN, BETA_ADMIN) else 403
        else:
            out[who] = 200
    if rec:
        out.update(_rec_visibility(rec, page=True))
    return out


def _rec_visibility(rec, page):
    sees = {
        "own101": {USER, SUPERVISOR, ADMIN, TOKEN_READ, TOKEN_MARK},
        "own102": {SUPERVISOR, ADMIN, TOKEN_READ, TOKEN_MARK},
        "own103": {ADMIN, TOKEN_READ, TOKEN_MARK},
        "beta201": {BETA_USER, BETA_ADMIN},
    }[rec]
    out = {}
    for who in IDENTITIES:
        if page and who in (ANON, TOKEN_READ, TOKEN_MARK):
            continue
        if not page and who == ANON:
            continue
        out[who] = 200 if who in sees else 404
    return out


def api_expect(admin=False, rec=None, mark=False):
    out = {who: 200 for who in IDENTITIES}
    out[ANON] = 401
    if rec:
        out.update(_rec_visibility(rec, page=False))
    if admin:
        for who in (USER, SUPERVISOR, BETA_USER):
            out[who] = 403
    if mark:
        out[TOKEN_READ] = 403  # the scope is checked before the recording is looked up
    return out


GET_ROUTES = [
    ("/", {**page_expect(), **{w: REDIRECT for w in IDENTITIES}}),
    (
        "/sign-in",
        {**page_expect(public=True), **{w: REDIRECT for w in (USER, SUPERVISOR, ADMIN, BETA_USER, BETA_ADMIN)}},
    ),
    ("/sign-in/link/nosuchtoken", page_expect(public=True)),
    ("/recordings", page_expect()),
    ("/recordings/newest", page_expect()),
    *[(f"/recordings/{{{r}}}", page_expect(rec=r)) for r in R],
    *[(f"/recordings/{{{r}}}/audio", page_expect(rec=r)) for r in R],
    *[(f"/recordings/{{{r}}}/download", page_expect(rec=r)) for r in R],
    ("/calls", page_expect()),
    ("/settings", page_expect()),
    ("/admin/users", page_expect(admin=True)),
    ("/admin/recgroups", page_expect(admin=True)),
    ("/admin/stats", page_expect(admin=True)),
    ("/admin/audit", page_expect(admin=True)),
    ("/api/v1/openapi.json", {w: 200 for w in IDENTITIES}),
    ("/api/v1/recordings", api_expect()),
    *[(f"/api/v1/recordings/{{{r}}}", api_expect(rec=r)) for r in R],
    *[(f"/api/v1/recordings/{{{r}}}/audio", api_expect(rec=r)) for r in R],
    ("/api/v1/audit", api_expect(admin=True)),
    ("/api/v1/calls", api_expect()),
    ("/api/v1/stats/{users}", api_expect()),
    ("/api/v1/stats/{daily}", api_expect(admin=True)),
]


def _post_expect_page(admin=False, public=False, rec=None, ok=REDIRECT):
    out = page_expect(admin=admin, public=public, rec=rec)
    return {w: (ok if s == 200 else s) for w, s in out.items()}


POST_ROUTES = [
    # (path, form, expected): a valid form with the caller's CSRF token.
    ("/sign-in", {"login": "{me}", "password": "wrong password!"}, {w: 401 for w in IDENTITIES}),
    ("/sign-in/link", {"login": "{me}"}, {w: 200 for w in IDENTITIES}),
    ("/sign-in/link/nosuchtoken", {}, {w: 401 for w in IDENTITIES}),
    ("/sign-out", {}, {w: REDIRECT for w in IDENTITIES}),
    *[(f"/recordings/{{{r}}}/mark", {"note": "checked"}, _post_expect_page(rec=r)) for r in R],
    ("/settings/forwarding", {"fwd_busy": ""}, _post_expect_page()),
    ("/settings/vm-pin", {"vm_pin": "24680"}, _post_expect_page()),
    (
        "/settings/password",
        {"current": "wrong password!", "new": "another long password"},
        {**_post_expect_page(), **{w: 422 for w in (USER, SUPERVISOR, ADMIN, BETA_USER, BETA_ADMIN)}},
    ),
    ("/admin/users/{number}", {"role": "{role}"}, {**_post_expect_page(admin=True), BETA_ADMIN: 404}),
    ("/admin/recgroups", {"name": "{group}", "members": "", "supervisors": ""}, _post_expect_page(admin=True)),
    # "sales" is acme's group: beta's admin gets 404 (never another tenant's group)
    (
        "/admin/recgroups/{group0}",
        {"members": "101 102", "supervisors": "104"},
        {**_post_expect_page(admin=True), BETA_ADMIN: 404},
    ),
    *[(f"/api/v1/recordings/{{{r}}}/mark", {"note": "via api"}, api_expect(rec=r, mark=True)) for r in R],
]


def test_every_route_is_in_the_matrix():
    tested = {("GET", p) for p, _ in GET_ROUTES} | {("POST", p) for p, _, _ in POST_ROUTES}
    norm = {(m, _template(p)) for m, p in tested}
    for r in pages.ROUTES + api.ROUTES:
        for method in r.methods - {"HEAD"}:
            assert (method, _template(r.path)) in norm, f"{method} {r.path} is not in the access matrix"


def _template(path):
    import re

    return re.sub(r"\{[^}]*\}", "{}", path).replace("/nosuchtoken", "/{}")


def _ids(world):
    recs = world.recs
    return {
        "own101": recs[("acme.example", "101")][0].id,
        "own102": recs[("acme.example", "102")][0].id,
        "own103": recs[("acme.example", "103")][0].id,
        "beta201": recs[("beta.example", "201")][0].id,
    }


def _markers(world, side):
    """Strings only the other tenant's data contains."""
    domain = "beta.example" if side == "acme" else "acme.example"
    rows = [r for (d, _), rs in world.recs.items() if d == domain for r in rs]
    return [domain] + [r.sha256 for r in rows] + [r.counterpart for r in rows] + [r.path for r in rows]


class Callers:
    def __init__(self, world):
        self.world = world
        self.clients = {}
        self.token = {
            TOKEN_READ: tokens.add_token("acme.example", "reader", "read")[1],
            TOKEN_MARK: tokens.add_token("acme.example", "marker", "mark")[1],
        }

    def client(self, who):
        if who not in self.clients:
            self.clients[who] = self.world.client(None if who in (ANON, TOKEN_READ, TOKEN_MARK) else who)
        return self.clients[who]

    def headers(self, who, path):
        if who in self.token and path.startswith("/api/"):
            return {"authorization": f"Bearer {self.token[who]}"}
        return {}


def _fill(path, ids, who):
    domain = who.split("@")[1] if "@" in who else "acme.example"
    number = "103"  # an acme user: beta's admin gets 404
    values = {
        **ids,
        "number": number,
        "group0": "sales",
        "group": f"g{abs(hash(who)) % 10000}",
        "member": "102" if domain == "acme.example" else "201",
        "role": "supervisor",
        "users": "users",
        "daily": "daily",
        "me": who
        if "@" in who
        else {ANON: "103@acme.example", TOKEN_READ: "102@acme.example", TOKEN_MARK: "105@acme.example"}[who],
    }
    return path.format(**values), values


def test_get_matrix(world):
    """Every GET route for every identity: the documented status, and never another tenant's data."""
    callers, ids = Callers(world), _ids(world)
    for path, expected in GET_ROUTES:
        for who in IDENTITIES:
            url, _ = _fill(path, ids, who)
            response = callers.client(who).get(url, headers=callers.headers(who, url), follow_redirects=False)
            assert response.status_code == expected[who], (who, url, response.status_code, response.text[:300])
            side = "acme" if who in ACME_SIDE else "beta"
            if who != ANON:
                body = response.content.decode("latin-1")
                for marker in _markers(world, side):
                    assert marker not in body, (who, url, marker)


def test_post_matrix(world):
    """Every POST route for every identity (with its CSRF token): status, and the other tenant untouched."""
    callers, ids = Callers(world), _ids(world)
    import json

    for path, form, expected in POST_ROUTES:
        for who in IDENTITIES:
            if path == "/sign-out":
                continue  # would end the session every later request needs: its own test below
            url, values = _fill(path, ids, who)
            client = callers.client(who)
            data = {k: v.format(**values) for k, v in form.items()}
            if url.startswith("/api/"):
                headers = callers.headers(who, url)
                if who not in callers.token and who != ANON:
                    page = client.get("/recordings")
                    headers["x-csrf-token"] = csrf_of(page.text)
                response = client.post(url, content=json.dumps(data), headers=headers, follow_redirects=False)
            else:
                page = client.get("/sign-in" if who in (ANON, TOKEN_READ, TOKEN_MARK) else "/recordings")
                data["csrf"] = csrf_of(page.text)
                response = client.post(url, data=data, follow_redirects=False)
            assert response.status_code == expected[who], (who, url, response.status_code, response.text[:300])
            side = "acme" if who in ACME_SIDE else "beta"
            if who != ANON:
                for marker in _markers(world, side):
                    assert marker not in response.content.decode("latin-1"), (who, url, marker)
    from fsctl.model import Recording

    assert Recording.get_by_id(ids["beta201"]).note in ("checked", "via api")  # only beta's own users marked it
    assert Recording.get_by_id(ids["own103"]).note == "via api"  # admin page then token API (last write wins)


def test_forms_without_csrf_are_refused(sworld):
    client = sworld.client(USER)
    rid = _ids(sworld)["own101"]
    for url, data in (
        (f"/recordings/{rid}/mark", {"note": "x"}),
        ("/settings/vm-pin", {"vm_pin": "1111"}),
        ("/sign-out", {}),
    ):
        assert client.post(url, data=data, follow_redirects=False).status_code == 403
        assert client.post(url, data={**data, "csrf": "forged"}, follow_redirects=False).status_code == 403
    anon = sworld.client()
    response = anon.post(
        "/sign-in", data={"login": USER, "password": "correct horse battery", "csrf": "x"}, follow_redirects=False
    )
    assert response.status_code == 403
    # The API with a session (not a token) needs the X-CSRF-Token header to mark.
    assert client.post(f"/api/v1/recordings/{rid}/mark", json={"note": "x"}).status_code == 403


def test_web_package_imports_neither_click_nor_the_daemon():
    root = pathlib.Path(__file__).resolve().parents[3] / "fsctl" / "web"
    for path in root.glob("*.py"):
        tree = ast.parse(path.read_text())
        for node in ast.walk(tree):
            names = (
                [a.name for a in node.names]
                if isinstance(node, ast.Import)
                else [node.module or ""]
                if isinstance(node, ast.ImportFrom) and node.level == 0
                else []
            )
            for name in names:
                assert name.split(".")[0] not in ("click", "fs_scripts", "rich"), (path.name, name)
    code = (
        "import sys, fsctl.web.app, fsctl.web.handling, fsctl.web.cli; "
        "assert 'click' not in sys.modules, 'click imported'"
    )
    subprocess.run([sys.executable, "-c", code], check=True)


@pytest.mark.parametrize("who", [USER, ADMIN])
def test_api_lists_only_what_the_page_lists(sworld, who):
    client = sworld.client(who)
    page = client.get("/recordings").text
    data = client.get("/api/v1/recordings?limit=500").json()["recordings"]
    assert data and all(f'data-id="{r["id"]}"' in page for r in data)
    assert {r["tenant"] for r in data} == {"acme.example"}
