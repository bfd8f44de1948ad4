"""The recording API (/api/v1): search, get, mark, download recordings; calls and statistics, read-only.

Authenticated by a tenant's API token (`Authorization: Bearer fsctl_...`, `fsctl token add`)
or by the browser's session (marking then needs the X-CSRF-Token header). Errors are
{"error": {"field", "value", "rule"}} with 400, 401, 403, 404, 409, 422 or 429.
"""

import datetime as _dt
import os
import zoneinfo

from starlette.responses import FileResponse, JSONResponse

from .. import validate
from ..errors import NotFoundError, ValidationError
from ..services import recordings, stats
from ..services.common import get_tenant
from .forms import FILTER_PARAMS, search_filters
from .handling import BadRequestError, handler, route
from .openapi import document

MAX_PAGE = 500


def _int_param(ctx, name, default, low, high):
    value = ctx.query.get(name)
    if value is None or value == "":
        return default
    return validate.integer(value, name, low=low, high=high)


def _unknown_params(ctx, known):
    for name in ctx.query:
        if name not in known:
            raise BadRequestError(name, ctx.query.get(name), "is not a parameter of this call")


async def openapi(request):
    """The OpenAPI document of this API (public: it holds no data)."""
    return JSONResponse(document(request.app.state.web.settings.web_base_url))


@handler("api")
def search(ctx):
    """Search recordings, newest first."""
    _unknown_params(ctx, set(FILTER_PARAMS) | {"limit", "offset"})
    filters, errors, _given = search_filters(ctx.query)
    if errors:
        name = sorted(errors)[0]
        # the service's own check again, for its field/value/rule (one rule, one place)
        recordings.make_filters(**{FILTER_PARAMS[name]: ctx.query.get(name)})
    limit = _int_param(ctx, "limit", 50, 1, MAX_PAGE)
    offset = _int_param(ctx, "offset", 0, 0, 10**9)
    rows = recordings.search(filters, ctx.who.viewer, limit=limit, offset=offset)
    return JSONResponse({"recordings": [_public(r) for r in rows], "limit": limit, "offset": offset})


def _public(row):
    data = recordings.recording_dict(row)
    del data["node"]  # where the operator keeps the file: not the customer's business
    data["audio_url"] = f"/api/v1/recordings/{row.id}/audio"
    return data


def _with_etag(row):
    """A recording as JSON, its mark's version as the ETag (what If-Match gives back)."""
    data = _public(row)
    return JSONResponse(data, headers={"etag": f'"{data["mark_version"]}"'})


@handler("api")
def get_one(ctx):
    """One recording (ETag: its mark's version)."""
    return _with_etag(recordings.get_recording(ctx.request.path_params["rid"], ctx.who.viewer))


def _if_version(ctx):
    """The mark version the client saved on: If-Match ("v", W/"v"; * is any) or the body's `version`."""
    header = ctx.request.headers.get("if-match")
    given = ctx.body.get("version")
    if given is not None and (not isinstance(given, str) or not given):
        raise BadRequestError("version", given, "must be the mark_version read with the recording")
    if header is not None:
        tags = [t.strip().removeprefix("W/").strip('"') for t in header.split(",") if t.strip()]
        if tags == ["*"]:
            tags = []
        if len(tags) > 1:
            raise BadRequestError("If-Match", header, "must be one mark_version")
        if tags and given is not None and tags[0] != given:
            raise BadRequestError("version", given, f"differs from If-Match {header}")
        given = tags[0] if tags else given
    return given


@handler("api", scope="mark")
def mark(ctx):
    """Mark a recording: any of note, colour, field1, field2, field3 (others unchanged).

    With `If-Match: "<mark_version>"` (or `"version"` in the body) the mark is saved only if it is
    still that version; otherwise 409 with the current recording under `current`.
    """
    body = ctx.body
    for key in body:
        if key not in recordings.MARK_COLUMNS and key != "version":
            raise BadRequestError(key, body[key], "is not a mark: note, colour, field1, field2, field3")
    for key, value in body.items():
        if key != "version" and value is not None and not isinstance(value, str):
            raise ValidationError(f"recording.{key}", value, "must be text")
    try:
        row = recordings.mark(
            ctx.request.path_params["rid"],
            ctx.who.viewer,
            note=body.get("note"),
            colour=body.get("colour"),
            fields={k: body[k] for k in recordings.FIELD_NAMES if k in body},
            actor=ctx.who.actor,
            via="api",
            now=ctx.web.now(),
            if_version=_if_version(ctx),
        )
    except recordings.MarkConflictError as exc:
        current = _public(exc.row)
        return JSONResponse(
            {"error": {"field": exc.field, "value": exc.value, "rule": exc.rule}, "current": current},
            status_code=409,
            headers={"etag": f'"{current["mark_version"]}"'},
        )
    return _with_etag(row)


