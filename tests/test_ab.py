"""A/B in one run (perfgate.ab): the base checked before anything loads, one line per bad input; an A/A run (a venv
that sees this interpreter's packages, running the code of another commit from a temporary worktree) passes and
leaves no worktree behind; the whole-stack canary (the head's steps slowed) fails.

    PYTHONPATH=$PWD python -m pytest tests/test_ab.py -q
"""

import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from perfgate import ab, paths, table
from tests.terminal import last_run

GIT = ["git", "-c", "user.name=t", "-c", "user.email=t@t", "-c", "init.defaultBranch=main"]
# The tiny model's decode steps on this shared 2-core CPU are a few ms and other people's work moves them: the
# ratios get loose limits in the A/A run, and the canary is made very slow (as tests/test_gate_suite.py does).
TINY = ("--perf-contexts=16", "--perf-new-tokens=4", "--perf-rounds=2", "--perf-variants=hf-fp32", "-k", "decode")
LOOSE = "--perf-tolerance=decode_ratio_to_base=25%,ttft_ratio_to_base=60%"


# -- options and what the summary says ------------------------------------------------------------------


def test_base_env_reads_pairs_and_refuses_anything_else():
    assert ab.base_env("PYTHONPATH=/opt/alt:/x, HF_HOME=/h") == {"PYTHONPATH": "/opt/alt:/x", "HF_HOME": "/h"}
    for bad in ("PYTHONPATH", "=1", "A B=1"):
        with pytest.raises(ValueError, match="KEY=VALUE pairs"):
            ab.base_env(bad)


def test_the_whole_stack_canary_is_off_unless_asked_and_on_means_ten_percent():
    assert ab.stack_canary("off") == 0.0
    assert ab.stack_canary("on") == 0.10
    assert ab.stack_canary("25%") == 0.25
    with pytest.raises(ValueError, match="write off, on"):
        ab.stack_canary("lots")


def test_what_differs_between_the_sides_reads_base_to_head():
    base = {"versions": {"torch": "2.11.0", "transformers": "4.57.6", "unsloth": None}, "commit": "aaa"}
    head = {"versions": {"torch": "2.11.0", "transformers": "5.17.0", "unsloth": "2026.1"}, "commit": "bbb"}
    assert ab.differences(head, base) == [
        "transformers 4.57.6 → 5.17.0",
        "unsloth not installed → 2026.1",
        "commit aaa → bbb",
    ]
    assert ab.differences(head, head) == []


def test_kernels_that_differ_are_listed_counts_first():
    base = {"kernels_per_token": 2.0, "kernels": {"gemv": {"per_token": 2.0, "ms_per_token": 1.0}}}
    head = {
        "kernels_per_token": 3.0,
        "kernels": {"gemv": {"per_token": 2.0, "ms_per_token": 1.5}, "copy": {"per_token": 1.0, "ms_per_token": 0.1}},
    }
    lines = ab.kernel_changes(head, base)
    assert lines[0] == "kernels_per_token 2 → 3"
    assert "+1/token `copy`" in lines and any(line.startswith("+0.5000 ms/token `gemv`") for line in lines)
    assert ab.kernel_changes(head, None) == []


def test_kernel_times_that_moved_by_noise_alone_are_not_listed():
    # an A/A run on the H200: one kernel 0.015 ms faster of 11.3 ms a token, the counts equal
    base = {"kernels_per_token": 2.0, "kernels": {"add": {"per_token": 1.0, "ms_per_token": 0.18}}}
    base["kernels"]["gemm"] = {"per_token": 1.0, "ms_per_token": 11.12}
    head = {"kernels_per_token": 2.0, "kernels": {**base["kernels"], "add": {"per_token": 1.0, "ms_per_token": 0.165}}}
    assert ab.kernel_changes(head, base) == []
    slower = {**head, "kernels": {**base["kernels"], "add": {"per_token": 1.0, "ms_per_token": 0.45}}}
    assert ab.kernel_changes(slower, base) == ["+0.2700 ms/token `add` (0.1800 → 0.4500)"]


