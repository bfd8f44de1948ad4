"""Provisioning through the CLI, on SQLite and on the real PostgreSQL server.

Each validation rule has a test that checks the exit code, the exact one-line message and
that the database did not change.
"""

import json

import pytest


def make_tenant(fsctl, domain="acme.example", users=("101", "102", "103")):
    fsctl("tenant", "add", domain, "--name", "ACME", "--tz", "Europe/Vilnius")
    for n in users:
        fsctl("user", "add", domain, n, "--name", f"User {n}")


def data(fsctl, *args):
    return json.loads(fsctl(*args, "--json").stdout)


def refused(fsctl, *args, code=2):
    """Run a command that must fail; return its one-line message."""
    result = fsctl(*args, ok=False)
    assert result.exit_code == code, (result.exit_code, result.stderr, result.stdout)
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1, result.stderr
    assert lines[0].startswith("Error: ")
    assert "Traceback" not in result.output
    return lines[0]


# --- tenants -------------------------------------------------------------------------------


def test_tenant_add_list_show_edit_remove(fsctl):
    fsctl("tenant", "add", "Acme.Example", "--name", "ACME & <Co> $x", "--tz", "Europe/Vilnius")
    rows = data(fsctl, "tenant", "list")
    assert rows == [
        {
            "domain": "acme.example",
            "name": "ACME & <Co> $x",
            "timezone": "Europe/Vilnius",
            "state": "active",
            "max_users": None,
            "max_channels": None,
            "fallback": "hangup",
            "gateway": "default",
            "outbound_name": None,
            "revision": 1,
            "users": 0,
        }
    ]
    fsctl("tenant", "edit", "acme.example", "--state", "suspended", "--max-users", "5")
    shown = data(fsctl, "tenant", "show", "acme.example")
    assert shown["state"] == "suspended" and shown["max_users"] == 5 and shown["revision"] == 2
    fsctl("tenant", "remove", "acme.example")
    assert data(fsctl, "tenant", "list") == []


@pytest.mark.parametrize(
    "domain",
    ["acme", "-acme.example", "acme..example", "ac me.example", "a" * 64 + ".example", "acme.example/x", "acme.123"],
)
def test_tenant_domain_rule(fsctl, domain):
    msg = refused(fsctl, "tenant", "add", "--name", "x", "--", domain)
    assert msg.startswith("Error: tenant.domain ")
    assert "must be a DNS name" in msg
    assert data(fsctl, "tenant", "list") == []


def test_tenant_duplicate_and_timezone(fsctl):
    fsctl("tenant", "add", "acme.example", "--name", "A")
    assert (
        refused(fsctl, "tenant", "add", "acme.example", "--name", "B") == 'Error: tenant "acme.example" already exists'
    )
    assert (
        refused(fsctl, "tenant", "add", "b.example", "--name", "B", "--tz", "Mars/Base")
        == 'Error: tenant.timezone "Mars/Base": must be an IANA time zone like Europe/Vilnius'
    )
    assert refused(fsctl, "tenant", "show", "nope.example") == 'Error: tenant "nope.example" does not exist'


def test_tenant_name_rules(fsctl):
    assert refused(fsctl, "tenant", "add", "a.example", "--name", "  ") == 'Error: tenant.name "  ": must not be empty'
    assert (
        refused(fsctl, "tenant", "add", "a.example", "--name", "x\x01y")
        == 'Error: tenant.name "x\x01y": must be one line without control characters (tabs and line breaks included)'
    )


def test_tenant_remove_needs_force_with_users(fsctl):
    make_tenant(fsctl)
    assert "has 3 users: use --force" in refused(fsctl, "tenant", "remove", "acme.example")
    fsctl("tenant", "remove", "acme.example", "--force")
    assert data(fsctl, "tenant", "list") == []


def test_max_users_limit(fsctl):
    fsctl("tenant", "add", "acme.example", "--name", "A", "--max-users", "1")
    fsctl("user", "add", "acme.example", "101", "--name", "One")
    assert (
        refused(fsctl, "user", "add", "acme.example", "102", "--name", "Two")
        == 'Error: user.number "102": tenant acme.example is limited to 1 users'
    )


