"""The worker: one process per variant, driven by the pytest process over JSON lines on stdin/stdout.

Why a process of its own: importing Unsloth patches transformers' classes for the whole process, so a
transformers variant measured after it would run Unsloth's code; and a finished variant's memory (weights,
allocator caches, compiled graphs, bitsandbytes buffers) is only surely back on the device once its process
has ended. It also lets the parent watch this process's GPU memory through NVML by pid.

Protocol: one JSON object per line each way. Requests {"op": ..., ...}; replies {"ok": true, "result": ...}
or {"ok": false, "error": {"type", "kind", "message", "traceback"}}. Anything libraries print goes to stderr
(the parent keeps it in a log), never into the protocol stream.
"""

from __future__ import annotations

import contextlib
import gc
import json
import os
import sys
import time
import traceback
from typing import Any

from perfgate import affinity, backends, fidelity, generation, profiling, workloads
from perfgate.agent import live, tools
from perfgate.variants import REGISTRY, Variant


def error_kind(exc: BaseException) -> str:
    text = f"{type(exc).__name__}: {exc}"
    if "OutOfMemory" in type(exc).__name__ or "out of memory" in text.lower():
        return "oom"
    if isinstance(exc, ImportError):
        return "import"
    if isinstance(exc, generation.ShortGeneration):
        return "short_generation"
    return "error"


class InjectedFault(RuntimeError):
    pass


def injected_fault(variant: str, op: str) -> str | None:
    """PERFGATE_FAULTS="hf-nf4@load=oom,hf-fp32@generate=hang": faults that perfgate's own tests inject to show
    what a user sees when a variant runs out of memory, hangs, crashes or fails to import (raise_fault, at load,
    generate, or agent: the agent's replay alone), or computes wrong or stops early (MODEL_DAMAGE, at load);
    `memory:FRACTION` at load caps the worker's share of the GPU's memory, so that a real allocation fails
    (cap_memory); "sleep:SECONDS" makes the call that much slower (the run's time split must show it)."""
    for rule in os.environ.get("PERFGATE_FAULTS", "").split(","):
        where, _, fault = rule.strip().partition("=")
        if where == f"{variant}@{op}":
            return fault
    return None


def raise_fault(fault: str) -> None:
    """The faults that stop a call: an exception, a hang or a crash; or slow it ("sleep:2.5": 2.5 s more)."""
    if fault.startswith("sleep:"):
        time.sleep(float(fault.removeprefix("sleep:")))
        return
    if fault == "oom":
        raise RuntimeError("CUDA out of memory. Tried to allocate 2.00 GiB (injected by PERFGATE_FAULTS)")
    if fault == "import":
        raise ModuleNotFoundError("No module named 'bitsandbytes' (injected by PERFGATE_FAULTS)", name="bitsandbytes")
    if fault == "hang":
        time.sleep(3600)
    if fault == "crash":
        os._exit(3)
    raise InjectedFault(f"unknown injected fault {fault!r}")


def corrupt_one_matrix(model) -> None:
    """A broken kernel's worth of damage: one attention weight matrix scrambled."""
    import torch

    weight = model.model.layers[0].self_attn.q_proj.weight
    with torch.no_grad():
        weight.copy_(weight[torch.randperm(weight.shape[0], generator=torch.Generator().manual_seed(0))] * 8)


def poison_one_weight(model) -> None:
    """An overflow's worth: one weight infinite, so NaN spreads through the logits."""
    import torch

    with torch.no_grad():
        model.model.layers[0].mlp.down_proj.weight[0, 0] = float("inf")


def stop_early(model) -> None:
    """A model that stops early: its generate is asked for 3 tokens fewer than the caller wanted."""
    original = model.generate

    def stops_early(*args, **kwargs):
        kwargs["max_new_tokens"] = kwargs["min_new_tokens"] = kwargs["max_new_tokens"] - 3
        return original(*args, **kwargs)

    model.generate = stops_early


