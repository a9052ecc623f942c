"""The verdict (what a reader must know before scrolling) and the capture's notes (facts about the
capture itself that are not faults of the sign-in)."""
from __future__ import annotations

from authtrace.reports.checks.base import lost_token
from authtrace.store.records import Actor, Finding, Hop, Role, Severity


def verdict(findings: list[Finding], n_hops: int, n_flows: int = 0) -> tuple[str, str]:
    """(class: ok | info | warning | error, one sentence)."""
    if n_hops == 0:
        return "info", (f"No sign-in traffic found: none of the {n_flows} captured flows was an auth hop"
                        if n_flows else "No sign-in traffic found in this capture")
    ordered = sorted(findings, key=lambda f: f.severity.rank)
    serious = [f for f in ordered if f.severity in (Severity.ERROR, Severity.WARNING)]
    if not serious:
        notes = f" ({len(ordered)} note{'s' if len(ordered) != 1 else ''} below)" if ordered else ""
        return "ok", f"No problem found in {n_hops} auth hop{'s' if n_hops != 1 else ''}{notes}"
    top = serious[0]
    title = (top.title or top.kind).strip().rstrip(".")
    cause = cause_of(top, findings)
    more = len(serious) - 1
    tail = f" (and {more} more finding{'s' if more != 1 else ''} below)" if more else ""
    prefix = "Sign-in failed" if top.severity == Severity.ERROR else "Warning"
    return top.severity.value, f"{prefix}: {lcfirst(title)}{f' — {cause}' if cause else ''}{tail}"


def cause_of(top: Finding, findings: list[Finding]) -> str | None:
    """The cause behind the top finding when another finding's evidence shows it: a code redeemed
    twice because its callback was requested again, by whom the headers say."""
    if top.kind == "duplicate_redirect":
        return None  # its title names the requester already
    mine = {id(h) for h in top.evidence}
    for f in findings:
        who = f.details.get("cause")
        if f is not top and f.kind == "duplicate_redirect" and who and mine & {id(h) for h in f.evidence}:
            return f"its callback was requested again by {who}"
    return None


def lcfirst(s: str) -> str:
    """'The code was…' -> 'the code was…' (but 'AADSTS54005…', 'PKCE…' stay as they are)."""
    if len(s) > 1 and s[0].isupper() and s[1].islower():
        return s[0].lower() + s[1:]
    return s


def notes(hops: list[Hop]) -> list[str]:
    """Facts about the capture itself that are not faults of the sign-in."""
    out = []
    roles = {h.role for h in hops}
    oauth_callback = any(h.role == Role.CALLBACK and h.params.saml is None for h in hops)
    if oauth_callback and Role.TOKEN not in roles and not any(h.actor == Actor.APP for h in hops):
        out.append("The app's code redemption (token request) is not visible in this capture: the app's back "
                   "channel did not go through the proxy. Findings rely on the browser's side; record with "
                   "`authtrace record --app` to see the token endpoint's answer too.")
    if not any(h.role == Role.AUTHORIZE and h.params.saml is None for h in hops) and oauth_callback:
        out.append("No authorize request was captured (recording started mid-sign-in): state, nonce and PKCE "
                   "cannot be compared.")
    out += saml_notes(hops)
    sanitized = sanitized_evidence(hops)
    if sanitized:
        out.append("This capture was exported sanitized (Chrome's and Edge's default \"Export HAR\", or a similar "
                   "option): its Authorization, Cookie and Set-Cookie headers were removed (" + sanitized + "). That "
                   "can hide which token each API call sent (its audience and expiry are judged from the tokens the "
                   "session was issued and the APIs' answers) and cookie problems (a lost session, state or "
                   "correlation cookie, SameSite). Export with sensitive data, or record with `authtrace record`, "
                   "to see them.")
    return out


def sanitized_evidence(hops: list[Hop]) -> str:
    """Why this capture looks sanitized ("" when it does not): a request whose CORS preflight announced
    an Authorization header the request does not carry; an API answer naming a token error for a
    request without a token (RFC 6750 §3.1: a request with no token gets no error code); or a browser
    sign-in through a provider's login pages in which no request sent or set a cookie."""
    why = []
    lost = [(h, said) for h in hops if h.role in (Role.API, Role.USERINFO) and (said := lost_token(h))]
    if lost:
        why.append(f"#{lost[0][0].number}: {lost[0][1]}")
    browser = [h for h in hops if h.actor == Actor.BROWSER]
    logins = [h for h in browser if h.role == Role.LOGIN and h.method == "POST"]
    if logins and any(h.role == Role.CALLBACK for h in browser) and not any(h.cookies_sent or h.cookies_set
                                                                            for h in hops):
        why.append(f"the sign-in went through the provider's login form (#{logins[0].number}) and no request "
                   "sent or set a cookie")
    return "; ".join(why)


def saml_notes(hops: list[Hop]) -> list[str]:
    """What a SAML capture cannot show: an IdP-initiated sign-in (a Response that answers no request:
    nothing binds it to a sign-in the app started), or Responses to requests the capture does not hold."""
    out = []
    delivered = [h for h in hops if h.params.saml is not None and h.params.saml.kind == "Response"
                 and h.role == Role.CALLBACK]  # a federation post (login) is a step of the sign-in around it
    requests = [h for h in hops if h.params.saml is not None and h.params.saml.kind == "AuthnRequest"]
    unsolicited = [h for h in delivered if not _answers_a_request(h)]
    if unsolicited:
        h = unsolicited[0]
        out.append(f"IdP-initiated SAML sign-in: the Response at #{h.number} ({h.host}{h.path}) answers no "
                   "request (no InResponseTo), so the identity provider started it, not the app. Nothing binds "
                   "it to a sign-in the app began, so request checks (InResponseTo) do not apply; apps that allow "
                   "only SP-initiated sign-in refuse such a Response.")
    if not requests and any(_answers_a_request(h) for h in delivered):
        h = next(h for h in delivered if _answers_a_request(h))
        out.append(f"No SAML AuthnRequest was captured (recording started mid-sign-in): the Response at #{h.number} "
                   "answers a request the capture does not hold, so its InResponseTo cannot be compared.")
    return out


def _answers_a_request(h: Hop) -> bool:
    m = h.params.saml
    return m is not None and bool(m.in_response_to or any(c.in_response_to for a in m.assertions
                                                          for c in a.confirmations))
