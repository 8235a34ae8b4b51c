"""Folding and words: the one text model the index and the parser share."""

from __future__ import annotations

import sys
import unicodedata

import pytest
from hypothesis import given
from hypothesis import strategies as st

from archiver.query import is_word, normalize_text, words
from archiver.query._text import _PLANES


@pytest.mark.parametrize(
    ("text", "folded"),
    [
        ("café", "cafe"),
        ("CAFÉ", "cafe"),
        ("cafe\u0301", "cafe"),  # already decomposed
        ("İstanbul", "istanbul"),
        ("ISTANBUL", "istanbul"),
        ("Straße", "strasse"),
        ("ﬁnance", "finance"),  # ligature, NFKD
        ("ＡＢＣ１２３", "abc123"),  # full width
        ("x²", "x2"),
        ("Ångström", "angstrom"),
        ("Crème Brûlée", "creme brulee"),
        ("Ελληνικά", "ελληνικα"),
        ("ΣΊΣΥΦΟΣ", "σισυφοσ"),  # casefold: no final-sigma rule, the same everywhere
        ("con\u00adtent", "content"),  # soft hyphen, a format character
        ("zero\u200bwidth", "zerowidth"),
        ("plain ASCII, Text!", "plain ascii, text!"),
        ("", ""),
    ],
)
def test_normalize_text_folds_case_accents_and_compatibility_forms(text, folded):
    assert normalize_text(text) == folded


def test_spacing_vowel_signs_stay():
    # Devanagari and Thai vowel signs have combining class 0: they are part of the word
    assert normalize_text("हिंदी") == "हिंदी"
    assert words("हिंदी भाषा") == ("हिंदी", "भाषा")
    assert words("ภาษาไทย") == ("ภาษาไทย",)


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("Café e-mail, İstanbul!", ("cafe", "e", "mail", "istanbul")),
        ("report.PDF", ("report", "pdf")),
        ("snake_case", ("snake", "case")),
        ("10:30", ("10", "30")),
        ("don't", ("don", "t")),
        ("Привет, мир", ("привет", "мир")),
        ("東京都", ("東京都",)),
        ("❤️ love", ("love",)),  # the variation selector after the emoji is no word
        ("&  --  ...", ()),
        ("", ()),
    ],
)
def test_words(text, expected):
    assert words(text) == expected


def test_folding_is_idempotent_for_every_character():
    """Folding works character by character, so checking each one covers every text."""
    unstable = []
    for code in range(sys.maxunicode + 1):
        char = chr(code)
        once = normalize_text(char)
        if normalize_text(once) != once:
            unstable.append(f"U+{code:04X}")
    assert unstable == []


def test_the_scanned_planes_hold_every_mark_and_format_character():
    scanned = {code for plane in _PLANES for code in plane}
    outside = [f"U+{code:04X}" for code in range(sys.maxunicode + 1)
               if code not in scanned and unicodedata.category(chr(code))[0] in "MC"
               and unicodedata.category(chr(code)) not in ("Cn", "Co", "Cs")]
    assert outside == []


@given(st.text())
def test_folding_is_idempotent(text):
    assert normalize_text(normalize_text(text)) == normalize_text(text)


@given(st.text())
def test_words_are_words_and_survive_refolding(text):
    found = words(text)
    assert all(is_word(word) for word in found)
    assert words(" ".join(found)) == found
    assert words(normalize_text(text)) == found


@pytest.mark.parametrize("bad", ["", "a b", "Café", "e-mail", "_", "\u0301a", 3, None])
def test_is_word_refuses_what_words_never_returns(bad):
    assert not is_word(bad)


def test_the_ascii_shortcut_agrees_with_the_tables():
    from archiver.query._text import _tables

    _, word = _tables()
    ascii_text = "".join(chr(code) for code in range(128)) * 2 + " Hello_World e-mail 10:30 x2Y"
    assert words(ascii_text) == tuple(word.findall(ascii_text.lower()))
    assert normalize_text(ascii_text) == ascii_text.casefold()
    for code in range(128):
        char = chr(code)
        assert is_word(char) == (word.fullmatch(char) is not None and char == char.lower())
