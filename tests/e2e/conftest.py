"""Fixtures of the real end-to-end rig.

session scope: throwaway PKI, free ports, the recording proxy, the OpenID
provider (Node, oidc-provider), the relying party and the protected API (Flask),
the Playwright driver. function scope: a fresh headless Chromium profile.

Missing Chromium or Node skips the module locally and fails it when CI is set.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import subprocess
import sys
from dataclasses import dataclass, field
from pathlib import Path
from typing import Iterator

import pytest

from . import rig

IN_CI = bool(os.environ.get("CI"))


def _missing(message: str) -> None:
    if IN_CI:
        pytest.fail(message, pytrace=False)
    pytest.skip(message)


@dataclass
class Stack:
    """Everything a scenario needs to know about the running rig."""

    issuer: str  # https://idp.test:PORT
    app_url: str  # https://app.test:PORT
    api_url: str  # https://api.test:PORT/data
    other_api_url: str  # https://other.test:PORT/data (expects audience https://other.test)
    proxy_port: int
    proxy_kind: str  # "mitmdump" or "authtrace"
    mitm_ca: Path  # <confdir>/mitmproxy-ca-cert.pem
    mitm_ca_spki: str  # base64 SHA-256 of its SPKI, for Chromium
    pki: rig.PKI  # the throwaway CA the servers' certificate comes from
    db: Path  # authtrace database (only written when proxy_kind == "authtrace")
    workdir: Path
    procs: dict[str, rig.Proc] = field(default_factory=dict)

    @property
    def records_hops(self) -> bool:
        return self.proxy_kind == "authtrace"

    @property
    def userinfo_url(self) -> str:
        return f"{self.issuer}/me"  # oidc-provider's default userinfo route


@pytest.fixture(scope="session")
def e2e_tools() -> dict[str, str]:
    if not Path(rig.CHROMIUM).exists():
        _missing("Debian chromium not installed: apt-get install chromium")
    node, npm = shutil.which("node"), shutil.which("npm")
    if not node or not npm:
        _missing("Node.js >= 20 and npm not found (the OpenID provider runs on Node)")
    try:
        import playwright.sync_api  # noqa: F401
    except ImportError:
        _missing("playwright is not installed in this Python environment")
    return {"node": node, "npm": npm}


@pytest.fixture(scope="session")
def idp_installed(e2e_tools) -> Path:
    """The provider's node_modules: `npm ci` from the committed package-lock.json when missing."""
    if not (rig.IDP_DIR / "node_modules" / "oidc-provider" / "package.json").exists():
        done = subprocess.run(
            [e2e_tools["npm"], "ci", "--no-audit", "--no-fund"],
            cwd=rig.IDP_DIR,
            capture_output=True,
            text=True,
            timeout=300,
        )
        if done.returncode != 0:
            pytest.fail(f"npm ci in {rig.IDP_DIR} failed:\n{done.stdout}\n{done.stderr}", pytrace=False)
    return rig.IDP_DIR


