"""`fsctl freeswitch setup`: the README's install steps as edits of a stock configuration.

The live layer (tests/live) runs the same command on the real build's stock tree and proves the
result on the wire; here a miniature stock tree shows each edit, idempotence and the refusals.
"""

import re
from pathlib import Path

import pytest
from lxml import etree

from fsctl.services import freeswitch_setup as fs_setup

ROOT = Path(__file__).resolve().parents[3]

STOCK = {
    "freeswitch.xml": """<?xml version="1.0"?>
<document type="freeswitch/xml">
  <X-PRE-PROCESS cmd="include" data="vars.xml"/>
  <section name="dialplan" description="Regex/XML Dialplan">
    <X-PRE-PROCESS cmd="include" data="dialplan/*.xml"/>
  </section>
  <section name="directory" description="User Directory">
    <X-PRE-PROCESS cmd="include" data="directory/*.xml"/>
  </section>
</document>
""",
    "sip_profiles/internal.xml": """<profile name="internal">
  <settings>
    <param name="context" value="public"/>
    <param name="auth-calls" value="$${internal_auth_calls}"/>
    <!--<param name="force-register-db-domain" value="$${domain}"/>-->
    <param name="force-register-domain" value="$${domain}"/>
    <param name="challenge-realm" value="auto_from"/>
    <param name="multiple-registrations" value="contact"/>
  </settings>
</profile>
""",
    "sip_profiles/external.xml": """<profile name="external">
  <settings>
    <param name="context" value="public"/>
  </settings>
</profile>
""",
    "autoload_configs/ivr.conf.xml": """<configuration name="ivr.conf" description="IVR menus">
  <menus>
    <X-PRE-PROCESS cmd="include" data="../ivr_menus/*.xml"/>
  </menus>
</configuration>
""",
    "autoload_configs/conference.conf.xml": """<configuration name="conference.conf" description="Audio Conference">
  <profiles>
    <profile name="default"/>
  </profiles>
</configuration>
""",
    "autoload_configs/callcenter.conf.xml": """<configuration name="callcenter.conf" description="CallCenter">
  <queues>
  </queues>
  <agents>
    <!--<agent name="1000@default" type="callback"/>-->
  </agents>
  <tiers>
  </tiers>
</configuration>
""",
    "autoload_configs/event_socket.conf.xml": """<configuration name="event_socket.conf" description="Socket Client">
  <settings>
    <param name="listen-ip" value="127.0.0.1"/>
    <param name="listen-port" value="8021"/>
    <param name="password" value="ClueCon"/>
  </settings>
</configuration>
""",
    "autoload_configs/modules.conf.xml": """<configuration name="modules.conf" description="Modules">
  <modules>
    <load module="mod_sofia"/>
    <!-- <load module="mod_callcenter"/> -->
    <load module="mod_event_socket"/>
  </modules>
</configuration>
""",
    "autoload_configs/xml_cdr.conf.xml": """<configuration name="xml_cdr.conf" description="XML CDR">
  <settings>
    <param name="log-dir" value=""/>
    <param name="log-b-leg" value="false"/>
  </settings>
</configuration>
""",
    "autoload_configs/switch.conf.xml": """<configuration name="switch.conf" description="Core">
  <settings>
    <param name="sessions-per-second" value="30"/>
  </settings>
</configuration>
""",
}


@pytest.fixture
def stock(tmp_path):
    conf = tmp_path / "freeswitch"
    for rel, text in STOCK.items():
        (conf / rel).parent.mkdir(parents=True, exist_ok=True)
        (conf / rel).write_text(text)
    return conf


def run(conf, tmp_path, **kw):
    args = dict(
        fsctl_conf_dir=str(conf / "fsctl"),
        esl_port=8022,
        esl_password="s3cret-Pw",
        xml_cdr_dir=str(tmp_path / "xml_cdr"),
    )
    args.update(kw)
    return fs_setup.setup(conf, **args)


def params(path, block="settings"):
    tree = etree.parse(str(path))
    return {p.get("name"): p.get("value") for p in tree.iter("param")}


