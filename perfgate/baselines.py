"""Baseline files: results/baselines/<gpu-slug>.json, one per GPU model, holding for each model source and
each gated figure the value, unit, direction, spread and tolerance, plus the machine and commit they were
measured on. Written only by the suite itself (--perf-update-baselines), atomically, with sorted keys, so that
a baseline update reads as a clear diff in review.

    python -m perfgate.baselines [--variants NAME,...] [--metrics PATTERN,...] RUN_FILE [RUN_FILE ...]

writes the entries of baseline runs (made with --perf-update-baselines) into their GPU's baseline file again, in
the order given, exactly as those runs wrote them when they ended, and prints the diff: for a run whose own write
was lost (it ended by a kill before writing, or its machine's copy of the file is gone), or to combine runs of one
GPU made on several machines. --variants takes only those variants' entries from the runs and leaves the others
as the file has them: for a run in which one variant's measurement came out too noisy to gate against (its
warning says so), keep that variant's earlier entries until it is measured again. --metrics likewise takes only the
metrics matching those patterns (fnmatch, e.g. 'device_ms_per_token,*s_per_token'): new figures join a file
whose other entries stay as they were measured."""

from __future__ import annotations

import fnmatch
import sys
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from perfgate import gate
from perfgate.figures import Figure, figures_of
from perfgate.metrics import expected_unit
from perfgate.storage import read_json, write_json_atomic

SCHEMA = 1
MACHINE_FIELDS = ("gpu", "driver", "cuda", "python", "commit")


class BaselineError(ValueError):
    """The baseline file cannot be used; the message names the file and the problem."""


def path_for(results_dir: Path, gpu_slug: str) -> Path:
    return results_dir / "baselines" / f"{gpu_slug}.json"


def entry_key(variant: str, test: str, workload: str, metric: str) -> str:
    """'hf-fp16/decode[ctx1024]/decode_tok_per_s', 'hf-fp16/load/resident_vram_mib'."""
    return f"{variant}/{test}[{workload}]/{metric}" if workload else f"{variant}/{test}/{metric}"


@dataclass(frozen=True)
class Baseline:
    path: Path
    data: dict[str, Any]

    @classmethod
    def load(cls, path: Path) -> Baseline:
        """The file's baselines; an empty one when there is no file yet. BaselineError when it is unusable."""
        if not path.exists():
            return cls(path, {"schema": SCHEMA, "models": {}})
        try:
            data = read_json(path)
        except (OSError, ValueError) as exc:
            raise BaselineError(f"baseline file {path} is not valid JSON: {exc}") from None
        validate(data, path)
        return cls(path, data)

    @property
    def exists(self) -> bool:
        return self.path.exists()

    def model(self, source: str) -> dict[str, Any] | None:
        return self.data["models"].get(source)

    def entry(self, source: str, key: str) -> dict[str, Any] | None:
        model = self.model(source)
        return model["entries"].get(key) if model else None

    def updated(
        self, source: str, figures: list[Figure], machine: dict[str, Any], overrides: dict[str, float], when: str
    ) -> dict[str, Any]:
        """A new document with these figures' entries replaced (or added); every other entry is kept. Each entry
        keeps the tolerance it gets now: `overrides` (--perf-tolerance), else the variant's own, else the metric's
        default (perfgate.gate.tolerance_for)."""
        models = {k: dict(v) for k, v in self.data["models"].items()}
        model = models.setdefault(source, {"entries": {}})
        entries = dict(model.get("entries", {}))
        for f in figures:
            tolerance = gate.tolerance_for(f.metric, overrides, variant=f.variant)
            noisy = too_noisy_mark(f.value, f.params.get("interval"), f.better, tolerance)
            entries[entry_key(f.variant, f.test, f.workload, f.metric)] = {
                **({"too_noisy": noisy} if noisy else {}),
                "better": f.better,
                "commit": machine.get("commit"),
                "machine": machine,  # its own: a file's entries come from runs on several machines and GPUs
                "measured_at": when,
                "params": f.params,
                "samples": list(f.samples),
                "stats": f.to_dict()["stats"],
                "tolerance": tolerance,
                "unit": f.unit,
                "value": f.value,
            }
        models[source] = {"entries": entries, "machine": machine, "updated_at": when}
        return {"schema": SCHEMA, "gpu": machine.get("gpu"), "gpu_slug": machine.get("gpu_slug"), "models": models}

    def write(self, document: dict[str, Any]) -> None:
        validate(document, self.path)
        write_json_atomic(self.path, document)


