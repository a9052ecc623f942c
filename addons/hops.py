"""flow -> hops: the one function that live capture and every import call.

`flow_to_hops(flow, ctx)` returns [] for ordinary traffic after a few string checks, and for a
sign-in exchange returns one hop (sometimes two: a redirect that carries `code`/`token` in the
fragment of its Location header becomes a callback hop of its own, because browsers never send
fragments and the callback request alone would show nothing). `Context` is what one capture
session has learnt so far: endpoints from discovery documents, IdP hosts, redirect URIs, JWKS keys.
"""
from __future__ import annotations

import base64
import json
import re
import time
import zlib
from collections import OrderedDict
from typing import Any
from urllib.parse import SplitResult, parse_qsl, urlsplit

import jwt
from mitmproxy import http

from authtrace.addons import providers as pv
from authtrace.addons.decode import (decode_jwt, decode_state, error_fields, message, text_error,
                                     www_authenticate)
from authtrace.addons.secrets import JWT_RE, Fingerprinter, s256
from authtrace.store.db import NewHop

CALLBACK_KEYS = ("code", "id_token", "access_token", "error", "samlresponse")
URL_MARKERS = ("code=", "state=", "error=", "token=", "response_type=", "client_id=", "request_uri=",
               "/.well-known/", "jwks", "/keys", "/certs", "authorize", "/token", "logout", "userinfo",
               "device", "/oauth", "/agent-oauth/", "/.auth/", "samlresponse", "/login", "signin",
               "session/end", "end_session", "/directline/")
BODY_MARKERS = (b"grant_type", b"code=", b"state=", b"id_token", b"access_token", b"response_type",
                b"SAMLResponse", b"error=", b"client_id", b"request_uri")
LOCATION_MARKERS = ("code=", "error=", "token=", "state=")
MAX_BODY = 2 * 1024 * 1024
_HIDDEN_CODE = re.compile(r'name="code"\s+value="([^"]+)"|value="([^"]+)"\s+name="code"')
REQ_HEADERS = ("origin", "content-type", "accept", "x-requested-with", "client-request-id",
               "x-client-sku", "x-client-ver", "x-ms-client-request-id", "traceparent", "dpop",
               "x-ms-correlation-id")
RESP_HEADERS = ("content-type", "www-authenticate", "date", "cache-control", "x-ms-request-id",
                "x-ms-ests-server", "client-request-id", "request-id", "apim-request-id",
                "x-request-id", "x-correlation-id", "x-ms-correlation-request-id", "content-length")
TOKEN_KINDS = ("access_token", "id_token", "refresh_token", "client_assertion", "assertion",
               "subject_token", "actor_token", "id_token_hint", "logout_token", "token", "request",
               "login_hint")


