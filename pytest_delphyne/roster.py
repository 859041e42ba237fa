"""Which name of the state each config of `Experiment.configs` has.

The experiment lists configs; its state names them. A config is found in the state by
its canonical form (`identity`), so `Config(1)` finds the config stored as
`Config(1.0)`. `add_configs` finds each listed config and names and adds the new ones
(what `Experiment.load()` does); `names_in_state` and `config_names` only look them up.
`Roster` remembers what the last `load()` found, so that the plugin need not compute
100,000 canonical keys again.
"""

from __future__ import annotations

import uuid
from collections.abc import Callable, Sequence
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any, Final, TypeVar

from pytest_delphyne.errors import DelphyneError
from pytest_delphyne.identity import codec_for, validate_config_name
from pytest_delphyne.plain_data import canonical_json
from pytest_delphyne.state import ConfigInfo, ExperimentState

C = TypeVar("C")

NOT_A_CONFIG_MESSAGE: Final = (
    "configs[{index}] is a {type_name}, not a {class_name}: every config of the "
    "experiment must be an instance of its config_class"
)
DUPLICATE_NAME_MESSAGE: Final = (
    "config_naming gives the name {name!r} to configs[{index}] ({second}), but it "
    "already names {holder}: each config needs a name of its own"
)
NAME_HOLDER_LISTED: Final = "configs[{index}] ({config})"
NAME_HOLDER_STORED: Final = "{config}, stored in {state_file}"
CONFIG_NOT_IN_STATE_MESSAGE: Final = "Config {config!r} is not in {state_file}"


class InvalidConfigError(DelphyneError):
    """A config the experiment cannot take (see the message)."""


class UnknownConfigError(DelphyneError):
    """A config name or config that is not in the experiment's state."""


@dataclass(frozen=True)
class Enrolment:
    """What `add_configs` did to a state.

    Attributes:
        names: the name of each listed config, in order.
        added: the names of the configs it added.
        unlisted: the names of the state's configs that are not listed.
        params: each config of the state by name, with its params as plain data.
    """

    names: list[str]
    added: list[str]
    unlisted: list[str]
    params: dict[str, tuple[object, dict[str, Any]]]


def add_configs(
    state: ExperimentState[C],
    configs: Sequence[C],
    config_class: type[C],
    naming: Callable[[C, uuid.UUID], str] | None,
    state_file: Path,
) -> Enrolment:
    """Find each of `configs` in `state`, adding those it lacks as `todo`, named by
    `naming` (a fresh UUID without it).

    Raises:
        InvalidConfigError: a config that is not a `config_class` instance, or a name
            given to two different configs.
        InvalidConfigNameError: a name that cannot be a directory name.

    The state is the one stored in `state_file` (named in errors).
    """
    codec = codec_for(config_class)
    # Params read from the state are canonical already: dumping them is enough.
    # (Loaded from plain data, they dump to plain data: no need to check.)
    dumps: dict[str, tuple[object, dict[str, Any]]] = {}
    for name, info in state.configs.items():
        plain = info.plain
        if plain is None:
            plain = codec.dump(info.params, check=False)
            # Carried with the state: its saves and the summary need no dump.
            state.configs[name] = replace(info, plain=plain)
        dumps[name] = (info.params, plain)
    name_by_key = {canonical_json(dumped): name for name, (_, dumped) in dumps.items()}
    names: list[str] = []
    listed: set[str] = set()
    added: list[str] = []
    for index, config in enumerate(configs):
        if not isinstance(config, config_class):
            raise InvalidConfigError(
                NOT_A_CONFIG_MESSAGE.format(
                    index=index,
                    type_name=type(config).__qualname__,
                    class_name=config_class.__qualname__,
                )
            )
        # Most configs are canonical already: their plain dump finds them.
        dumped = codec.dump(config)
        existing = name_by_key.get(canonical_json(dumped))
        if existing is None:
            # As `codec.canonical_key`, keeping the canonical config it loads.
            canonical = codec.load(dumped)
            canonical_dump = codec.dump(canonical)
            key = canonical_json(canonical_dump)
            existing = name_by_key.get(key)
        if existing is not None:
            listed.add(existing)
            names.append(existing)
            continue
        fresh = uuid.uuid4()
        name = naming(canonical, fresh) if naming is not None else str(fresh)
        validate_config_name(name)
        if name in state.configs:
            raise InvalidConfigError(
                DUPLICATE_NAME_MESSAGE.format(
                    name=name,
                    index=index,
                    second=config,
                    holder=_name_holder(state, names, name, state_file),
                )
            )
        state.configs[name] = ConfigInfo(canonical, plain=canonical_dump)
        dumps[name] = (canonical, canonical_dump)
        name_by_key[key] = name
        listed.add(name)
        names.append(name)
        added.append(name)
    unlisted = [name for name in state.configs if name not in listed]
    return Enrolment(names, added, unlisted, dumps)


