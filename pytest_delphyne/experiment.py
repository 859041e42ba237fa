"""`Experiment`: a grid of configurations of an oracular program, and its state.

A façade over `identity` (config identity and names), `state` (the persistent state,
its journal and the run lock) and `summary` (`results_summary.csv`). Running configs
goes through the pytest plugin; nothing here imports pytest.
"""

from __future__ import annotations

import contextlib
import runpy
import sys
import uuid
import warnings
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field, replace
from functools import cached_property
from pathlib import Path
from typing import TYPE_CHECKING, Any, Generic, TypeVar

from pytest_delphyne import layout, summary
from pytest_delphyne.configs import ExecutionContext, ExperimentConfig, WorkersSetup
from pytest_delphyne.identity import (
    ConfigCodec,
    codec_for,
    make_converter,
    validate_config_name,
)
from pytest_delphyne.lock import ExperimentLockedError, RunLock
from pytest_delphyne.recovery import recover_results
from pytest_delphyne.results import ResultFileError, read_result
from pytest_delphyne.roster import (
    CONFIG_NOT_IN_STATE_MESSAGE,
    Roster,
    UnknownConfigError,
    add_configs,
    config_names,
    listed_names,
    names_in_state,
)
from pytest_delphyne.settings import RunSettings
from pytest_delphyne.state import (
    STATUSES,
    ExperimentState,
)
from pytest_delphyne.state_store import StateStore

if TYPE_CHECKING:
    from types import FrameType
    from typing import Self

    import pandas

    from pytest_delphyne.runtime import LogLevel, ReplayReport

T = TypeVar("T")

UNLISTED_CONFIGS_MESSAGE = (
    "{count} config(s) in {state_file} are no longer listed by the experiment: "
    "{names}. Experiment.clean_index() removes them from the state."
)
UNKNOWN_CONFIG_MESSAGE = "No config named {name!r} in {state_file}"
NO_RESULT_MESSAGE = "Config {name!r} has no result yet ({path} does not exist)"
_NAMES_SHOWN = 10

C = TypeVar("C", bound=ExperimentConfig)


class UnlistedConfigsWarning(UserWarning):
    """The state has configs that the experiment no longer lists."""


