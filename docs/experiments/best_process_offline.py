"""Each side's fastest process instead of one pair's ratio: the A/B decode ratio over several pairs of processes, from
the real H200 pairs (offline; not a GPU run).

Run from anywhere: `.venv/bin/python docs/experiments/best_process_offline.py` (numpy only, a few seconds).

The gate's A/B ratio is decided pair of processes by pair (perfgate.gate.pair_rule): each pair's value is the base's
fast state over the head's (per round the 10th-percentile decode step, per process the 10th percentile of those over
its rounds), and two processes running the same code have differed by up to 24 %. The fast-state estimator takes the
fastest tenth of a process's rounds because a process's slow spells only ever make it slower. If a process's offset
is one-sided too (a process is at its side's fast state or slower for its whole life, never faster), the fastest of a
side's processes estimates the side's fast state, and the ratio of the two sides' fastest processes is steadier than any
one pair's. This script reads every real test with two or more pairs of processes (pair_rules_real's readers: the
note's pools, the A/B runs of the fifth to sixteenth starts) and compares, per test, the pairs' own values with:

- best of two: the fastest base process of the first two pairs over the fastest head process of those pairs;
- best of three: the same over the first three pairs, for the tests of three or more;
- best of all: the same over every pair the test measured.

Both sides have one process in each pair, measured in the same minutes, so a side gains nothing from the other's time.
Only tests with a second pair exist here. Until the thirteenth start the gate measured a second pair only where the
first was beyond the limit (or unclear, under older rules): those A/A tests are the ones whose first pair pointed to a
regression. On the thirteenth start three canary and three A/A runs of hf-bf16's decode test were measured in three or
more pairs whatever the first said (`--perf-min-process-pairs 3`): tests not chosen by their first pair. Tests of one
pair cannot say what a second would have given; the two canary runs that passed on their only pair (0.985 and 0.957)
are among them. On the fourteenth start five canary and three A/A runs were measured under `--perf-ab-rule fastest`
(three pairs of 8 pairs of rounds each, whatever the first said): their "best of three" is the value the gate decided
by, as it is for the fifteenth and sixteenth starts' A/A runs (every variant's decode test under that rule; on the
sixteenth, hf-int8's stopped by the command's deadline after two pairs, and not read).

It also replays, on the tests of three or more pairs and in the model below, an idea that is not the gate's rule: a
third pair only where the best of the first two is below a threshold (STOPS), to save a pair of processes where an
unchanged stack's two pairs already agree.
"""

from __future__ import annotations

import sys
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
import pair_rules_real as P  # noqa: E402  (the real pairs, read and checked as that script reads them)

LIMIT = P.LIMIT  # 0.95: a head 5 % slower than the base fails
# An idea, not the gate's rule: a third pair of processes only where the best of the first two is below this (an
# unchanged stack's best of two has mostly come out at 0.99 or more), so that it costs two pairs, not three.
STOPS = (0.97, 0.98, 0.99, 1.0)


def fast_ms(p10: np.ndarray) -> float:
    """A process's fast state (ms): the 10th percentile of its rounds' 10th-percentile steps, as the gate takes it."""
    return float(np.percentile(p10, 10)) * 1000


def best(pairs) -> float:
    return min(fast_ms(p.ref.p10) for p in pairs) / min(fast_ms(p.own.p10) for p in pairs)


