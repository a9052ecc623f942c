"""No crash on hostile values: any field of any captured JSON may have any type (a token's `aud`,
`iss`, `exp`, a token answer's `scope`, `expires_in`, an error's `error_codes`, an Azure envelope's
`details`, a page's `$Config`, a discovery document's `issuer`: numbers, objects, lists, null, huge
strings). Every check runs over sign-ins built from such values, through the real decoder and the
store, and none may fail; the command line never prints a traceback for them."""
from __future__ import annotations

import base64
import json
import os
import sys
from urllib.parse import urlencode

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from authtrace.addons.context import CaptureContext
from authtrace.addons.hops import flow_to_hops
from authtrace.main import main
from authtrace.reports.checks import run_checks
from authtrace.store import db

from builders import APP, IDP, TENANT, flow, to_har

EXAMPLES = int(os.environ.get("AUTHTRACE_PROP_EXAMPLES") or 300)
HEALTH = [HealthCheck.too_slow, HealthCheck.data_too_large, HealthCheck.large_base_example,
          HealthCheck.function_scoped_fixture]  # huge strings are the point, and they take time
PROPS = settings(max_examples=EXAMPLES, deadline=None, database=None, suppress_health_check=HEALTH)
KEY = b"\x22" * 32

huge = st.integers(2000, 70_000).map(lambda n: "A" * n)
scalars = st.none() | st.booleans() | st.integers(-2**70, 2**70) | st.floats(allow_nan=True, allow_infinity=True) \
    | st.text(max_size=40) | huge | st.sampled_from(["", "0", "-1", "1e400", "NaN", "3600", "AADSTS54005", "common"])
values = st.recursive(scalars, lambda c: st.lists(c, max_size=4) | st.dictionaries(st.text(max_size=12), c, max_size=4),
                      max_leaves=10)
CLAIMS = ("aud", "iss", "exp", "nbf", "iat", "nonce", "tid", "scp", "sub", "azp")
ANSWER = ("access_token", "id_token", "refresh_token", "expires_in", "scope", "token_type", "error",
          "error_description", "error_codes", "trace_id", "correlation_id", "interval", "device_code",
          "verification_uri", "issued_token_type")


def b64(x: object) -> str:
    return base64.urlsafe_b64encode(json.dumps(x).encode()).decode().rstrip("=")


def jwt_of(claims: dict) -> str:
    return f"{b64({'alg': 'RS256', 'kid': 'k'})}.{b64(claims)}.c2lnbmF0dXJl"


claims = st.dictionaries(st.sampled_from(CLAIMS), values, max_size=8).map(jwt_of)


@st.composite
def answer(draw) -> dict:
    out = draw(st.dictionaries(st.sampled_from(ANSWER), values, max_size=8))
    for k in ("access_token", "id_token"):
        if draw(st.booleans()):
            out[k] = draw(claims)
    return out


@st.composite
def error_body(draw) -> object:
    kind = draw(st.sampled_from(["oauth", "envelope", "problem", "any"]))
    if kind == "oauth":
        return {"error": draw(values), "error_description": draw(values), "error_codes": draw(values)}
    if kind == "envelope":
        inner: object = draw(values)
        for _ in range(draw(st.integers(0, 40))):
            inner = {"code": draw(values), "message": draw(values), "innerError": inner}
        return {"error": {"code": draw(values), "message": draw(values), "details": draw(values), "innerError": inner},
                "correlation": draw(values), "environment": draw(values), "time": draw(values)}
    if kind == "problem":
        return {"type": draw(values), "title": draw(values), "detail": draw(values), "errors": draw(values),
                "traceId": draw(values), "instance": draw(values)}
    return draw(values)


