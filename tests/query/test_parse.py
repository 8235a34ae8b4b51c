"""parse(): each construct of the language, precedence, and every error message."""

from __future__ import annotations

from datetime import date

import pytest

from archiver.errors import QuerySyntaxError, UsageError
from archiver.query import (
    FIELDS,
    MAX_DEPTH,
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
    Not,
    Or,
    Phrase,
    Smaller,
    Subject,
    Term,
    parse,
)

a, b, c, d = (Term(x) for x in "abcd")
FROM, TO, CC = AddressField.FROM, AddressField.TO, AddressField.CC
ADDRESS, DOMAIN, NAME = AddressKind.ADDRESS, AddressKind.DOMAIN, AddressKind.NAME


@pytest.mark.parametrize("query", ["", " ", "\t\n", "\u00a0\u2003"])
def test_an_empty_query_matches_everything(query):
    assert parse(query) == MatchAll()


@pytest.mark.parametrize(
    ("query", "tree"),
    [
        ("a", a),
        ("Café", Term("cafe")),
        ("a b", And((a, b))),
        ("  a\tb  ", And((a, b))),
        ("a AND b", And((a, b))),
        ('"a"', a),  # one quoted word is that word
        ('"Quarterly  Report"', Phrase(("quarterly", "report"))),
        ("e-mail", Phrase(("e", "mail"))),  # a word of several index words is a phrase
        ('"e-mail address"', Phrase(("e", "mail", "address"))),
        ("10:30", Phrase(("10", "30"))),  # no field name before the colon
        ('a"b c"d', And((a, Phrase(("b", "c")), d))),  # quotes end bare words
        ("a(b)", And((a, b))),
    ],
)
def test_words_and_phrases(query, tree):
    assert parse(query) == tree


@pytest.mark.parametrize(
    ("query", "tree"),
    [
        ("a OR b", Or((a, b))),
        ("a OR b OR c", Or((a, b, c))),
        ("a b OR c", Or((And((a, b)), c))),  # AND binds tighter than OR
        ("a OR b c", Or((a, And((b, c))))),
        ("a -b c OR d", Or((And((a, Not(b), c)), d))),
        ("a AND b OR c AND d", Or((And((a, b)), And((c, d))))),
        ("(a OR b) c", And((Or((a, b)), c))),
        ("a (b OR c)", And((a, Or((b, c))))),
        ("(a b) c", And((a, b, c))),  # flat: the same tree as "a b c"
        ("a OR (b OR c)", Or((a, b, c))),
        ("((a))", a),
        ("-a", Not(a)),
        ("NOT a", Not(a)),
        ("NOT a b", And((Not(a), b))),  # NOT binds tightest
        ("-a OR b", Or((Not(a), b))),
        ("--a", Not(Not(a))),
        ("-(a OR b)", Not(Or((a, b)))),
        ("-(a b)", Not(And((a, b)))),
        ('-"a b"', Not(Phrase(("a", "b")))),
        ("-from:x@y", Not(Address(FROM, ADDRESS, "x@y"))),
        ("a-b", Phrase(("a", "b"))),  # a dash inside a word does not negate
        ("a -", None),
    ],
)
def test_operators_and_precedence(query, tree):
    if tree is None:
        with pytest.raises(QuerySyntaxError):
            parse(query)
    else:
        assert parse(query) == tree


@pytest.mark.parametrize(
    ("query", "tree"),
    [
        ("a or b", And((a, Term("or"), b))),  # only capital OR is the operator
        ("a Or b", And((a, Term("or"), b))),
        ('a "OR" b', And((a, Term("or"), b))),
        ("a -OR", And((a, Not(Term("or"))))),
        ("not a", And((Term("not"), a))),
        ("and", Term("and")),
    ],
)
def test_operators_only_in_capitals_and_unquoted(query, tree):
    assert parse(query) == tree


