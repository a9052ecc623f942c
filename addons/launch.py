"""Start what the user signs in with, already pointed at the proxy: a clean Chromium profile that
trusts only mitmproxy's CA (by SPKI pin, no blanket certificate bypass, no CA install), or the
user's own app with proxy and CA environment set so its back channel is captured too.

Loaded beside the capture addon; starts its children once the proxy listens (`running`), at the
address the proxy server really bound (so `--listen-port 0` works), and stops them, removing the
throwaway profile, when recording stops (`done`). When the browser window or the app exits on its
own, recording stops with it. Works the same on Linux, macOS and Windows.
"""
from __future__ import annotations

import base64
import hashlib
import ipaddress
import logging
import ntpath
import os
import posixpath
import shlex
import shutil
import signal
import ssl
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Callable, Mapping, Sequence
from typing import Any

from mitmproxy import ctx

log = logging.getLogger(__name__)

# names on PATH (Linux mostly; also works for any OS where the user put one there)
BROWSERS = ("chromium", "chromium-browser", "google-chrome", "google-chrome-stable", "chrome",
            "microsoft-edge", "microsoft-edge-stable", "msedge", "brave-browser")
MAC_APPS = ("Google Chrome.app/Contents/MacOS/Google Chrome",
            "Chromium.app/Contents/MacOS/Chromium",
            "Microsoft Edge.app/Contents/MacOS/Microsoft Edge",
            "Brave Browser.app/Contents/MacOS/Brave Browser")
# (environment variable of the install root, path below it): machine-wide and per-user installs
WINDOWS_APPS = (("ProgramFiles", r"Google\Chrome\Application\chrome.exe"),
                ("ProgramFiles(x86)", r"Google\Chrome\Application\chrome.exe"),
                ("LOCALAPPDATA", r"Google\Chrome\Application\chrome.exe"),
                ("ProgramFiles(x86)", r"Microsoft\Edge\Application\msedge.exe"),
                ("ProgramFiles", r"Microsoft\Edge\Application\msedge.exe"),
                ("LOCALAPPDATA", r"Microsoft\Edge\Application\msedge.exe"),
                ("LOCALAPPDATA", r"Chromium\Application\chrome.exe"),
                ("ProgramFiles", r"BraveSoftware\Brave-Browser\Application\brave.exe"),
                ("LOCALAPPDATA", r"BraveSoftware\Brave-Browser\Application\brave.exe"))
WINDOWS_DEFAULT_ROOTS = {"ProgramFiles": r"C:\Program Files", "ProgramFiles(x86)": r"C:\Program Files (x86)"}
BUNDLE_NAME = "authtrace-ca-bundle.pem"
# what `authtrace env` sets; `env --unset` removes exactly these (and restores saved earlier values)
ENV_VARS = ("HTTPS_PROXY", "HTTP_PROXY", "https_proxy", "http_proxy", "REQUESTS_CA_BUNDLE", "SSL_CERT_FILE",
            "CURL_CA_BUNDLE", "NODE_EXTRA_CA_CERTS")
PREV = "AUTHTRACE_PREV_"


def browser_candidates(platform: str = sys.platform, environ: Mapping[str, str] = os.environ,
                       home: str | None = None) -> list[str]:
    """Install locations of Chrome, Edge, Chromium and Brave outside PATH, most likely first."""
    if platform == "darwin":
        home = home if home is not None else os.path.expanduser("~")
        return [posixpath.join(root, app) for app in MAC_APPS
                for root in ("/Applications", posixpath.join(home, "Applications"))]
    if platform == "win32":
        out = []
        for var, rel in WINDOWS_APPS:
            root = environ.get(var) or WINDOWS_DEFAULT_ROOTS.get(var)
            if root:
                out.append(ntpath.join(root, rel))
        return out
    return []


def find_browser(platform: str = sys.platform, environ: Mapping[str, str] = os.environ,
                 which: Callable[[str], str | None] = shutil.which,
                 exists: Callable[[str], bool] = os.path.exists, home: str | None = None) -> str | None:
    """AUTHTRACE_BROWSER, else a Chromium-family browser on PATH, else one in its usual install place."""
    if environ.get("AUTHTRACE_BROWSER"):
        return environ["AUTHTRACE_BROWSER"]
    for name in BROWSERS:
        path = which(name)
        if path:
            return path
    return next((p for p in browser_candidates(platform, environ, home) if exists(p)), None)


def ca_file(confdir: str) -> str:
    return os.path.join(os.path.expanduser(confdir), "mitmproxy-ca-cert.pem")


