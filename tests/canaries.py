"""Secrets canary: distinct secrets planted in every place a sign-in carries them, for leak tests.

`canaries()` returns `(secrets, flows)`: `secrets` is a list of `(name, value)` where `name` says
where the value was planted (``"form client_secret (token, code grant)"``) and `flows` are the
mitmproxy flows that carry them (an Entra-shaped sign-in plus refresh, device, OBO, token exchange,
SAML, logout and API traffic). Every flow is an auth hop, so nothing passes only by being ignored.
JWT canaries add their signature as a secret of its own: header and claims are kept by design
(DESIGN.md §5), the token and its signature never.

`leaks(blob, secrets)` lists the names of the secrets found in a bytes/str blob, in the raw form and
in the percent-encoded forms a URL or form body would give them. Reuse both for any output that
must stay secret-free (database files, terminal output, HTML and JSON reports).
"""
from __future__ import annotations

import base64
import json
import secrets as _random
import time
from urllib.parse import quote, quote_plus, urlencode

from mitmproxy import http

from builders import API, APP, CLIENT_ID, IDP, TENANT, flow, jwks, make_jwt

BOUNDARY = "----authtraceCanaryBoundary7MA4YWxkTrZu0gW"


def _token(tag: str) -> str:
    """A distinct, token-like secret: base64url alphabet, long enough to be unmistakable."""
    return f"{tag}{_random.token_urlsafe(24)}"


def _jwt(**claims) -> str:
    now = int(time.time())
    base = {"iss": f"https://{IDP}/{TENANT}/v2.0", "aud": CLIENT_ID, "iat": now, "nbf": now, "exp": now + 3600,
            "jti": _random.token_hex(8)}
    return make_jwt(dict(base, **claims))


def _multipart(fields: dict[str, str]) -> bytes:
    out = []
    for k, v in fields.items():
        out.append(f'--{BOUNDARY}\r\nContent-Disposition: form-data; name="{k}"\r\n\r\n{v}\r\n')
    out.append(f"--{BOUNDARY}--\r\n")
    return "".join(out).encode()


