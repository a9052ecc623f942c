"""flow -> hops: the one path that live capture and every import take.

`flow_to_hops(flow, ctx)` returns [] for ordinary traffic after a few string checks (`roles.might_be_auth`);
for a sign-in exchange it returns one `Hop` (sometimes two: a redirect that carries `code`/tokens in
the fragment of its Location becomes a callback hop of its own, because browsers never send
fragments and the callback request alone would show nothing). `exchange_to_hops` does the same for
an `Exchange` filled from any source. Each step is a small function: parse the request, decide the
role, collect tokens, decode the answer, read the error, build the hop, and tell the context what
was learnt.
"""
from __future__ import annotations

import base64
import binascii
import re
from dataclasses import dataclass, field
from typing import Any

from mitmproxy import http

from authtrace.addons import saml
from authtrace.addons.context import CaptureContext, split
from authtrace.addons.decode import (
    decode_jwt,
    decode_state,
    error_fields,
    message,
    page_error,
    problem_details,
    saml_status_error,
    text_error,
    www_authenticate,
)
from authtrace.addons.message import Exchange, from_flow, json_body, lower_keys, pairs
from authtrace.addons.roles import CALLBACK_KEYS, Request, might_be_auth, role_of, saml_role
from authtrace.addons.secrets import JWT_RE, PASSWORD_NAMES, SECRET_NAMES, Fingerprinter, s256
from authtrace.store.records import Actor, Answer, ErrorAnswer, Hop, Initiator, Params, Role, Token
from authtrace.store.saml import SamlMessage, SamlStatus, status_name

_HIDDEN_CODE = re.compile(r'name="code"\s+value="([^"]+)"|value="([^"]+)"\s+name="code"')
REQ_HEADERS = ("origin", "content-type", "accept", "x-requested-with", "client-request-id",
               "x-client-sku", "x-client-ver", "x-ms-client-request-id", "traceparent", "dpop",
               "x-ms-correlation-id", "purpose", "sec-purpose", "x-purpose", "x-moz")  # the last: prefetches
RESP_HEADERS = ("content-type", "www-authenticate", "date", "cache-control", "x-ms-request-id",
                "x-ms-ests-server", "client-request-id", "request-id", "apim-request-id",
                "x-request-id", "x-correlation-id", "x-ms-correlation-request-id", "content-length")
TOKEN_KINDS = ("access_token", "id_token", "refresh_token", "client_assertion", "assertion",
               "subject_token", "actor_token", "id_token_hint", "logout_token", "token", "request",
               "login_hint")
ANSWER_TOKENS = ("access_token", "id_token", "refresh_token", "token", "issued_token_type")
FRAGMENT_NOTE = ("delivered in the fragment of the Location header of the hop before it; browsers never "
                 "send fragments, so this is the callback as the page received it")


def flow_to_hops(flow: http.HTTPFlow, ctx: CaptureContext) -> list[Hop]:
    req = flow.request
    try:
        host = (req.pretty_host or "").lower()
        url = req.pretty_url
    except (ValueError, UnicodeError):
        return []
    if req.method == "OPTIONS":  # a CORS preflight is no hop; what it announces belongs to the request after it
        ctx.saw_preflight(url, req.headers.get("access-control-request-headers", ""))
        return []
    auth = req.headers.get("authorization", "")
    resp = flow.response
    location = resp.headers.get("location", "") if resp is not None else ""
    challenge = resp is not None and "www-authenticate" in resp.headers
    body_head = (req.raw_content or b"")[:8192] if req.method not in ("GET", "HEAD") else b""
    if not might_be_auth(url, host, bool(auth), body_head, location, ctx, challenge):
        return []
    return exchange_to_hops(from_flow(flow), ctx)


@dataclass(slots=True)
class _Parsed:
    """A request's parameters: as sent (for storage) and by lower-case name (for the rules)."""

    path: str
    query: list[tuple[str, str]]
    form: list[tuple[str, str]]
    is_json: bool
    q: dict[str, str] = field(default_factory=dict)
    f: dict[str, str] = field(default_factory=dict)
    p: dict[str, str] = field(default_factory=dict)


