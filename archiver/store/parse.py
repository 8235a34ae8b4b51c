"""What search and display need from a raw message, extracted without ever raising.

:func:`parse_message` reads header blocks with the standard library's
``email`` parser (compat32 policy: lenient and fast) and decodes them
ourselves (RFC 2047 words, RFC 2231 parameters, raw UTF-8 or legacy 8-bit
bytes). The MIME tree is walked by locating boundary delimiter lines with
``bytes.find`` on the raw buffer instead of building ``email``'s full
message object: the full object holds every part's payload as a Python
string (several copies of a 100 MB message) and splits every line of every
attachment in Python, which is both the memory and the time budget of a
collection pass. Only text parts are decoded; attachments are measured, not
copied.

Malformed input only reduces what is extracted; each problem noticed is
recorded in :attr:`ParsedMessage.defects`.
"""

from __future__ import annotations

import binascii
import codecs
import email.charset
import email.header
import email.utils
import html
import mmap
import re
from dataclasses import dataclass, field
from datetime import datetime, timezone
from email.message import Message
from email.parser import BytesParser
from email.policy import Compat32
from typing import Any, TypeAlias

#: What parsing reads: the message in memory, or a spooled file's read-only mmap.
Raw: TypeAlias = "bytes | mmap.mmap"

#: Text kept per message for the search index (characters).
MAX_TEXT_CHARS = 512 * 1024
#: A text part bigger than this is indexed from its first bytes only.
MAX_TEXT_PART_BYTES = 4 * 1024 * 1024
#: Header blocks bigger than this are cut (a header "block" of 100 MB is an attack).
MAX_HEADER_BYTES = 1024 * 1024
MAX_DEPTH = 20
MAX_PARTS = 1000


class _RawValues(Compat32):
    """compat32, except that ``Message.get`` returns values as stored.

    compat32 turns a value holding raw 8-bit bytes (kept as surrogates) into
    a ``Header`` whose text has lost them; this module decodes such bytes
    itself (:func:`_unsurrogate`, :func:`_param_text`).
    """

    def header_fetch_parse(self, name: str, value: str) -> str:
        return value


_header_parser = BytesParser(policy=_RawValues())


@dataclass
class AttachmentInfo:
    filename: str | None
    content_type: str
    #: decoded size in bytes
    size: int
    #: where its encoded body lies in the raw message, and how it is encoded
    #: (for extracting it: attachment_payload); not stored
    span: tuple[int, int] = field(default=(0, 0), compare=False, repr=False)
    transfer_encoding: str = field(default="7bit", compare=False, repr=False)


@dataclass
class ParsedMessage:
    """Header fields, addresses, attachments and text of one message."""

    subject: str | None = None
    message_id: str | None = None
    date: datetime | None = None
    from_display: str | None = None
    #: (role, address, display name or None), in header order; the address's
    #: local part as written, its domain lower-cased
    addresses: list[tuple[str, str, str | None]] = field(default_factory=list)
    attachments: list[AttachmentInfo] = field(default_factory=list)
    text: str = ""
    defects: list[str] = field(default_factory=list)

    @property
    def from_address(self) -> str | None:
        for role, address, _ in self.addresses:
            if role == "from":
                return address
        return None


# ---------------------------------------------------------------------------
# Entry point


def parse_message(raw: Raw) -> ParsedMessage:
    """Extract what search needs from ``raw`` (bytes or a read-only mmap). Never raises."""
    result = ParsedMessage()
    try:
        _parse_into(raw, result)
    except Exception as exc:  # pragma: no cover - a bug, but never lose the message over it
        result.defects.append(f"parser failure: {type(exc).__name__}: {exc}"[:200])
    return result


def _raw_index(headers: Message) -> dict[str, list[str]]:
    """Header values by lower-cased name, as stored (raw 8-bit bytes kept as surrogates).

    ``Message.get`` under compat32 turns such values into ``Header`` objects
    whose text has lost the bytes; ``raw_items`` still has them.
    """
    index: dict[str, list[str]] = {}
    for k, v in headers.raw_items():
        index.setdefault(k.lower(), []).append(v)
    return index


