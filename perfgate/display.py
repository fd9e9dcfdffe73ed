"""The terminal summary of a perf run: perfgate's table, the gate's verdicts, the baseline written, what went wrong,
where the files are, and, last, the verdict in one line with the next step; and each test's figures as properties
for JUnit XML. Renders what the session kept; decides nothing (perfgate.session orchestrates, perfgate.table
formats)."""

from __future__ import annotations

from typing import Any

from perfgate import ab, gate, parallel, table
from perfgate.figures import Figure
from perfgate.judging import Judged


def terminal_summary(perf, reporter) -> None:
    """perf: the PerfSession; reporter: pytest's terminal reporter."""
    if not (perf.figures or perf.failed or perf.errors or perf.progress.interrupted):
        return
    run = perf.merged or perf.run_document()
    show_figures(perf, run, reporter)
    show_gate(perf, run, reporter)
    show_baseline(perf, run, reporter)
    show_trouble(perf, reporter)
    show_files(perf, reporter)
    reporter.write_line(table.verdict_line(run, written=baseline_written(perf)), **colour(run))


def show_figures(perf, run: dict[str, Any], reporter) -> None:
    """What was measured where: the model and machine, the table, the workers it was spread over, the A/B lines."""
    m = perf.machine
    reporter.write_sep("=", "perfgate")
    reporter.write_line(
        f"{perf.model.source} on {m['gpu']} · torch {m['versions']['torch']} · "
        f"transformers {m['versions']['transformers']}"
    )
    reporter.write_line("")
    reporter.write_line(table.render(perf.figures))
    if perf.merged and "parallel" in perf.merged:  # (without it, no worker measured anything)
        workers = perf.merged["parallel"]["workers"]
        reporter.write_line("")
        reporter.write_line(
            "spread over "
            + ", ".join(f"{w} ({worker_where(v)}: {', '.join(v['variants'])})" for w, v in workers.items())
        )
        for gpu, names in parallel.shared_gpus(workers).items():
            who = ", ".join(names[:-1]) + " and " + names[-1]
            reporter.write_line(
                f"warning: {who} shared GPU {gpu}: each one's device time was measured beside another's kernels (in "
                "the one such H200 run, 2-3 % above the baselines: docs/usage.md#several-gpus); keep one pytest "
                "worker per GPU",
                yellow=True,
            )
    for line in [*ab.summary_lines(run), *table.pair_lines(run)]:
        reporter.write_line(line)


def show_gate(perf, run: dict[str, Any], reporter) -> None:
    """The verdicts against the baseline file (or the base), and the figures held to their noise floor."""
    gated = table.gated_against_file(run)
    problem = (run.get("baseline_check") or {}).get("problem")
    shown = [r for r in gated if r.get("verdict") and (not problem or r["verdict"]["status"] != gate.UNAVAILABLE)]
    if shown:
        reporter.write_line("")
        against = "the base, in this run" if run.get("ab") else perf.baseline_path
        reporter.write_line(f"gate against {against}:" if not problem or run.get("ab") else "gate:")
        reporter.write_line(table.render_gate(gated))
    for line in table.render_held_to_floor(run["results"]):
        reporter.write_line(line, yellow=True)


def show_baseline(perf, run: dict[str, Any], reporter) -> None:
    """Why the baseline file holds nothing to gate against, or, after a baseline run, what was written."""
    problem = (run.get("baseline_check") or {}).get("problem")
    if problem and not perf.opts["update_baselines"] and not run.get("ab"):
        reporter.write_line("")
        reporter.write_line(f"baseline: {problem}", yellow=True)
    if perf.baseline_diff is not None:
        reporter.write_line("")
        reporter.write_line(f"baseline file written: {perf.baseline_path}")
        reporter.write_line(table.render_diff(perf.baseline_diff))
        for line in table.render_noisy(perf.baseline_noisy):
            reporter.write_line(line, yellow=True)


def show_trouble(perf, reporter) -> None:
    """A busy GPU, the variants not measured, the tests cut or stopped, and every test's error."""
    for busy in perf.gpu_busy:
        reporter.write_line(f"warning: the GPU was not idle at the start: {busy}", yellow=True)
    for key, why in perf.failed.items():
        said = "failed" if key.endswith(ab.SUFFIX) else "not measured"  # a base side may have measured some
        reporter.write_line(f"{said}: {why.splitlines()[0]}")
    if perf.progress.cut:
        reporter.write_line(table.not_started(perf.progress.cut), yellow=True)
    if perf.progress.interrupted:
        reporter.write_line(table.interrupted(perf.progress.interrupted), red=True)
    for error in perf.errors:
        if error["message"] not in perf.failed.values():  # a variant that failed to load is said just above
            reporter.write_line(table.error(error), red=True)


def show_files(perf, reporter) -> None:
    """Where the baseline, the run file and the report went (or why they did not), and where the time went."""
    if perf.baseline_error:
        reporter.write_line(perf.baseline_error, red=True)
    if perf.runfile.error:
        reporter.write_line(perf.runfile.error, red=True)
    elif perf.runfile.path:
        reporter.write_line(f"run file: {perf.runfile.path}")
    if perf.report_files:
        reporter.write_line(f"report: {perf.report_files[0]} ({len(perf.report_files) - 1} plots)")
    if perf.report_note:
        reporter.write_line(perf.report_note, yellow=True)
    for line in table.time_lines({"time_split": perf.runfile.time_split, "variants": perf.load_info}):
        reporter.write_line(line)


def baseline_written(perf) -> str | None:
    """'results/baselines/cpu.json, 40 entries new or changed (2 too noisy to gate against)' after a baseline run."""
    if perf.baseline_diff is None:
        return None
    from perfgate.baselines import shown_path

    noisy = f" ({len(perf.baseline_noisy)} too noisy to gate against)" if perf.baseline_noisy else ""
    return f"{shown_path(perf.baseline_path)}, {len(perf.baseline_diff)} entries new or changed{noisy}"


def colour(run: dict[str, Any]) -> dict[str, bool]:
    """Red where a figure failed or the run did not finish cleanly, yellow where nothing was gated, else green."""
    counts = table.verdict_counts(run["results"])
    if counts.get(gate.FAIL) or run.get("errors") or run.get("interrupted"):
        return {"red": True, "bold": True}
    if not counts.get(gate.PASS) and not run.get("options", {}).get("update_baselines"):
        return {"yellow": True, "bold": True}
    return {"green": True, "bold": True}


def worker_where(worker: dict[str, Any]) -> str:
    return f"GPU {worker['gpu']}" if worker.get("gpu") is not None else "no GPU"


def junit_properties(figures: list[Figure], judged: dict[tuple[str, str, str, str], Judged]) -> list[tuple[str, str]]:
    """(name, value) pairs for JUnit XML: 'decode_tok_per_s' -> '24.8 tok/s', '..._verdict' -> 'pass'."""
    out = []
    for f in figures:
        name = f"{f.metric}[{f.workload}]" if f.workload else f.metric
        value = table.number(f.value, f.unit)
        out.append((name, f"{value} {f.unit}" if f.value is not None else f"n/a: {f.unavailable}"))
        j = judged.get(f.key)
        if j is not None:
            out.append((f"{name}_verdict", table.verdict_word(j)))
    return out
