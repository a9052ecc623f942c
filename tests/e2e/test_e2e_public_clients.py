"""Issue 11, public clients against oidc-provider (idp/public.mjs as op.test), through `authtrace record`:

- a single-page app (React 19 + oauth4webapi, bundled by esbuild, served as spa.test) doing code +
  PKCE in Chromium: ``spa-clean``; ``spa-double-redemption`` (React StrictMode runs the unguarded
  redemption effect twice: two token POSTs race with one code); both also keep the browser's own
  HAR (Playwright), the kind of file support tickets carry;
- ``refresh-reuse``: the SPA's refresh token is rotated, the rotated-out one presented again
  (refused, the grant revoked), then the newest one (refused too);
- the device authorization grant with a polling client whose back channel goes through the proxy:
  ``device-clean`` (authorization_pending, the user approves in Chromium, tokens, userinfo),
  ``device-denied`` (the user clicks Abort: access_denied), ``device-expired`` (nobody approves
  a 3-second device code: expired_token).

Each scenario has a journey self-check that reads the saved flows (mitmproxy's FlowReader), and
asserts the EXACT set of finding kinds of `authtrace check <flows.mitm> --json`; the clean twins
assert none. (Known authtrace misbehaviour would be written as the correct assertion, marked
xfail(strict=True); none is left.)
"""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from . import rig
from .conftest import TIMINGS, Stack, _missing
from .round2 import (
    PublicClients,
    Round2,
    device_clean,
    device_denied,
    device_expired,
    npm_ci,
    outcome_fixture,
    outcome_of,
    read_exchanges,
    record_selected,
    scenario,
    spa_clean,
    spa_double,
    spa_refresh_reuse,
    start_public_clients,
    token_posts,
    wanted,
)
from .scenarios import Outcome

DEVICE_GRANT = "urn:ietf:params:oauth:grant-type:device_code"

SCENARIOS: list[Round2] = [
    scenario("spa-clean", spa_clean, "public", browser_har=True),
    scenario("spa-double-redemption", spa_double, "public", browser_har=True),
    scenario("refresh-reuse", spa_refresh_reuse, "public"),
    scenario("device-clean", device_clean, "public"),
    scenario("device-denied", device_denied, "public"),
    scenario("device-expired", device_expired, "public"),
]


@pytest.fixture(scope="module")
def public_clients(stack: Stack, e2e_tools, idp_installed) -> Iterator[PublicClients]:
    """op.test (oidc-provider, public clients) and spa.test (the SPA, built here with esbuild)."""
    error = npm_ci(e2e_tools["npm"], rig.SPA_DIR, "oauth4webapi")
    if error:
        _missing(error)
    names = ("op", "spa")
    try:
        yield start_public_clients(stack, e2e_tools["node"])
    except rig.StartupError as exc:
        pytest.fail(str(exc), pytrace=False)
    finally:
        for name in names:
            if name in stack.procs:
                stack.procs[name].stop()


@pytest.fixture(scope="module")
def outcomes(request, stack: Stack, chromium, public_clients) -> dict[str, object]:
    return record_selected(stack, chromium, wanted(request, SCENARIOS), {"public": public_clients}, TIMINGS)


cap_spa_clean, cap_spa_double_redemption, cap_refresh_reuse, cap_device_clean, cap_device_denied, cap_device_expired = (
    outcome_fixture(r.scenario.name) for r in SCENARIOS
)


def kinds(obj: dict) -> set[str]:
    return {f["kind"] for f in obj["findings"]}


def titles(obj: dict) -> list[str]:
    return [f"{f['kind']}: {f['title']}" for f in obj["findings"]]


def assert_kinds(o: Outcome, expected: set[str], suffix: str = "mitm") -> None:
    """`authtrace check <saved file> --json` gives exactly these finding kinds (and the matching exit code)."""
    obj = o.check[suffix]
    assert kinds(obj) == expected, titles(obj)
    if len(o.check) == 1:
        assert o.check_rc == (1 if expected else 0)


