"""Synthetic checkpoints: a real architecture config, random weights, safetensors shards, a tokenizer and a
Qwen3-style chat template, laid out exactly like a hub checkpoint so that every variant loads it through its
ordinary `from_pretrained`. No model can be downloaded here, and decode speed and memory do not depend on what
the weights say, only on their shapes and dtypes.

The build runs in a child process (`python -m perfgate.synthetic`), so that the GPU memory it takes is given
back before any variant loads. It writes into a temporary folder and renames it into place only when complete;
a folder without a valid manifest (an earlier build killed half-way) is removed and built again. Processes that
want the same checkpoint at once (pytest-xdist's workers, one per GPU) take turns on a lock file beside it: one
builds, the others wait and then load what it built.
"""

from __future__ import annotations

import argparse
import fcntl
import hashlib
import json
import os
import re
import shutil
import subprocess
import sys
import time
from pathlib import Path

from perfgate import paths
from perfgate.models import ModelSpec
from perfgate.storage import read_json, write_json_atomic

BUILDER_VERSION = 2  # bump when any file the builder writes changes: old cache folders are then unused
MANIFEST = "perfgate-synthetic.json"
SEED = 0

# Qwen's special tokens at Qwen's own ids, so that a Qwen3 config's bos/eos/pad ids mean the same thing.
QWEN_SPECIAL_TOKENS = {
    "<|endoftext|>": 151643,
    "<|im_start|>": 151644,
    "<|im_end|>": 151645,
    "<tool_call>": 151657,
    "</tool_call>": 151658,
    "<tool_response>": 151665,
    "</tool_response>": 151666,
    "<think>": 151667,
    "</think>": 151668,
}
TOKENIZER_VOCAB = 4096  # byte-level BPE trained on perfgate/data/prompts: every id stays below any real vocab size


class BuildError(RuntimeError):
    pass


def checkpoint_dir(spec: ModelSpec, cache: Path | None = None) -> Path:
    digest = hashlib.sha256(json.dumps([BUILDER_VERSION, spec.config], sort_keys=True).encode("utf-8")).hexdigest()[:12]
    return (cache or paths.cache_dir()) / "synthetic" / f"{spec.name}-{digest}"


def is_complete(folder: Path) -> bool:
    """True when the manifest is there and every file it lists exists with the size it recorded."""
    try:
        manifest = read_json(folder / MANIFEST)
        files = manifest["files"]
        return bool(files) and all((folder / name).stat().st_size == size for name, size in files.items())
    except (OSError, ValueError, KeyError, TypeError):
        return False


