"""The timeline's hops as escaped HTML fragments: each hop's summary line and its decoded details.

Why here and not in the Jinja template: a 10,000-hop report is megabytes of rows, and building them
in plain Python, with the parts that repeat (headers, a token at its thirtieth use, the endpoint part
of a summary line) escaped once per distinct value, renders in about half the time (PERF.md).

Safety: every captured value passes through `_e` (MarkupSafe's `escape`, what Jinja's autoescape
uses); markup comes only from constants here. Nothing captured ever becomes an attribute that loads
or navigates (`href`, `src`) or a class name: the only links are `#hop-N` anchors built from hop
numbers and `#tok-<hex>` / `#tok-nN` anchors built from a fingerprint's hex digits (checked by a
regex) or an integer.
"""
from __future__ import annotations

import dataclasses
import re
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any

import orjson
from markupsafe import escape

from authtrace.reports.pii import Pii, compact
from authtrace.store import clock
from authtrace.store.records import Answer, ErrorAnswer, Hop, Role, Signature, StateInfo, Token, as_num
from authtrace.store.saml import SamlMessage, SamlSignature, brief, overall_signature, status_name

LANES = ("browser", "idp", "app", "api")
LANE_TITLES = ("Browser", "Identity provider", "App back channel", "API")
ROLES = tuple(r.value for r in Role)
IDP_ROLES = frozenset({Role.AUTHORIZE, Role.LOGIN, Role.ERROR, Role.LOGOUT, Role.DEVICE, Role.DISCOVERY,
                       Role.JWKS, Role.TOKEN})
TIME_CLAIMS = frozenset({"exp", "nbf", "iat", "auth_time"})
_HL = frozenset({"trace_id", "correlation_id", "request_id", "operation_id", "session_id", "error_codes"})
_SIG_CLASS = {Signature.VERIFIED: "ok", Signature.FAILED: "bad", Signature.NONE: "bad", Signature.UNKNOWN: "muted"}
_STATUS = {2: "ok", 3: "redir", 4: "err", 5: "err"}
_CHIP = {"": "", "err": " err", "fp": " fp"}
_TOK_ID = re.compile(r"[A-Za-z0-9_.-]{1,64}#([0-9a-f]{6,64})")  # what a fingerprint looks like: kind#hex


def _e(s: str) -> str:
    """Escape text for HTML content and quoted attributes."""
    return str(escape(s))


def pretty(v: Any) -> str:
    try:
        return orjson.dumps(v, option=orjson.OPT_INDENT_2 | orjson.OPT_NON_STR_KEYS).decode()
    except (TypeError, orjson.JSONEncodeError):
        return compact(v)


def lane_of(role: Role, actor: str, host: str = "", app_hosts: frozenset[str] | set[str] = frozenset()
            ) -> tuple[int, int]:
    """(from lane, to lane) as indexes of LANES: who sent the request and who answered it."""
    src = 0 if actor == "browser" else 2  # the app's back channel and API clients sit in the app lane
    if role == Role.CALLBACK:
        dst = 2
    elif role in (Role.API, Role.USERINFO):
        dst = 3
    elif role in (Role.ERROR, Role.LOGOUT) and host in app_hosts:
        dst = 2  # the app's own error page or sign-out handler
    elif role in IDP_ROLES:
        dst = 1
    else:
        dst = 2 if host in app_hosts else 3
    return src, dst


def _pairs(d: dict[str, Any], pii: Pii) -> list[tuple[str, str]]:
    if pii.enabled:
        return [(str(k), compact(pii.claim(k, v))) for k, v in d.items()]
    return [(str(k), compact(v)) for k, v in d.items()]


def _table(rows: Iterable[tuple[str, str]], hl: frozenset[str] = frozenset()) -> str:
    out = ['<table class="kv">']
    for k, v in rows:
        out.append(f'<tr class="hl"><th>{_e(k)}</th><td>{_e(v)}</td></tr>' if k in hl
                   else f"<tr><th>{_e(k)}</th><td>{_e(v)}</td></tr>")
    out.append("</table>")
    return "".join(out)


def _section(title: str, inner: str, cls: str = "") -> str:
    return f'<section class="sec{cls}"><h4>{_e(title)}</h4>{inner}</section>'


