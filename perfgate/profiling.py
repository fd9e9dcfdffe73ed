"""Where a decode step's time goes: one generation recorded by the profiler, outside the timed rounds.

Why: a batch-1 eager decode step launches a few thousand small kernels, so its wall time is bound by the host
that launches them and follows whatever the host CPU is doing (tens of percent between minutes and machines).
What the GPU itself did is steady: the summed kernel time per token moves by a fraction of a percent between
rounds, and the number of kernels per token not at all (docs/method.md). So the profiled round yields
    device time per token   summed durations of the GPU's kernels, copies and memsets, per decode token,
    kernels/launches/syncs  counts per decode token, which change only when the code path changes,
and the kernel table (per kernel: count and device time per token) that names what changed when they do.

How: torch's profiler (CUPTI on a GPU, operator records on a CPU) is started and stopped through its low-level
calls and its raw activity records are read, never `key_averages()`, which builds a Python object per event and
costs ten times the round itself. Every record is placed by the host time of the call that launched it (CUPTI's
correlation id; a GPU activity's own start where no launch was recorded): the step clock stamps each token after
synchronising the device, so the work of token i is what was launched between stamps i-1 and i, and what came
before the first stamp is the prefill.

The summary is a pure function of (kind, name, start, duration) tuples, tested on the CPU without a profiler.
"""

from __future__ import annotations

import re
import time
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from typing import Any

# Kineto's activity types for what ran on the GPU.
DEVICE_KINDS = frozenset({"kernel", "gpu_memcpy", "gpu_memset"})
HOST_API_KINDS = frozenset({"cuda_runtime", "cuda_driver"})
CPU_OP = "cpu_op"
# Host calls that launch device work: a kernel each, or a whole CUDA graph (hf-bf16-static replays one graph for
# hundreds of kernels, so launches and kernels per token differ there).
LAUNCH_CALLS = frozenset(
    {
        "cudaLaunchKernel",
        "cudaLaunchKernelExC",
        "cudaLaunchCooperativeKernel",
        "cuLaunchKernel",
        "cuLaunchKernelEx",
        "cudaGraphLaunch",
        "cuGraphLaunch",
    }
)
# Host calls that wait for the device (a device-to-host copy into pageable memory waits too).
SYNC_CALLS = frozenset(
    {
        "cudaDeviceSynchronize",
        "cudaStreamSynchronize",
        "cudaEventSynchronize",
        "cudaMemcpy",
        "cuCtxSynchronize",
        "cuStreamSynchronize",
        "cuEventSynchronize",
        "cuMemcpyDtoH_v2",
    }
)
# The step clock synchronises the device once per token (perfgate.generation.StepClock) with this call; those are
# counted apart, so that syncs_per_token says what the variant itself does.
CLOCK_SYNC = "cudaDeviceSynchronize"

# The step clock's mark in the profiler's timeline on a CPU (perfgate.generation.StepClock); on a GPU, how long
# before a host stamp the synchronisation that precedes it may end (the clock does a few µs of work in between),
# and how far the two clocks may disagree (the profiler converts its own to Unix time to within microseconds).
STAMP_MARK = "perfgate.stamp"
SNAP_NS = 2_000_000
SKEW_NS = 50_000

_ANONYMOUS = re.compile(r"_GLOBAL__N__\w+?(?=::)")  # a build's tag for an anonymous namespace, up to its '::'
_ADDRESS = re.compile(r"0x[0-9a-fA-F]+")


def kernel_identity(name: str) -> str:
    """A kernel's name less what differs between identical runs (addresses, anonymous-namespace tags). Template
    arguments (data type, tile sizes) stay: they are part of what the kernel is."""
    return _ADDRESS.sub("0x…", _ANONYMOUS.sub("(anonymous namespace)", name))


@dataclass(frozen=True)
class Event:
    kind: str  # kineto's activity type: "kernel", "gpu_memcpy", "gpu_memset", "cuda_runtime", "cpu_op", ...
    name: str
    at_ns: int  # host time (Unix ns, as time.time_ns()): the launching call's start for device work
    dur_ns: int


