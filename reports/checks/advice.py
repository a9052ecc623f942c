"""The fixed prose of findings, kept as data like the error catalogue: for each kind (and variant),
the likely causes and the next step. Titles and explanations carry the capture's facts and are
written by the checks; what a reader should suspect and do next is written here, once."""
from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class Advice:
    causes: tuple[str, ...]
    next_step: str  # may hold {placeholders} the check fills in


ADVICE: dict[str, Advice] = {
    "reused_code.outside": Advice(
        ("another tab, browser or webview (e.g. a Teams/Outlook embedded browser) opened the same redirect URL",
         "a link scanner or safe-links service followed the redirect URL",
         "a browser prefetch or preview requested the callback",
         "the app (or a proxy in front of it) retried the callback or the token request"),
        "Handle the redirect URI exactly once and redeem each code once; then start a fresh sign-in to get a "
        "new code."),
    "reused_code.twice": Advice(
        ("the callback URL was requested twice (double submit, reload, back button, two webviews)",
         "the app redeems the code in two places (e.g. middleware and a handler)",
         "a retry after a slow token response"),
        "Handle the redirect URI exactly once and redeem each code once; then start a fresh sign-in to get a "
        "new code."),
    "reused_code.same_page": Advice(
        ("an effect that redeems the code runs twice: React StrictMode mounts components twice in development",
         "the component that handles the callback is mounted twice (two routes, a re-render that remounts it)",
         "two listeners of the same page (a library and the app) both redeem the code"),
        "Guard the redemption so it runs once per code (a ref or module-level flag, or let the library redeem it), "
        "then sign in again."),
    "reused_refresh_token": Advice(
        ("two tabs or processes share one token cache and both refresh with the same refresh token",
         "the app keeps the old refresh token after a refresh (does not store the rotated one)",
         "a retry after a lost or slow refresh answer sends the old token again"),
        "Store the rotated refresh token from every refresh answer and refresh in one place (one lock or one "
        "worker per grant); after the grant was revoked, the user must sign in again."),
    "duplicate_redirect": Advice(
        ("the browser followed the redirect twice (reload, double click, back button)",
         "two webviews or tabs handled the same redirect", "a link scanner or prefetcher requested the URL",
         "the app issues its own second request to the callback"),
        "Compare the user agents and Sec-Fetch headers above to find the second requester; make the callback "
        "idempotent (ignore a code already being redeemed)."),
    "wrong_audience.token": Advice(
        ("the app requested the wrong scope/resource (e.g. https://management.azure.com/.default instead of "
         "https://ai.azure.com/.default)", "a cached token for another resource was reused",
         "the connection or tool is configured with the wrong audience"),
        "Request a token for {wanted} (scope '<resource>/.default' or resource indicator) and send that one."),
    "wrong_audience.requested": Advice(
        ("wrong scope or resource configured in the app or connection",),
        "Request scope '{scope}/.default' (or the matching resource) for calls to {host}."),
    "wrong_audience.named": Advice(
        ("the token was requested for another resource",),
        "Request the token for the audience the API names in its answer."),
    "state_mismatch": Advice(
        ("the state was altered in transit (URL rewriting, encoding, truncation)",
         "the callback belongs to another sign-in (another tab, a stale bookmark)",
         "the app lost its state cookie/session between authorize and callback (SameSite, domain or path of "
         "the cookie, load balancer without session affinity)"),
        "Compare the state values above; start the sign-in again in one tab and check the app's state cookie "
        "survives the round trip."),
    "nonce_mismatch": Advice(
        ("the id_token belongs to another sign-in (replayed or from another tab)",
         "the app lost the nonce it stored (cookie or session lost)"),
        "Start a fresh sign-in in one tab and check that the app keeps its nonce until the callback."),
    "pkce_mismatch.verifier": Advice(
        ("the verifier from another sign-in attempt was used (two tabs, a retry that made a new verifier)",
         "the app lost the verifier it stored between authorize and callback"),
        "Keep the verifier with the state of the same attempt and send that one."),
    "pkce_mismatch.no_verifier": Advice(("the app lost the verifier",),
                                        "Send the code_verifier that belongs to this sign-in's code_challenge."),
    "pkce_mismatch.required": Advice(("the app or library does not use PKCE (public clients and SPAs must)",),
                                     "Enable PKCE (S256) in the client library."),
    "redirect_uri_mismatch": Advice(
        ("the app builds the redirect URI from the incoming request behind a proxy (http vs https, host, port)",
         "a trailing slash or case difference"),
        "Configure one fixed redirect URI and use it in both requests."),
    "expired_token.expired": Advice(
        ("the app caches tokens past their expiry and does not refresh", "the machine's clock is wrong"),
        "Refresh the token before exp (MSAL: acquireTokenSilent) and check the clock."),
    "expired_token.inferred": Advice(
        ("the app uses a cached access token past its lifetime and does not refresh it",
         "the machine's clock is wrong"),
        "Refresh the token before it expires (expires_in from the token answer) and check the clock; record without "
        "a sanitized export to see which token each call sent."),
    "expired_token.words": Advice(
        ("the app uses a cached access token past its lifetime", "clock skew between the machine and the API"),
        "Refresh the token before it expires; record the sign-in with its token answers (or without a sanitized "
        "export) to confirm from the token itself."),
    "expired_token.not_yet": Advice(("clock skew between the identity provider and this machine or the API",),
                                    "Check the clocks (NTP) of the machine and the API."),
    "token_revoked": Advice(
        ("the grant was revoked after its authorization code was reused", "the user signed out or the session "
         "was revoked", "the refresh token family was revoked"),
        "Find what revoked the grant (see reused_code if present) and sign in again."),
    "issuer_mismatch.tenant": Advice(("authority configured differently for sign-in and token redemption",),
                                     "Use the same authority (tenant) for both requests."),
    "issuer_mismatch.id_token": Advice(
        ("multi-tenant app signing in a user from another tenant with a single-tenant authority",
         "the authority (tenant, B2C policy) differs between the app's configuration and the sign-in"),
        "Align the authority/issuer the app validates with the one it signs in at."),
    "scope_not_granted": Advice(
        ("admin or user consent missing for those scopes", "the scope is not exposed by the API or not assigned "
         "to the client", "conditional access or policy removed it"),
        "Grant consent for the missing scopes (or request only what is granted) and sign in again."),
    "redirect_loop": Advice(
        ("the app does not keep its session cookie after the callback (SameSite, secure flag, domain/path, size "
         "limit)", "the app rejects the token (audience, issuer) and restarts sign-in",
         "clock skew makes the app think the token is not yet valid"),
        "Check the Set-Cookie on the callback answer and why the app restarts sign-in."),
    "idp_error.unknown": Advice(("see the provider's error description",),
                                "Look up the error in the provider's documentation with the trace and correlation "
                                "ids."),
    "state_mismatch.app": Advice(
        ("the app's state or correlation cookie did not come back: SameSite=Lax/Strict cookies are not sent with a "
         "cross-site form_post, or the cookie was set on another host or path",
         "the sign-in was started in another tab or browser, so the app holds another attempt's state",
         "the app's session was lost between authorize and callback (another instance without shared sessions, "
         "a restart, a cleared cookie)"),
        "Start the sign-in once, in one tab, and check that the app's state/correlation cookie is set with "
        "SameSite=None; Secure when the provider answers with a cross-site form_post."),
    "nonce_mismatch.app": Advice(
        ("the app's nonce cookie did not come back (SameSite on a cross-site form_post, another browser or tab)",
         "the id_token belongs to another sign-in attempt"),
        "Start a fresh sign-in in one tab and check that the app's nonce cookie survives the round trip "
        "(SameSite=None; Secure for a form_post)."),
    "pkce_mismatch.app": Advice(
        ("the app's code_verifier cookie did not come back (SameSite, another browser or tab)",
         "the verifier belongs to another sign-in attempt"),
        "Start a fresh sign-in in one tab and check that the app keeps the verifier until the callback."),
    # SAML 2.0 (checks/saml.py): the same kinds where the fault is the same, saml_* where none fits
    "duplicate_redirect.saml": Advice(
        ("the page of the assertion consumer service was reloaded, and the browser posted the form again",
         "the identity provider's auto-submitting form was submitted twice (a double click, a script and the "
         "user both)", "the browser went back to the identity provider's form page and posted it again",
         "someone replayed a captured Response (a test tool, or an attack)"),
        "Find who posted the second time (user agents and Sec-Fetch headers above). The service provider must "
        "refuse an assertion it has seen (SAML profiles §4.1.4.5: bearer assertions are one-time); after a "
        "refusal, start a new sign-in from the app."),
    "state_mismatch.saml": Advice(
        ("the Response answers another sign-in attempt (another tab, an older request the app has forgotten)",
         "the app lost the request ID it stored (its session cookie did not come back on the cross-site POST to "
         "the assertion consumer service: SameSite)",
         "the identity provider answered from a cached or stale request"),
        "Start the sign-in once, in one tab, and check that the app keeps the AuthnRequest ID until the Response "
        "arrives (its session cookie must be SameSite=None; Secure to survive the identity provider's POST)."),
    "state_mismatch.saml_older": Advice(
        ("the sign-in was started again (another tab, a reload of the app's login URL) while the first one was "
         "at the identity provider", "the app keeps only its latest AuthnRequest ID"),
        "Finish one sign-in at a time, or let the app remember every request it has outstanding."),
    "wrong_audience.saml": Advice(
        ("the app (service provider) signs in under one entity id and checks assertions for another: an old or "
         "second registration at the identity provider whose ACS URL is this app's",
         "the identity provider's registration of the app has another Identifier (Entra: 'Identifier (Entity "
         "ID)'; ADFS: relying party identifier) than the entity id the app checks"),
        "Make the entity id the app sends as Issuer, the one registered at the identity provider and the one "
        "the app checks as Audience the same ({expected})."),
    "saml_destination_mismatch": Advice(
        ("the app or the identity provider is configured with another URL than the one the browser uses (http "
         "vs https, host name, port, path, a trailing slash)",
         "a reverse proxy or load balancer in front of the receiver changes scheme, host or port",
         "the identity provider falls back to another registered ACS URL than the one the request named"),
        "Make the URL the message names ({named}) and the URL it is sent to ({posted}) identical: fix the ACS URL "
        "(or SSO URL) in the registration, or the public URL the app believes it has."),
    "expired_token.assertion": Advice(
        ("the Response was held or posted late (a slow page, a paused browser, a queued or replayed post)",
         "the identity provider issues assertions with a very short lifetime",
         "the clocks of the identity provider and the service provider differ"),
        "Post the Response as soon as the identity provider issues it (start a new sign-in), check both clocks "
        "(NTP), and allow the service provider a small clock skew (a few minutes)."),
    "expired_token.assertion_not_yet": Advice(
        ("the identity provider's clock is ahead of the service provider's",
         "the service provider allows no clock skew"),
        "Synchronise the clocks of the identity provider and the service provider (NTP) and allow a small skew "
        "(a few minutes)."),
    "saml_signature.failed": Advice(
        ("the identity provider signs with another certificate than the one the capture or --saml-cert knows "
         "(a certificate rollover)", "the Response was altered after signing (a proxy, a test tool, an attack: "
         "signature wrapping)", "the wrong metadata or certificate was given"),
        "Compare the certificate the identity provider signs with (its metadata now) with the one the app "
        "trusts; if they are the same, the message was changed on the way: find what changed it."),
    "saml_signature.unsigned": Advice(
        ("the identity provider is configured to sign nothing for this service provider",
         "a test or development identity provider"),
        "Configure the identity provider to sign the assertion (or the Response) and the app to require it: an "
        "unsigned assertion can be forged by anyone who can post to the app."),
    "failed_hop": Advice(("see the answer above; the app or provider log for this time has the detail",),
                         "Check the server log of {host} at {when}."),
}


def advice(key: str, **facts: str) -> tuple[tuple[str, ...], str]:
    """(causes, next step) of a finding kind or variant, with the facts filled in."""
    a = ADVICE[key]
    return a.causes, a.next_step.format(**facts) if facts else a.next_step
