"""The validator: one small file per FACTS.md rule, each refused with a message naming it."""

import re

import pytest
from hypothesis import given, strategies as st

from fsctl.freeswitch import xmlcheck

DOMAIN = """<include>
  <domain name="acme.example">
    <groups><group name="g"><users>
      <user id="101"><params><param name="a1-hash" value="0123456789abcdef0123456789abcdef"/></params></user>
    </users></group></groups>
  </domain>
</include>
"""

CONTEXT = """<include>
  <context name="acme.example">
    <extension name="fsctl-setup" continue="true">
      <condition field="destination_number" expression="^(.+)$">
        <action application="set" data="timezone=Europe/Vilnius" inline="true"/>
      </condition>
    </extension>
    <extension name="users">
      <condition field="destination_number" expression="^(101)$">
        <action application="bridge" data="[leg_timeout=20]user/$1@acme.example"/>
      </condition>
    </extension>
    <extension name="back">
      <condition field="destination_number" expression="^ivr-1$">
        <action application="transfer" data="101 XML acme.example"/>
      </condition>
    </extension>
  </context>
</include>
"""


def write(tmp_path, files):
    for rel, text in files.items():
        path = tmp_path / rel
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text)
    return list(files)


def problems(tmp_path, files):
    rels = write(tmp_path, files)
    with pytest.raises(xmlcheck.XmlCheckError) as info:
        xmlcheck.check_paths(tmp_path, rels)
    return info.value.problems


def test_valid_tree_passes(tmp_path):
    rels = write(tmp_path, {"directory/a.xml": DOMAIN, "dialplan/a.xml": CONTEXT})
    summaries = xmlcheck.check_paths(tmp_path, rels)
    assert summaries["directory/a.xml"]["users"] == {"acme.example": ["101"]}
    assert summaries["dialplan/a.xml"]["contexts"]["acme.example"]["patterns"] == ["^(101)$", "^ivr-1$"]


@pytest.mark.parametrize(
    "text, message",
    [
        (DOMAIN.replace("</user>", "</usr>"), "not well-formed XML"),
        ("", "not well-formed XML"),
        (DOMAIN.replace("<include>\n  <domain", "<include><domain"), "<include> shares its line"),
        (DOMAIN.replace("  </domain>\n</include>", "  </domain></include>"), "<include> shares its line"),
        ("<?xml version='1.0'?>\n" + DOMAIN, "'<?'"),
        (DOMAIN.replace('id="101"', 'id="$${x}"'), "'$${'"),
        (DOMAIN.replace("<groups>", '<!-- X-PRE-PROCESS cmd="set" data="a=b" --><groups>'), "X-PRE-PROCESS"),
        (DOMAIN.replace('id="101"', 'id="${evil}"'), "${evil} is not a variable fsctl renders"),
        (DOMAIN.replace('<param name="a1-hash" value="0123456789abcdef0123456789abcdef"/>', ""), "has no a1-hash"),
        (DOMAIN.replace('value="0123456789abcdef0123456789abcdef"', 'value=""'), "has no a1-hash"),
        (
            DOMAIN.replace('<param name="a1-hash"', '<param name="password" value="x"/><param name="a1-hash"'),
            "has a plain password",
        ),
        # mod_sofia compares param names with strcasecmp: `Password` is a password too.
        (
            DOMAIN.replace('<param name="a1-hash"', '<param name="PassWord" value="x"/><param name="a1-hash"'),
            "has a plain password",
        ),
        (DOMAIN.replace('id="101"', 'id=""'), "<user> without an id"),
        (
            DOMAIN.replace(
                "</users>",
                '<user id="101"><params><param name="a1-hash" '
                'value="0123456789abcdef0123456789abcdef"/></params></user></users>',
            ),
            "duplicate user 101",
        ),
        (
            DOMAIN.replace("<include>", "<domains>").replace("</include>", "</domains>"),
            "must start with a line <include>",
        ),
        # FreeSWITCH merges domain and group params into every user: a credential there is everyone's.
        (
            DOMAIN.replace("<groups>", '<params><param name="password" value="x"/></params><groups>'),
            "param password shared by every user",
        ),
        (
            DOMAIN.replace('<group name="g">', '<group name="g"><params><param name="a1-hash" value="x"/></params>'),
            "param a1-hash shared by every user",
        ),
        (
            DOMAIN.replace(
                '<param name="a1-hash" value="0123456789abcdef0123456789abcdef"/>',
                '<param name="a1-hash" value="0123456789abcdef0123456789abcdef"/>'
                '<param name="a1-hash" value="fedcba9876543210fedcba9876543210"/>',
            ),
            "has more than one a1-hash",
        ),
        ('<include>\n  <context name="x"/>\n</include>\n', "<context> where <domain> is expected"),
        # FreeSWITCH reads only <user><params><param>: an a1-hash anywhere else is none.
        (
            DOMAIN.replace(
                '<params><param name="a1-hash" value="0123456789abcdef0123456789abcdef"/></params>',
                '<variables><param name="a1-hash" value="0123456789abcdef0123456789abcdef"/></variables>',
            ),
            "has no a1-hash",
        ),
        (
            DOMAIN.replace(
                '<params><param name="a1-hash" value="0123456789abcdef0123456789abcdef"/></params>',
                '<params><x><param name="a1-hash" value="0123456789abcdef0123456789abcdef"/></x></params>',
            ),
            "has no a1-hash",
        ),
    ],
)
def test_directory_rules(tmp_path, text, message):
    found = problems(tmp_path, {"directory/a.xml": text})
    assert any(message in p for p in found), found
    assert all(p.startswith("directory/a.xml") for p in found)


