"""pytest-delphyne: run a grid of oracular-program configurations as pytest items."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from pytest_delphyne.cache import (
    CacheFileError,
    CacheMissError,
    CacheMode,
    RequestCache,
)
from pytest_delphyne.configs import ExecutionContext, ExperimentConfig, WorkersSetup
from pytest_delphyne.environment import (
    Budget,
    BudgetExhausted,
    Environment,
    LogLevel,
)
from pytest_delphyne.errors import DelphyneError, EndpointError
from pytest_delphyne.experiment import Experiment
from pytest_delphyne.layout import path_stem, result_file_path, summary_file_path
from pytest_delphyne.model_prices import ModelPrice
from pytest_delphyne.models import ChatAnswer, OpenAIChatModel
from pytest_delphyne.replays import ReplayReport, replay
from pytest_delphyne.results import RecordedResult, read_result
from pytest_delphyne.runtime import Outcome, Run, RunOptions, RunRecord, execute
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
    "EndpointError",
    "Environment",
    "ExecutionContext",
    "Experiment",
    "ExperimentCLI",
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
    "compare",
    "execute",
    "path_stem",
    "read_result",
    "replay",
    "result_file_path",
    "summary_file_path",
]

if TYPE_CHECKING:
    from pytest_delphyne.cli import ExperimentCLI
    from pytest_delphyne.comparison import compare


def __getattr__(name: str) -> Any:
    # The command line imports pytest (70 ms): only what asks for it pays for it.
    if name == "ExperimentCLI":
        from pytest_delphyne.cli import ExperimentCLI

        return ExperimentCLI
    # The comparison reads its sources with pandas (half a second to import).
    if name == "compare":
        from pytest_delphyne.comparison import compare

        return compare
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
