"""Start what the user signs in with, already pointed at the proxy: a clean Chromium profile that
trusts only mitmproxy's CA (by SPKI pin, no blanket certificate bypass, no CA install), or the
user's own app with proxy and CA environment set so its back channel is captured too.

Loaded beside the capture addon; starts its children once the proxy listens (`running`) and stops
them, removing the throwaway profile, when recording stops (`done`). When the browser window or the
app exits on its own, recording stops with it.
"""
from __future__ import annotations

import base64
import hashlib
import os
import shlex
import shutil
import signal
import subprocess
import sys
import tempfile
import threading
from typing import Any

from mitmproxy import ctx

BROWSERS = ("chromium", "chromium-browser", "google-chrome", "google-chrome-stable", "chrome",
            "microsoft-edge", "microsoft-edge-stable", "brave-browser")
MAC_APPS = ("/Applications/Google Chrome.app/Contents/MacOS/Google Chrome",
            "/Applications/Chromium.app/Contents/MacOS/Chromium",
            "/Applications/Microsoft Edge.app/Contents/MacOS/Microsoft Edge")
WINDOWS = (r"C:\Program Files\Google\Chrome\Application\chrome.exe",
           r"C:\Program Files (x86)\Microsoft\Edge\Application\msedge.exe")


def find_browser() -> str | None:
    if os.environ.get("AUTHTRACE_BROWSER"):
        return os.environ["AUTHTRACE_BROWSER"]
    for name in BROWSERS:
        path = shutil.which(name)
        if path:
            return path
    return next((p for p in MAC_APPS + WINDOWS if os.path.exists(p)), None)


def ca_file(confdir: str) -> str:
    return os.path.join(os.path.expanduser(confdir), "mitmproxy-ca-cert.pem")


def spki_hash(ca_pem: str) -> str:
    """base64(SHA-256(SubjectPublicKeyInfo)) of the CA: what --ignore-certificate-errors-spki-list wants."""
    from cryptography import x509
    from cryptography.hazmat.primitives import serialization

    with open(ca_pem, "rb") as fh:
        cert = x509.load_pem_x509_certificate(fh.read())
    spki = cert.public_key().public_bytes(serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo)
    return base64.b64encode(hashlib.sha256(spki).digest()).decode()


def proxy_env(port: int, confdir: str) -> dict[str, str]:
    proxy = f"http://127.0.0.1:{port}"
    ca = ca_file(confdir)
    return {"HTTPS_PROXY": proxy, "HTTP_PROXY": proxy, "https_proxy": proxy, "http_proxy": proxy,
            "NO_PROXY": "", "no_proxy": "", "REQUESTS_CA_BUNDLE": ca, "SSL_CERT_FILE": ca,
            "NODE_EXTRA_CA_CERTS": ca, "CURL_CA_BUNDLE": ca}


def browser_args(exe: str, profile: str, port: int, spki: str, url: str | None, extra: list[str]) -> list[str]:
    args = [exe, f"--user-data-dir={profile}", f"--proxy-server=http://127.0.0.1:{port}",
            "--proxy-bypass-list=<-loopback>", f"--ignore-certificate-errors-spki-list={spki}",
            "--no-first-run", "--no-default-browser-check", "--disable-background-networking",
            "--disable-component-update", "--disable-sync", "--disable-quic", "--disable-features=HttpsUpgrades"]
    if hasattr(os, "geteuid") and os.geteuid() == 0:
        args.append("--no-sandbox")  # Chromium refuses to run as root otherwise
    return args + extra + ([url] if url else ["about:blank"])


class Launcher:
    def __init__(self) -> None:
        self.child: subprocess.Popen[bytes] | None = None
        self.profile: str | None = None
        self.stopping = False

    def load(self, loader: Any) -> None:
        loader.add_option("authtrace_browser", bool, False, "authtrace: open a clean, proxied Chromium.")
        loader.add_option("authtrace_browser_url", str, "", "authtrace: page the browser opens first.")
        loader.add_option("authtrace_browser_args", str, "", "authtrace: extra browser arguments (shell words).")
        loader.add_option("authtrace_app", str, "", "authtrace: command to run with proxy and CA environment set.")

    def running(self) -> None:
        opts = ctx.options
        port = opts.listen_port or 8080
        if opts.authtrace_browser:
            exe = find_browser()
            if exe is None:
                self._fail("no Chromium, Chrome or Edge found; install one or set AUTHTRACE_BROWSER=/path/to/browser.")
                return
            self.profile = tempfile.mkdtemp(prefix="authtrace-profile-")
            args = browser_args(exe, self.profile, port, spki_hash(ca_file(opts.confdir)),
                                opts.authtrace_browser_url or None, shlex.split(opts.authtrace_browser_args))
            self.child = subprocess.Popen(args, stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL,
                                          stderr=subprocess.DEVNULL, start_new_session=True)
            print(f"authtrace: browser started with a fresh profile ({os.path.basename(exe)}); "
                  "close it or press Ctrl-C to stop recording", flush=True)
        elif opts.authtrace_app:
            env = dict(os.environ, **proxy_env(port, opts.confdir))
            self.child = subprocess.Popen(opts.authtrace_app, shell=True, env=env, start_new_session=True)
            print(f"authtrace: started the app (pid {self.child.pid}) with the proxy and CA environment set",
                  flush=True)
        if self.child is not None:
            threading.Thread(target=self._watch, args=(ctx.master,), daemon=True).start()

    def _fail(self, msg: str) -> None:
        print(f"authtrace: {msg}", file=sys.stderr, flush=True)
        ctx.master.shutdown()  # type: ignore[no-untyped-call]

    def _watch(self, master: Any) -> None:
        if self.child is None:
            return
        self.child.wait()
        if not self.stopping:
            print(f"authtrace: {'browser closed' if self.profile else 'app exited'}; stopping", flush=True)
            master.shutdown()  # thread-safe: it schedules on the proxy's loop

    def done(self) -> None:
        self.stopping = True
        if self.child is not None and self.child.poll() is None:
            try:
                os.killpg(self.child.pid, signal.SIGTERM)
                self.child.wait(timeout=10)
            except (ProcessLookupError, subprocess.TimeoutExpired, PermissionError):
                try:
                    os.killpg(self.child.pid, signal.SIGKILL)
                except ProcessLookupError:
                    pass
        if self.profile:
            shutil.rmtree(self.profile, ignore_errors=True)
