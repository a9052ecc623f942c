"""Pairs of Entra-shaped sign-ins for the `authtrace diff` tests: a working one (GOOD) and one with a
single change (BAD), built from `builders.signin_flows` and changed the way a real client would
(another scope or resource, the v1 endpoint, another redirect_uri, a webview, an extra MFA page…).
Each sign-in gets its own code, state, nonce, verifier and time, like two real captures."""
from __future__ import annotations

import json
import time
from pathlib import Path
from urllib.parse import urlencode

import orjson
from mitmproxy import http
from mitmproxy.io import FlowWriter

from authtrace.addons.importers import import_file
from authtrace.reports.diagnose import Analysis, analyse
from authtrace.reports.diff import compare
from authtrace.reports.diff_model import Comparison
from authtrace.store import db

from builders import API, CLIENT_ID, IDP, TENANT, flow, make_jwt, signin_flows, to_har

AI = "https://ai.azure.com"
ARM = "https://management.azure.com/"
V2_SCOPE = "openid profile offline_access https://ai.azure.com/.default"
WEBVIEW_UA = ("Mozilla/5.0 (Linux; Android 14; Pixel 8; wv) AppleWebKit/537.36 (KHTML, like Gecko) Version/4.0 "
              "Chrome/156.0.0.0 Mobile Safari/537.36")


def signin(n: int, *, t0: float | None = None, scope: str | None = V2_SCOPE, resource: str | None = None,
           v1: bool = False, aud: str = AI, ver: str = "2.0", api_status: int = 200, granted: str | None = None,
           token_redirect_uri: str | None = None, user_agent: str | None = None, mfa: bool = False,
           more_api_calls: int = 0, renewal: bool = False) -> list[http.HTTPFlow]:
    """Sign-in number `n` (its secrets and times are its own) with the changes asked for."""
    t0 = t0 if t0 is not None else time.time() - 3000 + 600 * n
    flows = signin_flows(t0, code=f"0.AXoA-code-{n}-secret-value-xyz", nonce=f"nonce-{n}-abc",
                         state=f"state-{n}-0123456789", verifier=f"verifier-{n}-" + "v" * 43, api_aud=aud)
    authz, token, api = flows[0], flows[4], flows[6]
    q = authz.request.query
    if scope is None:
        del q["scope"]
    else:
        q["scope"] = scope
    if resource:
        q["resource"] = resource
    form = token.request.urlencoded_form
    if resource:
        form["resource"] = resource
    if token_redirect_uri:
        form["redirect_uri"] = token_redirect_uri
    if v1:
        for f in (authz, token):
            f.request.path = f.request.path.replace("/oauth2/v2.0/", "/oauth2/")
    now = int(t0)
    claims = {"iss": f"https://sts.windows.net/{TENANT}/", "aud": aud, "iat": now, "nbf": now, "exp": now + 4000,
              "scp": "user_impersonation", "tid": TENANT, "ver": ver, "upn": "alice@contoso.test",
              ("azp" if ver == "2.0" else "appid"): CLIENT_ID}
    access = make_jwt(claims)
    answer = json.loads(token.response.get_text())
    answer["access_token"] = access
    answer["scope"] = granted or ("user_impersonation" if v1 else f"{aud.rstrip('/')}/user_impersonation")
    token.response.set_text(json.dumps(answer))
    api.request.headers["authorization"] = f"Bearer {access}"
    if api_status != 200:
        api.response.status_code = api_status
        api.response.headers["www-authenticate"] = 'Bearer error="invalid_token", error_description="audience"'
        api.response.set_text('{"error":{"code":"PermissionDenied","message":"Principal does not have access"}}')
    if user_agent:
        for f in flows:
            if "sec-fetch-mode" in f.request.headers:
                f.request.headers["user-agent"] = user_agent
    if mfa:  # an extra MFA page (a navigation at the provider) between the credentials and the form_post
        flows.insert(3, flow("POST", f"https://{IDP}/common/SAS/ProcessAuth", t=t0 + 3.5,
                             headers={"content-type": "application/x-www-form-urlencoded",
                                      "origin": f"https://{IDP}", "sec-fetch-site": "same-origin"},
                             body="type=22&request=rq-1&mfaAuthMethod=PhoneAppNotification",
                             resp_headers={"content-type": "text/html"}, resp_body="<html>approved</html>"))
    for i in range(more_api_calls):
        extra = flow("POST", api.request.url, t=t0 + 6 + i, browser=False,
                     headers={"authorization": f"Bearer {access}", "content-type": "application/json"},
                     body='{"input":"again"}', resp_headers={"content-type": "application/json"}, resp_body='{"id":"r2"}')
        flows.append(extra)
    if renewal:  # a silent renewal with the refresh token, later
        flows.append(flow("POST", f"https://{IDP}/{TENANT}/oauth2/v2.0/token", t=t0 + 30, browser=False,
                          headers={"content-type": "application/x-www-form-urlencoded"},
                          body=urlencode({"grant_type": "refresh_token", "client_id": CLIENT_ID,
                                          "refresh_token": "0.AXoA-refresh-token-opaque-secret-value-xyz",
                                          "scope": scope or ""}),
                          resp_headers={"content-type": "application/json"},
                          resp_body=json.dumps({"token_type": "Bearer", "scope": answer["scope"], "expires_in": 3599,
                                                "access_token": make_jwt(dict(claims, iat=now + 30)),
                                                "refresh_token": "0.AXoA-refresh-2-opaque-secret-value"})))
    return flows


