"""Reports of a run for where users look: a Markdown report (the gate's verdicts and every table, with the machine
and versions) under results/reports/, appended to GitHub's step summary when GITHUB_STEP_SUMMARY is set; PNG plots
of each gated metric against its baseline and tolerance band, and a history of decode speed and per-query latency
over the run files of this GPU.

    python -m perfgate.report [RUN_FILE]     # default: the newest run file in results/runs/  (make report)
"""

from __future__ import annotations

import os
import sys
from collections.abc import Iterable
from datetime import datetime
from pathlib import Path
from typing import Any

from perfgate import ab, paths, table
from perfgate.storage import read_json

REPORTS = "reports"


def markdown(run: dict[str, Any], name: str) -> str:
    m, versions = run["machine"], run["machine"]["versions"]
    check = run.get("baseline_check") or {}
    head = [
        f"## perfgate: {run['model']['source']} on {m['gpu']}",
        "",
        table.verdict_line(run, markdown=True),
        "",
        f"- run file: `{name}`, started {run['started_at']}",
        f"- machine: {m['gpu']}, driver {m.get('driver')}, CUDA {m.get('cuda')}, {m.get('cpu')}, "
        f"Python {m.get('python')}",
        "- versions: " + ", ".join(f"{k} {v}" for k, v in sorted(versions.items())),
        f"- commit: `{m.get('commit')}`; baseline file: `{run.get('baseline_file')}`",
    ]
    for line in table.render_held_to_floor(run["results"]):
        head.append(f"- {line}")
    if check.get("problem"):
        head.append(f"- **baseline: {check['problem']}**")
    if run.get("worker_layout"):
        head.append(f"- worker processes: {run['worker_layout']}")
    head.extend(f"- {line}" for line in [*ab.summary_lines(run), *table.pair_lines(run)])
    if run.get("gpu_busy_at_start"):
        head.append("- warning: the GPU was not idle at the start: " + "; ".join(run["gpu_busy_at_start"]))
    if run.get("not_started"):
        head.append(f"- {table.not_started(run['not_started'], markdown=True)}")
    if run.get("interrupted"):
        head.append(f"- **{table.interrupted(run['interrupted'], markdown=True)}**")
    for error in run.get("errors") or []:
        head.append(f"- **{table.error(error, markdown=True)}**")
    head.extend(f"- {line}" for line in table.time_lines(run))
    parts = ["\n".join(head)]
    gated = table.gated_against_file(run)
    if any(r.get("verdict") and (r["verdict"]["status"] != "unavailable" or not check.get("problem")) for r in gated):
        parts.append("### Gate\n\n" + table.render_gate(gated, markdown=True))
    parts.append("### Figures\n\n" + table.render(table.figures_of(run), markdown=True))
    return "\n\n".join(parts) + "\n"


def write(run_path: Path, out_dir: Path | None = None, plots: bool = True) -> list[Path]:
    """The report (and plots) of one run file; returns the files written."""
    run = read_json(run_path)
    out_dir = out_dir or run_path.parent.parent / REPORTS
    out_dir.mkdir(parents=True, exist_ok=True)
    text = markdown(run, run_path.name)
    md = out_dir / f"{run_path.stem}.md"
    md.write_text(text, encoding="utf-8")
    written = [md]
    summary = os.environ.get("GITHUB_STEP_SUMMARY")
    if summary:
        with open(summary, "a", encoding="utf-8") as fh:
            fh.write(text + "\n")
    if plots:
        written += plot_against_baseline(run, out_dir / run_path.stem)
        written += plot_step_split(run, out_dir / run_path.stem)
        history_runs = sorted(run_path.parent.glob(f"*_{run['machine']['gpu_slug']}.json"))
        written += plot_history([read_json(p) for p in history_runs], run["model"]["source"], out_dir / run_path.stem)
    return written


def _pyplot():
    import matplotlib

    matplotlib.use("Agg")  # files only, no screen
    import matplotlib.pyplot as plt

    return plt


def plot_against_baseline(run: dict[str, Any], folder: Path) -> list[Path]:
    """One PNG per gated metric with a baseline: each variant's value (dot), its baseline (tick) and the band
    between the baseline and its limit (the tolerance), one row per variant and workload."""
    by_metric: dict[str, list[dict[str, Any]]] = {}
    for r in run["results"]:
        v, b = r.get("verdict"), r.get("baseline") or {}
        if v and b.get("value") is not None and r["value"] is not None and v.get("limit") is not None:
            by_metric.setdefault(r["metric"], []).append(r)
    if not by_metric:
        return []
    plt = _pyplot()
    folder.mkdir(parents=True, exist_ok=True)
    written = []
    for metric, results in sorted(by_metric.items()):
        labels = [f"{r['variant']} {r['workload']}".strip() for r in results]
        fig, ax = plt.subplots(figsize=(8, 1.2 + 0.45 * len(results)))
        for y, r in enumerate(results):
            base, limit = r["baseline"]["value"], r["verdict"]["limit"]
            ax.plot([min(base, limit), max(base, limit)], [y, y], color="#b7d7b0", linewidth=9, solid_capstyle="butt")
            ax.plot([base], [y], marker="|", color="#2d6a2d", markersize=16, markeredgewidth=2)
            colour = "#c0392b" if r["verdict"]["status"] == "fail" else "#1f4e9c"
            ax.plot([r["value"]], [y], marker="o", color=colour, markersize=7)
        ax.set_yticks(range(len(results)), labels)
        ax.invert_yaxis()
        ax.set_xlabel(
            f"{metric} ({results[0]['unit']}; {'higher' if results[0]['better'] == 'higher' else 'lower'} is better)"
        )
        ax.set_title(
            f"{metric}: this run (dot; red = fail) against the baseline (tick) and its tolerance (band)", fontsize=9
        )
        ax.grid(axis="x", alpha=0.3)
        fig.tight_layout()
        path = folder / f"{metric}.png"
        fig.savefig(path, dpi=110)
        plt.close(fig)
        written.append(path)
    return written


