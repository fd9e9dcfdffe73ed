"""Several GPUs: pytest-xdist workers, one GPU each, variants grouped per worker, one merged run file and one
baseline update (two workers on the CPU here)."""

import json
import os
import re
import signal
import subprocess
import sys
import time
from types import SimpleNamespace

import pytest

from perfgate import parallel, progress, runfile

# the tests that share a module-scoped child run: on one pytest-xdist worker (make test: --dist loadgroup), so that
# the run is made once
SHARED_RUN = pytest.mark.xdist_group("parallel")

FAST = ("--perf-contexts=32", "--perf-new-tokens=6", "--perf-rounds=3", "--benchmark-disable", "-k", "not fidelity")
# Two pytest workers on a 2-core machine: a reference alternating beside each would make four processes share two
# cores, and ratios measured that way are noise; these tests are about spreading and merging, so no reference.
SPREAD = ("-n", "2", "--dist", "loadgroup", "--perf-reference=none")


def test_each_worker_takes_its_own_gpu(monkeypatch):
    monkeypatch.delenv("PYTEST_XDIST_WORKER_COUNT", raising=False)  # this test's own process keeps its cores
    for worker, gpu in (("gw0", "3"), ("gw1", "5"), ("gw2", "3")):  # each worker is a process of its own
        monkeypatch.setenv("CUDA_VISIBLE_DEVICES", "3,5")
        assert parallel.pin_worker(worker) == gpu
        assert parallel.visible_gpus() == [gpu]  # what its model workers inherit
    monkeypatch.setenv("CUDA_VISIBLE_DEVICES", "")
    assert parallel.pin_worker("gw0") is None  # no GPU: nothing to pin


def test_workers_sharing_a_gpu_are_named():
    workers = {
        "gw0": {"gpu": "0", "variants": ["hf-bf16"]},
        "gw1": {"gpu": "0", "variants": ["unsloth-bf16"]},
        "gw2": {"gpu": "1", "variants": ["hf-fp16"]},
    }
    assert parallel.shared_gpus(workers) == {"0": ["gw0", "gw1"]}
    assert parallel.shared_gpus({"gw0": {"gpu": None}, "gw1": {"gpu": None}}) == {}  # CPU workers share no GPU


def test_the_summary_warns_when_workers_shared_a_gpu():
    from perfgate import display

    lines = []
    reporter = SimpleNamespace(write_line=lambda text, **kw: lines.append(text), write_sep=lambda *a, **kw: None)
    perf = SimpleNamespace(
        machine={"gpu": "NVIDIA H200", "versions": {"torch": "2.11.0", "transformers": "5.17.0"}},
        model=SimpleNamespace(source="synthetic:qwen3-14b"),
        figures=[],
        merged={
            "parallel": {"workers": {"gw0": {"gpu": "0", "variants": ["a"]}, "gw1": {"gpu": "0", "variants": ["b"]}}}
        },
    )
    display.show_figures(perf, {}, reporter)
    assert any(line.startswith("warning: gw0 and gw1 shared GPU 0: ") for line in lines), lines


@pytest.fixture(scope="module")
def spread_update(run_perf_shared):
    """A baseline update spread over two workers, run once for the module: its output, run file and baseline."""
    result = run_perf_shared("--perf-update-baselines", "--perf-variants=hf-fp32,hf-bf16", *FAST, *SPREAD)
    return SimpleNamespace(result=result, results=run_perf_shared.results)