def ensure_ca(confdir: str) -> str:
    """mitmproxy's CA certificate in confdir, created as mitmproxy itself would on first start."""
    path = ca_file(confdir)
    if not os.path.exists(path):
        from mitmproxy.certs import CertStore

        CertStore.from_store(os.path.expanduser(confdir), "mitmproxy", 2048)
    return path


def system_ca_pem(skip: str = "") -> str:
    """The system's trusted CAs as PEM text: the OpenSSL CA file (Linux, macOS with python.org's
    certificates), else the OS store as Python's ssl module loads it (Windows), else certifi."""
    paths = ssl.get_default_verify_paths()
    for path in (paths.openssl_cafile, paths.cafile):
        if path and os.path.isfile(path) and os.path.realpath(path) != os.path.realpath(skip or os.devnull):
            with open(path, encoding="ascii", errors="replace") as fh:
                return fh.read()
    context = ssl.create_default_context()
    ders = context.get_ca_certs(binary_form=True)
    if ders:
        return "".join(ssl.DER_cert_to_PEM_cert(d) for d in ders)
    import certifi

    with open(certifi.where(), encoding="ascii") as fh:
        return fh.read()


def ca_bundle(confdir: str) -> str:
    """A CA bundle holding the system's trusted CAs and mitmproxy's CA, written beside mitmproxy's
    CA: programs given it trust both the proxy and every site they trusted before, so HTTPS that
    bypasses the proxy (or runs after recording stops) still verifies."""
    ca = ensure_ca(confdir)
    bundle = os.path.join(os.path.dirname(ca), BUNDLE_NAME)
    with open(ca, encoding="ascii") as fh:
        mitm = fh.read()
    text = system_ca_pem(skip=bundle).rstrip("\n") + "\n# mitmproxy's CA (authtrace)\n" + mitm
    tmp = bundle + ".tmp"
    with open(tmp, "w", encoding="ascii", newline="\n") as fh:
        fh.write(text)
    os.replace(tmp, bundle)
    return bundle


def spki_hash(ca_pem: str) -> str:
    """base64(SHA-256(SubjectPublicKeyInfo)) of the CA: what --ignore-certificate-errors-spki-list wants."""
    from cryptography import x509
    from cryptography.hazmat.primitives import serialization

    with open(ca_pem, "rb") as fh:
        cert = x509.load_pem_x509_certificate(fh.read())
    spki = cert.public_key().public_bytes(serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo)
    return base64.b64encode(hashlib.sha256(spki).digest()).decode()


def proxy_url(host: str, port: int) -> str:
    """The URL a local client uses for a proxy bound to host: loopback for a wildcard bind."""
    if host in ("", "0.0.0.0", "::"):
        host = "127.0.0.1"
    try:
        if ipaddress.ip_address(host).version == 6:
            host = f"[{host}]"
    except ValueError:
        pass
    return f"http://{host}:{port}"


def proxy_env(proxy: str, confdir: str) -> dict[str, str]:
    """Proxy and CA variables for a program whose traffic should be recorded. NO_PROXY is left to
    the caller: an empty one exported into a shell would outlive the recording."""
    bundle = ca_bundle(confdir)
    return {"HTTPS_PROXY": proxy, "HTTP_PROXY": proxy, "https_proxy": proxy, "http_proxy": proxy,
            "REQUESTS_CA_BUNDLE": bundle, "SSL_CERT_FILE": bundle, "CURL_CA_BUNDLE": bundle,
            "NODE_EXTRA_CA_CERTS": ca_file(confdir)}  # Node adds these to its own roots


def shell_lines(values: Mapping[str, str], current: Mapping[str, str], shell: str = "sh") -> list[str]:
    """Lines that set `values` in a shell, first saving values set earlier (by anything else) in
    AUTHTRACE_PREV_<NAME>, so that `unset_lines` can put them back."""
    out: dict[str, str] = {}
    for k, v in values.items():
        old = current.get(k)
        if old and old != v and PREV + k not in current:
            out[PREV + k] = old
        out[k] = v
    return [_set_line(k, v, shell) for k, v in out.items()]


def unset_lines(current: Mapping[str, str], shell: str = "sh") -> list[str]:
    """Lines that undo `shell_lines`: each variable back to its saved value, or unset."""
    out = []
    for k in ENV_VARS:
        if PREV + k in current:
            out += [_set_line(k, current[PREV + k], shell), _unset_line(PREV + k, shell)]
        else:
            out.append(_unset_line(k, shell))
    return out


