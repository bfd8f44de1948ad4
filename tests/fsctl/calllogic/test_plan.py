"""Plan steps: their FreeSWITCH applications, escaping of tenant text, execution semantics."""

import pytest
from hypothesis import given, settings, strategies as st

from fsctl.calllogic.plan import (
    SAFE_DOLLAR,
    Answer,
    Branch,
    Bridge,
    Hangup,
    Leg,
    Playback,
    SetCallerName,
    SetVar,
    StartRecording,
    Transfer,
    Voicemail,
    drive,
    explain,
    neutralise,
    plan_apps,
    set_value,
    walk,
)


def test_setvar_and_caller_name_apps():
    assert SetVar("fsctl_route", "user:101").to_apps() == [("set", "fsctl_route=user:101")]
    assert SetCallerName("Jonas Jonaitis").to_apps() == [("set", "effective_caller_id_name=Jonas Jonaitis")]


def test_setvar_refuses_a_name_that_is_not_an_identifier():
    with pytest.raises(ValueError):
        SetVar("a=b", "x")
    with pytest.raises(ValueError):
        SetVar("${x}", "x")


def test_answer_playback_recording_hangup_apps():
    assert Answer().to_apps() == [("answer", "")]
    assert Answer(early=True).to_apps() == [("pre_answer", "")]
    assert Playback("/srv/media/acme/welcome.wav").to_apps() == [("playback", "/srv/media/acme/welcome.wav")]
    assert StartRecording("/rec/a.wav").to_apps() == [
        ("set", "RECORD_STEREO=true"),
        ("set", "fsctl_recording_path=/rec/a.wav"),
        ("record_session", "/rec/a.wav"),
    ]
    assert Hangup("CALL_REJECTED").to_apps() == [("hangup", "CALL_REJECTED")]
    assert Hangup().to_apps() == [("hangup", "NORMAL_CLEARING")]


def test_hangup_refuses_a_bad_cause():
    with pytest.raises(ValueError):
        Hangup("user busy")


def test_voicemail_and_transfer_apps():
    assert Voicemail("101", "acme.example").to_apps() == [("answer", ""), ("voicemail", "default acme.example 101")]
    assert Transfer("ivr-500", "acme.example").to_apps() == [("transfer", "ivr-500 XML acme.example")]
    with pytest.raises(ValueError):
        Transfer("500 XML other.example", "acme.example")
    with pytest.raises(ValueError):
        Voicemail("101 x", "acme.example")


def test_bridge_sequential_uses_pipes_and_sets_continue_on_fail_first():
    bridge = Bridge((Leg("user/101@acme.example", 20), Leg("user/102@acme.example", 20)), "sequential")
    assert bridge.to_apps() == [
        ("set", "continue_on_fail=true"),
        ("set", "hangup_after_bridge=true"),
        ("bridge", "[leg_timeout=20]user/101@acme.example|[leg_timeout=20]user/102@acme.example"),
    ]


def test_bridge_simultaneous_uses_commas():
    bridge = Bridge((Leg("user/101@acme.example", 30), Leg("user/102@acme.example", 30)), "simultaneous")
    assert bridge.to_apps()[-1] == (
        "bridge",
        "[leg_timeout=30]user/101@acme.example,[leg_timeout=30]user/102@acme.example",
    )


def test_leg_variables_with_commas_are_quoted():
    leg = Leg("user/101@acme.example", 10, (("execute_on_answer_1", "playback tone_stream://%(200,0,1000)"),))
    assert leg.dial_string() == (
        "[leg_timeout=10,execute_on_answer_1='playback tone_stream://%(200,0,1000)']user/101@acme.example"
    )


@pytest.mark.parametrize("target", ["user/101@acme.example,user/1@x", "user/1|x", "user/${x}", "user/1 2", "", "[a]b"])
def test_leg_refuses_dial_string_metacharacters(target):
    with pytest.raises(ValueError):
        Leg(target, 20)


@pytest.mark.parametrize("value", ["a]b", "a'b", "[x"])
def test_leg_refuses_variable_values_that_break_the_brackets(value):
    with pytest.raises(ValueError):
        Leg("user/101@acme.example", 20, (("x", value),))


def test_bridge_needs_legs_and_a_known_mode():
    with pytest.raises(ValueError):
        Bridge((), "sequential")
    with pytest.raises(ValueError):
        Bridge((Leg("user/1@a.example", 5),), "round-robin")
    with pytest.raises(ValueError):
        Leg("user/1@a.example", 0)


