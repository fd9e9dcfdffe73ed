"""The worker process and its protocol, on the tiny model on the CPU."""

from pathlib import Path

import pytest

from perfgate.runner import WorkerError, WorkerHandle, fixed_layout, no_aslr_prefix

# on one pytest-xdist worker (make test: --dist loadgroup), so that the module-scoped worker loads the model once
pytestmark = pytest.mark.xdist_group("worker")


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
    delay_s = 0.3  # above a plain step even on two busy cores (0.2 s seen), so that the median shows it
    worker.call("set_step_delay", 30, delay_s=delay_s)
    try:
        slow = worker.call("generate", 300, prompt_tokens=16, new_tokens=6)
    finally:
        worker.call("set_step_delay", 30, delay_s=0.0)
    # every step waits out the delay on top of its own work (the plain round's steps are the work alone; compared
    # step by step with a single plain round, a millisecond of the machine's noise used to flip this test)
    assert slow["step_p10_s"] >= delay_s and slow["decode_s"] >= 5 * delay_s
    assert slow["step_median_s"] > plain["step_p10_s"]


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


ADDR_NO_RANDOMIZE = 0x0040000  # linux/personality.h


def test_a_fixed_layout_worker_has_the_fixed_hash_seed_and_no_address_randomisation(tmp_path, monkeypatch):
    monkeypatch.delenv("PYTHONHASHSEED", raising=False)
    prefix, env, what = fixed_layout()
    worker = WorkerHandle("layout", tmp_path / "worker.log", env, prefix)
    try:
        pid = worker.call("ping", 30)["pid"]
        assert pid == worker.pid  # setarch execs the worker in its own process: NVML finds its memory by this pid
        environ = Path(f"/proc/{pid}/environ").read_bytes().split(b"\0")
        assert b"PYTHONHASHSEED=0" in environ and what.startswith("PYTHONHASHSEED=0")
        personality = int(Path(f"/proc/{pid}/personality").read_text(), 16)
        if prefix:
            assert personality & ADDR_NO_RANDOMIZE and what.endswith("no address-space randomisation")
        else:  # no setarch here: said so, never silently
            assert "address-space randomisation stays on" in what
    finally:
        worker.close()


def test_without_setarch_the_layout_says_why(monkeypatch):
    no_aslr_prefix.cache_clear()
    monkeypatch.setattr("shutil.which", lambda name: None)
    try:
        assert no_aslr_prefix() == ((), "address-space randomisation stays on: no setarch on PATH (util-linux)")
    finally:
        no_aslr_prefix.cache_clear()
