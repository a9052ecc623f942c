"""The records every floor passes: a hop, the tokens it carried, what an error answer said, a
finding, a capture session. Each is defined once, here; the decoder builds them, the store maps
them to tables, the checks read them and the renderers print them.

Why plain dataclasses (slots, keyword-only) rather than SQLModel or pydantic models: the checks
read hop attributes hundreds of thousands of times per report and the decoder builds one record per
auth hop on the proxy's event loop; a slotted dataclass costs a plain attribute access there, an
ORM-instrumented or validated model costs several times that. The store keeps the tables
(`models.py`) and converts with `to_row` / `from_row`, driven by the fields below, so a field
added here is stored, loaded and printed without another list to keep in step.

Values from captured traffic are hostile: any JSON field may have any type. They are turned into
typed values once, where they are decoded (`Token.__post_init__`, the decoders), so no check ever
meets a number where it expects a string.
"""
from __future__ import annotations

import dataclasses
import enum
import types
import typing
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, Literal, TypeVar, Union

from authtrace.store.saml import SamlMessage


class Role(enum.StrEnum):
    """What a hop does in a sign-in (DESIGN §4)."""

    AUTHORIZE = "authorize"
    LOGIN = "login"
    CALLBACK = "callback"
    TOKEN = "token"
    API = "api"
    USERINFO = "userinfo"
    DISCOVERY = "discovery"
    JWKS = "jwks"
    LOGOUT = "logout"
    DEVICE = "device"
    ERROR = "error"


class Actor(enum.StrEnum):
    """Who sent the request: the browser, the app's back channel, or another API client."""

    BROWSER = "browser"
    APP = "app"
    API_CLIENT = "api-client"


class Signature(enum.StrEnum):
    """A JWT's signature against the keys the capture holds."""

    VERIFIED = "verified"
    FAILED = "failed"
    UNKNOWN = "unknown"  # no key for it in the capture, or it cannot be checked by a client
    NONE = "none"  # alg none: unsigned


class Severity(enum.StrEnum):
    ERROR = "error"
    WARNING = "warning"
    INFO = "info"

    @property
    def rank(self) -> int:
        return _SEVERITY_RANK[self]


_SEVERITY_RANK = {Severity.ERROR: 0, Severity.WARNING: 1, Severity.INFO: 2}


class Instant(float):
    """A moment (epoch seconds, UTC) inside a finding's details: printed by `clock`, never raw."""


# ---- typed values from hostile JSON ---------------------------------------------------------------

def as_str(v: Any) -> str | None:
    """A claim or field as text: strings as they are, numbers written out, anything else None."""
    if isinstance(v, str):
        return v
    if isinstance(v, (int, float)) and not isinstance(v, bool):
        return str(v)
    return None


def as_num(v: Any) -> float | None:
    """A time or count claim: a finite number (or a numeric string), else None."""
    if isinstance(v, bool):
        return None
    if isinstance(v, (int, float)):
        f = float(v)
    elif isinstance(v, str) and len(v) < 32:
        try:
            f = float(v.strip())
        except ValueError:
            return None
    else:
        return None
    return f if f == f and abs(f) < 1e15 else None  # NaN and absurd values are no time


def as_strs(v: Any) -> tuple[str, ...]:
    """`aud`-like values: one string or a list of them; other items are dropped."""
    if isinstance(v, str):
        return (v,)
    if isinstance(v, list):
        return tuple(s for s in (as_str(x) for x in v[:100]) if s is not None)
    return ()


def as_ints(v: Any) -> tuple[int, ...]:
    """`error_codes`: a list of numbers (or numeric strings); other items are dropped."""
    items = v if isinstance(v, list) else [v]
    out = []
    for x in items[:50]:
        if isinstance(x, int) and not isinstance(x, bool):
            out.append(x)
        elif isinstance(x, str) and x.strip().isdigit() and len(x) < 12:
            out.append(int(x))
    return tuple(out)


