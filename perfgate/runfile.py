"""The run file: what one perf run measured and judged, as one JSON document (results/runs/<UTC start>_<gpu>.json,
plain JSON with sorted keys, written atomically by perfgate.storage). Its fields change only by additions
(RUN_SCHEMA).

The session writes it after every test, so that a crash loses nothing already measured. A run spread over GPUs
(perfgate.parallel) has each pytest worker write its part of the run, results/runs/.parts/<run>_<worker>.json, after
every test and at its end; the controller merges the parts it was handed, and those it finds there, into one run
file, and removes them.
"""

from __future__ import annotations

import json
import time
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

from perfgate import ab, baselines, measure, models, parallel, profiles
from perfgate.figures import Figure
from perfgate.judging import RATIO, Judged
from perfgate.storage import write_json_atomic

RUN_SCHEMA = 1
PARTS_WAIT_S = 60  # at most, an interrupted controller's wait for its workers' last parts (seconds, as seen)


def document(perf) -> dict[str, Any]:
    """The run document of what the session (perf: the PerfSession) kept so far."""
    check = baseline_check(perf.baseline, perf.machine["gpu_slug"], perf.model.source, perf.baseline_problem)
    worker = {"worker": perf.parallel["worker"], "gpu": perf.parallel.get("gpu")} if perf.is_worker else None
    return {
        "schema": RUN_SCHEMA,
        "started_at": perf.started.isoformat(timespec="seconds"),
        "written_at": datetime.now(timezone.utc).isoformat(timespec="seconds"),
        "machine": perf.machine,
        "model": {
            "source": perf.model.source,
            "kind": perf.model.kind,
            "parameters": models.parameter_count(perf.model.config),
        },
        "options": {k: (list(v) if isinstance(v, tuple) else v) for k, v in perf.opts.items()},
        "baseline_file": str(perf.baseline_path),
        "baseline_check": check,
        "gpu_busy_at_start": perf.gpu_busy,
        "worker_layout": perf.layout[2],
        **({"cpu_cores": cpu_cores(perf.cores)} if perf.cores else {}),
        "variants": dict(perf.load_info),
        **({"ab": ab_section(perf)} if perf.base is not None else {}),
        "results": [result_dict(f, perf.judged.get(f.key)) for f in perf.figures],
        "not_started": list(perf.progress.cut),  # cut by --perf-session-budget
        "interrupted": perf.progress.interrupted,
        "errors": list(perf.errors),
        "profile": profiles.record(perf.opts.get("profile")),
        # seconds per part of the run (perfgate.phases), from the session's start to this write, and per test
        # (perfgate.progress): a variant's cost, which the parts, summed over variants, cannot say
        "time_split": {**perf.clock.split(), "tests_s": dict(perf.progress.seconds)},
        **({"parallel": worker} if worker else {}),
    }


def result_dict(f: Figure, judged: Judged | None) -> dict[str, Any]:
    """A figure as the run file's `results` hold it: with its baseline and verdict where it was judged."""
    data = f.to_dict()
    if judged is None:
        return data
    v = judged.verdict
    data["baseline"] = {
        "key": judged.baseline_key,
        "value": v.baseline,
        "tolerance": v.tolerance,
        "note": judged.note or None,
        **({"too_noisy": judged.too_noisy} if judged.too_noisy else {}),
    }
    data["verdict"] = {
        "status": v.status,
        "clear": v.clear,
        "beyond_limit": v.beyond,  # the value itself is on the worse side of the limit
        "limit": v.limit,
        "delta_pct": v.delta_pct,
        "interval": list(v.ci) if v.ci else None,  # 95 % CI of the median, or the figure's own interval
        "test": v.test or None,
    }
    if v.test == "paired sign":  # more of its items (the agent's turns) that must be worse to fail it
        data["verdict"]["items_short"] = v.short
    if v.rule:  # decided over several pairs of worker processes, by this rule
        data["verdict"]["pair_rule"] = v.rule
    if judged.floor:  # suspect: how far the baseline's own noise alone would leave the interval at this value
        data["verdict"]["interval_with_baseline_noise_alone"] = list(judged.floor)
    return data


def baseline_check(baseline: baselines.Baseline, gpu_slug: str, source: str, problem: str | None) -> dict[str, Any]:
    """What the run file and the report say of the baseline file: why there is nothing to gate against in it
    (None where it holds this GPU's and model's entries) and, then, the next step."""
    return {"problem": problem, "next_step": baselines.next_step(baseline, gpu_slug, source) if problem else None}


def cpu_cores(cores: tuple[int, int, set[int]]) -> dict[str, Any]:
    """The cores the session pinned its workers to (PerfSession.cores), and the cores left for everything else."""
    return {"reference": cores[0], "variant": cores[1], "others": sorted(cores[2])}


def ab_section(perf) -> dict[str, Any]:
    """An A/B run's section: the base and both sides' own words, what differs, the base side's figures, the base's
    failures and the kernels that differ per decode test (the head's figures are under results)."""
    return {
        "base": perf.base.describe(),
        "sides": dict(perf.sides),
        "differs": perf.differences(),
        "stack_canary_slowdown": perf.opts["canary_base_slowdown"],
        "base_failed": {k.removesuffix(ab.SUFFIX): v for k, v in perf.failed.items() if k.endswith(ab.SUFFIX)},
        "kernel_changes": dict(perf.kernel_changes),
        "base_results": [f.to_dict() for f in perf.base_figures.values()],
    }


