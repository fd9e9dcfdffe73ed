"""The real agent loop (live mode, report-only): the chat template with the tool schemas, the model's reply parsed
for tool calls, the tools run against the mailbox, until return_final_answer or MAX_TURNS. The model is any
`reply(messages) -> (text, timing)` callable, so the loop is tested on the CPU with scripted replies.

What a real model says varies from run to run and release to release, so live figures are reported, never gated;
the gated agent figures come from replaying the committed traces (perfgate.measure.agent)."""

from __future__ import annotations

import json
import re
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from perfgate.agent import questions as agent_questions
from perfgate.agent import toolcalls, tools

Reply = Callable[[list[dict[str, Any]]], tuple[str, dict[str, Any]]]


@dataclass
class Outcome:
    question_id: str
    turns: int = 0
    answer: str | None = None
    sources: list[str] = field(default_factory=list)
    stopped: str = ""  # "answered", "max turns"
    errors: list[str] = field(default_factory=list)  # what the model got wrong, as told back to it
    timings: list[dict[str, Any]] = field(default_factory=list)

    @property
    def latency_s(self) -> float:
        return sum(t.get("wall_s", 0.0) for t in self.timings)


def _normal(text: str) -> str:
    return re.sub(r"[^0-9a-z]+", " ", text.lower()).strip()


def answer_matches(answer: str | None, expected: str) -> bool:
    """Lenient: every word of the expected answer appears in the model's answer (case and punctuation aside)."""
    if not answer:
        return False
    have = f" {_normal(answer)} "
    return all(f" {w} " in have for w in _normal(expected).split())


def first_turn(question: dict[str, Any]) -> list[dict[str, Any]]:
    """The chat the agent starts a question with: its system prompt and the user's question."""
    return [
        {"role": "system", "content": agent_questions.SYSTEM_PROMPT},
        {"role": "user", "content": question["question"]},
    ]


def prompt_ids(tokenizer, messages: list[dict[str, Any]]) -> list[int]:
    """The chat as the model reads it: its own chat template with the tool schemas, thinking off."""
    text = tokenizer.apply_chat_template(
        messages, tools=tools.SCHEMAS, add_generation_prompt=True, tokenize=False, enable_thinking=False
    )
    return tokenizer(text, add_special_tokens=False)["input_ids"]


def end_token_ids(tokenizer) -> list[int]:
    """The tokens that end a reply: <|im_end|> and the tokenizer's end-of-sequence token."""
    return [i for i in (tokenizer.convert_tokens_to_ids("<|im_end|>"), tokenizer.eos_token_id) if i is not None]


def _is_error(result: str) -> bool:
    data = json.loads(result)
    return isinstance(data, dict) and set(data) == {"error"}


def run(question: dict[str, Any], reply: Reply, mailbox: tools.Mailbox, max_turns: int = tools.MAX_TURNS) -> Outcome:
    messages = first_turn(question)
    out = Outcome(question["id"])
    while out.turns < max_turns:
        text, timing = reply(messages)
        out.turns += 1
        out.timings.append(timing)
        try:
            calls = toolcalls.parse(text)
        except toolcalls.ToolCallError as exc:
            out.errors.append(str(exc))
            messages.append({"role": "assistant", "content": text})
            messages.append({"role": "user", "content": f"Error: {exc}"})
            continue
        messages.append({"role": "assistant", "content": "", "tool_calls": [c.message() for c in calls]})
        for call in calls:
            result = mailbox.call(call.name, call.arguments)
            failed = _is_error(result)
            if failed:
                out.errors.append(result)
            messages.append({"role": "tool", "name": call.name, "content": result})
            if call.name == "return_final_answer" and not failed:
                out.answer = call.arguments.get("answer")
                out.sources = list(call.arguments.get("sources", []))
                out.stopped = "answered"
                return out
    out.stopped = "max turns"
    return out
