"""Faults injected into the workers (PERFGATE_FAULTS) and bad surroundings: each failure says what happened,
the other variants are still measured, and nothing recorded is lost."""

import json

import pytest

FAST = (
    "--perf-contexts=32",
    "--perf-new-tokens=6",
    "--perf-rounds=2",
    "--perf-warmup=1",
    "--benchmark-disable",
    "--perf-reference=none",
    "-k",
    "not fidelity",
)


def last_run(results):
    return json.loads(sorted((results / "runs").glob("*.json"))[-1].read_text())


def figures_of(results, variant):
    run = last_run(results)
    return {(r["test"], r["metric"]): r["value"] for r in run["results"] if r["variant"] == variant}


def test_out_of_memory_while_loading_fails_that_variant_only(run_perf, monkeypatch):
    monkeypatch.setenv("PERFGATE_FAULTS", "hf-nf4@load=oom")
    result = run_perf("--perf-variants=hf-nf4,hf-bf16", *FAST)
    result.assert_outcomes(passed=2, errors=2)  # the loading fixture fails, so pytest counts errors
    result.stdout.fnmatch_lines(
        [
            "hf-nf4: out of memory while loading (it needs about * GiB by estimate, for weights and a KV cache of 38 "
            "tokens); its memory was freed and the other variants go on: RuntimeError: CUDA out of memory*",
        ]
    )
    assert figures_of(run_perf.results, "hf-bf16")[("decode", "decode_tok_per_s")] > 0
    # the run file keeps the two tests that recorded nothing, and what they said; the report's head shows them
    errors = last_run(run_perf.results)["errors"]
    assert [(e["test"], e["phase"]) for e in errors] == [
        ("test_load[hf-nf4]", "setup"),
        ("test_decode[hf-nf4-ctx32]", "setup"),
    ]
    assert all(e["message"].startswith("hf-nf4: out of memory while loading") for e in errors)
    report = next((run_perf.results / "reports").glob("*.md")).read_text()
    assert "**`test_load[hf-nf4]`: error in its setup, no gated figure of it recorded: `hf-nf4: out of memory" in report


def test_a_run_where_every_test_failed_still_leaves_its_run_file_and_report(run_perf, monkeypatch):
    monkeypatch.setenv("PERFGATE_FAULTS", "hf-nf4@load=oom")
    result = run_perf("--perf-variants=hf-nf4", *FAST)
    result.assert_outcomes(errors=2)
    run = last_run(run_perf.results)
    assert run["results"] == [] and [e["test"] for e in run["errors"]] == [
        "test_load[hf-nf4]",
        "test_decode[hf-nf4-ctx32]",
    ]
    report = next((run_perf.results / "reports").glob("*.md")).read_text()
    assert "`test_decode[hf-nf4-ctx32]`: error in its setup" in report
    result.stdout.fnmatch_lines(["not measured: hf-nf4: out of memory while loading*", "run file: *_cpu.json"])


def test_out_of_memory_while_generating(run_perf, monkeypatch):
    monkeypatch.setenv("PERFGATE_FAULTS", "hf-nf4@generate=oom")
    result = run_perf("--perf-variants=hf-nf4,hf-fp32", *FAST)
    result.assert_outcomes(passed=3, failed=1)
    result.stdout.fnmatch_lines(["hf-nf4 ctx32 (32 prompt + 6 new tokens): out of memory while generating*"])
    [error] = last_run(run_perf.results)["errors"]  # failed by the fault, not by the gate
    assert (error["test"], error["phase"]) == ("test_decode[hf-nf4-ctx32]", "call")
    assert "out of memory while generating" in error["message"]


def test_a_package_that_fails_to_import_skips_its_variant(run_perf, monkeypatch):
    monkeypatch.setenv("PERFGATE_FAULTS", "hf-nf4@load=import")
    result = run_perf("--perf-variants=hf-nf4,hf-fp32", *FAST)
    result.assert_outcomes(passed=2, skipped=2)
    result.stdout.fnmatch_lines(
        [
            "SKIPPED*hf-nf4: bitsandbytes failed to import (*No module named 'bitsandbytes'*); "
            "install or repair it: pip install bitsandbytes*"
        ]
    )


@pytest.mark.parametrize(
    ("limit", "message"),
    [
        (
            "--perf-timeout=15",
            "hf-fp32 ctx32 *: worker hf-fp32: 'generate' gave no answer within 15 s; the worker was killed*",
        ),
        ("--timeout=20", "*Failed: Timeout (>20.0s) from pytest-timeout.*"),  # pytest-timeout, per test
    ],
    ids=["perf-timeout", "pytest-timeout"],
)
def test_a_hung_generation_fails_its_test_and_the_session_goes_on(run_perf, monkeypatch, limit, message):
    monkeypatch.setenv("PERFGATE_FAULTS", "hf-fp32@generate=hang")
    result = run_perf("--perf-variants=hf-fp32,hf-bf16", *FAST, limit)
    result.assert_outcomes(passed=3, failed=1)
    result.stdout.fnmatch_lines([message])
    assert figures_of(run_perf.results, "hf-bf16")[("decode", "decode_tok_per_s")] > 0


def test_a_crashed_worker_is_reported(run_perf, monkeypatch):
    monkeypatch.setenv("PERFGATE_FAULTS", "hf-fp32@generate=crash")
    result = run_perf("--perf-variants=hf-fp32", *FAST)
    result.assert_outcomes(passed=1, failed=1)
    result.stdout.fnmatch_lines(["hf-fp32 ctx32 *: worker hf-fp32 died during 'generate' (exit code 3)*"])


def test_a_model_that_stops_early_fails_with_the_counts(run_perf, monkeypatch):
    monkeypatch.setenv("PERFGATE_FAULTS", "hf-fp32@load=short")
    result = run_perf("--perf-variants=hf-fp32", *FAST)
    result.assert_outcomes(passed=1, failed=1)
    result.stdout.fnmatch_lines(
        [
            "hf-fp32 ctx32 *: ShortGeneration: asked for 6 new tokens, generate returned 3; "
            "no tokens/s is computed from a wrong count"
        ]
    )
    assert ("decode", "decode_tok_per_s") not in figures_of(run_perf.results, "hf-fp32")


def test_an_unwritable_results_folder_does_not_change_the_outcome(run_perf, tmp_path):
    blocker = tmp_path / "not-a-folder"
    blocker.write_text("a file where the results folder should be")
    result = run_perf("--perf-variants=hf-fp32", *FAST, f"--perf-results-dir={blocker}")
    result.assert_outcomes(passed=2)
    result.stdout.fnmatch_lines([f"could not write the run file {blocker}/runs/*_cpu.json: *"])


def test_a_baseline_of_another_gpu_is_never_used(run_perf):
    other = run_perf.results / "baselines" / "nvidia-h200.json"
    other.parent.mkdir(parents=True)
    other.write_text('{"schema": 1, "models": {}}')
    result = run_perf("--perf-variants=hf-fp32", *FAST)
    result.assert_outcomes(passed=2)
    result.stdout.fnmatch_lines(
        ["baseline: results/baselines/cpu.json does not exist", "perfgate: * no baseline*; no baseline for cpu / *"]
    )
