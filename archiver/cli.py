"""The ``archiver`` command line (DESIGN.md §4): thin commands over the services.

Exit codes: 0 ok, 1 the work failed (an account failed, verify found damage),
2 bad usage or bad config. Every reporting command takes ``--json`` and then
prints exactly one JSON document on stdout; errors go to stderr (and, with
``--json``, also as ``{"error": ...}`` on stdout so scripts always get JSON).
"""

from __future__ import annotations

import logging
import re
import sys
from functools import cached_property
from pathlib import Path
from typing import TYPE_CHECKING, Any

import click

from archiver import __version__
from archiver.errors import ArchiverError, ConfigError, UsageError

if TYPE_CHECKING:
    from archiver.collect.collector import PassProgress
else:  # imported by the commands that collect: start-up time counts for every command
    PassProgress = object

#: The rule for account names (config.toml accounts[].name, import --account).
ACCOUNT_NAME = re.compile(r"[A-Za-z0-9._-]{1,64}")


class App:
    """What commands share: the config path, and lazily the config, engine and store."""

    def __init__(self, config_path: str | None) -> None:
        self.config_option = config_path
        self.json = False

    @cached_property
    def config_path(self) -> Path:
        from archiver.config import resolve_config_path

        return resolve_config_path(self.config_option)

    @cached_property
    def config(self):
        from archiver.config import load_config

        return load_config(self.config_path)

    @cached_property
    def engine(self):
        from archiver.db.engine import create_archive_engine

        return create_archive_engine(self.database_url)

    @property
    def database_url(self) -> str:
        """The full archive URL (password included): for the engine only, never shown."""
        return self.config.archive.database.reveal()  # env:/file: looked up here (exit 2)

    def ready_engine(self):
        """The engine, after checking the schema is this version's (else a clear error)."""
        from archiver.db.engine import require_current_schema

        require_current_schema(self.engine)
        return self.engine

    @cached_property
    def store(self):
        from archiver.store.ingest import MessageStore

        return MessageStore(self.ready_engine(), compression=self.config.archive.compression)


pass_app = click.make_pass_decorator(App)


def json_option(f):
    def callback(ctx: click.Context, _param, value: bool) -> bool:
        app = ctx.find_object(App)
        if value and app is not None:
            app.json = True
        return value

    return click.option(
        "--json", "as_json", is_flag=True, expose_value=True, callback=callback,
        help="Print one JSON document on stdout instead of text.",
    )(f)


@click.group(context_settings={"help_option_names": ["-h", "--help"], "max_content_width": 100})
@click.option(
    "--config", "-c", "config_path", metavar="PATH", envvar="ARCHIVER_CONFIG",
    help="Configuration file. Default: ./config.toml (or $ARCHIVER_CONFIG).",
)
@click.option("-v", "--verbose", count=True, help="More log output on stderr (-vv for protocol traces).")
@click.version_option(__version__, prog_name="archiver")
@click.pass_context
def cli(ctx: click.Context, config_path: str | None, verbose: int) -> None:
    """Archive mail from POP3 accounts, byte-exact and deduplicated, with
    retention, legal holds, search and an audit trail.

    \b
    First steps:
      archiver init                  write ./config.toml and create the archive
      archiver demo                  see the whole pipeline on a throwaway mailbox
      archiver import MAILBOX        back-fill from mbox, maildir or .eml files
      archiver status                what the archive holds
      archiver show ID --raw         one message, byte for byte

    Exit codes: 0 ok, 1 the work failed, 2 bad usage or bad configuration.
    """
    level = logging.WARNING if verbose == 0 else logging.INFO if verbose == 1 else logging.DEBUG
    logging.basicConfig(level=level, format="%(asctime)s %(levelname)s %(name)s: %(message)s",
                        stream=sys.stderr)
    ctx.obj = App(config_path)


# -- init / db / config --------------------------------------------------------


