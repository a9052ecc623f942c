"""What identity providers mean by their error codes, kept as data.

Why data and not code: the diagnosis logic ("the token request failed with
invalid_grant") is generic, while the knowledge of what a provider means by a
particular code (AADSTS54005, use_dpop_nonce, ...) is a lookup table that
grows over time. Keeping that knowledge here as plain `Entry` records means:

* adding or correcting a code is a one-line data change, with no new branches
  in the analysers and no risk of breaking control flow;
* every code has the same shape (title, meaning, causes, next step, source),
  so reports render them uniformly and tests check them all together;
* the wording can be reviewed against the provider's documentation on its own.

Sources:
* AADSTS codes: Microsoft Entra "authentication and authorization error codes"
  reference (learn.microsoft.com/entra/identity-platform/reference-error-codes)
  and the messages Entra returns at runtime. Microsoft says the codes and texts
  can change, so treat the live ``error_description`` as authoritative and use
  https://login.microsoftonline.com/error?code=<number> for the current text.
* OAuth/OIDC ``error`` values: RFC 6749 §4.1.2.1, §4.2.2.1 and §5.2,
  RFC 6750 §3.1, OpenID Connect Core 1.0 §3.1.2.6, RFC 8628 §3.5 (device
  flow), RFC 8707 (resource indicators), RFC 9126 (PAR), RFC 9449 (DPoP),
  RFC 7009 (revocation), RFC 9396 (RAR).

Only codes whose meaning is documented are listed. An unknown code returns
``None``; the caller should then show the provider's own description.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any

__all__ = [
    "Entry",
    "AADSTS",
    "APP_ERRORS",
    "B2C",
    "OAUTH_ERRORS",
    "aadsts_codes",
    "aadsts_codes_in_body",
    "app_error",
    "SAML_STATUS",
    "explain",
    "explain_saml",
    "explain_text",
]


@dataclass(frozen=True)
class Entry:
    """One error code and what to do about it."""

    code: str  # "AADSTS54005" or an OAuth error value such as "invalid_grant"
    title: str  # one short sentence: what happened
    meaning: str  # 1-3 sentences a support engineer can act on
    causes: tuple[str, ...]  # likely causes, most common first
    next_step: str  # one sentence: what to do or check next
    source: str = ""  # where the meaning is defined
    # what the code means when the authorize request was interactive (no prompt=none): for the codes
    # whose usual meaning ("the request used prompt=none") would then be false
    interactive: str = ""
    # a signal the app must handle (the user chose another path), not a fault of the provider
    signal: bool = False


_ENTRA = "Microsoft Entra ID error reference"
_B2C = "Azure AD B2C error codes"

# --------------------------------------------------------------------------
# Microsoft Entra ID (Azure AD) AADSTS codes
# --------------------------------------------------------------------------

_AADSTS_ENTRIES: tuple[Entry, ...] = (
    # --- Authorization code redemption -------------------------------------
    Entry(
        code="AADSTS54005",
        title="The authorization code was already redeemed.",
        meaning=(
            "Entra accepts each authorization code only once. A second token "
            "request with the same code is refused, even if the first one "
            "succeeded and the user is already signed in."
        ),
        causes=(
            "the callback was requested twice (double submit, page reload, "
            "two tabs or webviews)",
            "a link scanner or prefetch opened the redirect URL first",
            "the app retries the token request with the same code",
            "two app instances or middlewares both handle the callback",
        ),
        next_step=(
            "Make sure the redirect URI is handled exactly once and each code "
            "is redeemed once; start a fresh sign-in to get a new code."
        ),
        source=_ENTRA,
    ),
    Entry(
        code="AADSTS70008",
        title="The authorization code or refresh token has expired.",
        meaning=(
            "The grant sent to the token endpoint is no longer valid: "
            "authorization codes live about 10 minutes, and refresh tokens "
            "expire after a period without use. The app needs a new "
            "interactive sign-in."
        ),
        causes=(
            "the code was redeemed minutes after the redirect (slow backend, "
            "queued job, debugger pause, user left the callback page open)",
            "the refresh token was not used for longer than its inactivity "
            "lifetime",
            "clock or cache bugs made the app use an old stored code or "
            "refresh token",
        ),
        next_step=(
            "Redeem the code as soon as the callback arrives and, for refresh "
            "tokens, fall back to an interactive sign-in on invalid_grant."
        ),
        source=_ENTRA,
    ),
    Entry(
        code="AADSTS700005",
        title="The authorization code was issued for a different tenant.",
        meaning=(
            "An authorization code must be redeemed against the same tenant "
            "(or /common, /organizations) authority it was obtained from. The "
            "token request went to another tenant's token endpoint."
        ),
        causes=(
            "/authorize used /common or /organizations but /token uses a "
            "hard-coded tenant ID (or the other way round)",
            "a multi-tenant app redeems every code against its home tenant",
            "the authority is configured differently in two places (front end "
            "and back end)",
        ),
        next_step=(
            "Compare the tenant segment of the /authorize and /token URLs in "
            "the capture and use the same authority for both."
        ),
        source=_ENTRA,
    ),
    Entry(
        code="AADSTS9002313",
        title="The request was malformed or invalid.",
        meaning=(
            "Entra could not parse the request or one of its values. The code "
            "is generic; the problem is in how the request was built, not in "
            "the user's account."
        ),
        causes=(
            "the authorization code or refresh token was truncated, altered "
            "or double URL-encoded before being sent",
            "a value that is not an Entra token was sent as refresh_token or "
            "code",
            "parameters were sent in the wrong encoding or content type",
        ),
        next_step=(
            "Look at the exact request body in the capture and check each "
            "parameter byte for byte against what Entra issued."
        ),
        source=_ENTRA,
    ),
    Entry(
        code="AADSTS900144",
        title="A required parameter is missing from the request body.",
        meaning=(
            "The token (or other) endpoint did not find a mandatory parameter; "
            "the error description names it, e.g. 'grant_type', 'code' or "
            "'client_id'."
        ),
        causes=(
            "the body was sent as JSON instead of "
            "application/x-www-form-urlencoded",
            "the parameters were put in the query string instead of the body",
            "the app or library simply omitted the named parameter",
            "a proxy or gateway dropped the request body",
        ),
        next_step=(
            "Check the Content-Type and body of the failing request in the "
            "capture and add the parameter named in the error description."
        ),
        source=_ENTRA,
    ),
    Entry(
        code="AADSTS90014",
        title="A required field is missing from the request.",
        meaning=(
            "An expected field was not present in the request or credential; "
            "the error description names the field (for example 'scope' or "
            "'client_id')."
        ),
        causes=(
            "the app or library omitted a parameter Entra requires for this "
            "flow",
            "the client is not built for Entra and sends a different set of "
            "parameters",
            "the body was not form-encoded, so Entra saw no fields",
        ),
        next_step=(
            "Read the field name in the error description and add it to the "
            "request the capture shows."
        ),
        source=_ENTRA,
    ),
    Entry(
        code="AADSTS900561",
        title="The endpoint only accepts POST requests.",
        meaning=(
            "A POST-only endpoint (typically /token) received a GET or another "
            "method. Microsoft notes this often comes from a user pressing the "
            "browser back button and can then be ignored."
        ),
        causes=(
            "the browser navigated to the token endpoint (back button, "
            "bookmark, link)",
            "the app or library sends the token request as GET",
            "the token endpoint URL was configured where the authorize URL "
            "belongs",
        ),
        next_step=(
            "Find which request hit the endpoint with the wrong method; if it "
            "was a browser navigation after a successful sign-in, it is "
            "harmless."
        ),
        source=_ENTRA,
    ),
    Entry(
        code="AADSTS90056",
        title="The authorization code must be POSTed to the /token endpoint.",
        meaning=(
            "To redeem a code the app must send a POST to the /token endpoint "
            "with the code it got from /authorize. The request did not follow "
            "that shape."
        ),
        causes=(
            "the token request went to the wrong endpoint or used the wrong "
            "method",
            "the /authorize and /token endpoint URLs are swapped or mistyped "
            "in the configuration",
        ),
        next_step=(
            "Check the endpoint URLs against App registrations > Endpoints and "
            "make sure the code is POSTed to /token."
        ),
        source=_ENTRA,
    ),
    # --- Redirect URIs ---------------------------------------------------
    Entry(
        code="AADSTS50011",
        title="The redirect URI does not match the app registration.",
        meaning=(
            "The redirect_uri in the request is not one of the reply addresses "
            "registered for this client_id. Entra compares the full URI, so "
            "any difference in scheme, host, port, path or trailing slash "
            "fails."
        ),
        causes=(
            "the app builds http:// behind a TLS-terminating proxy or load "
            "balancer while https:// is registered",
            "a trailing slash, port, path or letter case differs",
            "a new environment or host name (staging, preview, custom domain) "
            "was never registered",
            "the request uses another app's client_id",
        ),
        next_step=(
            "Copy redirect_uri from the captured /authorize request and "
            "compare it character for character with the app registration's "
            "Authentication page."
        ),
        source=_ENTRA,
    ),
    Entry(
        code="AADSTS500113",
        title="The application has no reply address registered.",
        meaning=(
            "The app registration has no redirect URI that Entra could send "
            "the response to, so the sign-in (or admin consent) cannot "
            "complete."
        ),
        causes=(
            "the app registration was created without any redirect URI",
            "the redirect URI was added under a different app registration "
            "(dev vs prod)",
            "an admin-consent link was used for an app that has no redirect "
            "URI",
        ),
        next_step=(
            "Add the app's callback URL under Authentication in the app "
            "registration used by this client_id."
        ),
        source="Entra runtime message: 'No reply address is registered for "
        "the application.'",
    ),
    Entry(
        code="AADSTS900971",
        title="No reply address was provided.",
        meaning=(
            "The request had no redirect_uri and Entra could not pick one from "
            "the registration."
        ),
        causes=(
            "the app omitted redirect_uri from the authorization request",
            "the app registration has several or no redirect URIs, so none "
            "can be assumed",
        ),
        next_step=(
            "Send redirect_uri explicitly and make sure it is registered for "
            "the client_id."
        ),
        source=_ENTRA,
    ),
    # --- PKCE ------------------------------------------------------------
    Entry(
        code="AADSTS50148",
        title="The PKCE code_verifier does not match the code_challenge.",
        meaning=(
            "The code_verifier sent with the token request does not hash to "
            "the code_challenge that was sent with the authorization request, "
            "so Entra refuses to redeem the code."
        ),
        causes=(
            "a second sign-in (other tab, double click) overwrote the stored "
            "verifier before the first callback arrived",
            "the verifier was stored in memory on one server instance and the "
            "callback reached another",
            "the challenge was computed wrongly (plain vs S256, base64 instead "
            "of base64url, padding)",
            "the token request lacks code_verifier or sends an empty or "
            "truncated one",
        ),
        next_step=(
            "Check which verifier was stored for this state value and that the "
            "same one reaches /token; keep it per sign-in attempt, not per "
            "browser."
        ),
        source=_ENTRA,
    ),
    Entry(
        code="AADSTS501481",
        title="The PKCE code_verifier does not match the code_challenge.",
        meaning=(
            "Entra could not verify the code_verifier against the "
            "code_challenge from the authorization request. A missing, "
            "replaced or differently encoded verifier fails this check."
        ),
        causes=(
            "the token request lacks code_verifier or sends an empty or "
            "truncated one",
            "a second sign-in overwrote the stored verifier (two tabs, double "
            "click, retries)",
            "the session holding the verifier was lost between /authorize and "
            "the callback (cookie dropped, different instance, restart)",
            "the library generated its own challenge and the app sends a "
            "different verifier",
        ),
        next_step=(
            "Compute base64url(SHA-256(code_verifier)) from the captured token "
            "request and compare it with the code_challenge in the captured "
            "/authorize request."
        ),
        source=_ENTRA,
    ),
    Entry(
        code="AADSTS50147",
        title="The PKCE code_challenge has an invalid size.",
        meaning=(
            "The code_challenge parameter in the authorization request is not "
            "a valid length for PKCE."
        ),
        causes=(
            "the challenge was truncated or is not a base64url SHA-256 digest",
            "the verifier was sent where the challenge belongs",
        ),
        next_step=(
            "Check the code_challenge in the captured /authorize request: for "
            "S256 it is 43 base64url characters."
        ),
        source=_ENTRA,
    ),
    # --- Client type / platform ------------------------------------------
    Entry(
        code="AADSTS9002326",
        title="Cross-origin token redemption is only allowed for SPA apps.",
        meaning=(
            "The token request came from browser JavaScript (it carried an "
            "Origin header), but the redirect URI is not registered under the "
            "'Single-page application' platform. Entra only allows browser "
            "(CORS) code redemption for that platform."
        ),
        causes=(
            "the redirect URI is registered under 'Web' while MSAL.js or "
            "other browser code redeems the code",
            "a server-side proxy forwards the browser's Origin header to the "
            "token endpoint",
        ),
        next_step=(
            "Move the redirect URI to the 'Single-page application' platform, "
            "or redeem the code on the server without an Origin header."
        ),
        source="Entra runtime message: 'Cross-origin token redemption is "
        "permitted only for the 'Single-Page Application' client-type.'",
    ),
    Entry(
        code="AADSTS9002327",
        title="SPA tokens can only be redeemed from the browser.",
        meaning=(
            "The redirect URI is registered as 'Single-page application', so "
            "Entra requires the code to be redeemed by a cross-origin browser "
            "request. This request came from a server or native client with no "
            "Origin header."
        ),
        causes=(
            "a back end redeems codes issued to an SPA redirect URI",
            "the redirect URI was registered under the SPA platform by "
            "mistake for a server-side web app",
        ),
        next_step=(
            "Either redeem the code in the browser, or register the redirect "
            "URI under 'Web' (with a client secret) for server-side "
            "redemption."
        ),
        source="Entra runtime message: 'Tokens issued for the 'Single-Page "
        "Application' client-type may only be redeemed via cross-origin "
        "requests.'",
    ),
    Entry(
        code="AADSTS700051",
        title="response_type 'token' is not enabled for the application.",
        meaning=(
            "The app asked for an access token straight from /authorize "
            "(implicit flow), but implicit issuance of access tokens is not "
            "enabled on the app registration."
        ),
        causes=(
            "an old library or config still uses the implicit flow "
            "(response_type=token)",
            "'Access tokens' under Implicit grant was switched off",
        ),
        next_step=(
            "Switch the client to authorization code with PKCE; only enable "
            "implicit access tokens if the app cannot be changed."
        ),
        source="Entra runtime message: 'response_type 'token' is not enabled "
        "for the application.'",
    ),
    Entry(
        code="AADSTS700054",
        title="response_type 'id_token' is not enabled for the application.",
        meaning=(
            "The app requested an ID token from /authorize but 'ID tokens' "
            "is not enabled under Implicit grant and hybrid flows."
        ),
        causes=(
            "the app uses the implicit or hybrid flow (response_type "
            "containing id_token, often with response_mode=form_post)",
            "'ID tokens' was unchecked in the app registration",
        ),
        next_step=(
            "Enable 'ID tokens' under Authentication in the app registration, "
            "or switch the app to the authorization code flow."
        ),
        source=_ENTRA,
    ),
    Entry(
        code="AADSTS7000218",
        title="The token request has no client secret or client assertion.",
        meaning=(
            "Entra treats this client as confidential and expects "
            "client_secret or client_assertion in the token request body, but "
            "neither was sent."
        ),
        causes=(
            "a web (confidential) app redeems the code without its secret",
            "a desktop or CLI app uses a public-client flow (device code, "
            "loopback) while 'Allow public client flows' is off",
            "the secret is sent in a header the library does not use",
        ),
        next_step=(
            "Send the client credential, or, for a public client, enable "
            "'Allow public client flows' and register the redirect URI under "
            "'Mobile and desktop applications'."
        ),
        source=_ENTRA,
    ),
    Entry(
        code="AADSTS700025",
        title="A public client sent a client secret or assertion.",
        meaning=(
            "The client is registered as public, so it must not send "
            "client_secret or client_assertion, but the token request did."
        ),
        causes=(
            "the redirect URI is under 'Mobile and desktop' or SPA while the "
            "app sends its secret",
            "the same client_id is used by a web back end and a public client",
        ),
        next_step=(
            "Either drop the secret from the request or register the redirect "
            "URI under the 'Web' platform."
        ),
        source=_ENTRA,
    ),
    # --- Client credentials ----------------------------------------------
    Entry(
        code="AADSTS7000215",
        title="The client secret is invalid.",
        meaning=(
            "The client_secret sent to the token endpoint is not a valid "
            "secret for this client_id."
        ),
        causes=(
            "the secret's ID was configured instead of its Value",
            "the secret belongs to another app registration or environment",
            "the secret was rotated and the app still has the old one",
            "special characters were not URL-encoded in the form body",
        ),
        next_step=(
            "Create a new secret in the app registration, copy its Value (not "
            "the Secret ID) into the app's configuration and retry."
        ),
        source=_ENTRA,
    ),
    Entry(
        code="AADSTS7000222",
        title="The client secret has expired.",
        meaning=(
            "The secret sent by the app is known but past its expiry date, so "
            "Entra rejects the client authentication."
        ),
        causes=(
            "nobody rotated the secret before it expired",
            "a new secret was created but not deployed to every environment",
        ),
        next_step=(
            "Create a new secret (or a certificate credential), deploy it, and "
            "set a reminder before the next expiry."
        ),
        source=_ENTRA,
    ),
    Entry(
        code="AADSTS700027",
        title="The client assertion failed signature validation.",
        meaning=(
            "The app authenticated with a signed JWT (certificate credential) "
            "and Entra could not verify the signature with any key registered "
            "for the app."
        ),
        causes=(
            "the certificate was not uploaded to this app registration",
            "the assertion is signed with another key or the x5t/kid points "
            "to a different certificate",
            "the registered certificate expired or was removed",
        ),
        next_step=(
            "Compare the thumbprint in the assertion header with the "
            "certificates listed under Certificates & secrets."
        ),
        source=_ENTRA,
    ),
    Entry(
        code="AADSTS700024",
        title="The client assertion is outside its valid time range.",
        meaning=(
            "The JWT the client used to authenticate (certificate assertion or "
            "federated workload token) is expired or not yet valid when Entra "
            "checks it."
        ),
        causes=(
            "a short-lived federated token (for example a CI/CD OIDC token) "
            "was reused after it expired",
            "the client's clock is wrong",
            "a cached assertion is replayed by a long-running job",
        ),
        next_step=(
            "Check the nbf/exp claims of the assertion against the request "
            "time and fetch a fresh assertion for each token request."
        ),
        source="Entra runtime message: 'Client assertion is not within its "
        "valid time range.'",
    ),
    # --- App and resource lookup ------------------------------------------
    Entry(
        code="AADSTS700016",
        title="The application was not found in the tenant.",
        meaning=(
            "No app with this client_id exists in the directory the request "
            "was sent to, or it is not usable there (not installed or "
            "consented in that tenant)."
        ),
        causes=(
            "client_id is mistyped or belongs to another environment",
            "the authority URL points to the wrong tenant",
            "a single-tenant app is used by users from another tenant",
            "the app registration was deleted",
        ),
        next_step=(
            "Check client_id and the tenant in the captured /authorize URL "
            "against the app registration's overview page."
        ),
        source=_ENTRA,
    ),
    Entry(
        code="AADSTS70001",
        title="The application is disabled or not available in this tenant.",
        meaning=(
            "Entra refuses to issue tokens to this client (UnauthorizedClient): "
            "the application is disabled or cannot be found in the directory."
        ),
        causes=(
            "an admin disabled the app or its service principal",
            "the client_id or tenant is wrong",
        ),
        next_step=(
            "Check the enterprise application in the tenant: it must exist and "
            "be enabled for users to sign in."
        ),
        source=_ENTRA,
    ),
    Entry(
        code="AADSTS500011",
        title="The requested resource (API) was not found in the tenant.",
        meaning=(
            "The resource (API) named by the scope or resource parameter has "
            "no service principal in the tenant, so Entra cannot issue a token "
            "for it."
        ),
        causes=(
            "the API's App ID URI in the scope is mistyped",
            "the API app was never installed or consented in this tenant",
            "the request went to the wrong tenant",
        ),
        next_step=(
            "Check the resource part of the scope against the API's App ID URI "
            "and make sure an admin has added or consented the API in this "
            "tenant."
        ),
        source=_ENTRA,
    ),
    Entry(
        code="AADSTS90009",
        title="The app requested a token for itself using a non-GUID identifier.",
        meaning=(
            "When an app asks for a token whose audience is the app itself, "
            "Entra only supports it if the resource is given as the app's "
            "GUID application ID, not its App ID URI."
        ),
        causes=(
            "the scope uses api://... or another App ID URI of the same app as "
            "client_id",
            "front end and API share one registration",
        ),
        next_step=(
            "Use the client_id GUID in the scope (for example "
            "'<client-id>/.default'), or split the client and API into "
            "separate registrations."
        ),
        source=_ENTRA,
    ),
    Entry(
        code="AADSTS90002",
        title="The tenant was not found.",
        meaning=(
            "The tenant ID or domain in the authority URL does not exist in "
            "this cloud."
        ),
        causes=(
            "the tenant ID or domain is mistyped",
            "the app targets the wrong cloud (public vs national clouds)",
            "the tenant was derived from an email domain that is not "
            "registered",
        ),
        next_step=(
            "Check the tenant segment of the /authorize URL against the "
            "tenant's overview page and the cloud's login host."
        ),
        source=_ENTRA,
    ),
    Entry(
        code="AADSTS50194",
        title="A single-tenant app was used with the /common endpoint.",
        meaning=(
            "The app is not configured as multi-tenant, so /common is not "
            "supported for it; Entra needs a tenant-specific authority."
        ),
        causes=(
            "the app uses the /common authority but is registered for 'this "
            "organization only'",
        ),
        next_step=(
            "Use https://login.microsoftonline.com/<tenant-id> as authority, "
            "or make the app multi-tenant if other tenants must sign in."
        ),
        source=_ENTRA,
    ),
    Entry(
        code="AADSTS50059",
        title="No tenant could be determined from the request.",
        meaning=(
            "Tenant-identifying information was neither in the request nor "
            "implied by the credentials, so Entra does not know which "
            "directory to use."
        ),
        causes=(
            "the request uses /common where the tenant cannot be inferred "
            "(for example app-only or some non-interactive flows)",
            "the authority URL lost its tenant segment",
        ),
        next_step=(
            "Use a tenant-specific authority (tenant ID or verified domain) "
            "for this request."
        ),
        source=_ENTRA,
    ),
    Entry(
        code="AADSTS9002331",
        title="The app only accepts personal Microsoft accounts.",
        meaning=(
            "The app registration allows Microsoft Account (consumer) users "
            "only, so requests must use the /consumers endpoint."
        ),
        causes=(
            "the app uses /common or a tenant ID with a consumer-only "
            "registration",
        ),
        next_step=(
            "Use the /consumers authority, or change the app's supported "
            "account types if work accounts must sign in."
        ),
        source="Entra runtime message: 'Application is configured for use by "
        "Microsoft Account users only. Please use the /consumers endpoint to "
        "serve this request.'",
    ),
    Entry(
        code="AADSTS500200",
        title="Personal Microsoft accounts are not supported by this app.",
        meaning=(
            "The user signed in with a personal Microsoft account (outlook.com, "
            "hotmail.com, ...) but the app only accepts work or school "
            "accounts unless the user is invited into the organization."
        ),
        causes=(
            "the user picked a personal account in the account picker",
            "the app's supported account types exclude personal accounts",
        ),
        next_step=(
            "Have the user sign in with a work or school account, invite the "
            "personal account as a guest, or change the app's supported "
            "account types."
        ),
        source="Entra runtime message: 'User account ... is a personal "
        "Microsoft account. Personal Microsoft accounts are not supported for "
        "this application unless explicitly invited to an organization.'",
    ),
    # --- Scopes and consent ----------------------------------------------
    Entry(
        code="AADSTS70011",
        title="The requested scope is invalid.",
        meaning=(
            "Entra rejected the scope parameter; the error description quotes "
            "the offending scope."
        ),
        causes=(
            "a scope name or API URI is mistyped",
            "the API does not expose that scope",
            "the scope is not in the form the v2 endpoint expects (full "
            "resource URI plus permission)",
        ),
        next_step=(
            "Compare the scope in the captured request with the scopes the API "
            "exposes under 'Expose an API'."
        ),
        source=_ENTRA,
    ),
    Entry(
        code="AADSTS700022",
        title="The scope names more than one resource.",
        meaning=(
            "A single token request can only target one resource (API), but "
            "the scope parameter contains scopes for several."
        ),
        causes=(
            "scopes for Graph and a custom API were requested in one token "
            "request",
        ),
        next_step=(
            "Request one token per API; consent for several APIs can still be "
            "gathered up front at sign-in."
        ),
        source=_ENTRA,
    ),
    Entry(
        code="AADSTS65001",
        title="The user or admin has not consented to the app.",
        meaning=(
            "No consent exists for this app to access the requested resource "
            "on behalf of the user. Entra needs an interactive request so the "
            "user (or an admin) can consent."
        ),
        causes=(
            "new scopes were added to the app but never consented",
            "a silent or back-end request (prompt=none, on-behalf-of, refresh) "
            "asked for scopes without consent",
            "user consent is disabled by tenant policy and no admin consented",
        ),
        next_step=(
            "Run an interactive sign-in with the required scopes, or have an "
            "admin grant consent for the tenant."
        ),
        source=_ENTRA,
    ),
    Entry(
        code="AADSTS65004",
        title="The user declined consent.",
        meaning=(
            "The user was shown the consent screen and refused (Cancel), so "
            "no token was issued."
        ),
        causes=(
            "the user clicked Cancel on the permissions prompt",
            "the app asks for more permissions than the user is comfortable "
            "with",
        ),
        next_step=(
            "Have the user retry and accept, or reduce the requested "
            "permissions; an admin can consent for everyone."
        ),
        source=_ENTRA,
    ),
    Entry(
        code="AADSTS90094",
        title="Administrator consent is required.",
        meaning=(
            "The requested permissions need admin consent, or the tenant does "
            "not allow users to consent, so a normal user cannot proceed."
        ),
        causes=(
            "the app asks for permissions that require admin consent",
            "tenant policy blocks user consent for this app or publisher",
        ),
        next_step=(
            "Ask a tenant admin to grant consent (Enterprise applications > "
            "Permissions) or use the admin consent workflow."
        ),
        source=_ENTRA,
    ),
    Entry(
        code="AADSTS650056",
        title="The application is misconfigured for the requested API.",
        meaning=(
            "The client has not listed permissions for the requested resource "
            "in its registration, or the admin has not consented, or the "
            "client identifier or certificate in the request is wrong."
        ),
        causes=(
            "the API permission is missing from the app registration",
            "admin consent was not granted in this tenant",
            "the client_id in the request is for another registration",
        ),
        next_step=(
            "Add the API permission to the app registration and grant admin "
            "consent, then retry."
        ),
        source=_ENTRA,
    ),
    # --- Users, MFA and policy -------------------------------------------
    Entry(
        code="AADSTS50076",
        title="Multi-factor authentication is required.",
        meaning=(
            "A Conditional Access policy, per-user MFA or a location change "
            "requires MFA for this resource, and the request did not satisfy "
            "it. A new interactive authorize request is needed."
        ),
        causes=(
            "a silent or refresh-token request hit a resource that now needs "
            "MFA",
            "an admin added or changed a Conditional Access policy",
            "the user signs in from a new location",
        ),
        next_step=(
            "Start an interactive sign-in (pass any claims challenge returned) "
            "so the user can complete MFA."
        ),
        source=_ENTRA,
    ),
    Entry(
        code="AADSTS50079",
        title="The user must register for multi-factor authentication.",
        meaning=(
            "MFA is required but the user has not registered any security "
            "info (or a federated user lacks the MFA claim from their "
            "identity provider)."
        ),
        causes=(
            "a new policy requires MFA and the user never registered a method",
            "a federated IdP does not pass the MFA claim",
        ),
        next_step=(
            "Have the user register security info interactively, or fix the "
            "federated IdP's MFA claim."
        ),
        source=_ENTRA,
    ),
    Entry(
        code="AADSTS50072",
        title="The user needs to enroll for second-factor authentication.",
        meaning=(
            "Sign-in was interrupted so the user can register an MFA method; "
            "it continues once registration is done."
        ),
        causes=("the user has no MFA method and policy requires one",),
        next_step=(
            "Let the user finish MFA registration in an interactive sign-in."
        ),
        source=_ENTRA,
    ),
    Entry(
        code="AADSTS50074",
        title="The user did not pass the MFA challenge.",
        meaning=(
            "Strong authentication was required and the user did not complete "
            "the MFA challenge."
        ),
        causes=(
            "the user dismissed or did not answer the MFA prompt",
            "the MFA method (phone, app) was unavailable",
        ),
        next_step=(
            "Have the user retry and complete MFA; check the sign-in log for "
            "the MFA result details."
        ),
        source=_ENTRA,
    ),
    Entry(
        code="AADSTS50078",
        title="The user's MFA has expired.",
        meaning=(
            "The MFA presented earlier is no longer valid under the admin's "
            "policies; the user has to do MFA again to access the resource."
        ),
        causes=("sign-in frequency or MFA lifetime policy expired",),
        next_step="Start an interactive sign-in so the user can redo MFA.",
        source=_ENTRA,
    ),
    Entry(
        code="AADSTS53003",
        title="Access was blocked by Conditional Access.",
        meaning=(
            "A Conditional Access policy applied to this sign-in and does not "
            "allow a token to be issued."
        ),
        causes=(
            "a block policy for this app, location, platform or client app",
            "the device, browser or network does not meet the policy",
        ),
        next_step=(
            "Look up the sign-in in the Entra sign-in logs by correlation ID "
            "and check the Conditional Access tab for the blocking policy."
        ),
        source=_ENTRA,
    ),
    Entry(
        code="AADSTS53000",
        title="The device is not compliant.",
        meaning=(
            "Conditional Access requires a compliant device and this device "
            "is not marked compliant."
        ),
        causes=(
            "the device is not enrolled in MDM (for example Intune)",
            "the browser does not pass the device identity (unsupported "
            "browser, private window, missing SSO extension)",
        ),
        next_step=(
            "Check the device details in the sign-in log and enroll the device "
            "or use a browser that passes device identity."
        ),
        source=_ENTRA,
    ),
    Entry(
        code="AADSTS530003",
        title="The device must be managed to access this resource.",
        meaning=(
            "Conditional Access requires a managed device and Entra could not "
            "confirm that this device is managed."
        ),
        causes=(
            "the device is not registered, joined or enrolled",
            "the sign-in runs where no device identity is available (WSL, "
            "containers, private window, unsupported browser)",
        ),
        next_step=(
            "Sign in from a managed device with a supported browser, or ask "
            "the admin which policy requires it."
        ),
        source="Entra runtime message: 'Your device is required to be managed "
        "to access this resource.'",
    ),
    Entry(
        code="AADSTS50097",
        title="Device authentication is required.",
        meaning=(
            "The sign-in needs the device to authenticate (a policy requires "
            "device identity) and none was presented."
        ),
        causes=(
            "the device is not registered or joined to Entra",
            "the browser does not send device identity (missing SSO "
            "extension, private window, unsupported browser)",
        ),
        next_step=(
            "Check the device info in the sign-in log and retry from a "
            "registered device with a supported browser."
        ),
        source=_ENTRA,
    ),
    Entry(
        code="AADSTS50105",
        title="The user is not assigned to the application.",
        meaning=(
            "The enterprise application requires user assignment and this "
            "user (or a group they belong to) is not assigned to it."
        ),
        causes=(
            "'Assignment required' is on and the user was never assigned",
            "the user's group assignment was removed",
        ),
        next_step=(
            "Assign the user or their group under Enterprise applications > "
            "Users and groups."
        ),
        source=_ENTRA,
    ),
    Entry(
        code="AADSTS50020",
        title="The user's account does not exist in the app's tenant.",
        meaning=(
            "The user signed in with an account from another identity "
            "provider or tenant that is not in the app's tenant, so they "
            "cannot access the application there."
        ),
        causes=(
            "a single-tenant app is used by someone from another organization",
            "a personal Microsoft account was used for a work app",
            "the guest invitation was never sent or redeemed",
        ),
        next_step=(
            "Invite the user as a guest, make the app multi-tenant, or have "
            "the user sign in with an account from the right tenant."
        ),
        source=_ENTRA,
    ),
    Entry(
        code="AADSTS16000",
        title="The signed-in account does not exist in the target tenant.",
        meaning=(
            "The account from the user's identity provider is not in the "
            "tenant the app signs into, so it cannot access the application; "
            "it must be added as an external user first."
        ),
        causes=(
            "the user is signed in with the wrong account",
            "a personal Microsoft account without a directory was used",
            "the user was never added as a guest",
        ),
        next_step=(
            "Sign out and sign in with the right account, or add the user to "
            "the tenant as a guest."
        ),
        source=_ENTRA,
    ),
    Entry(
        code="AADSTS90072",
        title="The external account cannot complete MFA in this tenant.",
        meaning=(
            "The account the user signed in with does not exist in the tenant "
            "they signed into, so they cannot satisfy its MFA requirement; it "
            "can also mean a synced account's ImmutableID does not match."
        ),
        causes=(
            "the user was not added as an external user",
            "the user chose the wrong account",
            "on-premises and Entra sourceAnchor/ImmutableID mismatch",
        ),
        next_step=(
            "Add the account as a guest or sign in with an account from this "
            "tenant."
        ),
        source=_ENTRA,
    ),
    Entry(
        code="AADSTS50034",
        title="The user account does not exist in the directory.",
        meaning=(
            "Entra could not find the username in the tenant being signed "
            "into."
        ),
        causes=(
            "the username is mistyped",
            "the app signs into the wrong tenant",
            "the user was never created or invited",
        ),
        next_step=(
            "Check the username and the tenant in the /authorize URL, and add "
            "the user (or invite them) if they should have access."
        ),
        source=_ENTRA,
    ),
    Entry(
        code="AADSTS50126",
        title="The username or password is wrong.",
        meaning="Entra could not validate the user's credentials.",
        causes=(
            "the user typed a wrong password",
            "a script or legacy flow uses stale credentials",
        ),
        next_step=(
            "Have the user retry or reset the password; expect some of these "
            "in normal logs."
        ),
        source=_ENTRA,
    ),
    Entry(
        code="AADSTS50053",
        title="The account is locked or the sign-in was blocked.",
        meaning=(
            "Either the account was locked after too many failed sign-ins, or "
            "the sign-in came from an IP address with malicious activity."
        ),
        causes=(
            "repeated wrong passwords (user or an attacker)",
            "an old device or script retrying with a stale password",
            "the source IP is flagged",
        ),
        next_step=(
            "Find the sign-in with error 50053 in the sign-in logs and read "
            "the Failure reason to tell the two cases apart."
        ),
        source=_ENTRA,
    ),
    Entry(
        code="AADSTS50055",
        title="The user's password has expired.",
        meaning=(
            "The password is expired, so the sign-in or session was ended; "
            "the user must reset it."
        ),
        causes=("password expiration policy",),
        next_step="Have the user reset the password (or an admin reset it).",
        source=_ENTRA,
    ),
    Entry(
        code="AADSTS50057",
        title="The user account is disabled.",
        meaning="The account exists but is disabled, so it cannot sign in.",
        causes=(
            "an admin disabled the account",
            "the on-premises account backing it was disabled and synced",
        ),
        next_step="Ask an admin to re-enable the account if access is intended.",
        source=_ENTRA,
    ),
    # --- Sessions and tokens ---------------------------------------------
    Entry(
        code="AADSTS50058",
        title="No signed-in session was found for single sign-on.",
        meaning=(
            "A silent request (prompt=none, hidden iframe, SSO) found no "
            "usable Entra session, so the user is not signed in from Entra's "
            "point of view. This is expected for new users and is not an "
            "error by itself."
        ),
        causes=(
            "the user has not signed in yet in this browser",
            "third-party cookies are blocked, so the hidden iframe does not "
            "see the Entra session cookies",
            "the session expired or the user signed out",
        ),
        next_step=(
            "Fall back to an interactive sign-in; if it happens right after a "
            "successful sign-in, check whether the silent request runs in a "
            "third-party context."
        ),
        source=_ENTRA,
    ),
    Entry(
        code="AADSTS50173",
        title="The grant was revoked; a fresh sign-in is needed.",
        meaning=(
            "The refresh token or session was issued before the user's "
            "'tokens valid from' time, typically because the password was "
            "changed or reset or an admin revoked sessions."
        ),
        causes=(
            "the user changed or reset their password",
            "an admin or the user revoked sign-in sessions",
        ),
        next_step=(
            "Have the user sign in again interactively; make the app treat "
            "invalid_grant on refresh as 'sign in again'."
        ),
        source=_ENTRA,
    ),
    Entry(
        code="AADSTS70000",
        title="The grant is invalid.",
        meaning=(
            "Entra rejected the authorization code or refresh token presented "
            "(InvalidGrant); the error description gives the specific reason."
        ),
        causes=(
            "the refresh token is not valid for this client or request",
            "token binding information is missing or does not match",
        ),
        next_step=(
            "Read the error description for the exact reason and start a new "
            "interactive sign-in to obtain a fresh grant."
        ),
        source=_ENTRA,
    ),
    Entry(
        code="AADSTS700082",
        title="The refresh token expired due to inactivity.",
        meaning=(
            "The refresh token was not used for longer than its inactivity "
            "lifetime and has expired; this is a normal part of the token "
            "lifecycle."
        ),
        causes=("the user did not use the app for a long time",),
        next_step="Send the user through an interactive sign-in again.",
        source=_ENTRA,
    ),
    Entry(
        code="AADSTS700084",
        title="The SPA refresh token reached its fixed lifetime.",
        meaning=(
            "Refresh tokens issued to single-page apps have a fixed, "
            "non-extendable lifetime; this one is expired and the SPA must "
            "send a new sign-in request."
        ),
        causes=(
            "the SPA session outlived the refresh token's fixed lifetime",
        ),
        next_step=(
            "Let the SPA start a new (ideally silent, then interactive) "
            "sign-in when this occurs."
        ),
        source=_ENTRA,
    ),
    Entry(
        code="AADSTS70043",
        title="The refresh token is expired under the sign-in frequency policy.",
        meaning=(
            "Conditional Access sign-in frequency limits how long the session "
            "is valid; the refresh token is older than allowed."
        ),
        causes=("a Conditional Access sign-in frequency policy applies",),
        next_step="Send the user through an interactive sign-in.",
        source=_ENTRA,
    ),
    Entry(
        code="AADSTS50089",
        title="The sign-in flow token expired.",
        meaning=(
            "The sign-in took too long and its internal flow token expired "
            "before the user finished."
        ),
        causes=(
            "the sign-in page was left open before the user continued",
            "an MFA prompt was answered too late",
        ),
        next_step="Start the sign-in again and complete it without long pauses.",
        source=_ENTRA,
    ),
    Entry(
        code="AADSTS50196",
        title="Entra detected a request loop.",
        meaning=(
            "The client sent too many identical requests in a short time; "
            "Entra stops it to break the loop. The app is stuck in a faulty "
            "state."
        ),
        causes=(
            "a redirect loop: the app does not recognize the session after "
            "the callback and starts sign-in again (session cookie dropped by "
            "SameSite, cookie too large, http/https mismatch)",
            "the app requests a new token for every call instead of caching",
            "error handling retries sign-in endlessly",
        ),
        next_step=(
            "Find in the capture why the app sends the user back to /authorize "
            "after the callback (look at Set-Cookie on the callback response)."
        ),
        source=_ENTRA,
    ),
    Entry(
        code="AADSTS50140",
        title="The 'Keep me signed in?' prompt interrupted sign-in.",
        meaning=(
            "This is an expected interrupt shown to the user, not a failure; "
            "it appears in sign-in logs as a failed step."
        ),
        causes=("the user was asked whether to stay signed in",),
        next_step=(
            "Ignore it unless the flow stops at this point; then look at the "
            "next request the browser sent."
        ),
        source=_ENTRA,
    ),
    Entry(
        code="AADSTS50199",
        title="Entra asked the user to confirm the app (security prompt).",
        meaning=(
            "An interrupt asks the user to confirm this is the app they meant "
            "to sign in to; it is shown for custom-scheme redirects in mobile "
            "browsers or webviews. No action is required."
        ),
        causes=(
            "a native app uses a redirect URI outside http://, https:// (or "
            "chrome-extension:// on desktop Chrome)",
        ),
        next_step=(
            "Nothing if the user continues; to avoid the prompt use a "
            "redirect URI on the safe list."
        ),
        source=_ENTRA,
    ),
    Entry(
        code="AADSTS165000",
        title="The sign-in request was missing or mismatched its session tokens.",
        meaning=(
            "Entra's cross-site request forgery protection found that the "
            "cookies, form fields or headers that tie the steps of one "
            "sign-in together were missing, did not match, or were invalid."
        ),
        causes=(
            "cookies for login.microsoftonline.com were blocked, cleared or "
            "stripped by a proxy mid-flow",
            "a script or automation posts to the sign-in pages directly",
            "parts of the sign-in were replayed or copied from another "
            "session or browser",
        ),
        next_step=(
            "Check in the capture that the Entra cookies set on earlier "
            "sign-in pages are sent back on the failing request; let Entra's "
            "own pages drive the whole flow."
        ),
        source="Entra runtime message: 'Invalid Request: The request did not "
        "include the required tokens for the user context.'",
    ),
    Entry(
        code="AADSTS240002",
        title="An ID token was used where an access token is required.",
        meaning=(
            "The id_token can't be used as a "
            "urn:ietf:params:oauth:grant-type:jwt-bearer grant (for example "
            "in the on-behalf-of flow)."
        ),
        causes=(
            "the API passed the user's ID token as the OBO assertion",
            "the front end sends its ID token to the API instead of an access "
            "token for the API",
        ),
        next_step=(
            "Have the client request an access token for the API and use that "
            "token as the on-behalf-of assertion."
        ),
        source=_ENTRA,
    ),
    # --- Federation and service ------------------------------------------
    Entry(
        code="AADSTS50107",
        title="The requested federation realm does not exist.",
        meaning=(
            "The federation realm (issuer) in the request does not match any "
            "configured federation, so Entra cannot match it to an "
            "authentication endpoint."
        ),
        causes=(
            "the federated IdP (AD FS, third-party IdP) sends an issuer that "
            "differs from the one configured for the domain",
            "the login request is malformed",
        ),
        next_step=(
            "Compare the issuer in the IdP's response with the federation "
            "settings of the domain in Entra."
        ),
        source=_ENTRA,
    ),
    Entry(
        code="AADSTS500021",
        title="Access to the tenant is denied by tenant restrictions.",
        meaning=(
            "The network uses tenant restrictions and the tenant being signed "
            "into is not on the allowed list in the Restrict-Access-To-Tenant "
            "header."
        ),
        causes=(
            "a corporate proxy injects tenant restriction headers",
        ),
        next_step=(
            "Check for a Restrict-Access-To-Tenant header in the capture and "
            "ask the network admins to allow the tenant."
        ),
        source=_ENTRA,
    ),
    Entry(
        code="AADSTS50000",
        title="Entra had an error issuing the token.",
        meaning=(
            "The sign-in service itself hit a problem (TokenIssuanceError); "
            "it is not caused by the request format."
        ),
        causes=("a problem in the Entra sign-in service",),
        next_step=(
            "Retry; if it persists, open a Microsoft support ticket with the "
            "correlation ID, trace ID and timestamp from the response."
        ),
        source=_ENTRA,
    ),
    # --- Azure AD B2C: AADB2C codes, named in error_description ("AADB2C90118: ...") -----
    Entry(
        code="AADB2C90118",
        title="The user chose 'Forgot your password?'.",
        meaning=(
            "A signal for the app, not a fault of the provider: B2C ends the "
            "sign-in user flow with this code when the user clicks 'Forgot "
            "your password?', and the app must start the password-reset user "
            "flow (or use a combined flow)."
        ),
        causes=(
            "the user clicked 'Forgot your password?' on the sign-in page",
        ),
        next_step=(
            "Handle AADB2C90118 in the app: redirect to the password-reset "
            "policy instead of showing an error."
        ),
        source=_B2C,
        signal=True,
    ),
    Entry(
        code="AADB2C90091",
        title="The user cancelled the B2C page.",
        meaning=(
            "A signal for the app, not a fault of the provider: the user "
            "clicked Cancel on a B2C page (sign-up, profile edit, password "
            "reset), and B2C returns access_denied with this code."
        ),
        causes=("the user clicked Cancel",),
        next_step=(
            "Handle AADB2C90091 in the app: return the user to where they were,"
            " without an error page."
        ),
        source=_B2C,
        signal=True,
    ),
    Entry(
        code="AADB2C90006",
        title=(
            "The redirect URI is not registered for the B2C application."
        ),
        meaning=(
            "The redirect_uri of the request is not one of the application's "
            "registered reply URLs."
        ),
        causes=(
            "the reply URL differs (scheme, host, port, path) from the "
            "registration",
        ),
        next_step=(
            "Register the exact redirect URI the app sends in the B2C app "
            "registration."
        ),
        source=_B2C,
    ),
    Entry(
        code="AADB2C90077",
        title="No B2C session for a silent request.",
        meaning=(
            "The request used prompt=none but the user has no session at B2C, "
            "so no token can be issued silently."
        ),
        causes=(
            "the B2C session expired or the user signed out",
            "third-party cookies are blocked, so a hidden iframe cannot see "
            "the B2C session",
        ),
        next_step="Fall back to an interactive sign-in.",
        source=_B2C,
    ),
    Entry(
        code="AADB2C90080",
        title="The grant has expired.",
        meaning=(
            "The authorization code or refresh token presented to B2C has "
            "expired."
        ),
        causes=(
            "the refresh token passed its lifetime or the code was redeemed"
            " too late",
        ),
        next_step=(
            "Sign the user in interactively to get a new grant."
        ),
        source=_B2C,
    ),
    # --- Entra ID as a SAML identity provider: its SAML endpoint's errors (page or StatusMessage) ----
    Entry(
        code="AADSTS75005",
        title="Entra does not accept the SAML request the app sent.",
        meaning=(
            "Saml2MessageInvalid: the request is not a valid SAML 2.0 "
            "protocol message, or uses something Entra does not support for "
            "single sign-on."
        ),
        causes=(
            "the AuthnRequest is malformed, not deflated and base64-encoded "
            "as the HTTP-Redirect binding requires, or truncated",
            "the app sends a message other than an AuthnRequest to the SSO URL",
        ),
        next_step=(
            "Decode the captured SAMLRequest (the SAML card of the authorize hop) "
            "and compare it with Entra's SAML protocol reference."
        ),
        source=_ENTRA,
    ),
    Entry(
        code="AADSTS75008",
        title="Entra denied the SAML request because of an unexpected Destination.",
        meaning=(
            "RequestDeniedError: the AuthnRequest's Destination is not the "
            "Entra SAML endpoint the request was sent to."
        ),
        causes=(
            "the app's identity provider URL (SSO URL) points to another "
            "tenant or an old endpoint",
            "the Destination attribute is built from a different URL than the "
            "one the browser is sent to",
        ),
        next_step=(
            "Make the AuthnRequest's Destination the exact Login URL shown in the "
            "enterprise app's Single sign-on page."
        ),
        source=_ENTRA,
    ),
    Entry(
        code="AADSTS75011",
        title="The way the user signed in does not match the requested authentication context.",
        meaning=(
            "NoMatchedAuthnContextInOutputClaims: the authentication method "
            "by which the user authenticated does not match the "
            "RequestedAuthnContext of the AuthnRequest."
        ),
        causes=(
            "the app requires e.g. PasswordProtectedTransport with "
            "Comparison=exact while the user signed in another way (Windows "
            "integrated, passwordless, a federated IdP)",
        ),
        next_step=(
            "Remove RequestedAuthnContext from the app's AuthnRequest, or use "
            "Comparison=minimum, or ForceAuthn=true."
        ),
        source=_ENTRA,
    ),
    Entry(
        code="AADSTS75016",
        title="The SAML request's NameIDPolicy is not valid for Entra.",
        meaning=(
            "Saml2AuthenticationRequestInvalidNameIDPolicy: Entra cannot give "
            "the NameID format the AuthnRequest's NameIDPolicy asks for."
        ),
        causes=("the app asks for a NameID format Entra does not support for it",),
        next_step=(
            "Send a supported NameIDPolicy Format (or none) and configure the "
            "NameID claim in the enterprise app."
        ),
        source=_ENTRA,
    ),
    Entry(
        code="AADSTS750054",
        title="The SAML redirect binding request carries no SAMLRequest or SAMLResponse.",
        meaning=(
            "SAMLRequest or SAMLResponse must be present as query string "
            "parameters in the HTTP request for the SAML Redirect binding."
        ),
        causes=(
            "the app opened Entra's SAML endpoint without a SAMLRequest "
            "(a bookmark, a link, a browser refresh)",
            "the parameter was lost or renamed on the way (a proxy, a URL "
            "length limit)",
        ),
        next_step=(
            "Start the sign-in from the app so it sends a SAMLRequest, and check "
            "the app's identity provider URL."
        ),
        source=_ENTRA,
    ),
    Entry(
        code="AADSTS7500514",
        title="Entra found no supported SAML response type.",
        meaning=(
            "A supported type of SAML response was not found: Entra expects a "
            "Response (protocol namespace) or an Assertion (assertion "
            "namespace) from the federated identity provider."
        ),
        causes=("the federated identity provider posts another message, or one with the wrong namespace",),
        next_step=(
            "Decode the posted SAMLResponse (its SAML card) and check the federated "
            "identity provider's configuration."
        ),
        source=_ENTRA,
    ),
    Entry(
        code="AADSTS7500529",
        title="The SAML request's ID is not valid for Entra.",
        meaning=(
            "The AuthnRequest's ID is not a valid SAML ID (an xs:ID must not "
            "begin with a digit, and must not be a bare GUID): Entra uses it "
            "for the InResponseTo of its Response."
        ),
        causes=("the app generates request IDs that start with a digit (e.g. a bare GUID)",),
        next_step="Prefix the AuthnRequest ID with a letter or underscore (e.g. '_' + GUID).",
        source=_ENTRA,
    ),
)

AADSTS: dict[int, Entry] = {
    int(entry.code.removeprefix("AADSTS")): entry for entry in _AADSTS_ENTRIES if entry.code.startswith("AADSTS")
}
B2C: dict[int, Entry] = {
    int(entry.code.removeprefix("AADB2C")): entry for entry in _AADSTS_ENTRIES if entry.code.startswith("AADB2C")
}

# --------------------------------------------------------------------------
# Standard OAuth 2.0 / OpenID Connect `error` values
# --------------------------------------------------------------------------

_RFC6749_AUTHZ = "RFC 6749 §4.1.2.1 / §4.2.2.1"
_RFC6749_TOKEN = "RFC 6749 §5.2"
_OIDC = "OpenID Connect Core 1.0 §3.1.2.6"
_RFC8628 = "RFC 8628 §3.5"
_RFC7591 = "RFC 7591 §3.2.2"

_OAUTH_ENTRIES: tuple[Entry, ...] = (
    Entry(
        code="invalid_request",
        title="The request is missing a parameter or is malformed.",
        meaning=(
            "A required parameter is missing, a value is invalid, a parameter "
            "is repeated, or the request is otherwise malformed. Returned by "
            "the authorization, token, PAR and resource endpoints alike."
        ),
        causes=(
            "a required parameter (redirect_uri, code_challenge, client_id, "
            "...) is missing",
            "a parameter appears twice or has an invalid value",
            "the body is not application/x-www-form-urlencoded",
        ),
        next_step=(
            "Read error_description and compare the failing request's "
            "parameters with what the endpoint requires."
        ),
        source=f"{_RFC6749_AUTHZ}, {_RFC6749_TOKEN}, RFC 6750 §3.1",
    ),
    Entry(
        code="unauthorized_client",
        title="The client is not allowed to use this flow.",
        meaning=(
            "The client is not authorized to request an authorization code "
            "this way, or to use this grant type."
        ),
        causes=(
            "the grant type or response type is not enabled for the client",
            "the client is registered as a different kind of app (public vs "
            "confidential)",
        ),
        next_step=(
            "Check which grant and response types are enabled for this client "
            "at the identity provider."
        ),
        source=f"{_RFC6749_AUTHZ}, {_RFC6749_TOKEN}",
    ),
    Entry(
        code="access_denied",
        title="The user or the server denied the request.",
        meaning=(
            "The resource owner or authorization server refused the request; "
            "in the device flow it means the user denied the authorization."
        ),
        causes=(
            "the user clicked Cancel or No on the login or consent screen",
            "a policy at the identity provider blocked the user or app",
        ),
        next_step=(
            "Check error_description and the provider's sign-in logs to tell "
            "a user refusal from a policy block."
        ),
        source=f"{_RFC6749_AUTHZ}, {_RFC8628}",
    ),
    Entry(
        code="unsupported_response_type",
        title="The server does not support the requested response_type.",
        meaning=(
            "The authorization server does not support obtaining an "
            "authorization code or token with this response_type."
        ),
        causes=(
            "the app asks for an implicit or hybrid response type that is "
            "disabled",
            "the response_type value is mistyped",
        ),
        next_step=(
            "Use response_type=code (with PKCE) or enable the response type "
            "for the client."
        ),
        source=_RFC6749_AUTHZ,
    ),
    Entry(
        code="invalid_scope",
        title="The requested scope is invalid.",
        meaning=(
            "The requested scope is invalid, unknown, malformed, or exceeds "
            "what the resource owner granted."
        ),
        causes=(
            "a scope name is mistyped or not defined at the provider",
            "a refresh request asks for more scopes than originally granted",
            "the client is not allowed to request that scope",
        ),
        next_step=(
            "Compare the scope parameter with the scopes configured for the "
            "client and API."
        ),
        source=f"{_RFC6749_AUTHZ}, {_RFC6749_TOKEN}",
    ),
    Entry(
        code="server_error",
        title="The authorization server hit an unexpected error.",
        meaning=(
            "The server encountered an unexpected condition. It is sent as an "
            "error code because a 500 status cannot be delivered through a "
            "redirect."
        ),
        causes=(
            "a bug or outage at the identity provider",
            "a misconfigured upstream (federated IdP, custom extension) "
            "failed",
        ),
        next_step=(
            "Retry once; if it repeats, collect the provider's request or "
            "correlation ID and check its logs or status page."
        ),
        source=_RFC6749_AUTHZ,
    ),
    Entry(
        code="temporarily_unavailable",
        title="The authorization server is temporarily unavailable.",
        meaning=(
            "The server is overloaded or under maintenance. It is sent as an "
            "error code because a 503 status cannot be delivered through a "
            "redirect."
        ),
        causes=("load or maintenance at the identity provider",),
        next_step="Retry after a short delay and check the provider's status page.",
        source=_RFC6749_AUTHZ,
    ),
    Entry(
        code="invalid_client",
        title="Client authentication failed.",
        meaning=(
            "The token endpoint could not authenticate the client: unknown "
            "client, no client authentication included, or an unsupported "
            "authentication method."
        ),
        causes=(
            "wrong or expired client secret, or the secret's ID used instead "
            "of its value",
            "the secret is sent in the body while the server expects HTTP "
            "Basic (or the reverse)",
            "client_id is wrong for this environment",
        ),
        next_step=(
            "Check the client_id, the credential and the token endpoint "
            "authentication method configured for the client."
        ),
        source=_RFC6749_TOKEN,
    ),
    Entry(
        code="invalid_grant",
        title="The authorization code or refresh token was rejected.",
        meaning=(
            "The grant (authorization code, refresh token, device code, "
            "credentials) is invalid, expired, revoked, was issued to another "
            "client, or does not match the redirect URI used in the "
            "authorization request."
        ),
        causes=(
            "the code was already used or has expired",
            "redirect_uri in the token request differs from the one in the "
            "authorization request",
            "PKCE code_verifier does not match the code_challenge",
            "the refresh token was revoked or expired",
        ),
        next_step=(
            "Read error_description for the exact reason (provider codes such "
            "as AADSTS are listed separately) and start a fresh sign-in."
        ),
        source=_RFC6749_TOKEN,
    ),
    Entry(
        code="unsupported_grant_type",
        title="The server does not support this grant type.",
        meaning=(
            "The authorization server does not support the grant_type sent to "
            "the token endpoint."
        ),
        causes=(
            "grant_type is mistyped or missing",
            "the grant (for example password or device code) is disabled at "
            "the provider",
        ),
        next_step=(
            "Check the grant_type value in the token request and the grants "
            "the provider advertises in its metadata."
        ),
        source=_RFC6749_TOKEN,
    ),
    Entry(
        code="invalid_token",
        title="The access token is invalid.",
        meaning=(
            "The resource server rejected the access token because it is "
            "expired, revoked, malformed or invalid for other reasons "
            "(HTTP 401)."
        ),
        causes=(
            "the access token expired and was not refreshed",
            "the token was issued for another audience or by another issuer",
            "the token was truncated or altered in transit",
        ),
        next_step=(
            "Decode the token from the failing request and check exp, aud and "
            "iss against what the API expects."
        ),
        source="RFC 6750 §3.1",
    ),
    Entry(
        code="insufficient_scope",
        title="The access token lacks the required scope.",
        meaning=(
            "The request needs higher privileges than the access token "
            "provides (HTTP 403); the WWW-Authenticate header may name the "
            "scope needed."
        ),
        causes=(
            "the client did not request the scope the API needs",
            "consent for that scope was not granted",
        ),
        next_step=(
            "Compare the token's scope/scp claim with the scope in the API's "
            "WWW-Authenticate header and request it."
        ),
        source="RFC 6750 §3.1",
    ),
    Entry(
        code="interaction_required",
        title="The user must interact with the sign-in page.",
        meaning=(
            "The provider needs some user interaction (login, consent, MFA, "
            "account choice) and the request used prompt=none, so it could "
            "not show any UI."
        ),
        causes=(
            "a silent renewal hit a new MFA, consent or policy requirement",
        ),
        next_step="Retry the same request interactively (without prompt=none).",
        source=_OIDC,
        interactive=(
            "The provider ended an interactive sign-in with interaction_required: the request did not"
            " use prompt=none, so a page could have been shown; a policy (MFA, device compliance, "
            "terms of use) refused to continue, or the user left a required step."
        ),
    ),
    Entry(
        code="login_required",
        title="The user is not signed in at the provider.",
        meaning=(
            "The provider requires the user to authenticate and the request "
            "used prompt=none, so no login page could be shown."
        ),
        causes=(
            "the provider session expired or the user signed out",
            "third-party cookies are blocked, so a hidden iframe cannot see "
            "the provider session",
        ),
        next_step=(
            "Fall back to an interactive sign-in; check whether silent renewal "
            "runs in a third-party context."
        ),
        source=_OIDC,
        interactive=(
            "The provider ended an interactive sign-in with login_required although the request did "
            "not use prompt=none: the user declined or abandoned the login, or a policy refused it."
        ),
    ),
    Entry(
        code="account_selection_required",
        title="The user must choose an account.",
        meaning=(
            "Several sessions exist at the provider and the user must pick "
            "one, which is impossible with prompt=none."
        ),
        causes=(
            "the user is signed in with more than one account and no "
            "login_hint was sent",
        ),
        next_step=(
            "Send login_hint (or id_token_hint) with silent requests, or retry "
            "interactively."
        ),
        source=_OIDC,
        interactive=(
            "The provider ended an interactive sign-in with account_selection_required although the "
            "request did not use prompt=none: no account was chosen."
        ),
    ),
    Entry(
        code="consent_required",
        title="The user must consent.",
        meaning=(
            "The provider needs user consent for the requested scopes and the "
            "request used prompt=none, so it could not ask."
        ),
        causes=(
            "the app added scopes the user never consented to",
            "consent was revoked",
        ),
        next_step="Retry interactively so the user can consent.",
        source=_OIDC,
        interactive=(
            "The provider ended an interactive sign-in with consent_required although the request did"
            " not use prompt=none: the user declined consent, or a policy does not let this user "
            "consent to the app."
        ),
    ),
    Entry(
        code="invalid_request_uri",
        title="The request_uri could not be used.",
        meaning=(
            "The request_uri in the authorization request returns an error or "
            "contains invalid data; for pushed authorization requests (PAR) "
            "it is usually expired or already used."
        ),
        causes=(
            "the PAR request_uri expired (its expires_in is short) before the "
            "browser reached /authorize",
            "the PAR request_uri was used twice (page reload, retry)",
            "the request_uri is not reachable by the provider or returns bad "
            "data",
        ),
        next_step=(
            "Push a new authorization request and send the browser to "
            "/authorize immediately, using each request_uri once."
        ),
        source=f"{_OIDC}, RFC 9101, RFC 9126",
    ),
    Entry(
        code="invalid_request_object",
        title="The request object is invalid.",
        meaning=(
            "The signed (or encrypted) request object passed in the request "
            "or request_uri parameter is invalid."
        ),
        causes=(
            "the request object signature does not verify with the client's "
            "registered keys",
            "required claims (aud, iss, exp) are missing or wrong",
            "the request object expired",
        ),
        next_step=(
            "Decode the request object and check its signature key, aud, iss "
            "and exp against the provider's rules."
        ),
        source=f"{_OIDC}, RFC 9101",
    ),
    Entry(
        code="request_not_supported",
        title="The provider does not support the request parameter.",
        meaning="The provider does not accept request objects by value.",
        causes=("the client sends a 'request' parameter to a provider without "
                "request object support",),
        next_step=(
            "Send the parameters directly, or check request_parameter_"
            "supported in the provider metadata."
        ),
        source=_OIDC,
    ),
    Entry(
        code="request_uri_not_supported",
        title="The provider does not support request_uri.",
        meaning="The provider does not accept request objects by reference.",
        causes=("the client sends request_uri to a provider that does not "
                "support it",),
        next_step=(
            "Check request_uri_parameter_supported (and PAR support) in the "
            "provider metadata."
        ),
        source=_OIDC,
    ),
    Entry(
        code="registration_not_supported",
        title="The provider does not support the registration parameter.",
        meaning=(
            "The client sent the 'registration' parameter, which this "
            "provider does not support."
        ),
        causes=("the client library sends registration metadata in the "
                "authorization request",),
        next_step="Remove the registration parameter from the request.",
        source=_OIDC,
    ),
    Entry(
        code="authorization_pending",
        title="The user has not finished the device sign-in yet.",
        meaning=(
            "Device flow: the user has not yet completed the sign-in on the "
            "other device. This is normal; the client keeps polling."
        ),
        causes=("the user is still entering the code or signing in",),
        next_step=(
            "Keep polling at the given interval until success, "
            "access_denied or expired_token."
        ),
        source=_RFC8628,
    ),
    Entry(
        code="slow_down",
        title="The client is polling too fast.",
        meaning=(
            "Device flow: authorization is still pending and the client must "
            "increase its polling interval by 5 seconds for this and all "
            "later requests."
        ),
        causes=("the client ignores or shortens the interval from the device "
                "authorization response",),
        next_step="Add 5 seconds to the polling interval and keep polling.",
        source=_RFC8628,
    ),
    Entry(
        code="expired_token",
        title="The device code has expired.",
        meaning=(
            "Device flow: the device_code expired before the user completed "
            "the sign-in; the client must start a new device authorization."
        ),
        causes=(
            "the user did not finish within expires_in",
            "the client kept polling with an old device_code",
        ),
        next_step="Start a new device authorization request and show the new code.",
        source=_RFC8628,
    ),
    Entry(
        code="invalid_target",
        title="The requested resource is invalid.",
        meaning=(
            "The resource parameter (resource indicator) is invalid, missing, "
            "unknown or malformed, or the server will not issue a token for "
            "it."
        ),
        causes=(
            "the resource URI does not match any API registered at the "
            "provider",
            "the resource value is not an absolute URI or contains a fragment",
        ),
        next_step=(
            "Compare the resource parameter with the API identifiers "
            "configured at the provider."
        ),
        source="RFC 8707 §2",
    ),
    Entry(
        code="invalid_dpop_proof",
        title="The DPoP proof is invalid.",
        meaning=(
            "The DPoP proof JWT in the DPoP header failed validation at the "
            "token endpoint or resource server."
        ),
        causes=(
            "htm or htu in the proof does not match the request's method and "
            "URL",
            "the proof's iat is too old or in the future (clock skew)",
            "the proof's jti was reused, or ath does not match the access "
            "token",
            "the signing key differs from the key the token is bound to",
        ),
        next_step=(
            "Decode the DPoP header of the failing request and check htm, htu, "
            "iat, jti and ath against the request."
        ),
        source="RFC 9449 §5, §7.1",
    ),
    Entry(
        code="use_dpop_nonce",
        title="The server requires a DPoP nonce.",
        meaning=(
            "The server wants a server-provided nonce in the DPoP proof; the "
            "response carries it in the DPoP-Nonce header and the client must "
            "retry with it. One such round trip is normal."
        ),
        causes=(
            "the first request of a session had no nonce",
            "the nonce used has expired and the server issued a new one",
            "the client ignores the DPoP-Nonce header and never retries",
        ),
        next_step=(
            "Check that the client retries with the DPoP-Nonce value from the "
            "error response; repeated failures mean it does not."
        ),
        source="RFC 9449 §8, §9",
    ),
    Entry(
        code="unsupported_token_type",
        title="The server cannot revoke this type of token.",
        meaning=(
            "The revocation endpoint does not support revoking the presented "
            "token type."
        ),
        causes=("the client asks to revoke an access token where only refresh "
                "tokens can be revoked",),
        next_step="Check which token types the provider's revocation endpoint supports.",
        source="RFC 7009 §2.2.1",
    ),
    Entry(
        code="invalid_authorization_details",
        title="The authorization_details parameter is invalid.",
        meaning=(
            "The rich authorization request (authorization_details) contains "
            "an unknown type, missing fields, or values the client may not "
            "request."
        ),
        causes=(
            "the authorization_details JSON is malformed or uses an "
            "unsupported type",
        ),
        next_step=(
            "Validate authorization_details against the types the provider "
            "lists in authorization_details_types_supported."
        ),
        source="RFC 9396 §5",
    ),
    Entry(
        code="invalid_resource",
        title="The target resource is invalid (Microsoft Entra).",
        meaning=(
            "Non-standard Microsoft Entra value: the target resource does not "
            "exist, cannot be found, or is not configured in the tenant."
        ),
        causes=(
            "a typo in the resource or scope name",
            "the resource is not set up in the user's tenant",
        ),
        next_step=(
            "Check the resource/scope in the request and that the API exists "
            "in the tenant."
        ),
        source=_ENTRA,
    ),
    Entry(
        code="invalid_redirect_uri",
        title="A redirect URI is not allowed.",
        meaning=(
            "The provider refuses a redirect URI: at dynamic client "
            "registration one of the redirect_uris is invalid or not allowed "
            "by its policy; on Keycloak's error page ('Invalid parameter: "
            "redirect_uri') the authorize request's redirect_uri is not one "
            "of the client's valid redirect URIs."
        ),
        causes=(
            "the redirect URI is not registered for the client (exact match: "
            "scheme, host, port, path, trailing slash)",
            "a registration policy forbids the scheme or host (http, "
            "localhost, custom schemes)",
        ),
        next_step=(
            "Register the exact redirect URI the app sends, or send the "
            "registered one."
        ),
        source=f"{_RFC7591}; Keycloak Errors.INVALID_REDIRECT_URI",
    ),
    Entry(
        code="invalid_client_metadata",
        title=(
            "The client registration carries invalid metadata."
        ),
        meaning=(
            "Dynamic client registration refused one of the metadata fields "
            "(grant_types, response_types, token_endpoint_auth_method, scope, "
            "...) or a combination of them."
        ),
        causes=(
            "a grant or auth method the provider does not support for "
            "registered clients (e.g. a public client with client_secret_basic)",
            "a field of the wrong type or an unknown value",
        ),
        next_step=(
            "Compare the registration request with the provider's *_supported metadata and fix the "
            "field named in error_description."
        ),
        source=_RFC7591,
    ),
    Entry(
        code="invalid_software_statement",
        title="The software statement is invalid.",
        meaning=(
            "Dynamic client registration refused the software_statement JWT "
            "(signature, issuer or content)."
        ),
        causes=(
            "the statement is expired, signed by an untrusted key, or "
            "malformed",
        ),
        next_step=(
            "Obtain a fresh software statement from its issuer."
        ),
        source=_RFC7591,
    ),
    Entry(
        code="unapproved_software_statement",
        title="The software statement is not approved.",
        meaning=(
            "Dynamic client registration does not accept software statements "
            "from this issuer."
        ),
        causes=(
            "the provider only accepts statements of approved publishers",
        ),
        next_step=(
            "Ask the provider's administrator which software statements it "
            "accepts."
        ),
        source=_RFC7591,
    ),
    Entry(
        code="redirect_uri_mismatch",
        title=(
            "The redirect URI is not registered for the client."
        ),
        meaning=(
            "Google (and GitHub) name a redirect URI that is not one of the "
            "client's authorized redirect URIs this way; the provider shows "
            "its own error page and does not return to the app."
        ),
        causes=(
            "http vs https, www vs bare host, port or trailing slash differ "
            "from the registered URI",
            "the URI was added to another client or project",
        ),
        next_step=(
            "Add the exact redirect URI from the request to the client's "
            "authorized redirect URIs."
        ),
        source="Google OAuth 2.0 error page",
    ),
    Entry(
        code="client_not_found",
        title="The provider does not know this client_id.",
        meaning=(
            "Keycloak's error page 'Client not found.': the realm has no client with the client_id the "
            "request sent."
        ),
        causes=(
            "a typo in client_id, or the client exists in another realm",
        ),
        next_step=(
            "Check the client_id and the realm in the authorize URL."
        ),
        source="Keycloak Errors.CLIENT_NOT_FOUND",
    ),
    Entry(
        code="cookie_not_found",
        title="The provider's session cookie did not come back.",
        meaning=(
            "Keycloak's error page 'Cookie not found': the browser did not "
            "send the login session cookie back to the provider, so it cannot "
            "continue the login."
        ),
        causes=(
            "cookies blocked (third-party context, an iframe, privacy settings)",
            "the login was continued in another browser or after the cookie expired",
        ),
        next_step=(
            "Sign in again in a first-party window with cookies allowed."
        ),
        source="Keycloak Errors.COOKIE_NOT_FOUND",
    ),
)

OAUTH_ERRORS: dict[str, Entry] = {entry.code: entry for entry in _OAUTH_ENTRIES}


# --------------------------------------------------------------------------
# Relying-party frameworks: the words their error pages and logs use, and the kind they mean
# --------------------------------------------------------------------------


@dataclass(frozen=True)
class AppError:
    """What an app's own error page says, which framework says it, and which finding kind it means."""

    pattern: re.Pattern[str]
    framework: str
    kind: str  # state_mismatch | nonce_mismatch | pkce_mismatch
    meaning: str


