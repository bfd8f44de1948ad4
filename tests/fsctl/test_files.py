"""fsctl.files: a file is replaced whole or left as it was, and no temp file stays behind."""

import os

import pytest

from fsctl.files import umask_mode, write_atomic


def test_write_replaces_the_file_with_mode_and_time(tmp_path):
    target = tmp_path / "manifest.json"
    target.write_text("old")
    write_atomic(target, b"new", mode=0o644, mtime=1_700_000_000)
    assert target.read_bytes() == b"new"
    assert target.stat().st_mode & 0o777 == 0o644 and target.stat().st_mtime == 1_700_000_000
    assert os.listdir(tmp_path) == ["manifest.json"]


def test_a_failed_replace_leaves_the_old_file_and_no_temp(tmp_path):
    target = tmp_path / "report.html"
    target.mkdir()  # os.replace of a file onto a folder fails
    (target / "keep").write_text("x")
    with pytest.raises(OSError):
        write_atomic(target, b"new")
    assert os.listdir(tmp_path) == ["report.html"] and os.listdir(target) == ["keep"]


def test_umask_mode_is_what_open_would_create(tmp_path):
    old = os.umask(0o027)
    try:
        assert umask_mode() == 0o640
        write_atomic(tmp_path / "r.html", b"x", mode=umask_mode())
        with open(tmp_path / "plain", "wb"):
            pass
        assert (tmp_path / "r.html").stat().st_mode & 0o777 == (tmp_path / "plain").stat().st_mode & 0o777
    finally:
        os.umask(old)
