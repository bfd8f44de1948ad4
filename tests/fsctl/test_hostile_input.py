"""Hostile text and numbers through every add/edit path (hypothesis).

Properties: tenant text is stored exactly as given (any Unicode, quotes, <, &, $, ${x});
anything else is refused with a domain error naming the field, never a crash; a refused
change leaves the database as it was.
"""

import pytest
from hypothesis import HealthCheck, given, settings, strategies as st

from fsctl import validate
from fsctl.errors import FsctlError, ValidationError
from fsctl.model import Group, Tenant, User
from fsctl.services import (
    blacklist,
    conferences,
    contacts,
    dids,
    groups,
    ivrs,
    queues,
    tenants,
    timerules,
    users,
)

SETTINGS = settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])

# Text a customer may type: anything printable, including markup and FreeSWITCH expansions.
nasty = st.sampled_from(
    [
        '"',
        "'",
        "<",
        ">",
        "&",
        "$",
        "${domain}",
        "$${x}",
        "</include>",
        "<!--",
        "]]>",
        "\\",
        "%",
        "ü",
        "Ž",
        "名",
        "🙂",
        "\u202e",
        " ",
    ]
)
customer_text = st.lists(st.one_of(nasty, st.text(min_size=1, max_size=5)), min_size=1, max_size=12).map("".join)
any_text = st.text(max_size=40)


@pytest.fixture
def tenant(db):
    tenant = tenants.add_tenant("acme.example", "ACME", "Europe/Vilnius")
    users.add_user("acme.example", "101", "One")
    users.add_user("acme.example", "102", "Two")
    return tenant


def rolled_back(db, fn):
    """Run fn in a transaction that is always rolled back; return (result, error)."""
    with db.atomic() as tx:
        try:
            return fn(), None
        except FsctlError as exc:
            return None, exc
        finally:
            tx.rollback()


def _clean(text):
    return text.strip() and len(text) <= 200 and not validate.CONTROL_RE.search(text)


@SETTINGS
@given(name=customer_text)
def test_names_are_stored_exactly(db, tenant, name):
    def scenario():
        tenants.edit_tenant("acme.example", name=name)
        users.edit_user("acme.example", "101", name=name)
        g = groups.add_group("acme.example", "200", name, members=["101"])
        ivrs.add_ivr("acme.example", "500", name)
        queues.add_queue("acme.example", "600", name, agents=["102"])
        conferences.add_conference("acme.example", "700", name)
        contacts.add_contact("acme.example", "+37061234567", name)
        dids.add_did("acme.example", "+37052000000", "group:200", name=name)
        blacklist.add_entry("acme.example", "+1900", "prefix", note=name)
        return [
            Tenant.get_by_id(tenant.id).name,
            User.get(User.number == "101").name,
            Group.get_by_id(g.id).name,
            ivrs.get_ivr("acme.example", "500").name,
            queues.get_queue("acme.example", "600").name,
            conferences.get_conference("acme.example", "700").name,
            contacts.list_contacts("acme.example")[0].name,
            dids.get_did("acme.example", "+37052000000").name,
            blacklist.list_entries("acme.example")[0].note,
        ]

    stored, error = rolled_back(db, scenario)
    if _clean(name):
        assert error is None, error
        assert stored == [name] * 9
    else:
        assert isinstance(error, ValidationError) and error.field.endswith("name")


@SETTINGS
@given(number=any_text)
def test_numbers_are_checked_never_crash(db, tenant, number):
    for call, field in [
        (lambda: users.add_user("acme.example", number, "x"), "user.number"),
        (lambda: groups.add_group("acme.example", number, "x"), "group.number"),
        (lambda: queues.add_queue("acme.example", number, "x"), "queue.number"),
        (lambda: conferences.add_conference("acme.example", number, "x"), "conference.number"),
        (lambda: ivrs.add_ivr("acme.example", number, "x"), "ivr.number"),
    ]:
        _, error = rolled_back(db, call)
        if validate.EXTENSION_RE.match(number.strip()) and number.strip() not in ("101", "102"):
            assert error is None, error
        else:
            assert error is not None and field in str(error)


@SETTINGS
@given(number=any_text, dest=any_text)
def test_public_numbers_and_destinations(db, tenant, number, dest):
    _, error = rolled_back(db, lambda: dids.add_did("acme.example", number, "user:101"))
    assert error is None or error.field == "did.number"
    _, error = rolled_back(db, lambda: dids.add_did("acme.example", "+37052000000", dest))
    assert error is None or error.field == "did.destination"
    _, error = rolled_back(db, lambda: users.edit_user("acme.example", "101", forward={"busy": dest}))
    assert error is None or error.field == "user.forward.busy"
    _, error = rolled_back(db, lambda: blacklist.add_entry("acme.example", number))
    assert error is None or error.field == "blacklist.pattern"
    _, error = rolled_back(db, lambda: contacts.add_contact("acme.example", number, "x"))
    assert error is None or error.field == "contact.number"


