"""The models of config.toml: frozen, validated, one class per table.

Each model is a table of the file. One wrap validator (``_Model``) runs for
every table: it reports a value that is not a table, unknown keys (with a
did-you-mean), and the rules that involve several keys of the table
(``_check_table``: ``interval`` vs ``schedule``, ``tls = "none"`` to a remote
host, duplicate names), together with the per-key mistakes, so one run shows
every problem. Per-key checks live in ``validators``.
"""

# No ``from __future__ import annotations`` here: pydantic would compile and
# evaluate every annotation string when the models are built, on every start.

import os
from collections.abc import Iterable, Mapping
from datetime import timedelta
from pathlib import Path
from typing import Annotated, Any, ClassVar, Literal, Self

from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    ModelWrapValidatorHandler,
    PlainValidator,
    ValidationError,
    ValidationInfo,
    model_validator,
)
from pydantic_core import InitErrorDetails, PydanticCustomError

from archiver import units
from archiver.config import validators as v
from archiver.config.messages import one_of, quote, show, suggest, unknown_key
from archiver.config.secrets import DatabaseURL, Secret
from archiver.errors import ConfigError

__all__ = [
    "DEFAULT_CONFIG_PATH", "DEFAULT_DATABASE", "DEFAULT_INTERVAL", "DEFAULT_KEEP",
    "DEFAULT_RETENTION_SCHEDULE", "Account", "ArchiveSettings", "AuthMethod", "Compression",
    "Config", "MetricsSettings", "Problem", "RetentionMatch", "RetentionRule",
    "RetentionSettings", "SchedulerSettings", "TLSMode", "WebSettings",
]

# pydantic looks up third-party plugins through package metadata when the
# first model is built, a scan of every installed distribution on each start;
# archiver uses none.
os.environ.setdefault("PYDANTIC_DISABLE_PLUGINS", "__all__")

DEFAULT_CONFIG_PATH = "config.toml"
DEFAULT_DATABASE = "sqlite:///archive.db"
DEFAULT_INTERVAL = timedelta(minutes=5)
DEFAULT_RETENTION_SCHEDULE = "0 3 * * *"
DEFAULT_KEEP = timedelta(days=7 * 365)
_IMPLICIT_TLS_PORT = 995
_PLAIN_PORT = 110

Compression = Literal["zstd", "none"]
TLSMode = Literal["implicit", "starttls", "none"]
AuthMethod = Literal["auto", "user", "apop", "plain", "xoauth2"]

#: a problem found by a model: where (relative to the table) and what
Problem = tuple[tuple[str | int, ...], str]


class _Model(BaseModel):
    model_config = ConfigDict(
        frozen=True,
        extra="forbid",
        strict=True,  # TOML has real types: port = "995" is a mistake, not a number
        hide_input_in_errors=True,  # inputs may be passwords
    )

    #: attributes that are not keys of config.toml (filled in by loading)
    _not_in_file: ClassVar[frozenset[str]] = frozenset()

    @classmethod
    def file_keys(cls) -> list[str]:
        """The keys this table may have in config.toml, in schema order."""
        return [
            field.alias or attr
            for attr, field in cls.model_fields.items()
            if attr not in cls._not_in_file
        ]

    @model_validator(mode="wrap")
    @classmethod
    def _validate_table(
        cls, data: Any, handler: ModelWrapValidatorHandler[Self], info: ValidationInfo
    ) -> Self:
        if isinstance(data, cls):
            return handler(data)
        if not isinstance(data, Mapping):
            raise v.invalid(f"must be a table, got {show(data)}")
        table = dict(data)
        keys = cls.file_keys()
        known = keys if v.from_file(info) else [*keys, *cls._not_in_file]  # code may set them
        unknown = [key for key in table if key not in known]
        problems = cls._check_table(table)  # sees the table as written, unknown keys too
        for key in unknown:
            del table[key]
        problems += [((key,), unknown_key(key, keys)) for key in unknown]
        return cls._finish(_validate_with(cls, table, handler, problems), info)

    @classmethod
    def _check_table(cls, table: dict[str, Any]) -> list[Problem]:
        """Rules involving several keys; may fill in defaults that depend on other keys."""
        return []

    @classmethod
    def _finish(cls, model: Self, info: ValidationInfo) -> Self:
        """The validated model, completed with what only the whole table knows."""
        return model