def _set_line(k: str, v: str, shell: str) -> str:
    if shell == "powershell":
        return f"$env:{k} = '{v.replace(chr(39), chr(39) * 2)}'"
    if shell == "fish":
        return f"set -gx {k} {shlex.quote(v)}"
    return f"export {k}={shlex.quote(v)}"


def _unset_line(k: str, shell: str) -> str:
    if shell == "powershell":
        return f"Remove-Item Env:{k} -ErrorAction SilentlyContinue"
    if shell == "fish":
        return f"set -e {k}"
    return f"unset {k}"


def browser_args(exe: str, profile: str, proxy: str, spki: str, url: str | None, extra: list[str]) -> list[str]:
    args = [exe, f"--user-data-dir={profile}", f"--proxy-server={proxy}",
            "--proxy-bypass-list=<-loopback>", f"--ignore-certificate-errors-spki-list={spki}",
            "--no-first-run", "--no-default-browser-check", "--disable-background-networking",
            "--disable-component-update", "--disable-sync", "--disable-quic", "--disable-features=HttpsUpgrades"]
    if hasattr(os, "geteuid") and os.geteuid() == 0:
        args.append("--no-sandbox")  # Chromium refuses to run as root otherwise
    return args + extra + ([url] if url else ["about:blank"])


def listen_addresses(master: Any) -> list[tuple[str, int]]:
    """(host, port) of every socket the proxy server really listens on."""
    ps = master.addons.get("proxyserver") if master is not None else None
    if ps is None:
        return []
    return [(str(a[0]), int(a[1])) for a in ps.listen_addrs()]


def describe_listen(addrs: Sequence[tuple[str, int]]) -> str:
    """One sentence: where the proxy listens, and a warning when other machines can reach it."""
    if not addrs:
        return "the proxy server is not listening"
    host, port = addrs[0]
    hosts = sorted({h for h, _ in addrs})
    wide = [h for h in hosts if not _is_loopback(h)]
    if not wide:
        return f"proxy on {proxy_url(host, port)} (loopback only)"
    where = " and ".join(h or "*" for h in hosts)
    return (f"proxy on {proxy_url(host, port)}, listening on {where} port {port}: other machines on the "
            "network can use it (--listen-host 127.0.0.1 keeps it local)")


def _is_loopback(host: str) -> bool:
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return host == "localhost"


def spawn(args: list[str] | str, *, shell: bool = False, env: Mapping[str, str] | None = None,
          quiet: bool = False) -> subprocess.Popen[bytes]:
    """A child in its own process group (POSIX session / Windows process group), so stopping it
    stops what it started too (a browser's helper processes, an app's workers)."""
    kw: dict[str, Any] = {"stdin": subprocess.DEVNULL, "shell": shell, "env": env}
    if quiet:
        kw["stdout"] = kw["stderr"] = subprocess.DEVNULL
    if os.name == "nt":
        kw["creationflags"] = subprocess.CREATE_NEW_PROCESS_GROUP  # type: ignore[attr-defined]
    else:
        kw["start_new_session"] = True
    return subprocess.Popen(args, **kw)


def stop_tree(child: subprocess.Popen[bytes], timeout: float = 10) -> None:
    """Stop a child started by `spawn` and everything it started: SIGTERM then SIGKILL to its
    process group on POSIX, `taskkill /T` on Windows."""
    if child.poll() is not None:
        return
    if os.name == "nt":
        subprocess.run(["taskkill", "/T", "/F", "/PID", str(child.pid)], capture_output=True, check=False)
        try:
            child.wait(timeout)
        except subprocess.TimeoutExpired:
            child.kill()
        return
    try:
        os.killpg(child.pid, signal.SIGTERM)
        child.wait(timeout)
    except (ProcessLookupError, PermissionError):
        pass
    except subprocess.TimeoutExpired:
        try:
            os.killpg(child.pid, signal.SIGKILL)
        except ProcessLookupError:
            pass


problems: list[str] = []  # what failed to start or ended badly, for `authtrace record`'s exit status


