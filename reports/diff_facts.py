"""What `authtrace diff` compares of one step: every fact that decides an OAuth/OIDC outcome, read
from a hop as a `Fact` (DESIGN §11).

Request: client_id, authority and tenant, endpoint version (Entra v1/v2), response_type and
response_mode, redirect_uri, scopes and resource, prompt, login_hint/domain_hint (present or not),
claims request, PKCE method, client authentication, DPoP. Bindings, which hold in every working
sign-in whatever the values: the callback's state is the authorize request's, the token request's
redirect_uri and code_verifier fit the authorize request's, the id_token's nonce is the one sent.
Answer: status, error code (explained from the catalogue), granted scope, lifetime, issued tokens,
and each token's aud, scp/roles, azp/appid, tid, ver, idtyp, amr, acr, iss, lifetime. Client: user
agent (browser family and version, embedded webview), auth library, Sec-Fetch initiator, cookie names.
Timing: time since the previous machine-paced step (how fast a person types is no fact).

Values that differ between any two sign-ins (codes, state, nonce, PKCE challenge, token fingerprints,
token ids and times, request times and ids) are facts of the EXPECTED group: "differs, as expected".
"""
from __future__ import annotations

import re
from dataclasses import dataclass
from functools import lru_cache

from authtrace.reports import audiences as au
from authtrace.reports.catalogue import explain
from authtrace.reports.clients import client_of
from authtrace.reports.diff_align import norm_path, step_label
from authtrace.reports.diff_model import Group
from authtrace.reports.index import SessionIndex
from authtrace.store import clock
from authtrace.store.records import Actor, Hop, Role, Token

C, K, OUT, T, X = Group.CONFIGURATION, Group.CLIENT, Group.OUTCOME, Group.TIMING, Group.EXPECTED

# the order a reader meets differences in, inside one rank: causes before symptoms
ORDER: tuple[str, ...] = (
    "state_bound", "nonce_bound", "verifier_bound", "redirect_uri_bound",
    "client_id", "authority", "version", "issuer", "scope", "resource", "audience", "redirect_uri",
    "response_type", "response_mode", "delivery", "prompt", "login_hint", "domain_hint", "claims",
    "acr_values", "pkce_method", "client_auth", "dpop", "state", "nonce",
    "aud", "scp", "scope_claim", "roles", "azp", "appid", "client_id_claim", "tid", "iss", "ver", "idtyp", "amr",
    "acr", "format", "granted_scope", "issued", "token_type",
    "count:callback", "count:code_redemption", "count:authorize", "only:api", "only:userinfo", "only_flow",
    "endpoint", "client", "library", "initiator", "cookies",
    "status", "error", "count:token", "count:userinfo", "count:logout", "count:device", "count:discovery", "count:jwks",
    "count:error", "only:login", "lifetime", "expires_in", "delay",
)
REQUEST_ROLES = (Role.AUTHORIZE, Role.TOKEN, Role.DEVICE, Role.LOGOUT)
# (parameter, field, shown as presence only): the request parameters compared
PARAMS = (("response_type", "response_type", False), ("response_mode", "response_mode", False),
          ("redirect_uri", "redirect_uri", False), ("resource", "resource", False),
          ("audience", "audience", False), ("prompt", "prompt", False), ("login_hint", "login_hint", True),
          ("domain_hint", "domain_hint", True), ("claims", "claims", False), ("acr_values", "acr_values", False),
          ("post_logout_redirect_uri", "redirect_uri", False))
CLAIMS = ("aud", "scp", "roles", "azp", "appid", "tid", "iss", "ver", "idtyp", "amr", "acr")
CLAIM_FIELD = {"scope": "scope_claim", "client_id": "client_id_claim"}  # other providers' names for scp, azp
NOISE_PARAMS = (("code_challenge", "PKCE code_challenge"), ("session_state", "session_state"),
                ("refresh_token", "refresh_token"), ("client_assertion", "client_assertion"),
                ("code_verifier", "code_verifier"), ("device_code", "device_code"))
