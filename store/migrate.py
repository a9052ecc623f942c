"""Schema versions: every store carries one (Alembic's `alembic_version` table), and opening a store
brings it to this version's schema, under a lock, so that processes opening one store at the same
moment never create or convert it twice (PostgreSQL: a transaction-scoped advisory lock; SQLite:
`BEGIN IMMEDIATE`, the database's own write lock; both schema changes and data conversions run in
that one transaction, so a failed upgrade leaves the store as it was).

* an empty database gets today's tables and is stamped with the newest revision;
* a store one or more revisions behind is upgraded when every pending revision is `automatic`
  (adds tables, columns or indexes that older versions ignore); a revision that rewrites data
  (`automatic = False`) is only run by `authtrace db upgrade`, and opening the store says so;
* a store without a version was made before versions existed: round 1's schema (the hop table has
  a `seq` column) is at no revision, the records schema of round 2 is at revision 0001;
* a store from a newer authtrace is refused.

Revisions live in `migrations/versions/`, one file each; `tests/test_migrate.py` checks that the
revisions applied to an old store give exactly the tables `models.py` defines, on both backends.
"""
from __future__ import annotations

import os
from typing import TYPE_CHECKING, Any

from sqlalchemy import inspect, text
from sqlalchemy.engine import Connection, Engine
from sqlmodel import SQLModel

from authtrace.store import models  # noqa: F401 - the tables, registered on SQLModel.metadata
from authtrace.store.migrations import HEAD

if TYPE_CHECKING:
    from alembic.script import ScriptDirectory

EMPTY = "empty"  # no authtrace table at all
BASE = "base"  # round 1's schema, before versions
ROUND2 = "0001"  # the records schema of round 2, before versions
_LOCK_KEY = 0x61757468  # "auth": the advisory lock that PostgreSQL processes migrating one store share


class SchemaError(Exception):
    """The store's schema cannot be used as it is; the message is one sentence for the user."""


def _script() -> ScriptDirectory:
    """Alembic's view of the revisions. Imported only when a store is not at HEAD: the usual open
    reads one row and leaves Alembic (a third of a second of start-up) unimported."""
    from alembic.config import Config
    from alembic.script import ScriptDirectory

    cfg = Config()
    cfg.set_main_option("script_location", os.path.join(os.path.dirname(os.path.abspath(__file__)), "migrations"))
    return ScriptDirectory.from_config(cfg)


def head() -> str:
    return HEAD


def state(conn: Connection) -> str:
    """The store's revision, EMPTY, or BASE (round 1, no version)."""
    tables = set(inspect(conn).get_table_names())
    if "alembic_version" in tables:
        revs = conn.execute(text("SELECT version_num FROM alembic_version")).scalars().all()
        return revs[0] if len(revs) == 1 else EMPTY
    if "hop" not in tables:
        return EMPTY
    cols = {c["name"] for c in inspect(conn).get_columns("hop")}
    return BASE if "seq" in cols else ROUND2


def _lock(conn: Connection) -> None:
    """Take the store's migration lock for the rest of the connection's transaction."""
    name = conn.dialect.name
    if name == "postgresql":
        conn.execute(text("SELECT pg_advisory_xact_lock(:k)"), {"k": _LOCK_KEY})
    elif name == "sqlite":
        conn.exec_driver_sql("BEGIN IMMEDIATE")
    # other backends: no lock; two processes creating one store at once may collide there


def pending(script: ScriptDirectory, current: str) -> list[Any]:
    """The revisions from `current` to head, oldest first."""
    down = None if current == BASE else current
    return list(reversed(list(script.iterate_revisions(script.get_current_head(), down))))


def ensure(engine: Engine, name: str, upgrade: bool = False, readonly: bool = False) -> tuple[str, str]:
    """Bring the store to the head revision, or raise SchemaError. Returns (revision before, after);
    `name` is how the user wrote the store, for the sentences. `upgrade` also runs the revisions that
    rewrite data; `readonly` changes nothing and refuses a store that is not at head."""
    target = HEAD
    with engine.connect() as conn:  # the usual case: already at head, no lock taken
        now = state(conn)
    if now == target:
        return now, now
    from alembic.runtime.migration import MigrationContext

    script = _script()
    if readonly:
        if now == EMPTY:
            raise SchemaError(f"{name} holds no authtrace store yet: import or record a capture into it first.")
        raise _refusal(name, now, target, script)
    with engine.connect() as conn:
        _lock(conn)
        now = state(conn)  # again: another process may have done it while this one waited
        if now == target:
            conn.commit()
            return now, now
        if now == EMPTY:
            SQLModel.metadata.create_all(conn)
            MigrationContext.configure(conn).stamp(script, target)
            conn.commit()
            return EMPTY, target
        todo = _checked(script, name, now)
        if not upgrade and not all(getattr(r.module, "automatic", False) for r in todo):
            conn.rollback()
            raise _refusal(name, now, target, script)
        _run(script, conn, now, target)
        conn.commit()
    return now, target


def _checked(script: ScriptDirectory, name: str, now: str) -> list[Any]:
    from alembic.script.revision import RevisionError

    try:
        return pending(script, now)
    except RevisionError as e:  # an unknown revision: a newer authtrace made the store
        raise SchemaError(f"{name} was made by a newer authtrace (schema {now}); this one knows schemas up to "
                          f"{script.get_current_head()}: upgrade authtrace to use it.") from e


def _refusal(name: str, now: str, target: str, script: ScriptDirectory) -> SchemaError:
    _checked(script, name, now)  # a newer store gets that sentence instead
    was = "round 1's, without a version" if now == BASE else now
    return SchemaError(f"{name} has an older authtrace schema ({was}) that this version ({target}) must convert: "
                       f"back it up, then run `authtrace db upgrade --db {name}`.")


def _run(script: ScriptDirectory, conn: Connection, now: str, target: str) -> None:
    """Run the revisions after `now` up to `target` on `conn`, inside its transaction."""
    from alembic.config import Config
    from alembic.runtime.environment import EnvironmentContext
    from alembic.runtime.migration import MigrationContext

    if now != BASE and "alembic_version" not in inspect(conn).get_table_names():
        MigrationContext.configure(conn).stamp(script, now)  # round 2's store: versioned from here on

    def steps(rev: Any, _ctx: Any) -> Any:
        return script._upgrade_revs(target, rev)

    with EnvironmentContext(Config(), script, fn=steps, destination_rev=target) as env:
        env.configure(connection=conn, target_metadata=SQLModel.metadata, render_as_batch=True,
                      transactional_ddl=True)
        with env.begin_transaction():
            env.run_migrations()
