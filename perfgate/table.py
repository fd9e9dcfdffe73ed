"""Rendering figures as tables: plain text for the terminal summary, Markdown for the README and reports.
The only module that formats numbers for people.

    python -m perfgate.table results/runs/<run>.json [more.json ...]   # Markdown tables of run files
"""

from __future__ import annotations

import sys
from collections.abc import Iterable
from pathlib import Path
from typing import Any

from perfgate import gate, metrics, phases, progress, variants
from perfgate.figures import Figure, figures_of
from perfgate.profiling import diff_tables
from perfgate.stats import Summary
from perfgate.storage import read_json

# The summary's tables: each a test's metrics in column order; a column's label, decimals and spread are its
# metric's (perfgate.metrics).
DECODE_COLUMNS = (
    "decode_tok_per_s",
    "decode_ratio_to_ref",
    "ttft_s",
    "peak_vram_mib",
    "peak_vram_device_mib",
    "torch_max_allocated_mib",
    "bandwidth_share_pct",
    "energy_j_per_token",
)
# The profiled round (perfgate.profiling): where a decode step's time goes; ops on a CPU, kernels on a GPU.
DEVICE_COLUMNS = (
    "device_ms_per_token",
    "prefill_device_ms",
    "kernels_per_token",
    "launches_per_token",
    "syncs_per_token",
    "gpu_busy_pct",
    "host_ms_per_token",
    "ops_per_token",
    "cpu_op_ms_per_token",
    "profiling_overhead_pct",
)
LOAD_COLUMNS = ("load_s", "load_peak_vram_mib", "resident_vram_mib")
FIDELITY_COLUMNS = (
    "kl_nats",
    "top1_agreement_pct",
    "max_abs_logit_diff",
    "nonfinite_logits",
    "perplexity",
    "greedy_agreement_pct",
)
AGENT_COLUMNS = (
    "agent_query_p50_s",
    "agent_query_p95_s",
    "agent_turns_mean",
    "agent_gen_tok_per_s",
    "agent_prefill_share_pct",
    "agent_decode_tok_per_s",
    "agent_peak_vram_mib",
    "agent_reuse_query_p50_s",
)
LIVE_COLUMNS = (
    "agent_live_query_p50_s",
    "agent_live_turns_mean",
    "agent_live_answered_pct",
    "agent_live_correct_pct",
    "agent_live_tool_errors",
)
UNAVAILABLE = "n/a"


def header(metric: str) -> str:
    """A column's label: its metric's (perfgate.metrics.Metric.header)."""
    label = metrics.metric(metric).header
    if label is None:
        raise ValueError(f"metric {metric!r} has no column header in perfgate.metrics")
    return label


def cell(figure: Figure | None, metric: str) -> str:
    """A figure's table cell, with its metric's decimals (negative: that many significant digits, for figures that
    can be tiny, like a KL divergence) and, where the metric asks for it, the spread of its samples."""
    if figure is None:
        return ""
    if figure.value is None:
        return UNAVAILABLE
    m = metrics.metric(metric)
    text = f"{figure.value:.{-m.digits}g}" if m.digits < 0 else f"{figure.value:,.{m.digits}f}"
    if m.spread and len(figure.samples) > 1:
        text += f" ±{Summary.of(figure.samples).cv * 100:.0f}%"
    return text


