"""Fixtures for perfgate's own tests: a synthetic tiny checkpoint built once per test session."""

from __future__ import annotations

import signal
import subprocess
import sys
from pathlib import Path

import pytest

from perfgate import models, paths, synthetic


@pytest.fixture(scope="session")
def perf_cache(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("perfgate-cache")


@pytest.fixture(scope="session")
def tiny_spec() -> models.ModelSpec:
    return models.resolve("synthetic:qwen3-tiny")


@pytest.fixture(scope="session")
def tiny_checkpoint(perf_cache: Path, tiny_spec: models.ModelSpec) -> Path:
    return synthetic.ensure_checkpoint(tiny_spec, "cpu", perf_cache)


@pytest.fixture
def run_perf(pytester: pytest.Pytester, perf_cache: Path, tiny_checkpoint: Path, monkeypatch: pytest.MonkeyPatch):
    """Run the real perf_tests in a child pytest on the tiny model; results go to a temporary folder."""
    monkeypatch.setenv("PERFGATE_CACHE", str(perf_cache))
    for name in (
        "PERF_MODEL",
        "PERF_PROFILE",
        "PERF_VARIANTS",
        "PERF_CONTEXTS",
        "PERF_ROUNDS",
        "PERF_NEW_TOKENS",
        "MODEL_NAME",
        "MAX_TOKENS",
        "MAX_SEQ_LENGTH",
        "PERF_MAX_SEQ_LENGTH",
        "PERFGATE_FAULTS",
    ):
        monkeypatch.delenv(name, raising=False)
    results = pytester.path / "results"

    common = (
        str(paths.REPO_ROOT / "perf_tests"),
        f"--rootdir={paths.REPO_ROOT}",
        "-p",
        "no:cacheprovider",
        f"--perf-results-dir={results}",
        "--perf-device=cpu",
        "--perf-model=synthetic:qwen3-tiny",  # whatever a .env of the user's says; a later option wins
        "--perf-max-seq-length=1000000",
        "--perf-agent=off",  # the agent's own tests turn it on (a later option wins)
        "-rs",
    )

    def run(*args: str) -> pytest.RunResult:
        return pytester.runpytest_subprocess(*common, *args)

    def popen(*args: str, own_group: bool = False, sigint_ignored: bool = False) -> subprocess.Popen:
        """The same child pytest, started and left running (its output, stderr merged, unbuffered on a pipe); with
        own_group, as the leader of a process group of its own (to be signalled as a terminal's Ctrl-C or
        `timeout` signal one: os.killpg); with sigint_ignored, as a script's background job (`cmd &`) starts: SIGINT
        ignored, in its children too."""
        monkeypatch.setenv("PYTHONUNBUFFERED", "1")
        cmd = [sys.executable, "-m", "pytest", *common, *args]
        ignore = (lambda: signal.signal(signal.SIGINT, signal.SIG_IGN)) if sigint_ignored else None
        return pytester.popen(
            cmd, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, start_new_session=own_group, preexec_fn=ignore
        )

    def read_until(proc: subprocess.Popen, marker: bytes, count: int = 1) -> bytes:
        """The child's output up to the chunk that holds `marker` (count times), so that a test sends its signal
        at that point."""
        seen = b""
        while seen.count(marker) < count:
            chunk = proc.stdout.read1(4096)
            assert chunk, seen.decode()  # it ended without saying it
            seen += chunk
        return seen

    run.results = results
    run.popen = popen
    run.read_until = read_until
    return run
