"""The xdist side of a session: the controller's xdist hooks, and reads of xdist's
internals on a worker (its queue of items, its terminal reporter).

A worker's start is `worker_start.py`. On the controller, `XdistHooks` is the one
place that touches pytest-xdist: its hooks (sending the plans down, a crashed worker's
report, the first worker's collection) and its internals (the controller loop's
`shouldstop`, the queue of events left unread when the session stops, a worker's
process exit status).

Only the value of `WorkersSetup.common` and, when the workers' import of the file
cannot find it by name, the experiment (`shipping.py`) are pickled: the user's
objects, sent as `bytes` down the channel this session's controller opened.
"""

from __future__ import annotations

import pickle
import signal
import subprocess
from collections.abc import Callable, Iterator
from typing import TYPE_CHECKING, Any

import pytest

from pytest_delphyne.concurrency import UNFINISHED_KEY
from pytest_delphyne.notices import Notify
from pytest_delphyne.wire import (
    NOTICES_KEY,
    PLANS_KEY,
    SETUP_VALUES_KEY,
    SHIPPED_EXPERIMENTS_KEY,
    ExperimentPlan,
    encode_plans,
    item_id_prefix,
)
from pytest_delphyne.worker_start import (
    drop_start_up_sigint,
    workers_start_without_sigint,
)

if TYPE_CHECKING:
    from collections.abc import Sequence

    from xdist.workermanage import WorkerController

    from pytest_delphyne.concurrency import UnfinishedConfig

WORKER_SIGNAL_MESSAGE = "the worker process was killed by signal {number} ({name})"
WORKER_KILLED_HINT = (
    "; SIGKILL is also how the kernel's out-of-memory killer ends a process"
)
WORKER_EXIT_MESSAGE = "the worker process exited with code {code}"
WORKER_LOST_MESSAGE = "the worker process stopped answering"
UNPICKLABLE_MESSAGE = (
    "{what} of experiment {experiment} cannot be sent to xdist workers: "
    "it is not picklable ({error})"
)


def dump_setup_value(value: object, *, experiment: str) -> bytes:
    """Pickle the result of `WorkersSetup.common` for the workers."""
    try:
        return pickle.dumps(value)
    except Exception as error:
        raise pytest.UsageError(
            UNPICKLABLE_MESSAGE.format(
                what="The value returned by WorkersSetup.common",
                experiment=experiment,
                error=error,
            )
        ) from error


def check_picklable(value: object, *, what: str, experiment: str) -> None:
    """Refuse, before any config runs, a value that workers could not receive."""
    try:
        pickle.dumps(value)
    except Exception as error:
        raise pytest.UsageError(
            UNPICKLABLE_MESSAGE.format(what=what, experiment=experiment, error=error)
        ) from error


def describe_worker_death(node: object) -> str:
    """How a crashed worker ended, as far as its process's exit status tells."""
    # A popen gateway keeps its subprocess.Popen on `gateway._io`: the only place the
    # exit status of a worker on this machine can be read from.
    popen = getattr(getattr(getattr(node, "gateway", None), "_io", None), "popen", None)
    if not isinstance(popen, subprocess.Popen):
        return WORKER_LOST_MESSAGE
    try:
        code = popen.wait(timeout=5)
    except subprocess.TimeoutExpired:
        return WORKER_LOST_MESSAGE
    if code < 0:
        number = -code
        try:
            name = signal.Signals(number).name
        except ValueError:
            name = "unknown signal"
        message = WORKER_SIGNAL_MESSAGE.format(number=number, name=name)
        if number == signal.SIGKILL:
            message += WORKER_KILLED_HINT
        return message
    return WORKER_EXIT_MESSAGE.format(code=code)


