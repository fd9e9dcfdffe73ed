"""A/B in one run: each variant measured on the head (this interpreter, this tree) and on a base (another
interpreter, the same one with other environment variables, or the measured repository at another commit),
rounds alternating as the reference's do (perfgate.measure.decode), and the head judged against the base.

Why: the committed baseline and the ratio to hf-fp16 both miss a change that slows every variant alike (an
upgrade of torch or transformers on a launch-bound decode moves hf-fp16 as much as the rest), and absolute tok/s
differs by up to 2x between machine starts of one H200. Both sides measured in the same minutes on the same
machine cancel the machine, as asv's `continuous` does for commits.

This module resolves and checks the base before anything loads (one line per bad input), removes the base's
temporary git worktree at the end, and says what differs between the sides. Judging is perfgate.judging's (AbJudge).
"""

from __future__ import annotations

import atexit
import fnmatch
import json
import os
import shutil
import subprocess
import sys
import tempfile
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from perfgate import gate, machine, paths, profiling

SUFFIX = "@base"  # a base worker's key beside its variant's name: "hf-fp16@base"
RATIO = "decode_ratio_to_base"  # head over base: below 1, the head decodes slower
TTFT_RATIO = "ttft_ratio_to_base"  # head over base: above 1, the head's first token comes later
AGENT_RATIO = "agent_query_ratio_to_base"  # head over base, the queries' summed latency: above 1, slower
RATIOS = (RATIO, TTFT_RATIO, AGENT_RATIO)  # judged against 1 exactly: both sides were measured in this run
# What an A/B run gates, head against base (fnmatch patterns). Counts per token (kernels, launches, syncs,
# operators) are reported, not gated: an upgrade may change kernels for the better. The other figures are
# kept in the run file with no verdict, and the committed baseline is not read.
GATED = (*RATIOS, "*vram*", "device_ms_per_token", "prefill_device_ms", "nonfinite_logits")
COUNTS = ("kernels_per_token", "launches_per_token", "syncs_per_token", "ops_per_token")
# A kernel's change of time between the sides is reported from this share of the base's device time per token: two
# sides running identical stacks on the H200 differed by up to 0.065 ms a kernel of 11.25 ms a token (0.58 %: one
# GEMM ran at one of two speeds per process), where a change worth naming, one compiled kernel between two machine
# starts, was 0.27 ms of 9.4 (2.9 %)
KERNEL_TIME_FLOOR = 0.01
PROBE_TIMEOUT_S = 300  # a cold import of torch and transformers on a loaded machine takes tens of seconds

# Run in the base interpreter with the base's environment: does it import torch and perfgate's worker, and what
# does it see? One JSON line on stdout; everything else to stderr.
PROBE = """
import json, sys
from importlib import metadata
out = {"python": sys.executable, "python_version": sys.version.split()[0]}
try:
    import torch
except BaseException as exc:
    print(json.dumps({**out, "failed": "import torch", "error": f"{type(exc).__name__}: {exc}"}))
    raise SystemExit(0)
out["cuda"] = torch.cuda.is_available()
out["gpu"] = torch.cuda.get_device_name(0) if out["cuda"] else "cpu"
try:
    import perfgate.worker
except BaseException as exc:
    print(json.dumps({**out, "failed": "import perfgate.worker", "error": f"{type(exc).__name__}: {exc}"}))
    raise SystemExit(0)
out["perfgate"] = perfgate.worker.__file__
versions = {}
for name in sys.argv[1:]:
    try:
        versions[name] = metadata.version(name)
    except metadata.PackageNotFoundError:
        versions[name] = None
out["versions"] = versions
print(json.dumps(out))
"""


def base_env(text: str) -> dict[str, str]:
    """--perf-base-env: 'PYTHONPATH=/opt/altsite,HF_HOME=/x' -> {'PYTHONPATH': '/opt/altsite', 'HF_HOME': '/x'}."""
    out: dict[str, str] = {}
    for part in text.split(","):
        if not part.strip():
            continue
        key, sep, value = part.partition("=")
        if not sep or not key.strip() or not key.strip().replace("_", "").isalnum():
            raise ValueError(f"{part.strip()!r}: write KEY=VALUE pairs, comma-separated (PYTHONPATH=/opt/altsite)")
        out[key.strip()] = value.strip()
    return out


