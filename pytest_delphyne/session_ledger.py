"""What this session paid, as each experiment's ledger says (`ledger.py`).

The controller keeps one `LedgerReader` per experiment; a config's payments count
once its result is recorded (`settle`), so a config in flight counts when it ends.
A remote worker, which does not see the output directory, ships the ledger lines it
wrote with its config's files: they are appended to the experiment's ledger before the
config is settled. At session end the terminal says what this session paid, what every
attempt ever paid and what the recorded results account for.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from pytest_delphyne import layout
from pytest_delphyne.ledger import (
    LedgerReader,
    append_shipped_ledger,
    ledger_file_path,
    read_payments,
    total_paid,
)
from pytest_delphyne.spending import describe_budget

if TYPE_CHECKING:
    from collections.abc import Iterable
    from pathlib import Path


class SessionLedger:
    """The session's view of its experiments' ledgers, on the controller.

    Attributes:
        session_id: the id this session's payments carry in the ledgers.
    """

    def __init__(self, session_id: str) -> None:
        self.session_id = session_id
        # By experiment key: what the session paid for the configs it recorded.
        self._readers: dict[str, LedgerReader] = {}

    def reader(self, key: str, output_dir: Path) -> LedgerReader:
        """The reader of the ledger of the experiment `key`, made on first use."""
        reader = self._readers.get(key)
        if reader is None:
            reader = self._readers[key] = LedgerReader(
                ledger_file_path(output_dir), self.session_id
            )
        return reader

    @staticmethod
    def receive_shipped(output_dir: Path, shipped: dict[str, bytes]) -> None:
        """Append to the experiment's ledger the lines a worker shipped among its
        config's files (taken out of `shipped`: they are no config file)."""
        shipped_ledger = shipped.pop(layout.LEDGER_FILE, None)
        if shipped_ledger is not None:
            append_shipped_ledger(output_dir, shipped_ledger)

    def paid(self, experiments: Iterable[tuple[str, Path]]) -> dict[str, float]:
        """What this session paid for the configs it recorded, by budget field,
        summed over `experiments` (each a key and an output directory)."""
        total: dict[str, float] = {}
        for key, output_dir in experiments:
            for name, value in self.reader(key, output_dir).paid().items():
                total[name] = total.get(name, 0) + value
        return total

    def totals_lines(self, output_dir: Path, recorded: dict[str, float]) -> list[str]:
        """The terminal's lines on what was paid: this session, in total (every
        attempt the ledger holds) and what the `recorded` results account for."""
        payments = read_payments(output_dir)
        paid_now = total_paid(payments, session=self.session_id)
        return [
            f"  paid this session: {describe_budget(paid_now)}",
            f"  paid in total: {describe_budget(total_paid(payments))}",
            f"  recorded in total: {describe_budget(recorded)}",
        ]
