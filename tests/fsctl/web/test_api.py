"""The recording API (/api/v1): tokens and scopes, marks, errors, download, rate limit, OpenAPI."""

import dataclasses
import hashlib

from fsctl.model import MarkAudit, Recording
from fsctl.services import tokens
from fsctl.web import api
from tests.fsctl.web.conftest import NOW


def bearer(secret):
    return {"authorization": f"Bearer {secret}"}


def test_token_search_get_mark_download(world):
    _, reader = tokens.add_token("acme.example", "reader", "read")
    _, marker = tokens.add_token("acme.example", "crm", "mark")
    client = world.client()
    found = client.get("/api/v1/recordings?user=101&limit=1", headers=bearer(reader))
    assert found.status_code == 200
    (rec,) = found.json()["recordings"]
    row = world.recs[("acme.example", "101")][1]
    assert rec["id"] == row.id and rec["tenant"] == "acme.example" and rec["sha256"] == row.sha256
    assert client.get(f"/api/v1/recordings/{row.id}", headers=bearer(reader)).json()["path"] == row.path
    denied = client.post(f"/api/v1/recordings/{row.id}/mark", json={"note": "x"}, headers=bearer(reader))
    assert denied.status_code == 403 and denied.json()["error"]["field"] == "token.scope"
    marked = client.post(
        f"/api/v1/recordings/{row.id}/mark",
        headers=bearer(marker),
        json={"colour": "blue", "field1": "CRM-7781", "field3": "Ū" * 128},
    )
    assert marked.status_code == 200 and marked.json()["field1"] == "CRM-7781"
    audit = client.get("/api/v1/audit", headers=bearer(reader)).json()["audit"]
    assert [(a["actor"], a["via"], a["recording_id"]) for a in audit] == [("token:crm", "api", row.id)]
    assert audit[0]["changes"]["colour"] == ["", "blue"] and audit[0]["at"] == "2026-11-21T12:00:00Z"
    audio = client.get(rec["audio_url"], headers=bearer(reader))
    assert hashlib.sha256(audio.content).hexdigest() == row.sha256
    part = client.get(rec["audio_url"], headers={**bearer(reader), "range": "bytes=0-43"})
    assert part.status_code == 206 and part.content == audio.content[:44]


def test_errors_are_field_value_rule(world):
    _, marker = tokens.add_token("acme.example", "crm", "mark")
    client = world.client()
    row = world.recs[("acme.example", "101")][0]
    beta_row = world.recs[("beta.example", "201")][0]
    url = f"/api/v1/recordings/{row.id}/mark"
    cases = [
        (client.post(url, content="{nope", headers=bearer(marker)), 400, ("body", None, "must be a JSON object")),
        (client.post(url, json=["note"], headers=bearer(marker)), 400, ("body", None, "must be a JSON object")),
        (
            client.post(url, json={"colour": "red", "stars": 5}, headers=bearer(marker)),
            400,
            ("stars", "5", "is not a mark: note, colour, field1, field2, field3"),
        ),
        (
            client.post(url, json={"field2": "x" * 129}, headers=bearer(marker)),
            422,
            ("recording.field2", "x" * 129, "must be at most 128 characters"),
        ),
        (
            client.post(url, json={"colour": "pink"}, headers=bearer(marker)),
            422,
            ("recording.colour", "pink", "must be one of red, orange, yellow, green, blue, purple, grey"),
        ),
        (client.post(url, json={"note": 5}, headers=bearer(marker)), 422, ("recording.note", "5", "must be text")),
        (
            client.post(f"/api/v1/recordings/{beta_row.id}/mark", json={"note": "x"}, headers=bearer(marker)),
            404,
            ("recording", str(beta_row.id), "does not exist"),
        ),
        (
            client.get("/api/v1/recordings", headers=bearer("fsctl_forged")),
            401,
            ("authorization", None, "the token is unknown or revoked"),
        ),
        (
            client.get("/api/v1/recordings", headers={"authorization": "Basic abc"}),
            401,
            ("authorization", None, "Authorization must be: Bearer <token>"),
        ),
        (client.get("/api/v1/recordings?limit=0", headers=bearer(marker)), 422, ("limit", "0", None)),
        (client.get("/api/v1/stats/weekly", headers=bearer(marker)), 422, ("report", "weekly", None)),
        (client.get("/api/v1/calls?from=2026-02-30", headers=bearer(marker)), 422, ("--from", "2026-02-30", None)),
    ]
    for response, status, (field, value, rule) in cases:
        assert response.status_code == status, response.text
        error = response.json()["error"]
        assert (error["field"], error["value"]) == (field, value), error
        if rule:
            assert error["rule"] == rule, error
    assert Recording.get_by_id(row.id).note == "" and MarkAudit.select().count() == 0  # nothing half-saved
    assert client.get("/api/v1/recordings").headers["www-authenticate"] == "Bearer"


