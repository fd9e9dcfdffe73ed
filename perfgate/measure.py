"""Measurements driven from the pytest process: each returns a frozen dataclass, and `*_figures` turns it into
Figures. They print nothing and judge nothing; whether to measure more rounds is asked of a callback."""

from __future__ import annotations

import contextlib
import json
import math
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import TYPE_CHECKING, Any

from perfgate import ab, phases
from perfgate import figures as fig
from perfgate.generation import Round
from perfgate.runner import WorkerError, WorkerHandle
from perfgate.stats import bootstrap_interval, bootstrap_interval_of_sets, mean, median, percentile
from perfgate.trackers import (
    VramPeak,
    VramTracker,
    cpu_khz,
    cpu_steal_s,
    involuntary_switches,
    memory_placement,
    minor_faults,
)
from perfgate.variants import Variant
from perfgate.workloads import DecodeWorkload

if TYPE_CHECKING:
    from perfgate.agent.traces import Query


@dataclass(frozen=True)
class LoadMeasurement:
    load_s: float
    vram: VramPeak  # peak while loading
    resident_mib: float | None  # the worker's GPU memory once loaded
    torch_allocated_mib: float | None
    model: dict[str, Any]


class MeasurementInterrupted(KeyboardInterrupt):
    """Ctrl-C or SIGTERM (which perfgate turns into KeyboardInterrupt) during a decode test's timed rounds, carrying
    what those rounds measured so far (`partial`, None before the first), so that the run file keeps it, unjudged."""

    def __init__(self, reason: str, variant: str, partial: DecodeMeasurement | None) -> None:
        super().__init__(reason)
        self.variant = variant
        self.partial = partial


# What a test's verdicts say after a round (the `settled` callbacks of decode and agent): all clear, measure no
# further; unclear; unclear with a figure already beyond its limit that more rounds can fail (perfgate.judging.Judged).
CLEAR = "clear"
UNCLEAR = "unclear"
SUSPECT = "suspect"


@dataclass(frozen=True)
class RoundPlan:
    rounds: int  # timed rounds always taken
    max_rounds: int  # at most this many while the verdict is unclear
    budget_s: float  # no round is added after this many seconds of timed rounds
    warmup: int
    suspect_rounds: int = 0  # at most this many while a figure is already beyond its limit (below max_rounds: none)

    @property
    def cap(self) -> int:
        return max(self.max_rounds, self.suspect_rounds)

    def more(self, done: int, state: str) -> bool:
        """Whether a round is added after `done` timed rounds whose verdicts are in `state` (CLEAR, UNCLEAR,
        SUSPECT). A regression the rounds so far point to but do not yet prove gets the rounds up to
        suspect_rounds: on the H200 the 15 % canary once passed, unclear, at 0.878 against its limit 0.95 after 20
        (docs/experiments/h200-runs.md, the ninth pass)."""
        if state == CLEAR:
            return False
        return done < (self.cap if state == SUSPECT else self.max_rounds)


# passes over the agent's queries while a per-query latency is beyond its limit but not yet proven so, whatever
# --perf-agent-max-rounds allows an unclear one: a regression gets the passes to show itself (while it is within
# gate.MAX_ITEMS_SHORT turns of failing: perfgate.judging.Judged.futile)
AGENT_SUSPECT_ROUNDS = 3
# new tokens of the agent's warm-up on a dynamic cache: at least 2, so that a decode step runs (measure.agent)
AGENT_WARMUP_TOKENS = 4


def agent_plan(rounds: int, max_rounds: int, budget_s: float, warmup: int) -> RoundPlan:
    """The agent's passes: `rounds`, up to `max_rounds` while a verdict is unclear, and up to AGENT_SUSPECT_ROUNDS
    (or max_rounds, if more) while a per-query latency is already beyond its limit and more passes can fail it
    (perfgate.judging.Judged.futile)."""
    most = max(rounds, max_rounds)
    return RoundPlan(rounds, most, budget_s, warmup, max(most, AGENT_SUSPECT_ROUNDS))


