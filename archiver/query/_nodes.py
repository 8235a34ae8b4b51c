"""The syntax tree of a search query: immutable values, no behaviour.

Nodes are frozen dataclasses that compare and hash by value, so two queries
that mean the same thing in the same words are equal (``(a b) c`` and
``a b c`` are both ``And((Term("a"), Term("b"), Term("c")))``). Each node
checks its own invariants when built and raises ``ValueError`` when they do
not hold, so every tree, however it was made, has one canonical text
(:func:`archiver.query.format`) that parses back to an equal tree:

* words are folded index words (:func:`archiver.query.words`);
* a :class:`Phrase` has at least two words (one quoted word is a :class:`Term`);
* :class:`And` and :class:`Or` have at least two children and are flat (an
  ``And`` never holds an ``And``, nor an ``Or`` an ``Or``): build them with
  :func:`all_of` and :func:`any_of`, which also drop redundant :class:`MatchAll`;
* :class:`MatchAll` only ever stands alone (the empty query);
* text values contain no ``"`` (the language has no escapes), and no
  leading or trailing white space.

The docstring of each node is the contract for what it matches; the search
and retention code implement it, on every backend alike.
"""

from __future__ import annotations

import enum
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import date, datetime

from archiver.units import MAX_SIZE

from ._text import is_word, words

__all__ = [
    "ADDRESS_EXPECTED",
    "Account",
    "Address",
    "AddressField",
    "AddressKind",
    "After",
    "And",
    "Before",
    "Filename",
    "HasAttachment",
    "Larger",
    "MatchAll",
    "MessageId",
    "Node",
    "Not",
    "Or",
    "Phrase",
    "Smaller",
    "Subject",
    "Term",
    "all_of",
    "any_of",
    "classify_address",
]


class Node:
    """Base of every node of the tree."""

    __slots__ = ()


@dataclass(frozen=True, slots=True)
class MatchAll(Node):
    """Every message: the empty query (or only white space)."""


@dataclass(frozen=True, slots=True)
class Term(Node):
    """A free word: the subject, body text, an attachment's file name or an
    address's display name contains ``word`` (folded, one index word)."""

    word: str

    def __post_init__(self) -> None:
        if not is_word(self.word):
            raise ValueError(f"Term needs one folded index word, got {self.word!r}")


@dataclass(frozen=True, slots=True)
class Phrase(Node):
    """A quoted phrase: one of the texts free words search contains ``words``
    one after the other (folded index words, at least two)."""

    words: tuple[str, ...]

    def __post_init__(self) -> None:
        _check_words("Phrase", self.words, minimum=2)


@dataclass(frozen=True, slots=True)
class Subject(Node):
    """``subject:``: the Subject contains ``words`` one after the other."""

    words: tuple[str, ...]

    def __post_init__(self) -> None:
        _check_words("Subject", self.words, minimum=1)


@dataclass(frozen=True, slots=True)
class Filename(Node):
    """``filename:``: an attachment's file name contains ``words`` one after the
    other (``filename:pdf`` finds ``Report.PDF``; ``filename:report.pdf``
    finds ``report.pdf`` and ``Q3 report.pdf``)."""

    words: tuple[str, ...]

    def __post_init__(self) -> None:
        _check_words("Filename", self.words, minimum=1)


class AddressField(enum.StrEnum):
    """Which addresses an :class:`Address` looks at."""

    FROM = "from"  #: From
    TO = "to"  #: any recipient: To, Cc, Bcc, Delivered-To
    CC = "cc"  #: Cc


class AddressKind(enum.StrEnum):
    """How an :class:`Address` value matches (see :func:`classify_address`)."""

    ADDRESS = "address"  #: the whole address, ``alice@example.com``
    DOMAIN = "domain"  #: the domain, ``example.com`` (written ``example.com`` or ``@example.com``)
    NAME = "name"  #: words, ``alice`` or ``"Alice Smith"``