def _first(values: list[str] | None) -> str | None:
    return values[0] if values else None


def _raw_get(headers: Message, name: str) -> str | None:
    name = name.lower()
    for k, v in headers.raw_items():
        if k.lower() == name:
            return v
    return None


def _parse_into(raw: Raw, result: ParsedMessage) -> None:
    headers, body_start = _read_headers(raw, from_line_length(raw), len(raw), result)
    index = _raw_index(headers)

    def _raw_all(_headers: Message, name: str) -> list[str]:
        return index.get(name.lower(), [])
    subject = _first(index.get("subject"))
    if subject is not None:
        result.subject = _clean_text(decode_header_value(subject))
    result.message_id = _message_id(index.get("message-id", []), result)
    result.date = _date(_first(index.get("date")), result)
    for role, name in (
        ("from", "From"),
        ("sender", "Sender"),
        ("reply-to", "Reply-To"),
        ("to", "To"),
        ("cc", "Cc"),
        ("bcc", "Bcc"),
        ("delivered-to", "Delivered-To"),
    ):
        values = _raw_all(headers, name)
        if values:
            result.addresses.extend(_addresses(role, values))
    from_value = _first(index.get("from"))
    if from_value is not None:
        result.from_display = _clean_text(decode_header_value(from_value))[:500] or None

    texts: list[str] = []
    walker = _Walker(raw, result, texts)
    walker.walk(headers, body_start, len(raw), depth=0)
    text = "\n".join(t for t in texts if t)
    result.text = text[:MAX_TEXT_CHARS]


# ---------------------------------------------------------------------------
# Header blocks


#: A From_ line longer than this is not taken for one (it is a very long first line).
MAX_FROM_LINE = 4096
_HEADER_NAMED_FROM = re.compile(rb"From[ \t]*:")


def from_line_length(raw: Raw) -> int:
    """Length (line end included) of the mbox From_ line ``raw`` starts with, else 0.

    ``From sender@host date`` (or just ``From sender@host``) is an mbox
    envelope line, not a header field: an .eml saved from an mbox, or mail
    delivered with it, starts with one. Parsing skips it; storage never does
    (the stored bytes are the file in wire form). ``From: …`` and the
    obsolete ``From : …`` are header fields, not From_ lines.
    """
    if raw[:5] != b"From ":
        return 0
    end = raw.find(b"\n", 0, MAX_FROM_LINE)
    if end < 0 or _HEADER_NAMED_FROM.match(bytes(raw[:end])):
        return 0
    return end + 1


#: A run of header fields: "name: value" lines and their folded continuations.
#: Field names are printable ASCII except colon (RFC 5322 2.2); the bytes
#: parser tolerates a little more, so a space before the colon is allowed.
_HEADER_RUN = re.compile(rb"(?:[!-9;-~][!-9;-~ \t]*:[^\n]*\n(?:[ \t][^\n]*\n)*)*")


def _read_headers(raw: Raw, start: int, end: int, result: ParsedMessage) -> tuple[Message, int]:
    """Parse the header block at ``raw[start:end]``; return it and where the body starts.

    The block ends at the first empty line. A line that is neither a header
    field nor a continuation also ends it (recorded as a defect) and starts
    the body, as ``email``'s feed parser does.
    """
    window_end = min(end, start + MAX_HEADER_BYTES)
    block = bytes(raw[start:window_end])
    m = _HEADER_RUN.match(block)
    header_end = m.end() if m else 0
    rest = block[header_end:]
    if rest.startswith(b"\r\n"):
        body_start = start + header_end + 2
    elif rest.startswith(b"\n"):
        body_start = start + header_end + 1
    elif header_end == len(block):
        body_start = start + header_end  # headers only, no body
        if window_end < end:
            result.defects.append("header block larger than 1 MiB; rest ignored")
            body_start = end
    else:
        # A non-header line (or the last, unterminated header line).
        tail = rest.split(b"\n", 1)[0]
        run = _HEADER_RUN.match(tail + b"\n")
        if header_end + len(tail) == len(block) and run is not None and run.end():
            header_end = len(block)  # a final header without line end
            body_start = start + header_end
        else:
            result.defects.append("missing blank line between header and body")
            body_start = start + header_end
    try:
        headers = _header_parser.parsebytes(block[:header_end], headersonly=True)
    except Exception as exc:  # compat32 is lenient; this is belt and braces
        result.defects.append(f"unparseable header block: {exc}"[:200])
        headers = _header_parser.parsebytes(b"", headersonly=True)
    return headers, body_start


