"""An experiment's state: what it stores about each config (`ConfigInfo`,
`ExperimentState`, `ConfigUpdate`), and its file `experiment.yaml`, a YAML file a
person can read and edit:

    name: my_exp
    description: null
    configs:
      <config name>:
        params: {...}            # every field of the config, defaults included
        status: todo             # todo | done | failed
        start_time: null         # a YAML timestamp, naive (local) or with its zone
        end_time: null
        interruption_time: null

Reading and writing it, with its journal and index, is `state_store`'s; the journal's
lines are `journal`'s; the run lock is `lock`'s.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
from collections.abc import Callable, Mapping
from dataclasses import dataclass, replace
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, Generic, Literal, TypeVar, cast, get_args

import yaml

from pytest_delphyne.errors import DelphyneError
from pytest_delphyne.identity import ConfigCodec, codec_for
from pytest_delphyne.plain_data import (
    ALIAS_PROBLEM,
    canonical_json,
    dump_yaml,
    first_alias_line,
    load_yaml,
    yaml_error_line,
)
from pytest_delphyne.yaml_writer import block_yaml

C = TypeVar("C")

Status = Literal["todo", "done", "failed"]
STATUSES: tuple[Status, ...] = get_args(Status)

INVALID_YAML_PROBLEM = "not valid YAML ({problem}); the file was left untouched"
NOT_UTF8_PROBLEM = "not UTF-8 text ({problem}); the file was left untouched"
STATE_SHAPE_PROBLEM = "expected {expected}, found {found}"
UNKNOWN_STATUS_PROBLEM = (
    "config {config_name!r} has status {status!r}; expected one of todo, done, failed"
)
MISSING_FIELD_PROBLEM = "config {config_name!r} has no {field!r}"
INVALID_TIME_PROBLEM = (
    "config {config_name!r} has an invalid {field}: {value!r} "
    "(expected an ISO-8601 date and time)"
)
NO_STATE_PROBLEM = "no experiment state here; Experiment.load() creates it"
MAX_STATE_BYTES = 2 * 1024**3
"""The largest state file read: about 20 times a state of 1,000,000 configs."""
TOO_LARGE_PROBLEM = "{size} bytes, more than the {limit} bytes a state file may hold"


class StateFileError(DelphyneError):
    """A state or journal file that cannot be read. The message names the file and,
    when known, the line: `path:line: problem`."""

    def __init__(self, path: Path, problem: str, line: int | None = None):
        self.path = path
        self.problem = problem
        self.line = line
        where = f"{path}:{line}" if line is not None else str(path)
        super().__init__(f"{where}: {problem}")


@dataclass(frozen=True)
class ConfigInfo(Generic[C]):
    """What the state stores about one config.

    Attributes:
        params: The configuration.
        status: `todo` (not run yet, or interrupted), `done` (ran and wrote its result)
            or `failed` (raised an exception).
        start_time: When its last run started, if it ever started: in UTC when this
            project ran it, naive local time when the reference launcher did (kept
            as written; `aware_time` compares the two).
        end_time: When its last run ended (the same).
        interruption_time: If its last run was interrupted, when (its status is then
            still `todo`).
        plain: `params` as plain data, once this process has dumped them (see
            `plain_params`); never taken from a file, whose params may not be in
            their canonical form.
    """

    params: C
    status: Status = "todo"
    start_time: datetime | None = None
    end_time: datetime | None = None
    interruption_time: datetime | None = None
    plain: dict[str, Any] | None = dataclasses.field(
        default=None, compare=False, repr=False, kw_only=True
    )


def plain_params(info: ConfigInfo[C], codec: ConfigCodec[C]) -> dict[str, Any]:
    """The params of `info` as plain data: the form it carries, else their dump."""
    return info.plain if info.plain is not None else codec.dump(info.params)


@dataclass(frozen=True)
class ConfigUpdate:
    """One recorded change of a config's status and times: a journal line."""

    name: str
    status: Status
    start_time: datetime | None = None
    end_time: datetime | None = None
    interruption_time: datetime | None = None
    # `params_key` of the params the config ran with, when known: a record is only
    # applied to a config whose params are still those.
    params: str | None = None

    def to_json(self) -> str:
        """The journal line, without its newline."""
        entry = {
            "name": self.name,
            "status": self.status,
            "start_time": format_time(self.start_time),
            "end_time": format_time(self.end_time),
            "interruption_time": format_time(self.interruption_time),
        }
        if self.params is not None:
            entry["params"] = self.params
        return json.dumps(entry, separators=(",", ":"))