def shown_path(path: Path) -> str:
    """The file as a user would name it: relative to the working folder where it lies below it."""
    try:
        return str(path.resolve().relative_to(Path.cwd().resolve()))
    except ValueError:
        return str(path)


def written_for_another_gpu(baseline: Baseline, gpu_slug: str) -> str | None:
    """The GPU a baseline file says it was written for, where that is not this one (a file copied to this
    machine's name); None where it matches or the file does not say."""
    theirs = baseline.data.get("gpu_slug")
    return theirs if theirs and theirs != gpu_slug else None


def problem(baseline: Baseline, gpu_slug: str, source: str) -> str | None:
    """Why this run has nothing to gate against in its baseline file, in one sentence naming the file, its GPU and
    models and this run's; None where the file holds entries of this GPU and model."""
    name, models = shown_path(baseline.path), sorted(baseline.data.get("models", {}))
    held = ", ".join(models) or "no model"
    if not baseline.exists:
        return f"{name} does not exist"
    other = written_for_another_gpu(baseline, gpu_slug)
    if other:
        return f"{name} was written for {other} / {held}, not for {gpu_slug} / {source}: not used"
    if source not in models:
        return f"{name} holds baselines for {held}, none for {source}"
    return None


def next_step(baseline: Baseline, gpu_slug: str, source: str) -> str:
    """What to do when there is no baseline for this GPU and model."""
    return f"no baseline for {gpu_slug} / {source}: run `make baseline` and commit {shown_path(baseline.path)}"


def validate(data: Any, path: Path) -> None:
    def bad(problem: str) -> BaselineError:
        return BaselineError(f"baseline file {path}: {problem}")

    if not isinstance(data, dict):
        raise bad("the top level is not an object")
    if data.get("schema") != SCHEMA:
        raise bad(f"schema is {data.get('schema')!r}, this perfgate reads schema {SCHEMA}")
    models = data.get("models")
    if not isinstance(models, dict):
        raise bad("'models' is missing or not an object")
    for source, model in models.items():
        if not isinstance(model, dict) or not isinstance(model.get("entries"), dict):
            raise bad(f"model {source!r} has no 'entries' object")
        if not isinstance(model.get("machine"), dict):
            raise bad(f"model {source!r} has no 'machine' object")
        for key, entry in model["entries"].items():
            validate_entry(key, entry, bad)


def validate_entry(key: str, entry: Any, bad) -> None:
    if not isinstance(entry, dict):
        raise bad(f"entry {key!r} is not an object")
    missing = [f for f in ("value", "unit", "better", "tolerance") if f not in entry]
    if missing:
        raise bad(f"entry {key!r} misses {', '.join(missing)}")
    value = entry["value"]
    if not isinstance(value, (int, float)) or isinstance(value, bool) or value < 0:
        raise bad(f"entry {key!r}: value {value!r} is not a non-negative number")
    if entry["better"] not in ("higher", "lower", "same"):
        raise bad(f"entry {key!r}: better is {entry['better']!r}, not 'higher', 'lower' or 'same'")
    tol = entry["tolerance"]
    if not isinstance(tol, (int, float)) or not 0 <= tol < 1:
        raise bad(f"entry {key!r}: tolerance {tol!r} is not a fraction in [0, 1)")
    noisy = entry.get("too_noisy")
    if noisy is not None and not (isinstance(noisy, dict) and isinstance(noisy.get("floor"), (int, float))):
        raise bad(f"entry {key!r}: too_noisy is not an object with a numeric floor")
    if "machine" in entry and not isinstance(entry["machine"], dict):
        raise bad(f"entry {key!r}: machine is not an object")
    metric = key.rsplit("/", 1)[-1]
    expected = expected_unit(metric)
    if expected and entry["unit"] != expected:
        raise bad(f"entry {key!r}: unit {entry['unit']!r}, but {metric} is measured in {expected!r}")


def entry_machine(model: dict[str, Any], entry: dict[str, Any] | None) -> dict[str, Any] | None:
    """The machine an entry was measured on: its own (newer entries keep it), else the file's
    (its last run's) with the entry's own commit, and no GPU UUID, which that older entry did not keep."""
    if entry and isinstance(entry.get("machine"), dict):
        return entry["machine"]
    machine = model.get("machine")
    if not entry or not machine:
        return machine
    machine = {k: v for k, v in machine.items() if k != "gpu_uuid"}
    if entry.get("commit"):
        machine["commit"] = entry["commit"]
    return machine


