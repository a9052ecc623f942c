"""idp_error and failed_hop: errors the answers name, and normal answers that are not errors."""

import json
import time
from urllib.parse import urlencode

from builders import APP, CLIENT_ID, IDP, TENANT, chrome_har, flow, signin_flows
from checkkit import OP, findings, foundry, kinds, one, op_steps, token_error


def test_idp_error_redirect_explained_with_ids(tmp_path):
    cb = flow("GET", f"https://{APP}/signin-oidc?" + urlencode({
        "error": "invalid_request", "error_description": "AADSTS50011: The redirect URI 'https://app/x' specified in "
        "the request does not match the redirect URIs configured for the application. Trace ID: "
        "aaaaaaaa-bbbb-cccc-dddd-eeeeeeeeeeee Correlation ID: 12345678-1234-1234-1234-123456789abc", "state": "s1"}),
        headers={"referer": f"https://{IDP}/"})
    fs, _ = findings(tmp_path, [cb])
    assert kinds(fs) == ["idp_error"]
    assert "AADSTS50011" in fs[0].title and "redirect" in fs[0].explanation.lower()
    assert fs[0].details["trace_id"] == "aaaaaaaa-bbbb-cccc-dddd-eeeeeeeeeeee"


def test_rfc6749_error_explained(tmp_path):
    tok = token_error(time.time(), "c", {"error": "invalid_client", "error_description": "client authentication failed"}, 401)
    fs, _ = findings(tmp_path, [tok])
    assert kinds(fs) == ["idp_error"] and "invalid_client" in fs[0].title


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


CORR, SESS = "1f2e3d4c-5b6a-4978-8a9b-0c1d2e3f4a5b", "a1b2c3d4-e5f6-4a7b-8c9d-0e1f2a3b4c5d"


def entra_error_page(t: float, code: int, message: str) -> "flow":
    """Entra's sign-in error page as it is served: 200, HTML, the error in the $Config object."""
    cfg = {"iMaxStackForKnockoutAsyncComponents": 10000, "strMainMessage": "Sorry, but we're having trouble signing "
           "you in.", "strAdditionalMessage": "", "strServiceExceptionMessage": message, "iErrorCode": code,
           "sErrorCode": str(code), "iHttpErrorCode": 400, "iViewId": 1, "urlCancel": f"https://{APP}/signin-oidc",
           "strTimestamp": "2026-12-01T09:12:03Z", "correlationId": CORR, "sessionId": SESS,
           "pgid": "ConvergedError", "hpgid": 1117, "sCanaryTokenName": "canary", "canary": "secret-canary-value"}
    body = ("<!DOCTYPE html><html dir=\"ltr\"><head><title>Sign in to your account</title><script "
            "type=\"text/javascript\">//<![CDATA[\n$Config=" + json.dumps(cfg) + ";\n//]]></script></head>"
            "<body><div id=\"root\"></div></body></html>")
    return flow("GET", f"https://{IDP}/{TENANT}/oauth2/v2.0/authorize?" + urlencode({
        "client_id": CLIENT_ID, "response_type": "code", "redirect_uri": f"https://{APP}/wrong", "state": "s1",
        "nonce": "n1"}), t=t, resp_headers={"content-type": "text/html; charset=utf-8"}, resp_body=body)


def test_entra_error_page_config_is_idp_error_with_ids(tmp_path):
    page = entra_error_page(time.time() - 10, 50011, "AADSTS50011: The redirect URI 'https://app.contoso.test/wrong' "
                            "specified in the request does not match the redirect URIs configured for the application "
                            "'11111111-2222-3333-4444-555555555555'.")
    fs, hops = findings(tmp_path, [page])
    assert kinds(fs) == ["idp_error"]
    f = fs[0]
    assert "AADSTS50011" in f.title and "Microsoft Entra ID error page" in f.title
    assert f.details["correlation_id"] == CORR and f.details["session_id"] == SESS
    assert f.details["timestamp"] == "2026-12-01T09:12:03Z" and CORR in f.explanation
    assert "secret-canary-value" not in json.dumps([h.body_excerpt for h in hops] + [f.explanation])