def _validate_with(
    cls: type[BaseModel], data: dict[str, Any], handler: ModelWrapValidatorHandler[Any],
    problems: list[Problem],
) -> Any:
    """Run ``handler`` and report ``problems`` together with its own errors."""
    if not problems:
        return handler(data)
    details: list[InitErrorDetails] = []
    try:
        handler(data)
    except ValidationError as exc:
        for error in exc.errors(include_url=False):
            detail: InitErrorDetails = {
                "type": (
                    PydanticCustomError(v.CONFIG_ERROR, error["msg"])
                    if error["type"] == v.CONFIG_ERROR else error["type"]
                ),
                "loc": error["loc"],
                "input": None,
            }
            if "ctx" in error and error["type"] != v.CONFIG_ERROR:
                detail["ctx"] = error["ctx"]
            details.append(detail)
    details += [{"type": v.invalid(message), "loc": loc, "input": None}
                for loc, message in problems]
    raise ValidationError.from_exception_data(cls.__name__, details, hide_input=True)


def _duplicates(items: object, what: str, section: str) -> list[Problem]:
    """Problems for names used twice in an array of tables (ignoring case)."""
    if not isinstance(items, (list, tuple)):
        return []
    seen: dict[str, tuple[int, str]] = {}
    problems: list[Problem] = []
    for index, item in enumerate(items):
        name = item.get("name") if isinstance(item, Mapping) else None
        if not isinstance(name, str):
            continue
        if name.lower() in seen:
            first, first_name = seen[name.lower()]
            also = f"{section}[{first}]"
            if first_name != name:
                also += f" {quote(first_name)}; names are compared ignoring case"
            problems.append(((index, "name"), f"duplicate {what} name {show(name)} (also {also})"))
        else:
            seen[name.lower()] = (index, name)
    return problems


class ArchiveSettings(_Model):
    """``[archive]``: where and how messages are stored."""

    database: v.DatabaseValue = Field(DEFAULT_DATABASE, validate_default=True)
    compression: Annotated[Compression, PlainValidator(v.choice(Compression))] = "zstd"


class SchedulerSettings(_Model):
    """``[scheduler]``: polling defaults and when retention runs."""

    interval: v.PositiveDuration = DEFAULT_INTERVAL
    max_concurrent_accounts: v.AtLeastOne = 4
    retention_schedule: v.Cron = DEFAULT_RETENTION_SCHEDULE


class Account(_Model):
    """One ``[[accounts]]`` entry: a POP3 mailbox and its collection policy.

    ``interval`` is ``None`` exactly when ``schedule`` (cron) is set; in a
    loaded ``Config`` an account that sets neither has ``scheduler.interval``.
    ``port`` defaults to 995 for ``tls = "implicit"`` and 110 otherwise.
    ``password`` is looked up on first ``reveal()`` (see ``Config.resolve_secrets``).
    """

    name: v.Name
    host: v.Host
    port: v.Port = _IMPLICIT_TLS_PORT
    tls: Annotated[TLSMode, PlainValidator(v.choice(TLSMode))] = "implicit"
    verify_tls: v.Bool = True
    ca_file: v.ReadableFile | None = None
    username: v.NonEmptyStr
    password: v.SecretValue
    auth: Annotated[AuthMethod, PlainValidator(v.choice(AuthMethod))] = "auto"
    interval: v.PositiveDuration | None = DEFAULT_INTERVAL
    schedule: v.Cron | None = None
    leave_on_server: v.Bool = True
    delete_after: v.Duration | None = None
    max_message_size: v.PositiveSize = 100 << 20
    max_messages_per_pass: v.AtLeastOne = 50_000
    max_bytes_per_pass: v.PositiveSize = 10 << 30
    timeout: v.PositiveDuration = timedelta(seconds=60)
    allow_insecure: v.Bool = False
    enabled: v.Bool = True

    @classmethod
    def _check_table(cls, table: dict[str, Any]) -> list[Problem]:
        if "port" not in table:
            implicit = table.get("tls", "implicit") == "implicit"
            table["port"] = _IMPLICIT_TLS_PORT if implicit else _PLAIN_PORT
        if "schedule" in table and "interval" not in table:
            table["interval"] = None
        problems: list[Problem] = []
        if table.get("interval") is not None and table.get("schedule") is not None:
            problems.append((
                (),
                (
                    "both interval and schedule are set; use interval to poll every so often "
                    "or schedule for a cron timetable, not both"
                ),
            ))
        if table.get("delete_after") is not None and table.get("leave_on_server") is False:
            problems.append((
                ("delete_after",),
                (
                    "only applies with leave_on_server = true; leave_on_server = false already "
                    "deletes each message from the server right after it is archived "
                    "(remove delete_after, or set leave_on_server = true)"
                ),
            ))
        host = table.get("host")
        if (
            table.get("tls") == "none"
            and isinstance(host, str)
            and not v.is_loopback(host)
            and table.get("allow_insecure") is not True
        ):
            problems.append((
                ("tls",),
                (
                    f'"none" sends the password in clear text to {host}; allowed only to a '
                    "loopback address, or set allow_insecure = true on this account"
                ),
            ))
        return problems