@pytest.mark.parametrize(
    "extra",
    [
        '<variables><param name="a1-hash" value="fedcba9876543210fedcba9876543210"/></variables>',
        '<variables><param name="password" value="not read by FreeSWITCH"/></variables>',
        '<params><param name="vm-password" value="1234"/></params>',
    ],
)
def test_params_freeswitch_does_not_read_as_credentials_are_not_credentials(tmp_path, extra):
    text = DOMAIN.replace("</params></user>", f"</params>{extra}</user>")
    assert extra in text
    write(tmp_path, {"directory/a.xml": text})
    assert xmlcheck.check_paths(tmp_path, ["directory/a.xml"])


@pytest.mark.parametrize(
    "old, new, message",
    [
        ('expression="^(101)$"', 'expression="101"', "is not anchored"),
        ('expression="^ivr-1$"', 'expression="^ivr-1"', "is not anchored"),
        (
            '<condition field="destination_number" expression="^(101)$">',
            '<condition field="destination_number" expression="^(101)$"><action application="log" data="x"/></condition>'
            '<condition field="caller_id_number" expression="^1$">',
            "actions in a condition that is not the last one",
        ),
        (
            '<condition field="destination_number" expression="^ivr-1$">',
            '<condition field="destination_number" expression="^ivr-1$" wday="2">',
            "time attribute wday mixed with field=",
        ),
        ('inline="true"', 'inline="false"', "time condition before the time zone is set"),
    ],
)
def test_dialplan_rules(tmp_path, old, new, message):
    text = CONTEXT
    if "wday" in new or message.startswith("time condition"):
        text = text.replace(
            "</context>",
            '<extension name="t"><condition field="destination_number" '
            'expression="^t$"/><condition wday="2-6"><action application="set" data="x=1" '
            'inline="true"/></condition></extension>\n  </context>',
        )
    assert old in text
    found = problems(tmp_path, {"directory/a.xml": DOMAIN, "dialplan/a.xml": text.replace(old, new, 1)})
    assert any(message in p for p in found), found


@pytest.mark.parametrize(
    "old, new, message",
    [
        ("101 XML acme.example", "102 XML acme.example", "transfer to 102: no extension of context acme.example"),
        ("101 XML acme.example", "101 XML nowhere", "context nowhere, which does not exist"),
        ("user/$1@acme.example", "user/$1@beta.example", "reaches user 101@beta.example of another tenant"),
        ('expression="^(101)$"', 'expression="^(101|109)$"', "user 109@acme.example is not in the directory"),
    ],
)
def test_references_must_resolve(tmp_path, old, new, message):
    found = problems(tmp_path, {"directory/a.xml": DOMAIN, "dialplan/a.xml": CONTEXT.replace(old, new)})
    assert any(message in p for p in found), found


