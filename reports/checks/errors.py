"""Errors the answers name: `idp_error` (every OAuth/OIDC error answer, explained from the catalogue,
with the ids support asks for) and `failed_hop` (a failed step that no other finding explains)."""
from __future__ import annotations

from collections import defaultdict
from typing import Any

from authtrace.reports.catalogue import explain
from authtrace.reports.checks.base import expected_error, finding
from authtrace.reports.index import SessionIndex
from authtrace.store import clock
from authtrace.store.records import Finding, Hop, Role, Severity

RESOURCE_ROLES = (Role.API, Role.USERINFO)
STEP_ROLES = (Role.CALLBACK, Role.TOKEN, Role.AUTHORIZE, Role.LOGIN)


def idp_error(s: SessionIndex) -> list[Finding]:
    groups: dict[tuple[str, int | None], list[Hop]] = defaultdict(list)
    for h in s.hops:
        e = h.error
        if e is None or not e.error or e.error == "no_response" or expected_error(s, h):
            continue
        if h.role in RESOURCE_ROLES and not e.error_codes:
            continue  # resource-server refusals: see wrong_audience, expired_token, token_revoked
        groups[(e.error, e.error_codes[0] if e.error_codes else None)].append(h)
    out = []
    for (err, code), hs in groups.items():
        entry = explain(err, code)
        e = hs[0].error
        assert e is not None
        ids: dict[str, Any] = e.ids()
        idtxt = "; ".join(f"{k.replace('_', ' ')} {v}" for k, v in ids.items())
        name = f"AADSTS{code}" if code else err
        desc = e.error_description[:400]
        title = f"{hs[0].where} answered {name}: " + (entry.title if entry else (desc or err))
        expl = ((entry.meaning + " ") if entry else "") + (f"The provider said: “{desc}”. " if desc else "") + \
               (f"Support will ask for: {idtxt}." if idtxt else "")
        out.append(finding(kind="idp_error", variant="unknown", severity=Severity.ERROR,
                           title=title.rstrip(".") + ".", explanation=expl.strip(), evidence=hs,
                           advised=(tuple(entry.causes), entry.next_step) if entry else None, error=err,
                           aadsts=code, count=len(hs), **ids))
    return out


def failed_hop(s: SessionIndex, earlier: list[Finding]) -> list[Finding]:
    explained = {id(e) for f in earlier for e in f.evidence}
    out = []
    for h in s.hops:
        if id(h) in explained or not h.is_error or h.role not in STEP_ROLES or expected_error(s, h):
            continue
        msg = (h.error.message or h.error.error_description) if h.error else ""
        status = h.status if h.status is not None else "no response"
        out.append(finding(kind="failed_hop", severity=Severity.ERROR,
                           title=f"The {h.role} step {h.where} failed ({status}).",
                           explanation=f"{h.label} {h.where} answered {status}" + (f": {msg[:300]}" if msg else "."),
                           facts={"host": h.host, "when": clock.stamp(h.started)}, evidence=[h], status=status))
    return out
