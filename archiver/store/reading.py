"""The reading service: every read of a message that a user sees goes through here.

Each function writes its audit entry (DESIGN.md §8) in the caller's unit of
work *before* it returns anything of the message, so the entry and the read
commit together and no content leaves without its record: the caller sends
the result out only after the unit of work has committed. The CLI (``show``,
``show --raw``) and later search, export and the web UI call these; none of
them audits or reads content by itself.

``actor`` is who reads (``cli:alice``, a web user), ``client`` from where
(``cli``, an IP address).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from sqlalchemy import Connection, func, select

from archiver import audit
from archiver.db import schema
from archiver.errors import UsageError
from archiver.store import content
from archiver.store.content import StoredMessage
from archiver.store.spool import Spool

__all__ = ["Part", "message_part", "message_view", "raw_message"]


def message_view(conn: Connection, ident: str, *, actor: str, client: str | None) -> dict[str, Any]:
    """Headers, recipients, deliveries, attachments and text of one message (the
    document ``show --json`` prints), audited as ``message.view``.

    ``ident`` is an id or a unique prefix of 8+ hex digits.
    """
    msg = content.resolve(conn, ident)
    audit.append(conn, "message.view", actor=actor, target=msg.sha256, client=client)
    return _details(conn, msg)


def raw_message(conn: Connection, ident: str, *, actor: str, client: str | None) -> Spool:
    """The exact stored bytes of one message, verified against its id, audited as
    ``message.raw``. The caller closes the returned spool.

    Raises CorruptContent (nothing audited, nothing handed out) when storage
    no longer matches the id: damaged evidence is never passed on as intact.
    """
    msg = content.resolve(conn, ident)
    spool = content.read_verified(conn, msg)
    try:
        audit.append(conn, "message.raw", actor=actor, target=msg.sha256, client=client,
                     details={"size": msg.size})
    except BaseException:
        spool.close()
        raise
    return spool


@dataclass(frozen=True)
class Part:
    """One attachment of a message, decoded."""

    number: int
    filename: str | None
    content_type: str
    data: bytes


def message_part(conn: Connection, ident: str, number: int, *, actor: str,
                 client: str | None) -> Part:
    """Attachment ``number`` (as ``show`` numbers them, from 1) of one message,
    its transfer encoding undone, audited as ``message.part``.

    The stored bytes are verified against the id first (CorruptContent, nothing
    audited, otherwise). Raises UsageError for a number the message does not
    have. The part is held in memory (attachments are bounded by the
    collector's max_message_size).
    """
    from archiver.store.parse import attachment_payload  # the email package: only when needed

    msg = content.resolve(conn, ident)
    with content.read_verified(conn, msg) as spool:
        try:
            info, data = attachment_payload(spool.view(), number)
        except IndexError:
            count = conn.execute(select(func.count()).select_from(schema.attachments).where(
                schema.attachments.c.message_id == msg.pk)).scalar_one()
            raise UsageError(
                f"message {msg.sha256[:16]} has no attachment {number}: "
                + (f"it has {count}, numbered 1 to {count} (see `archiver show`)" if count
                   else "it has none")) from None
    audit.append(conn, "message.part", actor=actor, target=msg.sha256, client=client,
                 details={"part": number, "filename": info.filename,
                          "content_type": info.content_type, "size": len(data)})
    return Part(number, info.filename, info.content_type, data)


def _details(conn: Connection, msg: StoredMessage) -> dict[str, Any]:
    m = schema.messages
    row = conn.execute(select(m).where(m.c.id == msg.pk)).one()
    a = schema.message_addresses
    addresses = conn.execute(
        select(a.c.role, a.c.address, a.c.display_name)
        .where(a.c.message_id == msg.pk)
        .order_by(a.c.position)
    ).all()

    def by_role(*roles: str) -> list[str]:
        return [_fmt_address(addr, name) for role, addr, name in addresses if role in roles]

    d = schema.deliveries
    acc = schema.accounts
    # A server's rewrite of the same mail (deliveries.rewrite_of), both ways:
    # the delivery this one rewrote, and the one that rewrote this one.
    older, newer = d.alias("older"), d.alias("newer")
    older_msg, newer_msg = schema.messages.alias("older_msg"), schema.messages.alias("newer_msg")
    rewrite_of = (select(older_msg.c.sha256)
                  .select_from(older.join(older_msg, older_msg.c.id == older.c.message_id))
                  .where(older.c.id == d.c.rewrite_of).scalar_subquery())
    rewritten_as = (select(newer_msg.c.sha256)
                    .select_from(newer.join(newer_msg, newer_msg.c.id == newer.c.message_id))
                    .where(newer.c.rewrite_of == d.c.id).limit(1).scalar_subquery())
    deliveries = conn.execute(
        select(acc.c.name, d.c.kind, d.c.uidl, d.c.former_uidl, d.c.source, d.c.folder,
               d.c.first_seen_at, d.c.deleted_on_server_at,
               rewrite_of.label("rewrite_of"), rewritten_as.label("rewritten_as"))
        .join(acc, acc.c.id == d.c.account_id)
        .where(d.c.message_id == msg.pk)
        .order_by(d.c.first_seen_at, d.c.id)
    ).all()
    att = schema.attachments
    attachments = conn.execute(
        select(att.c.filename, att.c.content_type, att.c.size)
        .where(att.c.message_id == msg.pk)
        .order_by(att.c.position)
    ).all()
    t = schema.message_texts
    text = conn.execute(select(t.c.body).where(t.c.message_id == msg.pk)).scalar() or ""
    return {
        "id": row.sha256,
        "sha256": row.sha256,
        "size": row.size,
        "date": _iso(row.date),
        "archived_at": _iso(row.archived_at),
        "from": row.from_display or next(iter(by_role("from")), None),
        "to": by_role("to"),
        "cc": by_role("cc"),
        "bcc": by_role("bcc"),
        "subject": row.subject,
        "message_id": row.message_id_header,
        "accounts": sorted({r.name for r in deliveries}),
        "deliveries": [
            {
                "account": r.name,
                "kind": r.kind,
                "uidl": r.uidl,
                # the UIDL this delivery had until the server reused it for other mail
                "former_uidl": r.former_uidl,
                # the server rewrote that message into this one (status headers), or
                # this one into that: the same mail in other bytes
                "rewrite_of": r.rewrite_of,
                "rewritten_as": r.rewritten_as,
                "source": r.source,
                "folder": r.folder,
                "first_seen": _iso(r.first_seen_at),
                "deleted_on_server": _iso(r.deleted_on_server_at),
            }
            for r in deliveries
        ],
        "attachments": [
            {"part": n, "filename": r.filename, "content_type": r.content_type, "size": r.size}
            for n, r in enumerate(attachments, 1)
        ],
        "parse_defects": row.parse_defects,
        "text": text,
    }


def _fmt_address(address: str, name: str | None) -> str:
    return f"{name} <{address}>" if name else address


def _iso(value: Any) -> str | None:
    return value.isoformat() if value is not None else None
