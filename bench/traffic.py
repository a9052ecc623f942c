"""What the live benchmark sends and answers: ordinary page traffic and auth-heavy traffic.

Shared by the upstream server (`upstream.py`) and the load generator (`loadgen.py`). Everything
runs on loopback only. Hosts are loopback addresses (Linux routes all of 127/8 to `lo`), so a
regular-mode proxy can connect to them without DNS:

    127.0.0.1  ordinary site (pages, scripts, styles, images, an unauthenticated JSON feed)
    127.0.0.2  the identity provider (authorize -> 302 with code+state, token -> JSON with JWTs,
               discovery, JWKS)
    127.0.0.3  the app (redirect URI: callback with code+state -> 302)
    127.0.0.4  the API (GETs with `Authorization: Bearer <jwt>` -> small JSON)

JWTs are RS256, Entra-shaped (≈1.2 KB access tokens), signed once into a pool file shared by the
server and the client, so neither signs anything while measuring.
"""
from __future__ import annotations

import base64
import hashlib
import json
import os
import random
import time

SITE, IDP, APP, API = "127.0.0.1", "127.0.0.2", "127.0.0.3", "127.0.0.4"
HOSTS = (SITE, IDP, APP, API)
TENANT = "72f988bf-86f1-41af-91ab-2d7cd011db47"
CLIENT_ID = "11111111-2222-3333-4444-555555555555"
UA = ("Mozilla/5.0 (X11; Linux x86_64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/131.0.0.0 "
      "Safari/537.36")

# Per worker, the request kinds cycle through one of these lists (each worker starts at its own offset).
MIX = {
    # ordinary browsing: documents, scripts, styles, images, an unauthenticated JSON feed
    "ordinary": ["page", "js", "css", "img", "img", "js", "feed", "css", "img", "page"],
    # auth-heavy: a sign-in (authorize -> callback -> token), bearer API calls, a refresh, a little
    # static noise: 8 of 10 requests are auth hops the addon must decode and store
    "auth": ["authorize", "callback", "token", "api", "api", "api", "refresh", "api", "js", "img"],
}
# once per connection before measuring (warm-up): the app learns the IdP's endpoints and keys
AUTH_WARMUP = ["discovery", "jwks"]


# ---- JWT pool -----------------------------------------------------------------------------------

def make_pool(path: str, n: int = 24) -> None:
    """Sign `n` access/id token pairs once and write them, with the JWKS, to `path` (JSON)."""
    import jwt
    from cryptography.hazmat.primitives.asymmetric import rsa

    key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    pub = json.loads(jwt.algorithms.RSAAlgorithm.to_jwk(key.public_key()))
    kid = "bench-kid-1"
    now = int(time.time())
    pairs = []
    for i in range(n):
        common = {"iat": now, "nbf": now, "exp": now + 3600, "tid": TENANT, "oid": f"0000-{i:04d}-oid",
                  "sub": f"sub-{i:04d}-" + "x" * 30}
        access = jwt.encode(dict(common, iss=f"https://sts.windows.net/{TENANT}/", aud="https://ai.azure.com",
                                 scp="user_impersonation Files.Read Mail.Read", appid=CLIENT_ID,
                                 upn=f"user{i}@contoso.test", name=f"User {i}", amr=["pwd", "mfa"],
                                 acr="1", aio="E2ZgYJj" + "A" * 120, uti="u" * 22, ver="1.0",
                                 wids=["b79fbf4d-3ef9-4689-8143-76b194e85509"],
                                 xms_tcdt=1600000000, ipaddr="10.0.0.1", family_name="User",
                                 given_name=str(i)),
                            key, algorithm="RS256", headers={"kid": kid, "typ": "JWT"})
        idt = jwt.encode(dict(common, iss=f"https://login.microsoftonline.com/{TENANT}/v2.0", aud=CLIENT_ID,
                              nonce=f"nonce-{i}", preferred_username=f"user{i}@contoso.test",
                              name=f"User {i}"),
                         key, algorithm="RS256", headers={"kid": kid, "typ": "JWT"})
        pairs.append({"access": access, "id": idt})
    with open(path, "w") as fh:
        json.dump({"pairs": pairs, "jwks": {"keys": [dict(pub, kid=kid, use="sig", alg="RS256")]}}, fh)


def load_pool(path: str) -> dict:
    with open(path) as fh:
        return json.load(fh)


# ---- server side: answers -----------------------------------------------------------------------

