"""Raw message bytes on their way into the archive.

A :class:`Spool` receives a message in pieces (from a POP3 RETR or a file),
hashes and counts them as they arrive, and keeps them in memory up to a limit,
beyond which it moves to a temporary file. Whatever the message size, memory
stays bounded by that limit plus one piece.

:class:`WireFormWriter` turns file-form mail into POP3 wire form on the fly
(DESIGN.md §2 rule 3): every bare LF becomes CRLF and a missing final line end
is added, exactly as Dovecot sends a maildir file on RETR, so an imported
message and the same message collected later have the same SHA-256.
"""

from __future__ import annotations

import hashlib
import mmap
import os
import tempfile
from collections.abc import Iterator
from typing import IO, Protocol

#: Messages up to this size stay in memory; bigger ones spool to a temp file.
DEFAULT_MEMORY_LIMIT = 8 * 1024 * 1024


class Spool:
    """Write-once buffer for one raw message, with its SHA-256 and size.

    Write with :meth:`write`, then :meth:`finish`; afterwards read with
    :meth:`view` (bytes or a read-only mmap, for parsing without a copy) or
    :meth:`iter_blocks`. :meth:`close` releases the temp file.
    """

    def __init__(self, memory_limit: int = DEFAULT_MEMORY_LIMIT, tmpdir: str | None = None):
        self._limit = memory_limit
        self._tmpdir = tmpdir
        self._parts: list[bytes] = []
        self._mem_size = 0
        self._file: IO[bytes] | None = None
        self._hash = hashlib.sha256()
        self.size = 0
        self._data: bytes | None = None
        self._map: mmap.mmap | None = None
        self._sha256: str | None = None

    @property
    def finished(self) -> bool:
        return self._sha256 is not None

    @property
    def sha256(self) -> str:
        """The content's SHA-256 (hex); only once :meth:`finish` was called."""
        if self._sha256 is None:
            raise RuntimeError("the spool is not finished: its SHA-256 is not known yet")
        return self._sha256

    @classmethod
    def from_bytes(cls, data: bytes) -> Spool:
        spool = cls(memory_limit=max(len(data), 1))
        spool.write(data)
        return spool.finish()

    def write(self, data: bytes) -> int:
        if self._sha256 is not None:
            raise RuntimeError("spool already finished")
        n = len(data)
        if not n:
            return 0
        self._hash.update(data)
        self.size += n
        if self._file is None and self._mem_size + n <= self._limit:
            self._parts.append(bytes(data))
            self._mem_size += n
            return n
        if self._file is None:
            self._file = tempfile.TemporaryFile(prefix="archiver-spool-", dir=self._tmpdir)
            for part in self._parts:
                self._file.write(part)
            self._parts.clear()
            self._mem_size = 0
        self._file.write(data)
        return n

    def finish(self) -> Spool:
        """Freeze the content; computes :attr:`sha256`. Returns self."""
        if self._sha256 is None:
            self._sha256 = self._hash.hexdigest()
            if self._file is None:
                self._data = self._parts[0] if len(self._parts) == 1 else b"".join(self._parts)
                self._parts = []
            else:
                self._file.flush()
        return self

    @property
    def in_memory(self) -> bool:
        return self._file is None

    def view(self) -> bytes | mmap.mmap:
        """The whole content as a bytes-like object: bytes in memory, else a read-only mmap.

        The mmap is file-backed: the kernel pages it in and out, so a 100 MB
        message does not become 100 MB of private memory.
        """
        self.finish()
        if self._data is not None:
            return self._data
        if self.size == 0:
            return b""
        if self._map is None:
            assert self._file is not None
            self._map = mmap.mmap(self._file.fileno(), 0, access=mmap.ACCESS_READ)
        return self._map

    def getvalue(self) -> bytes:
        """The content as bytes (copies a spooled file into memory: small messages only)."""
        view = self.view()
        return view if isinstance(view, bytes) else bytes(view)

    def iter_blocks(self, block_size: int) -> Iterator[bytes]:
        """The content in slices of ``block_size`` bytes (the last may be shorter)."""
        self.finish()
        if self._data is not None:
            data = self._data
            if len(data) <= block_size:
                if data:
                    yield data
                return
            for offset in range(0, len(data), block_size):
                yield data[offset : offset + block_size]
            return
        assert self._file is not None
        self._file.seek(0)
        while block := self._file.read(block_size):
            yield block

    def close(self) -> None:
        if self._map is not None:
            self._map.close()
            self._map = None
        if self._file is not None:
            self._file.close()
            self._file = None
        self._data = None
        self._parts = []

    def __enter__(self) -> Spool:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def __repr__(self) -> str:
        where = "memory" if self.in_memory else "file"
        return f"<Spool {self.size} bytes in {where} sha256={self._sha256 or '?'}>"


class _Writable(Protocol):
    def write(self, data: bytes, /) -> object: ...


class WireFormWriter:
    """Feeds file-form mail into a sink (anything with ``write``) in POP3 wire form.

    Every LF not preceded by CR becomes CRLF; CRLF, bare CR and every other
    byte pass unchanged; :meth:`close` adds CRLF if the data did not end with
    LF (a file ending in a bare CR gets CRLF after it, as Dovecot does).
    """

    def __init__(self, sink: _Writable) -> None:
        self._sink = sink
        self._carry_cr = False  # previous block ended in "\r": its LF may be next
        self._last = b""

    def write(self, data: bytes) -> int:
        """Convert and pass on ``data``; returns ``len(data)`` (all of it is consumed)."""
        consumed = len(data)
        if not data:
            return 0
        if self._carry_cr:
            data = b"\r" + data
            self._carry_cr = False
        if data.endswith(b"\r"):
            data = data[:-1]
            self._carry_cr = True
        if data:
            # Normalising CRLF to LF first and then every LF to CRLF turns
            # each bare LF into CRLF and leaves everything else as it was.
            out = data.replace(b"\r\n", b"\n").replace(b"\n", b"\r\n") if b"\n" in data else data
            self._sink.write(out)
            self._last = out[-2:]
        return consumed

    def close(self) -> None:
        if self._carry_cr:
            self._sink.write(b"\r")
            self._last = b"\r"
            self._carry_cr = False
        if self._last and not self._last.endswith(b"\n"):
            self._sink.write(b"\r\n")
            self._last = b"\r\n"


def to_wire_form(data: bytes) -> bytes:
    """File-form bytes → POP3 wire form (see :class:`WireFormWriter`)."""
    out: list[bytes] = []

    class _Sink:
        write = staticmethod(out.append)

    writer = WireFormWriter(_Sink())
    writer.write(data)
    writer.close()
    return b"".join(out)


def spool_file(path: str | os.PathLike[str], *, wire_form: bool = True,
               tmpdir: str | None = None) -> Spool:
    """Read a file into a finished spool (in wire form unless told otherwise)."""
    spool = Spool(tmpdir=tmpdir)
    writer = WireFormWriter(spool) if wire_form else None
    with open(path, "rb") as fh:
        while block := fh.read(1024 * 1024):
            (writer or spool).write(block)
    if writer is not None:
        writer.close()
    return spool.finish()


__all__ = [
    "DEFAULT_MEMORY_LIMIT",
    "Spool",
    "WireFormWriter",
    "spool_file",
    "to_wire_form",
]
