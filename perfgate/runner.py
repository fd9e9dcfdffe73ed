"""The pytest side of a worker process (perfgate.worker): start it, call it with a time limit, stop it."""

from __future__ import annotations

import functools
import json
import os
import platform
import queue
import shutil
import subprocess
import sys
import threading
from pathlib import Path
from typing import Any

from perfgate import paths
from perfgate.zygote import ForkedProcess, Zygote


class WorkerError(RuntimeError):
    """A worker call failed. `kind` is 'oom', 'import', 'short_generation', 'timeout', 'died' or 'error'."""

    def __init__(self, kind: str, message: str, log_tail: str = "", exit_code: int | None = None) -> None:
        super().__init__(message)
        self.kind = kind
        self.message = message
        self.log_tail = log_tail
        self.exit_code = exit_code  # a worker that died: its exit code where known (-N: killed by signal N)

    def __str__(self) -> str:
        return f"{self.message}\n--- worker log (last lines) ---\n{self.log_tail}" if self.log_tail else self.message


FIXED_HASH_SEED = "0"


@functools.cache
def no_aslr_prefix() -> tuple[tuple[str, ...], str | None]:
    """The command prefix that starts a process without address-space randomisation (`setarch <arch> -R`), and
    None; or () and why it cannot be had here (not Linux, no setarch, or a sandbox that forbids personality())."""
    if not sys.platform.startswith("linux"):
        return (), f"address-space randomisation stays on: {sys.platform} has no setarch"
    setarch = shutil.which("setarch")
    if not setarch:
        return (), "address-space randomisation stays on: no setarch on PATH (util-linux)"
    prefix = (setarch, platform.machine(), "-R")
    try:
        probe = subprocess.run([*prefix, "true"], capture_output=True, text=True, timeout=30)
    except (OSError, subprocess.SubprocessError) as exc:
        return (), f"address-space randomisation stays on: {' '.join(prefix)} failed: {exc}"
    if probe.returncode != 0:
        why = probe.stderr.strip() or f"exit code {probe.returncode}"
        return (), f"address-space randomisation stays on: {' '.join(prefix)} failed: {why}"
    return prefix, None


def fixed_layout() -> tuple[tuple[str, ...], dict[str, str], str]:
    """--perf-worker-layout fixed: (command prefix, environment, what was fixed). On the CPU the fast-state ratio
    of two identical workers (the 0 % canary against hf-fp16) came out 0.922-1.139 in six runs with random layouts
    and 0.970-1.006 in six with fixed ones (docs/method.md, on --perf-worker-layout): where a process's memory and
    hash tables fall can move a launch-bound decoder by several per cent (on the H200 one such pair of processes
    differed by 9 %)."""
    prefix, why = no_aslr_prefix()
    env = {"PYTHONHASHSEED": os.environ.get("PYTHONHASHSEED", FIXED_HASH_SEED)}
    what = f"PYTHONHASHSEED={env['PYTHONHASHSEED']}, " + (why or "no address-space randomisation")
    return prefix, env, what


def process_env(env: dict[str, str] | None = None, code_root: Path | None = None, pythonpath: str | None = None):
    """A worker's whole environment: ours, with `env` over it, and perfgate (code_root's, else this one) first on
    the Python path."""
    child_env = dict(os.environ)
    child_env.update(env or {})
    child_env["PYTHONPATH"] = os.pathsep.join(
        p for p in (str(code_root or paths.REPO_ROOT), pythonpath, os.environ.get("PYTHONPATH", "")) if p
    )
    child_env.setdefault("PYTHONUNBUFFERED", "1")
    return child_env


def start_zygote(prefix: tuple[str, ...], env: dict[str, str], log_path: Path, preload: tuple[str, ...] = ()):
    """The zygote that workers started with `prefix` and `env` over ours (perfgate's own) can be forked from."""
    return Zygote(prefix, process_env(env), log_path, preload)


