"""The perf session: what one pytest run measures and keeps. perfgate.plugin's hooks and fixtures hand off to it.

It holds the resolved options, the model, the selected variants and workloads, the workers of the variant
being measured and of the reference beside it, the baseline file, and every figure and verdict; it writes
the run file after each test, so that a crash loses nothing already measured. It orchestrates: the measurements
are perfgate.measure's and perfgate.driving's, the verdicts perfgate.judging's, the run file perfgate.runfile's,
which tests ran perfgate.progress's, and the terminal summary perfgate.display's.
"""

from __future__ import annotations

import functools
import os
import signal
import threading
from dataclasses import dataclass, replace
from datetime import datetime, timezone
from pathlib import Path
from typing import Any, NoReturn

from perfgate import (
    ab,
    affinity,
    baselines,
    driving,
    gate,
    machine,
    measure,
    models,
    options,
    paths,
    phases,
    runfile,
    synthetic,
    variants,
)
from perfgate.figures import Figure, figures_of
from perfgate.judging import RATIO, AbJudge, Judge, Judged, open_baseline, settle_state, too_noisy_to_write
from perfgate.progress import Progress
from perfgate.runner import WorkerError, WorkerHandle, fixed_layout, start_zygote
from perfgate.storage import unwritable_folder
from perfgate.trackers import Nvml, VramTracker
from perfgate.workloads import DecodeWorkload
from perfgate.zygote import Zygote

FIDELITY_REFERENCE = {"cpu": "hf-fp32", "cuda": "hf-bf16"}  # full precision where it is affordable


class VariantUnavailable(Exception):
    """The variant cannot run here (no GPU, a package missing, too little memory): its tests skip."""


class VariantFailed(Exception):
    """The variant was tried and failed (out of memory while loading, a crash): its tests fail with this."""

    def __init__(self, message: str, kind: str = "", exit_code: int | None = None) -> None:
        super().__init__(message)
        self.kind = kind  # how its worker failed to load (WorkerError.kind: "oom", "died", ...); "" otherwise
        self.exit_code = exit_code  # a worker that died: WorkerError.exit_code

    @property
    def out_of_memory_loading(self) -> bool:
        # a load that ran out of memory beside the other side of an A/B run is tried again alone (_load_both_sides)
        return self.kind == "oom"

    @property
    def killed_as_runs_are_interrupted(self) -> bool:
        """Its worker died of SIGINT or SIGTERM, the signals that interrupt a run (Ctrl-C, `timeout`)."""
        return self.kind == "died" and self.exit_code in (-signal.SIGINT, -signal.SIGTERM)


@dataclass
class Loaded:
    variant: variants.Variant
    worker: WorkerHandle
    load: measure.LoadMeasurement


def detect_device(requested: str) -> str:
    if requested == "cpu":
        return "cpu"
    # 'auto' where no NVIDIA driver is: the CPU, without importing torch; otherwise torch decides (a CPU build of
    # torch sees no GPU; a GPU that torch reaches without an NVIDIA driver's files, ROCm or Jetson, is asked for
    # with --perf-device cuda)
    has_cuda = requested == "cuda" or machine.may_have_cuda()
    if has_cuda:
        import torch

        has_cuda = torch.cuda.is_available()
    if requested == "cuda" and not has_cuda:
        raise ValueError("--perf-device cuda: no CUDA device is visible to torch here")
    if requested == "auto":
        return "cuda" if has_cuda else "cpu"
    return requested


