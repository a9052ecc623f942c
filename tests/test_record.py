"""The addon under mitmproxy: script loading, the hooks, and `authtrace record` live with curl."""
import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import urlencode

import pytest
from mitmproxy.addons import script
from mitmproxy.test import taddons

from authtrace import addon
from authtrace.addons import capture
from authtrace.store import db

from builders import signin_flows


def test_addon_file_loads_with_mitmproxy_script_loader():
    mod = script.load_script(addon.__file__)
    assert mod is not None and [type(a).__name__ for a in mod.addons] == ["AuthTrace", "Launcher", "ContentViews",
                                                                          "LiveFindings"]


def test_hooks_store_hops_and_flows_without_response(tmp_path):
    a = capture.AuthTrace()
    dbp = str(tmp_path / "live.db")
    with taddons.context(a) as tctx:
        tctx.configure(a, authtrace_db=dbp, authtrace_print=False)
        a.running()
        flows = signin_flows()
        for f in flows[:-1]:
            a.requestheaders(f)
            a.response(f)
        pending = flows[-1]  # the API call never got its answer before the proxy stopped
        pending.response = None
        a.requestheaders(pending)
        a.done()
    engine = db.open_db(dbp)
    hops = db.load_hops(engine, 1)
    assert [h.role for h in hops] == ["authorize", "login", "callback", "token", "jwks", "api"]
    assert hops[-1].status is None and hops[-1].is_error
    assert db.load_session(engine, 1).flows_seen == 7


class Upstream(BaseHTTPRequestHandler):
    def log_message(self, *a):
        pass

    def do_GET(self):
        if self.path.startswith("/authorize"):
            self.send_response(302)
            self.send_header("Location", f"http://127.0.0.1:{self.server.server_port}/callback?code=LIVE-CODE-SECRET-1&state=st-1")
            self.end_headers()
            return
        body = b"ok"
        self.send_response(200)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def do_POST(self):
        self.rfile.read(int(self.headers.get("content-length", 0)))
        body = json.dumps({"error": "invalid_grant", "error_description": "AADSTS54005: code already redeemed"}).encode()
        self.send_response(400)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def wait_port(port, timeout=20):
    end = time.time() + timeout
    while time.time() < end:
        try:
            socket.create_connection(("127.0.0.1", port), 0.2).close()
            return
        except OSError:
            time.sleep(0.1)
    raise TimeoutError(port)


@pytest.mark.skipif(shutil.which("curl") is None, reason="curl not installed")
def test_record_live_with_curl(tmp_path):
    up = ThreadingHTTPServer(("127.0.0.1", 0), Upstream)
    threading.Thread(target=up.serve_forever, daemon=True).start()
    base = f"http://127.0.0.1:{up.server_port}"
    port = free_port()
    dbp = str(tmp_path / "rec.db")
    proc = subprocess.Popen([sys.executable, "-m", "authtrace", "record", "--db", dbp, "--listen-port", str(port),
                             "--", "--set", f"confdir={tmp_path / 'conf'}"],
                            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    try:
        wait_port(port)
        proxy = ["curl", "-s", "-o", "/dev/null", "-x", f"http://127.0.0.1:{port}"]
        authz = base + "/authorize?" + urlencode({"client_id": "c1", "response_type": "code", "state": "st-1",
                                                  "redirect_uri": base + "/callback"})
        subprocess.run(proxy + ["-L", authz], check=True, timeout=20)
        subprocess.run(proxy + ["-d", "grant_type=authorization_code&code=LIVE-CODE-SECRET-1&client_id=c1",
                                base + "/token"], check=True, timeout=20)
        subprocess.run(proxy + ["-H", "Authorization: Bearer LIVE-BEARER-SECRET-2", base + "/api/me"],
                       check=True, timeout=20)
        subprocess.run(proxy + [base + "/static/page.html"], check=True, timeout=20)  # noise: no hop
        time.sleep(1.5)  # hops are stored within about a second, before the proxy stops
        engine = db.open_db(dbp)
        roles = [h.role for h in db.load_hops(engine, 1)]
        assert roles == ["authorize", "callback", "token", "api"]
        time.sleep(5)  # findings are printed once they hold for two checks, 2 s apart
    finally:
        proc.send_signal(signal.SIGINT)
        out, _ = proc.communicate(timeout=30)
        up.shutdown()
    assert "LIVE-CODE-SECRET-1" not in out and "LIVE-BEARER-SECRET-2" not in out
    assert "callback" in out and "code#" in out and "invalid_grant" in out
    assert "FINDING ERROR   reused_code" in out
    assert "/static/page.html" not in out  # mitmproxy's own flow printing is off
    raw = b"".join(open(p, "rb").read() for p in (dbp, dbp + "-wal") if os.path.exists(p))
    assert b"LIVE-CODE-SECRET-1" not in raw and b"LIVE-BEARER-SECRET-2" not in raw
    assert db.load_session(db.open_db(dbp), 1).flows_seen == 5


@pytest.mark.skipif(shutil.which("curl") is None, reason="curl not installed")
def test_record_app_runs_with_proxy_env_and_stops_when_it_exits(tmp_path):
    up = ThreadingHTTPServer(("127.0.0.1", 0), Upstream)
    threading.Thread(target=up.serve_forever, daemon=True).start()
    base = f"http://127.0.0.1:{up.server_port}"
    dbp = str(tmp_path / "app.db")
    # the app is plain curl without -x: only the environment sends it through the proxy
    app = (f"sleep 1; curl -s -o /dev/null -d 'grant_type=authorization_code&code=APP-CODE-SECRET&client_id=c' "
           f"{base}/token; echo \"ca=$REQUESTS_CA_BUNDLE\"")
    try:
        out = subprocess.run([sys.executable, "-m", "authtrace", "record", "--db", dbp, "--listen-port",
                              "0", "--app", app, "--", "--set", f"confdir={tmp_path / 'conf'}"],
                             capture_output=True, text=True, timeout=60)
    finally:
        up.shutdown()
    # the app followed the port the proxy really bound (--listen-port 0) and got the combined CA bundle
    assert "app exited" in out.stdout and "authtrace-ca-bundle.pem" in out.stdout
    hops = db.load_hops(db.open_db(dbp), 1)
    assert [h.role for h in hops] == ["token"] and hops[0].actor == "app"
    assert "APP-CODE-SECRET" not in out.stdout + out.stderr