@SHARED_RUN
def test_two_workers_measure_each_variant_once_and_merge_into_one_run(spread_update):
    result = spread_update.result
    result.assert_outcomes(passed=4)
    result.stdout.fnmatch_lines(["spread over gw0 (no GPU: *), gw1 (no GPU: *)", "run file: *_cpu.json"])
    runs = list((spread_update.results / "runs").glob("*.json"))
    assert len(runs) == 1 and not list((spread_update.results / "runs" / ".parts").glob("*"))  # merged, removed
    run = json.loads(runs[0].read_text())
    workers = run["parallel"]["workers"]
    assert sorted(v for w in workers.values() for v in w["variants"]) == ["hf-bf16", "hf-fp32"]  # once each
    assert {(r["variant"], r["test"]) for r in run["results"]} >= {("hf-fp32", "decode"), ("hf-bf16", "load")}
    assert (spread_update.results / "reports" / f"{runs[0].stem}.md").exists()
    split = run["time_split"]  # each worker's kept, their seconds summed per part, the controller's wall time
    assert sorted(split["workers"]) == ["gw0", "gw1"] and split["wall_s"] > 0
    assert split["total_s"] == pytest.approx(sum(w["total_s"] for w in split["workers"].values()), abs=0.01)
    assert sum(split["parts_s"].values()) == pytest.approx(split["total_s"], rel=0.05)
    result.stdout.fnmatch_lines(["time: * s summed over 2 workers (* s of wall time), most in *"])
    # each test's seconds from the worker that ran it, the variants' with them
    assert {progress.variant_of(t) for t in split["tests_s"]} == {"hf-bf16", "hf-fp32"}
    for w, part in split["workers"].items():  # each worker's own tests, of the variants it measured
        assert {progress.variant_of(t) for t in part["tests_s"]} == set(workers[w]["variants"]), (w, part)
    assert all(
        split["tests_s"][t] <= split["workers"][w]["total_s"] for w in workers for t in split["workers"][w]["tests_s"]
    )
    result.stdout.fnmatch_lines(["time by variant (its tests, loads included): *hf-*, hf-* s"])


CORRUPT_PART = """
import pytest

@pytest.hookimpl(tryfirst=True)
def pytest_sessionfinish(session):
    if not hasattr(session.config, "workerinput"):  # the controller, before it merges: a part it cannot read
        perf = session.config.pluginmanager.get_plugin("perfgate-progress").perf
        folder = perf.results_dir / "runs" / ".parts"
        folder.mkdir(parents=True, exist_ok=True)
        (folder / (perf.parallel["run"] + "_gw7.json")).write_text('{"results": [')
"""


def test_a_workers_error_is_kept_once_and_a_part_the_controller_cannot_read_is_named(run_perf, pytester, monkeypatch):
    # one run: a worker's error, and a part of the run (as if from a worker gw7) that the controller cannot read
    pytester.makepyfile(corrupt_part=CORRUPT_PART)
    monkeypatch.setenv("PERFGATE_FAULTS", "hf-bf16@load=oom")
    load = ("--perf-contexts=32", "-k", "load", *SPREAD)
    result = run_perf("--perf-variants=hf-fp32,hf-bf16", *load, "-p", "corrupt_part")
    result.assert_outcomes(passed=1, errors=1)  # the tests' verdicts stand; the run file says what it could not merge
    [run] = [json.loads(p.read_text()) for p in (run_perf.results / "runs").glob("*.json")]
    assert {r["variant"] for r in run["results"]} == {"hf-fp32"}  # the readable parts were merged
    # the controller's record of the worker's error: the worker's own report is not counted again
    [error, unread] = run["errors"]
    assert (error["test"], error["phase"]) == ("test_load[hf-bf16]", "setup")
    assert error["message"].startswith("hf-bf16: out of memory while loading")
    assert unread["test"].endswith("_gw7.json") and unread["phase"] == "merge", unread
    assert (
        unread["message"].startswith("could not read this worker's part of the run (")
        and "JSONDecodeError" in (unread["message"])
    )
    assert [p.name for p in (run_perf.results / "runs" / ".parts").glob("*")] == [unread["test"]]  # left there
    result.stdout.fnmatch_lines(["*_gw7.json: error in its merge: could not read this worker's part*"])
    # every worker failed: the controller still writes the run file, with the errors and no figures
    result = run_perf("--perf-variants=hf-bf16", *load)
    result.assert_outcomes(errors=1)
    runs = sorted((run_perf.results / "runs").glob("*.json"))
    assert len(runs) == 2, runs
    run = json.loads(runs[-1].read_text())
    assert run["results"] == [] and [e["test"] for e in run["errors"]] == ["test_load[hf-bf16]"]
    result.stdout.fnmatch_lines(["test_load[[]hf-bf16[]]: error in its setup*", "run file: *_cpu.json"])


def test_a_spread_run_stopped_before_any_test_finished_still_leaves_its_run_file(run_perf):
    proc = run_perf.popen("--perf-variants=hf-fp32", "--perf-contexts=32", "--perf-rounds=200", "-k", "decode", *SPREAD)
    seen = run_perf.read_until(proc, b"workers [1 item]")  # the workers have collected; one is loading or measuring
    time.sleep(3)
    proc.send_signal(signal.SIGTERM)
    output = (seen + proc.stdout.read()).decode()
    proc.wait(timeout=120)
    assert proc.returncode == 2, output
    [run] = [json.loads(p.read_text()) for p in (run_perf.results / "runs").glob("*.json")]
    assert run["results"] == [] and run["interrupted"]["reason"] == "signal SIGTERM", run["interrupted"]
    assert not run["errors"], run["errors"]  # the worker without a test was done, not waited for
    assert "run file: " in output and "interrupted (signal SIGTERM)" in output


