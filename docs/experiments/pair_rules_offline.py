"""Offline comparison of rules over pairs of worker processes, on recorded H200 rounds (not a GPU run).

Run from anywhere: `.venv/bin/python docs/experiments/pair_rules_offline.py` (numpy only, about 40 s).
What it reads, what it compares and what came out: docs/experiments/2026-12-01-h200-pair-rules-offline.md.

The data and the derivation are estimators_offline.py's, imported from it: every real canary pair of processes,
with its recorded delay taken off every step (derived A/A) or cut to 10 % (derived 10 %), judged by the gate's
estimator (fast-state p10/p10) and its 98 % interval with the gate's seeded bootstrap. Each derived pair of
processes is then one draw of "a pair of processes" for that condition, and a rule over pairs (how many pairs to
measure, when to fail) is evaluated with the pairs as independent draws, uniformly with replacement, from those
derived pairs. The probabilities are exact for that resampling (every sequence of draws is enumerated, those that
have already stopped pruned): what a bootstrap of runs over the derived pairs gives with infinitely many draws.
A second, outer bootstrap (the derived pairs themselves resampled, each a Monte Carlo of runs) gives a range
that shows how much the few derived pairs leave open.
"""

from __future__ import annotations

import math
import sys
from dataclasses import dataclass
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
import estimators_offline as E  # noqa: E402  (the data, the derivation and the gate's estimator)

LIMIT = E.LIMIT  # 0.95
LOG_LIMIT = math.log(LIMIT)
MIN_PAIRS = E.MIN_PAIRS  # 8 pairs of rounds
Z = 2.33  # one-sided 99 %, as each end of the gate's 98 % interval
SEED = 20261201
OUTER = 200  # outer bootstrap: resamples of the derived pairs
OUTER_RUNS = 20_000  # Monte Carlo runs per outer resample
CHECK_RUNS = 1_000_000  # Monte Carlo runs for the check of the exact enumeration


# ---------------------------------------------------------------------------------------------- per pair


@dataclass
class Pool:
    """Per pair of processes, what the rules need."""

    label: str
    names: list[str]
    value: np.ndarray  # the gate's point value (fast-state p10/p10)
    lo: np.ndarray
    hi: np.ndarray
    n: np.ndarray  # pairs of rounds

    @property
    def lv(self) -> np.ndarray:
        return np.log(self.value)

    @property
    def fail(self) -> np.ndarray:  # the gate's rule for one pair: all of the interval below, >= 8 pairs of rounds
        return (self.hi < LIMIT) & (self.n >= MIN_PAIRS)

    @property
    def below(self) -> np.ndarray:  # point value below the limit, >= 8 pairs of rounds
        return (self.value < LIMIT) & (self.n >= MIN_PAIRS)

    @property
    def clear(self) -> np.ndarray:  # passes clearly: all of the interval above
        return self.lo > LIMIT

    def __len__(self) -> int:
        return len(self.value)

    def take(self, idx: np.ndarray) -> Pool:
        return Pool(self.label, [self.names[i] for i in idx], self.value[idx], self.lo[idx], self.hi[idx], self.n[idx])


def pool_of(label: str, pairs: list[E.Pair]) -> Pool:
    gate = E.CANDIDATES[0][1]
    vs = [E.judge(gate, p) for p in pairs]
    return Pool(
        label,
        [p.label for p in pairs],
        np.array([v.value for v in vs]),
        np.array([v.lo for v in vs]),
        np.array([v.hi for v in vs]),
        np.array([v.n for v in vs]),
    )


# ---------------------------------------------------------------------------------------------- rules
# A rule decides after each pair of processes from the pairs so far: FAIL, PASS, or GO_ON (measure another pair).
# It sees, per sequence: j (pairs so far, the same for the whole batch), s1 and s2 (sum of the pairs' log values
# and of their squares), nf (pairs failed by the gate's one-pair rule), nb (pairs below by point value) and clear
# (whether the newest pair passed clearly; an earlier clear pass would already have ended the test). At the last
# pair allowed, GO_ON becomes PASS. Where a rule's failing condition and a clear pass meet in the same pair, the
# failure wins, as in perfgate.gate.judge (it fails on the failed pairs whatever the others did).

GO_ON, FAIL, PASS = 0, 1, 2


