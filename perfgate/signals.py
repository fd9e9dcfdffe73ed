"""SIGTERM ends a perf run as Ctrl-C does: a CI job cancelled or timed out stops the workers, and what was measured
reaches the run file, the report and (with --perf-update-baselines) the baseline.

The controller of a run spread over GPUs passes the signal on to its workers, which a signal sent to it alone
(`timeout`, `kill PID`) does not reach, so that each keeps its rounds so far (perfgate.parallel.forward_signal).
"""

from __future__ import annotations

import signal
import threading
from collections.abc import Callable
from typing import Any

from perfgate import parallel


def end_runs_like_ctrl_c(perf) -> Any:
    """Handle SIGTERM for this run (perf: the PerfSession) where nothing else does: in the main thread, with the
    default handler in place. Returns the handler it replaced, for restore(); None where it left SIGTERM alone."""
    if threading.current_thread() is not threading.main_thread():
        return None
    if signal.getsignal(signal.SIGTERM) != signal.SIG_DFL:
        return None
    return signal.signal(signal.SIGTERM, on_sigterm(perf))


def restore(before: Any) -> None:
    """Put back the SIGTERM handler that end_runs_like_ctrl_c replaced (None: it replaced none)."""
    if before is not None:
        signal.signal(signal.SIGTERM, before)


def on_sigterm(perf) -> Callable[[int, Any], None]:
    """SIGTERM ends the run like Ctrl-C, once: a second one (a process group's signal that the controller passes on
    as well, or a sender that repeats it) would cut short the writing of what was measured; SIGKILL still ends the
    process. The controller of a run spread over GPUs passes it on to its workers."""

    def interrupt(signum: int, frame) -> None:
        signal.signal(signum, signal.SIG_IGN)
        if perf.is_controller:
            perf.workers_signalled = parallel.forward_signal(signum)
        raise KeyboardInterrupt(f"signal {signal.Signals(signum).name}")

    return interrupt