class NoProfile(RuntimeError):
    """The profiled round gave nothing to count: the reason becomes the figures' 'unavailable'."""


def summarize(events: Iterable[Event], stamps_ns: Sequence[int], device: str) -> dict[str, Any]:
    """The decomposition of one generation whose step clock stamped `stamps_ns` (one per token, host time). Per
    decode token (the gaps between stamps): device ms (its samples one per token), kernels, launches, syncs less
    the clock's own, and a table per kernel name; the prefill's device ms apart. On a CPU (`device` != "cuda"),
    the operator records instead: ops per token and the time of the outermost ops per token."""
    if len(stamps_ns) < 2:
        raise NoProfile("fewer than 2 tokens: no decode step to profile")
    events = list(events)
    stamps_ns = profiler_stamps(events, stamps_ns, device)
    tokens = len(stamps_ns) - 1
    first, last = stamps_ns[0], stamps_ns[-1]
    decode = [e for e in events if first < e.at_ns <= last]
    if device != "cuda":
        return _summarize_ops(decode, stamps_ns, tokens)
    prefill = [e for e in events if e.at_ns <= first and e.kind in DEVICE_KINDS]
    work = [e for e in decode if e.kind in DEVICE_KINDS]
    if not work:
        raise NoProfile("the profiler recorded no GPU activity (CUPTI unavailable to this process?)")
    calls = [e for e in decode if e.kind in HOST_API_KINDS]
    syncs = sum(e.name in SYNC_CALLS for e in calls)
    clock_syncs = sum(e.name == CLOCK_SYNC for e in calls)
    return {
        "tokens": tokens,
        "device_ms_per_token": _ms(sum(e.dur_ns for e in work)) / tokens,
        "device_ms_each_token": _per_token_ms(work, stamps_ns),
        "prefill_device_ms": _ms(sum(e.dur_ns for e in prefill)),
        "kernels_per_token": sum(e.kind == "kernel" for e in work) / tokens,
        "launches_per_token": sum(e.name in LAUNCH_CALLS for e in calls) / tokens,
        # the clock's own syncs: one per token where the clock's call was recorded
        "syncs_per_token": (syncs - min(clock_syncs, tokens)) / tokens,
        "clock_syncs_per_token": min(clock_syncs, tokens) / tokens,
        "kernels": _table(work, tokens),
        "calls": {name: n / tokens for name, n in _counts(calls).items()},
    }


def profiler_stamps(events: list[Event], stamps_ns: Sequence[int], device: str) -> list[int]:
    """The token stamps in the profiler's own timeline. The profiler converts its clock to Unix time only to within
    microseconds, and the ops right after a stamp (generate's own, the next step's first) would fall on either side
    of a stamp taken with time.time_ns(): a count per token must not depend on that. So each stamp is taken where
    the profiler saw it: on a GPU the end of the step clock's device synchronisation nearest to it (the clock stamps
    right after it), on a CPU the clock's own mark (STAMP_MARK, recorded at the stamp); the host stamps where the
    profiler saw neither."""
    if device == "cuda":
        ends = sorted(e.at_ns + e.dur_ns for e in events if e.kind in HOST_API_KINDS and e.name == CLOCK_SYNC)
        out = []
        for stamp in stamps_ns:  # the latest sync that ended before the stamp, give or take the clocks' skew
            near = [end for end in ends if stamp - SNAP_NS < end <= stamp + SKEW_NS]
            out.append(near[-1] if near else stamp)
        return out
    marks = sorted(e.at_ns for e in events if e.name == STAMP_MARK)
    return marks if len(marks) == len(stamps_ns) else list(stamps_ns)


def _summarize_ops(decode: list[Event], stamps_ns: Sequence[int], tokens: int) -> dict[str, Any]:
    ops = [e for e in decode if e.kind == CPU_OP and not e.name.startswith("profiler::")]
    if not ops:
        raise NoProfile("the profiler recorded no operator")
    outer = _outermost(ops)
    return {
        "tokens": tokens,
        "ops_per_token": len(ops) / tokens,
        "cpu_op_ms_per_token": _ms(sum(e.dur_ns for e in outer)) / tokens,
        "cpu_op_ms_each_token": _per_token_ms(outer, stamps_ns),
        "kernels": _table(ops, tokens),
    }


