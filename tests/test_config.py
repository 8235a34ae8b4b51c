"""config.toml → Config: defaults, every documented mistake, secrets kept secret
and looked up only by the commands that use them."""

from __future__ import annotations

import json
import re
import subprocess
import sys
import textwrap
from datetime import timedelta
from pathlib import Path

import pytest
from pydantic import ValidationError

from archiver.config import (
    SAMPLE_CONFIG,
    Account,
    Config,
    DatabaseURL,
    RetentionMatch,
    Secret,
    load_config,
    parse_config,
    resolve_config_path,
)
from archiver.errors import ConfigError

REPO = Path(__file__).resolve().parents[1]
DURATION_EXPECTED = (
    'expected a whole number and a unit (s, m, h, d, w, y), like "30s", "10m", "90d", "7y"'
)
SIZE_EXPECTED = 'expected a whole number and a unit (B, KB, MB, GB, TB), like "50MB"'
# pydantic's own wording must never reach users
PYDANTIC_WORDS = ("Input should", "Value error", "Extra inputs", "pydantic", "Field required")


def toml_value(value: object) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, str):
        return json.dumps(value)
    return str(value)


def account(name: str = "sales", **keys: object) -> str:
    """One [[accounts]] table; ``key=None`` leaves a key out."""
    values: dict[str, object] = {
        "name": name,
        "host": "pop.example.com",
        "username": f"{name}@example.com",
        "password": "Literal-Password-1",
    }
    values.update(keys)
    lines = [f"{key} = {toml_value(value)}" for key, value in values.items() if value is not None]
    return "[[accounts]]\n" + "\n".join(lines) + "\n"


def write(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "config.toml"
    path.write_text(textwrap.dedent(text), encoding="utf-8")
    return path


def load(tmp_path: Path, text: str, environ: dict[str, str] | None = None) -> Config:
    return load_config(write(tmp_path, text), environ=environ or {})


def problems(tmp_path: Path, text: str, environ: dict[str, str] | None = None) -> list[str]:
    with pytest.raises(ConfigError) as info:
        load(tmp_path, text, environ)
    error = info.value
    assert error.exit_code == 2
    assert error.path == str(tmp_path / "config.toml")
    for word in PYDANTIC_WORDS:
        assert word not in str(error)
    assert error.__cause__ is None and error.__suppress_context__  # no pydantic traceback
    return error.problems


# --------------------------------------------------------------------------
# the sample configuration


def test_sample_config_is_packaged_and_identical_to_the_repository_copy() -> None:
    packaged = (REPO / "archiver" / "sample_config.toml").read_text(encoding="utf-8")
    assert (REPO / "config.toml").read_text(encoding="utf-8") == packaged
    assert packaged == SAMPLE_CONFIG


def test_sample_config_loads_with_no_accounts_and_the_defaults() -> None:
    config = load_config(REPO / "config.toml", environ={})
    assert config.accounts == ()
    assert config.path == REPO / "config.toml"
    assert config.base_dir == REPO
    assert config.to_display() == {
        "archive": {"database": f"sqlite:///{REPO}/archive.db", "compression": "zstd"},
        "scheduler": {
            "interval": "5m",
            "max_concurrent_accounts": 4,
            "retention_schedule": "0 3 * * *",
        },
        "accounts": [],
        "web": {"listen": None},
        "metrics": {"listen": None},
        "retention": {"default_keep": "7y", "default_delete_after": None, "rules": []},
    }


def test_empty_file_gives_the_same_defaults_as_the_sample(tmp_path: Path) -> None:
    empty = load(tmp_path, "").to_display()
    sample = parse_config(SAMPLE_CONFIG, path=tmp_path / "config.toml", environ={}).to_display()
    assert empty == sample


def all_keys(model: type, seen: set[type] | None = None) -> set[str]:
    """Every TOML key of a model and of the models inside it."""
    from typing import get_args

    from pydantic import BaseModel

    seen = seen or set()
    keys: set[str] = set()
    for name, field in model.model_fields.items():
        if name in ("path", "base_dir"):
            continue
        keys.add(field.alias or name)
        stack = [field.annotation]
        while stack:
            tp = stack.pop()
            if isinstance(tp, type) and issubclass(tp, BaseModel) and tp not in seen:
                seen.add(tp)
                keys |= all_keys(tp, seen)
            stack.extend(get_args(tp))
    return keys


def test_sample_config_documents_every_key() -> None:
    keys = all_keys(Config)
    assert {"database", "max_concurrent_accounts", "ca_file", "from_domain", "query"} <= keys
    for key in keys:
        assert re.search(rf"(^|[\s#{{,.[]){key}( =|\s|,|\])", SAMPLE_CONFIG, re.MULTILINE), key


def uncomment_examples(text: str) -> str:
    """The sample with its commented-out examples switched on."""
    out, inside = [], False
    for line in text.splitlines():
        if line in ("# [[accounts]]", "# [[retention.rules]]"):
            inside = True
        elif not line.strip():
            inside = False
        if inside or re.match(r"# (listen|default_delete_after) =", line):
            line = line.removeprefix("# ")
        out.append(line)
    return "\n".join(out) + "\n"


def test_the_commented_examples_in_the_sample_are_valid(tmp_path: Path) -> None:
    text = uncomment_examples(SAMPLE_CONFIG)
    assert "\n[[accounts]]\n" in text and "\n[[retention.rules]]\n" in text
    config = load(tmp_path, text, environ={"SALES_POP3_PASSWORD": "from-env"})
    sales = config.account("sales")
    assert (sales.host, sales.port, sales.tls, sales.interval) == (
        "pop.example.com", 995, "implicit", timedelta(minutes=10))
    assert sales.password.reveal() == "from-env"
    assert sales.delete_after is None  # still commented: "# # delete_after"
    assert config.web.listen == "127.0.0.1:8080"
    assert config.metrics.listen == "127.0.0.1:9108"
    assert config.retention.default_delete_after == timedelta(days=3650)
    (rule,) = config.retention.rules
    assert rule.name == "finance-10y"
    assert rule.match.account == ("finance",)
    assert rule.match.from_domain == "bank.example"


def test_sample_config_text_parses_on_its_own() -> None:
    # `archiver init` writes SAMPLE_CONFIG wherever it is asked to
    assert parse_config(SAMPLE_CONFIG, environ={}).accounts == ()


# --------------------------------------------------------------------------
# defaults


def test_account_defaults(tmp_path: Path) -> None:
    config = load(tmp_path, account())
    (sales,) = config.accounts
    assert sales.model_dump(exclude={"password"}) == {
        "name": "sales",
        "host": "pop.example.com",
        "port": 995,
        "tls": "implicit",
        "verify_tls": True,
        "ca_file": None,
        "username": "sales@example.com",
        "auth": "auto",
        "interval": timedelta(minutes=5),
        "schedule": None,
        "leave_on_server": True,
        "delete_after": None,
        "max_message_size": 100 * 1024**2,
        "max_messages_per_pass": 50_000,
        "max_bytes_per_pass": 10 * 1024**3,
        "timeout": timedelta(seconds=60),
        "allow_insecure": False,
        "enabled": True,
    }
    assert sales.password == Secret("Literal-Password-1")
    assert config.scheduler.interval == timedelta(minutes=5)
    assert config.scheduler.max_concurrent_accounts == 4
    assert config.scheduler.retention_schedule == "0 3 * * *"
    assert config.archive.compression == "zstd"
    assert config.retention.default_keep == timedelta(days=7 * 365)
    assert config.retention.default_delete_after is None
    assert config.retention.rules == ()
    assert config.web.listen is None and config.web.host is None and config.web.port is None


@pytest.mark.parametrize(
    ("keys", "port"),
    [
        ({}, 995),
        ({"tls": "implicit"}, 995),
        ({"tls": "starttls"}, 110),
        ({"tls": "none", "host": "localhost"}, 110),
        ({"tls": "starttls", "port": 1110}, 1110),
    ],
)
def test_port_default_follows_tls(tmp_path: Path, keys: dict, port: int) -> None:
    assert load(tmp_path, account(**keys)).accounts[0].port == port


def test_interval_defaults_to_the_scheduler_interval(tmp_path: Path) -> None:
    config = load(
        tmp_path,
        '[scheduler]\ninterval = "1m"\n'
        + account("a")
        + account("b", interval="10m")
        + account("c", schedule="*/10 * * * *"),
    )
    a, b, c = config.accounts
    assert a.interval == timedelta(minutes=1)
    assert b.interval == timedelta(minutes=10)
    assert (c.interval, c.schedule) == (None, "*/10 * * * *")


def test_models_can_be_built_in_code() -> None:
    built = Account(
        name="t",
        host="127.0.0.1",
        tls="none",
        username="u",
        password="pw",
        interval=timedelta(seconds=1),
        max_message_size=1000,
    )
    assert (built.port, built.interval, built.max_message_size) == (110, timedelta(seconds=1), 1000)
    assert built.password.reveal() == "pw" and built.password.source == "literal"
    assert Account(name="t", host="h", username="u", password="p").interval == timedelta(minutes=5)


def test_config_is_frozen(tmp_path: Path) -> None:
    config = load(tmp_path, account())
    with pytest.raises(ValidationError):
        config.accounts[0].port = 1  # type: ignore[misc]
    assert isinstance(config.accounts, tuple)
    assert hash(config) == hash(load(tmp_path, account()))


# --------------------------------------------------------------------------
# every documented mistake, with its exact message


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        pytest.param(
            account("a") + account("b") + account("c", port=0),
            ["accounts[2].port: must be 1-65535, got 0"],
            id="port",
        ),
        pytest.param(
            account(port=65536), ["accounts[0].port: must be 1-65535, got 65536"], id="port-high"
        ),
        pytest.param(
            account(host=None, hots="pop.example.com"),
            [
                "accounts[0].host: required key is missing",
                'accounts[0].hots: unknown key (did you mean "host"?)',
            ],
            id="unknown-key",
        ),
        pytest.param(
            account("a") + account("b", host=None),
            ["accounts[1].host: required key is missing"],
            id="missing",
        ),
        pytest.param(
            '[scheduler]\ninterval = "5 minutes"\n',
            [f'scheduler.interval: invalid duration "5 minutes": {DURATION_EXPECTED}'],
            id="duration",
        ),
        pytest.param(
            account(max_message_size="50 megs"),
            [f'accounts[0].max_message_size: invalid size "50 megs": {SIZE_EXPECTED}'],
            id="size",
        ),
        pytest.param(
            account("sales") + account("sales"),
            ['accounts[1].name: duplicate account name "sales" (also accounts[0])'],
            id="duplicate",
        ),
        pytest.param(
            account(tls="ssl"),
            ['accounts[0].tls: must be one of implicit, starttls, none, got "ssl"'],
            id="choice",
        ),
        pytest.param(
            account(tls="none"),
            [
                ('accounts[0].tls: "none" sends the password in clear text to pop.example.com; '
                 "allowed only to a loopback address, or set allow_insecure = true on this account")
            ],
            id="clear-text",
        ),
        pytest.param(
            account(interval="10m", schedule="*/10 * * * *"),
            [
                ("accounts[0]: both interval and schedule are set; use interval to poll every "
                 "so often or schedule for a cron timetable, not both")
            ],
            id="interval-and-schedule",
        ),
        pytest.param(
            account(leave_on_server=False, delete_after="30d"),
            [
                ("accounts[0].delete_after: only applies with leave_on_server = true; "
                 "leave_on_server = false already deletes each message from the server right "
                 "after it is archived (remove delete_after, or set leave_on_server = true)")
            ],
            id="delete-after-without-leave",
        ),
    ],
)
def test_documented_mistakes(tmp_path: Path, text: str, expected: list[str]) -> None:
    assert problems(tmp_path, text) == expected


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ('[archive]\ndatabase = "x"\nfoo = \n', "invalid TOML at line 3, column 7: invalid value"),
        ('[archive]\ncompression = "zstd"\ncompression = "none"\n',
         "invalid TOML at line 3, column 21: cannot overwrite a value"),
        ("[archive]\n[archive]\n",
         "invalid TOML at line 2, column 9: cannot declare archive twice"),
        ("[retention]\nrules = [\n", "invalid TOML at the end of the file: invalid value"),
    ],
)
def test_invalid_toml(tmp_path: Path, text: str, expected: str) -> None:
    assert problems(tmp_path, text) == [expected]


