"""What every check uses: the finding builder and the answers that belong to a normal flow."""
from __future__ import annotations

import re
from collections.abc import Iterable
from typing import Any

from authtrace.reports.checks.advice import advice
from authtrace.reports.index import SessionIndex
from authtrace.store.records import Finding, Hop, Severity

EXPECTED_ERRORS = frozenset({"authorization_pending", "slow_down"})  # device-flow polling: normal
APP_ANSWER = frozenset({"body", "page"})  # an error read from what the answering server itself wrote
SILENT_ERRORS = frozenset({"interaction_required", "login_required", "consent_required",
                           "account_selection_required"})


def finding(*, kind: str, severity: Severity, title: str, explanation: str, evidence: Iterable[Hop],
            variant: str = "", facts: dict[str, str] | None = None,
            advised: tuple[tuple[str, ...], str] | None = None, **details: Any) -> Finding:
    """A finding with the fixed prose of its kind (`advice.ADVICE[kind or kind.variant]`, unless
    `advised` gives causes and next step from elsewhere, e.g. the error catalogue) and its evidence
    in order, each hop once."""
    causes, next_step = advised or advice(f"{kind}.{variant}" if variant else kind, **(facts or {}))
    seen: list[Hop] = []
    for h in evidence:
        if not any(h is s for s in seen):
            seen.append(h)
    return Finding(kind=kind, severity=severity, title=title, explanation=explanation, causes=causes,
                   next_step=next_step, evidence=tuple(seen), details=details)


def expected_error(s: SessionIndex, h: Hop) -> bool:
    """Answers that are part of a normal flow: device-flow polling, and a silent (prompt=none)
    request told that interaction is needed, after which the app signs in interactively."""
    err = h.error.error if h.error else ""
    if err in EXPECTED_ERRORS:
        return True
    if err in SILENT_ERRORS:
        return prompt_none(s, h)
    return False


def said(h: Hop, limit: int = 300) -> str:
    """What a failed answer said, most specific message first, with the ids support asks for:
    '“Authentication code has already been redeemed.” (request id 7c5e…, operation id 4b0a…)'."""
    e = h.error
    if e is None:
        return ""
    msg = e.specific or e.error
    ids = ids_text(h)
    return (f"“{msg[:limit]}”" if msg else "") + (f" ({ids})" if ids else "")


NO_TOKEN_WORDS = re.compile(r"missing|empty|not present|absent|no (access )?token|without (a |an )?token|required",
                            re.I)


def lost_token(h: Hop) -> str:
    """Why the request evidently sent a token the capture does not hold ("" when it did not): its CORS
    preflight announced an Authorization header, or the API named a token error (RFC 6750 §3.1: a
    request without any token gets no error code) without saying the token was missing."""
    if h.presented_tokens():
        return ""
    if h.initiator is not None and "authorization" in h.initiator.preflight:
        return "its CORS preflight announced an Authorization header that the capture does not hold"
    wa = h.answer.www_authenticate
    if wa.get("error") and not NO_TOKEN_WORDS.search(wa.get("error_description", "")):
        return f"the API answered error=\"{wa['error'][:40]}\" about a token that the capture does not hold"
    return ""


def ids_of(h: Hop) -> dict[str, Any]:
    """The ids of a hop's error answer, as finding details: trace, correlation, request, operation,
    session, timestamp, and any other id-like field the answer had."""
    if h.error is None:
        return {}
    out: dict[str, Any] = dict(h.error.ids())
    out.update({k: v for k, v in h.error.extra.items() if k.endswith(("_id", "id")) and k not in out})
    return out


def ids_text(h: Hop) -> str:
    return "; ".join(f"{k.replace('_', ' ')} {v}" for k, v in (h.error.ids() if h.error else {}).items())


def app_answered(h: Hop) -> bool:
    """An error answer written by the app's own callback or a platform's redirect handler (not an
    identity provider's error redirect arriving there)."""
    return h.role == "callback" and h.error is not None and h.error.source in APP_ANSWER


def prompt_none(s: SessionIndex, h: Hop) -> bool:
    auths = s.authorize_for(h) if h.role != "authorize" else [h]
    return any((a.params.get("prompt") or "").lower() == "none" for a in auths)