class PerfSession:
    def __init__(self, opts: dict[str, Any], parallel: dict[str, Any] | None = None, root: Path | None = None) -> None:
        """parallel: under pytest-xdist, {"role": "worker", "worker": "gw0", "gpu": "0", "run": RUN} in a worker or
        {"role": "controller", "run": RUN} in the controller, RUN naming the run's parts (perfgate.parallel,
        perfgate.state); None in a plain run. root: the repository
        measured (pytest's rootdir): relative results folders are under it, and its git commit is the run's."""
        self.clock = phases.start()  # where the run's time goes, from here to the run file's last write
        self.opts = opts
        self.root = root or paths.REPO_ROOT
        self.parallel = parallel or {}
        self.device = detect_device(opts["device"])
        options.complete(opts, self.device)
        origins = opts.get("origins", {})
        self.reference = known_reference(opts["reference"])
        model = opts["model"] or models.default_model(self.device == "cuda")
        self.model = models.resolve(model, origins.get("model", "--perf-model"))
        self.variants = variants.select(opts["variants"], self.device)
        self.workloads = self.fitting_workloads()
        self.agent_modes = opts["agent"]
        self.agent_queries = agent_queries(self.agent_modes, opts["agent_queries"])
        self.agent_workload = f"q{opts['agent_queries']}"
        self.cache = writable_cache(opts["cache"], origins.get("cache", "default"))
        self.results_dir = self.root / opts["results_dir"]  # (an absolute folder stays as it is)
        # an A/B run: the same variant on the base side takes the reference's place beside each variant, and the
        # canaries, which exist to be slower than the reference, are left out of the default selection
        self.base = ab.prepare(opts, self.root, self.device, self.cache)
        self.base_figures: dict[tuple[str, str, str, str], Figure] = {}  # the base side's, by the head's key
        self.sides: dict[str, dict[str, Any]] = {}  # what each side's workers said they run (op `versions`)
        self.kernel_changes: dict[str, list[str]] = {}  # per decode test: kernels that differ, head against base
        if self.base is not None:
            self.reference = None
            if opts["variants"] in (None, "", "default"):
                self.variants = [v for v in self.variants if not (v.step_delay or v.device_delay)]
        self.started = datetime.now(timezone.utc)
        # the run's perf tests, started, done, cut, stopped; each one's seconds without the unloads
        self.progress = Progress(opts.get("session_budget"), lambda: self.clock.seconds_in("unload"))
        self.errors: list[dict[str, str]] = []  # tests that ended in an error, or failed other than by the gate
        self.figures: list[Figure] = []
        self.judged: dict[tuple[str, str, str, str], Judged] = {}
        self.loaded: dict[str, Loaded] = {}
        self._loading: dict[str, WorkerHandle] = {}  # workers started and loading, not yet in self.loaded
        self._stopping: set[str] = set()  # loads to stop (_stop_loading)
        self._together = False  # an A/B run's two sides loading at once: their load cores are split (core_env)
        # variant (or NAME@base) -> why it failed to load, or why its base side ended during the agent's replay: its
        # other tests fail fast
        self.failed: dict[str, str] = {}
        self.load_info: dict[str, dict[str, Any]] = {}
        self._tracker: VramTracker | None = None
        self._machine: dict[str, Any] | None = None
        self._checkpoint: Path | None = None
        self._fidelity_reference: str | None = None  # the saved reference logits, once computed
        self._zygote: Zygote | None = None  # on the CPU, what its workers are forked from (self.zygote)
        self._reference_greedy: list[list[int]] = []  # the reference's greedy first turns (real models)
        self._bandwidth: dict[str, Any] | None = None  # the device's copy bandwidth, once measured
        self._own_affinity: set[int] | None = None  # this process's cores before the workers were pinned
        self.report_files: list[Path] = []
        self.merged: dict[str, Any] | None = None  # the controller's merged run document
        self.worker_parts: list[str] = []
        self.workers_up: set[str] = set()  # the controller's pytest-xdist workers started and not yet done ("gw0")
        self.workers_signalled: list[int] = []  # their processes, where the controller passed a SIGTERM on
        self.report_note: str | None = None
        self.baseline_error: str | None = None  # why the baseline file could not be written
        self.baseline_diff: list[tuple] | None = None
        self.baseline_noisy: list[tuple] = []  # entries just written whose own noise exceeds their tolerance
        self.worker_documents: list[dict[str, Any]] = []  # the controller's: each worker's run document
        self.gpu_busy = self.other_gpu_processes()
        if self.gpu_busy and opts["strict"]:
            raise ValueError(
                f"--perf-strict: the GPU is busy, {'; '.join(self.gpu_busy)}: their load distorts the "
                "timings and the device-level memory figures"
            )
        self.layout = worker_layout(opts["worker_layout"])  # how every worker is started
        # On the CPU, where a worker's start is mostly imports, workers are forked from a zygote (self.zygote); not
        # with random layouts, where each worker must draw its own, nor in an A/B run, whose two sides must start
        # alike (the base side cannot be forked from this perfgate)
        self.forks_workers = self.device == "cpu" and opts["worker_layout"] == "fixed" and self.base is None
        if self.forks_workers:
            prefix, env, what = self.layout
            self.layout = (prefix, env, f"{what}; each worker forked from one process started so (perfgate.zygote)")
        self.baseline_path = baselines.path_for(self.results_dir, self.machine["gpu_slug"])
        # a file for another GPU or model is named in the summary and the report (baseline_problem)
        self.baseline, self.baseline_problem = open_baseline(
            self.baseline_path, self.machine["gpu_slug"], self.model.source, opts["update_baselines"]
        )
        self.referee = self.new_referee()
        runs = self.results_dir / "runs"
        self.parts = runfile.Parts(runs, self.parallel["run"]) if self.parallel else None
        part = self.parts.path(self.parallel["worker"]) if self.is_worker else None
        self.runfile = runfile.RunFile(runs, self.started, self.machine["gpu_slug"], part)
        self.clock.lap("setup")

    # -- environment -------------------------------------------------------------------------------------

    @property
    def tracker(self) -> VramTracker:
        if self._tracker is None:
            if self.device == "cuda":
                self._tracker = VramTracker(Nvml(), None)
            else:
                self._tracker = VramTracker(None, None)
        return self._tracker

    @property
    def machine(self) -> dict[str, Any]:
        if self._machine is None:
            tracker = self.tracker  # NVML first, so that the device description comes from it
            self._machine = machine.describe(self.device, tracker.nvml, self.root)
        return self._machine

    def other_gpu_processes(self) -> list[str]:
        """'pid 1234 (python3) using 20,480 MiB' for every compute process on the device as the run starts."""
        nvml = self.tracker.nvml
        if nvml is None or not nvml.ok:
            return []
        try:
            procs = nvml.processes()
        except Exception:  # NVML may refuse to list processes (permissions): then nothing can be said
            return []
        return [busy_line(pid, mib) for pid, mib in sorted(procs.items()) if pid != os.getpid()]

    def checkpoint(self) -> str:
        """The folder or hub id every variant loads; a synthetic checkpoint is built on first use."""
        if self._checkpoint is None:
            if self.model.is_synthetic:
                with phases.track("checkpoint"):
                    self._checkpoint = synthetic.ensure_checkpoint(self.model, self.device, self.cache)
            else:
                self._checkpoint = Path(self.model.name) if self.model.kind == "folder" else None
        return str(self._checkpoint) if self._checkpoint else self.model.name

    @property
    def max_tokens(self) -> int:
        """The longest sequence any test here generates to (Unsloth sizes its attention masks by it)."""
        agent = [t.total_tokens for q in self.agent_queries for t in q.turns]
        return max([w.total_tokens for w in self.workloads] + agent)

    def _context_limit(self) -> tuple[int | None, str, str]:
        limit, what, why = self.model.max_positions, "the model's context", "max_position_embeddings"
        user = self.opts.get("max_seq_length")
        if user and (not limit or user < limit):
            limit, what, why = user, "the limit", "--perf-max-seq-length or MAX_SEQ_LENGTH"
        return limit, what, why

    def fitting_workloads(self) -> list[DecodeWorkload]:
        """The decode workloads of --perf-contexts; one that does not fit the model's context is an error where the
        contexts were asked for explicitly (else its tests skip, saying why)."""
        workloads = [DecodeWorkload(n, self.opts["new_tokens"]) for n in self.opts["contexts"]]
        if options.given(self.opts.get("origins", {}), "contexts"):
            unfit = [w for w in workloads if self.workload_unfit(w)]
            if unfit:
                raise ValueError(
                    f"--perf-contexts: {self.workload_unfit(unfit[0])}; prompt + --perf-new-tokens must fit"
                )
        return workloads

    def workload_unfit(self, workload: DecodeWorkload) -> str | None:
        limit, what, why = self._context_limit()
        if limit and workload.total_tokens > limit:
            return (
                f"{workload.prompt_tokens} prompt + {workload.new_tokens} new tokens exceed {what} of {limit} ({why})"
            )
        return None

    def agent_unfit(self) -> str | None:
        """Why the agent's longest turn cannot run on this model, or None."""
        limit, what, why = self._context_limit()
        longest = max((q.longest for q in self.agent_queries), key=lambda t: t.total_tokens)
        if limit and longest.total_tokens > limit:
            return f"the agent's longest turn ({longest.total_tokens} tokens) exceeds {what} of {limit} ({why})"
        return None

    # -- variants --------------------------------------------------------------------------------------------

    def acquire(self, name: str) -> Loaded:
        """The loaded variant, loading it once. Other variants are released first, except the reference, which
        stays beside it. Raises VariantUnavailable or VariantFailed."""
        if self.base is None:
            return self._ensure(name, keep={name, self.reference})
        loaded = self._load_both_sides(name)
        self.reference_beside(loaded)  # the base side too, now: its load figures are what the head's are held to
        return loaded

    @property
    def stack_slowdown(self) -> float:
        """The whole-stack canary's share of a decode step added to the head's steps: A/B runs only (0 otherwise)."""
        return self.opts["canary_base_slowdown"] if self.base is not None else 0.0

    def _load_both_sides(self, name: str) -> Loaded:
        """An A/B run's variant on the head's side, and its base side at the same time, from a thread of its own,
        where both fit in memory together (else the base is loaded after, by reference_beside): a pair of processes'
        two loads one after the other were 38 % of an A/B run of the seven default variants on the H200. A side that
        fails to load is recorded as before (self.failed). The head failing, or Ctrl-C, stops the base's load; a side
        that runs out of memory beside the other is loaded again alone."""
        head_key, base_key = name, name + ab.SUFFIX
        keep = {head_key, base_key}
        self._release_except(keep)  # before the memory is looked at
        if keep & (set(self.loaded) | set(self.failed)) or not self._fit_both(name):
            return self._ensure(name, keep=keep)
        self.checkpoint()  # built once, before either side asks for it
        self.keep_off_worker_cores()  # once, before either side's worker starts

        base_failure: VariantFailed | None = None  # how the base's load failed

        def load_base() -> None:
            nonlocal base_failure
            try:
                self._ensure(name, keep=keep, base=True)
            except VariantFailed as exc:  # in self.failed: the head's tests say that the base side failed
                base_failure = exc
            except VariantUnavailable:
                pass  # in self.failed too
            except Exception as exc:  # its first worker's versions, say: as a failed load, not lost in a thread
                self.release(base_key)
                self.failed.setdefault(base_key, f"{self._who(base_key)}: {type(exc).__name__}: {exc}")

        beside = threading.Thread(target=load_base, name=f"perfgate-load-{base_key}", daemon=True)
        self._together = True
        beside.start()
        try:
            loaded = self._ensure(name, keep=keep)
            beside.join()
        except BaseException as exc:
            self._stop_loading(base_key, beside)
            self._together = False
            if isinstance(exc, KeyboardInterrupt) and base_failure and base_failure.killed_as_runs_are_interrupted:
                # Ctrl-C, or `timeout`'s SIGTERM to the process group, reaches the base's worker too, and its loading
                # thread may see it die before this thread sees the signal: that death is the interrupt's, not a
                # failure of the base side (the run file and the summary say the run was interrupted). A worker that
                # died otherwise (SIGKILL from the kernel's OOM killer, a crash) keeps its failure.
                self.failed.pop(base_key, None)
            if isinstance(exc, VariantFailed) and exc.out_of_memory_loading:
                self.failed.pop(head_key)
                return self._ensure(name, keep=keep)  # alone now; the base after it, by reference_beside
            raise
        self._together = False
        if base_failure and base_failure.out_of_memory_loading:
            self.failed.pop(base_key)  # loaded again alone by reference_beside
        return loaded

    def _stop_loading(self, key: str, thread: threading.Thread) -> None:
        """Stop a load running in `thread` (its worker killed as soon as it has one, _ensure) and wait for it; a
        failure the stop caused is not the side's own, and not recorded."""
        failed_before = key in self.failed
        self._stopping.add(key)
        worker = self._loading.get(key)
        if worker is not None:
            worker.kill()
        thread.join()
        self._stopping.discard(key)
        if not failed_before:
            self.failed.pop(key, None)
        self.release(key)

    def _fit_both(self, name: str) -> bool:
        """Whether the variant's head and base sides fit in memory together, by estimate (memory_shortfall)."""
        variant = variants.REGISTRY[name]
        if variants.unavailable_reason(variant, self.device):
            return False  # _ensure says why
        return self.memory_shortfall(variant, self.base_variant(variant)) is None

    def _ensure(self, name: str, keep: set[str | None], base: bool = False) -> Loaded:
        """The variant's worker, loaded once; with `base`, the same variant on an A/B run's base side (kept under
        'NAME@base'). Workers not in `keep` are released first."""
        key = name + ab.SUFFIX if base else name
        if key in self.loaded:
            return self.loaded[key]
        variant = self._make_room(key, keep)
        path = self.checkpoint()
        worker = self._start_worker(key)
        self._loading[key] = worker  # while it loads: what _stop_loading stops
        if key in self._stopping:  # stopped while it started
            worker.kill()
        try:
            max_seq = self.opts.get("max_seq_length") or self.max_tokens
            with phases.track("load"):
                load = measure.load(worker, self.tracker, variant, path, self.device, max_seq, self.opts["timeout"])
        except WorkerError as exc:
            worker.kill()  # whatever it holds goes back to the device now
            worker.close()
            self._load_failed(key, variant, exc)
        finally:
            self._loading.pop(key, None)
        self.loaded[key] = Loaded(variant, worker, load)
        self.load_info[key] = load.model
        if self.base is not None:
            self.note_side("base" if base else "head", worker)
            if base:  # the first load's, which test_load judges the head's against (a further pair's is not)
                for f in measure.load_figures(name, load):
                    self.base_figures.setdefault(f.key, f)
        return self.loaded[key]

    def _who(self, key: str) -> str:
        """A worker as messages name it: 'NAME', or in an A/B run 'NAME (head side)' or 'NAME (base side)'."""
        name = key.removesuffix(ab.SUFFIX)
        if self.base is None:
            return name
        return f"{name} ({'base' if key.endswith(ab.SUFFIX) else 'head'} side)"

    def _make_room(self, key: str, keep: set[str | None]) -> variants.Variant:
        """The variant to load for `key`, once the workers not in `keep` are released. VariantUnavailable where it
        cannot run here or would not fit in memory (even with the reference released, to measure it alone rather
        than not at all), and where it failed before: VariantFailed, or VariantUnavailable for an import."""
        if key in self.failed:
            raise (VariantUnavailable if "failed to import" in self.failed[key] else VariantFailed)(self.failed[key])
        name, base = key.removesuffix(ab.SUFFIX), key.endswith(ab.SUFFIX)
        variant = variants.REGISTRY[name]
        reason = variants.unavailable_reason(variant, self.device)
        if reason:
            raise VariantUnavailable(reason)
        self._release_except(keep)
        if base:
            variant = self.base_variant(variant)
        reason = self.memory_shortfall(variant)
        if reason and self.reference in self.loaded and name != self.reference:
            self.release(self.reference)
            reason = self.memory_shortfall(variant)
        if reason:
            if base:  # the head's verdicts say the base side failed (nothing passes for want of a base)
                self.failed[key] = f"{self._who(key)}: {reason}"
            raise VariantUnavailable(reason)
        return variant

    def _start_worker(self, key: str) -> WorkerHandle:
        """A worker process for `key`, started as every worker of this run is (self.layout), on its own core on a GPU
        machine, forked from the zygote on the CPU; on an A/B run's base side, with the base's interpreter, code and
        environment."""
        base = key.endswith(ab.SUFFIX)
        env = worker_env(self.model.kind)
        pinned = self.core_env(key)
        if pinned:
            env.update(pinned)
            self.keep_off_worker_cores()
        before = self.tracker.nvml.device_used_mib() if self.tracker.nvml is not None and self.tracker.nvml.ok else None
        prefix, layout_env, _ = self.layout
        env.update(layout_env)
        side: dict[str, Any] = {}
        if base:
            env.update(self.base.worker_env())
            side = {
                "python": self.base.python,
                "code_root": self.base.code_root,
                "pythonpath": self.base.pythonpath,
                "cwd": self.base.measured_root,
            }
        with phases.track("load"):
            zygote = self.zygote(prefix, env)
            worker = WorkerHandle(key, self.cache / "logs" / f"worker-{key}.log", env, prefix, **side, zygote=zygote)
        if before is not None:
            self.tracker.device_baselines[worker.pid] = before
        return worker

    def _load_failed(self, key: str, variant: variants.Variant, exc: WorkerError) -> NoReturn:
        """A worker's failure to load, remembered (the variant's other tests fail fast) and raised: an import that
        failed as VariantUnavailable (a package missing here), anything else as VariantFailed."""
        who = self._who(key)
        if exc.kind == "import":
            self.failed[key] = variants.import_failure(variant, exc.message)
            if self.base is not None:
                self.failed[key] = f"{who}: {self.failed[key]}"
            raise VariantUnavailable(self.failed[key]) from None
        if exc.kind == "oom":
            need = variants.estimate_bytes(variant, self.model.config, self.max_tokens) / 2**30
            what = (
                f"out of memory while loading (it needs about {need:.1f} GiB by estimate, for weights and a "
                f"KV cache of {self.max_tokens} tokens); its memory was freed and the other variants go on"
            )
        else:
            what = f"loading failed ({exc.kind})"
        self.failed[key] = f"{who}: {what}: {exc}"
        raise VariantFailed(self.failed[key], exc.kind, exc.exit_code) from None

    def base_variant(self, variant: variants.Variant) -> variants.Variant:
        """The variant as the base side loads it: a loader imported from the measured repository comes from the
        base's checkout of it (a worktree at --perf-base-ref)."""
        here, there = str(self.root), str(self.base.measured_root)
        if here == there or here not in variant.import_path:
            return variant
        return replace(variant, import_path=tuple(there if p == here else p for p in variant.import_path))

    def note_side(self, side: str, worker: WorkerHandle) -> None:
        """What a side runs, as its first worker says (the op `versions`); the probe's answer where the base's code,
        at another commit, has no such op."""
        if side in self.sides:
            return
        try:
            self.sides[side] = worker.call("versions", self.opts["timeout"])
        except WorkerError as exc:
            if exc.kind in ("died", "timeout"):
                raise
            said = self.base.probe if side == "base" else machine.own_versions()
            self.sides[side] = {**said, "commit": self.base.commit if side == "base" else machine.git_commit(self.root)}

    @functools.cached_property
    def cores(self) -> tuple[int, int, set[int]] | None:
        """On a GPU machine: (the reference's core, the variant's, the cores for everything else), chosen once
        (perfgate.affinity: two physical cores, their SMT siblings idle). Batch-1 decoding is bound by the Python
        thread that launches kernels, and a thread that migrates between cores, or shares one with the other
        worker, makes every step slower and noisier (../shared/gpu/README.md: one core per process lowered the
        variation from 20 to 13 %). None on the CPU, where the cores compute."""
        if self.device != "cuda" or not hasattr(os, "sched_getaffinity"):
            return None
        return affinity.worker_cores(set(os.sched_getaffinity(0)))

    def worker_core(self, name: str) -> int | None:
        """The core of a worker ('NAME', or 'NAME@base' in an A/B run): the one beside takes the reference's."""
        if self.cores is None:
            return None
        return self.cores[0] if name == self.reference or name.endswith(ab.SUFFIX) else self.cores[1]

    def core_env(self, key: str) -> dict[str, str]:
        """On a GPU machine, a worker's core (PERFGATE_CPU_CORE) and the cores its load may spread over
        (PERFGATE_LOAD_CORES, perfgate.affinity.spread_while_loading); nothing on the CPU."""
        core = self.worker_core(key)
        if core is None:
            return {}
        env = {"PERFGATE_CPU_CORE": str(core)}
        spare = sorted(self.cores[2])
        if not self.parallel and len(spare) > 1:
            # The cores this process keeps to itself idle while a worker loads, but for its VRAM sampler, which
            # measures the load's peak: the lowest is left to it. Under pytest-xdist another GPU's worker may be
            # timed on them.
            spread = spare[1:]
            if self._together:  # an A/B run's two sides load at once: half of the spare cores each
                half = len(spread) // 2
                spread = spread[:half] if key.endswith(ab.SUFFIX) else spread[half:]
            env["PERFGATE_LOAD_CORES"] = ",".join(map(str, sorted({*spread, core})))
        return env

    def keep_off_worker_cores(self) -> None:
        """This process (pytest, its NVML sampler, the workers' reply readers) onto the cores the workers leave
        free, once, before the first pinned worker starts; given back at the end of the run."""
        if self.cores is None or self._own_affinity is not None:
            return
        self._own_affinity = set(os.sched_getaffinity(0))
        affinity.pin_process(self.cores[2])

    def swap_cores(self, name: str) -> tuple[int, int] | None:
        """The reference's and the variant's cores, which they swap between rounds; None where not pinned."""
        ref, own = self.worker_core(self.beside_key(name)), self.worker_core(name)
        return (ref, own) if ref is not None and own is not None and ref != own else None

    def beside_key(self, name: str) -> str | None:
        """The worker that alternates rounds with this variant's: its base side in an A/B run, else the reference."""
        return name + ab.SUFFIX if self.base is not None else self.reference

    def reference_beside(self, loaded: Loaded) -> tuple[Loaded | None, str | None]:
        """The reference worker to alternate rounds with, or None and why not (None, None: no ratio at all). In an
        A/B run, the same variant on the base side."""
        if self.base is not None:
            name = loaded.variant.name
            try:
                return self._ensure(name, keep={name, name + ab.SUFFIX}, base=True), None
            except (VariantUnavailable, VariantFailed) as exc:
                return None, f"the base side failed: {str(exc).splitlines()[0]}"
        if not self.reference or loaded.variant.name == self.reference:
            return None, None
        try:
            return self._ensure(self.reference, keep={self.reference, loaded.variant.name}), None
        except (VariantUnavailable, VariantFailed) as exc:
            return None, f"the reference {self.reference} could not be loaded beside it: {str(exc).splitlines()[0]}"

    def memory_shortfall(self, variant: variants.Variant, *beside: variants.Variant) -> str | None:
        """Why the variant (with `beside`, those too, loaded at the same time) would not fit in memory, or None."""
        need = sum(variants.estimate_bytes(v, self.model.config, self.max_tokens) for v in (variant, *beside)) / 2**30
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

    def zygote(self, prefix: tuple[str, ...], env: dict[str, str]) -> Zygote | None:
        """The zygote this run's workers are forked from, started with the first (perfgate.zygote); None where
        they are not (self.forks_workers)."""
        if not self.forks_workers:
            return None
        if self._zygote is None:
            model_type = self.model.config.get("model_type", "")
            preload = (f"transformers.models.{model_type}.modeling_{model_type}",) if model_type.isidentifier() else ()
            log = self.cache / "logs" / f"zygote-{os.getpid()}.log"  # one per pytest process (xdist workers)
            self._zygote = start_zygote(prefix, env, log, preload)
        return self._zygote

    def _release_except(self, keep: set[str | None]) -> None:
        """Every loaded worker not in `keep` released (over a copy of the names: in an A/B run the other side may be
        adding itself from its loading thread, _load_both_sides)."""
        for other in [n for n in list(self.loaded) if n not in keep]:
            self.release(other)

    def release(self, name: str | None = None) -> None:
        for n in [name] if name else list(self.loaded):
            loaded = self.loaded.pop(n, None)
            if loaded is not None:
                self.tracker.device_baselines.pop(loaded.worker.pid, None)  # (a pid can be used again)
                with phases.track("unload"):
                    loaded.worker.close()

    def test_error(self, name: str, phase: str, message: str) -> None:
        """A test ended in an error (its setup or teardown raised) or failed without a gate verdict (a crash, an
        out-of-memory): what it said goes into the run file, beside the figures of the tests that did run."""
        self.errors.append({"test": name, "phase": phase, "message": message})
        self.write_run()

    def interrupt(self, reason: str, exc: BaseException | None = None) -> None:
        """The run was interrupted (Ctrl-C, SIGTERM): remember why, the tests it stopped, and those never started,
        for the run file and the report (what finished before is kept). A test cut short has recorded nothing, but
        for a decode test stopped during its timed rounds: what they measured so far is kept, unjudged."""
        interrupted = self.progress.interrupt(reason)
        if isinstance(exc, measure.MeasurementInterrupted) and exc.partial is not None:
            interrupted["measured"] = [runfile.partial_record(exc.variant, exc.partial)]

    # -- measuring -------------------------------------------------------------------------------------------

    @property
    def plan(self) -> measure.RoundPlan:
        o = self.opts
        return measure.RoundPlan(o["rounds"], o["max_rounds"], o["test_budget"], o["warmup"], o["suspect_rounds"])

    def measure_decode(self, loaded: Loaded, workload: DecodeWorkload, benchmark=None) -> measure.DecodeMeasurement:
        """The decode test's measurement. A ratio to the reference (or to the base) whose first pair of processes
        counts against it is measured again with both workers restarted, while the run's gate.PairRule can still
        fail it, no pair passed it clearly, and fewer than --perf-process-pairs pairs were measured (gate.judge,
        pair_intervals); and in any case until --perf-min-process-pairs were (--perf-ab-rule fastest: all of
        --perf-process-pairs). A baseline run is measured in one pair."""
        earlier: list[measure.DecodeMeasurement] = []
        fastest = self.pair_rule().fastest  # (how the ratio over the pairs is estimated: DecodeMeasurement.fastest)
        try:
            measured = self._measure_decode_once(loaded, workload, benchmark)
            while (
                not self.opts["update_baselines"]
                and len(earlier) + 1 < self.opts["process_pairs"]
                and (
                    self._pair_asked_for(loaded.variant.name, [*earlier, measured])
                    or self._measure_again(loaded.variant.name, [*earlier, measured])
                )
            ):
                earlier.append(measured)
                loaded = self.restart_with_reference(loaded.variant.name)
                # pytest-benchmark times one pair only; the first pair alone is profiled (DecodeMeasurement.profiled)
                measured = self._measure_decode_once(loaded, workload, None, profile=False)
        except KeyboardInterrupt as exc:  # the pairs of processes measured before it go with what it measured
            partial = exc.partial if isinstance(exc, measure.MeasurementInterrupted) else None
            if partial is not None:
                partial = replace(partial, earlier=tuple(earlier), fastest=fastest)
            elif earlier:  # stopped while the next pair restarted, warmed up or calibrated
                partial = replace(earlier[-1], earlier=tuple(earlier[:-1]), fastest=fastest)
            raise measure.MeasurementInterrupted(str(exc), loaded.variant.name, partial) from exc
        measured = replace(measured, earlier=tuple(earlier), fastest=fastest)
        if self.base is not None and measured.reference_rounds:  # the base side's own figures, to judge against
            name = loaded.variant.name
            self.base_figures.update({f.key: f for f in measure.decode_figures(name, measured.base_view())})
            test = f"test_decode[{name}-{workload.id}]"
            profiled = measured.profiled
            self.kernel_changes[test] = ab.kernel_changes(profiled.profile, profiled.reference_profile)
        return measured

    def _pair_asked_for(self, name: str, pairs: list[measure.DecodeMeasurement]) -> bool:
        """Whether --perf-min-process-pairs asks for another pair of processes: fewer were measured, and the first
        has a ratio with something to hold it to (the reference's own test, a run without a reference, or a ratio
        without a baseline would restart workers for nothing)."""
        if len(pairs) >= self.opts["min_process_pairs"]:
            return False
        verdict = self._ratio_verdict(name, pairs[0])
        return verdict is not None and verdict.limit is not None

    def _measure_again(self, name: str, pairs: list[measure.DecodeMeasurement]) -> bool:
        """Whether another pair of processes can decide the ratio: the first pair counts against it (the pair rule:
        its whole interval, or in an A/B run its value, beyond the limit), no pair passed it clearly (each judged
        alone), all of them together have not failed it yet, and enough pairs are left to fail it."""
        rule = self.pair_rule()
        verdicts = [self._ratio_verdict(name, m) for m in pairs]
        if any(v is None or v.limit is None for v in verdicts):  # no ratio, or nothing to hold it to
            return False
        if any(v.status == gate.PASS and v.clear for v in verdicts):
            return False
        # (a decode ratio: higher is better)
        against = [rule.against(*(v.ci or (v.value, v.value)), v.n, v.value, v.limit, True) for v in verdicts]
        if not against[0]:  # one pair alone decides unless it points to a regression
            return False
        if len(pairs) > 1:
            together = self._ratio_verdict(name, replace(pairs[-1], earlier=tuple(pairs[:-1])))
            if together is None or together.status == gate.FAIL:
                return False
        return sum(against) + rule.pairs - len(pairs) >= rule.to_fail

    def pair_rule(self) -> gate.PairRule:
        """How this run decides a ratio measured in several pairs of processes (gate.pair_rule)."""
        fastest = self.opts["ab_rule"] == "fastest"  # (options.complete fills the default in)
        return gate.pair_rule(ab=self.base is not None, pairs=self.opts["process_pairs"], fastest=fastest)

    def _ratio_verdict(self, name: str, measured: measure.DecodeMeasurement) -> gate.Verdict | None:
        """The ratio's verdict in this one pair of processes (None: no ratio measured)."""
        metric = ab.RATIO if self.base is not None else RATIO
        figures = [f for f in measure.decode_figures(name, measured) if f.metric == metric]
        return next((j.verdict for j in self.referee.judge(figures)), None)

    def restart_with_reference(self, name: str) -> Loaded:
        """The variant and the reference in fresh worker processes (the reference first, as a run starts); in an A/B
        run, the variant on both sides (at the same time where they fit, _load_both_sides)."""
        self.release(name)
        if self.base is not None:
            self.release(name + ab.SUFFIX)
            return self._load_both_sides(name)
        self.release(self.reference)
        self._ensure(self.reference, keep={self.reference})
        return self._ensure(name, keep={name, self.reference})

    def _measure_decode_once(
        self, loaded: Loaded, workload: DecodeWorkload, benchmark=None, profile: bool = True
    ) -> measure.DecodeMeasurement:
        ref, no_ratio = self.reference_beside(loaded)
        name = loaded.variant.name

        def settled(partial: measure.DecodeMeasurement) -> str:
            if self.opts["update_baselines"]:
                return self.baseline_settled(name, partial)
            return settle_state(self.referee.judge(measure.decode_figures(name, partial)))

        try:
            measured = measure.decode(
                loaded.worker,
                self.tracker,
                loaded.variant,
                workload,
                self.baseline_plan if self.opts["update_baselines"] else self.plan,
                self.opts["canary_slowdown"],
                self.opts["timeout"],
                ref.worker if ref else None,
                settled,
                benchmark,
                no_ratio,
                self.swap_cores(name) if ref else None,
                Path(os.environ["PERFGATE_STEP_LOG"]) if os.environ.get("PERFGATE_STEP_LOG") else None,
                profile=profile and self.opts["device_time"],
                device_slowdown=self.opts["canary_device_slowdown"],
                profile_tokens=self.opts["device_tokens"],
                beside_is_base=self.base is not None,
                stack_slowdown=self.stack_slowdown,
            )
            return replace(measured, bandwidth=self.bandwidth(loaded))
        except WorkerError as exc:
            where = f"{name} {workload.id} ({workload.prompt_tokens} prompt + {workload.new_tokens} new tokens)"
            self._generation_failed(loaded, where, exc)

    @property
    def baseline_plan(self) -> measure.RoundPlan:
        """A baseline's rounds: --perf-baseline-rounds, and up to twice that while an entry is too noisy to gate
        against."""
        rounds = self.opts["baseline_rounds"]
        return replace(self.plan, max_rounds=rounds, suspect_rounds=2 * rounds)

    def baseline_settled(self, name: str, partial: measure.DecodeMeasurement) -> str:
        """A baseline is measured to --perf-baseline-rounds (its noise enters every verdict against it), and further,
        up to baseline_plan's cap, while an entry it would write is too noisy for its tolerance (its own interval
        reaches further than that on the worse side: baselines.too_noisy_mark). Still too noisy then, it is written
        marked as such."""
        if len(partial.rounds) < self.opts["baseline_rounds"]:
            return measure.UNCLEAR
        noisy = too_noisy_to_write(measure.decode_figures(name, partial), self.opts["tolerance"])
        return measure.SUSPECT if noisy else measure.UNCLEAR

    def bandwidth(self, loaded: Loaded) -> dict[str, Any]:
        """The device's copy bandwidth, measured once per session (in the first variant's worker, which already
        holds a CUDA context), with this variant's weight bytes (its memory footprint: what one decode step
        reads at least)."""
        if self._bandwidth is None:
            self._bandwidth = driving.copy_bandwidth(loaded.worker, self.opts["timeout"])
        weights = loaded.load.model.get("footprint_mib")
        return {**self._bandwidth, "weight_bytes": weights * 2**20 if weights else None}

    def _generation_failed(self, loaded: Loaded, where: str, exc: WorkerError) -> NoReturn:
        """Turn a worker's failure while generating into VariantFailed, leaving the session able to go on."""
        if exc.kind in ("died", "timeout"):
            self.release()  # a worker that hung or crashed is gone; the next test loads afresh
            raise VariantFailed(f"{where}: {exc}") from None
        if exc.kind == "oom":
            try:
                loaded.worker.call("reset_memory", self.opts["timeout"])  # give back what it can
            except WorkerError:
                self.release(loaded.variant.name)
            raise VariantFailed(f"{where}: out of memory while generating: {exc}") from None
        if exc.kind == "short_generation":
            raise VariantFailed(f"{where}: {exc.message}; no tokens/s is computed from a wrong count") from None
        raise VariantFailed(f"{where}: generation failed: {exc}") from None

    def measure_agent(self, loaded: Loaded) -> measure.AgentMeasurement:
        """Replay the agent's queries on this variant (the gated per-query latency); in an A/B run, on the base side
        too, turn by turn alternating with the head (measure.agent)."""
        name = loaded.variant.name
        o = self.opts
        plan = measure.agent_plan(o["agent_rounds"], o["agent_max_rounds"], o["test_budget"], o["warmup"])

        def settled(partial: measure.AgentMeasurement) -> str:
            return settle_state(self.referee.judge(measure.agent_figures(name, partial)))

        beside, no_base = self.reference_beside(loaded) if self.base is not None else (None, None)
        base = None
        if beside is not None:

            def base_failed(exc: WorkerError) -> str:
                key = name + ab.SUFFIX
                self.release(key)  # its side is over for this variant; what it holds goes back to the head's tests
                # the head's verdicts say the base side failed (AbJudge.failures): nothing passes for want of a base
                self.failed[key] = f"{self._who(key)}: agent replay ({self.agent_workload}): {exc}"
                return f"the base side failed: {exc.message.splitlines()[0]}"

            base = measure.AgentBase(beside.worker, beside.variant, base_failed)
        try:
            measured = measure.agent(
                loaded.worker,
                self.tracker,
                loaded.variant,
                self.agent_workload,
                self.agent_queries,
                plan,
                self.opts["canary_slowdown"],
                self.opts["timeout"],
                None if o["update_baselines"] else settled,  # a baseline: exactly --perf-agent-rounds passes
                "reuse" in self.agent_modes,
                base,
                stack_slowdown=self.stack_slowdown,
                cores=self.swap_cores(name) if base is not None else None,
            )
        except WorkerError as exc:
            self._generation_failed(loaded, f"{name} agent replay ({self.agent_workload})", exc)
        if self.base is None:
            return measured
        if measured.base is not None:  # the base side's own figures, to judge against (its VRAM)
            self.base_figures.update({f.key: f for f in measure.agent_figures(name, measured.base)})
        return replace(measured, no_base=measured.no_base or no_base)

    def measure_agent_live(self, loaded: Loaded) -> list[dict[str, Any]]:
        """The real agent loop on each selected question (report-only)."""
        from perfgate.agent import mailbox, traces

        box, _ = mailbox.ensure_sqlite(self.cache)
        wanted = traces.questions()
        outcomes = []
        for q in self.agent_queries:
            try:
                outcomes.append(
                    loaded.worker.call(
                        "agent_live",
                        self.opts["timeout"],
                        question=wanted[q.id],
                        mailbox_path=str(box),
                        max_reply_tokens=self.opts["agent_max_reply"],
                    )
                )
            except WorkerError as exc:
                self._generation_failed(loaded, f"{loaded.variant.name} live agent, {q.id}", exc)
        return outcomes

    def test_order(self) -> list[str]:
        """The variants in the order their tests run: the fidelity reference first where it is selected, so that its
        logits are saved from its own worker, not from one loaded for them alone before its turn (a 28 GB load and
        release on the H200)."""
        return first_of([v.name for v in self.variants], FIDELITY_REFERENCE[self.device])

    def measure_fidelity(self, loaded: Loaded) -> tuple[str, dict[str, Any]]:
        """(reference name, the fidelity comparison of this variant against the reference's saved logits)."""
        ref_name = FIDELITY_REFERENCE[self.device]
        unfit = driving.fidelity_inputs_fit(self.model.config["vocab_size"])
        if unfit:
            raise VariantUnavailable(unfit)
        timeout, queries = self.opts["timeout"], self.opts["agent_queries"]
        try:
            if self._fidelity_reference is None:
                self._save_fidelity_reference(ref_name, loaded)
            reference = self._fidelity_reference, self._reference_greedy
            result = driving.compare(loaded.worker, *reference, self.model, queries, timeout)
        except WorkerError as exc:
            if exc.kind in ("died", "timeout"):
                self.release()
            raise VariantFailed(f"{loaded.variant.name} fidelity against {ref_name}: {exc}") from None
        return ref_name, result

    def _save_fidelity_reference(self, ref_name: str, loaded: Loaded) -> None:
        """The reference's logits (and greedy turns), once per run, from its worker beside the variant's; a
        reference loaded for this alone is released after."""
        keep = {ref_name, loaded.variant.name, self.reference, loaded.variant.name + ab.SUFFIX}
        ref = self._ensure(ref_name, keep=keep)
        path = self.cache / "fidelity" / f"{self.started:%Y%m%dT%H%M%S}-{os.getpid()}-{ref_name}.pt"
        queries, timeout = self.opts["agent_queries"], self.opts["timeout"]
        self._reference_greedy = driving.save_reference(ref.worker, path, self.model, queries, timeout)
        self._fidelity_reference = str(path)
        if ref_name not in (loaded.variant.name, self.reference):
            self.release(ref_name)

    # -- judging ---------------------------------------------------------------------------------------------

    def new_referee(self) -> Judge | AbJudge:
        """Who judges this run's figures: against the base side of this run in an A/B run, else the baseline file."""
        tolerances = self.opts["tolerance"]
        if self.base is not None:
            return AbJudge(
                tolerances,
                self.base_figures,
                self.failed,
                self.kernel_changes,
                self.differences,
                self.gpu_busy,
                self.pair_rule(),
            )
        return Judge(
            self.baseline,
            self.model.source,
            self.reference,
            tolerances,
            self.machine,
            problem=self.baseline_problem,
            strict=self.opts["strict"],
            busy=self.gpu_busy,
            pair_rule=self.pair_rule(),
        )

    def judge(self, figures: list[Figure]) -> list[str]:
        """Judge and keep the verdicts; return one message per failure (none in a baseline run, which judges
        nothing: an A/B run writes no baseline)."""
        if self.opts["update_baselines"]:
            return []
        judged = self.referee.judge(figures)
        self.judged.update((j.figure.key, j) for j in judged)
        messages = self.referee.failures(judged)
        self.write_run()
        return messages

    def differences(self) -> list[str]:
        """What differs between an A/B run's sides: package versions, commit, Python (base → head)."""
        head = self.sides.get("head") or {**machine.own_versions(), "commit": self.machine["commit"]}
        base = self.sides.get("base") or {**self.base.probe, "commit": self.base.commit}
        return ab.differences(head, base)

    # -- recording -------------------------------------------------------------------------------------------

    def record(self, figures: list[Figure]) -> None:
        self.figures.extend(figures)
        self.write_run()

    def run_document(self) -> dict[str, Any]:
        """The run file's document of what this session kept so far (perfgate.runfile)."""
        return runfile.document(self)

    @property
    def is_worker(self) -> bool:
        return self.parallel.get("role") == "worker"

    @property
    def is_controller(self) -> bool:
        return self.parallel.get("role") == "controller"

    def write_run(self) -> None:
        """The run file, once there is something to keep: a figure, a test's error, or an interruption (a run where
        every test failed, or that was stopped before any test finished, still leaves its file, saying why)."""
        if self.is_controller:  # the controller writes the workers' documents merged, at the end (finish_controller)
            return
        if not (self.figures or self.errors or self.progress.interrupted):
            return
        self.runfile.write(self.run_document())

    def update_baselines(self) -> None:
        """Write this run's gated figures into the baseline file (other entries stay), and keep the diff."""
        fresh = baselines.kept_figures(self.figures, self.opts["baseline_metrics"])
        if not fresh:
            self.baseline_diff = []
            return
        when = self.started.isoformat(timespec="seconds")
        document = self.baseline.updated(self.model.source, fresh, self.machine, self.opts["tolerance"], when)
        self.baseline_diff = baselines.diff(self.baseline, document)
        self.baseline_noisy = baselines.too_noisy(document, self.baseline_diff)
        self.baseline.write(document)

    def write_baseline(self) -> None:
        """update_baselines, the error kept for the terminal summary where the file could not be written."""
        try:
            self.update_baselines()
        except OSError as exc:
            self.baseline_error = f"could not write the baseline file {self.baseline_path}: {exc}"

    def finish(self) -> None:
        if self.is_controller:
            self.finish_controller()
            return
        self.release()
        if self._zygote is not None:
            self._zygote.close()
        if self.base is not None:
            self.base.close()  # the temporary worktree of --perf-base-ref
        if self._own_affinity is not None:
            affinity.pin_process(self._own_affinity)
        if self._fidelity_reference:  # the reference's logits (hundreds of MB) are of no use after this run
            Path(self._fidelity_reference).unlink(missing_ok=True)
        if self.opts["update_baselines"] and not self.is_worker:  # the controller writes it once for all
            self.write_baseline()
        self.write_run()
        if not self.is_worker:
            self.write_report()

    def finish_controller(self) -> None:
        """Merge the workers' run documents into one run file, update the baseline from all of them, report,
        and remove the workers' parts."""
        self.gather_parts()
        if not (self.worker_documents or self.errors or self.progress.interrupted):
            return
        own = self.run_document()  # the controller's: options, and the machine where no worker measured anything
        measured = runfile.measured_before_stop(self.worker_documents)
        if self.progress.interrupted and measured:
            # the controller saw the signal and which tests were running; the workers, if the signal reached them too
            # (Ctrl-C in a terminal, a process group's SIGTERM), what their rounds measured
            self.progress.interrupted["measured"] = measured
        self.merged = {
            **runfile.merged(self.worker_documents, own),
            "interrupted": self.progress.interrupted,
            "errors": list(self.errors),  # every test's report, the workers' included
        }
        self.figures = figures_of(self.merged)
        self.load_info = self.merged["variants"]
        if self.opts["update_baselines"]:
            self.write_baseline()
        if not self.runfile.write(self.merged):
            return
        for part in self.worker_parts:
            Path(part).unlink(missing_ok=True)
        self.write_report()

    def gather_parts(self) -> None:
        """The workers' run documents, with the parts they did not hand over: after a signal passed on to them, once
        each has written its last part (or the wait is over: each late one is named among the errors)."""
        if self.progress.interrupted and self.workers_signalled:
            self.errors += self.parts.await_last(self.workers_up)
        found, errors = self.parts.left({d["parallel"]["worker"] for d in self.worker_documents})
        self.errors += errors
        for part, document in found:
            self.worker_documents.append(document)
            self.worker_parts.append(str(part))

    def write_report(self) -> None:
        """The Markdown report and plots of this run (results/reports/), and GitHub's step summary where set."""
        if not self.runfile.path or not self.runfile.path.exists():
            return
        from perfgate import report

        try:
            self.report_files = report.write(self.runfile.path, plots=self.opts["plots"])
        except ImportError as exc:  # matplotlib missing: the Markdown report alone
            self.report_files = report.write(self.runfile.path, plots=False)
            self.report_note = f"plots skipped: {exc} (pip install matplotlib)"
        except OSError as exc:
            self.report_note = f"could not write the report: {exc}"


