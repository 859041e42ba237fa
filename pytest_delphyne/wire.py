"""What crosses the process boundary between the controller and xdist workers: the
wire format, as plain builtins.

The controller loads every experiment (naming new configs) before any worker starts, and
sends each worker a plan: the configs to collect, with their names, statuses and params.
Workers never read the state file, so workers on other machines collect exactly what the
controller decided. Results come back in `report.user_properties`.

Everything sent is plain builtins; the only pickled value is the result of
`WorkersSetup.common`, which is the user's object and travels as `bytes` (see
`workers.py`).
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import TYPE_CHECKING, Any, TypedDict, cast

if TYPE_CHECKING:
    import pytest

PLANS_KEY = "delphyne_plans"
SETUP_VALUES_KEY = "delphyne_setup_values"
SHIPPED_EXPERIMENTS_KEY = "delphyne_shipped_experiments"
NOTICES_KEY = "delphyne_notices"
"""The execnet channel a worker sends its configs' notices up (see `notices.py`)."""
RESULT_PROPERTY = "delphyne.result"
ENDPOINT_ERROR_PROPERTY = "delphyne.endpoint_error"
"""An item's property holding the `EndpointError` that stopped its config: the
controller stops the session with it."""


class PlannedConfig(TypedDict):
    """One config as the controller planned it (`interrupted`: its last attempt
    started and never ended, so its next run resumes from its cache)."""

    name: str
    status: str
    params: dict[str, Any]
    interrupted: bool


class ExperimentPlan(TypedDict):
    """What every process must agree on about one experiment before collecting it.

    `key` is `<absolute file path>::<attribute>` on the controller, and identifies the
    experiment in reports; `file` is the experiment file relative to the rootdir, where
    a worker on another machine finds its own copy; `output_dir` is absolute, and
    `output_dir_id` identifies that directory (device, inode) so that a worker can tell
    whether it sees the same directory as the controller. `session` names the
    controller's session in the ledger of paid calls.
    """

    key: str
    file: str
    attr: str
    output_dir: str
    output_dir_id: list[int]
    configs: list[PlannedConfig]
    stored_failures: dict[str, str]
    orphans: list[str]
    session: str


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
