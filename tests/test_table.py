from perfgate import figures as fig
from perfgate import table


def sample_figures():
    return [
        fig.from_samples("hf-fp16", "decode", "ctx1024", "decode_tok_per_s", "tok/s", fig.HIGHER, True, [20, 22, 24]),
        fig.from_samples("hf-fp16", "decode", "ctx1024", "ttft_s", "s", fig.LOWER, True, [0.06, 0.06]),
        fig.single("hf-fp16", "decode", "ctx1024", "peak_vram_mib", "MiB", fig.LOWER, True, 29268.0),
        fig.single("hf-fp16", "decode", "ctx1024", "peak_vram_device_mib", "MiB", fig.LOWER, False, None, "no NVML"),
        fig.single("hf-fp16", "load", "", "load_s", "s", fig.LOWER, False, 18.3),
    ]


def test_text_table_has_units_values_and_spread():
    text = table.render(sample_figures())
    lines = text.splitlines()
    header = [c.strip() for c in lines[0].split("  ") if c.strip()]
    assert header == [
        "variant",
        "workload",
        "decode tok/s",
        "× hf-fp16",
        "TTFT s",
        "peak VRAM MiB",
        "device Δ MiB",
        "torch max MiB",
        "% of bandwidth bound",
        "J/token",
    ]
    row = next(x for x in lines if x.startswith("hf-fp16  ctx1024"))
    assert "22.0 ±9%" in row and "0.060 ±0%" in row and "29,268" in row and "n/a" in row
    assert any(x.startswith("hf-fp16") and x.rstrip().endswith("18.3") for x in lines)


def test_markdown_round_trip_from_a_run_file():
    run = {"results": [f.to_dict() for f in sample_figures()]}
    figures = table.figures_of(run)
    assert figures == sample_figures()
    md = table.render(figures, markdown=True)
    assert "| variant | workload | decode tok/s |" in md
    assert "| hf-fp16 | ctx1024 | 22.0 ±9% |  | 0.060 ±0% | 29,268 | n/a |  |  |  |" in md


def test_the_gate_table_shows_an_interval_only_where_it_is_about_the_value():
    def record(metric, value, samples, test, interval):
        verdict = {"status": "pass", "clear": True, "limit": 1.0, "delta_pct": 0.0, "interval": interval, "test": test}
        return {
            "variant": "hf-nf4",
            "test": "decode",
            "workload": "ctx32",
            "metric": metric,
            "unit": "s",
            "value": value,
            "samples": samples,
            "baseline": {"value": 1.0},
            "verdict": verdict,
        }

    text = table.render_gate(
        [
            record("agent_query_p50_s", 2.0, [1.0, 2.0, 3.0], "paired sign", [1.0, 3.0]),
            record("agent_query_p95_s", 2.9, [1.0, 2.0, 3.0], "paired sign", [1.0, 3.0]),
        ]
    )
    p50, p95 = (line for line in text.splitlines() if "agent_query" in line)
    assert "1.000–3.000" in p50 and "–" not in p95  # a CI of the median says nothing about the p95
    assert text.splitlines()[-1] == "interval: 95% CI of the median"
    ratio = table.render_gate([record("decode_ratio_to_ref", 0.86, [0.8, 0.9, 0.95], "bootstrap", [0.83, 0.88])])
    assert "0.830–0.880" in ratio and "98% bootstrap interval" in ratio


def test_an_interrupted_run_says_why_what_it_stopped_and_what_never_started():
    info = {"reason": "signal SIGTERM", "during": ["test_agent[hf-int8]"], "not_run": ["test_load[a]", "test_load[b]"]}
    assert table.interrupted(info) == (
        "interrupted (signal SIGTERM) during test_agent[hf-int8], which recorded nothing; "
        "2 tests never started (test_load[a], test_load[b])"
    )
    assert table.interrupted({"reason": "Ctrl-C", "during": [], "not_run": ["test_load[a]"]}, markdown=True) == (
        "interrupted (Ctrl-C); 1 test never started (`test_load[a]`)"
    )
    ratio = {"metric": "decode_ratio_to_ref", "value": 0.8712, "unit": "x"}
    measured = [{"test": "test_decode[c-ctx1024]", "rounds": 8, "figures": [ratio]}]
    info = {"reason": "signal SIGTERM", "during": ["test_decode[c-ctx1024]"], "not_run": [], "measured": measured}
    assert table.interrupted(info) == (
        "interrupted (signal SIGTERM) during test_decode[c-ctx1024]; test_decode[c-ctx1024] stopped after 8 timed "
        "rounds (decode_ratio_to_ref 0.871 x); kept in the run file, not judged"
    )
    info["during"] = ["test_decode[c-ctx1024]", "test_load[d]"]  # two workers: one was in its rounds
    assert table.interrupted(info).endswith("; kept in the run file, not judged; the others recorded nothing")


