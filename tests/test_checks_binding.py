"""state, nonce, PKCE and redirect_uri: what binds an answer to its request."""

from urllib.parse import urlencode

from builders import signin_flows
from checkkit import findings, kinds


def test_altered_state_is_state_mismatch(tmp_path):
    flows = signin_flows()
    cb = flows[3]
    cb.request.content = cb.request.content.replace(b"state=", b"state=tampered")
    fs, _ = findings(tmp_path, flows)
    assert "state_mismatch" in kinds(fs)


def test_missing_state(tmp_path):
    flows = signin_flows()
    cb = flows[3]
    from urllib.parse import parse_qsl
    cb.request.content = urlencode([(k, v) for k, v in parse_qsl(cb.request.content.decode()) if k != "state"]).encode()
    fs, _ = findings(tmp_path, flows)
    assert kinds(fs) == ["state_mismatch"] and "no state" in fs[0].title


def test_nonce_mismatch(tmp_path):
    flows = signin_flows()
    flows[0].request.url = flows[0].request.url.replace("nonce=n-0S6_WzA2Mj", "nonce=other-nonce")
    fs, _ = findings(tmp_path, flows)
    assert kinds(fs) == ["nonce_mismatch"]


def test_pkce_verifier_mismatch_and_matching_retry_is_quiet(tmp_path):
    from authtrace.addons.secrets import s256
    flows = signin_flows(verifier="verifier-B-" + "x" * 40)
    fs, _ = findings(tmp_path, flows)
    assert fs == []
    bad = signin_flows(verifier="verifier-B-" + "x" * 40)
    bad[0].request.url = bad[0].request.url.replace(s256("verifier-B-" + "x" * 40), s256("verifier-A"))
    fs, _ = findings(tmp_path, bad)
    assert kinds(fs) == ["pkce_mismatch"]
    # a retry: first attempt with challenge A abandoned, second with B completes: quiet
    retry = signin_flows(verifier="verifier-B-" + "x" * 40)
    first = bad[0].copy()
    first.request.url = first.request.url.replace("state=", "state=first")
    first.request.timestamp_start -= 10
    assert findings(tmp_path, [first] + retry)[0] == []


def test_redirect_uri_mismatch(tmp_path):
    flows = signin_flows()
    flows[4].request.content = flows[4].request.content.replace(b"signin-oidc", b"signin-oidc%2F")
    fs, _ = findings(tmp_path, flows)
    assert kinds(fs) == ["redirect_uri_mismatch"]

