"""state, nonce, PKCE and redirect_uri: what binds an answer to its request."""

import json
import time
from urllib.parse import urlencode

from authtrace.addons.secrets import s256

from builders import APP, CLIENT_ID, IDP, TENANT, flow, make_jwt, signin_flows
from checkkit import findings, kinds, one, op_steps, spa_token


def test_altered_state_is_state_mismatch(tmp_path):
    flows = signin_flows()
    cb = flows[3]
    cb.request.content = cb.request.content.replace(b"state=", b"state=tampered")
    fs, _ = findings(tmp_path, flows)
    assert "state_mismatch" in kinds(fs)


def test_missing_state(tmp_path):
    flows = signin_flows()
    cb = flows[3]
    from urllib.parse import parse_qsl
    cb.request.content = urlencode([(k, v) for k, v in parse_qsl(cb.request.content.decode()) if k != "state"]).encode()
    fs, _ = findings(tmp_path, flows)
    assert kinds(fs) == ["state_mismatch"] and "no state" in fs[0].title


def test_nonce_mismatch(tmp_path):
    flows = signin_flows()
    flows[0].request.url = flows[0].request.url.replace("nonce=n-0S6_WzA2Mj", "nonce=other-nonce")
    fs, _ = findings(tmp_path, flows)
    assert kinds(fs) == ["nonce_mismatch"]


def test_pkce_verifier_mismatch_and_matching_retry_is_quiet(tmp_path):
    from authtrace.addons.secrets import s256
    flows = signin_flows(verifier="verifier-B-" + "x" * 40)
    fs, _ = findings(tmp_path, flows)
    assert fs == []
    bad = signin_flows(verifier="verifier-B-" + "x" * 40)
    bad[0].request.url = bad[0].request.url.replace(s256("verifier-B-" + "x" * 40), s256("verifier-A"))
    fs, _ = findings(tmp_path, bad)
    assert kinds(fs) == ["pkce_mismatch"]
    # a retry: first attempt with challenge A abandoned, second with B completes: quiet
    retry = signin_flows(verifier="verifier-B-" + "x" * 40)
    first = bad[0].copy()
    first.request.url = first.request.url.replace("state=", "state=first")
    first.request.timestamp_start -= 10
    assert findings(tmp_path, [first] + retry)[0] == []


def test_redirect_uri_mismatch(tmp_path):
    flows = signin_flows()
    flows[4].request.content = flows[4].request.content.replace(b"signin-oidc", b"signin-oidc%2F")
    fs, _ = findings(tmp_path, flows)
    assert kinds(fs) == ["redirect_uri_mismatch"]


def _refresh(t: float, id_token: str) -> "flow":
    return flow("POST", f"https://{IDP}/{TENANT}/oauth2/v2.0/token", t=t, browser=False,
                headers={"content-type": "application/x-www-form-urlencoded"},
                body=urlencode({"grant_type": "refresh_token", "client_id": CLIENT_ID,
                                "refresh_token": "0.AXoA-refresh-token-opaque-secret-value-xyz"}),
                resp_headers={"content-type": "application/json"},
                resp_body=json.dumps({"token_type": "Bearer", "expires_in": 3599, "id_token": id_token,
                                      "access_token": "opaque-access-2", "refresh_token": "0.AXoA-rotated-2"}))


def test_refresh_grant_id_token_without_nonce_is_quiet(tmp_path):
    """OIDC Core §12.2: an id_token from a refresh_token grant may carry no nonce; only an id_token that
    answers an authorize request is held to its nonce."""
    flows = signin_flows()
    t = flows[-1].request.timestamp_start + 5
    now = int(t)
    refreshed = make_jwt({"iss": f"https://{IDP}/{TENANT}/v2.0", "aud": CLIENT_ID, "iat": now, "nbf": now,
                          "exp": now + 3600, "sub": "alice-sub", "tid": TENANT})  # no nonce, as Entra sends it
    fs, hops = findings(tmp_path, flows + [_refresh(t, refreshed)])
    assert fs == [] and hops[-1].role == "token" and any(tk.kind == "id_token" for tk in hops[-1].tokens)
    # the code redemption's id_token is still held to the nonce
    bad = signin_flows(nonce="n-other")
    bad[0].request.url = bad[0].request.url.replace("nonce=n-other", "nonce=n-sent")
    assert kinds(findings(tmp_path, bad + [_refresh(t, refreshed)])[0]) == ["nonce_mismatch"]


