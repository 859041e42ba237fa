"""`results_summary.csv`: one row per config, read from its `result.yaml`.

Columns: the config's params (nested fields flattened as `outer.inner`), then
`success`, `num_completions`, `num_requests`, `input_tokens`, `cached_input_tokens`,
`output_tokens`, `price`, `duration` (with `add_timing`), and `config_name`: the
reference's columns, in its order, with its values (lists as Python writes them, 0 for
a budget the result does not mention, `duration` = end - start from the state), then
`config_name`. A param named like a budget column keeps its column (the reference
overwrote it), and the budget's column takes the `SPENT_PREFIX`:
`spent_num_completions`.

The file is written with the standard library's csv module, as pandas' `to_csv` would
write it (a test holds the two to the same bytes): importing pandas costs about half a
second, which the end of every run need not pay. pandas is imported only to read the
summary back (`load_summary`).
"""

from __future__ import annotations

import csv
import io
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, Final, TypeVar

from pytest_delphyne import layout
from pytest_delphyne.environment import BUDGET_FIELDS
from pytest_delphyne.errors import DelphyneError
from pytest_delphyne.files import atomic_write
from pytest_delphyne.identity import ConfigCodec
from pytest_delphyne.ledger import read_payments, total_paid
from pytest_delphyne.plain_data import flatten_params
from pytest_delphyne.results import ResultFileError, read_result
from pytest_delphyne.spending import PAID_IN_TOTAL, RECORDED_IN_TOTAL
from pytest_delphyne.state import (
    ConfigInfo,
    ExperimentState,
    aware_time,
    plain_params,
)

if TYPE_CHECKING:
    import pandas

C = TypeVar("C")

# Delphyne's summary lists completions before requests, unlike `result.yaml`: the
# budget's names, in the summary's order.
SUMMARY_BUDGET_ORDER: Final = tuple(
    sorted(BUDGET_FIELDS, key=lambda name: name != "num_completions")
)
MISSING_RESULTS_MESSAGE = (
    "{count} config(s) of {output_dir} have no result yet: {names}. Run them first, "
    "or ask for a partial summary (ignore_missing=True, or the CLI's force-summary)."
)
NO_SUMMARY_MESSAGE = "No summary at {path}: save_summary() writes it"
SPENT_PREFIX: Final = "spent_"
"""Before a budget column's name when a hyperparameter already has that name."""
_NAMES_SHOWN = 10


class MissingResultsError(DelphyneError):
    """A summary was asked for while some configs have no result."""

    def __init__(self, output_dir: Path, names: list[str]):
        self.output_dir = output_dir
        self.names = names
        shown = ", ".join(names[:_NAMES_SHOWN])
        if len(names) > _NAMES_SHOWN:
            shown += f" and {len(names) - _NAMES_SHOWN} more"
        super().__init__(
            MISSING_RESULTS_MESSAGE.format(
                count=len(names), output_dir=output_dir, names=shown
            )
        )


class MissingSummaryError(DelphyneError):
    """`load_summary` before any `save_summary`."""

    def __init__(self, path: Path):
        self.path = path
        super().__init__(NO_SUMMARY_MESSAGE.format(path=path))


@dataclass(frozen=True)
class KnownResult:
    """What a config's `result.yaml` records, known without reading it (the
    controller received it with the config's report)."""

    success: bool
    spent_budget: Mapping[str, float]


def param_columns(params: dict[str, Any]) -> dict[str, Any]:
    """A config's params as summary columns: flattened (`flatten_params`), lists and
    tuples written as Python (and pandas, for the reference) writes them."""
    return {
        column: str(_as_lists(value)) if isinstance(value, list | tuple) else value
        for column, value in flatten_params(params).items()
    }


def _as_lists(value: Any) -> Any:
    # The reference's params come from YAML, where a tuple is a list.
    if isinstance(value, list | tuple):
        return [_as_lists(item) for item in value]
    if isinstance(value, dict):
        return {key: _as_lists(item) for key, item in value.items()}
    return value


def spent_column(name: str, params: Mapping[str, Any]) -> str:
    """The summary column of budget `name`: its name, or `SPENT_PREFIX` and its name
    when a hyperparameter already has it."""
    return f"{SPENT_PREFIX}{name}" if name in params else name


def duration_of(info: ConfigInfo[Any]) -> float | None:
    """End minus start, in seconds, as the state records them (the reference's
    `duration`); `None` without both."""
    if info.start_time is None or info.end_time is None:
        return None
    start, end = info.start_time, info.end_time
    if (start.tzinfo is None) != (end.tzinfo is None):
        start, end = aware_time(start), aware_time(end)
    return (end - start).total_seconds()


def summary_rows(
    output_dir: Path,
    state: ExperimentState[C],
    codec: ConfigCodec[C],
    *,
    ignore_missing: bool = False,
    add_timing: bool = False,
    known: Mapping[str, KnownResult] | None = None,
) -> list[dict[str, Any]]:
    """One row per config of `state` that is done and has its result file.

    `known` results are taken as they are instead of reading their files again.

    Raises:
        MissingResultsError: some configs have no result (not done, or no file), and
            `ignore_missing` is false; the error names them.
    """
    rows: list[dict[str, Any]] = []
    missing: list[str] = []
    known = {} if known is None else known
    for name, info in state.configs.items():
        if info.status != "done":
            missing.append(name)
            continue
        recorded = known.get(name)
        if recorded is not None:
            success, spent = recorded.success, recorded.spent_budget
        else:
            try:
                result = read_result(layout.config_dir(output_dir, name))
            except ResultFileError as error:
                if not error.missing:
                    raise
                missing.append(name)
                continue
            success = result.success
            spent = {field: getattr(result.spent, field) for field in BUDGET_FIELDS}
        row = param_columns(plain_params(info, codec))
        params = dict(row)
        row["success"] = bool(success)
        for field in SUMMARY_BUDGET_ORDER:
            value = spent.get(field)
            row[spent_column(field, params)] = 0 if value is None else value
        if add_timing:
            row["duration"] = duration_of(info)
        row["config_name"] = name
        rows.append(row)
    if missing and not ignore_missing:
        raise MissingResultsError(output_dir, missing)
    return rows


