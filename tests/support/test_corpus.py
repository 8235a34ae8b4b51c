"""Test and benchmark mail: tricky messages and the benchmark mix."""

from __future__ import annotations

import datetime as dt
import email
import email.policy
import email.utils
import hashlib
import html
import os
import re
import subprocess
import sys
from collections import Counter

import pytest

from tests.support.corpus import (
    TrickyCase,
    generate_mix,
    mix_stats,
    to_wire,
    tricky_cases,
    tricky_messages,
)

#: sha256 over (8-byte length + bytes) of generate_mix(200, seed=1). The mix is a
#: benchmark input: when you change the generator on purpose, update this and
#: say so, because benchmark results before and after are not comparable.
GOLDEN_MIX_200 = "64549aca8dea481e3ffe09dbcd21b7844307eeeeadc0456dbe92d1accd259fb0"

_HASH_SNIPPET = """
import hashlib
from tests.support.corpus import generate_mix
h = hashlib.sha256()
for m in generate_mix(200, seed=1):
    h.update(len(m).to_bytes(8, "big"))
    h.update(m)
print(h.hexdigest())
"""

EXPECT_KEYS = {
    "subject", "subject_contains", "from", "from_name", "to", "cc", "delivered_to",
    "message_id", "date", "attachments", "attachment_sizes", "text_contains",
    "text_not_contains",
}


def _mix_hash(messages) -> str:
    digest = hashlib.sha256()
    for message in messages:
        digest.update(len(message).to_bytes(8, "big"))
        digest.update(message)
    return digest.hexdigest()


def _is_wire_form(message: bytes) -> bool:
    return (
        message.endswith(b"\r\n")
        and re.search(rb"(?<!\r)\n", message) is None
        and re.search(rb"\r(?!\n)", message) is None
    )


# -- to_wire -------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("file_form", "wire"),
    [
        (b"a\nb\n", b"a\r\nb\r\n"),
        (b"a\r\nb\r\n", b"a\r\nb\r\n"),
        (b"a\r\nb\nc", b"a\r\nb\r\nc\r\n"),
        (b"bare\rcr\n", b"bare\rcr\r\n"),
        (b"cr before lf\r\r\n", b"cr before lf\r\r\n"),
        (b"nul\x00\n", b"nul\x00\r\n"),
        (b"", b"\r\n"),
        (b"ends with cr\r", b"ends with cr\r\r\n"),
    ],
)
def test_to_wire_follows_dovecot(file_form, wire):
    assert to_wire(file_form) == wire
    assert to_wire(wire) == wire  # idempotent


# -- tricky messages -------------------------------------------------------------------


def test_tricky_cases_are_named_uniquely_and_documented():
    cases = tricky_cases()
    assert len(cases) >= 45
    names = [case.name for case in cases]
    assert len(set(names)) == len(names)
    for case in cases:
        assert isinstance(case, TrickyCase)
        assert re.fullmatch(r"[a-z0-9_]+", case.name)
        assert case.about, case.name
        assert set(case.expect) <= EXPECT_KEYS, case.name
        assert isinstance(case.raw, bytes) and case.raw
    assert list(tricky_messages()) == names
    assert tricky_messages()["dot_lines"] == cases[names.index("dot_lines")].raw


def test_tricky_cases_cover_what_the_store_must_survive():
    raws = list(tricky_messages().values())
    assert any(b"\r\n" not in r and b"\n" in r for r in raws)  # LF only
    assert any(b"\n" not in r.replace(b"\r\n", b"") for r in raws if b"\r\n" in r)  # CRLF only
    assert any(re.search(rb"(?<!\r)\n", r) and b"\r\n" in r for r in raws)  # mixed
    assert any(re.search(rb"\r(?!\n)", r) for r in raws)  # bare CR
    assert any(b"\x00" in r for r in raws)
    assert any(not r.endswith(b"\n") for r in raws)
    assert any(b"\n.\n" in r.replace(b"\r\n", b"\n") for r in raws)  # lone dot line
    assert any(max(len(line) for line in r.split(b"\n")) > 2048 for r in raws)
    assert any(len(r) > 2_000_000 for r in raws)
    assert any(re.search(rb"[\x80-\xff]", r.split(b"\n\n", 1)[0]) for r in raws)  # 8bit header