@dataclass(frozen=True)
class DecodeMeasurement:
    workload: DecodeWorkload
    rounds: tuple[Round, ...]
    vram: VramPeak  # the variant's worker, over warm-up and timed rounds
    torch_max_allocated_mib: float | None
    step_delay_s: float  # the canary's added delay per decode step; 0 otherwise
    reference: str | None = None  # the variant whose rounds alternated with these
    reference_rounds: tuple[Round, ...] = ()
    no_ratio: str | None = None  # why there is no ratio to the reference, where there is none
    energy_j: tuple[float, ...] = ()  # per timed round of this variant: the device's energy counter's rise
    no_energy: str | None = "no NVML energy counter on this device"
    bandwidth: dict[str, Any] | None = None  # the device's copy bandwidth and this model's weight bytes
    cores: tuple[int, ...] = ()  # per timed round: the CPU core the variant ran on (the reference had the other)
    # the same test measured before in other pairs of worker processes (perfgate.session restarts both workers
    # while the ratio is undecided): its ratio is decided over the pairs by gate.PairRule
    earlier: tuple[DecodeMeasurement, ...] = ()
    # the profiled round after the timed ones (perfgate.profiling.summarize, or {"unavailable": why}); None: not asked
    profile: dict[str, Any] | None = None
    device_delay_ms: float = 0.0  # the GPU canary's device work added per decode step; 0 otherwise
    test_s: float = 0.0  # the whole measurement's wall time: warm-up, calibration, timed rounds and profiling
    # an A/B run (perfgate.ab): the worker beside is the same variant on the base side ("base"), its peak memory
    # and its profiled round kept too, so that the head is judged against them
    beside: str = "reference"
    reference_vram: VramPeak | None = None
    reference_profile: dict[str, Any] | None = None
    # the ratio over several pairs of processes is each side's fastest process over the other's (gate.PairRule's
    # `fastest`, an A/B run's default rule), not the geometric mean of the pairs' ratios
    fastest: bool = False

    def base_view(self) -> DecodeMeasurement:
        """An A/B run's base side as a measurement of its own (its rounds, memory and profile; no ratio), for its
        figures: each pair of worker processes' base side, so that the profiled round's figures come from the pair
        that ran it (`profiled`) and the rest from the last pair, as the head's do."""
        return replace(
            self,
            rounds=self.reference_rounds,
            reference_rounds=(),
            vram=self.reference_vram or VramPeak(None, None, 0, "not tracked"),
            torch_max_allocated_mib=None,
            step_delay_s=0.0,
            no_ratio=None,
            energy_j=(),
            no_energy="measured on the head side only",
            earlier=tuple(pair.base_view() for pair in self.earlier),
            profile=self.reference_profile,
            device_delay_ms=0.0,
            beside="",
            reference_vram=None,
            reference_profile=None,
        )

    @property
    def ratios(self) -> list[float]:
        """Per pair of rounds: the reference's fast step over this variant's (each round's 10th-percentile decode
        step), i.e. this variant's speed as a share of the reference's in the same seconds."""
        return [ref.step_p10_s / r.step_p10_s for r, ref in zip(self.rounds, self.reference_rounds, strict=True)]

    def fast_ratio(self, pairs: Sequence[int] | None = None) -> float:
        """This variant's speed over the reference's, each in its fast state: the FAST_PCT-th percentile over the
        rounds of each round's 10th-percentile step, the reference's over this variant's. `pairs` picks pairs of
        rounds by index (with repeats, for the bootstrap); all of them by default.

        Why not the mean rate of each round: on the H200 (hf-fp16 on synthetic:qwen3-14b) each process's decode
        steps sit at 31-38 ms, then for a second or more at 50-90 ms, and the two processes switch independently of
        each other, so the ratio of one round's rate to its partner's ranged from 0.60 to 1.73 between two identical
        processes, and an unchanged variant could not be told from a 15 % slower one. The fast end of each process
        compares its normal state with the other's (docs/experiments/steps/ holds the logs); a step made slower by a
        fixed time (the canary) moves it by that time, and it holds as long as a tenth of
        the rounds are in the normal state."""
        return fast_state_ratio(
            [r.step_p10_s for r in self.reference_rounds], [r.step_p10_s for r in self.rounds], pairs
        )

    def fast_ratio_interval(self) -> tuple[float, float]:
        """98 % bootstrap interval of fast_ratio over the pairs of rounds: its 99 % one-sided bounds, one for a
        verdict of fail and one for a clear pass, each wrong at most ALPHA = 1 % of the time."""
        return bootstrap_interval(len(self.rounds), self.fast_ratio, confidence=0.98, seed=len(self.rounds))

    @property
    def process_pairs(self) -> tuple[DecodeMeasurement, ...]:
        """Every pair of worker processes this test was measured in, first first (one, unless a ratio failed)."""
        return (*self.earlier, self)

    @property
    def profiled(self) -> DecodeMeasurement:
        """The pair of worker processes whose round was profiled: the first. A pair measured again for an undecided
        ratio is not profiled again: what the profile measures is steady between processes (device time to 0.2 %,
        counts exactly; the wall time that the pairs are repeated for, by 9-24 %), and a profiled round costs about
        11-16 s a pair of processes on the H200. A first pair whose profiler could not run ({"unavailable": why}) is
        not tried again in the next. This measurement itself where none was profiled."""
        return next((m for m in self.process_pairs if m.profile is not None), self)

    def pair_rounds(self) -> list[RatioRounds]:
        """Per pair of worker processes, first first: the reference's (or base's) and this variant's per-round
        10th-percentile steps (s)."""
        return [
            ([r.step_p10_s for r in m.reference_rounds], [r.step_p10_s for r in m.rounds]) for m in self.process_pairs
        ]

    def ratio_over_processes(self) -> tuple[float, tuple[float, float], list[tuple[float, tuple[float, float]]]]:
        """(the ratio, its interval, each pair's (ratio, interval)) over every pair of worker processes: the
        geometric mean of their fast-state ratios (with `fastest`, each side's fastest process over the other's:
        fastest_ratio), and the interval over_pairs makes of theirs (with `fastest`, their whole span). Two processes
        running identical code can differ by more than a regression to be caught (up to 50 % on the H200:
        docs/method.md), so a ratio is measured in several pairs of fresh processes where the run's rule asks for
        them and decided over the pairs (gate.PairRule)."""
        each = [(m.fast_ratio(), m.fast_ratio_interval()) for m in self.process_pairs]
        intervals = [interval for _, interval in each]
        if self.fastest and self.earlier:  # (its value has no interval of its own: the pairs' whole span is shown)
            value = fastest_ratio(self.pair_rounds())
            lo, hi = min(low for low, _ in intervals), max(high for _, high in intervals)
            return value, (min(lo, value), max(hi, value)), each
        value = math.exp(sum(math.log(ratio) for ratio, _ in each) / len(each))
        return value, over_pairs(intervals, value), each


RATIO_ESTIMATOR = "fast-state p10/p10"  # kept with the figure: a baseline measured otherwise is not comparable
FASTEST_ESTIMATOR = "fastest process of each side, fast-state p10/p10"  # over several pairs (gate.PairRule.fastest)
FAST_PCT = 10  # the fast state of a process: this percentile over its rounds (see DecodeMeasurement.fast_ratio)

RatioRounds = tuple[Sequence[float], Sequence[float]]  # per pair of rounds: (the reference's, the variant's) p10 step
# one pair of worker processes: its interval's bounds, its pairs of rounds, its value (gate.PairRule decides by them)
PairInterval = tuple[float, float, int, float]


def fast_state_ratio(
    reference_p10_s: Sequence[float], own_p10_s: Sequence[float], pick: Sequence[int] | None = None
) -> float:
    """The reference's fast state over the variant's (see DecodeMeasurement.fast_ratio), from each round's
    10th-percentile step in seconds; `pick` selects pairs of rounds by index, with repeats."""
    pick = range(len(own_p10_s)) if pick is None else pick
    return percentile([reference_p10_s[i] for i in pick], FAST_PCT) / percentile([own_p10_s[i] for i in pick], FAST_PCT)


def fastest_states(pairs: Sequence[RatioRounds]) -> tuple[float, float]:
    """Over several pairs of worker processes (each: the reference's or base's and the variant's per-round
    10th-percentile steps, s), the fast state (s) of the fastest reference process and of the fastest variant
    process. If a process's offset only ever makes it slower, as a slow spell only makes a round slower, each side's
    fastest process estimates that side's fast state: on the H200 two identical processes have differed by up to
    50 %, and the ratio of the sides' fastest over two or three pairs spread a third as much as one pair's
    (docs/method.md, "A failing ratio is measured again in fresh processes")."""
    return min(percentile(ref, FAST_PCT) for ref, _ in pairs), min(percentile(own, FAST_PCT) for _, own in pairs)


def fastest_ratio(pairs: Sequence[RatioRounds]) -> float:
    """The reference's (or base's) fastest process over the variant's fastest, each at its fast state
    (fastest_states): the ratio gate.PairRule's `fastest` decides by."""
    reference_s, own_s = fastest_states(pairs)
    return reference_s / own_s


def ratio_rounds(params: dict[str, Any]) -> list[RatioRounds]:
    """The rounds behind a decode_ratio_to_ref figure (a run's or a baseline entry's `params`), one entry per pair
    of worker processes; none where they were not kept (a baseline written before they were) or cannot be used."""
    pairs = params.get("process_pairs") or [params]
    out = [(p.get("reference_step_p10_s") or (), p.get("step_p10_s") or ()) for p in pairs]
    usable = all(ref and len(ref) == len(own) and min(ref) > 0 and min(own) > 0 for ref, own in out)
    return out if usable else []


