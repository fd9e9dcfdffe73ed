"""measure.decode's round logic against scripted workers: alternation, adaptive rounds, re-measuring."""

import dataclasses
import json
import math
import os
from types import SimpleNamespace

import pytest

from perfgate import ab, gate, measure
from perfgate.judging import Judged, settle_state
from perfgate.runner import WorkerError
from perfgate.trackers import VramTracker
from perfgate.variants import REGISTRY
from perfgate.workloads import DecodeWorkload

WORKLOAD = DecodeWorkload(64, 8)
PLAN = measure.RoundPlan(rounds=3, max_rounds=12, budget_s=60.0, warmup=1)


class ScriptedWorker:
    """Answers 'generate' with decode rates from a script (then the last one, repeatedly); logs every call."""

    pid = 0

    def __init__(self, name, rates, log):
        self.name, self.rates, self.log = name, list(rates), log

    def call(self, op, timeout_s, **params):
        self.log.append((self.name, op, params) if op == "pin" else (self.name, op))
        if op == "generate":
            rate = self.rates.pop(0) if len(self.rates) > 1 else self.rates[0]
            decode_s = 7 / rate
            return {
                "ttft_s": 0.01,
                "decode_s": decode_s,
                "new_tokens": 8,
                "decode_tok_per_s": rate,
                "step_median_s": 1 / rate,
                "step_p10_s": 1 / rate,
                "wall_s": decode_s + 0.01,
                "clock_overhead_s": 1e-5,
            }
        if op == "memory":
            return {"torch_max_allocated_mib": None}
        return {}


def ratio_verdict(partial, baseline=1.0, tolerance=0.05):
    figures = measure.decode_figures("hf-nf4", partial)
    ratio = next(f for f in figures if f.metric == "decode_ratio_to_ref")
    return gate.judge(
        ratio.samples, ratio.value, "higher", baseline, tolerance, interval=tuple(ratio.params["interval"])
    )


def settled(partial):
    return settle_state([Judged(None, ratio_verdict(partial), "hf-nf4/decode_ratio_to_ref")])


def run(variant_rates, reference_rates, settled=None, plan=PLAN):
    log = []
    m = measure.decode(
        ScriptedWorker("v", variant_rates, log),
        VramTracker(None, None),
        REGISTRY["hf-nf4"],
        WORKLOAD,
        plan,
        0.15,
        10,
        ScriptedWorker("ref", reference_rates, log),
        settled,
    )
    return m, [entry for entry in log if entry[1] == "generate"]


def test_rounds_alternate_and_every_other_pair_starts_with_the_variant():
    m, log = run([50.0], [50.0])
    ref_first, variant_first = [("ref", "generate"), ("v", "generate")], [("v", "generate"), ("ref", "generate")]
    assert log == ref_first * 2 + variant_first + ref_first  # one warm-up pair, three timed pairs
    assert m.ratios == [1.0, 1.0, 1.0]
    assert [r.decode_tok_per_s for r in m.reference_rounds] == [50.0] * 3


def test_the_two_workers_swap_cores_every_two_pairs():
    log = []
    plan = measure.RoundPlan(rounds=4, max_rounds=4, budget_s=60.0, warmup=0)
    reference, variant = ScriptedWorker("ref", [50.0], log), ScriptedWorker("v", [50.0], log)
    m = measure.decode(
        variant, VramTracker(None, None), REGISTRY["hf-nf4"], WORKLOAD, plan, 0.15, 10, reference, cores=(7, 6)
    )
    assert m.cores == (6, 6, 7, 7)
    pins = [entry[2]["core"] for entry in log if entry[:2] == ("ref", "pin")]
    assert pins == [7, 7, 6, 6, 7]  # and back to its own core after the test


def test_the_step_log_has_each_round_with_what_the_machine_did_meanwhile(tmp_path):
    log, path = [], tmp_path / "steps.jsonl"
    plan = measure.RoundPlan(rounds=2, max_rounds=2, budget_s=60.0, warmup=0)
    reference, variant = ScriptedWorker("ref", [50.0], log), ScriptedWorker("v", [40.0], log)
    variant.pid = os.getpid()  # a process that exists: its switches can be counted
    measure.decode(
        variant, VramTracker(None, None), REGISTRY["hf-nf4"], WORKLOAD, plan, 0.15, 10, reference, step_log=path
    )
    records = [json.loads(line) for line in path.read_text().splitlines()]
    assert [r["variant"] for r in records] == ["hf-nf4", "hf-nf4"] and records[0]["workload"] == "ctx64"
    for r in records:
        assert r["variant_involuntary_switches"] >= 0  # counted over the variant's round
        assert r["reference_involuntary_switches"] is None  # pid 0: nothing to read
        assert r["variant_clocks_after"] == {"sm_mhz": None, "clock_event_reasons": None, "cpu_khz": None}  # no GPU
        assert r["variant_steal_s"] >= 0 and r["reference_steal_s"] >= 0  # the whole machine's: not pinned here
        assert r["variant_minor_faults"] >= 0 and r["reference_minor_faults"] is None
        assert r["variant_memory_after"]["anon_huge_mib"] is not None  # this process's smaps_rollup, read
        assert r["reference_memory_after"] == {"anon_huge_mib": None, "numa_node_mib": None}  # pid 0
        assert "reference_steps_s" in r


def test_drift_of_the_machine_cancels_in_the_ratio():
    drift = [50.0, 40.0, 30.0, 45.0]  # the whole machine slows and recovers
    m, _ = run([0.0 + x for x in drift], drift)
    assert m.ratios == [1.0, 1.0, 1.0]


def test_a_clear_verdict_stops_after_the_minimum_rounds():
    m, _ = run([50.0], [50.0], settled)
    assert len(m.rounds) == 3 and ratio_verdict(m).status == gate.PASS


def test_slow_states_of_either_process_do_not_move_the_ratio():
    # each process, on its own, spends rounds at half speed (the H200's slow states): the fast ends still agree
    variant = [50.0, 50.0, 25.0, 50.0, 25.0, 50.0, 50.0, 25.0, 50.0, 50.0, 50.0, 25.0, 50.0]
    reference = [50.0, 25.0, 50.0, 50.0, 50.0, 25.0, 25.0, 50.0, 50.0, 25.0, 50.0, 50.0, 50.0]
    m, _ = run(variant, reference, settled)
    assert min(m.ratios) == 0.5 and max(m.ratios) == 2.0
    assert m.fast_ratio() == 1.0 and ratio_verdict(m).status == gate.PASS


def test_a_real_regression_is_measured_until_it_fails_clearly():
    m, _ = run([40.0, 40.0, 20.0, 40.0], [50.0, 25.0, 50.0], settled)
    v = ratio_verdict(m)
    assert v.failed and v.clear and v.test == "bootstrap"
    assert len(m.rounds) == gate.MIN_INTERVAL_SAMPLES_TO_FAIL  # a handful of rounds is not evidence enough to fail
    assert abs(v.value - 0.8) < 1e-9 and v.ci[1] < 0.95


