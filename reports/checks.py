"""Checks: each a small function over one capture session's hops that returns findings.

A finding is a dict: kind, severity (error/warning/info), title (one sentence), explanation,
causes, next_step, evidence (hop ids), details. A clean sign-in yields none: every false positive
costs the user's trust, so each check needs protocol evidence, not a hunch.
"""
from __future__ import annotations

import re
import statistics
from collections import defaultdict
from datetime import datetime, timezone
from email.utils import parsedate_to_datetime
from typing import Any, Callable
from urllib.parse import urlsplit

from authtrace.reports import audiences as au
from authtrace.reports.catalogue import explain

ALREADY_USED = re.compile(r"already\s+(been\s+)?(redeemed|consumed|used)|AADSTS54005|code.{0,40}(was|has been) used",
                          re.I)
AUDIENCE_WORDS = re.compile(r"audience|\baud\b|InvalidAuthenticationTokenAudience", re.I)
URI_RE = re.compile(r"(https?://[^\s'\"<>,;]+|api://[^\s'\"<>,;]+|[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12})",
                    re.I)
EXPECTED_ERRORS = {"authorization_pending", "slow_down"}  # device-flow polling: normal
SILENT_ERRORS = {"interaction_required", "login_required", "consent_required", "account_selection_required"}
LEEWAY_S = 300


HOP_FIELDS = ("id", "seq", "started", "duration_ms", "role", "method", "url", "host", "path", "status", "is_error",
              "actor", "user_agent", "code_fp", "state", "nonce", "client_id", "initiator", "params", "response",
              "error", "headers", "body_excerpt", "note")
TOKEN_FIELDS = ("id", "hop_id", "where", "kind", "fingerprint", "format", "header", "claims", "signature")


class _Row:
    """A plain copy of a stored row: checks read attributes tens of thousands of times, and ORM
    attribute access costs ~10x a plain one. Rows compare by identity."""

    __slots__ = HOP_FIELDS + tuple(f for f in TOKEN_FIELDS if f not in HOP_FIELDS) + ("__dict__",)

    def __init__(self, row, fields):
        for f in fields:
            setattr(self, f, getattr(row, f, None))


class Session:
    """A session's hops with the indexes the checks share."""

    def __init__(self, hops: list, tokens: list, expect_audience: dict[str, str] | None = None):
        self.hops = sorted((_Row(h, HOP_FIELDS) for h in hops), key=lambda h: (h.started, h.seq))
        self.by_id = {h.id: h for h in self.hops}
        self.tokens: dict[int, list] = defaultdict(list)
        for t in tokens:
            self.tokens[t.hop_id].append(_Row(t, TOKEN_FIELDS))
        self.expect = expect_audience or {}
        self.authorize = [h for h in self.hops if h.role == "authorize"]
        self.callbacks = [h for h in self.hops if h.role == "callback"]
        self.redemptions = [h for h in self.hops if h.role == "token" and h.code_fp]
        self.skew = _clock_skew(self.hops)
        self._params: dict[int, dict] = {}
        self._auth_for: dict[int, list] = {}
        self.auth_by_state: dict[str, list] = defaultdict(list)
        self.auth_by_client: dict[str | None, list] = defaultdict(list)
        for a in self.authorize:
            if a.state:
                self.auth_by_state[a.state].append(a)
            self.auth_by_client[a.client_id].append(a)
        self.state_by_code: dict[str, str] = {}
        for c in self.callbacks:
            if c.code_fp and c.state:
                self.state_by_code.setdefault(c.code_fp, c.state)

    def params(self, h) -> dict:
        """Every request parameter of a hop by lower-case name (form and JSON first, as servers read them)."""
        out = self._params.get(h.id)
        if out is None:
            out = {}
            for src in ("form", "json", "query", "fragment", "derived"):
                for k, v in ((h.params or {}).get(src) or {}).items():
                    out.setdefault(k.lower(), v)
            self._params[h.id] = out
        return out

    def error_text(self, h) -> str:
        e = h.error or {}
        bits = [str(e.get(k, "")) for k in ("error", "error_description", "message")]
        return " ".join(bits + [h.body_excerpt or ""])

    def authorize_for(self, h) -> list:
        """The authorize hops this hop belongs to: by state, then by code via its callback, then by client."""
        found = self._auth_for.get(h.id)
        if found is None:
            state = h.state or (self.state_by_code.get(h.code_fp) if h.code_fp else None)
            found = self.auth_by_state.get(state, []) if state else []
            if not found:
                cid = h.client_id or self.params(h).get("client_id")
                found = self.auth_by_client.get(cid, []) if cid else self.authorize
            self._auth_for[h.id] = found
        return found

    def access_tokens(self, h) -> list:
        return [t for t in self.tokens.get(h.id, ()) if t.where == "request.authorization"]


