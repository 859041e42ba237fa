"""pytest-delphyne: run a grid of oracular-program configurations as pytest items."""

from __future__ import annotations

from pytest_delphyne.experiment import (
    ExecutionContext,
    Experiment,
    ExperimentConfig,
    WorkersSetup,
)
from pytest_delphyne.layout import path_stem
from pytest_delphyne.state import ConfigInfo, ExperimentState

__all__ = [
    "ConfigInfo",
    "ExecutionContext",
    "Experiment",
    "ExperimentConfig",
    "ExperimentState",
    "WorkersSetup",
    "path_stem",
]
