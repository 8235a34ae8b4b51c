"""The message store on every backend: byte-exact, single-instance, deliveries, memory."""

from __future__ import annotations

import hashlib
import json
import subprocess
import sys
import textwrap

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from sqlalchemy import func, select, text, update

from archiver.db import schema
from archiver.db.engine import create_archive_engine
from archiver.errors import AmbiguousId, MessageNotFound, UsageError
from archiver.store import content
from archiver.store.ingest import MessageStore, Origin, Outcome
from archiver.store.spool import Spool

ARCHIVED, DUPLICATE, KNOWN = Outcome.ARCHIVED, Outcome.DUPLICATE, Outcome.KNOWN

SIMPLE = (b"From: Alice <alice@example.com>\r\nTo: bob@example.org\r\nSubject: hello\r\n"
          b"Message-ID: <1@example.com>\r\nDate: Mon, 2 Mar 2026 10:00:00 +0100\r\n\r\nHi Bob!\r\n")


def put(store, raw: bytes, origin: Origin):
    return store.store(Spool.from_bytes(raw), origin)


def read_back(store, ident: str) -> bytes:
    with store.engine.connect() as conn:
        return content.read_bytes(conn, content.resolve(conn, ident))


def count(engine, table) -> int:
    with engine.connect() as conn:
        return conn.execute(select(func.count()).select_from(table)).scalar()


def test_round_trip_and_metadata(store, engine):
    res = put(store, SIMPLE, Origin("sales", uidl="u1", server_size=len(SIMPLE)))
    assert res.outcome == ARCHIVED
    assert res.sha256 == hashlib.sha256(SIMPLE).hexdigest()
    assert read_back(store, res.sha256) == SIMPLE
    with engine.connect() as conn:
        row = conn.execute(select(schema.messages)).one()
        assert row.subject == "hello"
        assert row.from_address == "alice@example.com"
        assert row.message_id_header == "<1@example.com>"
        assert row.date.isoformat() == "2026-03-02T09:00:00+00:00"
        assert row.sort_date == row.date
        roles = conn.execute(select(schema.message_addresses.c.role, schema.message_addresses.c.address)
                             .order_by(schema.message_addresses.c.position)).all()
        assert [tuple(r) for r in roles] == [("from", "alice@example.com"), ("to", "bob@example.org")]


def test_single_instance_with_every_delivery_recorded(store, engine):
    results = store.store_batch([
        (Spool.from_bytes(SIMPLE), Origin("sales", uidl="a")),
        (Spool.from_bytes(SIMPLE), Origin("support", uidl="b")),
        (Spool.from_bytes(SIMPLE), Origin("import")),
    ])
    assert [r.outcome for r in results] == [ARCHIVED, DUPLICATE, DUPLICATE]
    assert count(engine, schema.messages) == 1
    assert count(engine, schema.deliveries) == 3
    # Re-delivering the same (account, UIDL) or re-importing changes nothing.
    again = store.store_batch([
        (Spool.from_bytes(SIMPLE), Origin("sales", uidl="a")),
        (Spool.from_bytes(SIMPLE), Origin("import")),
    ])
    assert [r.outcome for r in again] == [KNOWN, KNOWN]
    assert count(engine, schema.deliveries) == 3


def test_uidls_are_case_sensitive(store, engine):
    # MySQL's default collation would fold these together; the schema must not.
    store.store_batch([
        (Spool.from_bytes(SIMPLE), Origin("sales", uidl="abc")),
        (Spool.from_bytes(SIMPLE + b"x"), Origin("sales", uidl="ABC")),
    ])
    assert count(engine, schema.deliveries) == 2


def test_superseding_a_reused_uidl_keeps_both_messages(store, engine):
    first = put(store, SIMPLE, Origin("sales", uidl="u1"))
    other = SIMPLE.replace(b"Hi Bob", b"Other")
    # Without supersede the known UIDL is left alone.
    assert put(store, other, Origin("sales", uidl="u1")).outcome == KNOWN
    assert count(engine, schema.messages) == 1
    res = put(store, other, Origin("sales", uidl="u1", supersede=True))
    assert res.outcome == ARCHIVED
    with engine.connect() as conn:
        rows = conn.execute(select(schema.deliveries.c.uidl, schema.messages.c.sha256)
                            .join(schema.messages, schema.messages.c.id == schema.deliveries.c.message_id)).all()
    assert sorted(rows, key=lambda r: r[1] == first.sha256) == [("u1", res.sha256), (None, first.sha256)]


def test_resolve_prefixes(store):
    a = put(store, SIMPLE, Origin("x")).sha256
    assert read_back(store, a[:8]) == SIMPLE
    assert read_back(store, a.upper()) == SIMPLE
    with store.engine.connect() as conn:
        with pytest.raises(UsageError, match="at least 8"):
            content.resolve(conn, a[:7])
        with pytest.raises(UsageError):
            content.resolve(conn, "zzzzzzzzzz")
        with pytest.raises(MessageNotFound):
            content.resolve(conn, "0" * 64 if not a.startswith("0" * 8) else "f" * 64)


def test_ambiguous_prefix(store):
    # Real SHA-256 collisions on 10 hex digits are too rare to provoke; forge a
    # second row sharing the prefix instead.
    sha = put(store, SIMPLE, Origin("x")).sha256
    with store.engine.begin() as conn:
        row = conn.execute(select(schema.messages).where(schema.messages.c.sha256 == sha)).one()._asdict()
        row.pop("id")
        row["sha256"] = sha[:10] + "0" * 54 if sha[10:] != "0" * 54 else sha[:10] + "1" * 54
        conn.execute(schema.messages.insert().values(**row))
    with store.engine.connect() as conn:
        with pytest.raises(AmbiguousId, match="several"):
            content.resolve(conn, sha[:10])
        assert content.resolve(conn, sha).sha256 == sha


