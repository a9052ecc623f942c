"""Provider knowledge as data. Roles come from OAuth/OIDC parameters first; these tables only add
names for hosts and paths that the protocol alone cannot tell apart (a redirect handler run by a
platform, an IdP host seen before any authorize request, token services with their own paths)."""
from __future__ import annotations

import re
from dataclasses import dataclass

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

# Microsoft's sign-in hosts, whose pages carry numeric AADSTS codes in `$Config` (suffix match).
ENTRA_HOSTS = ("login.microsoftonline.com", "login.microsoftonline.us", "login.partner.microsoftonline.cn",
               "login.chinacloudapi.cn", "login.windows.net", "b2clogin.com", "ciamlogin.com")

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
REVOKE_RE = re.compile(r"/(revoke|revocation|token/revoke|oauth2/v\d/revoke|oauth2/revoke"
                       r"|protocol/openid-connect/revoke)"
                       r"/?$", re.I)
REGISTER_RE = re.compile(r"/(register|registration|connect/register|oauth2?/register|clients-registrations/[^/]+)/?$",
                         re.I)
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


@dataclass(frozen=True)
class ErrorPage:
    """How one provider's HTML error page names its error: where it is served (host suffixes or a
    path), a marker in the page, the code (in the visible text), the message (in the HTML) and ids."""

    provider: str
    hosts: tuple[str, ...]  # suffixes; empty: any host (with `path` or `marker` deciding)
    path: re.Pattern[str] | None
    marker: re.Pattern[str]
    code: re.Pattern[str] | None
    message: re.Pattern[str] | None
    ids: tuple[tuple[str, re.Pattern[str]], ...] = ()

    def applies(self, host: str, path: str, text: str) -> bool:
        if self.hosts and not (host in self.hosts or host.endswith(tuple("." + h for h in self.hosts))):
            return False
        if self.path is not None and not self.path.search(path):
            return False
        return bool(self.marker.search(text[:200_000]))


_ID = r"\s*[:#]?\s*([A-Za-z0-9][A-Za-z0-9_.-]{7,80})"
ERROR_PAGES: tuple[ErrorPage, ...] = (
    ErrorPage("Google", ("accounts.google.com",), None, re.compile(r"Error\s+\d{3}\s*:\s*[a-z_]+"),
              re.compile(r"Error\s+\d{3}\s*:\s*([a-z_]+)"),
              re.compile(r"(?is)Error\s+\d{3}\s*:\s*[a-z_]+\s*</[^>]+>(.{0,600}?)"
                         r"(?:Request details|If you are a developer"
                         r"|<a |</main>|$)")),
    ErrorPage("Okta", ("okta.com", "oktapreview.com", "okta-emea.com"), None,
              re.compile(r"(?i)error[ -]?code|o-form-explain|errorSummary"),
              re.compile(r"(?i)error\s*code\s*:?\s*([A-Za-z][A-Za-z0-9_]+)"),
              re.compile(r"(?is)class=\"o-form-explain[^\"]*\"[^>]*>(.*?)</"),
              (("request_id", re.compile(r"(?i)(?:request|error)\s*id" + _ID)),)),
    ErrorPage("Auth0", ("auth0.com",), None, re.compile(r"(?i)tracking|error_description"),
              re.compile(r"(?i)\berror\s*[:=]\s*([a-z][a-z_]+)"),
              re.compile(r"(?is)error_description\s*[:=]\s*(?:<[^>]+>\s*)*([^<\n]{1,600})"),
              (("trace_id", re.compile(r"(?i)tracking(?:\s*id)?" + _ID)),)),
    ErrorPage("Keycloak", (), re.compile(r"/realms/[^/]+/"), re.compile(r'id="kc-error-message"'), None,
              re.compile(r'(?is)id="kc-error-message"[^>]*>\s*<p[^>]*>(.*?)</p>')),
    ErrorPage("ADFS", (), re.compile(r"(?i)^/adfs/"), re.compile(r"MSIS\d{4,5}|(?i:activity\s*id)"),
              re.compile(r"(MSIS\d{4,5})"), re.compile(r"(?s)(MSIS\d{4,5}:[^<\r\n]{1,600})"),
              (("correlation_id", re.compile(r"(?i)activity\s*id\s*:?\s*([0-9a-f-]{36})")),)),
)

# Keycloak's error page shows a sentence, no code: the event error it stands for (Keycloak `Errors`).
KEYCLOAK_MESSAGES: tuple[tuple[re.Pattern[str], str], ...] = (
    (re.compile(r"(?i)invalid parameter:\s*redirect_uri"), "invalid_redirect_uri"),
    (re.compile(r"(?i)client not found"), "client_not_found"),
    (re.compile(r"(?i)cookie not found"), "cookie_not_found"),
    (re.compile(r"(?i)invalid parameter:\s*(\w+)"), "invalid_request"),
)


def page_code(provider: str, message: str) -> str:
    """The error code an error page without one stands for ("" when unknown)."""
    if provider == "Keycloak":
        for rx, code in KEYCLOAK_MESSAGES:
            if rx.search(message):
                return code
    return ""
