"""The settings of a config's run that several places may set, as one record.

A `Run` sets its log level and exports; the `Experiment` overrides them; the ini file,
the command line (`--delphyne-log-level`, `--delphyne-no-cache`, ...) and the CLI
(`run --log-level`, `--no-cache`) override the experiment. Each level is one
`RunSettings`, built once where it is read, and `over` stacks them: a field left
`None` keeps the level below.
"""

from __future__ import annotations

from dataclasses import dataclass, fields
from typing import TYPE_CHECKING, Any, TypeVar

if TYPE_CHECKING:
    from pytest_delphyne.environment import LogLevel

T = TypeVar("T")


@dataclass(frozen=True)
class RunSettings:
    """Settings of a config's run; `None` keeps what the level below says.

    Attributes:
        cache_requests: record and replay oracle calls (default True).
        log_level: the lowest level of the log messages kept (default "info").
        export_log: write `log.txt` (default True).
        export_raw_trace: write `trace.yaml` (default False).
        export_browsable_trace: write `trace.html` (default False).
        verbose_snapshots: put each running config's recent log in interactive
            snapshots (default False).
    """

    cache_requests: bool | None = None
    log_level: LogLevel | None = None
    export_log: bool | None = None
    export_raw_trace: bool | None = None
    export_browsable_trace: bool | None = None
    verbose_snapshots: bool | None = None

    def over(self, below: RunSettings) -> RunSettings:
        """These settings, with `below`'s where these say nothing."""
        return RunSettings(
            **{
                name: _first(getattr(self, name), getattr(below, name))
                for name in SETTING_NAMES
            }
        )

    def given(self) -> dict[str, Any]:
        """The settings that are set, by name."""
        return {
            name: value
            for name in SETTING_NAMES
            if (value := getattr(self, name)) is not None
        }


SETTING_NAMES: tuple[str, ...] = tuple(field.name for field in fields(RunSettings))

DEFAULT_SETTINGS = RunSettings(
    cache_requests=True,
    log_level="info",
    export_log=True,
    export_raw_trace=False,
    export_browsable_trace=False,
    verbose_snapshots=False,
)
"""What a run does when no level says otherwise."""


def _first(value: T | None, fallback: T | None) -> T | None:
    return fallback if value is None else value
