"""Generates the import benchmark's captures: a browser-style HAR and the same capture as `.mitm`.

    python bench/gen_capture.py OUT_STEM --entries 20000 --kind realistic|auth-heavy [--signins 5]
        -> OUT_STEM.har and OUT_STEM.mitm

What is in them (seeded, so every run builds the same files):
- ordinary browser traffic, as Chrome's DevTools exports it with content: JSON XHRs, scripts,
  styles, documents (text bodies whose response headers still say `content-encoding: gzip|br`,
  which is exactly what makes mitmproxy's HAR reader re-compress them), images and fonts
  (base64), analytics beacons (POST, 204), CORS preflights, 304s; realistic request headers
  (user agent, client hints, cookies, referer, sec-fetch-*) and response headers (CSP, HSTS...);
- about 1.5% noise that passes authtrace's cheap pre-filter but is not OAuth (`/api/devices`,
  `?code=SAVE10&state=CA`, `/login-banner.svg`, `client_id=` in analytics);
- complete sign-ins built by tests/builders.py (authorize, login, form_post callback, token with
  JWTs, JWKS, bearer API call), spread through the capture;
- `realistic`: a few sign-ins and ~0.5% bearer API calls among the ordinary entries;
  `auth-heavy`: half of all entries carry tokens (bearer API calls, 1 in 10 of them a refresh-token
  grant answered with fresh JWTs).
The `.mitm` holds the same requests and responses as flows (bodies compressed on the wire as their
headers say), written with mitmproxy's FlowWriter.
"""
from __future__ import annotations

import argparse
import base64
import gzip
import json
import os
import random
import sys
from datetime import UTC, datetime
from urllib.parse import parse_qsl, urlsplit

import brotli
import orjson

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(os.path.dirname(HERE), "tests"))

UA = ("Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/131.0.0.0 "
      "Safari/537.36 Edg/131.0.0.0")
SITE = "www.contoso-shop.test"
HOSTS = {"doc": SITE, "xhr": "api.contoso-shop.test", "script": "cdn.contoso-shop.test",
         "css": "cdn.contoso-shop.test", "image": "img.contoso-shop.test", "font": "fonts.gstatic.test",
         "beacon": "www.google-analytics.test", "preflight": "api.contoso-shop.test",
         "notmod": "cdn.contoso-shop.test"}
# kind -> weight among ordinary entries
WEIGHTS = {"xhr": 30, "image": 22, "script": 13, "css": 5, "doc": 5, "font": 3, "beacon": 11, "preflight": 6,
           "notmod": 5}
CSP = ("default-src 'self'; script-src 'self' 'nonce-r4nd0m' https://cdn.contoso-shop.test "
       "https://www.googletagmanager.test; style-src 'self' 'unsafe-inline' https://cdn.contoso-shop.test; "
       "img-src 'self' data: https://img.contoso-shop.test; connect-src 'self' https://api.contoso-shop.test "
       "https://www.google-analytics.test; font-src https://fonts.gstatic.test; frame-ancestors 'none'")
COOKIE = ("_ga=GA1.1.1234567890.1732600000; _ga_XYZ=GS1.1.1732600000.3.1.1732600100.0.0.0; "
          "session=s%3A9f8e7d6c5b4a3210.abcdefghijklmnopqrstuvwxyz0123456789ABCDEF; cart=3; "
          "consent=analytics%3Atrue%2Cmarketing%3Afalse; theme=dark")
WORDS = ("lorem ipsum dolor sit amet consectetur adipiscing elit sed do eiusmod tempor incididunt labore "
         "dolore magna aliqua enim minim veniam quis nostrud exercitation ullamco laboris nisi aliquip "
         "commodo consequat price cart product checkout shipping review rating").split()


