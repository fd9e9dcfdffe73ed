"""The perf tests end to end in a child pytest, as `make perf` runs them: on the tiny model, the CPU's default, once,
and on the micro model where the size of the model does not matter."""

import json
import shutil
import signal
import time
from types import SimpleNamespace

import pytest

from tests.terminal import perfgate_lines

# the tests that share a module-scoped child run: on one pytest-xdist worker (make test: --dist loadgroup), so that
# the run is made once
SHARED_RUN = pytest.mark.xdist_group("perf_suite")

FAST = ("--perf-contexts=32,64", "--perf-new-tokens=4", "--perf-rounds=2", "--perf-warmup=1")


def run_file(results):
    files = sorted((results / "runs").glob("*_cpu.json"))
    assert len(files) == 1, files
    return json.loads(files[0].read_text())


@pytest.fixture(scope="module")
def tiny_run(run_perf_shared, tiny_checkpoint):
    """The perf suite as `make perf` runs it on the CPU, on its default model (synthetic:qwen3-tiny), shortened:
    three variants, named out of registry order, one of which cannot run here; measured once for the module."""
    variants = "--perf-variants=unsloth-4bit,hf-nf4,hf-fp32"
    result = run_perf_shared("--perf-model=synthetic:qwen3-tiny", variants, *FAST, "--perf-plots=true", "-v")
    return SimpleNamespace(result=result, run=run_file(run_perf_shared.results))


@SHARED_RUN
def test_measures_prints_the_table_and_writes_a_run_file(tiny_run):
    result = tiny_run.result
    result.assert_outcomes(passed=8, skipped=4)  # load, decode x2 and fidelity for each variant
    result.stdout.fnmatch_lines(
        [
            "*synthetic:qwen3-tiny on cpu*",
            "variant*workload*decode tok/s*TTFT s*peak VRAM MiB*",
            "hf-fp32*ctx32*n/a*",
            "hf-nf4*ctx64*",
            "run file: *_cpu.json",
        ]
    )
    result.stdout.fnmatch_lines(["SKIPPED*unsloth-4bit needs a CUDA GPU*"])
    run = tiny_run.run
    assert run["machine"]["gpu"] == "cpu" and run["machine"]["versions"]["transformers"]
    assert run["worker_layout"].startswith("PYTHONHASHSEED=0")  # --perf-worker-layout fixed, the default
    assert run["model"] == {"source": "synthetic:qwen3-tiny", "kind": "synthetic", "parameters": 39683456}
    assert set(run["variants"]) == {"hf-fp16", "hf-fp32", "hf-nf4"}  # hf-fp16: the reference beside them
    decode = [r for r in run["results"] if r["metric"] == "decode_tok_per_s"]
    assert {(r["variant"], r["workload"]) for r in decode} == {
        ("hf-fp32", "ctx32"),
        ("hf-fp32", "ctx64"),
        ("hf-nf4", "ctx32"),
        ("hf-nf4", "ctx64"),
    }
    for r in decode:
        assert r["unit"] == "tok/s" and r["better"] == "higher" and len(r["samples"]) == 2
        assert r["value"] == r["stats"]["median"] > 0
        assert r["params"]["prompt_tokens"] == int(r["workload"][3:])
        assert (r["params"]["new_tokens"], r["params"]["rounds"], r["params"]["reference"]) == (4, 2, "hf-fp16")
    vram = next(r for r in run["results"] if r["metric"] == "peak_vram_mib")
    assert vram["value"] is None and "no CUDA device" in vram["unavailable"]


@SHARED_RUN
def test_each_variant_loads_once_in_variant_order(tiny_run):
    lines = [x.split(" ")[0].split("::")[1] for x in tiny_run.result.outlines if "PASSED" in x]
    assert lines == [
        "test_load[hf-fp32]",
        "test_decode[hf-fp32-ctx32]",
        "test_decode[hf-fp32-ctx64]",
        "test_fidelity[hf-fp32]",
        "test_load[hf-nf4]",
        "test_decode[hf-nf4-ctx32]",
        "test_decode[hf-nf4-ctx64]",
        "test_fidelity[hf-nf4]",
    ]


@SHARED_RUN
def test_a_fresh_clone_says_there_is_no_baseline_and_what_to_do_last(tiny_run):
    # the tiny run is a fresh clone's `make perf`: no baseline file yet (tests/test_setup_errors.py: one that is not
    # this machine's)
    shown = perfgate_lines(tiny_run.result)
    baseline = "results/baselines/cpu.json"  # as the user names it, from the folder pytest ran in
    assert f"baseline: {baseline} does not exist" in shown
    assert not any("gate against" in line or "no baseline (recorded only)" in line for line in shown)
    assert shown[-1].startswith("perfgate: ") and " no baseline" in shown[-1]
    assert shown[-1].endswith(
        f"; no baseline for cpu / synthetic:qwen3-tiny: run `make baseline` and commit {baseline}"
    )


