from dataclasses import replace

import pytest

from perfgate import figures as fig
from perfgate import gate, judging, measure

STEADY = (100.0, 101.0, 99.0, 100.5, 99.5, 100.2, 99.8, 100.1)


def test_within_tolerance_passes_clearly():
    v = gate.judge(STEADY, 100.0, "higher", 104.0, 0.10, baseline_samples=(104.0, 103.0, 105.0, 104.5, 103.5))
    assert v.status == gate.PASS and v.clear
    assert v.limit == pytest.approx(93.6) and v.delta_pct == pytest.approx(-100 * 4 / 104)


def test_beyond_tolerance_fails_clearly():
    slow = tuple(x * 0.8 for x in STEADY)
    v = gate.judge(slow, 80.0, "higher", 100.0, 0.10, baseline_samples=STEADY)
    assert v.failed and v.clear and v.test == "mann-whitney" and v.p_worse < gate.ALPHA


def test_one_slow_round_does_not_fail():
    one_off = (*STEADY[:-1], 40.0)  # a hiccup: one round at 40 % speed
    v = gate.judge(one_off, 100.0, "higher", 100.0, 0.10, baseline_samples=STEADY)
    assert v.status == gate.PASS


def test_lower_is_better_mirrors():
    ttft = (0.10, 0.11, 0.10, 0.105, 0.10, 0.102)
    assert gate.judge(ttft, 0.10, "lower", 0.10, 0.2, baseline_samples=ttft).status == gate.PASS
    slow = tuple(t * 1.5 for t in ttft)
    v = gate.judge(slow, 0.15, "lower", 0.10, 0.2, baseline_samples=ttft)
    assert v.failed and v.limit == pytest.approx(0.12)


def test_too_few_rounds_are_unclear_not_failed():
    v = gate.judge((80.0, 81.0), 80.5, "higher", 100.0, 0.10, baseline_samples=STEADY)
    assert v.status == gate.PASS and not v.clear  # the session measures more before it may fail


def test_single_valued_baseline_uses_a_sign_test():
    below = (0.86,) * 7
    v = gate.judge(below, 0.86, "higher", 1.0, 0.05)
    assert v.failed and v.test == "sign" and v.p_worse == pytest.approx(1 / 128)
    v = gate.judge(below[:6], 0.86, "higher", 1.0, 0.05)
    assert not v.failed and not v.clear  # 6 of 6 below: p = 1/64, not yet evidence at 1 %


def test_a_single_measurement_is_compared_exactly():
    assert gate.judge((1060.0,), 1060.0, "lower", 1000.0, 0.05).failed
    v = gate.judge((1040.0,), 1040.0, "lower", 1000.0, 0.05)
    assert v.status == gate.PASS and v.clear and v.test == "exact"


def test_no_baseline_and_unavailable():
    assert gate.judge(STEADY, 100.0, "higher", None, 0.1).status == gate.NO_BASELINE
    assert gate.judge((), None, "lower", 100.0, 0.1).status == gate.UNAVAILABLE


def test_tolerance_rules():
    rules = gate.parse_tolerances("decode_tok_per_s=20%, *vram*=0.03")
    assert rules == {"decode_tok_per_s": 0.2, "*vram*": 0.03}
    assert gate.tolerance_for("peak_vram_mib", rules, stored=0.05) == 0.03  # the command line wins
    assert gate.tolerance_for("ttft_s", rules, stored=0.3) == 0.3  # then the baseline's own
    assert gate.tolerance_for("ttft_s", {}) == 0.70  # then the default
    assert gate.tolerance_for("load_peak_vram_mib", {}) == 0.05  # memory is held tighter than timing
    per_variant = gate.parse_tolerances("decode_ratio_to_ref=5%,hf-bf16-static/decode_ratio_to_ref=15%,unsloth-*/*=9%")
    assert gate.tolerance_for("decode_ratio_to_ref", per_variant, variant="hf-bf16-static") == 0.15  # named wins
    assert gate.tolerance_for("decode_ratio_to_ref", per_variant, variant="hf-nf4") == 0.05
    assert gate.tolerance_for("ttft_s", per_variant, stored=0.7, variant="unsloth-4bit") == 0.09
    assert gate.tolerance_for("ttft_s", per_variant, stored=0.7, variant="hf-nf4") == 0.7
    # a variant's own (perfgate.variants): below the command line and the baseline's stored one, above the default
    assert gate.tolerance_for("device_ms_per_token", {}, variant="hf-bf16-static") == 0.08
    assert gate.tolerance_for("device_ms_per_token", {}, variant="hf-bf16") == 0.03
    assert gate.tolerance_for("device_ms_per_token", {}, stored=0.03, variant="hf-bf16-static") == 0.03
    assert gate.tolerance_for("device_ms_per_token", {"*": 0.05}, variant="hf-bf16-static") == 0.05
    with pytest.raises(ValueError, match="METRIC=PERCENT"):
        gate.parse_tolerances("20%")
    with pytest.raises(ValueError, match="below 100 %"):
        gate.parse_tolerances("ttft_s=150%")


