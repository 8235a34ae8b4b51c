"""The grammar: tokens -> syntax tree, by recursive descent.

The grammar (EBNF) and the field table are in :mod:`archiver.query`'s
docstring; this module is its implementation, one method per rule. Every
failure is a :class:`QuerySyntaxError` naming the column and what was
expected; nothing else escapes :func:`parse` for any ``str``.
"""

from __future__ import annotations

import difflib
import re
from collections.abc import Callable
from datetime import date

from archiver.errors import QuerySyntaxError
from archiver.units import SIZE_EXPECTED, parse_size

from ._lexer import Kind, Token, describe, quote, syntax_error, tokenize
from ._nodes import (
    ADDRESS_EXPECTED,
    Account,
    AddressField,
    After,
    Before,
    Filename,
    HasAttachment,
    Larger,
    MatchAll,
    MessageId,
    Node,
    Not,
    Phrase,
    Smaller,
    Subject,
    Term,
    all_of,
    any_of,
    classify_address,
)
from ._nodes import Address as AddressNode
from ._text import words

__all__ = ["FIELDS", "MAX_DEPTH", "parse"]

#: how deeply parentheses and negations may nest (beyond, a syntax error)
MAX_DEPTH = 100


class _BadValue(Exception):
    """A field value that does not fit: what was expected, and a hint."""

    def __init__(self, expected: str, hint: str = "") -> None:
        super().__init__(expected)
        self.expected = expected
        self.hint = hint


def _address(field: AddressField) -> Callable[[str], Node]:
    def read(value: str) -> Node:
        try:
            kind, canonical = classify_address(value)
        except ValueError:
            raise _BadValue(ADDRESS_EXPECTED) from None
        return AddressNode(field, kind, canonical)

    return read


def _words(expected: str, node: Callable[[tuple[str, ...]], Node]) -> Callable[[str], Node]:
    def read(value: str) -> Node:
        found = words(value)
        if not found:
            raise _BadValue(expected, " (it has no letters or digits)")
        return node(found)

    return read


_DAY = re.compile(r"[0-9]{4}-[0-9]{2}-[0-9]{2}", re.ASCII)


def _day(node: Callable[[date], Node]) -> Callable[[str], Node]:
    def read(value: str) -> Node:
        if not _DAY.fullmatch(value):
            raise _BadValue("YYYY-MM-DD")
        try:
            day = date.fromisoformat(value)
        except ValueError:
            raise _BadValue("YYYY-MM-DD", " (no such day)") from None
        return node(day)

    return read


def _size(node: Callable[[int], Node]) -> Callable[[str], Node]:
    def read(value: str) -> Node:
        try:
            size = parse_size(value)
        except ValueError as exc:
            raise _BadValue(SIZE_EXPECTED, " (too large)" if "at most" in str(exc) else "") \
                from None
        return node(size)

    return read


def _account(value: str) -> Node:
    return Account(value)


def _message_id(value: str) -> Node:
    if len(value) >= 2 and value[0] == "<" and value[-1] == ">":
        value = value[1:-1].strip()
    if not value:
        raise _BadValue("a Message-ID like <id@example.com>")
    return MessageId(value)


def _has(value: str) -> Node:
    if value.casefold() != "attachment":
        raise _BadValue('"attachment"')
    return HasAttachment()


#: field name -> (what its value must be, how to read it); the order of the docs
_FIELDS: dict[str, tuple[str, Callable[[str], Node]]] = {
    "from": (ADDRESS_EXPECTED, _address(AddressField.FROM)),
    "to": (ADDRESS_EXPECTED, _address(AddressField.TO)),
    "cc": (ADDRESS_EXPECTED, _address(AddressField.CC)),
    "subject": ('a word or a "quoted phrase"', _words('a word or a "quoted phrase"', Subject)),
    "account": ("an account name", _account),
    "after": ("YYYY-MM-DD", _day(After)),
    "before": ("YYYY-MM-DD", _day(Before)),
    "has": ('"attachment"', _has),
    "filename": ("a file name", _words("a file name", Filename)),
    "larger": (SIZE_EXPECTED, _size(Larger)),
    "smaller": (SIZE_EXPECTED, _size(Smaller)),
    "message-id": ("a Message-ID like <id@example.com>", _message_id),
}

