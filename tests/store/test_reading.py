"""The reading service audits before anything of a message leaves."""

from __future__ import annotations

import base64
import hashlib
import json
import subprocess
import sys

import pytest
from sqlalchemy import select, update

from archiver.db import schema
from archiver.db.unit import read_only, unit_of_work
from archiver.errors import CorruptContent, DatabaseError, MessageNotFound, UsageError
from archiver.store import reading
from archiver.store.ingest import Origin
from archiver.store.spool import Spool
from tests.conftest import write_config

RAW = (b"From: Alice <alice@example.com>\r\nTo: bob@example.org\r\nSubject: hello\r\n"
       b"Message-ID: <1@example.com>\r\n\r\n" + b"Hi Bob! " * 100 + b"\r\n")
WHO = {"actor": "cli:tester", "client": "cli"}


def audit_rows(engine) -> list:
    a = schema.audit_log
    with read_only(engine) as conn:
        return conn.execute(select(a.c.action, a.c.target, a.c.actor).order_by(a.c.id)).all()


def test_view_and_raw_write_their_entry_in_the_same_unit_of_work(store, engine):
    sha = store.store(Spool.from_bytes(RAW), Origin("x")).sha256
    with unit_of_work(engine) as conn:
        view = reading.message_view(conn, sha[:10], **WHO)
        # Inside the unit of work the entry exists before the caller has the content.
        assert conn.execute(select(schema.audit_log.c.action)).scalars().all() == ["message.view"]
    assert view["subject"] == "hello" and view["id"] == sha
    with unit_of_work(engine) as conn:
        spool = reading.raw_message(conn, sha, **WHO)
    with spool:
        assert spool.getvalue() == RAW
    assert audit_rows(engine) == [("message.view", sha, "cli:tester"),
                                  ("message.raw", sha, "cli:tester")]


def test_a_failed_audit_hands_out_nothing(store, engine):
    sha = store.store(Spool.from_bytes(RAW), Origin("x")).sha256
    with unit_of_work(engine) as conn:  # the audit head is gone: appends must fail
        conn.execute(schema.audit_head.delete())
    for read in (reading.message_view, reading.raw_message):
        with pytest.raises(DatabaseError), unit_of_work(engine) as conn:
            read(conn, sha, **WHO)
    assert audit_rows(engine) == []


def test_damaged_content_is_refused_and_not_audited_as_read(store, engine):
    sha = store.store(Spool.from_bytes(RAW), Origin("x")).sha256
    with unit_of_work(engine) as conn:
        conn.execute(update(schema.message_chunks).values(data=b"garbage"))
    with pytest.raises(CorruptContent), unit_of_work(engine) as conn:
        reading.raw_message(conn, sha, **WHO)
    with pytest.raises(MessageNotFound), unit_of_work(engine) as conn:
        reading.message_view(conn, "ab" * 8, **WHO)
    assert audit_rows(engine) == []


def test_show_raw_into_a_closed_pipe_is_still_audited(tmp_path, store, engine, db_url):
    """`show --raw | head -c 100`: the reader got bytes, so the read is on record."""
    sha = store.store(Spool.from_bytes(RAW), Origin("x")).sha256
    cfg = write_config(tmp_path, db_url)
    cmd = (f"{sys.executable} -m archiver --config {cfg} show {sha[:12]} --raw | head -c 100")
    out = subprocess.run(["bash", "-c", cmd], capture_output=True, timeout=120)
    assert out.stdout == RAW[:100], out.stderr
    assert audit_rows(engine) == [("message.raw", sha, audit_rows(engine)[0].actor)]
    assert audit_rows(engine)[0].actor.startswith("cli:")
    assert hashlib.sha256(RAW).hexdigest() == sha


PDF = bytes(range(256)) * 40  # binary, so base64 is the only way through
ATTACHED = b"From: c@example.org\r\nSubject: forwarded\r\n\r\nthe inner body\r\n"
MULTIPART = (
    b"From: Alice <alice@example.com>\r\nTo: bob@example.org\r\nSubject: parts\r\n"
    b"MIME-Version: 1.0\r\nContent-Type: multipart/mixed; boundary=\"b1\"\r\n\r\n"
    b"--b1\r\nContent-Type: text/plain; charset=utf-8\r\n\r\nSee the attachments.\r\n"
    b"--b1\r\nContent-Type: application/pdf; name=\"report.pdf\"\r\n"
    b"Content-Disposition: attachment; filename=\"report.pdf\"\r\n"
    b"Content-Transfer-Encoding: base64\r\n\r\n"
    + b"\r\n".join(base64.encodebytes(PDF).splitlines()) + b"\r\n"
    b"--b1\r\nContent-Type: text/plain; charset=utf-8\r\n"
    b"Content-Disposition: attachment; filename=\"notes.txt\"\r\n"
    b"Content-Transfer-Encoding: quoted-printable\r\n\r\ncaf=C3=A9 cr=C3=A8me\r\n"
    b"--b1\r\nContent-Type: message/rfc822\r\nContent-Disposition: attachment\r\n\r\n"
    + ATTACHED + b"--b1--\r\n")


def test_a_part_is_decoded_and_audited_before_it_leaves(store, engine):
    sha = store.store(Spool.from_bytes(MULTIPART), Origin("x")).sha256
    with unit_of_work(engine) as conn:
        view = reading.message_view(conn, sha, **WHO)
    assert [(a["part"], a["filename"]) for a in view["attachments"]] == [
        (1, "report.pdf"), (2, "notes.txt"), (3, "forwarded.eml")]
    with unit_of_work(engine) as conn:
        pdf = reading.message_part(conn, sha, 1, **WHO)
        assert conn.execute(select(schema.audit_log.c.action).order_by(
            schema.audit_log.c.id.desc()).limit(1)).scalar() == "message.part"
    assert (pdf.filename, pdf.content_type, pdf.data) == ("report.pdf", "application/pdf", PDF)
    with unit_of_work(engine) as conn:
        notes = reading.message_part(conn, sha, 2, **WHO)
        inner = reading.message_part(conn, sha, 3, **WHO)
    assert notes.data == "café crème".encode()  # the CRLF before "--b1" is the delimiter's
    assert inner.data.startswith(b"From: c@example.org\r\n") and b"the inner body" in inner.data
    a = schema.audit_log
    with read_only(engine) as conn:
        details = conn.execute(select(a.c.details).where(a.c.action == "message.part")
                               .order_by(a.c.id)).scalars().all()
    assert json.loads(details[0]) == {
        "part": 1, "filename": "report.pdf", "content_type": "application/pdf",
        "size": len(PDF)}


def test_a_part_the_message_does_not_have_is_refused_and_not_audited(store, engine):
    sha = store.store(Spool.from_bytes(MULTIPART), Origin("x")).sha256
    with pytest.raises(UsageError, match="has no attachment 4: it has 3, numbered 1 to 3"), \
            unit_of_work(engine) as conn:
        reading.message_part(conn, sha, 4, **WHO)
    plain = store.store(Spool.from_bytes(RAW), Origin("x")).sha256
    with pytest.raises(UsageError, match="has no attachment 1: it has none"), \
            unit_of_work(engine) as conn:
        reading.message_part(conn, plain, 1, **WHO)
    with unit_of_work(engine) as conn:
        conn.execute(update(schema.message_chunks).values(data=b"garbage"))
    with pytest.raises(CorruptContent), unit_of_work(engine) as conn:
        reading.message_part(conn, sha, 1, **WHO)
    assert audit_rows(engine) == []
