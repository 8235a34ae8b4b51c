"""The contenders: how each tool is configured, started, and checked.

A :class:`Tool` knows how to set up one run of itself against one fresh
mailbox (untimed: configuration files, an empty archive), the command line
of its first pass and of its no-op pass, and how to count what it stored
afterwards. It does not time anything: the harness runs every command
through :func:`measure.run_child`, so every tool is measured the same way.

What "stored" means per tool (the harness marks a first pass invalid
unless it equals the number of messages on the server):

================ ==========================================================
ceiling          messages received and thrown away (it stores nothing by design)
fetchmail        files in the Maildir its MDA (procmail) delivered to (new/ + cur/)
fetchmail-bsmtp  messages in its BSMTP output file (one ``CRLF . CRLF`` each)
getmail          files in its Maildir (new/ + cur/)
archiver         ``archiver status --json`` -> ``messages``
================ ==========================================================

All tools speak plain POP3 to 127.0.0.1 (see ``mailserver``), all keep the
messages on the server and remember what they fetched by UIDL, so the second
pass is a no-op for all of them.
"""

from __future__ import annotations

import json
import os
import pwd
import re
import shutil
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

from measure import ChildRun

__all__ = ["BENCH_DIR", "FETCHMAIL_ROUTES", "REPO_DIR", "Archiver", "Mailbox", "Tool", "ToolRun",
           "available_tools", "snapshot_archiver"]

BENCH_DIR = Path(__file__).resolve().parent
REPO_DIR = BENCH_DIR.parent


@dataclass
class Mailbox:
    """The POP3 mailbox one run collects: same server for every tool, a fresh user per run."""

    host: str
    port: int
    user: str
    password: str


class ToolRun:
    """One tool, set up for one mailbox: its commands and its state directory."""

    #: exit codes that mean success, per pass
    ok_exit = {"first": {0}, "noop": {0}}

    def __init__(self, run_dir: Path, box: Mailbox) -> None:
        self.run_dir = run_dir
        self.box = box
        self.env = dict(os.environ)

    def command(self, pass_name: str) -> list[str]:
        raise NotImplementedError

    def stored(self, child: ChildRun) -> int:
        """How many messages the tool holds now (counted by us, not claimed by it)."""
        raise NotImplementedError

    def expected_stored(self, pass_name: str, messages: int) -> int:
        """What stored() must say after this pass: all of them, once (no duplicates)."""
        return messages

    def in_process_seconds(self, child: ChildRun) -> float | None:
        """The tool's own timing of the pass, when it reports one."""
        return None

    def problems(self, pass_name: str, child: ChildRun) -> list[str]:
        """Tool-specific reasons to distrust this pass (beyond exit code and counts)."""
        return []

    def cleanup(self) -> None:
        """Release what lives outside run_dir (e.g. a PostgreSQL database)."""


class Tool:
    """A row of the result table."""

    name = ""  # row label
    group = ""  # what --only selects
    about = ""  # one line for the report
    noop = True  # measured in the no-op pass too

    def available(self) -> str | None:
        """None when the tool can run; otherwise why not and how to fix it."""
        return None

    def version(self) -> str:
        return ""

    def prepare(self, run_dir: Path, box: Mailbox) -> ToolRun:
        raise NotImplementedError


# -- the archiver under test --------------------------------------------------------


def snapshot_archiver(dest: Path) -> Path:
    """Copy archiver/ and migrations/ of the working tree to ``dest`` and byte-compile them.

    Every archiver process of the run imports this copy (``PYTHONPATH``
    comes before the editable install in site-packages), for two reasons:

    * the code under test cannot change in the middle of a run when someone
      edits the working tree;
    * its bytecode is compiled once, before any clock starts, as pip does
      for an installed package. Without it, a PYTHONDONTWRITEBYTECODE
      environment (or a read-only tree) makes every archiver process compile
      every module it imports, about 50 ms per process, which no other tool
      pays (getmail and the libraries come with their bytecode). Python
      reads bytecode even when told not to write it.
    """
    for name in ("archiver", "migrations"):
        shutil.copytree(REPO_DIR / name, dest / name,
                        ignore=shutil.ignore_patterns("__pycache__", "*.pyc"))
    subprocess.run([project_python(), "-m", "compileall", "-q", str(dest)], check=True,
                   stdout=subprocess.DEVNULL)
    return dest


