"""What an experiment has spent, summed over its results, and how the totals are
named: for the end of a session, the CLI's `status`, `results_totals.csv` and the
report.

The totals come from the summary when it was just written (one CSV read), else from
the done configs' `result.yaml` files.
"""

from __future__ import annotations

import csv
from typing import TYPE_CHECKING, Any, Final

from pytest_delphyne.environment import BUDGET_FIELDS, Budget
from pytest_delphyne.results import ResultFileError, read_result
from pytest_delphyne.wording import plural

if TYPE_CHECKING:
    from pathlib import Path

    from pytest_delphyne.experiment import Experiment


PAID_IN_TOTAL: Final = "paid in total"
"""Every call paid for, by done, failed and interrupted attempts (the ledger)."""
RECORDED_IN_TOTAL: Final = "recorded in total"
"""What the recorded results of the done configs account for."""


def summary_totals(path: Path) -> dict[str, float]:
    """The budget columns of `results_summary.csv`, summed."""
    with path.open(newline="") as file:
        rows = list(csv.DictReader(file))
    return {
        field: sum(float(row[field] or 0) for row in rows) for field in BUDGET_FIELDS
    }


def total_spent(experiment: Experiment[Any]) -> dict[str, float]:
    """What the result files of the experiment's done configs record as spent."""
    total = Budget()
    for name, info in experiment.load_state().configs.items():
        if info.status != "done":
            continue
        try:
            recorded = read_result(experiment.config_dir(name))
        except ResultFileError:
            continue  # gone or corrupt: the summary's error says which
        total = total + recorded.spent
    return total.as_dict()


def describe_budget(spent: dict[str, float]) -> str:
    """One line for a person: requests, tokens and price."""
    price = spent.get("price", 0.0)
    return (
        f"{plural(int(spent.get('num_requests', 0)), 'request')}, "
        f"{plural(int(spent.get('input_tokens', 0)), 'input token')} "
        f"({int(spent.get('cached_input_tokens', 0))} cached), "
        f"{plural(int(spent.get('output_tokens', 0)), 'output token')}, "
        f"price {price:.4f}"
    )
