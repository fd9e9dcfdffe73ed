"""The gate: compare a figure with its baseline and return a verdict. Pure functions, no torch, no I/O.

A throughput (higher is better) fails below baseline x (1 - tolerance); a latency or a memory figure (lower is
better) fails above baseline x (1 + tolerance). The decision is statistical, because a batch-1 decode rate on a
shared GPU drifts by tens of percent (../shared/gpu/README.md):

- the figure fails only when its samples are significantly worse than the limit: a one-sided Mann-Whitney U
  test against the baseline's own samples moved to the limit (so the baseline's noise counts too), or a sign
  test against the limit where the baseline is a single value (a memory peak); p < ALPHA; the ratio to the
  reference brings its own 98 % bootstrap interval (perfgate.measure.DecodeMeasurement.fast_ratio; with the
  baseline run's rounds resampled too where the baseline kept them, perfgate.measure.ratio_interval_against), and
  fails when all of it is below the limit;
- it passes clearly when the samples are significantly better than the limit;
- otherwise it is unclear, and the session measures more rounds (bounded by rounds and seconds) and asks
  again: up to --perf-max-rounds, and up to --perf-suspect-rounds while the figure itself is already beyond its
  limit (Verdict.suspect) and more rounds can fail it (perfgate.judging.Judged.futile). Still unclear at the
  bound, it passes, marked "unclear" in the summary and the run file: the gate fails a test only on evidence,
  never on a coin toss.

One slow round moves a rank test little; a real regression moves every round.
"""

from __future__ import annotations

import fnmatch
from collections.abc import Sequence
from dataclasses import dataclass

from perfgate import metrics, variants
from perfgate.stats import mann_whitney_less, median_ci, sign_test_less, sign_test_short

PASS = "pass"
FAIL = "fail"
NO_BASELINE = "no baseline"
UNAVAILABLE = "unavailable"
# how a verdict was decided from an interval: this run's rounds alone, or this run's and the baseline's
BOOTSTRAP = "bootstrap"
BOOTSTRAP_BOTH = "bootstrap with the baseline's rounds"


def slack_for(metric: str) -> float:
    """Absolute slack added to a limit, in the figure's unit: its entry's in perfgate.metrics, which says why."""
    return metrics.default_slack(metric)


# A bootstrap interval from a handful of rounds can sit wholly below the limit when one process spent all of them in
# a slow state (seen on the H200 for a few seconds at a time): a figure judged by its interval fails only from this
# many samples on, and is measured further until then.
MIN_INTERVAL_SAMPLES_TO_FAIL = 8
# Counts per token are ratios of integers, identical run to run: only float rounding may differ.
EXACT_EPSILON = 1e-9
SAME = metrics.SAME
ALPHA = 0.01  # the chance, at most, that an unchanged figure sitting exactly at its limit fails
# A suspect figure decided item by item (the agent's turns) is measured further only while at most this many items
# stand between it and failing (Verdict.short): another pass moves an item across its limit only where most of its
# passes fall there, and a regression the sign test can see must put every item beyond (the CPU's agent canary, each
# decode step doubled, put 9 or 10 of 10 beyond from the first pass). On unchanged code, at most 6 of the agent's 10
# turns were beyond their limits after two or three passes (16 measurements on six H200 machine starts), 7 once after
# one, where all 10 must be to fail (docs/method.md, "Other timing figures, and the agent's turns").
MAX_ITEMS_SHORT = 2