def _unsurrogate(value: str) -> str:
    """Header text from the bytes parser → str, recovering raw 8-bit bytes.

    ``email`` keeps undecodable bytes as surrogates; raw UTF-8 (RFC 6532) is
    decoded as UTF-8 and anything else as windows-1252, the usual legacy guess.
    """
    if value.isascii() or not _SURROGATE.search(value):
        return value
    raw = value.encode("ascii", "surrogateescape")
    try:
        return raw.decode("utf-8")
    except UnicodeDecodeError:
        return raw.decode("windows-1252", "replace")


_SURROGATE = re.compile("[\udc80-\udcff]")


def decode_header_value(value: Any) -> str:
    r"""Decode RFC 2047 encoded-words (and raw 8-bit text) in one header value.

    Unfolding turns each fold (line break and the white space after it) into
    one space. White space between two encoded-words is dropped (RFC 2047
    6.2), so ``=?utf-8?q?R=C3=A9?=\r\n =?utf-8?q?union?=`` is ``Réunion``;
    white space between an encoded-word and ordinary text is kept, so
    ``Re:\r\n =?utf-8?q?R=C3=A9union?=`` is ``Re: Réunion``. Adjacent
    encoded-words in one charset are joined before decoding (a multi-byte
    character may be split across two). An encoded-word that does not decode
    is kept as written.
    """
    if value is None:
        return ""
    if isinstance(value, email.header.Header):
        value = str(value)
    text = _unfold(_unsurrogate(str(value)))
    if "=?" not in text:
        return text
    out: list[str] = []
    run: list[bytes] = []  # bytes of adjacent encoded-words in run_charset
    run_charset = ""
    pos = 0
    last_was_word = False
    for m in _ENCODED_WORD.finditer(text):
        gap = text[pos : m.start()]
        data = _decode_word(m.group(2), m.group(3))
        if data is None:  # not decodable: ordinary text
            continue
        charset = m.group(1).split("*", 1)[0].lower()  # RFC 2231 5: charset*language
        joins = last_was_word and (not gap or gap.isspace())
        if not joins or charset != run_charset:
            if run:
                out.append(_decode_bytes(b"".join(run), run_charset))
                run = []
            if not joins:
                out.append(gap)
        run.append(data)
        run_charset = charset
        last_was_word = True
        pos = m.end()
    if run:
        out.append(_decode_bytes(b"".join(run), run_charset))
    out.append(text[pos:])
    return "".join(out).strip()


#: An RFC 2047 encoded-word. Found anywhere (not only between white space):
#: mail in the wild puts them next to punctuation and text.
_ENCODED_WORD = re.compile(r"=\?([^?\s]+)\?([bBqQ])\?([^?\s]*)\?=")
_Q_ESCAPE = re.compile(rb"=([0-9A-Fa-f]{2})")


def _decode_word(encoding: str, text: str) -> bytes | None:
    """The bytes of one encoded-word's text, or None when it does not decode."""
    if not text.isascii():
        return None
    if encoding in "qQ":
        raw = text.replace("_", " ").encode("ascii")
        return _Q_ESCAPE.sub(lambda m: bytes([int(m.group(1), 16)]), raw)
    raw = text.encode("ascii")
    try:
        return binascii.a2b_base64(raw + b"=" * (-len(raw) % 4))
    except binascii.Error:
        return None


_FOLD = re.compile(r"\r?\n[ \t]*")


