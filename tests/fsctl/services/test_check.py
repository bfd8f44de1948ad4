"""`fsctl check`'s reading of FreeSWITCH's replies (recorded shapes from the 1.11.3 build), without a
switch; tests/live/test_check.py runs it on the real one, broken on purpose setting by setting."""

import dataclasses

import pytest

from fsctl.config import Settings
from fsctl.db import transaction
from fsctl.freeswitch.esl import EslCommandError
from fsctl.model import AppliedConfig
from fsctl.services import check, groups, queues, tenants, users

SOFIA = """<configuration name="sofia.conf" description="sofia Endpoint">
  <profiles>
    <profile name="internal">
      <settings>
        <param name="context" value="public"></param>
        <param name="challenge-realm" value="auto_from"></param>
        <param name="multiple-registrations" value="contact"></param>
        <param name="auth-calls" value="true"></param>
        <param name="accept-blind-reg" value="false"></param>
        <param name="accept-blind-auth" value="false"></param>
        {extra}
      </settings>
    </profile>
    <profile name="external">
      <settings><param name="context" value="fsctl-public"></param><param name="disable-transfer" value="true"></param></settings>
    </profile>
  </profiles>
</configuration>"""
STATUS = """<?xml version="1.0" encoding="ISO-8859-1"?>
<profile>
  <profile-info>
    <name>{name}</name>
    <context>{context}</context>
    <challenge-realm>{realm}</challenge-realm>
  </profile-info>
</profile>"""
XML_CDR = """<configuration name="xml_cdr.conf" description="XML CDR CURL logger">
    <settings>
        <param name="log-dir" value="/var/log/freeswitch/xml_cdr"></param>
        <param name="log-b-leg" value="true"></param>
        <param name="prefix-a-leg" value="true"></param>
        <param name="rotate" value="false"></param>
    </settings>
</configuration>"""
FS_STATUS = """UP 0 years, 0 days, 0 hours, 0 minutes, 2 seconds, 698 milliseconds, 561 microseconds
FreeSWITCH (Version 1.11.3-dev git cc93a68 2026-08-21 14:10:14Z 64bit) is ready
0 session(s) since startup
0 session(s) - peak 0, last 5min 0
0 session(s) per Sec out of max {sps}, peak 0, last 5min 0
1000 session(s) max
"""


class Switch:
    """Replies as FreeSWITCH 1.11.3 gives them; change one to break a setting."""

    def __init__(self):
        self.replies = {
            "xml_locate configuration configuration name sofia.conf": SOFIA.format(extra=""),
            "sofia xmlstatus profile internal": STATUS.format(name="internal", context="public", realm="auto_from"),
            "sofia xmlstatus profile external": STATUS.format(name="external", context="fsctl-public", realm="auto_to"),
            "xml_locate configuration configuration name xml_cdr.conf": XML_CDR,
            "status": FS_STATUS.format(sps=100),
            "global_getvar fsctl_service_seen": "1796400000",
            "strepoch": "1796400004\n",
            "xml_locate dialplan context name fsctl-public": '<context name="fsctl-public"/>',
            "xml_locate configuration configuration name ivr.conf": "<configuration><menus/></configuration>",
            "xml_locate configuration configuration name conference.conf": "<configuration/>",
            "xml_locate configuration configuration name callcenter.conf": '<configuration><queues><queue name="600@acme.example"/></queues></configuration>',
            "xml_locate directory domain name acme.example": '<domain name="acme.example"/>',
            "xml_locate dialplan context name acme.example": '<context name="acme.example"/>',
        }
        self.unloaded = set()

    def __call__(self, command):
        if command.startswith("module_exists "):
            return "false" if command.split()[1] in self.unloaded else "true"
        reply = self.replies.get(command, "can't find anything\n")
        if reply.startswith("-ERR"):
            raise EslCommandError(reply, command)
        return reply


@pytest.fixture
def switch(sdb):
    with transaction():
        tenants.add_tenant("acme.example", "ACME")
        for n in ("101", "102", "103"):
            users.add_user("acme.example", n, f"U {n}")
        queues.add_queue("acme.example", "600", "Q", agents=["101"])
        AppliedConfig.create(domain="acme.example", revision=1, digest="x")
    return Switch()


SETTINGS = dataclasses.replace(Settings(), esl_password="own-secret", calls_per_second=10)


def missing(findings):
    return {f.check: f for f in findings if not f.ok}


def test_all_in_place(switch):
    findings = check.run_checks(switch, SETTINGS)
    assert missing(findings) == {}
    assert [f.line() for f in findings if f.check == "call-logic service"] == [
        "ok       call-logic service: fs-scripts connected (last heard 4 s ago)"
    ]


