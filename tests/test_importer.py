"""``archiver import`` sources: mbox, mboxrd, maildir, eml — wire form, dedup, bad input.

Issue 8: points 7 (file names that are not UTF-8, one refused message), 8
(per-file detection, any file name with --format eml, ``skipped``), 9 (an
.eml starting with a From_ line), 11 (not mail is refused; --force; mboxrd)
and 12 (unreadable folders are reported, the rest imported).
"""

from __future__ import annotations

import hashlib
import os
import shutil
import stat
import subprocess
import sys
import tempfile
from pathlib import Path

import pytest
from sqlalchemy import func, select

from archiver import importer
from archiver.db import schema
from archiver.db.engine import create_archive_engine
from archiver.errors import DatabaseError, ImportSourceError
from archiver.importer import NOT_A_MESSAGE, NOT_MAIL, MailSource, display_path, import_path
from archiver.store.spool import to_wire_form
from tests.conftest import CLIResult, run_cli, write_config

M1 = b"From: a@example.com\nSubject: one\n\nfirst body\n>From the quoted line\n"
M2 = b"From: b@example.com\nSubject: two\n\nsecond\n\nwith a blank line above\n"
M3 = b"From: c@example.com\r\nSubject: three\r\n\r\nno final newline"
M4 = b"Received: from x by y; Thu, 1 Jan 2026 00:00:00 +0000\nSubject: four\n\nbody four\n"
FROM_LINE = b"From MAILER-DAEMON Thu Jan  1 00:00:00 2026\n"


def sha(raw: bytes) -> str:
    return hashlib.sha256(raw).hexdigest()


def wsha(raw: bytes) -> str:
    return sha(to_wire_form(raw))


def stored_shas(engine) -> set[str]:
    with engine.connect() as conn:
        return set(conn.execute(select(schema.messages.c.sha256)).scalars())


def delivery_rows(engine) -> dict[str, str | None]:
    """source -> folder of every delivery."""
    with engine.connect() as conn:
        return dict(conn.execute(select(schema.deliveries.c.source,
                                        schema.deliveries.c.folder)).all())


def write_mbox(path, messages):
    with open(path, "wb") as fh:
        for m in messages:
            fh.write(FROM_LINE + m)
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
    assert [f.kind for f in MailSource(path).files] == ["mbox"]
    _, report = import_path(store, path)
    assert (report.files, report.messages, report.archived, report.duplicates) == (1, 3, 3, 0)
    assert report.errors == [] and report.skipped == []
    # The separator lines are gone; the blank line inside M2 is kept; CRLF everywhere;
    # ">From " quoting is kept as found (mbox, not mboxrd).
    assert stored_shas(engine) == {wsha(M1), wsha(M2), wsha(M3)}


def test_second_import_stores_nothing_new(store, engine, tmp_path):
    path = tmp_path / "inbox.mbox"
    write_mbox(path, [M1, M2])
    import_path(store, path)
    _, again = import_path(store, path)
    assert (again.archived, again.duplicates) == (0, 2)
    with engine.connect() as conn:
        assert conn.execute(select(func.count()).select_from(schema.deliveries)).scalar() == 2
        assert conn.execute(select(func.count()).select_from(schema.messages)).scalar() == 2


def make_maildir(root: Path) -> None:
    for sub in ("cur", "new", "tmp"):
        (root / sub).mkdir(parents=True)


def test_maildir_with_subfolders(store, engine, tmp_path):
    root = tmp_path / "Maildir"
    make_maildir(root)
    make_maildir(root / ".Archive")
    (root / "new" / "1.host").write_bytes(M1)
    (root / "cur" / "2.host:2,S").write_bytes(M2)
    (root / ".Archive" / "cur" / "3.host:2,S").write_bytes(M3)
    (root / "tmp" / "partial").write_bytes(b"half a message")  # tmp/ is never imported
    assert {f.kind for f in MailSource(root).files} == {"eml"}
    _, report = import_path(store, root, account="legacy")
    assert (report.files, report.archived) == (3, 3)
    folders = delivery_rows(engine)
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
    # --format eml takes every file; one that is not a message is refused, by name.
    assert report.errors == [{"source": str(d / "notes.txt"), "error": NOT_A_MESSAGE}]
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
    assert report.archived >= 1 and wsha(M1) in stored_shas(engine)


