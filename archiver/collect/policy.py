"""Pure decisions of a collection pass: what to fetch, what to delete, what looks wrong.

Nothing here touches the network, the database or the clock: the pass gathers
facts, these functions decide, and tests can probe every boundary with an
injected ``now``.
"""

from __future__ import annotations

import re
from collections import Counter
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from datetime import datetime, timedelta

__all__ = [
    "FAILURES",
    "KnownDelivery",
    "SKIP_REASONS",
    "PassPlan",
    "UIDL_MAX",
    "deletion_due",
    "deletions",
    "plan_pass",
    "plan_pass_without_uidl",
    "plan_warnings",
    "retr_size_plausible",
    "valid_uidl",
]

#: RFC 1939: a unique-id is 1 to 70 characters in the range 0x21 to 0x7E.
UIDL_MAX = 70


_UIDL = re.compile(r"[\x21-\x7e]{1,%d}" % UIDL_MAX)


def valid_uidl(uidl: str) -> bool:
    """1 to 70 characters, each printable ASCII other than space (RFC 1939)."""
    return _UIDL.fullmatch(uidl) is not None


def deletion_due(leave_on_server: bool, delete_after: timedelta | None, archived_at: datetime,
                 now: datetime) -> bool:
    """Is a message archived at ``archived_at`` due for DELE at ``now``?

    keep (``leave_on_server`` without ``delete_after``): never;
    ``delete_after``: once that long has passed since it was archived (the
    boundary instant itself is due); ``leave_on_server = false``: at once.
    """
    if not leave_on_server:
        return True
    if delete_after is None:
        return False
    return now >= archived_at + delete_after


@dataclass(frozen=True, slots=True)
class KnownDelivery:
    """What the archive knows of a UIDL it believes is still on the server."""

    server_size: int | None
    archived_at: datetime
    tombstone: bool


@dataclass
class PassPlan:
    """What one pass will do, decided from the server listing and the archive's knowledge."""

    #: msgnum → UIDL, for every valid, first-seen UIDL on the server
    listed: dict[int, str] = field(default_factory=dict)
    #: msgnums to RETR (new UIDLs, then UIDLs whose size changed), in server order
    fetch: list[int] = field(default_factory=list)
    #: msgnums to fetch again and let the content hash decide (the UIDL may have been
    #: reused): a known UIDL whose LIST size differs from what we archived, or a UIDL
    #: recorded as gone from the server that is listed again
    changed: set[int] = field(default_factory=set)
    #: msgnum -> when the archive first recorded it, for the ``changed`` ones: if the
    #: fetch shows the same mail (or the server's rewrite of it), it is due by that
    archived_before: dict[int, datetime] = field(default_factory=dict)
    #: msgnums whose UIDL belongs to a purged message (tombstone) but that the listing
    #: shows changed or back from the dead: never fetched (rule 5), not deleted this pass
    tombstones_held: list[int] = field(default_factory=list)
    #: msgnums already archived that the policy says to DELE now
    delete_known: list[int] = field(default_factory=list)
    #: UIDLs we believed on the server that the listing no longer has
    vanished: list[str] = field(default_factory=list)
    quarantined: list[str] = field(default_factory=list)
    #: UIDL -> msgnums, for UIDLs the listing gives to more than one message (popa3d
    #: derives UIDLs from a few headers; Mailutils reuses an X-UIDL header found in
    #: the mail): the UIDL cannot tell them apart, so every one of them is fetched
    #: each pass and recognised by its content hash, like on a server without UIDL
    shared: dict[str, list[int]] = field(default_factory=dict)
    #: shared UIDLs the archive had recorded for one message: that delivery must give
    #: the UIDL up (and be known by its content) before anything else happens, or
    #: once the UIDL is unique again it would be taken to mean that message (and be
    #: deleted as it) while it may hold one of the others
    retire: list[str] = field(default_factory=list)
    #: msgnum -> UIDL of the tombstones_held that came from a shared UIDL
    listed_held: dict[int, str] = field(default_factory=dict)
    too_large: list[int] = field(default_factory=list)
    #: msgnums left for a later pass by max_messages_per_pass / max_bytes_per_pass
    deferred: int = 0
    #: the listing looks like a server migration: deletions are suspended this pass
    migration: bool = False
    new_count: int = 0
    #: a message fetched this pass is due for DELE as soon as its delivery is committed
    delete_on_commit: bool = False
    #: the server has no UIDL: messages are known by content hash only
    without_uidl: bool = False
    #: the account's policy, for messages whose archive time is known only once
    #: fetched (shared UIDLs): see deletions()
    leave_on_server: bool = False
    delete_after: timedelta | None = None
    now: datetime | None = None

    def by_content(self, msgnum: int) -> bool:
        """Is this message recognised by content hash, not by its UIDL?"""
        return self.without_uidl or msgnum not in self.listed

    def held_uidl(self, msgnum: int) -> str:
        """The UIDL of one of ``tombstones_held``."""
        return self.listed.get(msgnum) or self.listed_held[msgnum]

    def uidl_of(self, msgnum: int) -> str | None:
        """The UIDL that identifies the message, or None if it is known by content."""
        return self.listed.get(msgnum)


