"""issuer_mismatch and scope_not_granted: who granted what."""

import json

from builders import TENANT, signin_flows
from checkkit import findings, kinds


def test_token_redeemed_at_another_tenant(tmp_path):
    flows = signin_flows()
    flows[4].request.path = flows[4].request.path.replace(TENANT, "contoso.onmicrosoft.com")
    fs, _ = findings(tmp_path, flows)
    assert kinds(fs) == ["issuer_mismatch"]


def test_scope_not_granted(tmp_path):
    flows = signin_flows()
    body = json.loads(flows[4].response.content)
    body["scope"] = "openid profile"
    flows[4].response.content = json.dumps(body).encode()
    fs, _ = findings(tmp_path, flows)
    assert kinds(fs) == ["scope_not_granted"] and "https://ai.azure.com/.default" in fs[0].title



def test_resource_qualified_scope_granted_by_its_short_name(tmp_path):
    """Entra answers `api://app/Files.Read` with `Files.Read`: granted, not narrower."""
    flows = signin_flows()
    flows[0].request.url = flows[0].request.url.replace("https%3A%2F%2Fai.azure.com%2F.default",
                                                        "api%3A%2F%2Fcontoso-api%2FFiles.Read")
    body = json.loads(flows[4].response.content)
    body["scope"] = "Files.Read openid profile offline_access"
    flows[4].response.content = json.dumps(body).encode()
    assert findings(tmp_path, flows)[0] == []
    body["scope"] = "openid profile offline_access"
    flows[4].response.content = json.dumps(body).encode()
    fs, _ = findings(tmp_path, flows)
    assert kinds(fs) == ["scope_not_granted"] and "api://contoso-api/Files.Read" in fs[0].title
