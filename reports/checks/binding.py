"""What binds an answer to the request that asked for it: `state`, `nonce`, PKCE and `redirect_uri`."""
from __future__ import annotations

import re

from authtrace.reports.checks.base import finding
from authtrace.reports.index import SessionIndex
from authtrace.store.records import Finding, Severity

OAUTH_ANSWER = ("code", "id_token", "access_token", "error")
PKCE_WORDS = re.compile(r"pkce|code_challenge|proof key|AADSTS9002325|AADSTS50148|AADSTS501481", re.I)
VERIFIER_WORDS = re.compile(r"verifier|pkce|proof key|501481|50148", re.I)


def state_mismatch(s: SessionIndex) -> list[Finding]:
    if not s.authorize:
        return []  # capture started after the authorize request: nothing to compare with
    sent = {a.state for a in s.authorize if a.state}
    out = []
    for h in s.callbacks:
        if not any(h.params.get(k) is not None for k in OAUTH_ANSWER):
            continue  # not an OAuth answer (e.g. a SAML post)
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
    sent = {a.nonce for a in s.authorize if a.nonce}
    if not sent:
        return []
    out = []
    for h in s.hops:
        for t in h.tokens:
            if t.kind != "id_token" or not t.claims or t.nonce in sent:
                continue
            auth = [a for a in s.authorize if a.nonce and a.started <= h.started][-1:]
            title = ("The id_token carries no nonce although the authorize request sent one." if t.nonce is None else
                     "The id_token's nonce matches no authorize request of this sign-in.")
            out.append(finding(kind="nonce_mismatch", severity=Severity.ERROR, title=title,
                               explanation=f"id_token {t.fingerprint} at {h.label} {h.where} has nonce {t.nonce!r}; "
                                           f"the authorize request(s) sent {', '.join(repr(x) for x in sorted(sent))}. "
                                           "OIDC Core §3.1.3.7 requires them to be equal, so the app rejects the "
                                           "token.",
                               evidence=[*auth, h], nonce=t.nonce))
    return out


def pkce_mismatch(s: SessionIndex) -> list[Finding]:
    out = []
    for h in s.redemptions:
        got = h.params.get("code_verifier_s256")
        auths = s.authorize_for(h)
        challenges = {c: a for a in auths if (c := a.params.get("code_challenge"))}
        plain = any((a.params.get("code_challenge_method") or "").lower() == "plain" for a in auths)
        if got and challenges and got not in challenges and not plain:
            out.append(finding(kind="pkce_mismatch", variant="verifier", severity=Severity.ERROR,
                               title="The token request's code_verifier does not match the authorize request's "
                                     "code_challenge.",
                               explanation=f"S256(code_verifier) at {h.label} {h.where} is {got}, but the authorize "
                                           f"request sent code_challenge {', '.join(sorted(challenges))}. The "
                                           "provider refuses the code (RFC 7636 §4.6; Entra AADSTS501481).",
                               evidence=[*auths[-1:], h], verifier_s256=got))
        elif challenges and not got and h.is_error and VERIFIER_WORDS.search(h.error_text()):
            out.append(finding(kind="pkce_mismatch", variant="no_verifier", severity=Severity.ERROR,
                               title="The authorize request used PKCE but the token request sent no code_verifier.",
                               explanation=f"{h.label} {h.where} failed without a code_verifier.",
                               evidence=[*auths[-1:], h]))
    for h in s.hops:
        text = h.error_text()
        if h.is_error and PKCE_WORDS.search(text):
            missing = [a for a in s.authorize if not a.params.get("code_challenge")]
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
                               evidence=[auths[-1], h], token_redirect_uri=ru, authorize_redirect_uri=sorted(sent)))
    return out
