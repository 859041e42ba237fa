"""An experiment's persistent state: `experiment.yaml` and its journal (the run lock is
in `lock.py`).

`experiment.yaml` is the state at rest, a YAML file a person can read and edit:

    name: my_exp
    description: null
    configs:
      <config name>:
        params: {...}            # every field of the config, defaults included
        status: todo             # todo | done | failed
        start_time: null         # ISO-8601, UTC
        end_time: null
        interruption_time: null

It is only ever replaced atomically (`atomic_write`). Finishing a config must not cost a
rewrite of the whole file (O(n) per result, O(n^2) per run), so `StateStore.record`
appends one JSON line to `experiment.journal` instead; `StateStore.load` applies the
journal over the YAML, and `StateStore.save` writes the YAML and then drops the journal
(the fold). A journal line is one `write` to a file opened with `O_APPEND`: once the
call returns, the kernel has it, so SIGKILL of the recorder cannot lose it.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
from collections.abc import Callable, Mapping
from dataclasses import dataclass, replace
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, Generic, Literal, TypeVar, cast, get_args

import yaml

from pytest_delphyne import layout
from pytest_delphyne.errors import DelphyneError
from pytest_delphyne.files import atomic_write, open_append
from pytest_delphyne.identity import ConfigCodec, ConfigParamsError, codec_for
from pytest_delphyne.plain_data import (
    canonical_json,
    dump_yaml,
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
JOURNAL_LINE_PROBLEM = "invalid journal entry ({problem})"
STATE_EDITED_MESSAGE = (
    "{state_file} was edited during the run: it is left as edited, and this run's "
    "results stay in {journal}, applied over the edit at the next load (nothing is "
    "lost)"
)
SET_ASIDE_MESSAGE = (
    "{count} recorded results no longer match {state_file} (a config deleted or its "
    "params edited by hand): {names}; kept aside in {aside_file}"
)


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
        start_time: When its last run started (UTC), if it ever started.
        end_time: When its last run ended (UTC).
        interruption_time: If its last run was interrupted, when (its status is then
            still `todo`).
    """

    params: C
    status: Status = "todo"
    start_time: datetime | None = None
    end_time: datetime | None = None
    interruption_time: datetime | None = None


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


class StateEditedError(DelphyneError):
    """`experiment.yaml` changed on disk since this process read or wrote it: a
    person's edit, which a fold must not overwrite."""

    def __init__(self, state_file: Path, journal_file: Path):
        super().__init__(
            STATE_EDITED_MESSAGE.format(state_file=state_file, journal=journal_file)
        )


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

    def copy(self) -> ExperimentState[C]:
        """A copy whose config mapping can be changed independently."""
        return ExperimentState(self.name, self.description, dict(self.configs))


def utc_now() -> datetime:
    """The current time, timezone-aware, in UTC."""
    return datetime.now(UTC)


def format_time(time: datetime | None) -> str | None:
    if time is None:
        return None
    if time.tzinfo is None:
        time = time.replace(tzinfo=UTC)
    return time.astimezone(UTC).isoformat()


def _parse_time(value: object) -> datetime | None:
    # A person may write an unquoted timestamp, which YAML reads as a datetime.
    if value is None:
        return None
    if isinstance(value, str):
        value = datetime.fromisoformat(value)
    if not isinstance(value, datetime):
        raise ValueError(value)
    if value.tzinfo is None:
        return value.replace(tzinfo=UTC)
    return value.astimezone(UTC)


def render_state(state: ExperimentState[C], codec: ConfigCodec[C]) -> str:
    """The YAML text of a state.

    The text is written directly in the layout PyYAML's block style gives (what
    `yaml.dump` would write, 10x faster); data it does not know how to write (very
    long keys) goes through `yaml.dump` instead.
    """
    return _render_data(state_data(state, codec))


def state_data(state: ExperimentState[C], codec: ConfigCodec[C]) -> dict[str, Any]:
    """The state as the plain data `experiment.yaml` holds."""
    configs = {
        name: {
            "params": codec.dump(info.params),
            "status": info.status,
            "start_time": format_time(info.start_time),
            "end_time": format_time(info.end_time),
            "interruption_time": format_time(info.interruption_time),
        }
        for name, info in state.configs.items()
    }
    return {"name": state.name, "description": state.description, "configs": configs}


def _render_data(data: dict[str, Any]) -> str:
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
    return state_from_data(_parse_yaml(text, path), path, codec, text)


