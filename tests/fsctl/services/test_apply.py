"""fsctl apply / status against a fake FreeSWITCH that replays the recorded reloadxml replies.

The fake (tests/fakes/fake_freeswitch.py, fixture `fake_fs`) answers `api reloadxml` with bytes from
esl_reloadxml_errors.txt, and `api callcenter_config ...` like mod_callcenter's source does
(tests/fakes/callcenter.py: no capture of it exists); apply talks to it through the real
fsctl.freeswitch.esl.EventSocket.
"""

import fcntl
import json
import os
import stat
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import pytest

from fsctl import render
from fsctl.config import Settings
from fsctl.db import transaction
from fsctl.errors import OperationError, UnreachableError
from fsctl.freeswitch import callcenter as cc
from fsctl.freeswitch.esl import EventSocket
from fsctl.freeswitch.xmlcheck import XmlCheckError
from fsctl.model import AppliedConfig
from fsctl.services import apply as svc, queues, tenants, users
from tests.conftest import free_port
from tests.fsctl.freeswitch.test_callcenter import agent_add_texts
from tests.fsctl.render.test_render import make_demo, override_template

REPO = Path(__file__).resolve().parents[3]
ERROR_CASES = ("M1", "M2", "M5")  # the recorded replies that start with "+OK [[error near line"


def reloader(fake_fs, password="ClueCon", port=None):
    settings = Settings(esl_host=fake_fs.host, esl_port=port or fake_fs.port, esl_password=password, esl_timeout=0.5)
    return svc.esl_reloader(
        settings,
        lambda: EventSocket(settings.esl_host, settings.esl_port, password, timeout=0.5, reconnect=False, events=()),
    )


def reloads(fake_fs):
    return [c for c in fake_fs.received if c == "api reloadxml"]


def snapshot(conf):
    """Every managed file's bytes (what FreeSWITCH would load)."""
    return {rel: (conf / rel).read_bytes() for rel in svc.managed_files(conf)}


def two_tenants():
    make_demo("acme.example")
    make_demo("beta.example", "Beta", did_prefix="+3705300000")


def applied():
    return {a.domain: a.revision for a in AppliedConfig.select()}


def revisions():
    from fsctl.model import Tenant

    return {t.domain: t.revision for t in Tenant.select()}


# --- the normal path ------------------------------------------------------------------------


def test_first_apply_writes_everything_and_reloads_once(db, fake_fs, tmp_path):
    two_tenants()
    conf = tmp_path / "conf"
    result = svc.apply_config(conf, reloader(fake_fs))
    assert result.rendered == ["acme.example", "beta.example"] and result.reloaded
    assert result.reply == "+OK [Success]"
    assert reloads(fake_fs) == ["api reloadxml"]
    expected = sorted(render.tenant_paths("acme.example") + render.tenant_paths("beta.example") + [render.PUBLIC_FILE])
    assert sorted(svc.managed_files(conf)) == expected == result.written
    assert applied() == revisions() and len(applied()) == 2
    assert [r["status"] for r in svc.config_status()] == ["applied", "applied"]
    assert not (conf / svc.JOURNAL_DIR).exists() and not (conf / svc.STAGING_DIR).exists()


def test_nothing_changed_means_no_reload(db, fake_fs, tmp_path):
    two_tenants()
    conf = tmp_path / "conf"
    svc.apply_config(conf, reloader(fake_fs))
    before = snapshot(conf)
    result = svc.apply_config(conf, reloader(fake_fs))
    assert not result.rendered and not result.reloaded and result.written == []
    assert reloads(fake_fs) == ["api reloadxml"]  # still the first one only (FACTS.md: memory grows per reload)
    assert snapshot(conf) == before


def test_one_user_changed_rewrites_only_that_tenant(sdb, fake_fs, tmp_path):
    two_tenants()
    conf = tmp_path / "conf"
    svc.apply_config(conf, reloader(fake_fs))
    beta_inodes = {rel: (conf / rel).stat().st_ino for rel in render.tenant_paths("beta.example")}
    with transaction():
        users.edit_user("acme.example", "102", name="Ona Onaitė")
    result = svc.apply_config(conf, reloader(fake_fs))
    assert result.rendered == ["acme.example"]
    assert result.written == ["directory/acme.example.xml"]  # the other files rendered identical
    assert len(reloads(fake_fs)) == 2
    assert {rel: (conf / rel).stat().st_ino for rel in beta_inodes} == beta_inodes
    assert 'value="Ona Onaitė"' in (conf / "directory/acme.example.xml").read_text()
    # The previous version is kept.
    assert 'value="User 102"' in (conf / svc.PREVIOUS_DIR / "backup/directory/acme.example.xml").read_text()


def test_the_index_spares_reading_unchanged_files_and_a_damaged_one_is_ignored(sdb, fake_fs, tmp_path, monkeypatch):
    two_tenants()
    conf = tmp_path / "conf"
    svc.apply_config(conf, reloader(fake_fs))
    (conf / svc.OLD_INDEX_FILE).write_text("{}")  # an index as an older fsctl wrote it
    read_back = []
    check_file = svc.xmlcheck.check_file
    monkeypatch.setattr(svc.xmlcheck, "check_file", lambda path, rel: read_back.append(rel) or check_file(path, rel))

    def change(name):
        with transaction():
            users.edit_user("acme.example", "102", name=name)
        read_back.clear()
        svc.apply_config(conf, reloader(fake_fs))
        return sorted(read_back)

    acme = sorted(render.tenant_paths("acme.example"))
    assert change("First") == acme  # the changed tenant's staged files; the others' summaries from the index
    assert not (conf / svc.OLD_INDEX_FILE).exists()
    blob = bytearray((conf / svc.INDEX_FILE).read_bytes())
    blob[-1] ^= 1  # one bit of the payload flipped: its sha256 no longer matches
    (conf / svc.INDEX_FILE).write_bytes(bytes(blob))
    assert svc._load_index(conf) == {}
    assert change("Second") == sorted(svc.managed_files(conf))  # every file read once more; the apply went through
    assert 'value="Second"' in (conf / "directory/acme.example.xml").read_text()
    assert change("Third") == acme  # the index is whole again