def test_rounds_stop_at_the_bound_when_never_clear():
    m, _ = run([50.0], [50.0], settled=lambda partial: measure.UNCLEAR)
    assert len(m.rounds) == 12


def test_a_suspected_regression_gets_rounds_up_to_the_suspect_bound():
    plan = dataclasses.replace(PLAN, suspect_rounds=20)
    m, _ = run([50.0], [50.0], lambda partial: measure.SUSPECT, plan)
    assert len(m.rounds) == 20
    m, _ = run([50.0], [50.0], lambda partial: measure.UNCLEAR, plan)  # unclear, not beyond the limit: the usual bound
    assert len(m.rounds) == 12
    m, _ = run([50.0], [50.0], lambda partial: measure.SUSPECT, dataclasses.replace(plan, suspect_rounds=5))
    assert len(m.rounds) == 12  # a suspect bound below the usual one adds nothing
    m, _ = run([50.0], [50.0], lambda partial: measure.SUSPECT, dataclasses.replace(plan, budget_s=0.0))
    assert len(m.rounds) == 3  # the seconds still bound it


def test_a_tests_verdicts_settle_it_when_all_are_clear_and_a_suspect_one_asks_for_the_longer_bound():
    enough = (0.9,) * gate.MIN_INTERVAL_SAMPLES_TO_FAIL
    clear = gate.judge(enough, 1.0, "higher", 1.0, 0.05, interval=(0.97, 1.02))
    unclear = gate.judge(enough, 0.97, "higher", 1.0, 0.05, interval=(0.90, 1.04))
    suspect = gate.judge(enough, 0.9, "higher", 1.0, 0.05, interval=(0.85, 0.96))

    def state(*verdicts):
        return settle_state([Judged(None, v, "key") for v in verdicts])

    assert state(clear, clear) == measure.CLEAR
    assert state(clear, unclear) == measure.UNCLEAR
    assert state(unclear, suspect) == state(suspect) == measure.SUSPECT
    # judged with the baseline's rounds: where the baseline's own noise alone leaves the interval above the limit
    # (0.95) at this value, more rounds of this run cannot fail it, so it gets none; where it does not, it does
    ratio = SimpleNamespace(better="higher")
    assert settle_state([Judged(ratio, suspect, "key", floor=(0.84, 0.97))]) == measure.UNCLEAR
    assert settle_state([Judged(ratio, suspect, "key", floor=(0.86, 0.93))]) == measure.SUSPECT


def test_the_baselines_noise_alone_bounds_how_far_more_rounds_can_narrow_a_ratio():
    exact = ([0.040] * 10, [0.050] * 10)  # the baseline run: ratio 0.8 in every pair of rounds
    assert measure.ratio_interval_at(0.7, exact, 0.8) == pytest.approx((0.7, 0.7))
    noisy = ([0.040] * 10, [0.050, 0.044, 0.056, 0.047, 0.053, 0.050, 0.045, 0.055, 0.049, 0.051])
    base = measure.fast_state_ratio(*noisy)
    lo, hi = measure.ratio_interval_at(0.7, noisy, base)
    assert lo < 0.7 < hi and hi - lo > 0.02


def test_a_regression_left_unclear_at_the_usual_bound_fails_with_the_suspect_rounds():
    # the variant at 0.85 of the reference, which is in its slow state in 6 of its first 8 timed rounds and then
    # fast: the ratio is below the limit all along, its interval reaches above it until the fast rounds are many
    reference = [50.0] + [50.0, 25.0, 50.0, 25.0, 25.0, 25.0, 25.0, 25.0] + [50.0] * 40  # a warm-up round first
    variant = [42.5]
    short, _ = run(variant, reference, settled, dataclasses.replace(PLAN, max_rounds=8))
    long, _ = run(variant, reference, settled, dataclasses.replace(PLAN, max_rounds=8, suspect_rounds=40))
    before, after = ratio_verdict(short), ratio_verdict(long)
    assert len(short.rounds) == 8 and before.suspect and not before.failed
    assert after.failed and after.clear and 8 < len(long.rounds) < 40


def test_canary_delay_is_a_share_of_the_fastest_warm_step():
    log = []
    worker = ScriptedWorker("v", [50.0, 25.0, 50.0, 40.0], log)  # warm-up, then three calibration rounds
    m = measure.decode(
        worker, VramTracker(None, None), REGISTRY["hf-fp16-slow"], WORKLOAD, measure.RoundPlan(2, 2, 60.0, 1), 0.15, 10
    )
    assert m.step_delay_s == 0.15 / 50.0  # the round at half speed does not double the delay
    assert ("v", "set_step_delay") in log


class MeteredTracker(VramTracker):
    """A tracker whose NVML energy counter rises 2 J at every reading: each round costs 2 J."""

    def __init__(self):
        super().__init__(None, None)
        self.mj = 0.0

    def energy_mj(self):
        self.mj += 2000.0
        return self.mj


def test_energy_per_token_and_the_bandwidth_share():
    log = []
    m = measure.decode(ScriptedWorker("v", [20.0], log), MeteredTracker(), REGISTRY["hf-nf4"], WORKLOAD, PLAN, 0.15, 10)
    assert m.energy_j == (2.0, 2.0, 2.0)
    m = dataclasses.replace(m, bandwidth={"gb_per_s": 4.0, "weight_bytes": 1e9})  # bound: 4 tok/s
    figures = {f.metric: f for f in measure.decode_figures("hf-nf4", m)}
    assert figures["energy_j_per_token"].value == 2.0 / 8  # 2 J a round, 8 generated tokens
    assert figures["bandwidth_share_pct"].value == 100 * 20.0 / 4.0
    assert not figures["energy_j_per_token"].gated and not figures["bandwidth_share_pct"].gated


def test_without_nvml_energy_and_bandwidth_are_unavailable_with_the_reason():
    m = measure.decode(
        ScriptedWorker("v", [20.0], []), VramTracker(None, None), REGISTRY["hf-nf4"], WORKLOAD, PLAN, 0.15, 10
    )
    figures = {f.metric: f for f in measure.decode_figures("hf-nf4", m)}
    assert figures["energy_j_per_token"].value is None
    assert figures["energy_j_per_token"].unavailable == "no CUDA device: energy is not measured on the CPU"
    assert figures["bandwidth_share_pct"].value is None and "not measured" in figures["bandwidth_share_pct"].unavailable


def ratio_of_pairs(*pairs):
    """One test measured in several pairs of worker processes (each (variant rates, reference rates), 8 rounds)."""
    plan = measure.RoundPlan(rounds=8, max_rounds=8, budget_s=60.0, warmup=0)
    measured = [run(v, r, plan=plan)[0] for v, r in pairs]
    m = dataclasses.replace(measured[-1], earlier=tuple(measured[:-1]))
    ratio = next(f for f in measure.decode_figures("hf-nf4", m) if f.metric == "decode_ratio_to_ref")
    interval, each = tuple(ratio.params["interval"]), measure.pair_intervals(ratio.params)  # as perfgate.judging does
    verdict = gate.judge(ratio.samples, ratio.value, "higher", 1.0, 0.05, interval=interval, pair_intervals=each)
    return ratio, verdict