def worker_queue(config: pytest.Config) -> Callable[[pytest.Item], list[pytest.Item]]:
    """The items xdist queued on this worker after a given one, in order.

    xdist's `WorkerInteractor` (a plugin of the worker) holds the index of the next
    item and the queue of the indices after it; the controller sends more as this
    worker completes items.
    """
    interactor: Any = None

    def upcoming(current: pytest.Item) -> list[pytest.Item]:
        nonlocal interactor
        if interactor is None:
            interactor = next(
                (
                    plugin
                    for plugin in config.pluginmanager.get_plugins()
                    if type(plugin).__name__ == "WorkerInteractor"
                ),
                False,
            )
        if not interactor:
            return []
        with interactor.torun.lock() as queued:
            indices = [interactor.nextitem_index, *queued]
        items: list[pytest.Item] = current.session.items
        return [items[index] for index in indices if isinstance(index, int)]

    return upcoming


def write_each_status_once(config: pytest.Config) -> None:
    """Have xdist's terminal reporter skip a status line that repeats the last one.

    Without a terminal to rewrite its line in, xdist writes its status once when the
    workers start and once when they have collected. Under `-q` both say "bringing
    up nodes...": the second line says nothing new.
    """
    reporter: Any = config.pluginmanager.get_plugin("terminaldistreporter")
    if reporter is None:
        return
    write_status = reporter.ensure_show_status
    written: list[str] = []

    def ensure_show_status() -> None:
        status = reporter.getstatus()
        if written and written[-1] == status:
            return
        written[:] = [status]
        write_status()

    reporter.ensure_show_status = ensure_show_status


