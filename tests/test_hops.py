"""flow -> hops: roles from protocol parameters, decoding, and nothing for ordinary traffic."""
import base64
import json
from urllib.parse import urlencode

from authtrace.addons.hops import flow_to_hops
from authtrace.store.records import to_json

from builders import APP, IDP, flow, make_jwt, signin_flows


def hops_of(flows, ctx):
    return [h for f in flows for h in flow_to_hops(f, ctx)]


def test_complete_signin_roles_and_links(ctx):
    hops = hops_of(signin_flows(), ctx)
    assert [h.role for h in hops] == ["authorize", "login", "callback", "token", "jwks", "api"]
    authz, login, cb, token, _, api = hops
    # the same code links the form_post page, the callback and the redemption
    assert login.code_fp == cb.code_fp == token.code_fp and cb.code_fp.startswith("code#")
    assert login.answer.form_post and login.answer.issued_code == cb.code_fp
    assert authz.state == cb.state
    assert authz.state_info.format == "msal"
    assert authz.state_info.value["meta"]["interactionType"] == "redirect"
    assert token.actor == "app" and cb.actor == "browser" and api.actor == "api-client"
    assert token.params.derived["code_verifier_s256"] == authz.params.query["code_challenge"]


def test_tokens_decoded_and_verified_against_captured_jwks(ctx):
    hops = hops_of(signin_flows(), ctx)
    token_hop = hops[3]
    kinds = {t.kind: t for t in token_hop.tokens}
    assert kinds["id_token"].nonce == "n-0S6_WzA2Mj"
    assert kinds["access_token"].aud == ("https://ai.azure.com",)
    assert kinds["refresh_token"].format == "opaque"
    # the JWKS came after the tokens: their signatures are verified once it arrives
    updates = ctx.signatures.take_updates()
    assert updates[kinds["id_token"].fingerprint] == "verified"
    assert hops[5].tokens[0].signature == "verified"  # the API call came after the JWKS


def test_tampered_jwt_fails_signature(ctx):
    hops_of(signin_flows()[5:6], ctx)  # learn the JWKS first
    good = make_jwt({"aud": "x", "exp": 1})
    h, p, s = good.split(".")
    evil = ".".join([h, base64.urlsafe_b64encode(b'{"aud":"y","exp":1}').decode().rstrip("="), s])
    hop = hops_of([flow("GET", "https://api.example.test/v1/x", headers={"authorization": f"Bearer {evil}"})], ctx)
    assert hop[0].tokens[0].signature == "failed"
    assert hop[0].tokens[0].aud == ("y",)


def test_ordinary_traffic_gives_nothing(ctx):
    plain = [
        flow("GET", "https://www.example.com/index.html"),
        flow("GET", "https://shop.example.com/checkout?code=SAVE10&state=CA"),  # not OAuth
        flow("GET", "https://cdn.example.com/app.js?v=3"),
        flow("POST", "https://www.example.com/api/search", body=b'{"q":"state of the art"}'),
    ]
    assert hops_of(plain, ctx) == []


def test_fragment_in_location_becomes_a_callback_hop(ctx):
    tok = make_jwt({"aud": "api://x", "exp": 9999999999, "nonce": "n1"})
    authz = (f"https://{IDP}/common/oauth2/v2.0/authorize?" +
             urlencode({"client_id": "c1", "response_type": "id_token token", "redirect_uri": f"https://{APP}/",
                        "nonce": "n1"}) + "&state=s%3D1")
    loc = f"https://{APP}/#" + urlencode({"access_token": tok, "token_type": "Bearer"}) + "&state=s%3d1"
    hops = hops_of([flow("GET", authz, status=302, resp_headers={"location": loc})], ctx)
    assert [h.role for h in hops] == ["authorize", "callback"]
    cb = hops[1]
    assert cb.state == hops[0].state == "s=1"  # %3D and %3d are the same state
    assert cb.from_fragment and not hops[0].from_fragment
    assert cb.tokens[0].aud == ("api://x",)
    assert tok not in json.dumps(to_json(cb)) and tok not in hops[0].answer.location


def test_error_redirect_and_aadsts_text(ctx):
    url = (f"https://{APP}/callback?error=invalid_request&error_description=" +
           "AADSTS50011%3A+The+redirect+URI+%27https%3A%2F%2Fapp%2Fcb%27+does+not+match.+Trace+ID%3A+"
           "0f1e2d3c-4b5a-6978-8a9b-0c1d2e3f4a5b+Correlation+ID%3A+11111111-2222-3333-4444-555555555555&state=abc")
    hop = hops_of([flow("GET", url, headers={"referer": f"https://{IDP}/"})], ctx)[0]
    assert hop.role == "callback" and hop.is_error
    assert hop.error.error_codes == (50011,)
    assert hop.error.trace_id == "0f1e2d3c-4b5a-6978-8a9b-0c1d2e3f4a5b"
    assert hop.error.correlation_id == "11111111-2222-3333-4444-555555555555"


