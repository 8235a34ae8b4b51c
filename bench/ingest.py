"""Ingest benchmark: archiver collect vs fetchmail vs getmail6 vs the protocol ceiling.

    .venv/bin/python bench/ingest.py                     # N=10 000, K=3, SQLite
    .venv/bin/python bench/ingest.py --messages 500 --repeat 1
    .venv/bin/python bench/ingest.py --backend postgresql
    .venv/bin/python bench/ingest.py --big               # one 100 MB message: peak RSS
    .venv/bin/python bench/ingest.py --scale             # 10 000 vs 100 000 messages

Run by hand, never by the test suite. See bench/README.md for what each
number means. In short, for every tool and every repeat:

1. a fresh Dovecot user is created holding the same N messages
   (``generate_mix(N, seed)``), so the **first pass** really fetches N;
2. the tool runs as its own process; its wall time (whole process), CPU time
   and peak RSS are measured (``measure.run_child``);
3. the harness checks that it stored N messages (counted by us, not claimed
   by the tool) and that Dovecot's session log shows N retrievals;
   otherwise the pass is INVALID and left out of the statistics;
4. the same tool runs again on the same mailbox: the **no-op pass** (nothing
   new), which must retrieve nothing and leave N messages stored.

Tools run round-robin within each repeat (tool A, B, C, then A, B, C
again), so slow drift of the machine touches all of them alike, and the page
cache is flushed to disk (``sync``, untimed) after every pass so that no tool
pays for another one's writes.
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import os
import shlex
import shutil
import signal
import sys
import tempfile
import time
from pathlib import Path

BENCH_DIR = Path(__file__).resolve().parent
sys.path.insert(0, str(BENCH_DIR))  # sibling modules when run as a script
sys.path.insert(1, str(BENCH_DIR.parent))  # tests.support (Dovecot, corpora) from the working tree

from mailserver import PASSWORD, BenchServer, Corpus  # noqa: E402
from measure import ChildRun, launcher, run_child  # noqa: E402
from records import PassResult, summarize  # noqa: E402
from report import (  # noqa: E402
    first_pass_table,
    machine_info,
    noop_table,
    profile_top,
    python_version,
    rate,
    ratio_lines,
    scale_lines,
)
from tools import (  # noqa: E402
    Archiver,
    Mailbox,
    Tool,
    ToolRun,
    available_tools,
    postgres_version,
    project_python,
    snapshot_archiver,
)

#: what --only accepts; the default runs all but EXTRA_TOOLS
ALL_TOOLS = ("ceiling", "fetchmail", "fetchmail-bsmtp", "getmail", "archiver")
EXTRA_TOOLS = ("fetchmail-maildrop",)  # fetchmail's other MDA, only on request
BIG_RSS_TARGET = 200e6


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(
        prog="bench/ingest.py",
        description="Measure archiver collect against fetchmail, getmail6 and a POP3 "
                    "ceiling on a private Dovecot (plain POP3 on loopback).",
    )
    p.add_argument("--messages", type=int, default=10_000, metavar="N",
                   help="messages in each mailbox (default 10000; with --scale: the small size)")
    p.add_argument("--repeat", type=int, default=None, metavar="K",
                   help="runs per tool and pass (default 3; 1 with --scale)")
    p.add_argument("--seed", type=int, default=1, help="generate_mix seed (default 1)")
    p.add_argument("--backend", choices=("sqlite", "postgresql"), default="sqlite",
                   help="archiver's database (postgresql: a fresh database per run)")
    p.add_argument("--pg-url", default="postgresql://postgres@127.0.0.1:5432/postgres",
                   help="PostgreSQL maintenance database used to CREATE/DROP the bench databases")
    p.add_argument("--only", default=None, metavar="TOOLS",
                   help=f"comma-separated subset of {','.join(ALL_TOOLS + EXTRA_TOOLS)} "
                        "(default: all but " + ",".join(EXTRA_TOOLS) + "; archiver with "
                        "--big; ceiling,archiver with --scale). fetchmail: delivery by "
                        "procmail into a Maildir (the reference); fetchmail-bsmtp: into one "
                        "BSMTP batch file (fastest possible, not a maildir/mbox)")
    mode = p.add_mutually_exclusive_group()
    mode.add_argument("--big", action="store_true",
                      help="one 100 MB message instead of the mix: peak RSS (target < 200 MB)")
    mode.add_argument("--scale", action="store_true",
                      help="also 100 000 messages: first-pass msgs/s and no-op cost per message "
                           "vs --messages")
    p.add_argument("--big-size", type=int, default=100_000_000, metavar="BYTES",
                   help="size of the --big message (default 100000000)")
    p.add_argument("--scale-messages", type=int, default=100_000, metavar="N",
                   help="the large mailbox of --scale (default 100000)")
    p.add_argument("--json", type=Path, default=None, metavar="PATH",
                   help="also save everything measured as JSON")
    p.add_argument("--workdir", type=Path, default=None, metavar="DIR",
                   help="parent directory for the work directory (default: the system temp dir)")
    p.add_argument("--keep-workdir", action="store_true",
                   help="keep mailboxes, tool outputs, archives and logs for inspection")
    p.add_argument("--profile", action="store_true",
                   help="after measuring, run one extra archiver first pass and no-op pass "
                        "under py-spy (not counted) and print the top functions")
    p.add_argument("--py-spy", default=None, metavar="PATH", help="py-spy executable")
    p.add_argument("--fetchmail", default=None, metavar="PATH",
                   help="fetchmail executable (every fetchmail row)")
    p.add_argument("--getmail", default=None, metavar="PATH",
                   help="getmail executable (default: bench/.venv/bin/getmail, then PATH)")
    p.add_argument("--timeout", type=float, default=3600, metavar="S",
                   help="kill a pass after this many seconds (default 3600)")
    args = p.parse_args(argv)
    if args.repeat is None:
        args.repeat = 1 if args.scale else 3
    default_only = "archiver" if args.big else "ceiling,archiver" if args.scale else ",".join(
        ALL_TOOLS)
    args.only_set = {t.strip() for t in (args.only or default_only).split(",") if t.strip()}
    unknown = args.only_set - set(ALL_TOOLS + EXTRA_TOOLS)
    if unknown:
        p.error(f"--only: unknown tool(s) {', '.join(sorted(unknown))}; "
                f"choose from {','.join(ALL_TOOLS + EXTRA_TOOLS)}")
    if args.messages < 1 or args.repeat < 1:
        p.error("--messages and --repeat must be at least 1")
    if args.scale and args.scale_messages <= args.messages:
        p.error("--scale-messages must be larger than --messages")
    return args


def archiver_settings(args: argparse.Namespace) -> dict[str, str]:
    """Account settings that differ from archiver's defaults, so that one pass fetches it all.

    archiver caps a pass (max_message_size 100 MiB, max_messages_per_pass
    50 000, max_bytes_per_pass 10 GiB) and leaves the rest for the next pass;
    a first pass that stops early would not be a first pass of N messages.
    """
    if args.big:
        return {"max_message_size": f'"{max(args.big_size * 2, 200_000_000) // 1_000_000}MB"'}
    if args.scale:
        return {"max_messages_per_pass": str(args.scale_messages),
                "max_bytes_per_pass": '"1000GB"'}
    return {}


def progress(text: str) -> None:
    print(text, file=sys.stderr, flush=True)


# -- running -------------------------------------------------------------------------


class Bench:
    """The server, the work directory and the results of one benchmark run."""

    def __init__(self, args: argparse.Namespace, workdir: Path, server: BenchServer) -> None:
        self.args = args
        self.workdir = workdir
        self.server = server
        self.results: list[PassResult] = []

    def run_suite(self, corpus: Corpus, tools: list[Tool]) -> list[PassResult]:
        """K repeats of every tool on ``corpus``, round-robin; returns this suite's results."""
        start = len(self.results)
        for repeat in range(1, self.args.repeat + 1):
            for tool in tools:
                self.run_tool(tool, corpus, repeat)
        return self.results[start:]

    def run_tool(self, tool: Tool, corpus: Corpus, repeat: int) -> None:
        user = self.server.fresh_user(f"{tool.name}-n{corpus.count}-r{repeat}", corpus)
        run_dir = self.workdir / "runs" / user
        run_dir.mkdir(parents=True)
        box = Mailbox(self.server.host, self.server.port, user, PASSWORD)
        run = tool.prepare(run_dir, box)
        try:
            passes = ["first", "noop"] if tool.noop else ["first"]
            for pass_name in passes:
                before = len(self.server.dovecot.sessions(user))
                child = run_child(run.command(pass_name), log_dir=run_dir / "logs",
                                  name=pass_name, env=run.env, cwd=run_dir,
                                  timeout=self.args.timeout)
                os.sync()  # untimed: nobody pays for this pass's dirty pages
                result = self.check(tool, run, corpus, repeat, user, pass_name, child, before)
                self.results.append(result)
                speed = (f"{rate(corpus.count / child.wall_s)} msgs/s" if pass_name == "first"
                         else f"{child.wall_s / corpus.count * 1e6:.1f} µs/msg")
                progress(f"  r{repeat} {tool.name:<18} {pass_name:<5} {child.wall_s:8.2f} s "
                         f"{speed:>14}  rss {child.max_rss_bytes / 1e6:5.0f} MB  tree "
                         f"{child.tree_pss_bytes / 1e6:5.0f} MB  stored "
                         f"{result.stored}/{run.expected_stored(pass_name, corpus.count)}"
                         + ("  ok" if result.valid else f"  INVALID: {'; '.join(result.problems)}"))
        finally:
            run.cleanup()
            if not self.args.keep_workdir:
                shutil.rmtree(run_dir, ignore_errors=True)

    def check(self, tool: Tool, run: ToolRun, corpus: Corpus, repeat: int, user: str,
              pass_name: str, child: ChildRun, before: int) -> PassResult:
        """Turn a finished pass into a PassResult, with every reason to distrust it."""
        problems = []
        if child.timed_out:
            problems.append(f"killed after {self.args.timeout:g} s")
        if child.exit_code not in run.ok_exit[pass_name]:
            tail = (child.stderr.strip() or child.stdout.strip()).splitlines()[-3:]
            problems.append(f"exit code {child.exit_code}: {' | '.join(tail)}")
        try:
            sessions = self.server.sessions(user, before + 1)[before:]
        except TimeoutError:
            sessions = []
            problems.append("Dovecot logged no session for this pass")
        retrieved = sum(s.retr + s.top for s in sessions)
        expect_retrieved = corpus.count if pass_name == "first" else 0
        if sessions and retrieved != expect_retrieved:
            problems.append(f"server saw {retrieved} retrievals, expected {expect_retrieved}")
        if any(s.deleted for s in sessions):
            problems.append("messages were deleted on the server")
        stored = run.stored(child)
        expect_stored = run.expected_stored(pass_name, corpus.count)
        if stored != expect_stored:
            problems.append(f"stored {stored} messages, expected {expect_stored}")
        problems += run.problems(pass_name, child)
        return PassResult(
            tool=tool.name, pass_name=pass_name, corpus=corpus.name, messages=corpus.count,
            bytes=corpus.total_bytes, repeat=repeat, user=user, exit_code=child.exit_code,
            wall_s=child.wall_s, cpu_s=child.cpu_s, max_rss_bytes=child.max_rss_bytes,
            tree_pss_bytes=child.tree_pss_bytes,
            stored=stored, server_retrieved=retrieved,
            server_bytes=sum(s.retr_bytes + s.top_bytes for s in sessions),
            sessions=len(sessions), in_process_s=run.in_process_seconds(child),
            problems=problems,
        )

    def profile(self, tool: Archiver, corpus: Corpus, py_spy: str) -> dict[str, list[str]]:
        """One extra archiver first + no-op pass under py-spy (not part of the statistics)."""
        user = self.server.fresh_user(f"profile-{tool.name}-n{corpus.count}", corpus)
        run_dir = self.workdir / "runs" / user
        run_dir.mkdir(parents=True)
        run = tool.prepare(run_dir, Mailbox(self.server.host, self.server.port, user, PASSWORD))
        out = {}
        try:
            for pass_name in ("first", "noop"):
                raw = run_dir / f"py-spy-{pass_name}.txt"
                argv = [py_spy, "record", "--rate", "100", "--threads", "--subprocesses",
                        "--format", "raw", "--output", str(raw), "--", *run.command(pass_name)]
                child = run_child(argv, log_dir=run_dir / "logs", name=f"profile-{pass_name}",
                                  env=run.env, cwd=run_dir, timeout=self.args.timeout)
                os.sync()
                head = (f"archiver {pass_name} pass under py-spy: {child.wall_s:.2f} s wall, "
                        f"{child.cpu_s:.2f} s CPU (archiver and py-spy)")
                lines = profile_top(str(raw)) if raw.exists() else [
                    f"py-spy failed: {child.stderr.strip()[-300:]}"]
                out[pass_name] = [head, *lines]
                if self.args.json and raw.exists():  # next to the JSON, for flame graphs
                    self.args.json.parent.mkdir(parents=True, exist_ok=True)
                    shutil.copy(raw, self.args.json.with_name(
                        f"{self.args.json.stem}.py-spy-{pass_name}.txt"))
        finally:
            run.cleanup()
            if not self.args.keep_workdir:
                shutil.rmtree(run_dir, ignore_errors=True)
        return out


