"""SAML 2.0 messages decoded into typed records: bindings, fields, signatures, hostile input.

Pure and offline: no I/O, no network, no logging. Every public function takes what a capture
holds (request parameters, XML bytes, certificates) and returns records; it never raises on
hostile or broken input, because a decoder failure must not lose the hop. What could not be
decoded is said in one sentence in ``problem``.

Safety. The XML is attacker-controlled, so:
- sizes are capped before any work: a parameter longer than the base64 of ``MAX_XML`` is
  refused unread, and inflating stops at ``MAX_XML`` (a deflate bomb never allocates its size);
- a document with a DOCTYPE is refused (SAML never has one): no entity is declared, expanded or
  fetched; the parser itself also has entities, DTD loading and network access off, and
  libxml2's default depth and size limits on (``huge_tree=False``).

Signatures (``signxml``, a real XML-signature library) are checked against the identity
provider's certificates when the caller knows them (metadata captured in the same session, or
``--saml-cert``). Wrapping-safe: a signature only counts for the element it is a direct child of,
its Reference must name that element's ID, the element is verified alone, and the fields reported
for a verified element are decoded from the copy the library returns as signed, never from the
surrounding document. Assertions outside the places a service provider reads them (anywhere but
``Response/Assertion``) are counted in ``misplaced_assertions``, never reported as assertions.

Secrets and personal data. Records keep no raw message, artifact or RelayState (callers
fingerprint those from the parameters), no attribute value (only attribute names), and put the
values that identify a person (NameID) only in fields listed in ``PII_FIELDS``; ``masked()``
replaces them. Every field type is JSON-able (str, int, float, bool, None, tuples and nested
records of the same kind), so a caller can store ``dataclasses.asdict(record)`` as JSON. The
message records are defined with the other stored records (``authtrace.store.saml``: a hop keeps
them) and re-exported here; metadata and verification records are the decoder's own.
"""

from __future__ import annotations

import base64
import binascii
import calendar
import dataclasses
import hashlib
import re
import zlib
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Literal
from urllib.parse import unquote_plus

from cryptography import x509
from cryptography.exceptions import InvalidSignature as CryptoInvalidSignature
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import ec, padding, rsa
from cryptography.hazmat.primitives.serialization import Encoding
from lxml import etree
from signxml.algorithms import DigestAlgorithm, SignatureMethod
from signxml.exceptions import InvalidDigest, InvalidInput, InvalidSignature
from signxml.verifier import SignatureConfiguration, XMLVerifier

from authtrace.store.saml import (
    BEARER,
    PII_FIELDS,
    STATUS_SUCCESS,
    Binding,
    SamlArtifact,
    SamlAssertion,
    SamlConfirmation,
    SamlMessage,
    SamlSignature,
    SamlStatus,
    SignatureStatus,
    masked,
)

__all__ = [
    "BEARER", "PII_FIELDS", "STATUS_SUCCESS", "Binding", "CertLike", "SamlArtifact", "SamlAssertion",
    "SamlConfirmation", "SamlEndpoint", "SamlMessage", "SamlMetadata", "SamlSignature", "SamlStatus",
    "SamlVerification", "SignatureStatus", "trust_from_file", "certs_from_metadata", "decode_binding",
    "decode_metadata", "decode_xml", "load_cert", "masked", "parse_xml", "thumbprint", "verify",
]

# ------------------------------------------------------------------------------------ limits

MAX_XML = 1024 * 1024  # decoded (and inflated) message bytes; real messages are a few kB
MAX_PARAM = (MAX_XML * 4) // 3 + 4096  # base64 text of MAX_XML, with room for line breaks
MAX_TEXT = 1024  # characters kept of any one field
MAX_ITEMS = 100  # entries kept of any one tuple (attribute names, audiences, ...)

# The sentences a user reads when a message is refused (kept as data, one place).
TOO_LARGE = "The SAML message is larger than authtrace decodes ({limit} kB of XML); it was not read."
INFLATE_BOMB = (
    "The SAML parameter inflates to more than {limit} kB (a compression bomb, or not SAML); it was not read further."
)
DOCTYPE_REFUSED = (
    "The XML declares a DOCTYPE or entities, which SAML never does (billion-laughs and external-entity attacks do); "
    "it was not parsed: nothing was expanded or fetched."
)
NO_CERTIFICATE = "No certificate of the signer is known (metadata in the capture, or --saml-cert)."

# ---------------------------------------------------------------------------- namespaces

NS_SAMLP = "urn:oasis:names:tc:SAML:2.0:protocol"
NS_SAML = "urn:oasis:names:tc:SAML:2.0:assertion"
NS_MD = "urn:oasis:names:tc:SAML:2.0:metadata"
NS_DS = "http://www.w3.org/2000/09/xmldsig#"
NS_SOAP = "http://schemas.xmlsoap.org/soap/envelope/"

