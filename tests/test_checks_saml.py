"""SAML 2.0 sign-ins end to end through the hop builder, the store and the checks (checks/saml.py).

Every message is built here and signed with signxml and keys made here (nothing mocked), posted in
mitmproxy flows shaped like a browser's, imported from a real .mitm (or HAR) file into a real SQLite
store, and checked. What a user relies on: a clean SAML sign-in gives no finding; each fault gives
exactly its finding, with the hop numbers and times in its sentences; a federation post inside an
OAuth sign-in stays a login step; hostile XML is a sentence on the hop, never a crash or a finding;
the SAMLResponse never reaches the store or a report.
"""
from __future__ import annotations

import base64
import datetime as dt
import json
import subprocess
import sys
import zlib
from urllib.parse import urlencode

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import rsa
from cryptography.x509.oid import NameOID
from lxml import etree
from signxml import XMLSigner, methods
from signxml.algorithms import CanonicalizationMethod, DigestAlgorithm, SignatureMethod

from authtrace.addons.importers import import_file
from authtrace.addons.views import Keys, decode_message, render_text
from authtrace.reports.checks import run_checks
from authtrace.reports.diagnose import analyse
from authtrace.reports.html import render_html
from authtrace.reports.jsonout import to_json
from authtrace.reports.leakcheck import find_leaks
from authtrace.reports.verdict import notes
from authtrace.store import db

from builders import IDP, TENANT, chrome_har, flow, signin_flows
from checkkit import findings, kinds, one
from schema import valid

T0 = 1_767_225_600.0  # 2026-01-01T00:00:00Z
IDP_HOST, SP_HOST = "idp.example.test", "sp.example.test"
IDP_ENTITY, SSO = f"https://{IDP_HOST}/saml/idp", f"https://{IDP_HOST}/saml/sso"
SP_ENTITY, ACS = f"https://{SP_HOST}/saml/sp", f"https://{SP_HOST}/saml/acs"
SUCCESS = "urn:oasis:names:tc:SAML:2.0:status:Success"
NS = 'xmlns:samlp="urn:oasis:names:tc:SAML:2.0:protocol" xmlns:saml="urn:oasis:names:tc:SAML:2.0:assertion"'
NAME = "alice.saml@example.test"
ATTRIBUTE_VALUE = "attribute-value-never-stored"


def _keypair(cn: str) -> tuple[bytes, bytes]:
    key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    subject = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, cn)])
    now = dt.datetime.now(dt.UTC)
    cert = (x509.CertificateBuilder().subject_name(subject).issuer_name(subject).public_key(key.public_key())
            .serial_number(x509.random_serial_number()).not_valid_before(now - dt.timedelta(days=1))
            .not_valid_after(now + dt.timedelta(days=30)).sign(key, hashes.SHA256()))
    return (key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                              serialization.NoEncryption()), cert.public_bytes(serialization.Encoding.PEM))


IDP_KEY = _keypair(IDP_HOST)
EVIL_KEY = _keypair("attacker.example.test")