def _time_note(name: str, value: float, at: float, presented: bool) -> tuple[str, bool]:
    """('expired 3 min before use', bad?) for a time claim, against the time of the hop."""
    diff = value - at
    when = "use" if presented else "this hop"
    if name == "exp":
        if diff <= 0:
            return f"expired {clock.duration(diff)} before {when}", True
        return f"valid {clock.duration(diff)} more at {when}", False
    if name == "nbf":
        if diff > 0:
            return f"not valid until {clock.duration(diff)} after {when} (clock skew?)", True
        return f"valid from {clock.duration(diff)} before {when}", False
    label = "issued" if name == "iat" else "signed in"
    if diff > 30:
        return f"{label} {clock.duration(diff)} after {when} (clock skew?)", True
    return f"{label} {clock.duration(diff)} before {when}", False


def _claims_table(claims: dict[str, Any], at: float | None, presented: bool, pii: Pii) -> tuple[str, list[str]]:
    """The claims as a table with readable times, and the problems worth a chip in the summary."""
    out = ['<table class="kv">']
    flags: list[str] = []
    for k, v in claims.items():
        k = str(k)
        n = as_num(v) if not isinstance(v, str) else None
        if k in TIME_CLAIMS and n is not None and 1e8 < n < 1e11:
            note = ""
            if at is not None:
                text, bad = _time_note(k, n, at, presented)
                note = f' <span class="note{" bad" if bad else ""}">— {_e(text)}</span>'
                if bad:
                    flags.append(f"{k}: {text}")
            out.append(f"<tr><th>{_e(k)}</th><td>{clock.stamp(n)}{note}</td></tr>")
        else:
            out.append(f"<tr><th>{_e(k)}</th><td>{_e(compact(pii.claim(k, v)))}</td></tr>")
    out.append("</table>")
    return "".join(out), flags


@dataclass
class Shared:
    """What one render shares between hops: the PII masker, where each token's full card is, and
    HTML fragments that repeat from hop to hop (a header block, a token at its thirtieth use)."""

    pii: Pii
    hops_of: dict[str, set[int]] = field(default_factory=dict)  # fingerprint -> numbers of the hops carrying it
    cards: dict[str, tuple[str, int]] = field(default_factory=dict)  # fingerprint -> (card id, hop number)
    ids: set[str] = field(default_factory=set)
    sections: dict[tuple[str, tuple[tuple[str, str], ...]], str] = field(default_factory=dict)
    rows: dict[tuple[str, str, bool], str] = field(default_factory=dict)
    middles: dict[tuple[str, ...], str] = field(default_factory=dict)
    heads: dict[tuple[Any, ...], str] = field(default_factory=dict)
    uses: dict[str, tuple[str | None, list[tuple[str, float, str]]]] = field(default_factory=dict)

    def card_id(self, fp: str) -> str:
        """`tok-<hex>` from the fingerprint's own digits (checked: hex only), else `tok-n<N>`."""
        m = _TOK_ID.fullmatch(fp)
        cid = f"tok-{m.group(1)}" if m else ""
        if not cid or cid in self.ids:
            cid = f"tok-n{len(self.ids) + 1}"
        self.ids.add(cid)
        return cid

    def row(self, name: str, value: str, mask: bool = True) -> str:
        """One table row of a value that repeats from hop to hop (actor, client_id, user agent)."""
        key = (name, value, mask)
        out = self.rows.get(key)
        if out is None:
            out = self.rows[key] = (f"<tr><th>{_e(name)}</th>"
                                    f"<td>{_e(self.pii.text(value) if mask else value)}</td></tr>")
        return out

    def kv_section(self, title: str, d: dict[str, Any]) -> str:
        """`_section(title, table of d)`, made once per distinct (title, all-string dict)."""
        items = tuple(d.items())
        for k, v in items:
            if type(v) is not str or type(k) is not str:  # 1 == True == 1.0: only strings make a safe key
                return _section(title, _table(_pairs(d, self.pii)))
        key = (title, items)
        out = self.sections.get(key)
        if out is None:
            out = self.sections[key] = _section(title, _table(_pairs(d, self.pii)))
        return out


def _time_rows(t: Token, pii: Pii) -> tuple[str | None, list[tuple[str, float, str]]]:
    """A token's audience and its exp / nbf as (name, value, readable UTC): what each later use shows."""
    claims = t.claims or {}
    aud = compact(pii.claim("aud", claims["aud"])) if "aud" in claims else None
    times = [(k, n, clock.stamp(n)) for k, n in (("exp", t.exp), ("nbf", t.nbf)) if n is not None and 1e8 < n < 1e11]
    return aud, times