def main() -> None:
    c10_note, aa_note = P.note_runs()
    in_note = {r.stem for r in c10_note + aa_note}
    new, _, _ = P.ab_runs(P.NEW_DIRS, P.NEW_VARIANTS, in_note, "new")
    later, _, _ = P.ab_runs(P.LATER_DIRS, None, in_note, "later")
    runs = c10_note + aa_note + new + later
    print("# Each side's fastest process (offline)\n")
    counts = {}
    for r in runs:
        counts[(r.kind, len(r.pairs))] = counts.get((r.kind, len(r.pairs)), 0) + 1
    print(
        "Tests by kind and pairs of processes: " + ", ".join(f"{k} x{n}: {c}" for (k, n), c in sorted(counts.items()))
    )
    print()
    print(
        "| kind | run | variant | pairs' values | base processes, ms | head processes, ms | best of two "
        "| best of three | best of all |"
    )
    print("| --- | --- | --- | --- | --- | --- | --- | --- | --- |")
    summary: dict[str, dict[str, list[float]]] = {}
    spread: dict[str, list[float]] = {}
    for r in runs:
        if len(r.pairs) < 2:
            continue
        values = [fast_ms(p.ref.p10) / fast_ms(p.own.p10) for p in r.pairs]
        base = sorted(fast_ms(p.ref.p10) for p in r.pairs)
        head = sorted(fast_ms(p.own.p10) for p in r.pairs)
        two, every = best(r.pairs[:2]), best(r.pairs)
        three = best(r.pairs[:3]) if len(r.pairs) >= 3 else None
        s = summary.setdefault(r.kind, {"single": [], "two": [], "three": [], "all": []})
        s["single"] += values[:2]
        s["two"].append(two)
        if three is not None:
            s["three"].append(three)
        s["all"].append(every)
        if r.kind == "A/A":  # every process of a test runs the same code: how far each is above the test's fastest
            fastest = min(base + head)
            spread.setdefault("A/A", []).extend(100 * (x / fastest - 1) for x in base + head)
        print(
            f"| {r.kind} | {r.stamp} | {r.variant} | {', '.join(f'{v:.3f}' for v in values)} | "
            f"{', '.join(f'{x:.1f}' for x in base)} | {', '.join(f'{x:.1f}' for x in head)} | {two:.3f} | "
            f"{'-' if three is None else f'{three:.3f}'} | {every:.3f} |"
        )
    print("\n| kind | estimate | tests (pairs) | geometric mean | sd of log | beyond 0.95 |")
    print("| --- | --- | --- | --- | --- | --- |")
    for kind, s in sorted(summary.items()):
        for name, label in (
            ("single", "one pair (first two pairs)"),
            ("two", "best of two"),
            ("three", "best of three (tests of three or more)"),
            ("all", "best of all"),
        ):
            x = np.log(np.array(s[name]))
            beyond = int(np.sum(np.exp(x) < LIMIT))
            print(
                f"| {kind} | {label} | {len(x)} | {np.exp(x.mean()):.3f} | {x.std(ddof=1):.3f} | {beyond} of {len(x)} |"
            )
    early_stop(runs)
    first = np.array([fast_ms(r.pairs[0].ref.p10) / fast_ms(r.pairs[0].own.p10) for r in runs if r.kind == "A/A"])
    above = np.sort(np.array(spread["A/A"]))
    print(
        f"\nA/A processes above their test's fastest (%), {len(above)} processes: "
        + ", ".join(f"{v:.1f}" for v in above)
    )
    model(first)
    model_range(first)


def early_stop(runs) -> None:
    """The real tests of three or more pairs replayed under "a third pair only where the best of two is below STOP,
    then the best of three": how many verdicts differ from always three's, and the pairs it would have measured."""
    tests = [r for r in runs if len(r.pairs) >= 3]
    print(
        f"\nA third pair only where the best of two is below a threshold, on the {len(tests)} real tests of three "
        "or more pairs (the verdict: beyond 0.95 or not):\n"
    )
    print(
        "| threshold | A/A: fail (always three: fail) | A/A: pairs a test | 10 %: caught (always three: caught) | "
        "10 %: pairs a test |"
    )
    print("| --- | --- | --- | --- | --- |")
    for stop in STOPS:
        row = []
        for kind in ("A/A", "10 %"):
            ks = [r for r in tests if r.kind == kind]
            stops = [best(r.pairs[:2]) >= stop for r in ks]
            value = [best(r.pairs[:2]) if st else best(r.pairs[:3]) for r, st in zip(ks, stops, strict=True)]
            fail = sum(v < LIMIT for v in value)
            always = sum(best(r.pairs[:3]) < LIMIT for r in ks)
            row += [f"{fail} of {len(ks)} ({always})", f"{np.mean([2 if st else 3 for st in stops]):.2f}"]
        print(f"| {stop:.2f} | " + " | ".join(row) + " |")


# -- a model, to see past the few tests of several pairs: a process is at its side's fast state times (1 + d), d >= 0,
# d from a mixture (with probability P_NORMAL a half-normal of scale S0, else an exponential of mean M), fitted to the
# real A/A first pairs' values by their quantiles. An estimate resting on that one-sided form, not a measurement.
SEED = 20261202
GRID_P = np.linspace(0.2, 1.0, 17)  # up to 1.0, a half-normal alone: a fit at the end of the grid would be cut short
GRID_S0 = (0.005, 0.01, 0.015, 0.02, 0.03, 0.04, 0.05)
GRID_M = (0.03, 0.05, 0.07, 0.1, 0.14, 0.2)
QUANTILES = (0.05, 0.1, 0.25, 0.5, 0.75, 0.9, 0.95)
RESAMPLES = 100  # fits on resampled first pairs, for how far the model's answer moves with its data (model_range)


def processes(rng, p: float, s0: float, m: float, shape) -> np.ndarray:
    normal = rng.random(shape) < p
    return 1 + np.where(normal, np.abs(rng.normal(0, s0, shape)), rng.exponential(m, shape))


def fit(first: np.ndarray, rng, draws: int = 40_000) -> tuple[float, float, float]:
    """(P_NORMAL, S0, M) whose A/A pair values' quantiles come nearest to the first pairs' (least squares, on the
    grid)."""
    target = np.quantile(np.log(first), QUANTILES)
    fits = []
    for p in GRID_P:
        for s0 in GRID_S0:
            for m in GRID_M:
                r = processes(rng, p, s0, m, draws) / processes(rng, p, s0, m, draws)
                fits.append((float(np.sum((np.quantile(np.log(r), QUANTILES) - target) ** 2)), p, s0, m))
    _, p, s0, m = min(fits)
    return p, s0, m


