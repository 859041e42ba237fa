"""The run lock: the exclusive right to run an experiment's configs and to write its
state, held by one process at a time and released by the kernel when it dies.

The lock is an `flock` on the output directory itself: no file a person may delete
holds it. (A lock on a file is lost with the file: a second run would lock a new one
and both would write the state.) Beside it, `.run.lock.holder` says who holds it, so
that a refused run can name the process it waits for; deleting it loses nothing.
"""

from __future__ import annotations

import contextlib
import fcntl
import json
import os
import socket
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

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
LOCK_LOST_MESSAGE = (
    "{output_dir} is no longer the directory this run locked (moved, deleted or "
    "replaced during the run): the state was not written; the results recorded so "
    "far are in the journal of the directory the run started in"
)


class LockLostError(DelphyneError):
    """The output directory was moved or replaced while this process held its lock."""


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


# The directories this process holds the lock of, by (device, inode): the open
# descriptor that holds the flock, and how many `acquire` calls it answers.
_HELD: dict[tuple[int, int], list[int]] = {}


class RunLock:
    """The exclusive right to run an experiment's configs and write its state.

    An OS lock (`flock`) on the output directory itself, opened read-only: the kernel
    releases it when the holder dies, however it dies, so no stale lock survives; and
    no file a person may delete holds it (a lock on a file is lost when the file is
    deleted: the next run locks a new one). Acquiring never waits: when another
    process holds it, `ExperimentLockedError` names that process. Re-acquiring in the
    process that holds it succeeds (the lock counts), so code holding the lock can
    call helpers that take it too. Use it as a context manager, or call `acquire()`
    and `release()`.
    """

    def __init__(self, output_dir: Path):
        self.output_dir = output_dir
        self.holder_file = output_dir / layout.LOCK_HOLDER_FILE
        self._key: tuple[int, int] | None = None

    @property
    def is_held(self) -> bool:
        """Whether this process holds the lock."""
        try:
            stat = os.stat(self.output_dir)
        except OSError:
            return False
        return (stat.st_dev, stat.st_ino) in _HELD

    def acquire(self) -> None:
        """Take the lock and write who holds it.

        Raises:
            ExperimentLockedError: another process holds it.
        """
        self.output_dir.mkdir(parents=True, exist_ok=True)
        fd = os.open(self.output_dir, os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC)
        stat = os.fstat(fd)
        key = (stat.st_dev, stat.st_ino)
        held = _HELD.get(key)
        if held is not None:
            os.close(fd)
            held[1] += 1
            self._key = key
            return
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            os.close(fd)
            raise ExperimentLockedError(
                self.output_dir, read_lock_holder(self.output_dir)
            ) from None
        except BaseException:
            # A filesystem without flock is an error, never a fallback: a marker
            # file in its place would outlive a killed holder.
            os.close(fd)
            raise
        _HELD[key] = [fd, 1]
        self._key = key
        holder = {
            "pid": os.getpid(),
            "host": socket.gethostname(),
            "command": " ".join(sys.argv) or sys.executable,
            "since": format_time(utc_now()),
        }
        atomic_write(self.holder_file, json.dumps(holder) + "\n")

    def check(self) -> None:
        """Check, before writing the state, that the lock held is still the output
        directory's (not a directory since moved away or replaced).

        Raises:
            LockLostError: the path names another directory, or none.
        """
        try:
            stat = os.stat(self.output_dir)
            same = (stat.st_dev, stat.st_ino) == self._key
        except OSError:
            same = False
        if not same or self._key not in _HELD:
            raise LockLostError(LOCK_LOST_MESSAGE.format(output_dir=self.output_dir))

    def release(self) -> None:
        """Give the lock back (when every `acquire` of this process is matched)."""
        key, self._key = self._key, None
        if key is None or key not in _HELD:
            return
        held = _HELD[key]
        held[1] -= 1
        if held[1] > 0:
            return
        del _HELD[key]
        # On a disk turned read-only the holder file stays; it names no holder
        # once the lock itself is free, so the lock is released all the same.
        with contextlib.suppress(OSError):
            self.holder_file.unlink()
        os.close(held[0])  # closing the last descriptor releases the flock

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