def test_public_context_rerendered_only_when_dids_change(sdb, fake_fs, tmp_path):
    from fsctl.services import dids, queues

    two_tenants()
    conf = tmp_path / "conf"
    svc.apply_config(conf, reloader(fake_fs))
    with transaction():
        dids.add_did("beta.example", "+37053999999", "user:102", name="New")
        queues.remove_queue("acme.example", "600", force=True)  # its last queue: callcenter files go
    result = svc.apply_config(conf, reloader(fake_fs))
    assert render.PUBLIC_FILE in result.written
    assert "did-37053999999" in (conf / render.PUBLIC_FILE).read_text()
    assert result.deleted == [
        "callcenter/agents/acme.example.xml",
        "callcenter/queues/acme.example.xml",
        "callcenter/tiers/acme.example.xml",
    ]
    assert "queue-600" not in (conf / "dialplan/acme.example.xml").read_text()


def test_revision_bump_without_visible_change_records_without_reload(sdb, fake_fs, tmp_path):
    make_demo()
    conf = tmp_path / "conf"
    svc.apply_config(conf, reloader(fake_fs))
    old = applied()["acme.example"]
    with transaction():
        tenants.edit_tenant("acme.example", max_channels=10)  # not rendered
    result = svc.apply_config(conf, reloader(fake_fs))
    assert result.rendered == ["acme.example"] and not result.reloaded
    assert len(reloads(fake_fs)) == 1
    assert applied() == {"acme.example": old + 1} == revisions()


def test_suspended_and_deleted_tenants_files_are_removed(db, fake_fs, tmp_path):
    two_tenants()
    conf = tmp_path / "conf"
    svc.apply_config(conf, reloader(fake_fs))
    with transaction():
        tenants.edit_tenant("beta.example", state="suspended")
    result = svc.apply_config(conf, reloader(fake_fs))
    assert result.removed == ["beta.example"]
    assert result.deleted == sorted(render.tenant_paths("beta.example"))
    assert not any("beta" in rel for rel in svc.managed_files(conf))
    assert "37053" not in (conf / render.PUBLIC_FILE).read_text()
    rows = {r["domain"]: r for r in svc.config_status()}
    assert rows["beta.example"]["status"] == "removed" and rows["acme.example"]["status"] == "applied"
    with transaction():
        tenants.remove_tenant("acme.example", force=True)
    assert [(r["domain"], r["state"], r["status"], r["change"]) for r in svc.config_status()] == [
        ("acme.example", "deleted", "pending", "remove"),
        ("beta.example", "suspended", "removed", ""),
    ]
    svc.apply_config(conf, reloader(fake_fs))
    assert svc.managed_files(conf) == [render.PUBLIC_FILE]
    assert applied() == {}


# --- refusals: everything stays as it was ---------------------------------------------------


@pytest.mark.parametrize("case", ERROR_CASES)
def test_reloadxml_error_reply_restores_previous_files(sdb, fake_fs, tmp_path, case):
    make_demo("acme.example")
    conf = tmp_path / "conf"
    svc.apply_config(conf, reloader(fake_fs))
    before, was = snapshot(conf), applied()
    with transaction():
        users.edit_user("acme.example", "102", name="Changed")
    make_demo("beta.example", "Beta", did_prefix="+3705300000")  # new files too
    fake_fs.set_reloadxml(case)
    recorded = fake_fs.reloadxml_cases[case].split(b"\n\n", 1)[1].decode().strip()
    assert recorded.startswith("+OK [[error near line")
    with pytest.raises(OperationError) as info:
        svc.apply_config(conf, reloader(fake_fs))
    assert (
        str(info.value) == f"FreeSWITCH refused the configuration: {recorded}: previous files restored, nothing applied"
    )
    assert snapshot(conf) == before  # changed files restored, new ones deleted
    assert applied() == was
    assert {r["domain"]: r["status"] for r in svc.config_status()} == {
        "acme.example": "pending",
        "beta.example": "pending",
    }
    assert not (conf / svc.JOURNAL_DIR).exists()
    fake_fs.set_reloadxml("G0")
    assert svc.apply_config(conf, reloader(fake_fs)).rendered == ["acme.example", "beta.example"]


def test_err_reply_restores(sdb, fake_fs, tmp_path):
    make_demo()
    conf = tmp_path / "conf"
    fake_fs.set_api_reply("reloadxml", "-ERR reloadxml is busy\n")
    with pytest.raises(OperationError, match=r"^FreeSWITCH refused reloadxml: -ERR reloadxml is busy: previous"):
        svc.apply_config(conf, reloader(fake_fs))
    assert snapshot(conf) == {} and applied() == {}
    assert sorted(p.name for p in conf.iterdir()) == sorted(
        [svc.CACHE_DIR, svc.LOCK_FILE, svc.MODES_STAMP]
    )  # no folder left


def test_unreachable_timeout_and_bad_password(sdb, fake_fs, tmp_path):
    make_demo()
    conf = tmp_path / "conf"
    with pytest.raises(UnreachableError, match="unreachable"):
        svc.apply_config(conf, reloader(fake_fs, port=free_port()))
    fake_fs.fault("silent", on="api reloadxml")
    with pytest.raises(UnreachableError, match="did not answer reloadxml"):
        svc.apply_config(conf, reloader(fake_fs))
    with pytest.raises(OperationError, match="refused the Event Socket password"):
        svc.apply_config(conf, reloader(fake_fs, password="wrong"))
    assert snapshot(conf) == {} and applied() == {}


