"""The Unsloth backend: FastLanguageModel loads (and patches transformers for this process only: each variant has
a worker process of its own); the model it returns is a transformers model, generated from as the transformers
backend does."""

from __future__ import annotations

from typing import Any

from perfgate.backends.transformers import describe, generate_round, logits, new_cache
from perfgate.variants import Variant

__all__ = ["describe", "generate_round", "load", "logits", "new_cache"]


def load(variant: Variant, path: str, device: str, max_seq_length: int) -> tuple[Any, Any]:
    import torch
    from unsloth import FastLanguageModel  # patches transformers: this process only ever holds this variant

    model, tokenizer = FastLanguageModel.from_pretrained(
        model_name=path,
        max_seq_length=max_seq_length,
        dtype=getattr(torch, variant.dtype),
        load_in_4bit=variant.quantization == "nf4",
    )
    FastLanguageModel.for_inference(model)
    return model, tokenizer