def machine_changes(old: dict[str, Any] | None, new: dict[str, Any]) -> list[str]:
    """What differs between the baseline's machine and this one, e.g. 'transformers 5.17.0 → 5.18.0'."""
    if not old:
        return []
    changes = []
    for name in MACHINE_FIELDS:
        if old.get(name) != new.get(name):
            changes.append(f"{name} {_short(old.get(name))} → {_short(new.get(name))}")
    if old.get("gpu_uuid") and new.get("gpu_uuid") and old["gpu_uuid"] != new["gpu_uuid"]:
        # known on both sides only: a baseline from before runs recorded it says nothing either way
        changes.append(f"GPU {old['gpu_uuid']} → {new['gpu_uuid']} (another physical GPU of the same model)")
    old_v, new_v = old.get("versions", {}), new.get("versions", {})
    for name in sorted(set(old_v) | set(new_v)):
        if old_v.get(name) != new_v.get(name):
            changes.append(f"{name} {old_v.get(name)} → {new_v.get(name)}")
    return changes


def _short(value: Any) -> str:
    text = str(value)
    return text[:12] if len(text) >= 40 and all(c in "0123456789abcdef-dirty" for c in text) else text


def diff(old: Baseline, new: dict[str, Any]) -> list[tuple[str, str, float | None, float, float | None]]:
    """(model, entry key, old value, new value, Δ %) for every entry that is new or changed."""
    rows = []
    for source, model in new["models"].items():
        for key, entry in sorted(model["entries"].items()):
            before = old.entry(source, key)
            old_value = before["value"] if before else None
            if before and old_value == entry["value"]:
                continue
            delta = 100 * (entry["value"] - old_value) / old_value if old_value else None
            rows.append((source, key, old_value, entry["value"], delta))
    return rows


def noise_reach(value: float | None, interval: list[float] | None, better: str) -> float | None:
    """How far a figure's own interval reaches on the worse side of its value, as a share of the value."""
    if not interval or not value:
        return None
    lo, hi = interval
    return (value - lo) / value if better == "higher" else (hi - value) / value


def too_noisy_mark(
    value: float | None, interval: list[float] | None, better: str, tolerance: float
) -> dict[str, Any] | None:
    """What a baseline entry keeps when its own interval reaches further than its tolerance on the worse side: the
    interval, that reach, and the floor, the smallest regression (a share of the entry's value) that a run measured
    exactly could still fail against it: the entry's own noise, then the tolerance (1 - (1 - reach)(1 - tolerance)
    where higher is better). The gate holds such an entry to its floor instead of its tolerance, judged with this
    run's rounds alone (perfgate.judging), so that the entry's noise cannot fail an unchanged variant by chance, and
    the summary names it. None for an entry within its tolerance."""
    reach = noise_reach(value, interval, better)
    if reach is None or reach <= tolerance:
        return None
    floor = 1 - (1 - reach) * (1 - tolerance) if better == "higher" else (1 + reach) * (1 + tolerance) - 1
    return {"interval": list(interval), "reach": reach, "floor": floor}


def too_noisy(new: dict[str, Any], rows: list[tuple]) -> list[tuple[str, float, float, float, float, float]]:
    """(entry key, value, its interval's low and high end, tolerance, how far the interval reaches on the worse
    side, as a share of the value) of the entries just written (`rows`, from diff) whose own interval reaches
    further on the worse side of their value than their tolerance. A ratio is judged with its baseline's noise
    (perfgate.measure.ratio_interval_against), so against such an entry a regression of the tolerance cannot be told
    from that noise: the gate is less sensitive than its tolerance says until the entry is measured with more
    rounds."""
    out = []
    for source, key, _, value, _ in rows:
        entry = new["models"][source]["entries"][key]
        interval, tolerance = entry.get("params", {}).get("interval"), entry.get("tolerance")
        reach = noise_reach(value, interval, entry.get("better"))
        if reach is not None and tolerance is not None and reach > tolerance:
            out.append((key, value, *interval, tolerance, reach))
    return out