def stack_canary(text: str) -> float:
    """--perf-canary-base-slowdown: 'off' (0), 'on' (10 %), or a share of a step ('10%', '0.1')."""
    from perfgate.options import fraction

    lowered = text.strip().lower()
    if lowered == "off":
        return 0.0
    if lowered == "on":
        return 0.10
    try:
        return fraction(text)
    except ValueError as exc:
        raise ValueError(f"write off, on (10%) or a share of a step ({exc})") from None


@dataclass
class Base:
    """The base side: which interpreter, what environment, which code; and what it said of itself."""

    python: str
    env: dict[str, str]
    ref: str | None  # the git ref asked for, where the base is another commit
    commit: str  # the base code's commit (the head's where the base is another environment only)
    code_root: Path  # put first on the base workers' PYTHONPATH: perfgate and the measured code come from here
    measured_root: Path  # the measured repository's folder for the base (the worktree, or the head's own)
    probe: dict[str, Any] = field(default_factory=dict)
    worktree: Path | None = None  # a temporary worktree of ref, removed by close()
    repository: Path | None = None

    def worker_env(self) -> dict[str, str]:
        """The base's own variables for its workers, PYTHONPATH aside (perfgate.runner puts it after code_root); at
        another commit, that commit as the one its workers report (PERFGATE_COMMIT, set in CI, is the head's)."""
        env = {k: v for k, v in self.env.items() if k != "PYTHONPATH"}
        if self.ref:
            env["PERFGATE_COMMIT"] = self.commit
        return env

    @property
    def pythonpath(self) -> str | None:
        return self.env.get("PYTHONPATH")

    def describe(self) -> dict[str, Any]:
        """The base's section of the run file: its interpreter, environment, code and versions."""
        return {
            "python": self.python,
            "env": dict(self.env),
            "ref": self.ref,
            "commit": self.commit,
            "code_root": str(self.code_root),
            "python_version": self.probe.get("python_version"),
            "gpu": self.probe.get("gpu"),
            "versions": dict(self.probe.get("versions") or {}),
        }

    def close(self) -> None:
        """Remove the temporary worktree (the user's working tree is never touched). Idempotent."""
        if self.worktree is None or self.repository is None:
            return
        tree, self.worktree = self.worktree, None
        _git(self.repository, "worktree", "remove", "--force", str(tree))
        shutil.rmtree(tree.parent, ignore_errors=True)  # the mkdtemp folder that held it
        _git(self.repository, "worktree", "prune")


def is_gated(metric: str) -> bool:
    return any(fnmatch.fnmatchcase(metric, p) for p in GATED)


def wanted(opts: dict[str, Any]) -> bool:
    return any(opts.get(k) for k in ("base", "base_env", "base_ref"))


def prepare(opts: dict[str, Any], root: Path, device: str, cache: Path) -> Base | None:
    """The base asked for by --perf-base, --perf-base-env and --perf-base-ref, checked (its interpreter runs and
    imports torch and perfgate's worker, it sees the head's kind of device), or None where none was asked for.
    ValueError, one line naming the path or ref and what failed, before any model loads."""
    if not wanted(opts):
        return None
    if opts.get("update_baselines"):  # the head is measured beside the base, not the reference: nothing to keep
        raise ValueError(
            "--perf-update-baselines with a base (--perf-base, --perf-base-env, --perf-base-ref): an A/B run gates "
            "the head against the base and writes no baseline; run `make baseline` alone"
        )
    python = opts.get("base") or sys.executable
    origin = opts.get("origins", {}).get("base", "--perf-base")
    what = f"--perf-base (from {origin}) = {python!r}" if opts.get("base") else f"the base interpreter {python!r}"
    resolved = shutil.which(python) if os.sep not in python else python
    if not resolved or not Path(resolved).exists():
        raise ValueError(f"{what}: no such interpreter")
    if not os.access(resolved, os.X_OK) or Path(resolved).is_dir():
        raise ValueError(f"{what}: not an executable file")
    if opts.get("base_ref"):
        what = f"--perf-base-ref {opts['base_ref']!r} (run by {python})"
    env = dict(opts.get("base_env") or {})
    base = Base(str(resolved), env, None, machine.git_commit(root), paths.REPO_ROOT, root)
    ref = opts.get("base_ref")
    if ref:
        base.ref = ref
        base.commit, base.worktree = checkout(ref, root, cache)
        base.repository = root
        atexit.register(base.close)  # a run that dies before its end still leaves no worktree behind
        base.measured_root = base.worktree
        if (base.worktree / "perfgate" / "worker.py").exists():  # perfgate's own repository: its code at ref
            base.code_root = base.worktree
    try:
        base.probe = probe(base, what)
        check_device(device, head_gpu(device), base.probe, what)
    except ValueError:
        base.close()
        raise
    return base