def params_key(plain_params: object) -> str:
    """A short digest of a config's params (their plain, canonical form)."""
    return hashlib.sha256(canonical_json(plain_params).encode("utf-8")).hexdigest()[:16]


@dataclass
class ExperimentState(Generic[C]):
    """The persistent state of an experiment, as stored in `experiment.yaml`.

    Attributes:
        name: The experiment's name, if given; stored and otherwise unused.
        description: Its description, if given; stored and otherwise unused.
        configs: Every config of the state by name, in the order they were added.
    """

    name: str | None
    description: str | None
    configs: dict[str, ConfigInfo[C]]

    def inverse_mapping(self) -> Callable[[C], str | None]:
        """A function from configs to their names in this state (`None` if absent),
        by canonical form."""
        # Stored params are canonical when they were loaded from disk or added by
        # `Experiment.load`: their dump is their key, 4x cheaper to compute. Other
        # states get their canonical keys too, only when a lookup misses.
        by_dump: dict[str, str] = {}
        for name, info in self.configs.items():
            codec = codec_for(type(info.params))
            by_dump.setdefault(canonical_json(codec.dump(info.params)), name)
        by_key: dict[str, str] | None = None

        def name_of(config: C) -> str | None:
            nonlocal by_key
            codec = codec_for(type(config))
            # A config whose dump is a canonical key has that key.
            name = by_dump.get(canonical_json(codec.dump(config)))
            if name is not None:
                return name
            key = codec.canonical_key(config)
            name = by_dump.get(key)
            if name is None:
                if by_key is None:
                    by_key = {}
                    for stored, info in self.configs.items():
                        stored_key = codec_for(type(info.params)).canonical_key(
                            info.params
                        )
                        by_key.setdefault(stored_key, stored)
                name = by_key.get(key)
            return name

        return name_of

    def apply(self, update: ConfigUpdate) -> None:
        """Set a config's status and times from an update.

        Raises:
            KeyError: the config is not in the state.
        """
        info = self.configs[update.name]
        self.configs[update.name] = replace(
            info,
            status=update.status,
            start_time=update.start_time,
            end_time=update.end_time,
            interruption_time=update.interruption_time,
        )

    def status_counts(self) -> dict[str, int]:
        """How many configs are `todo`, `done` and `failed`."""
        counts: dict[str, int] = dict.fromkeys(STATUSES, 0)
        for info in self.configs.values():
            counts[info.status] += 1
        return counts

    def copy(self) -> ExperimentState[C]:
        """A copy whose config mapping can be changed independently."""
        return ExperimentState(self.name, self.description, dict(self.configs))


def utc_now() -> datetime:
    """The current time, timezone-aware, in UTC."""
    return datetime.now(UTC)


def aware_time(time: datetime) -> datetime:
    """`time` with its zone: a naive time is the local time of the machine that
    wrote it (the reference launcher's `datetime.now()`)."""
    return time if time.tzinfo is not None else time.astimezone()


def stored_time(time: datetime) -> datetime:
    """A time as the state stores it: in UTC when it has a zone; a naive time (the
    reference launcher's local time) as it is, never moved to another zone."""
    return time if time.tzinfo is None else time.astimezone(UTC)


def format_time(time: datetime | None) -> str | None:
    """ISO 8601 text of a time as the state stores it (`stored_time`)."""
    if time is None:
        return None
    return stored_time(time).isoformat()


def parse_time(value: object) -> datetime | None:
    """A time as written: a YAML timestamp (as the reference writes, and this module
    too) or ISO text (the journal, the index, an old state), as `stored_time` keeps
    it: a naive time stays naive.

    Raises:
        ValueError: neither.
    """
    if value is None:
        return None
    if isinstance(value, str):
        value = datetime.fromisoformat(value)
    if not isinstance(value, datetime):
        raise ValueError(value)
    return stored_time(value)


def render_state(state: ExperimentState[C], codec: ConfigCodec[C]) -> str:
    """The YAML text of a state.

    The text is written directly in the layout PyYAML's block style gives (what
    `yaml.dump` would write, 10x faster); data it does not know how to write (very
    long keys) goes through `yaml.dump` instead.
    """
    return render_state_data(state_data(state, codec))