class XdistHooks:
    """The xdist hooks and reads of xdist's internals; registered on the controller
    only, and only when pytest-xdist is installed.

    Attributes:
        plans: what every worker collects, sent as one JSON text.
        setup_values: the pickled values of `WorkersSetup.common`, by experiment.
        shipped_experiments: the pickled experiments that workers cannot import by
            name, by experiment (see `shipping.py`).
        on_worker_collection: called once, with the (experiment key, config name)
            pairs the first worker collected (under xdist the controller collects
            nothing itself).
        concurrency: the configs each worker keeps in flight; above 1, xdist's load
            scheduling keeps that many items queued on each worker.
        on_unfinished: records the configs a worker had in flight when it stopped.
        on_notice: shows the notices of a worker's configs (see `notices.py`).
    """

    concurrency: int = 1
    on_unfinished: Callable[[list[UnfinishedConfig]], None] | None = None
    on_notice: Notify | None = None

    def __init__(
        self,
        config: pytest.Config,
        plans: list[ExperimentPlan],
        setup_values: dict[str, bytes],
        on_worker_collection: Callable[[set[tuple[str, str]]], None],
        shipped_experiments: dict[str, bytes] | None = None,
    ) -> None:
        self.config = config
        self.plans = plans
        self.setup_values = setup_values
        self.shipped_experiments = shipped_experiments or {}
        self.on_worker_collection = on_worker_collection
        self._plans_text: str | None = None
        self._collection_seen = False
        # The queued events already delivered (the ids of their kwargs, which stay in
        # xdist's queue).
        self._delivered: set[int] = set()
        self._interrupted_at_start = False

    @pytest.hookimpl
    def pytest_configure_node(self, node: WorkerController) -> None:
        if self._plans_text is None:
            self._plans_text = encode_plans(self.plans)
        node.workerinput[PLANS_KEY] = self._plans_text
        node.workerinput[SETUP_VALUES_KEY] = self.setup_values
        node.workerinput[SHIPPED_EXPERIMENTS_KEY] = self.shipped_experiments
        if self.on_notice is not None:
            node.workerinput[NOTICES_KEY] = self._notices_channel(node, self.on_notice)

    @staticmethod
    def _notices_channel(node: WorkerController, on_notice: Notify) -> Any:
        # A channel of its own: xdist's channel refuses events it does not know,
        # and its reports come only once an item ends.
        channel = node.gateway.newchannel()

        def receive(notice: tuple[str, str]) -> None:
            on_notice(*notice)

        channel.setcallback(receive)
        return channel

    # wrapper: around xdist's own implementation, which starts the workers.
    @pytest.hookimpl(wrapper=True)
    def pytest_sessionstart(self, session: pytest.Session) -> Iterator[None]:
        with workers_start_without_sigint(self.config):
            started = yield
            # Raised here, a Ctrl-C would end the session before its summary.
            self._interrupted_at_start = drop_start_up_sigint()
        return started

    # tryfirst: before xdist's own implementation, which skips the collection.
    @pytest.hookimpl(tryfirst=True)
    def pytest_collection(self) -> None:
        if self._interrupted_at_start:
            raise KeyboardInterrupt

    # tryfirst: before xdist's terminal reporter writes its status line for the
    # first time.
    @pytest.hookimpl(tryfirst=True)
    def pytest_xdist_setupnodes(self, config: pytest.Config) -> None:
        write_each_status_once(config)

    # tryfirst: before xdist's own implementation, which would make its default
    # scheduler (the hook takes the first answer).
    @pytest.hookimpl(tryfirst=True)
    def pytest_xdist_make_scheduler(self, config: pytest.Config, log: Any) -> Any:
        if self.concurrency == 1 or config.getoption("dist") != "load":
            return None
        from pytest_delphyne.xdist_scheduling import InFlightLoadScheduling

        return InFlightLoadScheduling(config, log, queued=self.concurrency + 1)

    @pytest.hookimpl
    def pytest_testnodedown(self, node: WorkerController, error: object) -> None:
        self._take_unfinished(getattr(node, "workeroutput", None))

    def _take_unfinished(self, workeroutput: dict[str, Any] | None) -> None:
        unfinished = (workeroutput or {}).get(UNFINISHED_KEY)
        if unfinished and self.on_unfinished is not None:
            self.on_unfinished(unfinished)

    @pytest.hookimpl
    def pytest_handlecrashitem(
        self, crashitem: str, report: pytest.TestReport, sched: object
    ) -> None:
        # xdist says which worker crashed; the config's exception.txt also says how.
        node = getattr(report, "node", None)
        report.longrepr = f"{report.longrepr}: {describe_worker_death(node)}"

    @pytest.hookimpl
    def pytest_xdist_node_collection_finished(
        self, node: object, ids: Sequence[str]
    ) -> None:
        # Every worker collects the same items: the first one's are the session's.
        if self._collection_seen:
            return
        self._collection_seen = True
        selected: set[tuple[str, str]] = set()
        for plan in self.plans:
            prefix = item_id_prefix(plan)
            selected.update(
                (plan["key"], nodeid[len(prefix) : -1])
                for nodeid in ids
                if nodeid.startswith(prefix)
            )
        self.on_worker_collection(selected)

    def stop(self, reason: str) -> None:
        """Stop the session: xdist's controller loop reads its own `shouldstop`,
        not the session's."""
        dsession = self.config.pluginmanager.get_plugin("dsession")
        if dsession is not None:
            dsession.shouldstop = reason

    def deliver_queued_events(self) -> None:
        """Deliver the workers' events still queued, once each.

        An interrupted xdist controller leaves its workers' events queued: a config
        that started (it would stay todo without its interruption time) or ended (its
        result would be lost). Nothing processes that queue any more: its events go
        through pytest's hooks as xdist's own handlers send them, so that the
        recorder, the terminal's counts and junitxml all see them. Called again once
        xdist has shut its workers down, for what they sent meanwhile.
        """
        dsession = self.config.pluginmanager.get_plugin("dsession")
        queue = getattr(dsession, "queue", None)
        if queue is None:
            return
        hook = self.config.hook
        for name, kwargs in queue.queue.copy():
            if id(kwargs) in self._delivered:
                continue
            self._delivered.add(id(kwargs))
            if name == "logstart":
                hook.pytest_runtest_logstart(
                    nodeid=kwargs["nodeid"], location=kwargs["location"]
                )
            elif name == "testreport":
                report = kwargs["rep"]
                # As xdist marks it: junitxml pairs a worker's reports by it.
                report.node = kwargs["node"]
                hook.pytest_runtest_logreport(report=report)
            elif name == "workerfinished":
                # xdist keeps the worker's output on its node.
                self._take_unfinished(getattr(kwargs["node"], "workeroutput", None))
