"""The pull-request profile's round policy replayed on recorded H200 rounds (offline; not a GPU run).

Run from anywhere: `.venv/bin/python docs/experiments/pr_rounds_offline.py` (numpy only, deterministic, a few seconds).
What it reads, what it does and what came out: docs/experiments/2026-12-01-h200-pr-rounds-offline.md.

Each recorded pair of worker processes is replayed round by round in its recorded order, under a round policy
(perfgate.measure.RoundPlan: --perf-rounds, --perf-max-rounds, --perf-suspect-rounds, --perf-test-budget): after the
first `rounds` pairs of rounds and after every one added, the ratio is judged on the rounds so far as the session's
`settled` callback judges it (perfgate.judging.settle_state, perfgate.gate.judge with the pair's own interval):

- clear fail: all of its 98 % interval below 0.95 and >= 8 pairs of rounds; clear pass: all of it above 0.95;
- suspect: neither, with the value below 0.95 (measured on up to max(max_rounds, suspect_rounds));
- unclear: neither, with the value at or above 0.95 (measured on up to max_rounds).

The estimator and interval are the gate's (fast-state p10/p10, its seeded 98 % bootstrap: estimators_offline), the
interval widened to hold the value (perfgate.measure.over_pairs, as the figure's). The baseline is exactly 1.0 with
5 % tolerance (the canary's baseline, the reference's ratio to itself): the gate's judging against a baseline run's
rounds (perfgate.measure.ratio_interval_against) is not modelled, and only the ratio is judged, not the test's other
figures. Where a policy wants a round beyond those recorded, the pair stops there and is counted as cut.

Per run, the reference ratio's rule over pairs of processes (perfgate.session.measure_decode, _measure_again,
perfgate.gate.judge; R0 in pair_rules_offline) decides over up to 3 replayed pairs drawn independently and uniformly,
with replacement, from the pool; every sequence of draws is enumerated (exact for that resampling), and the result
is checked against pair_rules_offline.exact. Ranges: 5-95 % over resamples of the pool itself. The per-run table
adds a third policy for comparison, 5/5/40 (the pr policy first judged after 5 pairs of rounds); it is no profile.
"""

from __future__ import annotations

import json
import math
import sys
from dataclasses import dataclass
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
import estimators_offline as E  # noqa: E402  (the data, the derivation and the gate's estimator)
import pair_rules_offline as PR  # noqa: E402  (the pair rule R0 and its exact enumeration, as a check)

LIMIT = E.LIMIT  # 0.95
MIN_PAIRS = E.MIN_PAIRS  # a ratio fails by its interval only from 8 pairs of rounds on
GATE = E.CANDIDATES[0][1]  # fast-state p10 / p10
PROCESS_PAIRS = 3  # the reference ratio's --perf-process-pairs
SEED = 20261201
OUTER = 200  # resamples of a pool for the ranges


@dataclass(frozen=True)
class Policy:
    name: str
    rounds: int
    max_rounds: int
    suspect_rounds: int
    budget_s: float = 300.0

    @property
    def cap(self) -> int:
        return max(self.max_rounds, self.suspect_rounds)


OLD = Policy("old 5/20/40", 5, 20, 40)
NEW = Policy("pr 3/3/40", 3, 3, 40)
ALT = Policy(
    "alt 5/5/40", 5, 5, 40
)  # not a profile: the pr policy judged first after 5 pairs of rounds, for comparison
POLICIES = (OLD, NEW)  # the per-pair tables
RUN_POLICIES = (OLD, NEW, ALT)  # the per-run table


# ---------------------------------------------------------------------------------------------- one pair, replayed


@dataclass(frozen=True)
class State:
    n: int
    value: float
    lo: float
    hi: float

    @property
    def fail(self) -> bool:
        return self.hi < LIMIT and self.n >= MIN_PAIRS

    @property
    def clear_pass(self) -> bool:
        return self.lo > LIMIT

    @property
    def clear(self) -> bool:
        return self.fail or self.clear_pass

    @property
    def suspect(self) -> bool:
        return not self.clear and self.value < LIMIT

    @property
    def code(self) -> str:  # F clear fail, p clear pass, s unclear beyond the limit, u unclear within it
        return "F" if self.fail else "p" if self.clear_pass else "s" if self.suspect else "u"


