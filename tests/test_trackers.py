import os
import time

import pytest

from perfgate import trackers
from perfgate.trackers import Nvml, VramTracker


class FakeNvml:
    """Stands in for NVML: memory figures follow a script, one entry per call; the process measured is `pid`,
    `others` the other processes NVML lists (pid -> MiB) at each call."""

    error = None
    ok = True

    def __init__(self, process_mib, device_mib, others=(), pid=1):
        self._process = iter(process_mib)
        self._device = iter(device_mib)
        self._others = iter(others)
        self.pid = pid
        self.last = (None, 0.0, {})

    def processes(self):
        own, dev, others = self.last
        self.last = (next(self._process, own), dev, next(self._others, others))
        listed = dict(self.last[2])
        if self.last[0] is not None:
            listed[self.pid] = self.last[0]
        return listed

    def device_used_mib(self):
        self.last = (self.last[0], next(self._device, self.last[1]), self.last[2])
        return self.last[1]


def test_peak_is_the_largest_sample():
    tracker = VramTracker(FakeNvml([100, 900, 300], [1100, 1900, 1300]), device_baseline_mib=1000, interval_s=0.001)
    with tracker.track(pid=1) as peak:
        time.sleep(0.05)
    result = peak()
    assert result.process_mib == 900
    assert result.device_mib == 900  # above the baseline of 1000
    assert result.samples >= 3 and result.unavailable is None


def test_a_worker_started_after_this_one_is_not_counted_as_its_memory():
    # The variant (2,000 MiB) was started first, the reference (28,000 MiB) after it, so the device baseline taken
    # before the last worker started holds the variant, not the reference; the window starts from what the device
    # holds besides the variant, and the variant's growth to 2,500 MiB is what its device figure shows.
    nvml = FakeNvml([2000, 2200, 2500, 2400], [30000, 30200, 30500, 30400], pid=7)
    tracker = VramTracker(nvml, device_baseline_mib=2000, interval_s=0.001)
    with tracker.track(pid=7) as peak:
        time.sleep(0.05)
    assert peak().process_mib == 2500
    assert peak().device_mib == 2500  # not 28,500: the reference's memory is not the variant's


def test_what_another_process_allocates_during_the_window_is_not_counted_as_this_ones():
    # The reference (pid 9, 28,690 MiB) runs its rounds beside the variant and its cache grows by 568 MiB while the
    # variant's window is open (on the H200 the variant's device figure read 366-568 MiB above its process figure
    # that way); the variant itself grows from 10,434 to 10,774 MiB.
    others = [{9: 28690}, {9: 28690}, {9: 29258}, {9: 29258}, {9: 28690}]
    nvml = FakeNvml([10434, 10434, 10774, 10600, 10500], [39130, 39130, 40038, 39864, 39196], others, pid=3)
    tracker = VramTracker(nvml, device_baseline_mib=0, interval_s=0.001)
    with tracker.track(pid=3) as peak:
        time.sleep(0.05)
    assert peak().process_mib == 10774
    assert peak().device_mib == 10774  # not 10,774 + 568: the reference's growth is the reference's


def test_a_failed_first_look_leaves_the_older_baseline_and_the_others_memory_out():
    class FirstLookFails(FakeNvml):
        looks = 0

        def processes(self):
            self.looks += 1
            if self.looks == 1:
                raise RuntimeError("NVML busy")
            return super().processes()

    # 28,000 MiB of another process's, already on the device before the worker started (the baseline of 28,000)
    nvml = FirstLookFails([500, 900], [28500, 28900], [{9: 28000}], pid=4)
    tracker = VramTracker(nvml, device_baseline_mib=28000, interval_s=0.001)
    with tracker.track(pid=4) as peak:
        time.sleep(0.05)
    assert peak().device_mib == 900  # not 900 - 28,000: the others' memory is in the baseline, not their growth


def test_the_device_baseline_stands_where_nvml_does_not_list_the_process_yet():
    # A worker that has not touched the GPU yet (a load's window opens before CUDA starts in it): the device as it
    # was before the worker started is the baseline.
    tracker = VramTracker(
        FakeNvml([None, 300, 900], [1000, 1300, 1900], pid=8), device_baseline_mib=1000, interval_s=0.001
    )
    with tracker.track(pid=8) as peak:
        time.sleep(0.05)
    assert peak().device_mib == 900


