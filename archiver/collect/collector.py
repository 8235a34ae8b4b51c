"""One collection pass for one account: the lose-nothing sequence (DESIGN.md §2, §5).

Read :meth:`Collector._pass` top to bottom; it is the whole protocol:

1. list the mailbox (UIDL + LIST);
2. decide (:mod:`archiver.collect.policy`, pure): what to fetch, what is due
   for deletion, what looks wrong;
3. RETR the new messages (pipelined) into spools; the writer thread commits
   them in batches, each message's content and its (account, UIDL) delivery
   in ONE transaction, and returns what it committed;
4. decide from that list alone what to DELE (policy again) — only messages
   whose delivery is committed;
5. DELE, QUIT, and only after QUIT's ``+OK`` record the deletions (before it
   the server has deleted nothing; a lost connection means they are simply
   due again next pass) — :meth:`Collector._delete_on_server`, the only code
   that sends DELE;
6. record the run.

A kill at any instant therefore leaves every message in the archive, on the
server, or both — and re-collecting it is harmless because UIDLs and content
hashes deduplicate.
"""

from __future__ import annotations

import enum
import logging
import os
import socket
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime
from typing import TYPE_CHECKING, Any, cast

from sqlalchemy import insert, select, update

from archiver.collect import policy
from archiver.collect.pop3 import POP3Client
from archiver.collect.writer import BatchWriter, Committed, Item, Refused
from archiver.db import schema
from archiver.db.unit import read_only, unit_of_work
from archiver.errors import (
    CollectError,
    DatabaseError,
    MessageTooLarge,
    StoreError,
    UIDLUnsupported,
)
from archiver.store import deliveries
from archiver.store.ingest import MessageStore, Origin, Outcome
from archiver.store.spool import Spool

if TYPE_CHECKING:
    from archiver.config import Account
    from archiver.store.parsepool import ParsePool

__all__ = [
    "Collector",
    "PassProgress",
    "PassReport",
    "PassStatus",
    "expire_warnings",
    "user_capabilities",
]

log = logging.getLogger("archiver.collect")

#: A batch is committed when it reaches this many messages or bytes.
BATCH_MESSAGES = 200
BATCH_BYTES = 16 * 1024 * 1024
#: Outstanding pipelined RETR commands.
RETR_WINDOW = 32
#: Passes fetching fewer messages parse in-process (starting workers costs more).
PARSE_POOL_MIN_MESSAGES = 200


class PassStatus(enum.StrEnum):
    """The state of a collection pass, as ``collect --json`` and the run record say it."""

    RUNNING = "running"
    OK = "ok"
    ERROR = "error"