def test_invalid_xml_is_never_written(sdb, fake_fs, tmp_path):
    make_demo()
    custom = override_template(tmp_path / "templates", "directory.xml", 'name="a1-hash"', 'name="password"')
    conf = tmp_path / "conf"
    with pytest.raises(XmlCheckError, match="has no a1-hash"):
        svc.apply_config(conf, reloader(fake_fs), templates_dir=custom)
    assert snapshot(conf) == {} and reloads(fake_fs) == [] and applied() == {}


# --- mod_callcenter: callcenter_config after reloadxml --------------------------------------

Q600 = "600@acme.example"


def cc_sent(fake_fs, since=0):
    """The callcenter_config commands the fake received from `fake_fs.received[since:]` (without "api ")."""
    return [c[len("api ") :] for c in fake_fs.received[since:] if c.startswith("api callcenter_config ")]


def demo_adds():
    """What the demo tenant's queue 600 (agents 103 then 102) takes when mod_callcenter has none of it."""
    return [
        *agent_add_texts("102@acme.example", "102"),
        *agent_add_texts("103@acme.example", "103"),
        f"callcenter_config tier add {Q600} 102@acme.example 2 2",
        f"callcenter_config tier add {Q600} 103@acme.example 1 1",
    ]


def module_state(fake_fs):
    """The fake mod_callcenter's queues in memory, agents (with what the XML sets) and tiers."""
    m = fake_fs.callcenter
    return (
        set(m.queues),
        {a: {k: v for k, v in attrs.items() if k != "state"} for a, attrs in m.agents.items()},
        {k: (t["level"], t["position"]) for k, t in m.tiers.items()},
    )


def files_state(conf):
    """The same, as the callcenter files in the conf dir define it."""
    queues_, agents, tiers = set(), {}, {}
    for rel in svc.managed_files(conf):
        if cc.domain_of(rel):
            state = cc.read_state({rel.split("/")[1]: conf / rel})
            queues_ |= set(state.queues)
            tiers.update(state.tiers)
            agents.update(
                {
                    a: {"type": attrs["type"], **{key: attrs[attr] for attr, key in cc.AGENT_KEYS if attr in attrs}}
                    for a, attrs in state.agents.items()
                }
            )
    return queues_, agents, tiers


def apply_cc(conf, fake_fs):
    """apply_config; return (result, the callcenter_config commands it sent)."""
    mark = len(fake_fs.received)
    result = svc.apply_config(conf, reloader(fake_fs))
    assert [r["command"] for r in result.callcenter if r["status"] != "not sent"] == cc_sent(fake_fs, mark)
    return result, cc_sent(fake_fs, mark)


def test_callcenter_first_apply_loads_the_queue_then_agents_and_tiers(sdb, fake_fs, tmp_path):
    make_demo()
    conf = tmp_path / "conf"
    result, sent = apply_cc(conf, fake_fs)
    assert sent == [f"callcenter_config queue load {Q600}", *demo_adds()]
    assert {r["status"] for r in result.callcenter} == {"ok"} and result.callcenter_pending == []
    assert fake_fs.received.index("api reloadxml") < fake_fs.received.index(f"api {sent[0]}")
    assert fake_fs.accepted == 1  # reloadxml and callcenter_config on one connection
    assert module_state(fake_fs) == files_state(conf) and files_state(conf)[0] == {Q600}
    assert not (conf / cc.PENDING_FILE).exists()
    assert result.as_dict()["callcenter"]["commands"][0] == {
        "domain": "acme.example",
        "command": f"callcenter_config queue load {Q600}",
        "reply": "+OK",
        "status": "ok",
    }


def test_callcenter_nothing_changed_sends_no_command(sdb, fake_fs, tmp_path):
    make_demo()
    conf = tmp_path / "conf"
    apply_cc(conf, fake_fs)
    result, sent = apply_cc(conf, fake_fs)
    assert sent == [] and result.callcenter == [] and not result.reloaded
    with transaction():
        users.edit_user("acme.example", "102", name="Ona")  # directory only: reload, no callcenter command
    result, sent = apply_cc(conf, fake_fs)
    assert result.reloaded and sent == [] and result.callcenter == []


def test_callcenter_queue_changed_is_reloaded(sdb, fake_fs, tmp_path):
    make_demo()
    conf = tmp_path / "conf"
    apply_cc(conf, fake_fs)
    with transaction():
        queues.edit_queue("acme.example", "600", max_wait=300, strategy="round-robin")
    result, sent = apply_cc(conf, fake_fs)
    # (the dialplan too: the queue's own max-wait transfer)
    assert result.written == ["callcenter/queues/acme.example.xml", "dialplan/acme.example.xml"]
    assert sent == [f"callcenter_config queue reload {Q600}"]
    assert fake_fs.callcenter.queues[Q600] == 2  # read from the XML a second time


def test_callcenter_queue_added_and_removed(sdb, fake_fs, tmp_path):
    make_demo()
    conf = tmp_path / "conf"
    apply_cc(conf, fake_fs)
    with transaction():
        queues.add_queue("acme.example", "601", "Sales", agents=["104", "102"])
    _, sent = apply_cc(conf, fake_fs)
    assert sent == [
        "callcenter_config queue load 601@acme.example",
        *agent_add_texts("104@acme.example", "104"),
        "callcenter_config tier add 601@acme.example 102@acme.example 2 2",
        "callcenter_config tier add 601@acme.example 104@acme.example 1 1",
    ]
    assert module_state(fake_fs) == files_state(conf)
    with transaction():
        queues.remove_queue("acme.example", "601")
    _, sent = apply_cc(conf, fake_fs)
    assert sent == [
        "callcenter_config tier del 601@acme.example 102@acme.example",
        "callcenter_config tier del 601@acme.example 104@acme.example",
        "callcenter_config agent del 104@acme.example",
        "callcenter_config queue unload 601@acme.example",
    ]
    assert module_state(fake_fs) == files_state(conf) and fake_fs.callcenter.queues == {Q600: 1}


