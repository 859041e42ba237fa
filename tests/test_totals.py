"""What was paid in total and what the results record, beside the summary and in the
report (SPEC §3: totals include failed and interrupted attempts)."""

from __future__ import annotations

import csv
import subprocess
import sys
from pathlib import Path

import pytest
from report_page import ReportPage

from pytest_delphyne import layout
from pytest_delphyne.spending import PAID_IN_TOTAL, RECORDED_IN_TOTAL
from pytest_delphyne.summary import SUMMARY_BUDGET_ORDER, TOTALS_COLUMN

# Each config pays one request of 10 input tokens and 0.25; x2 raises after paying
# until `fixed.txt` exists.
EXPERIMENT = """
from dataclasses import dataclass
from pathlib import Path

from pytest_delphyne import Experiment, Outcome, Run

HERE = Path(__file__).parent


def program(env, x):
    env.spend(num_requests=1, input_tokens=10, price=0.25)
    if x == 2 and not (HERE / "fixed.txt").exists():
        raise ValueError("config 2 broke after paying")
    return Outcome(success=True, values=[x])


@dataclass
class Config:
    x: int

    def instantiate(self, context):
        return Run(program=program, args={"x": self.x})


experiment = Experiment(
    config_class=Config,
    output_dir="out",
    configs=[Config(x) for x in (1, 2, 3)],
    config_naming=lambda config, uuid: f"x{config.x}",
)

if __name__ == "__main__":
    experiment.run_cli()
"""


def read_csv(path: Path) -> list[dict[str, str]]:
    with path.open(newline="") as file:
        return list(csv.DictReader(file))


def totals_row(label: str, requests: int, price: float) -> dict[str, str]:
    row = dict.fromkeys(SUMMARY_BUDGET_ORDER, "0")
    row.update(
        {
            TOTALS_COLUMN: label,
            "num_requests": str(requests),
            "input_tokens": str(10 * requests),
            "price": repr(price),
        }
    )
    return row


@pytest.fixture
def retried(pytester: pytest.Pytester) -> pytest.Pytester:
    """x2 failed once after paying, then was retried: 4 paid, 3 recorded."""
    pytester.makepyfile(exp=EXPERIMENT)
    pytester.runpytest("--delphyne-exp=exp.py").assert_outcomes(passed=2, failed=1)
    # No summary before every config is done, so no totals beside it.
    assert not (pytester.path / "out" / layout.TOTALS_FILE).exists()
    (pytester.path / "fixed.txt").touch()
    result = pytester.runpytest(
        "--delphyne-exp=exp.py", "--lf", "--delphyne-report=report.html"
    )
    result.assert_outcomes(passed=1, deselected=2)
    result.stdout.fnmatch_lines(
        [
            f"*{PAID_IN_TOTAL}: 4 requests, 40 input tokens*price 1.0000",
            f"*{RECORDED_IN_TOTAL}: 3 requests, 30 input tokens*price 0.7500",
        ]
    )
    return pytester


def test_totals_beside_the_summary_count_the_failed_attempt(
    retried: pytest.Pytester,
) -> None:
    out = retried.path / "out"
    assert read_csv(out / layout.TOTALS_FILE) == [
        totals_row(PAID_IN_TOTAL, 4, 1.0),
        totals_row(RECORDED_IN_TOTAL, 3, 0.75),
    ]
    # The summary keeps one row per config, as Delphyne's analysis code reads it.
    summary = read_csv(out / layout.SUMMARY_FILE)
    assert [row["config_name"] for row in summary] == ["x1", "x2", "x3"]
    assert sum(float(row["price"]) for row in summary) == 0.75


def test_force_summary_writes_the_totals_too(retried: pytest.Pytester) -> None:
    out = retried.path / "out"
    (out / layout.TOTALS_FILE).unlink()
    done = subprocess.run(
        [sys.executable, "exp.py", "force-summary"],
        cwd=retried.path,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert done.returncode == 0, done.stderr
    assert read_csv(out / layout.TOTALS_FILE)[0] == totals_row(PAID_IN_TOTAL, 4, 1.0)


def test_report_shows_paid_and_recorded_in_total(retried: pytest.Pytester) -> None:
    page = ReportPage.read(retried.path / "report.html")
    rows = {row["spent"]: row for row in page.table("spent-budget")}
    assert set(rows) == set(SUMMARY_BUDGET_ORDER)
    assert (rows["num_requests"][PAID_IN_TOTAL], rows["price"][PAID_IN_TOTAL]) == (
        "4",
        "1",
    )
    assert (
        rows["num_requests"][RECORDED_IN_TOTAL],
        rows["price"][RECORDED_IN_TOTAL],
    ) == ("3", "0.75")
