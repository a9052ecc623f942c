"""Each finding kind, from captures shaped like the real thing; and the traps that must stay quiet."""
import json
import subprocess
import sys
import time
from urllib.parse import urlencode

from authtrace.addons.importer import import_file
from authtrace.reports.checks import notes, run_checks
from authtrace.store import db

from builders import API, APP, CLIENT_ID, IDP, TENANT, chrome_har, flow, make_jwt, signin_flows, to_har


def findings(tmp_path, flows, expect=None, har=False):
    engine = db.open_db(str(tmp_path / f"c{time.monotonic_ns()}.db"))
    p = tmp_path / f"cap{time.monotonic_ns()}.{'har' if har else 'mitm'}"
    if har:
        p.write_text(json.dumps(har if isinstance(har, dict) else to_har(flows)))
    else:
        from mitmproxy.io import FlowWriter
        with open(p, "wb") as fh:
            w = FlowWriter(fh)
            for f in flows:
                w.add(f)
    sid = import_file(engine, str(p)).session_id
    return run_checks(db.load_hops(engine, sid), db.load_tokens(engine, sid), expect), db.load_hops(engine, sid)


def kinds(fs):
    return sorted({f["kind"] for f in fs})


def token_error(t, code, body, status=400):
    return flow("POST", f"https://{IDP}/{TENANT}/oauth2/v2.0/token", t=t, browser=False,
                headers={"content-type": "application/x-www-form-urlencoded"},
                body=urlencode({"grant_type": "authorization_code", "client_id": CLIENT_ID, "code": code,
                                "redirect_uri": f"https://{APP}/signin-oidc"}),
                status=status, resp_headers={"content-type": "application/json"}, resp_body=json.dumps(body))


def test_clean_signin_has_no_finding(tmp_path):
    fs, hops = findings(tmp_path, signin_flows())
    assert fs == [] and len(hops) == 6


def test_clean_signin_chrome_har_percent_encoded_has_no_finding(tmp_path):
    fs, hops = findings(tmp_path, None, har=chrome_har(signin_flows()))
    assert fs == [] and [h.role for h in hops][:3] == ["authorize", "login", "callback"]


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
    reuse = next(f for f in fs if f["kind"] == "reused_code")
    assert "redeemed 2 times" in reuse["title"] and len(reuse["evidence"]) == 4
    dup = next(f for f in fs if f["kind"] == "duplicate_redirect")
    assert "350 ms" in dup["title"] and "succeeded" in dup["explanation"] and "failed (500)" in dup["explanation"]
    idp = next(f for f in fs if f["kind"] == "idp_error")
    assert "AADSTS54005" in idp["title"] and "0f1e2d3c-4b5a-6978-8a9b-0c1d2e3f4a5b" in idp["explanation"]
    assert idp["details"]["correlation_id"] == "11111111-2222-3333-4444-555555555555"


def foundry(t, code, status, text):
    return flow("GET", "https://eastus.api.azureml.ms/agent-oauth/v1.0/redirect?" +
                urlencode({"code": code, "state": "foundry-state-1", "session_state": "x"}), t=t,
                headers={"referer": f"https://{IDP}/"}, status=status,
                resp_headers={"content-type": "text/plain"}, resp_body=text)


def test_foundry_handler_second_hit_already_redeemed(tmp_path):
    t = time.time() - 30
    flows = [foundry(t, "CODE-F1", 200, "Signed in. You can close this window."),
             foundry(t + 0.2, "CODE-F1", 400, "Authentication code has already been redeemed. Please re-login.")]
    fs, _ = findings(tmp_path, flows)
    assert kinds(fs) == ["duplicate_redirect", "reused_code"]
    assert "200 ms" in next(f for f in fs if f["kind"] == "duplicate_redirect")["title"]


def test_first_use_already_redeemed_means_someone_else_was_first(tmp_path):
    flows = [foundry(time.time(), "CODE-F2", 400, "Authentication code has already been redeemed. Please re-login.")]
    fs, _ = findings(tmp_path, flows)
    assert kinds(fs) == ["reused_code"]
    assert "outside the captured traffic" in fs[0]["title"]
    assert "link scanner" in " ".join(fs[0]["causes"])


def test_arm_token_at_foundry_endpoint_is_wrong_audience(tmp_path):
    flows = signin_flows(api_aud="https://management.azure.com/")
    api = flows[-1]
    api.response.status_code = 401
    api.response.headers["www-authenticate"] = 'Bearer error="invalid_token", error_description="audience is invalid"'
    fs, _ = findings(tmp_path, flows)
    assert kinds(fs) == ["wrong_audience"]
    assert "Azure Resource Manager" in fs[0]["title"] and API in fs[0]["title"]
    assert "ai.azure.com" in fs[0]["next_step"]