def test_callcenter_agent_added_and_removed(sdb, fake_fs, tmp_path):
    make_demo()
    conf = tmp_path / "conf"
    apply_cc(conf, fake_fs)
    with transaction():
        queues.edit_queue("acme.example", "600", agents=["103", "102", "104"])
    _, sent = apply_cc(conf, fake_fs)
    assert sent == [
        *agent_add_texts("104@acme.example", "104"),
        f"callcenter_config tier add {Q600} 104@acme.example 3 3",
    ]
    with transaction():
        queues.edit_queue("acme.example", "600", agents=["103", "104"])
    _, sent = apply_cc(conf, fake_fs)
    assert sent == [
        f"callcenter_config tier del {Q600} 102@acme.example",
        f"callcenter_config tier set level {Q600} 104@acme.example 2",
        f"callcenter_config tier set position {Q600} 104@acme.example 2",
        "callcenter_config agent del 102@acme.example",
    ]
    assert module_state(fake_fs) == files_state(conf)


def test_callcenter_tier_changed_is_set(sdb, fake_fs, tmp_path):
    make_demo()
    conf = tmp_path / "conf"
    apply_cc(conf, fake_fs)
    with transaction():
        queues.edit_queue("acme.example", "600", agents=["102", "103"])  # 102 now rings first
    result, sent = apply_cc(conf, fake_fs)
    assert result.written == ["callcenter/tiers/acme.example.xml"]
    assert sent == [
        f"callcenter_config tier set level {Q600} 102@acme.example 1",
        f"callcenter_config tier set position {Q600} 102@acme.example 1",
        f"callcenter_config tier set level {Q600} 103@acme.example 2",
        f"callcenter_config tier set position {Q600} 103@acme.example 2",
    ]
    assert module_state(fake_fs) == files_state(conf)


def test_callcenter_tenant_removed(sdb, fake_fs, tmp_path):
    two_tenants()
    conf = tmp_path / "conf"
    apply_cc(conf, fake_fs)
    with transaction():
        tenants.edit_tenant("beta.example", state="suspended")
    _, sent = apply_cc(conf, fake_fs)
    assert sent == [
        "callcenter_config tier del 600@beta.example 102@beta.example",
        "callcenter_config tier del 600@beta.example 103@beta.example",
        "callcenter_config agent del 102@beta.example",
        "callcenter_config agent del 103@beta.example",
        "callcenter_config queue unload 600@beta.example",
    ]
    with transaction():
        tenants.remove_tenant("acme.example", force=True)
    _, sent = apply_cc(conf, fake_fs)
    assert sent[-1] == f"callcenter_config queue unload {Q600}" and len(sent) == 5
    assert module_state(fake_fs) == (set(), {}, {}) == files_state(conf)


def test_callcenter_refused_keeps_the_xml_and_the_next_apply_retries(sdb, fake_fs, tmp_path):
    make_demo()
    conf = tmp_path / "conf"
    fake_fs.callcenter.xml_queues = set()  # callcenter.conf lacks the fsctl include lines
    with pytest.raises(cc.CallcenterError) as info:
        svc.apply_config(conf, reloader(fake_fs))
    assert info.value.exit_code == 1
    assert str(info.value) == (
        f"callcenter_config queue load {Q600}: -ERR Invalid Queue not found! (the queue is not in "
        "callcenter.conf: check its fsctl include lines (conf/freeswitch/includes.xml)); the XML is applied, "
        "callcenter changes pending for acme.example: fsctl apply sends them again"
    )
    result = info.value.result
    assert cc_sent(fake_fs) == [f"callcenter_config queue load {Q600}"]  # the tenant stops at its first failure
    assert [r["status"] for r in result.callcenter] == ["failed"] + ["not sent"] * 16
    assert result.reloaded and result.callcenter_pending == ["acme.example"]
    assert applied() == revisions() and "directory/acme.example.xml" in snapshot(conf)  # the XML stays applied
    assert cc.load_pending(conf)["acme.example"]["queues"] == {Q600}

    fake_fs.callcenter.xml_queues = None  # the operator fixed callcenter.conf
    result, sent = apply_cc(conf, fake_fs)  # nothing to render: only the pending tenant
    assert not result.rendered and not result.reloaded and result.callcenter_retried == ["acme.example"]
    assert sent == [f"callcenter_config queue reload {Q600}", *demo_adds()]
    assert module_state(fake_fs) == files_state(conf)
    assert not (conf / cc.PENDING_FILE).exists() and result.callcenter_pending == []
    assert apply_cc(conf, fake_fs)[1] == []


