"""Content views: a sign-in message decoded inside mitmproxy's own inspector (console and mitmweb).

The `authtrace` view shows a message's OAuth/OIDC parameters (query, form, JSON, a form_post page,
the `Location` of a redirect), its decoded `state`, and every JWT it carries (body, parameters,
`Authorization`/`DPoP` headers): header and claims, with exp/nbf/iat as UTC times and how they
relate to the message's own time, and whether the signature verified against a JWKS seen in this
session. As everywhere in authtrace, no raw secret is shown: codes, tokens and secrets appear as
the same fingerprints the database and reports use (`code#3f9a1c20e4`), a JWT loses its signature.

mitmproxy 12 (`contentviews.Contentview`, `prettify(data, metadata) -> str`) and mitmproxy 11
(`contentviews.base.View`, `__call__(data, **metadata) -> (description, lines)`) each get a native
view over the same `decode_message`; the `ContentViews` addon registers it while it is loaded.
"""
from __future__ import annotations

import json
import logging
import re
import secrets
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any
from urllib.parse import parse_qsl, urlsplit

from mitmproxy import contentviews, ctx, http

from authtrace.addons.decode import decode_jwt, decode_state
from authtrace.addons.secrets import JWT_RE, SECRET_NAMES, Fingerprinter

log = logging.getLogger(__name__)

VIEW_NAME = "authtrace"
TIME_CLAIMS = ("exp", "nbf", "iat", "auth_time", "updated_at")
# parameters that make a message part of a sign-in (lower case): one strong one, or two weak ones
# (`{"code": 7}` or `?code=SAVE10` alone is common outside OAuth)
STRONG = frozenset({"id_token", "access_token", "refresh_token", "grant_type", "response_type", "client_assertion",
                    "device_code", "user_code", "samlresponse", "samlrequest", "id_token_hint", "request_uri",
                    "logout_token", "code_verifier", "code_challenge"})
WEAK = frozenset({"code", "state", "error", "error_description", "session_state", "iss"})
MAX_BODY = 1024 * 1024
_HIDDEN = re.compile(r"<input\b[^>]*>", re.I)
_ATTR = re.compile(r"""\b(name|value)\s*=\s*(?:"([^"]*)"|'([^']*)')""", re.I)
_PROCESS_KEY = secrets.token_bytes(32)  # fingerprints when no recording session is loaded

Row = tuple[int, str, "str | None"]  # (depth, label, value); value None: a heading


@dataclass
class Decoded:
    """What the view shows for one message, and how strongly it wants to show it."""

    rows: list[Row] = field(default_factory=list)
    priority: float = 0.0


class Keys:
    """Fingerprints and signature states: the recording session's own when authtrace records in
    this mitmproxy (so `code#…` matches the database and the report), else a per-process key."""

    def __init__(self, context: Any = None):
        self.context = context
        self.fpr: Fingerprinter = context.fpr if context is not None else Fingerprinter(_PROCESS_KEY)

    @classmethod
    def current(cls) -> Keys:
        try:
            addon = ctx.master.addons.get("authtrace")
        except AttributeError:  # no master: a view used outside a running mitmproxy
            addon = None
        return cls(getattr(addon, "context", None))

    def signature(self, raw: str, header: dict[str, Any]) -> str:
        if str(header.get("alg", "")).lower() in ("", "none"):
            return "none: the token is not signed"
        if self.context is not None:
            tail = "#" + self.fpr.fp(raw, "jwt").partition("#")[2]
            for fp, status in list(self.context.signatures.verdicts.items()):
                if fp.endswith(tail):
                    return f"{status} against the JWKS seen in this session"
        return "unknown: no JWKS holding its key was seen in this session"


