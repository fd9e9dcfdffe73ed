"""Faults injected into the workers (PERFGATE_FAULTS) and bad surroundings: each failure says what happened,
the other variants are still measured, and nothing recorded is lost."""

from types import SimpleNamespace

import pytest

from tests.terminal import last_run

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


def figures_of(results, variant):
    run = last_run(results)
    return {(r["test"], r["metric"]): r["value"] for r in run["results"] if r["variant"] == variant}


# the tests that read the module-scoped run below: on one pytest-xdist worker (make test: --dist loadgroup), so that
# the run is made once
SHARED_RUN = pytest.mark.xdist_group("faults")

# One run with a fault in each variant but the last (variants run in registry order, each in a worker of its own),
# which the tests below read, each its own variant's part: the session goes on after each fault. The baselines
# folder holds another GPU's file only.
FAULTS = {
    "hf-fp16": "load=short",
    "hf-bf16": "generate=oom",
    "hf-fp32": "generate=crash",
    "hf-int8": "load=import",
    "hf-nf4": "load=oom",
    "hf-bf16-static": None,
}


def outcomes(result: pytest.RunResult) -> dict[str, str]:
    """Each test's outcome as -v prints it: {"test_load[hf-fp16]": "PASSED", ...}."""
    said = {}
    for line in result.outlines:
        name, _, rest = line.partition(" ")
        word = rest.split(" ")[0]
        if "::" in name and word in ("PASSED", "FAILED", "ERROR", "SKIPPED"):
            said[name.split("::")[1]] = word
    return said


@pytest.fixture(scope="module")
def faulty(run_perf_shared):
    """The run of FAULTS, made once for the module: its output, each test's outcome, run file and report."""
    other = run_perf_shared.results / "baselines" / "nvidia-h200.json"
    other.parent.mkdir(parents=True)
    other.write_text('{"schema": 1, "models": {}}')
    faults = ",".join(f"{variant}@{fault}" for variant, fault in FAULTS.items() if fault)
    result = run_perf_shared(f"--perf-variants={','.join(FAULTS)}", *FAST, "-v", PERFGATE_FAULTS=faults)
    [report] = (run_perf_shared.results / "reports").glob("*.md")
    return SimpleNamespace(
        result=result,
        outcomes=outcomes(result),
        run=last_run(run_perf_shared.results),
        figures=lambda variant: figures_of(run_perf_shared.results, variant),
        report=report.read_text(),
    )


def outcomes_of(faulty, variant: str) -> tuple[str, str]:
    """(load, decode) outcomes of a variant in the faulty run."""
    return faulty.outcomes[f"test_load[{variant}]"], faulty.outcomes[f"test_decode[{variant}-ctx32]"]


def errors_of(faulty, variant: str) -> list[dict]:
    """The run file's errors of a variant's tests in the faulty run."""
    return [e for e in faulty.run["errors"] if e["test"] in (f"test_load[{variant}]", f"test_decode[{variant}-ctx32]")]


@SHARED_RUN
def test_the_variants_after_the_faults_are_measured_and_each_error_is_recorded_once(faulty):
    assert len(faulty.outcomes) == 2 * len(FAULTS), faulty.outcomes
    assert outcomes_of(faulty, "hf-bf16-static") == ("PASSED", "PASSED")
    assert faulty.figures("hf-bf16-static")[("decode", "decode_tok_per_s")] > 0
    # the tests that recorded nothing, with the phase they failed in: failed by the faults, not by the gate (there
    # is no baseline), and the skipped variant's tests are no errors
    assert sorted((e["test"], e["phase"]) for e in faulty.run["errors"]) == [
        ("test_decode[hf-bf16-ctx32]", "call"),
        ("test_decode[hf-fp16-ctx32]", "call"),
        ("test_decode[hf-fp32-ctx32]", "call"),
        ("test_decode[hf-nf4-ctx32]", "setup"),
        ("test_load[hf-nf4]", "setup"),
    ]


@SHARED_RUN
def test_out_of_memory_while_loading_fails_that_variant_only(faulty):
    assert outcomes_of(faulty, "hf-nf4") == ("ERROR", "ERROR")  # the loading fixture fails, so pytest counts errors
    faulty.result.stdout.fnmatch_lines(
        [
            "hf-nf4: out of memory while loading (it needs about * GiB by estimate, for weights and a KV cache of 38 "
            "tokens); its memory was freed and the other variants go on: RuntimeError: CUDA out of memory*",
        ]
    )
    # the run file keeps the two tests that recorded nothing, and what they said; the report's head shows them
    errors = errors_of(faulty, "hf-nf4")
    assert [(e["test"], e["phase"]) for e in errors] == [
        ("test_load[hf-nf4]", "setup"),
        ("test_decode[hf-nf4-ctx32]", "setup"),
    ]
    assert all(e["message"].startswith("hf-nf4: out of memory while loading") for e in errors)
    said = "**`test_load[hf-nf4]`: error in its setup, no gated figure of it recorded: `hf-nf4: out of memory"
    assert said in faulty.report


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