def _clock_skew(hops) -> dict[str, float]:
    """Server clock minus capture clock, per host, from Date headers (1 s resolution)."""
    per: dict[str, list[float]] = defaultdict(list)
    for h in hops:
        d = ((h.headers or {}).get("response") or {}).get("date")
        if not d:
            continue
        try:
            server = parsedate_to_datetime(d).timestamp()
        except (TypeError, ValueError):
            continue
        per[h.host].append(server - (h.started + (h.duration_ms or 0) / 2000))
    return {host: statistics.median(v) for host, v in per.items()}


def utc(t: float) -> str:
    return datetime.fromtimestamp(t, tz=timezone.utc).strftime("%H:%M:%S.%f")[:-3] + " UTC"


def ago(seconds: float) -> str:
    s = abs(seconds)
    if s < 1:
        return f"{s * 1000:.0f} ms"
    if s < 120:
        return f"{s:.1f} s"
    if s < 7200:
        return f"{s / 60:.0f} min"
    return f"{s / 3600:.1f} h"


def where(h) -> str:
    return f"{h.method} {h.host}{h.path}"


def finding(kind, severity, title, explanation, causes, next_step, evidence, **details) -> dict:
    ev = []
    for e in evidence:
        if e not in ev:
            ev.append(e)
    return {"kind": kind, "severity": severity, "title": title, "explanation": explanation,
            "causes": list(causes), "next_step": next_step, "evidence": ev, "details": details}


def expected_error(s: "Session", h) -> bool:
    """Answers that are part of a normal flow: device-flow polling, and a silent (prompt=none)
    request told that interaction is needed, after which the app signs in interactively."""
    err = str((h.error or {}).get("error") or "")
    if err in EXPECTED_ERRORS:
        return True
    if err in SILENT_ERRORS:
        auths = s.authorize_for(h) if h.role != "authorize" else [h]
        return any(str(s.params(a).get("prompt", "")).lower() == "none" for a in auths)
    return False


def _ok(h) -> bool:
    return h.status is not None and h.status < 400 and not h.is_error


# ---- reused_code ---------------------------------------------------------------------------

def reused_code(s: Session) -> list[dict]:
    out = []
    by_code: dict[str, list] = defaultdict(list)
    for h in s.hops:
        if h.code_fp and h.role in ("callback", "token"):
            by_code[h.code_fp].append(h)
    issued = {}
    for h in s.hops:
        code = (h.response or {}).get("issued_code")
        if code and code not in issued:
            issued[code] = h
    for code, hs in by_code.items():
        cbs = [h for h in hs if h.role == "callback"]
        toks = [h for h in hs if h.role == "token"]
        said_used = [h for h in hs if h.is_error and ALREADY_USED.search(s.error_text(h))]
        second_grant = [t for i, t in enumerate(toks) if i > 0 and t.is_error and _ok(toks[0])]
        if len(cbs) < 2 and len(toks) < 2 and not said_used:
            continue
        failing = (said_used or second_grant or [h for h in hs if h.is_error] or hs[1:] or hs)[0]
        first = hs[0]
        t_issued = issued[code].started if code in issued else first.started
        # a use is a redemption; with the back channel out of sight, each callback stands for one
        uses = toks or cbs
        first_use_failed = bool(uses) and failing is uses[0] and failing in said_used and len(cbs) < 2
        if first_use_failed:
            title = (f"The authorization code {code} was rejected as already redeemed on its first use in this "
                     f"capture: something outside the captured traffic presented it first.")
            expl = (f"{where(failing)} answered {failing.status} saying the code was already used, "
                    f"{ago(failing.started - t_issued)} after the code was issued. No earlier request carrying this "
                    f"code passed through the proxy, so another client redeemed it first.")
            causes = ["another tab, browser or webview (e.g. a Teams/Outlook embedded browser) opened the same "
                      "redirect URL", "a link scanner or safe-links service followed the redirect URL",
                      "a browser prefetch or preview requested the callback", "the app (or a proxy in front of it) "
                      "retried the callback or the token request"]
        else:
            steps = "; ".join(
                f"#{h.id} {h.role} {'+' + ago(h.started - first.started) if h is not first else 'first'}: "
                + (f"{h.status}" if h.status is not None else "no response")
                + (f" {(h.error or {}).get('error')}" if (h.error or {}).get("error") else "") for h in hs)
            redeemed = f"redeemed {len(toks)} times" if len(toks) > 1 else f"delivered to {len(cbs)} callbacks"
            title = f"The authorization code {code} was {redeemed}: a code works only once."
            expl = (f"The code was issued at {utc(t_issued)} and presented {len(hs)} times: {steps}. An authorization "
                    f"code is single-use (RFC 6749 §4.1.2); the provider rejects the second use and may revoke the "
                    f"tokens issued from it.")
            causes = ["the callback URL was requested twice (double submit, reload, back button, two webviews)",
                      "the app redeems the code in two places (e.g. middleware and a handler)",
                      "a retry after a slow token response"]
        out.append(finding("reused_code", "error", title, expl, causes,
                           "Handle the redirect URI exactly once and redeem each code once; then start a fresh "
                           "sign-in to get a new code.", [h.id for h in hs],
                           code=code, issued=t_issued, first_use_failed=first_use_failed))
    return out


