"""A fake mod_callcenter: the `callcenter_config` API with the replies of FreeSWITCH's source.

There is no Event Socket capture of mod_callcenter (tests/data/esl-captures holds none), so the
replies are the strings that signalwire/freeswitch src/mod/applications/mod_callcenter/mod_callcenter.c
(commit c9b35c5) writes in `cc_config_api_function`, and the state rules are those of
`cc_agent_add`, `cc_agent_update`, `cc_tier_add`, `cc_tier_update`, `get_queue`, `destroy_queue`:

- `queue load Q`: a queue in memory stays as it is; else it is read from the XML
  (`xml_queues`): `+OK`, or `-ERR Invalid Queue not found!`. `queue reload Q` drops it first.
  `queue unload Q`: always `+OK`.
- `agent add A TYPE`: `+OK` (status `Logged Out`), `-ERR Agent already exist!`,
  `-ERR Agent type invalid!`. `agent set KEY A V`: `-ERR Agent not found!` first, then
  `-ERR Invalid Agent Status!` / `-ERR Invalid Agent Type!` / `-ERR Invalid Agent Update KEY!`.
  `agent del A`: the agent and its tiers go, always `+OK`.
- `tier add Q A L P`: the queue is loaded on demand like `get_queue` (`-ERR Queue not found!`),
  then `-ERR Agent not found!`, `-ERR Tier already exist!`. `tier set KEY Q A V`: a missing tier
  is `-ERR Unknown Error!` (CC_STATUS_TIER_NOT_FOUND has no case of its own), a missing agent
  or queue `-ERR Agent not found!` (sic), a bad key `-ERR Invalid Tier Update KEY!`.
  `tier del Q A`: always `+OK`.
- too few arguments: `-ERR Invalid!`. Every reply ends with a newline.

Tests script it through attributes: ``xml_queues`` (None: every queue name is in the XML; else
a set), ``queues`` (loaded: name -> load count), ``agents`` (name -> {key: value}), ``tiers``
((queue, agent) -> {"level", "position", "state"}), and ``fail`` (exact command text -> reply,
e.g. ``"-ERR Unknown Error!\\n"``, to force a refusal).
"""

from __future__ import annotations

AGENT_TYPES = ("callback", "uuid-standby")
AGENT_STATUSES = ("logged out", "available", "available (on demand)", "on break")
AGENT_STATES = ("waiting", "receiving", "in a queue call", "idle")
TIER_STATES = ("no answer", "ready", "offering", "active inbound", "standby")
AGENT_KEYS = (
    "status",
    "state",
    "uuid",
    "contact",
    "ready_time",
    "busy_delay_time",
    "reject_delay_time",
    "no_answer_delay_time",
    "type",
    "max_no_answer",
    "wrap_up_time",
)

OK = "+OK\n"
INVALID = "-ERR Invalid!\n"


