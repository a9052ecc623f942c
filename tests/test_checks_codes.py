"""reused_code and duplicate_redirect: one authorization code used more than once."""

import time

from builders import signin_flows
from checkkit import findings, foundry, kinds, one, token_error


def test_code_redeemed_twice_aadsts54005(tmp_path):
    secrets = {}
    flows = signin_flows(secrets=secrets)
    t = flows[4].request.timestamp_start
    again = flows[3].copy()
    again.request.timestamp_start = flows[3].request.timestamp_start + 0.35
    again.response.status_code = 500
    flows.insert(5, again)
    flows.append(token_error(t + 0.4, secrets["code"], {
        "error": "invalid_grant", "error_description": "AADSTS54005: OAuth2 Authorization code was already redeemed, "
        "please retry with a new valid code or use an existing refresh token. Trace ID: 0f1e2d3c-4b5a-6978-8a9b-"
        "0c1d2e3f4a5b Correlation ID: 11111111-2222-3333-4444-555555555555", "error_codes": [54005],
        "trace_id": "0f1e2d3c-4b5a-6978-8a9b-0c1d2e3f4a5b", "correlation_id": "11111111-2222-3333-4444-555555555555"}))
    fs, hops = findings(tmp_path, flows)
    assert kinds(fs) == ["duplicate_redirect", "idp_error", "reused_code"]
    reuse = one(fs, "reused_code")
    assert "redeemed 2 times" in reuse.title and len(reuse.evidence) == 4
    dup = one(fs, "duplicate_redirect")
    assert "350 ms" in dup.title and "succeeded" in dup.explanation and "failed (500)" in dup.explanation
    idp = one(fs, "idp_error")
    assert "AADSTS54005" in idp.title and "0f1e2d3c-4b5a-6978-8a9b-0c1d2e3f4a5b" in idp.explanation
    assert idp.details["correlation_id"] == "11111111-2222-3333-4444-555555555555"




def test_foundry_handler_second_hit_already_redeemed(tmp_path):
    t = time.time() - 30
    flows = [foundry(t, "CODE-F1", 200, "Signed in. You can close this window."),
             foundry(t + 0.2, "CODE-F1", 400, "Authentication code has already been redeemed. Please re-login.")]
    fs, _ = findings(tmp_path, flows)
    assert kinds(fs) == ["duplicate_redirect", "reused_code"]
    assert "200 ms" in one(fs, "duplicate_redirect").title


def test_first_use_already_redeemed_means_someone_else_was_first(tmp_path):
    flows = [foundry(time.time(), "CODE-F2", 400, "Authentication code has already been redeemed. Please re-login.")]
    fs, _ = findings(tmp_path, flows)
    assert kinds(fs) == ["reused_code"]
    assert "outside the captured traffic" in fs[0].title
    assert "link scanner" in " ".join(fs[0].causes)


def test_first_redemption_already_redeemed_after_single_callback(tmp_path):
    """One callback, one redemption, and that redemption is refused as already used: another party
    redeemed the code first (the callback itself is delivery, not use)."""
    flows = signin_flows()[:4]
    code = "0.AXoAv4j5cvGGr0GRqy180BHbR-secret-code-value"
    flows.append(token_error(flows[3].request.timestamp_start + 0.2, code, {
        "error": "invalid_grant", "error_description": "AADSTS54005: OAuth2 Authorization code was already redeemed"}))
    fs, _ = findings(tmp_path, flows)
    assert kinds(fs) == ["idp_error", "reused_code"]
    assert "outside the captured traffic" in one(fs, "reused_code").title

