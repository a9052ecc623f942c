"""expired_token and token_revoked: tokens over time."""

import re
import time

from builders import API, flow, make_jwt, signin_flows
from checkkit import findings, kinds


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
