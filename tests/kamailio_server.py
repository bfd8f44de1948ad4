"""A real Kamailio on 127.0.0.1 for the tests: Debian's `kamailio` (installed by `make sysdeps`).

`KamailioServer(settings_factory)` picks a free UDP port and a private folder; `start(folder)`
runs `/usr/sbin/kamailio -DD -E -f <folder>/kamailio.cfg` in the foreground (its log in the
private folder) and waits until its control socket answers; `kamcmd(...)` talks to it; `stop()`
stops it by its process id and removes the folder. The configuration itself is fsctl's
(`fsctl render kamailio`), rendered with the server's port, control socket and folder.
"""

import os
import shutil
import socket
import subprocess
import tempfile
import time

KAMAILIO = "/usr/sbin/kamailio"
KAMCMD = "/usr/sbin/kamcmd"


def free_udp_port():
    """A UDP port free on 127.0.0.1 (and its TCP twin, which Kamailio does not use here)."""
    for _ in range(50):
        with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as u:
            u.bind(("127.0.0.1", 0))
            port = u.getsockname()[1]
        with socket.socket() as t:
            try:
                t.bind(("127.0.0.1", port))
            except OSError:
                continue
        return port
    raise RuntimeError("no free UDP port")


class KamailioServer:
    """A private Kamailio: `port`, `dir`, `ctl`, `settings(**more)`, `start()`, `kamcmd()`, `stop()`."""

    def __init__(self, root=None):
        if not os.path.exists(KAMAILIO):
            raise RuntimeError("Kamailio is not installed: run `make sysdeps` (Debian package kamailio)")
        self.dir = os.path.realpath(root or tempfile.mkdtemp(prefix="fsctl-kamailio-"))
        os.makedirs(os.path.join(self.dir, "run"), exist_ok=True)
        self.port = free_udp_port()
        self.ctl = f"unix:{self.dir}/run/ctl.sock"
        self.folder = os.path.join(self.dir, "routing")
        self.proc = None
        self.log_path = os.path.join(self.dir, "kamailio.log")

    def settings_values(self):
        """The fsctl settings (FSCTL_* names, lowercase) that point fsctl at this Kamailio."""
        return {
            "kamailio_dir": self.folder,
            "kamailio_listen": f"udp:127.0.0.1:{self.port}",
            "kamailio_ctl": self.ctl,
            "kamcmd": KAMCMD,
            "kamailio_ping_interval": 1,
        }

    def start(self, timeout=30):
        """Start Kamailio on the rendered <folder>/kamailio.cfg; wait for its control socket."""
        with open(self.log_path, "ab") as log:
            self.proc = subprocess.Popen(
                [
                    KAMAILIO,
                    "-DD",
                    "-E",
                    "-f",
                    os.path.join(self.folder, "kamailio.cfg"),
                    "-P",
                    os.path.join(self.dir, "run", "kamailio.pid"),
                ],
                stdout=log,
                stderr=log,
                cwd=self.dir,
            )
        deadline = time.monotonic() + timeout
        while True:
            if self.proc.poll() is not None:
                raise RuntimeError(f"kamailio exited {self.proc.returncode}: {self.log()[-3000:]}")
            try:
                self.kamcmd("core.version")
                return self
            except RuntimeError:
                pass
            if time.monotonic() > deadline:
                raise RuntimeError(f"kamailio did not start: {self.log()[-3000:]}")
            time.sleep(0.1)

    def kamcmd(self, *args):
        """Run kamcmd against this Kamailio; its output (RuntimeError when it fails)."""
        proc = subprocess.run([KAMCMD, "-s", self.ctl, *args], capture_output=True, text=True, timeout=30)
        if proc.returncode != 0 or "error" in proc.stdout[:20].lower():
            raise RuntimeError(f"kamcmd {' '.join(args)}: {proc.stdout}{proc.stderr}")
        return proc.stdout

    def destinations(self):
        """{(set id, uri): flags} from dispatcher.list (A active, I inactive, P probing...)."""
        out, current, uri = {}, None, None
        for line in self.kamcmd("dispatcher.list").splitlines():
            line = line.strip()
            if line.startswith("ID:"):
                current = int(line.split(":", 1)[1])
            elif line.startswith("URI:"):
                uri = line.split(":", 1)[1].strip()
            elif line.startswith("FLAGS:") and uri:
                out[(current, uri)] = line.split(":", 1)[1].strip()
                uri = None
        return out

    def log(self):
        try:
            with open(self.log_path, errors="replace") as fh:
                return fh.read()
        except OSError:
            return ""

    def stop(self):
        """Stop Kamailio (TERM, then KILL) and remove its folder."""
        if self.proc is not None and self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(15)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        shutil.rmtree(self.dir, ignore_errors=True)
