"""Mail for tests and benchmarks: tricky messages and a benchmark mix.

* tricky_cases() / tricky_messages(): named raw messages in *file form*
  (some LF, some CRLF, some mixed, as found on disk) that exercise a mail
  parser and a byte-exact store, each with what a parser should extract.
* generate_mix(n): a deterministic, realistic benchmark mix in *wire form*
  (CRLF only, ending with CRLF), fast enough for 100 000 messages.

`archiver demo`'s sample mail lives in the package (archiver.demo.samples).

Everything here is deterministic: the same arguments give the same bytes in
every process and on every run (only ``random.Random(seed)`` and integer
arithmetic decide; never hash(), set order or the clock). All domains are
reserved example domains (RFC 2606) and all IP addresses documentation ranges
(RFC 5737).

Standard library only.
"""

from __future__ import annotations

import base64
import binascii
import datetime as dt
import email.utils
import functools
import html
import random
import urllib.parse
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from typing import Any

__all__ = [
    "TrickyCase",
    "generate_mix",
    "mix_stats",
    "to_wire",
    "tricky_cases",
    "tricky_messages",
]


def to_wire(raw: bytes) -> bytes:
    """The wire form of a file-form message, as a POP3 server (Dovecot) sends it.

    Every bare LF becomes CRLF and a missing final line end is added;
    nothing else changes (a bare CR stays, so does a NUL byte). This is the
    form DESIGN.md §2 rule 3 stores.
    """
    # CRLF -> LF -> CRLF turns each bare LF into CRLF and leaves CRLF and
    # bare CR alone ("\r\r\n" stays "\r\r\n").
    wire = raw.replace(b"\r\n", b"\n").replace(b"\n", b"\r\n")
    if not wire.endswith(b"\r\n"):
        wire += b"\r\n"
    return wire


# ---------------------------------------------------------------------------
# Tricky messages
# ---------------------------------------------------------------------------


@dataclass(frozen=True)
class TrickyCase:
    """One named raw message (file form) and what a parser should extract from it.

    ``expect`` keys (all optional; a key that is absent asserts nothing):

    ``subject``            decoded Subject; ``None`` when there is none. Compare
                           after collapsing whitespace runs to one space.
    ``subject_contains``   substrings of the decoded Subject (lenient cases)
    ``from``               the From addr-spec (compare case-insensitively)
    ``from_name``          the decoded From display name
    ``to`` / ``cc``        addr-specs of To / Cc in order (group names dropped)
    ``delivered_to``       addr-specs of the Delivered-To headers, in order
    ``message_id``         the first Message-ID as written, with its angle
                           brackets; ``None`` when there is none
    ``date``               the Date in UTC as ISO 8601 (``2024-03-10T00:30:00+00:00``);
                           ``None`` when missing or unparseable
    ``attachments``        attachment file names, decoded, in order
    ``attachment_sizes``   {file name: decoded size in bytes}
    ``text_contains``      strings the extracted (searchable) text contains
    ``text_not_contains``  strings it must not contain (script, style, markup)

    ``about`` says what the message tests. Whatever a parser makes of it,
    the store must keep ``raw`` byte-exact (in wire form, see to_wire()).
    """

    name: str
    raw: bytes
    expect: dict[str, Any] = field(default_factory=dict)
    about: str = ""


def _lf(text: str, charset: str = "utf-8") -> bytes:
    """A file-form message with LF line ends."""
    return text.encode(charset)


def _crlf(text: str, charset: str = "utf-8") -> bytes:
    """A message with CRLF line ends (text is written with \\n)."""
    return text.replace("\n", "\r\n").encode(charset)


def _q_word(text: str, charset: str = "utf-8") -> str:
    """One RFC 2047 Q encoded-word (callers keep it short)."""
    out = []
    for byte in text.encode(charset):
        char = chr(byte)
        if char == " ":
            out.append("_")
        elif char.isascii() and (char.isalnum() or char in "!*+-/"):
            out.append(char)
        else:
            out.append(f"={byte:02X}")
    return f"=?{charset}?Q?{''.join(out)}?="


def _b_word(text: str, charset: str = "utf-8") -> str:
    """One RFC 2047 B encoded-word (callers keep it short)."""
    return f"=?{charset}?B?{base64.b64encode(text.encode(charset)).decode()}?="


def _b64_lines(data: bytes, eol: str = "\n") -> str:
    return base64.encodebytes(data).decode().replace("\n", eol)


@functools.lru_cache(maxsize=1)
def _big_attachment() -> bytes:
    """2 MiB of deterministic, incompressible bytes, zip-like at the start."""
    magic = b"PK\x03\x04\x14\x00\x00\x00\x08\x00"
    return magic + random.Random(2024).randbytes(2 * 1024 * 1024 - len(magic))


_HDR = "From: Alice Example <alice@example.com>\nTo: Bob Example <bob@example.com>\n"
_DATE = "Date: Sat, 09 Mar 2024 10:00:00 +0000\n"
_DATE_ISO = "2024-03-09T10:00:00+00:00"


def _simple(subject: str, body: str, *, extra: str = "", mid: str = "tricky") -> str:
    return (
        f"{_HDR}Subject: {subject}\n{_DATE}Message-ID: <{mid}@example.com>\n{extra}"
        f"MIME-Version: 1.0\nContent-Type: text/plain; charset=us-ascii\n\n{body}"
    )


