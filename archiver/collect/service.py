"""One collection pass for one account: the lose-nothing protocol (DESIGN.md §2, §5).

The order of events is the whole point:

1. connect, CAPA, log in; UIDL + LIST;
2. decide (``policy.plan_pass``): new = listed − known, with known read in
   one query; sizes that changed, quarantined UIDLs, a server migration;
3. RETR the new messages (pipelined) into spools; every batch of them is
   stored with its (account, UIDL) deliveries in ONE transaction, committed
   durably before anything else happens to those messages;
4. DELE only messages whose delivery is committed and which the account's
   policy says are due — none in a pass that looks like a server migration;
5. QUIT, and only after its ``+OK`` record the deletions (before it the
   server has deleted nothing; a lost connection means they are simply due
   again next pass);
6. record the run.

A kill at any instant therefore leaves every message in the archive, on the
server, or both — and re-collecting it is harmless because UIDLs and content
hashes deduplicate.
"""

from __future__ import annotations

import logging
import os
import socket
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime

from sqlalchemy import bindparam, func, insert, select, update
from sqlalchemy.exc import SQLAlchemyError

from archiver.collect import policy
from archiver.collect.pop3 import POP3Client
from archiver.collect.writer import BatchWriter
from archiver.db import schema
from archiver.db.batching import in_batches
from archiver.db.engine import short_error
from archiver.errors import (
    CollectError,
    DatabaseError,
    StoreError,
    UIDLUnsupported,
)
from archiver.store.spool import Spool
from archiver.store.store import ARCHIVED, KNOWN, MessageStore, Origin

log = logging.getLogger("archiver.collect")

#: A batch is committed when it reaches this many messages or bytes.
BATCH_MESSAGES = 200
BATCH_BYTES = 16 * 1024 * 1024
#: Outstanding pipelined RETR commands.
RETR_WINDOW = 32
#: Passes fetching fewer messages parse in-process (starting workers costs more).
PARSE_POOL_MIN_MESSAGES = 200


@dataclass
class PassReport:
    """The outcome of one pass; :meth:`to_json` is one entry of ``collect --json``."""

    account: str
    status: str = "ok"
    listed: int = 0
    new: int = 0
    archived: int = 0
    duplicates: int = 0
    deleted_on_server: int = 0
    bytes: int = 0
    duration_s: float = 0.0
    error: str | None = None
    error_kind: str | None = None
    retryable: bool = False
    #: messages left on the server this pass because of a problem (too large, -ERR, ...)
    skipped: int = 0
    #: new messages left for the next pass by the per-pass limits
    deferred: int = 0
    warnings: list[str] = field(default_factory=list)
    # Filled on two threads (network loop, writer) and folded into skipped and
    # warnings when the pass ends; list.append is atomic, += on an int is not.
    retr_failures: list[str] = field(default_factory=list, repr=False)
    store_failures: list[str] = field(default_factory=list, repr=False)

    def settle(self) -> None:
        """Fold per-message failures into ``skipped`` and ``warnings`` (once, at the end)."""
        for failures in (self.retr_failures, self.store_failures):
            self.skipped += len(failures)
            self.warnings.extend(failures)
            failures.clear()

    def to_json(self) -> dict:
        return {
            "account": self.account,
            "status": self.status,
            "listed": self.listed,
            "new": self.new,
            "archived": self.archived,
            "duplicates": self.duplicates,
            "deleted_on_server": self.deleted_on_server,
            "bytes": self.bytes,
            "duration_s": round(self.duration_s, 3),
            "error": self.error,
        }


class PassProgress:
    """Receives progress of a pass; the CLI draws a bar from it. Default: nothing."""

    def planned(self, account: str, messages: int, total_bytes: int) -> None:
        pass

    def fetched(self, account: str, nbytes: int) -> None:
        pass


