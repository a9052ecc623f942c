"""Issue 11 rig: more providers, public clients and grants, on the rig of issue 5.

Reuses the package's stack (PKI, proxy port, mitmproxy's CA, the headless Chromium) and its
capture harness (``scenarios.record``: one `authtrace record` per scenario, then `authtrace
check` on the saved flows in the background while the next scenario records). Adds:

- servers: the public-client provider (``idp/public.mjs``: SPA, device flow, rotating refresh
  tokens) as op.test, the SPA (``spa/``: React + oauth4webapi bundled by esbuild) as spa.test,
  django-oauth-toolkit as dot.test, Authlib's authorization server as authlib.test, and a generic
  Authlib relying party per provider as client.test;
- journeys for them, and readers of the saved flows (mitmproxy's FlowReader) for the journeys'
  self-checks.

Only ``outcome_fixture`` knows pytest; the test modules own the fixtures that start the servers.
"""

from __future__ import annotations

import contextlib
import json
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any
from urllib.parse import parse_qsl, urlsplit

from . import flows, rig, scenarios

if TYPE_CHECKING:
    from mitmproxy import http

    from .conftest import Stack

USER, PASSWORD = "alice", "correct horse"


# ------------------------------------------------------------------ servers


def tls_env(stack: Stack) -> dict[str, str]:
    return {"TLS_CERT": str(stack.pki.cert), "TLS_KEY": str(stack.pki.key), "SIGNING_KEY": str(stack.pki.signing_key)}


def proxied_env(stack: Stack, **extra: str) -> dict[str, str]:
    """A process whose HTTP(S) goes through whichever capture's proxy is on the port, trusting mitmproxy's CA."""
    proxy = f"http://127.0.0.1:{stack.proxy_port}"
    return rig.clean_env(
        HTTPS_PROXY=proxy, HTTP_PROXY=proxy, https_proxy=proxy, http_proxy=proxy,
        REQUESTS_CA_BUNDLE=str(stack.mitm_ca), SSL_CERT_FILE=str(stack.mitm_ca), **extra,
    )  # fmt: skip


def start_server(stack: Stack, name: str, cmd: list[str], env: dict[str, str], cwd: Path, ready: str) -> rig.Proc:
    """Start a server of the rig, registered in stack.procs (its log joins a failing test's report)."""
    proc = rig.Proc(name, cmd, stack.workdir / "logs" / f"{name}.log", env=env, cwd=cwd)
    stack.procs[name] = proc
    proc.start()
    proc.wait_for_line(ready)
    return proc


def npm_ci(npm: str, directory: Path, marker: str) -> str | None:
    """`npm ci` from the committed lock file when node_modules/<marker> is missing; the error text or None."""
    if (directory / "node_modules" / marker / "package.json").exists():
        return None
    done = subprocess.run(
        [npm, "ci", "--no-audit", "--no-fund"], cwd=directory, capture_output=True, text=True, timeout=300
    )
    return None if done.returncode == 0 else f"npm ci in {directory} failed:\n{done.stdout}\n{done.stderr}"


def build_spa(node: str, outdir: Path) -> Path:
    """Bundle the SPA with esbuild (spa/build.mjs) into outdir; returns app.js."""
    done = subprocess.run(
        [node, "build.mjs", str(outdir)], cwd=rig.SPA_DIR, capture_output=True, text=True, timeout=120
    )
    if done.returncode != 0:
        raise rig.StartupError(f"SPA build failed:\n{done.stdout}\n{done.stderr}")
    return outdir / "app.js"


@dataclass
class PublicClients:
    """The public-client provider and the SPA."""

    issuer: str  # https://op.test:PORT
    spa_url: str  # https://spa.test:PORT


def start_public_clients(stack: Stack, node: str) -> PublicClients:
    idp_port, spa_port = rig.free_ports(2)
    spa_url = f"https://spa.test:{spa_port}"
    issuer = f"https://op.test:{idp_port}"
    bundle = build_spa(node, stack.workdir / "spa-dist")
    start_server(
        stack, "op", [node, "public.mjs"],
        rig.clean_env(**tls_env(stack), IDP_PORT=str(idp_port), SPA_REDIRECT=f"{spa_url}/callback"),
        rig.IDP_DIR, "IDP READY",
    )  # fmt: skip
    start_server(
        stack, "spa", [sys.executable, str(rig.SPA_DIR / "serve.py")],
        rig.clean_env(**tls_env(stack), SPA_PORT=str(spa_port), SPA_BUNDLE=str(bundle), ISSUER=issuer),
        rig.SPA_DIR, "SPA READY",
    )  # fmt: skip
    return PublicClients(issuer, spa_url)


@dataclass
class Provider:
    """A provider implementation and the relying party registered at it."""

    name: str  # "dot" | "authlib"
    issuer: str
    rp_url: str  # https://client.test:PORT