def tricky_cases() -> list[TrickyCase]:
    """Named raw messages that exercise a mail parser and a byte-exact store.

    Names are stable identifiers (usable as pytest ids). A new list is built
    on every call, so callers may mutate what they get.
    """
    cases: list[TrickyCase] = []

    def add(name: str, raw: bytes, about: str, **expect: Any) -> None:
        cases.append(TrickyCase(name, raw, expect, about))

    # -- RFC 2047 encoded-words --------------------------------------------

    add(
        "rfc2047_q_utf8",
        _lf(_simple(_q_word("Café crème brûlée"), "Dessert menu attached.\n", mid="q-utf8")),
        "Q-encoded UTF-8 subject (underscores are spaces).",
        subject="Café crème brûlée",
        message_id="<q-utf8@example.com>",
        date=_DATE_ISO,
        text_contains=["Dessert menu"],
    )
    add(
        "rfc2047_b_utf8",
        _crlf(_simple(_b_word("Grüße aus München 🥨"), "Servus!\n", mid="b-utf8")),
        "B-encoded UTF-8 subject with an emoji (4-byte UTF-8); CRLF file.",
        subject="Grüße aus München 🥨",
    )
    add(
        "rfc2047_iso8859_9",
        _lf(
            "From: " + _b_word("Gülşen Yılmaz", "iso-8859-9") + " <gulsen@example.com>\n"
            "To: Bob Example <bob@example.com>\n"
            "Subject: " + _q_word("Şükrü Bey'e teşekkürler", "iso-8859-9") + "\n"
            f"{_DATE}Message-ID: <iso8859-9@example.com>\nMIME-Version: 1.0\n"
            "Content-Type: text/plain; charset=us-ascii\n\nTesekkurler.\n"
        ),
        "ISO-8859-9 (Turkish) encoded-words: Q in Subject, B in the From display name.",
        subject="Şükrü Bey'e teşekkürler",
        from_name="Gülşen Yılmaz",
        **{"from": "gulsen@example.com"},
    )
    add(
        "rfc2047_adjacent_words",
        _lf(
            _simple(
                _q_word("Quarterly ") + " " + _q_word("report ") + "\n "
                + _q_word("für", "iso-8859-1") + " Q3 " + _b_word("2024 ✓"),
                "See subject.\n",
                mid="adjacent",
            )
        ),
        "Adjacent encoded-words (even across a fold, even in different charsets): the "
        "whitespace between them disappears; next to plain text it stays.",
        subject="Quarterly report für Q3 2024 ✓",
    )
    add(
        "rfc2047_malformed",
        _lf(
            _simple(
                "Broken =?UTF-8?Q?unterminated_word and =?x-unknown?Q?caf=E9?= and "
                "=?UTF-8?B?!!not-base64!!?= and =?UTF-8?Q?split_=C3?= =?UTF-8?Q?=A9?= done",
                "The subject is malformed on purpose.\n",
                mid="malformed-2047",
            )
        ),
        "Malformed encoded-words (unterminated, unknown charset, bad base64, a UTF-8 "
        "character split across two words): never an error, keep what can be read.",
        subject_contains=["Broken", "done"],
        text_contains=["malformed on purpose"],
    )
    add(
        "raw_utf8_headers",
        _lf(
            "From: Jürgen Weiß <juergen@example.com>\nTo: Zoë <zoe@example.com>\n"
            "Subject: Größenänderung – Überblick 😀\n"
            f"{_DATE}Message-ID: <raw-utf8@example.com>\nMIME-Version: 1.0\n"
            "Content-Type: text/plain; charset=utf-8\nContent-Transfer-Encoding: 8bit\n\n"
            "Grüße, Jürgen\n"
        ),
        "Raw (unencoded) UTF-8 in headers, as RFC 6532 allows and many mailers send.",
        subject="Größenänderung – Überblick 😀",
        from_name="Jürgen Weiß",
        to=["zoe@example.com"],
        text_contains=["Grüße, Jürgen"],
    )
    add(
        "raw_latin1_header",
        _lf(_simple("Preis f\xfcr Caf\xe9 - Angebot", "Body.\n", mid="raw-latin1"), "latin-1"),
        "Raw ISO-8859-1 bytes in the Subject (invalid UTF-8, no declaration): decode "
        "leniently, never fail.",
        subject_contains=["Preis f", "Angebot"],
    )

    # -- body charsets -----------------------------------------------------

    turkish = "Merhaba Ayşe Hanım,\nŞişli'deki toplantı için teşekkürler. Görüşmek üzere.\n"
    add(
        "body_iso8859_9",
        _lf(_simple("Toplanti", "", mid="body-8859-9").replace(
            "charset=us-ascii\n", "charset=iso-8859-9\nContent-Transfer-Encoding: 8bit\n"
        ) + turkish, "iso-8859-9"),
        "8bit ISO-8859-9 body, charset declared.",
        text_contains=["Ayşe Hanım", "Şişli'deki toplantı", "Görüşmek üzere"],
    )
    cp1252_body = "The price is 20 € – “special offer” … until Monday.\n"
    add(
        "body_windows1252_qp",
        _crlf(
            _simple("Offer", "", mid="body-1252").replace(
                "charset=us-ascii\n",
                "charset=windows-1252\nContent-Transfer-Encoding: quoted-printable\n",
            )
            + binascii.b2a_qp(cp1252_body.encode("windows-1252")).decode("ascii")
        ),
        "Quoted-printable windows-1252 body (euro sign, smart quotes, ellipsis).",
        text_contains=["20 €", "“special offer”"],
    )
    add(
        "body_8bit_no_charset",
        _lf(
            f"{_HDR}Subject: No charset\n{_DATE}Message-ID: <no-charset@example.com>\n"
            "MIME-Version: 1.0\nContent-Type: text/plain\nContent-Transfer-Encoding: 8bit\n\n"
            "Plain ASCII sentence survives.\nCaf\xe9 \xe0 c\xf4t\xe9 de la gare.\n",
            "latin-1",
        ),
        "8bit Latin-1 body with no charset parameter (us-ascii by the RFC, Latin-1 in "
        "fact): decode leniently; a good guess yields 'Café à côté'.",
        text_contains=["Plain ASCII sentence survives."],
    )
    add(
        "body_no_mime_headers_utf8",
        _lf(
            f"{_HDR}Subject: No MIME headers\n{_DATE}Message-ID: <no-mime@example.com>\n\n"
            "An RFC 822 message without MIME headers.\nBut the body is UTF-8: naïve café.\n"
        ),
        "No MIME-Version/Content-Type at all, 8bit UTF-8 body.",
        text_contains=["without MIME headers"],
    )
    add(
        "body_wrong_charset",
        _lf(
            _simple("Wrong charset", "", mid="wrong-charset").replace(
                "charset=us-ascii\n", "charset=utf-8\nContent-Transfer-Encoding: 8bit\n"
            )
        )
        + b"Declared UTF-8, sent as windows-1252: \x93quoted\x94 caf\xe9.\nLast line.\n",
        "Body declared UTF-8 but encoded windows-1252 (invalid UTF-8 bytes): never fail.",
        text_contains=["Declared UTF-8, sent as windows-1252", "Last line."],
    )
    add(
        "unknown_charset",
        _lf(
            _simple("Unknown charset", "Ascii text in an unknown charset.\n", mid="unknown-cs")
            .replace("charset=us-ascii", 'charset="x-klingon-42"')
        ),
        "A charset name no codec knows.",
        text_contains=["Ascii text in an unknown charset."],
    )

    # -- Message-ID and Date -----------------------------------------------

    add(
        "missing_message_id",
        _lf(
            f"{_HDR}Subject: No Message-ID\n{_DATE}MIME-Version: 1.0\n"
            "Content-Type: text/plain\n\nThis message has no Message-ID.\n"
        ),
        "No Message-ID header.",
        message_id=None,
        subject="No Message-ID",
    )
    add(
        "duplicate_message_id",
        _lf(
            f"{_HDR}Subject: Two Message-IDs\n{_DATE}Message-ID: <first@example.com>\n"
            "Message-ID: <second@example.com>\nMIME-Version: 1.0\n"
            "Content-Type: text/plain\n\nTwo Message-ID headers.\n"
        ),
        "Two different Message-ID headers: the first one counts.",
        message_id="<first@example.com>",
    )
    add(
        "missing_date",
        _lf(
            f"{_HDR}Subject: No Date\nMessage-ID: <no-date@example.com>\n"
            "MIME-Version: 1.0\nContent-Type: text/plain\n\nThis message has no Date.\n"
        ),
        "No Date header: search falls back to the archive time.",
        date=None,
    )
    add(
        "unparseable_date",
        _lf(_simple("Bad date", "Date is nonsense.\n", mid="bad-date").replace(
            _DATE, "Date: sometime next Tuesday, after lunch\n"
        )),
        "A Date that no parser can read.",
        date=None,
        subject="Bad date",
    )
    odd_dates = [
        ("date_tz_chatham", "Sun, 10 Mar 2024 14:15:00 +1345", "2024-03-10T00:30:00+00:00",
         "+1345 (Chatham Islands): a zone offset with odd minutes."),
        ("date_tz_plus14", "Mon, 11 Mar 2024 01:00:00 +1400", "2024-03-10T11:00:00+00:00",
         "+1400 (Kiribati): the largest offset in use."),
        ("date_tz_minus12", "Sat, 09 Mar 2024 23:30:00 -1200", "2024-03-10T11:30:00+00:00",
         "-1200: the smallest offset."),
        ("date_tz_named_est", "Fri, 8 Mar 2024 20:00:00 EST", "2024-03-09T01:00:00+00:00",
         "An obsolete named zone (EST = -0500)."),
        ("date_tz_minus0000", "Sat, 9 Mar 2024 12:00:00 -0000", "2024-03-09T12:00:00+00:00",
         "-0000: UTC, local zone unknown."),
        ("date_tz_comment", "Tue, 12 Mar 2024 09:00:00 +0100 (CET)", "2024-03-12T08:00:00+00:00",
         "A zone comment after the offset."),
        ("date_two_digit_year", "9 Mar 24 08:30 +0100", "2024-03-09T07:30:00+00:00",
         "Obsolete syntax: no weekday, two-digit year, no seconds."),
    ]
    for name, value, iso, about in odd_dates:
        add(
            name,
            _lf(_simple(name, "Odd date.\n", mid=name).replace(_DATE, f"Date: {value}\n")),
            about,
            date=iso,
        )

    # -- line ends, odd bytes, dots, long lines ------------------------------

    add(
        "line_endings_lf",
        _lf(_simple("LF only", "Line one.\nLine two.\n", mid="lf-only")),
        "LF line ends throughout (a file on disk); wire form has CRLF.",
        subject="LF only",
        text_contains=["Line one.", "Line two."],
    )
    add(
        "line_endings_mixed",
        b"From: Alice Example <alice@example.com>\r\nTo: bob@example.com\n"
        b"Subject: Mixed line ends\r\nDate: Sat, 09 Mar 2024 10:00:00 +0000\n"
        b"Message-ID: <mixed-eol@example.com>\r\n\nCRLF line\r\nLF line\nCRLF again\r\n",
        "CRLF and LF mixed in headers and body.",
        subject="Mixed line ends",
        text_contains=["LF line", "CRLF again"],
    )
    add(
        "bare_cr",
        _crlf(_simple("Bare CR", "", mid="bare-cr"))
        + b"Line with a bare\rCR inside.\r\nAnother line ending in a bare CR\r\r\nEnd.\r\n",
        "Bare CR bytes in the body: Dovecot passes them unchanged.",
        text_contains=["Line with a bare", "End."],
    )
    add(
        "nul_bytes",
        _lf(_simple("NUL bytes", "", mid="nul")) + b"before NUL\x00after NUL\n\x00\x00\nend\n",
        "NUL bytes in the body (kept byte-exact; databases and text APIs choke on them).",
        text_contains=["before NUL"],
    )
    add(
        "dot_lines",
        _crlf(
            _simple(
                "Dots",
                "Line before.\n.\n..\n.leading dot\n..two leading dots\n. space after dot\n"
                "...\nThe last line is a lone dot:\n.\n",
                mid="dots",
            )
        ),
        "Lines that POP3 must dot-stuff: a lone '.', lines starting with '.', and a "
        "last line that is a lone '.' (must not end the transfer early).",
        text_contains=[".leading dot", "..two leading dots"],
    )
    long_header = "X-Long-Header: " + "h" * 3000
    add(
        "long_lines",
        _lf(
            _simple(
                "Long lines",
                "START-OF-LONG-LINE " + "a" * 2030 + "\n"  # 2049 bytes + LF
                + "b" * 4096 + "\n"
                + ("word " * 20000) + "\n"  # 100 000 bytes
                + "After the long lines.\n",
                extra=long_header + "\n",
                mid="long-lines",
            )
        ),
        "Lines over 2048 bytes (2049, 4096, 100 000) and a 3000-byte header line.",
        text_contains=["START-OF-LONG-LINE", "After the long lines."],
    )
    add(
        "from_lines_in_body",
        _lf(
            _simple(
                "From lines",
                "Hello,\nFrom the desk of the CEO: hi.\nFrom someone@example.com Mon Jan  1 "
                "00:00:00 2024\n>From already quoted\nFrom: not a header\n",
                mid="from-lines",
            )
        ),
        "Body lines starting with 'From ' (mbox export must quote them; the stored "
        "message must not change).",
        text_contains=["From the desk of the CEO", "From someone@example.com"],
    )

    # -- broken and nested MIME ----------------------------------------------

    add(
        "mime_missing_closing_boundary",
        _lf(
            f"{_HDR}Subject: Missing closing boundary\n{_DATE}"
            "Message-ID: <no-close@example.com>\nMIME-Version: 1.0\n"
            'Content-Type: multipart/mixed; boundary="b1"\n\n'
            "--b1\nContent-Type: text/plain; charset=us-ascii\n\nThe first part.\n"
            '--b1\nContent-Type: text/plain; name="notes.txt"\n'
            'Content-Disposition: attachment; filename="notes.txt"\n\nnotes\n'
        ),
        "Multipart without the closing --boundary-- line.",
        text_contains=["The first part."],
        attachments=["notes.txt"],
    )
    add(
        "mime_boundary_never_appears",
        _lf(
            f"{_HDR}Subject: Boundary never appears\n{_DATE}"
            "Message-ID: <never-boundary@example.com>\nMIME-Version: 1.0\n"
            'Content-Type: multipart/mixed; boundary="never-used"\n\n'
            "This body has no parts at all, only text.\n"
        ),
        "A multipart whose boundary never occurs: index the body as text.",
        text_contains=["This body has no parts at all"],
        attachments=[],
    )
    add(
        "mime_boundary_missing",
        _lf(
            f"{_HDR}Subject: Boundary parameter missing\n{_DATE}"
            "Message-ID: <no-boundary-param@example.com>\nMIME-Version: 1.0\n"
            "Content-Type: multipart/mixed\n\n"
            "--xyz\nContent-Type: text/plain\n\nPart text without a declared boundary.\n--xyz--\n"
        ),
        "multipart/mixed without a boundary parameter.",
        text_contains=["Part text without a declared boundary."],
    )
    add(
        "mime_nested",
        _crlf(
            f"{_HDR}Subject: Nested multipart\n{_DATE}Message-ID: <nested@example.com>\n"
            "MIME-Version: 1.0\n"
            'Content-Type: multipart/mixed; boundary="outer"\n\n'
            "This is a multi-part message in MIME format.\n"
            '--outer\nContent-Type: multipart/alternative; boundary="inner"\n\n'
            "--inner\nContent-Type: text/plain; charset=utf-8\n\n"
            "The plain text alternative of the agenda.\n"
            "--inner\nContent-Type: text/html; charset=utf-8\n\n"
            "<html><body><p>The <b>HTML</b> alternative of the agenda.</p></body></html>\n"
            "--inner--\n"
            '--outer\nContent-Type: application/pdf; name="agenda.pdf"\n'
            'Content-Disposition: attachment; filename="agenda.pdf"\n'
            "Content-Transfer-Encoding: base64\n\n"
            + _b64_lines(b"%PDF-1.4\n% agenda\n")
            + "--outer--\nEpilogue text that no one reads.\n"
        ),
        "multipart/mixed > multipart/alternative > text/plain + text/html, plus a PDF.",
        text_contains=["The plain text alternative of the agenda."],
        attachments=["agenda.pdf"],
    )
    inner = (
        "From: Carol Inner <carol@example.org>\nTo: Alice Example <alice@example.com>\n"
        "Subject: The original message\nDate: Fri, 08 Mar 2024 09:00:00 +0100\n"
        "Message-ID: <inner@example.org>\nMIME-Version: 1.0\n"
        'Content-Type: multipart/mixed; boundary="in"\n\n'
        "--in\nContent-Type: text/plain\n\nInner body text.\n"
        '--in\nContent-Type: text/plain; name="inner.txt"\n'
        'Content-Disposition: attachment; filename="inner.txt"\n\ninner attachment\n--in--\n'
    )
    add(
        "message_rfc822_attachment",
        _lf(
            f"{_HDR}Subject: Fwd: The original message\n{_DATE}"
            "Message-ID: <forward@example.com>\nMIME-Version: 1.0\n"
            'Content-Type: multipart/mixed; boundary="fw"\n\n'
            "--fw\nContent-Type: text/plain\n\nForwarding the original below.\n"
            '--fw\nContent-Type: message/rfc822\n'
            'Content-Disposition: attachment; filename="original.eml"\n\n'
            + inner
            + "--fw--\n"
        ),
        "A forwarded message as a message/rfc822 attachment (with its own attachment); "
        "its headers must not be taken for the outer message's.",
        subject="Fwd: The original message",
        message_id="<forward@example.com>",
        text_contains=["Forwarding the original below."],
        attachments=["original.eml"],
    )

    # -- attachment names ------------------------------------------------------

    add(
        "rfc2231_filenames",
        _lf(
            f"{_HDR}Subject: RFC 2231 file names\n{_DATE}"
            "Message-ID: <rfc2231@example.com>\nMIME-Version: 1.0\n"
            'Content-Type: multipart/mixed; boundary="p"\n\n'
            "--p\nContent-Type: text/plain\n\nThree attachments.\n"
            "--p\nContent-Type: application/pdf\n"
            "Content-Disposition: attachment;\n filename*=UTF-8''%C3%9Cbersicht%20Q1%202024.pdf\n"
            "Content-Transfer-Encoding: base64\n\n" + _b64_lines(b"%PDF-1.4\n")
            + "--p\nContent-Type: application/pdf\n"
            "Content-Disposition: attachment;\n filename*0*=UTF-8''Rechnung%20Nr.%20;\n"
            " filename*1*=%E2%84%96%2042.pdf\n"
            "Content-Transfer-Encoding: base64\n\n" + _b64_lines(b"%PDF-1.4\n")
            + "--p\nContent-Type: text/plain\n"
            "Content-Disposition: attachment; filename*=iso-8859-1'de'B%FCro.txt\n\n"
            "office\n--p--\n"
        ),
        "RFC 2231 file names: UTF-8 percent-encoded, split into continuations, ISO-8859-1.",
        attachments=["Übersicht Q1 2024.pdf", "Rechnung Nr. № 42.pdf", "Büro.txt"],
    )
    add(
        "rfc2047_filename",
        _lf(
            f"{_HDR}Subject: Encoded-word file name\n{_DATE}"
            "Message-ID: <rfc2047-filename@example.com>\nMIME-Version: 1.0\n"
            'Content-Type: multipart/mixed; boundary="p"\n\n'
            "--p\nContent-Type: text/plain\n\nOutlook style.\n"
            "--p\nContent-Type: application/vnd.ms-powerpoint;\n"
            f' name="{_b_word("Präsentation März.pptx")}"\n'
            "Content-Disposition: attachment;\n"
            f' filename="{_b_word("Präsentation März.pptx")}"\n'
            "Content-Transfer-Encoding: base64\n\n" + _b64_lines(b"PK\x03\x04") + "--p--\n"
        ),
        "An RFC 2047 encoded-word inside a quoted filename (not allowed by the RFCs, "
        "sent by Outlook and Gmail all the same).",
        attachments=["Präsentation März.pptx"],
    )
    add(
        "attachment_name_in_content_type",
        _lf(
            f"{_HDR}Subject: Names only in Content-Type\n{_DATE}"
            "Message-ID: <ct-name@example.com>\nMIME-Version: 1.0\n"
            'Content-Type: multipart/mixed; boundary="p"\n\n'
            "--p\nContent-Type: text/plain\n\nTwo attachments.\n"
            '--p\nContent-Type: application/pdf; name="quarterly-report.pdf"\n'
            "Content-Transfer-Encoding: base64\n\n" + _b64_lines(b"%PDF-1.4\n")
            + '--p\nContent-Type: text/csv; name="data.csv"\nContent-Disposition: attachment\n\n'
            "a,b\n1,2\n--p--\n"
        ),
        "Attachments named only by Content-Type name= (no Content-Disposition, or "
        "one without filename=).",
        attachments=["quarterly-report.pdf", "data.csv"],
    )
    add(
        "base64_garbage",
        _lf(
            f"{_HDR}Subject: Broken base64\n{_DATE}Message-ID: <bad-b64@example.com>\n"
            "MIME-Version: 1.0\n"
            'Content-Type: multipart/mixed; boundary="p"\n\n'
            "--p\nContent-Type: text/plain; charset=utf-8\nContent-Transfer-Encoding: base64\n\n"
            + _b64_lines(b"Text part in base64, readable.\n")
            + "--p\nContent-Type: application/octet-stream\n"
            'Content-Disposition: attachment; filename="broken.bin"\n'
            "Content-Transfer-Encoding: base64\n\n"
            "SGVsbG8gV29ybGQ!!!*garbage*\nAAEC\nAAE\n-- end of data --\n=====\n--p--\n"
        ),
        "base64 with invalid characters, bad padding and trailing text: decode what "
        "can be decoded, never fail.",
        text_contains=["Text part in base64, readable."],
        attachments=["broken.bin"],
    )
    qp = (
        "This paragraph is long enough to need soft line breaks in quoted-printa=\n"
        "ble; the word extraordi=\nnary is split. An equals sign: a=3Db. Caf=C3=A9 =\n"
        "and r=C3=A9sum=C3=\n=A9 (a soft break inside a UTF-8 character).=20\n"
        "Trailing space encoded.=20\n"
    )
    add(
        "quoted_printable_soft_breaks",
        _crlf(
            _simple("QP", "", mid="qp").replace(
                "charset=us-ascii\n",
                "charset=utf-8\nContent-Transfer-Encoding: quoted-printable\n",
            )
            + qp
        ),
        "Quoted-printable soft line breaks (even inside a word and inside a UTF-8 "
        "character), =3D and encoded UTF-8.",
        text_contains=["quoted-printable", "extraordinary", "a=b", "Café", "résumé"],
    )
    add(
        "html_only",
        _lf(
            f"{_HDR}Subject: HTML only\n{_DATE}Message-ID: <html-only@example.com>\n"
            "MIME-Version: 1.0\nContent-Type: text/html; charset=utf-8\n\n"
            "<!DOCTYPE html><html><head><title>Newsletter</title>\n"
            "<style>body { font-family: Arial; color: #333 }</style>\n"
            "<script>alert('xss'); document.cookie</script></head>\n"
            "<body><h1>Tom &amp; Jerry&#39;s caf&eacute;</h1>\n"
            "<p>Prices from &#8364;5 &lt;today only&gt;.</p>\n"
            '<img src="https://tracker.example.net/pixel.gif" width="1" height="1">\n'
            '<p onclick="steal()">Click <a href="https://example.org/">here</a></p>\n'
            "</body></html>\n"
        ),
        "text/html only, with <style>, <script>, a tracking pixel, event handlers and "
        "entities: the text is the visible text, never script or style.",
        text_contains=["Tom & Jerry's café", "€5", "<today only>"],
        text_not_contains=["alert(", "font-family", "document.cookie"],
    )

    # -- degenerate structure ----------------------------------------------------

    add(
        "empty_body",
        _lf(f"{_HDR}Subject: Empty body\n{_DATE}Message-ID: <empty-body@example.com>\n\n"),
        "Headers, the blank line, and no body at all.",
        subject="Empty body",
        attachments=[],
    )
    add(
        "headers_only_no_blank_line",
        _lf(f"{_HDR}Subject: Headers only\n{_DATE}Message-ID: <headers-only@example.com>\n"),
        "Headers without the blank line that ends them, and no body.",
        subject="Headers only",
        message_id="<headers-only@example.com>",
    )
    add(
        "no_final_newline",
        _lf(_simple("No final newline", "The file ends without a line end.", mid="no-eol")),
        "The last line has no line end: wire form adds CRLF (as Dovecot does).",
        subject="No final newline",
        text_contains=["without a line end"],
    )
    add(
        "no_headers",
        _lf("This file has no headers at all.\nJust text, as if someone saved a note.\n"),
        "No header section at all: the first line is not a header.",
        subject=None,
        message_id=None,
        date=None,
        text_contains=["Just text"],
    )
    big = _big_attachment()
    add(
        "large_attachment_2mb",
        _crlf(
            f"{_HDR}Subject: Site photos\n{_DATE}Message-ID: <big-2mb@example.com>\n"
            "MIME-Version: 1.0\n"
            'Content-Type: multipart/mixed; boundary="p"\n\n'
            "--p\nContent-Type: text/plain\n\nPhotos from the site visit attached.\n"
            '--p\nContent-Type: application/zip; name="site-photos.zip"\n'
            'Content-Disposition: attachment; filename="site-photos.zip"\n'
            "Content-Transfer-Encoding: base64\n\n" + _b64_lines(big) + "--p--\n"
        ),
        "A 2 MiB base64 attachment (2.7 MB encoded): streaming, memory, compression.",
        attachments=["site-photos.zip"],
        attachment_sizes={"site-photos.zip": len(big)},
        text_contains=["Photos from the site visit attached."],
    )

    # -- addresses ----------------------------------------------------------------

    add(
        "address_groups",
        _lf(
            "From: Alice Example <alice@example.com>\n"
            "To: Project Team: alice@example.com, Bob Example <bob@example.com>;,\n"
            " undisclosed-recipients:;\n"
            "Cc: Empty Group:;\n"
            f"Subject: Groups\n{_DATE}Message-ID: <groups@example.com>\n\nGroup syntax.\n"
        ),
        "RFC 5322 groups, an empty group and undisclosed-recipients:;",
        to=["alice@example.com", "bob@example.com"],
        cc=[],
    )
    add(
        "display_names_commas_quotes",
        _lf(
            'From: "Doe, John" <john.doe@example.com>\n'
            'To: "O\'Brien, Mary \\"Ace\\"" <mary@example.com>,\n'
            ' "Smith, J. (Sales)" <j.smith@example.com>, plain@example.net,\n'
            " <angle-only@example.org>, Team Lead (comment) <lead@example.com>\n"
            f"Subject: Names with commas\n{_DATE}Message-ID: <names@example.com>\n\nHi.\n"
        ),
        "Display names with commas, escaped quotes, parentheses, comments; a bare "
        "addr-spec and one in angle brackets only.",
        from_name="Doe, John",
        to=[
            "mary@example.com",
            "j.smith@example.com",
            "plain@example.net",
            "angle-only@example.org",
            "lead@example.com",
        ],
        **{"from": "john.doe@example.com"},
    )
    add(
        "encoded_display_names",
        _lf(
            "From: " + _q_word("Renée Müller") + " <renee@example.com>\n"
            "To: " + _q_word("Jörg Dürr", "iso-8859-1") + " <joerg@example.com>,\n "
            + _b_word("山田太郎") + " <yamada@example.com>,\n "
            + _q_word("Müller, Hans") + " <hans@example.com>\n"
            f"Subject: Encoded names\n{_DATE}Message-ID: <enc-names@example.com>\n\nHallo.\n"
        ),
        "RFC 2047 display names, one whose decoded text contains a comma (it must not "
        "split the address list).",
        from_name="Renée Müller",
        to=["joerg@example.com", "yamada@example.com", "hans@example.com"],
        **{"from": "renee@example.com"},
    )
    to_list = [f"user{i:03d}@example.com" for i in range(500)]
    cc_list = [f"Person {i} <cc{i:03d}@example.org>" for i in range(300)]
    add(
        "many_recipients",
        _lf(
            "From: Alice Example <alice@example.com>\n"
            "To: " + ",\n ".join(to_list) + "\n"
            "Cc: " + ",\n ".join(cc_list) + "\n"
            f"Subject: All hands\n{_DATE}Message-ID: <many-rcpt@example.com>\n\nHello all.\n"
        ),
        "500 To and 300 Cc recipients on folded lines.",
        to=to_list,
        cc=[f"cc{i:03d}@example.org" for i in range(300)],
    )
    add(
        "delivered_to",
        _lf(
            "Delivered-To: archive@example.com\nDelivered-To: sales@example.com\n"
            "X-Original-To: sales@example.com\n"
            + _simple("Delivered-To", "Who received this?\n", mid="delivered-to")
        ),
        "Several Delivered-To headers (to: search covers them).",
        delivered_to=["archive@example.com", "sales@example.com"],
    )
    add(
        "header_folding",
        _lf(
            _simple(
                "This subject is folded\n over three lines\n\twith a tab",
                "Folded.\n",
                mid="folding",
            )
        ),
        "A Subject folded over three lines (with a tab): unfold by removing the line "
        "breaks only.",
        subject="This subject is folded over three lines with a tab",
    )
    return cases


