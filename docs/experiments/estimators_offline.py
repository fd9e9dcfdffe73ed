"""Offline comparison of decode-ratio estimators on recorded H200 rounds (not a GPU run).

Run from anywhere: `.venv/bin/python docs/experiments/estimators_offline.py` (numpy only; perfgate is not
imported, its percentile rule and seeded bootstrap are copied below so that the gate's own numbers come back).
What it reads, what it compares and what came out: docs/experiments/2026-12-01-h200-estimators-offline.md.

Each *pair of worker processes* is one test: its pairs of rounds (the reference's / base's and the variant's /
head's) are resampled whole, 1000 times, seeded as perfgate.stats.bootstrap_interval seeds the gate (seed = number
of pairs of rounds), and a candidate fails the pair when all of its 98 % interval lies below 1 - 5 % (and, as the
gate, only from 8 pairs of rounds on). The same draws serve every candidate.
"""

from __future__ import annotations

import gzip
import json
import math
import random
import sys
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

EXP = Path(__file__).resolve().parent
RUN_DIRS = ("runs", "runs-h200-2", "runs-h200-3")
LIMIT = 0.95  # baseline 1 (hf-fp16's ratio to itself; head = base) less the 5 % tolerance
CONFIDENCE = 0.98
RESAMPLES = 1000
MIN_PAIRS = 8  # the gate fails a ratio only from 8 pairs of rounds on
SHARE = 0.10  # the simulated slowdown: 10 % of the slowed side's fast step
VARIANTS_UNCHANGED = ("hf-bf16", "hf-int8", "hf-nf4", "unsloth-4bit", "unsloth-bf16")  # eager, 5 % tolerance


# ---------------------------------------------------------------------------------------------- data


@dataclass
class Side:
    p10: np.ndarray  # per round: the 10th-percentile decode step (s)
    steps: np.ndarray | None = None  # per round, every decode step (s): rounds x steps; None without a step log

    def slowed(self, delay: float) -> Side:
        return Side(self.p10 + delay, None if self.steps is None else self.steps + delay)


@dataclass
class Pair:
    """One pair of worker processes: `ref` the reference (or an A/B run's base), `own` the variant (or head)."""

    label: str
    ref: Side
    own: Side
    recorded_interval: tuple[float, float] | None = None

    @property
    def n(self) -> int:
        return len(self.own.p10)

    @property
    def has_steps(self) -> bool:
        return self.ref.steps is not None and self.own.steps is not None

    def swapped(self) -> Pair:
        return Pair(self.label + " (swapped)", self.own, self.ref)


@dataclass
class Figure:
    stamp: str  # the run's file stem, e.g. runs/20261129T162016Z
    variant: str
    kind: str  # aa-ref, aa-ab, canary-ref, canary-ab, unchanged
    share: float  # the canary's slowdown (0 for A/A and unchanged variants)
    delay_s: float  # the canary's recorded delay per step
    pairs: list[Pair] = field(default_factory=list)

    @property
    def short(self) -> str:
        d, s = self.stamp.split("/")
        return f"{s[4:6]}-{s[6:8]} {s[9:11]}:{s[11:13]}" + ("" if d == "runs" else f" ({d})")


def pct(x: np.ndarray, q: float) -> float:
    return float(np.percentile(x, q))  # linear interpolation, as perfgate.stats.percentile


def load_step_logs() -> dict[tuple, list[float]]:
    """Every timed round in the step logs, keyed by (variant, its p10, its partner's p10), rounded to 1e-12 s."""
    index: dict[tuple, tuple[list[float], list[float]]] = {}
    for path in sorted((EXP / "steps").glob("*.steps.jsonl.gz")):
        with gzip.open(path, "rt") as f:
            for line in f:
                r = json.loads(line)
                own, ref = r.get("steps_s") or [], r.get("reference_steps_s") or []
                if not own or not ref:
                    continue
                key = (r["variant"], round(pct(np.array(own), 10), 12), round(pct(np.array(ref), 10), 12))
                index[key] = (own, ref)
    return index


