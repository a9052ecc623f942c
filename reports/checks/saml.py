"""SAML 2.0 sign-ins, from the messages their hops carry (`Params.saml`, `Answer.saml`, decoded by
`addons/saml.py`): the same kinds as OAuth where the fault is the same, `saml_*` where none fits.

- `saml_status` → `idp_error`: a Response or LogoutResponse carries a Status other than Success, explained
  from the catalogue (a NoPassive the app handled, or followed by an interactive request, is normal);
- `saml_in_response_to` → `state_mismatch` (saml, saml_older): a Response answers a request ID that no
  AuthnRequest of this app in the capture has, or an older one the app refused as unsolicited;
- `saml_audience` → `wrong_audience` (saml): an assertion's Audience is not the app's entity id (its
  metadata, else the AuthnRequest it answers), or the app refused the audience;
- `saml_destination` → `saml_destination_mismatch`: a Response's Destination, or every bearer Recipient,
  is not the URL it was posted to (another message's Destination only when its receiver refused it);
- `saml_lifetime` → `expired_token` (assertion, assertion_not_yet): an assertion posted after NotOnOrAfter
  or before NotBefore (the app's clock, from Date headers);
- `saml_replay` → `duplicate_redirect` (saml): the same Response (fingerprint) or assertion (ID) posted
  more than once;
- `saml_signature` → `saml_signature` (failed, unsigned): a signature that does not verify with its
  issuer's certificate; an assertion signed neither itself nor by its Response.

Facts before words: an app's refusal decides only what the messages cannot show (the entity id the app
checks the audience against), and the finding then says it rests on the app's words. A check never
judges what it cannot see: no certificate, no signature verdict; no AuthnRequest captured, no
InResponseTo verdict (a capture note says so, `reports/verdict.py`).
"""
from __future__ import annotations

import html
import re
from collections import defaultdict
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlsplit

from authtrace.reports.catalogue import explain_saml
from authtrace.reports.checks.base import finding
from authtrace.reports.index import SessionIndex
from authtrace.reports.verdict import lcfirst
from authtrace.store import clock
from authtrace.store.records import Finding, Hop, Instant, Role, Severity
from authtrace.store.saml import BEARER, SamlAssertion, SamlMessage, status_name

LEEWAY_S = 300  # an assertion a few minutes late that the app still accepted: its allowed skew, no alarm
NOT_YET_S = 60  # NotBefore this far after the post, accepted anyway: worth a warning
SKEW_MIN_S = 2  # Date headers have a 1 s resolution: smaller differences are noise
DELIVERY = (Role.CALLBACK, Role.LOGIN)
AUDIENCE_WORDS = re.compile(r"audience", re.I)
# an app refusing a Response as not answering a request it has outstanding
UNSOLICITED_WORDS = re.compile(r"unsolicited|InResponseTo|in response to|outstanding|unknown request|request id",
                               re.I)
ENTITY_IN_WORDS = re.compile(r"entity[ _-]?id\W{1,3}((?:https?|urn)[^\s\"'<>),;]+)", re.I)


@dataclass(slots=True, frozen=True)
class Delivered:
    """A Response as the service provider received it: posted (or redirected) to its consumer, or
    carried by the ArtifactResponse its back channel resolved."""

    hop: Hop
    msg: SamlMessage
    via_artifact: bool = False


def message(h: Hop) -> SamlMessage | None:
    return h.params.saml


def delivered(s: SessionIndex) -> list[Delivered]:
    out = []
    for h in s.hops:
        m = h.params.saml
        if m is not None and m.kind == "Response" and h.role in DELIVERY:
            out.append(Delivered(h, m))
        a = h.answer.saml
        if a is not None and a.kind == "ArtifactResponse" and a.inner is not None and a.inner.kind == "Response":
            out.append(Delivered(h, a.inner, True))
    return out


def authn_requests(s: SessionIndex) -> list[tuple[Hop, SamlMessage]]:
    return [(h, m) for h in s.hops if (m := h.params.saml) is not None and m.kind == "AuthnRequest"]


def refused(h: Hop) -> bool:
    """The receiver said no: an HTTP error status (an app's 200 error page cannot be told from success)."""
    return h.status is not None and h.status >= 400