@pytest.mark.parametrize(
    ("said", "message"),
    [
        ({"cuda": False, "gpu": "cpu", "versions": {"torch": "2.9.0+cpu"}}, "its torch 2.9.0+cpu cannot see a CUDA"),
        ({"cuda": True, "gpu": "NVIDIA A100", "versions": {}}, "different GPU kinds (NVIDIA A100 against NVIDIA H200)"),
    ],
)
def test_a_base_that_cannot_measure_on_the_heads_gpu_is_refused(said, message):
    with pytest.raises(ValueError, match=re.escape(message)):
        ab.check_device("cuda", "NVIDIA H200", said, "--perf-base '/b/python'")
    ab.check_device("cpu", "cpu", said, "--perf-base '/b/python'")  # the CPU: any base will do


# -- bad input, before anything loads -------------------------------------------------------------------


def opts(**given) -> dict:
    return {"base": None, "base_env": None, "base_ref": None, "origins": {"base": "--perf-base"}, **given}


def test_no_base_asked_for_is_no_base(tmp_path):
    assert ab.prepare(opts(), tmp_path, "cpu", tmp_path) is None


def test_an_interpreter_that_does_not_exist_is_named(tmp_path):
    with pytest.raises(ValueError, match=rf"--perf-base \(from --perf-base\) = '{tmp_path}/nope/python': no such"):
        ab.prepare(opts(base=str(tmp_path / "nope" / "python")), tmp_path, "cpu", tmp_path)


def test_an_interpreter_without_torch_is_named(tmp_path):
    bare = tmp_path / "bare"
    subprocess.run([sys.executable, "-m", "venv", "--without-pip", str(bare)], check=True)
    with pytest.raises(ValueError, match="cannot import torch: ModuleNotFoundError: No module named 'torch'"):
        ab.prepare(opts(base=str(bare / "bin" / "python")), tmp_path, "cpu", tmp_path)


@pytest.fixture
def repository(tmp_path: Path) -> dict[str, str]:
    """A git repository holding a copy of perfgate: its first commit, and a second whose perfgate.worker cannot be
    imported; {"root", "good", "broken"}."""
    root = tmp_path / "repo"
    shutil.copytree(paths.PACKAGE, root / "perfgate", ignore=shutil.ignore_patterns("__pycache__"))
    shutil.copytree(paths.REPO_ROOT / "perf_tests", root / "perf_tests", ignore=shutil.ignore_patterns("__pycache__"))
    for name in ("pyproject.toml", "conftest.py"):
        shutil.copy2(paths.REPO_ROOT / name, root / name)
    subprocess.run([*GIT, "init", "-q"], cwd=root, check=True)
    subprocess.run([*GIT, "add", "."], cwd=root, check=True)
    subprocess.run([*GIT, "commit", "-qm", "first"], cwd=root, check=True)
    good = _git(root, "rev-parse", "HEAD")
    worker = root / "perfgate" / "worker.py"
    good_text = worker.read_text()
    worker.write_text(good_text + "\nraise ImportError('broken at this commit')\n")
    subprocess.run([*GIT, "commit", "-qam", "broken worker"], cwd=root, check=True)
    broken = _git(root, "rev-parse", "HEAD")
    worker.write_text(good_text)
    subprocess.run([*GIT, "commit", "-qam", "mended"], cwd=root, check=True)
    return {"root": str(root), "good": good, "broken": broken}


def _git(root: Path, *args: str) -> str:
    return subprocess.run(["git", *args], cwd=root, capture_output=True, text=True, check=True).stdout.strip()


def test_a_ref_that_does_not_exist_is_named(repository, tmp_path):
    root = Path(repository["root"])
    with pytest.raises(ValueError, match=r"--perf-base-ref 'no-such-branch': no such commit in the repository at"):
        ab.prepare(opts(base_ref="no-such-branch"), root, "cpu", tmp_path / "cache")
    assert _git(root, "worktree", "list").count("\n") == 0  # the user's tree alone


