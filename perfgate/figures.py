"""Figures: one measured number each (with its samples and spread), as the run file and the summary hold them.
Built from the measurements' dataclasses; nothing here measures or prints. `once` and `series` take a metric's
unit, direction and gating from its entry in perfgate.metrics; `single` and `from_samples` are given them."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import asdict, dataclass, field
from typing import Any

from perfgate import metrics
from perfgate.metrics import HIGHER, LOWER, SAME
from perfgate.stats import Summary

__all__ = ["HIGHER", "LOWER", "SAME", "Figure", "figures_of", "from_samples", "once", "series", "single"]


@dataclass(frozen=True)
class Figure:
    variant: str
    test: str  # "load" or "decode"
    workload: str  # "ctx1024", or "" for per-variant figures such as load
    metric: str  # name with its unit in it: decode_tok_per_s, ttft_s, peak_vram_mib
    unit: str
    better: str  # "higher", "lower" or "same"
    gated: bool  # compared with a baseline (issue 3); otherwise reported only
    value: float | None  # the median of the samples (the ratio to the reference: its own estimate); None if unavailable
    samples: tuple[float, ...] = ()
    unavailable: str | None = None  # why value is None
    params: dict[str, Any] = field(default_factory=dict)

    @property
    def summary(self) -> Summary | None:
        return Summary.of(self.samples) if self.samples else None

    @property
    def key(self) -> tuple[str, str, str, str]:
        return (self.variant, self.test, self.workload, self.metric)

    def to_dict(self) -> dict[str, Any]:
        data = asdict(self)
        data["samples"] = list(self.samples)
        summary = self.summary
        data["stats"] = asdict(summary) if summary else None
        return data


def figures_of(run: dict[str, Any]) -> list[Figure]:
    """A run file's figures, from its records (the fields a Figure has; the verdict and baseline are left)."""
    keep = Figure.__dataclass_fields__
    return [
        Figure(**{k: (tuple(v) if k == "samples" else v) for k, v in rec.items() if k in keep})
        for rec in run["results"]
    ]


def from_samples(
    variant: str,
    test: str,
    workload: str,
    metric: str,
    unit: str,
    better: str,
    gated: bool,
    samples: Sequence[float],
    params: dict[str, Any] | None = None,
) -> Figure:
    samples = tuple(float(s) for s in samples)
    return Figure(
        variant,
        test,
        workload,
        metric,
        unit,
        better,
        gated,
        Summary.of(samples).median,
        samples,
        None,
        dict(params or {}),
    )


def single(
    variant: str,
    test: str,
    workload: str,
    metric: str,
    unit: str,
    better: str,
    gated: bool,
    value: float | None,
    unavailable: str | None = None,
    params: dict[str, Any] | None = None,
) -> Figure:
    """A figure measured once (a peak, a load time): one sample, or none with the reason."""
    if value is None:
        return Figure(
            variant,
            test,
            workload,
            metric,
            unit,
            better,
            gated,
            None,
            (),
            unavailable or "not measured",
            dict(params or {}),
        )
    return from_samples(variant, test, workload, metric, unit, better, gated, [value], params)


def once(
    variant: str,
    test: str,
    workload: str,
    metric: str,
    value: float | None,
    unavailable: str | None = None,
    params: dict[str, Any] | None = None,
) -> Figure:
    """A figure measured once (see single), its unit, direction and gating from perfgate.metrics."""
    m = metrics.metric(metric)
    return single(variant, test, workload, m.name, m.unit, m.better, m.gated, value, unavailable, params)


def series(
    variant: str, test: str, workload: str, metric: str, samples: Sequence[float], params: dict[str, Any] | None = None
) -> Figure:
    """A figure of several samples, their median its value, its unit, direction and gating from perfgate.metrics."""
    m = metrics.metric(metric)
    return from_samples(variant, test, workload, m.name, m.unit, m.better, m.gated, samples, params)
