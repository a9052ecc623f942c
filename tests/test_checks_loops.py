"""redirect_loop: sign-in attempts started again and again (not one sign-in's repeated requests)."""

import json
import time
from urllib.parse import urlencode

from builders import APP, CLIENT_ID, IDP, TENANT, flow
from checkkit import findings, kinds, one, op_steps


def loop_attempts(n: int, t: float):
    """The app sends the browser back to sign in after each callback: n attempts, each with a new state
    and nonce (as a client starting a sign-in makes them), each coming back to the callback."""
    out = []
    for i in range(n):
        st = f"state-{i}-abcdef"
        for step in op_steps(f"L{i}", t + i * 2.5, state=st, nonce=f"nonce-{i}", challenge=f"ch-{i}" + "x" * 40):
            out += step
    return out


def test_redirect_loop_counts_attempts_that_came_back(tmp_path):
    fs, _ = findings(tmp_path, loop_attempts(4, time.time() - 60))
    assert kinds(fs) == ["redirect_loop"]
    f = one(fs, "redirect_loop")
    assert "started the sign-in 4 times" in f.title
    assert [h.role for h in f.evidence].count("authorize") == 4 and "callback" in [h.role for h in f.evidence]


def test_provider_round_trip_through_its_authorize_url_is_not_a_loop(tmp_path):
    """django-oauth-toolkit and Authlib post their login and consent forms back to the authorize URL:
    one sign-in, three requests to it (same state), one code. Not a loop."""
    t = time.time() - 60
    q = urlencode({"response_type": "code", "client_id": "rp", "redirect_uri": "https://client.test/callback",
                   "scope": "openid", "state": "S1", "nonce": "N1", "code_challenge": "c" * 43,
                   "code_challenge_method": "S256"})
    authz = f"https://dot.test/o/authorize/?{q}"
    login = "https://dot.test/accounts/login/?" + urlencode({"next": f"/o/authorize/?{q}"})
    html = {"content-type": "text/html"}
    flows = [
        flow("GET", authz, t=t, headers={"referer": "https://client.test/"}, status=302,
             resp_headers={"location": login.replace("https://dot.test", "")}),
        flow("GET", login, t=t + 0.2, resp_headers=html, resp_body="<form method=post></form>"),
        flow("POST", login, t=t + 1, headers={"referer": login, "content-type": "application/x-www-form-urlencoded",
                                               "sec-fetch-site": "same-origin"},
             body="username=alice&password=pw", status=302, resp_headers={"location": f"/o/authorize/?{q}"}),
        flow("GET", authz, t=t + 1.2, headers={"referer": login, "sec-fetch-site": "same-origin"},
             resp_headers=html, resp_body="<form method=post>Authorize?</form>"),
        flow("POST", authz, t=t + 2, headers={"referer": authz, "content-type": "application/x-www-form-urlencoded",
                                               "sec-fetch-site": "same-origin"},
             body="allow=Authorize", status=302,
             resp_headers={"location": "https://client.test/callback?code=C1&state=S1"}),
        flow("GET", "https://client.test/callback?code=C1&state=S1", t=t + 2.2,
             headers={"referer": "https://dot.test/"}),
    ]
    fs, hops = findings(tmp_path, flows)
    assert fs == [] and [h.role for h in hops].count("authorize") == 3


def test_reloaded_authorize_page_is_one_attempt(tmp_path):
    """The user reloads the provider's sign-in page: the same authorize request (same state and nonce)
    three times, nothing came back to the app in between. One attempt, not a loop."""
    t = time.time() - 60
    url = f"https://{IDP}/{TENANT}/oauth2/v2.0/authorize?" + urlencode({
        "client_id": CLIENT_ID, "response_type": "code", "redirect_uri": f"https://{APP}/signin-oidc",
        "state": "st-1", "nonce": "n-1"})
    page = {"content-type": "text/html"}
    flows = [flow("GET", url, t=t + i * 2, resp_headers=page, resp_body="<html>Sign in</html>") for i in range(3)]
    fs, hops = findings(tmp_path, flows)
    assert fs == [] and len(hops) == 3


def test_aadsts50196_page_is_a_redirect_loop(tmp_path):
    """Entra stops a client request loop with AADSTS50196 on its error page ($Config)."""
    t = time.time() - 60
    flows = loop_attempts(2, t)
    cfg = {"iErrorCode": 50196, "strServiceExceptionMessage": "AADSTS50196: The server terminated an operation "
           "because it encountered a client request loop. Please contact your app vendor.",
           "correlationId": "6b7c1a2e-0000-4d2f-9a51-3c1e2d4f5a6b", "sessionId": "9f8e7d6c-1111-4a2b-8c3d-4e5f6a7b8c9d",
           "strTimestamp": "2026-12-01T10:00:00Z", "pgid": "ConvergedError"}
    page = flow("GET", f"https://{IDP}/{TENANT}/oauth2/v2.0/authorize?" + urlencode({
        "client_id": CLIENT_ID, "response_type": "code", "redirect_uri": f"https://{APP}/signin-oidc",
        "state": "s-last", "nonce": "n-last"}), t=t + 6, resp_headers={"content-type": "text/html; charset=utf-8"},
        resp_body=f"<html><head><title>Sign in</title></head><body><script>//<![CDATA[\n$Config={json.dumps(cfg)};\n"
                  "//]]></script></body></html>")
    fs, _ = findings(tmp_path, flows + [page])
    assert kinds(fs) == ["idp_error", "redirect_loop"]
    loop = one(fs, "redirect_loop")
    assert "AADSTS50196" in loop.explanation and loop.details["stopped_by_provider"] is True
    assert "AADSTS50196" in one(fs, "idp_error").title


def test_sign_ins_for_other_scopes_are_incremental_consent_not_a_loop(tmp_path):
    """An app that asks for one API after another (a new interactive request per scope) starts new
    attempts that each come back, but it never repeats one request: not a loop."""
    t = time.time() - 60
    flows = []
    for i, scope in enumerate(["openid User.Read", "openid Files.Read", "openid Mail.Read"]):
        steps = op_steps(f"I{i}", t + i * 2.5, state=f"st-{i}", nonce=f"n-{i}")
        first = steps[0][0]
        first.request.url = first.request.url.replace("scope=openid", "scope=" + scope.replace(" ", "+"))
        flows += [f for step in steps for f in step]
    fs, hops = findings(tmp_path, flows)
    assert fs == [] and [h.role for h in hops].count("authorize") == 3
