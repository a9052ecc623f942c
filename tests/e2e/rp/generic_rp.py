"""Test-only relying party for any OpenID provider (Flask + Authlib), used with the second and third
provider implementations of issue 11 (django-oauth-toolkit, Authlib's authorization server).

Code flow with PKCE (S256), state and nonce from the provider's discovery document, then userinfo;
unlike app.py nothing provider-specific (no resource indicators, no API). Every back-channel call
uses ``requests`` (HTTPS_PROXY, REQUESTS_CA_BUNDLE), so it passes through the proxy.

A sign-in can carry one deliberate fault, chosen at ``/login?fault=NAME`` and applied at the
callback to what the app itself stored for this sign-in (Authlib keeps it in the session), so the
provider sees a real, wrong token request:
  redirect_uri   the token request's redirect_uri gets a trailing slash (an app that builds its
                 redirect URI in two places, e.g. behind a reverse proxy)
  verifier       the token request carries another PKCE code_verifier (an app that mixed up the
                 verifiers of two sign-ins)

Environment: APP_PORT (https://client.test:APP_PORT), ISSUER, CLIENT_ID, CLIENT_SECRET,
SCOPE (default "openid profile email"), TLS_CERT, TLS_KEY.
Pages carry the outcome as JSON in ``<pre id="result">``. Prints "RP READY <url>".
"""

from __future__ import annotations

import html
import json
import os
import secrets
import sys

import requests
from authlib.common.security import generate_token
from authlib.integrations.base_client import OAuthError
from authlib.integrations.flask_client import OAuth
from flask import Flask, g, request, session
from werkzeug.serving import make_server

PORT = int(os.environ["APP_PORT"])
ORIGIN = f"https://client.test:{PORT}"
ISSUER = os.environ["ISSUER"]
FAULTS = ("redirect_uri", "verifier")

app = Flask(__name__)
app.secret_key = secrets.token_bytes(32)
app.config.update(SESSION_COOKIE_SECURE=True, SESSION_COOKIE_NAME="client_session")


def _log_backchannel(resp: requests.Response, *args, **kwargs) -> requests.Response:
    """requests response hook: remember each back-channel call for the page."""
    try:
        calls = g.setdefault("backchannel", [])
    except RuntimeError:
        return resp
    body = resp.text[:500] if "json" in resp.headers.get("Content-Type", "") else ""
    calls.append(
        {"method": resp.request.method, "url": resp.request.url.split("?")[0], "status": resp.status_code, "body": body}
    )
    return resp


oauth = OAuth(app)
oauth.register(
    "idp",
    client_id=os.environ.get("CLIENT_ID", "authtrace-rp"),
    client_secret=os.environ.get("CLIENT_SECRET", "authtrace-rp-secret"),
    server_metadata_url=f"{ISSUER}/.well-known/openid-configuration",
    client_kwargs={
        "scope": os.environ.get("SCOPE", "openid profile email"),
        "code_challenge_method": "S256",
        "token_endpoint_auth_method": "client_secret_basic",
    },
    compliance_fix=lambda sess: sess.hooks["response"].append(_log_backchannel),
)


def _page(title: str, result: dict, status: int = 200):
    body = (
        "<!doctype html><html><head><meta charset='utf-8'>"
        f"<title>{html.escape(title)}</title></head><body>"
        f"<h1 id='title'>{html.escape(title)}</h1>"
        f"<pre id='result'>{html.escape(json.dumps(result, indent=2))}</pre></body></html>"
    )
    return body, status, {"Content-Type": "text/html; charset=utf-8", "Cache-Control": "no-store"}


@app.get("/login")
def login():
    for cached in ("_loaded_at", "jwks"):  # each sign-in reads discovery and JWKS, as a fresh app would
        oauth.idp.server_metadata.pop(cached, None)
    fault = request.args.get("fault", "")
    if fault and fault not in FAULTS:
        return _page("Unknown fault", {"error": "unknown_fault", "faults": FAULTS}, 400)
    session["fault"] = fault
    return oauth.idp.authorize_redirect(f"{ORIGIN}/callback")


def _apply_fault(fault: str) -> None:
    """Change what Authlib stored for this sign-in, so the token request goes out wrong."""
    key = f"_state_idp_{request.args.get('state')}"
    stored = session.get(key)
    if not fault or not stored:
        return
    data = dict(stored["data"])
    if fault == "redirect_uri":
        data["redirect_uri"] = data["redirect_uri"] + "/"
    elif fault == "verifier":
        data["code_verifier"] = generate_token(48)
    session[key] = {**stored, "data": data}


@app.get("/callback")
def callback():
    result: dict = {"signed_in": False, "step": "token", "fault": session.get("fault", "")}
    try:
        _apply_fault(session.get("fault", ""))
        token = oauth.idp.authorize_access_token()
        result["id_token_claims"] = {k: token["userinfo"].get(k) for k in ("iss", "aud", "sub", "nonce")}
        result["step"] = "userinfo"
        result["userinfo"] = dict(oauth.idp.userinfo(token=token))
    except OAuthError as exc:
        result.update(error=exc.error, error_description=exc.description, backchannel=g.get("backchannel", []))
        return _page(f"Sign-in failed: {exc.error}", result, 400)
    except Exception as exc:
        result.update(error=type(exc).__name__, error_description=str(exc)[:500], backchannel=g.get("backchannel", []))
        return _page(f"Sign-in failed: {type(exc).__name__}", result, 400)
    result.update(signed_in=True, step="done", backchannel=g.get("backchannel", []))
    return _page(f"Signed in as {result['userinfo'].get('sub')}", result)


def main() -> None:
    server = make_server(
        "127.0.0.1", PORT, app, threaded=True, ssl_context=(os.environ["TLS_CERT"], os.environ["TLS_KEY"])
    )
    print(f"RP READY {ORIGIN}", flush=True)
    server.serve_forever()


if __name__ == "__main__":
    sys.exit(main())
