"""The syntax tree keeps itself canonical: invariants, flattening, the canonical text."""

from __future__ import annotations

import dataclasses
from datetime import date, datetime

import pytest

from archiver.query import (
    Account,
    Address,
    AddressField,
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
    all_of,
    any_of,
    classify_address,
    format,
    parse,
)

a, b, c = Term("a"), Term("b"), Term("c")


@pytest.mark.parametrize(
    "build",
    [
        lambda: Term("Café"),  # not folded
        lambda: Term("a b"),
        lambda: Term("e-mail"),
        lambda: Term(""),
        lambda: Phrase(("a",)),  # one word is a Term
        lambda: Phrase(["a", "b"]),  # a tuple, not a list
        lambda: Subject(()),
        lambda: Filename(("Report",)),
        lambda: And((a,)),
        lambda: And((a, MatchAll())),
        lambda: Or((MatchAll(), a)),
        lambda: Not(MatchAll()),
        lambda: Not("a"),
        lambda: Account(""),
        lambda: Account(" sales"),
        lambda: Account('sa"les'),
        lambda: MessageId('a"b@x'),
        lambda: After(datetime(2024, 1, 1)),  # an instant is not a day
        lambda: Before("2024-01-01"),
        lambda: Larger(-1),
        lambda: Larger(True),
        lambda: Smaller(2**63),
        lambda: Address(AddressField.FROM, AddressKind.ADDRESS, "Alice@X.org"),  # not casefolded
        lambda: Address(AddressField.FROM, AddressKind.DOMAIN, "@x.org"),
        lambda: Address(AddressField.FROM, AddressKind.NAME, "x.org"),  # that is a domain
        lambda: Address(AddressField.FROM, AddressKind.NAME, "Alice"),
        lambda: Address("from", AddressKind.NAME, "alice"),
    ],
)
def test_a_node_refuses_what_has_no_canonical_text(build):
    with pytest.raises(ValueError):
        build()


def test_and_and_or_are_built_flat():
    assert And((a, And((b, c)))) == And((a, b, c))
    assert Or((Or((a, b)), c)) == Or((a, b, c))
    assert And((a, Or((b, c)))).nodes == (a, Or((b, c)))


def test_all_of_and_any_of():
    assert all_of([]) == MatchAll()
    assert all_of([MatchAll(), a]) == a
    assert all_of([a, b]) == And((a, b))
    assert all_of(iter([a, And((b, c))])) == And((a, b, c))
    assert any_of([a]) == a
    assert any_of([a, MatchAll()]) == MatchAll()
    assert any_of([a, b]) == Or((a, b))
    with pytest.raises(ValueError):
        any_of([])


def test_nodes_are_immutable_values():
    tree = parse("a -b (c OR from:x@y)")
    assert tree == parse("a  -b ( c OR from:X@Y )")
    assert hash(tree) == hash(parse("a -b (c OR from:x@y)"))
    assert len({tree, parse("a -b (c OR from:x@y)")}) == 1
    with pytest.raises(dataclasses.FrozenInstanceError):
        a.word = "b"  # type: ignore[misc]


@pytest.mark.parametrize(
    ("text", "kind", "value"),
    [
        ("alice@example.com", AddressKind.ADDRESS, "alice@example.com"),
        ("Alice.Smith+tag@Example.COM", AddressKind.ADDRESS, "alice.smith+tag@example.com"),
        ("a@b@x.org", AddressKind.ADDRESS, "a@b@x.org"),
        ("@bank.example", AddressKind.DOMAIN, "bank.example"),
        ("bank.example", AddressKind.DOMAIN, "bank.example"),
        ("Bücher.Example", AddressKind.DOMAIN, "bücher.example"),
        ("j.smith", AddressKind.DOMAIN, "j.smith"),  # documented: a dotted word is a domain
        ("alice", AddressKind.NAME, "alice"),
        ("J. Smith", AddressKind.NAME, "j smith"),
        ("  Zoë  ", AddressKind.NAME, "zoe"),
    ],
)
def test_classify_address(text, kind, value):
    assert classify_address(text) == (kind, value)
    assert Address.of(AddressField.TO, text) == Address(AddressField.TO, kind, value)


@pytest.mark.parametrize("text", ["", "@", "alice@", "@x@y", "a b@c", ".x", "x..y", "...", "&",
                                  '"a b"@x.org'])
def test_classify_address_refuses(text):
    with pytest.raises(ValueError, match="an address"):
        classify_address(text)


@pytest.mark.parametrize(
    ("tree", "text"),
    [
        (MatchAll(), ""),
        (And((a, Not(b))), "a -b"),
        (Or((And((a, b)), c)), "a b OR c"),
        (And((Or((a, b)), c)), "(a OR b) c"),
        (Not(Or((a, b))), "-(a OR b)"),
        (Not(Not(a)), "--a"),
        (Phrase(("a", "b")), '"a b"'),
        (Subject(("re",)), "subject:re"),
        (Subject(("re", "invoice")), 'subject:"re invoice"'),
        (Filename(("report", "pdf")), 'filename:"report pdf"'),
        (Address(AddressField.FROM, AddressKind.DOMAIN, "x.org"), "from:@x.org"),
        (Address(AddressField.TO, AddressKind.ADDRESS, "a(b)@x.org"), 'to:"a(b)@x.org"'),
        (Address(AddressField.CC, AddressKind.NAME, "alice smith"), 'cc:"alice smith"'),
        (Account("sales"), "account:sales"),
        (MessageId("a@b"), "message-id:<a@b>"),
        (MessageId("<a@b>"), "message-id:<<a@b>>"),
        (After(date(2024, 1, 1)), "after:2024-01-01"),
        (Before(date(1, 1, 1)), "before:0001-01-01"),
        (Larger(5 * 1024 * 1024), "larger:5MB"),
        (Smaller(1536), "smaller:1536B"),
        (HasAttachment(), "has:attachment"),
    ],
)
def test_canonical_text(tree, text):
    assert format(tree) == text
    assert parse(text) == tree


def test_format_refuses_what_is_not_a_node():
    class Stray(Node):
        __slots__ = ()

    with pytest.raises(TypeError):
        format(Stray())