def side_steps(index, variant, own_p10, ref_p10):
    rows = [index.get((variant, round(o, 12), round(r, 12))) for o, r in zip(own_p10, ref_p10, strict=True)]
    if any(x is None for x in rows) or len({len(x[0]) for x in rows} | {len(x[1]) for x in rows}) != 1:
        return None, None
    return np.array([x[1] for x in rows]), np.array([x[0] for x in rows])


def load_figures() -> list[Figure]:
    index = load_step_logs()
    out = []
    for d in RUN_DIRS:
        for path in sorted((EXP / d).glob("*_nvidia-h200.json")):
            run = json.loads(path.read_text())
            opt = run.get("options") or {}
            for x in run.get("results", []):
                if x["metric"] not in ("decode_ratio_to_ref", "decode_ratio_to_base") or x.get("workload") != "ctx1024":
                    continue
                p = x["params"] or {}
                variant = x["variant"]
                if x["metric"] == "decode_ratio_to_base":
                    if opt.get("base_env") != {"PERFGATE_SIDE": "base"}:
                        continue  # e.g. transformers 4.57.6 on the base side: not A/A
                    share = opt.get("canary_base_slowdown") or 0.0
                    kind = "canary-ab" if share else "aa-ab"
                elif variant == "hf-fp16-slow":
                    share = opt.get("canary_slowdown") or 0.0
                    kind = "canary-ref" if share else "aa-ref"
                elif variant in VARIANTS_UNCHANGED:
                    share, kind = 0.0, "unchanged"
                else:
                    continue
                fig = Figure(
                    f"{d}/{path.stem.split('_')[0]}", variant, kind, share, p.get("canary_step_delay_s") or 0.0
                )
                for k, q in enumerate(p.get("process_pairs") or [p]):
                    ref_p10, own_p10 = q.get("reference_step_p10_s") or [], q.get("step_p10_s") or []
                    if not own_p10 or len(ref_p10) != len(own_p10):
                        continue
                    ref_steps, own_steps = side_steps(index, variant, own_p10, ref_p10)
                    pair = Pair(
                        f"{fig.short} #{k + 1}",
                        Side(np.array(ref_p10), ref_steps),
                        Side(np.array(own_p10), own_steps),
                        tuple(q["interval"]) if q.get("interval") else None,
                    )
                    fig.pairs.append(pair)
                if fig.pairs:
                    out.append(fig)
    return out


# ---------------------------------------------------------------------------------------------- bootstrap

_DRAWS: dict[tuple[int, ...], tuple[np.ndarray, ...]] = {}


def draws(counts: tuple[int, ...], seed: int) -> tuple[np.ndarray, ...]:
    """perfgate.stats.bootstrap_interval_of_sets's indices: random.Random(seed), per resample one draw per set."""
    key = (*counts, seed)
    if key not in _DRAWS:
        rng = random.Random(seed)
        rows = [[[rng.randrange(c) for _ in range(c)] for c in counts] for _ in range(RESAMPLES)]
        _DRAWS[key] = tuple(np.array([r[i] for r in rows]) for i in range(len(counts)))
    return _DRAWS[key]


def interval(values: np.ndarray) -> tuple[float, float]:
    v = np.sort(values)
    tail = (1 - CONFIDENCE) / 2
    return float(v[int(tail * RESAMPLES)]), float(v[min(RESAMPLES - 1, math.ceil((1 - tail) * RESAMPLES) - 1)])


# ---------------------------------------------------------------------------------------------- candidates
# Each takes (ref, own, idx): idx is a (resamples, n) array of pair-of-rounds indices (or a (1, n) array for the
# point estimate) and returns, per row, the reference's fast step over the variant's (above 1: the variant faster).


def over_rounds(q):
    def est(ref, own, idx):
        return np.percentile(ref.p10[idx], q, axis=1) / np.percentile(own.p10[idx], q, axis=1)

    return est