def test_not_an_mbox(store, tmp_path):
    path = tmp_path / "x.mbox"
    path.write_bytes(b"Subject: hi\n\nbody\n")
    _, report = import_path(store, path, fmt="mbox")
    assert report.messages == 0
    assert "not an mbox" in report.errors[0]["error"]


def test_missing_path_and_bad_maildir(tmp_path):
    with pytest.raises(ImportSourceError, match="no such file"):
        MailSource(tmp_path / "nope")
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
    assert wsha(big) in stored_shas(engine)


# -- point 7: names that are not UTF-8; one message the database refuses ------------------


def test_display_path_is_printable_and_keeps_the_bytes():
    assert display_path(b"/m/caf\xe9.eml") == "/m/caf\\xe9.eml"
    assert display_path("/m/café.eml") == "/m/café.eml"
    assert display_path(b"/m/a\nb\x1b.eml") == "/m/a\\nb\\x1b.eml"
    assert display_path(os.fsdecode(b"caf\xe9")).encode("utf-8")  # no surrogates left


def test_file_and_folder_names_that_are_not_utf8(store, engine, tmp_path):
    d = tmp_path / "emls"
    d.mkdir()
    with open(os.path.join(os.fsencode(d), b"caf\xe9.eml"), "wb") as fh:
        fh.write(M1)
    (d / "ok.eml").write_bytes(M2)
    root = tmp_path / "Maildir"
    make_maildir(root)
    sub = os.path.join(os.fsencode(root), b".Entw\xfcrfe")
    make_maildir(Path(os.fsdecode(sub)))
    with open(os.path.join(sub, b"cur", b"1.host:2,S"), "wb") as fh:
        fh.write(M3)

    _, report = import_path(store, d)
    assert report.errors == [] and (report.messages, report.archived) == (2, 2)
    _, report = import_path(store, root)
    assert report.errors == [] and report.archived == 1
    rows = delivery_rows(engine)
    assert f"{d}/caf\\xe9.eml" in rows
    assert rows[f"{root}/.Entw\\xfcrfe/cur/1.host:2,S"] == "Entw\\xfcrfe"
    assert stored_shas(engine) == {wsha(M1), wsha(M2), wsha(M3)}


def test_a_path_too_long_for_the_source_column_keeps_its_file_name(store, engine, tmp_path):
    # deliveries.source holds 1000 characters: the cut keeps the end, where the file is.
    deep = tmp_path.joinpath(*(c * 250 for c in "abcde"))
    deep.mkdir(parents=True)
    (deep / "m.eml").write_bytes(M1)
    _, report = import_path(store, tmp_path / ("a" * 250))
    assert report.errors == [] and report.archived == 1
    [source] = delivery_rows(engine)
    assert len(source) == importer.SOURCE_CHARS and source.startswith("…")
    assert source.endswith("e" * 200 + "/m.eml")


def test_a_message_the_database_refuses_does_not_lose_the_batch(store, engine, tmp_path,
                                                                 monkeypatch):
    d = tmp_path / "emls"
    d.mkdir()
    for name, raw in (("a.eml", M1), ("b.eml", M2), ("c.eml", M3)):
        (d / name).write_bytes(raw)
    real = store.store_batch

    def refuses_m2(items, **kw):
        if any(spool.sha256 == wsha(M2) for spool, _ in items):
            raise DatabaseError("the database refused a statement: value too long")
        return real(items, **kw)

    monkeypatch.setattr(store, "store_batch", refuses_m2)
    _, report = import_path(store, d)
    assert (report.messages, report.archived) == (3, 2)
    assert [e["source"] for e in report.errors] == [str(d / "b.eml")]
    assert "refused" in report.errors[0]["error"]
    assert stored_shas(engine) == {wsha(M1), wsha(M3)}