def _parse(ex: Exchange) -> _Parsed:
    parts = split(ex.url)
    form: list[tuple[str, str]] = []
    is_json = False
    ctype = ex.request_headers.get("content-type", "").lower()
    text = ex.request_text
    if text:
        if "application/x-www-form-urlencoded" in ctype or (not ctype and "=" in text[:200] and text[:1] != "{"):
            form = pairs(text)
        elif "json" in ctype or text.lstrip().startswith("{"):
            body = json_body(text)
            if isinstance(body, dict):
                is_json = True
                form = [(k, v) for k, v in body.items() if isinstance(v, str)]
    out = _Parsed(parts.path or "/", pairs(parts.query), form, is_json)
    out.q, out.f = lower_keys(out.query), lower_keys(out.form)
    out.p = {**out.f, **out.q}  # every request parameter; query wins, as servers read it first
    return out


def _answer_json(ex: Exchange) -> Any:
    text = ex.response_text
    if not text:
        return None
    rtype = ex.response_headers.get("content-type", "").lower()
    out = json_body(text) if ("json" in rtype or text[:1] in "{[") else None
    if out is None and "x-www-form-urlencoded" in rtype:  # GitHub-style token answers
        out = dict(pairs(text))
    return out


def exchange_to_hops(ex: Exchange, ctx: CaptureContext) -> list[Hop]:
    fpr = ctx.fpr
    if ex.method == "OPTIONS":  # a CORS preflight is no hop; what it announces belongs to the request after it
        ctx.saw_preflight(ex.url, ex.request_headers.get("access-control-request-headers", ""))
        return []
    parsed = _parse(ex)
    parts = split(ex.url)
    auth = ex.request_headers.get("authorization", "")
    answer_json = _answer_json(ex)
    challenge = www_authenticate(ex.response_headers.get("www-authenticate"), fpr)
    rule_input = Request(method=ex.method, host=ex.host, path=parsed.path,
                         bare=f"{parts.scheme}://{parts.netloc.lower()}{parsed.path.rstrip('/')}",
                         params=parsed.p, form=parsed.f, authorization=auth, headers=ex.request_headers,
                         challenge=challenge, body=ex.request_text[:4096], url=ex.url)
    role = role_of(rule_input, answer_json, ctx)
    saml_msg = _saml_request(ex, parsed, ctx)
    saml_answer = _saml_soap(ex.response_text, ctx) if saml_msg is not None and saml_msg.param == "soap" else None
    metadata = _saml_metadata(ex) if saml_msg is None else None
    if saml_msg is not None:
        role = saml_role(saml_msg.kind, saml_msg.param, parsed.path, role)
    elif metadata is not None:
        role = Role.DISCOVERY
        ctx.saml.learn(metadata)
    if role is None:
        return []
    location = ex.response_headers.get("location", "")
    lp = split(location) if location else None
    loc_q = lower_keys(pairs(lp.query)) if lp else {}
    loc_frag = lower_keys(pairs(lp.fragment)) if lp else {}

    params = _params(parsed, auth, fpr)
    params.saml = saml_msg
    tokens = _request_tokens(parsed, auth, ex, ctx)
    answer = _answer(role, ex, answer_json, ctx, tokens, challenge)
    answer.saml = saml_answer
    if metadata is not None:
        answer.issuer, answer.fields = metadata.entity_id, _metadata_fields(metadata, fpr)
    if location:
        answer.location = fpr.url(location)
    _issued(role, ex, loc_q, loc_frag, answer, fpr)
    error = _error(role, ex, parsed.p, answer_json, answer, loc_q, loc_frag, fpr)
    failed = _failed_status(saml_msg) or _failed_status(saml_answer)
    if failed is not None:  # the identity provider's own answer: more specific than what the receiver said
        error = saml_status_error(tuple(status_name(c) for c in (failed.code or "", *failed.subcodes) if c),
                                  failed.message, fpr)
    if loc_q or loc_frag:
        ctx.saw_redirect_to(location)

    p = parsed.p
    state = p.get("state") if role in (Role.AUTHORIZE, Role.CALLBACK, Role.ERROR) else None
    code = p.get("code") if role in (Role.CALLBACK, Role.TOKEN) else None
    if role == Role.TOKEN and parsed.f.get("grant_type") not in (None, "authorization_code"):
        code = None
    status = ex.status
    hop = Hop(
        started=ex.started, duration_ms=ex.duration_ms, role=role, method=ex.method, url=fpr.url(ex.url),
        host=ex.host, path=fpr.text(parsed.path), status=status,
        is_error=(error is not None or status is None or (status >= 400 and role != Role.API)
                  or (role == Role.API and status in (401, 403))),
        actor=_actor(ex, role), user_agent=ex.request_headers.get("user-agent"),
        code_fp=fpr.fp(code, "code") if code else answer.issued_code,
        state=_stored_state(state, fpr), nonce=p.get("nonce") if role == Role.AUTHORIZE else None,
        client_id=p.get("client_id") or params.derived.get("basic_client_id")
        or (fpr.text(saml_msg.issuer) if saml_msg is not None and saml_msg.kind == "AuthnRequest" and saml_msg.issuer
            else None),
        initiator=_initiator(ex, fpr, ctx.preflighted.get(ex.url, ())), params=params, answer=answer,
        state_info=decode_state(state, fpr) if state else None, error=error,
        request_headers={k: fpr.text(ex.request_headers[k][:500]) for k in REQ_HEADERS if k in ex.request_headers},
        response_headers={k: fpr.text(ex.response_headers[k][:1000]) for k in RESP_HEADERS
                          if k in ex.response_headers},
        cookies_sent={k: fpr.fp(v, "cookie") for k, v in ex.cookies_sent()},
        cookies_set=tuple(ex.set_cookie_names),
        body_excerpt=fpr.text(ex.response_text[:2000]) if ex.response_text and status and status >= 400 else None,
        tokens=tokens,
    )
    if role == Role.CALLBACK:
        ctx.saw_callback()
    elif role == Role.AUTHORIZE:
        ctx.saw_authorize(ex.host, hop.started, p.get("redirect_uri"))
    if role in (Role.AUTHORIZE, Role.LOGIN) and ex.method in ("GET", "POST"):
        ctx.saw_step(ex.url, ex.host, location)
    out = [hop]
    # a redirect whose fragment carries the answer: the callback the browser makes shows nothing
    if role != Role.CALLBACK and lp is not None and any(k in loc_frag for k in CALLBACK_KEYS):
        out.append(_fragment_callback(ctx, hop, ex, location, loc_frag))
    for h in out:
        _scrub(h)
    return out


