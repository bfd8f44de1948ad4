"""A real OpenSSH sshd on 127.0.0.1 for the SFTP tests and the benchmark.

Debian's openssh-server (/usr/sbin/sshd, installed by `make sysdeps`). Host and client keys
are made with ssh-keygen in a private folder; sshd runs in the foreground (`-D -e`) on a
free port with key-only login for the current user, and is stopped by `stop()`.
"""

import os
import pwd
import shutil
import signal
import socket
import subprocess
import tempfile
import time

SSHD = "/usr/sbin/sshd"


def _free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class SshdServer:
    """A private sshd: `start()`, `known_hosts`, `client_key`, `user`, `port`, `children()`, `stop()`."""

    def __init__(self, root=None):
        if not os.path.exists(SSHD):
            raise RuntimeError("OpenSSH server is not installed: run `make sysdeps` (Debian package openssh-server)")
        # sshd's privilege-separation directory: `sshd -t` needs it too, whatever ran before
        os.makedirs("/run/sshd", exist_ok=True)
        self.dir = os.path.realpath(root or tempfile.mkdtemp(prefix="fsctl-sshd-"))
        os.makedirs(self.dir, exist_ok=True)
        self.port = _free_port()
        self.user = pwd.getpwuid(os.getuid()).pw_name
        self.host_key = os.path.join(self.dir, "host_ed25519")
        self.client_key = os.path.join(self.dir, "client_ed25519")
        self.known_hosts = os.path.join(self.dir, "known_hosts")
        self.config = os.path.join(self.dir, "sshd_config")
        self.proc = None
        self.log = None

    def keygen(self, path):
        """A new ed25519 key pair at path (replacing any)."""
        for p in (path, path + ".pub"):
            if os.path.exists(p):
                os.unlink(p)
        subprocess.run(["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-f", path], check=True, timeout=30)

    def host_line(self, key_path=None):
        """The known_hosts line for this server's host key (or another key's)."""
        with open((key_path or self.host_key) + ".pub") as fh:
            kind, blob = fh.read().split()[:2]
        return f"[127.0.0.1]:{self.port} {kind} {blob}\n"

    def start(self):
        """Make keys and config, start sshd, wait until it accepts connections."""
        self.keygen(self.host_key)
        self.keygen(self.client_key)
        shutil.copy(self.client_key + ".pub", os.path.join(self.dir, "authorized_keys"))
        with open(self.known_hosts, "w") as fh:
            fh.write(self.host_line())
        with open(self.config, "w") as fh:
            fh.write(
                f"Port {self.port}\nListenAddress 127.0.0.1\nHostKey {self.host_key}\n"
                f"PidFile {self.dir}/sshd.pid\nAuthorizedKeysFile {self.dir}/authorized_keys\n"
                "PermitRootLogin prohibit-password\nPasswordAuthentication no\nKbdInteractiveAuthentication no\n"
                "UsePAM no\nStrictModes no\nUseDNS no\nMaxStartups 100\nMaxSessions 100\n"
                "Subsystem sftp internal-sftp\nLogLevel ERROR\n"
            )
        self.log = open(os.path.join(self.dir, "sshd.log"), "ab")
        self.proc = subprocess.Popen([SSHD, "-D", "-e", "-f", self.config], stdout=self.log, stderr=self.log)
        deadline = time.monotonic() + 20
        while True:
            if self.proc.poll() is not None:
                with open(os.path.join(self.dir, "sshd.log"), errors="replace") as fh:
                    raise RuntimeError(f"sshd exited {self.proc.returncode}: {fh.read()[-2000:]}")
            try:
                with socket.create_connection(("127.0.0.1", self.port), timeout=1) as s:
                    if s.recv(4).startswith(b"SSH-"):
                        return self
            except OSError:
                pass
            if time.monotonic() > deadline:
                raise RuntimeError("sshd did not start listening")
            time.sleep(0.05)

    def children(self):
        """Process ids of sshd's per-connection processes (children and their children)."""
        parents = {}
        for pid in os.listdir("/proc"):
            if not pid.isdigit():
                continue
            try:
                with open(f"/proc/{pid}/stat") as fh:
                    parents[int(pid)] = int(fh.read().rsplit(")", 1)[1].split()[1])
            except (OSError, IndexError, ValueError):
                continue
        found, frontier = [], {self.proc.pid}
        while frontier:
            frontier = {pid for pid, ppid in parents.items() if ppid in frontier}
            found.extend(sorted(frontier))
        return found

    def kill_connections(self):
        """SIGKILL every connection's sshd child (the connections drop mid-transfer)."""
        pids = self.children()
        for pid in pids:
            try:
                os.kill(pid, signal.SIGKILL)
            except ProcessLookupError:
                pass
        return pids

    def stop(self):
        """Stop sshd and its children; remove the folder."""
        if self.proc is not None and self.proc.poll() is None:
            self.kill_connections()
            self.proc.terminate()
            try:
                self.proc.wait(10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        if self.log:
            self.log.close()
        shutil.rmtree(self.dir, ignore_errors=True)