@pytest.mark.parametrize("whom", ["process group", "controller"])
def test_a_spread_run_interrupted_keeps_what_its_workers_measured(run_perf, monkeypatch, tmp_path, whom):
    # SIGTERM (from `timeout`, to the process group) in a run under -n must not lose the tests that passed: stopped
    # workers must still hand their runs to the controller. And a SIGTERM to the controller alone must not lose the
    # workers' rounds where SIGINT is ignored (a script's `cmd &`): pytest-xdist stops its workers with a SIGINT,
    # which they would ignore until it killed them
    steps = tmp_path / "steps.jsonl"
    monkeypatch.setenv("PERFGATE_STEP_LOG", str(steps))  # one line per timed round
    proc = run_perf.popen(
        "--perf-variants=hf-fp32,hf-bf16", "--perf-contexts=32", "--perf-rounds=500", "--benchmark-disable",
        "-k", "load or decode", "-v", *SPREAD, own_group=True, sigint_ignored=whom == "controller",
    )  # fmt: skip
    seen = run_perf.read_until(proc, b"PASSED", count=2)  # both loads measured, one on each worker

    def rounds(variant: str) -> int:  # (both workers append to the file: a line being written is not counted)
        lines = steps.read_text().splitlines() if steps.exists() else []
        return sum(line.startswith("{") and line.endswith("}") and f'"variant": "{variant}"' in line for line in lines)

    deadline = time.monotonic() + 300
    while rounds("hf-fp32") < 3 or rounds("hf-bf16") < 3:  # both decode tests in their timed rounds
        assert proc.poll() is None and time.monotonic() < deadline, (seen + proc.stdout.read()).decode()
        time.sleep(0.2)
    if whom == "process group":  # as a terminal's Ctrl-C, or a CI runner's signal: the workers get it too
        os.killpg(proc.pid, signal.SIGTERM)
    else:  # the controller alone (`timeout`, `kill PID`): it passes the signal on to its workers
        proc.send_signal(signal.SIGTERM)
    output = (seen + proc.stdout.read()).decode()
    proc.wait(timeout=120)
    assert proc.returncode == 2, output
    [path] = (run_perf.results / "runs").glob("*.json")
    run = json.loads(path.read_text())
    assert {(r["variant"], r["metric"]) for r in run["results"]} >= {("hf-fp32", "load_s"), ("hf-bf16", "load_s")}
    assert not list((run_perf.results / "runs" / ".parts").glob("*")), output  # merged, removed
    stopped = run["interrupted"]
    assert sorted(stopped["during"]) == ["test_decode[hf-bf16-ctx32]", "test_decode[hf-fp32-ctx32]"], stopped
    # each worker kept its rounds so far, also when the signal reached the controller alone
    assert sorted(m["variant"] for m in stopped["measured"]) == ["hf-bf16", "hf-fp32"], stopped
    assert "test_decode[hf-bf16-ctx32] stopped after" in output and not run["errors"], output
    assert "hf-bf16" in output.split("=== perfgate ===")[-1]  # the table shows what the workers measured


@SHARED_RUN
def test_a_spread_baseline_update_writes_every_variant_once(spread_update, run_perf):
    written = (spread_update.results / "baselines" / "cpu.json").read_text()
    entries = json.loads(written)["models"]["synthetic:qwen3-micro"]
    assert {"hf-fp32/decode[ctx32]/decode_tok_per_s", "hf-bf16/decode[ctx32]/decode_tok_per_s"} <= set(
        entries["entries"]
    )
    baseline = run_perf.results / "baselines" / "cpu.json"
    baseline.parent.mkdir(parents=True)
    baseline.write_text(written)
    result = run_perf(
        "--perf-variants=hf-fp32,hf-bf16", *FAST, *SPREAD, "--perf-tolerance=decode_tok_per_s=95%,ttft_s=99%"
    )
    # what this test is about is that the gate found every entry the spread update wrote; the micro model's wall
    # times under two pytest workers on two cores move by up to 3x (a ttft of +167 % in one CI run), so they may
    # fail even at these tolerances, and only the exact operator count must pass
    outcomes = result.parseoutcomes()
    assert outcomes.get("passed", 0) + outcomes.get("failed", 0) == 4 and not outcomes.get("errors"), outcomes
    gate = result.stdout.str().split("gate against ")[-1]
    for variant in ("hf-fp32", "hf-bf16"):
        for metric in ("decode_tok_per_s", "ttft_s"):  # judged against the written entry, whichever way
            assert re.search(rf"{variant} +ctx32 +{metric} .* (pass|FAIL)", gate), gate
        assert re.search(rf"{variant} +ctx32 +ops_per_token .* pass\n", gate), gate
    assert "no baseline" not in gate, gate