#: A migration is declared when at least this many known UIDLs existed, and at
#: least these fractions of them vanished while as many unknown ones appeared.
MIGRATION_MIN_KNOWN = 10
MIGRATION_VANISHED = 0.5
MIGRATION_APPEARED = 0.5


def plan_pass(
    uidls: list[tuple[int, str]],
    sizes: dict[int, int],
    known: dict[str, KnownDelivery],
    *,
    leave_on_server: bool,
    delete_after: timedelta | None,
    max_message_size: int,
    max_messages: int,
    max_bytes: int,
    now: datetime,
    returned: Mapping[str, KnownDelivery] | None = None,
) -> PassPlan:
    """Decide a pass from the UIDL and LIST replies and what the archive knows.

    ``known`` holds every UIDL of this account the archive believes is still on
    the server (tombstones of purged messages included: rule 5). ``returned``
    holds listed UIDLs the archive recorded as gone from the server: the
    server may have reused them for other content, so they are fetched again
    like a changed size (a tombstone's never is).
    """
    returned = returned or {}
    plan = PassPlan(leave_on_server=leave_on_server, delete_after=delete_after, now=now)
    listings = Counter(uidl for _, uidl in uidls)
    seen: set[str] = set()
    for msgnum, uidl in uidls:
        if not valid_uidl(uidl):
            plan.quarantined.append(uidl)
            continue
        seen.add(uidl)
        if listings[uidl] > 1:
            plan.shared.setdefault(uidl, []).append(msgnum)
        else:
            plan.listed[msgnum] = uidl

    new: list[int] = []
    for msgnum, uidl in plan.listed.items():
        info = known.get(uidl)
        size = sizes.get(msgnum)
        if info is None:
            back = returned.get(uidl)
            if back is None:
                new.append(msgnum)
            elif back.tombstone:
                plan.tombstones_held.append(msgnum)
            else:
                plan.changed.add(msgnum)
                plan.archived_before[msgnum] = back.archived_at
        elif info.server_size is not None and size is not None and size != info.server_size:
            # Same UIDL, other size: fetch again and let the content hash decide;
            # never delete on the old evidence. A purged message is never fetched
            # again (rule 5), and what now carries its UIDL may be other mail, so
            # it is left alone.
            if info.tombstone:
                plan.tombstones_held.append(msgnum)
            else:
                plan.changed.add(msgnum)
                plan.archived_before[msgnum] = info.archived_at
        elif deletion_due(leave_on_server, delete_after, info.archived_at, now):
            plan.delete_known.append(msgnum)
    plan.new_count = len(new)
    plan.vanished = [u for u in known if u not in seen]
    # A shared UIDL of a purged message: one of its messages may be that one, and
    # without its content nothing tells which, so none is fetched (rule 5) or
    # deleted; the pass reports them as purged.
    for uidl in [u for u in plan.shared if u in known and known[u].tombstone]:
        held = plan.shared.pop(uidl)
        plan.tombstones_held.extend(held)
        plan.listed_held.update(dict.fromkeys(held, uidl))
    plan.retire = [u for u in plan.shared if u in known]

    if (len(known) >= MIGRATION_MIN_KNOWN
            and len(plan.vanished) >= MIGRATION_VANISHED * len(known)
            and len(new) >= MIGRATION_APPEARED * len(known)):
        plan.migration = True
        plan.delete_known = []

    # Fetched now, due now: delete-at-once (or a delete_after of zero) deletes
    # a message in the pass that archives it -- except in a migration.
    plan.delete_on_commit = not plan.migration and deletion_due(
        leave_on_server, delete_after, now, now)
    # Shared ones last: they are fetched every pass, and must not use up the
    # per-pass budget that new mail needs.
    shared = sorted(n for msgnums in plan.shared.values() for n in msgnums)
    _choose_fetches(plan, sorted(new) + sorted(plan.changed) + shared, sizes,
                    max_message_size, max_messages, max_bytes)
    return plan


