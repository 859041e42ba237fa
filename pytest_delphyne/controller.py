"""The controller's start: from `--delphyne-exp` values to the plans every process
collects, and the plugins that record and report the session.

The controller is the process that is not an xdist worker, and the only writer of the
state. Before anything is collected, for each experiment, in this order:

1. find it (`discovery.py`);
2. take its run lock, and check that the output directory has room (a run only);
3. load it, naming new configs (a `--co` during a run reads the state instead);
4. plan it: names, statuses and params in the code's order (`plan.py`);
5. check what would fail later: `--delphyne-report-group-by` names, a
   `configs_context` that workers could not receive; pickle the experiment for
   the workers when their import of the file cannot find it (`shipping.py`);
6. run `WorkersSetup.common`, if a config of the session will run or replay.

A problem the user can fix is a `pytest.UsageError` naming the experiment.
"""

from __future__ import annotations

import inspect
import warnings
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pytest

from pytest_delphyne import layout
from pytest_delphyne.bindings import ExperimentBinding
from pytest_delphyne.discovery import (
    experiment_of_file,
    provided_experiment,
    workers_import_it,
)
from pytest_delphyne.errors import DelphyneError
from pytest_delphyne.experiment import Experiment, UnlistedConfigsWarning
from pytest_delphyne.files import refuse_symlinks
from pytest_delphyne.identity import ConfigParamsError
from pytest_delphyne.lock import ExperimentLockedError, RunLock
from pytest_delphyne.plain_data import flatten_params
from pytest_delphyne.plan import build_plan
from pytest_delphyne.recorder import RecordedExperiment
from pytest_delphyne.recovery import RECOVERED_MESSAGE, describe_set_aside
from pytest_delphyne.report import check_group_by, parse_group_by, require_plotting
from pytest_delphyne.selection import ACTIONS_THAT_RUN_PROGRAMS, decide_action
from pytest_delphyne.shipping import ShippingError, dump_experiment
from pytest_delphyne.wording import plural, shown_path
from pytest_delphyne.workers import check_picklable, dump_setup_value

if TYPE_CHECKING:
    from collections.abc import Generator

    from pytest_delphyne.discovery import ExperimentSpec
    from pytest_delphyne.session import DelphyneSession
    from pytest_delphyne.wire import ExperimentPlan

UNFIT_CONFIGS_MESSAGE = (
    "the stored params of {count} no longer fit {class_name}; change the "
    "class or the state:{configs}"
)
# What the controller writes in the output directory (the lock refuses a link itself).
STATE_FILES = (
    layout.STATE_FILE,
    layout.JOURNAL_FILE,
    layout.STATE_INDEX_FILE,
    layout.LOCK_HOLDER_FILE,
    layout.SUMMARY_FILE,
    layout.CONFIGS_DIR,
    layout.SNAPSHOTS_DIR,
)
# What a run needs at least to write a config's files and record it.
ROOM_NEEDED = 64 * 1024
NO_ROOM_MESSAGE = (
    "no room to write in {output_dir} ({error}): configs would run and pay for their "
    "calls without a place to record them. Make room, then run again"
)


def check_room(output_dir: Path) -> None:
    """Refuse to start configs on a disk that has no room for their files: they
    would run, pay for their calls, and fail to record them.

    Raises:
        DelphyneError: writing `ROOM_NEEDED` bytes in `output_dir` failed.
    """
    probe = output_dir / ".room-check"
    try:
        with probe.open("wb") as file:
            file.write(bytes(ROOM_NEEDED))
            file.flush()
    except OSError as error:
        raise DelphyneError(
            NO_ROOM_MESSAGE.format(output_dir=output_dir, error=error.strerror)
        ) from None
    finally:
        probe.unlink(missing_ok=True)


SHARED_OUTPUT_DIR_MESSAGE = (
    "--delphyne-exp={first} and --delphyne-exp={second}: both experiments write to "
    "{output_dir}; give each its own output_dir"
)


def refuse_shared_output_dirs(
    found: list[tuple[ExperimentSpec, str, Experiment[Any]]],
) -> None:
    """Refuse two experiments of one session on one output directory, before
    anything is written: their states, configs and summaries would overwrite each
    other.

    Raises:
        pytest.UsageError: naming both experiments and the directory.
    """
    owners: dict[Path, tuple[ExperimentSpec, str]] = {}
    for spec, attr, experiment in found:
        output_dir = experiment.absolute_output_dir
        owner = owners.setdefault(output_dir, (spec, attr))
        if owner[0].path != spec.path or owner[1] != attr:
            raise pytest.UsageError(
                SHARED_OUTPUT_DIR_MESSAGE.format(
                    first=owner[0].text, second=spec.text, output_dir=output_dir
                )
            )


