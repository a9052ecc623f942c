"""Opening a store, and moving records in and out of it.

SQLite by default (WAL, synchronous=NORMAL, file created 0600); any SQLAlchemy URL works. Bulk
writes are Core inserts in batches: an ORM object and a commit per hop is ~40x slower (PERF.md).
Records map to rows by their field names; nested records live in JSON columns.

`load_hops` is the one place where a session's hops get their number: the position in time order.
"""
from __future__ import annotations

import dataclasses
import enum
import json
import os
import secrets
import stat
import sys
import time
from collections import defaultdict
from typing import Any

import orjson
from sqlalchemy import delete, event, func, insert, select, update
from sqlalchemy.engine import Engine
from sqlmodel import Session, SQLModel, col, create_engine

from authtrace.store import models
from authtrace.store.records import CaptureSession, Finding, Hop, Token, from_json, to_json

DEFAULT_DB = "authtrace.db"


class DatabaseError(Exception):
    """The store cannot be opened or written; the message is one sentence for the user."""


def url_for(db: str) -> str:
    return db if "://" in db else "sqlite:///" + os.path.abspath(db)


def _prepare_sqlite_file(path: str) -> None:
    """Create the file 0600 before SQLite does (it would honour the umask)."""
    if os.path.isdir(path):
        raise DatabaseError(f"{path} is a directory, not a database file.")
    try:
        fd = os.open(path, os.O_CREAT | os.O_EXCL | os.O_WRONLY, 0o600)
        os.close(fd)
    except FileExistsError:
        pass
    except OSError as e:
        raise DatabaseError(f"cannot create the database {path}: {e.strerror}.") from e


def _warn_if_readable(path: str) -> None:
    """A store holds decoded claims and the fingerprint key: say so when other users can read it.
    POSIX only (Windows reports group and other bits for every file)."""
    mode = os.stat(path).st_mode
    if os.name == "posix" and mode & (stat.S_IRWXG | stat.S_IRWXO):
        print(f"authtrace: warning: {path} can be read by other users (mode {stat.S_IMODE(mode):o}); "
              f"it holds decoded claims and the fingerprint key: chmod 600 {path}", file=sys.stderr)


def _dumps(v: Any) -> str:
    try:
        return orjson.dumps(v, option=orjson.OPT_NON_STR_KEYS).decode()
    except (TypeError, orjson.JSONEncodeError):  # lone surrogates, huge integers: the slower encoder copes,
        text = json.dumps(v, default=str, ensure_ascii=False)  # and a lone surrogate becomes "?"
        return text.encode("utf-8", "replace").decode("utf-8")


def _loads(text: str | bytes) -> Any:
    try:
        return orjson.loads(text)
    except orjson.JSONDecodeError:  # written by an older version with escaped lone surrogates
        return json.loads(text)


def open_db(db: str = DEFAULT_DB) -> Engine:
    url = url_for(db)
    if url.startswith("sqlite:///") and not url.endswith(":memory:"):
        _prepare_sqlite_file(url[len("sqlite:///"):])
    sqlite = url.startswith("sqlite")
    engine = create_engine(url, connect_args={"timeout": 30} if sqlite else {}, json_serializer=_dumps,
                           json_deserializer=_loads)
    if sqlite:
        @event.listens_for(engine, "connect")
        def _pragmas(dbapi_conn: Any, _record: Any) -> None:
            cur = dbapi_conn.cursor()
            cur.execute("PRAGMA journal_mode=WAL")
            cur.execute("PRAGMA synchronous=NORMAL")
            cur.close()
    try:
        SQLModel.metadata.create_all(engine)
    except Exception as e:
        raise DatabaseError(f"cannot use {db} as an authtrace database: {str(e).splitlines()[0]}") from e
    if url.startswith("sqlite:///") and not url.endswith(":memory:"):
        _warn_if_readable(url[len("sqlite:///"):])  # only once it is known to be a store
    return engine


def fingerprint_key(engine: Engine) -> bytes:
    """The random HMAC key of this store, created on first use."""
    with Session(engine) as s:
        row = s.get(models.Meta, "fingerprint_key")
        if row is None:
            row = models.Meta(key="fingerprint_key", value=secrets.token_hex(32))
            s.add(row)
            s.commit()
        return bytes.fromhex(row.value)


# ---- records <-> rows ---------------------------------------------------------------------------

def _column(v: Any) -> Any:
    if isinstance(v, enum.Enum):
        return v.value
    if dataclasses.is_dataclass(v) or isinstance(v, (tuple, dict)):
        return to_json(v) or None
    return v


_HOP_FIELDS = tuple(f.name for f in dataclasses.fields(Hop) if f.name not in ("tokens", "id", "number"))
_TOKEN_FIELDS = tuple(f.name for f in dataclasses.fields(Token) if f.init)


def hop_row(h: Hop, session_id: int) -> dict[str, Any]:
    row = {name: _column(getattr(h, name)) for name in _HOP_FIELDS}
    row["session_id"] = session_id
    return row


def token_row(t: Token, session_id: int, hop_id: int) -> dict[str, Any]:
    row = {name: _column(getattr(t, name)) for name in _TOKEN_FIELDS}
    row.update(session_id=session_id, hop_id=hop_id)
    return row


def new_session(engine: Engine, name: str, source: str, kind: str) -> int:
    with engine.begin() as conn:
        sid = conn.execute(insert(models.CaptureSession).values(name=name, source=source, kind=kind,
                                                                created=time.time())
                           .returning(col(models.CaptureSession.id))).scalar_one()
    return int(sid or 0)