def _unfold(value: str) -> str:
    return (_FOLD.sub(" ", value) if "\n" in value else value).strip()


#: NUL and other C0 controls are valid in mail but not in database text
#: (PostgreSQL refuses NUL). Also the surrogates ``email`` uses for raw bytes.
_CONTROLS = re.compile("[\x00-\x08\x0b\x0c\x0e-\x1f\ud800-\udfff]")


_ASCII_CONTROLS = bytes(c for c in range(32) if c not in (9, 10, 13))


def _clean_text(value: str) -> str:
    if value.isascii():
        # bytes.translate is several times faster than a regex over long text
        raw = value.encode("ascii")
        cleaned = raw.translate(None, _ASCII_CONTROLS)
        return value if len(cleaned) == len(raw) else cleaned.decode("ascii")
    return _CONTROLS.sub("", value)


def _decode_bytes(data: bytes, charset: str | None) -> str:
    """Decode ``data`` in ``charset``; unknown or lying charsets fall back gracefully."""
    name = _codec_name(charset)
    if name:
        try:
            return data.decode(name)
        except (UnicodeDecodeError, LookupError):
            pass
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError:
        return data.decode(name or "windows-1252", "replace")


def _codec_name(charset: str | None) -> str | None:
    if not charset:
        return None
    charset = charset.strip().strip('"').lower()
    if charset in ("us-ascii", "ascii", "unknown-8bit", "x-unknown"):
        # Declared ASCII with 8-bit bytes is common; treat it as the
        # superset windows-1252 after a UTF-8 attempt.
        return None
    try:
        name = codecs.lookup(email.charset.ALIASES.get(charset, charset)).name
    except LookupError:
        return None
    # ISO-8859-1 in the wild is windows-1252 (the WHATWG rule).
    return "windows-1252" if name == "latin-1" else name


def _message_id(values: list[str], result: ParsedMessage) -> str | None:
    if len(values) > 1:
        result.defects.append("duplicate Message-ID header")
    if not values:
        return None
    value = _clean_text(_unsurrogate(str(values[0]))).strip()
    value = re.sub(r"\s+", "", value)
    return value[:255] or None


def _date(value: Any, result: ParsedMessage) -> datetime | None:
    if value is None:
        return None
    text = _unsurrogate(str(value)).strip()
    try:
        parsed = email.utils.parsedate_to_datetime(text)
    except (TypeError, ValueError, IndexError, OverflowError):
        result.defects.append("unparseable Date header")
        return None
    if parsed is None:
        return None
    if parsed.tzinfo is None:  # "-0000": time in UTC, zone unknown (RFC 5322 3.3)
        parsed = parsed.replace(tzinfo=timezone.utc)
    try:
        return parsed.astimezone(timezone.utc)
    except (OverflowError, ValueError):
        result.defects.append("Date header out of range")
        return None


#: The common shapes of an address list entry: "addr", "Name <addr>", "<addr>".
_SIMPLE_ADDRESS = re.compile(r"\s*(?:([^<>,\"()\\;:@]*?)\s*<([^<>\s,\"()\\;:]+@[^<>\s,\"()\\;:]+)>|"
                             r"([^<>\s,\"()\\;:]+@[^<>\s,\"()\\;:]+))\s*$")


def _split_addresses(value: str) -> list[tuple[str, str]] | None:
    """Fast path for plain address lists; None when ``email.utils`` must decide."""
    if '"' in value or "(" in value or ";" in value:
        return None
    pairs = []
    for item in value.split(","):
        if not item.strip():
            continue
        m = _SIMPLE_ADDRESS.match(item)
        if m is None:
            return None
        name, bracketed, bare = m.groups()
        pairs.append((name or "", bracketed or bare))
    return pairs


