"""What sign-in a capture holds, in one block a person reads before the findings: the app, the
identity provider, the clients, the kinds of flow, where the capture came from and when.

Derived from the hops (never stored): an old store gets the same header as a new one.
"""
from __future__ import annotations

from dataclasses import dataclass

from authtrace.reports.checks.grants import tenant_of
from authtrace.reports.clients import client_of
from authtrace.store.records import Actor, CaptureSession, Hop, Role

GRANTS = {"authorization_code": "authorization code", "refresh_token": "refresh token",
          "client_credentials": "client credentials", "urn:ietf:params:oauth:grant-type:device_code": "device code",
          "device_code": "device code", "urn:ietf:params:oauth:grant-type:jwt-bearer": "JWT bearer (on-behalf-of)",
          "urn:ietf:params:oauth:grant-type:token-exchange": "token exchange", "password": "password (ROPC)"}
SOURCES = {"live": "live capture", "har": "HAR file", "mitm": "mitmproxy flow file"}


@dataclass(slots=True, frozen=True)
class SignIn:
    app_hosts: tuple[str, ...]
    identity_providers: tuple[str, ...]  # the hosts of its authorize, token and device requests
    issuers: tuple[str, ...]
    tenants: tuple[str, ...]
    client_ids: tuple[str, ...]
    flows: tuple[str, ...]  # "authorization code + PKCE", "implicit", "device code", ...
    clients: tuple[str, ...]  # "Chrome 156", "python-requests 2.32"
    source: str  # "HAR file from Chrome 156"
    first: float | None
    last: float | None


def _ordered(values: list[str]) -> tuple[str, ...]:
    return tuple(dict.fromkeys(v for v in values if v))


def signin_of(session: CaptureSession, hops: list[Hop]) -> SignIn:
    authorize = [h for h in hops if h.role == Role.AUTHORIZE]
    idp_hosts = _ordered([h.host for h in hops if h.role in (Role.AUTHORIZE, Role.TOKEN, Role.DEVICE)])
    flows = []
    for a in authorize:
        rt = set((a.params.get("response_type") or "").split())
        if "code" in rt:
            kind = "hybrid" if rt & {"id_token", "token"} else "authorization code"
            if a.params.get("code_challenge"):
                kind += " + PKCE"
            flows.append(kind)
        elif rt & {"id_token", "token"}:
            flows.append("implicit")
    for h in hops:
        m = h.params.saml
        if m is not None and m.kind == "AuthnRequest":
            flows.append("SAML 2.0 (SP-initiated" + (", passive)" if m.is_passive else ")"))
        elif m is not None and m.kind == "Response" and h.role == Role.CALLBACK and not m.in_response_to:
            flows.append("SAML 2.0 (IdP-initiated)")
        elif m is not None and m.kind == "Artifact":
            flows.append("SAML 2.0 (artifact binding)")
        if h.role == Role.TOKEN:
            grant = h.params.get("grant_type")
            if grant and grant != "authorization_code":
                flows.append(GRANTS.get(grant, grant))
        elif h.role == Role.DEVICE:
            flows.append("device code")
    tokens = [t for h in hops for t in h.tokens if t.kind == "id_token" or t.where.startswith("response.")]
    clients = _ordered([client_of(h.user_agent) for h in hops if h.actor == Actor.BROWSER])
    apps = _ordered([client_of(h.user_agent) for h in hops if h.actor != Actor.BROWSER])
    source = SOURCES.get(session.kind, session.kind)
    if session.kind == "har" and clients:
        source += f" from {clients[0]}"
    return SignIn(
        app_hosts=_ordered([h.host for h in hops if h.role == Role.CALLBACK]),
        identity_providers=idp_hosts,
        issuers=_ordered([h.answer.issuer or "" for h in hops] + [t.iss or "" for t in tokens if t.kind == "id_token"]),
        tenants=_ordered([tenant_of(h.path) or "" for h in hops if h.role in (Role.AUTHORIZE, Role.TOKEN)]
                         + [t.tid or "" for t in tokens]),
        client_ids=_ordered([h.client_id or "" for h in hops if h.role in (Role.AUTHORIZE, Role.TOKEN, Role.DEVICE)]),
        flows=_ordered(flows), clients=clients + tuple(a for a in apps if a not in clients), source=source,
        first=hops[0].started if hops else session.first_seen, last=hops[-1].started if hops else session.last_seen)


def signin_rows(s: SignIn) -> list[tuple[str, tuple[str, ...]]]:
    """The header as labelled rows, in the order a reader looks for them."""
    return [("App", s.app_hosts), ("Identity provider", s.identity_providers), ("Tenant", s.tenants),
            ("Issuer", s.issuers), ("Client id", s.client_ids), ("Flow", s.flows), ("Client", s.clients)]