@dataclass
class Rule:
    name: str
    nmax: int

    def decide(self, j, s1, s2, nf, nb, clear) -> np.ndarray:
        raise NotImplementedError


class Current(Rule):
    """R0, the gate's rule (perfgate.session.measure_decode, _measure_again; perfgate.gate.judge): a pair fails when
    its interval is wholly below the limit with >= 8 pairs of rounds; another pair is measured only while some pair
    failed, none passed clearly and the pairs together have not failed; they fail when two pairs failed and the
    geometric mean of all pairs' values is below the limit."""

    def decide(self, j, s1, s2, nf, nb, clear):
        out = np.full(s1.shape, GO_ON, np.int8)
        if j == 1:
            out[nf == 0] = PASS
            return out
        failed = (nf >= 2) & (s1 / j < LOG_LIMIT)
        out[clear] = PASS
        out[failed] = FAIL
        return out


class KofN(Rule):
    """R1: a pair is below when its point value is below the limit (>= 8 pairs of rounds); fail as soon as k are
    below and the geometric mean of all pairs so far is below the limit; pass as soon as k below is out of reach
    within n pairs, or when a pair passes clearly."""

    def __init__(self, k: int, n: int):
        super().__init__(f"R1 {k} of {n} by point value", n)
        self.k = k

    def decide(self, j, s1, s2, nf, nb, clear):
        out = np.full(s1.shape, GO_ON, np.int8)
        out[nb + (self.nmax - j) < self.k] = PASS
        out[clear] = PASS
        out[(nb >= self.k) & (s1 / j < LOG_LIMIT)] = FAIL
        return out


class Confirm(KofN):
    """R3, confirm a suspect first pair: the first pair decides alone unless it is below (point value below the
    limit, >= 8 pairs of rounds; a first pair with fewer is not below): if it is not below, the test passes at once,
    clear or not. If it is below, more pairs are measured, and from there on it is R1 k of n: fail as soon as k pairs
    in all (the first included) are below and the geometric mean of all pairs so far is below the limit; pass as
    soon as k below is out of reach within n pairs, or when a pair passes clearly."""

    def __init__(self, k: int, n: int):
        super().__init__(k, n)
        self.name = f"R3 confirm, {k} of {n} by point value"

    def decide(self, j, s1, s2, nf, nb, clear):
        out = super().decide(j, s1, s2, nf, nb, clear)
        if j == 1:
            out[nb == 0] = PASS
        return out


class Pooled(Rule):
    """R2: from the second pair on, m = mean of the pairs' log values, s = sqrt(max(sample variance, floor^2) / j);
    fail when m + 2.33 s < log 0.95, pass when m - 2.33 s > log 0.95 or a pair passes clearly; at most n pairs."""

    def __init__(self, floor: float, n: int):
        super().__init__(f"R2 pooled, floor {floor:.3f}, up to {n}", n)
        self.floor = floor

    def decide(self, j, s1, s2, nf, nb, clear):
        out = np.full(s1.shape, GO_ON, np.int8)
        out[clear] = PASS
        if j == 1:
            return out
        m = s1 / j
        var = (s2 - j * m * m) / (j - 1)
        s = np.sqrt(np.maximum(var, self.floor**2) / j)
        out[m - Z * s > LOG_LIMIT] = PASS
        out[m + Z * s < LOG_LIMIT] = FAIL
        return out


RULES: list[Rule] = [
    Current("R0 current: two failed of up to 3", 3),
    KofN(2, 3),
    KofN(3, 4),
    KofN(3, 5),
    KofN(4, 5),
    Confirm(3, 4),
    Confirm(4, 5),
    Confirm(3, 5),
    Pooled(0.034, 3),
    Pooled(0.034, 4),
    Pooled(0.034, 5),
    Pooled(0.05, 3),
    Pooled(0.05, 4),
    Pooled(0.05, 5),
]


# ---------------------------------------------------------------------------------------------- evaluation


@dataclass
class Outcome:
    fail: float  # probability that the run fails
    pairs: float  # expected pairs of processes measured


