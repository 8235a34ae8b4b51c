"""archiver.store.rewrites: what counts as the server's rewrite of a stored message."""

from __future__ import annotations

import pytest

from archiver.store.rewrites import is_status_rewrite

ORIGINAL = (b"Subject: plain LF\r\nFrom: a@b\r\nX-UIDL: 1947.1\r\n\r\n"
            b"line1\r\n.dot line\r\nFrom here\r\n")


@pytest.mark.parametrize("rewritten", [
    # GNU Mailutils 3.15 (mbox), second session: status fields appended
    ORIGINAL.replace(b"X-UIDL: 1947.1\r\n",
                     b"X-UIDL: 1947.1\r\nX-IMAPbase: 1796351595 8\r\nX-UID: 1\r\nStatus: OR\r\n"),
    # a later session: fields reordered, Status changed
    b"Subject: plain LF\r\nX-UIDL: 1947.1\r\nFrom: a@b\r\nStatus: RO\r\nX-UID: 1\r\n\r\n"
    b"line1\r\n.dot line\r\nFrom here\r\n",
    # status fields dropped again
    ORIGINAL.replace(b"From: a@b\r\n", b"From: a@b\r\nX-Status: A\r\n"),
])
def test_status_fields_and_order_are_a_rewrite(rewritten):
    assert is_status_rewrite(ORIGINAL, rewritten)
    assert is_status_rewrite(rewritten, ORIGINAL)


@pytest.mark.parametrize("other", [
    ORIGINAL,  # identical bytes: the same content, not a rewrite
    ORIGINAL.replace(b"line1", b"line2"),  # the body changed
    ORIGINAL + b"more\r\n",
    ORIGINAL.replace(b"plain LF", b"plain lf"),  # a real field changed
    b"Received: from x\r\n" + ORIGINAL,  # a field added that is not mailbox status
    ORIGINAL.replace(b"Subject: plain LF\r\n", b"Subject: plain LF\r\nStatus: O\r\n"
                     b"Subject: plain LF\r\n"),  # a field duplicated
    b"no header block at all",
])
def test_anything_else_is_other_mail(other):
    assert not is_status_rewrite(ORIGINAL, other)


def test_continuation_lines_belong_to_their_field():
    old = b"Subject: a\r\n b\r\nStatus: O\r\n\r\nbody\r\n"
    assert is_status_rewrite(old, b"Status: RO\r\nSubject: a\r\n b\r\n\r\nbody\r\n")
    assert not is_status_rewrite(old, b"Subject: a\r\nStatus: RO\r\n b\r\n\r\nbody\r\n")