class FakeCallcenter:
    """The state and the `callcenter_config` replies of one mod_callcenter (see the module docstring)."""

    def __init__(self, xml_queues=None):
        self.xml_queues = xml_queues
        self.queues: dict = {}
        self.agents: dict = {}
        self.tiers: dict = {}
        self.fail: dict = {}
        self.commands: list = []

    def _in_xml(self, name):
        return self.xml_queues is None or name in self.xml_queues

    def _get_queue(self, name):
        """get_queue(): the queue in memory, or loaded from the XML on demand."""
        if name not in self.queues:
            if not self._in_xml(name):
                return False
            self.queues[name] = 0
        return True

    def run(self, command: str) -> str:
        """The reply body of a whole command line (`callcenter_config queue load Q`)."""
        api, _, arg = command.partition(" ")
        if api != "callcenter_config":
            return f"-ERR {api} Command not found!\n"
        return self.api(arg)

    def api(self, arg: str) -> str:
        """The reply body of `api callcenter_config ARG`."""
        command = f"callcenter_config {arg}".strip()
        self.commands.append(command)
        if command in self.fail:
            return self.fail[command]
        argv = arg.split(" ")[:8] if arg.strip() else []
        if not argv:
            return "-USAGE: \ncallcenter_config <target> <args>\n"
        if len(argv) < 2:
            return INVALID
        section, action, args = argv[0].lower(), argv[1].lower(), argv[2:]
        handler = getattr(self, f"_{section}_{action}", None)
        return handler(args) if handler else ""  # an unknown section or action writes nothing

    # ------------------------------------------------------------------ queue
    def _queue_load(self, args):
        if len(args) < 1:
            return INVALID
        name = args[0]
        if name in self.queues:
            return OK  # already in memory: not read again
        if not self._in_xml(name):
            return "-ERR Invalid Queue not found!\n"
        self.queues[name] = 1
        return OK

    def _queue_reload(self, args):
        if len(args) < 1:
            return INVALID
        loads = self.queues.pop(args[0], 0)
        if not self._in_xml(args[0]):
            return "-ERR Invalid Queue not found!\n"
        self.queues[args[0]] = loads + 1
        return OK

    def _queue_unload(self, args):
        if len(args) < 1:
            return INVALID
        self.queues.pop(args[0], None)
        return OK

    # ------------------------------------------------------------------ agent
    def _agent_add(self, args):
        if len(args) < 2:
            return INVALID
        name, kind = args[0], args[1]
        if kind.lower() not in AGENT_TYPES:
            return "-ERR Agent type invalid!\n"
        if name in self.agents:
            return "-ERR Agent already exist!\n"
        self.agents[name] = {"type": kind, "status": "Logged Out", "state": "Waiting"}
        return OK

    def _agent_del(self, args):
        if len(args) < 1:
            return INVALID
        self.agents.pop(args[0], None)
        for key in [k for k in self.tiers if k[1] == args[0]]:
            del self.tiers[key]
        return OK

    def _agent_set(self, args):
        if len(args) < 3:
            return INVALID
        key, name, value = args[0].lower(), args[1], args[2]
        if name not in self.agents:
            return "-ERR Agent not found!\n"
        if key == "status" and value.lower() not in AGENT_STATUSES:
            return "-ERR Invalid Agent Status!\n"
        if key == "state" and value.lower() not in AGENT_STATES:
            return "-ERR Invalid Agent State!\n"
        if key == "type" and value.lower() not in AGENT_TYPES:
            return "-ERR Invalid Agent Type!\n"
        if key not in AGENT_KEYS:
            return "-ERR Invalid Agent Update KEY!\n"
        self.agents[name][key] = value
        return OK

    # ------------------------------------------------------------------ tier
    def _tier_add(self, args):
        if len(args) < 4:
            return INVALID
        queue, agent, level, position = args[:4]
        if not self._get_queue(queue):
            return "-ERR Queue not found!\n"
        if agent not in self.agents:
            return "-ERR Agent not found!\n"
        if (queue, agent) in self.tiers:
            return "-ERR Tier already exist!\n"
        self.tiers[(queue, agent)] = {"level": level, "position": position, "state": "Ready"}
        return OK

    def _tier_set(self, args):
        if len(args) < 4:
            return INVALID
        key, queue, agent, value = args[0].lower(), args[1], args[2], args[3]
        if (queue, agent) not in self.tiers:
            return "-ERR Unknown Error!\n"
        if agent not in self.agents or not self._get_queue(queue):
            return "-ERR Agent not found!\n"
        if key == "state":
            if value.lower() not in TIER_STATES:
                return "-ERR Invalid Tier State!\n"
        elif key not in ("level", "position"):
            return "-ERR Invalid Tier Update KEY!\n"
        self.tiers[(queue, agent)][key] = value
        return OK

    def _tier_del(self, args):
        if len(args) < 2:
            return INVALID
        self.tiers.pop((args[0], args[1]), None)
        return OK