def _defining_file() -> Path | None:
    # The first frame outside this module and `dataclasses` is the code creating the
    # experiment (the generated `__init__` runs with this module's globals).
    frame: FrameType | None = sys._getframe(1)
    while frame is not None and frame.f_globals.get("__name__") in (
        __name__,
        "dataclasses",
    ):
        frame = frame.f_back
    file = frame.f_globals.get("__file__") if frame is not None else None
    return Path(file).absolute() if isinstance(file, str) else None


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
        self.defined_in = _defining_file()
        self._cwd = Path.cwd()

    @property
    def absolute_output_dir(self) -> Path:
        """The output directory, anchored at `context.workspace_root` or else at the
        directory of the file that created the experiment."""
        output_dir = Path(self.output_dir).expanduser()
        if output_dir.is_absolute():
            return output_dir
        if self.context.workspace_root is not None:
            return Path(self.context.workspace_root).absolute() / output_dir
        if self.defined_in is not None:
            return self.defined_in.parent / output_dir
        return self._cwd / output_dir

    @property
    def codec(self) -> ConfigCodec[C]:
        """The codec of `config_class` (plain data, canonical keys)."""
        return codec_for(self.config_class)

    @property
    def settings(self) -> RunSettings:
        """The experiment's own settings of its configs' runs (`None`: the `Run`'s)."""
        return RunSettings(
            cache_requests=self.cache_requests,
            log_level=self.log_level,
            export_log=self.export_log,
            export_raw_trace=self.export_raw_trace,
            export_browsable_trace=self.export_browsable_trace,
            verbose_snapshots=self.verbose_snapshots,
        )

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
        store = self.store
        existed = store.exists()
        self.set_aside = []
        if existed:
            state = store.load()
            self.set_aside = [update.name for update in store.set_aside]
        else:
            state = ExperimentState(self.name, self.description, {})
        must_write = not existed
        for attribute in ("name", "description"):
            value = getattr(self, attribute)
            if value is not None and value != getattr(state, attribute):
                setattr(state, attribute, value)
                must_write = True
        for name in state.configs:
            validate_config_name(name)
        self._roster.forget()
        params = None
        if self.configs is not None:
            enrolment = add_configs(
                state,
                self.configs,
                self.config_class,
                self.config_naming,
                self.store.state_file,
            )
            names, params = enrolment.names, enrolment.params
            must_write = must_write or bool(enrolment.added)
            if enrolment.unlisted:
                self._warn_unlisted(enrolment.unlisted)
        else:
            names = list(state.configs)
        self.recovered = recover_results(self.absolute_output_dir, state, self.codec)
        if self.recovered and not must_write:
            try:
                self._write(state)
            except ExperimentLockedError:
                # The run in progress records them: a reader only looks.
                self.recovered = []
        elif must_write:
            self._write(state)
        elif store.journal_file.exists():
            # Folding while another process records would drop what it records next.
            # Only a tidying: on a full disk the journal stays, applied on each load.
            with contextlib.suppress(ExperimentLockedError, OSError):
                self._write(state)
        self._roster.remember(self.configs, names, params)
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

    def _warn_unlisted(self, names: list[str]) -> None:
        shown = ", ".join(names[:_NAMES_SHOWN])
        if len(names) > _NAMES_SHOWN:
            shown += f" and {len(names) - _NAMES_SHOWN} more"
        message = UNLISTED_CONFIGS_MESSAGE.format(
            count=len(names), state_file=self.store.state_file, names=shown
        )
        warnings.warn(message, UnlistedConfigsWarning, stacklevel=3)

    def _write(self, state: ExperimentState[C]) -> None:
        # The lock is re-entrant within a process, so a runner holding it can call this.
        with RunLock(self.absolute_output_dir):
            self.store.save(state)

    def is_done(self) -> bool:
        """Whether every config of the state is `done`."""
        return all(info.status == "done" for info in self.load_state().configs.values())

    def clean_index(self) -> None:
        """Remove from the state every config that `configs` does not list.

        Raises:
            ExperimentLockedError: another process is running the experiment.
        """
        state = self.load_state()
        listed = listed_names(state, self.configs)
        state.configs = {n: i for n, i in state.configs.items() if n in listed}
        self._write(state)

    def mark_errors_as_todos(self) -> None:
        """Mark every `failed` config as `todo`, to be run again.

        Raises:
            ExperimentLockedError: another process is running the experiment.
        """
        state = self.load_state()
        for name, info in state.configs.items():
            if info.status == "failed":
                state.configs[name] = replace(info, status="todo")
                # Else the next load would find the failure on disk and keep it.
                (self.config_dir(name) / layout.FAILURE_FILE).unlink(missing_ok=True)
        self._write(state)

    def get_status(self) -> dict[str, int]:
        """How many configs are `todo`, `done` and `failed`."""
        counts: dict[str, int] = dict.fromkeys(STATUSES, 0)
        for info in self.load_state().configs.values():
            counts[info.status] += 1
        return counts

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
        from pytest_delphyne.report import require_plotting, write_report

        require_plotting()  # before reading 100,000 result files
        return write_report(
            self.absolute_output_dir,
            self.load_state(),
            self.codec,
            Path(path) if path is not None else None,
            group_by=group_by,
        )

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
        if _capturing_script_experiment:
            raise _ScriptExperimentFound(self)
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
        from pytest_delphyne.ledger import (
            LedgerWriter,
            ledger_file_path,
            new_attempt_id,
        )
        from pytest_delphyne.runtime import replay

        state = self.load_state()
        if config_name not in state.configs:
            raise UnknownConfigError(
                UNKNOWN_CONFIG_MESSAGE.format(
                    name=config_name, state_file=self.store.state_file
                )
            )
        config = state.configs[config_name].params
        # The one call a failed config may make again is paid: the ledger counts it.
        attempt = new_attempt_id()
        ledger = LedgerWriter(
            ledger_file_path(self.absolute_output_dir),
            config=config_name,
            attempt=attempt,
            session=attempt,
        )
        try:
            return replay(
                lambda: config.instantiate(self.configs_context),
                self.config_dir(config_name),
                config_name=config_name,
                log_level=self.log_level,
                ledger=ledger,
            )
        finally:
            ledger.close()

    def replay_config(self, config: C) -> ReplayReport:
        """Replay a config; see `replay_config_by_name`."""
        name = self.load_state().inverse_mapping()(config)
        if name is None:
            raise UnknownConfigError(
                CONFIG_NOT_IN_STATE_MESSAGE.format(
                    config=config, state_file=self.store.state_file
                )
            )
        return self.replay_config_by_name(name)

    def replay_all_configs(self) -> dict[str, ReplayReport]:
        """Replay every config that ran (done or failed), replicating the experiment.

        Returns:
            Each replayed config's report, by name.
        """
        state = self.load_state()
        return {
            name: self.replay_config_by_name(name)
            for name, info in state.configs.items()
            if info.status != "todo"
        }

    def run_cli(self, argv: Sequence[str] | None = None) -> None:
        """Run the command-line application that controls the experiment from the
        shell (`python exp.py run -n 4`, `status`, ...); see `ExperimentCLI`. Exits
        the process with the command's exit code."""
        if _capturing_script_experiment:
            raise _ScriptExperimentFound(self)
        from pytest_delphyne.cli import ExperimentCLI

        sys.exit(ExperimentCLI(self).main(argv))

    def config_success_values_by_name(
        self, config_name: str, *, type: Any
    ) -> Sequence[Any]:
        """The values of a config's outcome, loaded as a list of `type`.

        Raises:
            UnknownConfigError: no config of that name, or it has no result yet.
        """
        state = self.load_state()
        if config_name not in state.configs:
            raise UnknownConfigError(
                UNKNOWN_CONFIG_MESSAGE.format(
                    name=config_name, state_file=self.store.state_file
                )
            )
        try:
            recorded = read_result(self.config_dir(config_name))
        except ResultFileError as error:
            if not error.missing:
                raise
            raise UnknownConfigError(
                NO_RESULT_MESSAGE.format(name=config_name, path=error.path)
            ) from None
        loaded: list[Any] = make_converter().structure(recorded.values, list[type])
        return loaded

    def config_success_values(self, config: C, *, type: Any) -> Sequence[Any]:
        """The values of a config's outcome; see `config_success_values_by_name`."""
        name = self.load_state().inverse_mapping()(config)
        if name is None:
            raise UnknownConfigError(
                CONFIG_NOT_IN_STATE_MESSAGE.format(
                    config=config, state_file=self.store.state_file
                )
            )
        return self.config_success_values_by_name(name, type=type)