def test_missing_config_file(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)
    with pytest.raises(ConfigError) as info:
        load_config("config.toml")
    assert str(info.value) == (
        'config file ./config.toml not found (run "archiver init" to create one, '
        "or pass --config PATH)"
    )
    with pytest.raises(ConfigError) as info:
        load_config(tmp_path / "etc" / "archiver.toml")
    assert str(info.value).startswith(f"config file {tmp_path}/etc/archiver.toml not found")


def test_config_path_is_a_directory(tmp_path: Path) -> None:
    with pytest.raises(ConfigError) as info:
        load_config(tmp_path)
    assert str(info.value) == f"cannot read config file {tmp_path}: Is a directory"


def test_config_file_not_utf8(tmp_path: Path) -> None:
    path = tmp_path / "config.toml"
    path.write_bytes(b'[archive]\ncompression = "\xff"\n')
    with pytest.raises(ConfigError) as info:
        load_config(path)
    assert info.value.problems == ["config file is not UTF-8 text (bad byte at offset 25)"]


def test_a_byte_order_mark_is_tolerated(tmp_path: Path) -> None:
    path = tmp_path / "config.toml"
    path.write_bytes(b'\xef\xbb\xbf[archive]\ncompression = "none"\n')
    assert load_config(path).archive.compression == "none"


