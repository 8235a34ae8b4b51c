"""Initial archive schema: accounts, messages and their content, deliveries,
addresses, attachments, search text, collection runs and the audit trail.

Revision ID: 0001
Revises:
Create Date: 2026-11-26
"""

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import mysql

revision = "0001"
down_revision = None
branch_labels = None
depends_on = None

# Types are spelled out here rather than imported from archiver: a migration
# must keep meaning what it meant when it was written.
MYSQL = ("mysql", "mariadb")
BigID = sa.BigInteger().with_variant(sa.Integer(), "sqlite")
Blob = sa.LargeBinary().with_variant(mysql.LONGBLOB(), *MYSQL)
LongText = sa.Text().with_variant(mysql.LONGTEXT(), *MYSQL)


def utc():
    return sa.DateTime(timezone=True).with_variant(mysql.DATETIME(fsp=6), *MYSQL)


def ascii_bin(n):
    return sa.String(n).with_variant(mysql.VARCHAR(n, charset="ascii", collation="ascii_bin"), *MYSQL)


def utf8_bin(n):
    return sa.String(n).with_variant(
        mysql.VARCHAR(n, charset="utf8mb4", collation="utf8mb4_bin"), *MYSQL
    )


def pk():
    return sa.Column("id", BigID, primary_key=True, autoincrement=True)


TABLE_OPTS = {"mysql_engine": "InnoDB", "mysql_charset": "utf8mb4", "mariadb_engine": "InnoDB",
              "mariadb_charset": "utf8mb4"}


