"""``archiver import``: back-fill the archive from mbox files, maildirs and .eml files.

Every message is converted to POP3 wire form while it is read (DESIGN.md §2
rule 3) and stored through the same :class:`~archiver.store.ingest.MessageStore`
as collected mail, so the dedup rules are the same: content is stored once per
SHA-256, and importing the same files again records nothing new.

A file or message that cannot be read is reported and skipped; the rest is
imported.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path

from archiver.errors import ImportSourceError, UsageError
from archiver.store.ingest import MessageStore, Origin, Outcome
from archiver.store.spool import Spool, WireFormWriter

FORMATS = ("mbox", "maildir", "eml")
#: Messages per transaction, and bytes per transaction.
BATCH_MESSAGES = 200
BATCH_BYTES = 32 * 1024 * 1024


@dataclass
class SourceMessage:
    """One message read from a file: its spool, where it came from, its folder."""

    spool: Spool | None
    source: str
    folder: str | None = None
    error: str | None = None


@dataclass
class ImportReport:
    files: int = 0
    messages: int = 0
    archived: int = 0
    duplicates: int = 0
    bytes: int = 0
    errors: list[dict] = field(default_factory=list)

    def to_json(self) -> dict:
        return {
            "files": self.files,
            "messages": self.messages,
            "archived": self.archived,
            "duplicates": self.duplicates,
            "errors": self.errors,
        }


def detect_format(path: Path) -> str:
    """Guess the format of ``path``.

    A folder with cur/ or new/ is a maildir; a folder with ``*.eml`` files is
    eml; a folder of files starting with "From " is mbox. A file starting
    with "From " is an mbox, any other file one message.
    """
    if path.is_dir():
        if (path / "cur").is_dir() or (path / "new").is_dir():
            return "maildir"
        if any(f.is_file() and f.suffix.lower() == ".eml" for f in path.rglob("*")):
            return "eml"
        if any(_starts_like_mbox(f) for f in path.rglob("*") if f.is_file()):
            return "mbox"
        raise ImportSourceError(
            f"{path}: found no mail to import (no maildir cur/ or new/, no *.eml files, no mbox "
            "files starting with \"From \"); pass --format if the files are named otherwise")
    if path.is_file():
        try:
            with open(path, "rb") as fh:
                head = fh.read(5)
        except OSError as exc:
            raise ImportSourceError(f"cannot read {path}: {exc.strerror}") from exc
        return "mbox" if head == b"From " else "eml"
    raise ImportSourceError(f"{path}: no such file or directory")


def _starts_like_mbox(path: Path) -> bool:
    try:
        with open(path, "rb") as fh:
            return fh.read(5) == b"From "
    except OSError:
        return False


class MailSource:
    """The messages under one import path, in one format."""

    def __init__(self, path: Path, fmt: str) -> None:
        if fmt not in FORMATS:
            raise UsageError(f"unknown import format {fmt!r}: expected one of {', '.join(FORMATS)}")
        if not path.exists():
            raise ImportSourceError(f"{path}: no such file or directory")
        self.path = path
        self.format = fmt
        self.files = self._files()
        if not self.files:
            raise ImportSourceError(
                f"{path}: no {fmt} files found to import"
                + (" (eml: *.eml files in the folder and below)" if fmt == "eml" else "")
                + (" (mbox: files starting with \"From \")" if fmt == "mbox" else ""))

    def _files(self) -> list[tuple[Path, str | None]]:
        """(file, folder) pairs in a stable order."""
        path, fmt = self.path, self.format
        if fmt == "maildir":
            if not path.is_dir() or not ((path / "cur").is_dir() or (path / "new").is_dir()):
                raise ImportSourceError(
                    f"{path} is not a maildir (it has no cur/ or new/ folder); "
                    "use --format mbox or eml for other layouts"
                )
            out: list[tuple[Path, str | None]] = []
            folders = [(path, None)] + [
                (p, p.name[1:]) for p in sorted(path.iterdir())
                if p.is_dir() and p.name.startswith(".") and p.name not in (".", "..")
                and ((p / "cur").is_dir() or (p / "new").is_dir())
            ]
            for folder_path, folder in folders:
                for sub in ("new", "cur"):
                    d = folder_path / sub
                    if d.is_dir():
                        out.extend((f, folder) for f in sorted(d.iterdir())
                                   if f.is_file() and not f.name.startswith("."))
            return out
        if path.is_file():
            return [(path, None)]
        if fmt == "eml":
            return [(f, None) for f in sorted(path.rglob("*"))
                    if f.is_file() and f.suffix.lower() == ".eml"]
        # mbox: every file in the folder that starts like an mbox.
        return [(f, f.parent.name if f.parent != path else None) for f in sorted(path.rglob("*"))
                if f.is_file() and not f.name.startswith(".") and _starts_like_mbox(f)]

    def total_bytes(self) -> int:
        total = 0
        for f, _ in self.files:
            try:
                total += f.stat().st_size
            except OSError:
                pass
        return total

    def messages(self, on_bytes: Callable[[int], None] | None = None) -> Iterator[SourceMessage]:
        """Every message, spooled in wire form; unreadable ones come with ``error`` set."""
        for f, folder in self.files:
            if self.format == "mbox":
                yield from _read_mbox(f, folder, on_bytes)
            else:
                yield _read_single(f, folder, on_bytes)


def _read_single(path: Path, folder: str | None, on_bytes) -> SourceMessage:
    spool = Spool()
    writer = WireFormWriter(spool)
    try:
        with open(path, "rb") as fh:
            while block := fh.read(1024 * 1024):
                writer.write(block)
                if on_bytes:
                    on_bytes(len(block))
    except OSError as exc:
        spool.close()
        return SourceMessage(None, str(path), folder, f"cannot read file: {exc.strerror or exc}")
    writer.close()
    spool.finish()
    if spool.size == 0:
        spool.close()
        return SourceMessage(None, str(path), folder, "empty file: not a message")
    return SourceMessage(spool, str(path), folder)


def _read_mbox(path: Path, folder: str | None, on_bytes) -> Iterator[SourceMessage]:
    """Split an mbox at "From " lines (as Python's mailbox does), streaming.

    The "From " separator line and the blank line that precedes the next one
    belong to the mbox, not to the message. ">From " quoting is left as is:
    whether it was added by the writer (mboxrd) or is original text cannot be
    known, and the archive keeps bytes as found.
    """
    try:
        fh = open(path, "rb")
    except OSError as exc:
        yield SourceMessage(None, str(path), folder, f"cannot read file: {exc.strerror or exc}")
        return
    with fh:
        first = fh.readline()
        if on_bytes:
            on_bytes(len(first))
        if not first.startswith(b"From "):
            yield SourceMessage(None, str(path), folder,
                                "not an mbox file (it does not start with a \"From \" line)")
            return
        index = 1
        spool, writer, pending_blank = Spool(), None, None
        writer = WireFormWriter(spool)
        try:
            for line in fh:
                if on_bytes:
                    on_bytes(len(line))
                if line.startswith(b"From "):
                    yield _finish_mbox_message(spool, writer, path, index, folder)
                    index += 1
                    spool, pending_blank = Spool(), None
                    writer = WireFormWriter(spool)
                    continue
                if pending_blank is not None:
                    writer.write(pending_blank)
                    pending_blank = None
                if line in (b"\n", b"\r\n"):
                    pending_blank = line  # maybe the separator before the next "From "
                else:
                    writer.write(line)
        except OSError as exc:
            spool.close()
            yield SourceMessage(None, f"{path}#{index}", folder,
                                f"read error: {exc.strerror or exc}")
            return
        if pending_blank is not None and spool.size == 0:
            writer.write(pending_blank)  # a message that is one blank line
        yield _finish_mbox_message(spool, writer, path, index, folder)


def _finish_mbox_message(spool: Spool, writer: WireFormWriter, path: Path, index: int,
                         folder: str | None) -> SourceMessage:
    writer.close()
    spool.finish()
    source = f"{path}#{index}"
    if spool.size == 0:
        spool.close()
        return SourceMessage(None, source, folder, "empty message")
    return SourceMessage(spool, source, folder)


def import_path(
    store: MessageStore,
    path: str | os.PathLike,
    *,
    fmt: str | None = None,
    account: str = "import",
    progress: Callable[[int, ImportReport], None] | None = None,
) -> tuple[MailSource, ImportReport]:
    """Import every message under ``path``; returns the source and a report.

    ``progress(bytes_read_delta, report)`` is called as the import advances.
    """
    p = Path(path)
    source = MailSource(p, fmt or detect_format(p))
    report = ImportReport(files=len(source.files))

    batch: list[tuple[Spool, Origin]] = []
    batch_bytes = 0

    def flush() -> None:
        nonlocal batch, batch_bytes
        if not batch:
            return
        try:
            for res in store.store_batch(batch):
                if res.outcome == Outcome.ARCHIVED:
                    report.archived += 1
                    report.bytes += res.size
                else:
                    report.duplicates += 1
        finally:
            for spool, _ in batch:
                spool.close()
            batch, batch_bytes = [], 0

    on_bytes = (lambda n: progress(n, report)) if progress else None
    for msg in source.messages(on_bytes):
        if msg.error:
            report.errors.append({"source": msg.source, "error": msg.error})
            continue
        report.messages += 1
        assert msg.spool is not None  # set whenever error is not
        batch.append((msg.spool, Origin(account, source=msg.source, folder=msg.folder)))
        batch_bytes += msg.spool.size
        if len(batch) >= BATCH_MESSAGES or batch_bytes >= BATCH_BYTES:
            flush()
    flush()
    if progress:
        progress(0, report)
    return source, report


__all__ = [
    "BATCH_BYTES",
    "BATCH_MESSAGES",
    "FORMATS",
    "ImportReport",
    "MailSource",
    "SourceMessage",
    "detect_format",
    "import_path",
]
