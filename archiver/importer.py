"""``archiver import``: back-fill the archive from mbox files, maildirs and single-message files.

Every message is converted to POP3 wire form while it is read (DESIGN.md §2
rule 3) and stored through the same :class:`~archiver.store.ingest.MessageStore`
as collected mail, so the dedup rules are the same: content is stored once per
SHA-256, and importing the same files again records nothing new.

What is taken, file by file (:class:`MailSource`):

* ``--format maildir`` (or a folder with ``cur/`` or ``new/``): every file in
  ``new/`` and ``cur/`` of the maildir and of its Maildir++ ``.Sub`` folders;
* ``--format eml``: every file under the path, one message each, whatever its
  name (``.eml``, ``.txt``, ``.msg``, none);
* ``--format mbox`` / ``mboxrd``: every file under the path that starts with a
  ``From `` line, split into messages; mboxrd removes one ``>`` from
  ``>From ``, ``>>From ``, … lines, mbox keeps quoting as found;
* no format: each file on its own — ``*.eml`` is one message, a file starting
  with a ``From `` line an mbox, a file whose first line is a header field
  one message, a maildir inside the folder a maildir; anything else is
  *skipped* (reported with the reason, not a failure). A path naming one
  file takes that file.

A message is refused unless it has a header block (its first line, after an
optional From_ line, is a ``Name: value`` header field): random binaries and
source files are not mail and could never be removed again once archived.
``force`` archives them anyway. Hidden files and folders, and folders reached
through a symbolic link, are skipped.

Nothing that goes wrong with one file, folder or message stops the import: it
is reported in ``errors`` and the rest is imported.
"""

from __future__ import annotations

import os
import re
import stat
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path

from archiver.db.unit import run_transaction
from archiver.errors import DatabaseError, ImportSourceError, StoreError, UsageError
from archiver.store.ingest import MessageStore, Origin, Outcome, StoreResult
from archiver.store.parse import from_line_length
from archiver.store.spool import Spool, WireFormWriter

FORMATS = ("mbox", "mboxrd", "maildir", "eml")
#: Messages per transaction, and bytes per transaction.
BATCH_MESSAGES = 200
BATCH_BYTES = 32 * 1024 * 1024
#: How much of a file is read to tell what it is, and to look for a header block.
SNIFF_BYTES = 8 * 1024
#: Column sizes of deliveries.source and deliveries.folder (characters).
SOURCE_CHARS = 1000
FOLDER_CHARS = 255

NOT_A_MESSAGE = ("not a message: no header block (its first line is not a \"Name: value\" "
                 "header field); --force archives it anyway")
NOT_MAIL = "not mail: no header block and no \"From \" first line"

_FIELD_START = re.compile(rb"[A-Za-z0-9][!-9;-~]*[ \t]*:")
_QUOTED_FROM = re.compile(rb">+From ")


def display_path(path: str | os.PathLike[str]) -> str:
    """``path`` as printable text: a name that is not UTF-8 (``b'caf\\xe9.eml'``)
    keeps its bytes as ``\\xe9`` escapes; control and other unprintable
    characters are escaped the same way. Storable on every backend, safe
    in JSON and on a terminal."""
    text = os.fsencode(path).decode("utf-8", "backslashreplace")
    if text.isprintable():
        return text
    return "".join(c if c.isprintable() else c.encode("unicode_escape").decode("ascii")
                   for c in text)


def _fit(text: str | None, limit: int) -> str | None:
    """``text`` cut to ``limit`` characters, keeping its end (the file name)."""
    if text is None or len(text) <= limit:
        return text
    return "…" + text[-(limit - 1):]


def looks_like_message(head: bytes) -> bool:
    """Whether ``head`` (a file's first bytes) starts with a header block.

    The first line, after an optional mbox From_ line, must be a header field
    (``Name: value``, the name starting with a letter or digit). Malformed
    mail passes; binaries, source code and prose do not.
    """
    head = head[from_line_length(head):]
    if not _FIELD_START.match(head):
        return False
    return b"\x00" not in head.split(b"\n", 1)[0]


