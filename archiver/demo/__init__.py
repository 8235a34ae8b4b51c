"""``archiver demo``: the whole pipeline on a throwaway mailbox, for a newcomer with no server.

Starts a private POP3 server on loopback (Dovecot with TLS when it is
installed, otherwise a small built-in server), fills it with a few hundred
sample messages, writes a config and a fresh SQLite archive into the demo
folder, collects twice (the second pass finds nothing new), and stops the
server.

Self-contained, standard library only: ``samples`` (the sample mail),
``loopback`` (the built-in POP3 server), ``dovecot`` (the private Dovecot).
"""

from __future__ import annotations

import shutil
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path

from archiver.demo import dovecot
from archiver.demo.loopback import LoopbackPOP3Server
from archiver.demo.samples import demo_messages
from archiver.errors import UsageError

__all__ = ["DemoResult", "run_demo"]

MARKER = ".archiver-demo"
DEMO_USER = "demo"
DEMO_PASSWORD = "demo-password"


@dataclass
class DemoResult:
    folder: Path
    config: Path
    server: str
    messages: int
    passes: list = field(default_factory=list)
    sample_id: str | None = None


@contextmanager
def demo_mailbox(messages: list[bytes], folder: Path | None = None,
                 ) -> Iterator[tuple[dict, str]]:
    """Yield (account keys for config.toml, server description) for a loaded mailbox;
    a Dovecot keeps its files in ``folder`` when given."""
    if dovecot.find_dovecot():
        with dovecot.DemoDovecot(DEMO_USER, DEMO_PASSWORD, messages,
                                 parent=folder.absolute() if folder else None) as server:
            yield ({"host": server.host, "port": server.port, "tls": "implicit",
                    "ca_file": str(server.ca_file)},
                   f"a private Dovecot (POP3S on {server.host}:{server.port})")
        return
    with LoopbackPOP3Server(DEMO_USER, DEMO_PASSWORD, messages) as loopback:
        yield ({"host": loopback.host, "port": loopback.port, "tls": "none"},
               (f"archiver's built-in POP3 server on {loopback.host}:{loopback.port} "
                "(install dovecot-core dovecot-pop3d to use Dovecot with TLS)"))


def prepare_folder(folder: Path) -> None:
    """Make ``folder`` an empty demo folder; refuse to clobber anything that is not ours."""
    if folder.exists():
        if not (folder / MARKER).exists() and any(folder.iterdir()):
            raise UsageError(f"{folder} exists and is not an archiver demo folder; "
                             "pass another --dir or remove it")
        shutil.rmtree(folder)
    folder.mkdir(parents=True)
    (folder / MARKER).write_text("created by `archiver demo`; safe to delete\n")


def run_demo(folder: Path, count: int, *, on_phase: Callable[[str], None] = lambda s: None,
             progress=None) -> DemoResult:
    """Run the demo into ``folder``; returns what happened for the CLI to print."""
    from archiver.collect.collector import Collector
    from archiver.config import load_config
    from archiver.db import migrate
    from archiver.db.engine import create_archive_engine
    from archiver.store.ingest import MessageStore

    prepare_folder(folder)
    on_phase(f"generating {count} sample messages")
    messages = demo_messages(count)
    on_phase("starting a throwaway POP3 mailbox")
    with demo_mailbox(messages, folder) as (server_keys, description):
        ca_src = server_keys.pop("ca_file", None)
        if ca_src:
            shutil.copy(ca_src, folder / "demo-ca.pem")
            server_keys["ca_file"] = "demo-ca.pem"
        config_path = folder / "config.toml"
        config_path.write_text(_demo_config(server_keys), encoding="utf-8")
        config = load_config(config_path)
        engine = create_archive_engine(config.archive.database.reveal())
        migrate.upgrade(engine)
        store = MessageStore(engine, compression=config.archive.compression)
        result = DemoResult(folder, config_path, description, len(messages))
        with Collector(store) as collector:
            on_phase("collecting")
            result.passes.append(collector.collect(config.accounts[0], progress=progress))
            on_phase("collecting again (nothing should be new)")
            result.passes.append(collector.collect(config.accounts[0]))
    from sqlalchemy import select

    from archiver.db import schema
    from archiver.db.unit import read_only

    with read_only(engine) as conn:
        result.sample_id = conn.execute(
            select(schema.messages.c.sha256).where(schema.messages.c.has_attachments.is_(True))
            .order_by(schema.messages.c.sort_date.desc()).limit(1)
        ).scalar()
    engine.dispose()
    return result


def _demo_config(server: dict) -> str:
    lines = [
        "# Written by `archiver demo`. The demo mailbox is gone once the demo ends,",
        "# so `collect` with this file fails to connect; everything else works.",
        "",
        "[archive]",
        'database = "sqlite:///archive.db"',
        "",
        "[[accounts]]",
        'name = "demo"',
    ]
    for key, value in server.items():
        lines.append(f"{key} = {value}" if isinstance(value, int) else f'{key} = "{value}"')
    lines += [
        f'username = "{DEMO_USER}"',
        f'password = "{DEMO_PASSWORD}"',
        "# The demo keeps everything on the server; see the README for delete_after",
        "# and leave_on_server = false.",
        "leave_on_server = true",
        "",
    ]
    return "\n".join(lines)
