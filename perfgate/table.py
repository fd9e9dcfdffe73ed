"""Rendering figures as tables: plain text for the terminal summary, Markdown for the README and reports.
The only module that formats numbers for people.

    python -m perfgate.table results/runs/<run>.json [more.json ...]   # Markdown tables of run files
"""

from __future__ import annotations

import sys
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path

from perfgate.figures import Figure
from perfgate.stats import Summary
from perfgate.storage import read_json


@dataclass(frozen=True)
class Column:
    header: str
    metric: str
    digits: int
    spread: bool = False  # show the coefficient of variation beside the median


DECODE_COLUMNS = (
    Column("decode tok/s", "decode_tok_per_s", 1, spread=True),
    Column("TTFT s", "ttft_s", 3, spread=True),
    Column("peak VRAM MiB", "peak_vram_mib", 0),
    Column("device Δ MiB", "peak_vram_device_mib", 0),
    Column("torch max MiB", "torch_max_allocated_mib", 0),
)
LOAD_COLUMNS = (
    Column("load s", "load_s", 1),
    Column("load peak VRAM MiB", "load_peak_vram_mib", 0),
    Column("resident VRAM MiB", "resident_vram_mib", 0),
)
UNAVAILABLE = "n/a"


def cell(figure: Figure | None, column: Column) -> str:
    if figure is None:
        return ""
    if figure.value is None:
        return UNAVAILABLE
    text = f"{figure.value:,.{column.digits}f}"
    if column.spread and len(figure.samples) > 1:
        text += f" ±{Summary.of(figure.samples).cv * 100:.0f}%"
    return text


def rows(figures: Iterable[Figure], test: str, columns: tuple[Column, ...]) -> list[list[str]]:
    """One row per (variant, workload); the workload column only where the test has workloads."""
    by_case: dict[tuple[str, str], dict[str, Figure]] = {}
    for f in figures:
        if f.test == test:
            by_case.setdefault((f.variant, f.workload), {})[f.metric] = f
    return [
        [variant, *([workload] if workload else [])] + [cell(metrics.get(c.metric), c) for c in columns]
        for (variant, workload), metrics in by_case.items()
    ]


def text_table(header: list[str], body: list[list[str]], labels: int) -> str:
    """Label columns (the first `labels`) left-aligned, figures right-aligned."""
    widths = [max(len(r[i]) for r in [header, *body]) for i in range(len(header))]

    def line(r: list[str]) -> str:
        cells = enumerate(zip(r, widths, strict=True))
        return "  ".join(c.ljust(w) if i < labels else c.rjust(w) for i, (c, w) in cells)

    return "\n".join([line(header), "  ".join("-" * w for w in widths), *(line(r) for r in body)])


def markdown_table(header: list[str], body: list[list[str]], labels: int) -> str:
    aligns = ["---"] * labels + ["---:"] * (len(header) - labels)
    return "\n".join("| " + " | ".join(r) + " |" for r in [header, aligns, *body])


def render(figures: list[Figure], markdown: bool = False) -> str:
    fmt = markdown_table if markdown else text_table
    parts = []
    for labels, test, columns in (
        (["variant", "workload"], "decode", DECODE_COLUMNS),
        (["variant"], "load", LOAD_COLUMNS),
    ):
        body = rows(figures, test, columns)
        if body:
            parts.append(fmt(labels + [c.header for c in columns], body, len(labels)))
    note = "±: coefficient of variation over the timed rounds; n/a: not measurable here (see the run file)"
    return "\n\n".join(parts + [note])


def figures_of(run: dict) -> list[Figure]:
    keep = Figure.__dataclass_fields__
    return [
        Figure(**{k: (tuple(v) if k == "samples" else v) for k, v in rec.items() if k in keep})
        for rec in run["results"]
    ]


def main(argv: list[str]) -> int:
    """Markdown for one or more run files (several runs of one machine make one table, in the given order)."""
    if not argv:
        print(__doc__, file=sys.stderr)
        return 2
    figures: list[Figure] = []
    for name in argv:
        run = read_json(Path(name))
        m, v = run["machine"], run["machine"]["versions"]
        print(
            f"- `{name}`: {run['model']['source']} on {m['gpu']} (driver {m['driver']}), torch {v['torch']}, "
            f"transformers {v['transformers']}, bitsandbytes {v['bitsandbytes']}, unsloth {v['unsloth']}; "
            f"started {run['started_at']}"
        )
        figures.extend(figures_of(run))
    print()
    print(render(figures, markdown=True))
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