def upgrade() -> None:
    op.create_table(
        "accounts",
        pk(),
        sa.Column("name", utf8_bin(64), nullable=False),
        sa.Column("created_at", utc(), nullable=False),
        sa.Column("lease_owner", sa.String(200), nullable=True),
        sa.Column("lease_expires_at", utc(), nullable=True),
        sa.PrimaryKeyConstraint("id", name="pk_accounts"),
        sa.UniqueConstraint("name", name="uq_accounts_name"),
        **TABLE_OPTS,
    )
    op.create_table(
        "messages",
        pk(),
        sa.Column("sha256", ascii_bin(64), nullable=False),
        sa.Column("size", sa.BigInteger(), nullable=False),
        sa.Column("archived_at", utc(), nullable=False),
        sa.Column("compression", sa.String(8), nullable=False),
        sa.Column("chunk_count", sa.Integer(), nullable=False),
        sa.Column("stored_size", sa.BigInteger(), nullable=False),
        sa.Column("message_id_header", sa.String(255), nullable=True),
        sa.Column("subject", LongText, nullable=True),
        sa.Column("from_address", sa.String(320), nullable=True),
        sa.Column("from_display", sa.String(500), nullable=True),
        sa.Column("date", utc(), nullable=True),
        sa.Column("sort_date", utc(), nullable=False),
        sa.Column("has_attachments", sa.Boolean(), nullable=False),
        sa.Column("parse_defects", sa.String(1000), nullable=True),
        sa.PrimaryKeyConstraint("id", name="pk_messages"),
        sa.UniqueConstraint("sha256", name="uq_messages_sha256"),
        sa.CheckConstraint("size >= 0", name="ck_messages_size_nonnegative"),
        **TABLE_OPTS,
    )
    op.create_index("ix_messages_archived_at", "messages", ["archived_at"])
    op.create_index("ix_messages_message_id_header", "messages", ["message_id_header"])
    op.create_index("ix_messages_sort_date", "messages", ["sort_date"])

    op.create_table(
        "message_chunks",
        sa.Column("message_id", BigID, nullable=False),
        sa.Column("seq", sa.Integer(), nullable=False),
        sa.Column("data", Blob, nullable=False),
        sa.PrimaryKeyConstraint("message_id", "seq", name="pk_message_chunks"),
        sa.ForeignKeyConstraint(
            ["message_id"], ["messages.id"], ondelete="CASCADE",
            name="fk_message_chunks_message_id_messages",
        ),
        **TABLE_OPTS,
    )
    op.create_table(
        "message_texts",
        sa.Column("message_id", BigID, nullable=False),
        sa.Column("body", LongText, nullable=False),
        sa.PrimaryKeyConstraint("message_id", name="pk_message_texts"),
        sa.ForeignKeyConstraint(
            ["message_id"], ["messages.id"], ondelete="CASCADE",
            name="fk_message_texts_message_id_messages",
        ),
        **TABLE_OPTS,
    )
    op.create_table(
        "message_addresses",
        pk(),
        sa.Column("message_id", BigID, nullable=False),
        sa.Column("role", sa.String(16), nullable=False),
        sa.Column("position", sa.Integer(), nullable=False),
        sa.Column("address", sa.String(320), nullable=False),
        sa.Column("domain", sa.String(255), nullable=True),
        sa.Column("display_name", sa.String(500), nullable=True),
        sa.PrimaryKeyConstraint("id", name="pk_message_addresses"),
        sa.ForeignKeyConstraint(
            ["message_id"], ["messages.id"], ondelete="CASCADE",
            name="fk_message_addresses_message_id_messages",
        ),
        **TABLE_OPTS,
    )
    op.create_index("ix_message_addresses_address", "message_addresses", ["address"])
    op.create_index("ix_message_addresses_domain", "message_addresses", ["domain"])
    op.create_index("ix_message_addresses_message_id", "message_addresses", ["message_id"])

    op.create_table(
        "attachments",
        pk(),
        sa.Column("message_id", BigID, nullable=False),
        sa.Column("position", sa.Integer(), nullable=False),
        sa.Column("filename", sa.String(500), nullable=True),
        sa.Column("content_type", sa.String(255), nullable=False),
        sa.Column("size", sa.BigInteger(), nullable=False),
        sa.PrimaryKeyConstraint("id", name="pk_attachments"),
        sa.ForeignKeyConstraint(
            ["message_id"], ["messages.id"], ondelete="CASCADE",
            name="fk_attachments_message_id_messages",
        ),
        **TABLE_OPTS,
    )
    op.create_index("ix_attachments_message_id", "attachments", ["message_id"])

    op.create_table(
        "deliveries",
        pk(),
        sa.Column("account_id", BigID, nullable=False),
        sa.Column("uidl", ascii_bin(70), nullable=True),
        sa.Column("message_id", BigID, nullable=True),
        sa.Column("server_size", sa.BigInteger(), nullable=True),
        sa.Column("first_seen_at", utc(), nullable=False),
        sa.Column("deleted_on_server_at", utc(), nullable=True),
        sa.Column("tombstone", sa.Boolean(), nullable=False),
        sa.Column("source", sa.String(1000), nullable=True),
        sa.Column("folder", sa.String(255), nullable=True),
        sa.PrimaryKeyConstraint("id", name="pk_deliveries"),
        sa.UniqueConstraint("account_id", "uidl", name="uq_deliveries_account_id_uidl"),
        sa.ForeignKeyConstraint(
            ["account_id"], ["accounts.id"], name="fk_deliveries_account_id_accounts"
        ),
        sa.ForeignKeyConstraint(
            ["message_id"], ["messages.id"], name="fk_deliveries_message_id_messages"
        ),
        **TABLE_OPTS,
    )
    op.create_index("ix_deliveries_message_id", "deliveries", ["message_id"])
    op.create_index(
        "ix_deliveries_account_id_deleted_on_server_at", "deliveries",
        ["account_id", "deleted_on_server_at"],
    )

    op.create_table(
        "collection_runs",
        pk(),
        sa.Column("account_id", BigID, nullable=False),
        sa.Column("started_at", utc(), nullable=False),
        sa.Column("finished_at", utc(), nullable=True),
        sa.Column("status", sa.String(16), nullable=False),
        sa.Column("listed", sa.BigInteger(), nullable=False),
        sa.Column("new", sa.BigInteger(), nullable=False),
        sa.Column("archived", sa.BigInteger(), nullable=False),
        sa.Column("duplicates", sa.BigInteger(), nullable=False),
        sa.Column("deleted_on_server", sa.BigInteger(), nullable=False),
        sa.Column("bytes", sa.BigInteger(), nullable=False),
        sa.Column("skipped", sa.BigInteger(), nullable=False),
        sa.Column("warnings", LongText, nullable=True),
        sa.Column("error_kind", sa.String(32), nullable=True),
        sa.Column("error", LongText, nullable=True),
        sa.Column("node", sa.String(255), nullable=True),
        sa.PrimaryKeyConstraint("id", name="pk_collection_runs"),
        sa.ForeignKeyConstraint(
            ["account_id"], ["accounts.id"], name="fk_collection_runs_account_id_accounts"
        ),
        **TABLE_OPTS,
    )
    op.create_index(
        "ix_collection_runs_account_id_started_at", "collection_runs", ["account_id", "started_at"]
    )

    op.create_table(
        "audit_log",
        pk(),
        sa.Column("at", utc(), nullable=False),
        sa.Column("actor", sa.String(200), nullable=False),
        sa.Column("action", sa.String(64), nullable=False),
        sa.Column("target", LongText, nullable=True),
        sa.Column("details", LongText, nullable=True),
        sa.Column("client", sa.String(200), nullable=True),
        sa.Column("prev_hash", ascii_bin(64), nullable=False),
        sa.Column("entry_hash", ascii_bin(64), nullable=False),
        sa.PrimaryKeyConstraint("id", name="pk_audit_log"),
        sa.UniqueConstraint("entry_hash", name="uq_audit_log_entry_hash"),
        **TABLE_OPTS,
    )
    op.create_index("ix_audit_log_at", "audit_log", ["at"])

    audit_head = op.create_table(
        "audit_head",
        sa.Column("id", sa.Integer(), nullable=False, autoincrement=False),
        sa.Column("entries", sa.BigInteger(), nullable=False),
        sa.Column("last_hash", ascii_bin(64), nullable=False),
        sa.PrimaryKeyConstraint("id", name="pk_audit_head"),
        **TABLE_OPTS,
    )
    # The chain starts from a fixed genesis hash; there is exactly one head row.
    op.bulk_insert(audit_head, [{"id": 1, "entries": 0, "last_hash": "0" * 64}])


def downgrade() -> None:
    for table in (
        "audit_head",
        "audit_log",
        "collection_runs",
        "deliveries",
        "attachments",
        "message_addresses",
        "message_texts",
        "message_chunks",
        "messages",
        "accounts",
    ):
        op.drop_table(table)