def tricky_messages() -> dict[str, bytes]:
    """{name: raw message} of tricky_cases(), in their order."""
    return {case.name: case.raw for case in tricky_cases()}


# ---------------------------------------------------------------------------
# Shared vocabulary
# ---------------------------------------------------------------------------

_WORDS = {
    "en": (
        "the project team meeting report budget customer order invoice delivery "
        "schedule update please review attached document thanks regards quarter "
        "sales numbers forecast contract renewal support ticket issue resolved "
        "deadline next week Monday Tuesday Wednesday Thursday Friday morning "
        "afternoon call agenda minutes action items follow up proposal price "
        "discount shipment warehouse inventory supplier payment terms account "
        "balance statement approval manager director office remote travel "
        "expenses receipt policy training onboarding release version feature "
        "testing production server migration backup security audit compliance "
        "retention archive mailbox storage analysis summary draft final revised "
        "comments feedback question answer request confirm available regarding "
        "we you they our your their this that these with from about for and but "
        "or not is are was were will would could should have has had been can "
        "may must to of in on at by as it be an a"
    ).split(),
    "de": (
        "Sehr geehrte Damen und Herren vielen Dank für Ihre Nachricht anbei "
        "finden Sie die Unterlagen Rechnung Lieferung Bestellung Angebot Termin "
        "Besprechung nächste Woche Grüße freundlichen Mitarbeiter Abteilung "
        "Geschäftsführung Zahlung Überweisung Größe Änderung Übersicht Prüfung "
        "Qualität Maßnahmen Straße Büro Kunde Lieferant Vertrag Verlängerung "
        "bitte prüfen bestätigen zurückmelden möglich gemäß bezüglich während "
        "außerdem schön Frühjahr Gebäude Schlüssel Bestätigung Auftragsnummer "
        "wir Sie ich der die das und oder nicht mit von zu für auf ist sind war "
        "wird werden haben hat ein eine einen dem den im am"
    ).split(),
    "fr": (
        "Bonjour Madame Monsieur merci pour votre message ci-joint veuillez "
        "trouver les documents facture livraison commande devis réunion "
        "prochaine semaine cordialement équipe société service comptabilité "
        "règlement échéance délai reçu été très déjà après où à côté "
        "problème réponse demande élément reçue prévue événement général "
        "qualité sécurité conformité dossier client fournisseur contrat "
        "nous vous je le la les et ou pas avec de du des pour sur est sont "
        "était sera avons avez un une dans au aux"
    ).split(),
    "tr": (
        "Merhaba Sayın ilgili toplantı için teşekkürler ekte dosyayı bulabilirsiniz "
        "fatura teslimat sipariş teklif gelecek hafta saygılarımla ekip şirket "
        "müşteri tedarikçi ödeme vade sözleşme yenileme görüşmek üzere "
        "lütfen kontrol ediniz onaylayınız değişiklik özet rapor çalışma "
        "İstanbul Ankara İzmir şube müdür bölüm güncelleme ıslak imza "
        "biz siz ben bu şu ve veya değil ile için gibi daha çok az bir"
    ).split(),
}