def test_rate_limit_per_token(sworld):
    clock = [0.0]
    _, secret = tokens.add_token("acme.example", "busy", "read")
    _, other = tokens.add_token("acme.example", "quiet", "read")
    from starlette.testclient import TestClient

    from fsctl.web.app import create_app

    settings = dataclasses.replace(sworld.settings, web_api_rate_per_minute=3)
    client = TestClient(create_app(settings, clock=lambda: NOW, open_db=False, rate_timer=lambda: clock[0]))
    for _ in range(3):
        assert client.get("/api/v1/recordings", headers=bearer(secret)).status_code == 200
    limited = client.get("/api/v1/recordings", headers=bearer(secret))
    assert limited.status_code == 429 and limited.headers["retry-after"] == "61"
    assert limited.json()["error"]["rule"] == "at most 3 requests a minute: retry in 61 s"
    assert client.get("/api/v1/recordings", headers=bearer(other)).status_code == 200  # per token
    clock[0] = 60.5
    assert client.get("/api/v1/recordings", headers=bearer(secret)).status_code == 200


def test_revoked_token_stops_at_once(sworld):
    _, secret = tokens.add_token("acme.example", "gone", "read")
    client = sworld.client()
    assert client.get("/api/v1/recordings", headers=bearer(secret)).status_code == 200
    tokens.revoke_token("acme.example", "gone")
    assert client.get("/api/v1/recordings", headers=bearer(secret)).status_code == 401


def test_statistics_and_calls_read_only(world):
    _, reader = tokens.add_token("beta.example", "bi", "read")
    client = world.client()
    users = client.get("/api/v1/stats/users?from=2026-11-01&to=2026-11-30", headers=bearer(reader)).json()
    assert [(u["user"], u["received"], u["missed"]) for u in users["rows"]] == [("200", 0, 0), ("201", 1, 1)]
    calls = client.get("/api/v1/calls?from=2026-11-01&to=2026-11-30", headers=bearer(reader)).json()["calls"]
    assert [c["uuid"] for c in calls] == ["c-4"]
    me = world.client("101@acme.example")
    mine = me.get("/api/v1/stats/users?from=2026-11-01&to=2026-11-30").json()["rows"]
    assert [u["user"] for u in mine] == ["101"]
    assert me.get("/api/v1/stats/hourly").status_code == 403
    assert client.post("/api/v1/calls", headers=bearer(reader)).status_code == 405


def test_openapi_document_covers_every_route(sworld):
    doc = sworld.client().get("/api/v1/openapi.json").json()
    assert doc["openapi"].startswith("3.") and doc["components"]["securitySchemes"]["token"]["scheme"] == "bearer"
    for r in api.ROUTES:
        if r.path.endswith("openapi.json"):
            continue
        path = r.path.replace("{rid:int}", "{rid}")
        assert path in doc["paths"], path
        assert set(m.lower() for m in r.methods - {"HEAD"}) <= set(doc["paths"][path]), path
    params = {p["name"] for p in doc["paths"]["/api/v1/recordings"]["get"]["parameters"]}
    from fsctl.web.forms import FILTER_PARAMS

    assert set(FILTER_PARAMS) | {"limit", "offset"} == params


