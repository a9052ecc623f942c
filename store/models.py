"""Tables. Hops keep decoded, secret-free evidence; raw secrets never reach a column.

JSON columns hold the decoded parameters, claims and error fields as they were found:
their shape differs per provider, and checks read them as plain dicts.
"""
from __future__ import annotations

from typing import Any, Optional

from sqlalchemy import JSON, Column
from sqlmodel import Field, SQLModel


def _json() -> Any:
    return Field(default=None, sa_column=Column(JSON))


class Meta(SQLModel, table=True):
    """Per-database settings; holds the fingerprint key (so the database stays the engineer's own)."""

    key: str = Field(primary_key=True)
    value: str


class CaptureSession(SQLModel, table=True):
    id: Optional[int] = Field(default=None, primary_key=True)
    name: str
    source: str  # "live" or a file path
    kind: str  # live | har | mitm
    created: float
    first_seen: Optional[float] = None
    last_seen: Optional[float] = None
    flows_seen: int = 0  # every flow looked at, auth or not (noise is counted, not stored)
    hops: int = 0
    problem: Optional[str] = None  # one sentence when the capture was damaged or cut short


class Hop(SQLModel, table=True):
    id: Optional[int] = Field(default=None, primary_key=True)
    session_id: int = Field(foreign_key="capturesession.id", index=True)
    seq: int  # order within the capture
    started: float  # epoch seconds, request start
    duration_ms: Optional[float] = None
    role: str = Field(index=True)
    method: str
    url: str  # secrets replaced by fingerprints
    host: str
    path: str
    status: Optional[int] = None
    is_error: bool = False
    actor: str  # browser | app | api-client
    user_agent: Optional[str] = None
    code_fp: Optional[str] = Field(default=None, index=True)  # code carried: issued, received or redeemed
    state: Optional[str] = None  # normalised (percent-decoded) state value
    nonce: Optional[str] = None
    client_id: Optional[str] = None
    initiator: Any = _json()  # Sec-Fetch-*, Origin, Referer (redacted)
    params: Any = _json()  # {"query"|"form"|"json"|"fragment": {name: value-or-fingerprint}}
    response: Any = _json()  # decoded answer: token fields, Location params, WWW-Authenticate
    state_decoded: Any = _json()
    error: Any = _json()  # error, error_description, error_codes, trace_id, correlation_id, ...
    headers: Any = _json()  # selected, non-secret request/response headers
    cookies: Any = _json()  # {"sent": [names], "set": [names]}
    body_excerpt: Optional[str] = None  # redacted start of an error answer
    note: Optional[str] = None  # how the hop was derived, e.g. "from the Location fragment of hop 12"


class Token(SQLModel, table=True):
    id: Optional[int] = Field(default=None, primary_key=True)
    session_id: int = Field(foreign_key="capturesession.id", index=True)
    hop_id: int = Field(foreign_key="hop.id", index=True)
    where: str  # e.g. "response.access_token", "request.authorization", "form.id_token"
    kind: str  # access_token | id_token | refresh_token | client_assertion | ...
    fingerprint: str = Field(index=True)
    format: str  # jwt | opaque
    header: Any = _json()
    claims: Any = _json()
    signature: str = "unknown"  # verified | failed | unknown | none (alg none / unsigned)


class Finding(SQLModel, table=True):
    id: Optional[int] = Field(default=None, primary_key=True)
    session_id: int = Field(foreign_key="capturesession.id", index=True)
    kind: str
    severity: str  # error | warning | info
    title: str
    explanation: str
    causes: Any = _json()
    next_step: str
    evidence: Any = _json()  # hop ids
    details: Any = _json()