class WorkerHandle:
    """One worker process. Calls are synchronous; the reply of each must arrive within its timeout."""

    def __init__(
        self,
        name: str,
        log_path: Path,
        env: dict[str, str] | None = None,
        prefix: tuple[str, ...] = (),
        python: str | None = None,
        code_root: Path | None = None,
        pythonpath: str | None = None,
        cwd: Path | None = None,
        zygote: Zygote | None = None,
    ) -> None:
        """python, code_root, pythonpath, cwd: an A/B run's base side (perfgate.ab): another interpreter, perfgate
        and the measured code from another folder (a worktree at another commit), the base's own PYTHONPATH after
        it, and that folder as the working directory (`python -m` puts it first on sys.path); by default this
        interpreter, this perfgate and this process's working directory. zygote: where a worker of this interpreter
        and perfgate, started with the zygote's prefix, can be forked from instead of started (perfgate.zygote)."""
        self.name = name
        self.log_path = log_path
        log_path.parent.mkdir(parents=True, exist_ok=True)
        self._log = log_path.open("w", encoding="utf-8")
        child_env = process_env(env, code_root, pythonpath)
        ours = python is None and code_root is None and pythonpath is None and cwd is None
        self.proc: subprocess.Popen | ForkedProcess | None = None
        if zygote is not None and ours and tuple(prefix) == zygote.prefix and zygote.fits(child_env):
            try:
                self.proc = zygote.spawn(self._log)
            except OSError as exc:  # the zygote is gone or hung: this worker and the next are started instead
                print(f"perfgate: worker {name} started on its own: {exc}", file=self._log, flush=True)
        if self.proc is None:
            self.proc = self._start(prefix, python, child_env, cwd)
        self._replies: queue.Queue[str | None] = queue.Queue()
        threading.Thread(target=self._read, name=f"perfgate-worker-{name}", daemon=True).start()

    def _start(self, prefix: tuple[str, ...], python: str | None, env: dict[str, str], cwd: Path | None):
        return subprocess.Popen(
            [*prefix, python or sys.executable, "-m", "perfgate.worker"],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=self._log,
            env=env,
            cwd=cwd,
            text=True,
            encoding="utf-8",
        )

    @property
    def pid(self) -> int:
        return self.proc.pid

    def _read(self) -> None:
        assert self.proc.stdout is not None
        for line in self.proc.stdout:
            self._replies.put(line)
        self._replies.put(None)  # the process closed its end: it exited or crashed

    def log_tail(self, lines: int = 25) -> str:
        self._log.flush()
        try:
            text = self.log_path.read_text(encoding="utf-8", errors="replace")
        except OSError:
            return ""
        return "\n".join(text.strip().splitlines()[-lines:])

    def call(self, op: str, timeout_s: float, **params: Any) -> Any:
        if self.proc.poll() is not None:
            code = self.proc.returncode
            raise WorkerError("died", f"worker {self.name} has exited (code {code})", self.log_tail(), code)
        assert self.proc.stdin is not None
        try:
            self.proc.stdin.write(json.dumps({"op": op, **params}) + "\n")
            self.proc.stdin.flush()
        except BrokenPipeError as exc:
            raise WorkerError("died", f"worker {self.name} is gone", self.log_tail()) from exc
        try:
            line = self._replies.get(timeout=timeout_s)
        except queue.Empty:
            self.kill()
            raise WorkerError(
                "timeout",
                f"worker {self.name}: '{op}' gave no answer within {timeout_s:.0f} s; the worker was killed",
                self.log_tail(),
            ) from None
        except BaseException:  # pytest-timeout or Ctrl-C: a later call would be answered with this call's reply
            self.kill()
            raise
        if line is None:
            code = self.proc.wait(timeout=30)
            raise WorkerError(
                "died", f"worker {self.name} died during '{op}' (exit code {code})", self.log_tail(), code
            )
        reply = json.loads(line)
        if reply["ok"]:
            return reply["result"]
        err = reply["error"]
        raise WorkerError(err["kind"], f"{err['type']}: {err['message']}", err["traceback"].strip())

    def close(self, timeout_s: float = 60) -> None:
        """Ask the worker to exit, and wait: its memory must be back on the device before the next one loads."""
        if self.proc.poll() is None:
            try:
                self.call("shutdown", timeout_s)
                self.proc.wait(timeout=timeout_s)
            except (WorkerError, subprocess.TimeoutExpired, OSError):
                self.kill()
        self._log.close()

    def kill(self) -> None:
        if self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait(timeout=60)
