"""The ledger of paid calls: `<output_dir>/experiment.ledger`, what an experiment cost.

Every amount paid (a live call, never a replayed one) is appended where it is paid, by
the process that pays it, as one JSON line:

    {"config": "x3", "attempt": "9f1c…", "session": "4ab2…", "spent": {"price": 0.001}}

with the config, the attempt of that config (one run of its program) and the session
(one `pytest` or `run`) that paid it. A line is one `write` to a file opened with
`O_APPEND`: once the call returns the kernel has it, so a config that is interrupted,
killed or fails has its calls counted as surely as one that finishes. Results account
for what their attempt spent; the ledger for everything paid, done, failed and
interrupted attempts alike, and the spend cap reads it.

A worker that cannot see the output directory writes its config's lines to its scratch
directory; they travel back with the config's files and the controller appends them.
"""

from __future__ import annotations

import contextlib
import json
import os
import uuid
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING

from pytest_delphyne import layout
from pytest_delphyne.files import open_append

if TYPE_CHECKING:
    from pytest_delphyne.environment import Budget


def new_attempt_id() -> str:
    """A fresh identifier for one attempt (session, or run of a config)."""
    return uuid.uuid4().hex


@dataclass(frozen=True)
class Payment:
    """One paid amount, as the ledger records it.

    Attributes:
        config: the config whose program paid it.
        attempt: the attempt (one run of that config's program) that paid it.
        session: the session the attempt ran in.
        spent: the amounts paid, by budget field (fields left out are zero).
    """

    config: str
    attempt: str
    session: str
    spent: dict[str, float]

    def to_line(self) -> bytes:
        """The ledger line, newline included."""
        entry = {
            "config": self.config,
            "attempt": self.attempt,
            "session": self.session,
            "spent": self.spent,
        }
        return (json.dumps(entry, separators=(",", ":")) + "\n").encode("utf-8")


@dataclass
class LedgerWriter:
    """Appends what one attempt of one config pays to a ledger file.

    Attributes:
        path: the ledger file (created on the first payment).
        config: the config running.
        attempt: this run of its program.
        session: the session it runs in.
    """

    path: Path
    config: str
    attempt: str
    session: str
    _fd: int | None = field(default=None, init=False, repr=False)

    def record(self, amount: Budget) -> None:
        """Count one paid amount: one `write`, in the kernel when this returns."""
        spent = {name: value for name, value in amount.as_dict().items() if value}
        if not spent:
            return
        if self._fd is None:
            self._fd = open_append(self.path)
        line = Payment(self.config, self.attempt, self.session, spent).to_line()
        # A small O_APPEND write is not torn by another process's: workers share it.
        os.write(self._fd, line)

    def close(self) -> None:
        if self._fd is not None:
            os.close(self._fd)
            self._fd = None


def ledger_file_path(output_dir: Path) -> Path:
    return output_dir / layout.LEDGER_FILE


def parse_payments(data: bytes) -> Iterator[Payment]:
    """The payments of a ledger's bytes. A last line without its newline (a writer
    killed mid-write) and lines that are not entries are left out: a ledger is
    counted, never a reason for a command to fail."""
    for raw in data.split(b"\n")[:-1]:
        try:
            entry = json.loads(raw)
            spent = {str(key): float(value) for key, value in entry["spent"].items()}
            yield Payment(
                str(entry["config"]),
                str(entry["attempt"]),
                str(entry["session"]),
                spent,
            )
        except (ValueError, KeyError, TypeError, AttributeError):
            continue


def read_payments(output_dir: Path) -> list[Payment]:
    """Every payment recorded in an experiment's ledger (none if it has none)."""
    try:
        data = ledger_file_path(output_dir).read_bytes()
    except FileNotFoundError:
        return []
    return list(parse_payments(data))


def append_shipped_ledger(output_dir: Path, data: bytes) -> None:
    """Append the ledger lines a worker without the output directory shipped."""
    complete = data[: data.rfind(b"\n") + 1]
    if not complete:
        return
    fd = open_append(ledger_file_path(output_dir))
    try:
        remaining = complete
        while remaining:
            remaining = remaining[os.write(fd, remaining) :]
    finally:
        os.close(fd)


def total_paid(
    payments: Iterable[Payment], *, session: str | None = None
) -> dict[str, float]:
    """The sum of the payments, by budget field (of one session, if given)."""
    total: dict[str, float] = {}
    for payment in payments:
        if session is not None and payment.session != session:
            continue
        for name, value in payment.spent.items():
            total[name] = total.get(name, 0) + value
    return total


@dataclass
class LedgerReader:
    """What one session paid for the configs it finished, read from a growing ledger
    incrementally: each `paid` call reads only the lines appended since the last one
    (the spend cap asks after every config).

    A config in flight has paid, but its program may go on to its end: only once
    `settle` says it finished (its report, or its worker's crash, reached the
    controller) do its payments count, unless `counts_in_flight` (the spend cap
    checked before a config starts counts every payment made so far).
    """

    path: Path
    session: str
    counts_in_flight: bool = False
    _offset: int = field(default=0, init=False)
    _partial: bytes = field(default=b"", init=False)
    _total: dict[str, float] = field(default_factory=dict, init=False)
    _settled: set[str] = field(default_factory=set, init=False)
    # Payments of configs not settled yet, by config, then by budget field.
    _pending: dict[str, dict[str, float]] = field(default_factory=dict, init=False)

    def settle(self, config: str) -> None:
        """Count the payments of `config`, finished, from now on."""
        self._settled.add(config)
        for name, value in self._pending.pop(config, {}).items():
            self._total[name] = self._total.get(name, 0) + value

    def paid(self) -> dict[str, float]:
        """What the session paid for the configs settled so far, by budget field,
        as far as the ledger says."""
        with contextlib.suppress(FileNotFoundError), self.path.open("rb") as file:
            file.seek(self._offset)
            chunk = file.read()
            self._offset += len(chunk)
            data = self._partial + chunk
            cut = data.rfind(b"\n") + 1
            self._partial = data[cut:]
            for payment in parse_payments(data[:cut]):
                if payment.session != self.session:
                    continue
                if self.counts_in_flight or payment.config in self._settled:
                    into = self._total
                else:
                    into = self._pending.setdefault(payment.config, {})
                for name, value in payment.spent.items():
                    into[name] = into.get(name, 0) + value
        return dict(self._total)