def test_an_interval_decides_the_ratio_and_needs_enough_rounds_to_fail():
    enough = (0.85,) * gate.MIN_INTERVAL_SAMPLES_TO_FAIL
    below = gate.judge(enough, 0.85, "higher", 1.0, 0.05, interval=(0.83, 0.88))
    assert below.failed and below.clear and below.test == "bootstrap" and below.ci == (0.83, 0.88)
    few = gate.judge(enough[:3], 0.85, "higher", 1.0, 0.05, interval=(0.83, 0.88))
    assert few.status == gate.PASS and not few.clear  # measured further before it may fail
    straddling = gate.judge(enough, 0.97, "higher", 1.0, 0.05, interval=(0.90, 1.04))
    assert straddling.status == gate.PASS and not straddling.clear
    within = gate.judge(enough, 1.0, "higher", 1.0, 0.05, interval=(0.97, 1.02))
    assert within.status == gate.PASS and within.clear
    latency = gate.judge(enough, 1.3, "lower", 1.0, 0.10, interval=(1.2, 1.4))
    assert latency.failed and latency.clear


def test_an_unclear_figure_already_beyond_its_limit_is_suspect():
    enough = (0.88,) * gate.MIN_INTERVAL_SAMPLES_TO_FAIL
    leaning = gate.judge(enough, 0.878, "higher", 1.0, 0.05, interval=(0.844, 0.962))  # the H200 canary of 07:29
    assert leaning.status == gate.PASS and not leaning.clear and leaning.beyond and leaning.suspect
    straddling = gate.judge(enough, 0.97, "higher", 1.0, 0.05, interval=(0.90, 1.04))
    assert not straddling.clear and not straddling.suspect  # unclear, but its value is within the limit
    assert not gate.judge(enough, 0.85, "higher", 1.0, 0.05, interval=(0.83, 0.88)).suspect  # failed: not suspect
    slower = gate.judge((0.125, 0.13), 0.127, "lower", 0.10, 0.2, baseline_samples=(0.10,) * 6)  # too few rounds
    assert slower.status == gate.PASS and not slower.clear and slower.suspect  # latency: beyond means above
    assert not gate.judge(STEADY, 100.0, "higher", 104.0, 0.10, baseline_samples=STEADY).suspect  # clear pass


def test_an_agent_query_fails_only_when_every_one_of_its_ten_turns_is_beyond_the_limit():
    # the per-turn paired sign test (perfgate.measure's agent figures): 10 of 10 turns beyond: p = 1/1024 < ALPHA;
    # 9 of 10: p = 11/1024, above it, so beyond its limit but unclear (tests/test_agent_suite.py's canary)
    then = (1.0,) * 10
    slow = (1.8,) * 10
    v = gate.judge(slow, 1.8, "lower", 1.0, 0.10, pairs=(slow, then))
    assert (v.status, v.clear, v.test) == (gate.FAIL, True, "paired sign") and v.p_worse < gate.ALPHA
    one_prefill_turn = (1.8,) * 9 + (1.02,)
    v = gate.judge(one_prefill_turn, 1.8, "lower", 1.0, 0.10, pairs=(one_prefill_turn, then))
    assert (v.status, v.clear, v.beyond) == (gate.PASS, False, True)
    assert v.short == 1  # one turn short of failing: more passes can fail it (perfgate.judging.Judged.futile)
    assert gate.judge(slow, 1.8, "lower", 1.0, 0.10, pairs=(slow, then)).short == 0


def test_an_agent_query_far_from_failing_turn_by_turn_gets_no_more_passes():
    # an H200 start's host 14-45 % slower than the baseline's: the query's value beyond its limit, 3 of 10 turns
    then = (1.0,) * 10
    now = (1.5,) * 3 + (1.05,) * 7
    figure = fig.Figure("hf-bf16", "agent", "q3", "agent_query_p50_s", "s", "lower", True, 1.5)
    far = judging.Judged(figure, gate.judge(now, 1.5, "lower", 1.0, 0.25, pairs=(now, then)), "key")
    assert far.verdict.suspect and far.verdict.short == 7 and far.futile
    assert judging.settle_state([far]) == measure.UNCLEAR  # one pass, not the suspect's three
    near = (1.5,) * 8 + (1.05,) * 2
    close = replace(far, verdict=gate.judge(near, 1.5, "lower", 1.0, 0.25, pairs=(near, then)))
    assert close.verdict.short == gate.MAX_ITEMS_SHORT and not close.futile
    assert judging.settle_state([close]) == measure.SUSPECT
    few = (1.5,) * 6  # six turns: no count of them can fail the sign test at ALPHA
    none = replace(far, verdict=gate.judge(few, 1.5, "lower", 1.0, 0.25, pairs=(few, (1.0,) * 6)))
    assert none.verdict.short is None and none.futile
