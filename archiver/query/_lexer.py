"""The tokenizer: query text -> tokens with their positions.

Lexical rules (the grammar in :mod:`archiver.query` builds on them):

* white space (``str.isspace``) separates tokens and is otherwise ignored;
* ``(`` and ``)`` are tokens wherever they appear, outside quotes;
* ``"`` opens a quoted string that runs to the next ``"`` (there are no
  escapes, so a quoted string cannot contain ``"``); unclosed is an error;
* ``-`` at the start of a token negates what follows it immediately;
  followed by white space, ``)`` or the end it is an error;
* any other run of characters up to white space, a parenthesis or a quote is
  a bare word. A bare word that starts with a name (an ASCII letter, then
  letters, digits, ``_`` or ``-``) and a colon is a field, whatever the name
  (unknown names are the parser's to report): its value is the rest of the
  word, or the quoted string that follows the colon immediately;
* the bare words ``OR``, ``AND`` and ``NOT``, in capitals and not directly
  after ``-``, are operators; in any other case they are words.
"""

from __future__ import annotations

import enum
import json
import re
from dataclasses import dataclass

from archiver.errors import QuerySyntaxError

__all__ = ["Kind", "Token", "describe", "quote", "syntax_error", "tokenize"]


class Kind(enum.Enum):
    WORD = "word"
    QUOTED = "quoted"
    FIELD = "field"
    LPAREN = "("
    RPAREN = ")"
    OR = "OR"
    AND = "AND"
    NOT = "NOT"  # "-" or "NOT"
    END = "end"


@dataclass(frozen=True, slots=True)
class Token:
    """One token; ``position`` is the 0-based offset of its first character."""

    kind: Kind
    position: int
    #: a word as written, a quoted string's content, a field's value, an operator as written
    text: str = ""
    #: FIELD: the name as written (without the colon)
    name: str = ""
    #: FIELD: where the value starts (its opening quote when quoted)
    value_position: int = 0
    #: FIELD: whether the value was quoted
    quoted: bool = False


_KEYWORDS = {"OR": Kind.OR, "AND": Kind.AND, "NOT": Kind.NOT}
_DELIMITERS = frozenset('()"')
_FIELD = re.compile(r"([A-Za-z][A-Za-z0-9_-]*):")


def tokenize(query: str) -> list[Token]:
    """The tokens of ``query``, ending with one ``END`` token at ``len(query)``.

    Raises :class:`QuerySyntaxError` for an unclosed quote or a ``-`` with
    nothing after it.
    """
    tokens: list[Token] = []
    end = len(query)
    i = 0
    after_minus = False
    while True:
        while i < end and query[i].isspace():
            i += 1
        if i == end:
            tokens.append(Token(Kind.END, end))
            return tokens
        char = query[i]
        if char == "(":
            tokens.append(Token(Kind.LPAREN, i, char))
            i += 1
        elif char == ")":
            tokens.append(Token(Kind.RPAREN, i, char))
            i += 1
        elif char == '"':
            start = i
            content, i = _quoted(query, start)
            tokens.append(Token(Kind.QUOTED, start, content))
        elif char == "-":
            following = query[i + 1] if i + 1 < end else ""
            if not following or following.isspace() or following == ")":
                raise syntax_error(
                    query, i, "a term right after it",
                    f'"-" at column {i + 1} expects a term right after it (like -word), '
                    f"got {describe(query, i + 1)}",
                )
            tokens.append(Token(Kind.NOT, i, char))
            i += 1
            after_minus = True
            continue
        else:
            start = i
            while i < end and not query[i].isspace() and query[i] not in _DELIMITERS:
                i += 1
            word = query[start:i]
            field = _FIELD.match(word)
            if field:
                value_at = start + field.end()
                value = word[field.end():]
                quoted = not value and i < end and query[i] == '"'
                if quoted:
                    value, i = _quoted(query, i)
                tokens.append(Token(Kind.FIELD, start, value, field[1], value_at, quoted))
            elif word in _KEYWORDS and not after_minus:
                tokens.append(Token(_KEYWORDS[word], start, word))
            else:
                tokens.append(Token(Kind.WORD, start, word))
        after_minus = False


def _quoted(query: str, start: int) -> tuple[str, int]:
    """(the content of the quoted string opening at ``start``, the offset after it)."""
    close = query.find('"', start + 1)
    if close < 0:
        raise syntax_error(
            query, start, 'a closing "',
            f'unclosed quote at column {start + 1}: expected a closing "',
        )
    return query[start + 1:close], close + 1


def syntax_error(query: str, position: int, expected: str, message: str) -> QuerySyntaxError:
    return QuerySyntaxError(message, query=query, position=position, expected=expected)


def describe(query: str, position: int) -> str:
    """What stands at ``position``, for "got ..." in messages."""
    if position >= len(query):
        return "end of query"
    if query[position].isspace():
        return "a space"
    if query[position] in _DELIMITERS:
        return quote(query[position])
    stop = position
    while stop < len(query) and not query[stop].isspace() and query[stop] not in _DELIMITERS:
        stop += 1
    return quote(query[position:stop])


def quote(text: str, limit: int = 40) -> str:
    """``text`` in double quotes, escaped, shortened when long."""
    if len(text) > limit:
        text = text[: limit - 1] + "…"
    return json.dumps(text, ensure_ascii=False)
