"""`fsctl rec pull` and fsctl.services.sftp against a real OpenSSH sshd on 127.0.0.1 (tests/sshd.py).

The "media server" is the sshd's file system: the recordings folder is the remote folder.
"""

import dataclasses
import datetime as dt
import hashlib
import json
import os

import pytest

from fsctl.services import sftp
from tests.conftest import free_port
from tests.fsctl.services.test_recordings import T0, cli_setup, refused
from tests.sshd import SshdServer


@pytest.fixture(scope="session")
def sshd():
    server = SshdServer().start()
    yield server
    server.stop()


@pytest.fixture
def pulling(fsctl_sqlite, sshd, tmp_path):
    """The CLI with recordings catalogued and the SFTP settings pointing at the sshd."""
    root = str(tmp_path / "recordings")
    os.makedirs(root)
    ids = cli_setup(fsctl_sqlite, root)
    fsctl_sqlite.env.update({
        "FSCTL_SFTP_HOST": "127.0.0.1", "FSCTL_SFTP_PORT": str(sshd.port), "FSCTL_SFTP_USER": sshd.user,
        "FSCTL_SFTP_KEY": sshd.client_key, "FSCTL_SFTP_KNOWN_HOSTS": sshd.known_hosts, "FSCTL_SFTP_REMOTE_DIR": root,
    })
    return fsctl_sqlite, root, ids, str(tmp_path / "local")


def local_files(dest):
    return sorted(os.path.relpath(os.path.join(d, f), dest) for d, _, fs in os.walk(dest) for f in fs)


def endpoint(sshd, known_hosts=None, port=None):
    return sftp.Endpoint("127.0.0.1", port or sshd.port, sshd.user, sshd.client_key, known_hosts or sshd.known_hosts)


def test_pull_fetches_verifies_and_is_idempotent(pulling):
    fsctl, root, ids, dest = pulling
    result = fsctl("rec", "pull", "--dest", dest, "--as", "100@acme.example", "--jobs", "2", "--json")
    rows = json.loads(result.stdout)
    assert sorted(r["status"] for r in rows) == ["fetched", "fetched"]
    assert local_files(dest) == [
        "acme.example/2026/11/20/20261120T093000Z_101_in_+37060000001_u1.wav",
        "acme.example/2026/11/20/20261120T093500Z_102_in_+37060000001_u2.wav",
    ]  # only what 100@acme.example may see: not beta.example's
    for rel in local_files(dest):
        assert open(os.path.join(dest, rel), "rb").read() == open(os.path.join(root, rel), "rb").read()
    again = fsctl("rec", "pull", "--dest", dest)
    assert again.stderr.strip().splitlines()[-1] == "1 fetched, 0 resumed, 2 skipped, 0 failed"


# a worker thread must not die with an unhandled error when its connection goes
@pytest.mark.filterwarnings("error::pytest.PytestUnhandledThreadExceptionWarning")
def test_pull_resumes_after_the_connection_is_killed(sshd, tmp_path):
    remote = tmp_path / "remote.bin"
    data = os.urandom(24 * 1024 * 1024)
    remote.write_bytes(data)
    final = str(tmp_path / "local" / "remote.bin")
    transfer = sftp.Transfer(str(remote), final, len(data), hashlib.sha256(data).hexdigest())
    seen = []

    def kill_midway(_transfer, n):
        seen.append(n)
        if sum(seen) >= 4 * 1024 * 1024 and not getattr(kill_midway, "done", False):
            kill_midway.done = True
            assert sshd.kill_connections()  # the server side of the connection dies

    [first] = sftp.fetch_all(endpoint(sshd), [transfer], progress=kill_midway)
    assert first.status == "failed" and "run again to resume" in first.error, first
    part = os.path.getsize(final + ".part")
    assert 0 < part < len(data) and not os.path.exists(final)
    assert open(final + ".part", "rb").read() == data[:part]
    [second] = sftp.fetch_all(endpoint(sshd), [transfer])
    assert (second.status, second.resumed_from) == ("resumed", part)
    assert open(final, "rb").read() == data and not os.path.exists(final + ".part")


