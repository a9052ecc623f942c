"""idp_error and failed_hop: errors the answers name, and normal answers that are not errors."""

import time
from urllib.parse import urlencode

from builders import APP, CLIENT_ID, IDP, flow, signin_flows
from checkkit import findings, kinds, token_error


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

