"""Which perf tests a run holds, started and finished, cut by the session's time budget or stopped by a signal, so
that the run file of an interrupted run says what it stopped and what never ran (a run's other tests are none of its
business).

Progress is the record, one per perf session; Recorder is the pytest plugin object that fills it from pytest's hooks
(perfgate.plugin registers it as "perfgate-progress").
"""

from __future__ import annotations

import re
import time
from collections.abc import Callable
from typing import Any

import pytest

from perfgate import project, variants


class Progress:
    """The run's perf tests by the names pytest gives its items ('test_decode[hf-fp16-ctx128]')."""

    def __init__(self, budget_s: float | None = None, not_counted: Callable[[], float] | None = None) -> None:
        """budget_s: --perf-session-budget, counted from now; None: no budget. not_counted: seconds so far of work
        that no test's seconds hold (the unloads: a variant's first test stops the workers of the variant before,
        whose cost is not the new variant's)."""
        self.budget_s = budget_s
        self._not_counted = not_counted or (lambda: 0.0)
        self.started_at = time.monotonic()
        self.planned: list[str] = []  # the tests this run was to run (after -k and deselection), in order
        self.running: list[str] = []  # the tests started and not done (more than one under pytest-xdist)
        self.finished: set[str] = set()  # done: measured, failed or skipped (a teardown left is of no account)
        self.cut: list[str] = []  # tests not started because --perf-session-budget was spent
        self.interrupted: dict[str, Any] | None = None  # Ctrl-C or SIGTERM: why, during which tests, what did not run
        # seconds from a test's start to its measurement's end (its setup, which loads the variant's workers for its
        # first test, and its call), less not_counted's, per test that ran or was stopped by a signal: what each
        # variant costs
        self.seconds: dict[str, float] = {}
        self._began: dict[str, tuple[float, float]] = {}  # test: (its start, not_counted's seconds then)

    def budget_spent(self, test: str) -> str | None:
        """Why this test may not start (the session's time budget is spent), or None; a cut test is remembered."""
        elapsed = time.monotonic() - self.started_at
        if self.budget_s is None or elapsed < self.budget_s:
            return None
        self.cut.append(test)
        return f"--perf-session-budget {self.budget_s:.0f} s spent ({elapsed:.0f} s since the run began): not started"

    def started(self, test: str) -> None:
        self.running.append(test)
        self._began[test] = (time.monotonic(), self._not_counted())

    def done(self, test: str) -> None:
        self.finished.add(test)
        if test in self.running:
            self.running.remove(test)
        began = self._began.pop(test, None)
        if began is not None and test not in self.cut:
            self._keep_seconds(test, began)

    def _keep_seconds(self, test: str, began: tuple[float, float]) -> None:
        at, not_counted = began
        self.seconds[test] = round(time.monotonic() - at - (self._not_counted() - not_counted), 3)

    def interrupt(self, reason: str) -> dict[str, Any]:
        """The run was interrupted (Ctrl-C, SIGTERM): why, the tests it stopped, and those never started. A test
        stopped keeps its seconds until now: the run spent them."""
        for test in self.running:
            if test in self._began:
                self._keep_seconds(test, self._began.pop(test))
        self.interrupted = {
            "reason": reason,
            "during": list(self.running),
            "not_run": [t for t in self.planned if t not in self.finished and t not in self.running],
        }
        return self.interrupted


