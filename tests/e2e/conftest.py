"""Fixtures of the real end-to-end rig.

session scope: throwaway PKI, free ports, mitmproxy's CA, the OpenID provider
(Node, oidc-provider), the relying party and the protected API (Flask), the
Playwright driver; on demand a second relying party whose back channel does not
go through the proxy (``direct_rp``).

Per scenario: ``Stack.capture(name)`` runs its own recording proxy (same port,
fresh database, its own saved flows) and stops it with SIGTERM so it flushes;
``new_browser_context`` gives a fresh, isolated context of the session's headless
Chromium. ``scenario_outcomes`` records the selected scenarios (scenarios.py) and
``scenario_a`` .. ``scenario_e`` hand each one to its tests.

Missing Chromium or Node skips the module locally and fails it when CI is set.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import subprocess
import sys
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import pytest

from . import rig, scenarios

IN_CI = bool(os.environ.get("CI"))
TIMINGS: dict[str, dict[str, float]] = {}  # capture -> phase -> seconds, shown at the end of the run


def _missing(message: str) -> None:
    if IN_CI:
        pytest.fail(message, pytrace=False)
    pytest.skip(message)


class CaptureError(RuntimeError):
    pass


class ScenarioFailed(RuntimeError):
    pass


@dataclass
class Capture:
    """One scenario's recording: its own proxy process, database and saved flows."""

    name: str
    directory: Path
    db: Path  # authtrace's store (written only when proxy_kind == "authtrace")
    flows: Path  # --save-flows: the raw flows (mitmproxy format), *.test only
    har: Path | None  # mitmproxy's own HAR export (hardump) of the same flows, when asked for
    proc: rig.Proc
    records_hops: bool

    def wait_ready(self, port: int) -> None:
        """Listening, and (authtrace) the capture addon has opened its session: hops are stored from now on."""

        def ready() -> bool:
            recording = not self.records_hops or "authtrace: recording session" in self.proc.output()
            return recording and rig.port_open(port)

        self.proc.wait_until(ready, "listening and recording")

    def rows(self) -> list[dict]:
        return rig.hop_rows(self.db)


@dataclass
class Stack:
    """Everything a scenario needs to know about the running rig."""

    issuer: str  # https://idp.test:PORT
    app_url: str  # https://app.test:PORT (back channel through the proxy)
    direct_app_url: str  # https://app.test:PORT2 (back channel NOT through the proxy; see direct_rp)
    api_url: str  # https://api.test:PORT/data
    other_api_url: str  # https://other.test:PORT/data (expects audience https://other.test)
    proxy_port: int
    proxy_kind: str  # "mitmdump" or "authtrace"
    confdir: Path  # mitmproxy's confdir, shared by every capture (one CA for the whole run)
    mitm_ca: Path  # <confdir>/mitmproxy-ca-cert.pem
    mitm_ca_spki: str  # base64 SHA-256 of its SPKI, for Chromium
    pki: rig.PKI  # the throwaway CA the servers' certificate comes from
    workdir: Path
    procs: dict[str, rig.Proc] = field(default_factory=dict)
    direct_env: dict[str, str] = field(default_factory=dict)  # for processes that bypass the proxy
    captures: dict[str, Capture] = field(default_factory=dict)  # every capture so far, by name

    @property
    def records_hops(self) -> bool:
        return self.proxy_kind == "authtrace"

    @property
    def userinfo_url(self) -> str:
        return f"{self.issuer}/me"  # oidc-provider's default userinfo route

    @contextlib.contextmanager
    def capture(self, name: str, *, har: bool = False) -> Iterator[Capture]:
        """Run a fresh recording proxy for one scenario, stop it (SIGTERM) on exit so it flushes.

        The same port every time, so the apps' HTTPS_PROXY stays valid. Yields once the proxy
        listens and (authtrace) records; raises CaptureError on exit if it did not stop cleanly
        or did not write its files.
        """
        directory = self.workdir / "captures" / name
        if directory.exists():
            raise CaptureError(f"capture {name!r} already exists in {directory}")
        directory.mkdir(parents=True)
        if "proxy" in self.procs and self.procs["proxy"].running():
            raise CaptureError(f"another capture is still running: {self.procs['proxy'].name}")
        db, flows = directory / "authtrace.db", directory / "flows.mitm"
        har_path = directory / "flows.har" if har else None
        cmd = rig.proxy_command(
            self.proxy_kind, port=self.proxy_port, confdir=self.confdir, upstream_ca=self.pki.ca_cert,
            db=db, save_flows=flows, hardump=har_path,
        )  # fmt: skip
        proc = rig.Proc(f"proxy[{name}]", cmd, directory / "proxy.log", env=rig.clean_env(), cwd=rig.REPO)
        cap = Capture(name, directory, db, flows, har_path, proc, self.records_hops)
        self.captures[name] = cap
        self.procs["proxy"] = proc  # its log goes into a failing test's report
        proc.start()
        failed = False
        try:
            cap.wait_ready(self.proxy_port)
            yield cap
        except BaseException:
            failed = True
            raise
        finally:
            proc.stop(timeout=15)
            if not failed:  # a proxy that did not stop cleanly may not have flushed its store and files
                if proc.killed:
                    raise CaptureError(f"{proc.name} ignored SIGTERM for 15 s and was killed\n{proc.tail()}")
                if proc.returncode != 0:
                    raise CaptureError(f"{proc.name} exited with {proc.returncode} on SIGTERM\n{proc.tail()}")
                missing = [p.name for p in (flows, har_path) if p is not None and not p.exists()]
                if missing:
                    raise CaptureError(f"{proc.name} did not write {missing}\n{proc.tail()}")


