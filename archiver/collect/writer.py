"""Committing fetched messages on a background thread, batch by batch.

The network loop hands each message over as soon as RETR completes; one
writer thread parses, compresses and commits batches. Reading the next
messages from the server thus overlaps with parsing and with the previous
batch's durable commit (an fsync: time the GIL is free). At most
``max_pending`` batches wait, so memory stays bounded by
``max_pending × batch_bytes`` plus the batch being filled.

The writer only stores; it decides nothing. :meth:`BatchWriter.close`
returns what was committed, and the collection pass decides from that list
alone what may be deleted on the server.
"""

from __future__ import annotations

import queue
import threading
from collections.abc import Callable
from dataclasses import dataclass

from archiver.store.ingest import Origin, StoreResult
from archiver.store.spool import Spool

__all__ = ["BatchWriter", "Committed", "Item", "Refused"]

Item = tuple[int, Spool, Origin]


@dataclass(frozen=True, slots=True)
class Committed:
    """Message ``msgnum``'s content and delivery are durably committed."""

    msgnum: int
    result: StoreResult


@dataclass(frozen=True, slots=True)
class Refused:
    """The database refused message ``msgnum``; it stays on the server."""

    msgnum: int
    reason: str


StoreFn = Callable[[list[Item]], list[Committed | Refused]]

_STOP = object()


class BatchWriter:
    """Batches (msgnum, spool, origin) items and stores them on a writer thread.

    ``store_fn(batch)`` commits one batch and says, per message, whether it
    was committed or refused. The first exception raised by ``store_fn``
    stops the writer: later batches are discarded (their spools closed) and
    :meth:`add` / :meth:`close` re-raise it in the caller's thread.
    :attr:`outcomes` holds what was stored until then either way.
    """

    def __init__(self, store_fn: StoreFn, *, batch_messages: int, batch_bytes: int,
                 max_pending: int = 2, before_submit: Callable[[], None] | None = None) -> None:
        self._store_fn = store_fn
        self._before_submit = before_submit
        self._batch_messages = batch_messages
        self._batch_bytes = batch_bytes
        self._queue: queue.Queue[list[Item] | object] = queue.Queue(maxsize=max_pending)
        self._batch: list[Item] = []
        self._batch_size = 0
        self._error: BaseException | None = None
        self._closed = False
        #: per stored message, in commit order; appended by the writer thread only,
        #: read by the caller only after close() has joined it
        self.outcomes: list[Committed | Refused] = []
        self._thread = threading.Thread(target=self._run, name="archiver-writer", daemon=True)
        self._thread.start()

    def add(self, msgnum: int, spool: Spool, origin: Origin) -> None:
        self._raise_error()
        self._batch.append((msgnum, spool, origin))
        self._batch_size += spool.size
        if len(self._batch) >= self._batch_messages or self._batch_size >= self._batch_bytes:
            self._submit()

    def close(self) -> list[Committed | Refused]:
        """Store what is left, wait for the writer; returns :attr:`outcomes`, or
        re-raises the writer's error."""
        if not self._closed:
            self._closed = True
            try:
                if self._error is None and self._batch:
                    self._submit()
            finally:
                _close_spools(self._batch)
                self._batch = []
                self._queue.put(_STOP)
                self._thread.join()
        self._raise_error()
        return self.outcomes

    def _submit(self) -> None:
        if self._before_submit is not None:
            self._before_submit()
        batch, self._batch, self._batch_size = self._batch, [], 0
        # Blocks while max_pending batches wait: back-pressure on the network loop.
        self._queue.put(batch)

    def _raise_error(self) -> None:
        if self._error is not None:
            raise self._error

    def _run(self) -> None:
        while True:
            batch = self._queue.get()
            if batch is _STOP:
                return
            assert isinstance(batch, list)
            if self._error is not None:
                _close_spools(batch)
                continue
            try:
                self.outcomes.extend(self._store_fn(batch))
            except BaseException as exc:  # handed to the caller's thread
                self._error = exc
            finally:
                _close_spools(batch)


def _close_spools(batch: list[Item]) -> None:
    for _, spool, _ in batch:
        spool.close()