def _tabs(verifier_a: str, verifier_b: str, *, state: bool):
    """Two sign-ins interleaved in two tabs at an oidc-provider-style server (PKCE; `state` or not):
    both start, both log in, then tab A's callback redeems its code with `verifier_a`."""
    t = time.time() - 60
    a = op_steps("A", t, challenge=s256("verifier-A-" + "a" * 40), state="stA" if state else None)
    b = op_steps("B", t + 0.5, challenge=s256("verifier-B-" + "b" * 40), state="stB" if state else None)
    flows = a[0] + b[0] + a[1] + b[1] + a[2] + b[2] + a[3]
    ok = verifier_a == "verifier-A-" + "a" * 40
    flows.append(spa_token(t + 2, "code-A-value-0123456789", verifier_a, status=200 if ok else 400,
                           body=None if ok else {"error": "invalid_grant", "error_description": "grant request is invalid"}))
    return flows + b[3]


def test_two_tabs_without_state_verifier_of_the_other_tab_is_pkce_mismatch(tmp_path):
    """A PKCE-only client (no state) with two tabs: the redemption of tab A's code sent tab B's verifier.
    By client or state alone the two attempts cannot be told apart (B's challenge "fits"); the browser's
    path (Location, Referer) says which authorize request produced the code."""
    good = "verifier-A-" + "a" * 40
    fs, _ = findings(tmp_path, _tabs(good, good, state=False))
    assert fs == []
    fs, hops = findings(tmp_path, _tabs("verifier-B-" + "b" * 40, good, state=False))
    assert kinds(fs) == ["idp_error", "pkce_mismatch"]
    f = one(fs, "pkce_mismatch")
    tab_a, tab_b = [h for h in hops if h.role == "authorize"]
    assert f.evidence[0] is not None and f.evidence[0].number == tab_a.number
    assert f"belongs to #{tab_b.number}" in f.explanation and "another tab" in f.explanation


def test_two_tabs_with_state_each_callback_its_own_attempt(tmp_path):
    good = "verifier-A-" + "a" * 40
    fs, _ = findings(tmp_path, _tabs(good, good, state=True))
    assert fs == []


def test_aspnet_correlation_failed_on_cross_site_form_post_without_cookies(tmp_path):
    """ASP.NET Core's "Correlation failed": the provider's form_post came cross-site and the browser
    sent none of the app's cookies with it (SameSite), so the correlation cookie did not come back."""
    flows = signin_flows()
    cb = flows[3]
    cb.request.headers["sec-fetch-site"] = "cross-site"
    cb.response.status_code = 500
    cb.response.headers["content-type"] = "text/html; charset=utf-8"
    cb.response.content = (b"<html><head><title>Internal Server Error</title></head><body><h1>An unhandled exception "
                           b"occurred while processing the request.</h1><div class=\"titleerror\">AuthenticationFailure"
                           b"Exception: An error was encountered while handling the remote login.</div><p>Exception: "
                           b"Correlation failed.</p><p>Unknown location</p></body></html>")
    del cb.response.headers["location"]
    fs, _ = findings(tmp_path, flows[:4])
    assert kinds(fs) == ["state_mismatch"]
    f = fs[0]
    assert "ASP.NET Core" in f.title and "cross-site form_post" in f.explanation and "SameSite" in f.explanation
    assert f.evidence[-1].role == "callback"


def test_spring_authorization_request_not_found_after_another_tab(tmp_path):
    """Spring Security keeps one saved authorization request per session: tab B's sign-in replaced
    tab A's, and A's callback (with A's own, valid state) is refused as authorization_request_not_found."""
    t = time.time() - 60
    a = op_steps("A", t, state="stA", challenge="cA" + "x" * 41, client="web",
                 redirect=f"https://{APP}/login/oauth2/code/op")
    b = op_steps("B", t + 0.5, state="stB", challenge="cB" + "x" * 41, client="web",
                 redirect=f"https://{APP}/login/oauth2/code/op")
    flows = a[0] + b[0] + a[1] + a[2] + a[3]
    cb = flows[-1]
    cb.response.status_code = 401
    cb.response.headers["content-type"] = "text/html"
    cb.response.content = (b"<html><body><h1>Login with OAuth 2.0</h1><div class=\"alert alert-danger\" role=\"alert\">"
                           b"[authorization_request_not_found] </div></body></html>")
    fs, hops = findings(tmp_path, flows)
    assert kinds(fs) == ["state_mismatch"]
    f = fs[0]
    tab_a, tab_b = [h for h in hops if h.role == "authorize"]
    assert "Spring Security" in f.title and f"answers #{tab_a.number}" in f.explanation
    assert f"#{tab_b.number}" in f.explanation and "another tab" in f.explanation
