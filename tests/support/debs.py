"""Debian packages unpacked, not installed: for POP3 servers that conflict with Dovecot.

Debian's ``courier-pop`` and ``popa3d`` conflict with ``dovecot-pop3d`` (they all
provide ``pop3-server``), so the tests run them from ``dpkg -x`` trees:

    root = unpacked("popa3d")          # -> <cache>/popa3d_1.0.3-1.1_amd64/
    binary = root / "usr/sbin/popa3d"

``unpacked`` downloads the package with ``apt-get download`` (the first time
only) and unpacks it into a cache directory shared by test runs
(``$ARCHIVER_TEST_DEBS``, default ``~/.cache/archiver-test-debs``); a lock
file keeps parallel test processes from unpacking the same package twice.
``python -m tests.support.debs PACKAGE...`` does it ahead of the tests (.ci/run).

Returns ``None`` when the package cannot be had (no apt, no network): callers
skip on a laptop and fail under CI, like the Dovecot tests.
"""

from __future__ import annotations

import fcntl
import os
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

__all__ = ["cache_dir", "unpacked"]


def cache_dir() -> Path:
    return Path(os.environ.get("ARCHIVER_TEST_DEBS")
                or Path.home() / ".cache" / "archiver-test-debs")


def unpacked(package: str) -> Path | None:
    """The root of ``package``'s unpacked tree (``usr/...`` below it), or None."""
    base = cache_dir()
    base.mkdir(parents=True, exist_ok=True)
    with open(base / f".{package}.lock", "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        done = sorted(base.glob(f"{package}_*/.unpacked"))
        if done:
            return done[-1].parent
        if shutil.which("apt-get") is None or shutil.which("dpkg") is None:
            return None
        with tempfile.TemporaryDirectory(dir=base) as download:
            got = subprocess.run(["apt-get", "download", "-q", package], cwd=download,
                                 capture_output=True, text=True, timeout=300)
            debs = sorted(Path(download).glob(f"{package}_*.deb"))
            if got.returncode != 0 or not debs:
                print(f"apt-get download {package} failed: {got.stderr.strip()[-500:]}",
                      file=sys.stderr)
                return None
            deb = debs[-1]
            root = base / deb.name.removesuffix(".deb")
            shutil.rmtree(root, ignore_errors=True)
            subprocess.run(["dpkg", "-x", str(deb), str(root)], check=True, timeout=300)
            (root / ".unpacked").write_text(deb.name + "\n")
            return root


if __name__ == "__main__":
    missing = [name for name in sys.argv[1:] if unpacked(name) is None]
    for name in sys.argv[1:]:
        if name not in missing:
            print(f"{name}: {unpacked(name)}")
    sys.exit(1 if missing else 0)