def test_v1_resource_for_arm_then_401_at_foundry(tmp_path):
    t = time.time() - 30
    authz = flow("GET", f"https://{IDP}/{TENANT}/oauth2/authorize?" + urlencode({
        "client_id": CLIENT_ID, "response_type": "code", "redirect_uri": f"https://{APP}/cb",
        "resource": "https://management.core.windows.net/", "state": "s1"}), t=t)
    api = flow("GET", f"https://{API}/api/projects/p/protocols/a2a", t=t + 5, browser=False,
               headers={"authorization": "Bearer opaque-token-value-123"}, status=401,
               resp_headers={"content-type": "application/json"}, resp_body='{"error":"unauthorized"}')
    fs, _ = findings(tmp_path, [authz, api])
    assert kinds(fs) == ["wrong_audience"]
    assert "management.core.windows.net" in fs[0]["title"]


def test_401_naming_the_audience(tmp_path):
    body = {"error": {"code": "InvalidAuthenticationTokenAudience", "message": "The access token has been obtained "
            "for wrong audience or resource 'https://vault.azure.net'. It should exactly match with one of the allowed "
            "audiences 'https://api.contoso.test'."}}
    api = flow("GET", "https://api.contoso.test/v1/items", browser=False, headers={"authorization": "Bearer abc.def"},
               status=401, resp_headers={"content-type": "application/json"}, resp_body=json.dumps(body))
    fs, _ = findings(tmp_path, [api])
    assert kinds(fs) == ["wrong_audience"] and "https://vault.azure.net" in fs[0]["details"]["named"]


def test_expect_audience_for_own_api(tmp_path):
    tok = make_jwt({"aud": "api://other-app", "exp": time.time() + 3600})
    api = flow("GET", "https://api.contoso.test/v1/items", browser=False, headers={"authorization": f"Bearer {tok}"})
    assert findings(tmp_path, [api])[0] == []
    fs, _ = findings(tmp_path, [api], expect={"api.contoso.test": "api://contoso-api"})
    assert kinds(fs) == ["wrong_audience"]


def test_correct_token_beside_wrong_one_elsewhere_is_quiet(tmp_path):
    arm = make_jwt({"aud": "https://management.azure.com/", "exp": time.time() + 3600})
    ai = make_jwt({"aud": "https://ai.azure.com", "exp": time.time() + 3600})
    f1 = flow("GET", "https://management.azure.com/subscriptions?api-version=2022-12-01", browser=False,
              headers={"authorization": f"Bearer {arm}"})
    f2 = flow("GET", f"https://{API}/api/projects/p/protocols/x", browser=False, headers={"authorization": f"Bearer {ai}"})
    assert findings(tmp_path, [f1, f2])[0] == []


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
    assert kinds(fs) == ["state_mismatch"] and "no state" in fs[0]["title"]


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


def test_expired_token_refused(tmp_path):
    old = make_jwt({"aud": "https://ai.azure.com", "exp": int(time.time()) - 600, "nbf": int(time.time()) - 4200})
    api = flow("GET", f"https://{API}/api/projects/p/protocols/x", browser=False,
               headers={"authorization": f"Bearer {old}"}, status=401,
               resp_headers={"www-authenticate": 'Bearer error="invalid_token", error_description="The token is expired"'})
    api.request.timestamp_start = time.time()
    fs, _ = findings(tmp_path, [api])
    assert kinds(fs) == ["expired_token"] and "10 min before use" in fs[0]["title"]


def test_token_redeemed_at_another_tenant(tmp_path):
    flows = signin_flows()
    flows[4].request.path = flows[4].request.path.replace(TENANT, "contoso.onmicrosoft.com")
    fs, _ = findings(tmp_path, flows)
    assert kinds(fs) == ["issuer_mismatch"]


def test_scope_not_granted(tmp_path):
    flows = signin_flows()
    body = json.loads(flows[4].response.content)
    body["scope"] = "openid profile"
    flows[4].response.content = json.dumps(body).encode()
    fs, _ = findings(tmp_path, flows)
    assert kinds(fs) == ["scope_not_granted"] and "https://ai.azure.com/.default" in fs[0]["title"]


def test_redirect_loop(tmp_path):
    t = time.time() - 60
    loop = []
    for i in range(4):
        f = signin_flows(t0=t + i * 3)[0]
        loop.append(f)
    fs, _ = findings(tmp_path, loop)
    assert kinds(fs) == ["redirect_loop"]


def test_token_revoked_after_it_worked(tmp_path):
    flows = signin_flows()
    later = flows[-1].copy()
    later.request.timestamp_start += 2
    later.response.status_code = 401
    later.response.headers["www-authenticate"] = 'Bearer error="invalid_token", error_description="grant revoked"'
    fs, _ = findings(tmp_path, flows + [later])
    assert kinds(fs) == ["token_revoked"]


