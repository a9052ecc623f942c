"""The `authtrace` content view through mitmproxy's own content-view machinery (the "auto"
choice that the console and mitmweb make), under whichever mitmproxy generation is installed:
12's `Contentview` registry or 11's `View` list."""
from __future__ import annotations

import base64
import json
import re
import time

import pytest
from mitmproxy import contentviews
from mitmproxy.test import taddons

from authtrace.addons import capture, views

from builders import CLIENT_ID, jwks, make_jwt, signin_flows
from builders import flow as make_flow

MITMPROXY_12 = hasattr(contentviews, "Contentview")
ISO_Z = r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\dZ"


def auto(message, flow) -> tuple[str, str]:
    """(name of the view mitmproxy chose, its text), as the inspector shows it."""
    if MITMPROXY_12:
        r = contentviews.prettify_message(message, flow)
        return r.view_name or "", r.text
    desc, lines, error = contentviews.get_message_content_view("auto", message, flow)
    assert error is None, error
    return desc.split(":")[0], "\n".join("".join(text for _, text in line) for line in lines)


@pytest.fixture
def registered():
    addon = views.ContentViews()
    with taddons.context(addon):
        yield addon
    addon.done()


def test_view_is_registered_natively_for_this_generation(registered):
    if MITMPROXY_12:
        view = contentviews.registry["authtrace"]
        assert isinstance(view, contentviews.Contentview) and not isinstance(view, contentviews.View)
    else:
        from mitmproxy.contentviews.base import View

        assert isinstance(contentviews.get("authtrace"), View)


def test_token_answer_shows_claims_with_utc_times_and_no_raw_token(registered):
    t = time.time()
    exp = int(t) - 300
    token = make_jwt({"aud": "https://ai.azure.com", "iat": exp - 3600, "nbf": exp - 3600, "exp": exp,
                      "scp": "user_impersonation"})
    f = make_flow("POST", "https://idp.test/token", body="grant_type=authorization_code&code=CODE-SECRET-1",
                  headers={"content-type": "application/x-www-form-urlencoded"}, t=t,
                  resp_headers={"content-type": "application/json"},
                  resp_body=json.dumps({"access_token": token, "token_type": "Bearer", "expires_in": 3599,
                                        "refresh_token": "RT-SECRET-2"}))
    name, text = auto(f.response, f)
    assert name == "authtrace"
    assert re.search(rf"exp: {exp} = {ISO_Z} \(expired 5 min before this message\)", text), text
    assert re.search(rf"iat: {exp - 3600} = {ISO_Z} \(65 min before this message\)", text)
    assert "aud: https://ai.azure.com" in text and "alg: RS256" in text and "(signature dropped)" in text
    assert re.search(r"refresh_token: refresh_token#[0-9a-f]{10}", text)
    assert token not in text and token.rsplit(".", 1)[1] not in text and "RT-SECRET-2" not in text
    name, text = auto(f.request, f)  # the token request's form
    assert name == "authtrace" and "grant_type: authorization_code" in text and "CODE-SECRET-1" not in text
    assert re.search(r"code: code#[0-9a-f]{10}", text)


@pytest.mark.parametrize("state,shown", [
    (base64.urlsafe_b64encode(json.dumps({"id": "f00", "meta": {"interactionType": "redirect"}}).encode())
     .decode().rstrip("="), ['format: msal', 'value: {"id": "f00", "meta": {"interactionType": "redirect"}}']),
    ("af0ifjsldkj-opaque", ["format: opaque, 18 characters"]),
    (make_jwt({"return_to": "/home", "exp": 2000000000}), ["format: jwt", "return_to: /home",
                                                           "exp: 2000000000 = 2033-05-18T03:33:20Z"]),
])
def test_callback_query_shows_the_decoded_state(registered, state, shown):
    f = make_flow("GET", "https://app.test/callback?" + f"code=CB-CODE-SECRET&state={state}&session_state=x",
                  status=302, resp_headers={"location": "/"})
    name, text = auto(f.request, f)
    assert name == "authtrace"
    for s in shown:
        assert s in text, text
    assert "CB-CODE-SECRET" not in text
    if state.count(".") == 2:  # a JWT: shown decoded, never raw
        assert state not in text and re.search(r"JWT in state: state#[0-9a-f]{10}", text)


def test_bearer_on_a_bodiless_api_call_and_a_bare_jwt_body(registered):
    token = make_jwt({"aud": "api://x", "exp": 2000000000})
    f = make_flow("GET", "https://api.test/me", headers={"authorization": f"Bearer {token}"}, browser=False,
                  resp_headers={"content-type": "application/jwt"}, resp_body=make_jwt({"sub": "u1"}))
    name, text = auto(f.request, f)
    assert name == "authtrace" and "JWT in Authorization: Bearer: access_token#" in text and "aud: api://x" in text
    name, text = auto(f.response, f)
    assert name == "authtrace" and "JWT in the body" in text and "sub: u1" in text


def test_form_post_page_and_redirect_fragment(registered):
    page = ('<html><body onload="document.forms[0].submit()"><form method="POST" action="https://app.test/cb">'
            '<input type="hidden" name="code" value="FP-CODE-SECRET"/><input type="hidden" name="state" '
            'value="s-42"/></form></body></html>')
    f = make_flow("POST", "https://idp.test/login", resp_headers={"content-type": "text/html"}, resp_body=page)
    name, text = auto(f.response, f)
    assert name == "authtrace" and "form_post page:" in text and "state: s-42" in text
    assert "FP-CODE-SECRET" not in text
    idt = make_jwt({"aud": CLIENT_ID, "nonce": "n1", "exp": 2000000000})
    f = make_flow("GET", "https://idp.test/authorize?client_id=c&response_type=id_token", status=302,
                  resp_headers={"location": f"https://app.test/cb#id_token={idt}&state=s-43"})
    name, text = auto(f.response, f)
    assert name == "authtrace" and "Location fragment:" in text and "nonce: n1" in text and idt not in text


def test_ordinary_traffic_keeps_mitmproxys_own_views(registered):
    f = make_flow("GET", "https://shop.test/api/cart?page=2", resp_headers={"content-type": "application/json"},
                  resp_body='{"items": [1, 2], "code": 7}')
    assert auto(f.response, f)[0] != "authtrace"
    assert auto(f.request, f)[0] != "authtrace"
    assert views.decode_message(b'{"items": []}', f.response).priority == 0
    f = make_flow("GET", "https://shop.test/checkout?code=SAVE10", status=200)
    assert auto(f.request, f)[0] != "authtrace"  # a code alone is no sign-in


def test_signature_state_comes_from_the_recording_session(tmp_path):
    """With the capture addon loaded, a token verified against the session's JWKS says so."""
    a, cv = capture.AuthTrace(), views.ContentViews()
    flows = signin_flows()
    with taddons.context(a, cv) as tctx:
        tctx.configure(a, authtrace_db=str(tmp_path / "v.db"), authtrace_print=False)
        a.running()
        for f in flows:
            a.requestheaders(f)
            a.response(f)
        token_flow = flows[4]
        name, text = auto(token_flow.response, token_flow)
        code_fp = a.context.fpr.fp(token_flow.request.urlencoded_form["code"], "code")
        assert name == "authtrace" and "verified against the JWKS seen in this session" in text
        assert code_fp in auto(token_flow.request, token_flow)[1]  # the same fingerprint as the database
        a.done()
    cv.done()
    assert jwks()["keys"][0]["kid"] in text