def test_a_worktree_that_cannot_be_made_is_named(repository, tmp_path):
    cache = tmp_path / "cache"
    cache.mkdir()
    (cache / "base-worktrees").write_text("a file in the way")
    with pytest.raises(ValueError, match="could not make a temporary folder for its worktree under"):
        ab.prepare(opts(base_ref=repository["good"]), Path(repository["root"]), "cpu", cache)


def test_a_commit_whose_worker_cannot_be_imported_is_named_and_its_worktree_removed(repository, tmp_path):
    root, cache = Path(repository["root"]), tmp_path / "cache"
    said = f"--perf-base-ref '{repository['broken'][:10]}' (run by {sys.executable}): cannot import perfgate.worker: "
    with pytest.raises(ValueError, match=re.escape(f"{said}ImportError: broken at this commit")):
        ab.prepare(opts(base_ref=repository["broken"][:10]), root, "cpu", cache)
    assert _git(root, "worktree", "list").count("\n") == 0
    assert list((cache / "base-worktrees").iterdir()) == []


def test_a_bad_base_is_one_usage_error_line_before_anything_loads(run_perf, tmp_path):
    result = run_perf("--perf-base", str(tmp_path / "missing-python"), *TINY)
    assert result.ret == 4, result.stdout.str() + result.stderr.str()
    errors = [line for line in result.stderr.lines if line.startswith("ERROR: ")]
    assert errors == [f"ERROR: --perf-base (from --perf-base) = '{tmp_path / 'missing-python'}': no such interpreter"]
    assert not (run_perf.results / "runs").exists()


# -- end to end on the tiny model -----------------------------------------------------------------------


@pytest.fixture
def venv_python(tmp_path: Path, make_venv) -> Path:
    """A venv made with --system-site-packages and no installs, this interpreter's packages reaching it."""
    return make_venv(tmp_path / "base-venv")


def test_an_a_a_run_on_another_venv_at_another_commit_passes_and_removes_its_worktree(
    repository, venv_python, perf_cache, tiny_checkpoint, tmp_path
):
    root = Path(repository["root"])
    results = tmp_path / "results"
    env = {k: v for k, v in os.environ.items() if not k.startswith(("PERF_", "PERFGATE_", "GITHUB_STEP_SUMMARY"))}
    env.update(PYTHONPATH=str(root), PERFGATE_CACHE=str(perf_cache))
    cmd = [sys.executable, "-m", "pytest", "perf_tests", f"--rootdir={root}", "-p", "no:cacheprovider"]
    cmd += [
        f"--perf-results-dir={results}",
        "--perf-device=cpu",
        "--perf-model=synthetic:qwen3-tiny",
        "--perf-agent=off",
        "--perf-plots=false",  # as in the other child runs (tests/conftest.py, perf_args)
    ]
    cmd += [f"--perf-base={venv_python}", f"--perf-base-ref={repository['good']}", "--perf-max-rounds=8", LOOSE, *TINY]
    cmd += ["--perf-process-pairs=2"]  # the default rule measures every pair: two, not three, to keep make test short
    proc = subprocess.run(cmd, cwd=root, env=env, capture_output=True, text=True, timeout=600)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert f"A/B: head against base {venv_python} at {repository['good']}" in proc.stdout
    assert "head against base (A/B)" in proc.stdout

    run = last_run(results)
    section = run["ab"]
    assert section["base"]["python"] == str(venv_python) and section["base"]["commit"] == repository["good"]
    assert section["sides"]["base"]["commit"] == repository["good"]  # each worker says what it runs
    assert section["sides"]["base"]["perfgate"].endswith("tree/perfgate")  # the worktree's code
    assert section["sides"]["head"]["perfgate"] == str(root / "perfgate")
    assert f"commit {repository['good']} → {_git(root, 'rev-parse', 'HEAD')}" in section["differs"]
    gated = {r["metric"]: r for r in run["results"] if r.get("verdict")}
    passed = {m for m, r in gated.items() if r["verdict"]["status"] == "pass"}
    assert passed == {"decode_ratio_to_base", "ttft_ratio_to_base"}  # VRAM and device time: none on the CPU
    assert {m for m in gated if m not in passed} == {"peak_vram_mib", "device_ms_per_token", "prefill_device_ms"}
    assert all(r["verdict"]["status"] == "unavailable" for m, r in gated.items() if m not in passed)
    assert gated["decode_ratio_to_base"]["params"]["reference"] == "hf-fp32@base"
    base = {r["metric"]: r for r in section["base_results"]}
    assert base["decode_tok_per_s"]["value"] > 0 and base["ops_per_token"]["value"] > 0  # the base was profiled
    assert "decode_ratio_to_ref" not in base and "hf-fp16" not in run["variants"]  # no reference beside
    # the temporary worktree is gone, and the user's tree was never touched
    assert _git(root, "worktree", "list").count("\n") == 0
    assert list((perf_cache / "base-worktrees").iterdir()) == []
    assert _git(root, "status", "--porcelain", "--untracked-files=no") == ""


