"""Terminal output for the CLI: JSON documents, tables, progress bars.

Progress bars go to stderr and appear only on a terminal, so ``--json`` on
stdout and output piped into a file stay clean. rich is imported lazily:
start-up time matters for a command that runs every few minutes.
"""

from __future__ import annotations

import json
import sys
from contextlib import contextmanager
from typing import Any


def print_json(data: Any) -> None:
    sys.stdout.write(json.dumps(data, indent=2, ensure_ascii=False, default=str) + "\n")
    sys.stdout.flush()


def console(stderr: bool = False):
    from rich.console import Console

    return Console(stderr=stderr, highlight=False, soft_wrap=False, markup=False)


def stderr_is_terminal() -> bool:
    return sys.stderr.isatty()


class _NoProgress:
    def advance(self, n: int = 1) -> None:
        pass

    def set_total(self, total: int | None) -> None:
        pass

    def describe(self, text: str) -> None:
        pass


class _RichProgress:
    def __init__(self, progress, task) -> None:
        self._p = progress
        self._t = task

    def advance(self, n: int = 1) -> None:
        self._p.advance(self._t, n)

    def set_total(self, total: int | None) -> None:
        self._p.update(self._t, total=total)

    def describe(self, text: str) -> None:
        self._p.update(self._t, description=text)


@contextmanager
def progress_bar(description: str, total: int | None, *, unit: str = "messages", enabled: bool = True):
    """A progress bar on stderr when it is a terminal; otherwise a silent stand-in.

    ``unit="bytes"`` shows transfer size and speed instead of a count.
    """
    if not enabled or not stderr_is_terminal():
        yield _NoProgress()
        return
    from rich.progress import (
        BarColumn,
        DownloadColumn,
        MofNCompleteColumn,
        Progress,
        TextColumn,
        TimeElapsedColumn,
        TimeRemainingColumn,
        TransferSpeedColumn,
    )

    columns = [TextColumn("[bold]{task.description}"), BarColumn()]
    if unit == "bytes":
        columns += [DownloadColumn(), TransferSpeedColumn()]
    else:
        columns += [MofNCompleteColumn(), TextColumn(unit)]
    columns += [TimeElapsedColumn(), TimeRemainingColumn()]
    with Progress(*columns, console=console(stderr=True), transient=False) as progress:
        task = progress.add_task(description, total=total)
        yield _RichProgress(progress, task)


def human_size(n: int | None) -> str:
    if n is None:
        return "-"
    size = float(n)
    for unit in ("B", "KB", "MB", "GB", "TB"):
        if size < 1024 or unit == "TB":
            return f"{size:.0f} {unit}" if unit == "B" else f"{size:.1f} {unit}"
        size /= 1024
    return f"{n} B"


class _NoBars:
    def add_bytes_task(self, description: str, total: int | None):
        return _NoProgress()


class _RichBars:
    def __init__(self, progress) -> None:
        self._p = progress

    def add_bytes_task(self, description: str, total: int | None):
        return _RichProgress(self._p, self._p.add_task(description, total=total))


@contextmanager
def multi_progress():
    """Several byte-progress bars (one per account) on stderr, when it is a terminal."""
    if not stderr_is_terminal():
        yield _NoBars()
        return
    from rich.progress import (
        BarColumn,
        DownloadColumn,
        Progress,
        TextColumn,
        TimeRemainingColumn,
        TransferSpeedColumn,
    )

    with Progress(TextColumn("[bold]{task.description}"), BarColumn(), DownloadColumn(),
                  TransferSpeedColumn(), TimeRemainingColumn(),
                  console=console(stderr=True)) as progress:
        yield _RichBars(progress)


__all__ = [
    "console",
    "human_size",
    "multi_progress",
    "print_json",
    "progress_bar",
    "stderr_is_terminal",
]
