"""API tokens of a tenant (the recording API of fsctl-web): add, list, revoke, authenticate.

A token is `fsctl_` + 43 random characters, shown once when added; the table keeps only its
SHA-256 (tokens are long random secrets: a fast hash is enough). Scope `read` reads
recordings, calls and statistics; `mark` may also mark recordings. A token sees what the
tenant's admin sees, and nothing of another tenant.
"""

import secrets

from .. import validate
from ..errors import ConflictError, NotFoundError
from ..model import ApiToken, Tenant, utcnow
from .common import get_tenant
from .webauth import digest

SCOPES = ("read", "mark")
PREFIX = "fsctl_"


def add_token(domain, name, scope="read", now=None):
    """Create a token: (row, the secret to show once)."""
    tenant = get_tenant(domain)
    name = validate.slug(name, "token.name")
    scope = validate.choice(scope, "token.scope", SCOPES)
    if ApiToken.select().where((ApiToken.tenant == tenant) & (ApiToken.name == name)).exists():
        raise ConflictError(f'token.name "{name}": already exists in {tenant.domain} (revoke it first)')
    secret = PREFIX + secrets.token_urlsafe(32)
    row = ApiToken.create(tenant=tenant, name=name, token_hash=digest(secret), scope=scope, created_at=now or utcnow())
    return row, secret


def list_tokens(domain):
    """The tenant's tokens, by name."""
    tenant = get_tenant(domain)
    return list(ApiToken.select(ApiToken, Tenant).join(Tenant).where(ApiToken.tenant == tenant).order_by(ApiToken.name))


def revoke_token(domain, name, now=None):
    """Revoke (delete) a token: it stops working at once; its name is free again."""
    tenant = get_tenant(domain)
    row = ApiToken.get_or_none((ApiToken.tenant == tenant) & (ApiToken.name == name))
    if row is None:
        raise NotFoundError("token", name, tenant.domain)
    row.delete_instance()
    return row


def authenticate(secret, now=None):
    """The live ApiToken (with its tenant) of a secret, or None; records when it was last used."""
    if not secret or not secret.startswith(PREFIX) or len(secret) > 200:
        return None
    row = ApiToken.select(ApiToken, Tenant).join(Tenant).where((ApiToken.token_hash == digest(secret))).first()
    if row is None or row.tenant.state != "active":
        return None
    now = now or utcnow()
    if row.last_used_at is None or (now - row.last_used_at).total_seconds() > 60:
        ApiToken.update(last_used_at=now).where(ApiToken.id == row.id).execute()
    return row


def token_dict(row):
    """The stable JSON shape of a token (never the secret)."""

    def iso(value):
        return value.strftime("%Y-%m-%dT%H:%M:%SZ") if value else None

    return {
        "tenant": row.tenant.domain,
        "name": row.name,
        "scope": row.scope,
        "created_at": iso(row.created_at),
        "last_used_at": iso(row.last_used_at),
    }
