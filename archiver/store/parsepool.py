"""Parsing messages in worker processes, beside network reads and commits.

MIME parsing is pure Python and holds the GIL, so in the collector it
competes with the POP3 reader and the database writer for one core.
:class:`ParsePool` moves it to worker processes: the network loop submits
each message as it arrives (small ones in groups, to amortise the
inter-process hop), and the writer picks the results up when it stores the
batch. Messages spooled to disk (big ones) are parsed in-process through
their memory map instead of being copied through a pipe.

The pool is an optimisation only: :meth:`ParsePool.result` of a failed or
unavailable worker falls back to parsing in-process, so a broken pool costs
speed, never mail.
"""

from __future__ import annotations

import logging
import multiprocessing
import os
import threading
from concurrent.futures import Future, ProcessPoolExecutor

from archiver.store.parse import ParsedMessage, parse_message
from archiver.store.spool import Spool

log = logging.getLogger("archiver.store")

#: Messages per task, and bytes per task: one pipe round trip per group.
GROUP_MESSAGES = 32
GROUP_BYTES = 2 * 1024 * 1024


def _parse_group(raws: list[bytes]) -> list[ParsedMessage]:
    return [parse_message(raw) for raw in raws]


def default_workers() -> int:
    """Worker processes worth having: all cores but the one the collector itself uses."""
    return max(1, min(4, (os.cpu_count() or 1) - 1))


class ParseTicket:
    """A parse that may still be running; :meth:`result` waits for it."""

    __slots__ = ("_spool", "_future", "_index", "_pool")

    def __init__(self, spool: Spool, future: Future | None, index: int,
                 pool: ParsePool | None = None) -> None:
        self._spool = spool
        self._future = future
        self._index = index
        self._pool = pool

    def result(self) -> ParsedMessage:
        if self._future is not None:
            try:
                return self._future.result()[self._index]
            except Exception as exc:  # a dead worker costs speed, never mail
                if self._pool is not None:
                    self._pool.mark_broken(exc)
        return parse_message(self._spool.view())


class ParsePool:
    """Worker processes that parse messages; use as a context manager.

    Workers come from a ``forkserver`` (never ``fork`` of this possibly
    multi-threaded process), started on the first submit.
    """

    def __init__(self, workers: int | None = None) -> None:
        self.workers = workers if workers is not None else default_workers()
        self._executor: ProcessPoolExecutor | None = None
        self._group: list[tuple[Spool, list]] = []
        self._group_bytes = 0
        self._broken = False
        # Several accounts may collect at once and share one pool.
        self._lock = threading.Lock()

    def submit(self, spool: Spool) -> ParseTicket:
        """Start parsing ``spool`` (finished); the ticket's result() gives the ParsedMessage."""
        if not spool.in_memory or self._broken or self.workers < 1:
            return ParseTicket(spool, None, 0)
        with self._lock:
            ticket = ParseTicket(spool, None, len(self._group), self)
            self._group.append((spool, ticket))
            self._group_bytes += spool.size
            full = len(self._group) >= GROUP_MESSAGES or self._group_bytes >= GROUP_BYTES
        if full:
            self.flush()
        return ticket

    def flush(self) -> None:
        """Send the partial group to a worker now (call before waiting on its tickets)."""
        with self._lock:
            if not self._group:
                return
            group, self._group, self._group_bytes = self._group, [], 0
            try:
                future = self._pool().submit(_parse_group, [s.getvalue() for s, _ in group])
            except Exception as exc:  # cannot start workers here: parse in-process
                log.warning("cannot start parse workers (%s); parsing in-process", exc)
                self._broken = True
                return
            for _, ticket in group:
                ticket._future = future

    def mark_broken(self, exc: BaseException) -> None:
        """Stop using the workers after a failure; later messages parse in-process."""
        with self._lock:
            if not self._broken:
                log.warning("parse worker failed (%s); parsing in-process from now on", exc)
            self._broken = True

    def _pool(self) -> ProcessPoolExecutor:
        if self._executor is None:
            ctx = multiprocessing.get_context("forkserver")
            ctx.set_forkserver_preload(["archiver.store.parse"])
            self._executor = ProcessPoolExecutor(max_workers=self.workers, mp_context=ctx)
        return self._executor

    def close(self) -> None:
        self._group = []
        if self._executor is not None:
            self._executor.shutdown(wait=True, cancel_futures=True)
            self._executor = None

    def __enter__(self) -> ParsePool:
        return self

    def __exit__(self, *exc) -> None:
        self.close()