def test_a_database_that_fails_altogether_stops_the_import(store, tmp_path, monkeypatch):
    (tmp_path / "a.eml").write_bytes(M1)

    def broken(items, **kw):
        raise DatabaseError("cannot connect")

    monkeypatch.setattr(store, "store_batch", broken)
    monkeypatch.setattr(importer, "_database_healthy", lambda _store: False)
    with pytest.raises(DatabaseError, match="cannot connect"):
        import_path(store, tmp_path / "a.eml")


def test_cli_imports_a_name_that_is_not_utf8(tmp_path, db_url):
    cfg = write_config(tmp_path, db_url)
    d = tmp_path / "emls"
    d.mkdir()
    bad = os.path.join(os.fsencode(d), b"caf\xe9.eml")
    with open(bad, "wb") as fh:
        fh.write(M1)
    (d / "ok.eml").write_bytes(M2)
    r = run_cli("import", str(d), "--json", config=cfg)
    assert r.exit_code == 0, r
    assert r.json() == {"files": 2, "messages": 2, "archived": 2, "duplicates": 0, "errors": []}
    r = run_cli("import", os.fsdecode(bad), "--json", config=cfg)  # the file itself as PATH
    assert r.exit_code == 0, r
    assert (r.json()["archived"], r.json()["duplicates"]) == (0, 1)
    r = run_cli("import", os.fsdecode(bad), config=cfg)  # text output on a non-UTF-8 name
    assert r.exit_code == 0 and "Traceback" not in r.stderr, r


# -- point 8: detection file by file; --format eml takes any name -------------------------


def single_message_folder(d: Path) -> None:
    d.mkdir()
    (d / "one.txt").write_bytes(M1)
    (d / "two.msg").write_bytes(M2)
    (d / "three").write_bytes(FROM_LINE + M3)  # saved with its mbox From_ line
    (d / "four.txt").write_bytes(FROM_LINE + M4)
    (d / "README").write_bytes(b"Exported from the old mail server in 2019.\n")
    (d / "letter.txt").write_bytes(b"From the desk of the director\nDear all,\n")
    (d / ".DS_Store").write_bytes(b"\x00\x00\x00\x01Bud1")
    (d / "empty").write_bytes(b"")


def test_detection_is_per_file(store, engine, tmp_path):
    d = tmp_path / "export"
    single_message_folder(d)
    source = MailSource(d)
    assert {f.path.name: f.kind for f in source.files} == {
        "one.txt": "eml", "two.msg": "eml", "three": "mbox", "four.txt": "mbox"}
    _, report = import_path(store, d)
    assert (report.files, report.messages, report.archived) == (4, 4, 4)
    assert report.errors == []
    assert report.skipped == [
        {"source": str(d / ".DS_Store"), "reason": "hidden file"},
        {"source": str(d / "README"), "reason": NOT_MAIL},
        {"source": str(d / "empty"), "reason": "empty file"},
        {"source": str(d / "letter.txt"), "reason": NOT_MAIL},  # a From_ line, then no header
    ]
    assert stored_shas(engine) == {wsha(M1), wsha(M2), wsha(M3), wsha(M4)}


def test_format_eml_takes_every_file_whatever_its_name(store, engine, tmp_path):
    d = tmp_path / "export"
    single_message_folder(d)
    _, report = import_path(store, d, fmt="eml")
    # Every file but the hidden one; each is one message, stored exactly (From_ line too).
    assert report.files == 7 and report.archived == 4
    assert stored_shas(engine) == {wsha(M1), wsha(M2), wsha(FROM_LINE + M3), wsha(FROM_LINE + M4)}
    assert {e["source"]: e["error"] for e in report.errors} == {
        str(d / "README"): NOT_A_MESSAGE, str(d / "empty"): "empty file: not a message",
        str(d / "letter.txt"): NOT_A_MESSAGE}
    assert report.skipped == [{"source": str(d / ".DS_Store"), "reason": "hidden file"}]


