"""The search language (DESIGN.md §4), shared by the CLI, the web UI, holds and
retention rules: text -> syntax tree -> canonical text.

Pure: it imports only the standard library, :mod:`archiver.errors` and
:mod:`archiver.units`; turning a tree into SQL is the search package's job.

``parse('from:@bank.example -subject:"Re: invoice" (urgent OR asap)')`` is ::

    And((Address(AddressField.FROM, AddressKind.DOMAIN, "bank.example"),
         Not(Subject(("re", "invoice"))),
         Or((Term("urgent"), Term("asap")))))

and ``format`` of that tree is ``from:@bank.example -subject:"re invoice" (urgent OR asap)``.

Grammar (EBNF; tokens as in :mod:`archiver.query._lexer`: white space
separates them and is otherwise ignored, ``(``, ``)`` and ``"`` always end a
bare word)::

    query       = [ disjunction ] ;              (* nothing: every message *)
    disjunction = conjunction , { "OR" , conjunction } ;
    conjunction = unary , { [ "AND" ] , unary } ;   (* juxtaposition is AND *)
    unary       = ( "-" | "NOT" ) , unary | primary ;
    primary     = "(" , disjunction , ")" | field | quoted | word ;
    field       = name , ":" , ( bare | quoted ) ;   (* no space around ":" *)
    name        = letter , { letter | digit | "_" | "-" } ;   (* ASCII, any case *)
    quoted      = '"' , { any character but '"' } , '"' ;     (* no escapes *)
    word        = bare ;                         (* but not a field, OR, AND, NOT *)
    bare        = char , { char } ;
    char        = any character but white space, "(", ")", '"' ;

``-`` negates what touches it (``-word``, ``-"a phrase"``, ``-from:x``,
``-(a OR b)``); a ``-`` followed by a space is an error. Precedence, from
the tightest: NOT, AND, OR, so ``a -b c OR d`` is ``(a AND (NOT b) AND c) OR d``.
Operators are the capitalised words ``OR``, ``AND``, ``NOT``; written in any
other case, or quoted, they are words (``or`` is a word).

Free words and phrases are folded into index words (:func:`words`,
:func:`normalize_text`): ``Café`` is ``cafe``, ``e-mail`` is the phrase
``e mail``, and a quoted single word is just that word. A word with no
letters or digits (``&``) is an error rather than something that silently
matches everything.

Fields (name: value -> node):

=================  =============================================  ======================
``from:``          address, domain (``x.org``, ``@x.org``), name  :class:`Address`
``to:``            the same, on any of To, Cc, Bcc, Delivered-To  :class:`Address`
``cc:``            the same, on Cc                                :class:`Address`
``subject:``       a word or a quoted phrase                      :class:`Subject`
``filename:``      a file name or words of one                    :class:`Filename`
``account:``       an account name, exactly                       :class:`Account`
``message-id:``    a Message-ID, ``<`` ``>`` optional             :class:`MessageId`
``after:``         ``YYYY-MM-DD``: on or after that day           :class:`After`
``before:``        ``YYYY-MM-DD``: strictly before that day       :class:`Before`
``larger:``        a size (``5MB``, binary units): strictly more  :class:`Larger`
``smaller:``       a size: strictly less                          :class:`Smaller`
``has:``           ``attachment``                                 :class:`HasAttachment`
=================  =============================================  ======================

An unknown field (``form:x``, and also ``http://x``) is an error with a
suggestion; to search for text with a colon, quote it (``"http://x"``).

Errors are :class:`archiver.errors.QuerySyntaxError` (a ``UsageError``,
exit 2) with the column and what was expected, for instance
``after: expects YYYY-MM-DD at column 7, got "yesterday"``.
"""

from __future__ import annotations

from ._days import day_bounds, day_start
from ._format import format
from ._nodes import (
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
)
from ._parser import FIELDS, MAX_DEPTH, parse
from ._text import is_word, normalize_text, words

__all__ = [
    "FIELDS",
    "MAX_DEPTH",
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
    "day_bounds",
    "day_start",
    "format",
    "is_word",
    "normalize_text",
    "parse",
    "words",
]
