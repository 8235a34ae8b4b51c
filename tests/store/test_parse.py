"""The parser on a corpus of tricky mail: never raises, extracts what search needs."""

from __future__ import annotations

import hashlib
import re

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from archiver.store.parse import from_line_length, html_to_text, parse_message
from archiver.store.spool import to_wire_form
from tests.conftest import run_cli
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
    # Addresses compare ignoring case here; what case is kept is tested below.
    if "from" in exp:
        assert (parsed.from_address or "").lower() == exp["from"].lower()
    if "from_name" in exp:
        assert [n for r, _, n in addrs if r == "from"][0] == exp["from_name"]
    for role, key in (("to", "to"), ("cc", "cc"), ("delivered-to", "delivered_to")):
        if key in exp:
            assert [a.lower() for r, a, _ in addrs if r == role] == [a.lower() for a in exp[key]]
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


# -- issue 8, point 10: real-world header and MIME details -----------------------------


def _message(*headers: bytes, body: bytes = b"body words\r\n") -> bytes:
    return b"".join(h + b"\r\n" for h in headers) + b"\r\n" + body


def _multipart(*parts: bytes) -> bytes:
    out = [b"Subject: s\r\nContent-Type: multipart/mixed; boundary=b\r\n\r\n"]
    for part in parts:
        out.append(b"--b\r\n" + part + b"\r\n")
    out.append(b"--b--\r\n")
    return b"".join(out)


@pytest.mark.parametrize(("value", "expected"), [
    # White space between ordinary text and an encoded-word is kept, at a fold too.
    (b"Re:\r\n =?utf-8?q?R=C3=A9union?=", "Re: Réunion"),
    (b"Re:\r\n\t=?utf-8?q?R=C3=A9union?=", "Re: Réunion"),
    (b"=?utf-8?q?R=C3=A9union?=\r\n demain", "Réunion demain"),
    (b"Re: =?utf-8?q?R=C3=A9union?= and  more", "Re: Réunion and  more"),
    # ...and between two encoded-words it is dropped (RFC 2047 6.2), folded or not.
    (b"=?utf-8?q?R=C3=A9?=\r\n =?utf-8?q?union?=", "Réunion"),
    (b"=?utf-8?q?R=C3=A9?= =?iso-8859-1?q?union?= x", "Réunion x"),
    # A character split across two encoded-words of one charset.
    (b"=?utf-8?b?4oK?=\r\n =?utf-8?b?sA==?= x", "\u20b0 x"),
    # Raw UTF-8 next to an encoded-word.
    ("日本 =?utf-8?q?caf=C3=A9?=".encode(), "日本 café"),
    # A word that does not decode stays as written; the others still decode.
    (b"=?utf-8?x?a?= =?utf-8?q?caf=C3=A9?=", "=?utf-8?x?a?= café"),
    (b"=?iso-8859-1*fr?q?caf=E9?=", "café"),  # RFC 2231 5: charset*language
])
@pytest.mark.parametrize("form", ["file", "wire"])
def test_encoded_words_and_white_space(value, expected, form):
    raw = _message(b"Subject: " + value, b"From: =?utf-8?q?Ren=C3=A9e?=\r\n Dupont <r@example.com>")
    parsed = parse_message(raw if form == "file" else to_wire_form(raw))
    assert parsed.subject == expected
    assert [n for r, _, n in parsed.addresses if r == "from"] == ["Renée Dupont"]


@pytest.mark.parametrize(("headers", "expected"), [
    # Raw UTF-8 in filename= and name= (what most mailers send now).
    (b'Content-Type: application/pdf\r\nContent-Disposition: attachment; '
     b'filename="r\xc3\xa9sum\xc3\xa9.pdf"', "résumé.pdf"),
    (b'Content-Type: application/pdf; name="\xe6\x97\xa5\xe6\x9c\xac.pdf"', "日本.pdf"),
    (b'Content-Type: application/pdf; name=caf\xc3\xa9.pdf', "café.pdf"),  # unquoted
    # Not UTF-8: the part's charset, else latin-1 (windows-1252).
    (b'Content-Type: application/pdf\r\nContent-Disposition: attachment; filename="caf\xe9.pdf"',
     "café.pdf"),
    (b'Content-Type: text/plain; charset=koi8-r\r\nContent-Disposition: attachment; '
     b'filename="\xf0\xd2\xc9\xd7\xc5\xd4.txt"', "Привет.txt"),
    # RFC 2231, whole and in continuations, and encoded-words (wrong, but common).
    (b"Content-Type: application/pdf\r\nContent-Disposition: attachment; "
     b"filename*=UTF-8''r%C3%A9sum%C3%A9.pdf", "résumé.pdf"),
    (b"Content-Type: application/pdf\r\nContent-Disposition: attachment;\r\n"
     b" filename*0*=UTF-8''r%C3%A9s;\r\n filename*1*=um%C3%A9.pdf", "résumé.pdf"),
    (b"Content-Type: application/pdf; name*=iso-8859-1'fr'caf%E9.pdf", "café.pdf"),
    (b'Content-Type: application/pdf; name="=?utf-8?q?r=C3=A9sum=C3=A9?=.pdf"', "résumé.pdf"),
])
@pytest.mark.parametrize("form", ["file", "wire"])
def test_attachment_file_names(headers, expected, form):
    raw = _multipart(b"Content-Type: text/plain\r\n\r\nsee attached",
                     headers + b"\r\n\r\nJVBERi0=")
    parsed = parse_message(raw if form == "file" else to_wire_form(raw))
    assert [a.filename for a in parsed.attachments] == [expected]
    assert "see attached" in parsed.text


