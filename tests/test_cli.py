"""The command line as a newcomer uses it, in subprocesses, on every backend."""

from __future__ import annotations

import hashlib
import json

from sqlalchemy import text

from archiver.db.engine import SCHEMA_REVISION, create_archive_engine
from archiver.store.spool import to_wire_form
from tests.conftest import run_cli

M1 = b"From: Alice <alice@example.com>\nTo: bob@example.org\nSubject: Quarterly report\n" \
     b"Date: Tue, 3 Mar 2026 09:00:00 +0000\nMessage-ID: <q1@example.com>\n\nNumbers attached.\n"
M2 = b"From: carol@example.com\nTo: dave@example.org\nSubject: =?utf-8?q?Gr=C3=BC=C3=9Fe?=\n\nHallo\n"


def write_mbox(path, messages):
    with open(path, "wb") as fh:
        for m in messages:
            fh.write(b"From x Thu Jan  1 00:00:00 2026\n" + m + b"\n")


def test_newcomer_flow(tmp_path, db_url):
    """init → import → status → show --raw → verify → tamper → verify names the message."""
    cfg = tmp_path / "config.toml"
    cfg.write_text(f'[archive]\ndatabase = "{db_url}"\n')
    r = run_cli("init", config=cfg)
    assert r.exit_code == 0, r
    assert "kept existing" in r.stdout

    mbox = tmp_path / "old.mbox"
    write_mbox(mbox, [M1, M2])
    r = run_cli("import", str(mbox), "--json", config=cfg)
    assert r.exit_code == 0, r
    assert r.json() == {"files": 1, "messages": 2, "archived": 2, "duplicates": 0, "errors": []}
    r = run_cli("import", str(mbox), "--json", config=cfg)
    assert r.json()["archived"] == 0 and r.json()["duplicates"] == 2

    r = run_cli("status", "--json", config=cfg)
    assert r.exit_code == 0, r
    status = r.json()
    wire1, wire2 = to_wire_form(M1), to_wire_form(M2)
    assert status["messages"] == 2 and status["bytes"] == len(wire1) + len(wire2)
    assert status["accounts"][0]["account"] == "import"
    assert status["accounts"][0]["messages"] == 2
    assert status["accounts"][0]["last_run"] is None

    sha1 = hashlib.sha256(wire1).hexdigest()
    r = run_cli("show", sha1[:12], "--raw", config=cfg)
    assert r.exit_code == 0, r
    assert r.stdout_bytes == wire1
    r = run_cli("show", sha1[:8], config=cfg)
    assert "Quarterly report" in r.stdout and "Numbers attached." in r.stdout
    r = run_cli("show", hashlib.sha256(wire2).hexdigest(), "--json", config=cfg)
    details = r.json()
    assert details["subject"] == "Grüße" and details["id"] == details["sha256"]
    assert details["to"] == ["dave@example.org"] and details["accounts"] == ["import"]

    r = run_cli("verify", config=cfg)
    assert r.exit_code == 0, r
    assert "OK: 2 messages" in r.stdout
    # The views above were audited, and the chain is intact.
    r = run_cli("verify", "--json", config=cfg)
    assert r.json()["audit"] == {"entries": 3, "ok": True, "problems": []}

    # Edit one stored chunk by hand: verify exits 1 naming that message.
    engine = create_archive_engine(db_url)
    with engine.begin() as conn:
        mid = conn.execute(text("SELECT id FROM messages WHERE sha256 = :s"), {"s": sha1}).scalar()
        conn.execute(text("UPDATE message_chunks SET data = :d WHERE message_id = :m"),
                     {"d": b"tampered", "m": mid})
    engine.dispose()
    r = run_cli("verify", config=cfg)
    assert r.exit_code == 1
    assert sha1 in r.stderr and "DAMAGED" in r.stderr
    assert hashlib.sha256(wire2).hexdigest() not in r.stderr
    r = run_cli("verify", "--json", config=cfg)
    assert r.exit_code == 1 and [d["id"] for d in r.json()["damaged"]] == [sha1]