def tokens_html(toks: list[Token], at: float | None, st: Shared, number: int) -> tuple[str, str | None, list[str]]:
    """Token cards of one hop, the audience of the first token and its time problems.

    A token's full card (header and all claims) is printed once, at the first hop that carries it,
    with `id="tok-…"`; each later hop that carries the same fingerprint prints a short card that links
    there and shows only what changes with the hop: audience, expiry against the hop's time (and
    not-before when the token is not valid yet). A token used at a thousand API calls prints its claims
    once."""
    pii = st.pii
    out = []
    aud = None
    flags: list[str] = []
    for t in toks:
        fp, has_claims = t.fingerprint, t.claims is not None
        first = st.cards.get(fp)
        if first is not None:  # seen before: a short card, most of it made once per (token, place)
            hkey = (fp, t.kind, t.where, t.format, t.signature, has_claims)
            head = st.heads.get(hkey)
            if head is None:
                cid, num = first
                head = st.heads[hkey] = (
                    f'<section class="sec token"><h4>{_e(t.kind)} <span class="muted">· {_e(t.where)}</span></h4>'
                    f'<table class="kv"><tr><th>fingerprint</th><td><a href="#{_e(cid)}">{_e(fp)}</a>'
                    f' <span class="muted">· {_e(t.format)} ·</span> <span class="{_SIG_CLASS[t.signature]}">'
                    f'{_e(t.signature.value)}</span> <span class="muted">· {"claims" if has_claims else "first seen"}'
                    f' at #{num}</span></td></tr>')
            parts = [head]
            if has_claims:
                use = st.uses.get(fp)
                if use is None:
                    use = st.uses[fp] = _time_rows(t, pii)
                t_aud, times = use
                if t_aud is not None:
                    parts.append(f"<tr><th>aud</th><td>{_e(t_aud)}</td></tr>")
                    aud = aud or t_aud
                for k, n, when in times:
                    if at is None:
                        if k == "exp":
                            parts.append(f"<tr><th>exp</th><td>{when}</td></tr>")
                        continue
                    text, bad = _time_note(k, n, at, t.presented)
                    if k == "nbf" and not bad:
                        continue  # valid from before this hop: the full card has the time
                    parts.append(f'<tr><th>{k}</th><td>{when} <span class="note{" bad" if bad else ""}">— '
                                 f"{_e(text)}</span></td></tr>")
                    if bad and t.presented:
                        flags.append(f"{k}: {text}")
            parts.append("</table></section>")
            out.append("".join(parts))
            continue
        cid = st.card_id(fp)
        st.cards[fp] = (cid, number)
        rows = (f'<table class="kv"><tr><th>fingerprint</th><td>{_e(fp)}</td></tr>'
                f'<tr><th>format</th><td>{_e(t.format)}</td></tr>'
                f'<tr><th>signature</th><td><span class="{_SIG_CLASS[t.signature]}">{_e(t.signature.value)}'
                f'</span></td></tr>')
        n_hops = len(st.hops_of.get(fp, ()))
        if n_hops > 1:
            rows += f"<tr><th>seen</th><td>at {n_hops} hops (the later ones link here)</td></tr>"
        rows += "</table>"
        parts = [f'<section class="sec token" id="{_e(cid)}"><h4>{_e(t.kind)} '
                 f'<span class="muted">· {_e(t.where)}</span></h4>', rows]
        if t.claims is not None:
            if t.header:
                parts.append("<h5>Header</h5>" + _table(_pairs(t.header, pii)))
            table, problems = _claims_table(t.claims, at, t.presented, pii)
            parts.append("<h5>Claims</h5>" + table)
            if aud is None and "aud" in t.claims:
                aud = compact(pii.claim("aud", t.claims["aud"]))
            if t.presented:
                flags += problems
        parts.append("</section>")
        out.append("".join(parts))
    return "".join(out), aud, flags


