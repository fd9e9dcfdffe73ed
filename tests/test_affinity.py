import contextlib
import os
import threading

import pytest

from perfgate import affinity


def fake_sys(tmp_path, groups):
    """A /sys/devices/system/cpu with these SMT sibling groups."""
    for group in groups:
        for core in group:
            topo = tmp_path / f"cpu{core}" / "topology"
            topo.mkdir(parents=True)
            topo.joinpath("thread_siblings_list").write_text(",".join(map(str, group)) + "\n")
    return tmp_path


def test_cpu_lists_are_read_as_the_kernel_writes_them():
    assert affinity.parse_cpu_list("0-3,8,10-11\n") == {0, 1, 2, 3, 8, 10, 11}


def test_workers_get_two_physical_cores_and_their_siblings_stay_idle(tmp_path):
    # siblings n and n+8 (a common numbering): 15 and 14 are different physical cores
    sys_cpu = fake_sys(tmp_path / "a", [(n, n + 8) for n in range(8)])
    ref, own, rest = affinity.worker_cores(set(range(16)), sys_cpu)
    assert (ref, own) == (15, 14) and rest == set(range(16)) - {6, 7, 14, 15}
    # adjacent siblings: 14 shares 15's physical core, so the variant gets 13
    sys_cpu = fake_sys(tmp_path / "b", [(2 * n, 2 * n + 1) for n in range(8)])
    ref, own, rest = affinity.worker_cores(set(range(16)), sys_cpu)
    assert (ref, own) == (15, 13) and rest == set(range(12))


def test_no_pinning_without_enough_cores(tmp_path):
    assert affinity.worker_cores({0, 1, 2}, tmp_path) is None
    sys_cpu = fake_sys(tmp_path, [(0, 1), (2, 3)])
    assert affinity.worker_cores({0, 1, 2, 3}, sys_cpu) is None  # nothing left beside the two workers
    assert affinity.worker_cores({0, 1, 2, 3}, tmp_path / "nothing") == (3, 2, {0, 1})  # topology unknown


@pytest.mark.skipif(not hasattr(os, "sched_setaffinity"), reason="Linux only")
def test_every_thread_of_the_process_is_moved():
    before = os.sched_getaffinity(0)
    started, stop = threading.Event(), threading.Event()
    ids = {}

    def idle():
        ids["tid"] = threading.get_native_id()
        started.set()
        stop.wait(10)

    thread = threading.Thread(target=idle)
    thread.start()
    started.wait(10)
    one = {min(before)}
    try:
        assert affinity.pin_process(one) == []
        assert os.sched_getaffinity(ids["tid"]) == one  # sched_setaffinity(0) alone would have left it
        assert os.sched_getaffinity(0) == one
    finally:
        affinity.pin_process(before)
        stop.set()
        thread.join()
    assert os.sched_getaffinity(0) == before


def test_the_session_pins_its_own_threads_off_the_workers_cores_once(monkeypatch, tmp_path):
    from perfgate import session as session_module

    moved = []
    monkeypatch.setattr(session_module.os, "sched_getaffinity", lambda pid: set(range(16)), raising=False)
    monkeypatch.setattr(affinity, "worker_cores", lambda allowed: (15, 14, allowed - {14, 15}))
    monkeypatch.setattr(affinity, "pin_process", lambda cores, pid=0: moved.append(set(cores)) or [])
    perf = session_module.PerfSession.__new__(session_module.PerfSession)
    perf.device, perf.reference, perf._own_affinity = "cuda", "hf-fp16", None
    assert (perf.worker_core("hf-fp16"), perf.worker_core("hf-nf4")) == (15, 14)
    perf.keep_off_worker_cores()
    perf.keep_off_worker_cores()
    assert moved == [set(range(14))]  # once, before the first pinned worker
    perf.parallel, perf._together = {}, False
    spread = ",".join(map(str, range(1, 15)))  # core 0 stays with the session's VRAM sampler
    assert perf.core_env("hf-nf4") == {"PERFGATE_CPU_CORE": "14", "PERFGATE_LOAD_CORES": spread}
    perf._together = True  # an A/B run's two sides loading at once: the spare cores halved between them
    assert perf.core_env("hf-nf4@base") == {"PERFGATE_CPU_CORE": "15", "PERFGATE_LOAD_CORES": "1,2,3,4,5,6,15"}
    assert perf.core_env("hf-nf4") == {"PERFGATE_CPU_CORE": "14", "PERFGATE_LOAD_CORES": "7,8,9,10,11,12,13,14"}
    perf._together = False
    perf.parallel = {"role": "worker", "worker": "gw0", "gpu": "0"}  # another GPU's worker may be timed on the rest
    assert perf.core_env("hf-nf4") == {"PERFGATE_CPU_CORE": "14"}
    perf.device = "cpu"
    del perf.cores  # chosen again, for a CPU run
    assert perf.worker_core("hf-fp16") is None  # on the CPU the cores compute: nothing is pinned


def test_a_load_spreads_over_the_spare_cores_and_returns_to_its_own(monkeypatch):
    torch = pytest.importorskip("torch")
    before, threads = os.sched_getaffinity(0), torch.get_num_threads()
    home = min(before)
    try:
        affinity.pin_process({home})
        torch.set_num_threads(1)
        with affinity.spread_while_loading(before, home):
            assert os.sched_getaffinity(0) == before and torch.get_num_threads() == len(before)
        assert os.sched_getaffinity(0) == {home} and torch.get_num_threads() == 1
        with pytest.raises(RuntimeError), affinity.spread_while_loading(before, home):
            raise RuntimeError("a failed load")
        assert os.sched_getaffinity(0) == {home} and torch.get_num_threads() == 1  # back after a failure too
    finally:
        affinity.pin_process(before)
        torch.set_num_threads(threads)


def test_a_worker_spreads_its_load_only_when_the_session_says_where(monkeypatch):
    from perfgate import worker

    monkeypatch.delenv("PERFGATE_LOAD_CORES", raising=False)
    monkeypatch.setenv("PERFGATE_CPU_CORE", "0")
    assert isinstance(worker.load_cores(), contextlib.nullcontext)  # pinned, loading on its own core
    monkeypatch.setenv("PERFGATE_LOAD_CORES", "0-1")
    assert not isinstance(worker.load_cores(), contextlib.nullcontext)
    monkeypatch.delenv("PERFGATE_CPU_CORE")  # not pinned at all (the CPU): nothing to spread or return to
    assert isinstance(worker.load_cores(), contextlib.nullcontext)