def paired_median(ref, own, idx):
    return np.exp(np.median(np.log(ref.p10 / own.p10)[idx], axis=1))


def paired_fast(ref, own, idx, within=1.10):
    """Median of the pairs' log ratios over the pairs in which both rounds' p10 lie within 10 % of their side's
    fastest round of the draw (both processes in their fast state); all pairs where none is."""
    r, o = ref.p10[idx], own.p10[idx]
    keep = (r <= within * r.min(axis=1, keepdims=True)) & (o <= within * o.min(axis=1, keepdims=True))
    lr = np.log(r / o)
    lr_kept = np.where(keep, lr, np.nan)
    none = ~keep.any(axis=1)
    lr_kept[none] = lr[none]
    return np.exp(np.nanmedian(lr_kept, axis=1))


def pooled(q):
    """Every decode step of the drawn rounds pooled per side, its q-th percentile; whole rounds resampled."""

    def est(ref, own, idx):
        m = idx.shape[0]
        r = ref.steps[idx].reshape(m, -1)
        o = own.steps[idx].reshape(m, -1)
        return np.percentile(r, q, axis=1) / np.percentile(o, q, axis=1)

    return est


def pooled_tail_mean(q):
    """Mean of the pooled steps at or below the pooled q-th percentile, per side."""

    def one(s):
        cut = np.percentile(s, q, axis=1, keepdims=True)
        return np.where(s <= cut, s, np.nan)

    def est(ref, own, idx):
        m = idx.shape[0]
        r = ref.steps[idx].reshape(m, -1)
        o = own.steps[idx].reshape(m, -1)
        return np.nanmean(one(r), axis=1) / np.nanmean(one(o), axis=1)

    return est


def round_low_then(q_step, q_round):
    """Per round the q_step-th percentile step, then per side the q_round-th percentile of those over the rounds."""

    def est(ref, own, idx):
        r = np.percentile(ref.steps, q_step, axis=1)[idx]
        o = np.percentile(own.steps, q_step, axis=1)[idx]
        return np.percentile(r, q_round, axis=1) / np.percentile(o, q_round, axis=1)

    return est


# name, function, needs step logs
CANDIDATES = [
    ("gate: p10 of round p10s", over_rounds(10), False),
    ("min of round p10s", over_rounds(0), False),
    ("p25 of round p10s", over_rounds(25), False),
    ("median of round p10s", over_rounds(50), False),
    ("paired: median of log(p10 ratio)", paired_median, False),
    ("paired, fast pairs only (10 %)", paired_fast, False),
    ("gate, on the step-logged pairs only", over_rounds(10), True),
    ("pooled steps p10", pooled(10), True),
    ("pooled steps p5", pooled(5), True),
    ("pooled steps p2", pooled(2), True),
    ("pooled steps p25", pooled(25), True),
    ("pooled steps: mean below p20", pooled_tail_mean(20), True),
    ("round p5 step, p10 over rounds", round_low_then(5, 10), True),
    ("round min step, p10 over rounds", round_low_then(0, 10), True),
]


@dataclass
class Verdict:
    value: float
    lo: float
    hi: float
    n: int

    @property
    def below(self) -> bool:  # all of the interval below the limit, whatever the number of rounds
        return self.hi < LIMIT

    @property
    def fail(self) -> bool:  # the gate's rule
        return self.below and self.n >= MIN_PAIRS

    @property
    def clear_pass(self) -> bool:
        return self.lo > LIMIT


def judge(est, pair: Pair) -> Verdict:
    n = pair.n
    (idx,) = draws((n,), n)
    lo, hi = interval(est(pair.ref, pair.own, idx))
    value = float(est(pair.ref, pair.own, np.arange(n)[None, :])[0])
    return Verdict(value, lo, hi, n)


