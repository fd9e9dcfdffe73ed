import math

import pytest

from perfgate import stats


def test_median_odd_and_even():
    assert stats.median([3, 1, 2]) == 2
    assert stats.median([4, 1, 3, 2]) == 2.5


def test_mean_stdev_cv_exact():
    values = [2, 4, 4, 4, 5, 5, 7, 9]
    assert stats.mean(values) == 5
    assert stats.stdev(values) == pytest.approx(math.sqrt(32 / 7))
    assert stats.cv(values) == pytest.approx(math.sqrt(32 / 7) / 5)


def test_single_sample_has_no_spread():
    assert stats.stdev([7.0]) == 0.0
    assert stats.cv([7.0]) == 0.0


def test_percentile_matches_linear_interpolation():
    values = [1, 2, 3, 4, 5, 6, 7, 8, 9, 10]
    assert stats.percentile(values, 50) == 5.5
    assert stats.percentile(values, 95) == pytest.approx(9.55)
    assert stats.percentile(values, 0) == 1
    assert stats.percentile(values, 100) == 10


def test_bad_input_is_refused():
    with pytest.raises(ValueError, match="no samples"):
        stats.median([])
    with pytest.raises(ValueError, match="NaN"):
        stats.mean([1.0, float("nan")])
    with pytest.raises(ValueError, match="percentile"):
        stats.percentile([1.0], 101)


def test_summary_of():
    s = stats.Summary.of([10.0, 12.0, 11.0])
    assert (s.n, s.median, s.min, s.max) == (3, 11.0, 10.0, 12.0)
    assert s.cv == pytest.approx(1 / 11)


def test_median_ci_exact_ranks():
    # n = 10: P(B <= 1) = 11/1024, so [x(2), x(9)] covers with 1 - 22/1024 = 97.9 %; [x(3), x(8)] only 89.1 %
    lo, hi, conf = stats.median_ci(list(range(1, 11)))
    assert (lo, hi) == (2, 9)
    assert conf == pytest.approx(1 - 22 / 1024)


def test_median_ci_with_few_samples_is_min_max_at_lower_confidence():
    lo, hi, conf = stats.median_ci([5.0, 1.0, 3.0])
    assert (lo, hi) == (1.0, 5.0) and conf == pytest.approx(0.75)
    assert stats.median_ci([4.0]) == (4.0, 4.0, 0.0)


def test_bootstrap_interval_is_reproducible_and_covers_the_estimate():
    values = [1.0, 1.1, 0.9, 1.05, 0.95, 1.2, 0.8, 1.0, 1.02, 0.98]

    def middle(idx):
        return stats.median([values[i] for i in idx])

    lo, hi = stats.bootstrap_interval(len(values), middle, confidence=0.9, seed=3)
    assert (lo, hi) == stats.bootstrap_interval(len(values), middle, confidence=0.9, seed=3)
    assert lo <= stats.median(values) <= hi and lo < hi
    assert stats.bootstrap_interval(4, lambda idx: 7.0) == (7.0, 7.0)
    with pytest.raises(ValueError, match="no samples"):
        stats.bootstrap_interval(0, middle)


def test_a_two_sample_bootstrap_carries_the_noise_of_both():
    now, then = [1.0] * 10, [0.8, 1.25, 1.0, 0.9, 1.1, 1.0, 0.85, 1.2, 1.0, 0.95]

    def quotient(pick_now, pick_then):
        return stats.median([now[i] for i in pick_now]) / stats.median([then[i] for i in pick_then])

    lo, hi = stats.bootstrap_interval_of_sets((10, 10), quotient, seed=5)
    assert (lo, hi) == stats.bootstrap_interval_of_sets((10, 10), quotient, seed=5)
    assert lo < 1.0 < hi  # exact now, noisy then: the noise is the baseline's alone
    assert stats.bootstrap_interval_of_sets((3, 4), lambda a, b: len(a) * 10 + len(b)) == (34, 34)  # each its own
    with pytest.raises(ValueError, match="no samples"):
        stats.bootstrap_interval_of_sets((3, 0), quotient)


def test_sign_test_short_counts_the_items_still_needed_below_the_limit():
    # 10 items: only 10 of 10 below gives p = 1/1024 < 0.01 (9 of 10: 11/1024)
    assert stats.sign_test_short([-1.0] * 10, 0.0, 0.01) == 0
    assert stats.sign_test_short([-1.0] * 9 + [1.0], 0.0, 0.01) == 1
    assert stats.sign_test_short([-1.0] * 3 + [1.0] * 7, 0.0, 0.01) == 7
    assert stats.sign_test_short([-1.0] * 3 + [0.0] * 7, 0.0, 0.01) is None  # ties dropped: 3 items can never
    assert stats.sign_test_short([-1.0] * 12 + [1.0] * 8, 0.0, 0.01) == 4  # 20 items: 15 below, p = 0.021; 16, 0.006
