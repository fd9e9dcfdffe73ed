"""Backends: what a worker process does with a model, whatever library runs it. A backend is one module that
provides the functions of `Backend`; a Variant names its backend, and adding a backend is adding its module here
(or naming a module of one's own, "mypkg.backend"). Runs only inside a worker process (perfgate.worker)."""

from __future__ import annotations

import importlib
import sys
from typing import Any, Protocol

from perfgate.variants import Variant


class Backend(Protocol):
    """The functions of a backend module."""

    def load(self, variant: Variant, path: str, device: str, max_seq_length: int) -> tuple[Any, Any]:
        """(model, tokenizer), ready for generation, through the library's ordinary entry point."""

    def describe(self, model: Any) -> dict[str, Any]:
        """What was really loaded, for the run file: class, parameter dtypes, footprint, quantization, device."""

    def generate_round(
        self,
        model: Any,
        input_ids: Any,
        new_tokens: int,
        pad_token_id: int | None,
        device: str,
        delay_s: float = 0.0,
        cache: Any = None,
        keep_steps: bool = False,
        clock: Any = None,
    ) -> Any:
        """One timed greedy generation of exactly new_tokens tokens (perfgate.generation.Round). With a cache
        holding a prefix of input_ids (an agent turn replayed with its KV cache kept), only the rest is prefilled.
        A `clock` (perfgate.generation.StepClock) of the caller's stamps the tokens: the canaries' delay and device
        work, and the profiler's host-time stamps, ride on it."""

    def new_cache(self, model: Any) -> Any:
        """An empty KV cache that generate_round extends in place (the agent's kept-cache replay)."""

    def logits(self, model: Any, input_ids: Any) -> Any:
        """Teacher-forced next-token logits for fidelity: [sequence, vocabulary], fp32, on the CPU."""


def get(name: str) -> Backend:
    """The backend module: a name of perfgate.backends ("transformers") or a dotted module of one's own."""
    return importlib.import_module(name if "." in name else f"{__name__}.{name}")


def load(variant: Variant, path: str, device: str, max_seq_length: int) -> tuple[Any, Any]:
    """The variant's own loader where it names one ("mypkg.loading:load", imported here, in the worker), else its
    backend's."""
    if not variant.loader:
        return get(variant.backend).load(variant, path, device, max_seq_length)
    return user_loader(variant)(path, device, max_seq_length)


def user_loader(variant: Variant):
    for folder in reversed(variant.import_path):  # the measured repository first: its package, not a namesake
        if folder not in sys.path:
            sys.path.insert(0, folder)
    module, _, attribute = variant.loader.partition(":")
    target: Any = importlib.import_module(module)
    for part in attribute.split("."):
        target = getattr(target, part)
    return target