def iso(t: float) -> str:
    return dt.datetime.fromtimestamp(t, dt.UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def sign(xml: str | bytes, keypair: tuple[bytes, bytes] = IDP_KEY) -> bytes:
    """An enveloped RSA-SHA256 signature over the root element, placed after its Issuer."""
    root = etree.fromstring(xml.encode() if isinstance(xml, str) else xml)
    root.find("{urn:oasis:names:tc:SAML:2.0:assertion}Issuer").addnext(
        etree.Element("{http://www.w3.org/2000/09/xmldsig#}Signature", Id="placeholder"))
    signer = XMLSigner(method=methods.enveloped, signature_algorithm=SignatureMethod.RSA_SHA256,
                       digest_algorithm=DigestAlgorithm.SHA256,
                       c14n_algorithm=CanonicalizationMethod.EXCLUSIVE_XML_CANONICALIZATION_1_0)
    return etree.tostring(signer.sign(root, key=keypair[0], cert=keypair[1].decode(),
                                      reference_uri=f"#{root.get('ID')}"))


def authn_request(rid: str = "_req1", *, issuer: str = SP_ENTITY, acs: str = ACS, dest: str = SSO,
                  passive: bool = False, t: float = T0) -> bytes:
    return f"""<samlp:AuthnRequest {NS} ID="{rid}" Version="2.0" IssueInstant="{iso(t)}" Destination="{dest}"
    AssertionConsumerServiceURL="{acs}" ProtocolBinding="urn:oasis:names:tc:SAML:2.0:bindings:HTTP-POST"
    {'IsPassive="true"' if passive else ''}><saml:Issuer>{issuer}</saml:Issuer>
  <samlp:NameIDPolicy Format="urn:oasis:names:tc:SAML:1.1:nameid-format:emailAddress" AllowCreate="true"/>
</samlp:AuthnRequest>""".encode()


def assertion(aid: str = "_a1", *, irt: str | None = "_req1", audience: str = SP_ENTITY, recipient: str = ACS,
              t: float = T0, life: int = 300) -> str:
    irt_attr = f' InResponseTo="{irt}"' if irt else ""
    return f"""<saml:Assertion {NS} ID="{aid}" Version="2.0" IssueInstant="{iso(t)}">
  <saml:Issuer>{IDP_ENTITY}</saml:Issuer>
  <saml:Subject>
    <saml:NameID Format="urn:oasis:names:tc:SAML:1.1:nameid-format:emailAddress">{NAME}</saml:NameID>
    <saml:SubjectConfirmation Method="urn:oasis:names:tc:SAML:2.0:cm:bearer">
      <saml:SubjectConfirmationData NotOnOrAfter="{iso(t + life)}" Recipient="{recipient}"{irt_attr}/>
    </saml:SubjectConfirmation>
  </saml:Subject>
  <saml:Conditions NotBefore="{iso(t - 30)}" NotOnOrAfter="{iso(t + life)}">
    <saml:AudienceRestriction><saml:Audience>{audience}</saml:Audience></saml:AudienceRestriction>
  </saml:Conditions>
  <saml:AuthnStatement AuthnInstant="{iso(t - 5)}" SessionIndex="_sess1">
    <saml:AuthnContext><saml:AuthnContextClassRef>urn:oasis:names:tc:SAML:2.0:ac:classes:PasswordProtectedTransport</saml:AuthnContextClassRef></saml:AuthnContext>
  </saml:AuthnStatement>
  <saml:AttributeStatement>
    <saml:Attribute Name="mail"><saml:AttributeValue>{ATTRIBUTE_VALUE}</saml:AttributeValue></saml:Attribute>
  </saml:AttributeStatement>
</saml:Assertion>"""


def response(body: str = "", *, rid: str = "_r1", irt: str | None = "_req1", dest: str = ACS,
             status: str = f'<samlp:StatusCode Value="{SUCCESS}"/>', t: float = T0) -> str:
    irt_attr = f' InResponseTo="{irt}"' if irt else ""
    return f"""<samlp:Response {NS} ID="{rid}" Version="2.0" IssueInstant="{iso(t)}" Destination="{dest}"{irt_attr}>
  <saml:Issuer>{IDP_ENTITY}</saml:Issuer>
  <samlp:Status>{status}</samlp:Status>
  {body}
</samlp:Response>"""


def signed_response(*, keypair: tuple[bytes, bytes] = IDP_KEY, sign_assertion: bool = True,
                    sign_response: bool = True, rid: str = "_r1", irt: str | None = "_req1", dest: str = ACS,
                    t: float = T0, **kw: object) -> bytes:
    a = assertion(irt=irt, t=t, **kw)  # type: ignore[arg-type]
    body = sign(a, keypair).decode() if sign_assertion else a
    xml = response(body, rid=rid, irt=irt, dest=dest, t=t)
    return sign(xml, keypair) if sign_response else xml.encode()


def status(top: str, sub: str | None = None, message: str | None = None) -> str:
    inner = f'<samlp:StatusCode Value="urn:oasis:names:tc:SAML:2.0:status:{sub}"/>' if sub else ""
    msg = f"<samlp:StatusMessage>{message}</samlp:StatusMessage>" if message else ""
    return f'<samlp:StatusCode Value="urn:oasis:names:tc:SAML:2.0:status:{top}">{inner}</samlp:StatusCode>{msg}'


def metadata(entity: str = IDP_ENTITY, keypair: tuple[bytes, bytes] = IDP_KEY) -> str:
    cert = "".join(keypair[1].decode().strip().splitlines()[1:-1])
    return f"""<md:EntityDescriptor xmlns:md="urn:oasis:names:tc:SAML:2.0:metadata"
    xmlns:ds="http://www.w3.org/2000/09/xmldsig#" entityID="{entity}">
  <md:IDPSSODescriptor protocolSupportEnumeration="urn:oasis:names:tc:SAML:2.0:protocol">
    <md:KeyDescriptor use="signing"><ds:KeyInfo><ds:X509Data><ds:X509Certificate>{cert}</ds:X509Certificate>
    </ds:X509Data></ds:KeyInfo></md:KeyDescriptor>
    <md:SingleSignOnService Binding="urn:oasis:names:tc:SAML:2.0:bindings:HTTP-Redirect" Location="{SSO}"/>
  </md:IDPSSODescriptor>
</md:EntityDescriptor>"""


def deflated(xml: bytes) -> str:
    c = zlib.compressobj(9, zlib.DEFLATED, -15)
    return base64.b64encode(c.compress(xml) + c.flush()).decode()


FORM = {"content-type": "application/x-www-form-urlencoded"}


def f_metadata(t: float = T0 - 10):
    return flow("GET", f"https://{IDP_HOST}/saml/metadata", t=t,
                resp_headers={"content-type": "application/samlmetadata+xml"}, resp_body=metadata())


def f_request(xml: bytes | None = None, t: float = T0 - 2, url: str = SSO, answer: int = 302):
    xml = xml if xml is not None else authn_request()
    return flow("GET", f"{url}?" + urlencode({"SAMLRequest": deflated(xml), "RelayState": "/home"}), t=t,
                status=answer, resp_headers={"location": f"https://{IDP_HOST}/saml/login"} if answer == 302 else
                {"content-type": "text/html"}, resp_body="" if answer == 302 else "<html>auto-post</html>")


def f_post(xml: bytes, t: float = T0 + 1, url: str = ACS, answer: int = 200, words: str = "signed in"):
    return flow("POST", url, t=t, headers={**FORM, "origin": f"https://{IDP_HOST}",
                                           "referer": f"https://{IDP_HOST}/"},
                body=urlencode({"SAMLResponse": base64.b64encode(xml).decode(), "RelayState": "/home"}),
                status=answer, resp_headers={"content-type": "text/html"}, resp_body=f"<h1>{words}</h1>")


def signin(**kw: object) -> list:
    return [f_metadata(), f_request(), f_post(signed_response(**kw))]  # type: ignore[arg-type]


# ------------------------------------------------------------------------------ clean


def test_clean_signin_is_quiet_decoded_and_verified(tmp_path):
    fs, hops = findings(tmp_path, signin())
    assert fs == []
    assert [h.role.value for h in hops] == ["discovery", "authorize", "callback"]
    meta, req, post = hops
    assert meta.answer.issuer == IDP_ENTITY and "sha256 " in meta.answer.fields["IdP signing certificates"]
    assert req.params.saml.kind == "AuthnRequest" and req.client_id == SP_ENTITY
    m = post.params.saml
    assert m.kind == "Response" and m.in_response_to == "_req1" and m.signature_status == "verified"
    assert m.assertions[0].signature_status == "verified" and m.assertions[0].audiences == (SP_ENTITY,)
    assert m.assertions[0].attribute_names == ("mail",)
    assert post.params.form["SAMLResponse"].startswith("samlresponse#") and post.error is None
    assert notes(hops) == []


def test_clean_signin_from_a_har_too(tmp_path):
    for har in (True, chrome_har(signin())):
        fs, hops = findings(tmp_path, signin(), har=har)
        assert fs == [] and hops[-1].params.saml.signature_status == "verified"
        assert hops[1].params.saml.kind == "AuthnRequest"


def test_without_metadata_signatures_are_unknown_and_quiet(tmp_path):
    fs, hops = findings(tmp_path, signin()[1:])
    assert fs == [] and hops[-1].params.saml.signature_status == "unknown"


# ------------------------------------------------------------------------------ status


def test_status_error_is_explained_from_the_catalogue(tmp_path):
    xml = response(status=status("Responder", "AuthnFailed", "Wrong password.")).encode()
    fs, hops = findings(tmp_path, [f_request(), f_post(xml, answer=403, words="login failed")])
    f = one(fs, "idp_error")
    assert kinds(fs) == ["idp_error"] and f.severity == "error"
    assert f.title == ("The identity provider answered the AuthnRequest #1 with Responder/AuthnFailed: the identity "
                       "provider could not authenticate the user.")
    assert "#2 callback POST sp.example.test/saml/acs" in f.explanation and "“Wrong password.”" in f.explanation
    assert f.details["saml_status"] == ["Responder", "AuthnFailed"] and [h.number for h in f.evidence] == [1, 2]
    assert hops[1].error.error == "Responder/AuthnFailed" and hops[1].error.source == "saml"


def test_entra_status_message_names_its_aadsts_code(tmp_path):
    msg = ("AADSTS50105: Your administrator has configured the application to block users unless they are "
           "specifically granted access. Trace ID: 0f5a3c1e-1111-2222-3333-444455556666 Correlation ID: "
           "9c8b7a6d-1111-2222-3333-444455556666 Timestamp: 2026-01-01 00:00:01Z")
    xml = response(status=status("Requester", "RequestDenied", msg)).encode()
    fs, _ = findings(tmp_path, [f_request(), f_post(xml, answer=403)])
    f = one(fs, "idp_error")
    assert "the user is not assigned to the application" in f.title and f.details["aadsts"] == 50105
    assert f.details["correlation_id"] == "9c8b7a6d-1111-2222-3333-444455556666"
    assert any("Users and groups" in f.next_step for _ in [0])


def test_no_passive_refused_is_a_finding_handled_or_retried_is_not(tmp_path):
    passive = f_request(authn_request(passive=True), answer=200)
    nopassive = response(status=status("Responder", "NoPassive", "Passive authentication not supported.")).encode()
    fs, _ = findings(tmp_path, [passive, f_post(nopassive, answer=403, words="NoPassive")])
    f = one(fs, "idp_error")
    assert kinds(fs) == ["idp_error"] and "passive AuthnRequest #1" in f.title
    assert "IsPassive" in f.explanation and "interactive" in f.next_step
    # the app treated it as 'not signed in' (200), or went on with an interactive request: normal answers
    assert findings(tmp_path, [passive, f_post(nopassive, answer=200, words="welcome, guest")])[0] == []
    retry = f_request(authn_request("_req2"), t=T0 + 3)
    assert findings(tmp_path, [passive, f_post(nopassive, answer=403), retry])[0] == []


def test_partial_logout_is_a_warning_and_logout_hops_are_logout(tmp_path):
    logout_req = f"""<samlp:LogoutRequest {NS} ID="_lo1" Version="2.0" IssueInstant="{iso(T0)}"
        Destination="https://{IDP_HOST}/saml/slo"><saml:Issuer>{SP_ENTITY}</saml:Issuer>
        <saml:NameID>{NAME}</saml:NameID><samlp:SessionIndex>_sess1</samlp:SessionIndex></samlp:LogoutRequest>"""
    logout_res = f"""<samlp:LogoutResponse {NS} ID="_lr1" Version="2.0" IssueInstant="{iso(T0 + 1)}"
        Destination="https://{SP_HOST}/saml/slo" InResponseTo="_lo1"><saml:Issuer>{IDP_ENTITY}</saml:Issuer>
        <samlp:Status>{status("Success", "PartialLogout")}</samlp:Status></samlp:LogoutResponse>"""
    flows = [flow("GET", f"https://{IDP_HOST}/saml/slo?" + urlencode({"SAMLRequest": deflated(logout_req.encode())}),
                  t=T0, status=302, resp_headers={"location": f"https://{SP_HOST}/saml/slo?SAMLResponse=x"}),
             flow("GET", f"https://{SP_HOST}/saml/slo?" + urlencode({"SAMLResponse": deflated(logout_res.encode())}),
                  t=T0 + 1)]
    fs, hops = findings(tmp_path, flows)
    assert [h.role.value for h in hops] == ["logout", "logout"]
    assert hops[0].params.saml.subject_nameid == NAME and hops[0].params.saml.session_indexes == ("_sess1",)
    f = one(fs, "idp_error")
    assert kinds(fs) == ["idp_error"] and f.severity == "warning" and "LogoutRequest #1" in f.title
    assert "not signed out everywhere" in f.title


# ------------------------------------------------------------------------ InResponseTo


def test_response_to_a_request_this_app_never_sent(tmp_path):
    fs, _ = findings(tmp_path, [f_metadata(), f_request(), f_post(signed_response(irt="_other"), answer=403,
                                                                  words="Unsolicited response")])
    f = one(fs, "state_mismatch")
    assert kinds(fs) == ["state_mismatch"] and f.severity == "error"
    assert f.title == "The SAML Response #3 callback answers request _other, which no AuthnRequest of this capture sent."
    assert "#2 authorize (_req1)" in f.explanation and [h.number for h in f.evidence] == [2, 3]


def test_response_to_an_older_attempt_the_app_refused(tmp_path):
    flows = [f_metadata(), f_request(), f_request(authn_request("_req2"), t=T0 - 1),
             f_post(signed_response(), answer=403, words="Unsolicited response")]
    fs, _ = findings(tmp_path, flows)
    f = one(fs, "state_mismatch")
    assert kinds(fs) == ["state_mismatch"] and "answers #2 authorize" in f.title and "#3 authorize" in f.title


def test_idp_initiated_and_mid_signin_captures_are_notes_not_findings(tmp_path):
    fs, hops = findings(tmp_path, [f_metadata(), f_post(signed_response(irt=None))])
    assert fs == [] and "IdP-initiated SAML sign-in" in notes(hops)[0]
    fs, hops = findings(tmp_path, [f_metadata(), f_post(signed_response())])
    assert fs == [] and "No SAML AuthnRequest was captured" in notes(hops)[0]


# ---------------------------------------------------------------------------- audience


def test_audience_other_than_the_entity_that_asked(tmp_path):
    fs, _ = findings(tmp_path, signin(audience="https://other.example.test/sp"))
    f = one(fs, "wrong_audience")
    assert kinds(fs) == ["wrong_audience"] and f.severity == "warning"  # the app accepted it: it does not check
    assert f.title == (f"The SAML assertion posted to sp.example.test/saml/acs is for audience "
                       f"https://other.example.test/sp, not for the app's entity id {SP_ENTITY}.")
    assert "the Issuer of the AuthnRequest #2 authorize it answers" in f.explanation
    assert SP_ENTITY in f.next_step


def test_audience_refusal_named_in_the_apps_words(tmp_path):
    """The app signs in as an old registration (the request's Issuer, and so the audience) and checks for
    its current entity id: only its words say which one it wanted."""
    old = "https://sp.example.test/saml/old"
    words = f"Exception: AudienceRestrictions conditions not satisfied! (Local entity_id={SP_ENTITY})"
    flows = [f_metadata(), f_request(authn_request(issuer=old)),
             f_post(signed_response(audience=old), answer=403, words=words)]
    fs, _ = findings(tmp_path, flows)
    f = one(fs, "wrong_audience")
    assert kinds(fs) == ["wrong_audience"] and f.severity == "error"
    assert f.title == (f"The app at sp.example.test/saml/acs refused the SAML assertion's audience {old} "
                       f"(it checks for {SP_ENTITY}).")
    assert "rests on the app's words" in f.explanation and f"sent the AuthnRequest as {old}" in f.explanation


# ------------------------------------------------------------------------- Destination


def test_destination_and_recipient_other_than_where_it_was_posted(tmp_path):
    other = "https://sp.example.test/saml/acs2"
    fs, _ = findings(tmp_path, signin(dest=other, recipient=other))
    f = one(fs, "saml_destination_mismatch")
    assert kinds(fs) == ["saml_destination_mismatch"] and f.severity == "warning"
    assert f.title == f"The SAML Response was sent to {ACS}, but it names {other} as its destination."
    assert "its Destination is" in f.explanation and "bearer Recipient" in f.explanation
    assert other in f.next_step and ACS in f.next_step


def test_a_requests_destination_counts_only_when_the_identity_provider_refused_it(tmp_path):
    elsewhere = authn_request(dest="https://idp.example.test/saml/old-sso")
    assert findings(tmp_path, [f_request(elsewhere)])[0] == []
    refused = flow("GET", f"{SSO}?" + urlencode({"SAMLRequest": deflated(elsewhere)}), t=T0, status=400,
                   resp_headers={"content-type": "text/plain"}, resp_body="Invalid destination")
    fs, _ = findings(tmp_path, [refused])
    assert kinds(fs) == ["saml_destination_mismatch"] and fs[0].severity == "error"
    assert fs[0].title == ("The SAML AuthnRequest was sent to https://idp.example.test/saml/sso, but it names "
                           "https://idp.example.test/saml/old-sso as its destination.")


def test_default_port_and_host_case_are_the_same_endpoint(tmp_path):
    same = "https://SP.example.test:443/saml/acs"
    assert findings(tmp_path, signin(dest=same, recipient=same))[0] == []


# ---------------------------------------------------------------------------- lifetime


def test_assertion_posted_after_it_expired(tmp_path):
    flows = [f_metadata(), f_request(), f_post(signed_response(life=1), t=T0 + 2.5, answer=403,
                                               words="ResponseLifetimeExceed")]
    fs, _ = findings(tmp_path, flows)
    f = one(fs, "expired_token")
    assert kinds(fs) == ["expired_token"] and f.severity == "error"
    assert f.title == "The SAML assertion _a1 was posted to sp.example.test/saml/acs 1.5 s after it expired."
    assert "valid until 2026-01-01T00:00:01.000Z (Conditions NotOnOrAfter, a lifetime of 1 s)" in f.explanation
    assert "delivered it at 2026-01-01T00:00:02.500Z" in f.explanation and "403" in f.explanation


def test_late_assertion_the_app_accepted_within_its_skew_is_quiet(tmp_path):
    assert findings(tmp_path, [f_metadata(), f_request(), f_post(signed_response(life=1), t=T0 + 2.5)])[0] == []


def test_assertion_posted_before_not_before(tmp_path):
    fs, _ = findings(tmp_path, [f_metadata(), f_request(), f_post(signed_response(t=T0 + 600), t=T0 + 1)])
    f = one(fs, "expired_token")
    assert f.severity == "warning" and "before its NotBefore" in f.title and "ahead" in f.explanation


# ------------------------------------------------------------------------------ replay


def test_the_same_response_posted_twice(tmp_path):
    xml = signed_response()
    flows = [f_metadata(), f_request(), f_post(xml), f_post(xml, t=T0 + 1.4, answer=403, words="Unsolicited")]
    fs, hops = findings(tmp_path, flows)
    f = one(fs, "duplicate_redirect")
    assert kinds(fs) == ["duplicate_redirect"] and f.severity == "error"
    assert f.title == "The SAML Response carrying assertion _a1 was posted 2 times, 400 ms apart: an assertion works only once."
    assert hops[2].params.form["SAMLResponse"] == hops[3].params.form["SAMLResponse"]  # one fingerprint
    assert f.details["response"] == hops[2].params.form["SAMLResponse"]


def test_an_app_that_accepts_a_replay_keeps_no_replay_cache(tmp_path):
    xml = signed_response()
    fs, _ = findings(tmp_path, [f_metadata(), f_request(), f_post(xml), f_post(xml, t=T0 + 30)])
    f = one(fs, "duplicate_redirect")
    assert f.severity == "error" and "keeps no replay cache" in f.explanation


# --------------------------------------------------------------------------- signature


def test_signature_that_does_not_verify_with_the_metadata_certificate(tmp_path):
    fs, _ = findings(tmp_path, signin(keypair=EVIL_KEY))
    f = one(fs, "saml_signature")
    assert kinds(fs) == ["saml_signature"] and f.severity == "error"
    assert "the certificate of its metadata at #1 discovery" in f.explanation
    assert [h.number for h in f.evidence] == [1, 3]


def test_unsigned_assertion_is_a_warning(tmp_path):
    fs, _ = findings(tmp_path, signin(sign_assertion=False, sign_response=False))
    f = one(fs, "saml_signature")
    assert kinds(fs) == ["saml_signature"] and f.severity == "warning" and "not signed" in f.title
    # the Response's signature covers its assertion: signed enough
    assert findings(tmp_path, signin(sign_assertion=False))[0] == []


def test_signature_wrapping_does_not_pass_as_verified(tmp_path):
    """XSW: an evil unsigned assertion put first in a signed Response; the signed one moved away."""
    root = etree.fromstring(signed_response())
    genuine = root.find("{urn:oasis:names:tc:SAML:2.0:assertion}Assertion")
    evil = etree.fromstring(assertion("_evil"))
    genuine.addprevious(evil)
    root.remove(genuine)
    evil.append(genuine)  # hidden where no service provider reads assertions
    fs, hops = findings(tmp_path, [f_metadata(), f_request(), f_post(etree.tostring(root))])
    m = hops[-1].params.saml
    assert [a.id for a in m.assertions] == ["_evil"] and m.assertions[0].signature_status != "verified"
    assert m.misplaced_assertions == 1 and kinds(fs) == ["saml_signature"]


# ----------------------------------------------------------------------- federation


def test_federation_post_inside_an_oauth_signin_stays_a_login_step_and_is_decoded(tmp_path):
    oauth = signin_flows()
    t = oauth[0].request.timestamp_start
    login_srf = f"https://{IDP}/login.srf"
    adfs = (f"""<samlp:Response {NS} ID="_f1" Version="2.0" IssueInstant="{iso(t + 2)}" Destination="{login_srf}">
      <saml:Issuer>http://adfs.contoso.test/adfs/services/trust</saml:Issuer>
      <samlp:Status><samlp:StatusCode Value="{SUCCESS}"/></samlp:Status>"""
            + sign(assertion("_fa1", irt=None, audience="urn:federation:MicrosoftOnline", recipient=login_srf,
                             t=t + 2)).decode() + "</samlp:Response>").encode()
    post = flow("POST", login_srf, t=t + 2, headers={**FORM, "origin": "https://adfs.contoso.test"},
                body=urlencode({"SAMLResponse": base64.b64encode(adfs).decode(), "RelayState": "r"}))
    fs, hops = findings(tmp_path, oauth[:2] + [post] + oauth[2:])
    fed = next(h for h in hops if h.path == "/login.srf")
    assert fed.role.value == "login" and fed.params.saml.kind == "Response"
    assert fs == [] and not any("IdP-initiated" in n for n in notes(hops))


def test_entra_saml_error_page_names_its_aadsts_code(tmp_path):
    page = ('<html><script>$Config={"iErrorCode":750054,"strServiceExceptionMessage":"AADSTS750054: SAMLRequest '
            'or SAMLResponse must be present as query string parameters in HTTP request for SAML Redirect '
            'binding.","correlationId":"1b2c3d4e-1111-2222-3333-444455556666"};</script></html>')
    req = flow("GET", f"https://{IDP}/{TENANT}/saml2?" + urlencode({"SAMLRequest": deflated(authn_request(
        dest=f"https://{IDP}/{TENANT}/saml2"))}), t=T0, resp_headers={"content-type": "text/html"}, resp_body=page)
    fs, hops = findings(tmp_path, [req])
    assert hops[0].role.value == "authorize" and kinds(fs) == ["idp_error"]
    assert fs[0].title == (f"GET {IDP}/{TENANT}/saml2 answered AADSTS750054 (Microsoft Entra ID error page): The SAML "
                           "redirect binding request carries no SAMLRequest or SAMLResponse.")
    assert fs[0].details["correlation_id"] == "1b2c3d4e-1111-2222-3333-444455556666"


# ----------------------------------------------------------------------- artifact


def test_artifact_binding_and_its_back_channel_resolution(tmp_path):
    art = base64.b64encode(b"\x00\x04\x00\x00" + b"s" * 20 + b"h" * 20).decode()
    inner = response(status=status("Responder", "AuthnFailed"), irt="_req1")
    soap = (f'<soap:Envelope xmlns:soap="http://schemas.xmlsoap.org/soap/envelope/"><soap:Body>'
            f'<samlp:ArtifactResponse {NS} ID="_ar1" Version="2.0" IssueInstant="{iso(T0)}" InResponseTo="_res1">'
            f'<saml:Issuer>{IDP_ENTITY}</saml:Issuer><samlp:Status><samlp:StatusCode Value="{SUCCESS}"/>'
            f"</samlp:Status>{inner}</samlp:ArtifactResponse></soap:Body></soap:Envelope>")
    resolve = (f'<soap:Envelope xmlns:soap="http://schemas.xmlsoap.org/soap/envelope/"><soap:Body>'
               f'<samlp:ArtifactResolve {NS} ID="_res1" Version="2.0" IssueInstant="{iso(T0)}">'
               f"<saml:Issuer>{SP_ENTITY}</saml:Issuer><samlp:Artifact>{art}</samlp:Artifact>"
               f"</samlp:ArtifactResolve></soap:Body></soap:Envelope>")
    flows = [f_request(),
             flow("GET", f"{ACS}?" + urlencode({"SAMLart": art}), t=T0 + 1, status=403),
             flow("POST", f"https://{IDP_HOST}/saml/artifact", t=T0 + 1.1, browser=False,
                  headers={"content-type": "text/xml"}, body=resolve, resp_headers={"content-type": "text/xml"},
                  resp_body=soap)]
    fs, hops = findings(tmp_path, flows)
    cb, back = hops[1], hops[2]
    assert cb.role.value == "callback" and cb.params.saml.kind == "Artifact"
    assert cb.params.query["SAMLart"].startswith("samlart#") and cb.params.saml.artifact.type_code == 4
    assert back.role.value == "token" and back.actor.value == "app" and back.params.saml.kind == "ArtifactResolve"
    assert back.answer.saml.inner.kind == "Response" and back.error.error == "Responder/AuthnFailed"
    assert kinds(fs) == ["idp_error"] and "AuthnFailed" in fs[0].title
    assert [h.number for h in fs[0].evidence] == [1, 2, 3]  # the request, the artifact delivered, its resolution


# ------------------------------------------------------------------- hostile input


BILLION_LAUGHS = b"""<?xml version="1.0"?><!DOCTYPE lolz [<!ENTITY lol "lol">
<!ENTITY lol2 "&lol;&lol;&lol;&lol;&lol;&lol;&lol;&lol;&lol;&lol;">
<!ENTITY lol3 "&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;">]>
<samlp:Response xmlns:samlp="urn:oasis:names:tc:SAML:2.0:protocol">&lol3;</samlp:Response>"""
XXE = b"""<?xml version="1.0"?><!DOCTYPE r [<!ENTITY x SYSTEM "http://127.0.0.1:9/steal">]>
<samlp:Response xmlns:samlp="urn:oasis:names:tc:SAML:2.0:protocol">&x;</samlp:Response>"""


@pytest.mark.parametrize("xml", [BILLION_LAUGHS, XXE, b"<samlp:Response>" + b"A" * (2 * 1024 * 1024)],
                         ids=["billion-laughs", "external-entity", "huge"])
def test_hostile_xml_is_a_sentence_on_the_hop_never_a_finding(tmp_path, xml):
    fs, hops = findings(tmp_path, [f_post(xml, answer=400, words="bad request")])
    m = hops[0].params.saml
    assert hops[0].role.value == "callback" and m is not None and m.problem and m.kind is None
    assert "DOCTYPE" in m.problem or "larger than" in m.problem
    assert kinds(fs) == ["failed_hop"]  # the app's own 400, nothing about SAML


# -------------------------------------------------------------- secrets and personal data


def test_the_store_and_the_reports_hold_no_saml_blob_and_mask_the_nameid(tmp_path):
    xml = signed_response()
    blob = base64.b64encode(xml).decode()
    engine = db.open_db(str(tmp_path / "s.db"))
    cap = tmp_path / "c.mitm"
    from mitmproxy.io import FlowWriter

    with open(cap, "wb") as fh:
        w = FlowWriter(fh)
        for f in [f_metadata(), f_request(), f_post(xml), f_post(xml, t=T0 + 2, answer=403)]:
            w.add(f)
    sid = import_file(engine, str(cap)).session_id
    engine.dispose()
    stored = b"".join(p.read_bytes() for p in tmp_path.glob("s.db*"))
    for i in range(0, len(blob) - 40, 200):
        assert blob[i:i + 40].encode() not in stored
    assert ATTRIBUTE_VALUE.encode() not in stored
    engine = db.open_db(str(tmp_path / "s.db"))
    session = db.load_session(engine, sid)
    a = analyse(engine, session)
    page = render_html(a)
    assert find_leaks(page) == [] and NAME in page and "SAML Response" in page
    masked = render_html(a, redact_pii=True)
    assert NAME not in masked and "[user 1]" in masked and find_leaks(masked) == []
    out = valid(to_json(a, redact_pii=True))
    assert [f["kind"] for f in out["findings"]] == ["duplicate_redirect"] and NAME not in json.dumps(out)


def test_leak_check_knows_saml_blobs():
    blob = base64.b64encode(signed_response()).decode()
    assert find_leaks(f"<td>{blob}</td>") == ["a base64 SAML message in the report header"]
    assert "a raw `samlresponse` value in the report header" in find_leaks(f"SAMLResponse={blob[:30]}")
    assert find_leaks("&lt;saml:Assertion ID=&quot;_a1&quot;") == [
        "raw SAML XML (an assertion or a signature) in the report header"]
    assert find_leaks("<th>SAMLResponse</th><td>samlresponse#0123456789</td><h5>Assertion _a1</h5>") == []


# ------------------------------------------------------------------- view and CLI


def test_content_view_decodes_saml_with_the_sessions_certificates():
    post = f_post(signed_response())
    d = decode_message(post.request.raw_content, post.request, Keys())
    text = render_text(d.rows)
    assert d.priority > 1 and "SAML Response (HTTP-POST)" in text and "Audience: " + SP_ENTITY in text
    assert "attribute names: mail" in text and ATTRIBUTE_VALUE not in text and "samlresponse#" in text
    assert "signature: unknown" in text


def test_cli_saml_cert_verifies_and_a_wrong_one_fails(tmp_path):
    from mitmproxy.io import FlowWriter

    cap = tmp_path / "c.mitm"
    with open(cap, "wb") as fh:
        w = FlowWriter(fh)
        for f in signin()[1:]:  # no metadata in the capture
            w.add(f)
    good, evil, meta = tmp_path / "idp.pem", tmp_path / "evil.pem", tmp_path / "idp-metadata.xml"
    good.write_bytes(IDP_KEY[1])
    evil.write_bytes(EVIL_KEY[1])
    meta.write_text(metadata())

    def check(*extra: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run([sys.executable, "-m", "authtrace", "check", str(cap), "--json", *extra],
                              capture_output=True, text=True, timeout=120)

    for trust in (good, meta):
        r = check("--saml-cert", str(trust))
        assert r.returncode == 0 and json.loads(r.stdout)["findings"] == [], r.stderr
    r = check("--saml-cert", str(evil))
    assert r.returncode == 1 and [f["kind"] for f in json.loads(r.stdout)["findings"]] == ["saml_signature"]
    assert "given with --saml-cert" in json.loads(r.stdout)["findings"][0]["explanation"]
    bad = tmp_path / "not-a-cert.txt"
    bad.write_text("hello")
    r = check("--saml-cert", str(bad))
    assert r.returncode == 2 and "holds no X.509 certificate" in r.stderr and r.stdout == ""


def test_checks_never_fail_on_records_from_an_older_or_damaged_store(tmp_path):
    fs, hops = findings(tmp_path, signin())
    for h in hops:  # what a store written by another version may hold: nested records partly missing
        if h.params.saml is not None:
            h.params.saml = type(h.params.saml)(kind="Response")
    found, failures = run_checks(hops)
    assert failures == []


# ------------------------------------------------------------- real-traffic fixtures


@pytest.mark.parametrize(("name", "expected"), [("saml-repost", ["duplicate_redirect"]),
                                                ("saml-nopassive", ["idp_error"])])
def test_real_saml_captures_give_their_finding(tmp_path, name, expected):
    """tests/fixtures/saml-*.mitm: journeys of the SAML end-to-end suite (SimpleSAMLphp, pysaml2, Chromium,
    `authtrace record --save-flows`), kept so the checks run on real SAML traffic without the rig."""
    from pathlib import Path

    path = Path(__file__).resolve().parent / "fixtures" / f"{name}.mitm"
    engine = db.open_db(str(tmp_path / "f.db"))
    sid = import_file(engine, str(path)).session_id
    a = analyse(engine, db.load_session(engine, sid))
    assert [f.kind for f in a.findings] == expected and all(f.severity == "error" for f in a.findings)
    assert {h.role.value for h in a.hops} >= {"authorize", "callback"} and a.notes == []
    assert find_leaks(render_html(a)) == []


def test_an_error_page_that_echoes_the_response_keeps_no_assertion(tmp_path):
    """Some apps print the Response they refused (escaped XML, or its base64) on their error page: the
    stored excerpt keeps the words around it, never the assertion, its signature value or the blob."""
    xml = signed_response()
    echoed = sign(assertion()).decode().replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")
    page = f"<h1>SAML response rejected</h1><p>{base64.b64encode(xml).decode()}</p><pre>{echoed}</pre>"
    post = f_post(xml, answer=403)
    post.response.text = page[:500] + page[page.index("<pre>"):]  # the blob's start, then the echoed assertion
    fs, hops = findings(tmp_path, [f_metadata(), f_request(), post])
    excerpt = hops[-1].body_excerpt or ""
    assert "SAML response rejected" in excerpt and "[SAML assertion, not stored]" in excerpt and "saml#" in excerpt
    assert NAME not in excerpt and ATTRIBUTE_VALUE not in excerpt and "SignatureValue" not in excerpt
    assert base64.b64encode(xml).decode()[:40] not in excerpt
    xml_page = post.response.text.replace("&lt;", "<").replace("&gt;", ">")  # not escaped, and cut short
    post.response.text = xml_page[:xml_page.index("</saml:Subject>")]
    excerpt = findings(tmp_path, [f_request(), post])[1][-1].body_excerpt or ""
    assert excerpt.endswith("[SAML assertion, not stored]") and NAME not in excerpt
    assert kinds(fs) == ["failed_hop"]  # a refusal no SAML fact explains


# ------------------------------------------------------------------ live capture


def test_live_addon_checks_with_the_saml_cert_option_and_comments_the_flow(tmp_path):
    from mitmproxy import exceptions
    from mitmproxy.test import taddons

    from authtrace.addons import capture

    pem = tmp_path / "idp.pem"
    pem.write_bytes(IDP_KEY[1])
    a = capture.AuthTrace()
    flows = signin()[1:]  # no metadata: only the option can vouch for the IdP
    with taddons.context(a) as tctx:
        tctx.configure(a, authtrace_db=str(tmp_path / "live.db"), authtrace_saml_cert=[str(pem)])
        a.running()
        for f in flows:
            a.requestheaders(f)
            a.response(f)
        with pytest.raises(exceptions.OptionsError, match="holds no X.509 certificate"):
            tctx.configure(a, authtrace_saml_cert=[str(tmp_path / "live.db")])
        a.done()
    assert "SAML AuthnRequest _req1" in flows[0].comment
    assert "SAML Response Success · answers _req1 · signature verified" in flows[1].comment
    engine = db.open_db(str(tmp_path / "live.db"))
    hops = db.load_hops(engine, 1)
    assert hops[-1].params.saml.signature_status == "verified" and run_checks(hops) == ([], [])


def test_record_refuses_a_saml_cert_that_is_none_in_one_sentence(tmp_path):
    bad = tmp_path / "x.pem"
    bad.write_text("not a certificate")
    r = subprocess.run([sys.executable, "-m", "authtrace", "record", "--db", str(tmp_path / "r.db"),
                        "--listen-port", "0", "--saml-cert", str(bad)], capture_output=True, text=True, timeout=60)
    assert r.returncode == 2 and r.stderr.strip() == (f"authtrace: {bad} holds no X.509 certificate (PEM, DER or "
                                                      "base64) and is not SAML metadata.")