# --- users ---------------------------------------------------------------------------------


def test_user_password_generated_and_hidden(fsctl):
    make_tenant(fsctl, users=("101",))
    result = fsctl("user", "show", "acme.example", "101", "--json")
    assert "sip_password" not in json.loads(result.stdout)
    secret = data(fsctl, "user", "show", "acme.example", "101", "--show-secrets")["sip_password"]
    assert len(secret) >= 20 and secret not in result.output
    other = data(fsctl, "user", "list", "acme.example")
    assert secret not in json.dumps(other)


@pytest.mark.parametrize("number", ["1", "1234567", "12a", "", "+101"])
def test_user_number_rule(fsctl, number):
    make_tenant(fsctl, users=())
    msg = refused(fsctl, "user", "add", "acme.example", number, "--name", "x")
    assert msg == f'Error: user.number "{number}": must be 2 to 6 digits'
    assert data(fsctl, "user", "list", "acme.example") == []


def test_numbers_unique_across_kinds(fsctl):
    make_tenant(fsctl, users=("101",))
    fsctl("group", "add", "acme.example", "200", "--name", "G", "--member", "101")
    assert (
        refused(fsctl, "user", "add", "acme.example", "200", "--name", "x")
        == 'Error: user.number "200": already used by group 200 in acme.example'
    )
    assert (
        refused(fsctl, "queue", "add", "acme.example", "101", "--name", "Q")
        == 'Error: queue.number "101": already used by user 101 in acme.example'
    )
    assert (
        refused(fsctl, "conference", "add", "acme.example", "200", "--name", "C")
        == 'Error: conference.number "200": already used by group 200 in acme.example'
    )
    assert (
        refused(fsctl, "ivr", "add", "acme.example", "101", "--name", "I")
        == 'Error: ivr.number "101": already used by user 101 in acme.example'
    )


def test_numbers_are_per_tenant(fsctl):
    make_tenant(fsctl, "a.example", users=("101",))
    make_tenant(fsctl, "b.example", users=("101",))
    assert [u["number"] for u in data(fsctl, "user", "list", "b.example")] == ["101"]


def test_weak_password_refused_and_not_echoed(fsctl):
    make_tenant(fsctl, users=())
    msg = refused(fsctl, "user", "add", "acme.example", "101", "--name", "x", "--password", "short")
    assert msg == 'Error: user.password "***": must be 12 to 128 printable ASCII characters without spaces'


def test_forwarding_rules(fsctl):
    make_tenant(fsctl)
    fsctl(
        "user",
        "edit",
        "acme.example",
        "101",
        "--forward",
        "busy",
        "voicemail:101",
        "--forward",
        "no_answer",
        "user:102",
    )
    assert data(fsctl, "user", "show", "acme.example", "101")["forward"] == {
        "busy": "voicemail:101",
        "no_answer": "user:102",
    }
    assert (
        refused(fsctl, "user", "edit", "acme.example", "101", "--forward", "always", "user:101")
        == 'Error: user.forward.always "user:101": a user cannot forward to themself'
    )
    assert (
        refused(fsctl, "user", "edit", "acme.example", "101", "--forward", "always", "user:999")
        == 'Error: user.forward.always "user:999": user 999 does not exist in acme.example'
    )
    assert "must be a destination like" in refused(
        fsctl, "user", "edit", "acme.example", "101", "--forward", "always", "somewhere"
    )
    fsctl("user", "edit", "acme.example", "101", "--unforward", "busy")
    assert data(fsctl, "user", "show", "acme.example", "101")["forward"] == {"no_answer": "user:102"}


def test_destination_must_belong_to_same_tenant(fsctl):
    make_tenant(fsctl, "a.example", users=("101",))
    make_tenant(fsctl, "b.example", users=("201",))
    assert (
        refused(fsctl, "user", "edit", "a.example", "101", "--forward", "always", "user:201")
        == 'Error: user.forward.always "user:201": user 201 does not exist in a.example'
    )