def describe_unfit(experiment: Experiment[Any], first: ConfigParamsError) -> str:
    """Every config whose stored params no longer fit, not only the first found."""
    try:
        unfit = experiment.store.unfit_configs()
    except DelphyneError:
        return str(first)
    if len(unfit) <= 1:
        return str(first)
    return UNFIT_CONFIGS_MESSAGE.format(
        count=plural(len(unfit), "config"),
        class_name=first.class_name,
        configs="".join(f"\n  - {error}" for error in unfit),
    )


@dataclass
class Controller:
    """What the controller holds for the whole session: the run locks, the setup
    values and teardowns of `WorkersSetup.common`; `close` releases them.

    Attributes:
        session: this process's session, which the start fills (plans, bindings).
        experiments: the experiments whose results the recorder records.
        setup_bytes: the pickled values of `common`, for the workers.
        shipped_experiments: the pickled experiments the workers cannot import by
            name, by experiment key.
    """

    session: DelphyneSession
    experiments: list[RecordedExperiment] = field(default_factory=list)
    setup_bytes: dict[str, bytes] = field(default_factory=dict)
    shipped_experiments: dict[str, bytes] = field(default_factory=dict)
    locks: dict[Path, RunLock] = field(default_factory=dict)
    teardowns: list[Generator[object, None, None]] = field(default_factory=list)

    @property
    def config(self) -> pytest.Config:
        return self.session.config

    @property
    def runs_configs(self) -> bool:
        return not self.config.getoption("collectonly")

    @property
    def distributed(self) -> bool:
        config = self.config
        return config.getoption("dist", "no") != "no" and bool(
            config.getoption("tx", None)
        )

    def start(self, specs: list[ExperimentSpec]) -> None:
        """Start each experiment (the steps of the module docstring)."""
        group_by = self._report_group_by()
        found = [(spec, *self._find(spec)) for spec in specs]
        refuse_shared_output_dirs(found)
        for spec, attr, experiment in found:
            plan, by_name = self._lock_load_and_plan(spec, attr, experiment)
            self._check(plan, experiment, group_by)
            self._ship(spec, attr, plan, experiment)
            self.session.plans.append(plan)
            self.session.bind(
                spec.path,
                ExperimentBinding(
                    attr=attr,
                    plan=plan,
                    shares_output_dir=True,
                    options=self.session.selection,
                    settings=self.session.settings,
                    meter=self.session.meter,
                    configs=by_name,
                    experiment=experiment,
                ),
            )
            self.experiments.append(
                RecordedExperiment(
                    attr=attr,
                    path=spec.path,
                    experiment=experiment,
                    plan=plan,
                    lock=self.locks.get(experiment.absolute_output_dir),
                )
            )
            if self.runs_configs:
                self._set_up_common(plan, experiment)

    def _report_group_by(self) -> list[str]:
        config = self.config
        if not (config.getoption("delphyne_report") and self.runs_configs):
            return []
        try:
            require_plotting()
        except DelphyneError as error:
            raise pytest.UsageError(f"--delphyne-report: {error}") from None
        return parse_group_by(config.getoption("delphyne_report_group_by"))

    def _find(self, spec: ExperimentSpec) -> tuple[str, Experiment[Any]]:
        provided = provided_experiment(self.config, spec)
        if provided is not None:
            return provided
        return experiment_of_file(self.config, spec)

    def _ship(
        self,
        spec: ExperimentSpec,
        attr: str,
        plan: ExperimentPlan,
        experiment: Experiment[Any],
    ) -> None:
        if not (self.runs_configs and self.distributed):
            return
        if workers_import_it(self.config, spec, attr):
            return
        try:
            self.shipped_experiments[plan["key"]] = dump_experiment(experiment)
        except ShippingError as error:
            raise pytest.UsageError(f"--delphyne-exp={spec.text}: {error}") from None

    def _lock_load_and_plan(
        self, spec: ExperimentSpec, attr: str, experiment: Experiment[Any]
    ) -> tuple[ExperimentPlan, dict[str, Any]]:
        output_dir = experiment.absolute_output_dir
        try:
            if self.runs_configs and output_dir not in self.locks:
                lock = RunLock(output_dir)
                lock.acquire()
                self.locks[output_dir] = lock
                refuse_symlinks(output_dir / name for name in STATE_FILES)
                check_room(output_dir)
            names, unnamed = self._load(experiment)
            plan, by_name = build_plan(
                experiment,
                spec,
                attr,
                self.config.rootpath,
                names,
                session=self.session.session_id,
            )
        except (DelphyneError, OSError) as error:
            # A corrupt state, a config that no longer fits, a run in progress, a
            # full disk: the user's to fix, so a usage error rather than a crash.
            where = "" if isinstance(error, DelphyneError) else f"{output_dir}: "
            problem = str(error)
            if isinstance(error, ConfigParamsError):
                problem = describe_unfit(experiment, error)
            raise pytest.UsageError(
                f"--delphyne-exp={spec.text}: {where}{problem}"
            ) from error
        if unnamed:
            self.session.unnamed[plan["key"]] = unnamed
        notices = self.session.notices.setdefault(plan["key"], [])
        if experiment.recovered:
            notices.append(
                RECOVERED_MESSAGE.format(names=", ".join(experiment.recovered))
            )
        if experiment.set_aside:
            notices.append(
                describe_set_aside(
                    experiment.absolute_output_dir, experiment.set_aside, kept=True
                )
            )
        return plan, by_name

    def _load(self, experiment: Experiment[Any]) -> tuple[list[str] | None, int]:
        # The names to plan (None: every config load() named) and how many configs
        # the code lists that the state lacks and this process may not name.
        with warnings.catch_warnings():
            # The plan reports these configs itself (`--co` lists them).
            warnings.simplefilter("ignore", UnlistedConfigsWarning)
            try:
                experiment.load()
            except ExperimentLockedError:
                if self.runs_configs:
                    raise
                # `--co` during a run, the code listing configs the state lacks:
                # reading needs no lock, naming them does.
                return experiment.names_in_state()
        return None, 0

    def _check(
        self, plan: ExperimentPlan, experiment: Experiment[Any], group_by: list[str]
    ) -> None:
        if group_by and plan["configs"]:
            # A typo in a group's name must not wait for the end of the run.
            params = flatten_params(plan["configs"][0]["params"])
            try:
                check_group_by(group_by, list(params))
            except DelphyneError as error:
                raise pytest.UsageError(
                    f"--delphyne-report-group-by: {error}"
                ) from None
        if self.runs_configs and self.distributed:
            check_picklable(
                experiment.configs_context,
                what="Experiment.configs_context",
                experiment=plan["key"],
            )

    def _set_up_common(self, plan: ExperimentPlan, experiment: Experiment[Any]) -> None:
        # Like a session fixture, set up only for configs that use it: a session
        # that runs and replays none (every config done) starts no server.
        setup = experiment.workers_setup
        selection = self.session.selection
        if setup is None or not any(
            decide_action(planned["status"], selection) in ACTIONS_THAT_RUN_PROGRAMS
            for planned in plan["configs"]
        ):
            return
        key = plan["key"]
        value = self._run_common(setup.common)
        self.session.setup_values[key] = value
        if self.distributed:
            self.setup_bytes[key] = dump_setup_value(value, experiment=key)

    def _run_common(self, common: Any) -> object:
        if inspect.isgeneratorfunction(common):
            generator: Generator[object, None, None] = common()
            value = next(generator)
            self.teardowns.append(generator)
            return value
        return common()

    def close(self) -> None:
        """Tear down `common`'s generators and release the locks."""
        for generator in reversed(self.teardowns):
            # Teardown of a generator `common`: the code after its `yield`.
            for _ in generator:
                pass
        self.teardowns.clear()
        for lock in self.locks.values():
            lock.release()
        self.locks.clear()


