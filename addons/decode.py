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

MAX_JWT = 64 * 1024


def b64url_json(segment: str) -> Any:
    try:
        raw = base64.urlsafe_b64decode(segment + "=" * (-len(segment) % 4))
        return json.loads(raw)
    except (binascii.Error, ValueError, UnicodeDecodeError):
        return None


def decode_jwt(token: str) -> tuple[dict, dict] | None:
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


def decode_state(state: str | None, fpr: Fingerprinter) -> dict | None:
    """What a `state` holds: opaque, a JWT, base64url JSON, MSAL's `{id, meta}|user state`, or JSON."""
    if not state:
        return None
    if JWT_RE.fullmatch(state):
        d = decode_jwt(state)
        if d:
            return {"format": "jwt", "header": d[0], "claims": d[1]}
    head, sep, tail = state.partition("|")
    if head.lstrip().startswith("{"):
        try:
            return {"format": "json", "value": json.loads(head)}
        except ValueError:
            pass
    if len(head) >= 8 and re.fullmatch(r"[A-Za-z0-9_\-+/]+=*", head):
        value = b64url_json(head.replace("+", "-").replace("/", "_").rstrip("="))
        if isinstance(value, (dict, list)):
            fmt = "msal" if isinstance(value, dict) and "id" in value and "meta" in value else "base64url-json"
            out = {"format": fmt, "value": value}
            if sep:
                out["user_state"] = fpr.text(tail)
            return out
    return {"format": "opaque", "length": len(state)}


ERROR_FIELDS = ("error", "error_description", "error_codes", "error_uri", "suberror", "trace_id",
                "correlation_id", "timestamp", "claims", "error_subcode")
_AADSTS_RE = re.compile(r"AADSTS\d{4,7}")
_IDS = {
    "trace_id": re.compile(r"(?i)(?:trace[ _-]?id|request[ _-]?id)[\"']?\s*[:=]\s*[\"']?([0-9a-f-]{32,36})"),
    "correlation_id": re.compile(r"(?i)correlation[ _-]?id[\"']?\s*[:=]\s*[\"']?([0-9a-f-]{32,36})"),
    "timestamp": re.compile(r"(?i)timestamp[\"']?\s*[:=]\s*[\"']?(\d{4}-\d\d-\d\d[T ][0-9:.]+Z?)"),
}


def error_fields(source: dict | None, fpr: Fingerprinter) -> dict | None:
    """OAuth/OIDC error fields from a decoded parameter set or JSON body, secrets redacted."""
    if not isinstance(source, dict):
        return None
    err = source.get("error")
    if isinstance(err, dict):  # Azure REST style {"error": {"code", "message"}}
        msg = str(err.get("message", ""))[:1000]
        out = {"error": str(err.get("code", "error")), "error_description": fpr.text(msg)}
        codes = [int(c[6:]) for c in _AADSTS_RE.findall(msg)]
        if codes:
            out["error_codes"] = codes
        return out
    if not err or not isinstance(err, (str, int)):
        return None
    out: dict[str, Any] = {}
    for k in ERROR_FIELDS:
        v = source.get(k)
        if v is None or v == "":
            continue
        out[k] = fpr.text(v[:2000]) if isinstance(v, str) else v
    desc = str(out.get("error_description", ""))
    codes = out.get("error_codes") or [int(c[6:]) for c in _AADSTS_RE.findall(desc)]
    if isinstance(codes, list) and codes:
        out["error_codes"] = codes
    for k, rx in _IDS.items():
        if k not in out:
            m = rx.search(desc)
            if m:
                out[k] = m.group(1)
    return out


def text_error(text: str, fpr: Fingerprinter) -> dict | None:
    """An error named in a non-JSON body: AADSTS pages, plain-text handler answers."""
    if not text:
        return None
    m = _AADSTS_RE.search(text)
    if m:
        line = re.split(r"[\"<\\\r\n]", text[m.start():m.start() + 1200])[0]
        out: dict[str, Any] = {"error": m.group(0), "error_description": fpr.text(line.strip()),
                               "error_codes": sorted({int(c[6:]) for c in _AADSTS_RE.findall(text[:200_000])})}
        for k, rx in _IDS.items():
            mm = rx.search(text[:200_000])
            if mm:
                out[k] = mm.group(1)
        return out
    return None


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


def www_authenticate(value: str | None, fpr: Fingerprinter) -> dict | None:
    """RFC 6750 §3 challenge: scheme, error, error_description, realm, resource hints."""
    if not value:
        return None
    scheme = value.strip().split(" ", 1)[0]
    out: dict[str, Any] = {"scheme": scheme if "=" not in scheme else ""}  # no scheme: the first word is a param
    for m in _AUTH_PARAM.finditer(value):
        name = m.group(1).lower()
        out[name] = fpr.value(name, (m.group(2) if m.group(2) is not None else m.group(3))[:1000])
    return out