def ensure_checkpoint(spec: ModelSpec, device: str, cache: Path | None = None, timeout_s: float = 1800) -> Path:
    """The synthetic checkpoint's folder, built first (in a child process) if the cache has no complete one."""
    folder = checkpoint_dir(spec, cache)
    if is_complete(folder):
        return folder
    folder.parent.mkdir(parents=True, exist_ok=True)
    # Another process may be building it right now (two GPUs' workers starting together on a fresh machine race
    # for it): wait for it, then build only if it is still not there.
    with open(folder.with_name(f"{folder.name}.lock"), "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        if not is_complete(folder):
            _build_in_child(spec, folder, device, timeout_s)
            remove_older_builds(spec, folder)
    return folder


def remove_older_builds(spec: ModelSpec, kept: Path) -> None:
    """Delete this model's checkpoints that an older builder wrote: nothing of this perfgate loads them again, and
    a Qwen3-14B-shaped one holds 28 GB of a cache that a GPU runner keeps between jobs. Checkpoints of other
    configurations (another model, or this one changed) stay, and so do builds under way. An older perfgate sharing
    the cache at the same time (another branch's job on one runner) would rebuild its own; the workflow runs one GPU
    job at a time. The cleanup never fails the run that built."""
    own = re.compile(rf"{re.escape(spec.name)}-[0-9a-f]{{12}}")
    for folder in kept.parent.iterdir():
        if folder == kept or not own.fullmatch(folder.name) or not folder.is_dir():
            continue
        try:
            version = read_json(folder / MANIFEST)["builder_version"]
        except (OSError, ValueError, KeyError, TypeError):
            continue  # not a finished build (or not ours)
        if isinstance(version, int) and version < BUILDER_VERSION:
            shutil.rmtree(folder, ignore_errors=True)
            try:
                folder.with_name(f"{folder.name}.lock").unlink(missing_ok=True)
            except OSError:
                pass


def _build_in_child(spec: ModelSpec, folder: Path, device: str, timeout_s: float) -> None:
    if folder.exists():  # half-written by a run that was killed: never load it
        shutil.rmtree(folder)
    cmd = [sys.executable, "-m", "perfgate.synthetic", "--config", json.dumps(spec.config)]
    cmd += ["--out", str(folder), "--device", device]
    env = dict(os.environ, PYTHONPATH=os.pathsep.join([str(paths.REPO_ROOT), os.environ.get("PYTHONPATH", "")]))
    proc = subprocess.run(cmd, capture_output=True, text=True, timeout=timeout_s, env=env)
    if proc.returncode != 0 or not is_complete(folder):
        tail = "\n".join((proc.stderr or "").strip().splitlines()[-15:])
        raise BuildError(f"building the synthetic checkpoint {spec.source} into {folder} failed:\n{tail}")


def build(config: dict, out: Path, device: str) -> None:
    """Build into `<out>.tmp-<pid>`, then rename to `out`."""
    import torch
    from transformers import AutoConfig, AutoModelForCausalLM

    tmp = out.with_name(f"{out.name}.tmp-{os.getpid()}")
    shutil.rmtree(tmp, ignore_errors=True)
    tmp.mkdir(parents=True)
    started = time.perf_counter()
    torch.manual_seed(SEED)
    cfg = AutoConfig.for_model(**config)
    # The weights are drawn by the model class's own initialisation (normal with std=initializer_range for
    # linear and embedding weights, ones for norms): the scale a real checkpoint starts training from.
    with torch.device(device):
        model = AutoModelForCausalLM.from_config(cfg, dtype=getattr(torch, config.get("torch_dtype", "bfloat16")))
    model.generation_config.do_sample = False
    model.save_pretrained(tmp, max_shard_size="4GB", safe_serialization=True)
    del model
    save_tokenizer(build_tokenizer(config), tmp)
    files = {p.name: p.stat().st_size for p in sorted(tmp.iterdir()) if p.is_file()}
    manifest = {
        "builder_version": BUILDER_VERSION,
        "config": config,
        "device": device,
        "files": files,
        "seconds": round(time.perf_counter() - started, 1),
        "seed": SEED,
        "torch": torch.__version__,
    }
    write_json_atomic(tmp / MANIFEST, manifest)
    os.replace(tmp, out)


def save_tokenizer(tok, folder: Path) -> None:
    """Save so that transformers 4.x loads it too: transformers 5 names its class TokenizersBackend in
    tokenizer_config.json, which 4.x does not know; PreTrainedTokenizerFast is the same class under the name that
    both read (an A/B run may put another release on the base side)."""
    tok.save_pretrained(folder)
    path = folder / "tokenizer_config.json"
    data = json.loads(path.read_text(encoding="utf-8"))
    data["tokenizer_class"] = "PreTrainedTokenizerFast"
    path.write_text(json.dumps(data, indent=2, ensure_ascii=False) + "\n", encoding="utf-8")


def build_tokenizer(config: dict):
    """A byte-level BPE tokenizer trained on perfgate/data/prompts, with Qwen's special tokens at Qwen's ids and a
    Qwen3-style chat template. Its ids all fall inside the model's vocabulary."""
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers
    from transformers import PreTrainedTokenizerFast

    vocab_size = config["vocab_size"]
    specials = {tok: i for tok, i in QWEN_SPECIAL_TOKENS.items() if i < vocab_size}
    if len(specials) < len(QWEN_SPECIAL_TOKENS):  # a vocabulary smaller than Qwen's: put them at its end
        top = vocab_size - len(QWEN_SPECIAL_TOKENS)
        specials = {tok: top + n for n, tok in enumerate(QWEN_SPECIAL_TOKENS)}
    trained_size = min(TOKENIZER_VOCAB, min(specials.values()))
    bpe = Tokenizer(models.BPE())
    bpe.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    bpe.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(
        vocab_size=trained_size, initial_alphabet=pre_tokenizers.ByteLevel.alphabet(), show_progress=False
    )
    bpe.train_from_iterator(corpus_lines(), trainer)
    # Put the special tokens at fixed ids by editing the serialised tokenizer (the trainer would number them
    # right after the learned vocabulary); the BPE model's vocabulary must hold them too, or they are renumbered.
    data = json.loads(bpe.to_str())
    data["model"]["vocab"].update(specials)
    data["added_tokens"] = [
        {
            "id": i,
            "content": tok,
            "single_word": False,
            "lstrip": False,
            "rstrip": False,
            "normalized": False,
            "special": True,
        }
        for tok, i in sorted(specials.items(), key=lambda kv: kv[1])
    ]
    tok = PreTrainedTokenizerFast(
        tokenizer_object=Tokenizer.from_str(json.dumps(data)),
        eos_token="<|im_end|>",
        pad_token="<|endoftext|>",
        model_max_length=config.get("max_position_embeddings", 32768),
    )
    tok.chat_template = paths.CHAT_TEMPLATE.read_text(encoding="utf-8")
    return tok


def corpus_lines() -> list[str]:
    lines: list[str] = []
    for path in sorted(paths.PROMPTS.glob("*.txt")):
        lines.extend(path.read_text(encoding="utf-8").splitlines())
    return lines


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--config", required=True, help="the architecture config, as JSON text")
    parser.add_argument("--out", required=True, type=Path)
    parser.add_argument("--device", default="cpu")
    args = parser.parse_args(argv)
    build(json.loads(args.config), args.out, args.device)
    return 0


if __name__ == "__main__":
    sys.exit(main())