def kept_figures(figures: Iterable[Figure], metrics: Iterable[str] = ()) -> list[Figure]:
    """The figures a baseline keeps: gated and measured, of variants judged against entries of their own (a canary
    is judged against its original's); only those whose metric matches one of `metrics` (fnmatch), where given."""
    from perfgate import variants

    patterns = tuple(metrics)
    return [
        f
        for f in figures
        if f.gated
        and f.value is not None
        and not getattr(variants.REGISTRY.get(f.variant), "baseline_of", None)
        and (not patterns or any(fnmatch.fnmatchcase(f.metric, p) for p in patterns))
    ]


def from_run(
    run_path: Path,
    results_dir: Path | None = None,
    variants: set[str] | None = None,
    metrics: tuple[str, ...] = (),
) -> tuple[Baseline, dict[str, Any], list[str]]:
    """(the baseline file of the run's GPU as it is, the document with the run's entries written in: all of them, or
    those of `variants`, the variants among them that no registry here knows, whose entries got the metrics'
    default tolerances), for a run made with --perf-update-baselines. BaselineError, naming the file, for anything
    else."""
    from perfgate.variants import REGISTRY

    try:
        run = read_json(run_path)
        machine, source, options = run["machine"], run["model"]["source"], run["options"]
        recorded = figures_of(run)
    except (OSError, ValueError, KeyError, TypeError) as exc:
        raise BaselineError(f"run file {run_path}: not a perfgate run file ({type(exc).__name__}: {exc})") from None
    if not options.get("update_baselines"):
        raise BaselineError(
            f"run file {run_path}: a gate run, not a baseline run (its rounds stopped once verdicts were clear, "
            "and a baseline is measured to --perf-baseline-rounds); measure one with `make baseline`"
        )
    fresh = kept_figures(recorded, metrics)
    if variants is not None:
        fresh = [f for f in fresh if f.variant in variants]
    if not fresh:
        which = f" of {', '.join(sorted(variants))}" if variants is not None else ""
        raise BaselineError(f"run file {run_path}: holds no measured gated figure{which}")
    results_dir = results_dir or run_path.resolve().parent.parent
    old = Baseline.load(path_for(results_dir, machine["gpu_slug"]))
    undeclared = sorted({f.variant for f in fresh} - set(REGISTRY))
    return old, old.updated(source, fresh, machine, options.get("tolerance") or {}, run["started_at"]), undeclared


def declare_project_variants(root: Path) -> None:
    """Register the variants of [tool.perfgate] in root/pyproject.toml, as a run there does, so that an entry of one
    keeps the tolerance the run would give it (a variant's own, perfgate.gate.tolerance_for). Variants of a
    pytest_perfgate_variants hook exist only inside pytest: theirs get the metric's default here."""
    from perfgate import project, variants

    for variant in project.read(root).variants:
        if variant.name not in variants.REGISTRY:
            variants.register(variant)


def main(argv: list[str]) -> int:
    from perfgate import project, table  # the diff's rendering, for this command line only

    variants = None
    metrics: tuple[str, ...] = ()
    while argv[:1] in (["--variants"], ["--metrics"]) and len(argv) > 1:
        names = tuple(v.strip() for v in argv[1].split(",") if v.strip())
        if argv[0] == "--variants":
            variants = set(names)
        else:
            metrics = names or ("",)
        argv = argv[2:]
    if not argv or argv[0].startswith("-") or variants == set() or metrics == ("",):
        print(__doc__, file=sys.stderr)
        return 2
    try:
        declare_project_variants(Path.cwd())
    except (project.ProjectError, ValueError) as exc:
        print(f"perfgate.baselines: {exc}", file=sys.stderr)
        return 2
    for name in argv:
        try:
            old, document, undeclared = from_run(Path(name), variants=variants, metrics=metrics)
            old.write(document)
        except (BaselineError, OSError) as exc:
            print(f"perfgate.baselines: {exc}", file=sys.stderr)
            return 2
        print(f"{old.path} <- {name}")
        for variant in undeclared:
            print(
                f"perfgate.baselines: {variant} is declared nowhere here (run this from the root of the repository "
                "whose [tool.perfgate] declares it): its entries got the metrics' default tolerances",
                file=sys.stderr,
            )
        rows = diff(old, document)
        print(table.render_diff(rows))
        for line in table.render_noisy(too_noisy(document, rows)):
            print(line)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