def test_all_problems_are_reported_at_once_in_file_order(tmp_path: Path) -> None:
    text = """
        [archive]
        database = "sqlite:///x.db"
        compression = "zstdd"

        [scheduler]
        interval = "5 minutes"
        max_concurrent_accounts = 0

        [[accounts]]
        name = "sales"
        hots = "pop.example.com"
        tls = "ssl"
        username = "u"
        password = "env:SALES_POP3_PASSWORD"
        max_message_size = "50 megs"

        [[accounts]]
        name = "sales"
        host = "pop.example.com:995"
        port = 0
        username = "u"
        password = "p"
        interval = "10m"
        schedule = "*/10 * * * *"
        verify_tls = "yes"

        [web]
        listen = "8080"

        [[retention.rules]]
        name = "r"
        match = {}

        [foo]
    """
    assert problems(tmp_path, text) == [
        'archive.compression: must be one of zstd, none, got "zstdd" (did you mean "zstd"?)',
        f'scheduler.interval: invalid duration "5 minutes": {DURATION_EXPECTED}',
        "scheduler.max_concurrent_accounts: must be at least 1, got 0",
        "accounts[0].host: required key is missing",
        'accounts[0].tls: must be one of implicit, starttls, none, got "ssl"',
        f'accounts[0].max_message_size: invalid size "50 megs": {SIZE_EXPECTED}',
        'accounts[0].hots: unknown key (did you mean "host"?)',
        ("accounts[1]: both interval and schedule are set; use interval to poll every so often "
         "or schedule for a cron timetable, not both"),
        'accounts[1].name: duplicate account name "sales" (also accounts[0])',
        ("accounts[1].host: must be a host name or IP address without a port "
         '(set port = 995 instead), got "pop.example.com:995"'),
        "accounts[1].port: must be 1-65535, got 0",
        'accounts[1].verify_tls: must be true or false, got "yes"',
        'web.listen: must be "host:port" like "127.0.0.1:8080" (IPv6 as "[::1]:8080"), got "8080"',
        "retention.rules[0]: needs keep, delete_after or both; a rule with neither does nothing",
        ("retention.rules[0].match: must set at least one of account, from, from_domain, to, "
         "to_domain, larger, smaller, folder, query"),
        "foo: unknown key (valid keys: archive, scheduler, accounts, web, metrics, retention)",
    ]


def test_error_text_lists_problems_one_per_line(tmp_path: Path) -> None:
    with pytest.raises(ConfigError) as info:
        load(tmp_path, account(port=0, tls="ssl"))
    assert str(info.value) == (
        f"{tmp_path / 'config.toml'}: 2 problems\n"
        "  accounts[0].port: must be 1-65535, got 0\n"
        '  accounts[0].tls: must be one of implicit, starttls, none, got "ssl"'
    )


# --------------------------------------------------------------------------
# keys and types


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ('[[account]]\nname = "x"\n', 'account: unknown key (did you mean "accounts"?)'),
        ('[archive]\ndatabse = "sqlite://"\n',
         'archive.databse: unknown key (did you mean "database"?)'),
        ('[[retention.rule]]\nname = "x"\n', 'retention.rule: unknown key (did you mean "rules"?)'),
        ("[web]\nfoo = 1\n", "web.foo: unknown key (valid keys: listen)"),
        ('[web]\n"my key" = 1\n', 'web."my key": unknown key (valid keys: listen)'),
        ('path = "/etc"\n', ("path: unknown key "
         "(valid keys: archive, scheduler, accounts, web, metrics, retention)")),
        ('[accounts]\nname = "x"\n',
         "accounts: must be an array of tables ([[accounts]]), got a table"),
        ('accounts = ["x"]\n', 'accounts[0]: must be a table, got "x"'),
        ("archive = 5\n", "archive: must be a table, got 5"),
        ("[retention]\nrules = 5\n",
         "retention.rules: must be an array of tables ([[retention.rules]]), got 5"),
        (account(port="995"), 'accounts[0].port: must be an integer, got "995"'),
        (account(port=99.5), "accounts[0].port: must be an integer, got 99.5"),
        (account(port=True), "accounts[0].port: must be an integer, got true"),
        (account(username=5), "accounts[0].username: must be a string, got 5"),
        (account(username=" "), "accounts[0].username: must not be empty"),
        (account(verify_tls=1), "accounts[0].verify_tls: must be true or false, got 1"),
        (account(interval=300), f"accounts[0].interval: invalid duration 300: {DURATION_EXPECTED}"),
        (account(interval="0s"), 'accounts[0].interval: must be greater than 0, got "0s"'),
        (account(timeout="0m"), 'accounts[0].timeout: must be greater than 0, got "0m"'),
        (account(max_message_size=1048576),
         f"accounts[0].max_message_size: invalid size 1048576: {SIZE_EXPECTED}"),
        (account(max_message_size="0MB"),
         'accounts[0].max_message_size: must be greater than 0, got "0MB"'),
        (account(max_messages_per_pass=0),
         "accounts[0].max_messages_per_pass: must be at least 1, got 0"),
        (account(auth="oauth2"),
         ('accounts[0].auth: must be one of auto, user, apop, plain, xoauth2, got "oauth2" '
          '(did you mean "xoauth2"?)')),
        (account(tls="STARTTLS"),
         ('accounts[0].tls: must be one of implicit, starttls, none, got "STARTTLS" '
          '(did you mean "starttls"?)')),
        (account(name="my sales"),
         ('accounts[0].name: must be 1-64 characters: letters, digits, ".", "_" or "-", '
          'got "my sales"')),
        (account(name="x" * 65), ('accounts[0].name: must be 1-64 characters: letters, digits, '
         f'".", "_" or "-", got "{"x" * 59}…"')),
        (account(host="pop3s://pop.example.com"),
         ("accounts[0].host: must be a host name or IP address without a scheme "
          '(like "pop.example.com"), got "pop3s://pop.example.com"')),
        (account(host="pop example.com"),
         'accounts[0].host: must be a host name or IP address, got "pop example.com"'),
        (account(password=""),
         'accounts[0].password: must not be empty (write the secret, "env:NAME" or "file:PATH")'),
        (account(password="env:1BAD"),
         ('accounts[0].password: invalid secret reference "env:1BAD": expected "env:NAME" '
          'where NAME is made of letters, digits and "_"')),
        ('[scheduler]\nretention_schedule = "@daily"\n',
         ('scheduler.retention_schedule: invalid cron expression "@daily": expected 5 fields '
          '"minute hour day-of-month month day-of-week", like "0 3 * * *"')),
        ('[scheduler]\nretention_schedule = "61 3 * * *"\n',
         ('scheduler.retention_schedule: invalid cron expression "61 3 * * *": bad minute field '
          '"61" (minute is 0-59; also *, lists a,b, ranges a-b and steps */n)')),
        (account(schedule="0 3 * * 8"),
         ('accounts[0].schedule: invalid cron expression "0 3 * * 8": bad day-of-week field "8" '
          "(day-of-week is 0-7 or sun-sat, 0 and 7 being Sunday; also *, lists a,b, ranges a-b "
          "and steps */n)")),
        (account(schedule="0 3 * 13 *"),
         ('accounts[0].schedule: invalid cron expression "0 3 * 13 *": bad month field "13" '
          "(month is 1-12 or jan-dec; also *, lists a,b, ranges a-b and steps */n)")),
        (account(schedule="*/0 * * * *"),
         ('accounts[0].schedule: invalid cron expression "*/0 * * * *": bad minute field "*/0" '
          "(minute is 0-59; also *, lists a,b, ranges a-b and steps */n)")),
        ('[metrics]\nlisten = "localhost:0"\n',
         ('metrics.listen: must be "host:port" like "127.0.0.1:8080" (IPv6 as "[::1]:8080"), '
          'got "localhost:0"')),
    ],
)
def test_key_and_type_mistakes(tmp_path: Path, text: str, expected: str) -> None:
    assert problems(tmp_path, text) == [expected]


