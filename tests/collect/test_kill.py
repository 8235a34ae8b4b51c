"""Lose nothing, duplicate nothing, whatever instant the collector dies (DESIGN.md §2 rules 1, 2).

``archiver collect`` runs as a real process against a real Dovecot holding
500 messages (the benchmark mix: most 2-20 KB, and 20 of 100 KB-1 MB with
attachments, so kills also land in the middle of a RETR) and is killed with
SIGKILL again and again, then left to finish. Afterwards every delivered
message is in the archive exactly once and intact, and the server holds
exactly what the policy says: nothing with leave_on_server = true (Dovecot's
own logout lines show del=0 for every session), and nothing at all with
leave_on_server = false, each message expunged exactly once.

Where the kills land: one undisturbed pass is measured first (per backend):
how long the process takes to start (until its run row appears, which is
when the pass begins), when each batch of BATCH_MESSAGES commits, and how
long DELE/QUIT and exiting take. Each kill is then timed from the moment its
own process's run row appears (start-up time varies far more than a batch
takes), with a seeded random delay within the work still left: most land
while the *next* batch is being fetched, prepared or committed (that batch
must roll back cleanly), every 7th just after that commit (so the archive
can grow batch by batch across the 30 kills, and a kill can land in DELE/QUIT
after the last batch), every 10th during start-up. Whatever the kills left
undone, the final, undisturbed run finishes. (Delays drawn uniformly over a
whole pass would cross the three batch commits in the first few kills and
leave the rest to an idle mailbox.)

With leave_on_server = false the server empties after a few kills; it is
then refilled with 500 further new messages (up to MAX_REFILLS times) so the
remaining kills still hit passes with work to do, and every delivered
message is expected in the archive.

The kills are counted by where they landed: before the pass (no run row
yet), mid-pass (run row still "running"), after the pass (run recorded,
process still exiting), or not at all (the process had finished).

Run with ``-s`` to see the numbers (they are also in the junit XML as
properties).
"""

from __future__ import annotations

import hashlib
import json
import os
import random
import signal
import socket
import subprocess
import sys
import time
from dataclasses import dataclass, field

import pytest
from sqlalchemy import func, select

from archiver.collect import collector as collection
from archiver.db import schema
from archiver.store import content
from tests.collect.accounts import write_config
from tests.conftest import REPO, _empty_tables
from tests.orphans import descendants, wait_gone
from tests.support.corpus import generate_mix, to_wire

MESSAGES = 500
KILLS = 30
#: messages over 100 KB among them, so that kills land in the middle of a RETR too
LARGE = 20
#: never more attempts than this (a kill attempt may find the process already done)
MAX_ATTEMPTS = 60
SEED = 20260301

_HOST = socket.gethostname()


def make_corpus(seed: int) -> list[bytes]:
    """500 unique messages of the benchmark mix: 480 of 2-100 KB and 20 of 100 KB-1 MB
    (fewer big ones than the mix has, for speed), every other one in file form (bare LF)."""
    small, large = [], []
    for raw in generate_mix(1000, seed=seed):
        if len(raw) <= 100_000:
            small.append(raw)
        elif len(raw) <= 1_000_000:
            large.append(raw)
    messages = small[: MESSAGES - LARGE] + large[:LARGE]
    random.Random(SEED).shuffle(messages)
    return [m.replace(b"\r\n", b"\n") if i % 2 else m for i, m in enumerate(messages)]


@pytest.fixture(scope="module")
def corpus() -> list[bytes]:
    return make_corpus(7)


#: With leave_on_server = false the mailbox empties after a few kills; it is
#: then refilled with another 500 new messages (at most this many times), so
#: the remaining kills still land in passes with real work to do.
MAX_REFILLS = 4


# ----------------------------------------------------------------- plumbing


def _spawn(config, log) -> subprocess.Popen:
    env = {k: v for k, v in os.environ.items() if k != "ARCHIVER_CONFIG"}
    return subprocess.Popen(
        [sys.executable, "-m", "archiver", "--config", str(config), "collect", "--json"],
        stdout=subprocess.PIPE, stderr=log, stdin=subprocess.DEVNULL, cwd=REPO, env=env)


