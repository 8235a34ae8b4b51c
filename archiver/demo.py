"""``archiver demo``: the whole pipeline on a throwaway mailbox, for a newcomer with no server.

Starts a private POP3 server on loopback (Dovecot with TLS when it is
installed, otherwise the project's scripted server), fills it with a few
hundred sample messages, writes a config and a fresh SQLite archive into the
demo folder, collects twice (the second pass finds nothing new), and stops
the server.
"""

from __future__ import annotations

import shutil
import tempfile
from collections.abc import Callable
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path

from archiver.errors import UsageError

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
def demo_mailbox(messages: list[bytes], workdir: Path):
    """Yield (account keys for config.toml, server description) for a loaded mailbox."""
    from archiver.testing.dovecot import find_dovecot

    if find_dovecot():
        from archiver.testing.dovecot import Dovecot

        server = Dovecot(workdir / "dovecot")
        server.add_user(DEMO_USER, DEMO_PASSWORD)
        server.deliver_many(DEMO_USER, messages)
        with server:
            yield ({"host": "localhost", "port": server.pop3s_port, "tls": "implicit",
                    "ca_file": str(server.ca_file)},
                   f"a private Dovecot (POP3S on localhost:{server.pop3s_port})")
        return
    from archiver.testing.pop3server import ScriptedPOP3Server

    with ScriptedPOP3Server([(None, m) for m in messages],
                            users={DEMO_USER: DEMO_PASSWORD}) as server:
        yield ({"host": server.host, "port": server.port, "tls": "none"},
               f"archiver's scripted POP3 server on {server.host}:{server.port} "
               "(install dovecot-core dovecot-pop3d to use Dovecot with TLS)")


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
    from archiver.collect.service import Collector
    from archiver.config import load_config
    from archiver.db import migrate
    from archiver.db.engine import create_archive_engine
    from archiver.store.store import MessageStore
    from archiver.testing.corpus import demo_messages

    prepare_folder(folder)
    on_phase(f"generating {count} sample messages")
    messages = demo_messages(count)
    with tempfile.TemporaryDirectory(prefix="archiver-demo-") as tmp:
        on_phase("starting a throwaway POP3 mailbox")
        with demo_mailbox(messages, Path(tmp)) as (server_keys, description):
            ca_src = server_keys.pop("ca_file", None)
            if ca_src:
                shutil.copy(ca_src, folder / "demo-ca.pem")
                server_keys["ca_file"] = "demo-ca.pem"
            config_path = folder / "config.toml"
            config_path.write_text(_demo_config(server_keys), encoding="utf-8")
            config = load_config(config_path)
            engine = create_archive_engine(config.archive.database)
            migrate.upgrade(engine)
            store = MessageStore(engine, compression=config.archive.compression)
            result = DemoResult(folder, config_path, description, len(messages))
            with Collector(store) as collector:
                on_phase("collecting")
                result.passes.append(collector.collect(config.accounts[0], progress=progress))
                on_phase("collecting again (nothing should be new)")
                result.passes.append(collector.collect(config.accounts[0]))
    from sqlalchemy import select

    from archiver.db.schema import messages

    with engine.connect() as conn:
        result.sample_id = conn.execute(
            select(messages.c.sha256).where(messages.c.has_attachments.is_(True))
            .order_by(messages.c.sort_date.desc()).limit(1)
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