@dataclass(frozen=True, slots=True)
class Address(Node):
    """``from:``, ``to:``, ``cc:``: one of the ``field``'s addresses matches ``value``.

    By ``kind``:

    * ``ADDRESS``: the address equals ``value`` (casefolded), ignoring case;
    * ``DOMAIN``: the part after the address's last ``@`` equals ``value``
      (casefolded, without ``@``), ignoring case; subdomains do not match;
    * ``NAME``: the display name, or the address itself, contains the words
      of ``value`` one after the other (``value`` is the folded index words
      joined by single spaces), so ``from:alice`` finds both
      ``Alice Smith <as@example.com>`` and ``alice@example.com``.

    Build one from what a user wrote with :meth:`of`.
    """

    field: AddressField
    kind: AddressKind
    value: str

    def __post_init__(self) -> None:
        if not isinstance(self.field, AddressField) or not isinstance(self.kind, AddressKind):
            raise ValueError("Address needs an AddressField and an AddressKind")
        if not isinstance(self.value, str) or '"' in self.value:
            raise ValueError(f"Address value must be a str without '\"', got {self.value!r}")
        written = f"@{self.value}" if self.kind is AddressKind.DOMAIN else self.value
        if classify_address(written) != (self.kind, self.value):
            raise ValueError(
                f"Address({self.kind.name}, {self.value!r}) is not canonical: "
                "build it with Address.of(field, text)"
            )

    @classmethod
    def of(cls, field: AddressField, text: str) -> Address:
        """The node for ``field:text`` as a user wrote it (``@bank.example``,
        ``Alice@Example.COM``, ``Alice Smith``). Raises ``ValueError``."""
        kind, value = classify_address(text)
        return cls(field, kind, value)


def classify_address(text: str) -> tuple[AddressKind, str]:
    """How ``from:``/``to:``/``cc:`` read the value ``text``: (kind, canonical value).

    Surrounding white space is ignored. Then, in order:

    1. ``@`` first: a domain, the rest (``@bank.example``);
    2. contains ``@``: a whole address (``alice@bank.example``), no spaces,
       text on both sides of the last ``@``;
    3. no spaces and a ``.``: a domain (``bank.example``; so ``j.smith`` is a
       domain too: search a dotted name with a free word);
    4. otherwise a name, matched by its words (``alice``, ``Alice Smith``).

    A value with ``"`` in it is refused (the language has no escapes).

    Addresses and domains are casefolded, names folded into index words.
    Raises ``ValueError`` saying what an address value looks like.
    """
    value = text.strip()
    blank = any(char.isspace() for char in value)
    if '"' in value:
        pass  # the language cannot write it (no escapes), so no node may hold it
    elif value.startswith("@"):
        domain = value[1:]
        if domain and "@" not in domain and not blank and _labels_ok(domain):
            return AddressKind.DOMAIN, domain.casefold()
    elif "@" in value:
        local, _, domain = value.rpartition("@")
        if local and domain and not blank:
            return AddressKind.ADDRESS, value.casefold()
    elif "." in value and not blank:
        if _labels_ok(value):
            return AddressKind.DOMAIN, value.casefold()
    else:
        found = words(value)
        if found:
            return AddressKind.NAME, " ".join(found)
    raise ValueError(ADDRESS_EXPECTED)


#: what a from:/to:/cc: value must look like
ADDRESS_EXPECTED = "an address (alice@example.com), a domain (example.com or @example.com) or a name"


def _labels_ok(domain: str) -> bool:
    return all(domain.split("."))


@dataclass(frozen=True, slots=True)
class Account(Node):
    """``account:``: the message was archived from (delivered to) the account
    named exactly ``name`` (``[[accounts]] name``; case matters)."""

    name: str

    def __post_init__(self) -> None:
        _check_value("Account", self.name)


@dataclass(frozen=True, slots=True)
class MessageId(Node):
    """``message-id:``: the Message-ID header, without its angle brackets,
    equals ``value`` exactly (written with or without the brackets)."""

    value: str

    def __post_init__(self) -> None:
        _check_value("MessageId", self.value)


@dataclass(frozen=True, slots=True)
class After(Node):
    """``after:``: the message's date falls on ``day`` or later, days being
    calendar days in the archive's time zone (``[archive] timezone``). The
    date is the Date header, or the archive time when it is missing or
    unusable. See :func:`archiver.query.day_bounds`."""

    day: date

    def __post_init__(self) -> None:
        _check_day("After", self.day)


@dataclass(frozen=True, slots=True)
class Before(Node):
    """``before:``: the message's date falls strictly before ``day`` (the
    same date and days as :class:`After`); ``before:`` the day after
    ``after:`` selects that one day."""

    day: date

    def __post_init__(self) -> None:
        _check_day("Before", self.day)


@dataclass(frozen=True, slots=True)
class Larger(Node):
    """``larger:``: the raw message is strictly larger than ``size`` bytes."""

    size: int

    def __post_init__(self) -> None:
        _check_size("Larger", self.size)