# ---- duplicate_redirect --------------------------------------------------------------------

def duplicate_redirect(s: Session) -> list[dict]:
    out = []
    groups: dict[str, list] = defaultdict(list)
    for h in s.callbacks:
        key = h.code_fp or (f"state:{h.state}" if h.state else None)
        if key and not h.note:  # a fragment delivery is not a request of its own
            groups[key].append(h)
    for key, hs in groups.items():
        if len(hs) < 2:
            continue
        lines = []
        for i, h in enumerate(hs):
            ini = h.initiator or {}
            who = ", ".join(f"{k}={v}" for k, v in ini.items() if k in ("site", "mode", "dest", "user")) or "no Sec-Fetch headers"
            gap = f"+{(h.started - hs[i - 1].started) * 1000:.0f} ms" if i else "first"
            outcome = "succeeded" if _ok(h) else f"failed ({h.status if h.status is not None else 'no response'})"
            lines.append(f"#{h.id} {gap}: {h.method} {outcome}; user agent {(h.user_agent or 'none')[:80]}; {who}")
        gap_ms = (hs[1].started - hs[0].started) * 1000
        label = key if not key.startswith("state:") else f"state {key[6:][:24]}"
        out.append(finding(
            "duplicate_redirect", "error" if any(not _ok(h) for h in hs) else "warning",
            f"The callback carrying {label} was requested {len(hs)} times, {gap_ms:.0f} ms apart.",
            "The identity provider's redirect reached the redirect URI more than once: " + " | ".join(lines),
            ["the browser followed the redirect twice (reload, double click, back button)",
             "two webviews or tabs handled the same redirect", "a link scanner or prefetcher requested the URL",
             "the app issues its own second request to the callback"],
            "Compare the user agents and Sec-Fetch headers above to find the second requester; make the callback "
            "idempotent (ignore a code already being redeemed).", [h.id for h in hs], gap_ms=round(gap_ms, 1)))
    return out


# ---- wrong_audience ------------------------------------------------------------------------

