"""The parser on a corpus of tricky mail: never raises, extracts what search needs."""

from __future__ import annotations

import re

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from archiver.store.parse import from_line_length, html_to_text, parse_message
from archiver.store.spool import to_wire_form
from tests.support.corpus import tricky_cases

CASES = tricky_cases()


def _squash(text: str | None) -> str | None:
    return None if text is None else re.sub(r"\s+", " ", text).strip()


@pytest.mark.parametrize("case", CASES, ids=[c.name for c in CASES])
@pytest.mark.parametrize("form", ["file", "wire"])
def test_tricky_case(case, form):
    raw = case.raw if form == "file" else to_wire_form(case.raw)
    parsed = parse_message(raw)
    exp = case.expect
    addrs = parsed.addresses
    if "subject" in exp:
        assert _squash(parsed.subject) == _squash(exp["subject"])
    for part in exp.get("subject_contains", []):
        assert part in (parsed.subject or "")
    if "from" in exp:
        assert parsed.from_address == exp["from"].lower()
    if "from_name" in exp:
        assert [n for r, _, n in addrs if r == "from"][0] == exp["from_name"]
    for role, key in (("to", "to"), ("cc", "cc"), ("delivered-to", "delivered_to")):
        if key in exp:
            assert [a for r, a, _ in addrs if r == role] == [a.lower() for a in exp[key]]
    if "message_id" in exp:
        assert parsed.message_id == exp["message_id"]
    if "date" in exp:
        assert (parsed.date.isoformat() if parsed.date else None) == exp["date"]
    if "attachments" in exp:
        assert [a.filename for a in parsed.attachments] == exp["attachments"]
    for name, size in exp.get("attachment_sizes", {}).items():
        assert {a.filename: a.size for a in parsed.attachments}[name] == size
    for text in exp.get("text_contains", []):
        assert text in parsed.text, (text, parsed.text[:500])
    for text in exp.get("text_not_contains", []):
        assert text not in parsed.text
    assert not any(d.startswith("parser failure") for d in parsed.defects)
    # Whatever is extracted must be storable text on every backend.
    for value in [parsed.subject or "", parsed.text, *(a for _, a, _ in addrs)]:
        assert "\x00" not in value


def test_html_to_text_drops_markup_scripts_and_styles():
    html = ("<html><head><style>p{color:red}</style><title>t</title></head><body>"
            "<script>alert(1)</script><p>Hello&nbsp;&amp; welcome</p><div>Line two</div></body>")
    text = html_to_text(html)
    assert "alert" not in text and "color" not in text and "<" not in text
    assert "Hello\xa0& welcome" in text and "Line two" in text


@settings(max_examples=300, deadline=None)
@given(st.binary(max_size=3000))
def test_never_raises_on_arbitrary_bytes(raw):
    # parse_message catches everything as a last resort; a "parser failure"
    # defect is that net catching a bug, which must not happen either.
    assert not any(d.startswith("parser failure") for d in parse_message(raw).defects)


@settings(max_examples=200, deadline=None)
@given(st.lists(st.sampled_from([
    b"Content-Type: multipart/mixed; boundary=x\r\n", b"\r\n", b"--x\r\n", b"--x--\r\n",
    b"Content-Transfer-Encoding: base64\r\n", b"Subject: =?utf-8?b?w7w=?=\r\n", b"QUJD\r\n",
    b"Content-Type: text/html\r\n", b"<p>hi</p>\r\n", b"From: a@b\r\n", b"\n", b"..\r\n",
    b"Content-Disposition: attachment; filename*=UTF-8''%C3%BC.txt\r\n",
    b"Content-Type: message/rfc822\r\n",
]), max_size=40))
def test_never_raises_on_mime_shaped_noise(lines):
    parsed = parse_message(b"".join(lines))
    assert not any(d.startswith("parser failure") for d in parsed.defects)


# -- issue 8, point 9: a From_ line is skipped for parsing -------------------------------


@pytest.mark.parametrize("from_line", [
    b"From sender@host\n",  # short: no date (no colon, so not even header-shaped)
    b"From sender@host Thu Jan  1 00:00:00 2026\n",
    b"From MAILER-DAEMON\r\n",
    b"From \n",
])
@pytest.mark.parametrize("form", ["file", "wire"])
def test_a_from_line_is_skipped_for_parsing(from_line, form):
    raw = from_line + (b"From: Alice <alice@example.com>\nSubject: hello\n"
                       b"Date: Tue, 3 Mar 2026 09:00:00 +0000\n\nbody text\n")
    parsed = parse_message(raw if form == "file" else to_wire_form(raw))
    assert parsed.subject == "hello" and parsed.from_address == "alice@example.com"
    assert parsed.date is not None and "body text" in parsed.text
    assert "missing blank line between header and body" not in parsed.defects


def test_from_line_length():
    assert from_line_length(b"From a@b\nSubject: x\n") == len(b"From a@b\n")
    assert from_line_length(b"From a@b\r\nSubject: x\r\n") == len(b"From a@b\r\n")
    for header in (b"From: a@b\n", b"From : a@b\n", b"From\t: a@b\n", b"Subject: From x\n",
                   b"From a@b without a line end", b"from a@b\n", b">From a@b\n"):
        assert from_line_length(header) == 0, header
    # Only the first line: a From_ line later on is body text.
    assert parse_message(b"Subject: s\n\nFrom me\n").subject == "s"
