"""Test-only OpenID provider built on Authlib's authorization server (issue 11: a third implementation).

Minimal but real: Authlib's ``AuthorizationServer`` with its ``AuthorizationCodeGrant``, the
``OpenIDCode`` extension (id_token, nonce) and ``CodeChallenge`` (PKCE, S256 only, demanded of
every client here), its ``UserInfoEndpoint`` behind a bearer ``ResourceProtector``; discovery
and JWKS documents; a login form and a consent page. Codes, tokens and sessions live in memory.
Authlib deletes a code when it is redeemed, so a second redemption is refused as
``invalid_grant`` ("Invalid 'code' in request."), a wrong ``code_verifier`` as ``invalid_grant``
("Code challenge failed."), a different ``redirect_uri`` as ``invalid_grant``.

Environment: IDP_PORT (issuer https://authlib.test:IDP_PORT), REDIRECT_URIS (space separated),
CLIENT_ID, CLIENT_SECRET, SIGNING_KEY (PEM RSA), TLS_CERT, TLS_KEY.
The one user is ``alice`` with the password ``correct horse``.
Prints "AUTHLIB IDP READY <issuer>" once listening.
"""

from __future__ import annotations

import html
import os
import secrets
import sys
import threading
import time
from dataclasses import dataclass, field
from urllib.parse import urlencode

from authlib.integrations.flask_oauth2 import AuthorizationServer, ResourceProtector
from authlib.jose import JsonWebKey
from authlib.oauth2.rfc6749 import ClientMixin, TokenMixin, grants
from authlib.oauth2.rfc6749.errors import InvalidRequestError
from authlib.oauth2.rfc6750 import BearerTokenValidator
from authlib.oauth2.rfc7636 import CodeChallenge
from authlib.oidc.core import UserInfo, UserInfoEndpoint
from authlib.oidc.core.grants import OpenIDCode
from authlib.oidc.core.models import AuthorizationCodeMixin
from flask import Flask, jsonify, redirect, request, session
from werkzeug.serving import make_server

PORT = int(os.environ["IDP_PORT"])
ISSUER = f"https://authlib.test:{PORT}"
CLIENT_ID = os.environ.get("CLIENT_ID", "authtrace-rp")
CLIENT_SECRET = os.environ.get("CLIENT_SECRET", "authtrace-rp-secret")
REDIRECT_URIS = os.environ["REDIRECT_URIS"].split()
USERS = {"alice": "correct horse"}
SCOPES = ("openid", "profile", "email")

with open(os.environ["SIGNING_KEY"], "rb") as f:
    SIGNING_KEY = JsonWebKey.import_key(f.read(), {"kid": "e2e-authlib-rs256", "use": "sig", "alg": "RS256"})
JWKS = {"keys": [SIGNING_KEY.as_dict(is_private=False)]}

app = Flask(__name__)
app.secret_key = secrets.token_bytes(32)
app.config.update(
    SESSION_COOKIE_SECURE=True, SESSION_COOKIE_NAME="idp_session", OAUTH2_TOKEN_EXPIRES_IN={"authorization_code": 600}
)
LOCK = threading.Lock()


@dataclass
class Client(ClientMixin):
    client_id: str
    client_secret: str
    redirect_uris: list[str]
    client_metadata: dict = field(default_factory=dict)
    id_token_signed_response_alg: str = "RS256"

    def get_client_id(self) -> str:
        return self.client_id

    def get_default_redirect_uri(self) -> str:
        return self.redirect_uris[0]

    def get_allowed_scope(self, scope: str) -> str:
        return " ".join(s for s in (scope or "").split() if s in SCOPES)

    def check_redirect_uri(self, redirect_uri: str) -> bool:
        return redirect_uri in self.redirect_uris

    def check_client_secret(self, client_secret: str) -> bool:
        return secrets.compare_digest(client_secret, self.client_secret)

    def check_endpoint_auth_method(self, method: str, endpoint: str) -> bool:
        return method == "client_secret_basic"

    def check_response_type(self, response_type: str) -> bool:
        return response_type == "code"

    def check_grant_type(self, grant_type: str) -> bool:
        return grant_type == "authorization_code"


