"""Compare two revisions of archiver on the same mailbox: start-up, no-op pass, small pass.

    python bench/revisions.py --base b707835 [--head HEAD] [--messages 10000] [--repeat 7]

Checks BASE out into a temporary git worktree and runs both revisions'
``archiver collect`` (a whole process, as cron or the scheduler would)
against one private Dovecot, alternating BASE and HEAD so machine noise
hits both alike. Each revision has its own SQLite archive, made by its own
first pass (not timed). Then, per round:

* ``no-op``: a pass with nothing new (UIDL + LIST of every message), whole
  process wall time, and the pass's own ``duration_s``;
* ``small``: 50 new messages delivered to each mailbox, then one pass.

Prints medians side by side with the ratio HEAD / BASE (below 1 = faster).
Used for issue 7's "the no-op pass must not get slower" check. Run by hand;
never part of the tests.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

from tests.support.corpus import generate_mix  # noqa: E402
from tests.support.dovecot import Dovecot  # noqa: E402


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--base", required=True, help="git revision to compare against")
    p.add_argument("--head", default="HEAD", help="git revision measured (default HEAD)")
    p.add_argument("--messages", type=int, default=10_000, help="mailbox size (default 10000)")
    p.add_argument("--small", type=int, default=50, help="new messages per small pass")
    p.add_argument("--repeat", type=int, default=7, help="rounds (default 7)")
    return p.parse_args(argv)


def checkout(rev: str, where: Path) -> Path:
    subprocess.run(["git", "-C", str(REPO), "worktree", "add", "--detach", str(where), rev],
                   check=True, capture_output=True)
    return where


def collect(tree: Path, config: Path) -> tuple[float, float]:
    """(whole-process seconds, the pass's own duration_s) of one `archiver collect`."""
    env = {**os.environ, "PYTHONPATH": str(tree)}
    started = time.perf_counter()
    out = subprocess.run([sys.executable, "-m", "archiver", "--config", str(config), "collect",
                          "--json"], cwd=tree, env=env, capture_output=True, check=False)
    wall = time.perf_counter() - started
    if out.returncode != 0:
        raise SystemExit(f"{tree}: collect failed: {out.stderr.decode()[-2000:]}")
    return wall, json.loads(out.stdout)["accounts"][0]["duration_s"]


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    with tempfile.TemporaryDirectory(prefix="archiver-revisions-") as tmp:
        work = Path(tmp)
        trees = {"base": checkout(args.base, work / "base"), "head": checkout(args.head,
                                                                            work / "head")}
        try:
            return run(args, work, trees)
        finally:
            for tree in trees.values():
                subprocess.run(["git", "-C", str(REPO), "worktree", "remove", "--force",
                                str(tree)], capture_output=True, check=False)


def run(args: argparse.Namespace, work: Path, trees: dict[str, Path]) -> int:
    mail = list(generate_mix(args.messages + args.small * args.repeat, seed=1))
    with Dovecot(work / "dovecot", ssl=False) as server:
        configs = {}
        for name, tree in trees.items():
            server.add_user(name, "pw")
            server.deliver_many(name, mail[: args.messages])
            cfg = work / f"{name}.toml"
            cfg.write_text(
                f'[archive]\ndatabase = "sqlite:///{work / name}.db"\n\n[[accounts]]\n'
                f'name = "{name}"\nhost = "127.0.0.1"\nport = {server.pop3_port}\n'
                f'tls = "none"\nusername = "{name}"\npassword = "pw"\n', encoding="utf-8")
            init = subprocess.run([sys.executable, "-m", "archiver", "--config", str(cfg),
                                   "init"], cwd=tree, env={**os.environ, "PYTHONPATH": str(tree)},
                                  capture_output=True, check=False)
            if init.returncode != 0:
                raise SystemExit(f"{tree}: init failed: {init.stderr.decode()[-2000:]}")
            collect(tree, cfg)  # the first pass, not timed
            configs[name] = cfg
        results: dict[str, dict[str, list[float]]] = {
            n: {"noop_wall": [], "noop_pass": [], "small_wall": [], "small_pass": []}
            for n in trees}
        next_mail = args.messages
        for round_no in range(args.repeat):
            order = list(trees) if round_no % 2 == 0 else list(reversed(trees))
            for name in order:
                wall, own = collect(trees[name], configs[name])
                results[name]["noop_wall"].append(wall)
                results[name]["noop_pass"].append(own)
            batch = mail[next_mail: next_mail + args.small]
            next_mail += args.small
            for name in order:
                server.deliver_many(name, batch)
                wall, own = collect(trees[name], configs[name])
                results[name]["small_wall"].append(wall)
                results[name]["small_pass"].append(own)
    print(f"archiver {args.head} vs {args.base}: one Dovecot, {args.messages} messages "
          f"(generate_mix seed 1), SQLite, medians of {args.repeat} alternating rounds")
    print(f"{'measure':<34}{'base':>10}{'head':>10}{'head/base':>11}")
    labels = {"noop_wall": "no-op pass, whole process (s)",
              "noop_pass": "no-op pass, duration_s",
              "small_wall": f"{args.small} new, whole process (s)",
              "small_pass": f"{args.small} new, duration_s"}
    for key, label in labels.items():
        base = statistics.median(results["base"][key])
        head = statistics.median(results["head"][key])
        print(f"{label:<34}{base:>10.3f}{head:>10.3f}{head / base:>11.2f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
