"""The profiled round's decomposition (perfgate.profiling) on made-up records, the exact-count rule of the gate,
and the failure message that names the kernels; and one real profiled round of the tiny model on the CPU."""

import pytest

from perfgate import gate, profiling
from perfgate.figures import SAME, Figure
from perfgate.profiling import Event, summarize

MS = 1_000_000  # ns
STEP = 5 * MS  # between two stamps


def token(at: int, kernels: int = 3, ms: float = 1.0, clock: bool = True) -> list[Event]:
    """One decode step launched at `at` ns (100 µs after the stamp before it): its launches, their kernels, one
    sync of the model's own, and the step clock's cudaDeviceSynchronize (as perfgate.generation.StepClock issues
    it), ending 5 µs before the next stamp."""
    out = []
    for k in range(kernels):
        out.append(Event("cuda_runtime", "cudaLaunchKernel", at + 1000 * k, 10))
        out.append(Event("kernel", f"void gemv<half, 128>(float*, 0x7f{k}a)", at + 1000 * k, int(ms * MS / kernels)))
    out.append(Event("cuda_runtime", "cudaStreamSynchronize", at + 50_000, 10))
    if clock:
        out.append(Event("cuda_runtime", "cudaDeviceSynchronize", at - 100_000 + STEP - 50_000, 45_000))
    return out


def stamps(n: int) -> list[int]:
    return [STEP * (i + 1) for i in range(n)]


def test_decode_tokens_are_counted_between_stamps_and_the_prefill_apart():
    s = stamps(5)  # 5 tokens: the first ends the prefill, 4 decode steps follow
    events = [Event("kernel", "prefill_gemm", 10, 40 * MS), Event("gpu_memcpy", "Memcpy HtoD", 20, MS)]
    for t in s[:-1]:
        events += token(t + 100_000)
    p = summarize(events, s, "cuda")
    assert p["tokens"] == 4
    assert p["prefill_device_ms"] == pytest.approx(41.0)
    assert p["device_ms_per_token"] == pytest.approx(1.0, rel=1e-3)
    assert p["device_ms_each_token"] == pytest.approx([1.0] * 4, rel=1e-3)
    assert p["kernels_per_token"] == 3 and p["launches_per_token"] == 3
    assert p["syncs_per_token"] == 1  # the model's own; the clock's one per token is counted apart
    assert p["clock_syncs_per_token"] == 1


def test_kernel_names_lose_addresses_and_anonymous_tags_but_keep_template_arguments():
    name = "void at::native::_GLOBAL__N__0a1b2c_8_Sort_cu_9f8e::sort_kernel<c10::Half, 128>(float*, 0x7f00ab)"
    assert profiling.kernel_identity(name) == (
        "void at::native::(anonymous namespace)::sort_kernel<c10::Half, 128>(float*, 0x…)"
    )
    s = stamps(3)
    events = [e for t in s[:-1] for e in token(t + 100_000, kernels=2)]
    table = summarize(events, s, "cuda")["kernels"]
    assert set(table) == {"void gemv<half, 128>(float*, 0x…)"}  # two addresses, one kernel
    assert table["void gemv<half, 128>(float*, 0x…)"]["per_token"] == 2


def test_a_graph_replay_is_one_launch_for_many_kernels():
    s = stamps(3)
    events = []
    for t in s[:-1]:
        events.append(Event("cuda_runtime", "cudaGraphLaunch", t + 100_000, 10))
        events += [Event("kernel", f"triton_poi_fused_{k}", t + 100_000, MS) for k in range(5)]
        events.append(Event("cuda_runtime", "cudaDeviceSynchronize", t + STEP - 50_000, 45_000))
    p = summarize(events, s, "cuda")
    assert (p["launches_per_token"], p["kernels_per_token"], p["device_ms_per_token"]) == (1, 5, pytest.approx(5.0))


def test_no_gpu_activity_and_too_few_tokens_are_said():
    with pytest.raises(profiling.NoProfile, match="no GPU activity"):
        summarize([Event("cuda_runtime", "cudaLaunchKernel", STEP + 100_000, 1)], stamps(3), "cuda")
    with pytest.raises(profiling.NoProfile, match="fewer than 2 tokens"):
        summarize([], [1000], "cuda")


def test_on_a_cpu_operators_are_counted_and_nested_ones_timed_once():
    s = stamps(3)
    events = []
    for t in s[:-1]:
        events += [
            Event("cpu_op", "aten::linear", t + 100, 500),
            Event("cpu_op", "aten::mm", t + 110, 400),  # inside aten::linear
            Event("cpu_op", "aten::add", t + 700, 100),
            Event("cpu_op", "profiler::_record_function_enter_new", t + 900, 1),  # the clock's mark: not counted
        ]
    p = summarize(events, s, "cpu")
    assert p["ops_per_token"] == 3
    assert p["cpu_op_ms_per_token"] == pytest.approx(600 / 1e6)
    assert "device_ms_per_token" not in p


def test_diff_tables_names_kernels_added_removed_and_slower():
    then = {"a": {"per_token": 2.0, "ms_per_token": 1.0}, "b": {"per_token": 1.0, "ms_per_token": 0.5}}
    now = {"a": {"per_token": 2.0, "ms_per_token": 1.2}, "c": {"per_token": 1.0, "ms_per_token": 0.1}}
    lines = profiling.diff_tables(now, then)
    assert "+1/token `c`" in lines and "-1/token `b`" in lines
    assert "+0.2000 ms/token `a` (1.0000 → 1.2000)" in lines
    assert profiling.diff_tables(now, then, times=False) == ["+1/token `c`", "-1/token `b`"]
    assert profiling.diff_tables({"cudaLaunchKernel": 2.0}, {"cudaLaunchKernel": 1.0}) == [
        "+1/token `cudaLaunchKernel`"
    ]
    many = {f"k{i}": {"per_token": 1.0, "ms_per_token": 0.1} for i in range(5)}
    assert profiling.diff_tables(many, {}, times=False, limit=3)[3:] == ["… and 2 more"]  # never cut silently