def test_login_page_config_without_error_is_quiet(tmp_path):
    flows = signin_flows()
    flows[0].response.content = (b"<html><script>$Config={\"iErrorCode\":0,\"sErrorCode\":\"\",\"pgid\":\"ConvergedSignIn\","
                                 b"\"strServiceExceptionMessage\":\"\",\"correlationId\":\"" + CORR.encode() + b"\"};</script>")
    assert findings(tmp_path, flows)[0] == []


def b2c_error_redirect(t: float, description: str) -> "flow":
    return flow("POST", f"https://{APP}/signin-oidc", t=t, headers={
        "content-type": "application/x-www-form-urlencoded", "origin": "https://contoso.b2clogin.com",
        "referer": "https://contoso.b2clogin.com/"},
        body=urlencode({"error": "access_denied", "error_description": description, "state": "s1"}))


def test_b2c_forgot_password_and_cancel_are_signals_for_the_app(tmp_path):
    t = time.time() - 30
    fs, _ = findings(tmp_path, [b2c_error_redirect(t, "AADB2C90118: The user has forgotten their password.\r\n"
                                                      "Correlation ID: " + CORR + "\r\nTimestamp: 2026-12-01 09:00:00Z")])
    assert kinds(fs) == ["idp_error"]
    f = fs[0]
    assert "AADB2C90118" in f.title and f.severity == "warning" and f.details["b2c"] == "AADB2C90118"
    assert "not a fault of the provider" in f.explanation and "password-reset" in f.next_step
    assert f.details["correlation_id"] == CORR
    fs, _ = findings(tmp_path, [b2c_error_redirect(t, "AADB2C90091: The user has cancelled entering self-asserted "
                                                      "information.")])
    assert "AADB2C90091" in fs[0].title and "cancel" in fs[0].explanation.lower() and fs[0].severity == "warning"


def test_other_providers_error_pages(tmp_path):
    t = time.time() - 30
    google = flow("GET", "https://accounts.google.com/o/oauth2/v2/auth?" + urlencode({
        "client_id": "123-abc.apps.googleusercontent.com", "response_type": "code", "redirect_uri": "http://app.test/cb",
        "scope": "openid"}), t=t, status=400, resp_headers={"content-type": "text/html; charset=utf-8"},
        resp_body="<html><title>Error 400 (OAuth2 Error)</title><body><div><h1>Access blocked: This app’s request is "
                  "invalid</h1><p>You can’t sign in because this app sent an invalid request.</p><p>Error 400: "
                  "redirect_uri_mismatch</p><p>You can't sign in to this app because it doesn't comply with Google's "
                  "OAuth 2.0 policy.</p><p>Request details: redirect_uri=http://app.test/cb</p></div></body></html>")
    fs, _ = findings(tmp_path, [google])
    assert kinds(fs) == ["idp_error"] and "redirect_uri_mismatch (Google error page)" in fs[0].title
    keycloak = flow("GET", "https://sso.contoso.test/realms/main/protocol/openid-connect/auth?" + urlencode({
        "client_id": "web", "response_type": "code", "redirect_uri": "https://app.test/wrong", "state": "s"}), t=t,
        status=400, resp_headers={"content-type": "text/html;charset=utf-8"},
        resp_body="<html><head><title>Sign in to main</title></head><body><div id=\"kc-content\"><div id=\"kc-error-"
                  "message\">\n<p class=\"instruction\">Invalid parameter: redirect_uri</p></div></div></body></html>")
    fs, _ = findings(tmp_path, [keycloak])
    assert kinds(fs) == ["idp_error"] and "invalid_redirect_uri (Keycloak error page)" in fs[0].title
    assert "Invalid parameter: redirect_uri" in fs[0].explanation


FOUNDRY_ENVELOPE = {
    "error": {"code": "UserError", "severity": None, "message": "OAuth redirection processing failed. Please re-login.",
              "messageFormat": None, "messageParameters": None, "referenceCode": None, "detailsUri": None,
              "target": None,
              "details": [{"code": "BadRequest", "message": "Authentication code has already been redeemed.",
                           "details": []}],
              "innerError": {"code": "BadArgument", "innerError": {"code": "AuthCodeRedeemed"}},
              "debugInfo": None, "additionalInfo": None},
    "correlation": {"operation": "4b0a1c2d3e4f5a6b7c8d9e0f1a2b3c4d", "request": "7c5e3f1a9b2d4e6f"},
    "environment": "eastus", "location": "eastus", "time": "2026-12-01T09:30:00.1234567+00:00",
    "componentName": "agent-oauth", "statusCode": 400}


