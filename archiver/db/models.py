"""The archive schema as typed SQLAlchemy 2 models.

Migrations in ``migrations/versions`` are the source of truth for the live
schema; these models must match them (``archiver db check``, and a test).

Vocabulary:

* **Message** — one unique raw message, identified by the SHA-256 of its bytes
  (single-instance storage). Its content lives in **MessageChunk** rows,
  compressed one chunk at a time so no row comes near MariaDB's packet limit.
* **Delivery** — one sighting of a message: an (account, UIDL) on a POP3 server,
  or a file brought in by ``import`` (UIDL NULL). A purged message's deliveries
  stay as **tombstones** (``message_id`` NULL, ``tombstone`` true) so the
  collector never fetches that UIDL again (DESIGN.md §2 rule 5).
* **MessageAddress**, **Attachment**, **MessageText** — what parsing extracted
  for search and display.
* **CollectionRun** — one collection pass of one account.
* **AuditEntry** — the hash-chained audit trail; **AuditHead** serialises appends.
"""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import (
    BigInteger,
    Boolean,
    CheckConstraint,
    ForeignKey,
    Index,
    Integer,
    MetaData,
    String,
    UniqueConstraint,
)
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column

from archiver.db.types import (
    UTC,
    BigID,
    Blob,
    Count,
    IntPK,
    LongText,
    Name,
    Sha256Hex,
    Uidl,
    UTCDateTime,
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


class Base(DeclarativeBase):
    metadata = MetaData(naming_convention=NAMING_CONVENTION)


class Account(Base):
    """A configured (or import-only) mailbox; ``name`` is the stable id from config.toml."""

    __tablename__ = "accounts"

    id: Mapped[IntPK]
    name: Mapped[Name] = mapped_column(unique=True)
    created_at: Mapped[UTC]
    # Lease for multi-node collection (DESIGN.md §6): the node holding an
    # unexpired lease is the only one collecting this account.
    lease_owner: Mapped[str | None] = mapped_column(String(200))
    lease_expires_at: Mapped[datetime | None] = mapped_column(UTCDateTime())


class Message(Base):
    """One unique raw message (single-instance), addressed by its SHA-256."""

    __tablename__ = "messages"
    __table_args__ = (CheckConstraint("size >= 0", name="size_nonnegative"),)

    id: Mapped[IntPK]
    sha256: Mapped[Sha256Hex] = mapped_column(unique=True)
    size: Mapped[int] = mapped_column(BigInteger())
    archived_at: Mapped[UTC] = mapped_column(index=True)
    # Content storage: how the chunks are encoded and how much they take.
    compression: Mapped[str] = mapped_column(String(8))
    chunk_count: Mapped[int] = mapped_column(Integer())
    stored_size: Mapped[int] = mapped_column(BigInteger())
    # Parsed header fields (display and search; never used to identify).
    message_id_header: Mapped[str | None] = mapped_column(String(255), index=True)
    subject: Mapped[str | None] = mapped_column(LongText)
    from_address: Mapped[str | None] = mapped_column(String(320))
    from_display: Mapped[str | None] = mapped_column(String(500))
    date: Mapped[datetime | None] = mapped_column(UTCDateTime())
    # The Date header, or the archive time when it is missing or unparseable:
    # what search sorts on and what after:/before: compare (DESIGN.md §4).
    sort_date: Mapped[UTC] = mapped_column(index=True)
    has_attachments: Mapped[bool] = mapped_column(Boolean(), default=False)
    parse_defects: Mapped[str | None] = mapped_column(String(1000))


class MessageChunk(Base):
    """A slice of a message's raw bytes, compressed on its own (``messages.compression``)."""

    __tablename__ = "message_chunks"

    message_id: Mapped[int] = mapped_column(
        BigID, ForeignKey("messages.id", ondelete="CASCADE"), primary_key=True
    )
    seq: Mapped[int] = mapped_column(Integer(), primary_key=True)
    data: Mapped[bytes] = mapped_column(Blob)


class MessageText(Base):
    """The text search indexes: text/plain and text/html parts, attachment names."""

    __tablename__ = "message_texts"

    message_id: Mapped[int] = mapped_column(
        BigID, ForeignKey("messages.id", ondelete="CASCADE"), primary_key=True
    )
    body: Mapped[str] = mapped_column(LongText)


class MessageAddress(Base):
    """One address from a message header; ``address`` lower-cased for search."""

    __tablename__ = "message_addresses"
    __table_args__ = (Index(None, "address"), Index(None, "domain"))

    id: Mapped[IntPK]
    message_id: Mapped[int] = mapped_column(
        BigID, ForeignKey("messages.id", ondelete="CASCADE"), index=True
    )
    role: Mapped[str] = mapped_column(String(16))
    position: Mapped[int] = mapped_column(Integer())
    address: Mapped[str] = mapped_column(String(320))
    domain: Mapped[str | None] = mapped_column(String(255))
    display_name: Mapped[str | None] = mapped_column(String(500))


class Attachment(Base):
    """Metadata of one attachment (the bytes stay inside the raw message)."""

    __tablename__ = "attachments"

    id: Mapped[IntPK]
    message_id: Mapped[int] = mapped_column(
        BigID, ForeignKey("messages.id", ondelete="CASCADE"), index=True
    )
    position: Mapped[int] = mapped_column(Integer())
    filename: Mapped[str | None] = mapped_column(String(500))
    content_type: Mapped[str] = mapped_column(String(255))
    size: Mapped[int] = mapped_column(BigInteger())


class Delivery(Base):
    """One sighting of a message: an (account, UIDL) on a server, or an imported file.

    ``uidl`` is NULL for imports; (account_id, uidl) is unique otherwise.
    After a purge the row stays with ``message_id`` NULL and ``tombstone``
    true, so the UIDL is never fetched again.
    """

    __tablename__ = "deliveries"
    __table_args__ = (
        UniqueConstraint("account_id", "uidl"),
        # The collector reads "what this account still has on the server" each pass.
        Index(None, "account_id", "deleted_on_server_at"),
    )

    id: Mapped[IntPK]
    account_id: Mapped[int] = mapped_column(BigID, ForeignKey("accounts.id"))
    uidl: Mapped[Uidl | None]
    message_id: Mapped[int | None] = mapped_column(
        BigID, ForeignKey("messages.id"), index=True
    )
    server_size: Mapped[int | None] = mapped_column(BigInteger())
    first_seen_at: Mapped[UTC]
    # When the message left the server: our DELE confirmed by QUIT, or its
    # UIDL no longer listed. NULL while we believe it is still there.
    deleted_on_server_at: Mapped[datetime | None] = mapped_column(UTCDateTime())
    tombstone: Mapped[bool] = mapped_column(Boolean(), default=False)
    source: Mapped[str | None] = mapped_column(String(1000))
    folder: Mapped[str | None] = mapped_column(String(255))


class CollectionRun(Base):
    """One collection pass of one account (DESIGN.md §5 step 5)."""

    __tablename__ = "collection_runs"
    __table_args__ = (Index(None, "account_id", "started_at"),)

    id: Mapped[IntPK]
    account_id: Mapped[int] = mapped_column(BigID, ForeignKey("accounts.id"))
    started_at: Mapped[UTC]
    finished_at: Mapped[datetime | None] = mapped_column(UTCDateTime())
    status: Mapped[str] = mapped_column(String(16))  # running | ok | error
    listed: Mapped[Count]
    new: Mapped[Count]
    archived: Mapped[Count]
    duplicates: Mapped[Count]
    deleted_on_server: Mapped[Count]
    bytes: Mapped[Count]
    error_kind: Mapped[str | None] = mapped_column(String(32))
    error: Mapped[str | None] = mapped_column(LongText)
    node: Mapped[str | None] = mapped_column(String(255))


class AuditEntry(Base):
    """One entry of the append-only, hash-chained audit trail (DESIGN.md §8)."""

    __tablename__ = "audit_log"

    id: Mapped[IntPK]
    at: Mapped[UTC] = mapped_column(index=True)
    actor: Mapped[str] = mapped_column(String(200))
    action: Mapped[str] = mapped_column(String(64))
    target: Mapped[str | None] = mapped_column(LongText)
    details: Mapped[str | None] = mapped_column(LongText)
    client: Mapped[str | None] = mapped_column(String(200))
    prev_hash: Mapped[Sha256Hex]
    entry_hash: Mapped[Sha256Hex] = mapped_column(unique=True)


class AuditHead(Base):
    """A single row holding the latest chain hash; appenders lock it first."""

    __tablename__ = "audit_head"

    id: Mapped[int] = mapped_column(Integer(), primary_key=True, autoincrement=False)
    entries: Mapped[int] = mapped_column(BigInteger())
    last_hash: Mapped[Sha256Hex]
