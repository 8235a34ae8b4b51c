"""Delivery ledger with explicit kind/state, account leases, retention instants,
and the schema compatibility record.

* ``deliveries``: ``kind`` (pop3 | import), ``state`` (archived | superseded |
  purged) and ``former_uidl`` replace the state that 0001 kept in free text
  (``source LIKE 'pop3%'``, a rewritten ``source`` for a reused UIDL) and in
  two encodings of "purged" (``tombstone``, ``message_id`` NULL). CHECK
  constraints keep the columns consistent. ``source`` becomes descriptive
  for imports only: POP3 rows get NULL.
* ``account_leases`` replaces ``accounts.lease_owner`` / ``lease_expires_at``
  (one way to record a lease; ``epoch`` is a fencing token).
* ``messages``: ``keep_until``, ``purge_after`` (NULL until retention is
  computed) and ``retention_stale`` (TRUE = needs recompute; every existing
  message starts stale, and the column keeps a server default of TRUE so a
  writer that forgets it errs on the safe side).
* ``schema_compat``: one row naming the oldest code revision that can still
  run against this schema (see ``archiver.db.engine.require_current_schema``).
  0001 code writes ``deliveries.tombstone``, which is gone: 0002 needs 0002 code.

Data carried over from 0001 rows (0001's collector wrote ``source`` as
``pop3``, ``pop3 (server has no UIDL)``, or, when the server reused a UIDL,
``pop3 uidl X (reused by server)`` with ``uidl`` set NULL):

* kind = pop3 when ``uidl`` is set or ``source`` is one of those three texts,
  else import. (Exact texts rather than 0001's ``LIKE 'pop3%'``: an imported
  file whose path starts with "pop3" stays an import.)
* former_uidl = X for the reused text; state = purged when ``tombstone`` or
  ``message_id`` NULL, superseded when the UIDL was given up, else archived.
* A lease in ``accounts`` becomes an ``account_leases`` row with epoch 1 and
  ``acquired_at`` = the time of the migration (0001 did not record it).

Downgrade restores 0001: tombstone from state, the source texts rebuilt from
kind/uidl/former_uidl, leases copied back to ``accounts``. It LOSES each
lease's epoch and acquired_at (0001 has no columns for them; an owner longer
than 0001's 200 characters is cut) and the retention columns.

On SQLite the table rebuilds (batch mode) run with foreign keys off, which
migrations/env.py arranges. MariaDB commits each DDL statement on its own:
every upgrade step checks whether it is already done, so a run stopped
half-way (a lock wait timeout) is finished by running ``archiver db upgrade``
again. The downgrade has no such guards.

Revision ID: 0002
Revises: 0001
Create Date: 2026-12-03
"""

from datetime import UTC, datetime

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import mysql

revision = "0002"
down_revision = "0001"
branch_labels = None
depends_on = None

#: The oldest code revision that can run against this schema (schema_compat).
MIN_CODE_REVISION = "0002"

# Types are spelled out here rather than imported from archiver: a migration
# must keep meaning what it meant when it was written.
MYSQL = ("mysql", "mariadb")
BigID = sa.BigInteger().with_variant(sa.Integer(), "sqlite")


def utc():
    return sa.DateTime(timezone=True).with_variant(mysql.DATETIME(fsp=6), *MYSQL)


def ascii_bin(n):
    return sa.String(n).with_variant(
        mysql.VARCHAR(n, charset="ascii", collation="ascii_bin"), *MYSQL
    )


TABLE_OPTS = {"mysql_engine": "InnoDB", "mysql_charset": "utf8mb4", "mariadb_engine": "InnoDB",
              "mariadb_charset": "utf8mb4"}

# The 0001 collector's source texts.
POP3 = "pop3"
POP3_NO_UIDL = "pop3 (server has no UIDL)"
REUSED_PREFIX, REUSED_SUFFIX = "pop3 uidl ", " (reused by server)"

DELIVERY_CHECKS = {
    "ck_deliveries_kind_known": "kind IN ('pop3', 'import')",
    "ck_deliveries_state_known": "state IN ('archived', 'superseded', 'purged')",
    "ck_deliveries_purged_has_no_message": "(state = 'purged') = (message_id IS NULL)",
    "ck_deliveries_import_has_no_uidl": "kind = 'pop3' OR (uidl IS NULL AND former_uidl IS NULL)",
    "ck_deliveries_superseded_gave_up_uidl":
        "state <> 'superseded' OR (uidl IS NULL AND former_uidl IS NOT NULL)",
}

# Lightweight views of the tables for the data steps (both shapes' columns).
deliveries = sa.table(
    "deliveries",
    sa.column("id", BigID),
    sa.column("uidl", sa.String(70)),
    sa.column("message_id", BigID),
    sa.column("tombstone", sa.Boolean()),
    sa.column("source", sa.String(1000)),
    sa.column("kind", sa.String(16)),
    sa.column("state", sa.String(16)),
    sa.column("former_uidl", sa.String(70)),
)
accounts = sa.table(
    "accounts",
    sa.column("id", BigID),
    sa.column("lease_owner", sa.String(200)),
    sa.column("lease_expires_at", utc()),
)
account_leases = sa.table(
    "account_leases",
    sa.column("account_id", BigID),
    sa.column("owner", sa.String(255)),
    sa.column("epoch", sa.BigInteger()),
    sa.column("acquired_at", utc()),
    sa.column("expires_at", utc()),
)