@dataclass(frozen=True)
class PairRule:
    """How a ratio measured in several pairs of worker processes is decided (perfgate.session measures another pair
    while the rule can still fail it). Two identical H200 processes have differed by 3.4 % (sd) and up to 50 %,
    more than the 5 % tolerance leaves a 10 % regression, so one pair can neither fail a ratio nor, alone, clear a
    suspicion (docs/method.md, "A failing ratio is measured again in fresh processes")."""

    pairs: int  # at most this many pairs of processes
    to_fail: int  # the ratio fails when this many pairs count against it and the pairs' value is beyond the limit
    by_value: bool  # a pair counts against it when its value is beyond the limit; else when its whole interval is
    # the ratio is each side's fastest process's fast state over the other's, measured in `pairs` pairs of processes
    # whatever the first says, and fails when that value is beyond the limit (an A/B run's default rule: a process's
    # offset only ever makes it slower, so the fastest of a side's processes estimates the side; see pair_rule)
    fastest: bool = False

    def against(self, lo: float, hi: float, n: int, value: float, limit: float, higher: bool) -> bool:
        """Whether one pair (its interval, pairs of rounds and value) counts against the ratio (beyond_by)."""
        return beyond_by(value if self.by_value else (hi if higher else lo), n, limit, higher)

    def decides(
        self, pairs: Sequence[tuple[float, float, int, float]], beyond: bool, limit: float, higher: bool
    ) -> bool:
        """Whether a ratio measured in these pairs (each: interval, pairs of rounds, value) fails, `beyond` saying
        whether its value over the pairs is beyond the limit."""
        if self.fastest:
            return beyond and self.counts_all(pairs)
        return sum(1 for pair in pairs if self.against(*pair, limit, higher)) >= self.to_fail and beyond

    def counts_all(self, pairs: Sequence[tuple[float, float, int, float]]) -> bool:
        """Under `fastest`: every pair the rule measures is there, each of enough pairs of rounds to count (a pair
        stopped short, as an interrupted run's last may be, leaves the ratio undecided)."""
        return len(pairs) >= self.pairs and all(n >= MIN_INTERVAL_SAMPLES_TO_FAIL for _, _, n, _ in pairs)

    def describe(self) -> str:
        if self.fastest:
            return (
                f"the ratio of each side's fastest process over {self.pairs} pairs of worker processes beyond the limit"
            )
        what = "its value" if self.by_value else "its whole 98 % interval"
        return f"{self.to_fail} of up to {self.pairs} pairs of worker processes with {what} beyond the limit"


def pair_values(pairs: Sequence[dict]) -> str:
    """The values of a ratio's pairs of worker processes (a figure's params' `process_pairs`), as failures and
    reports list them: "0.938, 0.909"."""
    return ", ".join(f"{p['value']:.3f}" for p in pairs)


def fastest_said(params: dict) -> str:
    """Where a ratio was decided by each side's fastest process (PairRule's `fastest`; the figure's params'
    `fastest_processes_s`): "the base's fastest process at 33.8 ms a step, the head's at 37.2 ms"; else ""."""
    fastest = params.get("fastest_processes_s")
    if not fastest:
        return ""
    return (
        f"the base's fastest process at {1000 * fastest['reference']:.1f} ms a step, the head's at "
        f"{1000 * fastest['variant']:.1f} ms"
    )


def beyond_by(worse: float, n: int, limit: float, higher: bool) -> bool:
    """Whether an interval's worse end (or a value) from `n` samples lies beyond the limit, as far as it can fail a
    figure: from fewer than MIN_INTERVAL_SAMPLES_TO_FAIL samples it never does, since a few rounds in one slow state
    can put a whole interval beyond the limit."""
    return (worse < limit if higher else worse > limit) and n >= MIN_INTERVAL_SAMPLES_TO_FAIL


def pair_rule(ab: bool, pairs: int, fastest: bool = False) -> PairRule:
    """The ratio to the reference: two pairs whose whole intervals are beyond the limit, of up to `pairs` (3 by
    default), more pairs measured only while the first one's interval is beyond it: the pull-request gate, whose
    device figures catch what the GPU does, does not spend more.

    An A/B run's ratio to the base, whose wall time alone can see a slowdown of the whole stack, by `fastest`
    (--perf-ab-rule fastest, the default): every ratio measured in `pairs` pairs of processes (3 by default) of at
    least MIN_INTERVAL_SAMPLES_TO_FAIL pairs of rounds each, its value the base's fastest process over the head's
    fastest, failing when beyond the limit. A process's offset only ever makes it slower (two H200 processes running
    the same code have differed by up to 50 %), so each side's fastest process is steadier than any one pair: on the
    H200 it has failed every run of a 10 % whole-stack canary so far and no A/A run, at the cost of every pair for
    every variant.
    Else (--perf-ab-rule all-but-one) all but one of up to `pairs` (5 by default) with their values beyond it, more
    pairs measured only while the first one's is: cheaper (1.2 pairs an unchanged ratio on average), but a first pair
    that drew a slow base process ends the test, and it let through 4 of 9 such canary runs. Fewer pairs make it
    laxer (two of three by value: an estimated 0.02 false failures a run); two are two of two. The evidence:
    docs/method.md, "A failing ratio is measured again in fresh processes"."""
    if ab and fastest:
        return PairRule(pairs, pairs, by_value=True, fastest=True)
    if ab:
        return PairRule(pairs, max(2, pairs - 1), by_value=True)
    return PairRule(pairs, 2, by_value=False)