# Set while a worker runs a script to find the experiment it defines under `__main__`.
_capturing_script_experiment = False


class _ScriptExperimentFound(BaseException):
    # A BaseException, so that the script's own `except Exception` cannot swallow it.
    def __init__(self, experiment: Experiment[Any]):
        super().__init__()
        self.experiment = experiment


SCRIPT_WITHOUT_EXPERIMENT_MESSAGE = (
    "{path} defines no module-level Experiment, and running it as a script never "
    "reached Experiment.resume() or run_cli()"
)


def experiment_of_script(path: Path) -> Experiment[Any]:
    """The experiment a script builds under `if __name__ == "__main__":`.

    The script runs as `__main__` until it calls `resume()` or `run_cli()` on its
    experiment, which then hand it over instead of running.

    Raises:
        UnknownConfigError: the script never got there.
    """
    global _capturing_script_experiment
    _capturing_script_experiment = True
    sys.path.insert(0, str(path.parent))
    try:
        runpy.run_path(str(path), run_name="__main__")
    except _ScriptExperimentFound as found:
        return found.experiment
    finally:
        _capturing_script_experiment = False
        sys.path.remove(str(path.parent))
    raise UnknownConfigError(SCRIPT_WITHOUT_EXPERIMENT_MESSAGE.format(path=path))