# -- main ----------------------------------------------------------------------------


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    # SIGTERM (and SIGINT, which a shell ignores in background jobs) unwinds
    # through the finally blocks: the running tool is killed, Dovecot
    # stopped, databases dropped, the work directory removed.
    signal.signal(signal.SIGTERM, _interrupted)
    signal.signal(signal.SIGINT, _interrupted)
    command = shlex.join([sys.executable, *sys.argv]) if argv is None else shlex.join(argv)
    workdir = Path(tempfile.mkdtemp(prefix="archiver-bench-", dir=args.workdir))
    workdir.chmod(0o755)  # Dovecot's unprivileged processes must reach the maildirs
    server = BenchServer(workdir / "dovecot")
    started = dt.datetime.now(dt.UTC)
    report: dict = {"command": command, "started": started.isoformat(timespec="seconds"),
                    "load_before": os.getloadavg(), "tree": git_revision()}
    try:
        progress(f"work directory {workdir}")
        src = snapshot_archiver(workdir / "src")
        tools = available_tools(args.only_set, src=src, backend=args.backend,
                                pg_url=args.pg_url, fetchmail=args.fetchmail,
                                getmail=args.getmail, archiver_extra=archiver_settings(args))
        skipped = {t.name: why for t in tools if (why := t.available())}
        tools = [t for t in tools if t.name not in skipped]
        for name, why in skipped.items():
            progress(f"skipping {name}: {why}")
        if not tools:
            progress("nothing to run")
            return 2
        server.start()
        bench = Bench(args, workdir, server)
        t0 = time.perf_counter()
        if args.big:
            corpora = [server.big_corpus(args.big_size, args.seed)]
        elif args.scale:
            large = server.mix_corpus(args.scale_messages, args.seed)
            corpora = [large.prefix(args.messages), large]
        else:
            corpora = [server.mix_corpus(args.messages, args.seed)]
        os.sync()
        progress(f"corpus ready in {time.perf_counter() - t0:.1f} s: "
                 + "; ".join(c.description for c in corpora))

        suites = []
        for corpus in corpora:
            progress(f"{corpus.name}: {len(tools)} tool(s) x {args.repeat} repeat(s)")
            suites.append((corpus, summarize(bench.run_suite(corpus, tools))))

        profile = {}
        if args.profile:
            archiver = next((t for t in tools if isinstance(t, Archiver)), None)
            py_spy = args.py_spy or _find_py_spy()
            if archiver is None or py_spy is None:
                profile = {"error": ["--profile needs archiver in --only and py-spy "
                                     "(bench/.venv/bin/pip install py-spy)"]}
            else:
                progress("profiling archiver under py-spy")
                profile = bench.profile(archiver, corpora[-1], py_spy)

        report["load_after"] = os.getloadavg()
        report.update(describe(args, server, tools, skipped, corpora))
        lines = render(args, report, suites, profile)
        report["summaries"] = [s.to_json() for _, sums in suites for s in sums]
        report["results"] = [r.to_json() for r in bench.results]
        report["profile"] = profile
        report["report"] = lines
        print("\n".join(lines))
        if args.json:
            args.json.parent.mkdir(parents=True, exist_ok=True)
            args.json.write_text(json.dumps(report, indent=2, default=str) + "\n")
            progress(f"saved {args.json}")
        invalid = [r for r in bench.results if not r.valid]
        return 1 if invalid else 0
    finally:
        server.stop()
        if args.keep_workdir:
            progress(f"kept {workdir}")
        else:
            shutil.rmtree(workdir, ignore_errors=True)


