"""Writing the files: the Jinja2 environment (an operator's templates_dir first, then the packaged
templates), one template streamed into one file with its sha256, a tenant's files, the public
context, a whole tree.
"""

from __future__ import annotations

import contextlib
import functools
import hashlib
import importlib.resources
import itertools
import json
import os
import tempfile
from pathlib import Path

import jinja2
import markupsafe

from ..errors import OperationError, ValidationError
from .context import tenant_contexts
from .dialplan import build_public_context
from .load import active_tenants, load_tenants, public_dids

PUBLIC_FILE = "dialplan/public.xml"
# The folders of a configuration tree fsctl writes (anything else in the folder is left alone).
MANAGED_DIRS = ("directory", "dialplan", "ivr", "conference", "callcenter")
# Rendered files hold password hashes (a1-hash) and voicemail PINs: owner and group (FreeSWITCH's)
# only. Installing (README) gives the conf dir to the fsctl user and the freeswitch group.
FILE_MODE = 0o640
# `fsctl render --out`: the files an earlier render wrote there (only those are ever removed).
OUT_MANIFEST = ".fsctl-render.json"


# (kind, path pattern, template, root child tag) of the files rendered per tenant.
TENANT_FILES = (
    ("directory", "directory/{domain}.xml", "directory.xml"),
    ("dialplan", "dialplan/{domain}.xml", "dialplan.xml"),
    ("ivr", "ivr/{domain}.xml", "ivr.xml"),
    ("conference", "conference/{domain}.xml", "conference.xml"),
    ("queues", "callcenter/queues/{domain}.xml", "callcenter_queues.xml"),
    ("agents", "callcenter/agents/{domain}.xml", "callcenter_agents.xml"),
    ("tiers", "callcenter/tiers/{domain}.xml", "callcenter_tiers.xml"),
)


def packaged_templates_dir() -> Path:
    """The packaged templates: inside the installed package, else `<repo>/templates`."""
    try:
        candidate = importlib.resources.files("fsctl") / "templates"
        if candidate.is_dir():
            return Path(str(candidate))
    except (ModuleNotFoundError, TypeError):  # pragma: no cover - namespace quirks
        pass
    return Path(__file__).resolve().parents[2] / "templates"


try:  # the C function behind markupsafe.escape (what autoescape calls for every {{ ... }})
    from markupsafe._speedups import _escape_inner
except ImportError:  # pragma: no cover - markupsafe without its C speedups
    _escape_inner = None


def _fast_escape(value, _str=str, _inner=_escape_inner, _escape=markupsafe.escape):
    """markupsafe.escape for output: the same text, as a plain str for plain strings (no Markup object).

    Jinja calls the template global `escape` only on what it outputs (`yield escape(x)` or a
    buffer it joins and marks safe itself), so the text's type is never seen: only its characters.
    """
    if type(value) is _str:
        return _inner(value)
    return _escape(value)


class _XmlTemplate(jinja2.Template):
    """A template whose autoescape calls `_fast_escape` (same output as markupsafe.escape, ~6x faster).

    Jinja compiles `{{ x }}` to `escape(x)`, `escape` being a global of the compiled module; the
    render streams ~1.5 million of them for 1,000 tenants. If a Jinja version named it
    otherwise, the swap would not happen and markupsafe.escape would run: slower, same output.
    """

    @classmethod
    def from_code(cls, environment, code, globals, uptodate=None):
        template = super().from_code(environment, code, globals, uptodate)
        namespace = template.root_render_func.__globals__  # the compiled module's globals
        if _escape_inner is not None and namespace.get("escape") is markupsafe.escape:
            namespace["escape"] = _fast_escape
        return template

    def chunks(self, context: dict):
        """The output's pieces as the compiled code yields them: `generate()` without its wrapper
        generator (one resumption less per piece; the render yields millions of pieces)."""
        if self.environment.is_async:  # pragma: no cover - fsctl's environments are synchronous
            return self.generate(context)
        return self.root_render_func(self.new_context(context))


class _XmlEnvironment(jinja2.Environment):
    template_class = _XmlTemplate