@pytest.fixture
def short_model(micro_checkpoint, tmp_path):
    """A real checkpoint folder whose config allows only 2048 positions."""
    folder = tmp_path / "short-model"
    shutil.copytree(micro_checkpoint, folder)
    config = json.loads((folder / "config.json").read_text())
    (folder / "config.json").write_text(json.dumps(dict(config, max_position_embeddings=2048)))
    return folder


def test_a_default_context_beyond_the_model_is_skipped_before_loading(run_perf, short_model):
    result = run_perf(
        f"--perf-model={short_model}", "--perf-variants=hf-fp32", "--perf-new-tokens=4", "-k", "decode and ctx4096"
    )
    result.assert_outcomes(skipped=1)
    result.stdout.fnmatch_lines(["SKIPPED*4096 prompt + 4 new tokens exceed the model's context of 2048*"])


def test_an_explicit_context_beyond_the_model_is_a_usage_error(run_perf, short_model):
    result = run_perf(f"--perf-model={short_model}", "--perf-contexts=1024,4096", "--perf-new-tokens=4")
    assert result.ret == 4
    result.stderr.fnmatch_lines(["*--perf-contexts: 4096 prompt + 4 new tokens exceed the model's context of 2048*"])


def test_a_model_that_is_nothing_is_a_usage_error(run_perf):
    result = run_perf("--perf-model=not-a-model-anywhere")
    assert result.ret == 4
    result.stderr.fnmatch_lines(["*--perf-model 'not-a-model-anywhere' is neither a folder, a hub id*"])


def test_unknown_variant_is_a_usage_error(run_perf):
    result = run_perf("--perf-variants=hf-fp16,hf-fp9")
    assert result.ret == 4  # pytest's usage error
    result.stderr.fnmatch_lines(["*unknown variant(s) hf-fp9; known: hf-fp16, hf-bf16*"])


def test_bad_number_is_a_usage_error(run_perf):
    result = run_perf("--perf-rounds=0")
    assert result.ret == 4
    result.stderr.fnmatch_lines(["*--perf-rounds (from --perf-rounds) = '0': must be a whole number of at least 1*"])


def test_a_spent_session_budget_skips_the_rest_and_keeps_what_was_measured(run_perf):
    # the first load starts well inside 2 s of the run's start and takes longer (a worker imports torch)
    result = run_perf(
        "--perf-variants=hf-fp32,hf-nf4", "--perf-reference=none", "-k", "load", "--perf-session-budget=2"
    )
    result.assert_outcomes(passed=1, skipped=1)
    result.stdout.fnmatch_lines(
        [
            "not started, --perf-session-budget spent: 1 test (test_load[[]hf-nf4])",
            "SKIPPED*--perf-session-budget 2 s spent (* s since the run began): not started*",
        ]
    )
    run = run_file(run_perf.results)
    assert run["not_started"] == ["test_load[hf-nf4]"]
    assert run["interrupted"] is None  # cut by the budget, and ended as a run does
    assert {r["variant"] for r in run["results"]} == {"hf-fp32"}


def test_sigterm_ends_the_run_like_ctrl_c_and_keeps_what_was_measured(run_perf):
    proc = run_perf.popen("--perf-variants=hf-fp32,hf-nf4", "--perf-reference=none", "-k", "load", "-v")
    seen = run_perf.read_until(proc, b"PASSED")  # the first test passed; the second is loading when the signal comes
    proc.send_signal(signal.SIGTERM)
    output = (seen + proc.stdout.read()).decode()  # pytester's popen has closed stdin: no communicate()
    proc.wait(timeout=120)
    assert proc.returncode == 2, output  # pytest's "interrupted"
    assert "KeyboardInterrupt" in output and "signal SIGTERM" in output, output
    run = run_file(run_perf.results)
    assert {r["variant"] for r in run["results"]} == {"hf-fp32"}
    assert "run file: " in output  # the summary was printed as after any run
    # the run file says it was cut short, and where: the second load was running (or, if the signal came in the
    # first test's teardown, had not started); the first, which the terminal said PASSED, is done
    stopped = run["interrupted"]
    assert stopped["reason"] == "signal SIGTERM"
    assert stopped["during"] + stopped["not_run"] == ["test_load[hf-nf4]"], stopped
    # the seconds of the test that finished and of the one stopped (the run spent them), of none that never ran
    assert set(run["time_split"]["tests_s"]) == {"test_load[hf-fp32]", *stopped["during"]}, run["time_split"]
    assert "interrupted (signal SIGTERM)" in output
    report = next((run_perf.results / "reports").glob("*_cpu.md")).read_text()
    assert "**interrupted (signal SIGTERM)" in report and "`test_load[hf-nf4]`" in report


