"""The `pytest.main` call behind `Experiment.resume()` and the CLI's `run`.

Configs are run one way: through the pytest plugin. A live experiment is handed to
the plugin (it may exist only in the running script), and the request becomes the
command line a user would type.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import pytest

from pytest_delphyne.discovery import ProvidedExperiment, locate_experiment
from pytest_delphyne.options import settings_arguments
from pytest_delphyne.settings import RunSettings

if TYPE_CHECKING:
    from pathlib import Path

    from pytest_delphyne.experiment import Experiment


@dataclass(frozen=True)
class RunRequest:
    """How to run an experiment's pending configs.

    Attributes:
        max_workers: Worker processes (xdist's `-n`); 1 runs in this process.
        concurrency: Configs in flight in each process (`--delphyne-concurrency`).
        retry_errors: Also rerun the failed configs (pytest's `--lf`).
        interactive: Pressing Enter prints elapsed times and writes a snapshot.
        quiet: Less progress output (`-q`).
        settings: Overrides of the experiment's settings; `None` fields keep them.
    """

    max_workers: int = 1
    concurrency: int = 1
    retry_errors: bool = False
    interactive: bool = False
    quiet: bool = False
    settings: RunSettings = field(default_factory=RunSettings)


def pytest_arguments(
    file: Path, attr: str, output_dir: Path, request: RunRequest
) -> list[str]:
    """The pytest command line that runs the experiment as `request` asks."""
    arguments = [
        f"--delphyne-exp={file}::{attr}",
        # The file as the positional path: collect it alone, whatever `testpaths` the
        # surrounding project configures.
        str(file),
        f"--rootdir={file.parent}",
        # pytest's own cache belongs with the experiment, not in the working directory.
        "-o",
        f"cache_dir={output_dir / '.pytest_cache'}",
    ]
    if request.max_workers > 1:
        arguments += ["-n", str(request.max_workers)]
    if request.concurrency != 1:
        # Checked by the plugin, whose error names the option.
        arguments.append(f"--delphyne-concurrency={request.concurrency}")
    if request.retry_errors:
        arguments.append("--lf")
    if request.quiet:
        arguments.append("-q")
    if request.interactive:
        arguments.append("--delphyne-interactive")
    arguments += settings_arguments(request.settings)
    return arguments


def run_experiment(experiment: Experiment[Any], request: RunRequest) -> int:
    """Run the experiment's pending configs through the pytest plugin.

    Returns:
        pytest's exit code.
    """
    file, attr = locate_experiment(experiment)
    arguments = pytest_arguments(file, attr, experiment.absolute_output_dir, request)
    return int(
        pytest.main(arguments, plugins=[ProvidedExperiment(file, attr, experiment)])
    )