@cli.command()
@json_option
@pass_app
def init(app: App, as_json: bool) -> None:
    """Write a commented sample config.toml (if none exists) and create or upgrade the schema.

    Safe to run again: an existing config.toml is never overwritten, and an
    up-to-date schema is left as it is.
    """
    from archiver.config import SAMPLE_CONFIG
    from archiver.db import migrate
    from archiver.db.boundary import describe_url

    path = app.config_path
    wrote = False
    if not path.exists():
        try:
            path.parent.mkdir(parents=True, exist_ok=True)
            path.write_text(SAMPLE_CONFIG, encoding="utf-8")
        except OSError as exc:
            raise UsageError(f"cannot write the sample config to {path}: "
                             f"{exc.strerror or exc}; choose another --config path") from exc
        wrote = True
    _make_sqlite_folder(app.database_url)
    before, after = migrate.upgrade(app.engine)
    where = describe_url(app.database_url)
    if app.json:
        from archiver.ui import print_json

        print_json({"config": str(path), "config_created": wrote, "database": where,
                    "revision_before": before, "revision": after})
        return
    click.echo(f"{'wrote' if wrote else 'kept existing'} {path}")
    if before == after:
        click.echo(f"archive {where} is up to date (schema {after})")
    else:
        click.echo(f"archive {where}: schema {before or 'none'} -> {after}")
    if wrote:
        click.echo(f"next: add your POP3 accounts to {path}, then run `archiver check --connect`")


def _make_sqlite_folder(url: str) -> None:
    """`init` creates the folder of a SQLite archive, as it does the config's."""
    from archiver.db.engine import sqlite_file_missing

    missing = sqlite_file_missing(url)
    if missing:
        Path(missing).parent.mkdir(parents=True, exist_ok=True)


def _existing_archive(app: App) -> None:
    """Read-only schema commands must not create an empty SQLite file at a mistyped path."""
    from archiver.db.engine import sqlite_file_missing
    from archiver.errors import DatabaseError

    missing = sqlite_file_missing(app.database_url)
    if missing:
        raise DatabaseError(f"there is no archive at {missing} yet; run `archiver init` to "
                            "create it (or fix archive.database in config.toml)")


@cli.group()
def db() -> None:
    """Archive schema: upgrade, show the revision, check for drift."""


@db.command("upgrade")
@json_option
@pass_app
def db_upgrade(app: App, as_json: bool) -> None:
    """Upgrade the schema to this version of archiver (back up production databases first)."""
    from archiver.db import migrate
    from archiver.db.boundary import describe_url

    before, after = migrate.upgrade(app.engine)
    if app.json:
        from archiver.ui import print_json

        print_json({"database": describe_url(app.database_url), "revision_before": before,
                    "revision": after})
    elif before == after:
        click.echo(f"schema already at {after}")
    else:
        click.echo(f"schema upgraded {before or 'none'} -> {after}")


@db.command("current")
@json_option
@pass_app
def db_current(app: App, as_json: bool) -> None:
    """Print the schema revision of the archive database and the one this archiver expects."""
    from archiver.db import migrate
    from archiver.db.boundary import describe_url
    from archiver.db.engine import SchemaState, schema_status

    _existing_archive(app)
    status, head = schema_status(app.engine), migrate.head_revision()
    rev, where = status.revision, describe_url(app.database_url)
    if app.json:
        from archiver.ui import print_json

        print_json({"database": where, "revision": rev, "head": head,
                    "up_to_date": rev == head, "usable": status.usable,
                    "state": status.state.value})
        return
    if status.state is SchemaState.CURRENT:
        state = "up to date"
    elif status.state is SchemaState.NEWER_COMPATIBLE:
        state = f"newer than this archiver's {head}, and compatible with it"
    else:
        state = status.problem(where) or ""
    click.echo(f"{rev or 'none (empty database)'} ({state})")


@db.command("check")
@json_option
@pass_app
def db_check(app: App, as_json: bool) -> None:
    """Check that the live schema matches what this archiver's models expect (exit 1 on drift)."""
    from archiver.db import migrate

    _existing_archive(app)
    report = migrate.check(app.engine)
    if app.json:
        from archiver.ui import print_json

        print_json({"ok": report.ok, "revision": report.revision, "head": report.head,
                    "differences": report.differences})
    elif report.ok:
        click.echo(f"schema {report.revision} matches archiver's tables: no drift")
    else:
        if report.revision != report.head:
            click.echo(f"schema is at {report.revision or 'none'}, expected {report.head}", err=True)
        for diff in report.differences:
            click.echo(f"drift: {diff}", err=True)
    if not report.ok:
        sys.exit(1)


@cli.group("config")
def config_group() -> None:
    """Inspect the configuration."""


