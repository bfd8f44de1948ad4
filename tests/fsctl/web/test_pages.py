"""The pages: sign-in and sessions, recordings (search, play, download, mark), my calls, my settings, admin."""

import datetime as dt
import hashlib
import html
import re

from fsctl.model import GroupMember, MarkAudit, Recording, Tenant, User
from fsctl.services import groups
from tests.conftest import free_port
from tests.fsctl.web.conftest import NOW, PASSWORD, csrf_of, sign_in

USER, ADMIN, SUPERVISOR = "101@acme.example", "100@acme.example", "104@acme.example"


def post(client, url, data, page="/recordings"):
    data = {**data, "csrf": csrf_of(client.get(page).text)}
    return client.post(url, data=data, follow_redirects=False)


# --- sign-in -------------------------------------------------------------------------------------


def test_session_cookie_is_secure_httponly_samesite(db, tmp_path):
    from tests.fsctl.web.conftest import build_world

    world = build_world(tmp_path, secure=True)
    client = world.client(scheme="https")  # a Secure cookie only comes back over HTTPS (the reverse proxy's)
    page = client.get("/sign-in")
    assert "fsctl_pre=" in page.headers["set-cookie"] and "Secure" in page.headers["set-cookie"]
    response = client.post(
        "/sign-in", data={"csrf": csrf_of(page.text), "login": USER, "password": PASSWORD}, follow_redirects=False
    )
    assert response.status_code == 303
    (cookie,) = [c for c in response.headers.get_list("set-cookie") if c.startswith("__Host-fsctl_session=")]
    for flag in ("HttpOnly", "Secure", "SameSite=strict", "Path=/"):
        assert flag in cookie, cookie
    assert "Domain" not in cookie
    for name in ("content-security-policy", "x-frame-options", "referrer-policy"):
        assert name in page.headers


def test_sign_in_wrong_password_then_throttled_then_sign_out(sworld):
    client = sworld.client()
    page = client.get("/recordings", follow_redirects=False)
    assert page.status_code == 303 and page.headers["location"] == "/sign-in?next=%2Frecordings"
    for _ in range(5):
        wrong = post(client, "/sign-in", {"login": USER, "password": "not the password"}, page="/sign-in")
        assert wrong.status_code == 401 and "wrong user or password" in wrong.text
    locked = post(client, "/sign-in", {"login": USER, "password": PASSWORD}, page="/sign-in")
    assert locked.status_code == 429 and "too many failed sign-ins: try again in 15 minutes" in locked.text
    other = sworld.client(ADMIN)  # another account is not locked
    assert other.get("/recordings").status_code == 200
    cookie = other.cookies.get("fsctl_session")
    out = post(other, "/sign-out", {})
    assert out.status_code == 303 and out.headers["location"] == "/sign-in"
    # The old cookie opens nothing any more (the session is gone on the server).
    again = sworld.client()
    again.cookies.set("fsctl_session", cookie)
    assert again.get("/recordings", follow_redirects=False).status_code == 303


def test_sign_in_keeps_where_the_user_was_going(sworld):
    client = sworld.client()
    rid = sworld.recs[("acme.example", "101")][0].id
    page = client.get(f"/recordings/{rid}", follow_redirects=True)
    assert 'name="next" value="/recordings/%d"' % rid in page.text
    response = client.post(
        "/sign-in",
        data={"csrf": csrf_of(page.text), "login": USER, "password": PASSWORD, "next": f"/recordings/{rid}"},
        follow_redirects=False,
    )
    assert response.headers["location"] == f"/recordings/{rid}"
    fresh = sworld.client()
    page = fresh.get("/sign-in")
    evil = fresh.post(
        "/sign-in",
        data={"csrf": csrf_of(page.text), "login": USER, "password": PASSWORD, "next": "//evil.example.invalid/"},
        follow_redirects=False,
    )
    assert evil.headers["location"] == "/recordings"