# -- ceiling -------------------------------------------------------------------------


def project_python() -> str:
    """The interpreter of the project's virtualenv (archiver's), else this one."""
    candidate = REPO_DIR / ".venv" / "bin" / "python"
    return str(candidate) if candidate.exists() else sys.executable


class _CeilingRun(ToolRun):
    def __init__(self, run_dir: Path, box: Mailbox, mode: str, noop_mode: str,
                 src: Path) -> None:
        super().__init__(run_dir, box)
        self.modes = {"first": mode, "noop": noop_mode}
        self.env["PYTHONPATH"] = str(src)  # pop3client mode imports archiver's POP3Client

    def command(self, pass_name: str) -> list[str]:
        return [project_python(), str(BENCH_DIR / "ceiling.py"), "--host", self.box.host,
                "--port", str(self.box.port), "--user", self.box.user,
                "--password", self.box.password, "--mode", self.modes[pass_name]]

    def expected_stored(self, pass_name: str, messages: int) -> int:
        return messages if pass_name == "first" else 0  # the no-op ceiling only lists

    def stored(self, child: ChildRun) -> int:
        # A ceiling stores nothing; what counts is what it received in this pass.
        try:
            return int(json.loads(child.stdout.strip().splitlines()[-1])["messages"])
        except (ValueError, IndexError, KeyError):
            return 0

    def in_process_seconds(self, child: ChildRun) -> float | None:
        try:
            return float(json.loads(child.stdout.strip().splitlines()[-1])["seconds"])
        except (ValueError, IndexError, KeyError):
            return None


class Ceiling(Tool):
    """A client that fetches everything and stores nothing (see ceiling.py)."""

    group = "ceiling"

    def __init__(self, mode: str, src: Path) -> None:
        self.mode = mode
        self.src = src
        self.name = {"seq": "ceiling-seq", "pipe": "ceiling-pipe",
                     "pop3client": "pop3client-null"}[mode]
        self.about = {
            "seq": "raw-socket client (bench/ceiling.py): UIDL, then RETR one by one, "
                   "bytes discarded; no-op pass: USER/PASS/UIDL/QUIT only",
            "pipe": "raw-socket client (bench/ceiling.py): UIDL, then all RETRs pipelined, "
                    "bytes discarded",
            "pop3client": "archiver's POP3Client: UIDL+LIST, retr_many pipelined into a "
                          "null sink (archiver's protocol layer without the store)",
        }[mode]
        self.noop = mode == "seq"  # one no-op ceiling is enough: UIDL only

    def version(self) -> str:
        return "bench/ceiling.py"

    def prepare(self, run_dir: Path, box: Mailbox) -> ToolRun:
        return _CeilingRun(run_dir, box, self.mode, "uidl", self.src)


# -- fetchmail -----------------------------------------------------------------------

#: How fetchmail delivers, per row. fetchmail is normally run without an MTA
#: by handing each message to an MDA (``mda "..."``), which writes it into
#: the user's maildir; that is the reference row ``fetchmail``. The BSMTP
#: file is kept as an extra row: the fastest thing fetchmail can do that
#: still stores every message, but not a mailbox anyone reads.
FETCHMAIL_ROUTES = {
    # row name: (route, the MDA's executable or None)
    "fetchmail": ("procmail", "/usr/bin/procmail"),
    "fetchmail-maildrop": ("maildrop", "/usr/bin/maildrop"),
    "fetchmail-bsmtp": ("bsmtp", None),
}


