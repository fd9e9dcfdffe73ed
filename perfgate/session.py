"""The perf session: what one pytest run measures and keeps. conftest.py's hooks and fixtures hand off to it.

It holds the resolved options, the model, the selected variants and workloads, the worker of the variant
being measured (one at a time, so each is measured on an otherwise idle device), and every figure recorded;
it writes the run file after each test, so that a crash loses nothing already measured.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

from perfgate import machine, measure, models, paths, synthetic, variants
from perfgate.figures import Figure
from perfgate.runner import WorkerError, WorkerHandle
from perfgate.storage import write_json_atomic
from perfgate.trackers import Nvml, VramTracker
from perfgate.workloads import DecodeWorkload

RUN_SCHEMA = 1


class VariantUnavailable(Exception):
    """The variant cannot run here (no GPU, a package missing, too little memory): its tests skip."""


class VariantFailed(Exception):
    """The variant was tried and failed (out of memory while loading, a crash): its tests fail with this."""


@dataclass
class Loaded:
    variant: variants.Variant
    worker: WorkerHandle
    load: measure.LoadMeasurement


def detect_device(requested: str) -> str:
    import torch

    has_cuda = torch.cuda.is_available()
    if requested == "cuda" and not has_cuda:
        raise ValueError("--perf-device cuda: no CUDA device is visible to torch here")
    if requested == "auto":
        return "cuda" if has_cuda else "cpu"
    return requested


class PerfSession:
    def __init__(self, opts: dict[str, Any]) -> None:
        self.opts = opts
        self.device = detect_device(opts["device"])
        for name, value in measure_defaults(self.device).items():
            if opts.get(name) is None:
                opts[name] = value
        if opts["new_tokens"] < 2:
            raise ValueError(f"--perf-new-tokens = {opts['new_tokens']}: must be at least 2 (one decode step)")
        self.model = models.resolve(opts["model"] or models.default_model(self.device == "cuda"))
        self.variants = variants.select(opts["variants"], self.device)
        self.workloads = [DecodeWorkload(n, opts["new_tokens"]) for n in opts["contexts"]]
        self.cache = Path(opts["cache"]).expanduser() if opts["cache"] else paths.cache_dir()
        self.results_dir = Path(opts["results_dir"])
        if not self.results_dir.is_absolute():
            self.results_dir = paths.REPO_ROOT / self.results_dir
        self.started = datetime.now(timezone.utc)
        self.figures: list[Figure] = []
        self.loaded: Loaded | None = None
        self.failed: dict[str, str] = {}  # variant -> why it failed to load: its other tests fail fast
        self.load_info: dict[str, dict[str, Any]] = {}
        self._nvml: Nvml | None = None
        self._tracker: VramTracker | None = None
        self._machine: dict[str, Any] | None = None
        self._checkpoint: Path | None = None
        self.run_path: Path | None = None
        self.write_error: str | None = None

    # -- environment -------------------------------------------------------------------------------------

    @property
    def tracker(self) -> VramTracker:
        if self._tracker is None:
            if self.device == "cuda":
                self._nvml = Nvml()
                baseline = self._nvml.device_used_mib() if self._nvml.ok else None
                self._tracker = VramTracker(self._nvml, baseline)
            else:
                self._tracker = VramTracker(None, None)
        return self._tracker

    @property
    def machine(self) -> dict[str, Any]:
        if self._machine is None:
            tracker = self.tracker  # NVML first, so that the device description comes from it
            self._machine = machine.describe(self.device, tracker.nvml)
        return self._machine

    def checkpoint(self) -> str:
        """The folder or hub id every variant loads; a synthetic checkpoint is built on first use."""
        if self._checkpoint is None:
            if self.model.is_synthetic:
                self._checkpoint = synthetic.ensure_checkpoint(self.model, self.device, self.cache)
            else:
                self._checkpoint = Path(self.model.name) if self.model.kind == "folder" else None
        return str(self._checkpoint) if self._checkpoint else self.model.name

    @property
    def max_tokens(self) -> int:
        return max(w.total_tokens for w in self.workloads)

    def workload_unfit(self, workload: DecodeWorkload) -> str | None:
        limit = self.model.max_positions
        if limit and workload.total_tokens > limit:
            return (
                f"{workload.prompt_tokens} prompt + {workload.new_tokens} new tokens exceed the model's "
                f"context of {limit} (max_position_embeddings)"
            )
        return None

    # -- variants --------------------------------------------------------------------------------------------

    def acquire(self, name: str) -> Loaded:
        """The loaded variant, loading it (once) after releasing the previous one. Raises VariantUnavailable or
        VariantFailed."""
        if self.loaded and self.loaded.variant.name == name:
            return self.loaded
        if name in self.failed:
            raise VariantFailed(self.failed[name])
        variant = variants.REGISTRY[name]
        reason = variants.unavailable_reason(variant, self.device)
        if reason:
            raise VariantUnavailable(reason)
        self.release()
        reason = self.memory_shortfall(variant)
        if reason:
            raise VariantUnavailable(reason)
        path = self.checkpoint()
        env = {"HF_HUB_OFFLINE": "1", "TRANSFORMERS_OFFLINE": "1"} if self.model.kind != "hub" else {}
        env["UNSLOTH_DISABLE_STATISTICS"] = "1"
        worker = WorkerHandle(name, self.cache / "logs" / f"worker-{name}.log", env)
        try:
            load = measure.load(worker, self.tracker, variant, path, self.device, self.max_tokens, self.opts["timeout"])
        except WorkerError as exc:
            worker.kill()
            worker.close()
            what = "out of memory while loading" if exc.kind == "oom" else f"loading failed ({exc.kind})"
            self.failed[name] = f"{name}: {what}: {exc}"
            raise VariantFailed(self.failed[name]) from None
        self.loaded = Loaded(variant, worker, load)
        self.load_info[name] = load.model
        return self.loaded

    def memory_shortfall(self, variant: variants.Variant) -> str | None:
        need = variants.estimate_bytes(variant, self.model.config, self.max_tokens) / 2**30
        if self.device == "cuda":
            nvml = self.tracker.nvml
            if nvml is None or not nvml.ok:
                return None  # no way to know before loading; an OOM is then caught and reported
            free = nvml.device_free_mib() / 1024
        else:
            free = available_ram_gib()
            if free is None:
                return None
        if need > free * 0.95:
            return (
                f"{variant.name} needs about {need:.1f} GiB by estimate (weights, KV cache for "
                f"{self.max_tokens} tokens, workspace); {free:.1f} GiB is free on {self.device}"
            )
        return None

    def release(self) -> None:
        if self.loaded is not None:
            self.loaded.worker.close()
            self.loaded = None

    # -- measuring -------------------------------------------------------------------------------------------

    def measure_decode(self, loaded: Loaded, workload: DecodeWorkload, benchmark=None) -> measure.DecodeMeasurement:
        try:
            return measure.decode(
                loaded.worker,
                self.tracker,
                loaded.variant,
                workload,
                self.opts["rounds"],
                self.opts["warmup"],
                self.opts["canary_slowdown"],
                self.opts["timeout"],
                benchmark,
            )
        except WorkerError as exc:
            if exc.kind in ("died", "timeout"):
                self.release()
            if exc.kind == "oom":
                raise VariantFailed(
                    f"{loaded.variant.name} {workload.id}: out of memory while generating "
                    f"({workload.prompt_tokens} prompt + {workload.new_tokens} new tokens): {exc}"
                ) from None
            raise

    # -- recording -------------------------------------------------------------------------------------------

    def record(self, figures: list[Figure]) -> None:
        self.figures.extend(figures)
        self.write_run()

    def run_document(self) -> dict[str, Any]:
        return {
            "schema": RUN_SCHEMA,
            "started_at": self.started.isoformat(timespec="seconds"),
            "written_at": datetime.now(timezone.utc).isoformat(timespec="seconds"),
            "machine": self.machine,
            "model": {
                "source": self.model.source,
                "kind": self.model.kind,
                "parameters": models.parameter_count(self.model.config),
            },
            "options": {k: (list(v) if isinstance(v, tuple) else v) for k, v in self.opts.items()},
            "variants": {name: info for name, info in self.load_info.items()},
            "results": [f.to_dict() for f in self.figures],
        }

    def write_run(self) -> None:
        if not self.figures:
            return
        if self.run_path is None:
            stamp = self.started.strftime("%Y%m%dT%H%M%SZ")
            self.run_path = self.results_dir / "runs" / f"{stamp}_{self.machine['gpu_slug']}.json"
        try:
            write_json_atomic(self.run_path, self.run_document())
            self.write_error = None
        except OSError as exc:
            self.write_error = f"could not write the run file {self.run_path}: {exc}"

    def display(self, reporter) -> None:
        """The terminal summary: one table of every figure, then where the run file is."""
        if not self.figures and not self.failed:
            return
        from perfgate import table

        m = self.machine
        reporter.write_sep("=", "perfgate")
        reporter.write_line(
            f"{self.model.source} on {m['gpu']} · torch {m['versions']['torch']} · "
            f"transformers {m['versions']['transformers']}"
        )
        reporter.write_line("")
        reporter.write_line(table.render(self.figures))
        for why in self.failed.values():
            reporter.write_line(f"failed: {why.splitlines()[0]}")
        if self.write_error:
            reporter.write_line(self.write_error, red=True)
        elif self.run_path:
            reporter.write_line(f"run file: {self.run_path}")

    def finish(self) -> None:
        self.release()
        self.write_run()


def measure_defaults(device: str) -> dict[str, Any]:
    from perfgate.options import DEVICE_DEFAULTS

    return DEVICE_DEFAULTS[device]


def available_ram_gib() -> float | None:
    try:
        for line in open("/proc/meminfo", encoding="utf-8"):
            if line.startswith("MemAvailable:"):
                return int(line.split()[1]) / 2**20
    except OSError:
        pass
    return None