def _text(rnd: random.Random, kind: str, n: int) -> str:
    out, size = [], 0
    while size < n:
        w = rnd.choice(WORDS)
        if kind == "script":
            s = f"function {w}{rnd.randint(0, 9999)}(e,t){{return e&&t.{rnd.choice(WORDS)}({rnd.randint(0, 99)})}}"
        elif kind == "css":
            s = f".{w}-{rnd.randint(0, 999)}{{margin:{rnd.randint(0, 9)}px;color:#{rnd.randint(0, 0xffffff):06x}}}"
        elif kind == "doc":
            s = f"<div class=\"{w}\"><p>{' '.join(rnd.choice(WORDS) for _ in range(14))}</p></div>\n"
        else:  # json
            s = json.dumps({"id": rnd.randint(0, 10 ** 6), "name": f"{w} {rnd.choice(WORDS)}",
                            "price": round(rnd.random() * 100, 2), "tags": [rnd.choice(WORDS)]}) + ","
        out.append(s)
        size += len(s)
    t = "".join(out)[:n]
    if kind == "xhr":
        t = '{"items":[' + t.rstrip(",") + '{"id":0}],"page":1}'
    return t


class Bodies:
    """Pools of bodies per kind, with their compressed forms cached (for the .mitm)."""

    SIZES = {"xhr": (100, 650), "script": (600, 2000), "css": (400, 1400), "doc": (1200, 3500),
             "image": (200, 900), "font": (500, 1300)}
    ENC = {"xhr": "gzip", "script": "br", "css": "gzip", "doc": "br"}

    def __init__(self, rnd: random.Random):
        self.pool: dict[str, list] = {}
        for kind, (lo, hi) in self.SIZES.items():
            items = []
            for _ in range(40):
                n = rnd.randint(lo, hi)
                if kind in ("image", "font"):
                    items.append(bytes(rnd.getrandbits(8) for _ in range(n)))
                else:
                    items.append(_text(rnd, kind, n))
            self.pool[kind] = items
        self._wire: dict[tuple[str, int], bytes] = {}

    def pick(self, rnd: random.Random, kind: str) -> tuple[int, object]:
        i = rnd.randrange(len(self.pool[kind]))
        return i, self.pool[kind][i]

    def wire(self, kind: str, i: int) -> bytes:
        """The body as sent on the wire (compressed as the content-encoding header says)."""
        key = (kind, i)
        if key not in self._wire:
            body = self.pool[kind][i]
            raw = body if isinstance(body, bytes) else body.encode()
            enc = self.ENC.get(kind)
            self._wire[key] = gzip.compress(raw, 6) if enc == "gzip" else brotli.compress(raw, quality=5) \
                if enc == "br" else raw
        return self._wire[key]


def _iso(t: float) -> str:
    return datetime.fromtimestamp(t, tz=UTC).strftime("%Y-%m-%dT%H:%M:%S.") + f"{int(t % 1 * 1000):03d}Z"


def _req_headers(kind: str, host: str, extra: list | None = None) -> list[tuple[str, str]]:
    dest = {"doc": "document", "xhr": "empty", "script": "script", "css": "style", "image": "image",
            "font": "font", "beacon": "empty", "preflight": "empty", "notmod": "script"}[kind]
    mode = {"doc": "navigate", "xhr": "cors", "beacon": "no-cors", "preflight": "cors", "font": "cors"}.get(kind, "no-cors")
    accept = {"doc": "text/html,application/xhtml+xml,application/xml;q=0.9,image/avif,image/webp,*/*;q=0.8",
              "xhr": "application/json, text/plain, */*", "css": "text/css,*/*;q=0.1",
              "image": "image/avif,image/webp,image/apng,image/svg+xml,image/*,*/*;q=0.8"}.get(kind, "*/*")
    h = [(":authority", host), (":method", "GET"), (":path", "/"), (":scheme", "https"),
         ("accept", accept), ("accept-encoding", "gzip, deflate, br, zstd"),
         ("accept-language", "en-US,en;q=0.9,de;q=0.8"), ("priority", "u=1, i"),
         ("sec-ch-ua", '"Microsoft Edge";v="131", "Chromium";v="131", "Not_A Brand";v="24"'),
         ("sec-ch-ua-mobile", "?0"), ("sec-ch-ua-platform", '"Windows"'), ("sec-fetch-dest", dest),
         ("sec-fetch-mode", mode), ("sec-fetch-site", "same-site" if host != SITE else "same-origin"),
         ("user-agent", UA)]
    if kind != "preflight":
        h.append(("referer", f"https://{SITE}/"))
    if host.endswith("contoso-shop.test") and kind in ("doc", "xhr"):
        h.append(("cookie", COOKIE))
    if kind in ("xhr", "preflight", "font"):
        h.append(("origin", f"https://{SITE}"))
    return h + (extra or [])


