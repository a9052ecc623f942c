"""Errors the answers name: `idp_error` (every OAuth/OIDC error answer of an identity provider,
explained from the catalogue, with the most specific message and the ids support asks for) and
`failed_hop` (a failed step that no other finding explains).

Who answered matters: an error written by the app's own callback or a platform's redirect handler
is not an identity-provider error. When another finding explains it (the token request the callback
made was refused), the callback becomes evidence of that finding, with its message; otherwise it
is a `failed_hop` with the handler's most specific message. A step whose outcome the capture does
not know (no status: a redirect a recorder did not keep, a navigation the browser aborted) is no
failure when the next steps show the sign-in went on."""
from __future__ import annotations

import statistics
from collections import defaultdict
from typing import Any

from authtrace.reports.catalogue import explain_text
from authtrace.reports.checks.base import (
    SILENT_ERRORS,
    app_answered,
    expected_error,
    finding,
    ids_of,
    ids_text,
    prompt_none,
    said,
)
from authtrace.reports.index import SessionIndex
from authtrace.store import clock
from authtrace.store.records import Finding, Hop, Role, Severity, as_num, as_str

RESOURCE_ROLES = (Role.API, Role.USERINFO)
STEP_ROLES = (Role.CALLBACK, Role.TOKEN, Role.AUTHORIZE, Role.LOGIN)
DEVICE_GRANT = "urn:ietf:params:oauth:grant-type:device_code"
STAGE = {Role.AUTHORIZE: 0, Role.LOGIN: 1, Role.ERROR: 1, Role.CALLBACK: 2, Role.TOKEN: 3, Role.API: 4,
         Role.USERINFO: 4}


def idp_error(s: SessionIndex) -> list[Finding]:
    groups: dict[tuple[str, int | None], list[Hop]] = defaultdict(list)
    for h in s.hops:
        e = h.error
        if e is None or e.error == "no_response" or e.source == "saml" or expected_error(s, h) or app_answered(h):
            continue  # a SAML Status is explained by checks/saml.py
        if h.role in RESOURCE_ROLES and not e.error_codes:
            continue  # resource-server refusals: see wrong_audience, expired_token, token_revoked
        name = e.error or (e.specific if e.source == "page" else "")
        if name:
            groups[(name, e.error_codes[0] if e.error_codes else None)].append(h)
    out = []
    for (err, code), hs in groups.items():
        h = hs[0]
        e = h.error
        assert e is not None
        entry = explain_text(e.error, code, e.text)
        ids: dict[str, Any] = e.ids()
        b2c = entry.code if entry is not None and entry.code.startswith("AADB2C") else None
        name = b2c or (f"AADSTS{code}" if code else err)
        desc = e.specific[:400]
        interactive = err in SILENT_ERRORS and entry is not None and entry.interactive and not prompt_none(s, h)
        meaning = (entry.interactive if interactive else entry.meaning) if entry else ""
        device, device_title = _device_story(s, h, err)
        page = f" ({e.provider} error page)" if e.source == "page" and e.provider else \
            (" (error page)" if e.source == "page" else "")
        title = f"{h.where} answered {name}{page}: " + (device_title or (entry.title if entry else (desc or err)))
        if entry is not None and entry.signal:
            meaning += " The app should handle it as a normal outcome."
        idtxt = ids_text(h)
        expl = " ".join(x for x in (_endpoint(h), meaning, device,
                                    f"The provider said: “{desc}”." if desc and desc != err else "",
                                    f"Support will ask for: {idtxt}." if idtxt else "") if x)
        severity = Severity.WARNING if entry is not None and entry.signal else Severity.ERROR
        out.append(finding(kind="idp_error", variant="unknown", severity=severity,
                           title=title.rstrip(".") + ".", explanation=expl, evidence=hs,
                           advised=(tuple(entry.causes), entry.next_step) if entry else None, error=err,
                           aadsts=code, b2c=b2c, count=len(hs), **ids))
    return out


def _endpoint(h: Hop) -> str:
    """The OAuth endpoint other than authorize and token that answered, when it is one."""
    if h.role == Role.AUTHORIZE and h.method == "POST" and h.params.form.get("response_type"):
        return "The pushed authorization request (PAR, RFC 9126) was refused, so the sign-in could not start."
    if h.role == Role.ERROR and h.method == "POST":
        if "regist" in h.path.lower():
            return ("Dynamic client registration (RFC 7591), which public clients such as MCP clients do before "
                    "they sign in, was refused.")
        if "token" in h.params.form:
            return "The token revocation request (RFC 7009) was refused."
    return ""