class Context:
    """What one capture session has learnt so far. Holds raw JWTs only in memory, briefly, so a
    JWKS that arrives after the tokens (the usual order) can still verify their signatures."""

    def __init__(self, key: bytes):
        self.fpr = Fingerprinter(key)
        self.seq = 0
        self.endpoints: dict[str, set[str]] = {r: set() for r in
                                               ("authorize", "token", "jwks", "userinfo", "logout", "device", "par")}
        self.idp_hosts: set[str] = set()
        self.redirect_uris: set[str] = set()
        self.open_authorize: dict[str, float] = {}  # IdP host -> time of the latest authorize there
        self.redirect_targets: OrderedDict[str, None] = OrderedDict()  # URLs an IdP redirected to
        self.keys: dict[str, Any] = {}  # kid -> PyJWK
        self.pending: OrderedDict[str, tuple[str, dict]] = OrderedDict()  # fp -> (raw jwt, header)
        self.signature_updates: dict[str, str] = {}
        self.decoded: OrderedDict[str, Any] = OrderedDict()  # fp -> (header, claims) | None
        self.verified: dict[str, str] = {}  # fp -> verified | failed

    def take_signature_updates(self) -> dict[str, str]:
        out, self.signature_updates = self.signature_updates, {}
        return out

    # -- signatures -------------------------------------------------------------------------
    def signature(self, raw: str, header: dict, fp: str) -> str:
        alg = str(header.get("alg", "")).lower()
        if alg in ("", "none"):
            return "none"
        if fp in self.verified:
            return self.verified[fp]
        kid = header.get("kid")
        key = self.keys.get(kid) if isinstance(kid, str) and kid else None
        if key is None and not header.get("kid") and len(self.keys) == 1:
            key = next(iter(self.keys.values()))
        if key is None:
            self.pending[fp] = (raw, header)
            if len(self.pending) > 2000:
                self.pending.popitem(last=False)
            return "unknown"
        self.verified[fp] = _verify(raw, key, header)
        return self.verified[fp]

    def learn_jwks(self, doc: Any) -> None:
        if not isinstance(doc, dict) or not isinstance(doc.get("keys"), list):
            return
        for k in doc["keys"]:
            if not isinstance(k, dict):
                continue
            try:
                pk = jwt.PyJWK.from_dict(k)
            except Exception:  # an unusable key: skip it, keep the others
                continue
            kid = k.get("kid")
            self.keys[kid if isinstance(kid, str) and kid else f"_{len(self.keys)}"] = pk
        for fp, (raw, header) in list(self.pending.items()):
            kid = header.get("kid")
            key = self.keys.get(kid) if isinstance(kid, str) else None
            if key is not None:
                self.signature_updates[fp] = self.verified[fp] = _verify(raw, key, header)
                del self.pending[fp]

    def learn_discovery(self, doc: Any, host: str) -> None:
        if not isinstance(doc, dict):
            return
        for role, field in (("authorize", "authorization_endpoint"), ("token", "token_endpoint"),
                            ("jwks", "jwks_uri"), ("userinfo", "userinfo_endpoint"),
                            ("logout", "end_session_endpoint"), ("device", "device_authorization_endpoint"),
                            ("par", "pushed_authorization_request_endpoint")):
            url = doc.get(field)
            if isinstance(url, str):
                self.endpoints[role].add(_bare(url))
                h = _split(url).hostname
                if h and role in ("authorize", "device", "logout"):
                    self.idp_hosts.add(h.lower())
        self.idp_hosts.add(host)

    def endpoint_role(self, bare_url: str) -> str | None:
        for role, urls in self.endpoints.items():
            if bare_url in urls:
                return role
        return None


def _verify(raw: str, key: Any, header: dict) -> str:
    """The signature over `header.payload` checked with the algorithm the header names (PyJWT's
    algorithm objects; the token was already parsed, so it is not parsed again)."""
    if header.get("nonce") and header.get("typ") == "JWT" and "graph" in str(header.get("x5t", "")).lower():
        return "unknown"
    try:
        signing_input, _, sig = raw.rpartition(".")
        algo = jwt.get_algorithm_by_name(str(header.get("alg")))
        signature = base64.urlsafe_b64decode(sig + "=" * (-len(sig) % 4))
        return "verified" if algo.verify(signing_input.encode(), key.key, signature) else "failed"
    except Exception:  # unknown algorithm, key of the wrong type, bad base64
        return "failed"


def _stored_state(state: str | None, fpr: Fingerprinter) -> str | None:
    """The state as stored: itself (it is what checks compare), or a fingerprint when it is a signed
    JWT, which no database or report may hold raw; equal states keep equal values either way."""
    return fpr.fp(state, "state") if state and JWT_RE.fullmatch(state) else state


def _split(url: str) -> SplitResult:
    """urlsplit that never raises: a malformed Location, Referer or endpoint must not lose the hop."""
    try:
        return urlsplit(url or "")
    except ValueError:
        return urlsplit("")


def _bare(url: str) -> str:
    """scheme://host[:port]/path, lower-cased host, no query or fragment: for endpoint matching."""
    try:
        p = urlsplit(url)
        return f"{p.scheme}://{(p.netloc or '').lower()}{p.path.rstrip('/')}"
    except ValueError:
        return url


def _pairs(qs: str) -> list[tuple[str, str]]:
    try:
        return parse_qsl(qs, keep_blank_values=True)
    except ValueError:
        return []


def _lower_keys(pairs: list[tuple[str, str]]) -> dict[str, str]:
    out: dict[str, str] = {}
    for k, v in pairs:
        out.setdefault(k.lower(), v)
    return out


