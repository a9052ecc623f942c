"""Issue 11, a second and a third provider implementation, through `authtrace record`:

- django-oauth-toolkit (PyPI; ``providers/dot_idp.py`` as dot.test): ``dot-clean`` and
  ``dot-redirect-uri`` (the app's token request carries a redirect_uri with a trailing slash; the
  provider refuses it), ``dot-code-reuse`` (the callback delivered again with the app's
  pre-callback cookies: the same code redeemed twice);
- Authlib's authorization server (PyPI; ``providers/authlib_idp.py`` as authlib.test):
  ``authlib-clean`` and ``authlib-pkce`` (the token request carries another code_verifier; the
  provider refuses it).

The relying party (``rp/generic_rp.py`` as client.test, Flask + Authlib, code + PKCE + state +
nonce, its back channel through the proxy) signs in with real headless Chromium. Each scenario
has a journey self-check over the saved flows (mitmproxy's FlowReader) and asserts the EXACT set
of finding kinds of `authtrace check <flows.mitm> --json`; clean twins assert none.
"""

from __future__ import annotations

import base64
import hashlib
from collections.abc import Iterator

import pytest

from . import rig
from .conftest import TIMINGS, Stack, _missing
from .round2 import (
    Provider,
    Round2,
    outcome_fixture,
    outcome_of,
    provider_journey,
    read_exchanges,
    record_selected,
    scenario,
    start_provider,
    token_posts,
    wanted,
)
from .scenarios import Outcome

SCENARIOS: list[Round2] = [
    scenario("dot-clean", provider_journey("dot"), "dot"),
    scenario("dot-redirect-uri", provider_journey("dot", "redirect_uri"), "dot"),
    scenario("dot-code-reuse", provider_journey("dot", replay=True), "dot"),
    scenario("authlib-clean", provider_journey("authlib"), "authlib"),
    scenario("authlib-pkce", provider_journey("authlib", "verifier"), "authlib"),
]


def _provider(stack: Stack, name: str) -> Iterator[Provider]:
    try:
        provider = start_provider(stack, name)
    except rig.StartupError as exc:
        pytest.fail(str(exc), pytrace=False)
    try:
        yield provider
    finally:
        for proc in (f"{name}-idp", f"{name}-rp"):
            if proc in stack.procs:
                stack.procs[proc].stop()


@pytest.fixture(scope="module")
def dot(stack: Stack, e2e_tools) -> Iterator[Provider]:
    try:
        import oauth2_provider  # noqa: F401
    except ImportError:
        _missing("django-oauth-toolkit is not installed (the test extra brings it)")
    yield from _provider(stack, "dot")


@pytest.fixture(scope="module")
def authlib_idp(stack: Stack, e2e_tools) -> Iterator[Provider]:
    yield from _provider(stack, "authlib")


@pytest.fixture(scope="module")
def outcomes(request, stack: Stack, chromium) -> dict[str, object]:
    selected = wanted(request, SCENARIOS)
    needs = {r.needs for r in selected}
    extra = {
        name: request.getfixturevalue(fixture)
        for name, fixture in (("dot", "dot"), ("authlib", "authlib_idp"))
        if name in needs
    }
    return record_selected(stack, chromium, selected, extra, TIMINGS)


cap_dot_clean, cap_dot_redirect_uri, cap_dot_code_reuse, cap_authlib_clean, cap_authlib_pkce = (
    outcome_fixture(r.scenario.name) for r in SCENARIOS
)


def kinds(obj: dict) -> set[str]:
    return {f["kind"] for f in obj["findings"]}


def titles(obj: dict) -> list[str]:
    return [f"{f['kind']}: {f['title']}" for f in obj["findings"]]


def assert_kinds(o: Outcome, expected: set[str]) -> None:
    obj = o.check["mitm"]
    assert kinds(obj) == expected, titles(obj)
    assert o.check_rc == (1 if expected else 0)


def s256(verifier: str) -> str:
    return base64.urlsafe_b64encode(hashlib.sha256(verifier.encode()).digest()).rstrip(b"=").decode()


def signin_exchanges(o: Outcome, authorize_path: str):
    """The authorize request, the callback and the code redemptions of the capture."""
    ex = read_exchanges(o.capture.flows)
    # The browser reaches the authorize endpoint three times in one sign-in: the app's redirect,
    # back from the login form, and the consent form's POST; all carry the same parameters.
    authorizes = [e for e in ex if e.path == authorize_path and "code_challenge" in e.query]
    assert [e.method for e in authorizes] == ["GET", "GET", "POST"], [(e.method, e.status) for e in authorizes]
    assert len({tuple(sorted(e.query.items())) for e in authorizes}) == 1
    authorize = authorizes[0]
    (callback,) = [e for e in ex if e.host == "client.test" and e.path == "/callback"]
    return ex, authorize, callback, token_posts(ex, "authorization_code")


def assert_clean_signin(o: Outcome, authorize_path: str, sub: str) -> None:
    """A real sign-in: code + PKCE (S256) + state + nonce, redeemed once with a matching verifier, then userinfo."""
    j = o.journey
    assert j["status"] == 200 and j["result"]["signed_in"] is True, j["result"]
    assert j["result"]["userinfo"]["sub"] == sub and j["result"]["id_token_claims"]["sub"] == sub, j["result"]
    ex, authorize, callback, posts = signin_exchanges(o, authorize_path)
    q = authorize.query
    assert q["code_challenge_method"] == "S256" and q["state"] and q["nonce"], q
    assert callback.query["state"] == q["state"] and callback.query["code"]
    (post,) = posts
    assert outcome_of(post) == (200, None)
    assert post.form["code"] == callback.query["code"] and post.form["redirect_uri"] == q["redirect_uri"]
    assert s256(post.form["code_verifier"]) == q["code_challenge"]
    assert (post.body or {}).get("id_token"), "an OpenID provider: the answer carries an id_token"
    assert [e.status for e in ex if e.path.rstrip("/").endswith("userinfo")] == [200]