def failed_canary(run_perf, *options: str) -> tuple[pytest.RunResult, dict, dict]:
    """An A/B run of the tiny model with the whole-stack canary at 100 % and these options, which must fail: its
    output, its run file and its decode_ratio_to_base figure."""
    result = run_perf("--perf-base-env=PERFGATE_SIDE=base", "--perf-canary-base-slowdown=100%", *options, *TINY)
    assert result.ret == 1, result.stdout.str()
    run = last_run(run_perf.results)
    return result, run, next(r for r in run["results"] if r["metric"] == "decode_ratio_to_base")


def test_the_whole_stack_canary_fails_the_head(run_perf):
    # the default rule (--perf-ab-rule fastest) in two pairs of processes, not its three, to keep make test short:
    # both measured whatever the first says, each side's fastest process deciding
    result, run, ratio = failed_canary(run_perf, "--perf-process-pairs=2")
    rule = "the ratio of each side's fastest process over 2 pairs of worker processes beyond the limit"
    result.stdout.fnmatch_lines(
        [
            "*hf-fp32 ctx16 decode_ratio_to_base: head * x against 1 (the base), beyond the limit 0.95 (tolerance "
            "5 %); spanning the pairs' 98 % intervals *",
            f"measured in 2 pairs of worker processes: *; the base's fastest process at * ms a step, the head's at * "
            f"ms; it fails at {rule}",
            "*differs, base → head: nothing the workers report*",
            "*whole-stack canary: the head's decode steps slowed by 100 %*",
        ]
    )
    assert ratio["verdict"]["status"] == "fail" and ratio["params"]["canary_step_delay_s"] > 0
    assert ratio["verdict"]["pair_rule"] == rule  # the rule it was decided by, for whoever reads the file later
    pairs = ratio["params"]["process_pairs"]
    assert len(pairs) == 2 and run["options"]["ab_rule"] == "fastest"
    fastest = ratio["params"]["fastest_processes_s"]
    assert ratio["value"] == pytest.approx(fastest["reference"] / fastest["variant"])
    low, high = ratio["verdict"]["interval"]  # the span of the pairs' own intervals, shown, never deciding
    assert low <= min(p["interval"][0] for p in pairs) and high >= max(p["interval"][1] for p in pairs)
    ops = next(r for r in run["results"] if r["metric"] == "ops_per_token")
    base_ops = next(r for r in run["ab"]["base_results"] if r["metric"] == "ops_per_token")
    assert ops["params"]["profiled_pair"] == base_ops["params"]["profiled_pair"] == 1  # both sides, the first pair
    assert run["ab"]["base"]["env"] == {"PERFGATE_SIDE": "base"} and run["ab"]["stack_canary_slowdown"] == 1.0
    report = next((run_perf.results / "reports").glob("*.md")).read_text()  # what CI's A/B job uploads
    assert "- A/B: head against base" in report and "- whole-stack canary: the head's decode steps slowed" in report
    assert "- hf-fp32 ctx16 decode_ratio_to_base over 2 pairs of worker processes (" in report
    assert f"): failed at {rule}" in report


