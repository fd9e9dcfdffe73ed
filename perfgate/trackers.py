"""Trackers: GPU memory seen through NVML (pynvml, from nvidia-ml-py), sampled by a background thread.

Two figures, because they answer different questions: the worker process's own GPU memory (what this
variant costs, CUDA context and allocator cache included: what `nvidia-smi` shows for the process), and the
device's used memory above what it was before the worker started (what the variant takes from everyone
else). `torch.cuda.max_memory_allocated`, read inside the worker, is kept beside them as a cross-check: it
sees only tensors, so it is always the smallest of the three.

Without NVML (no driver, no GPU, permission denied) the figures are unavailable, with the reason; never 0.
"""

from __future__ import annotations

import os
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

MIB = 2**20


@dataclass(frozen=True)
class VramPeak:
    process_mib: float | None
    device_mib: float | None  # the device's used memory less the other processes' (VramTracker.others_mib)
    samples: int
    unavailable: str | None = None


def align_device_order() -> None:
    """Make CUDA number the GPUs as NVML and nvidia-smi do, by PCI bus, unless the user chose an order. CUDA's
    default is fastest first: on a machine with two kinds of GPU, CUDA_VISIBLE_DEVICES=1 (or a pytest worker's
    pinned GPU) could then be one GPU to torch and another to NVML, and VRAM and clocks would be read off the GPU
    that is not measured. Called before anything starts CUDA; the model workers inherit it."""
    os.environ.setdefault("CUDA_DEVICE_ORDER", "PCI_BUS_ID")