def ratio_interval_against(
    now: list[RatioRounds], then: RatioRounds, baseline: float, value: float | None = None
) -> tuple[tuple[float, float], list[PairInterval]]:
    """The ratio's 98 % bootstrap interval with the baseline's own noise counted: for each pair of worker
    processes of this run, the interval of (this run's fast-state ratio) / (the baseline run's), this run's pairs
    of rounds and the baseline's resampled independently, times the baseline's value; over the pairs of processes
    as DecodeMeasurement.ratio_over_processes combines them (over_pairs, holding the figure's `value`). With it,
    each pair's own (pair_intervals_against), by which gate.judge decides a ratio measured in several pairs.

    A baseline is one run of ten or so pairs of rounds; its fast-state ratio carries that run's noise (one of hf-nf4's
    H200 baselines: 0.810, its own interval 0.552-0.876), which an interval of this run alone
    would hold as exact. The reference's ratio to itself (the canary's baseline) is exact and has no rounds."""
    each = pair_intervals_against(now, then, baseline)
    return over_pairs([(lo, hi) for lo, hi, *_ in each], value), each


def pair_intervals_against(now: list[RatioRounds], then: RatioRounds, baseline: float) -> list[PairInterval]:
    """Per pair of worker processes of this run, its interval as ratio_interval_against computes it, widened to
    hold that pair's own estimate, and its number of pairs of rounds: what gate.judge decides a ratio measured in
    several pairs by (each pair failing or not as it would alone)."""
    out = []
    for pair in now:
        lo, hi = _quotient_interval(pair, then)
        own = fast_state_ratio(*pair) / fast_state_ratio(*then)
        out.append((min(lo, own) * baseline, max(hi, own) * baseline, len(pair[1]), own * baseline))
    return out


def pair_intervals(params: dict[str, Any]) -> list[PairInterval]:
    """Per pair of worker processes a ratio figure was measured in (its params' process_pairs), the pair's own
    interval widened to hold its value, its number of pairs of rounds and its value; none for a figure of one
    pair."""
    return [
        (min(p["interval"][0], p["value"]), max(p["interval"][1], p["value"]), len(p["step_p10_s"]), p["value"])
        for p in params.get("process_pairs") or ()
    ]


def ratio_interval_at(value: float, then: RatioRounds, baseline: float) -> tuple[float, float]:
    """The interval ratio_interval_against would reach with this run's ratio known exactly, at `value` (as many
    rounds as one likes): the baseline run's own noise alone. Where it still reaches past the limit, no number of
    rounds of this run can fail the figure at this value; a baseline measured with more rounds could."""
    lo, hi = bootstrap_interval(
        len(then[1]), lambda pick: fast_state_ratio(*then, pick), confidence=0.98, seed=len(then[1])
    )
    return value / hi * baseline, value / lo * baseline


def over_pairs(intervals: Sequence[tuple[float, float]], value: float | None = None) -> tuple[float, float]:
    """The interval shown for a ratio measured in several pairs of worker processes: from the lowest lower bound to
    the second-lowest upper bound (one pair: its own interval; two: the span of both), widened to hold the pairs'
    combined `value`. All of it lies beyond a limit where two pairs' intervals and the value do, which is when a
    ratio to the reference fails (gate.judge, gate.PairRule); an A/B ratio under --perf-ab-rule all-but-one, decided
    by its pairs' values, may fail with this interval straddling the limit, and its failure lists each pair's value
    (docs/method.md, "A failing ratio is measured again"). Under the fastest rule the whole span is shown instead
    (DecodeMeasurement.ratio_over_processes)."""
    lo = min(low for low, _ in intervals)
    highs = sorted(high for _, high in intervals)
    hi = highs[min(1, len(highs) - 1)]
    if value is not None:
        lo, hi = min(lo, value), max(hi, value)
    return lo, hi