class _ListenSettings(_Model):
    listen: v.Listen | None = None

    @property
    def host(self) -> str | None:
        """The address part of ``listen`` (IPv6 without brackets), or None."""
        return v.split_listen(self.listen)[0] if self.listen else None

    @property
    def port(self) -> int | None:
        """The port part of ``listen``, or None."""
        return v.split_listen(self.listen)[1] if self.listen else None


class WebSettings(_ListenSettings):
    """``[web]``: ``listen = "host:port"`` serves the web UI from ``archiver run``."""


class MetricsSettings(_ListenSettings):
    """``[metrics]``: ``listen = "host:port"`` serves /metrics and /healthz."""


_MATCH_KEYS = ("account", "from", "from_domain", "to", "to_domain", "larger", "smaller",
               "folder", "query")


class RetentionMatch(_Model):
    """The ``match`` table of a retention rule; every key set must hold (AND).

    ``from`` is the attribute ``from_`` in Python. Values are kept as
    written; matching decides about case. ``config show`` leaves unset keys out.
    """

    account: v.AccountNames | None = None
    from_: v.Address | None = Field(None, alias="from")
    from_domain: v.Domain | None = None
    to: v.Address | None = None
    to_domain: v.Domain | None = None
    larger: v.Size | None = None
    smaller: v.Size | None = None
    folder: v.NonEmptyStr | None = None
    query: v.NonEmptyStr | None = None

    @classmethod
    def _check_table(cls, table: dict[str, Any]) -> list[Problem]:
        problems: list[Problem] = []
        if not table:
            problems.append(((), "must set at least one of " + one_of(_MATCH_KEYS)))
        try:
            larger = units.parse_size(table["larger"])
            smaller = units.parse_size(table["smaller"])
        except (KeyError, TypeError, ValueError):
            pass
        else:
            if larger >= smaller:
                problems.append((
                    (),
                    (
                        f"larger = {show(table['larger'])} and smaller = "
                        f"{show(table['smaller'])} can never both hold"
                    ),
                ))
        return problems


class RetentionRule(_Model):
    """One ``[[retention.rules]]`` entry: ``keep`` is a minimum, ``delete_after`` a maximum."""

    name: v.Name
    match: RetentionMatch
    keep: v.Duration | None = None
    delete_after: v.Duration | None = None

    @classmethod
    def _check_table(cls, table: dict[str, Any]) -> list[Problem]:
        if "keep" not in table and "delete_after" not in table:
            return [((), "needs keep, delete_after or both; a rule with neither does nothing")]
        return []


class RetentionSettings(_Model):
    """``[retention]``: defaults for messages no rule matches, and the rules."""

    default_keep: v.Duration = DEFAULT_KEEP
    default_delete_after: v.Duration | None = None
    rules: Annotated[tuple[RetentionRule, ...], v.tables("retention.rules")] = ()

    @classmethod
    def _check_table(cls, table: dict[str, Any]) -> list[Problem]:
        return [
            (("rules", *loc), message)
            for loc, message in _duplicates(table.get("rules"), "rule", "retention.rules")
        ]


