"""Tables: the schema of a store. Hops keep decoded, secret-free evidence; raw secrets never reach a column.

The records (`records.py`) are what the program passes; these tables are how a store keeps them,
and migrations change them explicitly. The store maps records to rows by their field names
(`db.to_row` / `db.hop_from_row`): a column here per stored field of the record, JSON columns for
its nested records, and `tests/test_store.py` holds the two in step.
"""
from __future__ import annotations

from typing import Any

from sqlalchemy import JSON, Column, Index
from sqlmodel import Field, SQLModel


def _json() -> Any:
    return Field(default=None, sa_column=Column(JSON))


class Meta(SQLModel, table=True):
    """Per-store settings: the fingerprint key (one per store, so the same code or token seen in two
    captures has the same fingerprint, and the store stays its owners' own). The schema version is
    Alembic's `alembic_version` table (`migrate.py`)."""

    key: str = Field(primary_key=True)
    value: str


class CaptureSession(SQLModel, table=True):
    id: int | None = Field(default=None, primary_key=True)
    name: str
    source: str
    kind: str
    created: float
    first_seen: float | None = None
    last_seen: float | None = None
    flows_seen: int = 0
    hops: int = 0
    problem: str | None = None


class Hop(SQLModel, table=True):
    # a session's hops in time order (load_hops, hop numbers) from one index
    __table_args__ = (Index("ix_hop_session_started", "session_id", "started"),)

    id: int | None = Field(default=None, primary_key=True)
    session_id: int = Field(foreign_key="capturesession.id")
    started: float
    duration_ms: float | None = None
    role: str = Field(index=True)
    method: str
    url: str
    host: str
    path: str
    status: int | None = None
    is_error: bool = False
    actor: str
    user_agent: str | None = None
    code_fp: str | None = Field(default=None, index=True)
    state: str | None = None
    nonce: str | None = None
    client_id: str | None = None
    from_fragment: bool = False
    initiator: Any = _json()
    params: Any = _json()
    answer: Any = _json()
    state_info: Any = _json()
    error: Any = _json()
    request_headers: Any = _json()
    response_headers: Any = _json()
    cookies_sent: Any = _json()
    cookies_set: Any = _json()
    body_excerpt: str | None = None


class Token(SQLModel, table=True):
    id: int | None = Field(default=None, primary_key=True)
    session_id: int = Field(foreign_key="capturesession.id", index=True)
    hop_id: int = Field(foreign_key="hop.id", index=True)
    where: str
    kind: str
    fingerprint: str = Field(index=True)
    format: str
    header: Any = _json()
    claims: Any = _json()
    signature: str = "unknown"


class Finding(SQLModel, table=True):
    """The findings of a session's latest analysis: read back by `sessions` (counts, kinds) without
    running the checks again; rewritten whenever a session is analysed."""

    id: int | None = Field(default=None, primary_key=True)
    session_id: int = Field(foreign_key="capturesession.id", index=True)
    kind: str = Field(index=True)
    severity: str
    title: str
    explanation: str
    causes: Any = _json()
    next_step: str
    evidence: Any = _json()  # hop ids
    details: Any = _json()


class Sighting(SQLModel, table=True):
    """Where a fingerprint (code, token, cookie, state, ...) was seen: one row per fingerprint per hop,
    written with the hop, so `find` is one index lookup instead of a search through JSON columns.
    `digest` is the HMAC part of `label#digest`: the same value under another label (`jwt#…` in an
    error text, `access_token#…` in an answer) is the same secret."""

    id: int | None = Field(default=None, primary_key=True)
    digest: str = Field(index=True)
    fingerprint: str  # as printed: label#digest
    session_id: int = Field(foreign_key="capturesession.id", index=True)
    hop_id: int = Field(foreign_key="hop.id")
    place: str  # where in the hop: "code", "query.code", "request.authorization", "cookie.SID", ...


class Facet(SQLModel, table=True):
    """What a session's hops name (role, host, client_id, tenant, error), each with its number of
    hops, counted as the hops are written: `sessions` filters and counts from this small table
    instead of reading a million hops."""

    __table_args__ = (Index("ix_facet_name_value", "name", "value"),)

    session_id: int = Field(foreign_key="capturesession.id", primary_key=True)
    name: str = Field(primary_key=True)
    value: str = Field(primary_key=True)
    hops: int = 0