_FIRST_NAMES = {
    "en": ["James", "Mary", "Robert", "Patricia", "John", "Jennifer", "Michael", "Linda",
           "David", "Susan", "Sarah", "Daniel", "Emily", "Olivia", "Noah", "Grace"],
    "de": ["Jürgen", "Anna", "Lukas", "Sophie", "Björn", "Jörg", "Maximilian", "Lena",
           "Günther", "Käthe", "Felix", "Marie", "Uwe", "Sabine"],
    "fr": ["Céline", "François", "Hélène", "Jérôme", "Amélie", "Benoît", "Chloé", "Loïc",
           "Élodie", "Mathieu", "Camille", "Noémie"],
    "tr": ["Ayşe", "Mehmet", "Şükrü", "Gülşen", "Ömer", "Çağla", "İlker", "Elif",
           "Burak", "Zeynep", "Oğuz", "Derya"],
}
_LAST_NAMES = {
    "en": ["Smith", "Johnson", "Williams", "Brown", "Jones", "Miller", "Davis", "Wilson",
           "Taylor", "Clark", "Walker", "Young"],
    "de": ["Müller", "Schmidt", "Schäfer", "Weiß", "Köhler", "Groß", "Bäcker", "Fischer",
           "Wagner", "Becker"],
    "fr": ["Dubois", "Lefèvre", "Moreau", "Girard", "Bérenger", "Rousseau", "Fontaine",
           "Mercier"],
    "tr": ["Yılmaz", "Kaya", "Demir", "Şahin", "Çelik", "Öztürk", "Aydın", "Doğan"],
}

