"""Which exchanges are auth hops, and what role each plays.

`might_be_auth` is the cheap pre-filter every flow passes (a few substring checks: False means
certainly not a hop). `role_of` decides from OAuth/OIDC parameters first (RFC 6749, OIDC Core,
RFC 7636, RFC 9126, form_post), so any provider works; provider tables only add names for what the
protocol alone cannot tell apart.
"""
from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any

from authtrace.addons import providers as pv
from authtrace.addons.context import CaptureContext, split
from authtrace.store.records import Role

CALLBACK_KEYS = ("code", "id_token", "access_token", "error", "samlresponse")
# "saml" covers SAMLRequest, SAMLResponse, SAMLart and most SAML endpoints; "metadata" and "shibboleth" SAML
# metadata documents (ADFS' FederationMetadata.xml, SimpleSAMLphp's metadata.php, Shibboleth's entity URL)
URL_MARKERS = ("code=", "state=", "error=", "token=", "response_type=", "client_id=", "request_uri=",
               "/.well-known/", "jwks", "/keys", "/certs", "authorize", "/token", "logout", "userinfo",
               "device", "/oauth", "/agent-oauth/", "/.auth/", "saml", "/login", "signin",
               "session/end", "end_session", "/directline/", "metadata", "shibboleth")
BODY_MARKERS = (b"grant_type", b"code=", b"state=", b"id_token", b"access_token", b"response_type",
                b"SAMLResponse", b"SAMLRequest", b"SAMLart", b"urn:oasis:names:tc:SAML:2.0:protocol", b"error=",
                b"client_id", b"request_uri", b"redirect_uris")
# SAML protocol messages answered over the back channel (SOAP): an artifact resolved, a query
SAML_BACK_CHANNEL = frozenset({"ArtifactResolve", "ArtifactResponse", "AttributeQuery", "AuthnQuery",
                               "AuthzDecisionQuery", "AssertionIDRequest", "NameIDMappingRequest"})
LOCATION_MARKERS = ("code=", "error=", "token=", "state=")
# the same tests as one regular expression each: a single scan instead of a generator per marker
# (the pre-filter runs on every request of a 100 MB HAR)
_URL_RE = re.compile("|".join(map(re.escape, URL_MARKERS)))
_BODY_RE = re.compile(b"|".join(map(re.escape, BODY_MARKERS)))
_LOCATION_RE = re.compile("|".join(map(re.escape, LOCATION_MARKERS)))


def might_be_auth(url: str, host: str, has_auth_header: bool, body_head: bytes, location: str,
                  ctx: CaptureContext, challenge: bool = False) -> bool:
    """The cheap pre-filter: a few substring checks. False means: certainly not a hop.

    `challenge`: the answer carries a `WWW-Authenticate` challenge (a resource server refusing a
    token: an API call even when the capture lost the request's Authorization header). A URL a CORS
    preflight announced an `authorization` header for is a candidate too (the capture may have lost
    the header itself); preflights are no hops and never reach this filter."""
    if has_auth_header or challenge or url in ctx.preflighted:
        return True
    if _URL_RE.search(url.lower()):
        return True
    if body_head and _BODY_RE.search(body_head):
        return True
    if location and _LOCATION_RE.search(location):
        return True
    return host in ctx.idp_hosts or host in ctx.open_authorize or url in ctx.steps


@dataclass(slots=True, frozen=True)
class Request:
    """What the role rules read of a request: its parameters (lower-case names) and a few headers."""

    method: str
    host: str
    path: str
    bare: str  # scheme://host/path, for endpoint matching
    params: dict[str, str]  # query and body together; query wins, as servers read it first
    form: dict[str, str]  # body parameters only
    authorization: str
    headers: dict[str, str]
    challenge: dict[str, str] | None = None  # the answer's WWW-Authenticate, decoded
    body: str = ""  # the request body as text (the start of it), for JSON-bodied endpoints
    url: str = ""  # as the user sees it


