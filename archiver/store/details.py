"""One message as a reader sees it: header fields, recipients, deliveries, attachments, text."""

from __future__ import annotations

from sqlalchemy import Connection, select

from archiver.db import schema
from archiver.store.store import StoredMessage


def message_details(conn: Connection, msg: StoredMessage) -> dict:
    """Everything ``show`` prints about a message (the JSON form of ``show --json``)."""
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
    deliveries = conn.execute(
        select(acc.c.name, d.c.uidl, d.c.source, d.c.folder, d.c.first_seen_at,
               d.c.deleted_on_server_at)
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
        "from": row.from_display or (by_role("from") or [None])[0],
        "to": by_role("to"),
        "cc": by_role("cc"),
        "bcc": by_role("bcc"),
        "subject": row.subject,
        "message_id": row.message_id_header,
        "accounts": sorted({r.name for r in deliveries}),
        "deliveries": [
            {
                "account": r.name,
                "uidl": r.uidl,
                "source": r.source,
                "folder": r.folder,
                "first_seen": _iso(r.first_seen_at),
                "deleted_on_server": _iso(r.deleted_on_server_at),
            }
            for r in deliveries
        ],
        "attachments": [
            {"filename": r.filename, "content_type": r.content_type, "size": r.size}
            for r in attachments
        ],
        "parse_defects": row.parse_defects,
        "text": text,
    }


def _fmt_address(address: str, name: str | None) -> str:
    return f"{name} <{address}>" if name else address


def _iso(value) -> str | None:
    return value.isoformat() if value is not None else None
