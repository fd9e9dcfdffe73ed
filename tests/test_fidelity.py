"""Fidelity figures on the micro model in this process (the tiny model's, end to end: tests/test_perf_suite.py), and
the fidelity gate end to end with a variant broken on purpose."""

import json

import pytest

from perfgate import fidelity
from tests.terminal import last_run

FAST = ("--perf-contexts=32", "--perf-new-tokens=4", "--benchmark-disable", "-k", "fidelity")


def test_committed_inputs_are_what_the_script_writes(tmp_path, monkeypatch):
    committed = fidelity.INPUTS.read_text()
    monkeypatch.setattr(fidelity, "INPUTS", tmp_path / "inputs.json")
    fidelity.write_inputs()
    assert json.loads((tmp_path / "inputs.json").read_text()) == json.loads(committed)
    assert [len(s) for s in fidelity.inputs()] == [fidelity.TOKENS] * fidelity.SEQUENCES


@pytest.fixture(scope="module")
def fp32_model(micro_checkpoint):
    """The micro model in fp32, after one forward pass over the fidelity inputs. The first forward pass of a process
    can differ from every later one in its last bits (max |Δlogit| up to 3.8e-5 on the tiny model), while later
    passes are bit-identical to each other; so the reference is saved after that first pass, and the exact comparison
    compares the model with itself."""
    import torch
    from transformers import AutoModelForCausalLM

    model = AutoModelForCausalLM.from_pretrained(micro_checkpoint, dtype=torch.float32).eval()
    for sequence in fidelity.inputs():
        fidelity._logits(model, sequence)  # the warm-up pass the docstring explains
    return model


def test_a_model_against_itself_is_exact(fp32_model, micro_spec, tmp_path):
    path = tmp_path / "ref.pt"
    assert fidelity.save_reference(fp32_model, str(path))["shape"] == [3, 128, micro_spec.config["vocab_size"]]
    result = fidelity.compare(fp32_model, str(path))
    assert result == {
        "kl_nats": 0.0,
        "top1_agreement_pct": 100.0,
        "max_abs_logit_diff": 0.0,
        "nonfinite_logits": 0,
        "positions": 384,
    }


def test_a_lower_precision_differs_a_little_and_nan_is_counted(fp32_model, micro_checkpoint, tmp_path):
    import torch
    from transformers import AutoModelForCausalLM

    path = tmp_path / "ref.pt"
    fidelity.save_reference(fp32_model, str(path))
    bf16 = AutoModelForCausalLM.from_pretrained(micro_checkpoint, dtype=torch.bfloat16).eval()
    result = fidelity.compare(bf16, str(path))
    assert 0 < result["kl_nats"] < 0.01 and 0 < result["max_abs_logit_diff"] < 0.5
    with torch.no_grad():
        bf16.model.layers[0].mlp.down_proj.weight[0, 0] = float("inf")
    assert fidelity.compare(bf16, str(path))["nonfinite_logits"] > 0


def test_a_broken_variant_fails_the_fidelity_gate_and_the_others_pass(run_perf, monkeypatch):
    run_perf("--perf-update-baselines", "--perf-variants=hf-fp16,hf-nf4", *FAST).assert_outcomes(passed=2)
    # a synthetic model says why it has no perplexity (its weights are random), in the baseline run as in any
    ppl = next(r for r in last_run(run_perf.results)["results"] if r["metric"] == "perplexity")
    assert ppl["value"] is None and "random weights" in ppl["unavailable"]

    # hf-bf16, which has no baseline entry, with NaN logits
    monkeypatch.setenv("PERFGATE_FAULTS", "hf-nf4@load=corrupt,hf-bf16@load=nan")
    result = run_perf("--perf-variants=hf-fp16,hf-bf16,hf-nf4", *FAST)
    result.assert_outcomes(passed=1, failed=2)
    result.stdout.fnmatch_lines(
        [
            "*_ test_fidelity[[]hf-nf4] _*",
            "hf-nf4 fidelity kl_nats = * nats is above the limit * nats (baseline * + 50% + 0.001 nats): Δ +*%*",
        ]
    )
    result.stdout.fnmatch_lines(["hf-nf4 fidelity top1_agreement_pct = * % is below the limit * % (baseline *"])
    # NaN logits always fail, even without a baseline
    result.stdout.fnmatch_lines(
        [
            "*_ test_fidelity[[]hf-bf16] _*",
            "hf-bf16 fidelity nonfinite_logits = * count is above the limit 0 count (baseline 0 + 0%): Δ n/a*",
            "  baseline: hf-bf16/fidelity/nonfinite_logits in * (no logit may be NaN or infinite)*",
        ]
    )
    verdicts = {(r["variant"], r["metric"]): r["verdict"]["status"] for r in last_run(run_perf.results)["results"]
                if "verdict" in r}  # fmt: skip
    assert verdicts[("hf-bf16", "kl_nats")] == "no baseline" and verdicts[("hf-bf16", "nonfinite_logits")] == "fail"


def test_greedy_agreement_counts_the_shared_start_of_each_reply():
    from perfgate.fidelity import greedy_agreement

    assert greedy_agreement([[1, 2, 3, 4]], [[1, 2, 3, 4]]) == 100.0
    assert greedy_agreement([[1, 2, 3, 4], [5, 6]], [[1, 2, 9, 4], [7, 6]]) == 25.0  # (2/4 + 0/2) / 2
    assert greedy_agreement([[1, 2]], [[1, 2, 3]]) == 100.0  # the reference's reply reproduced in full


def test_a_real_model_gets_perplexity_and_greedy_agreement(run_perf, micro_checkpoint):
    # the micro checkpoint given as a folder: perfgate treats it as a user's real model
    folder = f"--perf-model={micro_checkpoint}"
    result = run_perf(folder, "--perf-variants=hf-fp32,hf-bf16", "--perf-agent-queries=2", "-k", "fidelity")
    result.assert_outcomes(passed=2)
    run = last_run(run_perf.results)
    fig = {(r["variant"], r["metric"]): r for r in run["results"]}
    assert fig[("hf-fp32", "greedy_agreement_pct")]["value"] == 100.0  # the reference against itself
    assert fig[("hf-fp32", "perplexity")]["params"]["tokens"] > 1000
    assert 0 <= fig[("hf-bf16", "greedy_agreement_pct")]["value"] <= 100
    assert fig[("hf-bf16", "perplexity")]["value"] == pytest.approx(fig[("hf-fp32", "perplexity")]["value"], rel=0.01)