def checkout(ref: str, root: Path, cache: Path) -> tuple[str, Path]:
    """(the commit, a temporary detached worktree of it) under the cache folder; ValueError naming what failed."""
    what = f"--perf-base-ref {ref!r}"
    top = _git(root, "rev-parse", "--show-toplevel")
    if top is None:
        raise ValueError(f"{what}: {root} is not in a git repository")
    sha = _git(root, "rev-parse", "--verify", "-q", f"{ref}^{{commit}}")
    if not sha:
        raise ValueError(f"{what}: no such commit in the repository at {top}")
    try:
        holder = cache / "base-worktrees"
        holder.mkdir(parents=True, exist_ok=True)
        folder = Path(tempfile.mkdtemp(prefix=f"{sha[:12]}-", dir=holder))
    except OSError as exc:
        raise ValueError(f"{what}: could not make a temporary folder for its worktree under {cache}: {exc}") from None
    tree = folder / "tree"
    proc = subprocess.run(
        ["git", "worktree", "add", "--detach", str(tree), sha], cwd=root, capture_output=True, text=True, timeout=300
    )
    if proc.returncode != 0:
        shutil.rmtree(folder, ignore_errors=True)
        why = (proc.stderr.strip().splitlines() or [f"exit code {proc.returncode}"])[-1]
        raise ValueError(f"{what}: could not make a temporary worktree at {tree}: {why}")
    return sha, tree


def child_env(base: Base) -> dict[str, str]:
    """The environment a base process starts with: ours, the base's variables over it, and PYTHONPATH with the
    base's code first, then the base's own PYTHONPATH, then the inherited one."""
    env = dict(os.environ)
    env.update(base.worker_env())
    env["PYTHONPATH"] = os.pathsep.join(
        p for p in (str(base.code_root), base.pythonpath, os.environ.get("PYTHONPATH")) if p
    )
    return env


def probe(base: Base, what: str) -> dict[str, Any]:
    """What the base interpreter says of itself (perfgate.ab.PROBE); ValueError where it cannot run the worker."""
    try:
        proc = subprocess.run(
            [base.python, "-c", PROBE, *machine.PACKAGES],
            env=child_env(base),
            cwd=base.measured_root,
            capture_output=True,
            text=True,
            timeout=PROBE_TIMEOUT_S,
        )
    except (OSError, subprocess.SubprocessError) as exc:
        raise ValueError(f"{what}: could not be run: {exc}") from None
    lines = proc.stdout.strip().splitlines()
    try:
        said = json.loads(lines[-1])
    except (IndexError, ValueError):
        why = (proc.stderr.strip().splitlines() or [f"exit code {proc.returncode}"])[-1]
        raise ValueError(f"{what}: is not a Python that runs perfgate's probe: {why}") from None
    if said.get("failed"):
        raise ValueError(f"{what}: cannot {said['failed']}: {said['error']}".replace("\n", " "))
    return said


def head_gpu(device: str) -> str:
    if device != "cuda":
        return "cpu"
    import torch

    return torch.cuda.get_device_name(0)


def check_device(device: str, gpu: str, said: dict[str, Any], what: str) -> None:
    """The base must measure on what the head measures on: its torch must see the GPU where the head's does,
    and the same kind of GPU (a ratio across two kinds of GPU says nothing about the code)."""
    if device == "cuda" and not said.get("cuda"):
        raise ValueError(
            f"{what}: its torch {said.get('versions', {}).get('torch')} cannot see a CUDA device "
            f"(the head's sees {gpu})"
        )
    if device == "cuda" and said.get("gpu") != gpu:
        raise ValueError(f"{what}: base and head on different GPU kinds ({said.get('gpu')} against {gpu}): refused")


def differences(head: dict[str, Any], base: dict[str, Any]) -> list[str]:
    """'transformers 4.57.6 → 5.17.0' (base → head) for each package version, the commit and the Python that
    differ between the sides' own reports (the worker op `versions`, or the probe)."""
    out = []
    for name in sorted(set(head.get("versions") or {}) | set(base.get("versions") or {})):
        a, b = (base.get("versions") or {}).get(name), (head.get("versions") or {}).get(name)
        if a != b:
            out.append(f"{name} {a or 'not installed'} → {b or 'not installed'}")
    for key in ("commit", "python_version"):
        if head.get(key) and base.get(key) and head[key] != base[key]:
            out.append(f"{key.replace('_', ' ')} {base[key]} → {head[key]}")
    return out