def _addresses(role: str, values: list[Any]) -> list[tuple[str, str, str | None]]:
    out = []
    raw_values = [_unfold(_unsurrogate(str(v))) for v in values]
    pairs = []
    for value in raw_values:
        simple = _split_addresses(value)
        if simple is None:
            try:
                simple = email.utils.getaddresses([value])
            except Exception:
                simple = []
        pairs.extend(simple)
    for name, addr in pairs:
        addr = _clean_text(addr).strip().strip("<>")
        if "@" not in addr:
            continue
        local, _, domain = addr.rpartition("@")
        # Only the domain is case-insensitive (RFC 5321 2.4); the local part
        # is kept as written, for display. Search compares ignoring case.
        addr = f"{local}@{domain.lower()}"
        name = _clean_text(decode_header_value(name)).strip() if name else ""
        out.append((role, addr[:320], name[:500] or None))
    return out


# ---------------------------------------------------------------------------
# MIME structure


#: RFC 2045 ``token``: a media type's type and subtype.
_TOKEN = r"[!#$%&'*+\-.0-9A-Z^_`a-z{|}~]+"
_MEDIA_TYPE = re.compile(rf"\s*({_TOKEN})\s*/\s*({_TOKEN})\s*")
_COMMENT = re.compile(r"\((?:[^()\\]|\\.)*\)")


def _media_type(value: str | None) -> tuple[str, bool]:
    """``type/subtype`` (lower case) of a Content-Type value, and whether it was valid.

    No Content-Type means text/plain; so does a syntactically invalid one
    (``text``, ``;;;``, ``text/plain garbage``), as RFC 2045 5.2 recommends.
    Comments and white space around the ``/`` are allowed (RFC 2045 5.1).
    """
    if value is None:
        return "text/plain", True
    head = value.split(";", 1)[0]
    for _ in range(8):  # nested comments, innermost first
        if "(" not in head:
            break
        head = _COMMENT.sub(" ", head)
    m = _MEDIA_TYPE.fullmatch(head)
    if m is None:
        return "text/plain", False
    return f"{m.group(1)}/{m.group(2)}".lower(), True


#: A parameter value as ``email`` returns it: text, or RFC 2231's (charset, language, text).
_ParamValue: TypeAlias = "str | tuple[str | None, str | None, str]"


def _raw_params(headers: Message, name: str) -> dict[str, _ParamValue]:
    """Parameters of header ``name`` by lower-cased key (the first of each), values unquoted."""
    if headers.get(name) is None:
        return {}
    try:
        items = headers.get_params(header=name) or []
    except Exception:
        return {}
    params: dict[str, _ParamValue] = {}
    for key, value in items[1:]:
        params.setdefault(key.lower(), value)
    return params


def _octets(text: str) -> bytes:
    """Text whose characters stand for octets (raw bytes as surrogates, %-decoded RFC 2231) → bytes."""
    try:
        return text.encode("latin-1", "surrogateescape")
    except UnicodeEncodeError:
        return text.encode("utf-8", "replace")


def _param_text(value: _ParamValue, charset: str | None) -> str:
    """A parameter value as text.

    RFC 2231 values (``filename*=UTF-8''%C3%A9.txt``) are decoded in their
    declared charset. Raw 8-bit bytes (``filename="é.txt"`` written in
    UTF-8, as most mailers now do) are decoded as UTF-8 when they are valid
    UTF-8, else in the part's ``charset``, else as windows-1252 (latin-1).
    """
    if isinstance(value, tuple):
        declared, _language, text = value
        return _decode_bytes(_octets(text), declared)
    if value.isascii() or not _SURROGATE.search(value):
        return value
    data = _octets(value)
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError:
        return _decode_bytes(data, charset)


