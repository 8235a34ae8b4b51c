"""The tamper-evident audit trail (DESIGN.md §8).

Entries are append-only; each stores the hash of the entry before it, and its
own hash covers its fields and that link. Changing, removing or reordering
any entry breaks the chain at that point, which :func:`verify_chain` reports.

Appends are serialised through the single ``audit_head`` row: an appender
first UPDATEs it (taking the row lock on PostgreSQL/MariaDB, the write lock on
SQLite), then reads the previous hash, so two writers can never fork the chain.
"""

from __future__ import annotations

import getpass
import hashlib
import json
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import datetime, timezone

from sqlalchemy import Connection, insert, select, update

from archiver.db import schema

GENESIS = "0" * 64


def entry_hash(prev_hash: str, at: datetime, actor: str, action: str, target: str | None,
               details: str | None, client: str | None) -> str:
    """The hash of one entry: SHA-256 over the previous hash and the entry's fields."""
    payload = json.dumps(
        [prev_hash, at.astimezone(timezone.utc).isoformat(timespec="microseconds"), actor, action,
         target, details, client],
        ensure_ascii=False,
        separators=(",", ":"),
    )
    return hashlib.sha256(payload.encode("utf-8")).hexdigest()


def current_actor() -> str:
    """Who is acting on the command line: the OS user."""
    try:
        return f"cli:{getpass.getuser()}"
    except Exception:
        return "cli:unknown"


def append(conn: Connection, action: str, *, actor: str, target: str | None = None,
           details: dict | None = None, client: str | None = None,
           at: datetime | None = None) -> str:
    """Append one entry inside the caller's unit of work; returns its hash.

    The entry commits (or rolls back) with whatever else the caller does in
    that transaction: a read audited here and the read itself are one unit.
    """
    head = schema.audit_head
    log = schema.audit_log
    # Lock first, read second: see the module docstring.
    conn.execute(update(head).where(head.c.id == 1).values(entries=head.c.entries + 1))
    prev = conn.execute(select(head.c.last_hash).where(head.c.id == 1)).scalar_one()
    at = (at or datetime.now(timezone.utc)).astimezone(timezone.utc)
    details_text = json.dumps(details, sort_keys=True, ensure_ascii=False) if details else None
    digest = entry_hash(prev, at, actor, action, target, details_text, client)
    conn.execute(
        insert(log).values(at=at, actor=actor[:200], action=action[:64], target=target,
                           details=details_text, client=(client or None) and client[:200],
                           prev_hash=prev, entry_hash=digest)
    )
    conn.execute(update(head).where(head.c.id == 1).values(last_hash=digest))
    return digest


@dataclass(frozen=True)
class ChainReport:
    entries: int
    problems: list[str]

    @property
    def ok(self) -> bool:
        return not self.problems


def verify_chain(conn: Connection, batch: int = 1000) -> ChainReport:
    """Recompute every entry's hash and link; name the first entries that fail."""
    head = schema.audit_head
    problems: list[str] = []
    prev = GENESIS
    count = 0
    for row in _iter_entries(conn, batch):
        count += 1
        if row.prev_hash != prev:
            problems.append(f"audit entry {row.id}: link to the previous entry is broken "
                            "(an entry was removed, reordered or inserted)")
        expected = entry_hash(row.prev_hash, row.at, row.actor, row.action, row.target,
                              row.details, row.client)
        if expected != row.entry_hash:
            problems.append(f"audit entry {row.id} ({row.action} at {row.at.isoformat()}): "
                            "content was changed after it was written")
        prev = row.entry_hash
        if len(problems) >= 20:
            problems.append("... (further problems not listed)")
            break
    head_row = conn.execute(select(head.c.entries, head.c.last_hash).where(head.c.id == 1)).one_or_none()
    if head_row is None:
        problems.append("audit head row is missing")
    elif not problems and head_row.last_hash != prev:
        problems.append("the newest audit entries were removed (the chain head does not match "
                        "the last entry)")
    return ChainReport(count, problems)


def _iter_entries(conn: Connection, batch: int) -> Iterator:
    log = schema.audit_log
    last = 0
    while True:
        rows = conn.execute(select(log).where(log.c.id > last).order_by(log.c.id).limit(batch)).all()
        if not rows:
            return
        yield from rows
        last = rows[-1].id


__all__ = [
    "ChainReport",
    "GENESIS",
    "append",
    "current_actor",
    "entry_hash",
    "verify_chain",
]