class Config(_Model):
    """The whole config.toml, validated; build it with ``load_config``.

    Secrets are not looked up by loading: the commands that need them call
    ``resolve_secrets`` first (``collect``, ``check``), and the database URL
    is revealed where the engine is made.
    """

    archive: ArchiveSettings = Field(default_factory=dict, validate_default=True)
    scheduler: SchedulerSettings = Field(default_factory=dict, validate_default=True)
    accounts: Annotated[tuple[Account, ...], v.tables("accounts")] = ()
    web: WebSettings = Field(default_factory=dict, validate_default=True)
    metrics: MetricsSettings = Field(default_factory=dict, validate_default=True)
    retention: RetentionSettings = Field(default_factory=dict, validate_default=True)
    #: the file this was loaded from (absolute)
    path: Path = Field(Path(DEFAULT_CONFIG_PATH), exclude=True)
    #: the directory relative paths in the file are resolved against
    base_dir: Path = Field(default_factory=Path.cwd, exclude=True)

    _not_in_file: ClassVar[frozenset[str]] = frozenset({"path", "base_dir"})

    @classmethod
    def _check_table(cls, table: dict[str, Any]) -> list[Problem]:
        return [
            (("accounts", *loc), message)
            for loc, message in _duplicates(table.get("accounts"), "account", "accounts")
        ]

    @classmethod
    def _finish(cls, model: Self, info: ValidationInfo) -> Self:
        """Accounts that set neither interval nor schedule get ``scheduler.interval``;
        every secret learns its key, so a failed lookup names it."""
        shown = v.config_path(info)
        accounts = []
        for index, account in enumerate(model.accounts):
            update: dict[str, Any] = {
                "password": account.password.at(f"accounts[{index}].password", config_path=shown)
            }
            if not {"interval", "schedule"} & account.model_fields_set:
                update["interval"] = model.scheduler.interval
            accounts.append(account.model_copy(update=update))
        database = model.archive.database.at("archive.database", config_path=shown)
        update = {
            "accounts": tuple(accounts),
            "archive": model.archive.model_copy(update={"database": database}),
        }
        loaded_from = v.loaded_from(info)
        if loaded_from is not None:
            update["path"], update["base_dir"] = loaded_from, loaded_from.parent
        return model.model_copy(update=update)

    def account(self, name: str) -> Account:
        """The account called ``name``; ConfigError (with a suggestion) if none is."""
        for account in self.accounts:
            if account.name == name:
                return account
        names = [account.name for account in self.accounts]
        known = f"; accounts are: {', '.join(names)}" if names else "; no accounts are configured"
        raise ConfigError(
            f"no account named {show(name)}{suggest(name, names)}{known}", path=str(self.path)
        )

    def resolve_secrets(
        self, accounts: Iterable[Account] | None = None, *, database: bool = False
    ) -> None:
        """Look up now every secret ``accounts`` (default: all) need, and with
        ``database`` the database URL; one ConfigError lists every problem.

        Call it before a command starts work that needs them (``collect``
        logs in to each account), so a missing variable or unreadable file
        stops the command with exit 2 before it touches the archive, instead
        of failing halfway. Values are kept; errors name keys, never values.
        """
        secrets: list[Secret | DatabaseURL] = [
            account.password for account in (self.accounts if accounts is None else accounts)
        ]
        if database:
            secrets.append(self.archive.database)
        problems: list[str] = []
        path: str | None = None
        for secret in secrets:
            try:
                secret.reveal()
            except ConfigError as exc:
                problems += exc.problems
                path = path or exc.path
        if problems:
            raise ConfigError(problems, path=path)

    def to_display(self) -> dict[str, Any]:
        """The effective configuration as plain data for ``config show``.

        Defaults filled in, durations and sizes in their written form
        (``"5m"``, ``"100MB"``), paths absolute, every secret masked (and not
        looked up). Keys are those of config.toml; unset optional keys are
        ``None`` (omitted in ``match`` tables).
        """
        shown: dict[str, Any] = self.model_dump(mode="json", by_alias=True)
        for rule in shown["retention"]["rules"]:
            rule["match"] = {key: value for key, value in rule["match"].items()
                             if value is not None}
        return shown