class _Part:
    """One MIME part's header block, with Content-Type parsed once.

    ``email``'s ``get_param`` re-parses the header on every call; a part
    needs its type, charset, boundary and name, so parse once here.
    """

    __slots__ = ("headers", "ctype", "valid_ctype", "params", "raw_boundary")

    def __init__(self, headers: Message) -> None:
        self.headers = headers
        value = headers.get("Content-Type")
        self.ctype, self.valid_ctype = _media_type(None if value is None else str(value))
        raw = _raw_params(headers, "Content-Type")
        charset = _param_text(raw["charset"], None) if "charset" in raw else None
        self.params = {key: _param_text(v, charset) for key, v in raw.items()}
        boundary = raw.get("boundary")
        self.raw_boundary = boundary if isinstance(boundary, str) else None

    @property
    def cte(self) -> str:
        return str(self.headers.get("Content-Transfer-Encoding", "")).strip().lower()

    @property
    def is_attachment(self) -> bool:
        disp = self.headers.get("Content-Disposition")
        return disp is not None and str(disp).split(";", 1)[0].strip().lower() == "attachment"

    @property
    def boundary(self) -> bytes | None:
        """The boundary as the raw bytes it is written with (8-bit ones included)."""
        if self.raw_boundary is not None:
            b = _octets(self.raw_boundary).strip()
        else:
            b = self.params.get("boundary", "").strip().encode("utf-8")
        return b or None

    @property
    def filename(self) -> str | None:
        """Content-Disposition's ``filename``, else Content-Type's ``name``."""
        value = _raw_params(self.headers, "Content-Disposition").get("filename")
        if value is None:
            name = self.params.get("name")
        else:
            name = _param_text(value, self.params.get("charset"))
        if not name:
            return None
        # Encoded-words inside filename= are common, if wrong.
        name = _clean_text(decode_header_value(name)).strip()
        return name or None


