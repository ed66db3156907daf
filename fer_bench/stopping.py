"""How a run learns it must stop: SIGTERM and a scheduler's stop signal become an interrupted
run (not a failed one) that the next attempt resumes. Kept apart from the runner so the rules
for which exit means "stopped" live in one place."""

from __future__ import annotations

import signal
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

_stop_signalled = False


def note_stop_signal() -> None:
    """A scheduler asked this process to stop (Slurm's time-limit or preemption signal, through
    submitit's checkpoint hook): the ``SystemExit`` that follows ends the run as interrupted,
    where any other ``SystemExit`` (a library calling ``sys.exit``) is a failure."""
    global _stop_signalled
    _stop_signalled = True


class Terminated(SystemExit):
    """SIGTERM arrived (``scancel``, ``timeout``, a node shutting down): the run is recorded as
    interrupted, like Ctrl-C, and the process exits with status 128 + 15."""

    def __init__(self) -> None:
        super().__init__(128 + signal.SIGTERM)


@contextmanager
def sigterm_interrupts() -> Iterator[None]:
    """SIGTERM raises :class:`Terminated` while a run trains, except after a scheduler's stop
    signal: submitit is then requeueing the job and its own handling must finish."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return

    def handler(signum: int, frame: Any) -> None:
        if not _stop_signalled:
            raise Terminated()

    previous = signal.signal(signal.SIGTERM, handler)
    try:
        yield
    finally:
        signal.signal(signal.SIGTERM, previous)


def stop_signalled() -> bool:
    """Whether :func:`note_stop_signal` was called in this process."""
    return _stop_signalled
