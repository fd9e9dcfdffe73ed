"""Where a run's time went: one clock per perf session, and `with phases.track("load"): ...` at the few places where
the work happens. Every second from the session's start is charged to exactly one part: the innermost phase running
(a load inside a decode test's restart counts as load, not twice), or `other` while none is. So the parts sum to
the total by construction, and `other` says how much the tracked phases leave unexplained.

The run file keeps the split as `time_split` (seconds), beside it each test's seconds (`tests_s`, from
perfgate.progress); the terminal summary names the total and the three largest parts. Under pytest-xdist each
pytest worker keeps its own (perfgate.parallel.merge sums them)."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager, nullcontext
from typing import Any

OTHER = "other"

# name -> what it covers, in the order the run file lists them
PARTS: dict[str, str] = {
    "setup": "the session's start: the device, the machine, the baseline file",
    "checkpoint": "building the synthetic checkpoint (once per cache)",
    "load": "starting a variant's worker and loading the model (the reference's too, and again for a second pair of "
    "processes)",
    "unload": "stopping workers, so that their memory is back on the device",
    "warmup": "untimed rounds before a decode test's timed ones, and the canaries' calibration",
    "timed": "a decode test's timed rounds and their bookkeeping (judging after each round whether to add one, "
    "memory reads, the device's bandwidth once)",
    "profile": "the profiled decode round after the timed ones",
    "agent": "the agent's replay (its warm-up and passes) and the live loop",
    "fidelity": "comparing logits with the reference's (the reference's own logits included)",
    "gate": "judging figures against the baseline, writing the run file and, after a baseline run, the baseline",
    OTHER: "none of the above: pytest's own work between tests, collection, terminal output",
}


class Clock:
    """Seconds per part since the clock started; `now` is a monotonic clock in seconds (a fake one in tests)."""

    def __init__(self, now: Callable[[], float] = time.perf_counter) -> None:
        self._now = now
        self.started = now()
        self._mark = self.started  # the last time charged to a part
        self._stack: list[str] = []  # the phases running, innermost last
        self.parts_s: dict[str, float] = dict.fromkeys(PARTS, 0.0)
        # an A/B run loads its two sides at once, one from a thread of its own (perfgate.session): each second is
        # still charged once
        self._lock = threading.Lock()

    def _charge(self, part: str | None = None) -> None:
        """The time since the last charge to `part`, by default the innermost phase running (else `other`); the
        caller holds the lock."""
        t = self._now()
        self.parts_s[part or (self._stack[-1] if self._stack else OTHER)] += t - self._mark
        self._mark = t

    @contextmanager
    def track(self, name: str) -> Iterator[None]:
        if name not in PARTS:
            raise ValueError(f"unknown phase {name!r}; known: {', '.join(PARTS)}")
        with self._lock:
            self._charge()
            self._stack.append(name)
        try:
            yield
        finally:
            with self._lock:
                self._charge()
                # the last of its name, not the top: two threads' phases may end in either order
                del self._stack[len(self._stack) - 1 - self._stack[::-1].index(name)]

    def lap(self, name: str) -> None:
        """Charge the time since the last charge to `name` (for work that began before the clock could be told,
        such as the session's own start)."""
        if name not in PARTS:
            raise ValueError(f"unknown phase {name!r}; known: {', '.join(PARTS)}")
        with self._lock:
            self._charge(name)

    def seconds_in(self, part: str) -> float:
        """The seconds charged to `part` so far, its phase running now included."""
        with self._lock:
            self._charge()
            return self.parts_s[part]

    def split(self) -> dict[str, Any]:
        """{"total_s": seconds since the start, "parts_s": {part: seconds}}: the run file's `time_split`."""
        with self._lock:
            self._charge()
            return {
                "total_s": round(self._mark - self.started, 3),
                "parts_s": {k: round(v, 3) for k, v in self.parts_s.items()},
            }


_active: Clock | None = None


def start(now: Callable[[], float] = time.perf_counter) -> Clock:
    """A new clock, which `track` charges from now on (one perf session per process)."""
    global _active
    _active = Clock(now)
    return _active


def track(name: str):
    """`with phases.track("load"): ...`: the block's seconds go to that part of the running session's clock (none
    running, as in a unit test of a measurement: nothing is kept)."""
    return _active.track(name) if _active is not None else nullcontext()


def merge(splits: dict[str, dict[str, Any]]) -> dict[str, Any]:
    """The split of a run spread over pytest-xdist workers: each worker's part summed over the workers (seconds of
    all GPUs together), and each worker's own split under `workers` ({"gw0": split, ...})."""
    parts = dict.fromkeys(PARTS, 0.0)
    for split in splits.values():
        for k, v in split["parts_s"].items():
            parts[k] = parts.get(k, 0.0) + v
    return {
        "total_s": round(sum(s["total_s"] for s in splits.values()), 3),
        "parts_s": {k: round(v, 3) for k, v in parts.items()},
        # each test ran on one worker
        "tests_s": {t: v for _, split in sorted(splits.items()) for t, v in split.get("tests_s", {}).items()},
        "workers": dict(sorted(splits.items())),
    }


def largest(split: dict[str, Any], n: int = 3) -> list[tuple[str, float]]:
    """The n largest parts, largest first: (name, seconds)."""
    return sorted(split["parts_s"].items(), key=lambda kv: -kv[1])[:n]


def summary_line(split: dict[str, Any]) -> str:
    """'time: 212 s, most in timed 120 s (57 %), load 40 s (19 %), warmup 20 s (9 %)' for the terminal."""
    total = split["total_s"]
    where = ", ".join(
        f"{k} {v:.0f} s ({100 * v / total:.0f} %)" if total else f"{k} {v:.0f} s" for k, v in largest(split)
    )
    if "workers" in split:
        wall = f" ({split['wall_s']:.0f} s of wall time)" if split.get("wall_s") is not None else ""
        return f"time: {total:.0f} s summed over {len(split['workers'])} workers{wall}, most in {where}"
    return f"time: {total:.0f} s, most in {where}"