def start_provider(stack: Stack, name: str) -> Provider:
    """django-oauth-toolkit ("dot") or Authlib's server ("authlib"), and a generic RP for it."""
    idp_port, rp_port = rig.free_ports(2)
    rp_url = f"https://client.test:{rp_port}"
    script, issuer, ready = {
        "dot": ("dot_idp.py", f"https://dot.test:{idp_port}/o", "DOT IDP READY"),
        "authlib": ("authlib_idp.py", f"https://authlib.test:{idp_port}", "AUTHLIB IDP READY"),
    }[name]
    env = rig.clean_env(
        **tls_env(stack),
        IDP_PORT=str(idp_port),
        REDIRECT_URIS=f"{rp_url}/callback",
        DOT_DB=str(stack.workdir / "dot.sqlite3"),
    )
    idp = rig.Proc(
        f"{name}-idp",
        [sys.executable, str(rig.PROVIDERS_DIR / script)],
        stack.workdir / "logs" / f"{name}-idp.log",
        env=env,
        cwd=rig.PROVIDERS_DIR,
    )
    rp = rig.Proc(
        f"{name}-rp", [sys.executable, str(rig.RP_DIR / "generic_rp.py")], stack.workdir / "logs" / f"{name}-rp.log",
        env=proxied_env(stack, **tls_env(stack), APP_PORT=str(rp_port), ISSUER=issuer), cwd=rig.RP_DIR,
    )  # fmt: skip
    for proc in (idp, rp):  # both start in parallel
        stack.procs[proc.name] = proc
        proc.start()
    idp.wait_for_line(ready)
    rp.wait_for_line("RP READY")
    return Provider(name, issuer, rp_url)


# ------------------------------------------------------------------ browser


@contextlib.contextmanager
def browser_context(browser, har: Path | None = None) -> Iterator[Any]:
    """A fresh context like conftest.new_browser_context; with har, Playwright writes the browser's own
    HAR (bodies embedded, CORS preflights included) there when the context closes."""
    options: dict[str, Any] = {"ignore_https_errors": False}
    if har is not None:
        options.update(record_har_path=str(har), record_har_content="embed")
    context = browser.new_context(**options)
    context.set_default_timeout(30_000)
    try:
        yield context
    finally:
        context.close()


def op_login(page, *, consent: bool = True) -> None:
    """oidc-provider's devInteractions: any login and password, then 'Continue' on the consent page."""
    page.fill("input[name=login]", USER)
    page.fill("input[name=password]", PASSWORD)
    page.click("button[type=submit]")
    if consent:
        page.locator("button:has-text('Continue')").click()


def spa_result(page) -> dict[str, Any]:
    """Wait until the SPA has settled every redemption attempt; its JSON outcome."""
    page.wait_for_selector("#result[data-phase=done]")
    return json.loads(page.text_content("#result") or "{}")


def spa_signin(context, spa_url: str, variant: str):
    """SPA /login?variant=V -> op.test login and consent -> SPA /callback, redeemed in the browser."""
    page = context.new_page()
    page.goto(f"{spa_url}/login?variant={variant}")
    op_login(page)
    page.wait_for_url(f"{spa_url}/callback?*")
    return page, spa_result(page)


# ------------------------------------------------------------------ journeys


def spa_clean(stack: Stack, context, extra: dict) -> dict:
    """spa-clean: the guarded app redeems once, then reads userinfo (a CORS call with a bearer token)."""
    page, result = spa_signin(context, extra["public"].spa_url, "guarded")
    return {"result": result, "userinfo": page.evaluate("spa.userinfo()"), "url": page.url}


def spa_double(stack: Stack, context, extra: dict) -> dict:
    """spa-double-redemption: StrictMode runs the unguarded effect twice: two token POSTs, one code."""
    page, result = spa_signin(context, extra["public"].spa_url, "unguarded")
    return {"result": result, "url": page.url}


def spa_refresh_reuse(stack: Stack, context, extra: dict) -> dict:
    """refresh-reuse: rotate once, present the rotated-out refresh token again, then the newest one."""
    page, result = spa_signin(context, extra["public"].spa_url, "refresh")
    steps = {"signin": result}
    for name, call in (
        ("userinfo_1", "spa.userinfo()"),
        ("rotate", "spa.refresh('current')"),
        ("userinfo_2", "spa.userinfo()"),
        ("reuse", "spa.refresh('previous')"),
        ("after_reuse", "spa.refresh('current')"),
        ("userinfo_3", "spa.userinfo()"),
    ):
        steps[name] = page.evaluate(call)
    return steps