def step_split(run: dict[str, Any]) -> list[tuple[str, float, float, float | None]]:
    """Per variant and workload with a profiled round: (label, device ms, host ms, bandwidth-bound ms) per decode
    token; the bound is what reading every weight once per token takes at the device's measured copy bandwidth."""
    by_case: dict[tuple[str, str], dict[str, dict[str, Any]]] = {}
    for r in run["results"]:
        if r["test"] == "decode":
            by_case.setdefault((r["variant"], r["workload"]), {})[r["metric"]] = r
    out = []
    for (variant, workload), m in by_case.items():
        device, host = m.get("device_ms_per_token", {}).get("value"), m.get("host_ms_per_token", {}).get("value")
        if device is None or host is None:
            continue
        bound = (m.get("bandwidth_share_pct") or {}).get("params", {}).get("bound_tok_per_s")
        out.append((f"{variant} {workload}".strip(), device, host, 1000 / bound if bound else None))
    return out


def plot_step_split(run: dict[str, Any], folder: Path) -> list[Path]:
    """One picture per run: per variant, a decode token's time split into what the GPU was busy with (device) and
    the rest (host: Python, launches, waits), beside the memory-bandwidth bound. A bar mostly host is bound by
    launches; a device part near the bound is bound by bandwidth; a device part far above it, by something else."""
    rows = step_split(run)
    if not rows:
        return []
    plt = _pyplot()
    folder.mkdir(parents=True, exist_ok=True)
    fig, ax = plt.subplots(figsize=(8, 1.4 + 0.45 * len(rows)))
    for y, (_, device, host, bound) in enumerate(rows):
        ax.barh(y, device, color="#1f4e9c", label="device (GPU busy)" if y == 0 else None)
        ax.barh(y, host, left=device, color="#c9d6ea", label="host (launches, Python, waits)" if y == 0 else None)
        if bound is not None:
            ax.plot([bound], [y], marker="|", color="#c0392b", markersize=18, markeredgewidth=2,
                    label="memory-bandwidth bound" if y == 0 else None)  # fmt: skip
    ax.set_yticks(range(len(rows)), [r[0] for r in rows])
    ax.invert_yaxis()
    ax.set_xlabel("ms per decode token, batch 1 (host: the timed rounds' median step less device time)")
    ax.set_title("Where a decode step's time goes", fontsize=9)
    ax.legend(fontsize=7, loc="lower right")
    ax.grid(axis="x", alpha=0.3)
    fig.tight_layout()
    path = folder / "step_split.png"
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return [path]


HISTORY = (("decode_tok_per_s", "decode tok/s", "decode"), ("agent_query_p50_s", "agent query p50 (s)", "agent"))


def plot_history(runs: Iterable[dict[str, Any]], model: str, folder: Path) -> list[Path]:
    """Decode tokens/s (at the most common context) and per-query p50 of each variant over the run files."""
    series: dict[str, dict[str, list[tuple[datetime, float]]]] = {metric: {} for metric, _, _ in HISTORY}
    workloads: dict[str, dict[str, int]] = {metric: {} for metric, _, _ in HISTORY}
    runs = [r for r in runs if r["model"]["source"] == model]
    for run in runs:
        for r in run["results"]:
            if r["metric"] in series and r["value"] is not None:
                workloads[r["metric"]][r["workload"]] = workloads[r["metric"]].get(r["workload"], 0) + 1
    for run in runs:
        when = datetime.fromisoformat(run["started_at"])
        for r in run["results"]:
            metric = r["metric"]
            if metric in series and r["value"] is not None and workloads[metric]:
                if r["workload"] == max(workloads[metric], key=workloads[metric].get):
                    series[metric].setdefault(r["variant"], []).append((when, r["value"]))
    if not any(series.values()):
        return []
    plt = _pyplot()
    folder.mkdir(parents=True, exist_ok=True)
    fig, axes = plt.subplots(2, 1, figsize=(9, 7), sharex=True)
    names = sorted({v for metric in series.values() for v in metric})
    colour = {v: plt.get_cmap("tab10")(i % 10) for i, v in enumerate(names)}  # one colour per variant in both
    for ax, (metric, label, _) in zip(axes, HISTORY, strict=True):
        for variant, points in sorted(series[metric].items()):
            points.sort()
            ax.plot([p[0] for p in points], [p[1] for p in points], marker="o", label=variant, color=colour[variant])
        workload = max(workloads[metric], key=workloads[metric].get) if workloads[metric] else ""
        ax.set_ylabel(f"{label}\n[{workload}]" if workload else label)
        ax.grid(alpha=0.3)
        if series[metric]:
            ax.legend(fontsize=8, loc="center left", bbox_to_anchor=(1.01, 0.5))
    axes[0].set_title(f"{model}: history over {len(runs)} run files", fontsize=10)
    axes[-1].set_xlabel("run start (UTC)")
    fig.autofmt_xdate()
    fig.tight_layout()
    path = folder / "history.png"
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return [path]


def newest_run(results: Path) -> Path:
    runs = sorted((results / "runs").glob("*.json"))
    if not runs:
        raise FileNotFoundError(f"no run file in {results / 'runs'}: run `make perf` first")
    return runs[-1]


def main(argv: list[str]) -> int:
    try:
        run_path = Path(argv[0]) if argv else newest_run(paths.RESULTS)
        for path in write(run_path):
            print(path)
    except (FileNotFoundError, KeyError, ValueError) as exc:
        print(f"perfgate report: {exc}", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
