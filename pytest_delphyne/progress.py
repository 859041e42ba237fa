"""The cost of a long run, shown as it goes.

A run of hundreds of configs pays as it goes; its price should not be a surprise at
the end. On the controller, as results arrive, a line says how many of the configs
this session runs are finished and what the session paid so far, at most once per
interval (`--delphyne-progress-interval`), also under xdist; `-q` shows none.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from pytest_delphyne.wording import plural

DEFAULT_PROGRESS_INTERVAL = 30.0
PROGRESS_MESSAGE = "delphyne: {finished}/{total} configs finished, paid {spent} so far"


@dataclass
class CostProgress:
    """When the next progress line is due, and what it says.

    Attributes:
        interval: seconds between two lines (0: after every config).
        clock: the monotonic clock (tests pass a fake).
    """

    interval: float = DEFAULT_PROGRESS_INTERVAL
    clock: Callable[[], float] = time.monotonic
    _last: float = field(init=False, default=0.0)

    def __post_init__(self) -> None:
        self._last = self.clock()

    def due(self) -> bool:
        """Whether a line is due now (and, if so, the next one only an interval
        later)."""
        now = self.clock()
        if now - self._last < self.interval:
            return False
        self._last = now
        return True


def progress_line(finished: int, total: int, spent: dict[str, float]) -> str:
    """The line: configs finished of those to run, and the session's spending."""
    price = spent.get("price", 0.0)
    requests = plural(int(spent.get("num_requests", 0)), "request")
    return PROGRESS_MESSAGE.format(
        finished=finished, total=total, spent=f"{price:.4f} ({requests})"
    )


def write_progress_line(terminal: Any, line: str) -> None:
    """Write `line` on pytest's terminal reporter as a line of its own."""
    # Under xdist the letters of the configs are written without a file name,
    # which `write_line` would not end: a line of its own.
    open_line: int = getattr(terminal, "_width_of_current_line", 0)
    if open_line and not terminal.currentfspath:
        terminal.write("\n")
    terminal.write_line(line)