def rows(figures: Iterable[Figure], test: str, columns: tuple[str, ...]) -> list[list[str]]:
    """One row per (variant, workload); the workload column only where the test has workloads."""
    by_case: dict[tuple[str, str], dict[str, Figure]] = {}
    for f in figures:
        if f.test == test:
            by_case.setdefault((f.variant, f.workload), {})[f.metric] = f
    return [
        [variant, *([workload] if workload else [])] + [cell(measured.get(name), name) for name in columns]
        for (variant, workload), measured in by_case.items()
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
    profiled = any(f.metric == "profiling_s" for f in figures)
    for labels, test, columns in (
        (["variant", "workload"], "decode", DECODE_COLUMNS),
        *([(["variant", "workload"], "decode", DEVICE_COLUMNS)] if profiled else []),
        (["variant"], "load", LOAD_COLUMNS),
        (["variant"], "fidelity", FIDELITY_COLUMNS),
        (["variant", "queries"], "agent", AGENT_COLUMNS),
        (["variant", "queries"], "agent_live", LIVE_COLUMNS),
    ):
        body = rows(figures, test, columns)
        if body:
            parts.append(fmt(labels + [header(name) for name in columns], body, len(labels)))
    note = "±: coefficient of variation over the timed rounds; n/a: not measurable here (see the run file)"
    return "\n\n".join(parts + [note])


def number(value: float | None, unit: str = "") -> str:
    if value is None:
        return UNAVAILABLE
    if unit in ("nats", "logit"):
        return f"{value:.3g}"
    digits = 0 if unit in ("MiB", "count") else 3 if unit in ("s", "x", "ms") else 1
    return f"{value:,.{digits}f}"


def verdict_word(judged) -> str:
    return verdict_text(judged.verdict.status, judged.verdict.clear, judged.verdict.beyond)


def verdict_text(status: str, clear: bool, beyond: bool = False) -> str:
    """A verdict as the tables show it, from its status, whether it was decided on evidence, and whether the
    figure itself lies beyond its limit (a pass for want of evidence that more rounds might have turned)."""
    if status == "no baseline":
        return "no baseline (recorded only)"
    if status == "unavailable":
        return UNAVAILABLE
    word = "FAIL" if status == gate.FAIL else "pass"
    if clear:
        return word
    return f"{word} (unclear, beyond limit)" if beyond and status == gate.PASS else f"{word} (unclear)"


GATE_LEGEND = "interval: 95% CI of the median"
BOOTSTRAP_LEGEND = (
    "; for decode_ratio_to_ref the 98% bootstrap interval of its fast-state estimate (the baseline run's rounds "
    "resampled too, where the baseline kept them), which decides its verdict"
)


def is_bootstrap(test: str | None) -> bool:
    """Whether a verdict was decided by a bootstrap interval (of this run's rounds, or with the baseline's)."""
    return test in (gate.BOOTSTRAP, gate.BOOTSTRAP_BOTH)


def render_gate(results: list[dict], markdown: bool = False) -> str:
    """The gate's table from run-file records (the terminal's, the merged run's and the report's): each gated
    figure with its noise, its baseline, Δ and verdict."""
    header = ["variant", "workload", "metric", "value", "interval", "cv", "baseline", "Δ %", "limit", "verdict"]
    judged = [r for r in results if r.get("verdict")]
    shown = [r for r in judged if r["verdict"]["status"] != "unavailable"]
    body = []
    for r in shown:
        v, b, unit = r["verdict"], r.get("baseline") or {}, r["unit"]
        interval = v.get("interval", v.get("ci95"))  # older run files call it ci95
        samples = r.get("samples") or ()
        if not is_bootstrap(v.get("test")) and samples and r["value"] != Summary.of(samples).median:
            interval = None  # a CI of the median says nothing about a p95 taken from the same samples
        delta = v.get("delta_pct")
        body.append(
            [
                r["variant"],
                r["workload"] or r["test"],
                r["metric"],
                f"{number(r['value'], unit)} {unit}",
                f"{number(interval[0], unit)}–{number(interval[1], unit)}" if interval and len(samples) > 1 else "",
                f"{Summary.of(samples).cv * 100:.0f}%" if len(samples) > 1 else "",
                number(b["value"], unit) if b.get("value") is not None else "",
                f"{delta:+.1f}" if delta is not None else "",
                number(v["limit"], unit) if v.get("limit") is not None else "",
                verdict_text(v["status"], v.get("clear", True), v.get("beyond_limit", False)),
            ]
        )
    if not body:
        text = "no gated figure could be measured here"
    else:
        text = (markdown_table if markdown else text_table)(header, body, 3)
        bootstrap = any(is_bootstrap(r["verdict"].get("test")) for r in shown)
        text += ("\n\n" if markdown else "\n") + GATE_LEGEND + (BOOTSTRAP_LEGEND if bootstrap else "")
    hidden = len(judged) - len(shown)
    if hidden:
        text += f"\n({hidden} gated figures are not measurable here, e.g. VRAM without a GPU: see the run file)"
    return text


def gated_against_file(run: dict[str, Any]) -> list[dict]:
    """The run's records for the gate's table: where the baseline file has nothing for this GPU and model (its
    'baseline_check' says why, in one line), the figures without a baseline are left out rather than listed."""
    if not (run.get("baseline_check") or {}).get("problem"):
        return run["results"]
    return [r for r in run["results"] if (r.get("verdict") or {}).get("status") != gate.NO_BASELINE]


def verdict_counts(results: list[dict]) -> dict[str, int]:
    """How many gated figures of a run's records got each verdict status ('pass', 'fail', 'no baseline', ...)."""
    counts: dict[str, int] = {}
    for r in results:
        if r.get("verdict"):
            counts[r["verdict"]["status"]] = counts.get(r["verdict"]["status"], 0) + 1
    return counts


def verdict_line(run: dict[str, Any], written: str | None = None, markdown: bool = False) -> str:
    """The run's verdict in one line, the last of the terminal summary and the first of the report: 'perfgate: 84
    passed, 1 FAILED, 12 no baseline', what did not run, and the next step where there was nothing to gate against.
    `written`: the baseline file a baseline run wrote, and how many of its entries changed."""
    counts = verdict_counts(run["results"])
    parts = []
    if written:
        parts.append(f"baseline written: {written}; review the diff and commit it")
    elif counts.get(gate.PASS) or not counts.get(gate.NO_BASELINE):
        parts.append(f"{counts.get(gate.PASS, 0)} passed")
    if counts.get(gate.FAIL):
        parts.append(f"{counts[gate.FAIL]} FAILED")
    if counts.get(gate.NO_BASELINE) and not written:
        parts.append(f"{counts[gate.NO_BASELINE]} no baseline")
    if counts.get(gate.UNAVAILABLE):
        parts.append(f"{counts[gate.UNAVAILABLE]} not measurable here")
    errors = run.get("errors") or []
    if errors:
        parts.append(f"{count_tests(errors)} in error")
    if run.get("not_started"):
        parts.append(f"{count_tests(run['not_started'])} not started")
    if run.get("interrupted"):
        parts.append("interrupted")
    line = "perfgate: " + ", ".join(parts)
    next_step = (run.get("baseline_check") or {}).get("next_step")
    if run.get("ab"):  # an A/B run judges the head against the base, never against the baseline file
        line += "; head against base (A/B)"
    elif not written and next_step:
        line += f"; {next_step}"
    elif not written and counts.get(gate.NO_BASELINE):
        line += " (record those with `make baseline`)"
    return line.replace("FAILED", "**FAILED**") if markdown else line


def not_started(tests: list[str], markdown: bool = False) -> str:
    """The tests --perf-session-budget kept from starting, in one line."""
    flag = "`--perf-session-budget`" if markdown else "--perf-session-budget"
    return f"not started, {flag} spent: {count_tests(tests)} ({test_names(tests, markdown)})"


def interrupted(info: dict[str, Any], markdown: bool = False) -> str:
    """The run file's 'interrupted' in one line: why, the tests it stopped (nothing of theirs was recorded, but a
    decode test's rounds before the signal, kept unjudged), and those that never started."""
    text = f"interrupted ({info['reason']})"
    measured = info.get("measured") or []
    if info["during"]:
        text += f" during {test_names(info['during'], markdown)}"
        for m in measured:
            so_far = ", ".join(f"{f['metric']} {number(f['value'], f['unit'])} {f['unit']}" for f in m["figures"])
            text += f"; {test_names([m['test']], markdown)} stopped after {m['rounds']} timed rounds ({so_far})"
        if measured:
            text += "; kept in the run file, not judged"
        if len(info["during"]) > len(measured):
            text += "; the others recorded nothing" if measured else ", which recorded nothing"
    if info["not_run"]:
        text += f"; {count_tests(info['not_run'])} never started ({test_names(info['not_run'], markdown)})"
    return text


def error(info: dict[str, str], markdown: bool = False) -> str:
    """A test of the run file's 'errors' in one line: which, in which phase, and the first line of what it said. A
    setup's error or a call's failure left nothing of the test recorded; a teardown's came after what it recorded."""
    how = {
        "setup": "error in its setup, no gated figure of it recorded",
        "call": "failed, no gated figure of it recorded",
    }.get(info["phase"], f"error in its {info['phase']}")
    first = (info["message"].strip().splitlines() or ["(no message)"])[0]
    name, said = (f"`{info['test']}`", f"`{first}`") if markdown else (info["test"], first)
    return f"{name}: {how}: {said}"


def count_tests(tests: list[str]) -> str:
    """'1 test', '2 tests'."""
    return f"{len(tests)} test{'s' if len(tests) != 1 else ''}"


def test_names(tests: list[str], markdown: bool = False) -> str:
    return ", ".join(f"`{t}`" if markdown else t for t in tests)


def entry_unit(key: str) -> str:
    """The unit of a baseline entry, from its key's metric ('hf-nf4/decode[ctx1024]/decode_tok_per_s' -> 'tok/s')."""
    return metrics.expected_unit(key.rsplit("/", 1)[-1]) or ""


def render_diff(rows: list[tuple]) -> str:
    if not rows:
        return "no entry changed"
    body = [
        [
            key,
            number(old, entry_unit(key)) if old is not None else "(new)",
            number(new, entry_unit(key)),
            f"{delta:+.1f}" if delta is not None else "",
        ]
        for _, key, old, new, delta in rows
    ]
    return text_table(["entry", "old", "new", "Δ %"], body, 1)


def render_noisy(rows: list[tuple[str, float, float, float, float, float]]) -> list[str]:
    """One warning per baseline entry too noisy for its tolerance (perfgate.baselines.too_noisy)."""
    lines = []
    for key, value, lo, hi, tolerance, reach in rows:
        unit = entry_unit(key)
        lines.append(
            f"warning: {key} = {number(value, unit)}: its own 98% interval {number(lo, unit)}–{number(hi, unit)} "
            f"reaches {reach * 100:.0f}% to the worse side, beyond its {tolerance * 100:.0f}% tolerance, after up "
            "to twice --perf-baseline-rounds: written marked too noisy, a gate run holds it to the smallest "
            f"regression it can catch, {(1 - (1 - reach) * (1 - tolerance)) * 100:.0f}%; measure it again with more "
            "rounds (--perf-baseline-rounds)"
        )
    return lines


def render_held_to_floor(results: list[dict]) -> list[str]:
    """One line per gated figure whose baseline entry was written too noisy for its tolerance (its 'too_noisy'
    mark): the smallest regression it can catch, instead of a failure by the entry's chance."""
    lines = []
    for r in results:
        noisy = (r.get("baseline") or {}).get("too_noisy")
        if noisy:
            lines.append(
                f"baseline too noisy: {r['baseline']['key']} cannot catch a regression smaller than "
                f"{noisy['floor'] * 100:.0f}% (its own interval reaches {noisy['reach'] * 100:.0f}% to the worse "
                "side): held to that; measure it again with `make baseline`"
            )
    return lines


def failure_message(
    judged, baseline_path: Path, model: dict, changes: list[str], strict: bool, entry: dict | None = None
) -> str:
    """Which variant, which metric, the value, the baseline, the limit, Δ, how noisy, and what changed (with the
    baseline `entry`'s kernel table, for device figures: the kernels added, removed or slower, by name); for a ratio
    measured in several pairs of worker processes, each pair's value and the rule that failed it."""
    f, v = judged.figure, judged.verdict
    where = f"{f.variant} {f.test}[{f.workload}]" if f.workload else f"{f.variant} {f.test}"
    if f.better == gate.SAME and v.status == gate.FAIL:
        return "\n".join(
            [
                f"{where} {f.metric} = {number(f.value, f.unit)} {f.unit} differs from the baseline "
                f"{number(v.baseline, f.unit)} {f.unit} (a count per token: any change fails; "
                f"Δ {delta_text(v.delta_pct)})",
                *changed_kernels(f, entry),
                f"  baseline: {judged.baseline_key} in {baseline_path}" + (f" ({judged.note})" if judged.note else ""),
                "  changed since the baseline: "
                + ("; ".join(changes) if changes else "nothing recorded (same machine fields and versions)"),
            ]
        )
    if v.status == "no baseline":
        why = judged.note or f"no entry {judged.baseline_key!r} for this model"
        return (
            f"{where} {f.metric} = {number(f.value, f.unit)} {f.unit}: no baseline in {baseline_path} ({why}); "
            "--perf-strict fails figures without a baseline. Record one with `make baseline`."
        )
    side = "below" if f.better == "higher" else "above"
    sign = "-" if f.better == "higher" else "+"
    extra = gate.slack_for(f.metric)
    slack = f" {sign} {number(extra, f.unit)} {f.unit}" if extra else ""
    delta = f"{v.delta_pct:+.1f}%" if v.delta_pct is not None else "n/a"
    noise = f"n={v.n}"
    pairs = f.params.get("process_pairs") or ()
    processes = len(pairs) or 1
    if is_bootstrap(v.test) and v.ci:
        span = f"{number(v.ci[0], f.unit)}–{number(v.ci[1], f.unit)}"
        which = (
            f"98% bootstrap intervals of {processes} pairs of worker processes, combined {span},"
            if processes > 1
            else f"98% bootstrap interval {span}"
        )
        both = " and the baseline run's, each resampled" if v.test == gate.BOOTSTRAP_BOTH else ""
        noise = f"{which} over {v.n} pairs of rounds{both}, per-pair cv {Summary.of(f.samples).cv * 100:.1f}%"
    elif v.ci and v.n > 1:
        noise = (
            f"95% CI of the median {number(v.ci[0], f.unit)}–{number(v.ci[1], f.unit)}, {noise}, "
            f"cv {Summary.of(f.samples).cv * 100:.1f}%"
        )
    if v.test == "exact":
        clarity = "a single measurement, compared exactly"
    elif is_bootstrap(v.test):
        clarity = f"all of the interval is {side} the limit: each process's fast state, alternating rounds"
        if processes > 1:
            clarity += (
                f"; measured in {processes} pairs of worker processes, restarted while undecided "
                f"({gate.pair_values(pairs)})" + (f": it fails at {v.rule}" if v.rule else "")
            )
    else:
        against = "the baseline's samples moved to the limit" if v.test == "mann-whitney" else "the limit"
        clarity = f"one-sided {v.test} test against {against}: p={v.p_worse:.2g}"
    lines = [
        f"{where} {f.metric} = {number(f.value, f.unit)} {f.unit} is {side} the limit {number(v.limit, f.unit)} "
        f"{f.unit} (baseline {number(v.baseline, f.unit)} {sign} {v.tolerance * 100:.0f}%{slack}): "
        f"Δ {delta} ({noise}; {clarity})",
        f"  baseline: {judged.baseline_key} in {baseline_path}"
        + (f" ({judged.note})" if judged.note else "")
        + (f", file updated {model.get('updated_at')}" if model.get("updated_at") else ""),
        "  changed since the baseline: "
        + ("; ".join(changes) if changes else "nothing recorded (same machine fields and versions)"),
    ]
    return "\n".join([*lines[:1], *changed_kernels(f, entry), *lines[1:]])


def delta_text(pct: float | None) -> str:
    return f"{pct:+.2f}%" if pct is not None else "from 0"


def changed_kernels(f: Figure, entry: dict | None) -> list[str]:
    """'  +1/token `void at::native::...`' lines: the kernel (or host call) table of the figure against its
    baseline entry's, where both hold one."""
    for table_key, what in (("kernels", "kernels"), ("calls", "host calls")):
        now, then = f.params.get(table_key), (entry or {}).get("params", {}).get(table_key)
        if now is not None and then is not None:
            lines = diff_tables(now, then, times=f.better != gate.SAME)  # a count's failure: which counts moved
            if lines:
                return [f"  {what} per decode token, against the baseline's:", *(f"    {line}" for line in lines)]
            return [f"  {what} per decode token: the same as the baseline's"]
    return []


def pair_lines(run: dict[str, Any]) -> list[str]:
    """For each ratio measured in several pairs of worker processes (to the reference, or in an A/B run to the base),
    the pairs' values and why they decided as they did: a pass whose value is beyond the limit (one pair far out, the
    next clearly within) reads as a contradiction without them. The rule is the one the verdict was decided by (run
    files before it was recorded name none)."""
    lines = []
    for r in run.get("results", []):
        pairs, v = (r.get("params") or {}).get("process_pairs") or (), r.get("verdict") or {}
        if len(pairs) < 2 or v.get("limit") is None:
            continue
        rule = v.get("pair_rule")
        last_lo, last_hi = pairs[-1]["interval"]
        within = last_lo > v["limit"] if r.get("better") == "higher" else last_hi < v["limit"]
        fastest = gate.fastest_said(r.get("params") or {})
        short = [p for p in pairs if len(p.get("step_p10_s") or ()) < gate.MIN_INTERVAL_SAMPLES_TO_FAIL]
        if v.get("status") == gate.FAIL:
            why = "failed" + (f" at {rule}" if rule else "")
        elif fastest and short:  # (each side's fastest process: a pair counts from 8 pairs of rounds on)
            why = (
                f"passed, undecided: {len(short)} of its pairs stopped short of the "
                f"{gate.MIN_INTERVAL_SAMPLES_TO_FAIL} pairs of rounds a pair needs to count"
            )
        elif within and not fastest:  # (each side's fastest process: every pair counts, whatever the last says)
            why = "passed: the last pair's whole interval is within the limit, which ends the test as a pass"
        else:
            why = "passed" + (f": it fails only at {rule}" if rule else "")
        where = " ".join(x for x in (r.get("variant"), r.get("workload")) if x)
        lines.append(
            f"{where} {r['metric']} over {len(pairs)} pairs of worker processes ({gate.pair_values(pairs)}"
            + (f"; {fastest}" if fastest else "")
            + f"): {why}"
        )
    return lines


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


def time_lines(run: dict[str, Any]) -> list[str]:
    """Where a run's time went (its run file's time_split), for the terminal and the report: the total and its largest
    parts, and each variant's tests' seconds summed; none for a run file without a split."""
    split = run.get("time_split")
    if not split:
        return []
    # a variant of the user's own, as the run loaded or measured it (a report is rendered without the project); each
    # name once, though every result names its variant
    names = tuple({*variants.REGISTRY, *(run.get("variants") or ()), *(r["variant"] for r in run.get("results") or ())})
    by_variant = progress.seconds_by_variant(split.get("tests_s") or {}, names)
    each = ", ".join(f"{v} {s:.0f} s" for v, s in by_variant.items())
    return [phases.summary_line(split), *([f"time by variant (its tests, loads included): {each}"] if each else [])]


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