class _FetchmailRun(ToolRun):
    # 0: mail was retrieved; 1: there was no new mail (the no-op pass)
    ok_exit = {"first": {0}, "noop": {0, 1}}

    def __init__(self, binary: str, run_dir: Path, box: Mailbox, route: str,
                 mda_binary: str | None) -> None:
        super().__init__(run_dir, box)
        self.binary = binary
        self.route = route
        self.rcfile = run_dir / "fetchmailrc"
        self.maildir = run_dir / "Maildir"
        self.bsmtp = run_dir / "delivered.bsmtp"
        # fetchmail keeps its state (.fetchids) in $FETCHMAILHOME, else $HOME
        self.env.update(HOME=str(run_dir), FETCHMAILHOME=str(run_dir))
        # Delivery routes (the only line in which the rows differ):
        #
        # * procmail (row `fetchmail`, the reference): `mda "/usr/bin/procmail
        #   -m RC"`, RC holding only `DEFAULT=<run>/Maildir/` (the trailing
        #   slash makes it a maildir). This is how fetchmail is normally run
        #   without an MTA. Per message fetchmail popen()s `/bin/sh -c` (dash
        #   execs procmail), writes the message with CRLF turned into LF,
        #   and procmail writes it to Maildir/tmp, fsyncs, links it into
        #   Maildir/new. A maildir needs no From_ line, no >From quoting and
        #   no lock; procmail adds none. One fork+exec and one fsync per
        #   message, like getmail's Maildir delivery.
        # * maildrop (row `fetchmail-maildrop`, not run by default): the same
        #   with `mda "/usr/bin/maildrop FILTER"`, FILTER holding only
        #   `DEFAULT="<run>/Maildir"`; maildrop also fsyncs each message.
        #   Measured against procmail (N=2000, 3 repeats) it was dearer, 201
        #   vs 260 msgs/s, 9.2 vs 6.9 CPU s, so procmail is the reference.
        #   (`mda "exec procmail ..."` would save dash's vfork, about 0.1 ms a
        #   message, within the noise: not worth an unusual configuration.)
        # * bsmtp (row `fetchmail-bsmtp`): fetchmail itself appends each
        #   message, dot-stuffed and terminated, with its envelope, to one
        #   file an MTA can replay (`sendmail -bS`), and fsyncs it once per
        #   session. The fastest route that stores every message, but not a
        #   maildir or an mbox: one batch file that still needs delivering.
        #
        # Rejected: `mda "cat >> mbox"` is not an mbox (no From_ separators,
        # no >From quoting, no locking); SMTP forwarding would measure an MTA.
        #
        # Favouring fetchmail on every route: `fetchsizelimit 0` asks LIST
        # once for all sizes (the default of 100 sends one `LIST n` per
        # message), and `no rewrite` skips its header address rewriting.
        # `keep` + `uidl` make the second pass a no-op (state in .fetchids).
        # `sslproto ''` would stop STLS, but the server offers none anyway.
        # With `keep`, fetchmail retrieves with `TOP n 99999999` instead of
        # RETR (so as not to mark messages seen); the bytes are the same.
        if route == "bsmtp":
            deliver = f'  bsmtp "{self.bsmtp}"\n'
        else:
            for sub in ("cur", "new", "tmp"):
                (self.maildir / sub).mkdir(parents=True, exist_ok=True)
            if route == "procmail":
                filter_file = run_dir / "procmailrc"
                filter_file.write_text(f"DEFAULT={self.maildir}/\n")
                mda = f"{mda_binary} -m {filter_file}"
            elif route == "maildrop":
                filter_file = run_dir / "mailfilter"
                filter_file.write_text(f'DEFAULT="{self.maildir}"\n')
                filter_file.chmod(0o600)  # maildrop refuses a filter others can write
                mda = f"{mda_binary} {filter_file}"
            else:
                raise ValueError(f"unknown fetchmail route {route!r}")
            deliver = f'  mda "{mda}"\n'
        self.rcfile.write_text(
            "set no bouncemail\n"
            "set no syslog\n"
            f"poll {box.host} service {box.port} protocol pop3 uidl auth password timeout 600\n"
            f'  user "{box.user}" there with password "{box.password}" is "{_local_user()}" here\n'
            "  keep\n"
            "  fetchsizelimit 0\n"
            "  no rewrite\n"
            "  sslproto ''\n"
            f"{deliver}"
        )
        self.rcfile.chmod(0o600)  # fetchmail refuses a readable rcfile with a password

    def command(self, pass_name: str) -> list[str]:
        return [self.binary, "--fetchmailrc", str(self.rcfile),
                "--idfile", str(self.run_dir / ".fetchids"),
                "--pidfile", str(self.run_dir / "fetchmail.pid"), "--nodetach"]

    def stored(self, child: ChildRun) -> int:
        if self.route == "bsmtp":
            # Bodies are dot-stuffed in BSMTP, so each CRLF.CRLF ends one message.
            return count_in_file(self.bsmtp, b"\r\n.\r\n")
        return sum(len(os.listdir(self.maildir / sub)) for sub in ("new", "cur"))

    def problems(self, pass_name: str, child: ChildRun) -> list[str]:
        if self.route == "bsmtp":
            return []
        found = []
        if leftover := os.listdir(self.maildir / "tmp"):
            found.append(f"{len(leftover)} unfinished deliveries in Maildir/tmp")
        tag = f"{self.route}:"  # the MDA's complaints reach fetchmail's stderr
        if tag in child.stderr:
            found.append(tag + " " + child.stderr.split(tag, 1)[1].strip()[:200])
        return found