def test_the_judges_decide_a_ratio_over_pairs_of_processes_by_two_failed_pairs(tmp_path):
    from perfgate import baselines, judging

    failing, unclear = ([40.0], [50.0], 8), ([45.0, 52.0, 47.0, 53.0], [50.0], 8)  # 0.80 a round; 0.87-1.06
    short = ([40.0], [50.0], 7)  # 0.80 in 7 pairs of rounds: too few to fail on its own

    def figure(*pairs):
        plans = [measure.RoundPlan(rounds=n, max_rounds=n, budget_s=60.0, warmup=0) for _, _, n in pairs]
        measured = [run(v, r, plan=plan)[0] for (v, r, _), plan in zip(pairs, plans, strict=True)]
        m = dataclasses.replace(measured[-1], earlier=tuple(measured[:-1]))
        return next(f for f in measure.decode_figures("hf-nf4", m) if f.metric == "decode_ratio_to_ref")

    alone = figure(unclear)
    # against a baseline run's rounds (its noise counted: the baseline gate's path), and against the base in an A/B run
    params = {**alone.params, "reference_step_p10_s": alone.params["step_p10_s"]}  # the baseline run: 1.000 exactly
    key = f"hf-nf4/decode[{alone.workload}]/decode_ratio_to_ref"
    doc = {"value": 1.0, "unit": "x", "better": "higher", "samples": [1.0] * 8, "params": params}
    baseline = baselines.Baseline(tmp_path / "cpu.json", {"schema": 1, "models": {"m": {"entries": {key: doc}}}})
    judge = judging.Judge(baseline, "m", "hf-fp16", {}, {"gpu": "cpu"})
    # an A/B run of --perf-process-pairs 3: two of three pairs with their values beyond the limit
    ab_judge = judging.AbJudge({}, {}, {}, {}, lambda: [], pair_rule=gate.pair_rule(ab=True, pairs=3))
    cases = [((failing, unclear, failing), True), ((failing, unclear, unclear), False)]
    cases.append(((failing, short, unclear), False))  # the shown interval lies below the limit; one pair failed
    for verdicts, fails in cases:
        f = figure(*verdicts)
        [judged] = judge.judge([f])
        assert judged.verdict.failed == fails, (verdicts, judged.verdict)
        ab = dataclasses.replace(f, metric="decode_ratio_to_base")
        [ab_judged] = ab_judge.judge([ab])
        assert ab_judged.verdict.failed == fails
    # the default of an A/B run: each side's fastest process over three pairs (--perf-ab-rule fastest)
    default = judging.AbJudge({}, {}, {}, {}, lambda: [])
    assert default.pair_rule == gate.AB_PAIRS and default.pair_rule.fastest and default.pair_rule.pairs == 3
    # --perf-ab-rule all-but-one at its 5 pairs: four of five; three failed pairs are not yet enough, four are
    five = gate.pair_rule(ab=True, pairs=gate.PROCESS_PAIRS["all-but-one"])
    all_but_one = judging.AbJudge({}, {}, {}, {}, lambda: [], pair_rule=five)
    for pairs, fails in (((failing,) * 3, False), ((failing, unclear, failing, failing, failing), True)):
        [judged] = all_but_one.judge([dataclasses.replace(figure(*pairs), metric="decode_ratio_to_base")])
        assert judged.verdict.failed == fails


def test_a_ratio_measured_in_two_pairs_of_processes_fails_when_it_fails_in_both():
    ratio, verdict = ratio_of_pairs(([40.0], [50.0]), ([45.0], [50.0]))
    assert verdict.failed and verdict.clear  # 0.80 and 0.90: both pairs below the limit of 0.95
    assert abs(ratio.value - (0.8 * 0.9) ** 0.5) < 1e-9  # the geometric mean of the pairs' ratios
    assert [p["value"] for p in ratio.params["process_pairs"]] == pytest.approx([0.8, 0.9])
    assert len(ratio.samples) == 16  # every pair of rounds of both


def test_pairs_of_processes_that_disagree_leave_the_ratio_unclear():
    # the first pair's 0.80 was the two processes, not the code: a fresh pair runs alike
    ratio, verdict = ratio_of_pairs(([40.0], [50.0]), ([50.0], [50.0]))
    assert verdict.status == gate.PASS and not verdict.clear
    assert ratio.params["interval"][0] <= 0.8 and ratio.params["interval"][1] >= 1.0


def test_the_ratio_rounds_of_a_figure_or_a_baseline_entry():
    one = {"reference_step_p10_s": [0.04, 0.05], "step_p10_s": [0.05, 0.05]}
    assert measure.ratio_rounds(one) == [([0.04, 0.05], [0.05, 0.05])]
    two = {**one, "process_pairs": [one, {"reference_step_p10_s": [0.04], "step_p10_s": [0.04]}]}
    assert len(measure.ratio_rounds(two)) == 2  # one per pair of worker processes
    assert measure.ratio_rounds({"estimator": "fast-state p10/p10"}) == []  # the reference's ratio to itself
    assert measure.ratio_rounds({**one, "step_p10_s": [0.05]}) == []  # unequal: not a record of pairs
    assert measure.ratio_rounds({**one, "step_p10_s": [0.0, 0.05]}) == []


def test_the_baselines_noise_widens_the_ratios_interval():
    # this run: 0.80 in every pair of rounds; the baseline run: 0.89 at its fast end, from noisy rounds
    now = [([0.04] * 10, [0.05] * 10)]
    exact = ([0.05] * 10, [0.05] * 10)
    noisy = ([0.05, 0.04, 0.06, 0.05, 0.045, 0.07, 0.05, 0.055, 0.05, 0.06], [0.05] * 10)
    assert measure.ratio_interval_against(now, exact, 1.0)[0] == pytest.approx((0.8, 0.8))
    base = measure.fast_state_ratio(*noisy)
    alone = gate.judge((0.8,) * 10, 0.8, "higher", base, 0.05, interval=(0.8, 0.8))
    assert base == pytest.approx(0.89) and alone.failed  # held against the baseline's value as if it were exact
    (lo, hi), _ = measure.ratio_interval_against(now, noisy, base)
    assert lo < 0.8 < 0.95 * base < hi  # with the baseline's noise: no evidence of a regression beyond 5 %
    both = gate.judge((0.8,) * 10, 0.8, "higher", base, 0.05, interval=(lo, hi), interval_test=gate.BOOTSTRAP_BOTH)
    assert both.status == gate.PASS and not both.clear and both.test == gate.BOOTSTRAP_BOTH
    two, _ = measure.ratio_interval_against([*now, exact], exact, 1.0)
    assert two == pytest.approx((0.8, 1.0))  # pairs of worker processes: the span of theirs


class StoppedWorker(ScriptedWorker):
    """A worker whose `after`-th 'generate' is where the signal comes (SIGTERM: KeyboardInterrupt in perfgate)."""

    def __init__(self, name, rates, log, after):
        super().__init__(name, rates, log)
        self.after = after

    def call(self, op, timeout_s, **params):
        if op == "generate" and sum(1 for entry in self.log if entry == (self.name, "generate")) == self.after:
            raise KeyboardInterrupt("signal SIGTERM")
        return super().call(op, timeout_s, **params)


