"""What one process knows of the session's experiments, and the hooks that use it.

The plugin starts the session (`controller.py` on the controller, `worker_start.py`
on an xdist worker); both bind each experiment to its file. Then, in every process,
this session collects one item per config, deselects what the state says to, brings
pytest's last-failed cache in line with the state (the source of truth), says what it
will do with each config, and shows each config's params under `-v`.
"""

from __future__ import annotations

import functools
import gc
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pytest

from pytest_delphyne.bindings import ExperimentBinding, bindings_key, worker_setup_key
from pytest_delphyne.items import ConfigItem, ExperimentModule
from pytest_delphyne.ledger import new_attempt_id
from pytest_delphyne.plan import plan_lines
from pytest_delphyne.retry import (
    has_nothing_to_retry,
    last_failed_status,
    nothing_to_retry_line,
)
from pytest_delphyne.selection import (
    ACTIONS_THAT_RUN_PROGRAMS,
    SelectionOptions,
)
from pytest_delphyne.settings import RunSettings
from pytest_delphyne.spend_cap import SpendMeter
from pytest_delphyne.wire import RESULT_PROPERTY, ExperimentPlan, item_id_prefix
from pytest_delphyne.wording import describe_params

if TYPE_CHECKING:
    from collections.abc import Generator, Sequence

    from pytest_delphyne.experiment import Experiment

PDB_WITHOUT_WORKERS_MESSAGE = (
    "delphyne: --pdb runs configs in this process, without xdist workers"
)

pdb_without_workers_key = pytest.StashKey[bool]()


def _lastfailed_key(nodeid: str) -> object:
    try:
        from _pytest.nodeid import NodeId
    except ImportError:  # pytest < 9 keys its last-failed cache by plain strings
        return nodeid
    return NodeId.parse(nodeid)


