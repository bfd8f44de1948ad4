"""A tenant's CRM hook on the real switch: `ringing`, `answered` and `finished` reach the CRM.

The service subscribes to the channel events behind `ringing` and `answered` only while some
tenant has a hook (README "CRM hook"): the hook is added while the service runs, so this also
proves the subscription follows it without a restart.
"""

import json
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

CALLER = "+37069990004"


class Crm:
    """A CRM's webhook endpoint on loopback, keeping every JSON body it receives."""

    def __init__(self):
        self.events = []
        outer = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self):
                body = self.rfile.read(int(self.headers.get("Content-Length", 0)))
                outer.events.append(json.loads(body))
                self.send_response(200)
                self.end_headers()

            def log_message(self, *args):
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}/calls"
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def wait(self, event, timeout=60.0):
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            found = [e for e in self.events if e.get("event") == event]
            if found:
                return found[0]
            time.sleep(0.2)
        raise AssertionError(f"no {event} event within {timeout} s: {self.events}")

    def close(self):
        self.server.shutdown()
        self.server.server_close()


def test_crm_hook_gets_ringing_answered_and_finished(live_debug):
    live = live_debug
    t = live.tenant("crm")
    t.user("102")
    did = live.did()
    t.fsctl("did", "add", did, "--to", "user:102")
    crm = Crm()
    try:
        t.fsctl("crm", "add", crm.url)
        live.apply()
        time.sleep(10)  # the service looks for hooks every 5 s (twice that: a loaded machine)
        p102 = t.phone("102", answer_after=1.0)
        call = live.inbound(did, CALLER)
        call.wait_answered(20)
        p102.wait_answered_incoming(10)
        live.esl.wait_event(
            lambda e: e.get("Event-Name") == "CHANNEL_BRIDGE", 20, "the caller's bridge", uuid=live.uuid_of(call)
        )
        call.bye()
        finished = crm.wait("finished")
        assert crm.wait("ringing") and crm.wait("answered")
        assert json.dumps(finished).count(CALLER) >= 1, finished
        order = [e["event"] for e in crm.events]
        assert order.index("ringing") < order.index("answered") < order.index("finished"), order
    finally:
        crm.close()
