"""Printing what was compared, on which data, and the ratios (STYLE.md rule 12)."""

from __future__ import annotations

import os
import platform
import re
import subprocess
from collections.abc import Iterable

from records import Summary

_PROCESS_FRAME = re.compile(r'process \d+:".*?";(?=process |thread \()')

__all__ = ["machine_info", "first_pass_table", "noop_table", "ratio_lines", "scale_lines",
           "fmt_spread", "profile_top"]


def machine_info() -> dict:
    """Cores, CPU model, memory, kernel: what the numbers were measured on."""
    model = "?"
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                if line.startswith("model name"):
                    model = line.split(":", 1)[1].strip()
                    break
    except OSError:
        pass
    mem_gb = None
    try:
        with open("/proc/meminfo") as f:
            match = re.search(r"MemTotal:\s+(\d+) kB", f.read())
            mem_gb = round(int(match.group(1)) / 1024 / 1024, 1) if match else None
    except OSError:
        pass
    return {"cores": os.cpu_count(), "cpu_model": model, "memory_gb": mem_gb,
            "kernel": platform.release(), "platform": platform.platform()}


def python_version(python: str) -> str:
    try:
        out = subprocess.run([python, "-c", "import sys, sqlite3; print(sys.version.split()[0], "
                              "sqlite3.sqlite_version)"], capture_output=True, text=True,
                             timeout=30).stdout.split()
        return f"Python {out[0]} (SQLite {out[1]})"
    except (OSError, IndexError):
        return "Python ?"


def fmt_spread(spread, digits: int = 2) -> str:
    if spread is None:
        return "INVALID"
    return (f"{spread.median:.{digits}f} [{spread.low:.{digits}f}–{spread.high:.{digits}f}]")


def _num(value: float | None, fmt: str) -> str:
    return "—" if value is None else format(value, fmt)


def rate(value: float | None) -> str:
    """A rate with about three significant digits, never in exponent form."""
    if value is None:
        return "—"
    return f"{value:.0f}" if value >= 100 else f"{value:.1f}" if value >= 10 else f"{value:.2f}"


def _table(headers: list[str], rows: list[list[str]], right: set[int]) -> list[str]:
    widths = [max(len(h), *(len(r[i]) for r in rows)) if rows else len(h)
              for i, h in enumerate(headers)]

    def line(cells: list[str]) -> str:
        return "  ".join(c.rjust(w) if i in right else c.ljust(w)
                         for i, (c, w) in enumerate(zip(cells, widths, strict=True))).rstrip()

    return [line(headers), line(["-" * w for w in widths]), *(line(r) for r in rows)]


def first_pass_table(summaries: Iterable[Summary]) -> list[str]:
    headers = ["tool", "N", "MB", "wall s median [min–max]", "msgs/s", "MB/s", "CPU s",
               "peak RSS MB", "tree MB", "in-process s", "valid"]
    rows = []
    for s in summaries:
        rows.append([
            s.tool, str(s.messages), f"{s.bytes / 1e6:.1f}", fmt_spread(s.wall),
            rate(s.msgs_per_s), rate(s.mb_per_s),
            _num(s.cpu.median if s.cpu else None, ".2f"),
            f"{s.peak_rss_bytes / 1e6:.0f}" if s.valid_runs else "—",
            f"{s.peak_tree_bytes / 1e6:.0f}" if s.valid_runs else "—",
            _num(s.in_process.median if s.in_process else None, ".2f"),
            f"{s.valid_runs}/{s.runs}",
        ])
    return _table(headers, rows, right=set(range(1, len(headers))))


def noop_table(summaries: Iterable[Summary]) -> list[str]:
    headers = ["tool", "N listed", "wall s median [min–max]", "µs/listed msg",
               "in-process s", "CPU s", "peak RSS MB", "tree MB", "valid"]
    rows = []
    for s in summaries:
        rows.append([
            s.tool, str(s.messages), fmt_spread(s.wall, 3), _num(s.us_per_message, ".1f"),
            fmt_spread(s.in_process, 3) if s.in_process else "—",
            _num(s.cpu.median if s.cpu else None, ".2f"),
            f"{s.peak_rss_bytes / 1e6:.0f}" if s.valid_runs else "—",
            f"{s.peak_tree_bytes / 1e6:.0f}" if s.valid_runs else "—",
            f"{s.valid_runs}/{s.runs}",
        ])
    return _table(headers, rows, right=set(range(1, len(headers))))