def test_tampered_but_decompressible_chunk(tmp_path, db_url):
    """A chunk replaced with other valid content is caught by the hash, not the decoder."""
    import zstandard

    cfg = tmp_path / "config.toml"
    cfg.write_text(f'[archive]\ndatabase = "{db_url}"\n')
    eml = tmp_path / "m.eml"
    eml.write_bytes(M1)
    assert run_cli("import", str(eml), config=cfg).exit_code == 0
    engine = create_archive_engine(db_url)
    forged = zstandard.ZstdCompressor().compress(to_wire_form(M1).replace(b"Numbers", b"Numberz"))
    with engine.begin() as conn:
        conn.execute(text("UPDATE message_chunks SET data = :d"), {"d": forged})
    engine.dispose()
    r = run_cli("verify", config=cfg)
    assert r.exit_code == 1 and "hashes to" in r.stderr


def test_audit_tampering_is_detected(tmp_path, db_url):
    cfg = tmp_path / "config.toml"
    cfg.write_text(f'[archive]\ndatabase = "{db_url}"\n')
    eml = tmp_path / "m.eml"
    eml.write_bytes(M1)
    run_cli("import", str(eml), config=cfg)
    sha1 = hashlib.sha256(to_wire_form(M1)).hexdigest()
    for _ in range(3):
        assert run_cli("show", sha1, config=cfg).exit_code == 0
    engine = create_archive_engine(db_url)
    with engine.begin() as conn:
        conn.execute(text("UPDATE audit_log SET actor = 'someone-else' WHERE id = "
                          "(SELECT min_id FROM (SELECT min(id) AS min_id FROM audit_log) AS t)"))
    engine.dispose()
    r = run_cli("verify", "--json", config=cfg)
    assert r.exit_code == 1
    problems = r.json()["audit"]["problems"]
    assert len(problems) == 1 and "changed" in problems[0]


def test_config_error_exits_2_and_touches_nothing(tmp_path):
    cfg = tmp_path / "config.toml"
    cfg.write_text('[archive]\ndatabase = "sqlite:///a.db"\n[[accounts]]\nname = "x"\nport = 0\n')
    r = run_cli("status", config=cfg)
    assert r.exit_code == 2
    assert "accounts[0].port: must be 1-65535, got 0" in r.stderr
    assert "accounts[0].host: required key is missing" in r.stderr
    assert not (tmp_path / "a.db").exists()
    r = run_cli("status", "--json", config=cfg)
    assert r.exit_code == 2 and "accounts[0].port" in r.json()["error"]


def test_missing_config_and_schema(tmp_path):
    r = run_cli("status", config=tmp_path / "nope.toml")
    assert r.exit_code == 2 and "not found" in r.stderr and "archiver init" in r.stderr
    cfg = tmp_path / "config.toml"
    cfg.write_text('[archive]\ndatabase = "sqlite:///fresh.db"\n')
    r = run_cli("status", config=cfg)
    assert r.exit_code == 1 and "archiver init" in r.stderr


def test_init_writes_sample_and_db_commands(tmp_path):
    cfg = tmp_path / "sub" / "config.toml"
    r = run_cli("init", "--json", config=cfg)
    assert r.exit_code == 0, r
    out = r.json()
    assert out["config_created"] and out["revision"] == SCHEMA_REVISION and out["revision_before"] is None
    assert (tmp_path / "sub" / "archive.db").exists()  # relative to the config file
    assert json.loads(run_cli("db", "current", "--json", config=cfg).stdout)["up_to_date"]
    r = run_cli("db", "check", config=cfg)
    assert r.exit_code == 0 and "no drift" in r.stdout
    r = run_cli("init", config=cfg)
    assert "kept existing" in r.stdout and "up to date" in r.stdout


def test_show_bad_ids(tmp_path, db_url):
    cfg = tmp_path / "config.toml"
    cfg.write_text(f'[archive]\ndatabase = "{db_url}"\n')
    r = run_cli("show", "abc", config=cfg)
    assert r.exit_code == 2 and "at least 8" in r.stderr
    r = run_cli("show", "0123456789abcdef", config=cfg)
    assert r.exit_code == 1 and "no message" in r.stderr


def test_help_is_useful():
    r = run_cli("--help")
    assert r.exit_code == 0
    for command in ("init", "import", "show", "status", "verify", "collect", "check", "db"):
        assert command in r.stdout
    for sub in (["import", "--help"], ["show", "--help"], ["db", "--help"], ["collect", "--help"]):
        r = run_cli(*sub)
        assert r.exit_code == 0 and len(r.stdout) > 200, sub