def test_idp_error_redirect_explained_with_ids(tmp_path):
    cb = flow("GET", f"https://{APP}/signin-oidc?" + urlencode({
        "error": "invalid_request", "error_description": "AADSTS50011: The redirect URI 'https://app/x' specified in "
        "the request does not match the redirect URIs configured for the application. Trace ID: "
        "aaaaaaaa-bbbb-cccc-dddd-eeeeeeeeeeee Correlation ID: 12345678-1234-1234-1234-123456789abc", "state": "s1"}),
        headers={"referer": f"https://{IDP}/"})
    fs, _ = findings(tmp_path, [cb])
    assert kinds(fs) == ["idp_error"]
    assert "AADSTS50011" in fs[0]["title"] and "redirect" in fs[0]["explanation"].lower()
    assert fs[0]["details"]["trace_id"] == "aaaaaaaa-bbbb-cccc-dddd-eeeeeeeeeeee"


def test_rfc6749_error_explained(tmp_path):
    tok = token_error(time.time(), "c", {"error": "invalid_client", "error_description": "client authentication failed"}, 401)
    fs, _ = findings(tmp_path, [tok])
    assert kinds(fs) == ["idp_error"] and "invalid_client" in fs[0]["title"]


def test_non_oauth_and_idp_noise_is_quiet(tmp_path):
    noise = [flow("GET", "https://shop.example.com/checkout?code=SAVE10&state=CA"),
             flow("GET", "https://maps.example.com/search?state=NY&code=10001"),
             flow("POST", f"https://{IDP}/common/instrumentation/dssostatus", headers={"sec-fetch-mode": "cors"},
                  body='{"x":1}'),
             flow("GET", f"https://{IDP}/{TENANT}/v2.0/.well-known/openid-configuration", browser=False,
                  resp_headers={"content-type": "application/json"}, resp_body=json.dumps({"issuer": "https://login.microsoftonline.com/{tenantid}/v2.0"}))]
    fs, _ = findings(tmp_path, noise + signin_flows())
    assert fs == []


def test_notes_when_back_channel_not_captured(tmp_path):
    flows = [f for f in signin_flows() if "/token" not in f.request.path and "/keys" not in f.request.path]
    fs, hops = findings(tmp_path, flows)
    assert fs == [] and "not visible" in notes(hops)[0]


def test_cli_check_exit_codes_and_json(tmp_path):
    clean, bad = tmp_path / "clean.har", tmp_path / "bad.har"
    clean.write_text(json.dumps(to_har(signin_flows())))
    flows = signin_flows()
    flows[3].request.content = flows[3].request.content.replace(b"state=", b"state=x")
    bad.write_text(json.dumps(chrome_har(flows)))
    run = lambda *a: subprocess.run([sys.executable, "-m", "authtrace", "check", *a], capture_output=True, text=True)
    r = run(str(clean))
    assert r.returncode == 0 and "0 finding" in r.stdout
    r = run(str(bad), "--json")
    assert r.returncode == 1
    out = json.loads(r.stdout)
    assert out["hops"] == 6 and out["findings"][0]["kind"] == "state_mismatch"
    ev = out["findings"][0]["evidence"][-1]
    assert set(ev) == {"hop", "started", "method", "url", "status"} and ev["started"].endswith("Z")
    assert "." in ev["started"] and len(ev["started"].split(".")[1]) == 7
    r = run(str(tmp_path / "nope.har"))
    assert r.returncode == 2 and "Traceback" not in r.stderr


def test_normal_error_answers_are_quiet(tmp_path):
    t = time.time() - 60
    poll = [flow("POST", f"https://{IDP}/common/oauth2/v2.0/token", t=t + i, browser=False,
                 headers={"content-type": "application/x-www-form-urlencoded"},
                 body=urlencode({"grant_type": "urn:ietf:params:oauth:grant-type:device_code", "device_code": "dc",
                                 "client_id": CLIENT_ID}), status=400,
                 resp_headers={"content-type": "application/json"},
                 resp_body='{"error":"authorization_pending","error_description":"AADSTS70016: pending"}')
            for i in range(3)]
    silent = flow("GET", f"https://{IDP}/common/oauth2/v2.0/authorize?" + urlencode({
        "client_id": CLIENT_ID, "response_type": "code", "redirect_uri": f"https://{APP}/silent", "state": "sil",
        "prompt": "none"}), t=t + 10, status=302, resp_headers={"location": f"https://{APP}/silent#error=login_required"
                                                               "&error_description=AADSTS50058&state=sil"})
    fs, hops = findings(tmp_path, poll + [silent] + signin_flows(t0=t + 20))
    assert fs == [] and "callback" in [h.role for h in hops]


