"""Measurements driven from the pytest process: each returns a frozen dataclass, and `*_figures` turns it into
Figures. They print nothing and judge nothing."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from perfgate import figures as fig
from perfgate.generation import Round
from perfgate.runner import WorkerHandle
from perfgate.stats import median
from perfgate.trackers import VramPeak, VramTracker
from perfgate.variants import Variant
from perfgate.workloads import DecodeWorkload


@dataclass(frozen=True)
class LoadMeasurement:
    load_s: float
    vram: VramPeak  # peak while loading
    resident_mib: float | None  # the worker's GPU memory once loaded
    torch_allocated_mib: float | None
    model: dict[str, Any]


@dataclass(frozen=True)
class DecodeMeasurement:
    workload: DecodeWorkload
    rounds: tuple[Round, ...]
    vram: VramPeak  # peak over warm-up and timed rounds
    torch_max_allocated_mib: float | None
    step_delay_s: float  # the canary's added delay per decode step; 0 otherwise


def load(
    worker: WorkerHandle,
    tracker: VramTracker,
    variant: Variant,
    path: str,
    device: str,
    max_seq_length: int,
    timeout_s: float,
) -> LoadMeasurement:
    with tracker.track(worker.pid) as peak:
        result = worker.call(
            "load", timeout_s, variant=variant.name, path=path, device=device, max_seq_length=max_seq_length
        )
    with tracker.track(worker.pid) as resident:
        pass
    return LoadMeasurement(
        result["load_s"], peak(), resident().process_mib, result["torch_allocated_mib"], result["model"]
    )


def decode(
    worker: WorkerHandle,
    tracker: VramTracker,
    variant: Variant,
    workload: DecodeWorkload,
    rounds: int,
    warmup: int,
    canary_slowdown: float,
    timeout_s: float,
    benchmark=None,
) -> DecodeMeasurement:
    """Warm-up rounds, then `rounds` timed ones. pytest-benchmark, when given, drives the timed rounds and keeps
    each round's wall time in its own table and JSON; but its timer knows only the wall clock of this process,
    so TTFT and decode speed come from the device-synchronised step clock inside the worker."""
    gen = {"prompt_tokens": workload.prompt_tokens, "new_tokens": workload.new_tokens}
    worker.call("reset_memory", timeout_s)
    timed: list[Round] = []
    delay_s = 0.0
    with tracker.track(worker.pid) as peak:
        warm = [Round(**worker.call("generate", timeout_s, **gen)) for _ in range(warmup)]
        if variant.step_delay:  # the canary: slow every step by a share of a step measured just now
            if not warm:
                warm.append(Round(**worker.call("generate", timeout_s, **gen)))
            delay_s = canary_slowdown * median([r.step_median_s for r in warm])
            worker.call("set_step_delay", timeout_s, delay_s=delay_s)

        def one_round() -> None:
            timed.append(Round(**worker.call("generate", timeout_s, **gen)))

        if benchmark is not None:
            benchmark.pedantic(one_round, rounds=rounds, iterations=1, warmup_rounds=0)
        while len(timed) < rounds:  # pytest-benchmark runs the target only once under --benchmark-disable
            one_round()
    memory = worker.call("memory", timeout_s)
    return DecodeMeasurement(workload, tuple(timed), peak(), memory["torch_max_allocated_mib"], delay_s)


def load_figures(variant: str, m: LoadMeasurement) -> list[fig.Figure]:
    why = m.vram.unavailable
    return [
        fig.single(variant, "load", "", "load_s", "s", fig.LOWER, False, m.load_s),
        fig.single(variant, "load", "", "load_peak_vram_mib", "MiB", fig.LOWER, True, m.vram.process_mib, why),
        fig.single(variant, "load", "", "resident_vram_mib", "MiB", fig.LOWER, True, m.resident_mib, why),
        fig.single(
            variant,
            "load",
            "",
            "torch_allocated_mib",
            "MiB",
            fig.LOWER,
            False,
            m.torch_allocated_mib,
            "torch.cuda is not used on the CPU",
        ),
    ]


def decode_figures(variant: str, m: DecodeMeasurement) -> list[fig.Figure]:
    w = m.workload
    params = {"prompt_tokens": w.prompt_tokens, "new_tokens": w.new_tokens, "rounds": len(m.rounds)}
    if m.step_delay_s:
        params["canary_step_delay_s"] = m.step_delay_s
    why = m.vram.unavailable
    wall = sum(r.wall_s for r in m.rounds)
    overhead_pct = 100 * sum(r.clock_overhead_s for r in m.rounds) / wall if wall else 0.0

    def series(metric, unit, better, gated, values):
        return fig.from_samples(variant, "decode", w.id, metric, unit, better, gated, values, params)

    def once(metric, unit, better, gated, value, unavailable=why):
        return fig.single(variant, "decode", w.id, metric, unit, better, gated, value, unavailable, params)

    return [
        series("decode_tok_per_s", "tok/s", fig.HIGHER, True, [r.decode_tok_per_s for r in m.rounds]),
        series("ttft_s", "s", fig.LOWER, True, [r.ttft_s for r in m.rounds]),
        series("round_s", "s", fig.LOWER, False, [r.wall_s for r in m.rounds]),
        once("peak_vram_mib", "MiB", fig.LOWER, True, m.vram.process_mib),
        once("peak_vram_device_mib", "MiB", fig.LOWER, False, m.vram.device_mib),
        once(
            "torch_max_allocated_mib",
            "MiB",
            fig.LOWER,
            False,
            m.torch_max_allocated_mib,
            "torch.cuda is not used on the CPU",
        ),
        once("timing_overhead_pct", "%", fig.LOWER, False, overhead_pct, None),
    ]
