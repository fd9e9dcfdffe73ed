"""Run profiles (--perf-profile, perfgate.profiles) and the run's time split (perfgate.phases) end to end: a profile's
values are applied, printed at the start and recorded, an option given elsewhere wins over them, a bad name is a usage
error listing the profiles; every run file says where its time went, and a sleep injected into the loads shows up in
the load part. Run: pytest tests/test_profiles.py (one tiny run on the CPU, about half a minute)."""

from pathlib import Path
from types import SimpleNamespace

import pytest

from perfgate import gate, measure, options, profiles, variants
from tests.terminal import last_run


class Config:
    """What options.resolve reads of pytest's config: the command line, the ini file, the rootdir."""

    def __init__(self, cli: dict[str, str], root: Path, ini: dict[str, str] | None = None) -> None:
        self.cli, self.ini, self.rootpath, self.inipath = cli, ini or {}, root, None

    def getoption(self, dest: str):
        return self.cli.get(dest)

    def getini(self, dest: str):
        return self.ini.get(dest)


def test_a_profile_gives_defaults_and_any_value_given_elsewhere_wins(tmp_path, monkeypatch):
    monkeypatch.delenv("PERF_CONTEXTS", raising=False)
    monkeypatch.setenv("PERF_AGENT_QUERIES", "5")
    cli = {"perf_profile": "pr", "perf_new_tokens": "8"}
    resolved = options.resolve(Config(cli, tmp_path, {"perf_rounds": "4"}), project={"contexts": "16"})
    assert resolved["profile"] == "pr"
    assert resolved["variants"] == "default" and resolved["origins"]["variants"] == "--perf-profile pr"
    assert (resolved["new_tokens"], resolved["origins"]["new_tokens"]) == (8, "--perf-new-tokens")
    assert (resolved["agent_queries"], resolved["origins"]["agent_queries"]) == (5, "PERF_AGENT_QUERIES")
    assert (resolved["contexts"], resolved["origins"]["contexts"]) == ((16,), "contexts in [tool.perfgate]")
    assert resolved["rounds"] == 4  # not in the profile: the ini file's, as without one
    assert (resolved["max_rounds"], resolved["origins"]["max_rounds"]) == (5, "--perf-profile pr")
    assert resolved["test_budget"] is None  # neither: the session's device default
    assert options.given(resolved["origins"], "contexts") and not options.given(resolved["origins"], "variants")
    line = profiles.header("pr", resolved)
    assert line.startswith("perfgate profile pr (the pull-request gate: ")
    assert "variants=default" in line and "new-tokens=32 (--perf-new-tokens wins: 8)" in line
    assert "contexts=1024 (contexts in [tool.perfgate] wins: 16)" in line


def test_the_profile_comes_from_tool_perfgate_and_none_turns_it_off(tmp_path):
    resolved = options.resolve(Config({}, tmp_path), project={"profile": "nightly"})
    assert (resolved["contexts"], resolved["new_tokens"], resolved["agent_queries"]) == ((128, 1024, 4096), 128, 10)
    assert resolved["origins"]["profile"] == "profile in [tool.perfgate]"
    off = options.resolve(Config({"perf_profile": "none"}, tmp_path), project={"profile": "nightly"})
    assert off["profile"] is None and off["origins"]["contexts"] == "default"


def test_every_profile_value_is_a_valid_option_value():
    known = {o.name: o for o in options.OPTIONS}
    for profile in profiles.PROFILES.values():
        for name, value in profile.values.items():
            known[name].parse(value)
    # the nightly matrix: every default variant and the torchao one; the canaries, which must fail, are not in it
    nightly = [v.name for v in variants.select(profiles.PROFILES["nightly"].values["variants"], "cuda")]
    assert "hf-int8-torchao" in nightly and not {"hf-fp16-slow", "hf-fp16-gpuslow"} & set(nightly)
    assert set(nightly) > {v.name for v in variants.select("default", "cuda")}