@pytest.fixture(scope="package")
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


@pytest.fixture(scope="package")
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


@pytest.fixture(scope="package")
def stack(e2e_tools, idp_installed, tmp_path_factory) -> Iterator[Stack]:
    work = tmp_path_factory.mktemp("e2e")
    logs = work / "logs"
    pki = rig.make_pki(work / "pki")
    idp_port, app_port, direct_app_port, api_port, proxy_port = rig.free_ports(5)
    confdir = work / "mitmproxy"
    mitm_ca = rig.ensure_mitm_ca(confdir)
    s = Stack(
        issuer=f"https://idp.test:{idp_port}",
        app_url=f"https://app.test:{app_port}",
        direct_app_url=f"https://app.test:{direct_app_port}",
        api_url=f"https://api.test:{api_port}/data",
        other_api_url=f"https://other.test:{api_port}/data",
        proxy_port=proxy_port,
        proxy_kind=rig.PROXY_KIND,
        confdir=confdir,
        mitm_ca=mitm_ca,
        mitm_ca_spki=rig.spki_sha256_b64(mitm_ca),
        pki=pki,
        workdir=work,
    )
    tls = {"TLS_CERT": str(pki.cert), "TLS_KEY": str(pki.key)}
    proxy_url = f"http://127.0.0.1:{proxy_port}"
    # The app reaches the IdP and the API only through the proxy (whichever scenario's proxy
    # is running on that port).
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
    # Processes that do NOT use the proxy resolve *.test themselves and trust the rig's own CA.
    direct = {
        **tls,
        "ISSUER": s.issuer,
        "E2E_RESOLVE_TEST_HOSTS": "127.0.0.1",
        "REQUESTS_CA_BUNDLE": str(pki.ca_cert),
        "SSL_CERT_FILE": str(pki.ca_cert),
    }
    s.direct_env = direct
    redirect_uris = f"{s.app_url}/callback {s.direct_app_url}/callback"
    s.procs["idp"] = rig.Proc(
        "idp",
        [e2e_tools["node"], "server.mjs"],
        logs / "idp.log",
        env=rig.clean_env(**tls, IDP_PORT=str(idp_port), REDIRECT_URIS=redirect_uris, SIGNING_KEY=str(pki.signing_key)),
        cwd=rig.IDP_DIR,
    )
    s.procs["rp"] = rig.Proc(
        "rp",
        [sys.executable, str(rig.RP_DIR / "app.py")],
        logs / "rp.log",
        env={**back_channel, "APP_PORT": str(app_port), "API_URL": s.api_url},
        cwd=rig.RP_DIR,
    )
    # The API fetches the IdP's keys directly, not through the proxy (see rp/api.py).
    s.procs["api"] = rig.Proc(
        "api",
        [sys.executable, str(rig.RP_DIR / "api.py")],
        logs / "api.log",
        env=rig.clean_env(**direct, API_PORT=str(api_port)),
        cwd=rig.RP_DIR,
    )
    # Generous timeouts: they only matter when something is broken, and a busy
    # 2-core CI machine can be slow to start three processes at once.
    try:
        failure = None
        try:
            for proc in list(s.procs.values()):  # all start in parallel
                proc.start()
            s.procs["idp"].wait_for_line("IDP READY")
            s.procs["rp"].wait_for_line("RP READY")
            s.procs["api"].wait_for_line("API READY")
        except (rig.StartupError, OSError) as exc:
            failure = f"{exc}"
        if failure:  # outside the except block: one clean message, no chained traceback
            pytest.fail(failure, pytrace=False)
        yield s
    finally:
        for proc in reversed(list(s.procs.values())):  # a capture's proxy is stopped by its scenario
            proc.stop()