_STATES: dict[tuple[int, int], State] = {}
WIDENED = [0]  # how many judged prefixes the widening to hold the value changed


def state(pair: E.Pair, n: int) -> State:
    """The ratio's verdict on the pair's first n pairs of rounds (the gate's seeded bootstrap, seed n)."""
    key = (id(pair), n)
    if key not in _STATES:
        sub = E.Pair(pair.label, E.Side(pair.ref.p10[:n]), E.Side(pair.own.p10[:n]))
        v = E.judge(GATE, sub)
        lo, hi = min(v.lo, v.value), max(v.hi, v.value)
        WIDENED[0] += (lo, hi) != (v.lo, v.hi)
        _STATES[key] = State(n, v.value, lo, hi)
    return _STATES[key]


@dataclass(frozen=True)
class Replay:
    label: str
    end: State  # the verdict where the pair stopped
    cut: bool  # the policy wanted a round beyond those recorded
    budget: bool  # stopped by the test budget
    recorded: int
    pair_s: float  # estimated seconds a pair of rounds

    @property
    def n(self) -> int:
        return self.end.n

    def cell(self) -> str:
        return f"{self.end.code} {self.n}" + ("*" if self.cut else "") + ("b" if self.budget else "")


def replay(pair: E.Pair, pol: Policy, pair_s: float) -> Replay:
    """Round by round as perfgate.measure.decode's loop: `rounds` always, then one more while RoundPlan.more says so,
    the timed rounds so far (pair_s seconds a pair of rounds) are within the budget, and a round is recorded."""
    n = min(pol.rounds, pair.n)
    cut = pair.n < pol.rounds
    budget = False
    while True:
        s = state(pair, n)
        if s.clear or n >= (pol.cap if s.suspect else pol.max_rounds):
            break
        if n * pair_s >= pol.budget_s:
            budget = True
            break
        if n >= pair.n:
            cut = True
            break
        n += 1
    return Replay(pair.label, state(pair, n), cut, budget, pair.n, pair_s)


# ---------------------------------------------------------------------------------------------- over pairs (R0)


@dataclass
class RunOutcome:
    fail: float  # probability that the run fails the ratio
    pairs: float  # expected pairs of processes
    rounds: float  # expected pairs of rounds over all of them
    seconds: float  # expected seconds of timed rounds over all of them (estimated)
    cut: float  # probability that the run measures a pair the replay cut
    cut_fail: float  # probability that the run fails with a cut pair among its pairs


def arrays(reps: list[Replay], cut_as: str = "", cap: int = 0) -> dict[str, np.ndarray]:
    """Per replayed pair what the rule over pairs needs. Brackets for the cut pairs (where the policy wanted rounds
    that were not recorded): cut_as "fail" counts every cut pair as a clear fail, at its recorded value (an upper
    bound on failing); "cap" counts every cut pair at `cap` pairs of rounds (an upper bound on rounds)."""
    fail = np.array([r.end.fail for r in reps])
    cut = np.array([r.cut for r in reps])
    n = np.array([r.n for r in reps], float)
    if cut_as == "fail":
        fail = fail | cut
    elif cut_as == "cap":
        n[cut] = cap
    return {
        "fail": fail,
        "clear": np.array([r.end.clear_pass for r in reps]) & ~fail,
        "lv": np.log([r.end.value for r in reps]),
        "n": n,
        "secs": n * np.array([r.pair_s for r in reps]),
        "cut": cut,
    }


