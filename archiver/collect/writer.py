"""Committing fetched messages on a background thread, batch by batch.

The network loop hands each message over as soon as RETR completes; one
writer thread parses, compresses and commits batches. Reading the next
messages from the server thus overlaps with parsing and with the previous
batch's durable commit (an fsync: time the GIL is free). At most
``max_pending`` batches wait, so memory stays bounded by
``max_pending × batch_bytes`` plus the batch being filled.

Order and the lose-nothing rule are unchanged: a message counts as stored
only when ``on_stored`` has been called for it after its batch committed.
"""

from __future__ import annotations

import queue
import threading
from collections.abc import Callable

from archiver.store.spool import Spool
from archiver.store.store import Origin, StoreResult

Item = tuple[int, Spool, Origin]
StoreFn = Callable[[list[Item]], list[tuple[int, StoreResult | None]]]

_STOP = object()


class BatchWriter:
    """Batches (msgnum, spool, origin) items and stores them on a writer thread.

    ``store_fn(batch)`` commits one batch and returns (msgnum, result | None)
    pairs; ``on_stored`` is called with each pair on the writer thread. The
    first exception raised by ``store_fn`` stops the writer: later batches
    are discarded (their spools closed) and :meth:`add` / :meth:`close`
    re-raise it in the caller's thread.
    """

    def __init__(self, store_fn: StoreFn, on_stored: Callable[[int, StoreResult | None], None],
                 *, batch_messages: int, batch_bytes: int, max_pending: int = 2,
                 before_submit: Callable[[], None] | None = None) -> None:
        self._store_fn = store_fn
        self._before_submit = before_submit
        self._on_stored = on_stored
        self._batch_messages = batch_messages
        self._batch_bytes = batch_bytes
        self._queue: queue.Queue = queue.Queue(maxsize=max_pending)
        self._batch: list[Item] = []
        self._batch_size = 0
        self._error: BaseException | None = None
        self._closed = False
        self._thread = threading.Thread(target=self._run, name="archiver-writer", daemon=True)
        self._thread.start()

    def add(self, msgnum: int, spool: Spool, origin: Origin) -> None:
        self._raise_error()
        self._batch.append((msgnum, spool, origin))
        self._batch_size += spool.size
        if len(self._batch) >= self._batch_messages or self._batch_size >= self._batch_bytes:
            self._submit()

    def flush(self) -> None:
        """Hand the current partial batch to the writer now."""
        if self._batch:
            self._submit()

    def close(self) -> None:
        """Store what is left, wait for the writer, and re-raise its error if any."""
        if self._closed:
            self._raise_error()
            return
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
            if self._error is not None:
                _close_spools(batch)
                continue
            try:
                for msgnum, result in self._store_fn(batch):
                    self._on_stored(msgnum, result)
            except BaseException as exc:  # handed to the caller's thread
                self._error = exc
            finally:
                _close_spools(batch)


def _close_spools(batch: list[Item]) -> None:
    for _, spool, _ in batch:
        spool.close()