# ------------------------------------------------------------------ SPA


def spa_token_posts(o: Outcome, grant_type: str = "authorization_code"):
    ex = read_exchanges(o.capture.flows)
    return ex, token_posts(ex, grant_type)


def test_spa_clean_journey(cap_spa_clean):
    """Self-check: one cross-origin token POST from the SPA; code, PKCE, nonce checked in the browser;
    userinfo read with a bearer token after a CORS preflight."""
    j = cap_spa_clean.journey
    assert j["result"]["signed_in"] is True, j["result"]
    assert [(a["ok"], a["status"]) for a in j["result"]["attempts"]] == [(True, 200)], j["result"]
    assert j["result"]["id_token_claims"]["sub"] == "alice"
    assert j["userinfo"] == {"ok": True, "status": 200, "sub": "alice", "email": "alice@example.test"}, j["userinfo"]
    ex, posts = spa_token_posts(cap_spa_clean)
    assert [outcome_of(p) for p in posts] == [(200, None)]
    (post,) = posts
    spa_origin = j["url"].split("/callback")[0]
    assert post.origin == spa_origin and post.form["client_id"] == "spa" and post.form.get("code_verifier")
    assert "client_secret" not in post.form, "a public client has no secret"
    # oauth4webapi's token POST is a CORS "simple" request (form body, safelisted headers): no
    # preflight. The userinfo GET carries Authorization, so the browser asks first.
    (me,) = [e for e in ex if e.method == "GET" and e.path == "/me"]
    preflights = [e for e in ex if e.method == "OPTIONS" and e.path == "/me" and e.started < me.started]
    assert me.status == 200 and preflights and preflights[0].status in (200, 204), "userinfo after a CORS preflight"
    (authorize,) = [e for e in ex if e.path == "/auth" and e.method == "GET"]
    assert authorize.query["code_challenge_method"] == "S256" and authorize.query["nonce"] and authorize.query["state"]


def test_spa_clean_no_finding(cap_spa_clean):
    assert_kinds(cap_spa_clean, set())


def test_spa_clean_browser_har_no_finding(cap_spa_clean):
    """The browser's own HAR of the same sign-in (what a support ticket carries) is clean too."""
    assert kinds(cap_spa_clean.check["har"]) == set(), titles(cap_spa_clean.check["har"])
    assert len([e for e in har_entries(cap_spa_clean.files[-1]) if e["url"].endswith("/auth")]) == 1


def har_entries(path) -> list[dict]:
    """(method, URL without query, status, start in ms since the epoch, duration ms, failure) per HAR entry."""
    import datetime as dt
    import json

    out = []
    for e in json.loads(path.read_text())["log"]["entries"]:
        start = dt.datetime.fromisoformat(e["startedDateTime"].replace("Z", "+00:00")).timestamp() * 1000
        request, response = e["request"], e["response"]
        out.append({
            "method": request["method"], "url": request["url"].split("?")[0], "status": response["status"],
            "start": start, "time": e["time"], "failure": response.get("_failureText"),
        })  # fmt: skip
    return out


def test_spa_double_redemption_journey(cap_spa_double_redemption):
    """Self-check: two token POSTs with the same code left the page together; one won, one got invalid_grant."""
    o = cap_spa_double_redemption
    attempts = sorted((a["ok"], a["status"], a.get("error")) for a in o.journey["result"]["attempts"])
    assert attempts == [(False, 400, "invalid_grant"), (True, 200, None)], o.journey["result"]
    ex, posts = spa_token_posts(o)
    assert len(posts) == 2 and posts[0].form["code"] == posts[1].form["code"]
    assert sorted(outcome_of(p) for p in posts) == [(200, None), (400, "invalid_grant")]
    # The browser sent both before either was answered (a race, not a retry). On the wire the second
    # may wait for a new proxy tunnel, so the browser's own timings say it.
    browser_posts = [e for e in har_entries(o.files[-1]) if e["method"] == "POST" and e["url"].endswith("/token")]
    first, second = sorted(browser_posts, key=lambda e: e["start"])
    assert second["start"] < first["start"] + first["time"], browser_posts
    # The browser navigated to the callback once: only the app's effect ran twice.
    assert len([e for e in ex if e.path == "/callback"]) == 1
    # The unguarded login effect ran twice too: the browser aborted the first authorize navigation.
    authorize = [e for e in har_entries(o.files[-1]) if e["method"] == "GET" and e["url"].endswith("/auth")]
    assert [(e["status"], e["failure"]) for e in authorize] == [(-1, "net::ERR_ABORTED"), (303, None)], authorize