def utc(t: float) -> str:
    return datetime.fromtimestamp(t, tz=UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def _span(seconds: float) -> str:
    s = abs(seconds)
    if s < 120:
        return f"{s:.0f} s"
    if s < 7200:
        return f"{s / 60:.0f} min"
    if s < 172800:
        return f"{s / 3600:.1f} h"
    return f"{s / 86400:.0f} days"


def time_claim(name: str, value: Any, at: float | None) -> str:
    """`1764000000 = 2025-11-24T16:00:00Z (expired 3 min before this message)`."""
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        return _scalar(value)
    try:
        text = f"{value} = {utc(value)}"
    except (OverflowError, OSError, ValueError):
        return str(value)
    if at:
        d = value - at
        if name == "exp":
            text += f" (expired {_span(d)} before this message)" if d < 0 else f" (valid {_span(d)} after this message)"
        elif name == "nbf" and d > 0:
            text += f" (not yet valid: {_span(d)} after this message)"
        elif name == "iat":
            text += f" ({_span(d)} {'before' if d <= 0 else 'after'} this message)"
    return text


def _scalar(v: Any) -> str:
    if isinstance(v, str):
        return v
    return json.dumps(v, ensure_ascii=False, sort_keys=True)


def _pairs(text: str) -> list[tuple[str, str]]:
    try:
        return parse_qsl(text, keep_blank_values=True)
    except ValueError:
        return []


def _body(data: bytes) -> str:
    return data[:MAX_BODY].decode("utf-8", "replace")


def _form_post(html: str) -> list[tuple[str, str]]:
    """Hidden fields of an auto-submitting form_post page (code, state, id_token, SAMLResponse)."""
    out = []
    for tag in _HIDDEN.findall(html[:MAX_BODY]):
        attrs = {m.group(1).lower(): m.group(2) if m.group(2) is not None else m.group(3) for m in _ATTR.finditer(tag)}
        if "name" in attrs and "value" in attrs:
            out.append((attrs["name"], attrs["value"]))
    return out


class _Builder:
    def __init__(self, keys: Keys, at: float | None):
        self.keys, self.at = keys, at
        self.rows: list[Row] = []
        self.jwts: list[tuple[str, str, str]] = []  # (where, raw, fingerprint label)
        self.states: list[str] = []
        self.signal = False

    def params(self, title: str, pairs: list[tuple[str, str]]) -> None:
        if not pairs:
            return
        self.rows.append((0, title, None))
        seen: set[str] = set()
        names = {k.lower() for k, _ in pairs}
        self.signal |= bool(names & STRONG) or len(names & WEAK) >= 2
        for k, v in pairs:
            low = k.lower()
            if JWT_RE.fullmatch(v):
                self.jwts.append((f"{title} {k}", v, low if low in SECRET_NAMES else "jwt"))
            if low == "state" and low not in seen:
                self.states.append(v)
            seen.add(low)
            self.rows.append((1, k, self.keys.fpr.value(k, v)))

    def jwt(self, where: str, raw: str, label: str = "jwt") -> None:
        decoded = decode_jwt(raw)
        fp = self.keys.fpr.fp(raw, label)
        if decoded is None:
            self.rows.append((0, f"JWT in {where}", f"{fp}: not decodable"))
            return
        header, claims = decoded
        self.rows.append((0, f"JWT in {where}", f"{fp} (signature dropped)"))
        self.rows.append((1, "signature", self.keys.signature(raw, header)))
        self.rows.append((1, "header", None))
        self.rows += [(2, k, _scalar(v)) for k, v in header.items()]
        self.rows.append((1, "claims", None))
        for k, v in claims.items():
            if k in TIME_CLAIMS:
                self.rows.append((2, k, time_claim(k, v, self.at)))
            elif isinstance(v, str):
                self.rows.append((2, k, self.keys.fpr.text(v)))  # a token nested in a claim stays hidden
            else:
                self.rows.append((2, k, _scalar(v)))

    def state(self, value: str) -> None:
        d = decode_state(value, self.keys.fpr)
        if d is None:
            return
        self.rows.append((0, "state", None))
        if d.format == "opaque":
            self.rows.append((1, "format", f"opaque, {d.length} characters"))
            return
        self.rows.append((1, "format", d.format))
        if d.format == "jwt":
            self.jwt("state", value, "state")
            return
        for k, v in (("value", d.value), ("user_state", d.user_state)):
            if v is not None:
                self.rows.append((1, k, self.keys.fpr.text(_scalar(v))))


def decode_message(data: bytes, message: http.Message | None, keys: Keys | None = None) -> Decoded:
    """Everything sign-in related in one HTTP message, as rows; priority 0 when there is nothing."""
    keys = keys or Keys.current()
    b = _Builder(keys, getattr(message, "timestamp_start", None))
    body_signal = False
    text = _body(data) if data else ""
    ctype = (message.headers.get("content-type", "") if message is not None else "").lower()
    bare = text.strip()
    if bare and JWT_RE.fullmatch(bare):
        b.jwts.append(("the body", bare, "jwt"))
        body_signal = True
    if isinstance(message, http.Request):
        b.params("query", list(message.query.items(multi=True)))
        auth = message.headers.get("authorization", "")
        scheme, _, cred = auth.strip().partition(" ")
        if scheme.lower() in ("bearer", "dpop") and JWT_RE.fullmatch(cred.strip()):
            b.jwts.append((f"Authorization: {scheme}", cred.strip(), "access_token"))
            b.signal = True
        dpop = message.headers.get("dpop", "").strip()
        if dpop and JWT_RE.fullmatch(dpop):
            b.jwts.append(("DPoP header", dpop, "dpop_proof"))
    if isinstance(message, http.Response):
        location = message.headers.get("location", "")
        if location:
            try:
                parts = urlsplit(location)
            except ValueError:
                parts = None
            if parts is not None:
                b.params("Location query", _pairs(parts.query))
                b.params("Location fragment", _pairs(parts.fragment) if "=" in parts.fragment else [])
    if text and not body_signal:
        before = b.signal
        b.signal = False
        if "x-www-form-urlencoded" in ctype:
            b.params("form", _pairs(text))
        elif "json" in ctype or bare.startswith("{"):
            try:
                doc = json.loads(bare)
            except ValueError:
                doc = None
            if isinstance(doc, dict):
                b.params("json", [(k, v if isinstance(v, str) else _scalar(v)) for k, v in doc.items()])
        elif "html" in ctype and "<input" in text.lower():
            fields = _form_post(text)
            if {k.lower() for k, _ in fields} & (STRONG | WEAK):
                b.params("form_post page", fields)
        body_signal, b.signal = b.signal, before or b.signal
    for value in b.states[:1]:
        b.state(value)
    for where, raw, label in b.jwts:
        if not (b.states and raw == b.states[0]):
            b.jwt(where, raw, label)
    if not (b.signal or body_signal or b.jwts):
        return Decoded()
    if bare and JWT_RE.fullmatch(bare):
        priority = 2.0
    elif body_signal:
        priority = 1.1  # above mitmproxy's JSON, form and HTML views: the decoded form is what matters
    else:
        priority = 0.4  # no body of interest: above the Query view (0.3), below any body view
    rows = [(0, "authtrace", "decoded sign-in data; secrets shown as fingerprints")] + b.rows
    return Decoded(rows, priority)


def render_text(rows: list[Row]) -> str:
    return "\n".join("  " * d + (f"{k}: {v}" if v is not None else f"{k}:") for d, k, v in rows)


def _view_classes() -> list[Any]:
    """The native view of the installed mitmproxy: 12's Contentview, else 11's View."""
    if hasattr(contentviews, "Contentview"):  # mitmproxy >= 12
        base: Any = contentviews.Contentview

        class AuthtraceContentview(base):  # type: ignore[misc]  # mitmproxy 11 has no Contentview to type it
            name = VIEW_NAME
            syntax_highlight = "yaml"

            def prettify(self, data: bytes, metadata: Any) -> str:
                d = decode_message(data, metadata.http_message)
                if not d.rows:
                    raise ValueError("no sign-in data in this message")
                return render_text(d.rows)

            def render_priority(self, data: bytes, metadata: Any) -> float:
                if not isinstance(metadata.http_message, http.Message):
                    return -1
                return decode_message(data, metadata.http_message).priority or -1

        return [AuthtraceContentview()]

    from mitmproxy.contentviews.base import View

    class AuthtraceView(View):
        name = VIEW_NAME

        def __call__(self, data: bytes, *, http_message: http.Message | None = None, **unknown: Any) -> Any:
            d = decode_message(data, http_message)
            if not d.rows:
                return "authtrace: no sign-in data", iter([[("text", "no sign-in data in this message")]])
            return "authtrace", iter(_lines11(d.rows))

        def render_priority(self, data: bytes, *, http_message: http.Message | None = None,
                            **unknown: Any) -> float:
            if not isinstance(http_message, http.Message):
                return 0
            return decode_message(data, http_message).priority

    return [AuthtraceView()]


def _lines11(rows: list[Row]) -> list[list[tuple[str, str]]]:
    out = []
    for d, k, v in rows:
        if v is None:
            out.append([("header", "  " * d + k + ":")])
        else:
            out.append([("header", "  " * d + k + ": "), ("text", v)])
    return out


class ContentViews:
    """Registers the `authtrace` content view while loaded (mitmproxy 11 and 12)."""

    def __init__(self) -> None:
        self.views: list[Any] = []

    def load(self, loader: Any) -> None:
        # mitmproxy 12: registering a name again replaces it; 11 refuses duplicates. The 11-only names are
        # looked up, not imported, so one source type-checks against either generation.
        if hasattr(contentviews, "registry") or getattr(contentviews, "get")(VIEW_NAME) is None:  # noqa: B009
            self.views = _view_classes()
            for v in self.views:
                contentviews.add(v)

    def done(self) -> None:
        if not hasattr(contentviews, "registry"):
            registered = getattr(contentviews, "views")  # noqa: B009
            for v in self.views:
                if v in registered:
                    getattr(contentviews, "remove")(v)  # noqa: B009
        self.views = []
