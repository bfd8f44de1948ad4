"""Request handling: the per-request wrapper (auth, CSRF, one transaction, auto_apply, errors) and helpers."""

import dataclasses
import hmac
import json
import logging
import re
import secrets
from pathlib import Path
from urllib.parse import quote

from starlette.concurrency import run_in_threadpool
from starlette.responses import HTMLResponse, JSONResponse, RedirectResponse, Response
from starlette.routing import Route

from ..db import database
from ..errors import ConflictError, FsctlError, NotFoundError, ValidationError
from ..model import utcnow
from ..services import activation, tokens, webauth
from .identity import ForbiddenError, Identity, RateLimiter, UnauthenticatedError

log = logging.getLogger("fsctl.web")
HERE = Path(__file__).resolve().parent
SESSION_COOKIE = "__Host-fsctl_session"
PLAIN_SESSION_COOKIE = "fsctl_session"
PRE_COOKIE = "fsctl_pre"  # double-submit CSRF token of the forms shown before sign-in
FLASH_COOKIE = "fsctl_flash"
SECURITY_HEADERS = {
    "content-security-policy": "default-src 'self'; img-src 'self' data:; media-src 'self'; "
    "style-src 'self' 'unsafe-inline'; frame-ancestors 'none'; form-action 'self'",
    "x-frame-options": "DENY",
    "x-content-type-options": "nosniff",
    "referrer-policy": "no-referrer",
}
_MESSAGE_RE = re.compile(r'^(\S+) "((?:[^"\\]|\\.)*)": (.+)$', re.S)


class BadRequestError(Exception):
    """A request the API cannot read (HTTP 400): bad JSON, an unknown field."""

    def __init__(self, field, value, rule):
        super().__init__(rule)
        self.field, self.value, self.rule = field, value, rule


class Web:
    """What every request shares: settings, the clock, templates, the API's rate limiter."""

    def __init__(self, settings, clock=None, mailer=None, rate_timer=None):
        import jinja2

        self.settings = settings
        self._clock = clock
        self.mailer = mailer  # callable(EmailMessage); default: SMTP from the settings
        self.limiter = (
            RateLimiter(settings.web_api_rate_per_minute, rate_timer)
            if rate_timer
            else RateLimiter(settings.web_api_rate_per_minute)
        )
        self.env = jinja2.Environment(
            loader=jinja2.FileSystemLoader(str(HERE / "templates")),
            autoescape=True,
            trim_blocks=True,
            lstrip_blocks=True,
        )

    def now(self):
        return self._clock() if self._clock else utcnow()

    @property
    def session_cookie(self):
        return SESSION_COOKIE if self.settings.web_secure_cookies else PLAIN_SESSION_COOKIE

    def send_mail(self, message):
        if self.mailer is not None:
            return self.mailer(message)
        from ..services.notify import Transport

        return Transport.from_settings(self.settings).send_email(message)


@dataclasses.dataclass
class Ctx:
    """One request as a handler sees it."""

    request: object
    web: Web
    who: Identity | None
    form: dict
    body: object
    pre_token: str = ""
    flash: str = ""
    changed: bool = False  # the handler changed a tenant's configuration: auto_apply may apply it
    cookies: list = dataclasses.field(default_factory=list)  # (name, value, max_age) to set

    @property
    def query(self):
        return self.request.query_params

    def render(self, template, status=200, **values):
        """A page: the template with the caller, CSRF token and flash message."""
        tpl = self.web.env.get_template(template)
        csrf = self.who.session.csrf_token if self.who and self.who.session else self.pre_token
        html = tpl.render(who=self.who, csrf=csrf, flash=self.flash, path=self.request.url.path, **values)
        return HTMLResponse(html, status_code=status)


def _error_body(field, value, rule):
    return {"error": {"field": field, "value": None if value is None else str(value), "rule": rule}}