def _resp_headers(kind: str, ctype: str, size: int, enc: str | None, rnd: random.Random) -> list[tuple[str, str]]:
    h = [("date", f"Tue, 26 Nov 2026 14:{rnd.randint(0, 59):02d}:{rnd.randint(0, 59):02d} GMT"),
         ("content-type", ctype), ("server", "cloudflare"), ("cf-ray", f"8e{rnd.getrandbits(48):012x}-FRA"),
         ("x-request-id", f"{rnd.getrandbits(128):032x}"), ("vary", "Accept-Encoding"),
         ("strict-transport-security", "max-age=31536000; includeSubDomains; preload"),
         ("x-content-type-options", "nosniff")]
    if enc:
        h.append(("content-encoding", enc))
    if kind in ("script", "css", "image", "font", "notmod"):
        h += [("cache-control", "public, max-age=31536000, immutable"), ("etag", f'W/"{rnd.getrandbits(64):x}"'),
              ("age", str(rnd.randint(0, 90000))), ("last-modified", "Mon, 25 Nov 2026 10:00:00 GMT")]
    else:
        h += [("cache-control", "no-cache, no-store, must-revalidate")]
    if kind == "doc":
        h += [("content-security-policy", CSP), ("x-frame-options", "DENY"),
              ("set-cookie", "session=s%3A9f8e7d6c5b4a3210.abcdef; Path=/; Secure; HttpOnly; SameSite=Lax")]
    if kind in ("xhr", "preflight", "font"):
        h += [("access-control-allow-origin", f"https://{SITE}"), ("access-control-allow-credentials", "true")]
    if kind == "preflight":
        h += [("access-control-allow-methods", "GET, POST, PUT, DELETE"),
              ("access-control-allow-headers", "authorization, content-type, x-client-request-id"),
              ("access-control-max-age", "600")]
    if size and not enc:
        h.append(("content-length", str(size)))
    return h


