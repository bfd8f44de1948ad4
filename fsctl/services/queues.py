"""Call queues (mod_callcenter): agents, music, maximum wait and overflow. R-QUEUE."""

from .. import validate
from ..errors import ValidationError
from ..model import Queue, QueueAgent, User
from .common import (
    assert_number_free,
    check_destination,
    check_media,
    get_numbered,
    get_tenant,
    touch,
)
from .numbered import getter, lister, remover

# mod_callcenter's strategies.
STRATEGIES = (
    "ring-all",
    "longest-idle-agent",
    "round-robin",
    "top-down",
    "agent-with-least-talk-time",
    "agent-with-fewest-calls",
    "sequentially-by-agent-order",
    "random",
)


get_queue = getter("queue")
list_queues = lister("queue")
remove_queue = remover("queue")


def add_queue(
    domain,
    number,
    name,
    strategy="longest-idle-agent",
    agents=(),
    max_wait=300,
    overflow="hangup",
    moh=None,
    announce=None,
    announce_frequency=30,
):
    """Create a queue with its agents (user numbers, in tier order)."""
    tenant = get_tenant(domain)
    number = validate.extension(number, "queue.number")
    assert_number_free(tenant, number, "queue.number")
    queue = Queue.create(
        tenant=tenant,
        number=number,
        name=validate.text(name, "queue.name"),
        strategy=validate.choice(strategy, "queue.strategy", STRATEGIES),
        max_wait=validate.integer(max_wait, "queue.max_wait", 10, 7200),
        overflow=check_destination(tenant, overflow, "queue.overflow", source=f"queue:{number}"),
        moh=check_media(tenant, moh, "queue.moh"),
        announce=check_media(tenant, announce, "queue.announce"),
        announce_frequency=validate.integer(announce_frequency, "queue.announce_frequency", 10, 600),
    )
    _set_agents(tenant, queue, agents)
    touch(tenant)
    return queue


def edit_queue(
    domain,
    number,
    name=None,
    strategy=None,
    agents=None,
    max_wait=None,
    overflow=None,
    moh=None,
    announce=None,
    announce_frequency=None,
):
    """Change a queue; `agents` replaces the agent list."""
    tenant = get_tenant(domain)
    queue = get_numbered(tenant, "queue", number)
    if name is not None:
        queue.name = validate.text(name, "queue.name")
    if strategy is not None:
        queue.strategy = validate.choice(strategy, "queue.strategy", STRATEGIES)
    if max_wait is not None:
        queue.max_wait = validate.integer(max_wait, "queue.max_wait", 10, 7200)
    if overflow is not None:
        queue.overflow = check_destination(tenant, overflow, "queue.overflow", source=f"queue:{queue.number}")
    if moh is not None:
        queue.moh = check_media(tenant, moh, "queue.moh")
    if announce is not None:
        queue.announce = check_media(tenant, announce, "queue.announce")
    if announce_frequency is not None:
        queue.announce_frequency = validate.integer(announce_frequency, "queue.announce_frequency", 10, 600)
    queue.save()
    if agents is not None:
        _set_agents(tenant, queue, agents)
    touch(tenant)
    return queue


def agent_rows(queue):
    """The queue's agents by tier."""
    return list(
        QueueAgent.select(QueueAgent, User)
        .join(User)
        .where(QueueAgent.queue == queue)
        .order_by(QueueAgent.tier, User.number)
    )


def queue_dict(queue):
    """The stable JSON shape of a queue."""
    return {
        "number": queue.number,
        "name": queue.name,
        "strategy": queue.strategy,
        "agents": [a.user.number for a in agent_rows(queue)],
        "max_wait": queue.max_wait,
        "overflow": queue.overflow,
        "moh": queue.moh,
        "announce": queue.announce,
        "announce_frequency": queue.announce_frequency,
    }


def _set_agents(tenant, queue, numbers):
    seen = set()
    rows = []
    for tier, n in enumerate(numbers, 1):
        n = validate.extension(n, "queue.agent")
        if n in seen:
            raise ValidationError("queue.agent", n, "is listed twice")
        seen.add(n)
        user = User.get_or_none((User.tenant == tenant) & (User.number == n))
        if user is None:
            raise ValidationError("queue.agent", n, f"user {n} does not exist in {tenant.domain}")
        rows.append((user, tier))
    QueueAgent.delete().where(QueueAgent.queue == queue).execute()
    for user, tier in rows:
        QueueAgent.create(queue=queue, user=user, tier=tier)