def test_neutralise_dollar_and_control_characters():
    assert neutralise("${sofia_contact(1)}") == SAFE_DOLLAR + "{sofia_contact(1)}"
    assert neutralise("$${global}") == SAFE_DOLLAR * 2 + "{global}"
    assert neutralise("a\r\nb\x00c\td") == "abcd"


def _branchy_plan():
    busy = Branch("busy", {"USER_BUSY"}, (Voicemail("101", "acme.example", reason="busy"),))
    return (
        SetVar("fsctl_route", "user:101"),
        Bridge((Leg("user/101@acme.example", 20),), on_fail=(busy,), reason="ring 101"),
        Hangup("SUBSCRIBER_ABSENT", reason="unreachable"),
    )


def test_walk_answered_bridge_ends_the_plan():
    plan = _branchy_plan()
    assert [s.kind for s in walk(plan, ["SUCCESS"])] == ["SetVar", "Bridge"]
    assert [s.kind for s in walk(plan)] == ["SetVar", "Bridge"]


def test_walk_matching_branch_replaces_the_rest():
    assert [s.reason for s in walk(_branchy_plan(), ["USER_BUSY"])][-1] == "busy"
    assert [s.kind for s in walk(_branchy_plan(), ["USER_BUSY"])] == ["SetVar", "Bridge", "Voicemail"]


def test_walk_unlisted_cause_carries_on():
    assert [s.kind for s in walk(_branchy_plan(), ["USER_NOT_REGISTERED"])] == ["SetVar", "Bridge", "Hangup"]


def test_walk_caller_gone_stops():
    assert [s.kind for s in walk(_branchy_plan(), ["ORIGINATOR_CANCEL"])] == ["SetVar", "Bridge"]


def test_drive_takes_bridge_outcomes_by_send():
    plan = _branchy_plan()
    runner = drive(plan)
    assert next(runner) is plan[0]
    assert runner.send(None) is plan[1]
    assert runner.send("USER_BUSY") is plan[1].on_fail[0].steps[0]
    with pytest.raises(StopIteration):
        runner.send(None)  # Voicemail is terminal


def test_drive_stops_when_the_channel_is_gone():
    runner = drive(_branchy_plan())
    next(runner)
    runner.send(None)
    with pytest.raises(StopIteration):
        runner.send(None)  # a bridge without an outcome: the channel no longer exists


def test_walk_stops_at_terminal_steps():
    plan = (Hangup("USER_BUSY"), SetVar("x", "y"))
    assert walk(plan) == [plan[0]]
    assert plan_apps(plan) == [("hangup", "USER_BUSY")]


def test_plan_apps_main_line_only():
    assert plan_apps(_branchy_plan()) == [
        ("set", "fsctl_route=user:101"),
        ("set", "continue_on_fail=true"),
        ("set", "hangup_after_bridge=true"),
        ("bridge", "[leg_timeout=20]user/101@acme.example"),
        ("hangup", "SUBSCRIBER_ABSENT"),
    ]


def test_explain_lists_branches_with_depth_and_label():
    rows = explain(_branchy_plan())
    assert [(r["step"], r["depth"], r["branch"]) for r in rows] == [
        ("SetVar", 0, ""),
        ("Bridge", 0, ""),
        ("Voicemail", 1, "busy (USER_BUSY)"),
        ("Hangup", 0, ""),
    ]
    assert rows[2]["apps"] == [["answer", ""], ["voicemail", "default acme.example 101"]]
    assert rows[1]["reason"] == "ring 101"
    assert set(rows[0]) == {"step", "apps", "reason", "depth", "branch"}


def test_steps_are_frozen():
    step = Hangup("USER_BUSY")
    with pytest.raises(AttributeError):
        step.cause = "NORMAL_CLEARING"


_text = st.lists(st.sampled_from(list("${}ab:/,.\n\r\x00'\"\\ ") + ["$${", "${"]), max_size=20).map("".join) | st.text(
    max_size=40
)


