"""What one process knows of the session's experiments, and the hooks that use it.

On the controller, `DelphyneSession.start` loads each experiment (naming new configs)
under the run lock, runs `WorkersSetup.common` and registers the recorder; on an xdist
worker it reads the controller's plan from `workerinput`. Both then bind each experiment
to its file, collect one item per config, and align pytest's last-failed cache with the
state, which is the source of truth.
"""

from __future__ import annotations

import functools
import gc
import inspect
import os
import tempfile
import warnings
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pytest

from pytest_delphyne.errors import DelphyneError
from pytest_delphyne.experiment import Experiment, UnlistedConfigsWarning
from pytest_delphyne.identity import ConfigParamsError
from pytest_delphyne.items import (
    ConfigItem,
    ExperimentBinding,
    ExperimentModule,
    SelectionOptions,
    SpendMeter,
    bindings_key,
    decide_action,
    describe_params,
    sees_output_dir,
    session_long_lived,
    worker_setup_key,
)
from pytest_delphyne.lock import ExperimentLockedError, RunLock
from pytest_delphyne.plain_data import flatten_params
from pytest_delphyne.plan import (
    ExperimentSpec,
    build_plan,
    find_experiment,
    import_experiment,
    provided_experiment,
)
from pytest_delphyne.recorder import RecordedExperiment, Recorder
from pytest_delphyne.report import check_group_by, parse_group_by, require_plotting
from pytest_delphyne.workers import (
    PLANS_KEY,
    RESULT_PROPERTY,
    SETUP_VALUES_KEY,
    SPEND_LEDGER_KEY,
    ExperimentPlan,
    XdistHooks,
    check_picklable,
    decode_plans,
    die_with_controller,
    dump_setup_value,
    is_same_file,
    item_id_prefix,
    load_setup_value,
    worker_input,
)

if TYPE_CHECKING:
    from collections.abc import Generator, Iterator, Sequence

PDB_WITHOUT_WORKERS_MESSAGE = (
    "delphyne: --pdb runs configs in this process, without xdist workers"
)

delphyne_session_key = pytest.StashKey["DelphyneSession"]()
pdb_without_workers_key = pytest.StashKey[bool]()


def _lastfailed_key(nodeid: str) -> object:
    try:
        from _pytest.nodeid import NodeId
    except ImportError:  # pytest < 9 keys its last-failed cache by plain strings
        return nodeid
    return NodeId.parse(nodeid)


