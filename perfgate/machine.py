"""What a run was measured on: the GPU (or 'cpu'), its driver, and the versions of everything that moves the
numbers. Versions come from package metadata, never from importing: importing unsloth patches transformers."""

from __future__ import annotations

import os
import platform
import re
import runpy
import subprocess
import sys
from importlib import metadata, util
from pathlib import Path

from perfgate import paths
from perfgate.trackers import Nvml, numa_nodes

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


def host_memory(sys_root: Path = Path("/sys")) -> dict:
    """How the host hands out memory, which the step log's per-worker placement (trackers.memory_placement) is read
    against: its NUMA nodes, and its transparent-huge-page mode (always, madvise or never; the bracketed choice of
    /sys/kernel/mm/transparent_hugepage/enabled). None for what the host does not say."""
    count = numa_nodes(sys_root / "devices" / "system" / "node")
    thp = None
    try:
        text = (sys_root / "kernel" / "mm" / "transparent_hugepage" / "enabled").read_text()
        thp = text.split("[", 1)[1].split("]", 1)[0] if "[" in text else None
    except OSError:
        pass
    return {"numa_nodes": count or None, "transparent_hugepages": thp}


def own_versions() -> dict:
    """What this process runs: its package versions, perfgate's commit and Python (a worker's answer to the op
    `versions`, so that an A/B run's two sides each say what they are)."""
    return {
        "versions": {p: version(p) for p in PACKAGES},
        "commit": git_commit(paths.REPO_ROOT),
        "python_version": platform.python_version(),
        "perfgate": str(paths.PACKAGE),
    }


# What tells that a CUDA driver is here without importing torch (1.6 s of CPU for each run on a 2-core machine):
# the driver's control device (Linux), its DirectX bridge (WSL), or NVML seeing a GPU.
DRIVER_NODES = ("/dev/nvidiactl", "/dev/dxg")


def may_have_cuda() -> bool:
    """False only where no NVIDIA driver can be here: then torch.cuda.is_available() is False too, and the caller
    need not import torch to learn it."""
    if os.environ.get("CUDA_VISIBLE_DEVICES", None) in ("", "-1"):
        return False
    if any(os.path.exists(node) for node in DRIVER_NODES):
        return True
    from perfgate.parallel import visible_gpus

    return bool(visible_gpus())


def torch_cuda() -> str | None:
    """The CUDA version torch was built for (torch.version.cuda), read from torch/version.py where torch is not
    imported yet: importing it only for this costs the controller 1.6 s of CPU."""
    if "torch" in sys.modules:
        return sys.modules["torch"].version.cuda
    spec = util.find_spec("torch")
    locations = spec.submodule_search_locations if spec else None
    path = Path(next(iter(locations))) / "version.py" if locations else None
    if path is None or not path.is_file():
        return None
    return runpy.run_path(str(path)).get("cuda")


def describe(device: str, nvml: Nvml | None, repository: Path = paths.REPO_ROOT) -> dict:
    info: dict = {
        "device": device,
        "cpu": cpu_name(),
        "host_memory": host_memory(),
        "python": platform.python_version(),
        "platform": platform.platform(),
        "cuda": torch_cuda(),
        "commit": git_commit(repository),
        "versions": {p: version(p) for p in PACKAGES},
    }
    if device == "cuda" and nvml is not None and nvml.ok:
        info.update(nvml.device_info())
    elif device == "cuda":
        import torch

        info.update(
            {"gpu": torch.cuda.get_device_name(0), "driver": "unknown", "gpu_memory_mib": None, "gpu_uuid": None}
        )
    else:
        info.update({"gpu": "cpu", "driver": None, "gpu_memory_mib": None, "gpu_uuid": None})
    info["gpu_slug"] = slug(info["gpu"])
    return info
