"""Decoders for what a sign-in carries: JWTs, `state`, IdP error answers (OAuth fields, Azure error
envelopes, RFC 7807 problem details, error pages), WWW-Authenticate.

Every function takes plain strings and never raises on malformed input: captured traffic is
hostile or broken as often as not, and a decoder failure must not lose the hop.
"""
from __future__ import annotations

import base64
import binascii
import html
import json
import re
from typing import Any

import jwt

from authtrace.addons import providers as pv
from authtrace.addons.secrets import JWT_RE, Fingerprinter
from authtrace.store.records import ErrorAnswer, StateInfo, as_ints, as_str

MAX_JWT = 64 * 1024


def b64url_json(segment: str) -> Any:
    try:
        raw = base64.urlsafe_b64decode(segment + "=" * (-len(segment) % 4))
        return json.loads(raw)
    except (binascii.Error, ValueError, UnicodeDecodeError, RecursionError):
        return None


def decode_jwt(token: str) -> tuple[dict[str, Any], dict[str, Any]] | None:
    """Header and claims without verification (PyJWT). Expiry and audience are kept as claims
    for the checks to compare against the time and place of use, since nothing is checked here."""
    if len(token) > MAX_JWT or token.count(".") != 2:
        return None
    try:
        complete = jwt.api_jwt.decode_complete(
            token, options={"verify_signature": False, "verify_exp": False, "verify_nbf": False,
                            "verify_iat": False, "verify_aud": False, "verify_iss": False})
    except (jwt.PyJWTError, ValueError, TypeError):
        return None
    header, claims = complete.get("header"), complete.get("payload")
    if not isinstance(header, dict) or not isinstance(claims, dict):
        return None
    return header, claims


def decode_state(state: str | None, fpr: Fingerprinter) -> StateInfo | None:
    """What a `state` holds: opaque, a JWT, base64url JSON, MSAL's `{id, meta}|user state`, or JSON."""
    if not state:
        return None
    if JWT_RE.fullmatch(state):
        d = decode_jwt(state)
        if d:
            return StateInfo(format="jwt", length=len(state), header=d[0], claims=d[1])
    head, sep, tail = state.partition("|")
    if head.lstrip().startswith("{"):
        try:
            return StateInfo(format="json", length=len(state), value=json.loads(head))
        except (ValueError, RecursionError):
            pass
    if len(head) >= 8 and re.fullmatch(r"[A-Za-z0-9_\-+/]+=*", head):
        value = b64url_json(head.replace("+", "-").replace("/", "_").rstrip("="))
        if isinstance(value, (dict, list)):
            fmt = "msal" if isinstance(value, dict) and "id" in value and "meta" in value else "base64url-json"
            return StateInfo(format=fmt, length=len(state), value=value,
                             user_state=fpr.text(tail) if sep else None)
    return StateInfo(format="opaque", length=len(state))


_AADSTS_RE = re.compile(r"AADSTS\d{4,7}")
_B2C_RE = re.compile(r"AADB2C\d{5}")
_IDS = {
    "trace_id": re.compile(r"(?i)(?:trace[ _-]?id|request[ _-]?id)[\"']?\s*[:=]\s*[\"']?([0-9a-f-]{32,36})"),
    "correlation_id": re.compile(r"(?i)(?:correlation|activity)[ _-]?id[\"']?\s*[:=]\s*[\"']?([0-9a-f-]{32,36})"),
    "timestamp": re.compile(r"(?i)timestamp[\"']?\s*[:=]\s*[\"']?(\d{4}-\d\d-\d\d[T ][0-9:.]+Z?)"),
}
_EXTRA_FIELDS = ("claims", "error_subcode", "scope", "resource", "resource_id", "authorization_uri", "tracking")
_INNER = ("innerError", "innererror", "inner_error", "innerException")
MAX_DEPTH = 32


def _text(v: Any, fpr: Fingerprinter, limit: int = 2000) -> str:
    s = as_str(v)
    return fpr.text(s[:limit]) if s else ""


def _ids_from(text: str, out: ErrorAnswer) -> None:
    for k, rx in _IDS.items():
        if getattr(out, k) is None:
            m = rx.search(text)
            if m:
                setattr(out, k, m.group(1))


