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


# ---- an oidc-provider-shaped sign-in, step by step, for interleaving tabs ----------------------------

OP = "op.test"
SPA = "spa.test"


def op_steps(tab: str, t: float, *, challenge: str | None = None, state: str | None = None,
             nonce: str | None = None, code: str | None = None, client: str = "spa",
             redirect: str = f"https://{SPA}/callback") -> list[list[http.HTTPFlow]]:
    """The browser's requests of one sign-in at an oidc-provider-style server, as the provider makes
    them: the authorize request (303 to its interaction page), the login page, its form POST (303
    back to the provider's resume URL), the resume (303 to the app's callback with the code), each
    linked only by Location and Referer, as a real capture is. Returned as steps (lists of flows) so
    two tabs can be interleaved; the last step is the callback navigation."""
    q = {"client_id": client, "response_type": "code", "redirect_uri": redirect, "scope": "openid"}
    q.update({k: v for k, v in (("state", state), ("nonce", nonce), ("code_challenge", challenge),
                                ("code_challenge_method", "S256" if challenge else None)) if v})
    uid = f"uid-{tab}-0123456789abcdef"
    back = f"{redirect}?" + urlencode({k: v for k, v in (("code", code or f"code-{tab}-value-0123456789"),
                                                          ("state", state), ("iss", f"https://{OP}")) if v})
    html = {"content-type": "text/html; charset=utf-8"}
    nav = {"referer": f"https://{SPA}/", "sec-fetch-site": "cross-site"}
    same = {"referer": f"https://{OP}/interaction/{uid}", "sec-fetch-site": "same-origin"}
    return [
        [flow("GET", f"https://{OP}/auth?" + urlencode(q), t=t, headers=nav, status=303,
              resp_headers={"location": f"/interaction/{uid}", "set-cookie": f"_interaction={tab}; path=/"})],
        [flow("GET", f"https://{OP}/interaction/{uid}", t=t + 0.2, headers=nav, resp_headers=html,
              resp_body="<html><form method=post><input name=login></form></html>")],
        [flow("POST", f"https://{OP}/interaction/{uid}", t=t + 1.0,
              headers={**same, "content-type": "application/x-www-form-urlencoded", "cookie": f"_interaction={tab}"},
              body="login=alice&password=pw", status=303, resp_headers={"location": f"https://{OP}/auth/{uid}"}),
         flow("GET", f"https://{OP}/auth/{uid}", t=t + 1.05, headers={**same, "cookie": f"_interaction={tab}"},
              status=303, resp_headers={"location": back})],
        [flow("GET", back, t=t + 1.1, headers={"referer": f"https://{OP}/", "sec-fetch-site": "cross-site"},
              resp_headers=html, resp_body="<html>app</html>")],
    ]


def spa_token(t: float, code: str, verifier: str, *, status: int = 200, body: dict | None = None,
              client: str = "spa", redirect: str = f"https://{SPA}/callback") -> http.HTTPFlow:
    """The SPA's own token POST from the browser (a CORS request from the callback page)."""
    return flow("POST", f"https://{OP}/token", t=t,
                headers={"content-type": "application/x-www-form-urlencoded", "origin": f"https://{SPA}",
                         "referer": f"https://{SPA}/", "sec-fetch-mode": "cors", "sec-fetch-dest": "empty",
                         "sec-fetch-site": "cross-site"},
                body=urlencode({"grant_type": "authorization_code", "client_id": client, "code": code,
                                "redirect_uri": redirect, "code_verifier": verifier}),
                status=status, resp_headers={"content-type": "application/json"},
                resp_body=json.dumps(body if body is not None else
                                     {"access_token": "opaque-access-token-value-1", "token_type": "Bearer",
                                      "expires_in": 3600, "scope": "openid"}))


SANITIZED = ("authorization", "cookie", "set-cookie")


def sanitized(har: dict) -> dict:
    """What Chrome's and Edge's default "Export HAR (sanitized)" writes: no Authorization, Cookie or
    Set-Cookie headers and no cookie lists; everything else (query strings, bodies, token answers) kept."""
    for e in har["log"]["entries"]:
        for part in (e["request"], e["response"]):
            part["headers"] = [h for h in part.get("headers", []) if h["name"].lower() not in SANITIZED]
            part["cookies"] = []
    return har


def preflight(t: float, url: str, origin: str = f"https://{SPA}") -> http.HTTPFlow:
    """The CORS preflight Chrome sends before a cross-origin request that carries Authorization."""
    return flow("OPTIONS", url, t=t, headers={"origin": origin, "access-control-request-method": "GET",
                                               "access-control-request-headers": "authorization",
                                               "sec-fetch-mode": "cors", "sec-fetch-dest": "empty"},
                status=204, resp_headers={"access-control-allow-origin": origin,
                                          "access-control-allow-headers": "authorization"})


def api_call(t: float, url: str, token: str, *, status: int = 200, challenge: str | None = None,
             origin: str = f"https://{SPA}") -> http.HTTPFlow:
    """A browser page's API call with a bearer token (a CORS request)."""
    return flow("GET", url, t=t, headers={"authorization": f"Bearer {token}", "origin": origin,
                                          "sec-fetch-mode": "cors", "sec-fetch-dest": "empty"},
                status=status, resp_headers={"content-type": "application/json",
                                             **({"www-authenticate": challenge} if challenge else {})},
                resp_body='{"value": []}' if status == 200 else '{"error": {"code": "Unauthorized"}}')