@pytest.mark.parametrize(
    "expression",
    ["*/15 * * * *", "0 3 * * 7", "0 3 * * 0-6", "0 3 * * mon-fri", "0 0 1 jan *",
     "0 3 1,15 * *", "5 4 * * sun", "0 22 * * 1-5", "0 */2 * * *", "0 3 * * */2"],
)
def test_valid_cron_expressions(tmp_path: Path, expression: str) -> None:
    config = load(tmp_path, f'[scheduler]\nretention_schedule = "{expression}"\n')
    assert config.scheduler.retention_schedule == expression


def test_importing_config_does_not_import_sqlalchemy_or_apscheduler() -> None:
    code = (
        "import sys, archiver.config; "
        "print(sorted(m for m in sys.modules if m.split('.')[0] in ('sqlalchemy', 'apscheduler')))"
    )
    result = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True
    )
    assert result.stdout.strip() == "[]"


def test_loading_common_schedules_does_not_import_apscheduler(tmp_path: Path) -> None:
    # APScheduler costs ~8 ms of CPU per start; `archiver collect` runs every few minutes
    path = write(tmp_path, '[scheduler]\nretention_schedule = "30 2 * * 0"\n'
                 + account(schedule="*/10 6-20 * * mon-fri"))
    code = (
        f"import sys, archiver.config; archiver.config.load_config({str(path)!r}); "
        "print(sorted(m for m in sys.modules if m.split('.')[0] == 'apscheduler'))"
    )
    result = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True
    )
    assert result.stdout.strip() == "[]"


def test_public_surface() -> None:
    import archiver.config

    assert sorted(archiver.config.__all__) == sorted([
        "CONFIG_ENV_VAR", "DEFAULT_CONFIG_PATH", "MASK", "SAMPLE_CONFIG", "Account",
        "ArchiveSettings", "Config", "DatabaseURL", "MetricsSettings", "RetentionMatch",
        "RetentionRule", "RetentionSettings", "SchedulerSettings", "Secret", "WebSettings",
        "load_config", "parse_config", "resolve_config_path",
    ])
    for name in archiver.config.__all__:
        assert getattr(archiver.config, name) is not None, name


# --------------------------------------------------------------------------
# accounts: transport security, hosts, files


@pytest.mark.parametrize(
    "host", ["localhost", "LOCALHOST", "localhost.", "127.0.0.1", "127.8.9.10", "::1"]
)
def test_clear_text_is_allowed_to_loopback(tmp_path: Path, host: str) -> None:
    (local,) = load(tmp_path, account(host=host, tls="none")).accounts
    assert (local.tls, local.port) == ("none", 110)


@pytest.mark.parametrize("host", ["10.0.0.1", "::2", "127.0.0.1.example.com", "localhost.example"])
def test_clear_text_elsewhere_needs_allow_insecure(tmp_path: Path, host: str) -> None:
    assert problems(tmp_path, account(host=host, tls="none")) == [
        (f'accounts[0].tls: "none" sends the password in clear text to {host}; allowed only to '
         "a loopback address, or set allow_insecure = true on this account")
    ]
    insecure = load(tmp_path, account(host=host, tls="none", allow_insecure=True)).accounts[0]
    assert insecure.allow_insecure is True


def test_clear_text_check_is_reported_with_other_mistakes(tmp_path: Path) -> None:
    assert problems(tmp_path, account(tls="none", port=0)) == [
        "accounts[0].port: must be 1-65535, got 0",
        ('accounts[0].tls: "none" sends the password in clear text to pop.example.com; allowed '
         "only to a loopback address, or set allow_insecure = true on this account"),
    ]


@pytest.mark.parametrize("host", ["pop.example.com", "pop", "192.0.2.1", "2001:db8::1",
                                  "mail-1.example.co.uk", "müller.example"])
def test_valid_hosts(tmp_path: Path, host: str) -> None:
    assert load(tmp_path, account(host=host)).accounts[0].host == host


def test_delete_after_with_leave_on_server(tmp_path: Path) -> None:
    (kept,) = load(tmp_path, account(delete_after="30d")).accounts
    assert kept.delete_after == timedelta(days=30)
    assert load(tmp_path, account(delete_after="0s")).accounts[0].delete_after == timedelta(0)
    assert load(tmp_path, account(leave_on_server=False)).accounts[0].leave_on_server is False


def test_ca_file_relative_to_the_config_directory(tmp_path: Path) -> None:
    (tmp_path / "ca.pem").write_text("-----BEGIN CERTIFICATE-----\n")
    assert load(tmp_path, account(ca_file="ca.pem")).accounts[0].ca_file == tmp_path / "ca.pem"
    assert problems(tmp_path, account(ca_file="missing.pem")) == [
        (f"accounts[0].ca_file: cannot read CA file {tmp_path}/missing.pem: "
         "No such file or directory")
    ]


# --------------------------------------------------------------------------
# secrets


def test_secret_sources(tmp_path: Path) -> None:
    (tmp_path / "secrets").mkdir()
    (tmp_path / "secrets" / "b.txt").write_text("from-file\n")
    (tmp_path / "c.txt").write_text("two-lines\n\n")
    (tmp_path / "d.txt").write_bytes(b"crlf\r\n")
    text = (
        account("a", password="literal-pw")
        + account("b", password="file:secrets/b.txt")
        + account("c", password=f"file:{tmp_path}/c.txt")
        + account("d", password="file:d.txt")
        + account("e", password="env:E_PASSWORD")
    )
    config = load(tmp_path, text, environ={"E_PASSWORD": "from-env"})
    secrets = {a.name: (a.password.reveal(), a.password.source) for a in config.accounts}
    assert secrets == {
        "a": ("literal-pw", "literal"),
        "b": ("from-file", f"file:{tmp_path}/secrets/b.txt"),
        "c": ("two-lines\n", f"file:{tmp_path}/c.txt"),  # only one newline is dropped
        "d": ("crlf", f"file:{tmp_path}/d.txt"),
        "e": ("from-env", "env:E_PASSWORD"),
    }


def test_secrets_are_looked_up_on_first_reveal_and_kept(tmp_path: Path) -> None:
    (tmp_path / "pw").write_text("from-file\n")
    environ = {"OTHER": "x"}
    config = load(tmp_path, account("a", password="env:A_PASSWORD")
                  + account("b", password="file:pw"), environ)
    (tmp_path / "pw").write_text("changed\n")  # read on first reveal, not at load
    environ["A_PASSWORD"] = "set-after-loading"
    a, b = config.accounts
    assert (a.password.reveal(), b.password.reveal()) == ("set-after-loading", "changed")
    environ["A_PASSWORD"] = "changed-again"
    (tmp_path / "pw").unlink()
    assert (a.password.reveal(), b.password.reveal()) == ("set-after-loading", "changed")


