"""The agent's three tools over the SQLite mailbox, and their JSON schemas as the chat template shows them to the
model. A tool never raises on bad arguments from the model: it returns an error the model can read and act on
(ToolError's text), because a real agent loop must survive a model that calls a tool wrongly."""

from __future__ import annotations

import json
import re
import sqlite3
from datetime import date
from pathlib import Path
from typing import Any

MAX_HITS = 10
MAX_TURNS = 10

SCHEMAS: list[dict[str, Any]] = [
    {
        "type": "function",
        "function": {
            "name": "search_emails",
            "description": "Search the user's mailbox. Returns at most 10 emails (id, date, sender, subject and a "
            "snippet), best matches first.",
            "parameters": {
                "type": "object",
                "properties": {
                    "keywords": {
                        "type": "array",
                        "items": {"type": "string"},
                        "description": "Words that must all appear in the subject or body.",
                    },
                    "sender": {"type": "string", "description": "Part of the sender's name or address."},
                    "recipient": {"type": "string", "description": "Part of a recipient's name or address."},
                    "date_from": {"type": "string", "description": "Earliest date, YYYY-MM-DD."},
                    "date_to": {"type": "string", "description": "Latest date, YYYY-MM-DD (inclusive)."},
                },
                "required": ["keywords"],
            },
        },
    },
    {
        "type": "function",
        "function": {
            "name": "read_email",
            "description": "Read one email in full by its id.",
            "parameters": {
                "type": "object",
                "properties": {"id": {"type": "string", "description": "The email's id, e.g. m01234."}},
                "required": ["id"],
            },
        },
    },
    {
        "type": "function",
        "function": {
            "name": "return_final_answer",
            "description": "Give the final answer to the user's question, with the ids of the emails it rests on.",
            "parameters": {
                "type": "object",
                "properties": {
                    "answer": {"type": "string", "description": "The answer, short and precise."},
                    "sources": {"type": "array", "items": {"type": "string"}, "description": "Email ids."},
                },
                "required": ["answer", "sources"],
            },
        },
    },
]
NAMES = tuple(s["function"]["name"] for s in SCHEMAS)


class ToolError(ValueError):
    """A tool called wrongly; its text goes back to the model as the tool's result."""


def _text(args: dict[str, Any], name: str, required: bool = False) -> str | None:
    value = args.get(name)
    if value is None:
        if required:
            raise ToolError(f"missing required argument {name!r}")
        return None
    if not isinstance(value, str) or not value.strip():
        raise ToolError(f"argument {name!r} must be a non-empty string, got {value!r}")
    return value.strip()


def _day(args: dict[str, Any], name: str) -> str | None:
    value = _text(args, name)
    if value is None:
        return None
    try:
        return date.fromisoformat(value).isoformat()
    except ValueError:
        raise ToolError(f"argument {name!r} must be a date as YYYY-MM-DD, got {value!r}") from None


def _check_known(args: dict[str, Any], allowed: set[str], tool: str) -> None:
    unknown = sorted(set(args) - allowed)
    if unknown:
        raise ToolError(f"{tool} takes no argument {unknown[0]!r}; it takes {', '.join(sorted(allowed))}")


WORD = re.compile(r"\w+", re.UNICODE)


class Mailbox:
    """Read-only access to the mailbox database."""

    def __init__(self, path: Path) -> None:
        if not Path(path).is_file():
            raise FileNotFoundError(f"mailbox database {path} does not exist")
        self.path = Path(path)
        self.db = sqlite3.connect(f"file:{path}?mode=ro", uri=True, check_same_thread=False)

    def close(self) -> None:
        self.db.close()

    def search_emails(self, args: dict[str, Any]) -> list[dict[str, str]]:
        _check_known(args, {"keywords", "sender", "recipient", "date_from", "date_to"}, "search_emails")
        keywords = args.get("keywords")
        if isinstance(keywords, str):  # models often pass one string; take its words
            keywords = [keywords]
        if not isinstance(keywords, list) or not keywords or not all(isinstance(k, str) for k in keywords):
            raise ToolError(f"argument 'keywords' must be a non-empty list of strings, got {keywords!r}")
        words = [w for k in keywords for w in WORD.findall(k)]
        if not words:
            raise ToolError(f"argument 'keywords' holds no searchable word: {keywords!r}")
        # Every word must match (FTS5 AND), each quoted so that no keyword is read as query syntax.
        where, params = ["emails_fts MATCH ?"], [" AND ".join(f'"{w}"' for w in words)]
        for arg, column in (("sender", "e.sender"), ("recipient", "e.recipients || ', ' || e.cc")):
            value = _text(args, arg)
            if value is not None:
                where.append(f"{column} LIKE ?")
                params.append(f"%{value}%")
        since, until = _day(args, "date_from"), _day(args, "date_to")
        if since:
            where.append("e.date >= ?")
            params.append(since)
        if until:
            where.append("e.date < date(?, '+1 day')")
            params.append(until)
        rows = self.db.execute(
            "SELECT e.id, e.date, e.sender, e.subject, snippet(emails_fts, 1, '', '', ' ... ', 16) "
            "FROM emails_fts JOIN emails e ON e.rowid = emails_fts.rowid "
            f"WHERE {' AND '.join(where)} ORDER BY bm25(emails_fts), e.date DESC LIMIT {MAX_HITS}",
            params,
        ).fetchall()
        return [dict(zip(("id", "date", "sender", "subject", "snippet"), row, strict=True)) for row in rows]

    def read_email(self, args: dict[str, Any]) -> dict[str, str]:
        _check_known(args, {"id"}, "read_email")
        email_id = _text(args, "id", required=True)
        row = self.db.execute(
            "SELECT id, date, sender, recipients, cc, subject, body FROM emails WHERE id = ?", (email_id,)
        ).fetchone()
        if row is None:
            raise ToolError(f"no email has id {email_id!r}")
        return dict(zip(("id", "date", "sender", "recipients", "cc", "subject", "body"), row, strict=True))

    def call(self, name: str, args: dict[str, Any]) -> str:
        """The tool's result as the text the model reads next (JSON), or the error it made."""
        try:
            if name == "search_emails":
                return json.dumps(self.search_emails(args), ensure_ascii=False)
            if name == "read_email":
                return json.dumps(self.read_email(args), ensure_ascii=False)
            if name == "return_final_answer":
                return json.dumps(final_answer(args), ensure_ascii=False)
            raise ToolError(f"there is no tool {name!r}; the tools are {', '.join(NAMES)}")
        except ToolError as exc:
            return json.dumps({"error": str(exc)}, ensure_ascii=False)


def final_answer(args: dict[str, Any]) -> dict[str, Any]:
    _check_known(args, {"answer", "sources"}, "return_final_answer")
    answer = _text(args, "answer", required=True)
    sources = args.get("sources", [])
    if not isinstance(sources, list) or not all(isinstance(s, str) for s in sources):
        raise ToolError(f"argument 'sources' must be a list of email ids, got {sources!r}")
    return {"answer": answer, "sources": sources}