def _parse_yaml(text: str, path: Path) -> object:
    try:
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
            times.append(None if value is None else _parse_time(value))
        except ValueError:
            raise fail(
                INVALID_TIME_PROBLEM.format(config_name=name, field=field, value=value)
            ) from None
    params = codec.load(entry["params"], config_name=name)
    return ConfigInfo(params, cast("Status", status), *times)


_INDEX_FORMAT = 1
_INDEX_DIGEST = "sha256 of experiment.yaml"


def _is_json_data(data: object) -> bool:
    # What JSON gives back unchanged: no datetimes, no non-str keys.
    stack = [data]
    while stack:
        item = stack.pop()
        if item is None or type(item) in (str, int, float, bool):
            continue
        if type(item) is list:
            stack.extend(item)
        elif type(item) is dict:
            if not all(type(key) is str for key in item):
                return False
            stack.extend(item.values())
        else:
            return False
    return True


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


def read_journal(path: Path) -> list[ConfigUpdate]:
    """The updates recorded in a journal file (none if it does not exist).

    A last line without its newline is a write the recorder was killed in the middle
    of: it is ignored.

    Raises:
        StateFileError: a complete line that is not a valid entry, naming its line.
    """
    return [update for _, update in _journal_entries(path)]


def _journal_entries(path: Path) -> list[tuple[int, ConfigUpdate]]:
    try:
        data = path.read_bytes()
    except FileNotFoundError:
        return []
    lines = data.split(b"\n")
    updates = []
    # The last element is b"" after a complete last line, or a torn write.
    for number, raw in enumerate(lines[:-1], start=1):
        if not raw.strip():
            continue
        try:
            entry = json.loads(raw)
            status = entry["status"]
            if status not in STATUSES:
                raise ValueError(f"unknown status {status!r}")
            update = ConfigUpdate(
                name=str(entry["name"]),
                status=status,
                start_time=_parse_time(entry.get("start_time")),
                end_time=_parse_time(entry.get("end_time")),
                interruption_time=_parse_time(entry.get("interruption_time")),
                params=None if entry.get("params") is None else str(entry["params"]),
            )
        except (ValueError, KeyError, TypeError) as exc:
            problem = JOURNAL_LINE_PROBLEM.format(
                problem=f"{type(exc).__name__}: {exc}"
            )
            raise StateFileError(path, problem, number) from None
        updates.append((number, update))
    return updates


# What identifies the files' content: the state file's inode, size and mtime; the
# journal's inode and size (it only grows, by appends), None when empty or absent.
_Signature = tuple[tuple[int, int, int] | None, tuple[int, int] | None]


def _stat(path: Path) -> tuple[int, int, int] | None:
    try:
        st = os.stat(path)
    except FileNotFoundError:
        return None
    return (st.st_ino, st.st_size, st.st_mtime_ns)


def _journal_signature(ino: int, size: int) -> tuple[int, int] | None:
    return (ino, size) if size else None


def _stat_journal(path: Path) -> tuple[int, int] | None:
    try:
        st = os.stat(path)
    except FileNotFoundError:
        return None
    return _journal_signature(st.st_ino, st.st_size)


