"""The run file's pieces without a run: where it goes, how a failed write is kept, how a figure and its verdict are
recorded, the parts of a run spread over GPUs, and which baseline entries a figure is judged against.

    python -m pytest tests/test_runfile.py
"""

import json
from datetime import datetime, timezone

from perfgate import baselines, gate, judging, measure, runfile
from perfgate import figures as fig

STARTED = datetime(2026, 11, 29, 9, 18, 4, tzinfo=timezone.utc)


def figure(params=None):
    params = {"new_tokens": 128, **(params or {})}
    return fig.from_samples("hf-fp16", "decode", "ctx1024", "decode_tok_per_s", "tok/s", fig.HIGHER, True,
                            (20.0, 22.0, 24.0), params)  # fmt: skip


def test_a_run_file_never_overwrites_another_started_in_the_same_second(tmp_path):
    first = runfile.RunFile(tmp_path / "runs", STARTED, "cpu")
    assert first.write({"time_split": {"total_s": 1.0}})
    second = runfile.RunFile(tmp_path / "runs", STARTED, "cpu")
    assert second.write({})
    assert [first.path.name, second.path.name] == ["20261129T091804Z_cpu.json", "20261129T091804Z_cpu-2.json"]
    assert first.time_split == {"total_s": 1.0} and first.error is None
    assert first.write({"again": True}) and json.loads(first.path.read_text()) == {"again": True}  # same file


def test_a_run_file_that_cannot_be_written_keeps_why(tmp_path):
    blocker = tmp_path / "not-a-folder"
    blocker.write_text("a file where the results folder should be")
    run = runfile.RunFile(blocker / "runs", STARTED, "cpu")
    assert not run.write({})
    assert run.error.startswith(f"could not write the run file {blocker}/runs/20261129T091804Z_cpu.json: ")


def test_a_workers_part_is_written_where_the_controller_looks(tmp_path):
    parts = runfile.Parts(tmp_path / "runs", "r1")
    run = runfile.RunFile(tmp_path / "runs", STARTED, "cpu", parts.path("gw1"))
    run.write({"parallel": {"worker": "gw1"}, "interrupted": {"reason": "signal SIGTERM"}})
    (parts.folder / "r1_gw0.json").write_text(json.dumps({"parallel": {"worker": "gw0"}}))
    (parts.folder / "r1_gw2.json").write_text('{"results": [')  # cut off
    (parts.folder / "r2_gw0.json").write_text(json.dumps({"parallel": {"worker": "gw0"}}))  # another run's
    found, errors = parts.left(handed={"gw0"})
    assert [(p.name, d["parallel"]["worker"]) for p, d in found] == [("r1_gw1.json", "gw1")]
    assert [e["test"] for e in errors] == ["r1_gw2.json"] and "left there" in errors[0]["message"]
    assert parts.says_interrupted("gw1") and not parts.says_interrupted("gw0") and not parts.says_interrupted("gw9")


def test_a_judged_figure_is_recorded_with_its_baseline_and_verdict():
    f = figure()
    assert "verdict" not in runfile.result_dict(f, None) and runfile.result_dict(f, None) == f.to_dict()
    verdict = gate.judge(f.samples, f.value, f.better, 30.0, 0.1)
    data = runfile.result_dict(f, judging.Judged(f, verdict, "hf-fp16/decode[ctx1024]/decode_tok_per_s"))
    assert data["baseline"] == {
        "key": "hf-fp16/decode[ctx1024]/decode_tok_per_s",
        "value": 30.0,
        "tolerance": 0.1,
        "note": None,
    }
    assert data["verdict"]["status"] == verdict.status and data["verdict"]["limit"] == verdict.limit


def test_a_baseline_measured_another_way_is_not_compared():
    entry = {"value": 20.0, "unit": "tok/s", "params": {"new_tokens": 128}}
    assert judging.incomparable(figure(), entry) is None
    assert "64 new tokens, this run 128" in judging.incomparable(figure(), {**entry, "params": {"new_tokens": 64}})
    turns = {"turn_keys": ["a"], "new_tokens": 128}
    assert "other agent queries" in judging.incomparable(figure({"turn_keys": ["b"]}), {**entry, "params": turns})
    ratio = figure({"interval": [0.9, 1.1], "estimator": "fast-state p10/p10"})
    assert "measured another way (mean rates" in judging.incomparable(ratio, entry)


def test_an_incomparable_entry_leaves_the_figure_without_a_baseline(tmp_path):
    key = "hf-fp16/decode[ctx1024]/decode_tok_per_s"
    entry = {"value": 40.0, "unit": "tok/s", "better": "higher", "params": {"new_tokens": 64}, "samples": [40.0]}
    baseline = baselines.Baseline(tmp_path / "cpu.json", {"schema": 1, "models": {"m": {"entries": {key: entry}}}})
    judge = judging.Judge(baseline, "m", "hf-fp16", {}, {"gpu": "cpu"})
    [judged] = judge.judge([figure()])
    assert judged.verdict.status == gate.NO_BASELINE and "not comparable" in judged.note
    assert judge.failures([judged]) == []
    judge.strict = True  # --perf-strict: a figure without a baseline fails, saying why
    assert len(judge.failures([judged])) == 1