class Nvml:
    """A thin handle on NVML for the device this process's CUDA_VISIBLE_DEVICES points at (an index in NVML's
    order, which align_device_order makes CUDA's too, or a GPU UUID)."""

    def __init__(self) -> None:
        self.error: str | None = None
        self.handle = None
        try:
            import pynvml

            pynvml.nvmlInit()
            self._nvml = pynvml
            self.handle = self._device_handle(pynvml)
        except Exception as exc:  # pynvml raises NVMLError subclasses, ImportError, or OSError for the library
            self.error = f"NVML unavailable: {type(exc).__name__}: {exc}"

    @staticmethod
    def _device_handle(pynvml):
        first = os.environ.get("CUDA_VISIBLE_DEVICES", "0").split(",")[0].strip() or "0"
        if first.startswith("GPU-"):
            return pynvml.nvmlDeviceGetHandleByUUID(first)
        if first.startswith("MIG-"):
            raise RuntimeError(f"MIG device {first}: per-process memory is not reported for MIG instances")
        return pynvml.nvmlDeviceGetHandleByIndex(int(first))

    @property
    def ok(self) -> bool:
        return self.handle is not None

    def device_used_mib(self) -> float:
        return self._nvml.nvmlDeviceGetMemoryInfo(self.handle).used / MIB

    def device_free_mib(self) -> float:
        return self._nvml.nvmlDeviceGetMemoryInfo(self.handle).free / MIB

    def processes(self) -> dict[int, float | None]:
        """pid -> MiB for every compute process on the device (None where the driver withholds the figure)."""
        procs = self._nvml.nvmlDeviceGetComputeRunningProcesses(self.handle)
        return {p.pid: (p.usedGpuMemory / MIB if p.usedGpuMemory is not None else None) for p in procs}

    def energy_mj(self) -> float | None:
        """The device's total energy counter in millijoules since the driver loaded (Volta and later); None where
        the GPU or driver does not support it."""
        try:
            return float(self._nvml.nvmlDeviceGetTotalEnergyConsumption(self.handle))
        except Exception:  # NVMLError_NotSupported and friends: the figure is unavailable, never 0
            return None

    def clocks(self) -> dict[str, int | None]:
        """The SM clock (MHz) and NVML's bitmask of why clocks are held down right now (idle 0x1, power cap 0x4,
        thermal 0x20/0x40 ...); None for what the driver does not report."""
        n = self._nvml
        found: dict[str, int | None] = {"sm_mhz": None, "clock_event_reasons": None}
        try:
            found["sm_mhz"] = int(n.nvmlDeviceGetClockInfo(self.handle, getattr(n, "NVML_CLOCK_SM", 1)))
        except Exception:  # not supported here: left None
            pass
        reasons = getattr(n, "nvmlDeviceGetCurrentClocksEventReasons", None) or getattr(
            n, "nvmlDeviceGetCurrentClocksThrottleReasons", None
        )
        try:
            found["clock_event_reasons"] = int(reasons(self.handle)) if reasons else None
        except Exception:
            pass
        return found

    def device_info(self) -> dict[str, str | int | None]:
        n = self._nvml
        return {
            "gpu": _text(n.nvmlDeviceGetName(self.handle)),
            "gpu_memory_mib": int(n.nvmlDeviceGetMemoryInfo(self.handle).total // MIB),
            "driver": _text(n.nvmlSystemGetDriverVersion()),
            "gpu_uuid": self.uuid(),
        }

    def uuid(self) -> str | None:
        """The GPU's UUID ('GPU-8c1f…'): the same physical GPU always has the same one, so two runs with different
        UUIDs were measured on different GPUs, whatever the machines were called. None where NVML does not say."""
        try:
            return _text(self._nvml.nvmlDeviceGetUUID(self.handle))
        except Exception:  # not supported here: unknown, never guessed
            return None


def _text(value) -> str:
    return value.decode() if isinstance(value, bytes) else str(value)


@dataclass
class _Window:
    process_peak: float | None = None
    device_peak: float | None = None
    device_base: float = 0.0  # the device's used memory that is not this process's, at the window's start
    others_base: float | None = None  # what the other processes NVML lists held then; None: not known
    samples: int = 0
    errors: list[str] = field(default_factory=list)


class VramTracker:
    """`with tracker.track(pid) as peak: ...` samples in a background thread until the block ends; then
    `peak()` returns the VramPeak. Sampling every few milliseconds: NVML's own figures update at about that
    rate, and a sample costs well under a millisecond of a core the measured process does not use."""

    def __init__(self, nvml: Nvml | None, device_baseline_mib: float | None, interval_s: float = 0.005) -> None:
        self.nvml = nvml
        self.device_baseline_mib = device_baseline_mib
        # per worker pid, what the device held just before that worker started (MiB): the fallback of others_mib.
        # One value for all would be the last started worker's: the reference started after a variant, or an A/B
        # run's base after its head, would give the earlier worker a baseline that holds its own memory.
        self.device_baselines: dict[int, float] = {}
        self.interval_s = interval_s

    def unavailable(self) -> str | None:
        if self.nvml is None:
            return "no CUDA device: VRAM is not measured on the CPU"
        return self.nvml.error

    def energy_mj(self) -> float | None:
        """The device's energy counter (mJ), or None without NVML or without the counter."""
        if self.nvml is None or not self.nvml.ok:
            return None
        return self.nvml.energy_mj()

    def clocks(self) -> dict[str, int | None]:
        if self.nvml is None or not self.nvml.ok:
            return {"sm_mhz": None, "clock_event_reasons": None}
        return self.nvml.clocks()

    def sample(self, pid: int, window: _Window) -> None:
        try:
            procs = self.nvml.processes()
            proc = procs.get(pid)
            dev = self.nvml.device_used_mib() - window.device_base
            if window.others_base is not None:
                dev -= _listed_others(procs, pid) - window.others_base
        except Exception as exc:  # a failed sample is noted, not fatal: the others still count
            window.errors.append(f"{type(exc).__name__}: {exc}")
            return
        window.samples += 1
        if proc is not None:
            window.process_peak = proc if window.process_peak is None else max(window.process_peak, proc)
        window.device_peak = dev if window.device_peak is None else max(window.device_peak, dev)

    def others_mib(self, pid: int) -> tuple[float, float | None]:
        """What the device holds now that is not this process's, and how much of that the other processes NVML
        lists hold. The first is the device's used memory less the process's own where NVML lists the process,
        else `device_baseline_mib` (the device before this worker was started). Taken afresh for each window, so
        that a worker started after this one (the reference, loaded after the variant when the reference is not
        among --perf-variants) is not counted as this one's. The second lets each sample take out what the other
        processes allocate while the window is open (the reference's rounds beside the variant's, where its cache
        grows); a process whose figure the driver withholds (None) is not listed, so its growth still counts, and
        where the look fails (None) all of the others' growth does."""
        try:
            procs = self.nvml.processes()
            own = procs.get(pid)
            base = self.nvml.device_used_mib() - own if own is not None else self._device_before(pid)
            return base, _listed_others(procs, pid)
        except Exception:  # a failed look leaves the older baseline, as a failed sample is skipped
            return self._device_before(pid), None

    def _device_before(self, pid: int) -> float:
        """What the device held before this worker started (MiB), else the tracker's one baseline, else 0."""
        return self.device_baselines.get(pid, self.device_baseline_mib) or 0.0

    @contextmanager
    def track(self, pid: int) -> Iterator[callable]:
        reason = self.unavailable()
        window = _Window()
        if reason:
            yield lambda: VramPeak(None, None, 0, reason)
            return
        window.device_base, window.others_base = self.others_mib(pid)
        stop = threading.Event()

        def run() -> None:
            while not stop.is_set():
                self.sample(pid, window)
                stop.wait(self.interval_s)

        thread = threading.Thread(target=run, name="perfgate-vram", daemon=True)
        thread.start()
        try:
            yield lambda: _peak(window)
        finally:
            stop.set()
            thread.join()
            self.sample(pid, window)  # one last look, after the work ended


def _listed_others(procs: dict[int, float | None], pid: int) -> float:
    return sum(mib for other, mib in procs.items() if other != pid and mib is not None)


def _peak(window: _Window) -> VramPeak:
    reason = None
    if window.process_peak is None:
        reason = "NVML reported no memory figure for the worker process"
        if window.errors:
            reason += f" ({window.errors[-1]})"
    return VramPeak(window.process_peak, window.device_peak, window.samples, reason)


def cpu_steal_s(core: int | None, proc_stat: Path = Path("/proc/stat")) -> float | None:
    """Seconds the hypervisor has given this CPU (all CPUs with None) to someone else while it had work: the steal
    column of /proc/stat, in the kernel's USER_HZ ticks. A guest does not see stolen time as context switches, so a
    worker slowed by its virtual CPU being descheduled shows here and not in involuntary_switches. None where the
    kernel does not report it."""
    name = "cpu" if core is None else f"cpu{core}"
    try:
        for line in proc_stat.read_text().splitlines():
            fields = line.split()
            if fields and fields[0] == name:
                return int(fields[8]) / os.sysconf("SC_CLK_TCK") if len(fields) > 8 else None
    except (OSError, ValueError):
        pass
    return None


def cpu_khz(core: int | None, sys_cpu: Path = Path("/sys/devices/system/cpu")) -> int | None:
    """The core's current clock as the kernel's cpufreq reports it (kHz); None where it does not (many VMs)."""
    if core is None:
        return None
    try:
        return int((sys_cpu / f"cpu{core}" / "cpufreq" / "scaling_cur_freq").read_text())
    except (OSError, ValueError):
        return None


def minor_faults(pid: int, proc: Path = Path("/proc")) -> int | None:
    """Page faults the process has taken that needed no disk (minflt, the 10th field of /proc/PID/stat): an allocator
    that hands memory back to the kernel and touches it again faults on every step, a cost of its own process that
    one worker can carry and an identical one not. None off Linux."""
    try:
        fields = (proc / str(pid) / "stat").read_text().rsplit(")", 1)[1].split()  # after the command's name
        return int(fields[7])
    except (OSError, ValueError, IndexError):
        return None


def numa_nodes(nodes: Path = Path("/sys/devices/system/node")) -> int:
    """How many NUMA nodes the kernel lists (node0, node1, ...; numbers may have gaps); 0 where it says nothing."""
    return len(list(nodes.glob("node[0-9]*"))) if nodes.is_dir() else 0


def memory_placement(
    pid: int, proc: Path = Path("/proc"), nodes: Path = Path("/sys/devices/system/node")
) -> dict[str, Any]:
    """Where the process's memory lies, as two things that differ between processes running the same code and can
    slow a launch-bound decoder's host side: its anonymous memory in transparent huge pages (MiB, AnonHugePages of
    /proc/PID/smaps_rollup: fewer TLB misses), and, on a machine of more than one NUMA node, its resident pages per
    node (MiB, /proc/PID/numa_maps: memory first touched by a load on another node's cores is slower to reach).
    Read between rounds, never during one: the kernel walks the process's mappings (about 40 ms a read for a process
    of 4 GiB resident on a 2-core machine). None for what cannot be read."""
    out: dict[str, Any] = {"anon_huge_mib": None, "numa_node_mib": None}
    try:
        for line in (proc / str(pid) / "smaps_rollup").read_text().splitlines():
            if line.startswith("AnonHugePages:"):
                out["anon_huge_mib"] = int(line.split()[1]) / 1024  # kB
    except (OSError, ValueError, IndexError):
        pass
    if numa_nodes(nodes) < 2:
        return out  # one node (or none said): nothing to tell apart
    default_kb = os.sysconf("SC_PAGE_SIZE") / 1024
    per_node: dict[str, float] = {}
    try:
        for line in (proc / str(pid) / "numa_maps").read_text().splitlines():
            fields = dict(f.split("=", 1) for f in line.split()[2:] if "=" in f)
            page_kb = float(fields.get("kernelpagesize_kB", default_kb))  # N<node>= counts pages of this size
            for key, pages in fields.items():
                if key.startswith("N") and key[1:].isdigit():
                    per_node[key[1:]] = per_node.get(key[1:], 0.0) + int(pages) * page_kb / 1024
        out["numa_node_mib"] = {node: round(per_node[node], 1) for node in sorted(per_node, key=int)}
    except (OSError, ValueError):
        pass
    return out


def involuntary_switches(pid: int) -> int | None:
    """How often the kernel has taken the CPU away from this process's main thread (nonvoluntary_ctxt_switches in
    /proc/PID/status): a launch-bound decoder whose thread keeps losing its core runs slow. None off Linux."""
    try:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith("nonvoluntary_ctxt_switches:"):
                return int(line.split()[1])
    except (OSError, ValueError, IndexError):
        pass
    return None
