"""The real FreeSWITCH build of ../shared/freeswitch/runtime, started for a test on loopback.

Only the Event Socket listens (on a free loopback port): the copy of the stock configuration
loads no SIP profile, so nothing else is opened. The build is unpacked once by the runtime's
install.sh; when ../shared is absent (a clone without it) the live tests skip with that reason.
"""

import os
import shutil
import socket
import subprocess
import tempfile
import time
from pathlib import Path

from fsctl.freeswitch import eslproto
from tests.conftest import free_port

RUNTIME = Path(__file__).resolve().parents[1].parent / "shared" / "freeswitch" / "runtime"
MODULES = ("mod_logfile", "mod_event_socket", "mod_commands", "mod_dptools", "mod_loopback", "mod_dialplan_xml")


def runtime_missing():
    """Why the live build cannot run here, or "" when it can."""
    if not (RUNTIME / "install.sh").is_file():
        return f"the FreeSWITCH build is not here ({RUNTIME} is absent)"
    return ""


class LiveFreeSwitch:
    """One FreeSWITCH process in a private folder, Event Socket on a free loopback port."""

    def __init__(self):
        self.prefix = subprocess.run(["sh", str(RUNTIME / "install.sh")], check=True, capture_output=True,
                                     text=True, timeout=600).stdout.strip().splitlines()[-1]
        self.dir = Path(tempfile.mkdtemp(prefix="fsctl-fs-"))
        self.port = free_port()
        self.password = "ClueCon"

    def start(self):
        w = self.dir
        for sub in ("log", "db", "run", "temp", "recordings", "storage", "sounds", "cache"):
            (w / sub).mkdir()
        shutil.copytree(Path(self.prefix) / "etc" / "freeswitch", w / "conf")
        loads = "\n".join(f'    <load module="{m}"/>' for m in MODULES)
        (w / "conf" / "autoload_configs" / "modules.conf.xml").write_text(
            f'<configuration name="modules.conf" description="Modules">\n  <modules>\n{loads}\n  </modules>\n'
            "</configuration>\n")
        esl_conf = w / "conf" / "autoload_configs" / "event_socket.conf.xml"
        esl_conf.write_text(esl_conf.read_text().replace('name="listen-port" value="8021"',
                                                         f'name="listen-port" value="{self.port}"'))
        env = dict(os.environ, LD_LIBRARY_PATH=f"{self.prefix}/lib")
        p = self.prefix
        # -nc -nf: no console, no fork; the process is ours to stop (by its pid file, or here).
        self.proc = subprocess.Popen([f"{p}/bin/freeswitch", "-nonat", "-nonatmap", "-nc", "-nf", "-base", p,
                        "-mod", f"{p}/lib/freeswitch/mod", "-conf", str(w / "conf"), "-log", str(w / "log"),
                        "-db", str(w / "db"), "-run", str(w / "run"), "-temp", str(w / "temp"),
                        "-recordings", str(w / "recordings"), "-storage", str(w / "storage"),
                        "-sounds", str(w / "sounds"), "-cache", str(w / "cache")],
                                     env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        deadline = time.monotonic() + 60
        while True:
            try:
                self.esl = EslClient("127.0.0.1", self.port, self.password)
                break
            except OSError:
                if time.monotonic() > deadline or self.proc.poll() is not None:
                    raise
                time.sleep(0.1)
        return self

    def stop(self):
        try:
            self.esl.close()
        except Exception:
            pass
        self.proc.kill()  # nothing of it is kept: no need for its 7 s orderly shutdown
        self.proc.wait(30)
        shutil.rmtree(self.dir, ignore_errors=True)


class EslClient:
    """A blocking Event Socket client for tests: api commands and sendmsg, one reply each."""

    def __init__(self, host, port, password, timeout=10):
        self.sock = socket.create_connection((host, port), timeout=timeout)
        self.reader = eslproto.Reader()
        self.pending = []
        assert self._next().content_type == "auth/request"
        self.sock.sendall(eslproto.auth(password).encode())
        reply = self._next()
        if not reply.reply_text.startswith("+OK"):
            raise OSError(f"Event Socket refused the password: {reply.reply_text}")

    def _next(self):
        while not self.pending:
            data = self.sock.recv(65536)
            if not data:
                raise OSError("Event Socket closed")
            self.pending.extend(self.reader.feed(data))
        return self.pending.pop(0)

    def api(self, command):
        self.sock.sendall(eslproto.api(command).encode())
        return self._next().body

    def execute(self, uuid, app, arg):
        self.sock.sendall(eslproto.sendmsg_execute(uuid, app, arg).encode())
        return self._next().reply_text

    def close(self):
        self.sock.close()