# eq=False keeps identity hashing: pluggy keeps registered plugins in sets.
@dataclass(eq=False)
class DelphyneSession:
    """Everything one process knows of this session's experiments.

    Attributes:
        config: pytest's config.
        selection: the options that decide what each config does.
        settings: the command line's overrides of the experiments' settings.
        bindings: each experiment file's experiments, as this process collects them.
        plans: what the controller planned, in the order of `--delphyne-exp`.
        setup_values: the values of `WorkersSetup.common`, by experiment key.
        meter: what this process knows the session paid (the spend cap).
        unnamed: by experiment key, configs a run in progress keeps `--co` from
            naming.
        notices: by experiment key, what loading it did that the user must hear
            of (the controller's).
        session_id: names this session in the ledger of paid calls (the
            controller's; workers take it from the plans).
    """

    config: pytest.Config
    selection: SelectionOptions
    settings: RunSettings
    bindings: dict[Path, list[ExperimentBinding]] = field(default_factory=dict)
    plans: list[ExperimentPlan] = field(default_factory=list)
    setup_values: dict[str, object] = field(default_factory=dict)
    meter: SpendMeter = field(default_factory=SpendMeter)
    unnamed: dict[str, int] = field(default_factory=dict)
    notices: dict[str, list[str]] = field(default_factory=dict)
    workers_ready: dict[str, BaseException | None] = field(default_factory=dict)
    reported_verbosely: set[str] = field(default_factory=set)
    session_id: str = field(default_factory=new_attempt_id)

    def __post_init__(self) -> None:
        self.config.stash[bindings_key] = self.bindings
        self.config.stash[worker_setup_key] = self.ensure_worker_setup

    def bind(self, path: Path, binding: ExperimentBinding) -> None:
        """Collect `binding`'s experiment from the file at `path`."""
        self.bindings.setdefault(path, []).append(binding)

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

    def align_last_failed(self) -> None:
        """Make pytest's last-failed cache say what the state says: the failed
        configs (and, under `--lf`, the todo ones) are to be retried."""
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
                        status == "todo" and self.selection.last_failed
                    )
                    if retry:
                        lfplugin.lastfailed[_lastfailed_key(nodeid)] = True
                    else:
                        lfplugin.lastfailed.pop(_lastfailed_key(nodeid), None)
        if self.config.getoption("lf", False):
            # LFPlugin computed the files to collect from its cache when it was
            # created; it must see the state's failures instead.
            lfplugin._last_failed_paths = lfplugin.get_last_failed_paths()

    def _restate_last_failed(self, items: Sequence[pytest.Item]) -> None:
        # pytest's status line would count todo configs as previous failures, and
        # say "no previously failed tests" when every config is done.
        lfplugin = self.config.pluginmanager.get_plugin("lfplugin")
        if lfplugin is None or not self.bindings:
            return
        statuses = {
            (plan["key"], planned["name"]): planned["status"]
            for plan in self.plans
            for planned in plan["configs"]
        }
        counts = {"failed": 0, "todo": 0}
        other_tests = 0
        for item in items:
            if not isinstance(item, ConfigItem):
                other_tests += 1
                continue
            status = statuses.get((item.binding.plan["key"], item.config_name))
            if status in counts:
                counts[status] += 1
        if not items and has_nothing_to_retry(self.plans):
            # The plan's line says it; pytest's would contradict it.
            lfplugin.active = False
            return
        lfplugin._report_status = last_failed_status(
            failed=counts["failed"], todo=counts["todo"], other_tests=other_tests
        )

    @pytest.hookimpl
    def pytest_sessionfinish(self, session: pytest.Session) -> None:
        # `--lf` with nothing to retry is a success, as pytest's own `--lf` is (and
        # the reference's `run --retry_errors`): every config was deselected as done.
        if (
            self.selection.last_failed
            and session.exitstatus == pytest.ExitCode.NO_TESTS_COLLECTED
            and self.plans
            and has_nothing_to_retry(self.plans)
        ):
            session.exitstatus = pytest.ExitCode.OK

    @functools.cached_property
    def params_by_item_name(self) -> dict[str, dict[str, Any]]:
        return {
            f"{binding.attr}[{planned['name']}]": planned["params"]
            for bindings in self.bindings.values()
            for binding in bindings
            for planned in binding.plan["configs"]
        }

    def plan_lines(
        self, selected: set[tuple[str, str]], collect_only: bool
    ) -> list[str]:
        """What this session does with each config, for the terminal."""
        if (
            self.selection.last_failed
            and self.plans
            and has_nothing_to_retry(self.plans)
        ):
            return [nothing_to_retry_line(self.plans)]
        return plan_lines(
            self.plans,
            selected,
            self.selection,
            unnamed=self.unnamed,
            collect_only=collect_only,
            notices=self.notices,
        )

    def write_plan_lines(self, selected: set[tuple[str, str]]) -> None:
        """Write the plan's lines now (under xdist, once the first worker collected:
        the controller collects nothing)."""
        terminal = self.config.pluginmanager.get_plugin("terminalreporter")
        if terminal is not None:
            for line in self.plan_lines(selected, collect_only=False):
                terminal.write_line(line)

    @pytest.hookimpl(tryfirst=True)
    def pytest_collection_finish(self, session: pytest.Session) -> None:
        # The state, the plan and the items live as long as the session: taken out
        # of the garbage collector's sight, they are not traversed again by every
        # full collection while reports pile up (about a third of the plugin's
        # extra cost per config at 10,000 configs without workers).
        gc.freeze()
        if self.selection.last_failed:
            self._restate_last_failed(session.items)
        if self.config.getoption("collectonly"):
            return
        # `per_worker` runs as each worker starts, before its first config: also in
        # a worker that xdist gives no config (SPEC §6: exactly once per worker).
        for item in session.items:
            if (
                isinstance(item, ConfigItem)
                and item.action in ACTIONS_THAT_RUN_PROGRAMS
            ):
                self._set_up_worker(item.binding.plan["key"], item.experiment)

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
        return self.plan_lines(selected, config.getoption("collectonly"))

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
