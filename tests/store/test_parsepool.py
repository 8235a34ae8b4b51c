"""Parsing in worker processes gives the same results as in-process, and never loses a message."""

from __future__ import annotations

import os
import signal

from archiver.store.parse import parse_message
from archiver.store.parsepool import ParsePool
from archiver.store.spool import Spool
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
