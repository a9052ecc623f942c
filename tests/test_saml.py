"""addons/saml.py: SAML messages as a capture holds them, decoded into records a user can trust.

Every message is built here and signed with signxml and keys made here; nothing is mocked. What a
user relies on: every field the checks will read is decoded, a signature says ``verified`` only
when the known IdP certificate covers the very element whose fields are shown (signature
wrapping cannot borrow it), hostile XML gives one sentence instead of a crash, a fetch or a
memory blow-up, and no attribute value or raw message survives into a record.
"""

from __future__ import annotations

import base64
import copy
import dataclasses
import datetime as dt
import hashlib
import json
import socket
import subprocess
import sys
import textwrap
import threading
import zlib
from collections.abc import Iterator
from pathlib import Path
from urllib.parse import quote, urlencode

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import padding, rsa
from cryptography.x509.oid import NameOID
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from lxml import etree
from signxml import XMLSigner, methods
from signxml.algorithms import CanonicalizationMethod, DigestAlgorithm, SignatureMethod

from authtrace.addons import saml

REPO = Path(__file__).resolve().parents[1]
T0 = 1_767_225_600  # 2026-01-01T00:00:00Z
IDP = "https://idp.example.test/saml2/idp/metadata.php"
SP = "https://sp.example.test/metadata"
ACS = "https://sp.example.test/acs"
SECRET_VALUE = "attribute-value-never-kept@example.test"


@dataclasses.dataclass(frozen=True)
class Signer:
    key_pem: bytes
    cert_pem: bytes
    cert: x509.Certificate
    key: rsa.RSAPrivateKey

    @property
    def sha256(self) -> str:
        return hashlib.sha256(self.cert.public_bytes(serialization.Encoding.DER)).hexdigest()


def _signer(name: str) -> Signer:
    key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    subject = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, name)])
    now = dt.datetime.now(dt.UTC)
    cert = (
        x509.CertificateBuilder().subject_name(subject).issuer_name(subject).public_key(key.public_key())
        .serial_number(x509.random_serial_number()).not_valid_before(now - dt.timedelta(days=1))
        .not_valid_after(now + dt.timedelta(days=30)).sign(key, hashes.SHA256())
    )  # fmt: skip
    key_pem = key.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
    )
    return Signer(key_pem, cert.public_bytes(serialization.Encoding.PEM), cert, key)


@pytest.fixture(scope="module")
def idp() -> Signer:
    return _signer("idp.example.test")


@pytest.fixture(scope="module")
def attacker() -> Signer:
    return _signer("attacker.example.test")