def answered(h: Hop) -> str:
    """What the receiver answered, for a sentence: 'answered 403: “…”' or 'answered 200'."""
    if h.status is None:
        return "got no answer"
    words = _words(h)
    return f"answered {h.status}" + (f": “{words[:240]}”" if words and refused(h) else "")


def _words(h: Hop) -> str:
    """The receiver's own words: its error page or body (not the SAML status the hop's error may carry)."""
    own = h.error.text if h.error is not None and h.error.source in ("body", "page") else ""
    return own or re.sub(r"\s+", " ", html.unescape(re.sub(r"<[^>]+>", " ", h.body_excerpt or ""))).strip()


def short(value: str | None, limit: int = 48) -> str:
    v = value or "(none)"
    return v if len(v) <= limit else v[: limit - 1] + "…"


def where(h: Hop) -> str:
    return f"{h.host}{h.path}"


def request_for(s: SessionIndex, h: Hop, request_id: str | None, kinds: tuple[str, ...] = ("AuthnRequest",)
                ) -> Hop | None:
    """The earlier hop that sent the request a message answers (its ID is the answer's InResponseTo)."""
    if not request_id:
        return None
    found = None
    for g in s.hops:
        if g.started > h.started:
            break
        m = g.params.saml
        if m is not None and m.kind in kinds and m.id == request_id:
            found = g
    return found


def in_response_to(m: SamlMessage) -> str | None:
    """The request a Response answers: its own InResponseTo, else a bearer confirmation's."""
    if m.in_response_to:
        return m.in_response_to
    return next((c.in_response_to for a in m.assertions for c in a.confirmations if c.in_response_to), None)


def skew_of(s: SessionIndex, host: str) -> float:
    sk = s.skew.get(host, 0.0)
    return sk if abs(sk) >= SKEW_MIN_S else 0.0


# ---- status ------------------------------------------------------------------------------------

def saml_status(s: SessionIndex) -> list[Finding]:
    out = []
    for h, m in _answers(s):
        st = m.status
        if st is None or not st.code:
            continue
        names = tuple(status_name(c) for c in (st.code, *st.subcodes) if c)
        partial = "PartialLogout" in names
        if st.success and not partial:
            continue
        kinds = ("LogoutRequest",) if m.kind == "LogoutResponse" else ("AuthnRequest",)
        req = request_for(s, h, m.in_response_to, kinds)
        asked = req.params.saml if req is not None else None
        passive = asked is not None and asked.is_passive is True
        if "NoPassive" in names and (not refused(h) or _went_on(s, h, asked)):
            continue  # 'not signed in' to a passive request: the app handled it, or signed in interactively next
        codes = h.error.error_codes if h.error is not None and h.error.source == "saml" else ()
        entry = explain_saml(names, codes[0] if codes else None)
        issuer = m.issuer or next((a.issuer for a in m.assertions if a.issuer), None)
        status_text = "/".join(names)
        said = f" and the message “{st.message[:300]}”" if st.message else ""
        if req is None:
            what = "the logout" if m.kind == "LogoutResponse" else "the sign-in"
        else:
            what = f"the {'passive ' if passive else ''}{req.params.saml.kind if req.params.saml else 'request'} " \
                   f"#{req.number}"
        title = (f"The identity provider answered {what} with {status_text}: "
                 + lcfirst(entry.title if entry else (st.message or "the request failed")[:160]))
        expl = [f"{h.label} {h.method} {where(h)} carried the SAML {m.kind} {short(m.id)}"
                + (f" from {issuer}" if issuer else "") + f" with status {status_text}{said}."]
        if entry is not None:
            expl.append(entry.meaning)
        if passive and "NoPassive" in names and req is not None:
            expl.append(f"{req.label} asked IsPassive=\"true\", and no interactive AuthnRequest of this app "
                        "followed.")
        if m.kind == "Response" and h.status is not None:
            expl.append(f"The app {answered(h)}.")
        ids: dict[str, Any] = dict(h.error.ids()) if h.error is not None else {}
        if ids:
            expl.append("Support will ask for: " + "; ".join(f"{k.replace('_', ' ')} {v}" for k, v in ids.items())
                        + ".")
        out.append(finding(
            kind="idp_error", variant="unknown", severity=Severity.WARNING if partial else Severity.ERROR,
            title=title.rstrip(".") + ".", explanation=" ".join(expl),
            evidence=[*([req] if req is not None else []), *_artifact_callback(s, h), h],
            advised=(tuple(entry.causes), entry.next_step) if entry else None,
            error=status_text, saml_status=list(names), status_message=st.message, issuer=issuer,
            in_response_to=m.in_response_to, aadsts=codes[0] if codes else None, **ids))
    return out