def _name_holder(
    state: ExperimentState[C], names: list[str], name: str, state_file: Path
) -> str:
    # Which config holds a name: one listed before, or one of the state only.
    config = state.configs[name].params
    if name in names:
        return NAME_HOLDER_LISTED.format(index=names.index(name), config=config)
    return NAME_HOLDER_STORED.format(config=config, state_file=state_file)


def names_in_state(
    state: ExperimentState[C], configs: Sequence[C] | None
) -> tuple[list[str], int]:
    """The state's names of the `configs` it has, in order, and how many it lacks."""
    name_of = state.inverse_mapping()
    found = [name_of(config) for config in configs or ()]
    names = [name for name in found if name is not None]
    return names, len(found) - len(names)


def listed_names(state: ExperimentState[C], configs: Sequence[C] | None) -> set[str]:
    """The state's names of the `configs` it has."""
    return set(names_in_state(state, configs)[0])


def config_names(
    state: ExperimentState[C], configs: Sequence[C] | None, state_file: Path
) -> list[str]:
    """The state's name of each of `configs`, in order; without `configs`, every
    name of the state.

    Raises:
        UnknownConfigError: a config is not in the state (stored in `state_file`).
    """
    if configs is None:
        return list(state.configs)
    name_of = state.inverse_mapping()
    names: list[str] = []
    for config in configs:
        name = name_of(config)
        if name is None:
            raise UnknownConfigError(
                CONFIG_NOT_IN_STATE_MESSAGE.format(config=config, state_file=state_file)
            )
        names.append(name)
    return names


class Roster:
    """What the last `Experiment.load()` found: the listed configs (by identity and
    length) with the name of each, and each config's params as plain data."""

    def __init__(self) -> None:
        self._names: tuple[object, int, list[str]] | None = None
        self._params: dict[str, tuple[object, dict[str, Any]]] = {}

    def forget(self) -> None:
        """Drop what was remembered (the state is about to change)."""
        self._names = None
        self._params = {}

    def remember(
        self,
        configs: Sequence[Any] | None,
        names: list[str],
        params: dict[str, tuple[object, dict[str, Any]]] | None = None,
    ) -> None:
        """Remember the names of `configs` (and their plain params, when known)."""
        self._names = (configs, len(configs or ()), names)
        if params is not None:
            self._params = params

    def names(self, configs: Sequence[Any] | None) -> list[str] | None:
        """The remembered names, if `configs` was neither replaced nor resized."""
        remembered = self._names
        if (
            remembered is not None
            and remembered[0] is configs
            and remembered[1] == len(configs or ())
        ):
            return list(remembered[2])
        return None

    def plain_params(self, name: str, params: C, dump: Callable[[C], Any]) -> Any:
        """The params of config `name` as plain data: remembered if they are these
        very `params`, else `dump(params)`."""
        remembered = self._params.get(name)
        if remembered is not None and remembered[0] is params:
            return remembered[1]
        return dump(params)
