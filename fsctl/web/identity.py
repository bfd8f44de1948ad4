"""Who is asking: a signed-in user (session cookie) or a tenant's API token, and what they may do."""

import collections
import dataclasses
import threading
import time

from ..services import recordings

ROLES_ADMIN = ("admin",)


class ForbiddenError(Exception):
    """The caller is known but may not do this (HTTP 403)."""

    def __init__(self, rule, field="role", value=""):
        super().__init__(rule)
        self.field, self.value, self.rule = field, value, rule


class UnauthenticatedError(Exception):
    """No valid session or token (HTTP 401)."""

    def __init__(self, rule="sign in first, or send Authorization: Bearer <token>"):
        super().__init__(rule)
        self.rule = rule


@dataclasses.dataclass(frozen=True)
class Identity:
    """The caller of one request."""

    kind: str  # session | token
    tenant_id: int
    domain: str
    actor: str  # USER@DOMAIN or token:NAME (the mark audit's "who")
    role: str  # user | supervisor | admin (a token acts as the tenant's admin for reading)
    scope: str  # read | mark
    number: str = ""  # the user's number (sessions)
    session: object = None  # webauth.SessionInfo for sessions

    @property
    def viewer(self):
        """What recordings.* take as `as_user`: the user, or the whole tenant for a token."""
        if self.kind == "session":
            return self.actor
        return recordings.tenant_viewer(self.domain)

    @property
    def rate_key(self):
        return f"{self.kind}:{self.actor}"

    def require_scope(self, scope):
        if scope == "mark" and self.scope != "mark":
            raise ForbiddenError(
                "this token's scope is read: marking needs a token with scope mark",
                field="token.scope",
                value=self.scope,
            )

    def require_admin(self):
        if self.kind != "token" and self.role not in ROLES_ADMIN:
            raise ForbiddenError("only the tenant's admin may do this", value=self.role)


class RateLimiter:
    """At most `per_minute` requests per key in any 60 seconds (sliding window, in memory)."""

    def __init__(self, per_minute, timer=time.monotonic):
        self.per_minute = per_minute
        self.timer = timer
        self._hits = collections.defaultdict(collections.deque)
        self._lock = threading.Lock()

    def hit(self, key):
        """Count a request; returns 0 when allowed, else the seconds to wait."""
        now = self.timer()
        with self._lock:
            hits = self._hits[key]
            while hits and hits[0] <= now - 60:
                hits.popleft()
            if len(hits) >= self.per_minute:
                return int(hits[0] + 60 - now) + 1
            hits.append(now)
            return 0