def _now_utc(dialect_name):
    """The current UTC time as this backend stores it (naive UTC outside PostgreSQL)."""
    now = datetime.now(UTC)
    return now if dialect_name == "postgresql" else now.replace(tzinfo=None)


def _inspect():
    return sa.inspect(op.get_bind())


def _columns(table):
    return {c["name"] for c in _inspect().get_columns(table)}


def _indexes(table):
    return {i["name"] for i in _inspect().get_indexes(table)}


def upgrade() -> None:
    # Every step is skipped when it is already done. PostgreSQL and SQLite run
    # this revision in one transaction, so that changes nothing there; but
    # MariaDB commits each DDL statement, and a step that failed (a lock wait
    # timeout, say) must not leave an archive that the next `archiver db
    # upgrade` cannot finish.
    bind = op.get_bind()
    dialect = bind.dialect.name
    d = deliveries
    tables = set(_inspect().get_table_names())
    delivery_columns = _columns("deliveries")

    # Refuse before any DDL (MariaDB could not roll it back): a row marked as
    # a tombstone that still has a message cannot be given one state. 0001's
    # code never wrote such a row; one made by hand needs a human decision.
    if "tombstone" in delivery_columns:
        bad = bind.execute(
            sa.select(d.c.id).where(d.c.tombstone == sa.true(), d.c.message_id.is_not(None))
            .order_by(d.c.id).limit(6)
        ).scalars().all()
        if bad:
            raise RuntimeError(
                "cannot migrate deliveries to 0002: the deliveries with id "
                + ", ".join(map(str, bad[:5])) + (" and more" if len(bad) > 5 else "")
                + " are marked tombstone but still point to a message. Decide for each: "
                "UPDATE deliveries SET tombstone = false (the message is archived) or "
                "SET message_id = NULL (it was purged), then run `archiver db upgrade` again."
            )

    # --- schema_compat -----------------------------------------------------
    if "schema_compat" not in tables:
        compat = op.create_table(
            "schema_compat",
            sa.Column("id", sa.Integer(), nullable=False, autoincrement=False),
            sa.Column("min_code_revision", sa.String(32), nullable=False),
            sa.PrimaryKeyConstraint("id", name="pk_schema_compat"),
            sa.CheckConstraint("id = 1", name="ck_schema_compat_single_row"),
            **TABLE_OPTS,
        )
        op.bulk_insert(compat, [{"id": 1, "min_code_revision": MIN_CODE_REVISION}])

    # --- account_leases ----------------------------------------------------
    if "account_leases" not in tables:
        op.create_table(
            "account_leases",
            sa.Column("account_id", BigID, nullable=False),
            sa.Column("owner", sa.String(255), nullable=False),
            sa.Column("epoch", sa.BigInteger(), nullable=False),
            sa.Column("acquired_at", utc(), nullable=False),
            sa.Column("expires_at", utc(), nullable=False),
            sa.PrimaryKeyConstraint("account_id", name="pk_account_leases"),
            sa.ForeignKeyConstraint(
                ["account_id"], ["accounts.id"], ondelete="CASCADE",
                name="fk_account_leases_account_id_accounts",
            ),
            sa.CheckConstraint("epoch >= 1", name="ck_account_leases_epoch_positive"),
            **TABLE_OPTS,
        )
    if "ix_account_leases_expires_at" not in _indexes("account_leases"):
        op.create_index("ix_account_leases_expires_at", "account_leases", ["expires_at"])
    account_columns = _columns("accounts")
    if {"lease_owner", "lease_expires_at"} <= account_columns:
        held = sa.select(account_leases.c.account_id).where(
            account_leases.c.account_id == accounts.c.id
        )
        op.execute(
            account_leases.insert().from_select(
                ["account_id", "owner", "epoch", "acquired_at", "expires_at"],
                sa.select(
                    accounts.c.id,
                    accounts.c.lease_owner,
                    sa.literal(1, sa.BigInteger()),
                    sa.literal(_now_utc(dialect), utc()),
                    accounts.c.lease_expires_at,
                ).where(
                    accounts.c.lease_owner.is_not(None),
                    accounts.c.lease_expires_at.is_not(None),
                    ~held.exists(),
                ),
            )
        )
    if account_columns & {"lease_owner", "lease_expires_at"}:
        with op.batch_alter_table("accounts") as batch:
            for column in ("lease_owner", "lease_expires_at"):
                if column in account_columns:
                    batch.drop_column(column)

    # --- messages: retention ----------------------------------------------
    # Plain ADD COLUMN on every backend (no table rebuild on SQLite).
    message_columns = _columns("messages")
    if "keep_until" not in message_columns:
        op.add_column("messages", sa.Column("keep_until", utc(), nullable=True))
    if "purge_after" not in message_columns:
        op.add_column("messages", sa.Column("purge_after", utc(), nullable=True))
    if "retention_stale" not in message_columns:
        op.add_column(
            "messages",
            sa.Column("retention_stale", sa.Boolean(), nullable=False, server_default=sa.true()),
        )
    message_indexes = _indexes("messages")
    for column in ("keep_until", "purge_after", "retention_stale"):
        if f"ix_messages_{column}" not in message_indexes:
            op.create_index(f"ix_messages_{column}", "messages", [column])

    # --- deliveries: kind, state, former_uidl ------------------------------
    if "kind" not in delivery_columns:
        op.add_column("deliveries", sa.Column("kind", sa.String(16), nullable=True))
    if "state" not in delivery_columns:
        op.add_column("deliveries", sa.Column("state", sa.String(16), nullable=True))
    if "former_uidl" not in delivery_columns:
        op.add_column("deliveries", sa.Column("former_uidl", ascii_bin(70), nullable=True))

    if "tombstone" in delivery_columns:  # else the data steps below all ran already
        reused = d.c.source.like(f"{REUSED_PREFIX}%{REUSED_SUFFIX}")
        length = sa.func.length if dialect == "sqlite" else sa.func.char_length
        op.execute(
            d.update().where(reused, d.c.former_uidl.is_(None)).values(
                former_uidl=sa.func.substr(
                    d.c.source, len(REUSED_PREFIX) + 1,
                    length(d.c.source) - len(REUSED_PREFIX) - len(REUSED_SUFFIX),
                )
            )
        )
        is_pop3 = sa.or_(
            d.c.uidl.is_not(None), d.c.former_uidl.is_not(None),
            d.c.source.in_([POP3, POP3_NO_UIDL]),
        )
        # One statement for both columns, and only rows not done yet: the
        # sources it reads are cleared only after it has run.
        op.execute(
            d.update().where(d.c.kind.is_(None)).values(
                kind=sa.case((is_pop3, "pop3"), else_="import"),
                state=sa.case(
                    (sa.or_(d.c.tombstone == sa.true(), d.c.message_id.is_(None)), "purged"),
                    (sa.and_(d.c.former_uidl.is_not(None), d.c.uidl.is_(None)), "superseded"),
                    else_="archived",
                ),
            )
        )
        op.execute(d.update().where(d.c.kind == "pop3").values(source=None))

    checks = {c["name"] for c in _inspect().get_check_constraints("deliveries")}
    with op.batch_alter_table("deliveries") as batch:
        batch.alter_column("kind", existing_type=sa.String(16), nullable=False)
        batch.alter_column("state", existing_type=sa.String(16), nullable=False)
        if "tombstone" in delivery_columns:
            batch.drop_column("tombstone")
        for name, condition in DELIVERY_CHECKS.items():
            if name not in checks:
                batch.create_check_constraint(name, condition)