def first_of(names: list[str], first: str) -> list[str]:
    """`names` with `first` moved to the front where it is among them, the rest in their order."""
    return sorted(names, key=lambda name: name != first)


def known_reference(name: str) -> str | None:
    """--perf-reference: a variant's name, or None for 'none'; ValueError for a name that is no variant."""
    if name == "none":
        return None
    if name not in variants.REGISTRY:
        raise ValueError(f"--perf-reference {name!r}: not a variant (known: {', '.join(variants.REGISTRY)}, or 'none')")
    return name


def agent_queries(modes: tuple[str, ...], count: int) -> tuple:
    """The agent's first `count` queries from the committed traces, where a mode replays or runs them; () else."""
    if not {"replay", "live"} & set(modes):
        return ()
    from perfgate.agent import traces

    try:
        return traces.select(traces.load(), count)
    except traces.TraceError as exc:
        raise ValueError(str(exc)) from None


def writable_cache(option: str | None, origin: str) -> Path:
    """--perf-cache's folder, created where it is not there yet; ValueError where perfgate cannot write into it (the
    results folder may fail later: the run goes on, saying so)."""
    folder = Path(option).expanduser() if option else paths.cache_dir()
    why = unwritable_folder(folder)
    if why:
        raise ValueError(cache_error(folder, origin, why))
    return folder