def test_remove_referenced_user_refused_then_forced(fsctl):
    make_tenant(fsctl)
    fsctl("user", "edit", "acme.example", "101", "--forward", "busy", "user:102")
    fsctl("did", "add", "acme.example", "+37052000000", "--to", "user:102")
    msg = refused(fsctl, "user", "remove", "acme.example", "102")
    assert msg == (
        "Error: user 102 is still referenced by user 101 fwd_busy, did +37052000000: "
        "re-point those first or use --force"
    )
    assert len(data(fsctl, "user", "list", "acme.example")) == 3
    result = fsctl("user", "remove", "acme.example", "102", "--force")
    assert "re-pointed did +37052000000: user:102 -> hangup" in result.stderr
    assert data(fsctl, "did", "show", "acme.example", "+37052000000")["destination"] == "hangup"


# --- groups (R-SEQ) ------------------------------------------------------------------------


def test_sequential_group(fsctl):
    make_tenant(fsctl)
    fsctl(
        "group",
        "add",
        "acme.example",
        "200",
        "--name",
        "Sales",
        "--strategy",
        "sequential",
        "--order",
        "rotating",
        "--ring-time",
        "20",
        "--member",
        "103",
        "--member",
        "101",
        "--fallback",
        "voicemail:102",
    )
    assert data(fsctl, "group", "show", "acme.example", "200") == {
        "number": "200",
        "name": "Sales",
        "strategy": "sequential",
        "order": "rotating",
        "ring_time": 20,
        "members": ["103", "101"],
        "fallback": "voicemail:102",
    }


@pytest.mark.parametrize("ring_time", ["15", "0", "60", "abc"])
def test_sequential_ring_time_rule(fsctl, ring_time):
    make_tenant(fsctl)
    msg = refused(
        fsctl,
        "group",
        "add",
        "acme.example",
        "200",
        "--name",
        "S",
        "--strategy",
        "sequential",
        "--ring-time",
        ring_time,
        "--member",
        "101",
    )
    expected = "must be a whole number" if ring_time == "abc" else "must be one of 10, 20, 30"
    assert msg == f'Error: group.ring_time "{ring_time}": {expected}'
    assert data(fsctl, "group", "list", "acme.example") == []


def test_sequential_at_most_12_members(fsctl):
    numbers = [str(110 + i) for i in range(13)]
    make_tenant(fsctl, users=numbers)
    args = ["group", "add", "acme.example", "200", "--name", "S", "--strategy", "sequential", "--ring-time", "10"]
    for n in numbers:
        args += ["--member", n]
    assert refused(fsctl, *args) == 'Error: group.members "13": a sequential group has at most 12 members'
    fsctl(*args[:-2])  # 12 are fine
    assert len(data(fsctl, "group", "show", "acme.example", "200")["members"]) == 12
    assert (
        refused(fsctl, "group", "edit", "acme.example", "200", "--add-member", numbers[-1])
        == 'Error: group.members "13": a sequential group has at most 12 members'
    )


def test_sequential_member_with_forwarding_refused(fsctl):
    make_tenant(fsctl)
    fsctl("user", "edit", "acme.example", "102", "--forward", "no_answer", "voicemail:102")
    msg = refused(
        fsctl,
        "group",
        "add",
        "acme.example",
        "200",
        "--name",
        "S",
        "--strategy",
        "sequential",
        "--member",
        "101",
        "--member",
        "102",
    )
    assert msg == (
        'Error: group.member "102": user 102 has forwarding active (no_answer); members of a '
        "sequential group cannot forward (R-SEQ)"
    )
    assert data(fsctl, "group", "list", "acme.example") == []


def test_forwarding_cannot_be_switched_on_for_a_sequential_member(fsctl):
    make_tenant(fsctl)
    fsctl("group", "add", "acme.example", "200", "--name", "S", "--strategy", "sequential", "--member", "101")
    msg = refused(fsctl, "user", "edit", "acme.example", "101", "--forward", "busy", "user:102")
    assert msg == (
        'Error: user.forward.busy "user:102": user 101 is in sequential group 200; its members cannot forward (R-SEQ)'
    )
    assert data(fsctl, "user", "show", "acme.example", "101")["forward"] == {}


