"""The server side of the benchmark: one private Dovecot, the corpus, one fresh mailbox per run.

Fairness rules implemented here:

* Every tool talks to the same Dovecot (``tests.support.dovecot``) on
  127.0.0.1, over **plain POP3 (no TLS)** for every tool: TLS cost would be
  the same for all and only hide the differences between the clients. The
  server is started without SSL, so it does not even offer STLS and no tool
  can negotiate it behind our back (fetchmail would).
* Every measured first pass gets its **own fresh Dovecot user** holding the
  same N messages in the same order, so every first pass really retrieves
  N messages and no tool benefits from state (Dovecot's index, seen flags,
  cur/ renames) left by another.
* The corpus is generated once (``generate_mix(n, seed)``, deterministic) and
  delivered once into a template maildir that no client ever logs in to.
  Each run's mailbox is made of **hard links** to those files: the same
  bytes, delivered in seconds instead of minutes, without N x runs copies on
  disk. Dovecot never writes to a maildir file (flag changes are renames),
  so one user's session cannot change what another sees. All runs therefore
  read the same, page-cached files; the first run pays no cold-cache penalty
  that the others do not.
* Dovecot logs per session what the client really retrieved
  (``pop3_logout_format``); ``retrieved()`` reads it so that the harness can
  check every pass independently of what the tool claims.
"""

from __future__ import annotations

import base64
import os
import random
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path

from tests.support.corpus import generate_mix, mix_stats
from tests.support.dovecot import Dovecot, Pop3Session

__all__ = ["BenchServer", "Corpus", "big_message", "PASSWORD"]

#: every benchmark user has this password; nothing here is secret
PASSWORD = "bench-password"


@dataclass
class Corpus:
    """A set of messages delivered into a template mailbox, ready to be linked."""

    name: str  # e.g. "mix-10000-seed1", "big-100MB"
    description: str
    files: list[Path]  # template maildir files, in delivery (= POP3) order
    sizes: list[int]  # wire sizes (what RETR returns), in the same order
    stats: dict = field(default_factory=dict)
    seed: int | None = None  # generate_mix's seed, for a mix

    @property
    def count(self) -> int:
        return len(self.files)

    @property
    def total_bytes(self) -> int:
        return sum(self.sizes)

    def prefix(self, n: int) -> Corpus:
        """The first ``n`` messages: generate_mix(n) is a prefix of generate_mix(m), n < m."""
        if self.seed is None or n > self.count:
            raise ValueError(f"corpus {self.name} has no prefix of {n} messages")
        return _mix_corpus(self.files[:n], self.sizes[:n], self.seed)


def _mix_corpus(files: list[Path], sizes: list[int], seed: int) -> Corpus:
    n, stats = len(files), mix_stats(sizes)
    description = (
        f"generate_mix({n}, seed={seed}): {n} messages, {stats['total_bytes'] / 1e6:.1f} MB, "
        f"median {stats['p50'] / 1e3:.1f} kB, p99 {stats['p99'] / 1e3:.0f} kB, "
        f"max {stats['max'] / 1e6:.1f} MB"
    )
    return Corpus(f"mix-{n}-seed{seed}", description, files, sizes, stats, seed)


