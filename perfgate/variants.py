"""The variants: each way of running a model that perfgate measures, one registry entry each.

Adding a variant is one entry here; its backend (perfgate.backends) turns an entry into a loaded model in the
worker process, and everything else reads only these fields. A repository measured with perfgate declares its own
variants in [tool.perfgate] (perfgate.project) or through the pytest_perfgate_variants hook (perfgate.hooks); they
are registered beside these for the run, and each worker is handed its variant's spec (Variant.spec: the fields it
sets).
"""

from __future__ import annotations

import importlib.util
from dataclasses import MISSING, dataclass, fields
from typing import Any

from perfgate import models

CUDA = "cuda"
CPU = "cpu"


@dataclass(frozen=True)
class Variant:
    name: str
    description: str
    backend: str  # what the worker drives the model with: a module of perfgate.backends ("transformers", "unsloth")
    dtype: str  # torch dtype name of the weights (compute dtype for quantized ones)
    # None, "int8" (bitsandbytes LLM.int8), "nf4" (bitsandbytes 4-bit NF4, double quantized) or "torchao-int8"
    # (torchao int8 weight-only)
    quantization: str | None = None
    cache: str = "dynamic"  # transformers' cache_implementation: "dynamic" or "static"
    devices: frozenset[str] = frozenset({CUDA, CPU})  # where it can run at all
    default_on: frozenset[str] = frozenset({CUDA, CPU})  # where it runs when --perf-variants is not given
    packages: tuple[str, ...] = ()  # import names it needs beyond torch and transformers
    step_delay: bool = False  # canary: a fixed delay added to every decode step (see --perf-canary-slowdown)
    device_delay: bool = (
        False  # GPU canary: fixed device work added to every decode step (--perf-canary-device-slowdown)
    )
    baseline_of: str | None = None  # gated against another variant's baseline entries (the canary: hf-fp16's)
    # "module:callable", (path, device, max_seq_length) -> (model, tokenizer), loading instead of the backend
    loader: str | None = None
    import_path: tuple[str, ...] = ()  # folders the worker puts first on sys.path before importing the loader
    # (metric, tolerance as a fraction): where this variant's figures move further with nothing changed than the
    # metric's default tolerance allows (perfgate.gate.tolerance_for; --perf-tolerance and a baseline's stored
    # tolerance win over it)
    tolerances: tuple[tuple[str, float], ...] = ()

    @property
    def weight_bytes_per_param(self) -> float:
        # int8 (both kinds): one byte plus per-row scales; nf4: half a byte plus double-quantized block scales.
        return {None: _DTYPE_BYTES[self.dtype], "int8": 1.02, "torchao-int8": 1.02, "nf4": 0.53}[self.quantization]

    def spec(self) -> dict[str, Any]:
        """The variant as JSON, for the worker process (which may not know a declared variant's name): the fields
        it needs, each left out where it has its default, so that a worker running an older perfgate (an A/B run's
        base at another commit, whose Variant may lack a newer field) is handed only what it knows unless the
        variant uses it. The gate's own fields (tolerances) stay here."""
        out = {}
        for f in fields(self):
            value = getattr(self, f.name)
            if f.name in _GATE_ONLY or (f.default is not MISSING and value == f.default):
                continue
            out[f.name] = sorted(value) if isinstance(value, frozenset) else value
        return out

    @classmethod
    def from_spec(cls, spec: dict[str, Any]) -> Variant:
        return cls(**{k: frozenset(v) if k in _SETS else tuple(v) if k in _TUPLES else v for k, v in spec.items()})


_SETS = ("devices", "default_on")  # the fields that JSON carries as lists
_TUPLES = ("packages", "import_path")
_GATE_ONLY = ("tolerances",)  # read by the judging in the pytest process, never by a worker
_DTYPE_BYTES = {"float32": 4.0, "float16": 2.0, "bfloat16": 2.0}
_BNB = ("bitsandbytes", "accelerate")
_TORCHAO = ("torchao",)

REFERENCE = "hf-fp16"

