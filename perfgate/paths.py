"""Where perfgate keeps things: the data shipped inside the package, the checkpoint cache, and (in a working tree
of this repository) its own fixtures and results. A run's results go under the repository being measured, pytest's
rootdir (perfgate.plugin), never under the package."""

from __future__ import annotations

import os
from pathlib import Path

PACKAGE = Path(__file__).resolve().parent
DATA = PACKAGE / "data"  # model configs, prompt text, the chat template, fidelity inputs: installed with the package
MODEL_CONFIGS = DATA / "models"
CHAT_TEMPLATE = DATA / "chat_template.jinja"
PROMPTS = DATA / "prompts"
FIDELITY = DATA / "fidelity"

# The folder perfgate is imported from: this repository's working tree, or site-packages once installed. The worker
# and checkpoint-builder processes get it on their PYTHONPATH so that they import the same perfgate as pytest.
REPO_ROOT = PACKAGE.parent
FIXTURES = REPO_ROOT / "fixtures"  # this repository's reference suite (perf_tests/): the agent workload's data
RESULTS = REPO_ROOT / "results"  # this repository's results (`make report`); a run writes under its rootdir


def cache_dir() -> Path:
    """PERFGATE_CACHE, else $XDG_CACHE_HOME/perfgate, else ~/.cache/perfgate."""
    explicit = os.environ.get("PERFGATE_CACHE")
    if explicit:
        return Path(explicit).expanduser()
    base = os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache"
    return Path(base) / "perfgate"
