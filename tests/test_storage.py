import json

import pytest

from perfgate.storage import read_json, write_json_atomic


def test_sorted_indented_and_readable(tmp_path):
    path = tmp_path / "sub" / "run.json"
    write_json_atomic(path, {"b": 1, "a": [1, 2]})
    text = path.read_text()
    assert text.index('"a"') < text.index('"b"') and text.endswith("\n")
    assert read_json(path) == {"a": [1, 2], "b": 1}


def test_a_failed_write_leaves_the_old_file_and_no_debris(tmp_path):
    path = tmp_path / "baseline.json"
    write_json_atomic(path, {"value": 1})
    with pytest.raises(ValueError):
        write_json_atomic(path, {"value": float("nan")})  # JSON has no NaN: refused before writing
    assert json.loads(path.read_text()) == {"value": 1}
    assert [p.name for p in tmp_path.iterdir()] == ["baseline.json"]


def test_interrupted_mid_write_keeps_the_old_file(tmp_path, monkeypatch):
    path = tmp_path / "baseline.json"
    write_json_atomic(path, {"value": 1})

    def crash(*args):
        raise KeyboardInterrupt

    monkeypatch.setattr("perfgate.storage.os.replace", crash)
    with pytest.raises(KeyboardInterrupt):
        write_json_atomic(path, {"value": 2})
    assert json.loads(path.read_text()) == {"value": 1}
    assert [p.name for p in tmp_path.iterdir()] == ["baseline.json"]
