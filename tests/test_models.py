import json

import pytest

from perfgate import models


def test_synthetic_qwen3_14b_is_the_real_config():
    spec = models.resolve("synthetic:qwen3-14b")
    c = spec.config
    assert spec.kind == "synthetic"
    assert (c["hidden_size"], c["num_hidden_layers"], c["intermediate_size"]) == (5120, 40, 17408)
    assert (c["num_attention_heads"], c["num_key_value_heads"], c["head_dim"]) == (40, 8, 128)
    assert (c["vocab_size"], c["tie_word_embeddings"], c["rope_theta"]) == (151936, False, 1000000)


def test_parameter_count_of_qwen3_14b():
    # Qwen3-14B: 14.8 B parameters, 13.2 B of them outside the embeddings (Qwen's model card).
    n = models.parameter_count(models.resolve("synthetic:qwen3-14b").config)
    assert n == 14_768_307_200
    assert n - 2 * 151936 * 5120 == pytest.approx(13.2e9, rel=0.01)


def test_parameter_count_matches_transformers(tiny_spec):
    from transformers import AutoConfig, AutoModelForCausalLM

    model = AutoModelForCausalLM.from_config(AutoConfig.for_model(**tiny_spec.config))
    assert models.parameter_count(tiny_spec.config) == sum(p.numel() for p in model.parameters())


def test_kv_cache_bytes():
    cfg = models.resolve("synthetic:qwen3-14b").config
    # 2 (k and v) x 40 layers x 8 heads x 128 dims x 2 bytes = 160 KiB per token
    assert models.kv_cache_bytes(cfg, 1) == 163840


def test_unknown_synthetic_name_lists_the_known_ones():
    with pytest.raises(models.ModelError, match="qwen3-14b.*qwen3-tiny"):
        models.resolve("synthetic:nope")


def test_folder_without_config_is_refused(tmp_path):
    with pytest.raises(models.ModelError, match="no config.json"):
        models.resolve(str(tmp_path))


def test_folder_with_config(tmp_path):
    (tmp_path / "config.json").write_text(json.dumps({"model_type": "qwen3", "max_position_embeddings": 512}))
    spec = models.resolve(str(tmp_path))
    assert spec.kind == "folder" and spec.max_positions == 512


def test_neither_folder_nor_hub_id_nor_synthetic():
    with pytest.raises(models.ModelError, match="neither a folder, a hub id"):
        models.resolve("not a model at all")


def test_hub_id_offline_and_not_cached(monkeypatch, tmp_path):
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    monkeypatch.setenv("HF_HUB_CACHE", str(tmp_path))
    with pytest.raises(models.ModelError, match="HF_HUB_OFFLINE is set"):
        models.resolve("someone/some-model")