def test_the_whole_stack_canary_fails_the_head_under_the_all_but_one_rule_too(run_perf):
    # three pairs of processes at most, not the five of the rule's default, to keep make test short: the rule over
    # pairs (all but one with its value beyond the limit) is the same, tests/test_measure.py covers its default
    result, run, ratio = failed_canary(run_perf, "--perf-process-pairs=3", "--perf-ab-rule=all-but-one")
    rule = "2 of up to 3 pairs of worker processes with its value beyond the limit"
    result.stdout.fnmatch_lines(
        [
            "*hf-fp32 ctx16 decode_ratio_to_base: head * x against 1 (the base), beyond the limit 0.95 (tolerance "
            "5 %); 98 % interval *",
            f"measured in 2 pairs of worker processes, restarted while undecided: *; it fails at {rule}",
        ]
    )
    assert ratio["verdict"]["status"] == "fail" and ratio["verdict"]["pair_rule"] == rule
    assert run["options"]["ab_rule"] == "all-but-one" and "fastest_processes_s" not in ratio["params"]


def test_the_workflow_runs_ab_when_the_lock_file_changes_or_on_demand():
    import yaml

    flow = yaml.safe_load((paths.REPO_ROOT / ".github" / "workflows" / "perf.yml").read_text())
    assert "ab" in flow[True]["workflow_dispatch"]["inputs"]  # YAML 1.1 reads the key `on` as True
    job = flow["jobs"]["ab"]
    assert job["runs-on"] == ["self-hosted", "gpu"] and job["needs"] == ["lock-changed"]
    assert "needs.lock-changed.outputs.changed == 'true'" in job["if"] and "inputs.ab" in job["if"]
    detect = " ".join(step.get("run", "") for step in flow["jobs"]["lock-changed"]["steps"])
    assert "requirements/gpu.lock" in detect
    runs = " ".join(step.get("run", "") for step in job["steps"])
    assert "requirements/gpu.lock" in runs and "uv pip sync" in runs and "pip install" in runs and "make ab" in runs
    assert any(step.get("uses", "").startswith("actions/cache") for step in job["steps"])
    uploaded = next(s for s in job["steps"] if s.get("uses", "").startswith("actions/upload-artifact"))
    assert "results/runs/" in uploaded["with"]["path"] and "results/reports/" in uploaded["with"]["path"]


def _ratio_over_pairs(status: str, pairs: list[tuple[float, float, float]], rule: str | None = None) -> dict:
    """A decode_ratio_to_base result measured in several pairs of processes, (value, low, high) each, decided by
    `rule` as the verdict records it (None: a run file from before it was recorded)."""
    verdict = {"status": status, "limit": 0.95, "clear": True, "interval": [0.7, 1.1], "test": "bootstrap"}
    return {
        "variant": "hf-bf16",
        "workload": "ctx1024",
        "metric": ab.RATIO,
        "better": "higher",
        "unit": "x",
        "value": pairs[0][0],
        "samples": [],
        "verdict": {**verdict, **({"pair_rule": rule} if rule else {})},
        "params": {"process_pairs": [{"value": v, "interval": [lo, hi]} for v, lo, hi in pairs]},
    }


