"""Opening the database and writing hops.

SQLite by default (WAL, synchronous=NORMAL, file created 0600); any SQLAlchemy URL works.
Bulk writes go through Core inserts in batches: an ORM object and a commit per hop is ~40x
slower (PERF.md). Live capture hands batches to `HopWriter`, a background thread, so the
proxy's event loop never waits on the disk.
"""
from __future__ import annotations

import logging
import os
import queue
import secrets
import stat
import sys
import threading
import time
from dataclasses import dataclass, field
from typing import Callable, Iterable

from sqlalchemy import event, insert, update
from sqlalchemy.engine import Engine
from sqlmodel import Session, SQLModel, create_engine, select

from authtrace.store.models import CaptureSession, Finding, Hop, Meta, Token

log = logging.getLogger(__name__)
DEFAULT_DB = "authtrace.db"


class DatabaseError(Exception):
    """The database cannot be opened or written; the message is one sentence for the user."""


@dataclass
class NewHop:
    """A decoded hop on its way to the database, with the tokens it carried."""

    hop: dict
    tokens: list[dict] = field(default_factory=list)


def url_for(db: str) -> str:
    return db if "://" in db else "sqlite:///" + os.path.abspath(db)


def _prepare_sqlite_file(path: str) -> None:
    """Create the file 0600 before SQLite does (it would honour the umask), warn if others can read it."""
    if os.path.isdir(path):
        raise DatabaseError(f"{path} is a directory, not a database file.")
    try:
        fd = os.open(path, os.O_CREAT | os.O_EXCL | os.O_WRONLY, 0o600)
        os.close(fd)
    except FileExistsError:
        mode = os.stat(path).st_mode
        if mode & (stat.S_IRWXG | stat.S_IRWXO):
            print(
                f"authtrace: warning: {path} can be read by other users (mode {stat.S_IMODE(mode):o}); "
                f"it holds decoded claims and the fingerprint key: chmod 600 {path}",
                file=sys.stderr,
            )
    except OSError as e:
        raise DatabaseError(f"cannot create the database {path}: {e.strerror}.") from e


def open_db(db: str = DEFAULT_DB) -> Engine:
    url = url_for(db)
    if url.startswith("sqlite:///") and not url.endswith(":memory:"):
        _prepare_sqlite_file(url[len("sqlite:///"):])
    engine = create_engine(url, connect_args={"timeout": 30} if url.startswith("sqlite") else {})
    if url.startswith("sqlite"):
        @event.listens_for(engine, "connect")
        def _pragmas(dbapi_conn, _record):  # noqa: ANN001
            cur = dbapi_conn.cursor()
            cur.execute("PRAGMA journal_mode=WAL")
            cur.execute("PRAGMA synchronous=NORMAL")
            cur.close()
    try:
        SQLModel.metadata.create_all(engine)
    except Exception as e:  # a corrupt or foreign file: say so in one sentence
        raise DatabaseError(f"cannot use {db} as an authtrace database: {str(e).splitlines()[0]}") from e
    return engine


def fingerprint_key(engine: Engine) -> bytes:
    """The random HMAC key of this database, created on first use."""
    with Session(engine) as s:
        row = s.get(Meta, "fingerprint_key")
        if row is None:
            row = Meta(key="fingerprint_key", value=secrets.token_hex(32))
            s.add(row)
            s.commit()
        return bytes.fromhex(row.value)


def new_session(engine: Engine, name: str, source: str, kind: str) -> int:
    with Session(engine) as s:
        cs = CaptureSession(name=name, source=source, kind=kind, created=time.time())
        s.add(cs)
        s.commit()
        return cs.id


def write_hops(engine: Engine, session_id: int, batch: list[NewHop]) -> list[int]:
    """Insert hops and their tokens in one transaction; returns the new hop ids in order."""
    if not batch:
        return []
    with engine.begin() as conn:
        rows = [dict(h.hop, session_id=session_id) for h in batch]
        ids = list(conn.execute(insert(Hop).returning(Hop.id, sort_by_parameter_order=True), rows).scalars())
        tokens = [dict(t, session_id=session_id, hop_id=hid) for hid, h in zip(ids, batch) for t in h.tokens]
        if tokens:
            conn.execute(insert(Token), tokens)
        started = [r["started"] for r in rows]
        first, last = conn.execute(select(CaptureSession.first_seen, CaptureSession.last_seen)
                                   .where(CaptureSession.id == session_id)).one()
        conn.execute(
            update(CaptureSession)
            .where(CaptureSession.id == session_id)
            .values(hops=CaptureSession.hops + len(rows),
                    first_seen=min(started + ([first] if first is not None else [])),
                    last_seen=max(started + ([last] if last is not None else [])))
        )
    return ids


