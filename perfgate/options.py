"""The --perf-* options: one group, one prefix. Each is also settable as PERF_<NAME> in the environment (or .env),
as <name> in pyproject.toml's [tool.perfgate] (perfgate.project) and as perf_<name> in the ini file; the command
line wins, then the environment, then .env, then [tool.perfgate], then the ini file, then the default. A bad value
is a ValueError that says what is allowed (the plugin turns it into a pytest.UsageError). A profile
(--perf-profile, perfgate.profiles) stands between the ini file and the default: it gives defaults of its own, and any
value given elsewhere wins over it."""

from __future__ import annotations

import os
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from perfgate import gate


def _int(text: str) -> int:
    try:
        return int(text)
    except ValueError:
        raise ValueError("must be a whole number") from None


def at_least(low: int) -> Callable[[str], int]:
    """A whole number of at least `low`: one parser, so that every bad value of an option gets one message."""

    def parse(text: str) -> int:
        value = _int(text)
        if value < low:
            raise ValueError(f"must be a whole number of at least {low}")
        return value

    return parse


positive_int = at_least(1)
non_negative_int = at_least(0)


def _float(text: str) -> float:
    try:
        return float(text)
    except ValueError:
        raise ValueError("must be a number") from None


def positive_float(text: str) -> float:
    value = _float(text)
    if not value > 0:
        raise ValueError("must be a number above 0")
    return value


def int_list(text: str) -> tuple[int, ...]:
    values = tuple(positive_int(t) for t in text.split(",") if t.strip())
    if not values:
        raise ValueError("must list at least one whole number, comma-separated")
    return tuple(sorted(set(values)))


def fraction(text: str) -> float:
    """'15%' or '0.15' -> 0.15; allowed: 0 to 100 %."""
    text = text.strip()
    value = _float(text[:-1]) / 100 if text.endswith("%") else _float(text)
    if not 0 <= value <= 1:
        raise ValueError("must be from 0 to 100 % (write 15% or 0.15)")
    return value


def choice(*allowed: str) -> Callable[[str], str]:
    def parse(text: str) -> str:
        if text not in allowed:
            raise ValueError(f"must be one of {', '.join(allowed)}")
        return text

    return parse


AGENT_MODES = ("replay", "reuse", "live", "off")


def agent_modes(text: str) -> tuple[str, ...]:
    """'replay' (gated), plus 'reuse' and 'live' (report-only), comma-separated; 'off' for none."""
    modes = {t.strip() for t in text.split(",") if t.strip()}
    unknown = sorted(modes - set(AGENT_MODES))
    if unknown or not modes:
        raise ValueError(f"must list modes among {', '.join(AGENT_MODES)}, comma-separated")
    if "off" in modes:
        if len(modes) > 1:
            raise ValueError("'off' cannot be combined with other modes")
        return ()
    if "reuse" in modes:
        modes.add("replay")  # the kept-cache pass runs beside the gated replay
    return tuple(sorted(modes))


def text(value: str) -> str:
    return value.strip()


def boolean(value: str) -> bool:
    lowered = value.strip().lower()
    if lowered in ("1", "true", "yes", "on"):
        return True
    if lowered in ("0", "false", "no", "off", ""):
        return False
    raise ValueError("must be true or false (1/0, yes/no)")


def patterns(value: str) -> tuple[str, ...]:
    return tuple(p.strip() for p in value.split(",") if p.strip())


def env_pairs(value: str) -> dict[str, str]:
    from perfgate.ab import base_env

    return base_env(value)


def stack_canary(value: str) -> float:
    from perfgate.ab import stack_canary

    return stack_canary(value)


def tolerances(value: str) -> dict[str, float]:
    from perfgate.gate import parse_tolerances

    return parse_tolerances(value)


@dataclass(frozen=True)
class Opt:
    name: str  # "new-tokens" -> --perf-new-tokens, PERF_NEW_TOKENS, perf_new_tokens
    parse: Callable[[str], Any]
    default: str | None  # in text form, parsed like any other value; None: decided by the session, and `help` says how
    help: str
    env_aliases: tuple[str, ...] = ()  # other environment names, below PERF_<NAME> (PERFGATE_CACHE, the users' .env)
    flag_only: bool = False  # a switch on the command line (--perf-strict); true/false in env and ini

    @property
    def flag(self) -> str:
        return f"--perf-{self.name}"

    @property
    def dest(self) -> str:
        return f"perf_{self.name.replace('-', '_')}"

    @property
    def env(self) -> str:
        return f"PERF_{self.name.replace('-', '_').upper()}"


