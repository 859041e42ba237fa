"""Summary columns in the cases the other summary tests leave out: a duration from
times of two launchers, a config without both times, tuples in params, and whole
prices in `results_totals.csv`."""

from __future__ import annotations

import csv
from dataclasses import dataclass, replace
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
import yaml

from pytest_delphyne import layout
from pytest_delphyne.environment import Budget
from pytest_delphyne.identity import codec_for
from pytest_delphyne.ledger import LedgerWriter, ledger_file_path
from pytest_delphyne.state import ConfigInfo, ExperimentState
from pytest_delphyne.summary import param_columns, save_summary, save_totals


@dataclass
class Config:
    model: str

    def instantiate(self, context: object) -> object:
        return None


def done_config(
    output_dir: Path, start: datetime | None, end: datetime | None
) -> ExperimentState[Config]:
    path = layout.result_file_path(output_dir, "a")
    path.parent.mkdir(parents=True)
    result = {"success": True, "values": [], "spent_budget": {"price": 0.25}}
    path.write_text(yaml.safe_dump({"config_name": "a", "outcome": {"result": result}}))
    info = ConfigInfo(Config("m"), "done")
    return ExperimentState(
        None, None, {"a": replace(info, start_time=start, end_time=end)}
    )


def summary_row(output_dir: Path) -> dict[str, str]:
    with (output_dir / layout.SUMMARY_FILE).open(newline="") as file:
        (row,) = csv.DictReader(file)
    return row


def test_duration_from_a_reference_start_and_a_utc_end(tmp_path: Path) -> None:
    # The reference launcher wrote the start in local time, without its zone; this
    # project wrote the end in UTC. The duration is the same in any zone.
    end = datetime(2025, 11, 5, 19, 23, 39, tzinfo=UTC)
    start = (end - timedelta(seconds=2.5)).astimezone().replace(tzinfo=None)
    state = done_config(tmp_path, start, end)
    save_summary(tmp_path, state, codec_for(Config), add_timing=True)
    assert summary_row(tmp_path)["duration"] == "2.5"


@pytest.mark.parametrize(
    "times",
    [
        (datetime(2025, 11, 5, 19, 23, 36, tzinfo=UTC), None),
        (None, datetime(2025, 11, 5, 19, 23, 36, tzinfo=UTC)),
    ],
    ids=["start-only", "end-only"],
)
def test_a_config_without_both_times_has_an_empty_duration(
    tmp_path: Path, times: tuple[datetime | None, datetime | None]
) -> None:
    state = done_config(tmp_path, *times)
    save_summary(tmp_path, state, codec_for(Config), add_timing=True)
    row = summary_row(tmp_path)
    assert (row["duration"], row["price"]) == ("", "0.25")


@pytest.mark.parametrize(
    ("params", "flat"),
    [
        ({"pair": ("gpt-4.1-nano", 2)}, {"pair": "['gpt-4.1-nano', 2]"}),
        ({"pairs": [("a", (1, 2))]}, {"pairs": "[['a', [1, 2]]]"}),
        ({"xs": [{"k": (1,)}]}, {"xs": "[{'k': [1]}]"}),
    ],
)
def test_tuples_in_params_are_written_as_the_lists_yaml_gives_back(
    params: dict[str, Any], flat: dict[str, Any]
) -> None:
    assert param_columns(params) == flat


def test_a_whole_price_total_is_still_written_as_a_price(tmp_path: Path) -> None:
    ledger = LedgerWriter(ledger_file_path(tmp_path), "a", "attempt", "session")
    ledger.record(Budget(num_requests=2, price=1.0))
    ledger.close()
    path = save_totals(tmp_path, recorded={"num_requests": 2.0, "price": 1.0})
    with path.open(newline="") as file:
        rows = list(csv.DictReader(file))
    # As the summary's price column, which pandas then reads as floats.
    assert [(row["num_requests"], row["price"]) for row in rows] == [
        ("2", "1.0"),
        ("2", "1.0"),
    ]