def update_session(engine: Engine, session_id: int, **values) -> None:
    with engine.begin() as conn:
        conn.execute(update(CaptureSession).where(CaptureSession.id == session_id).values(**values))


def set_signatures(engine: Engine, session_id: int, results: dict[str, str]) -> None:
    """Record JWKS verification results (fingerprint -> verified/failed) found after the tokens were stored."""
    with engine.begin() as conn:
        for fp, status in results.items():
            conn.execute(
                update(Token).where(Token.session_id == session_id, Token.fingerprint == fp).values(signature=status)
            )


class HopWriter:
    """Writes hops from a queue on a background thread: flushes every `interval` seconds and at close."""

    def __init__(self, engine: Engine, session_id: int, interval: float = 0.5,
                 on_stored: Callable[[list[NewHop], list[int]], None] | None = None):
        self.engine, self.session_id, self.interval, self.on_stored = engine, session_id, interval, on_stored
        self._q: queue.Queue = queue.Queue()
        self._thread = threading.Thread(target=self._run, name="authtrace-writer", daemon=True)
        self._thread.start()

    def put(self, hops: Iterable[NewHop]) -> None:
        for h in hops:
            self._q.put(("hop", h))

    def call(self, fn: Callable[[], None]) -> None:
        """Run fn on the writer thread after everything queued before it is stored."""
        self._q.put(("call", fn))

    def close(self) -> None:
        self._q.put(("stop", None))
        self._thread.join(timeout=30)

    def _store(self, batch: list[NewHop]) -> None:
        try:
            ids = write_hops(self.engine, self.session_id, batch)
        except Exception:  # one bad hop must not take the batch with it: retry one by one
            ids = []
            kept = []
            for h in batch:
                try:
                    ids += write_hops(self.engine, self.session_id, [h])
                    kept.append(h)
                except Exception as e:
                    log.error("authtrace: could not store a %s hop: %s", h.hop.get("role"), type(e).__name__)
            batch = kept
        if self.on_stored and ids:
            try:
                self.on_stored(batch, ids)
            except Exception:
                pass

    def _run(self) -> None:
        pending: list[NewHop] = []
        deadline = None
        while True:
            timeout = None if deadline is None else max(0.0, deadline - time.monotonic())
            try:
                what, item = self._q.get(timeout=timeout)
            except queue.Empty:
                what, item = "flush", None
            if what == "hop":
                pending.append(item)
                if deadline is None:
                    deadline = time.monotonic() + self.interval
                if len(pending) < 500:
                    continue
            if pending:
                batch, pending, deadline = pending, [], None
                self._store(batch)
            if what == "call":
                try:
                    item()
                except Exception as e:
                    log.error("authtrace: %s", e)
            if what == "stop":
                return


def sessions(engine: Engine) -> list[CaptureSession]:
    with Session(engine) as s:
        return list(s.exec(select(CaptureSession).order_by(CaptureSession.id)))


def load_session(engine: Engine, session_id: int | None = None) -> CaptureSession | None:
    with Session(engine) as s:
        q = select(CaptureSession)
        q = q.where(CaptureSession.id == session_id) if session_id else q.order_by(CaptureSession.id.desc())
        return s.exec(q).first()


def load_hops(engine: Engine, session_id: int) -> list[Hop]:
    with Session(engine) as s:
        return list(s.exec(select(Hop).where(Hop.session_id == session_id).order_by(Hop.seq, Hop.id)))


def load_tokens(engine: Engine, session_id: int) -> list[Token]:
    with Session(engine) as s:
        return list(s.exec(select(Token).where(Token.session_id == session_id).order_by(Token.id)))


def replace_findings(engine: Engine, session_id: int, findings: list[dict]) -> None:
    """Findings are recomputed on every report, so an old database benefits from newer checks."""
    from sqlalchemy import delete

    with engine.begin() as conn:
        conn.execute(delete(Finding).where(Finding.session_id == session_id))
        if findings:
            conn.execute(insert(Finding), [dict(f, session_id=session_id) for f in findings])