def _aadsts(*texts: str) -> tuple[int, ...]:
    return tuple(dict.fromkeys(int(c[6:]) for t in texts for c in _AADSTS_RE.findall(t)))


def error_fields(source: Any, fpr: Fingerprinter) -> ErrorAnswer | None:
    """OAuth/OIDC error fields from a decoded parameter set or JSON body, secrets redacted. Any field
    may have any type in hostile input: each becomes text (or numbers for `error_codes`) here."""
    if not isinstance(source, dict):
        return None
    err = source.get("error")
    if isinstance(err, dict):
        return azure_envelope(source, err, fpr)
    code = as_str(err)
    if not code:
        return None
    out = ErrorAnswer(error=fpr.text(code[:200]), error_description=_text(source.get("error_description"), fpr),
                      error_uri=_text(source.get("error_uri"), fpr, 500) or None,
                      suberror=_text(source.get("suberror"), fpr, 200) or None,
                      trace_id=_text(source.get("trace_id"), fpr, 200) or None,
                      correlation_id=_text(source.get("correlation_id"), fpr, 200) or None,
                      timestamp=_text(source.get("timestamp"), fpr, 200) or None)
    out.error_codes = as_ints(source["error_codes"]) if "error_codes" in source else ()
    if not out.error_codes:
        out.error_codes = _aadsts(out.error_description)
    out.extra = {k: _text(source[k], fpr, 1000) for k in _EXTRA_FIELDS if source.get(k) not in (None, "")}
    _ids_from(out.error_description, out)
    return out


def azure_envelope(doc: dict[str, Any], err: dict[str, Any], fpr: Fingerprinter) -> ErrorAnswer:
    """Azure's error envelope: `{"error": {"code", "message", "details": [...], "innerError": {...}},
    "correlation": {"operation", "request"}, "environment", "componentName", ...}`. The specific reason
    is usually in `details[].message` or the innermost `innerError`, not in the top message (the Foundry
    redirect handler: "OAuth redirection processing failed. Please re-login." over "Authentication code
    has already been redeemed.")."""
    out = ErrorAnswer(error=_text(err.get("code"), fpr, 200) or "error",
                      error_description=_text(err.get("message"), fpr, 1000), provider="Azure error envelope")
    specific: list[str] = []
    node: Any = err
    for _ in range(MAX_DEPTH):  # innermost first: walk down, then put each deeper message in front
        nxt = next((node[k] for k in _INNER if isinstance(node.get(k), dict)), None)
        if nxt is None:
            break
        node = nxt
        code, msg = _text(node.get("code"), fpr, 200), _text(node.get("message"), fpr, 1000)
        out.inner_code = code or out.inner_code
        if msg:
            specific.insert(0, msg)
        out.request_id = out.request_id or _text(node.get("request-id") or node.get("requestId"), fpr, 200) or None
        out.timestamp = out.timestamp or _text(node.get("date"), fpr, 200) or None
    details = err.get("details")
    for d in (details if isinstance(details, list) else [])[:20]:
        msg = _text(d.get("message"), fpr, 1000) if isinstance(d, dict) else _text(d, fpr, 1000)
        if msg and msg not in specific:
            specific.append(msg)
    out.details = tuple(specific)
    corr = doc.get("correlation")
    if isinstance(corr, dict):
        out.operation_id = _text(corr.get("operation"), fpr, 200) or None
        out.request_id = _text(corr.get("request"), fpr, 200) or out.request_id
    out.timestamp = out.timestamp or _text(doc.get("time"), fpr, 200) or None
    out.extra = {k: v for k in ("environment", "location", "componentName") if (v := _text(doc.get(k), fpr, 200))}
    out.error_codes = _aadsts(out.error_description, *out.details)
    _ids_from(" ".join((out.error_description, *out.details)), out)
    return out


