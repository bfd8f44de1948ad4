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
    fsctl_sqlite.env.update(
        {
            "FSCTL_SFTP_HOST": "127.0.0.1",
            "FSCTL_SFTP_PORT": str(sshd.port),
            "FSCTL_SFTP_USER": sshd.user,
            "FSCTL_SFTP_KEY": sshd.client_key,
            "FSCTL_SFTP_KNOWN_HOSTS": sshd.known_hosts,
            "FSCTL_SFTP_REMOTE_DIR": root,
        }
    )
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
    assert (
        result.stderr.strip().splitlines()[-1]
        == f'Error: 1 of 1 recordings failed: "{dest}/{rel}.part": is a symbolic link: refused, not touched'
    )
    assert victim.read_text() == "important = true\n"
    assert os.path.islink(os.path.join(dest, rel + ".part")) and not os.path.exists(os.path.join(dest, rel))
    # nor is a final file that is a link taken as already there
    data = open(os.path.join(root, rel), "rb").read()
    os.symlink(os.path.join(root, rel), str(tmp_path / "link.wav"))
    transfer = sftp.Transfer(
        os.path.join(root, rel), str(tmp_path / "link.wav"), len(data), hashlib.sha256(data).hexdigest()
    )
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
    assert (
        result.stderr.strip().splitlines()[-1]
        == f'Error: 1 of 3 recordings failed: "{root}/{rel}": SHA-256 differs from the catalogue (file discarded)'
    )
    assert rel not in local_files(dest) and rel + ".part" not in local_files(dest)
    assert len(local_files(dest)) == 2  # the good ones are kept
    # a size that differs from the catalogue is refused too, longer or shorter
    open(path, "ab").write(b"more")
    result = fsctl("rec", "pull", "--dest", dest, ok=False)
    assert (
        result.exit_code == 1
        and result.stderr.strip().splitlines()[-1]
        == f'Error: 1 of 3 recordings failed: "{root}/{rel}": the file is longer than the {len(data)} bytes of the '
        "catalogue (file discarded)"
    )
    open(path, "wb").write(bytes(data[:3000]))
    result = fsctl("rec", "pull", "--dest", dest, ok=False)
    assert (
        result.exit_code == 1
        and result.stderr.strip().splitlines()[-1]
        == f'Error: 1 of 3 recordings failed: "{root}/{rel}": the file ends early at byte 3000 of {len(data)} '
        "(file discarded)"
    )
    assert rel not in local_files(dest) and rel + ".part" not in local_files(dest)


def test_changed_host_key_is_refused(pulling, sshd, tmp_path):
    fsctl, root, ids, dest = pulling
    impostor = str(tmp_path / "impostor")
    sshd.keygen(impostor)
    known = tmp_path / "known_hosts"
    known.write_text(sshd.host_line(impostor))  # known_hosts has another key for this host
    fsctl.env["FSCTL_SFTP_KNOWN_HOSTS"] = str(known)
    message = refused(fsctl, "rec", "pull", "--dest", dest, code=1)
    assert (
        message == f"Error: sftp server 127.0.0.1:{sshd.port}: host key differs from the one in {known}: "
        "refusing to connect (possible impostor; check and update known_hosts)"
    )
    assert not os.path.exists(dest) or local_files(dest) == []
    assert known.read_text() == sshd.host_line(impostor)  # never rewritten


def test_unknown_host_is_refused(pulling, sshd, tmp_path):
    fsctl, root, ids, dest = pulling
    known = tmp_path / "empty_known_hosts"
    known.write_text("")
    fsctl.env["FSCTL_SFTP_KNOWN_HOSTS"] = str(known)
    message = refused(fsctl, "rec", "pull", "--dest", dest, code=1)
    assert (
        message == f"Error: sftp server 127.0.0.1:{sshd.port}: host key is not in {known}: refusing to "
        "connect (verify its fingerprint, then add it to known_hosts)"
    )
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
    rows = json.loads(
        fsctl(
            "rec",
            "pull",
            "--dest",
            dest,
            "--as",
            "101@acme.example",
            "--from",
            (T0 + dt.timedelta(days=1)).date().isoformat(),
            "--json",
        ).stdout
    )
    assert rows == []
    assert (
        refused(fsctl, "rec", "pull", "--dest", dest, "--as", "999@acme.example")
        == 'Error: user "999" does not exist in acme.example'
    )


