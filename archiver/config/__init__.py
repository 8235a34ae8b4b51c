"""config.toml → frozen, validated objects (DESIGN.md §3).

``load_config(path)`` reads the whole file, validates every key and raises
one ``ConfigError`` listing *all* problems, one line each, in TOML terms::

    accounts[2].port: must be 1-65535, got 0
    accounts[0].hots: unknown key (did you mean "host"?)

Paths written in the file (``ca_file``, ``file:`` secrets, a relative SQLite
database) are resolved against the directory of the config file, not the
working directory, so ``archiver --config /etc/archiver/config.toml`` works
from anywhere. ``~`` is expanded.

Secrets (``accounts[].password``, ``archive.database``) are checked for their
spelling at load and looked up (``env:NAME``, ``file:PATH``) only when
revealed, by the commands that use them: ``Config.resolve_secrets(accounts)``
before a command logs in anywhere, ``config.archive.database.reveal()`` where
the engine is made. They never appear in ``str()``, ``repr()``, errors or
``to_display()``.

In code (tests, other modules) the models can be built directly; then
durations may also be ``timedelta`` and sizes ``int`` bytes, while a file must
use the written forms (``"10m"``, ``"50MB"``).

The package, by concern: ``model`` (the tables), ``validators`` (each value,
in our words), ``secrets`` (``Secret``, ``DatabaseURL``), ``loading`` (TOML,
error lines). Crontab expressions are ``archiver.scheduler.cron``'s.

Start-up time matters (``archiver collect`` runs every few minutes), so this
package imports only the standard library and pydantic at import time;
SQLAlchemy (URL validation) and APScheduler (unusual cron fields) are imported
inside the functions that need them.
"""

from pathlib import Path

from archiver.config.loading import (
    CONFIG_ENV_VAR,
    load_config,
    parse_config,
    resolve_config_path,
)
from archiver.config.model import (
    DEFAULT_CONFIG_PATH,
    Account,
    ArchiveSettings,
    Config,
    MetricsSettings,
    RetentionMatch,
    RetentionRule,
    RetentionSettings,
    SchedulerSettings,
    WebSettings,
)
from archiver.config.secrets import MASK, DatabaseURL, Secret

__all__ = [
    "CONFIG_ENV_VAR",
    "DEFAULT_CONFIG_PATH",
    "MASK",
    "SAMPLE_CONFIG",
    "Account",
    "ArchiveSettings",
    "Config",
    "DatabaseURL",
    "MetricsSettings",
    "RetentionMatch",
    "RetentionRule",
    "RetentionSettings",
    "SchedulerSettings",
    "Secret",
    "WebSettings",
    "load_config",
    "parse_config",
    "resolve_config_path",
]

#: the commented sample written by ``archiver init`` (identical to the repository's config.toml)
SAMPLE_CONFIG = (Path(__file__).parent.parent / "sample_config.toml").read_text(encoding="utf-8")
