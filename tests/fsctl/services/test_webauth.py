"""Web sign-in (fsctl.services.webauth) and API tokens (fsctl.services.tokens, `fsctl token`): both engines."""

import datetime as dt
import json

import pytest

from fsctl.model import ApiToken, SignInThrottle, Tenant, User, WebCredential, WebSession
from fsctl.services import tokens, webauth
from tests.fsctl.test_provisioning_cli import refused

T0 = dt.datetime(2026, 11, 20, 9, 0, 0)
PW = "correct horse battery"


@pytest.fixture
def acme(db):
    tenant = Tenant.create(domain="acme.example", name="ACME")
    User.create(tenant=tenant, number="101", name="Ona", sip_password="s" * 24, email="ona@acme.example")
    User.create(tenant=tenant, number="102", name="Jonas", sip_password="s" * 24)
    return tenant


def test_password_is_stored_as_argon2id_and_checked(acme):
    webauth.set_web_password("acme.example", "101", PW, now=T0)
    stored = WebCredential.get().password_hash
    assert stored.startswith("$argon2id$") and PW not in stored
    token, info = webauth.sign_in("101@acme.example", PW, "127.0.0.1", now=T0)
    assert info.login == "101@acme.example" and info.role == "user" and len(info.csrf_token) >= 32
    assert WebSession.get().token_hash == webauth.digest(token) and token not in WebSession.get().token_hash
    assert webauth.session(token, now=T0 + dt.timedelta(hours=1)).user_id == info.user_id
    # A session lasts SESSION_HOURS, then it is gone.
    assert webauth.session(token, now=T0 + dt.timedelta(hours=webauth.SESSION_HOURS)) is None
    assert WebSession.select().count() == 0


@pytest.mark.parametrize(
    "login, password",
    [
        ("101@acme.example", "wrong password!"),
        ("102@acme.example", PW),
        ("199@acme.example", PW),
        ("101@nosuch.example", PW),
        ("not a login", PW),
        ("", ""),
    ],
)
def test_every_failure_is_the_same_message(acme, login, password):
    webauth.set_web_password("acme.example", "101", PW, now=T0)
    with pytest.raises(webauth.SignInError, match="^wrong user or password$"):
        webauth.sign_in(login, password, "127.0.0.1", now=T0)


def test_throttling_locks_the_account_for_the_window(acme):
    webauth.set_web_password("acme.example", "101", PW, now=T0)
    for i in range(webauth.MAX_FAILURES):
        with pytest.raises(webauth.SignInError):
            webauth.sign_in("101@acme.example", "wrong password!", f"10.0.0.{i}", now=T0)
    with pytest.raises(webauth.ThrottledError) as caught:  # even the right password, from anywhere
        webauth.sign_in("101@acme.example", PW, "127.0.0.9", now=T0 + dt.timedelta(minutes=1))
    assert caught.value.retry_after == 14 * 60 + 1
    later = T0 + dt.timedelta(minutes=webauth.WINDOW_MINUTES)
    webauth.sign_in("101@acme.example", PW, "127.0.0.9", now=later)
    # A success clears the account's count.
    assert not SignInThrottle.select().where(SignInThrottle.key == "account:101@acme.example").exists()


def test_throttling_per_client_address(acme):
    webauth.set_web_password("acme.example", "101", PW, now=T0)
    for i in range(webauth.MAX_FAILURES_PER_CLIENT):
        with pytest.raises(webauth.SignInError):
            webauth.sign_in(f"1{i:02d}@acme.example", "x", "192.0.2.7", now=T0)
    with pytest.raises(webauth.ThrottledError):
        webauth.sign_in("101@acme.example", PW, "192.0.2.7", now=T0)
    webauth.sign_in("101@acme.example", PW, "192.0.2.8", now=T0)


def test_new_password_ends_sessions_and_is_checked(acme):
    webauth.set_web_password("acme.example", "101", PW, now=T0)
    token, _ = webauth.sign_in("101@acme.example", PW, None, now=T0)
    webauth.set_web_password("acme.example", "101", "another long password", now=T0)
    assert webauth.session(token, now=T0) is None
    with pytest.raises(Exception, match='user.web_password "\\*+": must be 10 to 200 characters'):
        webauth.set_web_password("acme.example", "101", "short", now=T0)
    webauth.clear_web_password("acme.example", "101")
    with pytest.raises(webauth.SignInError):
        webauth.sign_in("101@acme.example", "another long password", None, now=T0)