def _resp(status: int, reason: str, headers: list[tuple[str, str]], body: bytes) -> bytes:
    head = [f"HTTP/1.1 {status} {reason}"]
    head += [f"{k}: {v}" for k, v in headers]
    head.append(f"content-length: {len(body)}")
    return ("\r\n".join(head) + "\r\n\r\n").encode() + body


def _filler(n: int, seed: int, kind: str) -> bytes:
    rnd = random.Random(seed)
    words = ("lorem ipsum dolor sit amet consectetur adipiscing elit sed do eiusmod tempor incididunt ut "
             "labore et dolore magna aliqua function return const let var window document").split()
    out = []
    size = 0
    while size < n:
        w = rnd.choice(words)
        if kind == "js":
            s = f"{w}_{rnd.randint(0, 999)}=function(a,b){{return a+b*{rnd.randint(0, 99)}}};"
        elif kind == "css":
            s = f".{w}-{rnd.randint(0, 999)}{{margin:{rnd.randint(0, 9)}px;color:#{rnd.randint(0, 0xffffff):06x}}}\n"
        else:
            s = f"<p class=\"{w}\">{' '.join(rnd.choice(words) for _ in range(12))}</p>\n"
        out.append(s)
        size += len(s)
    return "".join(out).encode()[:n]


COMMON_RESP = [("date", "Thu, 26 Nov 2026 15:00:00 GMT"), ("server", "bench-upstream"),
               ("x-request-id", "5f2b1c3e-9a7d-4e2b-8c1f-0a1b2c3d4e5f")]


class Answers:
    """Pre-built responses; the few dynamic ones (authorize, token) are cheap string formats."""

    def __init__(self, pool: dict, port: int):
        self.pool = pool
        self.port = port
        self.n = 0
        html = b"<!doctype html><html><head><title>Shop</title></head><body>" + _filler(14000, 1, "html") + b"</body></html>"
        static = {
            b"/index.html": ("text/html; charset=utf-8", html, "no-cache"),
            b"/static/app.js": ("application/javascript", _filler(36000, 2, "js"), "public, max-age=31536000"),
            b"/static/site.css": ("text/css", _filler(9000, 3, "css"), "public, max-age=31536000"),
            b"/img/photo.png": ("image/png", bytes(random.Random(4).getrandbits(8) for _ in range(3500)),
                                "public, max-age=86400"),
            b"/api/feed": ("application/json", json.dumps({"items": [{"id": i, "title": f"Item {i}", "price": i * 3.5,
                                                                      "tags": ["a", "b"]} for i in range(25)]}).encode(),
                           "no-store"),
        }
        self.static = {p: _resp(200, "OK", COMMON_RESP + [("content-type", ct), ("cache-control", cc),
                                                          ("etag", f'"{hashlib.md5(b).hexdigest()}"')], b)
                       for p, (ct, b, cc) in static.items()}
        api_body = json.dumps({"id": "r1", "object": "response", "status": "completed",
                               "output": [{"type": "message", "content": "x" * 600}]}).encode()
        self.api = _resp(200, "OK", COMMON_RESP + [("content-type", "application/json; charset=utf-8"),
                                                   ("cache-control", "no-store")], api_body)
        self.callback = _resp(302, "Found", COMMON_RESP + [("location", "/"), ("cache-control", "no-store"),
                                                           ("set-cookie", "appsession=abc123; path=/; HttpOnly")], b"")
        base = f"http://{IDP}:{port}/{TENANT}"
        disc = {"issuer": f"https://login.microsoftonline.com/{TENANT}/v2.0",
                "authorization_endpoint": f"{base}/oauth2/v2.0/authorize",
                "token_endpoint": f"{base}/oauth2/v2.0/token",
                "jwks_uri": f"{base}/discovery/v2.0/keys",
                "end_session_endpoint": f"{base}/oauth2/v2.0/logout",
                "response_types_supported": ["code", "id_token", "code id_token"]}
        jct = [("content-type", "application/json; charset=utf-8"), ("cache-control", "max-age=86400")]
        self.discovery = _resp(200, "OK", COMMON_RESP + jct, json.dumps(disc).encode())
        self.jwks = _resp(200, "OK", COMMON_RESP + jct, json.dumps(pool["jwks"]).encode())
        self.not_found = _resp(404, "Not Found", COMMON_RESP + [("content-type", "text/plain")], b"not found")

    def answer(self, method: bytes, target: bytes) -> bytes:
        path, _, query = target.partition(b"?")
        if path.startswith(b"http://"):  # absolute form (should not reach an origin server, but be lenient)
            path = b"/" + path.split(b"/", 3)[-1]
        r = self.static.get(path)
        if r is not None:
            return r
        if path.startswith(b"/api/projects/"):
            return self.api
        if path.endswith(b"/authorize"):
            self.n += 1
            state = b""
            for kv in query.split(b"&"):
                if kv.startswith(b"state="):
                    state = kv[6:]
            loc = (f"http://{APP}:{self.port}/signin-oidc?code=0.AXoA-issued-{self.n:08d}-"
                   f"{'c' * 40}&state={state.decode()}&session_state=5b1c7e2a-1111-2222")
            return _resp(302, "Found", COMMON_RESP + [("location", loc), ("cache-control", "no-store"),
                                                      ("set-cookie", "esctx=xyz; path=/; secure; HttpOnly")], b"")
        if path == b"/signin-oidc":
            return self.callback
        if path.endswith(b"/token"):
            self.n += 1
            pair = self.pool["pairs"][self.n % len(self.pool["pairs"])]
            body = json.dumps({"token_type": "Bearer", "scope": "https://ai.azure.com/user_impersonation",
                               "expires_in": 3599, "ext_expires_in": 3599, "access_token": pair["access"],
                               "id_token": pair["id"],
                               "refresh_token": f"0.AXoA-refresh-{self.n:08d}-" + "r" * 600}).encode()
            return _resp(200, "OK", COMMON_RESP + [("content-type", "application/json; charset=utf-8"),
                                                   ("cache-control", "no-store"), ("pragma", "no-cache")], body)
        if path.endswith(b"/openid-configuration"):
            return self.discovery
        if path.endswith(b"/keys"):
            return self.jwks
        return self.not_found