def exact(rule: Rule, pool: Pool, chunk: int = 100_000) -> Outcome:
    """Every sequence of pairs drawn uniformly with replacement from the pool, enumerated up to the rule's stop:
    the prefixes still undecided after j pairs are extended by every pair of the pool."""
    P = len(pool)
    lv, lv2 = pool.lv, pool.lv**2
    f, b, c = pool.fail.astype(np.int16), pool.below.astype(np.int16), pool.clear
    # undecided prefixes: sums and counts
    s1, s2 = np.zeros(1), np.zeros(1)
    nf, nb = np.zeros(1, np.int16), np.zeros(1, np.int16)
    p_fail, e_pairs = 0.0, 0.0
    for j in range(1, rule.nmax + 1):
        keep = []
        weight = float(P) ** -j
        for a in range(0, len(s1), chunk):
            t1 = (s1[a : a + chunk, None] + lv[None, :]).ravel()
            t2 = (s2[a : a + chunk, None] + lv2[None, :]).ravel()
            tf = (nf[a : a + chunk, None] + f[None, :]).ravel()
            tb = (nb[a : a + chunk, None] + b[None, :]).ravel()
            tc = np.broadcast_to(c[None, :], (len(s1[a : a + chunk]), P)).ravel()
            d = rule.decide(j, t1, t2, tf, tb, tc)
            if j == rule.nmax:
                d[d == GO_ON] = PASS
            p_fail += weight * np.count_nonzero(d == FAIL)
            e_pairs += weight * j * np.count_nonzero(d != GO_ON)
            go = d == GO_ON
            keep.append((t1[go], t2[go], tf[go], tb[go]))
        if not keep or all(len(k[0]) == 0 for k in keep):
            break
        s1, s2, nf, nb = (np.concatenate([k[i] for k in keep]) for i in range(4))
    return Outcome(p_fail, e_pairs)


def simulate(rule: Rule, pool: Pool, idx: np.ndarray) -> Outcome:
    """Monte Carlo: each row of idx (runs x pairs) is one run's sequence of pairs drawn from the pool."""
    N = idx.shape[0]
    lv, f, b, c = pool.lv[idx], pool.fail[idx].astype(np.int16), pool.below[idx].astype(np.int16), pool.clear[idx]
    s1, s2 = np.zeros(N), np.zeros(N)
    nf, nb = np.zeros(N, np.int16), np.zeros(N, np.int16)
    result = np.full(N, GO_ON, np.int8)
    used = np.zeros(N)
    for j in range(1, rule.nmax + 1):
        s1 += lv[:, j - 1]
        s2 += lv[:, j - 1] ** 2
        nf += f[:, j - 1]
        nb += b[:, j - 1]
        d = rule.decide(j, s1, s2, nf, nb, c[:, j - 1])
        if j == rule.nmax:
            d[d == GO_ON] = PASS
        new = (result == GO_ON) & (d != GO_ON)
        result[new] = d[new]
        used[new] = j
    return Outcome(float(np.mean(result == FAIL)), float(np.mean(used)))


def outer(rules: list[Rule], pool: Pool, rng: np.random.Generator) -> dict[str, np.ndarray]:
    """The pool itself resampled (OUTER times); per resample, OUTER_RUNS runs of each rule drawn from it."""
    P = len(pool)
    nmax = max(r.nmax for r in rules)
    out = {r.name: np.zeros(OUTER) for r in rules}
    for i in range(OUTER):
        resampled = pool.take(rng.integers(0, P, P))
        idx = rng.integers(0, P, (OUTER_RUNS, nmax))
        for r in rules:
            out[r.name][i] = simulate(r, resampled, idx).fail
    return out


def fmt_range(x: np.ndarray, digits: int) -> str:
    lo, hi = np.percentile(x, [5, 95])
    return f"{lo:.{digits}f}–{hi:.{digits}f}"


# ---------------------------------------------------------------------------------------------- main


