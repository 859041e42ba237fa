"""What `Experiment` writes to its state outside a run, each write under the run lock.

`load()` brings the state up to date with the code: the configs it lists and the
state lacks are named and added, those it no longer lists are warned about, results
on disk that the state has not recorded are adopted, and the journal is folded.
`clean_index()` and `mark_errors_as_todos()` are the user's own edits. During a run
the recorder is the state's one writer; these take the same lock, so they wait for
no run and refuse to write while one holds it.
"""

from __future__ import annotations

import contextlib
import warnings
from dataclasses import dataclass, replace
from typing import TYPE_CHECKING, Any, TypeVar

from pytest_delphyne import layout
from pytest_delphyne.configs import ExperimentConfig
from pytest_delphyne.identity import validate_config_name
from pytest_delphyne.lock import ExperimentLockedError, RunLock
from pytest_delphyne.recovery import recover_results
from pytest_delphyne.roster import add_configs, listed_names
from pytest_delphyne.state import ExperimentState

if TYPE_CHECKING:
    from pytest_delphyne.experiment import Experiment

UNLISTED_CONFIGS_MESSAGE = (
    "{count} config(s) in {state_file} are no longer listed by the experiment: "
    "{names}. Experiment.clean_index() removes them from the state."
)
_NAMES_SHOWN = 10

C = TypeVar("C", bound=ExperimentConfig)


class UnlistedConfigsWarning(UserWarning):
    """The state has configs that the experiment no longer lists."""


@dataclass(frozen=True)
class LoadedState:
    """What `load_into_state` found and did.

    Attributes:
        names: the state's name of each config of `Experiment.configs`, in order
            (each config of the state, without `configs`).
        params: each listed config by name, with its params as plain data (`None`
            without `configs`).
        recovered: the configs whose results on disk were recorded.
        set_aside: the configs whose journal records no longer fit the state.
    """

    names: list[str]
    params: dict[str, tuple[object, dict[str, Any]]] | None
    recovered: list[str]
    set_aside: list[str]


def load_into_state(experiment: Experiment[Any]) -> LoadedState:
    """Create or update the state of `experiment` with its configs; see
    `Experiment.load()` for what is written and what is raised."""
    store = experiment.store
    existed = store.exists()
    set_aside: list[str] = []
    if existed:
        state = store.load()
        set_aside = [update.name for update in store.set_aside]
    else:
        state = ExperimentState(experiment.name, experiment.description, {})
    must_write = not existed
    for attribute in ("name", "description"):
        value = getattr(experiment, attribute)
        if value is not None and value != getattr(state, attribute):
            setattr(state, attribute, value)
            must_write = True
    for name in state.configs:
        validate_config_name(name)
    params = None
    if experiment.configs is not None:
        enrolment = add_configs(
            state,
            experiment.configs,
            experiment.config_class,
            experiment.config_naming,
            store.state_file,
        )
        names, params = enrolment.names, enrolment.params
        must_write = must_write or bool(enrolment.added)
        if enrolment.unlisted:
            _warn_unlisted(experiment, enrolment.unlisted)
    else:
        names = list(state.configs)
    recovered = recover_results(experiment.absolute_output_dir, state, experiment.codec)
    if recovered and not must_write:
        try:
            write_state(experiment, state)
        except ExperimentLockedError:
            # The run in progress records them: a reader only looks.
            recovered = []
    elif must_write:
        write_state(experiment, state)
    elif store.journal_file.exists():
        # Folding while another process records would drop what it records next.
        # Only a tidying: on a full disk the journal stays, applied on each load.
        with contextlib.suppress(ExperimentLockedError, OSError):
            write_state(experiment, state)
    return LoadedState(names, params, recovered, set_aside)


def _warn_unlisted(experiment: Experiment[Any], names: list[str]) -> None:
    shown = ", ".join(names[:_NAMES_SHOWN])
    if len(names) > _NAMES_SHOWN:
        shown += f" and {len(names) - _NAMES_SHOWN} more"
    message = UNLISTED_CONFIGS_MESSAGE.format(
        count=len(names), state_file=experiment.store.state_file, names=shown
    )
    # Points at the caller of `Experiment.load()`, past `load_into_state`.
    warnings.warn(message, UnlistedConfigsWarning, stacklevel=4)


def write_state(experiment: Experiment[C], state: ExperimentState[C]) -> None:
    """Save `state` as the state of `experiment`, holding the run lock.

    Raises:
        ExperimentLockedError: another process is running the experiment.
    """
    # The lock is re-entrant within a process, so a runner holding it can call this.
    with RunLock(experiment.absolute_output_dir):
        experiment.store.save(state)


def remove_unlisted(experiment: Experiment[Any]) -> None:
    """Remove from the state every config that `experiment.configs` does not list
    (`Experiment.clean_index()`)."""
    state = experiment.load_state()
    listed = listed_names(state, experiment.configs)
    state.configs = {n: i for n, i in state.configs.items() if n in listed}
    write_state(experiment, state)


def mark_failed_as_todo(experiment: Experiment[Any]) -> None:
    """Mark every `failed` config of the state `todo`
    (`Experiment.mark_errors_as_todos()`)."""
    state = experiment.load_state()
    for name, info in state.configs.items():
        if info.status == "failed":
            state.configs[name] = replace(info, status="todo")
            # Else the next load would find the failure on disk and keep it.
            (experiment.config_dir(name) / layout.FAILURE_FILE).unlink(missing_ok=True)
    write_state(experiment, state)