def wrong_audience(s: Session) -> list[dict]:
    out = []
    seen: set = set()
    for h in s.hops:
        if h.role not in ("api", "userinfo"):
            continue
        exp = au.expected_for(h.host, s.expect, h.path)
        for t in s.access_tokens(h):
            auds = (t.claims or {}).get("aud")
            if auds is None:
                continue
            auds = [auds] if isinstance(auds, str) else [str(a) for a in auds]
            normed = {au.norm(a) for a in auds}
            if exp is not None:
                if normed & exp[1]:
                    continue
                reason = f"{h.host} expects {exp[0]}"
            elif not _ok(h) and h.status in (401, 403) and _uri_auds_foreign(normed, h.host):
                reason = f"{h.host} refused it with {h.status}"
            else:
                continue
            key = (h.host, tuple(sorted(normed)))
            if key in seen:
                continue
            seen.add(key)
            got = ", ".join(f"{a} ({au.label_of(a)})" if au.label_of(a) else a for a in auds)
            req = _requests_for(s, normed)
            out.append(finding(
                "wrong_audience", "error",
                f"An access token for {got} was sent to {h.host}, which needs another audience.",
                f"Token {t.fingerprint} has aud {got}; {reason}. " + _requested_note(s, req),
                ["the app requested the wrong scope/resource (e.g. https://management.azure.com/.default "
                 "instead of https://ai.azure.com/.default)", "a cached token for another resource was reused",
                 "the connection or tool is configured with the wrong audience"],
                f"Request a token for {exp[0] if exp else 'the API resource ' + h.host} (scope "
                f"'<resource>/.default' or resource indicator) and send that one.",
                [r.id for r in req] + [h.id], host=h.host, aud=auds, expected=sorted(exp[1]) if exp else None))
    # (b) requested resources that cannot fit the API host the flow's tokens are used at
    reqs = [r for r in s.hops if r.role in ("authorize", "token") and au.resources_requested(s.params(r))]
    asked = set().union(*(au.resources_requested(s.params(r)) for r in reqs)) if reqs else set()
    for h in s.hops:
        if h.role != "api" or _ok(h) or h.status not in (401, 403) or s.access_tokens(h) and any(
                (t.claims or {}).get("aud") for t in s.access_tokens(h)):
            continue
        exp = au.expected_for(h.host, s.expect, h.path)
        if exp is None:
            continue
        if asked and not asked & exp[1] and (h.host, "req") not in seen:
            seen.add((h.host, "req"))
            out.append(finding(
                "wrong_audience", "error",
                f"The sign-in asked for {', '.join(sorted(asked))}, but its token is used at {h.host}, which needs "
                f"{exp[0]}.", f"{where(h)} answered {h.status}. The authorize/token requests named "
                f"{', '.join(sorted(asked))} as scope/resource; a token for that resource cannot be accepted by "
                f"{h.host}.", ["wrong scope or resource configured in the app or connection"],
                f"Request scope '{sorted(exp[1])[0]}/.default' (or the matching resource) for calls to {h.host}.",
                [r.id for r in reqs] + [h.id], host=h.host, requested=sorted(asked)))
    # (c) a refusal whose header or body names the audience
    for h in s.hops:
        if h.role not in ("api", "userinfo") or h.status not in (401, 403):
            continue
        text = " ".join([str((h.response or {}).get("www_authenticate") or ""), s.error_text(h)])
        if not AUDIENCE_WORDS.search(text) or any(h.id in f["evidence"] for f in out):
            continue
        named = sorted(set(URI_RE.findall(text)))
        out.append(finding(
            "wrong_audience", "error", f"{h.host} refused the token because of its audience.",
            f"{where(h)} answered {h.status}: {text.strip()[:400]}",
            ["the token was requested for another resource"],
            "Request the token for the audience the API names in its answer.", [h.id], host=h.host, named=named))
    return out


def _uri_auds_foreign(auds: set[str], host: str) -> bool:
    uris = [a for a in auds if a.startswith("http")]
    return bool(uris) and all((urlsplit(a).hostname or "") != host for a in uris)


def _requests_for(s: Session, auds: set[str]) -> list:
    return [r for r in s.hops if r.role in ("authorize", "token") and au.resources_requested(s.params(r)) & auds]


def _requested_note(s: Session, reqs: list) -> str:
    if not reqs:
        return ""
    asked = sorted(set().union(*(au.resources_requested(s.params(r)) for r in reqs)))
    return f"It was requested as {', '.join(asked)} at hop(s) {', '.join('#' + str(r.id) for r in reqs)}."


# ---- state / nonce / pkce / redirect_uri ----------------------------------------------------

def state_mismatch(s: Session) -> list[dict]:
    if not s.authorize:
        return []  # capture started after the authorize request: nothing to compare with
    sent = {a.state for a in s.authorize if a.state}
    out = []
    for h in s.callbacks:
        if not ({"code", "id_token", "access_token", "error"} & set(s.params(h))):
            continue  # not an OAuth answer (e.g. a SAML post)
        if h.state and h.state in sent:
            continue
        if not h.state and not sent:
            continue
        if h.state:
            title = "The callback's state matches no authorize request of this sign-in."
            expl = (f"{where(h)} carried state '{h.state[:60]}', but the authorize request(s) sent "
                    + ", ".join(f"'{x[:60]}'" for x in sorted(sent)) + ". The app must reject such a callback "
                    "(CSRF protection), so the sign-in fails.")
        else:
            title = "The callback carries no state although the authorize request sent one."
            expl = f"{where(h)} has no state parameter; the authorize request sent state '{sorted(sent)[0][:60]}'."
        out.append(finding("state_mismatch", "error", title, expl,
                           ["the state was altered in transit (URL rewriting, encoding, truncation)",
                            "the callback belongs to another sign-in (another tab, a stale bookmark)",
                            "the app lost its state cookie/session between authorize and callback "
                            "(SameSite, domain or path of the cookie, load balancer without session affinity)"],
                           "Compare the state values above; start the sign-in again in one tab and check the app's "
                           "state cookie survives the round trip.", [a.id for a in s.authorize if a.started <= h.started][-1:]
                           + [h.id], callback_state=h.state, sent=sorted(sent)))
    return out


