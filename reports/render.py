"""Stored hops, tokens and findings -> one self-contained HTML timeline, safe to attach to a ticket.

`render_html(session, hops, tokens, findings, redact_pii=False)` is pure: data in, HTML text out.
`write_report(html, path)` runs the leak check and refuses (`LeakError`, one sentence) to write a
report that holds a raw secret.

Safety rules the output keeps:
* every captured string is hostile input. The page around the timeline and the findings come from
  the Jinja2 template (`autoescape=True`, `StrictUndefined`); each hop (its summary line and its
  decoded details) is built here by `_hop_view` / `_body_html` / `_tokens_html`, where every value
  passes through MarkupSafe's escaper (`_e`, the one Jinja uses) and markup comes only from constants.
  Nothing captured ever becomes an attribute that loads or navigates (`href`, `src`) or a class name:
  the only links are `#hop-N` / `#finding-N` anchors built from integers and `#tok-<hex>` / `#tok-nN`
  anchors built from a fingerprint's hex digits (checked by a regex) or an integer;
* no script at all; the one inline `<style>` is allowed by its SHA-256 in a strict
  Content-Security-Policy (`default-src 'none'`), so the file makes no request of any kind;
* everything reads with scripting off: hop details are `<details>/<summary>`, opened for print, and
  following a `#hop-N` or `#tok-…` link opens the hop it lands in.

Speed: each hop is precomputed here in plain Python (times, lanes, flow groups, its details as one
escaped HTML string) and spliced into the page once, not passed through the template. A token's full
card (header, all claims) is printed once, at the first hop that carries it; its later uses print a
short card (fingerprint linking to the full one, aud, exp against the hop's time) made mostly from
fragments cached per fingerprint. Blocks that repeat from hop to hop (headers, query parameters,
user agent, the endpoint part of the summary line) are escaped once per distinct value (`_Shared`).
10,000 hops (300 sign-ins, 30 API calls each) render in about half a second.
"""
from __future__ import annotations

import base64
import hashlib
import html
import os
import re
import time
from functools import lru_cache
from typing import Any, Iterable

import orjson
from jinja2 import Environment, FileSystemLoader, StrictUndefined
from markupsafe import Markup

from authtrace.reports.leakcheck import LeakError, describe, scan

__all__ = ["render_html", "write_report", "LeakError", "flow_groups", "lane_of", "verdict", "style_hash"]

TEMPLATE_DIR = os.path.join(os.path.dirname(os.path.abspath(__file__)), "templates")

SEVERITIES = ("error", "warning", "info")
ROLES = ("authorize", "login", "callback", "token", "api", "userinfo", "discovery", "jwks", "logout",
         "device", "error")
LANES = ("browser", "idp", "app", "api")
LANE_TITLES = ("Browser", "Identity provider", "App back channel", "API")
IDP_ROLES = frozenset({"authorize", "login", "error", "logout", "device", "discovery", "jwks", "token"})
# claims (and parameters) whose value identifies a person; masked with --redact-pii
PII_CLAIMS = {"email": "email", "emails": "email", "upn": "user", "preferred_username": "user",
              "unique_name": "user", "name": "name", "given_name": "name", "family_name": "name",
              "oid": "oid", "ipaddr": "ip", "login_hint": "user", "username": "user", "login": "user",
              "verified_primary_email": "email", "verified_secondary_email": "email"}
MAX_EVIDENCE = 24  # evidence links shown per finding
MAX_FLOWS = 24  # sign-in flows listed in the overview
TIME_CLAIMS = frozenset({"exp", "nbf", "iat", "auth_time"})
_PRESENTED = ("request.", "form.", "query.")  # a token in these places is being used, not issued
HOP_FIELDS = ("id", "seq", "started", "duration_ms", "role", "method", "url", "host", "path", "status",
              "is_error", "actor", "user_agent", "code_fp", "state", "nonce", "client_id", "initiator",
              "params", "response", "state_decoded", "error", "headers", "cookies", "body_excerpt", "note")
TOKEN_FIELDS = ("hop_id", "where", "kind", "fingerprint", "format", "header", "claims", "signature")
SESSION_FIELDS = ("id", "name", "source", "kind", "first_seen", "last_seen", "flows_seen", "hops", "problem")


# ---- environment ------------------------------------------------------------------------------

@lru_cache(maxsize=1)
def _env() -> Environment:
    return Environment(loader=FileSystemLoader(TEMPLATE_DIR), autoescape=True, undefined=StrictUndefined,
                       trim_blocks=True, lstrip_blocks=True, auto_reload=False)


@lru_cache(maxsize=1)
def _css() -> str:
    with open(os.path.join(TEMPLATE_DIR, "report.css"), encoding="utf-8") as fh:
        css = fh.read()
    if "</" in css:  # the stylesheet is static; this guards against an edit that would end <style>
        raise ValueError("report.css must not contain '</'")
    return css


def style_hash(css: str) -> str:
    """The CSP source expression that allows exactly this inline stylesheet."""
    return "'sha256-" + base64.b64encode(hashlib.sha256(css.encode("utf-8")).digest()).decode() + "'"


@lru_cache(maxsize=1)
def _version() -> str:
    try:
        from importlib.metadata import version

        return version("authtrace")
    except Exception:
        return ""