def _interrupted(signum: int, _frame) -> None:
    raise KeyboardInterrupt(f"signal {signum}")


def _find_py_spy() -> str | None:
    local = BENCH_DIR / ".venv" / "bin" / "py-spy"
    return str(local) if local.exists() else shutil.which("py-spy")


def describe(args, server: BenchServer, tools: list[Tool], skipped: dict, corpora) -> dict:
    """Everything needed to say what was compared, on what, with which versions."""
    import subprocess

    dovecot = subprocess.run([server.dovecot.binary or "dovecot", "--version"],
                             capture_output=True, text=True).stdout.split()
    versions = {t.name: t.version() for t in tools}
    database = "SQLite (file in the work directory, WAL, synchronous=FULL)"
    if args.backend == "postgresql":
        try:
            server_at = args.pg_url.split("@")[-1].rsplit("/", 1)[0]
            database = f"{postgres_version(args.pg_url)} on {server_at}, a fresh database per run"
        except Exception as exc:  # noqa: BLE001 - only for the report
            database = f"PostgreSQL ({exc})"
    return {
        "machine": machine_info(),
        "python": python_version(project_python()),
        "server": f"Dovecot {dovecot[0] if dovecot else '?'} on 127.0.0.1:{server.port}, "
                  "plain POP3 (no TLS) for every tool",
        "database": database,
        "corpora": [{"name": c.name, "description": c.description, "stats": c.stats}
                    for c in corpora],
        "tools": [{"name": t.name, "about": t.about, "version": versions[t.name]}
                  for t in tools],
        "skipped": skipped,
        "repeat": args.repeat,
        "launcher": launcher(),
    }