def iso(t: float) -> str:
    return dt.datetime.fromtimestamp(t, dt.UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


NSDECL = 'xmlns:samlp="urn:oasis:names:tc:SAML:2.0:protocol" xmlns:saml="urn:oasis:names:tc:SAML:2.0:assertion"'


def assertion_xml(aid: str = "_a1", *, nameid: str = "alice@example.test", audience: str = SP, t: int = T0) -> str:
    return f"""<saml:Assertion {NSDECL} ID="{aid}" Version="2.0" IssueInstant="{iso(t)}">
  <saml:Issuer>{IDP}</saml:Issuer>
  <saml:Subject>
    <saml:NameID Format="urn:oasis:names:tc:SAML:1.1:nameid-format:emailAddress">{nameid}</saml:NameID>
    <saml:SubjectConfirmation Method="urn:oasis:names:tc:SAML:2.0:cm:bearer">
      <saml:SubjectConfirmationData NotOnOrAfter="{iso(t + 300)}" Recipient="{ACS}" InResponseTo="_req1"/>
    </saml:SubjectConfirmation>
  </saml:Subject>
  <saml:Conditions NotBefore="{iso(t - 30)}" NotOnOrAfter="{iso(t + 300)}">
    <saml:AudienceRestriction><saml:Audience>{audience}</saml:Audience></saml:AudienceRestriction>
  </saml:Conditions>
  <saml:AuthnStatement AuthnInstant="{iso(t - 5)}" SessionIndex="_sess1" SessionNotOnOrAfter="{iso(t + 28800)}">
    <saml:AuthnContext>
      <saml:AuthnContextClassRef>urn:oasis:names:tc:SAML:2.0:ac:classes:Password</saml:AuthnContextClassRef>
    </saml:AuthnContext>
  </saml:AuthnStatement>
  <saml:AttributeStatement>
    <saml:Attribute Name="mail"><saml:AttributeValue>{SECRET_VALUE}</saml:AttributeValue></saml:Attribute>
    <saml:Attribute Name="eduPersonAffiliation"><saml:AttributeValue>member</saml:AttributeValue></saml:Attribute>
  </saml:AttributeStatement>
</saml:Assertion>"""


def response_xml(body: str, *, rid: str = "_r1", status: str | None = None, t: int = T0) -> str:
    status = status or '<samlp:StatusCode Value="urn:oasis:names:tc:SAML:2.0:status:Success"/>'
    return f"""<samlp:Response {NSDECL} ID="{rid}" Version="2.0" IssueInstant="{iso(t)}"
    Destination="{ACS}" InResponseTo="_req1">
  <saml:Issuer>{IDP}</saml:Issuer>
  <samlp:Status>{status}</samlp:Status>
  {body}
</samlp:Response>"""


def _child(el: etree._Element, tag: str) -> etree._Element:
    found = el.find(tag)
    assert found is not None, tag
    return found


ISSUER = "{urn:oasis:names:tc:SAML:2.0:assertion}Issuer"
DS_SIGNATURE = "{http://www.w3.org/2000/09/xmldsig#}Signature"


def sign(xml: str | bytes, signer: Signer) -> bytes:
    """Enveloped signature over the root element (Reference URI '#<root ID>'), placed after Issuer."""
    root = etree.fromstring(xml.encode() if isinstance(xml, str) else xml)
    _child(root, ISSUER).addnext(etree.Element(DS_SIGNATURE, Id="placeholder"))
    signer_ = XMLSigner(
        method=methods.enveloped,
        signature_algorithm=SignatureMethod.RSA_SHA256,
        digest_algorithm=DigestAlgorithm.SHA256,
        c14n_algorithm=CanonicalizationMethod.EXCLUSIVE_XML_CANONICALIZATION_1_0,
    )
    signed = signer_.sign(root, key=signer.key_pem, cert=signer.cert_pem.decode(), reference_uri=f"#{root.get('ID')}")
    return etree.tostring(signed)


def signed_response(idp: Signer, *, sign_response: bool = True, **kw: object) -> bytes:
    inner = sign(assertion_xml(**kw), idp).decode()  # type: ignore[arg-type]
    xml = response_xml(inner)
    return sign(xml, idp) if sign_response else xml.encode()


def post(xml: bytes, **extra: str) -> dict[str, str]:
    return {"SAMLResponse": base64.b64encode(xml).decode(), **extra}


def deflate(xml: bytes) -> bytes:
    c = zlib.compressobj(9, zlib.DEFLATED, -15)
    return c.compress(xml) + c.flush()


def redirect_value(xml: bytes) -> str:
    return base64.b64encode(deflate(xml)).decode()


# ------------------------------------------------------------------ bindings and fields

AUTHN_REQUEST = f"""<samlp:AuthnRequest {NSDECL} ID="_req1" Version="2.0" IssueInstant="2026-01-01T00:00:00.123Z"
    Destination="https://idp.example.test/sso" AssertionConsumerServiceURL="{ACS}"
    ProtocolBinding="urn:oasis:names:tc:SAML:2.0:bindings:HTTP-POST" IsPassive="true" ForceAuthn="false">
  <saml:Issuer>{SP}</saml:Issuer>
  <samlp:NameIDPolicy Format="urn:oasis:names:tc:SAML:2.0:nameid-format:transient" AllowCreate="true"/>
  <samlp:RequestedAuthnContext Comparison="exact">
    <saml:AuthnContextClassRef>urn:oasis:names:tc:SAML:2.0:ac:classes:PasswordProtectedTransport</saml:AuthnContextClassRef>
  </samlp:RequestedAuthnContext>
</samlp:AuthnRequest>""".encode()


def test_authn_request_over_redirect_every_field() -> None:
    msg = saml.decode_binding(
        {"SAMLRequest": redirect_value(AUTHN_REQUEST), "RelayState": "/after"}, binding="redirect"
    )
    assert msg is not None and msg.problem is None
    assert (msg.kind, msg.binding, msg.param, msg.deflated) == ("AuthnRequest", "redirect", "SAMLRequest", True)
    assert msg.id == "_req1" and msg.issuer == SP and msg.version == "2.0"
    assert msg.destination == "https://idp.example.test/sso"
    assert msg.issue_instant == pytest.approx(T0 + 0.123)
    assert msg.acs_url == ACS and msg.protocol_binding.endswith("HTTP-POST")
    assert msg.nameid_policy == "urn:oasis:names:tc:SAML:2.0:nameid-format:transient" and msg.allow_create is True
    assert msg.is_passive is True and msg.force_authn is False
    assert msg.requested_authn_context == ("urn:oasis:names:tc:SAML:2.0:ac:classes:PasswordProtectedTransport",)
    assert msg.relay_state_present is True and msg.size == len(AUTHN_REQUEST)
    assert msg.signature is None and msg.signature_status == "unsigned"


def test_authn_request_over_post_and_not_saml() -> None:
    msg = saml.decode_binding({"SAMLRequest": base64.b64encode(AUTHN_REQUEST).decode()}, binding="post")
    assert msg is not None and (msg.kind, msg.binding, msg.deflated, msg.relay_state_present) == (
        "AuthnRequest",
        "post",
        False,
        False,
    )
    assert saml.decode_binding({"code": "x", "state": "y"}) is None
    assert saml.decode_binding({}) is None


def test_takes_mitmproxy_request_views_as_they_are() -> None:
    """The hop builder hands over ``request.query`` / ``urlencoded_form`` and ``request.path``."""
    from mitmproxy.test import tutils

    value = redirect_value(AUTHN_REQUEST)
    get = tutils.treq(method=b"GET", path=("/sso?" + urlencode({"SAMLRequest": value, "RelayState": "r"})).encode())
    msg = saml.decode_binding(get.query, binding="redirect", raw_query=get.path.split("?", 1)[1])
    assert msg is not None and (msg.kind, msg.id, msg.relay_state_present) == ("AuthnRequest", "_req1", True)
    body = urlencode({"SAMLResponse": base64.b64encode(response_xml("").encode()).decode()}).encode()
    post = tutils.treq(method=b"POST", path=b"/acs", content=body,
                       headers=((b"content-type", b"application/x-www-form-urlencoded"),))  # fmt: skip
    msg = saml.decode_binding(post.urlencoded_form, binding="post")
    assert msg is not None and (msg.kind, msg.id, msg.binding) == ("Response", "_r1", "post")


def test_parameter_quirks_of_real_stacks() -> None:
    """A '+' that a form decoder turned into a space, line-wrapped base64, a lowercased name."""
    value = base64.encodebytes(AUTHN_REQUEST).decode()  # wrapped every 76 characters
    assert "\n" in value
    for params in ({"SAMLRequest": value}, {"samlrequest": value}, {"SAMLRequest": value.replace("+", " ")}):
        msg = saml.decode_binding(params, binding="post")
        assert msg is not None and msg.id == "_req1", params.keys()


def test_redirect_signature_over_the_query_as_sent(idp: Signer, attacker: Signer) -> None:
    """HTTP-Redirect signs 'SAMLRequest=…&RelayState=…&SigAlg=…' in its URL-encoded form."""
    sigalg = "http://www.w3.org/2001/04/xmldsig-more#rsa-sha256"
    signed_part = urlencode(
        {"SAMLRequest": redirect_value(AUTHN_REQUEST), "RelayState": "https://sp/x?a=1", "SigAlg": sigalg}
    )
    signature = base64.b64encode(idp.key.sign(signed_part.encode(), padding.PKCS1v15(), hashes.SHA256())).decode()
    raw_query = signed_part + "&Signature=" + quote(signature, safe="")
    params = {
        "SAMLRequest": redirect_value(AUTHN_REQUEST),
        "RelayState": "https://sp/x?a=1",
        "SigAlg": sigalg,
        "Signature": signature,
    }

    ok = saml.decode_binding(params, raw_query=raw_query, certs=[idp.cert_pem])
    assert ok is not None and ok.signature_status == "verified" and ok.signature.verified_with == idp.sha256
    assert ok.signature.algorithm == sigalg
    wrong_cert = saml.decode_binding(params, raw_query=raw_query, certs=[attacker.cert_pem])
    assert wrong_cert is not None and wrong_cert.signature_status == "failed"
    tampered = saml.decode_binding(params, raw_query=raw_query.replace("a%3D1", "a%3D2"), certs=[idp.cert_pem])
    assert tampered is not None and tampered.signature_status == "failed"
    unknown = saml.decode_binding(params, raw_query=raw_query)
    assert unknown is not None and unknown.signature_status == "unknown" and "certificate" in unknown.signature.note


def test_response_every_field_from_the_signed_copy(idp: Signer) -> None:
    xml = signed_response(idp)
    msg = saml.decode_binding(post(xml, RelayState="rs"), binding="post", certs=[idp.cert_pem])
    assert msg is not None and msg.problem is None
    assert (msg.kind, msg.id, msg.issuer, msg.destination, msg.in_response_to) == ("Response", "_r1", IDP, ACS, "_req1")
    assert msg.issue_instant == T0 and msg.status is not None and msg.status.success and msg.status.subcodes == ()
    assert msg.signature_status == "verified" and msg.signature.cert_sha256 == idp.sha256
    assert msg.signature.reference == "#_r1" and msg.signature.algorithm.endswith("rsa-sha256")
    assert msg.signature.digest_algorithm.endswith("sha256")
    assert msg.encrypted_assertions == 0 and msg.misplaced_assertions == 0
    (a,) = msg.assertions
    assert (a.id, a.issuer, a.issue_instant) == ("_a1", IDP, T0)
    assert a.subject_nameid == "alice@example.test" and a.nameid_format.endswith("emailAddress")
    (c,) = a.confirmations
    assert (c.method, c.recipient, c.not_on_or_after, c.in_response_to) == (saml.BEARER, ACS, T0 + 300, "_req1")
    assert (a.not_before, a.not_on_or_after, a.audiences) == (T0 - 30, T0 + 300, (SP,))
    assert (a.authn_instant, a.session_index, a.session_not_on_or_after) == (T0 - 5, "_sess1", T0 + 28800)
    assert a.authn_context_class == "urn:oasis:names:tc:SAML:2.0:ac:classes:Password"
    assert a.attribute_names == ("mail", "eduPersonAffiliation")
    assert a.signature is not None and a.signature.status == "verified" and a.signature_status == "verified"


def test_records_are_json_and_keep_no_attribute_value_or_raw_message(idp: Signer) -> None:
    xml = signed_response(idp)
    params = post(xml)
    msg = saml.decode_binding(params, binding="post", certs=[idp.cert_pem])
    as_json = json.dumps(dataclasses.asdict(msg))
    assert SECRET_VALUE not in as_json and "member" not in as_json.replace("eduPerson", "")
    assert params["SAMLResponse"][:40] not in as_json and "SignatureValue" not in as_json
    assert "alice@example.test" in as_json  # the NameID is there, in the one field masked() replaces
    hidden = saml.masked(msg, lambda v: "nameid#" + hashlib.sha256(v.encode()).hexdigest()[:10])
    assert "alice@example.test" not in json.dumps(dataclasses.asdict(hidden))
    assert hidden.assertions[0].subject_nameid.startswith("nameid#") and hidden.assertions[0].id == "_a1"


def test_status_error_with_nested_codes() -> None:
    status = (
        '<samlp:StatusCode Value="urn:oasis:names:tc:SAML:2.0:status:Responder">'
        '<samlp:StatusCode Value="urn:oasis:names:tc:SAML:2.0:status:NoPassive"/></samlp:StatusCode>'
        "<samlp:StatusMessage>Passive authentication not supported.</samlp:StatusMessage>"
    )
    msg = saml.decode_binding(post(response_xml("", status=status).encode()), binding="post")
    assert msg is not None and msg.status is not None and not msg.status.success
    assert msg.status.code.endswith(":Responder") and msg.status.subcodes == (
        "urn:oasis:names:tc:SAML:2.0:status:NoPassive",
    )
    assert msg.status.message == "Passive authentication not supported." and msg.assertions == ()


def test_encrypted_assertion_is_counted_not_guessed() -> None:
    body = ('<saml:EncryptedAssertion><xenc:EncryptedData xmlns:xenc="http://www.w3.org/2001/04/xmlenc#">'
            "<xenc:CipherData><xenc:CipherValue>AAAA</xenc:CipherValue></xenc:CipherData></xenc:EncryptedData>"
            "</saml:EncryptedAssertion>")  # fmt: skip
    msg = saml.decode_binding(post(response_xml(body).encode()), binding="post")
    assert msg is not None and msg.encrypted_assertions == 1 and msg.assertions == ()


def test_logout_request_and_response() -> None:
    req = f"""<samlp:LogoutRequest {NSDECL} ID="_lo1" Version="2.0" IssueInstant="2026-01-01T00:00:00+01:00"
        Destination="https://idp.example.test/slo"><saml:Issuer>{SP}</saml:Issuer>
        <saml:NameID Format="urn:oasis:names:tc:SAML:2.0:nameid-format:transient">_t123</saml:NameID>
        <samlp:SessionIndex>_sess1</samlp:SessionIndex></samlp:LogoutRequest>""".encode()
    msg = saml.decode_binding({"SAMLRequest": redirect_value(req)})
    assert msg is not None and (msg.kind, msg.id, msg.subject_nameid, msg.session_indexes) == (
        "LogoutRequest",
        "_lo1",
        "_t123",
        ("_sess1",),
    )
    assert msg.issue_instant == T0 - 3600  # +01:00 is an hour ahead of UTC
    res = f"""<samlp:LogoutResponse {NSDECL} ID="_lr1" Version="2.0" IssueInstant="2026-01-01T00:00:00Z" InResponseTo="_lo1">
        <saml:Issuer>{IDP}</saml:Issuer><samlp:Status><samlp:StatusCode Value="urn:oasis:names:tc:SAML:2.0:status:Success"/>
        </samlp:Status></samlp:LogoutResponse>""".encode()
    out = saml.decode_binding({"SAMLResponse": base64.b64encode(res).decode()}, binding="post")
    assert out is not None and (out.kind, out.in_response_to) == ("LogoutResponse", "_lo1") and out.status.success


def test_artifact_binding_recognised_without_keeping_the_handle() -> None:
    source = hashlib.sha1(IDP.encode()).digest()
    handle = bytes(range(20))
    art = base64.b64encode(b"\x00\x04\x00\x01" + source + handle).decode()
    msg = saml.decode_binding({"SAMLart": art, "RelayState": "x"})
    assert msg is not None and (msg.kind, msg.binding, msg.param) == ("Artifact", "artifact", "SAMLart")
    assert msg.artifact == saml.SamlArtifact(type_code=4, endpoint_index=1, source_id=source.hex())
    assert handle.hex() not in json.dumps(dataclasses.asdict(msg)) and art not in json.dumps(dataclasses.asdict(msg))
    bad = saml.decode_binding({"SAMLart": "bm90IGFuIGFydGlmYWN0"}, binding="post")
    assert bad is not None and bad.problem and "artifact" in bad.problem


def test_soap_artifact_response_carries_the_response(idp: Signer) -> None:
    inner = signed_response(idp).decode()
    soap = f"""<soap:Envelope xmlns:soap="http://schemas.xmlsoap.org/soap/envelope/"><soap:Body>
      <samlp:ArtifactResponse {NSDECL} ID="_ar1" Version="2.0" IssueInstant="{iso(T0)}" InResponseTo="_resolve1">
      <saml:Issuer>{IDP}</saml:Issuer><samlp:Status><samlp:StatusCode Value="urn:oasis:names:tc:SAML:2.0:status:Success"/></samlp:Status>
      {inner.split("?>", 1)[-1]}</samlp:ArtifactResponse></soap:Body></soap:Envelope>""".encode()
    msg = saml.decode_xml(soap, binding="soap", certs=[idp.cert_pem])
    assert (msg.kind, msg.binding, msg.in_response_to) == ("ArtifactResponse", "soap", "_resolve1")
    assert msg.inner is not None and msg.inner.kind == "Response" and msg.inner.signature_status == "verified"
    assert msg.inner.assertions[0].id == "_a1" and msg.inner.assertions[0].signature_status == "verified"


def test_times_parse_as_utc() -> None:
    for text, want in (("2026-01-01T00:00:00Z", T0), ("2026-01-01T00:00:00", T0), ("2026-01-01T00:00:00.5Z", T0 + 0.5),
                       ("2026-01-01T00:00:00.123456789Z", T0 + 0.123456789), ("2026-01-01T02:00:00+02:00", T0),
                       ("2025-12-31T19:00:00-05:00", T0)):  # fmt: skip
        assert saml._time(text) == pytest.approx(want), text
    for bad in ("yesterday", "2026-13-01T00:00:00Z", "", "2026-01-01"):
        assert saml._time(bad) is None


def test_comment_inside_nameid_cannot_cut_it_short(idp: Signer) -> None:
    """The 2018 SAML comment trick: 'admin@corp.test<!---->.evil.test' must read as the whole value."""
    xml = signed_response(idp, nameid="admin@corp.test<!---->.evil.test")
    msg = saml.decode_binding(post(xml), binding="post", certs=[idp.cert_pem])
    assert msg is not None and msg.assertions[0].subject_nameid == "admin@corp.test.evil.test"
    unverified = saml.decode_binding(post(xml), binding="post")
    assert unverified is not None and unverified.assertions[0].subject_nameid == "admin@corp.test.evil.test"


# --------------------------------------------------------------------------- signatures


def test_signature_verified_failed_unknown_unsigned(idp: Signer, attacker: Signer) -> None:
    xml = signed_response(idp)
    assert saml.verify(xml, [idp.cert_pem]) == saml.SamlVerification(
        message="verified", assertions=(("_a1", "verified"),)
    )
    # rotated IdP keys: any of the known certificates may be the one
    assert saml.verify(xml, [attacker.cert_pem, idp.cert]).message == "verified"
    wrong = saml.decode_xml(xml, certs=[attacker.cert_pem])
    assert wrong.signature_status == "failed" and "certificate" in wrong.signature.note
    assert wrong.assertions[0].signature_status == "failed"
    assert saml.verify(xml, []) == saml.SamlVerification(message="unknown", assertions=(("_a1", "unknown"),))
    plain = response_xml(assertion_xml()).encode()
    assert saml.verify(plain, [idp.cert_pem]) == saml.SamlVerification(
        message="unsigned", assertions=(("_a1", "unsigned"),)
    )


def test_signed_assertion_in_an_unsigned_response(idp: Signer) -> None:
    xml = signed_response(idp, sign_response=False)
    msg = saml.decode_xml(xml, certs=[idp.cert_pem])
    assert msg.signature is None and msg.signature_status == "unsigned"
    assert msg.assertions[0].signature_status == "verified" and msg.assertions[0].signature.cert_sha256 == idp.sha256


def test_assertion_covered_only_by_the_response_signature(idp: Signer) -> None:
    xml = sign(response_xml(assertion_xml()), idp)
    msg = saml.decode_xml(xml, certs=[idp.cert_pem])
    assert msg.signature_status == "verified"
    (a,) = msg.assertions
    assert a.signature is None and a.signature_status == "verified" and a.audiences == (SP,)


def test_content_changed_after_signing_fails(idp: Signer) -> None:
    xml = signed_response(idp, sign_response=False).replace(SP.encode(), b"https://other.example.test/")
    msg = saml.decode_xml(xml, certs=[idp.cert_pem])
    assert msg.assertions[0].signature_status == "failed" and "digest" in msg.assertions[0].signature.note


def test_wrapping_moved_signed_assertion_does_not_vouch_for_the_evil_one(idp: Signer) -> None:
    """XSW: the signed assertion moved into Extensions, an unsigned evil assertion in its place."""
    good = sign(assertion_xml("_a1", nameid="alice@example.test"), idp).decode()
    evil = assertion_xml("_evil", nameid="admin@example.test", audience="https://attacker.example.test")
    xml = response_xml(f"<samlp:Extensions>{good}</samlp:Extensions>{evil}").encode()
    msg = saml.decode_xml(xml, certs=[idp.cert_pem])
    (a,) = msg.assertions
    assert a.id == "_evil" and a.subject_nameid == "admin@example.test"
    assert a.signature_status == "unsigned" and a.signature is None
    assert msg.misplaced_assertions == 1
    assert saml.verify(xml, [idp.cert_pem]).assertions == (("_evil", "unsigned"),)


def test_wrapping_same_id_with_the_signature_moved_into_the_evil_assertion(idp: Signer) -> None:
    """XSW: the evil assertion takes the good one's ID and its Signature; the good one hides in Advice."""
    good = etree.fromstring(sign(assertion_xml("_a1"), idp))
    signature = _child(good, DS_SIGNATURE)
    evil = etree.fromstring(assertion_xml("_a1", nameid="admin@example.test"))
    _child(evil, ISSUER).addnext(signature)  # moves it out of good
    good.append(copy.deepcopy(signature))  # the good one keeps an intact signature too
    advice = etree.SubElement(evil, "{urn:oasis:names:tc:SAML:2.0:assertion}Advice")
    advice.append(good)
    xml = response_xml(etree.tostring(evil).decode()).encode()
    msg = saml.decode_xml(xml, certs=[idp.cert_pem])
    (a,) = msg.assertions
    assert a.subject_nameid == "admin@example.test" and a.signature_status == "failed"
    assert msg.misplaced_assertions == 1


def test_wrapping_signature_pointing_elsewhere(idp: Signer) -> None:
    """The evil assertion carries the good one's signature, whose Reference names the hidden good one."""
    good = etree.fromstring(sign(assertion_xml("_a1"), idp))
    signature = _child(good, DS_SIGNATURE)
    evil = etree.fromstring(assertion_xml("_evil", nameid="admin@example.test"))
    _child(evil, ISSUER).addnext(copy.deepcopy(signature))
    xml = response_xml(
        f"<samlp:Extensions>{etree.tostring(good).decode()}</samlp:Extensions>{etree.tostring(evil).decode()}"
    ).encode()
    msg = saml.decode_xml(xml, certs=[idp.cert_pem])
    (a,) = msg.assertions
    assert a.id == "_evil" and a.signature_status == "failed" and "#_a1" in a.signature.note


def test_wrapping_evil_response_around_a_signed_one(idp: Signer) -> None:
    """XSW on the Response: the signed Response hidden inside an unsigned one with an evil assertion."""
    good = signed_response(idp).decode()
    evil = response_xml(
        f"<samlp:Extensions>{good}</samlp:Extensions>" + assertion_xml("_evil", nameid="admin@example.test"), rid="_r2"
    )
    msg = saml.decode_xml(evil.encode(), certs=[idp.cert_pem])
    assert msg.signature_status == "unsigned" and [a.id for a in msg.assertions] == ["_evil"]
    assert msg.assertions[0].signature_status == "unsigned" and msg.misplaced_assertions == 1


def test_evil_assertion_added_to_a_signed_response_breaks_it(idp: Signer) -> None:
    root = etree.fromstring(signed_response(idp))
    root.append(etree.fromstring(assertion_xml("_evil", nameid="admin@example.test")))
    msg = saml.decode_xml(etree.tostring(root), certs=[idp.cert_pem])
    assert msg.signature_status == "failed"
    assert [(a.id, a.signature_status) for a in msg.assertions] == [("_a1", "verified"), ("_evil", "failed")]


# ----------------------------------------------------------------------------- metadata

METADATA = """<md:EntityDescriptor xmlns:md="urn:oasis:names:tc:SAML:2.0:metadata" xmlns:ds="http://www.w3.org/2000/09/xmldsig#"
    entityID="{idp}"><md:IDPSSODescriptor WantAuthnRequestsSigned="false"
    protocolSupportEnumeration="urn:oasis:names:tc:SAML:2.0:protocol">
  <md:KeyDescriptor use="signing"><ds:KeyInfo><ds:X509Data><ds:X509Certificate>{sign}</ds:X509Certificate></ds:X509Data></ds:KeyInfo></md:KeyDescriptor>
  <md:KeyDescriptor use="encryption"><ds:KeyInfo><ds:X509Data><ds:X509Certificate>{enc}</ds:X509Certificate></ds:X509Data></ds:KeyInfo></md:KeyDescriptor>
  <md:SingleSignOnService Binding="urn:oasis:names:tc:SAML:2.0:bindings:HTTP-Redirect" Location="https://idp.example.test/sso"/>
  <md:SingleLogoutService Binding="urn:oasis:names:tc:SAML:2.0:bindings:HTTP-Redirect" Location="https://idp.example.test/slo"/>
</md:IDPSSODescriptor></md:EntityDescriptor>"""


def _b64_der(s: Signer) -> str:
    return "\n".join(textwrap.wrap(base64.b64encode(s.cert.public_bytes(serialization.Encoding.DER)).decode(), 64))


def test_metadata_teaches_the_signing_certificate(idp: Signer, attacker: Signer) -> None:
    md = METADATA.format(idp=IDP, sign=_b64_der(idp), enc=_b64_der(attacker)).encode()
    certs = saml.certs_from_metadata(md)
    assert len(certs) == 1 and saml.thumbprint(saml.load_cert(certs[0])) == idp.sha256  # encryption key left out
    meta = saml.decode_metadata(md)
    assert meta.entity_id == IDP and meta.want_authn_requests_signed is False
    assert meta.sso_services == (saml.SamlEndpoint(binding="urn:oasis:names:tc:SAML:2.0:bindings:HTTP-Redirect",
                                                   location="https://idp.example.test/sso"),)  # fmt: skip
    assert saml.verify(signed_response(idp), certs).message == "verified"
    entities = (
        f'<md:EntitiesDescriptor xmlns:md="urn:oasis:names:tc:SAML:2.0:metadata">{md.decode()}</md:EntitiesDescriptor>'
    )
    assert saml.certs_from_metadata(entities.encode()) == certs
    assert saml.decode_metadata(b"<x/>").problem and saml.certs_from_metadata(b"\x00garbage") == ()


# ------------------------------------------------------------------------- hostile XML

BILLION_LAUGHS = b"""<?xml version="1.0"?>
<!DOCTYPE lolz [<!ENTITY lol "lol"><!ENTITY lol1 "&lol;&lol;&lol;&lol;&lol;&lol;&lol;&lol;&lol;&lol;">
<!ENTITY lol2 "&lol1;&lol1;&lol1;&lol1;&lol1;&lol1;&lol1;&lol1;&lol1;&lol1;">
<!ENTITY lol3 "&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;">
<!ENTITY lol4 "&lol3;&lol3;&lol3;&lol3;&lol3;&lol3;&lol3;&lol3;&lol3;&lol3;">
<!ENTITY lol5 "&lol4;&lol4;&lol4;&lol4;&lol4;&lol4;&lol4;&lol4;&lol4;&lol4;">
<!ENTITY lol6 "&lol5;&lol5;&lol5;&lol5;&lol5;&lol5;&lol5;&lol5;&lol5;&lol5;">
<!ENTITY lol7 "&lol6;&lol6;&lol6;&lol6;&lol6;&lol6;&lol6;&lol6;&lol6;&lol6;">
<!ENTITY lol8 "&lol7;&lol7;&lol7;&lol7;&lol7;&lol7;&lol7;&lol7;&lol7;&lol7;">
<!ENTITY lol9 "&lol8;&lol8;&lol8;&lol8;&lol8;&lol8;&lol8;&lol8;&lol8;&lol8;">]>
<samlp:Response xmlns:samlp="urn:oasis:names:tc:SAML:2.0:protocol" ID="_r1"><samlp:Status>&lol9;</samlp:Status></samlp:Response>"""


def xxe(system_id: str) -> bytes:
    return (f'<?xml version="1.0"?><!DOCTYPE r [<!ENTITY x SYSTEM "{system_id}">]>'
            f'<samlp:Response xmlns:samlp="urn:oasis:names:tc:SAML:2.0:protocol" ID="_r1">'
            f"<samlp:Status><samlp:StatusMessage>&x;</samlp:StatusMessage></samlp:Status></samlp:Response>").encode()  # fmt: skip


@pytest.fixture
def listener() -> Iterator[tuple[int, list[bytes]]]:
    """A real TCP server on loopback that records every connection: an XML fetch would land here."""
    srv = socket.socket()
    srv.bind(("127.0.0.1", 0))
    srv.listen(8)
    srv.settimeout(0.2)
    hits: list[bytes] = []
    stop = threading.Event()

    def serve() -> None:
        while not stop.is_set():
            try:
                conn, _ = srv.accept()
            except OSError:
                continue
            with conn:
                conn.settimeout(1)
                try:
                    hits.append(conn.recv(4096))
                    conn.sendall(b'HTTP/1.0 200 OK\r\nContent-Type: text/plain\r\n\r\n<!ENTITY y "pwned">')
                except OSError:
                    hits.append(b"")

    thread = threading.Thread(target=serve, daemon=True)
    thread.start()
    try:
        yield srv.getsockname()[1], hits
    finally:
        stop.set()
        thread.join(2)
        srv.close()


def _hostile_cases(port: int) -> dict[str, bytes]:
    url = f"http://127.0.0.1:{port}/xxe"
    return {
        "billion laughs": BILLION_LAUGHS,
        "external entity (file)": xxe("file:///etc/passwd"),
        "external entity (http)": xxe(url),
        "external parameter entity": (
            f'<?xml version="1.0"?><!DOCTYPE r [<!ENTITY % p SYSTEM "{url}/p"> %p;]>'
            '<r xmlns="urn:oasis:names:tc:SAML:2.0:protocol"/>'
        ).encode(),
        "external DTD": f'<!DOCTYPE r SYSTEM "{url}/dtd"><r xmlns="urn:oasis:names:tc:SAML:2.0:protocol">&y;</r>'.encode(),
        "UTF-16 external entity": xxe(url)
        .replace(b'<?xml version="1.0"?>', b'<?xml version="1.0" encoding="UTF-16"?>')
        .decode()
        .encode("utf-16"),
    }


def test_hostile_xml_gives_a_sentence_no_expansion_and_no_fetch(listener: tuple[int, list[bytes]]) -> None:
    port, hits = listener
    for name, xml in _hostile_cases(port).items():
        for params, binding in (({"SAMLResponse": base64.b64encode(xml).decode()}, "post"),
                                ({"SAMLRequest": redirect_value(xml)}, "redirect")):  # fmt: skip
            msg = saml.decode_binding(params, binding=binding)  # type: ignore[arg-type]
            assert msg is not None and msg.problem, name
            assert "DOCTYPE" in msg.problem, (name, msg.problem)
            as_json = json.dumps(dataclasses.asdict(msg))
            assert "root:" not in as_json and "lollol" not in as_json and "pwned" not in as_json
        meta = saml.decode_metadata(xml)
        assert meta.problem and meta.idp_signing_certs == ()
    assert saml.verify(xxe(f"http://127.0.0.1:{port}/v"), []).problem
    assert hits == [], f"the decoder connected to the network: {hits!r}"


def test_the_parser_alone_never_fetches_or_expands(listener: tuple[int, list[bytes]]) -> None:
    """Defence in depth: even past the DOCTYPE refusal, lxml is configured to fetch and expand nothing."""
    port, hits = listener
    for name, xml in _hostile_cases(port).items():
        try:
            root = etree.fromstring(xml, parser=saml._parser())
        except etree.XMLSyntaxError:
            continue  # refusing is fine too
        text = "".join(root.itertext())
        assert "root:" not in text and "lollol" not in text and "pwned" not in text, name
    assert hits == [], f"lxml connected to the network: {hits!r}"


def test_structural_garbage_gets_one_sentence() -> None:
    cases = {
        "not base64": {"SAMLResponse": "%%%not base64%%%"},
        "not xml": {"SAMLResponse": base64.b64encode(b"\x00\x01 binary").decode()},
        "truncated xml": {"SAMLResponse": base64.b64encode(AUTHN_REQUEST[:100]).decode()},
        "not saml": {"SAMLResponse": base64.b64encode(b"<html><body>hi</body></html>").decode()},
        "deep nesting": {"SAMLResponse": base64.b64encode(b"<a>" * 5000 + b"</a>" * 5000).decode()},
        "empty": {"SAMLResponse": ""},
    }
    for name, params in cases.items():
        msg = saml.decode_binding(params, binding="post")
        assert msg is not None and msg.problem and msg.problem.endswith(".") and "internal error" not in msg.problem, (
            name,
            msg,
        )
        assert msg.kind in (None, "html", "a"), name


def _zero_bomb(megabytes: int) -> bytes:
    """Raw DEFLATE of `megabytes` MB of zeros, built in 1 MB steps (never holding the inflated size)."""
    c = zlib.compressobj(9, zlib.DEFLATED, -15)
    chunk = b"<" + b"\0" * (1024 * 1024 - 1)
    return b"".join(c.compress(chunk if i == 0 else b"\0" * len(chunk)) for i in range(megabytes)) + c.flush()


MEMORY_PROBE = """
import base64, json, sys, zlib
sys.path.insert(0, {tests!r})
from test_saml import BILLION_LAUGHS, _zero_bomb
from authtrace.addons import saml

def deflated(data):
    c = zlib.compressobj(1, zlib.DEFLATED, -15)
    return base64.b64encode(c.compress(data) + c.flush()).decode()

head = b'<samlp:Response xmlns:samlp="urn:oasis:names:tc:SAML:2.0:protocol" ID="_r">'
doc = head + b"<x>a</x>" * (50 * 1024 * 1024 // 8) + b"</samlp:Response>"
cases = {{
    "deflate bomb (128 MB of zeros)": {{"SAMLRequest": base64.b64encode(_zero_bomb(128)).decode()}},
    "50 MB document, POST": {{"SAMLResponse": base64.b64encode(doc).decode()}},
    "50 MB document, deflated": {{"SAMLRequest": deflated(doc)}},
    "billion laughs": {{"SAMLResponse": base64.b64encode(BILLION_LAUGHS).decode()}},
    "100,000 nested elements": {{"SAMLResponse": base64.b64encode(b"<a>" * 100000 + b"</a>" * 100000).decode()}},
    "largest message read (1 MB, 124,000 elements)": {{"SAMLResponse": base64.b64encode(head + b"<x>a</x>" * 124000 + b"</samlp:Response>").decode()}},
}}
del doc

def peak_growth_mb():
    # VmHWM is the process's peak resident memory (C allocations included) since the last reset
    status = dict(line.split(":", 1) for line in open("/proc/self/status"))
    return (int(status["VmHWM"].split()[0]) - int(status["VmRSS"].split()[0])) / 1024

saml.decode_binding({{"SAMLResponse": base64.b64encode(BILLION_LAUGHS[:10]).decode()}})  # imports done
out = {{}}
for name, params in cases.items():
    open("/proc/self/clear_refs", "w").write("5")  # reset the peak to the current size
    msg = saml.decode_binding(params, binding="redirect" if "SAMLRequest" in params else "post")
    out[name] = {{"problem": msg.problem, "peak_growth_mb": round(peak_growth_mb(), 1)}}
print(json.dumps(out))
"""


@pytest.mark.skipif(
    not Path("/proc/self/clear_refs").exists(), reason="needs Linux /proc/self/clear_refs to reset the peak"
)
def test_bombs_and_huge_documents_stay_within_bounded_memory() -> None:
    """Measured in a fresh process with the peak RSS reset before each input: C allocations
    (zlib, libxml2) count too, and building the inputs does not hide a decoder's peak."""
    probe = MEMORY_PROBE.format(tests=str(Path(__file__).parent))
    done = subprocess.run(
        [sys.executable, "-c", probe], capture_output=True, text=True, timeout=120, cwd=REPO, check=False
    )
    assert done.returncode == 0, done.stderr
    results = json.loads(done.stdout)
    print(json.dumps(results, indent=1))
    largest = results.pop("largest message read (1 MB, 124,000 elements)")
    assert largest["problem"] is None and largest["peak_growth_mb"] < 48, largest  # libxml2's tree: ~250 B/element
    for name, r in results.items():
        assert r["problem"] and r["peak_growth_mb"] < 8, (name, r)  # refused before any large allocation
    assert "inflates to more than" in results["deflate bomb (128 MB of zeros)"]["problem"]
    assert "inflates to more than" in results["50 MB document, deflated"]["problem"]
    assert "larger than" in results["50 MB document, POST"]["problem"]
    assert "not well-formed" in results["100,000 nested elements"]["problem"]


# -------------------------------------------------------------------------- properties

PROPS = settings(max_examples=300, deadline=None, database=None, suppress_health_check=[HealthCheck.too_slow])
NAMES = st.sampled_from(["SAMLRequest", "SAMLResponse", "SAMLart", "RelayState", "SigAlg", "Signature", "samlresponse"])


@PROPS
@given(params=st.dictionaries(NAMES, st.text(max_size=300), max_size=6), binding=st.sampled_from(["redirect", "post"]),
       raw_query=st.none() | st.text(max_size=200))  # fmt: skip
def test_any_text_parameters_never_raise(params: dict[str, str], binding: str, raw_query: str | None) -> None:
    msg = saml.decode_binding(params, binding=binding, raw_query=raw_query, certs=[b"not a cert"])  # type: ignore[arg-type]
    assert msg is None or isinstance(msg, saml.SamlMessage)
    if msg is not None:
        assert msg.problem is None or "internal error" not in msg.problem
        json.dumps(dataclasses.asdict(msg))


@PROPS
@given(
    blob=st.binary(max_size=2000),
    deflated=st.booleans(),
    name=st.sampled_from(["SAMLRequest", "SAMLResponse", "SAMLart"]),
)
def test_any_bytes_never_raise(blob: bytes, deflated: bool, name: str) -> None:
    value = base64.b64encode(deflate(blob) if deflated else blob).decode()
    msg = saml.decode_binding({name: value}, binding="redirect" if deflated else "post")
    assert msg is not None and (msg.problem is None or "internal error" not in msg.problem)


@pytest.fixture(scope="module")
def signed_sample(idp: Signer) -> tuple[bytes, Signer]:
    return signed_response(idp), idp


@PROPS
@given(data=st.data())
def test_mutated_real_messages_never_raise_nor_verify_a_change(
    signed_sample: tuple[bytes, Signer], data: st.DataObject
) -> None:
    """Byte edits of a signed Response: never a crash, and never 'verified' for changed signed content."""
    xml, signer = signed_sample
    pos = data.draw(st.integers(0, len(xml) - 1))
    edit = data.draw(st.binary(min_size=0, max_size=8))
    cut = data.draw(st.integers(0, 8))
    mutated = xml[:pos] + edit + xml[pos + cut :]
    msg = saml.decode_xml(mutated, certs=[signer.cert_pem])
    assert msg.problem is None or "internal error" not in msg.problem
    if msg.signature_status == "verified" and mutated != xml:
        # only edits that canonicalisation erases (whitespace between attributes, quote style, ...) or
        # that touch the unsigned KeyInfo (the embedded certificate is a hint) may keep it
        original = saml.decode_xml(xml, certs=[signer.cert_pem])
        assert _signed_content(msg) == _signed_content(original)


def _signed_content(msg: saml.SamlMessage) -> saml.SamlMessage:
    def sig(s: saml.SamlSignature | None) -> saml.SamlSignature | None:
        return None if s is None else dataclasses.replace(s, cert_sha256=None)

    assertions = tuple(dataclasses.replace(a, signature=sig(a.signature)) for a in msg.assertions)
    return dataclasses.replace(msg, size=0, signature=sig(msg.signature), assertions=assertions)