@dataclass
class Code(AuthorizationCodeMixin):
    code: str
    client_id: str
    redirect_uri: str
    scope: str
    user: str
    nonce: str | None
    code_challenge: str | None
    code_challenge_method: str | None
    auth_time: int = field(default_factory=lambda: int(time.time()))

    def get_redirect_uri(self) -> str:
        return self.redirect_uri

    def get_scope(self) -> str:
        return self.scope

    def get_nonce(self) -> str | None:
        return self.nonce

    def get_auth_time(self) -> int:
        return self.auth_time

    def get_acr(self) -> str | None:
        return None

    def get_amr(self) -> list[str] | None:
        return None


@dataclass
class Token(TokenMixin):
    access_token: str
    client_id: str
    scope: str
    user: str
    issued_at: float
    expires_in: int

    def check_client(self, client) -> bool:
        return client.get_client_id() == self.client_id

    def get_scope(self) -> str:
        return self.scope

    def get_expires_in(self) -> int:
        return self.expires_in

    def is_expired(self) -> bool:
        return time.time() > self.issued_at + self.expires_in

    def is_revoked(self) -> bool:
        return False

    def get_user(self) -> str:
        return self.user

    def get_client(self) -> Client:
        return CLIENTS[self.client_id]


CLIENTS = {CLIENT_ID: Client(CLIENT_ID, CLIENT_SECRET, REDIRECT_URIS)}
CODES: dict[str, Code] = {}
TOKENS: dict[str, Token] = {}
NONCES: set[str] = set()


def user_info(user: str, scope: str) -> UserInfo:
    return UserInfo(
        sub=user, name=f"User {user}", preferred_username=user, email=f"{user}@example.test", email_verified=True
    ).filter(scope)


class CodeGrant(grants.AuthorizationCodeGrant):
    TOKEN_ENDPOINT_AUTH_METHODS = ["client_secret_basic"]

    def validate_authorization_request(self):
        # PKCE for every client (Authlib's CodeChallenge demands it of public clients only).
        if not self.request.payload.data.get("code_challenge"):
            raise InvalidRequestError("Missing 'code_challenge': PKCE is required.")
        return super().validate_authorization_request()

    def save_authorization_code(self, code: str, req) -> None:
        data = req.payload.data
        with LOCK:
            if data.get("nonce"):
                NONCES.add(data["nonce"])
            CODES[code] = Code(
                code=code, client_id=req.client.get_client_id(), redirect_uri=data.get("redirect_uri", ""),
                scope=req.payload.scope or "", user=req.user, nonce=data.get("nonce"),
                code_challenge=data.get("code_challenge"), code_challenge_method=data.get("code_challenge_method"),
            )  # fmt: skip

    def query_authorization_code(self, code: str, client: Client) -> Code | None:
        with LOCK:
            found = CODES.get(code)
        return found if found and found.client_id == client.get_client_id() else None

    def delete_authorization_code(self, authorization_code: Code) -> None:
        with LOCK:
            CODES.pop(authorization_code.code, None)

    def authenticate_user(self, authorization_code: Code) -> str:
        return authorization_code.user


class IdToken(OpenIDCode):
    def exists_nonce(self, nonce: str, req) -> bool:
        with LOCK:
            return nonce in NONCES

    def get_jwt_config(self, grant, client) -> dict:
        return {"key": SIGNING_KEY, "alg": "RS256", "iss": ISSUER, "exp": 600, "kid": SIGNING_KEY.kid}

    def generate_user_info(self, user: str, scope: str) -> UserInfo:
        return user_info(user, scope)


class UserInfoRoute(UserInfoEndpoint):
    def get_issuer(self) -> str:
        return ISSUER

    def generate_user_info(self, user: str, scope: str) -> UserInfo:
        return user_info(user, scope)

    def resolve_private_key(self):
        return SIGNING_KEY