def nonce_mismatch(s: Session) -> list[dict]:
    sent = {a.nonce for a in s.authorize if a.nonce}
    if not sent:
        return []
    out = []
    for h in s.hops:
        for t in s.tokens.get(h.id, []):
            if t.kind != "id_token" or not t.claims:
                continue
            n = t.claims.get("nonce")
            if n in sent:
                continue
            auth = [a for a in s.authorize if a.nonce and a.started <= h.started][-1:]
            title = ("The id_token carries no nonce although the authorize request sent one." if n is None else
                     "The id_token's nonce matches no authorize request of this sign-in.")
            out.append(finding("nonce_mismatch", "error", title,
                               f"id_token {t.fingerprint} at {where(h)} has nonce {n!r}; the authorize request(s) "
                               f"sent {', '.join(repr(x) for x in sorted(sent))}. OIDC Core §3.1.3.7 requires them "
                               "to be equal, so the app rejects the token.",
                               ["the id_token belongs to another sign-in (replayed or from another tab)",
                                "the app lost the nonce it stored (cookie or session lost)"],
                               "Start a fresh sign-in in one tab and check that the app keeps its nonce until the "
                               "callback.", [a.id for a in auth] + [h.id], nonce=n))
    return out


def pkce_mismatch(s: Session) -> list[dict]:
    out = []
    for h in s.redemptions:
        p = s.params(h)
        got = p.get("code_verifier_s256")
        auths = s.authorize_for(h)
        challenges = {s.params(a).get("code_challenge"): a for a in auths if s.params(a).get("code_challenge")}
        plain = any(str(s.params(a).get("code_challenge_method", "")).lower() == "plain" for a in auths)
        if got and challenges and got not in challenges and not plain:
            out.append(finding("pkce_mismatch", "error",
                               "The token request's code_verifier does not match the authorize request's "
                               "code_challenge.",
                               f"S256(code_verifier) at {where(h)} is {got}, but the authorize request sent "
                               f"code_challenge {', '.join(sorted(challenges))}. The provider refuses the code "
                               "(RFC 7636 §4.6; Entra AADSTS501481).",
                               ["the verifier from another sign-in attempt was used (two tabs, a retry that made a "
                                "new verifier)", "the app lost the verifier it stored between authorize and callback"],
                               "Keep the verifier with the state of the same attempt and send that one.",
                               [a.id for a in auths][-1:] + [h.id], verifier_s256=got))
        elif challenges and not got and h.is_error and re.search(r"verifier|pkce|proof key|501481|50148",
                                                                   s.error_text(h), re.I):
            out.append(finding("pkce_mismatch", "error",
                               "The authorize request used PKCE but the token request sent no code_verifier.",
                               f"{where(h)} failed without a code_verifier.", ["the app lost the verifier"],
                               "Send the code_verifier that belongs to this sign-in's code_challenge.",
                               [a.id for a in auths][-1:] + [h.id]))
    for h in s.hops:
        text = s.error_text(h)
        if h.is_error and re.search(r"pkce|code_challenge|proof key|AADSTS9002325|AADSTS50148|AADSTS501481", text, re.I):
            missing = [a for a in s.authorize if not s.params(a).get("code_challenge")]
            if missing and not any(h.id in f["evidence"] for f in out):
                out.append(finding("pkce_mismatch", "error",
                                   "The provider requires PKCE but the authorize request sent no code_challenge.",
                                   f"{where(h)} answered: {text.strip()[:300]}",
                                   ["the app or library does not use PKCE (public clients and SPAs must)"],
                                   "Enable PKCE (S256) in the client library.", [missing[-1].id, h.id]))
    return out


def redirect_uri_mismatch(s: Session) -> list[dict]:
    out = []
    for h in s.redemptions:
        ru = s.params(h).get("redirect_uri")
        auths = [a for a in s.authorize_for(h) if s.params(a).get("redirect_uri")]
        sent = {s.params(a)["redirect_uri"] for a in auths}
        if ru and sent and ru not in sent:
            out.append(finding("redirect_uri_mismatch", "error",
                               "The token request's redirect_uri differs from the authorize request's.",
                               f"Token request {where(h)} sent redirect_uri {ru}; the authorize request sent "
                               f"{', '.join(sorted(sent))}. RFC 6749 §4.1.3 requires them to be identical "
                               "(Entra: AADSTS50011/AADSTS500112-like errors; others: invalid_grant).",
                               ["the app builds the redirect URI from the incoming request behind a proxy "
                                "(http vs https, host, port)", "a trailing slash or case difference"],
                               "Configure one fixed redirect URI and use it in both requests.",
                               [auths[-1].id, h.id], token_redirect_uri=ru, authorize_redirect_uri=sorted(sent)))
    return out


