"""``archiver import`` sources: mbox, maildir, eml — wire form, dedup, bad input."""

from __future__ import annotations

import hashlib
import os

import pytest
from sqlalchemy import func, select

from archiver.db import schema
from archiver.errors import ImportSourceError
from archiver.importer import MailSource, detect_format, import_path
from archiver.store.spool import to_wire_form

M1 = b"From: a@example.com\nSubject: one\n\nfirst body\n>From the quoted line\n"
M2 = b"From: b@example.com\nSubject: two\n\nsecond\n\nwith a blank line above\n"
M3 = b"From: c@example.com\r\nSubject: three\r\n\r\nno final newline"


def sha(raw: bytes) -> str:
    return hashlib.sha256(raw).hexdigest()


def stored_shas(engine) -> set[str]:
    with engine.connect() as conn:
        return set(conn.execute(select(schema.messages.c.sha256)).scalars())


def write_mbox(path, messages):
    with open(path, "wb") as fh:
        for m in messages:
            fh.write(b"From MAILER-DAEMON Thu Jan  1 00:00:00 2026\n" + m)
            if not m.endswith(b"\n"):
                fh.write(b"\n")
            fh.write(b"\n")


def test_wire_form_rules():
    assert to_wire_form(b"a\nb\n") == b"a\r\nb\r\n"
    assert to_wire_form(b"a\r\nb") == b"a\r\nb\r\n"
    assert to_wire_form(b"a\rb\n") == b"a\rb\r\n"  # bare CR stays
    assert to_wire_form(b"a\r\r\n") == b"a\r\r\n"
    assert to_wire_form(b"x\r") == b"x\r\r\n"
    assert to_wire_form(b"nul\x00\n") == b"nul\x00\r\n"


def test_mbox_split_and_wire_form(store, engine, tmp_path):
    path = tmp_path / "inbox.mbox"
    write_mbox(path, [M1, M2, M3])
    assert detect_format(path) == "mbox"
    _, report = import_path(store, path)
    assert (report.files, report.messages, report.archived, report.duplicates) == (1, 3, 3, 0)
    assert report.errors == []
    # The separator lines are gone; the blank line inside M2 is kept; CRLF everywhere.
    assert stored_shas(engine) == {sha(to_wire_form(M1)), sha(to_wire_form(M2)),
                                   sha(to_wire_form(M3))}


def test_second_import_stores_nothing_new(store, engine, tmp_path):
    path = tmp_path / "inbox.mbox"
    write_mbox(path, [M1, M2])
    import_path(store, path)
    _, again = import_path(store, path)
    assert (again.archived, again.duplicates) == (0, 2)
    with engine.connect() as conn:
        assert conn.execute(select(func.count()).select_from(schema.deliveries)).scalar() == 2
        assert conn.execute(select(func.count()).select_from(schema.messages)).scalar() == 2


def test_maildir_with_subfolders(store, engine, tmp_path):
    root = tmp_path / "Maildir"
    for folder in (root, root / ".Archive"):
        for sub in ("cur", "new", "tmp"):
            (folder / sub).mkdir(parents=True)
    (root / "new" / "1.host").write_bytes(M1)
    (root / "cur" / "2.host:2,S").write_bytes(M2)
    (root / ".Archive" / "cur" / "3.host:2,S").write_bytes(M3)
    (root / "tmp" / "partial").write_bytes(b"half a message")  # tmp/ is never imported
    assert detect_format(root) == "maildir"
    _, report = import_path(store, root, account="legacy")
    assert (report.files, report.archived) == (3, 3)
    with engine.connect() as conn:
        folders = dict(conn.execute(select(schema.deliveries.c.source, schema.deliveries.c.folder)).all())
    assert folders[str(root / ".Archive" / "cur" / "3.host:2,S")] == "Archive"
    assert folders[str(root / "new" / "1.host")] is None


def test_eml_directory_and_single_file(store, engine, tmp_path):
    d = tmp_path / "emls"
    (d / "sub").mkdir(parents=True)
    (d / "a.eml").write_bytes(M1)
    (d / "sub" / "b.EML").write_bytes(M2)
    (d / "notes.txt").write_bytes(b"not mail")
    _, report = import_path(store, d, fmt="eml")
    assert report.archived == 2
    _, single = import_path(store, d / "a.eml")
    assert (single.archived, single.duplicates) == (0, 1)


def test_corrupt_files_are_reported_and_skipped(store, engine, tmp_path):
    d = tmp_path / "emls"
    d.mkdir()
    (d / "good.eml").write_bytes(M1)
    (d / "empty.eml").write_bytes(b"")
    unreadable = d / "locked.eml"
    unreadable.write_bytes(M2)
    unreadable.chmod(0)
    try:
        _, report = import_path(store, d, fmt="eml")
    finally:
        unreadable.chmod(0o644)
    sources = {e["source"]: e["error"] for e in report.errors}
    assert "empty" in sources[str(d / "empty.eml")]
    if os.geteuid() != 0:  # root reads anything
        assert "cannot read" in sources[str(unreadable)]
    assert report.archived >= 1 and sha(to_wire_form(M1)) in stored_shas(engine)


def test_not_an_mbox(store, tmp_path):
    path = tmp_path / "x.mbox"
    path.write_bytes(b"Subject: hi\n\nbody\n")
    _, report = import_path(store, path, fmt="mbox")
    assert report.messages == 0
    assert "not an mbox" in report.errors[0]["error"]


def test_missing_path_and_bad_maildir(tmp_path):
    with pytest.raises(ImportSourceError, match="no such file"):
        detect_format(tmp_path / "nope")
    (tmp_path / "plain").mkdir()
    with pytest.raises(ImportSourceError, match="not a maildir"):
        MailSource(tmp_path / "plain", "maildir")


def test_large_mbox_message_streams(store, engine, tmp_path):
    body = b"".join(b"line %08d with some padding text to make it longer\n" % i
                    for i in range(400_000))  # ~ 20 MB, spooled to disk
    big = b"From: big@example.com\nSubject: big\n\n" + body
    path = tmp_path / "big.mbox"
    write_mbox(path, [M1, big, M2])
    _, report = import_path(store, path)
    assert report.archived == 3
    assert sha(to_wire_form(big)) in stored_shas(engine)
