"""The run's time split (perfgate.phases): every second charged to one part, nested phases not counted twice, the
workers' splits summed, and the terminal's line. On a fake clock, so the numbers are exact."""

import pytest

from perfgate import phases, progress


class FakeTime:
    def __init__(self) -> None:
        self.t = 100.0

    def __call__(self) -> float:
        return self.t

    def sleep(self, seconds: float) -> None:
        self.t += seconds


def test_nested_phases_are_not_counted_twice_and_the_parts_sum_to_the_total():
    time = FakeTime()
    clock = phases.Clock(time)
    time.sleep(2)  # the session's start
    clock.lap("setup")
    with clock.track("timed"):
        time.sleep(3)
        with clock.track("load"):  # a worker restarted within a decode test
            time.sleep(5)
        time.sleep(1)
    time.sleep(0.5)  # between tests
    split = clock.split()
    parts = split["parts_s"]
    assert (parts["setup"], parts["timed"], parts["load"], parts["other"]) == (2, 4, 5, 0.5)
    assert split["total_s"] == 11.5 == sum(parts.values())
    assert list(parts) == list(phases.PARTS)  # every part, in the registry's order, zero where nothing ran


def test_a_phase_that_raises_is_still_charged():
    time = FakeTime()
    clock = phases.Clock(time)
    with pytest.raises(KeyboardInterrupt), clock.track("agent"):
        time.sleep(4)
        raise KeyboardInterrupt
    time.sleep(1)
    assert clock.split()["parts_s"]["agent"] == 4
    assert clock.split()["parts_s"]["other"] == 1


def test_an_unknown_phase_is_refused():
    with pytest.raises(ValueError, match="unknown phase 'loading'; known: setup, checkpoint, load"):
        with phases.Clock().track("loading"):
            pass


def test_track_without_a_session_keeps_nothing(monkeypatch):
    monkeypatch.setattr(phases, "_active", None)  # and back afterwards
    with phases.track("load"):  # a measurement in a unit test
        pass
    clock = phases.start(FakeTime())
    with phases.track("load"):
        clock._now.sleep(2)
    assert clock.split()["parts_s"]["load"] == 2


def test_workers_splits_are_kept_and_summed_per_part():
    def split(load: float, timed: float, variant: str) -> dict:
        parts = dict.fromkeys(phases.PARTS, 0.0) | {"load": load, "timed": timed}
        return {"total_s": load + timed, "parts_s": parts, "tests_s": {f"test_load[{variant}]": load}}

    merged = phases.merge({"gw1": split(10, 30, "hf-fp16"), "gw0": split(20, 5, "hf-bf16")})
    assert merged["total_s"] == 65
    assert merged["tests_s"] == {"test_load[hf-bf16]": 20, "test_load[hf-fp16]": 10}  # each test on one worker
    assert (merged["parts_s"]["load"], merged["parts_s"]["timed"]) == (30, 35)
    assert list(merged["workers"]) == ["gw0", "gw1"] and merged["workers"]["gw1"]["total_s"] == 40
    merged["wall_s"] = 42.0
    assert phases.summary_line(merged) == (
        "time: 65 s summed over 2 workers (42 s of wall time), most in timed 35 s (54 %), load 30 s (46 %), "
        "setup 0 s (0 %)"
    )


def test_the_summary_line_names_the_total_and_the_three_largest_parts():
    parts = dict.fromkeys(phases.PARTS, 0.0) | {"load": 40.0, "timed": 120.0, "warmup": 20.0, "other": 2.0}
    line = phases.summary_line({"total_s": 182.0, "parts_s": parts})
    assert line == "time: 182 s, most in timed 120 s (66 %), load 40 s (22 %), warmup 20 s (11 %)"


def test_a_tests_seconds_are_summed_per_variant_by_its_longest_registered_name():
    tests_s = {
        "test_load[hf-bf16]": 30.0,
        "test_decode[hf-bf16-static-ctx1024]": 100.0,  # hf-bf16-static's, not hf-bf16's
        "test_decode[hf-bf16-ctx1024]": 150.5,
        "test_agent[hf-bf16-static]": 20.0,
    }
    by_variant = progress.seconds_by_variant(tests_s)
    assert list(by_variant.items()) == [("hf-bf16", 180.5), ("hf-bf16-static", 120.0)]  # the costliest first
    assert list(progress.seconds_by_variant({**tests_s, "test_agent[hf-bf16-static]": 90.0})) == [
        "hf-bf16-static",
        "hf-bf16",
    ]
    assert progress.seconds_by_variant({"test_load[ours]": 3.0}, ("ours",)) == {"ours": 3.0}  # a user's variant
    assert progress.variant_of("test_decode[hf-bf16-static-ctx1024]") == "hf-bf16-static"
    assert progress.variant_of("perf_tests/test_load.py::test_load[hf-fp16]@hf-fp16") == "hf-fp16"
    assert progress.variant_of("test_something_else") is None
    assert progress.variant_of("test_x[hf-bf16x]") is None  # a name that only begins like a variant's


def test_a_test_cut_by_the_session_budget_has_no_seconds(monkeypatch):
    now = iter([0.0, 1.0, 4.5, 5.0, 5.0, 5.5])  # start, test 1 began, done; test 2 began, cut, done
    monkeypatch.setattr(progress.time, "monotonic", lambda: next(now))
    p = progress.Progress(budget_s=4.0)
    p.started("test_load[hf-bf16]")
    p.done("test_load[hf-bf16]")
    p.started("test_decode[hf-bf16-ctx16]")
    assert p.budget_spent("test_decode[hf-bf16-ctx16]")
    p.done("test_decode[hf-bf16-ctx16]")
    assert p.seconds == {"test_load[hf-bf16]": 3.5}


def test_a_tests_seconds_leave_out_the_unloads_and_a_stopped_test_keeps_its_seconds(monkeypatch):
    """A variant's first test stops the workers of the variant before (the clock's unload part): not its cost. A
    test stopped by a signal keeps the seconds it ran."""
    clock = {"now": 0.0, "unload": 0.0}
    monkeypatch.setattr(progress.time, "monotonic", lambda: clock["now"])
    p = progress.Progress(not_counted=lambda: clock["unload"])
    p.started("test_load[hf-bf16]")
    clock["now"], clock["unload"] = 10.0, 4.0  # 4 s of it stopping hf-fp16's workers
    p.done("test_load[hf-bf16]")
    p.started("test_decode[hf-bf16-ctx16]")
    clock["now"] = 17.0
    p.interrupt("signal SIGTERM")
    assert p.seconds == {"test_load[hf-bf16]": 6.0, "test_decode[hf-bf16-ctx16]": 7.0}
    assert p.interrupted["during"] == ["test_decode[hf-bf16-ctx16]"]