@pytest.mark.parametrize("workers", [["gw1", "gw0"]])
def test_merge_keeps_worker_order_and_every_result(workers):
    docs = [
        {
            "started_at": f"2026-11-29T00:00:0{i}+00:00",
            "written_at": f"2026-11-29T00:01:0{i}+00:00",
            "machine": {"gpu": "X"},
            "results": [{"variant": f"v{w}", "metric": "m"}],
            "variants": {f"v{w}": {}},
            "gpu_busy_at_start": [],
            "parallel": {"worker": w, "gpu": str(i)},
        }
        for i, w in enumerate(workers)
    ]
    merged = parallel.merge(docs, {"rounds": 3})
    assert [r["variant"] for r in merged["results"]] == ["vgw0", "vgw1"]
    assert merged["started_at"] == "2026-11-29T00:00:00+00:00" and merged["options"] == {"rounds": 3}
    assert merged["parallel"]["workers"]["gw0"]["gpu"] == "1"


def test_each_pytest_worker_takes_its_own_slice_of_the_cores(monkeypatch):
    from perfgate import affinity

    pinned = []
    monkeypatch.setattr(parallel.os, "sched_getaffinity", lambda pid: set(range(32)), raising=False)
    monkeypatch.setattr(affinity, "pin_process", lambda cores, pid=0: pinned.append(sorted(cores)) or [])
    parallel.share_cores(1, 2)
    assert pinned == [list(range(16, 32))]  # its model workers then get cores 31 and 30, gw0's 15 and 14
    parallel.share_cores(0, 1)  # one worker: all cores stay its own
    parallel.share_cores(3, 10)  # 3 cores a worker: too few to pin, left alone
    assert pinned == [list(range(16, 32))]


@pytest.mark.skipif(not os.path.isdir("/proc"), reason="reads /proc")
def test_the_controllers_workers_are_its_children_that_execnet_started():
    from execnet.gateway_io import popen_bootstrapline

    worker = subprocess.Popen([sys.executable, "-c", popen_bootstrapline], stdin=subprocess.PIPE)  # waits for its code
    other = subprocess.Popen([sys.executable, "-c", "import sys; sys.stdin.read()"], stdin=subprocess.PIPE)
    try:
        assert parallel.worker_pids() == [worker.pid]
        assert parallel.forward_signal(signal.SIGTERM) == [worker.pid]
        assert worker.wait(timeout=10) == -signal.SIGTERM and other.poll() is None
    finally:
        for proc in (worker, other):
            proc.kill()
            proc.wait()


def test_a_worker_that_does_not_write_its_last_part_in_time_is_named(tmp_path):
    parts = tmp_path / "runs" / ".parts"
    parts.mkdir(parents=True)
    (parts / "r1_gw0.json").write_text(json.dumps({"interrupted": {"reason": "signal SIGTERM"}}))
    (parts / "r1_gw1.json").write_text(json.dumps({"interrupted": None}))  # its part after its last finished test
    started = time.monotonic()
    errors = runfile.Parts(tmp_path / "runs", "r1").await_last({"gw0", "gw1", "gw2"}, timeout_s=1)
    assert 1 <= time.monotonic() - started < 5
    assert [e["test"] for e in errors] == ["gw1", "gw2"]  # gw2 wrote none
    assert "worker gw1 did not write its part of the run within 1 s of the signal" in errors[0]["message"]


def test_sigterm_ends_a_run_like_ctrl_c_once(pytestconfig):
    from perfgate import signals

    before = signal.getsignal(signal.SIGTERM)
    interrupt = signals.on_sigterm(SimpleNamespace(is_controller=False))
    try:
        with pytest.raises(KeyboardInterrupt, match="signal SIGTERM"):
            interrupt(signal.SIGTERM, None)
        assert signal.getsignal(signal.SIGTERM) == signal.SIG_IGN  # a second one leaves the run file's writing alone
    finally:
        signal.signal(signal.SIGTERM, before)
