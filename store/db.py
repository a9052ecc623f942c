"""Opening a store, and moving records in and out of it.

SQLite by default (WAL, synchronous=NORMAL, file created 0600); PostgreSQL for a store a team
shares (`postgresql://user@host/db`, with the `authtrace[postgres]` extra); any SQLAlchemy URL. Opening
brings the schema to this version (`migrate.py`). Bulk writes are Core inserts in batches: an ORM
object and a commit per hop is ~40x slower (PERF.md). Records map to rows by their field names;
nested records live in JSON columns; each batch of hops also adds to the search index (`search.py`).
Many processes may write one store at once: each writes its own session.

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
from sqlalchemy.engine import Connection, Engine, make_url
from sqlalchemy.exc import ArgumentError, SQLAlchemyError
from sqlmodel import col, create_engine

from authtrace.store import migrate, models, search
from authtrace.store.bulk import insert_many
from authtrace.store.records import CaptureSession, Finding, Hop, Token, from_json, row_reader, to_json

DEFAULT_DB = "authtrace.db"


class DatabaseError(Exception):
    """The store cannot be opened or written; the message is one sentence for the user."""


def url_for(db: str) -> str:
    """A file path or a URL -> the SQLAlchemy URL; PostgreSQL without a driver named gets psycopg 3."""
    if "://" not in db:
        return "sqlite:///" + os.path.abspath(db)
    for plain in ("postgresql://", "postgres://"):
        if db.startswith(plain):
            return "postgresql+psycopg://" + db[len(plain):]
    return db


def shown(db: str) -> str:
    """The store as a user may see it: a URL's password masked."""
    if "://" not in db:
        return db
    try:
        return make_url(db).render_as_string(hide_password=True)
    except ArgumentError:
        return db


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


def open_db(db: str = DEFAULT_DB, upgrade: bool = False, readonly: bool = False) -> Engine:
    """An engine on the store, its schema at this version (created, or upgraded when that is safe;
    `upgrade` also converts data, as `authtrace db upgrade` does). `readonly` makes every connection
    read-only in the database itself (SQLite `query_only`, PostgreSQL read-only transactions) and
    changes nothing, not even the schema. Every failure is a DatabaseError with one sentence."""
    url = url_for(db)
    name = shown(db)
    sqlite = url.startswith("sqlite")
    if url.startswith("sqlite:///") and not url.endswith(":memory:"):
        path = url[len("sqlite:///"):]
        if readonly and not os.path.exists(path):
            raise DatabaseError(f"no store at {path}.")
        if not readonly:
            _prepare_sqlite_file(path)
    args: dict[str, Any] = {"timeout": 30} if sqlite else {}
    if readonly and url.startswith("postgresql"):
        args["options"] = "-c default_transaction_read_only=on"
    try:
        engine = create_engine(url, connect_args=args, json_serializer=_dumps, json_deserializer=_loads,
                               pool_pre_ping=not sqlite)
    except ImportError as e:
        if url.startswith("postgresql"):
            raise DatabaseError(f"{name} is a PostgreSQL store, which needs the psycopg driver: "
                                "pip install 'authtrace[postgres]'.") from e
        raise DatabaseError(f"cannot open {name}: its database driver is not installed ({e}).") from e
    except ArgumentError as e:
        raise DatabaseError(f"{name} is neither a file path nor a database URL ({e}).") from e
    if sqlite:
        @event.listens_for(engine, "connect")
        def _pragmas(dbapi_conn: Any, _record: Any) -> None:
            cur = dbapi_conn.cursor()
            if readonly:
                cur.execute("PRAGMA query_only=ON")
            else:
                _wal(cur)
                cur.execute("PRAGMA synchronous=NORMAL")
            cur.close()
    try:
        before, after = migrate.ensure(engine, name, upgrade=upgrade, readonly=readonly)
    except migrate.SchemaError as e:
        engine.dispose()
        raise DatabaseError(str(e)) from None
    except (SQLAlchemyError, OSError) as e:
        engine.dispose()
        raise DatabaseError(f"cannot use {name} as an authtrace store: {_first_line(e)}") from e
    if before not in (after, migrate.EMPTY):
        print(f"authtrace: upgraded {name} from schema {before} to {after}", file=sys.stderr)
    if url.startswith("sqlite:///") and not url.endswith(":memory:"):
        _warn_if_readable(url[len("sqlite:///"):])  # only once it is known to be a store
    return engine


def _wal(cur: Any, wait: float = 30.0) -> None:
    """Put the SQLite file in WAL mode (kept in the file: later openers only read it). Switching needs
    the file to itself, and SQLite says "locked" at once, without its busy timeout, when another
    process opens the new file at the same moment: retry for up to `wait` seconds."""
    import sqlite3

    end = time.monotonic() + wait
    while True:
        try:
            if str(cur.execute("PRAGMA journal_mode").fetchone()[0]).lower() != "wal":
                cur.execute("PRAGMA journal_mode=WAL")
            return
        except sqlite3.OperationalError as e:
            if "locked" not in str(e) or time.monotonic() > end:
                raise
            time.sleep(0.05)


