"""reused_code and duplicate_redirect: one authorization code used more than once."""

import json
import time
from urllib.parse import urlencode

import pytest

from authtrace.addons.secrets import s256

from builders import chrome_har, flow, signin_flows
from checkkit import OP, SPA, findings, foundry, kinds, one, op_steps, token_error


def test_code_redeemed_twice_aadsts54005(tmp_path):
    secrets = {}
    flows = signin_flows(secrets=secrets)
    t = flows[4].request.timestamp_start
    again = flows[3].copy()
    again.request.timestamp_start = flows[3].request.timestamp_start + 0.35
    again.response.status_code = 500
    flows.insert(5, again)
    flows.append(token_error(t + 0.4, secrets["code"], {
        "error": "invalid_grant", "error_description": "AADSTS54005: OAuth2 Authorization code was already redeemed, "
        "please retry with a new valid code or use an existing refresh token. Trace ID: 0f1e2d3c-4b5a-6978-8a9b-"
        "0c1d2e3f4a5b Correlation ID: 11111111-2222-3333-4444-555555555555", "error_codes": [54005],
        "trace_id": "0f1e2d3c-4b5a-6978-8a9b-0c1d2e3f4a5b", "correlation_id": "11111111-2222-3333-4444-555555555555"}))
    fs, hops = findings(tmp_path, flows)
    assert kinds(fs) == ["duplicate_redirect", "idp_error", "reused_code"]
    reuse = one(fs, "reused_code")
    assert "redeemed 2 times" in reuse.title and len(reuse.evidence) == 4
    dup = one(fs, "duplicate_redirect")
    assert "350 ms" in dup.title and "succeeded" in dup.explanation and "failed (500)" in dup.explanation
    idp = one(fs, "idp_error")
    assert "AADSTS54005" in idp.title and "0f1e2d3c-4b5a-6978-8a9b-0c1d2e3f4a5b" in idp.explanation
    assert idp.details["correlation_id"] == "11111111-2222-3333-4444-555555555555"


def test_foundry_handler_second_hit_already_redeemed(tmp_path):
    t = time.time() - 30
    flows = [foundry(t, "CODE-F1", 200, "Signed in. You can close this window."),
             foundry(t + 0.2, "CODE-F1", 400, "Authentication code has already been redeemed. Please re-login.")]
    fs, _ = findings(tmp_path, flows)
    assert kinds(fs) == ["duplicate_redirect", "reused_code"]
    assert "200 ms" in one(fs, "duplicate_redirect").title


def test_first_use_already_redeemed_means_someone_else_was_first(tmp_path):
    flows = [foundry(time.time(), "CODE-F2", 400, "Authentication code has already been redeemed. Please re-login.")]
    fs, _ = findings(tmp_path, flows)
    assert kinds(fs) == ["reused_code"]
    assert "outside the captured traffic" in fs[0].title
    assert "link scanner" in " ".join(fs[0].causes)


def test_first_redemption_already_redeemed_after_single_callback(tmp_path):
    """One callback, one redemption, and that redemption is refused as already used: another party
    redeemed the code first (the callback itself is delivery, not use)."""
    flows = signin_flows()[:4]
    code = "0.AXoAv4j5cvGGr0GRqy180BHbR-secret-code-value"
    flows.append(token_error(flows[3].request.timestamp_start + 0.2, code, {
        "error": "invalid_grant", "error_description": "AADSTS54005: OAuth2 Authorization code was already redeemed"}))
    fs, _ = findings(tmp_path, flows)
    assert kinds(fs) == ["idp_error", "reused_code"]
    assert "outside the captured traffic" in one(fs, "reused_code").title


MSAL_HEADERS = {"content-type": "application/x-www-form-urlencoded;charset=utf-8", "origin": f"https://{SPA}",
                "referer": f"https://{SPA}/", "sec-fetch-mode": "cors", "sec-fetch-dest": "empty",
                "sec-fetch-site": "cross-site", "x-client-sku": "msal.js.browser", "x-client-ver": "4.27.0"}


def _msal_redemption(t: float, ok: bool) -> list:
    """MSAL.js redeems in the browser with its own headers: a CORS preflight, then the POST."""
    pre = flow("OPTIONS", f"https://{OP}/token", t=t, headers={
        "origin": f"https://{SPA}", "access-control-request-method": "POST", "sec-fetch-mode": "cors",
        "access-control-request-headers": "content-type,x-client-sku,x-client-ver"}, status=204,
        resp_headers={"access-control-allow-origin": f"https://{SPA}"})
    body = ({"access_token": "opaque-at", "id_token": "x", "token_type": "Bearer", "expires_in": 3600} if ok else
            {"error": "invalid_grant", "error_description": "grant request is invalid"})
    post = flow("POST", f"https://{OP}/token", t=t + 0.02, headers=MSAL_HEADERS,
                body=urlencode({"client_id": "spa", "grant_type": "authorization_code", "code": "code-D-value-0123456789",
                                "redirect_uri": f"https://{SPA}/callback", "code_verifier": "v" * 43}),
                status=200 if ok else 400, resp_headers={"content-type": "application/json"}, resp_body=json.dumps(body))
    return [pre, post]


