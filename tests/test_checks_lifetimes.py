"""expired_token and token_revoked: tokens over time."""

import re
import time
from email.utils import formatdate

from authtrace.addons.secrets import s256
from authtrace.reports.verdict import notes

from builders import API, chrome_har, flow, make_jwt, signin_flows
from checkkit import api_call, findings, kinds, op_steps, preflight, sanitized, spa_token


def test_expired_token_refused(tmp_path):
    old = make_jwt({"aud": "https://ai.azure.com", "exp": int(time.time()) - 600, "nbf": int(time.time()) - 4200})
    api = flow("GET", f"https://{API}/api/projects/p/protocols/x", browser=False,
               headers={"authorization": f"Bearer {old}"}, status=401,
               resp_headers={"www-authenticate": 'Bearer error="invalid_token", error_description="The token is expired"'})
    api.request.timestamp_start = time.time()
    fs, _ = findings(tmp_path, [api])
    assert kinds(fs) == ["expired_token"] and "10 min before use" in fs[0].title


def test_token_revoked_after_it_worked(tmp_path):
    flows = signin_flows()
    later = flows[-1].copy()
    later.request.timestamp_start += 2
    later.response.status_code = 401
    later.response.headers["www-authenticate"] = 'Bearer error="invalid_token", error_description="grant revoked"'
    fs, _ = findings(tmp_path, flows + [later])
    assert kinds(fs) == ["token_revoked"]


def test_token_just_past_exp_and_refused_is_expired(tmp_path):
    """Within the leeway an expired token the API still accepts is no alarm; refused, it is the cause."""
    now = float(int(time.time()))
    tok = make_jwt({"aud": "https://ai.azure.com", "exp": int(now) - 60})
    refused = flow("GET", f"https://{API}/api/projects/p/threads", browser=False, t=now,
                   headers={"authorization": f"Bearer {tok}"}, status=401,
                   resp_headers={"www-authenticate": 'Bearer error="invalid_token"'})
    accepted = flow("GET", f"https://{API}/api/projects/p/threads", browser=False, t=now,
                    headers={"authorization": f"Bearer {tok}"})
    fs, _ = findings(tmp_path, [refused])
    assert kinds(fs) == ["expired_token"] and fs[0].severity == "error" and re.search(r"expired 60(\.\d)? s before use", fs[0].title)
    assert findings(tmp_path, [accepted])[0] == []


def _spa_signin(t: float, expires_in: int, access_token: str = "opaque-access-token-value-1"):
    steps = op_steps("S", t, state="st-S", challenge=s256("v" * 43))
    flows = [f for step in steps for f in step]
    flows.append(spa_token(t + 1.5, "code-S-value-0123456789", "v" * 43,
                           body={"access_token": access_token, "token_type": "Bearer", "expires_in": expires_in,
                                 "scope": "openid api.read"}))
    return flows


def test_opaque_token_refused_after_expires_in_is_expired_not_revoked(tmp_path):
    """Most access tokens are opaque to the client: the token answer's expires_in plus the answer's
    time is the expiry. A later 401 invalid_token after it is expired_token (how long after, with the
    skew from Date headers); a refusal inside the lifetime stays token_revoked."""
    t = time.time() - 900
    flows = _spa_signin(t, expires_in=300)
    ok = api_call(t + 10, "https://api.contoso.test/v1/items", "opaque-access-token-value-1")
    late = api_call(t + 600, "https://api.contoso.test/v1/items", "opaque-access-token-value-1", status=401,
                    challenge='Bearer error="invalid_token", error_description="The access token is invalid"')
    for f in (ok, late):  # the API's clock runs 30 s ahead of the capture's
        f.response.headers["date"] = formatdate(f.request.timestamp_start + 30, usegmt=True)
    fs, _ = findings(tmp_path, flows + [ok, late])
    assert kinds(fs) == ["expired_token"]
    f = fs[0]
    assert "expires_in" in f.explanation and re.search(r"server clock \+(29|30) s", f.explanation)
    assert 320 <= f.details["expired_for_s"] <= 332 and f.details["lifetime_from"] == "expires_in"
    inside = api_call(t + 100, "https://api.contoso.test/v1/items", "opaque-access-token-value-1", status=401,
                      challenge='Bearer error="invalid_token", error_description="The access token is invalid"')
    fs, _ = findings(tmp_path, _spa_signin(t, expires_in=300) + [ok, inside])
    assert kinds(fs) == ["token_revoked"] and "before it expired" in fs[0].explanation