def secret_problems(config: Config) -> list[str]:
    """What resolve_secrets() reports for every account (and the database)."""
    with pytest.raises(ConfigError) as info:
        config.resolve_secrets(database=True)
    assert info.value.exit_code == 2
    return info.value.problems


def test_a_missing_secret_fails_only_when_it_is_needed(tmp_path: Path) -> None:
    config = load(tmp_path, account("a") + account("b", password="env:SALES_POP3_PASSWORD"))
    assert config.accounts[1].password.source == "env:SALES_POP3_PASSWORD"
    assert config.to_display()["accounts"][1]["password"] == "env:SALES_POP3_PASSWORD (********)"
    config.resolve_secrets([config.account("a")])  # the one a command selected: fine
    with pytest.raises(ConfigError) as info:
        config.account("b").password.reveal()
    assert str(info.value) == (
        f"{tmp_path / 'config.toml'}: accounts[1].password: "
        "environment variable SALES_POP3_PASSWORD is not set"
    )
    assert secret_problems(config) == [
        "accounts[1].password: environment variable SALES_POP3_PASSWORD is not set"
    ]


def test_secret_problems_are_reported_at_once(tmp_path: Path) -> None:
    (tmp_path / "empty.txt").write_text("\n")
    (tmp_path / "big.txt").write_text("x" * 70_000)
    (tmp_path / "latin1.txt").write_bytes(b"caf\xe9\n")
    (tmp_path / "dir").mkdir()
    missing = tmp_path / "x" / "y"
    text = (
        '[archive]\ndatabase = "env:ARCHIVER_DATABASE_URL"\n'
        + account("a", password="file:empty.txt")
        + account("b", password="env:EMPTY")
        + account("c", password=f"file:{missing}")
        + account("d", password="file:big.txt")
        + account("e", password="file:latin1.txt")
        + account("f", password="file:dir")
        + account("g", password="env:SET")
    )
    config = load(tmp_path, text, environ={"EMPTY": "", "SET": "Env-Password-2"})
    shown = secret_problems(config)
    assert shown == [
        f"accounts[0].password: secret file {tmp_path}/empty.txt is empty",
        "accounts[1].password: environment variable EMPTY is empty",
        f"accounts[2].password: cannot read secret file {missing}: No such file or directory",
        (f"accounts[3].password: secret file {tmp_path}/big.txt is larger than 64KB; "
         "it must hold only the secret"),
        f"accounts[4].password: cannot read secret file {tmp_path}/latin1.txt: not UTF-8 text",
        f"accounts[5].password: cannot read secret file {tmp_path}/dir: Is a directory",
        "archive.database: environment variable ARCHIVER_DATABASE_URL is not set",
    ]
    assert "Env-Password-2" not in "\n".join(shown)


def test_the_spelling_of_a_secret_is_checked_at_load(tmp_path: Path) -> None:
    assert problems(tmp_path, account(password="file:") + account("b", password="env:")) == [
        'accounts[0].password: invalid secret reference "file:": expected "file:PATH"',
        ('accounts[1].password: invalid secret reference "env:": expected "env:NAME" '
         'where NAME is made of letters, digits and "_"'),
    ]


def test_secret_never_shown() -> None:
    secret = Secret.parse("env:X", environ={"X": "Very-Secret-1"})
    assert repr(secret) == "Secret('********', source='env:X')"
    as_text = [str(secret), f"{secret}", f"{secret:>8}", "%s" % secret]  # noqa: UP031
    assert as_text == ["********"] * 4
    assert secret.display() == "env:X (********)"
    assert Secret("Very-Secret-1").display() == "********"
    assert secret.reveal() == "Very-Secret-1"
    assert repr(secret) == "Secret('********', source='env:X')"  # revealed: still masked
    assert secret == Secret.parse("env:X") != Secret.parse("env:Y")
    assert Secret("Very-Secret-1") == Secret("Very-Secret-1") != Secret("other")
    assert Secret("Very-Secret-1") != secret


SECRETS = ("Literal-Password-1", "Env-Password-2", "File-Password-3", "Db-Password-4", "Typo-5")


def test_secrets_never_appear_in_repr_display_or_errors(tmp_path: Path) -> None:
    (tmp_path / "pw").write_text("File-Password-3\n")
    text = (
        '[archive]\ndatabase = "postgresql://archiver:Db-Password-4@db.example.com/archive"\n'
        + account("a")
        + account("b", password="env:B_PASSWORD")
        + account("c", password="file:pw")
    )
    environ = {"B_PASSWORD": "Env-Password-2"}
    config = load(tmp_path, text, environ)
    config.resolve_secrets(database=True)  # looked up and kept: still never shown
    shown = [repr(config), str(config), json.dumps(config.to_display()), repr(config.archive),
             config.model_dump_json(), str(config.model_dump()), repr(config.accounts)]
    for text_shown in shown:
        for secret in SECRETS:
            assert secret not in text_shown
    display = config.to_display()
    assert [a["password"] for a in display["accounts"]] == [
        "********",
        "env:B_PASSWORD (********)",
        f"file:{tmp_path}/pw (********)",
    ]
    assert display["archive"]["database"] == (
        "postgresql+psycopg://archiver:***@db.example.com/archive"
    )
    # the same secrets next to mistakes: the error names keys, never values
    broken = text + account("d", port=0, password=12345) + account("e", password="Typo-5", tls=1)
    with pytest.raises(ConfigError) as info:
        load(tmp_path, broken, environ)
    assert "accounts[3].password: must be a string" in str(info.value)
    for secret in (*SECRETS, "12345"):
        assert secret not in str(info.value)


@pytest.mark.parametrize(
    "database",
    [
        "oracle://u:Db-Password-4@h/db",
        "postgresql://u:Db-Password-4@h:notaport/db",
        "postgresql+psycopg2://u:Db-Password-4@h/db",
        "Db-Password-4",
    ],
)
def test_bad_database_urls_are_not_echoed(tmp_path: Path, database: str) -> None:
    (problem,) = problems(tmp_path, f'[archive]\ndatabase = "{database}"\n')
    assert problem.startswith("archive.database: ")
    assert "Db-Password-4" not in problem


# --------------------------------------------------------------------------
# the database URL


@pytest.mark.parametrize(
    ("written", "effective"),
    [
        ("postgresql://u:p@db/archive", "postgresql+psycopg://u:p@db/archive"),
        ("postgresql+psycopg://u:p@db:5433/archive", "postgresql+psycopg://u:p@db:5433/archive"),
        ("mysql://u:p@db/archive", "mysql+pymysql://u:p@db/archive"),
        ("mariadb://u:p@db/archive?charset=utf8mb4",
         "mariadb+pymysql://u:p@db/archive?charset=utf8mb4"),
        ("mysql+pymysql://u@db/archive", "mysql+pymysql://u@db/archive"),
        ("sqlite://", "sqlite://"),
        ("sqlite:///:memory:", "sqlite:///:memory:"),
        ("sqlite:////var/lib/archiver/archive.db", "sqlite:////var/lib/archiver/archive.db"),
        ("sqlite+pysqlite:///data/archive.db", "sqlite+pysqlite:///{base}/data/archive.db"),
        ("sqlite:///archive.db", "sqlite:///{base}/archive.db"),
    ],
)
def test_database_urls_are_normalised(tmp_path: Path, written: str, effective: str) -> None:
    config = load(tmp_path, f'[archive]\ndatabase = "{written}"\n')
    assert config.archive.database.reveal() == effective.format(base=tmp_path)
    assert not isinstance(config.archive.database, str)