class Collector:
    """Runs collection passes into one archive.

    ``clock`` gives the current UTC time (default: the store's, so deliveries
    and deletion decisions agree; tests inject one to cross ``delete_after``
    boundaries); ``client_factory`` builds the POP3 client.
    """

    def __init__(
        self,
        store: MessageStore,
        *,
        clock: Callable[[], datetime] | None = None,
        client_factory: Callable[..., POP3Client] = POP3Client,
        node: str | None = None,
        parse_workers: int | None = None,
    ) -> None:
        self.store = store
        self.engine = store.engine
        self.clock = clock or store.clock
        self.client_factory = client_factory
        self.node = node or f"{socket.gethostname()}:{os.getpid()}"
        # Parsing in worker processes pays off only for passes with real work;
        # the pool (and multiprocessing) is set up on the first such pass.
        self._parse_workers = parse_workers
        self._parse_pool = None
        self._pool_lock = threading.Lock()

    @property
    def parse_pool(self):
        """The shared ParsePool, created on first use; None when disabled."""
        if self._parse_workers == 0:
            return None
        with self._pool_lock:
            if self._parse_pool is None:
                from archiver.store.parsepool import ParsePool

                self._parse_pool = ParsePool(self._parse_workers)
            return self._parse_pool

    def close(self) -> None:
        """Stop the parse workers (the collector can still run passes afterwards)."""
        if self._parse_pool is not None:
            self._parse_pool.close()

    def __enter__(self) -> Collector:
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    # -- the pass ---------------------------------------------------------------

    def collect(self, account, *, progress: PassProgress | None = None,
                stop: threading.Event | None = None) -> PassReport:
        """Run one pass for ``account`` (a config Account). Never raises CollectError:
        failures are reported in the returned PassReport and the run record."""
        progress = progress or PassProgress()
        report = PassReport(account.name)
        started = time.monotonic()
        try:
            account_id = self.store.account_id(account.name)
            run_id = self._start_run(account_id)
        except (SQLAlchemyError, StoreError) as exc:
            report.status, report.error_kind = "error", "database"
            report.error = f"cannot record the pass in the archive: {short_error(exc)}"
            report.duration_s = time.monotonic() - started
            log.error("%s: %s", account.name, report.error)
            return report
        client = None
        try:
            client = self.client_factory(
                account.host, account.port, tls=account.tls, verify_tls=account.verify_tls,
                ca_file=str(account.ca_file) if account.ca_file else None,
                timeout=account.timeout.total_seconds(),
            )
            client.connect()
            client.login(account.username, account.password.reveal(), account.auth)
            report.warnings.extend(expire_warnings(user_capabilities(client), account))
            self._pass(client, account, account_id, report, progress, stop)
        except CollectError as exc:
            report.status, report.error = "error", str(exc)
            report.error_kind, report.retryable = exc.kind, exc.retryable
        except (DatabaseError, StoreError) as exc:
            report.status, report.error, report.error_kind = "error", str(exc), "database"
        except SQLAlchemyError as exc:
            report.status, report.error_kind = "error", "database"
            report.error = f"archive database error: {getattr(exc, 'orig', exc)}"
        except BaseException as exc:
            # A bug or an interrupt: the run record must not say "ok".
            report.status, report.error_kind = "error", "internal"
            report.error = f"the pass ended unexpectedly: {type(exc).__name__}: {exc}"
            raise
        finally:
            if client is not None:
                client.close()
            report.settle()
            report.duration_s = time.monotonic() - started
            for warning in report.warnings:
                log.warning("%s: %s", account.name, warning)
            if report.error:
                log.error("%s: %s", account.name, report.error)
            self._finish_run(run_id, report)
        return report

    def _pass(self, client: POP3Client, account, account_id: int, report: PassReport,
              progress: PassProgress, stop: threading.Event | None) -> None:
        now = self.clock()
        try:
            uidls = client.uidl()
        except UIDLUnsupported as exc:
            if account.leave_on_server:
                raise UIDLUnsupported(
                    f"{account.host}:{account.port} does not support UIDL, so archiver cannot tell "
                    "which messages it already has: leave_on_server = true is impossible on this "
                    "server. Set leave_on_server = false (messages are then deleted right after "
                    "they are archived) or use another server."
                ) from exc
            uidls = None
        sizes = client.list()
        if uidls is None:
            self._pass_without_uidl(client, account, report, progress, sizes, stop)
            return

        known = self._known(account_id)
        returned = self._returned(
            account_id, [u for _, u in uidls if u not in known and policy.valid_uidl(u)])
        plan = policy.plan_pass(
            uidls, sizes, known,
            leave_on_server=account.leave_on_server, delete_after=account.delete_after,
            max_message_size=account.max_message_size,
            max_messages=account.max_messages_per_pass, max_bytes=account.max_bytes_per_pass,
            now=now, returned=returned,
        )
        report.listed = len(uidls)
        report.new = plan.new_count
        report.deferred = plan.deferred
        self._warn_about_plan(plan, sizes, account, report)

        deletable = list(plan.delete_known)
        fetch_bytes = sum(sizes.get(n, 0) for n in plan.fetch)
        progress.planned(account.name, len(plan.fetch), fetch_bytes)

        def committed(msgnum: int, _result) -> None:
            # Committed: from here on the message may be deleted on the server.
            if not plan.migration and policy.deletion_due(
                    account.leave_on_server, account.delete_after, now, now):
                deletable.append(msgnum)

        self._fetch(
            client, account, report, progress, stop,
            [(n, sizes.get(n)) for n in plan.fetch],
            lambda n: Origin(account.name, uidl=plan.listed[n], server_size=sizes.get(n),
                             source="pop3", supersede=n in plan.changed),
            committed,
            describe=lambda n: f"message {n} (UIDL {plan.listed[n]})",
        )

        self._mark_vanished(account_id, plan.vanished, now)
        self._mark_listed(account_id, [plan.listed[n] for n in plan.tombstones_held])
        if stop is not None and stop.is_set():
            deletable = []
        acked = client.dele_many(deletable) if deletable else []
        client.quit()
        # QUIT said +OK: only now has the server really deleted anything.
        deleted_uidls = [plan.listed[n] for n in acked]
        self._mark_deleted(account_id, deleted_uidls, self.clock())
        report.deleted_on_server = len(acked)

    def _pass_without_uidl(self, client: POP3Client, account, report: PassReport,
                           progress: PassProgress, sizes: dict[int, int],
                           stop: threading.Event | None) -> None:
        """leave_on_server = false on a server without UIDL: fetch all, store, delete.

        Without UIDLs a message is recognised by its content hash: a message
        archived by a pass that died before QUIT is found again, recorded as a
        duplicate, and deleted this time.
        """
        report.listed = len(sizes)
        report.warnings.append("server has no UIDL: recognising messages by content hash only")
        fetch = []
        budget_msgs, budget_bytes = account.max_messages_per_pass, account.max_bytes_per_pass
        for msgnum in sorted(sizes):
            size = sizes[msgnum]
            if size > account.max_message_size:
                report.skipped += 1
                report.warnings.append(f"message {msgnum} ({size} bytes) exceeds max_message_size; "
                                       "left on the server")
            elif budget_msgs > 0 and (size <= budget_bytes or not fetch):
                fetch.append(msgnum)
                budget_msgs -= 1
                budget_bytes -= size
            else:
                report.deferred += 1
        report.new = len(fetch)
        progress.planned(account.name, len(fetch), sum(sizes[n] for n in fetch))
        deletable: list[int] = []
        stored: dict[int, str] = {}

        def committed(msgnum: int, result) -> None:
            deletable.append(msgnum)
            stored[msgnum] = result.sha256

        self._fetch(
            client, account, report, progress, stop, [(n, sizes[n]) for n in fetch],
            lambda n: Origin(account.name, server_size=sizes[n], source="pop3 (server has no UIDL)"),
            committed, describe=lambda n: f"message {n}",
        )
        if stop is not None and stop.is_set():
            deletable = []
        acked = client.dele_many(deletable) if deletable else []
        client.quit()
        report.deleted_on_server = len(acked)
        self._mark_deleted_by_content(account, [stored[n] for n in acked], self.clock())

    def _fetch(self, client: POP3Client, account, report: PassReport, progress: PassProgress,
               stop: threading.Event | None, requests: list[tuple[int, int | None]],
               origin_of: Callable[[int], Origin], on_committed: Callable[[int, object], None],
               describe: Callable[[int], str]) -> None:
        """RETR ``requests`` (pipelined) and commit them in batches on the writer thread.

        ``on_committed(msgnum, result)`` runs (on the writer thread) for every
        message whose content and delivery are durably committed — the only
        ones that may be deleted on the server. A message that could not be
        fetched or stored stays on the server and is reported.
        """
        def stored(msgnum: int, result) -> None:
            if result is None:
                return
            if result.outcome == ARCHIVED:
                report.archived += 1
            else:
                report.duplicates += 1
            on_committed(msgnum, result)

        pool = self.parse_pool if len(requests) >= PARSE_POOL_MIN_MESSAGES else None
        # sha256 -> ParseTicket, filled here, used by the writer. The same content
        # twice in one pass overwrites a ticket; either parse serves both copies.
        tickets: dict[str, object] = {}

        def store(batch):
            parsed = {s.sha256: tickets.pop(s.sha256, None) for _, s, _ in batch} if pool else None
            return self._store(batch, report, parsed)

        writer = BatchWriter(store, stored, batch_messages=BATCH_MESSAGES,
                             batch_bytes=BATCH_BYTES,
                             before_submit=pool.flush if pool is not None else None)
        retrieved = client.retr_many(requests, lambda _n: Spool(),
                                     max_size=account.max_message_size, window=RETR_WINDOW)
        try:
            for res in retrieved:
                if res.error is not None:
                    res.sink.close()
                    report.retr_failures.append(f"{describe(res.msgnum)} left on the server: "
                                                f"{res.error}")
                    continue
                spool = res.sink.finish()
                report.bytes += spool.size
                progress.fetched(account.name, spool.size)
                if pool is not None:
                    tickets[spool.sha256] = pool.submit(spool)
                writer.add(res.msgnum, spool, origin_of(res.msgnum))
                if stop is not None and stop.is_set():
                    report.warnings.append("stopped on request; the rest is collected next pass")
                    break
        except BaseException:
            # Whatever broke (the connection, the database), commit what was
            # fully received; the original error is what the pass reports.
            _quietly(retrieved.close)
            _quietly(writer.close)
            raise
        retrieved.close()
        writer.close()

    # -- storing ------------------------------------------------------------------

    def _store(self, batch: list[tuple[int, Spool, Origin]], report: PassReport,
               parsed: dict | None = None):
        """Commit a batch; yields (msgnum, StoreResult | None). None: not stored, stays on server.

        If the batch fails as a whole, each message is tried alone so one
        message the database refuses cannot hold back the others; if every
        one fails, the database itself is the problem and the pass stops.
        """
        if not batch:
            return []
        try:
            results = self.store.store_batch([(s, o) for _, s, o in batch], parsed=parsed)
            out = [(n, r) for (n, _, _), r in zip(batch, results, strict=True)]
        except (SQLAlchemyError, StoreError) as exc:
            out = []
            for msgnum, spool, origin in batch:
                try:
                    out.append((msgnum, self.store.store_batch([(spool, origin)],
                                                                parsed=parsed)[0]))
                except (SQLAlchemyError, StoreError) as one:
                    if not self._database_healthy():
                        raise _database_error(one) from exc
                    # The database works but refuses this one message.
                    out.append((msgnum, None))
                    report.store_failures.append(
                        f"message {msgnum} (UIDL {origin.uidl}) could not be stored and stays on "
                        f"the server: {short_error(one)}")
        finally:
            for _, spool, _ in batch:
                spool.close()
        self._reappeared([r for _, r in out if r is not None and r.outcome == KNOWN])
        return out

    def _database_healthy(self) -> bool:
        try:
            with self.engine.connect() as conn:
                conn.execute(select(1))
            return True
        except SQLAlchemyError:
            return False

    def _reappeared(self, results) -> None:
        """Deliveries fetched again with the content they already had (a changed LIST
        size, or a UIDL recorded as gone that is back): believe the listing again --
        the message is on the server, with the size LIST gives now -- so the next
        pass neither fetches it again nor keeps it from its deletion."""
        rows = [{"b_uidl": r.origin.uidl, "b_size": r.origin.server_size}
                for r in results if r.origin.uidl is not None]
        if not rows:
            return
        account_id = self.store.account_id(results[0].origin.account)
        d = schema.deliveries
        with self.engine.begin() as conn:
            conn.execute(
                update(d).where(d.c.account_id == account_id, d.c.uidl == bindparam("b_uidl"))
                .values(deleted_on_server_at=None,
                        server_size=func.coalesce(bindparam("b_size"), d.c.server_size)),
                rows,
            )

    # -- what the archive knows -----------------------------------------------------

    def _known(self, account_id: int) -> dict[str, policy.KnownDelivery]:
        """Every UIDL of the account believed still on the server, in one query."""
        d = schema.deliveries
        with self.engine.connect() as conn:
            rows = conn.execute(
                select(d.c.uidl, d.c.server_size, d.c.first_seen_at, d.c.tombstone).where(
                    d.c.account_id == account_id,
                    d.c.deleted_on_server_at.is_(None),
                    d.c.uidl.is_not(None),
                )
            ).all()
        return {u: policy.KnownDelivery(size, seen, bool(tomb)) for u, size, seen, tomb in rows}

    def _returned(self, account_id: int, uidls: list[str]) -> dict[str, policy.KnownDelivery]:
        """Of ``uidls`` (listed, not believed on the server), those the archive
        recorded as gone from the server: a server may reuse a UIDL for other mail."""
        if not uidls:
            return {}
        d = schema.deliveries
        out = {}
        with self.engine.connect() as conn:
            for part in in_batches(uidls):
                for u, size, seen, tomb in conn.execute(
                    select(d.c.uidl, d.c.server_size, d.c.first_seen_at, d.c.tombstone).where(
                        d.c.account_id == account_id,
                        d.c.uidl.in_(part),
                        d.c.deleted_on_server_at.is_not(None),
                    )
                ):
                    out[u] = policy.KnownDelivery(size, seen, bool(tomb))
        return out

    def _mark_listed(self, account_id: int, uidls: list[str]) -> None:
        """UIDLs recorded as gone are listed again: they are on the server."""
        if not uidls:
            return
        d = schema.deliveries
        with self.engine.begin() as conn:
            for part in in_batches(uidls):
                conn.execute(update(d).where(d.c.account_id == account_id, d.c.uidl.in_(part))
                             .values(deleted_on_server_at=None))

    def _mark_deleted_by_content(self, account, shas: list[str], when: datetime) -> None:
        """No-UIDL passes: record deletions on the account's UIDL-less POP3 deliveries."""
        if not shas:
            return
        d = schema.deliveries
        m = schema.messages
        account_id = self.store.account_id(account.name)
        with self.engine.begin() as conn:
            for part in in_batches(shas):
                ids = select(m.c.id).where(m.c.sha256.in_(part)).scalar_subquery()
                conn.execute(
                    update(d)
                    .where(d.c.account_id == account_id, d.c.uidl.is_(None),
                           d.c.message_id.in_(ids), d.c.deleted_on_server_at.is_(None),
                           d.c.source.like("pop3%"))
                    .values(deleted_on_server_at=when)
                )

    def _mark_deleted(self, account_id: int, uidls: list[str], when: datetime) -> None:
        self._set_gone(account_id, uidls, when)

    def _mark_vanished(self, account_id: int, uidls: list[str], when: datetime) -> None:
        # Someone else (a mail client, the server's own expiry) removed them.
        self._set_gone(account_id, uidls, when)

    def _set_gone(self, account_id: int, uidls: list[str], when: datetime) -> None:
        if not uidls:
            return
        d = schema.deliveries
        with self.engine.begin() as conn:
            for part in in_batches(uidls):
                conn.execute(
                    update(d)
                    .where(d.c.account_id == account_id, d.c.uidl.in_(part),
                           d.c.deleted_on_server_at.is_(None))
                    .values(deleted_on_server_at=when)
                )

    def _warn_about_plan(self, plan: policy.PassPlan, sizes, account, report: PassReport) -> None:
        if plan.quarantined:
            report.skipped += len(plan.quarantined)
            report.warnings.append(
                f"{len(plan.quarantined)} message(s) with invalid UIDLs (RFC 1939 allows 1-70 "
                f"printable characters) quarantined on the server, neither fetched nor deleted: "
                + ", ".join(repr(u[:80]) for u in plan.quarantined[:5]))
        if plan.duplicate_uidls:
            report.warnings.append(
                f"the server listed {len(plan.duplicate_uidls)} duplicate UIDL(s); each is archived "
                "once and the extra copies are left alone: "
                + ", ".join(repr(u) for u in plan.duplicate_uidls[:5]))
        for msgnum in plan.too_large:
            report.skipped += 1
            report.warnings.append(
                f"message {msgnum} (UIDL {plan.listed[msgnum]}, {sizes.get(msgnum)} bytes) exceeds "
                f"max_message_size ({account.max_message_size} bytes); left on the server")
        if plan.changed:
            report.warnings.append(
                f"{len(plan.changed)} known UIDL(s) now list a different size or are back on the "
                "server after being gone; fetching them again (the content hash decides) and not "
                "deleting them on the old evidence")
        if plan.tombstones_held:
            report.skipped += len(plan.tombstones_held)
            report.warnings.append(
                f"{len(plan.tombstones_held)} UIDL(s) of purged messages are listed with another "
                "size or again after being gone; they are neither fetched again (a purged message "
                "is never re-archived) nor deleted: "
                + ", ".join(repr(plan.listed[n]) for n in plan.tombstones_held[:5]))
        if plan.migration:
            report.warnings.append(
                f"most known UIDLs vanished ({len(plan.vanished)}) and {plan.new_count} unknown "
                "appeared: this looks like a server migration. Archiving by content hash and "
                "deleting nothing on the server this pass.")
        if plan.deferred:
            report.warnings.append(
                f"{plan.deferred} new message(s) left for the next pass "
                "(max_messages_per_pass / max_bytes_per_pass)")

    # -- run records --------------------------------------------------------------

    def _start_run(self, account_id: int) -> int:
        r = schema.collection_runs
        now = self.clock()
        with self.engine.begin() as conn:
            # A run still "running" from an earlier process died with it: one of this
            # node, or of a process on this host that no longer exists (the default
            # node is host:pid, so a restarted collector never has the dead one's node).
            stale = [
                run_id for run_id, node in conn.execute(
                    select(r.c.id, r.c.node).where(r.c.account_id == account_id,
                                                   r.c.status == "running"))
                if node == self.node or _local_process_gone(node)
            ]
            if stale:
                conn.execute(
                    update(r).where(r.c.id.in_(stale))
                    .values(status="error", error_kind="interrupted", finished_at=now,
                            error="the collecting process ended before the pass finished")
                )
            return conn.execute(
                insert(r).values(account_id=account_id, started_at=now, status="running",
                                 node=self.node)
            ).inserted_primary_key[0]

    def _finish_run(self, run_id: int, report: PassReport) -> None:
        r = schema.collection_runs
        try:
            with self.engine.begin() as conn:
                conn.execute(
                    update(r).where(r.c.id == run_id).values(
                        finished_at=self.clock(), status=report.status, listed=report.listed,
                        new=report.new, archived=report.archived, duplicates=report.duplicates,
                        deleted_on_server=report.deleted_on_server, bytes=report.bytes,
                        skipped=report.skipped,
                        warnings="\n".join(report.warnings) or None,
                        error_kind=report.error_kind, error=report.error,
                    )
                )
        except SQLAlchemyError as exc:  # the pass result is still reported to the caller
            log.error("could not record the collection run: %s", short_error(exc))