def git_revision() -> str:
    """The commit the working tree is on, and how many files differ from it (archiver only)."""
    import subprocess

    def git(*args: str) -> str:
        return subprocess.run(["git", "-C", str(BENCH_DIR.parent), *args], capture_output=True,
                              text=True).stdout.strip()

    commit = git("rev-parse", "--short", "HEAD") or "?"
    dirty = [line for line in git("status", "--porcelain", "--", "archiver", "migrations")
             .splitlines() if line]
    return f"commit {commit}" + (f" + {len(dirty)} uncommitted change(s) under archiver/, "
                                 "migrations/" if dirty else " (clean)")


def _load(values) -> str:
    return "/".join(f"{v:.1f}" for v in values)


def render(args, report: dict, suites, profile: dict) -> list[str]:
    m = report["machine"]
    lines = [
        "archiver ingest benchmark",
        f"command:  {report['command']}",
        f"when:     {report['started']}; load average (1/5/15 min) "
        f"{_load(report['load_before'])} before, {_load(report['load_after'])} after "
        "(other work on the machine disturbs the numbers)",
        f"machine:  {m['cores']} cores, {m['cpu_model']}, {m['memory_gb']} GB RAM, "
        f"Linux {m['kernel']}",
        f"archiver: {report['tree']}, copied and byte-compiled before the run",
        f"python:   {report['python']} (archiver's venv; also runs the ceiling clients)",
        f"server:   {report['server']}; a fresh user per tool and repeat, same messages",
        f"archive:  {report['database']}",
        "data:     " + "\n          ".join(c["description"] for c in report["corpora"]),
        "compared:",
    ]
    width = max([24, *(len(t["version"]) for t in report["tools"])])
    for t in report["tools"]:
        lines.append(f"  {t['name']:<18} {t['version']:<{width}} {t['about']}")
    for name, why in report["skipped"].items():
        lines.append(f"  {name:<18} SKIPPED: {why}")
    lines.append(f"each tool {args.repeat}x, round-robin; wall = whole process (start to exit), "
                 "median [min–max] over valid runs")
    lines.append("peak RSS = largest single process; tree = whole process tree (sum of PSS, "
                 "sampled every 20 ms); both the largest of the runs")
    lines.append(f"CPU and peak RSS of each tool measured by {report['launcher']}")
    for corpus, summaries in suites:
        first = [s for s in summaries if s.pass_name == "first"]
        noop = [s for s in summaries if s.pass_name == "noop"]
        lines += ["", f"FIRST PASS ({corpus.name}): fetch and store all {corpus.count} messages",
                  *first_pass_table(first)]
        if noop:
            lines += ["", f"NO-OP PASS ({corpus.name}): the same mailbox again, nothing new",
                      *noop_table(noop)]
        problems = [f"  {s.tool} {s.pass_name}: {p}" for s in summaries for p in s.problems]
        if problems:
            lines += ["", "INVALID runs (left out of the statistics):", *problems]
        ratios = ratio_lines(summaries, next((s.tool for s in summaries
                                              if s.tool.startswith("archiver")), "archiver"))
        if ratios:
            lines += ["", f"RATIOS ({corpus.name})", *ratios]
        if args.big:
            for s in summaries:
                if s.tool.startswith("archiver") and s.pass_name == "first" and s.valid_runs:
                    worst = max(s.peak_rss_bytes, s.peak_tree_bytes)
                    verdict = "PASS" if worst < BIG_RSS_TARGET else "FAIL"
                    lines.append(f"big message: {s.tool} peak RSS {s.peak_rss_bytes / 1e6:.0f} MB "
                                 f"(largest process), {s.peak_tree_bytes / 1e6:.0f} MB (whole "
                                 f"process tree) for a {corpus.total_bytes / 1e6:.0f} MB message "
                                 f"(target < {BIG_RSS_TARGET / 1e6:.0f} MB): {verdict}")
    if args.scale and len(suites) == 2:
        lines += ["", f"SCALE: N={suites[0][0].count} vs N={suites[1][0].count}",
                  *scale_lines(suites[0][1], suites[1][1])]
    for pass_name, plines in profile.items():
        lines += ["", f"PROFILE ({pass_name})", *plines]
    return lines


if __name__ == "__main__":
    try:
        sys.exit(main())
    except KeyboardInterrupt as exc:
        progress(f"interrupted ({exc or 'Ctrl-C'}); cleaned up")
        sys.exit(130)