@dataclass(frozen=True)
class SourceFile:
    """One file to import: ``kind`` is "mbox", "mboxrd" or "eml" (one message)."""

    path: Path
    kind: str
    folder: str | None = None


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
    #: files, folders and messages that failed or were refused: {"source", "error"}
    errors: list[dict] = field(default_factory=list)
    #: files that are not mail, passed over by detection: {"source", "reason"}
    skipped: list[dict] = field(default_factory=list)

    def to_json(self) -> dict:
        """DESIGN.md §4's document; ``skipped`` is added when something was skipped."""
        out: dict = {
            "files": self.files,
            "messages": self.messages,
            "archived": self.archived,
            "duplicates": self.duplicates,
            "errors": self.errors,
        }
        if self.skipped:
            out["skipped"] = self.skipped
        return out


def _sniff(path: Path) -> bytes:
    with open(path, "rb") as fh:
        return fh.read(SNIFF_BYTES)


def _is_maildir(path: Path) -> bool:
    """A folder with cur/ or new/. Raises OSError when the folder cannot be searched."""
    for sub in ("cur", "new"):
        try:
            if stat.S_ISDIR(os.stat(path / sub).st_mode):
                return True
        except (FileNotFoundError, NotADirectoryError):
            continue
    return False


def _strerror(exc: OSError) -> str:
    return exc.strerror or str(exc)


