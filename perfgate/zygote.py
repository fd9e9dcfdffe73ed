"""Worker processes forked from a warm one, on the CPU.

Where a model is small, a worker's start is mostly imports: on the 2-core CPU machine a micro model's worker took 5 s
to be loaded, 3.8 s of it importing torch and transformers' model code, and 1.1 s to exit, where loading the model
itself took 25 ms; `make test` starts a hundred or more of them. A zygote imports all that once and forks a worker
per request (what Chromium and Android do for the same reason); the worker then runs perfgate.worker exactly as a
process started on its own would, over the pipes it was handed.

Forking is used only where it changes nothing that is measured: on the CPU (a process with a CUDA context cannot
fork a usable child, and on a GPU the seconds of an import are noise beside a model's load), for this interpreter and
this perfgate (an A/B run's base side runs other code), with one address-space layout and hash seed for the run (the
zygote is started as every worker would be, perfgate.runner.fixed_layout). Unsloth must be imported before
transformers, so its variants, which need a GPU anyway, never come from here.

The zygote reaps its children and writes each one's exit code on a pipe of the controller's, so that a forked worker
is watched as a child process is (ForkedProcess: poll, wait, kill, returncode).
"""

from __future__ import annotations

import importlib
import os
import select
import signal
import socket
import subprocess
import sys
import threading
import time
from pathlib import Path
from typing import TextIO

# Imported once in the zygote: what every transformers worker imports before its first call returns.
PRELOAD = ("torch", "transformers", "transformers.modeling_utils", "transformers.generation.utils", "perfgate.worker")
VOLATILE = ("PYTEST_CURRENT_TEST",)  # set by pytest for each phase of each test
REAP_EVERY_S = 0.2  # how soon after a worker exits its code reaches the controller, at most (seconds)


class ForkedProcess:
    """The part of subprocess.Popen that perfgate.runner.WorkerHandle uses, for a worker the zygote forked."""

    def __init__(self, pid: int, stdin: TextIO, stdout: TextIO, status_fd: int) -> None:
        self.pid = pid
        self.stdin = stdin
        self.stdout = stdout
        self.returncode: int | None = None
        self._status = os.fdopen(status_fd, "rb", buffering=0)

    def _read_status(self, timeout_s: float | None) -> int | None:
        if self.returncode is not None:
            return self.returncode
        ready, _, _ = select.select([self._status], [], [], timeout_s)
        if not ready:
            return None
        data = self._status.read(32)
        # no code, only the end of the pipe: the zygote is gone (killed with its process group) and cannot say
        self.returncode = int(data) if data.strip() else -signal.SIGKILL
        self._status.close()
        return self.returncode

    def poll(self) -> int | None:
        return self._read_status(0)

    def wait(self, timeout: float | None = None) -> int:
        code = self._read_status(timeout)
        if code is None:
            raise subprocess.TimeoutExpired(f"worker {self.pid}", timeout or 0)
        return code

    def kill(self) -> None:
        if self.returncode is None:
            try:
                os.kill(self.pid, signal.SIGKILL)
            except ProcessLookupError:
                pass


class Zygote:
    """The controller's end: starts the zygote (with the prefix and environment every worker would get) and asks
    it for workers."""

    def __init__(
        self, prefix: tuple[str, ...], env: dict[str, str], log_path: Path, preload: tuple[str, ...] = ()
    ) -> None:
        """env: the whole environment it starts with, its workers' (Zygote.fits); preload: modules to import
        beside PRELOAD (the model's own code, transformers.models.qwen3.modeling_qwen3: most of the import above)."""
        self.env = dict(env)
        self.prefix = tuple(prefix)
        ours, theirs = socket.socketpair(socket.AF_UNIX, socket.SOCK_STREAM)
        log_path.parent.mkdir(parents=True, exist_ok=True)
        with log_path.open("w", encoding="utf-8") as log:
            self.proc = subprocess.Popen(
                [*prefix, sys.executable, "-m", "perfgate.zygote", str(theirs.fileno()), *preload],
                pass_fds=(theirs.fileno(),),
                stdin=subprocess.DEVNULL,
                stdout=log,
                stderr=log,
                env=self.env,
            )
        theirs.close()
        self.sock = ours
        self.log_path = log_path
        self.broken = False  # a request failed: no more from here (spawn)

    def fits(self, env: dict[str, str]) -> bool:
        """Whether a worker with this whole environment can come from here: only with the zygote's own, since much
        of it is read once, when a process starts or a library is imported (the hash seed, the Python path,
        OMP_NUM_THREADS, HF_HUB_OFFLINE). Every worker of a run on the CPU has the same, but for what pytest
        says of the test it is in (VOLATILE), which no worker reads."""
        ours = {k: v for k, v in self.env.items() if k not in VOLATILE}
        alive = not self.broken and self.proc.poll() is None
        return alive and {k: v for k, v in env.items() if k not in VOLATILE} == ours

    def spawn(self, stderr: TextIO, timeout_s: float = 600) -> ForkedProcess:
        """A worker, its stderr to `stderr`; its stdin and stdout are pipes of ours. OSError if the zygote cannot
        give one within timeout_s (its imports included); from then on it gives none (fits is False) and workers
        are started on their own."""
        child_in, to_child = os.pipe()  # the child reads its requests from child_in, we write them to to_child
        from_child, child_out = os.pipe()
        status_r, status_w = os.pipe()
        try:
            self.sock.settimeout(timeout_s)
            socket.send_fds(self.sock, [b"w"], [child_in, child_out, stderr.fileno(), status_w])
            reply = b""
            while not reply.endswith(b"\n"):  # the pid, one line
                chunk = self.sock.recv(32)
                if not chunk:
                    break
                reply += chunk
            if not reply.strip():
                raise OSError(f"the zygote exited (code {self.proc.poll()}); its log: {self.log_path}")
        except BaseException:
            # Ctrl-C, SIGTERM or a time limit while the zygote was still importing, or the zygote gone: a worker
            # forked for this request later finds its stdin closed and exits, and no later request may read this
            # one's reply as its own
            for fd in (to_child, from_child, status_r):
                os.close(fd)
            self.broken = True
            self.sock.close()
            raise
        finally:
            for fd in (child_in, child_out, status_w):
                os.close(fd)
        stdin = os.fdopen(to_child, "w", encoding="utf-8")
        stdout = os.fdopen(from_child, "r", encoding="utf-8")
        return ForkedProcess(int(reply), stdin, stdout, status_r)

    def close(self) -> None:
        """The zygote exits once its workers have (they exit when their stdin closes). Not waited for: a run
        interrupted while the zygote was still importing must write its run file at once; a thread reaps it."""
        self.sock.close()
        threading.Thread(target=self.proc.wait, name="perfgate-zygote-reaper", daemon=True).start()


