"""Fixtures for perfgate's own tests: synthetic checkpoints built once per test session (shared by pytest-xdist's
workers), and `run_perf`, the perf suite in a child pytest.

Most end-to-end tests run on synthetic:qwen3-micro (two layers, an 8192-token vocabulary: about 1 M parameters,
every worker call a fraction of the tiny model's), since they test what perfgate does around a model, not the
model; test_perf_suite runs the perf suite on synthetic:qwen3-tiny, the CPU's default model, as `make perf` does.
"""

from __future__ import annotations

import os
import signal
import site
import subprocess
import sys
import time
from pathlib import Path

import numpy  # noqa: F401  (see below)
import pytest

from perfgate import models, paths, synthetic

# pytester puts sys.modules back as it was after each test, and numpy's C extension cannot be loaded twice in one
# process: imported first inside such a test (by matplotlib, for a report), numpy would fail to import in the next.
# Imported here, it is in every snapshot.

TEST_MODEL = "synthetic:qwen3-micro"


@pytest.fixture(scope="session")
def shared_synthetic(pytestconfig: pytest.Config, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The test session's synthetic checkpoints. Under pytest-xdist every worker's temporary folder lies in the
    controller's, and the checkpoints go there, so that each is built once for the session:
    synthetic.ensure_checkpoint's lock lets one worker build it while the others wait for it."""
    base = tmp_path_factory.getbasetemp()
    folder = (base.parent if hasattr(pytestconfig, "workerinput") else base) / "perfgate-synthetic"
    folder.mkdir(exist_ok=True)
    return folder


@pytest.fixture(scope="session")
def perf_cache(tmp_path_factory: pytest.TempPathFactory, shared_synthetic: Path) -> Path:
    """This pytest process's perfgate cache (its worker logs, fidelity logits), with the session's checkpoints as
    its synthetic/ folder: two child runs at once must not write the same worker log."""
    cache = tmp_path_factory.mktemp("perfgate-cache")
    (cache / "synthetic").symlink_to(shared_synthetic, target_is_directory=True)
    return cache


@pytest.fixture(scope="session")
def tiny_spec() -> models.ModelSpec:
    return models.resolve("synthetic:qwen3-tiny")


@pytest.fixture(scope="session")
def tiny_checkpoint(perf_cache: Path, tiny_spec: models.ModelSpec) -> Path:
    return synthetic.ensure_checkpoint(tiny_spec, "cpu", perf_cache)


@pytest.fixture(scope="session")
def micro_spec() -> models.ModelSpec:
    return models.resolve(TEST_MODEL)


@pytest.fixture(scope="session")
def micro_checkpoint(perf_cache: Path, micro_spec: models.ModelSpec) -> Path:
    return synthetic.ensure_checkpoint(micro_spec, "cpu", perf_cache)


# Fixtures of the tests that start child processes (a child pytest, a worker, a checkpoint's build, a venv).
STARTS_CHILDREN = {"run_perf", "run_perf_shared", "pytester", "make_venv", "tiny_checkpoint", "micro_checkpoint"}


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    """The modules with tests that start child processes first, each in its own order, then the others: pytest-xdist
    hands tests out in this order once the xdist groups are out (--dist loadgroup), so both workers end on tests of
    milliseconds rather than one waiting out the other's last child run. Whole modules move, so that a module-scoped
    fixture is still made once in a run without pytest-xdist."""
    heavy = {item.module for item in items if STARTS_CHILDREN & set(getattr(item, "fixturenames", ()))}
    items.sort(key=lambda item: getattr(item, "module", None) not in heavy)


# The environment's perfgate settings (the users' .env names among them), which no child run may pick up.
PERF_ENV = (
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
    # a CI job's step summary: every child run would append its report to the job's page
    "GITHUB_STEP_SUMMARY",
)
# What pytest-xdist tells its workers; a child run is a session of its own (under `make test -n`, pytest-benchmark
# would otherwise take the child for an xdist worker and turn its benchmarks off).
XDIST_ENV = ("PYTEST_XDIST_WORKER", "PYTEST_XDIST_WORKER_COUNT", "PYTEST_XDIST_TESTRUNUID")


# A child run loads only the plugins it uses (with PYTEST_DISABLE_PLUGIN_AUTOLOAD=1): the machine's own, such as
# hypothesis from the system site-packages, cost each child run about a second of CPU, and make test starts over a
# hundred of them. perfgate's plugin comes from the root conftest.py.
CHILD_PLUGINS = ("-p", "xdist.plugin", "-p", "pytest_timeout", "-p", "pytest_benchmark.plugin")


def perf_args(results: Path) -> tuple[str, ...]:
    """A child run of the real perf_tests on the micro model, its results in `results` (with CHILD_ENV)."""
    return (
        str(paths.REPO_ROOT / "perf_tests"),
        f"--rootdir={paths.REPO_ROOT}",
        *CHILD_PLUGINS,
        "-p",
        "no:cacheprovider",
        f"--perf-results-dir={results}",
        "--perf-device=cpu",
        f"--perf-model={TEST_MODEL}",  # whatever a .env of the user's says; a later option wins
        "--perf-max-seq-length=1000000",
        "--perf-agent=off",  # the agent's own tests turn it on (a later option wins)
        # PNG plots cost a child run 2-3 s of CPU (matplotlib), which two pytest-xdist workers on two cores wait for;
        # the runs that check them (the gate's canary run, the tiny run as `make perf` makes it) turn them on
        "--perf-plots=false",
        "-rs",
    )


@pytest.fixture(scope="module")
def run_perf_shared(tmp_path_factory: pytest.TempPathFactory, perf_cache: Path, micro_checkpoint: Path):
    """run_perf_shared(*args, **env): the child run of run_perf, for a module-scoped fixture whose results several
    tests share (a baseline that each then copies, or one run whose parts several tests read); the same environment
    as pytester gives run_perf's, with `env` added for this run (PERFGATE_FAULTS...). Results go to
    run_perf_shared.results, one folder for the module."""
    folder = tmp_path_factory.mktemp("shared-run")
    env = {k: v for k, v in os.environ.items() if k not in (*PERF_ENV, *XDIST_ENV, "PYTEST_ADDOPTS")}
    env.update(PERFGATE_CACHE=str(perf_cache), HOME=str(folder), PY_COLORS="0", PYTEST_DISABLE_PLUGIN_AUTOLOAD="1")
    results = folder / "results"

    def run(*args: str, **extra: str) -> pytest.RunResult:
        started = time.monotonic()
        cmd = [sys.executable, "-m", "pytest", f"--basetemp={folder / 'basetemp'}", *perf_args(results), *args]
        proc = subprocess.run(
            cmd, cwd=folder, env={**env, **extra}, capture_output=True, text=True, stdin=subprocess.DEVNULL
        )
        print(proc.stdout, proc.stderr)  # shown with the failure of a test that used it
        lines = (proc.stdout.splitlines(), proc.stderr.splitlines())
        return pytest.RunResult(proc.returncode, *lines, time.monotonic() - started)

    run.results = results
    return run


@pytest.fixture
def run_perf(pytester: pytest.Pytester, perf_cache: Path, micro_checkpoint: Path, monkeypatch: pytest.MonkeyPatch):
    """Run the real perf_tests in a child pytest on the micro model (a later --perf-model wins); results go to a
    temporary folder."""
    monkeypatch.setenv("PERFGATE_CACHE", str(perf_cache))
    monkeypatch.setenv("PYTEST_DISABLE_PLUGIN_AUTOLOAD", "1")  # with perf_args' CHILD_PLUGINS
    for name in (*PERF_ENV, *XDIST_ENV):
        monkeypatch.delenv(name, raising=False)
    results = pytester.path / "results"
    common = perf_args(results)

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


def _venv(folder: Path) -> Path:
    """A venv in `folder` made with --system-site-packages and no installs, its Python returned: the running
    interpreter's packages (torch, transformers, pytest...) reach it through a .pth file, since they are in this
    venv's site-packages, not the base interpreter's."""
    subprocess.run([sys.executable, "-m", "venv", "--without-pip", "--system-site-packages", str(folder)], check=True)
    python = folder / "bin" / "python"
    own = subprocess.run(
        [str(python), "-c", "import site; print(site.getsitepackages()[0])"], capture_output=True, text=True, check=True
    ).stdout.strip()
    (Path(own) / "running-interpreter.pth").write_text("\n".join(site.getsitepackages()) + "\n")
    return python


@pytest.fixture(scope="session")
def make_venv():
    """make_venv(folder) -> the Python of a fresh venv there that sees this interpreter's packages (_venv)."""
    return _venv
