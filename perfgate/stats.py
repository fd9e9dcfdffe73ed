"""Small pure statistics over measured samples. No torch here: these run and are tested anywhere."""

from __future__ import annotations

import math
from collections.abc import Sequence
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
