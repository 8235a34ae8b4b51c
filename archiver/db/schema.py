"""The archive schema as SQLAlchemy Core tables.

This is the one declaration of the schema. It is SQLAlchemy Core, not ORM
declarative classes, on purpose: importing ``sqlalchemy.orm`` costs a
collection process ~0.14 s (measured: median start-up of
``import archiver.collect.collector`` 0.56 s -> 0.69 s with the ORM), and a
no-op pass that runs every few minutes is mostly start-up. The services use
these tables directly (Core statements, executemany).

Migrations in ``migrations/versions`` are the source of truth for the live
schema; this metadata must match them (``archiver db check``, and a test).
Full-text objects named ``fts_*``, ``*_fts`` or ``*_fts_*`` are not modelled: db check skips them.

Vocabulary:

* **messages** — one unique raw message, identified by the SHA-256 of its bytes
  (single-instance storage). Its content lives in **message_chunks**,
  compressed one chunk at a time so no row comes near MariaDB's packet limit.
* **deliveries** — one sighting of a message: an (account, UIDL) on a POP3
  server (``kind`` pop3; UIDL NULL from a server without UIDL), or a file
  brought in by ``import`` (``kind`` import). ``state`` says what the row is
  now: ``archived``; ``superseded`` (the server reused its UIDL for other
  content: the UIDL moved to ``former_uidl``); ``purged`` (the message was
  purged: ``message_id`` NULL, the row a tombstone so the collector never
  fetches that UIDL again, DESIGN.md §2 rule 5). Only
  :mod:`archiver.store.deliveries` writes this table.
* **message_addresses**, **attachments**, **message_texts** — what parsing
  extracted for search and display.
* **account_leases** — which node collects an account now (DESIGN.md §6).
* **collection_runs** — one collection pass of one account.
* **audit_log** — the hash-chained audit trail; **audit_head** serialises appends.
"""

from __future__ import annotations

import enum
from typing import Any

from sqlalchemy import (
    BigInteger,
    Boolean,
    CheckConstraint,
    Column,
    ForeignKey,
    Index,
    Integer,
    MetaData,
    String,
    Table,
    UniqueConstraint,
    text,
    true,
)

from archiver.db.types import (
    BigID,
    Blob,
    LongText,
    UTCDateTime,
    ascii_bin,
    utf8_bin,
)

#: Constraint names are spelled out so that migrations name the same objects
#: on every backend and a later migration can drop them by name. Kept short:
#: MySQL allows 64 characters.
NAMING_CONVENTION = {
    "ix": "ix_%(table_name)s_%(column_0_N_name)s",
    "uq": "uq_%(table_name)s_%(column_0_N_name)s",
    "ck": "ck_%(table_name)s_%(constraint_name)s",
    "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
    "pk": "pk_%(table_name)s",
}

#: Message roles recorded in ``message_addresses.role``.
ADDRESS_ROLES = ("from", "sender", "reply-to", "to", "cc", "bcc", "delivered-to")

metadata = MetaData(naming_convention=NAMING_CONVENTION)


class DeliveryKind(enum.StrEnum):
    """How a delivery reached the archive."""

    POP3 = "pop3"
    IMPORT = "import"


class DeliveryState(enum.StrEnum):
    """What a delivery row is now (see the module docstring)."""

    ARCHIVED = "archived"
    SUPERSEDED = "superseded"
    PURGED = "purged"


def _in(column: str, enum_type: type[enum.StrEnum]) -> str:
    return f"{column} IN ({', '.join(repr(e.value) for e in enum_type)})"


def _pk() -> Column[int]:
    return Column("id", BigID, primary_key=True, autoincrement=True)


def _count(name: str) -> Column[int]:
    return Column(name, BigInteger(), nullable=False, default=0)


def _message_fk(name: str = "message_id", **kw: Any) -> Column[int]:
    return Column(name, BigID, ForeignKey("messages.id", ondelete="CASCADE"), nullable=False, **kw)


accounts = Table(
    "accounts",
    metadata,
    _pk(),
    # The stable id from config.toml.
    Column("name", utf8_bin(64), nullable=False, unique=True),
    Column("created_at", UTCDateTime(), nullable=False),
)