@SHARED_RUN
def test_out_of_memory_while_generating(faulty):
    assert outcomes_of(faulty, "hf-bf16") == ("PASSED", "FAILED")
    faulty.result.stdout.fnmatch_lines(["hf-bf16 ctx32 (32 prompt + 6 new tokens): out of memory while generating*"])
    [error] = errors_of(faulty, "hf-bf16")  # failed by the fault, not by the gate
    assert (error["test"], error["phase"]) == ("test_decode[hf-bf16-ctx32]", "call")
    assert "out of memory while generating" in error["message"]


@SHARED_RUN
def test_a_package_that_fails_to_import_skips_its_variant(faulty):
    assert outcomes_of(faulty, "hf-int8") == ("SKIPPED", "SKIPPED")
    faulty.result.stdout.fnmatch_lines(
        [
            "SKIPPED*hf-int8: bitsandbytes failed to import (*No module named 'bitsandbytes'*); "
            "install or repair it: pip install bitsandbytes*"
        ]
    )


@pytest.mark.parametrize(
    ("limit", "message"),
    [
        (  # per worker call, once the worker is up (a forked one waits for the zygote's imports outside it); the
            # other calls here take well under a second
            ("--perf-timeout=4",),
            "hf-fp32 ctx32 *: worker hf-fp32: 'generate' gave no answer within 4 s; the worker was killed*",
        ),
        # pytest-timeout, per test, on its call alone: the first test_load's setup holds the zygote's imports (5-8 s
        # on two busy cores), which would otherwise set the limit; every call here takes under a second
        (("--timeout=5", "-o", "timeout_func_only=true"), "*Failed: Timeout (>5.0s) from pytest-timeout.*"),
    ],
    ids=["perf-timeout", "pytest-timeout"],
)
def test_a_hung_generation_fails_its_test_and_the_session_goes_on(run_perf, monkeypatch, limit, message):
    monkeypatch.setenv("PERFGATE_FAULTS", "hf-fp32@generate=hang")
    result = run_perf("--perf-variants=hf-fp32,hf-bf16", *FAST, *limit)
    result.assert_outcomes(passed=3, failed=1)
    result.stdout.fnmatch_lines([message])
    assert figures_of(run_perf.results, "hf-bf16")[("decode", "decode_tok_per_s")] > 0


@SHARED_RUN
def test_a_crashed_worker_is_reported(faulty):
    assert outcomes_of(faulty, "hf-fp32") == ("PASSED", "FAILED")
    faulty.result.stdout.fnmatch_lines(["hf-fp32 ctx32 *: worker hf-fp32 died during 'generate' (exit code 3)*"])


@SHARED_RUN
def test_a_model_that_stops_early_fails_with_the_counts(faulty):
    assert outcomes_of(faulty, "hf-fp16") == ("PASSED", "FAILED")
    faulty.result.stdout.fnmatch_lines(
        [
            "hf-fp16 ctx32 *: ShortGeneration: asked for 6 new tokens, generate returned 3; "
            "no tokens/s is computed from a wrong count"
        ]
    )
    assert ("decode", "decode_tok_per_s") not in faulty.figures("hf-fp16")


def test_an_unwritable_results_folder_does_not_change_the_outcome(run_perf, tmp_path):
    blocker = tmp_path / "not-a-folder"
    blocker.write_text("a file where the results folder should be")
    result = run_perf("--perf-variants=hf-fp32", *FAST, f"--perf-results-dir={blocker}")
    result.assert_outcomes(passed=2)
    result.stdout.fnmatch_lines([f"could not write the run file {blocker}/runs/*_cpu.json: *"])


@SHARED_RUN
def test_a_baseline_of_another_gpu_is_never_used(faulty):
    assert faulty.run["baseline_check"]["problem"] == "results/baselines/cpu.json does not exist"
    gated = [r for r in faulty.run["results"] if r.get("verdict", {}).get("status") not in (None, "unavailable")]
    assert gated and all(r["verdict"]["status"] == "no baseline" for r in gated)  # judged against nothing
    faulty.result.stdout.fnmatch_lines(
        ["baseline: results/baselines/cpu.json does not exist", "perfgate: * no baseline*; no baseline for cpu / *"]
    )
