"""The session's objects and Python's garbage collector.

A session builds objects that live as long as it does (the state, the plans, 100,000
items); none are cycles to collect, and each full collection would traverse them again.
They are built with the collector paused and then frozen out of its sight
(`gc.freeze`); the plugin unfreezes them at the session's very end, for programs that
call `pytest.main` and go on.
"""

from __future__ import annotations

import atexit
import contextlib
import functools
import gc
from collections.abc import Iterator


@contextlib.contextmanager
def session_long_lived() -> Iterator[None]:
    """Build objects that live as long as the session: no automatic garbage
    collection inside, and what exists afterwards is frozen out of the collector's
    sight (`gc.freeze`; the session unfreezes it at its very end).

    100,000 configs, plans or items are not cycles to collect, and each full
    collection would scan them again: a fifth of the time spent collecting 100,000.
    """
    enabled = gc.isenabled()
    gc.disable()
    try:
        yield
    finally:
        if enabled:
            gc.enable()
        gc.freeze()


@functools.cache
def freeze_at_exit() -> None:
    """Freeze every object left when the process exits (registered once)."""
    # When the process ends, nothing is left worth collecting: frozen, the objects
    # of the session are skipped by the interpreter's last collection. That shutdown
    # took 0.7 s of a 10,000-config run, in each xdist worker (which the controller
    # waits for) and in the controller. Python promises no finalizer to objects
    # still alive at exit anyway, and the plugin's files are all closed by then
    # (the journal is written unbuffered, a config's files when it ends).
    atexit.register(gc.freeze)
