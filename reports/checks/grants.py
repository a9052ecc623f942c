"""Who granted what: `issuer_mismatch` (a code redeemed at another tenant; an id_token from another
issuer) and `scope_not_granted` (requested scopes no successful token answer granted)."""
from __future__ import annotations

import re
from collections import defaultdict

from authtrace.reports import audiences as au
from authtrace.reports.checks.base import finding
from authtrace.reports.index import SessionIndex
from authtrace.store.records import Finding, Hop, Role, Severity

_TENANT_PATH = re.compile(r"^/([^/]+)/oauth2/")
_MULTI_TENANT = ("common", "organizations", "consumers")


def issuer_mismatch(s: SessionIndex) -> list[Finding]:
    out = []
    issuers = {h.answer.issuer for h in s.hops if h.role == Role.DISCOVERY and h.answer.issuer}
    tenants = {t for t in (tenant_of(a.path) for a in s.authorize) if t}
    for h in s.hops:
        if h.role == Role.TOKEN:
            tt = tenant_of(h.path)
            if tt and tenants and tt not in tenants:
                out.append(finding(
                    kind="issuer_mismatch", variant="tenant", severity=Severity.ERROR,
                    title=f"The code was redeemed at tenant '{tt}' but the sign-in started at tenant "
                          f"'{sorted(tenants)[0]}'.",
                    explanation=f"Authorize went to tenant {', '.join(sorted(tenants))}; {h.label} {h.where} "
                                f"redeems at {tt}. A code is only valid at the tenant that issued it (Entra "
                                "AADSTS700005).",
                    evidence=[s.authorize[-1], h], authorize_tenant=sorted(tenants), token_tenant=tt))
        for t in h.tokens:
            if t.kind != "id_token" or not t.claims:
                continue
            iss, tid = t.iss or "", t.tid
            bad = None
            plain = {i.rstrip("/") for i in issuers if "{tenantid}" not in i}
            if issuers and iss and iss.rstrip("/") not in plain:
                templ = [i for i in issuers if "{tenantid}" in i]
                if not any(i.replace("{tenantid}", str(tid)).rstrip("/") == iss.rstrip("/") for i in templ):
                    bad = f"the discovery document names issuer {', '.join(sorted(issuers))}"
            if not bad and tid and tenants and tid.lower() not in tenants and not any("." in x for x in tenants):
                bad = f"the sign-in started at tenant {', '.join(sorted(tenants))}"
            if bad:
                out.append(finding(
                    kind="issuer_mismatch", variant="id_token", severity=Severity.ERROR,
                    title=f"The id_token was issued by {iss}, not by the issuer the sign-in started with.",
                    explanation=f"id_token {t.fingerprint} at {h.label} has iss {iss}"
                                + (f" (tid {tid})" if tid else "") + f"; {bad}.",
                    evidence=[h], iss=iss))
    return out


def tenant_of(path: str) -> str | None:
    """The tenant an Entra-style path names (`/<tenant>/oauth2/…`), None for the multi-tenant ones."""
    m = _TENANT_PATH.match(path or "")
    if not m:
        return None
    t = m.group(1).lower()
    return None if t in _MULTI_TENANT else t


def scope_not_granted(s: SessionIndex) -> list[Finding]:
    """Requested scopes that no successful token answer of the session granted. All answers count
    together: with resource indicators (RFC 8707) or Entra's one-resource-per-token rule, an API's
    scope arrives in a later refresh-token answer, not in the code redemption."""
    answers = [h for h in s.hops if h.role == Role.TOKEN and h.ok and h.answer.granted_scope is not None]
    if not answers:
        return []
    granted: set[str] = set().union(*(set((h.answer.granted_scope or "").split()) for h in answers))
    redeemed_for: dict[int, list[Hop]] = defaultdict(list)  # id(authorize hop) -> its successful redemptions
    for h in answers:
        if h.code_fp:
            for a in s.authorize_for(h):
                redeemed_for[id(a)].append(h)
    out = []
    for a in s.authorize:
        asked_raw = a.params.get("scope") or ""
        missing = {x for x in asked_raw.split() if not _granted(x, granted)}
        redemptions = redeemed_for.get(id(a), [])
        if missing and redemptions:
            out.append(finding(
                kind="scope_not_granted", severity=Severity.WARNING,
                title=f"The token grants less than was asked: {', '.join(sorted(missing))} not granted.",
                explanation=f"Requested '{asked_raw.strip()}' at {a.label} {a.where}; the token answers granted "
                            f"'{' '.join(sorted(granted))}'.",
                evidence=[a, *redemptions], missing=sorted(missing)))
    return out


def _granted(scope: str, granted: set[str]) -> bool:
    if scope.lower() in au.OIDC_SCOPES or scope in granted:
        return True
    if scope.endswith("/.default") and any(g.startswith(scope[: -len(".default")]) for g in granted):
        return True
    # a resource-qualified scope (api://app/Files.Read) granted by its short name (Files.Read)
    return "/" in scope and scope.rsplit("/", 1)[1] in granted