def test_tricky_cases_are_rebuilt_each_call():
    first, second = tricky_cases(), tricky_cases()
    assert [c.raw for c in first] == [c.raw for c in second]
    first[0].expect["subject"] = "changed"
    assert tricky_cases()[0].expect["subject"] != "changed"


def _reference_text(message) -> str:
    """Searchable text as a simple stdlib-based parser would extract it."""
    texts = []
    for part in message.walk():
        if part.is_multipart() or part.get_content_disposition() == "attachment":
            continue
        if part.get_content_maintype() != "text":
            continue
        try:
            text = part.get_content()
        except (LookupError, UnicodeError):
            text = (part.get_payload(decode=True) or b"").decode("latin-1")
        if part.get_content_subtype() == "html":
            text = re.sub(r"(?is)<(script|style)\b.*?</\1>", "", text)
            text = html.unescape(re.sub(r"<[^>]+>", "", text))
        texts.append(text)
    if message.get_content_maintype() == "multipart" and isinstance(message.get_payload(), str):
        texts.append(message.get_payload())  # no boundary, or one that never appears
    return "\n".join(texts)


def _reference_attachments(message) -> list[str]:
    names = []
    for part in message.walk():
        if part.get_content_type() == "message/rfc822":
            names.append(part.get_filename())
            continue
        if part.is_multipart() or any(p.get_content_type() == "message/rfc822"
                                      for p in _ancestors(message, part)):
            continue
        if part.get_content_disposition() == "attachment" or part.get_param("name"):
            names.append(part.get_filename())
    return names


def _ancestors(root, target, trail=()):
    for child in root.iter_parts() if root.is_multipart() else ():
        if child is target:
            return list(trail) + [root]
        found = _ancestors(child, target, trail + (root,))
        if found:
            return found
    if root.get_content_type() == "message/rfc822":
        inner = root.get_payload(0)
        if inner is target:
            return list(trail) + [root]
        return _ancestors(inner, target, trail + (root,))
    return []


#: where Python's email package (policy.default) falls short of the expectation
STDLIB_FALLS_SHORT = {
    ("raw_utf8_headers", "from_name"),  # raw UTF-8 in address headers comes back escaped
}


def _squash(text):
    return None if text is None else re.sub(r"\s+", " ", str(text)).strip()


@pytest.mark.parametrize("case", tricky_cases(), ids=lambda c: c.name)
def test_expectations_are_reachable_with_the_stdlib(case):
    """A sanity check of the expectations themselves, with a naive stdlib parser."""
    message = email.message_from_bytes(case.raw, policy=email.policy.default)
    expect = case.expect
    got: dict[str, object] = {}
    if "subject" in expect or "subject_contains" in expect:
        got["subject"] = _squash(message["subject"])
    if "from" in expect or "from_name" in expect:
        address = message["from"].addresses[0]
        got["from"] = address.addr_spec.lower()
        got["from_name"] = address.display_name
    for key in ("to", "cc"):
        if key in expect:
            header = message[key]
            got[key] = [a.addr_spec for a in header.addresses] if header is not None else []
    if "delivered_to" in expect:
        got["delivered_to"] = [str(v) for v in message.get_all("delivered-to", [])]
    if "message_id" in expect:
        value = message["message-id"]
        got["message_id"] = str(value).strip() if value is not None else None
    if "date" in expect:
        try:
            parsed = email.utils.parsedate_to_datetime(str(message["date"]))
            if parsed.tzinfo is None:
                parsed = parsed.replace(tzinfo=dt.UTC)
            got["date"] = parsed.astimezone(dt.UTC).isoformat()
        except (TypeError, ValueError):
            got["date"] = None
    if "attachments" in expect:
        got["attachments"] = _reference_attachments(message)
    for key, wanted in expect.items():
        if (case.name, key) in STDLIB_FALLS_SHORT:
            continue
        if key == "subject":
            assert got["subject"] == wanted
        elif key == "subject_contains":
            for fragment in wanted:
                assert fragment in got["subject"]
        elif key == "attachment_sizes":
            sizes = {p.get_filename(): len(p.get_payload(decode=True)) for p in message.walk()
                     if p.get_filename()}
            assert {k: sizes.get(k) for k in wanted} == wanted
        elif key in ("text_contains", "text_not_contains"):
            text = _reference_text(message)
            for fragment in wanted:
                assert (fragment in text) == (key == "text_contains"), fragment
        else:
            assert got[key] == wanted, key