def test_a_ratio_over_several_pairs_says_why_it_passed_or_failed():
    # the H200 A/A run whose first pair's value was 0.828 and whose second passed clearly: "0.907, pass" alone reads
    # as a contradiction. The rule is the verdict's own, whatever the options of the run reading it say.
    rule = "2 of up to 3 pairs of worker processes with its value beyond the limit"
    slower_ttft = {
        **_ratio_over_pairs("pass", [(1.20, 0.9, 1.4), (1.02, 0.95, 1.05)], rule),
        "metric": ab.TTFT_RATIO,
        "better": "lower",
    }
    slower_ttft["verdict"]["limit"] = 1.1
    run = {
        "options": {"process_pairs": 5},
        "ab": {"base": {"python": "/usr/bin/python3", "env": {"SIDE": "base"}}, "differs": []},
        "results": [
            _ratio_over_pairs("pass", [(0.828, 0.714, 1.096), (0.994, 0.986, 1.010)], rule),
            _ratio_over_pairs("pass", [(0.93, 0.80, 1.05), (0.96, 0.90, 1.02), (0.97, 0.91, 1.03)], rule),
            _ratio_over_pairs("fail", [(0.938, 0.77, 1.10), (0.909, 0.74, 1.36), (0.911, 0.86, 0.98)], rule),
            slower_ttft,  # lower is better: its last pair's whole interval below the limit
            _ratio_over_pairs("fail", [(0.904, 0.85, 0.93), (0.911, 0.86, 0.94)]),  # an older run file: no rule
            {**_ratio_over_pairs("pass", [(0.99, 0.9, 1.1)], rule), "variant": "hf-fp16"},  # one pair: nothing to say
        ],
    }
    lines = table.pair_lines(run)
    clear = "passed: the last pair's whole interval is within the limit, which ends the test as a pass"
    assert lines == [
        f"hf-bf16 ctx1024 decode_ratio_to_base over 2 pairs of worker processes (0.828, 0.994): {clear}",
        f"hf-bf16 ctx1024 decode_ratio_to_base over 3 pairs of worker processes (0.930, 0.960, 0.970): passed: it "
        f"fails only at {rule}",
        f"hf-bf16 ctx1024 decode_ratio_to_base over 3 pairs of worker processes (0.938, 0.909, 0.911): failed at "
        f"{rule}",
        f"hf-bf16 ctx1024 ttft_ratio_to_base over 2 pairs of worker processes (1.200, 1.020): {clear}",
        "hf-bf16 ctx1024 decode_ratio_to_base over 2 pairs of worker processes (0.904, 0.911): failed",
    ]
    # each side's fastest process (--perf-ab-rule fastest): every pair counts, so a last pair within the limit ends
    # nothing, and the line says which processes decided
    fastest_rule = "the ratio of each side's fastest process over 2 pairs of worker processes beyond the limit"
    fastest = _ratio_over_pairs("pass", [(0.91, 0.85, 0.94), (1.03, 0.99, 1.07)], fastest_rule)
    fastest["params"]["fastest_processes_s"] = {"reference": 0.0338, "variant": 0.0345}
    for pair in fastest["params"]["process_pairs"]:
        pair["step_p10_s"] = [0.034] * 8
    assert table.pair_lines({"results": [fastest]}) == [
        "hf-bf16 ctx1024 decode_ratio_to_base over 2 pairs of worker processes (0.910, 1.030; the base's fastest "
        f"process at 33.8 ms a step, the head's at 34.5 ms): passed: it fails only at {fastest_rule}"
    ]
    fastest["params"]["process_pairs"][0]["step_p10_s"] = [0.034] * 5  # stopped short (an interrupt): no verdict
    assert table.pair_lines({"results": [fastest]})[0].endswith(
        "passed, undecided: 1 of its pairs stopped short of the 8 pairs of rounds a pair needs to count"
    )
    reference = {**_ratio_over_pairs("pass", [(0.93, 0.90, 0.94), (0.99, 0.96, 1.02)]), "metric": "decode_ratio_to_ref"}
    assert table.pair_lines({"results": [reference]}) == [  # the reference gate's ratio, the same way
        f"hf-bf16 ctx1024 decode_ratio_to_ref over 2 pairs of worker processes (0.930, 0.990): {clear}"
    ]


