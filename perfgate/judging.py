"""Judging: each gated figure held against what it is compared to, with the verdict and where the comparison came from.

Two judges, one per kind of run. Judge holds a figure against its entry in the baseline file, where that entry is
comparable: measured with the same new tokens, the same decode tokens profiled, the same agent queries and the same
ratio estimator (else there is nothing to gate against, and the verdict's note says why). AbJudge, in an A/B run,
holds the head side's figures against the base side's of the same run. Both return Judged values and one failure
message per figure that failed; perfgate.gate decides each verdict, perfgate.session keeps them.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from perfgate import ab, baselines, gate, measure, variants
from perfgate.figures import Figure

RATIO = "decode_ratio_to_ref"
NONFINITE = "nonfinite_logits"


@dataclass(frozen=True)
class Judged:
    """A gated figure with the baseline it was held against and the verdict."""

    figure: Figure
    verdict: gate.Verdict
    baseline_key: str
    note: str = ""  # why there is no comparable baseline, or where the baseline came from
    # a suspect ratio judged with the baseline's rounds: its interval at its value with the baseline's noise alone
    floor: tuple[float, float] | None = None
    too_noisy: dict[str, Any] | None = None  # the baseline entry's mark: too noisy for its tolerance, held to its floor

    @property
    def futile(self) -> bool:
        """Suspect, but more rounds of this run cannot fail it, so it is not given them: the baseline's own noise
        alone keeps its interval open at this value (measure.ratio_interval_at); or, decided item by item, more than
        gate.MAX_ITEMS_SHORT of its items would have to turn worse than their limits (or no count of them can)."""
        if self.verdict.test == "paired sign":
            short = self.verdict.short
            return short is None or short > gate.MAX_ITEMS_SHORT
        if self.floor is None or self.verdict.limit is None:
            return False
        lo, hi = self.floor
        return hi >= self.verdict.limit if self.figure.better == "higher" else lo <= self.verdict.limit


def settle_state(judged: list[Judged]) -> str:
    """Where a test's verdicts stand after a round: all clear; unclear, with a figure already beyond its limit
    that more rounds could fail (measured further, up to --perf-suspect-rounds); or unclear."""
    if all(j.verdict.clear for j in judged):
        return measure.CLEAR
    return measure.SUSPECT if any(j.verdict.suspect and not j.futile for j in judged) else measure.UNCLEAR


def open_baseline(path: Path, gpu_slug: str, source: str, rewrite: bool) -> tuple[baselines.Baseline, str | None]:
    """The baseline file to judge against, and why it holds nothing to gate this GPU and model against (None where
    it does). A file for another GPU (copied to this machine's name) is named, never judged against, and a baseline
    run writes the file anew; an unusable file is a ValueError, unless this run rewrites it."""
    empty = baselines.Baseline(path, {"schema": baselines.SCHEMA, "models": {}})
    try:
        baseline = baselines.Baseline.load(path)
    except baselines.BaselineError as exc:
        if not rewrite:
            raise ValueError(f"{exc} (fix or delete it, or rewrite it with --perf-update-baselines)") from None
        baseline = empty
    problem = baselines.problem(baseline, gpu_slug, source)
    return (empty if baselines.written_for_another_gpu(baseline, gpu_slug) else baseline), problem


def too_noisy_to_write(figures: Iterable[Figure], tolerances: dict[str, Any]) -> bool:
    """Whether an entry a baseline run would write from these figures is too noisy for its tolerance (its own
    interval reaches further than that on the worse side: baselines.too_noisy_mark)."""
    for f in baselines.kept_figures(figures):
        tolerance = gate.tolerance_for(f.metric, tolerances, variant=f.variant)
        if baselines.too_noisy_mark(f.value, f.params.get("interval"), f.better, tolerance):
            return True
    return False


def incomparable(f: Figure, entry: dict[str, Any]) -> str | None:
    """Why a baseline entry, measured another way, cannot be held against the figure; None where it can."""
    then, now = entry.get("params", {}), f.params
    if then.get("new_tokens") not in (None, now.get("new_tokens")):
        return f"baseline measured with {then['new_tokens']} new tokens, this run {now.get('new_tokens')}: " + (
            "not comparable"
        )
    profiled = then.get("tokens_profiled")
    if profiled is not None and profiled != now.get("tokens_profiled"):
        return (
            f"baseline profiled {profiled} decode tokens, this run {now.get('tokens_profiled')}: "
            "not comparable (--perf-device-tokens); update the baseline"
        )
    if "turn_keys" in now and then.get("turn_keys") != now["turn_keys"]:
        return "baseline measured on other agent queries or traces: not comparable"
    estimator = then.get("estimator")
    if now.get("interval") and estimator != now["estimator"]:  # a ratio estimated otherwise
        return (
            f"baseline's ratio measured another way ({estimator or 'mean rates'}, now {now['estimator']}): "
            "not comparable; update the baseline"
        )
    return None


class Judge:
    """Figures against the baseline file's entries for this GPU and model (the machine's own, as the run found it)."""

    def __init__(
        self,
        baseline: baselines.Baseline,
        source: str,
        reference: str | None,
        tolerances: dict[str, Any],
        machine: dict[str, Any],
        problem: str | None = None,
        strict: bool = False,
        busy: Sequence[str] = (),
        pair_rule: gate.PairRule = gate.REFERENCE_PAIRS,
    ) -> None:
        """source: the model's, its key in the file; reference: the variant the ratios are to; tolerances:
        --perf-tolerance's; problem: why the file has nothing for this GPU and model (open_baseline); strict: a
        figure without a baseline fails (--perf-strict); busy: the other processes on the GPU as the run started
        (Session.other_gpu_processes), named in every failure; pair_rule: how a ratio measured in several pairs of
        processes is decided (gate.pair_rule, --perf-process-pairs)."""
        self.baseline = baseline
        self.source = source
        self.reference = reference
        self.tolerances = tolerances
        self.machine = machine
        self.problem = problem
        self.strict = strict
        self.busy = list(busy)
        self.pair_rule = pair_rule

    def entry(self, f: Figure) -> tuple[str, dict[str, Any] | None, str]:
        """(key, entry or None, note) of the baseline this figure is held against."""
        of = variants.REGISTRY[f.variant].baseline_of or f.variant
        key = baselines.entry_key(of, f.test, f.workload, f.metric)
        if f.metric == RATIO and of == self.reference:
            # a canary standing in for the reference: the reference's ratio to itself is 1 by definition, however
            # the ratio is estimated
            params = {"estimator": f.params.get("estimator")}
            return key, {"value": 1.0, "unit": "x", "better": "higher", "params": params}, f"{of}'s ratio to itself"
        if f.metric == NONFINITE:  # NaN or infinity always fails, baseline or not
            entry = {"value": 0.0, "unit": "count", "better": "lower", "params": {}, "tolerance": 0.0}
            return key, entry, "no logit may be NaN or infinite"
        entry = self.baseline.entry(self.source, key)
        note = f"baseline of {of}" if of != f.variant else ""
        if entry is None and self.problem:
            note = self.problem
        return key, entry, note

    def judge(self, figures: Iterable[Figure]) -> list[Judged]:
        """The verdicts of the gated figures."""
        return [self.judge_one(f) for f in figures if f.gated]

    def judge_one(self, f: Figure) -> Judged:
        key, entry, note = self.entry(f)
        if entry and entry.get("unit") != f.unit:
            raise baselines.BaselineError(
                f"baseline file {self.baseline.path}: entry {key!r} is in {entry.get('unit')!r}, "
                f"the figure in {f.unit!r}"
            )
        noisy = entry.get("too_noisy") if entry else None
        tolerance = gate.tolerance_for(f.metric, self.tolerances, entry.get("tolerance") if entry else None, f.variant)
        if noisy:  # held to the smallest regression it can catch, its own noise counted in that floor already
            tolerance = max(tolerance, noisy["floor"])
        why = incomparable(f, entry) if entry else None
        if why or not entry:
            verdict = gate.judge(f.samples, f.value, f.better, None, tolerance, slack=gate.slack_for(f.metric))
            return Judged(f, verdict, key, why or note)
        base = entry["value"]
        pairs = None
        if "turn_keys" in f.params:  # an agent query's turns, each against the baseline's same turn
            pairs = (tuple(f.params["turn_latency_s"]), tuple(entry["params"]["turn_latency_s"]))
        interval = tuple(f.params["interval"]) if "interval" in f.params else None
        interval_test, then, each = gate.BOOTSTRAP, (), measure.pair_intervals(f.params)
        if interval and not noisy:
            then = measure.ratio_rounds(entry.get("params", {}))
            now = measure.ratio_rounds(f.params)
            if len(then) == 1 and now:  # a baseline run measures in one pair of processes
                interval, pairs_against = measure.ratio_interval_against(now, then[0], base, f.value)
                each = pairs_against if len(now) > 1 else []
                interval_test = gate.BOOTSTRAP_BOTH
        verdict = gate.judge(
            f.samples,
            f.value,
            f.better,
            base,
            tolerance,
            tuple(entry.get("samples", ())),
            slack=gate.slack_for(f.metric),
            pairs=pairs,
            interval=interval,
            interval_test=interval_test,
            pair_intervals=each,
            pair_rule=self.pair_rule,
        )
        floor = None
        if verdict.suspect and interval_test == gate.BOOTSTRAP_BOTH:
            floor = measure.ratio_interval_at(f.value, then[0], base)
        return Judged(f, verdict, key, note, floor, noisy)

    def failures(self, judged: Iterable[Judged]) -> list[str]:
        """One message per figure that failed (or, with --perf-strict, has no baseline): the figure against its
        entry, and what changed on the machine since the entry was measured."""
        from perfgate import table

        messages = []
        for j in judged:
            if j.verdict.failed or (self.strict and j.verdict.status == gate.NO_BASELINE):
                model = self.baseline.model(self.source) or {}
                entry = self.baseline.entry(self.source, j.baseline_key) if j.baseline_key else None
                changes = baselines.machine_changes(baselines.entry_machine(model, entry), self.machine)
                if self.busy:
                    # Other processes' kernels share the GPU's time: on the H200 a matmul loop beside hf-fp16 raised
                    # its device time per token by 8.7 % and its prefill's by 141 % (docs/experiments)
                    changes.append(
                        f"the GPU was not idle at the start ({'; '.join(self.busy)}): their work slows this run's, "
                        "device time included; measure on an idle GPU (--perf-strict refuses a busy one)"
                    )
                messages.append(table.failure_message(j, self.baseline.path, model, changes, self.strict, entry))
        return messages


class AbJudge:
    """An A/B run's verdicts (perfgate.ab.GATED): the ratios, head over base, against 1 by their own interval; memory
    and device time against the base side's same figure of this run, by its samples."""

    def __init__(
        self,
        tolerances: dict[str, Any],
        base_figures: dict[tuple[str, str, str, str], Figure],
        failed: dict[str, str],
        kernel_changes: dict[str, list[str]],
        differences: Callable[[], list[str]],
        busy: Sequence[str] = (),
        pair_rule: gate.PairRule = gate.AB_PAIRS,
    ) -> None:
        """The session's own records, which it fills as the run goes: base_figures, the base side's figures by the
        head's key; failed, why a variant ('NAME@base' on the base side) failed; kernel_changes, per decode test the
        kernels that differ. differences: what differs between the sides (package versions, commit, Python). busy:
        the other processes on the GPU as the run started, named in each failure. pair_rule: how a ratio measured in
        several pairs of processes is decided (gate.pair_rule, --perf-process-pairs)."""
        self.pair_rule = pair_rule
        self.tolerances = tolerances
        self.base_figures = base_figures
        self.failed = failed
        self.kernel_changes = kernel_changes
        self.differences = differences
        self.busy = list(busy)

    def judge(self, figures: Iterable[Figure]) -> list[Judged]:
        return [self.judge_one(f) for f in figures if f.gated and ab.is_gated(f.metric)]

    def judge_one(self, f: Figure) -> Judged:
        tolerance = gate.tolerance_for(f.metric, self.tolerances, variant=f.variant)
        interval, base_samples, note = None, (), "head over base, both measured in this run"
        each: list[measure.PairInterval] = []
        if f.metric in ab.RATIOS:
            value = 1.0
            interval = tuple(f.params["interval"]) if "interval" in f.params else None
            each = measure.pair_intervals(f.params)
        elif f.metric == NONFINITE:
            value, tolerance, note = 0.0, 0.0, "no logit may be NaN or infinite"
        else:
            counterpart = self.base_figures.get(f.key)
            value = counterpart.value if counterpart is not None else None
            note = "the base side's figure of this run"
            if value is None:
                why = self.failed.get(f.variant + ab.SUFFIX) or (counterpart and counterpart.unavailable)
                note = f"no base figure: {why or 'not measured on the base side'}"
            elif len(counterpart.samples) > 1:
                base_samples = counterpart.samples
        verdict = gate.judge(
            f.samples,
            f.value,
            f.better,
            value,
            tolerance,
            base_samples,
            slack=gate.slack_for(f.metric),
            interval=interval,
            pair_intervals=each,
            pair_rule=self.pair_rule,
        )
        return Judged(f, verdict, f"base/{f.metric}", note)

    def failures(self, judged: Iterable[Judged]) -> list[str]:
        """A message per figure that failed against the base (with what differs between the sides and, for a decode
        test, the kernels that differ), and one where the base side failed, so that nothing passes for want of a
        base (the head's figures are kept all the same)."""
        messages = []
        failed_base = set()
        for j in judged:
            f = j.figure
            test = f"test_{f.test}[{f.variant}-{f.workload}]" if f.workload else f"test_{f.test}[{f.variant}]"
            if j.verdict.failed:
                kernels = self.kernel_changes.get(test, [])
                messages.append(ab.failure_message(j, self.differences(), kernels, self.busy))
            why = self.failed.get(f.variant + ab.SUFFIX)
            if why and j.verdict.status in (gate.NO_BASELINE, gate.UNAVAILABLE) and f.variant not in failed_base:
                failed_base.add(f.variant)
                messages.append(
                    f"{f.variant}: the base side failed, so nothing here is judged against it; the head side's "
                    f"figures are kept in the run file. {why.splitlines()[0]}"
                )
        return messages