SPA_DOUBLE_KINDS = {"reused_code", "idp_error"}


def test_spa_double_redemption_findings(cap_spa_double_redemption):
    assert_kinds(cap_spa_double_redemption, SPA_DOUBLE_KINDS)


def test_spa_double_redemption_browser_har(cap_spa_double_redemption):
    """The browser-side HAR holds both token POSTs (an SPA redeems in the browser): same diagnosis. The
    authorize navigation the browser aborted (the app started the same sign-in again at once) is no
    failed step; both redemptions came from the same page within milliseconds."""
    obj = cap_spa_double_redemption.check["har"]
    assert kinds(obj) == SPA_DOUBLE_KINDS, titles(obj)
    (f,) = [f for f in obj["findings"] if f["kind"] == "reused_code"]
    assert "by the same page" in f["title"] and f["details"]["same_page"] is True, f
    assert "StrictMode" in f["explanation"] and "loaded the callback once" in f["explanation"], f["explanation"]


def test_browser_har_is_browser_side(cap_spa_clean):
    """Playwright's HAR is the browser's own record: Chromium's name, the SPA's token POST and userinfo
    call, and requests the proxy refused (a provider page's web font), which no proxy capture keeps.
    It lacks the CORS preflight the proxy saw (Playwright 1.65 records no preflight entries)."""
    import json

    har = json.loads(cap_spa_clean.files[-1].read_text())
    assert har["log"]["browser"]["name"] == "chromium", har["log"].get("browser")
    entries = har_entries(cap_spa_clean.files[-1])
    methods = [(e["method"], e["url"].rsplit("/", 1)[-1]) for e in entries]
    assert ("POST", "token") in methods and ("GET", "me") in methods, methods
    assert [e["failure"] for e in entries if "fonts.googleapis.com" in e["url"]] == [
        "net::ERR_TUNNEL_CONNECTION_FAILED"
    ] * 2


# ------------------------------------------------------------------ refresh rotation reuse


def test_refresh_reuse_journey(cap_refresh_reuse):
    """Self-check: rotation; the rotated-out token refused; then the newest refused too (grant revoked)."""
    j = cap_refresh_reuse.journey
    assert j["signin"]["attempts"][0]["refresh_token"] is True, j["signin"]
    assert j["userinfo_1"]["status"] == 200
    assert j["rotate"] == {"ok": True, "status": 200, "rotated": True}, j["rotate"]
    assert j["userinfo_2"]["status"] == 200
    assert (j["reuse"]["status"], j["reuse"]["error"]) == (400, "invalid_grant"), j["reuse"]
    assert (j["after_reuse"]["status"], j["after_reuse"]["error"]) == (400, "invalid_grant"), j["after_reuse"]
    assert (j["userinfo_3"]["status"], j["userinfo_3"]["error"]) == (401, "invalid_token"), j["userinfo_3"]
    _, posts = spa_token_posts(cap_refresh_reuse, "refresh_token")
    assert [outcome_of(p) for p in posts] == [(200, None), (400, "invalid_grant"), (400, "invalid_grant")]
    rotate, reuse, after = posts
    assert reuse.form["refresh_token"] == rotate.form["refresh_token"], "the rotated-out token was presented again"
    assert after.form["refresh_token"] not in (rotate.form["refresh_token"],), "then the newest one"


# The cause is the reuse of a rotated-out refresh token (the provider's reuse detection then
# revoked the grant): a finding names it, beside the refusals and the revoked access token.
REFRESH_REUSE_KINDS = {"reused_refresh_token", "idp_error", "token_revoked"}


