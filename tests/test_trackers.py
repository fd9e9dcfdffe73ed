import os
import time

import pytest

from perfgate.trackers import Nvml, VramTracker


class FakeNvml:
    """Stands in for NVML: memory figures follow a script, one entry per call."""

    error = None
    ok = True

    def __init__(self, process_mib, device_mib):
        self._process = iter(process_mib)
        self._device = iter(device_mib)
        self.last = (None, 0.0)

    def process_mib(self, pid):
        self.last = (next(self._process, self.last[0]), self.last[1])
        return self.last[0]

    def device_used_mib(self):
        self.last = (self.last[0], next(self._device, self.last[1]))
        return self.last[1]


def test_peak_is_the_largest_sample():
    tracker = VramTracker(FakeNvml([100, 900, 300], [1100, 1900, 1300]), device_baseline_mib=1000, interval_s=0.001)
    with tracker.track(pid=123) as peak:
        time.sleep(0.05)
    result = peak()
    assert result.process_mib == 900
    assert result.device_mib == 900  # above the baseline of 1000
    assert result.samples >= 3 and result.unavailable is None


def test_no_gpu_is_unavailable_never_zero():
    with VramTracker(None, None).track(pid=1) as peak:
        pass
    result = peak()
    assert result.process_mib is None and result.device_mib is None
    assert "no CUDA device" in result.unavailable


def test_process_not_listed_by_nvml_is_unavailable():
    tracker = VramTracker(FakeNvml([None], [5.0]), device_baseline_mib=0.0, interval_s=0.001)
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


def test_gpu_clocks_and_why_they_are_held_down(monkeypatch):
    nvml = Nvml.__new__(Nvml)
    nvml._nvml, nvml.handle, nvml.error = ClockedPynvml(), object(), None
    assert nvml.clocks() == {"sm_mhz": 1980, "clock_event_reasons": 1}
    monkeypatch.setattr(ClockedPynvml, "nvmlDeviceGetClockInfo", lambda self, handle, clock: 1 / 0)  # unsupported
    assert nvml.clocks() == {"sm_mhz": None, "clock_event_reasons": 1}
    assert VramTracker(None, None).clocks() == {"sm_mhz": None, "clock_event_reasons": None}
