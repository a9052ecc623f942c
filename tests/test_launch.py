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
    args = browser_args("chromium", "/tmp/p", "http://127.0.0.1:8123", pin, "https://app.test/", [])
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


# -- where browsers live on Windows and macOS (paths as those systems spell them) -------------------
WIN_ENV = {"ProgramFiles": r"C:\Program Files", "ProgramFiles(x86)": r"C:\Program Files (x86)",
           "LOCALAPPDATA": r"C:\Users\ana\AppData\Local"}


def _find(platform, environ, present, on_path=None, home=None):
    from authtrace.addons.launch import find_browser

    return find_browser(platform, environ, which=lambda n: on_path if n == on_path else None,
                        exists=lambda p: p in present, home=home)


def test_windows_finds_chrome_and_edge_in_their_install_places():
    edge = r"C:\Program Files (x86)\Microsoft\Edge\Application\msedge.exe"
    chrome = r"C:\Program Files\Google\Chrome\Application\chrome.exe"
    user_chrome = r"C:\Users\ana\AppData\Local\Google\Chrome\Application\chrome.exe"
    assert _find("win32", WIN_ENV, {edge}) == edge
    assert _find("win32", WIN_ENV, {edge, chrome}) == chrome
    assert _find("win32", WIN_ENV, {edge, user_chrome}) == user_chrome  # per-user install
    assert _find("win32", {}, {edge}) == edge  # no ProgramFiles variables: the usual roots
    assert _find("win32", WIN_ENV, set()) is None


def test_macos_finds_apps_in_applications_and_the_users_applications():
    chrome = "/Applications/Google Chrome.app/Contents/MacOS/Google Chrome"
    edge = "/Users/ana/Applications/Microsoft Edge.app/Contents/MacOS/Microsoft Edge"
    assert _find("darwin", {}, {edge}, home="/Users/ana") == edge
    assert _find("darwin", {}, {edge, chrome}, home="/Users/ana") == chrome
    assert _find("darwin", {}, set(), home="/Users/ana") is None


def test_explicit_browser_then_path_then_install_places():
    edge = r"C:\Program Files (x86)\Microsoft\Edge\Application\msedge.exe"
    assert _find("win32", dict(WIN_ENV, AUTHTRACE_BROWSER=r"D:\b\chrome.exe"), {edge}) == r"D:\b\chrome.exe"
    assert _find("win32", WIN_ENV, {edge}, on_path="msedge") == "msedge"
    assert _find("linux", {}, {"/Applications/Chromium.app/Contents/MacOS/Chromium"}) is None


# -- authtrace env: a combined CA bundle, no empty NO_PROXY, and its undo --------------------------
def _env(tmp_path, *args, environ=None):
    env = dict(environ if environ is not None else os.environ)
    return subprocess.run([sys.executable, "-m", "authtrace", "env", "--confdir", str(tmp_path / "conf"), *args],
                          capture_output=True, text=True, timeout=60, env=env)


def test_env_sets_a_combined_bundle_and_no_empty_no_proxy(tmp_path):
    import ssl

    out = _env(tmp_path, "--listen-port", "9123", "--shell", "sh")
    assert out.returncode == 0, out.stderr
    lines = dict(line.removeprefix("export ").split("=", 1) for line in out.stdout.splitlines())
    assert "NO_PROXY" not in lines and "no_proxy" not in lines
    assert lines["HTTPS_PROXY"] == lines["http_proxy"] == "http://127.0.0.1:9123"
    bundle = tmp_path / "conf" / "authtrace-ca-bundle.pem"
    assert lines["REQUESTS_CA_BUNDLE"] == lines["SSL_CERT_FILE"] == lines["CURL_CA_BUNDLE"] == str(bundle)
    assert lines["NODE_EXTRA_CA_CERTS"] == str(tmp_path / "conf" / "mitmproxy-ca-cert.pem")
    cas = ssl.create_default_context(cafile=str(bundle)).get_ca_certs()
    subjects = [dict(x[0] for x in c["subject"]).get("organizationName") for c in cas]
    assert "mitmproxy" in subjects and len(cas) > 50  # the system's CAs are still trusted
    assert "created mitmproxy's CA" in out.stderr