def test_foundry_handler_envelope_shows_the_specific_message_and_ids(tmp_path):
    t = time.time() - 30
    flows = [foundry(t, "CODE-F3", 400, json.dumps(FOUNDRY_ENVELOPE))]
    flows[0].response.headers["content-type"] = "application/json; charset=utf-8"
    fs, hops = findings(tmp_path, flows)
    # the handler's answer is the app side, not an identity-provider error: the code was used before
    assert kinds(fs) == ["reused_code"]
    f = fs[0]
    assert "Authentication code has already been redeemed." in f.explanation
    assert "operation id 4b0a1c2d3e4f5a6b7c8d9e0f1a2b3c4d" in f.explanation and "request id 7c5e3f1a9b2d4e6f" in f.explanation
    assert f.details["operation_id"] == "4b0a1c2d3e4f5a6b7c8d9e0f1a2b3c4d"
    e = hops[0].error
    assert e.inner_code == "AuthCodeRedeemed" and e.specific == "Authentication code has already been redeemed."


def test_handler_failure_nothing_explains_is_failed_hop_with_its_specific_message(tmp_path):
    envelope = json.loads(json.dumps(FOUNDRY_ENVELOPE))
    envelope["error"]["details"][0]["message"] = "The OAuth connection 'github-conn' was not found in the project."
    flows = [foundry(time.time() - 30, "CODE-F4", 400, json.dumps(envelope))]
    flows[0].response.headers["content-type"] = "application/json"
    fs, _ = findings(tmp_path, flows)
    assert kinds(fs) == ["failed_hop"]
    assert "'github-conn' was not found" in fs[0].explanation and "the app's answer" in fs[0].explanation
    assert fs[0].details["request_id"] == "7c5e3f1a9b2d4e6f"


def test_rfc7807_problem_details_message(tmp_path):
    flows = signin_flows()[:4]
    cb = flows[3]
    cb.response.status_code = 400
    cb.response.headers["content-type"] = "application/problem+json"
    del cb.response.headers["location"]
    cb.response.content = json.dumps({"type": "https://tools.ietf.org/html/rfc9110#section-15.5.1",
                                      "title": "One or more validation errors occurred.", "status": 400,
                                      "detail": "The sign-in callback could not be completed.",
                                      "traceId": "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-00",
                                      "errors": {"code": ["The code field is required."]}}).encode()
    fs, hops = findings(tmp_path, flows)
    assert kinds(fs) == ["failed_hop"]
    assert "code: The code field is required." in fs[0].explanation
    assert hops[2].error.trace_id == "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-00"


def test_app_callback_error_explained_by_the_refused_redemption(tmp_path):
    """The app's 400 callback page is evidence of the finding that explains it (the token request it
    made was refused for its redirect_uri), with the app's message, not a failed_hop of its own."""
    flows = signin_flows()
    flows[4].request.content = flows[4].request.content.replace(b"signin-oidc", b"signin-oidc%2F")
    flows[4].response.status_code = 400
    flows[4].response.content = json.dumps({"error": "invalid_grant", "error_description": "AADSTS50011: The redirect "
                                            "URI specified in the request does not match.", "error_codes": [50011]}).encode()
    cb = flows[3]
    cb.response.status_code = 400
    del cb.response.headers["location"]
    cb.response.headers["content-type"] = "text/plain"
    cb.response.content = b"Sign-in failed: invalid_grant"
    cb.response.timestamp_end = flows[4].response.timestamp_end + 0.01
    fs, _ = findings(tmp_path, flows)
    assert kinds(fs) == ["idp_error", "redirect_uri_mismatch"]
    f = one(fs, "redirect_uri_mismatch")
    assert "callback" in [h.role for h in f.evidence] and "“Sign-in failed: invalid_grant”" in f.explanation