account_leases = Table(
    "account_leases",
    metadata,
    # Multi-node collection (DESIGN.md §6): the node holding an unexpired
    # lease is the only one collecting this account. ``epoch`` grows with
    # every new holder: a fencing token a stale holder's writes can be
    # checked against. ``expires_at`` is set from the database's clock, so
    # nodes with skewed clocks agree on when a lease ran out.
    Column("account_id", BigID, ForeignKey("accounts.id", ondelete="CASCADE"), primary_key=True),
    Column("owner", String(255), nullable=False),
    Column("epoch", BigInteger(), nullable=False),
    Column("acquired_at", UTCDateTime(), nullable=False),
    Column("expires_at", UTCDateTime(), nullable=False, index=True),
    CheckConstraint("epoch >= 1", name="epoch_positive"),
)

messages = Table(
    "messages",
    metadata,
    _pk(),
    Column("sha256", ascii_bin(64), nullable=False, unique=True),
    Column("size", BigInteger(), nullable=False),
    Column("archived_at", UTCDateTime(), nullable=False, index=True),
    # Content storage: how the chunks are encoded and how much they take.
    Column("compression", String(8), nullable=False),
    Column("chunk_count", Integer(), nullable=False),
    Column("stored_size", BigInteger(), nullable=False),
    # Parsed header fields (display and search; never used to identify).
    Column("message_id_header", String(255), index=True),
    Column("subject", LongText),
    Column("from_address", String(320)),
    Column("from_display", String(500)),
    Column("date", UTCDateTime()),
    # The Date header, or the archive time when it is missing or unparseable:
    # what search sorts on and what after:/before: compare (DESIGN.md §4).
    Column("sort_date", UTCDateTime(), nullable=False, index=True),
    Column("has_attachments", Boolean(), nullable=False, default=False),
    Column("parse_defects", String(1000)),
    # Retention (DESIGN.md §7): the minimum ends at keep_until, the maximum at
    # purge_after; NULL until retention is computed. retention_stale is set in
    # the ingest transaction whenever the message or a new delivery of it
    # arrives, so a recompute finds exactly what changed.
    Column("keep_until", UTCDateTime(), index=True),
    Column("purge_after", UTCDateTime(), index=True),
    Column("retention_stale", Boolean(), nullable=False, default=True, server_default=true(),
           index=True),
    CheckConstraint("size >= 0", name="size_nonnegative"),
)

message_chunks = Table(
    "message_chunks",
    metadata,
    _message_fk(primary_key=True),
    Column("seq", Integer(), primary_key=True),
    # Compressed on its own, as messages.compression says.
    Column("data", Blob, nullable=False),
)

message_texts = Table(
    "message_texts",
    metadata,
    # The text search indexes: text/plain and text/html parts.
    _message_fk(primary_key=True),
    Column("body", LongText, nullable=False),
)

message_addresses = Table(
    "message_addresses",
    metadata,
    _pk(),
    _message_fk(index=True),
    Column("role", String(16), nullable=False),
    Column("position", Integer(), nullable=False),
    # As written, with the domain lower-cased (only domains are case-insensitive);
    # search compares addresses without regard to case.
    Column("address", String(320), nullable=False),
    Column("domain", String(255)),
    Column("display_name", String(500)),
    Index(None, "address"),
    Index(None, "domain"),
)

attachments = Table(
    "attachments",
    metadata,
    # Metadata only: the bytes stay inside the raw message.
    _pk(),
    _message_fk(index=True),
    Column("position", Integer(), nullable=False),
    Column("filename", String(500)),
    Column("content_type", String(255), nullable=False),
    Column("size", BigInteger(), nullable=False),
)

