"""The delivery ledger: the only code that writes ``deliveries``.

A delivery is one sighting of a message (DESIGN.md §2 rules 2 and 5): an
(account, UIDL) on a POP3 server, a message from a server without UIDL, or
a file brought in by ``import``. Every transition of a row happens here:

========================  ==================================================
``record``                new: a delivery of new content, or a duplicate of
                          content already archived (state ``archived``)
``supersede``             the server reused the UIDL for other content: the
                          old row gives the UIDL up (``superseded``)
``confirm_on_server``     listed again / fetched again with known content:
                          believed on the server (``deleted_on_server_at``
                          NULL), with the size LIST gives now
``mark_gone``             our DELE was confirmed by QUIT, or the UIDL is no
                          longer listed (``deleted_on_server_at`` set)
``mark_gone_by_content``  the same for a server without UIDL
``tombstone``             the message was purged: the row stays, without
                          its message, so the UIDL is never fetched again
========================  ==================================================

Every function takes the caller's connection: it is part of the caller's
unit of work (ingest commits content and deliveries together).
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import Connection, bindparam, func, insert, select, tuple_, update

from archiver.db import schema
from archiver.db.batching import in_batches
from archiver.db.schema import DeliveryKind, DeliveryState

__all__ = [
    "NewDelivery",
    "Sighting",
    "adopt_uidl",
    "known_by_content_from_now",
    "confirm_on_server",
    "first_seen_by_content",
    "gone_from_server",
    "mark_gone",
    "mark_gone_by_content",
    "on_server",
    "record",
    "recorded_without_uidl",
    "recorded_uidls",
    "supersede",
    "tombstone",
]

_d = schema.deliveries


@dataclass(frozen=True, slots=True)
class Sighting:
    """What the ledger knows of one UIDL of an account."""

    server_size: int | None
    first_seen_at: datetime
    #: the message was purged; the row is a tombstone (never fetch again)
    tombstone: bool


@dataclass(frozen=True, slots=True)
class NewDelivery:
    """A delivery to record; ``uidl`` None for imports and servers without UIDL."""

    account_id: int
    kind: DeliveryKind
    message_pk: int
    uidl: str | None = None
    server_size: int | None = None
    source: str | None = None
    folder: str | None = None
    #: the superseded delivery whose message the server rewrote into this one
    rewrite_of: int | None = None
    #: when the delivery was first seen, if before now (a rewrite: the mail arrived
    #: with the delivery it rewrites, and delete_after counts from then)
    first_seen_at: datetime | None = None


# -- reads -------------------------------------------------------------------------


def on_server(conn: Connection, account_id: int) -> dict[str, Sighting]:
    """Every UIDL of the account believed still on the server (tombstones included), in one query."""
    rows = conn.execute(
        select(_d.c.uidl, _d.c.server_size, _d.c.first_seen_at, _d.c.state).where(
            _d.c.account_id == account_id,
            _d.c.deleted_on_server_at.is_(None),
            _d.c.uidl.is_not(None),
        )
    )
    return {u: Sighting(size, seen, state == DeliveryState.PURGED) for u, size, seen, state in rows}


def gone_from_server(conn: Connection, account_id: int, uidls: list[str]) -> dict[str, Sighting]:
    """Of ``uidls``, those the ledger records as gone from the server (a server
    may reuse a UIDL for other mail)."""
    out: dict[str, Sighting] = {}
    for part in in_batches(uidls):
        for u, size, seen, state in conn.execute(
            select(_d.c.uidl, _d.c.server_size, _d.c.first_seen_at, _d.c.state).where(
                _d.c.account_id == account_id,
                _d.c.uidl.in_(part),
                _d.c.deleted_on_server_at.is_not(None),
            )
        ):
            out[u] = Sighting(size, seen, state == DeliveryState.PURGED)
    return out


def recorded_uidls(conn: Connection, keys: Iterable[tuple[int, str]]) -> dict[tuple[int, str], int | None]:
    """(account id, UIDL) -> message pk (None for a tombstone), for the keys recorded."""
    out: dict[tuple[int, str], int | None] = {}
    for part in in_batches(list(keys)):
        for acc, uidl, msg_pk in conn.execute(
            select(_d.c.account_id, _d.c.uidl, _d.c.message_id).where(
                tuple_(_d.c.account_id, _d.c.uidl).in_(part))
        ):
            out[(acc, uidl)] = msg_pk
    return out


def recorded_without_uidl(conn: Connection, kind: DeliveryKind,
                          keys: Iterable[tuple[int, int]]) -> set[tuple[int, int]]:
    """Of (account id, message pk) keys, those already recorded as a delivery of
    ``kind`` without UIDL (an import, or a server without UIDL): such deliveries
    are recorded once per account and message."""
    out: set[tuple[int, int]] = set()
    for part in in_batches(list(keys)):
        out.update((acc, pk) for acc, pk in conn.execute(
            select(_d.c.account_id, _d.c.message_id).where(
                tuple_(_d.c.account_id, _d.c.message_id).in_(part),
                _d.c.kind == kind, _d.c.uidl.is_(None), _d.c.former_uidl.is_(None),
            )
        ))
    return out


def first_seen_by_content(conn: Connection, account_id: int,
                          shas: list[str]) -> dict[str, datetime]:
    """sha256 -> when the account's POP3 delivery known by content (no UIDL: a
    server without UIDL, or a UIDL shared by several messages) was first seen."""
    m = schema.messages
    out: dict[str, datetime] = {}
    for part in in_batches(shas):
        for sha, seen in conn.execute(
            select(m.c.sha256, func.min(_d.c.first_seen_at, type_=_d.c.first_seen_at.type))
            .join(m, m.c.id == _d.c.message_id)
            .where(_d.c.account_id == account_id, _d.c.kind == DeliveryKind.POP3,
                   _d.c.uidl.is_(None), _d.c.former_uidl.is_(None), m.c.sha256.in_(part))
            .group_by(m.c.sha256)
        ):
            out[sha] = seen
    return out


# -- transitions -----------------------------------------------------------------------


def record(conn: Connection, deliveries: list[NewDelivery], now: datetime) -> None:
    """Record new deliveries (state ``archived``) in one multi-row INSERT."""
    if not deliveries:
        return
    conn.execute(insert(_d), [
        {
            "account_id": n.account_id,
            "kind": n.kind,
            "state": DeliveryState.ARCHIVED,
            "uidl": n.uidl,
            "former_uidl": None,
            "message_id": n.message_pk,
            "server_size": n.server_size,
            "first_seen_at": n.first_seen_at or now,
            "deleted_on_server_at": None,
            "source": n.source[:1000] if n.source else None,
            "folder": n.folder[:255] if n.folder else None,
            "rewrite_of": n.rewrite_of,
        }
        for n in deliveries
    ])


def known_by_content_from_now(conn: Connection, account_id: int, uidls: list[str]) -> None:
    """These UIDLs are each listed for several messages now: their deliveries give
    them up and are known by content hash from now on (first seen, deletion state
    and message kept), like the deliveries of the other messages under them.
    Tombstones never come here (their UIDL is what keeps a purged message out)."""
    for part in in_batches(uidls):
        conn.execute(
            update(_d).where(_d.c.account_id == account_id, _d.c.uidl.in_(part),
                             _d.c.state == DeliveryState.ARCHIVED)
            .values(uidl=None)
        )


def adopt_uidl(conn: Connection, account_id: int, message_pk: int, uidl: str,
               server_size: int | None) -> bool:
    """A message this account has a delivery of known only by content (a server
    without UIDL, or a UIDL shared by several messages) is now listed under a
    UIDL of its own: that delivery takes the UIDL, keeping when it was first
    seen (delete_after counts from then). False if there is no such delivery."""
    row = conn.execute(
        select(func.min(_d.c.id)).where(
            _d.c.account_id == account_id, _d.c.kind == DeliveryKind.POP3,
            _d.c.message_id == message_pk, _d.c.uidl.is_(None), _d.c.former_uidl.is_(None),
            _d.c.state == DeliveryState.ARCHIVED, _d.c.deleted_on_server_at.is_(None))
    ).scalar()
    if row is None:
        return False
    conn.execute(update(_d).where(_d.c.id == row).values(uidl=uidl, server_size=server_size))
    return True


def supersede(conn: Connection, account_id: int, uidl: str) -> tuple[int, datetime] | None:
    """The server reused ``uidl`` for other content (or rewrote the message): the
    old delivery keeps its message and gives the UIDL up, so the new one can
    take it. Returns the old delivery's id and when it was first seen."""
    old = conn.execute(
        select(_d.c.id, _d.c.first_seen_at).where(_d.c.account_id == account_id,
                                                  _d.c.uidl == uidl)
    ).first()
    conn.execute(
        update(_d).where(_d.c.account_id == account_id, _d.c.uidl == uidl)
        .values(state=DeliveryState.SUPERSEDED, former_uidl=uidl, uidl=None)
    )
    return (old.id, old.first_seen_at) if old is not None else None