def test_callcenter_retry_removes_what_a_half_done_attempt_left(sdb, fake_fs, tmp_path):
    make_demo()
    conf = tmp_path / "conf"
    fake_fs.callcenter.fail[f"callcenter_config tier add {Q600} 102@acme.example 2 2"] = "-ERR Unknown Error!\n"
    with pytest.raises(
        cc.CallcenterError,
        match=r"^callcenter_config tier add 600@acme.example 102@acme.example "
        r"2 2: -ERR Unknown Error!; the XML is applied",
    ):
        svc.apply_config(conf, reloader(fake_fs))
    assert "102@acme.example" in fake_fs.callcenter.agents  # added before the failure
    fake_fs.callcenter.fail.clear()
    with transaction():
        queues.edit_queue("acme.example", "600", agents=["103"])  # 102 leaves before the retry
    result, sent = apply_cc(conf, fake_fs)
    assert result.rendered == ["acme.example"] and result.callcenter_retried == ["acme.example"]
    assert (
        sent
        == [
            f"callcenter_config queue reload {Q600}",
            "callcenter_config agent add 103@acme.example callback",  # -ERR Agent already exist!
            "callcenter_config agent set type 103@acme.example callback",
            *agent_add_texts("103@acme.example", "103")[1:],
            f"callcenter_config tier del {Q600} 102@acme.example",
            f"callcenter_config tier add {Q600} 103@acme.example 1 1",  # never sent the first time
            "callcenter_config agent del 102@acme.example",
        ]
    )
    assert [r["status"] for r in result.callcenter].count("exists") == 1
    assert module_state(fake_fs) == files_state(conf) and "102@acme.example" not in fake_fs.callcenter.agents


def test_callcenter_connection_lost_exits_3_and_retries(sdb, fake_fs, tmp_path):
    make_demo()
    conf = tmp_path / "conf"
    fake_fs.fault("drop", on="api callcenter_config agent add")
    with pytest.raises(
        cc.CallcenterError,
        match=r"^callcenter_config agent add 102@acme.example callback: no answer "
        r"\(FreeSWITCH connection lost",
    ) as info:
        svc.apply_config(conf, reloader(fake_fs))
    assert info.value.exit_code == 3 and info.value.result.callcenter_pending == ["acme.example"]
    assert applied() == revisions()
    result, sent = apply_cc(conf, fake_fs)
    assert result.callcenter_retried == ["acme.example"] and sent[0] == f"callcenter_config queue reload {Q600}"
    assert module_state(fake_fs) == files_state(conf) and not (conf / cc.PENDING_FILE).exists()


def test_callcenter_module_not_loaded(sdb, fake_fs, tmp_path):
    make_demo()
    fake_fs.callcenter = None  # FreeSWITCH answers like for any unknown API command
    with pytest.raises(
        cc.CallcenterError,
        match=r"^callcenter_config queue load 600@acme.example: -ERR "
        r"callcenter_config Command not found! \(mod_callcenter is not "
        r"loaded\); the XML is applied",
    ):
        svc.apply_config(tmp_path / "conf", reloader(fake_fs))


def test_callcenter_interrupted_while_sending_is_pending(sdb, fake_fs, tmp_path):
    make_demo()
    conf = tmp_path / "conf"
    esl = reloader(fake_fs)

    def interrupted(command):
        raise KeyboardInterrupt  # the process is stopped after reloadxml, before the first command

    esl.api = lambda command: interrupted(command) if command != "reloadxml" else type(esl).api(esl, command)
    with pytest.raises(KeyboardInterrupt):
        svc.apply_config(conf, esl)
    assert applied() == revisions() and cc_sent(fake_fs) == []
    assert set(cc.load_pending(conf)) == {"acme.example"}  # written before the first command
    result, sent = apply_cc(conf, fake_fs)
    assert sent == [f"callcenter_config queue reload {Q600}", *demo_adds()]
    assert module_state(fake_fs) == files_state(conf)


def test_callcenter_bad_file_refuses_the_apply_before_writing(sdb, fake_fs, tmp_path):
    make_demo()
    custom = override_template(tmp_path / "templates", "callcenter_agents.xml", 'type="callback" ', "")
    conf = tmp_path / "conf"
    # The validator refuses it (mod_callcenter would skip the agent), before anything is written.
    with pytest.raises(
        XmlCheckError, match="callcenter/agents/acme.example.xml line 2: agent 102@acme.example has no type"
    ):
        svc.apply_config(conf, reloader(fake_fs), templates_dir=custom)
    assert snapshot(conf) == {} and reloads(fake_fs) == [] and cc_sent(fake_fs) == []


# --- crash between writes -------------------------------------------------------------------

CRASH = textwrap.dedent("""
    import os, sys
    from fsctl.services import apply
    from fsctl import db
    db.open_database(sys.argv[1])
    writes = []
    def crash(rel):
        writes.append(rel)
        if len(writes) == 2:
            os._exit(9)  # the process dies between two file writes
    apply.apply_config(sys.argv[2], lambda: "+OK [Success]", after_write=crash)
""")


def test_crash_between_writes_is_rolled_back_by_the_next_apply(sqlite_url, fake_fs, tmp_path):
    from fsctl import db as fsdb

    fsdb.open_database(sqlite_url)
    make_demo()
    conf = tmp_path / "conf"
    svc.apply_config(conf, reloader(fake_fs))
    before = snapshot(conf)
    with transaction():
        users.edit_user("acme.example", "102", name="Changed")
        users.edit_user("acme.example", "105", forward={"always": "voicemail:101"})  # dialplan changes too
    proc = subprocess.run([sys.executable, "-c", CRASH, sqlite_url, str(conf)], cwd=REPO, capture_output=True)
    assert proc.returncode == 9, proc.stderr
    assert (conf / svc.JOURNAL_DIR / svc.MANIFEST).exists()
    assert snapshot(conf) != before  # half-applied: one file new, the other old
    # The next apply first restores the previous files, then applies and reloads.
    assert svc.recover(conf) == ["dialplan/acme.example.xml", "directory/acme.example.xml"]
    assert snapshot(conf) == before
    result = svc.apply_config(conf, reloader(fake_fs))
    assert result.written == ["dialplan/acme.example.xml", "directory/acme.example.xml"] and result.reloaded
    assert 'value="Changed"' in (conf / "directory/acme.example.xml").read_text()


