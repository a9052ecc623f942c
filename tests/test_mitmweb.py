"""The addon as a mitmproxy user loads it: `mitmweb -s "$(authtrace addon-path)"`, headless, on free
loopback ports. Traffic goes through it; everything is then read back through mitmweb's own HTTP
API (the one its UI uses): flow comments and marks, the `~marked` filter, the event log, the
`authtrace.*` commands and the content view."""
from __future__ import annotations

import json
import secrets
import subprocess
import sys
import time
from pathlib import Path
from urllib.parse import urlencode

import pytest
import requests
from mitmproxy.version import VERSION

from authtrace import addon

from liverig import Upstream, free_port, send, wait_port

MITMWEB = Path(sys.executable).with_name("mitmweb")
MITMPROXY_12 = int(VERSION.split(".")[0]) >= 12


def respond(handler, body: bytes):
    if handler.path.startswith("/authorize"):
        return 302, [("Location", "http://app.test/callback?code=WEB-CODE-SECRET-1&state=st-web")], b""
    if handler.path.startswith("/token"):
        err = {"error": "invalid_grant", "error_description": "AADSTS54005: OAuth2 Authorization code was already "
                                                              "redeemed, please retry with a new valid code."}
        return 400, [("Content-Type", "application/json")], json.dumps(err).encode()
    return 200, [("Content-Type", "text/plain")], b"ok"


class Web:
    """mitmweb's HTTP API: a bearer token in mitmproxy 12, XSRF cookie and header for writes."""

    def __init__(self, port: int, token: str):
        self.base = f"http://127.0.0.1:{port}"
        self.s = requests.Session()
        if MITMPROXY_12:
            self.s.headers["Authorization"] = f"Bearer {token}"
        self.s.get(self.base + "/", timeout=10).raise_for_status()
        xsrf = secrets.token_hex(16)  # tornado accepts a cookie and header that agree
        for name in ("_xsrf", "_mitmproxy_xsrf"):  # mitmproxy 11, 12
            self.s.cookies.set(name, xsrf, domain="127.0.0.1", path="/")
        self.s.headers["X-XSRFToken"] = xsrf

    def get(self, path: str):
        r = self.s.get(self.base + path, timeout=10)
        r.raise_for_status()
        return r.json()

    def command(self, name: str, *args: str):
        r = self.s.post(f"{self.base}/commands/{name}", json={"arguments": list(args)}, timeout=60)
        r.raise_for_status()
        return r.json()


@pytest.fixture
def mitmweb(tmp_path):
    if not MITMWEB.exists():
        pytest.skip(f"no mitmweb beside {sys.executable}")
    proxy, web, token = free_port(), free_port(), secrets.token_hex(16)
    cmd = [MITMWEB, "-s", addon.__file__, "--listen-host", "127.0.0.1", "--listen-port", proxy,
           "--web-host", "127.0.0.1", "--web-port", web, "--set", "web_open_browser=false",
           "--set", f"authtrace_db={tmp_path / 'web.db'}", "--set", f"confdir={tmp_path / 'conf'}"]
    if MITMPROXY_12:
        cmd += ["--set", f"web_password={token}"]
    log = open(tmp_path / "mitmweb.out", "wb")
    proc = subprocess.Popen([str(c) for c in cmd], stdout=log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL)
    try:
        wait_port(proxy, proc=proc)
        wait_port(web, proc=proc)
        yield proxy, Web(web, token), tmp_path
    finally:
        proc.terminate()
        proc.wait(30)
        log.close()


def test_mitmweb_shows_comments_marks_events_commands_and_the_view(mitmweb):
    proxy, web, tmp = mitmweb
    with Upstream(respond) as up:
        authz = "/authorize?" + urlencode({"client_id": "c1", "response_type": "code", "state": "st-web",
                                           "redirect_uri": "http://app.test/callback"})
        assert send(proxy, up.port, "GET", "idp.test", authz, [])[0] == 302
        assert send(proxy, up.port, "GET", "app.test", "/callback?code=WEB-CODE-SECRET-1&state=st-web", [])[0] == 200
        form = b"grant_type=authorization_code&code=WEB-CODE-SECRET-1&client_id=c1"
        assert send(proxy, up.port, "POST", "idp.test", "/token",
                    [("Content-Type", "application/x-www-form-urlencoded")], form)[0] == 400
        assert send(proxy, up.port, "GET", "app.test", "/static/site.css", [])[0] == 200  # noise

        deadline = time.monotonic() + 40  # live findings hold for two checks, 2 s apart
        while time.monotonic() < deadline:
            flows = {f["request"]["path"].split("?")[0]: f for f in web.get("/flows")}
            if flows.get("/token", {}).get("marked"):
                break
            time.sleep(0.5)
    token, callback, css = flows["/token"], flows["/callback"], flows["/static/site.css"]
    assert token["comment"].startswith("authtrace: token POST 400 code#")
    assert "! invalid_grant: AADSTS54005" in token["comment"]
    assert "FINDING ERROR   reused_code" in token["comment"]
    assert callback["comment"].startswith("authtrace: callback GET 200 code#") and "state=st-web" in callback["comment"]
    assert token["marked"] and callback["marked"]  # evidence of reused_code
    assert not css["comment"] and not css["marked"]
    assert not any("WEB-CODE-SECRET-1" in f["comment"] for f in flows.values())

    # ~marked lists exactly the evidence (set as a view filter: /flows returns what the view holds)
    assert web.command("set", "view_filter=~marked") is not None
    marked = {f["request"]["path"].split("?")[0] for f in web.get("/flows")}
    assert marked == {"/callback", "/token"}

    events = [e["message"] for e in web.get("/events")]  # "[12:00:00.000] message" in mitmproxy 11
    assert any("authtrace: recording session 1 into" in m for m in events), events
    assert any(f"authtrace: proxy on http://127.0.0.1:{proxy} (loopback only)" in m for m in events)
    assert any("FINDING ERROR   reused_code" in m for m in events)

    found = web.command("authtrace.findings")
    assert any("reused_code" in line for line in found["value"]), found
    out = tmp / "web-report.html"
    summary = web.command("authtrace.report", str(out))
    assert out.exists() and "finding(s)" in summary["value"], summary

    view = web.get(f"/flows/{token['id']}/response/content/authtrace.json")
    text = view["text"] if MITMPROXY_12 else "\n".join("".join(t for _, t in line) for line in view["lines"])
    assert "error: invalid_grant" in text and "WEB-CODE-SECRET-1" not in text
    view = web.get(f"/flows/{callback['id']}/request/content/Auto.json")
    text = view["text"] if MITMPROXY_12 else "\n".join("".join(t for _, t in line) for line in view["lines"])
    assert "state: st-web" in text and "code: code#" in text  # the view mitmweb picks by itself