def _receive(sock: socket.socket) -> list[int] | None:
    """A request's four file descriptors (stdin, stdout, stderr, status), or None once the controller is gone."""
    message, fds, _, _ = socket.recv_fds(sock, 1, 4)
    return fds if message else None


def _reap(children: dict[int, int]) -> None:
    for pid in list(children):
        done, status = os.waitpid(pid, os.WNOHANG)
        if done:
            fd = children.pop(pid)
            try:
                os.write(fd, str(os.waitstatus_to_exitcode(status)).encode())
            except OSError:  # the controller no longer listens (its spawn was interrupted): nobody to tell
                pass
            os.close(fd)


def _become_worker(sock: socket.socket, fds: list[int], children: dict[int, int]) -> None:
    """In the forked child: take the handed pipes as stdin, stdout and stderr and run perfgate.worker (in the
    zygote's environment, which is the worker's: Zygote.fits); never returns."""
    code = 1
    try:
        sock.close()
        for fd in children.values():  # the other workers' status pipes are not this one's to hold open
            os.close(fd)
        stdin_fd, stdout_fd, stderr_fd, status_fd = fds
        os.close(status_fd)
        for fd, target in ((stdin_fd, 0), (stdout_fd, 1), (stderr_fd, 2)):
            os.dup2(fd, target)
            os.close(fd)
        from perfgate import worker

        code = worker.main()
    except SystemExit as exc:  # as the interpreter would exit: None is 0, a message is printed and is 1
        code = 0 if exc.code is None else exc.code if isinstance(exc.code, int) else 1
        if not isinstance(exc.code, (int, type(None))):
            print(exc.code, file=sys.stderr)
    except KeyboardInterrupt:
        code = -signal.SIGINT
    except BaseException:
        import traceback

        traceback.print_exc()
    finally:
        for stream in (sys.stdout, sys.stderr):
            stream.flush()
        if code < 0:  # killed by a signal, as a started process would be
            signal.signal(-code, signal.SIG_DFL)
            os.kill(os.getpid(), -code)
        os._exit(code)


def serve(sock: socket.socket, preload: tuple[str, ...] = ()) -> None:
    """The zygote: fork a worker per request until the controller closes its end, then wait for the workers."""
    for name in (*PRELOAD, *preload):
        try:
            importlib.import_module(name)
        except Exception as exc:  # then the worker imports it itself, and says what is wrong where it matters
            print(f"perfgate zygote: {name} not preloaded: {exc}", file=sys.stderr)
    children: dict[int, int] = {}  # pid -> the write end of its status pipe
    open_ = True
    while open_ or children:
        ready = select.select([sock], [], [], REAP_EVERY_S)[0] if open_ else []
        _reap(children)
        if not ready:
            if not open_:
                time.sleep(REAP_EVERY_S)
            continue
        fds = _receive(sock)
        if fds is None:
            open_ = False
            continue
        sys.stdout.flush()
        sys.stderr.flush()
        pid = os.fork()
        if pid == 0:
            _become_worker(sock, fds, children)
        for fd in fds[:3]:
            os.close(fd)
        children[pid] = fds[3]
        sock.sendall(f"{pid}\n".encode())


def main() -> int:
    serve(socket.socket(fileno=int(sys.argv[1])), tuple(sys.argv[2:]))
    return 0


if __name__ == "__main__":
    sys.exit(main())
