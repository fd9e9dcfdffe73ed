"""pytest hooks, --perf-* options and fixtures for perfgate. Logic lives in the perfgate package."""

from __future__ import annotations

import re
import signal
import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any

import pytest

from perfgate import options, parallel, trackers
from perfgate.session import PerfSession, VariantFailed, VariantUnavailable

SESSION = pytest.StashKey[PerfSession]()
SIGTERM_BEFORE = pytest.StashKey[object]()
TEST_ORDER = {"test_load": 0, "test_decode": 1, "test_fidelity": 2, "test_agent": 3, "test_agent_live": 4}


def pytest_addoption(parser: pytest.Parser) -> None:
    options.register(parser)


def pytest_configure(config: pytest.Config) -> None:
    config.addinivalue_line("markers", "perf: a perfgate measurement (needs a model; slow)")
    config.addinivalue_line("markers", "xdist_group(name): pytest-xdist runs a group's tests on one worker")
    trackers.align_device_order()  # before anything starts CUDA: GPU index n is the same GPU to torch and NVML
    workerinput = getattr(config, "workerinput", None)
    if workerinput is not None:  # a pytest-xdist worker: one GPU of its own, before anything touches CUDA
        role = {
            "role": "worker",
            "worker": workerinput["workerid"],
            "gpu": parallel.pin_worker(workerinput["workerid"]),
            "run": workerinput["perfgate_run"],  # set by pytest_configure_node in the controller
        }
    elif getattr(config.option, "numprocesses", None):
        role = {"role": "controller", "run": parallel.new_run_id()}
    else:
        role = None
    try:
        config.stash[SESSION] = PerfSession(options.resolve(config), role)
    except ValueError as exc:
        raise pytest.UsageError(str(exc)) from None
    config.pluginmanager.register(Progress(config.stash[SESSION]), "perfgate-progress")
    if threading.current_thread() is threading.main_thread() and signal.getsignal(signal.SIGTERM) == signal.SIG_DFL:
        # a CI job cancelled or timed out (SIGTERM) ends like Ctrl-C: the workers are stopped, and what was measured
        # reaches the run file, the report and (with --perf-update-baselines) the baseline
        config.stash[SIGTERM_BEFORE] = signal.signal(signal.SIGTERM, _on_sigterm(config.stash[SESSION]))


def _on_sigterm(perf: PerfSession) -> Callable[[int, Any], None]:
    """SIGTERM ends the run like Ctrl-C, once: a second one (a process group's signal that the controller passes on
    as well, or a sender that repeats it) would cut short the writing of what was measured; SIGKILL still ends the
    process. The controller of a run spread over GPUs passes it on to its workers, which a signal sent to it alone
    (`timeout`, `kill PID`) does not reach, so that each keeps its rounds so far."""

    def interrupt(signum: int, frame) -> None:
        signal.signal(signum, signal.SIG_IGN)
        if perf.is_controller:
            perf.workers_signalled = parallel.forward_signal(signum)
        raise KeyboardInterrupt(f"signal {signal.Signals(signum).name}")

    return interrupt


def pytest_unconfigure(config: pytest.Config) -> None:
    if SIGTERM_BEFORE in config.stash:
        signal.signal(signal.SIGTERM, config.stash[SIGTERM_BEFORE])


def pytest_generate_tests(metafunc: pytest.Metafunc) -> None:
    perf = metafunc.config.stash[SESSION]
    if "variant_name" in metafunc.fixturenames:
        # under pytest-xdist --dist loadgroup, an xdist_group per variant keeps all of its tests on one worker
        names = [pytest.param(v.name, id=v.name, marks=pytest.mark.xdist_group(v.name)) for v in perf.variants]
        metafunc.parametrize("variant_name", names, scope="session")
    if "workload" in metafunc.fixturenames:
        metafunc.parametrize("workload", perf.workloads, ids=[w.id for w in perf.workloads])


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    """Group the perf tests by variant, so that each variant is loaded once and released before the next."""
    perf = config.stash[SESSION]
    order = {v.name: i for i, v in enumerate(perf.variants)}
    contexts = {w.id: i for i, w in enumerate(perf.workloads)}

    def key(item: pytest.Item) -> tuple[int, int, int]:
        params = getattr(item, "callspec", None) and item.callspec.params
        if not params or "variant_name" not in params:
            return (-1, 0, 0)
        workload = params.get("workload")
        return (
            order[params["variant_name"]],
            TEST_ORDER.get(item.originalname, 9),
            contexts.get(workload.id, 0) if workload else 0,
        )

    items.sort(key=key)
    off = [i for i in items if _agent_mode(i) and _agent_mode(i) not in perf.agent_modes]
    if off:  # --perf-agent leaves this mode out: deselected, as -k would
        config.hook.pytest_deselected(items=off)
        items[:] = [i for i in items if i not in off]