def best_of_three(rng, p: float, s0: float, m: float, n: int) -> tuple[float, float]:
    """The default rule by the model: (an unchanged variant fails, a 10 % slower head is caught)."""
    out = []
    for slow in (1.0, 1.1):
        base, head = processes(rng, p, s0, m, (n, 3)), processes(rng, p, s0, m, (n, 3)) * slow
        out.append(float((base.min(axis=1) / head.min(axis=1) < LIMIT).mean()))
    return out[0], out[1]


def model_range(first: np.ndarray, resamples: int = RESAMPLES) -> None:
    """How far the model's answer for the default rule moves with the first pairs it is fitted to: the fit again on
    resamples of them (with replacement), each fit's rates from fewer draws."""
    rng = np.random.default_rng(SEED + 1)
    rates = np.array(
        [best_of_three(rng, *fit(rng.choice(first, len(first)), rng, 10_000), 100_000) for _ in range(resamples)]
    )
    lo, mid, hi = np.quantile(rates, (0.05, 0.5, 0.95), axis=0)
    print(
        f"\nThe model fitted again to {resamples} resamples of the {len(first)} first pairs, always three pairs, best "
        f"of three (5 %, median, 95 % of the fits): an unchanged variant fails {lo[0]:.4f}, {mid[0]:.4f}, "
        f"{hi[0]:.4f}; a 10 % slower head is caught {lo[1]:.3f}, {mid[1]:.3f}, {hi[1]:.3f}"
    )


def model(first: np.ndarray) -> None:
    rng = np.random.default_rng(SEED)
    p, s0, m = fit(first, rng)
    print(f"\nModel fitted to {len(first)} real A/A first pairs: P_NORMAL {p:.2f}, S0 {s0}, M {m}")
    n = 400_000
    print("\n| rule | A/A: fails an unchanged variant | 10 % slower head: caught | pairs of processes, A/A |")
    print("| --- | --- | --- | --- |")
    for label, k, gated_on_first in (
        ("one pair", 1, False),
        ("always two pairs, best of two", 2, False),
        ("always three pairs, best of three", 3, False),
        ("a second pair where the first is beyond the limit, then best of two", 2, True),
        ("a second and third where the first is beyond the limit, then best of three", 3, True),
    ):
        out = []
        for slow in (1.0, 1.1):
            base, head = processes(rng, p, s0, m, (n, k)), processes(rng, p, s0, m, (n, k)) * slow
            first_beyond = base[:, 0] / head[:, 0] < LIMIT
            fails = base.min(axis=1) / head.min(axis=1) < LIMIT
            if gated_on_first:
                fails &= first_beyond
            pairs = 1 + (k - 1) * first_beyond.mean() if gated_on_first else k
            out.append((fails.mean(), pairs))
        print(f"| {label} | {out[0][0]:.4f} | {out[1][0]:.3f} | {out[0][1]:.2f} |")
    for stop in STOPS:  # a third pair only where the best of two is below `stop`
        out = []
        for slow in (1.0, 1.1):
            base, head = processes(rng, p, s0, m, (n, 3)), processes(rng, p, s0, m, (n, 3)) * slow
            two = base[:, :2].min(axis=1) / head[:, :2].min(axis=1)
            value = np.where(two >= stop, two, base.min(axis=1) / head.min(axis=1))
            out.append(((value < LIMIT).mean(), 2 + (two < stop).mean()))
        print(
            f"| two pairs, a third where the best of two is below {stop:.2f}, then best of three | {out[0][0]:.4f} | "
            f"{out[1][0]:.3f} | {out[0][1]:.2f} |"
        )
    # the gate's A/B rule by value (its intervals left out): a second pair only where the first is beyond the limit;
    # a pass once two pairs are within it, a failure once four are beyond it, of up to five
    out = []
    for slow in (1.0, 1.1):
        values = processes(rng, p, s0, m, (n, 5)) / (processes(rng, p, s0, m, (n, 5)) * slow) < LIMIT
        beyond, within = np.cumsum(values, axis=1), np.cumsum(~values, axis=1)
        ended = (within >= 2) | (beyond >= 4) | (~values[:, :1])
        stop = np.argmax(ended, axis=1)
        fails = values[:, 0] & (beyond[np.arange(n), stop] >= 4)
        out.append((fails.mean(), (stop + 1).mean()))
    print(
        f"| the gate's A/B rule (all but one of up to five beyond, by value) | {out[0][0]:.4f} | {out[1][0]:.3f} | "
        f"{out[0][1]:.2f} |"
    )


if __name__ == "__main__":
    main()
