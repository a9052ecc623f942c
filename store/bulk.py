"""Bulk inserts: the one write that runs for every hop of a 100 MB capture."""
from __future__ import annotations

from typing import Any

from sqlalchemy import insert
from sqlalchemy.engine import Connection


def insert_many(conn: Connection, model: Any, rows: list[dict[str, Any]]) -> None:
    """Insert rows that all have the same keys. In SQLite one plain `executemany` with the columns'
    own bind conversions (SQLAlchemy's insert compiles and converts every row: twice the time);
    elsewhere SQLAlchemy's batched insert."""
    if not rows:
        return
    if conn.dialect.name != "sqlite":
        conn.execute(insert(model), rows)
        return
    table = model.__table__
    names = list(rows[0])
    convert = [(n, table.c[n].type.bind_processor(conn.dialect)) for n in names]
    sql = (f'INSERT INTO "{table.name}" ({", ".join(f"{chr(34)}{n}{chr(34)}" for n in names)}) '
           f'VALUES ({", ".join("?" * len(names))})')
    conn.exec_driver_sql(sql, [tuple(r[n] if fn is None or r[n] is None else fn(r[n]) for n, fn in convert)
                               for r in rows])