#: charset -> languages whose text it can carry
_CHARSET_LANGS = {
    "us-ascii": ("en",),
    "iso-8859-1": ("de", "fr"),
    "iso-8859-9": ("tr",),
    "windows-1252": ("en", "de", "fr"),
    "utf-8": ("en", "de", "fr", "tr"),
}
_CHARSET_WEIGHTS = (("utf-8", 55), ("us-ascii", 17), ("iso-8859-1", 10),
                    ("iso-8859-9", 8), ("windows-1252", 10))

_EXTERNAL_DOMAINS = ("partner.example", "supplier.example.net", "kunde.example",
                     "musteri.example", "client.example.org", "lieferant.example",
                     "fournisseur.example", "mail.example.org")

_TOPICS = {
    "en": ["budget review", "project kickoff", "server migration", "Q3 forecast",
           "contract renewal", "training plan", "office move", "release 4.2",
           "customer feedback", "audit findings", "travel expenses", "inventory count"],
    "de": ["Budgetplanung", "Lieferverzögerung", "Schulungstermin", "Prüfbericht",
           "Vertragsverlängerung", "Büroumzug", "Qualitätsmängel", "Angebot für Größe XL"],
    "fr": ["réunion d'équipe", "facture impayée", "livraison prévue", "contrat annuel",
           "sécurité du bâtiment", "évaluation trimestrielle", "devis révisé"],
    "tr": ["toplantı notları", "fatura ödemesi", "teslimat gecikmesi", "sözleşme yenileme",
           "şube ziyareti", "çeyrek raporu", "müşteri şikâyeti"],
}
_SUBJECTS = {
    "en": ["{topic}", "Meeting notes: {topic}", "Question about {topic}", "Update on {topic}",
           "Invoice {num}", "Order {num} confirmed", "Draft for {topic}", "FYI: {topic}",
           "Action items from today's call", "Reminder: {topic} deadline"],
    "de": ["{topic}", "Rückfrage zu {topic}", "Rechnung Nr. {num}", "Bestellung {num}",
           "Termin: {topic}", "Änderung bei {topic}"],
    "fr": ["{topic}", "Question concernant {topic}", "Facture n° {num}", "Commande {num}",
           "Réunion : {topic}", "Suivi – {topic}"],
    "tr": ["{topic}", "{topic} hakkında", "Fatura No {num}", "Sipariş {num}",
           "Toplantı: {topic}", "Güncelleme: {topic}"],
}

