"""`archiver demo` without Dovecot: the built-in server, as a user runs it.

The Dovecot variant runs in tests/collect/test_collect_dovecot.py
(test_demo_end_to_end).
"""

from __future__ import annotations

import json

import pytest

from archiver.demo import prepare_folder
from archiver.errors import UsageError
from tests.conftest import run_cli


def test_demo_without_dovecot_collects_from_the_built_in_server(tmp_path):
    # An empty PATH hides dovecot (and its sbin); the demo needs nothing else from it.
    no_dovecot = {"PATH": str(tmp_path)}
    result = run_cli("demo", "--dir", str(tmp_path / "demo"), "--messages", "30", "--json",
                     cwd=tmp_path, env=no_dovecot)
    assert result.exit_code == 0, result
    doc = result.json()
    assert doc["server"].startswith("archiver's built-in POP3 server on 127.0.0.1:")
    first, second = doc["passes"]
    assert (first["status"], first["listed"], first["new"], first["archived"]) == ("ok", 30, 30, 30)
    assert (second["status"], second["listed"], second["new"], second["archived"]) == (
        "ok", 30, 0, 0)
    config = tmp_path / "demo" / "config.toml"
    assert 'tls = "none"' in config.read_text()
    shown = run_cli("show", doc["sample_id"], "--json", config=config)
    assert shown.exit_code == 0, shown
    assert json.loads(shown.stdout)["id"] == doc["sample_id"]

    again = run_cli("demo", "--dir", str(tmp_path / "demo"), "--messages", "5", cwd=tmp_path,
                    env=no_dovecot)  # a demo folder is replaced; the text report
    assert again.exit_code == 0, again
    assert "mailbox: archiver's built-in POP3 server" in again.stdout
    assert "Try next:" in again.stdout


def test_a_folder_that_is_not_a_demo_folder_is_left_alone(tmp_path):
    (tmp_path / "mine").mkdir()
    (tmp_path / "mine" / "notes.txt").write_text("keep me")
    with pytest.raises(UsageError, match="not an archiver demo folder"):
        prepare_folder(tmp_path / "mine")
    assert (tmp_path / "mine" / "notes.txt").read_text() == "keep me"
