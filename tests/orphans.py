"""No process of ours outlives the test run (issue 7, point 11).

A pytest plugin, registered from ``tests/conftest.py``. At the end of the
session (in the xdist controller, or the only process without xdist; after
xdist has stopped its workers) it looks in ``/proc`` for processes of ours
that are still running, gives them ~2 s to exit, and fails the run
(exit status 1, a "left running" count in the summary line, and a section
listing them) if any remain. A process counts as ours when it started
during this session and either

* descends from this pytest process,
* carries this session's tag in its environment (``ARCHIVER_TEST_SESSION``,
  set at start-up and inherited by everything the tests start, so it still
  identifies a process that has been orphaned and adopted by PID 1), or
* is an orphan (parent PID 1) whose command line mentions the repository
  and carries no other session's tag (other test runs in the same tree tag
  their processes with their own id and are left alone),

or descends from such a process; and when it is one of the kinds we start:
a Python process whose arguments mention ``multiprocessing``, ``archiver``
or ``dovecot`` (parse workers, multiprocessing's resource tracker, ``python
-m archiver``, the Dovecot launcher), or a Dovecot process. Processes that
started before the session (leftovers of older runs) never fail a run.

Linux only (``/proc``); elsewhere the plugin does nothing. Disable it with
``-p no:tests.orphans``.

The helpers (:func:`processes`, :func:`descendants`, :func:`tagged`,
:func:`wait_gone`) are for tests that kill processes and check what is left.
"""

from __future__ import annotations

import os
import time
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parent.parent
#: Environment variable that tags every process a test session starts.
SESSION_TAG = "ARCHIVER_TEST_SESSION"
#: How long leftover processes get to exit before they count.
GRACE_S = 2.0

_PROC = Path("/proc")
_KINDS = ("multiprocessing", "archiver", "dovecot")


@dataclass(frozen=True)
class Proc:
    """One process as /proc showed it; ``start`` is in clock ticks after boot."""

    pid: int
    ppid: int
    state: str
    start: int
    argv: tuple[str, ...]

    def __str__(self) -> str:
        return f"pid {self.pid} (parent {self.ppid}): {' '.join(self.argv)[:300]}"


def read(pid: int) -> Proc | None:
    """The process ``pid`` now, or None if there is none (or only a zombie)."""
    try:
        stat = (_PROC / str(pid) / "stat").read_text()
        argv = (_PROC / str(pid) / "cmdline").read_bytes()
    except OSError:
        return None
    rest = stat[stat.rindex(")") + 2:].split()  # the name in (...) may hold spaces
    if rest[0] in ("Z", "X"):
        return None
    return Proc(pid, int(rest[1]), rest[0], int(rest[19]),
                tuple(a.decode(errors="replace") for a in argv.split(b"\0") if a))


def processes() -> dict[int, Proc]:
    """Every live (non-zombie) process, by pid."""
    out = {}
    for entry in os.listdir(_PROC):
        if entry.isdigit() and (proc := read(int(entry))) is not None:
            out[proc.pid] = proc
    return out


def descendants(pid: int, procs: dict[int, Proc] | None = None) -> list[Proc]:
    """Every live descendant of ``pid`` (children, their children, ...)."""
    procs = processes() if procs is None else procs
    children: dict[int, list[Proc]] = {}
    for proc in procs.values():
        children.setdefault(proc.ppid, []).append(proc)
    out, todo = [], [pid]
    while todo:
        for child in children.get(todo.pop(), ()):
            out.append(child)
            todo.append(child.pid)
    return out


def environ(pid: int) -> dict[str, str]:
    """The environment ``pid`` was started with ({} if unreadable)."""
    try:
        raw = (_PROC / str(pid) / "environ").read_bytes()
    except OSError:
        return {}
    pairs = (item.partition(b"=") for item in raw.split(b"\0") if item)
    return {k.decode(errors="replace"): v.decode(errors="replace") for k, _, v in pairs}


def tagged(name: str, value: str, procs: Iterable[Proc] | None = None) -> list[Proc]:
    """The live processes whose environment has ``name=value``."""
    procs = processes().values() if procs is None else procs
    return [p for p in procs if environ(p.pid).get(name) == value]


