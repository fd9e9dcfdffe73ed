"""What the tests read from a child pytest run: its terminal output, and the run file it wrote."""

import json
from pathlib import Path

import pytest


def last_run(results: Path) -> dict:
    """The newest run file under a results folder (--perf-results-dir), parsed."""
    return json.loads(sorted((results / "runs").glob("*.json"))[-1].read_text())


def perfgate_lines(result: pytest.RunResult) -> list[str]:
    """The terminal summary's lines, from its '= perfgate =' rule to pytest's own closing lines."""
    lines = result.outlines
    start = next(i for i, line in enumerate(lines) if " perfgate " in line and line.startswith("="))
    end = next(i for i in range(start + 1, len(lines)) if lines[i].startswith("="))
    return lines[start:end]