def _first_line(e: BaseException) -> str:
    msg = str(getattr(e, "orig", None) or e).strip()
    return (msg.splitlines() or [type(e).__name__])[0][:300]


def fingerprint_key(engine: Engine) -> bytes:
    """The store's random HMAC key, created on first use. One per store, also when many processes
    ask at once: each inserts its candidate and ignores a conflict, then all read the one that won."""
    m = models.Meta
    with engine.connect() as conn:
        value = conn.execute(select(col(m.value)).where(col(m.key) == "fingerprint_key")).scalar_one_or_none()
    if value is None:
        with engine.begin() as conn:
            _insert_ignoring_conflict(conn, {"key": "fingerprint_key", "value": secrets.token_hex(32)})
        with engine.connect() as conn:
            value = conn.execute(select(col(m.value)).where(col(m.key) == "fingerprint_key")).scalar_one()
    return bytes.fromhex(value)


def _insert_ignoring_conflict(conn: Connection, row: dict[str, Any]) -> None:
    name = conn.dialect.name
    if name in ("postgresql", "sqlite"):
        from sqlalchemy.dialects import postgresql, sqlite

        ins = postgresql.insert if name == "postgresql" else sqlite.insert
        conn.execute(ins(models.Meta).values(**row).on_conflict_do_nothing())
        return
    try:  # elsewhere: a savepoint, so the loser's unique violation is undone and the transaction goes on
        with conn.begin_nested():
            conn.execute(insert(models.Meta).values(**row))
    except SQLAlchemyError:
        pass


# ---- records <-> rows ---------------------------------------------------------------------------

def _column(v: Any) -> Any:
    if v is None or type(v) in _SCALARS:  # most fields: first, and without the dataclass machinery
        return v
    if isinstance(v, enum.Enum):
        return v.value
    if dataclasses.is_dataclass(v) or isinstance(v, (tuple, dict)):
        return to_json(v) or None
    return v


_SCALARS = frozenset({str, int, float, bool})
_read_hop = row_reader(Hop)
_read_token = row_reader(Token)
_HOP_FIELDS = tuple(f.name for f in dataclasses.fields(Hop) if f.name not in ("tokens", "id", "number"))
_TOKEN_FIELDS = tuple(f.name for f in dataclasses.fields(Token) if f.init)


def hop_row(h: Hop, session_id: int) -> dict[str, Any]:
    row = {name: v if (v := getattr(h, name)) is None or type(v) in _SCALARS else _column(v) for name in _HOP_FIELDS}
    row["session_id"] = session_id
    return row


def token_row(t: Token, session_id: int, hop_id: int) -> dict[str, Any]:
    row = {name: v if (v := getattr(t, name)) is None or type(v) in _SCALARS else _column(v) for name in _TOKEN_FIELDS}
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
        ids = _insert_hops(conn, rows)
        for h, hid in zip(batch, ids, strict=True):
            h.id = hid
        tokens = [token_row(t, session_id, hid) for hid, h in zip(ids, batch, strict=True) for t in h.tokens]
        if tokens:
            insert_many(conn, models.Token, tokens)
        search.write_index(conn, session_id, batch)
        started = [h.started for h in batch]
        cs = models.CaptureSession
        first, last = conn.execute(select(col(cs.first_seen), col(cs.last_seen)).where(col(cs.id) == session_id)).one()
        conn.execute(update(cs).where(col(cs.id) == session_id).values(
            hops=col(cs.hops) + len(rows),
            first_seen=min(started + ([first] if first is not None else [])),
            last_seen=max(started + ([last] if last is not None else []))))
    return ids


def _insert_hops(conn: Connection, rows: list[dict[str, Any]]) -> list[int]:
    """Insert hop rows (of one session); their new ids in order. SQLite: from its first insert the
    transaction holds the database's only write lock, so the rows take the ids after the largest one,
    in order; checked (n rows of this session between the first and the last id) before the ids are
    used. Elsewhere: RETURNING, sorted by parameter order."""
    hop = models.Hop
    if conn.dialect.name == "sqlite":
        table = insert(hop).table.name
        insert_many(conn, hop, rows)
        last = int(conn.exec_driver_sql(f'SELECT max(id) FROM "{table}"').scalar_one())
        first = last - len(rows) + 1
        mine = conn.exec_driver_sql(f'SELECT count(*) FROM "{table}" WHERE id BETWEEN ? AND ? AND session_id = ?',
                                    (first, last, rows[0]["session_id"])).scalar_one()
        if mine != len(rows):  # pragma: no cover - a store whose rowids are not sequential
            raise DatabaseError("the store did not number new hops in order; nothing was written")
        return list(range(first, last + 1))
    return [int(i or 0) for i in conn.execute(insert(hop).returning(col(hop.id), sort_by_parameter_order=True),
                                              rows).scalars()]


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