def test_setup_applies_every_step(stock, tmp_path):
    changes = run(stock, tmp_path)
    text = (stock / "freeswitch.xml").read_text()
    directory = text.index('<section name="directory"')
    assert text.index('data="$${conf_dir}/fsctl/directory/*.xml"') > directory
    dialplan_section = text[text.index('<section name="dialplan"') : directory]
    assert 'data="$${conf_dir}/fsctl/dialplan/*.xml"' in dialplan_section
    cc = (stock / "autoload_configs/callcenter.conf.xml").read_text()
    for folder, tag in (("queues", "queues"), ("agents", "agents"), ("tiers", "tiers")):
        block = cc[cc.index(f"<{tag}>") : cc.index(f"</{tag}>")]
        assert f"fsctl/callcenter/{folder}/*.xml" in block
    # Every include line on a line of its own (the preprocessor works line by line).
    for rel in (
        "freeswitch.xml",
        "autoload_configs/callcenter.conf.xml",
        "autoload_configs/ivr.conf.xml",
        "autoload_configs/conference.conf.xml",
    ):
        for line in (stock / rel).read_text().splitlines():
            if "fsctl/" in line:
                assert re.fullmatch(r'\s*<X-PRE-PROCESS cmd="include" data="[^"]+"/>', line), line
    internal = params(stock / "sip_profiles/internal.xml")
    assert "force-register-domain" not in internal  # commented out, not set to ""
    assert internal["auth-calls"] == "true" and internal["accept-blind-reg"] == "false"
    assert internal["challenge-realm"] == "auto_from"
    assert params(stock / "sip_profiles/external.xml")["context"] == "fsctl-public"
    esl = params(stock / "autoload_configs/event_socket.conf.xml")
    assert esl == {
        "nat-map": "false",
        "listen-ip": "127.0.0.1",
        "listen-port": "8022",
        "password": "s3cret-Pw",
        "apply-inbound-acl": "loopback.auto",
    }
    modules = etree.parse(str(stock / "autoload_configs/modules.conf.xml"))
    loaded = [m.get("module") for m in modules.iter("load")]
    assert set(fs_setup.MODULES) <= set(loaded) and loaded.count("mod_sofia") == 1
    cdr = params(stock / "autoload_configs/xml_cdr.conf.xml")
    assert cdr["log-dir"] == str(tmp_path / "xml_cdr") and cdr["log-b-leg"] == "true"
    assert params(stock / "autoload_configs/switch.conf.xml")["sessions-per-second"] == "100"
    assert (tmp_path / "xml_cdr").is_dir() and (stock / "fsctl").is_dir()
    shown = [str(c) for c in changes]
    assert 'sip_profiles/internal.xml: force-register-domain off (was "$${domain}")' in shown
    assert "autoload_configs/event_socket.conf.xml: password (set)" in shown
    assert not any("s3cret" in line for line in shown)  # a password is never printed


def test_setup_is_idempotent_and_keeps_the_rest(stock, tmp_path):
    run(stock, tmp_path)
    first = {rel: (stock / rel).read_text() for rel in STOCK}
    assert run(stock, tmp_path) == []
    assert first == {rel: (stock / rel).read_text() for rel in STOCK}
    # Only added or changed lines differ from the stock file.
    stock_lines = STOCK["sip_profiles/external.xml"].splitlines()
    assert [line for line in first["sip_profiles/external.xml"].splitlines() if line not in stock_lines] == [
        '    <param name="context" value="fsctl-public"/>',
        '    <param name="disable-transfer" value="true"/>',
    ]


def test_dry_run_changes_nothing(stock, tmp_path):
    changes = run(stock, tmp_path, dry_run=True)
    assert changes
    assert {rel: (stock / rel).read_text() for rel in STOCK} == STOCK
    assert not (tmp_path / "xml_cdr").exists()


def test_an_include_line_in_a_comment_counts(stock, tmp_path):
    # X-PRE-PROCESS runs even inside a comment (FACTS.md): adding it again would include twice.
    ivr = stock / "autoload_configs/ivr.conf.xml"
    ivr.write_text(
        ivr.read_text().replace(
            "  </menus>", '    <!-- <X-PRE-PROCESS cmd="include" data="$${conf_dir}/fsctl/ivr/*.xml"/> -->\n  </menus>'
        )
    )
    run(stock, tmp_path)
    assert ivr.read_text().count("fsctl/ivr/*.xml") == 1


def test_a_separate_fsctl_folder_is_included_by_its_path(stock, tmp_path):
    run(stock, tmp_path, fsctl_conf_dir=str(tmp_path / "elsewhere"))
    assert f'data="{tmp_path / "elsewhere"}/directory/*.xml"' in (stock / "freeswitch.xml").read_text()


