"""The journal of `fsctl apply` (steps 5 and 7 of fsctl.services.apply): before any file of the
conf dir is replaced, a hard link of its current version and a manifest of every path touched;
a crash or a refused reloadxml puts them back. Files here are written atomically and synced.
"""

from __future__ import annotations

import json
import os
import shutil
from pathlib import Path

from ..files import fsync_dir as _fsync_dir, write_atomic as _write_atomic
from ..model import utcnow

JOURNAL_DIR = ".fsctl-journal"
MANIFEST = "manifest.json"


def _write_json_atomic(path: Path, data):
    _write_atomic(path, json.dumps(data, separators=(",", ":")).encode("utf-8"))


def begin_journal(conf: Path, paths) -> Path:
    """Keep the current version of every path about to change; return the journal folder."""
    journal = conf / JOURNAL_DIR
    shutil.rmtree(journal, ignore_errors=True)
    backup = journal / "backup"
    backup.mkdir(parents=True)
    files = {}
    for rel in paths:
        target = conf / rel
        existed = target.exists()
        if existed:
            (backup / rel).parent.mkdir(parents=True, exist_ok=True)
            os.link(target, backup / rel)
        files[rel] = existed
    # The manifest is written last: its presence means every backup is in place.
    _write_json_atomic(journal / MANIFEST, {"files": files, "started_at": utcnow().isoformat()})
    _fsync_dir(journal)
    return journal


def rollback_journal(conf: Path) -> list:
    """Put back the files a journal recorded (restore or delete); return the paths restored."""
    journal = conf / JOURNAL_DIR
    manifest = journal / MANIFEST
    if not journal.exists():
        return []
    restored = []
    if manifest.exists():
        with open(manifest, encoding="utf-8") as fh:
            files = json.load(fh)["files"]
        for rel, existed in files.items():
            target = conf / rel
            if existed:
                os.replace(journal / "backup" / rel, target)
            elif target.exists():
                target.unlink()
                _prune_empty_dirs(target.parent, conf)
            restored.append(rel)
    shutil.rmtree(journal, ignore_errors=True)
    return sorted(restored)


def _prune_empty_dirs(folder: Path, conf: Path):
    """Remove folders an apply created and left empty, up to (not including) the conf dir."""
    while folder != conf and conf in folder.parents:
        try:
            folder.rmdir()
        except OSError:
            return
        folder = folder.parent
