"""multiset against the real FreeSWITCH: what `plan.multiset` sends is what the channel gets.

The Python model of FreeSWITCH's split (tests/fakes/separate_string.py) is checked here against
the real build too, so that the property test of test_plan.py, which runs it on thousands of
values, tests the switch and not only our reading of switch_utils.c.
"""

import random
import time

import pytest

from fsctl.calllogic.plan import SetCallerName, multiset, set_value, setvar_multi
from tests.fakes.separate_string import multiset_parts
from tests.freeswitch_server import NO_BUILD, FreeSwitch, build_missing, build_prefix

pytestmark = [pytest.mark.freeswitch, pytest.mark.servers, pytest.mark.skipif(build_missing(), reason=NO_BUILD)]


@pytest.fixture(scope="module")
def channel():
    fs = FreeSwitch(build_prefix(), "multiset")
    esl = None
    try:
        esl = fs.start().esl()
        reply = esl.api("originate null/1000 &park()")
        assert reply.startswith("+OK "), reply
        yield esl, reply.split()[1]
    finally:
        if esl is not None:
            esl.close()
        fs.stop(kill=True)  # nothing of it is kept: no need for its orderly shutdown
        fs.remove()


def run_multiset(esl, uuid, arg, names):
    """Execute multiset (if `arg`) on the parked channel; {name: value or None} once it has run."""
    esl.api(f"uuid_setvar {uuid} fsctl_probe 0")
    if arg:
        assert esl.execute(uuid, "multiset", arg).startswith("+OK")
    esl.execute(uuid, "set", "fsctl_probe=1")  # the channel runs its applications in order
    deadline = time.monotonic() + 10
    while esl.api(f"uuid_getvar {uuid} fsctl_probe") != "1":  # a parked channel runs it at its next tick
        assert time.monotonic() < deadline, "multiset did not run"
        time.sleep(0.02)
    values = {}
    for name in names:
        value = esl.api(f"uuid_getvar {uuid} {name}")
        values[name] = None if value == "_undef_" else value
        esl.api(f"uuid_setvar {uuid} {name}")  # unset for the next case
    return values


CASES = [
    ["effective_caller_id_name=Jonas\\", "fsctl_route=group:200", "fsctl_target=group:200"],
    ["a=O'Brien|x", "b=it's ", "c=  two  "],
    ["a=\\n\\s\\t\\\\", "b='quoted'", 'c="double"', "d=a=b,c"],
    ["a=|~!;#%@", "b=|~!;#%@ "],
]


@pytest.mark.parametrize("sets", CASES, ids=["backslash", "quotes-blanks", "escapes", "no-free-delimiter"])
def test_multiset_sets_exactly_what_was_given(channel, sets):
    """What the service sends: the plan's `set` arguments, merged by multiset."""
    esl, uuid = channel
    _app, arg = multiset([set_value(s) for s in sets])
    names = [s.split("=", 1)[0] for s in sets]
    assert run_multiset(esl, uuid, arg, names) == {s.split("=", 1)[0]: s.split("=", 1)[1] for s in sets}


@pytest.mark.parametrize("name", ["Jonas\\", "a\\\\'b", "O'Brien ", "C:\\new\\s", "x\\'"])
def test_set_sets_exactly_the_caller_name(channel, name):
    esl, uuid = channel
    ((app, arg),) = SetCallerName(name).to_apps()
    esl.execute(uuid, app, arg)
    assert run_multiset(esl, uuid, "", ["effective_caller_id_name"]) == {"effective_caller_id_name": name}


def test_the_split_model_matches_the_switch(channel):
    """Raw (unescaped) arguments, hostile ones included: the model splits them as FreeSWITCH does."""
    esl, uuid = channel
    rng = random.Random(13)
    alphabet = "a \\\\'\"|=nst"
    for _ in range(80):
        parts = [f"v{i}=" + "".join(rng.choice(alphabet) for _ in range(rng.randint(0, 8))) for i in range(3)]
        arg = "^^|" + "|".join(parts)
        if arg.endswith("\\"):
            continue  # FreeSWITCH reads past the end of the text there (separate_string_char_delim)
        expected = {f"v{i}": None for i in range(3)}
        for part in multiset_parts(arg):
            name, _, value = part.partition("=")
            if name in expected:
                expected[name] = value or None  # base_set: an empty value unsets
        assert run_multiset(esl, uuid, arg, list(expected)) == expected, arg


@pytest.mark.parametrize(
    "sets",
    CASES + [["a=;x;", "b=end\\", "c=' '"]],
    ids=["backslash", "quotes-blanks", "escapes", "no-free-delimiter", "semicolons"],
)
def test_uuid_setvar_multi_sets_exactly_what_set_would(channel, sets):
    """What the service sends for a plan's `set`s now: the API, no tick, the same values as `set`."""
    esl, uuid = channel
    arg = setvar_multi([set_value(s) for s in sets])
    assert esl.api(f"uuid_setvar_multi {uuid} {arg}").startswith("+OK")
    names = [s.split("=", 1)[0] for s in sets]
    assert run_multiset(esl, uuid, "", names) == {s.split("=", 1)[0]: s.split("=", 1)[1] for s in sets}


def test_sched_del_cancels_the_watchdog_transfer(channel):
    """`api sched_del <uuid>` deletes what `sched_transfer` armed on the channel (its task group)."""
    esl, uuid = channel
    esl.execute(uuid, "sched_transfer", "+1 nowhere XML nowhere")
    run_multiset(esl, uuid, "", [])  # the application ran
    assert esl.api(f"sched_del {uuid}").strip() == "+OK Deleted: 1"
    assert esl.api(f"sched_del {uuid}").strip() == "+OK Deleted: 0"