class BenchServer:
    """A private, plain-POP3 Dovecot with template corpora and per-run users."""

    def __init__(self, root: Path) -> None:
        self.dovecot = Dovecot(root, ssl=False)  # no TLS: see the module doc
        self._templates = 0

    def start(self) -> BenchServer:
        self.dovecot.start()
        return self

    def stop(self) -> None:
        self.dovecot.stop()

    @property
    def host(self) -> str:
        return self.dovecot.host

    @property
    def port(self) -> int:
        return self.dovecot.pop3_port

    # -- corpora --------------------------------------------------------------

    def mix_corpus(self, n: int, seed: int) -> Corpus:
        """``generate_mix(n, seed=seed)`` delivered into a fresh template mailbox."""
        sizes: list[int] = []

        def sized(messages: Iterable[bytes]) -> Iterable[bytes]:
            for raw in messages:
                sizes.append(len(raw))
                yield raw

        files = self._template(sized(generate_mix(n, seed=seed)))
        return _mix_corpus(files, sizes, seed)

    def big_corpus(self, size: int, seed: int) -> Corpus:
        """One message of ``size`` bytes (wire form), mostly one base64 attachment."""
        raw = big_message(size, seed)
        files = self._template([raw])
        description = f"one {len(raw) / 1e6:.1f} MB message (a base64 attachment of random bytes)"
        return Corpus(f"big-1-{len(raw)}", description, files, [len(raw)], mix_stats([raw]))

    def _template(self, messages: Iterable[bytes]) -> list[Path]:
        self._templates += 1
        user = f"template{self._templates}"  # never logs in: its files stay in new/
        self.dovecot.add_user(user, PASSWORD)
        self.dovecot.deliver_many(user, messages)
        new = self.dovecot.maildir(user) / "new"
        # deliver() names files <secs>.M<usecs>...Q<serial>: sorting by name is
        # delivery order, which is the order Dovecot numbers them for POP3.
        return sorted(new.iterdir(), key=lambda p: p.name)

    # -- users ----------------------------------------------------------------

    def fresh_user(self, name: str, corpus: Corpus) -> str:
        """A new POP3 user whose maildir holds hard links to ``corpus``'s files."""
        if name in self.dovecot.users():
            raise ValueError(f"benchmark user {name} exists already")
        self.dovecot.add_user(name, PASSWORD)
        new = self.dovecot.maildir(name) / "new"
        for path in corpus.files:
            os.link(path, new / path.name)
        return name

    def sessions(self, user: str, count: int) -> list[Pop3Session]:
        """The first ``count`` logged sessions of ``user`` (waits briefly for the log line)."""
        return self.dovecot.wait_for_sessions(count, user, timeout=10.0)[:count]


def big_message(size: int, seed: int) -> bytes:
    """A deterministic message of exactly ``size`` bytes in wire form (CRLF).

    A short text part and one base64 attachment of random (incompressible)
    bytes in 76-character lines, as a mail client sends a large file. An
    ``X-Bench-Padding`` header absorbs the remainder so the size is exact.
    """
    rng = random.Random(f"archiver-bench-big-{seed}")
    top = (
        "From: Big Sender <big.sender@example.com>\r\n"
        "To: Archive Test <archive@example.com>\r\n"
        "Subject: A very large attachment\r\n"
        "Date: Mon, 02 Jan 2023 08:00:00 +0000\r\n"
        f"Message-ID: <big-{seed}-{size}@example.com>\r\n"
    ).encode()
    rest_of_head = (
        b"MIME-Version: 1.0\r\n"
        b'Content-Type: multipart/mixed; boundary="big-boundary"\r\n'
        b"\r\n"
        b"--big-boundary\r\n"
        b"Content-Type: text/plain; charset=us-ascii\r\n"
        b"\r\n"
        b"The scans are attached.\r\n"
        b"\r\n"
        b"--big-boundary\r\n"
        b"Content-Type: application/octet-stream\r\n"
        b'Content-Disposition: attachment; filename="scans.bin"\r\n'
        b"Content-Transfer-Encoding: base64\r\n"
        b"\r\n"
    )
    tail = b"--big-boundary--\r\n"  # the CRLF before it ends the last base64 line
    padding_header = b"X-Bench-Padding: \r\n"
    budget = size - len(top) - len(rest_of_head) - len(tail) - len(padding_header)
    if budget < 0:
        raise ValueError(f"a big message needs at least {size - budget} bytes")
    lines, pad = divmod(budget, 78)  # 57 bytes -> 76 base64 characters + CRLF
    body = base64.encodebytes(rng.randbytes(lines * 57)).replace(b"\n", b"\r\n")
    padding = b"X-Bench-Padding: " + b"x" * pad + b"\r\n"
    raw = top + padding + rest_of_head + body + tail
    assert len(raw) == size, (len(raw), size)
    return raw