def test_sign_in_by_mailed_link(sworld):
    client = sworld.client()
    sent = post(client, "/sign-in/link", {"login": USER}, page="/sign-in")
    assert sent.status_code == 200 and 'id="link-sent"' in sent.text
    (message,) = sworld.mail
    assert message["To"] == "u101@acme.example"
    url = re.search(r"(http://\S+)", message.get_content())[1]
    path = url.split("127.0.0.1:1", 1)[1]
    confirm = client.get(path)
    assert confirm.status_code == 200 and client.get("/recordings", follow_redirects=False).status_code == 303
    used = client.post(path, data={"csrf": csrf_of(confirm.text)}, follow_redirects=False)
    assert used.status_code == 303 and client.get("/recordings").status_code == 200
    again = sworld.client()
    page = again.get(path)
    assert again.post(path, data={"csrf": csrf_of(page.text)}).status_code == 401  # once only
    # An unknown account: the same answer, no mail.
    assert 'id="link-sent"' in post(again, "/sign-in/link", {"login": "199@acme.example"}, page="/sign-in").text
    assert len(sworld.mail) == 1


# --- recordings ------------------------------------------------------------------------------------


def _ids(page):
    return [int(i) for i in re.findall(r'<tr data-id="(\d+)"', page.text)]


def test_search_by_every_field(world):
    client = world.client(ADMIN)
    recs = world.recs
    r101 = recs[("acme.example", "101")]
    Recording.update(note="Sąskaita išsiųsta", colour="red", field1="order 7781", field2="VIP", field3="lt").where(
        Recording.id == r101[1].id
    ).execute()
    Recording.update(
        note_fold="sąskaita išsiųsta", field1_fold="order 7781", field2_fold="vip", field3_fold="lt"
    ).where(Recording.id == r101[1].id).execute()
    everything = _ids(client.get("/recordings"))
    assert len(everything) == 10  # acme's only, newest first
    started = {r.id: r.started_at for rs in recs.values() for r in rs}
    assert [started[i] for i in everything] == sorted((started[i] for i in everything), reverse=True)
    cases = {
        "user=101": [r.id for r in reversed(r101)],
        "user_name=user+101": [r.id for r in reversed(r101)],
        f"counterpart={r101[0].counterpart}": [r101[0].id],
        "colour=red": [r101[1].id],
        "note=SĄSKAITA": [r101[1].id],
        "field1=7781": [r101[1].id],
        "field2=vip": [r101[1].id],
        "field3=LT": [r101[1].id],
        "min_length=4.2": [
            r.id for rs in recs.values() for r in rs if r.duration >= 4.2 and r.tenant.domain == "acme.example"
        ],
        "max_length=3.6": [
            r.id for rs in recs.values() for r in rs if r.duration <= 3.6 and r.tenant.domain == "acme.example"
        ],
        f"from={r101[1].started_at:%Y-%m-%dT%H:%M}&to={r101[1].started_at:%Y-%m-%dT%H:%M}:59": [r101[1].id],
    }
    for query, expected in cases.items():
        query = query.replace("+3", "%2B3")
        found = _ids(client.get(f"/recordings?{query}"))
        assert sorted(found) == sorted(expected), query
        api = client.get(f"/api/v1/recordings?{query}").json()["recordings"]
        assert [r["id"] for r in api] == found, query


def test_search_errors_one_message_per_field(sworld):
    client = sworld.client(USER)
    page = client.get("/recordings?from=yesterday&colour=pink&min_length=-1&user=1")
    assert page.status_code == 422
    for field, rule in (
        ("from", "must be a date YYYY-MM-DD"),
        ("min_length", "must be a number of seconds >= 0"),
        ("user", "2 to 6 digits"),
    ):
        error = re.search(rf'id="error-{field}">([^<]+)<', page.text)
        assert error and rule in html.unescape(error[1]), (field, page.text[-2000:])
    assert "must be one of red" in page.text
    api = client.get("/api/v1/recordings?colour=pink")
    assert api.status_code == 422 and api.json() == {
        "error": {
            "field": "--colour",
            "value": "pink",
            "rule": "must be one of red, orange, yellow, green, blue, purple, grey",
        }
    }
    assert client.get("/api/v1/recordings?colour=red&bogus=1").json()["error"]["field"] == "bogus"


