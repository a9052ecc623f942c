"""`redirect_loop`: the browser sent to sign in again and again for the same client."""
from __future__ import annotations

from collections import defaultdict

from authtrace.reports.checks.base import finding
from authtrace.reports.index import SessionIndex
from authtrace.store import clock
from authtrace.store.records import Finding, Hop, Severity

WINDOW_S = 20  # three sign-in starts closer than this, one after the other, are a loop


def redirect_loop(s: SessionIndex) -> list[Finding]:
    out = []
    groups: dict[tuple[str, str | None, str | None], list[Hop]] = defaultdict(list)
    for a in s.authorize:
        groups[(a.host, a.client_id, a.params.get("redirect_uri"))].append(a)
    for (host, cid, _), hs in groups.items():
        run = [hs[0]]
        for h in hs[1:]:
            run = run + [h] if h.started - run[-1].started < WINDOW_S else [h]
            if len(run) >= 3:
                break
        if len(run) < 3:
            continue
        out.append(finding(
            kind="redirect_loop", severity=Severity.ERROR,
            title=f"The browser was sent to sign in {len(hs)} times in {clock.duration(hs[-1].started - hs[0].started)}"
                  f" for client {cid}: a redirect loop.",
            explanation=f"Authorize requests to {host}: " + ", ".join(f"{h.label} at {clock.time_of_day(h.started)}"
                                                                   for h in hs[:6])
                        + "; each sign-in returns to the app, which sends the browser back.",
            evidence=hs, count=len(hs)))
    return out