def _answers(s: SessionIndex) -> Iterator[tuple[Hop, SamlMessage]]:
    """Every answer message with a Status: Responses and LogoutResponses a request carried, and what a
    resolved artifact carried."""
    for h in s.hops:
        m = h.params.saml
        if m is not None and m.kind in ("Response", "LogoutResponse"):
            yield h, m
        a = h.answer.saml
        if a is not None and a.kind == "ArtifactResponse":
            if a.status is not None and a.status.code and not a.status.success:
                yield h, a
            elif a.inner is not None and a.inner.kind in ("Response", "LogoutResponse"):
                yield h, a.inner


def _artifact_callback(s: SessionIndex, h: Hop) -> list[Hop]:
    """The browser's hop that delivered the artifact a back-channel resolution (`h`) redeemed: the app
    resolves it while that request waits, so `h` falls inside it."""
    if h.answer.saml is None:
        return []
    found = [g for g in s.hops if g.params.saml is not None and g.params.saml.kind == "Artifact"
             and g.started <= h.started <= g.started + max((g.duration_ms or 0) / 1000, 0) + 2]
    return found[-1:]


def _went_on(s: SessionIndex, h: Hop, asked: SamlMessage | None) -> bool:
    """The app sent an interactive AuthnRequest after a NoPassive answer."""
    sp = asked.issuer if asked is not None else None
    return any(g.started > h.started and not m.is_passive and (sp is None or m.issuer == sp)
               for g, m in authn_requests(s))


# ---- InResponseTo --------------------------------------------------------------------------------

def saml_in_response_to(s: SessionIndex) -> list[Finding]:
    out = []
    requests = authn_requests(s)
    for d in delivered(s):
        h, m = d.hop, d.msg
        irt = in_response_to(m)
        if not irt:
            continue  # IdP-initiated: a capture note, not a fault
        before = [(g, r) for g, r in requests if g.started <= h.started]
        audiences = {x for a in m.assertions for x in a.audiences}
        ours = [(g, r) for g, r in before if (r.issuer and r.issuer in audiences)
                or (r.acs_url and same_endpoint(r.acs_url, h.url))]
        if not ours:
            continue  # no request of this app captured (recording started mid-sign-in): nothing to compare
        match = next((g for g, r in before if r.id == irt), None)
        severity = Severity.ERROR if refused(h) else Severity.WARNING
        if match is None:
            sent = ", ".join(f"{g.label} ({short(r.id)})" for g, r in ours[-4:])
            out.append(finding(
                kind="state_mismatch", variant="saml", severity=severity,
                title=f"The SAML Response {h.label} answers request {short(irt)}, which no AuthnRequest of this "
                      "capture sent.",
                explanation=f"{h.label} {h.method} {where(h)} carried a Response with InResponseTo {irt}; this app's "
                            f"AuthnRequests in the capture had the IDs {sent}. A service provider accepts only a "
                            f"Response to a request it sent (SAML profiles §4.1.4.3). The app {answered(h)}.",
                evidence=[ours[-1][0], h], in_response_to=irt, sent=[r.id for _, r in ours]))
            continue
        newer = [g for g, r in ours if g.started > match.started and g is not match]
        if newer and refused(h) and UNSOLICITED_WORDS.search(_words(h)):
            out.append(finding(
                kind="state_mismatch", variant="saml_older", severity=Severity.ERROR,
                title=f"The SAML Response {h.label} answers {match.label}, but the app had started another "
                      f"sign-in ({newer[-1].label}) since.",
                explanation=f"{h.label} {h.method} {where(h)} carried the answer to {match.label} (InResponseTo "
                            f"{short(irt)}); {newer[-1].label} sent a new AuthnRequest "
                            f"{clock.duration(newer[-1].started - match.started)} after it, before this Response "
                            f"came back (another tab, or the sign-in started again). The app {answered(h)}: it "
                            "keeps the latest request only.",
                evidence=[match, newer[-1], h], in_response_to=irt))
    return out