def _quotient_interval(now: RatioRounds, then: RatioRounds) -> tuple[float, float]:
    """98 % bootstrap interval of one run's fast-state ratio over another's, each run's pairs resampled."""

    def quotient(pick_now: Sequence[int], pick_then: Sequence[int]) -> float:
        return fast_state_ratio(*now, pick_now) / fast_state_ratio(*then, pick_then)

    counts = (len(now[1]), len(then[1]))
    return bootstrap_interval_of_sets(counts, quotient, confidence=0.98, seed=counts[0] * 1000 + counts[1])


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
            "load", timeout_s, variant=variant.spec(), path=path, device=device, max_seq_length=max_seq_length
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
    plan: RoundPlan,
    canary_slowdown: float,
    timeout_s: float,
    reference: WorkerHandle | None = None,
    settled: Callable[[DecodeMeasurement], str] | None = None,
    benchmark=None,
    no_ratio: str | None = None,
    cores: tuple[int, int] | None = None,
    step_log: Path | None = None,
    profile: bool = False,
    device_slowdown: float = 0.0,
    profile_tokens: int = 0,
    beside_is_base: bool = False,
    stack_slowdown: float = 0.0,
) -> DecodeMeasurement:
    """Warm-up, then timed rounds. With a reference worker each round is a pair, the reference first in every
    other pair and the variant first in the rest (so that neither is always the one to run right after a pause),
    and both meet the same minutes of a drifting machine. After `plan.rounds`, rounds are added while `settled`
    says the verdict is unclear, up to `plan.max_rounds` (`plan.suspect_rounds` while it says SUSPECT) or
    `plan.budget_s`.

    pytest-benchmark, when given, drives the first `plan.rounds` rounds and keeps their wall time in its table and
    JSON; its timer knows only this process's wall clock, so TTFT and decode speed come from the
    device-synchronised step clock inside the worker, and the rounds added afterwards are outside its figures.

    With `cores` (the reference's and the variant's own CPU core), the two swap cores every two pairs of rounds
    (so that order and core cross): a core that runs slower than the other (a busy neighbour on the host) then
    weighs on both alike instead of biasing the ratio for the whole test. With `step_log`, every decode step of
    every timed round is appended to that JSON-lines file, for looking into a noisy machine. With `profile`, one
    more round of the same shape runs under the profiler after the timed ones (never beside one: the profiler slows
    the host, which is what bounds a timed round), stopped after `profile_tokens` tokens (0: all), for device time
    and kernel counts (perfgate.profiling).

    With `beside_is_base` (an A/B run, perfgate.ab), the worker beside is the same variant on the base side: its
    memory is tracked and its round profiled as this worker's are; `stack_slowdown` slows this (the head's) decode
    steps by that share of a step, calibrated as the canary is (the whole-stack canary)."""
    test_started = time.perf_counter()
    gen = {"prompt_tokens": workload.prompt_tokens, "new_tokens": workload.new_tokens}
    timed_gen = {**gen, "keep_steps": True} if step_log is not None else gen  # the step log wants every step
    worker.call("reset_memory", timeout_s)
    timed: list[Round] = []
    ref_timed: list[Round] = []
    on_core: list[int] = []
    delay_s = 0.0
    both = beside_is_base and reference is not None
    if both:
        reference.call("reset_memory", timeout_s)
    device_delay_ms = 0.0
    with (
        tracker.track(worker.pid) as peak,
        tracker.track(reference.pid) if both else contextlib.nullcontext(lambda: None) as ref_peak,
    ):
        with phases.track("warmup"):
            for _ in range(plan.warmup):
                # the reference warms up to this shape too (a static cache compiles per shape)
                if reference is not None:
                    reference.call("generate", timeout_s, **gen)
                worker.call("generate", timeout_s, **gen)
            if variant.step_delay or stack_slowdown:
                delay_s = calibrate_canary(worker, gen, stack_slowdown or canary_slowdown, timeout_s)
            if variant.device_delay:
                device_delay_ms = calibrate_device_canary(worker, gen, device_slowdown, timeout_s, profile_tokens)

        energy: list[float] = []

        def counters(handle: WorkerHandle, core: int | None) -> dict[str, float | None]:
            """The step log's counters, read before and after a round: the worker's involuntary switches and minor
            page faults, and the steal on its core (on the whole machine where it is not pinned)."""
            return {
                "involuntary_switches": involuntary_switches(handle.pid),
                "minor_faults": minor_faults(handle.pid),
                "steal_s": cpu_steal_s(core),
            }

        def generate(
            handle: WorkerHandle, into: list[Round], probes: dict[str, Any], who: str, core: int | None
        ) -> None:
            """One timed round of this worker; with a step log, also what the machine did meanwhile."""
            before = counters(handle, core) if step_log is not None else None
            into.append(Round.from_dict(handle.call("generate", timeout_s, **timed_gen)))
            if before is None:
                return
            for name, after in counters(handle, core).items():
                probes[f"{who}_{name}"] = after - before[name] if None not in (after, before[name]) else None
            probes[f"{who}_clocks_after"] = {**tracker.clocks(), "cpu_khz": cpu_khz(core)}

        def one_round() -> None:
            n = len(timed)
            probes: dict[str, Any] = {}
            ref_core = core = None
            if reference is not None and cores is not None:
                ref_core, core = cores if (n // 2) % 2 == 0 else cores[::-1]
                reference.call("pin", timeout_s, core=ref_core)
                worker.call("pin", timeout_s, core=core)
                on_core.append(core)
            if reference is not None and n % 2 == 0:
                generate(reference, ref_timed, probes, "reference", ref_core)
            before = tracker.energy_mj()
            generate(worker, timed, probes, "variant", core)
            after = tracker.energy_mj()
            if before is not None and after is not None:
                energy.append((after - before) / 1000)
            if reference is not None and n % 2 == 1:
                generate(reference, ref_timed, probes, "reference", ref_core)
            if step_log is not None:
                # after both rounds and the energy read: the kernel's walk of a worker's mappings takes tens of ms
                probes["variant_memory_after"] = memory_placement(worker.pid)
                if reference is not None:
                    probes["reference_memory_after"] = memory_placement(reference.pid)
                log_steps(
                    step_log,
                    variant.name,
                    workload.id,
                    timed[-1],
                    ref_timed[-1] if reference is not None else None,
                    on_core,
                    probes,
                )

        def so_far() -> DecodeMeasurement:
            return DecodeMeasurement(
                workload,
                tuple(timed),
                VramPeak(None, None, 0),
                None,
                delay_s,
                reference.name if reference else None,
                tuple(ref_timed),
                no_ratio,
                cores=tuple(on_core),
                device_delay_ms=device_delay_ms,
                beside="base" if beside_is_base else "reference",
            )

        def paired() -> DecodeMeasurement | None:
            """The timed rounds so far, each of the variant's with the reference's beside it (a pair the signal cut
            in half is left out); None before the first."""
            n = min(len(timed), len(ref_timed)) if reference is not None else len(timed)
            whole = so_far()
            return replace(whole, rounds=whole.rounds[:n], reference_rounds=whole.reference_rounds[:n]) if n else None

        started = time.perf_counter()
        try:
            if benchmark is not None:
                benchmark.pedantic(one_round, rounds=plan.rounds, iterations=1, warmup_rounds=0)
            while len(timed) < plan.rounds:  # pytest-benchmark runs the target only once under --benchmark-disable
                one_round()
            while (
                settled is not None
                and len(timed) < plan.cap
                and time.perf_counter() - started < plan.budget_s
                and plan.more(len(timed), settled(so_far()))
            ):
                one_round()
        except KeyboardInterrupt as exc:
            raise MeasurementInterrupted(str(exc), variant.name, paired()) from exc
        with phases.track("profile"):
            tokens = profile_tokens or None
            profiled = worker.call("profile", timeout_s, **gen, tokens=tokens) if profile else None
            ref_profiled = reference.call("profile", timeout_s, **gen, tokens=tokens) if profile and both else None
    if cores is not None and reference is not None:  # each back on its own core for the tests that follow
        reference.call("pin", timeout_s, core=cores[0])
        worker.call("pin", timeout_s, core=cores[1])
    memory = worker.call("memory", timeout_s)
    energy_ok = len(energy) == len(timed)
    return replace(
        so_far(),
        vram=peak(),
        torch_max_allocated_mib=memory["torch_max_allocated_mib"],
        energy_j=tuple(energy) if energy_ok else (),
        no_energy=None if energy_ok else no_energy_reason(tracker),
        profile=profiled,
        test_s=time.perf_counter() - test_started,
        reference_vram=ref_peak() if both else None,
        reference_profile=ref_profiled,
    )


def log_steps(
    path: Path,
    variant: str,
    workload: str,
    rnd: Round,
    ref: Round | None,
    cores: list[int],
    probes: dict[str, Any] | None = None,
) -> None:
    """One JSON line per timed round: every decode step of the variant (and of the reference's round beside it),
    the variant's core, and the probes: per worker, how often the kernel took its main thread off the CPU during
    its round and how many minor page faults it took, how long the hypervisor took its core away (steal), the GPU's
    SM clock and clock-event reasons and the core's clock right after it, and where the worker's memory lay
    (huge pages, NUMA nodes: trackers.memory_placement): looking for the slow states, and for what sets one process
    of two running the same code apart from the other for its whole life."""
    record = {
        "variant": variant,
        "workload": workload,
        "steps_s": list(rnd.steps_s),
        "core": cores[-1] if cores else None,
        **(probes or {}),
    }
    if ref is not None:
        record["reference_steps_s"] = list(ref.steps_s)
    path.parent.mkdir(parents=True, exist_ok=True)
    with path.open("a", encoding="utf-8") as out:
        out.write(json.dumps(record) + "\n")


def no_energy_reason(tracker: VramTracker) -> str:
    if tracker.nvml is None:
        return "no CUDA device: energy is not measured on the CPU"
    return tracker.nvml.error or "this GPU or driver has no NVML total-energy counter"


def calibrate_canary(
    worker: WorkerHandle, gen: dict[str, int], slowdown: float, timeout_s: float, rounds: int = 3
) -> float:
    """The canary: slow every decode step by a share of a step measured just now, in rounds of their own after
    the warm-up (the first rounds after loading run slower and would make the delay too long). The step is the
    fastest of the rounds' 10th-percentile steps, the fast state the ratio compares (DecodeMeasurement.fast_ratio):
    one round caught in a slow state would otherwise make the delay twice as long."""
    worker.call("set_step_delay", timeout_s, delay_s=0.0)
    step_s = min(Round.from_dict(worker.call("generate", timeout_s, **gen)).step_p10_s for _ in range(rounds))
    delay_s = slowdown * step_s
    worker.call("set_step_delay", timeout_s, delay_s=delay_s)
    return delay_s


def calibrate_device_canary(
    worker: WorkerHandle, gen: dict[str, int], slowdown: float, timeout_s: float, tokens: int = 0
) -> float:
    """The GPU canary: device work of `slowdown` times a decode step's device time (its operators' time on a CPU),
    profiled just now without it, added to every decode step; returns that work in ms per step."""
    worker.call("set_device_delay", timeout_s, ms=0.0)
    profiled = worker.call("profile", timeout_s, **gen, tokens=tokens or None)
    step_ms = profiled.get("device_ms_per_token", profiled.get("cpu_op_ms_per_token"))
    if step_ms is None:
        raise WorkerError("error", f"the GPU canary cannot be sized: {profiled.get('unavailable')}")
    worker.call("set_device_delay", timeout_s, ms=slowdown * step_ms)
    return slowdown * step_ms


@dataclass(frozen=True)
class AgentMeasurement:
    workload: str  # "q10": the first 10 queries
    queries: tuple[Query, ...]
    rounds: tuple[tuple[tuple[Round, ...], ...], ...]  # [round][query][turn]
    vram: VramPeak  # over the warm-up (at the longest turn's length) and every round
    torch_max_allocated_mib: float | None
    step_delay_s: float
    reuse: tuple[tuple[Round, ...], ...] = ()  # [query][turn]: one pass keeping the KV cache between turns
    reuse_unavailable: str | None = None
    base: AgentMeasurement | None = None  # an A/B run's base side, the same queries (perfgate.ab)
    no_base: str | None = None  # in an A/B run, why there is no ratio to the base (`base` keeps any complete passes)
    cores: tuple[int, ...] = ()  # in an A/B run on pinned cores, the head's core each turn: [pass][query][turn]

    def turn_latencies(self) -> list[float]:
        """Per turn of every query, in order: its wall time, the median over rounds."""
        return self.turn_medians(lambda turn: turn.wall_s)

    def turn_medians(self, of: Callable[[Round], float]) -> list[float]:
        """Per turn of every query, in order: `of` its round, the median over rounds."""
        return [
            median([of(r[q][t]) for r in self.rounds])
            for q, query in enumerate(self.queries)
            for t in range(len(query.turns))
        ]

    def query_latencies(self) -> list[float]:
        """Per query: the sum of its turns, the median over rounds."""
        return [median([sum(x.wall_s for x in r[q]) for r in self.rounds]) for q in range(len(self.queries))]

    @property
    def turn_keys(self) -> list[str]:
        return [f"{q.id}/{t + 1}" for q in self.queries for t in range(len(q.turns))]


def agent(
    worker: WorkerHandle,
    tracker: VramTracker,
    variant: Variant,
    workload: str,
    queries: tuple[Query, ...],
    plan: RoundPlan,
    canary_slowdown: float,
    timeout_s: float,
    settled: Callable[[AgentMeasurement], str] | None = None,
    reuse: bool = False,
    base: AgentBase | None = None,
    stack_slowdown: float = 0.0,
    cores: tuple[int, int] | None = None,
) -> AgentMeasurement:
    """Replay the agent's queries: warm up on the longest turn (a static cache is sized, and compiled, once for
    it), then `plan.rounds` passes over every query, more while `settled` says the verdict is unclear.

    With `base` (an A/B run), the base worker replays every pass too, turn by turn alternating with this one, which
    of the two goes first swapped each turn, as the decode test alternates rounds: the host's slow spells last tens
    of seconds on the H200, long enough to fall on one side's whole pass if the passes ran one after the other
    (docs/method.md, "A/B verdicts"). The base's measurement is the result's `base`. A base worker that fails ends
    the base's side alone: its complete passes are kept, and `no_base` says why there is no ratio. `stack_slowdown`
    slows this (the head's) decode steps, as in the decode test (the whole-stack canary). With `cores` (the base's
    and the head's own CPU core), the two swap cores between turns, as the decode test's workers swap them between
    rounds: a core slower than the other would otherwise weigh on the head's whole replay (docs/method.md, "A/B
    verdicts", the agent's ratio). Each is put back on its own core after, and the head's core of each turn is kept
    (`cores`, in the order of the turns of every pass)."""
    longest = max((q.longest for q in queries), key=lambda t: t.total_tokens)
    gen = {"prompt_tokens": longest.prompt_tokens, "new_tokens": longest.reply_tokens}
    warm = gen
    if variant.cache != "static":
        # The decode test before it warmed this worker's decode step: the warm-up needs only the longest turn's
        # length, which sizes the KV cache the pass will grow to. Its whole reply (76 tokens) would take 5-16 s a
        # variant at a slow H200 machine start's decode rates (4.8-14.3 tok/s). A static cache's decode step is
        # compiled for the cache, and the full reply warms it.
        warm = {"prompt_tokens": longest.total_tokens - AGENT_WARMUP_TOKENS, "new_tokens": AGENT_WARMUP_TOKENS}
    head = _Side(worker, variant)
    other = _Side(base.worker, base.variant) if base is not None else None
    no_base: str | None = None  # set when the base failed: its side is no longer asked anything
    alternations = 0  # turns replayed on both sides so far: which side goes first swaps each turn
    head_cores: list[int] = []  # the head's core, each turn replayed on both sides with `cores`

    def on_base(work: Callable[[_Side], Any]) -> Any:
        """`work` on the base's side while it is measured; a failing base ends that side alone (None)."""
        nonlocal no_base
        if other is None or no_base is not None:
            return None
        try:
            return work(other)
        except WorkerError as exc:
            no_base = base.failed(exc)
            return None

    def prepare(side: _Side) -> None:
        side.worker.call("reset_memory", timeout_s)

    def warm_up(side: _Side) -> None:
        for _ in range(max(plan.warmup, 1)):
            side.worker.call("generate", timeout_s, **warm)
        # the head's alone, as in the decode test: a canary variant measured in an A/B run is slowed on one side
        if side is head and (side.variant.step_delay or stack_slowdown):
            side.delay_s = calibrate_canary(side.worker, gen, stack_slowdown or canary_slowdown, timeout_s)

    def one_pass() -> None:
        """One pass over the queries on each side still measured: a query at a time on one side; on two, a turn at
        a time (`agent_replay` of that turn alone: without a kept cache the turns do not depend on each other)."""
        nonlocal alternations
        if other is None or no_base is not None:
            if cores is not None:  # the base gone: the head alone, on its own core
                worker.call("pin", timeout_s, core=cores[1])
                head_cores.extend(cores[1] for q in queries for _ in q.turns)
            head.rounds.append(_replay_queries(worker, queries, False, timeout_s))
            return

        def turn_on_base(turn: Any, row: list[Round]) -> None:
            row.extend(on_base(lambda side: _replay(side.worker, (turn,), False, timeout_s)) or ())

        mine: list[list[Round]] = []
        theirs: list[list[Round]] = []
        for q in queries:
            mine.append([])
            theirs.append([])
            for turn in q.turns:
                if cores is not None:
                    # The cores swapped every two turns, offset by one from which side goes first (every turn): each
                    # side has each core for half of a pass's turns (5 of 10), first and second alike. The head goes
                    # back to its own core once the base is gone.
                    swapped = no_base is None and ((alternations + 1) // 2) % 2 == 1
                    base_core, head_core = cores[::-1] if swapped else cores
                    on_base(lambda side, core=base_core: side.worker.call("pin", timeout_s, core=core))
                    worker.call("pin", timeout_s, core=head_core)
                    head_cores.append(head_core)
                base_first = alternations % 2 == 0
                alternations += 1
                if base_first:
                    turn_on_base(turn, theirs[-1])
                mine[-1].extend(_replay(worker, (turn,), False, timeout_s))
                if not base_first:
                    turn_on_base(turn, theirs[-1])
        head.rounds.append(tuple(map(tuple, mine)))
        if no_base is None:  # a pass the base did not finish is not kept
            other.rounds.append(tuple(map(tuple, theirs)))

    def so_far() -> AgentMeasurement:
        measured = replace(head.measurement(workload, queries), cores=tuple(head_cores))
        if other is None:
            return measured
        return replace(measured, base=other.measurement(workload, queries) if other.rounds else None, no_base=no_base)

    prepare(head)
    on_base(prepare)
    measured_base = other is not None and no_base is None
    base_window = tracker.track(other.worker.pid) if measured_base else contextlib.nullcontext(lambda: None)
    with tracker.track(worker.pid) as peak, base_window as base_peak:
        on_base(warm_up)  # the base first, as in the decode test's rounds
        warm_up(head)
        started = time.perf_counter()
        while len(head.rounds) < plan.rounds or (
            settled is not None
            and len(head.rounds) < plan.cap
            and time.perf_counter() - started < plan.budget_s
            and plan.more(len(head.rounds), settled(so_far()))
        ):
            one_pass()
    if cores is not None:  # each back on its own core for the tests that follow
        on_base(lambda side: side.worker.call("pin", timeout_s, core=cores[0]))
        worker.call("pin", timeout_s, core=cores[1])
    head.vram, head.torch_max_mib = peak(), worker.call("memory", timeout_s)["torch_max_allocated_mib"]
    memory = on_base(lambda side: side.worker.call("memory", timeout_s))
    if memory is not None:
        other.vram, other.torch_max_mib = base_peak(), memory["torch_max_allocated_mib"]
    measured = so_far()
    if not reuse:
        return measured
    try:
        return replace(measured, reuse=_replay_queries(worker, queries, True, timeout_s))
    except WorkerError as exc:  # report-only: a variant whose generate takes no cache from outside says so
        if exc.kind in ("died", "timeout"):
            raise
        return replace(measured, reuse_unavailable=f"generate with a kept cache failed: {exc.message[:300]}")


@dataclass(frozen=True)
class AgentBase:
    """An A/B run's base side for the agent's replay: its worker and variant, and what to do when it fails
    (perfgate.session: release its worker and record the failure; returns why the base has no measurement)."""

    worker: WorkerHandle
    variant: Variant
    failed: Callable[[WorkerError], str]


@dataclass
class _Side:
    """One worker's replay while it runs: its passes, [round][query][turn], and what the measurement needs."""

    worker: WorkerHandle
    variant: Variant
    rounds: list[tuple[tuple[Round, ...], ...]] = field(default_factory=list)
    delay_s: float = 0.0  # the canary's added delay per decode step; 0 otherwise
    vram: VramPeak = VramPeak(None, None, 0)
    torch_max_mib: float | None = None

    def measurement(self, workload: str, queries: tuple[Query, ...]) -> AgentMeasurement:
        return AgentMeasurement(workload, queries, tuple(self.rounds), self.vram, self.torch_max_mib, self.delay_s)


def _replay(worker: WorkerHandle, turns: Sequence[Any], keep_cache: bool, timeout_s: float) -> tuple[Round, ...]:
    """`turns` of one query replayed on `worker` (the worker's agent_replay), one Round a turn."""
    rows = [[t.prompt_tokens, t.reply_tokens, t.shared_prefix_tokens] for t in turns]
    return tuple(Round.from_dict(r) for r in worker.call("agent_replay", timeout_s, turns=rows, reuse=keep_cache))


def _replay_queries(
    worker: WorkerHandle, queries: Sequence[Query], keep_cache: bool, timeout_s: float
) -> tuple[tuple[Round, ...], ...]:
    """One pass over the queries on `worker` alone, a query at a time: [query][turn]."""
    return tuple(_replay(worker, q.turns, keep_cache, timeout_s) for q in queries)


def agent_figures(variant: str, m: AgentMeasurement) -> list[fig.Figure]:
    """Per-query latency p50/p95 (gated: decided per turn against the baseline's same turn), peak VRAM (gated),
    and what explains them (turns, generated tokens/s, prefill share, the decode steps' own rate; reported)."""
    latencies = m.query_latencies()
    turns = m.turn_latencies()
    all_rounds = [x for r in m.rounds for q in r for x in q]
    params: dict[str, Any] = {
        "queries": [q.id for q in m.queries],
        "rounds": len(m.rounds),
        "turn_keys": m.turn_keys,
        "turn_latency_s": turns,
        # each pass's own, in the same order: what a pass told the rule for further passes (gate.MAX_ITEMS_SHORT),
        # which the medians over all passes no longer show
        "turn_latency_s_by_pass": [[x.wall_s for q in r for x in q] for r in m.rounds],
        # each turn's decode steps (agent_decode_tok_per_s), the median over passes: whether a turn's shape slows them
        "turn_decode_tok_per_s": m.turn_medians(lambda turn: turn.decode_tok_per_s),
    }
    if m.step_delay_s:
        params["canary_step_delay_s"] = m.step_delay_s
    if m.cores:  # the head's core each turn, [pass][query][turn] flattened (the two sides' cores swapped)
        params["cores"] = list(m.cores)
    why = m.vram.unavailable

    def latency(metric: str, value: float) -> fig.Figure:
        return replace(fig.series(variant, "agent", m.workload, metric, latencies, params), value=value)

    def once(metric, value, unavailable=None, extra=None):
        return fig.once(variant, "agent", m.workload, metric, value, unavailable, extra)

    replies = sum(q.reply_tokens for q in m.queries)
    prefill = sum(x.ttft_s for x in all_rounds)
    total = sum(x.wall_s for x in all_rounds)
    stepping = sum(x.decode_s for x in all_rounds)
    out = [
        latency("agent_query_p50_s", percentile(latencies, 50)),
        latency("agent_query_p95_s", percentile(latencies, 95)),
        once("agent_turns_mean", mean([len(q.turns) for q in m.queries])),
        once("agent_gen_tok_per_s", replies * len(m.rounds) / total if total else None),
        once("agent_prefill_share_pct", 100 * prefill / total if total else None),
        once("agent_decode_tok_per_s", sum(x.new_tokens - 1 for x in all_rounds) / stepping if stepping else None),
        once("agent_peak_vram_mib", m.vram.process_mib, why),
    ]
    if m.base is not None or m.no_base:
        out.insert(2, agent_ratio_figure(variant, m, params))
    if m.reuse or m.reuse_unavailable:
        kept = [sum(x.wall_s for x in q) for q in m.reuse]
        p50 = percentile(kept, 50) if kept else None
        saving = 100 * (1 - sum(kept) / sum(latencies)) if kept else None
        note = {"note": "one pass keeping the KV cache between turns (prefix reuse), report-only"}
        out.append(once("agent_reuse_query_p50_s", p50, m.reuse_unavailable, note))
        out.append(once("agent_reuse_saving_pct", saving, m.reuse_unavailable, note))
    return out


def agent_ratio_figure(variant: str, m: AgentMeasurement, params: dict[str, Any]) -> fig.Figure:
    """An A/B run's agent latency, head over base (above 1: the head is slower): the queries' summed latency, with
    its 98 % bootstrap interval over the turns, which the two sides replayed alternating (measure.agent); samples
    are each turn's own ratio. Over the turns, not the queries: three queries (the pull-request workload) are
    fewer than a figure needs to fail (gate.MIN_INTERVAL_SAMPLES_TO_FAIL), their ten turns are not."""
    base = m.base.turn_latencies() if m.base is not None and not m.no_base else []
    head = m.turn_latencies()
    if not base or len(base) != len(head) or min(base) <= 0:
        why = m.no_base or "the base side has no latency for these turns"
        return fig.once(variant, "agent", m.workload, ab.AGENT_RATIO, None, why, params)

    def ratio(pick: Sequence[int]) -> float:
        return sum(head[i] for i in pick) / sum(base[i] for i in pick)

    lo, hi = bootstrap_interval(len(head), ratio, confidence=0.98, seed=len(head))
    extra = {
        "interval": [lo, hi],
        "estimator": "sum/sum over turns",
        "base_turn_latency_s": base,
        "base_query_latency_s": m.base.query_latencies(),
    }
    samples = [h / b for h, b in zip(head, base, strict=True)]
    kept = {k: v for k, v in params.items() if not k.startswith("turn_latency_s")}
    figure = fig.series(variant, "agent", m.workload, ab.AGENT_RATIO, samples, {**kept, **extra})
    return replace(figure, value=ratio(range(len(head))))


def load_figures(variant: str, m: LoadMeasurement) -> list[fig.Figure]:
    why = m.vram.unavailable

    def once(metric, value, unavailable=why):
        return fig.once(variant, "load", "", metric, value, unavailable)

    return [
        once("load_s", m.load_s, None),
        once("load_peak_vram_mib", m.vram.process_mib),
        once("resident_vram_mib", m.resident_mib),
        once("torch_allocated_mib", m.torch_allocated_mib, "torch.cuda is not used on the CPU"),
    ]


def decode_figures(variant: str, m: DecodeMeasurement) -> list[fig.Figure]:
    w = m.workload
    params: dict[str, Any] = {"prompt_tokens": w.prompt_tokens, "new_tokens": w.new_tokens, "rounds": len(m.rounds)}
    if m.step_delay_s:
        params["canary_step_delay_s"] = m.step_delay_s
    if m.reference_rounds:
        params["reference"] = m.reference
        params["reference_decode_tok_per_s"] = median([r.decode_tok_per_s for r in m.reference_rounds])
    why = m.vram.unavailable
    wall = sum(r.wall_s for r in m.rounds)
    overhead_pct = 100 * sum(r.clock_overhead_s for r in m.rounds) / wall if wall else 0.0

    def series(metric, values):
        return fig.series(variant, "decode", w.id, metric, values, params)

    def once(metric, value, unavailable=why):
        return fig.once(variant, "decode", w.id, metric, value, unavailable, params)

    out = [
        series("decode_tok_per_s", [r.decode_tok_per_s for r in m.rounds]),
        series("ttft_s", [r.ttft_s for r in m.rounds]),
        series("round_s", [r.wall_s for r in m.rounds]),
        once("peak_vram_mib", m.vram.process_mib),
        once("peak_vram_device_mib", m.vram.device_mib),
        once("torch_max_allocated_mib", m.torch_max_allocated_mib, "torch.cuda is not used on the CPU"),
        once("timing_overhead_pct", overhead_pct, None),
    ]
    if m.energy_j:
        per_token = [e / r.new_tokens for e, r in zip(m.energy_j, m.rounds, strict=True)]
        out.append(series("energy_j_per_token", per_token))
    else:
        out.append(once("energy_j_per_token", None, m.no_energy))
    bw = m.bandwidth or {}
    if bw.get("gb_per_s") and bw.get("weight_bytes"):
        bound = bw["gb_per_s"] * 1e9 / bw["weight_bytes"]  # tokens/s if every step only read the weights once
        shares = [100 * r.decode_tok_per_s / bound for r in m.rounds]
        extra = {"copy_gb_per_s": bw["gb_per_s"], "weight_bytes": bw["weight_bytes"], "bound_tok_per_s": bound}
        out.append(fig.series(variant, "decode", w.id, "bandwidth_share_pct", shares, {**params, **extra}))
    else:
        why = bw.get("why") or "the device's bandwidth was not measured"
        out.append(once("bandwidth_share_pct", None, why))
    timed = [r for pair in m.process_pairs for r in (*pair.rounds, *pair.reference_rounds)]
    ratio_metric = ab.RATIO if m.beside == "base" else "decode_ratio_to_ref"
    if m.reference_rounds and all(r.step_p10_s > 0 for r in timed):
        value, (lo, hi), each = m.ratio_over_processes()
        detail = {  # the decision's inputs, and per round where a noisy ratio comes from
            "estimator": FASTEST_ESTIMATOR if m.fastest and m.earlier else RATIO_ESTIMATOR,
            "interval": [lo, hi],
            "step_p10_s": [r.step_p10_s for r in m.rounds],
            "reference_step_p10_s": [r.step_p10_s for r in m.reference_rounds],
            **({"cores": list(m.cores)} if m.cores else {}),
        }
        if m.fastest and m.earlier:  # the fast states the value is the quotient of (gate.PairRule's `fastest`)
            reference_s, own_s = fastest_states(m.pair_rounds())
            detail["fastest_processes_s"] = {"reference": reference_s, "variant": own_s}
        if m.earlier:  # each pair of worker processes, first first (the detail above is the last pair's)
            detail["process_pairs"] = [
                {
                    "value": ratio,
                    "interval": list(interval),
                    "step_p10_s": [r.step_p10_s for r in pair.rounds],
                    "reference_step_p10_s": [r.step_p10_s for r in pair.reference_rounds],
                }
                for pair, (ratio, interval) in zip(m.process_pairs, each, strict=True)
            ]
        samples = [x for pair in m.process_pairs for x in pair.ratios]
        ratio = fig.series(variant, "decode", w.id, ratio_metric, samples, {**params, **detail})
        out.insert(1, replace(ratio, value=value))
    elif m.reference_rounds:
        why = f"{w.new_tokens} new tokens leave no decode steps to time"
        out.insert(1, once(ratio_metric, None, why))
    elif m.no_ratio:
        out.insert(1, once(ratio_metric, None, m.no_ratio))
    if m.beside == "base":
        out.insert(2, ttft_ratio_figure(variant, m, params))
    profiled = m.profiled
    if profiled.profile is not None:
        pair = (
            {"profiled_pair": next(i for i, p in enumerate(m.process_pairs, 1) if p is profiled)} if m.earlier else {}
        )
        out.extend(device_figures(variant, profiled, {**params, **pair}))
    return out


def ttft_ratio_figure(variant: str, m: DecodeMeasurement, params: dict[str, Any]) -> fig.Figure:
    """An A/B run's time to first token, head over base (above 1: the head is slower), over the pairs of rounds of
    the last pair of worker processes: the ratio of the sides' medians, with its 98 % bootstrap interval over the
    pairs (a prefill is one long step, steadier than the decode's fast state needs to be)."""
    head, base = [r.ttft_s for r in m.rounds], [r.ttft_s for r in m.reference_rounds]
    if not head or len(head) != len(base) or min(base) <= 0:
        why = m.no_ratio or "no pair of rounds with a first token on each side"
        return fig.once(variant, "decode", m.workload.id, ab.TTFT_RATIO, None, why, params)

    def ratio(pick: Sequence[int]) -> float:
        return median([head[i] for i in pick]) / median([base[i] for i in pick])

    lo, hi = bootstrap_interval(len(head), ratio, confidence=0.98, seed=len(head))
    samples = [h / b for h, b in zip(head, base, strict=True)]
    extra = {"interval": [lo, hi], "estimator": "median/median", "base_ttft_s": base}
    figure = fig.series(variant, "decode", m.workload.id, ab.TTFT_RATIO, samples, {**params, **extra})
    return replace(figure, value=ratio(range(len(head))))


NO_CUDA = "no CUDA device: kernels are profiled on a GPU (operators on a CPU: ops_per_token)"
NO_OPS = "operators are profiled on a CPU only (kernels on a GPU)"


def device_figures(variant: str, m: DecodeMeasurement, params: dict[str, Any]) -> list[fig.Figure]:
    """The profiled round's figures (perfgate.profiling): on a GPU device time per token (its samples one per
    token) and the prefill's, kernels, launches and syncs per token (exact), how busy the GPU is over the timed
    rounds' median step and the host's share; on a CPU operators per token (exact) and their time. The kernel
    table goes with the counts and the device time, so that a failure can say which kernels changed."""
    w, p = m.workload, m.profile or {}
    why = p.get("unavailable")
    gpu = "device_ms_per_token" in p
    cpu = "ops_per_token" in p
    base = {**params, "tokens_profiled": p.get("tokens")}
    if m.device_delay_ms:
        base["canary_device_ms"] = m.device_delay_ms

    def once(metric, value, unavailable, extra=None):
        return fig.once(variant, "decode", w.id, metric, value, unavailable, {**base, **(extra or {})})

    def series(metric, values, extra=None):
        return fig.series(variant, "decode", w.id, metric, values, {**base, **(extra or {})})

    kernels = {"kernels": p.get("kernels", {})}
    no_gpu = why or NO_CUDA
    no_cpu = why or NO_OPS
    steps_ms = [1000 * r.step_median_s for r in m.rounds]
    step_ms = median(steps_ms) if steps_ms else None
    calls = {"calls": p.get("calls", {})}
    out = [
        series("device_ms_per_token", p["device_ms_each_token"], kernels)
        if gpu
        else once("device_ms_per_token", None, no_gpu),
        once("prefill_device_ms", p.get("prefill_device_ms"), no_gpu),
        once("kernels_per_token", p.get("kernels_per_token"), no_gpu, kernels),
        once("launches_per_token", p.get("launches_per_token"), no_gpu, calls),
        once(
            "syncs_per_token",
            p.get("syncs_per_token"),
            no_gpu,
            {**calls, "clock_syncs_per_token": p.get("clock_syncs_per_token")},
        ),
        once("ops_per_token", p.get("ops_per_token"), no_cpu, kernels),
        series("cpu_op_ms_per_token", p["cpu_op_ms_each_token"]) if cpu else once("cpu_op_ms_per_token", None, no_cpu),
    ]
    busy = host = None
    if gpu and step_ms:
        busy, host = 100 * p["device_ms_per_token"] / step_ms, step_ms - p["device_ms_per_token"]
    no_split = no_gpu if not gpu else "no timed decode step to compare with"
    extra = {"step_median_ms": step_ms}
    out.append(once("gpu_busy_pct", busy, no_split, extra))
    out.append(once("host_ms_per_token", host, no_split, extra))
    cost = p.get("profile_s")
    share = 100 * cost / m.test_s if cost is not None and m.test_s else None
    no_cost = why or "not profiled"
    out.append(once("profiling_s", cost, no_cost, {"read_s": p.get("read_s"), "events": p.get("events")}))
    out.append(once("profiling_overhead_pct", share, no_cost, {"test_s": m.test_s}))
    return out


FIDELITY_METRICS = ("kl_nats", "top1_agreement_pct", "max_abs_logit_diff", "nonfinite_logits")
REAL_MODEL_METRICS = ("perplexity", "greedy_agreement_pct")  # with real weights only


def fidelity_figures(variant: str, reference: str, result: dict[str, Any]) -> list[fig.Figure]:
    """The figures of one fidelity comparison (perfgate.fidelity.compare's result) against `reference`, and, with
    a real model, its perplexity on the committed text and its greedy agreement on the agent's first turns."""
    params = {"reference": reference, "positions": result["positions"]}
    out = [fig.once(variant, "fidelity", "", name, float(result[name]), params=params) for name in FIDELITY_METRICS]
    real = {"reference": reference, "tokens": result.get("tokens"), "questions": result.get("greedy_questions")}
    for name in REAL_MODEL_METRICS:
        out.append(fig.once(variant, "fidelity", "", name, result.get(name), result.get("real_model_only"), real))
    return out


def live_figures(variant: str, workload: str, outcomes: list[dict[str, Any]]) -> list[fig.Figure]:
    """The real agent loop's figures (report-only: what a model says varies)."""
    latencies = [sum(t["wall_s"] for t in o["timings"]) for o in outcomes]
    params = {
        "queries": [o["question_id"] for o in outcomes],
        "answers": {o["question_id"]: o["answer"] for o in outcomes},
        "stopped": {o["question_id"]: o["stopped"] for o in outcomes},
    }

    def once(metric, value):
        return fig.once(variant, "agent_live", workload, metric, value, None, params)

    return [
        fig.series(variant, "agent_live", workload, "agent_live_query_p50_s", latencies, params),
        once("agent_live_turns_mean", mean([o["turns"] for o in outcomes])),
        once("agent_live_answered_pct", 100 * mean([o["stopped"] == "answered" for o in outcomes])),
        once("agent_live_correct_pct", 100 * mean([bool(o["correct"]) for o in outcomes])),
        once("agent_live_tool_errors", float(sum(len(o["errors"]) for o in outcomes))),
    ]