# ---- tokens over time ----------------------------------------------------------------------

def expired_token(s: Session) -> list[dict]:
    out = []
    for h in s.hops:
        if h.role not in ("api", "userinfo"):
            continue
        skew = s.skew.get(h.host, 0.0)
        now = h.started + skew
        for t in s.access_tokens(h):
            c = t.claims or {}
            exp, nbf = c.get("exp"), c.get("nbf")
            refused = h.status in (401, 403)
            if isinstance(exp, (int, float)) and now > exp and (refused or now - exp > LEEWAY_S):
                out.append(finding("expired_token", "error" if refused else "warning",
                                   f"An expired access token was sent to {h.host}: it expired {ago(now - exp)} before use.",
                                   f"Token {t.fingerprint} has exp {utc(exp)}; it was used at {utc(h.started)}"
                                   + (f" (server clock {skew:+.0f} s from the capture clock, from Date headers)"
                                      if abs(skew) >= 1 else "") + f"; {h.host} answered {h.status}.",
                                   ["the app caches tokens past their expiry and does not refresh",
                                    "the machine's clock is wrong"],
                                   "Refresh the token before exp (MSAL: acquireTokenSilent) and check the clock.",
                                   [h.id], exp=exp, used=h.started, skew=skew))
            elif isinstance(nbf, (int, float)) and now + 60 < nbf:
                out.append(finding("expired_token", "error" if refused else "warning",
                                   f"A token not yet valid was sent to {h.host}: nbf is {ago(nbf - now)} after use.",
                                   f"Token {t.fingerprint} has nbf {utc(nbf)}; it was used at {utc(h.started)}.",
                                   ["clock skew between the identity provider and this machine or the API"],
                                   "Check the clocks (NTP) of the machine and the API.", [h.id], nbf=nbf))
    return out


def token_revoked(s: Session) -> list[dict]:
    out = []
    worked: dict[tuple, Any] = {}  # (token, host) -> the hop where it worked: revocation is per resource server
    for h in s.hops:
        if h.role not in ("api", "userinfo"):
            continue
        for t in s.access_tokens(h):
            key = (t.fingerprint, h.host)
            if _ok(h):
                worked.setdefault(key, h)
            elif h.status == 401 and key in worked and "invalid_token" in (
                    str((h.response or {}).get("www_authenticate") or "") + s.error_text(h)):
                c = t.claims or {}
                if isinstance(c.get("exp"), (int, float)) and h.started + s.skew.get(h.host, 0) > c["exp"]:
                    continue  # expiry, reported by expired_token
                first = worked[key]
                reuse = [f for f in s.redemptions if f.is_error and first.started < f.started < h.started]
                out.append(finding(
                    "token_revoked", "error",
                    f"A token that worked at {utc(first.started)} was refused as invalid_token "
                    f"{ago(h.started - first.started)} later.",
                    f"Token {t.fingerprint} was accepted by {where(first)} and later refused by {where(h)} with "
                    f"invalid_token while it was not expired." + (
                        " A second redemption of the same authorization code failed in between; providers revoke "
                        "the tokens issued from a code that is redeemed twice (RFC 6749 §4.1.2)." if reuse else ""),
                    ["the grant was revoked after its authorization code was reused", "the user signed out or the "
                     "session was revoked", "the refresh token family was revoked"],
                    "Find what revoked the grant (see reused_code if present) and sign in again.",
                    [first.id] + [r.id for r in reuse] + [h.id], token=t.fingerprint))
                worked.pop(key, None)
    return out