# ---- audience ----------------------------------------------------------------------------------

def saml_audience(s: SessionIndex) -> list[Finding]:
    out = []
    for d in delivered(s):
        h, m = d.hop, d.msg
        auds = tuple(dict.fromkeys(x for a in m.assertions for x in a.audiences))
        if not auds:
            continue
        req = request_for(s, h, in_response_to(m))
        expected, source = _sp_entity(s, h, req)
        severity = Severity.ERROR if refused(h) else Severity.WARNING
        if expected is not None and expected not in auds:
            out.append(finding(
                kind="wrong_audience", variant="saml", severity=severity, facts={"expected": expected},
                title=f"The SAML assertion posted to {where(h)} is for audience {_list(auds)}, not for the app's "
                      f"entity id {expected}.",
                explanation=f"{h.label} {h.method} {where(h)} carried an assertion whose AudienceRestriction names "
                            f"{_list(auds)}; the app's entity id is {expected} ({source}). A service provider must "
                            "refuse an assertion addressed to another audience (SAML core §2.5.1.4). "
                            f"The app {answered(h)}."
                            + ("" if refused(h) else " It accepted it: it does not check the audience."),
                evidence=[*([req] if req is not None else []), *_metadata_hops(s, expected), h],
                audience=list(auds), expected=expected))
            continue
        words = _words(h)
        if not (refused(h) and AUDIENCE_WORDS.search(words)):
            continue
        named = ENTITY_IN_WORDS.search(words)
        checked = named.group(1).rstrip(".") if named else None
        if checked is not None and checked in auds:
            continue  # the entity the app names is the audience: its refusal is about something else
        asked = req.params.saml if req is not None else None
        why = ""
        if asked is not None and asked.issuer in auds:
            why = (f" The identity provider addressed it to {asked.issuer} because {req.label if req else ''} sent "
                   f"the AuthnRequest as {asked.issuer}" + (f", while the app checks for {checked}" if checked else "")
                   + ": the app signs in under one entity id and checks under another.")
        out.append(finding(
            kind="wrong_audience", variant="saml", severity=Severity.ERROR,
            facts={"expected": checked or "the app's entity id"},
            title=f"The app at {where(h)} refused the SAML assertion's audience {_list(auds)}"
                  + (f" (it checks for {checked})." if checked else "."),
            explanation=f"{h.label} {h.method} {where(h)} carried an assertion for audience {_list(auds)}, and the "
                        f"app {answered(h)}. Which entity id the app expects is not in the capture (no metadata of "
                        "it), so this rests on the app's words." + why,
            evidence=[*([req] if req is not None else []), h], audience=list(auds), expected=checked))
    return out


def _sp_entity(s: SessionIndex, h: Hop, req: Hop | None) -> tuple[str | None, str]:
    """The entity id of the service provider that received a Response, and what says so: its metadata
    in the capture (the entity whose AssertionConsumerService is this URL), else the AuthnRequest the
    Response answers (the entity that asked)."""
    target = bare(h.url)
    for g in s.hops:
        fields = g.answer.fields if g.role == Role.DISCOVERY else {}
        acs = fields.get("AssertionConsumerService")
        entity = fields.get("entityID")
        if isinstance(acs, str) and isinstance(entity, str) and any(
                bare(part.rsplit(" (", 1)[0]) == target for part in acs.split(", ")):
            return entity, f"its metadata at {g.label} lists this URL as its AssertionConsumerService"
    asked = req.params.saml if req is not None else None
    if req is not None and asked is not None and asked.issuer:
        return asked.issuer, f"the Issuer of the AuthnRequest {req.label} it answers"
    return None, ""


def _metadata_hops(s: SessionIndex, entity: str) -> list[Hop]:
    return [g for g in s.hops if g.role == Role.DISCOVERY and g.answer.fields.get("entityID") == entity][:1]


def _list(values: tuple[str, ...]) -> str:
    return ", ".join(values[:4]) + (f" (+{len(values) - 4} more)" if len(values) > 4 else "")


# ---- Destination and Recipient -----------------------------------------------------------------