def test_a_decode_stopped_during_its_timed_rounds_hands_over_what_they_measured():
    log = []
    with pytest.raises(measure.MeasurementInterrupted) as stopped:  # warm-up 1, then 3 timed rounds, then the signal
        measure.decode(
            StoppedWorker("v", [20.0], log, after=4), VramTracker(None, None), REGISTRY["hf-nf4"], WORKLOAD,
            PLAN, 0.15, 10, ScriptedWorker("ref", [25.0], log), settled=lambda partial: measure.UNCLEAR,
        )  # fmt: skip
    assert isinstance(stopped.value, KeyboardInterrupt) and str(stopped.value) == "signal SIGTERM"
    assert stopped.value.variant == "hf-nf4" and len(stopped.value.partial.rounds) == 3
    assert stopped.value.partial.fast_ratio() == pytest.approx(0.8)
    log = []
    with pytest.raises(measure.MeasurementInterrupted) as stopped:  # in the second pair, after the variant's half
        measure.decode(
            ScriptedWorker("v", [20.0], log), VramTracker(None, None), REGISTRY["hf-nf4"], WORKLOAD, PLAN, 0.15, 10,
            StoppedWorker("ref", [25.0], log, after=2), settled=lambda partial: measure.UNCLEAR,
        )  # fmt: skip
    assert [entry[0] for entry in log if entry[1] == "generate"] == ["ref", "v", "ref", "v", "v"]  # warm-up, pairs
    assert [len(stopped.value.partial.rounds), len(stopped.value.partial.reference_rounds)] == [1, 1]
    assert {f.metric for f in measure.decode_figures("hf-nf4", stopped.value.partial)} >= {"decode_ratio_to_ref"}
    with pytest.raises(KeyboardInterrupt) as stopped:  # during the warm-up: nothing measured, the signal as it came
        measure.decode(
            StoppedWorker("v", [20.0], [], after=0), VramTracker(None, None), REGISTRY["hf-nf4"], WORKLOAD, PLAN,
            0.15, 10,
        )  # fmt: skip
    assert type(stopped.value) is KeyboardInterrupt


def test_a_decode_test_stopped_while_its_second_pair_of_processes_starts_keeps_the_first(monkeypatch):
    from types import SimpleNamespace

    from perfgate.session import PerfSession

    first, _ = run([20.0], [25.0])
    perf = object.__new__(PerfSession)  # only measure_decode's own logic: the measuring and restarting are stubbed
    perf.opts = {"update_baselines": False, "process_pairs": 2, "min_process_pairs": 1, "ab_rule": gate.AB_RULE}
    perf.base = None  # (the ratio to the reference)
    monkeypatch.setattr(perf, "_measure_decode_once", lambda loaded, workload, benchmark: first, raising=False)
    monkeypatch.setattr(perf, "_measure_again", lambda name, pairs: True, raising=False)

    def restart(name):
        raise KeyboardInterrupt("signal SIGTERM")

    monkeypatch.setattr(perf, "restart_with_reference", restart, raising=False)
    with pytest.raises(measure.MeasurementInterrupted) as stopped:
        perf.measure_decode(SimpleNamespace(variant=SimpleNamespace(name="hf-nf4")), WORKLOAD)
    assert stopped.value.partial == first and str(stopped.value) == "signal SIGTERM"


def test_a_ratio_over_pairs_of_processes_fails_when_two_pairs_failed():
    def judged(pairs, value):  # each pair: (lower, upper bound, pairs of rounds); its value: the interval's middle
        interval = measure.over_pairs([(lo, hi) for lo, hi, _ in pairs], value)
        each = [(lo, hi, n, (lo + hi) / 2) for lo, hi, n in pairs]
        return gate.judge((value,) * 24, value, "higher", 1.0, 0.05, interval=interval, pair_intervals=each)

    assert measure.over_pairs([(0.85, 0.90)]) == (0.85, 0.90)  # one pair: its own interval
    assert measure.over_pairs([(0.85, 0.90), (0.93, 1.02)]) == (0.85, 1.02)  # two: the span of both
    # failed, unclear, failed: the unclear pair neither clears nor confirms; two failures fail it, and what is shown
    # lies below the limit
    failed = judged([(0.85, 0.90, 8), (0.90, 1.02, 8), (0.86, 0.92, 8)], 0.89)
    assert failed.failed and failed.ci == (0.85, 0.92)
    # failed, unclear, unclear: one failure is no evidence against the code (two processes can differ that much)
    three = judged([(0.85, 0.90, 8), (0.90, 1.02, 8), (0.93, 1.01, 8)], 0.92)
    assert three.status == gate.PASS and not three.clear
    # a pair cut short (7 pairs of rounds) fails nothing alone, nor as the second failure
    assert not judged([(0.85, 0.90, 8), (0.88, 0.94, 7), (0.96, 1.05, 8)], 0.93).failed
    # two failures, but the third pair far above them pulls the value past the limit: the interval holds the value
    assert measure.over_pairs([(0.85, 0.90), (0.86, 0.91), (0.90, 1.60)], 0.97) == (0.85, 0.97)
    assert not judged([(0.85, 0.90, 8), (0.86, 0.91, 8), (0.90, 1.60, 8)], 0.97).failed


def test_each_pair_of_processes_interval_holds_its_own_value():
    params = {
        "process_pairs": [
            {"value": 0.86, "interval": [0.87, 0.93], "step_p10_s": [0.04] * 8},
            {"value": 0.95, "interval": [0.90, 0.99], "step_p10_s": [0.04] * 7},
        ]
    }
    assert measure.pair_intervals(params) == [(0.86, 0.93, 8, 0.86), (0.90, 0.99, 7, 0.95)]
    assert measure.pair_intervals({"interval": [0.9, 1.0]}) == []  # one pair: the figure's own interval decides
    now = [([0.04] * 8, [0.05] * 8), ([0.04] * 8, [0.048] * 8)]
    exact = ([0.05] * 10, [0.05] * 10)
    assert measure.pair_intervals_against(now, exact, 1.0) == [
        pytest.approx((0.8, 0.8, 8, 0.8)),
        pytest.approx((0.8333, 0.8333, 8, 0.8333), abs=1e-4),
    ]