@pytest.fixture(scope="package")
def direct_rp(stack, e2e_tools) -> Iterator[str]:
    """A second relying party whose back channel does NOT go through the proxy (scenario e).

    No proxy variables; it resolves *.test itself (the test-only getaddrinfo shim in rp/app.py)
    and trusts the servers' own throwaway CA instead of mitmproxy's. Its redirect URI is
    registered at the IdP from the start (REDIRECT_URIS). Yields its URL.
    """
    port = stack.direct_app_url.rsplit(":", 1)[1]
    proc = rig.Proc(
        "rp-direct",
        [sys.executable, str(rig.RP_DIR / "app.py")],
        stack.workdir / "logs" / "rp-direct.log",
        env=rig.clean_env(**stack.direct_env, APP_PORT=port, API_URL=stack.api_url),
        cwd=rig.RP_DIR,
    )
    stack.procs["rp-direct"] = proc
    try:
        proc.start()
        try:
            proc.wait_for_line("RP READY")
        except rig.StartupError as exc:
            pytest.fail(str(exc), pytrace=False)
        yield stack.direct_app_url
    finally:
        proc.stop()


@pytest.fixture(scope="package")
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


@pytest.fixture(scope="package")
def chromium(stack, playwright_driver):
    """One headless Debian Chromium for the session, behind the proxy port, trusting only mitmproxy's CA.

    Each scenario gets a context of its own (``new_browser_context``): cookies, storage, cache and
    connection pools are per context, so it starts like a fresh profile, for a fraction of a
    browser start. Whichever capture's proxy is on the port at the time is the one it uses.
    """
    browser = playwright_driver.chromium.launch(
        executable_path=rig.CHROMIUM,
        headless=True,
        proxy={"server": f"http://127.0.0.1:{stack.proxy_port}"},
        args=chromium_args(stack),
    )
    try:
        yield browser
    finally:
        browser.close()


@contextlib.contextmanager
def new_browser_context(browser, stack: Stack):
    """A fresh, isolated browser context (no cookies, no IdP session); closed on exit."""
    context = browser.new_context(ignore_https_errors=False)  # certificates: the SPKI pin only
    context.set_default_timeout(30_000)  # per action; a sign-in takes 1-3 s
    try:
        yield context
    finally:
        context.close()


@pytest.fixture(scope="package")
def scenario_outcomes(request, stack, chromium) -> dict[str, object]:
    """Record every scenario the selected tests need, in order, one capture each (scenarios.py).

    All captures run here, back to back; each one's `authtrace report` / `check` runs in the
    background while the next one's journey runs. A scenario that fails leaves its exception for its own
    tests (scenario_<key> re-raises it); the others still run.
    """
    wanted = {
        key for item in request.session.items for key in scenarios.SCENARIOS
        if f"scenario_{key}" in getattr(item, "fixturenames", ())
    }  # fmt: skip
    outcomes: dict[str, object] = {}
    previous = None  # the last recorded scenario: its analysis starts once the next proxy is up
    for key, scenario in scenarios.SCENARIOS.items():
        if key not in wanted:
            continue
        extra = {"direct_rp": request.getfixturevalue("direct_rp")} if scenario.direct_rp else {}
        try:
            outcome = scenarios.record(
                stack, chromium, scenario, extra, new_browser_context,
                on_ready=previous.start_analysis if previous else None,
            )  # fmt: skip
            outcomes[key] = previous = outcome
            TIMINGS[scenario.name] = outcome.seconds
        except Exception as exc:
            cap = stack.captures.get(scenario.name)
            log = f"\n--- proxy log ({cap.proc.log}) ---\n{cap.proc.tail(40)}" if cap else ""
            outcomes[key] = ScenarioFailed(f"scenario {key} ({scenario.name}) failed: {exc!r}{log}")
            outcomes[key].__cause__ = exc
    if previous is not None:
        previous.start_analysis()
    return outcomes


def _scenario_fixture(key: str):
    @pytest.fixture(scope="package", name=f"scenario_{key}")
    def outcome(scenario_outcomes):
        result = scenario_outcomes[key]
        if isinstance(result, BaseException):
            raise result
        return result

    return outcome


scenario_a, scenario_b, scenario_c, scenario_d, scenario_e = (_scenario_fixture(k) for k in "abcde")


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_makereport(item, call):
    """On failure, attach the tail of every server's log, and the scenario's own proxy log."""
    outcome = yield
    report = outcome.get_result()
    if report.failed:
        funcargs = getattr(item, "funcargs", {})
        s = funcargs.get("stack")
        if isinstance(s, Stack):
            for name, proc in s.procs.items():
                if name != "proxy":
                    report.sections.append((f"e2e {name} log ({proc.log})", proc.tail(30)))
        for name, value in funcargs.items():
            cap = getattr(value, "capture", None)
            if name.startswith("scenario_") and isinstance(cap, Capture):
                report.sections.append((f"e2e proxy log of {cap.name} ({cap.proc.log})", cap.proc.tail(40)))


def pytest_terminal_summary(terminalreporter):
    if TIMINGS:
        terminalreporter.section("e2e captures: seconds per phase")
        for name, phases in TIMINGS.items():
            terminalreporter.write_line(f"{name:<22} " + "  ".join(f"{k} {v:.1f}" for k, v in phases.items()))