class Entry:
    """A neutral record of one exchange, emitted both as a HAR entry and as a mitmproxy flow."""

    __slots__ = ("t", "method", "url", "req_headers", "req_body", "req_mime", "status", "resp_headers",
                 "body_kind", "body_i", "body", "mime", "resource_type")

    def har(self) -> dict:
        u = urlsplit(self.url)
        req = {"method": self.method, "url": self.url, "httpVersion": "http/2.0",
               "headers": [{"name": k, "value": v} for k, v in self.req_headers],
               "queryString": [{"name": k, "value": v} for k, v in parse_qsl(u.query, keep_blank_values=True)],
               "cookies": [{"name": c.split("=", 1)[0].strip(), "value": c.split("=", 1)[1], "path": "/",
                            "domain": "." + SITE, "expires": "2027-11-26T14:00:00.000Z", "httpOnly": False,
                            "secure": True}
                           for k, v in self.req_headers if k == "cookie" and self.resource_type == "document"
                           for c in v.split(";")],
               "headersSize": -1, "bodySize": len(self.req_body or "")}
        if self.req_body is not None:
            req["postData"] = {"mimeType": self.req_mime, "text": self.req_body}
        content: dict = {"size": 0, "mimeType": self.mime}
        if self.body is not None:
            if isinstance(self.body, bytes):
                content.update(size=len(self.body), text=base64.b64encode(self.body).decode(), encoding="base64")
            else:
                content.update(size=len(self.body), text=self.body)
            content["compression"] = content["size"] // 3 if any(k == "content-encoding" for k, _ in
                                                                 self.resp_headers) else 0
        loc = next((v for k, v in self.resp_headers if k == "location"), "")
        wait = round(20 + (self.t * 1000 % 180), 3)
        return {
            "_initiator": {"type": "script", "stack": {"callFrames": [
                {"functionName": "fetch", "scriptId": "41", "url": "https://cdn.contoso-shop.test/static/app.js",
                 "lineNumber": 1, "columnNumber": 52311}]}} if self.resource_type in ("xhr", "fetch") else
            {"type": "parser", "url": f"https://{SITE}/", "lineNumber": 12},
            "_priority": "High", "_resourceType": self.resource_type, "cache": {}, "connection": "443",
            "pageref": "page_1",
            "request": req,
            "response": {"status": self.status, "statusText": "", "httpVersion": "http/2.0",
                         "headers": [{"name": k, "value": v} for k, v in self.resp_headers], "cookies": [],
                         "content": content, "redirectURL": loc, "headersSize": -1,
                         "bodySize": content["size"], "_transferSize": content["size"] + 400, "_error": None,
                         "_fetchedViaServiceWorker": False},
            "serverIPAddress": f"104.16.{len(u.hostname or '')}.{len(u.path) % 250}",
            "startedDateTime": _iso(self.t), "time": wait + 1.4,
            "timings": {"blocked": 0.9, "dns": -1, "ssl": -1, "connect": -1, "send": 0.1, "wait": wait,
                        "receive": 1.3, "_blocked_queueing": 0.6, "_workerStart": -1, "_workerReady": -1,
                        "_workerFetchStart": -1, "_workerRespondWithSettled": -1},
        }

    def flow(self, bodies: Bodies):
        from mitmproxy import http
        from mitmproxy.test import tflow

        headers = http.Headers([(k.encode(), v.encode()) for k, v in self.req_headers if not k.startswith(":")])
        req = http.Request.make(self.method, self.url, (self.req_body or "").encode(), headers)
        req.http_version = "HTTP/2"
        req.timestamp_start, req.timestamp_end = self.t, self.t + 0.001
        if self.body is None:
            raw = b""
        elif self.body_kind is not None:
            raw = bodies.wire(self.body_kind, self.body_i)
        else:
            raw = self.body if isinstance(self.body, bytes) else self.body.encode()
        resp = http.Response(b"HTTP/2", self.status, b"", http.Headers(
            [(k.encode(), v.encode()) for k, v in self.resp_headers]), raw, None, self.t + 0.02, self.t + 0.03)
        f = tflow.tflow(req=req, resp=resp)
        return f


def ordinary(rnd: random.Random, bodies: Bodies, t: float, kind: str, n: int) -> Entry:
    e = Entry()
    e.t, e.method, e.req_body, e.req_mime, e.status = t, "GET", None, None, 200
    host = HOSTS[kind]
    e.body_kind = e.body_i = None
    e.body = None
    enc = None
    if kind in Bodies.SIZES:
        i, body = bodies.pick(rnd, kind)
        e.body_kind, e.body_i, e.body = kind, i, body
        enc = Bodies.ENC.get(kind)
    path = {"xhr": f"/v2/catalog/products?page={n % 40}&pageSize=24&sort=popular&locale=en-US",
            "script": f"/static/js/chunk-{n % 97:02d}.{rnd.getrandbits(32):08x}.js",
            "css": f"/static/css/main.{rnd.getrandbits(32):08x}.css",
            "doc": f"/products/{rnd.choice(WORDS)}-{n % 500}?utm_source=newsletter&utm_medium=email",
            "image": f"/catalog/{n % 800}/thumb-{rnd.randint(100, 999)}x{rnd.randint(100, 999)}.webp?q=80",
            "font": "/s/inter/v13/UcC73FwrK3iLTeHuS_fvQtMwCp50KnMa1ZL7.woff2",
            "beacon": f"/g/collect?v=2&tid=G-XYZ123&gtm=45je4bh0&_p={rnd.getrandbits(30)}&cid=1234567890.1732600000"
                      f"&ul=en-us&sr=1920x1080&_s={n % 50}&dl=https%3A%2F%2F{SITE}%2F&en=page_view",
            "preflight": f"/v2/cart/items?id={n}", "notmod": f"/static/js/vendor.{n % 13}.js"}[kind]
    e.url = f"https://{host}{path}"
    e.mime = {"xhr": "application/json", "script": "application/javascript", "css": "text/css",
              "doc": "text/html", "image": "image/webp", "font": "font/woff2"}.get(kind, "text/plain")
    e.resource_type = {"xhr": "fetch", "doc": "document", "css": "stylesheet", "beacon": "ping",
                       "preflight": "preflight", "notmod": "script"}.get(kind, kind)
    extra = None
    if kind == "beacon":
        e.method, e.status = "POST", 204
        e.req_body, e.req_mime = "en=scroll&epn.percent_scrolled=90&_et=" + str(rnd.randint(1, 9999)), "text/plain"
        extra = [("content-type", "text/plain;charset=UTF-8")]
    elif kind == "preflight":
        e.method, e.status = "OPTIONS", 204
        extra = [("access-control-request-method", "POST"),
                 ("access-control-request-headers", "authorization,content-type")]
    elif kind == "notmod":
        e.status = 304
        extra = [("if-none-match", f'W/"{rnd.getrandbits(64):x}"')]
    e.req_headers = _req_headers(kind, host, extra)
    size = len(e.body) if e.body is not None else 0
    e.resp_headers = _resp_headers(kind, e.mime + ("; charset=utf-8" if kind in ("xhr", "doc") else ""), size, enc, rnd)
    return e


