"""Test-only relying party for the authtrace end-to-end rig (Flask + Authlib).

Authorization code flow with PKCE (S256), state and nonce, against the IdP's
discovery document. Every back-channel call uses ``requests``, so it honours
``HTTPS_PROXY`` and ``REQUESTS_CA_BUNDLE`` and passes through the proxy.

Environment:
  APP_PORT        port to listen on (127.0.0.1); public URL https://app.test:APP_PORT
  ISSUER          e.g. https://idp.test:8443
  API_URL         e.g. https://api.test:9443/data
  TLS_CERT, TLS_KEY
  CLIENT_ID, CLIENT_SECRET
  E2E_RESOLVE_TEST_HOSTS  TEST-ONLY: an IP address (e.g. 127.0.0.1) that every ``*.test``
                  name resolves to inside this process (testdns.py), for an app run WITHOUT
                  the proxy; it then also needs REQUESTS_CA_BUNDLE set to the servers' own CA.
                  The proxied app leaves name resolution to the proxy.

Routes:
  /            home: "not signed in" or the stored result of the sign-in
  /login       redirect to the IdP (optional ?resource=URI, repeated, to request other resources)
  /callback    code redemption, userinfo, refresh_token grant for the API's JWT, API call
  /call?url=U  send a stored access token (token=api, the default, or token=userinfo) to U

Pages carry the outcome as JSON in ``<pre id="result">``: tests read that,
never the tokens themselves (tokens stay server-side, keyed by a session id).
"""

from __future__ import annotations

import html
import json
import os
import secrets
import sys
import threading

import requests
import testdns  # next to this file
from authlib.integrations.base_client import OAuthError
from authlib.integrations.flask_client import OAuth
from flask import Flask, g, request, session
from werkzeug.serving import make_server

testdns.install_from_env()  # TEST-ONLY, when E2E_RESOLVE_TEST_HOSTS is set (the app WITHOUT the proxy)

PORT = int(os.environ["APP_PORT"])
ISSUER = os.environ["ISSUER"]
API_URL = os.environ["API_URL"]
CLIENT_ID = os.environ.get("CLIENT_ID", "authtrace-rp")
CLIENT_SECRET = os.environ.get("CLIENT_SECRET", "authtrace-rp-secret")
DEFAULT_RESOURCE = "https://api.test"

app = Flask(__name__)
app.secret_key = secrets.token_bytes(32)
app.config.update(SESSION_COOKIE_SECURE=True, SESSION_COOKIE_NAME="rp_session")

# Tokens per browser session, server-side: the Flask cookie only holds "sid".
TOKENS: dict[str, dict] = {}
TOKENS_LOCK = threading.Lock()


def _log_backchannel(resp: requests.Response, *args, **kwargs) -> requests.Response:
    """requests response hook: remember each back-channel call for the page."""
    try:
        calls = g.setdefault("backchannel", [])
    except RuntimeError:  # outside a request (should not happen)
        return resp
    calls.append(
        {
            "method": resp.request.method,
            "url": resp.request.url.split("?")[0],
            "status": resp.status_code,
            "www_authenticate": resp.headers.get("WWW-Authenticate"),
            "body": resp.text[:500],
        }
    )
    return resp


def _compliance_fix(sess) -> None:
    sess.hooks["response"].append(_log_backchannel)


oauth = OAuth(app)
oauth.register(
    "idp",
    client_id=CLIENT_ID,
    client_secret=CLIENT_SECRET,
    server_metadata_url=f"{ISSUER}/.well-known/openid-configuration",
    client_kwargs={
        "scope": "openid profile email api:read",
        "code_challenge_method": "S256",
        "token_endpoint_auth_method": "client_secret_basic",
    },
    compliance_fix=_compliance_fix,
)

http = requests.Session()
http.hooks["response"].append(_log_backchannel)


def _page(title: str, result: dict, status: int = 200):
    body = (
        "<!doctype html><html><head><meta charset='utf-8'>"
        f"<title>{html.escape(title)}</title></head><body>"
        f"<h1 id='title'>{html.escape(title)}</h1>"
        f"<pre id='result'>{html.escape(json.dumps(result, indent=2))}</pre>"
        "<p><a id='login' href='/login'>Sign in</a></p></body></html>"
    )
    return body, status, {"Content-Type": "text/html; charset=utf-8", "Cache-Control": "no-store"}


def _stored() -> dict | None:
    sid = session.get("sid")
    with TOKENS_LOCK:
        return TOKENS.get(sid) if sid else None