# ---- small formatters ---------------------------------------------------------------------------

try:  # MarkupSafe's C escaper (what Jinja2 itself uses): the same output as Jinja's autoescape
    from markupsafe._speedups import _escape_inner as _e  # type: ignore[import-not-found]
except ImportError:  # pragma: no cover - pure-Python MarkupSafe
    def _e(s: str) -> str:
        """Escape text for HTML content and quoted attributes."""
        return html.escape(s, quote=True)


_FIELD_SETS: dict[tuple[str, ...], frozenset] = {}


def _as_dict(o: Any, fields: tuple[str, ...]) -> dict:
    """A row as a plain dict: dicts pass through, model objects give their loaded column values."""
    if isinstance(o, dict):
        return o
    d = getattr(o, "__dict__", None)
    if isinstance(d, dict):
        need = _FIELD_SETS.get(fields)
        if need is None:
            need = _FIELD_SETS[fields] = frozenset(fields)
        if d.keys() >= need:  # every column loaded (none expired)
            return d
    return {f: getattr(o, f, None) for f in fields}


def _num(v: Any) -> float | None:
    return float(v) if isinstance(v, (int, float)) and not isinstance(v, bool) else None


def utc(t: float | None, ms: bool = False, date: bool = False) -> str:
    if t is None:
        return "—"
    try:
        g = time.gmtime(t)
    except (OverflowError, OSError, ValueError):
        return str(t)
    s = f"{g.tm_hour:02d}:{g.tm_min:02d}:{g.tm_sec:02d}"
    if ms:
        s += f".{int((t % 1) * 1000):03d}"
    if date:
        s = f"{g.tm_year:04d}-{g.tm_mon:02d}-{g.tm_mday:02d} {s}"
    return s


def delta(s: float) -> str:
    """+1.234 s, +2 min 03.5 s, +1 h 04 min."""
    sign = "+" if s >= 0 else "−"
    a = abs(s)
    if a < 60:
        return f"{sign}{a:.3f} s"
    if a < 3600:
        m, sec = divmod(a, 60)
        return f"{sign}{int(m)} min {sec:04.1f} s"
    h, rem = divmod(a, 3600)
    if h < 48:
        return f"{sign}{int(h)} h {int(rem // 60):02d} min"
    return f"{sign}{int(h // 24)} d {int(h % 24)} h"


def span(s: float) -> str:
    """A readable length of time: 42 s, 3 min, 2.5 h, 4 d."""
    a = abs(s)
    if a < 90:
        return f"{round(a)} s"
    if a < 5400:
        return f"{round(a / 60)} min"
    if a < 172800:
        return f"{a / 3600:.1f} h".replace(".0 h", " h")
    return f"{round(a / 86400)} d"


def _compact(v: Any) -> str:
    if isinstance(v, str):
        return v
    if v is None:
        return "null"
    if isinstance(v, bool):
        return "true" if v else "false"
    if isinstance(v, (int, float)):
        return str(v)
    try:
        return orjson.dumps(v, option=orjson.OPT_NON_STR_KEYS).decode()
    except (TypeError, orjson.JSONEncodeError):
        return repr(v)


def pretty(v: Any) -> str:
    try:
        return orjson.dumps(v, option=orjson.OPT_INDENT_2 | orjson.OPT_NON_STR_KEYS).decode()
    except (TypeError, orjson.JSONEncodeError):
        import json

        return json.dumps(v, indent=2, default=repr, ensure_ascii=False)


def lcfirst(s: str) -> str:
    """'The code was…' -> 'the code was…' (but 'AADSTS54005…', 'PKCE…' stay as they are)."""
    if len(s) > 1 and s[0].isupper() and s[1].islower():
        return s[0].lower() + s[1:]
    return s


# ---- PII masking --------------------------------------------------------------------------------

_EMAIL = re.compile(r"[A-Za-z0-9._%+-]+(?:@|%40)[A-Za-z0-9-]+(?:\.[A-Za-z0-9-]+)*\.[A-Za-z]{2,}")
_IPV4 = re.compile(r"(?<![\w./:-])(?:(?:25[0-5]|2[0-4]\d|1?\d?\d)\.){3}(?:25[0-5]|2[0-4]\d|1?\d?\d)(?![\w.-])")
_IPV6 = re.compile(r"(?i)(?<![\w:.-])(?=[0-9a-f:]*::|(?:[0-9a-f]{1,4}:){7})(?:[0-9a-f]{0,4}:){2,7}[0-9a-f]{0,4}"
                   r"(?![\w:.-])")