def might_be_auth(url: str, host: str, has_auth_header: bool, body_head: bytes, location: str, ctx: Context) -> bool:
    """The cheap pre-filter: a few substring checks. False means: certainly not a hop."""
    if has_auth_header:
        return True
    low = url.lower()
    if any(m in low for m in URL_MARKERS):
        return True
    if body_head and any(m in body_head for m in BODY_MARKERS):
        return True
    if location and any(m in location for m in LOCATION_MARKERS):
        return True
    return host in ctx.idp_hosts or host in ctx.open_authorize


def _body_text(msg: http.Message) -> str:
    """At most MAX_BODY bytes of the decoded body. Compressed bodies are inflated only up to that
    limit, so a small gzip bomb cannot make the proxy allocate its inflated size."""
    raw = msg.raw_content or b""
    enc = msg.headers.get("content-encoding", "").strip().lower()
    try:
        if enc in ("", "identity", "none"):
            out = raw
        elif enc in ("gzip", "x-gzip"):
            out = zlib.decompressobj(47).decompress(raw, MAX_BODY)
        elif enc == "deflate":  # zlib-wrapped as the RFC says, or raw as some servers send it
            try:
                out = zlib.decompressobj(15).decompress(raw, MAX_BODY)
            except zlib.error:
                out = zlib.decompressobj(-15).decompress(raw, MAX_BODY)
        elif enc == "zstd":
            import zstandard

            out = zstandard.ZstdDecompressor().stream_reader(raw).read(MAX_BODY)
        elif len(raw) <= MAX_BODY // 16:  # brotli has no output cap here: only small bodies
            out = msg.get_content(strict=False) or b""
        else:
            out = b""
    except Exception:  # a lying Content-Encoding: fall back to the bytes as sent
        out = raw
    return out[:MAX_BODY].decode("utf-8", "replace")


def _json_body(text: str) -> Any:
    s = text.lstrip()
    if not s.startswith(("{", "[")):
        return None
    try:
        return json.loads(s)
    except ValueError:
        return None


class _Msg:
    """A request or response whose headers are one plain dict (lower-case names, first value wins):
    a hop reads ~60 headers, and each mitmproxy Headers lookup scans and lower-cases every name."""

    __slots__ = ("_m", "headers")

    def __init__(self, m: http.Message):
        self._m = m
        h: dict[str, str] = {}
        for k, v in m.headers.fields:
            h.setdefault(k.decode("latin-1").lower(), v.decode("utf-8", "surrogateescape"))
        self.headers = h

    def __getattr__(self, name: str) -> Any:
        return getattr(self._m, name)


def flow_to_hops(flow: http.HTTPFlow, ctx: Context) -> list[NewHop]:
    req = flow.request
    resp = flow.response
    try:
        host = (req.pretty_host or "").lower()
        url = req.pretty_url
    except Exception:
        return []
    auth = req.headers.get("authorization", "")
    location = resp.headers.get("location", "") if resp is not None else ""
    body_head = (req.raw_content or b"")[:8192] if req.method not in ("GET", "HEAD") else b""
    if not might_be_auth(url, host, bool(auth), body_head, location, ctx):
        return []
    hops = _classify(flow, _Msg(req), _Msg(resp) if resp is not None else None, ctx, host, url, auth, location)
    for h in hops:
        _scrub(h.hop)
    return hops


def _scrub(hop: dict) -> None:
    """Undecodable bytes in a header or URL arrive as lone surrogates, which a database refuses
    (and with it the whole batch). Replace them, as a browser would display them."""
    for k, v in hop.items():
        if isinstance(v, str) and not v.isascii():
            hop[k] = v.encode("utf-16", "surrogatepass").decode("utf-16", "replace")