def test_duplicates_across_files(tmp_path):
    found = problems(
        tmp_path,
        {
            "directory/a.xml": DOMAIN,
            "directory/b.xml": DOMAIN,
            "dialplan/a.xml": CONTEXT,
            "dialplan/b.xml": CONTEXT,
        },
    )
    assert "directory/b.xml: duplicate domain acme.example (also in directory/a.xml)" in found
    assert "dialplan/b.xml: duplicate context acme.example (also in dialplan/a.xml)" in found


def test_duplicate_user_in_domain(tmp_path):
    text = DOMAIN.replace(
        "</users>",
        '<user id="101"><params><param name="a1-hash" '
        'value="0123456789abcdef0123456789abcdef"/></params></user></users>',
    )
    found = problems(tmp_path, {"directory/a.xml": text})
    assert "directory/a.xml: duplicate user 101 in domain acme.example" in found


def test_duplicate_extension_in_context(tmp_path):
    text = CONTEXT.replace('name="back"', 'name="users"')
    found = problems(tmp_path, {"directory/a.xml": DOMAIN, "dialplan/a.xml": text})
    assert any("extension users twice in context acme.example" in p for p in found), found


def test_menus_queues_profiles_agents_must_exist(tmp_path):
    dialplan = CONTEXT.replace(
        '<action application="transfer" data="101 XML acme.example"/>',
        '<action application="ivr" data="500@acme.example"/><action application="callcenter" '
        'data="600@acme.example"/><action application="conference" data="r@acme.example-700"/>',
    )
    tiers = (
        '<include>\n  <tier agent="101@acme.example" queue="600@acme.example" level="1" position="1"/>\n</include>\n'
    )
    found = problems(tmp_path, {"directory/a.xml": DOMAIN, "dialplan/a.xml": dialplan, "callcenter/tiers/a.xml": tiers})
    for message in (
        "menu 500@acme.example is referenced but not defined",
        "queue 600@acme.example is referenced but not defined",
        "profile acme.example-700 is referenced but not defined",
        "agent 101@acme.example is referenced but not defined",
    ):
        assert any(message in p for p in found), (message, found)


def test_literal_alternatives():
    assert xmlcheck.literal_alternatives("^101$") == ["101"]
    assert xmlcheck.literal_alternatives("^(101|ivr-500|\\*97)$") == ["101", "ivr-500", "*97"]
    assert xmlcheck.literal_alternatives("^vm-(101|102)$") == ["101", "102"]
    assert xmlcheck.literal_alternatives("^(.+)$") is None
    assert xmlcheck.literal_alternatives("^1[0-9]$") is None


def test_literal_alternatives_with_an_escaped_bar():
    assert xmlcheck.literal_alternatives(r"^(a\|b|c)$") == ["a|b", "c"]


# Pieces of anchored regexes: literal characters, escaped metacharacters, and now and then
# something that is not a literal (a class, a quantifier, an escape like \d).
_PIECES = st.sampled_from(
    [
        "1",
        "0",
        "9",
        "a",
        "-",
        "*",
        "#",
        "+",
        "\\*",
        "\\+",
        "\\|",
        "\\.",
        "\\(",
        "\\$",
        "\\\\",
        ".",
        "[0-9]",
        "\\d",
        "x+",
        "é",
    ]
)
_ALTS = st.lists(st.lists(_PIECES, min_size=1, max_size=5).map("".join), min_size=1, max_size=6)


