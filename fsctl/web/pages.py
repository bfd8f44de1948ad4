"""The pages of the web workspace: sign-in, recordings, my calls, my settings, the admin's pages."""

import datetime as _dt
import os
from urllib.parse import urlencode

from starlette.responses import FileResponse, JSONResponse, Response

from .. import validate
from ..errors import NotFoundError, ValidationError
from ..model import User
from ..services import recgroups, recordings, report, stats, users, webauth
from ..services.common import get_tenant
from .forms import field_errors, message, save_fields, search_filters
from .handling import PRE_COOKIE, handler, redirect, route

PAGE_SIZE = 50


# --- sign-in and sign-out --------------------------------------------------------------------------


def _safe_next(value):
    text = str(value or "")
    return text if text.startswith("/") and not text.startswith("//") and "\\" not in text else "/recordings"


def _client(ctx):
    return ctx.request.client.host if ctx.request.client else ""


def _session_cookie(ctx, token):
    ctx.cookies.append((ctx.web.session_cookie, token, webauth.SESSION_HOURS * 3600))
    ctx.cookies.append((PRE_COOKIE, None, 0))


@handler("page", public=True)
def sign_in_page(ctx):
    """The sign-in form (password, or a link by e-mail)."""
    if ctx.who is not None:
        return redirect(_safe_next(ctx.query.get("next")))
    return ctx.render("sign_in.html", next=_safe_next(ctx.query.get("next")), login="", errors={}, sent=False)


@handler("page", public=True)
def sign_in_post(ctx):
    """Check the password and open a session."""
    login = str(ctx.form.get("login", "")).strip()
    target = _safe_next(ctx.form.get("next"))
    try:
        token, _info = webauth.sign_in(login, ctx.form.get("password", ""), _client(ctx), ctx.web.now())
    except (webauth.SignInError, webauth.ThrottledError) as exc:
        status = 429 if isinstance(exc, webauth.ThrottledError) else 401
        return ctx.render(
            "sign_in.html", status=status, next=target, login=login, errors={"password": str(exc)}, sent=False
        )
    _session_cookie(ctx, token)
    return redirect(target)


@handler("page", public=True)
def sign_in_link_request(ctx):
    """Mail a one-time sign-in link (the page says the same whether the account exists or not)."""
    login = str(ctx.form.get("login", "")).strip()
    try:
        made = webauth.create_sign_in_link(login, _client(ctx), ctx.web.now())
    except webauth.ThrottledError as exc:
        return ctx.render(
            "sign_in.html", status=429, next="/recordings", login=login, errors={"login": str(exc)}, sent=False
        )
    if made is not None:
        token, user = made
        url = ctx.web.settings.web_base_url.rstrip("/") + "/sign-in/link/" + token
        try:
            ctx.web.send_mail(webauth.sign_in_email(user, url, ctx.web.settings.smtp_from))
        except Exception as exc:  # noqa: BLE001 - the mail server's failure is shown, not a 500
            return ctx.render(
                "sign_in.html",
                status=503,
                next="/recordings",
                login=login,
                errors={
                    "login": f"the e-mail could not be sent ({exc.__class__.__name__}): "
                    "try again later or ask your admin"
                },
                sent=False,
            )
    return ctx.render("sign_in.html", next="/recordings", login=login, errors={}, sent=True)


@handler("page", public=True)
def sign_in_link_page(ctx):
    """A mailed link: a button that signs in (a mail scanner following the link signs nobody in)."""
    return ctx.render("sign_in_link.html", token=ctx.request.path_params["token"])


@handler("page", public=True)
def sign_in_link_post(ctx):
    """Use a one-time link."""
    try:
        token, _info = webauth.use_sign_in_link(ctx.request.path_params["token"], ctx.web.now())
    except webauth.SignInError as exc:
        return ctx.render(
            "sign_in.html", status=401, next="/recordings", login="", errors={"login": str(exc)}, sent=False
        )
    _session_cookie(ctx, token)
    return redirect("/recordings")


@handler("page", public=True)
def sign_out(ctx):
    """End the session."""
    webauth.sign_out(ctx.request.cookies.get(ctx.web.session_cookie))
    ctx.cookies.append((ctx.web.session_cookie, None, 0))
    return redirect("/sign-in")


@handler("page")
def home(ctx):
    return redirect("/recordings")


# --- recordings --------------------------------------------------------------------------------------


def _page_number(ctx):
    try:
        return max(1, min(int(ctx.query.get("page", "1")), 10**6))
    except ValueError:
        return 1


