"""Grants used more than once: `reused_code` (an authorization code), `reused_refresh_token` (a
refresh token that rotation had already replaced) and `duplicate_redirect` (a callback requested
again).

Refresh-token reuse is a kind of its own rather than a variant of `reused_code`: the grant, the
evidence (an earlier 200 answer that rotated the token) and the consequence (providers revoke the
whole grant family, so later refreshes and the access tokens issued from it fail too) differ, and
the fix is in the app's token cache, not in its redirect handling."""
from __future__ import annotations

import re
from collections import defaultdict

from authtrace.reports.checks.base import finding, ids_of, said
from authtrace.reports.clients import client_of
from authtrace.reports.index import SessionIndex
from authtrace.store import clock
from authtrace.store.records import Actor, Finding, Hop, Instant, Role, Severity

SAME_PAGE_MS = 1000  # two redemptions from one page closer than this: the page's code ran twice
ALREADY_USED = re.compile(r"already\s+(been\s+)?(redeemed|consumed|used)|AADSTS54005|code.{0,40}(was|has been) used",
                          re.I)


def reused_code(s: SessionIndex) -> list[Finding]:
    out = []
    by_code: dict[str, list[Hop]] = defaultdict(list)
    for h in s.hops:
        if h.code_fp and h.role in (Role.CALLBACK, Role.TOKEN):
            by_code[h.code_fp].append(h)
    issued: dict[str, Hop] = {}
    for h in s.hops:
        if h.answer.issued_code:
            issued.setdefault(h.answer.issued_code, h)
    for code, hs in by_code.items():
        cbs = [h for h in hs if h.role == Role.CALLBACK]
        toks = [h for h in hs if h.role == Role.TOKEN]
        said_used = [h for h in hs if h.is_error and ALREADY_USED.search(h.error_text())]
        second_grant = [t for i, t in enumerate(toks) if i > 0 and t.is_error and toks[0].ok]
        if len(cbs) < 2 and len(toks) < 2 and not said_used:
            continue
        failing = (said_used or second_grant or [h for h in hs if h.is_error] or hs[1:] or hs)[0]
        first = hs[0]
        t_issued = issued[code].started if code in issued else first.started
        # a use is a redemption; with the back channel out of sight, each callback stands for one
        uses = toks or cbs
        first_use_failed = bool(uses) and failing is uses[0] and failing in said_used and len(cbs) < 2
        page = _same_page(toks, cbs)
        if first_use_failed:
            variant = "outside"
            words = said(failing)
            title = (f"The authorization code {code} was rejected as already redeemed on its first use in this "
                     f"capture: something outside the captured traffic presented it first.")
            when = (f" {clock.duration(failing.started - t_issued)} after the code was issued" if code in issued
                    else "")
            expl = (f"{failing.label} {failing.where} answered {failing.status}{when}, saying the code was already "
                    "used" + (f": {words}" if words else "") + ". No earlier request carrying this code passed "
                    "through the proxy, so another client redeemed it first.")
        elif page is not None:
            variant = "same_page"
            a, b, gap_ms = page
            origin = (a.initiator.origin if a.initiator else None) or a.host
            title = (f"The authorization code {code} was redeemed twice by the same page, {gap_ms:.0f} ms apart: "
                     "the app's code ran the redemption twice.")
            overlap = a.duration_ms is not None and b.started < a.started + a.duration_ms / 1000
            loaded = "once" if len(cbs) == 1 else "not at all in this capture"
            expl = (f"{a.label} and {b.label} are token requests with the same code from the same browser page "
                    f"({origin}, same Referer), {gap_ms:.0f} ms apart"
                    + (", the second sent before the first was answered" if overlap else "")
                    + f", while the browser loaded the callback {loaded}: the user did nothing twice, the page's "
                    "code redeemed the code twice, as an effect that runs twice does (React StrictMode in "
                    "development mounts every component twice; a component mounted twice does the same). "
                    + _outcomes(hs) + " An authorization code is single-use (RFC 6749 §4.1.2).")
        else:
            variant = "twice"
            steps = "; ".join(
                f"{h.label} {'+' + clock.duration(h.started - first.started) if h is not first else 'first'}: "
                + (f"{h.status}" if h.status is not None else "no response")
                + (f" {h.error.error}" if h.error and h.error.error else "") for h in hs)
            redeemed = f"redeemed {len(toks)} times" if len(toks) > 1 else f"delivered to {len(cbs)} callbacks"
            title = f"The authorization code {code} was {redeemed}: a code works only once."
            expl = (f"The code was issued at {clock.time_of_day(t_issued)} and presented {len(hs)} times: {steps}. "
                    f"An authorization code is single-use (RFC 6749 §4.1.2); the provider rejects the second use "
                    f"and may revoke the tokens issued from it.")
        out.append(finding(kind="reused_code", variant=variant, severity=Severity.ERROR, title=title,
                           explanation=expl, evidence=hs, code=code, issued=Instant(t_issued),
                           first_use_failed=first_use_failed, same_page=page is not None,
                           **ids_of(failing)))
    return out