def role_of(r: Request, answer_json: Any, ctx: CaptureContext) -> Role | None:
    if r.method == "OPTIONS":
        return None  # a CORS preflight: the request it announces is the hop
    p, f = r.params, r.form
    known = ctx.endpoint_role(r.bare)
    answered_error = isinstance(answer_json, dict) and answer_json.get("error") is not None
    if r.method == "POST" and answered_error and (
            known in ("registration", "revocation") or pv.REVOKE_RE.search(r.path) and "token" in f
            or (pv.REGISTER_RE.search(r.path) or known == "registration") and '"redirect_uris"' in r.body):
        return Role.ERROR  # dynamic client registration (RFC 7591) or revocation (RFC 7009) refused
    if pv.DISCOVERY_RE.search(r.path):
        return Role.DISCOVERY
    has_keys = isinstance(answer_json, dict) and isinstance(answer_json.get("keys"), list)
    if known == "jwks" or (pv.JWKS_RE.search(r.path) and has_keys):
        return Role.JWKS
    if r.method == "POST" and (f.get("grant_type") or known == "token"):
        return Role.TOKEN
    if pv.token_service(r.host, r.path):
        return Role.TOKEN
    if pv.redirect_handler(r.host, r.path):
        return Role.CALLBACK
    has_client = bool(p.get("client_id"))
    if has_client and (p.get("response_type") or p.get("request_uri") or p.get("request")):
        return Role.AUTHORIZE
    if known == "par" and r.method == "POST":
        return Role.AUTHORIZE
    if (known == "device" or pv.DEVICE_RE.search(r.path)) and r.method == "POST" and has_client:
        return Role.DEVICE
    if known == "logout" or (pv.LOGOUT_RE.search(r.path) and (p.get("post_logout_redirect_uri") or
                                                            p.get("id_token_hint") or has_client
                                                            or r.host in ctx.idp_hosts)):
        return Role.LOGOUT
    if (p.get("samlresponse") or p.get("wresult")) and (r.host in ctx.open_authorize or pv.provider_of(r.host, r.path)):
        return Role.LOGIN  # federation: another IdP answering the IdP, the OAuth sign-in is still under way
    if any(k in p for k in CALLBACK_KEYS) and looks_like_callback(r, ctx):
        return Role.CALLBACK
    scheme = r.authorization[:7].lower()
    refused = bool(r.challenge) and (r.challenge or {}).get("scheme", "").lower() in ("bearer", "dpop") \
        and bool((r.challenge or {}).get("error"))
    if scheme == "bearer " or scheme[:5] == "dpop " or refused or r.url in ctx.preflighted:
        if known == "userinfo" or pv.USERINFO_RE.search(r.path):
            return Role.USERINFO
        return Role.API
    if pv.STATIC_RE.search(r.path):
        return None
    if (r.host in ctx.open_authorize or r.url in ctx.steps or _from_page(r, ctx)) and is_navigation(r):
        if p.get("error") or (isinstance(answer_json, dict) and answer_json.get("error")):
            return Role.ERROR
        return Role.LOGIN
    return None


def saml_role(kind: str | None, param: str, path: str, oauth_role: Role | None) -> Role:
    """The role of a request that carries a SAML message (SAML 2.0 profiles): an AuthnRequest asks for a
    sign-in (authorize), a Response or an artifact delivered to a consumer is the answer arriving
    (callback), Logout messages are logout, and SOAP messages of the back channel (an artifact
    resolved) are the redemption (token). A Response posted to an identity provider while its own
    sign-in is under way stays a federation step of that sign-in (`oauth_role` login: ADFS answering
    Entra). A message that cannot be decoded is judged by its parameter."""
    if kind in ("LogoutRequest", "LogoutResponse") or (kind is None and _LOGOUT_PATH.search(path)):
        return Role.LOGOUT
    if kind == "AuthnRequest" or (kind is None and param == "SAMLRequest"):
        return Role.AUTHORIZE
    if kind in SAML_BACK_CHANNEL:
        return Role.TOKEN
    return Role.LOGIN if oauth_role == Role.LOGIN else Role.CALLBACK


_LOGOUT_PATH = re.compile(r"(?i)logout|/slo\b|singlelogout")


def _from_page(r: Request, ctx: CaptureContext) -> bool:
    """A form posted from a provider page of a sign-in, to the same host."""
    ref = r.headers.get("referer", "")
    return r.method == "POST" and bool(ref) and ref in ctx.pages and (split(ref).hostname or "").lower() == r.host


def looks_like_callback(r: Request, ctx: CaptureContext) -> bool:
    """A code/state pair alone is common outside OAuth (`?code=SAVE10&state=CA`); require evidence
    that this URL is a redirect URI: named as one in an authorize request, reached by an IdP's
    redirect or form_post, or carrying parameters only OAuth uses. Path words count only when the
    capture holds no authorize request to compare with (recording started mid-sign-in)."""
    p = r.params
    if r.bare in ctx.redirect_uris or r.bare in ctx.redirect_targets:
        return True
    referer = r.headers.get("referer", "") or r.headers.get("origin", "")
    ref_host = (split(referer).hostname or "").lower() if referer else ""
    if ref_host and ref_host != r.host and (ref_host in ctx.idp_hosts or pv.provider_of(ref_host)):
        return True
    if ctx.redirect_uris:
        return False
    if p.get("id_token") or (p.get("access_token") and p.get("token_type")):
        return True
    if any(k in p for k in ("session_state", "client_info", "iss")) and ("code" in p or "error" in p):
        return True
    if p.get("error") and (p.get("error_description") or p.get("state")) and "client_id" not in p:
        return True
    return bool(p.get("code") and p.get("state") and pv.CALLBACK_PATH_RE.search(r.path))


def is_navigation(r: Request) -> bool:
    mode = r.headers.get("sec-fetch-mode")
    if mode is not None:
        return mode == "navigate" or r.headers.get("sec-fetch-dest") in ("document", "iframe")
    if r.method == "POST":
        return "x-www-form-urlencoded" in r.headers.get("content-type", "")
    return "text/html" in r.headers.get("accept", "")

