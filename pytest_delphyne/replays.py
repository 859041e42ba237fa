"""Replaying a config from its cache, and its outcome beside the recorded one.

`replay(run_factory, directory)` runs the same config again (`runtime.execute`) in
`replay` mode (every oracle call answered from the cache, no file written; for a
config that raised, the call that raised may be made again, see `replay`) and compares
the outcome with the recorded one.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from pytest_delphyne import layout
from pytest_delphyne.results import RecordedResult, read_result
from pytest_delphyne.runtime import RunOptions, RunRecord, execute
from pytest_delphyne.settings import RunSettings

if TYPE_CHECKING:
    from collections.abc import Callable

    from pytest_delphyne.environment import LogLevel
    from pytest_delphyne.ledger import LedgerWriter
    from pytest_delphyne.runtime import Run


@dataclass(frozen=True)
class ReplayReport:
    """Whether replaying a config from its cache gave the recorded outcome.

    Attributes:
        matches: True when success and values (or, for a failed config, the raised
            exception's type) are the recorded ones.
        recorded: the recorded result; None for a config that raised.
        recorded_traceback: the content of `exception.txt` for a config that raised.
        replayed: the replay's record (its `exception` is live: re-raise it to debug).
        differences: one sentence per difference.
    """

    matches: bool
    recorded: RecordedResult | None
    recorded_traceback: str | None
    replayed: RunRecord
    differences: tuple[str, ...]


def replay(
    run_factory: Callable[[], Run],
    directory: Path,
    *,
    config_name: str | None = None,
    log_level: LogLevel | None = None,
    ledger: LedgerWriter | None = None,
) -> ReplayReport:
    """Run a config again from its cache (`replay` mode) and compare the outcomes.

    Nothing is written. For a config that finished, no oracle call is made: a call
    that the recorded run did not make fails the replay with a `CacheMissError`. A
    config that raised may have raised inside a call, which then has no recorded
    answer: it is replayed in `replay_first_miss_live` mode, where the first call
    missing from the cache is made again (and not recorded), so that the replay
    raises where the run raised; any further missing call is a `CacheMissError`.
    That call is paid: `ledger`, if given, counts it.

    Raises:
        ResultFileError: the directory holds neither `result.yaml` nor `exception.txt`.
    """
    directory = Path(directory)
    recorded: RecordedResult | None = None
    recorded_traceback: str | None = None
    exception_path = directory / layout.EXCEPTION_FILE
    if (directory / layout.RESULT_FILE).exists() or not exception_path.exists():
        recorded = read_result(directory)
    else:
        recorded_traceback = exception_path.read_text("utf-8")
    name = config_name or (recorded and recorded.config_name) or directory.name
    options = RunOptions(
        config_name=name,
        directory=directory,
        cache_mode="replay" if recorded_traceback is None else "replay_first_miss_live",
        params=recorded.params if recorded else {},
        settings=RunSettings(log_level=log_level),
        write_files=False,
        ledger=ledger,
    )
    replayed = execute(run_factory, options)
    differences: list[str] = []
    raised = _last_line(replayed.traceback) if replayed.traceback else None
    if recorded_traceback is not None:
        was = _last_line(recorded_traceback)
        if raised is None:
            differences.append(f"recorded run raised {was}; the replay did not")
        elif raised.split(":")[0] != was.split(":")[0]:
            differences.append(f"recorded run raised {was}; the replay raised {raised}")
    elif recorded is not None:
        if raised is not None:
            differences.append(f"the replay raised {raised}")
        if replayed.success != recorded.success:
            differences.append(
                f"success: recorded {recorded.success}, replayed {replayed.success}"
            )
        if replayed.values != recorded.values:
            differences.append(
                f"values: recorded {recorded.values!r}, replayed {replayed.values!r}"
            )
    return ReplayReport(
        not differences, recorded, recorded_traceback, replayed, tuple(differences)
    )


def _last_line(text: str) -> str:
    lines = text.strip().splitlines()
    return lines[-1] if lines else ""