def _same_page(toks: list[Hop], cbs: list[Hop]) -> tuple[Hop, Hop, float] | None:
    """Two redemptions sent by the same browser page close together (a single-page app redeems in the
    browser): the same Origin and Referer, browser requests, at most one callback navigation."""
    browser = [t for t in toks if t.actor == Actor.BROWSER and t.initiator is not None and t.initiator.origin]
    if len(browser) < 2 or len(cbs) > 1:
        return None
    a, b = browser[0], browser[1]
    assert a.initiator is not None and b.initiator is not None
    gap_ms = (b.started - a.started) * 1000
    if a.initiator.origin != b.initiator.origin or a.initiator.referer != b.initiator.referer or gap_ms > SAME_PAGE_MS:
        return None
    return a, b, gap_ms


def _outcomes(hs: list[Hop]) -> str:
    parts = [f"{h.label} {h.status if h.status is not None else 'no response'}"
             + (f" {h.error.error}" if h.error and h.error.error else "") for h in hs if h.role == Role.TOKEN]
    return "Outcomes: " + ", ".join(parts) + "."


def reused_refresh_token(s: SessionIndex) -> list[Finding]:
    """A refresh token presented again after a successful refresh had rotated it (the answer carried a
    new refresh token), and refused: refresh-token reuse. Providers that rotate treat it as theft and
    revoke the whole grant family (RFC 9700 §4.14.2), so later refreshes and its access tokens fail too."""
    out = []
    rotated: dict[str, Hop] = {}  # refresh token -> the 200 answer that replaced it
    issued_by: dict[str, Hop] = {}  # refresh token -> the answer that issued it
    for h in s.hops:
        if h.role != Role.TOKEN:
            continue
        rt = h.params.get("refresh_token") if h.params.get("grant_type") == "refresh_token" else None
        if rt and rt in rotated and not h.ok and h.error is not None and h.error.error == "invalid_grant":
            first = rotated.pop(rt)
            family = _family(s, issued_by, rt)
            later = [g for g in s.hops if g.started > h.started and g.role == Role.TOKEN and not g.ok
                     and g.params.get("grant_type") == "refresh_token" and g.params.get("refresh_token") in family]
            access = _access_family(s, family)
            refused = [g for g in s.hops if g.started > h.started and g.role in (Role.API, Role.USERINFO)
                       and g.status == 401 and any(t.fingerprint in access for t in g.presented_tokens())]
            expl = (f"{first.label} exchanged refresh token {rt} at {clock.time_of_day(first.started)} and received "
                    f"a new one (rotation); {h.label} presented the old one again "
                    f"{clock.duration(h.started - first.started)} later and was refused with invalid_grant"
                    + (f" ({said(h)})" if said(h) else "") + ". A rotated refresh token works once; providers treat "
                    "its reuse as a stolen token and usually revoke the whole grant family, so later refreshes and "
                    "the access tokens issued from it fail too")
            failed = [f"{g.label} ({g.status}" + (f" {g.error.error})" if g.error and g.error.error else ")")
                      for g in [*later, *refused]]
            expl += (": here " + ", ".join(failed) + " failed after it.") if failed else "."
            out.append(finding(kind="reused_refresh_token", severity=Severity.ERROR,
                               title=f"The refresh token {rt} was used again after rotation had replaced it: "
                                     "refresh-token reuse.",
                               explanation=expl, evidence=[first, h, *later, *refused], refresh_token=rt,
                               first_use=Instant(first.started), family_failures=len(later) + len(refused)))
        new = [t.fingerprint for t in h.tokens if t.where == "response.refresh_token"]
        for t in new:
            issued_by.setdefault(t, h)
        if rt and h.ok and new and rt not in new:
            rotated.setdefault(rt, h)
    return out