class _Walker:
    """Walks a MIME tree on the raw buffer, collecting text and attachments."""

    def __init__(self, raw: Raw, result: ParsedMessage, texts: list[str]) -> None:
        self.raw = raw
        self.result = result
        self.texts = texts
        self.parts = 0
        self.text_chars = 0

    def walk(self, headers: Message, start: int, end: int, depth: int) -> None:
        self.parts += 1
        if self.parts > MAX_PARTS or depth > MAX_DEPTH:
            if self.parts == MAX_PARTS + 1 or depth == MAX_DEPTH + 1:
                self.result.defects.append("MIME structure too deep or too large; rest ignored")
            return
        part = _Part(headers)
        if not part.valid_ctype:
            self.result.defects.append("invalid Content-Type; treated as text/plain")
        if part.ctype.startswith("multipart/"):
            boundary = part.boundary
            if not boundary:
                self.result.defects.append("multipart without boundary")
                self._leaf(part, start, end, force_text=True)
                return
            self._multipart(boundary, start, end, depth)
            return
        if part.ctype == "message/rfc822":
            inner, body_start = _read_headers(self.raw, start, end, self.result)
            if not part.is_attachment:
                self.walk(inner, body_start, end, depth + 1)
                return
            # An attached message is one attachment; its text is indexed too,
            # but its own attachments belong to it, not to this message.
            self._record_attachment(part, start, end, inner)
            nested = _Walker(self.raw, ParsedMessage(), self.texts)
            nested.parts, nested.text_chars = self.parts, self.text_chars
            nested.walk(inner, body_start, end, depth + 1)
            self.parts, self.text_chars = nested.parts, nested.text_chars
            return
        self._leaf(part, start, end)

    def _multipart(self, boundary: bytes, start: int, end: int, depth: int) -> None:
        raw = self.raw
        delim = b"--" + boundary
        positions: list[tuple[int, int, bool]] = []  # (line start, content start, is_close)
        pos = start
        closed = False
        while True:
            i = _find(raw, delim, pos, end)
            if i < 0:
                break
            line_start_ok = i == start or raw[i - 1 : i] == b"\n"
            after = i + len(delim)
            if not line_start_ok:
                pos = after
                continue
            is_close = raw[after : after + 2] == b"--"
            nl = _find(raw, b"\n", after, end)
            tail_end = end if nl < 0 else nl
            tail = raw[after + (2 if is_close else 0) : tail_end]
            if tail.strip(b" \t\r"):
                # "--boundaryXYZ" is a different (longer) boundary, not ours.
                pos = after
                continue
            positions.append((i, end if nl < 0 else nl + 1, is_close))
            pos = end if nl < 0 else nl + 1
            if is_close:
                closed = True
                break
        if not positions:
            self.result.defects.append("multipart boundary never appears")
            self._leaf_text_fallback(start, end)
            return
        if not closed:
            self.result.defects.append("multipart without closing boundary")
        for n, (_, content_start, is_close) in enumerate(positions):
            if is_close:
                break
            if n + 1 < len(positions):
                next_line = positions[n + 1][0]
                # The CRLF before a delimiter belongs to the delimiter (RFC 2046 5.1.1).
                part_end = next_line
                if raw[part_end - 2 : part_end] == b"\r\n":
                    part_end -= 2
                elif raw[part_end - 1 : part_end] == b"\n":
                    part_end -= 1
            else:
                part_end = end
            part_end = max(part_end, content_start)
            headers, body_start = _read_headers(raw, content_start, part_end, self.result)
            self.walk(headers, body_start, part_end, depth + 1)

    def _leaf(self, part: _Part, start: int, end: int, force_text: bool = False) -> None:
        # Body text is a text/plain or text/html part not marked as an
        # attachment (Content-Disposition inline, or none); everything else is
        # an attachment. An inline text part with a file name (a signature,
        # "notes.txt" shown in the body) is both: its text is indexed and it is
        # listed among the attachments under its name.
        if force_text:
            self._text(part, start, end)
            return
        if part.ctype in ("text/plain", "text/html") and not part.is_attachment:
            self._text(part, start, end)
            filename = part.filename
            if filename is not None:
                self._record_attachment(part, start, end, filename=filename)
            return
        self._record_attachment(part, start, end)

    def _record_attachment(self, part: _Part, start: int, end: int,
                           inner: Message | None = None, filename: str | None = None) -> None:
        if filename is None:
            filename = part.filename
        if filename is None and inner is not None:
            subject = _clean_text(decode_header_value(_raw_get(inner, "Subject"))).strip()
            filename = (subject or "message") + ".eml"
        size = _decoded_size(self.raw, start, end, part.cte)
        self.result.attachments.append(
            AttachmentInfo(filename[:500] if filename else None, part.ctype[:255], size,
                           span=(start, end), transfer_encoding=part.cte)
        )

    def _text(self, part: _Part, start: int, end: int) -> None:
        if self.text_chars >= MAX_TEXT_CHARS:
            return
        limit = min(end, start + MAX_TEXT_PART_BYTES)
        data = bytes(self.raw[start:limit])
        payload = _decode_transfer(data, part.cte, self.result)
        text = _decode_bytes(payload, part.params.get("charset"))
        if part.ctype == "text/html":
            text = html_to_text(text)
        text = _clean_text(text).strip()
        self.text_chars += len(text)
        self.texts.append(text)

    def _leaf_text_fallback(self, start: int, end: int) -> None:
        limit = min(end, start + MAX_TEXT_PART_BYTES)
        self.texts.append(_clean_text(_decode_bytes(bytes(self.raw[start:limit]), None)).strip())


def attachment_payload(raw: Raw, number: int) -> tuple[AttachmentInfo, bytes]:
    """Attachment ``number`` (1-based, in the order ``parse_message`` lists them)
    of ``raw``, and its bytes with the transfer encoding undone (an attached
    message: the message itself). Raises IndexError if there is no such part."""
    attachments = parse_message(raw).attachments
    if not 1 <= number <= len(attachments):
        raise IndexError(number)
    info = attachments[number - 1]
    start, end = info.span
    return info, _decode_transfer(bytes(raw[start:end]), info.transfer_encoding,
                                  ParsedMessage())


def _decode_transfer(data: bytes, cte: str, result: ParsedMessage) -> bytes:
    if cte == "base64":
        try:
            return binascii.a2b_base64(_B64_JUNK.sub(b"", data) + b"==")
        except binascii.Error:
            result.defects.append("undecodable base64 text part")
            return b""
    if cte == "quoted-printable":
        return binascii.a2b_qp(data)
    return data


_B64_JUNK = re.compile(rb"[^A-Za-z0-9+/]")