CertLike = str | bytes | x509.Certificate


def _q(ns: str, name: str) -> str:
    return f"{{{ns}}}{name}"


@dataclass(slots=True, kw_only=True, frozen=True)
class SamlEndpoint:
    binding: str | None = None
    location: str | None = None
    index: int | None = None


@dataclass(slots=True, kw_only=True, frozen=True)
class SamlMetadata:
    """What an EntityDescriptor (or the first of an EntitiesDescriptor) says about signing and endpoints.

    Certificates are PEM text (public by nature); KeyDescriptors without ``use`` count as signing.
    """

    entity_id: str | None = None
    idp_signing_certs: tuple[str, ...] = ()
    sp_signing_certs: tuple[str, ...] = ()
    sso_services: tuple[SamlEndpoint, ...] = ()
    slo_services: tuple[SamlEndpoint, ...] = ()
    acs_services: tuple[SamlEndpoint, ...] = ()
    want_assertions_signed: bool | None = None
    want_authn_requests_signed: bool | None = None
    problem: str | None = None


@dataclass(slots=True, kw_only=True, frozen=True)
class SamlVerification:
    """``verify()``'s answer: the message's status and each assertion's, by assertion ID."""

    message: SignatureStatus
    assertions: tuple[tuple[str | None, SignatureStatus], ...] = ()
    problem: str | None = None


# ----------------------------------------------------------------------------- bindings


def decode_binding(
    params: Mapping[str, str],
    *,
    binding: Literal["redirect", "post"] = "redirect",
    raw_query: str | None = None,
    certs: Sequence[CertLike] = (),
) -> SamlMessage | None:
    """The SAML message a request carries, or None when it carries none.

    ``params``: the query (``binding="redirect"``, HTTP-Redirect: raw DEFLATE + base64) or the
    form body (``binding="post"``, HTTP-POST: base64 only) as decoded name → value. A SAMLart in
    either is the artifact binding. ``raw_query``: the query string exactly as sent, needed to
    check a redirect signature (it signs the URL-encoded octets). ``certs``: the IdP's (or, for
    requests, the SP's) signing certificates; without them signatures are ``unknown``.
    """
    try:
        return _decode_binding(params, binding, raw_query, certs)
    except Exception as exc:  # noqa: BLE001 - the safety net: a decoder never loses the hop
        return SamlMessage(
            binding=binding,
            problem=f"authtrace could not decode this SAML message (internal error: {type(exc).__name__}).",
        )


def _param(params: Mapping[str, str], name: str) -> str | None:
    """The parameter by exact name, else case-insensitively (some stacks lowercase them)."""
    try:
        value = params.get(name)
        if value is None:
            lowered = name.lower()
            value = next((v for k, v in params.items() if isinstance(k, str) and k.lower() == lowered), None)
    except Exception:  # noqa: BLE001 - a hostile mapping
        return None
    return value if isinstance(value, str) else None


def _decode_binding(
    params: Mapping[str, str], binding: Literal["redirect", "post"], raw_query: str | None, certs: Sequence[CertLike]
) -> SamlMessage | None:
    relay = _param(params, "RelayState") is not None
    art = _param(params, "SAMLart")
    name, value = next(
        ((n, v) for n in ("SAMLResponse", "SAMLRequest") if (v := _param(params, n)) is not None), (None, None)
    )
    if name is None or value is None:
        if art is None:
            return None
        artifact = _artifact(art)
        bad = "The SAMLart parameter is not a SAML 2.0 artifact (44 bytes of base64)."
        return SamlMessage(
            kind="Artifact",
            binding="artifact",
            param="SAMLart",
            relay_state_present=relay,
            artifact=artifact,
            problem=None if artifact.type_code is not None else bad,
        )
    base = SamlMessage(binding=binding, param=name, relay_state_present=relay)
    xml, deflated, problem = _unwrap(value)
    if xml is None:
        return dataclasses.replace(base, problem=problem)
    msg = _decode_xml(xml, base=dataclasses.replace(base, deflated=deflated, size=len(xml)), certs=certs)
    sig_alg, sig = _param(params, "SigAlg"), _param(params, "Signature")
    if binding == "redirect" and sig is not None:
        qsig = _query_signature(raw_query, name, sig_alg, certs)
        msg = dataclasses.replace(msg, signature=qsig, signature_status=qsig.status)
    return msg


