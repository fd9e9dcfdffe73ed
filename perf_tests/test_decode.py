"""Batch-1 greedy generation per variant and prompt length: decode tokens/s, time to first token, peak VRAM.

python -m pytest perf_tests -k "test_decode and ctx1024" [--perf-rounds 5 --perf-new-tokens 128]
"""

import pytest

from perfgate.measure import decode_figures


def test_decode(perf, loaded, variant_name, workload, benchmark):
    unfit = perf.workload_unfit(workload)
    if unfit:
        pytest.skip(unfit)
    benchmark.group = f"generate round, {workload.id}"
    measurement = perf.measure_decode(loaded, workload, benchmark)
    figures = decode_figures(variant_name, measurement)
    benchmark.extra_info.update({f.metric: f.value for f in figures})
    perf.record(figures)
