"""Test-only protected API for the authtrace end-to-end rig.

One process answers for every API host (api.test, other.test): the audience
it expects is ``https://<Host header without port>``. Bearer tokens must be
RFC 9068 JWTs signed by the IdP (keys from its JWKS, fetched with ``requests``
once and cached), issued by ISSUER, with that audience, and not expired.
Failures answer 401 with ``WWW-Authenticate: Bearer error="invalid_token",
error_description="..."`` (RFC 6750).

The rig runs it WITHOUT the proxy (E2E_RESOLVE_TEST_HOSTS, testdns.py, and
REQUESTS_CA_BUNDLE = the rig's own CA): a resource server's key fetches are not part
of anyone's sign-in, and keeping them out makes every scenario's capture the same
whatever ran before. The calls TO the API (from the app) do go through the proxy.

Environment: API_PORT, ISSUER, TLS_CERT, TLS_KEY, E2E_RESOLVE_TEST_HOSTS.
"""

from __future__ import annotations

import os
import sys
import threading

import requests
import testdns  # next to this file
from authlib.jose import JsonWebKey, JsonWebToken
from authlib.jose.errors import JoseError
from flask import Flask, jsonify, request
from werkzeug.serving import make_server

testdns.install_from_env()

PORT = int(os.environ["API_PORT"])
ISSUER = os.environ["ISSUER"]

app = Flask(__name__)
jwt = JsonWebToken(["RS256"])  # what the IdP signs with; never "none"
_jwks = None
_jwks_lock = threading.Lock()


def _keys(refresh: bool = False):
    global _jwks
    with _jwks_lock:
        if _jwks is None or refresh:
            meta = requests.get(f"{ISSUER}/.well-known/openid-configuration", timeout=10).json()
            _jwks = JsonWebKey.import_key_set(requests.get(meta["jwks_uri"], timeout=10).json())
        return _jwks


def _deny(description: str, status: int = 401):
    desc = description.replace('"', "'")
    resp = jsonify(error="invalid_token", error_description=description)
    resp.status_code = status
    resp.headers["WWW-Authenticate"] = f'Bearer error="invalid_token", error_description="{desc}"'
    return resp


@app.get("/data")
def data():
    auth = request.headers.get("Authorization", "")
    if not auth.startswith("Bearer "):
        resp = jsonify(error="invalid_request")
        resp.status_code = 401
        resp.headers["WWW-Authenticate"] = 'Bearer realm="api"'
        return resp
    raw = auth[len("Bearer ") :]
    audience = "https://" + request.host.split(":")[0]
    try:
        try:
            claims = jwt.decode(raw, _keys())
        except ValueError:  # unknown kid: the IdP may have rotated its keys
            claims = jwt.decode(raw, _keys(refresh=True))
        if claims.header.get("typ", "").lower() not in ("at+jwt", "application/at+jwt"):
            return _deny(f"token type {claims.header.get('typ')!r} is not at+jwt")
        claims.validate(leeway=5)  # exp, nbf, iat
    except (JoseError, ValueError) as exc:
        return _deny(f"token rejected: {exc}")
    if claims.get("iss") != ISSUER:
        return _deny(f"issuer {claims.get('iss')!r} is not {ISSUER!r}")
    aud = claims.get("aud")
    auds = aud if isinstance(aud, list) else [aud]
    if audience not in auds:
        return _deny(f"audience {aud!r} does not match this API, expected {audience!r}")
    return jsonify(ok=True, api=audience, sub=claims.get("sub"), scope=claims.get("scope"), client_id=claims.get("client_id"))


def main() -> None:
    server = make_server(
        "127.0.0.1", PORT, app, threaded=True, ssl_context=(os.environ["TLS_CERT"], os.environ["TLS_KEY"])
    )
    print(f"API READY https://api.test:{PORT}", flush=True)
    server.serve_forever()


if __name__ == "__main__":
    sys.exit(main())