def test_token_error_json(ctx):
    body = {"error": "invalid_grant", "error_description": "AADSTS54005: OAuth2 Authorization code was already "
            "redeemed, please retry with a new valid code.", "error_codes": [54005],
            "trace_id": "t-1", "correlation_id": "c-1", "timestamp": "2026-11-26 10:00:00Z"}
    f = flow("POST", f"https://{IDP}/common/oauth2/v2.0/token", browser=False,
             headers={"content-type": "application/x-www-form-urlencoded"},
             body=urlencode({"grant_type": "authorization_code", "code": "abc", "client_id": "c"}),
             status=400, resp_headers={"content-type": "application/json"}, resp_body=json.dumps(body))
    hop = hops_of([f], ctx)[0]
    assert hop.role == "token" and hop.is_error
    assert hop.error.error == "invalid_grant" and hop.error.error_codes == (54005,)
    assert hop.error.trace_id == "t-1" and hop.error.correlation_id == "c-1"


def test_provider_redirect_handlers_are_callbacks(ctx):
    foundry = flow("GET", "https://eastus.api.azureml.ms/agent-oauth/v1.0/redirect?code=abc&state=xyz",
                   status=400, resp_headers={"content-type": "text/plain"},
                   resp_body="Authentication code has already been redeemed. Please re-login.")
    bot = flow("GET", "https://europe.token.botframework.com/.auth/web/redirect?code=def&state=s2")
    hops = hops_of([foundry, bot], ctx)
    assert [h.role for h in hops] == ["callback", "callback"]
    assert hops[0].error.message.startswith("Authentication code has already been redeemed")


def test_discovery_teaches_endpoints(ctx):
    disc = flow("GET", "https://idp.example.test/.well-known/openid-configuration", browser=False,
                resp_headers={"content-type": "application/json"},
                resp_body=json.dumps({"issuer": "https://idp.example.test", "token_endpoint":
                                      "https://idp.example.test/connect/tok", "authorization_endpoint":
                                      "https://idp.example.test/connect/az", "userinfo_endpoint":
                                      "https://idp.example.test/connect/me"}))
    me = flow("GET", "https://idp.example.test/connect/me", browser=False, headers={"authorization": "Bearer abc"})
    roles = [h.role for h in hops_of([disc, me], ctx)]
    assert roles == ["discovery", "userinfo"]


def test_par_and_device_and_logout(ctx):
    par = flow("POST", "https://idp.example.test/as/par", browser=False,
               headers={"content-type": "application/x-www-form-urlencoded"},
               body=urlencode({"client_id": "c", "response_type": "code", "redirect_uri": "https://a/cb"}),
               status=201, resp_headers={"content-type": "application/json"},
               resp_body='{"request_uri":"urn:ietf:params:oauth:request_uri:x","expires_in":60}')
    az = flow("GET", "https://idp.example.test/authorize?client_id=c&request_uri=urn%3Aietf%3Aparams%3Aoauth%3Arequest_uri%3Ax")
    dev = flow("POST", "https://idp.example.test/oauth2/devicecode", browser=False,
               headers={"content-type": "application/x-www-form-urlencoded"}, body="client_id=c&scope=openid")
    out = flow("GET", "https://idp.example.test/oidc/logout?post_logout_redirect_uri=https%3A%2F%2Fa%2F")
    roles = [h.role for h in hops_of([par, az, dev, out], ctx)]
    assert roles == ["authorize", "authorize", "device", "logout"]


def test_flow_without_response_is_kept_as_error(ctx):
    from mitmproxy.flow import Error

    f = flow("POST", f"https://{IDP}/common/oauth2/v2.0/token", browser=False, status=0,
             headers={"content-type": "application/x-www-form-urlencoded"},
             body="grant_type=refresh_token&refresh_token=r")
    f.error = Error("connection killed")
    hop = hops_of([f], ctx)[0]
    assert hop.status is None and hop.is_error and "killed" in hop.error.error_description


def test_broken_jwt_does_not_lose_the_hop(ctx):
    for bad in ("eyJhbGciOi.e30", "eyJhbGciOiJIUzI1NiJ9.!!!.sig", "eyJ" + "A" * 70000 + ".e30.x"):
        hops = hops_of([flow("GET", "https://api.example.test/x", headers={"authorization": f"Bearer {bad}"})], ctx)
        assert hops and hops[0].role == "api"
        assert hops[0].tokens[0].format == "opaque"