def test_refresh_reuse_findings(cap_refresh_reuse):
    assert_kinds(cap_refresh_reuse, REFRESH_REUSE_KINDS)
    findings = cap_refresh_reuse.check["mitm"]["findings"]
    (reuse,) = [f for f in findings if f["kind"] == "reused_refresh_token"]
    # the rotation, the reuse, the refusal of the newest token and the revoked access token
    assert [(e["role"], e["status"]) for e in reuse["evidence"]] == [
        ("token", 200), ("token", 400), ("token", 400), ("userinfo", 401)
    ], reuse["evidence"]
    assert "grant family" in reuse["explanation"]
    (revoked,) = [f for f in findings if f["kind"] == "token_revoked"]
    assert "refresh was refused in between" in revoked["explanation"], revoked["explanation"]


# ------------------------------------------------------------------ device authorization grant


def device_polls(o: Outcome):
    return token_posts(read_exchanges(o.capture.flows), DEVICE_GRANT)


def test_device_clean_journey(cap_device_clean):
    """Self-check: authorization_pending polls, the user approved in the browser, then tokens and userinfo."""
    j = cap_device_clean.journey
    assert j["done"]["ok"] is True and j["done"]["userinfo_status"] == 200 and j["done"]["sub"] == "alice", j["done"]
    assert "Sign-in Success" in j["page"]["text"], j["page"]
    polls = device_polls(cap_device_clean)
    results = [outcome_of(p) for p in polls]
    assert results[-1] == (200, None) and results[:-1] and set(results[:-1]) == {(400, "authorization_pending")}, (
        results
    )
    assert len({p.form["device_code"] for p in polls}) == 1


def test_device_clean_no_finding(cap_device_clean):
    assert_kinds(cap_device_clean, set())


def test_device_denied_journey(cap_device_denied):
    """Self-check: the user clicked Abort; the next poll got access_denied."""
    j = cap_device_denied.journey
    assert (j["done"]["ok"], j["done"]["error"]) == (False, "access_denied"), j["done"]
    results = [outcome_of(p) for p in device_polls(cap_device_denied)]
    assert results[-1] == (400, "access_denied") and set(results[:-1]) == {(400, "authorization_pending")}, results


def test_device_denied_findings(cap_device_denied):
    assert_kinds(cap_device_denied, {"idp_error"})
    (f,) = cap_device_denied.check["mitm"]["findings"]
    assert "the user declined the device sign-in" in f["title"] and "polled" in f["explanation"], f


def test_device_expired_journey(cap_device_expired):
    """Self-check: nobody approved; polling went on until the device code expired."""
    j = cap_device_expired.journey
    assert (j["done"]["ok"], j["done"]["error"]) == (False, "expired_token"), j["done"]
    results = [outcome_of(p) for p in device_polls(cap_device_expired)]
    assert results[-1] == (400, "expired_token") and set(results[:-1]) == {(400, "authorization_pending")}, results


def test_device_expired_findings(cap_device_expired):
    assert_kinds(cap_device_expired, {"idp_error"})
    (f,) = cap_device_expired.check["mitm"]["findings"]
    assert "did not complete the device sign-in in time" in f["title"], f
    assert "valid for 3 s" in f["explanation"] and "authorization_pending" in f["explanation"], f["explanation"]


def test_live_store_agrees(stack: Stack, outcomes):
    """`authtrace report --json` on each store written live gives the kinds of the offline check."""
    if not stack.records_hops:
        pytest.skip("the proxy is bare mitmdump: nothing is stored live")
    recorded = {n: o for n, o in outcomes.items() if isinstance(o, Outcome)}
    if not recorded:
        pytest.skip("no scenario of this module was selected")
    differ = {n: (sorted(kinds(o.report)), sorted(kinds(o.check["mitm"]))) for n, o in recorded.items()}
    assert {n: v for n, v in differ.items() if v[0] != v[1]} == {}
