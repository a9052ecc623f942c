"""Real SAML sign-ins (SimpleSAMLphp IdP, pysaml2 SP, Chromium) recorded by `authtrace record`.

Per scenario: the journey did what it says (the SP's own answer), and the saved capture, decoded
with authtrace's SAML decoder, shows the facts a diagnosis will rest on. The lead adds
authtrace's findings on these captures later.
"""

from __future__ import annotations

import dataclasses
import json
import re

import pytest

from authtrace.addons import saml

from .. import rig
from .conftest import Outcome, SamlStack
from .evidence import SamlHop, read

TRANSIENT = "urn:oasis:names:tc:SAML:2.0:nameid-format:transient"


def _one(hops: list[SamlHop]) -> SamlHop:
    assert len(hops) == 1, [(h.method, h.url, h.message.kind) for h in hops]
    return hops[0]


def _request_and_response(o: Outcome) -> tuple[SamlHop, SamlHop]:
    return _one(o.evidence.of("AuthnRequest")), _one(o.evidence.of("Response"))


def _thumb(pem: bytes) -> str:
    cert = saml.load_cert(pem)
    assert cert is not None
    return saml.thumbprint(cert)


# ------------------------------------------------------------------------------ clean


def test_clean_journey_signs_in(saml_clean: Outcome) -> None:
    assert saml_clean.seen.acs_status == 200 and "signed in" in saml_clean.seen.acs_text
    assert saml_clean.seen.extra["metadata_downloaded"]


def test_clean_capture_holds_a_signed_request_and_its_answer(saml_clean: Outcome, saml_stack: SamlStack) -> None:
    req, res = _request_and_response(saml_clean)
    entity, acs = saml_stack.entity("main"), f"{saml_stack.sp_base}/acs/main"
    r = req.message
    assert (req.method, req.url, r.binding, r.deflated) == ("GET", saml_stack.idp.sso_url, "redirect", True)
    assert r.issuer == entity and r.acs_url == acs and r.destination == saml_stack.idp.sso_url
    assert r.protocol_binding == "urn:oasis:names:tc:SAML:2.0:bindings:HTTP-POST" and r.nameid_policy == TRANSIENT
    assert r.relay_state_present and r.is_passive is None
    # the redirect binding's query signature, checked against the SP's certificate
    assert r.signature is not None and r.signature.algorithm.endswith("rsa-sha256")
    assert r.signature_status == "verified" and r.signature.verified_with == _thumb(saml_stack.sp_cert_pem)

    m = res.message
    assert (res.method, res.url, res.status, m.binding, m.deflated) == ("POST", acs, 200, "post", False)
    assert m.issuer == saml_stack.idp.entity_id and m.destination == acs and m.in_response_to == r.id
    assert m.status is not None and m.status.success and m.encrypted_assertions == 0 and m.misplaced_assertions == 0
    assert r.issue_instant is not None and m.issue_instant is not None and 0 <= m.issue_instant - r.issue_instant < 30
    (a,) = m.assertions
    assert a.issuer == saml_stack.idp.entity_id and a.audiences == (entity,)
    assert a.nameid_format == TRANSIENT and a.subject_nameid  # a transient pseudonym
    (c,) = a.confirmations
    assert (c.method, c.recipient, c.in_response_to) == (saml.BEARER, acs, r.id)
    assert a.not_before is not None and a.not_on_or_after is not None and c.not_on_or_after is not None
    assert a.not_before <= res.started < min(a.not_on_or_after, c.not_on_or_after)
    assert a.not_on_or_after - a.issue_instant == 300  # SimpleSAMLphp's default assertion lifetime
    assert (
        a.session_index and a.authn_instant and a.authn_context_class.endswith(":PasswordProtectedTransport")
    )  # password over TLS
    assert set(a.attribute_names) >= {"uid", "mail", "eduPersonAffiliation"}
    as_json = json.dumps(dataclasses.asdict(m))
    assert "alice@saml-idp.test" not in as_json and "member" not in as_json.replace("eduPerson", "")


def test_metadata_in_the_capture_verifies_the_clean_response(saml_clean: Outcome, saml_stack: SamlStack) -> None:
    (meta,) = saml_clean.evidence.metadata
    assert meta.entity_id == saml_stack.idp.entity_id and meta.problem is None
    assert [_thumb(c.encode()) for c in meta.idp_signing_certs] == [_thumb(saml_stack.idp_cert_pem)]
    assert any(e.location == saml_stack.idp.sso_url for e in meta.sso_services)
    _, res = _request_and_response(saml_clean)
    m = res.message
    # SimpleSAMLphp signs the Response and the Assertion; both verify with the metadata's certificate
    assert m.signature is not None and m.signature.reference == f"#{m.id}"
    assert m.signature_status == "verified" and m.signature.verified_with == _thumb(saml_stack.idp_cert_pem)
    assert m.signature.cert_sha256 == _thumb(saml_stack.idp_cert_pem)
    (a,) = m.assertions
    assert a.signature is not None and a.signature.status == "verified" and a.signature_status == "verified"
    # without the metadata nothing can be said; with the wrong certificate it fails
    blind = read(saml_clean.flows, learn_from_capture=False)
    assert _one(blind.of("Response")).message.signature_status == "unknown"
    wrong = read(saml_clean.flows, idp_certs=[saml_stack.sp_cert_pem], learn_from_capture=False)
    wrong_m = _one(wrong.of("Response")).message
    assert wrong_m.signature_status == "failed" and wrong_m.assertions[0].signature_status == "failed"