def plan_pass_without_uidl(sizes: dict[int, int], *, max_message_size: int, max_messages: int,
                           max_bytes: int) -> PassPlan:
    """A pass on a server without UIDL (only with ``leave_on_server = false``):
    fetch everything within the limits, delete each message once it is committed.

    Without UIDLs a message is recognised by its content hash: one archived by
    a pass that died before QUIT is found again, recorded as known, and
    deleted this time.
    """
    plan = PassPlan(without_uidl=True, delete_on_commit=True, new_count=len(sizes))
    _choose_fetches(plan, sorted(sizes), sizes, max_message_size, max_messages, max_bytes)
    plan.new_count = len(plan.fetch)
    return plan


def _choose_fetches(plan: PassPlan, candidates: list[int], sizes: dict[int, int],
                    max_message_size: int, max_messages: int, max_bytes: int) -> None:
    """Fill ``plan.fetch`` from ``candidates`` in order within the per-pass limits;
    the first message is fetched even if it alone exceeds ``max_bytes``."""
    budget_msgs, budget_bytes = max_messages, max_bytes
    for msgnum in candidates:
        size = sizes.get(msgnum, 0)
        if size > max_message_size:
            plan.too_large.append(msgnum)
            continue
        if budget_msgs <= 0 or (size > budget_bytes and plan.fetch):
            plan.deferred += 1
            continue
        plan.fetch.append(msgnum)
        budget_msgs -= 1
        budget_bytes -= size


def deletions(plan: PassPlan, committed: Iterable[int], *, stopping: bool,
              archived_at: Mapping[int, datetime] | None = None) -> list[int]:
    """The msgnums to DELE at the end of a pass, in server order.

    Only messages whose delivery is committed (``committed``: msgnums whose
    batch the writer reported as committed) or that were archived before
    (``plan.delete_known``) are candidates; a pass that was asked to stop
    deletes nothing (the next one will). A committed message whose due time
    only the fetch could tell — under a shared UIDL, or a known UIDL listed
    with another size that turned out to hold the same mail — is due by
    ``archived_at`` (msgnum -> when the archive first recorded that mail), as
    the policy says; in a suspected migration none is.
    """
    if stopping:
        return []
    due = set(plan.delete_known)
    committed = list(committed)
    if plan.delete_on_commit:
        due.update(committed)
    elif not plan.migration and plan.now is not None and archived_at:
        due.update(n for n in committed if n in archived_at
                   and deletion_due(plan.leave_on_server, plan.delete_after, archived_at[n],
                                    plan.now))
    return sorted(due)


#: Why a pass left a message on the server (``collect --json`` ``skipped``). Only
#: ``retr_error`` and ``store_refused`` are failures of the pass (exit 1); the others
#: are the account's limits or the archive's rules doing their job.
SKIP_REASONS = ("too_large", "invalid_uidl", "purged", "retr_error", "store_refused",
                "size_mismatch")