class StateStore(Generic[C]):
    """Reads and writes the state of one output directory.

    `load()` reads `experiment.yaml` and applies the journal over it; `record(update)`
    appends one line to the journal (O(1), durable against SIGKILL once it returns);
    `save(state)` atomically rewrites `experiment.yaml` and then removes the journal,
    so the state given to `save` must include every recorded update (as `load()`
    returns it); `fold()` does exactly that. Only the holder of the `RunLock` should
    record or save. `close()` closes the journal; the store reopens it when needed.

    `load()` keeps what it read and re-reads only when the files changed on disk
    (inode, size or modification time), so asking for the state again is cheap.
    """

    def __init__(self, output_dir: Path, codec: ConfigCodec[C]):
        self.output_dir = output_dir
        self.codec = codec
        self.state_file = layout.state_file_path(output_dir)
        self.journal_file = layout.journal_file_path(output_dir)
        self.index_file = output_dir / layout.STATE_INDEX_FILE
        self._journal_fd: int | None = None
        # The open journal's inode and size: the recorder appends without a stat.
        self._journal_ino = 0
        self._journal_size = 0
        self._cached: tuple[_Signature, ExperimentState[C]] | None = None
        # The state file as this store first read it or last wrote it: a fold over
        # any other is a fold over a person's edit.
        self._baseline: tuple[int, int, int] | None = None
        # Journal records the last load could not apply (see `load`).
        self.set_aside: list[ConfigUpdate] = []

    def exists(self) -> bool:
        """Whether the state file exists."""
        return self.state_file.exists()

    def _signature(self) -> _Signature:
        return (_stat(self.state_file), _stat_journal(self.journal_file))

    def load(self) -> ExperimentState[C]:
        """The state: `experiment.yaml` with the journal applied (nothing is written
        but the index, a cache).

        Journal records that no longer fit the state (a config deleted by hand, or
        whose params were edited after it ran) are not applied: `set_aside` lists
        them, and the next `save` keeps them in the aside file.

        Raises:
            StateFileError: no state file, or an unreadable one (naming file and line).
            ConfigParamsError: stored params that no longer fit the config class.
        """
        signature = self._signature()
        if self._cached is not None and self._cached[0] == signature:
            return self._cached[1].copy()
        data, text, digest, edited = self._read_data()
        state = state_from_data(data, self.state_file, self.codec, text)
        if isinstance(text, str):
            # Edited by hand (or written before indexes existed): index it now, so
            # that only the first load after an edit pays for the YAML parser.
            self._write_index(data, digest, edited=True)
        aside: list[ConfigUpdate] = []
        keys: dict[str, str] = {}
        for _, update in _journal_entries(self.journal_file):
            info = state.configs.get(update.name)
            if info is None:
                aside.append(update)
                continue
            # Only a hand edit can have changed params under a record: the check
            # costs a dump per record, paid after an edit alone.
            if edited and update.params is not None:
                key = keys.get(update.name)
                if key is None:
                    key = keys[update.name] = params_key(self.codec.dump(info.params))
                if key != update.params:
                    aside.append(update)
                    continue
            state.apply(update)
        self.set_aside = aside
        if self._baseline is None:
            self._baseline = signature[0]
        self._cached = (signature, state)
        return state.copy()

    def unfit_configs(self) -> list[ConfigParamsError]:
        """Every config whose stored params no longer fit the config class (`load`
        stops at the first), for a plan that names them all.

        Raises:
            StateFileError: no state file, or an unreadable one.
        """
        data, _, _, _ = self._read_data()
        entries = data.get("configs") if isinstance(data, dict) else None
        unfit: list[ConfigParamsError] = []
        for name, entry in (entries if isinstance(entries, dict) else {}).items():
            if not isinstance(entry, dict) or "params" not in entry:
                continue  # a malformed entry, which `load` names
            try:
                self.codec.load(entry["params"], config_name=str(name))
            except ConfigParamsError as error:
                unfit.append(error)
        return unfit

    def _read_data(self) -> tuple[object, str | bytes, str, bool]:
        """The plain data of `experiment.yaml` (from the index while it matches the
        YAML's bytes), the text it came from (the YAML's `str` when it was parsed,
        its bytes otherwise: only read to name an error's line), their digest, and
        whether a person edited the YAML since this project last wrote it.

        Raises:
            StateFileError: no state file, or one that is not UTF-8 or not YAML.
        """
        try:
            raw = self.state_file.read_bytes()
        except FileNotFoundError:
            raise StateFileError(self.state_file, NO_STATE_PROBLEM) from None
        digest = hashlib.sha256(raw).hexdigest()
        index = self._read_index(digest)
        if index is not None:
            return index.get("state"), raw, digest, bool(index.get("edited"))
        try:
            text = raw.decode("utf-8")
        except UnicodeDecodeError as exc:
            problem = NOT_UTF8_PROBLEM.format(problem=exc)
            raise StateFileError(self.state_file, problem) from None
        return _parse_yaml(text, self.state_file), text, digest, True

    def _read_index(self, digest: str) -> dict[str, Any] | None:
        # Trusted only while it names the exact bytes of experiment.yaml: any edit
        # of the YAML, however small, makes the YAML win.
        try:
            index = json.loads(self.index_file.read_bytes())
        except (OSError, ValueError):
            return None
        if (
            not isinstance(index, dict)
            or index.get("format") != _INDEX_FORMAT
            or index.get(_INDEX_DIGEST) != digest
        ):
            return None
        return index

    def _write_index(self, data: object, digest: str, *, edited: bool) -> None:
        if not _is_json_data(data):
            return  # YAML-only values (dates, non-str keys): read the YAML instead
        text = json.dumps(
            {
                "format": _INDEX_FORMAT,
                _INDEX_DIGEST: digest,
                # YAML a person wrote: the journal's records are checked against it.
                "edited": edited,
                "state": data,
            },
            ensure_ascii=False,
            separators=(",", ":"),
        )
        # Only a cache: a reader without the lock may write it, and a failure (a
        # read-only directory) costs the next load a YAML parse, nothing more.
        with contextlib.suppress(OSError):
            atomic_write(self.index_file, text, durable=False)

    def save(self, state: ExperimentState[C]) -> None:
        """Atomically write `state` to `experiment.yaml` (and its index), then remove
        the journal."""
        self.output_dir.mkdir(parents=True, exist_ok=True)
        data = state_data(state, self.codec)
        text = _render_data(data)
        atomic_write(self.state_file, text)
        digest = hashlib.sha256(text.encode("utf-8")).hexdigest()
        self._write_index(data, digest, edited=False)
        if self.set_aside:
            # Before the journal goes: a record is never lost, only set aside.
            fd = open_append(self.output_dir / layout.JOURNAL_ASIDE_FILE)
            try:
                os.write(
                    fd, "".join(u.to_json() + "\n" for u in self.set_aside).encode()
                )
            finally:
                os.close(fd)
            self.set_aside = []
        # A kill between the two steps only replays the journal over a state that
        # already has its updates: applying an update twice changes nothing.
        self.close()
        self.journal_file.unlink(missing_ok=True)
        self._cached = (self._signature(), state.copy())
        self._baseline = self._cached[0][0]

    def fold(self) -> ExperimentState[C]:
        """Apply the journal to `experiment.yaml` (load, then save); the state.

        Raises:
            StateEditedError: `experiment.yaml` changed on disk since this store
                first read it or last wrote it (a person's edit during the run):
                nothing is written, and the journal stays.
        """
        if self._baseline is not None and _stat(self.state_file) != self._baseline:
            raise StateEditedError(self.state_file, self.journal_file)
        state = self.load()
        self.save(state)
        return state

    def record(self, update: ConfigUpdate) -> None:
        """Append one update to the journal: one `write` call, no fsync.

        The entry is in the kernel when this returns, so it survives the death of this
        process (not a power loss before the next fold, which fsyncs).
        """
        if self._journal_fd is None:
            self._journal_fd = self._open_journal()
        size = self._journal_size
        data = (update.to_json() + "\n").encode("utf-8")
        try:
            remaining = data
            while remaining:
                written = os.write(self._journal_fd, remaining)
                remaining = remaining[written:]
        except OSError:
            # A full disk may take part of the line before refusing the rest: cut
            # it, or the next entry would be glued to it and the journal unreadable.
            with contextlib.suppress(OSError):
                os.ftruncate(self._journal_fd, size)
            raise
        self._journal_size = size + len(data)
        # The state as cached, if it is the files' as they were before this entry, is
        # theirs with the entry applied. (The state file is not stat'ed here: only
        # the lock holder writes it, and `load()` checks it before trusting the cache.)
        cached = self._cached
        if (
            cached is not None
            and cached[0][1] == _journal_signature(self._journal_ino, size)
            and update.name in cached[1].configs
        ):
            cached[1].apply(update)
            journal = _journal_signature(self._journal_ino, self._journal_size)
            self._cached = ((cached[0][0], journal), cached[1])
        else:
            self._cached = None

    def _open_journal(self) -> int:
        self.output_dir.mkdir(parents=True, exist_ok=True)
        fd = open_append(self.journal_file)
        # A previous recorder killed mid-write left a torn last line; cut it so that
        # the next entry starts on a line of its own.
        size = os.fstat(fd).st_size
        end = size
        while end > 0:
            start = max(0, end - 65536)
            chunk = os.pread(fd, end - start, start)
            newline = chunk.rfind(b"\n")
            if newline != -1:
                end = start + newline + 1
                break
            end = start
        if end != size:
            os.ftruncate(fd, end)
        self._journal_ino = os.fstat(fd).st_ino
        self._journal_size = end
        return fd

    def close(self) -> None:
        """Close the journal file (the next `record` reopens it)."""
        if self._journal_fd is not None:
            os.close(self._journal_fd)
            self._journal_fd = None