# ---- what a hop carries -------------------------------------------------------------------------

@dataclass(slots=True, kw_only=True)
class Params:
    """The request's parameters by where they were sent; secrets already fingerprints, names as sent."""

    query: dict[str, str] = field(default_factory=dict)
    form: dict[str, str] = field(default_factory=dict)
    json: dict[str, str] = field(default_factory=dict)  # string fields of a JSON body
    fragment: dict[str, str] = field(default_factory=dict)  # a Location fragment, for derived callbacks
    derived: dict[str, str] = field(default_factory=dict)  # code_verifier_s256, basic_client_id
    saml: SamlMessage | None = None  # the SAML message the request carried (query, form or SOAP body), decoded
    _all: dict[str, str] | None = field(default=None, repr=False, compare=False)

    def get(self, name: str) -> str | None:
        """A parameter by lower-case name, as a server reads it: body first, then query."""
        merged = self._all
        if merged is None:
            merged = {}
            for src in (self.form, self.json, self.query, self.fragment, self.derived):
                for k, v in src.items():
                    merged.setdefault(k.lower(), v)
            self._all = merged
        return merged.get(name)

    def sources(self) -> list[tuple[str, dict[str, str]]]:
        return [(n, d) for n, d in (("query", self.query), ("form", self.form), ("json", self.json),
                                    ("fragment", self.fragment), ("derived", self.derived)) if d]


@dataclass(slots=True, kw_only=True)
class ErrorAnswer:
    """What an error answer said: OAuth fields (RFC 6749 §5.2), provider ids, or a bare message.

    `error` is the protocol's error code (`invalid_grant`, `AADSTS54005`), empty when the answer only
    had a message (an app's error page)."""

    error: str = ""
    error_description: str = ""
    error_codes: tuple[int, ...] = ()
    error_uri: str | None = None
    suberror: str | None = None
    trace_id: str | None = None
    correlation_id: str | None = None
    timestamp: str | None = None
    message: str = ""  # the answer's most specific readable line, when it had no OAuth fields
    extra: dict[str, str] = field(default_factory=dict)  # other fields worth showing (claims, scope, ...)
    # where the error was read: "params" (the request's own error parameters: an error redirect arriving),
    # "location" (the error redirect itself), "body" (the answer's JSON or text), "page" (an error page's
    # configuration or text), "challenge" (WWW-Authenticate), "transport" (no answer); "" in older stores
    source: str = ""
    details: tuple[str, ...] = ()  # an envelope's detail messages (Azure `details[].message`, RFC 7807 `errors`)
    inner_code: str | None = None  # the innermost `innerError.code` of an Azure envelope
    request_id: str | None = None  # an envelope's `correlation.request`, a page's request id
    operation_id: str | None = None  # an envelope's `correlation.operation`
    session_id: str | None = None  # an Entra page's `sessionId`
    provider: str | None = None  # whose error page or envelope it was (Entra, Okta, Keycloak, RFC 7807, ...)

    @property
    def text(self) -> str:
        return " ".join(x for x in (self.error, self.error_description, self.message, *self.details) if x)

    @property
    def specific(self) -> str:
        """The most specific message the answer carried: the innermost detail, else the description,
        else the readable line ("Authentication code has already been redeemed." rather than
        "OAuth redirection processing failed. Please re-login.")."""
        for d in self.details:
            if d:
                return d
        return self.error_description or self.message

    def ids(self) -> dict[str, str]:
        """The ids a provider's support asks for."""
        return {k: v for k, v in (("trace_id", self.trace_id), ("correlation_id", self.correlation_id),
                                  ("request_id", self.request_id), ("operation_id", self.operation_id),
                                  ("session_id", self.session_id), ("timestamp", self.timestamp)) if v}