def _sanitized_spa(t: float, challenge: str, *, expires_in: int = 3600):
    """A Chrome "Export HAR (sanitized)" of an SPA: sign-in, the token POST from the page, then an API call
    after its CORS preflight; the export removed the Authorization, Cookie and Set-Cookie headers."""
    flows = _spa_signin(t, expires_in=expires_in)
    url = "https://api.contoso.test/v1/items"
    flows += [preflight(t + 600, url), api_call(t + 600.1, url, "opaque-access-token-value-1", status=401,
                                                challenge=challenge)]
    return sanitized(chrome_har(flows))


def test_sanitized_chrome_har_still_diagnosed_and_said(tmp_path):
    t = time.time() - 900
    har = _sanitized_spa(t, 'Bearer error="invalid_token", error_description="The audience '
                            '\'https://graph.microsoft.com\' is invalid"')
    assert not any(h["name"].lower() == "authorization" for e in har["log"]["entries"] for h in e["request"]["headers"])
    fs, hops = findings(tmp_path, None, har=har)
    assert kinds(fs) == ["wrong_audience"]
    assert "not in the capture" in fs[0].explanation and "rests on the API's words" in fs[0].explanation
    api = [h for h in hops if h.role == "api"]
    assert len(api) == 1 and api[0].initiator.preflight == ("authorization",)
    assert not any(h.method == "OPTIONS" for h in hops)
    said = " ".join(notes(hops))
    assert "sanitized" in said and "preflight announced an Authorization header" in said
    # expiry: every token the session was issued had expired by the call
    fs, hops = findings(tmp_path, None, har=_sanitized_spa(t, 'Bearer error="invalid_token"', expires_in=300))
    assert kinds(fs) == ["expired_token"]
    assert "latest" in fs[0].title and "not in the capture" in fs[0].explanation
    # the same capture exported with its headers: no note
    assert not any("sanitized" in n for n in notes(findings(tmp_path, _spa_signin(t, 3600))[1]))


def test_sanitized_note_from_a_refusal_that_names_a_token_error(tmp_path):
    t = time.time() - 900
    flows = _spa_signin(t, 3600)
    flows.append(api_call(t + 60, "https://api.contoso.test/v1/items", "opaque-access-token-value-1", status=401,
                          challenge='Bearer error="invalid_token"'))
    fs, hops = findings(tmp_path, None, har=sanitized(chrome_har(flows)))
    said = " ".join(notes(hops))
    assert "sanitized" in said and "no request sent or set a cookie" in said and "error=\"invalid_token\"" in said


def test_a_call_the_api_says_had_no_token_is_no_sign_of_a_sanitized_export(tmp_path):
    """Some APIs name invalid_token for a request that carried none ("missing 'Authorization' header"):
    that request sent nothing, so the capture lost nothing."""
    flows = signin_flows()
    flows.append(flow("GET", "https://api.contoso.test/v1/items", t=flows[-1].request.timestamp_start + 5,
                      browser=False, status=401, resp_headers={
                          "www-authenticate": 'Bearer authorization_uri="https://login.microsoftonline.com/x", '
                                              'error="invalid_token", error_description="The authentication failed '
                                              'because of missing \'Authorization\' header."'}))
    fs, hops = findings(tmp_path, flows)
    assert fs == [] and hops[-1].role == "api" and not any("sanitized" in n for n in notes(hops))