def test_show_raw_refuses_tampered_content(tmp_path, db_url):
    """Content replaced with other valid data: show --raw prints nothing and exits 1."""
    import zstandard

    cfg = tmp_path / "config.toml"
    cfg.write_text(f'[archive]\ndatabase = "{db_url}"\n')
    eml = tmp_path / "m.eml"
    eml.write_bytes(M1)
    assert run_cli("import", str(eml), config=cfg).exit_code == 0
    sha1 = hashlib.sha256(to_wire_form(M1)).hexdigest()
    forged = zstandard.ZstdCompressor().compress(to_wire_form(M1).replace(b"Numbers", b"Numberz"))
    engine = create_archive_engine(db_url)
    with engine.begin() as conn:
        conn.execute(text("UPDATE message_chunks SET data = :d"), {"d": forged})
    engine.dispose()
    r = run_cli("show", sha1, "--raw", config=cfg)
    assert r.exit_code == 1 and r.stdout_bytes == b""
    assert sha1 in r.stderr and "verify" in r.stderr


def test_status_shows_no_message_content(tmp_path, db_url):
    """status is the ops command: counts and runs, never a subject, sender or id."""
    cfg = tmp_path / "config.toml"
    cfg.write_text(f'[archive]\ndatabase = "{db_url}"\n')
    mbox = tmp_path / "a.mbox"
    write_mbox(mbox, [M1, M2])
    assert run_cli("import", str(mbox), config=cfg).exit_code == 0
    r = run_cli("status", "--json", config=cfg)
    assert r.exit_code == 0 and r.json()["messages"] == 2 and "recent" not in r.json()
    text = run_cli("status", config=cfg).stdout + r.stdout
    for m in (M1, M2):
        assert hashlib.sha256(to_wire_form(m)).hexdigest()[:12] not in text
    for word in ("Quarterly", "Numbers attached", "alice@"):
        assert word not in text


def test_import_rejects_bad_account_and_empty_sources(tmp_path, db_url):
    cfg = tmp_path / "config.toml"
    cfg.write_text(f'[archive]\ndatabase = "{db_url}"\n')
    eml = tmp_path / "m.eml"
    eml.write_bytes(M1)
    for bad in ("", "bad/name!", "x" * 65):
        r = run_cli("import", str(eml), "--account", bad, config=cfg)
        assert r.exit_code == 2 and "--account" in r.stderr, (bad, r)
    empty = tmp_path / "empty"
    empty.mkdir()
    (empty / "notes.txt").write_text("not mail")
    r = run_cli("import", str(empty), config=cfg)
    assert r.exit_code == 2 and "found no mail" in r.stderr
    r = run_cli("import", str(empty), "--format", "mbox", config=cfg)
    assert r.exit_code == 2 and "no mbox files" in r.stderr
    r = run_cli("import", str(tmp_path / "nope"), config=cfg)
    assert r.exit_code == 2 and "no such file" in r.stderr
    engine = create_archive_engine(db_url)
    with engine.connect() as conn:
        assert conn.execute(text("SELECT count(*) FROM accounts")).scalar() == 0
    engine.dispose()


def test_import_detects_a_folder_of_mbox_files(tmp_path, db_url):
    cfg = tmp_path / "config.toml"
    cfg.write_text(f'[archive]\ndatabase = "{db_url}"\n')
    folder = tmp_path / "Mail"
    folder.mkdir()
    write_mbox(folder / "Inbox", [M1])
    write_mbox(folder / "Sent", [M2])
    r = run_cli("import", str(folder), "--json", config=cfg)
    assert r.exit_code == 0 and r.json()["archived"] == 2 and r.json()["files"] == 2


def test_missing_database_is_a_clear_error(tmp_path):
    cfg = tmp_path / "config.toml"
    cfg.write_text('[archive]\ndatabase = "sqlite:///not-there.db"\n')
    r = run_cli("status", config=cfg)
    assert r.exit_code == 1 and "archiver init" in r.stderr
    assert not (tmp_path / "not-there.db").exists()  # a read-only command creates nothing