class MailSource:
    """The files under one import path, each with how it is read.

    Built before the archive is touched: a path that cannot be used at all
    raises :class:`ImportSourceError` (exit 2). ``skipped`` lists what was
    passed over and why; ``problems`` the files and folders that could not be
    read (``errors`` of the report).
    """

    def __init__(self, path: Path, fmt: str | None = None) -> None:
        if fmt is not None and fmt not in FORMATS:
            raise UsageError(f"unknown import format {fmt!r}: expected one of {', '.join(FORMATS)}")
        shown = display_path(path)
        if not os.path.lexists(path):
            raise ImportSourceError(f"{shown}: no such file or directory")
        self.path = path
        self.format = fmt
        self.files: list[SourceFile] = []
        self.skipped: list[dict] = []
        self.problems: list[dict] = []
        try:
            is_dir = path.is_dir()
            is_file = not is_dir and path.is_file()
        except OSError as exc:
            raise ImportSourceError(f"cannot read {shown}: {_strerror(exc)}") from exc
        if is_dir:
            self._scan_folder()
        elif is_file:
            self._single_file()
        else:
            raise ImportSourceError(f"{shown}: not a file or folder")
        if not self.files and not self.problems:
            if fmt is None:
                raise ImportSourceError(
                    f"{shown}: found no mail to import (no maildir cur/ or new/, no *.eml files, "
                    f"no mbox or message files){self._skipped_note()}; --format eml takes every "
                    "file as one message")
            raise ImportSourceError(
                f"{shown}: no {fmt} files found to import"
                + (" (mbox: files starting with \"From \")" if fmt in ("mbox", "mboxrd") else "")
                + self._skipped_note())

    def _skipped_note(self) -> str:
        if not self.skipped:
            return ""
        first = self.skipped[0]
        return (f"; skipped {len(self.skipped)} file(s), e.g. "
                f"{first['source']}: {first['reason']}")

    # -- discovery ----------------------------------------------------------

    def _skip(self, path: Path, reason: str) -> None:
        self.skipped.append({"source": display_path(path), "reason": reason})

    def _problem(self, path: Path, error: str) -> None:
        self.problems.append({"source": display_path(path), "error": error})

    def _single_file(self) -> None:
        path, fmt = self.path, self.format
        if fmt == "maildir":
            raise ImportSourceError(
                f"{display_path(path)} is not a maildir (it is a file); "
                "use --format mbox or eml for a file")
        if fmt is not None:
            self.files.append(SourceFile(path, fmt))
            return
        # A file named on the command line is taken: one message unless it is an mbox.
        try:
            head = _sniff(path)
        except OSError as exc:
            self._problem(path, f"cannot read file: {_strerror(exc)}")
            return
        kind = "mbox" if path.suffix.lower() != ".eml" and from_line_length(head) else "eml"
        self.files.append(SourceFile(path, kind))

    def _scan_folder(self) -> None:
        path, fmt = self.path, self.format
        try:
            maildir = _is_maildir(path)
        except OSError as exc:
            raise ImportSourceError(f"cannot read {display_path(path)}: {_strerror(exc)}") from exc
        if fmt == "maildir" and not maildir:
            raise ImportSourceError(
                f"{display_path(path)} is not a maildir (it has no cur/ or new/ folder); "
                "use --format mbox or eml for other layouts")
        if fmt == "maildir" or (fmt is None and maildir):
            self._scan_maildir(path, None)
            return
        try:
            entries = _listing(path)
        except OSError as exc:
            raise ImportSourceError(f"cannot read {display_path(path)}: {_strerror(exc)}") from exc
        self._scan_tree(path, entries)

    def _entries(self, folder: Path) -> list[os.DirEntry[str]] | None:
        """The entries of ``folder`` by name, or None (reported) if it cannot be read."""
        try:
            return _listing(folder)
        except OSError as exc:
            self._problem(folder, f"cannot read folder: {_strerror(exc)}")
            return None

    def _scan_tree(self, folder: Path, entries: list[os.DirEntry[str]] | None = None) -> None:
        if entries is None:
            entries = self._entries(folder)
            if entries is None:
                return
        label = display_path(folder.name) if folder != self.path else None
        for entry in entries:
            p = Path(entry.path)
            try:
                if entry.is_dir():
                    if entry.name.startswith("."):
                        self._skip(p, "hidden folder")
                    elif entry.is_symlink():
                        self._skip(p, "symbolic link to a folder (not followed)")
                    elif self.format is None and _is_maildir(p):
                        self._scan_maildir(p, display_path(entry.name))
                    else:
                        self._scan_tree(p)
                elif entry.name.startswith("."):
                    self._skip(p, "hidden file")
                elif not entry.is_file():
                    self._skip(p, "not a regular file")
                else:
                    self._classify(p, label)
            except OSError as exc:
                what = "folder" if _safe_is_dir(entry) else "file"
                self._problem(p, f"cannot read {what}: {_strerror(exc)}")

    def _classify(self, path: Path, folder: str | None) -> None:
        """Decide how one file in a folder is read (or that it is skipped)."""
        fmt = self.format
        if fmt == "eml":
            self.files.append(SourceFile(path, "eml", folder))
            return
        head = _sniff(path)  # OSError: reported by the caller
        if fmt is None and path.suffix.lower() == ".eml":
            self.files.append(SourceFile(path, "eml", folder))  # its name says it is one
        elif not head:
            self._skip(path, "empty file")
        elif fmt is not None:  # mbox or mboxrd
            if head.startswith(b"From "):
                self.files.append(SourceFile(path, fmt, folder))
            else:
                self._skip(path, f"not an {fmt} file (it does not start with a \"From \" line)")
        elif looks_like_message(head):  # headers, maybe after a From_ line: then an mbox
            self.files.append(SourceFile(path, "mbox" if from_line_length(head) else "eml", folder))
        else:
            self._skip(path, NOT_MAIL)

    def _scan_maildir(self, root: Path, base: str | None) -> None:
        """new/ and cur/ of the maildir at ``root`` and of its Maildir++ subfolders."""
        folders: list[tuple[Path, str | None]] = [(root, base)]
        for entry in self._entries(root) or []:
            p = Path(entry.path)
            if not entry.name.startswith(".") or entry.name in (".", ".."):
                continue
            try:
                if entry.is_dir() and not entry.is_symlink() and _is_maildir(p):
                    name = display_path(entry.name[1:])
                    folders.append((p, f"{base}/{name}" if base else name))
            except OSError as exc:
                self._problem(p, f"cannot read folder: {_strerror(exc)}")
        for folder_path, folder in folders:
            for sub in ("new", "cur"):
                d = folder_path / sub
                try:
                    if not d.is_dir():
                        continue
                except OSError as exc:
                    self._problem(d, f"cannot read folder: {_strerror(exc)}")
                    continue
                for entry in self._entries(d) or []:
                    p = Path(entry.path)
                    try:
                        if entry.name.startswith("."):
                            self._skip(p, "hidden file")
                        elif entry.is_file():
                            self.files.append(SourceFile(p, "eml", folder))
                        else:
                            self._skip(p, "not a regular file")
                    except OSError as exc:
                        self._problem(p, f"cannot read file: {_strerror(exc)}")

    # -- reading ------------------------------------------------------------

    def total_bytes(self) -> int:
        total = 0
        for f in self.files:
            try:
                total += f.path.stat().st_size
            except OSError:
                pass
        return total

    def messages(self, on_bytes: Callable[[int], None] | None = None, *,
                 force: bool = False) -> Iterator[SourceMessage]:
        """Every message, spooled in wire form; unusable ones come with ``error`` set."""
        for f in self.files:
            if f.kind in ("mbox", "mboxrd"):
                yield from _read_mbox(f.path, f.folder, on_bytes,
                                      unquote=f.kind == "mboxrd", force=force)
            else:
                yield _read_single(f.path, f.folder, on_bytes, force=force)


