"""The one error type for user mistakes, and the interrupt that says what it left behind."""

from __future__ import annotations

import signal
import threading
from types import FrameType

# The signals that ask a job to stop and let it clean up: Ctrl-C, `timeout`, systemd, SLURM
# and container stops (SIGTERM), a closed terminal or SSH session (SIGHUP).
STOP_SIGNALS = (signal.SIGINT, signal.SIGTERM, signal.SIGHUP)


class PipelineError(Exception):
    """A mistake in the user's config, data or environment, explained in one line.

    The message says what is wrong and how to fix it; the command line prints it without a
    traceback and exits non-zero.
    """


class Interrupted(KeyboardInterrupt):
    """A stop signal (SIGINT, SIGTERM or SIGHUP) during a job. Once the job's runs are marked
    KILLED the message says where the partial results are; the command line prints it and
    exits with the shell's status for the signal, 128 + its number (130, 143, 129).

    A KeyboardInterrupt, so that code which already stops cleanly on Ctrl-C stops cleanly on
    the other signals too.
    """

    def __init__(self, where: str = "", signum: int = signal.SIGINT):
        super().__init__(where)
        self.where, self.signum = where, signum

    def __reduce__(self) -> tuple:
        # A job run by the joblib launcher sends its interrupt back to the sweep's process.
        return type(self), (self.where, self.signum)


class JobStopped(Exception):
    """A job of a sweep stopped by a signal in a process that its launcher started for it
    alone (submitit: SLURM's `scancel`, a preemption, a Ctrl-C): that job's failure, which the
    sweep's summary lists, rather than an interrupt, which would leave the launcher without the
    job's result and end the whole sweep with its traceback."""

    @classmethod
    def by(cls, interrupt: KeyboardInterrupt) -> JobStopped:
        """The failure saying which signal stopped the job and where its partial results are
        (its message alone travels back to the sweep's process)."""
        where = getattr(interrupt, "where", "") or "no MLflow run was in progress"
        return cls(f"stopped by {signal.Signals(signal_of(interrupt)).name}: {where}")


def signal_of(interrupt: KeyboardInterrupt) -> int:
    """The signal behind an interrupt: Python's own Ctrl-C handler raises a plain
    KeyboardInterrupt, ours an `Interrupted` carrying its signal."""
    return getattr(interrupt, "signum", signal.SIGINT)


def exit_status(interrupt: KeyboardInterrupt) -> int:
    """The shell's status for a process ended by the interrupt's signal."""
    return 128 + signal_of(interrupt)


def stop_on_signals() -> None:
    """From now on SIGTERM and SIGHUP stop the job as Ctrl-C does: they raise `Interrupted`
    in the main thread (signal handlers can only be set there; elsewhere this does nothing)."""
    if threading.current_thread() is not threading.main_thread():
        return
    for signum in STOP_SIGNALS:
        signal.signal(signum, _raise_interrupted)


def _raise_interrupted(signum: int, frame: FrameType | None) -> None:
    raise Interrupted(signum=signum)