def _state_rows(h: Hop, info: StateInfo | None, pii: Pii) -> str:
    rows = []
    if h.state:
        if info is not None and info.format == "jwt":
            rows.append(("state", "(a JWT: its signature is not shown; header and claims below)"))
        elif info is not None and info.format == "opaque":
            rows.append(("state", pii.text(h.state)))
            rows.append(("format", f"opaque, {info.length} characters"))
        else:
            rows.append(("state", pii.text(h.state)))
    if h.nonce:
        rows.append(("nonce", pii.text(h.nonce)))
    pre = ""
    if info is not None and info.format != "opaque":
        rows.append(("format", info.format))
        rest = {k: v for k, v in (("value", info.value), ("header", info.header), ("claims", info.claims),
                                  ("user_state", info.user_state)) if v is not None}
        if rest:
            pre = f"<pre>{_e(pretty(pii.deep(rest)))}</pre>"
    return _section("State", _table(rows) + pre)


def _error_rows(err: ErrorAnswer) -> list[tuple[str, str]]:
    """The error's fields, most telling first; the ids a provider's support asks for are highlighted."""
    rows = [(k, v) for k, v in (("error", err.error), ("error_description", err.error_description),
                                ("error_codes", ", ".join(str(c) for c in err.error_codes)),
                                ("inner_code", err.inner_code or ""), ("message", err.message),
                                ("suberror", err.suberror or ""), ("error_uri", err.error_uri or ""),
                                ("provider", err.provider or ""), ("read from", err.source)) if v]
    rows += [(f"detail {n}" if len(err.details) > 1 else "detail", d) for n, d in enumerate(err.details, 1) if d]
    rows += list(err.ids().items())
    return rows + [(k, v) for k, v in err.extra.items()]


def _answer_html(answer: Answer, err: ErrorAnswer | None, st: Shared) -> str:
    out = []
    txt = st.pii.text
    rows = [(k, txt(v)) for k, v in (("location", answer.location or ""), ("issued_code", answer.issued_code or ""),
                                     ("form_post", "true" if answer.form_post else ""),
                                     ("issued_tokens", ", ".join(answer.issued_tokens)),
                                     ("issuer", answer.issuer or ""), ("kids", ", ".join(answer.kids))) if v]
    if rows:
        out.append(_section("Response", _table(rows)))
    fields = answer.fields
    if fields and err is not None:  # an error answer: its fields are in the Error box already
        fields = {k: v for k, v in fields.items() if not k.startswith("error")}
    if fields:
        out.append(st.kv_section("Response · fields", fields))
    if answer.www_authenticate:
        out.append(st.kv_section("Response · WWW-Authenticate", answer.www_authenticate))
    return "".join(out)


_SAML_SIG = {"verified": "ok", "failed": "bad", "unsigned": "bad", "unknown": "muted"}
NAMES_ONLY = ' <span class="muted">(names only: values are never stored)</span>'
_BINDING = {"redirect": "HTTP-Redirect", "post": "HTTP-POST", "artifact": "HTTP-Artifact", "soap": "SOAP"}


def _short_uri(uri: str | None) -> str:
    """`urn:oasis:names:tc:SAML:2.0:nameid-format:transient` -> `transient` (the rest of the URI is noise)."""
    return (uri or "").rsplit(":", 1)[-1].rsplit("#", 1)[-1] if uri else ""


def _saml_time(name: str, value: float | None, at: float | None) -> str | None:
    """A SAML time as UTC with how it relates to the hop ('expired 1.2 s before this hop'), escaped HTML."""
    if value is None:
        return None
    if at is None or name not in ("exp", "nbf", "iat"):
        return clock.stamp(value)
    text, bad = _time_note(name, value, at, False)
    return f'{clock.stamp(value)} <span class="note{" bad" if bad else ""}">— {_e(text)}</span>'


def _sig_cell(status: str, sig: SamlSignature | None) -> str:
    bits = [f'<span class="{_SAML_SIG.get(status, "muted")}">{_e(status)}</span>']
    if sig is not None:
        if sig.algorithm:
            bits.append(f'<span class="muted">{_e(_short_uri(sig.algorithm))}</span>')
        if sig.verified_with:
            bits.append(f'<span class="muted">with sha256 {_e(sig.verified_with[:16])}…</span>')
        if sig.note:
            bits.append(_e(sig.note))
    return " · ".join(bits)


def _rows_html(rows: list[tuple[str, str | None]]) -> str:
    """A key/value table whose values are already escaped HTML; empty values left out."""
    return '<table class="kv">' + "".join(f"<tr><th>{_e(k)}</th><td>{v}</td></tr>" for k, v in rows if v) + "</table>"


