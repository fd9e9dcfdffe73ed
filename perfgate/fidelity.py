"""Output fidelity: does a variant still compute (nearly) the same function as the full-precision reference?

Every variant reads the same committed token ids (perfgate/data/fidelity/inputs.json), teacher-forced, so that all
see the same context; their next-token distributions are compared position by position with the reference's
(hf-fp32 on the CPU, hf-bf16 on a GPU): mean KL divergence KL(reference || variant) in nats, top-1 agreement,
the largest absolute logit difference, and a count of logits that are NaN or infinite.

On a random-weight synthetic model these figures catch broken kernels and numerics (a corrupted weight, a
wrong mask, a dtype overflow) but say nothing about a real model's accuracy: there is no accuracy to lose.

    python -m perfgate.fidelity --write-inputs    # regenerate the committed inputs (deterministic)
"""

from __future__ import annotations

import sys
from typing import Any

from perfgate import paths
from perfgate.storage import read_json, write_json_atomic

INPUTS = paths.FIDELITY / "inputs.json"
SEQUENCES = 3
TOKENS = 128


def inputs() -> list[list[int]]:
    return read_json(INPUTS)["sequences"]


def write_inputs() -> None:
    """Three windows of the prompt corpus, tokenized by the synthetic tokenizer (ids valid in any Qwen vocab)."""
    from perfgate import models, synthetic, workloads

    tok = synthetic.build_tokenizer(models.resolve("synthetic:qwen3-tiny").config)
    ids = tok(workloads.corpus_text(), add_special_tokens=False)["input_ids"]
    step = (len(ids) - TOKENS) // (SEQUENCES - 1)
    sequences = [ids[i * step : i * step + TOKENS] for i in range(SEQUENCES)]
    write_json_atomic(INPUTS, {"note": "python -m perfgate.fidelity --write-inputs", "sequences": sequences})


def _logits(model, sequence: list[int]):
    import torch

    ids = torch.tensor([sequence], dtype=torch.long, device=model.device)
    with torch.no_grad():
        return model(input_ids=ids, attention_mask=torch.ones_like(ids)).logits[0].float().cpu()


def save_reference(model, path: str) -> dict[str, Any]:
    import torch

    logits = torch.stack([_logits(model, s) for s in inputs()])
    torch.save(logits, path)
    return {"shape": list(logits.shape)}


def compare(model, reference_path: str) -> dict[str, Any]:
    """The fidelity figures of `model` against the saved reference logits."""
    import torch

    reference = torch.load(reference_path)
    kl, agree, max_diff, nonfinite, positions = 0.0, 0, 0.0, 0, 0
    for ref, sequence in zip(reference, inputs(), strict=True):
        out = _logits(model, sequence)[:, : ref.shape[-1]]
        bad = ~torch.isfinite(out)
        nonfinite += int(bad.sum())
        out = torch.where(bad, torch.zeros_like(out), out)
        ref_logp = torch.log_softmax(ref, dim=-1)
        kl += float((ref_logp.exp() * (ref_logp - torch.log_softmax(out, dim=-1))).sum(dim=-1).sum())
        agree += int((ref.argmax(dim=-1) == out.argmax(dim=-1)).sum())
        max_diff = max(max_diff, float((out - ref).abs().max()))
        positions += ref.shape[0]
    return {
        "kl_nats": kl / positions,
        "top1_agreement_pct": 100 * agree / positions,
        "max_abs_logit_diff": max_diff,
        "nonfinite_logits": nonfinite,
        "positions": positions,
    }


PERPLEXITY_TEXT = paths.FIDELITY / "perplexity.txt"
GREEDY_TOKENS = 48


def perplexity(model, tokenizer, window: int = 1024) -> dict[str, Any]:
    """Perplexity of the model on the committed text (perfgate/data/fidelity/perplexity.txt, written for perfgate),
    teacher-forced in consecutive windows of at most `window` tokens: exp(mean next-token negative log-likelihood).
    Means something only with real weights."""
    import math

    import torch

    ids = tokenizer(PERPLEXITY_TEXT.read_text(encoding="utf-8"), add_special_tokens=False)["input_ids"]
    nll, scored = 0.0, 0
    for start in range(0, len(ids) - 1, window):
        chunk = ids[start : start + window]
        if len(chunk) < 2:
            break
        logits = _logits(model, chunk)
        logp = torch.log_softmax(logits[:-1], dim=-1)
        target = torch.tensor(chunk[1:])
        nll -= float(logp.gather(1, target[:, None]).sum())
        scored += len(chunk) - 1
    return {"perplexity": math.exp(nll / scored), "tokens": scored}


def greedy_first_turns(model, tokenizer, questions: list[dict[str, Any]], max_new_tokens: int = GREEDY_TOKENS):
    """Per question, the model's greedy reply to the agent's first turn (system prompt, tool schemas, the question;
    the model's own chat template, thinking off): up to max_new_tokens token ids, ended by an end token."""
    import torch

    from perfgate import generation
    from perfgate.agent import live

    end = live.end_token_ids(tokenizer)
    device = "cuda" if model.device.type == "cuda" else "cpu"
    out = []
    for q in questions:
        ids = live.prompt_ids(tokenizer, live.first_turn(q))
        input_ids = torch.tensor([ids], dtype=torch.long, device=model.device)
        with torch.no_grad():
            new, _ = generation.generate_reply(model, input_ids, max_new_tokens, end, device)
        out.append(new)
    return out


def greedy_agreement(reference: list[list[int]], variant: list[list[int]]) -> float:
    """Mean over questions of the share of the reference's greedy reply that the variant reproduces before their
    first difference, in % (100: identical replies)."""
    shares = []
    for ref, out in zip(reference, variant, strict=True):
        same = 0
        for a, b in zip(ref, out, strict=False):
            if a != b:
                break
            same += 1
        shares.append(same / len(ref) if ref else float(not out))
    return 100 * sum(shares) / len(shares)


if __name__ == "__main__":
    if sys.argv[1:] != ["--write-inputs"]:
        print(__doc__, file=sys.stderr)
        sys.exit(2)
    write_inputs()