def user_capabilities(client: POP3Client) -> dict[str, list[str]]:
    """Capabilities after login: CAPA again when EXPIRE said its value is per user."""
    if "USER" in [a.upper() for a in client.capabilities.get("EXPIRE", [])]:
        return client.capa()
    return client.capabilities


def expire_warnings(capabilities: dict[str, list[str]], account) -> list[str]:
    """Warnings when the server's EXPIRE capability (RFC 2449) contradicts the policy."""
    args = capabilities.get("EXPIRE")
    if not args or not account.leave_on_server:
        return []
    value = args[0].upper()
    if value == "NEVER":
        return []
    try:
        days = int(value)
    except ValueError:
        return []
    if days == 0:
        return [f"server advertises EXPIRE 0: it deletes messages once retrieved, so "
                f"leave_on_server = true cannot keep them on {account.host}"]
    if account.delete_after is None or account.delete_after.days > days:
        keep = "forever" if account.delete_after is None else f"{account.delete_after.days} days"
        return [f"server advertises EXPIRE {days}: it deletes retrieved messages after {days} "
                f"day(s), sooner than this account's policy ({keep})"]
    return []


def _local_process_gone(node: str | None) -> bool:
    """Whether ``node`` ("host:pid", the default node) names a process of this host
    that no longer exists."""
    host, _, pid = (node or "").rpartition(":")
    if host != socket.gethostname() or not pid.isdigit():
        return False
    try:
        os.kill(int(pid), 0)
    except ProcessLookupError:
        return True
    except OSError:  # EPERM: it exists, under another user
        return False
    return False


def _quietly(close: Callable[[], None]) -> None:
    """Run a cleanup step while another error is on its way out; log what it raises."""
    try:
        close()
    except BaseException as exc:  # the error already propagating is the one to report
        log.error("while cleaning up after an error: %s", exc)


def _database_error(exc: BaseException) -> DatabaseError:
    if isinstance(exc, DatabaseError):
        return exc
    return DatabaseError(f"archive database error: {short_error(exc)}")





__all__ = ["Collector", "PassReport", "PassProgress", "expire_warnings", "user_capabilities"]