def saml_html(m: SamlMessage, at: float | None, st: Shared, where: str = "request") -> str:
    """A decoded SAML message as a card, like a token's: what it asks or answers, its status, its
    signature (verified against the issuer's certificate, failed, unknown or unsigned), and each
    assertion with its subject (masked with --redact-pii), conditions and their times against the hop's,
    audience, confirmation, authentication and attribute names. Nothing raw: no XML, no attribute value."""
    pii = st.pii
    txt = pii.text

    def person(v: str | None) -> str | None:
        return None if not v else _e(pii.mask("user", v) if pii.enabled else v)

    head = (f'<section class="sec token saml"><h4>SAML {_e(m.kind or "message")} <span class="muted">· '
            f'{_e(_BINDING.get(m.binding, m.binding))} · {_e(where)}</span></h4>')
    rows: list[tuple[str, str | None]] = [
        ("problem", f'<span class="bad">{_e(m.problem)}</span>' if m.problem else None),
        ("ID", _e(m.id or "")), ("Issuer", _e(txt(m.issuer or ""))), ("Destination", _e(txt(m.destination or ""))),
        ("InResponseTo", _e(m.in_response_to or "")), ("IssueInstant", _saml_time("iat", m.issue_instant, at))]
    st_ = m.status
    if st_ is not None:
        names = "/".join(status_name(c) for c in (st_.code or "", *st_.subcodes) if c)
        cls = "ok" if st_.success else "bad"
        rows.append(("Status", f'<span class="{cls}">{_e(names or "(none)")}</span>'
                               + (f" — {_e(txt(st_.message))}" if st_.message else "")))
    if m.kind == "AuthnRequest":
        policy = _short_uri(m.nameid_policy) + (f" (AllowCreate={str(m.allow_create).lower()})"
                                                if m.allow_create is not None else "")
        rows += [("AssertionConsumerServiceURL", _e(txt(m.acs_url or ""))),
                 ("AssertionConsumerServiceIndex", str(m.acs_index) if m.acs_index is not None else None),
                 ("ProtocolBinding", _e(_short_uri(m.protocol_binding))), ("NameIDPolicy", _e(policy.strip())),
                 ("IsPassive", "true" if m.is_passive else None), ("ForceAuthn", "true" if m.force_authn else None),
                 ("RequestedAuthnContext", _e(", ".join(_short_uri(c) for c in m.requested_authn_context)))]
    rows += [("NameID", person(m.subject_nameid)), ("SessionIndex", _e(", ".join(m.session_indexes)))]
    if m.artifact is not None:
        art = m.artifact
        rows += [("artifact", f"type {art.type_code:#06x}, endpoint index {art.endpoint_index}, source id "
                              f"{_e(art.source_id or '')} (the message handle is secret: not shown)"
                  if art.type_code is not None else None)]
    if m.kind is not None and m.binding != "artifact":
        rows.append(("signature", _sig_cell(m.signature_status, m.signature)))
    if m.encrypted_assertions:
        rows.append(("encrypted assertions", f"{m.encrypted_assertions} (their content cannot be read)"))
    if m.misplaced_assertions:
        rows.append(("misplaced assertions", f'<span class="bad">{m.misplaced_assertions} assertion(s) outside '
                                             "the places a service provider reads them (signature wrapping?): not "
                                             "shown</span>"))
    size = f"{m.size:,} bytes of XML" + (", DEFLATE-compressed" if m.deflated else "") if m.size else ""
    rows += [("RelayState", "sent" if m.relay_state_present else None), ("size", size)]
    parts = [head, _rows_html(rows)]
    for a in m.assertions:
        parts.append(f"<h5>Assertion {_e(a.id or '(no ID)')}</h5>")
        conf = []
        for c in a.confirmations:
            bits = [_e(_short_uri(c.method))]
            if c.recipient:
                bits.append(f"Recipient {_e(txt(c.recipient))}")
            if c.not_on_or_after is not None:
                bits.append(f"NotOnOrAfter {_saml_time('exp', c.not_on_or_after, at)}")
            if c.in_response_to:
                bits.append(f"InResponseTo {_e(c.in_response_to)}")
            conf.append(" · ".join(b for b in bits if b))
        fmt = _short_uri(a.nameid_format)
        rows = [("Issuer", _e(txt(a.issuer or ""))), ("IssueInstant", _saml_time("iat", a.issue_instant, at)),
                ("NameID", (person(a.subject_nameid) or "") + (f' <span class="muted">({_e(fmt)})</span>'
                                                                if fmt and a.subject_nameid else "")),
                ("NameID (encrypted)", "yes" if a.nameid_encrypted else None),
                ("SubjectConfirmation", "<br>".join(conf)),
                ("NotBefore", _saml_time("nbf", a.not_before, at)),
                ("NotOnOrAfter", _saml_time("exp", a.not_on_or_after, at)),
                ("Audience", _e(", ".join(txt(x) for x in a.audiences))),
                ("OneTimeUse", "yes" if a.one_time_use else None),
                ("AuthnInstant", _saml_time("iat", a.authn_instant, at)),
                ("AuthnContextClassRef", _e(_short_uri(a.authn_context_class))),
                ("SessionIndex", _e(a.session_index or "")),
                ("SessionNotOnOrAfter", _saml_time("exp", a.session_not_on_or_after, at)),
                ("attributes", _e(", ".join(a.attribute_names)) + NAMES_ONLY if a.attribute_names else None),
                ("signature", _sig_cell(a.signature_status, a.signature))]
        parts.append(_rows_html(rows))
    parts.append("</section>")
    out = "".join(parts)
    if m.inner is not None:
        out += saml_html(m.inner, at, st, f"inside the {m.kind or 'message'}")
    return out


