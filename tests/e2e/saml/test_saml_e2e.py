"""Real SAML sign-ins (SimpleSAMLphp IdP, pysaml2 SP, Chromium) recorded by `authtrace record`.

Per scenario: the journey did what it says (the SP's own answer); the saved capture, decoded
with authtrace's SAML decoder, shows the facts a diagnosis rests on; and authtrace's findings are
exactly the expected ones, both in the database `authtrace record` wrote while the browser signed in
(live capture) and from `authtrace check` on the saved flow file (import), with none on the clean run.
"""

from __future__ import annotations

import dataclasses
import json
import re

import pytest

from authtrace.addons import saml
from authtrace.reports.diagnose import Analysis, analyse
from authtrace.reports.html import render_html
from authtrace.reports.jsonout import to_json
from authtrace.reports.leakcheck import find_leaks
from authtrace.store import db

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


# ------------------------------------------------------------------- authtrace's findings


def recorded(o: Outcome) -> Analysis:
    """The analysis of the session `authtrace record` wrote while the browser signed in (live capture)."""
    if rig.PROXY_KIND != "authtrace":
        pytest.skip("bare mitmdump records no database")
    engine = db.open_db(str(o.flows.with_name("authtrace.db")))
    session = db.load_session(engine)
    assert session is not None
    try:
        return analyse(engine, session)
    finally:
        engine.dispose()


def checked(o: Outcome, *extra: str) -> dict:  # type: ignore[type-arg]
    """`authtrace check FLOWS --json` on the saved capture (the import path)."""
    import subprocess
    import sys

    r = subprocess.run([sys.executable, "-m", "authtrace", "check", str(o.flows), "--json", *extra],
                       capture_output=True, text=True, timeout=120, cwd=rig.REPO)
    assert r.returncode in (0, 1), r.stderr
    out: dict = json.loads(r.stdout)  # type: ignore[type-arg]
    assert (r.returncode == 1) == bool(out["findings"]), r.stderr
    return out


def _kinds(a: Analysis) -> list[tuple[str, str]]:
    return [(f.kind, f.severity.value) for f in a.findings]


def _json_kinds(out: dict) -> list[tuple[str, str]]:  # type: ignore[type-arg]
    return [(f["kind"], f["severity"]) for f in out["findings"]]


def test_clean_run_has_no_finding_and_a_verified_saml_card(saml_clean: Outcome, saml_stack: SamlStack) -> None:
    a = recorded(saml_clean)
    assert a.findings == [] and a.notes == [] and a.verdict[0] == "ok"
    roles = [(h.role.value, h.params.saml.kind if h.params.saml else None) for h in a.hops]
    assert roles[0] == ("discovery", None) and ("authorize", "AuthnRequest") in roles
    assert roles[-1] == ("callback", "Response")
    post = a.hops[-1]
    assert post.params.saml is not None and post.params.saml.signature_status == "verified"  # metadata learnt live
    assert post.params.form["SAMLResponse"].startswith("samlresponse#")
    html = render_html(a)
    assert find_leaks(html) == [] and "SAML Response" in html and "verified" in html
    nameid = post.params.saml.assertions[0].subject_nameid
    assert nameid and nameid in html and nameid not in render_html(a, redact_pii=True)
    assert checked(saml_clean)["findings"] == []


def test_repost_is_one_duplicate_redirect(saml_repost: Outcome, saml_stack: SamlStack) -> None:
    a = recorded(saml_repost)
    assert _kinds(a) == [("duplicate_redirect", "error")]
    f = a.findings[0]
    first, second = f.evidence
    assert (first.status, second.status) == (200, 403) and first.path == second.path == "/acs/main"
    assert f.title.startswith("The SAML Response carrying assertion ") and "was posted 2 times" in f.title
    assert f.details["response"] == first.params.form["SAMLResponse"] == second.params.form["SAMLResponse"]
    assert "Unsolicited" in f.explanation
    assert _json_kinds(checked(saml_repost)) == [("duplicate_redirect", "error")]


def test_audience_mismatch_is_one_wrong_audience(saml_audience: Outcome, saml_stack: SamlStack) -> None:
    a = recorded(saml_audience)
    assert _kinds(a) == [("wrong_audience", "error")]
    f = a.findings[0]
    old, main = saml_stack.entity("old"), saml_stack.entity("main")
    assert f.title == (f"The app at saml-sp.test/acs/main refused the SAML assertion's audience {old} "
                       f"(it checks for {main}).")
    assert f"sent the AuthnRequest as {old}" in f.explanation and f.details == {"audience": [old], "expected": main}
    assert [h.role.value for h in f.evidence] == ["authorize", "callback"]
    assert _json_kinds(checked(saml_audience)) == [("wrong_audience", "error")]


def test_expired_assertion_is_one_expired_token(saml_expired: Outcome) -> None:
    a = recorded(saml_expired)
    assert _kinds(a) == [("expired_token", "error")]
    f = a.findings[0]
    assert f.title.startswith("The SAML assertion ") and "was posted to saml-sp.test/acs/short" in f.title
    assert "after it expired" in f.title and "a lifetime of 1 s" in f.explanation
    assert f.details["expired_for_s"] > 0 and "ResponseLifetimeExceed" in f.explanation
    assert _json_kinds(checked(saml_expired)) == [("expired_token", "error")]


def test_nopassive_is_one_idp_error(saml_nopassive: Outcome, saml_clean: Outcome) -> None:
    a = recorded(saml_nopassive)
    assert _kinds(a) == [("idp_error", "error")]
    f = a.findings[0]
    assert f.title == ("The identity provider answered the passive AuthnRequest #1 with Responder/NoPassive: the "
                       "identity provider cannot sign the user in without interaction.")
    assert f.details["saml_status"] == ["Responder", "NoPassive"] and [h.number for h in f.evidence] == [1, 2]
    assert _json_kinds(checked(saml_nopassive)) == [("idp_error", "error")]
    # this capture holds no metadata: the signature is unknown; the IdP's metadata given with --saml-cert
    # (here: the one the clean capture downloaded) verifies the signed NoPassive Response
    assert a.hops[-1].params.saml is not None and a.hops[-1].params.saml.signature_status == "unknown"
    meta = saml_clean.flows.with_name("idp-metadata.xml")
    meta.write_bytes(_metadata_of(saml_clean))
    assert _json_kinds(checked(saml_nopassive, "--saml-cert", str(meta))) == [("idp_error", "error")]
    from authtrace.addons.importers import import_file

    engine = db.open_db(str(saml_nopassive.flows.with_name("with-cert.db")))
    sid = import_file(engine, str(saml_nopassive.flows), saml_trust=[str(meta)]).session_id
    post = db.load_hops(engine, sid)[-1]
    engine.dispose()
    assert post.params.saml is not None and post.params.saml.signature_status == "verified"


def _metadata_of(o: Outcome) -> bytes:
    from mitmproxy import http
    from mitmproxy.io import FlowReader

    with o.flows.open("rb") as f:
        for fl in FlowReader(f).stream():
            if isinstance(fl, http.HTTPFlow) and fl.response is not None and b"EntityDescriptor" in (
                    fl.response.content or b"")[:2000]:
                return fl.response.content or b""
    raise AssertionError("no metadata in the capture")


def test_findings_json_keeps_its_shape(saml_audience: Outcome) -> None:
    from schema import valid

    valid(to_json(recorded(saml_audience)))