class _Pii:
    """Masks identifying values: claims and parameters by name (email, upn, name, oid, ipaddr, …), and
    e-mail addresses, IP addresses and the names found in claims anywhere in text. Equal values get
    equal masks (`[email 1]`), so "the same user at both hops" stays visible."""

    def __init__(self, enabled: bool, tokens: Iterable[dict] = ()):
        self.enabled = enabled
        self.masks: dict[tuple[str, str], str] = {}
        self.counts: dict[str, int] = {}
        self.known: re.Pattern | None = None
        self.by_value: dict[str, str] = {}
        if not enabled:
            return
        for t in tokens:
            claims = t.get("claims")
            if isinstance(claims, dict):
                for k, label in PII_CLAIMS.items():
                    v = claims.get(k)
                    if isinstance(v, str) and len(v) >= 3:
                        self.by_value[v.lower()] = self.mask(label, v)
        if self.by_value:
            alternatives = "|".join(re.escape(v) for v in sorted(self.by_value, key=len, reverse=True))
            # whole values only: the name "Al" must not eat into "Alice" or "al@contoso.test"
            self.known = re.compile(rf"(?<![\w@.%-])(?:{alternatives})(?![\w@.%-])", re.IGNORECASE)

    def mask(self, label: str, value: str) -> str:
        key = (label, value.lower())
        m = self.masks.get(key)
        if m is None:
            n = self.counts[label] = self.counts.get(label, 0) + 1
            m = self.masks[key] = f"[{label} {n}]"
        return m

    def text(self, s: Any) -> Any:
        if not self.enabled or not isinstance(s, str) or not s:
            return s
        if self.known is not None:
            s = self.known.sub(lambda m: self.by_value.get(m.group(0).lower(), "[pii]"), s)
        if "@" in s or "%40" in s:
            s = _EMAIL.sub(self._email, s)
        if "." in s:
            s = _IPV4.sub(lambda m: self.mask("ip", m.group(0)), s)
        if "::" in s or s.count(":") >= 7:
            s = _IPV6.sub(lambda m: self.mask("ip", m.group(0)), s)
        return s

    def _email(self, m: re.Match) -> str:
        value = m.group(0).replace("%40", "@")
        return self.by_value.get(value.lower()) or self.mask("email", value)

    def claim(self, key: Any, v: Any) -> Any:
        if not self.enabled:
            return v
        label = PII_CLAIMS.get(key.lower()) if isinstance(key, str) else None
        if label is not None and v is not None:
            if isinstance(v, list):
                return [self.mask(label, _compact(x)) for x in v]
            return self.mask(label, _compact(v))
        return self.deep(v)

    def deep(self, v: Any) -> Any:
        if not self.enabled:
            return v
        if isinstance(v, str):
            return self.text(v)
        if isinstance(v, dict):
            return {k: self.claim(k, x) for k, x in v.items()}
        if isinstance(v, list):
            return [self.deep(x) for x in v]
        return v


# ---- lanes and flows ----------------------------------------------------------------------------

def lane_of(role: str, actor: str, host: str = "", app_hosts: frozenset | set = frozenset()) -> tuple[int, int]:
    """(from lane, to lane) as indexes of LANES: who sent the request and who answered it."""
    src = 0 if actor == "browser" else 2  # the app's back channel and API clients sit in the app lane
    if role == "callback":
        dst = 2
    elif role in ("api", "userinfo"):
        dst = 3
    elif role in ("error", "logout") and host in app_hosts:
        dst = 2  # the app's own error page or sign-out handler
    elif role in IDP_ROLES:
        dst = 1
    else:
        dst = 2 if host in app_hosts else 3
    return src, dst


def _key(h: dict) -> Any:
    hid = h.get("id")
    return hid if hid is not None else ("seq", h.get("seq"))


def flow_groups(hops: list[Any], tokens_by_hop: dict[Any, list[Any]] | None = None) -> dict[Any, int]:
    """hop id -> flow number (1, 2, … in order of first appearance) for the hops of one sign-in:
    union-find over shared state, code fingerprint and nonce (an id_token's `nonce` claim counts, and
    so does the fingerprint of an access or ID token carried by several hops). Hops that share nothing
    with another hop get no number."""
    parent: dict[Any, Any] = {}

    def find(x: Any) -> Any:
        root = x
        while parent[root] != root:
            root = parent[root]
        while parent[x] != root:
            parent[x], x = root, parent[x]
        return root

    owner: dict[tuple[str, str], Any] = {}
    rows = [_as_dict(h, HOP_FIELDS) for h in hops]
    for h in rows:
        key = _key(h)
        parent.setdefault(key, key)
        links = [(name, str(h[name])) for name in ("state", "code_fp", "nonce") if h.get(name)]
        resp = h.get("response")
        if isinstance(resp, dict) and isinstance(resp.get("issued_code"), str):
            links.append(("code_fp", resp["issued_code"]))
        for t in (tokens_by_hop or {}).get(key, ()):
            t = _as_dict(t, TOKEN_FIELDS)
            claims = t.get("claims")
            if isinstance(claims, dict) and isinstance(claims.get("nonce"), str):
                links.append(("nonce", claims["nonce"]))
            if t.get("kind") in ("access_token", "id_token") and t.get("fingerprint"):
                links.append(("token", str(t["fingerprint"])))
        for link in links:
            other = owner.setdefault(link, key)
            if other != key:
                a, b = find(key), find(other)
                if a != b:
                    parent[b] = a
    sizes: dict[Any, int] = {}
    roots = {}
    for h in rows:
        key = _key(h)
        r = roots[key] = find(key)
        sizes[r] = sizes.get(r, 0) + 1
    numbers: dict[Any, int] = {}
    out: dict[Any, int] = {}
    for h in rows:
        key = _key(h)
        r = roots[key]
        if sizes[r] < 2:
            continue
        if r not in numbers:
            numbers[r] = len(numbers) + 1
        out[key] = numbers[r]
    return out


# ---- verdict ------------------------------------------------------------------------------------