def test_an_ab_ratio_over_pairs_of_processes_fails_when_all_but_one_pair_has_its_value_beyond_the_limit():
    def judged(values, n=8, pairs=5):  # each pair's value, with an interval 0.08 wide around it
        each = [(v - 0.04, v + 0.04, n, v) for v in values]
        value = math.exp(sum(math.log(v) for v in values) / len(values))
        interval = measure.over_pairs([(lo, hi) for lo, hi, *_ in each], value)
        rule = gate.pair_rule(ab=True, pairs=pairs)
        return gate.judge(
            (value,) * 40, value, "higher", 1.0, 0.05, interval=interval, pair_intervals=each, pair_rule=rule
        )

    # a 10 % slowdown: no pair's interval wholly below the limit (0.95), four values below it
    assert judged([0.93, 0.92, 0.94, 0.91]).failed
    assert not judged([0.93, 0.92, 0.94]).failed  # three of five: not yet
    assert not judged([0.93, 0.92, 0.94, 0.91], n=7).failed  # pairs cut short count for nothing
    assert not judged([0.93, 1.02, 0.94, 0.92, 0.99]).failed  # two of five above it
    assert judged([0.93, 0.92], pairs=3).failed  # --perf-process-pairs 3: two of three
    assert not judged([0.93, 0.92, 0.94, 0.91, 1.30]).failed  # four below, but the mean within the limit
    # the reference's rule counts whole intervals: the same values fail nothing there
    each = [(0.89, 0.97, 8, 0.93)] * 4
    assert not gate.judge((0.93,) * 40, 0.93, "higher", 1.0, 0.05, interval=(0.89, 0.97), pair_intervals=each).failed


def test_an_ab_ratio_under_the_fastest_rule_is_each_side_s_fastest_process_over_every_pair():
    # a recorded H200 canary's fast states, ms: a base process 50 % slow in the first pair put the head ahead (1.263)
    # though 10 % slower by construction; each side's fastest process sees through it
    base = [[52.0] * 8, [37.0] * 8, [34.6] * 8]
    head = [[41.1] * 8, [42.3] * 8, [39.2] * 8]
    pairs = [([b / 1000 for b in bs], [h / 1000 for h in hs]) for bs, hs in zip(base, head, strict=True)]
    assert measure.fastest_states(pairs) == pytest.approx((0.0346, 0.0392))
    assert measure.fastest_ratio(pairs) == pytest.approx(34.6 / 39.2)

    def judged(value, n=8, pairs=3, rule_pairs=3):
        each = [(value - 0.1, value + 0.1, n, value)] * pairs  # (the pairs' own values play no part)
        rule = gate.pair_rule(ab=True, pairs=rule_pairs, fastest=True)
        interval = measure.over_pairs([(lo, hi) for lo, hi, *_ in each], value)
        return gate.judge(
            (value,) * 24, value, "higher", 1.0, 0.05, interval=interval, pair_intervals=each, pair_rule=rule
        )

    assert judged(0.93).failed and judged(0.93).rule.startswith("the ratio of each side's fastest process over 3")
    assert not judged(0.93, n=7).failed and not judged(0.93, n=7).clear  # a pair cut short: undecided
    assert not judged(0.93, pairs=2).failed  # fewer pairs than the rule measures: not decided (an interrupted run)
    assert not judged(0.93, pairs=2).clear
    decided = judged(0.96)
    assert decided.status == gate.PASS and decided.clear  # every pair measured, the value within: a clear pass
    assert not judged(0.96, n=7).clear  # ... but not with a pair that cannot count, however clear its interval


def test_a_measurement_under_the_fastest_rule_reports_each_side_s_fastest_process():
    first, _ = run([20.0], [25.0])  # the variant 20 % slower than the base beside it
    second, _ = run([24.0], [24.0])
    both = dataclasses.replace(second, earlier=(first,), fastest=True)
    value, _, each = both.ratio_over_processes()
    assert value == pytest.approx(24.0 / 25.0)  # the base's fastest (25/s) against the head's fastest (24/s)
    assert [ratio for ratio, _ in each] == pytest.approx([0.8, 1.0])
    ratio = next(f for f in measure.decode_figures("hf-nf4", both) if f.metric == "decode_ratio_to_ref")
    assert ratio.value == pytest.approx(0.96)
    assert ratio.params["estimator"] == measure.FASTEST_ESTIMATOR
    assert ratio.params["fastest_processes_s"] == pytest.approx({"reference": 1 / 25.0, "variant": 1 / 24.0}, rel=0.05)
    mean = dataclasses.replace(second, earlier=(first,))  # the gate's rule: the geometric mean of the pairs' ratios
    assert mean.ratio_over_processes()[0] == pytest.approx(math.sqrt(0.8 * 1.0))
    # the interval shown: the whole span of the pairs' own intervals (over_pairs would stop at the second-lowest upper
    # bound, 1.0 here), since each side's fastest process has no interval of its own
    three = [run([24.0], [30.0])[0], run([30.0], [25.0])[0], run([27.0], [27.0])[0]]  # 0.8, 1.2, 1.0
    spanned = dataclasses.replace(three[-1], earlier=tuple(three[:-1]), fastest=True)
    value, interval, each = spanned.ratio_over_processes()
    assert value == pytest.approx(30.0 / 30.0) and interval == pytest.approx((0.8, 1.2))
    assert measure.over_pairs([i for _, i in each], value) == pytest.approx((0.8, 1.0))
    assert (
        "fastest_processes_s"
        not in next(f for f in measure.decode_figures("hf-nf4", mean) if f.metric == "decode_ratio_to_ref").params
    )


VERDICTS = {  # a pair's decode ratio against 1 with a 5 % tolerance, its interval over 8 pairs of rounds
    "pass": gate.Verdict(gate.PASS, False, 0.99, 1.0, 0.95, 0.05, -1.0, (0.94, 1.03), 8),
    "clear pass": gate.Verdict(gate.PASS, True, 1.0, 1.0, 0.95, 0.05, 0.0, (0.97, 1.03), 8),
    "unclear": gate.Verdict(gate.PASS, False, 0.97, 1.0, 0.95, 0.05, -3.0, (0.92, 1.02), 8),
    "below": gate.Verdict(gate.PASS, False, 0.93, 1.0, 0.95, 0.05, -7.0, (0.89, 0.97), 8, beyond=True),
    "fail": gate.Verdict(gate.FAIL, True, 0.88, 1.0, 0.95, 0.05, -12.0, (0.85, 0.91), 8, beyond=True),
    "no baseline": gate.Verdict(gate.NO_BASELINE, True, 0.88, None, None, 0.05, None, (0.85, 0.91), 8),
}