def write(path: Path, flows: list[http.HTTPFlow]) -> Path:
    """A capture file: HAR (mitmproxy's export) for `.har`, mitmproxy's flow file otherwise."""
    if path.suffix == ".har":
        path.write_bytes(orjson.dumps(to_har(flows)))
    else:
        with open(path, "wb") as fh:
            w = FlowWriter(fh)
            for f in flows:
                w.add(f)
    return path


def analysed(engine, path: Path) -> Analysis:
    res = import_file(engine, str(path))
    session = db.load_session(engine, res.session_id)
    assert session is not None
    return analyse(engine, session)


def diff_of(engine, tmp_path: Path, good: list[http.HTTPFlow], bad: list[http.HTTPFlow],
            suffixes: tuple[str, str] = (".har", ".har")) -> Comparison:
    g = write(tmp_path / f"good{suffixes[0]}", good)
    b = write(tmp_path / f"bad{suffixes[1]}", bad)
    return compare(analysed(engine, g), analysed(engine, b), g.name, b.name)



def device_signin(n: int, polls: int, t0: float | None = None) -> list[http.HTTPFlow]:
    """A device-flow sign-in (RFC 8628) whose client polls `polls` times before the user approves."""
    t0 = t0 if t0 is not None else time.time() - 3000 + 600 * n
    base = f"https://{IDP}/{TENANT}/oauth2/v2.0"
    device_code = f"DAQABAAEAAAD-device-code-{n}-secret"
    out = [flow("POST", f"{base}/devicecode", t=t0, browser=False,
                headers={"content-type": "application/x-www-form-urlencoded"},
                body=urlencode({"client_id": CLIENT_ID, "scope": V2_SCOPE}),
                resp_headers={"content-type": "application/json"},
                resp_body=json.dumps({"device_code": device_code, "user_code": f"F{n}ABCDEF",
                                      "verification_uri": "https://microsoft.com/devicelogin", "expires_in": 900,
                                      "interval": 5}))]
    poll = {"grant_type": "urn:ietf:params:oauth:grant-type:device_code", "client_id": CLIENT_ID,
            "device_code": device_code}
    for i in range(polls):
        out.append(flow("POST", f"{base}/token", t=t0 + 5 * (i + 1), browser=False,
                        headers={"content-type": "application/x-www-form-urlencoded"}, body=urlencode(poll),
                        status=400, resp_headers={"content-type": "application/json"},
                        resp_body=json.dumps({"error": "authorization_pending", "error_codes": [70016],
                                              "error_description": "AADSTS70016: pending"})))
    now = int(t0)
    access = make_jwt({"iss": f"https://sts.windows.net/{TENANT}/", "aud": AI, "iat": now, "nbf": now,
                       "exp": now + 4000, "scp": "user_impersonation", "tid": TENANT, "ver": "2.0", "azp": CLIENT_ID})
    out.append(flow("POST", f"{base}/token", t=t0 + 5 * (polls + 1), browser=False,
                    headers={"content-type": "application/x-www-form-urlencoded"}, body=urlencode(poll),
                    resp_headers={"content-type": "application/json"},
                    resp_body=json.dumps({"token_type": "Bearer", "scope": "https://ai.azure.com/user_impersonation",
                                          "expires_in": 3599, "access_token": access})))
    return out


__all__ = ["AI", "API", "ARM", "V2_SCOPE", "WEBVIEW_UA", "analysed", "device_signin", "diff_of", "signin", "write"]