def test_apply_after_crash_recovers_in_one_go(sqlite_url, fake_fs, tmp_path):
    from fsctl import db as fsdb

    fsdb.open_database(sqlite_url)
    make_demo()
    conf = tmp_path / "conf"
    svc.apply_config(conf, reloader(fake_fs))
    with transaction():
        users.edit_user("acme.example", "105", forward={"always": "voicemail:101"})
        users.edit_user("acme.example", "102", name="Changed")
    subprocess.run([sys.executable, "-c", CRASH, sqlite_url, str(conf)], cwd=REPO, capture_output=True)
    result = svc.apply_config(conf, reloader(fake_fs))
    assert result.recovered == ["dialplan/acme.example.xml", "directory/acme.example.xml"]
    assert result.reloaded and len(reloads(fake_fs)) == 2
    assert not (conf / svc.JOURNAL_DIR).exists()


class Canned:
    """A reload() that always succeeds and an api() that always says +OK, each calling `probe`."""

    def __init__(self, probe):
        self.probe = probe

    def __call__(self):
        self.probe("reloadxml")
        return "+OK [Success]"

    def api(self, command):
        self.probe(command)
        return "+OK\n"


def test_apply_holds_an_exclusive_lock_while_writing(sdb, tmp_path):
    make_demo()
    conf = tmp_path / "conf"
    seen = []

    def probe(rel):
        with open(conf / svc.LOCK_FILE, "a+") as fh:
            try:
                fcntl.flock(fh.fileno(), fcntl.LOCK_EX | fcntl.LOCK_NB)
                seen.append("free")
            except BlockingIOError:
                seen.append("locked")

    result = svc.apply_config(conf, Canned(probe), after_write=probe)
    assert len(seen) == len(result.written) + 1 + len(result.callcenter) and set(seen) == {"locked"}


# --- the commands ---------------------------------------------------------------------------


@pytest.fixture
def cli(fsctl_sqlite, fake_fs, tmp_path):
    fsctl_sqlite.env.update(
        {
            "FSCTL_CONF_DIR": str(tmp_path / "conf"),
            "FSCTL_ESL_HOST": fake_fs.host,
            "FSCTL_ESL_PORT": str(fake_fs.port),
            "FSCTL_ESL_TIMEOUT": "0.5",
        }
    )
    return fsctl_sqlite


def test_cli_apply_status_and_render(cli, fake_fs, tmp_path):
    cli("tenant", "add", "acme.example", "--name", "ACME")
    cli("user", "add", "acme.example", "101", "--name", "Ona")
    rows = json.loads(cli("status", "--json").stdout)
    assert rows == [
        {
            "domain": "acme.example",
            "state": "active",
            "applied_revision": None,
            "revision": 2,
            "status": "pending",
            "change": "render",
            "applied_at": None,
        }
    ]
    result = cli("apply")
    assert result.stderr.splitlines() == [
        "1 tenants rendered, 0 removed, 3 files written, 0 deleted",
        "reloadxml: +OK [Success]",
    ]
    assert (
        cli("apply").stderr.strip() == "nothing to apply: FreeSWITCH already runs the current configuration (no reload)"
    )
    assert json.loads(cli("status", "--json").stdout)[0]["status"] == "applied"
    out = tmp_path / "rendered"
    assert cli("render", "--out", str(out)).stderr.strip() == f"3 files rendered into {out} and validated"
    assert (out / "directory/acme.example.xml").is_file()
    (out / "notes.txt").write_text("mine")
    cli("tenant", "add", "beta.example", "--name", "Beta")
    assert cli("render", "--out", str(out)).stderr.strip() == f"5 files rendered into {out} and validated"
    cli("tenant", "edit", "beta.example", "--state", "suspended")
    assert (
        cli("render", "--out", str(out)).stderr.strip()
        == f"3 files rendered into {out} and validated (2 stale files of an earlier render removed)"
    )
    assert not list(out.rglob("beta.example*")) and (out / "notes.txt").read_text() == "mine"


def test_cli_apply_refused_and_unreachable_exit_codes(cli, fake_fs, tmp_path):
    cli("tenant", "add", "acme.example", "--name", "ACME")
    fake_fs.set_reloadxml("M1")
    result = cli("apply", ok=False)
    assert result.exit_code == 1
    assert (
        result.stderr.strip() == "Error: FreeSWITCH refused the configuration: +OK [[error near line 6677]: "
        "unexpected closing tag </usr>]: previous files restored, nothing applied"
    )
    cli.env["FSCTL_ESL_PORT"] = str(free_port())
    result = cli("apply", ok=False)
    assert result.exit_code == 3 and result.stderr.startswith("Error: FreeSWITCH 127.0.0.1:")
    assert svc.managed_files(tmp_path / "conf") == []
    assert json.loads(cli("status", "--json").stdout)[0]["status"] == "pending"