@pytest.mark.parametrize(
    ("ab", "verdicts", "most", "pairs", "mean_within"),
    [
        (False, ["pass"], 3, 1, False),  # passed: no second pair
        (False, ["fail", "fail"], 3, 2, False),  # failed twice: decided
        (False, ["fail", "clear pass"], 3, 2, False),  # a fresh pair runs alike: the first pair was the processes
        (False, ["fail", "unclear", "fail"], 3, 3, False),  # the third pair decides
        (False, ["fail", "unclear", "unclear"], 3, 3, False),  # --perf-process-pairs reached
        (False, ["unclear"], 3, 1, False),  # unclear but not failed: more rounds were its remedy, not more processes
        (False, ["below"], 3, 1, False),  # the reference's rule counts whole intervals
        (False, ["no baseline"], 3, 1, False),  # nothing to hold it to: one pair
        (True, ["no baseline"], 5, 1, False),
        # two failed pairs whose mean an unclear one pulls back within the limit: not failed yet, so a fourth
        (False, ["fail", "unclear", "fail", "fail"], 4, 4, True),
        (False, ["fail", "unclear", "fail"], 4, 3, False),
        # an A/B run's --perf-ab-rule all-but-one: all but one of five pairs with their values beyond the limit
        (True, ["unclear"], 5, 1, False),  # the first pair's value within the limit: it alone decides
        (True, ["below", "below", "fail", "below"], 5, 4, False),  # four below: failed
        (True, ["below", "unclear", "unclear"], 5, 3, False),  # two within the limit: four of five out of reach
        (True, ["below", "below", "clear pass"], 5, 3, False),  # a clear pass ends it
        (True, ["below", "below", "unclear", "below", "below"], 5, 5, False),
        (True, ["below", "below", "below", "below", "below"], 5, 5, True),  # (the fifth pair is the last)
        (True, ["below", "below"], 3, 2, False),  # --perf-process-pairs 3: two of three
        # --perf-min-process-pairs (most, least): at least that many, whatever the first says; then the rule again
        (True, ["unclear", "unclear", "unclear"], (5, 3), 3, False),
        (True, ["clear pass", "below", "below"], (5, 2), 2, False),
        (True, ["below", "below", "below", "below"], (5, 2), 4, False),  # the rule goes on past the least
        (False, ["fail", "clear pass", "fail"], (3, 3), 3, False),
        # ... but only where the first pair has a ratio held to something: none without a baseline or a reference
        (True, ["no baseline"], (5, 3), 1, False),
        (False, ["no ratio"], (3, 3), 1, False),
    ],
)
def test_a_ratio_is_measured_in_pairs_of_processes_until_decided(monkeypatch, ab, verdicts, most, pairs, mean_within):
    from perfgate.session import PerfSession

    perf = object.__new__(PerfSession)  # only measure_decode's own logic: the measuring and restarting are stubbed
    most, least = most if isinstance(most, tuple) else (most, 1)
    perf.opts = {"update_baselines": False, "process_pairs": most, "min_process_pairs": least}
    perf.opts["ab_rule"] = "all-but-one"  # (the fastest rule, which measures every pair, is the test below)
    perf.base = object() if ab else None
    perf.base_figures, perf.kernel_changes = {}, {}  # an A/B run keeps the base side's figures
    rule = gate.pair_rule(ab, most)
    measured = [run([20.0 + n], [25.0])[0] for n in range(len(verdicts))]
    calls, profiled = iter(measured), []

    def once(loaded, workload, benchmark, profile=True):
        profiled.append(profile)
        return next(calls)

    monkeypatch.setattr(perf, "_measure_decode_once", once, raising=False)
    by_pair = {id(m.rounds): VERDICTS.get(v) for m, v in zip(measured, verdicts, strict=True)}  # (copies share rounds)

    def verdict(name, m):
        if not m.earlier:
            return by_pair[id(m.rounds)]
        # all pairs together (gate.judge's rule): enough pairs against it fail it, unless their mean is within
        against = sum(
            rule.against(*v.ci, v.n, v.value, v.limit, True) for v in (by_pair[id(p.rounds)] for p in m.process_pairs)
        )
        return VERDICTS["fail"] if against >= rule.to_fail and not mean_within else VERDICTS["unclear"]

    monkeypatch.setattr(perf, "_ratio_verdict", verdict, raising=False)
    loaded = SimpleNamespace(variant=SimpleNamespace(name="hf-nf4"))
    monkeypatch.setattr(perf, "restart_with_reference", lambda name: loaded, raising=False)
    result = perf.measure_decode(loaded, WORKLOAD)
    assert len(result.process_pairs) == pairs
    assert profiled == [True] + [False] * (pairs - 1)  # the profiled round: the first pair's alone


def test_the_fastest_rule_measures_every_pair_whatever_the_first_says(monkeypatch):
    from perfgate.session import PerfSession

    perf = object.__new__(PerfSession)
    perf.opts = {"update_baselines": False, "process_pairs": 3, "min_process_pairs": 3, "ab_rule": "fastest"}
    perf.base = object()
    perf.base_figures, perf.kernel_changes = {}, {}
    measured = iter([run([20.0 + n], [25.0])[0] for n in range(3)])
    monkeypatch.setattr(perf, "_measure_decode_once", lambda *a, **k: next(measured), raising=False)
    monkeypatch.setattr(perf, "_ratio_verdict", lambda name, m: VERDICTS["clear pass"], raising=False)
    loaded = SimpleNamespace(variant=SimpleNamespace(name="hf-nf4"))
    monkeypatch.setattr(perf, "restart_with_reference", lambda name: loaded, raising=False)
    result = perf.measure_decode(loaded, WORKLOAD)
    assert len(result.process_pairs) == 3 and result.fastest  # a clear first pass ends nothing
    assert perf.pair_rule().fastest and perf.pair_rule().pairs == 3


class ReplayWorker(ScriptedWorker):
    """Answers 'agent_replay' with one round per turn at a fixed rate, counting the passes."""

    def call(self, op, timeout_s, **params):
        if op != "agent_replay":
            return super().call(op, timeout_s, **params)
        self.log.append((self.name, op))
        return [
            super(ReplayWorker, self).call("generate", timeout_s) | {"new_tokens": reply, "wall_s": reply / 50.0}
            for _, reply, _ in params["turns"]
        ]


@pytest.mark.parametrize(
    ("agent_rounds", "agent_max_rounds", "state", "passes"),
    [
        (1, 3, measure.UNCLEAR, 3),  # the built-in limits: an unclear verdict gets up to 3 passes
        (1, 1, measure.UNCLEAR, 1),  # the pr profile: an unclear verdict passes after one
        (1, 1, measure.SUSPECT, 3),  # ... and a latency beyond its limit still gets 3
        (1, 5, measure.SUSPECT, 5),
        (2, 1, measure.CLEAR, 2),  # --perf-agent-rounds passes are always taken
    ],
)
def test_the_agent_gets_more_passes_only_as_far_as_its_limits_and_a_suspect_latency_allow(
    agent_rounds, agent_max_rounds, state, passes
):
    from perfgate.agent import traces

    queries = traces.select(traces.load(), 2)
    log = []
    plan = measure.agent_plan(agent_rounds, agent_max_rounds, budget_s=60.0, warmup=0)
    measured = measure.agent(
        ReplayWorker("v", [50.0], log),
        VramTracker(None, None),
        REGISTRY["hf-fp16"],
        "q2",
        queries,
        plan,
        0.15,
        10,
        settled=lambda partial: state,
    )
    assert len(measured.rounds) == passes
    assert sum(1 for _, op in log if op == "agent_replay") == passes * len(queries)


class SlowerReplay(ReplayWorker):
    """A ReplayWorker whose turns take `factor` times as long; with `dies_at`, its nth call of `op` dies."""

    def __init__(self, name, log, factor=1.0, dies_at=None, op="agent_replay"):
        super().__init__(name, [50.0], log)
        self.factor, self.dies_at, self.op, self.calls = factor, dies_at, op, 0

    def call(self, op, timeout_s, **params):
        if op == self.op:
            self.calls += 1
            if self.calls == self.dies_at:
                raise WorkerError("died", "worker exited with code -9")
        answer = super().call(op, timeout_s, **params)
        if op == "agent_replay":
            return [r | {"wall_s": r["wall_s"] * self.factor} for r in answer]
        return answer