def test_paging_50_newest_first(sworld):
    tenant = Tenant.get(Tenant.domain == "acme.example")
    base = dt.datetime(2026, 10, 1)
    for i in range(120):
        Recording.create(
            tenant=tenant,
            user_number="101",
            direction="in",
            counterpart="+370600",
            path=f"x/{i}.wav",
            started_at=base + dt.timedelta(hours=i),
            duration=5,
        )
    client = sworld.client(USER)
    pages = [_ids(client.get(f"/recordings?user=101&page={n}")) for n in (1, 2, 3)]
    assert [len(p) for p in pages] == [50, 50, 22]
    flat = [i for p in pages for i in p]
    starts = [Recording.get_by_id(i).started_at for i in flat]
    assert starts == sorted(starts, reverse=True) and len(set(flat)) == 122
    first = client.get("/recordings?user=101")
    assert 'id="next"' in first.text and 'id="prev"' not in first.text
    assert 'id="next"' not in client.get("/recordings?user=101&page=3").text


def test_list_refresh_sees_a_new_call(sworld, tmp_path):
    from tests.fsctl.services.test_recordings import make_recording

    client = sworld.client(USER)
    page = client.get("/recordings")
    newest = int(re.search(r'data-newest="(\d+)"', page.text)[1])
    assert client.get("/recordings/newest").json() == {"newest": newest}
    row, _ = make_recording(sworld.root, user="101", started=NOW, uuid="new-call")
    assert client.get("/recordings/newest").json() == {"newest": row.id}
    assert _ids(client.get("/recordings"))[0] == row.id


def test_play_with_range_and_download_exact_bytes(world):
    client = world.client(USER)
    row = world.recs[("acme.example", "101")][0]
    page = client.get(f"/recordings/{row.id}")
    assert f'<audio controls preload="metadata" id="player" src="/recordings/{row.id}/audio">' in page.text
    part = client.get(f"/recordings/{row.id}/audio", headers={"range": "bytes=44-143"})
    assert part.status_code == 206 and len(part.content) == 100
    assert part.headers["content-range"] == f"bytes 44-143/{row.size}"
    assert part.headers["content-type"] == "audio/wav"
    whole = client.get(f"/recordings/{row.id}/download")
    assert whole.headers["content-disposition"].startswith("attachment;")
    assert hashlib.sha256(whole.content).hexdigest() == row.sha256
    assert part.content == whole.content[44:144]
    bad = client.get(f"/recordings/{row.id}/audio", headers={"range": f"bytes={row.size + 10}-"})
    assert bad.status_code == 416


def test_mark_from_the_page_is_validated_and_audited(world):
    client = world.client(USER)
    row = world.recs[("acme.example", "101")][0]
    response = post(
        client,
        f"/recordings/{row.id}/mark",
        {
            "note": 'Call back <Monday> & "soon"',
            "colour": "green",
            "field1": "order 7781",
            "field2": "",
            "field3": "ĄČĘ",
        },
    )
    assert response.status_code == 303
    saved = Recording.get_by_id(row.id)
    assert (saved.note, saved.colour, saved.field1, saved.field3) == (
        'Call back <Monday> & "soon"',
        "green",
        "order 7781",
        "ĄČĘ",
    )
    page = client.get(f"/recordings/{row.id}")
    assert "Call back &lt;Monday&gt; &amp; &#34;soon&#34;" in page.text and "marks saved" in page.text
    (audit,) = MarkAudit.select()
    assert (audit.actor, audit.via, audit.at) == (USER, "web", NOW)
    # Two bad fields: one message each, and nothing saved (the valid note neither).
    bad = post(
        client,
        f"/recordings/{row.id}/mark",
        {"note": "changed", "colour": "pink", "field1": "x" * 129, "field2": "ok", "field3": "ok"},
    )
    assert bad.status_code == 422
    assert "must be one of red" in re.search(r'id="error-colour">([^<]+)<', bad.text)[1]
    assert "at most 128 characters" in re.search(r'id="error-field1">([^<]+)<', bad.text)[1]
    assert 'value="' + "x" * 129 + '"' in bad.text  # what the user typed stays in the form
    assert Recording.get_by_id(row.id).note == 'Call back <Monday> & "soon"' and MarkAudit.select().count() == 1
    admin = world.client(ADMIN)
    assert USER in admin.get(f"/recordings/{row.id}").text  # the admin sees the mark history
    assert USER in admin.get("/admin/audit").text


