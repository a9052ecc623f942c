"""Tokens for the wrong resource: three checks, from the strongest evidence to the weakest.

1. `token_audience`: a token's `aud` does not fit the API host it was sent to (audience table or
   `--expect-audience`), or a refused token names a URI audience of another host.
2. `requested_resource`: an opaque token was refused at a known API, and the sign-in asked for a
   scope/resource that cannot fit that API.
3. `refusal_names_audience`: a refusal's text names the audience, when neither fact above exists.

Facts before words: a 401 whose text lists several possible causes ("missing, invalid, audience is
incorrect, or expired") is no evidence of a wrong audience, and when the presented token can be read
its `aud` (and `exp`/`nbf`/`expires_in`) decide; the words decide only for a token that cannot be
read (opaque, or lost by a sanitized export), and the finding says so.
"""
from __future__ import annotations

import re
from urllib.parse import urlsplit

from authtrace.reports import audiences as au
from authtrace.reports.checks.base import finding
from authtrace.reports.index import SessionIndex
from authtrace.store.records import Finding, Hop, Role, Severity, Token

KIND = "wrong_audience"
AUDIENCE_WORDS = re.compile(r"audience|\baud\b|InvalidAuthenticationTokenAudience", re.I)
# the words of a refusal that lists causes ("missing, invalid, audience is incorrect, or expired")
CAUSE_WORDS = re.compile(r"\b(missing|invalid|expired|malformed|revoked|not yet valid|signature)\b", re.I)
URI_RE = re.compile(r"(https?://[^\s'\"<>,;]+|api://[^\s'\"<>,;]+|[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-"
                    r"[0-9a-f]{12})", re.I)
RESOURCE_ROLES = (Role.API, Role.USERINFO)


def token_audience(s: SessionIndex) -> list[Finding]:
    out = []
    seen: set[tuple[str, tuple[str, ...]]] = set()
    for h in s.hops:
        if h.role not in RESOURCE_ROLES:
            continue
        exp = au.expected_for(h.host, s.expect, h.path)
        for t in h.presented_tokens():
            if not t.aud:
                continue
            normed = {au.norm(a) for a in t.aud}
            if exp is not None:
                if normed & exp[1]:
                    continue
                reason = f"{h.host} expects {exp[0]}"
            elif not h.ok and h.status in (401, 403) and _uri_auds_foreign(normed, h.host):
                reason = f"{h.host} refused it with {h.status}"
            else:
                continue
            key = (h.host, tuple(sorted(normed)))
            if key in seen:
                continue
            seen.add(key)
            got = ", ".join(f"{a} ({au.label_of(a)})" if au.label_of(a) else a for a in t.aud)
            req = _requests_for(s, normed)
            out.append(finding(
                kind=KIND, variant="token", severity=Severity.ERROR,
                title=f"An access token for {got} was sent to {h.host}, which needs another audience.",
                explanation=f"Token {t.fingerprint} has aud {got}; {reason}. " + _requested_note(req),
                facts={"wanted": exp[0] if exp else "the API resource " + h.host},
                evidence=[*req, h], host=h.host, aud=list(t.aud), expected=sorted(exp[1]) if exp else None))
    return out


def requested_resource(s: SessionIndex) -> list[Finding]:
    reqs = [r for r in s.hops if r.role in (Role.AUTHORIZE, Role.TOKEN) and au.resources_requested(r.params)]
    asked: set[str] = set().union(*(au.resources_requested(r.params) for r in reqs)) if reqs else set()
    if not asked:
        return []
    out = []
    seen: set[str] = set()
    for h in s.hops:
        if h.role != Role.API or h.ok or h.status not in (401, 403) or any(t.aud for t in h.presented_tokens()):
            continue
        exp = au.expected_for(h.host, s.expect, h.path)
        if exp is None or asked & exp[1] or h.host in seen:
            continue
        seen.add(h.host)
        names = ", ".join(sorted(asked))
        out.append(finding(
            kind=KIND, variant="requested", severity=Severity.ERROR,
            title=f"The sign-in asked for {names}, but its token is used at {h.host}, which needs {exp[0]}.",
            explanation=f"{h.label} {h.where} answered {h.status}. The authorize/token requests named {names} as "
                        f"scope/resource; a token for that resource cannot be accepted by {h.host}.",
            facts={"scope": sorted(exp[1])[0], "host": h.host}, evidence=[*reqs, h], host=h.host,
            requested=sorted(asked)))
    return out


def refusal_names_audience(s: SessionIndex, earlier: list[Finding]) -> list[Finding]:
    explained = {id(e) for f in earlier if f.kind in (KIND, "expired_token") for e in f.evidence}
    out = []
    for h in s.hops:
        if h.role not in RESOURCE_ROLES or h.status not in (401, 403) or id(h) in explained:
            continue
        text = " ".join(x for x in (h.answer.www_authenticate.get("error_description", ""), h.error_text()) if x)
        if not AUDIENCE_WORDS.search(text) or lists_causes(text):
            continue
        named = sorted(set(URI_RE.findall(text)))
        readable = [t for t in h.presented_tokens() if t.aud]
        if readable:
            auds = [a for t in readable for a in t.aud]
            if _fits(s, h, readable):
                continue  # the token's own aud fits: the words are not evidence of a wrong audience
            basis = f"The token's aud is {', '.join(auds)}, which the answer does not accept."
        else:
            basis = ("The token itself cannot be read (" + ("opaque" if h.presented_tokens() else
                                                            "not in the capture") +
                     "), so this rests on the API's words.")
        out.append(finding(kind=KIND, variant="named", severity=Severity.ERROR,
                           title=f"{h.host} refused the token because of its audience.",
                           explanation=f"{h.label} {h.where} answered {h.status}: “{text.strip()[:400]}”. {basis}",
                           evidence=[h], host=h.host, named=named, from_words=not readable))
    return out


def lists_causes(text: str) -> bool:
    """A refusal that lists several possible causes names none of them."""
    return len({m.lower() for m in CAUSE_WORDS.findall(text)}) >= 2


def _fits(s: SessionIndex, h: Hop, tokens: list[Token]) -> bool:
    exp = au.expected_for(h.host, s.expect, h.path)
    normed = {au.norm(a) for t in tokens for a in t.aud}
    if exp is not None:
        return bool(normed & exp[1])
    return any((urlsplit(a).hostname or "") == h.host for a in normed if a.startswith("http"))


def _uri_auds_foreign(auds: set[str], host: str) -> bool:
    uris = [a for a in auds if a.startswith("http")]
    return bool(uris) and all((urlsplit(a).hostname or "") != host for a in uris)


def _requests_for(s: SessionIndex, auds: set[str]) -> list[Hop]:
    return [r for r in s.hops if r.role in (Role.AUTHORIZE, Role.TOKEN) and au.resources_requested(r.params) & auds]


def _requested_note(reqs: list[Hop]) -> str:
    if not reqs:
        return ""
    asked = sorted(set().union(*(au.resources_requested(r.params) for r in reqs)))
    return f"It was requested as {', '.join(asked)} at {', '.join(r.label for r in reqs)}."
