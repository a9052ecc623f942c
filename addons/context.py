"""What one capture session has learnt so far, and the JWT signatures it can check.

The hop builder is pure apart from this: discovery documents teach endpoints, authorize requests
teach redirect URIs and identity-provider hosts, JWKS documents teach keys. Raw JWTs are held in
memory only, briefly, so a JWKS that arrives after the tokens (the usual order) can still verify them.
"""
from __future__ import annotations

import base64
import binascii
from collections import OrderedDict
from collections.abc import Callable, Sequence
from typing import Any, Literal
from urllib.parse import SplitResult, urlsplit

import jwt

from authtrace.addons import saml
from authtrace.addons.secrets import Fingerprinter
from authtrace.store.records import Signature
from authtrace.store.saml import SamlMessage

ENDPOINT_FIELDS = (("authorize", "authorization_endpoint"), ("token", "token_endpoint"), ("jwks", "jwks_uri"),
                   ("userinfo", "userinfo_endpoint"), ("logout", "end_session_endpoint"),
                   ("device", "device_authorization_endpoint"), ("par", "pushed_authorization_request_endpoint"),
                   ("registration", "registration_endpoint"), ("revocation", "revocation_endpoint"),
                   ("introspection", "introspection_endpoint"))
MAX_PENDING = 2000
MAX_REMEMBERED = 4096


def split(url: str) -> SplitResult:
    """urlsplit that never raises: a malformed Location, Referer or endpoint must not lose the hop."""
    try:
        return urlsplit(url or "")
    except ValueError:
        return urlsplit("")


def _absolute(base: str, location: str) -> str:
    """A Location made absolute against the URL it answered."""
    if "://" in location.split("?", 1)[0]:
        return location
    b = split(base)
    if location.startswith("//"):
        return f"{b.scheme}:{location}"
    if location.startswith("/"):
        return f"{b.scheme}://{b.netloc}{location}"
    return f"{b.scheme}://{b.netloc}{b.path.rsplit('/', 1)[0]}/{location}"


def bare(url: str) -> str:
    """scheme://host[:port]/path, lower-case host, no query or fragment: for endpoint matching."""
    p = split(url)
    return f"{p.scheme}://{(p.netloc or '').lower()}{p.path.rstrip('/')}"


class Signatures:
    """JWKS keys seen in the capture and the verdict for each token fingerprint."""

    def __init__(self) -> None:
        self.keys: dict[str, Any] = {}  # kid (or a placeholder for keys without one) -> PyJWK
        self.pending: OrderedDict[str, tuple[str, dict[str, Any]]] = OrderedDict()  # fp -> (raw, header)
        self.verdicts: dict[str, Signature] = {}
        self.updates: dict[str, Signature] = {}  # found after the token was handed on: to store later

    def check(self, raw: str, header: dict[str, Any], fp: str) -> Signature:
        """The signature's verdict now; an unknown one is re-checked when a JWKS arrives."""
        alg = header.get("alg")
        if not isinstance(alg, str) or alg.lower() in ("", "none"):
            return Signature.NONE
        if header.get("nonce") is not None:
            # Entra's tokens for Microsoft's own APIs (Graph) carry a nonce in the header that is
            # hashed before signing: no client can verify them, by design.
            return Signature.UNKNOWN
        known = self.verdicts.get(fp)
        if known is not None:
            return known
        key = self._key_for(header)
        if key is None:
            self.pending[fp] = (raw, header)
            if len(self.pending) > MAX_PENDING:
                self.pending.popitem(last=False)
            return Signature.UNKNOWN
        verdict = self.verdicts[fp] = verify(raw, key, header)
        return verdict

    def learn_jwks(self, doc: Any) -> None:
        if not isinstance(doc, dict) or not isinstance(doc.get("keys"), list):
            return
        for k in doc["keys"][:200]:
            if not isinstance(k, dict):
                continue
            try:
                pk = jwt.PyJWK.from_dict(k)
            except (jwt.PyJWTError, ValueError, TypeError, KeyError):  # an unusable key: skip it, keep the others
                continue
            kid = k.get("kid")
            self.keys[kid if isinstance(kid, str) and kid else f"_{len(self.keys)}"] = pk
        for fp, (raw, header) in list(self.pending.items()):
            key = self._key_for(header)
            if key is not None:
                self.updates[fp] = self.verdicts[fp] = verify(raw, key, header)
                del self.pending[fp]

    def _key_for(self, header: dict[str, Any]) -> Any:
        """The key a token names by `kid`; without a `kid`, the only key the capture holds."""
        kid = header.get("kid")
        if isinstance(kid, str) and kid:
            return self.keys.get(kid)
        if kid is None and len(self.keys) == 1:
            return next(iter(self.keys.values()))
        return None

    def take_updates(self) -> dict[str, Signature]:
        out, self.updates = self.updates, {}
        return out


