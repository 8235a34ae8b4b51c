"""Typed ORM classes over the archive tables (:mod:`archiver.db.schema`).

For code that wants objects rather than rows (tests, ad-hoc scripts, later
UI code). The tables themselves, their comments and constraints are in
:mod:`archiver.db.schema`; the hot paths (store, collector) use those Core
tables directly, so importing this module is never needed to collect mail.
"""

from __future__ import annotations

from datetime import datetime

from sqlalchemy.orm import DeclarativeBase, Mapped

from archiver.db import schema


class Base(DeclarativeBase):
    metadata = schema.metadata


class Account(Base):
    __table__ = schema.accounts

    id: Mapped[int]
    name: Mapped[str]
    created_at: Mapped[datetime]
    lease_owner: Mapped[str | None]
    lease_expires_at: Mapped[datetime | None]


class Message(Base):
    __table__ = schema.messages

    id: Mapped[int]
    sha256: Mapped[str]
    size: Mapped[int]
    archived_at: Mapped[datetime]
    compression: Mapped[str]
    chunk_count: Mapped[int]
    stored_size: Mapped[int]
    message_id_header: Mapped[str | None]
    subject: Mapped[str | None]
    from_address: Mapped[str | None]
    from_display: Mapped[str | None]
    date: Mapped[datetime | None]
    sort_date: Mapped[datetime]
    has_attachments: Mapped[bool]
    parse_defects: Mapped[str | None]


class MessageChunk(Base):
    __table__ = schema.message_chunks

    message_id: Mapped[int]
    seq: Mapped[int]
    data: Mapped[bytes]


class MessageText(Base):
    __table__ = schema.message_texts

    message_id: Mapped[int]
    body: Mapped[str]


class MessageAddress(Base):
    __table__ = schema.message_addresses

    id: Mapped[int]
    message_id: Mapped[int]
    role: Mapped[str]
    position: Mapped[int]
    address: Mapped[str]
    domain: Mapped[str | None]
    display_name: Mapped[str | None]


class Attachment(Base):
    __table__ = schema.attachments

    id: Mapped[int]
    message_id: Mapped[int]
    position: Mapped[int]
    filename: Mapped[str | None]
    content_type: Mapped[str]
    size: Mapped[int]


class Delivery(Base):
    __table__ = schema.deliveries

    id: Mapped[int]
    account_id: Mapped[int]
    uidl: Mapped[str | None]
    message_id: Mapped[int | None]
    server_size: Mapped[int | None]
    first_seen_at: Mapped[datetime]
    deleted_on_server_at: Mapped[datetime | None]
    tombstone: Mapped[bool]
    source: Mapped[str | None]
    folder: Mapped[str | None]


class CollectionRun(Base):
    __table__ = schema.collection_runs

    id: Mapped[int]
    account_id: Mapped[int]
    started_at: Mapped[datetime]
    finished_at: Mapped[datetime | None]
    status: Mapped[str]
    listed: Mapped[int]
    new: Mapped[int]
    archived: Mapped[int]
    duplicates: Mapped[int]
    deleted_on_server: Mapped[int]
    bytes: Mapped[int]
    skipped: Mapped[int]
    warnings: Mapped[str | None]
    error_kind: Mapped[str | None]
    error: Mapped[str | None]
    node: Mapped[str | None]


class AuditEntry(Base):
    __table__ = schema.audit_log

    id: Mapped[int]
    at: Mapped[datetime]
    actor: Mapped[str]
    action: Mapped[str]
    target: Mapped[str | None]
    details: Mapped[str | None]
    client: Mapped[str | None]
    prev_hash: Mapped[str]
    entry_hash: Mapped[str]


class AuditHead(Base):
    __table__ = schema.audit_head

    id: Mapped[int]
    entries: Mapped[int]
    last_hash: Mapped[str]