def _classify(flow: http.HTTPFlow, req: _Msg, resp: _Msg | None, ctx: Context, host: str, url: str, auth: str,
              location: str) -> list[NewHop]:
    fpr = ctx.fpr
    parts = urlsplit(url)
    path = parts.path or "/"
    bare = f"{parts.scheme}://{parts.netloc.lower()}{path.rstrip('/')}"
    query = _pairs(parts.query)
    form: list[tuple[str, str]] = []
    jbody: Any = None
    ctype = req.headers.get("content-type", "").lower()
    if req.method not in ("GET", "HEAD") and req.raw_content:
        text = _body_text(req)
        if "application/x-www-form-urlencoded" in ctype or (not ctype and "=" in text[:200] and "{" not in text[:1]):
            form = _pairs(text)
        elif "json" in ctype or text.lstrip().startswith("{"):
            jbody = _json_body(text)
            if isinstance(jbody, dict):
                form_like = [(k, v) for k, v in jbody.items() if isinstance(v, str)]
                form = form_like
    q, f = _lower_keys(query), _lower_keys(form)
    p = {**f, **q}  # every request parameter, lower-case names; query wins as servers read it first
    status = resp.status_code if resp is not None else None
    resp_text = ""
    resp_json: Any = None
    if resp is not None and resp.raw_content:
        rtype = resp.headers.get("content-type", "").lower()
        if any(t in rtype for t in ("json", "text", "html", "x-www-form-urlencoded", "javascript")) or not rtype:
            resp_text = _body_text(resp)
            resp_json = _json_body(resp_text) if ("json" in rtype or resp_text[:1] in "{[") else None
            if resp_json is None and "x-www-form-urlencoded" in rtype:  # GitHub-style token answers
                resp_json = dict(_pairs(resp_text))
    loc_q: dict[str, str] = {}
    loc_frag: dict[str, str] = {}
    if location:
        lp = _split(location)
        loc_q, loc_frag = _lower_keys(_pairs(lp.query)), _lower_keys(_pairs(lp.fragment))

    role = _role(ctx, req.method, host, path, bare, p, q, f, auth, resp_json, location, req)
    if role is None:
        return []

    ctx.seq += 1
    tokens: list[dict] = []
    params: dict[str, dict] = {}
    if query:
        params["query"] = fpr.params(query)
    if form:
        params["json" if jbody is not None else "form"] = fpr.params(form)
    verifier = f.get("code_verifier") or q.get("code_verifier")
    if verifier:
        params.setdefault("derived", {})["code_verifier_s256"] = s256(verifier)
    for src in (q, f):
        for k in TOKEN_KINDS:
            v = src.get(k)
            if v and JWT_RE.fullmatch(v):
                tokens.append(_token(ctx, v, f"{'query' if src is q else 'form'}.{k}", k))
    if auth:
        scheme, _, cred = auth.strip().partition(" ")
        if scheme.lower() in ("bearer", "dpop") and cred:
            tokens.append(_token(ctx, cred.strip(), "request.authorization", "access_token"))
        elif scheme.lower() == "basic" and cred:
            try:
                user = base64.b64decode(cred.strip() + "==").decode("utf-8", "replace").split(":", 1)[0]
                params.setdefault("derived", {})["basic_client_id"] = fpr.text(user)
            except ValueError:
                pass
    dpop = req.headers.get("dpop")
    if dpop and JWT_RE.fullmatch(dpop.strip()):
        tokens.append(_token(ctx, dpop.strip(), "request.dpop", "dpop_proof"))

    response: dict[str, Any] = {}
    error: dict | None = None
    if isinstance(resp_json, dict):
        if role in ("token", "device") or (role == "authorize" and req.method == "POST"):
            for k in ("access_token", "id_token", "refresh_token", "token", "issued_token_type"):
                v = resp_json.get(k)
                if isinstance(v, str) and v:
                    if JWT_RE.fullmatch(v) or k != "issued_token_type":
                        tokens.append(_token(ctx, v, f"response.{k}", "access_token" if k == "token" else k))
            response["fields"] = {k: fpr.value(k, str(v)) if isinstance(v, str) else v
                                  for k, v in resp_json.items()
                                  if not isinstance(v, (dict, list)) or k in ("scope", "error_codes")}
        error = error_fields(resp_json, fpr)
        if role == "discovery":
            ctx.learn_discovery(resp_json, host)
            response["issuer"] = resp_json.get("issuer")
        elif role == "jwks":
            ctx.learn_jwks(resp_json)
            response["kids"] = [k.get("kid") for k in resp_json.get("keys", []) if isinstance(k, dict)][:50]
    if location:
        response["location"] = fpr.url(location)
    if error is None and role in ("callback", "error", "authorize", "login", "logout") and p.get("error"):
        error = error_fields({k: v for k, v in p.items()}, fpr)
    for loc in (loc_q, loc_frag):
        if error is None and loc.get("error"):
            error = error_fields(loc, fpr)
    if error is None and resp_text and status and status >= 400:
        error = text_error(resp_text, fpr) or {"message": message(resp_text, fpr)} if resp_text.strip() else None
    elif error is None and resp_text and role in ("authorize", "login", "error", "callback") and "AADSTS" in resp_text:
        error = text_error(resp_text, fpr)
    wa = www_authenticate(resp.headers.get("www-authenticate") if resp is not None else None, fpr)
    if wa:
        response["www_authenticate"] = wa
        if error is None and wa.get("error"):
            error = {k: wa[k] for k in ("error", "error_description", "error_uri", "scope", "resource", "resource_id",
                                        "authorization_uri") if k in wa}
    if flow.error is not None and status is None:
        error = {"error": "no_response", "error_description": fpr.text(flow.error.msg or "connection failed")}

    # what the IdP sent back through the browser: codes issued, tokens in the fragment
    issued_code = None
    if loc_q.get("code") or loc_frag.get("code"):
        issued_code = fpr.fp(loc_q.get("code") or loc_frag.get("code"), "code")
        response["issued_code"] = issued_code
    if issued_code is None and role in ("authorize", "login") and 'name="code"' in resp_text:
        m = _HIDDEN_CODE.search(resp_text)  # a form_post page hands the code to the browser
        if m:
            issued_code = fpr.fp(m.group(1) or m.group(2), "code")
            response["issued_code"] = issued_code
            response["form_post"] = True
    for k in ("id_token", "access_token"):
        v = loc_frag.get(k) or loc_q.get(k)
        if v and role != "callback":
            response.setdefault("issued_tokens", []).append(fpr.value(k, v))
    if loc_q or loc_frag:
        ctx.redirect_targets[_bare(location)] = None
        if len(ctx.redirect_targets) > 200:
            ctx.redirect_targets.popitem(last=False)

    state = p.get("state") if role in ("authorize", "callback", "error") else None
    code = p.get("code") if role in ("callback", "token") else None
    if role == "token" and f.get("grant_type") not in (None, "authorization_code"):
        code = None
    hop = {
        "seq": ctx.seq,
        "started": req.timestamp_start or time.time(),
        "duration_ms": _duration(flow),
        "role": role,
        "method": req.method,
        "url": fpr.url(url),
        "host": host,
        "path": fpr.text(path),
        "status": status,
        "is_error": bool(error) or status is None or (status is not None and status >= 400 and role != "api")
                    or (role == "api" and status in (401, 403)),
        "actor": _actor(req, role),
        "user_agent": req.headers.get("user-agent"),
        "code_fp": fpr.fp(code, "code") if code else issued_code,
        "state": _stored_state(state, fpr),
        "nonce": p.get("nonce") if role == "authorize" else None,
        "client_id": p.get("client_id") or params.get("derived", {}).get("basic_client_id"),
        "initiator": _initiator(req, fpr),
        "params": params or None,
        "response": response or None,
        "state_decoded": decode_state(state, fpr) if state else None,
        "error": error,
        "headers": _headers(req, resp, fpr),
        "cookies": _cookies(req, resp, fpr),
        "body_excerpt": fpr.text(resp_text[:2000]) if resp_text and status and status >= 400 else None,
        "note": None,
    }
    out = [NewHop(hop, tokens)]
    if role in ("callback", "authorize", "login"):
        for o in ctx.open_authorize.copy():
            if role == "callback":
                del ctx.open_authorize[o]
    if role == "authorize":
        ctx.open_authorize[host] = hop["started"]
        ctx.idp_hosts.add(host)
        if p.get("redirect_uri"):
            ctx.redirect_uris.add(_bare(p["redirect_uri"]))
    # a redirect whose fragment carries the answer: the callback the browser makes shows nothing
    if role != "callback" and any(k in loc_frag for k in CALLBACK_KEYS):
        out.append(_fragment_callback(ctx, hop, location, loc_frag, flow))
    return out