#: Attachments of the mix: (extension, MIME type, magic bytes at the start)
_ATTACHMENT_KINDS = (
    ("pdf", "application/pdf", b"%PDF-1.7\n%\xe2\xe3\xcf\xd3\n1 0 obj\n<< /Type /Catalog >>\n"),
    ("zip", "application/zip", b"PK\x03\x04\x14\x00\x08\x00\x08\x00"),
    ("jpg", "image/jpeg", b"\xff\xd8\xff\xe0\x00\x10JFIF\x00\x01\x01\x00\x00H\x00H\x00\x00"),
    ("docx", "application/vnd.openxmlformats-officedocument.wordprocessingml.document",
     b"PK\x03\x04\x14\x00\x06\x00\x08\x00"),
    ("xlsx", "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet",
     b"PK\x03\x04\x14\x00\x06\x00\x08\x00"),
    ("png", "image/png", b"\x89PNG\r\n\x1a\n\x00\x00\x00\rIHDR"),
)
_ATTACHMENT_NAMES = {
    "pdf": ["Invoice-{n}.pdf", "Contract_{n}.pdf", "scan{n:04d}.pdf", "Übersicht_{n}.pdf",
            "Angebot {n}.pdf", "Fatura_{n}.pdf"],
    "zip": ["project-files-{n}.zip", "photos_{n}.zip", "logs-{n}.zip"],
    "jpg": ["IMG_{n:04d}.jpg", "DSC{n:05d}.JPG", "photo {n}.jpg", "Baustelle_{n}.jpg"],
    "docx": ["Report {n}.docx", "Protokoll_{n}.docx", "Compte-rendu {n}.docx"],
    "xlsx": ["Budget_{n}.xlsx", "Forecast Q{q} {n}.xlsx", "Stückliste_{n}.xlsx"],
    "png": ["screenshot-{n}.png", "chart_{n}.png", "diagram {n}.png"],
}

_MAILERS = ("Microsoft Outlook 16.0", "Mozilla Thunderbird 115.8.0", "Apple Mail (2.3774)",
            "Roundcube Webmail/1.6.5", "Evolution 3.46.4", None, None)
_ZONES = ("+0000", "+0100", "+0200", "+0300", "-0500", "-0400", "+0530", "+0900")


def _q_encode(text: str, charset: str) -> str:
    """RFC 2047 Q encoded-words (each at most 75 characters), folded."""
    words, current = [], ""
    prefix = f"=?{charset}?Q?"
    for ch in text:
        if ch == " ":
            enc = "_"
        elif ch.isascii() and (ch.isalnum() or ch in "!*+-/"):
            enc = ch
        else:
            enc = "".join(f"={b:02X}" for b in ch.encode(charset))
        if len(prefix) + len(current) + len(enc) + 2 > 75:
            words.append(f"{prefix}{current}?=")
            current = ""
        current += enc
    words.append(f"{prefix}{current}?=")
    return "\r\n ".join(words)


def _b_encode(text: str, charset: str) -> str:
    """RFC 2047 B encoded-words (each at most 75 characters), folded."""
    words, chunk = [], b""
    for ch in text:
        enc = ch.encode(charset)
        if len(chunk) + len(enc) > 45:  # 45 bytes -> 60 base64 chars + 12 overhead
            words.append(chunk)
            chunk = b""
        chunk += enc
    words.append(chunk)
    return "\r\n ".join(f"=?{charset}?B?{base64.b64encode(w).decode()}?=" for w in words)


def _header_text(text: str, charset: str, rng: random.Random) -> str:
    """Header text: as is when ASCII, else RFC 2047 (Q or B, like real mailers)."""
    if text.isascii():
        return text
    try:
        text.encode(charset)
    except UnicodeEncodeError:  # e.g. a Turkish name in a Latin-1 message
        charset = "utf-8"
    return _b_encode(text, charset) if rng.random() < 0.4 else _q_encode(text, charset)


def _mailbox(name: str, addr: str, charset: str, rng: random.Random) -> str:
    if name.isascii():
        return f'"{name}" <{addr}>' if "," in name else f"{name} <{addr}>"
    return f"{_header_text(name, charset, rng)} <{addr}>"


def _ascii_local(name: str) -> str:
    table = str.maketrans({"ä": "ae", "ö": "oe", "ü": "ue", "ß": "ss", "Ä": "Ae", "Ö": "Oe",
                           "Ü": "Ue", "ş": "s", "Ş": "S", "ğ": "g", "ı": "i", "İ": "I",
                           "ç": "c", "Ç": "C", "é": "e", "è": "e", "ê": "e", "à": "a",
                           "ô": "o", "ï": "i", "É": "E", "ë": "e", "î": "i"})
    return name.translate(table).lower().replace(" ", ".")


# ---------------------------------------------------------------------------
# The benchmark mix
# ---------------------------------------------------------------------------

_CRLF = b"\r\n"


@dataclass
class _Person:
    name: str
    addr: str
    lang: str