def error_parts(exc):
    """(field, value, rule) of a domain error."""
    if isinstance(exc, ValidationError):
        return exc.field, exc.value, exc.rule
    if isinstance(exc, NotFoundError):
        return exc.kind, exc.key, "does not exist"
    if isinstance(exc, (ForbiddenError, BadRequestError)):
        return exc.field, exc.value, exc.rule
    match = _MESSAGE_RE.match(str(exc))
    if match:
        return match[1], match[2].replace('\\"', '"'), match[3]
    return None, None, str(exc)


STATUS = (
    (BadRequestError, 400),
    (UnauthenticatedError, 401),
    (webauth.SignInError, 401),
    (ForbiddenError, 403),
    (NotFoundError, 404),
    (ConflictError, 409),
    (ValidationError, 422),
    (webauth.ThrottledError, 429),
)


def status_of(exc):
    for kind, status in STATUS:
        if isinstance(exc, kind):
            return status
    return 500


def handler(kind, public=False, admin=False, scope="read"):
    """Wrap a handler fn(ctx) -> Response: read the body, authenticate, check CSRF, run it in one
    transaction in a worker thread, apply a configuration change (auto_apply), map errors."""

    def wrap(fn):
        async def endpoint(request):
            web = request.app.state.web
            form, body = {}, None
            if request.method in ("POST", "PATCH", "PUT", "DELETE"):
                if kind == "page":
                    raw = await request.form()
                    form = {k: raw.getlist(k)[-1] if len(raw.getlist(k)) == 1 else raw.getlist(k) for k in raw}
                else:
                    data = await request.body()
                    body = data
            return await run_in_threadpool(_run, web, fn, request, kind, public, admin, scope, form, body)

        endpoint.__name__ = fn.__name__
        endpoint.__wrapped__ = fn
        endpoint.__doc__ = fn.__doc__
        return endpoint

    return wrap


def _run(web, fn, request, kind, public, admin, scope, form, body):
    database.connect(reuse_if_open=True)
    try:
        return _run_inner(web, fn, request, kind, public, admin, scope, form, body)
    except Exception:  # noqa: BLE001 - a bug must be a 500 page with no detail, and logged
        log.exception("%s %s failed", request.method, request.url.path)
        if kind == "api":
            return _json_error(500, None, None, "internal error (logged on the server)")
        return HTMLResponse(
            "<h1>Internal error</h1><p>It is logged on the server.</p>", status_code=500, headers=SECURITY_HEADERS
        )


def _json_error(status, field, value, rule, headers=None):
    return JSONResponse(
        _error_body(field, value, rule), status_code=status, headers={**SECURITY_HEADERS, **(headers or {})}
    )


def _run_inner(web, fn, request, kind, public, admin, scope, form, body):
    now = web.now()
    ctx = Ctx(request, web, None, form, None)
    try:
        if kind == "api":
            ctx.who = _api_identity(web, request, now)
            wait = web.limiter.hit(ctx.who.rate_key)
            if wait:
                return _json_error(
                    429,
                    "rate",
                    web.settings.web_api_rate_per_minute,
                    f"at most {web.settings.web_api_rate_per_minute} requests a minute: retry in {wait} s",
                    {"retry-after": str(wait)},
                )
            if request.method != "GET":
                ctx.who.require_scope(scope)
                if ctx.who.kind == "session":
                    _check_csrf(request.headers.get("x-csrf-token", ""), ctx.who.session.csrf_token)
                ctx.body = _json_body(body)
            if admin:
                ctx.who.require_admin()
        else:
            token = request.cookies.get(web.session_cookie)
            info = webauth.session(token, now) if token else None
            if info is not None:
                ctx.who = Identity(
                    "session", info.tenant_id, info.domain, info.login, info.role, "mark", info.number, info
                )
            ctx.pre_token = request.cookies.get(PRE_COOKIE) or secrets.token_urlsafe(24)
            ctx.flash = request.cookies.get(FLASH_COOKIE, "")
            if not public and ctx.who is None:
                target = request.url.path + (f"?{request.url.query}" if request.url.query else "")
                return RedirectResponse(f"/sign-in?next={quote(target, safe='')}", status_code=303)
            if request.method == "POST":
                expected = ctx.who.session.csrf_token if ctx.who else request.cookies.get(PRE_COOKIE, "")
                _check_csrf(form.get("csrf", ""), expected)
            if admin:
                ctx.who.require_admin()
        before = activation.fingerprint() if request.method == "POST" and web.settings.auto_apply else None
        with database.atomic():
            response = fn(ctx)
        if before is not None and ctx.changed:
            try:
                activation.apply_if_changed(web.settings, before)
            except activation.NotAppliedError as exc:
                ctx.cookies.append((FLASH_COOKIE, str(exc), 60))
    except (FsctlError, ForbiddenError, UnauthenticatedError, BadRequestError) as exc:
        status = status_of(exc)
        if status == 500:
            raise
        headers = {"retry-after": str(exc.retry_after)} if isinstance(exc, webauth.ThrottledError) else {}
        if kind == "api":
            if isinstance(exc, UnauthenticatedError):
                headers["www-authenticate"] = "Bearer"
                return _json_error(401, "authorization", None, exc.rule, headers)
            return _json_error(status, *error_parts(exc), headers)
        field, value, rule = error_parts(exc)
        message = rule if field is None else f'{field} "{value}": {rule}'
        response = ctx.render("error.html", status=status, status_code=status, message=message)
        response.headers.update(headers)
    return _finish(ctx, response, kind)


