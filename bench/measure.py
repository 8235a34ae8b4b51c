"""Timing one child process: wall time, CPU time and peak RSS, and summarising repeats.

Every tool in the benchmark runs as its own process, started and reaped here,
so all of them are measured the same way:

* wall time: from just before the process is spawned to just after it has
  been reaped (``time.perf_counter``), i.e. interpreter or program start-up,
  configuration parsing, the whole POP3 session, storage, and exit. That is
  what a cron job or a scheduler pays per pass.
* CPU time and peak RSS: the rusage of the tool's process *and of every
  descendant it reaped itself* (getmail forks one delivery process per
  message; those are included, and its peak RSS is the largest of them
  all). Dovecot's own CPU time is not included: the server is the same for
  every tool.

Why not simply ``os.wait4`` on a child we spawn ourselves: on Linux, exec()
folds the high-water RSS of the address space it replaces into the new
program's ``ru_maxrss``, and a child spawned by a Python process (fork or
vfork) replaces a copy of *our* address space. Measured that way,
``/bin/true`` "peaks" at the harness's RSS (58 MB here, 300 MB after the
harness touched 300 MB). So the tool is started by a tiny launcher that
forks it from its own small address space, waits for it with wait4, and
reports the rusage: GNU time (``/usr/bin/time``, about 1 MB) when
installed, else ``launch.py`` under ``python -I -S`` (about 8 MB, which then
sets a floor under every peak RSS; the report says which launcher ran).

Peak RSS from rusage is the largest *single* process. A tool that works
with several processes at once (archiver's parse pool, getmail's delivery
child next to getmail) uses more than that, so a sampler thread also adds up
the memory of the tool's whole process tree every 20 ms: the sum of PSS
(proportional set size: pages shared between processes, e.g. after fork,
are split between them, so nothing is counted twice). Its peak is "tree
MB"; a spike shorter than 20 ms can be missed.

stdout and stderr go to files, not pipes, so that reading them costs the
child nothing and a chatty tool cannot block on a full pipe.
"""

from __future__ import annotations

import os
import signal
import statistics
import subprocess
import sys
import threading
import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

__all__ = ["ChildRun", "Spread", "launcher", "run_child", "spread"]


@dataclass
class ChildRun:
    """What one child process did and cost."""

    argv: list[str]
    exit_code: int
    wall_s: float
    cpu_s: float  # user + system, the child and the descendants it reaped
    max_rss_bytes: int  # of the tool (and its reaped descendants), not of the launcher
    tree_pss_bytes: int  # peak of the summed PSS of the tool's process tree (sampled)
    stdout: str
    stderr: str
    timed_out: bool = False


GNU_TIME = "/usr/bin/time"
_LAUNCH_PY = Path(__file__).resolve().parent / "launch.py"


def launcher() -> str:
    """Which launcher measures the children (for the report)."""
    if _gnu_time():
        return "GNU time (/usr/bin/time, ~1 MB floor under peak RSS)"
    return "bench/launch.py under python -I -S (~8 MB floor under peak RSS)"


def _gnu_time() -> bool:
    return os.access(GNU_TIME, os.X_OK)


def run_child(
    argv: Sequence[str],
    *,
    log_dir: Path,
    name: str,
    env: dict[str, str] | None = None,
    cwd: Path | None = None,
    timeout: float = 3600.0,
) -> ChildRun:
    """Run ``argv`` to completion and measure it (see the module doc).

    stdout/stderr are kept in ``log_dir/<name>.out`` and ``.err`` for
    inspection. A child still running after ``timeout`` seconds is killed
    (its whole process group) and reported with ``timed_out``.
    """
    log_dir.mkdir(parents=True, exist_ok=True)
    out_path, err_path = log_dir / f"{name}.out", log_dir / f"{name}.err"
    usage_path = log_dir / f"{name}.rusage"
    usage_path.unlink(missing_ok=True)
    if _gnu_time():
        # %M: peak RSS in KiB; %U %S: user and system CPU seconds of the child
        wrapped = [GNU_TIME, "-f", "%M %U %S", "-o", str(usage_path), "--", *argv]
    else:
        wrapped = [sys.executable, "-I", "-S", str(_LAUNCH_PY), str(usage_path), *argv]
    with open(out_path, "wb") as out, open(err_path, "wb") as err:
        started = time.perf_counter()
        proc = subprocess.Popen(
            wrapped, stdin=subprocess.DEVNULL, stdout=out, stderr=err,
            env=env, cwd=cwd, start_new_session=True,
        )
        expired = threading.Event()

        def kill() -> None:
            expired.set()
            try:
                os.killpg(proc.pid, signal.SIGKILL)
            except ProcessLookupError:
                pass

        timer = threading.Timer(timeout, kill)
        timer.start()
        sampler = TreeMemory(proc.pid)
        sampler.start()
        try:
            proc.wait()
        except BaseException:  # interrupted: leave no tool running behind us
            kill()
            proc.wait()
            raise
        finally:
            timer.cancel()
            sampler.stop()
        wall = time.perf_counter() - started
    max_rss_kib, cpu = 0, 0.0
    try:
        # GNU time writes "Command exited with non-zero status N" first, then the format
        fields = usage_path.read_text().strip().splitlines()[-1].split()
        max_rss_kib, cpu = int(fields[0]), float(fields[1]) + float(fields[2])
    except (OSError, IndexError, ValueError):
        pass
    return ChildRun(
        argv=list(argv),
        exit_code=proc.returncode,
        wall_s=wall,
        cpu_s=cpu,
        max_rss_bytes=max_rss_kib * 1024,
        tree_pss_bytes=sampler.peak_bytes,
        stdout=out_path.read_text(errors="replace"),
        stderr=err_path.read_text(errors="replace"),
        timed_out=expired.is_set(),
    )


class TreeMemory(threading.Thread):
    """Samples the summed PSS of a launcher's descendants (not the launcher) every 20 ms."""

    interval = 0.02

    def __init__(self, launcher_pid: int) -> None:
        super().__init__(daemon=True, name="tree-memory")
        self.launcher_pid = launcher_pid
        self.peak_bytes = 0
        self._done = threading.Event()

    def stop(self) -> None:
        self._done.set()
        self.join()

    def run(self) -> None:
        while not self._done.wait(self.interval):
            total = sum(_pss_bytes(pid) for pid in _descendants(self.launcher_pid))
            self.peak_bytes = max(self.peak_bytes, total)


def _descendants(pid: int) -> list[int]:
    """All live descendants of ``pid`` (Linux /proc/PID/task/TID/children)."""
    found, todo = [], [pid]
    while todo:
        parent = todo.pop()
        try:
            tasks = os.listdir(f"/proc/{parent}/task")
        except OSError:
            continue
        for tid in tasks:
            try:
                with open(f"/proc/{parent}/task/{tid}/children") as f:
                    children = [int(c) for c in f.read().split()]
            except OSError:
                continue
            found += children
            todo += children
    return found


def _pss_bytes(pid: int) -> int:
    try:
        with open(f"/proc/{pid}/smaps_rollup") as f:
            for line in f:
                if line.startswith("Pss:"):
                    return int(line.split()[1]) * 1024
    except (OSError, ValueError):
        pass
    return 0


@dataclass(frozen=True)
class Spread:
    """Median and range of repeated measurements."""

    median: float
    low: float
    high: float
    count: int

    def to_json(self) -> dict[str, float]:
        return {"median": self.median, "min": self.low, "max": self.high, "count": self.count}


def spread(values: Sequence[float]) -> Spread | None:
    if not values:
        return None
    return Spread(statistics.median(values), min(values), max(values), len(values))