SAML_PARAMS = ("samlrequest", "samlresponse", "samlart")
SAML_XML = "urn:oasis:names:tc:SAML:2.0:protocol"


def _saml_request(ex: Exchange, parsed: _Parsed, ctx: CaptureContext) -> SamlMessage | None:
    """The SAML message a request carries: HTTP-Redirect (query), HTTP-POST (form), the artifact binding
    (SAMLart in either), or a SOAP body of the back channel. Decoded safely (`addons/saml.py`); its
    signatures checked with what the capture knows of its issuer."""
    if any(k in parsed.q for k in SAML_PARAMS):
        return ctx.saml.decode(dict(parsed.query), "redirect", split(ex.url).query)
    if not parsed.is_json and any(k in parsed.f for k in SAML_PARAMS):
        return ctx.saml.decode(dict(parsed.form), "post", None)
    if ex.method == "POST" and "xml" in ex.request_headers.get("content-type", "").lower():
        return _saml_soap(ex.request_text, ctx)
    return None


def _saml_soap(text: str, ctx: CaptureContext) -> SamlMessage | None:
    head = text[:4096].lstrip("\ufeff \t\r\n")
    if not head.startswith("<") or SAML_XML not in text[:65536]:
        return None
    return ctx.saml.decode_soap(text.encode("utf-8", "replace"))


def _saml_metadata(ex: Exchange) -> saml.SamlMetadata | None:
    """A SAML metadata document answered (an IdP's or an SP's EntityDescriptor): it teaches the capture
    the entity's signing certificates, as a JWKS does for JWTs."""
    text = ex.response_text
    if ex.method != "GET" or not text or not ex.status or ex.status >= 400:
        return None
    head = text[:4096]
    if "EntityDescriptor" not in head or "urn:oasis:names:tc:SAML:2.0:metadata" not in head:
        return None
    meta = saml.decode_metadata(text.encode("utf-8", "replace"))
    return meta if meta.entity_id else None


