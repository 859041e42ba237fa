"""What the controller records results for: each experiment of the session, and which
of their configs a report is about.

A `RecordedExperiment` holds one experiment's plan and what the session learns of it
(the configs running, the results reported, the problems met). `ConfigsToRecord`
finds the config a report's node id names, also for a report that carries no result
(a crashed worker, a failing setup). The recorder (`recorder.py`) writes the state.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from functools import cached_property
from typing import TYPE_CHECKING, Any

from pytest_delphyne.selection import SelectionOptions, decide_action
from pytest_delphyne.state import ConfigUpdate, params_key

if TYPE_CHECKING:
    from pathlib import Path

    from pytest_delphyne.experiment import Experiment
    from pytest_delphyne.lock import RunLock
    from pytest_delphyne.state import Status
    from pytest_delphyne.summary import KnownResult
    from pytest_delphyne.wire import ExperimentPlan


def parse_time(value: str | None) -> datetime | None:
    return datetime.fromisoformat(value) if value else None


@dataclass
class RecordedExperiment:
    """One experiment the controller records results for."""

    attr: str
    path: Path
    experiment: Experiment[Any]
    plan: ExperimentPlan
    running: dict[str, datetime] = field(default_factory=dict)
    summary_path: Path | None = None
    # The results reported this session, so the summary need not read their files.
    results: dict[str, KnownResult] = field(default_factory=dict)
    # Why something the recorder had to write could not be written, for the summary.
    problems: list[str] = field(default_factory=list)
    # The run lock held on the output directory, checked before the fold.
    lock: RunLock | None = None
    _planned_params: dict[str, dict[str, Any]] | None = None
    _params_keys: dict[str, str] = field(default_factory=dict)

    @property
    def key(self) -> str:
        return self.plan["key"]

    @cached_property
    def output_dir(self) -> Path:
        """The experiment's output directory, as the session locked it (anchoring
        it again for each result would cost a path resolution per config)."""
        return self.experiment.absolute_output_dir

    def params_key(self, name: str) -> str | None:
        """The key of the params config `name` runs with, as planned (`None` for a
        config outside the plan)."""
        if self._planned_params is None:
            self._planned_params = {
                planned["name"]: planned["params"] for planned in self.plan["configs"]
            }
        key = self._params_keys.get(name)
        if key is None and name in self._planned_params:
            key = self._params_keys[name] = params_key(self._planned_params[name])
        return key

    def update(
        self,
        name: str,
        status: Status,
        start: datetime | None,
        end: datetime | None = None,
        *,
        interrupted: datetime | None = None,
    ) -> ConfigUpdate:
        """The journal record of config `name`'s new status and times, applied only
        while the state holds the params it was planned with."""
        return ConfigUpdate(
            name, status, start, end, interrupted, self.params_key(name)
        )


class ConfigsToRecord:
    """The configs this session runs, whose results change the state, by item name.

    Arguments:
        experiments: the session's experiments.
        options: the session's selection options (replays, skips and stored
            failures are not run, so never recorded).
        rootpath: the directory node ids are relative to.
    """

    def __init__(
        self,
        experiments: list[RecordedExperiment],
        options: SelectionOptions,
        rootpath: Path,
    ) -> None:
        self.rootpath = rootpath
        # "attr[name]" -> candidates, to map node ids of reports without a payload
        # (a crashed worker, a failing setup) back to their config.
        self._by_item_name: dict[str, list[tuple[RecordedExperiment, str]]] = {}
        for exp in experiments:
            for planned in exp.plan["configs"]:
                if decide_action(planned["status"], options) != "run":
                    # Replays, skips and stored failures never change the state.
                    continue
                item_name = f"{exp.attr}[{planned['name']}]"
                self._by_item_name.setdefault(item_name, []).append(
                    (exp, planned["name"])
                )
        self.count = sum(len(found) for found in self._by_item_name.values())
        """How many configs the session runs."""

    def config_of(self, nodeid: str) -> tuple[RecordedExperiment, str] | None:
        """The experiment and the name of the config the item `nodeid` runs
        (`None` for an item that runs none)."""
        path, _, item_name = nodeid.rpartition("::")
        candidates = self._by_item_name.get(item_name)
        if not candidates:
            return None
        if len(candidates) == 1:
            return candidates[0]
        file_path = (self.rootpath / path).resolve()
        for exp, name in candidates:
            if exp.path == file_path:
                return exp, name
        return None