def partial_record(variant: str, partial: measure.DecodeMeasurement) -> dict[str, Any]:
    """The gated rates of a decode test's rounds before it was stopped: too few to judge (the test's own rules
    decide how many a verdict needs), kept for a look and for comparison with a run that finished."""
    kept = ("decode_tok_per_s", "ttft_s", RATIO, ab.RATIO, ab.TTFT_RATIO)
    figures = [f for f in measure.decode_figures(variant, partial) if f.metric in kept and f.value is not None]
    return {
        "test": f"test_decode[{variant}-{partial.workload.id}]",
        "variant": variant,
        "workload": partial.workload.id,
        "rounds": sum(len(m.rounds) for m in (*partial.earlier, partial)),  # over every pair of processes
        "process_pairs": len(partial.earlier) + 1,
        "figures": [f.to_dict() for f in figures],
    }


def merged(documents: list[dict[str, Any]], own: dict[str, Any]) -> dict[str, Any]:
    """The controller's run document: its workers' merged (perfgate.parallel.merge) under its own options, with its
    own wall time beside their summed seconds; its own document where no worker handed one over."""
    if not documents:
        return own
    run = parallel.merge(documents, own["options"])
    if "workers" in run.get("time_split", {}):  # the workers' seconds summed; the run's own beside them
        run["time_split"]["wall_s"] = own["time_split"]["total_s"]
    return run


def measured_before_stop(documents: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """What the workers' rounds had measured when a signal stopped them (partial_record, from each part)."""
    return [m for d in documents for m in (d.get("interrupted") or {}).get("measured", [])]


class RunFile:
    """Where this run's file goes, and how its last write went."""

    def __init__(self, folder: Path, started: datetime, gpu_slug: str, part: Path | None = None) -> None:
        """folder: results/runs; part: a pytest worker's part of the run, written there instead."""
        self.folder = folder
        self.stamp = started.strftime("%Y%m%dT%H%M%SZ")
        self.gpu_slug = gpu_slug
        self.part = part
        self.path: Path | None = None  # chosen at the first write
        self.error: str | None = None  # why the last write failed
        self.time_split: dict[str, Any] | None = None  # as last written (perfgate.phases)

    def new_path(self) -> Path:
        """<UTC start>_<gpu>.json, never an existing file (two runs may start in one second); a worker's part."""
        if self.part is not None:
            return self.part
        path = self.folder / f"{self.stamp}_{self.gpu_slug}.json"
        n = 2
        while path.exists():
            path = self.folder / f"{self.stamp}_{self.gpu_slug}-{n}.json"
            n += 1
        return path

    def write(self, document: dict[str, Any]) -> bool:
        """Write the document over the run's file (chosen at the first write); False, with the error kept, where it
        could not be written (the run goes on, and the terminal summary says so)."""
        if self.path is None:
            self.path = self.new_path()
        try:
            write_json_atomic(self.path, document)
        except OSError as exc:
            self.error = f"could not write the run file {self.path}: {exc}"
            return False
        self.error = None
        self.time_split = document.get("time_split")  # as written: the terminal summary shows the run file's
        return True


class Parts:
    """The parts of a run spread over GPUs: results/runs/.parts/<run>_<worker>.json, one per pytest worker."""

    def __init__(self, folder: Path, run: str) -> None:
        """folder: results/runs; run: the controller's name for the run (perfgate.parallel.new_run_id)."""
        self.folder = folder / ".parts"
        self.run = run

    def path(self, worker: str) -> Path:
        return self.folder / f"{self.run}_{worker}.json"

    def says_interrupted(self, worker: str) -> bool:
        """Whether the worker's part is its last of an interrupted run."""
        try:
            return bool(json.loads(self.path(worker).read_text()).get("interrupted"))
        except (OSError, ValueError, AttributeError):  # not written yet (each is written whole, atomically)
            return False

    def await_last(self, workers: set[str], timeout_s: float = PARTS_WAIT_S) -> list[dict[str, str]]:
        """After a signal passed on to the workers: wait, at most timeout_s, until each worker not yet done has
        written its last part (the one that says it was interrupted); an error for each that did not, since what it
        measured after its last finished test is then not in the run file."""
        waiting = sorted(workers)
        deadline = time.monotonic() + timeout_s
        while waiting:
            waiting = [w for w in waiting if not self.says_interrupted(w)]
            if not waiting or time.monotonic() > deadline:
                break
            time.sleep(0.2)
        return [
            {
                "test": worker,
                "phase": "merge",
                "message": f"worker {worker} did not write its part of the run within {timeout_s:.0f} s of the "
                "signal: what it measured after its last finished test is not in this run file",
            }
            for worker in waiting
        ]

    def left(self, handed: set[str]) -> tuple[list[tuple[Path, dict[str, Any]]], list[dict[str, str]]]:
        """The parts of the workers that did not hand their run over (a run interrupted, by Ctrl-C or SIGTERM, stops
        its workers before they can), as (file, document); and an error for each part that cannot be read (left
        where it is, for a look)."""
        found, errors = [], []
        for part in sorted(self.folder.glob(f"{self.run}_*.json")):
            try:
                document = json.loads(part.read_text())
                worker = document["parallel"]["worker"]
            except (OSError, ValueError, KeyError, TypeError) as exc:
                message = f"could not read this worker's part of the run ({part}, left there): {exc!r}"
                errors.append({"test": part.name, "phase": "merge", "message": message})
                continue
            if worker not in handed:
                found.append((part, document))
        return found, errors