def profile_name(value: str) -> str | None:
    from perfgate.profiles import parse

    return parse(value)


OPTIONS: tuple[Opt, ...] = (
    Opt(
        "profile",
        profile_name,
        None,
        "a named set of option defaults (perfgate/profiles.py): 'pr', the pull-request gate (`make perf`'s), or "
        "'nightly', the full matrix; any option given elsewhere wins over the profile's value. Default: none, every "
        "option at its own default",
    ),
    Opt(
        "model",
        text,
        None,
        "hub id, local checkpoint folder, or synthetic:NAME (perfgate/data/models/NAME.json). "
        "Default: synthetic:qwen3-14b with a CUDA GPU, synthetic:qwen3-tiny without",
        env_aliases=("MODEL_NAME",),
    ),
    Opt("variants", text, "default", "comma list of variants, 'all', or 'default' (all that make sense here)"),
    Opt("contexts", int_list, "128,1024,4096", "prompt lengths in tokens for the decode tests"),
    Opt(
        "new-tokens",
        at_least(2),  # the first token comes from the prefill: a decode rate needs one decode step at least
        None,
        "tokens generated per round (at least 2). Default: 128 on a GPU, 32 on the CPU",
        env_aliases=("MAX_TOKENS",),
    ),
    Opt(
        "max-seq-length",
        positive_int,
        None,
        "longest prompt + output to measure, and Unsloth's max_seq_length. Default: the model's context",
        env_aliases=("MAX_SEQ_LENGTH",),
    ),
    Opt(
        "rounds",
        positive_int,
        None,
        "timed rounds per test. Default: 5 on a GPU, 3 on the CPU; at least 8 for the decode test in an A/B run "
        "under --perf-ab-rule fastest, its default",
    ),
    Opt(
        "agent",
        agent_modes,
        "replay",
        "the agent workload: 'replay' (gated per-query latency from the committed traces), 'reuse' (also a pass "
        "keeping the KV cache between turns, report-only), 'live' (the real agent loop, report-only), or 'off'",
    ),
    Opt(
        "agent-queries",
        positive_int,
        None,
        "how many of the agent's questions to run, first first. Default: 10 on a GPU, 3 on the CPU",
        env_aliases=("TEST_SET_SIZE",),
    ),
    Opt("agent-rounds", positive_int, "1", "passes over the agent's queries"),
    Opt(
        "agent-max-rounds",
        positive_int,
        "3",
        "at most this many passes over the agent's queries while a verdict is unclear (at least 3 while a per-query "
        "latency is already beyond its limit and at most 2 of its turns short of failing)",
    ),
    Opt("agent-max-reply", positive_int, "512", "most tokens per reply in the live agent loop"),
    Opt("warmup", non_negative_int, "1", "untimed rounds before the timed ones, per test"),
    Opt("device", choice("auto", "cuda", "cpu"), "auto", "where the variants run"),
    Opt(
        "results-dir",
        text,
        "results",
        "where run files, reports and baselines go (results/runs/ below it); a relative one is under pytest's rootdir",
    ),
    Opt(
        "cache",
        text,
        None,
        "folder for synthetic checkpoints. Default: PERFGATE_CACHE or ~/.cache/perfgate",
        env_aliases=("PERFGATE_CACHE",),
    ),
    Opt(
        "canary-slowdown",
        fraction,
        "15%",
        "delay added to every decode step of the canary hf-fp16-slow, as a share of a step; 0% makes the canary an "
        "exact copy of the reference (an A/A check of the gate: it must pass)",
    ),
    Opt(
        "canary-device-slowdown",
        fraction,
        "6%",
        "device work added to every decode step of the GPU canary hf-fp16-gpuslow, as a share of the step's device "
        "time (twice device_ms_per_token's default tolerance, so that it tests the rule and not luck)",
    ),
    Opt(
        "device-tokens",
        non_negative_int,
        "0",
        "tokens in the profiled round; 0: as many as the timed rounds (what the committed H200 device entries were "
        "measured with). Fewer cut the profiler's cost (it slows every kernel launch), and per-token device time and "
        "counts need few tokens; a baseline entry profiled over another number of tokens is not compared",
    ),
    Opt(
        "device-time",
        boolean,
        "true",
        "one profiled round per decode test, after its timed rounds: device time, kernels, launches and syncs per "
        "token (operators on a CPU), gated against the baseline",
    ),
    Opt("plots", boolean, "true", "write PNG plots beside the Markdown report in results/reports/ (needs matplotlib)"),
    Opt("timeout", positive_float, "1800", "seconds any one worker call (a load, a generation) may take"),
    Opt(
        "max-rounds",
        positive_int,
        None,
        "at most this many timed rounds per test while a verdict is unclear. Default: 20 on a GPU, 12 on the CPU",
    ),
    Opt(
        "baseline-rounds",
        positive_int,
        None,
        "timed rounds a baseline is measured to (its noise enters every verdict against it), up to twice that while "
        "an entry is too noisy to gate against. Default: --perf-max-rounds",
    ),
    Opt(
        "suspect-rounds",
        positive_int,
        None,
        "at most this many timed rounds per decode test while a verdict is unclear and its figure is already beyond "
        "its limit (a regression the rounds point to but do not yet prove), within --perf-test-budget; at or below "
        "--perf-max-rounds it adds none. Default: twice --perf-max-rounds",
    ),
    Opt(
        "test-budget",
        positive_float,
        None,
        "seconds of timed rounds per test (per pair of processes, where a failing ratio is measured again) after "
        "which no more are added. Default: 300 on a GPU, 60 on the CPU",
    ),
    Opt(
        "process-pairs",
        positive_int,
        None,
        "pairs of worker processes a ratio to the reference may be measured in: when it fails, the variant's and "
        "the reference's workers are restarted and it is measured again, until it has failed in two pairs (it fails, "
        "where the pairs' geometric mean is beyond the limit too), passed clearly in one (it passes) or this many "
        "were measured (it passes, unclear). In an A/B run, the ratio to the base is measured in all of them "
        "(--perf-ab-rule fastest, 2 at least); under --perf-ab-rule all-but-one, when its value is beyond the limit "
        "in the first pair, it is measured again until that holds in all but one of this many (two of two at 2; "
        "fewer than 5 make this laxer: docs/method.md), cannot any more, or a pair passes clearly. Two processes "
        "running identical code have differed by up to 50 % on the H200. 1 judges the first pair alone (without a "
        "base, or under all-but-one). Default: 3; 5 under --perf-ab-rule all-but-one",
    ),
    Opt(
        "min-process-pairs",
        positive_int,
        1,
        "pairs of worker processes every ratio to the reference (or to the base) is measured in at least, whatever its "
        "first pair says (where it has a ratio and something to hold it to); the pair rule judges them all, and "
        "measures more, up to --perf-process-pairs, where it can still fail the ratio. So a run with it is stricter "
        "than the gate (two failed pairs among the forced ones fail a ratio to the reference whose first passed): for "
        "evidence on how far apart processes running the same code are (every pair's rounds are in the run file's "
        "process_pairs), not for the gate; each pair costs both workers' loads and the rounds again. Under "
        "--perf-ab-rule fastest it is --perf-process-pairs",
    ),
    Opt(
        "ab-rule",
        choice("fastest", "all-but-one"),
        gate.AB_RULE,
        "how an A/B run decides its ratio to the base over pairs of worker processes (ignored without a base): "
        "fastest, every ratio measured in --perf-process-pairs pairs (3 by default) of at least 8 pairs of rounds "
        "each, whatever the first says, failing when the base's fastest process over the head's fastest is beyond "
        "the limit (a process's offset only ever makes it slower, so each side's fastest process is steadier than any "
        "one pair); all-but-one, cheaper and laxer, more pairs only while the first pair's value is beyond the limit, "
        "failing when all but one of up to 5 are (on the H200 it let through 4 of 9 runs of a 10 % whole-stack "
        "slowdown that fastest caught in each of its runs: docs/method.md)",
    ),
    Opt(
        "session-budget",
        positive_float,
        None,
        "seconds the whole run may take (a CI job's time limit less the longest test): no perf test starts once "
        "they are spent; the rest are skipped with the reason, and the run file, report and baseline are written "
        "as after any run. Default: no limit",
    ),
    Opt(
        "worker-layout",
        choice("fixed", "random"),
        "fixed",
        "'fixed' starts every worker with PYTHONHASHSEED=0 and, where `setarch -R` works, without address-space "
        "randomisation, so that two processes running the same code run equally fast; 'random' leaves both to "
        "chance (each process then runs a few per cent faster or slower, by luck of its memory layout)",
    ),
    Opt(
        "reference",
        text,
        "hf-fp16",
        "variant loaded beside each other one, rounds alternating, so that speed is "
        "also gated as a ratio to it; 'none' to measure variants alone",
    ),
    Opt(
        "tolerance",
        tolerances,
        "",
        "per-metric tolerances overriding the baseline's and the defaults, e.g. 'decode_tok_per_s=20%,*vram*=3%'; "
        "VARIANT/METRIC for one variant's, e.g. 'hf-bf16-static/decode_ratio_to_ref=15%'",
    ),
    Opt(
        "update-baselines",
        boolean,
        "false",
        "measure and write results/baselines/<gpu>.json instead of gating",
        flag_only=True,
    ),
    Opt(
        "baseline-metrics",
        patterns,
        "",
        "with --perf-update-baselines, write only the metrics matching these comma-separated patterns (fnmatch, "
        "e.g. 'device_ms_per_token,*s_per_token,prefill_device_ms'); every other entry keeps its value",
    ),
    Opt(
        "strict", boolean, "false", "fail figures with no baseline, and a GPU busy with other processes", flag_only=True
    ),
    # A/B in one run (perfgate.ab): any of the three makes a base, measured beside the head instead of the reference
    Opt(
        "base",
        text,
        None,
        "A/B: the Python interpreter of a base environment (a venv with other package versions); every variant "
        "runs on it and on this one, rounds alternating, and the head is gated against the base. Default: none; "
        "with only --perf-base-env or --perf-base-ref, this interpreter",
    ),
    Opt(
        "base-env",
        env_pairs,
        None,
        "A/B: KEY=VALUE,... for the base's workers only (PYTHONPATH goes after perfgate's own folder): the same "
        "interpreter with another PYTHONPATH is a base. Default: none",
    ),
    Opt(
        "base-ref",
        text,
        None,
        "A/B: a commit, branch or tag of the measured repository; its code is checked out into a temporary git "
        "worktree (under --perf-cache, removed at the end) and run by the base's interpreter. Default: none",
    ),
    Opt(
        "canary-base-slowdown",
        stack_canary,
        "off",
        "A/B's whole-stack canary: every variant's decode steps on the head side slowed by this share of a step, "
        "so that the run shows it catches a regression that hits every variant alike; 'on' is 10%",
    ),
)