#: the field names of the language, without their colons
FIELDS: tuple[str, ...] = tuple(_FIELDS)

#: names people try, and what this language calls them
_ALIASES = {
    "bcc": ('"to:"', " It covers To, Cc, Bcc and Delivered-To"),
    "date": ('"after:" or "before:"', ""),
    "since": ('"after:"', ""),
    "until": ('"before:"', ""),
    "size": ('"larger:" or "smaller:"', ""),
    "attachment": ('"has:attachment" or "filename:"', ""),
    "msgid": ('"message-id:"', ""),
    "id": ('"message-id:"', ""),
}

_OPERAND = frozenset({Kind.WORD, Kind.QUOTED, Kind.FIELD, Kind.LPAREN, Kind.NOT})


def parse(query: str) -> Node:
    """The syntax tree of ``query``; white space alone (or ``""``) is :class:`MatchAll`.

    Raises :class:`QuerySyntaxError`, and nothing else, for any ``str`` that
    is not a query (``TypeError`` for what is not a ``str``).
    """
    if not isinstance(query, str):
        raise TypeError(f"a query must be a str, not {type(query).__name__}")
    return _Parser(query).query()


class _Parser:
    """One parse: the tokens, a cursor, the nesting depth."""

    def __init__(self, query: str) -> None:
        self.text = query
        self.tokens = tokenize(query)
        self.at = 0
        self.depth = 0

    def peek(self) -> Token:
        return self.tokens[self.at]

    def take(self) -> Token:
        token = self.tokens[self.at]
        if token.kind is not Kind.END:
            self.at += 1
        return token

    def fail(self, position: int, expected: str, message: str) -> QuerySyntaxError:
        return syntax_error(self.text, position, expected, message)

    # query = [ disjunction ] ;
    def query(self) -> Node:
        if self.peek().kind is Kind.END:
            return MatchAll()
        node = self.disjunction()
        token = self.peek()
        if token.kind is Kind.RPAREN:
            raise self._unmatched(token)
        return node

    # disjunction = conjunction { "OR" conjunction } ;
    def disjunction(self) -> Node:
        parts = [self.conjunction()]
        while self.peek().kind is Kind.OR:
            self.operand_after(self.take())
            parts.append(self.conjunction())
        return any_of(parts)

    # conjunction = unary { [ "AND" ] unary } ;
    def conjunction(self) -> Node:
        parts = [self.unary()]
        while True:
            token = self.peek()
            if token.kind is Kind.AND:
                self.operand_after(self.take())
            elif token.kind not in _OPERAND:
                return all_of(parts)
            parts.append(self.unary())

    # unary = ( "-" | "NOT" ) unary | primary ;
    def unary(self) -> Node:
        token = self.peek()
        if token.kind is not Kind.NOT:
            return self.primary()
        self.operand_after(self.take())
        self.enter(token)
        node = Not(self.unary())
        self.depth -= 1
        return node

    # primary = "(" disjunction ")" | field | quoted | word ;
    def primary(self) -> Node:
        token = self.take()
        if token.kind is Kind.LPAREN:
            return self.group(token)
        if token.kind is Kind.FIELD:
            return self.field(token)
        if token.kind is Kind.WORD:
            return self.words(token, token.text)
        if token.kind is Kind.QUOTED:
            if not token.text.strip():
                raise self.fail(token.position, "words between the quotes",
                                f"empty quotes at column {token.position + 1}: "
                                "expected words between them")
            return self.words(token, token.text)
        if token.kind is Kind.RPAREN:
            raise self._unmatched(token)
        if token.kind is Kind.END:  # the callers check first; kept for a clear message
            raise self.fail(token.position, "a term",
                            f"expected a term at column {token.position + 1}, got end of query")
        # OR or AND where a term must come first
        raise self.fail(token.position, f"a term before {token.text}",
                        f"{token.text} at column {token.position + 1} expects a term before it")

    def group(self, opening: Token) -> Node:
        self.enter(opening)
        column = opening.position + 1
        unclosed = self.fail(opening.position, '")"',
                             f'unclosed "(" at column {column}: expected ")"')
        if self.peek().kind is Kind.RPAREN:
            raise self.fail(opening.position, "a term inside the parentheses",
                            f"empty parentheses at column {column}: expected a term inside")
        if self.peek().kind is Kind.END:
            raise unclosed
        node = self.disjunction()
        if self.peek().kind is not Kind.RPAREN:
            raise unclosed
        self.take()
        self.depth -= 1
        return node

    def words(self, token: Token, text: str) -> Node:
        found = words(text)
        if not found:
            raise self.fail(
                token.position, "a word with letters or digits",
                f"{quote(text)} at column {token.position + 1} has no letters or digits "
                "to search for",
            )
        return Term(found[0]) if len(found) == 1 else Phrase(found)

    def field(self, token: Token) -> Node:
        name = token.name.lower()
        if name not in _FIELDS:
            raise self._unknown_field(token)
        expected, read = _FIELDS[name]
        at = token.value_position
        value = token.text.strip()
        if not value:
            got = "empty quotes" if token.quoted else describe(self.text, at)
            hint = " (write the value right after the colon)" if got == "a space" else ""
            raise self.fail(at, expected,
                            f"{name}: expects {expected} at column {at + 1}, got {got}{hint}")
        try:
            return read(value)
        except _BadValue as bad:
            raise self.fail(
                at, bad.expected,
                f"{name}: expects {bad.expected} at column {at + 1}, "
                f"got {quote(token.text)}{bad.hint}",
            ) from None

    def operand_after(self, operator: Token) -> None:
        """Raise unless a term starts right after ``operator`` (OR, AND, NOT, -)."""
        token = self.peek()
        if token.kind in _OPERAND:
            return
        got = "end of query" if token.kind is Kind.END else quote(token.text)
        shown = quote(operator.text) if operator.text == "-" else operator.text
        raise self.fail(
            operator.position, f"a term after {operator.text}",
            f"{shown} at column {operator.position + 1} expects a term after it, got {got}",
        )

    def enter(self, token: Token) -> None:
        self.depth += 1
        if self.depth > MAX_DEPTH:
            raise self.fail(
                token.position, f"at most {MAX_DEPTH} levels of nesting",
                f"query nested too deeply at column {token.position + 1}: at most "
                f"{MAX_DEPTH} levels of parentheses and negations",
            )

    def _unmatched(self, token: Token) -> QuerySyntaxError:
        return self.fail(token.position, 'a term, or "(" before it',
                         f'")" at column {token.position + 1} has no "(" to close')

    def _unknown_field(self, token: Token) -> QuerySyntaxError:
        name = token.name.lower()
        written = quote(token.name + ":")
        column = token.position + 1
        known = ", ".join(f"{field}:" for field in FIELDS)
        suggestion, note = _ALIASES.get(name, (None, ""))
        if suggestion is None:
            close = difflib.get_close_matches(name, FIELDS, n=1, cutoff=0.6)
            suggestion = f'"{close[0]}:"' if close else None
        if suggestion is not None:
            message = (f"unknown field {written} at column {column} "
                       f"(did you mean {suggestion}?{note})")
        else:
            message = f"unknown field {written} at column {column} (the fields are {known})"
            if not token.quoted:
                message += f'; to search for the text, quote it: "{token.name}:{token.text}"'
        return self.fail(token.position, f"one of the fields {known}", message)