def main() -> None:
    figs = E.load_figures()
    by_kind = {k: [f for f in figs if f.kind == k] for k in ("aa-ref", "aa-ab", "canary-ref", "canary-ab")}
    canary_all = [(f, p) for f in by_kind["canary-ref"] + by_kind["canary-ab"] for p in f.pairs]
    derived_aa_all = [E.canary_to_share(f, p, 0.0) for f, p in canary_all]
    derived_10_all = [E.canary_to_share(f, p, E.SHARE) for f, p in canary_all]
    real_aa = [p for f in by_kind["aa-ref"] + by_kind["aa-ab"] for p in f.pairs]

    # the pools: as estimators_offline.projection, the derived pairs with >= 8 pairs of rounds (one of 47 has 7)
    d10 = pool_of("derived 10 %", [p for p in derived_10_all if p.n >= MIN_PAIRS])
    daa = pool_of("derived A/A", [p for p in derived_aa_all if p.n >= MIN_PAIRS])
    d10_all = pool_of("derived 10 %, all 47", derived_10_all)
    daa_all = pool_of("derived A/A, all 47", derived_aa_all)
    raa = pool_of("real A/A, all", real_aa)
    big = [p for p in real_aa if p.n >= MIN_PAIRS]
    raa8 = pool_of("real A/A, >= 8 pairs of rounds", big)
    # estimators_offline's "A/A + simulated 10 %": the real A/A pairs with >= 8 pairs of rounds, either side taken
    # as the head, 10 % of the slowed side's fast step added to each of its steps; and the same pairs unslowed
    big_both = big + [p.swapped() for p in big]
    raa8_both = pool_of("real A/A, >= 8 rounds, either side", big_both)
    sim10 = pool_of("real A/A, >= 8 rounds, either side, + simulated 10 %", [E.slow_own(p) for p in big_both])
    c10_real = pool_of(
        "real 10 % canaries",
        [p for f in by_kind["canary-ref"] if abs(f.share - E.SHARE) < 1e-9 for p in f.pairs]
        + [p for f in by_kind["canary-ab"] for p in f.pairs],
    )

    print("# Rules over pairs of processes, on the derived H200 pairs (offline)\n")
    print(
        f"Pools (gate estimator, 98 % interval): {len(d10)} derived 10 % and {len(daa)} derived A/A pairs of "
        f"processes with >= {MIN_PAIRS} pairs of rounds (of {len(derived_10_all)}; the one left out: "
        + ", ".join(f"{p.label} n={p.n}" for p in derived_10_all if p.n < MIN_PAIRS)
        + f"); {len(raa)} real A/A pairs ({len(raa8)} with >= {MIN_PAIRS} pairs of rounds)."
    )

    # per-pair rates
    print("\n## Per pair of processes\n")
    print(
        "| pool | pairs | interval wholly below 0.95 (>= 8 rounds: fails alone) | point value below 0.95 "
        "(>= 8 rounds) | interval wholly above 0.95 (clear pass) | neither failed nor clear | sd of log value "
        "| geometric mean |"
    )
    print("| --- | --- | --- | --- | --- | --- | --- | --- |")
    for pool in (d10, daa, d10_all, daa_all, raa, raa8, raa8_both, sim10, c10_real):
        P = len(pool)

        def rate(m: np.ndarray, P: int = P) -> str:
            return f"{int(np.sum(m))}/{P} = {np.mean(m):.3f}"

        print(
            f"| {pool.label} | {P} | {rate(pool.hi < LIMIT)} ({int(np.sum(pool.fail))} with >= 8) "
            f"| {rate(pool.value < LIMIT)} ({int(np.sum(pool.below))} with >= 8) | {rate(pool.clear)} "
            f"| {rate(~pool.fail & ~pool.clear)} | {np.std(pool.lv, ddof=1):.3f} | {np.exp(np.mean(pool.lv)):.3f} |"
        )

    # the real A/A pairs below by point value
    print("\n## Real A/A pairs of processes below 0.95 by point value\n")
    below = [i for i in range(len(raa)) if raa.value[i] < LIMIT]
    print(f"{len(below)} of {len(raa)} ({int(np.sum(raa.below))} of them with >= {MIN_PAIRS} pairs of rounds):\n")
    for i in below:
        print(
            f"- {raa.names[i]}: {raa.value[i]:.3f} [{raa.lo[i]:.3f}–{raa.hi[i]:.3f}], n={raa.n[i]}"
            + (", fails alone (gate rule)" if raa.fail[i] else "")
        )
    lowest = sorted(range(len(raa)), key=lambda i: raa.value[i])[len(below) : len(below) + 2]
    print(
        "\nThe next lowest: "
        + ", ".join(f"{raa.names[i]} {raa.value[i]:.3f} (n={raa.n[i]})" for i in lowest)
        + f". Above 1/0.95 = {1 / LIMIT:.3f}: "
        + ", ".join(f"{raa.names[i]} {raa.value[i]:.3f}" for i in range(len(raa)) if raa.value[i] > 1 / LIMIT)
        + "."
    )

    print(
        "\nReal 10 % canary pairs of processes by point value: "
        + ", ".join(f"{c10_real.names[i]} {c10_real.value[i]:.3f} (n={c10_real.n[i]})" for i in range(len(c10_real)))
        + "."
    )

    # checks
    r0 = RULES[0]
    print("\n## Checks\n")
    for pool in (d10, daa):
        f = float(np.mean(pool.fail))
        u = float(np.mean(~pool.fail & ~pool.clear))
        print(
            f"- {pool.label}: R0 by estimators_offline.projection's formula f (f + u f), no mean test: "
            f"{f * (f + u * f):.4f}; enumerated: {exact(r0, pool).fail:.4f}"
        )
    for pool in (d10, daa, c10_real, sim10, raa, raa8):
        print(
            f"- {pool.label}: pairs both below by point value and clear: {int(np.sum(pool.below & pool.clear))}; "
            f"neither below nor clear (R3 passes at once where R1 goes on): "
            f"{int(np.sum(~pool.below & ~pool.clear))}/{len(pool)}; R3 fail <= R1 fail for the same k of n: "
            + ", ".join(
                f"{k} of {n} {exact(Confirm(k, n), pool).fail:.4f} <= {exact(KofN(k, n), pool).fail:.4f}"
                for k, n in ((3, 4), (4, 5), (3, 5))
            )
        )
    rng = np.random.default_rng(SEED)
    check = [
        next(r for r in RULES if r.name == name)
        for name in (
            RULES[0].name,
            "R1 4 of 5 by point value",
            "R3 confirm, 4 of 5 by point value",
            "R2 pooled, floor 0.034, up to 5",
        )
    ]
    for pool in (d10, daa):
        idx = rng.integers(0, len(pool), (CHECK_RUNS, 5))
        for r in check:
            mc, ex = simulate(r, pool, idx), exact(r, pool)
            print(
                f"- {pool.label}, {r.name}: Monte Carlo ({CHECK_RUNS} runs) fail {mc.fail:.4f}, pairs "
                f"{mc.pairs:.3f}; enumerated {ex.fail:.4f}, {ex.pairs:.3f}"
            )

    # the table
    print("\n## Per run (pairs of processes drawn independently from the pool; exact over that resampling)\n")
    print(
        f"Ranges: 5–95 % over {OUTER} resamples of the pool itself, each with {OUTER_RUNS} Monte Carlo runs "
        f"(seed {SEED}).\n"
    )
    ranges = {p.label: outer(RULES, p, rng) for p in (d10, daa)}
    print("| rule | (a) 10 % caught | range | (b) A/A false failure | range | (c) pairs, 10 % | (c) pairs, A/A |")
    print("| --- | --- | --- | --- | --- | --- | --- |")
    for r in RULES:
        a, b = exact(r, d10), exact(r, daa)
        print(
            f"| {r.name} | {a.fail:.3f} | {fmt_range(ranges[d10.label][r.name], 2)} | {b.fail:.4f} "
            f"| {fmt_range(ranges[daa.label][r.name], 3)} | {a.pairs:.2f} | {b.pairs:.2f} |"
        )

    print("\n## Sensitivity: other pools (exact; fail probability / expected pairs)\n")
    pools = (d10_all, c10_real, sim10, daa_all, raa, raa8, raa8_both)
    print("| rule | " + " | ".join(p.label for p in pools) + " |")
    print("|" + " --- |" * (len(pools) + 1))
    for r in RULES:
        cells = []
        for p in pools:
            o = exact(r, p)
            cells.append(f"{o.fail:.4f} / {o.pairs:.2f}")
        print(f"| {r.name} | " + " | ".join(cells) + " |")

    print("\n## Leave one out: A/A false failure per run without one pair of processes (exact)\n")
    out = [
        (daa, "11-29 14:30 #1"),
        (raa, "11-29 09:35 #1"),
        (raa, "11-29 06:38 #1"),
    ]
    print("| rule | " + " | ".join(f"{p.label} (without {name})" for p, name in out) + " |")
    print("|" + " --- |" * (len(out) + 1))
    for r in RULES:
        cells = []
        for p, name in out:
            rest = p.take(np.array([i for i, x in enumerate(p.names) if x != name]))
            cells.append(f"{exact(r, rest).fail:.4f}")
        print(f"| {r.name} | " + " | ".join(cells) + " |")

    truncated(figs)