@dataclass(slots=True, kw_only=True)
class Answer:
    """What the response carried that matters: a redirect, a code or tokens handed to the browser, a
    token answer's fields, a discovery issuer, JWKS key ids, a WWW-Authenticate challenge."""

    location: str | None = None  # redacted
    issued_code: str | None = None  # fingerprint of a code the provider handed to the browser
    form_post: bool = False
    issued_tokens: tuple[str, ...] = ()  # fingerprints of tokens in the Location
    fields: dict[str, Any] = field(default_factory=dict)  # a token answer's scalar fields, secrets fingerprinted
    issuer: str | None = None  # a discovery document's issuer
    kids: tuple[str, ...] = ()  # a JWKS document's key ids
    www_authenticate: dict[str, str] = field(default_factory=dict)
    saml: SamlMessage | None = None  # a SAML message in the answer's body (a SOAP ArtifactResponse), decoded

    @property
    def granted_scope(self) -> str | None:
        return as_str(self.fields.get("scope"))

    @property
    def expires_in(self) -> float | None:
        return as_num(self.fields.get("expires_in"))


@dataclass(slots=True, kw_only=True)
class Initiator:
    """Who made the request, as the browser says it: Sec-Fetch-*, Origin, the redacted Referer."""

    site: str | None = None
    mode: str | None = None
    dest: str | None = None
    user: str | None = None
    origin: str | None = None
    referer: str | None = None
    # the request headers the browser's CORS preflight announced for this request (lower case): a
    # preflight that announced `authorization` for a request that carries none shows an export that
    # removed the header
    preflight: tuple[str, ...] = ()


@dataclass(slots=True, kw_only=True)
class StateInfo:
    """What a `state` holds: opaque (its length), a JWT (header, claims), base64url JSON, MSAL's
    `{id, meta}|user state`, or JSON."""

    format: str
    length: int = 0
    value: Any = None
    header: dict[str, Any] | None = None
    claims: dict[str, Any] | None = None
    user_state: str | None = None


@dataclass(slots=True, kw_only=True, eq=False)
class Token:
    """A token seen in a hop: where, which kind, its fingerprint, and for a JWT its header and claims
    (the signature itself is never kept). The typed claim values are made once, from the claims."""

    where: str  # "response.access_token", "request.authorization", "form.id_token", ...
    kind: str  # access_token | id_token | refresh_token | client_assertion | dpop_proof | ...
    fingerprint: str
    format: str = "opaque"  # jwt | opaque
    header: dict[str, Any] | None = None
    claims: dict[str, Any] | None = None
    signature: Signature = Signature.UNKNOWN
    aud: tuple[str, ...] = field(init=False, default=())
    iss: str | None = field(init=False, default=None)
    exp: float | None = field(init=False, default=None)
    nbf: float | None = field(init=False, default=None)
    iat: float | None = field(init=False, default=None)
    nonce: str | None = field(init=False, default=None)
    tid: str | None = field(init=False, default=None)

    def __post_init__(self) -> None:
        c = self.claims
        if isinstance(c, dict):
            self.aud = as_strs(c.get("aud"))
            self.iss = as_str(c.get("iss"))
            self.exp, self.nbf, self.iat = as_num(c.get("exp")), as_num(c.get("nbf")), as_num(c.get("iat"))
            self.nonce = as_str(c.get("nonce"))
            self.tid = as_str(c.get("tid"))
        else:
            self.claims = None

    @property
    def presented(self) -> bool:
        """Sent by the client (being used), not issued by a server."""
        return self.where.startswith(("request.", "form.", "query.", "json."))