def test_switching_group_to_sequential_checks_members(fsctl):
    make_tenant(fsctl)
    fsctl("user", "edit", "acme.example", "102", "--forward", "always", "user:103")
    fsctl("group", "add", "acme.example", "200", "--name", "S", "--member", "101", "--member", "102")
    assert "has forwarding active (always)" in refused(
        fsctl, "group", "edit", "acme.example", "200", "--strategy", "sequential"
    )
    assert data(fsctl, "group", "show", "acme.example", "200")["strategy"] == "simultaneous"


def test_group_member_rules(fsctl):
    make_tenant(fsctl)
    assert (
        refused(fsctl, "group", "add", "acme.example", "200", "--name", "S", "--member", "101", "--member", "101")
        == 'Error: group.member "101": is listed twice'
    )
    assert (
        refused(fsctl, "group", "add", "acme.example", "200", "--name", "S", "--member", "999")
        == 'Error: group.member "999": user 999 does not exist in acme.example'
    )
    assert (
        refused(fsctl, "group", "add", "acme.example", "200", "--name", "S", "--order", "rotating")
        == 'Error: group.order "rotating": rotating order applies to sequential groups only'
    )


def test_group_remove_referenced(fsctl):
    make_tenant(fsctl)
    fsctl("group", "add", "acme.example", "200", "--name", "S", "--member", "101")
    fsctl("ivr", "add", "acme.example", "500", "--name", "Main", "--entry", "1=group:200")
    assert refused(fsctl, "group", "remove", "acme.example", "200") == (
        "Error: group 200 is still referenced by ivr 500 digit 1: re-point those first or use --force"
    )
    fsctl("group", "remove", "acme.example", "200", "--force")
    assert data(fsctl, "ivr", "show", "acme.example", "500")["entries"] == {"1": "hangup"}


# --- DIDs, IVRs, time rules, queues, conferences, blacklist, contacts ------------------------


def test_did_rules(fsctl):
    make_tenant(fsctl, "a.example", users=("101",))
    make_tenant(fsctl, "b.example", users=("101",))
    fsctl("did", "add", "a.example", "0037052000000", "--to", "user:101")
    assert data(fsctl, "did", "list")[0]["number"] == "+37052000000"
    assert (
        refused(fsctl, "did", "add", "b.example", "+37052000000", "--to", "user:101")
        == 'Error: did.number "+37052000000": already belongs to tenant a.example'
    )
    assert (
        refused(fsctl, "did", "add", "b.example", "52000000", "--to", "user:101")
        == 'Error: did.number "52000000": must be an E.164 number like +37052000000'
    )


def test_ivr_multilevel_and_rules(fsctl):
    make_tenant(fsctl)
    fsctl("ivr", "add", "acme.example", "501", "--name", "Sub")
    fsctl(
        "ivr",
        "add",
        "acme.example",
        "500",
        "--name",
        "Main",
        "--entry",
        "1=ivr:501",
        "--entry",
        "*=user:101",
        "--exit",
        "voicemail:101",
    )
    shown = data(fsctl, "ivr", "show", "acme.example", "500")
    assert shown["entries"] == {"*": "user:101", "1": "ivr:501"}
    assert (
        refused(fsctl, "ivr", "edit", "acme.example", "500", "--entry", "1x=user:101")
        == 'Error: ivr.entry "1x": digits must be 1 to 8 of 0-9, * and #'
    )
    assert (
        refused(fsctl, "ivr", "edit", "acme.example", "500", "--entry", "oops")
        == 'Error: ivr.entry "oops": must look like DIGITS=DESTINATION, e.g. 1=group:200'
    )
    assert (
        refused(fsctl, "ivr", "edit", "acme.example", "500", "--greeting", "nope")
        == 'Error: ivr.greeting "nope": media nope does not exist in acme.example (fsctl media add)'
    )


