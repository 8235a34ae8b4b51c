"""The message store: raw bytes in, deliveries recorded, content out byte-exact.

Contract (DESIGN.md §2):

* content is stored once per SHA-256 (single-instance); every delivery of it
  (an account + UIDL, or an imported file) is recorded;
* a message's content, its parsed metadata and its delivery commit in the
  same transaction — when :meth:`MessageStore.store_batch` returns, they are
  durable, and only then may a collector delete the message on the server;
* reading back yields exactly the stored bytes, streamed chunk by chunk.

Content is cut into chunks of :data:`CHUNK_SIZE` raw bytes, each compressed
on its own, so no single row approaches MariaDB's packet limit and memory
stays bounded for messages of any size.
"""

from __future__ import annotations

import hashlib
import threading
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime, timezone

from sqlalchemy import Connection, Engine, and_, func, insert, select, tuple_
from sqlalchemy.exc import IntegrityError, OperationalError

from archiver.db import schema
from archiver.db.batching import in_batches
from archiver.errors import AmbiguousId, CorruptContent, MessageNotFound, StoreError, UsageError
from archiver.store.spool import Spool

#: Raw bytes per stored chunk.
CHUNK_SIZE = 1024 * 1024
#: Messages up to this size are compressed before the write transaction opens;
#: bigger ones are compressed chunk by chunk while being inserted.
PRECOMPRESS_LIMIT = 8 * 1024 * 1024
ZSTD_LEVEL = 3

MIN_PREFIX = 8
_HEX = frozenset("0123456789abcdef")


def utcnow() -> datetime:
    return datetime.now(timezone.utc)


@dataclass(frozen=True)
class Origin:
    """Where one copy of a message came from: a POP3 delivery or an imported file."""

    account: str
    uidl: str | None = None
    server_size: int | None = None
    source: str | None = None
    folder: str | None = None
    #: The collector saw this UIDL before with another size: if the content
    #: differs, the server reused the UIDL and this delivery replaces the old one.
    supersede: bool = False


#: Outcomes of storing one message.
ARCHIVED = "archived"  # new content stored, delivery recorded
DUPLICATE = "duplicate"  # content was already archived; delivery recorded
KNOWN = "known"  # this very delivery was already recorded; nothing changed


@dataclass(frozen=True)
class StoreResult:
    sha256: str
    size: int
    outcome: str
    origin: Origin


@dataclass(frozen=True)
class StoredMessage:
    """A message row as the read side needs it."""

    pk: int
    sha256: str
    size: int
    compression: str
    chunk_count: int


class _Prepared:
    """A new message made ready off the write transaction: parsed and compressed."""

    __slots__ = ("spool", "parsed", "chunks", "stored_size")

    def __init__(self, spool: Spool, parsed, chunks: list[bytes] | None) -> None:
        self.spool = spool
        self.parsed = parsed
        self.chunks = chunks
        self.stored_size = sum(len(c) for c in chunks) if chunks is not None else 0