def _listing(folder: Path) -> list[os.DirEntry[str]]:
    with os.scandir(folder) as it:
        return sorted(it, key=lambda e: e.name)


def _safe_is_dir(entry: os.DirEntry[str]) -> bool:
    try:
        return entry.is_dir()
    except OSError:
        return False


def _refusal(spool: Spool, force: bool) -> str | None:
    """Why this (non-empty) message is not archived; None: it is."""
    if force or looks_like_message(bytes(spool.view()[:SNIFF_BYTES])):
        return None
    return NOT_A_MESSAGE


def _read_single(path: Path, folder: str | None, on_bytes: Callable[[int], None] | None, *,
                 force: bool = False) -> SourceMessage:
    source = display_path(path)
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
        return SourceMessage(None, source, folder, f"cannot read file: {_strerror(exc)}")
    writer.close()
    spool.finish()
    if spool.size == 0:
        spool.close()
        return SourceMessage(None, source, folder, "empty file: not a message")
    refused = _refusal(spool, force)
    if refused:
        spool.close()
        return SourceMessage(None, source, folder, refused)
    return SourceMessage(spool, source, folder)


def _read_mbox(path: Path, folder: str | None, on_bytes: Callable[[int], None] | None, *,
               unquote: bool = False, force: bool = False) -> Iterator[SourceMessage]:
    """Split an mbox at "From " lines (as Python's mailbox does), streaming.

    The "From " separator line and the blank line that precedes the next one
    belong to the mbox, not to the message. With ``unquote`` (mboxrd) one
    ">" is removed from every ">From ", ">>From ", … line, as the writer
    added it; otherwise (mbox) ">From " quoting is left as is: whether a
    writer added it or it is original text cannot be known, and the archive
    keeps bytes as found.
    """
    shown = display_path(path)
    try:
        fh = open(path, "rb")
    except OSError as exc:
        yield SourceMessage(None, shown, folder, f"cannot read file: {_strerror(exc)}")
        return
    with fh:
        index = 1
        try:
            first = fh.readline()
            if on_bytes:
                on_bytes(len(first))
            if not first.startswith(b"From "):
                yield SourceMessage(None, shown, folder,
                                    "not an mbox file (it does not start with a \"From \" line)")
                return
            spool, pending_blank = Spool(), None
            writer = WireFormWriter(spool)
            for line in fh:
                if on_bytes:
                    on_bytes(len(line))
                if line.startswith(b"From "):
                    yield _finish_mbox_message(spool, writer, shown, index, folder, force)
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
                    if unquote and _QUOTED_FROM.match(line):
                        line = line[1:]
                    writer.write(line)
        except OSError as exc:
            yield SourceMessage(None, f"{shown}#{index}", folder,
                                f"read error: {_strerror(exc)}")
            return
        if pending_blank is not None and spool.size == 0:
            writer.write(pending_blank)  # a message that is one blank line
        yield _finish_mbox_message(spool, writer, shown, index, folder, force)