DATABASE_WITH_PASSWORD = (
    "postgresql://archiver:Db-Password-4@db.example.com/archive?sslmode=require"
)


def test_database_url_never_yields_its_password_as_text(tmp_path: Path) -> None:
    config = load(tmp_path, f'[archive]\ndatabase = "{DATABASE_WITH_PASSWORD}"\n')
    url = config.archive.database
    masked = "postgresql+psycopg://archiver:***@db.example.com/archive?sslmode=require"
    as_text = [str(url), repr(url), f"{url}", f"{url!s}", f"{url:>10}", url.display(), url.masked,
               "%s" % url, "%r" % url, "{}".format(url),  # noqa: UP031, UP032
               str([url]), str({"db": url})]
    for text in as_text:
        assert "Db-Password-4" not in text
    assert str(url) == url.display() == url.masked == masked
    assert repr(url) == f"DatabaseURL({masked!r}, source='literal')"
    assert url.reveal() == (
        "postgresql+psycopg://archiver:Db-Password-4@db.example.com/archive?sslmode=require"
    )
    assert (url.backend, url.source) == ("postgresql", "literal")
    with pytest.raises(TypeError):
        "x" + url  # type: ignore[operator]  # not a str: cannot be glued into a message


@pytest.mark.parametrize("url", [
    "postgresql://postgres:Se@cr3t@127.0.0.1:5432/x",
    "mysql://root:a@b@c@127.0.0.1/test",
])
def test_a_raw_at_sign_in_the_password_is_refused_without_echoing_it(tmp_path: Path,
                                                                     url: str) -> None:
    found = problems(tmp_path, f'[archive]\ndatabase = "{url}"\n')
    assert len(found) == 1 and found[0].startswith("archive.database: ")
    assert "%40" in found[0]
    for part in ("cr3t", "Se@", "a@b", "b@c"):
        assert part not in found[0]


@pytest.mark.parametrize(
    ("written", "expected"),
    [
        ("postgres://u@h/db", ('unsupported database "postgres" (did you mean "postgresql"?); '
         "expected sqlite, postgresql(+psycopg), mysql(+pymysql) or mariadb(+pymysql)")),
        ("postgresql+asyncpg://u@h/db", ('unsupported driver "asyncpg" for postgresql; '
         "expected postgresql+psycopg or plain postgresql://")),
        ("mysql+mysqldb://u@h/db", ('unsupported driver "mysqldb" for mysql; '
         "expected mysql+pymysql or plain mysql://")),
        ("archive.db", ('not a valid database URL; expected one like "sqlite:///archive.db", '
         '"postgresql+psycopg://user:password@host/archive" '
         'or "mysql+pymysql://user:password@host/archive"')),
    ],
)
def test_unsupported_databases(tmp_path: Path, written: str, expected: str) -> None:
    assert problems(tmp_path, f'[archive]\ndatabase = "{written}"\n') == [
        f"archive.database: {expected}"
    ]


def test_database_from_a_secret_reference(tmp_path: Path) -> None:
    environ = {"ARCHIVER_DATABASE_URL": "postgresql://arch:Db-Password-4@db/archive"}
    config = load(tmp_path, '[archive]\ndatabase = "env:ARCHIVER_DATABASE_URL"\n', environ)
    database = config.archive.database
    # shown without looking it up: only where it comes from
    assert config.to_display()["archive"]["database"] == "env:ARCHIVER_DATABASE_URL (********)"
    assert repr(database) == "DatabaseURL('********', source='env:ARCHIVER_DATABASE_URL')"
    assert database.reveal() == "postgresql+psycopg://arch:Db-Password-4@db/archive"
    assert (database.source, database.backend) == ("env:ARCHIVER_DATABASE_URL", "postgresql")
    assert database.masked == "postgresql+psycopg://arch:***@db/archive"
    assert str(database) == "env:ARCHIVER_DATABASE_URL (********)"


def test_a_bad_database_url_in_a_reference_is_reported_when_revealed(tmp_path: Path) -> None:
    (tmp_path / "db-url").write_text("postgresql://u:Db-Password-4@h:notaport/db\n")
    text = '[archive]\ndatabase = "{}"\n'
    environ = {"ARCHIVER_DATABASE_URL": "oracle://x"}
    for written, problem in [
        ("env:ARCHIVER_DATABASE_URL",
         ('unsupported database "oracle" (from env:ARCHIVER_DATABASE_URL); '
          "expected sqlite, postgresql(+psycopg), mysql(+pymysql) or mariadb(+pymysql)")),
        ("file:db-url",
         (f"not a valid database URL (from file:{tmp_path}/db-url); expected one like "
          '"sqlite:///archive.db", "postgresql+psycopg://user:password@host/archive" '
          'or "mysql+pymysql://user:password@host/archive"')),
    ]:
        database = load(tmp_path, text.format(written), environ).archive.database
        with pytest.raises(ConfigError) as info:
            database.reveal()
        assert info.value.problems == [f"archive.database: {problem}"]
        assert info.value.path == str(tmp_path / "config.toml")
        with pytest.raises(ConfigError):
            database.backend  # noqa: B018


def test_password_like_query_parameters_are_masked() -> None:
    url = DatabaseURL.parse("postgresql://u@db/a?sslmode=require&password=Db-Password-4")
    assert url.masked == "postgresql+psycopg://u@db/a?sslmode=require&password=***"


# --------------------------------------------------------------------------
# web, metrics, retention


@pytest.mark.parametrize(
    ("listen", "host", "port"),
    [("127.0.0.1:8080", "127.0.0.1", 8080), ("[::1]:9108", "::1", 9108),
     ("localhost:80", "localhost", 80), ("0.0.0.0:65535", "0.0.0.0", 65535)],
)
def test_listen(tmp_path: Path, listen: str, host: str, port: int) -> None:
    config = load(tmp_path, f'[web]\nlisten = "{listen}"\n[metrics]\nlisten = "{listen}"\n')
    assert (config.web.listen, config.web.host, config.web.port) == (listen, host, port)
    assert (config.metrics.host, config.metrics.port) == (host, port)


@pytest.mark.parametrize("listen", ["8080", ":8080", "::1:8080", "host:http", "[::1]", "a b:80",
                                    "[127.0.0.1]:80", "host:99999"])
def test_bad_listen(tmp_path: Path, listen: str) -> None:
    (problem,) = problems(tmp_path, f'[web]\nlisten = "{listen}"\n')
    assert problem.startswith('web.listen: must be "host:port"')