@handler("page")
def recordings_page(ctx):
    """Search the recordings the user may see, 50 a page, newest first."""
    filters, errors, given = search_filters(ctx.query)
    page = _page_number(ctx)
    rows, more = [], False
    if not errors:
        found = recordings.search(filters, ctx.who.viewer, limit=PAGE_SIZE + 1, offset=(page - 1) * PAGE_SIZE)
        rows, more = found[:PAGE_SIZE], len(found) > PAGE_SIZE
    status = 422 if errors else 200
    query = urlencode(given)
    return ctx.render(
        "recordings.html",
        status=status,
        rows=[recordings.recording_dict(r) for r in rows],
        errors=errors,
        given=given,
        page=page,
        more=more,
        query=query,
        colours=recordings.COLOURS,
        newest=rows[0].id if rows and page == 1 else 0,
    )


@handler("page")
def recordings_newest(ctx):
    """The id of the newest recording matching the search (the list's refresh asks every 20 s)."""
    filters, errors, _given = search_filters(ctx.query)
    if errors:
        return JSONResponse({"newest": 0})
    found = recordings.search(filters, ctx.who.viewer, limit=1)
    return JSONResponse({"newest": found[0].id if found else 0})


def _mark_form(row, form=None):
    values = recordings.recording_dict(row)
    if form:
        values.update({k: form.get(k, values[k]) for k in recordings.MARK_COLUMNS})
    return values


@handler("page")
def recording_page(ctx, errors=None, form=None, status=200):
    """One recording: play, download, mark (and, for the admin, who marked it)."""
    row = recordings.get_recording(ctx.request.path_params["rid"], ctx.who.viewer)
    audit = []
    if ctx.who.role == "admin":
        audit = [recordings.audit_dict(a) for a in recordings.mark_audit(ctx.who.viewer, row.id, limit=20)]
    return ctx.render(
        "recording.html",
        status=status,
        rec=recordings.recording_dict(row),
        form=_mark_form(row, form),
        errors=errors or {},
        colours=recordings.COLOURS,
        field_max=recordings.FIELD_MAX,
        note_max=recordings.NOTE_MAX,
        audit=audit,
    )


@handler("page")
def recording_mark(ctx):
    """Mark a recording: note, colour, field1..3 (each checked as the CLI checks it)."""
    rid = ctx.request.path_params["rid"]
    row = recordings.get_recording(rid, ctx.who.viewer)
    given = {k: str(ctx.form.get(k, "")) for k in recordings.MARK_COLUMNS if k in ctx.form}
    checks = []
    for key, value in given.items():
        if key in recordings.FIELD_NAMES:
            checks.append((key, lambda k=key, v=value: recordings.check_mark(fields={k: v})))
        else:
            checks.append((key, lambda k=key, v=value: recordings.check_mark(**{k: v})))
    _values, errors = field_errors(checks)
    if errors:
        return recording_page.__wrapped__(ctx, errors=errors, form=given, status=422)
    try:  # saved on the version the page showed: another tab or user saving meanwhile is not overwritten
        recordings.mark(
            row.id,
            ctx.who.viewer,
            note=given.get("note"),
            colour=given.get("colour"),
            fields={k: given[k] for k in recordings.FIELD_NAMES if k in given},
            actor=ctx.who.actor,
            via="web",
            now=ctx.web.now(),
            if_version=str(ctx.form.get("version", "")) or None,
        )
    except recordings.MarkConflictError:
        return recording_page.__wrapped__(
            ctx,
            status=409,
            errors={
                "version": "Someone saved other marks meanwhile: yours are not saved. The current marks are shown; "
                "change them and save again."
            },
        )
    return redirect(f"/recordings/{row.id}", ctx, "marks saved")


def _file(ctx, attachment):
    row = recordings.get_recording(ctx.request.path_params["rid"], ctx.who.viewer)
    path = recordings.resolve(ctx.web.settings.recordings_dir, row.path)
    if not os.path.isfile(path):
        raise NotFoundError("recording file", row.path)
    name = os.path.basename(row.path)
    return FileResponse(
        path,
        media_type="audio/wav",
        filename=name,
        content_disposition_type="attachment" if attachment else "inline",
        headers={"cache-control": "private, no-store", "x-content-sha256": row.sha256},
    )


@handler("page")
def recording_audio(ctx):
    """The recording's audio for the player (HTTP Range)."""
    return _file(ctx, attachment=False)