def _decoded_size(raw: Raw, start: int, end: int, cte: str) -> int:
    """Size of a part's decoded content, computed without copying big parts."""
    length = max(0, end - start)
    if cte == "base64":
        whitespace = _count(raw, b"\n", start, end) + _count(raw, b"\r", start, end)
        chars = max(0, length - whitespace)
        # Padding '=' only at the very end of the part.
        tail = bytes(raw[max(start, end - 8) : end]).rstrip(b"\r\n \t")
        pad = len(tail) - len(tail.rstrip(b"="))
        return max(0, chars * 3 // 4 - pad)
    if cte == "quoted-printable" and length <= MAX_TEXT_PART_BYTES:
        return len(binascii.a2b_qp(bytes(raw[start:end])))
    return length


# Big messages are parsed through a read-only mmap of their spool file. Pages
# it touches count as this process's resident memory until released, so scans
# over big regions go window by window and hand each window back (the data
# stays in the page cache; RSS stays bounded by one window).
_WINDOW = 8 * 1024 * 1024


def _release(raw: Raw, start: int, end: int) -> None:
    if isinstance(raw, mmap.mmap) and end > start:
        page = mmap.PAGESIZE
        lo = start - start % page
        try:
            raw.madvise(mmap.MADV_DONTNEED, lo, min(len(raw), end) - lo)
        except (OSError, ValueError, AttributeError):
            pass


def _find(raw: Raw, sub: bytes, start: int, end: int) -> int:
    """``raw.find(sub, start, end)``, in windows for an mmap."""
    if not isinstance(raw, mmap.mmap) or end - start <= _WINDOW:
        return raw.find(sub, start, end)
    pos = start
    while pos < end:
        stop = min(end, pos + _WINDOW + len(sub))
        i = raw.find(sub, pos, stop)
        _release(raw, pos, min(stop, pos + _WINDOW))
        if i >= 0:
            return i
        pos += _WINDOW
    return -1


def _count(raw: Raw, sub: bytes, start: int, end: int) -> int:
    if isinstance(raw, bytes):
        return raw.count(sub, start, end)
    total = 0
    for offset in range(start, end, _WINDOW):
        stop = min(end, offset + _WINDOW)
        total += raw[offset:stop].count(sub)
        _release(raw, offset, stop)
    return total


# ---------------------------------------------------------------------------
# HTML → text


# A regex pass, not html.parser: html.parser costs about a millisecond per
# newsletter, which is most of a collection pass's parsing budget, and search
# needs the visible words, not a DOM.
_HTML_COMMENT = re.compile(r"<!--.*?(?:-->|$)", re.S)
_HTML_INVISIBLE = re.compile(
    r"<(script|style|head|title|noscript|template)\b[^>]*>.*?(?:</\1\s*>|$)", re.S | re.I)
_HTML_BREAK = re.compile(
    r"<\s*/?\s*(?:br|p|div|li|tr|td|th|h[1-6]|table|ul|ol|blockquote|pre|hr)\b[^>]*>", re.I)
_HTML_TAG = re.compile(r"<[^>]*>")
_BLANK_LINES = re.compile(r"\n\s*\n+")


def html_to_text(markup: str) -> str:
    """Visible text of an HTML part (scripts, styles, comments and markup dropped)."""
    text = _HTML_COMMENT.sub(" ", markup)
    text = _HTML_INVISIBLE.sub(" ", text)
    text = _HTML_BREAK.sub("\n", text)
    text = _HTML_TAG.sub("", text)
    text = html.unescape(text).replace("\r", "")
    return _BLANK_LINES.sub("\n", text).strip()


__all__ = [
    "AttachmentInfo",
    "MAX_DEPTH",
    "MAX_HEADER_BYTES",
    "MAX_PARTS",
    "MAX_TEXT_CHARS",
    "MAX_TEXT_PART_BYTES",
    "ParsedMessage",
    "attachment_payload",
    "decode_header_value",
    "from_line_length",
    "html_to_text",
    "parse_message",
]