def state_data(state: ExperimentState[C], codec: ConfigCodec[C]) -> dict[str, Any]:
    """The state as the plain data `experiment.yaml` holds."""
    configs = {
        name: {
            "params": plain_params(info, codec),
            "status": info.status,
            # YAML timestamps, which the reference's loader reads as datetimes.
            "start_time": info.start_time and stored_time(info.start_time),
            "end_time": info.end_time and stored_time(info.end_time),
            "interruption_time": info.interruption_time
            and stored_time(info.interruption_time),
        }
        for name, info in state.configs.items()
    }
    return {"name": state.name, "description": state.description, "configs": configs}


def render_state_data(data: dict[str, Any]) -> str:
    text = block_yaml(data)
    if text is None:
        text = dump_yaml(data, width=1000, literal_blocks=False)
    return text


def parse_state(text: str, path: Path, codec: ConfigCodec[C]) -> ExperimentState[C]:
    """Read the YAML text of a state stored at `path` (named in errors).

    Raises:
        StateFileError: invalid YAML (naming the line), or a malformed state.
        ConfigParamsError: stored params that no longer fit the config class.
    """
    return state_from_data(parse_state_yaml(text, path), path, codec, text)


def parse_state_yaml(text: str, path: Path) -> object:
    try:
        alias_line = first_alias_line(text)
        if alias_line is not None:
            raise StateFileError(path, ALIAS_PROBLEM, alias_line)
        return load_yaml(text)
    except yaml.YAMLError as exc:
        line = yaml_error_line(exc)
        problem = getattr(exc, "problem", None) or str(exc)
        raise StateFileError(
            path, INVALID_YAML_PROBLEM.format(problem=problem), line
        ) from None


def state_from_data(
    data: object, path: Path, codec: ConfigCodec[C], text: str | bytes
) -> ExperimentState[C]:
    """The state in the plain data of `experiment.yaml`, whose `text` (stored at
    `path`) is only read to name the line of an error.

    Raises:
        StateFileError: a malformed state.
        ConfigParamsError: stored params that no longer fit the config class.
    """
    data = _expect_mapping(data, "a mapping with name, description and configs", path)
    raw_configs = data.get("configs") or {}
    raw_configs = _expect_mapping(raw_configs, "a mapping under 'configs'", path)
    configs: dict[str, ConfigInfo[C]] = {}
    for name, entry in raw_configs.items():
        config_name = str(name)
        if type(entry) is not dict:
            entry = _expect_mapping(
                entry, f"a mapping for config {config_name!r}", path
            )
        configs[config_name] = _parse_entry(config_name, entry, text, path, codec)
    name, description = data.get("name"), data.get("description")
    return ExperimentState(
        name=None if name is None else str(name),
        description=None if description is None else str(description),
        configs=configs,
    )


def _parse_entry(
    name: str,
    entry: Mapping[str, Any],
    text: str | bytes,
    path: Path,
    codec: ConfigCodec[C],
) -> ConfigInfo[C]:
    def fail(problem: str) -> StateFileError:
        return StateFileError(path, problem, _line_of(text, name))

    if "params" not in entry:
        raise fail(MISSING_FIELD_PROBLEM.format(config_name=name, field="params"))
    status = entry.get("status")
    if status not in STATUSES:
        if "status" not in entry:
            raise fail(MISSING_FIELD_PROBLEM.format(config_name=name, field="status"))
        raise fail(UNKNOWN_STATUS_PROBLEM.format(config_name=name, status=status))
    times: list[datetime | None] = []
    for field in ("start_time", "end_time", "interruption_time"):
        value = entry.get(field)
        try:
            times.append(None if value is None else parse_time(value))
        except ValueError:
            raise fail(
                INVALID_TIME_PROBLEM.format(config_name=name, field=field, value=value)
            ) from None
    params = codec.load(entry["params"], config_name=name)
    return ConfigInfo(params, cast("Status", status), *times)


def _expect_mapping(data: object, expected: str, path: Path) -> dict[Any, Any]:
    if not isinstance(data, dict):
        found = "nothing" if data is None else f"a {type(data).__name__}"
        raise StateFileError(
            path, STATE_SHAPE_PROBLEM.format(expected=expected, found=found)
        )
    return data


def _line_of(text: str | bytes, name: str) -> int | None:
    # Only computed for an error message, so a scan is fine.
    if isinstance(text, bytes):
        text = text.decode("utf-8", errors="replace")
    for number, line in enumerate(text.splitlines(), start=1):
        if line.strip().startswith((f"{name}:", f"'{name}':", f'"{name}":')):
            return number
    return None
