"""The five scenarios of issue 5 and the harness that records and analyses each one.

A scenario is a browser journey (flows.py) recorded in a capture of its own
(``Stack.capture``: a fresh `authtrace record` on the same port, its own database
and ``--save-flows`` file, stopped with SIGTERM). Then authtrace's two verdicts
on it run in the background:

  ``authtrace report --json --db <capture db>``            (the live store)
  ``authtrace check <flows.mitm> [<flows.har>] --json --db <offline db>``  (the saved files)

while the next scenario is recorded (they start once its proxy is up);
``Outcome`` waits for them only when a test reads them. Nothing here knows pytest except the session
fixture in conftest.py that runs the selected scenarios in order.
"""

from __future__ import annotations

import json
import os
import shutil
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from functools import cached_property
from pathlib import Path
from typing import TYPE_CHECKING, Any
from urllib.parse import parse_qs, urlsplit

from . import flows, rig
from schema import valid

if TYPE_CHECKING:
    from .conftest import Capture, Stack

# Env var: a directory that receives a copy of every capture's saved files (make_fixtures.py).
EXPORT_ENV = "AUTHTRACE_E2E_EXPORT"


@dataclass(frozen=True)
class Scenario:
    key: str  # "a".."e": the fixture is scenario_<key>
    name: str  # the capture's name (directory under <basetemp>/e2e0/captures/)
    journey: Callable[[Stack, Any, dict], dict]  # (stack, browser context, extra) -> observations
    har: bool = False  # also write mitmproxy's own HAR export of the capture (hardump)
    direct_rp: bool = False  # needs the relying party whose back channel bypasses the proxy


# ------------------------------------------------------------------ journeys


def clean_signin(stack: Stack, context, extra: dict) -> dict:
    """a: one sign-in, then the app's home page."""
    signin = flows.sign_in(context, stack.app_url)
    page = context.new_page()
    page.goto(stack.app_url + "/")
    return {"signin": signin, "home": flows.app_result(page)}


def code_reuse(app_url: str, userinfo_url: str, api_url: str, context) -> dict:
    """The code-reuse recipe: sign in, use the token, replay the callback with the pre-callback
    cookies (a second redemption of the same code), then use the first access token again."""
    first = flows.sign_in(context, app_url)
    before = flows.app_call(first.page, app_url, userinfo_url, token="userinfo")
    replay = flows.replay_callback(context, first)
    flows.restore_app_cookies(context, app_url, replay.cookies_after_first)
    after = flows.app_call(first.page, app_url, userinfo_url, token="userinfo")
    still = flows.app_call(first.page, app_url, api_url)
    return {"first": first, "before": before, "replay": replay, "after": after, "api_after": still}


def callback_twice(stack: Stack, context, extra: dict) -> dict:
    """b: the code-reuse recipe through the app whose back channel goes through the proxy."""
    return code_reuse(stack.app_url, stack.userinfo_url, stack.api_url, context)


def wrong_audience(stack: Stack, context, extra: dict) -> dict:
    """c: sign in, call the API with its JWT (aud https://api.test), then send it to other.test."""
    signin = flows.sign_in(context, stack.app_url)
    ok = flows.app_call(signin.page, stack.app_url, stack.api_url)
    wrong = flows.app_call(signin.page, stack.app_url, stack.other_api_url)
    return {"signin": signin, "ok": ok, "wrong": wrong}


def altered_state(url: str) -> str:
    """The callback URL with its state reversed (one character more if it is a palindrome)."""
    state = parse_qs(urlsplit(url).query)["state"][0]
    return flows.with_query(url, state=state[::-1] if state[::-1] != state else state + "x")


def state_altered(stack: Stack, context, extra: dict) -> dict:
    """d: the browser itself changes state in the callback URL before the request leaves it."""
    return {"signin": flows.sign_in(context, stack.app_url, rewrite_callback=altered_state)}


def backchannel_hidden(stack: Stack, context, extra: dict) -> dict:
    """e: the code-reuse recipe through the app whose back channel does NOT go through the proxy."""
    return code_reuse(extra["direct_rp"], stack.userinfo_url, stack.api_url, context)


SCENARIOS = {
    s.key: s
    for s in (
        Scenario("a", "a-clean", clean_signin),
        Scenario("b", "b-code-reuse", callback_twice, har=True),
        Scenario("c", "c-wrong-audience", wrong_audience),
        Scenario("d", "d-state-altered", state_altered),
        Scenario("e", "e-backchannel-hidden", backchannel_hidden, direct_rp=True),
    )
}


# ------------------------------------------------------------------ outcome