def test_timerule(fsctl):
    make_tenant(fsctl)
    fsctl(
        "timerule",
        "add",
        "acme.example",
        "office",
        "--range",
        "mon-fri 08:00-17:00",
        "--range",
        "sat 22:00-02:00",
        "--holiday",
        "2026-12-24..2026-12-26",
        "--holiday",
        "2026-12-31 14:00-24:00",
        "--match",
        "user:101",
        "--nomatch",
        "voicemail:101",
    )
    assert data(fsctl, "timerule", "show", "acme.example", "office") == {
        "name": "office",
        "timezone": None,
        "match": "user:101",
        "nomatch": "voicemail:101",
        "ranges": ["mon,tue,wed,thu,fri 08:00-17:00", "sat 22:00-02:00"],
        "holidays": ["2026-12-24..2026-12-26", "2026-12-31 14:00-24:00"],
    }
    assert (
        refused(fsctl, "timerule", "edit", "acme.example", "office", "--range", "mon-fri 8-17")
        == 'Error: timerule.range "mon-fri 8-17": must be a time HH:MM between 00:00 and 24:00'
    )
    assert (
        refused(fsctl, "timerule", "edit", "acme.example", "office", "--range", "fri-mon 08:00-17:00")
        == 'Error: timerule.range "fri-mon 08:00-17:00": must be weekdays like mon-fri or sat,sun'
    )
    assert (
        refused(fsctl, "timerule", "edit", "acme.example", "office", "--holiday", "2026-12-26..2026-12-24")
        == 'Error: timerule.holiday "2026-12-26..2026-12-24": the end date is before the start date'
    )
    assert (
        refused(fsctl, "timerule", "edit", "acme.example", "office", "--match", "timerule:office")
        == 'Error: timerule.match "timerule:office": a time rule cannot route to itself'
    )


def test_queue_and_conference(fsctl):
    make_tenant(fsctl)
    fsctl(
        "queue",
        "add",
        "acme.example",
        "600",
        "--name",
        "Support",
        "--agent",
        "101",
        "--agent",
        "102",
        "--overflow",
        "voicemail:101",
        "--max-wait",
        "120",
    )
    assert data(fsctl, "queue", "show", "acme.example", "600")["agents"] == ["101", "102"]
    assert (
        refused(fsctl, "queue", "edit", "acme.example", "600", "--max-wait", "5")
        == 'Error: queue.max_wait "5": must be between 10 and 7200'
    )
    fsctl("conference", "add", "acme.example", "700", "--name", "Board", "--pin", "4321")
    assert data(fsctl, "conference", "show", "acme.example", "700") == {
        "number": "700",
        "name": "Board",
        "has_pin": True,
        "max_members": None,
    }
    assert (
        refused(fsctl, "conference", "add", "acme.example", "701", "--name", "B", "--pin", "12")
        == 'Error: conference.pin "12": must be 4 to 12 digits'
    )


def test_blacklist(fsctl):
    make_tenant(fsctl, users=())
    fsctl("blacklist", "add", "acme.example", "+1900", "--prefix", "--note", "premium")
    fsctl("blacklist", "add", "acme.example", "+37060000000")
    assert data(fsctl, "blacklist", "list", "acme.example") == [
        {"pattern": "+1900", "match": "prefix", "note": "premium"},
        {"pattern": "+37060000000", "match": "exact", "note": ""},
    ]
    assert (
        refused(fsctl, "blacklist", "add", "acme.example", "+1900", "--prefix")
        == 'Error: blacklist.pattern "+1900": already blacklisted (prefix) in acme.example'
    )
    assert (
        refused(fsctl, "blacklist", "add", "acme.example", "abc")
        == 'Error: blacklist.pattern "abc": must be digits with an optional leading +'
    )
    # spaces, parentheses and hyphens as in a DID or a contact: dropped, on add and on look-up
    fsctl("did", "add", "acme.example", "+370 (5) 200-0000", "--to", "hangup")
    fsctl("blacklist", "add", "acme.example", "+370 (600) 11-111")
    assert data(fsctl, "blacklist", "show", "acme.example", "+370 600 11111")["pattern"] == "+37060011111"
    fsctl("blacklist", "remove", "acme.example", "+370-600-11111")
    assert [e["pattern"] for e in data(fsctl, "blacklist", "list", "acme.example")] == ["+1900", "+37060000000"]