def test_pull_cli_resumes_a_partial_file(pulling):
    fsctl, root, ids, dest = pulling
    rel = "acme.example/2026/11/20/20261120T093000Z_101_in_+37060000001_u1.wav"
    data = open(os.path.join(root, rel), "rb").read()
    os.makedirs(os.path.dirname(os.path.join(dest, rel)))
    with open(os.path.join(dest, rel + ".part"), "wb") as fh:
        fh.write(data[:10000])  # what an interrupted run left
    rows = json.loads(fsctl("rec", "pull", "--dest", dest, "--user", "101", "--json").stdout)
    assert [(r["status"], r["resumed_from"]) for r in rows] == [("resumed", 10000)]
    assert open(os.path.join(dest, rel), "rb").read() == data


def test_a_part_file_that_is_a_link_is_refused(pulling, tmp_path):
    """A `.part` symlink planted in --dest had the recording appended to the file it points to."""
    fsctl, root, ids, dest = pulling
    rel = "acme.example/2026/11/20/20261120T093000Z_101_in_+37060000001_u1.wav"
    victim = tmp_path / "victim.conf"
    victim.write_text("important = true\n")
    os.makedirs(os.path.dirname(os.path.join(dest, rel)))
    os.symlink(victim, os.path.join(dest, rel + ".part"))
    result = fsctl("rec", "pull", "--dest", dest, "--user", "101", ok=False)
    assert result.exit_code == 1
    assert result.stderr.strip().splitlines()[-1] == \
        f'Error: 1 of 1 recordings failed: "{dest}/{rel}.part": is a symbolic link: refused, not touched'
    assert victim.read_text() == "important = true\n"
    assert os.path.islink(os.path.join(dest, rel + ".part")) and not os.path.exists(os.path.join(dest, rel))
    # nor is a final file that is a link taken as already there
    data = open(os.path.join(root, rel), "rb").read()
    os.symlink(os.path.join(root, rel), str(tmp_path / "link.wav"))
    transfer = sftp.Transfer(os.path.join(root, rel), str(tmp_path / "link.wav"), len(data),
                             hashlib.sha256(data).hexdigest())
    assert not sftp.local_complete(transfer)
    assert sftp.local_complete(dataclasses.replace(transfer, local_path=os.path.join(root, rel)))


def test_corrupted_remote_file_fails_verification(pulling):
    fsctl, root, ids, dest = pulling
    rel = "acme.example/2026/11/20/20261120T093000Z_101_in_+37060000001_u1.wav"
    path = os.path.join(root, rel)
    data = bytearray(open(path, "rb").read())
    data[5000] ^= 0xFF  # same size, different content
    open(path, "wb").write(bytes(data))
    result = fsctl("rec", "pull", "--dest", dest, ok=False)
    assert result.exit_code == 1
    assert result.stderr.strip().splitlines()[-1] == \
        f'Error: 1 of 3 recordings failed: "{root}/{rel}": SHA-256 differs from the catalogue (file discarded)'
    assert rel not in local_files(dest) and rel + ".part" not in local_files(dest)
    assert len(local_files(dest)) == 2  # the good ones are kept
    # a size that differs from the catalogue is refused too, longer or shorter
    open(path, "ab").write(b"more")
    result = fsctl("rec", "pull", "--dest", dest, ok=False)
    assert result.exit_code == 1 and result.stderr.strip().splitlines()[-1] == \
        f'Error: 1 of 3 recordings failed: "{root}/{rel}": the file is longer than the {len(data)} bytes of the ' \
        "catalogue (file discarded)"
    open(path, "wb").write(bytes(data[:3000]))
    result = fsctl("rec", "pull", "--dest", dest, ok=False)
    assert result.exit_code == 1 and result.stderr.strip().splitlines()[-1] == \
        f'Error: 1 of 3 recordings failed: "{root}/{rel}": the file ends early at byte 3000 of {len(data)} ' \
        "(file discarded)"
    assert rel not in local_files(dest) and rel + ".part" not in local_files(dest)