def worker_layout(option: str) -> tuple[tuple[str, ...], dict[str, str], str]:
    """How every worker of the session is started (--perf-worker-layout): (command prefix, environment, what that
    fixes)."""
    if option == "fixed":
        return fixed_layout()
    return (), {}, "random: hash seeds and address-space layouts left to chance (--perf-worker-layout)"


def worker_env(model_kind: str) -> dict[str, str]:
    """The environment every model worker starts with, before its core, its layout and its side's."""
    env = {"HF_HUB_OFFLINE": "1", "TRANSFORMERS_OFFLINE": "1"} if model_kind != "hub" else {}
    env["UNSLOTH_DISABLE_STATISTICS"] = "1"
    if "OMP_NUM_THREADS" not in os.environ:
        # Two workers alternate rounds; the OpenMP threads of one spin for a while after its work and would
        # steal the cores the other is being timed on. One thread each keeps the pair from interfering.
        env["OMP_NUM_THREADS"] = "1"
    return env


def cache_error(folder: Path, origin: str, why: str) -> str:
    """One line for a checkpoint cache perfgate cannot write into: where its value came from, what is wrong."""
    if origin == "default":
        came = "--perf-cache's default" + (" (from XDG_CACHE_HOME)" if os.environ.get("XDG_CACHE_HOME") else "")
    else:
        came = f"--perf-cache (from {origin})"
    what = "synthetic checkpoints, worker logs and reference logits go there"
    return f"{came} = {str(folder)!r} {why}; give a folder perfgate can create and write ({what})"


def busy_line(pid: int, mib: float | None) -> str:
    try:
        name = Path(f"/proc/{pid}/comm").read_text().strip()
    except OSError:
        name = "another container or user"
    memory = f"{mib:,.0f} MiB" if mib is not None else "an unreported amount of memory"
    return f"pid {pid} ({name}) using {memory}"


def available_ram_gib() -> float | None:
    try:
        for line in open("/proc/meminfo", encoding="utf-8"):
            if line.startswith("MemAvailable:"):
                return int(line.split()[1]) / 2**20
    except OSError:
        pass
    return None
