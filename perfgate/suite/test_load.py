"""Loading each variant: seconds to load, GPU memory at the peak of loading and once loaded (gated).

pytest --perf -k test_load [--perf-variants hf-fp16,hf-nf4]
"""

from perfgate.measure import load_figures


def test_load(loaded, variant_name, gate):
    gate(load_figures(variant_name, loaded.load))