def tcp_local_port(pid):
    """The local port of a process's TCP connection: its socket's inode looked up in /proc/net/tcp."""
    inodes = set()
    for fd in os.listdir(f"/proc/{pid}/fd"):
        target = os.readlink(f"/proc/{pid}/fd/{fd}")
        if target.startswith("socket:["):
            inodes.add(target[len("socket:[") : -1])
    with open("/proc/net/tcp") as fh:
        for line in fh.readlines()[1:]:
            fields = line.split()
            if fields[9] in inodes:
                return int(fields[1].split(":")[1], 16)
    return None


def test_parallel_transfers_each_on_own_connection(sshd, tmp_path):
    made, ports = [], set()

    def connect(ep):
        made.append(sftp.Connection(ep))  # an ssh process, connected once ready
        ports.add(tcp_local_port(made[-1].pid))
        return made[-1]

    transfers = []
    for i in range(12):
        data = os.urandom(200_000 + i)
        (tmp_path / f"r{i}").write_bytes(data)
        transfers.append(
            sftp.Transfer(
                str(tmp_path / f"r{i}"), str(tmp_path / "out" / f"r{i}"), len(data), hashlib.sha256(data).hexdigest()
            )
        )
    results = sftp.fetch_all(endpoint(sshd), transfers, jobs=4, connect=connect)
    assert [r.status for r in results] == ["fetched"] * 12
    assert len(made) == 4 and len(ports) == 4  # four TCP connections


def make_remote(folder, sizes):
    """Random files of the given sizes in folder; returns [(path, data)]."""
    os.makedirs(folder, exist_ok=True)
    made = []
    for i, size in enumerate(sizes):
        data = os.urandom(size)
        path = os.path.join(folder, f"f{i:03d}.bin")
        with open(path, "wb") as fh:
            fh.write(data)
        made.append((path, data))
    return made


def transfers_for(made, dest):
    return [
        sftp.Transfer(path, os.path.join(dest, os.path.basename(path)), len(data), hashlib.sha256(data).hexdigest())
        for path, data in made
    ]


def test_one_connection_pipelines_many_files_byte_identical(sshd, tmp_path):
    # empty files, files of one byte, around a READ's size and across many READs, on one connection
    sizes = [0, 1, sftp.READ_SIZE - 1, sftp.READ_SIZE, sftp.READ_SIZE + 1, 3 * sftp.READ_SIZE + 7, 0, 5] * 6
    made = make_remote(str(tmp_path / "remote"), sizes)
    dest = str(tmp_path / "local")
    seen = []
    results = sftp.fetch_all(endpoint(sshd), transfers_for(made, dest), jobs=1, progress=lambda t, n: seen.append(n))
    assert [r.status for r in results] == ["fetched"] * len(made)
    for path, data in made:
        assert open(os.path.join(dest, os.path.basename(path)), "rb").read() == data
    assert sum(seen) == sum(sizes)
    assert not [f for f in os.listdir(dest) if f.endswith(".part")]


def test_bad_files_in_a_batch_fail_alone(sshd, tmp_path):
    made = make_remote(str(tmp_path / "remote"), [300_000] * 8)
    transfers = transfers_for(made, str(tmp_path / "local"))
    os.unlink(made[1][0])  # missing
    with open(made[3][0], "r+b") as fh:  # shorter than the catalogue says
        fh.truncate(200_000)
    with open(made[5][0], "ab") as fh:  # longer
        fh.write(b"x")
    with open(made[6][0], "r+b") as fh:  # same size, other bytes
        fh.seek(299_999)
        fh.write(bytes([made[6][1][-1] ^ 1]))
    results = sftp.fetch_all(endpoint(sshd), transfers, jobs=1)
    assert [r.status for r in results] == [
        "fetched",
        "failed",
        "fetched",
        "failed",
        "fetched",
        "failed",
        "failed",
        "fetched",
    ]
    assert results[1].error == f'"{made[1][0]}": missing on the sftp server'
    assert results[3].error == f'"{made[3][0]}": the file ends early at byte 200000 of 300000 (file discarded)'
    assert (
        results[5].error
        == f'"{made[5][0]}": the file is longer than the 300000 bytes of the catalogue (file discarded)'
    )
    assert results[6].error == f'"{made[6][0]}": SHA-256 differs from the catalogue (file discarded)'
    for i in (0, 2, 4, 7):
        assert open(transfers[i].local_path, "rb").read() == made[i][1]
    assert sorted(os.listdir(tmp_path / "local")) == [os.path.basename(made[i][0]) for i in (0, 2, 4, 7)]


