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

Workers die with the collector. However the collector ends (SIGKILL,
SIGTERM without a handler, a crash), its workers exit within moments instead
of living on, adopted by PID 1. Left to itself, multiprocessing does not do
this: an idle worker blocks reading its task queue, whose write end it holds
itself, so it never sees EOF. (Under the ``forkserver`` method used before,
CPython 3.11's forkserver does exit when its "alive" pipe reports EOF, but
every worker inherits a copy of that pipe's write end, so it never does; and
the resource tracker waits for all of them: three orphans per killed
collector, plus the forkserver's socket folder ``/tmp/pymp-*``.)
Two independent mechanisms, set up by each worker's initializer:

* ``prctl(PR_SET_PDEATHSIG, SIGKILL)`` (Linux): the kernel kills the worker
  when the *thread* that started it ends. So every worker is started by one
  thread, the pool's owner (:meth:`ParsePool._own`), which lives exactly as
  long as the pool (a collection pass's writer thread, which flushes groups,
  ends with its pass). A worker whose collector died before the prctl took
  effect sees a different parent pid and exits.
* A lifeline thread waits on ``multiprocessing.parent_process().sentinel``, a
  pipe whose only write end the collector holds, and ends the worker when it
  reaches EOF: portable, and it covers what the prctl cannot.

Workers come from ``spawn``, not a ``forkserver``: the worker is then the
collector's own child (no forkserver to outlive it, no socket folder in
``/tmp``), it imports only this module and :mod:`archiver.store.parse`, and
starting the pool costs the same (measured on 2 cores, in a fresh process:
the first of 500 messages parsed after 100-150 ms either way, all of them
after 250-400 ms; the pool only starts for passes of 200 messages or more). The
resource tracker multiprocessing starts beside the workers exits by itself
once the collector and the workers are gone.
"""

from __future__ import annotations

import logging
import multiprocessing
import multiprocessing.connection
import os
import queue
import signal
import sys
import threading
from concurrent.futures import Future, ProcessPoolExecutor
from typing import Self

from archiver.store.parse import ParsedMessage, parse_message
from archiver.store.spool import Spool

log = logging.getLogger("archiver.store")

#: Messages per task, and bytes per task: one pipe round trip per group.
GROUP_MESSAGES = 32
GROUP_BYTES = 2 * 1024 * 1024


#: What a worker returns for one group, and what the owner thread hands back per request.
_Results = Future[list[ParsedMessage]]
_Request = tuple[list[bytes], "Future[_Results]"] | None


def _parse_group(raws: list[bytes]) -> list[ParsedMessage]:
    return [parse_message(raw) for raw in raws]


#: prctl(2) option: the signal a process gets when its parent (thread) ends.
_PR_SET_PDEATHSIG = 1


def _worker_init(collector_pid: int) -> None:
    """Make this worker die with the collector (see the module docstring)."""
    # Ctrl-C goes to the whole process group; stopping the workers is the collector's call.
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    if sys.platform.startswith("linux"):
        import ctypes

        try:
            libc = ctypes.CDLL(None, use_errno=True)
            libc.prctl(_PR_SET_PDEATHSIG, signal.SIGKILL, 0, 0, 0)
        except (OSError, AttributeError):  # no prctl: the lifeline alone does it
            pass
    if os.getppid() != collector_pid:  # the collector died before the prctl took effect
        os._exit(0)
    parent = multiprocessing.parent_process()
    if parent is not None:
        threading.Thread(target=_exit_with_parent, args=(parent.sentinel,),
                         name="archiver-lifeline", daemon=True).start()


def _exit_with_parent(sentinel: int) -> None:
    """Wait until the collector is gone (EOF on its pipe), then end this worker at once."""
    multiprocessing.connection.wait([sentinel])
    os._exit(0)


def default_workers() -> int:
    """Worker processes worth having: all cores but the one the collector itself uses."""
    return max(1, min(4, (os.cpu_count() or 1) - 1))


class ParseTicket:
    """A parse that may still be running; :meth:`result` waits for it."""

    __slots__ = ("_future", "_index", "_pool", "_spool")

    def __init__(self, spool: Spool, future: _Results | None, index: int,
                 pool: ParsePool | None = None) -> None:
        self._spool = spool
        self._future = future
        self._index = index
        self._pool = pool

    def result(self) -> ParsedMessage:
        if self._future is not None:
            try:
                return self._future.result()[self._index]
            except Exception as exc:  # noqa: BLE001 - a dead worker costs speed, never mail
                if self._pool is not None:
                    self._pool.mark_broken(exc)
        return parse_message(self._spool.view())


class ParsePool:
    """Worker processes that parse messages; use as a context manager.

    Workers are spawned (never ``fork`` of this possibly multi-threaded
    process) on the first submit, by the pool's owner thread, and die with
    this process however it ends.
    """

    def __init__(self, workers: int | None = None) -> None:
        self.workers = workers if workers is not None else default_workers()
        self._executor: ProcessPoolExecutor | None = None
        self._owner: threading.Thread | None = None
        self._requests: queue.SimpleQueue[_Request] | None = None
        self._group: list[tuple[Spool, ParseTicket]] = []
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
                future = self._submit([s.getvalue() for s, _ in group])
            except Exception as exc:  # noqa: BLE001 - cannot start workers: parse in-process
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

    def _submit(self, raws: list[bytes]) -> _Results:
        """Hand ``raws`` to the owner thread, which submits them; called with the lock held."""
        if self._owner is None or self._requests is None:
            self._requests = queue.SimpleQueue()
            self._owner = threading.Thread(target=self._own, args=(self._requests,),
                                           name="archiver-parse-pool", daemon=True)
            self._owner.start()
        reply: Future[_Results] = Future()
        self._requests.put((raws, reply))
        return reply.result()

    def _own(self, requests: queue.SimpleQueue[_Request]) -> None:
        """The owner thread: the only one that submits, so the only one that starts workers.

        PR_SET_PDEATHSIG fires when the thread that started a worker ends, so
        this thread lives until :meth:`close` has stopped every worker.
        """
        executor = None
        try:
            while (item := requests.get()) is not None:
                raws, reply = item
                try:
                    if executor is None:
                        executor = self._executor = ProcessPoolExecutor(
                            max_workers=self.workers, mp_context=multiprocessing.get_context("spawn"),
                            initializer=_worker_init, initargs=(os.getpid(),))
                    reply.set_result(executor.submit(_parse_group, raws))
                except BaseException as exc:  # noqa: BLE001 - the submitting thread raises it
                    reply.set_exception(exc)
        finally:
            if executor is not None:
                executor.shutdown(wait=True, cancel_futures=True)

    def close(self) -> None:
        """Stop the workers (waits for them); the pool can be used again afterwards."""
        with self._lock:
            self._group, self._group_bytes = [], 0
            owner, requests = self._owner, self._requests
            self._owner = self._requests = None
        if owner is not None and requests is not None:
            requests.put(None)
            owner.join()
        self._executor = None

    def __enter__(self) -> Self:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


__all__ = [
    "GROUP_BYTES",
    "GROUP_MESSAGES",
    "ParsePool",
    "ParseTicket",
    "default_workers",
]
