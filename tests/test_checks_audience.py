"""wrong_audience: a token for another resource, from the token, the request, or the refusal."""

import json
import time
from urllib.parse import urlencode

from builders import API, APP, CLIENT_ID, IDP, TENANT, flow, make_jwt, signin_flows
from checkkit import findings, kinds


def test_arm_token_at_foundry_endpoint_is_wrong_audience(tmp_path):
    flows = signin_flows(api_aud="https://management.azure.com/")
    api = flows[-1]
    api.response.status_code = 401
    api.response.headers["www-authenticate"] = 'Bearer error="invalid_token", error_description="audience is invalid"'
    fs, _ = findings(tmp_path, flows)
    assert kinds(fs) == ["wrong_audience"]
    assert "Azure Resource Manager" in fs[0].title and API in fs[0].title
    assert "ai.azure.com" in fs[0].next_step


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
    assert "management.core.windows.net" in fs[0].title


def test_401_naming_the_audience(tmp_path):
    body = {"error": {"code": "InvalidAuthenticationTokenAudience", "message": "The access token has been obtained "
            "for wrong audience or resource 'https://vault.azure.net'. It should exactly match with one of the allowed "
            "audiences 'https://api.contoso.test'."}}
    api = flow("GET", "https://api.contoso.test/v1/items", browser=False, headers={"authorization": "Bearer abc.def"},
               status=401, resp_headers={"content-type": "application/json"}, resp_body=json.dumps(body))
    fs, _ = findings(tmp_path, [api])
    assert kinds(fs) == ["wrong_audience"] and "https://vault.azure.net" in fs[0].details["named"]


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


def test_401_listing_several_causes_is_no_evidence_when_the_aud_fits(tmp_path):
    """Azure OpenAI's 401 lists every possible cause ("missing, invalid, audience is incorrect, or have
    expired"): with a readable token whose aud fits the API, it is no wrong_audience."""
    host = "contoso.openai.azure.com"
    good = make_jwt({"aud": "https://cognitiveservices.azure.com", "exp": time.time() + 3600})
    body = {"error": {"code": "401", "message": "Unauthorized. Access token is missing, invalid, audience is incorrect "
                      "(https://cognitiveservices.azure.com), or have expired."}}
    api = flow("POST", f"https://{host}/openai/deployments/gpt/chat/completions?api-version=2024-10-21", browser=False,
               headers={"authorization": f"Bearer {good}", "content-type": "application/json"}, body='{"messages":[]}',
               status=401, resp_headers={"content-type": "application/json"}, resp_body=json.dumps(body))
    assert findings(tmp_path, [api])[0] == []
    # the same words about an opaque token: still no evidence of a wrong audience
    opaque = api.copy()
    opaque.request.headers["authorization"] = "Bearer opaque-token-value-0123456789"
    assert findings(tmp_path, [opaque])[0] == []
    # a token for another resource: its aud decides, not the words
    arm = make_jwt({"aud": "https://management.azure.com/", "exp": time.time() + 3600})
    wrong = api.copy()
    wrong.request.headers["authorization"] = f"Bearer {arm}"
    fs, _ = findings(tmp_path, [wrong])
    assert kinds(fs) == ["wrong_audience"] and "Azure Resource Manager" in fs[0].title