def test_retention_rules(tmp_path: Path) -> None:
    text = """
        [retention]
        default_keep = "1y"
        default_delete_after = "10y"

        [[retention.rules]]
        name = "finance-10y"
        match = { account = "finance", from_domain = "bank.example" }
        keep = "10y"

        [[retention.rules]]
        name = "big"
        match = { account = ["a", "b"], larger = "10MB" }
        delete_after = "90d"
    """
    retention = load(tmp_path, text).retention
    assert retention.default_keep == timedelta(days=365)
    assert retention.default_delete_after == timedelta(days=3650)
    finance, big = retention.rules
    assert (finance.keep, finance.delete_after) == (timedelta(days=3650), None)
    assert finance.match == RetentionMatch(account=("finance",), from_domain="bank.example")
    assert big.match.account == ("a", "b")
    assert big.match.larger == 10 * 1024**2
    assert big.delete_after == timedelta(days=90)


@pytest.mark.parametrize(
    ("rule", "expected"),
    [
        ('name = "r"\nkeep = "1y"\n', ["retention.rules[0].match: required key is missing"]),
        ('name = "r"\nmatch = { account = "a" }\n',
         [("retention.rules[0]: needs keep, delete_after or both; "
           "a rule with neither does nothing")]),
        ('name = "r"\nkeep = "1y"\nmatch = { account = [] }\n',
         ["retention.rules[0].match.account: must name at least one account"]),
        ('name = "r"\nkeep = "1y"\nmatch = { account = 5 }\n',
         [("retention.rules[0].match.account: must be an account name or an array of account "
           "names, got 5")]),
        ('name = "r"\nkeep = "1y"\nmatch = { larger = "10MB", smaller = "1MB" }\n',
         ['retention.rules[0].match: larger = "10MB" and smaller = "1MB" can never both hold']),
        ('name = "r"\nkeep = "1y"\nmatch = { from_domain = "@bank.example" }\n',
         [('retention.rules[0].match.from_domain: must be a domain like "example.com" '
           '(without "@"), got "@bank.example"')]),
        ('name = "r"\nkeep = "1y"\nmatch = { to = "bob" }\n',
         [('retention.rules[0].match.to: must be an email address like "alice@example.com", '
           'got "bob"')]),
        ('name = "r"\nkeep = "1y"\nmatch = { form = "a@b.c" }\n',
         ['retention.rules[0].match.form: unknown key (did you mean "from"?)']),
        ('name = "r"\nkeep = "forever"\nmatch = { query = "x" }\n',
         [f'retention.rules[0].keep: invalid duration "forever": {DURATION_EXPECTED}']),
    ],
)
def test_retention_rule_mistakes(tmp_path: Path, rule: str, expected: list[str]) -> None:
    assert problems(tmp_path, f"[[retention.rules]]\n{rule}") == expected


def test_duplicate_rule_names(tmp_path: Path) -> None:
    rule = '[[retention.rules]]\nname = "{}"\nkeep = "1y"\nmatch = {{ account = "a" }}\n'
    assert problems(tmp_path, rule.format("Old") + rule.format("new") + rule.format("old")) == [
        ('retention.rules[2].name: duplicate rule name "old" '
         '(also retention.rules[0] "Old"; names are compared ignoring case)')
    ]


# --------------------------------------------------------------------------
# a config with every key set, as `config show` displays it

FULL = """
[archive]
database = "postgresql://archiver:Db-Password-4@db.example.com:5432/archive"
compression = "none"

[scheduler]
interval = "2m"
max_concurrent_accounts = 8
retention_schedule = "30 2 * * 0"

[[accounts]]
name = "sales"
host = "pop.example.com"
port = 1995
tls = "starttls"
verify_tls = false
ca_file = "ca.pem"
username = "sales@example.com"
password = "env:SALES_POP3_PASSWORD"
auth = "apop"
interval = "10m"
leave_on_server = true
delete_after = "30d"
max_message_size = "50MB"
max_messages_per_pass = 1000
max_bytes_per_pass = "1GB"
timeout = "90s"
allow_insecure = false
enabled = false

[[accounts]]
name = "local"
host = "127.0.0.1"
tls = "none"
username = "local"
password = "file:secrets/local.txt"
schedule = "*/10 * * * 1-5"
leave_on_server = false
auth = "user"

[[accounts]]
name = "legacy"
host = "legacy.example.com"
tls = "none"
allow_insecure = true
username = "legacy"
password = "Literal-Password-1"
auth = "xoauth2"

[web]
listen = "127.0.0.1:8080"

[metrics]
listen = "[::1]:9108"

[retention]
default_keep = "7y"
default_delete_after = "10y"

[[retention.rules]]
name = "finance-10y"
match = { account = "finance", from_domain = "bank.example" }
keep = "10y"
delete_after = "10y"

[[retention.rules]]
name = "everything"
match.account = ["sales", "local"]
match.from = "boss@example.com"
match.to = "audit@example.com"
match.to_domain = "example.org"
match.larger = "1MB"
match.smaller = "1GB"
match.folder = "INBOX"
match.query = "subject:invoice"
delete_after = "26w"
"""


def test_every_key_set(tmp_path: Path) -> None:
    (tmp_path / "ca.pem").write_text("-----BEGIN CERTIFICATE-----\n")
    (tmp_path / "secrets").mkdir()
    (tmp_path / "secrets" / "local.txt").write_text("File-Password-3\n")
    config = load(tmp_path, FULL, environ={"SALES_POP3_PASSWORD": "Env-Password-2"})
    common = {"verify_tls": True, "ca_file": None, "delete_after": None,
              "max_message_size": "100MB", "max_messages_per_pass": 50000,
              "max_bytes_per_pass": "10GB", "timeout": "1m", "enabled": True}
    assert config.to_display() == {
        "archive": {
            "database": "postgresql+psycopg://archiver:***@db.example.com:5432/archive",
            "compression": "none",
        },
        "scheduler": {
            "interval": "2m",
            "max_concurrent_accounts": 8,
            "retention_schedule": "30 2 * * 0",
        },
        "accounts": [
            {
                "name": "sales", "host": "pop.example.com", "port": 1995, "tls": "starttls",
                "verify_tls": False, "ca_file": f"{tmp_path}/ca.pem",
                "username": "sales@example.com", "password": "env:SALES_POP3_PASSWORD (********)",
                "auth": "apop", "interval": "10m", "schedule": None, "leave_on_server": True,
                "delete_after": "30d", "max_message_size": "50MB", "max_messages_per_pass": 1000,
                "max_bytes_per_pass": "1GB", "timeout": "90s", "allow_insecure": False,
                "enabled": False,
            },
            {
                **common,
                "name": "local", "host": "127.0.0.1", "port": 110, "tls": "none",
                "username": "local", "password": f"file:{tmp_path}/secrets/local.txt (********)",
                "auth": "user", "interval": None, "schedule": "*/10 * * * 1-5",
                "leave_on_server": False, "allow_insecure": False,
            },
            {
                **common,
                "name": "legacy", "host": "legacy.example.com", "port": 110, "tls": "none",
                "username": "legacy", "password": "********", "auth": "xoauth2",
                "interval": "2m", "schedule": None, "leave_on_server": True,
                "allow_insecure": True,
            },
        ],
        "web": {"listen": "127.0.0.1:8080"},
        "metrics": {"listen": "[::1]:9108"},
        "retention": {
            "default_keep": "7y",
            "default_delete_after": "10y",
            "rules": [
                {
                    "name": "finance-10y",
                    "match": {"account": ["finance"], "from_domain": "bank.example"},
                    "keep": "10y",
                    "delete_after": "10y",
                },
                {
                    "name": "everything",
                    "match": {
                        "account": ["sales", "local"], "from": "boss@example.com",
                        "to": "audit@example.com", "to_domain": "example.org",
                        "larger": "1MB", "smaller": "1GB", "folder": "INBOX",
                        "query": "subject:invoice",
                    },
                    "keep": None,
                    "delete_after": "26w",
                },
            ],
        },
    }
    assert config.accounts[1].password.reveal() == "File-Password-3"
    assert config.archive.database.reveal() == (
        "postgresql+psycopg://archiver:Db-Password-4@db.example.com:5432/archive"
    )
    assert config.retention.rules[1].match.from_ == "boss@example.com"
    json.loads(json.dumps(config.to_display()))  # backs `config show --json`