APP_ERRORS: tuple[AppError, ...] = (
    AppError(re.compile(r"Correlation failed", re.I), "ASP.NET Core", "state_mismatch",
             "its correlation cookie (.AspNetCore.Correlation.*), set when the sign-in started, did not come "
             "back with the callback"),
    AppError(re.compile(r"oauth state was missing or invalid|Unable to unprotect the message\.State", re.I),
             "ASP.NET Core", "state_mismatch", "the state it protected at the start of the sign-in could not be "
             "read back"),
    AppError(re.compile(r"IDX21323|OpenIdConnectProtocolValidationContext\.Nonce was null|nonce cookie not found",
                        re.I), "ASP.NET (OpenID Connect)", "nonce_mismatch",
             "its nonce cookie (.AspNetCore.OpenIdConnect.Nonce.*) did not come back with the callback"),
    AppError(re.compile(r"authorization_request_not_found", re.I), "Spring Security", "state_mismatch",
             "the authorization request it saved in the session at the start was not found at the callback (a new "
             "session, another instance, or another tab's state)"),
    AppError(re.compile(r"mismatching_state", re.I), "Authlib", "state_mismatch",
             "the state in the callback is not the one it stored in the session"),
    AppError(re.compile(r"State cookie was missing|InvalidCheck:?\s*state|state value could not be parsed", re.I),
             "Auth.js / NextAuth", "state_mismatch", "its state cookie did not come back with the callback"),
    AppError(re.compile(r"PKCE code_verifier cookie was missing|InvalidCheck:?\s*pkce|pkceCodeVerifier", re.I),
             "Auth.js / NextAuth", "pkce_mismatch",
             "its PKCE code_verifier cookie did not come back with the callback"),
    AppError(re.compile(r"nonce cookie was missing|InvalidCheck:?\s*nonce", re.I), "Auth.js / NextAuth",
             "nonce_mismatch", "its nonce cookie did not come back with the callback"),
    AppError(re.compile(r"Unable to verify authorization request state", re.I), "passport (passport-oauth2)",
             "state_mismatch", "the state it kept in the session was not found or differs"),
    AppError(re.compile(r"state_mismatch|state_not_found", re.I), "MSAL", "state_mismatch",
             "the state in the response is not one it stored (cache cleared, another tab, another window)"),
    AppError(re.compile(r"nonce_mismatch|nonce_not_found", re.I), "MSAL", "nonce_mismatch",
             "the id_token's nonce is not the one it stored for this request"),
)