def cap_memory(fraction: float, device: str) -> None:
    """A real out-of-memory, not a simulated one ("hf-bf16@load=memory:0.05"): this process may allocate only
    `fraction` of the GPU's memory, so that loading a model that fits the device fails in the allocator itself."""
    if device == "cuda":
        import torch

        torch.cuda.set_per_process_memory_fraction(fraction)


# Faults that damage the loaded model instead of stopping the call, applied once, right after loading.
MODEL_DAMAGE = {"corrupt": corrupt_one_matrix, "nan": poison_one_weight, "short": stop_early}


class Worker:
    def __init__(self) -> None:
        self.model = None
        self.tokenizer = None
        self.variant: Variant | None = None
        self.backend: backends.Backend | None = None
        self.device = "cpu"
        self.delay_s = 0.0
        self.device_work = None  # the GPU canary's work added to every decode step (op_set_device_delay)
        self._prompts: dict[int, Any] = {}

    def op_load(self, variant: dict[str, Any] | str, path: str, device: str, max_seq_length: int) -> dict[str, Any]:
        """variant: its spec (Variant.spec), as the session sends it; a built-in variant's name also does."""
        self.variant = REGISTRY[variant] if isinstance(variant, str) else Variant.from_spec(variant)
        fault = injected_fault(self.variant.name, "load")
        if fault and fault.startswith("memory:"):
            cap_memory(float(fault.removeprefix("memory:")), device)
            fault = None
        if fault and fault not in MODEL_DAMAGE:
            raise_fault(fault)
        self.backend = backends.get(self.variant.backend)
        self.device = device
        sync = generation.device_sync(device)
        start = time.perf_counter()
        with load_cores():
            self.model, self.tokenizer = backends.load(self.variant, path, device, max_seq_length)
        if fault in MODEL_DAMAGE:
            MODEL_DAMAGE[fault](self.model)
        sync()
        load_s = time.perf_counter() - start
        return {"load_s": load_s, "model": self.backend.describe(self.model), **self.op_memory()}

    def _input_ids(self, prompt_tokens: int):
        if prompt_tokens not in self._prompts:
            import torch

            ids = workloads.prompt_ids(self.tokenizer, prompt_tokens)
            self._prompts[prompt_tokens] = torch.tensor([ids], dtype=torch.long, device=self.model.device)
        return self._prompts[prompt_tokens]

    def op_generate(self, prompt_tokens: int, new_tokens: int, keep_steps: bool = False) -> dict[str, Any]:
        fault = injected_fault(self.variant.name, "generate")
        if fault:
            raise_fault(fault)
        rnd = self.backend.generate_round(
            self.model,
            self._input_ids(prompt_tokens),
            new_tokens,
            self._pad(),
            self.device,
            keep_steps=keep_steps,
            clock=self._clock(),
        )
        return rnd.to_dict()

    def _clock(self, wall: bool = False) -> generation.StepClock:
        return generation.StepClock(generation.device_sync(self.device), self.delay_s, self.device_work, wall)

    def op_profile(self, prompt_tokens: int, new_tokens: int, tokens: int | None = None) -> dict[str, Any]:
        """One generation of the timed rounds' shape under the profiler (perfgate.profiling), stopped after
        `tokens` tokens (all where None): device time, kernel, launch and sync counts per decode token, and the
        kernel table; or {"unavailable": why}."""
        clock = self._clock(wall=True)
        clock.stop_after = tokens
        input_ids = self._input_ids(prompt_tokens)

        def generate() -> list[int]:
            self.backend.generate_round(self.model, input_ids, new_tokens, self._pad(), self.device, clock=clock)
            return clock.wall_ns

        return profiling.profile_generation(generate, self.device)

    def op_set_device_delay(self, ms: float) -> dict[str, Any]:
        """The GPU canary: `ms` of device work (a spinning kernel; a CPU op on a CPU) added to every decode step."""
        self.device_work = profiling.spin_work(self.device, float(ms)) if ms > 0 else None
        return {"ms": float(ms)}

    def op_agent_replay(self, turns: list[list[int]], reuse: bool = False) -> list[dict[str, Any]]:
        """One query of the agent trace: per turn [prompt_tokens, reply_tokens, shared_prefix_tokens], generate
        exactly the reply over the whole prompt (the users' agent: no prefix reuse). With reuse, the KV cache of
        the previous turn is kept, cut back to the prefix this turn shares with it, so only the rest is prefilled
        (what prefix caching would save; report-only)."""
        fault = injected_fault(self.variant.name, "agent") or injected_fault(self.variant.name, "generate")
        if fault:
            raise_fault(fault)
        cache = self.backend.new_cache(self.model) if reuse else None
        out = []
        for prompt_tokens, reply_tokens, shared in turns:
            if cache is not None:
                generation.crop_cache(cache, shared)
            rnd = self.backend.generate_round(
                self.model,
                self._input_ids(prompt_tokens),
                reply_tokens,
                self._pad(),
                self.device,
                cache=cache,
                clock=self._clock(),
            )
            out.append(rnd.to_dict())
        return out

    def op_agent_live(self, question: dict[str, Any], mailbox_path: str, max_reply_tokens: int) -> dict[str, Any]:
        """The real agent loop on one question (report-only): the model's own replies, parsed and run."""
        import torch

        end = live.end_token_ids(self.tokenizer)

        def reply(messages):
            ids = live.prompt_ids(self.tokenizer, messages)
            input_ids = torch.tensor([ids], dtype=torch.long, device=self.model.device)
            new, timing = generation.generate_reply(self.model, input_ids, max_reply_tokens, end, self.device)
            return self.tokenizer.decode(new, skip_special_tokens=True), timing

        box = tools.Mailbox(mailbox_path)
        try:
            outcome = live.run(question, reply, box)
        finally:
            box.close()
        return {
            "question_id": outcome.question_id,
            "turns": outcome.turns,
            "answer": outcome.answer,
            "sources": outcome.sources,
            "stopped": outcome.stopped,
            "errors": outcome.errors[:20],
            "timings": outcome.timings,
            "correct": live.answer_matches(outcome.answer, question["answer"]),
        }

    def _pad(self) -> int | None:
        return self.tokenizer.pad_token_id if self.tokenizer.pad_token_id is not None else self.tokenizer.eos_token_id

    def op_reference_logits(self, path: str) -> dict[str, Any]:
        return fidelity.save_reference(self.model, path)

    def op_fidelity(self, reference_path: str) -> dict[str, Any]:
        return fidelity.compare(self.model, reference_path)

    def op_perplexity(self, window: int) -> dict[str, Any]:
        return fidelity.perplexity(self.model, self.tokenizer, window)

    def op_greedy_first_turns(self, questions: list[dict[str, Any]], max_new_tokens: int) -> list[list[int]]:
        return fidelity.greedy_first_turns(self.model, self.tokenizer, questions, max_new_tokens)

    def op_copy_bandwidth(self, mib: int = 1024, repeats: int = 10) -> dict[str, Any]:
        """The device's memory bandwidth as a device-to-device copy of `mib` MiB sees it (read + write), in GB/s:
        the ceiling of a batch-1 decoder, which reads every weight once per token."""
        if self.device != "cuda":
            return {"gb_per_s": None, "why": "no CUDA device"}
        import torch

        src = torch.empty(mib * 2**20, dtype=torch.uint8, device="cuda")
        dst = torch.empty_like(src)
        dst.copy_(src)  # warm-up
        start, end = torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)
        start.record()
        for _ in range(repeats):
            dst.copy_(src)
        end.record()
        torch.cuda.synchronize()
        seconds = start.elapsed_time(end) / 1000
        del src, dst
        torch.cuda.empty_cache()
        return {"gb_per_s": 2 * mib * 2**20 * repeats / seconds / 1e9, "mib": mib, "repeats": repeats}

    def op_set_step_delay(self, delay_s: float) -> dict[str, Any]:
        self.delay_s = float(delay_s)
        return {"delay_s": self.delay_s}

    def op_reset_memory(self) -> dict[str, Any]:
        """Give cached blocks back so that the next figures belong to the next test alone."""
        gc.collect()
        if self.device == "cuda":
            import torch

            torch.cuda.empty_cache()
            torch.cuda.reset_peak_memory_stats()
        return self.op_memory()

    def op_memory(self) -> dict[str, Any]:
        if self.device != "cuda":
            return {"torch_allocated_mib": None, "torch_max_allocated_mib": None, "torch_reserved_mib": None}
        import torch

        mib = 2**20
        return {
            "torch_allocated_mib": torch.cuda.memory_allocated() / mib,
            "torch_max_allocated_mib": torch.cuda.max_memory_allocated() / mib,
            "torch_reserved_mib": torch.cuda.memory_reserved() / mib,
        }

    def op_versions(self) -> dict[str, Any]:
        """This process's package versions, perfgate's commit and Python (an A/B run's sides differ in these)."""
        from perfgate import machine

        return machine.own_versions()

    def op_ping(self) -> dict[str, Any]:
        return {"pid": os.getpid()}

    def op_pin(self, core: int) -> dict[str, Any]:
        """Move this process, every thread of it, to one core (the session swaps the reference's and the variant's
        cores between rounds, so that a core slower than the other weighs on both alike)."""
        problems = affinity.pin_process({int(core)})
        return {"core": int(core), "problems": problems}