def _severity(f: dict) -> str:
    s = str(f.get("severity", "")).lower()
    return s if s in SEVERITIES else "info"


def sort_findings(findings: Iterable[dict]) -> list[dict]:
    return sorted(findings, key=lambda f: SEVERITIES.index(_severity(f)))


def verdict(findings: list[dict], n_hops: int, n_flows: int = 0) -> tuple[str, str]:
    """(severity class, one sentence): what a reader must know before scrolling."""
    if n_hops == 0:
        return "info", (f"No sign-in traffic found: none of the {n_flows} captured flows was an auth hop"
                        if n_flows else "No sign-in traffic found in this capture")
    ordered = sort_findings(findings)
    serious = [f for f in ordered if _severity(f) in ("error", "warning")]
    if not serious:
        notes = f" ({len(ordered)} note{'s' if len(ordered) != 1 else ''} below)" if ordered else ""
        return "ok", f"No problem found in {n_hops} auth hop{'s' if n_hops != 1 else ''}{notes}"
    top = serious[0]
    title = str(top.get("title") or top.get("kind") or "a problem was found").strip().rstrip(".")
    more = len(serious) - 1
    tail = f" (and {more} more finding{'s' if more != 1 else ''} below)" if more else ""
    prefix = "Sign-in failed" if _severity(top) == "error" else "Warning"
    return _severity(top), f"{prefix}: {lcfirst(title)}{tail}"


# ---- a hop's details: escaped HTML built here ---------------------------------------------------

_HL = frozenset({"trace_id", "correlation_id", "error_codes"})
_SIG_CLASS = {"verified": "ok", "failed": "bad", "none": "bad", "unknown": "muted"}
_STATUS = {2: "ok", 3: "redir", 4: "err", 5: "err"}
_ERROR_ORDER = ("error", "error_description", "error_codes", "suberror", "trace_id", "correlation_id",
                "timestamp", "error_uri", "message")


def _pairs(d: Any, pii: _Pii) -> list[tuple[str, str]]:
    if not isinstance(d, dict):
        return []
    if pii.enabled:
        return [(str(k), _compact(pii.claim(k, v))) for k, v in d.items()]
    return [(str(k), _compact(v)) for k, v in d.items()]


def _table(rows: Iterable[tuple[str, str]], hl: frozenset = frozenset()) -> str:
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
        return (f"expired {span(diff)} before {when}", True) if diff <= 0 else (f"valid {span(diff)} more at {when}",
                                                                                 False)
    if name == "nbf":
        if diff > 0:
            return f"not valid until {span(diff)} after {when} (clock skew?)", True
        return f"valid from {span(diff)} before {when}", False
    label = "issued" if name == "iat" else "signed in"
    if diff > 30:
        return f"{label} {span(diff)} after {when} (clock skew?)", True
    return f"{label} {span(diff)} before {when}", False


def _claims_table(claims: dict, at: float | None, presented: bool, pii: _Pii,
                  only: tuple[str, ...] = ()) -> tuple[str, list[str]]:
    """The claims as a table with readable times, and the problems worth a chip in the summary."""
    out = ['<table class="kv">']
    flags: list[str] = []
    for k, v in claims.items():
        k = str(k)
        if only and k not in only:
            continue
        n = _num(v)
        if k in TIME_CLAIMS and n is not None and 1e8 < n < 1e11:
            note = ""
            if at is not None:
                text, bad = _time_note(k, n, at, presented)
                note = f' <span class="note{" bad" if bad else ""}">— {_e(text)}</span>'
                if bad:
                    flags.append(f"{k}: {text}")
            out.append(f"<tr><th>{_e(k)}</th><td>{utc(n, date=True)} UTC{note}</td></tr>")
        else:
            out.append(f"<tr><th>{_e(k)}</th><td>{_e(_compact(pii.claim(k, v)))}</td></tr>")
    out.append("</table>")
    return "".join(out), flags


_TOK_ID = re.compile(r"[A-Za-z0-9_.-]{1,64}#([0-9a-f]{6,64})")  # what a fingerprint looks like: kind#hex


class _Shared:
    """What one render shares between hops: the PII masker, where each token's full card is, and
    HTML fragments that repeat from hop to hop (a header block, a token at its thirtieth use)."""

    def __init__(self, pii: _Pii, toks: list[dict]):
        self.pii = pii
        self.cards: dict[str, tuple[str, Any]] = {}  # fingerprint -> (element id of its full card, hop number)
        self.ids: set[str] = set()
        self.sections: dict[tuple, str] = {}
        self.rows: dict[tuple, str] = {}
        self.middles: dict[tuple, str] = {}
        self.heads: dict[tuple, str] = {}
        self.uses: dict[str, tuple] = {}  # fingerprint -> (aud, exp / nbf): what its later uses print
        self.hops_of: dict[str, set] = {}  # fingerprint -> the hops that carry it
        for t in toks:
            fp = t.get("fingerprint")
            if fp:
                self.hops_of.setdefault(str(fp), set()).add(t.get("hop_id"))

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

    def kv_section(self, title: str, d: dict) -> str:
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