@pytest.fixture(scope="session")
def stack(e2e_tools, idp_installed, tmp_path_factory) -> Iterator[Stack]:
    work = tmp_path_factory.mktemp("e2e")
    logs = work / "logs"
    pki = rig.make_pki(work / "pki")
    idp_port, app_port, api_port, proxy_port = rig.free_ports(4)
    confdir = work / "mitmproxy"
    s = Stack(
        issuer=f"https://idp.test:{idp_port}",
        app_url=f"https://app.test:{app_port}",
        api_url=f"https://api.test:{api_port}/data",
        other_api_url=f"https://other.test:{api_port}/data",
        proxy_port=proxy_port,
        proxy_kind=rig.PROXY_KIND,
        mitm_ca=confdir / "mitmproxy-ca-cert.pem",
        mitm_ca_spki="",
        pki=pki,
        db=work / "authtrace.db",
        workdir=work,
    )
    tls = {"TLS_CERT": str(pki.cert), "TLS_KEY": str(pki.key)}
    proxy_url = f"http://127.0.0.1:{proxy_port}"
    # The app and the API reach the IdP and each other only through the proxy.
    back_channel = rig.clean_env(
        **tls,
        ISSUER=s.issuer,
        HTTPS_PROXY=proxy_url,
        HTTP_PROXY=proxy_url,
        https_proxy=proxy_url,
        http_proxy=proxy_url,
        REQUESTS_CA_BUNDLE=str(s.mitm_ca),
        SSL_CERT_FILE=str(s.mitm_ca),
    )
    cmd = rig.proxy_command(s.proxy_kind, port=proxy_port, confdir=confdir, upstream_ca=pki.ca_cert, db=s.db)
    s.procs["proxy"] = rig.Proc("proxy", cmd, logs / "proxy.log", env=rig.clean_env(), cwd=rig.REPO)
    s.procs["idp"] = rig.Proc(
        "idp",
        [e2e_tools["node"], "server.mjs"],
        logs / "idp.log",
        env=rig.clean_env(**tls, IDP_PORT=str(idp_port), APP_PORT=str(app_port)),
        cwd=rig.IDP_DIR,
    )
    s.procs["rp"] = rig.Proc(
        "rp",
        [sys.executable, str(rig.RP_DIR / "app.py")],
        logs / "rp.log",
        env={**back_channel, "APP_PORT": str(app_port), "API_URL": s.api_url},
        cwd=rig.RP_DIR,
    )
    s.procs["api"] = rig.Proc(
        "api",
        [sys.executable, str(rig.RP_DIR / "api.py")],
        logs / "api.log",
        env={**back_channel, "API_PORT": str(api_port)},
        cwd=rig.RP_DIR,
    )
    try:
        for proc in s.procs.values():  # all start in parallel
            proc.start()
        s.procs["proxy"].wait_until(
            lambda: s.mitm_ca.exists() and rig.port_open(proxy_port), "listening with its CA in confdir", timeout=30
        )
        s.mitm_ca_spki = rig.spki_sha256_b64(s.mitm_ca)
        s.procs["idp"].wait_for_line("IDP READY")
        s.procs["rp"].wait_for_line("RP READY")
        s.procs["api"].wait_for_line("API READY")
    except rig.StartupError as exc:
        for proc in reversed(s.procs.values()):
            proc.stop()
        pytest.fail(str(exc), pytrace=False)
    try:
        yield s
    finally:
        # Servers first, the proxy last (SIGTERM so authtrace can flush its store).
        for name in ("rp", "api", "idp", "proxy"):
            s.procs[name].stop()


@pytest.fixture(scope="session")
def playwright_driver(e2e_tools):
    from playwright.sync_api import sync_playwright

    pw = sync_playwright().start()
    try:
        yield pw
    finally:
        pw.stop()


def chromium_args(stack: Stack) -> list[str]:
    return [
        "--no-sandbox",  # we run as root in CI containers
        "--disable-background-networking",
        "--disable-component-update",
        "--no-first-run",
        "--disable-sync",
        "--disable-quic",
        "--disable-features=HttpsUpgrades",
        # Trust mitmproxy's CA and nothing else extra (no ignore_https_errors).
        f"--ignore-certificate-errors-spki-list={stack.mitm_ca_spki}",
    ]


@contextlib.contextmanager
def launch_browser(playwright_driver, stack: Stack, profile_dir: Path):
    """A fresh headless Chromium profile behind the proxy (Playwright persistent context)."""
    context = playwright_driver.chromium.launch_persistent_context(
        str(profile_dir),
        executable_path=rig.CHROMIUM,
        headless=True,
        proxy={"server": f"http://127.0.0.1:{stack.proxy_port}"},
        ignore_https_errors=False,
        args=chromium_args(stack),
    )
    context.set_default_timeout(15_000)
    try:
        yield context
    finally:
        context.close()


@pytest.fixture
def browser(stack, playwright_driver, tmp_path):
    with launch_browser(playwright_driver, stack, tmp_path / "chromium-profile") as context:
        yield context


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_makereport(item, call):
    """On failure, attach the tail of every server's log to the report."""
    outcome = yield
    report = outcome.get_result()
    if report.failed:
        s = getattr(item, "funcargs", {}).get("stack")
        if isinstance(s, Stack):
            for name, proc in s.procs.items():
                report.sections.append((f"e2e {name} log ({proc.log})", proc.tail(30)))
