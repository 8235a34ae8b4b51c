"""Folding and words: the one text model shared by the index and the query language.

Whatever a backend's own tokenizer would do, the archive indexes the words
:func:`words` returns and the parser searches for the same words, so SQLite,
PostgreSQL and MariaDB are given identical tokens and give identical answers
(DESIGN.md §4).

Folding (:func:`normalize_text`)
    Unicode NFKD (compatibility decomposition: ``ﬁ`` is ``fi``, full-width
    ``Ａ`` is ``A``, ``²`` is ``2``), then every combining mark removed (the
    characters with a non-zero canonical combining class: accents, cedillas,
    the dot of ``İ``) and every format character (category Cf: soft hyphen,
    zero-width joiners, bidi controls), then casefolded. So ``café`` is
    ``cafe``, ``İstanbul`` is ``istanbul`` and ``Straße`` is ``strasse``.
    Spacing marks that carry meaning (Devanagari and Thai vowel signs) have
    combining class 0 and stay. Folding works character by character and is
    idempotent: ``normalize_text(normalize_text(s)) == normalize_text(s)``.

Words (:func:`words`)
    The folded text cut into maximal runs of letters, digits and the marks
    that follow them; everything else separates words and is not searchable
    (``e-mail`` is the two words ``e``, ``mail``; ``_`` separates too). A
    mark never starts a word, so a stray variation selector after an emoji
    is not a word.

Folding depends on the Unicode tables of the running Python
(``unicodedata.unidata_version``); after an upgrade that changes them,
``archiver reindex`` brings the index in line.
"""

from __future__ import annotations

import functools
import re
import unicodedata

__all__ = ["is_word", "normalize_text", "words"]

# a folded ASCII word: what the word pattern of _tables() matches in lower-case ASCII
_ASCII_WORD = re.compile(r"[a-z0-9]+")

# Every combining mark and format character of Unicode 14 and 15 lives in
# planes 0, 1 and 14; scanning only those keeps the first call cheap.
_PLANES = (range(0x20000), range(0xE0000, 0xE1000))


@functools.cache
def _tables() -> tuple[dict[int, None], re.Pattern[str]]:
    """(the str.translate table that drops marks and format characters,
    the pattern of one word); built on first use, not at import."""
    dropped: dict[int, None] = {}
    marks: list[int] = []
    for plane in _PLANES:
        for code in plane:
            char = chr(code)
            category = unicodedata.category(char)
            if unicodedata.combining(char) or category == "Cf":
                dropped[code] = None
            elif category[0] == "M":
                marks.append(code)
    word = re.compile(rf"[^\W_](?:[^\W_]|[{_char_class(marks)}])*")
    return dropped, word


def _char_class(codes: list[int]) -> str:
    """The body of a regex character class for the sorted code points ``codes``."""
    parts: list[str] = []
    start = prev = codes[0]
    for code in [*codes[1:], -1]:
        if code == prev + 1:
            prev = code
            continue
        parts.append(re.escape(chr(start)) if start == prev
                     else f"{re.escape(chr(start))}-{re.escape(chr(prev))}")
        start = prev = code
    return "".join(parts)


def normalize_text(text: str) -> str:
    """``text`` folded: NFKD, combining marks and format characters removed,
    casefolded (see the module docstring). Used at index and at query time."""
    if text.isascii():
        return text.lower()  # the same result, without the tables
    dropped, _ = _tables()
    return unicodedata.normalize("NFKD", text).translate(dropped).casefold()


def words(text: str) -> tuple[str, ...]:
    """The searchable words of ``text``, folded, in order (see the module docstring).

    ``words("Café e-mail, İstanbul!") == ("cafe", "e", "mail", "istanbul")``.
    """
    if text.isascii():
        return tuple(_ASCII_WORD.findall(text.lower()))  # the same, without the tables
    _, word = _tables()
    return tuple(word.findall(normalize_text(text)))


def is_word(text: object) -> bool:
    """Whether ``text`` is exactly one word as :func:`words` returns it."""
    if not isinstance(text, str) or not text:
        return False
    if text.isascii():
        return _ASCII_WORD.fullmatch(text) is not None
    _, word = _tables()
    return word.fullmatch(text) is not None and normalize_text(text) == text
