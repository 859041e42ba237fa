"""A config's `result.yaml`: its one writer, its one reader and their error.

A config that ran to its end (successful or not) has a `result.yaml` in its directory:

    config_name: <name>
    params: {...}              # the config, as plain data
    start_time: 2024-05-01 12:00:00+00:00
    end_time: ...
    duration: 1.5              # seconds
    outcome:
      result:
        success: true
        values: [...]          # what the program returned, as plain data
        spent_budget: {num_requests: 2, ...}   # in `BUDGET_FIELDS` order

The runtime writes it (`write_result`); the replay, the summary, the spend totals and
`Experiment.config_success_values` read it back (`read_result`).

A config whose program raised has no `result.yaml` but its `exception.txt`, and beside
it a `failure.yaml` (`write_failure`, `read_failure`): its name, params and times, so
that a load finds the failure on disk as it finds a result (`recovery.py`).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any, Final

import yaml

from pytest_delphyne import layout
from pytest_delphyne.environment import Budget
from pytest_delphyne.errors import DelphyneError
from pytest_delphyne.files import atomic_write
from pytest_delphyne.plain_data import dump_yaml, load_yaml, plain_copy
from pytest_delphyne.yaml_writer import block_yaml

RESULT_FILE_MESSAGE: Final = "{path}: {problem}"
NO_RESULT_PROBLEM: Final = "no such result file"
NOT_A_RESULT_PROBLEM: Final = "not a result file ({problem})"

# `dump_yaml` folds lines longer than 100 characters; shorter ones come out the same.
_RESULT_LINE_LIMIT: Final = 90


class ResultFileError(DelphyneError):
    """A config's `result.yaml` is missing, corrupt, or not a result.

    Attributes:
        path: the file.
        missing: True when there is no file at all (a config without a result yet).
    """

    def __init__(self, path: Path, problem: str, *, missing: bool = False):
        self.path = path
        self.missing = missing
        super().__init__(RESULT_FILE_MESSAGE.format(path=path, problem=problem))


@dataclass(frozen=True)
class RecordedResult:
    """A config's `result.yaml` (see `read_result` and `write_result`).

    Only `outcome.result` is required of a file: a result written by Delphyne itself
    has neither the config's name, nor its params, nor times (`None`, or empty
    params, when absent).
    """

    config_name: str | None
    params: dict[str, Any]
    success: bool
    values: list[Any]
    spent: Budget
    start_time: datetime | None
    end_time: datetime | None
    duration: float | None


def write_result(directory: Path, result: RecordedResult) -> None:
    """Write the `result.yaml` of a config's directory, atomically.

    Raises:
        NotPlainDataError: the params are not plain data.
    """
    data = {
        **_run_header(
            result.config_name, result.params, result.start_time, result.end_time
        ),
        "duration": result.duration,
        "outcome": {
            "result": {
                "success": result.success,
                "values": result.values,
                "spent_budget": result.spent.as_dict(),
            }
        },
    }
    # Written directly in the dumper's layout (10x cheaper per config), unless the
    # dumper would fold a long line or write a literal block.
    text = block_yaml(data, max_line=_RESULT_LINE_LIMIT, multiline=False)
    if text is None:
        text = dump_yaml(data)
    # Not fsynced, as every per-config file (see `files`): one per config would cost
    # more than most configs.
    atomic_write(directory / layout.RESULT_FILE, text, durable=False)


def _run_header(
    config_name: str | None,
    params: Mapping[str, Any],
    start_time: datetime | None,
    end_time: datetime | None,
) -> dict[str, Any]:
    """What `result.yaml` and `failure.yaml` both begin with: the run's config."""
    return {
        "config_name": config_name,
        "params": plain_copy(dict(params), f"the params of config {config_name}"),
        "start_time": start_time,
        "end_time": end_time,
    }


def _read_yaml(path: Path) -> Any:
    """The data of a config's result or failure file.

    Raises:
        ResultFileError: missing (`missing` True) or not YAML, naming the file.
    """
    try:
        text = path.read_text("utf-8")
    except FileNotFoundError:
        raise ResultFileError(path, NO_RESULT_PROBLEM, missing=True) from None
    try:
        return load_yaml(text)
    except yaml.YAMLError as error:
        problem = f"corrupt YAML: {error}"
        raise ResultFileError(
            path, NOT_A_RESULT_PROBLEM.format(problem=problem)
        ) from None


def read_result(directory: Path) -> RecordedResult:
    """Read the `result.yaml` of a config's directory.

    Raises:
        ResultFileError: missing (its `missing` is then True), corrupt, or without
            the expected keys, naming the file and what is wrong.
    """
    path = Path(directory) / layout.RESULT_FILE
    data = _read_yaml(path)
    outcome = data.get("outcome") if isinstance(data, dict) else None
    result = outcome.get("result") if isinstance(outcome, dict) else None
    if not isinstance(result, dict):
        problem = "no 'outcome.result' mapping"
        raise ResultFileError(path, NOT_A_RESULT_PROBLEM.format(problem=problem))
    spent = result.get("spent_budget") or {}
    if not isinstance(spent, dict):
        problem = "its 'spent_budget' is not a mapping"
        raise ResultFileError(path, NOT_A_RESULT_PROBLEM.format(problem=problem))
    return RecordedResult(
        config_name=data.get("config_name"),
        params=data.get("params") or {},
        success=bool(result.get("success")),
        values=result.get("values") or [],
        spent=Budget.from_dict(spent),
        start_time=data.get("start_time"),
        end_time=data.get("end_time"),
        duration=data.get("duration"),
    )


@dataclass(frozen=True)
class RecordedFailure:
    """A config's `failure.yaml`: the run that raised (its traceback is beside it)."""

    config_name: str
    params: dict[str, Any]
    start_time: datetime
    end_time: datetime


def write_failure(directory: Path, failure: RecordedFailure) -> None:
    """Write the `failure.yaml` of a config's directory, atomically.

    Raises:
        NotPlainDataError: the params are not plain data.
    """
    data = _run_header(
        failure.config_name, failure.params, failure.start_time, failure.end_time
    )
    atomic_write(directory / layout.FAILURE_FILE, dump_yaml(data), durable=False)


def read_failure(directory: Path) -> RecordedFailure:
    """Read the `failure.yaml` of a config's directory.

    Raises:
        ResultFileError: missing (`missing` True), corrupt or incomplete.
    """
    path = Path(directory) / layout.FAILURE_FILE
    data = _read_yaml(path)
    if not isinstance(data, dict):
        raise ResultFileError(path, NOT_A_RESULT_PROBLEM.format(problem="no mapping"))
    name, params = data.get("config_name"), data.get("params")
    start, end = data.get("start_time"), data.get("end_time")
    if not (
        isinstance(name, str)
        and isinstance(params, dict)
        and isinstance(start, datetime)
        and isinstance(end, datetime)
    ):
        problem = "no config_name, params, start_time and end_time"
        raise ResultFileError(path, NOT_A_RESULT_PROBLEM.format(problem=problem))
    return RecordedFailure(name, params, start, end)