@st.composite
def signin(draw) -> list:
    """A sign-in whose every JSON value may be hostile: discovery, authorize (a $Config page or a
    redirect), callback, token answers (code, refresh, device), error answers, API calls."""
    t = 1_780_000_000.0
    token = f"https://{IDP}/{TENANT}/oauth2/v2.0/token"
    form = {"content-type": "application/x-www-form-urlencoded"}
    jsn = {"content-type": draw(st.sampled_from(["application/json", "application/problem+json"]))}
    out = [flow("GET", f"https://{IDP}/{TENANT}/v2.0/.well-known/openid-configuration", t=t, browser=False,
                resp_headers={"content-type": "application/json"},
                resp_body=json.dumps({"issuer": draw(values), "authorization_endpoint": draw(values),
                                      "token_endpoint": token, "registration_endpoint": draw(values)}))]
    q = {"client_id": "c1", "response_type": "code", "redirect_uri": f"https://{APP}/cb", "state": "s1", "nonce": "n1",
         "code_challenge": "x" * 43, "code_challenge_method": "S256"}
    page = "<html><script>$Config=" + json.dumps(draw(st.dictionaries(
        st.sampled_from(["iErrorCode", "sErrorCode", "strServiceExceptionMessage", "correlationId", "sessionId",
                         "strTimestamp", "sErrTxt"]), values, max_size=6))) + ";</script></html>"
    out.append(flow("GET", f"https://{IDP}/{TENANT}/oauth2/v2.0/authorize?" + urlencode(q), t=t + 1,
                    status=draw(st.sampled_from([200, 302, 400])),
                    resp_headers={"content-type": "text/html", "location": f"https://{APP}/cb?code=C1&state=s1"},
                    resp_body=page))
    out.append(flow("GET", f"https://{APP}/cb?code=C1&state=s1", t=t + 2, status=draw(st.sampled_from([0, 200, 400])),
                    resp_headers=jsn, resp_body=json.dumps(draw(error_body()))))
    for i, grant in enumerate(draw(st.lists(st.sampled_from(["authorization_code", "refresh_token",
                                                              "urn:ietf:params:oauth:grant-type:device_code"]),
                                            min_size=1, max_size=4))):
        body = draw(answer()) if draw(st.booleans()) else draw(error_body())
        out.append(flow("POST", token, t=t + 3 + i, browser=draw(st.booleans()), headers=form,
                        body=urlencode({"grant_type": grant, "code": "C1", "refresh_token": "R1", "device_code": "D1",
                                        "client_id": "c1", "redirect_uri": f"https://{APP}/cb",
                                        "code_verifier": "v" * 43}),
                        status=draw(st.sampled_from([200, 400, 401])), resp_headers=jsn, resp_body=json.dumps(body)))
    for i in range(draw(st.integers(0, 3))):
        challenge = draw(st.sampled_from(['Bearer error="invalid_token"', 'Bearer error="invalid_token", '
                                          'error_description="audience is invalid, or expired, or missing"', "", "x"]))
        out.append(flow("GET", draw(st.sampled_from(["https://graph.microsoft.com/v1.0/me",
                                                     "https://api.contoso.test/v1/x", f"https://{IDP}/oidc/userinfo"])),
                        t=t + 10 + i * 4000, browser=False,
                        headers={"authorization": f"Bearer {draw(claims)}"} if draw(st.booleans()) else {},
                        status=draw(st.sampled_from([200, 401, 403])), resp_headers={
                            "content-type": "application/json", "date": draw(st.sampled_from(
                                ["Tue, 01 Dec 2026 10:00:00 GMT", "garbage", "Thu, 01 Jan 1970 00:00:00 GMT"])),
                            **({"www-authenticate": challenge} if challenge else {})},
                        resp_body=json.dumps(draw(error_body()))))
    return out


def _hops(flows: list) -> list:
    ctx = CaptureContext(KEY)
    hops = [h for f in flows for h in flow_to_hops(f, ctx)]
    for i, h in enumerate(sorted(hops, key=lambda h: h.started), 1):
        h.number = i
    return hops


@PROPS
@given(signin())
def test_prop_every_check_survives_hostile_json(flows):
    hops = _hops(flows)
    found, failures = run_checks(hops)
    assert failures == [], failures
    engine = db.open_db("sqlite://")  # and as read back from a store (older or other versions' rows)
    sid = db.new_session(engine, "hostile", "hostile", "har")
    db.write_hops(engine, sid, hops)
    found, failures = run_checks(db.load_hops(engine, sid))
    assert failures == [], failures


@settings(max_examples=max(5, EXAMPLES // 15), deadline=None, database=None, suppress_health_check=HEALTH)
@given(signin())
def test_prop_check_and_report_never_print_a_traceback(tmp_path_factory, capsys, flows):
    d = tmp_path_factory.mktemp("hostile")
    har = d / "hostile.har"
    har.write_text(json.dumps(to_har(flows)))
    assert main(["check", str(har)]) in (0, 1)
    assert main(["check", str(har), "--json"]) in (0, 1)
    store = str(d / "s.db")
    assert main(["import", str(har), "--db", store]) in (0, 1)
    assert main(["report", "--db", store, "--json"]) == 0
    assert main(["report", "--db", store, "-o", str(d / "r.html")]) == 0
    out, err = capsys.readouterr()
    assert "Traceback" not in out + err and "internal error" not in err, err[-2000:]
    sys.stderr.flush()
