"""The session's spend cap (`--delphyne-max-price`): what the session paid so far.

Checked before each config starts: once reached, the remaining configs stay `todo`
(resumable), and no config is stopped mid-call.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from pytest_delphyne.ledger import LedgerReader

if TYPE_CHECKING:
    from pathlib import Path

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


@dataclass
class SpendMeter:
    """Price paid by the configs of this session, as this process can tell.

    The ledgers of paid calls of the experiments whose output directory this
    process sees (`watch`) say what every process of the session paid so far,
    configs in flight included: the controller and the workers that share its disk
    check the cap against them, and against nothing else. A worker that cannot see
    an experiment's output directory counts what its own configs of it paid
    (`add`); their ledger lines travel back with their files, and the controller,
    which appends them to the ledger, stops the session once it says the cap is
    reached.

    Attributes:
        price: what this process paid for configs whose ledger it does not read.
    """

    price: float = 0.0
    _readers: dict[Path, LedgerReader] = field(
        default_factory=dict, init=False, repr=False
    )

    def watch(self, ledger: Path, session: str) -> None:
        """Count what `session` paid as `ledger` records it."""
        if ledger not in self._readers:
            self._readers[ledger] = LedgerReader(ledger, session, counts_in_flight=True)

    def add(self, price: float) -> None:
        """Count what one config paid whose ledger this process does not read."""
        self.price += price

    def total(self) -> float:
        """What the session paid so far, as far as this process can tell."""
        return self.price + sum(
            reader.paid().get("price", 0.0) for reader in self._readers.values()
        )