def _ab_agent(head, base, failed=None, settled=None):
    from perfgate.agent import traces

    queries = traces.select(traces.load(), 3)  # the pull-request workload: 3 questions, 10 turns
    side = measure.AgentBase(base, REGISTRY["hf-fp16"], failed or (lambda exc: f"the base side failed: {exc}"))
    plan = measure.agent_plan(1, 1, budget_s=60.0, warmup=0)
    args = (VramTracker(None, None), REGISTRY["hf-fp16"], "q3", queries, plan, 0.15, 10)
    return measure.agent(head, *args, settled=settled, base=side)


def _agent_ratio(measured):
    ratio = next(f for f in measure.agent_figures("hf-fp16", measured) if f.metric == ab.AGENT_RATIO)
    tolerance = gate.tolerance_for(ab.AGENT_RATIO, {})
    interval = tuple(ratio.params["interval"]) if ratio.value is not None else None
    return ratio, ratio.value and gate.judge(ratio.samples, ratio.value, "lower", 1.0, tolerance, interval=interval)


def _alternating(turns):
    return [side for k in range(turns) for side in (("base", "head") if k % 2 == 0 else ("head", "base"))]


def test_an_ab_agent_replay_alternates_the_sides_turn_by_turn_and_is_judged_over_the_turns():
    log = []
    factor = 1 + 1.5 * gate.tolerance_for(ab.AGENT_RATIO, {})  # a head slower than the tolerance allows
    measured = _ab_agent(SlowerReplay("head", log, factor=factor), SlowerReplay("base", log))
    # a turn at a time, the side that goes first swapped each turn: base, head, head, base, base, head, ...
    assert [name for name, op in log if op == "agent_replay"] == _alternating(10)
    assert measured.base is not None and len(measured.base.rounds[0]) == len(measured.rounds[0]) == 3
    ratio, verdict = _agent_ratio(measured)
    assert ratio.value == pytest.approx(factor) and len(ratio.samples) == 10  # a sample a turn: enough to fail
    assert verdict.failed
    ratio, verdict = _agent_ratio(_ab_agent(SlowerReplay("head", []), SlowerReplay("base", [])))
    assert ratio.value == pytest.approx(1.0) and verdict.status == gate.PASS and verdict.clear


class CoreBound(SlowerReplay):
    """A SlowerReplay whose turns take 1.3 times as long on core 14 than on any other, starting on `core`."""

    def __init__(self, name, log, core, dies_at=None):
        super().__init__(name, log, dies_at=dies_at)
        self.core = core

    def call(self, op, timeout_s, **params):
        if op == "pin":
            self.core = params["core"]
        answer = super().call(op, timeout_s, **params)
        if op == "agent_replay" and self.core == 14:
            return [r | {"wall_s": r["wall_s"] * 1.3} for r in answer]
        return answer


def _core_bound_agent(cores, passes=1, base_dies_at=None):
    from perfgate.agent import traces

    queries = traces.select(traces.load(), 3)  # 10 turns
    plan = measure.agent_plan(passes, passes, budget_s=60.0, warmup=0)
    args = (VramTracker(None, None), REGISTRY["hf-fp16"], "q3", queries, plan, 0.15, 10)
    log = []
    side = measure.AgentBase(CoreBound("base", log, 15, base_dies_at), REGISTRY["hf-fp16"], str)
    measured = measure.agent(CoreBound("head", log, 14), *args, base=side, cores=cores)
    return measured, [(entry[0], entry[2]["core"]) for entry in log if entry[1] == "pin"]


def test_an_ab_agent_replay_swaps_the_sides_cores_so_a_slow_core_weighs_on_both():
    pinned, pins = _core_bound_agent((15, 14))
    head = [14, 15, 15, 14, 14, 15, 15, 14, 14, 15]  # 5 turns on each core, crossed with who goes first
    assert list(pinned.cores) == head
    # before each turn both sides are pinned, the base to the other core; after the pass, each back on its own
    assert pins == [p for h in head for p in (("base", 29 - h), ("head", h))] + [("base", 15), ("head", 14)]
    ratio, verdict = _agent_ratio(pinned)
    assert ratio.params["cores"] == head and verdict.status == gate.PASS
    # on fixed cores the slower core is the head's for the whole replay
    fixed, pins = _core_bound_agent(None)
    assert fixed.cores == () and pins == [] and _agent_ratio(fixed)[0].value == pytest.approx(1.3)
    assert abs(math.log(ratio.value)) < math.log(1.3) / 5, ratio.value


def test_a_base_gone_in_the_agent_replay_leaves_the_head_on_its_own_core():
    # the base dies in its 3rd turn of the first pass (of two, as --perf-agent-rounds 2 asks): the head goes on alone,
    # back on its own core for the rest of that pass and the next, and every turn's core is kept
    measured, pins = _core_bound_agent((15, 14), passes=2, base_dies_at=3)
    assert measured.no_base and len(measured.rounds) == 2
    assert list(measured.cores) == [14, 15, 15] + [14] * 17
    # the first three turns pinned both sides; after the base died, the head alone, on its own core
    assert [name for name, _ in pins[:6]] == ["base", "head"] * 3 and set(pins[6:]) == {("head", 14)}


def test_further_agent_passes_run_on_both_sides_and_are_decided_with_the_base_in_view():
    log, seen = [], []

    def suspect(partial):
        seen.append(len(partial.base.rounds) if partial.base else None)
        return measure.SUSPECT

    measured = _ab_agent(SlowerReplay("head", log, factor=2.0), SlowerReplay("base", log), settled=suspect)
    assert len(measured.rounds) == len(measured.base.rounds) == measure.AGENT_SUSPECT_ROUNDS
    assert seen == [1, 2]  # after each pass, the base's passes so far beside the head's
    # the alternation runs on across passes: 10 turns a pass, the first side swapped each turn
    assert [name for name, op in log if op == "agent_replay"] == _alternating(30)


@pytest.mark.parametrize(
    ("op", "dies_at", "passes", "base_passes", "base_turns"),
    [
        ("agent_replay", 3, 1, 0, 2),  # in the first pass: the head's pass goes on alone
        ("agent_replay", 12, 3, 1, 11),  # in the second (of three: suspect): its complete first pass is kept
        ("reset_memory", 1, 1, 0, 0),  # before anything: its memory is not tracked
        ("generate", 1, 1, 0, 0),  # in its warm-up
        ("memory", 1, 3, 3, 30),  # after all of its passes: the passes are kept, the failure still said
    ],
)
def test_a_base_that_dies_during_the_agent_replay_ends_the_base_side_alone(
    op, dies_at, passes, base_passes, base_turns
):
    log, told = [], []

    def failed(exc):
        told.append(exc.kind)
        return f"the base side failed: {exc.message}"

    base = SlowerReplay("base", log, dies_at=dies_at, op=op)
    measured = _ab_agent(
        SlowerReplay("head", log), base, failed, lambda partial: measure.SUSPECT if passes > 1 else measure.CLEAR
    )
    assert told == ["died"]  # the session releases a worker that died, and fails the head's test saying so
    assert measured.no_base == "the base side failed: worker exited with code -9"
    assert len(measured.rounds) == passes and all(sum(map(len, r)) == 10 for r in measured.rounds)  # the head's, whole
    assert (len(measured.base.rounds) if measured.base else 0) == base_passes  # complete passes are kept
    # nothing asked of the base after it died (the turn it died in is not logged)
    assert sum(1 for name, what in log if name == "base" and what == "agent_replay") == base_turns
    assert base.calls == dies_at
    ratio, _ = _agent_ratio(measured)
    assert ratio.value is None and ratio.unavailable == measured.no_base


