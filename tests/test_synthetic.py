import json
import shutil
import subprocess
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from types import SimpleNamespace

import pytest

from perfgate import synthetic


def test_checkpoint_is_complete_with_shards_and_tokenizer(tiny_checkpoint):
    names = {p.name for p in tiny_checkpoint.iterdir()}
    assert {"config.json", "model.safetensors", "tokenizer.json", "tokenizer_config.json"} <= names
    assert synthetic.is_complete(tiny_checkpoint)


def test_the_tokenizer_names_a_class_that_transformers_4_loads_too(tiny_checkpoint):
    # transformers 5 writes TokenizersBackend, which 4.x (an A/B run's base side, say) does not know
    config = json.loads((tiny_checkpoint / "tokenizer_config.json").read_text(encoding="utf-8"))
    assert config["tokenizer_class"] == "PreTrainedTokenizerFast"


def test_loads_through_the_ordinary_from_pretrained(tiny_checkpoint, tiny_spec):
    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer

    model = AutoModelForCausalLM.from_pretrained(tiny_checkpoint, dtype=torch.float32)
    assert model.config.hidden_size == tiny_spec.config["hidden_size"]
    # the model's own initialisation scale: std 0.02 for linear weights, ones for norms
    assert model.model.layers[0].mlp.up_proj.weight.std().item() == pytest.approx(0.02, rel=0.05)
    assert torch.all(model.model.norm.weight == 1)
    tok = AutoTokenizer.from_pretrained(tiny_checkpoint)
    assert tok.convert_tokens_to_ids("<|im_end|>") == 151645 == tok.eos_token_id
    assert tok.pad_token_id == 151643
    assert max(tok("Thanks for sending the revised schedule")["input_ids"]) < tiny_spec.config["vocab_size"]


def test_chat_template_renders_tool_calls(tiny_checkpoint):
    from transformers import AutoTokenizer

    tok = AutoTokenizer.from_pretrained(tiny_checkpoint)
    messages = [
        {"role": "system", "content": "You search the mailbox."},
        {"role": "user", "content": "When is the pallet audit?"},
        {
            "role": "assistant",
            "content": "",
            "tool_calls": [
                {"type": "function", "function": {"name": "search_emails", "arguments": {"keywords": ["audit"]}}}
            ],
        },
        {"role": "tool", "content": '[{"id": 7, "subject": "Re: audit"}]'},
    ]
    tools = [{"type": "function", "function": {"name": "search_emails", "parameters": {"type": "object"}}}]
    text = tok.apply_chat_template(messages, tools=tools, tokenize=False, add_generation_prompt=True)
    assert text.startswith("<|im_start|>system\nYou search the mailbox.\n\n# Tools")
    assert '<tool_call>\n{"name": "search_emails", "arguments": {"keywords": ["audit"]}}\n</tool_call>' in text
    assert "<|im_start|>user\n<tool_response>\n" in text
    assert text.endswith("<|im_start|>assistant\n")


def test_the_same_config_reuses_the_cache(tiny_checkpoint, tiny_spec, perf_cache):
    before = (tiny_checkpoint / synthetic.MANIFEST).stat().st_mtime_ns
    assert synthetic.ensure_checkpoint(tiny_spec, "cpu", perf_cache) == tiny_checkpoint
    assert (tiny_checkpoint / synthetic.MANIFEST).stat().st_mtime_ns == before


@pytest.fixture
def copying_builder(micro_checkpoint, monkeypatch):
    """The build's child process (perfgate.synthetic's main) replaced by a copy of the session's micro checkpoint into
    its --out folder, half a second long; the rest of synthetic._build_in_child runs as it is. The real build runs in
    every session, for the micro_checkpoint and tiny_checkpoint fixtures; here a child importing torch would cost each
    test 6 s of CPU."""

    def run(cmd, **kwargs):
        time.sleep(0.5)  # a build takes seconds: long enough for another process to look for it meanwhile
        shutil.copytree(micro_checkpoint, cmd[cmd.index("--out") + 1])
        return subprocess.CompletedProcess(cmd, 0, "", "")

    monkeypatch.setattr(synthetic, "subprocess", SimpleNamespace(run=run))


def test_processes_wanting_the_same_checkpoint_build_it_once(micro_spec, tmp_path, monkeypatch, copying_builder):
    """Two GPUs' pytest workers start on a fresh machine at once: one builds, the other waits and loads it (without
    the lock, both would build and the second's rename would fail, losing its test)."""
    cache = tmp_path / "cache"
    builds = []
    build_in_child = synthetic._build_in_child
    monkeypatch.setattr(synthetic, "_build_in_child", lambda *a: builds.append(a) or build_in_child(*a))
    start = threading.Barrier(2)

    def want() -> Path:
        start.wait()
        return synthetic.ensure_checkpoint(micro_spec, "cpu", cache)  # the smallest: any model's build locks alike

    with ThreadPoolExecutor(2) as pool:
        folders = [f.result() for f in [pool.submit(want), pool.submit(want)]]
    assert folders == [synthetic.checkpoint_dir(micro_spec, cache)] * 2
    assert len(builds) == 1 and synthetic.is_complete(folders[0])


def test_half_written_checkpoint_is_rebuilt_not_loaded(micro_checkpoint, micro_spec, tmp_path, copying_builder):
    cache = tmp_path / "cache"
    folder = synthetic.checkpoint_dir(micro_spec, cache)
    shutil.copytree(micro_checkpoint, folder)
    weights = folder / "model.safetensors"
    weights.write_bytes(weights.read_bytes()[:1000])  # as if the build had been killed while saving
    assert not synthetic.is_complete(folder)
    assert synthetic.ensure_checkpoint(micro_spec, "cpu", cache) == folder
    assert synthetic.is_complete(folder)


def test_a_new_builder_version_removes_the_checkpoints_the_older_one_wrote(
    micro_checkpoint, micro_spec, tmp_path, monkeypatch
):
    cache = tmp_path / "cache"

    def copy(spec, folder, *_):  # the build itself is tested above: here a copy stands in for it
        shutil.copytree(micro_checkpoint, folder)

    monkeypatch.setattr(synthetic, "_build_in_child", copy)
    older = synthetic.checkpoint_dir(micro_spec, cache).with_name(f"{micro_spec.name}-0123456789ab")
    shutil.copytree(micro_checkpoint, older)  # as the previous builder version left it
    manifest = json.loads((older / synthetic.MANIFEST).read_text())
    (older / synthetic.MANIFEST).write_text(json.dumps({**manifest, "builder_version": synthetic.BUILDER_VERSION - 1}))
    other = older.with_name(f"{micro_spec.name}-ba9876543210")  # another configuration, same builder: kept
    shutil.copytree(micro_checkpoint, other)
    folder = synthetic.ensure_checkpoint(micro_spec, "cpu", cache)
    assert synthetic.is_complete(folder) and not older.exists() and synthetic.is_complete(other)


def test_folder_without_manifest_is_incomplete(tmp_path):
    (tmp_path / "config.json").write_text("{}")
    assert not synthetic.is_complete(tmp_path)
    (tmp_path / synthetic.MANIFEST).write_text(json.dumps({"files": {"config.json": 999}}))
    assert not synthetic.is_complete(tmp_path)