def test_cli_apply_sends_callcenter_commands_and_retries_refused_ones(cli, fake_fs, tmp_path):
    cli("tenant", "add", "acme.example", "--name", "ACME")
    cli("user", "add", "acme.example", "101", "--name", "Ona")
    cli("user", "add", "acme.example", "102", "--name", "Jonas")
    cli("queue", "add", "acme.example", "600", "--name", "Support", "--agent", "101", "--agent", "102")
    fake_fs.callcenter.fail[f"callcenter_config tier add {Q600} 102@acme.example 2 2"] = "-ERR Unknown Error!\n"
    result = cli("apply", ok=False)
    assert result.exit_code == 1
    assert result.stderr.splitlines() == [
        "1 tenants rendered, 0 removed, 6 files written, 0 deleted",
        "reloadxml: +OK [Success]",
        "callcenter: 16 of 17 commands done for acme.example; not done, sent again by the next fsctl apply "
        "(or by hand with fs_cli -x):",
        f"  callcenter_config tier add {Q600} 102@acme.example 2 2",
        f"Error: callcenter_config tier add {Q600} 102@acme.example 2 2: -ERR Unknown Error!; the XML is applied, "
        "callcenter changes pending for acme.example: fsctl apply sends them again",
    ]
    row = json.loads(cli("status", "--json").stdout)[0]
    # The XML is applied (its revision recorded); mod_callcenter is not there yet.
    assert (row["applied_revision"], row["status"], row["change"]) == (row["revision"], "pending", "callcenter")

    fake_fs.callcenter.fail.clear()
    mark = len(fake_fs.received)
    result = cli("apply", "--json")
    data = json.loads(result.stdout)
    assert data["rendered"] == [] and data["reloaded"] is False
    assert data["callcenter"]["retried"] == ["acme.example"] and data["callcenter"]["pending"] == []
    assert [c["command"] for c in data["callcenter"]["commands"]] == cc_sent(fake_fs, mark)
    assert cc_sent(fake_fs, mark)[0] == f"callcenter_config queue reload {Q600}"
    assert module_state(fake_fs) == files_state(tmp_path / "conf")
    assert json.loads(cli("status", "--json").stdout)[0]["status"] == "applied"

    cli("queue", "edit", "acme.example", "600", "--max-wait", "60")
    assert cli("apply").stderr.splitlines() == [
        "1 tenants rendered, 0 removed, 2 files written, 0 deleted",  # the queue and its max-wait transfer
        "reloadxml: +OK [Success]",
        "callcenter: 1 commands for acme.example: +OK",
    ]
    assert cc_sent(fake_fs)[-1] == f"callcenter_config queue reload {Q600}"
    assert (
        cli("apply").stderr.strip() == "nothing to apply: FreeSWITCH already runs the current configuration (no reload)"
    )


def test_cli_apply_callcenter_unreachable_exits_3(cli, fake_fs, tmp_path):
    cli("tenant", "add", "acme.example", "--name", "ACME")
    cli("user", "add", "acme.example", "101", "--name", "Ona")
    cli("queue", "add", "acme.example", "600", "--name", "Support", "--agent", "101")
    fake_fs.fault("silent", on="api callcenter_config")
    result = cli("apply", ok=False)
    assert result.exit_code == 3
    assert result.stderr.splitlines()[-1].startswith(
        f"Error: callcenter_config queue load {Q600}: no answer (api callcenter_config queue load {Q600}: "
        "no reply from FreeSWITCH within the timeout); the XML is applied"
    )
    fake_fs.clear_faults()
    cli.env["FSCTL_ESL_PORT"] = str(free_port())  # FreeSWITCH down: still pending
    result = cli("apply", ok=False)
    assert result.exit_code == 3 and "no answer (cannot connect to FreeSWITCH" in result.stderr
    cli.env["FSCTL_ESL_PORT"] = str(fake_fs.port)
    assert cli("apply").stderr.splitlines() == [
        "callcenter: 9 commands for acme.example (pending since an earlier apply): +OK"
    ]


def test_commands_have_help(cli):
    for name in ("render", "apply", "status"):
        result = cli(name, "--help")
        assert result.exit_code == 0 and "Usage:" in result.stdout


# --- R-ADM instant activation: --apply / auto_apply ------------------------------------------


def test_cli_auto_apply_makes_a_change_live_at_once(cli, fake_fs, tmp_path):
    cli.env["FSCTL_AUTO_APPLY"] = "true"
    result = cli("tenant", "add", "acme.example", "--name", "ACME")
    assert result.stderr.splitlines()[-2:] == [
        "1 tenants rendered, 0 removed, 3 files written, 0 deleted",
        "reloadxml: +OK [Success]",
    ]
    result = cli("user", "add", "acme.example", "101", "--name", "Ona")
    assert "reloadxml: +OK [Success]" in result.stderr
    assert json.loads(cli("status", "--json").stdout)[0]["status"] == "applied"
    assert (tmp_path / "conf/directory/acme.example.xml").read_text().count("<user id=") == 1
    # Read-only commands, and changes to nothing, apply nothing.
    mark = len(reloads(fake_fs))
    cli("user", "list", "acme.example")
    cli("status")
    assert len(reloads(fake_fs)) == mark
    # --no-apply for one command; the next applying command takes it along.
    cli("--no-apply", "user", "add", "acme.example", "102", "--name", "Jonas")
    assert len(reloads(fake_fs)) == mark
    assert json.loads(cli("status", "--json").stdout)[0]["status"] == "pending"
    cli("user", "edit", "acme.example", "101", "--name", "Ona O.")
    assert len(reloads(fake_fs)) == mark + 1
    assert (tmp_path / "conf/directory/acme.example.xml").read_text().count("<user id=") == 2


def test_cli_apply_flag_when_freeswitch_is_down_keeps_the_change(cli, fake_fs, tmp_path):
    cli.env["FSCTL_ESL_PORT"] = str(free_port())
    result = cli("--apply", "tenant", "add", "acme.example", "--name", "ACME", ok=False)
    assert result.exit_code == 3
    assert result.stderr.splitlines()[-1].startswith("Error: saved, not applied: FreeSWITCH 127.0.0.1:")
    assert result.stderr.rstrip().endswith("fsctl apply applies it")
    rows = json.loads(cli("status", "--json").stdout)
    assert [(r["domain"], r["status"]) for r in rows] == [("acme.example", "pending")]  # saved, not applied
    assert svc.managed_files(tmp_path / "conf") == []
    cli.env["FSCTL_ESL_PORT"] = str(fake_fs.port)
    assert "reloadxml: +OK [Success]" in cli("apply").stderr