@dataclass
class Probe:
    """What the archive shows now, read from the test process."""

    engine: object

    def archived(self) -> int:
        with self.engine.connect() as conn:
            return conn.execute(select(func.count()).select_from(schema.messages)).scalar()

    def run_of(self, pid: int):
        r = schema.collection_runs
        with self.engine.connect() as conn:
            return conn.execute(select(r.c.status).where(r.c.node == f"{_HOST}:{pid}")).scalar()


def wait_for_run(proc: subprocess.Popen, probe: Probe, t0: float) -> float | None:
    """Seconds from ``t0`` until ``proc`` recorded its run (the pass begins); None if it
    exited first. Polled every few ms: process start-up varies far more than that."""
    while proc.poll() is None:
        if probe.run_of(proc.pid) is not None:
            return time.monotonic() - t0
        time.sleep(0.004)
    return None


@dataclass
class Timeline:
    """One undisturbed pass of all MESSAGES; times in seconds.

    ``startup``: from process start until its run row appears (the pass
    begins); ``commits``: from then until each batch commit; ``tail``: from the
    last commit until the process has exited (DELE, QUIT, run record, exit).
    """

    startup: float
    commits: list[float]
    counts: list[int]  # archived messages after each commit
    tail: float

    def remaining(self, archived: int, on_server: bool) -> tuple[float, float]:
        """(next event, the one after it) in a pass resumed with ``archived`` messages
        already stored, in seconds after its run row appears. Events are the batch
        commits still to come, then the end of the pass (DELE, QUIT, exit).
        """
        segments = [b - a for a, b in zip([0.0] + self.commits, self.commits, strict=False)]
        left = [seg for seg, count in zip(segments, self.counts, strict=False) if count > archived]
        events = [sum(left[: i + 1]) for i in range(len(left))]
        events.append((events[-1] if events else 0.0) + (self.tail if on_server else 0.1))
        return events[0], events[1] if len(events) > 1 else events[0] * 1.3 + 0.05


def measure(mailbox, corpus, tmp_path, db_url, engine) -> Timeline:
    """Time one whole pass (leave_on_server = false), then empty the archive again."""
    mailbox.deliver_many(corpus)
    config = write_config(tmp_path, db_url, [mailbox.account("measure", tls="none",
                                                             leave_on_server=False)])
    probe = Probe(engine)
    with open(tmp_path / "measure.log", "wb") as log:
        t0 = time.monotonic()
        proc = _spawn(config, log)
        startup = wait_for_run(proc, probe, t0)
        commits, counts, last = [], [], 0
        while proc.poll() is None:
            count = probe.archived()
            if count != last:
                commits.append(time.monotonic() - t0 - startup)
                counts.append(count)
                last = count
            time.sleep(0.01)
        exited = time.monotonic() - t0 - startup
        out = proc.stdout.read()
    assert proc.returncode == 0, (out, (tmp_path / "measure.log").read_text())
    assert startup is not None and counts[-1] == MESSAGES and mailbox.count() == 0, counts
    _empty_tables(db_url)
    return Timeline(startup, commits, counts, exited - commits[-1])


_timelines: dict[str, Timeline] = {}


@dataclass
class Kill:
    delay: float
    aim: str  # startup | next-batch | after-commit
    landed: str  # before-pass | mid-pass | after-pass (run recorded, not yet exited) | finished
    archived_at_kill: int
    on_server_after: int