class _MixPools:
    """Precomputed, seeded text and base64 pools that messages are sliced from."""

    LINES = 1500  # per (language, charset) pool
    B64_RAW = 4 * 1024 * 1024 - (4 * 1024 * 1024) % 57  # whole 76-char base64 lines

    def __init__(self, seed: int, domain: str) -> None:
        rng = random.Random(f"archiver-mix-pools-{seed}")
        self.text: dict[tuple[str, str, str], list[bytes]] = {}
        self.html: dict[tuple[str, str, str], list[bytes]] = {}
        for charset, langs in _CHARSET_LANGS.items():
            for lang in langs:
                lines = [self._sentence_line(rng, lang, charset) for _ in range(self.LINES)]
                for cte in self._ctes(charset):
                    self.text[lang, charset, cte] = [self._encode(x, charset, cte) for x in lines]
                    self.html[lang, charset, cte] = [
                        self._encode(f"<p>{html.escape(x, quote=False)}</p>", charset, cte)
                        for x in lines
                    ]
        raw = rng.randbytes(self.B64_RAW)
        self.b64 = base64.encodebytes(raw).replace(b"\n", _CRLF)
        self.b64_line = 78  # 76 characters + CRLF
        self.b64_lines = len(self.b64) // self.b64_line
        self.magic = {
            ext: base64.b64encode((magic + raw[: 57 - len(magic)])[:57]) + _CRLF
            for ext, _mime, magic in _ATTACHMENT_KINDS
        }
        self.people = self._people(rng, domain)
        self.internal = [p for p in self.people if p.addr.endswith("@" + domain)]

    @staticmethod
    def _ctes(charset: str) -> tuple[str, ...]:
        return ("7bit",) if charset == "us-ascii" else ("8bit", "quoted-printable")

    @staticmethod
    def _sentence_line(rng: random.Random, lang: str, charset: str) -> str:
        words = _WORDS[lang]
        line: list[str] = []
        length, size = rng.randrange(40, 74), 0
        while size < length:
            word = words[rng.randrange(len(words))]
            line.append(word)
            size += len(word) + 1
        text = " ".join(line)
        text = text[0].upper() + text[1:]
        if charset == "windows-1252" and rng.random() < 0.3:
            text = f"“{text}” – {rng.randrange(5, 500)} €"
        elif charset == "utf-8" and rng.random() < 0.03:
            text += " 👍"
        return text + ("." if rng.random() < 0.7 else ",")

    @staticmethod
    def _encode(line: str, charset: str, cte: str) -> bytes:
        data = line.encode(charset)
        if cte == "quoted-printable":
            # per line, so the pool can be sliced; b2a_qp adds soft breaks itself
            data = binascii.b2a_qp(data).replace(b"\n", _CRLF)
        return data + _CRLF

    @staticmethod
    def _people(rng: random.Random, domain: str) -> list[_Person]:
        people = []
        for lang in ("en", "de", "fr", "tr"):
            for first in _FIRST_NAMES[lang]:
                for _ in range(2):
                    last = _LAST_NAMES[lang][rng.randrange(len(_LAST_NAMES[lang]))]
                    internal = rng.random() < 0.45
                    host = domain if internal else _EXTERNAL_DOMAINS[
                        rng.randrange(len(_EXTERNAL_DOMAINS))]
                    local = _ascii_local(f"{first}.{last}")
                    people.append(_Person(f"{first} {last}", f"{local}@{host}", lang))
        # keep addresses unique: the first of two namesakes wins, in list order
        seen: dict[str, _Person] = {}
        for person in people:
            seen.setdefault(person.addr, person)
        return list(seen.values())


@dataclass
class _Sent:
    message_id: str
    subject: str
    lang: str
    charset: str
    references: list[str]
    sender: _Person
    date: str


def generate_mix(n: int, *, seed: int = 1, domain: str = "example.com") -> Iterator[bytes]:
    """Yield `n` unique, realistic messages in wire form (CRLF, ending with CRLF).

    The mix, per block of 1000 messages: 917 of 2–20 KB (plain text, text +
    HTML alternatives, some with a small attachment), 80 of 100 KB–1 MB with
    base64 attachments (pdf, zip, jpg, docx, xlsx, png; some names need
    RFC 2231), and 3 of about 5 MB. Headers carry RFC 2047 words where
    names or subjects need them; bodies use utf-8, iso-8859-1, iso-8859-9,
    windows-1252 or us-ascii, 8bit or quoted-printable; about a fifth are
    replies (Re:, In-Reply-To, References, quoted text). Dates advance from
    2023-01-02. Message-IDs are unique, so all messages are.

    Deterministic: the same (n, seed, domain) gives the same bytes in every
    process, and generate_mix(n) is a prefix of generate_mix(m) for n < m.
    Fast: bodies are slices of pools computed once per call.
    """
    if n <= 0:
        return
    pools = _MixPools(seed, domain)
    rng = random.Random(f"archiver-mix-{seed}")
    when = dt.datetime(2023, 1, 2, 7, 0, tzinfo=dt.UTC)
    recent: list[_Sent] = []
    plan: list[str] = []
    for index in range(n):
        if not plan:
            # exact proportions per block: 3 huge, 80 large, 917 normal
            picks = rng.sample(range(1000), 83)
            plan = ["normal"] * 1000
            for i, pos in enumerate(picks):
                plan[pos] = "huge" if i < 3 else "large"
            plan.reverse()  # pop() from the end yields block order
        kind = plan.pop()
        when += dt.timedelta(seconds=rng.randrange(20, 900))
        yield _mix_message(index, kind, when, pools, rng, recent, domain)


def _pick(rng: random.Random, weighted: tuple[tuple[str, int], ...]) -> str:
    total = sum(w for _, w in weighted)
    r = rng.randrange(total)
    for value, weight in weighted:
        if r < weight:
            return value
        r -= weight
    raise AssertionError("unreachable")