@pytest.mark.parametrize(
    ("query", "tree"),
    [
        ("from:alice@example.com", Address(FROM, ADDRESS, "alice@example.com")),
        ("from:Alice@Example.COM", Address(FROM, ADDRESS, "alice@example.com")),
        ("from:@bank.example", Address(FROM, DOMAIN, "bank.example")),
        ("from:bank.example", Address(FROM, DOMAIN, "bank.example")),
        ("from:BANK.example", Address(FROM, DOMAIN, "bank.example")),
        ("from:@localhost", Address(FROM, DOMAIN, "localhost")),
        ("from:alice", Address(FROM, NAME, "alice")),
        ('from:"Alice Smith"', Address(FROM, NAME, "alice smith")),
        ('from:"J. Müller"', Address(FROM, NAME, "j muller")),
        ('from:" alice@x.org "', Address(FROM, ADDRESS, "alice@x.org")),
        ("FROM:alice", Address(FROM, NAME, "alice")),  # field names in any case
        ("to:bob@x.org", Address(TO, ADDRESS, "bob@x.org")),
        ("to:@x.org", Address(TO, DOMAIN, "x.org")),
        ("cc:carol", Address(CC, NAME, "carol")),
        ("subject:report", Subject(("report",))),
        ('subject:"Quarterly Report"', Subject(("quarterly", "report"))),
        ('subject:"re: Invoice"', Subject(("re", "invoice"))),
        ("subject:re:", Subject(("re",))),
        ("filename:report.pdf", Filename(("report", "pdf"))),
        ('filename:"Q3 report (final).PDF"', Filename(("q3", "report", "final", "pdf"))),
        ("account:sales", Account("sales")),
        ("account:Sales.EU", Account("Sales.EU")),  # account names are exact
        ("after:2024-01-31", After(date(2024, 1, 31))),
        ('after:"2024-01-31"', After(date(2024, 1, 31))),
        ("before:2024-02-29", Before(date(2024, 2, 29))),
        ("larger:5MB", Larger(5 * 1024 * 1024)),
        ("larger:5mb", Larger(5 * 1024 * 1024)),
        ("smaller:100KB", Smaller(100 * 1024)),
        ("smaller:0B", Smaller(0)),
        ("has:attachment", HasAttachment()),
        ("has:Attachment", HasAttachment()),
        ("message-id:<abc.123@mail.example>", MessageId("abc.123@mail.example")),
        ("message-id:abc.123@mail.example", MessageId("abc.123@mail.example")),
        ("Message-ID:<AbC@x>", MessageId("AbC@x")),  # ids are exact
        ('message-id:"<a b@x>"', MessageId("a b@x")),
        ("account:a:b", Account("a:b")),  # the value is the rest of the word
    ],
)
def test_each_field(query, tree):
    assert parse(query) == tree


def test_every_field_is_documented_and_parses():
    examples = {
        "from": "x@y", "to": "x@y", "cc": "x@y", "subject": "x", "account": "x",
        "after": "2024-01-01", "before": "2024-01-01", "has": "attachment",
        "filename": "x", "larger": "1B", "smaller": "1B", "message-id": "x@y",
    }
    assert set(FIELDS) == set(examples)
    for name, value in examples.items():
        parse(f"{name}:{value}")


def test_a_realistic_query():
    tree = parse('from:@bank.example after:2024-01-01 before:2024-04-01 '
                 '(subject:"quarterly report" OR filename:q1.xlsx) -has:attachment')
    assert tree == And((
        Address(FROM, DOMAIN, "bank.example"),
        After(date(2024, 1, 1)),
        Before(date(2024, 4, 1)),
        Or((Subject(("quarterly", "report")), Filename(("q1", "xlsx")))),
        Not(HasAttachment()),
    ))