@SETTINGS
@given(domain=any_text, tz=any_text)
def test_domains_and_time_zones(db, domain, tz):
    _, error = rolled_back(db, lambda: tenants.add_tenant(domain, "x"))
    assert error is None or error.field == "tenant.domain" or "already exists" in str(error)
    _, error = rolled_back(db, lambda: tenants.add_tenant("tz.example", "x", tz))
    assert error is None or error.field == "tenant.timezone"


@SETTINGS
@given(range_text=any_text, holiday=any_text, entry=any_text, email=any_text, pin=any_text)
def test_structured_fields(db, tenant, range_text, holiday, entry, email, pin):
    def rule():
        return timerules.add_timerule("acme.example", "office", "user:101", "user:102", [range_text], [holiday])

    _, error = rolled_back(db, rule)
    assert error is None or error.field in ("timerule.range", "timerule.holiday")
    _, error = rolled_back(db, lambda: ivrs.add_ivr("acme.example", "500", "x", entries={entry: "user:101"}))
    assert error is None or error.field == "ivr.entry"
    _, error = rolled_back(db, lambda: users.edit_user("acme.example", "101", email=email))
    assert error is None or error.field == "user.email"
    _, error = rolled_back(db, lambda: users.edit_user("acme.example", "101", vm_pin=pin))
    assert error is None or error.field == "user.vm_pin"


def test_refused_change_leaves_database_as_it_was(db, tenant):
    before = [(u.number, u.name, u.fwd_busy) for u in User.select().order_by(User.number)]
    _, error = rolled_back(db, lambda: users.edit_user("acme.example", "101", name="New", forward={"busy": "user:9"}))
    assert error is not None
    assert [(u.number, u.name, u.fwd_busy) for u in User.select().order_by(User.number)] == before


@pytest.mark.parametrize(
    "char",
    ["\n", "\r", "\t", "\r\n", "\x85", "\u2028", "\u2029", "\x9b"],
    ids=["LF", "CR", "TAB", "CRLF", "NEL", "LS", "PS", "CSI"],
)
def test_line_breaks_and_tabs_are_refused_in_every_name(db, tenant, char):
    """The README refuses control characters; LF, CR, TAB, U+0085 and U+2028/2029 got through."""
    name = f"Ona{char}Bcc: x@example.invalid"
    for call, field in [
        (lambda: tenants.edit_tenant("acme.example", name=name), "tenant.name"),
        (lambda: users.edit_user("acme.example", "101", name=name), "user.name"),
        (lambda: groups.add_group("acme.example", "200", name), "group.name"),
        (lambda: ivrs.add_ivr("acme.example", "500", name), "ivr.name"),
        (lambda: queues.add_queue("acme.example", "600", name), "queue.name"),
        (lambda: conferences.add_conference("acme.example", "700", name), "conference.name"),
        (lambda: contacts.add_contact("acme.example", "+37061234567", name), "contact.name"),
        (lambda: dids.add_did("acme.example", "+37052000000", "user:101", name=name), "did.name"),
        (lambda: blacklist.add_entry("acme.example", "+1900", "prefix", note=name), "blacklist.note"),
    ]:
        _, error = rolled_back(db, call)
        assert isinstance(error, ValidationError) and error.field == field, (field, error)
        assert error.rule == "must be one line without control characters (tabs and line breaks included)"


@pytest.mark.parametrize(
    "pattern, good",
    [
        (validate.DOMAIN_RE, "acme.example"),
        (validate.EXTENSION_RE, "101"),
        (validate.E164_RE, "+37052000000"),
        (validate.PHONE_RE, "+3706"),
        (validate.PREFIX_RE, "+1900"),
        (validate.PIN_RE, "1234"),
        (validate.NAME_RE, "hold-music"),
        (validate.EMAIL_RE, "ona@acme.example"),
        (validate.TIME_RE, "08:00"),
        (validate.TIME_RE, "24:00"),
        (ivrs.DIGITS_RE, "1#"),
    ],
)
def test_patterns_end_at_the_end_of_the_text(pattern, good):
    """`$` matches before a trailing newline; every pattern ends with \\Z."""
    assert pattern.match(good)
    assert not pattern.match(good + "\n")
