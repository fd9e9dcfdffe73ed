"""perfgate installed as a plugin into a fresh virtual environment and used from another repository, offline: the
repository declares its model and a variant with its own loader in pyproject.toml, `pytest --perf` measures there,
and everything it writes is under that repository's results/ (the checkpoint cache aside)."""

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from perfgate import paths

# on one pytest-xdist worker (make test: --dist loadgroup), so that the module-scoped venv is built once
pytestmark = pytest.mark.xdist_group("install")

PYPROJECT = """\
[tool.perfgate]
model = "synthetic:qwen3-micro"
device = "cpu"
contexts = [32]
new-tokens = 4
rounds = 2
max-rounds = 2
warmup = 0
reference = "none"
agent = "off"
plots = false

[tool.perfgate.variants.my-fp32]
base = "hf-fp32"
loader = "myloader:load"
"""

LOADER = """\
import os
from pathlib import Path


def load(path, device, max_seq_length):
    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer

    with open(Path(__file__).parent / "loader-calls.txt", "a") as calls:
        calls.write(f"{os.getpid()} {device} {max_seq_length}\\n")
    model = AutoModelForCausalLM.from_pretrained(path, dtype=torch.float32, device_map="cpu").eval()
    return model, AutoTokenizer.from_pretrained(path)
"""


@pytest.fixture(scope="module")
def venv(tmp_path_factory: pytest.TempPathFactory, make_venv) -> Path:
    """A fresh venv with perfgate installed (not editable) from a copy of this tree; the running interpreter's
    packages (torch, transformers, pytest...) reach it through a .pth file, since they are not in the base
    interpreter's site-packages."""
    root = tmp_path_factory.mktemp("install")
    source = root / "source"
    shutil.copytree(paths.PACKAGE, source / "perfgate", ignore=shutil.ignore_patterns("__pycache__"))
    for name in ("pyproject.toml", "README.md"):
        shutil.copy2(paths.REPO_ROOT / name, source / name)
    python = make_venv(root / "venv")
    subprocess.run(
        [sys.executable, "-m", "pip", "--python", str(python), "install", "-q", "--no-deps", "--no-build-isolation",
         "--no-index", str(source)],
        check=True, env=_clean_env(), capture_output=True,
    )  # fmt: skip
    return python


def _clean_env(**extra: str) -> dict[str, str]:
    """No PYTHONPATH (the installed perfgate, not this tree's) and no perfgate settings of the caller's."""
    env = {k: v for k, v in os.environ.items() if k != "PYTHONPATH" and not k.startswith(("PERF_", "PERFGATE_"))}
    for name in ("MODEL_NAME", "MAX_TOKENS", "MAX_SEQ_LENGTH", "TEST_SET_SIZE", "GITHUB_STEP_SUMMARY"):
        env.pop(name, None)
    return {**env, **extra}


def _pytest(python: Path, cwd: Path, *args: str, **env: str) -> subprocess.CompletedProcess:
    # -P: not this folder first on sys.path, so that `perfgate` is the installed one
    cmd = [str(python), "-P", "-m", "pytest", "-p", "no:cacheprovider", *args]
    return subprocess.run(cmd, cwd=cwd, capture_output=True, text=True, env=_clean_env(**env), timeout=600)


def _files(folder: Path) -> set[str]:
    return {str(p.relative_to(folder)) for p in folder.rglob("*") if p.is_file() and "__pycache__" not in p.parts}


def test_a_repository_of_its_own_gates_its_own_variant(venv, perf_cache, micro_checkpoint, tmp_path):
    repo, home = tmp_path / "repo", tmp_path / "home"
    (repo / "tests").mkdir(parents=True)
    home.mkdir()
    (repo / "pyproject.toml").write_text(PYPROJECT)
    (repo / "myloader.py").write_text(LOADER)
    (repo / "tests" / "test_unit.py").write_text("def test_unit():\n    assert True\n")
    git = ["git", "-c", "user.name=t", "-c", "user.email=t@t", "-c", "init.defaultBranch=main"]
    subprocess.run([*git, "init", "-q"], cwd=repo, check=True)
    subprocess.run([*git, "add", "."], cwd=repo, check=True)
    subprocess.run([*git, "commit", "-qm", "a user's repository"], cwd=repo, check=True)
    head = subprocess.run(["git", "rev-parse", "HEAD"], cwd=repo, capture_output=True, text=True).stdout.strip()
    before = _files(repo)
    env = {"PERFGATE_CACHE": str(perf_cache), "HOME": str(home), "XDG_CACHE_HOME": str(home / ".cache")}

    # its unit tests alone: the plugin is there and does nothing
    unit = _pytest(venv, repo, "tests", **env)
    assert unit.returncode == 0, unit.stdout + unit.stderr
    said = [line for line in unit.stdout.splitlines() if "perfgate" in line]
    assert said == [line for line in said if line.startswith("plugins: perfgate-")] and said, unit.stdout
    assert _files(repo) == before

    update = _pytest(venv, repo, "--perf", "--perf-update-baselines", "-k", "not fidelity", "-rs", **env)
    assert update.returncode == 0, update.stdout + update.stderr
    assert "2 passed" in update.stdout and "test_unit" not in update.stdout, update.stdout
    gate = _pytest(venv, repo, "--perf", "-k", "not fidelity", **env)
    assert gate.returncode == 0, gate.stdout + gate.stderr
    assert "2 passed" in gate.stdout and "gate against " in gate.stdout, gate.stdout

    calls = (repo / "loader-calls.txt").read_text().splitlines()
    assert len(calls) == 2 and all(c.endswith(" cpu 36") for c in calls), calls  # one load per run, its own loader
    written = _files(repo) - before
    runs = sorted(f for f in written if f.startswith("results/runs/"))
    assert len(runs) == 2 and "results/baselines/cpu.json" in written, written
    assert written - set(runs) <= {"results/baselines/cpu.json", "loader-calls.txt"} | {
        f for f in written if f.startswith(("results/reports/", ".benchmarks/"))
    }, written
    baseline = json.loads((repo / "results" / "baselines" / "cpu.json").read_text())
    assert "my-fp32" in json.dumps(baseline["models"]["synthetic:qwen3-micro"])
    run = json.loads((repo / runs[-1]).read_text())
    assert run["machine"]["commit"].startswith(head)  # the measured repository's commit, not perfgate's
    assert run["variants"]["my-fp32"]["class"] == "Qwen3ForCausalLM"
    assert not _files(home), _files(home)  # nothing in the user's home: the cache is PERFGATE_CACHE


def test_installed_beside_this_trees_conftest_the_plugin_is_registered_once(venv, tmp_path):
    # the installed plugin (pytest11) and the root conftest.py's pytest_plugins, or -p perfgate.plugin, name it alike
    tree = tmp_path / "tree"
    shutil.copytree(paths.REPO_ROOT / "perf_tests", tree / "perf_tests", ignore=shutil.ignore_patterns("__pycache__"))
    shutil.copy2(paths.REPO_ROOT / "conftest.py", tree / "conftest.py")
    (tree / "pytest.ini").write_text("[pytest]\n")
    for extra in ((), ("-p", "perfgate.plugin")):
        result = _pytest(venv, tree, *extra, "perf_tests", "--co", "-q", "--perf-device=cpu", "--perf-agent=off")
        assert result.returncode == 0, result.stdout + result.stderr
        assert "test_decode[hf-fp32-ctx128]" in result.stdout
