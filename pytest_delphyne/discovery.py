"""Where an experiment is, for every process that needs it.

The plugin is told a file (`--delphyne-exp=PATH[::ATTR]`) and finds the `Experiment`
in it (by name, or by running the file as a script up to its `run_cli()`), or is
handed a live one (`Experiment.resume()`, `run_cli()`); the launcher goes
the other way, from a live experiment to its file and module-level name, which xdist
workers import to collect the same configs.
"""

from __future__ import annotations

import importlib
import os
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import _pytest
import pluggy
import pytest

from pytest_delphyne import layout
from pytest_delphyne.errors import DelphyneError
from pytest_delphyne.experiment import Experiment
from pytest_delphyne.roster import UnknownConfigError
from pytest_delphyne.script_experiment import experiment_of_script
from pytest_delphyne.tracebacks import PACKAGE_DIR, format_user_frames

if TYPE_CHECKING:
    from types import ModuleType

MISSING_FILE_MESSAGE = "--delphyne-exp: experiment file not found: {path}"
IMPORT_FAILED_MESSAGE = "--delphyne-exp: importing {path} failed:\n{error}"
DIRECTORY_MESSAGE = (
    "--delphyne-exp: {path} is a directory; give the Python file that defines the "
    "Experiment{candidates}"
)
STATE_FILE_MESSAGE = (
    "--delphyne-exp: {path} is an experiment's state, not its code; give the Python "
    "file that defines the Experiment"
)
NOT_PYTHON_MESSAGE = (
    "--delphyne-exp: {path} is not a Python file; give the Python file that defines "
    "the Experiment"
)
_STATE_FILES = frozenset(
    {layout.STATE_FILE, layout.JOURNAL_FILE, layout.STATE_INDEX_FILE}
)
# Frames of the import machinery and of the plugins: none is the user's.
_MACHINERY_DIRS = (
    *(
        str(Path(file).resolve().parent) + os.sep
        for file in (importlib.__file__, _pytest.__file__, pluggy.__file__)
        if file is not None
    ),
    PACKAGE_DIR,
)
NO_EXPERIMENT_MESSAGE = (
    "--delphyne-exp: {path} defines no Experiment (found none among its "
    "module attributes)"
)
AMBIGUOUS_MESSAGE = (
    "--delphyne-exp: {path} defines several Experiments ({found}); "
    "choose one with {path}::ATTR"
)
UNKNOWN_ATTRIBUTE_MESSAGE = (
    "--delphyne-exp: {path} has no Experiment named {attr!r} "
    "(Experiments found: {found})"
)


@dataclass(frozen=True)
class ExperimentSpec:
    """A `--delphyne-exp` value: `PATH[::ATTR]`, the path made absolute.

    Attributes:
        text: The value as the user wrote it, for messages.
        path: The experiment file, absolute.
        attr: The module attribute holding the `Experiment`, when given.
    """

    text: str
    path: Path
    attr: str | None

    @classmethod
    def parse(cls, text: str, base: Path) -> ExperimentSpec:
        path_text, separator, attr = text.partition("::")
        path = (base / path_text).resolve()
        return cls(text=text, path=path, attr=attr if separator else None)


# eq=False: pluggy keeps plugins in sets, and an Experiment is not hashable.
@dataclass(frozen=True, eq=False)
class ProvidedExperiment:
    """A live `Experiment` handed to the plugin, used instead of importing its file.

    `Experiment.resume()` registers one through `pytest.main(plugins=[...])`: the
    experiment may exist only in the running script (built under
    `if __name__ == "__main__":`), which an import would not recreate.
    """

    path: Path
    attr: str
    experiment: Experiment[Any]


def provided_experiment(
    config: pytest.Config, spec: ExperimentSpec
) -> tuple[str, Experiment[Any]] | None:
    for plugin in config.pluginmanager.get_plugins():
        if (
            isinstance(plugin, ProvidedExperiment)
            and plugin.path == spec.path
            and spec.attr in (None, plugin.attr)
        ):
            return plugin.attr, plugin.experiment
    return None


def import_experiment(config: pytest.Config, spec: ExperimentSpec) -> ModuleType:
    """Import an experiment file the way pytest imports test modules."""
    from _pytest.pathlib import import_path

    check_experiment_path(spec.path)
    try:
        return import_path(
            spec.path,
            mode=config.getoption("importmode"),
            root=config.rootpath,
            consider_namespace_packages=config.getini("consider_namespace_packages"),
        )
    except DelphyneError as error:
        # An experiment file refusing to start (say, no endpoint configured): its
        # message is the whole story.
        raise pytest.UsageError(f"--delphyne-exp={spec.text}: {error}") from error
    except Exception as error:
        raise pytest.UsageError(
            IMPORT_FAILED_MESSAGE.format(path=spec.path, error=user_traceback(error))
        ) from None


