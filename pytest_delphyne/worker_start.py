"""A worker's start: it dies with its controller, drops a Ctrl-C that reached it
while it started, reads the controller's plans and the values of
`WorkersSetup.common` from its `workerinput`, and binds each experiment to its own
copy of the file; it never reads the state. The controller starts this machine's
workers with Ctrl-C blocked.
"""

from __future__ import annotations

import contextlib
import ctypes
import ctypes.util
import os
import pickle
import signal
import sys
from collections.abc import Iterator
from typing import TYPE_CHECKING, Any

from pytest_delphyne import interrupts
from pytest_delphyne.bindings import ExperimentBinding, sees_output_dir
from pytest_delphyne.notices import channel_notices, notices_key
from pytest_delphyne.wire import (
    NOTICES_KEY,
    PLANS_KEY,
    SETUP_VALUES_KEY,
    SHIPPED_EXPERIMENTS_KEY,
    decode_plans,
)

if TYPE_CHECKING:
    import pytest

    from pytest_delphyne.session import DelphyneSession


def load_setup_value(data: bytes) -> object:
    # The bytes were pickled by this session's controller, which sent them down the
    # execnet channel it opened itself; nothing here was read from disk.
    return pickle.loads(data)


_PR_SET_PDEATHSIG = 1  # from <linux/prctl.h>


def die_with_controller() -> None:
    """Have the kernel kill this worker when the process that started it dies.

    An xdist worker whose controller was killed keeps running its config: its report
    can no longer be recorded, so every call it makes is paid for nothing, and the
    files it writes race with the next run of the same config. Linux only; elsewhere
    the worker stops when it next talks to its controller.
    """
    if not sys.platform.startswith("linux"):
        return
    parent = os.getppid()
    libc = ctypes.CDLL(ctypes.util.find_library("c"), use_errno=True)
    if libc.prctl(_PR_SET_PDEATHSIG, signal.SIGKILL, 0, 0, 0) != 0:
        return
    if os.getppid() != parent:  # the controller died before the call above
        os.kill(os.getpid(), signal.SIGKILL)


@contextlib.contextmanager
def workers_start_without_sigint(config: pytest.Config) -> Iterator[None]:
    """Start this machine's workers with Ctrl-C blocked, the controller meanwhile.

    A Ctrl-C reaches the terminal's whole process group: a worker's interpreter
    still starting would print its import traceback (or a "Fatal Python error") on
    the terminal. A worker inherits the blocked signal and drops it once started
    (`drop_start_up_sigint`); the controller's own Ctrl-C is delivered as soon as
    its workers' processes are started, and ends the session as usual. Workers on
    other machines (`--tx ssh=...`) are not in the terminal's process group, and
    starting them may hang: Ctrl-C stays free then.
    """
    specs = config.getoption("tx", None) or []
    if not specs or not all(str(spec).startswith("popen") for spec in specs):
        yield
        return
    with interrupts.sigint_deferred():
        yield


def drop_start_up_sigint() -> bool:
    """Drop a Ctrl-C that reached this process while it started, take Ctrl-C again,
    and say whether one was dropped.

    On a worker, the controller, which received the same Ctrl-C, ends the session
    and the worker.
    """
    pending = signal.SIGINT in signal.sigpending()
    with contextlib.suppress(ValueError):  # not the main thread
        handler = signal.getsignal(signal.SIGINT)
        signal.signal(signal.SIGINT, signal.SIG_IGN)
        signal.pthread_sigmask(signal.SIG_UNBLOCK, {signal.SIGINT})
        signal.signal(signal.SIGINT, handler)
    return pending


def start_worker(session: DelphyneSession, workerinput: dict[str, Any]) -> None:
    """Bind this worker's session to the controller's plans (see module docstring)."""
    die_with_controller()
    drop_start_up_sigint()
    session.plans = decode_plans(workerinput[PLANS_KEY])
    if session.plans:
        # What this worker pays is counted under the controller's session.
        session.session_id = session.plans[0]["session"]
    channel = workerinput.get(NOTICES_KEY)
    if channel is not None:
        session.config.stash[notices_key] = channel_notices(channel)
    session.setup_values = {
        key: load_setup_value(data)
        for key, data in workerinput[SETUP_VALUES_KEY].items()
    }
    shipped = workerinput.get(SHIPPED_EXPERIMENTS_KEY, {})
    for plan in session.plans:
        # This worker's own copy of the file: it may run on another machine.
        session.bind(
            session.config.rootpath / plan["file"],
            ExperimentBinding(
                attr=plan["attr"],
                plan=plan,
                shares_output_dir=sees_output_dir(plan),
                options=session.selection,
                settings=session.settings,
                meter=session.meter,
                shipped=shipped.get(plan["key"]),
            ),
        )
