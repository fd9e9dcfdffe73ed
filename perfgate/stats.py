"""Small pure statistics over measured samples. No torch here: these run and are tested anywhere."""

from __future__ import annotations

import math
import random
from collections.abc import Callable, Sequence
from dataclasses import dataclass


def _checked(values: Sequence[float]) -> list[float]:
    data = [float(v) for v in values]
    if not data:
        raise ValueError("no samples")
    if any(math.isnan(v) for v in data):
        raise ValueError(f"NaN among samples: {data}")
    return data


def median(values: Sequence[float]) -> float:
    data = sorted(_checked(values))
    mid = len(data) // 2
    return data[mid] if len(data) % 2 else (data[mid - 1] + data[mid]) / 2


def mean(values: Sequence[float]) -> float:
    data = _checked(values)
    return math.fsum(data) / len(data)


def stdev(values: Sequence[float]) -> float:
    """Sample standard deviation (n - 1); 0.0 for a single sample."""
    data = _checked(values)
    if len(data) < 2:
        return 0.0
    m = mean(data)
    return math.sqrt(math.fsum((v - m) ** 2 for v in data) / (len(data) - 1))


def cv(values: Sequence[float]) -> float:
    """Coefficient of variation: stdev / |mean|. A mean of 0 gives 0.0 when all samples are 0, else inf."""
    m = mean(values)
    s = stdev(values)
    if m == 0:
        return 0.0 if s == 0 else math.inf
    return s / abs(m)


def percentile(values: Sequence[float], q: float) -> float:
    """Linear-interpolated percentile (q in [0, 100]), the same rule as numpy's default."""
    if not 0 <= q <= 100:
        raise ValueError(f"percentile q must be within [0, 100], got {q}")
    data = sorted(_checked(values))
    pos = (len(data) - 1) * q / 100
    lo = math.floor(pos)
    hi = min(lo + 1, len(data) - 1)
    return data[lo] + (data[hi] - data[lo]) * (pos - lo)


@dataclass(frozen=True)
class Summary:
    """The spread kept with every figure: the median is the figure, the rest says how far to trust it."""

    n: int
    median: float
    mean: float
    min: float
    max: float
    stdev: float
    cv: float

    @classmethod
    def of(cls, values: Sequence[float]) -> Summary:
        data = _checked(values)
        return cls(
            n=len(data),
            median=median(data),
            mean=mean(data),
            min=min(data),
            max=max(data),
            stdev=stdev(data),
            cv=cv(data),
        )