@functools.lru_cache(maxsize=8)
def make_environment(templates_dir: str | os.PathLike | None = None, bytecode_dir=None) -> jinja2.Environment:
    """A Jinja2 environment: the operator's folder first (if any), then the packaged templates.

    `bytecode_dir` keeps compiled templates between runs (jinja2 re-checks the sources' mtimes).
    """
    loaders = []
    if templates_dir:
        loaders.append(jinja2.FileSystemLoader(str(templates_dir)))
    loaders.append(jinja2.FileSystemLoader(str(packaged_templates_dir())))
    return _XmlEnvironment(
        loader=jinja2.ChoiceLoader(loaders),
        autoescape=True,  # every template here is XML
        undefined=jinja2.StrictUndefined,
        keep_trailing_newline=True,
        trim_blocks=True,
        lstrip_blocks=True,
        bytecode_cache=_bytecode_cache(bytecode_dir) if bytecode_dir else None,
        # A template is read once per process (fsctl is a command, not a server): no stat of
        # its source before each of the thousands of files a render writes.
        auto_reload=False,
    )


def _bytecode_cache(folder):
    path = Path(folder)
    try:
        path.mkdir(parents=True, exist_ok=True)
    except OSError:
        return None
    return jinja2.FileSystemBytecodeCache(str(path))


def tenant_paths(domain: str) -> list[str]:
    """The relative paths of every file that may be rendered for one tenant."""
    return [pattern.format(domain=domain) for _, pattern, _ in TENANT_FILES]


def render_file(
    env: jinja2.Environment, template: str, context: dict, path: Path, atomic: bool = True, stream: bool = False
) -> str:
    """Render a template into `path` (atomically: temp file + os.replace); return its sha256.

    `atomic=False` writes `path` directly: for a private staging folder that is moved in later.
    `stream=True` writes in batches, so memory stays flat whatever the file's size: for the
    public context, which grows with the number of tenants. A tenant's file is one tenant's
    worth of text, joined at once (40% faster than batches).
    """
    digest = hashlib.sha256()
    tmp = str(path)
    for attempt in (1, 2):
        try:
            if atomic:
                fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
            else:
                fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, FILE_MODE)
            break
        except FileNotFoundError:
            if attempt == 2:
                raise
            path.parent.mkdir(parents=True, exist_ok=True)  # (once per folder, not per file)
    try:
        with os.fdopen(fd, "wb") as fh:
            chunks = env.get_template(template).chunks(context)
            batches = iter(lambda: list(itertools.islice(chunks, 2048)), []) if stream else (chunks,)
            for batch in batches:
                data = "".join(batch).encode("utf-8")
                fh.write(data)
                digest.update(data)
        if atomic:
            os.chmod(tmp, FILE_MODE)
            os.replace(tmp, path)
    except BaseException as exc:
        if os.path.exists(tmp):
            os.unlink(tmp)
        if isinstance(exc, jinja2.TemplateError):
            raise template_error(template, exc) from None
        raise
    return digest.hexdigest()


def template_error(template: str, exc: jinja2.TemplateError) -> OperationError:
    """A template's mistake (an operator's override, usually) as one line: the file, its line, what."""
    line = getattr(exc, "lineno", None)
    name = getattr(exc, "filename", None) or getattr(exc, "name", None) or template
    tb = exc.__traceback__
    while tb is not None:  # the deepest frame of compiled template code gives the template's line
        compiled = tb.tb_frame.f_globals.get("__jinja_template__")
        if compiled is not None:
            line, name = compiled.get_corresponding_lineno(tb.tb_lineno), compiled.filename or template
        tb = tb.tb_next
    where = f"template {name}" + (f" line {line}" if line else "")
    return OperationError(f"{where}: {exc.message or exc.__class__.__name__}")


def render_tenant(env, data: dict, out: Path, watchdog: int = 6, atomic: bool = True) -> dict:
    """Write one tenant's files under `out`; return {relative path: sha256}.

    The directory and the dialplan are always written; the IVR, conference and callcenter
    files only when the tenant has such things (no empty files).
    """
    contexts = tenant_contexts(data, watchdog)
    digests = {}
    for kind, pattern, template in TENANT_FILES:
        if kind not in ("directory", "dialplan") and not any(contexts[kind].values()):
            continue
        rel = pattern.format(domain=data["tenant"]["domain"])
        digests[rel] = render_file(env, template, contexts[kind], out / rel, atomic)
    return digests


def render_public(env, out: Path, watchdog: int = 6, atomic: bool = True, node=None) -> str:
    """Write dialplan/public.xml (every DID of every active tenant, or of those `node` holds) under `out`;
    return its sha256."""
    dids = (dict(d, watchdog=watchdog) for d in public_dids(node))
    context = build_public_context(dids)
    return render_file(env, "dialplan.xml", context, out / PUBLIC_FILE, atomic, stream=True)