def problem_details(doc: Any, fpr: Fingerprinter) -> ErrorAnswer | None:
    """RFC 7807 / 9457 `application/problem+json`: type, title, status, detail, instance, and the
    extensions frameworks add (ASP.NET Core's `traceId` and `errors`)."""
    if not isinstance(doc, dict) or not any(k in doc for k in ("title", "detail", "type")):
        return None
    typ = _text(doc.get("type"), fpr, 500)
    out = ErrorAnswer(error=typ.rstrip("/").rsplit("/", 1)[-1] if typ and typ != "about:blank" else "",
                      error_description=_text(doc.get("detail"), fpr, 1000), message=_text(doc.get("title"), fpr, 300),
                      trace_id=_text(doc.get("traceId") or doc.get("trace_id"), fpr, 200) or None,
                      provider="RFC 7807 problem details")
    errors = doc.get("errors")
    found: list[str] = []
    if isinstance(errors, dict):
        for k, v in list(errors.items())[:20]:
            for m in (v if isinstance(v, list) else [v])[:5]:
                if (t := _text(m, fpr, 500)):
                    found.append(f"{fpr.text(str(k)[:100])}: {t}")
    elif isinstance(errors, list):
        found = [t for e in errors[:20] if (t := _text(e.get("detail") or e.get("message"), fpr, 500)
                                            if isinstance(e, dict) else _text(e, fpr, 500))]
    out.details = tuple(found)
    if (inst := _text(doc.get("instance"), fpr, 500)):
        out.extra["instance"] = inst
    out.error_codes = _aadsts(out.error_description, *found)
    return out


def text_error(text: str, fpr: Fingerprinter) -> ErrorAnswer | None:
    """An error named in a non-JSON body: AADSTS or AADB2C pages, plain-text handler answers."""
    if not text:
        return None
    m = _AADSTS_RE.search(text) or _B2C_RE.search(text)
    if not m:
        return None
    line = re.split(r"[\"<\\\r\n]", text[m.start():m.start() + 1200])[0]
    out = ErrorAnswer(error=m.group(0), error_description=fpr.text(line.strip()),
                      error_codes=tuple(sorted({int(c[6:]) for c in _AADSTS_RE.findall(text[:200_000])})))
    _ids_from(text[:200_000], out)
    return out


# ---- error pages ---------------------------------------------------------------------------------

_CONFIG_RE = re.compile(r"\$Config\s*=\s*\{")
_CONFIG_CODE = ("sErrorCode", "iErrorCode", "sErrCode")
_CONFIG_MESSAGE = ("strServiceExceptionMessage", "sErrTxt", "strMainMessage", "sErrorMessage")
_CONFIG_IDS = {"trace_id": ("strTraceId", "sTraceId", "traceId"),
               "correlation_id": ("correlationId", "strCorrelationId", "sCorrelationId"),
               "session_id": ("sessionId", "strSessionId", "sSessionId"),
               "timestamp": ("strTimestamp", "sTimestamp", "timestamp")}


def page_config(text: str) -> dict[str, Any] | None:
    """The `$Config={…}` object of a Microsoft sign-in page (Entra, Microsoft account, B2C, ADFS)."""
    m = _CONFIG_RE.search(text[:400_000])
    if not m:
        return None
    try:
        doc, _ = json.JSONDecoder().raw_decode(text[m.end() - 1:m.end() - 1 + 400_000])
    except (ValueError, RecursionError):
        return None
    return doc if isinstance(doc, dict) else None


def config_error(cfg: dict[str, Any], host: str, fpr: Fingerprinter) -> ErrorAnswer | None:
    """The error a sign-in page's `$Config` carries: its code (`sErrorCode`/`iErrorCode`), the service
    exception message, and the correlation, session and trace ids with the time. A login page also
    has a `$Config`, with no code or a zero one: that is not an error."""
    code = next((c for k in _CONFIG_CODE if (c := as_str(cfg.get(k))) and c.strip() not in ("", "0")), "")
    msg = next((_text(cfg.get(k), fpr, 1000) for k in _CONFIG_MESSAGE if as_str(cfg.get(k))), "")
    if not code and not _AADSTS_RE.search(msg) and not _B2C_RE.search(msg):
        return None
    code = code.strip()[:40]
    entra = host.endswith(pv.ENTRA_HOSTS)
    named = _AADSTS_RE.search(msg) or _B2C_RE.search(msg)
    if named:
        error = named.group(0)
    elif code.isdigit() and entra:
        error = f"AADSTS{code}"
    else:
        error = fpr.text(code)
    out = ErrorAnswer(error=error, error_description=msg, source="page", provider=pv.provider_of(host) or "Microsoft")
    out.error_codes = _aadsts(error, msg)
    for k, names in _CONFIG_IDS.items():
        setattr(out, k, next((v[:100] for n in names if (v := _text(cfg.get(n), fpr, 200))), None))
    return out


