"""Which model the suite measures: `synthetic:NAME` (a config in perfgate/data/models/), a local folder, or a hub id."""

from __future__ import annotations

import json
import os
import re
from dataclasses import dataclass
from pathlib import Path

from perfgate import paths

SYNTHETIC_PREFIX = "synthetic:"
DEFAULT_GPU_MODEL = "synthetic:qwen3-14b"
DEFAULT_CPU_MODEL = "synthetic:qwen3-tiny"
_HUB_ID = re.compile(r"^[A-Za-z0-9][\w.-]*/[\w.-]+$")


class ModelError(ValueError):
    """The model named by --perf-model cannot be used; the message says why and what is allowed."""


@dataclass(frozen=True)
class ModelSpec:
    source: str  # what the user wrote (or the default)
    kind: str  # "synthetic" | "folder" | "hub"
    name: str  # synthetic config name, folder path or hub id
    config: dict  # the architecture config (config.json's content)

    @property
    def is_synthetic(self) -> bool:
        return self.kind == "synthetic"

    @property
    def max_positions(self) -> int | None:
        return self.config.get("max_position_embeddings")


def available_synthetic() -> list[str]:
    return sorted(p.stem for p in paths.MODEL_CONFIGS.glob("*.json"))


def default_model(has_cuda: bool) -> str:
    return DEFAULT_GPU_MODEL if has_cuda else DEFAULT_CPU_MODEL


def resolve(source: str) -> ModelSpec:
    """Turn --perf-model's value into a ModelSpec, reading the config so that errors show up before loading."""
    source = source.strip()
    if source.startswith(SYNTHETIC_PREFIX):
        name = source[len(SYNTHETIC_PREFIX) :]
        cfg = paths.MODEL_CONFIGS / f"{name}.json"
        if not cfg.is_file():
            known = ", ".join(available_synthetic()) or "none"
            raise ModelError(f"--perf-model {source!r}: no config {cfg} (synthetic models here: {known})")
        return ModelSpec(source, "synthetic", name, _read_config(cfg, source))
    folder = Path(source).expanduser()
    if folder.is_dir():
        cfg = folder / "config.json"
        if not cfg.is_file():
            raise ModelError(f"--perf-model {source!r}: the folder has no config.json, so it is not a checkpoint")
        return ModelSpec(source, "folder", str(folder.resolve()), _read_config(cfg, source))
    if _HUB_ID.match(source):
        return ModelSpec(source, "hub", source, _hub_config(source))
    raise ModelError(
        f"--perf-model {source!r} is neither a folder, a hub id (owner/name) nor synthetic:NAME "
        f"(synthetic models here: {', '.join(available_synthetic())})"
    )


def _read_config(path: Path, source: str) -> dict:
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, json.JSONDecodeError) as exc:
        raise ModelError(f"--perf-model {source!r}: cannot read {path}: {exc}") from exc
    if not isinstance(data, dict) or "model_type" not in data:
        raise ModelError(f"--perf-model {source!r}: {path} is not a model config (no 'model_type')")
    return data


def _hub_config(repo_id: str) -> dict:
    """A hub model's config from the local Hugging Face cache; only reaches the network when allowed to."""
    from huggingface_hub import hf_hub_download
    from huggingface_hub.errors import LocalEntryNotFoundError

    offline = os.environ.get("HF_HUB_OFFLINE", "").lower() in ("1", "true", "yes")
    try:
        path = hf_hub_download(repo_id, "config.json", local_files_only=offline)
    except LocalEntryNotFoundError as exc:
        why = "HF_HUB_OFFLINE is set" if offline else "the hub could not be reached"
        raise ModelError(
            f"--perf-model {repo_id!r}: not in the local Hugging Face cache and {why}; "
            "download it once where there is a network, or pass its local folder"
        ) from exc
    except Exception as exc:  # hub errors are many classes: repository not found, gated, HTTP errors
        raise ModelError(f"--perf-model {repo_id!r}: {type(exc).__name__}: {exc}") from exc
    return _read_config(Path(path), repo_id)


def parameter_count(config: dict) -> int:
    """Parameters of a Llama/Qwen-style decoder from its config alone (embeddings, attention, MLP, norms)."""
    h = config["hidden_size"]
    layers = config["num_hidden_layers"]
    heads = config["num_attention_heads"]
    kv_heads = config.get("num_key_value_heads", heads)
    head_dim = config.get("head_dim") or h // heads
    inter = config["intermediate_size"]
    vocab = config["vocab_size"]
    attn = h * heads * head_dim * 2 + h * kv_heads * head_dim * 2  # q, o and k, v projections
    if config.get("attention_bias"):
        attn += heads * head_dim + kv_heads * head_dim * 2 + h
    mlp = 3 * h * inter  # gate, up, down
    norms = 2 * h + 2 * head_dim  # input/post-attention norms, q/k norms (Qwen3)
    embeddings = vocab * h * (1 if config.get("tie_word_embeddings") else 2)
    return layers * (attn + mlp + norms) + embeddings + h


def kv_cache_bytes(config: dict, tokens: int, bytes_per_value: int = 2) -> int:
    heads = config["num_attention_heads"]
    kv_heads = config.get("num_key_value_heads", heads)
    head_dim = config.get("head_dim") or config["hidden_size"] // heads
    return 2 * config["num_hidden_layers"] * kv_heads * head_dim * tokens * bytes_per_value
