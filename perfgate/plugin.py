"""perfgate's pytest plugin: the --perf-* options, the hooks and the fixtures. Logic lives in the other modules.

Registered through the `pytest11` entry point once installed, or by name (`-p perfgate.plugin`, or a conftest.py's
pytest_plugins) from a working tree. Inert in a run without perf tests (a repository's unit tests): the perf session,
which probes the device, reads the baseline and writes the run file, starts only once a perf test is collected.
A perf test is one that takes `variant_name`, which the plugin parametrizes with the selected variants.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import pytest

from perfgate import display, hooks, options, phases, profiles, project, signals
from perfgate.progress import Recorder, perf_params
from perfgate.session import PerfSession, VariantFailed, VariantUnavailable
from perfgate.state import State

SUITE = Path(__file__).resolve().parent / "suite"  # the built-in perf tests, collected with --perf
STATE = pytest.StashKey["State"]()
TEST_ORDER = {"test_load": 0, "test_decode": 1, "test_fidelity": 2, "test_agent": 3, "test_agent_live": 4}


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
    config.pluginmanager.register(Recorder(state), "perfgate-progress")
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


def pytest_unconfigure(config: pytest.Config) -> None:
    state = config.stash.get(STATE, None)
    if state is not None:
        signals.restore(state.sigterm_before)


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
    order = {name: i for i, name in enumerate(perf.test_order())}
    contexts = {w.id: i for i, w in enumerate(perf.workloads)}

    def key(item: pytest.Item) -> tuple[int, int, int]:
        params = perf_params(item)
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


def pytest_runtest_setup(item: pytest.Item) -> None:
    """A perf test does not start once --perf-session-budget is spent: it is skipped, saying so."""
    perf = _session(item.config)
    if perf is not None and perf_params(item):
        why = perf.progress.budget_spent(item.name)
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
        request.node.user_properties.extend(display.junit_properties(figures, perf.judged))
        if failures:
            pytest.fail("\n\n".join(failures), pytrace=False)

    return check


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
        display.terminal_summary(perf, terminalreporter)