def judge_against(est, now: Pair, then: Pair) -> Verdict:
    """As perfgate.measure.ratio_interval_against: (this run's ratio) / (the baseline run's), both resampled."""
    counts = (now.n, then.n)
    i_now, i_then = draws(counts, counts[0] * 1000 + counts[1])
    lo, hi = interval(est(now.ref, now.own, i_now) / est(then.ref, then.own, i_then))
    value = float(
        est(now.ref, now.own, np.arange(now.n)[None, :])[0] / est(then.ref, then.own, np.arange(then.n)[None, :])[0]
    )
    return Verdict(value, lo, hi, min(now.n, then.n))


# ---------------------------------------------------------------------------------------------- scenarios


def simulated_delay(side: Side) -> float:
    """10 % of the side's fast step, sized as the canary sizes it (the fastest 10th-percentile step of three
    calibration rounds): here the fastest of the first three timed rounds' p10."""
    return SHARE * float(np.min(side.p10[:3]))


def slow_own(pair: Pair) -> Pair:
    return Pair(pair.label, pair.ref, pair.own.slowed(simulated_delay(pair.own)))


def canary_to_share(fig: Figure, pair: Pair, share: float) -> Pair:
    """A canary's recorded rounds with part of its delay taken off every step (as the 2026-11-29 estimate did)."""
    cut = fig.delay_s * (1 - share / fig.share)
    return Pair(pair.label, pair.ref, pair.own.slowed(-cut))


def fmt_count(k: int, n: int) -> str:
    return f"{k}/{n}" if n else "-"


def table(title: str, columns: list[tuple[str, list[Pair]]], note: str = "", gate_rule: bool = True) -> None:
    """Per candidate, per column: how many pairs of processes fail (all of the 98 % interval below 0.95)."""
    print(f"\n## {title}\n")
    if note:
        print(note + "\n")
    head = "| candidate | " + " | ".join(c for c, _ in columns) + " |"
    print(head)
    print("|" + " --- |" * (len(columns) + 1))
    for name, est, needs_steps in CANDIDATES:
        cells = []
        for _, pairs in columns:
            usable = [p for p in pairs if p.has_steps or not needs_steps]
            verdicts = [judge(est, p) for p in usable]
            k = sum(v.fail if gate_rule else v.below for v in verdicts)
            cells.append(fmt_count(k, len(usable)))
        print(f"| {name} | " + " | ".join(cells) + " |")


def detail(title: str, pairs: list[Pair], names: list[str]) -> None:
    print(f"\n## {title}\n")
    print("| pair of processes | n | " + " | ".join(names) + " |")
    print("|" + " --- |" * (len(names) + 2))
    for p in pairs:
        cells = []
        for name, est, needs_steps in CANDIDATES:
            if name not in names:
                continue
            if needs_steps and not p.has_steps:
                cells.append("-")
                continue
            v = judge(est, p)
            mark = " **F**" if v.fail else (" *b*" if v.below else (" p" if v.clear_pass else ""))
            cells.append(f"{v.value:.3f} [{v.lo:.3f}-{v.hi:.3f}]{mark}")
        print(f"| {p.label} | {p.n} | " + " | ".join(cells) + " |")


def spread(title: str, aa: list[Pair], slowed: list[Pair]) -> None:
    """Noise per candidate: on A/A pairs, the spread of the point estimates between pairs of processes and the
    median interval width; on the same pairs slowed by 10 %, the median point estimate and upper bound."""
    print(f"\n## {title}\n")
    print(
        "| candidate | A/A pairs | A/A: sd of log value | A/A: max abs(value-1) | A/A: median width (hi/lo-1) "
        "| 10 % slowed: median value | 10 % slowed: median upper bound |"
    )
    print("| --- | --- | --- | --- | --- | --- | --- |")
    for name, est, needs_steps in CANDIDATES:
        a = [judge(est, p) for p in aa if p.has_steps or not needs_steps]
        s = [judge(est, p) for p in slowed if p.has_steps or not needs_steps]
        logs = np.log([v.value for v in a])
        print(
            f"| {name} | {len(a)} | {np.std(logs, ddof=1):.3f} | {np.max(np.abs(np.exp(logs) - 1)):.3f} "
            f"| {np.median([v.hi / v.lo - 1 for v in a]):.3f} | {np.median([v.value for v in s]):.3f} "
            f"| {np.median([v.hi for v in s]):.3f} |"
        )