class Recorder:
    """The pytest hooks that keep a run's Progress: which perf tests it holds, started and finished, what a failed
    one said, and an interruption. state: the plugin's perfgate.state.State."""

    def __init__(self, state) -> None:
        self.state = state

    @property
    def perf(self):
        """The run's perf session, once started."""
        return self.state.session

    def pytest_collection_finish(self, session: pytest.Session) -> None:
        perf = self.state.session
        if perf is None:
            return
        items = [item for item in session.items if perf_params(item)]
        self.state.perf_ids = {item.nodeid for item in items}
        perf.progress.planned = [item.name for item in items]

    @pytest.hookimpl(optionalhook=True)
    def pytest_xdist_node_collection_finished(self, node, ids: list[str]) -> None:
        """pytest-xdist: the controller collects nothing itself; each worker reports the tests of the run. A perf
        test's id names a variant first among its parameters ('test_decode[hf-fp16-ctx128]')."""
        try:
            self.state.declare()
        except project.ProjectError:  # the workers say so
            return
        names = tuple(variants.REGISTRY)
        perf_ids = [nodeid for nodeid in ids if variant_of(nodeid, names) is not None]
        if not perf_ids:
            return
        self.state.perf_ids |= set(perf_ids)
        perf = self.state.start()
        if perf is not None:
            perf.progress.planned = perf.progress.planned or [name_of(nodeid) for nodeid in perf_ids]

    @pytest.hookimpl(tryfirst=True)  # before '-v' names the test: a signal after that finds it running
    def pytest_runtest_logstart(self, nodeid: str, location) -> None:
        if self.state.session is not None and nodeid in self.state.perf_ids:
            self.state.session.progress.started(name_of(nodeid))

    @pytest.hookimpl(tryfirst=True)
    def pytest_runtest_logreport(self, report: pytest.TestReport) -> None:
        """A test is done once it has been measured (its call), or its setup failed or skipped it. A test that ended
        in an error, or failed before the gate recorded its figures, is kept in the run file with what it said
        (under pytest-xdist the controller, which sees every worker's reports, keeps them). Before the terminal's
        'PASSED': a signal after that line must not find the test still running."""
        perf = self.state.session
        if perf is None or report.nodeid not in self.state.perf_ids:
            return
        if report.when == "call" or (report.when == "setup" and not report.passed):
            perf.progress.done(name_of(report.nodeid))
        if report.failed and not perf.is_worker and not gate_failed(report):
            perf.test_error(name_of(report.nodeid), report.when, failure_text(report))

    def pytest_keyboard_interrupt(self, excinfo: pytest.ExceptionInfo) -> None:
        """Ctrl-C, or SIGTERM (perfgate.signals), in a run of perf tests."""
        perf = self.state.session
        if perf is not None and perf.progress.planned:
            perf.interrupt(str(excinfo.value) or "Ctrl-C", excinfo.value)


def perf_params(item: pytest.Item) -> dict[str, Any] | None:
    """A perf test's parameters (variant_name, and workload where it has one), or None for any other test."""
    params = getattr(item, "callspec", None) and item.callspec.params
    return params if params and "variant_name" in params else None


def gate_failed(report: pytest.TestReport) -> bool:
    """The gate fixture recorded the test's figures (attaching them as JUnit properties) and failed its call with
    its verdicts' own messages: a failure of the gate, not an error (a teardown's error after it still is one)."""
    return report.when == "call" and bool(report.user_properties)


def failure_text(report: pytest.TestReport) -> str:
    """What a failed test said: the exception's message (not pytest's traceback; perfgate's own failures without
    pytest's 'Failed: '), its first 5 and last 15 lines where longer (a model worker's log follows its message)."""
    crash = getattr(report.longrepr, "reprcrash", None)
    lines = (crash.message if crash is not None else report.longreprtext).removeprefix("Failed: ").strip().splitlines()
    if len(lines) > 20:
        lines = [*lines[:5], f"… ({len(lines) - 20} lines left out)", *lines[-15:]]
    return "\n".join(lines)[:4000]


def variant_of(test: str, names: tuple[str, ...] | None = None) -> str | None:
    """The variant a perf test's name or node id names, the longest of `names` (the registry's by default) its first
    parameter is or starts with: 'test_decode[hf-bf16-static-ctx1024]' -> 'hf-bf16-static' (not 'hf-bf16'), and
    '...::test_load[hf-fp16]@hf-fp16' (pytest-xdist --dist loadgroup) -> 'hf-fp16'; None for any other test."""
    found = re.search(r"\[([^\[\]]*)\]", test.rsplit("::", 1)[-1])
    param = found.group(1) if found else None
    named = [n for n in names or variants.REGISTRY if param is not None and (param == n or param.startswith(f"{n}-"))]
    return max(named, key=len, default=None)


def seconds_by_variant(tests_s: dict[str, float], names: tuple[str, ...] | None = None) -> dict[str, float]:
    """Each variant's tests' seconds summed (Progress.seconds, as the run file keeps them), the costliest first;
    names: the variants' (variant_of's default, the registry's); a test of none of them stands on its own."""
    out: dict[str, float] = {}
    for test, s in tests_s.items():
        v = variant_of(test, names) or test
        out[v] = out.get(v, 0.0) + s
    return dict(sorted(out.items(), key=lambda kv: (-kv[1], kv[0])))


def name_of(nodeid: str) -> str:
    """'perf_tests/test_load.py::test_load[hf-nf4]' -> 'test_load[hf-nf4]', as pytest's item.name; under
    pytest-xdist --dist loadgroup without the group it appends ('test_load[hf-nf4]@hf-nf4')."""
    return re.sub(r"@[^\[\]]*$", "", nodeid.rsplit("::", 1)[-1])