@config_group.command("show")
@json_option
@pass_app
def config_show(app: App, as_json: bool) -> None:
    """Print the effective configuration (defaults filled in, secrets masked)."""
    shown = app.config.to_display()
    if app.json:
        from archiver.ui import print_json

        print_json(shown)
        return
    click.echo(f"# effective configuration from {app.config_path}")
    click.echo(_to_toml(shown))


def _to_toml(data: dict) -> str:
    import json

    def value(v) -> str:
        if isinstance(v, bool):
            return "true" if v else "false"
        if isinstance(v, (int, float)):
            return str(v)
        if isinstance(v, dict):
            return "{ " + ", ".join(f"{k} = {value(x)}" for k, x in v.items() if x is not None) + " }"
        if isinstance(v, (list, tuple)):
            return "[" + ", ".join(value(x) for x in v) + "]"
        return json.dumps(str(v), ensure_ascii=False)

    def pair(k, v) -> str:
        return f"# {k} = (not set)" if v is None else f"{k} = {value(v)}"

    lines: list[str] = []
    for section, body in data.items():
        if isinstance(body, dict):
            lines.append(f"\n[{section}]")
            tables = {k: v for k, v in body.items() if isinstance(v, list) and v and isinstance(v[0], dict)}
            for k, v in body.items():
                if k not in tables:
                    lines.append(pair(k, v))
            for k, items in tables.items():
                for item in items:
                    lines.append(f"\n[[{section}.{k}]]")
                    lines.extend(pair(ik, iv) for ik, iv in item.items())
        elif isinstance(body, list):
            for item in body:
                lines.append(f"\n[[{section}]]")
                lines.extend(pair(k, v) for k, v in item.items())
        else:
            lines.append(pair(section, body))
    return "\n".join(lines).strip()


# -- import / show / status / verify ------------------------------------------


@cli.command("import")
@click.argument("path", type=click.Path(path_type=Path))
@click.option("--format", "fmt", type=click.Choice(["mbox", "mboxrd", "maildir", "eml"]),
              help="Source format. Default: detected file by file (see above).")
@click.option("--account", default="import", show_default=True, metavar="NAME",
              help="Account the imported messages are recorded under.")
@click.option("--force", is_flag=True,
              help="Archive files that do not look like mail (no header block) anyway.")
@json_option
@pass_app
def import_cmd(app: App, path: Path, fmt: str | None, account: str, force: bool,
               as_json: bool) -> None:
    """Back-fill the archive from mbox files, maildirs, or single-message files.

    Messages are stored in POP3 wire form (bare LF becomes CRLF) with the same
    dedup rules as collection: importing the same files again stores nothing
    new, and a message imported now and collected later is stored once.

    \b
    Formats:
      maildir  new/ and cur/ of the maildir and its Maildir++ .Sub folders
      eml      every file under PATH is one message, whatever its name
      mbox     files starting with a "From " line, split at "From " lines;
               ">From " quoting is kept as found
      mboxrd   the same, and one ">" is removed from ">From ", ">>From ", ...

    Without --format each file is detected on its own: *.eml is one message,
    a file starting with "From " an mbox, a file whose first line is a header
    field one message, a folder with cur/ or new/ a maildir; other files
    (and hidden ones) are skipped and listed with the reason ("skipped" in
    --json). A file named as PATH is always taken.

    A message without a header block (its first line, after an optional
    "From " line, is not "Name: value") is refused: binaries and source files
    are not mail. --force archives them anyway. A file, folder or message that
    cannot be read or is refused is reported in "errors" and the rest is
    imported. Exit 1 if anything was refused or could not be read.
    """
    from archiver.importer import MailSource, display_path, import_path
    from archiver.ui import human_size, print_json, progress_bar

    if not ACCOUNT_NAME.fullmatch(account):
        raise UsageError(f"--account {account!r}: an account name is 1-64 letters, digits, "
                         "'.', '_' or '-' (as accounts[].name in config.toml)")
    # Names are case-insensitive: a configured account keeps its own spelling.
    account = next((a.name for a in app.config.accounts if a.name.lower() == account.lower()),
                   account)
    source = MailSource(path, fmt)  # checks the path before the archive is touched
    store = app.store
    total = source.total_bytes()
    with progress_bar(f"importing {display_path(path.name)}", total, unit="bytes",
                      enabled=True) as bar:
        _, report = import_path(store, path, fmt=fmt, account=account, force=force,
                                source=source, progress=lambda n, _r: bar.advance(n))
    if app.json:
        print_json(report.to_json())
    else:
        click.echo(
            f"{report.files} file(s), {report.messages} message(s): {report.archived} archived "
            f"({human_size(report.bytes)}), {report.duplicates} already in the archive, "
            f"{len(report.errors)} failed, {len(report.skipped)} skipped"
        )
        for skip in report.skipped:
            click.echo(f"skipped {skip['source']}: {skip['reason']}", err=True)
        for err in report.errors:
            click.echo(f"failed {err['source']}: {err['error']}", err=True)
    if report.errors:
        sys.exit(1)


