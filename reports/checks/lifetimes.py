"""Tokens over time: `expired_token` (used after it expired, or before nbf, with the clock skew from
Date headers) and `token_revoked` (refused as invalid_token at an API where it had worked, inside
its known lifetime).

A token's lifetime comes from what the client was told before what the token says: the token
answer's `expires_in` from the answer's time (most access tokens are opaque to the client, and
Entra's tokens for Microsoft's own APIs must not be read), else the JWT's `exp`. When the capture
lost the request's token (a sanitized export), the tokens the session was issued decide; the API's
words decide only when no token can be read, and the finding then says so."""
from __future__ import annotations

import re

from authtrace.reports import audiences as au
from authtrace.reports.checks.base import finding, lost_token
from authtrace.reports.index import Lifetime, SessionIndex
from authtrace.store import clock
from authtrace.store.records import Finding, Hop, Instant, Role, Severity, Token

LEEWAY_S = 300  # a token a few minutes past exp that the API still accepted is not worth an alarm
RESOURCE_ROLES = (Role.API, Role.USERINFO)
EXPIRED_WORDS = re.compile(r"expired|lifetime validation failed|IDX10223|token is expired|exp claim", re.I)


def expiry(s: SessionIndex, t: Token) -> tuple[float | None, str]:
    """When `t` expires (server time) and what says so."""
    life = s.issued(t.fingerprint)
    if life is not None and life.source == "expires_in":
        return life.expires, f"the token answer {life.issued_by.label} said expires_in, so it expired at " \
                             f"{clock.stamp(life.expires)}"
    if t.exp is not None:
        return t.exp, f"its exp is {clock.stamp(t.exp)}"
    return None, ""


def _skew_note(skew: float) -> str:
    return f" (server clock {skew:+.0f} s from the capture clock, from Date headers)" if abs(skew) >= 1 else ""


def expired_token(s: SessionIndex) -> list[Finding]:
    out = []
    for h in s.hops:
        if h.role not in RESOURCE_ROLES:
            continue
        skew = s.skew_at(h)
        now = h.started + skew
        refused = h.status in (401, 403)
        severity = Severity.ERROR if refused else Severity.WARNING
        for t in h.presented_tokens():
            exp, source = expiry(s, t)
            from_answer = source.startswith("the token answer")
            if exp is not None and now > exp and (refused or (not from_answer and now - exp > LEEWAY_S)):
                out.append(finding(
                    kind="expired_token", variant="expired", severity=severity,
                    title=f"An expired access token was sent to {h.host}: it expired "
                          f"{clock.duration(now - exp)} before use.",
                    explanation=f"Token {t.fingerprint}: {source}; it was used at {clock.stamp(h.started)} ({h.label})"
                                f"{_skew_note(skew)}, {clock.duration(now - exp)} after it expired; {h.host} "
                                f"answered {h.status}.",
                    evidence=[*_issuer(s, t), h], exp=Instant(exp), used=Instant(h.started), skew_s=round(skew, 1),
                    expired_for_s=round(now - exp, 1), lifetime_from="expires_in" if from_answer else "exp"))
            elif t.nbf is not None and now + 60 < t.nbf:
                out.append(finding(
                    kind="expired_token", variant="not_yet", severity=severity,
                    title=f"A token not yet valid was sent to {h.host}: nbf is {clock.duration(t.nbf - now)} "
                          "after use.",
                    explanation=f"Token {t.fingerprint} has nbf {clock.stamp(t.nbf)}; it was used at "
                                f"{clock.stamp(h.started)} ({h.label}){_skew_note(skew)}.",
                    evidence=[h], nbf=Instant(t.nbf)))
        if refused and lost_token(h):
            found = _lost_token_expired(s, h, now, skew)
            if found is not None:
                out.append(found)
    return out


def _issuer(s: SessionIndex, t: Token) -> list[Hop]:
    life = s.issued(t.fingerprint)
    return [life.issued_by] if life is not None else []