def _device(t: float, polls: list[str], *, expires_in: int = 900, interval: int | None = 5) -> list:
    start = flow("POST", f"https://{IDP}/organizations/oauth2/v2.0/devicecode", t=t, browser=False,
                 headers={"content-type": "application/x-www-form-urlencoded"},
                 body=urlencode({"client_id": CLIENT_ID, "scope": "openid offline_access"}),
                 resp_headers={"content-type": "application/json"},
                 resp_body=json.dumps({"user_code": "FJXKQ2L7Z", "device_code": "DAQABAAEAAAD-device-code-value",
                                       "verification_uri": "https://microsoft.com/devicelogin", "expires_in": expires_in,
                                       **({"interval": interval} if interval else {}),
                                       "message": "To sign in, use a web browser to open the page "
                                                  "https://microsoft.com/devicelogin and enter the code FJXKQ2L7Z."}))
    out = [start]
    for i, err in enumerate(polls):
        out.append(flow("POST", f"https://{IDP}/organizations/oauth2/v2.0/token", t=t + 5 * (i + 1), browser=False,
                        headers={"content-type": "application/x-www-form-urlencoded"},
                        body=urlencode({"grant_type": "urn:ietf:params:oauth:grant-type:device_code",
                                        "client_id": CLIENT_ID, "device_code": "DAQABAAEAAAD-device-code-value"}),
                        status=400, resp_headers={"content-type": "application/json"},
                        resp_body=json.dumps({"error": err, "error_description": f"AADSTS{ {'authorization_pending': 70016, 'expired_token': 70020, 'access_denied': 70000}[err]}: {err}",
                                              "error_codes": [{'authorization_pending': 70016, 'expired_token': 70020,
                                                               'access_denied': 70000}[err]]})))
    return out


def test_device_flow_outcomes_explained_with_timings(tmp_path):
    t = time.time() - 1000
    fs, _ = findings(tmp_path, _device(t, ["authorization_pending"] * 3 + ["expired_token"], expires_in=20))
    assert kinds(fs) == ["idp_error"]
    f = fs[0]
    assert "did not complete the device sign-in in time" in f.title
    assert "valid for 20 s" in f.explanation and "polling interval 5 s" in f.explanation
    assert "polled 4 times, every 5 s" in f.explanation and "3 answers said authorization_pending" in f.explanation
    assert "20 s after the code was issued" in f.explanation
    fs, _ = findings(tmp_path, _device(t, ["authorization_pending"] * 2 + ["access_denied"]))
    assert "the user declined the device sign-in" in fs[0].title and "declined" in fs[0].explanation


def test_unknown_outcome_is_not_a_failed_step_when_the_sign_in_went_on(tmp_path):
    """A recorder that wrote status 0 for a redirect, and a navigation Chrome aborted (status -1/0,
    _error net::ERR_ABORTED) because the app started the same sign-in again at once: no failed step."""
    flows = signin_flows()
    aborted = flows[0].copy()
    aborted.request.url = aborted.request.url.replace("state=", "state=first-")
    aborted.request.timestamp_start -= 0.03
    har = chrome_har([aborted] + flows)
    first = har["log"]["entries"][0]
    first["response"].update(status=0, statusText="", _error="net::ERR_ABORTED", headers=[], content={"size": 0})
    cb = har["log"]["entries"][4]
    assert "signin-oidc" in cb["request"]["url"]
    cb["response"]["status"] = 0  # a recorder that does not know the redirect's outcome
    fs, hops = findings(tmp_path, None, har=har)
    assert fs == [] and [h.status for h in hops[:2]] == [None, 200]
    # the same unknown outcome with nothing after it is a failed step
    fs, _ = findings(tmp_path, None, har={"log": {"entries": har["log"]["entries"][:1]}})
    assert kinds(fs) == ["failed_hop"]