@settings(max_examples=300, deadline=None)
@given(text=_text)
def test_to_apps_never_emits_expansion_or_newlines_from_tenant_text(text):
    steps = [
        SetCallerName(text),
        SetVar("fsctl_note", text),
        Playback(text),
        StartRecording(text),
    ]
    try:
        steps.append(Bridge((Leg("user/101@acme.example", 20, (("fsctl_x", text),)),)))
    except ValueError:
        pass  # refused outright is fine too
    for step in steps:
        for app, arg in step.to_apps():
            assert "${" not in arg and "$" not in arg
            assert "\n" not in arg and "\r" not in arg and "\x00" not in arg


def test_multiset_joins_sets_with_a_free_delimiter():
    from fsctl.calllogic.plan import multiset

    assert multiset(["a=1"]) is None
    assert multiset(["a=1", "b=x y"]) == ("multiset", "^^|a=1|b=x y")
    assert multiset(["a=1|2", "b=~"]) == ("multiset", "^^!a=1|2!b=~")
    # no free delimiter: `|`, escaped (and the escape escaped for the expansion)
    assert multiset(["a=|~!;#%@"] * 2) == ("multiset", "^^|a=\\\\|~!;#%@|a=\\\\|~!;#%@")
    assert multiset(["a=1"] * 257) is None


def test_multiset_escapes_as_freeswitch_splits():
    """A contact named `Jonas\\` swallowed the delimiter: fsctl_route was lost (switch_utils.c)."""
    from fsctl.calllogic.plan import multiset
    from tests.fakes.separate_string import multiset_parts

    sets = ["effective_caller_id_name=Jonas\\", "fsctl_route=group:200", "fsctl_target=group:200"]
    app, arg = multiset(sets)
    # for the value's expansion (\\ -> \\\\), the split (each \\ -> \\\\), the argument's expansion (doubled)
    assert arg == "^^|effective_caller_id_name=Jonas" + "\\" * 8 + "|fsctl_route=group:200|fsctl_target=group:200"
    assert multiset_parts(arg) == sets
    # unescaped, FreeSWITCH set two variables: the name took the route with it, the route was lost
    assert multiset_parts("^^|" + "|".join(sets)) == [
        "effective_caller_id_name=Jonas|fsctl_route=group:200",
        "fsctl_target=group:200",
    ]
    # quotes pair across variables, and trailing blanks go, unless escaped
    sets = ["a=O'Brien|x", "b=it's ", "c=  two  "]
    assert multiset_parts(multiset(sets)[1]) == sets
    assert multiset_parts("^^~" + "~".join(sets)) != sets


@settings(max_examples=300, deadline=None)
@given(
    st.lists(
        st.tuples(
            st.from_regex(r"[a-z_][a-z0-9_]{0,8}", fullmatch=True),
            st.text(st.sampled_from("\\'\" |~!;#%@=nrtsa,[]x"), max_size=12),
        ),
        min_size=2,
        max_size=8,
    )
)
def test_multiset_gives_back_every_value(pairs):
    """Whatever the values, FreeSWITCH's split of the multiset argument is exactly the sets given."""
    from fsctl.calllogic.plan import multiset
    from tests.fakes.separate_string import multiset_parts

    values = [f"{name}={value}" for name, value in pairs]
    # the service hands multiset what it would send as `set` arguments
    assert multiset_parts(multiset([set_value(v) for v in values])[1]) == values


def test_a_set_value_survives_the_expansion_of_its_argument():
    """A contact named `a\\\\'b` became `a\\` through `set`: arguments are expanded first."""
    from tests.fakes.separate_string import set_app

    for name in ("Jonas\\", "a\\\\'b", "O'Brien", "C:\\new\\s", "x\\'"):
        ((app, arg),) = SetCallerName(name).to_apps()
        assert set_app(arg) == f"effective_caller_id_name={name}"


@pytest.mark.parametrize(
    "build",
    [
        lambda: Leg("user/101@acme.example\n", 20),
        lambda: Leg("user/101@acme.example", 20, (("origination_caller_id_name\n", "x"),)),
        lambda: SetVar("fsctl_route\n", "x"),
        lambda: Hangup("USER_BUSY\n"),
        lambda: Voicemail("101\n", "acme.example"),
        lambda: Transfer("500", "acme.example\n"),
    ],
    ids=["dial target", "leg variable", "variable", "cause", "voicemail", "transfer"],
)
def test_a_trailing_line_feed_is_refused(build):
    """`^...$` with re.match accepts "x\\n": every pattern ends with \\Z."""
    with pytest.raises(ValueError):
        build()