def pytest_runtest_setup(item: pytest.Item) -> None:
    """A perf test does not start once --perf-session-budget is spent: it is skipped, saying so."""
    params = getattr(item, "callspec", None) and item.callspec.params
    if params and "variant_name" in params:
        why = item.config.stash[SESSION].budget_spent(item.name)
        if why:
            pytest.skip(why)


def _agent_mode(item: pytest.Item) -> str | None:
    name = getattr(item, "originalname", "")
    return ("live" if name.endswith("_live") else "replay") if name.startswith("test_agent") else None


@pytest.fixture(scope="session")
def perf(pytestconfig: pytest.Config) -> PerfSession:
    return pytestconfig.stash[SESSION]


@pytest.fixture
def fitting_workload(perf: PerfSession, workload):
    """The workload, or a skip when the prompt and new tokens exceed the model's context (before loading)."""
    unfit = perf.workload_unfit(workload)
    if unfit:
        pytest.skip(unfit)
    return workload


@pytest.fixture
def agent_mode(perf: PerfSession, request: pytest.FixtureRequest) -> str:
    """The agent mode this test measures ('replay' or 'live'), or a skip, before anything is loaded, when the
    agent's longest turn exceeds the model's context. (Modes left out of --perf-agent are deselected.)"""
    mode = _agent_mode(request.node)
    unfit = perf.agent_unfit()
    if unfit:
        pytest.skip(unfit)
    return mode


@contextmanager
def as_outcome() -> Iterator[None]:
    """perfgate's two exceptions as pytest outcomes: cannot run here is a skip, tried and failed is a failure
    (out of memory, a hang, a crash, too few tokens) with its message and no traceback; the session goes on."""
    try:
        yield
    except VariantUnavailable as exc:
        pytest.skip(str(exc))
    except VariantFailed as exc:
        pytest.fail(str(exc), pytrace=False)


@pytest.fixture
def loaded(perf: PerfSession, variant_name: str):
    with as_outcome():
        return perf.acquire(variant_name)


def outcome_of(measure: Callable[..., Any]) -> Callable[..., Any]:
    """A session measurement whose two exceptions end the test as as_outcome says."""

    def run(*args: Any) -> Any:
        with as_outcome():
            return measure(*args)

    return run


@pytest.fixture
def measure_decode(perf: PerfSession, benchmark):
    """measure_decode(loaded, workload): the measurement of one decode test."""
    return outcome_of(lambda loaded, workload: perf.measure_decode(loaded, workload, benchmark))


@pytest.fixture
def measure_fidelity(perf: PerfSession):
    """measure_fidelity(loaded): (reference name, comparison against the reference's logits)."""
    return outcome_of(perf.measure_fidelity)


@pytest.fixture
def measure_agent(perf: PerfSession):
    """measure_agent(loaded): the replay of the agent's queries on one variant."""
    return outcome_of(perf.measure_agent)


@pytest.fixture
def measure_agent_live(perf: PerfSession):
    """measure_agent_live(loaded): the real agent loop's outcome per question."""
    return outcome_of(perf.measure_agent_live)


@pytest.fixture
def gate(perf: PerfSession, request: pytest.FixtureRequest):
    """gate(figures): record the figures, judge the gated ones against the baseline, fail with every reason.
    Each figure (and its verdict) also becomes a property of the test in --junitxml reports."""

    def check(figures) -> None:
        perf.record(figures)
        failures = perf.judge(figures)
        request.node.user_properties.extend(perf.properties(figures))
        if failures:
            pytest.fail("\n\n".join(failures), pytrace=False)

    return check


