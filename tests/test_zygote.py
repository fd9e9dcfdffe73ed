"""Workers forked from a zygote (perfgate.zygote) on the CPU: they answer as started ones do, their exit codes come
back, and a worker whose environment is not the zygote's is started on its own."""

import os
import signal
import time
from dataclasses import replace
from pathlib import Path

import pytest

from perfgate.runner import WorkerError, WorkerHandle, fixed_layout, start_zygote
from perfgate.variants import REGISTRY
from perfgate.zygote import ForkedProcess

# on one pytest-xdist worker (make test: --dist loadgroup), so that the module-scoped zygote imports torch once
pytestmark = pytest.mark.xdist_group("zygote")

# read by the worker at each call (os._exit(3)); the variant "crash" is hf-fp32 under another name
CRASH = {"PERFGATE_FAULTS": "crash@generate=crash"}


@pytest.fixture(scope="module")
def zygote(tmp_path_factory):
    prefix, env, _ = fixed_layout()
    started = start_zygote(prefix, {**env, **CRASH}, tmp_path_factory.mktemp("logs") / "zygote.log")
    yield started, prefix, {**env, **CRASH}
    started.close()


def parent_of(pid: int) -> int:
    return int(Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[1])


def test_a_forked_worker_loads_generates_and_exits_cleanly(zygote, micro_checkpoint, tmp_path):
    started, prefix, env = zygote
    worker = WorkerHandle("hf-fp32", tmp_path / "worker.log", env, prefix, zygote=started)
    assert isinstance(worker.proc, ForkedProcess) and parent_of(worker.pid) == started.proc.pid
    loaded = worker.call("load", 300, variant="hf-fp32", path=str(micro_checkpoint), device="cpu", max_seq_length=64)
    assert loaded["model"]["parameter_dtypes"] == ["float32"]
    assert loaded["load_s"] < 2  # torch and transformers were imported by the zygote, not by this worker
    assert worker.call("generate", 60, prompt_tokens=8, new_tokens=3)["new_tokens"] == 3
    worker.close()
    assert worker.proc.returncode == 0


def test_a_crash_and_a_kill_come_back_as_exit_codes(zygote, micro_checkpoint, tmp_path):
    started, prefix, env = zygote
    worker = WorkerHandle("crash", tmp_path / "crash.log", env, prefix, zygote=started)
    crash = replace(REGISTRY["hf-fp32"], name="crash").spec()
    worker.call("load", 300, variant=crash, path=str(micro_checkpoint), device="cpu", max_seq_length=64)
    with pytest.raises(WorkerError, match=r"died during 'generate' \(exit code 3\)") as died:
        worker.call("generate", 60, prompt_tokens=8, new_tokens=2)
    assert died.value.exit_code == 3  # (a death by the signal that interrupts a run is told apart by it)
    worker.close()
    killed = WorkerHandle("killed", tmp_path / "killed.log", env, prefix, zygote=started)
    killed.kill()
    assert killed.proc.wait(timeout=10) == -signal.SIGKILL
    with pytest.raises(WorkerError) as gone:
        killed.call("ping", 10)
    assert gone.value.kind == "died" and gone.value.exit_code == -signal.SIGKILL


def test_a_worker_of_another_environment_is_started_not_forked(zygote, tmp_path):
    started, prefix, env = zygote
    other = WorkerHandle("other", tmp_path / "other.log", {**env, "OMP_NUM_THREADS": "7"}, prefix, zygote=started)
    try:
        assert not isinstance(other.proc, ForkedProcess) and parent_of(other.pid) == os.getpid()
    finally:
        other.close()


def test_the_zygote_exits_after_its_last_worker(micro_checkpoint, tmp_path):
    prefix, env, _ = fixed_layout()
    started = start_zygote(prefix, env, tmp_path / "zygote.log")
    worker = WorkerHandle("hf-fp32", tmp_path / "worker.log", env, prefix, zygote=started)
    started.close()
    time.sleep(0.5)
    assert started.proc.poll() is None  # its worker is still up: it waits for it
    worker.close()
    assert started.proc.wait(timeout=10) == 0


def test_a_worker_is_started_on_its_own_once_the_zygote_fails(tmp_path):
    prefix, env, _ = fixed_layout()
    started = start_zygote(prefix, env, tmp_path / "zygote.log")
    started.sock.close()  # as a request cut short by Ctrl-C or a time limit leaves it: it can answer no more
    worker = WorkerHandle("after", tmp_path / "after.log", env, prefix, zygote=started)
    try:
        assert not isinstance(worker.proc, ForkedProcess) and parent_of(worker.pid) == os.getpid()
        assert "perfgate: worker after started on its own: " in (tmp_path / "after.log").read_text()
        assert not started.fits(env)  # and the next worker is started on its own at once
    finally:
        worker.close()
        started.proc.kill()
