"""Is one stored message the server's rewrite of another? (pure)

Some POP3 servers change mail they hold: GNU Mailutils with an mbox adds
``Status:``, ``X-UID`` and ``X-IMAPbase`` headers at the end of the first
session (and may reorder header fields later), so one delivery, under one
UIDL, returns other bytes from then on. DESIGN.md rules 2 and 3 stand:
different bytes are different content and both are stored exactly. This
module only answers whether the difference is such a rewrite, so that the
second version is recorded as the same mail (``deliveries.rewrite_of``), not
counted or reported as new.

A rewrite: the bodies are byte-identical, and the header fields are the same
multiset once the mailbox-status fields below are left out (their order may
differ). Anything else — a changed subject, body, or an added ``Received:`` —
is other mail.
"""

from __future__ import annotations

import re

__all__ = ["STATUS_FIELDS", "is_status_rewrite"]

#: Header fields that mail stores keep their own state in (lower case).
STATUS_FIELDS = frozenset({"status", "x-status", "x-uid", "x-imapbase", "x-keywords"})

_HEADER_END = re.compile(rb"\r?\n\r?\n")
_FIELD_START = re.compile(rb"(?m)^(?=[^ \t\r\n])")


def _split(raw: bytes) -> tuple[bytes, bytes]:
    match = _HEADER_END.search(raw)
    if match is None:
        return raw, b""
    return raw[: match.start()], raw[match.end():]


def _fields(header: bytes) -> list[bytes]:
    """Header fields with their continuation lines, line ends normalised to LF,
    mailbox-status fields left out, in a canonical order."""
    fields = []
    for field in _FIELD_START.split(header.replace(b"\r\n", b"\n")):
        if not field.strip():
            continue
        name = field.split(b":", 1)[0].strip().lower()
        if name.decode("latin-1") in STATUS_FIELDS:
            continue
        fields.append(field.rstrip(b"\n"))
    return sorted(fields)


def is_status_rewrite(old: bytes, new: bytes) -> bool:
    """True if ``new`` is ``old`` with only mailbox-status header fields added,
    changed or removed, or header fields reordered. Identical bytes are not a
    rewrite (they are the same content)."""
    if old == new:
        return False
    old_header, old_body = _split(old)
    new_header, new_body = _split(new)
    return old_body == new_body and _fields(old_header) == _fields(new_header)
