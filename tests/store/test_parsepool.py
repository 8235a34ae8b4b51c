"""Parsing in worker processes gives the same results as in-process, and never loses a message."""

from __future__ import annotations

import json
import os
import select
import signal
import subprocess
import sys
import threading
import time

import pytest

from archiver.store.parse import parse_message
from archiver.store.parsepool import ParsePool
from archiver.store.spool import Spool
from tests.orphans import REPO, descendants, read, wait_gone
from tests.support.corpus import generate_mix, tricky_messages


def _spools(raws):
    return [Spool.from_bytes(r) for r in raws]


def test_pool_results_equal_in_process_parsing():
    raws = list(tricky_messages().values()) + list(generate_mix(60, seed=3))
    with ParsePool(workers=1) as pool:
        tickets = [pool.submit(s) for s in _spools(raws)]
        pool.flush()
        results = [t.result() for t in tickets]
    assert results == [parse_message(r) for r in raws]


def test_spooled_to_disk_messages_parse_in_process():
    big = b"Subject: big\r\n\r\n" + b"x" * 100 + b"\r\n"
    spool = Spool(memory_limit=10)
    spool.write(big)
    spool.finish()
    with ParsePool(workers=1) as pool:
        ticket = pool.submit(spool)
        assert ticket._future is None  # not shipped through a pipe
        assert ticket.result().subject == "big"


def test_a_dead_worker_falls_back_to_in_process_parsing(caplog):
    raws = list(generate_mix(40, seed=4))
    with ParsePool(workers=1) as pool:
        first = pool.submit(Spool.from_bytes(raws[0]))
        pool.flush()
        first.result()
        for pid in list(pool._executor._processes):
            os.kill(pid, signal.SIGKILL)
        tickets = [pool.submit(s) for s in _spools(raws[1:])]
        pool.flush()
        results = [t.result() for t in tickets]
    assert results == [parse_message(r) for r in raws[1:]]
    assert "parsing in-process" in caplog.text


def test_zero_workers_parses_in_process():
    with ParsePool(workers=0) as pool:
        ticket = pool.submit(Spool.from_bytes(b"Subject: hi\r\n\r\nx\r\n"))
        assert ticket.result().subject == "hi" and pool._executor is None


# ------------------------------------------- the workers die with their process

def test_workers_outlive_the_thread_that_started_them():
    """PR_SET_PDEATHSIG fires when the *thread* that started a worker ends. A
    pass's writer thread flushes groups and ends with its pass: the workers it
    caused to start must serve the next pass all the same."""
    raws = list(generate_mix(64, seed=5))
    with ParsePool(workers=1) as pool:
        results = []

        def one_pass(part):
            tickets = [pool.submit(s) for s in _spools(part)]
            pool.flush()
            results.extend(t.result() for t in tickets)

        thread = threading.Thread(target=one_pass, args=(raws[:32],))
        thread.start()
        thread.join()
        [worker] = pool._executor._processes
        time.sleep(0.3)  # a worker killed by the ended thread would be gone by now
        assert read(worker) is not None
        one_pass(raws[32:])
        assert not pool._broken and list(pool._executor._processes) == [worker]
    assert results == [parse_message(r) for r in raws]
    assert read(worker) is None  # close() stopped it


#: A process that parses 200 messages with two workers, the first pass from a
#: thread that then ends (as a pass's writer thread does), prints the worker
#: pids and then waits on stdin: "idle" with nothing left to parse, "busy"
#: with a few thousand messages still being parsed, "exit" exits at once
#: without closing the pool.
_CHILD = r"""
import json, sys, threading
from archiver.store.parsepool import ParsePool
from archiver.store.spool import Spool

mode = sys.argv[1]
pool = ParsePool(workers=2)
raws = [b"Subject: m%d\r\n\r\nbody\r\n" % i for i in range(200)]

def first_pass():
    tickets = [pool.submit(Spool.from_bytes(r)) for r in raws]
    pool.flush()
    assert [t.result().subject for t in tickets] == ["m%d" % i for i in range(200)]

thread = threading.Thread(target=first_pass)
thread.start()
thread.join()
assert not pool._broken
if mode == "busy":
    body = b"".join(b"line %d of a longer text part\r\n" % i for i in range(300))
    for i in range(4000):
        pool.submit(Spool.from_bytes(b"Subject: busy %d\r\n\r\n" % i + body))
    pool.flush()
print(json.dumps({"workers": sorted(pool._executor._processes)}), flush=True)
if mode != "exit":
    sys.stdin.read()
"""


def _start_child(mode, tmp_path):
    """The child above, with its own TMPDIR; returns (process, its worker pids, stderr path)."""
    tmp = tmp_path / "tmp"
    tmp.mkdir()
    err = tmp_path / "child.err"
    with open(err, "wb") as stderr:
        child = subprocess.Popen([sys.executable, "-c", _CHILD, mode], cwd=REPO,
                                 env={**os.environ, "TMPDIR": str(tmp)}, stdin=subprocess.PIPE,
                                 stdout=subprocess.PIPE, stderr=stderr)
    ready, _, _ = select.select([child.stdout], [], [], 120)
    line = child.stdout.readline() if ready else b""
    assert line, f"child did not report its workers: {err.read_text()[-3000:]}"
    return child, json.loads(line)["workers"], err


@pytest.mark.parametrize("load", ["idle", "busy"])
@pytest.mark.parametrize("sig", [signal.SIGKILL, signal.SIGTERM], ids=["SIGKILL", "SIGTERM"])
def test_workers_die_with_their_process(sig, load, tmp_path):
    """However the collector dies (here: killed with no handler of its own), its
    parse workers and multiprocessing's resource tracker exit within moments,
    and nothing is left in the temp directory (no /tmp/pymp-*)."""
    child, workers, err = _start_child(load, tmp_path)
    try:
        family = descendants(child.pid)
        assert len(workers) == 2 and set(workers) < {p.pid for p in family}, family
        assert any("resource_tracker" in " ".join(p.argv) for p in family), family
        child.send_signal(sig)
        child.wait(timeout=30)
        killed = time.monotonic()
        left = wait_gone(family, timeout=5)
        took = time.monotonic() - killed
    finally:
        if child.poll() is None:
            child.kill()
            child.wait()
        child.stdout.close()
        child.stdin.close()
    assert child.returncode == -sig
    assert left == [], f"still running {took:.1f} s after the kill: {left}\n{err.read_text()}"
    assert list((tmp_path / "tmp").iterdir()) == []
    print(f"\n{sig.name} ({load}): {len(family)} descendants gone {took:.2f} s after it")


def test_a_normal_exit_leaves_nothing(tmp_path):
    """Exiting without closing the pool: workers and tracker go, no temp folder,
    no warning."""
    child, workers, err = _start_child("exit", tmp_path)
    family = descendants(child.pid)  # what is left of it, as it is exiting
    child.wait(timeout=60)
    child.stdout.close()
    child.stdin.close()
    assert child.returncode == 0, err.read_text()
    assert wait_gone(family, timeout=5) == []
    assert all(read(pid) is None for pid in workers)
    assert list((tmp_path / "tmp").iterdir()) == []
    assert err.read_text() == ""

