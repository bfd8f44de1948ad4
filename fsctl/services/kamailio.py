"""Kamailio in front of the FreeSWITCH nodes: writing its files, checking them, reloading them.

The files (text from fsctl.render.kamailio), in `kamailio_dir` or `fsctl render kamailio --out DIR`:
kamailio.cfg (read when Kamailio starts: `fsctl render kamailio`, then restart Kamailio),
dispatcher.list and the db_text tables dbtext/fsctl_domains and dbtext/fsctl_dids.

`fsctl apply` keeps the routing data in line after the nodes (`apply_routing`): the files that
changed are replaced (`os.replace`) and reloaded over Kamailio's control socket, no restart:
`kamcmd dispatcher.reload`, `kamcmd htable.reload fsctl_domains|fsctl_dids`. The dispatcher list
also keeps, for one more apply, the sets the tables Kamailio has loaded still point at, so
between the two reloads no lookup finds a set that is gone.

db_text notices a changed table by its file's modification time in whole seconds (db_text's
`dbt_check_mtime`, strictly newer): each table written gets a time at least one second past the
one it replaces.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import tempfile
import time
from pathlib import Path

from ..errors import OperationError, UnreachableError
from ..model import Node
from ..render.kamailio import (
    CFG,
    DBTEXT,
    DISPATCHER,
    TABLES,
    build_routing,
    pair_of,
    parse_table,
    render_cfg,
    routing_files,
)

PENDING = ".fsctl-kamailio-pending"  # routing written but not (all) reloaded yet
KAMAILIO = "/usr/sbin/kamailio"


def check_cfg(path, binary=KAMAILIO) -> str:
    """`kamailio -c -f path`: "" when Kamailio accepts it; raise OperationError with its complaint."""
    try:
        proc = subprocess.run([binary, "-c", "-f", str(path)], capture_output=True, text=True, timeout=60)
    except FileNotFoundError:
        raise OperationError(f"{binary}: not installed here (Debian package kamailio): cannot check {path}") from None
    if proc.returncode != 0:
        errors = [ln.strip() for ln in proc.stderr.splitlines() if "ERROR" in ln or "CRITICAL" in ln]
        raise OperationError(f"kamailio refuses {path}: " + (errors[0] if errors else proc.stderr.strip()[-300:]))
    return ""


# --------------------------------------------------------------------------- writing
def _write(path: Path, text: str, newer_than=None):
    """Write atomically; with `newer_than` (the old file's mtime) the new one gets a later whole second."""
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as fh:
            fh.write(text)
            fh.flush()
            os.fsync(fh.fileno())
        os.chmod(tmp, 0o644)
        if newer_than is not None:
            stamp = max(int(time.time()), int(newer_than) + 1)
            os.utime(tmp, (stamp, stamp))
        os.replace(tmp, path)
    except BaseException:
        if os.path.exists(tmp):
            os.unlink(tmp)
        raise


def _read(path: Path) -> str | None:
    try:
        return path.read_text(encoding="utf-8")
    except FileNotFoundError:
        return None


def render_all(settings, out, check=True) -> dict:
    """`fsctl render kamailio`: kamailio.cfg and the routing data into `out`; checked with kamailio -c."""
    out = Path(out)
    nodes = {n.id: n for n in Node.select()}
    files = routing_files(build_routing(), nodes)
    files[CFG] = render_cfg(settings, out)
    for rel, text in files.items():
        old = out / rel
        _write(old, text, newer_than=old.stat().st_mtime if rel.startswith(DBTEXT) and old.exists() else None)
    checked = False
    if check and os.path.exists(KAMAILIO):
        check_cfg(out / CFG)
        checked = True
    return {"out": str(out), "files": sorted(files), "checked": checked}


class Kamcmd:
    """Runs `kamcmd -s <ctl> COMMAND ARGS` (Kamailio's control socket); `run` is injectable."""

    def __init__(self, settings, run=subprocess.run):
        self.binary, self.ctl, self._run = settings.kamcmd, settings.kamailio_ctl, run

    def __call__(self, *args) -> str:
        try:
            proc = self._run([self.binary, "-s", self.ctl, *args], capture_output=True, text=True, timeout=30)
        except FileNotFoundError:
            raise OperationError(f"{self.binary}: not found (Debian package kamailio; setting kamcmd)") from None
        except subprocess.TimeoutExpired:
            raise UnreachableError(f"Kamailio {self.ctl} did not answer {' '.join(args)} within 30 s") from None
        text = (proc.stdout + proc.stderr).strip()
        if proc.returncode != 0 or text.startswith("error") or "ERROR" in text:
            if "connect" in text.lower():
                raise UnreachableError(f"Kamailio {self.ctl} unreachable ({text.splitlines()[0] if text else '?'})")
            raise OperationError(f"Kamailio refused {' '.join(args)}: {text.splitlines()[0] if text else '?'}")
        return text


def apply_routing(settings, kamcmd=None) -> dict:
    """Bring Kamailio's routing data in line: changed files replaced, then reloaded (no restart).

    A reload that fails leaves a marker: the next apply reloads everything again, changed or not.
    Returns {"summary", "changed": [files], "reloaded": [what]}.
    """
    folder = Path(settings.kamailio_dir)
    kamcmd = kamcmd or Kamcmd(settings)
    nodes = {n.id: n for n in Node.select()}
    routing = build_routing()
    loaded = set()
    for table in TABLES:  # the sets Kamailio's loaded tables may still name
        loaded |= set(parse_table(_read(folder / DBTEXT / table) or "").values())
    keep = {s for s in loaded if pair_of(s)[0] in nodes}
    files = routing_files(routing, nodes, keep)
    changed = [rel for rel, text in files.items() if _read(folder / rel) != text]
    pending = (folder / PENDING).exists()
    if not changed and not pending:
        return {
            "summary": f"routing unchanged ({len(routing['domains'])} domains, {len(routing['dids'])} DIDs, "
            f"{len(routing['sets'])} sets): no reload",
            "changed": [],
            "reloaded": [],
        }
    folder.mkdir(parents=True, exist_ok=True)
    _write(folder / PENDING, "routing written, reload pending\n")
    # Sets first, then the tables that point at them.
    order = [DISPATCHER, f"{DBTEXT}/version", *(f"{DBTEXT}/{t}" for t in TABLES)]
    reloaded = []
    for rel in order:
        path = folder / rel
        if rel in changed:
            _write(
                path, files[rel], newer_than=path.stat().st_mtime if rel.startswith(DBTEXT) and path.exists() else None
            )
        if rel == DISPATCHER and (rel in changed or pending):
            kamcmd("dispatcher.reload")
            reloaded.append("dispatcher")
        table = rel.rsplit("/", 1)[-1]
        if table in TABLES and (rel in changed or pending):
            kamcmd("htable.reload", table)
            reloaded.append(table)
    os.unlink(folder / PENDING)
    return {
        "summary": f"{len(routing['domains'])} domains, {len(routing['dids'])} DIDs, {len(routing['sets'])} "
        f"sets; reloaded {', '.join(reloaded)}",
        "changed": changed,
        "reloaded": reloaded,
    }


def routing_hook(settings, kamcmd=None):
    """apply_nodes' `kamailio` callback: apply_routing after the nodes."""

    def hook(result, now):
        return apply_routing(settings, kamcmd)

    return hook


def installed() -> bool:
    """True when Kamailio's binary is here (kamailio -c checks are possible)."""
    return os.path.exists(KAMAILIO) or shutil.which("kamailio") is not None