def _lost_token_expired(s: SessionIndex, h: Hop, now: float, skew: float) -> Finding | None:
    """A refused call whose token the capture lost: expired if every access token the session was
    issued for this API had expired by then; else, only when no token can be read, the API's words."""
    issued = [life for life in s.lifetimes.values() if life.token.kind == "access_token"
              and life.issued_by.started < h.started and _fits(life, h, s)]
    said = " ".join(x for x in (h.answer.www_authenticate.get("error_description", ""), h.error_text()) if x)
    why = lost_token(h)
    if issued:
        if not all(now > life.expires for life in issued):
            return None
        last = max(issued, key=lambda life: life.expires)
        return finding(
            kind="expired_token", variant="inferred", severity=Severity.ERROR,
            title=f"{h.host} refused a call after every access token this session was issued for it had expired "
                  f"(the latest {clock.duration(now - last.expires)} before).",
            explanation=f"{h.label} {h.where} answered {h.status}; the request's token is not in the capture ({why}: "
                        f"a sanitized export removes Authorization headers). The session was issued "
                        f"{len(issued)} access token(s) for it; the latest, {last.token.fingerprint} from "
                        f"{last.issued_by.label}, expired at {clock.stamp(last.expires)} (from its "
                        f"{'expires_in' if last.source == 'expires_in' else 'exp'}), "
                        f"{clock.duration(now - last.expires)} before this call{_skew_note(skew)}."
                        + (f" The API said: “{said[:300]}”." if said else ""),
            evidence=[last.issued_by, h], exp=Instant(last.expires), used=Instant(h.started),
            expired_for_s=round(now - last.expires, 1), skew_s=round(skew, 1))
    if any(life.issued_by.started < h.started for life in s.lifetimes.values() if life.token.kind == "access_token"):
        return None  # tokens were issued, for other APIs or unreadable: nothing to decide from
    if not EXPIRED_WORDS.search(said):
        return None
    return finding(
        kind="expired_token", variant="words", severity=Severity.ERROR,
        title=f"{h.host} refused the token as expired (from the API's words: the token is not in the capture).",
        explanation=f"{h.label} {h.where} answered {h.status}: “{said[:300]}”. The request's token is not in the "
                    f"capture ({why}) and no token answer was captured, so this rests on the API's words.",
        evidence=[h], used=Instant(h.started))


def _fits(life: Lifetime, h: Hop, s: SessionIndex) -> bool:
    """Whether an issued token could be the one sent to `h`: its audience fits the API (or it is
    opaque, which says nothing either way)."""
    aud = {au.norm(a) for a in life.token.aud}
    if not aud:
        return True
    exp = au.expected_for(h.host, s.expect, h.path)
    if exp is not None:
        return bool(aud & exp[1])
    return any(h.host in a for a in aud)


def token_revoked(s: SessionIndex) -> list[Finding]:
    out = []
    worked: dict[tuple[str, str], Hop] = {}  # (token, host) -> where it worked: revocation is per resource server
    for h in s.hops:
        if h.role not in RESOURCE_ROLES:
            continue
        for t in h.presented_tokens():
            key = (t.fingerprint, h.host)
            if h.ok:
                worked.setdefault(key, h)
                continue
            said = str(h.answer.www_authenticate or "") + h.error_text()
            if h.status != 401 or key not in worked or "invalid_token" not in said:
                continue
            exp, _ = expiry(s, t)
            if exp is not None and h.started + s.skew_at(h) > exp:
                continue  # expiry, reported by expired_token
            first = worked.pop(key)
            code_reuse = [f for f in s.redemptions if f.is_error and first.started < f.started < h.started]
            refresh_reuse = [f for f in s.hops if f.role == Role.TOKEN and not f.ok and f.error is not None
                             and f.error.error == "invalid_grant" and f.params.get("grant_type") == "refresh_token"
                             and first.started < f.started < h.started]
            why = ""
            if code_reuse:
                why = (" A second redemption of the same authorization code failed in between; providers revoke the "
                       "tokens issued from a code that is redeemed twice (RFC 6749 §4.1.2).")
            elif refresh_reuse:
                why = (f" A refresh was refused in between ({', '.join(f.label for f in refresh_reuse)}); providers "
                       "revoke the whole grant, with its access tokens, when a rotated refresh token is reused.")
            out.append(finding(
                kind="token_revoked", severity=Severity.ERROR,
                title=f"A token that worked at {clock.time_of_day(first.started)} was refused as invalid_token "
                      f"{clock.duration(h.started - first.started)} later.",
                explanation=f"Token {t.fingerprint} was accepted by {first.label} {first.where} and later refused by "
                            f"{h.label} {h.where} with invalid_token "
                            + (f"before it expired ({clock.stamp(exp)})." if exp is not None else
                               "(its lifetime is not known from the capture).") + why,
                evidence=[first, *code_reuse, *refresh_reuse, h], token=t.fingerprint))
    return out