def test_changed_host_key_is_refused(pulling, sshd, tmp_path):
    fsctl, root, ids, dest = pulling
    impostor = str(tmp_path / "impostor")
    sshd.keygen(impostor)
    known = tmp_path / "known_hosts"
    known.write_text(sshd.host_line(impostor))  # known_hosts has another key for this host
    fsctl.env["FSCTL_SFTP_KNOWN_HOSTS"] = str(known)
    message = refused(fsctl, "rec", "pull", "--dest", dest, code=1)
    assert message == f"Error: sftp server 127.0.0.1:{sshd.port}: host key differs from the one in {known}: " \
                      "refusing to connect (possible impostor; check and update known_hosts)"
    assert not os.path.exists(dest) or local_files(dest) == []
    assert known.read_text() == sshd.host_line(impostor)  # never rewritten


def test_unknown_host_is_refused(pulling, sshd, tmp_path):
    fsctl, root, ids, dest = pulling
    known = tmp_path / "empty_known_hosts"
    known.write_text("")
    fsctl.env["FSCTL_SFTP_KNOWN_HOSTS"] = str(known)
    message = refused(fsctl, "rec", "pull", "--dest", dest, code=1)
    assert message == f"Error: sftp server 127.0.0.1:{sshd.port}: host key is not in {known}: refusing to " \
                      "connect (verify its fingerprint, then add it to known_hosts)"
    assert known.read_text() == ""  # nothing auto-added
    with pytest.raises(sftp.HostKeyError):
        sftp.Connection(endpoint(sshd, known_hosts=str(tmp_path / "missing")))


def test_unreachable_server_exits_3(pulling):
    fsctl, root, ids, dest = pulling
    port = free_port()
    fsctl.env["FSCTL_SFTP_PORT"] = str(port)
    message = refused(fsctl, "rec", "pull", "--dest", dest, code=3)
    assert message == f"Error: sftp server 127.0.0.1:{port} is unreachable: Connection refused"


def test_pull_filters_and_access(pulling):
    fsctl, root, ids, dest = pulling
    rows = json.loads(fsctl("rec", "pull", "--dest", dest, "--as", "201@beta.example", "--json").stdout)
    assert [r["status"] for r in rows] == ["fetched"]
    assert local_files(dest) == ["beta.example/2026/11/20/20261120T093000Z_201_in_+37060000001_u3.wav"]
    rows = json.loads(fsctl("rec", "pull", "--dest", dest, "--as", "101@acme.example", "--from",
                            (T0 + dt.timedelta(days=1)).date().isoformat(), "--json").stdout)
    assert rows == []
    assert refused(fsctl, "rec", "pull", "--dest", dest, "--as", "999@acme.example") == \
        'Error: user "999" does not exist in acme.example'


def test_parallel_transfers_each_on_own_connection(sshd, tmp_path):
    made, ports = [], set()

    def connect(ep):
        made.append(sftp.Connection(ep))
        ports.add(made[-1].client.get_transport().sock.getsockname()[1])
        return made[-1]

    transfers = []
    for i in range(12):
        data = os.urandom(200_000 + i)
        (tmp_path / f"r{i}").write_bytes(data)
        transfers.append(sftp.Transfer(str(tmp_path / f"r{i}"), str(tmp_path / "out" / f"r{i}"), len(data),
                                       hashlib.sha256(data).hexdigest()))
    results = sftp.fetch_all(endpoint(sshd), transfers, jobs=4, connect=connect)
    assert [r.status for r in results] == ["fetched"] * 12
    assert len(made) == 4 and len(ports) == 4  # four TCP connections