class Bearer(BearerTokenValidator):
    def authenticate_token(self, token_string: str) -> Token | None:
        with LOCK:
            return TOKENS.get(token_string)


def save_token(token: dict, req) -> None:
    with LOCK:
        TOKENS[token["access_token"]] = Token(
            token["access_token"], req.client.get_client_id(), token.get("scope", ""), req.user, time.time(),
            int(token.get("expires_in", 600)),
        )  # fmt: skip


server = AuthorizationServer(app, query_client=CLIENTS.get, save_token=save_token)
server.register_grant(CodeGrant, [CodeChallenge(required=True), IdToken(require_nonce=True)])
protector = ResourceProtector()
protector.register_token_validator(Bearer())
server.register_endpoint(UserInfoRoute(resource_protector=protector))


def page(title: str, body: str, status: int = 200):
    head = f"<!doctype html><html><head><meta charset='utf-8'><title>{html.escape(title)}</title></head>"
    doc = f"{head}<body><h1>{html.escape(title)}</h1>{body}</body></html>"
    return doc, status, {"Content-Type": "text/html; charset=utf-8", "Cache-Control": "no-store"}


@app.get("/.well-known/openid-configuration")
def discovery():
    return jsonify(
        issuer=ISSUER,
        authorization_endpoint=f"{ISSUER}/authorize",
        token_endpoint=f"{ISSUER}/token",
        userinfo_endpoint=f"{ISSUER}/userinfo",
        jwks_uri=f"{ISSUER}/jwks",
        response_types_supported=["code"],
        grant_types_supported=["authorization_code"],
        subject_types_supported=["public"],
        id_token_signing_alg_values_supported=["RS256"],
        scopes_supported=list(SCOPES),
        token_endpoint_auth_methods_supported=["client_secret_basic"],
        code_challenge_methods_supported=["S256"],
        claims_supported=["sub", "name", "preferred_username", "email", "email_verified"],
    )


@app.get("/jwks")
def jwks():
    return jsonify(JWKS)


@app.route("/login", methods=["GET", "POST"])
def login():
    next_url = request.values.get("next", "/")
    if not next_url.startswith("/authorize?"):
        next_url = "/"
    error = ""
    if request.method == "POST":
        user = request.form.get("username", "")
        if USERS.get(user) == request.form.get("password"):
            session["user"] = user
            return redirect(next_url)
        error = "<p id='error'>Wrong user name or password.</p>"
    form = (
        f"{error}<form method='post' action='/login'><input type='hidden' name='next' value='{html.escape(next_url)}'>"
        "<input name='username' autocomplete='username'> <input name='password' type='password'>"
        " <button type='submit'>Sign in</button></form>"
    )
    return page("Sign in to authlib.test", form, 401 if error else 200)


@app.route("/authorize", methods=["GET", "POST"])
def authorize():
    user = session.get("user")
    if not user:
        return redirect("/login?" + urlencode({"next": request.full_path}))
    if request.method == "GET":
        grant = server.get_consent_grant(end_user=user)
        scopes = html.escape(grant.request.payload.scope or "")
        form = (
            f"<p>{html.escape(grant.client.get_client_id())} asks for: {scopes}</p><form method='post'>"
            "<button type='submit' name='confirm' value='yes'>Allow</button>"
            " <button type='submit' name='confirm' value='no'>Deny</button></form>"
        )
        return page("Consent", form)
    granted = user if request.form.get("confirm") == "yes" else None
    return server.create_authorization_response(grant_user=granted)


@app.post("/token")
def token():
    return server.create_token_response()


@app.route("/userinfo", methods=["GET", "POST"])
def userinfo():
    return server.create_endpoint_response("userinfo")


def main() -> None:
    httpd = make_server(
        "127.0.0.1", PORT, app, threaded=True, ssl_context=(os.environ["TLS_CERT"], os.environ["TLS_KEY"])
    )
    print(f"AUTHLIB IDP READY {ISSUER}", flush=True)
    httpd.serve_forever()


if __name__ == "__main__":
    sys.exit(main())