def _outermost(ops: list[Event]) -> list[Event]:
    """The ops not inside another (aten::matmul holds aten::mm): their durations add up without counting twice."""
    out: list[Event] = []
    end = -1
    for e in sorted(ops, key=lambda e: (e.at_ns, -e.dur_ns)):
        if e.at_ns >= end:
            out.append(e)
            end = e.at_ns + e.dur_ns
    return out


def _per_token_ms(events: list[Event], stamps_ns: Sequence[int]) -> list[float]:
    import bisect

    totals = [0] * (len(stamps_ns) - 1)
    for e in events:
        i = bisect.bisect_left(stamps_ns, e.at_ns) - 1  # at_ns in (stamps[i], stamps[i+1]]
        if 0 <= i < len(totals):
            totals[i] += e.dur_ns
    return [_ms(t) for t in totals]


def _counts(events: Iterable[Event]) -> dict[str, int]:
    out: dict[str, int] = {}
    for e in events:
        out[e.name] = out.get(e.name, 0) + 1
    return out


def _table(events: list[Event], tokens: int) -> dict[str, dict[str, float]]:
    """{kernel identity: {"per_token": count, "ms_per_token": device ms}} per decode token."""
    counts: dict[str, int] = {}
    durations: dict[str, int] = {}
    for e in events:
        name = kernel_identity(e.name)
        counts[name] = counts.get(name, 0) + 1
        durations[name] = durations.get(name, 0) + e.dur_ns
    return {
        name: {"per_token": n / tokens, "ms_per_token": _ms(durations[name]) / tokens} for name, n in counts.items()
    }


def _ms(ns: float) -> float:
    return ns / 1e6


def _rows(table: dict[str, Any]) -> dict[str, dict[str, float]]:
    """A kernel table as is; a table of host calls ({name: count per token}) in its shape."""
    return {k: v if isinstance(v, dict) else {"per_token": float(v)} for k, v in table.items()}


def diff_tables(
    now: dict[str, dict[str, float]],
    then: dict[str, dict[str, float]],
    times: bool = True,
    limit: int = 8,
    floor: float = 0.0,
) -> list[str]:
    """What changed between two kernel tables, by name: '+1/token `name`' for kernels added or run more often,
    '-2/token `name`' for fewer, then (with `times`) the largest changes of device time per token; at most `limit`
    lines each, then how many more were left out. floor: a kernel's change of time is left out below this share of
    the whole table's device time per token (counts are exact and always listed)."""
    now, then = _rows(now), _rows(then)
    least = floor * sum(r.get("ms_per_token", 0.0) for r in then.values())
    counts = []
    for name in sorted(set(now) | set(then)):
        d = now.get(name, {}).get("per_token", 0.0) - then.get(name, {}).get("per_token", 0.0)
        if abs(d) > 1e-9:
            counts.append((abs(d), f"{d:+.4g}/token `{name}`"))
    slower = []
    for name in sorted(set(now) | set(then)) if times else ():
        a, b = now.get(name, {}).get("ms_per_token", 0.0), then.get(name, {}).get("ms_per_token", 0.0)
        if abs(a - b) > max(1e-6, least):
            slower.append((abs(a - b), f"{a - b:+.4f} ms/token `{name}` ({b:.4f} → {a:.4f})"))

    def largest(rows: list[tuple[float, str]]) -> list[str]:
        lines = [line for _, line in sorted(rows, key=lambda r: (-r[0], r[1]))]
        return lines[:limit] + ([f"… and {len(lines) - limit} more"] if len(lines) > limit else [])

    return largest(counts) + largest(slower)


# -- in the worker process ------------------------------------------------------------------------------------