# --perf-process-pairs' defaults: for the ratio to the reference, and to the base under each --perf-ab-rule
PROCESS_PAIRS = {"reference": 3, "fastest": 3, "all-but-one": 5}
AB_RULE = "fastest"  # --perf-ab-rule's default
REFERENCE_PAIRS = pair_rule(ab=False, pairs=PROCESS_PAIRS["reference"])
AB_PAIRS = pair_rule(ab=True, pairs=PROCESS_PAIRS[AB_RULE], fastest=AB_RULE == "fastest")


def parse_tolerances(text: str) -> dict[str, float]:
    """'decode_tok_per_s=20%,*vram*=3%' -> {'decode_tok_per_s': 0.2, '*vram*': 0.03}. A pattern may name the
    variant too, 'hf-bf16-static/decode_ratio_to_ref=15%' (see tolerance_for)."""
    rules: dict[str, float] = {}
    for part in text.split(","):
        if not part.strip():
            continue
        pattern, sep, value = part.partition("=")
        if not sep or not pattern.strip():
            raise ValueError(f"{part.strip()!r}: write METRIC=PERCENT, e.g. decode_tok_per_s=20%")
        value = value.strip()
        try:
            number = float(value[:-1]) / 100 if value.endswith("%") else float(value)
        except ValueError:
            raise ValueError(f"{part.strip()!r}: {value!r} is not a percentage") from None
        if not 0 <= number < 1:
            raise ValueError(f"{part.strip()!r}: a tolerance must be at least 0 % and below 100 %")
        rules[pattern.strip()] = number
    return rules


def tolerance_for(
    metric: str, overrides: dict[str, float], stored: float | None = None, variant: str | None = None
) -> float:
    """The command line (or ini) wins, then the tolerance stored with the baseline, then the variant's own
    (perfgate.variants.Variant.tolerances), then the metric's default (perfgate.metrics.default_tolerance). Among the
    overrides, a pattern naming the variant (VARIANT/METRIC, both fnmatch patterns) wins over one naming the metric
    alone: how far a variant's figure moves between machines depends on the variant (docs/method.md, Variants bound
    unlike the reference: the static cache's ratio to hf-fp16 moves with the CPU's speed, hf-fp16's own does not)."""
    qualified = [(p, v) for p, v in overrides.items() if "/" in p]
    plain = [(p, v) for p, v in overrides.items() if "/" not in p]
    for pattern, value in qualified:
        if variant is not None and fnmatch.fnmatchcase(f"{variant}/{metric}", pattern):
            return value
    for pattern, value in plain:
        if fnmatch.fnmatchcase(metric, pattern):
            return value
    if stored is not None:
        return stored
    own = dict(variants.REGISTRY[variant].tolerances) if variant in variants.REGISTRY else {}
    return own.get(metric, metrics.default_tolerance(metric))


@dataclass(frozen=True)
class Verdict:
    status: str  # pass, fail, no baseline, unavailable
    clear: bool  # decided on evidence (or exactly, for a single value)
    value: float | None
    baseline: float | None
    limit: float | None
    tolerance: float | None
    delta_pct: float | None  # (value - baseline) / baseline, in %
    ci: tuple[float, float] | None  # 95 % (or less with few samples) interval of the median
    n: int
    p_worse: float | None = None  # one-sided p-value that the figure is worse than the limit
    test: str = ""  # which test decided: "mann-whitney", "sign", "paired sign", "exact", BOOTSTRAP, BOOTSTRAP_BOTH
    beyond: bool = False  # the figure's value itself is on the worse side of the limit
    # decided item by item (the paired sign test): how many more items must be worse than their limits before it
    # can fail (0: enough are); None for any other test, or where no count of these items can
    short: int | None = None
    rule: str | None = None  # decided over several pairs of worker processes: by this rule (PairRule.describe)

    @property
    def failed(self) -> bool:
        return self.status == FAIL

    @property
    def suspect(self) -> bool:
        """Passing only for want of evidence: unclear, with the figure already beyond its limit (a regression that
        more rounds may confirm; the session measures these further, up to --perf-suspect-rounds)."""
        return self.status == PASS and not self.clear and self.beyond