def _local_user() -> str:
    return pwd.getpwuid(os.geteuid()).pw_name


class Fetchmail(Tool):
    def __init__(self, binary: str | None = None, name: str = "fetchmail") -> None:
        self.binary = binary or shutil.which("fetchmail") or "/usr/bin/fetchmail"
        self.name = self.group = name
        self.route, self.mda_binary = FETCHMAIL_ROUTES[name]
        self.about = {
            "procmail": "fetchmail (Debian) keep+uidl, mda \"procmail -m RC\" into a Maildir "
                        "(fork+exec and fsync per message, as fetchmail runs without an MTA), "
                        "fetchsizelimit 0, no rewrite",
            "maildrop": "fetchmail (Debian) keep+uidl, mda \"maildrop FILTER\" into a Maildir "
                        "(fork+exec and fsync per message), fetchsizelimit 0, no rewrite",
            "bsmtp": "fetchmail keep+uidl, bsmtp FILE: fastest possible, not maildir/mbox: "
                     "one batch file for an MTA to replay, fsynced once per session; "
                     "fetchsizelimit 0, no rewrite",
        }[self.route]

    def available(self) -> str | None:
        if not os.access(self.binary, os.X_OK):
            return (f"fetchmail not found at {self.binary} "
                    "(apt install fetchmail, or --fetchmail PATH)")
        if self.mda_binary and not os.access(self.mda_binary, os.X_OK):
            return f"{self.mda_binary} not found (apt install {self.route})"
        return None

    def version(self) -> str:
        out = _output([self.binary, "--version"])
        match = re.search(r"fetchmail release (\S+)", out)
        version = f"fetchmail {match.group(1).split('+')[0]}" if match else "fetchmail ?"
        if self.route == "procmail":
            match = re.search(r"procmail v(\S+)", _output([self.mda_binary, "-v"]))
            version += f", procmail {match.group(1) if match else '?'}"
        elif self.route == "maildrop":
            match = re.search(r"maildrop (\S+)", _output([self.mda_binary, "-v"]))
            version += f", maildrop {match.group(1) if match else '?'}"
        return version

    def prepare(self, run_dir: Path, box: Mailbox) -> ToolRun:
        return _FetchmailRun(self.binary, run_dir, box, self.route, self.mda_binary)


# -- getmail6 ------------------------------------------------------------------------


class _GetmailRun(ToolRun):
    def __init__(self, binary: str, run_dir: Path, box: Mailbox) -> None:
        super().__init__(run_dir, box)
        self.binary = binary
        self.maildir = run_dir / "Maildir"
        self.getmaildir = run_dir / "getmail"  # holds the oldmail-* UIDL state file
        self.getmaildir.mkdir()
        for sub in ("", "cur", "new", "tmp"):
            (self.maildir / sub).mkdir(exist_ok=True)
        # getmail refuses to deliver as root. Its documented answer is the
        # destination's `user` option: its delivery child (getmail forks one
        # per message for a Maildir, always) switches to that user. As a
        # normal user no option is needed and nothing changes.
        user_line = ""
        if os.geteuid() == 0:
            nobody = pwd.getpwnam("nobody")
            for sub in ("", "cur", "new", "tmp"):
                os.chown(self.maildir / sub, nobody.pw_uid, nobody.pw_gid)
            user_line = "user = nobody\n"
        # delete = false keeps mail on the server; read_all = false fetches only
        # UIDLs not in the oldmail file, so the second pass is a no-op.
        # delivered_to/received = false: store the message as retrieved, as
        # archiver does (and a little less work for getmail).
        self.rcfile = self.getmaildir / "getmailrc"
        self.rcfile.write_text(
            "[retriever]\n"
            "type = SimplePOP3Retriever\n"
            f"server = {box.host}\n"
            f"port = {box.port}\n"
            f"username = {box.user}\n"
            f"password = {box.password}\n"
            "\n"
            "[destination]\n"
            "type = Maildir\n"
            f"path = {self.maildir}/\n"
            f"{user_line}"
            "\n"
            "[options]\n"
            "delete = false\n"
            "read_all = false\n"
            "delivered_to = false\n"
            "received = false\n"
            "verbose = 0\n"
            "message_log_syslog = false\n"
        )
        self.rcfile.chmod(0o600)

    def command(self, pass_name: str) -> list[str]:
        return [self.binary, "--getmaildir", str(self.getmaildir), "--rcfile", str(self.rcfile)]

    def stored(self, child: ChildRun) -> int:
        return sum(len(os.listdir(self.maildir / sub)) for sub in ("new", "cur"))


