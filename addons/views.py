"""Content views: a sign-in message decoded inside mitmproxy's own inspector (console and mitmweb).

The `authtrace` view shows a message's OAuth/OIDC parameters (query, form, JSON, a form_post page,
the `Location` of a redirect), its decoded `state`, and every JWT it carries (body, parameters,
`Authorization`/`DPoP` headers): header and claims, with exp/nbf/iat as UTC times and how they
relate to the message's own time, and whether the signature verified against a JWKS seen in this
session; and every SAML message (HTTP-Redirect query, HTTP-POST form, an IdP's auto-submitting page,
an artifact): its fields, status, each assertion's subject, conditions, audience and attribute names,
and whether each signature verified against the issuer's certificate (metadata seen in this session or
`--saml-cert`). As everywhere in authtrace, no raw secret is shown: codes, tokens and secrets appear as
the same fingerprints the database and reports use (`code#3f9a1c20e4`), a JWT loses its signature.

mitmproxy 12 (`contentviews.Contentview`, `prettify(data, metadata) -> str`) and mitmproxy 11
(`contentviews.base.View`, `__call__(data, **metadata) -> (description, lines)`) each get a native
view over the same `decode_message`; the `ContentViews` addon registers it while it is loaded.
"""
from __future__ import annotations

import html
import json
import logging
import re
import secrets
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any, Literal
from urllib.parse import parse_qsl, urlsplit

from mitmproxy import contentviews, ctx, http

from authtrace.addons import saml
from authtrace.addons.decode import decode_jwt, decode_state
from authtrace.addons.secrets import JWT_RE, SECRET_NAMES, Fingerprinter
from authtrace.store.saml import SamlMessage, SamlSignature, brief, status_name

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
SAML_PARAMS = ("samlrequest", "samlresponse", "samlart")
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

    def saml(self, params: list[tuple[str, str]], binding: Literal["redirect", "post"], raw_query: str | None,
             where: str) -> None:
        """A SAML message the parameters carry, decoded (never its XML: the Response holds a usable
        assertion), its signatures checked with what this session learnt of its issuer."""
        if not any(k.lower() in SAML_PARAMS for k, _ in params):
            return
        ctx_keys = self.keys.context.saml if self.keys.context is not None else None
        as_dict = dict(params)
        msg = (ctx_keys.decode(as_dict, binding, raw_query) if ctx_keys is not None
               else saml.decode_binding(as_dict, binding=binding, raw_query=raw_query))
        if msg is None:
            return
        self.signal = True
        self.saml_message(msg, where, 0)

    def saml_message(self, m: SamlMessage, where: str, depth: int) -> None:
        rows = self.rows
        rows.append((depth, f"SAML {m.kind or 'message'} ({where})", brief(m)))
        d = depth + 1
        if m.problem:
            rows.append((d, "problem", m.problem))
        for k, v in (("ID", m.id), ("Issuer", m.issuer), ("Destination", m.destination),
                     ("InResponseTo", m.in_response_to), ("IssueInstant", self.when(m.issue_instant)),
                     ("AssertionConsumerServiceURL", m.acs_url), ("ProtocolBinding", m.protocol_binding),
                     ("NameIDPolicy", m.nameid_policy), ("IsPassive", _flag(m.is_passive)),
                     ("ForceAuthn", _flag(m.force_authn)), ("NameID", m.subject_nameid),
                     ("SessionIndex", ", ".join(m.session_indexes))):
            if v:
                rows.append((d, k, v))
        if m.status is not None:
            names = "/".join(status_name(c) for c in (m.status.code or "", *m.status.subcodes) if c)
            rows.append((d, "Status", names + (f": {m.status.message}" if m.status.message else "")))
        if m.artifact is not None and m.artifact.type_code is not None:
            rows.append((d, "artifact", f"type {m.artifact.type_code:#06x}, endpoint index "
                                        f"{m.artifact.endpoint_index}, source id {m.artifact.source_id}"))
        if m.kind is not None and m.binding != "artifact":
            rows.append((d, "signature", _signature_text(m.signature_status, m.signature)))
        for a in m.assertions:
            rows.append((d, f"assertion {a.id or '(no ID)'}", None))
            e = d + 1
            conf = "; ".join(" ".join(x for x in ((c.method or "").rsplit(":", 1)[-1],
                                                  f"Recipient {c.recipient}" if c.recipient else "",
                                                  f"NotOnOrAfter {self.when(c.not_on_or_after)}"
                                                  if c.not_on_or_after else "",
                                                  f"InResponseTo {c.in_response_to}" if c.in_response_to else "")
                                      if x) for c in a.confirmations)
            for k, v in (("Issuer", a.issuer), ("NameID", a.subject_nameid), ("NameID format", a.nameid_format),
                         ("SubjectConfirmation", conf), ("NotBefore", self.when(a.not_before, "nbf")),
                         ("NotOnOrAfter", self.when(a.not_on_or_after, "exp")), ("Audience", ", ".join(a.audiences)),
                         ("AuthnInstant", self.when(a.authn_instant)), ("AuthnContextClassRef", a.authn_context_class),
                         ("SessionIndex", a.session_index), ("attribute names", ", ".join(a.attribute_names))):
                if v:
                    rows.append((e, k, v))
            rows.append((e, "signature", _signature_text(a.signature_status, a.signature)))
        if m.encrypted_assertions:
            rows.append((d, "encrypted assertions", str(m.encrypted_assertions)))
        if m.inner is not None:
            self.saml_message(m.inner, f"inside the {m.kind}", d)

    def when(self, t: float | None, name: str = "iat") -> str | None:
        return time_claim(name, t, self.at) if t is not None else None

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
        raw_query = message.path.split("?", 1)[1] if "?" in message.path else None
        b.saml(list(message.query.items(multi=True)), "redirect", raw_query, "HTTP-Redirect")
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
            b.saml(_pairs(text), "post", None, "HTTP-POST")
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
                b.saml([(k, html.unescape(v)) for k, v in fields], "post", None, "the page's form, to be posted")
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


def _flag(v: bool | None) -> str | None:
    return None if v is None else str(v).lower()


def _signature_text(status: str, sig: SamlSignature | None) -> str:
    words = {"verified": "verified against the issuer's certificate (metadata in this session or --saml-cert)",
             "failed": "FAILED", "unknown": "unknown: no certificate of the issuer known in this session",
             "unsigned": "none: not signed"}
    out = words.get(status, status)
    if sig is not None and sig.algorithm:
        out += f" ({sig.algorithm.rsplit('#', 1)[-1]})"
    if sig is not None and sig.note and status != "unknown":
        out += f": {sig.note}"
    return out


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
