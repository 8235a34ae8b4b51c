"""What one measured pass produced, and the summary over its repeats."""

from __future__ import annotations

from dataclasses import asdict, dataclass, field

from measure import Spread, spread

__all__ = ["PassResult", "Summary", "summarize"]


@dataclass
class PassResult:
    """One pass of one tool on one fresh mailbox."""

    tool: str
    pass_name: str  # "first" (fetch everything) or "noop" (nothing new)
    corpus: str
    messages: int  # on the server
    bytes: int  # on the server, wire form
    repeat: int
    user: str
    exit_code: int
    wall_s: float
    cpu_s: float
    max_rss_bytes: int
    tree_pss_bytes: int
    stored: int  # counted by the harness after the pass
    server_retrieved: int  # RETR + TOP commands, from Dovecot's session log
    server_bytes: int
    sessions: int
    in_process_s: float | None = None
    problems: list[str] = field(default_factory=list)

    @property
    def valid(self) -> bool:
        return not self.problems

    def to_json(self) -> dict:
        data = asdict(self)
        data["valid"] = self.valid
        return data


@dataclass
class Summary:
    """The repeats of one (corpus, tool, pass): only valid runs count."""

    tool: str
    pass_name: str
    corpus: str
    messages: int
    bytes: int
    runs: int
    valid_runs: int
    wall: Spread | None
    cpu: Spread | None
    in_process: Spread | None
    peak_rss_bytes: int  # the largest over all valid runs
    peak_tree_bytes: int  # the largest summed PSS of the process tree over all valid runs
    problems: list[str]

    @property
    def msgs_per_s(self) -> float | None:
        return self.messages / self.wall.median if self.wall and self.wall.median > 0 else None

    @property
    def mb_per_s(self) -> float | None:
        return self.bytes / 1e6 / self.wall.median if self.wall and self.wall.median > 0 else None

    @property
    def us_per_message(self) -> float | None:
        """No-op pass: wall time per message on the server, in microseconds."""
        return self.wall.median / self.messages * 1e6 if self.wall and self.messages else None

    def to_json(self) -> dict:
        return {
            "tool": self.tool, "pass": self.pass_name, "corpus": self.corpus,
            "messages": self.messages, "bytes": self.bytes, "runs": self.runs,
            "valid_runs": self.valid_runs,
            "wall_s": self.wall.to_json() if self.wall else None,
            "cpu_s": self.cpu.to_json() if self.cpu else None,
            "in_process_s": self.in_process.to_json() if self.in_process else None,
            "msgs_per_s": self.msgs_per_s, "mb_per_s": self.mb_per_s,
            "us_per_message": self.us_per_message,
            "peak_rss_bytes": self.peak_rss_bytes, "peak_tree_bytes": self.peak_tree_bytes,
            "problems": self.problems,
        }


def summarize(results: list[PassResult]) -> list[Summary]:
    """One Summary per (corpus, tool, pass), in first-seen order."""
    groups: dict[tuple[str, str, str], list[PassResult]] = {}
    for r in results:
        groups.setdefault((r.corpus, r.tool, r.pass_name), []).append(r)
    summaries = []
    for (corpus, tool, pass_name), runs in groups.items():
        valid = [r for r in runs if r.valid]
        problems = sorted({p for r in runs for p in r.problems})
        in_process = [r.in_process_s for r in valid if r.in_process_s is not None]
        summaries.append(Summary(
            tool=tool, pass_name=pass_name, corpus=corpus,
            messages=runs[0].messages, bytes=runs[0].bytes,
            runs=len(runs), valid_runs=len(valid),
            wall=spread([r.wall_s for r in valid]),
            cpu=spread([r.cpu_s for r in valid]),
            in_process=spread(in_process),
            peak_rss_bytes=max((r.max_rss_bytes for r in valid), default=0),
            peak_tree_bytes=max((r.tree_pss_bytes for r in valid), default=0),
            problems=problems,
        ))
    return summaries