@dataclass
class Stats:
    backend: str
    leave_on_server: bool
    pass_timeline: dict
    kills: list[Kill] = field(default_factory=list)
    final: dict | None = None
    sessions: dict | None = None
    delivered: int = MESSAGES

    def summary(self) -> dict:
        landed = [k.landed for k in self.kills]
        killed = [k for k in self.kills if k.landed != "finished"]
        grew = sum(1 for a, b in zip(self.kills, self.kills[1:], strict=False)
                   if b.archived_at_kill > a.archived_at_kill)
        return {
            "backend": self.backend,
            "leave_on_server": self.leave_on_server,
            "messages_delivered": self.delivered,
            "pass": self.pass_timeline,
            "attempts": len(self.kills),
            "kills": len(killed),
            "kills_mid_pass": landed.count("mid-pass"),
            "kills_before_pass": landed.count("before-pass"),
            "kills_after_pass": landed.count("after-pass"),
            "finished_before_kill": landed.count("finished"),
            "kills_after_which_archive_had_grown": grew,
            # S(tartup) N(ext batch) A(fter the next commit), see the test
            "aimed_each_kill": "".join(k.aim[0].upper() for k in self.kills),
            # B(efore the pass) M(id-pass) A(fter the pass, exiting) F(inished before the kill)
            "landed_each_kill": "".join(k.landed[0].upper() for k in self.kills),
            "archived_at_each_kill": [k.archived_at_kill for k in self.kills],
            "on_server_after_each_kill": [k.on_server_after for k in self.kills],
            "final_pass": self.final,
            "dovecot_sessions": self.sessions,
        }


# --------------------------------------------------------------------- test


