"""The run lock: the exclusive right to run an experiment's configs and to write its
state, held by one process at a time and released by the kernel when it dies.

Beside the lock, `.run.lock.holder` says who holds it, so that a refused run can name
the process it waits for.
"""

from __future__ import annotations

import contextlib
import json
import os
import socket
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

import filelock

from pytest_delphyne import layout
from pytest_delphyne.errors import DelphyneError
from pytest_delphyne.files import atomic_write
from pytest_delphyne.state import format_time, utc_now

if TYPE_CHECKING:
    from types import TracebackType

LOCKED_MESSAGE = (
    "The experiment in {output_dir} is already being run by {holder}. Wait for it to "
    "finish or stop it: the lock is released as soon as that process exits."
)
UNKNOWN_HOLDER = "another process (it has not said who it is yet)"


class ExperimentLockedError(DelphyneError):
    """Another process holds the run lock of the experiment."""

    def __init__(self, output_dir: Path, holder: LockHolder | None):
        self.output_dir = output_dir
        self.holder = holder
        described = holder.describe() if holder is not None else UNKNOWN_HOLDER
        super().__init__(LOCKED_MESSAGE.format(output_dir=output_dir, holder=described))


@dataclass(frozen=True)
class LockHolder:
    """Who holds the run lock of an experiment, as written in the holder file."""

    pid: int
    host: str
    command: str
    since: str

    def describe(self) -> str:
        """A phrase naming the holder, for messages."""
        return (
            f"process {self.pid} on {self.host} (command: {self.command}), "
            f"since {self.since}"
        )


def read_lock_holder(output_dir: Path) -> LockHolder | None:
    """The holder recorded beside the lock, if any (it may be stale when the lock is
    free: only a refused `acquire` means someone holds it)."""
    try:
        data = json.loads(
            (output_dir / layout.LOCK_HOLDER_FILE).read_text(encoding="utf-8")
        )
        return LockHolder(
            int(data["pid"]),
            str(data["host"]),
            str(data["command"]),
            str(data["since"]),
        )
    except (OSError, ValueError, KeyError, TypeError):
        return None


class RunLock:
    """The exclusive right to run an experiment's configs and write its state.

    An OS lock (`flock`, through `filelock`) on `<output_dir>/.run.lock`: the kernel
    releases it when the holder dies, however it dies, so no stale lock survives.
    Acquiring never waits: when another process holds it, `ExperimentLockedError`
    names that process. Re-acquiring in the process that holds it succeeds (the lock
    counts), so code holding the lock can call helpers that take it too.

    Use it as a context manager, or call `acquire()` and `release()` and keep a
    reference meanwhile: a `RunLock` that is garbage-collected releases the lock.
    """

    def __init__(self, output_dir: Path):
        self.output_dir = output_dir
        self.lock_file = output_dir / layout.LOCK_FILE
        self.holder_file = output_dir / layout.LOCK_HOLDER_FILE
        self._lock = filelock.FileLock(
            self.lock_file,
            timeout=0,
            thread_local=False,
            is_singleton=True,
            # A soft lock (a marker file) outlives a killed holder: never fall back.
            fallback_to_soft=False,
        )

    @property
    def is_held(self) -> bool:
        """Whether this process holds the lock."""
        return self._lock.is_locked

    def acquire(self) -> None:
        """Take the lock and write who holds it.

        Raises:
            ExperimentLockedError: another process holds it.
        """
        self.output_dir.mkdir(parents=True, exist_ok=True)
        try:
            self._lock.acquire(timeout=0)
        except filelock.Timeout:
            raise ExperimentLockedError(
                self.output_dir, read_lock_holder(self.output_dir)
            ) from None
        if self._lock.lock_counter == 1:
            holder = {
                "pid": os.getpid(),
                "host": socket.gethostname(),
                "command": " ".join(sys.argv) or sys.executable,
                "since": format_time(utc_now()),
            }
            atomic_write(self.holder_file, json.dumps(holder) + "\n")

    def release(self) -> None:
        """Give the lock back (when every `acquire` of this process is matched)."""
        if self._lock.lock_counter == 1:
            with contextlib.suppress(FileNotFoundError):
                self.holder_file.unlink()
        self._lock.release()

    def __enter__(self) -> RunLock:
        self.acquire()
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.release()
