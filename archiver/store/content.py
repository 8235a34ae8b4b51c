"""Stored message content: chunks, compression, reading back, verifying.

Content is cut into chunks of :data:`CHUNK_SIZE` raw bytes, each compressed
on its own, so no single row approaches MariaDB's packet limit and memory
stays bounded for messages of any size. Reading back yields exactly the
stored bytes, chunk by chunk.

These functions take the caller's connection (one unit of work, see
:mod:`archiver.db.unit`). Content shown to a user is read through
:mod:`archiver.store.reading`, which audits first; :mod:`archiver.verify`
reads it here directly only to hash it.
"""

from __future__ import annotations

import hashlib
import threading
from collections.abc import Iterator
from dataclasses import dataclass

from sqlalchemy import Connection, func, insert, select

from archiver.db import schema
from archiver.errors import AmbiguousId, CorruptContent, MessageNotFound, UsageError
from archiver.store.spool import Spool

__all__ = [
    "CHUNK_SIZE",
    "MIN_PREFIX",
    "ContentEncoder",
    "StoredMessage",
    "by_pk",
    "check_content",
    "count",
    "iter_content",
    "iter_messages",
    "read_bytes",
    "read_verified",
    "resolve",
]

#: Raw bytes per stored chunk.
CHUNK_SIZE = 1024 * 1024
ZSTD_LEVEL = 3
#: Keep each multi-row chunk INSERT well under MariaDB's 16 MiB packet.
INSERT_BYTES = 4 * 1024 * 1024
#: Shortest id prefix commands accept (DESIGN.md §2 rule 4).
MIN_PREFIX = 8
_HEX = frozenset("0123456789abcdef")
COMPRESSIONS = ("zstd", "none")


@dataclass(frozen=True)
class StoredMessage:
    """A message row as the read side needs it."""

    pk: int
    sha256: str
    size: int
    compression: str
    chunk_count: int


_COLUMNS = (schema.messages.c.id, schema.messages.c.sha256, schema.messages.c.size,
            schema.messages.c.compression, schema.messages.c.chunk_count)


class ContentEncoder:
    """Compresses chunks as ``[archive] compression`` says; thread-safe."""

    def __init__(self, compression: str = "zstd", chunk_size: int = CHUNK_SIZE) -> None:
        if compression not in COMPRESSIONS:
            raise ValueError(f"unknown compression {compression!r}")
        self.compression = compression
        self.chunk_size = chunk_size
        self._local = threading.local()

    def chunk_count(self, size: int) -> int:
        return -(-size // self.chunk_size)

    def encode(self, block: bytes | memoryview) -> bytes:
        if self.compression == "none":
            return bytes(block)
        comp = getattr(self._local, "compressor", None)
        if comp is None:
            import zstandard  # imported on first use: a no-op pass never compresses

            comp = self._local.compressor = zstandard.ZstdCompressor(level=ZSTD_LEVEL)
        result: bytes = comp.compress(block)
        return result

    def encode_all(self, spool: Spool) -> list[bytes]:
        return [self.encode(block) for block in spool.iter_blocks(self.chunk_size)]

    def insert(self, conn: Connection, contents: list[tuple[int, list[bytes]]]) -> None:
        """Insert already encoded chunks: (message pk, chunks) pairs, multi-row statements."""
        c = schema.message_chunks
        rows: list[dict[str, object]] = []
        pending = 0
        for pk, chunks in contents:
            for seq, data in enumerate(chunks):
                rows.append({"message_id": pk, "seq": seq, "data": data})
                pending += len(data)
            if pending >= INSERT_BYTES:
                conn.execute(insert(c), rows)
                rows, pending = [], 0
        if rows:
            conn.execute(insert(c), rows)

    def stream(self, conn: Connection, pk: int, spool: Spool) -> int:
        """Encode and insert a big message's chunks one at a time (bounded memory);
        returns the stored size."""
        c = schema.message_chunks
        stored = 0
        for seq, block in enumerate(spool.iter_blocks(self.chunk_size)):
            data = self.encode(block)
            stored += len(data)
            conn.execute(insert(c).values(message_id=pk, seq=seq, data=data))
        return stored


def resolve(conn: Connection, ident: str) -> StoredMessage:
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
    if len(prefix) == 64:
        rows = conn.execute(select(*_COLUMNS).where(m.c.sha256 == prefix)).all()
    else:
        rows = conn.execute(
            select(*_COLUMNS).where(m.c.sha256.startswith(prefix, autoescape=True)).limit(5)
        ).all()
    if not rows:
        raise MessageNotFound(f"no message with id {prefix}")
    if len(rows) > 1:
        raise AmbiguousId(
            f"id prefix {prefix} matches several messages "
            f"({', '.join(r.sha256[:16] for r in rows)}{', ...' if len(rows) == 5 else ''}); "
            "give more digits"
        )
    return StoredMessage(*rows[0])


def by_pk(conn: Connection, pk: int) -> StoredMessage:
    """The message with primary key ``pk`` (it must exist)."""
    return StoredMessage(*conn.execute(select(*_COLUMNS).where(schema.messages.c.id == pk)).one())


def iter_content(conn: Connection, msg: StoredMessage) -> Iterator[bytes]:
    """The raw bytes of ``msg``, chunk by chunk. Raises CorruptContent on damage."""
    c = schema.message_chunks
    seqs = list(conn.execute(
        select(c.c.seq).where(c.c.message_id == msg.pk).order_by(c.c.seq)
    ).scalars())
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


def read_verified(conn: Connection, msg: StoredMessage) -> Spool:
    """The message's bytes in a finished Spool, after checking size and SHA-256.

    Raises CorruptContent naming the message if storage no longer matches its
    id. Memory stays bounded (big messages spool to a temp file).
    """
    spool = Spool()
    try:
        for block in iter_content(conn, msg):
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


def read_bytes(conn: Connection, msg: StoredMessage) -> bytes:
    """The whole raw message in memory (small messages, tests)."""
    return b"".join(iter_content(conn, msg))


def check_content(conn: Connection, msg: StoredMessage) -> str | None:
    """Recompute size and SHA-256 from storage; None if intact, else what is wrong."""
    h = hashlib.sha256()
    size = 0
    try:
        for block in iter_content(conn, msg):
            h.update(block)
            size += len(block)
    except CorruptContent as exc:
        return str(exc).removeprefix(f"message {msg.sha256}: ")
    if size != msg.size:
        return f"stored content is {size} bytes, expected {msg.size}"
    if h.hexdigest() != msg.sha256:
        return f"stored content hashes to {h.hexdigest()}, not to its id"
    return None


def iter_messages(conn: Connection, batch: int = 500) -> Iterator[StoredMessage]:
    """Every stored message, in id order, fetched in pages (keyset pagination)."""
    m = schema.messages
    last = 0
    while True:
        rows = conn.execute(
            select(*_COLUMNS).where(m.c.id > last).order_by(m.c.id).limit(batch)
        ).all()
        if not rows:
            return
        for row in rows:
            yield StoredMessage(*row)
        last = rows[-1][0]


def count(conn: Connection) -> tuple[int, int]:
    """(unique messages, their total raw size)."""
    m = schema.messages
    n, total = conn.execute(select(func.count(), func.coalesce(func.sum(m.c.size), 0))).one()
    return int(n), int(total)


def _ranges(seqs: list[int]) -> str:
    if not seqs:
        return "none"
    return ", ".join(str(s) for s in seqs[:10]) + (", ..." if len(seqs) > 10 else "")