def summary(columns) -> None:
    """The headline table: per candidate, false failures and catches (gate rule), and how its catches differ from
    the gate's on the same pairs (+ caught by it alone, - by the gate alone; over the columns marked "catch", which
    do not repeat a pair of processes)."""
    print("\n## Summary (pairs of processes; gate rule: all of the 98 % interval below 0.95, >= 8 pairs of rounds)\n")
    head = " | ".join(c for c, _, _ in columns)
    print(f"| candidate | {head} | catches vs the gate's (+/-) |")
    print("|" + " --- |" * (len(columns) + 2))
    gate_est = CANDIDATES[0][1]
    for name, est, needs_steps in CANDIDATES:
        cells, plus, minus = [], 0, 0
        for _, pairs, role in columns:
            usable = [p for p in pairs if p.has_steps or not needs_steps]
            vs = [judge(est, p) for p in usable]
            cells.append(fmt_count(sum(v.fail for v in vs), len(usable)))
            if role == "catch":
                for p, v in zip(usable, vs, strict=True):
                    g = judge(gate_est, p).fail
                    plus += v.fail and not g
                    minus += g and not v.fail
        print(f"| {name} | " + " | ".join(cells) + f" | +{plus} -{minus} |")


def ceiling(sets) -> None:
    """What no estimator of one pair of processes can undo: the A/A point values themselves. A pair whose A/A value
    is below 0.95 fails however precise its interval; one above 0.95 x 1.1 = 1.045 stays above the limit under a
    10 % delay (which divides the ratio by 1.1), however precise."""
    print("\n## Between-process offsets: A/A point values (what a perfectly precise interval would still see)\n")
    print(
        "| candidate | set | pairs | sd of log value | below 0.95 (fails even if exact) "
        "| above 1.045 (a 10 % delay stays above 0.95 even if exact) |"
    )
    print("| --- | --- | --- | --- | --- | --- |")
    for name, est, needs_steps in CANDIDATES:
        if name not in ("gate: p10 of round p10s", "min of round p10s", "pooled steps p5", "median of round p10s"):
            continue
        for label, pairs in sets:
            vals = np.array([judge(est, p).value for p in pairs if p.has_steps or not needs_steps])
            print(
                f"| {name} | {label} | {len(vals)} | {np.std(np.log(vals), ddof=1):.3f} "
                f"| {fmt_count(int(np.sum(vals < LIMIT)), len(vals))} "
                f"| {fmt_count(int(np.sum(vals > LIMIT * (1 + SHARE))), len(vals))} |"
            )


def projection(aa_pairs: list[Pair], slow_pairs: list[Pair]) -> None:
    """Per run under the gate's rule over pairs of processes (fail when two pairs failed, up to three; a pair that
    passes clearly ends it), from per-pair rates on the derived sets, the pairs taken as independent:
    P(fail) = f * (f + u * f), f the per-pair failure rate, u the unclear rate."""
    print("\n## Per run, projected from the derived sets' per-pair rates (pairs of processes taken as independent)\n")
    print(
        "| candidate | per pair: A/A fail / unclear | per run: A/A fail | per pair: 10 % fail / unclear "
        "| per run: 10 % caught |"
    )
    print("| --- | --- | --- | --- | --- |")
    for name, est, needs_steps in CANDIDATES:
        out = []
        for pairs in (aa_pairs, slow_pairs):
            vs = [judge(est, p) for p in pairs if p.n >= MIN_PAIRS and (p.has_steps or not needs_steps)]
            f = sum(v.fail for v in vs) / len(vs)
            u = sum(not v.fail and not v.clear_pass for v in vs) / len(vs)
            out += [f"{f:.2f} / {u:.2f}", f"{f * (f + u * f):.3f}"]
        print(f"| {name} | " + " | ".join(out) + " |")


