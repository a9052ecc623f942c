"""Round 1's hop columns become the records' fields of round 2.

Round 1 kept a hop's decoded parts in a few catch-all JSON columns; round 2 maps the `Hop` record
field by field. The data moves, it is not dropped: `response` -> `answer`, `state_decoded` ->
`state_info`, `headers` -> `request_headers` / `response_headers`, `cookies` -> `cookies_sent` /
`cookies_set`, a `note` saying the hop was delivered in a Location fragment -> `from_fragment`, and
error fields that the `ErrorAnswer` record has no field for -> its `extra`. `seq` goes: hops are
ordered by start time. Rewrites every hop, so it runs only by `authtrace db upgrade`.
"""
from __future__ import annotations

from typing import Any

import sqlalchemy as sa
from alembic import op

revision = "0001"
down_revision = None
branch_labels = None
depends_on = None
automatic = False

_NEW = ("answer", "state_info", "request_headers", "response_headers", "cookies_sent", "cookies_set")
_ERROR_FIELDS = frozenset({"error", "error_description", "error_codes", "error_uri", "suberror", "trace_id",
                           "correlation_id", "timestamp", "message", "extra"})
FRAGMENT_NOTE = "delivered in the fragment"  # how round 1 began the note of a derived callback
CHUNK = 2000


def _dict(v: Any) -> dict[str, Any]:
    return v if isinstance(v, dict) else {}


def _error(e: Any) -> Any:
    """Round 1 kept every error field side by side; the record keeps the unknown ones in `extra`."""
    if not isinstance(e, dict):
        return e
    out = {k: v for k, v in e.items() if k in _ERROR_FIELDS}
    extra = {k: v if isinstance(v, str) else str(v) for k, v in e.items()
             if k not in _ERROR_FIELDS and v not in (None, "")}
    if extra:
        out["extra"] = {**_dict(out.get("extra")), **extra}
    return out


def convert(row: Any) -> dict[str, Any]:
    """One round-1 hop row -> the values of its round-2 columns."""
    headers, cookies = _dict(row.headers), _dict(row.cookies)
    sent = cookies.get("sent")
    if isinstance(sent, list):  # names only
        sent = {str(n): "" for n in sent}
    return {"b_id": row.id, "answer": row.response or None, "state_info": row.state_decoded or None,
            "request_headers": headers.get("request") or None, "response_headers": headers.get("response") or None,
            "cookies_sent": sent or None, "cookies_set": cookies.get("set") or None, "error": _error(row.error),
            "from_fragment": bool(row.note and str(row.note).startswith(FRAGMENT_NOTE))}


def upgrade() -> None:
    with op.batch_alter_table("hop") as b:
        for name in _NEW:
            b.add_column(sa.Column(name, sa.JSON(), nullable=True))
        b.add_column(sa.Column("from_fragment", sa.Boolean(), nullable=False, server_default=sa.false()))
    json_cols = ("response", "state_decoded", "headers", "cookies", "error", *_NEW)
    hop = sa.table("hop", sa.column("id", sa.Integer), sa.column("note", sa.String),
                   sa.column("from_fragment", sa.Boolean), *(sa.column(c, sa.JSON) for c in json_cols))
    conn = op.get_bind()
    last = -1
    while True:
        rows = conn.execute(sa.select(hop.c.id, hop.c.response, hop.c.state_decoded, hop.c.headers, hop.c.cookies,
                                      hop.c.error, hop.c.note)
                            .where(hop.c.id > last).order_by(hop.c.id).limit(CHUNK)).all()
        if not rows:
            break
        last = rows[-1].id
        conn.execute(sa.update(hop).where(hop.c.id == sa.bindparam("b_id")), [convert(r) for r in rows])
    with op.batch_alter_table("hop") as b:
        for name in ("response", "state_decoded", "headers", "cookies", "note", "seq"):
            b.drop_column(name)
    op.create_index("ix_finding_kind", "finding", ["kind"])


def downgrade() -> None:
    raise NotImplementedError("round 1's schema cannot hold round 2's records")