@pytest.mark.slow
@pytest.mark.parametrize("leave_on_server", [False, True], ids=["delete", "keep"])
def test_sigkill_at_random_moments(leave_on_server, backend, db_url, engine, mailbox,
                                   mailbox_factory, corpus, tmp_path, record_property):
    if backend not in _timelines:
        _timelines[backend] = measure(mailbox_factory(), corpus, tmp_path, db_url, engine)
    timeline = _timelines[backend]
    assert len(timeline.counts) >= MESSAGES // collection.BATCH_MESSAGES  # the pass was batched

    mailbox.deliver_many(corpus)
    delivered = list(corpus)
    round_base = 0  # messages archived before the current round of MESSAGES began
    config = write_config(tmp_path, db_url, [mailbox.account(
        "killed", tls="none", leave_on_server=leave_on_server)])
    probe = Probe(engine)
    rng = random.Random(f"{SEED}-{backend}-{leave_on_server}")
    pace = 1.0  # scales the "next-batch" delays; adapts to how fast passes really run
    stats = Stats(backend, leave_on_server, {
        "startup_s": round(timeline.startup, 3),
        "commits_s_into_pass": [round(t, 3) for t in timeline.commits],
        "archived_at_commits": timeline.counts,
        "tail_s": round(timeline.tail, 3)})

    log_path = tmp_path / "collect.log"
    family = []  # the killed processes' descendants (parse workers ...), just before each kill
    with open(log_path, "ab") as log:
        while sum(k.landed != "finished" for k in stats.kills) < KILLS:
            assert len(stats.kills) < MAX_ATTEMPTS, stats.summary()
            archived = probe.archived()
            refills = len(delivered) // MESSAGES - 1
            if not leave_on_server and mailbox.count() == 0 and refills < MAX_REFILLS:
                more = make_corpus(100 + refills)
                mailbox.deliver_many(more)
                delivered += more
                round_base = archived
            next_event, after_next = timeline.remaining(
                archived - round_base, not leave_on_server and mailbox.count() > 0)
            attempt = len(stats.kills)
            t0 = time.monotonic()
            proc = _spawn(config, log)
            if attempt % 10 == 2:  # while the process starts: config, database, connect
                aim, delay = "startup", rng.uniform(0.0, timeline.startup)
                kill_at = t0 + delay
            else:
                if attempt % 7 == 6:  # just after the next commit: early in the batch after
                    # it, or after the last one in DELE/QUIT (or once all is done, after the end)
                    aim, delay = "after-commit", rng.uniform(
                        next_event, next_event + 0.5 * (after_next - next_event))
                else:  # while the next batch is fetched, prepared or committed
                    aim, delay = "next-batch", rng.uniform(0.0, next_event) * pace
                began = wait_for_run(proc, probe, t0)
                kill_at = t0 + (began or 0.0) + delay
            time.sleep(max(0.0, kill_at - time.monotonic()))
            if proc.poll() is None:
                family += descendants(proc.pid)
                proc.send_signal(signal.SIGKILL)
                proc.wait()
                run = probe.run_of(proc.pid)
                landed = ("before-pass" if run is None else "mid-pass" if run == "running"
                          else "after-pass")
            else:
                landed = "finished"
                assert proc.returncode == 0, log_path.read_text()[-3000:]
            proc.stdout.close()
            stats.kills.append(Kill(round(delay, 3), aim, landed, probe.archived(),
                                    mailbox.count()))
            # A loaded machine runs the pass slower or faster than the measured one:
            # aim earlier after a miss past the end, relax again after a hit.
            if aim == "next-batch":
                pace = min(1.0, pace * 1.15) if landed == "mid-pass" else (
                    pace * 0.6 if landed in ("after-pass", "finished") else pace)

    # No process a killed collector started outlives it (issue 7, point 11). Not every
    # kill finds parse workers: a pass starts them only for 200 messages or more, once
    # the first ones have arrived (tests/store/test_parsepool.py kills them for sure).
    workers = sum("spawn_main" in " ".join(p.argv) for p in family)
    assert wait_gone(family, timeout=5) == [], f"{len(family)} processes were running"
    print(f"\nkill test: {len(family)} descendants ({workers} parse workers) at the kills,"
          " none left")

    # Now let it finish.
    def collect_once() -> dict:
        done = subprocess.run(
            [sys.executable, "-m", "archiver", "--config", str(config), "collect", "--json"],
            capture_output=True, cwd=REPO, timeout=120,
            env={k: v for k, v in os.environ.items() if k != "ARCHIVER_CONFIG"})
        assert done.returncode == 0, done.stderr.decode()[-3000:]
        [account_stats] = json.loads(done.stdout)["accounts"]
        return account_stats

    stats.final = collect_once()
    final_passes = 1
    # A kill after QUIT but before the deletions were recorded leaves the archive
    # believing the expunged messages are still on the server. If a refill then put
    # as many new ones there, the next pass sees most known UIDLs vanish while as many
    # unknown appear: the server-migration guard (policy.plan_pass) archives them and
    # deletes nothing that pass, by design. The pass after it must delete them all.
    if any("server migration" in w for w in stats.final["warnings"]):
        assert not leave_on_server and stats.final["deleted_on_server"] == 0, stats.final
        stats.final = {"migration_pass": stats.final, "next_pass": collect_once()}
        final_passes += 1

    expected = {hashlib.sha256(to_wire(raw)).hexdigest() for raw in delivered}
    assert len(expected) == len(delivered)
    stats.delivered = len(delivered)
    m, d, a = schema.messages, schema.deliveries, schema.accounts
    with engine.connect() as conn:
        shas = conn.execute(select(m.c.sha256)).scalars().all()
        rows = conn.execute(
            select(d.c.uidl, m.c.sha256, d.c.deleted_on_server_at)
            .select_from(d.join(a, a.c.id == d.c.account_id).outerjoin(m, m.c.id == d.c.message_id))
            .where(a.c.name == "killed")).all()
    # Every delivered message in the archive exactly once ...
    assert len(shas) == len(delivered) and set(shas) == expected
    # ... each (account, UIDL) recorded once ...
    assert len(rows) == len(delivered) and len({r.uidl for r in rows}) == len(delivered)
    assert {r.sha256 for r in rows} == expected
    # ... and intact: no kill left a torn message behind.
    with engine.connect() as conn:
        damaged = [(msg.sha256, problem) for msg in content.iter_messages(conn)
                   if (problem := content.check_content(conn, msg))]
    assert damaged == []

    # Every pass a kill cut short is on record as interrupted, none as still running
    # (DESIGN §5 step 5: the run record tells ops what happened).
    r = schema.collection_runs
    with engine.connect() as conn:
        run_states = [tuple(row) for row in conn.execute(
            select(r.c.status, r.c.error_kind).join(a, a.c.id == r.c.account_id)
            .where(a.c.name == "killed"))]
    assert ("running", None) not in run_states
    assert run_states.count(("error", "interrupted")) == sum(
        k.landed == "mid-pass" for k in stats.kills)

    # What the server holds, and what Dovecot says was expunged, session by session.
    # Every process that was not killed ended its session with QUIT; Dovecot logs
    # that line just after answering, so wait for all of them.
    finished_sessions = final_passes + sum(k.landed == "finished" for k in stats.kills)
    deadline = time.monotonic() + 10
    sessions = mailbox.sessions()
    while sum(s.quit for s in sessions) < finished_sessions and time.monotonic() < deadline:
        time.sleep(0.05)
        sessions = mailbox.sessions()
    stats.sessions = {
        "sessions": len(sessions),
        "ended_by_kill": sum(not s.quit for s in sessions),
        "killed_while_fetching": sum(not s.quit and s.retr > 0 for s in sessions),
        "retr_total": sum(s.retr for s in sessions),
        "deleted_total": sum(s.deleted for s in sessions),
    }
    summary = stats.summary()
    record_property("kill_stats", json.dumps(summary))
    print(f"\nkill test [{backend}, leave_on_server={leave_on_server}]: "
          + json.dumps(summary, indent=None))

    if leave_on_server:
        assert mailbox.count() == MESSAGES
        assert all(s.deleted == 0 for s in sessions), sessions
        assert all(r.deleted_on_server_at is None for r in rows)
    else:
        assert mailbox.count() == 0
        assert stats.sessions["deleted_total"] == len(delivered)  # each expunged exactly once
        assert all(r.deleted_on_server_at is not None for r in rows)
    # the kills were aimed well enough to matter
    assert sum(k.landed == "mid-pass" for k in stats.kills) >= KILLS // 3, summary


