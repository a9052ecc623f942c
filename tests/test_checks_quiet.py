"""Clean sign-ins and look-alike traffic stay quiet; the check command's exit codes and JSON."""

import json
import re
import subprocess
import sys
from urllib.parse import urlencode

from authtrace.reports.verdict import notes

from builders import IDP, TENANT, chrome_har, flow, signin_flows, to_har
from checkkit import findings
from schema import valid


def test_clean_signin_has_no_finding(tmp_path):
    fs, hops = findings(tmp_path, signin_flows())
    assert fs == [] and len(hops) == 6


def test_clean_signin_chrome_har_percent_encoded_has_no_finding(tmp_path):
    fs, hops = findings(tmp_path, None, har=chrome_har(signin_flows()))
    assert fs == [] and [h.role for h in hops][:3] == ["authorize", "login", "callback"]


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
    out = valid(json.loads(r.stdout))
    assert out["hops"] == 6 and out["findings"][0]["kind"] == "state_mismatch"
    ev = out["findings"][0]["evidence"][-1]
    assert set(ev) == {"hop", "role", "started", "method", "url", "status", "flow"} and ev["started"].endswith("Z")
    assert ev["role"] == "callback" and ev["hop"] == 3  # the third hop in time order
    assert re.fullmatch(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z", ev["started"])
    r = run(str(tmp_path / "nope.har"))
    assert r.returncode == 2 and "Traceback" not in r.stderr

