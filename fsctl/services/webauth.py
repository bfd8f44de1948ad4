"""Sign-in to the web workspace (fsctl-web): web passwords, sessions, one-time links, throttling.

A tenant user signs in as USER@DOMAIN with the web password their admin set (argon2id hash),
or with a one-time link mailed to their address. A session is a random token: the browser
keeps it in a cookie, the database only its SHA-256 (a stolen database opens no session).
Every function takes `now` (naive UTC) so that no rule depends on the machine's clock.
"""

import dataclasses
import datetime as _dt
import hashlib
import secrets

from .. import validate
from ..errors import FsctlError, NotFoundError, ValidationError
from ..model import SignInLink, SignInThrottle, Tenant, User, WebCredential, WebSession, utcnow
from .common import get_tenant

PASSWORD_MIN = 10
PASSWORD_MAX = 200
SESSION_HOURS = 12
LINK_MINUTES = 15
# Throttling: this many failed sign-ins per account (or per client address) in a window lock
# it until the window ends. A success clears the account's count.
MAX_FAILURES = 5
MAX_FAILURES_PER_CLIENT = 30
WINDOW_MINUTES = 15


class SignInError(FsctlError):
    """Wrong account or password, or an unusable link (one message: nothing tells which)."""

    exit_code = 2


class ThrottledError(FsctlError):
    """Too many failed sign-ins: refused until `retry_after` seconds have passed."""

    exit_code = 2

    def __init__(self, retry_after):
        self.retry_after = retry_after
        super().__init__(f"too many failed sign-ins: try again in {max(1, retry_after // 60)} minutes")


@dataclasses.dataclass(frozen=True)
class SessionInfo:
    """A signed-in user: who they are and the session's CSRF token."""

    session_id: int
    user_id: int
    tenant_id: int
    domain: str
    number: str
    name: str
    role: str
    csrf_token: str

    @property
    def login(self):
        return f"{self.number}@{self.domain}"


def _hasher():
    from argon2 import PasswordHasher

    return PasswordHasher()


def digest(token):
    """SHA-256 hex of a random token (what the tables keep)."""
    return hashlib.sha256(token.encode("utf-8")).hexdigest()


def parse_login(login, field="login"):
    """(tenant, user) of "USER@DOMAIN", or ValidationError / NotFoundError."""
    text = str(login or "").strip()
    if text.count("@") != 1:
        raise ValidationError(field, login, "must be USER@DOMAIN like 101@acme.example")
    number, domain = text.split("@")
    number = validate.extension(number, field)
    tenant = get_tenant(domain)
    user = User.get_or_none((User.tenant == tenant) & (User.number == number))
    if user is None:
        raise NotFoundError("user", number, tenant.domain)
    return tenant, user


def check_password(password, field="user.web_password"):
    """A web password: 10 to 200 characters, no control characters."""
    text = "" if password is None else str(password)
    if not PASSWORD_MIN <= len(text) <= PASSWORD_MAX:
        raise ValidationError(field, "*" * min(len(text), 12), f"must be {PASSWORD_MIN} to {PASSWORD_MAX} characters")
    if validate.CONTROL_RE.search(text):
        raise ValidationError(field, "*" * 12, "must not contain control characters")
    return text


def set_web_password(domain, number, password, now=None):
    """Set (or replace) a user's web password; their open sessions end."""
    tenant = get_tenant(domain)
    user = User.get_or_none((User.tenant == tenant) & (User.number == validate.extension(number, "user.number")))
    if user is None:
        raise NotFoundError("user", number, tenant.domain)
    hashed = _hasher().hash(check_password(password))
    now = now or utcnow()
    row = WebCredential.get_or_none(WebCredential.user == user)
    if row is None:
        WebCredential.create(user=user, password_hash=hashed, updated_at=now)
    else:
        WebCredential.update(password_hash=hashed, updated_at=now).where(WebCredential.id == row.id).execute()
    WebSession.delete().where(WebSession.user == user).execute()
    return user


def clear_web_password(domain, number):
    """Remove a user's web password (they can still use a mailed link) and end their sessions."""
    tenant = get_tenant(domain)
    user = User.get_or_none((User.tenant == tenant) & (User.number == validate.extension(number, "user.number")))
    if user is None:
        raise NotFoundError("user", number, tenant.domain)
    WebCredential.delete().where(WebCredential.user == user).execute()
    WebSession.delete().where(WebSession.user == user).execute()
    return user


def has_web_password(user):
    """True when the user has a web password."""
    return WebCredential.select().where(WebCredential.user == user).exists()


# --- throttling ----------------------------------------------------------------------------------


def _throttle_row(key, now):
    row = SignInThrottle.get_or_none(SignInThrottle.key == key)
    if row is not None and row.window_start <= now - _dt.timedelta(minutes=WINDOW_MINUTES):
        row.failures, row.window_start = 0, now
    return row


def check_throttle(keys, now=None):
    """Raise ThrottledError when any (key, limit) has reached its limit in the current window."""
    now = now or utcnow()
    for key, limit in keys:
        row = _throttle_row(key, now)
        if row is not None and row.failures >= limit:
            ends = row.window_start + _dt.timedelta(minutes=WINDOW_MINUTES)
            raise ThrottledError(int((ends - now).total_seconds()) + 1)


def record_failure(keys, now=None):
    """Count a failed sign-in against every key."""
    now = now or utcnow()
    for key, _limit in keys:
        row = _throttle_row(key, now)
        if row is None:
            SignInThrottle.create(key=key, failures=1, window_start=now)
        else:
            SignInThrottle.update(failures=row.failures + 1, window_start=row.window_start).where(
                SignInThrottle.id == row.id
            ).execute()