def _metadata_fields(meta: saml.SamlMetadata, fpr: Fingerprinter) -> dict[str, Any]:
    """What a metadata document says, as the fields of its hop's answer (certificates by SHA-256)."""
    def thumbs(pems: tuple[str, ...]) -> str:
        return ", ".join(f"sha256 {saml.thumbprint(c)}" for p in pems[:10] if (c := saml.load_cert(p)) is not None)

    def where(endpoints: tuple[saml.SamlEndpoint, ...]) -> str:
        return ", ".join(f"{fpr.url(e.location or '')} ({(e.binding or '').rsplit(':', 1)[-1]})"
                         for e in endpoints[:10] if e.location)

    fields = {"entityID": fpr.text(meta.entity_id or ""), "IdP signing certificates": thumbs(meta.idp_signing_certs),
              "SP signing certificates": thumbs(meta.sp_signing_certs), "SingleSignOnService": where(meta.sso_services),
              "SingleLogoutService": where(meta.slo_services),
              "AssertionConsumerService": where(meta.acs_services)}
    return {k: v for k, v in fields.items() if v}


def _failed_status(msg: SamlMessage | None) -> SamlStatus | None:
    """The Status of the message (or of the message an ArtifactResponse carries) that is not Success."""
    if msg is None:
        return None
    if msg.status is not None and msg.status.code and not msg.status.success:
        return msg.status
    return _failed_status(msg.inner)


def _params(parsed: _Parsed, auth: str, fpr: Fingerprinter) -> Params:
    params = Params(query=fpr.params(parsed.query))
    if parsed.form:
        if parsed.is_json:
            params.json = fpr.params(parsed.form)
        else:
            params.form = fpr.params(parsed.form)
    verifier = parsed.f.get("code_verifier") or parsed.q.get("code_verifier")
    if verifier:
        params.derived["code_verifier_s256"] = s256(verifier)
    scheme, _, cred = auth.strip().partition(" ")
    if scheme.lower() == "basic" and cred:
        try:
            user = base64.b64decode(cred.strip() + "==").decode("utf-8", "replace").split(":", 1)[0]
        except (binascii.Error, ValueError):
            user = ""
        if user:
            params.derived["basic_client_id"] = fpr.text(user)
    return params


def _request_tokens(parsed: _Parsed, auth: str, ex: Exchange, ctx: CaptureContext) -> list[Token]:
    tokens = []
    for src, name in ((parsed.q, "query"), (parsed.f, "json" if parsed.is_json else "form")):
        for k in TOKEN_KINDS:
            v = src.get(k)
            if v and JWT_RE.fullmatch(v):
                tokens.append(_token(ctx, v, f"{name}.{k}", k))
    scheme, _, cred = auth.strip().partition(" ")
    if scheme.lower() in ("bearer", "dpop") and cred.strip():
        tokens.append(_token(ctx, cred.strip(), "request.authorization", "access_token"))
    dpop = ex.request_headers.get("dpop", "").strip()
    if dpop and JWT_RE.fullmatch(dpop):
        tokens.append(_token(ctx, dpop, "request.dpop", "dpop_proof"))
    return tokens


def _answer(role: Role, ex: Exchange, doc: Any, ctx: CaptureContext, tokens: list[Token],
            challenge: dict[str, str]) -> Answer:
    """The decoded answer: a token answer's fields and tokens, a discovery issuer, JWKS key ids, a
    WWW-Authenticate challenge. Discovery and JWKS documents also teach the context."""
    fpr = ctx.fpr
    answer = Answer(www_authenticate=challenge)
    if not isinstance(doc, dict):
        return answer
    if role in (Role.TOKEN, Role.DEVICE, Role.ERROR) or (role == Role.AUTHORIZE and ex.method == "POST"):
        for k in ANSWER_TOKENS:
            v = doc.get(k)
            if isinstance(v, str) and v and (k != "issued_token_type" or JWT_RE.fullmatch(v)):
                tokens.append(_token(ctx, v, f"response.{k}", "access_token" if k == "token" else k))
        answer.fields = {fpr.text(str(k)[:100]): fv for k, v in list(doc.items())[:100]
                         if (fv := _field(fpr, str(k), v)) is not _SKIP}
    if role == Role.DISCOVERY:
        answer.issuer = ctx.learn_discovery(doc, ex.host)
    elif role == Role.JWKS:
        ctx.signatures.learn_jwks(doc)
        keys = doc.get("keys")
        answer.kids = tuple(str(k.get("kid"))[:200] for k in (keys if isinstance(keys, list) else [])[:50]
                            if isinstance(k, dict) and k.get("kid") is not None)
    return answer


