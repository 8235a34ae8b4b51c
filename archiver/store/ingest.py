"""Ingest: raw bytes in, stored once, every delivery recorded (DESIGN.md §2).

Contract:

* content is stored once per SHA-256 (single-instance); every delivery of it
  (an account + UIDL, or an imported file) is recorded through
  :mod:`archiver.store.deliveries`;
* a message's content, its parsed metadata and its delivery commit in the
  same transaction — when :meth:`MessageStore.store_batch` returns, they are
  durable, and only then may a collector delete the message on the server;
* a new message, or a new delivery of an archived one, marks the message's
  retention as stale in that same transaction (retention recomputes it).

Ingest is its own unit of work, one per batch: two processes may store the
same content at once, and the loser of that unique-key race must redo the
whole transaction (:func:`archiver.db.unit.run_transaction`).
"""

from __future__ import annotations

import enum
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime, timezone
from typing import TYPE_CHECKING, Any

from sqlalchemy import Connection, Engine, func, insert, select, update

from archiver.db import schema
from archiver.db.batching import in_batches
from archiver.db.schema import DeliveryKind
from archiver.db.unit import read_only, run_transaction
from archiver.store import content, deliveries
from archiver.store.content import ContentEncoder
from archiver.store.rewrites import is_status_rewrite
from archiver.store.spool import Spool

if TYPE_CHECKING:
    from archiver.store.parse import ParsedMessage

__all__ = ["MessageStore", "Origin", "Outcome", "StoreResult", "utcnow"]

#: Messages up to this size are compressed before the write transaction opens;
#: bigger ones are compressed chunk by chunk while being inserted.
PRECOMPRESS_LIMIT = 8 * 1024 * 1024


def utcnow() -> datetime:
    return datetime.now(timezone.utc)


@dataclass(frozen=True, init=False)
class Origin:
    """Where one copy of a message came from: a POP3 delivery or an imported file."""

    account: str
    #: how it arrived; default: pop3 when a UIDL is given, else import
    kind: DeliveryKind
    uidl: str | None
    server_size: int | None
    #: imports: the file the message came from (descriptive only)
    source: str | None
    folder: str | None
    #: The collector saw this UIDL before with another size: if the content
    #: differs, the server reused the UIDL and this delivery replaces the old one.
    supersede: bool

    def __init__(self, account: str, kind: DeliveryKind | None = None, *,
                 uidl: str | None = None, server_size: int | None = None,
                 source: str | None = None, folder: str | None = None,
                 supersede: bool = False) -> None:
        if kind is None:
            kind = DeliveryKind.POP3 if uidl is not None else DeliveryKind.IMPORT
        for name, value in (("account", account), ("kind", kind), ("uidl", uidl),
                            ("server_size", server_size), ("source", source),
                            ("folder", folder), ("supersede", supersede)):
            object.__setattr__(self, name, value)


class Outcome(enum.StrEnum):
    """What storing one message did."""

    ARCHIVED = "archived"  # new content stored, delivery recorded
    DUPLICATE = "duplicate"  # content was already archived; a new delivery recorded
    KNOWN = "known"  # this very delivery was already recorded; nothing changed
    #: the server rewrote a recorded delivery's message (status headers): the new
    #: bytes are stored and recorded as the same mail (deliveries.rewrite_of)
    REWRITTEN = "rewritten"


@dataclass(frozen=True)
class StoreResult:
    sha256: str
    size: int
    outcome: Outcome
    origin: Origin


class _Prepared:
    """A new message made ready off the write transaction: parsed and compressed."""

    __slots__ = ("spool", "parsed", "chunks")

    def __init__(self, spool: Spool, parsed: ParsedMessage, chunks: list[bytes] | None) -> None:
        self.spool = spool
        self.parsed = parsed
        self.chunks = chunks