def test_a_test_that_ended_in_an_error_says_which_where_and_what():
    info = {"test": "test_load[hf-bf16-static]", "phase": "setup", "message": "BuildError: building failed:\nOSError"}
    assert table.error(info) == (
        "test_load[hf-bf16-static]: error in its setup, no gated figure of it recorded: BuildError: building failed:"
    )
    info = {"test": "test_decode[a-ctx32]", "phase": "call", "message": "a: out of memory"}
    assert table.error(info, markdown=True) == (
        "`test_decode[a-ctx32]`: failed, no gated figure of it recorded: `a: out of memory`"
    )
    info = {"test": "test_load[a]", "phase": "teardown", "message": "OSError: disk full"}
    assert table.error(info) == "test_load[a]: error in its teardown: OSError: disk full"  # after its figures


def test_a_pass_for_want_of_evidence_says_when_the_figure_lies_beyond_its_limit():
    assert table.verdict_text("pass", False, beyond=True) == "pass (unclear, beyond limit)"
    assert table.verdict_text("pass", False) == "pass (unclear)"
    assert table.verdict_text("pass", True, beyond=False) == "pass"
    verdict = {"status": "pass", "clear": False, "beyond_limit": True, "limit": 0.95, "delta_pct": -12.2}
    record = {"variant": "hf-fp16-slow", "test": "decode", "workload": "ctx1024", "metric": "decode_ratio_to_ref"}
    record |= {"unit": "x", "value": 0.878, "samples": [0.9, 0.8], "baseline": {"value": 1.0}, "verdict": verdict}
    assert "pass (unclear, beyond limit)" in table.render_gate([record])
    del verdict["beyond_limit"]  # a run file written before the field
    assert "pass (unclear)" in table.render_gate([record]) and "beyond" not in table.render_gate([record])


def _record(status: str) -> dict:
    return {"verdict": {"status": status}}


def test_the_verdict_line_counts_each_status_and_says_the_next_step():
    run = {"results": [_record("pass")] * 84 + [_record("fail")] + [_record("no baseline")] * 12 + [{}]}
    assert table.verdict_line(run) == (
        "perfgate: 84 passed, 1 FAILED, 12 no baseline (record those with `make baseline`)"
    )
    fresh = {
        "results": [_record("no baseline")] * 3 + [_record("unavailable")],
        "baseline_check": {"problem": "results/baselines/cpu.json does not exist", "next_step": "no baseline for x"},
        "errors": [{"test": "t", "phase": "setup", "message": "m"}],
    }
    assert table.verdict_line(fresh) == (
        "perfgate: 3 no baseline, 1 not measurable here, 1 test in error; no baseline for x"
    )
    written = table.verdict_line(fresh, written="results/baselines/cpu.json, 3 entries new or changed")
    assert written.startswith("perfgate: baseline written: results/baselines/cpu.json, 3 entries new or changed; ")
    assert "**FAILED**" in table.verdict_line(run, markdown=True)


def test_time_lines_sum_each_variants_tests_costliest_first_a_users_variant_by_the_run_file_alone():
    parts = {"load": 6.0, "timed": 4.0}
    split = {"total_s": 10.0, "parts_s": parts, "tests_s": {"test_load[ours]": 5.0, "test_decode[hf-fp16-ctx16]": 4.0}}
    # a report is rendered without the project: `ours` is known only from the run file's variants or results
    loaded = table.time_lines({"time_split": split, "variants": {"ours": {}}})
    measured = table.time_lines({"time_split": split, "results": [{"variant": "ours"}]})
    assert (
        loaded
        == measured
        == [
            "time: 10 s, most in load 6 s (60 %), timed 4 s (40 %)",
            "time by variant (its tests, loads included): ours 5 s, hf-fp16 4 s",
        ]
    )
    assert table.time_lines({"time_split": split})[1].endswith(": test_load[ours] 5 s, hf-fp16 4 s")  # unknown alone
    assert table.time_lines({"time_split": {"total_s": 10.0, "parts_s": parts}}) == [loaded[0]]  # an older run file
    assert table.time_lines({"time_split": None}) == table.time_lines({}) == []