ERRORS = [
    # (query, column, expected, message)
    ("after:yesterday", 7, "YYYY-MM-DD",
     'after: expects YYYY-MM-DD at column 7, got "yesterday"'),
    ("a before:2024-1-1", 10, "YYYY-MM-DD",
     'before: expects YYYY-MM-DD at column 10, got "2024-1-1"'),
    ("after:2024-02-30", 7, "YYYY-MM-DD",
     'after: expects YYYY-MM-DD at column 7, got "2024-02-30" (no such day)'),
    ("after:0000-01-01", 7, "YYYY-MM-DD",
     'after: expects YYYY-MM-DD at column 7, got "0000-01-01" (no such day)'),
    ('after:"next week"', 7, "YYYY-MM-DD",
     'after: expects YYYY-MM-DD at column 7, got "next week"'),
    ("larger:5", 8, 'a whole number and a unit (B, KB, MB, GB, TB), like "50MB"',
     'larger: expects a whole number and a unit (B, KB, MB, GB, TB), like "50MB" '
     'at column 8, got "5"'),
    ("smaller:1.5MB", 9, 'a whole number and a unit (B, KB, MB, GB, TB), like "50MB"',
     'smaller: expects a whole number and a unit (B, KB, MB, GB, TB), like "50MB" '
     'at column 9, got "1.5MB"'),
    ("larger:99999999TB", 8, 'a whole number and a unit (B, KB, MB, GB, TB), like "50MB"',
     'larger: expects a whole number and a unit (B, KB, MB, GB, TB), like "50MB" '
     'at column 8, got "99999999TB" (too large)'),
    ("larger:", 8, 'a whole number and a unit (B, KB, MB, GB, TB), like "50MB"',
     'larger: expects a whole number and a unit (B, KB, MB, GB, TB), like "50MB" '
     "at column 8, got end of query"),
    ("has:pdf", 5, '"attachment"', 'has: expects "attachment" at column 5, got "pdf"'),
    ("has:attachments", 5, '"attachment"',
     'has: expects "attachment" at column 5, got "attachments"'),
    ("from: alice", 6,
     "an address (alice@example.com), a domain (example.com or @example.com) or a name",
     "from: expects an address (alice@example.com), a domain (example.com or @example.com) "
     "or a name at column 6, got a space (write the value right after the colon)"),
    ("from:alice@", 6,
     "an address (alice@example.com), a domain (example.com or @example.com) or a name",
     "from: expects an address (alice@example.com), a domain (example.com or @example.com) "
     'or a name at column 6, got "alice@"'),
    ('to:"Alice <alice@x.org>"', 4,
     "an address (alice@example.com), a domain (example.com or @example.com) or a name",
     "to: expects an address (alice@example.com), a domain (example.com or @example.com) "
     'or a name at column 4, got "Alice <alice@x.org>"'),
    ("cc:bank..example", 4,
     "an address (alice@example.com), a domain (example.com or @example.com) or a name",
     "cc: expects an address (alice@example.com), a domain (example.com or @example.com) "
     'or a name at column 4, got "bank..example"'),
    ("from:(a b)", 6,
     "an address (alice@example.com), a domain (example.com or @example.com) or a name",
     "from: expects an address (alice@example.com), a domain (example.com or @example.com) "
     'or a name at column 6, got "("'),
    ('subject:""', 9, 'a word or a "quoted phrase"',
     'subject: expects a word or a "quoted phrase" at column 9, got empty quotes'),
    ("subject:...", 9, 'a word or a "quoted phrase"',
     'subject: expects a word or a "quoted phrase" at column 9, got "..." '
     "(it has no letters or digits)"),
    ("message-id:<>", 12, "a Message-ID like <id@example.com>",
     'message-id: expects a Message-ID like <id@example.com> at column 12, got "<>"'),
    ("account:", 9, "an account name", "account: expects an account name at column 9, "
     "got end of query"),
    ("form:alice", 1, None, 'unknown field "form:" at column 1 (did you mean "from:"?)'),
    ("a subjetc:x", 3, None,
     'unknown field "subjetc:" at column 3 (did you mean "subject:"?)'),
    ("bcc:x@y", 1, None, 'unknown field "bcc:" at column 1 (did you mean "to:"? '
     "It covers To, Cc, Bcc and Delivered-To)"),
    ("date:2024-01-01", 1, None,
     'unknown field "date:" at column 1 (did you mean "after:" or "before:"?)'),
    ("http://example.com", 1, None,
     'unknown field "http:" at column 1 (the fields are from:, to:, cc:, subject:, '
     "account:, after:, before:, has:, filename:, larger:, smaller:, message-id:); "
     'to search for the text, quote it: "http://example.com"'),
    ("-zzz:1", 2, None,
     'unknown field "zzz:" at column 2 (the fields are from:, to:, cc:, subject:, '
     "account:, after:, before:, has:, filename:, larger:, smaller:, message-id:); "
     'to search for the text, quote it: "zzz:1"'),
    ("a OR", 3, "a term after OR", "OR at column 3 expects a term after it, got end of query"),
    ("OR a", 1, "a term before OR", "OR at column 1 expects a term before it"),
    ("a OR OR b", 3, "a term after OR", 'OR at column 3 expects a term after it, got "OR"'),
    ("(a OR) b", 4, "a term after OR", 'OR at column 4 expects a term after it, got ")"'),
    ("a (OR b)", 4, "a term before OR", "OR at column 4 expects a term before it"),
    ("a AND", 3, "a term after AND", "AND at column 3 expects a term after it, got end of query"),
    ("AND a", 1, "a term before AND", "AND at column 1 expects a term before it"),
    ("a NOT", 3, "a term after NOT", "NOT at column 3 expects a term after it, got end of query"),
    ("NOT OR a", 1, "a term after NOT", 'NOT at column 1 expects a term after it, got "OR"'),
    ("a - b", 3, "a term right after it",
     '"-" at column 3 expects a term right after it (like -word), got a space'),
    ("a -", 3, "a term right after it",
     '"-" at column 3 expects a term right after it (like -word), got end of query'),
    ("(a -)", 4, "a term right after it",
     '"-" at column 4 expects a term right after it (like -word), got ")"'),
    ("(a b", 1, '")"', 'unclosed "(" at column 1: expected ")"'),
    ("(", 1, '")"', 'unclosed "(" at column 1: expected ")"'),
    ("a -(", 4, '")"', 'unclosed "(" at column 4: expected ")"'),
    ("a ((b) c", 3, '")"', 'unclosed "(" at column 3: expected ")"'),
    ("a b)", 4, 'a term, or "(" before it', '")" at column 4 has no "(" to close'),
    (")", 1, 'a term, or "(" before it', '")" at column 1 has no "(" to close'),
    ("a ()", 3, "a term inside the parentheses",
     "empty parentheses at column 3: expected a term inside"),
    ('a "b c', 3, 'a closing "', 'unclosed quote at column 3: expected a closing "'),
    ('subject:"b c', 9, 'a closing "', 'unclosed quote at column 9: expected a closing "'),
    ('a ""', 3, "words between the quotes", "empty quotes at column 3: expected words between them"),
    ('" "', 1, "words between the quotes", "empty quotes at column 1: expected words between them"),
    ("R & D", 3, "a word with letters or digits",
     '"&" at column 3 has no letters or digits to search for'),
    ('"..."', 1, "a word with letters or digits",
     '"..." at column 1 has no letters or digits to search for'),
    ("(" * (MAX_DEPTH + 1) + "a" + ")" * (MAX_DEPTH + 1), MAX_DEPTH + 1,
     f"at most {MAX_DEPTH} levels of nesting",
     f"query nested too deeply at column {MAX_DEPTH + 1}: at most {MAX_DEPTH} levels "
     "of parentheses and negations"),
    ("-" * (MAX_DEPTH + 1) + "a", MAX_DEPTH + 1, f"at most {MAX_DEPTH} levels of nesting",
     f"query nested too deeply at column {MAX_DEPTH + 1}: at most {MAX_DEPTH} levels "
     "of parentheses and negations"),
]


@pytest.mark.parametrize(("query", "column", "expected", "message"), ERRORS,
                         ids=[e[0][:30] for e in ERRORS])
def test_syntax_errors_name_the_column_and_what_was_expected(query, column, expected, message):
    with pytest.raises(QuerySyntaxError) as caught:
        parse(query)
    error = caught.value
    assert str(error) == message
    assert error.column == column
    assert error.position == column - 1
    assert error.query == query
    if expected is not None:
        assert error.expected == expected
    assert f"column {column}" in message


def test_a_syntax_error_is_bad_usage():
    with pytest.raises(UsageError) as caught:
        parse("after:yesterday")
    assert caught.value.exit_code == 2


def test_nesting_up_to_the_limit_is_fine():
    assert parse("(" * MAX_DEPTH + "a" + ")" * MAX_DEPTH) == a
    assert parse("-" * MAX_DEPTH + "a") is not None


def test_a_long_flat_query_is_fine():
    assert len(parse(" ".join(["word"] * 20_000) + " OR x").nodes[0].nodes) == 20_000


def test_only_strings_are_queries():
    with pytest.raises(TypeError):
        parse(b"a")  # type: ignore[arg-type]