def downgrade() -> None:
    d = deliveries

    # --- deliveries back to tombstone + source texts -----------------------
    op.add_column("deliveries", sa.Column("tombstone", sa.Boolean(), nullable=True))
    reused_text = sa.literal(REUSED_PREFIX, sa.String(20)) + d.c.former_uidl \
        + sa.literal(REUSED_SUFFIX, sa.String(20))
    op.execute(
        d.update().values(
            tombstone=sa.case((d.c.state == "purged", sa.true()), else_=sa.false()),
            source=sa.case(
                (d.c.kind != "pop3", d.c.source),
                (d.c.former_uidl.is_not(None), reused_text),
                (d.c.uidl.is_not(None), POP3),
                else_=POP3_NO_UIDL,
            ),
        )
    )
    with op.batch_alter_table("deliveries") as batch:
        for name in DELIVERY_CHECKS:
            batch.drop_constraint(name, type_="check")
        batch.drop_column("kind")
        batch.drop_column("state")
        batch.drop_column("former_uidl")
        batch.alter_column("tombstone", existing_type=sa.Boolean(), nullable=False)

    # --- messages ----------------------------------------------------------
    for column in ("keep_until", "purge_after", "retention_stale"):
        op.drop_index(f"ix_messages_{column}", table_name="messages")
    with op.batch_alter_table("messages") as batch:
        batch.drop_column("keep_until")
        batch.drop_column("purge_after")
        batch.drop_column("retention_stale")

    # --- leases back into accounts (epoch and acquired_at are lost) --------
    op.add_column("accounts", sa.Column("lease_owner", sa.String(200), nullable=True))
    op.add_column("accounts", sa.Column("lease_expires_at", utc(), nullable=True))
    lease = account_leases.alias("l")
    op.execute(
        accounts.update().values(
            lease_owner=sa.select(sa.func.substr(lease.c.owner, 1, 200))
            .where(lease.c.account_id == accounts.c.id).scalar_subquery(),
            lease_expires_at=sa.select(lease.c.expires_at)
            .where(lease.c.account_id == accounts.c.id).scalar_subquery(),
        )
    )
    op.drop_index("ix_account_leases_expires_at", table_name="account_leases")
    op.drop_table("account_leases")

    op.drop_table("schema_compat")