def app_error(text: str) -> AppError | None:
    """The framework error an app's answer names, if any."""
    for a in APP_ERRORS:
        if a.pattern.search(text):
            return a
    return None

# --------------------------------------------------------------------------
# SAML 2.0: the Status codes of a Response or LogoutResponse, and Entra's SAML errors
# --------------------------------------------------------------------------

_SAML_CORE = "SAML 2.0 Core §3.2.2.2"

_SAML_STATUS_ENTRIES: tuple[Entry, ...] = (
    Entry(
        code="Requester",
        title="The identity provider refused the request as the requester's error.",
        meaning=(
            "The request could not be performed due to an error on the part "
            "of the requester (the service provider): the IdP did not like "
            "something in the AuthnRequest or in how it was sent."
        ),
        causes=(
            "the service provider's entity id (Issuer) is not registered at "
            "the identity provider, or is registered under another value",
            "the AuthnRequest's signature, Destination or ACS URL is not what "
            "the identity provider expects for this service provider",
            "a policy of the identity provider denied this user or app",
        ),
        next_step=(
            "Read the second-level status and the StatusMessage; compare the "
            "AuthnRequest's Issuer and ACS URL with the service provider's "
            "registration at the identity provider, and check its log."
        ),
        source=_SAML_CORE,
    ),
    Entry(
        code="Responder",
        title="The identity provider could not perform the request.",
        meaning=(
            "The request could not be performed due to an error on the part "
            "of the responder (the identity provider). The second-level "
            "status, when present, says which."
        ),
        causes=(
            "the identity provider could not authenticate the user (see the "
            "second-level status)",
            "an error or a misconfiguration at the identity provider",
        ),
        next_step=(
            "Read the second-level status and the StatusMessage, and check "
            "the identity provider's log at this time."
        ),
        source=_SAML_CORE,
    ),
    Entry(
        code="AuthnFailed",
        title="The identity provider could not authenticate the user.",
        meaning=(
            "The responding provider was unable to successfully authenticate "
            "the principal: the sign-in at the identity provider failed."
        ),
        causes=(
            "wrong credentials, a locked or disabled account",
            "a failed or cancelled second factor",
            "an error in the identity provider's authentication source (LDAP, "
            "a database, an upstream provider)",
        ),
        next_step=(
            "Check the identity provider's log for this user and time; let "
            "the user sign in there directly to see the error."
        ),
        source=_SAML_CORE,
    ),
    Entry(
        code="InvalidNameIDPolicy",
        title="The identity provider cannot give the NameID format the request asked for.",
        meaning=(
            "The responding provider cannot or will not support the "
            "requested name identifier policy: the NameIDPolicy Format (or "
            "SPNameQualifier, or AllowCreate=false) of the AuthnRequest "
            "cannot be honoured for this user."
        ),
        causes=(
            "the service provider asks for a NameID format (emailAddress, "
            "persistent, …) that the identity provider is not configured to "
            "release to it",
            "AllowCreate=\"false\" and the user has no persistent identifier "
            "for this service provider yet",
        ),
        next_step=(
            "Compare the AuthnRequest's NameIDPolicy Format with the formats "
            "the identity provider releases to this service provider; align "
            "one of the two (or send no NameIDPolicy Format)."
        ),
        source=_SAML_CORE,
    ),
    Entry(
        code="NoAuthnContext",
        title="The identity provider cannot meet the requested authentication context.",
        meaning=(
            "The specified authentication context requirements cannot be met "
            "by the responder: the AuthnRequest's RequestedAuthnContext asks "
            "for a way of signing in the identity provider does not offer, or "
            "not for this user."
        ),
        causes=(
            "the service provider requires a class (e.g. "
            "PasswordProtectedTransport with Comparison=exact, or a "
            "multi-factor class) the identity provider does not use",
            "the user signed in with another method (Windows integrated, "
            "certificate, passwordless) than the one requested",
        ),
        next_step=(
            "Remove or relax RequestedAuthnContext at the service provider, "
            "or configure the identity provider to offer that context."
        ),
        source=_SAML_CORE,
    ),
    Entry(
        code="NoPassive",
        title="The identity provider cannot sign the user in without interaction.",
        meaning=(
            "The AuthnRequest asked for passive authentication "
            "(IsPassive=\"true\": no page may be shown to the user) and the "
            "identity provider has no session for the user, so it cannot "
            "authenticate without interaction."
        ),
        causes=(
            "the user has no session at the identity provider (first visit, "
            "signed out, the session expired, its cookie is not sent in this "
            "context)",
            "the service provider sends IsPassive=\"true\" where it means an "
            "ordinary sign-in",
        ),
        next_step=(
            "Treat NoPassive as 'not signed in' at the service provider and "
            "start an interactive sign-in (without IsPassive) when the user "
            "must sign in."
        ),
        source=_SAML_CORE,
    ),
    Entry(
        code="PartialLogout",
        title="The user was not signed out everywhere.",
        meaning=(
            "The session authority could not propagate the logout to all the "
            "other session participants: some sessions may still be active."
        ),
        causes=(
            "another service provider of the session did not answer its "
            "LogoutRequest or answered with an error",
            "a service provider of the session has no single logout endpoint",
        ),
        next_step=(
            "Check which service providers took part in the session and "
            "whether each answers single logout; close the browser to end the "
            "remaining sessions."
        ),
        source=_SAML_CORE,
    ),
    Entry(
        code="RequestDenied",
        title="The identity provider denied the request.",
        meaning=(
            "The SAML responder or authority chose not to respond to the "
            "request: usually a policy decision (the user or the service "
            "provider is not allowed)."
        ),
        causes=(
            "the user is not allowed to use this application (assignment, "
            "group membership, an access policy)",
            "the service provider is not registered or not enabled at the "
            "identity provider",
            "the request was not signed although the identity provider "
            "requires signed requests",
        ),
        next_step=(
            "Read the StatusMessage and the identity provider's log; check "
            "the user's access to the application and the service provider's "
            "registration."
        ),
        source=_SAML_CORE,
    ),
    *(Entry(code=f"RequestVersion{which}", title=f"The request's SAML version is {words}.", meaning=meaning,
            causes=("the service provider sends SAML 1.x or a wrong Version attribute",),
            next_step="Configure the service provider to send SAML 2.0 (Version=\"2.0\").", source=_SAML_CORE)
      for which, words, meaning in (
          ("Deprecated", "deprecated",
           "The responder cannot process any requests with the protocol version of the request."),
          ("TooHigh", "too high", "The major version of the request is higher than the responder supports."),
          ("TooLow", "too low", "The major version of the request is lower than the responder supports."))),
    Entry(
        code="UnknownPrincipal",
        title="The identity provider does not know the user named in the request.",
        meaning=(
            "The responding provider does not recognize the principal "
            "specified or implied by the request (a Subject or NameID in the "
            "AuthnRequest or LogoutRequest)."
        ),
        causes=(
            "the request names a user (Subject, NameID) the identity provider "
            "does not know, or in another format",
            "a LogoutRequest for a session the identity provider no longer "
            "holds",
        ),
        next_step=(
            "Compare the NameID the request names with the one the identity "
            "provider issued for this user, or sign in without naming the user."
        ),
        source=_SAML_CORE,
    ),
    Entry(
        code="UnsupportedBinding",
        title="The identity provider cannot answer with the requested binding.",
        meaning=(
            "The SAML responder cannot properly fulfill the request using the "
            "protocol binding specified in the request (the AuthnRequest's "
            "ProtocolBinding)."
        ),
        causes=(
            "the service provider asks for a binding (HTTP-Artifact, PAOS, …) "
            "the identity provider does not offer for it",
            "no assertion consumer service of that binding is registered for "
            "the service provider",
        ),
        next_step=(
            "Ask for HTTP-POST (the usual binding for the Response) or "
            "register an assertion consumer service with the requested binding."
        ),
        source=_SAML_CORE,
    ),
    # the rarer codes, one likely cause each: (code, title, meaning, cause, next step)
    *(Entry(code=code, title=title, meaning=meaning, causes=(cause,), next_step=step, source=_SAML_CORE)
      for code, title, meaning, cause, step in (
          ("VersionMismatch", "The SAML version of the request is not supported.",
           "The identity provider could not process the request because the version of the request "
           "message was incorrect.",
           "the service provider sends SAML 1.x or a wrong Version attribute",
           "Configure the service provider to send SAML 2.0 (Version=\"2.0\")."),
          ("InvalidAttrNameOrValue", "An attribute name or value in the request is not valid.",
           "Unexpected or invalid content was encountered within a saml:Attribute or "
           "saml:AttributeValue element of the request.",
           "the service provider requested an attribute the identity provider does not know",
           "Compare the requested attributes with what the identity provider releases to this service provider."),
          ("NoAvailableIDP", "No identity provider is available to sign the user in.",
           "Used by an intermediary (a proxy or discovery service) to say that none of the supported "
           "identity providers in the request's IDPList is available to it.",
           "the scoping (IDPList) names identity providers the proxy does not know or cannot reach",
           "Check the Scoping/IDPList of the request and the proxy's configured identity providers."),
          ("NoSupportedIDP", "None of the requested identity providers is supported.",
           "Used by an intermediary to say that none of the identity providers in the request's "
           "IDPList are supported by it.",
           "the request's Scoping names identity providers the intermediary does not support",
           "Check the Scoping/IDPList of the request against the intermediary's configuration."),
          ("ProxyCountExceeded", "The request passed through too many proxies.",
           "The responding provider cannot authenticate the principal directly and is not permitted to "
           "proxy the request further.",
           "the request's Scoping ProxyCount is too low for the chain of identity providers",
           "Raise or remove the ProxyCount of the request, or sign in at an identity provider directly."),
          ("RequestUnsupported", "The identity provider does not support this request.",
           "The SAML responder or authority does not support the request.",
           "the request uses a feature, binding or protocol profile the identity provider does not implement",
           "Compare the request (binding, NameIDPolicy, Scoping, extensions) with what the identity "
           "provider supports."),
          ("ResourceNotRecognized", "The resource named in the request is not recognised.",
           "The resource value provided in the request message is invalid or unrecognized.",
           "a query names a resource the authority does not know",
           "Check the resource the request names."),
          ("TooManyResponses", "The answer would hold more elements than the responder can return.",
           "The response message would contain more elements than the SAML responder is able to "
           "return.",
           "a query matched too many assertions",
           "Narrow the query."),
          ("UnknownAttrProfile", "The attribute profile of the request is unknown.",
           "An entity that has no knowledge of a particular attribute profile has been presented with "
           "an attribute drawn from that profile.",
           "the request uses an attribute NameFormat the identity provider does not know",
           "Use an attribute profile the identity provider supports (usually the URI NameFormat)."),
      )),
)

