"""What perfgate's plugin knows of a pytest run before its perf session exists, and the session once it does: the
run's role under pytest-xdist, the measured repository's declared variants, the node ids of its perf tests, and the
session itself, started on first use (perfgate.plugin keeps one State per pytest config)."""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path
from typing import Any

import pytest

from perfgate import options, parallel, project, signals, trackers, variants
from perfgate.session import PerfSession


class State:
    """What the plugin knows before a perf session exists, and the session once it does."""

    def __init__(self, config: pytest.Config) -> None:
        self.config = config
        self.session: PerfSession | None = None
        self.error: str | None = None  # why the session could not start: a usage error once collection is done
        self.declared: list[variants.Variant] | None = None  # the measured repository's own variants, registered
        self.project: project.Project | None = None
        self.perf_ids: set[str] = set()  # the node ids of this run's perf tests
        self.workers_up: set[str] = set()  # pytest-xdist: the controller's workers started and not yet done ("gw0")
        self.sigterm_before: object = None
        self.role = xdist_role(config)

    def declare(self) -> None:
        """Register the variants of [tool.perfgate] and of pytest_perfgate_variants; cheap (no device touched)."""
        if self.declared is not None:
            return
        self.project = project.read(Path(self.config.rootpath))
        self.declared = list(self.project.variants)
        for found in self.config.hook.pytest_perfgate_variants(config=self.config):
            self.declared += [
                v if v.import_path or not v.loader else with_root(v, self.config.rootpath) for v in found or ()
            ]
        for variant in self.declared:
            try:
                variants.register(variant)
            except ValueError as exc:
                raise project.ProjectError(str(exc)) from None

    def start(self) -> PerfSession | None:
        """The perf session, started on first use; None (and the usage error kept) where it cannot start."""
        if self.session is None and self.error is None:
            try:
                self.session = self._start()
            except (ValueError, pytest.UsageError) as exc:
                self.error = str(exc)
        return self.session

    def _start(self) -> PerfSession:
        trackers.align_device_order()  # before this run starts CUDA: GPU index n is the same GPU to torch and NVML
        role = dict(self.role) if self.role else None
        if role and role["role"] == "worker":  # one GPU of its own, before anything touches CUDA
            role["gpu"] = parallel.pin_worker(role["worker"])
        self.declare()
        opts = options.resolve(self.config, self.project.options)
        if opts["origins"]["agent"] == "default" and not agent_data():
            opts["agent"] = ()  # a repository without this one's agent workload: nothing to replay
        perf = PerfSession(opts, role, Path(self.config.rootpath))
        perf.workers_up = self.workers_up
        self.sigterm_before = signals.end_runs_like_ctrl_c(perf)
        return perf


def xdist_role(config: pytest.Config) -> dict[str, Any] | None:
    """This process's part in a run spread over GPUs by pytest-xdist: a worker (its GPU is chosen when its session
    starts) or the controller; None in a plain run."""
    workerinput = getattr(config, "workerinput", None)
    if workerinput is not None:
        return {
            "role": "worker",
            "worker": workerinput["workerid"],
            "run": workerinput["perfgate_run"],  # set by pytest_configure_node in the controller
        }
    if getattr(config.option, "numprocesses", None):
        return {"role": "controller", "run": parallel.new_run_id()}
    return None


def with_root(variant: variants.Variant, root: Path) -> variants.Variant:
    """A variant declared by a hook with a loader and no import path: the loader is imported from the rootdir."""
    return replace(variant, import_path=(str(root),))


def agent_data() -> bool:
    """Whether this installation has the agent workload's traces (perfgate's own repository has)."""
    from perfgate.agent import traces

    return traces.TRACES.is_file()
