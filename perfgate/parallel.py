"""Several GPUs: pytest-xdist runs one pytest worker per GPU (`make perf` passes `-n <GPUs> --dist loadgroup`
when more than one is visible). Each pytest worker is pinned to one GPU with CUDA_VISIBLE_DEVICES before anything
touches CUDA, every test of a variant goes to one worker (an xdist_group per variant, so each variant is loaded
once), and the controller merges the workers' run documents into one run file, one summary and one baseline
update. Baselines are per GPU model, so two H200s are gated against the same nvidia-h200.json.
"""

from __future__ import annotations

import os
import secrets
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

from perfgate import affinity, phases


def new_run_id() -> str:
    """The controller's name for this run, handed to its workers: each names its part of the run file after it
    (results/runs/.parts/<run>_<worker>.json), so that the controller finds the parts it was not handed."""
    return f"{datetime.now(timezone.utc).strftime('%Y%m%dT%H%M%SZ')}-{secrets.token_hex(4)}"


def worker_index(workerid: str) -> int:
    """'gw3' -> 3."""
    return int(workerid.removeprefix("gw"))


def visible_gpus() -> list[str]:
    """The GPUs this process may use, as CUDA_VISIBLE_DEVICES names them (or indices from NVML); [] without any."""
    listed = os.environ.get("CUDA_VISIBLE_DEVICES")
    if listed is not None:
        return [g.strip() for g in listed.split(",") if g.strip()]
    try:
        import pynvml

        pynvml.nvmlInit()
        return [str(i) for i in range(pynvml.nvmlDeviceGetCount())]
    except Exception:  # no driver, no NVML: no GPU to spread over
        return []


def pin_worker(workerid: str) -> str | None:
    """Pin this pytest worker (and the model workers it starts) to one GPU; returns it, or None with no GPUs."""
    gpus = visible_gpus()
    if not gpus:
        return None
    gpu = gpus[worker_index(workerid) % len(gpus)]
    os.environ["CUDA_VISIBLE_DEVICES"] = gpu
    share_cores(worker_index(workerid), int(os.environ.get("PYTEST_XDIST_WORKER_COUNT", "1")))
    return gpu


def share_cores(index: int, count: int) -> None:
    """Pytest worker `index` of `count` onto its own slice of the CPU cores, so that the cores each one pins its
    model workers to (perfgate.affinity.worker_cores, chosen from this process's cores) are not another's."""
    if count < 2 or not hasattr(os, "sched_getaffinity"):
        return
    cores = sorted(os.sched_getaffinity(0))
    size = len(cores) // count
    if size < 4:  # too few to pin anything: the session then pins nothing
        return
    affinity.pin_process(set(cores[index * size : (index + 1) * size]))


def shared_gpus(workers: dict[str, dict[str, Any]]) -> dict[str, list[str]]:
    """The GPUs that more than one pytest worker measured on (more workers than GPUs: `-n 2` on one GPU), each with
    its workers, from the run file's parallel.workers. Their device time was measured beside another worker's
    kernels: in the one such H200 run, two variants at once read 2-3 % above their baselines, at the edge of the 3 %
    limit, which a new machine start alone could not be told apart from (docs/usage.md, "Several GPUs")."""
    by_gpu: dict[str, list[str]] = {}
    for name, worker in workers.items():
        if worker.get("gpu") is not None:
            by_gpu.setdefault(str(worker["gpu"]), []).append(name)
    return {gpu: names for gpu, names in by_gpu.items() if len(names) > 1}


def worker_pids() -> list[int]:
    """This controller's pytest-xdist workers: its child processes that execnet started with its bootstrap line,
    read from /proc ([] where there is none, as off Linux)."""
    try:
        from execnet.gateway_io import popen_bootstrapline
    except ImportError:
        return []
    proc = Path("/proc")
    if not proc.is_dir():
        return []
    me, pids = os.getpid(), []
    for entry in proc.iterdir():
        if not entry.name.isdigit():
            continue
        try:  # 'pid (comm) state ppid ...'; comm may hold spaces and parentheses
            parent = int((entry / "stat").read_text().rsplit(")", 1)[1].split()[1])
            args = (entry / "cmdline").read_bytes().split(b"\0") if parent == me else []
        except (OSError, ValueError, IndexError):  # gone meanwhile, or not ours to read
            continue
        if popen_bootstrapline.encode() in args:
            pids.append(int(entry.name))
    return pids


def forward_signal(signum: int) -> list[int]:
    """Pass a signal that reached the controller alone (`timeout`, `kill PID`) on to its workers, so that each stops
    as a process group's signal would stop it, keeping its rounds so far; returns the workers signalled."""
    sent = []
    for pid in worker_pids():
        try:
            os.kill(pid, signum)
            sent.append(pid)
        except OSError:  # ended meanwhile
            pass
    return sent


def merge(documents: list[dict[str, Any]], options: dict[str, Any]) -> dict[str, Any]:
    """One run document from the workers' (each holding the variants it measured), in worker order."""
    documents = sorted(documents, key=lambda d: worker_index(d["parallel"]["worker"]))
    first = documents[0]
    merged = {
        k: v
        for k, v in first.items()
        if k not in ("results", "variants", "gpu_busy_at_start", "parallel", "not_started")
    }
    merged["options"] = options
    merged["started_at"] = min(d["started_at"] for d in documents)
    merged["written_at"] = max(d["written_at"] for d in documents)
    merged["results"] = [r for d in documents for r in d["results"]]
    merged["variants"] = {k: v for d in documents for k, v in d["variants"].items()}
    merged["gpu_busy_at_start"] = sorted({b for d in documents for b in d["gpu_busy_at_start"]})
    merged["not_started"] = [t for d in documents for t in d.get("not_started", [])]
    splits = {d["parallel"]["worker"]: d["time_split"] for d in documents if d.get("time_split")}
    if splits:  # each worker's seconds, and their sum per part
        merged["time_split"] = phases.merge(splits)
    merged["parallel"] = {
        "workers": {
            d["parallel"]["worker"]: {
                "gpu": d["parallel"]["gpu"],
                "variants": sorted({r["variant"] for r in d["results"]}),
                "machine": d["machine"] if d["machine"] != first["machine"] else "as above",
            }
            for d in documents
        }
    }
    return merged