class Progress:
    """Which perf tests the run holds, started and finished, so that an interrupted run's file says what it stopped
    (perfgate's own tests/, which load this conftest too, are none of its business: they make no run file)."""

    def __init__(self, perf: PerfSession) -> None:
        self.perf = perf

    def pytest_collection_finish(self, session: pytest.Session) -> None:
        self.perf.planned = [item.name for item in session.items if _is_perf_nodeid(item.nodeid)]

    @pytest.hookimpl(optionalhook=True)
    def pytest_xdist_node_collection_finished(self, node, ids: list[str]) -> None:
        """pytest-xdist: the controller collects nothing itself; each worker reports the tests of the run."""
        self.perf.planned = self.perf.planned or [_test_name(nodeid) for nodeid in ids if _is_perf_nodeid(nodeid)]

    @pytest.hookimpl(tryfirst=True)  # before '-v' names the test: a signal after that finds it running
    def pytest_runtest_logstart(self, nodeid: str, location) -> None:
        if _is_perf_nodeid(nodeid):
            self.perf.test_started(_test_name(nodeid))

    @pytest.hookimpl(tryfirst=True)
    def pytest_runtest_logreport(self, report: pytest.TestReport) -> None:
        """A test is done once it has been measured (its call), or its setup failed or skipped it. A test that ended
        in an error, or failed before the gate recorded its figures, is kept in the run file with what it said
        (under pytest-xdist the controller, which sees every worker's reports, keeps them). Before the terminal's
        'PASSED': a signal after that line must not find the test still running (seen in CI on 2026-11-30)."""
        if not _is_perf_nodeid(report.nodeid):
            return
        if report.when == "call" or (report.when == "setup" and not report.passed):
            self.perf.test_done(_test_name(report.nodeid))
        if report.failed and not self.perf.is_worker and not _gate_failed(report):
            self.perf.test_error(_test_name(report.nodeid), report.when, _failure_text(report))

    def pytest_keyboard_interrupt(self, excinfo: pytest.ExceptionInfo) -> None:
        """Ctrl-C, or SIGTERM (see pytest_configure), in a run of perf tests."""
        if self.perf.planned:
            self.perf.interrupt(str(excinfo.value) or "Ctrl-C", excinfo.value)


def _is_perf_nodeid(nodeid: str) -> bool:
    """One of perf_tests/ (this conftest is loaded for perfgate's own tests/ too, which make no run file)."""
    return nodeid.startswith("perf_tests/")


def _gate_failed(report: pytest.TestReport) -> bool:
    """The gate fixture recorded the test's figures (attaching them as JUnit properties) and failed its call with
    its verdicts' own messages: a failure of the gate, not an error (a teardown's error after it still is one)."""
    return report.when == "call" and bool(report.user_properties)


def _failure_text(report: pytest.TestReport) -> str:
    """What a failed test said: the exception's message (not pytest's traceback; perfgate's own failures without
    pytest's 'Failed: '), its first 5 and last 15 lines where longer (a model worker's log follows its message)."""
    crash = getattr(report.longrepr, "reprcrash", None)
    lines = (crash.message if crash is not None else report.longreprtext).removeprefix("Failed: ").strip().splitlines()
    if len(lines) > 20:
        lines = [*lines[:5], f"… ({len(lines) - 20} lines left out)", *lines[-15:]]
    return "\n".join(lines)[:4000]


def _test_name(nodeid: str) -> str:
    """'perf_tests/test_load.py::test_load[hf-nf4]' -> 'test_load[hf-nf4]', as pytest's item.name; under
    pytest-xdist --dist loadgroup without the group it appends ('test_load[hf-nf4]@hf-nf4')."""
    return re.sub(r"@[^\[\]]*$", "", nodeid.rsplit("::", 1)[-1])


def pytest_sessionfinish(session: pytest.Session) -> None:
    perf = session.config.stash[SESSION]
    perf.finish()
    if perf.is_worker and perf.figures:  # handed to the controller, which merges the workers' runs
        session.config.workeroutput["perfgate_run"] = perf.run_document()
        session.config.workeroutput["perfgate_part"] = str(perf.run_path)


@pytest.hookimpl(optionalhook=True)
def pytest_configure_node(node) -> None:
    """pytest-xdist, in the controller, before a worker starts: the run's name, after which the worker names its
    part of the run file (an interrupted run's workers are stopped before they can hand their run over)."""
    node.workerinput["perfgate_run"] = node.config.stash[SESSION].parallel["run"]


@pytest.hookimpl(optionalhook=True)
def pytest_testnodeready(node) -> None:
    """pytest-xdist: a worker started; an interrupted run waits for its last part before the merge."""
    node.config.stash[SESSION].workers_up.add(node.workerinput["workerid"])


@pytest.hookimpl(optionalhook=True)
def pytest_testnodedown(node, error) -> None:
    """pytest-xdist: a worker finished; keep its run document for the merge."""
    node.config.stash[SESSION].workers_up.discard(node.workerinput["workerid"])
    output = getattr(node, "workeroutput", {})
    if "perfgate_run" in output:
        perf = node.config.stash[SESSION]
        perf.worker_documents.append(output["perfgate_run"])
        perf.worker_parts.append(output["perfgate_part"])


def pytest_terminal_summary(terminalreporter, config: pytest.Config) -> None:
    config.stash[SESSION].display(terminalreporter)
