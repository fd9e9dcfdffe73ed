"""perfgate's pytest plugin: the --perf-* options, the hooks and the fixtures. Logic lives in the other modules.

Registered through the `pytest11` entry point once installed, or by name (`-p perfgate.plugin`, or a conftest.py's
pytest_plugins) from a working tree. Inert in a run without perf tests (a repository's unit tests): the perf session,
which probes the device, reads the baseline and writes the run file, starts only once a perf test is collected.
A perf test is one that takes `variant_name`, which the plugin parametrizes with the selected variants.
"""

from __future__ import annotations

import re
import signal
import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import pytest

from perfgate import hooks, options, parallel, phases, profiles, project, trackers, variants
from perfgate.session import PerfSession, VariantFailed, VariantUnavailable

SUITE = Path(__file__).resolve().parent / "suite"  # the built-in perf tests, collected with --perf
STATE = pytest.StashKey["State"]()
TEST_ORDER = {"test_load": 0, "test_decode": 1, "test_fidelity": 2, "test_agent": 3, "test_agent_live": 4}


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
        workerinput = getattr(config, "workerinput", None)
        if workerinput is not None:  # a pytest-xdist worker (its GPU is chosen when its session starts)
            self.role: dict[str, Any] | None = {
                "role": "worker",
                "worker": workerinput["workerid"],
                "run": workerinput["perfgate_run"],  # set by pytest_configure_node in the controller
            }
        elif getattr(config.option, "numprocesses", None):
            self.role = {"role": "controller", "run": parallel.new_run_id()}
        else:
            self.role = None

    def declare(self) -> None:
        """Register the variants of [tool.perfgate] and of pytest_perfgate_variants; cheap (no device touched)."""
        if self.declared is not None:
            return
        self.project = project.read(Path(self.config.rootpath))
        self.declared = list(self.project.variants)
        for found in self.config.hook.pytest_perfgate_variants(config=self.config):
            self.declared += [
                v if v.import_path or not v.loader else _with_root(v, self.config.rootpath) for v in found or ()
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
        if opts["origins"]["agent"] == "default" and not _agent_data():
            opts["agent"] = ()  # a repository without this one's agent workload: nothing to replay
        perf = PerfSession(opts, role, Path(self.config.rootpath))
        perf.workers_up = self.workers_up
        if threading.current_thread() is threading.main_thread() and signal.getsignal(signal.SIGTERM) == signal.SIG_DFL:
            # a CI job cancelled or timed out (SIGTERM) ends like Ctrl-C: the workers are stopped, and what was
            # measured reaches the run file, the report and (with --perf-update-baselines) the baseline
            self.sigterm_before = signal.signal(signal.SIGTERM, _on_sigterm(perf))
        return perf


def _with_root(variant: variants.Variant, root: Path) -> variants.Variant:
    from dataclasses import replace

    return replace(variant, import_path=(str(root),))


def _agent_data() -> bool:
    from perfgate.agent import traces

    return traces.TRACES.is_file()


def pytest_addhooks(pluginmanager: pytest.PytestPluginManager) -> None:
    pluginmanager.add_hookspecs(hooks)


def pytest_addoption(parser: pytest.Parser) -> None:
    options.register(parser)
    parser.getgroup("perfgate").addoption(
        "--perf",
        action="store_true",
        default=False,
        help="collect perfgate's built-in perf tests (load, decode, fidelity) and measure this repository's model "
        "and variants ([tool.perfgate] in pyproject.toml); alone, instead of the usual tests",
    )


def pytest_configure(config: pytest.Config) -> None:
    config.addinivalue_line("markers", "perf: a perfgate measurement (needs a model; slow)")
    config.addinivalue_line("markers", "xdist_group(name): pytest-xdist runs a group's tests on one worker")
    config.stash[STATE] = state = State(config)
    config.pluginmanager.register(Progress(state), "perfgate-progress")
    if config.getoption("perf", False):
        suite = str(SUITE)
        if config.args_source == pytest.Config.ArgsSource.ARGS:
            config.args.append(suite)
        else:  # `pytest --perf`: the perf tests, not the repository's testpaths
            config.args[:] = [suite]


def pytest_report_header(config: pytest.Config) -> str | None:
    """The run's profile and its values, first thing, where one is chosen (--perf-profile, PERF_PROFILE, ...). A bad
    option prints nothing here: it is a usage error once perf tests are collected."""
    try:  # (declaring the variants waits for collection: conftest files below the rootdir may declare some)
        opts = options.resolve(config, project.read(Path(config.rootpath)).options)
    except (ValueError, project.ProjectError):
        return None
    return profiles.header(opts["profile"], opts) if opts["profile"] else None


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
    state = config.stash.get(STATE, None)
    if state is not None and state.sigterm_before is not None:
        signal.signal(signal.SIGTERM, state.sigterm_before)


def _session(config: pytest.Config) -> PerfSession | None:
    return config.stash[STATE].session


def pytest_generate_tests(metafunc: pytest.Metafunc) -> None:
    if "variant_name" not in metafunc.fixturenames:  # a perf test names a variant; another `workload` is not ours
        return
    perf = metafunc.config.stash[STATE].start()
    if perf is None:  # a usage error, raised once collection is done (here it would be one module's error)
        return
    if "variant_name" in metafunc.fixturenames:
        # under pytest-xdist --dist loadgroup, an xdist_group per variant keeps all of its tests on one worker
        names = [pytest.param(v.name, id=v.name, marks=pytest.mark.xdist_group(v.name)) for v in perf.variants]
        metafunc.parametrize("variant_name", names, scope="session")
    if "workload" in metafunc.fixturenames:
        metafunc.parametrize("workload", perf.workloads, ids=[w.id for w in perf.workloads])


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    """Group the perf tests by variant, so that each variant is loaded once and released before the next."""
    state = config.stash[STATE]
    if state.error:
        raise pytest.UsageError(state.error)
    perf = state.session
    if perf is None:
        return
    order = {v.name: i for i, v in enumerate(perf.variants)}
    contexts = {w.id: i for i, w in enumerate(perf.workloads)}

    def key(item: pytest.Item) -> tuple[int, int, int]:
        params = _perf_params(item)
        if not params:
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


def _perf_params(item: pytest.Item) -> dict[str, Any] | None:
    """A perf test's parameters (variant_name, and workload where it has one), or None for any other test."""
    params = getattr(item, "callspec", None) and item.callspec.params
    return params if params and "variant_name" in params else None


def pytest_runtest_setup(item: pytest.Item) -> None:
    """A perf test does not start once --perf-session-budget is spent: it is skipped, saying so."""
    perf = _session(item.config)
    if perf is not None and _perf_params(item):
        why = perf.budget_spent(item.name)
        if why:
            pytest.skip(why)


def _agent_mode(item: pytest.Item) -> str | None:
    name = getattr(item, "originalname", "")
    return ("live" if name.endswith("_live") else "replay") if name.startswith("test_agent") else None


@pytest.fixture(scope="session")
def perf(pytestconfig: pytest.Config) -> PerfSession:
    session = pytestconfig.stash[STATE].start()
    if session is None:
        raise pytest.UsageError(pytestconfig.stash[STATE].error)
    return session


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
    with as_outcome(), phases.track("load"):
        return perf.acquire(variant_name)


def outcome_of(measure: Callable[..., Any], phase: str) -> Callable[..., Any]:
    """A session measurement whose two exceptions end the test as as_outcome says; its seconds go to `phase` of the
    run's time split (perfgate.phases), less what nested phases take (a worker restarted within it: load)."""

    def run(*args: Any) -> Any:
        with as_outcome(), phases.track(phase):
            return measure(*args)

    return run


@pytest.fixture
def measure_decode(perf: PerfSession, benchmark):
    """measure_decode(loaded, workload): the measurement of one decode test."""
    return outcome_of(lambda loaded, workload: perf.measure_decode(loaded, workload, benchmark), "timed")


@pytest.fixture
def measure_fidelity(perf: PerfSession):
    """measure_fidelity(loaded): (reference name, comparison against the reference's logits)."""
    return outcome_of(perf.measure_fidelity, "fidelity")


@pytest.fixture
def measure_agent(perf: PerfSession):
    """measure_agent(loaded): the replay of the agent's queries on one variant."""
    return outcome_of(perf.measure_agent, "agent")


@pytest.fixture
def measure_agent_live(perf: PerfSession):
    """measure_agent_live(loaded): the real agent loop's outcome per question."""
    return outcome_of(perf.measure_agent_live, "agent")


@pytest.fixture
def gate(perf: PerfSession, request: pytest.FixtureRequest):
    """gate(figures): record the figures, judge the gated ones against the baseline, fail with every reason.
    Each figure (and its verdict) also becomes a property of the test in --junitxml reports."""

    def check(figures) -> None:
        with phases.track("gate"):
            perf.record(figures)
            failures = perf.judge(figures)
        request.node.user_properties.extend(perf.properties(figures))
        if failures:
            pytest.fail("\n\n".join(failures), pytrace=False)

    return check


class Progress:
    """Which perf tests the run holds, started and finished, so that an interrupted run's file says what it stopped
    (a run's other tests are none of its business)."""

    def __init__(self, state: State) -> None:
        self.state = state

    @property
    def perf(self) -> PerfSession | None:
        """The run's perf session, once started."""
        return self.state.session

    def pytest_collection_finish(self, session: pytest.Session) -> None:
        perf = self.state.session
        if perf is None:
            return
        items = [item for item in session.items if _perf_params(item)]
        self.state.perf_ids = {item.nodeid for item in items}
        perf.planned = [item.name for item in items]

    @pytest.hookimpl(optionalhook=True)
    def pytest_xdist_node_collection_finished(self, node, ids: list[str]) -> None:
        """pytest-xdist: the controller collects nothing itself; each worker reports the tests of the run. A perf
        test's id names a variant first among its parameters ('test_decode[hf-fp16-ctx128]')."""
        try:
            self.state.declare()
        except project.ProjectError:  # the workers say so
            return
        names = tuple(variants.REGISTRY)
        perf_ids = [nodeid for nodeid in ids if _names_a_variant(nodeid, names)]
        if not perf_ids:
            return
        self.state.perf_ids |= set(perf_ids)
        perf = self.state.start()
        if perf is not None:
            perf.planned = perf.planned or [_test_name(nodeid) for nodeid in perf_ids]

    @pytest.hookimpl(tryfirst=True)  # before '-v' names the test: a signal after that finds it running
    def pytest_runtest_logstart(self, nodeid: str, location) -> None:
        if self.state.session is not None and nodeid in self.state.perf_ids:
            self.state.session.test_started(_test_name(nodeid))

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
            perf.test_done(_test_name(report.nodeid))
        if report.failed and not perf.is_worker and not _gate_failed(report):
            perf.test_error(_test_name(report.nodeid), report.when, _failure_text(report))

    def pytest_keyboard_interrupt(self, excinfo: pytest.ExceptionInfo) -> None:
        """Ctrl-C, or SIGTERM (see State._start), in a run of perf tests."""
        perf = self.state.session
        if perf is not None and perf.planned:
            perf.interrupt(str(excinfo.value) or "Ctrl-C", excinfo.value)


def _names_a_variant(nodeid: str, names: tuple[str, ...]) -> bool:
    """'...::test_decode[hf-fp16-ctx128]' (or '[hf-fp16]@hf-fp16' under --dist loadgroup) names hf-fp16."""
    found = re.search(r"\[([^\[\]]*)\]", nodeid.rsplit("::", 1)[-1])
    return bool(found) and any(found.group(1) == n or found.group(1).startswith(f"{n}-") for n in names)


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
    perf = _session(session.config)
    if perf is None:
        return
    with phases.track("gate"):  # the workers stopped (unload), the baseline and the run file's last write
        perf.finish()
    if perf.is_worker and perf.figures:  # handed to the controller, which merges the workers' runs
        session.config.workeroutput["perfgate_run"] = perf.run_document()
        session.config.workeroutput["perfgate_part"] = str(perf.runfile.path)


@pytest.hookimpl(optionalhook=True)
def pytest_configure_node(node) -> None:
    """pytest-xdist, in the controller, before a worker starts: the run's name, after which the worker names its
    part of the run file (an interrupted run's workers are stopped before they can hand their run over)."""
    node.workerinput["perfgate_run"] = node.config.stash[STATE].role["run"]


@pytest.hookimpl(optionalhook=True)
def pytest_testnodeready(node) -> None:
    """pytest-xdist: a worker started; an interrupted run waits for its last part before the merge."""
    node.config.stash[STATE].workers_up.add(node.workerinput["workerid"])


@pytest.hookimpl(optionalhook=True)
def pytest_testnodedown(node, error) -> None:
    """pytest-xdist: a worker finished; keep its run document for the merge."""
    state = node.config.stash[STATE]
    state.workers_up.discard(node.workerinput["workerid"])
    output = getattr(node, "workeroutput", {})
    if "perfgate_run" in output:
        perf = state.start()
        if perf is not None:
            perf.worker_documents.append(output["perfgate_run"])
            perf.worker_parts.append(output["perfgate_part"])


def pytest_terminal_summary(terminalreporter, config: pytest.Config) -> None:
    perf = _session(config)
    if perf is not None:
        perf.display(terminalreporter)