def test_a_maildir_inside_a_folder_is_read_as_one(store, engine, tmp_path):
    d = tmp_path / "backup"
    make_maildir(d / "alice")
    (d / "alice" / "cur" / "1.host:2,S").write_bytes(M1)
    (d / "alice" / "tmp" / "2.host").write_bytes(b"half")  # never imported
    write_mbox(d / "old.mbox", [M2])
    _, report = import_path(store, d)
    assert (report.archived, report.errors) == (2, [])
    assert delivery_rows(engine)[str(d / "alice" / "cur" / "1.host:2,S")] == "alice"


def test_cli_reports_what_it_skipped(tmp_path, db_url):
    cfg = write_config(tmp_path, db_url)
    d = tmp_path / "export"
    single_message_folder(d)
    r = run_cli("import", str(d), "--json", config=cfg)
    assert r.exit_code == 0, r  # skipping what is not mail is not a failure
    out = r.json()
    assert {k: out[k] for k in ("files", "messages", "archived", "duplicates", "errors")} == {
        "files": 4, "messages": 4, "archived": 4, "duplicates": 0, "errors": []}
    assert {s["source"]: s["reason"] for s in out["skipped"]} == {
        str(d / ".DS_Store"): "hidden file", str(d / "README"): NOT_MAIL,
        str(d / "empty"): "empty file", str(d / "letter.txt"): NOT_MAIL}
    r = run_cli("import", str(d), "--format", "eml", "--json", config=cfg)
    assert r.exit_code == 1, r  # README, the letter and the empty file are refused
    assert r.json()["archived"] == 2 and len(r.json()["errors"]) == 3
    r = run_cli("import", str(d), config=cfg)
    assert r.exit_code == 0 and f"skipped {d / 'README'}: not mail" in r.stderr, r


# -- point 9: an .eml that starts with a From_ line ---------------------------------------


def test_eml_with_a_short_from_line_is_parsed_and_stored_exactly(store, engine, tmp_path):
    path = tmp_path / "saved.eml"
    raw = b"From sender@host\n" + M4.replace(b"Subject: four", b"From: x@example.com\nSubject: four")
    path.write_bytes(raw)
    assert [f.kind for f in MailSource(path).files] == ["eml"]  # its name says one message
    _, report = import_path(store, path)
    assert report.archived == 1 and report.errors == []
    m = schema.messages
    with engine.connect() as conn:
        row = conn.execute(select(m.c.sha256, m.c.subject, m.c.from_address)).one()
    assert row.sha256 == wsha(raw)  # the From_ line is stored: the file in wire form
    assert (row.subject, row.from_address) == ("four", "x@example.com")


# -- point 11: what is not mail is refused; --force; mboxrd --------------------------------

BINARY = b"\x89PNG\r\n\x1a\n" + bytes(range(256)) * 8
SOURCE_CODE = b'"""A module."""\n\nimport os\n\nprint(os.getcwd())\n'


@pytest.mark.parametrize("content", [BINARY, SOURCE_CODE, b"key value\nSubject: late\n\n",
                                     b"\nSubject: after a blank line\n", FROM_LINE + b"prose\n",
                                     b"X: nul\x00 in the first line\n"],
                         ids=["binary", "source", "no-colon", "blank-first", "from-then-prose",
                              "nul"])
def test_not_a_message_is_refused_unless_forced(store, engine, tmp_path, content):
    path = tmp_path / "thing.eml"
    path.write_bytes(content)
    _, report = import_path(store, path)
    assert report.archived == 0 and stored_shas(engine) == set()
    assert report.errors == [{"source": str(path), "error": NOT_A_MESSAGE}]
    _, forced = import_path(store, path, force=True)
    assert forced.archived == 1 and forced.errors == []
    assert stored_shas(engine) == {wsha(content)}