_SKIP = object()


def _field(fpr: Fingerprinter, name: str, v: Any) -> Any:
    """One field of a token answer as stored: text redacted, a secret's value fingerprinted whatever its
    type, lists (scope, error_codes) of scalars only; anything else left out."""
    if isinstance(v, str):
        return fpr.value(name, v)
    secret = name.lower() in SECRET_NAMES or name.lower() in PASSWORD_NAMES
    if isinstance(v, (int, float, bool)) or v is None:
        return fpr.value(name, str(v)) if secret and v is not None else v
    if isinstance(v, list) and not secret and name in ("scope", "error_codes"):
        return [fpr.text(x) if isinstance(x, str) else x for x in v[:100]
                if isinstance(x, (str, int, float, bool)) or x is None]
    return _SKIP


def _issued(role: Role, ex: Exchange, loc_q: dict[str, str], loc_frag: dict[str, str], answer: Answer,
            fpr: Fingerprinter) -> None:
    """What the provider handed to the browser: a code in the Location or a form_post page, tokens."""
    code = loc_q.get("code") or loc_frag.get("code")
    if code:
        answer.issued_code = fpr.fp(code, "code")
    elif role in (Role.AUTHORIZE, Role.LOGIN) and 'name="code"' in ex.response_text:
        m = _HIDDEN_CODE.search(ex.response_text)  # a form_post page hands the code to the browser
        if m:
            answer.issued_code = fpr.fp(m.group(1) or m.group(2), "code")
            answer.form_post = True
    if role != Role.CALLBACK:
        answer.issued_tokens = tuple(fpr.value(k, v) for k in ("id_token", "access_token")
                                     for v in (loc_frag.get(k) or loc_q.get(k),) if v)


def _error(role: Role, ex: Exchange, p: dict[str, str], doc: Any, answer: Answer, loc_q: dict[str, str],
           loc_frag: dict[str, str], fpr: Fingerprinter) -> ErrorAnswer | None:
    """The error an answer carried, and where it was read (`ErrorAnswer.source`): its JSON (OAuth
    fields, an Azure envelope, RFC 7807 problem details), the request's own error parameters (an
    error redirect arriving at a callback), the Location, an error page (a provider's `$Config` or
    page text, also when answered 200), a text body, or WWW-Authenticate."""
    error = _sourced(error_fields(doc, fpr), "body")
    text, status = ex.response_text, ex.status
    if error is None and status and status >= 400 and "problem+json" in ex.response_headers.get("content-type", ""):
        error = _sourced(problem_details(doc, fpr), "body")
    if error is None and role in (Role.CALLBACK, Role.ERROR, Role.AUTHORIZE, Role.LOGIN, Role.LOGOUT) \
            and p.get("error"):
        error = _sourced(error_fields(p, fpr), "params")
    for loc in (loc_q, loc_frag):
        if error is None and loc.get("error"):
            error = _sourced(error_fields(loc, fpr), "location")
    html_page = "html" in ex.response_headers.get("content-type", "").lower() or text[:200].lstrip()[:1] == "<"
    if error is None and text and role in (Role.AUTHORIZE, Role.LOGIN, Role.ERROR, Role.LOGOUT) and html_page:
        error = page_error(text, ex.host, split(ex.url).path, fpr)  # IdP pages answer errors with 200 too
    if error is None and text.strip() and status and status >= 400:
        error = _sourced(text_error(text, fpr) or ErrorAnswer(message=message(text, fpr)), "body")
    elif error is None and text and role == Role.CALLBACK and "AADSTS" in text:
        error = _sourced(text_error(text, fpr), "body")
    wa = answer.www_authenticate
    if error is None and wa.get("error"):
        error = ErrorAnswer(error=wa["error"], error_description=wa.get("error_description", ""),
                            error_uri=wa.get("error_uri"), source="challenge",
                            extra={k: wa[k] for k in ("scope", "resource", "resource_id", "authorization_uri")
                                   if k in wa})
    if ex.transport_error is not None and status is None:
        error = ErrorAnswer(error="no_response", error_description=fpr.text(ex.transport_error), source="transport")
    return error


