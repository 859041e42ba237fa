"""Ctrl-C on the controller while it saves the state.

Ctrl-C raises `KeyboardInterrupt`, as by default, except that a second one while the
session stops is held until the state is saved: while the first one's
`KeyboardInterrupt` is on its way out (it would break what that one unwinds: xdist's
queue lock, an INTERNALERROR) or xdist waits for its workers to end (the state would
not be saved). A third one stops at once. Once the state is saved, a Ctrl-C that stops
the session before its summary first says that the state was saved.
"""

from __future__ import annotations

import contextlib
import signal
import sys
from collections.abc import Callable, Iterator
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from types import FrameType


@contextlib.contextmanager
def sigint_deferred() -> Iterator[None]:
    """A second Ctrl-C while the state is being saved waits until it is saved: it
    would otherwise leave the interrupted configs without their interruption time."""
    try:
        signal.pthread_sigmask(signal.SIG_BLOCK, {signal.SIGINT})
    except ValueError:  # not the main thread: signals go to the main thread anyway
        yield
        return
    try:
        yield
    finally:
        signal.pthread_sigmask(signal.SIG_UNBLOCK, {signal.SIGINT})


class SigintGuard:
    """The controller's Ctrl-C handler while its session runs (see module docstring).

    Attributes:
        stopping: the session is stopping (a Ctrl-C, or its end).
        saved: the state is saved.
        held: a Ctrl-C arrived while stopping and was held.
    """

    def __init__(self, on_stop_after_saving: Callable[[], None]):
        self.on_stop_after_saving = on_stop_after_saving
        self.stopping = False
        self.saved = False
        self.held = False
        self._default: Any = None

    def install(self) -> None:
        """Handle Ctrl-C, unless the user's code installed a handler of its own."""
        if signal.getsignal(signal.SIGINT) is signal.default_int_handler:
            with contextlib.suppress(ValueError):  # not the main thread
                signal.signal(signal.SIGINT, self._on_sigint)
                self._default = signal.default_int_handler

    def restore(self) -> None:
        """Give Ctrl-C back its default handler."""
        if self._default is not None:
            signal.signal(signal.SIGINT, self._default)
            self._default = None

    def _on_sigint(self, signum: int, frame: FrameType | None) -> None:
        # pytest's report of the interruption names the frame below: where the
        # program was.
        __tracebackhide__ = True
        stopping = self.stopping or isinstance(sys.exc_info()[1], KeyboardInterrupt)
        if stopping and not self.saved and not self.held:
            self.held = True
            return
        if self.saved:
            self.restore()
            self.on_stop_after_saving()
        raise KeyboardInterrupt