def _keys(login, client):
    keys = [(f"account:{str(login or '').strip().lower()[:250]}", MAX_FAILURES)]
    if client:
        keys.append((f"client:{client[:250]}", MAX_FAILURES_PER_CLIENT))
    return keys


# --- sign-in -------------------------------------------------------------------------------------


def sign_in(login, password, client=None, now=None):
    """Check USER@DOMAIN and web password (throttled) and open a session: (cookie token, SessionInfo).

    A wrong account, a user without a web password and a wrong password give the same
    SignInError; each counts against the account and the client address.
    """
    now = now or utcnow()
    keys = _keys(login, client)
    check_throttle(keys, now)
    try:
        _tenant, user = parse_login(login)
        cred = WebCredential.get_or_none(WebCredential.user == user)
        if cred is None or user.tenant.state != "active":
            raise SignInError("wrong user or password")
        from argon2.exceptions import InvalidHashError, VerificationError

        try:
            _hasher().verify(cred.password_hash, str(password or ""))
        except (VerificationError, InvalidHashError):
            raise SignInError("wrong user or password") from None
    except (ValidationError, NotFoundError, SignInError):
        record_failure(keys, now)
        raise SignInError("wrong user or password") from None
    SignInThrottle.delete().where(SignInThrottle.key == keys[0][0]).execute()
    return open_session(user, now)


def open_session(user, now=None):
    """A new session for `user`: (the token for the cookie, SessionInfo)."""
    now = now or utcnow()
    token = secrets.token_urlsafe(32)
    row = WebSession.create(
        token_hash=digest(token),
        user=user,
        csrf_token=secrets.token_urlsafe(32),
        created_at=now,
        expires_at=now + _dt.timedelta(hours=SESSION_HOURS),
    )
    return token, _info(row, user)


def _info(row, user):
    tenant = user.tenant
    return SessionInfo(row.id, user.id, tenant.id, tenant.domain, user.number, user.name, user.role, row.csrf_token)


def session(token, now=None):
    """The SessionInfo of a cookie token, or None (unknown, expired, or the tenant suspended)."""
    if not token or len(token) > 200:
        return None
    now = now or utcnow()
    row = (
        WebSession.select(WebSession, User, Tenant)
        .join(User)
        .join(Tenant)
        .where(WebSession.token_hash == digest(token))
        .first()
    )
    if row is None:
        return None
    if row.expires_at <= now or row.user.tenant.state != "active":
        WebSession.delete().where(WebSession.id == row.id).execute()
        return None
    return _info(row, row.user)


def sign_out(token):
    """End the session of a cookie token (nothing when there is none)."""
    if token:
        WebSession.delete().where(WebSession.token_hash == digest(token)).execute()


def purge_expired(now=None):
    """Delete expired sessions and links and stale throttle windows; returns how many rows went."""
    now = now or utcnow()
    n = WebSession.delete().where(WebSession.expires_at <= now).execute()
    n += SignInLink.delete().where((SignInLink.expires_at <= now) | SignInLink.used_at.is_null(False)).execute()
    n += (
        SignInThrottle.delete()
        .where(SignInThrottle.window_start <= now - _dt.timedelta(minutes=WINDOW_MINUTES))
        .execute()
    )
    return n


# --- one-time links ------------------------------------------------------------------------------


def create_sign_in_link(login, client=None, now=None):
    """A one-time sign-in token for a user with an e-mail address: (token, user), or None.

    None when the account does not exist or has no address: the page says the same in both
    cases ("if the account exists, a link was sent"). Requests are throttled like sign-ins.
    """
    now = now or utcnow()
    keys = _keys(login, client)
    check_throttle(keys, now)
    record_failure(keys, now)  # every request counts: a mailbox cannot be flooded
    try:
        _tenant, user = parse_login(login)
    except (ValidationError, NotFoundError):
        return None
    if not user.email or user.tenant.state != "active":
        return None
    token = secrets.token_urlsafe(32)
    SignInLink.create(
        token_hash=digest(token), user=user, created_at=now, expires_at=now + _dt.timedelta(minutes=LINK_MINUTES)
    )
    return token, user


def use_sign_in_link(token, now=None):
    """Open a session with a one-time link token: (cookie token, SessionInfo), or SignInError."""
    now = now or utcnow()
    if not token or len(token) > 200:
        raise SignInError("this sign-in link is not valid (used, expired or mistyped): ask for a new one")
    link = (
        SignInLink.select(SignInLink, User, Tenant)
        .join(User)
        .join(Tenant)
        .where(SignInLink.token_hash == digest(token))
        .first()
    )
    if link is None or link.used_at is not None or link.expires_at <= now or link.user.tenant.state != "active":
        raise SignInError("this sign-in link is not valid (used, expired or mistyped): ask for a new one")
    # Compare-and-set: two clicks at once open one session.
    if SignInLink.update(used_at=now).where((SignInLink.id == link.id) & SignInLink.used_at.is_null()).execute() != 1:
        raise SignInError("this sign-in link is not valid (used, expired or mistyped): ask for a new one")
    return open_session(link.user, now)


def sign_in_email(user, url, sender):
    """The e-mail carrying a sign-in link (EmailMessage)."""
    from email.message import EmailMessage

    msg = EmailMessage()
    msg["Subject"] = f"Sign in to your phone system ({user.tenant.domain})"
    msg["From"] = sender
    msg["To"] = user.email
    msg.set_content(
        f"Hello {user.name},\n\nopen this link within {LINK_MINUTES} minutes to sign in as "
        f"{user.number}@{user.tenant.domain}:\n\n{url}\n\nIt works once. If you did not ask for it, ignore this mail.\n"
    )
    return msg
