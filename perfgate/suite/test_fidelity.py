"""Output fidelity per variant: next-token distributions on committed token ids, teacher-forced, against the
full-precision reference (hf-fp32 on the CPU, hf-bf16 on a GPU): mean KL divergence, top-1 agreement, largest
absolute logit difference, and NaN/inf logits (which always fail). Fast but wrong is a regression too.

    pytest --perf -k test_fidelity [--perf-variants hf-nf4,unsloth-4bit]
"""

from perfgate.measure import fidelity_figures


def test_fidelity(loaded, variant_name, measure_fidelity, gate):
    reference, result = measure_fidelity(loaded)
    gate(fidelity_figures(variant_name, reference, result))
