"""The checks, registered in one place. Each is a function from the session index to findings,
one module per family:

| module | kinds |
|---|---|
| `codes.py` | reused_code, reused_refresh_token, duplicate_redirect |
| `audience.py` | wrong_audience (token aud, requested resource, a refusal naming the audience) |
| `binding.py` | state_mismatch, nonce_mismatch, pkce_mismatch, redirect_uri_mismatch (also from an app's error page) |
| `lifetimes.py` | expired_token, token_revoked |
| `grants.py` | issuer_mismatch, scope_not_granted |
| `loops.py` | redirect_loop |
| `errors.py` | idp_error, failed_hop |
| `saml.py` | SAML 2.0 (the kinds above where the fault is the same): saml_destination_mismatch, saml_signature |

Their fixed prose (causes, next steps) is data in `advice.py`. A clean sign-in yields no finding:
every false positive costs the user's trust, so each check needs protocol evidence, not a hunch.
"""
from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

from authtrace.reports.checks import audience, binding, codes, errors, grants, lifetimes, loops, saml
from authtrace.reports.index import SessionIndex
from authtrace.store.records import Finding, Hop

Check = Callable[[SessionIndex], list[Finding]]
FollowUp = Callable[[SessionIndex, list[Finding]], list[Finding]]  # reads the findings before it

CHECKS: tuple[Check, ...] = (
    codes.reused_code, codes.reused_refresh_token, codes.duplicate_redirect,
    audience.token_audience, audience.requested_resource,
    binding.state_mismatch, binding.nonce_mismatch, binding.pkce_mismatch, binding.redirect_uri_mismatch,
    lifetimes.expired_token, grants.issuer_mismatch, grants.scope_not_granted, loops.redirect_loop,
    lifetimes.token_revoked, saml.saml_status, saml.saml_in_response_to, saml.saml_audience,
    saml.saml_destination, saml.saml_lifetime, saml.saml_replay, saml.saml_signature, errors.idp_error,
)
FOLLOW_UPS: tuple[FollowUp, ...] = (audience.refusal_names_audience, binding.app_says, errors.failed_hop)


@dataclass(slots=True)
class CheckFailure:
    """A check that raised: an authtrace bug, never a finding. The other checks' findings are kept."""

    check: str
    error: str


def run_checks(hops: list[Hop], expect_audience: dict[str, str] | None = None
               ) -> tuple[list[Finding], list[CheckFailure]]:
    """Every check over one session's hops: the findings (most severe, then earliest, first) and
    the checks that failed."""
    s = SessionIndex(hops, expect_audience)
    found: list[Finding] = []
    failures: list[CheckFailure] = []
    for check in CHECKS:
        try:
            found.extend(check(s))
        except Exception as e:  # noqa: BLE001 - a bug in one check must not lose the others' findings
            failures.append(CheckFailure(check.__name__, f"{type(e).__name__}: {e}"[:300]))
    for follow in FOLLOW_UPS:
        try:
            found.extend(follow(s, found))
        except Exception as e:  # noqa: BLE001 - as above
            failures.append(CheckFailure(follow.__name__, f"{type(e).__name__}: {e}"[:300]))
    found.sort(key=lambda f: (f.severity.rank, min((h.started for h in f.evidence), default=0.0)))
    return found, failures
