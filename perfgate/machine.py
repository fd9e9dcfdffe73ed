"""What a run was measured on: the GPU (or 'cpu'), its driver, and the versions of everything that moves the
numbers. Versions come from package metadata, never from importing: importing unsloth patches transformers."""

from __future__ import annotations

import os
import platform
import re
import subprocess
from importlib import metadata
from pathlib import Path

from perfgate import paths
from perfgate.trackers import Nvml

PACKAGES = ("torch", "transformers", "bitsandbytes", "unsloth", "unsloth_zoo", "accelerate", "nvidia-ml-py")


def version(package: str) -> str | None:
    try:
        return metadata.version(package)
    except metadata.PackageNotFoundError:
        return None


def slug(gpu_name: str) -> str:
    """'NVIDIA H200' -> 'nvidia-h200'; used in file names and to pick the baseline file."""
    return re.sub(r"[^a-z0-9]+", "-", gpu_name.lower()).strip("-") or "unknown"


def git_commit(repository: Path = paths.REPO_ROOT) -> str:
    """The measured repository's commit: PERFGATE_COMMIT where set; else HEAD (with '-dirty' for uncommitted
    changes); where the tree has no git metadata (some CI checkouts), GITHUB_SHA; else 'unknown'."""
    explicit = os.environ.get("PERFGATE_COMMIT")
    if explicit:  # said outright wins: a copied tree may carry a .git that is not the code's (seen on the H200)
        return explicit
    sha = _git(repository, "rev-parse", "--verify", "-q", "HEAD")
    if sha:
        return f"{sha}-dirty" if _git(repository, "status", "--porcelain", "--untracked-files=no") else sha
    return os.environ.get("GITHUB_SHA") or "unknown"


def _git(repository: Path, *args: str) -> str:
    try:
        proc = subprocess.run(["git", *args], cwd=repository, capture_output=True, text=True, timeout=10)
    except (OSError, subprocess.SubprocessError):
        return ""
    return proc.stdout.strip() if proc.returncode == 0 else ""


def cpu_name() -> str:
    try:
        for line in open("/proc/cpuinfo", encoding="utf-8"):
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or "unknown"


def describe(device: str, nvml: Nvml | None, repository: Path = paths.REPO_ROOT) -> dict:
    import torch

    info: dict = {
        "device": device,
        "cpu": cpu_name(),
        "python": platform.python_version(),
        "platform": platform.platform(),
        "cuda": torch.version.cuda,
        "commit": git_commit(repository),
        "versions": {p: version(p) for p in PACKAGES},
    }
    if device == "cuda" and nvml is not None and nvml.ok:
        info.update(nvml.device_info())
    elif device == "cuda":
        info.update(
            {"gpu": torch.cuda.get_device_name(0), "driver": "unknown", "gpu_memory_mib": None, "gpu_uuid": None}
        )
    else:
        info.update({"gpu": "cpu", "driver": None, "gpu_memory_mib": None, "gpu_uuid": None})
    info["gpu_slug"] = slug(info["gpu"])
    return info
