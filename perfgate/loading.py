"""Loading a variant through its ordinary entry point. Runs only inside a worker process (perfgate.worker):
each variant gets a process of its own, so Unsloth's patches to transformers never reach a transformers
variant, and all of a variant's memory goes back to the device when its process ends."""

from __future__ import annotations

from typing import Any

from perfgate.variants import Variant


def load(variant: Variant, path: str, device: str, max_seq_length: int) -> tuple[Any, Any]:
    """(model, tokenizer), ready for generation."""
    if variant.loader == "unsloth":
        return _load_unsloth(variant, path, max_seq_length)
    return _load_transformers(variant, path, device)


def _load_transformers(variant: Variant, path: str, device: str) -> tuple[Any, Any]:
    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer

    kwargs: dict[str, Any] = {
        "dtype": getattr(torch, variant.dtype),
        "device_map": {"": 0} if device == "cuda" else "cpu",
    }
    if variant.quantization:
        kwargs["quantization_config"] = bnb_config(variant.quantization)
    model = AutoModelForCausalLM.from_pretrained(path, **kwargs).eval()
    if variant.cache == "static":
        # transformers compiles the decode step itself for a static cache on CUDA (a hand-written
        # torch.compile of forward crashed in transformers 5.17: ../shared/gpu/README.md).
        model.generation_config.cache_implementation = "static"
    return model, AutoTokenizer.from_pretrained(path)


def bnb_config(quantization: str):
    import torch
    from transformers import BitsAndBytesConfig

    if quantization == "int8":
        return BitsAndBytesConfig(load_in_8bit=True)
    if quantization == "nf4":
        # The format Unsloth's 4-bit uses (NF4, double quantization), so hf-nf4 and unsloth-4bit differ only
        # in the code around the same kernel.
        return BitsAndBytesConfig(
            load_in_4bit=True,
            bnb_4bit_quant_type="nf4",
            bnb_4bit_use_double_quant=True,
            bnb_4bit_compute_dtype=torch.bfloat16,
        )
    raise ValueError(f"unknown quantization {quantization!r}")


def _load_unsloth(variant: Variant, path: str, max_seq_length: int) -> tuple[Any, Any]:
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


def describe(model: Any) -> dict[str, Any]:
    """What was really loaded, for the run file."""
    params = list(model.parameters())
    dtypes = sorted({str(p.dtype).removeprefix("torch.") for p in params})
    quant = getattr(model.config, "quantization_config", None)
    if quant is not None and not isinstance(quant, dict):
        quant = quant.to_dict()
    return {
        "class": type(model).__name__,
        "parameter_dtypes": dtypes,
        "footprint_mib": round(model.get_memory_footprint() / 2**20, 1),
        "quantization": (quant or {}).get("quant_method"),
        "device": str(next(iter(params)).device),
    }
