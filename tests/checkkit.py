"""What the check tests share: a capture written as a real file, imported, and checked."""
from __future__ import annotations

import json
import time
from urllib.parse import urlencode

from mitmproxy import http
from mitmproxy.io import FlowWriter

from authtrace.addons.importers import import_file
from authtrace.reports.checks import run_checks
from authtrace.store import db
from authtrace.store.records import Finding, Hop

from builders import APP, CLIENT_ID, IDP, TENANT, flow, to_har


def findings(tmp_path, flows: list[http.HTTPFlow] | None, expect: dict[str, str] | None = None,
             har: dict | bool = False) -> tuple[list[Finding], list[Hop]]:
    """Import the flows (as .mitm, or as HAR) into a fresh store and run every check; a check that
    raises fails the test."""
    engine = db.open_db(str(tmp_path / f"c{time.monotonic_ns()}.db"))
    p = tmp_path / f"cap{time.monotonic_ns()}.{'har' if har else 'mitm'}"
    if har:
        p.write_text(json.dumps(har if isinstance(har, dict) else to_har(flows)))
    else:
        with open(p, "wb") as fh:
            w = FlowWriter(fh)
            for f in flows or []:
                w.add(f)
    sid = import_file(engine, str(p)).session_id
    hops = db.load_hops(engine, sid)
    found, failures = run_checks(hops, expect)
    assert not failures, failures
    return found, hops


def kinds(fs: list[Finding]) -> list[str]:
    return sorted({f.kind for f in fs})


def one(fs: list[Finding], kind: str) -> Finding:
    return next(f for f in fs if f.kind == kind)


def token_error(t: float, code: str, body: dict, status: int = 400) -> http.HTTPFlow:
    return flow("POST", f"https://{IDP}/{TENANT}/oauth2/v2.0/token", t=t, browser=False,
                headers={"content-type": "application/x-www-form-urlencoded"},
                body=urlencode({"grant_type": "authorization_code", "client_id": CLIENT_ID, "code": code,
                                "redirect_uri": f"https://{APP}/signin-oidc"}),
                status=status, resp_headers={"content-type": "application/json"}, resp_body=json.dumps(body))


def foundry(t: float, code: str, status: int, text: str) -> http.HTTPFlow:
    return flow("GET", "https://eastus.api.azureml.ms/agent-oauth/v1.0/redirect?" +
                urlencode({"code": code, "state": "foundry-state-1", "session_state": "x"}), t=t,
                headers={"referer": f"https://{IDP}/"}, status=status,
                resp_headers={"content-type": "text/plain"}, resp_body=text)