DEVICE_DEFAULTS = {
    "cuda": {"new_tokens": 128, "rounds": 5, "max_rounds": 20, "test_budget": 300.0, "agent_queries": 10},
    "cpu": {"new_tokens": 32, "rounds": 3, "max_rounds": 12, "test_budget": 60.0, "agent_queries": 3},
}


def complete(opts: dict[str, Any], device: str) -> None:
    """Fill in, once the device is known, the options whose defaults depend on it (DEVICE_DEFAULTS) or on other
    options: --perf-max-rounds at least --perf-rounds, --perf-suspect-rounds twice --perf-max-rounds,
    --perf-baseline-rounds --perf-max-rounds, --perf-process-pairs 3 (at least --perf-min-process-pairs; a
    --perf-process-pairs below it is a ValueError), 5 in an A/B run under --perf-ab-rule all-but-one; under
    --perf-ab-rule fastest (an A/B run's default), every ratio measured in all of them (--perf-min-process-pairs
    raised to it), each pair to at least 8 pairs of rounds (--perf-rounds raised to it)."""
    for name, value in DEVICE_DEFAULTS[device].items():
        if opts.get(name) is None:
            opts[name] = value
    ab = any(opts.get(name) for name in ("base", "base_env", "base_ref"))
    opts["ab_rule"] = opts.get("ab_rule") or gate.AB_RULE
    fastest = ab and opts["ab_rule"] == "fastest"  # (a rule for the ratio to the base: none without a base)
    if fastest:  # a pair counts from this many pairs of rounds on (gate.PairRule.counts_all): none stops sooner
        opts["rounds"] = max(opts["rounds"], gate.MIN_INTERVAL_SAMPLES_TO_FAIL)
    if opts["max_rounds"] < opts["rounds"]:
        opts["max_rounds"] = opts["rounds"]
    if opts.get("suspect_rounds") is None:
        opts["suspect_rounds"] = 2 * opts["max_rounds"]
    least = opts.get("min_process_pairs") or 1
    if opts.get("process_pairs") is None:
        default = gate.PROCESS_PAIRS[opts["ab_rule"] if ab else "reference"]
        opts["process_pairs"] = max(default, least)
    elif fastest and opts["process_pairs"] < 2:
        raise ValueError(
            f"{_said(opts, 'process_pairs')}: an A/B run's {_said(opts, 'ab_rule')} compares each side's fastest "
            "process over pairs of processes, 2 at least (or --perf-ab-rule all-but-one)"
        )
    elif opts["process_pairs"] < least:
        raise ValueError(
            f"{_said(opts, 'min_process_pairs')} is more than {_said(opts, 'process_pairs')}: a ratio cannot be "
            "measured in at least more pairs of processes than it may be measured in"
        )
    opts["min_process_pairs"] = opts["process_pairs"] if fastest else least  # (fastest: every pair, always)
    if opts.get("baseline_rounds") is None:
        opts["baseline_rounds"] = opts["max_rounds"]
    opts["baseline_rounds"] = max(opts["baseline_rounds"], opts["rounds"])


