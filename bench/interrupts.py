"""SIGINT, SIGTERM and SIGHUP end `bench run` the same way: the running worker is stopped, the records
already stored are kept, and the exit status is 128 + the signal's number (130, 143, 129).

A cancelled CI job sends SIGTERM, a dropped SSH session SIGHUP, Ctrl-C SIGINT. Once the cleanup has
begun it is `shielded`: a second Ctrl-C is noted, not obeyed, so that no worker is left running.
"""

from __future__ import annotations

import signal
import sys
from collections.abc import Callable, Iterator
from contextlib import contextmanager, suppress
from types import FrameType

HANDLED = (signal.SIGINT, signal.SIGTERM, signal.SIGHUP)

Handler = Callable[[int, FrameType | None], object] | int | signal.Handlers | None


class Interrupted(BaseException):
    """`bench run` received a stop signal. A BaseException, like KeyboardInterrupt, so that no
    `except Exception` in between swallows it."""

    def __init__(self, signum: int) -> None:
        self.signum = signum
        super().__init__(signal.Signals(signum).name)

    @property
    def name(self) -> str:
        """SIGINT, SIGTERM or SIGHUP."""
        return signal.Signals(self.signum).name

    @property
    def exit_code(self) -> int:
        """The shell's convention: 128 + the signal number."""
        return 128 + self.signum


def _raise(signum: int, _frame: FrameType | None) -> None:
    raise Interrupted(signum)


def _install(handler: Handler) -> dict[int, Handler]:
    """Handle each signal that is not ignored: `nohup` (SIGHUP) and background jobs of a non-interactive
    shell (SIGINT) ignore some on purpose, and they stay ignored."""
    previous: dict[int, Handler] = {}
    for sig in HANDLED:
        if signal.getsignal(sig) == signal.SIG_IGN:
            continue
        try:
            previous[sig] = signal.signal(sig, handler)
        except ValueError:  # not the main thread: signals stay as they are
            break
    return previous


def _restore(previous: dict[int, Handler]) -> None:
    for sig, handler in previous.items():
        signal.signal(sig, handler)


@contextmanager
def interruptible() -> Iterator[None]:
    """Inside the block, each handled signal raises Interrupted."""
    previous = _install(_raise)
    try:
        yield
    finally:
        _restore(previous)


@contextmanager
def deferred() -> Iterator[list[int]]:
    """Inside the block, handled signals are appended to the yielded list instead of raised: for a loop that
    waits in native code (where a raising handler would surface as a SystemError) and checks the list
    between its waits."""
    received: list[int] = []

    def note(signum: int, _frame: FrameType | None) -> None:
        received.append(signum)

    previous = _install(note)
    try:
        yield received
    finally:
        _restore(previous)


def say(line: str) -> None:
    """One line to stderr; a terminal that is gone (SIGHUP) is not an error."""
    with suppress(OSError, ValueError):
        print(line, file=sys.stderr, flush=True)


@contextmanager
def shielded() -> Iterator[None]:
    """Inside the block, handled signals are noted and not obeyed, so that what it does (start a worker and
    record it, or stop one) runs to its end. The first one noted is raised as Interrupted after the block,
    unless an exception is already leaving it."""
    received: list[int] = []

    def note(signum: int, _frame: FrameType | None) -> None:
        if not received:
            say(f"bench: {signal.Signals(signum).name} received: stopping the running worker first, please wait")
        received.append(signum)

    previous = _install(note)
    try:
        yield
    except BaseException:
        _restore(previous)
        raise
    _restore(previous)
    if received:
        raise Interrupted(received[0])
