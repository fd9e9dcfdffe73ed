"""The committed traces (fixtures/agent/traces.json) as the suite reads them at run time: per query, per turn, the
prompt length, the reply length and how much of the prompt repeats the previous turn token for token."""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

from perfgate import paths

TRACES = paths.FIXTURES / "agent" / "traces.json"
QUESTIONS = paths.FIXTURES / "agent" / "questions.json"
TRAJECTORIES = paths.FIXTURES / "agent" / "trajectories.json"


class TraceError(ValueError):
    """A trace file that cannot be used; the message names the file."""


@dataclass(frozen=True)
class Turn:
    prompt_tokens: int
    reply_tokens: int
    shared_prefix_tokens: int

    @property
    def total_tokens(self) -> int:
        return self.prompt_tokens + self.reply_tokens


@dataclass(frozen=True)
class Query:
    id: str
    turns: tuple[Turn, ...]

    @property
    def reply_tokens(self) -> int:
        return sum(t.reply_tokens for t in self.turns)

    @property
    def longest(self) -> Turn:
        return max(self.turns, key=lambda t: t.total_tokens)


def load(path: Path = TRACES) -> tuple[Query, ...]:
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, json.JSONDecodeError) as exc:
        raise TraceError(
            f"agent traces {path}: cannot be read ({exc}); rebuild: python scripts/build_agent_fixtures.py"
        ) from None
    try:
        queries = tuple(
            Query(
                q["id"],
                tuple(
                    Turn(int(t["prompt_tokens"]), int(t["reply_tokens"]), int(t["shared_prefix_tokens"]))
                    for t in q["turns"]
                ),
            )
            for q in data["queries"]
        )
    except (KeyError, TypeError, ValueError) as exc:
        raise TraceError(f"agent traces {path}: not a perfgate trace file ({type(exc).__name__}: {exc})") from None
    for q in queries:
        if not q.turns or any(t.prompt_tokens < 1 or t.reply_tokens < 2 for t in q.turns):
            raise TraceError(
                f"agent traces {path}: query {q.id} has a turn with no prompt or fewer than 2 reply tokens"
            )
    return queries


def select(queries: tuple[Query, ...], n: int, source: Path = TRACES) -> tuple[Query, ...]:
    """The first n queries (the users' TEST_SET_SIZE)."""
    if n > len(queries):
        raise TraceError(f"--perf-agent-queries {n}: {source} holds only {len(queries)} queries")
    return queries[:n]


def questions(path: Path = QUESTIONS) -> dict[str, dict]:
    return {q["id"]: q for q in json.loads(path.read_text(encoding="utf-8"))}