def judge(
    samples: tuple[float, ...],
    value: float | None,
    better: str,
    baseline: float | None,
    tolerance: float,
    baseline_samples: tuple[float, ...] = (),
    alpha: float = ALPHA,
    slack: float = 0.0,
    pairs: tuple[tuple[float, ...], tuple[float, ...]] | None = None,
    interval: tuple[float, float] | None = None,
    interval_test: str = BOOTSTRAP,
    pair_intervals: Sequence[tuple[float, float, int, float]] = (),
    pair_rule: PairRule = REFERENCE_PAIRS,
) -> Verdict:
    """With `interval` (the figure's own two-sided 1 - 2 * alpha interval, such as the bootstrap interval of the
    ratio to the reference), the figure fails when the whole interval is beyond the limit, passes clearly when the
    whole interval is within it, and is unclear otherwise. With `pair_intervals` too (a ratio measured in several
    pairs of worker processes: each pair's interval, number of pairs of rounds and value,
    perfgate.measure.pair_intervals), it fails when `pair_rule` counts enough pairs against it and its value is
    beyond the limit; `interval` is then what is shown (perfgate.measure.over_pairs).

    With `pairs` (this run's and the baseline's measurements of the same items in the same order, such as the
    agent's turns), the decision is a sign test over the items, each against its own baseline moved to the
    limit: it fails when significantly many items are worse than their limits and the figure itself is beyond
    its limit."""
    if value is None:
        return Verdict(UNAVAILABLE, True, None, baseline, None, tolerance, None, None, 0)
    samples = tuple(samples) or (value,)
    lo, hi, _ = median_ci(samples)
    if baseline is None:
        return Verdict(NO_BASELINE, True, value, None, None, tolerance, None, (lo, hi), len(samples))
    if better == SAME:  # a count: any change beyond the tolerance (0 by default) fails, whichever way
        delta = 100 * (value - baseline) / baseline if baseline else None
        beyond = abs(value - baseline) > tolerance * abs(baseline) + EXACT_EPSILON * max(1.0, abs(baseline))
        return Verdict(
            FAIL if beyond else PASS,
            True,
            value,
            baseline,
            baseline,
            tolerance,
            delta,
            (lo, hi),
            len(samples),
            0.0 if beyond else None,
            "exact",
            beyond,
        )
    higher = better == "higher"
    scale = 1 - tolerance if higher else 1 + tolerance
    limit = baseline * scale + (-slack if higher else slack)
    delta = 100 * (value - baseline) / baseline if baseline else None
    beyond = value < limit if higher else value > limit
    if len(samples) < 2 and pairs is None:  # a single measurement (a memory peak): compared exactly
        passes = not beyond
        return Verdict(
            PASS if passes else FAIL,
            True,
            value,
            baseline,
            limit,
            tolerance,
            delta,
            (lo, hi),
            1,
            None if passes else 0.0,
            "exact",
            beyond,
        )
    if interval is not None:
        worse_end, better_end = interval[::-1] if higher else interval
        if len(pair_intervals) > 1:
            fails = pair_rule.decides(pair_intervals, beyond, limit, higher)
        else:
            fails = beyond_by(worse_end, len(samples), limit, higher)
        if pair_rule.fastest and len(pair_intervals) > 1:  # decided by its value once every pair counts, else not
            clear = fails or pair_rule.counts_all(pair_intervals)
        else:
            clear = fails or (better_end > limit if higher else better_end < limit)
        return Verdict(
            FAIL if fails else PASS,
            clear,
            value,
            baseline,
            limit,
            tolerance,
            delta,
            interval,
            len(samples),
            None,
            interval_test,
            beyond,
            rule=pair_rule.describe() if len(pair_intervals) > 1 else None,
        )
    # Orient everything so that "worse" means "smaller".
    sign = 1 if higher else -1
    current = [sign * v for v in samples]
    short = None
    if pairs is not None:
        now, then = pairs
        diffs = [sign * v - sign * (b * scale + (-slack if higher else slack)) for v, b in zip(now, then, strict=True)]
        p_worse = sign_test_less(diffs, 0.0) if beyond else 1.0
        p_better = sign_test_less([-d for d in diffs], 0.0)
        test = "paired sign"
        short = sign_test_short(diffs, 0.0, alpha)
    elif len(baseline_samples) >= 2:
        moved = [sign * (v * scale + (-slack if higher else slack)) for v in baseline_samples]
        p_worse, p_better, test = mann_whitney_less(current, moved), mann_whitney_less(moved, current), "mann-whitney"
    else:
        p_worse = sign_test_less(current, sign * limit)
        p_better = sign_test_less([-v for v in current], -sign * limit)
        test = "sign"
    if p_worse < alpha:
        status, clear = FAIL, True
    else:
        status, clear = PASS, p_better < alpha
    return Verdict(
        status, clear, value, baseline, limit, tolerance, delta, (lo, hi), len(samples), p_worse, test, beyond, short
    )