def r0_exact(a: dict[str, np.ndarray]) -> RunOutcome:
    """The reference ratio's rule over pairs of processes, every sequence of up to 3 draws enumerated:
    after the first pair, measure another only if it failed (interval wholly below, >= 8 pairs of rounds); after the
    second, stop on a clear pass or on a failure of the pairs together (two failed and the geometric mean below the
    limit), else measure the third (one failed pair and one left can still make two); the run fails when two pairs
    failed and the geometric mean of all pairs' values is below the limit."""
    fail, clear, lv, n, cut, t = a["fail"], a["clear"], a["lv"], a["n"], a["cut"], a["secs"]
    P = len(fail)
    log_limit = math.log(LIMIT)
    out = RunOutcome(0.0, 0.0, 0.0, 0.0, 0.0, 0.0)
    # one pair: it stops unless it failed (one failed pair never fails the run)
    stop = ~fail
    out.pairs += np.sum(stop) / P
    out.rounds += np.sum(n[stop]) / P
    out.seconds += np.sum(t[stop]) / P
    out.cut += np.sum(cut[stop]) / P
    first = np.flatnonzero(fail)
    if len(first) == 0:
        return out
    # two pairs: the first failed
    i, j = np.meshgrid(first, np.arange(P), indexing="ij")
    i, j = i.ravel(), j.ravel()
    w2 = 1 / P**2
    nf2 = 1 + fail[j]
    together2 = (nf2 >= 2) & ((lv[i] + lv[j]) / 2 < log_limit)
    stop2 = clear[j] | together2
    cut2 = cut[i] | cut[j]
    out.fail += w2 * np.sum(together2)
    out.pairs += w2 * 2 * np.sum(stop2)
    out.rounds += w2 * np.sum((n[i] + n[j])[stop2])
    out.seconds += w2 * np.sum((t[i] + t[j])[stop2])
    out.cut += w2 * np.sum(cut2[stop2])
    out.cut_fail += w2 * np.sum(cut2 & together2)
    go = ~stop2
    i, j = i[go], j[go]
    nf2 = nf2[go]
    if len(i) == 0:
        return out
    # three pairs: the last allowed, the run decided
    w3 = 1 / P**3
    nf3 = nf2[:, None] + fail[None, :]
    together3 = (nf3 >= 2) & (((lv[i] + lv[j])[:, None] + lv[None, :]) / 3 < log_limit)
    cut3 = (cut[i] | cut[j])[:, None] | cut[None, :]
    out.fail += w3 * np.sum(together3)
    out.pairs += w3 * 3 * together3.size
    out.rounds += w3 * np.sum((n[i] + n[j])[:, None] + n[None, :])
    out.seconds += w3 * np.sum((t[i] + t[j])[:, None] + t[None, :])
    out.cut += w3 * np.sum(cut3)
    out.cut_fail += w3 * np.sum(cut3 & together3)
    return out


def pool_for_pr(reps: list[Replay]) -> PR.Pool:
    """The replayed pairs as pair_rules_offline's Pool, for its own enumeration of R0 (a check)."""
    return PR.Pool(
        "replayed",
        [r.label for r in reps],
        np.array([r.end.value for r in reps]),
        np.array([r.end.lo for r in reps]),
        np.array([r.end.hi for r in reps]),
        np.array([r.n for r in reps]),
    )


def ranges(reps: list[Replay], rng: np.random.Generator) -> dict[str, tuple[float, float]]:
    """5-95 % of the run's fail probability and expected rounds over OUTER resamples of the pool itself."""
    fs, rs = [], []
    for _ in range(OUTER):
        o = r0_exact(arrays([reps[i] for i in rng.integers(0, len(reps), len(reps))]))
        fs.append(o.fail)
        rs.append(o.rounds)
    return {"fail": tuple(np.percentile(fs, [5, 95])), "rounds": tuple(np.percentile(rs, [5, 95]))}


# ---------------------------------------------------------------------------------------------- data


def seconds_per_pair_of_rounds(fig: E.Figure) -> float:
    """Twice the median of the variant's recorded round_s (its rounds, the last pair of processes'): the pair of
    rounds' time, counting the reference's round as long as the variant's (an overestimate for a canary)."""
    d, stamp = fig.stamp.split("/")
    run = json.loads((E.EXP / d / f"{stamp}_nvidia-h200.json").read_text())
    for x in run.get("results", []):
        if x["variant"] == fig.variant and x["metric"] == "round_s" and x.get("workload") == "ctx1024":
            return 2 * float(np.median(x["samples"]))
    raise ValueError(f"{fig.stamp}: no round_s for {fig.variant}")