@cli.command()
@click.argument("message_id", metavar="ID")
@click.option("--raw", is_flag=True, help="Write the exact stored bytes (an .eml) to stdout.")
@click.option("--part", type=click.IntRange(min=1), default=None, metavar="N",
              help="Write attachment N (as numbered by `show`), decoded, to stdout.")
@json_option
@pass_app
def show(app: App, message_id: str, raw: bool, part: int | None, as_json: bool) -> None:
    """Show one message: headers, recipients, numbered attachments and text.

    ID is the message's SHA-256, or any unique prefix of at least 8 hex
    digits. With --raw the exact stored
    bytes are written to stdout: `archiver show ID --raw > message.eml`;
    with --part N attachment N, decoded: `archiver show ID --part 2 > file`.
    Every view is recorded in the audit trail.
    """
    from archiver import audit
    from archiver.db.unit import unit_of_work
    from archiver.store import reading

    if (raw or part) and as_json:
        raise UsageError(f"--{'raw' if raw else 'part'} and --json cannot be combined")
    if raw and part:
        raise UsageError("--raw and --part cannot be combined: --raw writes the whole message")
    engine = app.ready_engine()
    who = {"actor": audit.current_actor(), "client": "cli"}
    if raw:
        # Verified and audited in one unit of work; the bytes leave only after
        # it committed. A damaged message is an error, never evidence handed
        # over as if it were intact.
        with unit_of_work(engine) as conn:
            spool = reading.raw_message(conn, message_id, **who)
        with spool:
            out = sys.stdout.buffer
            for block in spool.iter_blocks(1024 * 1024):
                out.write(block)
            out.flush()
        return
    if part:
        # Verified, extracted and audited in one unit of work; written after it committed.
        with unit_of_work(engine) as conn:
            attachment = reading.message_part(conn, message_id, part, **who)
        sys.stdout.buffer.write(attachment.data)
        sys.stdout.buffer.flush()
        return
    with unit_of_work(engine) as conn:
        details = reading.message_view(conn, message_id, **who)
    if app.json:
        from archiver.ui import print_json

        print_json(details)
        return
    _print_message(details)


def _print_message(d: dict) -> None:
    from archiver.ui import human_size

    rows = [
        ("id", d["id"]),
        ("date", d["date"] or f"(no valid Date header; archived {d['archived_at']})"),
        ("from", d["from"]),
        ("to", ", ".join(d["to"])),
        ("cc", ", ".join(d["cc"])),
        ("subject", d["subject"]),
        ("message-id", d["message_id"]),
        ("size", f"{d['size']} bytes ({human_size(d['size'])})"),
        ("accounts", ", ".join(d["accounts"])),
    ]
    for key, val in rows:
        if val:
            click.echo(f"{key + ':':<12}{val}")
    for dl in d["deliveries"]:
        # What the server did to the same mail (GNU Mailutils adds Status:/X-UID
        # headers to an mbox): both versions are kept, byte-exact.
        if dl["rewrite_of"]:
            click.echo(f"{'rewrite:':<12}the server's rewrite of {dl['rewrite_of']} "
                       f"(account {dl['account']}, UIDL {dl['uidl'] or dl['former_uidl']}): "
                       "the same mail with mailbox status headers changed")
        if dl["rewritten_as"]:
            click.echo(f"{'rewritten:':<12}the server later rewrote this mail as "
                       f"{dl['rewritten_as']} (account {dl['account']}, UIDL "
                       f"{dl['uidl'] or dl['former_uidl']}): mailbox status headers changed")
    for att in d["attachments"]:
        click.echo(f"{'attachment:':<12}{att['part']}. {att['filename'] or '(unnamed)'} "
                   f"({att['content_type']}, {human_size(att['size'])})")
    if d["parse_defects"]:
        click.echo(f"{'defects:':<12}{d['parse_defects']}")
    click.echo("")
    click.echo(d["text"] or "(no text part)")