def test_federation_saml_post_and_lookalike_urls_are_quiet(tmp_path):
    flows = signin_flows()
    t = flows[0].request.timestamp_start
    saml = flow("POST", f"https://{IDP}/login.srf", t=t + 2, headers={"content-type": "application/x-www-form-urlencoded",
                                                                         "origin": "https://adfs.contoso.test"},
                body=urlencode({"SAMLResponse": "PHNhbWxwOlJlc3BvbnNlPg==", "RelayState": "r"}))
    verify = flow("GET", "https://www.contoso.test/auth/verify-email?code=123456&state=active", t=t + 30)
    fs, hops = findings(tmp_path, flows[:2] + [saml] + flows[2:] + [verify])
    assert fs == []
    assert "verify-email" not in " ".join(h.path for h in hops)


def test_resource_indicator_scope_in_later_answer_and_other_api_refusal(tmp_path):
    """oidc-provider with resource indicators: api:read arrives with the refresh-token answer; the API token
    works at api.test and is refused by other.test for its audience: only wrong_audience."""
    t = time.time() - 60
    authz = flow("GET", "https://idp.test/auth?" + urlencode({"client_id": "rp", "response_type": "code", "state": "s",
                 "redirect_uri": "https://app.test/callback", "scope": "openid profile api:read"}), t=t)
    cb = flow("GET", "https://app.test/callback?code=C1&state=s&iss=https%3A%2F%2Fidp.test", t=t + 2)
    red = flow("POST", "https://idp.test/token", t=t + 2.1, browser=False,
               headers={"content-type": "application/x-www-form-urlencoded"},
               body="grant_type=authorization_code&code=C1&redirect_uri=https%3A%2F%2Fapp.test%2Fcallback",
               resp_headers={"content-type": "application/json"},
               resp_body='{"access_token":"opaque","scope":"openid profile","token_type":"Bearer"}')
    ref = flow("POST", "https://idp.test/token", t=t + 2.3, browser=False,
               headers={"content-type": "application/x-www-form-urlencoded"},
               body="grant_type=refresh_token&refresh_token=R&resource=https%3A%2F%2Fapi.test",
               resp_headers={"content-type": "application/json"},
               resp_body='{"access_token":"x","scope":"api:read","token_type":"Bearer"}')
    jwt_ = make_jwt({"aud": "https://api.test", "exp": t + 3600})
    ok = flow("GET", "https://api.test/data", t=t + 3, browser=False, headers={"authorization": f"Bearer {jwt_}"})
    bad = flow("GET", "https://other.test/data", t=t + 4, browser=False, headers={"authorization": f"Bearer {jwt_}"},
               status=401, resp_headers={"www-authenticate": 'Bearer error="invalid_token", error_description='
                                                             '"aud https://api.test, expected https://other.test"'})
    fs, _ = findings(tmp_path, [authz, cb, red, ref, ok, bad])
    assert kinds(fs) == ["wrong_audience"]


def test_first_redemption_already_redeemed_after_single_callback(tmp_path):
    """One callback, one redemption, and that redemption is refused as already used: another party
    redeemed the code first (the callback itself is delivery, not use)."""
    flows = signin_flows()[:4]
    code = "0.AXoAv4j5cvGGr0GRqy180BHbR-secret-code-value"
    flows.append(token_error(flows[3].request.timestamp_start + 0.2, code, {
        "error": "invalid_grant", "error_description": "AADSTS54005: OAuth2 Authorization code was already redeemed"}))
    fs, _ = findings(tmp_path, flows)
    assert kinds(fs) == ["idp_error", "reused_code"]
    assert "outside the captured traffic" in next(f for f in fs if f["kind"] == "reused_code")["title"]


def test_model_endpoint_and_direct_line_tokens_are_quiet(tmp_path):
    cog = make_jwt({"aud": "https://cognitiveservices.azure.com", "exp": time.time() + 3600})
    dl = make_jwt({"aud": "dl_12345", "exp": time.time() + 3600})
    f1 = flow("POST", f"https://{API}/models/chat/completions?api-version=2024-05-01-preview", browser=False,
              headers={"authorization": f"Bearer {cog}"})
    f2 = flow("POST", "https://directline.botframework.com/v3/directline/conversations", browser=False,
              headers={"authorization": f"Bearer {dl}"})
    assert findings(tmp_path, [f1, f2])[0] == []
    f3 = flow("GET", f"https://{API}/api/projects/p/assistants", browser=False, headers={"authorization": f"Bearer {cog}"})
    assert kinds(findings(tmp_path, [f3])[0]) == ["wrong_audience"]