def test_a_bad_profile_name_lists_the_profiles(tmp_path):
    with pytest.raises(ValueError) as bad:
        options.resolve(Config({"perf_profile": "weekly"}, tmp_path))
    assert str(bad.value).startswith("--perf-profile (from --perf-profile) = 'weekly': must be a profile: pr (")
    assert "; nightly (the full matrix" in str(bad.value) and str(bad.value).endswith("; or none")


def test_a_bad_profile_name_is_a_usage_error(run_perf):
    result = run_perf("--perf-profile=weekly", "--perf-variants=hf-fp32")
    assert result.ret == pytest.ExitCode.USAGE_ERROR
    result.stderr.fnmatch_lines(["*--perf-profile (from --perf-profile) = 'weekly': must be a profile: pr (*nightly*"])


TINY = (
    "--perf-contexts=16",
    "--perf-new-tokens=4",
    "--perf-rounds=2",
    "--perf-variants=hf-fp32,hf-bf16",
    "--perf-reference=none",
    "--perf-plots=false",
    "--benchmark-disable",
    "-k",
    "not fidelity",
)


def test_a_profiled_run_prints_and_records_its_profile_and_where_its_time_went(run_perf, monkeypatch):
    """One tiny run under the pr profile with the time split checked, a sleep injected into one variant's load: the
    load part holds it."""
    # as long as the zygote's imports (5-8 s on two busy cores), which the load part holds too: a much shorter sleep
    # counted in another part would pass all the same
    sleep_s = 6.0
    monkeypatch.setenv("PERFGATE_FAULTS", f"hf-bf16@load=sleep:{sleep_s}")
    result = run_perf("--perf-profile=pr", *TINY)
    result.assert_outcomes(passed=4)
    wins = "variants=default (--perf-variants wins: hf-fp32,hf-bf16), contexts=1024 (--perf-contexts wins: 16)"
    rounds = "rounds=5 (--perf-rounds wins: 2), max-rounds=5"
    result.stdout.fnmatch_lines([f"perfgate profile pr (*): {wins}, *agent-queries=3, {rounds}*"])
    run = last_run(run_perf.results)
    assert run["profile"] == {"name": "pr", "values": profiles.PROFILES["pr"].values}
    assert run["options"]["agent_queries"] == 3 and run["options"]["origins"]["agent_queries"] == "--perf-profile pr"
    assert run["options"]["contexts"] == [16] and run["options"]["new_tokens"] == 4
    split = run["time_split"]
    parts = split["parts_s"]
    assert sum(parts.values()) == pytest.approx(split["total_s"], rel=0.05)
    assert min(parts["setup"], parts["load"], parts["warmup"], parts["timed"], parts["profile"]) > 0
    result.stdout.fnmatch_lines([f"time: {split['total_s']:.0f} s, most in *"])
    # the sleep comes before the load's own timer (worker.op_load), so the load part holds both, one after the
    # other; compared with an unslowed run's part instead, a load varied by 10 s between runs on two busy cores
    load_s = {r["variant"]: r["value"] for r in run["results"] if r["metric"] == "load_s"}
    assert len(load_s) == 2 and parts["load"] >= sleep_s + sum(load_s.values()), (parts, load_s)
    # each test's seconds: the slowed load is hf-bf16's first test's (its setup starts the worker), and the tests,
    # one after another, fit in the run
    tests_s = split["tests_s"]
    assert sorted(tests_s) == sorted(
        f"test_{t}[{v}{w}]" for v in load_s for t, w in (("load", ""), ("decode", "-ctx16"))
    )
    assert tests_s["test_load[hf-bf16]"] >= sleep_s + load_s["hf-bf16"] > tests_s["test_load[hf-fp32]"] - 5
    assert sum(tests_s.values()) + parts["unload"] <= split["total_s"]  # (an unload is in no test's seconds)
    by_variant = {v: tests_s[f"test_load[{v}]"] + tests_s[f"test_decode[{v}-ctx16]"] for v in load_s}
    costliest = sorted(by_variant.items(), key=lambda kv: -kv[1])
    result.stdout.fnmatch_lines(
        ["time by variant (its tests, loads included): " + ", ".join(f"{v} {s:.0f} s" for v, s in costliest)]
    )


