"""Property tests: any text parses or fails with our syntax error, and the
canonical text round-trips (hypothesis)."""

from __future__ import annotations

from hypothesis import assume, given, settings
from hypothesis import strategies as st

from archiver.errors import QuerySyntaxError
from archiver.query import (
    Account,
    Address,
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
    format,
    parse,
    words,
)
from archiver.units import MAX_SIZE

#: pieces that exercise every rule of the tokenizer and the grammar, and the
#: characters whose folding turns into syntax (full-width quote, parenthesis,
#: minus and colon; the spacing diaeresis that folds to a space)
FRAGMENTS = [
    "a", "b", "Café", "İstanbul", "x@y.org", "@bank.example", "bank.example", " ", "  ", "\t",
    "\u00a0", "(", ")", '"', "-", ":", "OR", "AND", "NOT", "or", "from:", "to:", "cc:",
    "subject:", "account:", "after:", "before:", "has:", "filename:", "larger:", "smaller:",
    "message-id:", "form:", "http://x", "2024-01-31", "2024-02-30", "5MB", "0B", "attachment",
    "<", ">", ".", "&", "＂", "（", "）", "－", "：", "¨", "\u0301", "\u00ad", "e-mail", "10:30",
    "ß", "ﬁ", "\ufe0f", "東京",
]

queries = st.one_of(
    st.text(),
    st.lists(st.one_of(st.sampled_from(FRAGMENTS), st.text(max_size=2)), max_size=25)
    .map("".join),
)


@settings(max_examples=1000)
@given(queries)
def test_any_text_parses_or_raises_our_syntax_error(query):
    try:
        tree = parse(query)
    except QuerySyntaxError as error:
        assert 0 <= error.position <= len(query)
        message = str(error)
        assert f"column {error.column}" in message
        assert message[:1].isalpha() or message[:1] in "\")"
        assert error.expected
        assert error.query == query
    else:
        assert isinstance(tree, Node)


@settings(max_examples=1000)
@given(queries)
def test_the_canonical_text_of_a_query_means_the_same(query):
    try:
        tree = parse(query)
    except QuerySyntaxError:
        assume(False)
        raise
    text = format(tree)
    assert parse(text) == tree
    assert format(parse(text)) == text


word_lists = st.text(min_size=1).map(words).filter(bool)
values = st.text(min_size=1).map(str.strip).filter(lambda v: bool(v) and '"' not in v)
address_texts = st.one_of(
    st.text(),
    st.emails(),
    st.emails().map(lambda e: "@" + e.rpartition("@")[2]),
    st.emails().map(lambda e: e.rpartition("@")[2]),
    st.lists(st.text(min_size=1), min_size=1, max_size=3).map(" ".join),
)


@st.composite
def addresses(draw: st.DrawFn) -> Address:
    field = draw(st.sampled_from(AddressField))
    text = draw(address_texts)
    try:
        return Address.of(field, text)
    except ValueError:
        assume(False)
        raise


leaves = st.one_of(
    word_lists.map(lambda ws: Term(ws[0]) if len(ws) == 1 else Phrase(ws)),
    word_lists.map(Subject),
    word_lists.map(Filename),
    addresses(),
    values.map(Account),
    values.map(MessageId),
    st.dates().map(After),
    st.dates().map(Before),
    st.integers(0, MAX_SIZE).map(Larger),
    st.integers(0, MAX_SIZE).map(Smaller),
    st.just(HasAttachment()),
)

trees = st.one_of(
    st.just(MatchAll()),
    st.recursive(
        leaves,
        lambda children: st.one_of(
            children.map(Not),
            st.lists(children, min_size=2, max_size=4).map(all_of),
            st.lists(children, min_size=2, max_size=4).map(any_of),
        ),
        max_leaves=25,
    ),
)


@settings(max_examples=1000)
@given(trees)
def test_every_tree_round_trips_through_its_canonical_text(tree):
    assert parse(format(tree)) == tree