def test_dcr_par_and_revocation_errors_are_explained(tmp_path):
    t = time.time() - 30
    dcr = flow("POST", "https://auth.contoso.test/register", t=t, browser=False,
               headers={"content-type": "application/json"},
               body=json.dumps({"client_name": "Claude MCP client", "redirect_uris": ["http://127.0.0.1:33418/callback"],
                                "grant_types": ["authorization_code", "refresh_token"],
                                "token_endpoint_auth_method": "none"}),
               status=400, resp_headers={"content-type": "application/json"},
               resp_body=json.dumps({"error": "invalid_redirect_uri", "error_description": "http redirect URIs are "
                                     "only allowed for localhost"}))
    par = flow("POST", "https://auth.contoso.test/par", t=t + 1, browser=False,
               headers={"content-type": "application/x-www-form-urlencoded"},
               body=urlencode({"client_id": "web", "response_type": "code", "redirect_uri": "https://app.test/cb",
                               "scope": "openid", "code_challenge": "x" * 43, "code_challenge_method": "S256"}),
               status=400, resp_headers={"content-type": "application/json"},
               resp_body=json.dumps({"error": "invalid_request", "error_description": "redirect_uri not allowed"}))
    revoke = flow("POST", "https://auth.contoso.test/oauth2/revoke", t=t + 2, browser=False,
                  headers={"content-type": "application/x-www-form-urlencoded"},
                  body=urlencode({"token": "opaque-access-token-value", "token_type_hint": "access_token",
                                  "client_id": "web"}),
                  status=400, resp_headers={"content-type": "application/json"},
                  resp_body=json.dumps({"error": "unsupported_token_type", "error_description": "only refresh tokens"}))
    fs, hops = findings(tmp_path, [dcr, par, revoke])
    assert len(hops) == 3 and kinds(fs) == ["idp_error"] and len(fs) == 3
    by = {f.details["error"]: f for f in fs}
    assert "Dynamic client registration (RFC 7591)" in by["invalid_redirect_uri"].explanation
    assert "redirect URI is not allowed" in by["invalid_redirect_uri"].title
    assert "pushed authorization request (PAR, RFC 9126)" in by["invalid_request"].explanation
    assert "token revocation request (RFC 7009)" in by["unsupported_token_type"].explanation


def test_consent_required_after_an_interactive_prompt_says_what_the_capture_shows(tmp_path):
    flows = signin_flows()[:3]
    t = flows[2].request.timestamp_start + 1
    cb = flow("POST", f"https://{APP}/signin-oidc", t=t, headers={
        "content-type": "application/x-www-form-urlencoded", "origin": f"https://{IDP}", "referer": f"https://{IDP}/"},
        body=urlencode({"error": "consent_required", "error_description": "AADSTS65004: User declined to consent to "
                        "access the app.", "state": "irrelevant"}))
    fs, _ = findings(tmp_path, flows + [cb])
    f = one(fs, "idp_error")
    assert "prompt=none" not in f.explanation.replace("did not use prompt=none", "")
    assert "User declined to consent" in f.explanation
    plain = flow("GET", f"https://{APP}/signin-oidc?" + urlencode({"error": "consent_required",
                 "error_description": "consent not given", "state": "s9"}), t=t, headers={"referer": f"https://{OP}/"})
    start = op_steps("C", t - 5, state="s9")[0]
    fs, _ = findings(tmp_path, start + [plain])
    f = one(fs, "idp_error")
    assert "did not use prompt=none" in f.explanation and "user declined consent" in f.explanation
    assert "“consent not given”" in f.explanation


def test_adfs_error_page_names_msis_code_and_activity_id(tmp_path):
    page = flow("GET", "https://adfs.contoso.test/adfs/oauth2/authorize?" + urlencode({
        "client_id": "web", "response_type": "code", "redirect_uri": "https://app.test/wrong", "state": "s"}),
        t=time.time() - 30, resp_headers={"content-type": "text/html; charset=utf-8"},
        resp_body="<html><head><title>Sign In</title></head><body><div id=\"errorArea\"><div id=\"openingMessage\">"
                  "An error occurred. Contact your administrator for more information.</div><div id=\"errorDetails\">"
                  "<span class=\"bold\">Error details</span><ul><li>Activity ID: 00000000-0000-0000-5c26-0080000000cf"
                  "</li><li>Error details: MSIS9224: Received invalid OAuth authorization request. The received "
                  "'redirect_uri' parameter is not a valid registered redirect URI for the client identifier: "
                  "'web'.</li><li>Error time: Tue, 01 Dec 2026 10:00:00 GMT</li></ul></div></div></body></html>")
    fs, _ = findings(tmp_path, [page])
    assert kinds(fs) == ["idp_error"] and "MSIS9224 (ADFS error page)" in fs[0].title
    assert fs[0].details["correlation_id"] == "00000000-0000-0000-5c26-0080000000cf"
    assert "not a valid registered redirect URI" in fs[0].explanation
