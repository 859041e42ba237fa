"""`Experiment`: a grid of configurations of an oracular program, and its state.

A façade keeping the reference's API, each method handing over to the module that
owns its concern: `state_updates` (what `load()` and the edits write), `roster` (names),
`past_runs` (replays, success values), `summary`, `report`, `script_experiment` (the
file behind an experiment). The pytest plugin runs configs (`resume()`, `run_cli()`).
"""

from __future__ import annotations

import sys
import uuid
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from functools import cached_property
from pathlib import Path
from typing import TYPE_CHECKING, Any, Generic, TypeVar

from pytest_delphyne import layout, summary
from pytest_delphyne.configs import ExecutionContext, ExperimentConfig, WorkersSetup
from pytest_delphyne.identity import ConfigCodec, codec_for
from pytest_delphyne.past_runs import (
    name_of_config,
    replay_all,
    replay_by_name,
    success_values,
)
from pytest_delphyne.roster import Roster, config_names, names_in_state
from pytest_delphyne.script_experiment import defining_file, hand_over_if_captured
from pytest_delphyne.settings import SETTING_NAMES, RunSettings
from pytest_delphyne.state import ExperimentState
from pytest_delphyne.state_store import StateStore
from pytest_delphyne.state_updates import (
    UnlistedConfigsWarning as UnlistedConfigsWarning,  # `load()` warns with it
)
from pytest_delphyne.state_updates import (
    load_into_state,
    mark_failed_as_todo,
    remove_unlisted,
)

if TYPE_CHECKING:
    from typing import Self

    import pandas

    from pytest_delphyne.replays import ReplayReport
    from pytest_delphyne.runtime import LogLevel

C = TypeVar("C", bound=ExperimentConfig)


