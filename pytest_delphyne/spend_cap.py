"""The session's spend cap (`--delphyne-max-price`): what the session paid so far.

Checked before each config starts: once reached, the remaining configs stay `todo`
(resumable), and no config is stopped mid-call.
"""

from __future__ import annotations

import math
import os
import tempfile
from dataclasses import dataclass, field
from pathlib import Path

from pytest_delphyne.files import open_append

SPEND_CAP_REASON = "session spend cap of {cap} reached; the config stays todo"
BAD_SPEND_CAP_MESSAGE = (
    "{where}: {cap:g} is not a spend cap: give a finite price >= 0 (0 starts no config)"
)


class BadSpendCapError(ValueError):
    """A spend cap that no spending can be compared with (`nan`), that is never
    reached (`inf`), or that is reached before anything is paid (negative)."""


def check_spend_cap(cap: float, where: str) -> None:
    """Refuse a spend cap that is not a finite number >= 0.

    Arguments:
        cap: the cap, in dollars.
        where: where the user set it (`--delphyne-max-price`), for the message.

    Raises:
        BadSpendCapError: naming `where` and the value.
    """
    if not math.isfinite(cap) or cap < 0:
        raise BadSpendCapError(BAD_SPEND_CAP_MESSAGE.format(where=where, cap=cap))


def make_spend_ledger() -> Path:
    """A new, empty ledger file where the workers of this machine count what the
    session paid (see `SpendMeter`); the controller removes it when the session ends.
    """
    descriptor, name = tempfile.mkstemp(prefix="delphyne-spend-", suffix=".txt")
    os.close(descriptor)
    return Path(name)


@dataclass
class SpendMeter:
    """Price spent by the configs of this session, as this process knows it.

    Without a ledger, what this process paid. Under xdist, the workers that see the
    controller's temporary directory share a ledger, a file where each appends what
    each config paid (one line, one `write`): a worker then checks the spend cap
    against what the whole session paid, not only what it paid itself. A remote
    worker has its own count, and the controller stops the session once the total
    of the results it received reaches the cap.
    """

    price: float = 0.0
    ledger: Path | None = None
    _ledger_fd: int | None = field(default=None, init=False, repr=False)
    _ledger_total: float = field(default=0.0, init=False, repr=False)
    _ledger_offset: int = field(default=0, init=False, repr=False)
    _partial_line: bytes = field(default=b"", init=False, repr=False)

    def add(self, price: float) -> None:
        """Count what one config paid."""
        self.price += price
        if self.ledger is not None:
            os.write(self._fd(), f"{price!r}\n".encode())

    def total(self) -> float:
        """What the session paid so far, as far as this process can tell."""
        if self.ledger is None:
            return self.price
        fd = self._fd()
        while chunk := os.pread(fd, 65536, self._ledger_offset):
            self._ledger_offset += len(chunk)
            *lines, self._partial_line = (self._partial_line + chunk).split(b"\n")
            self._ledger_total += sum(float(line) for line in lines if line)
        return self._ledger_total

    def _fd(self) -> int:
        if self._ledger_fd is None:
            assert self.ledger is not None
            self._ledger_fd = open_append(self.ledger, create=False)
        return self._ledger_fd

    def close(self) -> None:
        if self._ledger_fd is not None:
            os.close(self._ledger_fd)
            self._ledger_fd = None