def _finish(ctx, response, kind):
    for name, value in SECURITY_HEADERS.items():
        response.headers.setdefault(name, value)
    if kind == "page":
        response.headers.setdefault("cache-control", "no-store")
        secure = ctx.web.settings.web_secure_cookies
        if ctx.who is None and PRE_COOKIE not in ctx.request.cookies:
            response.set_cookie(PRE_COOKIE, ctx.pre_token, httponly=True, samesite="strict", secure=secure, path="/")
        if ctx.flash and not any(c[0] == FLASH_COOKIE for c in ctx.cookies):
            response.delete_cookie(FLASH_COOKIE, path="/")
        for name, value, max_age in ctx.cookies:
            if value is None:
                response.delete_cookie(name, path="/", secure=secure, httponly=True, samesite="strict")
            else:
                response.set_cookie(
                    name, value, max_age=max_age, httponly=True, samesite="strict", secure=secure, path="/"
                )
    return response


def _check_csrf(given, expected):
    if not expected or not given or not hmac.compare_digest(str(given), str(expected)):
        raise ForbiddenError(
            "the form is stale or did not come from this site: reload the page and try again", field="csrf", value=""
        )


def _api_identity(web, request, now):
    auth = request.headers.get("authorization", "")
    if auth:
        scheme, _, secret = auth.partition(" ")
        if scheme.lower() != "bearer":
            raise UnauthenticatedError("Authorization must be: Bearer <token>")
        row = tokens.authenticate(secret.strip(), now)
        if row is None:
            raise UnauthenticatedError("the token is unknown or revoked")
        return Identity("token", row.tenant_id, row.tenant.domain, f"token:{row.name}", "admin", row.scope)
    cookie = request.cookies.get(web.session_cookie)
    info = webauth.session(cookie, now) if cookie else None
    if info is None:
        raise UnauthenticatedError()
    return Identity("session", info.tenant_id, info.domain, info.login, info.role, "mark", info.number, info)


def _json_body(data):
    if not data:
        return {}
    try:
        value = json.loads(data)
    except (ValueError, UnicodeDecodeError):
        raise BadRequestError("body", None, "must be a JSON object") from None
    if not isinstance(value, dict):
        raise BadRequestError("body", None, "must be a JSON object")
    return value


def route(path, fn, methods=("GET",)):
    """A Starlette Route."""
    return Route(path, fn, methods=list(methods))


def redirect(url, ctx=None, flash=None):
    """A 303 redirect after a form, with an optional flash message for the next page."""
    response = RedirectResponse(url, status_code=303)
    if ctx is not None and flash:
        ctx.cookies.append((FLASH_COOKIE, flash, 60))
    return response


def plain_response(text, status=200, media_type="text/plain"):
    return Response(text, status_code=status, media_type=media_type)