def test_nonexistent_server_database_is_named(tmp_path, backend):
    if backend == "sqlite":
        return
    from sqlalchemy.engine import make_url

    from tests.dbutil import server_url

    url = make_url(server_url(backend)).set(database="archiver_t_does_not_exist")
    cfg = tmp_path / "config.toml"
    cfg.write_text(f'[archive]\ndatabase = "{url.render_as_string(hide_password=False)}"\n')
    for args in (["status"], ["db", "upgrade"], ["init"]):
        r = run_cli(*args, config=cfg)
        assert r.exit_code == 1, (args, r)
        assert "Traceback" not in r.stderr and "create it first" in r.stderr, (args, r)


def test_init_creates_the_archive_folder_and_schema_commands_never_create_files(tmp_path):
    cfg = tmp_path / "config.toml"
    cfg.write_text('[archive]\ndatabase = "sqlite:///sub/dir/archive.db"\n')
    for command in (("db", "current"), ("db", "check"), ("status",)):
        r = run_cli(*command, config=cfg)
        assert r.exit_code == 1 and "no archive at" in r.stderr and "archiver init" in r.stderr
        assert "Traceback" not in r.stderr
    assert not (tmp_path / "sub").exists()
    r = run_cli("init", config=cfg)
    assert r.exit_code == 0, r
    assert (tmp_path / "sub" / "dir" / "archive.db").is_file()
    assert run_cli("db", "check", config=cfg).exit_code == 0


def test_init_refuses_a_foreign_database_and_an_unwritable_config_path(tmp_path, fresh_db_url):
    from sqlalchemy import inspect

    engine = create_archive_engine(fresh_db_url)
    with engine.begin() as conn:
        conn.execute(text("CREATE TABLE messages (x INTEGER)"))
        conn.execute(text("CREATE TABLE invoices (x INTEGER)"))
    cfg = tmp_path / "config.toml"
    cfg.write_text(f'[archive]\ndatabase = "{fresh_db_url}"\n')
    for command in (("init",), ("db", "upgrade")):
        r = run_cli(*command, config=cfg)
        assert r.exit_code == 1 and "is not empty" in r.stderr and "invoices" in r.stderr, r
        assert "Traceback" not in r.stderr
    assert sorted(inspect(engine).get_table_names()) == ["invoices", "messages"]  # untouched
    engine.dispose()
    (tmp_path / "a-file").write_text("x")
    r = run_cli("init", config=tmp_path / "a-file" / "config.toml")  # its folder is a file
    assert r.exit_code == 2 and "cannot write the sample config" in r.stderr
    assert "Traceback" not in r.stderr


def test_show_numbers_attachments_and_part_writes_one_decoded(tmp_path, db_url):
    from tests.store.test_reading import MULTIPART, PDF

    cfg = tmp_path / "config.toml"
    cfg.write_text(f'[archive]\ndatabase = "{db_url}"\n')
    eml = tmp_path / "parts.eml"
    eml.write_bytes(MULTIPART)
    assert run_cli("import", str(eml), config=cfg).exit_code == 0
    sha = hashlib.sha256(MULTIPART).hexdigest()
    shown = run_cli("show", sha[:12], config=cfg)
    assert shown.exit_code == 0, shown.stderr
    assert "1. report.pdf (application/pdf" in shown.stdout
    assert "3. forwarded.eml (message/rfc822" in shown.stdout
    part = run_cli("show", sha[:12], "--part", "1", config=cfg)
    assert part.exit_code == 0 and part.stdout_bytes == PDF
    engine = create_archive_engine(db_url)
    with engine.connect() as conn:
        actions = conn.execute(text("SELECT action FROM audit_log ORDER BY id")).scalars().all()
    engine.dispose()
    assert actions[-2:] == ["message.view", "message.part"]
    for args, why in ((["--part", "9"], "has no attachment 9: it has 3"),
                      (["--part", "1", "--json"], "--part and --json cannot be combined"),
                      (["--part", "1", "--raw"], "--raw and --part cannot be combined"),
                      (["--part", "0"], "0")):
        r = run_cli("show", sha, *args, config=cfg)
        assert r.exit_code == 2 and why in r.stderr, (args, r.stderr)
        assert PDF[:64] not in r.stdout_bytes  # nothing of the part left