def _fragment_callback(ctx: Context, parent: dict, location: str, frag: dict, flow: http.HTTPFlow) -> NewHop:
    fpr = ctx.fpr
    lp = _split(location)
    ctx.seq += 1
    tokens = [_token(ctx, frag[k], f"fragment.{k}", k) for k in ("id_token", "access_token")
              if frag.get(k) and JWT_RE.fullmatch(frag[k])]
    error = error_fields(frag, fpr) if frag.get("error") else None
    hop = dict(parent, seq=ctx.seq, role="callback", method="GET", url=fpr.url(location),
               host=(lp.hostname or "").lower(), path=fpr.text(lp.path or "/"), status=None,
               is_error=bool(error), actor="browser", duration_ms=None,
               started=(flow.response.timestamp_end or parent["started"]) if flow.response else parent["started"],
               code_fp=fpr.fp(frag["code"], "code") if frag.get("code") else None,
               state=_stored_state(frag.get("state"), fpr), nonce=None, client_id=None,
               params={"fragment": fpr.params(list(frag.items()))}, response=None,
               state_decoded=decode_state(frag.get("state"), fpr), error=error, headers=None,
               cookies=None, body_excerpt=None,
               note=f"delivered in the fragment of the Location header of hop #{parent['seq']}; "
                    "browsers never send fragments, so this is the callback as the page received it")
    return NewHop(hop, tokens)


