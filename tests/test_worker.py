"""The worker process and its protocol, on the tiny model on the CPU."""

import pytest

from perfgate.runner import WorkerError, WorkerHandle


@pytest.fixture(scope="module")
def fp32_worker(tiny_checkpoint, tmp_path_factory):
    worker = WorkerHandle("hf-fp32", tmp_path_factory.mktemp("logs") / "worker.log")
    result = worker.call("load", 300, variant="hf-fp32", path=str(tiny_checkpoint), device="cpu", max_seq_length=512)
    yield worker, result
    worker.close()


def test_load_reports_what_was_loaded(fp32_worker):
    _, result = fp32_worker
    assert result["load_s"] > 0
    assert result["model"]["parameter_dtypes"] == ["float32"]
    assert result["torch_allocated_mib"] is None  # no CUDA: unavailable, not 0


def test_generate_returns_exact_counts_and_timings(fp32_worker):
    worker, _ = fp32_worker
    rnd = worker.call("generate", 300, prompt_tokens=64, new_tokens=8)
    assert rnd["new_tokens"] == 8
    assert 0 < rnd["ttft_s"] < rnd["wall_s"]
    assert rnd["decode_tok_per_s"] == pytest.approx(7 / rnd["decode_s"])
    assert rnd["clock_overhead_s"] < 0.01 * rnd["wall_s"]  # the clock costs under 1 % of what it measures


def test_step_delay_slows_every_decode_step(fp32_worker):
    worker, _ = fp32_worker
    plain = worker.call("generate", 300, prompt_tokens=16, new_tokens=6)
    worker.call("set_step_delay", 30, delay_s=0.05)
    try:
        slow = worker.call("generate", 300, prompt_tokens=16, new_tokens=6)
    finally:
        worker.call("set_step_delay", 30, delay_s=0.0)
    assert slow["step_median_s"] >= plain["step_median_s"] + 0.05
    assert slow["decode_s"] >= 5 * 0.05


def test_errors_come_back_with_their_kind(fp32_worker):
    worker, _ = fp32_worker
    with pytest.raises(WorkerError) as err:
        worker.call("load", 60, variant="hf-fp32", path="/nonexistent/checkpoint", device="cpu", max_seq_length=8)
    assert err.value.kind == "error" and "nonexistent" in str(err.value)
    assert worker.call("ping", 30)["pid"] == worker.pid  # the worker survived the error


def test_a_call_past_its_time_limit_kills_the_worker(tiny_checkpoint, tmp_path):
    worker = WorkerHandle("slow", tmp_path / "worker.log")
    try:
        with pytest.raises(WorkerError, match="no answer within") as err:
            worker.call("load", 0.01, variant="hf-fp32", path=str(tiny_checkpoint), device="cpu", max_seq_length=8)
        assert err.value.kind == "timeout"
        assert worker.proc.poll() is not None
    finally:
        worker.close()