def issuer_mismatch(s: Session) -> list[dict]:
    out = []
    issuers = {(h.response or {}).get("issuer") for h in s.hops if h.role == "discovery"} - {None}
    tenants = {_tenant(a.path) for a in s.authorize} - {None}
    for h in s.hops:
        if h.role == "token":
            tt = _tenant(h.path)
            if tt and tenants and tt not in tenants:
                out.append(finding("issuer_mismatch", "error",
                                   f"The code was redeemed at tenant '{tt}' but the sign-in started at tenant "
                                   f"'{sorted(tenants)[0]}'.",
                                   f"Authorize went to tenant {', '.join(sorted(tenants))}; {where(h)} redeems at {tt}. "
                                   "A code is only valid at the tenant that issued it (Entra AADSTS700005).",
                                   ["authority configured differently for sign-in and token redemption"],
                                   "Use the same authority (tenant) for both requests.",
                                   [s.authorize[-1].id, h.id], authorize_tenant=sorted(tenants), token_tenant=tt))
        for t in s.tokens.get(h.id, []):
            if t.kind != "id_token" or not t.claims:
                continue
            iss, tid = str(t.claims.get("iss", "")), t.claims.get("tid")
            bad = None
            if issuers and iss and iss.rstrip("/") not in {i.rstrip("/") for i in issuers if "{tenantid}" not in i}:
                templ = [i for i in issuers if "{tenantid}" in i]
                if not any(i.replace("{tenantid}", str(tid)).rstrip("/") == iss.rstrip("/") for i in templ):
                    bad = f"the discovery document names issuer {', '.join(sorted(issuers))}"
            if not bad and tid and tenants and not tenants & {str(tid).lower()} and not any(
                    "." in x for x in tenants):
                bad = f"the sign-in started at tenant {', '.join(sorted(tenants))}"
            if bad:
                out.append(finding("issuer_mismatch", "error", f"The id_token was issued by {iss}, not by the "
                                   "issuer the sign-in started with.", f"id_token {t.fingerprint} has iss {iss}"
                                   + (f" (tid {tid})" if tid else "") + f"; {bad}.",
                                   ["multi-tenant app signing in a user from another tenant with a single-tenant "
                                    "authority", "the authority (tenant, B2C policy) differs between the app's "
                                    "configuration and the sign-in"],
                                   "Align the authority/issuer the app validates with the one it signs in at.",
                                   [h.id], iss=iss))
    return out


def _tenant(path: str) -> str | None:
    m = re.match(r"^/([^/]+)/oauth2/", path or "")
    if not m:
        return None
    t = m.group(1).lower()
    return None if t in ("common", "organizations", "consumers") else t


def scope_not_granted(s: Session) -> list[dict]:
    """Requested scopes that no successful token answer of the session granted. All answers count
    together: with resource indicators (RFC 8707) or Entra's one-resource-per-token rule, an API's
    scope arrives in a later refresh-token answer, not in the code redemption."""
    answers = [h for h in s.hops if h.role == "token" and _ok(h)
               and isinstance(((h.response or {}).get("fields") or {}).get("scope"), str)]
    if not answers:
        return []
    granted = set().union(*(set(h.response["fields"]["scope"].split()) for h in answers))
    redeemed_for: dict[int, list] = defaultdict(list)  # authorize hop id -> its successful redemptions
    for h in answers:
        if h.code_fp:
            for a in s.authorize_for(h):
                redeemed_for[a.id].append(h)
    out = []
    for a in s.authorize:
        asked_raw = str(s.params(a).get("scope") or "")
        missing = set()
        for x in asked_raw.split():
            if x.lower() in au._OIDC_SCOPES or x in granted:
                continue
            if x.endswith("/.default") and any(g.startswith(x[: -len(".default")]) for g in granted):
                continue
            if "/" in x and x.rsplit("/", 1)[1] in granted:  # resource-qualified scope granted by short name
                continue
            missing.add(x)
        redemptions = redeemed_for.get(a.id, [])
        if missing and redemptions:
            out.append(finding("scope_not_granted", "warning",
                               f"The token grants less than was asked: {', '.join(sorted(missing))} not granted.",
                               f"Requested '{asked_raw.strip()}' at {where(a)}; the token answers granted "
                               f"'{' '.join(sorted(granted))}'.",
                               ["admin or user consent missing for those scopes", "the scope is not exposed by the "
                                "API or not assigned to the client", "conditional access or policy removed it"],
                               "Grant consent for the missing scopes (or request only what is granted) and sign in "
                               "again.", [a.id] + [h.id for h in redemptions], missing=sorted(missing)))
    return out


def redirect_loop(s: Session) -> list[dict]:
    out = []
    groups: dict[tuple, list] = defaultdict(list)
    for a in s.authorize:
        p = s.params(a)
        groups[(a.host, a.client_id, p.get("redirect_uri"))].append(a)
    for (host, cid, ru), hs in groups.items():
        run = [hs[0]]
        for h in hs[1:]:
            run = run + [h] if h.started - run[-1].started < 20 else [h]
            if len(run) >= 3:
                break
        if len(run) >= 3:
            out.append(finding("redirect_loop", "error",
                               f"The browser was sent to sign in {len(hs)} times in {ago(hs[-1].started - hs[0].started)}"
                               f" for client {cid}: a redirect loop.",
                               f"Authorize requests to {host} at " + ", ".join(utc(h.started) for h in hs[:6]) +
                               "; each sign-in returns to the app, which sends the browser back.",
                               ["the app does not keep its session cookie after the callback (SameSite, secure flag, "
                                "domain/path, size limit)", "the app rejects the token (audience, issuer) and restarts "
                                "sign-in", "clock skew makes the app think the token is not yet valid"],
                               "Check the Set-Cookie on the callback answer and why the app restarts sign-in.",
                               [h.id for h in hs], count=len(hs)))
    return out