@dataclass(kw_only=True)
class Experiment(Generic[C]):
    """An experiment running an oracular program on a grid of configurations.

    The persistent state (`experiment.yaml` in `output_dir`) records each config and
    its status, so that an experiment can be interrupted, resumed, and its failed
    configs retried. `load()` creates or updates it; the pytest plugin runs configs.

    Attributes:
        config_class: The configuration class: a dataclass with an `instantiate`
            method (see `ExperimentConfig`).
        context: Where the experiment runs (see `ExecutionContext`).
        output_dir: The directory holding everything the experiment writes. A
            relative path is relative to `context.workspace_root` or, without one, to
            the directory of the Python file that creates the experiment (never the
            current directory).
        configs: The configurations to run; `None` means those of the state.
        configs_context: A value passed to every config's `instantiate`. It must be
            picklable since it is sent to worker processes.
        name: The experiment's name, stored in the state file and otherwise unused.
        description: Its description, stored in the state file and otherwise unused.
        config_naming: Maps a config and a fresh UUID to the config's name (a
            directory name and a test id). By default, the UUID alone.
        cache_requests: Whether to cache LLM requests and expensive computations, so
            that configs can be replayed without calling them (default `True`).
        workers_setup: Setup work every process running configs needs.
        log_level: Minimum level of the messages logged (overrides the `Run`'s).
        export_raw_trace: Whether to export each run's raw trace (overrides the
            `Run`'s).
        export_log: Whether to export each run's log messages (overrides the `Run`'s).
        export_browsable_trace: Whether to export a trace a person can browse
            (overrides the `Run`'s).
        verbose_snapshots: Whether snapshots of ongoing configs include their full
            traces.

    !!! tip
        New hyperparameters can be added to the config class without invalidating
        an existing state, by giving them defaults.
    """

    config_class: type[C]
    context: ExecutionContext = field(default_factory=ExecutionContext)
    output_dir: Path | str
    configs: Sequence[C] | None = None
    configs_context: object | None = None
    name: str | None = None
    description: str | None = None
    config_naming: Callable[[C, uuid.UUID], str] | None = None
    cache_requests: bool = True
    workers_setup: WorkersSetup[Any] | None = None
    log_level: LogLevel | None = None
    export_raw_trace: bool | None = None
    export_log: bool | None = None
    export_browsable_trace: bool | None = None
    verbose_snapshots: bool | None = None
    defined_in: Path | None = field(init=False, compare=False)
    """The Python file that created the experiment (`None` in an interactive
    session)."""
    _cwd: Path = field(init=False, repr=False, compare=False)
    _roster: Roster = field(
        init=False, default_factory=Roster, repr=False, compare=False
    )
    # The configs the last `load()` recorded from their result files, and those
    # whose journal records it set aside (no longer fitting the state).
    recovered: list[str] = field(
        init=False, default_factory=list, repr=False, compare=False
    )
    set_aside: list[str] = field(
        init=False, default_factory=list, repr=False, compare=False
    )

    def __post_init__(self) -> None:
        self.defined_in = defining_file()
        self._cwd = Path.cwd()

    @property
    def absolute_output_dir(self) -> Path:
        """The output directory, anchored at `context.workspace_root` or else at the
        directory of the file that created the experiment."""
        anchor = self.context.workspace_root
        if anchor is None:
            anchor = (
                self.defined_in.parent if self.defined_in is not None else self._cwd
            )
        return layout.anchored_output_dir(self.output_dir, anchor)

    @property
    def codec(self) -> ConfigCodec[C]:
        """The codec of `config_class` (plain data, canonical keys)."""
        return codec_for(self.config_class)

    @property
    def settings(self) -> RunSettings:
        """The experiment's own settings of its configs' runs (`None`: the `Run`'s)."""
        # Its fields are the experiment's attributes of the same names.
        return RunSettings(**{name: getattr(self, name) for name in SETTING_NAMES})

    @cached_property
    def store(self) -> StateStore[C]:
        """The store of the persistent state."""
        return StateStore(self.absolute_output_dir, self.codec)

    def config_dir(self, name: str) -> Path:
        """The directory of a config's files."""
        return layout.config_dir(self.absolute_output_dir, name)

    @property
    def summary_file_path(self) -> Path:
        """The path of `results_summary.csv`."""
        return layout.summary_file_path(self.absolute_output_dir)

    def result_file_path(self, config_name: str) -> Path:
        """The path of a config's `result.yaml`."""
        return layout.result_file_path(self.absolute_output_dir, config_name)

    def load_state(self) -> ExperimentState[C]:
        """The persistent state, as on disk (with the journal applied).

        Raises:
            StateFileError: there is none yet (`load()` creates it), or it is corrupt.
        """
        return self.store.load()

    def load(self) -> Self:
        """Load the experiment, creating or updating its persistent state.

        Without a state on disk, one is created with every config `todo`. Configs of
        `configs` missing from the state are added as `todo`, named by
        `config_naming`. Configs of the state that `configs` no longer lists are kept,
        with an `UnlistedConfigsWarning` (`clean_index()` removes them). Every name is
        checked before anything is written. Recorded results are folded into
        `experiment.yaml` unless another process is running the experiment, and so
        are the results on disk of `todo` configs that match their params (a
        controller killed before it recorded them): `recovered` names them.

        Returns:
            `self`, for chaining.

        Raises:
            InvalidConfigError: a config that is not a `config_class` instance, or a
                name given to two different configs.
            InvalidConfigNameError: a name that cannot be a directory name.
            StateFileError, ConfigParamsError: an unreadable state.
            ExperimentLockedError: configs must be added while another process runs
                the experiment.
        """
        self._roster.forget()
        loaded = load_into_state(self)
        self.recovered, self.set_aside = loaded.recovered, loaded.set_aside
        self._roster.remember(self.configs, loaded.names, loaded.params)
        return self

    def plain_params(self, name: str, params: C) -> dict[str, Any]:
        """The params of the config `name` as plain data (`params`, dumped, unless
        the last `load()` dumped them already)."""
        plain: dict[str, Any] = self._roster.plain_params(name, params, self.codec.dump)
        return plain

    def names_in_state(self) -> tuple[list[str], int]:
        """The state's names of the configs of `configs` it has, in order, and how
        many it lacks (`load()` would name and add them, which takes the lock:
        readers call this instead while a run holds it).

        Raises:
            StateFileError: there is no state yet.
        """
        return names_in_state(self.load_state(), self.configs)

    def config_names(self) -> list[str]:
        """The name of each config of `configs`, in order; without `configs`, the
        name of each config of the state.

        After `load()`, these are the names it found or gave (nothing is recomputed,
        unless `configs` was replaced or resized since); otherwise each config is
        looked up in the state by its canonical form.

        Raises:
            StateFileError: there is no state yet (`load()` creates it).
            UnknownConfigError: a config of `configs` is not in the state.
        """
        remembered = self._roster.names(self.configs)
        if remembered is not None:
            return remembered
        return config_names(self.load_state(), self.configs, self.store.state_file)

    def is_done(self) -> bool:
        """Whether every config of the state is `done`."""
        return all(info.status == "done" for info in self.load_state().configs.values())

    def clean_index(self) -> None:
        """Remove from the state every config that `configs` does not list.

        Raises:
            ExperimentLockedError: another process is running the experiment.
        """
        remove_unlisted(self)

    def mark_errors_as_todos(self) -> None:
        """Mark every `failed` config as `todo`, to be run again.

        Raises:
            ExperimentLockedError: another process is running the experiment.
        """
        mark_failed_as_todo(self)

    def get_status(self) -> dict[str, int]:
        """How many configs are `todo`, `done` and `failed`."""
        return self.load_state().status_counts()

    def save_summary(
        self, ignore_missing: bool = False, add_timing: bool = False
    ) -> None:
        """Write `results_summary.csv`, one row per config.

        Arguments:
            ignore_missing: leave out configs without a result instead of failing.
            add_timing: add a `duration` column (seconds).

        Raises:
            MissingResultsError: some configs have no result and not `ignore_missing`.
        """
        summary.save_summary(
            self.absolute_output_dir,
            self.load_state(),
            self.codec,
            ignore_missing=ignore_missing,
            add_timing=add_timing,
        )

    def load_summary(self) -> pandas.DataFrame:
        """The summary written by `save_summary`, as a DataFrame."""
        return summary.load_summary(self.absolute_output_dir)

    def report(
        self,
        path: Path | str | None = None,
        group_by: str | Sequence[str] | None = None,
    ) -> Path:
        """Write the experiment's report: one self-contained HTML page with status and
        spend, success rate by hyperparameter, scaling curves, durations, failures and
        links to each config's files. It works on a partial experiment too.

        Arguments:
            path: where to write it (default: `report.html` in the output directory).
            group_by: the hyperparameters whose values each get their own scaling
                curve, as names or as `"model,temperature"`.

        Returns:
            The path of the report.

        Raises:
            ReportDependencyError: matplotlib (the `report` extra) is not installed.
            UnknownGroupError: `group_by` names something that is not a
                hyperparameter.
        """
        from pytest_delphyne.report import write_experiment_report

        return write_experiment_report(self, path, group_by)

    def resume(
        self,
        max_workers: int = 1,
        log_progress: bool = True,
        interactive: bool = False,
        concurrency: int = 1,
    ) -> int:
        """Run every config whose status is "todo", through the pytest plugin.

        Each run marks its config "done" or, when it raised, "failed". Ctrl-C stops
        the run: the state is saved and running configs stay "todo" with their
        interruption time. The summary is written once every config is done.

        Arguments:
            max_workers: Parallel worker processes (xdist's `-n`); 1 runs in this
                process. Workers re-import the experiment file; an experiment defined
                under `if __name__ == "__main__":` is found by running the script in
                each worker up to its call of `resume()`.
            log_progress: Whether pytest reports progress (`-q` otherwise).
            interactive: Pressing Enter prints each running config's elapsed time and
                writes a snapshot under `<output_dir>/snapshots/`.
            concurrency: Configs in flight in each process, for programs that wait
                on models (`--delphyne-concurrency`); items are still reported one at
                a time, in order.

        Returns:
            pytest's exit code.
        """
        hand_over_if_captured(self)
        from pytest_delphyne.launcher import RunRequest, run_experiment

        return run_experiment(
            self,
            RunRequest(
                max_workers=max_workers,
                concurrency=concurrency,
                quiet=not log_progress,
                interactive=interactive,
            ),
        )

    def replay_config_by_name(self, config_name: str) -> ReplayReport:
        """Replay a config from its cache, without any LLM or tool call, to debug it
        after the fact (a failed config raises again where it raised).

        Nothing is written. The report says whether the replayed outcome is the
        recorded one. The one call a failed config may make again is the call that
        raised, which has no recorded answer; any other missing call fails the replay
        with a `CacheMissError`.

        Raises:
            UnknownConfigError: no config of that name.
        """
        return replay_by_name(self, config_name)

    def replay_config(self, config: C) -> ReplayReport:
        """Replay a config; see `replay_config_by_name`."""
        return replay_by_name(self, name_of_config(self, config))

    def replay_all_configs(self) -> dict[str, ReplayReport]:
        """Replay every config that ran (done or failed), replicating the experiment.

        Returns:
            Each replayed config's report, by name.
        """
        return replay_all(self)

    def run_cli(self, argv: Sequence[str] | None = None) -> None:
        """Run the command-line application that controls the experiment from the
        shell (`python exp.py run -n 4`, `status`, ...); see `ExperimentCLI`. Exits
        the process with the command's exit code."""
        hand_over_if_captured(self)
        from pytest_delphyne.cli import ExperimentCLI

        sys.exit(ExperimentCLI(self).main(argv))

    def config_success_values_by_name(
        self, config_name: str, *, type: Any
    ) -> Sequence[Any]:
        """The values of a config's outcome, loaded as a list of `type`.

        Raises:
            UnknownConfigError: no config of that name, or it has no result yet.
        """
        return success_values(self, config_name, type)

    def config_success_values(self, config: C, *, type: Any) -> Sequence[Any]:
        """The values of a config's outcome; see `config_success_values_by_name`."""
        return success_values(self, name_of_config(self, config), type)