class SessionReports:
    """Writes each experiment's report once the recorder has saved the state
    (`--delphyne-report=PATH`); with several experiments, each gets `PATH` with its
    attribute's name before the suffix."""

    def __init__(
        self, path: Path, group_by: str | None, experiments: list[RecordedExperiment]
    ):
        self.group_by = group_by
        several = len(experiments) > 1
        self.targets = [
            (exp, path.with_stem(f"{path.stem}-{exp.attr}") if several else path)
            for exp in experiments
        ]
        self.lines: list[str] = []

    # trylast: after the recorder's `pytest_sessionfinish`, which saves the state.
    @pytest.hookimpl(trylast=True)
    def pytest_sessionfinish(self) -> None:
        for exp, path in self.targets:
            try:
                written = exp.experiment.report(path, group_by=self.group_by)
            except (DelphyneError, OSError) as error:
                self.lines.append(f"{exp.attr}: no report written: {error}")
            else:
                shown = shown_path(written, Path.cwd())
                self.lines.append(f"{exp.attr}: report written to {shown}")

    # trylast: below the recorder's section of the terminal summary.
    @pytest.hookimpl(trylast=True)
    def pytest_terminal_summary(self, terminalreporter: Any) -> None:
        for line in self.lines:
            terminalreporter.write_line(f"delphyne: {line}")