@dataclass
class PassReport:
    """The outcome of one pass; :meth:`to_json` is one entry of ``collect --json``."""

    account: str
    status: PassStatus = PassStatus.OK
    listed: int = 0
    new: int = 0
    archived: int = 0
    duplicates: int = 0
    #: known deliveries whose message the server rewrote (status headers added, ...):
    #: the new bytes are stored as the same mail, not counted as archived
    rewritten: int = 0
    deleted_on_server: int = 0
    bytes: int = 0
    duration_s: float = 0.0
    error: str | None = None
    error_kind: str | None = None
    retryable: bool = False
    #: messages left on the server this pass because of a problem (too large, -ERR, ...)
    skipped: int = 0
    #: the same, by reason (policy.SKIP_REASONS)
    skipped_by: dict[str, int] = field(
        default_factory=lambda: dict.fromkeys(policy.SKIP_REASONS, 0))
    #: new messages left for the next pass by the per-pass limits
    deferred: int = 0
    warnings: list[str] = field(default_factory=list)

    def skip(self, reason: str, count: int = 1) -> None:
        self.skipped += count
        self.skipped_by[reason] += count

    @property
    def message_failures(self) -> int:
        """Messages this pass could not archive although it tried (-ERR on RETR, the
        database refusing one): a failure of the pass even when its status is ok."""
        return sum(self.skipped_by[r] for r in policy.FAILURES)

    def failed(self, kind: str, error: str, *, retryable: bool = False) -> None:
        self.status, self.error_kind, self.error, self.retryable = (
            PassStatus.ERROR, kind, error, retryable)

    def to_json(self) -> dict[str, Any]:
        return {
            "account": self.account,
            "status": str(self.status),
            "listed": self.listed,
            "new": self.new,
            "archived": self.archived,
            "duplicates": self.duplicates,
            "rewritten": self.rewritten,
            "deleted_on_server": self.deleted_on_server,
            "bytes": self.bytes,
            "duration_s": round(self.duration_s, 3),
            "error": self.error,
            "skipped": dict(self.skipped_by),
            "warnings": list(self.warnings),
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
        self._parse_pool: ParsePool | None = None
        self._pool_lock = threading.Lock()

    @property
    def parse_pool(self) -> ParsePool | None:
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

    def __exit__(self, *exc: object) -> None:
        self.close()

    # -- one pass ---------------------------------------------------------------

    def collect(self, account: Account, *, progress: PassProgress | None = None,
                stop: threading.Event | None = None) -> PassReport:
        """Run one pass for ``account``. Never raises CollectError or DatabaseError:
        failures are reported in the returned PassReport and the run record."""
        progress = progress or PassProgress()
        report = PassReport(account.name)
        started = time.monotonic()
        try:
            account_id = self.store.account_id(account.name)
            run_id = self._start_run(account_id)
        except (DatabaseError, StoreError) as exc:
            report.failed("database", f"cannot record the pass in the archive: {exc}")
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
            self._pass(client, account, account_id, report, progress, stop or threading.Event())
        except CollectError as exc:
            report.failed(exc.kind, str(exc), retryable=exc.retryable)
        except (DatabaseError, StoreError) as exc:
            # DatabaseUnavailable is retryable: the server restarts, the network returns.
            report.failed("database", str(exc), retryable=getattr(exc, "retryable", False))
        except KeyboardInterrupt:
            report.failed("interrupted", "interrupted (Ctrl-C or SIGTERM) before the pass "
                          "finished; what was committed is kept, nothing else was deleted")
            raise
        except BaseException as exc:
            # A bug: the run record must not say "ok".
            report.failed("internal", f"the pass ended unexpectedly: {type(exc).__name__}: {exc}")
            raise
        finally:
            if client is not None:
                client.close()
            report.duration_s = time.monotonic() - started
            for warning in report.warnings:
                log.warning("%s: %s", account.name, warning)
            if report.error:
                log.error("%s: %s", account.name, report.error)
            self._finish_run(run_id, report)
        return report

    def _pass(self, client: POP3Client, account: Account, account_id: int, report: PassReport,
              progress: PassProgress, stop: threading.Event) -> None:
        """The lose-nothing sequence; see the module docstring."""
        now = self.clock()

        # 1. List the mailbox.
        try:
            uidls: list[tuple[int, str]] | None = client.uidl()
        except UIDLUnsupported as exc:
            if account.leave_on_server:
                raise UIDLUnsupported(
                    f"{account.host}:{account.port} does not support UIDL, so archiver cannot "
                    "tell which messages it already has: leave_on_server = true is impossible "
                    "on this server. Set leave_on_server = false (messages are then deleted "
                    "right after they are archived) or use another server."
                ) from exc
            uidls = None
        sizes = client.list_sizes()

        # 2. Decide what to fetch and what is due.
        if uidls is None:
            plan = policy.plan_pass_without_uidl(
                sizes, max_message_size=account.max_message_size,
                max_messages=account.max_messages_per_pass, max_bytes=account.max_bytes_per_pass)
            report.listed = len(sizes)
        else:
            with read_only(self.engine) as conn:
                known = deliveries.on_server(conn, account_id)
                returned = deliveries.gone_from_server(
                    conn, account_id,
                    [u for _, u in uidls if u not in known and policy.valid_uidl(u)])
            plan = policy.plan_pass(
                uidls, sizes, {u: _known(s) for u, s in known.items()},
                leave_on_server=account.leave_on_server, delete_after=account.delete_after,
                max_message_size=account.max_message_size,
                max_messages=account.max_messages_per_pass, max_bytes=account.max_bytes_per_pass,
                now=now, returned={u: _known(s) for u, s in returned.items()},
            )
            report.listed = len(uidls)
        if plan.retire:  # first: see PassPlan.retire
            with unit_of_work(self.engine) as conn:
                deliveries.known_by_content_from_now(conn, account_id, plan.retire)
        report.new, report.deferred = plan.new_count, plan.deferred
        skipped, warnings = policy.plan_warnings(plan, sizes, account.max_message_size)
        for reason, count in skipped.items():
            report.skip(reason, count)
        report.warnings.extend(warnings)

        # 3. Fetch; the writer commits and returns what it committed.
        committed = self._fetch_and_commit(client, account, plan, sizes, report, progress, stop)

        # What the listing showed: UIDLs gone from the server, and tombstoned
        # UIDLs that are back (they are on the server, never to be fetched).
        with unit_of_work(self.engine) as conn:
            deliveries.mark_gone(conn, account_id, plan.vanished, now)
            deliveries.confirm_on_server(
                conn, account_id,
                [(u, None) for u in dict.fromkeys(plan.held_uidl(n) for n in plan.tombstones_held)])

        # 4. Decide what to delete: only what is committed, as the policy says.
        # Due times only the fetch could tell: the same mail under a changed size,
        # and messages under a shared UIDL.
        archived_at = {c.msgnum: plan.archived_before[c.msgnum] for c in committed
                       if c.msgnum in plan.archived_before
                       and c.result.outcome in (Outcome.KNOWN, Outcome.REWRITTEN)}
        if plan.shared and not plan.delete_on_commit and account.delete_after is not None:
            by_sha = {c.result.sha256: c.msgnum for c in committed if plan.by_content(c.msgnum)}
            with read_only(self.engine) as conn:
                first_seen = deliveries.first_seen_by_content(conn, account_id, list(by_sha))
            archived_at.update({by_sha[sha]: when for sha, when in first_seen.items()})
        due = policy.deletions(plan, [c.msgnum for c in committed], stopping=stop.is_set(),
                               archived_at=archived_at)

        # 5. DELE, QUIT, record deletions after +OK.
        self._delete_on_server(client, account_id, plan, due, committed, report)

    def _delete_on_server(self, client: POP3Client, account_id: int, plan: policy.PassPlan,
                          due: list[int], committed: list[Committed], report: PassReport) -> None:
        """DELE ``due``, QUIT, and record the deletions once QUIT said +OK.

        The only place that sends DELE. ``due`` holds only msgnums whose
        delivery is committed (policy.deletions). If QUIT fails, nothing is
        recorded: the server has deleted nothing, and the messages are due
        again next pass.
        """
        acked = client.dele_many(due) if due else []
        client.quit()
        # QUIT said +OK: only now has the server really deleted anything.
        when = self.clock()
        by_msgnum = {c.msgnum: c.result.sha256 for c in committed}
        with unit_of_work(self.engine) as conn:
            deliveries.mark_gone_by_content(
                conn, account_id, [by_msgnum[n] for n in acked if plan.by_content(n)], when)
            deliveries.mark_gone(
                conn, account_id, [plan.listed[n] for n in acked if not plan.by_content(n)], when)
        report.deleted_on_server = len(acked)

    def _fetch_and_commit(self, client: POP3Client, account: Account, plan: policy.PassPlan,
                          sizes: dict[int, int], report: PassReport, progress: PassProgress,
                          stop: threading.Event) -> list[Committed]:
        """RETR ``plan.fetch`` (pipelined), commit in batches on the writer thread, and
        return the messages whose content and delivery are durably committed — the
        only new ones that may be deleted on the server. A message that could not
        be fetched or stored stays on the server and is reported.

        If the pass breaks (the connection, the database), what was fully
        received is still committed and counted before the error propagates.
        """
        progress.planned(account.name, len(plan.fetch), sum(sizes.get(n, 0) for n in plan.fetch))
        pool = self.parse_pool if len(plan.fetch) >= PARSE_POOL_MIN_MESSAGES else None
        # sha256 -> ParseTicket, filled here, used by the writer. The same content
        # twice in one pass overwrites a ticket; either parse serves both copies.
        tickets: dict[str, Any] = {}

        def store(batch: list[Item]) -> list[Committed | Refused]:
            parsed = {s.sha256: tickets.pop(s.sha256, None) for _, s, _ in batch} if pool else None
            return self._store(batch, parsed)

        writer = BatchWriter(store, batch_messages=BATCH_MESSAGES, batch_bytes=BATCH_BYTES,
                             before_submit=pool.flush if pool is not None else None)
        retrieved = client.retr_many([(n, sizes.get(n)) for n in plan.fetch], lambda _n: Spool(),
                                     max_size=account.max_message_size, window=RETR_WINDOW)
        try:
            for res in retrieved:
                sink = cast(Spool, res.sink)
                if res.error is not None:
                    sink.close()
                    report.skip("too_large" if isinstance(res.error, MessageTooLarge)
                                else "retr_error")
                    report.warnings.append(f"{_describe(plan, res.msgnum)} left on the server: "
                                           f"{res.error}")
                    continue
                spool = sink.finish()
                report.bytes += spool.size
                progress.fetched(account.name, spool.size)
                listed = sizes.get(res.msgnum)
                if not policy.retr_size_plausible(listed, spool.size):
                    spool.close()
                    report.skip("size_mismatch")
                    report.warnings.append(
                        f"{_describe(plan, res.msgnum)} left on the server and not archived: "
                        f"RETR sent {spool.size} bytes where LIST said {listed}, so the server "
                        "may have sent something other than the stored message (a server-made "
                        "stand-in, e.g. for mail with UTF-8 headers); it is tried again next "
                        "pass. If this server's LIST sizes are only approximate, it cannot be "
                        "collected from safely")
                    continue
                if pool is not None:
                    tickets[spool.sha256] = pool.submit(spool)
                writer.add(res.msgnum, spool, Origin(
                    account.name, kind=schema.DeliveryKind.POP3,
                    uidl=plan.uidl_of(res.msgnum), server_size=sizes.get(res.msgnum),
                    supersede=res.msgnum in plan.changed))
                if stop.is_set():
                    report.warnings.append("stopped on request; the rest is collected next pass")
                    break
        except BaseException as failure:
            # Whatever broke, commit what was fully received; the original error
            # is what the pass reports.
            _quietly(retrieved.close, failure)
            _quietly(writer.close, failure)
            _count(writer.outcomes, plan, report)
            raise
        retrieved.close()
        try:
            outcomes = writer.close()
        finally:
            _count(writer.outcomes, plan, report)
        return [o for o in outcomes if isinstance(o, Committed)]

    def _store(self, batch: list[Item], parsed: dict[str, Any] | None) -> list[Committed | Refused]:
        """Commit a batch (on the writer thread).

        If the batch fails as a whole, each message is tried alone so one
        message the database refuses cannot hold back the others; if every
        one fails, the database itself is the problem and the pass stops.
        """
        try:
            results = self.store.store_batch([(s, o) for _, s, o in batch], parsed=parsed)
            return [Committed(n, r) for (n, _, _), r in zip(batch, results, strict=True)]
        except (DatabaseError, StoreError) as exc:
            out: list[Committed | Refused] = []
            for msgnum, spool, origin in batch:
                try:
                    result = self.store.store_batch([(spool, origin)], parsed=parsed)[0]
                    out.append(Committed(msgnum, result))
                except (DatabaseError, StoreError) as one:
                    if not self._database_healthy():
                        raise one from exc
                    # The database works but refuses this one message.
                    out.append(Refused(msgnum, str(one)))
            return out

    def _database_healthy(self) -> bool:
        try:
            with read_only(self.engine) as conn:
                conn.execute(select(1))
            return True
        except DatabaseError:
            return False

    # -- run records --------------------------------------------------------------

    def _start_run(self, account_id: int) -> int:
        r = schema.collection_runs
        now = self.clock()
        with unit_of_work(self.engine) as conn:
            # A run still "running" from an earlier process died with it: one of this
            # node, or of a process on this host that no longer exists (the default
            # node is host:pid, so a restarted collector never has the dead one's node).
            stale = [
                run_id for run_id, node in conn.execute(
                    select(r.c.id, r.c.node).where(r.c.account_id == account_id,
                                                   r.c.status == PassStatus.RUNNING))
                if node == self.node or _local_process_gone(node)
            ]
            if stale:
                conn.execute(
                    update(r).where(r.c.id.in_(stale))
                    .values(status=PassStatus.ERROR, error_kind="interrupted", finished_at=now,
                            error="the collecting process ended before the pass finished")
                )
            key = conn.execute(
                insert(r).values(account_id=account_id, started_at=now,
                                 status=PassStatus.RUNNING, node=self.node)
            ).inserted_primary_key
        assert key is not None
        return int(key[0])

    def _finish_run(self, run_id: int, report: PassReport) -> None:
        r = schema.collection_runs
        try:
            with unit_of_work(self.engine) as conn:
                conn.execute(
                    update(r).where(r.c.id == run_id).values(
                        finished_at=self.clock(), status=report.status, listed=report.listed,
                        new=report.new, archived=report.archived, duplicates=report.duplicates,
                        rewritten=report.rewritten,
                        deleted_on_server=report.deleted_on_server, bytes=report.bytes,
                        skipped=report.skipped,
                        warnings="\n".join(report.warnings) or None,
                        error_kind=report.error_kind, error=report.error,
                    )
                )
        except DatabaseError as exc:  # the pass result is still reported to the caller
            log.error("could not record the collection run: %s", exc)


def _known(s: deliveries.Sighting) -> policy.KnownDelivery:
    # A delivery is archived when it is first seen: that is when its clock starts.
    return policy.KnownDelivery(s.server_size, s.first_seen_at, s.tombstone)


def _describe(plan: policy.PassPlan, msgnum: int) -> str:
    uidl = plan.listed.get(msgnum)
    if uidl is None:
        uidl = next((u for u, nums in plan.shared.items() if msgnum in nums), None)
    return f"message {msgnum} (UIDL {uidl})" if uidl is not None else f"message {msgnum}"


def _count(outcomes: list[Committed | Refused], plan: policy.PassPlan, report: PassReport) -> None:
    """Fold the writer's outcomes into the report (once, after the writer stopped)."""
    for o in outcomes:
        if isinstance(o, Refused):
            report.skip("store_refused")
            report.warnings.append(f"{_describe(plan, o.msgnum)} could not be stored and stays "
                                   f"on the server: {o.reason}")
            continue
        if o.result.outcome == Outcome.KNOWN:
            continue  # this very delivery was recorded before (fetched again): nothing new
        if o.result.outcome == Outcome.REWRITTEN:
            report.rewritten += 1
            continue
        if not plan.without_uidl and plan.by_content(o.msgnum):
            report.new += 1  # under a shared UIDL only the content tells what is new
        if o.result.outcome == Outcome.ARCHIVED:
            report.archived += 1
        else:
            report.duplicates += 1
    if report.rewritten:
        report.warnings.append(
            f"the server rewrote {report.rewritten} archived message(s) (mailbox status headers "
            "such as Status: or X-UID added or changed): the new bytes are kept too, recorded "
            "as the same mail, not as new")


def user_capabilities(client: POP3Client) -> dict[str, list[str]]:
    """Capabilities after login: CAPA again when EXPIRE said its value is per user."""
    if "USER" in [a.upper() for a in client.capabilities.get("EXPIRE", [])]:
        return client.capa()
    return client.capabilities


def expire_warnings(capabilities: dict[str, list[str]], account: Account) -> list[str]:
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


def _quietly(close: Callable[[], object], failure: BaseException) -> None:
    """Run a cleanup step while ``failure`` is on its way out; log what it raises,
    unless that is ``failure`` itself (the writer re-raising its own error)."""
    try:
        close()
    except BaseException as exc:  # the error already propagating is the one to report
        if exc is not failure:
            log.error("while cleaning up after an error: %s", exc)