def test_auto_apply_setting_is_a_boolean(cli):
    cli.env["FSCTL_AUTO_APPLY"] = "maybe"
    result = cli("tenant", "list", ok=False)
    assert result.exit_code == 2
    assert result.stderr.strip() == 'Error: setting auto_apply "maybe": must be true or false'


# --- render --out: only fsctl's own files, each written atomically ----------------------------


def test_render_out_never_touches_files_it_did_not_write(cli, tmp_path):
    """It deleted every *.xml of the layout it had not just written: a stock directory/default.xml too."""
    cli("tenant", "add", "acme.example", "--name", "ACME")
    out = tmp_path / "stock"
    for rel in ("directory/default.xml", "dialplan/public/00_inbound_did.xml"):
        (out / rel).parent.mkdir(parents=True, exist_ok=True)
        (out / rel).write_text("<include/>\n")
    result = cli("render", "--out", str(out), ok=False)
    assert result.exit_code == 2
    assert result.stderr == (
        f'Error: --out "{out}": holds FreeSWITCH XML fsctl did not write (dialplan/public/'
        "00_inbound_did.xml, directory/default.xml): render into an empty folder or one fsctl "
        "rendered into\n"
    )
    assert sorted(str(p.relative_to(out)) for p in out.rglob("*") if p.is_file()) == [
        "dialplan/public/00_inbound_did.xml",
        "directory/default.xml",
    ]
    # into a folder of its own: its files are listed, and only they are ever removed
    mine = tmp_path / "mine"
    cli("render", "--out", str(mine))
    assert json.loads((mine / ".fsctl-render.json").read_text())["files"] == [
        "dialplan/acme.example.xml",
        "dialplan/public.xml",
        "directory/acme.example.xml",
    ]
    (mine / "directory" / "added-by-hand.xml").write_text("<include/>\n")
    result = cli("render", "--out", str(mine), ok=False)
    assert result.exit_code == 2 and "(directory/added-by-hand.xml)" in result.stderr
    assert (mine / "directory" / "added-by-hand.xml").exists()


def test_render_out_files_are_group_readable_only(cli, tmp_path):
    """Rendered directory files carry a1-hashes and PINs: they were forced to 0644."""
    cli("tenant", "add", "acme.example", "--name", "ACME")
    cli("user", "add", "acme.example", "101", "--name", "Ona")
    out = tmp_path / "rendered"
    old = os.umask(0o022)
    try:
        cli("render", "--out", str(out))
        cli("apply")
    finally:
        os.umask(old)
    for folder in (out, tmp_path / "conf"):
        modes = {str(p.relative_to(folder)): stat.S_IMODE(p.stat().st_mode) for p in folder.rglob("*.xml")}
        assert modes and set(modes.values()) == {0o640}, modes
    cli("user", "edit", "acme.example", "101", "--name", "Ona O.")
    cli("apply")  # the previous files are kept in .fsctl-previous: as private as the others
    previous = list((tmp_path / "conf" / ".fsctl-previous").rglob("*.xml"))
    assert previous and {stat.S_IMODE(p.stat().st_mode) for p in previous} == {0o640}
    # a conf dir an older fsctl wrote (0644): its next apply makes every file 0640, changed or not
    conf = tmp_path / "conf"
    for path in [*conf.rglob("*.xml")]:
        os.chmod(path, 0o644)
    (conf / svc.MODES_STAMP).unlink()
    cli("user", "edit", "acme.example", "101", "--name", "Ona")
    cli("apply")
    assert {stat.S_IMODE(p.stat().st_mode) for p in conf.rglob("*.xml")} == {0o640}


PUBLIC = "dialplan/public.xml"


def test_render_out_killed_mid_file_leaves_the_previous_file_whole(cli, tmp_path):
    """`kill -9` during a render left a half-written (unparsable) file: each file is written aside, then renamed."""
    cli("tenant", "add", "acme.example", "--name", "ACME")
    out = tmp_path / "rendered"
    cli("render", "--out", str(out))
    before = (out / PUBLIC).read_bytes()
    # The public context is written as it is rendered (streamed): an endless one is caught mid-file.
    slow = tmp_path / "slow-templates"
    slow.mkdir()
    (slow / "packaged_dialplan.xml").write_text((render.packaged_templates_dir() / "dialplan.xml").read_text())
    (slow / "dialplan.xml").write_text(
        '{% if context == "fsctl-public" %}<include>\n{% for i in range(10 ** 9) %}<!-- {{ i }} padding -->\n'
        '{% endfor %}</include>\n{% else %}{% include "packaged_dialplan.xml" %}{% endif %}'
    )
    env = dict(os.environ, FSCTL_CONFIG="", FSCTL_TEMPLATES_DIR=str(slow), FSCTL_DATABASE=cli.url)
    proc = subprocess.Popen(
        [sys.executable, "-c", "from fsctl.cli import main; main()", "render", "--out", str(out)],
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        deadline = time.monotonic() + 120
        while not any(p.stat().st_size > 1 << 20 for p in (out / "dialplan").iterdir()):  # well into the file
            assert proc.poll() is None and time.monotonic() < deadline, "the render never got going"
            time.sleep(0.05)
    finally:
        proc.kill()
        proc.wait(30)
    assert (out / PUBLIC).read_bytes() == before
    result = cli("render", "--out", str(out))  # the next render cleans up and goes on
    assert result.stderr.strip() == f"3 files rendered into {out} and validated"
    assert sorted(p.name for p in (out / "dialplan").iterdir()) == ["acme.example.xml", "public.xml"]