def test_env_bundle_verifies_a_server_signed_by_mitmproxys_ca(tmp_path):
    """A real TLS handshake: a loopback server with a certificate from mitmproxy's CA (as the proxy
    presents it) verifies against the bundle `env` points programs at."""
    import socket
    import ssl

    from cryptography.hazmat.primitives import serialization
    from mitmproxy.certs import CertStore

    assert _env(tmp_path).returncode == 0
    store = CertStore.from_store(str(tmp_path / "conf"), "mitmproxy", 2048)
    entry = store.get_cert("localhost", [], None)
    key = entry.privatekey.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                                         serialization.NoEncryption())
    (tmp_path / "leaf.pem").write_bytes(entry.cert.to_pem() + key)
    server_ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    server_ctx.load_cert_chain(str(tmp_path / "leaf.pem"))
    with socket.socket() as srv:
        srv.bind(("127.0.0.1", 0))
        srv.listen()
        port = srv.getsockname()[1]
        t = threading.Thread(target=lambda: server_ctx.wrap_socket(srv.accept()[0], server_side=True).close(),
                             daemon=True)
        t.start()
        client = ssl.create_default_context(cafile=str(tmp_path / "conf" / "authtrace-ca-bundle.pem"))
        with socket.create_connection(("127.0.0.1", port)) as raw, \
                client.wrap_socket(raw, server_hostname="localhost") as tls:
            assert tls.version()
        t.join(5)


def test_env_then_unset_in_a_real_shell_restores_the_environment(tmp_path):
    environ = {k: v for k, v in os.environ.items() if not k.startswith("AUTHTRACE_PREV_")}
    environ.update(SSL_CERT_FILE="/etc/ssl/certs/ca-certificates.crt", NO_PROXY="corp.example")
    environ.pop("HTTPS_PROXY", None)
    environ.pop("REQUESTS_CA_BUNDLE", None)
    at = f"{sys.executable} -m authtrace env --confdir {tmp_path / 'conf'}"
    script = (f'eval "$({at})" && echo "during=$HTTPS_PROXY $SSL_CERT_FILE $NO_PROXY" && eval "$({at})" && '
              f'eval "$({at} --unset)" && echo "after=${{HTTPS_PROXY-unset}} ${{REQUESTS_CA_BUNDLE-unset}} '
              f'$SSL_CERT_FILE $NO_PROXY ${{AUTHTRACE_PREV_SSL_CERT_FILE-gone}}"')
    out = subprocess.run(["sh", "-c", script], capture_output=True, text=True, timeout=120, env=environ)
    assert out.returncode == 0, out.stderr
    during, after = out.stdout.splitlines()
    assert during == f"during=http://127.0.0.1:8080 {tmp_path / 'conf' / 'authtrace-ca-bundle.pem'} corp.example"
    # run twice, undone once: back to what the shell had, and NO_PROXY was never touched
    assert after == "after=unset unset /etc/ssl/certs/ca-certificates.crt corp.example gone"
    assert "NO_PROXY is set" in out.stderr


def test_shell_syntaxes():
    from authtrace.addons.launch import shell_lines, unset_lines

    vals = {"HTTPS_PROXY": "http://127.0.0.1:8080", "SSL_CERT_FILE": "C:\\Users\\o'k\\b.pem"}
    cur = {"SSL_CERT_FILE": "C:\\old.pem"}
    assert shell_lines(vals, cur, "powershell") == [
        "$env:HTTPS_PROXY = 'http://127.0.0.1:8080'", "$env:AUTHTRACE_PREV_SSL_CERT_FILE = 'C:\\old.pem'",
        "$env:SSL_CERT_FILE = 'C:\\Users\\o''k\\b.pem'"]
    undo = unset_lines({"AUTHTRACE_PREV_SSL_CERT_FILE": "C:\\old.pem"}, "powershell")
    assert "$env:SSL_CERT_FILE = 'C:\\old.pem'" in undo
    assert "Remove-Item Env:HTTPS_PROXY -ErrorAction SilentlyContinue" in undo
    assert "set -gx HTTPS_PROXY http://127.0.0.1:8080" in shell_lines(vals, {}, "fish")