class MessageStore:
    """Stores messages into one archive database.

    Thread-safe for concurrent callers sharing one instance (each batch is its
    own transaction); several processes may store into one database at once:
    a unique-key race between them is redone, never duplicated.
    """

    def __init__(
        self,
        engine: Engine,
        *,
        compression: str = "zstd",
        clock: Callable[[], datetime] = utcnow,
        chunk_size: int | None = None,
    ) -> None:
        self.engine = engine
        self.encoder = (ContentEncoder(compression, chunk_size) if chunk_size
                        else ContentEncoder(compression))
        self.clock = clock
        self._account_ids: dict[str, int] = {}

    @property
    def compression(self) -> str:
        return self.encoder.compression

    # -- accounts ---------------------------------------------------------

    def account_id(self, name: str) -> int:
        """The id of account ``name``, creating its row on first use.

        Account names are case-insensitive, as in config.toml: ``SALES`` finds
        the row of ``sales``; a new row keeps the spelling it was created with.
        """
        cached = self._account_ids.get(name.casefold())
        if cached is not None:
            return cached
        found = run_transaction(self.engine, lambda conn: self._account_row(conn, name))
        self._account_ids[name.casefold()] = found
        return found

    def _account_row(self, conn: Connection, name: str) -> int:
        table = schema.accounts
        # Names are ASCII ([A-Za-z0-9._-], config validation), so lower() is exact.
        found = conn.execute(select(table.c.id).where(func.lower(table.c.name) == name.lower())
                             .order_by(table.c.id).limit(1)).scalar()
        if found is None:
            # A race with another process creating it is an IntegrityError:
            # run_transaction redoes this, and the read then finds its row.
            key = conn.execute(
                insert(table).values(name=name, created_at=self.clock())
            ).inserted_primary_key
            assert key is not None
            found = key[0]
        return int(found)

    # -- writing ----------------------------------------------------------

    def store(self, spool: Spool, origin: Origin) -> StoreResult:
        """Store one message and its delivery (see :meth:`store_batch`)."""
        return self.store_batch([(spool, origin)])[0]

    def store_batch(self, items: Sequence[tuple[Spool, Origin]], *,
                    parsed: Mapping[str, Any] | None = None) -> list[StoreResult]:
        """Store messages and their deliveries in ONE transaction; results in input order.

        When this returns, everything is committed durably. On error nothing
        of the batch is stored (a DatabaseError or StoreError is raised). The
        spools are not closed. ``parsed`` may map a SHA-256 to its
        ParsedMessage, or to a ticket whose ``result()`` gives it (see
        :mod:`archiver.store.parsepool`); others are parsed here.
        """
        if not items:
            return []
        for spool, _ in items:
            spool.finish()
        account_ids = {o.account: self.account_id(o.account) for _, o in items}
        # Parse and compress new content before the write transaction opens:
        # it is the slow part, and no lock should wait on it.
        m = schema.messages
        with read_only(self.engine) as conn:
            existing = _select_map(conn, m.c.sha256, m.c.id, {s.sha256 for s, _ in items})
        prepared: dict[str, _Prepared] = {}
        for spool, _ in items:
            if spool.sha256 not in existing and spool.sha256 not in prepared:
                prepared[spool.sha256] = self._prepare(spool, (parsed or {}).get(spool.sha256))
        return run_transaction(
            self.engine, lambda conn: self._store_batch(conn, items, account_ids, prepared))

    def _store_batch(self, conn: Connection, items: Sequence[tuple[Spool, Origin]],
                     account_ids: dict[str, int], prepared: dict[str, _Prepared],
                     ) -> list[StoreResult]:
        m = schema.messages
        now = self.clock()

        # 1. Which POP3 deliveries are already recorded? (account, UIDL) -> message pk
        known_uidls = deliveries.recorded_uidls(
            conn, {(account_ids[o.account], o.uidl) for _, o in items if o.uidl is not None})

        # 2. Which content is needed, and which of it is already archived?
        wanted = [
            (spool, origin)
            for spool, origin in items
            if origin.uidl is None
            or (account_ids[origin.account], origin.uidl) not in known_uidls
            or origin.supersede
        ]
        shas = list(dict.fromkeys(spool.sha256 for spool, _ in wanted))
        existing = _select_map(conn, m.c.sha256, m.c.id, shas)
        new_shas = [sha for sha in shas if sha not in existing]
        by_sha = {spool.sha256: spool for spool, _ in wanted}
        for sha in new_shas:  # normally prepared already; not if purged meanwhile
            if sha not in prepared:
                prepared[sha] = self._prepare(by_sha[sha])
        if new_shas:
            conn.execute(insert(m), [self._message_row(prepared[s], now) for s in new_shas])
            ids = _select_map(conn, m.c.sha256, m.c.id, new_shas)
            self._insert_content(conn, [(ids[s], prepared[s]) for s in new_shas])
            existing.update(ids)

        # 3. Deliveries without UIDL are recorded once per (account, message, kind).
        without_uidl = {
            kind: deliveries.recorded_without_uidl(
                conn, kind, {(account_ids[o.account], existing[s.sha256])
                             for s, o in wanted if o.uidl is None and o.kind == kind})
            for kind in {o.kind for _, o in wanted if o.uidl is None}
        }

        # 4. Record the deliveries.
        results: list[StoreResult] = []
        new_deliveries: list[deliveries.NewDelivery] = []
        seen_again: list[tuple[int, str, int | None]] = []
        fresh = set(new_shas)
        for spool, origin in items:
            acc = account_ids[origin.account]
            outcome = None
            rewrite_of: tuple[int, datetime] | None = None
            if origin.uidl is not None:
                key = (acc, origin.uidl)
                if key in known_uidls:
                    old_pk = known_uidls[key]
                    msg_pk = existing.get(spool.sha256)
                    if not origin.supersede or msg_pk is None or msg_pk == old_pk:
                        outcome = Outcome.KNOWN
                        seen_again.append((acc, origin.uidl, origin.server_size))
                    else:
                        superseded = deliveries.supersede(conn, acc, origin.uidl)
                        if (superseded is not None and old_pk is not None
                                and _rewrite_of(conn, old_pk, spool)):
                            rewrite_of = superseded
                elif spool.sha256 not in fresh and deliveries.adopt_uidl(
                        conn, acc, existing[spool.sha256], origin.uidl, origin.server_size):
                    outcome = Outcome.KNOWN  # known by content before, now by its UIDL
                    known_uidls[key] = existing[spool.sha256]
                if outcome is None:
                    known_uidls[key] = existing[spool.sha256]
            else:
                recorded = without_uidl[origin.kind]
                once_key = (acc, existing[spool.sha256])
                if once_key in recorded:
                    outcome = Outcome.KNOWN
                recorded.add(once_key)
            if outcome is None:
                outcome = (Outcome.REWRITTEN if rewrite_of is not None
                           else Outcome.ARCHIVED if spool.sha256 in fresh else Outcome.DUPLICATE)
                fresh.discard(spool.sha256)  # a second copy in this batch is a duplicate
                new_deliveries.append(deliveries.NewDelivery(
                    account_id=acc, kind=origin.kind, message_pk=existing[spool.sha256],
                    uidl=origin.uidl, server_size=origin.server_size,
                    source=origin.source, folder=origin.folder,
                    rewrite_of=rewrite_of[0] if rewrite_of else None,
                    first_seen_at=rewrite_of[1] if rewrite_of else None))
            results.append(StoreResult(spool.sha256, spool.size, outcome, origin))
        deliveries.record(conn, new_deliveries, now)
        # A new delivery may bring the message under other retention rules.
        _mark_retention_stale(conn, {d.message_pk for d in new_deliveries} - set(
            existing[s] for s in new_shas))
        # Fetched again with the content it had (a changed LIST size, or a UIDL
        # recorded as gone that is back): the message is on the server, with the
        # size LIST gives now, so the next pass neither fetches it again nor
        # keeps it from its deletion.
        for acc in {a for a, _, _ in seen_again}:
            deliveries.confirm_on_server(conn, acc, [(u, s) for a, u, s in seen_again if a == acc])
        return results

    def _prepare(self, spool: Spool, parsed: Any = None) -> _Prepared:
        if parsed is None:
            # Imported here: a collection pass with nothing new never parses,
            # and the email package is a noticeable part of start-up.
            from archiver.store.parse import parse_message

            parsed = parse_message(spool.view())
        elif hasattr(parsed, "result"):  # a ParseTicket from the parse pool
            parsed = parsed.result()
        chunks = self.encoder.encode_all(spool) if spool.size <= PRECOMPRESS_LIMIT else None
        return _Prepared(spool, parsed, chunks)

    def _message_row(self, p: _Prepared, now: datetime) -> dict[str, object]:
        parsed = p.parsed
        return {
            "sha256": p.spool.sha256,
            "size": p.spool.size,
            "archived_at": now,
            "compression": self.encoder.compression,
            "chunk_count": self.encoder.chunk_count(p.spool.size),
            "stored_size": sum(len(c) for c in p.chunks) if p.chunks is not None else 0,
            "message_id_header": parsed.message_id,
            "subject": parsed.subject,
            "from_address": (parsed.from_address or None) and parsed.from_address[:320],
            "from_display": parsed.from_display,
            "date": parsed.date,
            "sort_date": parsed.date or now,
            "has_attachments": bool(parsed.attachments),
            "parse_defects": "; ".join(dict.fromkeys(parsed.defects))[:1000] or None,
            "retention_stale": True,
        }

    def _insert_content(self, conn: Connection, new: list[tuple[int, _Prepared]]) -> None:
        m = schema.messages
        self.encoder.insert(conn, [(pk, p.chunks) for pk, p in new if p.chunks is not None])
        for pk, p in new:
            if p.chunks is None:
                stored = self.encoder.stream(conn, pk, p.spool)
                conn.execute(update(m).where(m.c.id == pk).values(stored_size=stored))

        texts, addresses, attachments = [], [], []
        for pk, p in new:
            parsed = p.parsed
            texts.append({"message_id": pk, "body": parsed.text})
            for pos, (role, address, name) in enumerate(parsed.addresses):
                domain = address.rsplit("@", 1)[1][:255] if "@" in address else None
                addresses.append(
                    {"message_id": pk, "role": role, "position": pos, "address": address,
                     "domain": domain, "display_name": name}
                )
            for pos, a in enumerate(parsed.attachments):
                attachments.append(
                    {"message_id": pk, "position": pos, "filename": a.filename,
                     "content_type": a.content_type, "size": a.size}
                )
        conn.execute(insert(schema.message_texts), texts)
        if addresses:
            conn.execute(insert(schema.message_addresses), addresses)
        if attachments:
            conn.execute(insert(schema.attachments), attachments)


def _mark_retention_stale(conn: Connection, message_pks: set[int]) -> None:
    m = schema.messages
    for part in in_batches(sorted(message_pks)):
        conn.execute(update(m).where(m.c.id.in_(part)).values(retention_stale=True))


def _select_map(conn: Connection, key_col: Any, value_col: Any, keys: Iterable[Any],
                ) -> dict[Any, Any]:
    out: dict[Any, Any] = {}
    for batch in in_batches(list(keys)):
        out.update((k, v) for k, v in conn.execute(select(key_col, value_col).where(key_col.in_(batch))))
    return out


#: Messages larger than this are not compared for a status rewrite (read whole).
REWRITE_COMPARE_LIMIT = 32 * 1024 * 1024


def _rewrite_of(conn: Connection, old_pk: int, spool: Spool) -> bool:
    """Is ``spool`` the server's status rewrite of archived message ``old_pk``?"""
    stored = content.by_pk(conn, old_pk)
    if max(stored.size, spool.size) > REWRITE_COMPARE_LIMIT:
        return False
    return is_status_rewrite(content.read_bytes(conn, stored), bytes(spool.view()))
