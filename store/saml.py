"""The SAML 2.0 records a hop stores: one protocol message as it crossed the wire, decoded.

`addons/saml.py` builds them (hostile XML parsed safely, signatures checked wrapping-safe); a hop
keeps the message its request carried in `Params.saml` and one its answer carried (a SOAP
ArtifactResponse) in `Answer.saml`; the checks and the report read them from there. They live on
the store's floor, beside the other records, so every floor can read them.

What they never hold: the raw message, artifact or RelayState (a hop keeps their fingerprints in its
parameters), any attribute value (attribute names only). The values that identify a person (NameID)
are only in the fields listed in `PII_FIELDS`, which `masked()` replaces. Every field type is
JSON-able, so a record is stored with `records.to_json` and read back with `records.from_json`.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable
from dataclasses import dataclass
from typing import Literal, TypeVar

BEARER = "urn:oasis:names:tc:SAML:2.0:cm:bearer"
STATUS_SUCCESS = "urn:oasis:names:tc:SAML:2.0:status:Success"
STATUS_PREFIX = "urn:oasis:names:tc:SAML:2.0:status:"

Binding = Literal["redirect", "post", "artifact", "soap"]
SignatureStatus = Literal["verified", "failed", "unknown", "unsigned"]

# Names a person can be identified by. ``masked()`` replaces exactly these.
PII_FIELDS = ("subject_nameid",)


def status_name(uri: str) -> str:
    """`urn:oasis:names:tc:SAML:2.0:status:NoPassive` -> `NoPassive`; another URI stays as it is."""
    return uri[len(STATUS_PREFIX):] if uri.startswith(STATUS_PREFIX) else uri


# ------------------------------------------------------------------------------- records


@dataclass(slots=True, kw_only=True, frozen=True)
class SamlSignature:
    """One signature: an enveloped ds:Signature, or the query signature of the redirect binding.

    ``status``: ``verified`` (checked against a known IdP certificate), ``failed`` (checked and
    wrong: digest, signature, or it does not cover the element it sits in) or ``unknown`` (no
    certificate to check with). ``cert_sha256`` is the SHA-256 of the DER of the certificate the
    signature carries (a hint only); ``verified_with`` that of the trusted one that verified it.
    """

    algorithm: str | None = None
    digest_algorithm: str | None = None
    reference: str | None = None  # the Reference URI ('#ID'); None for a query signature
    cert_sha256: str | None = None
    verified_with: str | None = None
    status: SignatureStatus = "unknown"
    note: str | None = None  # why it failed or is unknown, one sentence


@dataclass(slots=True, kw_only=True, frozen=True)
class SamlStatus:
    """The top-level StatusCode, the nested ones in order (outer first), and the message."""

    code: str | None = None
    subcodes: tuple[str, ...] = ()
    message: str | None = None

    @property
    def success(self) -> bool:
        return self.code == STATUS_SUCCESS


@dataclass(slots=True, kw_only=True, frozen=True)
class SamlConfirmation:
    """One SubjectConfirmation: where, until when and in answer to what the bearer may use it."""

    method: str | None = None
    recipient: str | None = None
    not_before: float | None = None
    not_on_or_after: float | None = None
    in_response_to: str | None = None


@dataclass(slots=True, kw_only=True, frozen=True)
class SamlAssertion:
    """One Assertion as a service provider reads it. Times are epoch seconds (UTC).

    ``signature`` is the assertion's own signature (None when it has none); ``signature_status``
    is what protects it in the end: its own signature, else the enclosing Response's, else
    ``unsigned``. When verified, every field here comes from the signed copy.
    ``subject_nameid`` identifies a person (see ``PII_FIELDS``).
    """

    id: str | None = None
    issuer: str | None = None
    issue_instant: float | None = None
    subject_nameid: str | None = None
    nameid_format: str | None = None
    nameid_encrypted: bool = False
    confirmations: tuple[SamlConfirmation, ...] = ()
    not_before: float | None = None  # Conditions
    not_on_or_after: float | None = None  # Conditions
    audiences: tuple[str, ...] = ()  # every AudienceRestriction/Audience, in order
    one_time_use: bool = False
    authn_instant: float | None = None
    session_index: str | None = None
    session_not_on_or_after: float | None = None
    authn_context_class: str | None = None
    attribute_names: tuple[str, ...] = ()  # names only: attribute values are never kept
    signature: SamlSignature | None = None
    signature_status: SignatureStatus = "unsigned"


@dataclass(slots=True, kw_only=True, frozen=True)
class SamlArtifact:
    """The parts of a SAMLart (type 0x0004) that are not secret: the message handle is left out."""

    type_code: int | None = None
    endpoint_index: int | None = None
    source_id: str | None = None  # hex; SHA-1 of the issuer's entity id for type 0x0004


@dataclass(slots=True, kw_only=True, frozen=True)
class SamlMessage:
    """One SAML protocol message as it crossed the wire.

    ``kind`` is the root element's name (AuthnRequest, Response, LogoutRequest, LogoutResponse,
    ArtifactResolve, ArtifactResponse, ...), ``Artifact`` for a SAMLart, None when undecodable
    (then ``problem`` says why). ``param`` is the parameter it came in (SAMLRequest,
    SAMLResponse, SAMLart) or ``soap``. Times are epoch seconds (UTC).
    """

    kind: str | None = None
    binding: Binding = "redirect"
    param: str = ""
    deflated: bool = False
    size: int = 0  # bytes of the decoded XML
    id: str | None = None
    issuer: str | None = None
    destination: str | None = None
    in_response_to: str | None = None
    issue_instant: float | None = None
    version: str | None = None
    relay_state_present: bool = False
    # AuthnRequest
    acs_url: str | None = None
    acs_index: int | None = None
    protocol_binding: str | None = None
    nameid_policy: str | None = None  # NameIDPolicy/@Format
    allow_create: bool | None = None
    is_passive: bool | None = None
    force_authn: bool | None = None
    requested_authn_context: tuple[str, ...] = ()
    # LogoutRequest (and an AuthnRequest's Subject)
    subject_nameid: str | None = None
    session_indexes: tuple[str, ...] = ()
    # answers
    status: SamlStatus | None = None
    assertions: tuple[SamlAssertion, ...] = ()
    encrypted_assertions: int = 0
    misplaced_assertions: int = 0  # Assertion elements anywhere but Response/Assertion
    inner: SamlMessage | None = None  # the message an ArtifactResponse carries
    artifact: SamlArtifact | None = None
    # the message's own signature (enveloped, or the redirect binding's query signature)
    signature: SamlSignature | None = None
    signature_status: SignatureStatus = "unsigned"
    problem: str | None = None


R = TypeVar("R", SamlMessage, SamlAssertion)


def masked(record: R, mask: Callable[[str], str]) -> R:
    """A copy with every value that identifies a person (``PII_FIELDS``) replaced by ``mask(value)``."""
    changes: dict[str, object] = {f: mask(v) for f in PII_FIELDS if isinstance(v := getattr(record, f), str)}
    if isinstance(record, SamlMessage):
        changes["assertions"] = tuple(masked(a, mask) for a in record.assertions)
        if record.inner is not None:
            changes["inner"] = masked(record.inner, mask)
    return dataclasses.replace(record, **changes)  # type: ignore[arg-type]


def overall_signature(m: SamlMessage) -> SignatureStatus | Literal["none"]:
    """What protects a message as a whole: `failed` when any signature failed, `unsigned` when an assertion
    is signed neither itself nor by its Response, `verified` when every signature present verified,
    `unknown` when one could not be checked, `none` for a message without any (an unsigned request)."""
    seen = [a.signature_status for a in m.assertions] + ([m.signature_status] if m.signature is not None else [])
    if "failed" in seen:
        return "failed"
    if m.assertions and "unsigned" in seen and m.signature_status == "unsigned":
        return "unsigned"
    if not seen or all(s == "unsigned" for s in seen):
        return "none"
    return "verified" if all(s == "verified" for s in seen) else "unknown"


def brief(m: SamlMessage) -> str:
    """One line of a SAML message for a terminal, a flow comment or a timeline row: its kind, status and
    signature, the request it answers (`SAML Response Success answers id-7f3 · signature verified`)."""
    bits = [f"SAML {m.kind or 'message (undecodable)'}"]
    if m.status is not None and m.status.code:
        bits.append("/".join(status_name(c) for c in (m.status.code, *m.status.subcodes)))
    if m.kind in ("AuthnRequest", "LogoutRequest") and m.id:
        bits.append(m.id[:24])
    if m.in_response_to:
        bits.append(f"answers {m.in_response_to[:24]}")
    if m.kind is not None and m.binding != "artifact":
        bits.append(f"signature {overall_signature(m)}")
    if m.inner is not None:
        bits.append(f"[{brief(m.inner)}]")
    return " ".join(bits[:1]) + (" " + " · ".join(bits[1:]) if bits[1:] else "")