@cli.command()
@json_option
@pass_app
def status(app: App, as_json: bool) -> None:
    """What the archive holds, and per account: last run, result, error, messages."""
    from archiver.status import archive_status
    from archiver.ui import console, human_size, print_json

    configured = [a.name for a in app.config.accounts]
    from archiver.db.unit import read_only

    with read_only(app.ready_engine()) as conn:
        data = archive_status(conn, configured)
    if app.json:
        print_json(data)
        return
    from rich.table import Table

    out = console()
    out.print(f"{data['messages']} messages, {human_size(data['bytes'])} in the archive")
    if not data["accounts"]:
        out.print("no accounts yet: add [[accounts]] to config.toml, or `archiver import`")
        return
    table = Table(show_edge=False, pad_edge=False)
    for col in ("account", "messages", "last run", "result", "archived", "error"):
        table.add_column(col, overflow="fold")
    for acc in data["accounts"]:
        run = acc["last_run"]
        name = acc["account"] + ("" if acc["configured"] else " (not configured)")
        if run is None:
            table.add_row(name, str(acc["messages"]), "never", "-", "-", "")
        else:
            note = run["error"] or (f"{run['skipped']} left on the server, see `status --json`"
                                    if run["skipped"] else "")
            table.add_row(name, str(acc["messages"]),
                          run["started_at"][:19].replace("T", " ") + " UTC",
                          run["status"], str(run["archived"]), note)
    out.print(table)


@cli.command()
@json_option
@pass_app
def verify(app: App, as_json: bool) -> None:
    """Re-read every stored message, recompute its SHA-256, and check the audit chain.

    Exit 0 when everything is intact; exit 1 naming every message whose
    content no longer matches its id, and every broken audit entry.
    """
    from archiver.db.unit import read_only
    from archiver.store import content
    from archiver.ui import human_size, print_json, progress_bar
    from archiver.verify import verify_archive

    with read_only(app.ready_engine()) as conn:
        _, total = content.count(conn)
        with progress_bar("verifying", total, unit="bytes") as bar:
            report = verify_archive(conn, progress=bar.advance)
    if app.json:
        print_json(report.to_json())
    else:
        for item in report.damaged:
            click.echo(f"DAMAGED {item['id']}: {item['problem']}", err=True)
        for problem in report.audit_problems:
            click.echo(f"AUDIT {problem}", err=True)
        verdict = "OK" if report.ok else "FAILED"
        click.echo(
            f"{verdict}: {report.messages} messages ({human_size(report.bytes)}) checked, "
            f"{len(report.damaged)} damaged; audit trail {report.audit_entries} entries, "
            f"{'intact' if not report.audit_problems else 'BROKEN'}"
        )
    if not report.ok:
        sys.exit(1)


# -- collect / check ----------------------------------------------------------------


def _select_accounts(app: App, names: tuple[str, ...]) -> list:
    """The accounts named on the command line (config order), or every enabled one."""
    config = app.config
    if names:
        return [config.account(name) for name in dict.fromkeys(names)]
    return [a for a in config.accounts if a.enabled]


class _BarProgress(PassProgress):
    """Feeds collection progress into one rich progress task per account."""

    def __init__(self, bar_factory: Any) -> None:
        self._factory = bar_factory
        self._tasks: dict[str, Any] = {}

    def planned(self, account: str, messages: int, total_bytes: int) -> None:
        self._tasks[account] = self._factory(account, total_bytes)

    def fetched(self, account: str, nbytes: int) -> None:
        task = self._tasks.get(account)
        if task is not None:
            task.advance(nbytes)


@cli.command()
@click.option("--account", "-a", "accounts", multiple=True, metavar="NAME",
              help="Collect only this account (repeatable). Default: every enabled account.")
