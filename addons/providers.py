"""Provider knowledge as data. Roles come from OAuth/OIDC parameters first; these tables only add
names for hosts and paths that the protocol alone cannot tell apart (a redirect handler run by a
platform, an IdP host seen before any authorize request, token services with their own paths)."""
from __future__ import annotations

import re

# Identity provider hosts (exact names or suffixes after a dot) and the provider's name.
IDP_HOSTS: dict[str, str] = {
    "login.microsoftonline.com": "Microsoft Entra ID",
    "login.microsoftonline.us": "Microsoft Entra ID (US Gov)",
    "login.partner.microsoftonline.cn": "Microsoft Entra ID (China)",
    "login.chinacloudapi.cn": "Microsoft Entra ID (China)",
    "login.windows.net": "Microsoft Entra ID (v1)",
    "sts.windows.net": "Microsoft Entra ID (v1 issuer)",
    "login.live.com": "Microsoft account",
    "b2clogin.com": "Azure AD B2C",
    "ciamlogin.com": "Microsoft Entra External ID",
    "accounts.google.com": "Google",
    "oauth2.googleapis.com": "Google",
    "okta.com": "Okta",
    "oktapreview.com": "Okta",
    "okta-emea.com": "Okta",
    "auth0.com": "Auth0",
    "appleid.apple.com": "Apple",
    "cognito-idp.amazonaws.com": "Amazon Cognito",
    "amazoncognito.com": "Amazon Cognito",
    "token.botframework.com": "Bot Framework token service",
    "directline.botframework.com": "Bot Framework Direct Line",
}

# Paths that mark an IdP whatever the host (self-hosted products).
IDP_PATHS = (re.compile(r"^/adfs/"), re.compile(r"^/(auth/)?realms/[^/]+/protocol/openid-connect/"))

# Redirect handlers run by platforms: any hit is a callback hop (by path, on matching hosts).
REDIRECT_HANDLERS: list[tuple[re.Pattern[str], re.Pattern[str], str]] = [
    (re.compile(r"(^|\.)api\.agent-oauth\.azureml\.ms$|(^|\.)api\.azureml\.ms$"),
     re.compile(r"^/agent-oauth/v1\.0/redirect/?$", re.I), "Foundry OAuth redirect handler"),
    (re.compile(r"(^|\.)token\.botframework\.com$"), re.compile(r"^/\.auth/web/redirect/?$", re.I),
     "Bot Framework token service redirect"),
]

# Token services whose requests carry no grant_type.
TOKEN_PATHS: list[tuple[re.Pattern[str], re.Pattern[str], str]] = [
    (re.compile(r"(^|\.)directline\.botframework\.com$|(^|\.)directline\.[a-z.]+$"),
     re.compile(r"^/v3/directline/tokens/(generate|refresh)/?$", re.I), "Direct Line token"),
    (re.compile(r"(^|\.)token\.botframework\.com$"), re.compile(r"^/api/usertoken/gettoken", re.I),
     "Bot Framework user token"),
]

# Well-known endpoint paths, used before (or without) a discovery document.
DISCOVERY_RE = re.compile(r"/\.well-known/(openid-configuration|oauth-authorization-server)(/|$)")
JWKS_RE = re.compile(r"(/jwks(\.json)?|/\.well-known/jwks(\.json)?|/discovery(/v2\.0)?/keys|/oauth2(/v1)?/keys"
                     r"|/protocol/openid-connect/certs|/oauth2/v\d/certs|/certs)/?$", re.I)
USERINFO_RE = re.compile(r"/(userinfo|oidc/userinfo|v1/userinfo|openid/userinfo|me/?userinfo)/?$", re.I)
LOGOUT_RE = re.compile(r"/(logout|signout|sign-out|log-out|end_session|endsession|session/end|v2/logout)/?$", re.I)
DEVICE_RE = re.compile(r"/(devicecode|device_authorization|device/code|oauth/device/code|device)/?$", re.I)
AUTHORIZE_RE = re.compile(r"/(authorize|auth|oauth2?/authorize|oauth2/v2\.0/authorize|oauth2/auth)/?$", re.I)
STATIC_RE = re.compile(r"\.(js|mjs|css|png|jpe?g|gif|svg|ico|woff2?|ttf|map|webp)$", re.I)
# Words in a path that make a code+state pair look like a redirect URI even without other evidence.
CALLBACK_PATH_RE = re.compile(r"callback|redirect|signin|sign-in|oauth|oidc|/auth|/login|return|/cb\b|complete", re.I)


def provider_of(host: str, path: str = "") -> str | None:
    host = host.lower()
    for name, label in IDP_HOSTS.items():
        if host == name or host.endswith("." + name):
            return label
    if any(p.search(path) for p in IDP_PATHS):
        return "ADFS" if path.lower().startswith("/adfs/") else "Keycloak"
    return None


def redirect_handler(host: str, path: str) -> str | None:
    for h, p, label in REDIRECT_HANDLERS:
        if h.search(host.lower()) and p.search(path):
            return label
    return None


def token_service(host: str, path: str) -> str | None:
    for h, p, label in TOKEN_PATHS:
        if h.search(host.lower()) and p.search(path):
            return label
    return None