def test_a_count_fails_on_any_change_either_way_and_passes_when_equal():
    for value, status in ((2539.0, gate.PASS), (2540.0, gate.FAIL), (2538.0, gate.FAIL)):
        v = gate.judge((value,), value, SAME, 2539.0, 0.0)
        assert (v.status, v.test, v.clear, v.limit) == (status, "exact", True, 2539.0)
    assert gate.judge((1.0 / 3 * 3,), 1.0 / 3 * 3, SAME, 1.0, 0.0).status == gate.PASS  # float rounding only


def test_device_time_fails_beyond_its_tolerance_against_its_samples():
    base = tuple(11.25 + 0.002 * i for i in range(7))
    slower = tuple(11.92 + 0.002 * i for i in range(7))  # the GPU canary's 6 %
    tol = gate.tolerance_for("device_ms_per_token", {})
    assert tol == 0.03
    assert gate.judge(slower, 11.925, "lower", 11.256, tol, base).status == gate.FAIL
    moved = tuple(v * 1.016 for v in base)  # the spread seen between two H200 machine starts
    assert gate.judge(moved, 11.43, "lower", 11.256, tol, base).status == gate.PASS


def test_a_count_failure_names_the_kernels_that_changed(tmp_path):
    from perfgate import table
    from perfgate.judging import Judged

    then = {"void gemv<half>": {"per_token": 2539.0, "ms_per_token": 11.2}}
    now = {**then, "void at::native::sleep": {"per_token": 1.0, "ms_per_token": 0.7}}
    f = Figure("hf-fp16-gpuslow", "decode", "ctx1024", "kernels_per_token", "1/token", SAME, True, 2540.0, (2540.0,),
               params={"kernels": now})  # fmt: skip
    verdict = gate.judge((2540.0,), 2540.0, SAME, 2539.0, 0.0)
    entry = {"params": {"kernels": then}}
    text = table.failure_message(
        Judged(f, verdict, "hf-fp16/decode[ctx1024]/kernels_per_token", ""), tmp_path, {}, [], False, entry
    )
    assert text.splitlines()[:3] == [
        "hf-fp16-gpuslow decode[ctx1024] kernels_per_token = 2,540.0 1/token differs from the baseline 2,539.0 "
        "1/token (a count per token: any change fails; Δ +0.04%)",
        "  kernels per decode token, against the baseline's:",
        "    +1/token `void at::native::sleep`",
    ]


def test_a_real_profiled_round_on_the_cpu_counts_the_same_ops_each_time(tiny_checkpoint):
    from perfgate.worker import Worker

    w = Worker()
    w.op_load("hf-fp32", str(tiny_checkpoint), "cpu", 4096)
    w.op_generate(16, 8)
    first, second, whole = w.op_profile(16, 8, tokens=4), w.op_profile(16, 8, tokens=4), w.op_profile(16, 8)
    assert first["tokens"] == 3 and whole["tokens"] == 7  # stopped after 4 tokens; all 8
    assert first["ops_per_token"] == second["ops_per_token"] > 0
    assert first["profile_s"] > 0 and first["kernels"]
    w.op_set_device_delay(0.2)  # the GPU canary on a CPU: matrix products added to every decode step
    assert w.op_profile(16, 8, tokens=4)["ops_per_token"] > first["ops_per_token"]


def test_the_report_splits_each_step_into_device_and_host_beside_the_bandwidth_bound(tmp_path):
    from perfgate import report

    def result(metric, value, params=None):
        return {"test": "decode", "variant": "hf-fp16", "workload": "ctx1024", "metric": metric, "value": value,
                "params": params or {}}  # fmt: skip

    run = {
        "results": [
            result("device_ms_per_token", 11.25),
            result("host_ms_per_token", 32.4),
            result("bandwidth_share_pct", 16.0, {"bound_tok_per_s": 143.9}),
            {**result("device_ms_per_token", None), "variant": "hf-fp32"},  # no profile: no bar
        ]
    }
    assert report.step_split(run) == [("hf-fp16 ctx1024", 11.25, 32.4, pytest.approx(1000 / 143.9))]
    (path,) = report.plot_step_split(run, tmp_path)
    assert path.name == "step_split.png" and path.stat().st_size > 0


def test_stamps_are_taken_where_the_profiler_saw_them():
    # the host's clock and the profiler's differ by microseconds: an op 3 µs after a stamp must not count before it
    s = stamps(3)
    late = [st + 3000 for st in s]  # host stamps 3 µs late against the profiler's timeline
    events = []
    for t in s[:-1]:
        events += token(t + 100_000)
    snapped = profiling.profiler_stamps(events, late, "cuda")
    assert snapped == [late[0], *(st - 5000 for st in s[1:])]  # the clock syncs' ends; the first had none
    marks = [Event("user_annotation", profiling.STAMP_MARK, st, 1) for st in s]
    ops = [Event("cpu_op", "aten::bitwise_not", st + 1000, 1) for st in s]  # right after each stamp: the next token's
    assert profiling.profiler_stamps(marks + ops, late, "cpu") == s
    assert summarize(marks + ops, late, "cpu")["ops_per_token"] == 1