class Getmail(Tool):
    name = group = "getmail"
    about = ("getmail6 (PyPI, own venv) SimplePOP3Retriever, delete=false, Maildir "
             "(one delivery fork + fsync per message, as getmail always does)")

    def __init__(self, binary: str | None = None) -> None:
        self.binary = binary or _find_getmail()

    def available(self) -> str | None:
        if not self.binary or not os.access(self.binary, os.X_OK):
            return ("getmail not found: python3 -m venv bench/.venv && "
                    "bench/.venv/bin/pip install getmail6 (or --getmail PATH)")
        return None

    def version(self) -> str:
        out = _output([self.binary, "--version"]).strip()
        return f"getmail6 {out.split()[-1]}" if out else "getmail6 ?"

    def prepare(self, run_dir: Path, box: Mailbox) -> ToolRun:
        return _GetmailRun(self.binary, run_dir, box)


def _find_getmail() -> str | None:
    local = BENCH_DIR / ".venv" / "bin" / "getmail"
    return str(local) if local.exists() else shutil.which("getmail")


# -- archiver ------------------------------------------------------------------------


class _ArchiverRun(ToolRun):
    def __init__(self, argv0: list[str], run_dir: Path, box: Mailbox, database: str,
                 dropper, extra_account: str, src: Path) -> None:
        super().__init__(run_dir, box)
        self.argv0 = argv0
        self.dropper = dropper
        self.env["PYTHONPATH"] = str(src)  # the snapshot, see snapshot_archiver()
        self.config = run_dir / "config.toml"
        # archiver's defaults (zstd compression, SQLite WAL + synchronous=FULL)
        # except what the benchmark needs: plain POP3 to loopback, keep mail.
        self.config.write_text(
            "[archive]\n"
            f'database = "{database}"\n'
            "\n"
            "[[accounts]]\n"
            'name = "bench"\n'
            f'host = "{box.host}"\n'
            f"port = {box.port}\n"
            'tls = "none"\n'
            f'username = "{box.user}"\n'
            f'password = "{box.password}"\n'
            "leave_on_server = true\n"
            f"{extra_account}"
        )
        self.env.pop("ARCHIVER_CONFIG", None)
        # The empty archive is made before the clock starts: schema creation
        # is a one-time cost, not part of a collection pass.
        subprocess.run([*argv0, "--config", str(self.config), "db", "upgrade"],
                       check=True, capture_output=True, env=self.env, cwd=run_dir)

    def command(self, pass_name: str) -> list[str]:
        return [*self.argv0, "--config", str(self.config), "collect", "--json"]

    def _report(self, child: ChildRun) -> dict:
        try:
            return json.loads(child.stdout)["accounts"][0]
        except (ValueError, KeyError, IndexError):
            return {}

    def in_process_seconds(self, child: ChildRun) -> float | None:
        value = self._report(child).get("duration_s")
        return float(value) if value is not None else None

    def problems(self, pass_name: str, child: ChildRun) -> list[str]:
        report = self._report(child)
        if not report:
            return ["collect --json printed no report"]
        found = []
        if report.get("status") != "ok":
            found.append(f"collect status {report.get('status')}: {report.get('error')}")
        if report.get("deleted_on_server"):
            found.append(f"deleted {report['deleted_on_server']} on the server")
        return found

    def stored(self, child: ChildRun) -> int:
        out = subprocess.run([*self.argv0, "--config", str(self.config), "status", "--json"],
                             capture_output=True, text=True, env=self.env, cwd=self.run_dir)
        try:
            return int(json.loads(out.stdout)["messages"])
        except (ValueError, KeyError):
            return 0

    def cleanup(self) -> None:
        if self.dropper is not None:
            self.dropper()