def test_each_worker_keeps_the_device_as_it_was_before_it_started():
    # An A/B run's two sides start at the same time: the base (pid 8) when the device held 1,000 MiB, the head
    # (pid 9) after the base's CUDA context had taken 500 more. Neither is listed by NVML yet; each window starts
    # from the device as it was before that worker, not from whichever worker started last.
    nvml = FakeNvml([None, None, None], [1500, 1800, 2400], pid=8)
    tracker = VramTracker(nvml, device_baseline_mib=0, interval_s=0.001)
    tracker.device_baselines.update({8: 1000, 9: 1500})
    with tracker.track(pid=8) as peak:
        time.sleep(0.05)
    assert peak().device_mib == 1400
    nvml = FakeNvml([None, None], [1500, 2100], pid=9)
    tracker.nvml = nvml
    with tracker.track(pid=9) as peak:
        time.sleep(0.05)
    assert peak().device_mib == 600


def test_no_gpu_is_unavailable_never_zero():
    with VramTracker(None, None).track(pid=1) as peak:
        pass
    result = peak()
    assert result.process_mib is None and result.device_mib is None
    assert "no CUDA device" in result.unavailable


def test_process_not_listed_by_nvml_is_unavailable():
    tracker = VramTracker(FakeNvml([None], [5.0], pid=42), device_baseline_mib=0.0, interval_s=0.001)
    with tracker.track(pid=42) as peak:
        time.sleep(0.01)
    assert peak().process_mib is None
    assert "no memory figure for the worker" in peak().unavailable


def test_nvml_without_a_driver_says_why(monkeypatch):
    monkeypatch.setitem(os.environ, "CUDA_VISIBLE_DEVICES", "0")
    nvml = Nvml()
    if nvml.ok:
        pytest.skip("this machine has a working NVML")
    assert not nvml.ok
    assert nvml.error.startswith("NVML unavailable")
    with VramTracker(nvml, None).track(pid=1) as peak:
        pass
    assert peak().unavailable.startswith("NVML unavailable")


def test_other_processes_on_the_gpu_are_named(monkeypatch):
    import os

    from perfgate import session

    class Stub:
        class tracker:  # noqa: N801 - stands in for the session's tracker attribute
            class nvml:  # noqa: N801
                ok = True

                @staticmethod
                def processes():
                    return {os.getpid(): 10.0, 999999: 20480.0, 999998: None}

    lines = session.PerfSession.other_gpu_processes(Stub)
    assert lines == [
        "pid 999998 (another container or user) using an unreported amount of memory",
        "pid 999999 (another container or user) using 20,480 MiB",
    ]


class ClockedPynvml:
    """The few pynvml calls behind Nvml.clocks, one of them unsupported as on some drivers."""

    NVML_CLOCK_SM = 1

    def nvmlDeviceGetClockInfo(self, handle, clock):
        assert clock == 1
        return 1980

    def nvmlDeviceGetCurrentClocksThrottleReasons(self, handle):  # an older pynvml: the old name only
        return 0x1

    def nvmlDeviceGetUUID(self, handle):
        return b"GPU-8c1f0000-0000-0000-0000-000000000000"


def test_gpu_clocks_and_why_they_are_held_down(monkeypatch):
    nvml = Nvml.__new__(Nvml)
    nvml._nvml, nvml.handle, nvml.error = ClockedPynvml(), object(), None
    assert nvml.clocks() == {"sm_mhz": 1980, "clock_event_reasons": 1}
    monkeypatch.setattr(ClockedPynvml, "nvmlDeviceGetClockInfo", lambda self, handle, clock: 1 / 0)  # unsupported
    assert nvml.clocks() == {"sm_mhz": None, "clock_event_reasons": 1}
    assert VramTracker(None, None).clocks() == {"sm_mhz": None, "clock_event_reasons": None}


def test_steal_time_per_core_and_for_the_whole_machine(tmp_path):
    stat = tmp_path / "stat"
    stat.write_text("cpu  10 0 5 900 0 0 0 300 0 0\ncpu0 5 0 2 450 0 0 0 100 0 0\ncpu1 5 0 3 450 0 0 0 200 0 0\n")
    tick = os.sysconf("SC_CLK_TCK")
    assert trackers.cpu_steal_s(None, stat) == 300 / tick and trackers.cpu_steal_s(1, stat) == 200 / tick
    assert trackers.cpu_steal_s(7, stat) is None  # no such CPU
    assert trackers.cpu_steal_s(0, tmp_path / "missing") is None
    assert trackers.cpu_khz(None) is None and trackers.cpu_khz(0, tmp_path) is None  # no cpufreq there
    (tmp_path / "cpu3" / "cpufreq").mkdir(parents=True)
    (tmp_path / "cpu3" / "cpufreq" / "scaling_cur_freq").write_text("2400000\n")
    assert trackers.cpu_khz(3, tmp_path) == 2400000