def _role(ctx: Context, method: str, host: str, path: str, bare: str, p: dict, q: dict, f: dict,
          auth: str, resp_json: Any, location: str, req: http.Request) -> str | None:
    known = ctx.endpoint_role(bare)
    if pv.DISCOVERY_RE.search(path):
        return "discovery"
    if known == "jwks" or (pv.JWKS_RE.search(path) and (resp_json is None or isinstance(resp_json, dict)
                                                          and isinstance(resp_json.get("keys"), list))):
        if isinstance(resp_json, dict) and isinstance(resp_json.get("keys"), list) or known == "jwks":
            return "jwks"
    if method == "POST" and f.get("grant_type"):
        return "token"
    if known == "token" and method == "POST":
        return "token"
    if pv.token_service(host, path):
        return "token"
    if pv.redirect_handler(host, path):
        return "callback"
    has_client = bool(p.get("client_id"))
    if has_client and (p.get("response_type") or p.get("request_uri") or p.get("request")):
        return "authorize"
    if known == "par" and method == "POST":
        return "authorize"
    if (known == "device" or pv.DEVICE_RE.search(path)) and method == "POST" and has_client:
        return "device"
    if known == "logout" or (pv.LOGOUT_RE.search(path) and (p.get("post_logout_redirect_uri") or
                                                          p.get("id_token_hint") or has_client
                                                          or host in ctx.idp_hosts)):
        return "logout"
    if (p.get("samlresponse") or p.get("wresult")) and (host in ctx.open_authorize or pv.provider_of(host, path)):
        return "login"  # federation: another IdP answering the IdP, the OAuth sign-in is still under way
    if any(k in p for k in CALLBACK_KEYS) and _looks_like_callback(ctx, host, path, bare, p, req):
        return "callback"
    if auth[:7].lower() in ("bearer ", "dpop ") or auth[:5].lower() == "dpop ":
        if known == "userinfo" or pv.USERINFO_RE.search(path):
            return "userinfo"
        return "api"
    if pv.STATIC_RE.search(path):
        return None
    idp = host in ctx.open_authorize
    if idp and _is_navigation(req, method):
        if p.get("error") or (isinstance(resp_json, dict) and resp_json.get("error")):
            return "error"
        return "login"
    return None