def verify(raw: str, key: Any, header: dict[str, Any]) -> Signature:
    """The signature over `header.payload`, checked with the algorithm the header names. A key of
    another type, or an algorithm PyJWT does not know, is `unknown`: nothing was proven either way."""
    signing_input, _, sig = raw.rpartition(".")
    try:
        algo = jwt.get_algorithm_by_name(str(header.get("alg")))
    except NotImplementedError:
        return Signature.UNKNOWN
    kty = getattr(key, "key_type", None)
    if isinstance(kty, str) and not _fits(str(header.get("alg")), kty):
        return Signature.UNKNOWN
    try:
        signature = base64.urlsafe_b64decode(sig + "=" * (-len(sig) % 4))
    except (binascii.Error, ValueError):
        return Signature.FAILED  # a signature that is not even base64url proves nothing good
    try:
        return Signature.VERIFIED if algo.verify(signing_input.encode(), key.key, signature) else Signature.FAILED
    except (TypeError, ValueError, AttributeError, jwt.PyJWTError):  # key object of the wrong kind
        return Signature.UNKNOWN


_ALG_KEY_TYPES = {"RS": "RSA", "PS": "RSA", "ES": "EC", "HS": "oct", "Ed": "OKP", "EdDSA": "OKP"}


def _fits(alg: str, key_type: str) -> bool:
    want = _ALG_KEY_TYPES.get(alg) or _ALG_KEY_TYPES.get(alg[:2])
    return want is None or want == key_type


class SamlKeys:
    """The SAML signing certificates a capture knows, by entity: learnt from metadata seen in it (an
    IdP's and an SP's, like a JWKS for JWTs) and given by the user (`--saml-cert`, trusted for what
    identity providers sign). A message is checked only against its own issuer's certificates, so a
    certificate that belongs to someone else never makes a signature `failed`."""

    def __init__(self, user_certs: tuple[str, ...] = ()) -> None:
        self.user = user_certs
        self.idp: dict[str, tuple[str, ...]] = {}  # IdP entity id -> its signing certificates (PEM)
        self.sp: dict[str, tuple[str, ...]] = {}
        self.idp_entities: set[str] = set()  # issuers of Responses seen: identity providers
        self.acs: dict[str, str] = {}  # an SP's assertion consumer service URL (bare) -> its entity id

    @classmethod
    def from_files(cls, paths: Sequence[str]) -> SamlKeys:
        """What `--saml-cert FILE...` gives: certificates, trusted for what identity providers sign, and
        metadata, learnt as if captured. ValueError (one sentence) for a file that cannot be used."""
        certs: list[str] = []
        metas = []
        for p in paths:
            found, meta = saml.trust_from_file(p)
            certs += found
            if meta is not None:
                metas.append(meta)
        keys = cls(tuple(certs))
        for meta in metas:
            keys.learn(meta)
        return keys

    def merge(self, other: SamlKeys) -> None:
        """What another set knows (files given at run time), added to what this capture learnt."""
        self.idp.update(other.idp)
        self.sp.update(other.sp)
        self.idp_entities |= other.idp_entities
        self.acs.update(other.acs)

    def learn(self, meta: saml.SamlMetadata) -> None:
        if not meta.entity_id:
            return
        if meta.idp_signing_certs:
            self.idp[meta.entity_id] = meta.idp_signing_certs
            self.idp_entities.add(meta.entity_id)
        if meta.sp_signing_certs:
            self.sp[meta.entity_id] = meta.sp_signing_certs
        for e in meta.acs_services[:50]:
            if e.location:
                self.acs[bare(e.location)] = meta.entity_id

    def certs_for(self, msg: SamlMessage) -> tuple[str, ...]:
        """The certificates a message's signatures must verify with: its issuer's, by the role the issuer
        plays (what an IdP answers, else what an SP sends); the user's own for what identity providers sign."""
        issuer = _issuer(msg) or (_issuer(msg.inner) if msg.inner is not None else None) or ""
        from_idp = msg.kind in ("Response", "ArtifactResponse") or issuer in self.idp_entities
        own = (self.idp.get(issuer, ()) if from_idp else ()) + (self.sp.get(issuer, ()) if not from_idp else ())
        return own + (self.user if from_idp else ())

    def decode(self, params: dict[str, str], binding: Literal["redirect", "post"], raw_query: str | None
               ) -> SamlMessage | None:
        """The message a request's query or form carries, its signatures checked with its issuer's
        certificates (decoded once to learn the issuer, again with them when it is signed)."""
        msg = saml.decode_binding(params, binding=binding, raw_query=raw_query)
        if msg is None or msg.kind is None:
            return msg
        return self._checked(msg, lambda certs: saml.decode_binding(params, binding=binding, raw_query=raw_query,
                                                                     certs=certs))

    def decode_soap(self, xml: bytes) -> SamlMessage:
        """A SOAP (or bare XML) SAML message of the back channel: an ArtifactResolve, an ArtifactResponse."""
        msg = saml.decode_xml(xml, binding="soap")
        if msg.kind is None:
            return msg
        return self._checked(msg, lambda certs: saml.decode_xml(xml, binding="soap", certs=certs))

    def _checked(self, msg: SamlMessage, again: Callable[[tuple[str, ...]], SamlMessage | None]) -> SamlMessage:
        if msg.kind in ("Response", "ArtifactResponse"):
            for issuer in (msg.issuer, *(a.issuer for a in msg.assertions), msg.inner.issuer if msg.inner else None):
                if issuer:
                    self.idp_entities.add(issuer)
        signed = msg.signature is not None or any(a.signature is not None for a in msg.assertions) \
            or (msg.inner is not None and (msg.inner.signature is not None
                                           or any(a.signature is not None for a in msg.inner.assertions)))
        certs = self.certs_for(msg) if signed else ()
        if not certs:
            return msg
        return again(certs) or msg


