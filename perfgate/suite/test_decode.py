"""Batch-1 greedy generation per variant and prompt length: decode tokens/s, its ratio to the reference
(hf-fp16) measured in alternating rounds, time to first token, and peak VRAM; each gated against the
baseline in results/baselines/<gpu>.json.

    pytest --perf -k "test_decode and ctx1024" [--perf-rounds 5 --perf-new-tokens 128]
"""

from perfgate.measure import decode_figures


def test_decode(fitting_workload, loaded, variant_name, benchmark, measure_decode, gate):
    benchmark.group = f"generate round, {fitting_workload.id}"
    measurement = measure_decode(loaded, fitting_workload)
    figures = decode_figures(variant_name, measurement)
    benchmark.extra_info.update({f.metric: f.value for f in figures})
    gate(figures)