def saml_chip(m: SamlMessage) -> tuple[str, str]:
    """The summary line's word on a SAML hop: the message, its status and signature."""
    bad = overall_signature(m) in ("failed", "unsigned") or m.problem is not None
    return ("err" if bad else "", brief(m))


def body_html(h: Hop, err: ErrorAnswer | None, st: Shared, tokens: str) -> str:
    """The decoded details of one hop, most useful first: error, request, parameters, state,
    response, tokens, fingerprints and cookies, headers, body excerpt."""
    pii = st.pii
    txt = pii.text
    out: list[str] = []
    if err is not None:  # what went wrong, with the ids a provider's support asks for
        out.append(_section("Error", _table([(k, txt(v)) for k, v in _error_rows(err)], _HL), " error"))
    req = ['<section class="sec"><h4>Request</h4><table class="kv"><tr><th>url</th><td>', _e(txt(h.url)),
           "</td></tr><tr><th>started</th><td>", clock.stamp(h.started), "</td></tr>"]
    if h.duration_ms is not None:
        req.append(f"<tr><th>duration</th><td>{h.duration_ms:.0f} ms</td></tr>")
    req.append(st.row("actor", h.actor.value, False))
    if h.client_id:
        req.append(st.row("client_id", h.client_id))
    if h.user_agent:
        req.append(st.row("user agent", h.user_agent))
    if h.initiator is not None:
        ini = h.initiator
        req += [f"<tr><th>{_e(f'initiator {k}')}</th><td>{_e(txt(v))}</td></tr>"
                for k, v in (("site", ini.site), ("mode", ini.mode), ("dest", ini.dest), ("user", ini.user),
                             ("origin", ini.origin), ("referer", ini.referer)) if v]
    if h.from_fragment:
        req.append("<tr><th>note</th><td>delivered in the fragment of the Location header of the hop before it; "
                   "browsers never send fragments, so this is the callback as the page received it</td></tr>")
    req.append("</table></section>")
    out.append("".join(req))
    for src, values in h.params.sources():
        out.append(st.kv_section(f"Parameters · {src}", values))
    if h.state or h.nonce or h.state_info is not None:
        out.append(_state_rows(h, h.state_info, pii))
    if h.params.saml is not None:
        out.append(saml_html(h.params.saml, h.started, st))
    out.append(_answer_html(h.answer, err, st))
    if h.answer.saml is not None:
        out.append(saml_html(h.answer.saml, h.started, st, "answer"))
    out.append(tokens)
    rows = [("code", h.code_fp)] if h.code_fp else []
    rows += [(f"cookie sent: {k}", v) for k, v in h.cookies_sent.items()]
    if h.cookies_set:
        rows.append(("cookies set", ", ".join(h.cookies_set)))
    if rows:
        out.append(_section("Fingerprints & cookies", _table(rows)))
    for side, headers in (("request", h.request_headers), ("response", h.response_headers)):
        if headers:
            out.append(st.kv_section(f"Headers · {side}", headers))
    if h.body_excerpt:
        out.append(_section("Body excerpt", f"<pre>{_e(txt(h.body_excerpt))}</pre>"))
    return "".join(out)