# ------------------------------------------------------------------ django-oauth-toolkit


def test_dot_clean_journey(cap_dot_clean):
    """Self-check: django-oauth-toolkit's login, consent, code + PKCE redemption, userinfo (sub is the user's id)."""
    assert_clean_signin(cap_dot_clean, "/o/authorize/", sub="1")
    assert cap_dot_clean.journey["result"]["userinfo"]["email"] == "alice@example.test"


def test_dot_clean_no_finding(cap_dot_clean):
    assert_kinds(cap_dot_clean, set())


def test_dot_redirect_uri_journey(cap_dot_redirect_uri):
    """Self-check: the token request's redirect_uri differs (trailing slash) and the provider refuses it."""
    j = cap_dot_redirect_uri.journey
    assert j["status"] == 400 and j["result"]["signed_in"] is False, j["result"]
    _, authorize, callback, posts = signin_exchanges(cap_dot_redirect_uri, "/o/authorize/")
    (post,) = posts
    assert post.form["redirect_uri"] == authorize.query["redirect_uri"] + "/"
    assert s256(post.form["code_verifier"]) == authorize.query["code_challenge"], "only the redirect_uri is wrong"
    # django-oauth-toolkit (oauthlib) answers invalid_request, where RFC 6749 §5.2 says invalid_grant.
    assert outcome_of(post) == (400, "invalid_request"), post.body
    assert "redirect" in (post.body or {}).get("error_description", "").lower(), post.body


def test_dot_redirect_uri_findings(cap_dot_redirect_uri):
    """One sign-in (three requests to the authorize URL are one attempt), the refused redemption, and the
    app's 400 callback page as evidence of the redirect_uri finding, with the app's message."""
    assert_kinds(cap_dot_redirect_uri, {"redirect_uri_mismatch", "idp_error"})
    (f,) = [f for f in cap_dot_redirect_uri.check["mitm"]["findings"] if f["kind"] == "redirect_uri_mismatch"]
    assert [e["role"] for e in f["evidence"]] == ["authorize", "callback", "token"], f["evidence"]
    assert "The app's callback" in f["explanation"] and "Sign-in failed" in f["explanation"], f["explanation"]


def test_dot_code_reuse_journey(cap_dot_code_reuse):
    """Self-check: the callback came twice with one code; the 2nd redemption was refused as invalid_grant."""
    j = cap_dot_code_reuse.journey
    assert j["status"] == 200 and j["result"]["signed_in"] is True, j["result"]
    assert j["replay"]["status"] == 400 and j["replay"]["result"]["error"] == "invalid_grant", j["replay"]
    ex = read_exchanges(cap_dot_code_reuse.capture.flows)
    callbacks = [e for e in ex if e.host == "client.test" and e.path == "/callback"]
    assert len(callbacks) == 2 and callbacks[0].query["code"] == callbacks[1].query["code"]
    posts = token_posts(ex, "authorization_code")
    assert len(posts) == 2 and posts[0].form["code"] == posts[1].form["code"] == callbacks[0].query["code"]
    assert [outcome_of(p) for p in posts] == [(200, None), (400, "invalid_grant")]


def test_dot_code_reuse_findings(cap_dot_code_reuse):
    assert_kinds(cap_dot_code_reuse, {"reused_code", "duplicate_redirect", "idp_error"})


# ------------------------------------------------------------------ Authlib's authorization server


def test_authlib_clean_journey(cap_authlib_clean):
    """Self-check: the Authlib provider's login, consent, code + PKCE redemption, userinfo."""
    assert_clean_signin(cap_authlib_clean, "/authorize", sub="alice")


def test_authlib_clean_no_finding(cap_authlib_clean):
    assert_kinds(cap_authlib_clean, set())


def test_authlib_pkce_journey(cap_authlib_pkce):
    """Self-check: the token request's code_verifier does not hash to the code_challenge; the provider refuses it."""
    j = cap_authlib_pkce.journey
    assert j["status"] == 400 and j["result"]["signed_in"] is False, j["result"]
    _, authorize, callback, posts = signin_exchanges(cap_authlib_pkce, "/authorize")
    (post,) = posts
    assert s256(post.form["code_verifier"]) != authorize.query["code_challenge"]
    assert post.form["redirect_uri"] == authorize.query["redirect_uri"], "only the verifier is wrong"
    assert outcome_of(post) == (400, "invalid_grant"), post.body
    assert "challenge" in (post.body or {}).get("error_description", "").lower(), post.body


def test_authlib_pkce_findings(cap_authlib_pkce):
    assert_kinds(cap_authlib_pkce, {"pkce_mismatch", "idp_error"})
    (f,) = [f for f in cap_authlib_pkce.check["mitm"]["findings"] if f["kind"] == "pkce_mismatch"]
    assert [e["role"] for e in f["evidence"]] == ["authorize", "callback", "token"], f["evidence"]


def test_live_store_agrees(stack: Stack, outcomes):
    """`authtrace report --json` on each store written live gives the kinds of the offline check."""
    if not stack.records_hops:
        pytest.skip("the proxy is bare mitmdump: nothing is stored live")
    recorded = {n: o for n, o in outcomes.items() if isinstance(o, Outcome)}
    if not recorded:
        pytest.skip("no scenario of this module was selected")
    differ = {n: (sorted(kinds(o.report)), sorted(kinds(o.check["mitm"]))) for n, o in recorded.items()}
    assert {n: v for n, v in differ.items() if v[0] != v[1]} == {}