def test_malformed_mail_is_still_mail(store, tmp_path):
    d = tmp_path / "odd"
    d.mkdir()
    for i, raw in enumerate([b"Subject: no blank line\nbody right away\n",
                             b"X-Weird_Name.1: v\n\nbody\n", b"from: lower case\n\n",
                             FROM_LINE + b"Subject: after a From_ line\n\n"]):
        (d / f"{i}.txt").write_bytes(raw)
    _, report = import_path(store, d)
    assert (report.archived, report.errors, report.skipped) == (4, [], [])


def test_an_mbox_chunk_without_headers_is_refused(store, engine, tmp_path):
    path = tmp_path / "x.mbox"
    path.write_bytes(FROM_LINE + M1 + b"\n" + FROM_LINE + b"just prose, no headers\n")
    _, report = import_path(store, path)
    assert report.archived == 1
    assert report.errors == [{"source": f"{path}#2", "error": NOT_A_MESSAGE}]
    _, forced = import_path(store, path, force=True)
    assert (forced.archived, forced.duplicates, forced.errors) == (1, 1, [])


def test_mboxrd_unquotes_from_lines_and_mbox_keeps_them(store, engine, tmp_path):
    body = b"Subject: q\n\n>From here\n>>From there\n> From spaced\n>Fromage\nFrom-less\n"
    path = tmp_path / "quoted.mbox"
    write_mbox(path, [body])
    _, rd = import_path(store, path, fmt="mboxrd")
    assert rd.archived == 1
    unquoted = b"Subject: q\n\nFrom here\n>From there\n> From spaced\n>Fromage\nFrom-less\n"
    assert stored_shas(engine) == {wsha(unquoted)}
    _, plain = import_path(store, path, fmt="mbox")
    assert plain.archived == 1
    assert stored_shas(engine) == {wsha(unquoted), wsha(body)}


def test_mboxrd_folder_takes_only_mbox_files(tmp_path):
    write_mbox(tmp_path / "a", [M1])
    (tmp_path / "b.eml").write_bytes(M2)
    source = MailSource(tmp_path, "mboxrd")
    assert [(f.path.name, f.kind) for f in source.files] == [("a", "mboxrd")]
    assert source.skipped == [{"source": str(tmp_path / "b.eml"),
                               "reason": "not an mboxrd file (it does not start with a \"From \" line)"}]


def test_cli_refuses_what_is_not_mail(tmp_path, db_url):
    cfg = write_config(tmp_path, db_url)
    tool = tmp_path / "tool.py"
    tool.write_bytes(SOURCE_CODE)
    blob = tmp_path / "photo.jpg"
    blob.write_bytes(BINARY)
    for path in (tool, blob):
        r = run_cli("import", str(path), config=cfg)
        assert r.exit_code == 1, r
        assert str(path) in r.stderr and "not a message" in r.stderr and "Traceback" not in r.stderr
        r = run_cli("import", str(path), "--json", config=cfg)
        assert r.exit_code == 1 and r.json()["errors"][0]["source"] == str(path), r
        assert r.json()["archived"] == 0
    engine = create_archive_engine(db_url)
    try:
        assert stored_shas(engine) == set()
    finally:
        engine.dispose()
    r = run_cli("import", str(tool), "--force", "--json", config=cfg)
    assert r.exit_code == 0 and r.json()["archived"] == 1, r
    r = run_cli("import", "--help")
    assert "mboxrd" in r.stdout and "--force" in r.stdout


# -- point 12: unreadable folders are reported, the rest is imported -----------------------