def test_one_time_link(acme):
    token, user = webauth.create_sign_in_link("101@acme.example", None, now=T0)
    assert user.number == "101"
    message = webauth.sign_in_email(user, "https://pbx.example.invalid/sign-in/link/" + token, "pbx@localhost")
    assert message["To"] == "ona@acme.example" and token in message.get_content()
    session_token, info = webauth.use_sign_in_link(token, now=T0 + dt.timedelta(minutes=1))
    assert info.login == "101@acme.example" and webauth.session(session_token, now=T0) is not None
    with pytest.raises(webauth.SignInError, match="not valid"):  # once only
        webauth.use_sign_in_link(token, now=T0 + dt.timedelta(minutes=2))
    late, _ = webauth.create_sign_in_link("101@acme.example", None, now=T0)
    with pytest.raises(webauth.SignInError, match="not valid"):  # expired
        webauth.use_sign_in_link(late, now=T0 + dt.timedelta(minutes=webauth.LINK_MINUTES))
    # No address, no user, no tenant: nothing is made (the page says the same in every case).
    assert webauth.create_sign_in_link("102@acme.example", None, now=T0) is None
    assert webauth.create_sign_in_link("109@acme.example", None, now=T0) is None
    assert webauth.create_sign_in_link("x", None, now=T0) is None


def test_suspended_tenant_cannot_sign_in(acme):
    webauth.set_web_password("acme.example", "101", PW, now=T0)
    token, _ = webauth.sign_in("101@acme.example", PW, None, now=T0)
    Tenant.update(state="suspended").execute()
    assert webauth.session(token, now=T0) is None
    with pytest.raises(webauth.SignInError):
        webauth.sign_in("101@acme.example", PW, None, now=T0)


def test_tokens_shown_once_stored_hashed(acme):
    row, secret = tokens.add_token("acme.example", "crm-sync", "mark", now=T0)
    assert secret.startswith("fsctl_") and len(secret) > 40
    assert ApiToken.get().token_hash == webauth.digest(secret)
    assert tokens.authenticate(secret, now=T0).name == "crm-sync"
    assert tokens.authenticate(secret + "x", now=T0) is None and tokens.authenticate("", now=T0) is None
    tokens.revoke_token("acme.example", "crm-sync")
    assert tokens.authenticate(secret, now=T0) is None


def test_token_commands(fsctl):
    fsctl("tenant", "add", "acme.example", "--name", "ACME")
    result = fsctl("token", "add", "acme.example", "crm-sync", "--scope", "mark")
    secret = result.stdout.strip()
    assert secret.startswith("fsctl_") and "not shown again" in result.stderr
    listed = json.loads(fsctl("token", "list", "acme.example", "--json").stdout)
    assert [(t["name"], t["scope"], t["last_used_at"]) for t in listed] == [("crm-sync", "mark", None)]
    assert secret not in fsctl("token", "list", "acme.example", "--json").stdout
    assert (
        refused(fsctl, "token", "add", "acme.example", "crm-sync")
        == 'Error: token.name "crm-sync": already exists in acme.example (revoke it first)'
    )
    bad = fsctl("token", "add", "acme.example", "x", "--scope", "write", ok=False)
    assert bad.exit_code == 2 and "'write' is not one of 'read', 'mark'" in bad.stderr
    assert refused(fsctl, "token", "add", "acme.example", "Bad Name").startswith('Error: token.name "Bad Name": ')
    fsctl("token", "revoke", "acme.example", "crm-sync")
    assert json.loads(fsctl("token", "list", "acme.example", "--json").stdout) == []
    assert (
        refused(fsctl, "token", "revoke", "acme.example", "crm-sync")
        == 'Error: token "crm-sync" does not exist in acme.example'
    )


def test_web_password_command(fsctl):
    fsctl("tenant", "add", "acme.example", "--name", "ACME")
    fsctl("user", "add", "acme.example", "100", "--name", "Admin", "--role", "admin")
    fsctl("user", "web-password", "acme.example", "100", input="a long web password\na long web password\n")
    generated = fsctl("user", "web-password", "acme.example", "100", "--generate").stdout.strip()
    assert len(generated) == 16
    short = fsctl("user", "web-password", "acme.example", "100", input="short\nshort\n", ok=False)
    assert short.exit_code == 2
    assert short.stderr.strip() == 'Error: user.web_password "*****": must be 10 to 200 characters'
    assert (
        refused(fsctl, "user", "web-password", "acme.example", "199", "--generate")
        == 'Error: user "199" does not exist in acme.example'
    )
    fsctl("user", "web-password", "acme.example", "100", "--clear")
