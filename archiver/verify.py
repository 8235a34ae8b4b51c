"""``archiver verify``: prove stored content and the audit trail untouched (DESIGN.md §2 rule 7)."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field

from sqlalchemy import Connection

from archiver import audit
from archiver.store import content


@dataclass
class VerifyReport:
    messages: int = 0
    bytes: int = 0
    damaged: list[dict] = field(default_factory=list)
    audit_entries: int = 0
    audit_problems: list[str] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return not self.damaged and not self.audit_problems

    def to_json(self) -> dict:
        return {
            "ok": self.ok,
            "messages": self.messages,
            "bytes": self.bytes,
            "damaged": self.damaged,
            "audit": {
                "entries": self.audit_entries,
                "ok": not self.audit_problems,
                "problems": self.audit_problems,
            },
        }


def verify_archive(conn: Connection, progress: Callable[[int], None] | None = None,
                   ) -> VerifyReport:
    """Re-read every message, recompute its SHA-256 and size, then check the audit chain.

    ``progress(n_bytes)`` is called after each message. Content is read here
    only to be hashed, never shown, so it does not go through the reading service.
    """
    report = VerifyReport()
    for msg in content.iter_messages(conn):
        report.messages += 1
        report.bytes += msg.size
        problem = content.check_content(conn, msg)
        if problem:
            report.damaged.append({"id": msg.sha256, "problem": problem})
        if progress:
            progress(msg.size)
    chain = audit.verify_chain(conn)
    report.audit_entries = chain.entries
    report.audit_problems = chain.problems
    return report


__all__ = [
    "VerifyReport",
    "verify_archive",
]