@pytest.mark.parametrize(
    "kw, message",
    [
        ({"esl_password": "ClueCon"}, 'esl_password "ClueCon": must not be FreeSWITCH\'s public default'),
        ({"esl_password": 'a"b'}, 'esl_password "(hidden)": may only hold'),
        ({"esl_port": 0}, 'esl_port "0": must be a TCP port'),
        ({"xml_cdr_dir": "relative/dir"}, '--xml-cdr-dir "relative/dir": must be an absolute folder'),
        ({"sessions_per_second": 0}, '--sessions-per-second "0": must be a whole number'),
    ],
)
def test_bad_input_is_refused_before_any_change(stock, tmp_path, kw, message):
    from fsctl.errors import ValidationError

    with pytest.raises(ValidationError) as err:
        run(stock, tmp_path, **kw)
    assert str(err.value).startswith(message)
    assert {rel: (stock / rel).read_text() for rel in STOCK} == STOCK


def test_a_missing_file_is_an_operational_error(stock, tmp_path):
    from fsctl.errors import OperationError

    (stock / "autoload_configs/switch.conf.xml").unlink()
    with pytest.raises(OperationError, match="switch.conf.xml: not found"):
        run(stock, tmp_path)
    # All or nothing: the files are saved only once every edit worked.
    assert (stock / "freeswitch.xml").read_text() == STOCK["freeswitch.xml"]


def test_cli(stock, tmp_path, fsctl_sqlite):
    conf_file = tmp_path / "fsctl.toml"
    conf_file.write_text(
        f'[fsctl]\nconf_dir = "{stock}/fsctl"\nesl_port = 8023\nesl_password = "pw-123"\n'
        f'xml_cdr_dir = "{tmp_path}/cdr"\n'
    )
    fsctl_sqlite.env["FSCTL_CONFIG"] = str(conf_file)
    result = fsctl_sqlite("freeswitch", "setup", str(stock), "--dry-run")
    assert result.stdout.startswith("would change freeswitch.xml: include $${conf_dir}/fsctl/")
    result = fsctl_sqlite("freeswitch", "setup", str(stock), "--sessions-per-second", "250")
    assert 'autoload_configs/switch.conf.xml: sessions-per-second "250" (was "30")' in result.stdout
    assert "restart FreeSWITCH" in result.stderr
    assert params(stock / "autoload_configs/event_socket.conf.xml")["listen-port"] == "8023"
    result = fsctl_sqlite("freeswitch", "setup", str(stock), "--sessions-per-second", "250")
    assert result.stdout == "" and "nothing changed" in result.stderr
    result = fsctl_sqlite("freeswitch", "setup", str(tmp_path / "nowhere"), ok=False)
    assert result.exit_code == 2 and "must be FreeSWITCH's configuration folder" in result.stderr
    conf_file.write_text('[fsctl]\nesl_password = "ClueCon"\n')
    result = fsctl_sqlite("freeswitch", "setup", str(stock), ok=False)
    assert result.exit_code == 2 and 'esl_password "ClueCon"' in result.stderr


def test_the_conf_snippets_say_what_setup_does():
    """conf/freeswitch/*.xml show the operator the same values the command applies."""
    conf = ROOT / "conf" / "freeswitch"
    internal = params(conf / "sip_profile_internal.xml")
    assert internal == {k: v for k, v in fs_setup.INTERNAL_PROFILE if v is not None}
    text = (conf / "sip_profile_internal.xml").read_text()
    for name, value in fs_setup.INTERNAL_PROFILE:
        if value is None:
            assert name in text and f'name="{name}"' not in text
    assert params(conf / "sip_profile_external.xml") == dict(fs_setup.EXTERNAL_PROFILE)
    esl = params(conf / "event_socket.conf.xml")
    assert set(esl) == {n for n, _ in fs_setup.event_socket_params(1, "x")}
    assert params(conf / "xml_cdr.conf.xml") == dict(fs_setup.xml_cdr_params("/var/log/freeswitch/xml_cdr"))
    includes = re.findall(r'<X-PRE-PROCESS cmd="include" data="([^"]+)"/>', (conf / "includes.xml").read_text())
    assert includes == [f"$${{conf_dir}}/fsctl/{folder}/*.xml" for _f, _c, folder in fs_setup.INCLUDES]