def test_contact_import_all_or_nothing(fsctl, tmp_path):
    make_tenant(fsctl, users=())
    good = tmp_path / "c.csv"
    good.write_text('number;name\n+37061234567;"UAB ""Tiekėjas"" & <Co>"\n+37069999999;Jonas $USER\n', encoding="utf-8")
    fsctl("contact", "import", "acme.example", str(good))
    assert data(fsctl, "contact", "list", "acme.example") == [
        {"number": "+37061234567", "name": 'UAB "Tiekėjas" & <Co>'},
        {"number": "+37069999999", "name": "Jonas $USER"},
    ]
    bad = tmp_path / "bad.csv"
    bad.write_text("+37061111111,New\nnot-a-number,Bad\n", encoding="utf-8")
    assert (
        refused(fsctl, "contact", "import", "acme.example", str(bad))
        == 'Error: contacts line 2 number "not-a-number": must be digits with an optional leading +'
    )
    assert len(data(fsctl, "contact", "list", "acme.example")) == 2
    replace = tmp_path / "r.csv"
    replace.write_text("+37069999999,Jonas J.\n", encoding="utf-8")
    result = fsctl("contact", "import", "acme.example", str(replace), "--replace")
    assert "0 added, 1 updated, 1 removed" in result.stderr


def test_recgroup(fsctl):
    make_tenant(fsctl)
    fsctl("recgroup", "add", "acme.example", "sales", "--member", "101", "--member", "102", "--supervisor", "103")
    assert data(fsctl, "recgroup", "show", "acme.example", "sales") == {
        "name": "sales",
        "members": ["101", "102"],
        "supervisors": ["103"],
    }


def test_failed_command_changes_nothing(fsctl):
    """One transaction per command: a late failure leaves no partial rows."""
    make_tenant(fsctl)
    # The group row is created before the member check fails; the transaction must undo it.
    refused(fsctl, "group", "add", "acme.example", "200", "--name", "S", "--member", "101", "--member", "999")
    assert data(fsctl, "group", "list", "acme.example") == []
    assert data(fsctl, "tenant", "show", "acme.example")["revision"] == 4


def test_show_and_edit_of_the_small_nouns(fsctl, tmp_path):
    import wave

    make_tenant(fsctl, users=())
    fsctl("contact", "add", "acme.example", "+37061234567", "--name", "Jonas")
    assert data(fsctl, "contact", "show", "acme.example", "+37061234567") == {"number": "+37061234567", "name": "Jonas"}
    fsctl("blacklist", "add", "acme.example", "+1900", "--prefix")
    fsctl("blacklist", "edit", "acme.example", "+1900", "--prefix", "--note", "premium <rate> & $x")
    assert data(fsctl, "blacklist", "show", "acme.example", "+1900", "--prefix") == {
        "pattern": "+1900",
        "match": "prefix",
        "note": "premium <rate> & $x",
    }
    assert (
        refused(fsctl, "blacklist", "show", "acme.example", "+1900")
        == 'Error: blacklist entry "+1900" does not exist in acme.example (a prefix entry does: add --prefix)'
    )
    assert (
        refused(fsctl, "blacklist", "show", "acme.example", "+1901")
        == 'Error: blacklist entry "+1901" does not exist in acme.example'
    )
    wav = tmp_path / "hello.wav"
    with wave.open(str(wav), "wb") as w:
        w.setnchannels(2)
        w.setsampwidth(2)
        w.setframerate(16000)
        w.writeframes(b"\x00\x01\x00\x02" * 16000)
    fsctl("media", "add", "acme.example", "hello", str(wav))
    shown = data(fsctl, "media", "show", "acme.example", "hello")
    assert shown["duration_ms"] == 1000 and shown["path"].endswith("acme.example/hello.wav")
    with wave.open(shown["path"], "rb") as stored:  # converted: mono 16-bit, same rate
        assert (stored.getnchannels(), stored.getsampwidth(), stored.getframerate()) == (1, 2, 16000)
    bad = tmp_path / "song.mp3"
    bad.write_bytes(b"ID3\x03\x00" + b"\x00" * 100)
    assert refused(fsctl, "media", "add", "acme.example", "song", str(bad)) == (
        'Error: media.file "<audio>": must be a PCM WAV file (convert MP3/OGG with sox or ffmpeg first)'
    )
    fsctl("ivr", "add", "acme.example", "500", "--name", "Main", "--greeting", "hello")
    assert (
        refused(fsctl, "media", "remove", "acme.example", "hello")
        == "Error: media hello is still played by ivr 500: change those first"
    )
    # a missing file is bad input (exit 2), and --replace says what it did
    assert (
        refused(fsctl, "media", "add", "acme.example", "song", str(tmp_path / "nope.wav"))
        == f'Error: media.file "{tmp_path / "nope.wav"}": no such file'
    )
    assert (
        fsctl("media", "add", "acme.example", "hello", str(wav), "--replace").stderr == "media hello replaced (1.0 s)\n"
    )
    assert fsctl("media", "add", "acme.example", "other", str(wav), "--replace").stderr == "media other added (1.0 s)\n"


