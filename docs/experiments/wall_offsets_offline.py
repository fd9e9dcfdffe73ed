"""How far apart two worker processes running the same code are in wall time, with their rounds alternating
(offline, from recorded H200 step logs; not a GPU run).

Run from anywhere: `.venv/bin/python docs/experiments/wall_offsets_offline.py` (numpy; under a minute).

The A/B agent ratio (head over base, summed turn latencies) is measured in one pair of processes with the two sides'
turns alternating. No interleaved agent replay has run on a GPU yet; the nearest recorded thing is a decode test's
timed rounds, which alternate the two workers round by round as the turns now do. For every real A/A pair of
processes that has a step log, this prints the wall-time ratio the agent's estimator would see, sum of the variant's
(head's) decode steps over the reference's (base's), over all its timed rounds and over its first 8:

- the pairs of the offline notes' A/A pool (the reference gate's A/A canary runs of 2026-11-29/30; estimators_offline
  matches their step logs in steps/), through pair_rules_real.note_runs;
- the eleventh start's A/A A/B run (runs-h200-8/, six variants, pinned workers): each decode_ratio_to_base's step log
  rows, split into its pairs of processes by the rounds each pair recorded (params.process_pairs[].step_p10_s).

Decode steps only (no prefill), 32 tokens a round: a stand-in for the agent's turns, which are short decodes after a
prefill.
"""

from __future__ import annotations

import gzip
import json
import sys
from pathlib import Path

import numpy as np

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))
import pair_rules_real as P  # noqa: E402  (the notes' pools of real pairs)

ELEVENTH = HERE / "runs-h200-8"


def note_pairs() -> list[tuple[str, int, float, float]]:
    c10, aa = P.note_runs()
    out = []
    for run in aa:
        for pair in run.pairs:
            if pair.has_steps:
                own, ref = pair.own.steps, pair.ref.steps
                out.append((run.stamp, pair.n, own.sum() / ref.sum(), own[:8].sum() / ref[:8].sum()))
    return out


def eleventh_pairs() -> list[tuple[str, int, float, float]]:
    out = []
    for run_path in sorted(ELEVENTH.glob("*_nvidia-h200.json.gz")):
        run = json.load(gzip.open(run_path, "rt"))
        stamp = run_path.name[:16]
        step_path = next(p for p in ELEVENTH.glob("*.steps.jsonl.gz") if abs(_minutes(p.name) - _minutes(stamp)) < 2)
        rows = [json.loads(line) for line in gzip.open(step_path, "rt")]
        for result in run["results"]:
            if result["metric"] != "decode_ratio_to_base":
                continue
            variant = result["variant"]
            mine = [r for r in rows if r["variant"] == variant]
            pairs = result["params"].get("process_pairs") or [result["params"]]
            start = 0
            for pair in pairs:
                n = len(pair["step_p10_s"])
                chunk = mine[start : start + n]
                start += n
                head = np.array([sum(r["steps_s"]) for r in chunk])
                base = np.array([sum(r["reference_steps_s"]) for r in chunk])
                out.append((f"{stamp} {variant}", n, head.sum() / base.sum(), head[:8].sum() / base[:8].sum()))
            assert start == len(mine), (stamp, variant, start, len(mine))
    return out


def _minutes(name: str) -> int:
    """Minutes of the day of a file stamped 20261202T012406Z (a step log starts a few seconds before its run file)."""
    return int(name[9:11]) * 60 + int(name[11:13])


def main() -> None:
    for title, pairs in (("notes' A/A pool (2026-11-29/30)", note_pairs()), ("eleventh start", eleventh_pairs())):
        print(f"\n## {title}: {len(pairs)} pairs of processes with step logs\n")
        print("| pair | rounds | own/ref, all rounds | first 8 |")
        print("| --- | --- | --- | --- |")
        for label, n, whole, first in pairs:
            print(f"| {label} | {n} | {whole:.3f} | {first:.3f} |")
        values = np.array([p[2] for p in pairs])
        worst = max(values.max(), 1 / values.min())
        print(f"\nrange {values.min():.3f}-{values.max():.3f}; the larger way round: {worst:.3f}")


if __name__ == "__main__":
    main()
