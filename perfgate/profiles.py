"""Run profiles: named sets of option defaults, chosen with --perf-profile NAME (PERF_PROFILE, `profile` in
[tool.perfgate], perf_profile in the ini file; `make perf PROFILE=nightly`). An option given anywhere (the command line,
the environment, .env, [tool.perfgate], the ini file) wins over the profile; the profile wins over the option's built-in
default (perfgate.options.resolve). Values are in the options' text form, as on the command line.

What a profile leaves out keeps its built-in default. The pull-request profile cuts the rounds an unchanged variant
takes, not those a regression needs: the decode step is gated by its device time and counts, steady to 0.2 % within a
machine start, so the wall-time figures beside them (tok/s, TTFT, the ratio to the reference, the agent's per-query
latency) stop after their first rounds while unclear, and only a figure whose value is beyond its limit is measured
further, as far as on the GPU's defaults (40 pairs of rounds; the agent 3 passes, while within two turns of failing);
one whose value comes back within the limit stops there. The nightly profile keeps the built-in round limits (at least
5, at most 20 pairs of rounds per decode test on a GPU, up to 40 while a figure is beyond its limit); the ab profile,
for `make ab`, caps a pair of processes at 8, since its ratio is decided over pairs of processes, and the agent at one
pass a side while unclear, as pr does. A baseline is measured to --perf-baseline-rounds (docs/method.md, "Baselines").
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any


@dataclass(frozen=True)
class Profile:
    name: str
    meaning: str  # one line, printed with the profile at the start of a run
    values: dict[str, str] = field(default_factory=dict)  # option name ("new-tokens") -> value as on the command line


SHORT_WORKLOAD = {
    # the seven default GPU variants (on a CPU, the CPU's defaults); the canaries run in runs of their own
    "variants": "default",
    # the workload of every H200 pass behind the gate's measured sensitivity and false-failure rate, and of the
    # committed baseline's entries (docs/method.md): ctx1024 alone, 32 new tokens (the GPU's default is 128), 3 agent
    # questions
    "contexts": "1024",
    "new-tokens": "32",
    # 3 questions hold 10 turns; the agent's per-turn sign test needs 7 to be able to fail
    "agent-queries": "3",
}

PROFILES: dict[str, Profile] = {
    p.name: p
    for p in (
        Profile(
            "pr",
            "the pull-request gate: every default variant, one context, a short workload",
            {
                **SHORT_WORKLOAD,
                # an unclear wall-time verdict passes after 5 pairs of rounds and one pass over the agent's queries;
                # one beyond its limit is measured as far as on the GPU's default limits, to 40 pairs of rounds (the
                # 10 % whole-stack canary's second pair needed 26 once) or, within 2 turns of failing, 3 passes of the
                # agent (gate.MAX_ITEMS_SHORT). Replayed on the recorded H200 rounds, judging first after 5 kept every
                # catch of the 15 % and 10 % canaries that the GPU's limits made, for 5.6-6.4 pairs of rounds an
                # unchanged ratio instead of 6.7-10.1; after 3, it lost 3 of 39 15 % pairs (docs/method.md, "More
                # rounds where they can decide", and the estimate it links)
                "rounds": "5",
                "max-rounds": "5",
                "suspect-rounds": "40",
                "agent-max-rounds": "1",
                # a baseline's noise enters every verdict against it: it is measured longer than a gate run
                "baseline-rounds": "12",
            },
        ),
        Profile(
            "ab",
            "make ab: the pull-request workload, up to 8 pairs of rounds a pair of processes",
            {
                **SHORT_WORKLOAD,
                # An A/B run's ratio to the base, the only figure that sees a slowdown of the whole stack, is decided
                # over pairs of processes (gate.pair_rule: each side's fastest process over three by default, every
                # pair measured to exactly 8, as options.complete raises the rounds to it), not by one pair's
                # interval: more pairs, not more rounds, are what it needs. The offline estimates of the
                # all-but-one rule, which decides by the pairs' values, rest on pairs of 8 pairs of rounds (37
                # of 46) to 40; cut to each pair's first 12 or 20 they stayed within 0.001, and cut to 8 the catch
                # rates held while the false failures on the real A/A pairs rose from 0.0057 to 0.0081 a run
                # (docs/method.md, "A failing ratio is measured again in fresh processes"). 8 is also the fewest a
                # pair needs to count (gate.MIN_INTERVAL_SAMPLES_TO_FAIL). That rule confirms a regression in four or
                # five pairs: at 8 rounds each, 406-441 s for one variant on the H200 in four pairs with the first pair
                # alone profiled, 568 s in five with every pair profiled (about 79 s a pair besides its rounds then,
                # 4.1 s a pair of rounds), where pairs of 20-40 rounds took it over ten minutes.
                "max-rounds": "8",
                "suspect-rounds": "8",
                # as in pr: an unclear agent ratio passes after one pass on each side; one beyond its limit gets up to
                # 3 passes a side (measure.AGENT_SUSPECT_ROUNDS). A pass of the three questions took 6.6 s
                # (hf-bf16-static) to 60-71 s (hf-int8) a side on the H200
                "agent-max-rounds": "1",
                # a baseline measured in this profile (no base) as long as the pr profile's
                "baseline-rounds": "12",
            },
        ),
        Profile(
            "nightly",
            "the full matrix: three contexts, 128 new tokens, 10 agent questions, and the opt-in variant",
            {
                # the defaults and the torchao int8 variant; the canaries, which must fail, run in a job of their own
                # (a strict nightly gate would be red every night with them)
                "variants": "default,hf-int8-torchao",
                "contexts": "128,1024,4096",
                "new-tokens": "128",
                "agent-queries": "10",
            },
        ),
    )
}

NONE = "none"  # no profile: every option at its built-in default


def names() -> tuple[str, ...]:
    """What --perf-profile accepts."""
    return (*PROFILES, NONE)


def parse(text: str) -> str | None:
    """A profile's name (None for 'none'), or ValueError listing the profiles."""
    name = text.strip()
    if name not in names():
        listed = "; ".join(f"{p.name} ({p.meaning})" for p in PROFILES.values())
        raise ValueError(f"must be a profile: {listed}; or {NONE}")
    return None if name == NONE else name


def origin(name: str) -> str:
    """Where an option's value came from when the profile gave it (the run file's options.origins)."""
    return f"--perf-profile {name}"


def header(name: str, opts: dict[str, Any]) -> str:
    """The line printed at the start of a run: the profile, what it means, and its values, each option given
    elsewhere named as the one that wins ('contexts=1024 (--perf-contexts wins: 16)')."""
    profile = PROFILES[name]
    shown = []
    for option, value in profile.values.items():
        where = opts.get("origins", {}).get(option.replace("-", "_"), origin(name))
        if where == origin(name):
            shown.append(f"{option}={value}")
        else:
            given = opts.get(option.replace("-", "_"))
            given = ",".join(map(str, given)) if isinstance(given, (tuple, list)) else given
            shown.append(f"{option}={value} ({where} wins: {given})")
    return f"perfgate profile {name} ({profile.meaning}): {', '.join(shown)}"


def record(name: str | None) -> dict[str, Any] | None:
    """The run file's "profile": its name and values (None: no profile)."""
    if name is None:
        return None
    return {"name": name, "values": dict(PROFILES[name].values)}
