"""`fsctl check` on the real switch: all in place after the install steps, then broken on purpose
one setting at a time (each time the one line that says what is missing, exit 1), and restored."""

import re
import time

import pytest


def check(live, *args, env=None):
    result = live.fsctl("check", *args, ok=False)
    return result.exit_code, result.stdout


def missing(out):
    return [line for line in out.splitlines() if line.startswith("MISSING")]


def test_everything_in_place_after_the_install_steps(live_debug):
    live = live_debug
    t = live.tenant("check")
    t.user("101")
    live.media(t, "welcome")
    t.fsctl("ivr", "add", "500", "--name", "Menu", "--greeting", "welcome")
    t.fsctl("queue", "add", "600", "--name", "Q", "--agent", "101")
    t.fsctl("conference", "add", "700", "--name", "Room")
    live.apply()
    code, out = check(live)
    assert code == 0, out
    assert missing(out) == []
    assert re.search(r"^ok +include lines: the XML of \d+ applied tenants found$", out, re.M), out
    assert "ok       call-logic service: fs-scripts connected" in out


def _edit(path, old, new):
    text = path.read_text()
    assert old in text, (path, old)
    path.write_text(text.replace(old, new, 1))
    return text


@pytest.fixture
def conf(live):
    """Edit a file of the live configuration; every file edited is restored (and reloaded) after."""
    saved = {}

    def edit(rel, old, new):
        path = live.fs.conf / rel
        saved.setdefault(path, path.read_text())
        _edit(path, old, new)
        assert live.esl.api("reloadxml").startswith("+OK [Success]")

    yield edit
    for path, text in saved.items():
        path.write_text(text)
    live.esl.api("reloadxml")


@pytest.mark.parametrize(
    "rel, old, new, line",
    [
        (
            "sip_profiles/internal.xml",
            '<param name="challenge-realm" value="auto_from"/>',
            '<param name="challenge-realm" value="auto_to"/>',
            'MISSING  sip profile internal challenge-realm: challenge-realm = "auto_to" (must be "auto_from"); '
            'fix: sip_profiles/internal.xml: challenge-realm = "auto_from" (fsctl freeswitch setup /etc/freeswitch), '
            "then sofia profile internal restart",
        ),
        (
            "sip_profiles/internal.xml",
            '<param name="challenge-realm" value="auto_from"/>',
            '<param name="challenge-realm" value="auto_from"/><param name="force-register-domain" value="$${domain}"/>',
            'MISSING  sip profile internal force-register-domain: set to "127.0.0.1" (must be off for many tenants)',
        ),
        (
            "sip_profiles/external.xml",
            '<param name="context" value="fsctl-public"/>',
            '<param name="context" value="public"/>',
            'MISSING  sip profile external running: runs with old parameters: context "fsctl-public" (loaded: "public")',
        ),
        (
            "freeswitch.xml",
            '<X-PRE-PROCESS cmd="include" data="$${conf_dir}/fsctl/directory/*.xml"/>',
            "",
            "MISSING  include lines: not found: directory domain ",
        ),
        (
            "autoload_configs/callcenter.conf.xml",
            '<X-PRE-PROCESS cmd="include" data="$${conf_dir}/fsctl/callcenter/queues/*.xml"/>',
            "",
            "MISSING  include lines: not found: queue 600@check-",
        ),
        (
            "autoload_configs/xml_cdr.conf.xml",
            '<param name="log-b-leg" value="true"/>',
            '<param name="log-b-leg" value="false"/>',
            'MISSING  mod_xml_cdr files: log-b-leg "false" (must be "true")',
        ),
    ],
    ids=[
        "challenge-realm",
        "force-register-domain",
        "profile-not-restarted",
        "directory-include",
        "callcenter-include",
        "xml-cdr",
    ],
)
def test_a_setting_broken_on_purpose_is_named(live_debug, conf, rel, old, new, line):
    live = live_debug
    if not any(d.startswith("check-") for d in _applied(live)):
        test_everything_in_place_after_the_install_steps(live)
    conf(rel, old, new)
    code, out = check(live)
    assert code == 1, out
    assert any(m.startswith(line) for m in missing(out)), out
    assert len(missing(out)) <= 2, out  # that setting, and what follows from it only


def _applied(live):
    return [row["domain"] for row in __import__("json").loads(live.fsctl("status", "--json").stdout)]


def test_a_module_not_loaded(live_debug):
    live = live_debug
    assert "+OK" in live.esl.api("unload mod_xml_cdr")
    try:
        code, out = check(live)
        assert code == 1
        assert missing(out)[0].startswith("MISSING  modules: not loaded: mod_xml_cdr; fix:"), out
    finally:
        live.esl.api("load mod_xml_cdr")
    assert check(live)[0] == 0


def test_sessions_per_second_below_the_expected_call_rate(live_debug):
    live = live_debug
    live.esl.api("fsctl sps 30")
    try:
        code, out = check(live)
        assert code == 1
        # 20 calls/s (the live settings) of up to 2 channels each (no group ringing more at once).
        assert any(
            m.startswith("MISSING  sessions-per-second: only 30 new channels per second for 20 calls/s")
            for m in missing(out)
        ), out
        assert "fsctl freeswitch setup /etc/freeswitch --sessions-per-second" in out
    finally:
        live.esl.api("fsctl sps 300")
    assert check(live)[0] == 0


def test_the_call_logic_service_gone(live_debug):
    live = live_debug
    live.stop_service()
    try:
        # Its last heartbeat a minute ago (FreeSWITCH's clock): as if it had stopped then.
        live.esl.api(f"global_setvar fsctl_service_seen={int(live.esl.api('strepoch')) - 60}")
        code, out = check(live)
        assert code == 1
        # (60 s, or a little more when a second turns between the setvar and the check on a loaded machine)
        heard = re.search(r"MISSING  call-logic service: fs-scripts last heard (\d+) s ago; fix: start it", out)
        assert heard and 60 <= int(heard[1]) < 90, out
    finally:
        live.start_service()
    deadline = time.monotonic() + 15
    while check(live)[0] != 0:
        assert time.monotonic() < deadline, "the service's heartbeat did not come back"
        time.sleep(0.5)


def test_unreachable_or_refused_is_exit_3(live_debug, monkeypatch):
    live = live_debug
    text = live.settings.read_text()
    try:
        live.settings.write_text(text.replace(f"esl_port = {live.fs.esl_port}", "esl_port = 1"))
        result = live.fsctl("check", ok=False)
        assert result.exit_code == 3 and "unreachable" in result.stderr, result.stderr
        live.settings.write_text(re.sub(r'esl_password = "[^"]*"', 'esl_password = "wrong"', text))
        result = live.fsctl("check", ok=False)
        assert result.exit_code == 3 and "refused the Event Socket password" in result.stderr, result.stderr
    finally:
        live.settings.write_text(text)