def test_a_baseline_is_measured_to_its_own_rounds_the_max_rounds_unless_set():
    opts = {"rounds": None, "max_rounds": None, "suspect_rounds": None, "baseline_rounds": None}
    options.complete(opts, "cuda")
    assert (opts["rounds"], opts["max_rounds"], opts["suspect_rounds"], opts["baseline_rounds"]) == (5, 20, 40, 20)
    pr = {name.replace("-", "_"): int(v) for name, v in profiles.PROFILES["pr"].values.items() if "rounds" in name}
    opts = {"rounds": None, "suspect_rounds": None, "baseline_rounds": None} | pr
    options.complete(opts, "cuda")
    assert (opts["rounds"], opts["max_rounds"], opts["suspect_rounds"], opts["baseline_rounds"]) == (5, 5, 40, 12)
    opts = {"rounds": 15, "max_rounds": 3, "suspect_rounds": None, "baseline_rounds": 12}
    options.complete(opts, "cpu")
    assert opts["max_rounds"] == opts["baseline_rounds"] == 15  # never fewer than the rounds always taken


def test_the_fidelity_reference_runs_first_so_its_logits_come_from_its_own_worker():
    from perfgate.session import first_of

    assert first_of(["hf-fp16", "hf-bf16", "hf-int8"], "hf-bf16") == ["hf-bf16", "hf-fp16", "hf-int8"]
    assert first_of(["hf-fp16", "hf-int8"], "hf-bf16") == ["hf-fp16", "hf-int8"]


def completed_on_cpu(**given) -> dict:
    """The options as options.complete leaves them on the CPU, from these given ones (the rest at their defaults)."""
    opts = {"rounds": None, "max_rounds": None, "process_pairs": None, "baseline_rounds": None} | given
    options.complete(opts, "cpu")
    return opts


def test_an_ab_run_measures_every_ratio_in_three_pairs_of_processes_by_default():
    def completed(**given):
        opts = completed_on_cpu(**given)
        return opts["process_pairs"], opts["min_process_pairs"], opts["ab_rule"]

    assert completed() == (3, 1, "fastest")  # no base: the reference's rule, the A/B option idle
    for base in ({"base_env": {"X": "1"}}, {"base_ref": "main"}, {"base": "py"}):
        assert completed(**base) == (3, 3, "fastest"), base  # --perf-ab-rule fastest: all three, always
        assert completed(**base, ab_rule="all-but-one") == (5, 1, "all-but-one"), base


def test_the_least_pairs_of_processes_raise_the_most_unless_it_was_set_lower():
    def completed(**given):
        opts = completed_on_cpu(**given)
        return opts["process_pairs"], opts["min_process_pairs"]

    assert completed() == (3, 1)
    assert completed(min_process_pairs=4) == (4, 4)  # the reference's default of 3 raised to the least
    assert completed(min_process_pairs=3, base_env={"X": "1"}, ab_rule="all-but-one") == (5, 3)
    with pytest.raises(ValueError, match=r"--perf-min-process-pairs \(from default\) = 3 is more than "):
        completed(min_process_pairs=3, process_pairs=2)
    origins = {"min_process_pairs": "PERF_MIN_PROCESS_PAIRS in .env", "process_pairs": "--perf-process-pairs"}
    said = (
        r"\(from PERF_MIN_PROCESS_PAIRS in \.env\) = 3 is more than --perf-process-pairs \(from --perf-process-pairs\)"
    )
    with pytest.raises(ValueError, match=said):  # each named with where it came from
        completed(min_process_pairs=3, process_pairs=2, origins=origins)