def main() -> None:
    figs = load_figures()
    by_kind = {k: [f for f in figs if f.kind == k] for k in ("aa-ref", "aa-ab", "canary-ref", "canary-ab", "unchanged")}

    print("# Decode-ratio estimators on recorded H200 rounds (offline)\n")
    for k, fs in by_kind.items():
        pairs = [p for f in fs for p in f.pairs]
        print(
            f"- {k}: {len(fs)} figures, {len(pairs)} pairs of processes "
            f"({sum(p.n >= MIN_PAIRS for p in pairs)} with >= {MIN_PAIRS} pairs of rounds, "
            f"{sum(p.has_steps for p in pairs)} with step logs): "
            + ", ".join(
                f"{f.short} {f.variant}" + (f" {f.share:.0%}" if f.share else "") + f" {[p.n for p in f.pairs]}"
                for f in fs
            )
        )

    # 0. the gate's own numbers back
    gate = CANDIDATES[0][1]
    worst = 0.0
    count = 0
    for f in figs:
        for p in f.pairs:
            if p.recorded_interval:
                v = judge(gate, p)
                worst = max(worst, abs(v.lo - p.recorded_interval[0]), abs(v.hi - p.recorded_interval[1]))
                count += 1
    print(
        f"\nCheck: the gate's recorded interval recomputed for {count} pairs of processes; "
        f"largest difference {worst:.2e}."
    )

    aa_ref = [p for f in by_kind["aa-ref"] for p in f.pairs]
    aa_ab = [p for f in by_kind["aa-ab"] for p in f.pairs]
    aa = aa_ref + aa_ab
    aa_both = aa + [p.swapped() for p in aa]
    big = [p for p in aa if p.n >= MIN_PAIRS]
    big_both = big + [p.swapped() for p in big]

    c15 = [(f, p) for f in by_kind["canary-ref"] if abs(f.share - 0.15) < 1e-9 for p in f.pairs]
    c10_ref = [p for f in by_kind["canary-ref"] if abs(f.share - 0.10) < 1e-9 for p in f.pairs]
    c10_ab = [p for f in by_kind["canary-ab"] for p in f.pairs]
    c15_to10 = [canary_to_share(f, p, SHARE) for f, p in c15]

    # derived, matched sets: every real canary pair of processes with its recorded delay taken off (an A/A pair,
    # if the processes ran the same without the delay) and with it cut to 10 % (the 15 % ones; the 10 % as run)
    canary_all = [(f, p) for f in by_kind["canary-ref"] + by_kind["canary-ab"] for p in f.pairs]
    derived_aa = [canary_to_share(f, p, 0.0) for f, p in canary_all]
    derived_10 = [canary_to_share(f, p, SHARE) for f, p in canary_all]
    summary(
        [
            ("A/A real: false failures", aa, "aa"),
            ("A/A derived (canary delay removed): false failures", derived_aa, "aa"),
            ("real 10 %: caught", c10_ref + c10_ab, "shown"),
            ("canaries at 10 % (15 % ones cut): caught", derived_10, "catch"),
            ("A/A + simulated 10 %, either side: caught", [slow_own(p) for p in big_both], "catch"),
        ]
    )
    ceiling([("A/A real", aa), ("A/A derived", derived_aa)])
    projection(derived_aa, derived_10)

    # 1. A/A false failures and simulated 10 % on the same pairs
    table(
        "A/A pairs of processes: false failures (gate rule: all of the interval below 0.95, >= 8 pairs of rounds)",
        [
            ("A/A, 0 % canary", aa_ref),
            ("A/A, 0 % canary, pinned workers (11-29 11:49 on)", [p for p in aa_ref if p.label >= "11-29 11:49"]),
            ("A/A, A/B runs", aa_ab),
            ("A/A, either side as variant", aa_both),
        ],
    )
    table(
        "A/A pairs of processes, without the 8-round minimum: interval wholly below 0.95",
        [
            ("A/A, 0 % canary", aa_ref),
            ("A/A, A/B runs", aa_ab),
            ("A/A, either side as variant", aa_both),
        ],
        gate_rule=False,
    )
    table(
        "Slowdowns: pairs of processes failed (gate rule)",
        [
            ("real 15 % canary", [p for _, p in c15]),
            ("real 10 % canary (ref)", c10_ref),
            ("real 10 % whole-stack (A/B)", c10_ab),
            ("15 % canary cut to 10 %", c15_to10),
            ("A/A + simulated 10 % (n>=8)", [slow_own(p) for p in big]),
            ("same, either side slowed", [slow_own(p) for p in big_both]),
        ],
    )
    table(
        "Slowdowns without the 8-round minimum: interval wholly below 0.95",
        [
            ("real 10 % canary (ref)", c10_ref),
            ("real 10 % whole-stack (A/B)", c10_ab),
            ("A/A + simulated 10 % (all)", [slow_own(p) for p in aa]),
            ("same, either side slowed", [slow_own(p) for p in aa_both]),
        ],
        gate_rule=False,
    )
    spread(
        "Noise per candidate (A/A pairs, both orientations; and the same slowed by 10 %)",
        aa_both,
        [slow_own(p) for p in aa_both],
    )

    # 2. unchanged variants against their previous run: the decision with the baseline's rounds
    unchanged = []
    for v in VARIANTS_UNCHANGED:
        runs = [f for f in by_kind["unchanged"] if f.variant == v and len(f.pairs) == 1 and f.pairs[0].n >= MIN_PAIRS]
        for then, now in zip(runs, runs[1:], strict=False):
            unchanged.append((f"{v} {now.short} vs {then.short}", now.pairs[0], then.pairs[0]))
    print(
        "\n## Unchanged variants, each run against the variant's previous run as its baseline "
        "(both runs resampled; fail: all of the interval below 0.95)\n"
    )
    print(f"{len(unchanged)} comparisons of consecutive runs with >= {MIN_PAIRS} pairs of rounds each.\n")
    print(
        "| candidate | comparisons with step logs | false failures (head slower) | either direction beyond 5 % "
        "| simulated 10 % on the newer run: failed |"
    )
    print("| --- | --- | --- | --- | --- |")
    for name, est, needs_steps in CANDIDATES:
        use = [(lab, a, b) for lab, a, b in unchanged if not needs_steps or (a.has_steps and b.has_steps)]
        ff = sum(judge_against(est, a, b).fail for _, a, b in use)
        either = 0
        for _, a, b in use:
            v = judge_against(est, a, b)
            either += v.hi < LIMIT or v.lo > 1 / LIMIT
        caught = sum(judge_against(est, slow_own(a), b).fail for _, a, b in use)
        print(
            f"| {name} | {len(use)} | {fmt_count(ff, len(use))} | {fmt_count(either, len(use))} "
            f"| {fmt_count(caught, len(use))} |"
        )

    # 3. details for the pairs that matter
    names = [
        c[0]
        for c in CANDIDATES
        if c[0]
        in (
            "gate: p10 of round p10s",
            "min of round p10s",
            "paired: median of log(p10 ratio)",
            "pooled steps p10",
            "pooled steps p5",
        )
    ]
    detail(
        "Each A/A pair of processes (value [98 % interval]; **F** fails, *b* below without 8 rounds, p clear pass)",
        aa,
        names,
    )
    detail("Each real 10 % pair of processes", c10_ref + c10_ab, names)
    detail(
        "Each A/A pair of processes with >= 8 pairs of rounds, 10 % simulated on the variant's side",
        [slow_own(p) for p in big],
        names,
    )


if __name__ == "__main__":
    np.seterr(all="ignore")
    import warnings

    warnings.simplefilter("ignore", RuntimeWarning)
    main()
    sys.stdout.flush()
