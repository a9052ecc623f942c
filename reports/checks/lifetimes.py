"""Tokens over time: `expired_token` (used after exp, or before nbf, with the clock skew from Date
headers) and `token_revoked` (refused as invalid_token at an API where it had worked, inside its
lifetime)."""
from __future__ import annotations

from authtrace.reports.checks.base import finding
from authtrace.reports.index import SessionIndex
from authtrace.store import clock
from authtrace.store.records import Finding, Hop, Instant, Role, Severity

LEEWAY_S = 300  # a token a few minutes past exp that the API still accepted is not worth an alarm
RESOURCE_ROLES = (Role.API, Role.USERINFO)


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
            skew_note = (f" (server clock {skew:+.0f} s from the capture clock, from Date headers)"
                         if abs(skew) >= 1 else "")
            if t.exp is not None and now > t.exp and (refused or now - t.exp > LEEWAY_S):
                out.append(finding(
                    kind="expired_token", variant="expired", severity=severity,
                    title=f"An expired access token was sent to {h.host}: it expired "
                          f"{clock.duration(now - t.exp)} before use.",
                    explanation=f"Token {t.fingerprint} has exp {clock.stamp(t.exp)}; it was used at "
                                f"{clock.stamp(h.started)} ({h.label}){skew_note}; {h.host} answered {h.status}.",
                    evidence=[h], exp=Instant(t.exp), used=Instant(h.started), skew_s=round(skew, 1)))
            elif t.nbf is not None and now + 60 < t.nbf:
                out.append(finding(
                    kind="expired_token", variant="not_yet", severity=severity,
                    title=f"A token not yet valid was sent to {h.host}: nbf is {clock.duration(t.nbf - now)} "
                          "after use.",
                    explanation=f"Token {t.fingerprint} has nbf {clock.stamp(t.nbf)}; it was used at "
                                f"{clock.stamp(h.started)} ({h.label}){skew_note}.",
                    evidence=[h], nbf=Instant(t.nbf)))
    return out


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
            if t.exp is not None and h.started + s.skew_at(h) > t.exp:
                continue  # expiry, reported by expired_token
            first = worked.pop(key)
            reuse = [f for f in s.redemptions if f.is_error and first.started < f.started < h.started]
            out.append(finding(
                kind="token_revoked", severity=Severity.ERROR,
                title=f"A token that worked at {clock.time_of_day(first.started)} was refused as invalid_token "
                      f"{clock.duration(h.started - first.started)} later.",
                explanation=f"Token {t.fingerprint} was accepted by {first.label} {first.where} and later refused by "
                            f"{h.label} {h.where} with invalid_token while it was not expired." + (
                                " A second redemption of the same authorization code failed in between; providers "
                                "revoke the tokens issued from a code that is redeemed twice (RFC 6749 §4.1.2)."
                                if reuse else ""),
                evidence=[first, *reuse, h], token=t.fingerprint))
    return out