def test_the_gpu_is_known_by_its_uuid(monkeypatch):
    nvml = Nvml.__new__(Nvml)
    nvml._nvml, nvml.handle, nvml.error = ClockedPynvml(), object(), None
    assert nvml.uuid() == "GPU-8c1f0000-0000-0000-0000-000000000000"
    monkeypatch.setattr(ClockedPynvml, "nvmlDeviceGetUUID", lambda self, handle: 1 / 0)  # unsupported
    assert nvml.uuid() is None


def test_cuda_numbers_the_gpus_as_nvml_does_unless_the_user_chose(monkeypatch):
    monkeypatch.delenv("CUDA_DEVICE_ORDER", raising=False)
    trackers.align_device_order()
    assert os.environ["CUDA_DEVICE_ORDER"] == "PCI_BUS_ID"
    monkeypatch.setenv("CUDA_DEVICE_ORDER", "FASTEST_FIRST")
    trackers.align_device_order()
    assert os.environ["CUDA_DEVICE_ORDER"] == "FASTEST_FIRST"


def test_minor_faults_read_after_the_command_name_whatever_it_holds(tmp_path):
    (tmp_path / "12").mkdir()
    # a command name with a space and a parenthesis in it, then state, ppid, pgrp, session, tty, tpgid, flags, minflt
    (tmp_path / "12" / "stat").write_text("12 (python3 (x) y) S 1 12 12 0 -1 4194560 5321 0 7 0 90 10\n")
    assert trackers.minor_faults(12, tmp_path) == 5321
    assert trackers.minor_faults(13, tmp_path) is None  # no such process
    assert trackers.minor_faults(os.getpid()) > 0  # this process has touched memory


def test_memory_placement_huge_pages_and_numa_nodes_where_there_are_several(tmp_path):
    proc, nodes = tmp_path / "proc", tmp_path / "node"
    (proc / "5").mkdir(parents=True)
    (proc / "5" / "smaps_rollup").write_text("Rss:             2048000 kB\nAnonHugePages:    524288 kB\n")
    (proc / "5" / "numa_maps").write_text(
        "7f00 default anon=1024 dirty=1024 N0=768 N1=256 kernelpagesize_kB=4\n"
        "7f10 default file=/usr/lib/libpython3.so mapped=512 N1=512 kernelpagesize_kB=4\n"
        "7f20 default file=/dev/hugepages/x huge dirty=2 N1=2 kernelpagesize_kB=2048\n"  # counted in 2-MiB pages
    )
    (nodes / "node0").mkdir(parents=True)
    one_node = trackers.memory_placement(5, proc, nodes)
    assert one_node == {"anon_huge_mib": 512.0, "numa_node_mib": None}  # one node: nothing to tell apart
    (nodes / "node1").mkdir()
    two = trackers.memory_placement(5, proc, nodes)
    assert two["numa_node_mib"] == {"0": 3.0, "1": 7.0}  # 768 pages of 4 kB; 768 of 4 kB and 2 of 2 MiB
    assert trackers.memory_placement(6, proc, nodes) == {"anon_huge_mib": None, "numa_node_mib": None}


def test_the_session_keeps_what_the_device_held_before_each_worker_it_starts(monkeypatch, tmp_path):
    # The variant's worker (pid 101) starts on a device holding 1,000 MiB; the reference's (pid 102) after the
    # variant has loaded, 29,000 MiB: each worker's fallback is its own, and a released worker's goes.
    from types import SimpleNamespace

    from perfgate import session as session_module
    from perfgate.session import Loaded, PerfSession

    class Worker:
        pids = iter([101, 102])

        def __init__(self, *args, **kwargs):
            self.pid = next(self.pids)

        def close(self):
            pass

    monkeypatch.setattr(session_module, "WorkerHandle", Worker)
    perf = object.__new__(PerfSession)  # only _start_worker's and release's own logic
    nvml = FakeNvml([], [1000, 29000])
    perf._tracker, perf.base, perf.cache, perf.layout = VramTracker(nvml, None), None, tmp_path, ((), {}, "")
    perf.model, perf.loaded = SimpleNamespace(kind="synthetic"), {}
    perf.core_env, perf.zygote = lambda key: {}, lambda prefix, env: None
    first, second = perf._start_worker("hf-nf4"), perf._start_worker("hf-fp16")
    assert perf.tracker.device_baselines == {101: 1000, 102: 29000}
    perf.loaded["hf-nf4"] = Loaded(None, first, None)
    perf.release("hf-nf4")
    assert perf.tracker.device_baselines == {102: 29000}
    assert second.pid == 102