def _time_rows(claims: dict, pii: _Pii) -> tuple[str | None, list[tuple[str, float, str]]]:
    """A token's audience and its exp / nbf as (name, value, readable UTC): what each later use shows."""
    aud = _compact(pii.claim("aud", claims["aud"])) if "aud" in claims else None
    times = []
    for k in ("exp", "nbf"):
        n = _num(claims.get(k))
        if n is not None and 1e8 < n < 1e11:
            times.append((k, n, f"{utc(n, date=True)} UTC"))
    return aud, times


def _tokens_html(toks: list[dict], at: float | None, st: _Shared, ref: tuple) -> tuple[str, str | None, list[str]]:
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
        fp = str(t.get("fingerprint") or "")
        where = str(t.get("where") or "")
        kind = str(t.get("kind") or "token")
        claims = t.get("claims")
        has_claims = isinstance(claims, dict)
        presented = where.startswith(_PRESENTED)
        first = st.cards.get(fp) if fp else None
        if first is not None:  # seen before: a short card, most of it made once per (token, place)
            sig = str(t.get("signature") or "unknown")
            hkey = (fp, kind, where, str(t.get("format") or ""), sig, has_claims)
            head = st.heads.get(hkey)
            if head is None:
                cid, num = first
                head = st.heads[hkey] = (
                    f'<section class="sec token"><h4>{_e(kind)} <span class="muted">· {_e(where)}</span></h4>'
                    f'<table class="kv"><tr><th>fingerprint</th><td><a href="#{_e(cid)}">{_e(fp)}</a>'
                    f' <span class="muted">· {_e(hkey[3])} ·</span> <span class="{_SIG_CLASS.get(sig, "muted")}">'
                    f'{_e(sig)}</span> <span class="muted">· {"claims" if has_claims else "first seen"} at '
                    f'#{_e(str(num))}</span></td></tr>')
            parts = [head]
            if has_claims:
                use = st.uses.get(fp)
                if use is None:
                    use = st.uses[fp] = _time_rows(claims, pii)
                t_aud, times = use
                if t_aud is not None:
                    parts.append(f"<tr><th>aud</th><td>{_e(t_aud)}</td></tr>")
                    if aud is None:
                        aud = t_aud
                for k, n, when in times:
                    if at is None:
                        if k == "exp":
                            parts.append(f"<tr><th>exp</th><td>{when}</td></tr>")
                        continue
                    text, bad = _time_note(k, n, at, presented)
                    if k == "nbf" and not bad:
                        continue  # valid from before this hop: the full card has the time
                    parts.append(f'<tr><th>{k}</th><td>{when} <span class="note{" bad" if bad else ""}">— '
                                 f"{_e(text)}</span></td></tr>")
                    if bad and presented:
                        flags.append(f"{k}: {text}")
            parts.append("</table></section>")
            out.append("".join(parts))
            continue
        # first sight (or no fingerprint): the full card
        sig = str(t.get("signature") or "unknown")
        cid = ""
        if fp:
            cid = st.card_id(fp)
            st.cards[fp] = (cid, ref[1])
        rows = (f'<table class="kv"><tr><th>fingerprint</th><td>{_e(fp)}</td></tr>'
                f'<tr><th>format</th><td>{_e(str(t.get("format") or ""))}</td></tr>'
                f'<tr><th>signature</th><td><span class="{_SIG_CLASS.get(sig, "muted")}">{_e(sig)}</span></td></tr>')
        n_hops = len(st.hops_of.get(fp, ())) if fp else 0
        if n_hops > 1:
            rows += f"<tr><th>seen</th><td>at {n_hops} hops (the later ones link here)</td></tr>"
        rows += "</table>"
        id_attr = f' id="{_e(cid)}"' if cid else ""
        parts = [f'<section class="sec token"{id_attr}><h4>{_e(kind)} '
                 f'<span class="muted">· {_e(where)}</span></h4>', rows]
        if has_claims:
            header = t.get("header")
            if isinstance(header, dict) and header:
                parts.append("<h5>Header</h5>" + _table(_pairs(header, pii)))
            table, bad = _claims_table(claims, at, presented, pii)
            parts.append("<h5>Claims</h5>" + table)
            if aud is None and "aud" in claims:
                aud = _compact(pii.claim("aud", claims["aud"]))
            if presented:
                flags += bad
        parts.append("</section>")
        out.append("".join(parts))
    return "".join(out), aud, flags


def _state_text(state: str, decoded: Any) -> str:
    if isinstance(decoded, dict) and decoded.get("format") == "jwt":
        return "(a JWT: its signature is not shown; header and claims below)"
    return state