REGISTRY: dict[str, Variant] = {
    v.name: v
    for v in (
        Variant("hf-fp16", "transformers, fp16: the reference", "transformers", "float16"),
        Variant("hf-bf16", "transformers, bf16", "transformers", "bfloat16"),
        Variant(
            "hf-fp32", "transformers, fp32 (CPU default only)", "transformers", "float32", default_on=frozenset({CPU})
        ),
        Variant("hf-int8", "transformers + bitsandbytes LLM.int8", "transformers", "float16", "int8", packages=_BNB),
        Variant(
            "hf-nf4",
            "transformers + bitsandbytes 4-bit NF4, bf16 compute",
            "transformers",
            "bfloat16",
            "nf4",
            packages=_BNB,
        ),
        Variant(
            "hf-bf16-static",
            "transformers, bf16, static KV cache (compiled by transformers on CUDA)",
            "transformers",
            "bfloat16",
            cache="static",
            tolerances=(
                # Its compiled step has little Python in it, so its ratio to the launch-bound hf-fp16 follows the
                # host CPU's speed: with nothing changed, -11.1 % to +0.0 % of its baseline over ten H200 passes.
                ("decode_ratio_to_ref", 0.25),
                # torch.compile picks its Triton kernels by timing on each start: its device time per token took
                # 9.41-9.77 ms over four H200 machine starts (3.9 %), where the eager variants' moved by up to 2 %.
                ("device_ms_per_token", 0.08),
            ),
        ),
        Variant(
            "unsloth-4bit",
            "Unsloth FastLanguageModel, load_in_4bit + for_inference",
            "unsloth",
            "bfloat16",
            "nf4",
            devices=frozenset({CUDA}),
            default_on=frozenset({CUDA}),
            packages=("unsloth", *_BNB),
        ),
        Variant(
            "unsloth-bf16",
            "Unsloth FastLanguageModel, bf16 + for_inference",
            "unsloth",
            "bfloat16",
            devices=frozenset({CUDA}),
            default_on=frozenset({CUDA}),
            packages=("unsloth",),
        ),
        Variant(
            "hf-fp16-slow",
            "canary: hf-fp16 with a fixed delay added to every decode step",
            "transformers",
            "float16",
            default_on=frozenset(),
            step_delay=True,
            baseline_of="hf-fp16",
        ),
        Variant(
            "hf-fp16-gpuslow",
            "GPU canary: hf-fp16 with fixed device work (one spinning kernel) added to every decode step",
            "transformers",
            "float16",
            default_on=frozenset(),
            device_delay=True,
            baseline_of="hf-fp16",
        ),
        Variant(
            "hf-int8-torchao",
            "transformers + torchao int8 weight-only (TorchAoConfig(Int8WeightOnlyConfig()))",
            "transformers",
            "bfloat16",
            "torchao-int8",
            default_on=frozenset(),  # opt-in by name
            packages=_TORCHAO,
        ),
    )
}
BUILTIN = frozenset(REGISTRY)


def register(variant: Variant) -> None:
    """Add a variant declared by the measured repository for this run; a built-in name cannot be taken."""
    if variant.name in BUILTIN:
        raise ValueError(f"variant {variant.name!r} is a built-in variant; give yours another name")
    REGISTRY[variant.name] = variant


class UnknownVariant(ValueError):
    pass


def select(text: str | None, device: str) -> list[Variant]:
    """--perf-variants: a comma list of names, 'all', or empty for the defaults on this device; 'default' in a list
    stands for those defaults ('default,hf-fp16-slow': the defaults and the canary).
    Registry order is kept, so runs are comparable whatever order the names were given in."""
    if not text or text.strip() in ("", "default"):
        return [v for v in REGISTRY.values() if device in v.default_on]
    if text.strip() == "all":
        return list(REGISTRY.values())
    names = [n.strip() for n in text.split(",") if n.strip()]
    if "default" in names:
        names += [v.name for v in REGISTRY.values() if device in v.default_on]
    unknown = [n for n in names if n not in REGISTRY and n != "default"]
    if unknown:
        raise UnknownVariant(
            f"--perf-variants: unknown variant(s) {', '.join(unknown)}; known: {', '.join(REGISTRY)} "
            "(or 'all', or 'default')"
        )
    return [v for v in REGISTRY.values() if v.name in names]


def missing_packages(variant: Variant) -> list[str]:
    """Packages the variant needs that are not installed. Looked up, never imported: importing unsloth
    patches transformers for the whole process."""
    return [p for p in variant.packages if importlib.util.find_spec(p) is None]


INSTALL_HINT = {
    "unsloth": "pip install -e '.[unsloth]' (needs a CUDA GPU)",
    "bitsandbytes": "pip install bitsandbytes",
    "accelerate": "pip install accelerate",
    "torchao": "pip install torchao",
}


def unavailable_reason(variant: Variant, device: str) -> str | None:
    """Why this variant cannot run here, or None. Memory is judged separately, once the model is known."""
    if device not in variant.devices:
        return (
            f"{variant.name} needs a CUDA GPU"
            if variant.devices == {CUDA}
            else f"{variant.name} cannot run on {device}"
        )
    missing = missing_packages(variant)
    if missing:
        hints = "; ".join(INSTALL_HINT.get(p, f"pip install {p}") for p in missing)
        return f"{variant.name} needs {', '.join(missing)}, which is not installed ({hints})"
    return None


def estimate_bytes(variant: Variant, config: dict, max_tokens: int) -> int:
    """A rough upper estimate of the memory a variant needs: weights, a bf16/fp16 KV cache for max_tokens, the
    logits of one prefill over the vocabulary in fp32, and a fixed allowance for the CUDA context and
    workspaces. Made before loading, to skip a variant that cannot fit instead of crashing into OOM."""
    n_params = models.parameter_count(config)
    weights = n_params * variant.weight_bytes_per_param
    kv = models.kv_cache_bytes(config, max_tokens, 4 if variant.dtype == "float32" else 2)
    logits = config["vocab_size"] * 4 * 2  # prefill keeps only the last position's logits; two copies
    activations = max_tokens * config["intermediate_size"] * 2 * 4  # one MLP block's intermediates, fp32 upper
    return int(weights * 1.05 + kv + logits + activations + 1.0 * 2**30)


def import_failure(variant: Variant, message: str) -> str:
    """The skip reason for a variant whose worker could not import a package it needs."""
    package = next((p for p in variant.packages if p in message), None)
    if package is None:
        quoted = message.split("'")
        package = quoted[1] if len(quoted) > 2 else "a package it needs"
    hint = INSTALL_HINT.get(package, f"pip install {package}")
    return f"{variant.name}: {package} failed to import ({message.splitlines()[0]}); install or repair it: {hint}"
