"""Render the FreeSWITCH XML of every tenant from the model, streamed file by file.

Shape (house style, after xivo-confgend): `load_tenant` reads one tenant's rows as plain
dicts; pure `build_<thing>_context(...) -> dict` functions turn rows into everything a
template prints; the Jinja2 templates (templates/, overridable by `Settings.templates_dir`)
only loop and print; `render_file` streams a template into a file and hashes it on the way.

Files, relative to the output folder (`Settings.conf_dir` for `fsctl apply`):

    directory/<domain>.xml          <include><domain> users with a1-hash      (directory section)
    dialplan/<domain>.xml           <include><context name="<domain>">      (dialplan section)
    dialplan/public.xml             <include><context name="fsctl-public">, every DID
    ivr/<domain>.xml                <include><menu name="N@<domain>">       (ivr.conf <menus>)
    conference/<domain>.xml         <include><profile name="<domain>-N">    (conference.conf <profiles>)
    callcenter/queues/<domain>.xml  <include><queue name="N@<domain>">      (callcenter.conf <queues>)
    callcenter/agents/<domain>.xml  <include><agent name="U@<domain>">      (callcenter.conf <agents>)
    callcenter/tiers/<domain>.xml   <include><tier agent=... queue=...>     (callcenter.conf <tiers>)

The package, by job: `load` (rows from the database, in batches), `context` and `dialplan`
(pure contexts), `text` (tenant text made safe), `write` (templates, files, the tree). This
module gathers the names the rest of fsctl uses.
"""

from ..freeswitch.chanvars import (  # the directory variables the rendered XML sets
    FSCTL_RECORD,
    FSCTL_TENANT_NAME,
    FSCTL_TOLL,
    OUTBOUND_CALLER_ID,
)
from . import load as _load
from .context import build_directory_context, tenant_contexts
from .dialplan import PUBLIC_CONTEXT, blacklist_regex, build_dialplan_context, build_public_context
from .load import BATCH, active_tenants, load_tenant, plain_rows, public_dids, public_source_digest
from .text import a1_hash, xml_text
from .write import (
    FILE_MODE,
    MANAGED_DIRS,
    PUBLIC_FILE,
    TENANT_FILES,
    _fast_escape,
    _XmlEnvironment,
    make_environment,
    packaged_templates_dir,
    render_file,
    render_out,
    render_public,
    render_tenant,
    render_tree,
    template_error,
    tenant_paths,
)

_BATCH = BATCH  # tenants per round of queries for `load_tenants` below (a test sets it smaller)


def load_tenants(tenants):
    """(tenant, data) for each of `tenants`, loaded `_BATCH` tenants at a time (load.load_tenants)."""
    return _load.load_tenants(tenants, batch=_BATCH)


__all__ = [
    "BATCH",
    "FILE_MODE",
    "MANAGED_DIRS",
    "render_out",
    "FSCTL_RECORD",
    "FSCTL_TENANT_NAME",
    "FSCTL_TOLL",
    "OUTBOUND_CALLER_ID",
    "PUBLIC_CONTEXT",
    "PUBLIC_FILE",
    "TENANT_FILES",
    "_XmlEnvironment",
    "_fast_escape",
    "a1_hash",
    "active_tenants",
    "blacklist_regex",
    "build_directory_context",
    "build_dialplan_context",
    "build_public_context",
    "load_tenant",
    "load_tenants",
    "make_environment",
    "packaged_templates_dir",
    "plain_rows",
    "public_dids",
    "public_source_digest",
    "render_file",
    "render_public",
    "render_tenant",
    "render_tree",
    "template_error",
    "tenant_contexts",
    "tenant_paths",
    "xml_text",
]