def test_a_failure_names_the_other_processes_that_were_on_the_gpu(tmp_path):
    key = "hf-fp16/decode[ctx1024]/decode_tok_per_s"
    entry = {"value": 99.0, "unit": "tok/s", "better": "higher", "params": {"new_tokens": 128}, "samples": [99.0] * 5}
    baseline = baselines.Baseline(tmp_path / "h200.json", {"schema": 1, "models": {"m": {"entries": {key: entry}}}})
    busy = ["pid 1244 (python3) using 874 MiB"]
    judge = judging.Judge(baseline, "m", "hf-fp16", {}, {"gpu": "cuda"}, busy=busy)
    slow = fig.from_samples("hf-fp16", "decode", "ctx1024", "decode_tok_per_s", "tok/s", fig.HIGHER, True,
                            (20.0, 22.0, 24.0) * 4, {"new_tokens": 128})  # fmt: skip
    [judged] = judge.judge([slow])
    [message] = judge.failures([judged])
    assert "the GPU was not idle at the start (pid 1244 (python3) using 874 MiB)" in message
    quiet = judging.Judge(baseline, "m", "hf-fp16", {}, {"gpu": "cuda"})
    assert "not idle" not in quiet.failures(quiet.judge([slow]))[0]
    # an A/B run's failure too: the head's device time against the base side's of this run
    head = fig.from_samples("hf-fp16", "decode", "ctx1024", "device_ms_per_token", "ms", fig.LOWER, True,
                            (12.2, 12.3, 12.2) * 4, {"new_tokens": 128})  # fmt: skip
    base = fig.from_samples("hf-fp16", "decode", "ctx1024", "device_ms_per_token", "ms", fig.LOWER, True,
                            (11.2, 11.3, 11.2) * 4, {"new_tokens": 128})  # fmt: skip
    ab_judge = judging.AbJudge({}, {head.key: base}, {}, {}, lambda: [], busy)
    [ab_message] = ab_judge.failures(ab_judge.judge([head]))
    assert "the GPU was not idle at the start (pid 1244 (python3) using 874 MiB)" in ab_message
    ab_quiet = judging.AbJudge({}, {head.key: base}, {}, {}, lambda: [])
    assert "not idle" not in ab_quiet.failures(ab_quiet.judge([head]))[0]


def test_a_ratio_or_agent_entry_measured_another_way_is_recorded_without_a_baseline_and_why(tmp_path):
    # a ratio whose entry an older perfgate wrote (a ratio of mean rates), an agent query whose traces were rebuilt
    # since the entry was written; a real run's figures carry these params (tests/test_gate_suite.py: a subset update
    # writes the ratio's estimator; tests/test_agent_suite.py: the agent's turn keys)
    ratio = fig.series("hf-nf4", "decode", "ctx32", judging.RATIO, (0.9, 0.95, 1.0),
                       {"new_tokens": 6, "interval": [0.9, 1.0], "estimator": measure.RATIO_ESTIMATOR})  # fmt: skip
    agent = fig.series("hf-fp16", "agent", "q3", "agent_query_p50_s", (1.0, 1.1, 1.2),
                       {"turn_keys": ["q01/1", "q01/2"], "turn_latency_s": [0.5, 0.6]})  # fmt: skip
    entries = {
        "hf-nf4/decode[ctx32]/decode_ratio_to_ref": {
            "value": 0.95, "unit": "x", "better": "higher", "samples": [0.95], "params": {"new_tokens": 6}
        },
        "hf-fp16/agent[q3]/agent_query_p50_s": {
            "value": 1.1, "unit": "s", "better": "lower", "samples": [1.1],
            "params": {"turn_keys": ["q01/9", "q01/2"], "turn_latency_s": [0.5, 0.6]},
        },
    }  # fmt: skip
    baseline = baselines.Baseline(tmp_path / "cpu.json", {"schema": 1, "models": {"m": {"entries": entries}}})
    judge = judging.Judge(baseline, "m", "hf-fp16", {}, {"gpu": "cpu"})
    judged = judge.judge([ratio, agent])
    recorded = [runfile.result_dict(j.figure, j) for j in judged]
    assert [r["verdict"]["status"] for r in recorded] == [gate.NO_BASELINE, gate.NO_BASELINE]
    assert recorded[0]["baseline"]["note"] == (
        "baseline's ratio measured another way (mean rates, now fast-state p10/p10): not comparable; "
        "update the baseline"
    )
    assert recorded[1]["baseline"]["note"] == "baseline measured on other agent queries or traces: not comparable"
    assert judge.failures(judged) == []  # recorded only: the run passes