NOISE_CLAIMS = (("jti", "token ids (jti, uti, sid)"), ("uti", "token ids (jti, uti, sid)"),
                ("sid", "token ids (jti, uti, sid)"), ("iat", "token times (iat, nbf, exp)"),
                ("nbf", "token times (iat, nbf, exp)"), ("exp", "token times (iat, nbf, exp)"),
                ("auth_time", "token times (iat, nbf, exp)"), ("c_hash", "token hashes (c_hash, at_hash)"),
                ("at_hash", "token hashes (c_hash, at_hash)"), ("aio", "Entra internal claims (aio, rh)"),
                ("rh", "Entra internal claims (aio, rh)"), ("nonce", "nonce"))
NOISE_HEADERS = ("client-request-id", "x-ms-client-request-id", "traceparent", "x-ms-correlation-id",
                 "x-ms-request-id", "request-id", "apim-request-id", "x-request-id", "x-correlation-id",
                 "x-ms-correlation-request-id", "date")
PRESENCE_MATTERS = frozenset({"state", "nonce"})  # noise when both sent, a difference when one is missing
_ENTRA = re.compile(r"^(/[^/]+)?/oauth2/(v2\.0/)?(authorize|token|devicecode|logout|deviceauth)/?$", re.I)
MACHINE_S = 5.0  # a time difference below this between machine steps is jitter (a busy machine, a retry)
MACHINE_RATIO = 5.0  # … and so is one within this factor
LIFETIME_RATIO = 2.0  # Entra randomises access-token lifetimes (60–90 min): only a factor of 2 is a difference


@dataclass(slots=True, kw_only=True)  # not frozen: a frozen dataclass costs a setattr call per field, per fact
class Fact:
    """One thing read from one hop, to be compared with the same thing of the paired hop."""

    field: str  # a name in ORDER (or a noise subject)
    name: str  # as a person reads it: "redirect_uri", "aud"
    group: Group
    value: str | None  # as shown
    slot: str = ""  # which token, or which previous step: facts of a step pair compare by (slot, field)
    key: str | None = None  # what is compared when not the value (sorted scopes, a status class, the whole UA)
    num: float | None = None  # a length of time, compared loosely
    note: str = ""  # what the value means
    per_step: bool = True  # the difference names its step; False: one difference across steps (a claim, the UA)
    both: bool = False  # compared only when both sides have it (a binding, a time): absent means unknown

    @property
    def compared(self) -> str | None:
        return self.key if self.key is not None else self.value

    def same_as(self, other: Fact) -> bool:
        if self.num is not None and other.num is not None:
            return loosely_equal(self.field, self.num, other.num)
        return self.compared == other.compared


def loosely_equal(field: str, a: float, b: float) -> bool:
    lo, hi = sorted((abs(a), abs(b)))
    if field == "delay":
        return hi - lo < MACHINE_S or (lo > 0 and hi / lo < MACHINE_RATIO)
    return lo > 0 and hi / lo < LIFETIME_RATIO


@lru_cache(maxsize=4096)
def authority_of(h: Hop) -> tuple[str, str | None]:
    """(host and tenant or path prefix, Entra endpoint version or None) of a request to the provider."""
    m = _ENTRA.match(h.path or "")
    if m:
        return h.host + (m.group(1) or ""), "v2.0" if m.group(2) else "v1.0"
    prefix = norm_path(h.path).rsplit("/", 1)[0]
    return h.host + prefix, None


def _words(v: str | None) -> str | None:
    return " ".join(sorted(set(v.split()))) if v else None


def _audience_note(values: str | None) -> str:
    labels = [f"{a} is {lab}" for a in (values or "").split() if (lab := au.label_of(a))]
    return "; ".join(labels)


def _cookie_name(name: str) -> str:
    """A cookie's name without its per-sign-in suffix (`.AspNetCore.Correlation.<random>`)."""
    parts = re.split(r"([._])", name)
    return "".join("*" if _looks_random(p) else p for p in parts)