deliveries = Table(
    "deliveries",
    metadata,
    _pk(),
    Column("account_id", BigID, ForeignKey("accounts.id"), nullable=False),
    Column("kind", String(16), nullable=False),
    Column("state", String(16), nullable=False),
    # NULL for imports, for servers without UIDL and for superseded rows;
    # (account_id, uidl) is unique otherwise.
    Column("uidl", ascii_bin(70)),
    # The UIDL a superseded delivery gave up when the server reused it.
    Column("former_uidl", ascii_bin(70)),
    # NULL exactly when the message is purged (the row is then a tombstone).
    Column("message_id", BigID, ForeignKey("messages.id"), index=True),
    Column("server_size", BigInteger()),
    Column("first_seen_at", UTCDateTime(), nullable=False),
    # When the message left the server: our DELE confirmed by QUIT, or its
    # UIDL no longer listed. NULL while we believe it is still there.
    Column("deleted_on_server_at", UTCDateTime()),
    # The server rewrote the message of that (superseded) delivery under the same
    # UIDL, e.g. added Status:/X-UID headers (GNU Mailutils, mbox): this delivery
    # is the same mail in the server's new bytes, not new mail.
    # No foreign key: deliveries are never deleted (a purge leaves tombstones), and
    # a self-reference would make MariaDB refuse to empty the table in one DELETE.
    Column("rewrite_of", BigID, index=True),
    # Imports: the file (and folder) the message came from; descriptive only.
    Column("source", String(1000)),
    Column("folder", String(255)),
    UniqueConstraint("account_id", "uidl"),
    CheckConstraint(_in("kind", DeliveryKind), name="kind_known"),
    CheckConstraint(_in("state", DeliveryState), name="state_known"),
    CheckConstraint("(state = 'purged') = (message_id IS NULL)", name="purged_has_no_message"),
    CheckConstraint("kind = 'pop3' OR (uidl IS NULL AND former_uidl IS NULL)",
                    name="import_has_no_uidl"),
    CheckConstraint("state <> 'superseded' OR (uidl IS NULL AND former_uidl IS NOT NULL)",
                    name="superseded_gave_up_uidl"),
    # The collector reads "what this account still has on the server" each pass.
    Index(None, "account_id", "deleted_on_server_at"),
)

collection_runs = Table(
    "collection_runs",
    metadata,
    _pk(),
    Column("account_id", BigID, ForeignKey("accounts.id"), nullable=False),
    Column("started_at", UTCDateTime(), nullable=False),
    Column("finished_at", UTCDateTime()),
    Column("status", String(16), nullable=False),  # running | ok | error
    _count("listed"),
    _count("new"),
    _count("archived"),
    _count("duplicates"),
    # Known deliveries the server rewrote (0003). A server default, because code
    # of revision 0002 may still write runs without it.
    Column("rewritten", BigInteger(), nullable=False, default=0, server_default=text("0")),
    _count("deleted_on_server"),
    _count("bytes"),
    # Messages left on the server by this pass because of a problem (too
    # large, refused by the server or the database, invalid UIDL), and why.
    _count("skipped"),
    Column("warnings", LongText),
    Column("error_kind", String(32)),
    Column("error", LongText),
    Column("node", String(255)),
    Index(None, "account_id", "started_at"),
)

audit_log = Table(
    "audit_log",
    metadata,
    _pk(),
    Column("at", UTCDateTime(), nullable=False, index=True),
    Column("actor", String(200), nullable=False),
    Column("action", String(64), nullable=False),
    Column("target", LongText),
    Column("details", LongText),
    Column("client", String(200)),
    Column("prev_hash", ascii_bin(64), nullable=False),
    Column("entry_hash", ascii_bin(64), nullable=False, unique=True),
)

audit_head = Table(
    "audit_head",
    metadata,
    # A single row holding the latest chain hash; appenders lock it first.
    Column("id", Integer(), primary_key=True, autoincrement=False),
    Column("entries", BigInteger(), nullable=False),
    Column("last_hash", ascii_bin(64), nullable=False),
)

schema_compat = Table(
    "schema_compat",
    metadata,
    # One row: the oldest code revision (archiver.db.engine.SCHEMA_REVISION)
    # that may still run against this schema. Written by the migrations only.
    Column("id", Integer(), primary_key=True, autoincrement=False),
    Column("min_code_revision", String(32), nullable=False),
    CheckConstraint("id = 1", name="single_row"),
)


__all__ = [
    "ADDRESS_ROLES",
    "DeliveryKind",
    "DeliveryState",
    "NAMING_CONVENTION",
    "account_leases",
    "accounts",
    "attachments",
    "audit_head",
    "audit_log",
    "collection_runs",
    "deliveries",
    "message_addresses",
    "message_chunks",
    "message_texts",
    "messages",
    "metadata",
    "schema_compat",
]
