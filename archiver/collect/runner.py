"""Running passes for several accounts, and ``check --connect``.

Used by ``archiver collect`` now and by the scheduler of ``archiver run``.
"""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor
from typing import TYPE_CHECKING, Any

from archiver.collect.collector import (
    Collector,
    PassProgress,
    PassReport,
    expire_warnings,
    user_capabilities,
)
from archiver.collect.pop3 import POP3Client
from archiver.errors import CollectError
from archiver.store.ingest import MessageStore

if TYPE_CHECKING:
    from archiver.config import Account


def collect_accounts(store: MessageStore, accounts: list[Account], max_concurrent: int = 4, *,
                     progress: PassProgress | None = None, collector: Collector | None = None,
                     ) -> list[PassReport]:
    """One pass per account, at most ``max_concurrent`` at once; reports in input order."""
    own = collector is None
    collector = collector or Collector(store)
    try:
        if len(accounts) <= 1 or max_concurrent <= 1:
            return [collector.collect(a, progress=progress) for a in accounts]
        with ThreadPoolExecutor(max_workers=min(max_concurrent, len(accounts)),
                                thread_name_prefix="collect") as pool:
            return list(pool.map(lambda a: collector.collect(a, progress=progress), accounts))
    finally:
        if own:
            collector.close()


def check_account(account: Account) -> dict[str, Any]:
    """Log in to ``account`` and report what the server offers; fetches and deletes nothing."""
    result: dict[str, Any] = {"account": account.name, "host": account.host, "port": account.port,
              "tls": account.tls, "status": "ok", "auth": None, "capabilities": [],
              "expire": None, "messages": None, "bytes": None, "warnings": [],
              "error": None, "error_kind": None}
    client = POP3Client(account.host, account.port, tls=account.tls,
                        verify_tls=account.verify_tls,
                        ca_file=str(account.ca_file) if account.ca_file else None,
                        timeout=account.timeout.total_seconds())
    try:
        client.connect()
        # What the server offers before login, kept even if the login fails.
        result["capabilities"] = [" ".join([k, *v]) for k, v in client.capabilities.items()]
        result["auth"] = client.login(account.username, account.password.reveal(), account.auth)
        caps = user_capabilities(client)
        result["capabilities"] = [" ".join([k, *v]) for k, v in caps.items()]
        result["expire"] = " ".join(caps["EXPIRE"]) if "EXPIRE" in caps else None
        warnings = expire_warnings(caps, account)
        if "UIDL" not in caps and account.leave_on_server:
            warnings.append("server does not list UIDL in CAPA; leave_on_server needs UIDL")
        result["warnings"] = warnings
        result["messages"], result["bytes"] = client.stat()
        client.quit()
    except CollectError as exc:
        result.update(status="error", error=str(exc), error_kind=exc.kind)
    finally:
        client.close()
    return result


__all__ = [
    "check_account",
    "collect_accounts",
]