def _looks_like_callback(ctx: Context, host: str, path: str, bare: str, p: dict, req: http.Request) -> bool:
    """A code/state pair alone is common outside OAuth (`?code=SAVE10&state=CA`); require evidence
    that this URL is a redirect URI: named as one in an authorize request, reached by an IdP's
    redirect or form_post, or carrying parameters only OAuth uses. Path words count only when the
    capture holds no authorize request to compare with (recording started mid-sign-in)."""
    if bare in ctx.redirect_uris or bare in ctx.redirect_targets:
        return True
    referer = req.headers.get("referer", "") or req.headers.get("origin", "")
    ref_host = (_split(referer).hostname or "").lower() if referer else ""
    if ref_host and ref_host != host and (ref_host in ctx.idp_hosts or pv.provider_of(ref_host)):
        return True
    if ctx.redirect_uris:
        return False
    if p.get("id_token") or (p.get("access_token") and p.get("token_type")):
        return True
    if any(k in p for k in ("session_state", "client_info", "iss")) and ("code" in p or "error" in p):
        return True
    if p.get("error") and (p.get("error_description") or p.get("state")) and "client_id" not in p:
        return True
    return bool(p.get("code") and p.get("state") and pv.CALLBACK_PATH_RE.search(path))


def _is_navigation(req: http.Request, method: str) -> bool:
    mode = req.headers.get("sec-fetch-mode")
    if mode is not None:
        return mode == "navigate" or req.headers.get("sec-fetch-dest") in ("document", "iframe")
    if method == "POST":
        return "x-www-form-urlencoded" in req.headers.get("content-type", "")
    return "text/html" in req.headers.get("accept", "")


def _token(ctx: Context, raw: str, where: str, kind: str) -> dict:
    fp = ctx.fpr.fp(raw, kind)
    decoded = ctx.decoded.get(fp, False)
    if decoded is False:  # bearer tokens repeat on every API call: decode each once per session
        decoded = decode_jwt(raw) if JWT_RE.fullmatch(raw) else None
        if decoded is not None:
            header, claims = decoded
            claims = {k: (ctx.fpr.text(v) if isinstance(v, str) and JWT_RE.search(v) else v) for k, v in claims.items()}
            decoded = (header, claims)
        ctx.decoded[fp] = decoded
        if len(ctx.decoded) > 4096:
            ctx.decoded.popitem(last=False)
    if decoded is None:
        return {"where": where, "kind": kind, "fingerprint": fp, "format": "opaque", "header": None,
                "claims": None, "signature": "unknown"}
    header, claims = decoded
    return {"where": where, "kind": kind, "fingerprint": fp, "format": "jwt", "header": header,
            "claims": claims, "signature": ctx.signature(raw, header, fp)}


def _duration(flow: http.HTTPFlow) -> float | None:
    start = flow.request.timestamp_start
    end = None
    if flow.response is not None:
        end = flow.response.timestamp_end or flow.response.timestamp_start
    if start and end:
        return round((end - start) * 1000, 1)
    return None


def _actor(req: http.Request, role: str) -> str:
    ua = req.headers.get("user-agent", "")
    if "sec-fetch-mode" in req.headers or "sec-fetch-site" in req.headers or ua.startswith("Mozilla/"):
        return "browser"
    return "api-client" if role == "api" else "app"


def _initiator(req: http.Request, fpr: Fingerprinter) -> dict | None:
    h = req.headers
    out = {k[len("sec-fetch-"):] if k.startswith("sec-fetch-") else k: h[k]
           for k in ("sec-fetch-site", "sec-fetch-mode", "sec-fetch-dest", "sec-fetch-user", "origin") if k in h}
    if "referer" in h:
        out["referer"] = fpr.url(h["referer"])
    return out or None


def _headers(req: http.Request, resp: http.Response | None, fpr: Fingerprinter) -> dict:
    out = {"request": {k: fpr.text(req.headers[k][:500]) for k in REQ_HEADERS if k in req.headers}}
    if resp is not None:
        out["response"] = {k: fpr.text(resp.headers[k][:1000]) for k in RESP_HEADERS if k in resp.headers}
    return out


def _cookies(req: http.Request, resp: http.Response | None, fpr: Fingerprinter) -> dict | None:
    out: dict[str, Any] = {}
    try:
        sent = {k: fpr.fp(v, "cookie") for k, v in req.cookies.items(multi=True)}
    except Exception:
        sent = {}
    if sent:
        out["sent"] = sent
    if resp is not None:
        try:
            names = [k for k, _ in resp.cookies.items(multi=True)]
        except Exception:
            names = []
        if names:
            out["set"] = names
    return out or None