UNNAMED_PLAN_MESSAGE = (
    "delphyne: {count} more configs listed by the code are not in the state yet: "
    "the run in progress holds the lock, and a run names them when it starts"
)
UNFIT_CONFIGS_MESSAGE = (
    "the stored params of {count} configs no longer fit {class_name}; change the "
    "class or the state:{configs}"
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


def describe_unfit(experiment: Experiment[Any], first: ConfigParamsError) -> str:
    """Every config whose stored params no longer fit, not only the first found."""
    try:
        unfit = experiment.store.unfit_configs()
    except DelphyneError:
        return str(first)
    if len(unfit) <= 1:
        return str(first)
    return UNFIT_CONFIGS_MESSAGE.format(
        count=len(unfit),
        class_name=first.class_name,
        configs="".join(f"\n  - {error}" for error in unfit),
    )


# eq=False keeps identity hashing: pluggy keeps registered plugins in sets.
@dataclass(eq=False)
class DelphyneSession:
    """Everything one process knows of this session's experiments.

    On the controller, `start` imports each experiment file, loads the experiment
    (naming new configs) under the run lock, runs `WorkersSetup.common`, and registers
    the recorder. On a worker it reads the controller's plan from `workerinput`. Both
    then bind each experiment to its file and bring pytest's last-failed cache in line
    with the state, which is the source of truth.
    """

    config: pytest.Config
    bindings: dict[Path, list[ExperimentBinding]] = field(default_factory=dict)
    plans: list[ExperimentPlan] = field(default_factory=list)
    locks: list[RunLock] = field(default_factory=list)
    setup_values: dict[str, object] = field(default_factory=dict)
    setup_teardowns: list[Generator[object, None, None]] = field(default_factory=list)
    workers_ready: dict[str, BaseException | None] = field(default_factory=dict)
    meter: SpendMeter = field(default_factory=SpendMeter)
    reported_verbosely: set[str] = field(default_factory=set)
    plan_shown: bool = False
    spend_ledger: Path | None = None
    # Configs the code lists that a run in progress keeps this `--co` from naming.
    unnamed: dict[str, int] = field(default_factory=dict)

    @property
    def options(self) -> SelectionOptions:
        config = self.config
        return SelectionOptions(
            # The cache provider defines these; `-p no:cacheprovider` removes them.
            last_failed=bool(config.getoption("lf", False)),
            failed_first=bool(config.getoption("failedfirst", False)),
            replay=bool(config.getoption("usepdb"))
            or bool(config.getoption("delphyne_replay")),
            reuse_cache=bool(config.getoption("delphyne_reuse_cache")),
            max_price=config.getoption("delphyne_max_price"),
            cache_requests=config.getoption("delphyne_cache_requests"),
            log_level=config.getoption("delphyne_log_level"),
            export_log=config.getoption("delphyne_export_log"),
            export_raw_trace=config.getoption("delphyne_export_raw_trace"),
            export_browsable_trace=config.getoption("delphyne_export_browsable_trace"),
        )

    def start(self, specs: list[ExperimentSpec]) -> None:
        with session_long_lived():
            self._start(specs)

    def _start(self, specs: list[ExperimentSpec]) -> None:
        self.config.stash[bindings_key] = self.bindings
        self.config.stash[worker_setup_key] = self.ensure_worker_setup
        workerinput = worker_input(self.config)
        options = self.options
        if workerinput is None:
            self._start_controller(specs, options)
        else:
            die_with_controller()
            self.plans = decode_plans(workerinput[PLANS_KEY])
            ledger = workerinput.get(SPEND_LEDGER_KEY)
            if ledger is not None and is_same_file(Path(ledger[0]), ledger[1]):
                self.meter.ledger = Path(ledger[0])
            self.setup_values = {
                key: load_setup_value(data)
                for key, data in workerinput[SETUP_VALUES_KEY].items()
            }
            for plan in self.plans:
                # This worker's own copy of the file: it may run on another machine.
                self._bind(
                    self.config.rootpath / plan["file"],
                    ExperimentBinding(
                        attr=plan["attr"],
                        plan=plan,
                        shares_output_dir=sees_output_dir(plan),
                        options=options,
                        meter=self.meter,
                    ),
                )
        self._align_last_failed(options)

    def _bind(self, path: Path, binding: ExperimentBinding) -> None:
        self.bindings.setdefault(path, []).append(binding)

    def _start_controller(
        self, specs: list[ExperimentSpec], options: SelectionOptions
    ) -> None:
        config = self.config
        runs_configs = not config.getoption("collectonly")
        distributed = config.getoption("dist", "no") != "no" and bool(
            config.getoption("tx", None)
        )
        report_group_by: list[str] = []
        if config.getoption("delphyne_report") and runs_configs:
            try:
                require_plotting()
            except DelphyneError as error:
                raise pytest.UsageError(f"--delphyne-report: {error}") from None
            report_group_by = parse_group_by(
                config.getoption("delphyne_report_group_by")
            )
        recorded: list[RecordedExperiment] = []
        setup_bytes: dict[str, bytes] = {}
        locked: set[Path] = set()
        for spec in specs:
            provided = provided_experiment(self.config, spec)
            if provided is not None:
                attr, experiment = provided
            else:
                module = import_experiment(self.config, spec)
                attr, experiment = find_experiment(module, spec)
            output_dir = experiment.absolute_output_dir
            try:
                if runs_configs and output_dir not in locked:
                    lock = RunLock(output_dir)
                    lock.acquire()
                    self.locks.append(lock)
                    locked.add(output_dir)
                    check_room(output_dir)
                names: list[str] | None = None
                unnamed = 0
                with warnings.catch_warnings():
                    # The plan reports these configs itself (`--co` lists them).
                    warnings.simplefilter("ignore", UnlistedConfigsWarning)
                    try:
                        experiment.load()
                    except ExperimentLockedError:
                        if runs_configs:
                            raise
                        # `--co` during a run, the code listing configs the state
                        # lacks: reading needs no lock, naming them does.
                        names, unnamed = experiment.names_in_state()
                plan, by_name = build_plan(
                    experiment, spec, attr, config.rootpath, names
                )
                if unnamed:
                    self.unnamed[plan["key"]] = unnamed
            except (DelphyneError, OSError) as error:
                # A corrupt state, a config that no longer fits, a run in progress,
                # a full disk: the user's to fix, so a usage error rather than a crash.
                where = "" if isinstance(error, DelphyneError) else f"{output_dir}: "
                problem = str(error)
                if isinstance(error, ConfigParamsError):
                    problem = describe_unfit(experiment, error)
                raise pytest.UsageError(
                    f"--delphyne-exp={spec.text}: {where}{problem}"
                ) from error
            if report_group_by and plan["configs"]:
                # A typo in a group's name must not wait for the end of the run.
                params = flatten_params(plan["configs"][0]["params"])
                try:
                    check_group_by(report_group_by, list(params))
                except DelphyneError as error:
                    raise pytest.UsageError(
                        f"--delphyne-report-group-by: {error}"
                    ) from None
            key = plan["key"]
            self.plans.append(plan)
            self._bind(
                spec.path,
                ExperimentBinding(
                    attr=attr,
                    plan=plan,
                    shares_output_dir=True,
                    options=options,
                    meter=self.meter,
                    configs=by_name,
                ),
            )
            recorded.append(
                RecordedExperiment(
                    attr=attr, path=spec.path, experiment=experiment, plan=plan
                )
            )
            if not runs_configs:
                continue
            if distributed:
                check_picklable(
                    experiment.configs_context,
                    what="Experiment.configs_context",
                    experiment=key,
                )
            # Like a session fixture, set up only for configs that use it: a session
            # that runs and replays none (every config done) starts no server.
            if experiment.workers_setup is not None and any(
                decide_action(planned["status"], options) in ("run", "replay")
                for planned in plan["configs"]
            ):
                value = self._run_common(experiment.workers_setup.common)
                self.setup_values[key] = value
                if distributed:
                    setup_bytes[key] = dump_setup_value(value, experiment=key)
        if config.pluginmanager.hasplugin("xdist"):
            spend_ledger = None
            if distributed and runs_configs and options.max_price is not None:
                spend_ledger = self._make_spend_ledger()
            config.pluginmanager.register(
                XdistHooks(self.plans, setup_bytes, spend_ledger), "delphyne-xdist"
            )
        if runs_configs:
            config.pluginmanager.register(
                Recorder(config, recorded, options), "delphyne-recorder"
            )
        report_path = config.getoption("delphyne_report")
        if report_path and runs_configs:
            config.pluginmanager.register(
                SessionReports(
                    config.invocation_params.dir / report_path,
                    config.getoption("delphyne_report_group_by"),
                    recorded,
                ),
                "delphyne-report",
            )

    def _make_spend_ledger(self) -> Path:
        # Where the workers of this machine count what the session paid (see
        # `SpendMeter`); removed when the session ends.
        descriptor, name = tempfile.mkstemp(prefix="delphyne-spend-", suffix=".txt")
        os.close(descriptor)
        self.spend_ledger = Path(name)
        return self.spend_ledger

    def _run_common(self, common: Any) -> object:
        if inspect.isgeneratorfunction(common):
            generator: Generator[object, None, None] = common()
            value = next(generator)
            self.setup_teardowns.append(generator)
            return value
        return common()

    def ensure_worker_setup(
        self, binding: ExperimentBinding, experiment: Experiment[Any]
    ) -> None:
        """Run `per_worker` if this process has not yet; raise what it raised."""
        key = binding.plan["key"]
        self._set_up_worker(key, experiment)
        error = self.workers_ready[key]
        if error is not None:
            raise error

    def _set_up_worker(self, key: str, experiment: Experiment[Any]) -> None:
        if key in self.workers_ready:
            return
        error: BaseException | None = None
        if experiment.workers_setup is not None:
            try:
                experiment.workers_setup.per_worker(self.setup_values.get(key))
            except Exception as raised:
                # Each config of this process then fails with it (`runtest`).
                error = raised
        self.workers_ready[key] = error

    def _align_last_failed(self, options: SelectionOptions) -> None:
        lfplugin = self.config.pluginmanager.get_plugin("lfplugin")
        if lfplugin is None:
            return
        for bindings in self.bindings.values():
            for binding in bindings:
                prefix = item_id_prefix(binding.plan)
                for planned in binding.plan["configs"]:
                    nodeid = f"{prefix}{planned['name']}]"
                    status = planned["status"]
                    retry = status == "failed" or (
                        status == "todo" and options.last_failed
                    )
                    if retry:
                        lfplugin.lastfailed[_lastfailed_key(nodeid)] = True
                    else:
                        lfplugin.lastfailed.pop(_lastfailed_key(nodeid), None)
        if self.config.getoption("lf", False):
            # LFPlugin computed the files to collect from its cache when it was
            # created; it must see the state's failures instead.
            lfplugin._last_failed_paths = lfplugin.get_last_failed_paths()

    @functools.cached_property
    def params_by_item_name(self) -> dict[str, dict[str, Any]]:
        return {
            f"{binding.attr}[{planned['name']}]": planned["params"]
            for bindings in self.bindings.values()
            for binding in bindings
            for planned in binding.plan["configs"]
        }

    @pytest.hookimpl(tryfirst=True)
    def pytest_collection_finish(self, session: pytest.Session) -> None:
        # The state, the plan and the items live as long as the session: taken out
        # of the garbage collector's sight, they are not traversed again by every
        # full collection while reports pile up (about a third of the plugin's
        # extra cost per config at 10,000 configs without workers).
        gc.freeze()
        if self.config.getoption("collectonly"):
            return
        # `per_worker` runs as each worker starts, before its first config: also in
        # a worker that xdist gives no config (SPEC §6: exactly once per worker).
        for item in session.items:
            if isinstance(item, ConfigItem) and item.action in ("run", "replay"):
                self._set_up_worker(item.binding.plan["key"], item.experiment)

    def close(self) -> None:
        for generator in reversed(self.setup_teardowns):
            # Teardown of a generator `common`: the code after its `yield`.
            for _ in generator:
                pass
        self.setup_teardowns.clear()
        for lock in self.locks:
            lock.release()
        self.locks.clear()
        self.meter.close()
        if self.spend_ledger is not None:
            self.spend_ledger.unlink(missing_ok=True)
            self.spend_ledger = None

    @pytest.hookimpl
    def pytest_collect_file(
        self, file_path: Path, parent: pytest.Collector
    ) -> pytest.Collector | None:
        if file_path in self.bindings:
            module: pytest.Collector = ExperimentModule.from_parent(
                parent, path=file_path
            )
            return module
        return None

    # trylast: after `-k`/`-m` deselection; LFPlugin's wrapper filters after us and
    # agrees, since its cache was aligned with the state.
    @pytest.hookimpl(trylast=True)
    def pytest_collection_modifyitems(
        self, config: pytest.Config, items: list[pytest.Item]
    ) -> None:
        kept: list[pytest.Item] = []
        reported: list[pytest.Item] = []
        dropped: list[pytest.Item] = []
        for item in items:
            if isinstance(item, ConfigItem):
                if item.action == "deselect":
                    dropped.append(item)
                    continue
                if item.action == "report":
                    reported.append(item)
                    continue
            kept.append(item)
        if not dropped and not reported:
            return
        # Stored failures come after everything that runs.
        items[:] = kept + reported
        if dropped:
            config.hook.pytest_deselected(items=dropped)

    @pytest.hookimpl
    def pytest_report_header(self, config: pytest.Config) -> str | None:
        if config.stash.get(pdb_without_workers_key, False):
            return PDB_WITHOUT_WORKERS_MESSAGE
        return None

    @pytest.hookimpl
    def pytest_report_collectionfinish(
        self, config: pytest.Config, items: Sequence[pytest.Item]
    ) -> list[str]:
        # What this session does with each config: `-k` and `-m` deselect some too.
        selected = {
            (item.binding.plan["key"], item.config_name)
            for item in items
            if isinstance(item, ConfigItem)
        }
        return self._plan_lines(selected, config.getoption("collectonly"))

    @pytest.hookimpl(optionalhook=True)
    def pytest_xdist_node_collection_finished(
        self, node: object, ids: Sequence[str]
    ) -> None:
        # Under xdist the controller collects nothing: the plan's line is written
        # from the first worker's collection, which every worker shares.
        if self.plan_shown:
            return
        self.plan_shown = True
        selected: set[tuple[str, str]] = set()
        for plan in self.plans:
            prefix = item_id_prefix(plan)
            selected.update(
                (plan["key"], nodeid[len(prefix) : -1])
                for nodeid in ids
                if nodeid.startswith(prefix)
            )
        terminal = self.config.pluginmanager.get_plugin("terminalreporter")
        if terminal is not None:
            for line in self._plan_lines(selected, collect_only=False):
                terminal.write_line(line)

    def _plan_lines(
        self, selected: set[tuple[str, str]], collect_only: bool
    ) -> list[str]:
        options = self.options
        lines: list[str] = []
        for plan in self.plans:
            key = plan["key"]
            decided = [
                decide_action(planned["status"], options)
                if (key, planned["name"]) in selected
                else "deselect"
                for planned in plan["configs"]
            ]
            actions: dict[str, int] = {}
            for action in decided:
                actions[action] = actions.get(action, 0) + 1
            attr = plan["attr"]
            summary = ", ".join(f"{count} {verb}" for verb, count in actions.items())
            lines.append(
                f"delphyne: {attr}: {len(plan['configs'])} configs ({summary})"
            )
            if actions.get("report"):
                lines.append(
                    f"delphyne: {actions['report']} failed configs are reported from "
                    "the state without running; use --lf to retry them"
                )
            if self.unnamed.get(key):
                lines.append(UNNAMED_PLAN_MESSAGE.format(count=self.unnamed[key]))
            if plan["orphans"]:
                lines.append(
                    f"delphyne: {len(plan['orphans'])} configs in the state are no "
                    "longer listed by the code (--co names them; the clean-index "
                    "command removes them)"
                )
            if collect_only and (plan["configs"] or plan["orphans"]):
                # One block, written at once: 100,000 lines written one by one cost
                # pytest's terminal writer half a second.
                lines.append("\n".join(self._collect_only_plan(plan, decided)))
        return lines

    def _collect_only_plan(
        self, plan: ExperimentPlan, decided: Sequence[str]
    ) -> Iterator[str]:
        attr = plan["attr"]
        for planned, action in zip(plan["configs"], decided, strict=True):
            yield (
                f"  {attr}[{planned['name']}] {planned['status']} -> {action}: "
                f"{describe_params(planned['params'])}"
            )
        for name in plan["orphans"]:
            yield f"  {name}: in the state but no longer listed by the code"

    @pytest.hookimpl(wrapper=True)
    def pytest_runtest_makereport(
        self, item: pytest.Item, call: pytest.CallInfo[None]
    ) -> Generator[None, pytest.TestReport, pytest.TestReport]:
        report = yield
        if call.when == "call" and isinstance(item, ConfigItem):
            # Each crosses to the controller once: the result (and any shipped files)
            # with the call's report, the junitxml properties with the teardown's,
            # the one junitxml reads.
            item.user_properties = [
                prop for prop in item.user_properties if prop[0] != RESULT_PROPERTY
            ]
            item.user_properties.extend(item.junit_properties)
        return report

    @pytest.hookimpl
    def pytest_report_teststatus(
        self, report: pytest.TestReport, config: pytest.Config
    ) -> tuple[str, str, tuple[str, dict[str, bool]]] | None:
        if config.get_verbosity() < 1 or report.when != "call":
            return None
        # Parameters go on the live `-v` line only, not again in the short summary.
        if report.nodeid in self.reported_verbosely:
            return None
        self.reported_verbosely.add(report.nodeid)
        item_name = report.nodeid.rpartition("::")[2]
        params = self.params_by_item_name.get(item_name)
        if params is None:
            return None
        letters = {"passed": ".", "failed": "F", "skipped": "s"}
        colors = {"passed": "green", "failed": "red", "skipped": "yellow"}
        word = f"{report.outcome.upper()} ({describe_params(params)})"
        return (
            report.outcome,
            letters[report.outcome],
            (word, {colors[report.outcome]: True}),
        )


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

    @pytest.hookimpl(trylast=True)
    def pytest_sessionfinish(self) -> None:
        for exp, path in self.targets:
            try:
                written = exp.experiment.report(path, group_by=self.group_by)
            except (DelphyneError, OSError) as error:
                self.lines.append(f"{exp.attr}: no report written: {error}")
            else:
                self.lines.append(f"{exp.attr}: report written to {written}")

    @pytest.hookimpl(trylast=True)
    def pytest_terminal_summary(self, terminalreporter: Any) -> None:
        for line in self.lines:
            terminalreporter.write_line(f"delphyne: {line}")
