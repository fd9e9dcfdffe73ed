"""Where perfgate keeps things: the repository's fixtures and results, and the checkpoint cache."""

from __future__ import annotations

import os
from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parent.parent
FIXTURES = REPO_ROOT / "fixtures"
MODEL_CONFIGS = FIXTURES / "models"
RESULTS = REPO_ROOT / "results"


def cache_dir() -> Path:
    """PERFGATE_CACHE, else $XDG_CACHE_HOME/perfgate, else ~/.cache/perfgate."""
    explicit = os.environ.get("PERFGATE_CACHE")
    if explicit:
        return Path(explicit).expanduser()
    base = os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache"
    return Path(base) / "perfgate"
