"""Building configs with POP3 accounts for collector tests, through the real loader."""

from __future__ import annotations

import json
from pathlib import Path

from archiver.config import Config, load_config


def toml_value(value) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, (int, float)):
        return str(value)
    return json.dumps(str(value))


def write_config(directory: Path, db_url: str, accounts: list[dict], extra: str = "") -> Path:
    """config.toml in ``directory`` with ``accounts`` (dicts of account keys)."""
    lines = ["[archive]", f"database = {toml_value(db_url)}", ""]
    for acc in accounts:
        lines.append("[[accounts]]")
        lines += [f"{k} = {toml_value(v)}" for k, v in acc.items()]
        lines.append("")
    path = directory / "config.toml"
    path.write_text("\n".join(lines) + extra, encoding="utf-8")
    return path


def make_config(directory: Path, db_url: str, *accounts: dict) -> Config:
    return load_config(write_config(directory, db_url, list(accounts)))


def account_for(server, name: str = "acct", **overrides) -> dict:
    """Account keys for a scripted server (plain POP3 on loopback, user/pass)."""
    acc = {"name": name, "host": server.host, "port": server.port, "tls": "none",
           "username": "user", "password": "pass", "timeout": "10s"}
    acc.update(overrides)
    return acc