@handler("page")
def recording_download(ctx):
    """The recording's file as a download (the catalogue's bytes)."""
    return _file(ctx, attachment=True)


# --- my calls --------------------------------------------------------------------------------------


def _period(ctx, tenant):
    today = ctx.web.now().replace(tzinfo=_dt.timezone.utc)
    import zoneinfo

    local_today = today.astimezone(zoneinfo.ZoneInfo(tenant.timezone or "UTC")).date()
    start, end = (str(ctx.query.get(k) or "").strip() or None for k in ("from", "to"))
    return stats.period(tenant, start, end, today=local_today), {"from": start or "", "to": end or ""}


@handler("page")
def calls_page(ctx):
    """My calls: the call log with missed calls first, my statistics and my chart."""
    tenant = get_tenant(ctx.who.domain)
    errors = {}
    try:
        (start, end), given = _period(ctx, tenant)
    except ValidationError as exc:
        errors["from" if exc.field == "--from" else "to"] = message(exc)
        (start, end), given = stats.period(tenant, None, None, today=ctx.web.now().date()), dict(ctx.query)
    viewer = recordings.viewer(ctx.who.viewer)
    who_filter = str(ctx.query.get("user") or "").strip()
    numbers = None if viewer.numbers is None else set(viewer.numbers)
    if who_filter:
        try:
            who_filter = validate.extension(who_filter, "user")
        except ValidationError as exc:
            errors["user"] = message(exc)
            who_filter = ""
        else:
            numbers = {who_filter} if numbers is None or who_filter in numbers else set()
    page = _page_number(ctx)
    calls = stats.call_log(
        tenant, start, end, users=numbers, missed_first=True, limit=PAGE_SIZE + 1, offset=(page - 1) * PAGE_SIZE
    )
    mine = next((u for u in stats.user_stats(tenant, start, end) if u["user"] == ctx.who.number), None)
    daily = stats.user_daily(tenant, start, end, ctx.who.number)
    chart = report.bar_chart_svg(
        f"My calls per day ({ctx.who.number})",
        [d["date"][5:] for d in daily],
        [
            ("answered", [d["answered"] for d in daily], report.COLOURS["answered"]),
            ("missed", [d["missed"] for d in daily], report.COLOURS["missed"]),
            ("placed", [d["placed"] for d in daily], report.COLOURS["talk"]),
        ],
    )
    query = urlencode({k: v for k, v in {**given, "user": who_filter}.items() if v})
    return ctx.render(
        "calls.html",
        status=422 if errors else 200,
        calls=calls[:PAGE_SIZE],
        more=len(calls) > PAGE_SIZE,
        page=page,
        mine=mine,
        chart=_markup(chart),
        given=given,
        errors=errors,
        user_filter=who_filter,
        query=query,
        start=start,
        end=end,
        everyone=viewer.numbers is None,
        timezone=tenant.timezone,
    )


def _markup(svg):
    from markupsafe import Markup

    return Markup(svg)  # built by fsctl.report.bar_chart_svg, which escapes every text it draws


# --- my settings -------------------------------------------------------------------------------------


@handler("page")
def settings_page(ctx, errors=None, form=None, status=200):
    """Self-service: forwarding, voicemail PIN, the SIP settings for a phone."""
    user = users.get_user(ctx.who.domain, ctx.who.number)
    data = users.user_dict(user)
    forward = {opt: data["forward"].get(opt, "") for opt in users.FORWARD_OPTIONS}
    if form:
        forward.update({opt: form.get(f"fwd_{opt}", "") for opt in users.FORWARD_OPTIONS})
    sip = users.sip_config(ctx.who.domain, ctx.who.number, ctx.web.settings.web_sip_server)
    return ctx.render(
        "settings.html",
        status=status,
        user=data,
        forward=forward,
        sip=sip,
        errors=errors or {},
        options=tuple(users.FORWARD_OPTIONS),
    )


@handler("page")
def settings_forwarding(ctx):
    """Save the forwarding rules (each checked on its own; R-SEQ applies; all or nothing)."""
    current = users.user_dict(users.get_user(ctx.who.domain, ctx.who.number))["forward"]
    steps = []
    for opt in users.FORWARD_OPTIONS:
        value = str(ctx.form.get(f"fwd_{opt}", "")).strip()
        if value and value != current.get(opt):
            steps.append(
                (f"fwd_{opt}", lambda o=opt, v=value: users.edit_user(ctx.who.domain, ctx.who.number, forward={o: v}))
            )
        elif not value and current.get(opt):
            steps.append((f"fwd_{opt}", lambda o=opt: users.edit_user(ctx.who.domain, ctx.who.number, unforward=[o])))
    errors = save_fields(steps)
    if errors:
        return settings_page.__wrapped__(ctx, errors=errors, form=ctx.form, status=422)
    ctx.changed = bool(steps)
    return redirect("/settings", ctx, "forwarding saved" if steps else "nothing changed")


