"""Builders for realistic sign-in traffic, made by the tests (no captured secrets in the repo).

`signin_flows()` gives the mitmproxy flows of one Entra-v2-shaped sign-in: authorize (query) ->
login page -> credential POST -> form_post page -> callback POST -> token (app back channel) ->
JWKS -> API call with the bearer token. `to_har()` turns flows into a HAR with mitmproxy's own
exporter, and `chrome_har()` rewrites that the way Chrome exports (no fragments, postData.params,
percent-encoded queryString values).
"""
from __future__ import annotations

import base64
import json
import time
import uuid
from urllib.parse import quote, urlencode, urlsplit

import jwt
from cryptography.hazmat.primitives.asymmetric import rsa
from mitmproxy import http
from mitmproxy.test import tflow

from authtrace.addons.secrets import s256

IDP = "login.microsoftonline.com"
TENANT = "72f988bf-86f1-41af-91ab-2d7cd011db47"
APP = "app.contoso.test"
API = "contoso-ai.services.ai.azure.com"
CLIENT_ID = "11111111-2222-3333-4444-555555555555"
UA = "Mozilla/5.0 (X11; Linux x86_64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/156.0 Safari/537.36"
KEY = rsa.generate_private_key(public_exponent=65537, key_size=2048)
KID = "test-kid-1"


def jwks() -> dict:
    pub = json.loads(jwt.algorithms.RSAAlgorithm.to_jwk(KEY.public_key()))
    return {"keys": [dict(pub, kid=KID, use="sig", alg="RS256")]}


def make_jwt(claims: dict, kid: str = KID) -> str:
    return jwt.encode(claims, KEY, algorithm="RS256", headers={"kid": kid, "typ": "JWT"})


def flow(method: str, url: str, *, headers: dict | None = None, body: bytes | str = b"", status: int = 200,
         resp_headers: dict | None = None, resp_body: bytes | str = b"", t: float = 0.0,
         browser: bool = True) -> http.HTTPFlow:
    p = urlsplit(url)
    h = {"user-agent": UA, "sec-fetch-site": "cross-site", "sec-fetch-mode": "navigate",
         "sec-fetch-dest": "document"} if browser else {"user-agent": "python-requests/2.32"}
    h.update(headers or {})
    req = http.Request.make(method, url, body if isinstance(body, bytes) else body.encode(), h)
    f = tflow.tflow(req=req)
    req.timestamp_start, req.timestamp_end = t, t + 0.01
    if status:
        rb = resp_body if isinstance(resp_body, bytes) else resp_body.encode()
        f.response = http.Response.make(status, rb, resp_headers or {})
        f.response.timestamp_start, f.response.timestamp_end = t + 0.05, t + 0.08
    else:
        f.response = None
    assert p.hostname
    return f


