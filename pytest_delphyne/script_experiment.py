"""An experiment's Python file: the file that created it, and the experiment a
script builds under `if __name__ == "__main__":`.

No module-level name holds such an experiment, so a process that needs it (an xdist
worker, the comparison) runs the script as `__main__` until the script calls
`Experiment.resume()` or `run_cli()`, which hand the experiment over instead of running.
"""

from __future__ import annotations

import runpy
import sys
from pathlib import Path
from typing import TYPE_CHECKING, Any

from pytest_delphyne.roster import UnknownConfigError

if TYPE_CHECKING:
    from types import FrameType

    from pytest_delphyne.experiment import Experiment

SCRIPT_WITHOUT_EXPERIMENT_MESSAGE = (
    "{path} defines no module-level Experiment, and running it as a script never "
    "reached Experiment.resume() or run_cli()"
)

# Set while a process runs a script to find the experiment it defines under `__main__`.
_capturing_script_experiment = False


def defining_file() -> Path | None:
    """The Python file of the code creating an `Experiment` (called by its
    `__post_init__`), or `None` in an interactive session."""
    # The first frame outside these modules and `dataclasses` is the code creating
    # the experiment (the generated `__init__` runs with `experiment`'s globals).
    frame: FrameType | None = sys._getframe(1)
    while frame is not None and frame.f_globals.get("__name__") in _EXPERIMENT_MODULES:
        frame = frame.f_back
    file = frame.f_globals.get("__file__") if frame is not None else None
    return Path(file).absolute() if isinstance(file, str) else None


_EXPERIMENT_MODULES = frozenset({__name__, "pytest_delphyne.experiment", "dataclasses"})


class _ScriptExperimentFound(BaseException):
    # A BaseException, so that the script's own `except Exception` cannot swallow it.
    def __init__(self, experiment: Experiment[Any]):
        super().__init__()
        self.experiment = experiment


def hand_over_if_captured(experiment: Experiment[Any]) -> None:
    """Hand `experiment` to `experiment_of_script` when a script is being run to
    find it (a call of `resume()` or `run_cli()` then returns to the caller of
    `experiment_of_script` instead of running)."""
    if _capturing_script_experiment:
        raise _ScriptExperimentFound(experiment)


def experiment_of_script(path: Path) -> Experiment[Any]:
    """The experiment a script builds under `if __name__ == "__main__":`.

    The script runs as `__main__` until it calls `resume()` or `run_cli()` on its
    experiment, which then hand it over instead of running.

    Raises:
        UnknownConfigError: the script never got there.
    """
    global _capturing_script_experiment
    _capturing_script_experiment = True
    sys.path.insert(0, str(path.parent))
    try:
        runpy.run_path(str(path), run_name="__main__")
    except _ScriptExperimentFound as found:
        return found.experiment
    finally:
        _capturing_script_experiment = False
        sys.path.remove(str(path.parent))
    raise UnknownConfigError(SCRIPT_WITHOUT_EXPERIMENT_MESSAGE.format(path=path))
