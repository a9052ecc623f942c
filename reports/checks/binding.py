"""What binds an answer to the request that asked for it: `state`, `nonce`, PKCE and `redirect_uri`,
each compared with the authorize request that really produced the code (`SessionIndex.authorize_for`:
by the browser's path first, then state), so a verifier that fits another tab's challenge is still a
mismatch. An app's own error page that names one of these ("Correlation failed",
`authorization_request_not_found`, `mismatching_state`, ...) is mapped to the kind it means, with the
evidence that shows why when the capture has it (`app_says`)."""
from __future__ import annotations

import re

from authtrace.reports.catalogue import app_error
from authtrace.reports.checks.base import finding, ids_of, said
from authtrace.reports.index import SessionIndex
from authtrace.store.records import Finding, Hop, Role, Severity

OAUTH_ANSWER = ("code", "id_token", "access_token", "error")
PKCE_WORDS = re.compile(r"pkce|code_challenge|proof key|AADSTS9002325|AADSTS50148|AADSTS501481", re.I)
VERIFIER_WORDS = re.compile(r"verifier|pkce|proof key|501481|50148", re.I)
NONCE_ANSWERS = ("response.id_token", "fragment.id_token", "form.id_token", "query.id_token")


def state_mismatch(s: SessionIndex) -> list[Finding]:
    if not s.authorize:
        return []  # capture started after the authorize request: nothing to compare with
    sent = {a.state for a in s.authorize if a.state}
    out = []
    for h in s.callbacks:
        if not any(h.params.get(k) is not None for k in OAUTH_ANSWER):
            continue  # not an OAuth answer (e.g. a SAML post)
        producer = s.producer_of(h)
        if producer is not None and producer.state and h.state and h.state != producer.state:
            title = "The callback's state is not the state of the authorize request that produced its code."
            expl = (f"{h.label} {h.where} carried state '{h.state[:60]}', but its code was issued for "
                    f"{producer.label}, which sent state '{producer.state[:60]}'. The state was altered on the way "
                    "back, so the app must reject the callback (CSRF protection).")
            out.append(finding(kind="state_mismatch", severity=Severity.ERROR, title=title, explanation=expl,
                               evidence=[producer, h], callback_state=h.state, sent=[producer.state]))
            continue
        if (h.state and h.state in sent) or (not h.state and not sent):
            continue
        if h.state:
            title = "The callback's state matches no authorize request of this sign-in."
            expl = (f"{h.label} {h.where} carried state '{h.state[:60]}', but the authorize request(s) sent "
                    + ", ".join(f"'{x[:60]}'" for x in sorted(sent)) + ". The app must reject such a callback "
                    "(CSRF protection), so the sign-in fails.")
        else:
            title = "The callback carries no state although the authorize request sent one."
            expl = (f"{h.label} {h.where} has no state parameter; the authorize request sent state "
                    f"'{sorted(sent)[0][:60]}'.")
        before = [a for a in s.authorize if a.started <= h.started][-1:]
        out.append(finding(kind="state_mismatch", severity=Severity.ERROR, title=title, explanation=expl,
                           evidence=[*before, h], callback_state=h.state, sent=sorted(sent)))
    return out


def nonce_mismatch(s: SessionIndex) -> list[Finding]:
    """Only an id_token that answers an authorize request (code redemption, implicit or hybrid
    response) is held to that request's nonce; one issued by a refresh_token grant may carry none
    (OIDC Core §12.2)."""
    out = []
    for h in s.hops:
        if h.role == Role.TOKEN and not (h.code_fp and (h.params.get("grant_type") or "authorization_code")
                                         == "authorization_code"):
            continue  # refresh, client credentials, token exchange, device: no authorize request's nonce
        if h.role not in (Role.TOKEN, Role.CALLBACK, Role.AUTHORIZE, Role.LOGIN):
            continue
        for t in h.tokens:
            if t.kind != "id_token" or not t.claims or t.where not in NONCE_ANSWERS:
                continue
            auths = s.authorize_for(h) if h.role in (Role.TOKEN, Role.CALLBACK) else [s.attempt_of(h) or h]
            sent = {a.nonce for a in auths if a.nonce}
            if not sent or t.nonce in sent:
                continue
            others = sorted({a.label for a in s.authorize if a.nonce == t.nonce and a not in auths})
            title = ("The id_token carries no nonce although the authorize request sent one." if t.nonce is None else
                     "The id_token's nonce is not the nonce of the authorize request that produced it.")
            out.append(finding(kind="nonce_mismatch", severity=Severity.ERROR, title=title,
                               explanation=f"id_token {t.fingerprint} at {h.label} {h.where} has nonce {t.nonce!r}; "
                                           f"the authorize request {auths[0].label} that produced it sent "
                                           f"{', '.join(repr(x) for x in sorted(sent))}"
                                           + (f" (the nonce is that of {', '.join(others)}, another sign-in attempt)"
                                              if others else "") + ". OIDC Core §3.1.3.7 requires them to be equal, "
                                           "so the app rejects the token.",
                               evidence=[auths[0], h], nonce=t.nonce))
    return out


