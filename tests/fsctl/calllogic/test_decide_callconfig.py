"""The tenant snapshot the decisions read: Destination texts, numbers, blacklist, look-ups."""

import pytest
from hypothesis import given, strategies as st

from fsctl.calllogic.callconfig import (
    DESTINATION_KINDS,
    BlacklistEntry,
    Destination,
    Did,
    Forwarding,
    Group,
    Tenant,
    TenantConfig,
    User,
    canonical_number,
)


@pytest.mark.parametrize(
    "text, kind, target, back",
    [
        ("user:101", "user", "101", "user:101"),
        ("timerule:office-hours", "timerule", "office-hours", "timerule:office-hours"),
        ("external:+37052000000", "external", "+37052000000", "external:+37052000000"),
        ("hangup", "hangup", "", "hangup"),
        ("hangup:USER_BUSY", "hangup", "USER_BUSY", "hangup:USER_BUSY"),
        ("  Group:200 ", "group", "200", "group:200"),
        ("hangup:", "hangup", "", "hangup"),
    ],
)
def test_destination_parse_and_str(text, kind, target, back):
    dest = Destination.parse(text)
    assert (dest.kind, dest.target) == (kind, target)
    assert str(dest) == back
    assert Destination.parse(str(dest)) == dest


@pytest.mark.parametrize(
    "text",
    [
        "",
        "user",
        "user:",
        "nowhere:1",
        "hangup:user busy",
        "hangup:busy",
        "user:1,2",
        "user:1|2",
        "user:${x}",
        "ivr:5 0",
    ],
)
def test_destination_parse_refuses(text):
    with pytest.raises(ValueError):
        Destination.parse(text)


def test_destination_parse_refuses_non_text():
    with pytest.raises(TypeError):
        Destination.parse(None)
    assert Destination.parse(Destination("user", "1")) == Destination("user", "1")


def test_destination_is_frozen_and_hashable():
    dest = Destination("user", "101")
    with pytest.raises(AttributeError):
        dest.target = "102"
    assert {dest, Destination.parse("user:101")} == {dest}
    assert Destination.hangup("USER_BUSY") == Destination.parse("hangup:USER_BUSY")


@given(
    kind=st.sampled_from([k for k in DESTINATION_KINDS if k != "hangup"]),
    target=st.from_regex(r"[A-Za-z0-9+._-]{1,20}", fullmatch=True),
)
def test_destination_round_trip(kind, target):
    dest = Destination(kind, target)
    assert Destination.parse(str(dest)) == dest


@pytest.mark.parametrize(
    "raw, canon",
    [
        ("+370 612 34567", "+37061234567"),
        ("0037061234567", "+37061234567"),
        ("861234567", "861234567"),
        ("", ""),
        (None, ""),
    ],
)
def test_canonical_number(raw, canon):
    assert canonical_number(raw) == canon


def test_blacklist_exact_and_prefix():
    exact = BlacklistEntry("+37061234567")
    prefix = BlacklistEntry("+3706", "prefix")
    assert exact.matches("+37061234567") and exact.matches("0037061234567")
    assert not exact.matches("+370612345678")
    assert prefix.matches("+37069999999") and not prefix.matches("+37052000000")
    assert not prefix.matches("")
    with pytest.raises(ValueError):
        BlacklistEntry("+370", "regex")


def test_config_lookups():
    cfg = TenantConfig.build(
        Tenant("acme.example"),
        users=[User("101")],
        groups=[Group("200", members=("101",))],
        dids=[Did("+37052000000", "user:101")],
        contacts=[("+370 612 34567", "Jonas")],
        blacklist=[BlacklistEntry("+3706", "prefix"), BlacklistEntry("+37061234567", note="spam")],
    )
    assert cfg.numbered("101") == Destination("user", "101")
    assert cfg.numbered("200") == Destination("group", "200")
    assert cfg.numbered("999") is None
    assert cfg.contact_name("0037061234567") == "Jonas"
    assert cfg.contact_name("") is None
    assert cfg.blacklisted("+37061234567").note == "spam"  # exact entries win
    assert cfg.blacklisted("+37052000000") is None
    assert cfg.dids["+37052000000"].destination == Destination("user", "101")


def test_config_refuses_duplicates():
    with pytest.raises(ValueError):
        TenantConfig.build(Tenant("acme.example"), users=[User("101"), User("101")])


def test_snapshot_fields_accept_destination_texts():
    fwd = Forwarding(busy="user:102", no_answer="")
    assert fwd.busy == Destination("user", "102") and fwd.no_answer is None
    assert fwd.active() == {"busy": Destination("user", "102")}
    assert Tenant("acme.example", fallback="user:101").fallback == Destination("user", "101")
    assert Group("200", members=[101, 102]).members == ("101", "102")


def test_blacklist_longest_prefix_wins():
    cfg = TenantConfig.build(
        Tenant("acme.example"),
        blacklist=[BlacklistEntry("+370", "prefix", "country"), BlacklistEntry("+3706", "prefix", "mobile")],
    )
    assert cfg.blacklisted("+37061234567").note == "mobile"
    assert cfg.blacklisted("+37052000000").note == "country"
    assert cfg.blacklisted("") is None


numbers = st.from_regex(r"(\+|00)?[0-9]{1,8}", fullmatch=True)


@given(
    entries=st.lists(st.builds(BlacklistEntry, numbers, st.sampled_from(["exact", "prefix"])), max_size=8),
    caller=numbers,
)
def test_blacklist_index_agrees_with_the_entries(entries, caller):
    cfg = TenantConfig.build(Tenant("acme.example"), blacklist=entries)
    found = cfg.blacklisted(caller)
    assert (found is not None) == any(e.matches(caller) for e in entries)
    if found is not None:
        assert found.matches(caller)
