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


def resolve(source: str, origin: str = "--perf-model") -> ModelSpec:
    """Turn --perf-model's value into a ModelSpec, reading the config so that errors show up before loading.
    `origin` says where the value came from ('MODEL_NAME in .env'), for the one line an error makes."""
    source = source.strip()
    label = f"--perf-model {source!r}" if origin == "--perf-model" else f"--perf-model (from {origin}) = {source!r}"
    if source.startswith(SYNTHETIC_PREFIX):
        name = source[len(SYNTHETIC_PREFIX) :]
        cfg = paths.MODEL_CONFIGS / f"{name}.json"
        if not cfg.is_file():
            known = ", ".join(available_synthetic()) or "none"
            raise ModelError(f"{label}: no config {cfg} (synthetic models here: {known})")
        return ModelSpec(source, "synthetic", name, _read_config(cfg, label))
    folder = Path(source).expanduser()
    if folder.is_dir():
        cfg = folder / "config.json"
        if not cfg.is_file():
            raise ModelError(f"{label}: the folder has no config.json, so it is not a checkpoint")
        return ModelSpec(source, "folder", str(folder.resolve()), _read_config(cfg, label))
    if _HUB_ID.match(source):
        return ModelSpec(source, "hub", source, _hub_config(source, label))
    raise ModelError(
        f"{label} is neither a folder, a hub id (owner/name) nor synthetic:NAME "
        f"(synthetic models here: {', '.join(available_synthetic())})"
    )


def _read_config(path: Path, label: str) -> dict:
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, json.JSONDecodeError) as exc:
        raise ModelError(f"{label}: cannot read {path}: {exc}") from exc
    if not isinstance(data, dict) or "model_type" not in data:
        raise ModelError(f"{label}: {path} is not a model config (no 'model_type')")
    return data


HUB_PROBE_S = 3.0  # how long the hub may take to accept a connection before it counts as unreachable (seconds)


def _hub_config(repo_id: str, label: str) -> dict:
    """A hub model's config: from the local Hugging Face cache first; from the hub only when it is allowed
    (HF_HUB_OFFLINE unset) and answers within HUB_PROBE_S, asked once. Without that check, an id that is in no
    cache on a machine without a network costs the hub client's retries (25 s, seen) before the same error."""
    from huggingface_hub import constants, hf_hub_download
    from huggingface_hub.errors import LocalEntryNotFoundError

    offline = os.environ.get("HF_HUB_OFFLINE", "").lower() in ("1", "true", "yes", "on")
    try:
        return _read_config(Path(hf_hub_download(repo_id, "config.json", local_files_only=True)), label)
    except LocalEntryNotFoundError:
        pass
    where = f"not in the local Hugging Face cache ({constants.HF_HUB_CACHE})"
    help_ = "download it once where there is a network, or give its local folder"
    if offline:
        raise ModelError(f"{label}: {where} and HF_HUB_OFFLINE is set; {help_}")
    unreachable = hub_unreachable(constants.ENDPOINT, HUB_PROBE_S)
    if unreachable:
        raise ModelError(f"{label}: {where} and {unreachable}; {help_}")
    try:
        path = hf_hub_download(repo_id, "config.json")
    except Exception as exc:  # hub errors are many classes: repository not found, gated, HTTP errors
        raise ModelError(f"{label}: {type(exc).__name__}: {str(exc).splitlines()[0] if str(exc) else ''}") from None
    return _read_config(Path(path), label)


def hub_unreachable(endpoint: str, timeout_s: float) -> str | None:
    """Why the hub (or the HTTPS proxy in between) cannot be reached, from one TCP connection attempt; None if it
    can. The name lookup fails at once on a machine without DNS; a connection to a dropped route waits timeout_s."""
    import socket
    from urllib.parse import urlsplit

    proxy = os.environ.get("HTTPS_PROXY") or os.environ.get("https_proxy")
    target = urlsplit(proxy or endpoint)
    host, port = target.hostname, target.port or (443 if target.scheme == "https" else 80)
    what = f"the proxy {proxy}" if proxy else f"the hub {endpoint}"
    if not host:
        return f"{what} names no host"
    try:
        socket.create_connection((host, port), timeout=timeout_s).close()
    except OSError as exc:
        return f"{what} cannot be reached ({exc.strerror or type(exc).__name__}, within {timeout_s:.0f} s)"
    return None


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
