"""Conference rooms: number and optional PIN. R-CONF."""

from .. import validate
from ..model import Conference
from .common import assert_number_free, get_numbered, get_tenant, touch
from .numbered import getter, lister, remover

get_conference = getter("conference")
list_conferences = lister("conference")
remove_conference = remover("conference", own=lambda conf: (), recursive=False)


def add_conference(domain, number, name, pin=None, max_members=None):
    """Create a conference room."""
    tenant = get_tenant(domain)
    number = validate.extension(number, "conference.number")
    assert_number_free(tenant, number, "conference.number")
    conf = Conference.create(
        tenant=tenant,
        number=number,
        name=validate.text(name, "conference.name"),
        pin=validate.pin(pin, "conference.pin") if pin else None,
        max_members=validate.integer(max_members, "conference.max_members", 2, 1000) if max_members else None,
    )
    touch(tenant)
    return conf


def edit_conference(domain, number, name=None, pin=None, max_members=None):
    """Change a room; pin "" removes the PIN, max_members 0 removes the limit."""
    tenant = get_tenant(domain)
    conf = get_numbered(tenant, "conference", number)
    if name is not None:
        conf.name = validate.text(name, "conference.name")
    if pin is not None:
        conf.pin = validate.pin(pin, "conference.pin") if pin else None
    if max_members is not None:
        conf.max_members = validate.integer(max_members, "conference.max_members", 2, 1000) if max_members else None
    conf.save()
    touch(tenant)
    return conf


def conference_dict(conf, show_secrets=False):
    """The stable JSON shape of a conference room."""
    data = {"number": conf.number, "name": conf.name, "has_pin": bool(conf.pin), "max_members": conf.max_members}
    if show_secrets:
        data["pin"] = conf.pin
    return data
