"""deliveries.rewrite_of: a delivery whose content is the server's rewrite of an
earlier delivery's message under the same UIDL; collection_runs.rewritten counts them.

Some servers change stored mail on their own: GNU Mailutils with an mbox adds
``Status:``, ``X-UID`` and ``X-IMAPbase`` headers at the end of the first
session, so the same delivery returns other bytes from then on. Both versions
are kept exactly (DESIGN.md rules 2 and 3: different bytes are different
content); the later delivery points with ``rewrite_of`` at the superseded one
it replaces, so counts, reports and ``show`` can tell a rewrite from new mail.

No data to carry: NULL (rewrite_of) and 0 (rewritten) for every existing row.
Code of revision 0002 may still run against this schema (it never sets the
columns; ``rewritten`` has a server default for it), so schema_compat keeps
``min_code_revision`` at 0002.

Revision ID: 0003
Revises: 0002
Create Date: 2026-12-04
"""

import sqlalchemy as sa
from alembic import op

revision = "0003"
down_revision = "0002"
branch_labels = None
depends_on = None

BigID = sa.BigInteger().with_variant(sa.Integer(), "sqlite")
INDEX = "ix_deliveries_rewrite_of"


def upgrade() -> None:
    # MariaDB commits DDL statement by statement: skip what a stopped run did.
    inspector = sa.inspect(op.get_bind())
    if "rewrite_of" not in {c["name"] for c in inspector.get_columns("deliveries")}:
        # No foreign key (see archiver/db/schema.py): a plain column and its index.
        op.add_column("deliveries", sa.Column("rewrite_of", BigID, nullable=True))
    if INDEX not in {i["name"] for i in sa.inspect(op.get_bind()).get_indexes("deliveries")}:
        op.create_index(INDEX, "deliveries", ["rewrite_of"])
    if "rewritten" not in {c["name"] for c in inspector.get_columns("collection_runs")}:
        op.add_column("collection_runs", sa.Column("rewritten", sa.BigInteger(), nullable=False,
                                                   server_default=sa.text("0")))


def downgrade() -> None:
    with op.batch_alter_table("collection_runs") as batch:
        batch.drop_column("rewritten")
    op.drop_index(INDEX, table_name="deliveries")
    with op.batch_alter_table("deliveries") as batch:
        batch.drop_column("rewrite_of")
