"""The ledger of paid calls (SPEC §3: every paid call counted where it is paid,
durably, with the config and attempt that paid it)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from pytest_delphyne import layout
from pytest_delphyne.environment import Budget
from pytest_delphyne.ledger import (
    LedgerReader,
    LedgerWriter,
    Payment,
    append_shipped_ledger,
    read_payments,
    total_paid,
)


def writer(tmp_path: Path, config: str, session: str = "s1") -> LedgerWriter:
    return LedgerWriter(
        tmp_path / layout.LEDGER_FILE,
        config=config,
        attempt=f"a-{config}",
        session=session,
    )


def test_each_paid_amount_is_one_line_naming_config_attempt_and_session(
    tmp_path: Path,
) -> None:
    paying = writer(tmp_path, "x1")
    paying.record(Budget(num_requests=1, input_tokens=10, price=0.5))
    paying.record(Budget(0, 0, 0, 0, 0, 0.0))  # nothing paid: no line
    paying.close()
    lines = (tmp_path / layout.LEDGER_FILE).read_text().splitlines()
    assert [json.loads(line) for line in lines] == [
        {
            "config": "x1",
            "attempt": "a-x1",
            "session": "s1",
            "spent": {"num_requests": 1, "input_tokens": 10, "price": 0.5},
        }
    ]


def test_totals_add_every_attempt_or_one_session(tmp_path: Path) -> None:
    for config, session in (("x1", "s1"), ("x2", "s1"), ("x1", "s2")):
        paying = writer(tmp_path, config, session)
        paying.record(Budget(num_requests=1, price=0.25))
        paying.close()
    payments = read_payments(tmp_path)
    assert total_paid(payments) == {"num_requests": 3, "price": 0.75}
    assert total_paid(payments, session="s2") == {"num_requests": 1, "price": 0.25}


@pytest.mark.parametrize(
    "tail",
    [b'{"config":"x9","attempt":"a","session":"s1","spent":{"price":', b"not json\n"],
    ids=["torn-last-line", "garbage-line"],
)
def test_a_torn_or_garbled_line_is_left_out_and_blocks_nothing(
    tmp_path: Path, tail: bytes
) -> None:
    paying = writer(tmp_path, "x1")
    paying.record(Budget(price=0.5))
    paying.close()
    with (tmp_path / layout.LEDGER_FILE).open("ab") as file:
        file.write(tail)
    assert read_payments(tmp_path) == [Payment("x1", "a-x1", "s1", {"price": 0.5})]


def test_reader_reads_only_what_was_appended_since_it_last_read(
    tmp_path: Path,
) -> None:
    reader = LedgerReader(tmp_path / layout.LEDGER_FILE, session="s1")
    assert reader.paid() == {}
    reader.settle("x1")
    first = writer(tmp_path, "x1")
    first.record(Budget(price=0.5))
    assert reader.paid() == {"price": 0.5}
    writer(tmp_path, "x2", session="other").record(Budget(price=8.0))
    first.record(Budget(price=0.25))
    first.close()
    assert reader.paid() == {"price": 0.75}


def test_reader_counts_a_config_in_flight_once_it_is_settled(tmp_path: Path) -> None:
    reader = LedgerReader(tmp_path / layout.LEDGER_FILE, session="s1")
    in_flight = writer(tmp_path, "x2")
    in_flight.record(Budget(price=1.0))
    assert reader.paid() == {}
    in_flight.record(Budget(price=0.5))
    in_flight.close()
    reader.settle("x2")
    assert reader.paid() == {"price": 1.5}


def test_shipped_lines_are_appended_without_a_torn_tail(tmp_path: Path) -> None:
    line = Payment("x1", "a", "s1", {"price": 0.5}).to_line()
    append_shipped_ledger(tmp_path, line + line[:10])
    append_shipped_ledger(tmp_path, line)
    assert total_paid(read_payments(tmp_path)) == {"price": 1.0}
