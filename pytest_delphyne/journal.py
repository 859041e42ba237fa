"""The journal of an experiment's state, `experiment.journal`: one JSON line per
change of a config's status, appended as it happens.

A journal line is one `write` to a file opened with `O_APPEND`: once the call returns,
the kernel has it, so SIGKILL of the recorder cannot lose it. A recorder killed in the
middle of a `write` leaves a torn last line, which readers ignore and the next writer
cuts off.
"""

from __future__ import annotations

import contextlib
import json
import os
from pathlib import Path

from pytest_delphyne.files import open_append
from pytest_delphyne.state import (
    STATUSES,
    ConfigUpdate,
    StateFileError,
    parse_time,
)

JOURNAL_LINE_PROBLEM = "invalid journal entry ({problem})"


def read_journal(path: Path) -> list[ConfigUpdate]:
    """The updates recorded in a journal file (none if it does not exist).

    A last line without its newline is a write the recorder was killed in the middle
    of: it is ignored.

    Raises:
        StateFileError: a complete line that is not a valid entry, naming its line.
    """
    return [update for _, update in journal_entries(path)]


def journal_entries(path: Path) -> list[tuple[int, ConfigUpdate]]:
    """`read_journal`, each update with its line number (for a `StateFileError`)."""
    try:
        data = path.read_bytes()
    except FileNotFoundError:
        return []
    lines = data.split(b"\n")
    updates = []
    # The last element is b"" after a complete last line, or a torn write.
    for number, raw in enumerate(lines[:-1], start=1):
        if not raw.strip():
            continue
        try:
            entry = json.loads(raw)
            status = entry["status"]
            if status not in STATUSES:
                raise ValueError(f"unknown status {status!r}")
            update = ConfigUpdate(
                name=str(entry["name"]),
                status=status,
                start_time=parse_time(entry.get("start_time")),
                end_time=parse_time(entry.get("end_time")),
                interruption_time=parse_time(entry.get("interruption_time")),
                params=None if entry.get("params") is None else str(entry["params"]),
            )
        except (ValueError, KeyError, TypeError) as exc:
            problem = JOURNAL_LINE_PROBLEM.format(
                problem=f"{type(exc).__name__}: {exc}"
            )
            raise StateFileError(path, problem, number) from None
        updates.append((number, update))
    return updates


class Journal:
    """The journal file, open for appending (opened on first use)."""

    def __init__(self, path: Path):
        self.path = path
        self._fd: int | None = None
        # The open journal's inode and size: the recorder appends without a stat.
        self.ino = 0
        self.size = 0

    def open(self) -> int:
        """The journal's descriptor, opened (cutting a torn last line) if need be."""
        if self._fd is not None:
            return self._fd
        self.path.parent.mkdir(parents=True, exist_ok=True)
        fd = open_append(self.path)
        # A previous recorder killed mid-write left a torn last line; cut it so that
        # the next entry starts on a line of its own.
        size = os.fstat(fd).st_size
        end = size
        while end > 0:
            start = max(0, end - 65536)
            chunk = os.pread(fd, end - start, start)
            newline = chunk.rfind(b"\n")
            if newline != -1:
                end = start + newline + 1
                break
            end = start
        if end != size:
            os.ftruncate(fd, end)
        self.ino = os.fstat(fd).st_ino
        self.size = end
        self._fd = fd
        return fd

    def append(self, update: ConfigUpdate) -> None:
        """Append one update as one line, with one `write` call (see the module)."""
        fd = self.open()
        data = (update.to_json() + "\n").encode("utf-8")
        try:
            remaining = data
            while remaining:
                written = os.write(fd, remaining)
                remaining = remaining[written:]
        except OSError:
            # A full disk may take part of the line before refusing the rest: cut
            # it, or the next entry would be glued to it and the journal unreadable.
            with contextlib.suppress(OSError):
                os.ftruncate(fd, self.size)
            raise
        self.size += len(data)

    def close(self) -> None:
        """Close the file (the next `append` reopens it)."""
        if self._fd is not None:
            os.close(self._fd)
            self._fd = None
