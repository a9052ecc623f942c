"""Decoders for what a sign-in carries: JWTs, `state`, IdP error answers, WWW-Authenticate.

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
_IDS = {
    "trace_id": re.compile(r"(?i)(?:trace[ _-]?id|request[ _-]?id)[\"']?\s*[:=]\s*[\"']?([0-9a-f-]{32,36})"),
    "correlation_id": re.compile(r"(?i)correlation[ _-]?id[\"']?\s*[:=]\s*[\"']?([0-9a-f-]{32,36})"),
    "timestamp": re.compile(r"(?i)timestamp[\"']?\s*[:=]\s*[\"']?(\d{4}-\d\d-\d\d[T ][0-9:.]+Z?)"),
}
_EXTRA_FIELDS = ("claims", "error_subcode", "scope", "resource", "resource_id", "authorization_uri")


def _text(v: Any, fpr: Fingerprinter, limit: int = 2000) -> str:
    s = as_str(v)
    return fpr.text(s[:limit]) if s else ""


def _ids_from(text: str, out: ErrorAnswer) -> None:
    for k, rx in _IDS.items():
        if getattr(out, k) is None:
            m = rx.search(text)
            if m:
                setattr(out, k, m.group(1))


def error_fields(source: Any, fpr: Fingerprinter) -> ErrorAnswer | None:
    """OAuth/OIDC error fields from a decoded parameter set or JSON body, secrets redacted. Any field
    may have any type in hostile input: each becomes text (or numbers for `error_codes`) here."""
    if not isinstance(source, dict):
        return None
    err = source.get("error")
    if isinstance(err, dict):  # Azure REST style {"error": {"code", "message"}}
        msg = _text(err.get("message"), fpr, 1000)
        return ErrorAnswer(error=_text(err.get("code"), fpr, 200) or "error", error_description=msg,
                           error_codes=tuple(int(c[6:]) for c in _AADSTS_RE.findall(msg)))
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
        out.error_codes = tuple(int(c[6:]) for c in _AADSTS_RE.findall(out.error_description))
    out.extra = {k: _text(source[k], fpr, 1000) for k in _EXTRA_FIELDS if source.get(k) not in (None, "")}
    _ids_from(out.error_description, out)
    return out


def text_error(text: str, fpr: Fingerprinter) -> ErrorAnswer | None:
    """An error named in a non-JSON body: AADSTS pages, plain-text handler answers."""
    if not text:
        return None
    m = _AADSTS_RE.search(text)
    if not m:
        return None
    line = re.split(r"[\"<\\\r\n]", text[m.start():m.start() + 1200])[0]
    out = ErrorAnswer(error=m.group(0), error_description=fpr.text(line.strip()),
                      error_codes=tuple(sorted({int(c[6:]) for c in _AADSTS_RE.findall(text[:200_000])})))
    _ids_from(text[:200_000], out)
    return out


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