def serve(requests, replies) -> None:
    worker = Worker()
    for line in requests:
        if not line.strip():
            continue
        request = json.loads(line)
        op = request.pop("op")
        if op == "shutdown":
            _send(replies, {"ok": True, "result": None})
            return
        try:
            result = getattr(worker, f"op_{op}")(**request)
            reply = {"ok": True, "result": result}
        except Exception as exc:  # every failure goes back to the parent, which decides what it means
            reply = {
                "ok": False,
                "error": {
                    "type": type(exc).__name__,
                    "kind": error_kind(exc),
                    "message": str(exc)[:4000],
                    "traceback": traceback.format_exc()[-8000:],
                },
            }
        _send(replies, reply)


def _send(stream, reply: dict[str, Any]) -> None:
    stream.write(json.dumps(reply, allow_nan=True) + "\n")
    stream.flush()


def pin_to_core() -> None:
    """PERFGATE_CPU_CORE=N (set by the session on a GPU machine): run this process on core N only."""
    core = os.environ.get("PERFGATE_CPU_CORE")
    if core and hasattr(os, "sched_setaffinity"):
        try:
            problems = affinity.pin_process({int(core)})
        except ValueError as exc:
            problems = [str(exc)]
        for problem in problems:
            print(f"perfgate worker: cannot pin to core {core}: {problem}", file=sys.stderr)


def load_cores() -> contextlib.AbstractContextManager:
    """PERFGATE_LOAD_CORES=N,M,... (set by the session beside PERFGATE_CPU_CORE where no other worker is timed while
    this one loads): the load runs on those cores, the worker's own included, and returns to its core after."""
    cores, home = os.environ.get("PERFGATE_LOAD_CORES"), os.environ.get("PERFGATE_CPU_CORE")
    if not cores or not home or not hasattr(os, "sched_setaffinity"):
        return contextlib.nullcontext()
    return affinity.spread_while_loading(affinity.parse_cpu_list(cores), int(home))


def main() -> int:
    pin_to_core()
    # Keep the protocol stream for ourselves; whatever the libraries print goes to stderr.
    protocol = os.fdopen(os.dup(sys.stdout.fileno()), "w", encoding="utf-8")
    os.dup2(sys.stderr.fileno(), sys.stdout.fileno())
    serve(sys.stdin, protocol)
    return 0


if __name__ == "__main__":
    sys.exit(main())