@handler("page")
def settings_pin(ctx):
    """Change the voicemail PIN."""
    errors = save_fields(
        [("vm_pin", lambda: users.edit_user(ctx.who.domain, ctx.who.number, vm_pin=str(ctx.form.get("vm_pin", ""))))]
    )
    if errors:
        return settings_page.__wrapped__(ctx, errors=errors, status=422)
    ctx.changed = True
    return redirect("/settings", ctx, "voicemail PIN changed")


@handler("page")
def settings_password(ctx):
    """Change my own web password (the current one first)."""
    errors = {}
    try:
        webauth.sign_in(ctx.who.actor, ctx.form.get("current", ""), None, ctx.web.now())
    except (webauth.SignInError, webauth.ThrottledError) as exc:
        errors["current"] = str(exc)
    new = ctx.form.get("new", "")
    if not errors:
        errors = save_fields(
            [("new", lambda: webauth.set_web_password(ctx.who.domain, ctx.who.number, new, ctx.web.now()))]
        )
    if errors:
        return settings_page.__wrapped__(ctx, errors=errors, status=422)
    token, _info = webauth.open_session(User.get_by_id(ctx.who.session.user_id), ctx.web.now())
    _session_cookie(ctx, token)  # setting the password ended every session: this one goes on
    return redirect("/settings", ctx, "web password changed")


# --- the admin's pages -------------------------------------------------------------------------------


@handler("page", admin=True)
def admin_users(ctx, errors=None, status=200, failed=None):
    """The tenant's users: recording on/off, role, web password."""
    rows = []
    from ..model import WebCredential

    with_password = {
        u
        for (u,) in WebCredential.select(WebCredential.user).join(User).where(User.tenant == ctx.who.tenant_id).tuples()
    }
    for user in users.list_users(ctx.who.domain):
        rows.append({**users.user_dict(user), "web_password": user.id in with_password})
    return ctx.render(
        "admin_users.html", status=status, users=rows, roles=users.ROLES, errors=errors or {}, failed=failed
    )


@handler("page", admin=True)
def admin_user_save(ctx):
    """Save one user's row: role, recording, web password."""
    number = ctx.request.path_params["number"]
    user = users.get_user(ctx.who.domain, number)
    role = str(ctx.form.get("role", user.role))
    record = ctx.form.get("record") == "on"
    steps = []
    if role != user.role:
        steps.append(("role", lambda: users.edit_user(ctx.who.domain, number, role=role)))
    if record != user.record:
        steps.append(("record", lambda: users.edit_user(ctx.who.domain, number, record=record)))
    password = str(ctx.form.get("web_password", ""))
    if password:
        steps.append(
            ("web_password", lambda: webauth.set_web_password(ctx.who.domain, number, password, ctx.web.now()))
        )
    if ctx.form.get("clear_password") == "on" and not password:
        steps.append(("web_password", lambda: webauth.clear_web_password(ctx.who.domain, number)))
    if number == ctx.who.number and role != "admin":
        steps.insert(
            0, ("role", lambda: _refuse(ValidationError("user.role", role, "you cannot take away your own admin role")))
        )
    errors = save_fields(steps)
    if errors:
        return admin_users.__wrapped__(ctx, errors=errors, status=422, failed=number)
    ctx.changed = any(name in ("role", "record") for name, _ in steps)
    return redirect("/admin/users", ctx, f"user {number} saved" if steps else "nothing changed")


def _refuse(exc):
    raise exc


def _numbers(text):
    return [n for n in str(text or "").replace(",", " ").split() if n]


@handler("page", admin=True)
def admin_recgroups(ctx, errors=None, status=200, failed=None, form=None):
    """Recording groups and their supervisors."""
    groups = [recgroups.recgroup_dict(g) for g in recgroups.list_recgroups(ctx.who.domain)]
    return ctx.render(
        "admin_recgroups.html", status=status, groups=groups, errors=errors or {}, failed=failed, form=form or {}
    )