@handler("api")
def audio(ctx):
    """The recording's file (HTTP Range; bytes = the catalogue's SHA-256)."""
    row = recordings.get_recording(ctx.request.path_params["rid"], ctx.who.viewer)
    path = recordings.resolve(ctx.web.settings.recordings_dir, row.path)
    if not os.path.isfile(path):
        raise NotFoundError("recording file", row.path)
    return FileResponse(
        path,
        media_type="audio/wav",
        filename=os.path.basename(row.path),
        headers={"cache-control": "private, no-store", "x-content-sha256": row.sha256},
    )


@handler("api", admin=True)
def audit(ctx):
    """Who marked what, newest first (a token, or a signed-in admin)."""
    _unknown_params(ctx, {"recording", "limit", "offset"})
    rows = recordings.mark_audit(
        ctx.who.viewer,
        ctx.query.get("recording") or None,
        _int_param(ctx, "limit", 100, 1, MAX_PAGE),
        _int_param(ctx, "offset", 0, 0, 10**9),
    )
    return JSONResponse({"audit": [recordings.audit_dict(r) for r in rows]})


def _period(ctx, tenant):
    tz = zoneinfo.ZoneInfo(tenant.timezone or "UTC")
    today = ctx.web.now().replace(tzinfo=_dt.timezone.utc).astimezone(tz).date()
    return stats.period(tenant, ctx.query.get("from") or None, ctx.query.get("to") or None, today=today)


def _visible_numbers(ctx):
    viewer = recordings.viewer(ctx.who.viewer)
    return None if viewer.numbers is None else set(viewer.numbers)


@handler("api")
def calls(ctx):
    """The call log, newest first (missed first on request): a user's own, a supervisor's groups', a token's all."""
    _unknown_params(ctx, {"from", "to", "user", "status", "missed_first", "limit", "offset"})
    tenant = get_tenant(ctx.who.domain)
    start, end = _period(ctx, tenant)
    numbers = _visible_numbers(ctx)
    user = ctx.query.get("user")
    if user:
        user = validate.extension(user, "user")
        numbers = {user} if numbers is None or user in numbers else set()
    missed_first = validate.choice(ctx.query.get("missed_first", "false"), "missed_first", ("true", "false"))
    rows = stats.call_log(
        tenant,
        start,
        end,
        users=numbers,
        missed_first=missed_first == "true",
        status=ctx.query.get("status") or None,
        limit=_int_param(ctx, "limit", 50, 1, MAX_PAGE),
        offset=_int_param(ctx, "offset", 0, 0, 10**9),
    )
    return JSONResponse({"calls": rows, "from": stats.iso_utc(start), "to": stats.iso_utc(end)})


@handler("api")
def statistics(ctx):
    """A statistics report (users, groups, queues, dids, hourly, daily): the tenant's for a token or an admin;
    a user or supervisor gets the users report of the users they see."""
    _unknown_params(ctx, {"from", "to"})
    name = validate.choice(ctx.request.path_params["report"], "report", stats.REPORTS)
    tenant = get_tenant(ctx.who.domain)
    start, end = _period(ctx, tenant)
    numbers = _visible_numbers(ctx)
    if numbers is not None and name != "users":
        from .identity import ForbiddenError

        raise ForbiddenError(
            f"the {name} report is the admin's: a user sees the users report of their own calls", value=ctx.who.role
        )
    _columns, rows = stats.report_rows(name, tenant, start, end)
    # Bounded (users, groups, queues, numbers, 24 hours, the days of the period): read inside the transaction.
    rows = [r for r in rows if numbers is None or r["user"] in numbers]
    return JSONResponse({"report": name, "from": stats.iso_utc(start), "to": stats.iso_utc(end), "rows": rows})


ROUTES = [
    route("/api/v1/openapi.json", openapi),
    route("/api/v1/recordings", search),
    route("/api/v1/recordings/{rid:int}", get_one),
    route("/api/v1/recordings/{rid:int}/mark", mark, ["POST"]),
    route("/api/v1/recordings/{rid:int}/audio", audio),
    route("/api/v1/audit", audit),
    route("/api/v1/calls", calls),
    route("/api/v1/stats/{report}", statistics),
]