# ---- idp_error -----------------------------------------------------------------------------

def idp_error(s: Session) -> list[dict]:
    groups: dict[tuple, list] = defaultdict(list)
    for h in s.hops:
        e = h.error or {}
        err = e.get("error")
        codes = e.get("error_codes") or []
        if not err or err == "no_response" or expected_error(s, h):
            continue
        if h.role in ("api", "userinfo") and not codes:
            continue  # resource-server refusals: see wrong_audience, expired_token, token_revoked
        groups[(str(err), tuple(codes[:1]))].append(h)
    out = []
    for (err, codes), hs in groups.items():
        code = codes[0] if codes else None
        entry = explain(err, code)
        e = hs[0].error or {}
        ids = {k: e[k] for k in ("trace_id", "correlation_id", "timestamp") if e.get(k)}
        idtxt = "; ".join(f"{k.replace('_', ' ')} {v}" for k, v in ids.items())
        name = f"AADSTS{code}" if code else err
        desc = str(e.get("error_description") or "")[:400]
        title = f"{where(hs[0])} answered {name}: " + (entry.title if entry else (desc or err))
        expl = ((entry.meaning + " ") if entry else "") + (f"The provider said: “{desc}”. " if desc else "") + \
               (f"Support will ask for: {idtxt}." if idtxt else "")
        sev = "error"
        out.append(finding("idp_error", sev, title.rstrip(".") + ".", expl.strip(),
                           list(entry.causes) if entry else ["see the provider's error description"],
                           entry.next_step if entry else "Look up the error in the provider's documentation with "
                                                         "the trace and correlation ids.",
                           [h.id for h in hs], error=err, aadsts=code, count=len(hs), **ids))
    return out


# ---- catch-all: a failed step no other check explained ---------------------------------------

def failed_hop(s: Session, earlier: list[dict]) -> list[dict]:
    explained = {e for f in earlier for e in f["evidence"]}
    out = []
    for h in s.hops:
        if h.id in explained or not h.is_error or h.role not in ("callback", "token", "authorize", "login") \
                or expected_error(s, h):
            continue
        msg = (h.error or {}).get("message") or (h.error or {}).get("error_description") or ""
        status = h.status if h.status is not None else "no response"
        out.append(finding("failed_hop", "error", f"The {h.role} step {where(h)} failed ({status}).",
                           f"{where(h)} answered {status}" + (f": {msg[:300]}" if msg else "."),
                           ["see the answer above; the app or provider log for this time has the detail"],
                           "Check the server log of " + h.host + f" at {utc(h.started)}.", [h.id], status=status))
    return out


CHECKS: list[Callable[[Session], list[dict]]] = [
    reused_code, duplicate_redirect, wrong_audience, state_mismatch, nonce_mismatch, pkce_mismatch,
    redirect_uri_mismatch, expired_token, issuer_mismatch, scope_not_granted, redirect_loop, token_revoked,
    idp_error,
]
SEVERITY_ORDER = {"error": 0, "warning": 1, "info": 2}


def run_checks(hops: list, tokens: list, expect_audience: dict[str, str] | None = None) -> list[dict]:
    s = Session(hops, tokens, expect_audience)
    found: list[dict] = []
    for check in CHECKS:
        found.extend(check(s))
    found.extend(failed_hop(s, found))
    first = {h.id: h.started for h in s.hops}
    found.sort(key=lambda f: (SEVERITY_ORDER.get(f["severity"], 3), min((first.get(e, 0) for e in f["evidence"]),
                                                                        default=0)))
    return found


def notes(hops: list) -> list[str]:
    """Facts about the capture itself that are not faults of the sign-in."""
    out = []
    roles = {h.role for h in hops}
    if "callback" in roles and "token" not in roles and not any(h.actor == "app" for h in hops):
        out.append("The app's code redemption (token request) is not visible in this capture: the app's back "
                   "channel did not go through the proxy. Findings rely on the browser's side; record with "
                   "`authtrace record --app` to see the token endpoint's answer too.")
    if "authorize" not in roles and "callback" in roles:
        out.append("No authorize request was captured (recording started mid-sign-in): state, nonce and PKCE "
                   "cannot be compared.")
    return out