def kernel_changes(head_profile: dict[str, Any] | None, base_profile: dict[str, Any] | None) -> list[str]:
    """The kernels (operators on a CPU) added, removed, run more or less often, or slower, head against base
    (perfgate.profiling.diff_tables); reported, never failed. Empty where either side was not profiled."""
    if not head_profile or not base_profile or "kernels" not in head_profile or "kernels" not in base_profile:
        return []
    lines = profiling.diff_tables(head_profile["kernels"], base_profile["kernels"], floor=KERNEL_TIME_FLOOR)
    for metric in COUNTS:
        a, b = base_profile.get(metric), head_profile.get(metric)
        if a is not None and b is not None and abs(a - b) > 1e-9:
            lines.insert(0, f"{metric} {a:.4g} → {b:.4g}")
    return lines


def _git(repository: Path, *args: str) -> str | None:
    """git's output, stripped; None where it failed."""
    try:
        proc = subprocess.run(["git", *args], cwd=repository, capture_output=True, text=True, timeout=120)
    except (OSError, subprocess.SubprocessError):
        return None
    return proc.stdout.strip() if proc.returncode == 0 else None


def failure_message(judged: Any, differs: list[str], kernels: list[str], busy: Sequence[str] = ()) -> str:
    """A figure that failed against the base (judged: perfgate.judging.Judged): head, base, limit and interval;
    for a ratio measured in several pairs of worker processes, each pair's value and the rule that failed it;
    then what differs between the sides, the kernels that differ (reported, never failed), and the other
    processes that were on the GPU as the run started (busy), whose work lands on either side unevenly."""
    f, v = judged.figure, judged.verdict
    where = " ".join(p for p in (f.variant, f.workload) if p)
    against = "1 (the base)" if f.metric in RATIOS else f"the base's {v.baseline:.4g} {f.unit}"
    fastest = gate.fastest_said(f.params)
    # (each side's fastest process has no interval of its own: what is shown spans the pairs' own intervals)
    interval = "spanning the pairs' 98 % intervals" if fastest else "98 % interval"
    lines = [
        f"{where} {f.metric}: head {v.value:.4g} {f.unit} against {against}, beyond the limit {v.limit:.4g} "
        f"(tolerance {100 * v.tolerance:.0f} %)"
        + (f"; {interval} {v.ci[0]:.4g}-{v.ci[1]:.4g}" if v.ci else "")
        + f" [{v.test}]"
    ]
    pairs = f.params.get("process_pairs") or ()
    if len(pairs) > 1:
        why = f"; it fails at {v.rule}" if v.rule else ""
        how = "" if fastest else ", restarted while undecided"
        lines.append(
            f"measured in {len(pairs)} pairs of worker processes{how}: {gate.pair_values(pairs)}"
            + (f"; {fastest}" if fastest else "")
            + why
        )
    lines.append("differs, base → head: " + ("; ".join(differs) if differs else "nothing the workers report"))
    if kernels:
        lines.append("kernels that differ (reported, not gated): " + "; ".join(kernels))
    if busy:
        lines.append(
            f"the GPU was not idle at the start ({'; '.join(busy)}): their work slows whichever side runs beside it, "
            "device time included; measure on an idle GPU (--perf-strict refuses a busy one)"
        )
    return "\n".join(lines)


def summary_lines(run: dict[str, Any]) -> list[str]:
    """The terminal summary's A/B lines: what the base is, what differs, the base's failures, kernel changes."""
    section = run.get("ab")
    if not section:
        return []
    base = section["base"]
    what = base["python"] + (f" at {base['ref']} ({base['commit'][:12]})" if base.get("ref") else "")
    if base.get("env"):
        what += " with " + ",".join(f"{k}={v}" for k, v in base["env"].items())
    lines = [f"A/B: head against base {what}"]
    lines.append("differs, base → head: " + ("; ".join(section["differs"]) or "nothing the workers report"))
    if section.get("stack_canary_slowdown"):
        lines.append(
            f"whole-stack canary: the head's decode steps slowed by {100 * section['stack_canary_slowdown']:.0f} %"
        )
    for name, why in section.get("base_failed", {}).items():
        lines.append(f"base side of {name} failed: {why.splitlines()[0]}")
    for test, changes in section.get("kernel_changes", {}).items():
        if changes:
            lines.append(f"{test}: kernels that differ (reported): " + "; ".join(changes[:6]))
    return lines