def _issuer(msg: SamlMessage) -> str | None:
    return msg.issuer or next((a.issuer for a in msg.assertions if a.issuer), None)


class CaptureContext:
    """What one capture session has learnt so far (endpoints, hosts, redirect URIs, keys), and the
    fingerprinter of its store."""

    def __init__(self, key: bytes, saml: SamlKeys | None = None):
        self.fpr = Fingerprinter(key)
        self.signatures = Signatures()
        self.saml = saml or SamlKeys()
        self.endpoints: dict[str, set[str]] = {role: set() for role, _ in ENDPOINT_FIELDS}
        self.idp_hosts: set[str] = set()
        self.redirect_uris: set[str] = set()
        self.open_authorize: dict[str, float] = {}  # IdP host -> time of the latest authorize there
        self.redirect_targets: OrderedDict[str, None] = OrderedDict()  # URLs an IdP redirected to
        self.decoded: OrderedDict[str, tuple[dict[str, Any], dict[str, Any]] | None] = OrderedDict()
        # URLs a CORS preflight announced request headers for (lower-case names): the request follows
        self.preflighted: OrderedDict[str, tuple[str, ...]] = OrderedDict()
        # a sign-in's own steps at the provider: URLs its pages redirected to on the same host, and the
        # pages themselves (a form posted from one is a step too). They stay steps after another tab's
        # callback, which closes `open_authorize`.
        self.steps: OrderedDict[str, None] = OrderedDict()
        self.pages: OrderedDict[str, None] = OrderedDict()

    def learn_discovery(self, doc: Any, host: str) -> str | None:
        """Endpoints from an OpenID/OAuth metadata document; returns its issuer when it is text."""
        if not isinstance(doc, dict):
            return None
        for role, name in ENDPOINT_FIELDS:
            url = doc.get(name)
            if isinstance(url, str):
                self.endpoints[role].add(bare(url))
                h = split(url).hostname
                if h and role in ("authorize", "device", "logout"):
                    self.idp_hosts.add(h.lower())
        self.idp_hosts.add(host)
        issuer = doc.get("issuer")
        return issuer if isinstance(issuer, str) else None

    def endpoint_role(self, bare_url: str) -> str | None:
        for role, urls in self.endpoints.items():
            if bare_url in urls:
                return role
        return None

    def saw_authorize(self, host: str, started: float, redirect_uri: str | None) -> None:
        self.open_authorize[host] = started
        self.idp_hosts.add(host)
        if redirect_uri:
            self.redirect_uris.add(bare(redirect_uri))

    def saw_callback(self) -> None:
        self.open_authorize.clear()  # the sign-in came back: IdP pages after this are not its login steps

    def saw_redirect_to(self, location: str) -> None:
        self.redirect_targets[bare(location)] = None
        if len(self.redirect_targets) > 200:
            self.redirect_targets.popitem(last=False)

    def saw_step(self, url: str, host: str, location: str) -> None:
        """A provider page of a sign-in (authorize, login, consent): it and where it redirects on its own
        host are steps of that sign-in."""
        for d, key in ((self.pages, url), (self.steps, _absolute(url, location) if location else "")):
            if key and (d is self.pages or (split(key).hostname or "").lower() == host):
                d[key] = None
                d.move_to_end(key)
                if len(d) > 500:
                    d.popitem(last=False)

    def saw_preflight(self, url: str, announced: str) -> None:
        """A CORS preflight (OPTIONS with Access-Control-Request-Headers) for `url`."""
        names = tuple(sorted({n.strip().lower()[:60] for n in announced.split(",") if n.strip()}))[:20]
        if "authorization" in names or "dpop" in names:
            self.preflighted[url] = names
            self.preflighted.move_to_end(url)
            if len(self.preflighted) > 200:
                self.preflighted.popitem(last=False)

    def remember_decoded(self, fp: str, decoded: tuple[dict[str, Any], dict[str, Any]] | None) -> None:
        self.decoded[fp] = decoded
        if len(self.decoded) > MAX_REMEMBERED:
            self.decoded.popitem(last=False)