@app.get("/")
def home():
    stored = _stored()
    if not stored:
        return _page("Not signed in", {"signed_in": False})
    return _page(f"Signed in as {stored['userinfo'].get('sub')}", {"signed_in": True, "userinfo": stored["userinfo"]})


@app.get("/login")
def login():
    # Every sign-in starts from the discovery document and fetches the JWKS again, as a freshly
    # started app would: each scenario's capture then holds the same hops whatever ran before.
    for cached in ("_loaded_at", "jwks"):
        oauth.idp.server_metadata.pop(cached, None)
    resources = request.args.getlist("resource")
    extra = {"resource": resources} if resources else {}
    session["api_resource"] = resources[0] if resources else DEFAULT_RESOURCE
    return oauth.idp.authorize_redirect(f"https://app.test:{PORT}/callback", **extra)


@app.get("/callback")
def callback():
    result: dict = {"signed_in": False, "step": "token"}
    try:
        # 1. code redemption (PKCE verifier, state and nonce checks): opaque token for userinfo
        token = oauth.idp.authorize_access_token()
        result["id_token_claims"] = {k: token["userinfo"].get(k) for k in ("iss", "aud", "sub", "nonce")}
        # 2. userinfo with that token
        result["step"] = "userinfo"
        userinfo = oauth.idp.userinfo(token=token)
        result["userinfo"] = dict(userinfo)
        # 3. refresh_token grant for a JWT access token with the API's audience (RFC 8707 / RFC 9068)
        result["step"] = "api_token"
        meta = oauth.idp.load_server_metadata()
        resp = http.post(
            meta["token_endpoint"],
            data={
                "grant_type": "refresh_token",
                "refresh_token": token["refresh_token"],
                "resource": session.get("api_resource", DEFAULT_RESOURCE),
            },
            auth=(CLIENT_ID, CLIENT_SECRET),
            timeout=10,
        )
        if resp.status_code != 200:
            raise OAuthError(error=resp.json().get("error", f"http_{resp.status_code}"), description=resp.text[:300])
        api_token = resp.json()["access_token"]
        # 4. the protected API
        result["step"] = "api"
        api = http.get(API_URL, headers={"Authorization": f"Bearer {api_token}"}, timeout=10)
        result["api"] = {"status": api.status_code, "www_authenticate": api.headers.get("WWW-Authenticate"), "body": api.text[:500]}
        if api.status_code != 200:
            raise OAuthError(error="api_error", description=f"API answered {api.status_code}")
    except OAuthError as exc:
        result.update(error=exc.error, error_description=exc.description)
        result["backchannel"] = g.get("backchannel", [])
        return _page(f"Sign-in failed: {exc.error}", result, 400)
    except Exception as exc:
        result.update(error=type(exc).__name__, error_description=str(exc)[:500])
        result["backchannel"] = g.get("backchannel", [])
        return _page(f"Sign-in failed: {type(exc).__name__}", result, 400)

    sid = secrets.token_urlsafe(16)
    with TOKENS_LOCK:
        TOKENS[sid] = {
            "userinfo": dict(userinfo),
            "userinfo_token": token["access_token"],
            "refresh_token": token.get("refresh_token"),
            "api_token": api_token,
        }
    session["sid"] = sid
    result.update(signed_in=True, step="done", backchannel=g.get("backchannel", []))
    return _page(f"Signed in as {userinfo.get('sub')}", result)


@app.get("/call")
def call():
    """Send a stored access token to an arbitrary URL and report what came back."""
    stored = _stored()
    if not stored:
        return _page("Not signed in", {"error": "not_signed_in"}, 401)
    url = request.args["url"]
    which = request.args.get("token", "api")
    resp = http.get(url, headers={"Authorization": f"Bearer {stored[which + '_token']}"}, timeout=10)
    result = {
        "url": url,
        "token": which,
        "status": resp.status_code,
        "www_authenticate": resp.headers.get("WWW-Authenticate"),
        "body": resp.text[:500],
    }
    return _page(f"Call answered {resp.status_code}", result)


def main() -> None:
    server = make_server(
        "127.0.0.1", PORT, app, threaded=True, ssl_context=(os.environ["TLS_CERT"], os.environ["TLS_KEY"])
    )
    print(f"RP READY https://app.test:{PORT}", flush=True)
    server.serve_forever()


if __name__ == "__main__":
    sys.exit(main())
