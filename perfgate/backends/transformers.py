"""The transformers backend: AutoModelForCausalLM with the variant's dtype and quantization config (bitsandbytes
LLM.int8 or NF4, torchao int8 weight-only), transformers' generate for timed rounds."""

from __future__ import annotations

from typing import Any

from perfgate import generation
from perfgate.variants import Variant

generate_round = generation.generate_round


def load(variant: Variant, path: str, device: str, max_seq_length: int) -> tuple[Any, Any]:
    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer

    kwargs: dict[str, Any] = {
        "dtype": getattr(torch, variant.dtype),
        "device_map": {"": 0} if device == "cuda" else "cpu",
    }
    if variant.quantization:
        kwargs["quantization_config"] = quantization_config(variant.quantization)
    model = AutoModelForCausalLM.from_pretrained(path, **kwargs).eval()
    if variant.cache == "static":
        # transformers compiles the decode step itself for a static cache on CUDA (a hand-written
        # torch.compile of forward crashed in transformers 5.17: ../shared/gpu/README.md).
        model.generation_config.cache_implementation = "static"
    return model, AutoTokenizer.from_pretrained(path)


def quantization_config(quantization: str):
    import torch

    if quantization == "int8":
        from transformers import BitsAndBytesConfig

        return BitsAndBytesConfig(load_in_8bit=True)
    if quantization == "nf4":
        from transformers import BitsAndBytesConfig

        # The format Unsloth's 4-bit uses (NF4, double quantization), so hf-nf4 and unsloth-4bit differ only
        # in the code around the same kernel.
        return BitsAndBytesConfig(
            load_in_4bit=True,
            bnb_4bit_quant_type="nf4",
            bnb_4bit_use_double_quant=True,
            bnb_4bit_compute_dtype=torch.bfloat16,
        )
    if quantization == "torchao-int8":
        from torchao.quantization import Int8WeightOnlyConfig
        from transformers import TorchAoConfig

        return TorchAoConfig(Int8WeightOnlyConfig())
    raise ValueError(f"unknown quantization {quantization!r}")


def describe(model: Any) -> dict[str, Any]:
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


def new_cache(model: Any) -> Any:
    from transformers import DynamicCache

    return DynamicCache()


def logits(model: Any, input_ids: Any) -> Any:
    import torch

    with torch.no_grad():
        return model(input_ids=input_ids, attention_mask=torch.ones_like(input_ids)).logits[0].float().cpu()
