"""`authtrace record --browser`: a real Chromium with a fresh profile, proxied, pinned to mitmproxy's CA."""
import glob
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import threading
import time
from http.server import ThreadingHTTPServer
from urllib.parse import urlencode

import pytest
from test_record import Upstream, free_port, wait_port

from authtrace.addons.launch import browser_args, spki_hash
from authtrace.store import db

CHROMIUM = shutil.which("chromium") or shutil.which("google-chrome")


def needs_browser():
    if CHROMIUM is None:
        if os.environ.get("CI"):
            pytest.fail("Debian chromium is missing in CI: ./run-tests installs it (apt-get install chromium)")
        pytest.skip("no chromium on this machine: apt-get install chromium (./run-tests does it as root)")


def test_browser_args_pin_only_the_mitmproxy_ca(tmp_path):
    from mitmproxy.certs import CertStore

    CertStore.from_store(str(tmp_path), "mitmproxy", 2048)
    pin = spki_hash(str(tmp_path / "mitmproxy-ca-cert.pem"))
    args = browser_args("chromium", "/tmp/p", 8123, pin, "https://app.test/", [])
    assert f"--ignore-certificate-errors-spki-list={pin}" in args
    assert "--proxy-server=http://127.0.0.1:8123" in args and "--proxy-bypass-list=<-loopback>" in args
    assert not any(a in ("--ignore-certificate-errors", "--allow-insecure-localhost") for a in args)
    assert args[-1] == "https://app.test/"


def test_record_browser_captures_and_cleans_up(tmp_path):
    needs_browser()
    up = ThreadingHTTPServer(("127.0.0.1", 0), Upstream)
    threading.Thread(target=up.serve_forever, daemon=True).start()
    base = f"http://127.0.0.1:{up.server_port}"
    url = base + "/authorize?" + urlencode({"client_id": "c1", "response_type": "code", "state": "st-1",
                                            "redirect_uri": base + "/callback"})
    port = free_port()
    dbp = str(tmp_path / "b.db")
    before = set(glob.glob(os.path.join(tempfile.gettempdir(), "authtrace-profile-*")))
    proc = subprocess.Popen([sys.executable, "-m", "authtrace", "record", "--db", dbp, "--listen-port", str(port),
                             "--browser", "--url", url, "--browser-arg=--headless=new",
                             "--", "--set", f"confdir={tmp_path / 'conf'}"],
                            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    try:
        wait_port(port)
        deadline = time.time() + 30
        roles = []
        while time.time() < deadline and roles != ["authorize", "callback"]:
            time.sleep(0.5)
            roles = [h.role for h in db.load_hops(db.open_db(dbp), 1)]
        assert roles == ["authorize", "callback"]
    finally:
        proc.send_signal(signal.SIGINT)
        out, _ = proc.communicate(timeout=30)
        up.shutdown()
    assert "browser started with a fresh profile" in out
    assert set(glob.glob(os.path.join(tempfile.gettempdir(), "authtrace-profile-*"))) == before  # profile removed
    hop = db.load_hops(db.open_db(dbp), 1)[1]
    assert hop.actor == "browser" and "HeadlessChrome" in (hop.user_agent or "")
