"""A garbled line in the ledger hides no payment recorded after it: sessions go on
appending to a ledger one line of which a crash or a person's edit spoiled."""

from __future__ import annotations

from pathlib import Path

from pytest_delphyne import layout
from pytest_delphyne.environment import Budget
from pytest_delphyne.ledger import LedgerWriter, Payment, read_payments, total_paid


def pay(tmp_path: Path, config: str, price: float) -> None:
    writer = LedgerWriter(
        tmp_path / layout.LEDGER_FILE, config=config, attempt=config, session="s1"
    )
    writer.record(Budget(price=price))
    writer.close()


def test_payments_after_a_garbled_line_still_count(tmp_path: Path) -> None:
    pay(tmp_path, "x1", 0.5)
    with (tmp_path / layout.LEDGER_FILE).open("ab") as file:
        file.write(b'{"config":"x9","spent":"not a mapping"}\nnot json\n')
    pay(tmp_path, "x2", 0.25)
    payments = read_payments(tmp_path)
    assert payments == [
        Payment("x1", "x1", "s1", {"price": 0.5}),
        Payment("x2", "x2", "s1", {"price": 0.25}),
    ]
    assert total_paid(payments) == {"price": 0.75}