def median_ci(values: Sequence[float], confidence: float = 0.95) -> tuple[float, float, float]:
    """A distribution-free confidence interval for the median: (low, high, achieved confidence).

    With the samples sorted, [x(k), x(n+1-k)] covers the median with probability 1 - 2 * P(B <= k - 1), B being
    Binomial(n, 1/2). The widest k that still reaches `confidence` is taken; with too few samples to reach it
    (n < 6 for 95 %), the interval is [min, max] and the achieved confidence is lower, as returned. No
    assumption about the shape of the distribution: timings on a noisy machine are skewed and heavy-tailed.
    """
    data = sorted(_checked(values))
    n = len(data)
    if n == 1:
        return data[0], data[0], 0.0
    best_k, best_conf = 1, _coverage(n, 1)
    for k in range(2, n // 2 + 1):
        conf = _coverage(n, k)
        if conf < confidence:
            break
        best_k, best_conf = k, conf
    return data[best_k - 1], data[n - best_k], best_conf


def _coverage(n: int, k: int) -> float:
    tail = math.fsum(math.comb(n, i) for i in range(k)) / 2**n
    return 1 - 2 * tail


def mann_whitney_less(x: Sequence[float], y: Sequence[float]) -> float:
    """One-sided p-value that values drawn like `x` tend to be smaller than values drawn like `y` (the
    Mann-Whitney U test). Ties count one half. Exact for small samples (n*m <= 2500), normal approximation with
    tie and continuity correction above that. Rank-based: it does not care how skewed the timings are."""
    xs, ys = _checked(x), _checked(y)
    n, m = len(xs), len(ys)
    u = math.fsum(1.0 if a > b else 0.5 if a == b else 0.0 for a in xs for b in ys)  # small when x is smaller
    if n * m <= 2500:
        counts = _u_distribution(n, m)
        total = math.fsum(counts)
        return min(1.0, math.fsum(counts[: math.floor(u) + 1]) / total)
    ranks = _midranks(xs + ys)
    ties = math.fsum(t**3 - t for t in _tie_sizes(xs + ys))
    mu = n * m / 2
    sigma = math.sqrt(n * m / 12 * ((n + m + 1) - ties / ((n + m) * (n + m - 1))))
    if sigma == 0:
        return 1.0
    u_rank = math.fsum(ranks[:n]) - n * (n + 1) / 2
    z = (u_rank - mu + 0.5) / sigma
    return 0.5 * math.erfc(-z / math.sqrt(2))


def sign_test_less(x: Sequence[float], limit: float) -> float:
    """One-sided p-value that the median of what `x` samples is below `limit` (ties with the limit dropped)."""
    below, n = _sign_counts(x, limit)
    return _upper_tail(n, below)


def sign_test_short(x: Sequence[float], limit: float, alpha: float) -> int | None:
    """How many more of `x` would have to lie below `limit` (taken from those above it) for sign_test_less to fall
    below `alpha`: 0 where it already does; None where no count of these samples can (too few not tied)."""
    below, n = _sign_counts(x, limit)
    for needed in range(n + 1):
        if _upper_tail(n, needed) < alpha:
            return max(0, needed - below)
    return None


def _sign_counts(x: Sequence[float], limit: float) -> tuple[int, int]:
    """(how many of `x` lie below `limit`, how many are not tied with it): what a sign test counts."""
    data = _checked(x)
    below = sum(v < limit for v in data)
    return below, below + sum(v > limit for v in data)


def _upper_tail(n: int, k: int) -> float:
    """P(at least k of n fair coin tosses come up heads): a sign test's p-value for k of n below (1.0 for n = 0)."""
    return math.fsum(math.comb(n, i) for i in range(k, n + 1)) / 2**n


def _u_distribution(n: int, m: int) -> list[int]:
    """Counts of each U value over all arrangements: the coefficients of the Gaussian binomial [n+m, n]_q."""
    # dp[j][u]: ways for j of the x's among the first i values, built up one value at a time
    dp = [[0] * (n * m + 1) for _ in range(n + 1)]
    dp[0][0] = 1
    for i in range(1, n + m + 1):
        for j in range(min(i, n), 0, -1):
            ys_before = i - j  # a new x placed after (i - j) y's beats each of them
            if ys_before > m:
                continue
            row, prev = dp[j], dp[j - 1]
            for u in range(n * m, ys_before - 1, -1):
                row[u] += prev[u - ys_before]
    return dp[n]


def _midranks(values: list[float]) -> list[float]:
    order = sorted(range(len(values)), key=values.__getitem__)
    ranks = [0.0] * len(values)
    i = 0
    while i < len(order):
        j = i
        while j + 1 < len(order) and values[order[j + 1]] == values[order[i]]:
            j += 1
        for k in range(i, j + 1):
            ranks[order[k]] = (i + j) / 2 + 1
        i = j + 1
    return ranks


def _tie_sizes(values: list[float]) -> list[int]:
    counts: dict[float, int] = {}
    for v in values:
        counts[v] = counts.get(v, 0) + 1
    return [c for c in counts.values() if c > 1]


def bootstrap_interval(
    count: int,
    estimate: Callable[[Sequence[int]], float],
    confidence: float = 0.98,
    resamples: int = 1000,
    seed: int = 0,
) -> tuple[float, float]:
    """A percentile-bootstrap interval of `estimate`, which computes a figure from the items it is given by index
    (0..count-1, drawn with replacement). Items are resampled whole (a pair of rounds stays a pair). Seeded: the
    same measurements always give the same interval, so a verdict can be reproduced from the run file."""
    return bootstrap_interval_of_sets((count,), estimate, confidence, resamples, seed)


def bootstrap_interval_of_sets(
    counts: tuple[int, ...],
    estimate: Callable[..., float],
    confidence: float = 0.98,
    resamples: int = 1000,
    seed: int = 0,
) -> tuple[float, float]:
    """The same for a figure of independent sets of measurements (this run's pairs of rounds and the baseline's):
    each set is resampled on its own, and `estimate` gets one list of indices per set, so the interval carries the
    noise of all of them."""
    if not counts or min(counts) < 1:
        raise ValueError("no samples")
    rng = random.Random(seed)

    def draw(count: int) -> list[int]:
        return [rng.randrange(count) for _ in range(count)]

    values = sorted(estimate(*(draw(count) for count in counts)) for _ in range(resamples))
    tail = (1 - confidence) / 2
    return values[int(tail * resamples)], values[min(resamples - 1, math.ceil((1 - tail) * resamples) - 1)]