class Launcher:
    """Runs the browser (`authtrace_browser`) and/or the app (`authtrace_app`) against this proxy:
    both together record a local app's back channel beside the browser's sign-in. Recording stops
    when the browser closes or the app exits; a browser or app that fails is said in one sentence
    (and `record` exits non-zero)."""

    def __init__(self) -> None:
        self.children: dict[str, subprocess.Popen[bytes]] = {}  # "browser" | "app" -> its process
        self.profile: str | None = None
        self.stopping = False
        self.is_running = False

    def load(self, loader: Any) -> None:
        loader.add_option("authtrace_browser", bool, False, "authtrace: open a clean, proxied Chromium.")
        loader.add_option("authtrace_browser_url", str, "", "authtrace: page the browser opens first.")
        loader.add_option("authtrace_browser_args", str, "", "authtrace: extra browser arguments (shell words).")
        loader.add_option("authtrace_app", str, "", "authtrace: command to run with proxy and CA environment set.")

    def running(self) -> None:
        self.is_running = True
        if ctx.options.server:  # not with `mitmdump -n -r FILE`: nothing listens then, by design
            log.info("authtrace: %s", describe_listen(listen_addresses(ctx.master)))
        self._start()

    def configure(self, updated: set[str]) -> None:
        """At run time, switching `authtrace_browser` or `authtrace_app` on starts it, off stops it."""
        if not self.is_running or not updated & {"authtrace_browser", "authtrace_app"}:
            return
        for what, wanted in (("browser", ctx.options.authtrace_browser), ("app", bool(ctx.options.authtrace_app))):
            if not wanted and what in self.children:
                self._stop(what)
        self._start()

    def proxy(self) -> str:
        addrs = listen_addresses(ctx.master)
        if addrs:
            return proxy_url(*addrs[0])
        return proxy_url(ctx.options.listen_host, ctx.options.listen_port or 8080)

    def _start(self) -> None:
        opts = ctx.options
        if opts.authtrace_app and "app" not in self.children:
            env = {k: v for k, v in os.environ.items() if k.lower() != "no_proxy"}  # record every host
            env.update(proxy_env(self.proxy(), opts.confdir))
            try:
                child = spawn(opts.authtrace_app, shell=True, env=env)
            except OSError as e:
                self._fail(f"the app could not be started: {e.strerror}.")
                return
            self._watch_child("app", child)
            log.info("authtrace: started the app (pid %d) with the proxy and CA environment set", child.pid)
        if opts.authtrace_browser and "browser" not in self.children:
            exe = find_browser()
            if exe is None:
                self._fail("no Chromium, Chrome or Edge found; install one or set AUTHTRACE_BROWSER=/path/to/browser.")
                return
            self.profile = tempfile.mkdtemp(prefix="authtrace-profile-")
            args = browser_args(exe, self.profile, self.proxy(), spki_hash(ensure_ca(opts.confdir)),
                                opts.authtrace_browser_url or None, shlex.split(opts.authtrace_browser_args))
            try:
                child = spawn(args, quiet=True)
            except OSError as e:
                self._fail(f"the browser {exe} could not be started: {e.strerror}.")
                return
            self._watch_child("browser", child)
            log.info("authtrace: browser started with a fresh profile (%s); close it or press Ctrl-C to stop "
                     "recording", os.path.basename(exe))

    def _watch_child(self, what: str, child: subprocess.Popen[bytes]) -> None:
        self.children[what] = child
        self.stopping = False
        threading.Thread(target=self._watch, args=(ctx.master, what, child, time.monotonic()), daemon=True).start()

    def _fail(self, msg: str) -> None:
        problems.append(msg)
        log.error("authtrace: %s", msg)
        ctx.master.shutdown()

    def _watch(self, master: Any, what: str, child: subprocess.Popen[bytes], started: float) -> None:
        code = child.wait()
        if self.stopping or self.children.get(what) is not child:
            return
        self.children.pop(what, None)
        if code and what == "app":
            problems.append(f"the app exited with status {code}.")
            log.error("authtrace: the app exited with status %d; stopping", code)
        elif code and time.monotonic() - started < 10:
            problems.append(f"the browser exited with status {code} right after it started: it could not run "
                            "(AUTHTRACE_BROWSER=/path picks another browser).")
            log.error("authtrace: %s", problems[-1])
        else:
            log.info("authtrace: %s; stopping", "browser closed" if what == "browser" else "app exited")
        master.shutdown()  # thread-safe: it schedules on the proxy's loop

    def _stop(self, what: str) -> None:
        child = self.children.pop(what, None)
        if child is not None:
            stop_tree(child)
        if what == "browser" and self.profile:
            shutil.rmtree(self.profile, ignore_errors=True)
            self.profile = None

    def done(self) -> None:
        self.stopping = True
        for what in list(self.children):
            self._stop(what)
        if self.profile:
            shutil.rmtree(self.profile, ignore_errors=True)
            self.profile = None
        self.is_running = False