def test_routes_that_cannot_work_are_refused(fsctl):
    """The call-flow matrix's pairings that cannot work (issue 11): a route back to where it starts
    would keep a caller going round (in XML for ever, or until FreeSWITCH gives up on transfers)."""
    fsctl("tenant", "add", "acme.example", "--name", "ACME")
    fsctl("user", "add", "acme.example", "101", "--name", "Ona")
    result = fsctl("queue", "add", "acme.example", "600", "--name", "Q", "--overflow", "queue:600", ok=False)
    assert (result.exit_code, result.stderr) == (
        2,
        'Error: queue.overflow "queue:600": a queue\'s overflow cannot '
        "lead back to itself (callers would go round for ever)\n",
    )
    fsctl("queue", "add", "acme.example", "600", "--name", "Q")
    assert fsctl("queue", "edit", "acme.example", "600", "--overflow", "queue:600", ok=False).exit_code == 2
    fsctl("group", "add", "acme.example", "200", "--name", "G", "--member", "101")
    result = fsctl("group", "edit", "acme.example", "200", "--fallback", "group:200", ok=False)
    assert result.exit_code == 2 and "a group's fallback cannot lead back to itself" in result.stderr
    fsctl("ivr", "add", "acme.example", "500", "--name", "M", "--entry", "9=ivr:500")  # "again": a digit may
    result = fsctl("ivr", "edit", "acme.example", "500", "--exit", "ivr:500", ok=False)
    assert result.exit_code == 2 and "a menu's exit cannot lead back to itself" in result.stderr
    fsctl(
        "time-rule",
        "add",
        "acme.example",
        "a",
        "--range",
        "mon-fri 08:00-17:00",
        "--match",
        "user:101",
        "--nomatch",
        "hangup",
    )
    fsctl(
        "time-rule",
        "add",
        "acme.example",
        "b",
        "--range",
        "sat 08:00-17:00",
        "--match",
        "timerule:a",
        "--nomatch",
        "hangup",
    )
    result = fsctl("time-rule", "edit", "acme.example", "a", "--nomatch", "timerule:b", ok=False)
    assert result.exit_code == 2
    assert result.stderr == 'Error: timerule.nomatch "timerule:b": time rules would route in a circle (a -> b -> a)\n'
    # Through a group (decided by the call logic, which stops a loop at the tenant's fallback): allowed.
    fsctl("group", "add", "acme.example", "201", "--name", "H", "--member", "101", "--fallback", "group:200")
    fsctl("group", "edit", "acme.example", "200", "--fallback", "group:201")