@dataclass(slots=True)
class HopView:
    """One hop of the timeline: its HTML, and what the findings and the flow legend refer to."""

    number: int
    role: str
    flow: int | None
    fcls: str
    offset: str
    err: bool
    html: str


def hop_view(h: Hop, t0: float, prev: float | None, flow: int | None, st: Shared, app_hosts: set[str]) -> HopView:
    pii = st.pii
    err = h.error
    if err is not None and pii.enabled:
        err = dataclasses.replace(err, error_description=pii.text(err.error_description), message=pii.text(err.message),
                                  extra=pii.deep(err.extra))
    tokens, aud, token_flags = tokens_html(h.tokens, h.started, st, h.number) if h.tokens else ("", None, [])
    # the line under host and path: what a reader scanning the timeline needs
    chips: list[tuple[str, str]] = []
    if err is not None:
        d = err.error_description or err.message
        e = err.error or "error"
        chips.append(("err", f"{e}: {d}" if d else e))
    chips += [("err", f"token {f}") for f in token_flags[:1]]
    for m in (h.params.saml, h.answer.saml):
        if m is not None:
            chips.append(saml_chip(m))
    if h.code_fp:
        issued = h.answer.issued_code == h.code_fp and h.role != Role.CALLBACK
        chips.append(("fp", f"{'issued ' if issued else ''}{h.code_fp}"))
    grant = h.params.form.get("grant_type") or h.params.json.get("grant_type")
    if h.role == Role.TOKEN and grant:
        chips.append(("", f"grant_type={grant}"))
    if aud and h.role in (Role.API, Role.USERINFO):
        chips.append(("", f"aud {aud}"))
    if h.answer.location and h.status and 300 <= h.status < 400:
        chips.append(("", "→ " + pii.text(h.answer.location)))
    status_cls = _STATUS.get(h.status // 100, "") if h.status else "none"
    fcls = f"f{(flow - 1) % 8}" if flow else ""
    offset = clock.offset(h.started - t0)
    t_prev = f" · Δ {clock.offset(h.started - prev)}" if prev is not None else ""
    chip_html = "".join(f'<span class="chip{_CHIP[c]}">{_e(text)}</span>' for c, text in chips)
    chip_html = f'<span class="chips">{chip_html}</span>' if chip_html else ""
    flow_html = f'<span class="ftag {fcls}">F{flow}</span>' if flow else ""
    # lanes, role, method, host and path: the same for every call of one endpoint, made once
    mkey = (h.role.value, h.actor.value, h.host, h.method, h.path)
    middle = st.middles.get(mkey)
    if middle is None:
        src, dst = lane_of(h.role, h.actor.value, h.host, app_hosts)
        lo, hi = min(src, dst), max(src, dst)
        direction = "s" if src == dst else ("r" if dst > src else "l")
        middle = st.middles[mkey] = (
            f'<span class="lanes"><span class="arrow c{lo}{hi} {direction} to-{LANES[dst]}"><i></i></span></span>'
            f'<span class="role r-{h.role.value}">{_e(h.role.value)}</span>'
            f'<span class="what"><span class="req"><b>{_e(h.method)}</b> '
            f'<span class="host">{_e(pii.text(h.host))}</span><span class="path">{_e(pii.text(h.path))}</span></span>')
    n = h.number
    summary = (
        f'<details class="hop{" is-err" if h.is_error else ""}" data-hop="{n}">'
        f'<summary><span class="seq">#{n}</span><span class="time">{clock.time_of_day(h.started)}'
        f'<small>{offset}{t_prev}</small></span>'
        f'{middle}{chip_html}</span>'
        f'<span class="status s-{status_cls}">{h.status if h.status else "—"}</span>'
        f'<span class="flow">{flow_html}</span></summary>\n<div class="body" id="hop-{n}">'
    )
    body = body_html(h, err, st, tokens)
    return HopView(n, h.role.value, flow, fcls, offset, h.is_error, f"{summary}{body}</div>\n</details>\n")