# ---- client side: requests ----------------------------------------------------------------------

BROWSER = [("user-agent", UA), ("accept-language", "en-US,en;q=0.9"),
           ("sec-ch-ua", '"Chromium";v="131", "Not_A Brand";v="24"'), ("sec-ch-ua-mobile", "?0"),
           ("sec-ch-ua-platform", '"Linux"')]
COOKIE = "session=7d9f0c1e2b3a4d5e6f708192a3b4c5d6; _ga=GA1.1.123456789.1700000000; theme=dark; consent=yes"


def _s256(v: str) -> str:
    return base64.urlsafe_b64encode(hashlib.sha256(v.encode()).digest()).rstrip(b"=").decode()


class Requests:
    """Builds request bytes per kind. `absolute=True`: absolute-form targets for a regular proxy."""

    def __init__(self, pool: dict, port: int, absolute: bool):
        self.pool, self.port, self.absolute = pool, port, absolute

    def _req(self, method: str, host: str, target: str, headers: list[tuple[str, str]], body: bytes = b"") -> bytes:
        t = f"http://{host}:{self.port}{target}" if self.absolute else target
        lines = [f"{method} {t} HTTP/1.1", f"host: {host}:{self.port}"]
        lines += [f"{k}: {v}" for k, v in headers]
        if body or method == "POST":
            lines.append(f"content-length: {len(body)}")
        return ("\r\n".join(lines) + "\r\n\r\n").encode() + body

    def build(self, kind: str, w: int, n: int) -> tuple[str, bytes]:
        """(host, request bytes) for request `n` of worker `w`."""
        site = f"http://{SITE}:{self.port}/"
        nav = BROWSER + [("accept", "text/html,application/xhtml+xml,application/xml;q=0.9,*/*;q=0.8"),
                         ("sec-fetch-site", "same-origin"), ("sec-fetch-mode", "navigate"),
                         ("sec-fetch-dest", "document"), ("upgrade-insecure-requests", "1"), ("cookie", COOKIE)]
        sub = BROWSER + [("sec-fetch-site", "same-origin"), ("sec-fetch-mode", "no-cors"), ("referer", site),
                         ("cookie", COOKIE)]
        if kind == "page":
            return SITE, self._req("GET", SITE, "/index.html", nav)
        if kind == "js":
            return SITE, self._req("GET", SITE, f"/static/app.js?v={n % 7}", sub + [("accept", "*/*"),
                                                                                  ("sec-fetch-dest", "script")])
        if kind == "css":
            return SITE, self._req("GET", SITE, "/static/site.css", sub + [("accept", "text/css,*/*;q=0.1"),
                                                                          ("sec-fetch-dest", "style")])
        if kind == "img":
            return SITE, self._req("GET", SITE, "/img/photo.png", sub + [("accept", "image/avif,image/webp,*/*"),
                                                                        ("sec-fetch-dest", "image")])
        if kind == "feed":
            return SITE, self._req("GET", SITE, f"/api/feed?page={n % 50}&sort=new",
                                   BROWSER + [("accept", "application/json"), ("sec-fetch-mode", "cors"),
                                              ("sec-fetch-dest", "empty"), ("referer", site), ("cookie", COOKIE)])
        redirect = f"http://{APP}:{self.port}/signin-oidc"
        state = f"st-{w:02d}-{n:08d}-" + "s" * 24
        verifier = f"verifier-{w:02d}-{n:08d}-" + "v" * 40
        if kind == "authorize":
            q = (f"client_id={CLIENT_ID}&response_type=code&redirect_uri={redirect.replace(':', '%3A').replace('/', '%2F')}"
                 f"&response_mode=query&scope=openid+profile+offline_access+https%3A%2F%2Fai.azure.com%2F.default"
                 f"&state={state}&nonce=nonce-{w}-{n}&code_challenge={_s256(verifier)}&code_challenge_method=S256"
                 f"&client-request-id=0b5c9d8e-1f2a-4b3c-9d8e-7f6a5b4c3d2e&x-client-SKU=msal.js.browser")
            return IDP, self._req("GET", IDP, f"/{TENANT}/oauth2/v2.0/authorize?{q}",
                                  nav[:-1] + [("cookie", "esctx=abc; buid=def; fpc=ghi")])
        if kind == "callback":
            code = f"0.AXoA-issued-{w:02d}{n:08d}-" + "c" * 40
            return APP, self._req("GET", APP, f"/signin-oidc?code={code}&state={state}&session_state=5b1c7e2a-1111-2222",
                                  BROWSER + [("accept", "text/html"), ("sec-fetch-site", "cross-site"),
                                             ("sec-fetch-mode", "navigate"), ("sec-fetch-dest", "document"),
                                             ("referer", f"http://{IDP}:{self.port}/")])
        if kind in ("token", "refresh"):
            if kind == "token":
                code = f"0.AXoA-issued-{w:02d}{n:08d}-" + "c" * 40
                form = (f"grant_type=authorization_code&client_id={CLIENT_ID}&code={code}"
                        f"&redirect_uri={redirect.replace(':', '%3A').replace('/', '%2F')}&code_verifier={verifier}"
                        f"&scope=openid+profile+offline_access")
            else:
                form = (f"grant_type=refresh_token&client_id={CLIENT_ID}&refresh_token=0.AXoA-refresh-{w:02d}{n:08d}-"
                        + "r" * 600 + "&scope=https%3A%2F%2Fai.azure.com%2F.default")
            return IDP, self._req("POST", IDP, f"/{TENANT}/oauth2/v2.0/token",
                                  [("user-agent", UA), ("accept", "application/json"),
                                   ("content-type", "application/x-www-form-urlencoded;charset=utf-8"),
                                   ("origin", f"http://{APP}:{self.port}"), ("sec-fetch-mode", "cors"),
                                   ("x-client-sku", "msal.js.browser"), ("x-client-ver", "3.27.0")], form.encode())
        if kind == "api":
            tok = self.pool["pairs"][(w + n // 50) % len(self.pool["pairs"])]["access"]
            return API, self._req("GET", API, f"/api/projects/p{w}/items?page={n % 20}&api-version=2025-05-01",
                                  BROWSER + [("accept", "application/json"), ("authorization", f"Bearer {tok}"),
                                             ("sec-fetch-mode", "cors"), ("sec-fetch-dest", "empty"),
                                             ("origin", f"http://{APP}:{self.port}")])
        if kind == "discovery":
            return IDP, self._req("GET", IDP, f"/{TENANT}/v2.0/.well-known/openid-configuration",
                                  [("user-agent", UA), ("accept", "application/json")])
        if kind == "jwks":
            return IDP, self._req("GET", IDP, f"/{TENANT}/discovery/v2.0/keys",
                                  [("user-agent", UA), ("accept", "application/json")])
        raise ValueError(kind)


def pool_path(tmp: str) -> str:
    return os.path.join(tmp, "jwt-pool.json")