def _body_html(h: dict, started: float | None, err: dict | None, response: dict, st: _Shared,
               tokens_html: str) -> str:
    """The decoded details of one hop, most useful first: error, request, parameters, state,
    response, tokens, fingerprints and cookies, headers, body excerpt."""
    pii = st.pii
    txt = pii.text
    out: list[str] = []
    if err:  # what went wrong, with the ids a provider's support asks for
        rows = [(k, _compact(err[k])) for k in _ERROR_ORDER if k in err]
        rows += [(str(k), _compact(v)) for k, v in err.items() if k not in _ERROR_ORDER]
        out.append(_section("Error", _table(rows, _HL), " error"))
    # the Request box, written out: it is in every hop (values that repeat are escaped once, by st.row)
    req = ['<section class="sec"><h4>Request</h4><table class="kv"><tr><th>url</th><td>',
           _e(txt(str(h.get("url") or ""))), "</td></tr><tr><th>started</th><td>",
           utc(started, ms=True, date=True), " UTC</td></tr>"]
    dur = _num(h.get("duration_ms"))
    if dur is not None:
        req.append(f"<tr><th>duration</th><td>{dur:.0f} ms</td></tr>")
    req.append(st.row("actor", str(h.get("actor") or ""), False))
    if h.get("client_id"):
        req.append(st.row("client_id", str(h["client_id"])))
    if h.get("user_agent"):
        req.append(st.row("user agent", str(h["user_agent"])))
    init = h.get("initiator")
    if isinstance(init, dict):
        req += [f"<tr><th>{_e(f'initiator {k}')}</th><td>{_e(txt(_compact(v)))}</td></tr>" for k, v in init.items()]
    if h.get("note"):
        req.append(f"<tr><th>note</th><td>{_e(txt(str(h['note'])))}</td></tr>")
    req.append("</table></section>")
    out.append("".join(req))
    params = h.get("params")
    if isinstance(params, dict):
        for src, values in params.items():
            if isinstance(values, dict) and values:
                out.append(st.kv_section(f"Parameters · {src}", values))
    state, decoded, nonce = h.get("state"), h.get("state_decoded"), h.get("nonce")
    if state or decoded or nonce:
        rows = []
        if state:
            rows.append(("state", txt(_state_text(str(state), decoded))))
        if nonce:
            rows.append(("nonce", txt(str(nonce))))
        pre = ""
        if isinstance(decoded, dict):
            rows.append(("format", _compact(decoded.get("format", ""))))
            rest = {k: v for k, v in decoded.items() if k != "format"}
            if rest:
                pre = f"<pre>{_e(pretty(pii.deep(rest)))}</pre>"
        out.append(_section("State", _table(rows) + pre))
    if response:
        rows = [(str(k), txt(_compact(v))) for k, v in response.items() if k not in ("fields", "www_authenticate")]
        if rows:
            out.append(_section("Response", _table(rows)))
        fields = response.get("fields")
        if isinstance(fields, dict):
            if err:  # an error answer: its fields are in the Error box already
                fields = {k: v for k, v in fields.items() if k not in err}
            if fields:
                out.append(st.kv_section("Response · fields", fields))
        if isinstance(response.get("www_authenticate"), dict):
            out.append(st.kv_section("Response · WWW-Authenticate", response["www_authenticate"]))
    out.append(tokens_html)
    rows = []
    if h.get("code_fp"):
        rows.append(("code", str(h["code_fp"])))
    cookies = h.get("cookies")
    if isinstance(cookies, dict):
        sent = cookies.get("sent")
        if isinstance(sent, dict):
            rows += [(f"cookie sent: {k}", _compact(v)) for k, v in sent.items()]
        elif isinstance(sent, list):
            rows += [("cookie sent", _compact(v)) for v in sent]
        if isinstance(cookies.get("set"), list) and cookies["set"]:
            rows.append(("cookies set", ", ".join(_compact(v) for v in cookies["set"])))
    if rows:
        out.append(_section("Fingerprints & cookies", _table(rows)))
    headers = h.get("headers")
    if isinstance(headers, dict):
        for side in ("request", "response"):
            if isinstance(headers.get(side), dict) and headers[side]:
                out.append(st.kv_section(f"Headers · {side}", headers[side]))
    if h.get("body_excerpt"):
        out.append(_section("Body excerpt", f"<pre>{_e(txt(str(h['body_excerpt'])))}</pre>"))
    return "".join(out)