@dataclass
class DeviceClient:
    proc: rig.Proc

    def events(self) -> list[dict]:
        return [json.loads(line) for line in self.proc.output().splitlines() if line.startswith("{")]

    def wait_event(self, ready: Callable[[dict], bool], what: str, timeout: float = 30.0) -> dict:
        self.proc.wait_until(lambda: any(ready(e) for e in self.events()), what, timeout)
        return next(e for e in self.events() if ready(e))

    def wait_done(self, timeout: float = 60.0) -> dict:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            done = [e for e in self.events() if e["event"] == "done"]
            if done:
                return done[0]
            if not self.proc.running() and not [e for e in self.events() if e["event"] == "done"]:
                raise rig.StartupError(f"device client exited without a result\n{self.proc.tail()}")
            time.sleep(0.05)
        raise rig.StartupError(f"device client did not finish in {timeout:.0f}s\n{self.proc.tail()}")


def start_device_client(stack: Stack, issuer: str, client_id: str, name: str) -> DeviceClient:
    """The device-flow client (clients/device_client.py) with its back channel through the proxy."""
    proc = rig.Proc(
        name, [sys.executable, str(rig.CLIENTS_DIR / "device_client.py")], stack.workdir / "logs" / f"{name}.log",
        env=proxied_env(stack, ISSUER=issuer, CLIENT_ID=client_id), cwd=rig.CLIENTS_DIR,
    )  # fmt: skip
    stack.procs[name] = proc
    return DeviceClient(proc.start())


def device_flow(stack: Stack, context, extra: dict, *, client_id: str, user: str | None) -> dict:
    """Device authorization grant: the client polls; the user approves ("approve"), declines
    ("abort") or does nothing (None: the code expires) in the browser."""
    client = start_device_client(stack, extra["public"].issuer, client_id, f"device-{client_id}-{user or 'idle'}")
    try:
        grant = client.wait_event(lambda e: e["event"] == "authorization", "the device authorization answer")
        client.wait_event(lambda e: e.get("error") == "authorization_pending", "a first authorization_pending poll")
        seen: dict[str, Any] = {"grant": grant}
        if user is not None:
            page = context.new_page()
            page.goto(grant["verification_uri_complete"])  # the confirm page: user code shown
            if user == "abort":
                page.click("button[name=abort]")
            else:
                page.locator("button:has-text('Continue')").first.click()
                op_login(page)
            page.wait_for_load_state("load")
            seen["page"] = {"url": page.url, "text": page.text_content("body") or ""}
        seen["done"] = client.wait_done()
        seen["events"] = client.events()
        return seen
    finally:
        client.proc.stop()


def device_clean(stack: Stack, context, extra: dict) -> dict:
    return device_flow(stack, context, extra, client_id="device-cli", user="approve")


def device_denied(stack: Stack, context, extra: dict) -> dict:
    return device_flow(stack, context, extra, client_id="device-cli", user="abort")


def device_expired(stack: Stack, context, extra: dict) -> dict:
    return device_flow(stack, context, extra, client_id="device-short", user=None)


def provider_signin(context, rp_url: str, fault: str = "", replay: bool = False) -> dict:
    """client.test /login -> the provider's login form and consent page -> client.test /callback.

    Both providers' forms take ``username``/``password``; consent is django-oauth-toolkit's
    "Authorize" input or the Authlib provider's "Allow" button. With replay, the callback is then
    delivered again with the app's pre-callback cookies (the code-reuse recipe of flows.py), so the
    app redeems the same code a second time.
    """
    page = context.new_page()
    page.goto(f"{rp_url}/login" + (f"?fault={fault}" if fault else ""))
    page.fill("input[name=username]", USER)
    page.fill("input[name=password]", PASSWORD)
    page.click("button[type=submit]")
    consent = page.locator("input[name=allow], button[name=confirm][value=yes]")
    consent.wait_for()
    before_callback = flows.app_cookies(context, rp_url)
    with page.expect_response(lambda r: r.url.startswith(f"{rp_url}/callback")) as callback:
        consent.click()
    page.wait_for_load_state("load")
    seen = {
        "callback_url": callback.value.url,
        "status": callback.value.status,
        "title": page.text_content("#title") or "",
        "result": json.loads(page.text_content("#result") or "{}"),
    }
    if replay:
        flows.restore_app_cookies(context, rp_url, before_callback)
        again = page.goto(callback.value.url)
        seen["replay"] = {
            "status": again.status if again else None,
            "result": json.loads(page.text_content("#result") or "{}"),
        }
    return seen


def provider_journey(name: str, fault: str = "", replay: bool = False) -> Callable[[Stack, Any, dict], dict]:
    def journey(stack: Stack, context, extra: dict) -> dict:
        return provider_signin(context, extra[name].rp_url, fault, replay)

    journey.__doc__ = f"a sign-in at {name}" + (f" with the fault {fault!r}" if fault else "")
    if replay:
        journey.__doc__ += ", then its callback delivered again (code reuse)"
    return journey


# ------------------------------------------------------------------ recording


