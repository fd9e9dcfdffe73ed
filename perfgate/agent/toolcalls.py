"""Hermes-style tool calls, as Qwen3 writes them:

    <tool_call>
    {"name": "search_emails", "arguments": {"keywords": ["invoice"]}}
    </tool_call>

`parse` returns the calls of one reply, or raises ToolCallError with a message meant for the model (the agent loop
sends it back as the turn's result, so a malformed call costs a turn, never the run)."""

from __future__ import annotations

import json
import re
from dataclasses import dataclass
from typing import Any

from perfgate.agent.tools import NAMES

BLOCK = re.compile(r"<tool_call>(.*?)(?:</tool_call>|\Z)", re.DOTALL)
THINK = re.compile(r"<think>.*?(?:</think>|\Z)", re.DOTALL)


class ToolCallError(ValueError):
    pass


@dataclass(frozen=True)
class ToolCall:
    name: str
    arguments: dict[str, Any]

    def render(self) -> str:
        """The call as the model writes it (json.dumps as the chat template's tojson does)."""
        body = json.dumps({"name": self.name, "arguments": self.arguments}, ensure_ascii=False)
        return f"<tool_call>\n{body}\n</tool_call>"

    def message(self) -> dict[str, Any]:
        return {"type": "function", "function": {"name": self.name, "arguments": self.arguments}}


def strip_thinking(text: str) -> str:
    return THINK.sub("", text).strip()


def parse(text: str) -> list[ToolCall]:
    """Every tool call in a reply, in order."""
    blocks = BLOCK.findall(strip_thinking(text))
    if not blocks:
        raise ToolCallError(
            "your reply held no <tool_call>; call search_emails or read_email, or give the answer with "
            "return_final_answer"
        )
    return [_one(block.strip(), i) for i, block in enumerate(blocks, 1)]


def _one(block: str, index: int) -> ToolCall:
    where = f"tool call {index}"
    try:
        data = json.loads(block)
    except json.JSONDecodeError as exc:
        raise ToolCallError(f"{where} is not valid JSON ({exc.msg} at character {exc.pos}): {block[:200]!r}") from None
    if not isinstance(data, dict):
        raise ToolCallError(f"{where} must be a JSON object with 'name' and 'arguments', got {block[:200]!r}")
    name = data.get("name")
    if not isinstance(name, str) or name not in NAMES:
        raise ToolCallError(f"{where} names no known tool ({name!r}); the tools are {', '.join(NAMES)}")
    arguments = data.get("arguments", {})
    if isinstance(arguments, str):  # some models write the arguments as a JSON string
        try:
            arguments = json.loads(arguments) if arguments.strip() else {}
        except json.JSONDecodeError:
            raise ToolCallError(f"{where}: 'arguments' is a string that is not JSON: {arguments[:200]!r}") from None
    if not isinstance(arguments, dict):
        raise ToolCallError(f"{where}: 'arguments' must be a JSON object, got {arguments!r}")
    return ToolCall(name, arguments)