# --- my calls, my settings ---------------------------------------------------------------------------


def test_my_calls_missed_first_with_statistics_and_chart(world):
    client = world.client(USER)
    page = client.get("/calls?from=2026-11-01&to=2026-11-30")
    assert page.status_code == 200
    rows = re.findall(r"<tr class=\"(missed)?\"><td>([^<]+)</td><td>(\w+)</td>", page.text)
    assert [(r[1], r[2]) for r in rows] == [("2026-11-20 11:00:00", "missed"), ("2026-11-20 10:00:00", "answered")]
    assert "+37069900003" not in page.text  # 103's call: not 101's
    stats_row = re.search(r'id="my-stats">.*?</tr>\s*<tr>(.*?)</tr>', page.text, re.S)[1]
    assert re.findall(r"<td>([^<]+)</td>", stats_row) == ["2", "1", "1", "0", "30.0 s"]
    assert "<svg" in page.text and "My calls per day (101)" in page.text
    admin = world.client(ADMIN).get("/calls?from=2026-11-01&to=2026-11-30")
    assert admin.text.count("+3706990000") == 3  # the admin: every call of the tenant (not beta's)
    api = world.client(USER).get("/api/v1/calls?from=2026-11-01&to=2026-11-30&missed_first=true").json()
    assert [(c["uuid"], c["missed"]) for c in api["calls"]] == [("c-2", True), ("c-1", False)]
    bad = client.get("/calls?from=2026-13-01")
    assert bad.status_code == 422 and "must be a date YYYY-MM-DD" in bad.text


def test_forwarding_and_the_r_seq_refusal(world):
    client = world.client(USER)
    ok = post(
        client,
        "/settings/forwarding",
        {"fwd_always": "", "fwd_busy": "voicemail:101", "fwd_no_answer": "user:102", "fwd_unreachable": ""},
        "/settings",
    )
    assert ok.status_code == 303
    user = User.get(User.number == "101")
    assert (user.fwd_busy, user.fwd_no_answer) == ("voicemail:101", "user:102")
    groups.add_group("acme.example", "200", "Hunt", strategy="sequential", members=["102", "103"])
    other = world.client("102@acme.example")
    refused = post(other, "/settings/forwarding", {"fwd_busy": "user:103", "fwd_no_answer": "nonsense"}, "/settings")
    assert refused.status_code == 422
    text = refused.text.replace("&#34;", '"')
    assert "user 102 is in sequential group 200; its members cannot forward (R-SEQ)" in text
    assert "must be a destination like user:101" in text
    assert User.get(User.number == "102").forwarding() == {}  # nothing half-saved
    assert GroupMember.select().count() == 2


def test_voicemail_pin_and_sip_settings(world):
    client = world.client(USER)
    assert post(client, "/settings/vm-pin", {"vm_pin": "24680"}, "/settings").status_code == 303
    assert User.get(User.number == "101").vm_pin == "24680"
    bad = post(client, "/settings/vm-pin", {"vm_pin": "12a"}, "/settings")
    assert bad.status_code == 422 and "4 to 12 digits" in bad.text.replace("&#34;", '"')
    page = client.get("/settings")
    assert 'id="sip-password">' + "s" * 24 in page.text and "<code>acme.example</code>" in page.text
    assert "<code>127.0.0.1:5060</code>" in page.text


def test_change_own_web_password_keeps_this_session(sworld):
    client = sworld.client(USER)
    assert (
        post(
            client, "/settings/password", {"current": PASSWORD, "new": "a brand new password"}, "/settings"
        ).status_code
        == 303
    )
    assert client.get("/settings").status_code == 200
    fresh = sworld.client()
    sign_in(fresh, USER, "a brand new password")


# --- the admin's pages -------------------------------------------------------------------------------