#: fetchmail rows besides the reference `fetchmail` (procmail into a Maildir), with what
#: the first-pass ratio line must say about them
_FETCHMAIL_EXTRA = {
    "fetchmail-bsmtp": "; fetchmail-bsmtp = fastest possible, not maildir/mbox: one batch file",
    "fetchmail-maildrop": "; fetchmail-maildrop = maildrop instead of procmail as the MDA",
}


def ratio_lines(summaries: list[Summary], subject: str = "archiver") -> list[str]:
    """archiver vs each other tool: msgs/s for the first pass, wall time for the no-op pass.

    ``fetchmail`` (MDA into a Maildir) is the reference; ``fetchmail-bsmtp``
    gets its own line so that both are in view.
    """
    by = {(s.tool, s.pass_name): s for s in summaries}
    lines = []
    me = by.get((subject, "first"))
    if me and me.msgs_per_s:
        for other in ("fetchmail", *_FETCHMAIL_EXTRA, "getmail", "ceiling-pipe", "ceiling-seq",
                      "pop3client-null"):
            them = by.get((other, "first"))
            if them and them.msgs_per_s:
                lines.append(f"first pass  {subject}/{other} msgs/s = "
                             f"{rate(me.msgs_per_s)}/{rate(them.msgs_per_s)} = "
                             f"{me.msgs_per_s / them.msgs_per_s:.2f}"
                             "  (>1: archiver faster)" + _FETCHMAIL_EXTRA.get(other, ""))
    me = by.get((subject, "noop"))
    if me and me.wall:
        for other in ("fetchmail", *_FETCHMAIL_EXTRA, "getmail", "ceiling-seq"):
            them = by.get((other, "noop"))
            if them and them.wall:
                label = "ceiling (UIDL only)" if other == "ceiling-seq" else other
                lines.append(f"no-op pass  {subject}/{label} wall = "
                             f"{me.wall.median:.3f}/{them.wall.median:.3f} s = "
                             f"{me.wall.median / them.wall.median:.2f}"
                             "  (<1: archiver cheaper)")
    return lines


def scale_lines(small: list[Summary], large: list[Summary]) -> list[str]:
    """How each tool's cost grows from the small to the large mailbox.

    For the no-op pass the per-message cost at each size is diluted by the
    fixed cost of a pass (start-up, login); the marginal cost, (large - small)
    / (N_large - N_small), is the price of each extra message on the server.
    """
    lines = []
    big = {(s.tool, s.pass_name): s for s in large}
    for s in small:
        other = big.get((s.tool, s.pass_name))
        if other is None or not s.wall or not other.wall:
            continue
        extra = other.messages - s.messages
        if s.pass_name == "first":
            lines.append(
                f"first pass  {s.tool}: {rate(s.msgs_per_s)} msgs/s at N={s.messages} vs "
                f"{rate(other.msgs_per_s)} msgs/s at N={other.messages}: "
                f"ratio {other.msgs_per_s / s.msgs_per_s:.2f} (<1: slower per message "
                "in the larger mailbox)")
            continue
        marginal = (other.wall.median - s.wall.median) / extra * 1e6
        lines.append(
            f"no-op pass  {s.tool}: {s.wall.median:.3f} s at N={s.messages} "
            f"({s.us_per_message:.1f} µs/msg), {other.wall.median:.3f} s at "
            f"N={other.messages} ({other.us_per_message:.1f} µs/msg); "
            f"marginal {marginal:.1f} µs per extra message")
        if s.in_process and other.in_process:
            a, b = s.in_process.median, other.in_process.median
            lines.append(
                f"            {s.tool} in-process: {a:.3f} s ({a / s.messages * 1e6:.1f} µs/msg) "
                f"vs {b:.3f} s ({b / other.messages * 1e6:.1f} µs/msg); "
                f"marginal {(b - a) / extra * 1e6:.1f} µs per extra message")
    return lines