def saml_destination(s: SessionIndex) -> list[Finding]:
    out = []
    for h in s.hops:
        m = h.params.saml
        if m is None or m.kind is None or m.binding not in ("redirect", "post") or h.from_fragment:
            continue
        wrong: list[str] = []
        named = ""
        if m.destination and not same_endpoint(m.destination, h.url):
            wrong.append(f"its Destination is {m.destination}")
            named = m.destination
        if m.kind == "Response":
            for a in m.assertions:
                recipients = [c.recipient for c in a.confirmations if c.method == BEARER and c.recipient]
                if recipients and not any(same_endpoint(r, h.url) for r in recipients):
                    wrong.append(f"the bearer Recipient of assertion {short(a.id, 32)} is {_list(tuple(recipients))}")
                    named = named or recipients[0]
        if not wrong or (m.kind != "Response" and not refused(h)):
            continue  # a request or logout message the receiver accepted: its URL spelling did not matter
        posted = endpoint(h.url)
        receiver = "identity provider" if m.kind == "AuthnRequest" else "receiver"
        out.append(finding(
            kind="saml_destination_mismatch", severity=Severity.ERROR if refused(h) else Severity.WARNING,
            facts={"named": named, "posted": posted},
            title=f"The SAML {m.kind} was sent to {posted}, but it names {named} as its destination.",
            explanation=f"{h.label} {h.method} {where(h)}: " + "; ".join(wrong) + f". The {receiver} must refuse a "
                        "message meant for another URL (SAML core §3.2.2, profiles §4.1.4.5). "
                        + (f"It {answered(h)}." if m.kind != "Response" else f"The app {answered(h)}.")
                        + ("" if refused(h) else " It accepted it: it does not check where the message was meant "
                                                 "to go."),
            evidence=[h], destination=m.destination, sent_to=posted))
    return out


def endpoint(url: str) -> str:
    """scheme://host[:port]/path as a receiver compares it: lower-case scheme and host, default port
    dropped, no query or fragment."""
    try:
        p = urlsplit(url)
        port = p.port
    except ValueError:
        return url
    scheme = (p.scheme or "").lower()
    host = (p.hostname or "").lower()
    if port is not None and not ((scheme == "https" and port == 443) or (scheme == "http" and port == 80)):
        host = f"{host}:{port}"
    return f"{scheme}://{host}{p.path or '/'}"


def same_endpoint(a: str, b: str) -> bool:
    return endpoint(a) == endpoint(b)


def bare(url: str) -> str:
    return endpoint(url).rstrip("/")


# ---- lifetime ----------------------------------------------------------------------------------

def saml_lifetime(s: SessionIndex) -> list[Finding]:
    out = []
    for d in delivered(s):
        h, m = d.hop, d.msg
        skew = skew_of(s, h.host)
        now = h.started + skew
        for a in m.assertions:
            end, which = _end(a)
            f = None
            if end is not None and now >= end and (refused(h) or now - end > LEEWAY_S):
                f = _expired(s, h, m, a, end, which, now, skew)
            elif a.not_before is not None and now < a.not_before and (refused(h) or a.not_before - now > NOT_YET_S):
                f = _not_yet(s, h, a, now, skew)
            if f is not None:
                out.append(f)
                break  # one finding per Response
    return out


def _end(a: SamlAssertion) -> tuple[float | None, str]:
    """The earliest NotOnOrAfter that limits the assertion, and which it is."""
    limits = [(a.not_on_or_after, "Conditions NotOnOrAfter")] + [
        (c.not_on_or_after, "bearer SubjectConfirmationData NotOnOrAfter") for c in a.confirmations
        if c.method == BEARER]
    known = [(t, w) for t, w in limits if t is not None]
    if not known:
        return None, ""
    return min(known, key=lambda tw: tw[0])


def _skew_note(host: str, skew: float) -> str:
    return f" ({host}'s clock is {skew:+.0f} s from the capture's, from Date headers)" if skew else ""


def _idp_skew(s: SessionIndex, h: Hop) -> str:
    """The identity provider's clock against the capture's, when the capture shows it (its hops' Date)."""
    idp_hosts = {g.host for g, _ in authn_requests(s) if g.started <= h.started}
    notes = [f"{host}'s clock is {sk:+.0f} s from the capture's" for host in sorted(idp_hosts)
             if (sk := skew_of(s, host))]
    return f" The identity provider's clock: {'; '.join(notes)} (Date headers)." if notes else ""