class MessageStore:
    """Stores and reads messages in one archive database.

    Thread-safe for concurrent callers sharing one instance (each call uses
    its own connection); several processes may store into one database at
    once: a unique-key race between them is retried, never duplicated.
    """

    def __init__(
        self,
        engine: Engine,
        *,
        compression: str = "zstd",
        clock: Callable[[], datetime] = utcnow,
        chunk_size: int = CHUNK_SIZE,
    ) -> None:
        if compression not in ("zstd", "none"):
            raise ValueError(f"unknown compression {compression!r}")
        self.engine = engine
        self.compression = compression
        self.clock = clock
        self.chunk_size = chunk_size
        self._account_ids: dict[str, int] = {}
        self._local = threading.local()

    # -- accounts ---------------------------------------------------------

    def account_id(self, name: str) -> int:
        """The id of account ``name``, creating its row on first use."""
        cached = self._account_ids.get(name)
        if cached is not None:
            return cached
        table = schema.accounts
        for _ in range(3):
            with self.engine.begin() as conn:
                found = conn.execute(select(table.c.id).where(table.c.name == name)).scalar()
                if found is None:
                    try:
                        with conn.begin_nested():
                            found = conn.execute(
                                insert(table).values(name=name, created_at=self.clock())
                            ).inserted_primary_key[0]
                    except IntegrityError:
                        continue  # another process created it; read it again
            self._account_ids[name] = found
            return found
        raise StoreError(f"cannot create account row {name!r}")

    # -- writing ----------------------------------------------------------

    def store(self, spool: Spool, origin: Origin) -> StoreResult:
        """Store one message and its delivery (see :meth:`store_batch`)."""
        return self.store_batch([(spool, origin)])[0]

    def store_batch(self, items: Sequence[tuple[Spool, Origin]], *,
                    parsed: Mapping[str, object] | None = None) -> list[StoreResult]:
        """Store messages and their deliveries in ONE transaction; results in input order.

        When this returns, everything is committed durably. On error nothing
        of the batch is stored. The spools are not closed. ``parsed`` may map
        a SHA-256 to its ParsedMessage, or to a ticket whose ``result()``
        gives it (see :mod:`archiver.store.parsepool`); others are parsed here.
        """
        if not items:
            return []
        for spool, _ in items:
            spool.finish()
        account_ids = {o.account: self.account_id(o.account) for _, o in items}
        # Parse and compress new content before the write transaction opens:
        # it is the slow part, and no lock should wait on it.
        m = schema.messages
        with self.engine.connect() as conn:
            existing = _select_map(conn, m.c.sha256, m.c.id, {s.sha256 for s, _ in items})
        prepared: dict[str, _Prepared] = {}
        for spool, _ in items:
            if spool.sha256 not in existing and spool.sha256 not in prepared:
                prepared[spool.sha256] = self._prepare(spool, (parsed or {}).get(spool.sha256))
        last_error: Exception | None = None
        for _attempt in range(5):
            try:
                with self.engine.begin() as conn:
                    return self._store_batch(conn, items, account_ids, prepared)
            except IntegrityError as exc:
                # Another writer stored the same content or delivery between
                # our reads and our inserts; everything rolled back, so read
                # again and redo the batch.
                last_error = exc
            except OperationalError as exc:
                if not _is_deadlock(exc):
                    raise
                last_error = exc  # the database chose us as a deadlock victim: redo
        raise StoreError(f"could not store a batch after repeated conflicts: "
                         f"{getattr(last_error, 'orig', last_error)}")

    def _store_batch(self, conn, items, account_ids, prepared) -> list[StoreResult]:
        m = schema.messages
        d = schema.deliveries
        now = self.clock()

        # 1. Which POP3 deliveries are already recorded? (account, UIDL) -> message pk
        uidl_keys = list({(account_ids[o.account], o.uidl) for _, o in items if o.uidl is not None})
        known_uidls: dict[tuple[int, str], int | None] = {}
        for batch in in_batches(uidl_keys):
            for acc, uidl, msg_pk in conn.execute(
                select(d.c.account_id, d.c.uidl, d.c.message_id).where(
                    tuple_(d.c.account_id, d.c.uidl).in_(batch)
                )
            ):
                known_uidls[(acc, uidl)] = msg_pk

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

        # 3. Imports are recorded once per (account, message).
        import_keys = list(
            {(account_ids[o.account], existing[s.sha256]) for s, o in wanted if o.uidl is None}
        )
        known_imports: set[tuple[int, int]] = set()
        for batch in in_batches(import_keys):
            known_imports.update(
                conn.execute(
                    select(d.c.account_id, d.c.message_id).where(
                        and_(tuple_(d.c.account_id, d.c.message_id).in_(batch), d.c.uidl.is_(None))
                    )
                ).all()
            )

        # 4. Record the deliveries.
        results: list[StoreResult] = []
        rows = []
        fresh = set(new_shas)
        for spool, origin in items:
            acc = account_ids[origin.account]
            outcome = None
            if origin.uidl is not None:
                key = (acc, origin.uidl)
                if key in known_uidls:
                    old_pk = known_uidls[key]
                    msg_pk = existing.get(spool.sha256)
                    if not origin.supersede or msg_pk is None or msg_pk == old_pk:
                        outcome = KNOWN
                    else:
                        # The server reused this UIDL for other content: the old
                        # delivery keeps its message but gives the UIDL up.
                        conn.execute(
                            d.update()
                            .where(d.c.account_id == acc, d.c.uidl == origin.uidl)
                            .values(uidl=None, source=f"pop3 uidl {origin.uidl} (reused by server)"[:1000])
                        )
                if outcome is None:
                    known_uidls[key] = existing[spool.sha256]
            else:
                key = (acc, existing[spool.sha256])
                if key in known_imports:
                    outcome = KNOWN
                known_imports.add(key)
            if outcome is None:
                outcome = ARCHIVED if spool.sha256 in fresh else DUPLICATE
                fresh.discard(spool.sha256)  # a second copy in this batch is a duplicate
                rows.append(
                    {
                        "account_id": acc,
                        "uidl": origin.uidl,
                        "message_id": existing[spool.sha256],
                        "server_size": origin.server_size,
                        "first_seen_at": now,
                        "deleted_on_server_at": None,
                        "tombstone": False,
                        "source": origin.source[:1000] if origin.source else None,
                        "folder": origin.folder[:255] if origin.folder else None,
                    }
                )
            results.append(StoreResult(spool.sha256, spool.size, outcome, origin))
        if rows:
            conn.execute(insert(d), rows)
        return results

    def _prepare(self, spool: Spool, parsed=None) -> _Prepared:
        if parsed is None:
            # Imported here: a collection pass with nothing new never parses,
            # and the email package is a noticeable part of start-up.
            from archiver.store.parse import parse_message

            parsed = parse_message(spool.view())
        elif hasattr(parsed, "result"):  # a ParseTicket from the parse pool
            parsed = parsed.result()
        chunks = None
        if spool.size <= PRECOMPRESS_LIMIT:
            chunks = [self._encode(block) for block in spool.iter_blocks(self.chunk_size)]
        return _Prepared(spool, parsed, chunks)

    def _message_row(self, p: _Prepared, now: datetime) -> dict:
        parsed = p.parsed
        n_chunks = -(-p.spool.size // self.chunk_size)
        return {
            "sha256": p.spool.sha256,
            "size": p.spool.size,
            "archived_at": now,
            "compression": self.compression,
            "chunk_count": n_chunks,
            "stored_size": p.stored_size,
            "message_id_header": parsed.message_id,
            "subject": parsed.subject,
            "from_address": (parsed.from_address or None) and parsed.from_address[:320],
            "from_display": parsed.from_display,
            "date": parsed.date,
            "sort_date": parsed.date or now,
            "has_attachments": bool(parsed.attachments),
            "parse_defects": "; ".join(dict.fromkeys(parsed.defects))[:1000] or None,
        }

    def _insert_content(self, conn: Connection, new: list[tuple[int, _Prepared]]) -> None:
        c = schema.message_chunks
        chunk_rows, pending = [], 0
        for pk, p in new:
            if p.chunks is None:
                self._stream_chunks(conn, pk, p)
                continue
            for seq, data in enumerate(p.chunks):
                chunk_rows.append({"message_id": pk, "seq": seq, "data": data})
                pending += len(data)
            # Keep each multi-row statement well under MariaDB's 16 MiB packet.
            if pending >= 4 * 1024 * 1024:
                conn.execute(insert(c), chunk_rows)
                chunk_rows, pending = [], 0
        if chunk_rows:
            conn.execute(insert(c), chunk_rows)

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

    def _stream_chunks(self, conn: Connection, pk: int, p: _Prepared) -> None:
        """Insert a big message's chunks one at a time (bounded memory)."""
        c = schema.message_chunks
        stored = 0
        for seq, block in enumerate(p.spool.iter_blocks(self.chunk_size)):
            data = self._encode(block)
            stored += len(data)
            conn.execute(insert(c).values(message_id=pk, seq=seq, data=data))
        conn.execute(
            schema.messages.update().where(schema.messages.c.id == pk).values(stored_size=stored)
        )

    def _encode(self, block: bytes) -> bytes:
        if self.compression == "none":
            return bytes(block)
        return self._compressor().compress(block)

    def _compressor(self):
        comp = getattr(self._local, "compressor", None)
        if comp is None:
            import zstandard

            comp = self._local.compressor = zstandard.ZstdCompressor(level=ZSTD_LEVEL)
        return comp

    # -- reading ----------------------------------------------------------

    def resolve(self, conn: Connection, ident: str) -> StoredMessage:
        """The message whose id (SHA-256 hex) is ``ident`` or starts with it.

        Raises UsageError for a malformed id, MessageNotFound, AmbiguousId.
        """
        prefix = ident.strip().lower()
        if len(prefix) < MIN_PREFIX or not set(prefix) <= _HEX or len(prefix) > 64:
            raise UsageError(
                f"invalid message id {ident!r}: give the SHA-256 in hex, or a unique "
                f"prefix of at least {MIN_PREFIX} hex digits"
            )
        m = schema.messages
        cols = (m.c.id, m.c.sha256, m.c.size, m.c.compression, m.c.chunk_count)
        if len(prefix) == 64:
            rows = conn.execute(select(*cols).where(m.c.sha256 == prefix)).all()
        else:
            rows = conn.execute(
                select(*cols).where(m.c.sha256.startswith(prefix, autoescape=True)).limit(5)
            ).all()
        if not rows:
            raise MessageNotFound(f"no message with id {prefix}")
        if len(rows) > 1:
            raise AmbiguousId(
                f"id prefix {prefix} matches several messages ({', '.join(r.sha256[:16] for r in rows)}"
                f"{', ...' if len(rows) == 5 else ''}); give more digits"
            )
        return StoredMessage(*rows[0])

    def iter_content(self, conn: Connection, msg: StoredMessage) -> Iterator[bytes]:
        """The raw bytes of ``msg``, chunk by chunk. Raises CorruptContent on damage."""
        c = schema.message_chunks
        seqs = conn.execute(
            select(c.c.seq).where(c.c.message_id == msg.pk).order_by(c.c.seq)
        ).scalars().all()
        if seqs != list(range(msg.chunk_count)):
            raise CorruptContent(
                f"message {msg.sha256}: expected chunks 0..{msg.chunk_count - 1}, found {_ranges(seqs)}"
            )
        decompressor = None
        for seq in seqs:
            data = conn.execute(
                select(c.c.data).where(c.c.message_id == msg.pk, c.c.seq == seq)
            ).scalar_one()
            if msg.compression == "none":
                yield bytes(data)
                continue
            if decompressor is None:
                import zstandard

                decompressor = zstandard.ZstdDecompressor()
            try:
                yield decompressor.decompress(bytes(data))
            except Exception as exc:  # zstandard.ZstdError, or garbage content
                raise CorruptContent(
                    f"message {msg.sha256}: chunk {seq} does not decompress ({exc})"
                ) from exc

    def read_verified(self, conn: Connection, msg: StoredMessage) -> Spool:
        """The message's bytes in a finished Spool, after checking size and SHA-256.

        Raises CorruptContent naming the message if storage no longer matches
        its id. Memory stays bounded (big messages spool to a temp file).
        """
        spool = Spool()
        try:
            for block in self.iter_content(conn, msg):
                spool.write(block)
            spool.finish()
        except BaseException:
            spool.close()
            raise
        if spool.size != msg.size or spool.sha256 != msg.sha256:
            spool.close()
            raise CorruptContent(
                f"message {msg.sha256}: stored content no longer matches its id "
                "(run `archiver verify`); refusing to hand it out as intact"
            )
        return spool

    def read_bytes(self, conn: Connection, msg: StoredMessage) -> bytes:
        """The whole raw message in memory (small messages, tests)."""
        return b"".join(self.iter_content(conn, msg))

    def check_content(self, conn: Connection, msg: StoredMessage) -> str | None:
        """Recompute size and SHA-256 from storage; None if intact, else what is wrong."""
        h = hashlib.sha256()
        size = 0
        try:
            for block in self.iter_content(conn, msg):
                h.update(block)
                size += len(block)
        except CorruptContent as exc:
            return str(exc).removeprefix(f"message {msg.sha256}: ")
        if size != msg.size:
            return f"stored content is {size} bytes, expected {msg.size}"
        if h.hexdigest() != msg.sha256:
            return f"stored content hashes to {h.hexdigest()}, not to its id"
        return None

    def iter_messages(self, conn: Connection, batch: int = 500) -> Iterator[StoredMessage]:
        """Every stored message, in id order, fetched in pages (keyset pagination)."""
        m = schema.messages
        last = 0
        while True:
            rows = conn.execute(
                select(m.c.id, m.c.sha256, m.c.size, m.c.compression, m.c.chunk_count)
                .where(m.c.id > last)
                .order_by(m.c.id)
                .limit(batch)
            ).all()
            if not rows:
                return
            for row in rows:
                yield StoredMessage(*row)
            last = rows[-1][0]

    def count(self, conn: Connection) -> tuple[int, int]:
        """(unique messages, their total raw size)."""
        m = schema.messages
        n, total = conn.execute(select(func.count(), func.coalesce(func.sum(m.c.size), 0))).one()
        return int(n), int(total)


def _is_deadlock(exc: OperationalError) -> bool:
    """MySQL/MariaDB deadlock or lock wait timeout; PostgreSQL deadlock or serialization failure."""
    orig = getattr(exc, "orig", None)
    code = getattr(orig, "args", [None])[0] if orig is not None else None
    sqlstate = getattr(orig, "sqlstate", None) or getattr(orig, "pgcode", None)
    return code in (1205, 1213) or sqlstate in ("40P01", "40001")


def _select_map(conn: Connection, key_col, value_col, keys: Iterable) -> dict:
    out = {}
    for batch in in_batches(list(keys)):
        out.update(conn.execute(select(key_col, value_col).where(key_col.in_(batch))).all())
    return out



def _ranges(seqs: list[int]) -> str:
    if not seqs:
        return "none"
    return ", ".join(str(s) for s in seqs[:10]) + (", ..." if len(seqs) > 10 else "")
