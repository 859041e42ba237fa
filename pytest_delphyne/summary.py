"""`results_summary.csv`: one row per config, read from its `result.yaml`.

Columns: the config's params (nested fields flattened as `outer.inner`), then
`success`, `num_completions`, `num_requests`, `input_tokens`, `cached_input_tokens`,
`output_tokens`, `price`, `duration` (with `add_timing`), and `config_name`.

The file is written with the standard library's csv module, as pandas' `to_csv` would
write it (a test holds the two to the same bytes): importing pandas costs about half a
second, which the end of every run need not pay. pandas is imported only to read the
summary back (`load_summary`).
"""

from __future__ import annotations

import csv
import io
import json
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, TypeVar

import yaml

from pytest_delphyne import layout
from pytest_delphyne.errors import DelphyneError
from pytest_delphyne.files import atomic_write
from pytest_delphyne.identity import ConfigCodec
from pytest_delphyne.state import ExperimentState

if TYPE_CHECKING:
    import pandas

C = TypeVar("C")

BUDGET_COLUMNS = (
    "num_completions",
    "num_requests",
    "input_tokens",
    "cached_input_tokens",
    "output_tokens",
    "price",
)
MISSING_RESULTS_MESSAGE = (
    "{count} config(s) of {output_dir} have no result yet: {names}. Run them first, "
    "or ask for a partial summary (ignore_missing=True, or the CLI's force-summary)."
)
INVALID_RESULT_MESSAGE = "{path}: not a valid result file ({problem})"
NO_SUMMARY_MESSAGE = "No summary at {path}: save_summary() writes it"
_NAMES_SHOWN = 10

_Loader: type[yaml.SafeLoader] = getattr(yaml, "CSafeLoader", yaml.SafeLoader)


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


class ResultFileError(DelphyneError):
    """A `result.yaml` that cannot be read."""

    def __init__(self, path: Path, problem: str):
        self.path = path
        super().__init__(INVALID_RESULT_MESSAGE.format(path=path, problem=problem))


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


def read_result_file(path: Path) -> dict[str, Any]:
    """The content of a `result.yaml` (safe YAML).

    Raises:
        FileNotFoundError: there is none.
        ResultFileError: it is not YAML, or has no `outcome.result` mapping.
    """
    text = path.read_text(encoding="utf-8")
    try:
        data = yaml.load(text, Loader=_Loader)  # _Loader is a safe loader
    except yaml.YAMLError as exc:
        raise ResultFileError(path, str(exc)) from None
    if not isinstance(data, dict):
        raise ResultFileError(path, "not a mapping")
    outcome = data.get("outcome")
    if not isinstance(outcome, dict) or not isinstance(outcome.get("result"), dict):
        raise ResultFileError(path, "no 'outcome.result' mapping")
    return data


def flatten_params(params: Mapping[str, Any], prefix: str = "") -> dict[str, Any]:
    """Nested mappings become `outer.inner` keys; lists become JSON text."""
    flat: dict[str, Any] = {}
    for key, value in params.items():
        column = f"{prefix}{key}"
        if isinstance(value, Mapping):
            flat.update(flatten_params(value, prefix=f"{column}."))
        elif isinstance(value, list | tuple):
            flat[column] = json.dumps(value)
        else:
            flat[column] = value
    return flat


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

    `known` results are taken as they are instead of reading their files again
    (except for a duration, which they do not carry).

    Raises:
        MissingResultsError: some configs have no result (not done, or no file), and
            `ignore_missing` is false; the error names them.
    """
    rows: list[dict[str, Any]] = []
    missing: list[str] = []
    known = {} if known is None or add_timing else known
    for name, info in state.configs.items():
        if info.status != "done":
            missing.append(name)
            continue
        recorded = known.get(name)
        if recorded is not None:
            success, spent = recorded.success, recorded.spent_budget
        else:
            path = layout.result_file_path(output_dir, name)
            try:
                data = read_result_file(path)
            except FileNotFoundError:
                missing.append(name)
                continue
            result = data["outcome"]["result"]
            success, spent = result.get("success"), result.get("spent_budget") or {}
        row = flatten_params(codec.dump(info.params))
        row["success"] = bool(success)
        for column in BUDGET_COLUMNS:
            row[column] = spent.get(column)
        if add_timing:
            row["duration"] = data.get("duration")
        row["config_name"] = name
        rows.append(row)
    if missing and not ignore_missing:
        raise MissingResultsError(output_dir, missing)
    return rows


def summary_columns(rows: list[dict[str, Any]], *, add_timing: bool) -> list[str]:
    """Params columns in order of appearance, then the result columns."""
    fixed = ["success", *BUDGET_COLUMNS, *(["duration"] if add_timing else [])]
    fixed.append("config_name")
    params: dict[str, None] = {}
    for row in rows:
        params.update(dict.fromkeys(key for key in row if key not in fixed))
    return [*params, *fixed]


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