def test_a_lost_connection_keeps_the_begun_file_and_leaves_the_others(sshd, tmp_path):
    # 6 x 8 MB: bytes already on their way when the connection dies (at most 8 MB requested) may
    # still complete a file, but not all of them
    made = make_remote(str(tmp_path / "remote"), [8 * 1024 * 1024] * 6)
    transfers = transfers_for(made, str(tmp_path / "local"))
    seen = []

    def kill_midway(_transfer, n):
        seen.append(n)
        if sum(seen) >= 2 * 1024 * 1024 and not getattr(kill_midway, "done", False):
            kill_midway.done = True
            assert sshd.kill_connections()

    results = sftp.fetch_all(endpoint(sshd), transfers, jobs=1, progress=kill_midway)
    kept = [i for i, r in enumerate(results) if r.error.endswith("(partial file kept; run again to resume)")]
    left = [i for i, r in enumerate(results) if r.error.endswith("not fetched, the connections were lost (run again)")]
    done = [i for i, r in enumerate(results) if r.status == "fetched"]
    assert len(kept) == 1 and left and sorted(kept + left + done) == list(range(6))
    assert done == list(range(len(done))) and kept == [len(done)]  # in order: fetched, one begun, the rest
    for i in kept:  # bytes written: a prefix stays
        part = open(transfers[i].local_path + ".part", "rb").read()
        assert 0 < len(part) < len(made[i][1]) and made[i][1].startswith(part)
    for i in left:  # not begun: no file at all
        assert not os.path.exists(transfers[i].local_path + ".part") and not os.path.exists(transfers[i].local_path)
    again = sftp.fetch_all(endpoint(sshd), transfers, jobs=1)
    assert [r.status for r in again] == ["skipped"] * len(done) + ["resumed"] + ["fetched"] * len(left)
    assert again[kept[0]].resumed_from > 0
    for t, (_, data) in zip(transfers, made):
        assert open(t.local_path, "rb").read() == data


def test_nothing_to_fetch_needs_no_server(pulling):
    fsctl, root, ids, dest = pulling
    fsctl("rec", "pull", "--dest", dest)
    fsctl.env["FSCTL_SFTP_PORT"] = str(free_port())  # the started connection is never waited for
    again = fsctl("rec", "pull", "--dest", dest)
    assert again.stderr.strip().splitlines()[-1] == "0 fetched, 0 resumed, 3 skipped, 0 failed"


def test_refused_login_is_one_line(pulling, sshd, tmp_path):
    fsctl, root, ids, dest = pulling
    other = str(tmp_path / "other_key")
    sshd.keygen(other)
    fsctl.env["FSCTL_SFTP_KEY"] = other
    message = refused(fsctl, "rec", "pull", "--dest", dest, code=1)
    assert (
        message == f"Error: sftp server 127.0.0.1:{sshd.port}: authentication as {sshd.user} failed: "
        f"{sshd.user}@127.0.0.1: Permission denied (publickey)."
    )


def test_default_jobs_follow_the_cores(monkeypatch):
    for cores, jobs in ((None, 1), (1, 1), (2, 2), (4, 4), (8, 4), (64, 4)):
        monkeypatch.setattr(os, "cpu_count", lambda: cores)
        assert sftp.default_jobs() == jobs


def test_ssh_gone_before_the_handshake_is_reported_by_ready_not_the_constructor(tmp_path, monkeypatch):
    """A connection started early (wait=False, overlapping the catalogue query) whose ssh has
    already exited: nothing is raised until it is used, then ssh's own reason (not a broken pipe)."""
    known = tmp_path / "known_hosts"
    known.write_text("")
    monkeypatch.setattr(
        sftp,
        "ssh_command",
        lambda endpoint: ["sh", "-c", "echo 'ssh: connect to host 127.0.0.1 port 9: Connection refused' >&2; exit 255"],
    )
    real_popen = sftp.subprocess.Popen

    def popen_then_exit(*args, **kwargs):  # ssh gone before the first write, every time
        proc = real_popen(*args, **kwargs)
        proc.wait()
        return proc

    monkeypatch.setattr(sftp.subprocess, "Popen", popen_then_exit)
    endpoint = sftp.Endpoint("127.0.0.1", 9, "rec", "", str(known))
    conn = sftp.Connection(endpoint, wait=False)
    with pytest.raises(sftp.UnreachableError, match="is unreachable: Connection refused$"):
        conn.ready()
    conn.close()