def _mix_message(
    index: int,
    kind: str,
    when: dt.datetime,
    pools: _MixPools,
    rng: random.Random,
    recent: list[_Sent],
    domain: str,
) -> bytes:
    parent = recent[rng.randrange(len(recent))] if recent and rng.random() < 0.22 else None
    if parent is not None:
        lang, charset = parent.lang, parent.charset
    else:
        charset = _pick(rng, _CHARSET_WEIGHTS)
        langs = _CHARSET_LANGS[charset]
        lang = langs[rng.randrange(len(langs))]
    if charset == "us-ascii":
        cte = "7bit"
    else:
        cte = "quoted-printable" if rng.random() < 0.6 else "8bit"

    speakers = [p for p in pools.people if p.lang == lang] or pools.people
    sender = speakers[rng.randrange(len(speakers))]
    if parent is not None and parent.sender is not sender:
        recipients = [parent.sender]
    else:
        recipients = [pools.internal[rng.randrange(len(pools.internal))]]
    cc = [pools.people[rng.randrange(len(pools.people))] for _ in range(rng.randrange(0, 4))]
    if rng.random() < 0.6:
        cc = []

    if parent is not None:
        base = parent.subject
        subject = base if base.startswith(("Re: ", "AW: ", "RE: ")) else "Re: " + base
    else:
        topics = _TOPICS[lang]
        template = _SUBJECTS[lang][rng.randrange(len(_SUBJECTS[lang]))]
        subject = template.format(topic=topics[rng.randrange(len(topics))],
                                  num=f"{rng.randrange(10000, 99999)}")
    if lang == "tr" and charset not in ("utf-8", "iso-8859-9"):
        charset = "utf-8"

    message_id = f"<{when:%Y%m%d%H%M%S}.{index:07d}.{rng.getrandbits(40):010x}@{domain}>"
    zone = _ZONES[rng.randrange(len(_ZONES))]
    offset = dt.timedelta(hours=int(zone[1:3]), minutes=int(zone[3:5]))
    local = when.astimezone(dt.timezone(offset if zone[0] == "+" else -offset))
    date = email.utils.format_datetime(local)  # English names whatever the locale

    # -- body ---------------------------------------------------------------
    boundary_seed = rng.getrandbits(48)
    text_key = (lang, charset, cte)
    if text_key not in pools.text:  # e.g. Turkish forced to utf-8 above
        text_key = (lang, "utf-8", cte if cte != "7bit" else "8bit")
        charset, cte = "utf-8", text_key[2]
    # Sizes are message sizes on the wire; attachments are budgeted as
    # base64 lines (78 bytes per 57 decoded bytes).
    if kind == "huge":
        body_budget = rng.randrange(1500, 6000)
        attach_sizes = [rng.randrange(4_950_000, 5_200_000) - body_budget]
    elif kind == "large":
        body_budget = rng.randrange(1000, 8000)
        bucket = _pick(rng, (("s", 40), ("m", 30), ("l", 20), ("xl", 10)))
        low, high = {"s": (100_000, 200_000), "m": (200_000, 400_000),
                     "l": (400_000, 700_000), "xl": (700_000, 1_000_000)}[bucket]
        total = rng.randrange(low, high) - body_budget - 1500
        attach_sizes = [total] if rng.random() < 0.7 else [total // 3, total - total // 3]
    else:
        bucket = _pick(rng, (("2-4", 30), ("4-8", 35), ("8-14", 22), ("14-20", 13)))
        low, high = {"2-4": (2300, 4000), "4-8": (4000, 8000), "8-14": (8000, 14000),
                     "14-20": (14000, 19500)}[bucket]
        target = rng.randrange(low, high)
        attach_sizes = []
        if rng.random() < 0.12 and target > 5000:
            attach_sizes = [rng.randrange(1500, target // 2)]
        body_budget = target - 1000 - sum(attach_sizes)
    alternative = rng.random() < 0.5

    text_lines = pools.text[text_key]
    html_lines = pools.html[text_key]
    text_budget = body_budget * 2 // 5 if alternative else body_budget
    start = rng.randrange(len(text_lines))
    text_parts: list[bytes] = []
    if parent is not None:
        name = parent.sender.name.encode(charset, "replace").decode(charset)
        text_parts.append(_MixPools._encode(f"On {parent.date}, {name} wrote:", charset, cte))
        for i in range(rng.randrange(3, 12)):
            text_parts.append(b"> " + text_lines[(start + 777 + i) % len(text_lines)])
        text_parts.append(_CRLF)
    size = sum(len(p) for p in text_parts)
    i = start
    while size < text_budget:
        line = text_lines[i % len(text_lines)]
        text_parts.append(line)
        size += len(line)
        i += 1
    signature = sender.name.encode(charset, "replace").decode(charset)
    text_parts += [_CRLF, _MixPools._encode("-- ", charset, cte),
                   _MixPools._encode(signature, charset, cte)]
    text_body = b"".join(text_parts)

    part_headers = "Content-Type: text/{}; charset=%s\r\nContent-Transfer-Encoding: %s\r\n" % (
        charset, cte)
    text_part_headers = part_headers.format("plain").encode()
    if alternative:
        html_parts = [f'<html><head><meta charset="{charset}"></head><body>\r\n'.encode()]
        size, i = 0, start
        html_budget = body_budget - len(text_body)
        while size < html_budget:
            line = html_lines[i % len(html_lines)]
            html_parts.append(line)
            size += len(line)
            i += 1
        html_parts.append(b"</body></html>" + _CRLF)
        inner = f"alt_{index}_{boundary_seed:012x}"
        body_entity = b"".join([
            f'Content-Type: multipart/alternative; boundary="{inner}"\r\n\r\n'.encode(),
            f"--{inner}\r\n".encode(), text_part_headers, _CRLF, text_body,
            f"--{inner}\r\n".encode(),
            part_headers.format("html").encode(), _CRLF,
            *html_parts,
            f"--{inner}--\r\n".encode(),
        ])
    else:
        body_entity = text_part_headers + _CRLF + text_body

    if attach_sizes:
        outer = f"mix_{index}_{boundary_seed:012x}"
        parts = [f'Content-Type: multipart/mixed; boundary="{outer}"\r\n\r\n'.encode(),
                 b"This is a multi-part message in MIME format." + _CRLF,
                 f"--{outer}\r\n".encode(), body_entity]
        for number, encoded_size in enumerate(attach_sizes):
            parts.append(f"--{outer}\r\n".encode())
            parts.append(_attachment(index * 10 + number, encoded_size, pools, rng))
        parts.append(f"--{outer}--\r\n".encode())
        body = b"".join(parts)
    else:
        body = body_entity

    # -- headers ----------------------------------------------------------------
    sender_domain = sender.addr.split("@", 1)[1]
    ip = f"{(192, 198, 203)[index % 3]}.{(0, 51, 0)[index % 3]}.{(2, 100, 113)[index % 3]}"
    headers = [
        f"Return-Path: <{sender.addr}>",
        f"Delivered-To: {recipients[0].addr}",
        (f"Received: from mail.{sender_domain} (mail.{sender_domain} [{ip}.{rng.randrange(1, 255)}])"
        f"\r\n\tby mx1.{domain} with ESMTPS id {rng.getrandbits(48):012X}"
        f"\r\n\tfor <{recipients[0].addr}>; {date}"),
        f"Date: {date}",
        f"From: {_mailbox(sender.name, sender.addr, charset, rng)}",
        "To: " + ",\r\n ".join(_mailbox(p.name, p.addr, charset, rng) for p in recipients),
    ]
    if cc:
        headers.append("Cc: " + ",\r\n ".join(_mailbox(p.name, p.addr, charset, rng) for p in cc))
    headers.append(f"Subject: {_header_text(subject, charset, rng)}")
    headers.append(f"Message-ID: {message_id}")
    references: list[str] = []
    if parent is not None:
        references = (parent.references + [parent.message_id])[-10:]
        headers.append(f"In-Reply-To: {parent.message_id}")
        headers.append("References: " + "\r\n ".join(references))
    mailer = _MAILERS[rng.randrange(len(_MAILERS))]
    if mailer is not None:
        headers.append(f"X-Mailer: {mailer}")
    headers.append("MIME-Version: 1.0")

    recent.append(_Sent(message_id, subject, lang, charset, references, sender, date))
    if len(recent) > 300:
        del recent[:100]
    return ("\r\n".join(headers) + "\r\n").encode("ascii") + body


def _attachment(number: int, encoded_size: int, pools: _MixPools, rng: random.Random) -> bytes:
    ext, mime, _magic = _ATTACHMENT_KINDS[rng.randrange(len(_ATTACHMENT_KINDS))]
    names = _ATTACHMENT_NAMES[ext]
    filename = names[rng.randrange(len(names))].format(n=number, q=1 + number % 4)
    if filename.isascii():
        disposition = f'attachment;\r\n filename="{filename}"'
        ct_name = f'; name="{filename}"'
    else:
        quoted = urllib.parse.quote(filename, safe="")
        disposition = f"attachment;\r\n filename*=UTF-8''{quoted}"
        ct_name = ""
    lines = min(max(1, encoded_size // pools.b64_line), pools.b64_lines - 1)
    start = rng.randrange(pools.b64_lines - lines)
    data = pools.b64[start * pools.b64_line : (start + lines - 1) * pools.b64_line]
    return b"".join([
        f"Content-Type: {mime}{ct_name}\r\nContent-Disposition: {disposition}\r\n"
        "Content-Transfer-Encoding: base64\r\n\r\n".encode("ascii"),
        pools.magic[ext],
        data,
    ])


def mix_stats(messages: Iterable[bytes | int]) -> dict[str, Any]:
    """Count, total bytes and size percentiles of messages (or of their sizes).

    Percentiles are nearest-rank: ``p50`` is the smallest size with at least
    half of the messages at or below it. ``buckets`` counts messages under
    25 KB, from 25 KB to 2 MB, and above.
    """
    sizes = sorted(m if isinstance(m, int) else len(m) for m in messages)
    count = len(sizes)

    def rank(p: float) -> int:
        if not sizes:
            return 0
        k = max(1, -(-count * p // 100))  # ceil without floats drifting
        return sizes[int(k) - 1]

    return {
        "count": count,
        "total_bytes": sum(sizes),
        "min": sizes[0] if sizes else 0,
        "max": sizes[-1] if sizes else 0,
        "mean": sum(sizes) / count if count else 0.0,
        "p50": rank(50),
        "p90": rank(90),
        "p99": rank(99),
        "p999": rank(99.9),
        "buckets": {
            "under_25k": sum(1 for s in sizes if s < 25_000),
            "25k_to_2m": sum(1 for s in sizes if 25_000 <= s < 2_000_000),
            "over_2m": sum(1 for s in sizes if s >= 2_000_000),
        },
    }

