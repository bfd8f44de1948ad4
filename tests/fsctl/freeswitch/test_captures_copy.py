"""tests/data/esl-captures must stay a byte-exact copy of shared/freeswitch/esl-captures."""

from pathlib import Path

from tests.fakes import captures

SHARED = Path(__file__).resolve().parents[4] / "shared" / "freeswitch" / "esl-captures"


def test_local_copy_matches_shared():
    local = Path(__file__).resolve().parents[2] / "data" / "esl-captures"
    assert captures.captures_dir() in (local, SHARED) or captures.captures_dir().is_dir()
    names = sorted(p.name for p in local.iterdir())
    assert "esl_reloadxml_errors.txt" in names and len(names) >= 10
    if SHARED.is_dir():  # beside a checkout (always in CI): the recorded truth wins
        assert sorted(p.name for p in SHARED.iterdir()) == names
        for name in names:
            assert (local / name).read_bytes() == (SHARED / name).read_bytes(), name
