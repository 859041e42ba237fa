"""What crosses the process boundary between the controller and xdist workers.

The controller loads every experiment (naming new configs) before any worker starts, and
sends each worker a plan: the configs to collect, with their names, statuses and params.
Workers never read the state file, so workers on other machines collect exactly what the
controller decided. Results come back in `report.user_properties`.

Everything sent is plain builtins; the only pickled value is the result of
`WorkersSetup.common`, which is the user's object and travels as `bytes`.
"""

from __future__ import annotations

import ctypes
import ctypes.util
import json
import os
import pickle
import signal
import subprocess
import sys
from pathlib import Path
from typing import TYPE_CHECKING, Any, TypedDict, cast

import pytest

if TYPE_CHECKING:
    from xdist.workermanage import WorkerController

PLANS_KEY = "delphyne_plans"
SETUP_VALUES_KEY = "delphyne_setup_values"
SPEND_LEDGER_KEY = "delphyne_spend_ledger"
RESULT_PROPERTY = "delphyne.result"

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


class PlannedConfig(TypedDict):
    """One config as the controller planned it."""

    name: str
    status: str
    params: dict[str, Any]


class ExperimentPlan(TypedDict):
    """What every process must agree on about one experiment before collecting it.

    `key` is `<absolute file path>::<attribute>` on the controller, and identifies the
    experiment in reports; `file` is the experiment file relative to the rootdir, where
    a worker on another machine finds its own copy; `output_dir` is absolute, and
    `output_dir_id` identifies that directory (device, inode) so that a worker can tell
    whether it sees the same directory as the controller.
    """

    key: str
    file: str
    attr: str
    output_dir: str
    output_dir_id: list[int]
    configs: list[PlannedConfig]
    stored_failures: dict[str, str]
    orphans: list[str]


class ResultPayload(TypedDict):
    """What a config item reports to the controller about its run."""

    experiment: str
    config: str
    action: str
    status: str
    start_time: str | None
    end_time: str | None
    success: bool | None
    spent: dict[str, float]
    paid: dict[str, float]
    files: dict[str, bytes]


def encode_result(payload: ResultPayload) -> tuple[str, dict[str, bytes]]:
    """The payload as it travels in `user_properties`: JSON text, and the files.

    execnet serializes builtins in pure Python, object by object: one string crosses
    about 20 times cheaper than the nested dicts, on the worker and on the controller.
    """
    fields = {key: value for key, value in payload.items() if key != "files"}
    return json.dumps(fields), payload["files"]


def decode_result(value: object) -> ResultPayload:
    """The payload `encode_result` made."""
    text, files = cast("tuple[str, dict[str, bytes]]", value)
    payload = cast("ResultPayload", json.loads(text))
    payload["files"] = files
    return payload


def encode_plans(plans: list[ExperimentPlan]) -> str:
    """The plans as they travel in `workerinput`: one JSON text, made once for every
    worker. execnet would serialize each of 100,000 configs' dicts object by object
    in Python, for each worker (2 s and 110 MB more on the controller)."""
    return json.dumps(plans)


def decode_plans(text: str) -> list[ExperimentPlan]:
    """The plans `encode_plans` made."""
    return cast("list[ExperimentPlan]", json.loads(text))


def file_identity(path: Path) -> list[int]:
    """What identifies `path` across processes of one machine: device and inode."""
    stat = path.stat()
    return [stat.st_dev, stat.st_ino]


def is_same_file(path: Path, identity: list[int]) -> bool:
    """Whether this process sees at `path` the very file `file_identity` identified (a
    worker on another machine, or in another mount namespace, does not)."""
    try:
        return file_identity(path) == identity
    except OSError:
        return False


def item_id_prefix(plan: ExperimentPlan) -> str:
    """The start of the node id of each config item of the plan's experiment, which
    ends with `<config name>]`."""
    return f"{plan['file']}::{plan['attr']}["


def worker_input(config: pytest.Config) -> dict[str, Any] | None:
    """The xdist `workerinput` of this process, or `None` on the controller.

    Only the controller writes the state: this is the one check for it.
    """
    value: dict[str, Any] | None = getattr(config, "workerinput", None)
    return value


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


def load_setup_value(data: bytes) -> object:
    # The bytes were pickled by this session's controller, which sent them down the
    # execnet channel it opened itself; nothing here was read from disk.
    return pickle.loads(data)


def check_picklable(value: object, *, what: str, experiment: str) -> None:
    """Refuse, before any config runs, a value that workers could not receive."""
    try:
        pickle.dumps(value)
    except Exception as error:
        raise pytest.UsageError(
            UNPICKLABLE_MESSAGE.format(what=what, experiment=experiment, error=error)
        ) from error


_PR_SET_PDEATHSIG = 1  # from <linux/prctl.h>


def die_with_controller() -> None:
    """Have the kernel kill this worker when the process that started it dies.

    An xdist worker whose controller was killed keeps running its config: its report
    can no longer be recorded, so every call it makes is paid for nothing, and the
    files it writes race with the next run of the same config. Linux only; elsewhere
    the worker stops when it next talks to its controller.
    """
    if not sys.platform.startswith("linux"):
        return
    parent = os.getppid()
    libc = ctypes.CDLL(ctypes.util.find_library("c"), use_errno=True)
    if libc.prctl(_PR_SET_PDEATHSIG, signal.SIGKILL, 0, 0, 0) != 0:
        return
    if os.getppid() != parent:  # the controller died before the call above
        os.kill(os.getpid(), signal.SIGKILL)


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


class XdistHooks:
    """The xdist hooks, registered only when pytest-xdist is installed."""

    def __init__(
        self,
        plans: list[ExperimentPlan],
        setup_values: dict[str, bytes],
        spend_ledger: Path | None = None,
    ) -> None:
        self.plans = plans
        self.setup_values = setup_values
        self.spend_ledger = spend_ledger
        self._plans_text: str | None = None

    @pytest.hookimpl
    def pytest_configure_node(self, node: WorkerController) -> None:
        if self._plans_text is None:
            self._plans_text = encode_plans(self.plans)
        node.workerinput[PLANS_KEY] = self._plans_text
        node.workerinput[SETUP_VALUES_KEY] = self.setup_values
        if self.spend_ledger is not None:
            node.workerinput[SPEND_LEDGER_KEY] = [
                str(self.spend_ledger),
                file_identity(self.spend_ledger),
            ]

    @pytest.hookimpl
    def pytest_handlecrashitem(
        self, crashitem: str, report: pytest.TestReport, sched: object
    ) -> None:
        # xdist says which worker crashed; the config's exception.txt also says how.
        node = getattr(report, "node", None)
        report.longrepr = f"{report.longrepr}: {describe_worker_death(node)}"
