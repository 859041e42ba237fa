"""A result on disk is a result (SPEC §3): configs the state says are `todo` whose
complete `result.yaml` matches their params are recorded `done` at load, not run
again; those whose program raised (`exception.txt`, and `failure.yaml` with params
that match) are recorded `failed`, rerun by `--lf` only.

A config's runner writes its `result.yaml` before it reports; the controller records
the report afterwards. A controller killed in between (stalled by a closed laptop lid
or a debugger while its workers went on, then killed) leaves finished configs `todo`:
their results are on disk, and their calls paid for. Loading finds them.
"""

from __future__ import annotations

import os
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any, TypeVar

from pytest_delphyne import layout
from pytest_delphyne.identity import ConfigParamsError
from pytest_delphyne.results import ResultFileError, read_failure, read_result
from pytest_delphyne.state import ConfigUpdate
from pytest_delphyne.state_store import (
    SET_ASIDE_KEPT,
    SET_ASIDE_MESSAGE,
    SET_ASIDE_PENDING,
)

if TYPE_CHECKING:
    from pathlib import Path

    from pytest_delphyne.identity import ConfigCodec
    from pytest_delphyne.state import ExperimentState, Status

C = TypeVar("C")

RECOVERED_MESSAGE = "recorded from its result file, not run again: {names}"
RECOVERABLE_MESSAGE = (
    "a complete result file, recorded by the next run instead of running: {names}"
)


def _utc(time: Any) -> datetime | None:
    if not isinstance(time, datetime):
        return None
    # A naive time in a result file is UTC, as `write_result` writes it.
    return time.replace(tzinfo=UTC) if time.tzinfo is None else time.astimezone(UTC)


def recover_results(
    output_dir: Path, state: ExperimentState[C], codec: ConfigCodec[C]
) -> list[str]:
    """Record `done` in `state` each `todo` config whose `result.yaml` is complete
    (its name, params and times) and whose params are the state's, and `failed`
    each one with no `result.yaml` but its `exception.txt` and a complete
    `failure.yaml` of the state's params; their names.

    Only configs with a directory are looked at (one listing of `configs/`).
    """
    try:
        present = os.listdir(output_dir / layout.CONFIGS_DIR)
    except (FileNotFoundError, NotADirectoryError):
        return []
    recovered: list[str] = []
    for name in present:
        info = state.configs.get(name)
        if info is None or info.status != "todo":
            continue
        found = _found_on_disk(layout.config_dir(output_dir, name))
        if found is None:
            continue
        status, ran_name, params, start, end = found
        if ran_name != name or start is None or end is None:
            continue
        try:
            ran = codec.canonical_key(codec.load(params, config_name=name))
        except ConfigParamsError:
            continue
        if ran != codec.canonical_key(info.params):
            continue  # a result of other params (the state was edited since)
        state.apply(
            ConfigUpdate(name=name, status=status, start_time=start, end_time=end)
        )
        recovered.append(name)
    return sorted(recovered)


def _found_on_disk(
    directory: Path,
) -> tuple[Status, str | None, dict[str, Any], datetime | None, datetime | None] | None:
    """What a config's files say its last run ended with, if they say it."""
    try:
        result = read_result(directory)
    except ResultFileError as error:
        if not error.missing:
            return None
    else:
        return (
            "done",
            result.config_name,
            result.params,
            _utc(result.start_time),
            _utc(result.end_time),
        )
    if not (directory / layout.EXCEPTION_FILE).exists():
        return None
    try:
        failure = read_failure(directory)
    except ResultFileError:
        return None
    return (
        "failed",
        failure.config_name,
        failure.params,
        _utc(failure.start_time),
        _utc(failure.end_time),
    )


def describe_set_aside(output_dir: Path, names: list[str], *, kept: bool) -> str:
    """What a load set aside of the journal of `output_dir` (the configs `names`
    its records name), for a person; `kept`: the aside file holds them already
    (a reader that writes nothing leaves them to the next run)."""
    return SET_ASIDE_MESSAGE.format(
        count=len(names),
        state_file=layout.state_file_path(output_dir),
        names=", ".join(names),
        kept=SET_ASIDE_KEPT if kept else SET_ASIDE_PENDING,
        aside_file=output_dir / layout.JOURNAL_ASIDE_FILE,
    )