def test_the_whole_stack_canary_slows_the_head_s_agent_turns_alone():
    from perfgate.agent import traces

    log = []
    queries = traces.select(traces.load(), 3)
    side = measure.AgentBase(SlowerReplay("base", log), REGISTRY["hf-fp16"], str)
    plan = measure.agent_plan(1, 1, budget_s=60.0, warmup=0)
    args = (VramTracker(None, None), REGISTRY["hf-fp16"], "q3", queries, plan, 0.0, 10)
    measured = measure.agent(SlowerReplay("head", log), *args, base=side, stack_slowdown=0.10)
    assert measured.step_delay_s > 0 and measured.base.step_delay_s == 0
    assert {name for name, op, *_ in log if op == "set_step_delay"} == {"head"}
    # sized after the warm-up and set before the first turn, and left on for every turn
    delays = [i for i, (name, op, *_) in enumerate(log) if op == "set_step_delay"]
    first_turn = next(i for i, (name, op, *_) in enumerate(log) if op == "agent_replay")
    assert len(delays) == 2 and delays[-1] < first_turn


def test_a_canary_variant_measured_in_an_ab_run_is_slowed_on_the_head_alone():
    from perfgate.agent import traces

    log = []
    canary = REGISTRY["hf-fp16-slow"]
    side = measure.AgentBase(SlowerReplay("base", log), canary, str)
    plan = measure.agent_plan(1, 1, budget_s=60.0, warmup=0)
    args = (VramTracker(None, None), canary, "q3", traces.select(traces.load(), 3), plan, 0.15, 10)
    measured = measure.agent(SlowerReplay("head", log), *args, base=side)
    assert measured.step_delay_s > 0 and measured.base.step_delay_s == 0  # as the decode test slows it


@pytest.mark.parametrize(
    ("variant", "new_tokens"),
    [("hf-fp16", measure.AGENT_WARMUP_TOKENS), ("hf-bf16-static", 76), ("hf-fp16-slow", measure.AGENT_WARMUP_TOKENS)],
)
def test_the_agent_warms_up_at_its_longest_turn_s_length_with_the_whole_reply_only_for_a_static_cache(
    variant, new_tokens
):
    from perfgate.agent import traces

    queries = traces.select(traces.load(), 3)
    longest = max((q.longest for q in queries), key=lambda t: t.total_tokens)
    calls = []

    class Logged(ReplayWorker):
        def call(self, op, timeout_s, **params):
            if op == "generate":
                calls.append(params)
            return super().call(op, timeout_s, **params)

    plan = measure.agent_plan(1, 1, budget_s=60.0, warmup=1)
    measure.agent(Logged("v", [50.0], []), VramTracker(None, None), REGISTRY[variant], "q3", queries, plan, 0.15, 10)
    assert calls[0]["new_tokens"] == new_tokens  # (the longest turn, q03's last, replies in 76)
    assert calls[0]["prompt_tokens"] + calls[0]["new_tokens"] == longest.total_tokens
    if REGISTRY[variant].step_delay:  # the canary's delay is sized on the longest turn's whole reply, as before
        whole = {"prompt_tokens": longest.prompt_tokens, "new_tokens": longest.reply_tokens}
        assert calls[1:4] == [whole] * 3


def test_the_agents_decode_rate_counts_the_steps_after_each_turns_first_token():
    from perfgate.agent.traces import Query, Turn
    from perfgate.generation import Round
    from perfgate.trackers import VramPeak

    def turn(ttft_s: float, decode_s: float, new_tokens: int) -> Round:
        return Round(ttft_s, decode_s, new_tokens, (new_tokens - 1) / decode_s, 0.0, ttft_s + decode_s + 0.01, 0.0)

    queries = (Query("q01", (Turn(600, 3, 0), Turn(700, 5, 600))),)
    passes = (((turn(0.5, 0.2, 3), turn(0.6, 0.8, 5)),), ((turn(0.5, 0.3, 3), turn(0.6, 0.4, 5)),))
    m = measure.AgentMeasurement("q1", queries, passes, VramPeak(None, None, 0), None, 0.0)
    figures = {f.metric: f for f in measure.agent_figures("hf-fp32", m)}
    # 2 + 4 steps a pass over 1.0 and 0.7 s of steps: the prefills (ttft) and the time around generate left out
    assert figures["agent_decode_tok_per_s"].value == pytest.approx(12 / 1.7)
    assert figures["agent_gen_tok_per_s"].value == pytest.approx(
        16 / (0.5 + 0.2 + 0.6 + 0.8 + 0.5 + 0.3 + 0.6 + 0.4 + 0.04)
    )
    # each turn's own rate, the median over passes: 2 / 0.2 and 2 / 0.3; 4 / 0.8 and 4 / 0.4
    assert figures["agent_query_p50_s"].params["turn_decode_tok_per_s"] == pytest.approx([8.333, 7.5], rel=1e-3)


def test_a_ratio_measured_again_keeps_the_first_pairs_profiled_round():
    """Later pairs of processes are not profiled (perfgate.session): the device figures, head and base, are the
    first pair's, and say so."""
    plan = measure.RoundPlan(rounds=4, max_rounds=4, budget_s=60.0, warmup=0)
    first, second = (run([40.0], [50.0], plan=plan)[0] for _ in range(2))
    summary = {"device_ms_per_token": 2.0, "device_ms_each_token": [2.0, 2.0], "kernels_per_token": 7.0}
    first = dataclasses.replace(
        first, beside="base", profile=summary, reference_profile={**summary, "kernels_per_token": 6.0}, test_s=9.0
    )
    m = dataclasses.replace(second, beside="base", test_s=5.0, earlier=(first,))
    assert m.profiled is first and second.profiled is second
    head = {f.metric: f for f in measure.decode_figures("hf-nf4", m)}
    assert head["kernels_per_token"].value == 7.0 and head["kernels_per_token"].params["profiled_pair"] == 1
    assert head["device_ms_per_token"].samples == (2.0, 2.0)
    base = {f.metric: f for f in measure.decode_figures("hf-nf4", m.base_view())}
    assert base["kernels_per_token"].value == 6.0 and base["kernels_per_token"].params["profiled_pair"] == 1
    assert base["profiling_overhead_pct"].params["test_s"] == 9.0  # the profiled pair's, not the last one's
    assert "kernels_per_token" not in {f.metric for f in measure.decode_figures("hf-nf4", second)}  # not asked