def _sourced(error: ErrorAnswer | None, source: str) -> ErrorAnswer | None:
    if error is not None and not error.source:
        error.source = source
    return error


def _fragment_callback(ctx: CaptureContext, parent: Hop, ex: Exchange, location: str,
                       frag: dict[str, str]) -> Hop:
    fpr = ctx.fpr
    lp = split(location)
    tokens = [_token(ctx, frag[k], f"fragment.{k}", k) for k in ("id_token", "access_token")
              if frag.get(k) and JWT_RE.fullmatch(frag[k])]
    error = _sourced(error_fields(frag, fpr), "location") if frag.get("error") else None
    return Hop(started=ex.ended or parent.started, role=Role.CALLBACK, method="GET", url=fpr.url(location),
               host=(lp.hostname or "").lower(), path=fpr.text(lp.path or "/"), status=None,
               is_error=error is not None, actor=Actor.BROWSER, user_agent=parent.user_agent,
               code_fp=fpr.fp(frag["code"], "code") if frag.get("code") else None,
               state=_stored_state(frag.get("state"), fpr), from_fragment=True, initiator=parent.initiator,
               params=Params(fragment=fpr.params(list(frag.items()))),
               state_info=decode_state(frag.get("state"), fpr), error=error, tokens=tokens)


def _token(ctx: CaptureContext, raw: str, where: str, kind: str) -> Token:
    fp = ctx.fpr.fp(raw, kind)
    if fp in ctx.decoded:  # bearer tokens repeat on every API call: decode each once per session
        decoded = ctx.decoded[fp]
    else:
        decoded = decode_jwt(raw) if JWT_RE.fullmatch(raw) else None
        if decoded is not None:
            header, claims = decoded
            claims = {k: (ctx.fpr.text(v) if isinstance(v, str) and JWT_RE.search(v) else v) for k, v in claims.items()}
            decoded = (header, claims)
        ctx.remember_decoded(fp, decoded)
    if decoded is None:
        return Token(where=where, kind=kind, fingerprint=fp)
    header, claims = decoded
    return Token(where=where, kind=kind, fingerprint=fp, format="jwt", header=header, claims=claims,
                 signature=ctx.signatures.check(raw, header, fp))


def _stored_state(state: str | None, fpr: Fingerprinter) -> str | None:
    """The state as stored: itself (it is what checks compare), or a fingerprint when it is a signed
    JWT, which no database or report may hold raw; equal states keep equal values either way."""
    return fpr.fp(state, "state") if state and JWT_RE.fullmatch(state) else state


def _actor(ex: Exchange, role: Role) -> Actor:
    h = ex.request_headers
    if "sec-fetch-mode" in h or "sec-fetch-site" in h or h.get("user-agent", "").startswith("Mozilla/"):
        return Actor.BROWSER
    return Actor.API_CLIENT if role == Role.API else Actor.APP


def _initiator(ex: Exchange, fpr: Fingerprinter, preflight: tuple[str, ...]) -> Initiator | None:
    h = ex.request_headers
    if not preflight and not any(k in h for k in ("sec-fetch-site", "sec-fetch-mode", "sec-fetch-dest",
                                                  "sec-fetch-user", "origin", "referer")):
        return None
    return Initiator(site=h.get("sec-fetch-site"), mode=h.get("sec-fetch-mode"), dest=h.get("sec-fetch-dest"),
                     user=h.get("sec-fetch-user"), origin=h.get("origin"),
                     referer=fpr.url(h["referer"]) if "referer" in h else None, preflight=preflight)


def _scrub(hop: Hop) -> None:
    """Undecodable bytes in a header or URL arrive as lone surrogates, which a database refuses
    (and with it the whole batch). Replace them, as a browser would display them."""
    for name in ("url", "host", "path", "user_agent", "state", "nonce", "client_id", "body_excerpt"):
        v = getattr(hop, name)
        if isinstance(v, str) and not v.isascii():
            setattr(hop, name, _clean(v))
    for d in (hop.request_headers, hop.response_headers):
        for k, v in d.items():
            if not v.isascii():
                d[k] = _clean(v)


def _clean(v: str) -> str:
    return v.encode("utf-16", "surrogatepass").decode("utf-16", "replace")