@dataclass
class Outcome:
    """One scenario's journey and, read lazily, what authtrace made of its capture."""

    scenario: Scenario
    capture: Capture
    journey: dict[str, Any]  # what the browser and the app saw (flows.* results)
    records_hops: bool
    files: list[Path]  # the saved capture files handed to `authtrace check`
    seconds: dict[str, float] = field(default_factory=dict)
    check_run: rig.CliRun | None = None
    report_run: rig.CliRun | None = None

    def start_analysis(self) -> None:
        """Start `authtrace check` on the saved files and `authtrace report` on the store (once)."""
        if self.check_run is not None:
            return
        self.check_run = rig.authtrace_cli("check", *self.files, "--json", "--db", self.offline_db)
        if self.records_hops:
            self.report_run = rig.authtrace_cli("report", "--json", "--db", self.capture.db)

    @property
    def offline_db(self) -> Path:
        return self.capture.directory / "offline.db"

    @cached_property
    def rows(self) -> list[dict]:
        """Hops stored live, in storage order ([] when the proxy is bare mitmdump)."""
        return self.capture.rows() if self.records_hops else []

    @cached_property
    def report(self) -> dict | None:
        """`authtrace report --json --db <capture db>` (None with bare mitmdump)."""
        if not self.records_hops:
            return None
        self.start_analysis()
        rc, out, err = self.report_run.result()
        assert rc == 0, f"{' '.join(self.report_run.args)} exited {rc}:\n{err}"
        return valid(json.loads(out))

    @cached_property
    def _check(self) -> tuple[int, dict[str, dict]]:
        self.start_analysis()
        rc, out, err = self.check_run.result()
        assert rc in (0, 1), f"{' '.join(self.check_run.args)} exited {rc}:\n{err}"
        objects = [valid(json.loads(line)) for line in out.splitlines() if line.strip()]
        assert len(objects) == len(self.files), out
        return rc, {f.suffix.lstrip("."): o for f, o in zip(self.files, objects, strict=True)}

    @property
    def check_rc(self) -> int:
        """Exit code of `authtrace check` over the saved files."""
        return self._check[0]

    @property
    def check(self) -> dict[str, dict]:
        """File suffix ("mitm", "har") -> its `authtrace check --json` object."""
        return self._check[1]

    @cached_property
    def offline_rows(self) -> dict[str, list[dict]]:
        """File suffix -> the hops `authtrace check` imported from that file."""
        _ = self._check  # the import is done once check has finished
        sources = {s["id"]: s["source"] for s in rig.capture_sessions(self.offline_db)}
        rows = rig.hop_rows(self.offline_db)
        out = {}
        for f in self.files:
            (sid,) = [i for i, src in sources.items() if Path(src).name == f.name]
            out[f.suffix.lstrip(".")] = [r for r in rows if r["session_id"] == sid]
        return out

    def evidence_rows(self, evidence: list[dict], where: str = "live") -> list[dict]:
        """The hop rows behind a finding's evidence: live store, or the offline import of "mitm"/"har"."""
        rows = self.rows if where == "live" else self.offline_rows[where]
        by_number = {r["number"]: r for r in rows}
        return [by_number[e["hop"]] for e in evidence]


def record(
    stack: Stack, browser, scenario: Scenario, extra: dict, new_context, on_ready: Callable[[], None] | None = None
) -> Outcome:
    """Record scenario in a capture of its own. Its analysis starts later (``Outcome.start_analysis``).

    new_context(browser, stack) is a context manager giving a fresh browser context; on_ready() is
    called once the capture's proxy is ready (the caller starts the previous scenario's analysis
    there, so it overlaps this journey rather than this proxy's start-up).
    """
    t0 = time.monotonic()
    with stack.capture(scenario.name, har=scenario.har) as cap:
        if on_ready is not None:
            on_ready()
        with new_context(browser, stack) as context:
            t_ready = time.monotonic()
            seen = scenario.journey(stack, context, extra)
            t_journey = time.monotonic()
    t_stopped = time.monotonic()
    files = [cap.flows] + ([cap.har] if cap.har else [])
    export(cap, files)
    seconds = {"start": t_ready - t0, "journey": t_journey - t_ready, "stop": t_stopped - t_journey}
    return Outcome(scenario, cap, seen, stack.records_hops, files, seconds)


def export(cap: Capture, files: list[Path]) -> None:
    """Copy the saved files to $AUTHTRACE_E2E_EXPORT/<capture name>.<suffix> when that is set."""
    target = os.environ.get(EXPORT_ENV)
    if not target:
        return
    Path(target).mkdir(parents=True, exist_ok=True)
    for f in files:
        shutil.copyfile(f, Path(target) / f"{cap.name}{f.suffix}")
