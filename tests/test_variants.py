import pytest

from perfgate import models, variants


def test_the_seven_named_variants_are_registered():
    for name in ("hf-fp16", "hf-bf16", "hf-int8", "hf-nf4", "unsloth-4bit", "unsloth-bf16", "hf-bf16-static"):
        assert name in variants.REGISTRY
    assert variants.REFERENCE == "hf-fp16"


def test_defaults_per_device():
    gpu = [v.name for v in variants.select(None, "cuda")]
    cpu = [v.name for v in variants.select("", "cpu")]
    assert gpu == ["hf-fp16", "hf-bf16", "hf-int8", "hf-nf4", "hf-bf16-static", "unsloth-4bit", "unsloth-bf16"]
    assert cpu == ["hf-fp16", "hf-bf16", "hf-fp32", "hf-int8", "hf-nf4", "hf-bf16-static"]
    assert "hf-fp16-slow" not in gpu + cpu  # the canary runs only when asked for


def test_selection_keeps_registry_order():
    assert [v.name for v in variants.select("hf-nf4, hf-fp16", "cpu")] == ["hf-fp16", "hf-nf4"]


def test_unknown_variant_lists_the_known_ones():
    with pytest.raises(variants.UnknownVariant, match=r"unknown variant\(s\) hf-fp8.*known: hf-fp16"):
        variants.select("hf-fp16,hf-fp8", "cuda")


def test_unsloth_needs_a_gpu():
    reason = variants.unavailable_reason(variants.REGISTRY["unsloth-4bit"], "cpu")
    assert reason == "unsloth-4bit needs a CUDA GPU"


def test_missing_package_names_it_and_how_to_install(monkeypatch):
    monkeypatch.setattr(variants.importlib.util, "find_spec", lambda name: None if name == "unsloth" else object())
    reason = variants.unavailable_reason(variants.REGISTRY["unsloth-bf16"], "cuda")
    assert "needs unsloth" in reason and "pip install -e '.[unsloth]'" in reason


def test_memory_estimate_for_qwen3_14b():
    cfg = models.resolve("synthetic:qwen3-14b").config
    gib = {n: variants.estimate_bytes(variants.REGISTRY[n], cfg, 4096 + 128) / 2**30 for n in variants.REGISTRY}
    # fp16 weights alone are 27.5 GiB; the H200 run measured 30,436 MiB at ctx4096 for the whole process.
    assert 29 < gib["hf-fp16"] < 33
    assert gib["hf-nf4"] < gib["hf-int8"] < gib["hf-fp16"] < gib["hf-fp32"]


def test_torchao_int8_is_one_opt_in_entry_skipped_without_torchao(monkeypatch):
    torchao = variants.REGISTRY["hf-int8-torchao"]
    assert (torchao.backend, torchao.quantization, torchao.default_on) == ("transformers", "torchao-int8", frozenset())
    assert "hf-int8-torchao" not in [v.name for v in variants.select(None, "cuda")]
    monkeypatch.setattr(variants.importlib.util, "find_spec", lambda name: None)
    assert "needs torchao, which is not installed (pip install torchao)" in variants.unavailable_reason(torchao, "cuda")


def test_a_declared_variant_cannot_take_a_built_in_name():
    with pytest.raises(ValueError, match="'hf-fp32' is a built-in variant"):
        variants.register(variants.REGISTRY["hf-fp32"])
