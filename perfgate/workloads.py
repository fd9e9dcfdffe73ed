"""Workloads: what the model is asked to do. A decode workload is a prompt of an exact token count and an
exact number of new tokens, greedy, at batch 1 (the users' agent runs one query at a time)."""

from __future__ import annotations

from dataclasses import dataclass
from functools import cache

from perfgate import paths


@dataclass(frozen=True)
class DecodeWorkload:
    prompt_tokens: int
    new_tokens: int

    @property
    def id(self) -> str:
        return f"ctx{self.prompt_tokens}"

    @property
    def total_tokens(self) -> int:
        return self.prompt_tokens + self.new_tokens


@cache
def corpus_text() -> str:
    return "\n\n".join(p.read_text(encoding="utf-8") for p in sorted(paths.PROMPTS.glob("*.txt")))


def prompt_ids(tokenizer, n_tokens: int) -> list[int]:
    """Exactly n_tokens ids of real text (perfgate/data/prompts), repeated as often as needed. Text rather than
    random ids, so that a real model sees ordinary input; the count is what decides the cost."""
    base = tokenizer(corpus_text(), add_special_tokens=False)["input_ids"]
    if not base:
        raise ValueError("the tokenizer turned the prompt corpus into no tokens")
    reps = -(-n_tokens // len(base))
    return (base * reps)[:n_tokens]