def summary_columns(rows: list[dict[str, Any]], *, add_timing: bool) -> list[str]:
    """Params columns in order of appearance, then the result columns."""
    params: dict[str, None] = {}
    for row in rows:
        params.update(dict.fromkeys(key for key in row if is_param_column(key, row)))
    budget = [spent_column(field, params) for field in SUMMARY_BUDGET_ORDER]
    timing = ["duration"] if add_timing else []
    return [*params, "success", *budget, *timing, "config_name"]


def is_param_column(column: str, row: Mapping[str, Any]) -> bool:
    """Whether `column` of a summary row holds a hyperparameter (a budget's name does
    when the row has the budget under `SPENT_PREFIX`)."""
    if column in SUMMARY_BUDGET_ORDER:
        return f"{SPENT_PREFIX}{column}" in row
    return column not in _OTHER_RESULT_COLUMNS


_OTHER_RESULT_COLUMNS: Final = frozenset(
    {
        "success",
        "duration",
        "config_name",
        *(f"{SPENT_PREFIX}{field}" for field in SUMMARY_BUDGET_ORDER),
    }
)


def csv_text(rows: list[dict[str, Any]], columns: list[str]) -> str:
    """The CSV pandas' `DataFrame(rows, columns=columns).to_csv(index=False)` writes."""
    # pandas stores a column of numbers as floats when it has a float or a missing
    # value (`1.0`, not `1`); any other column keeps each value as it is.
    float_columns = set()
    for column in columns:
        values = [row.get(column) for row in rows]
        present = [value for value in values if value is not None]
        if all(_is_number(value) for value in present) and (
            len(present) < len(values)
            or any(isinstance(value, float) for value in present)
        ):
            float_columns.add(column)
    buffer = io.StringIO()
    writer = csv.writer(buffer, lineterminator="\n")
    writer.writerow(columns)
    for row in rows:
        cells: list[object] = []
        for column in columns:
            value = row.get(column)
            if value is None:
                cells.append("")
            elif column in float_columns and _is_number(value):
                cells.append(repr(float(value)))
            elif isinstance(value, float):
                cells.append(repr(value))
            else:
                cells.append(value)
        writer.writerow(cells)
    return buffer.getvalue()


def _is_number(value: object) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool)


def save_summary(
    output_dir: Path,
    state: ExperimentState[C],
    codec: ConfigCodec[C],
    *,
    ignore_missing: bool = False,
    add_timing: bool = False,
    known: Mapping[str, KnownResult] | None = None,
) -> Path:
    """Write `results_summary.csv` (atomically) and return its path.

    Raises:
        MissingResultsError: see `summary_rows`.
    """
    rows = summary_rows(
        output_dir,
        state,
        codec,
        ignore_missing=ignore_missing,
        add_timing=add_timing,
        known=known,
    )
    columns = summary_columns(rows, add_timing=add_timing)
    path = layout.summary_file_path(output_dir)
    atomic_write(path, csv_text(rows, columns))
    save_totals(output_dir, recorded=budget_totals(rows))
    return path


def budget_totals(rows: list[dict[str, Any]]) -> dict[str, float]:
    """The budget columns of summary rows, summed: what their results account for."""
    totals = dict.fromkeys(SUMMARY_BUDGET_ORDER, 0.0)
    for row in rows:
        for field in SUMMARY_BUDGET_ORDER:
            prefixed = f"{SPENT_PREFIX}{field}"
            value = row[prefixed] if prefixed in row else row.get(field)
            totals[field] += value or 0
    return totals


TOTALS_COLUMN: Final = "total"


def totals_text(paid: Mapping[str, float], recorded: Mapping[str, float]) -> str:
    """`results_totals.csv`: a `total` column naming each row, then the budget
    columns in the summary's order."""
    rows = []
    for label, amounts in ((PAID_IN_TOTAL, paid), (RECORDED_IN_TOTAL, recorded)):
        row: dict[str, Any] = {TOTALS_COLUMN: label}
        for field in SUMMARY_BUDGET_ORDER:
            value = float(amounts.get(field, 0))
            # Counts are whole numbers; the ledger's JSON gives them back as floats.
            if field != "price" and value.is_integer():
                row[field] = int(value)
            else:
                # A sum of many ledger lines: `0.13244`, not `0.13244000000000003`.
                row[field] = round(value, 12)
        rows.append(row)
    return csv_text(rows, [TOTALS_COLUMN, *SUMMARY_BUDGET_ORDER])


def save_totals(output_dir: Path, *, recorded: Mapping[str, float]) -> Path:
    """Write `results_totals.csv` (atomically) beside the summary: what the ledger
    says was paid in total, and what the `recorded` results account for. The summary
    keeps one row per config, as Delphyne's analysis code reads it."""
    paid = total_paid(read_payments(output_dir))
    path = output_dir / layout.TOTALS_FILE
    atomic_write(path, totals_text(paid, recorded))
    return path


def load_summary(output_dir: Path) -> pandas.DataFrame:
    """Read `results_summary.csv` into a DataFrame.

    Raises:
        MissingSummaryError: it was never saved.
    """
    import pandas

    path = layout.summary_file_path(output_dir)
    if not path.exists():
        raise MissingSummaryError(path)
    return pandas.read_csv(path)