def confirm_on_server(conn: Connection, account_id: int,
                      listed: list[tuple[str, int | None]]) -> None:
    """(UIDL, LIST size or None) pairs are on the server: believe the listing again."""
    if not listed:
        return
    conn.execute(
        update(_d).where(_d.c.account_id == account_id, _d.c.uidl == bindparam("b_uidl"))
        .values(deleted_on_server_at=None,
                server_size=func.coalesce(bindparam("b_size"), _d.c.server_size)),
        [{"b_uidl": u, "b_size": size} for u, size in listed],
    )


def mark_gone(conn: Connection, account_id: int, uidls: list[str], when: datetime) -> None:
    """These UIDLs left the server at ``when`` (our confirmed DELE, or no longer listed)."""
    for part in in_batches(uidls):
        conn.execute(
            update(_d)
            .where(_d.c.account_id == account_id, _d.c.uidl.in_(part),
                   _d.c.deleted_on_server_at.is_(None))
            .values(deleted_on_server_at=when)
        )


def mark_gone_by_content(conn: Connection, account_id: int, shas: list[str],
                         when: datetime) -> None:
    """A server without UIDL deleted these messages (by content hash) at ``when``."""
    m = schema.messages
    for part in in_batches(shas):
        ids = select(m.c.id).where(m.c.sha256.in_(part)).scalar_subquery()
        conn.execute(
            update(_d)
            .where(_d.c.account_id == account_id, _d.c.kind == DeliveryKind.POP3,
                   _d.c.uidl.is_(None), _d.c.state == DeliveryState.ARCHIVED,
                   _d.c.message_id.in_(ids), _d.c.deleted_on_server_at.is_(None))
            .values(deleted_on_server_at=when)
        )


def tombstone(conn: Connection, message_pks: list[int]) -> None:
    """These messages are being purged: their deliveries stay, as tombstones.

    Call before the messages' rows are deleted (deliveries reference them).
    """
    for part in in_batches(message_pks):
        conn.execute(
            update(_d).where(_d.c.message_id.in_(part))
            .values(state=DeliveryState.PURGED, message_id=None)
        )