def test_spa_double_redemption_from_one_page_in_a_chrome_har(tmp_path):
    """A double-mounted effect (React StrictMode in development) redeems one code twice from the same
    page within milliseconds: reused_code that points at the app code; preflights are no hops."""
    t = time.time() - 60
    flows = [f for step in op_steps("D", t, state="st-D", challenge=s256("v" * 43)) for f in step]
    a, b = _msal_redemption(t + 2, True), _msal_redemption(t + 2.003, False)
    flows += [a[0], b[0], a[1], b[1]]
    fs, hops = findings(tmp_path, None, har=chrome_har(flows))
    assert kinds(fs) == ["idp_error", "reused_code"]
    f = one(fs, "reused_code")
    assert "by the same page, 3 ms apart" in f.title and f.details["same_page"] is True
    assert "loaded the callback once" in f.explanation and "StrictMode" in f.explanation
    assert "StrictMode" in " ".join(f.causes) and not any(h.method == "OPTIONS" for h in hops)


def _auth0_refresh(t: float, presented: str, *, issued: str | None, error: str | None = None) -> "flow":
    body = ({"access_token": f"at-{issued}", "refresh_token": issued, "id_token": "x", "token_type": "Bearer",
             "expires_in": 86400, "scope": "openid offline_access"} if issued else
            {"error": "invalid_grant", "error_description": error})
    return flow("POST", "https://contoso.us.auth0.com/oauth/token", t=t,
                headers={"content-type": "application/json", "origin": f"https://{SPA}", "sec-fetch-mode": "cors"},
                body=json.dumps({"client_id": "spa", "grant_type": "refresh_token", "refresh_token": presented}),
                status=200 if issued else 403, resp_headers={"content-type": "application/json"},
                resp_body=json.dumps(body))


def test_rotated_refresh_token_presented_again_is_refresh_token_reuse(tmp_path):
    """Auth0 rotation: RT1 -> RT2 at the first refresh; RT1 presented again (two tabs sharing a stale
    cache) is refused and the family revoked, so the refresh with RT2 fails too."""
    t = time.time() - 60
    flows = [_auth0_refresh(t, "v1.MRrt-first-refresh-token", issued="v1.MRrt-second-refresh-token"),
             _auth0_refresh(t + 30, "v1.MRrt-first-refresh-token", issued=None,
                            error="Unknown or invalid refresh token."),
             _auth0_refresh(t + 40, "v1.MRrt-second-refresh-token", issued=None,
                            error="Unknown or invalid refresh token.")]
    fs, hops = findings(tmp_path, flows)
    assert kinds(fs) == ["idp_error", "reused_refresh_token"]
    f = one(fs, "reused_refresh_token")
    assert [h.number for h in f.evidence] == [1, 2, 3]
    assert "revoke the whole grant family" in f.explanation and "#3 token (403 invalid_grant) failed after it" in f.explanation
    # a refresh that was not rotated (the same token comes back), refused later: no reuse
    same = [_auth0_refresh(t, "v1.MRrt-first-refresh-token", issued="v1.MRrt-first-refresh-token"),
            _auth0_refresh(t + 30, "v1.MRrt-first-refresh-token", issued=None, error="expired")]
    assert kinds(findings(tmp_path, same)[0]) == ["idp_error"]


@pytest.mark.parametrize("headers,ua,cause", [
    ({"sec-fetch-site": "none", "sec-fetch-user": "?1"}, None, "a reload, a typed URL or a bookmark"),
    ({"sec-fetch-site": "cross-site", "sec-purpose": "prefetch"}, None, "a browser prefetch or preview"),
    ({"cookie": ""}, "Mozilla/5.0 (compatible; SafeLinks/1.0)", "a link scanner or preview service"),
    ({}, "Mozilla/5.0 (Windows NT 10.0) AppleWebKit/537.36 Teams/24.1.0.1 Chrome/130.0 Safari/537.36",
     "another browser, webview or app"),
    ({"sec-fetch-site": "same-origin", "sec-fetch-mode": "cors", "sec-fetch-dest": "empty"}, None,
     "the app's own code"),
    ({}, None, None),  # nothing in the headers says who: no cause is claimed
])
def test_a_repeated_callback_names_who_sent_it_when_the_headers_say(tmp_path, headers, ua, cause):
    flows = signin_flows()
    flows[3].request.headers["cookie"] = "AppSession=s1"
    again = flows[3].copy()
    again.request.timestamp_start = flows[3].request.timestamp_start + 0.5
    again.response.status_code = 500
    for k, v in headers.items():
        if v:
            again.request.headers[k] = v
        else:
            del again.request.headers[k]
    if ua:
        again.request.headers["user-agent"] = ua
    flows.insert(4, again)
    fs, hops = findings(tmp_path, flows)
    dup = one(fs, "duplicate_redirect")
    assert dup.details.get("cause") == cause
    if cause:
        assert f"the second request came from {cause}" in dup.title
    rows = dup.details["requests"]
    assert [r["hop"] for r in rows] == [h.label for h in dup.evidence] and rows[1]["result"] == "failed (500)"
    assert set(rows[0]) == {"hop", "time", "client", "initiator", "cookies", "result"}
    from authtrace.reports.verdict import verdict
    sentence = verdict(fs, len(hops))[1]
    top = sorted(fs, key=lambda f: f.severity.rank)[0]
    if cause and top.kind != "duplicate_redirect":
        assert f"its callback was requested again by {cause}" in sentence
