"""Authorization codes used more than once: `reused_code` and `duplicate_redirect`."""
from __future__ import annotations

import re
from collections import defaultdict

from authtrace.reports.checks.base import finding
from authtrace.reports.index import SessionIndex
from authtrace.store import clock
from authtrace.store.records import Finding, Hop, Instant, Role, Severity

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
        if first_use_failed:
            variant = "outside"
            title = (f"The authorization code {code} was rejected as already redeemed on its first use in this "
                     f"capture: something outside the captured traffic presented it first.")
            expl = (f"{failing.label} {failing.where} answered {failing.status} saying the code was already used, "
                    f"{clock.duration(failing.started - t_issued)} after the code was issued. No earlier request "
                    f"carrying this code passed through the proxy, so another client redeemed it first.")
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
                           first_use_failed=first_use_failed))
    return out


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
        lines = []
        for i, h in enumerate(hs):
            ini = h.initiator
            who = ", ".join(f"{k}={v}" for k, v in (("site", ini.site), ("mode", ini.mode), ("dest", ini.dest),
                                                    ("user", ini.user)) if v) if ini else ""
            gap = f"+{(h.started - hs[i - 1].started) * 1000:.0f} ms" if i else "first"
            outcome = "succeeded" if h.ok else f"failed ({h.status if h.status is not None else 'no response'})"
            lines.append(f"{h.label} {gap}: {h.method} {outcome}; user agent {(h.user_agent or 'none')[:80]}; "
                         f"{who or 'no Sec-Fetch headers'}")
        gap_ms = (hs[1].started - hs[0].started) * 1000
        label = key if not key.startswith("state:") else f"state {key[6:][:24]}"
        out.append(finding(
            kind="duplicate_redirect", severity=Severity.ERROR if any(not h.ok for h in hs) else Severity.WARNING,
            title=f"The callback carrying {label} was requested {len(hs)} times, {gap_ms:.0f} ms apart.",
            explanation="The identity provider's redirect reached the redirect URI more than once: "
                        + " | ".join(lines),
            evidence=hs, gap_ms=round(gap_ms, 1)))
    return out