@dataclass(slots=True, kw_only=True, eq=False)
class Hop:
    """One HTTP exchange that matters to a sign-in, decoded and secret-free.

    `number` is the hop's position in time order within its session: the one number a person reads
    (terminal, JSON, HTML, every sentence). It is assigned where a session's hops are loaded
    (`store.db.load_hops`); `id` is the database row, never shown."""

    started: float  # epoch seconds, request start
    role: Role
    method: str
    url: str  # secrets replaced by fingerprints
    host: str
    path: str
    status: int | None = None  # None: no answer (refused, cancelled, cut off)
    duration_ms: float | None = None
    is_error: bool = False
    actor: Actor = Actor.BROWSER
    user_agent: str | None = None
    code_fp: str | None = None  # the code this hop issued, delivered or redeemed
    state: str | None = None  # as sent (a JWT-shaped state: its fingerprint)
    nonce: str | None = None
    client_id: str | None = None
    from_fragment: bool = False  # a callback made from a Location fragment: the browser sends no request
    initiator: Initiator | None = None
    params: Params = field(default_factory=Params)
    answer: Answer = field(default_factory=Answer)
    state_info: StateInfo | None = None
    error: ErrorAnswer | None = None
    request_headers: dict[str, str] = field(default_factory=dict)  # selected, non-secret
    response_headers: dict[str, str] = field(default_factory=dict)
    cookies_sent: dict[str, str] = field(default_factory=dict)  # name -> value fingerprint
    cookies_set: tuple[str, ...] = ()  # names
    body_excerpt: str | None = None  # redacted start of an error answer
    tokens: list[Token] = field(default_factory=list)
    id: int | None = None
    number: int = 0

    @property
    def ok(self) -> bool:
        """Answered, below 400, and no error in the answer."""
        return self.status is not None and self.status < 400 and not self.is_error

    @property
    def where(self) -> str:
        return f"{self.method} {self.host}{self.path}"

    @property
    def label(self) -> str:
        return f"#{self.number} {self.role}"

    def error_text(self) -> str:
        e = self.error
        return " ".join(x for x in ((e.text if e else ""), self.body_excerpt or "") if x)

    def presented_tokens(self) -> list[Token]:
        """The bearer (or DPoP-bound) tokens this request sent in its Authorization header."""
        return [t for t in self.tokens if t.where == "request.authorization"]


@dataclass(slots=True, kw_only=True, eq=False)
class Finding:
    """A cause named with its evidence: the hops themselves, so every renderer prints their numbers."""

    kind: str
    severity: Severity
    title: str  # one sentence
    explanation: str
    causes: tuple[str, ...]
    next_step: str
    evidence: tuple[Hop, ...]
    details: dict[str, Any] = field(default_factory=dict)  # facts for scripts; times as Instant


@dataclass(slots=True, kw_only=True)
class CaptureSession:
    """One recording or one imported file."""

    name: str
    source: str  # "live" or the file's path
    kind: str  # live | har | mitm
    created: float
    first_seen: float | None = None
    last_seen: float | None = None
    flows_seen: int = 0  # every flow looked at, auth or not (noise is counted, not stored)
    hops: int = 0
    problem: str | None = None  # one sentence when the capture was damaged or cut short
    id: int | None = None


# ---- records <-> JSON-able values (the store's JSON columns) ---------------------------------------

R = TypeVar("R")
_DROP = object()
_Conv = Callable[[Any], Any]
_FIELDS: dict[type, list[tuple[str, _Conv]]] = {}


def from_json(cls: type[R], data: Any) -> R | None:
    """A record from what `to_json` (or an older version of it) wrote; unknown keys are ignored and
    values of the wrong type are dropped, so a store written by another version still loads."""
    if not isinstance(data, dict):
        return None
    convs = _FIELDS.get(cls)
    if convs is None:
        hints = typing.get_type_hints(cls)
        convs = _FIELDS[cls] = [(f.name, _converter(hints[f.name])) for f in dataclasses.fields(cls)  # type: ignore[arg-type]
                                if f.init]
    kwargs = {}
    for name, conv in convs:
        if name in data:
            v = conv(data[name])
            if v is not _DROP:
                kwargs[name] = v
    try:
        return cls(**kwargs)
    except TypeError:  # a required field missing: not this record
        return None


