"""From an experiment file to the plan every process agrees on.

The controller imports each `--delphyne-exp` file, finds its `Experiment`, loads it
(naming new configs) and turns it into an `ExperimentPlan`: the configs in the code's
order, with their names, statuses and params, the stored tracebacks of failed ones, and
the configs the state holds that the code no longer lists.
"""

from __future__ import annotations

import os
import traceback
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pytest

from pytest_delphyne import layout
from pytest_delphyne.errors import DelphyneError
from pytest_delphyne.experiment import Experiment
from pytest_delphyne.workers import ExperimentPlan, PlannedConfig, file_identity

if TYPE_CHECKING:
    from types import ModuleType

MISSING_FILE_MESSAGE = "--delphyne-exp: experiment file not found: {path}"
IMPORT_FAILED_MESSAGE = "--delphyne-exp: importing {path} failed:\n{error}"
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
STORED_FAILURE_TAIL_LINES = 60
MISSING_DIRECTORY_MESSAGE = (
    "config {name} is done in {state_file}, but its directory {directory} is gone "
    "(deleted by hand?), with its result and cache. It is reported as failed, not "
    "rerun, and no summary is written without it; --lf runs it again"
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

    if not spec.path.is_file():
        raise pytest.UsageError(MISSING_FILE_MESSAGE.format(path=spec.path))
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
            IMPORT_FAILED_MESSAGE.format(
                path=spec.path, error="".join(traceback.format_exception(error))
            )
        ) from error


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


def stored_traceback(experiment: Experiment[Any], name: str) -> str:
    path = layout.exception_file_path(experiment.absolute_output_dir, name)
    try:
        lines = path.read_text(errors="replace").splitlines()
    except OSError:
        return f"(no {layout.EXCEPTION_FILE} was kept for this config)"
    return "\n".join(lines[-STORED_FAILURE_TAIL_LINES:])


def build_plan(
    experiment: Experiment[Any],
    spec: ExperimentSpec,
    attr: str,
    rootpath: Path,
    names: list[str] | None = None,
) -> tuple[ExperimentPlan, dict[str, Any]]:
    """What every process must know of a loaded experiment, and its configs by name
    (those of `names`, by default every config the code lists)."""
    state = experiment.load_state()
    if names is None:
        # The names load() found or gave, in the code's order: nothing is recomputed.
        names = experiment.config_names()
    listed = set(names)
    configs: list[PlannedConfig] = []
    by_name: dict[str, Any] = {}
    stored_failures: dict[str, str] = {}
    # One listing rather than a stat per config: 100,000 configs cost 0.03 s.
    try:
        present = set(os.listdir(experiment.absolute_output_dir / layout.CONFIGS_DIR))
    except FileNotFoundError:
        present = set()
    for name in names:
        info = state.configs[name]
        by_name[name] = info.params
        status: str = info.status
        if status == "done" and name not in present:
            # A done config must have its result (SPEC §3): this one is a failure
            # to report, and --lf reruns it.
            status = "failed"
            stored_failures[name] = MISSING_DIRECTORY_MESSAGE.format(
                name=name,
                state_file=experiment.store.state_file,
                directory=experiment.config_dir(name),
            )
        configs.append(
            PlannedConfig(
                name=name,
                status=status,
                params=experiment.plain_params(name, info.params),
            )
        )
        if info.status == "failed":
            stored_failures[name] = stored_traceback(experiment, name)
    output_dir = experiment.absolute_output_dir
    plan = ExperimentPlan(
        key=f"{spec.path}::{attr}",
        file=file_id(spec.path, rootpath),
        attr=attr,
        output_dir=str(output_dir),
        output_dir_id=file_identity(output_dir),
        configs=configs,
        stored_failures=stored_failures,
        orphans=[name for name in state.configs if name not in listed],
    )
    return plan, by_name


def file_id(path: Path, rootpath: Path) -> str:
    """The file's part of its items' node ids: relative to the rootdir."""
    try:
        return "/".join(path.relative_to(rootpath).parts)
    except ValueError:
        return str(path)
