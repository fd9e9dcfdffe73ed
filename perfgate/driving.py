"""Measurements that take a worker through several calls beyond perfgate.measure's: the fidelity comparison (the
reference's logits, and on a real model its greedy first turns, saved once; then each variant's logits, perplexity
and greedy agreement against them) and the device's copy bandwidth. Each function calls a worker and returns data;
perfgate.session chooses the workers, keeps what is measured once per run, and turns a worker's failure into the
test's outcome."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from perfgate import fidelity
from perfgate.models import ModelSpec
from perfgate.runner import WorkerError, WorkerHandle

PERPLEXITY_WINDOW = 1024  # tokens, at most: the model's context where it is shorter


def fidelity_inputs_fit(vocab_size: int) -> str | None:
    """Why the committed fidelity inputs cannot be fed to a model with this vocabulary, or None."""
    if max(max(s) for s in fidelity.inputs()) >= vocab_size:
        return f"the committed fidelity inputs hold ids beyond this model's vocabulary ({vocab_size})"
    return None


def save_reference(worker: WorkerHandle, path: Path, model: ModelSpec, queries: int, timeout: float) -> list[list[int]]:
    """The fidelity reference's logits saved to `path`; returns its greedy first turns of the agent's first `queries`
    questions on a real model ([] on a synthetic one, where greedy agreement means nothing)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    worker.call("reference_logits", timeout, path=str(path))
    if model.is_synthetic:
        return []
    return worker.call("greedy_first_turns", timeout, **greedy_request(queries))


def compare(
    worker: WorkerHandle,
    reference_path: str,
    reference_greedy: list[list[int]],
    model: ModelSpec,
    queries: int,
    timeout: float,
) -> dict[str, Any]:
    """A variant's fidelity against the reference's saved logits (perfgate.fidelity.compare); on a real model also its
    perplexity and its greedy first turns' agreement with the reference's."""
    result = worker.call("fidelity", timeout, reference_path=reference_path)
    if model.is_synthetic:
        result["real_model_only"] = (
            "random weights: perplexity and greedy agreement mean something only with a real model"
        )
        return result
    window = min(PERPLEXITY_WINDOW, model.max_positions or PERPLEXITY_WINDOW)
    result.update(worker.call("perplexity", timeout, window=window))
    greedy = worker.call("greedy_first_turns", timeout, **greedy_request(queries))
    result["greedy_agreement_pct"] = fidelity.greedy_agreement(reference_greedy, greedy)
    result["greedy_questions"] = len(greedy)
    return result


def greedy_request(queries: int) -> dict[str, Any]:
    """The agent's first turns for greedy agreement: its first `queries` questions (--perf-agent-queries)."""
    from perfgate.agent import traces

    wanted = traces.questions()
    ids = list(wanted)[:queries]
    return {"questions": [wanted[i] for i in ids], "max_new_tokens": fidelity.GREEDY_TOKENS}


def copy_bandwidth(worker: WorkerHandle, timeout: float) -> dict[str, Any]:
    """The device's copy bandwidth as the worker measures it ({"gb_per_s": ...}); where the worker cannot, why not
    ({"gb_per_s": None, "why": ...}). A worker that died or hung raises."""
    try:
        return worker.call("copy_bandwidth", timeout)
    except WorkerError as exc:
        if exc.kind in ("died", "timeout"):
            raise
        return {"gb_per_s": None, "why": f"bandwidth not measured: {exc.message[:200]}"}