def _said(opts: dict[str, Any], name: str) -> str:
    """An option as given, for an error: "--perf-process-pairs (from PERF_PROCESS_PAIRS in .env) = 1"."""
    flag = "--perf-" + name.replace("_", "-")
    return f"{flag} (from {opts.get('origins', {}).get(name, 'default')}) = {opts[name]}"


def help_text(opt: Opt) -> str:
    """The option's help with its environment name and its default, said once: where the session decides the
    default (opt.default None), the help itself says what it is."""
    default = "" if opt.default is None else f". Default: {opt.default!r}"
    return f"{opt.help}. Env: {opt.env}{default}".replace("%", "%%")  # argparse %-formats


def register(parser) -> None:
    group = parser.getgroup("perfgate", "perfgate: LLM inference performance gate")
    for opt in OPTIONS:
        text = help_text(opt)
        if opt.flag_only:
            group.addoption(opt.flag, dest=opt.dest, action="store_const", const="true", default=None, help=text)
        else:
            group.addoption(opt.flag, dest=opt.dest, default=None, metavar=opt.name.split("-")[-1].upper(), help=text)
        parser.addini(opt.dest, f"{opt.help} (like {opt.flag})", default=None)


def read_dotenv(path: Path) -> dict[str, str]:
    """KEY=VALUE lines of a .env file (the users keep MODEL_NAME, MAX_TOKENS ... there); # comments, quotes."""
    values: dict[str, str] = {}
    try:
        lines = path.read_text(encoding="utf-8").splitlines()
    except OSError:
        return values
    for line in lines:
        line = line.strip()
        if not line or line.startswith("#") or "=" not in line:
            continue
        key, _, value = line.removeprefix("export ").partition("=")
        values[key.strip()] = value.strip().strip("'\"")
    return values