def _expired(s: SessionIndex, h: Hop, m: SamlMessage, a: SamlAssertion, end: float, which: str, now: float,
             skew: float) -> Finding:
    late = now - end
    issued = a.issue_instant or m.issue_instant
    life = f", a lifetime of {clock.duration(end - issued)}" if issued is not None and end > issued else ""
    return finding(
        kind="expired_token", variant="assertion", severity=Severity.ERROR if refused(h) else Severity.WARNING,
        title=f"The SAML assertion {short(a.id, 32)} was posted to {where(h)} {clock.duration(late)} after it "
              "expired.",
        explanation=f"Assertion {a.id or '(no ID)'}" + (f" from {a.issuer}" if a.issuer else "")
                    + (f" was issued at {clock.stamp(issued)}" if issued is not None else "")
                    + f" and is valid until {clock.stamp(end)} ({which}{life}). {h.label} {h.method} {where(h)} "
                    f"delivered it at {clock.stamp(h.started)}{_skew_note(h.host, skew)}, {clock.duration(late)} "
                    f"after that. The app {answered(h)}." + _idp_skew(s, h),
        evidence=[h], assertion=a.id, not_on_or_after=Instant(end), posted=Instant(h.started),
        expired_for_s=round(late, 3), skew_s=round(skew, 1))


def _not_yet(s: SessionIndex, h: Hop, a: SamlAssertion, now: float, skew: float) -> Finding:
    assert a.not_before is not None
    early = a.not_before - now
    return finding(
        kind="expired_token", variant="assertion_not_yet", severity=Severity.ERROR if refused(h) else Severity.WARNING,
        title=f"The SAML assertion {short(a.id, 32)} was posted to {where(h)} {clock.duration(early)} before its "
              "NotBefore.",
        explanation=f"Assertion {a.id or '(no ID)'} is valid from {clock.stamp(a.not_before)} (Conditions "
                    f"NotBefore); {h.label} {h.method} {where(h)} delivered it at {clock.stamp(h.started)}"
                    f"{_skew_note(h.host, skew)}: the identity provider's clock is ahead of the app's. "
                    f"The app {answered(h)}." + _idp_skew(s, h),
        evidence=[h], assertion=a.id, not_before=Instant(a.not_before), posted=Instant(h.started),
        early_s=round(early, 3), skew_s=round(skew, 1))


# ---- replay ------------------------------------------------------------------------------------

def saml_replay(s: SessionIndex) -> list[Finding]:
    parent: dict[int, int] = {}
    hops = [d for d in delivered(s) if not d.via_artifact]

    def find(i: int) -> int:
        while parent.setdefault(i, i) != i:
            i = parent[i]
        return i

    owner: dict[tuple[str, str], int] = {}
    for i, d in enumerate(hops):
        keys = [("assertion", a.id) for a in d.msg.assertions if a.id]
        fp = _response_fp(d.hop)
        if fp:
            keys.append(("response", fp))
        for k in keys:
            j = owner.setdefault(k, i)
            if j != i:
                parent[find(i)] = find(j)
    groups: dict[int, list[Delivered]] = defaultdict(list)
    for i, d in enumerate(hops):
        groups[find(i)].append(d)
    out = []
    for ds in groups.values():
        if len(ds) < 2:
            continue
        ds.sort(key=lambda d: d.hop.started)
        first = ds[0]
        fp = _response_fp(first.hop)
        same_blob = fp is not None and all(_response_fp(d.hop) == fp for d in ds)
        a_id = next((a.id for a in first.msg.assertions if a.id), None)
        what = f"assertion {short(a_id, 32)}" if a_id else f"Response {fp}"
        same_ua = len({d.hop.user_agent for d in ds}) == 1
        steps = "; ".join(
            f"{d.hop.label} {'first' if d is first else '+' + clock.duration(d.hop.started - first.hop.started)}: "
            f"{d.hop.method} {where(d.hop)} {answered(d.hop)}"
            + ("" if same_ua else f", user agent {short(d.hop.user_agent, 60)}")
            + (f", Sec-Fetch-Site {d.hop.initiator.site}" if d.hop.initiator and d.hop.initiator.site else "")
            for d in ds)
        if same_ua:
            steps += f" (all from the same user agent: {short(first.hop.user_agent, 60)})"
        later_refused = any(refused(d.hop) for d in ds[1:])
        accepted_again = [d for d in ds[1:] if d.hop.ok]
        gap = ds[1].hop.started - first.hop.started
        expl = (f"The same {f'Response (the same fingerprint {fp})' if same_blob else what} was delivered "
                f"{len(ds)} times: {steps}. A bearer assertion is good for one sign-in: the service provider "
                "must keep the IDs it has accepted and refuse them again (SAML profiles §4.1.4.5).")
        if accepted_again:
            expl += (f" The app accepted it again at {', '.join(d.hop.label for d in accepted_again)}: it keeps no "
                     "replay cache, so a captured Response can sign anyone in as this user until it expires.")
        out.append(finding(
            kind="duplicate_redirect", variant="saml",
            severity=Severity.ERROR if later_refused or accepted_again else Severity.WARNING,
            title=f"The SAML Response carrying {what} was posted {len(ds)} times, {clock.duration(gap)} apart: an "
                  "assertion works only once.",
            explanation=expl, evidence=[d.hop for d in ds], assertion=a_id, response=fp,
            gap_ms=round(gap * 1000, 1), accepted_again=len(accepted_again)))
    return out