# ---------------------------------------------------------------------------------------------- truncated pairs
# Would a rule keep its rates if each pair of processes stopped after its first m pairs of rounds? Every pair is
# derived (or slowed) from its full recorded rounds exactly as above, and only then cut to its first m pairs of
# rounds (a pair with fewer keeps all it has); its gate estimate and 98 % interval are recomputed on the cut rounds
# with the gate's seeded bootstrap (seed = the cut number of pairs of rounds), and the ">= 8 pairs of rounds"
# conditions (pool membership, failed, below) apply to the cut count.

TRUNCATE = (8, 12, 20)
TRUNCATED_RULES: list[Rule] = [Current("R0 current: two failed of up to 3", 3), Confirm(4, 5), Confirm(3, 4)]


def first_rounds(pair: E.Pair, m: int | None) -> E.Pair:
    """The pair's first m pairs of rounds (all of them for m None or m >= n), steps cut with their rounds."""
    if m is None or pair.n <= m:
        return pair

    def cut(side: E.Side) -> E.Side:
        return E.Side(side.p10[:m], None if side.steps is None else side.steps[:m])

    return E.Pair(pair.label, cut(pair.ref), cut(pair.own))


def truncated(figs: list[E.Figure]) -> None:
    by_kind = {k: [f for f in figs if f.kind == k] for k in ("aa-ref", "aa-ab", "canary-ref", "canary-ab")}
    canary_all = [(f, p) for f in by_kind["canary-ref"] + by_kind["canary-ab"] for p in f.pairs]
    # derived first, on the full recorded rounds (the delay comes off every step and every round's p10, the same
    # amount in each round); cut afterwards
    derived_aa_full = [E.canary_to_share(f, p, 0.0) for f, p in canary_all]
    derived_10_full = [E.canary_to_share(f, p, E.SHARE) for f, p in canary_all]
    real_aa_full = [p for f in by_kind["aa-ref"] + by_kind["aa-ab"] for p in f.pairs]
    # the simulated 10 % is sized on the full pair's first three rounds (E.simulated_delay), then cut
    big_full = [p for p in real_aa_full if p.n >= MIN_PAIRS]
    sim10_full = [E.slow_own(p) for p in big_full + [p.swapped() for p in big_full]]
    c10_real_full = [p for f in by_kind["canary-ref"] if abs(f.share - E.SHARE) < 1e-9 for p in f.pairs] + [
        p for f in by_kind["canary-ab"] for p in f.pairs
    ]

    def pools(m: int | None) -> dict[str, Pool]:
        def cut(pairs: list[E.Pair]) -> list[E.Pair]:
            return [first_rounds(p, m) for p in pairs]

        def enough(pairs: list[E.Pair]) -> list[E.Pair]:  # >= 8 pairs of rounds after the cut
            return [p for p in pairs if p.n >= MIN_PAIRS]

        return {
            "d10": pool_of("derived 10 %", enough(cut(derived_10_full))),
            "daa": pool_of("derived A/A", enough(cut(derived_aa_full))),
            "c10": pool_of("real 10 %", cut(c10_real_full)),
            "sim10": pool_of("10 % on real A/A", enough(cut(sim10_full))),
            "raa": pool_of("real A/A, all", cut(real_aa_full)),
            "raa8": pool_of("real A/A, n >= 8", enough(cut(real_aa_full))),
        }

    # recorded pairs of rounds per pool (membership of the uncut pools; the same for every m >= 8)
    full_n = {
        "d10": [p.n for p in derived_10_full if p.n >= MIN_PAIRS],
        "daa": [p.n for p in derived_aa_full if p.n >= MIN_PAIRS],
        "c10": [p.n for p in c10_real_full],
        "sim10": [p.n for p in sim10_full if p.n >= MIN_PAIRS],
        "raa": [p.n for p in real_aa_full],
        "raa8": [p.n for p in big_full],
    }
    ms: list[int | None] = [*TRUNCATE, None]
    by_m = {m: pools(m) for m in ms}

    def mname(m: int | None) -> str:
        return "all recorded" if m is None else f"first {m}"

    print("\n## Pairs of processes cut to their first m pairs of rounds\n")
    print(
        "Each pair derived from its full recorded rounds as above, then cut to its first m pairs of rounds (fewer: "
        "all kept); the gate estimate and its 98 % interval recomputed on the cut rounds; >= 8 pairs of rounds "
        "counted on the cut rounds. Recorded pairs of rounds per pool (n x pairs): "
        + "; ".join(
            f"{by_m[None][k].label}: "
            + ", ".join(
                f"{n} x {c}"
                for n, c in sorted(zip(*np.unique(full_n[k], return_counts=True), strict=True), reverse=True)
            )
            for k in full_n
        )
        + "."
    )

    print("\n### Per pair of processes, cut\n")
    print(
        "| pool | m | pairs | cut (more than m recorded) | interval wholly below 0.95, >= 8 rounds "
        "| point value below 0.95, >= 8 rounds | interval wholly above 0.95 | sd of log value | geometric mean |"
    )
    print("| --- | --- | --- | --- | --- | --- | --- | --- | --- |")
    for k in ("d10", "daa", "c10", "sim10", "raa", "raa8"):
        for m in ms:
            pool = by_m[m][k]
            nc = 0 if m is None else sum(n > m for n in full_n[k])

            def rate(x: np.ndarray) -> str:
                return f"{int(np.sum(x))} ({np.mean(x):.3f})"

            print(
                f"| {pool.label} | {mname(m)} | {len(pool)} | {nc} | {rate(pool.fail)} | {rate(pool.below)} "
                f"| {rate(pool.clear)} | {np.std(pool.lv, ddof=1):.3f} | {np.exp(np.mean(pool.lv)):.3f} |"
            )

    print("\n### The pairs that a cut shortens (value [98 % interval]; F failed, b below by point value, p clear)\n")
    print("| pool | pair of processes | n | " + " | ".join(mname(m) for m in ms) + " |")
    print("|" + " --- |" * (len(ms) + 3))
    for k in ("d10", "daa", "c10", "raa"):
        full = by_m[None][k]
        for i in range(len(full)):
            if full.n[i] <= min(TRUNCATE):
                continue
            cells = []
            for m in ms:
                pl = by_m[m][k]
                mark = " F" if pl.fail[i] else (" b" if pl.below[i] else "") + (" p" if pl.clear[i] else "")
                cells.append(f"{pl.value[i]:.3f} [{pl.lo[i]:.3f}–{pl.hi[i]:.3f}]{mark}")
            print(f"| {full.label} | {full.names[i]} | {full.n[i]} | " + " | ".join(cells) + " |")

    print(
        "\n### Per run, cut (derived pools; exact; ranges 5–95 % over "
        f"{OUTER} resamples of the pool, {OUTER_RUNS} runs each, seed {SEED} afresh per pool and m: the same "
        "resamples for every m)\n"
    )
    print("| rule | m | (a) 10 % caught | range | (b) A/A false failure | range | (c) pairs, 10 % | (c) pairs, A/A |")
    print("| --- | --- | --- | --- | --- | --- | --- | --- |")
    ranges = {
        (m, k): outer(TRUNCATED_RULES, by_m[m][k], np.random.default_rng(SEED)) for m in ms for k in ("d10", "daa")
    }
    for r in TRUNCATED_RULES:
        for m in ms:
            a, b = exact(r, by_m[m]["d10"]), exact(r, by_m[m]["daa"])
            print(
                f"| {r.name} | {mname(m)} | {a.fail:.3f} | {fmt_range(ranges[m, 'd10'][r.name], 2)} | {b.fail:.4f} "
                f"| {fmt_range(ranges[m, 'daa'][r.name], 3)} | {a.pairs:.2f} | {b.pairs:.2f} |"
            )

    print("\n### Per run, cut (pools with real process offsets; exact; fail probability / expected pairs)\n")
    keys = ("c10", "sim10", "raa", "raa8")
    print("| rule | m | " + " | ".join(f"{by_m[None][k].label} ({len(by_m[None][k])})" for k in keys) + " |")
    print("|" + " --- |" * (len(keys) + 2))
    for r in TRUNCATED_RULES:
        for m in ms:
            cells = []
            for k in keys:
                o = exact(r, by_m[m][k])
                cells.append(f"{o.fail:.4f} / {o.pairs:.2f}")
            print(f"| {r.name} | {mname(m)} | " + " | ".join(cells) + " |")


if __name__ == "__main__":
    np.seterr(all="ignore")
    main()
    sys.stdout.flush()