def test_each_broken_setting_is_one_line_with_its_fix(switch):
    switch.replies["xml_locate configuration configuration name sofia.conf"] = SOFIA.format(
        extra='<param name="force-register-domain" value="127.0.0.1"></param>'
    )
    switch.replies["sofia xmlstatus profile external"] = STATUS.format(
        name="external", context="public", realm="auto_to"
    )
    switch.replies["xml_locate directory domain name acme.example"] = "can't find anything\n"
    switch.unloaded.add("mod_callcenter")
    switch.replies["global_getvar fsctl_service_seen"] = "-ERR no reply\n"
    found = missing(check.run_checks(switch, dataclasses.replace(SETTINGS, esl_password="ClueCon")))
    assert set(found) == {
        "sip profile internal force-register-domain",
        "sip profile external running",
        "include lines",
        "event socket password",
        "modules",
        "call-logic service",
    }
    assert found["sip profile internal force-register-domain"].line() == (
        'MISSING  sip profile internal force-register-domain: set to "127.0.0.1" (must be off for many tenants); '
        "fix: comment it out in sip_profiles/internal.xml (fsctl freeswitch setup /etc/freeswitch), then "
        "sofia profile internal restart"
    )
    assert (
        found["sip profile external running"].detail
        == 'runs with old parameters: context "public" (loaded: "fsctl-public")'
    )
    assert found["include lines"].detail == "not found: directory domain acme.example"
    assert found["modules"].detail == "not loaded: mod_callcenter"
    assert found["call-logic service"].detail == "fs-scripts has never connected"
    assert found["event socket password"].detail == "FreeSWITCH's public default ClueCon"


def test_sessions_per_second_against_the_expected_call_rate(switch):
    # 10 calls/s of a caller and one phone each: 20 new channels per second are enough.
    assert check.check_sessions_per_second(switch, 10).ok
    with transaction():
        groups.add_group("acme.example", "200", "All", strategy="simultaneous", members=["101", "102", "103"])
    # A simultaneous group rings 3 phones at once: 10 calls/s need 40.
    switch.replies["status"] = FS_STATUS.format(sps=30)
    finding = check.check_sessions_per_second(switch, 10)
    assert not finding.ok and finding.detail.endswith(": 40 needed (more calls get 503 Service Unavailable)")
    assert "--sessions-per-second 40" in finding.fix


def test_a_service_not_heard_for_a_while(switch):
    switch.replies["strepoch"] = "1796400060"
    finding = check.check_service(switch)
    assert not finding.ok and finding.detail == "fs-scripts last heard 60 s ago"


def test_cli_exit_codes(fsctl_sqlite, tmp_path):
    """Unreachable: exit 3 with one line (the live test covers 0 and 1 on the real switch)."""
    conf = tmp_path / "fsctl.toml"
    conf.write_text("[fsctl]\nesl_port = 1\nesl_timeout = 1.0\n")
    fsctl_sqlite.env["FSCTL_CONFIG"] = str(conf)
    result = fsctl_sqlite("check", ok=False)
    assert result.exit_code == 3
    assert result.stderr.startswith("Error: FreeSWITCH 127.0.0.1:1 unreachable (")


def test_a_nodes_tenants_are_those_applied_on_it(switch):
    """With nodes: the tenants looked for are those applied on the node checked (NodeConfig), its service fs-scripts@NODE."""
    from fsctl.model import NodeConfig
    from fsctl.services import applied, nodes

    with transaction():
        fs1 = nodes.add_node("fs1", "127.0.0.1:8021", "127.0.0.1:5060")[0]
        tenants.add_tenant("beta.example", "Beta")
        NodeConfig.create(node=fs1, domain="beta.example", revision=1, digest="x")
    [found] = check.check_tenants(switch, applied.OnNode(fs1))
    assert not found.ok and found.detail == "not found: directory domain beta.example, dialplan context beta.example"
    [single] = check.check_tenants(switch)  # the single FreeSWITCH's applied tenants: acme, found
    assert single.ok and single.detail == "the XML of 1 applied tenants found"
    switch.replies["global_getvar fsctl_service_seen"] = "-ERR no reply\n"
    service = [f for f in check.run_checks(switch, SETTINGS, applied.OnNode(fs1)) if f.check == "call-logic service"]
    assert "systemctl enable --now fs-scripts@fs1; conf/systemd/fs-scripts@.service" in service[0].fix


def test_cli_checks_every_node_and_names_those_unreachable(fsctl_sqlite, tmp_path):
    """`fsctl check` with nodes: each node on its own Event Socket; one unreachable does not stop the others (exit 3)."""
    conf = tmp_path / "fsctl.toml"
    conf.write_text("[fsctl]\nesl_timeout = 1.0\n")
    fsctl_sqlite.env["FSCTL_CONFIG"] = str(conf)
    fsctl_sqlite("node", "add", "fs1", "--esl", "127.0.0.1:1", "--sip", "127.0.0.1:5060")
    fsctl_sqlite("node", "add", "fs2", "--esl", "127.0.0.1:2", "--sip", "127.0.0.1:5062")
    result = fsctl_sqlite("check", ok=False)
    assert result.exit_code == 3 and result.stdout == ""
    lines = result.stderr.strip().splitlines()
    assert lines[0].startswith("fs1: not checked: FreeSWITCH fs1 (127.0.0.1:1) unreachable (")
    assert lines[1].startswith("fs2: not checked: FreeSWITCH fs2 (127.0.0.1:2) unreachable (")
    assert lines[2:] == ["Error: fs1, fs2 not checked: FreeSWITCH unreachable (the others are above)"]
    one = fsctl_sqlite("check", "--node", "fs2", ok=False)
    assert one.exit_code == 3 and one.stderr.startswith("Error: FreeSWITCH fs2 (127.0.0.1:2) unreachable (")
    unknown = fsctl_sqlite("check", "--node", "fs9", ok=False)
    assert unknown.exit_code == 2 and unknown.stderr.strip() == 'Error: node "fs9" does not exist'