@dataclass(frozen=True)
class Round2:
    """A scenario of issue 11: scenarios.Scenario plus what it needs."""

    scenario: scenarios.Scenario
    needs: str  # the extra it needs: "public", "dot" or "authlib"
    browser_har: bool = False  # also keep the browser's own HAR (Playwright) and check it


def scenario(name: str, journey, needs: str, browser_har: bool = False) -> Round2:
    return Round2(scenarios.Scenario(name, name, journey), needs, browser_har)


def record_selected(stack: Stack, browser, wanted: list[Round2], extra: dict, timings: dict) -> dict[str, object]:
    """Record each wanted scenario in its own capture, back to back; name -> Outcome or the exception.

    Each capture's `authtrace check` starts once the next capture's proxy is up (the harness of
    issue 5). With browser_har, Playwright's HAR of the same journey is checked beside the .mitm.
    """
    outcomes: dict[str, object] = {}
    previous = None
    for r2 in wanted:
        s = r2.scenario
        har_path = stack.workdir / "captures" / s.name / "browser.har" if r2.browser_har else None

        def new_context(browser, stack, _har=har_path):
            return browser_context(browser, _har)

        try:
            outcome = scenarios.record(
                stack, browser, s, extra, new_context, on_ready=previous.start_analysis if previous else None
            )
            if har_path is not None:
                outcome.files.append(har_path)
            outcomes[s.name] = previous = outcome
            timings[s.name] = outcome.seconds
        except Exception as exc:
            cap = stack.captures.get(s.name)
            log = f"\n--- proxy log ({cap.proc.log}) ---\n{cap.proc.tail(40)}" if cap else ""
            failed = RuntimeError(f"scenario {s.name} failed: {exc!r}{log}")
            failed.__cause__ = exc
            outcomes[s.name] = failed
    if previous is not None:
        previous.start_analysis()
    return outcomes


def fixture_name(name: str) -> str:
    """The fixture that hands out the outcome of the scenario called name."""
    return "cap_" + name.replace("-", "_")


def wanted(request, all_scenarios: list[Round2]) -> list[Round2]:
    """The scenarios that the selected tests of this run need, in their given order."""
    names = {n for item in request.session.items for n in getattr(item, "fixturenames", ())}
    return [r for r in all_scenarios if fixture_name(r.scenario.name) in names]


def outcome_fixture(name: str):
    """A module-scoped fixture ``cap_<name>``: the scenario's Outcome from the module's ``outcomes``."""
    import pytest

    @pytest.fixture(scope="module", name=fixture_name(name))
    def outcome(outcomes):
        result = outcomes[name]
        if isinstance(result, BaseException):
            raise result
        return result

    return outcome


# ------------------------------------------------------------------ saved flows


@dataclass
class Exchange:
    """One saved HTTP exchange, reduced to what the journeys' self-checks compare."""

    method: str
    host: str
    path: str
    query: dict[str, str]
    form: dict[str, str]
    status: int | None
    body: dict[str, Any] | None  # a JSON answer
    origin: str | None
    started: float
    ended: float | None


def read_exchanges(path: Path) -> list[Exchange]:
    """Every HTTP flow of a saved capture (mitmproxy's FlowReader), in order."""
    from mitmproxy import http, io

    out = []
    with open(path, "rb") as f:
        for flow in io.FlowReader(f).stream():
            if not isinstance(flow, http.HTTPFlow):
                continue
            out.append(_exchange(flow))
    return out


def _exchange(flow: http.HTTPFlow) -> Exchange:
    req, resp = flow.request, flow.response
    form: dict[str, str] = {}
    if "application/x-www-form-urlencoded" in req.headers.get("content-type", ""):
        form = dict(parse_qsl(req.get_text(strict=False) or "", keep_blank_values=True))
    body = None
    if resp is not None and "json" in resp.headers.get("content-type", ""):
        try:
            body = json.loads(resp.get_text(strict=False) or "null")
        except ValueError:
            body = None
    return Exchange(
        method=req.method, host=req.pretty_host, path=urlsplit(req.path).path,
        query=dict(parse_qsl(urlsplit(req.path).query, keep_blank_values=True)), form=form,
        status=resp.status_code if resp is not None else None, body=body if isinstance(body, dict) else None,
        origin=req.headers.get("origin"), started=req.timestamp_start,
        ended=resp.timestamp_end if resp is not None else None,
    )  # fmt: skip


def token_posts(exchanges: list[Exchange], grant_type: str | None = None) -> list[Exchange]:
    return [
        e for e in exchanges
        if e.method == "POST" and "grant_type" in e.form and (grant_type is None or e.form["grant_type"] == grant_type)
    ]  # fmt: skip


def outcome_of(e: Exchange) -> tuple[int | None, str | None]:
    """(status, error) of a token answer."""
    return e.status, (e.body or {}).get("error")