def test_unreadable_folders_are_reported_in_process(store, engine, tmp_path, monkeypatch):
    """The read of a folder fails (as chmod 000 makes it for a user who is not root)."""
    tree = tmp_path / "tree"
    (tree / "locked").mkdir(parents=True)
    (tree / "a.eml").write_bytes(M1)
    (tree / "locked" / "b.eml").write_bytes(M2)
    root = tmp_path / "Maildir"
    make_maildir(root)
    make_maildir(root / ".Sent")
    (root / "cur" / "1.host:2,S").write_bytes(M3)
    (root / ".Sent" / "cur" / "2.host:2,S").write_bytes(M4)
    locked = {str(tree / "locked"), str(root / ".Sent" / "cur")}
    real_scandir = os.scandir

    def scandir(path="."):
        if os.fsdecode(path) in locked:
            raise PermissionError(13, "Permission denied", os.fsdecode(path))
        return real_scandir(path)

    monkeypatch.setattr(os, "scandir", scandir)
    for path, archived in ((tree, 1), (root, 1)):
        _, report = import_path(store, path)
        assert report.archived == archived
        assert [e["error"] for e in report.errors] == ["cannot read folder: Permission denied"]
        assert report.errors[0]["source"] in locked
    assert stored_shas(engine) == {wsha(M1), wsha(M3)}


def _unprivileged() -> tuple[list[str], int | None]:
    """(argv prefix, uid) to run the CLI as a user chmod applies to."""
    if os.geteuid() != 0:
        return [], None
    setpriv = shutil.which("setpriv")
    if setpriv is None:
        pytest.skip("running as root, where chmod 000 does not deny reads, and setpriv "
                    "(util-linux) is not installed to run the CLI as an unprivileged user")
    return [setpriv, "--reuid=65534", "--regid=65534", "--clear-groups"], 65534


def test_unreadable_folders_cli(db_url, backend):
    """chmod 000 on folders inside an eml tree and a maildir, for real: reported, exit 1."""
    prefix, uid = _unprivileged()
    work = Path(tempfile.mkdtemp(prefix="archiver-import-"))  # not under root's 0700 tmp
    try:
        if backend == "sqlite":
            db = work / "archive.db"
            shutil.copy(db_url.removeprefix("sqlite:///"), db)
            url = f"sqlite:///{db}"
        else:
            url = db_url
        cfg = write_config(work, url)
        tree = work / "tree"
        (tree / "locked").mkdir(parents=True)
        (tree / "a.eml").write_bytes(M1)
        (tree / "locked" / "b.eml").write_bytes(M2)
        root = work / "Maildir"
        make_maildir(root)
        make_maildir(root / ".Sent")
        (root / "cur" / "1.host:2,S").write_bytes(M3)
        (root / ".Sent" / "cur" / "2.host:2,S").write_bytes(M4)
        if uid is not None:
            for p in [work, *work.rglob("*")]:
                os.chown(p, uid, uid)
        (tree / "locked").chmod(0)
        (root / ".Sent").chmod(0)
        for path, fmt in ((tree, []), (tree, ["--format", "eml"]), (root, []),
                          (root, ["--format", "maildir"])):
            argv = [*prefix, sys.executable, "-m", "archiver", "--config", str(cfg), "import",
                    str(path), *fmt, "--json"]
            env = {k: v for k, v in os.environ.items() if k != "ARCHIVER_CONFIG"}
            r = CLIResult(subprocess.run(argv, cwd=work, env={**env, "HOME": str(work)},
                                         capture_output=True, timeout=300))
            assert r.exit_code == 1, (path, fmt, r)
            out = r.json()
            locked = tree / "locked" if path == tree else root / ".Sent"
            assert [e["source"] for e in out["errors"]] == [str(locked)], r
            assert "Permission denied" in out["errors"][0]["error"]
            assert out["archived"] + out["duplicates"] == 1 and "Traceback" not in r.stderr
    finally:
        for p in (work / "tree" / "locked", work / "Maildir" / ".Sent"):
            if p.exists():
                p.chmod(stat.S_IRWXU)
        shutil.rmtree(work, ignore_errors=True)