def write_hops(engine: Engine, session_id: int, batch: list[Hop]) -> list[int]:
    """Insert hops and their tokens in one transaction; sets and returns the new hop ids in order."""
    if not batch:
        return []
    with engine.begin() as conn:
        rows = [hop_row(h, session_id) for h in batch]
        ids = [int(i or 0) for i in conn.execute(insert(models.Hop).returning(col(models.Hop.id),
                                                                       sort_by_parameter_order=True), rows).scalars()]
        for h, hid in zip(batch, ids, strict=True):
            h.id = hid
        tokens = [token_row(t, session_id, hid) for hid, h in zip(ids, batch, strict=True) for t in h.tokens]
        if tokens:
            conn.execute(insert(models.Token), tokens)
        started = [h.started for h in batch]
        cs = models.CaptureSession
        first, last = conn.execute(select(col(cs.first_seen), col(cs.last_seen)).where(col(cs.id) == session_id)).one()
        conn.execute(update(cs).where(col(cs.id) == session_id).values(
            hops=col(cs.hops) + len(rows),
            first_seen=min(started + ([first] if first is not None else [])),
            last_seen=max(started + ([last] if last is not None else []))))
    return ids


def update_session(engine: Engine, session_id: int, **values: Any) -> None:
    with engine.begin() as conn:
        conn.execute(update(models.CaptureSession).where(col(models.CaptureSession.id) == session_id).values(**values))


def set_signatures(engine: Engine, session_id: int, results: dict[str, Any]) -> None:
    """Record JWKS verification results (fingerprint -> verdict) found after the tokens were stored."""
    with engine.begin() as conn:
        for fp, verdict in results.items():
            conn.execute(update(models.Token)
                         .where(col(models.Token.session_id) == session_id, col(models.Token.fingerprint) == fp)
                         .values(signature=_column(verdict)))


# ---- reading ----------------------------------------------------------------------------------

def _session(row: Any) -> CaptureSession:
    s = from_json(CaptureSession, dict(row._mapping))
    assert s is not None  # every column of a session row is there
    return s


def sessions(engine: Engine) -> list[CaptureSession]:
    with engine.connect() as conn:
        rows = conn.execute(select(models.CaptureSession).order_by(col(models.CaptureSession.id)))
        return [_session(r) for r in rows]


def load_session(engine: Engine, session_id: int | None = None) -> CaptureSession | None:
    """A session by id, or the latest one when `session_id` is None."""
    q = select(models.CaptureSession)
    if session_id is None:
        q = q.order_by(col(models.CaptureSession.id).desc()).limit(1)
    else:
        q = q.where(col(models.CaptureSession.id) == session_id)
    with engine.connect() as conn:
        row = conn.execute(q).first()
    return _session(row) if row is not None else None


def load_hops(engine: Engine, session_id: int) -> list[Hop]:
    """A session's hops in time order, each with its tokens and its number (1, 2, … in that order)."""
    with engine.connect() as conn:
        rows = conn.execute(select(models.Hop).where(col(models.Hop.session_id) == session_id)
                            .order_by(col(models.Hop.started), col(models.Hop.id))).mappings().all()
        toks = conn.execute(select(models.Token).where(col(models.Token.session_id) == session_id)
                            .order_by(col(models.Token.id))).mappings().all()
    by_hop: dict[int, list[Token]] = defaultdict(list)
    for t in toks:
        tok = from_json(Token, dict(t))
        if tok is not None:
            by_hop[t["hop_id"]].append(tok)
    hops = []
    for r in rows:
        h = from_json(Hop, dict(r))
        if h is None:
            continue
        h.id = r["id"]
        h.tokens = by_hop.get(r["id"], [])
        hops.append(h)
    for n, h in enumerate(hops, 1):
        h.number = n
    return hops


def replace_findings(engine: Engine, session_id: int, findings: list[Finding]) -> None:
    """The latest analysis of a session, kept so `sessions` can count findings without the checks."""
    rows = [{"session_id": session_id, "kind": f.kind, "severity": f.severity.value, "title": f.title,
             "explanation": f.explanation, "causes": list(f.causes), "next_step": f.next_step,
             "evidence": [h.id for h in f.evidence], "details": to_json(f.details) or None} for f in findings]
    with engine.begin() as conn:
        conn.execute(delete(models.Finding).where(col(models.Finding.session_id) == session_id))
        if rows:
            conn.execute(insert(models.Finding), rows)


def finding_counts(engine: Engine) -> dict[int, dict[str, int]]:
    """session id -> {severity: count} from the stored findings (an SQL aggregate, no checks run)."""
    return _counts(engine, col(models.Finding.session_id), col(models.Finding.severity))


def role_counts(engine: Engine) -> dict[int, dict[str, int]]:
    """session id -> {role: count}, an SQL aggregate."""
    return _counts(engine, col(models.Hop.session_id), col(models.Hop.role))


def _counts(engine: Engine, session_col: Any, value_col: Any) -> dict[int, dict[str, int]]:
    out: dict[int, dict[str, int]] = defaultdict(dict)
    with engine.connect() as conn:
        for sid, value, n in conn.execute(select(session_col, value_col, func.count()).group_by(session_col,
                                                                                            value_col)):
            out[sid][value] = n
    return dict(out)