def alive(procs: Iterable[Proc]) -> list[Proc]:
    """Those of ``procs`` still running (same pid and start time: not a reused pid)."""
    return [p for p in procs if (now := read(p.pid)) is not None and now.start == p.start]


def wait_gone(procs: Iterable[Proc], timeout: float) -> list[Proc]:
    """Wait up to ``timeout`` seconds for ``procs`` to exit; returns those still running."""
    left = alive(procs)
    deadline = time.monotonic() + timeout
    while left and time.monotonic() < deadline:
        time.sleep(0.05)
        left = alive(left)
    return left


def is_our_kind(proc: Proc) -> bool:
    """A process of a kind the archiver or its tests start (see the module docstring)."""
    if not proc.argv:
        return False
    program = os.path.basename(proc.argv[0])
    # the master (/usr/sbin/dovecot) and its children ("dovecot/log", "<instance>/log"
    # with the tests' instance names "dovecot-archiver-...")
    if program.startswith("dovecot") or proc.argv[0].startswith("dovecot"):
        return True
    if program.startswith("python"):
        args = " ".join(proc.argv[1:])
        return any(kind in args for kind in _KINDS)
    return False


def leftovers(me: Proc, tag: str, exclude: Iterable[int] = ()) -> dict[Proc, str]:
    """Processes of ours (see the module docstring) running now, started since ``me``,
    each with why it counts as ours."""
    skip = set(exclude)
    procs = {pid: p for pid, p in processes().items()
             if p.start >= me.start and pid != me.pid and pid not in skip}
    why = {p.pid: "a descendant of the test run" for p in descendants(me.pid, procs)}
    repo = str(REPO)
    for proc in procs.values():
        if proc.pid in why:
            continue
        session = environ(proc.pid).get(SESSION_TAG)
        if session == tag:
            why[proc.pid] = "started by this session (its environment says so), orphaned"
        elif session is None and proc.ppid == 1 and any(repo in arg for arg in proc.argv):
            why[proc.pid] = "an orphan mentioning the repository, started during the session"
    for pid, reason in list(why.items()):
        for child in descendants(pid, procs):
            why.setdefault(child.pid, reason)
    return {procs[pid]: why[pid] for pid in sorted(why) if is_our_kind(procs[pid])}


# ------------------------------------------------------------------ the plugin

_KEY = pytest.StashKey[dict]()


def _is_xdist_worker(config: pytest.Config) -> bool:
    return hasattr(config, "workerinput")


def pytest_configure(config: pytest.Config) -> None:
    if _is_xdist_worker(config) or not (_PROC / "self" / "stat").exists():
        return
    me = read(os.getpid())
    if me is None:
        return
    tag = f"{me.pid}-{me.start}"
    os.environ[SESSION_TAG] = tag  # before xdist starts its workers: they inherit it
    config.stash[_KEY] = {"me": me, "tag": tag, "left": {}}


@pytest.hookimpl(trylast=True)  # after xdist has stopped its workers
def pytest_sessionfinish(session: pytest.Session) -> None:
    state = session.config.stash.get(_KEY, None)
    if state is None:
        return
    # multiprocessing's resource tracker of this very process lives as long as it does
    from multiprocessing import resource_tracker

    own = [pid] if (pid := getattr(resource_tracker._resource_tracker, "_pid", None)) else []
    found = leftovers(state["me"], state["tag"], own)
    left = {proc: found[proc] for proc in wait_gone(found, GRACE_S)}
    if not left:
        return
    state["left"] = left
    reporter = session.config.pluginmanager.get_plugin("terminalreporter")
    if reporter is not None:
        reporter.stats.setdefault("left running", []).extend(left)
    if session.exitstatus == pytest.ExitCode.OK:
        session.exitstatus = pytest.ExitCode.TESTS_FAILED


def pytest_terminal_summary(terminalreporter, config: pytest.Config) -> None:
    state = config.stash.get(_KEY, None)
    if not state or not state["left"]:
        return
    terminalreporter.write_sep("=", "processes left running by this test session", red=True)
    for proc, why in state["left"].items():
        terminalreporter.write_line(f"{proc}\n    ({why})")
    terminalreporter.write_line(
        f"(still running {GRACE_S:g} s after the session ended; see tests/orphans.py)")
