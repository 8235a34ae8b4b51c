"""``archiver status``: what the archive holds and how each account's collection went."""

from __future__ import annotations

from typing import Any

from sqlalchemy import Connection, func, select

from archiver.db import schema


def archive_status(conn: Connection, configured: list[str] | tuple[str, ...] = (),
                   ) -> dict[str, Any]:
    """The ``status --json`` document (DESIGN.md §4).

    Accounts are the configured ones (in config order) followed by any others
    the archive knows (import-only accounts, accounts since removed from the
    config). ``next_run`` is known only to a running scheduler; null here.
    ``status`` is the ops command: it shows no message content (not even
    subjects or senders); ``archiver search`` lists messages, audited.
    """
    m = schema.messages
    d = schema.deliveries
    acc = schema.accounts
    r = schema.collection_runs
    n, total = conn.execute(select(func.count(m.c.id), func.coalesce(func.sum(m.c.size), 0))).one()
    per_account: dict[str, int] = dict(
        conn.execute(
            select(acc.c.name, func.count(func.distinct(d.c.message_id)))
            .select_from(acc.outerjoin(d, d.c.account_id == acc.c.id))
            .group_by(acc.c.name)
        ).all()
    )
    latest = (
        select(r.c.account_id, func.max(r.c.id).label("run_id")).group_by(r.c.account_id).subquery()
    )
    runs = {
        row.name: row
        for row in conn.execute(
            select(acc.c.name, r)
            .join(latest, latest.c.account_id == acc.c.id)
            .join(r, r.c.id == latest.c.run_id)
        )
    }
    names = list(dict.fromkeys([*configured, *sorted(per_account)]))
    accounts = []
    for name in names:
        run = runs.get(name)
        accounts.append(
            {
                "account": name,
                "configured": name in configured,
                "messages": int(per_account.get(name, 0)),
                "last_run": _run_json(run) if run is not None else None,
                "next_run": None,
            }
        )
    return {
        "messages": int(n),
        "bytes": int(total),
        "accounts": accounts,
    }


def _run_json(run: Any) -> dict[str, Any]:
    return {
        "started_at": run.started_at.isoformat(),
        "finished_at": run.finished_at.isoformat() if run.finished_at else None,
        "status": run.status,
        "listed": run.listed,
        "new": run.new,
        "archived": run.archived,
        "duplicates": run.duplicates,
        "rewritten": run.rewritten,
        "deleted_on_server": run.deleted_on_server,
        "bytes": run.bytes,
        "skipped": run.skipped,
        "warnings": run.warnings.splitlines() if run.warnings else [],
        "error": run.error,
        "error_kind": run.error_kind,
    }


__all__ = [
    "archive_status",
]