def test_an_8bit_boundary_is_matched_as_written():
    raw = (b"Content-Type: multipart/mixed; boundary=\"caf\xe9\"\r\n\r\n"
           b"--caf\xe9\r\nContent-Type: text/plain\r\n\r\ninside\r\n--caf\xe9--\r\n")
    parsed = parse_message(raw)
    assert parsed.text == "inside" and parsed.defects == []


def test_address_local_parts_keep_their_case_and_domains_are_lowered():
    raw = _message(b"From: John.Doe@Example.COM",
                   b'To: "Bob" <Bob.Smith@EXAMPLE.org>, carol@example.net',
                   b"Cc: =?utf-8?q?Ren=C3=A9e?= <ReNee@Sub.Example.ORG>")
    parsed = parse_message(raw)
    assert parsed.addresses == [
        ("from", "John.Doe@example.com", None),
        ("to", "Bob.Smith@example.org", "Bob"),
        ("to", "carol@example.net", None),
        ("cc", "ReNee@sub.example.org", "Renée"),
    ]
    assert parsed.from_address == "John.Doe@example.com"


@pytest.mark.parametrize("disposition", [
    b'Content-Disposition: inline; filename="notes.txt"',
    b"Content-Disposition: INLINE;\r\n filename*=UTF-8''notes.txt",
    b"",  # no disposition, a name on the type (Outlook's attached text files)
])
@pytest.mark.parametrize("ctype", [b'text/plain; name="notes.txt"', b"text/html"])
def test_an_inline_text_part_with_a_file_name_is_text_and_an_attachment(disposition, ctype):
    headers = b"Content-Type: " + ctype + (b"\r\n" + disposition if disposition else b"")
    if b"name=" not in headers:
        headers += b'\r\nContent-Disposition: inline; filename="notes.txt"'
    raw = _multipart(b"Content-Type: text/plain\r\n\r\nfirst part",
                     headers + b"\r\n\r\n<p>the inline notes</p>")
    parsed = parse_message(raw)
    assert "first part" in parsed.text and "the inline notes" in parsed.text
    assert [a.filename for a in parsed.attachments] == ["notes.txt"]
    assert [a.content_type for a in parsed.attachments] == [ctype.split(b";")[0].decode()]
    # Marked as an attachment, it stays an attachment only.
    raw = _multipart(b"Content-Type: text/plain\r\n\r\nfirst part",
                     b'Content-Type: text/plain\r\nContent-Disposition: attachment; '
                     b'filename="notes.txt"\r\n\r\nthe attached notes')
    parsed = parse_message(raw)
    assert "the attached notes" not in parsed.text
    assert [a.filename for a in parsed.attachments] == ["notes.txt"]


INVALID_CONTENT_TYPES = [
    b"text", b";;;", b"", b"garbage", b"text/", b"/plain", b"text/plain garbage",
    b'"text/plain"', b"text/plain/html", b"=?utf-8?q?text/plain?=", b"\xff\xfe/x",
    b"text; charset=utf-8", b"multipart/mixed boundary=b",
]


@pytest.mark.parametrize("value", INVALID_CONTENT_TYPES)
@pytest.mark.parametrize("form", ["file", "wire"])
def test_an_invalid_content_type_is_text_plain(value, form):
    def check(raw: bytes, text: str) -> None:
        parsed = parse_message(raw if form == "file" else to_wire_form(raw))
        assert text in parsed.text
        assert "invalid Content-Type; treated as text/plain" in parsed.defects
        assert parsed.attachments == []

    check(_message(b"Subject: s", b"Content-Type: " + value), "body words")
    check(_multipart(b"Content-Type: " + value + b"\r\n\r\npart words"), "part words")


@pytest.mark.parametrize("value", [
    b"text/plain (a comment)", b"(c) text/plain", b"TEXT / Plain ; charset=us-ascii",
    b"text/plain;\r\n charset=utf-8",
])
def test_valid_content_types_with_comments_and_spaces(value):
    parsed = parse_message(_message(b"Content-Type: " + value))
    assert parsed.text == "body words" and parsed.defects == []


def test_show_displays_addresses_as_written_and_the_point_10_details(tmp_path, db_url):
    """End to end: what ``import`` indexes, ``show --json`` displays."""
    cfg = tmp_path / "config.toml"
    cfg.write_text(f'[archive]\ndatabase = "{db_url}"\n')
    raw = (b"From: John.Doe@Example.COM\nTo: \"Bob\" <Bob.Smith@EXAMPLE.org>\n"
           b"Subject: Re:\n =?utf-8?q?R=C3=A9union?=\n"
           b"Content-Type: multipart/mixed; boundary=b\n\n"
           b"--b\nContent-Type: text\n\nagenda attached\n"
           b"--b\nContent-Type: text/plain\nContent-Disposition: inline; filename=\"notes.txt\"\n\n"
           b"inline notes\n"
           b"--b\nContent-Type: application/pdf\n"
           b"Content-Disposition: attachment; filename=\"r\xc3\xa9sum\xc3\xa9.pdf\"\n\nJVBERi0=\n--b--\n")
    eml = tmp_path / "m.eml"
    eml.write_bytes(raw)
    r = run_cli("import", str(eml), config=cfg)
    assert r.exit_code == 0, r
    r = run_cli("show", hashlib.sha256(to_wire_form(raw)).hexdigest(), "--json", config=cfg)
    assert r.exit_code == 0, r
    details = r.json()
    assert details["subject"] == "Re: Réunion"
    assert details["to"] == ["Bob <Bob.Smith@example.org>"]
    assert "John.Doe@" in details["from"]
    assert [a["filename"] for a in details["attachments"]] == ["notes.txt", "résumé.pdf"]
    assert "agenda attached" in details["text"] and "inline notes" in details["text"]
    assert "invalid Content-Type; treated as text/plain" in details["parse_defects"]