def _looks_random(s: str) -> bool:
    return len(s) >= 12 and any(c.isdigit() for c in s) and any(c.isalpha() for c in s)


class SideFacts:
    """The facts of one side's hops, with what they need from the whole side: its authorize requests
    (the states, nonces, redirect URIs and PKCE challenges the bindings are checked against)."""

    def __init__(self, hops: list[Hop]):
        self.index = SessionIndex(hops)
        self.sent_states = {a.state for a in self.index.authorize if a.state}
        self.sent_nonces = {a.nonce for a in self.index.authorize if a.nonce}

    def of(self, h: Hop, prev: Hop | None) -> list[Fact]:
        out: list[Fact] = []
        self._where(h, out)
        if h.role in REQUEST_ROLES:
            self._request(h, out)
        if h.role == Role.CALLBACK:
            self._callback(h, out)
        if h.role == Role.TOKEN and h.code_fp:
            self._redemption(h, out)
        if h.role in (Role.TOKEN, Role.API, Role.USERINFO) and "dpop" in h.request_headers:
            out.append(Fact(field="dpop", name="DPoP proof", group=C, value="sent"))
        self._outcome(h, out)
        for t in h.tokens:
            self._token(t, out)
        self._client(h, out)
        self._timing(h, prev, out)
        self._noise(h, out)
        return out

    # -- where, and what was asked -------------------------------------------------------------------

    def _where(self, h: Hop, out: list[Fact]) -> None:
        if h.role in REQUEST_ROLES:
            authority, version = authority_of(h)
            out.append(Fact(field="authority", name="authority", group=C, value=authority))
            if version:
                out.append(Fact(field="version", name="endpoint version", group=C, value=version))
        else:
            out.append(Fact(field="endpoint", name="endpoint", group=C, value=f"{h.host}{norm_path(h.path)}"))
        if h.role == Role.DISCOVERY and h.answer.issuer:
            out.append(Fact(field="issuer", name="issuer", group=C, value=h.answer.issuer))

    def _request(self, h: Hop, out: list[Fact]) -> None:
        p = h.params
        cid = h.client_id or p.get("client_id")
        if cid or h.role != Role.LOGOUT:
            out.append(Fact(field="client_id", name="client_id", group=C, value=cid))
        scope = p.get("scope")
        if scope is not None or h.role == Role.AUTHORIZE:
            out.append(Fact(field="scope", name="scope", group=C, value=_words(scope),
                            note=_audience_note(" ".join(au.resources_requested(p)))))
        for name, fld, presence in PARAMS:
            v = p.get(name)
            if v is None:
                continue
            shown = "sent" if presence else v
            note = _audience_note(au.norm(v)) if fld in ("resource", "audience") else ""
            out.append(Fact(field=fld, name=name, group=C, value=shown, note=note))
        if h.role == Role.AUTHORIZE:
            challenge = p.get("code_challenge")
            method = (p.get("code_challenge_method") or "plain") if challenge else "none (no code_challenge)"
            out.append(Fact(field="pkce_method", name="PKCE method", group=C, value=method))
        if h.role in (Role.TOKEN, Role.DEVICE):
            out.append(Fact(field="client_auth", name="client authentication", group=C, value=_client_auth(h)))

    def _callback(self, h: Hop, out: list[Fact]) -> None:
        p = h.params
        answer = ("code", "state", "id_token", "access_token", "error")
        delivery = ("fragment" if h.from_fragment or any(k in p.fragment for k in answer) else
                    "form_post" if any(k in p.form for k in answer) else
                    "query" if any(k in p.query for k in answer) else None)
        if delivery:
            out.append(Fact(field="delivery", name="answer delivered by", group=C, value=delivery))
        if self.sent_states and any(p.get(k) is not None for k in ("code", "id_token", "access_token", "error")):
            bound = "yes" if h.state in self.sent_states else "no" if h.state else "no state in the callback"
            out.append(Fact(field="state_bound", name="state matches the authorize request's", group=C,
                            value=bound, both=True))

    def _redemption(self, h: Hop, out: list[Fact]) -> None:
        auths = self.index.authorize_for(h)
        ru = h.params.get("redirect_uri")
        sent = {a.params.get("redirect_uri") for a in auths if a.params.get("redirect_uri")}
        if sent:
            out.append(Fact(field="redirect_uri_bound", name="redirect_uri equals the authorize request's", group=C,
                            value="yes" if ru in sent else "no" if ru else "no redirect_uri sent", both=True))
        challenges = {c for a in auths if (c := a.params.get("code_challenge"))}
        plain = any((a.params.get("code_challenge_method") or "").lower() == "plain" for a in auths)
        got = h.params.get("code_verifier_s256")
        if challenges and not plain:
            out.append(Fact(field="verifier_bound", name="code_verifier fits the code_challenge", group=C,
                            value="yes" if got in challenges else "no" if got else "no code_verifier sent", both=True))

    # -- what came back ---------------------------------------------------------------------------------

    def _outcome(self, h: Hop, out: list[Fact]) -> None:
        s = h.status
        key = "none" if s is None else str(s) if s >= 400 else f"{s // 100}xx"
        note = h.error_text()[:200] if not h.ok else ""
        out.append(Fact(field="status", name="status", group=OUT, value="no response" if s is None else str(s),
                        key=key, note=note))
        e = h.error
        if e is not None and e.error:
            code = e.error_codes[0] if e.error_codes else None
            name = e.error + (f" (AADSTS{code})" if code and str(code) not in e.error else "")
            entry = explain(e.error, code)
            out.append(Fact(field="error", name="error", group=OUT, value=name, note=entry.title if entry else ""))
        if h.role == Role.TOKEN and h.ok:
            a = h.answer
            if a.granted_scope is not None:
                out.append(Fact(field="granted_scope", name="granted scope", group=C, value=_words(a.granted_scope)))
            if a.expires_in is not None:
                out.append(Fact(field="expires_in", name="expires_in", group=T, value=clock.duration(a.expires_in),
                                num=a.expires_in, both=True))
            tt = a.fields.get("token_type")
            if isinstance(tt, str):
                out.append(Fact(field="token_type", name="token_type", group=C, value=tt))
            issued = sorted({t.kind for t in h.tokens if not t.presented})
            out.append(Fact(field="issued", name="tokens issued", group=C, value=", ".join(issued) or "none"))

    def _token(self, t: Token, out: list[Fact]) -> None:
        if t.kind not in ("access_token", "id_token"):
            return
        slot = t.where
        if t.kind == "access_token":
            out.append(Fact(field="format", name=f"{t.kind} · format", group=C, slot=slot, per_step=False,
                            value="JWT" if t.claims else "opaque"))
        c = t.claims
        if not c:
            return
        for claim in (*CLAIMS, *CLAIM_FIELD):
            v = c.get(claim)
            if v is None:
                continue
            shown = " ".join(sorted(str(x) for x in v)) if isinstance(v, list) else str(v)
            if claim in ("scp", "scope"):
                shown = _words(shown) or ""
            note = _audience_note(" ".join(au.norm(a) for a in t.aud)) if claim == "aud" else ""
            out.append(Fact(field=CLAIM_FIELD.get(claim, claim), name=f"{t.kind} · {claim}", group=C, slot=slot,
                            value=shown, note=note, per_step=False))
        if t.exp is not None and t.iat is not None:
            out.append(Fact(field="lifetime", name=f"{t.kind} · lifetime (exp − iat)", group=T, slot=slot,
                            value=clock.duration(t.exp - t.iat), num=t.exp - t.iat, per_step=False, both=True))
        if t.kind == "id_token" and self.sent_nonces:
            out.append(Fact(field="nonce_bound", name="id_token · nonce matches the authorize request's", group=C,
                            slot=slot, value="yes" if t.nonce in self.sent_nonces else "no", per_step=False,
                            both=True))

    # -- who asked, and when ------------------------------------------------------------------------------

    def _client(self, h: Hop, out: list[Fact]) -> None:
        ua = h.user_agent
        if ua:
            out.append(Fact(field="client", name=f"{h.actor} user agent", group=K, value=f"{client_of(ua)} · {ua}",
                            key=ua, per_step=False))
        sku, ver = h.request_headers.get("x-client-sku"), h.request_headers.get("x-client-ver")
        if sku:
            out.append(Fact(field="library", name="auth library (x-client-sku)", group=K,
                            value=f"{sku} {ver or ''}".strip(), per_step=False))
        if h.actor != Actor.BROWSER:
            return
        ini = h.initiator
        if ini is not None and (ini.site or ini.mode or ini.dest):
            who = " ".join(f"{k}={v}" for k, v in (("site", ini.site), ("mode", ini.mode), ("dest", ini.dest),
                                                   ("user", ini.user)) if v)
            out.append(Fact(field="initiator", name="initiator (Sec-Fetch-*)", group=K, value=who))
        names = sorted({_cookie_name(n) for n in h.cookies_sent})
        out.append(Fact(field="cookies", name="cookies sent", group=K, value=", ".join(names) or "none"))

    def _timing(self, h: Hop, prev: Hop | None, out: list[Fact]) -> None:
        """Time since the previous step when no person stands between them: the browser followed a
        redirect, or the app went on by itself after a callback or a token answer."""
        if prev is None:
            return
        followed = prev.status is not None and 300 <= prev.status < 400 and h.actor == Actor.BROWSER
        app = h.actor != Actor.BROWSER and prev.role in (Role.CALLBACK, Role.TOKEN, Role.JWKS, Role.DISCOVERY)
        if followed or app:
            dt = h.started - prev.started
            out.append(Fact(field="delay", name=f"time since {step_label(prev)}", group=T, slot=step_label(prev),
                            value=clock.duration(dt), num=dt, both=True))

    def _noise(self, h: Hop, out: list[Fact]) -> None:
        out.append(Fact(field="time", name="request times", group=X, value=clock.stamp(h.started), per_step=False))
        if h.state:
            out.append(Fact(field="state", name="state", group=X, value=h.state, per_step=False))
        nonce = h.nonce or (h.params.get("nonce") if h.role == Role.AUTHORIZE else None)
        if nonce:
            out.append(Fact(field="nonce", name="nonce", group=X, value=nonce, per_step=False))
        if h.code_fp:
            out.append(Fact(field="code", name="authorization code", group=X, value=h.code_fp, per_step=False))
        for name, subject in NOISE_PARAMS:
            v = h.params.get(name)
            if v:
                out.append(Fact(field=subject, name=subject, group=X, value=v, per_step=False))
        for t in h.tokens:
            out.append(Fact(field="fingerprint", name="token fingerprints", group=X, slot=t.where, value=t.fingerprint,
                            per_step=False))
            for claim, subject in NOISE_CLAIMS:
                v = t.claims.get(claim) if t.claims else None
                if v is not None:
                    out.append(Fact(field=subject, name=subject, group=X, slot=f"{t.where}.{claim}", value=str(v),
                                    per_step=False))
        ids = h.error.ids() if h.error else {}
        for k, v in ids.items():
            out.append(Fact(field="error ids", name="error trace and correlation ids", group=X, slot=k, value=v,
                            per_step=False))
        for d in (h.request_headers, h.response_headers):
            for k in NOISE_HEADERS:
                if k in d:
                    out.append(Fact(field="request ids", name="request ids and dates", group=X, slot=k, value=d[k],
                                    per_step=False))


def _client_auth(h: Hop) -> str:
    p = h.params
    if p.get("client_assertion"):
        return "private_key_jwt (client_assertion)"
    if p.get("client_secret"):
        return "client_secret_post"
    if p.get("basic_client_id"):
        return "client_secret_basic"
    return "none (public client)"