def test_only_a_kernel_time_change_beyond_the_pairs_of_one_stack_is_listed():
    # an H200 A/A run: one GEMM at one of two speeds per process, 0.065 ms of 11.25 ms a token (0.58 %); a compiled
    # kernel between two machine starts: 0.27 ms of 9.4 (2.9 %)
    base = {"kernels_per_token": 2.0, "kernels": {"gemm": {"per_token": 1.0, "ms_per_token": 1.830}}}
    base["kernels"]["rest"] = {"per_token": 1.0, "ms_per_token": 9.42}
    head = {**base, "kernels": {**base["kernels"], "gemm": {"per_token": 1.0, "ms_per_token": 1.765}}}
    assert ab.kernel_changes(head, base) == []
    compiled = {**base, "kernels": {**base["kernels"], "gemm": {"per_token": 1.0, "ms_per_token": 2.16}}}
    assert ab.kernel_changes(compiled, base) == ["+0.3300 ms/token `gemm` (1.8300 → 2.1600)"]


def test_a_base_that_crashes_in_the_agent_replay_fails_the_head_s_test_saying_which_side(run_perf):
    # the head's agent figures are kept; no ratio, and the test fails naming the base side (the crash is injected
    # into the base's workers alone, through --perf-base-env)
    crash = "--perf-base-env=PERFGATE_SIDE=base,PERFGATE_FAULTS=hf-fp32@agent=crash"
    result = run_perf(crash, "--perf-variants=hf-fp32", "--perf-agent=replay", "--perf-agent-queries=1", "-k", "agent")
    assert result.ret == 1, result.stdout.str()
    result.stdout.fnmatch_lines(
        ["*hf-fp32: the base side failed, so nothing here is judged against it; the head side's figures are kept*"]
    )
    run = last_run(run_perf.results)
    figures = {r["metric"]: r for r in run["results"] if r["test"] == "agent"}
    assert figures["agent_query_p50_s"]["value"] > 0  # the head's replay, whole
    assert figures[ab.AGENT_RATIO]["value"] is None
    assert figures[ab.AGENT_RATIO]["unavailable"].startswith("the base side failed: worker")


def test_the_two_sides_load_at_the_same_time(run_perf, monkeypatch):
    # each side's load call made 4 s slower (PERFGATE_FAULTS reaches the base's workers too; the sleep comes before
    # the load's own timer): one after the other, the run's load part would hold both sleeps and both load_s
    monkeypatch.setenv("PERFGATE_FAULTS", "hf-fp32@load=sleep:4")
    result = run_perf("--perf-base-env=PERFGATE_SIDE=base", "--perf-variants=hf-fp32", "-k", "test_load")
    assert result.ret == 0, result.stdout.str()
    run = last_run(run_perf.results)
    loads = [r["value"] for r in (*run["results"], *run["ab"]["base_results"]) if r["metric"] == "load_s"]
    assert len(loads) == 2
    assert run["time_split"]["parts_s"]["load"] < 2 * 4 + sum(loads), (run["time_split"], loads)
    assert sum(run["time_split"]["parts_s"].values()) == pytest.approx(run["time_split"]["total_s"], abs=0.01)


def test_a_side_out_of_memory_beside_the_other_is_loaded_again_alone(run_perf):
    # the base's loads all run out of memory: the one beside the head is forgotten, the one alone after it is said
    oom = "--perf-base-env=PERFGATE_SIDE=base,PERFGATE_FAULTS=hf-fp32@load=oom"
    result = run_perf(oom, "--perf-variants=hf-fp32", "-k", "test_load")
    assert result.ret == 1, result.stdout.str()
    result.stdout.fnmatch_lines(
        [
            "*hf-fp32: the base side failed, so nothing here is judged against it*",
            "*hf-fp32 (base side): out of memory while loading*",
        ]
    )
    run = last_run(run_perf.results)
    assert [r["value"] > 0 for r in run["results"] if r["metric"] == "load_s"] == [True]  # the head's, kept