def _family(s: SessionIndex, issued_by: dict[str, Hop], rt: str) -> set[str]:
    """The refresh tokens descended from `rt` by rotation (it, the one its refresh issued, and so on)."""
    family, frontier = {rt}, [rt]
    while frontier:
        cur = frontier.pop()
        for h in s.hops:
            if h.role == Role.TOKEN and h.ok and h.params.get("refresh_token") == cur:
                for t in h.tokens:
                    if t.where == "response.refresh_token" and t.fingerprint not in family:
                        family.add(t.fingerprint)
                        frontier.append(t.fingerprint)
    return family


def _access_family(s: SessionIndex, family: set[str]) -> set[str]:
    return {t.fingerprint for h in s.hops if h.role == Role.TOKEN and h.ok and h.params.get("refresh_token") in family
            for t in h.tokens if t.where == "response.access_token"}


def duplicate_redirect(s: SessionIndex) -> list[Finding]:
    out = []
    groups: dict[str, list[Hop]] = defaultdict(list)
    for h in s.callbacks:
        key = h.code_fp or (f"state:{h.state}" if h.state else None)
        if key and not h.from_fragment:  # a fragment delivery is not a request of its own
            groups[key].append(h)
    for key, hs in groups.items():
        if len(hs) < 2:
            continue
        rows, lines = [], []
        for i, h in enumerate(hs):
            ini = h.initiator
            who = ", ".join(f"{k}={v}" for k, v in (("site", ini.site), ("mode", ini.mode), ("dest", ini.dest),
                                                    ("user", ini.user)) if v) if ini else ""
            gap = f"+{(h.started - hs[i - 1].started) * 1000:.0f} ms" if i else "first"
            outcome = "succeeded" if h.ok else f"failed ({h.status if h.status is not None else 'no response'})"
            lines.append(f"{h.label} {gap}: {h.method} {outcome}; user agent {(h.user_agent or 'none')[:80]}; "
                         f"{who or 'no Sec-Fetch headers'}")
            rows.append({"hop": h.label, "time": Instant(h.started), "client": client_of(h.user_agent),
                         "initiator": who or "no Sec-Fetch headers",
                         "cookies": f"{len(h.cookies_sent)} sent" if h.cookies_sent else "none",
                         "result": outcome})
        gap_ms = (hs[1].started - hs[0].started) * 1000
        label = key if not key.startswith("state:") else f"state {key[6:][:24]}"
        cause = requester(hs[0], hs[1])
        title = f"The callback carrying {label} was requested {len(hs)} times, {gap_ms:.0f} ms apart"
        out.append(finding(
            kind="duplicate_redirect", severity=Severity.ERROR if any(not h.ok for h in hs) else Severity.WARNING,
            title=f"{title}: the second request came from {cause[0]} ({cause[1]})." if cause else f"{title}.",
            explanation=f"The identity provider's redirect reached the redirect URI {len(hs)} times: "
                        + " | ".join(lines),
            evidence=hs, gap_ms=round(gap_ms, 1), cause=cause[0] if cause else None, requests=rows))
    return out


PREFETCH = ("prefetch", "prerender", "preview")


def requester(first: Hop, later: Hop) -> tuple[str, str] | None:
    """Who sent a repeated callback request, when its headers say so: (cause, the evidence). None when
    they do not: a false cause is worse than none."""
    h = later.request_headers
    purpose = " ".join(h.get(k, "") for k in ("purpose", "sec-purpose", "x-purpose", "x-moz")).lower()
    if any(p in purpose for p in PREFETCH):
        return "a browser prefetch or preview", f"Purpose: {purpose.strip()}"
    other_client = later.user_agent != first.user_agent
    if first.cookies_sent and not later.cookies_sent and other_client:
        return ("a link scanner or preview service", f"no cookies, and another user agent: "
                f"{client_of(later.user_agent)} after {client_of(first.user_agent)}")
    if other_client:
        return ("another browser, webview or app",
                f"another user agent: {client_of(later.user_agent)} after {client_of(first.user_agent)}")
    shared = set(first.cookies_sent) & set(later.cookies_sent)
    if any(first.cookies_sent[n] != later.cookies_sent[n] for n in shared):
        return "another tab or browser profile", "the same cookies with other values"
    ini = later.initiator
    if ini is not None and ini.mode in ("cors", "no-cors", "same-origin") and ini.dest == "empty":
        return "the app's own code", f"a fetch from the page: Sec-Fetch-Mode {ini.mode}, Sec-Fetch-Dest empty"
    if ini is not None and ini.site == "none":
        return ("a reload, a typed URL or a bookmark", "Sec-Fetch-Site: none" +
                (" and Sec-Fetch-User: ?1, a person's own action" if ini.user == "?1" else ""))
    return None
