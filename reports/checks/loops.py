"""`redirect_loop`: sign-in attempts started again and again for the same client.

A loop is repeated sign-in attempts, not repeated requests: providers such as django-oauth-toolkit
and Authlib post their login and consent forms back to the authorize URL, so one sign-in requests
it several times. An attempt is a new authorize request the client started (a new state, nonce or
challenge, not reached along the browser's path from an earlier one: `SessionIndex.attempt_roots`)
after the previous attempt came back to the app, for the same client and scope (sign-ins for other
scopes are incremental consent). Entra's AADSTS50196 (it stopped a client request loop) is a loop
too."""
from __future__ import annotations

from collections import defaultdict

from authtrace.reports.checks.base import finding
from authtrace.reports.index import SessionIndex
from authtrace.store import clock
from authtrace.store.records import Finding, Hop, Role, Severity

WINDOW_S = 20  # attempts closer than this, one after the other, are a loop
MIN_ATTEMPTS = 3
LOOP_CODES = (50196,)


def redirect_loop(s: SessionIndex) -> list[Finding]:
    out = []
    groups: dict[tuple[str, str | None, str | None], list[Hop]] = defaultdict(list)
    for a in s.attempt_roots():  # the same request again: attempts for other scopes are incremental consent
        groups[(a.host, a.client_id, a.params.get("scope"))].append(a)
    stopped = [h for h in s.hops if h.error is not None and any(c in LOOP_CODES for c in h.error.error_codes)]
    for (host, cid, _), roots in groups.items():
        run = [roots[0]]
        for h in roots[1:]:
            if h.started - run[-1].started < WINDOW_S and _came_back(s, run[-1], h):
                run.append(h)
            elif len(run) < MIN_ATTEMPTS:
                run = [h]
        said = [h for h in stopped if h.host == host and h.started >= roots[0].started]
        if len(run) < MIN_ATTEMPTS and not said:
            continue
        shown = run if len(run) >= MIN_ATTEMPTS else roots
        backs = [_back(s, a, b) for a, b in zip(shown, shown[1:], strict=False)]
        expl = (f"Sign-in attempts at {host}, each a new authorize request started by the app after the previous "
                "one came back: " + ", ".join(f"{h.label} at {clock.time_of_day(h.started)}" for h in shown[:6])
                + (f" (+{len(shown) - 6} more)" if len(shown) > 6 else "") + ".")
        if said:
            expl += (f" The provider stopped it: {said[0].label} answered AADSTS50196 (a client request loop: too "
                     "many identical requests in a short time).")
        out.append(finding(
            kind="redirect_loop", severity=Severity.ERROR,
            title=(f"The app started the sign-in {len(shown)} times in "
                   f"{clock.duration(shown[-1].started - shown[0].started)} for client {cid}: a redirect loop."
                   if len(shown) >= 2 else f"{host} stopped a sign-in loop for client {cid} (AADSTS50196)."),
            explanation=expl, evidence=sorted([*shown, *(b for b in backs if b is not None), *said[:1]],
                                              key=lambda h: h.started),
            count=len(shown), stopped_by_provider=bool(said)))
    return out


def _came_back(s: SessionIndex, a: Hop, b: Hop) -> bool:
    return _back(s, a, b) is not None


def _back(s: SessionIndex, a: Hop, b: Hop) -> Hop | None:
    """The hop showing that attempt `a` came back to the app before attempt `b` began: a callback in
    between, or a provider answer of `a`'s attempt that redirected to its redirect URI."""
    between = [h for h in s.hops if a.started < h.started < b.started]
    for h in between:
        if h.role == Role.CALLBACK:
            return h
    for h in between:
        if h.answer.location and s.attempt_of(h) is a and (h.answer.issued_code or h.error is not None):
            return h
    return None
