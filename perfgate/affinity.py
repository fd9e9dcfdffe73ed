"""CPU cores for the worker processes on a GPU machine, and moving a whole process onto some cores.

Batch-1 decoding is bound by the Python thread that launches kernels, so each of the two workers that alternate
rounds (the reference and the variant) gets a core of its own, and nothing else of perfgate's runs there: not the
other worker, not the pytest process with its NVML sampling thread, not on the core's SMT sibling either (two
hardware threads of one core share its execution units). `os.sched_setaffinity(0, ...)` moves only the calling
thread on Linux; a process's other threads (the CUDA driver's, the allocator's, pytest's samplers) stay where they
were unless each is moved, which `pin_process` does."""

from __future__ import annotations

import contextlib
import os
import sys
from collections.abc import Iterator
from pathlib import Path

SYS_CPU = Path("/sys/devices/system/cpu")


def parse_cpu_list(text: str) -> set[int]:
    """'0-3,8,10-11' -> {0, 1, 2, 3, 8, 10, 11} (the kernel's CPU list format)."""
    cores: set[int] = set()
    for part in text.strip().split(","):
        if not part:
            continue
        low, _, high = part.partition("-")
        cores.update(range(int(low), int(high or low) + 1))
    return cores


def siblings(core: int, sys_cpu: Path = SYS_CPU) -> set[int]:
    """The hardware threads of this core's physical core, itself included ({core} where the kernel does not say)."""
    try:
        return parse_cpu_list((sys_cpu / f"cpu{core}" / "topology" / "thread_siblings_list").read_text()) | {core}
    except (OSError, ValueError):
        return {core}


def worker_cores(allowed: set[int], sys_cpu: Path = SYS_CPU) -> tuple[int, int, set[int]] | None:
    """(the reference's core, the variant's core, the cores left to everything else): the two highest cores on
    different physical cores, their SMT siblings left idle. None with fewer than 4 cores to choose from, or where
    two physical cores cannot be had with two more left over."""
    if len(allowed) < 4:
        return None
    ref = max(allowed)
    ref_group = siblings(ref, sys_cpu)
    candidates = sorted(c for c in allowed if c not in ref_group)
    if not candidates:
        return None
    own = candidates[-1]
    rest = allowed - ref_group - siblings(own, sys_cpu)
    if len(rest) < 2:
        return None
    return ref, own, rest


def pin_process(cores: set[int], pid: int = 0) -> list[str]:
    """Every thread of a process (this one by default) onto these cores; what could not be moved, in words."""
    task_dir = Path("/proc/self/task" if pid == 0 else f"/proc/{pid}/task")
    try:
        tids = [int(t) for t in os.listdir(task_dir)]
    except OSError:
        tids = [pid]
    problems = []
    for tid in tids:
        try:
            os.sched_setaffinity(tid, cores)
        except ProcessLookupError:
            continue  # the thread ended meanwhile
        except OSError as exc:
            problems.append(f"thread {tid}: {exc}")
    return problems


@contextlib.contextmanager
def spread_while_loading(cores: set[int], home: int) -> Iterator[None]:
    """This process's threads on `cores`, and torch's intra-op threads as many, for the duration; then every thread
    back on core `home` alone and torch's threads as they were. Loading a checkpoint converts and copies its tensors
    on the CPU (bf16 weights loaded as fp16: about 25 s of a 14B model's 42 s load on one core of the H200), which
    threads speed up, while a timed round needs its one core. Only for loads: nothing is timed beside them."""
    import torch

    threads = torch.get_num_threads()
    pin_process(cores)
    torch.set_num_threads(len(cores))
    try:
        yield
    finally:
        torch.set_num_threads(threads)
        for problem in pin_process({home}):  # the threads the load started too
            print(f"perfgate worker: cannot return to core {home} after loading: {problem}", file=sys.stderr)