# --------------------------------------------------------------------------
# looking things up


def test_account_lookup(tmp_path: Path) -> None:
    config = load(tmp_path, account("sales") + account("support"))
    assert config.account("support").name == "support"
    with pytest.raises(ConfigError) as info:
        config.account("salse")
    assert info.value.problems == [
        'no account named "salse" (did you mean "sales"?); accounts are: sales, support'
    ]
    with pytest.raises(ConfigError) as info:
        load(tmp_path, "").account("sales")
    assert info.value.problems == ['no account named "sales"; no accounts are configured']


def test_resolve_config_path() -> None:
    assert resolve_config_path("/etc/a.toml", environ={"ARCHIVER_CONFIG": "/b.toml"}) == Path(
        "/etc/a.toml"
    )
    assert resolve_config_path(None, environ={"ARCHIVER_CONFIG": "/b.toml"}) == Path("/b.toml")
    assert resolve_config_path(None, environ={}) == Path("config.toml")
    assert resolve_config_path(None, environ={"ARCHIVER_CONFIG": ""}) == Path("config.toml")


@pytest.mark.parametrize(("url", "extra"), [
    ("postgresql://u:secret@db.example/archive", "postgres"),
    ("mysql://u:secret@db.example/archive", "mysql"),
    ("mariadb+pymysql://u:secret@db.example/archive", "mysql"),
])
def test_missing_database_driver_is_a_config_error(monkeypatch, url, extra):
    import importlib.util

    from archiver.config import parse_config
    from archiver.errors import ConfigError

    real = importlib.util.find_spec
    monkeypatch.setattr(importlib.util, "find_spec",
                        lambda name, *a: None if name in ("psycopg", "pymysql") else real(name, *a))
    with pytest.raises(ConfigError) as err:
        parse_config(f'[archive]\ndatabase = "{url}"\n')
    message = str(err.value)
    assert "archive.database:" in message and f"pip install -e '.[{extra}]'" in message
    assert "archiver[" not in message  # "archiver" on PyPI is another project
    assert "secret" not in message


# --------------------------------------------------------------------------
# secrets are looked up only by the commands that use them (through the CLI)


def _archive_rows(db_url: str) -> dict[str, int]:
    from sqlalchemy import text

    from archiver.db.engine import create_archive_engine

    engine = create_archive_engine(db_url)
    try:
        with engine.connect() as conn:
            return {table: conn.execute(text(f"SELECT COUNT(*) FROM {table}")).scalar_one()
                    for table in ("collection_runs", "accounts", "deliveries")}
    finally:
        engine.dispose()


@pytest.mark.parametrize("password", ["env:ARCHIVER_TEST_UNSET_PASSWORD", "file:no/such/file"])
def test_readers_work_without_the_pop3_password_and_collect_refuses(
    tmp_path: Path, db_url: str, cli, password: str
) -> None:
    path = write(tmp_path, f'[archive]\ndatabase = "{db_url}"\n'
                 + account("sales", host="127.0.0.1", port=9, tls="none", password=password))
    env = {"ARCHIVER_TEST_UNSET_PASSWORD": ""}  # set but empty: as bad as unset
    if password.startswith("file:"):
        problem = (f"accounts[0].password: cannot read secret file {tmp_path}/no/such/file: "
                   "No such file or directory")
    else:
        problem = "accounts[0].password: environment variable ARCHIVER_TEST_UNSET_PASSWORD is empty"
    before = _archive_rows(db_url)

    shown = cli("config", "show", "--json", config=path, env=env)
    assert shown.exit_code == 0, shown
    written = password if password.startswith("env:") else f"file:{tmp_path}/no/such/file"
    assert shown.json()["accounts"][0]["password"] == f"{written} (********)"
    for reader in (["status", "--json"], ["verify", "--json"]):
        result = cli(*reader, config=path, env=env)
        assert result.exit_code == 0, (reader, result)
    checked = cli("check", config=path, env=env)  # validating the file needs no secret
    assert checked.exit_code == 0, checked

    for command in (["collect"], ["collect", "--account", "sales"], ["check", "--connect"]):
        result = cli(*command, config=path, env=env)
        assert result.exit_code == 2, (command, result)
        assert result.stderr == f"archiver: config error: {path}: {problem}\n", command
    assert _archive_rows(db_url) == before  # nothing recorded: the archive was not touched


def test_collect_reports_every_missing_secret_at_once(tmp_path: Path, db_url: str, cli) -> None:
    path = write(tmp_path, f'[archive]\ndatabase = "{db_url}"\n'
                 + account("a", host="127.0.0.1", tls="none", password="env:ARCHIVER_TEST_A")
                 + account("b", host="127.0.0.1", tls="none", password="Literal-Password-1")
                 + account("c", host="127.0.0.1", tls="none", password="env:ARCHIVER_TEST_C"))
    result = cli("collect", "--json", config=path)
    assert result.exit_code == 2, result
    assert result.json()["error"] == (
        f"{path}: 2 problems\n"
        "  accounts[0].password: environment variable ARCHIVER_TEST_A is not set\n"
        "  accounts[2].password: environment variable ARCHIVER_TEST_C is not set"
    )
    assert "Literal-Password-1" not in result.stdout + result.stderr
    # an account whose secret is there can still be collected on its own
    assert "accounts[" not in cli("collect", "--account", "b", config=path).stderr


def test_database_commands_need_the_database_secret(tmp_path: Path, db_url: str, cli) -> None:
    path = write(tmp_path, '[archive]\ndatabase = "env:ARCHIVER_TEST_DATABASE_URL"\n')
    shown = cli("config", "show", "--json", config=path)
    assert shown.exit_code == 0, shown
    assert shown.json()["archive"]["database"] == "env:ARCHIVER_TEST_DATABASE_URL (********)"
    status = cli("status", config=path)
    assert status.exit_code == 2, status
    assert status.stderr == (
        f"archiver: config error: {path}: archive.database: "
        "environment variable ARCHIVER_TEST_DATABASE_URL is not set\n"
    )
    found = cli("status", "--json", config=path, env={"ARCHIVER_TEST_DATABASE_URL": db_url})
    assert found.exit_code == 0, found