def test_the_base_keeps_its_first_loads_figures_which_the_heads_are_judged_against(monkeypatch):
    # A ratio measured again loads the base again; test_load judged the head's load against the base's first load,
    # and the run file's base side must show that one, not the last pair's.
    from types import SimpleNamespace

    from perfgate import measure
    from perfgate.session import PerfSession
    from perfgate.trackers import VramPeak, VramTracker

    perf = object.__new__(PerfSession)  # only _ensure's own logic: the worker and the load are stubbed
    perf.loaded, perf._loading, perf._stopping, perf.failed, perf.load_info = {}, {}, set(), {}, {}
    perf.base, perf.base_figures, perf.opts = object(), {}, {"max_seq_length": 16, "timeout": 10}
    perf.device, perf._tracker, perf.sides = "cpu", VramTracker(None, None), {"base": {}, "head": {}}
    monkeypatch.setattr(perf, "_make_room", lambda key, keep: None, raising=False)
    monkeypatch.setattr(perf, "checkpoint", lambda: Path("checkpoint"), raising=False)
    worker = SimpleNamespace(pid=0, close=lambda: None, kill=lambda: None)
    monkeypatch.setattr(perf, "_start_worker", lambda key: worker, raising=False)
    loads = iter([4.0, 9.0])
    monkeypatch.setattr(
        measure, "load", lambda *a: measure.LoadMeasurement(next(loads), VramPeak(None, None, 0), None, None, {})
    )
    for _ in range(2):  # the first pair of processes, then a further one
        perf._ensure("hf-nf4", keep={"hf-nf4@base"}, base=True)
        perf.release("hf-nf4@base")
    load_s = [f for f in perf.base_figures.values() if f.metric == "load_s"]
    assert [f.value for f in load_s] == [4.0]


@pytest.mark.parametrize(
    "head_stops_with, base_exit_code, base_failure_kept",
    [
        (KeyboardInterrupt("signal SIGTERM"), -15, False),
        (KeyboardInterrupt("signal SIGINT"), -2, False),
        (KeyboardInterrupt("signal SIGTERM"), -9, True),  # the kernel's OOM killer, say: not the interrupt's doing
        (RuntimeError("the head's own crash"), -15, True),
    ],
)
def test_a_base_worker_killed_by_the_signal_that_interrupts_the_run_is_no_failure_of_the_base(
    monkeypatch, head_stops_with, base_exit_code, base_failure_kept
):
    # `timeout` and Ctrl-C signal the whole process group: the base's worker, loading in a thread of its own, dies of
    # the signal, and that thread records a failed load before the main thread's load is interrupted. The run was
    # interrupted and says so; the base side did not fail. A base that died of another signal, or while the head
    # failed for a reason of its own, keeps its failure.
    import threading

    from perfgate.session import PerfSession, VariantFailed

    perf = object.__new__(PerfSession)  # only _load_both_sides's own logic: the loads are stubbed
    perf.loaded, perf._loading, perf._stopping, perf.failed, perf.base = {}, {}, set(), {}, object()
    base_died = threading.Event()

    def ensure(name, keep, base=False):
        if base:
            perf.failed[name + ab.SUFFIX] = f"{name} (base side): loading failed (died): exit code {base_exit_code}"
            base_died.set()
            raise VariantFailed(perf.failed[name + ab.SUFFIX], "died", base_exit_code)
        base_died.wait(10)
        raise head_stops_with

    for stub, value in [("_ensure", ensure), ("_fit_both", lambda name: True), ("checkpoint", lambda: None)]:
        monkeypatch.setattr(perf, stub, value, raising=False)
    monkeypatch.setattr(perf, "keep_off_worker_cores", lambda: None, raising=False)
    with pytest.raises(type(head_stops_with)):
        perf._load_both_sides("hf-int8")
    assert ("hf-int8" + ab.SUFFIX in perf.failed) is base_failure_kept, perf.failed