NOISE = [  # pass the cheap pre-filter, are not OAuth
    ("GET", "https://api.contoso-shop.test/v2/devices/registered?userId=42"),
    ("GET", "https://www.contoso-shop.test/checkout?code=SAVE10&state=CA&step=2"),
    ("GET", "https://img.contoso-shop.test/banners/login-banner.svg"),
    ("GET", "https://www.google-analytics.test/g/collect?v=2&client_id=1234567890.17326&en=view_item"),
    ("GET", "https://www.contoso-shop.test/account/signin-help"),
    ("GET", "https://cdn.contoso-shop.test/static/keys/keyboard-shortcuts.json"),
]


def noise(rnd: random.Random, bodies: Bodies, t: float, n: int) -> Entry:
    e = ordinary(rnd, bodies, t, "xhr", n)
    e.method, e.url = NOISE[n % len(NOISE)]
    return e


def bearer(rnd: random.Random, bodies: Bodies, t: float, n: int, tokens: list[str], refresh: bool) -> Entry:
    from builders import CLIENT_ID, IDP, TENANT

    e = ordinary(rnd, bodies, t, "xhr", n)
    tok = tokens[(n // 40) % len(tokens)]
    if refresh:  # a refresh-token grant, answered with fresh JWTs (SPA silent renewal)
        e.method, e.url = "POST", f"https://{IDP}/{TENANT}/oauth2/v2.0/token"
        e.req_mime = "application/x-www-form-urlencoded;charset=utf-8"
        e.req_body = (f"client_id={CLIENT_ID}&scope=https%3A%2F%2Fai.azure.com%2F.default+openid+profile+offline_access"
                      f"&grant_type=refresh_token&client_info=1&x-client-SKU=msal.js.browser&x-client-VER=3.27.0"
                      f"&refresh_token=0.AXoA-refresh-{n:08d}-" + "r" * 700)
        e.req_headers = _req_headers("xhr", IDP, [("content-type", e.req_mime)])
        e.body_kind = e.body_i = None
        e.body = json.dumps({"token_type": "Bearer", "scope": "https://ai.azure.com/user_impersonation",
                             "expires_in": 4361, "ext_expires_in": 4361, "access_token": tok,
                             "refresh_token": f"0.AXoA-refresh-{n + 1:08d}-" + "r" * 700,
                             "id_token": tokens[(n // 40 + 1) % len(tokens)], "client_info": "eyJ1aWQiOiIx"})
        e.mime = "application/json"
        e.resp_headers = _resp_headers("xhr", "application/json; charset=utf-8", len(e.body), None, rnd)
    else:
        e.url = f"https://contoso-ai.services.ai.azure.com/api/projects/p{n % 7}/threads?limit=20&order=desc&api-version=2025-05-01"
        e.req_headers = _req_headers("xhr", "contoso-ai.services.ai.azure.com",
                                     [("authorization", f"Bearer {tok}"),
                                      ("x-ms-client-request-id", f"{rnd.getrandbits(128):032x}")])
    e.resource_type = "fetch"
    return e


def signin_entries(t: float, i: int) -> tuple[list[dict], list]:
    from builders import chrome_har, signin_flows

    flows = signin_flows(t, code=f"0.AXoAv4j5cvGGr0GRqy180BHbR-code-{i:05d}", state=f"state-{i:05d}-" + "s" * 30,
                         nonce=f"nonce-{i}")
    return chrome_har(flows)["log"]["entries"], flows


def make_tokens(n: int) -> list[str]:
    import time as _t

    from builders import CLIENT_ID, TENANT, make_jwt

    now = int(_t.time())
    return [make_jwt({"iss": f"https://sts.windows.net/{TENANT}/", "aud": "https://ai.azure.com", "iat": now,
                      "nbf": now, "exp": now + 3600, "scp": "user_impersonation", "appid": CLIENT_ID,
                      "tid": TENANT, "upn": f"user{i}@contoso.test", "name": f"User {i}",
                      "oid": f"00000000-0000-0000-0000-{i:012d}", "aio": "E2ZgYJj" + "A" * 120,
                      "uti": "u" * 22, "ver": "1.0", "amr": ["pwd", "mfa"]}) for i in range(n)]


def generate(stem: str, entries: int, kind: str, signins: int | None = None, seed: int = 7) -> dict:
    """Writes STEM.har and STEM.mitm; returns a summary (entries per kind, sizes)."""
    from mitmproxy.io import FlowWriter

    rnd = random.Random(seed)
    bodies = Bodies(rnd)
    signins = signins if signins is not None else (5 if kind == "realistic" else 20)
    tokens = make_tokens(40)
    t0 = 1_795_000_000.0
    kinds = list(WEIGHTS)
    weights = [WEIGHTS[k] for k in kinds]
    signin_at = {int((j + 0.5) * entries / signins) for j in range(signins)} if signins else set()
    har_entries: list[dict] = []
    counts: dict[str, int] = {}
    n = 0
    with open(stem + ".mitm", "wb") as fh:
        fw = FlowWriter(fh)

        def emit(e_har: dict, flow, label: str) -> None:
            har_entries.append(e_har)
            fw.add(flow)
            counts[label] = counts.get(label, 0) + 1

        si = 0
        while n < entries:
            t = t0 + n * 0.05
            if n in signin_at or (si < signins and n >= entries - 7 * (signins - si)):
                hs, fs = signin_entries(t, si)
                si += 1
                for h, f in zip(hs, fs, strict=True):
                    emit(h, f, "signin")
                n += len(hs)
                continue
            r = rnd.random()
            if kind == "auth-heavy" and r < 0.5:
                e, label = bearer(rnd, bodies, t, n, tokens, refresh=rnd.random() < 0.1), "token-carrying"
            elif kind == "realistic" and r < 0.005:
                e, label = bearer(rnd, bodies, t, n, tokens, refresh=False), "token-carrying"
            elif r > 0.985:
                e, label = noise(rnd, bodies, t, n), "prefilter-noise"
            else:
                k = rnd.choices(kinds, weights)[0]
                e, label = ordinary(rnd, bodies, t, k, n), "ordinary"
            emit(e.har(), e.flow(bodies), label)
            n += 1
    har = {"log": {"version": "1.2", "creator": {"name": "WebInspector", "version": "537.36"},
                   "pages": [{"startedDateTime": _iso(t0), "id": "page_1", "title": f"https://{SITE}/",
                              "pageTimings": {"onContentLoad": 812.4, "onLoad": 1520.9}}],
                   "entries": har_entries}}
    with open(stem + ".har", "wb") as fh:
        fh.write(orjson.dumps(har))
    return {"entries": len(har_entries), "kind": kind, "by_kind": counts,
            "har_mb": round(os.path.getsize(stem + ".har") / 1e6, 1),
            "mitm_mb": round(os.path.getsize(stem + ".mitm") / 1e6, 1)}


if __name__ == "__main__":
    ap = argparse.ArgumentParser()
    ap.add_argument("stem")
    ap.add_argument("--entries", type=int, default=20000)
    ap.add_argument("--kind", choices=("realistic", "auth-heavy"), default="realistic")
    ap.add_argument("--signins", type=int)
    a = ap.parse_args()
    print(json.dumps(generate(a.stem, a.entries, a.kind, a.signins)))
