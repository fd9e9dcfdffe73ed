"""A wrong setup gets one clear line before any model loads: the value, where it came from, and what is allowed
(a pytest usage error, exit status 4), never a traceback per test or a wait on an unreachable hub.

    PYTHONPATH=$PWD python -m pytest tests/test_setup_errors.py -q
"""

import json
import os
import time

import pytest

from perfgate import models, paths
from tests.terminal import last_run, perfgate_lines


def one_error_line(result: pytest.RunResult) -> str:
    """The usage error's line; nothing else of perfgate's, and no traceback."""
    assert result.ret == 4, result.stdout.str() + result.stderr.str()
    output = result.stdout.str() + result.stderr.str()
    assert "Traceback" not in output
    errors = [line for line in result.stderr.lines if line.startswith("ERROR: ")]
    assert len(errors) == 1, output
    return errors[0]


@pytest.mark.parametrize(
    ("where", "says"),
    [("file", "is a file, not a folder"), ("file/below", "cannot be created: a file is in its way")],
)
def test_a_cache_that_cannot_be_a_folder_names_perfgate_cache(run_perf, monkeypatch, tmp_path, where, says):
    (tmp_path / "file").write_text("not a folder")
    monkeypatch.setenv("PERFGATE_CACHE", str(tmp_path / where))
    line = one_error_line(run_perf("--perf-variants=hf-fp32"))
    assert line.startswith(f"ERROR: --perf-cache (from PERFGATE_CACHE) = '{tmp_path / where}' {says}; ")


@pytest.fixture
def own_repository(pytester: pytest.Pytester, monkeypatch: pytest.MonkeyPatch) -> pytest.Pytester:
    """A repository of the user's (its own rootdir and .env) whose pytest loads perfgate's hooks as a plugin."""
    for name in ("PERF_MODEL", "MODEL_NAME", "HF_HUB_OFFLINE", "HTTPS_PROXY", "https_proxy", "PERFGATE_FAULTS"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("PYTHONPATH", os.pathsep.join([str(paths.REPO_ROOT), os.environ.get("PYTHONPATH", "")]))
    monkeypatch.setenv("HF_HUB_CACHE", str(pytester.path / "hf-cache"))  # an empty Hugging Face cache
    monkeypatch.setenv("PERFGATE_CACHE", str(pytester.path / "perfgate-cache"))
    pytester.makeini("[pytest]\n")
    pytester.makepyfile(test_perf="def test_decode(variant_name):\n    pass\n")  # a perf test starts the session
    return pytester


def test_a_model_from_dotenv_that_no_cache_holds_fails_at_once_without_the_hub(own_repository, monkeypatch):
    (own_repository.path / ".env").write_text("MODEL_NAME=garbage/nonexistent\n")
    monkeypatch.setenv("HF_ENDPOINT", "http://127.0.0.1:9")  # nothing listens there: the hub is unreachable
    started = time.monotonic()
    result = own_repository.runpytest_subprocess("-p", "perfgate.plugin", "--perf-device=cpu", "--co")
    line = one_error_line(result)
    assert line.startswith("ERROR: --perf-model (from MODEL_NAME in .env) = 'garbage/nonexistent': not in the local ")
    assert "the hub http://127.0.0.1:9 cannot be reached" in line
    # the child's own start (torch, transformers) takes seconds on a 2-core machine; the hub's retries took 25 s
    assert time.monotonic() - started < 20


def test_a_hub_id_offline_says_hf_hub_offline_and_where_the_value_came_from(monkeypatch, tmp_path):
    from huggingface_hub import constants

    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    monkeypatch.setattr(constants, "HF_HUB_CACHE", str(tmp_path))
    with pytest.raises(models.ModelError, match=r"^--perf-model \(from MODEL_NAME\) = 'a/b': .* HF_HUB_OFFLINE is set"):
        models.resolve("a/b", "MODEL_NAME")


def test_the_hub_probe_answers_within_its_timeout():
    started = time.monotonic()
    why = models.hub_unreachable("http://127.0.0.1:9", 2.0)
    assert why and why.startswith("the hub http://127.0.0.1:9 cannot be reached (")
    assert time.monotonic() - started < 3


SMALL = ("--perf-variants=hf-fp32", "--perf-reference=none", "--perf-rounds=2", "--perf-new-tokens=4")
SMALL += ("--perf-contexts=16", "-k", "decode")


def test_a_baseline_file_of_another_gpu_and_model_is_named_and_not_used(run_perf):
    baseline = run_perf.results / "baselines" / "cpu.json"
    baseline.parent.mkdir(parents=True)
    shown_as = "results/baselines/cpu.json"
    entry = {"better": "higher", "tolerance": 0.45, "unit": "tok/s", "value": 1e9, "params": {"new_tokens": 4}}
    # an H200's file copied to this machine's name, with an impossible figure for the measured model's key as well
    models_ = {
        m: {"entries": {"hf-fp32/decode[ctx16]/decode_tok_per_s": entry}, "machine": {"gpu": "NVIDIA H200"}}
        for m in ("synthetic:qwen3-14b", "synthetic:qwen3-micro")
    }
    baseline.write_text(json.dumps({"schema": 1, "gpu": "NVIDIA H200", "gpu_slug": "nvidia-h200", "models": models_}))
    result = run_perf(*SMALL)
    result.assert_outcomes(passed=1)  # its entries are not judged against: no failure against 1e9 tok/s
    shown = perfgate_lines(result)
    said = (
        f"baseline: {shown_as} was written for nvidia-h200 / synthetic:qwen3-14b, synthetic:qwen3-micro, "
        "not for cpu / synthetic:qwen3-micro: not used"
    )
    assert said in shown
    assert shown[-1].endswith(f"run `make baseline` and commit {shown_as}")
    run = last_run(run_perf.results)
    assert run["baseline_check"]["problem"] == said.removeprefix("baseline: ")
    report = sorted((run_perf.results / "reports").glob("*.md"))[-1].read_text()
    assert f"- **{said}**" in report