def activity_kind(record: Any) -> str:
    """Kineto's activity type of a raw record; torch releases before 2.12 do not expose it, and there it follows
    from the device (a GPU's records are kernels, copies and memsets) and the name (host calls are cuda*/cu*)."""
    if hasattr(record, "activity_type"):
        return record.activity_type()
    name = record.name()
    if name == STAMP_MARK:
        return "user_annotation"
    if str(record.device_type()).endswith("CUDA"):
        return "gpu_memcpy" if name.startswith("Memcpy") else "gpu_memset" if name.startswith("Memset") else "kernel"
    return "cuda_runtime" if name.startswith("cu") else CPU_OP


def raw_events(result: Any) -> list[Event]:
    """Events from the profiler's raw records, each placed by its launching call (CUPTI correlation id)."""
    records = [(activity_kind(r), r) for r in result.events()]
    launched_at: dict[int, int] = {}
    out: list[Event] = []
    for kind, r in records:
        if kind in HOST_API_KINDS:
            launched_at[r.correlation_id()] = r.start_ns()
    for kind, r in records:
        if kind in DEVICE_KINDS:
            at = launched_at.get(r.correlation_id(), r.start_ns())
        elif kind in HOST_API_KINDS or kind == CPU_OP or r.name() == STAMP_MARK:
            at = r.start_ns()
        else:
            continue
        out.append(Event(kind, r.name(), at, r.duration_ns()))
    return out


def profile_generation(generate: Callable[[], Sequence[int]], device: str) -> dict[str, Any]:
    """Run `generate` (one timed generation returning its step clock's host stamps, ns) under the profiler and
    summarize it; {"unavailable": reason} where the profiler cannot start or records nothing (another profiler
    running, no CUPTI in this container), so that the wall-time gate goes on without these figures."""
    from torch._C._profiler import ProfilerActivity, _ExperimentalConfig
    from torch.autograd import ProfilerConfig, ProfilerState, _disable_profiler, _enable_profiler, _prepare_profiler

    activities = {ProfilerActivity.CUDA} if device == "cuda" else {ProfilerActivity.CPU}
    config = ProfilerConfig(ProfilerState.KINETO, False, False, False, False, False, _ExperimentalConfig())
    started = time.perf_counter()
    try:
        _prepare_profiler(config, activities)
        _enable_profiler(config, activities)
    except RuntimeError as exc:
        return {"unavailable": f"the profiler could not start: {exc}"}
    try:
        stamps = generate()
    finally:
        result = _disable_profiler()
    recorded = time.perf_counter()
    try:
        events = raw_events(result)
        summary = summarize(events, stamps, device)
    except NoProfile as exc:
        return {"unavailable": str(exc), "profile_s": time.perf_counter() - started}
    except Exception as exc:  # reading the records failed (another torch's raw API): the timed figures stand
        return {"unavailable": f"the profiler's records could not be read: {type(exc).__name__}: {exc}"}
    summary["profile_s"] = time.perf_counter() - started  # the whole cost: the slowed round and the reading
    summary["read_s"] = time.perf_counter() - recorded
    summary["events"] = len(events)
    return summary


def spin_work(device: str, ms: float) -> Callable[[], None]:
    """The GPU canary's extra work, added to every decode step: one kernel that spins for `ms` on the device
    (torch.cuda._sleep, in clock cycles counted once here against CUDA events), or on a CPU one matrix product
    repeated to take about `ms`. Device time grows by `ms` a token; the kernel (op) count by one (or the repeats)."""
    import torch

    if device == "cuda":
        torch.cuda._sleep(1000)
        start, end = torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)
        probe = 10_000_000
        start.record()
        torch.cuda._sleep(probe)
        end.record()
        torch.cuda.synchronize()
        cycles = max(1, int(probe * ms / start.elapsed_time(end)))
        return lambda: torch.cuda._sleep(cycles)
    a = torch.ones(64, 64)
    probe = 50
    t = time.perf_counter()
    for _ in range(probe):
        torch.mm(a, a)
    each_ms = 1000 * (time.perf_counter() - t) / probe
    repeats = max(1, round(ms / each_ms))

    def work() -> None:
        for _ in range(repeats):
            torch.mm(a, a)

    return work
