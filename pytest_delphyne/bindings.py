"""One experiment as a process of the session sees it, and where the session keeps
them: its plan, whether its output directory is this process's too, its settings and
the meter of its spending.

The controller (`controller.py`) and each xdist worker (`worker_start.py`) bind their
experiments; the items (`items.py`) read them.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pytest

from pytest_delphyne.ledger import ledger_file_path
from pytest_delphyne.wire import is_same_file

if TYPE_CHECKING:
    from pytest_delphyne.experiment import Experiment
    from pytest_delphyne.selection import SelectionOptions
    from pytest_delphyne.settings import RunSettings
    from pytest_delphyne.spend_cap import SpendMeter
    from pytest_delphyne.wire import ExperimentPlan


bindings_key = pytest.StashKey[dict[Path, list["ExperimentBinding"]]]()
"""The experiments this process collects, by file (filled by the session)."""
worker_setup_key = pytest.StashKey[
    Callable[["ExperimentBinding", "Experiment[Any]"], None]
]()
"""Runs `WorkersSetup.per_worker` once in this process (provided by the session)."""


@dataclass
class ExperimentBinding:
    """One experiment as this process sees it: its plan and where its files go.

    Attributes:
        attr: The module attribute holding the `Experiment`.
        plan: What the controller decided for it (names, statuses, params).
        shares_output_dir: Whether this process sees the controller's output
            directory; when it does not, configs write to a scratch directory and their
            files travel back in the report.
        options: The selection options of the session.
        settings: The command line's overrides of the experiment's settings.
        meter: This process's spending, checked against the spend cap; it reads
            this experiment's ledger when this process sees the output directory.
        configs: Config objects by name, when this process already built them.
        experiment: The `Experiment` itself, when this process already has it (the
            controller).
        shipped: The experiment pickled by the controller, for a worker whose import
            of the file does not find it by name (see `shipping.py`).
    """

    attr: str
    plan: ExperimentPlan
    shares_output_dir: bool
    options: SelectionOptions
    settings: RunSettings
    meter: SpendMeter
    configs: dict[str, Any] = field(default_factory=dict)
    experiment: Experiment[Any] | None = None
    shipped: bytes | None = None

    def __post_init__(self) -> None:
        if self.shares_output_dir:
            # Every payment of the session's configs of this experiment is there,
            # whichever process of this machine made it.
            self.meter.watch(ledger_file_path(self.output_dir), self.plan["session"])

    @property
    def output_dir(self) -> Path:
        return Path(self.plan["output_dir"])


def sees_output_dir(plan: ExperimentPlan) -> bool:
    """Whether this process sees the same output directory as the controller."""
    return is_same_file(Path(plan["output_dir"]), plan["output_dir_id"])