def canaries(t0: float | None = None) -> tuple[list[tuple[str, str]], list[http.HTTPFlow]]:
    """≥ 30 distinct secrets and the flows that carry them (fresh random values on every call)."""
    t0 = t0 or time.time() - 120
    S: list[tuple[str, str]] = []

    def plant(name: str, value: str) -> str:
        S.append((name, value))
        if value.startswith("eyJ") and value.count(".") == 2:
            S.append((name + " [signature]", value.rsplit(".", 1)[1]))
        return value

    authz = f"https://{IDP}/{TENANT}/oauth2/v2.0/authorize"
    token_url = f"https://{IDP}/{TENANT}/oauth2/v2.0/token"
    redirect = f"https://{APP}/signin-oidc"
    state = "st-" + _random.token_hex(6)  # state and nonce are not secrets (stored as they are, by design)
    nonce = "n-" + _random.token_hex(6)
    form = {"content-type": "application/x-www-form-urlencoded"}
    js = {"content-type": "application/json; charset=utf-8"}
    f: list[http.HTTPFlow] = []
    t = iter(range(1000))

    def at() -> float:
        return t0 + next(t)

    # discovery: learn endpoints (no secret)
    f.append(flow("GET", f"https://{IDP}/{TENANT}/v2.0/.well-known/openid-configuration", t=at(), browser=False,
                  resp_headers=js, resp_body=json.dumps({
                      "issuer": f"https://{IDP}/{TENANT}/v2.0", "authorization_endpoint": authz,
                      "token_endpoint": token_url, "jwks_uri": f"https://{IDP}/{TENANT}/discovery/v2.0/keys",
                      "device_authorization_endpoint": f"https://{IDP}/{TENANT}/oauth2/v2.0/devicecode",
                      "end_session_endpoint": f"https://{IDP}/{TENANT}/oauth2/v2.0/logout"})))
    # authorize with a request object (JAR); hybrid answer in the fragment of Location; Set-Cookie
    q = urlencode({"client_id": CLIENT_ID, "response_type": "code id_token", "redirect_uri": redirect,
                   "scope": "openid profile offline_access", "state": state, "nonce": nonce,
                   "request": plant("query request object JWT (authorize)", _jwt(scope="openid"))})
    frag = urlencode({"code": plant("Location fragment code", _token("FragCode")),
                      "id_token": plant("Location fragment id_token", _jwt(nonce=nonce, sub="alice")),
                      "state": state})
    estsauth = plant("Set-Cookie ESTSAUTH", _token("SetCk1"))
    slice_ = plant("Set-Cookie second header", _token("SetCk2"))
    f.append(flow("GET", f"{authz}?{q}", t=at(), status=302, resp_headers=http.Headers([
        (b"location", f"{redirect}#{frag}".encode()),
        (b"set-cookie", f"ESTSAUTH={estsauth}; path=/; secure; HttpOnly".encode()),
        (b"Set-Cookie", f"x-ms-gateway-slice={slice_}; path=/".encode())])))
    # the credential POST: password, canary, cookies; the answer redirects with the code in the query
    loc_code = plant("Location query code", _token("LocCode"))
    f.append(flow("POST", f"https://{IDP}/{TENANT}/login", t=at(),
                  headers=dict(form, origin=f"https://{IDP}", cookie=(
                      f"ESTSAUTH={plant('Cookie ESTSAUTH', _token('Ck1'))}; "
                      f"buid={plant('Cookie buid', _token('Ck2'))}")),
                  body=urlencode({"login": "alice@contoso.test",
                                  "passwd": plant("form passwd", "Pa ss&w0rd=%" + _random.token_hex(8)),
                                  "canary": plant("form canary", _token("Canary")), "flowToken": "ft"}),
                  status=302, resp_headers={"location": f"{redirect}?code={loc_code}&state={state}"}))
    # callbacks: query (with a fragment in Referer), form_post (with a query secret in Referer)
    f.append(flow("GET", f"{redirect}?code={loc_code}&state={state}&session_state=ss1", t=at(),
                  headers={"referer": f"https://{IDP}/{TENANT}/reprocess#access_token="
                                      + plant("Referer fragment access_token", _token("RefFrag"))},
                  status=302, resp_headers={"location": "/", "set-cookie": "appsession="
                                            + plant("Set-Cookie app session", _token("SetCk3")) + "; HttpOnly"}))
    fp_code = plant("form_post code", _token("FpCode"))
    f.append(flow("POST", redirect, t=at(), headers=dict(form, origin=f"https://{IDP}", referer=(
        f"https://{IDP}/{TENANT}/kmsi?access_token=" + plant("Referer query access_token", _token("RefQry")))),
        body=urlencode({"code": fp_code, "id_token": plant("form_post id_token", _jwt(nonce=nonce)), "state": state}),
        status=302, resp_headers={"location": "/"}))
    # the app back channel: code redemption with PKCE and client secret; the answer carries tokens
    access_jwt = plant("token response access_token (JWT)", _jwt(aud="https://ai.azure.com", scp="x"))
    f.append(flow("POST", token_url, t=at(), browser=False, headers=form, body=urlencode({
        "grant_type": "authorization_code", "client_id": CLIENT_ID, "code": fp_code, "redirect_uri": redirect,
        "code_verifier": plant("form code_verifier", _token("Verifier") + "-._~"),
        "client_secret": plant("form client_secret", _token("CliSec") + "~.")}),
        resp_headers=js, resp_body=json.dumps({
            "token_type": "Bearer", "expires_in": 3599, "access_token": access_jwt,
            "id_token": plant("token response id_token", _jwt(nonce=nonce, name="Alice")),
            "refresh_token": plant("token response refresh_token", _token("0.AXoA-Rt1"))})))
    f.append(flow("GET", f"https://{IDP}/{TENANT}/discovery/v2.0/keys", t=at(), browser=False,
                  resp_headers=js, resp_body=json.dumps(jwks())))
    # refresh with a client assertion
    f.append(flow("POST", token_url, t=at(), browser=False, headers=form, body=urlencode({
        "grant_type": "refresh_token", "client_id": CLIENT_ID,
        "refresh_token": plant("form refresh_token", _token("Rt2")),
        "client_assertion_type": "urn:ietf:params:oauth:client-assertion-type:jwt-bearer",
        "client_assertion": plant("form client_assertion", _jwt(iss=CLIENT_ID, sub=CLIENT_ID, aud=token_url))}),
        resp_headers=js, resp_body=json.dumps({
            "token_type": "Bearer", "access_token": plant("token response opaque access_token", _token("OpqAt")),
            "refresh_token": plant("token response rotated refresh_token", _token("Rt3"))})))
    # a JSON token request (some SDKs), password grant fields included
    f.append(flow("POST", token_url, t=at(), browser=False, headers=js, body=json.dumps({
        "grant_type": "password", "client_id": CLIENT_ID, "username": "alice",
        "password": plant("JSON password", "json pw " + _random.token_hex(8)),
        "client_secret": plant("JSON client_secret", _token("JsonCs")),
        "refresh_token": plant("JSON refresh_token", _token("JsonRt"))}), status=400, resp_headers=js,
        resp_body=json.dumps({"error": "invalid_grant", "error_description": "AADSTS50126: Error validating "
                              "credentials due to invalid username or password.", "error_codes": [50126]})))
    # client credentials with HTTP Basic (client_id:client_secret), header name upper case
    basic_secret = plant("Basic client secret", _token("BasicSec"))
    basic = base64.b64encode(f"{CLIENT_ID}:{basic_secret}".encode()).decode()
    plant("AUTHORIZATION Basic credentials", basic)
    f.append(flow("POST", token_url, t=at(), browser=False, headers=dict(form, AUTHORIZATION=f"Basic {basic}"),
                  body="grant_type=client_credentials&scope=https%3A%2F%2Fgraph.microsoft.com%2F.default",
                  resp_headers=js, resp_body=json.dumps({"token_type": "Bearer", "access_token": _jwt(aud="g")})))
    # device flow: the device_code in the answer, then in the polling request
    device_code = plant("device_code", _token("DevCode"))
    f.append(flow("POST", f"https://{IDP}/{TENANT}/oauth2/v2.0/devicecode", t=at(), browser=False, headers=form,
                  body=urlencode({"client_id": CLIENT_ID, "scope": "openid"}), resp_headers=js,
                  resp_body=json.dumps({"device_code": device_code, "user_code": "ABCD-EFGH", "interval": 5,
                                        "verification_uri": "https://microsoft.com/devicelogin"})))
    f.append(flow("POST", token_url, t=at(), browser=False, headers=form, body=urlencode({
        "grant_type": "urn:ietf:params:oauth:grant-type:device_code", "client_id": CLIENT_ID,
        "device_code": device_code}), status=400, resp_headers=js,
        resp_body=json.dumps({"error": "authorization_pending", "error_description": "AADSTS70016: pending. "
                              "Request: " + json.dumps({"device_code": device_code, "client_secret": plant(
                                  "client_secret echoed in a JSON error (escaped quotes)", _token("EchoCs"))})})))
    # on-behalf-of (jwt-bearer assertion) and RFC 8693 token exchange
    f.append(flow("POST", token_url, t=at(), browser=False, headers=form, body=urlencode({
        "grant_type": "urn:ietf:params:oauth:grant-type:jwt-bearer", "client_id": CLIENT_ID,
        "assertion": plant("form assertion (OBO)", _jwt(aud=CLIENT_ID, scp="user_impersonation")),
        "client_secret": plant("form client_secret (OBO)", _token("OboCs")),
        "requested_token_use": "on_behalf_of"}), resp_headers=js, resp_body=json.dumps({"access_token": "x"})))
    f.append(flow("POST", token_url, t=at(), browser=False, headers=form, body=urlencode({
        "grant_type": "urn:ietf:params:oauth:grant-type:token-exchange",
        "subject_token": plant("form subject_token", _token("SubjTok")),
        "subject_token_type": "urn:ietf:params:oauth:token-type:access_token",
        "actor_token": plant("form actor_token", _token("ActTok")),
        "actor_token_type": "urn:ietf:params:oauth:token-type:access_token"}),
        resp_headers=js, resp_body=json.dumps({"access_token": _jwt(aud="x"), "issued_token_type": "x"})))
    # API calls: bearer JWT (lower-case header), opaque bearer echoed in the error, DPoP, query keys, cookies
    api = f"https://{API}/api/projects/p1/responses"
    f.append(flow("GET", api + "?api-version=2025-05-01", t=at(), browser=False,
                  headers={"authorization": f"Bearer {access_jwt}"}, resp_headers=js, resp_body='{"ok":1}'))
    opaque = plant("AUTHORIZATION BEARER opaque token", _token("OpqBearer"))
    f.append(flow("GET", api + "?api-version=1", t=at(), browser=False,
                  headers={"AUTHORIZATION": f"BEARER {opaque}"}, status=401,
                  resp_headers=dict(js, **{"www-authenticate": 'Bearer error="invalid_token", '
                                                               'error_description="The token is expired"'}),
                  resp_body=json.dumps({"error": {"code": "InvalidAuthenticationToken",
                                                  "message": f"Access token is invalid: Bearer {opaque}"}})))
    f.append(flow("POST", api, t=at(), browser=False, headers={
        "aUtHoRiZaTiOn": "DPoP " + plant("aUtHoRiZaTiOn DPoP token", _token("DpopAt")),
        "content-type": "application/json"}, body='{"input":"hi"}', resp_headers=js, resp_body="{}"))
    f.append(flow("GET", f"{api}?api-key={plant('query api-key', _token('ApiKey'))}"
                         f"&client_secret={plant('query client_secret', _token('QryCs'))}", t=at(), browser=False,
                  headers={"Authorization": "Bearer " + plant("Authorization Bearer (query-key call)", _token("At3")),
                           "cookie": f"session={plant('Cookie session', _token('Ck3'))}; "
                                     f"csrftoken={plant('Cookie csrftoken', _token('Ck4'))}"},
                  resp_headers=js, resp_body="{}"))
    # a multipart upload to the API carrying secrets in its parts
    f.append(flow("POST", api + "/files", t=at(), browser=False, headers={
        "authorization": "Bearer " + plant("Bearer on multipart call", _token("MpAt")),
        "content-type": f"multipart/form-data; boundary={BOUNDARY}"}, body=_multipart({
            "client_secret": plant("multipart client_secret", _token("MpCs")),
            "refresh_token": plant("multipart refresh_token", _token("MpRt")), "purpose": "assistants"}),
        resp_headers=js, resp_body="{}"))
    f.append(flow("GET", "https://graph.microsoft.com/oidc/userinfo", t=at(), browser=False,
                  headers={"authorization": "Bearer " + plant("userinfo bearer", _token("UiAt"))},
                  resp_headers=js, resp_body='{"sub":"alice"}'))
    # an IdP error page that echoes a refresh token and a password back in its text
    echo_rt, echo_pw = _token("EchoRt"), _random.token_hex(10)
    plant("error page refresh_token echo", echo_rt)
    plant("error page password echo", echo_pw)
    f.append(flow("GET", f"{authz}?client_id={CLIENT_ID}&response_type=code&state={state}", t=at(), status=400,
                  resp_headers={"content-type": "text/html"},
                  resp_body=f"<html><title>Sign in</title><body>AADSTS900144: bad request. refresh_token={echo_rt} "
                            f"password: {echo_pw}</body></html>"))
    # a redirect whose Location names a user and password
    url_pw, code2 = plant("Location userinfo password", _token("UrlPw")), plant("Location query code (2)", _token("Code2"))
    f.append(flow("GET", f"{authz}?client_id={CLIENT_ID}&response_type=code&state={state}", t=at(), status=302,
                  resp_headers={"location": f"https://svc:{url_pw}@{APP}/signin-oidc?code={code2}&state={state}"}))
    # PAR: client secret in the pushed request
    f.append(flow("POST", f"https://{IDP}/{TENANT}/oauth2/v2.0/par", t=at(), browser=False, headers=form,
                  body=urlencode({"client_id": CLIENT_ID, "response_type": "code", "redirect_uri": redirect,
                                  "client_secret": plant("PAR client_secret", _token("ParCs"))}), status=201,
                  resp_headers=js, resp_body=json.dumps({"request_uri": "urn:ietf:params:oauth:request_uri:x",
                                                         "expires_in": 60})))
    # SAML POST binding: a large base64 SAMLResponse
    saml = base64.b64encode(b"<samlp:Response>" + _random.token_bytes(6000) + b"</samlp:Response>").decode()
    f.append(flow("POST", f"https://{APP}/saml/acs", t=at(), headers=dict(form, origin=f"https://{IDP}"),
                  body=urlencode({"SAMLResponse": plant("form SAMLResponse", saml), "RelayState": "/home"}),
                  status=302, resp_headers={"location": "/home"}))
    # logout with an id_token_hint
    f.append(flow("GET", f"https://{IDP}/{TENANT}/oauth2/v2.0/logout?" + urlencode({
        "id_token_hint": plant("query id_token_hint", _jwt(nonce=nonce, sub="alice")),
        "post_logout_redirect_uri": f"https://{APP}/"}), t=at(), status=302,
        resp_headers={"location": f"https://{APP}/"}))
    return S, f


def encodings(value: str) -> set[str]:
    """The forms a value takes in URLs and bodies: raw, percent-encoded, form-encoded."""
    return {value, quote(value, safe=""), quote_plus(value), quote(value, safe="/:@!$'()*,;=")}


def leaks(blob: bytes | str, secrets: list[tuple[str, str]]) -> list[str]:
    """Names of the secrets found in `blob` (any of their encodings)."""
    data = blob.encode("utf-8", "surrogateescape") if isinstance(blob, str) else blob
    return [name for name, value in secrets if any(e.encode() in data for e in encodings(value))]


def distinct(secrets: list[tuple[str, str]]) -> int:
    """How many distinct secret values were planted (signatures not counted on their own)."""
    return len({v for n, v in secrets if not n.endswith("[signature]")})