def _device_story(s: SessionIndex, h: Hop, err: str) -> tuple[str, str]:
    """For the device flow's outcomes the user sees (expired_token, access_denied): what happened, with
    the flow's timings (issue, lifetime, polls, outcome)."""
    if h.role != Role.TOKEN or h.params.get("grant_type") != DEVICE_GRANT or err not in ("expired_token",
                                                                                           "access_denied"):
        return "", ""
    dc = h.params.get("device_code")
    polls = [p for p in s.hops if p.role == Role.TOKEN and p.params.get("device_code") == dc and p.started <= h.started]
    starts = [d for d in s.hops if d.role == Role.DEVICE and d.ok and d.started <= h.started
              and (dc is None or as_str(d.answer.fields.get("device_code")) in (dc, None))]
    start = starts[-1] if starts else None
    facts = []
    if start is not None:
        f = start.answer.fields
        life, interval = as_num(f.get("expires_in")), as_num(f.get("interval"))
        uri = as_str(f.get("verification_uri")) or as_str(f.get("verification_url"))
        facts.append(f"The device code was issued at {start.label} ({clock.stamp(start.started)})"
                     + (f", valid for {clock.duration(life)}" if life is not None else "")
                     + (f", polling interval {clock.duration(interval)}" if interval is not None else
                        ", no polling interval given (5 s by default)")
                     + (f", to be entered at {uri[:200]}" if uri else "") + ".")
    waiting = [p for p in polls[:-1] if p.error is not None and p.error.error in ("authorization_pending", "slow_down")]
    if waiting:
        gaps = [b.started - a.started for a, b in zip(polls, polls[1:], strict=False)]
        facts.append(f"The app polled {len(polls)} times" + (f", every {clock.duration(statistics.median(gaps))}"
                                                              if gaps else "")
                     + f"; {len(waiting)} answers said authorization_pending or slow_down.")
    since = f", {clock.duration(h.started - start.started)} after the code was issued" if start is not None else ""
    if err == "expired_token":
        facts.append(f"{h.label} got expired_token{since}: nobody completed the sign-in on another device in "
                     "time, so the device code expired.")
        return " ".join(facts), "the user did not complete the device sign-in in time"
    facts.append(f"{h.label} got access_denied{since}: the user declined the request on the verification page "
                 "(or a policy refused it).")
    return " ".join(facts), "the user declined the device sign-in"


def failed_hop(s: SessionIndex, earlier: list[Finding]) -> list[Finding]:
    explained = {id(e) for f in earlier for e in f.evidence}
    out = []
    for h in s.hops:
        if id(h) in explained or not h.is_error or h.role not in STEP_ROLES or expected_error(s, h):
            continue
        if h.error is not None and h.error.source == "saml":
            continue  # a SAML Status: checks/saml.py judged it (a NoPassive the app handled or retried is normal)
        if (h.status is None or h.status <= 0) and went_on(s, h):
            continue  # the outcome is unknown, and the sign-in went on: not a failed step
        if h.role == Role.CALLBACK and _explained_by_redemption(s, h, earlier):
            continue
        msg = said(h)
        status = h.status if h.status is not None else "no response"
        who = " (the app's answer)" if app_answered(h) else ""
        short = (h.error.specific if h.error else "")[:120]
        out.append(finding(kind="failed_hop", severity=Severity.ERROR,
                           title=f"The {h.role} step {h.where} failed ({status})" + (f": “{short}”." if short else "."),
                           explanation=f"{h.label} {h.where} answered {status}{who}" + (f": {msg}" if msg else "."),
                           facts={"host": h.host, "when": clock.stamp(h.started)}, evidence=[h], status=status,
                           message=h.error.specific if h.error else None, **ids_of(h)))
    return out


def went_on(s: SessionIndex, h: Hop) -> bool:
    """A later step of the same client, at the same stage of a sign-in or further, succeeded."""
    stage = STAGE.get(h.role, 0)
    cid = h.client_id
    return any(g.started > h.started and g.ok and STAGE.get(g.role, -1) >= stage
               and (cid is None or g.client_id in (None, cid)) for g in s.hops)


def _explained_by_redemption(s: SessionIndex, cb: Hop, earlier: list[Finding]) -> bool:
    """The app's callback failed because the token request it made was refused, and a finding already
    explains that refusal: the callback becomes evidence of that finding, with what the app said."""
    if not cb.code_fp:
        return False
    end = cb.started + max((cb.duration_ms or 0) / 1000, 0) + 2.0
    for f in sorted(earlier, key=lambda f: f.kind == "idp_error"):  # the finding that names the cause first
        for t in f.evidence:
            if t.role == Role.TOKEN and t.is_error and t.code_fp == cb.code_fp and cb.started - 0.5 <= t.started <= end:
                msg = said(cb)
                f.evidence = (*[e for e in f.evidence if e.started <= cb.started], cb,
                              *[e for e in f.evidence if e.started > cb.started])
                f.explanation += (f" The app's callback {cb.label} answered {cb.status}"
                                  + (f": {msg}" if msg else "") + f", because {t.label} was refused.")
                return True
    return False