# -- the benchmark mix ------------------------------------------------------------------


@pytest.fixture(scope="module")
def mix_2000() -> list[bytes]:
    return list(generate_mix(2000, seed=1))


def test_mix_is_deterministic_in_process_and_across_processes(mix_2000):
    assert list(generate_mix(200, seed=1)) == mix_2000[:200]  # and a prefix of a longer run
    assert _mix_hash(mix_2000[:200]) == GOLDEN_MIX_200
    env = {**os.environ, "PYTHONHASHSEED": "12345"}  # hash() must not matter
    result = subprocess.run([sys.executable, "-c", _HASH_SNIPPET], env=env,
                            capture_output=True, text=True, check=True, timeout=120)
    assert result.stdout.strip() == GOLDEN_MIX_200


def test_mix_depends_on_seed_and_domain():
    base = list(generate_mix(20, seed=1))
    assert list(generate_mix(20, seed=2)) != base
    other = list(generate_mix(20, seed=1, domain="corp.example"))
    assert all(b"@corp.example>" in m for m in other)
    assert list(generate_mix(0)) == []


def test_mix_messages_are_unique_wire_form(mix_2000):
    assert len(set(mix_2000)) == len(mix_2000)
    for message in mix_2000:
        assert _is_wire_form(message)
        assert max(len(line) for line in message.split(b"\r\n")) <= 998
    ids = [re.search(rb"\r\nMessage-ID: (<[^>]+>)\r\n", m).group(1) for m in mix_2000]
    assert len(set(ids)) == len(ids)


def test_mix_size_distribution(mix_2000):
    stats = mix_stats(mix_2000)
    # per block of 1000: 917 normal, 80 large, 3 huge
    normal = [len(m) for m in mix_2000 if len(m) < 25_000]
    large = [len(m) for m in mix_2000 if 25_000 <= len(m) < 2_000_000]
    huge = [len(m) for m in mix_2000 if len(m) >= 2_000_000]
    assert (len(normal), len(large), len(huge)) == (1834, 160, 6)
    assert stats["buckets"] == {"under_25k": 1834, "25k_to_2m": 160, "over_2m": 6}
    assert min(normal) >= 1_500 and max(normal) <= 21_000
    assert sum(2_000 <= s <= 20_480 for s in normal) / len(normal) > 0.95
    assert min(large) >= 95_000 and max(large) <= 1_050_000
    assert all(4_800_000 <= s <= 5_400_000 for s in huge)
    assert 4_000 < stats["p50"] < 10_000


def test_mix_content_is_varied(mix_2000):
    charsets, types, names = Counter(), Counter(), Counter()
    replies = encoded_headers = 0
    for raw in mix_2000[:1000]:
        message = email.message_from_bytes(raw, policy=email.policy.compat32)
        head = raw.split(b"\r\n\r\n", 1)[0]
        replies += b"\r\nIn-Reply-To: <" in head and b"\r\nReferences: <" in head
        encoded_headers += b"=?" in head
        for part in message.walk():
            types[part.get_content_type()] += 1
            if part.get_content_charset():
                charsets[part.get_content_charset()] += 1
            if part.get_filename():
                names[part.get_filename().rsplit(".", 1)[-1].lower()] += 1
    assert set(charsets) == {"utf-8", "iso-8859-1", "iso-8859-9", "windows-1252", "us-ascii"}
    assert types["multipart/alternative"] > 300 and types["text/html"] > 300
    assert {"pdf", "zip", "jpg"} <= set(names)
    assert 120 < replies < 350
    assert encoded_headers > 300


def test_mix_stats():
    stats = mix_stats([b"x" * 10, 20, b"y" * 30, 40])
    assert stats["count"] == 4 and stats["total_bytes"] == 100
    assert (stats["min"], stats["p50"], stats["max"], stats["mean"]) == (10, 20, 40, 25.0)
    assert mix_stats([])["count"] == 0