SAML_STATUS: dict[str, Entry] = {entry.code: entry for entry in _SAML_STATUS_ENTRIES}


def explain_saml(names: tuple[str, ...], aadsts: int | None = None) -> Entry | None:
    """The entry of a SAML Status (its names outer first, `("Responder", "NoPassive")`): an AADSTS code
    Entra wrote into the StatusMessage first, then the most specific known status."""
    if aadsts is not None and aadsts in AADSTS:
        return AADSTS[aadsts]
    for name in reversed(names):
        if name in SAML_STATUS:
            return SAML_STATUS[name]
    return None


# --------------------------------------------------------------------------
# Lookups
# --------------------------------------------------------------------------

_AADSTS_RE = re.compile(r"AADSTS(\d+)", re.IGNORECASE)


def aadsts_codes(text: str | None) -> list[int]:
    """Every AADSTS<digits> code in ``text``, in order of first appearance."""
    if not text:
        return []
    return list(dict.fromkeys(int(m) for m in _AADSTS_RE.findall(text)))


def aadsts_codes_in_body(body: Mapping[str, Any] | None) -> list[int]:
    """AADSTS codes from an Entra JSON error body.

    Combines the ``error_codes`` list (ints) with codes quoted in
    ``error_description``, in that order, without duplicates.
    """
    if not body:
        return []
    found: list[int] = []
    raw = body.get("error_codes")
    if isinstance(raw, Iterable) and not isinstance(raw, (str, bytes)):
        for item in raw:
            try:
                found.append(int(item))
            except (TypeError, ValueError):
                continue
    description = body.get("error_description")
    if isinstance(description, str):
        found.extend(aadsts_codes(description))
    return list(dict.fromkeys(found))


_B2C_RE = re.compile(r"AADB2C(\d{5})")


def explain_text(error: str | None, aadsts: int | None, text: str) -> Entry | None:
    """Best entry for an error answer: an AADB2C code named in its text (B2C answers access_denied or
    server_error and names the real cause in error_description), else `explain`."""
    m = _B2C_RE.search(text or "")
    if m and int(m.group(1)) in B2C:
        return B2C[int(m.group(1))]
    return explain(error, aadsts)


def explain(error: str | None = None, aadsts: int | str | None = None) -> Entry | None:
    """Best entry for an error: the AADSTS code if known, else the OAuth error.

    ``aadsts`` may be an int (54005) or a string ("54005", "AADSTS54005").
    ``error`` is matched case-insensitively. Returns None when neither is known.
    """
    if aadsts is not None:
        number: int | None
        if isinstance(aadsts, int):
            number = aadsts
        else:
            digits = re.search(r"\d+", str(aadsts))
            number = int(digits.group()) if digits else None
        if number is not None and number in AADSTS:
            return AADSTS[number]
    if error:
        return OAUTH_ERRORS.get(error.strip().lower())
    return None