def render_tree(out, templates_dir: str = "", watchdog: int = 6, env=None, atomic: bool = False) -> dict:
    """Render every active tenant and the public context under `out`; return {path: sha256}.

    For an output folder FreeSWITCH does not read (`fsctl render --out`); the live conf dir is
    written by `fsctl.services.apply` (staging, validation, journal, os.replace).
    """
    out = Path(out)
    env = env or make_environment(templates_dir)
    digests = {}
    for _tenant, data in load_tenants(active_tenants().iterator()):
        digests.update(render_tenant(env, data, out, watchdog, atomic))
    digests[PUBLIC_FILE] = render_public(env, out, watchdog, atomic)
    return digests


def layout_files(out) -> list[str]:
    """Every *.xml (or link named so) below the managed folders of `out`, as relative paths."""
    found = []
    for top in MANAGED_DIRS:
        for folder, dirs, files in os.walk(Path(out) / top):  # (links to folders are not entered)
            rel_dir = os.path.relpath(folder, out)
            dirs[:] = [d for d in dirs if not d.startswith(".")]
            found += [f"{rel_dir}/{name}" for name in files if name.endswith(".xml") and not name.startswith(".")]
    return sorted(found)


def _read_manifest(out: Path) -> set:
    try:
        with open(out / OUT_MANIFEST, encoding="utf-8") as fh:
            return set(json.load(fh)["files"])
    except FileNotFoundError:
        return set()
    except (OSError, ValueError, KeyError, TypeError):
        raise ValidationError(
            "--out", str(out), f"its {OUT_MANIFEST} cannot be read: move the folder aside and render into an empty one"
        ) from None


def _write_manifest(out: Path, files) -> None:
    fd, tmp = tempfile.mkstemp(dir=out, prefix=f"{OUT_MANIFEST}.", suffix=".tmp")
    with os.fdopen(fd, "w", encoding="utf-8") as fh:
        json.dump({"files": sorted(files)}, fh, indent=0)
        fh.flush()
        os.fsync(fh.fileno())
    os.replace(tmp, out / OUT_MANIFEST)


def render_out(out, templates_dir: str = "", watchdog: int = 6) -> tuple[dict, list]:
    """`fsctl render --out`: the tree into a folder, each file atomically; ({path: sha256}, removed).

    Only files fsctl wrote there are ever replaced or removed: they are listed in the folder's
    OUT_MANIFEST (written before any file, covering every file this render may write, so an
    interrupted render leaves none unlisted). A folder holding FreeSWITCH XML of that layout
    that fsctl did not write (a stock `directory/default.xml`) is refused (ValidationError).
    Each file is written to a temporary name and renamed: an interruption leaves old or new
    files, never a half-written one.
    """
    out = Path(out)
    ours = _read_manifest(out)
    foreign = [rel for rel in layout_files(out) if rel not in ours]
    if foreign:
        more = f" and {len(foreign) - 3} more" if len(foreign) > 3 else ""
        raise ValidationError(
            "--out",
            str(out),
            f"holds FreeSWITCH XML fsctl did not write ({', '.join(foreign[:3])}"
            f"{more}): render into an empty folder or one fsctl rendered into",
        )
    out.mkdir(parents=True, exist_ok=True)
    may_write = {PUBLIC_FILE} | {rel for t in active_tenants() for rel in tenant_paths(t.domain)}
    _write_manifest(out, ours | may_write)
    for rel in layout_temporaries(out):  # what an interrupted render left
        with contextlib.suppress(FileNotFoundError):
            os.unlink(out / rel)
    digests = render_tree(out, templates_dir, watchdog, atomic=True)
    removed = sorted(rel for rel in (ours | may_write) - set(digests) if (out / rel).exists())
    for rel in removed:
        (out / rel).unlink()
    _write_manifest(out, digests)
    return digests, removed


def layout_temporaries(out) -> list[str]:
    """The temporary files (`.<name>.xml.*.tmp`) an interrupted atomic write left below the managed folders."""
    found = []
    for top in MANAGED_DIRS:
        for folder, _dirs, files in os.walk(Path(out) / top):
            rel_dir = os.path.relpath(folder, out)
            found += [f"{rel_dir}/{n}" for n in files if n.startswith(".") and ".xml." in n and n.endswith(".tmp")]
    return found