def _unwrap(value: str) -> tuple[bytes | None, bool, str | None]:
    """(XML bytes, whether they were deflated, problem): base64, then raw DEFLATE when compressed.

    The redirect binding must deflate and the POST binding must not, but both are met in the
    wild, so either form is accepted and ``deflated`` tells which it was.
    """
    if len(value) > MAX_PARAM:
        return None, False, TOO_LARGE.format(limit=MAX_XML // 1024)
    text = value.strip().replace(" ", "+")  # a '+' that a form/query decoder turned into a space
    text = re.sub(r"\s+", "", text)
    try:
        raw = base64.b64decode(text + "=" * (-len(text) % 4), validate=True)
    except (binascii.Error, ValueError):
        try:
            raw = base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))
        except (binascii.Error, ValueError):
            return None, False, "The SAML parameter is not base64."
    if _looks_like_xml(raw):
        return raw, False, None
    inflater = zlib.decompressobj(-15)
    try:
        xml = inflater.decompress(raw, MAX_XML + 1)
    except zlib.error:
        return None, False, "The SAML parameter is neither XML nor DEFLATE-compressed XML after base64 decoding."
    if len(xml) > MAX_XML or inflater.unconsumed_tail:
        return None, True, INFLATE_BOMB.format(limit=MAX_XML // 1024)
    if not _looks_like_xml(xml):
        return None, True, "The SAML parameter inflates to something that is not XML."
    return xml, True, None


def _looks_like_xml(data: bytes) -> bool:
    head = data[:64].lstrip(b"\xef\xbb\xbf \t\r\n")
    return head.startswith(b"<") or head[:2] in (b"\xff\xfe", b"\xfe\xff")


def _artifact(value: str) -> SamlArtifact:
    """SAML 2.0 artifact: TypeCode (2) EndpointIndex (2) SourceID (20) MessageHandle (20, not kept)."""
    try:
        raw = base64.b64decode(value.strip().replace(" ", "+"), validate=True)
    except (binascii.Error, ValueError):
        return SamlArtifact()
    if len(raw) != 44:
        return SamlArtifact()
    return SamlArtifact(
        type_code=int.from_bytes(raw[0:2], "big"),
        endpoint_index=int.from_bytes(raw[2:4], "big"),
        source_id=raw[4:24].hex(),
    )


# ----------------------------------------------------------------------------- XML parsing


def _parser() -> etree.XMLParser:
    # A fresh parser per document: lxml parsers are not thread-safe and the addon may decode
    # on several threads.
    return etree.XMLParser(
        resolve_entities=False, no_network=True, load_dtd=False, dtd_validation=False,
        huge_tree=False, remove_pis=True, collect_ids=False,
    )  # fmt: skip


_DOCTYPE = re.compile(rb"<!\s*(DOCTYPE|ENTITY)", re.IGNORECASE)


def parse_xml(xml: bytes) -> tuple[etree._Element | None, str | None]:
    """(root element, problem). Refuses oversized input and any DOCTYPE before building a tree."""
    if len(xml) > MAX_XML:
        return None, TOO_LARGE.format(limit=MAX_XML // 1024)
    if _DOCTYPE.search(xml):
        return None, DOCTYPE_REFUSED
    try:
        root = etree.fromstring(xml, parser=_parser())
    except etree.XMLSyntaxError as exc:
        return None, f"The XML is not well-formed ({_clip(str(exc), 160)})."
    except ValueError:
        return None, "The XML could not be read (bad encoding declaration)."
    if root is None:
        return None, "The XML document is empty."
    info = root.getroottree().docinfo
    if (
        getattr(info, "doctype", "")
        or info.internalDTD is not None
        or info.externalDTD is not None
        or next(root.iter(etree.Entity), None) is not None
    ):
        return None, DOCTYPE_REFUSED  # e.g. in a UTF-16 document, which the byte scan cannot see
    return root, None


def decode_xml(
    xml: bytes, *, binding: Binding = "post", certs: Sequence[CertLike] = (), relay_state_present: bool = False
) -> SamlMessage:
    """Decode one SAML protocol message (or a SOAP envelope around one, as the artifact and
    back-channel bindings send it) from its XML bytes."""
    base = SamlMessage(
        binding=binding,
        param="soap" if binding == "soap" else "",
        size=len(xml),
        relay_state_present=relay_state_present,
    )
    try:
        return _decode_xml(xml, base=base, certs=certs)
    except Exception as exc:  # noqa: BLE001 - the safety net: a decoder never loses the hop
        return dataclasses.replace(
            base, problem=f"authtrace could not decode this SAML message (internal error: {type(exc).__name__})."
        )


def _decode_xml(xml: bytes, *, base: SamlMessage, certs: Sequence[CertLike]) -> SamlMessage:
    root, problem = parse_xml(xml)
    if root is None:
        return dataclasses.replace(base, problem=problem)
    if root.tag == _q(NS_SOAP, "Envelope"):
        body = root.find(_q(NS_SOAP, "Body"))
        first = next((c for c in body if isinstance(c.tag, str)), None) if body is not None else None
        if first is None:
            return dataclasses.replace(base, problem="The SOAP envelope carries no SAML message.")
        root = first
        base = dataclasses.replace(base, binding="soap")
    trusted = _load_certs(certs)
    return _message(root, base, trusted)


def _message(root: etree._Element, base: SamlMessage, trusted: list[x509.Certificate]) -> SamlMessage:
    if not isinstance(root.tag, str) or etree.QName(root).namespace != NS_SAMLP:
        name = etree.QName(root).localname if isinstance(root.tag, str) else "?"
        return dataclasses.replace(
            base, kind=name, problem=f"The XML is a {_clip(name, 60)} element, not a SAML 2.0 protocol message."
        )
    sig, signed_copy = _check_signature(root, trusted)
    # Decode from the signed copy when the signature verified: then nothing unsigned is reported.
    el = signed_copy if signed_copy is not None else root
    kind = etree.QName(el).localname
    status_el = el.find(_q(NS_SAMLP, "Status"))
    policy = el.find(_q(NS_SAMLP, "NameIDPolicy"))
    subject_id = el.find(f"{_q(NS_SAML, 'Subject')}/{_q(NS_SAML, 'NameID')}")
    if subject_id is None:
        subject_id = el.find(_q(NS_SAML, "NameID"))  # LogoutRequest
    rac = el.find(_q(NS_SAMLP, "RequestedAuthnContext"))
    msg = dataclasses.replace(
        base,
        kind=kind,
        id=_attr(el, "ID"),
        issuer=_child_text(el, NS_SAML, "Issuer"),
        destination=_attr(el, "Destination"),
        in_response_to=_attr(el, "InResponseTo"),
        issue_instant=_time(_attr(el, "IssueInstant")),
        version=_attr(el, "Version"),
        acs_url=_attr(el, "AssertionConsumerServiceURL"),
        acs_index=_int(_attr(el, "AssertionConsumerServiceIndex")),
        protocol_binding=_attr(el, "ProtocolBinding"),
        nameid_policy=_attr(policy, "Format") if policy is not None else None,
        allow_create=_bool(_attr(policy, "AllowCreate")) if policy is not None else None,
        is_passive=_bool(_attr(el, "IsPassive")),
        force_authn=_bool(_attr(el, "ForceAuthn")),
        requested_authn_context=_texts(rac.iter(_q(NS_SAML, "AuthnContextClassRef"))) if rac is not None else (),
        subject_nameid=_text(subject_id),
        session_indexes=_texts(el.iterfind(_q(NS_SAMLP, "SessionIndex"))),
        status=_status(status_el) if status_el is not None else None,
        encrypted_assertions=len(el.findall(_q(NS_SAML, "EncryptedAssertion"))),
        signature=sig,
        signature_status=sig.status if sig is not None else "unsigned",
    )
    if kind == "Response":
        placed = root.findall(_q(NS_SAML, "Assertion"))
        signed_placed = el.findall(_q(NS_SAML, "Assertion")) if signed_copy is not None else []
        assertions = []
        for i, a in enumerate(placed[:MAX_ITEMS]):
            covering = signed_placed[i] if i < len(signed_placed) else None
            assertions.append(_assertion(a, trusted, sig, covering))
        total = sum(1 for _ in root.iter(_q(NS_SAML, "Assertion")))
        msg = dataclasses.replace(msg, assertions=tuple(assertions), misplaced_assertions=total - len(placed))
    elif kind == "ArtifactResponse":
        inner_el = next(
            (
                c
                for c in el
                if isinstance(c.tag, str)
                and etree.QName(c).namespace == NS_SAMLP
                and etree.QName(c).localname != "Status"
            ),
            None,
        )
        if inner_el is not None:
            inner_xml = etree.tostring(inner_el)
            inner_base = SamlMessage(binding=base.binding, param=base.param, size=len(inner_xml))
            msg = dataclasses.replace(msg, inner=_message(inner_el, inner_base, trusted))
        msg = dataclasses.replace(msg, misplaced_assertions=0)
    else:
        msg = dataclasses.replace(msg, misplaced_assertions=sum(1 for _ in root.iter(_q(NS_SAML, "Assertion"))))
    return msg


def _assertion(
    placed: etree._Element,
    trusted: list[x509.Certificate],
    response_sig: SamlSignature | None,
    response_copy: etree._Element | None,
) -> SamlAssertion:
    """The assertion in its place; protected by its own signature or by the Response's."""
    own, own_copy = _check_signature(placed, trusted)
    status: SignatureStatus
    if own is not None and own.status == "verified" and own_copy is not None:
        el, status = own_copy, "verified"
    elif response_copy is not None:  # the Response's signature verified and covers this element
        el, status = response_copy, "verified"
    else:
        el = placed
        if (own is not None and own.status == "failed") or (
            response_sig is not None and response_sig.status == "failed"
        ):
            status = "failed"
        elif own is not None or response_sig is not None:
            status = "unknown"
        else:
            status = "unsigned"
    subject = el.find(_q(NS_SAML, "Subject"))
    nameid = subject.find(_q(NS_SAML, "NameID")) if subject is not None else None
    conditions = el.find(_q(NS_SAML, "Conditions"))
    authn = el.find(_q(NS_SAML, "AuthnStatement"))
    confirmations = []
    if subject is not None:
        for sc in subject.iterfind(_q(NS_SAML, "SubjectConfirmation")):
            data = sc.find(_q(NS_SAML, "SubjectConfirmationData"))
            confirmations.append(SamlConfirmation(
                method=_attr(sc, "Method"),
                recipient=_attr(data, "Recipient"),
                not_before=_time(_attr(data, "NotBefore")),
                not_on_or_after=_time(_attr(data, "NotOnOrAfter")),
                in_response_to=_attr(data, "InResponseTo"),
            ))  # fmt: skip
    attr_names: list[str] = []
    for stmt in el.iterfind(_q(NS_SAML, "AttributeStatement")):
        for a in stmt:
            if a.tag == _q(NS_SAML, "Attribute") and (n := _attr(a, "Name")) and n not in attr_names:
                attr_names.append(n)
            elif a.tag == _q(NS_SAML, "EncryptedAttribute") and "(encrypted)" not in attr_names:
                attr_names.append("(encrypted)")
    return SamlAssertion(
        id=_attr(el, "ID"),
        issuer=_child_text(el, NS_SAML, "Issuer"),
        issue_instant=_time(_attr(el, "IssueInstant")),
        subject_nameid=_text(nameid),
        nameid_format=_attr(nameid, "Format"),
        nameid_encrypted=subject is not None and subject.find(_q(NS_SAML, "EncryptedID")) is not None,
        confirmations=tuple(confirmations[:MAX_ITEMS]),
        not_before=_time(_attr(conditions, "NotBefore")),
        not_on_or_after=_time(_attr(conditions, "NotOnOrAfter")),
        audiences=_texts(conditions.iterfind(f"{_q(NS_SAML, 'AudienceRestriction')}/{_q(NS_SAML, 'Audience')}"))
        if conditions is not None else (),
        one_time_use=conditions is not None and conditions.find(_q(NS_SAML, "OneTimeUse")) is not None,
        authn_instant=_time(_attr(authn, "AuthnInstant")),
        session_index=_attr(authn, "SessionIndex"),
        session_not_on_or_after=_time(_attr(authn, "SessionNotOnOrAfter")),
        authn_context_class=_text(authn.find(f"{_q(NS_SAML, 'AuthnContext')}/{_q(NS_SAML, 'AuthnContextClassRef')}"))
        if authn is not None else None,
        attribute_names=tuple(attr_names[:MAX_ITEMS]),
        signature=own,
        signature_status=status,
    )  # fmt: skip


def _status(el: etree._Element) -> SamlStatus:
    codes: list[str] = []
    code = el.find(_q(NS_SAMLP, "StatusCode"))
    while code is not None and len(codes) < 10:
        codes.append(_clip(code.get("Value") or "", MAX_TEXT))
        code = code.find(_q(NS_SAMLP, "StatusCode"))
    return SamlStatus(
        code=codes[0] if codes else None, subcodes=tuple(codes[1:]), message=_child_text(el, NS_SAMLP, "StatusMessage")
    )


# --------------------------------------------------------------------------- signatures


def _check_signature(
    el: etree._Element, trusted: list[x509.Certificate]
) -> tuple[SamlSignature | None, etree._Element | None]:
    """The signature that is a direct child of ``el``, checked, and the signed copy when verified.

    Only a signature whose Reference names ``el``'s own ID counts for ``el``; ``el`` is verified
    on its own (as a separate document), so nothing around it can stand in for what was signed.
    """
    sig_el = el.find(_q(NS_DS, "Signature"))
    if sig_el is None:
        return None, None
    info = _signature_info(sig_el)
    element_id = el.get("ID")
    if info.reference != f"#{element_id}" or not element_id:
        return dataclasses.replace(info, status="failed", note=(
            f"The signature references {_clip(info.reference or 'nothing', 80)} but sits in the element with ID "
            f"{_clip(element_id or '(none)', 80)}: it does not protect this element "
            "(signature wrapping or a broken signer)."
        )), None  # fmt: skip
    if not trusted:
        return dataclasses.replace(
            info,
            status="unknown",
            note=NO_CERTIFICATE,
        ), None
    return _verify_element(el, info, trusted)


def _signature_info(sig_el: etree._Element) -> SamlSignature:
    si = sig_el.find(_q(NS_DS, "SignedInfo"))
    method = si.find(_q(NS_DS, "SignatureMethod")) if si is not None else None
    refs = si.findall(_q(NS_DS, "Reference")) if si is not None else []
    digest = refs[0].find(_q(NS_DS, "DigestMethod")) if refs else None
    cert_el = sig_el.find(f"{_q(NS_DS, 'KeyInfo')}/{_q(NS_DS, 'X509Data')}/{_q(NS_DS, 'X509Certificate')}")
    thumb = None
    if cert_el is not None and cert_el.text:
        try:
            thumb = hashlib.sha256(base64.b64decode(re.sub(r"\s+", "", cert_el.text), validate=True)).hexdigest()
        except (binascii.Error, ValueError):
            thumb = None
    return SamlSignature(
        algorithm=_attr(method, "Algorithm"),
        digest_algorithm=_attr(digest, "Algorithm"),
        reference=_clip(refs[0].get("URI") or "", MAX_TEXT) if len(refs) == 1 else None,
        cert_sha256=thumb,
    )


def _verify_element(
    el: etree._Element, info: SamlSignature, trusted: list[x509.Certificate]
) -> tuple[SamlSignature, etree._Element | None]:

    # Every RSA/ECDSA method including SHA-1 (still common in SAML; the checks may warn about it);
    # no HMAC. The signature must be the element's direct child and cover exactly one reference.
    config = SignatureConfiguration(
        location="./",
        expect_references=1,
        signature_methods=frozenset(m for m in SignatureMethod if not m.name.startswith("HMAC")),
        digest_algorithms=frozenset(DigestAlgorithm),
    )
    notes: list[str] = []
    document = etree.tostring(el)  # the element alone: its signature must cover all of it
    for cert in trusted:
        try:
            result = XMLVerifier().verify(document, x509_cert=cert, expect_config=config)
        except InvalidDigest:
            notes.append("The signed content was changed after signing (digest mismatch).")
            continue
        except InvalidSignature:
            notes.append("The signature does not verify with any known certificate of the signer.")
            continue
        except InvalidInput as exc:
            notes.append(f"The signature cannot be checked: {_clip(str(exc), 160)}.")
            continue
        except Exception as exc:  # noqa: BLE001 - hostile input reaching the library's corners
            notes.append(f"The signature cannot be checked ({type(exc).__name__}).")
            continue
        signed = getattr(result, "signed_xml", None)
        if not isinstance(signed, etree._Element) or signed.tag != el.tag or signed.get("ID") != el.get("ID"):
            notes.append("The signature covers another element than the one it sits in (signature wrapping).")
            continue
        return dataclasses.replace(info, status="verified", verified_with=thumbprint(cert)), signed
    # digest mismatches say more than "no certificate fits": report the most specific reason
    note = next((n for n in notes if "digest" in n), notes[0] if notes else None)
    return dataclasses.replace(info, status="failed", note=note), None


def verify(xml: bytes, certs: Sequence[CertLike]) -> SamlVerification:
    """Check the message's signature and each Response/Assertion's against ``certs``.

    A convenience over ``decode_xml``: the same wrapping-safe rules, statuses only.
    """
    msg = decode_xml(xml, certs=certs)
    return SamlVerification(
        message=msg.signature_status,
        assertions=tuple((a.id, a.signature_status) for a in msg.assertions),
        problem=msg.problem,
    )


_QUERY_ALGS: dict[str, hashes.HashAlgorithm] = {
    "http://www.w3.org/2000/09/xmldsig#rsa-sha1": hashes.SHA1(),
    "http://www.w3.org/2001/04/xmldsig-more#rsa-sha256": hashes.SHA256(),
    "http://www.w3.org/2001/04/xmldsig-more#rsa-sha384": hashes.SHA384(),
    "http://www.w3.org/2001/04/xmldsig-more#rsa-sha512": hashes.SHA512(),
    "http://www.w3.org/2001/04/xmldsig-more#ecdsa-sha256": hashes.SHA256(),
    "http://www.w3.org/2001/04/xmldsig-more#ecdsa-sha384": hashes.SHA384(),
    "http://www.w3.org/2001/04/xmldsig-more#ecdsa-sha512": hashes.SHA512(),
}


def _query_signature(raw_query: str | None, name: str, sig_alg: str | None, certs: Sequence[CertLike]) -> SamlSignature:
    """The HTTP-Redirect signature (SAML bindings 3.4.4.1): over the URL-encoded octets
    ``SAMLRequest=…&RelayState=…&SigAlg=…`` exactly as they were sent."""
    info = SamlSignature(algorithm=_clip(sig_alg, MAX_TEXT) if sig_alg else None)
    trusted = _load_certs(certs)
    if not trusted:
        return dataclasses.replace(
            info,
            status="unknown",
            note=NO_CERTIFICATE,
        )
    if raw_query is None:
        return dataclasses.replace(
            info, status="unknown", note="The query string as sent is not available to check the signature."
        )
    raw: dict[str, str] = {}
    for part in raw_query.lstrip("?").split("&"):
        pname, _, pvalue = part.partition("=")
        raw.setdefault(unquote_plus(pname), pvalue)
    algorithm = _QUERY_ALGS.get(sig_alg or "")
    if algorithm is None or "SigAlg" not in raw or "Signature" not in raw:
        return dataclasses.replace(
            info, status="failed", note="The redirect signature's algorithm is missing or not supported."
        )
    signed = "&".join(f"{k}={raw[k]}" for k in (name, "RelayState", "SigAlg") if k in raw).encode()
    try:
        signature = base64.b64decode(unquote_plus(raw["Signature"]).replace(" ", "+"), validate=True)
    except (binascii.Error, ValueError):
        return dataclasses.replace(info, status="failed", note="The redirect signature is not base64.")
    for cert in trusted:
        key = cert.public_key()
        try:
            if isinstance(key, rsa.RSAPublicKey):
                key.verify(signature, signed, padding.PKCS1v15(), algorithm)
            elif isinstance(key, ec.EllipticCurvePublicKey):
                key.verify(signature, signed, ec.ECDSA(algorithm))
            else:
                continue
        except CryptoInvalidSignature:
            continue
        return dataclasses.replace(info, status="verified", verified_with=thumbprint(cert))
    return dataclasses.replace(
        info, status="failed", note="The redirect signature does not verify with any known certificate of the signer."
    )


# ---------------------------------------------------------------------------- certificates


def thumbprint(cert: x509.Certificate) -> str:
    """SHA-256 of the certificate's DER, lowercase hex: how certificates are named in records."""
    return hashlib.sha256(cert.public_bytes(Encoding.DER)).hexdigest()


def load_cert(value: CertLike) -> x509.Certificate | None:
    """A certificate from PEM text, DER bytes, or the bare base64 of metadata/KeyInfo; None if not one."""
    if isinstance(value, x509.Certificate):
        return value
    data = value.encode() if isinstance(value, str) else value
    try:
        if b"-----BEGIN" in data:
            return x509.load_pem_x509_certificate(data)
        if data[:1] == b"\x30":
            return x509.load_der_x509_certificate(data)
        return x509.load_der_x509_certificate(base64.b64decode(re.sub(rb"\s+", b"", data), validate=True))
    except (ValueError, TypeError, binascii.Error):
        return None


def _load_certs(certs: Iterable[CertLike]) -> list[x509.Certificate]:
    out: list[x509.Certificate] = []
    for c in certs:
        cert = load_cert(c)
        if cert is not None and all(thumbprint(cert) != thumbprint(o) for o in out):
            out.append(cert)
    return out


def _pem(b64: str) -> str | None:
    cert = load_cert(b64)
    if cert is None:
        return None
    return cert.public_bytes(Encoding.PEM).decode()


def decode_metadata(xml: bytes) -> SamlMetadata:
    """An EntityDescriptor (or the first of an EntitiesDescriptor): entity id, signing certificates, endpoints."""
    try:
        return _decode_metadata(xml)
    except Exception as exc:  # noqa: BLE001 - the safety net
        return SamlMetadata(
            problem=f"authtrace could not decode this SAML metadata (internal error: {type(exc).__name__})."
        )


def _decode_metadata(xml: bytes) -> SamlMetadata:
    root, problem = parse_xml(xml)
    if root is None:
        return SamlMetadata(problem=problem)
    if root.tag == _q(NS_MD, "EntitiesDescriptor"):
        first = next(root.iter(_q(NS_MD, "EntityDescriptor")), None)
        if first is None:
            return SamlMetadata(problem="The metadata holds no EntityDescriptor.")
        root = first
    if root.tag != _q(NS_MD, "EntityDescriptor"):
        return SamlMetadata(problem="The XML is not SAML metadata (no EntityDescriptor).")

    def certs(role: str) -> tuple[str, ...]:
        found: list[str] = []
        for desc in root.iterfind(_q(NS_MD, role)):
            for kd in desc.iterfind(_q(NS_MD, "KeyDescriptor")):
                if kd.get("use") not in (None, "signing"):
                    continue
                for c in kd.iter(_q(NS_DS, "X509Certificate")):
                    pem = _pem(c.text or "")
                    if pem and pem not in found:
                        found.append(pem)
        return tuple(found[:MAX_ITEMS])

    def endpoints(role: str, name: str) -> tuple[SamlEndpoint, ...]:
        return tuple(
            SamlEndpoint(binding=_attr(e, "Binding"), location=_attr(e, "Location"), index=_int(_attr(e, "index")))
            for desc in root.iterfind(_q(NS_MD, role))
            for e in desc.iterfind(_q(NS_MD, name))
        )[:MAX_ITEMS]

    idp = root.find(_q(NS_MD, "IDPSSODescriptor"))
    sp = root.find(_q(NS_MD, "SPSSODescriptor"))
    return SamlMetadata(
        entity_id=_attr(root, "entityID"),
        idp_signing_certs=certs("IDPSSODescriptor"),
        sp_signing_certs=certs("SPSSODescriptor"),
        sso_services=endpoints("IDPSSODescriptor", "SingleSignOnService"),
        slo_services=endpoints("IDPSSODescriptor", "SingleLogoutService")
        + endpoints("SPSSODescriptor", "SingleLogoutService"),
        acs_services=endpoints("SPSSODescriptor", "AssertionConsumerService"),
        want_assertions_signed=_bool(_attr(sp, "WantAssertionsSigned")) if sp is not None else None,
        want_authn_requests_signed=_bool(_attr(idp, "WantAuthnRequestsSigned")) if idp is not None else None,
    )


def certs_from_metadata(xml: bytes) -> tuple[str, ...]:
    """The identity provider's signing certificates (PEM) from metadata; () when there are none."""
    return decode_metadata(xml).idp_signing_certs


MAX_CERT_FILE = 4 * 1024 * 1024


def trust_from_file(path: str) -> tuple[tuple[str, ...], SamlMetadata | None]:
    """What a `--saml-cert FILE` holds: certificates (PEM, one or several; DER; bare base64), returned as
    PEM, or a metadata document (an IdP's or an SP's), returned decoded so its certificates stay bound to
    its entity. Raises ValueError with one sentence for the user when the file cannot be used."""
    try:
        with open(path, "rb") as fh:
            data = fh.read(MAX_CERT_FILE + 1)
    except OSError as exc:
        raise ValueError(f"cannot read the SAML certificate {path}: {exc.strerror or exc}.") from exc
    if len(data) > MAX_CERT_FILE:
        raise ValueError(f"{path} is too large for a certificate or SAML metadata (over 4 MB).")
    if b"EntityDescriptor" in data[:8192]:
        meta = decode_metadata(data)
        if not meta.entity_id or not (meta.idp_signing_certs or meta.sp_signing_certs):
            why = meta.problem or "it names no entity id or no signing certificate"
            raise ValueError(f"{path} is SAML metadata but cannot be used: {why.rstrip('.')}.")
        return (), meta
    blocks = re.findall(rb"-----BEGIN CERTIFICATE-----.+?-----END CERTIFICATE-----", data, re.S)
    certs = [c for b in blocks or [data.strip()] if (c := load_cert(b)) is not None]
    if not certs:
        raise ValueError(f"{path} holds no X.509 certificate (PEM, DER or base64) and is not SAML metadata.")
    return tuple(c.public_bytes(Encoding.PEM).decode() for c in certs), None


# ------------------------------------------------------------------------------ helpers


def _clip(value: str, limit: int) -> str:
    return value if len(value) <= limit else value[: limit - 1] + "…"


def _attr(el: etree._Element | None, name: str) -> str | None:
    if el is None:
        return None
    value = el.get(name)
    return _clip(value, MAX_TEXT) if value is not None else None


def _text(el: etree._Element | None) -> str | None:
    """All text of the element, comments skipped but the text around them joined: a comment
    inside a NameID (a known signature-bypass trick) cannot cut the value short here."""
    if el is None:
        return None
    text = "".join(t for t in el.itertext() if isinstance(t, str)).strip()
    return _clip(text, MAX_TEXT) if text else None


def _child_text(el: etree._Element, ns: str, name: str) -> str | None:
    return _text(el.find(_q(ns, name)))


def _texts(elements: Iterable[etree._Element]) -> tuple[str, ...]:
    out: list[str] = []
    for e in elements:
        t = _text(e)
        if t is not None:
            out.append(t)
        if len(out) >= MAX_ITEMS:
            break
    return tuple(out)


def _bool(value: str | None) -> bool | None:
    if value is None:
        return None
    v = value.strip().lower()
    return True if v in ("true", "1") else False if v in ("false", "0") else None


def _int(value: str | None) -> int | None:
    try:
        return int(value) if value is not None and len(value) < 12 else None
    except ValueError:
        return None


_DATETIME = re.compile(r"\s*(\d{4})-(\d\d)-(\d\d)T(\d\d):(\d\d):(\d\d)(\.\d+)?(Z|[+-]\d\d:\d\d)?\s*")


def _time(value: str | None) -> float | None:
    """xs:dateTime → epoch seconds. SAML times are UTC; one without a zone is read as UTC."""
    if not value:
        return None
    m = _DATETIME.fullmatch(value)
    if not m:
        return None
    y, mo, d, h, mi, s = (int(g) for g in m.groups()[:6])
    if not (1 <= mo <= 12 and 1 <= d <= 31 and h <= 24 and mi <= 59 and s <= 60):
        return None
    epoch = float(calendar.timegm((y, mo, d, h, mi, s, 0, 0, 0)))
    if m.group(7):
        epoch += float("0" + m.group(7)[:10])
    zone = m.group(8)
    if zone and zone != "Z":
        sign = 1 if zone[0] == "+" else -1
        epoch -= sign * (int(zone[1:3]) * 3600 + int(zone[4:6]) * 60)
    return epoch