def page_error(text: str, host: str, path: str, fpr: Fingerprinter) -> ErrorAnswer | None:
    """The error an identity provider's HTML page shows: Microsoft's `$Config`, or the page patterns of
    other providers (`providers.ERROR_PAGES`: Google, Okta, Auth0, Keycloak, ADFS), ids lifted out."""
    cfg = page_config(text)
    if cfg is not None:
        out = config_error(cfg, host, fpr)
        if out is not None:
            _ids_from(text[:200_000], out)
            return out
    for page in pv.ERROR_PAGES:
        if not page.applies(host, path, text):
            continue
        visible = _visible(text)
        code = page.code.search(visible) if page.code else None
        said = page.message.search(text) if page.message else None
        msg = re.sub(r"\s+", " ", html.unescape(re.sub(r"<[^>]+>", " ", said.group(1)))).strip() if said else ""
        if not code and not msg:
            continue
        error = code.group(1) if code else pv.page_code(page.provider, msg)
        out = ErrorAnswer(error=fpr.text(error[:100]), error_description=fpr.text(msg[:1000]), source="page",
                          provider=page.provider, error_codes=_aadsts(visible))
        for name, rx in page.ids:
            m = rx.search(visible)
            if m and getattr(out, name) is None:
                setattr(out, name, fpr.text(m.group(1)[:100]))
        _ids_from(visible, out)
        return out
    found = text_error(text, fpr)
    if found is not None:
        found.source, found.provider = "page", pv.provider_of(host, path)
    return found


def _visible(text: str) -> str:
    body = re.sub(r"(?is)<(script|style)\b.*?</\1>|<[^>]+>", " ", text[:200_000])
    return re.sub(r"\s+", " ", html.unescape(body))


def message(text: str, fpr: Fingerprinter, limit: int = 300) -> str:
    """First readable line of a body, redacted: 'Authentication code has already been redeemed. Please re-login.'"""
    if re.search(r"(?i)<html|<!doctype|<body|<h1|<p>", text[:500]):
        t = re.search(r"(?is)<title>(.*?)</title>", text[:20000])
        body = re.sub(r"(?is)<title>.*?</title>|<(script|style)\b.*?</\1>|<[^>]+>", " ", text[:20000])
        body = re.sub(r"\s+", " ", html.unescape(body)).strip()
        title = re.sub(r"\s+", " ", html.unescape(t.group(1))).strip() if t else ""
        text = body if not title or body.startswith(title) else f"{title}: {body}"
    text = re.sub(r"\s+", " ", text).strip()
    return fpr.text(text[:limit])


_AUTH_PARAM = re.compile(r'([A-Za-z_][\w-]*)\s*=\s*(?:"((?:[^"\\]|\\.)*)"|([^\s,]+))')


def www_authenticate(value: str | None, fpr: Fingerprinter) -> dict[str, str]:
    """RFC 6750 §3 challenge: scheme, error, error_description, realm, resource hints."""
    if not value:
        return {}
    scheme = value.strip().split(" ", 1)[0]
    out: dict[str, str] = {"scheme": scheme if "=" not in scheme else ""}  # no scheme: the first word is a param
    for m in _AUTH_PARAM.finditer(value):
        name = m.group(1).lower()
        out[name] = fpr.value(name, (m.group(2) if m.group(2) is not None else m.group(3))[:1000])
    return out


def saml_status_error(names: tuple[str, ...], message: str | None, fpr: Fingerprinter) -> ErrorAnswer:
    """A SAML Status that is not Success, as the error a hop carries: the status names outer first
    (`Responder/NoPassive`), the StatusMessage, and the AADSTS code and ids Entra writes into it."""
    text = fpr.text((message or "")[:1000])
    out = ErrorAnswer(error=fpr.text("/".join(names)[:200]), error_description=text, source="saml", provider="SAML",
                      error_codes=_aadsts(text))
    _ids_from(text, out)
    return out