# ------------------------------------------------- nothing outlives the collector


@pytest.mark.slow
@pytest.mark.parametrize("sig", [signal.SIGTERM, signal.SIGKILL], ids=["SIGTERM", "SIGKILL"])
def test_a_killed_collector_leaves_no_process(sig, _sqlite_template, mailbox, corpus, tmp_path):
    """However ``archiver collect`` ends (SIGTERM, which ends the pass as interrupted,
    exit 130; or SIGKILL), its parse workers and multiprocessing's resource tracker go
    with it within moments, and it leaves nothing in its temp directory (no
    /tmp/pymp-*) (issue 7, point 11)."""
    import shutil

    db = tmp_path / "archive.db"
    shutil.copy(_sqlite_template, db)
    mailbox.deliver_many(corpus)
    config = write_config(tmp_path, f"sqlite:///{db}", [mailbox.account(
        "signalled", tls="none", leave_on_server=True)])
    tmp = tmp_path / "tmp"
    tmp.mkdir()
    env = {k: v for k, v in os.environ.items() if k != "ARCHIVER_CONFIG"} | {"TMPDIR": str(tmp)}
    with open(tmp_path / "collect.log", "wb") as log:
        proc = subprocess.Popen(
            [sys.executable, "-m", "archiver", "--config", str(config), "collect", "--json"],
            stdout=subprocess.DEVNULL, stderr=log, stdin=subprocess.DEVNULL, cwd=REPO, env=env)
    try:
        deadline, family = time.monotonic() + 120, []
        while proc.poll() is None and time.monotonic() < deadline:
            family = descendants(proc.pid)
            if any("spawn_main" in " ".join(p.argv) for p in family):
                break
            time.sleep(0.005)
        assert any("spawn_main" in " ".join(p.argv) for p in family), (
            f"no parse workers started: {(tmp_path / 'collect.log').read_text()[-3000:]}")
        family = {p.pid: p for p in family + descendants(proc.pid)}.values()
        proc.send_signal(sig)
        proc.wait(timeout=30)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    assert proc.returncode == (130 if sig == signal.SIGTERM else -sig), (
        (tmp_path / "collect.log").read_text()[-3000:])
    assert wait_gone(family, timeout=5) == []
    assert list(tmp.iterdir()) == []