def _finish_mbox_message(spool: Spool, writer: WireFormWriter, shown: str, index: int,
                         folder: str | None, force: bool) -> SourceMessage:
    writer.close()
    spool.finish()
    source = f"{shown}#{index}"
    if spool.size == 0:
        spool.close()
        return SourceMessage(None, source, folder, "empty message")
    refused = _refusal(spool, force)
    if refused:
        spool.close()
        return SourceMessage(None, source, folder, refused)
    return SourceMessage(spool, source, folder)


def _database_healthy(store: MessageStore) -> bool:
    try:
        run_transaction(store.engine, lambda conn: conn.exec_driver_sql("SELECT 1"))
        return True
    except DatabaseError:
        return False


def import_path(
    store: MessageStore,
    path: str | os.PathLike[str],
    *,
    fmt: str | None = None,
    account: str = "import",
    force: bool = False,
    source: MailSource | None = None,
    progress: Callable[[int, ImportReport], None] | None = None,
) -> tuple[MailSource, ImportReport]:
    """Import every message under ``path``; returns the source and a report.

    ``source`` may be the :class:`MailSource` of ``path`` built already.
    ``progress(bytes_read_delta, report)`` is called as the import advances.
    A batch the database refuses is stored message by message, so one message
    it refuses is reported and the others are kept; if the database itself
    fails, the error is raised.
    """
    if source is None:
        source = MailSource(Path(path), fmt)
    report = ImportReport(files=len(source.files), errors=list(source.problems),
                          skipped=list(source.skipped))

    batch: list[tuple[Spool, Origin]] = []
    shown: list[str] = []  # each batch item's source as reported (Origin's may be cut)
    batch_bytes = 0

    def count(res: StoreResult) -> None:
        if res.outcome == Outcome.ARCHIVED:
            report.archived += 1
            report.bytes += res.size
        else:
            report.duplicates += 1

    def flush() -> None:
        nonlocal batch, shown, batch_bytes
        if not batch:
            return
        try:
            try:
                results = store.store_batch(batch)
            except (DatabaseError, StoreError, UnicodeError) as exc:
                for item, name in zip(batch, shown, strict=True):
                    try:
                        count(store.store_batch([item])[0])
                    except (DatabaseError, StoreError, UnicodeError) as one:
                        if not _database_healthy(store):
                            raise one from exc
                        # The database works but refuses this one message.
                        report.errors.append({"source": name,
                                              "error": f"the archive refused it: {one}"})
            else:
                for res in results:
                    count(res)
        finally:
            for spool, _ in batch:
                spool.close()
            batch, shown, batch_bytes = [], [], 0

    on_bytes = (lambda n: progress(n, report)) if progress else None
    for msg in source.messages(on_bytes, force=force):
        if msg.error:
            report.errors.append({"source": msg.source, "error": msg.error})
            continue
        report.messages += 1
        assert msg.spool is not None  # set whenever error is not
        batch.append((msg.spool, Origin(account, source=_fit(msg.source, SOURCE_CHARS),
                                        folder=_fit(msg.folder, FOLDER_CHARS))))
        shown.append(msg.source)
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
    "SourceFile",
    "SourceMessage",
    "display_path",
    "import_path",
    "looks_like_message",
]
