"""Timed generation at batch 1, inside the worker process.

Why the numbers look the way they do: the first token needs a pass over the whole prompt (prefill), which is
compute-bound and grows with the prompt; every later token is one pass over all the weights for one position
(decode), which is bound by memory bandwidth and, for a batch of one in eager PyTorch, by Python and kernel
launch overhead. So time to first token (TTFT) and decode tokens/s are kept apart.

How: `generate` calls its stopping criteria once after every new token. StepClock is such a criterion that
synchronises the device and takes a timestamp, so one generation yields TTFT (start to first stamp) and every
decode step (gaps between stamps). `generate` already waits for each token before deciding whether to stop,
so the synchronisation costs almost nothing; the clock measures its own cost and reports it as a share.
"""

from __future__ import annotations

import time
from dataclasses import asdict, dataclass, fields
from typing import Any

from perfgate.stats import median, percentile

# Greedy decoding, with the sampling settings a checkpoint's generation_config may carry switched off explicitly
# (else transformers warns that they are ignored).
GREEDY = {"do_sample": False, "temperature": None, "top_p": None, "top_k": None}


class ShortGeneration(RuntimeError):
    """generate returned fewer (or more) tokens than asked: a tokens/s from that count would be wrong."""


@dataclass(frozen=True)
class Round:
    ttft_s: float
    decode_s: float
    new_tokens: int
    decode_tok_per_s: float
    step_median_s: float
    wall_s: float
    clock_overhead_s: float  # time spent inside the clock, not waiting for the device
    step_p10_s: float = 0.0  # the fast end of the round's steps: what a step costs when nothing interferes
    steps_s: tuple[float, ...] = ()  # every decode step, kept only when PERFGATE_STEP_LOG asks for them
    prefill_tokens: int = 0  # the prompt tokens this round prefilled: all of them, or with a kept cache the rest

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> Round:
        """A worker's round, with only the fields this version knows: an A/B run's base side may run another commit's
        worker, which sends more (a newer one) or fewer (an older one; those keep their defaults)."""
        return cls(**{k: v for k, v in data.items() if k in _ROUND_FIELDS})


_ROUND_FIELDS = frozenset(f.name for f in fields(Round))


class StepClock:
    """A stopping criterion that never stops: it stamps each token. With delay_s > 0 (the host canary), it waits
    that long before stamping every decode step, as if each step had become that much slower; with device_work
    (the GPU canary), it adds that work to every decode step before synchronising. With wall=True it also keeps
    each stamp in Unix ns (`wall_ns`), the profiler's clock (perfgate.profiling). With stop_after, it ends the
    generation after that many tokens (the profiled round: generate keeps the timed rounds' max_new_tokens, so
    a static cache keeps its shape and compiled graphs, and stops early)."""

    def __init__(
        self, sync, delay_s: float = 0.0, device_work=None, wall: bool = False, stop_after: int | None = None
    ) -> None:
        self.sync = sync
        self.stop_after = stop_after
        self.delay_s = delay_s
        self.device_work = device_work
        self.wall = wall
        self.stamps: list[float] = []
        self.wall_ns: list[int] = []
        self.overhead_s = 0.0
        self._never: Any = None

    def __call__(self, input_ids, scores, **kwargs):
        import torch

        if self.device_work is not None and self.stamps:
            self.device_work()
        entered = time.perf_counter()
        self.sync()
        synced = time.perf_counter()
        if self.wall:
            self.wall_ns.append(time.time_ns())
            if self.sync is _no_sync:  # on a CPU, the stamp in the profiler's own timeline (perfgate.profiling)
                with torch.profiler.record_function("perfgate.stamp"):
                    pass
        if self.delay_s and self.stamps:
            until = synced + self.delay_s
            while time.perf_counter() < until:  # busy wait: sleep() overshoots by up to a scheduler tick
                pass
        stamp = time.perf_counter()
        self.stamps.append(stamp)
        if self._never is None or self._never.shape[0] != input_ids.shape[0]:
            self._never = torch.zeros(input_ids.shape[0], dtype=torch.bool, device=input_ids.device)
        self.overhead_s += (synced - entered if self.sync is _no_sync else 0.0) + time.perf_counter() - stamp
        if self.stop_after is not None and len(self.stamps) >= self.stop_after:
            return ~self._never
        return self._never