@pytest.mark.parametrize("hook", ["pytest_runtest_logstart", "pytest_runtest_logreport"])
def test_perfgate_sees_a_test_start_and_end_before_the_terminal_says_so(pytestconfig, hook):
    # a SIGTERM right after '-v' printed PASSED must not find the passed test still running; pluggy calls the hook
    # implementations last to first, so perfgate's must come after the terminal reporter's in this list
    order = [impl.plugin_name for impl in getattr(pytestconfig.pluginmanager.hook, hook).get_hookimpls()]
    assert order.index("perfgate-progress") > order.index("terminalreporter"), order


def test_sigterm_before_any_test_finished_still_leaves_a_run_file_saying_so(run_perf):
    # a run of one test stopped by its command's deadline (as on the H200, by `timeout`) must still leave a run file
    proc = run_perf.popen("--perf-variants=hf-nf4", "--perf-reference=none", "-k", "load", "-v")
    seen = run_perf.read_until(proc, b"test_load[hf-nf4]")  # -v names the test as it starts: it is loading then
    proc.send_signal(signal.SIGTERM)
    output = (seen + proc.stdout.read()).decode()
    proc.wait(timeout=120)
    assert proc.returncode == 2, output
    run = run_file(run_perf.results)
    assert run["results"] == [] and run["errors"] == []
    stopped = run["interrupted"]  # perfgate saw the test start before the terminal named it
    assert stopped == {"reason": "signal SIGTERM", "during": ["test_load[hf-nf4]"], "not_run": []}, stopped
    assert "interrupted (signal SIGTERM)" in output
    assert "run file: " in output
    report = next((run_perf.results / "reports").glob("*_cpu.md")).read_text()
    assert "**interrupted (signal SIGTERM)" in report


def test_an_interrupted_run_of_perfgates_own_tests_leaves_no_run_file(pytester, tmp_path):
    # this conftest is loaded for tests/ too: `make test` stopped by SIGTERM must not leave a run file in results/runs/
    # that names none of perf_tests/
    from perfgate import paths

    pytester.makepyfile(interrupter='def pytest_runtest_call(item):\n    raise KeyboardInterrupt("signal SIGTERM")\n')
    results = tmp_path / "results"
    result = pytester.runpytest_subprocess(
        str(paths.REPO_ROOT / "tests" / "test_stats.py"), f"--rootdir={paths.REPO_ROOT}", "-p", "no:cacheprovider",
        "-p", "interrupter", f"--perf-results-dir={results}", "--perf-device=cpu",
    )  # fmt: skip
    assert result.ret == 2, result.stdout.str()  # interrupted
    assert not list(results.rglob("*.*")), list(results.rglob("*.*"))
    assert "run file" not in result.stdout.str()


def test_sigterm_during_decode_rounds_keeps_what_they_measured_unjudged(run_perf, monkeypatch, tmp_path):
    steps = tmp_path / "steps.jsonl"
    monkeypatch.setenv("PERFGATE_STEP_LOG", str(steps))  # one line per timed round: when to send the signal
    proc = run_perf.popen(
        "--perf-variants=hf-fp32", "--perf-reference=none", "--perf-contexts=32", "--perf-new-tokens=6",
        "--perf-rounds=500", "--benchmark-disable", "-k", "decode",
    )  # fmt: skip
    deadline = time.monotonic() + 300
    while not steps.exists() or len(steps.read_text().splitlines()) < 3:
        assert proc.poll() is None and time.monotonic() < deadline, proc.stdout.read().decode()
        time.sleep(0.2)
    proc.send_signal(signal.SIGTERM)
    output = proc.stdout.read().decode()
    proc.wait(timeout=120)
    assert proc.returncode == 2, output
    run = run_file(run_perf.results)
    assert run["results"] == []  # nothing judged: too few rounds for the test's own rules
    [measured] = run["interrupted"]["measured"]
    assert (measured["variant"], measured["workload"], measured["process_pairs"]) == ("hf-fp32", "ctx32", 1)
    assert measured["rounds"] >= 3
    assert {f["metric"] for f in measured["figures"]} == {"decode_tok_per_s", "ttft_s"}
    assert all(len(f["samples"]) == measured["rounds"] for f in measured["figures"])
    said = f"during test_decode[hf-fp32-ctx32]; test_decode[hf-fp32-ctx32] stopped after {measured['rounds']} timed"
    assert f"{said} rounds (decode_tok_per_s" in output


def test_help_lists_every_option(run_perf):
    from perfgate import options

    result = run_perf("--help")
    assert result.ret == 0, result.stderr.str()
    text = result.stdout.str()
    assert all(opt.flag in text for opt in options.OPTIONS)
    result.stdout.fnmatch_lines(["*--perf-canary-slowdown*", "*0% makes the canary an*"])