def test_concurrent_marks_conflict_instead_of_last_write_wins(world, monkeypatch):
    """Two clients read the same mark and both save: the second save was written over the first. A save on a
    version that is no longer current is 409 with the current recording; nothing of it is saved."""
    from fsctl.services import recordings

    _, marker = tokens.add_token("acme.example", "crm", "mark")
    client = world.client()
    row = world.recs[("acme.example", "101")][0]
    url = f"/api/v1/recordings/{row.id}"
    read = client.get(url, headers=bearer(marker))
    v0 = read.json()["mark_version"]
    assert read.headers["etag"] == f'"{v0}"'
    first = client.post(url + "/mark", json={"note": "first"}, headers={**bearer(marker), "if-match": f'"{v0}"'})
    assert first.status_code == 200
    v1 = first.json()["mark_version"]
    assert v1 != v0 and first.headers["etag"] == f'"{v1}"'
    second = client.post(
        url + "/mark", json={"note": "second", "colour": "red"}, headers={**bearer(marker), "if-match": f'"{v0}"'}
    )
    assert second.status_code == 409
    body = second.json()
    assert body["error"] == {
        "field": "version",
        "value": v0,
        "rule": f"the marks of recording {row.id} were changed "
        f"meanwhile: the current version is {v1} (read them again, then save)",
    }
    assert body["current"]["note"] == "first" and body["current"]["mark_version"] == v1
    assert second.headers["etag"] == f'"{v1}"'
    saved = Recording.get_by_id(row.id)
    assert (saved.note, saved.colour) == ("first", "") and MarkAudit.select().count() == 1
    # The same with `version` in the body; then on the current version it is saved.
    assert client.post(url + "/mark", json={"note": "second", "version": v0}, headers=bearer(marker)).status_code == 409
    again = client.post(url + "/mark", json={"note": "second", "version": v1}, headers=bearer(marker))
    assert again.status_code == 200 and again.json()["note"] == "second" and MarkAudit.select().count() == 2
    v2 = again.json()["mark_version"]
    # If-Match: * (any version) and no version at all still save; a weak tag is the same tag.
    assert (
        client.post(url + "/mark", json={"field1": "a"}, headers={**bearer(marker), "if-match": "*"}).status_code == 200
    )
    v3 = client.get(url, headers=bearer(marker)).json()["mark_version"]
    assert (
        client.post(
            url + "/mark", json={"field1": "b"}, headers={**bearer(marker), "if-match": f'W/"{v3}"'}
        ).status_code
        == 200
    )
    assert (
        client.post(url + "/mark", json={"field1": "c"}, headers={**bearer(marker), "if-match": f'"{v2}"'}).status_code
        == 409
    )
    bad = client.post(url + "/mark", json={"field1": "d", "version": v2}, headers={**bearer(marker), "if-match": '"x"'})
    assert bad.status_code == 400 and bad.json()["error"]["field"] == "version"
    assert Recording.get_by_id(row.id).field1 == "b"

    # Between the read and the write another save lands (the race a version check alone misses): the write
    # compares and sets, so it is refused too.
    stale = Recording.get_by_id(row.id)
    version = recordings.mark_version(stale)
    recordings.mark(row.id, note="meanwhile", via="lib")
    reads = iter([stale])  # the handler's read gives the row as it was; a read after that, as it is
    original = recordings.get_recording
    monkeypatch.setattr(recordings, "get_recording", lambda rid, who=None: next(reads, None) or original(rid, who))
    late = client.post(url + "/mark", json={"note": "late"}, headers={**bearer(marker), "if-match": f'"{version}"'})
    monkeypatch.undo()
    assert late.status_code == 409 and late.json()["current"]["note"] == "meanwhile"
    assert Recording.get_by_id(row.id).note == "meanwhile"


def test_concurrent_marks_in_the_browser_form(world):
    """The recording page saves on the version it showed: a second tab's older form is refused, not saved over."""
    import re

    from tests.fsctl.web.test_pages import USER, post

    client = world.client(USER)
    row = world.recs[("acme.example", "101")][0]
    page = client.get(f"/recordings/{row.id}").text
    version = re.search(r'name="version" value="([0-9a-f]+)"', page)[1]
    fields = {"note": "tab one", "colour": "green", "field1": "", "field2": "", "field3": "", "version": version}
    assert post(client, f"/recordings/{row.id}/mark", fields).status_code == 303
    refused = post(client, f"/recordings/{row.id}/mark", {**fields, "note": "tab two"})
    assert refused.status_code == 409 and 'id="error-version"' in refused.text
    assert "tab one" in refused.text  # the current marks are shown
    assert Recording.get_by_id(row.id).note == "tab one" and MarkAudit.select().count() == 1