# -- a real-world corpus written by another project: the standard library's email tests ---

STDLIB_EMAIL_DATA = Path(os.path.dirname(os.__file__)) / "test" / "test_email" / "data"


@pytest.fixture
def stdlib_corpus(tmp_path) -> Path:
    if not STDLIB_EMAIL_DATA.is_dir():
        pytest.skip(f"{STDLIB_EMAIL_DATA} is not installed (Python's test package)")
    return Path(shutil.copytree(STDLIB_EMAIL_DATA, tmp_path / "email-data"))


def test_stdlib_email_corpus(store, engine, stdlib_corpus):
    """msg_NN.txt files (a few with From_ lines), one without headers, images and sounds."""
    d = stdlib_corpus
    _, report = import_path(store, d)
    assert report.errors == []
    skipped = {Path(s["source"]).name: s["reason"] for s in report.skipped}
    assert skipped.pop("msg_19.txt") == NOT_MAIL  # a digest body: no header block
    assert skipped and not any(name.startswith("msg_") for name in skipped)  # images, sounds
    assert set(skipped.values()) == {NOT_MAIL}
    messages = sorted(p.name for p in d.glob("msg_*.txt") if p.name != "msg_19.txt")
    assert report.files == len(messages) and report.archived + report.duplicates == report.messages
    # --format eml: every file is one message, From_ lines stored (not parsed); the
    # images and the header-less digest are refused by name.
    _, eml = import_path(store, d, fmt="eml")
    assert sorted(Path(e["source"]).name for e in eml.errors) == sorted([*skipped, "msg_19.txt"])
    assert eml.files == len(messages) + 1 + len(skipped)
    m = schema.messages
    with engine.connect() as conn:
        subjects = dict(conn.execute(select(m.c.sha256, m.c.subject)).all())
    for name in ("msg_25.txt", "msg_43.txt"):  # they start with a From_ line
        raw = (d / name).read_bytes()
        assert raw.startswith(b"From ")
        assert subjects[wsha(raw)], name  # stored whole, parsed past the From_ line
    _, forced = import_path(store, d, fmt="eml", force=True)
    assert forced.errors == [] and forced.archived == len(skipped) + 1


def test_account_names_are_case_insensitive_as_in_the_config(store, engine, tmp_path):
    from sqlalchemy import select

    from archiver.db import schema
    from archiver.store.ingest import MessageStore, Origin
    from archiver.store.spool import Spool

    a = store.store(Spool.from_bytes(b"Subject: a\r\n\r\nA\r\n"), Origin("Sales"))
    b = MessageStore(engine).store(Spool.from_bytes(b"Subject: b\r\n\r\nB\r\n"), Origin("SALES"))
    c = MessageStore(engine).store(Spool.from_bytes(b"Subject: a\r\n\r\nA\r\n"), Origin("sales"))
    assert c.outcome == "known"  # the same import under the same account
    assert {a.outcome, b.outcome} == {"archived"}
    with engine.connect() as conn:
        assert conn.execute(select(schema.accounts.c.name)).scalars().all() == ["Sales"]


def test_import_account_takes_the_configured_spelling(tmp_path, db_url, engine):
    from sqlalchemy import select

    from archiver.db import schema
    from tests.conftest import run_cli

    cfg = tmp_path / "config.toml"
    cfg.write_text(f'[archive]\ndatabase = "{db_url}"\n\n[[accounts]]\nname = "sales"\n'
                   'host = "pop.example.com"\nusername = "u"\npassword = "env:UNSET_PW"\n')
    (tmp_path / "m.eml").write_bytes(b"Subject: x\n\nbody\n")
    r = run_cli("import", str(tmp_path / "m.eml"), "--account", "SALES", config=cfg)
    assert r.exit_code == 0, r
    with engine.connect() as conn:
        assert conn.execute(select(schema.accounts.c.name)).scalars().all() == ["sales"]
