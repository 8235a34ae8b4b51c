"""The demo's sample mail: deterministic, varied, in wire form, parseable."""

from __future__ import annotations

import email
import email.policy
import re
from collections import Counter

from archiver.demo.samples import demo_messages


def _is_wire_form(message: bytes) -> bool:
    return (
        message.endswith(b"\r\n")
        and re.search(rb"(?<!\r)\n", message) is None
        and re.search(rb"\r(?!\n)", message) is None
    )


def test_demo_messages_are_deterministic_varied_wire_form():
    messages = demo_messages()
    assert len(messages) == 300
    assert messages == demo_messages()
    assert demo_messages(20, seed=8) != messages[:20]
    assert len(set(messages)) == len(messages)
    assert sum(map(len, messages)) < 5_000_000  # collected in a second or two
    kinds = Counter()
    for raw in messages:
        assert _is_wire_form(raw)
        message = email.message_from_bytes(raw, policy=email.policy.default)
        assert not message.defects
        assert message["Message-ID"] and message["Date"] and message["Subject"]
        for part in message.walk():
            kinds[part.get_content_type()] += 1
            if part.get_content_charset():
                kinds[part.get_content_charset()] += 1
        kinds["reply"] += message["In-Reply-To"] is not None
        kinds["bank"] += "@bank.example" in str(message["From"])
    for wanted in ("application/pdf", "text/calendar", "text/html", "iso-8859-9",
                   "windows-1252", "iso-8859-1"):
        assert kinds[wanted] >= 5, wanted
    assert kinds["reply"] >= 30 and kinds["bank"] >= 5
    # non-ASCII names and subjects travel as RFC 2047 encoded words
    assert any(b"=?utf-8?" in raw.split(b"\r\n\r\n", 1)[0] for raw in messages)