def profile_top(raw_path: str, limit: int = 10, rate_hz: int = 100) -> list[str]:
    """Digest py-spy's raw stacks (recorded with --threads --subprocesses).

    py-spy samples every thread of every process at ``rate_hz`` and drops
    samples of idle threads, so a thread's samples / rate is roughly the
    time it was busy. Native code (hashing, compression, SQLite, socket
    calls) is charged to the Python function that called it. Printed:
    the busy time per thread (worker processes' threads summed), the top
    functions by own ("self") samples overall, self samples summed per
    archiver file or third-party package, and each busy thread's top
    functions.
    """
    own: dict[str, int] = {}
    modules: dict[str, int] = {}
    threads: dict[str, dict[str, int]] = {}
    total = 0
    with open(raw_path, errors="replace") as f:
        for line in f:
            stack, _, count = line.rstrip("\n").rpartition(" ")
            if not stack or not count.isdigit():
                continue
            n = int(count)
            # 'process PID:"cmdline";' frames come first (a cmdline may hold ';'),
            # then 'thread (TID): name', then the Python frames, outermost first.
            processes = 0
            while match := _PROCESS_FRAME.match(stack):
                processes += 1
                stack = stack[match.end():]
            thread, frames = "?", []
            for frame in stack.split(";"):
                if frame.startswith("thread ("):
                    thread = frame.split(": ", 1)[-1]
                elif frame:
                    frames.append(_frame_name(frame))
            if not frames:
                continue
            total += n
            where = f"{'main process' if processes <= 1 else 'worker processes'}, {thread}"
            own[frames[-1]] = own.get(frames[-1], 0) + n
            module = _module_of(frames[-1])
            modules[module] = modules.get(module, 0) + n
            per_thread = threads.setdefault(where, {})
            per_thread[frames[-1]] = per_thread.get(frames[-1], 0) + n
    if not total:
        return ["(no samples)"]

    def top(counts: dict[str, int], k: int, indent: str = "  ") -> list[str]:
        ranked = sorted(counts.items(), key=lambda kv: -kv[1])[:k]
        return [f"{indent}{100 * n / total:5.1f}%  {name}" for name, n in ranked]

    busy = sorted(((w, sum(c.values())) for w, c in threads.items()), key=lambda kv: -kv[1])
    out = [f"{total} busy samples at {rate_hz} Hz (~{total / rate_hz:.1f} s busy, all threads "
           "and processes); % = share of all busy samples",
           "busy time per thread:"]
    out += [f"  {n / rate_hz:6.1f} s  {100 * n / total:5.1f}%  {w}" for w, n in busy]
    out += ["top functions by self time:", *top(own, limit),
            "self time by module:", *top(modules, limit)]
    for where, n in busy:
        if n >= 0.05 * total:
            out += [f"top functions in {where}:", *top(threads[where], 5, "    ")]
    return out


def _module_of(name: str) -> str:
    """An archiver file ('archiver/store/parse.py'), else the top package ('sqlalchemy')."""
    path = name[name.rfind("(") + 1:-1] if name.endswith(")") else name
    if path.startswith("archiver/"):
        return path
    if path.startswith("<frozen"):
        return "(imports)"
    return path.split("/", 1)[0] if "/" in path else path


def _frame_name(frame: str) -> str:
    """'func (path/to/file.py:123)' -> 'func (file-ish path)' without the line number."""
    match = re.match(r"(.*) \((.*?)(?::\d+)?\)$", frame)
    if not match:
        return frame
    func, path = match.groups()
    path = re.sub(r"^.*?/(site-packages|lib/python3\.\d+)/", "", path)
    path = re.sub(r"^/.*?/(?=archiver/)", "", path)  # the working tree or the run's snapshot
    return f"{func} ({path})"