def test_clean_capture_stores_no_raw_saml_response(saml_clean: Outcome) -> None:
    """The recording's database must not hold the SAMLResponse (it carries the assertion)."""
    if rig.PROXY_KIND != "authtrace":
        pytest.skip("bare mitmdump stores nothing")
    from mitmproxy import http
    from mitmproxy.io import FlowReader

    with saml_clean.flows.open("rb") as f:
        flows = [fl for fl in FlowReader(f).stream() if isinstance(fl, http.HTTPFlow)]
    blobs = [fl.request.urlencoded_form.get("SAMLResponse", "") for fl in flows if fl.request.method == "POST"]
    blobs = [b for b in blobs if b]
    assert blobs
    db = saml_clean.flows.with_name("authtrace.db")
    stored = b"".join(p.read_bytes() for p in db.parent.glob("authtrace.db*"))
    for blob in blobs:
        for piece in re.findall(r"[A-Za-z0-9+/]{40}", blob)[:5]:
            assert piece.encode() not in stored


# ----------------------------------------------------------------------------- repost


def test_repost_journey_is_refused_the_second_time(saml_repost: Outcome) -> None:
    assert saml_repost.seen.extra["first_status"] == 200
    assert saml_repost.seen.acs_status == 403 and "Unsolicited" in saml_repost.seen.acs_text
    assert len(saml_repost.seen.acs_posts) == 2


def test_repost_capture_shows_one_assertion_posted_twice(saml_repost: Outcome, saml_stack: SamlStack) -> None:
    req = _one(saml_repost.evidence.of("AuthnRequest"))
    first, second = saml_repost.evidence.of("Response")
    assert first.url == second.url == f"{saml_stack.sp_base}/acs/main"
    assert (first.status, second.status) == (200, 403) and second.started > first.started
    assert first.message.id == second.message.id and first.message.in_response_to == req.message.id
    assert [a.id for a in first.message.assertions] == [a.id for a in second.message.assertions]
    assert first.message.assertions[0].id
    assert "Unsolicited" in second.answer
    # the second post is still inside the assertion's lifetime: a replay, not an expiry
    assert second.started < first.message.assertions[0].not_on_or_after


# --------------------------------------------------------------------------- audience


def test_audience_journey_is_refused(saml_audience: Outcome) -> None:
    assert saml_audience.seen.acs_status == 403 and "AudienceRestriction" in saml_audience.seen.acs_text


def test_audience_capture_shows_the_assertion_addressed_elsewhere(
    saml_audience: Outcome, saml_stack: SamlStack
) -> None:
    req, res = _request_and_response(saml_audience)
    assert req.message.issuer == saml_stack.entity("old")
    assert res.url == f"{saml_stack.sp_base}/acs/main" and res.status == 403  # the ACS of entity "main"
    (a,) = res.message.assertions
    assert a.audiences == (saml_stack.entity("old"),) and saml_stack.entity("main") not in a.audiences
    assert res.message.status is not None and res.message.status.success  # the IdP saw nothing wrong


# ---------------------------------------------------------------------------- expired


def test_expired_journey_is_refused(saml_expired: Outcome) -> None:
    assert saml_expired.seen.acs_status == 403 and "too old" in saml_expired.seen.acs_text


def test_expired_capture_shows_the_post_after_not_on_or_after(saml_expired: Outcome, saml_stack: SamlStack) -> None:
    req, res = _request_and_response(saml_expired)
    assert req.message.issuer == saml_stack.entity("short") and res.url == f"{saml_stack.sp_base}/acs/short"
    (a,) = res.message.assertions
    assert a.issue_instant is not None and a.not_on_or_after is not None
    assert a.not_on_or_after - a.issue_instant == 1  # the IdP's lifetime for this SP
    (c,) = a.confirmations
    assert c.not_on_or_after is not None
    assert res.started > a.not_on_or_after and res.started > c.not_on_or_after
    assert res.status == 403


# -------------------------------------------------------------------------- NoPassive


def test_nopassive_journey_is_refused(saml_nopassive: Outcome) -> None:
    assert saml_nopassive.seen.acs_status == 403 and "NoPassive" in saml_nopassive.seen.acs_text


def test_nopassive_capture_shows_the_status_error(saml_nopassive: Outcome, saml_clean: Outcome) -> None:
    req, res = _request_and_response(saml_nopassive)
    assert req.message.is_passive is True and req.status == 200  # answered at once: no login page
    m = res.message
    assert m.in_response_to == req.message.id and m.assertions == () and m.encrypted_assertions == 0
    assert m.status is not None and not m.status.success
    assert m.status.code == "urn:oasis:names:tc:SAML:2.0:status:Responder"
    assert m.status.subcodes == ("urn:oasis:names:tc:SAML:2.0:status:NoPassive",)
    assert m.status.message == "Passive authentication not supported."
    # this capture holds no metadata; the clean capture's teaches the certificate: the error is signed too
    assert m.signature_status == "unknown"
    taught = read(saml_nopassive.flows, idp_certs=saml_clean.evidence.metadata[0].idp_signing_certs)
    assert _one(taught.of("Response")).message.signature_status == "verified"