def _no_sync() -> None:
    pass


def device_sync(device: str):
    if device == "cuda":
        import torch

        return torch.cuda.synchronize
    return _no_sync


def cache_argument(model) -> str:
    """generate's name for a cache passed in: `cache` from transformers 5.2x, `past_key_values` before."""
    import inspect

    return "cache" if "cache" in inspect.signature(model.forward).parameters else "past_key_values"


def crop_cache(cache, keep_tokens: int) -> None:
    """Cut a cache back to its first keep_tokens positions (a negative crop removes from the end in every
    transformers 5 release; a positive one means 'keep' in some and is refused in others)."""
    remove = cache.get_seq_length() - keep_tokens
    if remove > 0:
        cache.crop(-remove)


def _timed_generate(model, input_ids, clock: StepClock, **kwargs):
    """Greedy `generate` over input_ids with the step clock stamping every token: (output ids, start, wall s)."""
    from transformers import StoppingCriteriaList

    clock.sync()
    start = time.perf_counter()
    out = model.generate(
        input_ids=input_ids,
        attention_mask=input_ids.new_ones(input_ids.shape),
        **GREEDY,
        **kwargs,
        stopping_criteria=StoppingCriteriaList([clock]),
    )
    clock.sync()
    return out, start, time.perf_counter() - start


def generate_round(
    model,
    input_ids,
    new_tokens: int,
    pad_token_id: int | None,
    device: str,
    delay_s: float = 0.0,
    cache=None,
    keep_steps: bool = False,
    clock: StepClock | None = None,
) -> Round:
    """One greedy generation of exactly `new_tokens` tokens; prints nothing, returns its timings. With `cache` (a
    transformers Cache holding a prefix of input_ids), only the uncached rest of the prompt is prefilled, and the
    cache is extended in place. A `clock` of the caller's replaces the default one (delay_s is then its own)."""
    clock = clock or StepClock(device_sync(device), delay_s)
    extra = {} if cache is None else {cache_argument(model): cache}
    cached = 0 if cache is None else cache.get_seq_length()
    out, start, wall = _timed_generate(
        model,
        input_ids,
        clock,
        **extra,
        max_new_tokens=new_tokens,
        min_new_tokens=new_tokens,  # EOS is suppressed until then: the output length is fixed
        pad_token_id=pad_token_id,
    )
    produced = out.shape[-1] - input_ids.shape[-1]
    if clock.stop_after is not None:
        new_tokens = min(new_tokens, clock.stop_after)
    if produced != new_tokens:
        raise ShortGeneration(f"asked for {new_tokens} new tokens, generate returned {produced}")
    if len(clock.stamps) != new_tokens:
        raise ShortGeneration(
            f"the step clock saw {len(clock.stamps)} of {new_tokens} tokens: this generate does not call its "
            "stopping criteria once per token, so per-token timing is impossible"
        )
    gaps = [b - a for a, b in zip(clock.stamps, clock.stamps[1:], strict=False)]
    decode_s = clock.stamps[-1] - clock.stamps[0]
    return Round(
        ttft_s=clock.stamps[0] - start,
        decode_s=decode_s,
        new_tokens=produced,
        decode_tok_per_s=(len(gaps) / decode_s) if decode_s > 0 else float("inf"),
        step_median_s=median(gaps) if gaps else 0.0,
        wall_s=wall,
        clock_overhead_s=clock.overhead_s,
        step_p10_s=percentile(gaps, 10) if gaps else 0.0,
        prefill_tokens=input_ids.shape[-1] - cached,
        steps_s=tuple(gaps) if keep_steps else (),
    )


def generate_reply(model, input_ids, max_new_tokens: int, eos_token_ids: list[int], device: str):
    """Greedy generation until an end token or max_new_tokens, as a real agent runs it: (new token ids, timing)."""
    clock = StepClock(device_sync(device))
    out, start, wall = _timed_generate(
        model,
        input_ids,
        clock,
        max_new_tokens=max_new_tokens,
        eos_token_id=eos_token_ids,
        pad_token_id=eos_token_ids[0],
    )
    new = out[0, input_ids.shape[-1] :].tolist()
    ttft = clock.stamps[0] - start if clock.stamps else wall
    return new, {"wall_s": wall, "ttft_s": ttft, "new_tokens": len(new), "prompt_tokens": int(input_ids.shape[-1])}