def test_concurrent_writers_never_duplicate(db_url):
    """Two processes storing the same messages at once: one copy, every delivery."""
    script = textwrap.dedent(f"""
        import sys
        from archiver.db.engine import create_archive_engine
        from archiver.store.spool import Spool
        from archiver.store.ingest import MessageStore, Origin
        store = MessageStore(create_archive_engine({db_url!r}))
        who = sys.argv[1]
        for i in range(40):
            raw = b"Subject: m%d\\r\\n\\r\\nbody %d\\r\\n" % (i, i)
            store.store_batch([(Spool.from_bytes(raw), Origin(who, uidl=str(i)))])
    """)
    procs = [subprocess.Popen([sys.executable, "-c", script, name]) for name in ("a", "b")]
    assert [p.wait(timeout=120) for p in procs] == [0, 0]
    eng = create_archive_engine(db_url)
    assert count(eng, schema.messages) == 40
    assert count(eng, schema.deliveries) == 80
    eng.dispose()


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(raw=st.binary(min_size=1, max_size=5000))
def test_arbitrary_bytes_round_trip(store, raw):
    res = put(store, raw, Origin("fuzz"))
    assert read_back(store, res.sha256) == raw


@settings(max_examples=15, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(raw=st.binary(min_size=1, max_size=50_000), chunk=st.integers(min_value=1, max_value=4096))
def test_arbitrary_bytes_across_chunk_boundaries(engine, raw, chunk):
    store = MessageStore(engine, chunk_size=chunk)
    res = put(store, raw, Origin("fuzz"))
    assert read_back(store, res.sha256) == raw


def test_compression_none(engine):
    store = MessageStore(engine, compression="none")
    res = put(store, SIMPLE, Origin("x"))
    with engine.connect() as conn:
        data = conn.execute(select(schema.message_chunks.c.data)).scalar()
    assert bytes(data) == SIMPLE
    assert read_back(store, res.sha256) == SIMPLE


def test_damaged_chunk_is_detected(store, engine):
    sha = put(store, SIMPLE, Origin("x")).sha256
    with engine.begin() as conn:
        conn.execute(update(schema.message_chunks).values(data=b"garbage"))
    with engine.connect() as conn:
        problem = content.check_content(conn, content.resolve(conn, sha))
    assert problem and "chunk 0 does not decompress" in problem


BIG_SCRIPT = r"""
import hashlib, json, os, resource, sys
from archiver.db.engine import create_archive_engine
from archiver.store import content
from archiver.store.spool import spool_file
from archiver.store.ingest import MessageStore, Origin

url, path = sys.argv[1], sys.argv[2]
def rss_mb():
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
store = MessageStore(create_archive_engine(url))
# Warm up imports and the connection pool so the baseline is honest.
with store.engine.connect() as conn:
    content.count(conn)
base = rss_mb()
spool = spool_file(path)
res = store.store(spool, Origin("big"))
after_store = rss_mb()
h = hashlib.sha256(); n = 0
with store.engine.connect() as conn:
    for block in content.iter_content(conn, content.resolve(conn, res.sha256)):
        h.update(block); n += len(block)
print(json.dumps({"sha": res.sha256, "read_sha": h.hexdigest(), "size": n, "base_mb": base,
                  "after_store_mb": after_store, "peak_mb": rss_mb()}))
"""


@pytest.mark.slow
def test_100mb_message_round_trip_in_bounded_memory(db_url, tmp_path):
    """A 100 MB message (a base64 attachment) stores and reads back byte-exact on every
    backend, and the process's peak RSS grows by well under one copy of it."""
    path = tmp_path / "big.eml"
    rnd = __import__("random").Random(5)
    with open(path, "wb") as fh:
        fh.write(b"From: big@example.com\r\nTo: you@example.com\r\nSubject: big one\r\n"
                 b"MIME-Version: 1.0\r\nContent-Type: multipart/mixed; boundary=b1\r\n\r\n"
                 b"--b1\r\nContent-Type: text/plain\r\n\r\nsee attachment\r\n--b1\r\n"
                 b"Content-Type: application/octet-stream; name=\"blob.bin\"\r\n"
                 b"Content-Transfer-Encoding: base64\r\n\r\n")
        import base64

        line = 76 * 3 // 4
        block = rnd.randbytes(line * 10000)
        while fh.tell() < 100 * 1024 * 1024:
            encoded = base64.encodebytes(block).replace(b"\n", b"\r\n")
            fh.write(encoded)
            block = block[1:] + block[:1]
        fh.write(b"--b1--\r\n")
    size = path.stat().st_size
    expected = hashlib.sha256(path.read_bytes()).hexdigest()
    proc = subprocess.run([sys.executable, "-c", BIG_SCRIPT, db_url, str(path)],
                          capture_output=True, text=True, timeout=600)
    assert proc.returncode == 0, proc.stderr
    out = json.loads(proc.stdout)
    assert out["sha"] == expected == out["read_sha"]
    assert out["size"] == size
    grown = out["peak_mb"] - out["base_mb"]
    assert grown < 0.25 * size / 2**20, out  # a quarter of one copy at most
    with create_archive_engine(db_url).connect() as conn:
        att = conn.execute(text("SELECT filename, size FROM attachments")).one()
    assert att[0] == "blob.bin" and att[1] > 70 * 2**20