class Archiver(Tool):
    group = "archiver"

    def __init__(self, src: Path, backend: str = "sqlite", pg_url: str = "",
                 argv0: list[str] | None = None, settings: dict[str, str] | None = None) -> None:
        self.src = src
        self.backend = backend
        self.pg_url = pg_url
        self.name = "archiver" if backend == "sqlite" else f"archiver-{backend}"
        settings = settings or {}
        changed = ", ".join(f"{k} = {v}" for k, v in settings.items())
        self.about = (f"archiver collect --json, fresh {backend} archive, "
                      "leave_on_server = true, "
                      + (f"defaults except {changed}" if changed else "default settings"))
        self.argv0 = argv0 or _find_archiver()
        self.extra_account = "".join(f"{k} = {v}\n" for k, v in settings.items())
        self._serial = 0

    def version(self) -> str:
        out = _output([*self.argv0, "--version"], {"PYTHONPATH": str(self.src)}).strip()
        return out or "archiver ?"

    def prepare(self, run_dir: Path, box: Mailbox) -> ToolRun:
        if self.backend == "sqlite":
            url, dropper = f"sqlite:///{run_dir / 'archive.db'}", None
        else:
            self._serial += 1
            url, dropper = create_pg_database(
                self.pg_url, f"archiver_bench_{os.getpid()}_{self._serial}")
        try:
            return _ArchiverRun(self.argv0, run_dir, box, url, dropper, self.extra_account,
                                self.src)
        except BaseException:
            if dropper:
                dropper()
            raise


def _find_archiver() -> list[str]:
    local = REPO_DIR / ".venv" / "bin" / "archiver"
    if local.exists():
        return [str(local)]
    found = shutil.which("archiver")
    return [found] if found else [project_python(), "-m", "archiver"]


def create_pg_database(admin_url: str, name: str):
    """CREATE DATABASE ``name``; returns (SQLAlchemy URL for archiver, a function that drops it)."""
    import psycopg  # the project's postgres extra; the harness runs in the project venv

    def admin(sql: str) -> None:
        with psycopg.connect(admin_url, autocommit=True) as conn:
            conn.execute(sql)

    admin(f'CREATE DATABASE "{name}"')
    info = psycopg.conninfo.conninfo_to_dict(admin_url)
    user = info.get("user", "postgres")
    password = f":{info['password']}" if info.get("password") else ""
    url = (f"postgresql+psycopg://{user}{password}@{info.get('host', '127.0.0.1')}:"
           f"{info.get('port', 5432)}/{name}")
    return url, lambda: admin(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


def postgres_version(admin_url: str) -> str:
    import psycopg

    with psycopg.connect(admin_url) as conn:
        return "PostgreSQL " + str(conn.execute("SHOW server_version").fetchone()[0])


# -- helpers -------------------------------------------------------------------------


def available_tools(only: set[str], *, src: Path, backend: str, pg_url: str,
                    fetchmail: str | None, getmail: str | None,
                    archiver_extra: dict[str, str] | None = None) -> list[Tool]:
    """The tools selected by --only, in table order; ``src`` is snapshot_archiver()'s copy."""
    tools: list[Tool] = []
    if "ceiling" in only:
        tools += [Ceiling("seq", src), Ceiling("pipe", src), Ceiling("pop3client", src)]
    for name in FETCHMAIL_ROUTES:
        if name in only:
            tools.append(Fetchmail(fetchmail, name))
    if "getmail" in only:
        tools.append(Getmail(getmail))
    if "archiver" in only:
        tools.append(Archiver(src, backend, pg_url, settings=archiver_extra))
    return tools


def count_in_file(path: Path, pattern: bytes) -> int:
    """Occurrences of ``pattern`` in a file of any size (read in blocks)."""
    if not path.exists():
        return 0
    count, carry = 0, b""
    keep = len(pattern) - 1
    with open(path, "rb") as f:
        while block := f.read(1 << 22):
            data = carry + block
            count += data.count(pattern)
            carry = data[-keep:] if keep else b""
    return count


def _output(argv: list[str], env: dict[str, str] | None = None) -> str:
    try:
        done = subprocess.run(argv, capture_output=True, text=True, timeout=30,
                              env={**os.environ, **(env or {})})
    except OSError:
        return ""
    return done.stdout + done.stderr