def sessions(engine: Engine, flt: search.SessionFilter | None = None, limit: int | None = None
             ) -> list[CaptureSession]:
    """The capture sessions that match the filter, oldest first; with `limit`, the newest `limit` of them."""
    q = search.session_query(flt or search.SessionFilter())
    if limit:
        q = q.order_by(None).order_by(col(models.CaptureSession.id).desc()).limit(limit)
    with engine.connect() as conn:
        rows = [_session(r) for r in conn.execute(q)]
    return sorted(rows, key=lambda s: s.id or 0)


def count_sessions(engine: Engine, flt: search.SessionFilter | None = None) -> int:
    q = search.session_query(flt or search.SessionFilter()).order_by(None).subquery()
    with engine.connect() as conn:
        return int(conn.execute(select(func.count()).select_from(q)).scalar_one())


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
        return read_hops(conn, session_id)


def read_hops(conn: Connection, session_id: int) -> list[Hop]:
    """`load_hops` on an open connection (a migration's, inside its transaction)."""
    result = conn.execute(select(models.Hop).where(col(models.Hop.session_id) == session_id)
                          .order_by(col(models.Hop.started), col(models.Hop.id)))
    hop_keys, rows = list(result.keys()), result.all()
    result = conn.execute(select(models.Token).where(col(models.Token.session_id) == session_id)
                          .order_by(col(models.Token.id)))
    token_keys, toks = list(result.keys()), result.all()
    by_hop: dict[int, list[Token]] = defaultdict(list)
    for t in toks:
        row = dict(zip(token_keys, t, strict=True))
        try:
            by_hop[row["hop_id"]].append(_read_token(row))
        except TypeError:  # a required field missing: not a token this version can read
            continue
    hops = []
    for r in rows:
        row = dict(zip(hop_keys, r, strict=True))
        try:
            h = _read_hop(row)
        except TypeError:
            continue
        h.id = row["id"]
        h.tokens = by_hop.get(row["id"], [])
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


def finding_counts(engine: Engine, session_ids: list[int] | None = None) -> dict[int, dict[str, int]]:
    """session id -> {severity: count} from the stored findings (an SQL aggregate, no checks run)."""
    f = models.Finding
    q = select(col(f.session_id), col(f.severity), func.count()).group_by(col(f.session_id), col(f.severity))
    if session_ids is not None:
        q = q.where(col(f.session_id).in_(session_ids))
    out: dict[int, dict[str, int]] = defaultdict(dict)
    with engine.connect() as conn:
        for sid, value, n in conn.execute(q):
            out[sid][value] = n
    return dict(out)


def role_counts(engine: Engine, session_ids: list[int] | None = None) -> dict[int, dict[str, int]]:
    """session id -> {role: hops}, counted as the hops were written (the `role` facet)."""
    return search.facet_counts(engine, "role", session_ids)


# ---- retention ----------------------------------------------------------------------------------

_DELETE_CHUNK = 10

def sessions_before(engine: Engine, before: float) -> list[CaptureSession]:
    """Sessions whose last hop (or, without hops, their creation) is older than `before` (epoch s)."""
    cs = models.CaptureSession
    q = (select(cs).where(func.coalesce(col(cs.last_seen), col(cs.created)) < before).order_by(col(cs.id)))
    with engine.connect() as conn:
        return [_session(r) for r in conn.execute(q)]


def delete_sessions(engine: Engine, session_ids: list[int]) -> dict[str, int]:
    """Delete sessions with everything kept for them; rows removed per table. A few sessions per
    transaction: each goes whole or not at all, and a long prune never holds a SQLite store's write
    lock for so long that a recorder or importer writing meanwhile gives up."""
    m = models
    children: list[tuple[str, Any]] = [("sighting", m.Sighting.session_id), ("facet", m.Facet.session_id),
                                       ("finding", m.Finding.session_id), ("token", m.Token.session_id),
                                       ("hop", m.Hop.session_id), ("capturesession", m.CaptureSession.id)]
    removed = dict.fromkeys((name for name, _ in children), 0)
    for k in range(0, len(session_ids), _DELETE_CHUNK):
        chunk = session_ids[k:k + _DELETE_CHUNK]
        with engine.begin() as conn:
            for name, key in children:  # children first: PostgreSQL holds the foreign keys
                table = key.class_.__table__
                removed[name] += conn.execute(delete(table).where(col(key).in_(chunk))).rowcount
    return removed
