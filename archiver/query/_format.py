"""Canonical text: syntax tree -> the query text that parses back to it.

``parse(format(node)) == node`` for every tree (nodes keep themselves
canonical, see :mod:`archiver.query._nodes`) whose nesting stays within
:data:`archiver.query.MAX_DEPTH`. The text is also a stable, normalised
spelling of a query (lower-case folded words, ``-`` for NOT, juxtaposition
for AND, only the parentheses that are needed, ``@domain`` for domains,
``<id>`` for Message-IDs, exact sizes), fit to be frozen into a hold.
"""

from __future__ import annotations

from archiver.units import format_size

from ._nodes import (
    Account,
    Address,
    AddressKind,
    After,
    And,
    Before,
    Filename,
    HasAttachment,
    Larger,
    MatchAll,
    MessageId,
    Node,
    Not,
    Or,
    Phrase,
    Smaller,
    Subject,
    Term,
)

__all__ = ["format"]


def format(node: Node) -> str:
    """The canonical query text of ``node`` (``""`` for :class:`MatchAll`)."""
    if isinstance(node, MatchAll):
        return ""
    return _disjunction(node)


def _disjunction(node: Node) -> str:
    if isinstance(node, Or):
        return " OR ".join(_conjunction(child) for child in node.nodes)
    return _conjunction(node)


def _conjunction(node: Node) -> str:
    if isinstance(node, And):
        return " ".join(_unary(child) for child in node.nodes)
    return _unary(node)


def _unary(node: Node) -> str:
    if isinstance(node, Not):
        return "-" + _unary(node.node)
    if isinstance(node, And | Or):
        return f"({_disjunction(node)})"
    return _primary(node)


def _primary(node: Node) -> str:
    if isinstance(node, Term):
        return node.word
    if isinstance(node, Phrase):
        return _quoted(" ".join(node.words))
    if isinstance(node, Subject):
        return "subject:" + _value(" ".join(node.words))
    if isinstance(node, Filename):
        return "filename:" + _value(" ".join(node.words))
    if isinstance(node, Address):
        written = "@" + node.value if node.kind is AddressKind.DOMAIN else node.value
        return f"{node.field.value}:{_value(written)}"
    if isinstance(node, Account):
        return "account:" + _value(node.name)
    if isinstance(node, MessageId):
        return "message-id:" + _value(f"<{node.value}>")
    if isinstance(node, After):
        return "after:" + node.day.isoformat()
    if isinstance(node, Before):
        return "before:" + node.day.isoformat()
    if isinstance(node, Larger):
        return "larger:" + format_size(node.size)
    if isinstance(node, Smaller):
        return "smaller:" + format_size(node.size)
    if isinstance(node, HasAttachment):
        return "has:attachment"
    raise TypeError(f"not a query node: {node!r}")


def _value(text: str) -> str:
    """A field value, bare when the tokenizer reads it back whole, else quoted."""
    if any(char.isspace() or char in '()"' for char in text):
        return _quoted(text)
    return text


def _quoted(text: str) -> str:
    return f'"{text}"'