@dataclass(frozen=True, slots=True)
class Smaller(Node):
    """``smaller:``: the raw message is strictly smaller than ``size`` bytes."""

    size: int

    def __post_init__(self) -> None:
        _check_size("Smaller", self.size)


@dataclass(frozen=True, slots=True)
class HasAttachment(Node):
    """``has:attachment``: the message has at least one attachment."""


@dataclass(frozen=True, slots=True)
class Not(Node):
    """``-x`` (or ``NOT x``): ``node`` does not match."""

    node: Node

    def __post_init__(self) -> None:
        _check_child("Not", self.node)


@dataclass(frozen=True, slots=True)
class And(Node):
    """Juxtaposition (or ``AND``): every one of ``nodes`` matches.

    Built flat: an ``And`` given among ``nodes`` is replaced by its children.
    """

    nodes: tuple[Node, ...]

    def __post_init__(self) -> None:
        object.__setattr__(self, "nodes", _flatten("And", And, self.nodes))


@dataclass(frozen=True, slots=True)
class Or(Node):
    """``OR``: at least one of ``nodes`` matches.

    Built flat: an ``Or`` given among ``nodes`` is replaced by its children.
    """

    nodes: tuple[Node, ...]

    def __post_init__(self) -> None:
        object.__setattr__(self, "nodes", _flatten("Or", Or, self.nodes))


def all_of(nodes: Iterable[Node]) -> Node:
    """The node matching what every one of ``nodes`` matches.

    :class:`MatchAll` among them changes nothing and is dropped; none left
    is :class:`MatchAll`, one left is itself, more are an :class:`And`.
    """
    kept = tuple(node for node in nodes if not isinstance(node, MatchAll))
    if not kept:
        return MatchAll()
    return kept[0] if len(kept) == 1 else And(kept)


def any_of(nodes: Iterable[Node]) -> Node:
    """The node matching what at least one of ``nodes`` matches.

    Any :class:`MatchAll` among them makes the whole :class:`MatchAll`; one
    node is itself, more are an :class:`Or`. Raises ``ValueError`` when
    ``nodes`` is empty (a query cannot say "nothing").
    """
    given = tuple(nodes)
    if not given:
        raise ValueError("any_of() needs at least one node")
    if any(isinstance(node, MatchAll) for node in given):
        return MatchAll()
    return given[0] if len(given) == 1 else Or(given)


def _check_words(kind: str, found: object, *, minimum: int) -> None:
    if (not isinstance(found, tuple) or len(found) < minimum
            or not all(is_word(word) for word in found)):
        raise ValueError(
            f"{kind} needs a tuple of at least {minimum} folded index word(s), got {found!r}"
        )


def _check_value(kind: str, value: object) -> None:
    if (not isinstance(value, str) or not value or value != value.strip()
            or '"' in value):
        raise ValueError(
            f"{kind} needs a non-empty str without '\"' or surrounding white space, "
            f"got {value!r}"
        )


def _check_day(kind: str, day: object) -> None:
    # a datetime is a date too, but a day is not an instant: refuse it
    if not isinstance(day, date) or isinstance(day, datetime):
        raise ValueError(f"{kind} needs a datetime.date, got {day!r}")


def _check_size(kind: str, size: object) -> None:
    if isinstance(size, bool) or not isinstance(size, int) or not 0 <= size <= MAX_SIZE:
        raise ValueError(f"{kind} needs a whole number of bytes 0-{MAX_SIZE}, got {size!r}")


def _check_child(kind: str, node: object) -> None:
    if not isinstance(node, Node):
        raise ValueError(f"{kind} needs query nodes, got {node!r}")
    if isinstance(node, MatchAll):
        raise ValueError(f"{kind} cannot hold MatchAll: use all_of()/any_of()")


def _flatten(kind: str, cls: type[Node], nodes: object) -> tuple[Node, ...]:
    if not isinstance(nodes, tuple):
        raise ValueError(f"{kind} needs a tuple of nodes, got {nodes!r}")
    flat: list[Node] = []
    for node in nodes:
        _check_child(kind, node)
        flat.extend(node.nodes if isinstance(node, And | Or) and type(node) is cls else (node,))
    if len(flat) < 2:
        raise ValueError(f"{kind} needs at least two nodes: use all_of()/any_of()")
    return tuple(flat)