def raw_value(
    config,
    opt: Opt,
    dotenv: dict[str, str] | None = None,
    project: dict[str, str] | None = None,
    profile: str | None = None,
) -> tuple[str | None, str]:
    """The value in text form and where it came from: the command line, then the environment (a variable set in
    the process before one in .env), then [tool.perfgate] (project: option name -> text), then the ini file, then
    the profile's value (profile: its name), then the default."""
    cli = config.getoption(opt.dest)
    if cli is not None:
        return cli, opt.flag
    for env in (opt.env, *opt.env_aliases):
        if os.environ.get(env):
            return os.environ[env], env
        if (dotenv or {}).get(env):
            return dotenv[env], f"{env} in .env"
    if opt.name in (project or {}):
        return project[opt.name], f"{opt.name} in [tool.perfgate]"
    ini = config.getini(opt.dest)
    if ini:
        where = Path(config.inipath).name if getattr(config, "inipath", None) else "the ini file"
        return ini, f"{opt.dest} in {where}"
    if profile is not None:
        from perfgate import profiles

        if opt.name in profiles.PROFILES[profile].values:
            return profiles.PROFILES[profile].values[opt.name], profiles.origin(profile)
    return opt.default, "default"


def resolve(config, project: dict[str, str] | None = None) -> dict[str, Any]:
    """Every option's parsed value (None where the session decides) and, under 'origins', where each came from;
    or ValueError naming the bad one. project: [tool.perfgate]'s settings (perfgate.project)."""
    values: dict[str, Any] = {"origins": {}}
    dotenv = read_dotenv(Path(config.rootpath) / ".env")
    profile = None
    for opt in OPTIONS:  # "profile" first: it gives the others' defaults
        raw, origin = raw_value(config, opt, dotenv, project, profile)
        values["origins"][opt.name.replace("-", "_")] = origin
        if raw is None:
            values[opt.name.replace("-", "_")] = None
            continue
        try:
            values[opt.name.replace("-", "_")] = opt.parse(str(raw))
        except ValueError as exc:
            raise ValueError(f"{opt.flag} (from {origin}) = {raw!r}: {exc}") from None
        if opt.name == "profile":
            profile = values["profile"]
    return values


def given(origins: dict[str, str], name: str) -> bool:
    """Whether an option's value was asked for (anywhere but its default or the profile's)."""
    from perfgate.profiles import PROFILES, origin

    return origins.get(name, "default") not in ("default", *(origin(p) for p in PROFILES))