def row_reader(cls: type[R]) -> Callable[[dict[str, Any]], R]:
    """A fast reader of the store's own rows into `cls`: scalar columns come typed from SQL and are
    taken as they are; enums, JSON columns and nested records go through the tolerant converters."""
    hints = typing.get_type_hints(cls)
    trusted, converted = [], []
    for f in dataclasses.fields(cls):  # type: ignore[arg-type]
        if not f.init:
            continue
        tp = hints[f.name]
        plain = {a for a in typing.get_args(tp) if a is not type(None)} or {tp}
        if plain <= {str, int, float, bool}:
            trusted.append(f.name)
        else:
            converted.append((f.name, _converter(tp)))

    def read(row: dict[str, Any]) -> R:
        kwargs = {name: row[name] for name in trusted if row.get(name) is not None}
        for name, conv in converted:
            v = row.get(name)
            if v is not None:
                out = conv(v)
                if out is not _DROP:
                    kwargs[name] = out
        return cls(**kwargs)

    return read


def _converter(tp: Any) -> _Conv:
    """A function that makes a stored value into a value of type `tp`, or `_DROP`."""
    origin = typing.get_origin(tp)
    if origin in (Union, types.UnionType):
        convs = [_converter(a) for a in typing.get_args(tp) if a is not type(None)]

        def union(v: Any) -> Any:
            if v is None:
                return None
            for c in convs:
                out = c(v)
                if out is not _DROP:
                    return out
            return _DROP
        return union
    if dataclasses.is_dataclass(tp):
        return lambda v: _DROP if (r := from_json(tp, v)) is None else r  # type: ignore[arg-type]
    if origin is tuple:
        args = typing.get_args(tp)
        if len(args) == 2 and args[1] is Ellipsis and dataclasses.is_dataclass(args[0]):
            item = _converter(args[0])  # nested records (a SAML message's assertions): each read, bad ones dropped
            return lambda v: tuple(x for x in map(item, v) if x is not _DROP) if isinstance(v, (list, tuple)) \
                else _DROP
        return lambda v: tuple(v) if isinstance(v, (list, tuple)) else _DROP
    if origin is Literal:
        allowed = typing.get_args(tp)
        return lambda v: v if v in allowed and isinstance(v, str | int) else _DROP
    if origin is dict:
        return lambda v: v if isinstance(v, dict) else _DROP
    if origin is list:
        return lambda v: v if isinstance(v, list) else _DROP
    if isinstance(tp, type) and issubclass(tp, enum.Enum):
        def member(v: Any) -> Any:
            try:
                return tp(v)
            except ValueError:
                return _DROP
        return member
    if tp is Any:
        return lambda v: v
    if tp is float:
        return lambda v: v if isinstance(v, (int, float)) and not isinstance(v, bool) else _DROP
    if isinstance(tp, type):
        return lambda v: v if isinstance(v, tp) else _DROP
    return lambda v: v


def to_json(rec: Any) -> Any:
    """A record as JSON-able values (None and empty fields left out, so stored rows stay small)."""
    cls = type(rec)
    if cls in _PLAIN:
        return rec
    fields = _JSON_FIELDS.get(cls)
    if fields is None and dataclasses.is_dataclass(cls) and not isinstance(rec, type):
        fields = _JSON_FIELDS[cls] = tuple((f.name, f.default) for f in dataclasses.fields(cls)
                                           if f.init and not f.name.startswith("_"))
    if fields is not None:
        out = {}
        for name, default in fields:
            v = getattr(rec, name)
            if v is None or (v is False and default is not None) \
                    or (not v and isinstance(v, (str, tuple, list, dict))):
                continue  # what loading restores by itself (False is kept where the default is None)
            out[name] = to_json(v)
        return out
    if isinstance(rec, enum.Enum):
        return rec.value
    if isinstance(rec, (tuple, list)):
        return [to_json(x) for x in rec]
    return rec


_PLAIN = frozenset({str, int, float, bool, type(None), dict})
_JSON_FIELDS: dict[type, tuple[tuple[str, Any], ...]] = {}  # a record type's (field, default) pairs