def check_experiment_path(path: Path) -> None:
    """Refuse, in one line, a path that cannot be an experiment file.

    Raises:
        pytest.UsageError: the path is missing, a directory (the message lists the
            Python files in it that build an `Experiment`), a state file or another
            file that is not Python.
    """
    if path.is_dir():
        found = sorted(
            candidate.name
            for candidate in path.glob("*.py")
            if _mentions_an_experiment(candidate)
        )
        candidates = f" (candidates: {', '.join(found)})" if found else ""
        raise pytest.UsageError(
            DIRECTORY_MESSAGE.format(path=path, candidates=candidates)
        )
    if not path.is_file():
        raise pytest.UsageError(MISSING_FILE_MESSAGE.format(path=path))
    if path.name in _STATE_FILES:
        raise pytest.UsageError(STATE_FILE_MESSAGE.format(path=path))
    if path.suffix != ".py":
        raise pytest.UsageError(NOT_PYTHON_MESSAGE.format(path=path))


def _mentions_an_experiment(path: Path) -> bool:
    try:
        return "Experiment(" in path.read_text(errors="replace")
    except OSError:
        return False


def user_traceback(error: BaseException) -> str:
    """`error`'s traceback without the frames of the import machinery, pytest and
    this plugin: what is left is the user's code (a syntax error shows its line)."""
    return format_user_frames(error, _MACHINERY_DIRS)


def find_experiment(module: ModuleType, spec: ExperimentSpec) -> tuple[str, Any]:
    found = {
        name: value
        for name, value in vars(module).items()
        if isinstance(value, Experiment)
    }
    listed = ", ".join(sorted(found)) or "none"
    if spec.attr is not None:
        if spec.attr not in found:
            raise pytest.UsageError(
                UNKNOWN_ATTRIBUTE_MESSAGE.format(
                    path=spec.path, attr=spec.attr, found=listed
                )
            )
        return spec.attr, found[spec.attr]
    if not found:
        raise pytest.UsageError(NO_EXPERIMENT_MESSAGE.format(path=spec.path))
    if len(found) > 1:
        raise pytest.UsageError(AMBIGUOUS_MESSAGE.format(path=spec.path, found=listed))
    return next(iter(found.items()))


NOT_IN_A_FILE_MESSAGE = (
    "Experiment.resume() needs an experiment defined in a Python file; this one was "
    "created in an interactive session"
)
ANONYMOUS_ATTR = "__experiment__"
"""The attribute that stands in item ids for an experiment no module-level name holds
(`Experiment(...).run_cli()`, or one built inside a function)."""


def locate_experiment(experiment: Experiment[Any]) -> tuple[Path, str]:
    """The file defining `experiment`, and the module-level name that holds it
    (`ANONYMOUS_ATTR` when none does)."""
    file = experiment.defined_in
    if file is None:
        raise DelphyneError(NOT_IN_A_FILE_MESSAGE)
    file = file.resolve()
    for module in list(sys.modules.values()):
        module_file = getattr(module, "__file__", None)
        if module_file is None or Path(module_file).resolve() != file:
            continue
        for name, value in vars(module).items():
            if value is experiment:
                return file, name
    return file, ANONYMOUS_ATTR


def experiment_of_file(config: pytest.Config, spec: ExperimentSpec) -> tuple[str, Any]:
    """The experiment of `spec`'s file: a module-level `Experiment`, or else the one
    the file builds when run as a script (`Experiment(...).run_cli()` under
    `if __name__ == "__main__":`, as Delphyne's examples do)."""
    module = import_experiment(config, spec)
    if spec.attr not in (None, ANONYMOUS_ATTR) or any(
        isinstance(value, Experiment) for value in vars(module).values()
    ):
        return find_experiment(module, spec)
    try:
        return ANONYMOUS_ATTR, experiment_of_script(spec.path)
    except UnknownConfigError:
        raise pytest.UsageError(NO_EXPERIMENT_MESSAGE.format(path=spec.path)) from None


def workers_import_it(config: pytest.Config, spec: ExperimentSpec, attr: str) -> bool:
    """Whether a worker's import of the file finds the experiment by its name (if not,
    the controller sends it: see `shipping.py`)."""
    if attr == ANONYMOUS_ATTR:
        return False
    module = import_experiment(config, spec)
    return isinstance(getattr(module, attr, None), Experiment)