@given(
    prefix=st.lists(_PIECES, max_size=3).map("".join),
    alts=st.one_of(st.none(), _ALTS),
    suffix=st.lists(_PIECES, max_size=3).map("".join),
    probes=st.lists(st.text("01a9-*#+|.()$\\é", max_size=8)),
)
def test_literal_strings_are_exactly_what_the_regex_fully_matches(prefix, alts, suffix, probes):
    pattern = f"^{prefix}{'(' + '|'.join(alts) + ')' if alts else ''}{suffix}$"
    strings = xmlcheck._literal_strings(pattern)
    if strings is None:
        return  # not a literal: check_tree falls back to the regex itself
    compiled = re.compile(pattern)
    assert all(compiled.fullmatch(s) for s in strings), (pattern, strings)
    for probe in probes + [s + "1" for s in strings] + [s[:-1] for s in strings]:
        assert (probe in strings) == bool(compiled.fullmatch(probe)), (pattern, probe)
    if alts is not None:  # what `$1` can be: exactly the first group of every string matched
        captured = xmlcheck.literal_alternatives(pattern)
        assert len(captured) == len(alts)
        assert {compiled.fullmatch(s).group(1) for s in strings} == set(captured)


def test_kind_of():
    assert xmlcheck.kind_of("callcenter/tiers/a.xml") == "callcenter/tiers"
    assert xmlcheck.kind_of("dialplan/public.xml") == "dialplan"


def test_a_user_where_freeswitch_does_not_look_is_not_a_user(tmp_path):
    """switch_xml_locate_user reads <groups><group><users><user> and the domain's own <user>, nothing else."""
    hidden = DOMAIN.replace(
        "<groups>",
        '<users><user id="102"><params><param name="a1-hash" '
        'value="0123456789abcdef0123456789abcdef"/></params></user></users><groups>',
    )
    direct = DOMAIN.replace(
        "<groups>",
        '<user id="102"><params><param name="a1-hash" '
        'value="0123456789abcdef0123456789abcdef"/></params></user><groups>',
    )
    bridge = CONTEXT.replace("^(101)$", "^(101|102)$")
    found = problems(tmp_path / "hidden", {"directory/a.xml": hidden, "dialplan/a.xml": bridge})
    assert any("user 102@acme.example is not in the directory" in p for p in found), found
    rels = write(tmp_path / "direct", {"directory/a.xml": direct, "dialplan/a.xml": bridge})
    summaries = xmlcheck.check_paths(tmp_path / "direct", rels)
    assert sorted(summaries["directory/a.xml"]["users"]["acme.example"]) == ["101", "102"]


AGENTS = (
    '<include>\n  <agent name="101@acme.example" type="callback" '
    'contact="[leg_timeout=20]user/101@acme.example"/>\n</include>\n'
)
QUEUES = '<include>\n  <queue name="600@acme.example"/>\n</include>\n'
TIERS = '<include>\n  <tier agent="101@acme.example" queue="600@acme.example" level="1" position="1"/>\n</include>\n'


@pytest.mark.parametrize(
    "rel, old, new, message",
    [
        ("callcenter/agents/a.xml", ' type="callback"', "", "agent 101@acme.example has no type"),
        ("callcenter/tiers/a.xml", ' level="1"', "", "has no numeric level"),
        ("callcenter/tiers/a.xml", 'position="1"', 'position="x"', "has no numeric position"),
        ("callcenter/queues/a.xml", 'name="600@acme.example"', 'name="600 @acme.example"', "must be one word"),
        ("callcenter/agents/a.xml", 'name="101@acme.example"', 'name="101@acme.example\'"', "must be one word"),
    ],
)
def test_callcenter_rules(tmp_path, rel, old, new, message):
    """What mod_callcenter would skip, or callcenter_config could not name, is refused at render time."""
    files = {
        "directory/a.xml": DOMAIN,
        "callcenter/agents/a.xml": AGENTS,
        "callcenter/queues/a.xml": QUEUES,
        "callcenter/tiers/a.xml": TIERS,
    }
    xmlcheck.check_paths(tmp_path / "ok", write(tmp_path / "ok", files))  # the valid set passes
    assert old in files[rel]
    files[rel] = files[rel].replace(old, new)
    found = problems(tmp_path / "bad", files)
    assert any(message in p and p.startswith(rel) for p in found), found