def _response_fp(h: Hop) -> str | None:
    for src in (h.params.form, h.params.query):
        for k, v in src.items():
            if k.lower() == "samlresponse" and "#" in v:
                return v
    return None


# ---- signatures --------------------------------------------------------------------------------

def saml_signature(s: SessionIndex) -> list[Finding]:
    out = []
    for d in delivered(s):
        h, m = d.hop, d.msg
        failed = [("the Response", m.signature.note if m.signature else None)] if m.signature_status == "failed" else []
        failed += [(f"assertion {short(a.id, 32)}", (a.signature.note if a.signature else None)
                    or (m.signature.note if m.signature else None))
                   for a in m.assertions if a.signature_status == "failed"]
        issuer = m.issuer or next((a.issuer for a in m.assertions if a.issuer), None)
        if failed:
            trust = _trust(s, issuer)
            why = "; ".join(f"{what}: {note or 'it does not verify'}" for what, note in failed)
            out.append(finding(
                kind="saml_signature", variant="failed", severity=Severity.ERROR,
                title=f"The signature of the SAML Response posted to {where(h)} does not verify with the identity "
                      f"provider's certificate.",
                explanation=f"{h.label} {h.method} {where(h)} carried a Response"
                            + (f" from {issuer}" if issuer else "") + f", checked with {trust[0]}: {why}. Only "
                            f"what a signature covers can be trusted; the app must refuse it. The app {answered(h)}.",
                evidence=[*trust[1], h], issuer=issuer,
                failed=[what for what, _ in failed]))
            continue
        unsigned = [a for a in m.assertions if a.signature_status == "unsigned"]
        if unsigned and m.signature_status == "unsigned":
            out.append(finding(
                kind="saml_signature", variant="unsigned", severity=Severity.ERROR if refused(h) else Severity.WARNING,
                title=f"The SAML assertion posted to {where(h)} is not signed, and neither is its Response.",
                explanation=f"{h.label} {h.method} {where(h)} carried {len(unsigned)} assertion(s) "
                            + ", ".join(short(a.id, 32) for a in unsigned[:3])
                            + (f" from {issuer}" if issuer else "") + " with no signature on the assertion or on the "
                            "Response around it: nothing shows the identity provider issued it. The app "
                            f"{answered(h)}." + ("" if refused(h) else " It accepted it: it does not require a "
                                                                        "signature."),
                evidence=[h], issuer=issuer, assertions=[a.id for a in unsigned]))
    return out


def _trust(s: SessionIndex, issuer: str | None) -> tuple[str, list[Hop]]:
    """Which certificate a signature was checked with, for a sentence, and the hop that taught it."""
    meta = _metadata_hops(s, issuer) if issuer else []
    if meta:
        return f"the certificate of its metadata at {meta[0].label}", meta
    return "the certificate given with --saml-cert", []
