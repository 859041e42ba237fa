"""The report's data: the state and every config's result read into one pandas frame,
and the aggregates the page draws from it.

Nothing here knows HTML or matplotlib: every number on the page is one of these
frames', and the tests check them against pandas' own reading of `results_summary.csv`.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, TypeVar

from pytest_delphyne.identity import ConfigCodec
from pytest_delphyne.ledger import read_payments, total_paid
from pytest_delphyne.state import ExperimentState, aware_time
from pytest_delphyne.summary import (
    SPENT_PREFIX,
    SUMMARY_BUDGET_ORDER,
    param_columns,
    summary_rows,
)

if TYPE_CHECKING:
    import pandas

C = TypeVar("C")

# Beyond these sizes the page aggregates instead of listing.
CONFIGS_SHOWN = 1_000
FAILURES_SHOWN = 100
SLOWEST_SHOWN = 15
LEVELS_SHOWN = 40  # values of one hyperparameter in its table and bar plot
PAIR_CELLS = 100  # largest grid of two hyperparameters shown as a heat map
PAIRS_SHOWN = 6
CURVES_SHOWN = 12
TRACEBACK_LINES = 6
STATUS_COLUMNS = ("status", "success", *SUMMARY_BUDGET_ORDER, "duration")
# The columns of a summary row that are not hyperparameters.
RESULT_COLUMNS = frozenset(
    {"success", *SUMMARY_BUDGET_ORDER, "duration", "config_name"}
)


@dataclass
class ReportData:
    """One row per config of the state, with what its result records."""

    name: str | None
    description: str | None
    output_dir: Path
    frame: pandas.DataFrame
    params: list[str]
    """The hyperparameter columns (nested fields flattened as `outer.inner`)."""
    paid: dict[str, float]
    """What the ledger says was paid in total, by budget field: done, failed and
    interrupted attempts alike."""

    @property
    def varying(self) -> list[str]:
        """The hyperparameters that take more than one value."""
        return [
            column
            for column in self.params
            if self.frame[column].nunique(dropna=False) > 1
        ]


HYPERPARAMETER_SUFFIX = " (hyperparameter)"
"""After a hyperparameter's name in the report when a budget has that name."""


def budget_under_its_name(row: dict[str, Any]) -> dict[str, Any]:
    """A summary row with each budget under its own name (the report sums them), and
    a hyperparameter of the same name under `HYPERPARAMETER_SUFFIX`."""
    renamed: dict[str, Any] = {}
    for column, value in row.items():
        if f"{SPENT_PREFIX}{column}" in row:
            renamed[f"{column}{HYPERPARAMETER_SUFFIX}"] = value
        elif column.removeprefix(SPENT_PREFIX) in row and column.startswith(
            SPENT_PREFIX
        ):
            renamed[column.removeprefix(SPENT_PREFIX)] = value
        else:
            renamed[column] = value
    return renamed


def report_data(
    output_dir: Path,
    state: ExperimentState[C],
    codec: ConfigCodec[C],
) -> ReportData:
    """Read the state and every done config's result into one frame.

    Columns: the hyperparameters, `status`, `success`, the budget columns, `duration`,
    `start_time`, `end_time`, `config_name`. Configs without a result (todo, failed,
    or done with its file gone) have no success, budget or duration.
    """
    import pandas

    results = {
        row["config_name"]: row
        for row in summary_rows(
            output_dir, state, codec, ignore_missing=True, add_timing=True
        )
    }
    rows: list[dict[str, Any]] = []
    params: dict[str, None] = {}
    for name, info in state.configs.items():
        result = results.get(name)
        if result is None:
            row = {
                f"{column}{HYPERPARAMETER_SUFFIX}"
                if column in SUMMARY_BUDGET_ORDER
                else column: value
                for column, value in param_columns(codec.dump(info.params)).items()
            }
            params.update(dict.fromkeys(row))
            row.update(dict.fromkeys(("success", *SUMMARY_BUDGET_ORDER, "duration")))
        else:
            row = budget_under_its_name(result)
            params.update(
                dict.fromkeys(key for key in row if key not in RESULT_COLUMNS)
            )
        row["status"] = info.status
        # Comparable across configs, whichever launcher wrote them.
        row["start_time"] = info.start_time and aware_time(info.start_time)
        row["end_time"] = info.end_time and aware_time(info.end_time)
        row["config_name"] = name
        rows.append(row)
    columns = [*params, *STATUS_COLUMNS, "start_time", "end_time", "config_name"]
    frame = pandas.DataFrame(rows, columns=columns)
    frame["success"] = frame["success"].astype("boolean")
    for column in (*SUMMARY_BUDGET_ORDER, "duration"):
        frame[column] = pandas.to_numeric(frame[column], errors="coerce")
    return ReportData(
        name=state.name,
        description=state.description,
        output_dir=output_dir,
        frame=frame,
        params=list(params),
        paid=total_paid(read_payments(output_dir)),
    )


def success_table(frame: pandas.DataFrame, by: list[str]) -> pandas.DataFrame:
    """Per value of `by`: counts by status, successes, success rate among the done
    configs, and what the done configs spent and took."""
    done = frame["status"] == "done"
    work = frame.assign(
        done=done,
        failed=frame["status"] == "failed",
        todo=frame["status"] == "todo",
        solved=frame["success"].fillna(False).astype(bool) & done,
    )
    grouped = work.groupby(by, dropna=False, sort=True)
    table = grouped.agg(
        configs=("config_name", "size"),
        done=("done", "sum"),
        failed=("failed", "sum"),
        todo=("todo", "sum"),
        successes=("solved", "sum"),
        price=("price", "sum"),
        duration=("duration", "sum"),
    )
    table["success_rate"] = table["successes"] / table["done"].where(table["done"] > 0)
    return table


def stat_rows(stats: pandas.DataFrame) -> list[tuple[Any, dict[Any, Any]]]:
    """A `success_table`'s rows with their group key."""
    return list(zip(stats.index, stats.to_dict("records"), strict=True))


def scaling_points(
    frame: pandas.DataFrame, column: str, by: list[str]
) -> dict[str, list[float]]:
    """For each group of `by` (one group without it), the sorted `column` values of
    its successful configs: the number of successes within a threshold `t` is the
    number of values `<= t`."""
    solved = (frame["status"] == "done") & frame["success"].fillna(False)
    if not by:
        return {"all configs": sorted(frame.loc[solved, column].fillna(0).tolist())}
    groups: dict[str, list[float]] = {}
    # Every group, also those without a success yet: their curve stays at zero.
    for key, part in frame.assign(solved=solved).groupby(by, dropna=False, sort=True):
        values = key if isinstance(key, tuple) else (key,)
        label = ", ".join(
            f"{name}={value}" for name, value in zip(by, values, strict=True)
        )
        groups[label] = sorted(part.loc[part["solved"], column].fillna(0).tolist())
    return groups
