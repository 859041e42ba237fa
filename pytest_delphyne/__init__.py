"""pytest-delphyne: run a grid of oracular-program configurations as pytest items."""

from __future__ import annotations

from pytest_delphyne.cache import (
    CacheFileError,
    CacheMissError,
    CacheMode,
    RequestCache,
)
from pytest_delphyne.environment import (
    Budget,
    BudgetExhausted,
    Environment,
    LogLevel,
)
from pytest_delphyne.errors import DelphyneError
from pytest_delphyne.experiment import (
    ExecutionContext,
    Experiment,
    ExperimentConfig,
    WorkersSetup,
)
from pytest_delphyne.layout import path_stem
from pytest_delphyne.models import ChatAnswer, ModelPrice, OpenAIChatModel
from pytest_delphyne.runtime import (
    Outcome,
    RecordedResult,
    ReplayReport,
    Run,
    RunOptions,
    RunRecord,
    execute,
    read_result,
    replay,
)
from pytest_delphyne.state import ConfigInfo, ExperimentState

__all__ = [
    "Budget",
    "BudgetExhausted",
    "CacheFileError",
    "CacheMissError",
    "CacheMode",
    "ChatAnswer",
    "ConfigInfo",
    "DelphyneError",
    "Environment",
    "ExecutionContext",
    "Experiment",
    "ExperimentConfig",
    "ExperimentState",
    "LogLevel",
    "ModelPrice",
    "OpenAIChatModel",
    "Outcome",
    "RecordedResult",
    "ReplayReport",
    "RequestCache",
    "Run",
    "RunOptions",
    "RunRecord",
    "WorkersSetup",
    "execute",
    "path_stem",
    "read_result",
    "replay",
]