def signin_flows(t0: float | None = None, *, code: str = "0.AXoAv4j5cvGGr0GRqy180BHbR-secret-code-value",
                 state: str | None = None, nonce: str = "n-0S6_WzA2Mj", verifier: str | None = None,
                 api_aud: str = "https://ai.azure.com", secrets: dict | None = None) -> list[http.HTTPFlow]:
    """One complete sign-in. `secrets` returns the raw secrets used, for leak tests."""
    t0 = t0 or time.time() - 60
    verifier = verifier or "dBjftJeZ4CVP-mB92K27uhbUJU1p1r_wW1gFWFOEjXk-verifier-secret"
    state = state or base64.urlsafe_b64encode(json.dumps(
        {"id": str(uuid.UUID(int=7)), "meta": {"interactionType": "redirect"}}).encode()).decode().rstrip("=")
    redirect = f"https://{APP}/signin-oidc"
    now = int(t0)
    id_token = make_jwt({"iss": f"https://{IDP}/{TENANT}/v2.0", "aud": CLIENT_ID, "nonce": nonce,
                         "iat": now, "nbf": now, "exp": now + 3600, "sub": "alice-sub",
                         "preferred_username": "alice@contoso.test", "name": "Alice", "tid": TENANT})
    access_token = make_jwt({"iss": f"https://sts.windows.net/{TENANT}/", "aud": api_aud, "iat": now,
                             "nbf": now, "exp": now + 3600, "scp": "user_impersonation",
                             "appid": CLIENT_ID, "tid": TENANT, "upn": "alice@contoso.test"})
    refresh_token = "0.AXoA-refresh-token-opaque-secret-value-xyz"
    client_secret = "cs~Secret.Value_123"
    password = "hunter2-correct-horse"
    if secrets is not None:
        secrets.update(code=code, verifier=verifier, id_token=id_token, access_token=access_token,
                       refresh_token=refresh_token, client_secret=client_secret, password=password,
                       cookie="ESTSAUTH-cookie-secret-value")
    authz = (f"https://{IDP}/{TENANT}/oauth2/v2.0/authorize?" + urlencode({
        "client_id": CLIENT_ID, "response_type": "code", "redirect_uri": redirect, "response_mode": "form_post",
        "scope": "openid profile offline_access https://ai.azure.com/.default", "state": state, "nonce": nonce,
        "code_challenge": s256(verifier), "code_challenge_method": "S256"}))
    form_post_page = (f'<html><body onload="document.forms[0].submit()"><form method="POST" action="{redirect}">'
                      f'<input type="hidden" name="code" value="{code}"/>'
                      f'<input type="hidden" name="state" value="{state}"/></form></body></html>')
    flows = [
        flow("GET", authz, t=t0, status=200, resp_headers={"content-type": "text/html; charset=utf-8",
                                                           "set-cookie": "buid=abc; path=/"},
             resp_body="<html><title>Sign in to your account</title></html>"),
        flow("POST", f"https://{IDP}/common/GetCredentialType?mkt=en-US", t=t0 + 1,
             headers={"sec-fetch-mode": "cors", "sec-fetch-dest": "empty", "content-type": "application/json"},
             body=json.dumps({"username": "alice@contoso.test"}), resp_headers={"content-type": "application/json"},
             resp_body='{"IfExistsResult":0}'),
        flow("POST", f"https://{IDP}/{TENANT}/login", t=t0 + 3,
             headers={"content-type": "application/x-www-form-urlencoded", "cookie": "ESTSAUTH=ESTSAUTH-cookie-secret-value",
                      "origin": f"https://{IDP}", "sec-fetch-site": "same-origin"},
             body=urlencode({"login": "alice@contoso.test", "passwd": password, "flowToken": "flow-token-long"}),
             resp_headers={"content-type": "text/html"}, resp_body=form_post_page),
        flow("POST", redirect, t=t0 + 4, headers={"content-type": "application/x-www-form-urlencoded",
                                                  "origin": f"https://{IDP}", "referer": f"https://{IDP}/"},
             body=urlencode({"code": code, "state": state, "session_state": "5b1c7e2a-1111-2222"}),
             status=302, resp_headers={"location": "/", "set-cookie": "appsession=xyz; HttpOnly"}),
        flow("POST", f"https://{IDP}/{TENANT}/oauth2/v2.0/token", t=t0 + 4.2, browser=False,
             headers={"content-type": "application/x-www-form-urlencoded"},
             body=urlencode({"grant_type": "authorization_code", "client_id": CLIENT_ID, "code": code,
                             "redirect_uri": redirect, "code_verifier": verifier, "client_secret": client_secret}),
             resp_headers={"content-type": "application/json; charset=utf-8"},
             resp_body=json.dumps({"token_type": "Bearer", "scope": "https://ai.azure.com/user_impersonation",
                                   "expires_in": 3599, "access_token": access_token, "id_token": id_token,
                                   "refresh_token": refresh_token})),
        flow("GET", f"https://{IDP}/{TENANT}/discovery/v2.0/keys", t=t0 + 4.4, browser=False,
             resp_headers={"content-type": "application/json"}, resp_body=json.dumps(jwks())),
        flow("POST", f"https://{API}/api/projects/proj1/protocols/openai/responses?api-version=2025-05-01",
             t=t0 + 5, browser=False, headers={"authorization": f"Bearer {access_token}",
                                               "content-type": "application/json"},
             body='{"input":"hi"}', resp_headers={"content-type": "application/json"}, resp_body='{"id":"r1"}'),
    ]
    return flows


def to_har(flows: list[http.HTTPFlow]) -> dict:
    from mitmproxy.addons.savehar import SaveHar

    return SaveHar().make_har(flows)


def chrome_har(flows: list[http.HTTPFlow]) -> dict:
    """The HAR Chrome's DevTools would export: fragments stripped from URLs, queryString values
    percent-encoded, form bodies also listed as postData.params."""
    har = to_har(flows)
    har["log"]["creator"] = {"name": "WebInspector", "version": "537.36"}
    for e in har["log"]["entries"]:
        r = e["request"]
        r["url"] = r["url"].split("#", 1)[0]
        r["queryString"] = [{"name": q["name"], "value": quote(q["value"], safe="")} for q in r.get("queryString", [])]
        pd = r.get("postData")
        if pd and "x-www-form-urlencoded" in pd.get("mimeType", ""):
            from urllib.parse import parse_qsl

            pd["params"] = [{"name": k, "value": quote(v, safe="")} for k, v in parse_qsl(pd.get("text", ""))]
        e.setdefault("_initiator", {"type": "other"})
    return har