@json_option
@pass_app
def collect(app: App, accounts: tuple[str, ...], as_json: bool) -> None:
    """Run one collection pass now for each account.

    Fetches new messages (by UIDL), stores each byte-exact before anything is
    deleted, applies each account's leave_on_server / delete_after policy,
    and records the run. Exit 1 if any account failed, 2 on bad config.
    """
    from archiver.collect.runner import collect_accounts
    from archiver.ui import print_json

    selected = _select_accounts(app, accounts)
    app.config.resolve_secrets(selected, database=True)  # exit 2 before touching the archive
    store = app.store
    if not selected:
        raise UsageError(f"no enabled accounts in {app.config_path}: add an [[accounts]] table "
                         "(see `archiver init` for a commented sample)")
    from archiver.ui import multi_progress

    _interrupt_on_sigterm()
    with multi_progress() as bars:
        reports = collect_accounts(store, selected, app.config.scheduler.max_concurrent_accounts,
                                   progress=_BarProgress(bars.add_bytes_task))
    if app.json:
        print_json({"accounts": [r.to_json() for r in reports]})
    else:
        _print_collect(reports)
    # A message the pass tried and failed to archive (-ERR, the database refusing
    # it) fails the command; one left by policy (too large, purged) does not.
    if any(r.status != "ok" or r.message_failures for r in reports):
        sys.exit(1)


def _interrupt_on_sigterm() -> None:
    """SIGTERM ends a `collect` like Ctrl-C: the pass commits what it fully
    received, sends no DELE, and its run is recorded as interrupted (without
    this, Python dies on the spot and the run stays "running")."""
    import signal

    def interrupt(_signum: int, _frame: object) -> None:
        raise KeyboardInterrupt

    signal.signal(signal.SIGTERM, interrupt)


def _print_collect(reports) -> None:
    from archiver.ui import human_size

    for r in reports:
        if r.status == "ok":
            line = (f"{r.account}: {r.listed} on server, {r.new} new, {r.archived} archived "
                    f"({human_size(r.bytes)}), {r.duplicates} duplicate(s), "
                    f"{r.deleted_on_server} deleted on server in {r.duration_s:.2f}s")
            if r.rewritten:
                line += f", {r.rewritten} rewritten by the server"
            if r.skipped:
                reasons = ", ".join(f"{n} {why.replace('_', ' ')}"
                                    for why, n in r.skipped_by.items() if n)
                line += f", {r.skipped} left on server ({reasons})"
            if r.deferred:
                line += f", {r.deferred} left for the next pass"
            click.echo(line)
            for warning in r.warnings:
                click.echo(f"{r.account}: warning: {warning}", err=True)
        else:
            click.echo(f"{r.account}: FAILED ({r.error_kind}): {r.error}", err=True)
            if r.archived or r.duplicates:
                click.echo(f"{r.account}: {r.archived} archived before the failure are safe",
                           err=True)


@cli.command()
@click.option("--connect", is_flag=True,
              help="Also log in to every account and report its capabilities and mailbox size "
                   "(nothing is fetched or deleted).")
@click.option("--account", "-a", "accounts", multiple=True, metavar="NAME",
              help="Check only this account (repeatable).")
@json_option
@pass_app
def check(app: App, connect: bool, accounts: tuple[str, ...], as_json: bool) -> None:
    """Validate the configuration; with --connect, log in to each account.

    Reports per account the server's CAPA (including EXPIRE, checked against
    the account's policy), the authentication used, and the message count and
    size. Exit 1 if any account cannot be reached or logged in to.
    """
    from archiver.collect.runner import check_account
    from archiver.ui import print_json

    config = app.config
    selected = [config.account(n) for n in dict.fromkeys(accounts)] if accounts else list(
        config.accounts)
    if connect:
        config.resolve_secrets(selected)  # exit 2 naming the key, before any login
        results = [check_account(a) for a in selected]
    else:
        results = [{"account": a.name, "host": a.host, "port": a.port, "tls": a.tls,
                    "enabled": a.enabled, "status": "not checked"} for a in selected]
    ok = all(r["status"] in ("ok", "not checked") for r in results)
    if app.json:
        print_json({"config": str(app.config_path), "config_ok": True, "accounts": results})
    else:
        click.echo(f"{app.config_path}: configuration OK ({len(config.accounts)} account(s))")
        for r in results:
            if r["status"] == "not checked":
                click.echo(f"{r['account']}: {r['host']}:{r['port']} (tls {r['tls']})"
                           f"{'' if r['enabled'] else ', disabled'}; --connect to log in")
            elif r["status"] == "ok":
                click.echo(f"{r['account']}: OK, {r['messages']} message(s), "
                           f"{r['bytes']} bytes, auth {r['auth']}, tls {r['tls']}")
                click.echo(f"  capabilities: {' '.join(r['capabilities'])}")
            else:
                click.echo(f"{r['account']}: FAILED ({r['error_kind']}): {r['error']}", err=True)
            for w in r.get("warnings", []):
                click.echo(f"  warning: {w}", err=True)
    if not ok:
        sys.exit(1)