def test_the_fastest_rule_measures_every_ratio_in_all_its_pairs_of_eight_rounds_and_only_in_an_ab_run():
    def completed(**given):
        opts = completed_on_cpu(**given)
        return opts["process_pairs"], opts["min_process_pairs"], opts["rounds"], opts["max_rounds"]

    ab = {"base_env": {"X": "1"}}  # the rule by default
    assert completed(**ab) == (3, 3, 8, 12)  # a pair counts from 8 pairs of rounds on: none stops sooner
    assert completed(**ab, ab_rule="fastest") == (3, 3, 8, 12)
    assert completed(**ab, rounds=5, max_rounds=5) == (3, 3, 8, 8)  # max_rounds follows the raised rounds
    assert completed(**ab, process_pairs=4)[:2] == (4, 4)
    assert completed(**ab, min_process_pairs=4)[:2] == (4, 4)
    assert completed(**ab, ab_rule="all-but-one") == (5, 1, 3, 12)
    assert completed(ab_rule="fastest") == (3, 1, 3, 12)  # no base: no ratio to it, the option idle (as in .env)
    origins = {"process_pairs": "PERF_PROCESS_PAIRS in .env", "ab_rule": "default"}
    said = (
        r"--perf-process-pairs \(from PERF_PROCESS_PAIRS in \.env\) = 1: an A/B run's --perf-ab-rule \(from default\) "
    )
    with pytest.raises(ValueError, match=said + r"= fastest .*2 at least \(or --perf-ab-rule all-but-one\)"):
        completed(**ab, process_pairs=1, origins=origins)


def test_a_baseline_run_measures_its_own_rounds(monkeypatch):
    from perfgate.session import PerfSession

    perf = object.__new__(PerfSession)
    perf.opts = {"rounds": 3, "max_rounds": 3, "suspect_rounds": 40, "baseline_rounds": 12}
    perf.opts |= {"test_budget": 300.0, "warmup": 1}
    plan = perf.baseline_plan
    assert (plan.rounds, plan.max_rounds, plan.suspect_rounds) == (3, 12, 24)
    partial = SimpleNamespace(rounds=(None,) * 11)
    assert perf.baseline_settled("hf-fp16", partial) == measure.UNCLEAR  # short of 12: on, whatever its noise


def test_the_tests_run_in_the_session_s_order_the_fidelity_reference_first(run_perf):
    result = run_perf("--perf-variants=hf-bf16,hf-fp32", "--perf-contexts=16", "--co", "-q")
    first = [line for line in result.outlines if "::test_" in line][0]
    assert "hf-fp32" in first, result.outlines  # the CPU's fidelity reference, named second


def test_make_ab_s_profile_measures_each_pair_of_processes_to_the_eight_pairs_of_rounds_a_pair_needs_to_count():
    ab = {name.replace("-", "_"): int(v) for name, v in profiles.PROFILES["ab"].values.items() if "rounds" in name}

    def completed(**given):
        opts = {"rounds": None, "suspect_rounds": None, "baseline_rounds": None, "base_env": {"X": "1"}} | ab | given
        options.complete(opts, "cuda")
        return opts["rounds"], opts["max_rounds"], opts["suspect_rounds"], opts["process_pairs"]

    # --perf-ab-rule fastest, the default: every pair counts, so none may stop at a GPU's 5 rounds
    assert completed() == (8, 8, 8, 3)
    # all-but-one: a pair may stop from 5 on as a clear pass, but is capped at the 8 it needs to count against
    assert completed(ab_rule="all-but-one") == (5, 8, 8, 5)
    assert ab["max_rounds"] == gate.MIN_INTERVAL_SAMPLES_TO_FAIL  # fewer, and no pair could count against a ratio
    assert {k: v for k, v in profiles.PROFILES["ab"].values.items() if "rounds" not in k} == profiles.SHORT_WORKLOAD
