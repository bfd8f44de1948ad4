"""Tenant text on the real switch: backslashes, quotes, `$${...}` and `${...}` in names come back as written.

`xml_text` (fsctl/render/text.py) writes `$` as the full-width dollar so that neither the preprocessor
(`$${...}`, at load time) nor the expansion (`${...}`, at call time) touches a name (FACTS.md); backslashes
and quotes are left as typed. This proves it on FreeSWITCH: the directory it loaded (xml_locate), the value
it hands out (user_data) and the caller name of a call's record hold exactly the rendered bytes.
"""

import xml.etree.ElementTree as ET

from fsctl.render import xml_text

from .conftest import PASSWORD

USER_NAME = r"""Jo\nas \\ "Q" 'x' $${hostname} ${caller_id_number} end\ """.strip()
TENANT_NAME = r"""Ten\ant "A" 'b' $${domain} ${uuid} \\"""


def test_names_with_backslashes_quotes_and_dollars_come_back_byte_identical(live_debug):
    live = live_debug
    t = live.tenant("text")
    live.fsctl("tenant", "edit", t.domain, "--name", TENANT_NAME)
    t.fsctl("user", "add", "101", "--name", USER_NAME, "--password", PASSWORD)
    t.user("102")
    live.apply()
    want_user, want_tenant = xml_text(USER_NAME), xml_text(TENANT_NAME)
    assert want_user == USER_NAME.replace("$", "\uff04") and "\\" in want_user and '"' in want_user

    # What FreeSWITCH loaded: no `$${...}` replaced by the preprocessor, no backslash or quote changed.
    located = live.esl.api(f"xml_locate directory domain name {t.domain}")
    domain = ET.fromstring(located)
    domain = domain if domain.tag == "domain" else domain.find(".//domain")
    variables = {v.get("name"): v.get("value") for v in domain.find("variables")}
    assert variables["fsctl_tenant_name"].encode() == want_tenant.encode()
    user = domain.find(".//user[@id='101']")
    names = {v.get("name"): v.get("value") for v in user.find("variables")}
    assert names["effective_caller_id_name"].encode() == want_user.encode()
    # What it hands out for the user.
    assert live.esl.api(f"user_data 101@{t.domain} var effective_caller_id_name").encode() == want_user.encode()

    # A call: the call record's caller name is the channel's, as FreeSWITCH took it from the directory.
    # (Not the phone's display: mod_sofia writes the name into the From header's quotes without escaping,
    # so the callee's phone shows a garbled name for `"` or `\`; that is FreeSWITCH's, not asserted here.)
    a, b = t.phone("101"), t.phone("102")
    call = a.call("102")
    invite = b.wait_invite(timeout=10)
    call.wait_answered(timeout=10)
    call.bye()
    b.incoming(invite).wait_ended(timeout=10)
    record = t.wait_call(lambda c: c["callee"] == "102")
    assert record["caller"] == "101" and record["caller_name"].encode() == want_user.encode()