# -- demo ---------------------------------------------------------------------------


@cli.command()
@click.option("--dir", "folder", default="archiver-demo", show_default=True,
              type=click.Path(path_type=Path),
              help="Folder for the demo's config.toml and archive (replaced on each run).")
@click.option("--messages", "count", default=300, show_default=True,
              type=click.IntRange(1, 100_000), help="How many sample messages to collect.")
@json_option
@pass_app
def demo(app: App, folder: Path, count: int, as_json: bool) -> None:
    """See the whole pipeline in one command, with no mail server of your own.

    Starts a throwaway POP3 mailbox on loopback (a private Dovecot with TLS
    when `dovecot` is installed, otherwise archiver's built-in server), fills
    it with sample messages, collects them into a fresh SQLite archive in
    --dir, collects again (nothing is new), stops the mailbox, and shows what
    to try next. Ignores --config: the demo writes its own.
    """
    from archiver.demo import run_demo
    from archiver.ui import multi_progress, print_json

    def phase(text: str) -> None:
        if not app.json:
            click.echo(f"- {text}")

    with multi_progress() as bars:
        result = run_demo(folder, count, on_phase=phase,
                          progress=_BarProgress(bars.add_bytes_task))
    first, second = result.passes
    if app.json:
        print_json({"folder": str(result.folder), "config": str(result.config),
                    "server": result.server, "sample_id": result.sample_id,
                    "passes": [first.to_json(), second.to_json()]})
    else:
        click.echo(f"mailbox: {result.server}")
        click.echo("first pass:  ", nl=False)
        _print_collect([first])
        click.echo("second pass: ", nl=False)
        _print_collect([second])
        cfg = result.config
        sample = result.sample_id[:12] if result.sample_id else "ID"
        tries = [
            ("status", "what the archive holds"),
            (f"show {sample}", "a message with an attachment"),
            (f"show {sample} --raw", "its exact bytes (an .eml)"),
            ("verify", "recompute every SHA-256"),
            ("config show", "the demo's configuration"),
        ]
        width = max(len(cmd) for cmd, _ in tries)
        click.echo("\nTry next:")
        for cmd, what in tries:
            click.echo(f"  archiver --config {cfg} {cmd:<{width}}  {what}")
        click.echo('Then point config.toml at your own mailbox: see README.md, '
                   '"Collecting from a real mailbox".')
    if any(p.status != "ok" for p in result.passes):
        sys.exit(1)


# -- entry point -----------------------------------------------------------------


def main(argv: list[str] | None = None) -> None:
    """Console-script entry point: runs the CLI and maps errors to exit codes."""
    try:
        cli.main(args=argv, prog_name="archiver", standalone_mode=False)
    except click.exceptions.Exit as exc:
        sys.exit(exc.exit_code)
    except click.ClickException as exc:
        exc.show()
        sys.exit(exc.exit_code)
    except click.exceptions.Abort:
        click.echo("aborted", err=True)
        sys.exit(130)
    except ArchiverError as exc:
        _report_error(exc, sys.argv[1:] if argv is None else argv)
        sys.exit(exc.exit_code)
    except KeyboardInterrupt:
        click.echo("interrupted", err=True)
        sys.exit(130)
    sys.exit(0)


def _report_error(exc: ArchiverError, argv: list[str]) -> None:
    wants_json = "--json" in argv
    prefix = "config error" if isinstance(exc, ConfigError) else "error"
    click.echo(f"archiver: {prefix}: {exc}", err=True)
    if wants_json:
        from archiver.ui import print_json

        print_json({"error": str(exc), "kind": type(exc).__name__})
