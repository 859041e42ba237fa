"""A config's past run, read back after the fact: replayed from its cache, or its
success values loaded from `result.yaml`.

A config is found by its name in the state, or by its params (canonical form, so
`Config(1)` finds the config stored as `Config(1.0)`); either way a config the state
does not have is an `UnknownConfigError` naming the state file.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any, TypeVar

from pytest_delphyne.configs import ExperimentConfig
from pytest_delphyne.identity import make_converter
from pytest_delphyne.ledger import LedgerWriter, ledger_file_path, new_attempt_id
from pytest_delphyne.results import ResultFileError, read_result
from pytest_delphyne.roster import CONFIG_NOT_IN_STATE_MESSAGE, UnknownConfigError

if TYPE_CHECKING:
    from collections.abc import Sequence

    from pytest_delphyne.experiment import Experiment
    from pytest_delphyne.replays import ReplayReport
    from pytest_delphyne.state import ExperimentState

UNKNOWN_CONFIG_MESSAGE = "No config named {name!r} in {state_file}"
NO_RESULT_MESSAGE = "Config {name!r} has no result yet ({path} does not exist)"

C = TypeVar("C", bound=ExperimentConfig)


def name_of_config(experiment: Experiment[C], config: C) -> str:
    """The state's name of `config`.

    Raises:
        UnknownConfigError: the state has no such config.
    """
    name = experiment.load_state().inverse_mapping()(config)
    if name is None:
        raise UnknownConfigError(
            CONFIG_NOT_IN_STATE_MESSAGE.format(
                config=config, state_file=experiment.store.state_file
            )
        )
    return name


def _state_with(experiment: Experiment[C], name: str) -> ExperimentState[C]:
    state = experiment.load_state()
    if name not in state.configs:
        raise UnknownConfigError(
            UNKNOWN_CONFIG_MESSAGE.format(
                name=name, state_file=experiment.store.state_file
            )
        )
    return state


def replay_by_name(experiment: Experiment[Any], config_name: str) -> ReplayReport:
    """Replay the config `config_name` from its cache (`replays.replay`); see
    `Experiment.replay_config_by_name`.

    Raises:
        UnknownConfigError: no config of that name.
    """
    from pytest_delphyne.replays import replay

    config = _state_with(experiment, config_name).configs[config_name].params
    # The one call a failed config may make again is paid: the ledger counts it.
    attempt = new_attempt_id()
    ledger = LedgerWriter(
        ledger_file_path(experiment.absolute_output_dir),
        config=config_name,
        attempt=attempt,
        session=attempt,
    )
    try:
        return replay(
            lambda: config.instantiate(experiment.configs_context),
            experiment.config_dir(config_name),
            config_name=config_name,
            log_level=experiment.log_level,
            ledger=ledger,
        )
    finally:
        ledger.close()


def replay_all(experiment: Experiment[Any]) -> dict[str, ReplayReport]:
    """Replay every config that ran (done or failed): each one's report, by name."""
    state = experiment.load_state()
    return {
        name: replay_by_name(experiment, name)
        for name, info in state.configs.items()
        if info.status != "todo"
    }


def success_values(
    experiment: Experiment[Any], config_name: str, type: Any
) -> Sequence[Any]:
    """The values of the outcome of `config_name`, loaded as a list of `type`.

    Raises:
        UnknownConfigError: no config of that name, or it has no result yet.
    """
    _state_with(experiment, config_name)
    try:
        recorded = read_result(experiment.config_dir(config_name))
    except ResultFileError as error:
        if not error.missing:
            raise
        raise UnknownConfigError(
            NO_RESULT_MESSAGE.format(name=config_name, path=error.path)
        ) from None
    loaded: list[Any] = make_converter().structure(recorded.values, list[type])
    return loaded