def pkce_mismatch(s: SessionIndex) -> list[Finding]:
    out = []
    for h in s.redemptions:
        got = h.params.get("code_verifier_s256")
        auths = s.authorize_for(h)
        challenges = {c: a for a in auths if (c := a.params.get("code_challenge"))}
        plain = any((a.params.get("code_challenge_method") or "").lower() == "plain" for a in auths)
        if got and challenges and got not in challenges and not plain:
            other = [a for a in s.authorize if a.params.get("code_challenge") == got and a not in auths]
            out.append(finding(kind="pkce_mismatch", variant="verifier", severity=Severity.ERROR,
                               title="The token request's code_verifier does not match the authorize request's "
                                     "code_challenge.",
                               explanation=f"S256(code_verifier) at {h.label} {h.where} is {got}, but the authorize "
                                           f"request {auths[0].label} that produced the code sent code_challenge "
                                           f"{', '.join(sorted(challenges))}"
                                           + (f"; the verifier belongs to {other[0].label}, another sign-in attempt "
                                              "(another tab, or a sign-in started again)" if other else "")
                                           + ". The provider refuses the code (RFC 7636 §4.6; Entra AADSTS501481).",
                               evidence=[auths[0], *other[:1], h], verifier_s256=got))
        elif challenges and not got and h.is_error and VERIFIER_WORDS.search(h.error_text()):
            out.append(finding(kind="pkce_mismatch", variant="no_verifier", severity=Severity.ERROR,
                               title="The authorize request used PKCE but the token request sent no code_verifier.",
                               explanation=f"{h.label} {h.where} failed without a code_verifier.",
                               evidence=[auths[0], h]))
    for h in s.hops:
        text = h.error_text()
        if h.is_error and PKCE_WORDS.search(text):
            missing = [a for a in s.authorize if not a.params.get("code_challenge") and a.params.saml is None]
            if missing and not any(h is e for f in out for e in f.evidence):
                out.append(finding(kind="pkce_mismatch", variant="required", severity=Severity.ERROR,
                                   title="The provider requires PKCE but the authorize request sent no code_challenge.",
                                   explanation=f"{h.label} {h.where} answered: {text.strip()[:300]}",
                                   evidence=[missing[-1], h]))
    return out


def redirect_uri_mismatch(s: SessionIndex) -> list[Finding]:
    out = []
    for h in s.redemptions:
        ru = h.params.get("redirect_uri")
        auths = [a for a in s.authorize_for(h) if a.params.get("redirect_uri")]
        sent = {a.params.get("redirect_uri") or "" for a in auths}
        if ru and sent and ru not in sent:
            out.append(finding(kind="redirect_uri_mismatch", severity=Severity.ERROR,
                               title="The token request's redirect_uri differs from the authorize request's.",
                               explanation=f"Token request {h.label} {h.where} sent redirect_uri {ru}; the authorize "
                                           f"request sent {', '.join(sorted(sent))}. RFC 6749 §4.1.3 requires them "
                                           "to be identical (Entra: AADSTS50011/AADSTS500112-like errors; others: "
                                           "invalid_grant).",
                               evidence=[auths[0], h], token_redirect_uri=ru, authorize_redirect_uri=sorted(sent)))
    return out


def app_says(s: SessionIndex, earlier: list[Finding]) -> list[Finding]:
    """An app's callback that failed naming a framework error (ASP.NET Core "Correlation failed",
    Spring `authorization_request_not_found`, Authlib `mismatching_state`, Auth.js, passport, MSAL):
    the kind it means, with the evidence that shows why when the capture has it. A callback another
    finding already explains is left to that finding."""
    explained = {id(e) for f in earlier for e in f.evidence if f.kind != "idp_error"}
    cookies_seen = any(h.cookies_sent or h.cookies_set for h in s.hops)
    out = []
    for h in s.callbacks:
        if id(h) in explained or not h.is_error or h.error is None or h.error.source not in ("body", "page"):
            continue
        words = " ".join((h.error_text(), h.body_excerpt or ""))
        known = app_error(words)
        if known is None:
            continue
        why, extra = _why(s, h, cookies_seen)
        kind = known.kind.split(".")[0]
        out.append(finding(
            kind=kind, variant="app", severity=Severity.ERROR,
            title=f"The app refused the callback ({known.framework}: {_label(kind)}).",
            explanation=f"{h.label} {h.where} answered {h.status}: {said(h)}. That is {known.framework}'s error: "
                        f"{known.meaning}. {why}",
            evidence=[*extra, h], framework=known.framework, **ids_of(h)))
    return out


def _label(kind: str) -> str:
    return {"state_mismatch": "state not recognised", "nonce_mismatch": "nonce not recognised",
            "pkce_mismatch": "PKCE verifier not found"}.get(kind, kind)


def _why(s: SessionIndex, cb: Hop, cookies_seen: bool) -> tuple[str, list[Hop]]:
    """The capture's evidence for why the app did not recognise the callback."""
    producer = s.producer_of(cb) or next(iter(s.authorize_for(cb)[:1]), None)
    if producer is not None:
        later = [a for a in s.attempt_roots() if producer.started < a.started < cb.started and a is not producer
                 and a.client_id == producer.client_id]
        if later:
            return (f"The callback answers {producer.label}, but the app started another sign-in ({later[-1].label}) "
                    "after it, before this callback came back (another tab, or the sign-in started again): the app "
                    "keeps the state of the latest attempt only, so this older one fails.", [producer, later[-1]])
    ini = cb.initiator
    if cb.method == "POST" and ini is not None and ini.site == "cross-site" and not cb.cookies_sent and cookies_seen:
        return ("The callback is a cross-site form_post and the browser sent none of the app's cookies with it: "
                "cookies with SameSite=Lax or Strict (the default for cookies without SameSite) are not sent on a "
                "cross-site POST, so the app cannot find what it stored when the sign-in started.",
                [producer] if producer is not None else [])
    if not cookies_seen:
        return ("This capture holds no cookies at all (a sanitized export removes them), so it cannot show "
                "whether the app's cookie came back.", [producer] if producer is not None else [])
    return ("The capture does not show why (the callback carried the state the provider returned); the app's log "
            "has the detail.", [producer] if producer is not None else [])