FAILURES = ("retr_error", "store_refused", "size_mismatch")

#: How far what RETR delivers (unstuffed) may stray from LIST's size before the
#: message is suspect, in octets, whatever its size. LIST counts the octets as
#: sent (CRLF line ends) on every server tested: Dovecot exactly; Courier and
#: popa3d exactly, or 1-2 octets short when the stored message lacks a final
#: line end; GNU Mailutils up to ~60 octets more (the X-UIDL header it adds
#: before it stores it) or a few less (it rewrites headers as "Name: value").
#: Courier asked for a message with raw UTF-8 headers without RFC 6856 UTF8
#: sends a stand-in ~740 octets larger than LIST says, whatever the size.
SIZE_SLACK = 256


def retr_size_plausible(listed: int | None, received: int) -> bool:
    """Is ``received`` octets a plausible RETR for a message LIST gave as ``listed``?

    An implausible one may be something other than the stored mail (a
    server-made stand-in): it must be neither archived as that mail nor deleted.
    """
    return listed is None or abs(received - listed) <= SIZE_SLACK


def plan_warnings(plan: PassPlan, sizes: Mapping[int, int], max_message_size: int,
                  ) -> tuple[dict[str, int], list[str]]:
    """(messages the plan leaves on the server, by reason; warnings) for a plan."""
    skipped = dict.fromkeys(("too_large", "invalid_uidl", "purged"), 0)
    warnings: list[str] = []
    if plan.without_uidl:
        warnings.append("server has no UIDL: recognising messages by content hash only")
    if plan.quarantined:
        skipped["invalid_uidl"] += len(plan.quarantined)
        warnings.append(
            f"{len(plan.quarantined)} message(s) with invalid UIDLs (RFC 1939 allows 1-70 "
            f"printable characters) quarantined on the server, neither fetched nor deleted: "
            + ", ".join(repr(u[:80]) for u in plan.quarantined[:5]))
    if plan.shared:
        messages = sum(len(m) for m in plan.shared.values())
        warnings.append(
            f"{messages} messages share {len(plan.shared)} UIDL(s), so the UIDL cannot tell "
            "them apart: each is fetched every pass and recognised by its content hash ("
            + ", ".join(repr(u) for u in list(plan.shared)[:5])
            + (", ..." if len(plan.shared) > 5 else "") + ")")
    for msgnum in plan.too_large:
        skipped["too_large"] += 1
        uidl = f"UIDL {plan.listed[msgnum]}, " if msgnum in plan.listed else ""
        warnings.append(
            f"message {msgnum} ({uidl}{sizes.get(msgnum)} bytes) exceeds "
            f"max_message_size ({max_message_size} bytes); left on the server")
    if plan.changed:
        warnings.append(
            f"{len(plan.changed)} known UIDL(s) now list a different size or are back on the "
            "server after being gone; fetching them again (the content hash decides) and not "
            "deleting them on the old evidence")
    if plan.tombstones_held:
        skipped["purged"] += len(plan.tombstones_held)
        warnings.append(
            f"{len(plan.tombstones_held)} UIDL(s) of purged messages are listed with another "
            "size or again after being gone; they are neither fetched again (a purged message "
            "is never re-archived) nor deleted: "
            + ", ".join(dict.fromkeys(repr(plan.held_uidl(n)) for n in plan.tombstones_held[:5])))
    if plan.migration:
        warnings.append(
            f"most known UIDLs vanished ({len(plan.vanished)}) and {plan.new_count} unknown "
            "appeared: this looks like a server migration. Archiving by content hash and "
            "deleting nothing on the server this pass.")
    if plan.deferred:
        warnings.append(
            f"{plan.deferred} new message(s) left for the next pass "
            "(max_messages_per_pass / max_bytes_per_pass)")
    return skipped, warnings