def test_admin_users_page(world):
    admin = world.client(ADMIN)
    page = admin.get("/admin/users")
    assert page.status_code == 200 and 'id="user-201"' not in page.text and 'id="user-103"' in page.text
    r = post(admin, "/admin/users/103", {"role": "supervisor", "web_password": "a new web password"}, "/admin/users")
    assert r.status_code == 303
    user = User.get(User.number == "103")
    assert (user.role, user.record) == ("supervisor", False)  # the unchecked box switched recording off
    sign_in(world.client(), "103@acme.example", "a new web password")
    bad = post(admin, "/admin/users/103", {"role": "king", "record": "on", "web_password": "short"}, "/admin/users")
    assert bad.status_code == 422
    assert "must be one of user, supervisor, admin" in bad.text and "must be 10 to 200 characters" in bad.text
    assert User.get(User.number == "103").record is False  # nothing half-saved
    me = post(admin, "/admin/users/100", {"role": "user", "record": "on"}, "/admin/users")
    assert me.status_code == 422 and "cannot take away your own admin role" in me.text


def test_admin_change_is_applied_as_the_cli_applies_it(db, tmp_path):
    """auto_apply: the web applies a change to FreeSWITCH on the CLI's path; unreachable: saved, not applied."""
    import dataclasses

    from fsctl.model import AppliedConfig
    from tests.fakes.fake_freeswitch import FakeFreeSWITCH
    from tests.fsctl.web.conftest import build_world

    world = build_world(tmp_path)
    fake = FakeFreeSWITCH().start()
    try:
        world.settings = dataclasses.replace(
            world.settings, auto_apply=True, esl_host=fake.host, esl_port=fake.port, esl_timeout=0.5
        )
        admin = world.client(ADMIN)
        assert (
            post(admin, "/admin/users/103", {"role": "supervisor", "record": "on"}, "/admin/users").status_code == 303
        )
        assert "api reloadxml" in fake.received
        assert (
            AppliedConfig.get(AppliedConfig.domain == "acme.example").revision
            == Tenant.get(Tenant.domain == "acme.example").revision
        )
        world.settings = dataclasses.replace(world.settings, esl_port=free_port())
        admin = world.client(ADMIN)
        r = post(admin, "/admin/users/103", {"role": "user"}, "/admin/users")
        assert r.status_code == 303 and User.get(User.number == "103").record is False  # saved
        assert "saved, not applied" in admin.get("/admin/users").text
    finally:
        fake.stop()


def test_recording_groups_page_changes_what_a_supervisor_sees(world):
    admin, supervisor = world.client(ADMIN), world.client(SUPERVISOR)
    r103 = world.recs[("acme.example", "103")][0].id
    assert supervisor.get(f"/recordings/{r103}").status_code == 404
    assert (
        post(
            admin, "/admin/recgroups", {"name": "ops", "members": "103", "supervisors": "104"}, "/admin/recgroups"
        ).status_code
        == 303
    )
    assert supervisor.get(f"/recordings/{r103}").status_code == 200
    bad = post(admin, "/admin/recgroups/ops", {"members": "103 999", "supervisors": "888"}, "/admin/recgroups")
    assert bad.status_code == 422
    assert "user 999 does not exist in acme.example" in bad.text and "user 888 does not exist" in bad.text
    assert post(admin, "/admin/recgroups/ops", {"remove": "on"}, "/admin/recgroups").status_code == 303
    assert supervisor.get(f"/recordings/{r103}").status_code == 404
    dup = post(admin, "/admin/recgroups", {"name": "sales"}, "/admin/recgroups")
    assert dup.status_code == 422 and "already exists" in dup.text


def test_admin_statistics_report(world):
    admin = world.client(ADMIN)
    page = admin.get("/admin/stats?from=2026-11-01&to=2026-11-30")
    assert page.status_code == 200
    for title in ("Calls per day", "Calls by hour of the day", "Answered and missed calls per user"):
        assert title in page.text
    totals = re.search(r'id="totals">.*?</tr>\s*<tr>(.*?)</tr>', page.text, re.S)[1]
    assert re.findall(r"<td>([^<]+)</td>", totals)[:3] == ["3", "1", "2"]
    report = admin.get("/admin/stats?from=2026-11-01&to=2026-11-30&format=html")
    assert report.headers["content-disposition"].startswith("attachment") and "<svg" in report.text
    assert "beta.example" not in report.text