def _hop_view(h: dict, i: int, t0: float, prev: float | None, flows: dict, toks: list[dict],
              st: _Shared, app_hosts: set) -> dict:
    """One hop of the timeline as escaped HTML (its summary line and its details), with the values
    the findings and the flow legend refer to."""
    pii = st.pii
    key = _key(h)
    hid, seq = h.get("id"), h.get("seq")
    num = seq if isinstance(seq, int) else i + 1
    anchor = hid if isinstance(hid, int) else f"s{num}"
    role = str(h.get("role") or "")
    actor = str(h.get("actor") or "")
    host = str(h.get("host") or "")
    started = _num(h.get("started"))
    status = h.get("status")
    status = status if isinstance(status, int) and not isinstance(status, bool) else None
    err = h.get("error")
    err = pii.deep(err) if isinstance(err, dict) and err else None
    response = h.get("response")
    response = response if isinstance(response, dict) else {}
    code_fp = h.get("code_fp")
    flow = flows.get(key)

    tokens_html, aud, token_flags = (_tokens_html(toks, started, st, (anchor, num)) if toks
                                     else ("", None, []))
    # the line under host and path: what a reader scanning the timeline needs
    chips: list[tuple[str, str]] = []
    if err:
        e = _compact(err.get("error", "error"))
        d = err.get("error_description") or err.get("message") or ""
        chips.append(("err", f"{e}: {_compact(d)}" if d else e))
    chips += [("err", f"token {f}") for f in token_flags[:1]]
    if code_fp:
        issued = response.get("issued_code") == code_fp and role != "callback"
        chips.append(("fp", f"{'issued ' if issued else ''}{code_fp}"))
    params = h.get("params")
    if role == "token" and isinstance(params, dict):
        form = params.get("form") or params.get("json") or {}
        if isinstance(form, dict) and form.get("grant_type"):
            chips.append(("", f"grant_type={_compact(form['grant_type'])}"))
    if aud and role in ("api", "userinfo"):
        chips.append(("", f"aud {aud}"))
    if response.get("location") and status and 300 <= status < 400:
        chips.append(("", "→ " + pii.text(_compact(response["location"]))))
    status_cls = _STATUS.get(status // 100, "") if status else "none"
    fcls = f"f{(flow - 1) % 8}" if flow else ""
    t_start = delta(started - t0) if started is not None else ""
    t_prev = f"<small>Δ {delta(started - prev)}</small>" if started is not None and prev is not None else ""
    chip_html = "".join(f'<span class="chip{_CHIP[c]}">{_e(text)}</span>' for c, text in chips)
    chip_html = f'<span class="chips">{chip_html}</span>' if chip_html else ""
    flow_html = f'<span class="ftag {fcls}">F{flow}</span>' if flow else ""
    # lanes, role, method, host and path: the same for every call of one endpoint, made once
    method, path = str(h.get("method") or ""), str(h.get("path") or "")
    mkey = (role, actor, host, method, path)
    middle = st.middles.get(mkey)
    if middle is None:
        src, dst = lane_of(role, actor, host, app_hosts)
        lo, hi = min(src, dst), max(src, dst)
        direction = "s" if src == dst else ("r" if dst > src else "l")
        middle = st.middles[mkey] = (
            f'<span class="lanes"><span class="arrow c{lo}{hi} {direction} to-{LANES[dst]}"><i></i></span></span>'
            f'<span class="role r-{role if role in ROLES else "other"}">{_e(role)}</span>'
            f'<span class="what"><span class="req"><b>{_e(method)}</b> '
            f'<span class="host">{_e(pii.text(host))}</span><span class="path">{_e(pii.text(path))}</span></span>')
    # every captured value below passes through _e; classes and numbers are this module's own
    summary = (
        f'<details class="hop{" is-err" if h.get("is_error") else ""}" data-hop="{_e(str(anchor))}">'
        f'<summary><span class="seq">#{_e(str(num))}</span><span class="time">{t_start}{t_prev}</span>'
        f'{middle}{chip_html}</span>'
        f'<span class="status s-{status_cls}">{status if status else "—"}</span><span class="flow">{flow_html}</span>'
        f'</summary>\n<div class="body" id="hop-{_e(str(anchor))}">'
    )
    body = _body_html(h, started, err, response, st, tokens_html)
    return {
        "id": anchor, "num": num, "role": role, "flow": flow, "fcls": fcls, "t0": t_start,
        "err": bool(h.get("is_error")),
        "html": f"{summary}{body}</div>\n</details>\n",
    }


_CHIP = {"": "", "err": " err", "fp": " fp"}
_TIMELINE = "<!-- timeline -->"


def _finding_view(f: dict, n: int, hop_index: dict, pii: _Pii) -> dict:
    sev = _severity(f)
    evidence = []
    ev = f.get("evidence") or []
    for e in ev if isinstance(ev, list) else [ev]:
        hv = hop_index.get(e)
        if hv is None and isinstance(e, str) and e.isdigit():
            hv = hop_index.get(int(e))
        if hv is not None:
            evidence.append({"id": hv["id"], "label": f"#{hv['num']} {hv['role']}", "flow": hv["flow"],
                             "fcls": hv["fcls"], "t0": hv["t0"]})
        else:
            evidence.append({"id": None, "label": f"hop {_compact(e)} (not in this report)", "flow": None,
                             "fcls": "", "t0": ""})
    more = max(0, len(evidence) - MAX_EVIDENCE)
    if more:  # the first ones link; the rest are counted (a 401 at 3,000 API calls is one finding)
        evidence = evidence[:MAX_EVIDENCE] + [{"id": None, "label": f"and {more} more hops", "flow": None,
                                               "fcls": "", "t0": ""}]
    causes = f.get("causes") or []
    if not isinstance(causes, list):
        causes = [causes]
    details = f.get("details")
    return {"n": n, "sev": sev, "kind": pii.text(str(f.get("kind") or "")),
            "title": pii.text(str(f.get("title") or f.get("kind") or "Finding")),
            "explanation": pii.text(str(f.get("explanation") or "")),
            "causes": [pii.text(_compact(c)) for c in causes],
            "next_step": pii.text(str(f.get("next_step") or "")),
            "evidence": evidence,
            "details": _pairs(details, pii) if isinstance(details, dict) else []}


# ---- the report ---------------------------------------------------------------------------------

def render_html(session: Any, hops: list[Any], tokens: list[Any], findings: list[dict],
                redact_pii: bool = False, notes: list[str] | None = None) -> str:
    """The timeline report of one capture session as one HTML document.

    `session`, `hops`, `tokens`: the store's CaptureSession / Hop / Token rows (or dicts with the same
    keys); `findings`: dicts with kind, severity, title, explanation, causes, next_step, evidence (hop
    ids), details; `notes`: facts about the capture that are not faults of the sign-in ("the app's back
    channel was not captured"), shown under the verdict. With `redact_pii`, e-mail addresses, user
    names, names, object ids and IP addresses are masked in claims and text."""
    rows = [_as_dict(h, HOP_FIELDS) for h in hops]
    toks = [_as_dict(t, TOKEN_FIELDS) for t in tokens]
    sess = _as_dict(session, SESSION_FIELDS) if session is not None else {}
    pii = _Pii(redact_pii, toks)
    rows.sort(key=lambda h: (_num(h.get("started")) or 0.0, h.get("seq") or 0))
    tokens_by_hop: dict[Any, list[dict]] = {}
    for t in toks:
        tokens_by_hop.setdefault(t.get("hop_id"), []).append(t)
    flows = flow_groups(rows, tokens_by_hop)
    app_hosts = {str(h.get("host") or "") for h in rows if h.get("role") == "callback"}
    starts = [s for s in (_num(h.get("started")) for h in rows) if s is not None]
    t0 = starts[0] if starts else 0.0
    views: list[dict] = []
    hop_index: dict[Any, dict] = {}
    prev = None
    present = set(tokens_by_hop).intersection(_key(h) for h in rows)
    st = _Shared(pii, [t for t in toks if t.get("hop_id") in present])
    role_counts: dict[str, int] = {}
    derived = 0
    legend: dict[int, dict] = {}
    for i, h in enumerate(rows):
        v = _hop_view(h, i, t0, prev, flows, tokens_by_hop.get(_key(h), ()), st, app_hosts)
        prev = _num(h.get("started")) if h.get("started") is not None else prev
        role_counts[v["role"]] = role_counts.get(v["role"], 0) + 1
        if str(h.get("note") or "").startswith("delivered in the fragment"):
            derived += 1  # made from a Location fragment, not a flow of its own
        views.append(v)
        hop_index[_key(h)] = v
        if v["flow"]:
            g = legend.get(v["flow"])
            if g is None:
                g = legend[v["flow"]] = {"n": v["flow"], "fcls": v["fcls"], "hops": 0, "first": v["id"],
                                         "from": v["t0"], "to": v["t0"], "err": False}
            g["hops"] += 1
            g["to"] = v["t0"]
            g["err"] = g["err"] or v["err"]
    flows_legend = sorted(legend.values(), key=lambda g: g["n"])

    fviews = [_finding_view(f, n, hop_index, pii) for n, f in enumerate(sort_findings(findings), 1)]
    flows_seen = int(_num(sess.get("flows_seen")) or 0)
    noise = max(0, flows_seen - (len(rows) - derived)) if flows_seen else 0
    sev, sentence = verdict(findings, len(rows), flows_seen)
    first_seen = _num(sess.get("first_seen")) or (starts[0] if starts else None)
    last_seen = _num(sess.get("last_seen")) or (starts[-1] if starts else None)
    css = _css()
    ctx = {
        "css": Markup(css),  # the package's own static stylesheet, never captured data
        "csp": Markup(f"default-src 'none'; style-src {style_hash(css)}; img-src data:; base-uri 'none'; "
                      "form-action 'none'"),
        "session": {
            "name": pii.text(str(sess.get("name") or "capture")), "kind": str(sess.get("kind") or ""),
            "problem": pii.text(str(sess.get("problem") or "")),
            "first": f"{utc(first_seen, date=True)} UTC" if first_seen else "—",
            "span": span(last_seen - first_seen) if first_seen and last_seen else "—",
        },
        "verdict": {"sev": sev, "text": pii.text(sentence)},
        "notes": [pii.text(_compact(n)) for n in notes or []],
        "findings": fviews, "counts": {s: sum(1 for f in fviews if f["sev"] == s) for s in SEVERITIES},
        "timeline": Markup(_TIMELINE), "nhops": len(views), "noise": noise, "flows_seen": flows_seen,
        "flows": flows_legend[:MAX_FLOWS], "nflows": len(flows_legend),
        "roles": sorted(role_counts.items(), key=lambda kv: ROLES.index(kv[0]) if kv[0] in ROLES else 99),
        "known_roles": ROLES, "lanes": LANE_TITLES, "redacted": bool(redact_pii), "version": _version(),
    }
    page = _env().get_template("report.html").render(ctx)
    # the hops go in where the template printed the marker: joined once, with the page, instead of
    # copied through Jinja (megabytes at 10,000 hops). Every captured value in them was escaped by
    # _hop_view / _body_html, and a captured string cannot hold the marker: escaped, "<" is "&lt;".
    # Nothing captured follows the timeline in the template, so the last marker is the template's own.
    head, mark, tail = page.rpartition(_TIMELINE)
    if not mark:
        return page
    return "".join([head, *(v["html"] for v in views), tail])


def write_report(html_text: str, path: str) -> None:
    """Write the report after the leak check. When the text holds a raw secret nothing is written and
    LeakError is raised; its message is one sentence naming what was found and where ("the report would
    contain a raw `code` value in hop 12, …"), to be printed after "refusing to write PATH: "."""
    leaks = scan(html_text)
    if leaks:
        raise LeakError(describe(leaks), leaks, path)
    tmp = f"{path}.tmp{os.getpid()}"
    try:
        with open(tmp, "w", encoding="utf-8", errors="replace") as fh:  # a lone surrogate becomes "?"
            fh.write(html_text)
        os.replace(tmp, path)
    finally:
        if os.path.exists(tmp):
            os.remove(tmp)