@dataclass
class Entry:
    pair: E.Pair
    pair_s: float
    reps: dict[str, Replay]


def replay_all(items: list[tuple[E.Pair, float]]) -> list[Entry]:
    return [Entry(p, s, {pol.name: replay(p, pol, s) for pol in RUN_POLICIES}) for p, s in items]


def fmt_r(r: tuple[float, float], digits: int) -> str:
    return f"{r[0]:.{digits}f}–{r[1]:.{digits}f}"


def main() -> None:
    figs = E.load_figures()
    secs = {id(f): seconds_per_pair_of_rounds(f) for f in figs}
    c15 = [(f, p) for f in figs if f.kind == "canary-ref" and abs(f.share - 0.15) < 1e-9 for p in f.pairs]
    c10 = [(f, p) for f in figs if f.kind == "canary-ref" and abs(f.share - 0.10) < 1e-9 for p in f.pairs]
    aa_ref = [(f, p) for f in figs if f.kind == "aa-ref" for p in f.pairs]
    aa_ab = [(f, p) for f in figs if f.kind == "aa-ab" for p in f.pairs]

    pools = {
        "real 15 %": replay_all([(p, secs[id(f)]) for f, p in c15]),
        "derived 10 %": replay_all([(E.canary_to_share(f, p, E.SHARE), secs[id(f)]) for f, p in c15]),
        "derived A/A": replay_all([(E.canary_to_share(f, p, 0.0), secs[id(f)]) for f, p in c15]),
        "real 10 % (ref canary)": replay_all([(p, secs[id(f)]) for f, p in c10]),
        "real A/A (0 % canary)": replay_all([(p, secs[id(f)]) for f, p in aa_ref]),
        "real A/A (0 % canary + A/B)": replay_all([(p, secs[id(f)]) for f, p in aa_ref + aa_ab]),
    }

    print("# The pr profile's round policy on recorded H200 rounds (offline)\n")
    print(
        f"Policies: {OLD.name} (rounds {OLD.rounds}, max {OLD.max_rounds}, suspect {OLD.suspect_rounds}) and "
        f"{NEW.name} (rounds {NEW.rounds}, max {NEW.max_rounds}, suspect {NEW.suspect_rounds}); in the per-run "
        f"table also {ALT.name}, for comparison; test budget "
        f"{OLD.budget_s:.0f} s; limit {LIMIT} (baseline exactly 1.0, 5 % tolerance).\n"
    )
    for name, entries in pools.items():
        ns = [e.pair.n for e in entries]
        print(
            f"- {name}: {len(entries)} pairs of processes, recorded pairs of rounds "
            + ", ".join(
                f"{n} x {c}" for n, c in sorted(zip(*np.unique(ns, return_counts=True), strict=True), reverse=True)
            )
        )
    all_s = [e.pair_s for es in pools.values() for e in es]
    print(
        f"\nEstimated seconds per pair of rounds (2 x the variant's median round_s): {min(all_s):.2f}–{max(all_s):.2f};"
        f" 40 pairs of rounds: at most {40 * max(all_s):.0f} s against the budget {OLD.budget_s:.0f} s."
    )

    # ------------------------------------------------------------------ checks
    print("\n## Checks\n")
    worst, count = 0.0, 0
    for _, p in c15 + c10 + aa_ref + aa_ab:
        if p.recorded_interval:
            v = E.judge(GATE, p)
            worst = max(worst, abs(v.lo - p.recorded_interval[0]), abs(v.hi - p.recorded_interval[1]))
            count += 1
    print(f"- The gate's recorded interval recomputed for {count} of these pairs: largest difference {worst:.1e}.")
    # replayed under the options its own run recorded (no suspect rounds before they existed: cap = max rounds)
    agree, total, differ = 0, 0, []
    for f, p in c15 + c10 + aa_ref:
        d, stamp = f.stamp.split("/")
        o = json.loads((E.EXP / d / f"{stamp}_nvidia-h200.json").read_text()).get("options") or {}
        pol = Policy("own", o["rounds"], o["max_rounds"], o.get("suspect_rounds") or 0, o["test_budget"])
        r = replay(p, pol, secs[id(f)])
        total += 1
        if r.n == p.n and not r.cut:
            agree += 1
        else:
            differ.append(
                f"{p.label} (rounds {pol.rounds}, max {pol.max_rounds}, suspect {pol.suspect_rounds}, budget "
                f"{pol.budget_s:.0f}): recorded {p.n}, replay {r.cell()}"
            )
    print(
        f"- Replayed under its own run's recorded options, {agree} of {total} reference-ratio pairs stop where they "
        f"were recorded" + (": the others, " + "; ".join(differ) if differ else "") + "."
    )
    print(f"- Judged prefixes whose interval the widening to hold the value changed: {WIDENED[0]} of {len(_STATES)}.")
    for name, entries in pools.items():
        for pol in RUN_POLICIES:
            reps = [e.reps[pol.name] for e in entries]
            mine = r0_exact(arrays(reps))
            theirs = PR.exact(PR.RULES[0], pool_for_pr(reps))
            assert abs(mine.fail - theirs.fail) < 1e-9 and abs(mine.pairs - theirs.pairs) < 1e-9, (name, pol.name)
    print(
        "- R0 enumerated here agrees with pair_rules_offline.exact (fail and pairs, to 1e-9) on every pool and policy."
    )

    # ------------------------------------------------------------------ per pair
    print("\n## Per pair of processes (verdict and pairs of rounds used)\n")
    print(
        "F clear fail, p clear pass, s unclear beyond the limit (passes, 'unclear, beyond limit'), u unclear within "
        "it (passes); * the policy wanted a round beyond those recorded (stopped there); b the test budget.\n"
    )
    keys = ("real 15 %", "derived 10 %", "derived A/A")
    print(
        "| pair of processes | recorded | "
        + " | ".join(f"{k}: {pol.name}" for k in keys for pol in POLICIES)
        + " | 15 % / 10 % / A/A value, all recorded |"
    )
    print("|" + " --- |" * (2 + 2 * len(keys) + 1))
    for i, e in enumerate(pools["real 15 %"]):
        cells = [pools[k][i].reps[pol.name].cell() for k in keys for pol in POLICIES]
        vals = " / ".join(f"{state(pools[k][i].pair, pools[k][i].pair.n).value:.3f}" for k in keys)
        print(f"| {e.pair.label} | {e.pair.n} | " + " | ".join(cells) + f" | {vals} |")
    for k in ("real 10 % (ref canary)", "real A/A (0 % canary + A/B)"):
        print(f"\n### {k}\n")
        print(
            "| pair of processes | recorded | " + " | ".join(pol.name for pol in POLICIES) + " | value, all recorded |"
        )
        print("| --- | --- | --- | --- | --- |")
        for e in pools[k]:
            cells = [e.reps[pol.name].cell() for pol in POLICIES]
            print(f"| {e.pair.label} | {e.pair.n} | " + " | ".join(cells) + f" | {state(e.pair, e.pair.n).value:.3f} |")

    # ------------------------------------------------------------------ per pair, counted
    print("\n## Per pair of processes, counted\n")
    print(
        "| pool | policy | pairs | clear fail | clear pass | unclear beyond | unclear within | mean pairs of rounds "
        "| cut (wanted more than recorded) | of them: cut beyond 8 |"
    )
    print("| --- | --- | --- | --- | --- | --- | --- | --- | --- | --- |")
    for name, entries in pools.items():
        for pol in POLICIES:
            reps = [e.reps[pol.name] for e in entries]
            c = {k: sum(r.end.code == k for r in reps) for k in "Fpsu"}
            print(
                f"| {name} | {pol.name} | {len(reps)} | {c['F']} | {c['p']} | {c['s']} | {c['u']} "
                f"| {np.mean([r.n for r in reps]):.2f} | {sum(r.cut for r in reps)} "
                f"| {sum(r.cut and r.recorded >= MIN_PAIRS for r in reps)} |"
            )
    for name, entries in pools.items():
        only_new = sum(e.reps[NEW.name].end.fail and not e.reps[OLD.name].end.fail for e in entries)
        only_old = sum(e.reps[OLD.name].end.fail and not e.reps[NEW.name].end.fail for e in entries)
        at3 = {
            k: sum(e.reps[NEW.name].end.code == k and e.reps[NEW.name].n == NEW.rounds for e in entries) for k in "pu"
        }
        print(
            f"- {name}: fail under {NEW.name} only {only_new}, under {OLD.name} only {only_old}; "
            f"under {NEW.name} stopped after {NEW.rounds} pairs of rounds: clear pass {at3['p']}, unclear {at3['u']}"
        )
    budget_hits = sum(r.budget for es in pools.values() for e in es for r in e.reps.values())
    print(f"\nStopped by the test budget: {budget_hits} replays.")

    # what the new policy changes, pair by pair
    print("\n### Where the two policies differ in verdict\n")
    for name, entries in pools.items():
        moved = [
            f"{e.pair.label}: {e.reps[OLD.name].cell()} -> {e.reps[NEW.name].cell()}"
            for e in entries
            if e.reps[OLD.name].end.code != e.reps[NEW.name].end.code
        ]
        print(f"- {name}: {len(moved)} of {len(entries)}" + (": " + "; ".join(moved) if moved else ""))

    print("\n### Round by round, the pairs whose verdict differs (slowdown pools, real A/A) and the real 10 % pairs\n")
    print("After n pairs of rounds (n = 3 to those recorded): the value and the state (F, p, s, u as above).\n")
    for name in ("real 15 %", "derived 10 %", "real 10 % (ref canary)", "real A/A (0 % canary + A/B)"):
        for e in pools[name]:
            differs = e.reps[OLD.name].end.code != e.reps[NEW.name].end.code
            if not differs and not name.startswith("real 10"):
                continue
            path = " ".join(f"{n}:{state(e.pair, n).value:.3f}{state(e.pair, n).code}" for n in range(3, e.pair.n + 1))
            print(f"- {name}, {e.pair.label}: {path}")
            if differs and name != "real A/A (0 % canary + A/B)":
                print(
                    "  - round p10 (ms), first 5 pairs of rounds: reference "
                    + " ".join(f"{x * 1e3:.1f}" for x in e.pair.ref.p10[:5])
                    + "; variant "
                    + " ".join(f"{x * 1e3:.1f}" for x in e.pair.own.p10[:5])
                    + f"; the reference's fastest over all {e.pair.n}: {e.pair.ref.p10.min() * 1e3:.1f}"
                )

    # ------------------------------------------------------------------ per run
    print(
        "\n## Per run: the reference ratio's rule over up to 3 pairs of processes (drawn independently from the pool; "
        "exact)\n"
    )
    print(
        f"Ranges: 5–95 % over {OUTER} resamples of the pool (seed {SEED}). 'Cut': the probability that the run "
        "measures a pair that the replay cut short of what the policy wanted (and, after the slash, that it fails "
        "with one).\n"
    )
    print(
        "| pool | policy | run fails | range | run fails, cut pairs as fails | expected pairs of processes "
        "| expected pairs of rounds | range | rounds, cut pairs at the cap | expected seconds of timed rounds | cut |"
    )
    print("| --- | --- | --- | --- | --- | --- | --- | --- | --- | --- | --- |")
    for name, entries in pools.items():
        for pol in RUN_POLICIES:
            reps = [e.reps[pol.name] for e in entries]
            o = r0_exact(arrays(reps))
            up = r0_exact(arrays(reps, "fail"))
            capped = r0_exact(arrays(reps, "cap", pol.cap))
            rg = ranges(reps, np.random.default_rng(SEED))
            print(
                f"| {name} | {pol.name} | {o.fail:.4f} | {fmt_r(rg['fail'], 3)} | {up.fail:.4f} | {o.pairs:.2f} "
                f"| {o.rounds:.1f} | {fmt_r(rg['rounds'], 1)} | {capped.rounds:.1f} | {o.seconds:.0f} "
                f"| {o.cut:.3f} / {o.cut_fail:.3f} |"
            )


if __name__ == "__main__":
    np.seterr(all="ignore")
    main()
    sys.stdout.flush()
