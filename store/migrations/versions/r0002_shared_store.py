"""A store a team shares (issue 14): the facet and sighting tables that `sessions` filters and
`find` look up, and one index for a session's hops in time order. Existing hops are indexed here,
with the same code that indexes new ones (`search.write_index`). Adds only what older versions
ignore, so opening a store runs it."""
from __future__ import annotations

import sqlalchemy as sa
from alembic import op
from sqlmodel.sql.sqltypes import AutoString

from authtrace.store import db, models, search

revision = "0002"
down_revision = "0001"
branch_labels = None
depends_on = None
automatic = True


def upgrade() -> None:
    op.create_table(
        "sighting",
        sa.Column("id", sa.Integer(), primary_key=True),
        sa.Column("digest", AutoString(), nullable=False),
        sa.Column("fingerprint", AutoString(), nullable=False),
        sa.Column("session_id", sa.Integer(), sa.ForeignKey("capturesession.id"), nullable=False),
        sa.Column("hop_id", sa.Integer(), sa.ForeignKey("hop.id"), nullable=False),
        sa.Column("place", AutoString(), nullable=False))
    op.create_index("ix_sighting_digest", "sighting", ["digest"])
    op.create_index("ix_sighting_session_id", "sighting", ["session_id"])
    op.create_table(
        "facet",
        sa.Column("session_id", sa.Integer(), sa.ForeignKey("capturesession.id"), primary_key=True),
        sa.Column("name", AutoString(), primary_key=True),
        sa.Column("value", AutoString(), primary_key=True),
        sa.Column("hops", sa.Integer(), nullable=False))
    op.create_index("ix_facet_name_value", "facet", ["name", "value"])
    op.drop_index("ix_hop_session_id", table_name="hop")
    op.create_index("ix_hop_session_started", "hop", ["session_id", "started"])
    conn = op.get_bind()
    for (sid,) in conn.execute(sa.select(models.CaptureSession.id)).all():  # type: ignore[call-overload]
        search.write_index(conn, sid, db.read_hops(conn, sid))


def downgrade() -> None:
    op.drop_index("ix_hop_session_started", table_name="hop")
    op.create_index("ix_hop_session_id", "hop", ["session_id"])
    op.drop_table("facet")
    op.drop_table("sighting")