@handler("page", admin=True)
def admin_recgroup_add(ctx):
    """Add a recording group."""
    name = str(ctx.form.get("name", "")).strip()
    errors = save_fields(
        [
            (
                "name",
                lambda: recgroups.add_recgroup(
                    ctx.who.domain, name, _numbers(ctx.form.get("members")), _numbers(ctx.form.get("supervisors"))
                ),
            )
        ]
    )
    if errors:
        return admin_recgroups.__wrapped__(ctx, errors=errors, status=422, failed="", form=ctx.form)
    return redirect("/admin/recgroups", ctx, f"recording group {name} added")


@handler("page", admin=True)
def admin_recgroup_save(ctx):
    """Replace a group's members and supervisors (or remove the group)."""
    name = ctx.request.path_params["name"]
    recgroups.get_recgroup(ctx.who.domain, name)
    if ctx.form.get("remove") == "on":
        recgroups.remove_recgroup(ctx.who.domain, name)
        return redirect("/admin/recgroups", ctx, f"recording group {name} removed")
    errors = save_fields(
        [
            (
                "members",
                lambda: recgroups.edit_recgroup(ctx.who.domain, name, members=_numbers(ctx.form.get("members"))),
            ),
            (
                "supervisors",
                lambda: recgroups.edit_recgroup(
                    ctx.who.domain, name, supervisors=_numbers(ctx.form.get("supervisors"))
                ),
            ),
        ]
    )
    if errors:
        return admin_recgroups.__wrapped__(ctx, errors=errors, status=422, failed=name)
    return redirect("/admin/recgroups", ctx, f"recording group {name} saved")


@handler("page", admin=True)
def admin_stats(ctx):
    """The tenant's statistics report (the charts of `fsctl stats report`)."""
    tenant = get_tenant(ctx.who.domain)
    try:
        (start, end), given = _period(ctx, tenant)
    except ValidationError as exc:
        field = "from" if exc.field == "--from" else "to"
        return ctx.render("error.html", status=422, status_code=422, message=f"{field}: {message(exc)}")
    context = report.build_report_context(tenant, start, end)
    if ctx.query.get("format") == "html":
        return Response(
            report.render_report(context),
            media_type="text/html; charset=utf-8",
            headers={"content-disposition": f'attachment; filename="report-{tenant.domain}.html"'},
        )
    charts = {k: _markup(v) for k, v in report.charts(context).items()}
    return ctx.render(
        "admin_stats.html",
        report=context,
        charts=charts,
        given=given,
        user_columns=stats.USER_COLUMNS,
        keyed_columns=stats.KEYED_COLUMNS,
        query=urlencode({k: v for k, v in given.items() if v}),
    )


@handler("page", admin=True)
def admin_audit(ctx):
    """Who marked which recording, when and how (cli, web, api)."""
    page = _page_number(ctx)
    rows = recordings.mark_audit(ctx.who.viewer, limit=PAGE_SIZE + 1, offset=(page - 1) * PAGE_SIZE)
    return ctx.render(
        "admin_audit.html",
        rows=[recordings.audit_dict(r) for r in rows[:PAGE_SIZE]],
        page=page,
        more=len(rows) > PAGE_SIZE,
    )


ROUTES = [
    route("/", home),
    route("/sign-in", sign_in_page),
    route("/sign-in", sign_in_post, ["POST"]),
    route("/sign-in/link", sign_in_link_request, ["POST"]),
    route("/sign-in/link/{token}", sign_in_link_page),
    route("/sign-in/link/{token}", sign_in_link_post, ["POST"]),
    route("/sign-out", sign_out, ["POST"]),
    route("/recordings", recordings_page),
    route("/recordings/newest", recordings_newest),
    route("/recordings/{rid:int}", recording_page),
    route("/recordings/{rid:int}/mark", recording_mark, ["POST"]),
    route("/recordings/{rid:int}/audio", recording_audio),
    route("/recordings/{rid:int}/download", recording_download),
    route("/calls", calls_page),
    route("/settings", settings_page),
    route("/settings/forwarding", settings_forwarding, ["POST"]),
    route("/settings/vm-pin", settings_pin, ["POST"]),
    route("/settings/password", settings_password, ["POST"]),
    route("/admin/users", admin_users),
    route("/admin/users/{number}", admin_user_save, ["POST"]),
    route("/admin/recgroups", admin_recgroups),
    route("/admin/recgroups", admin_recgroup_add, ["POST"]),
    route("/admin/recgroups/{name}", admin_recgroup_save, ["POST"]),
    route("/admin/stats", admin_stats),
    route("/admin/audit", admin_audit),
]
