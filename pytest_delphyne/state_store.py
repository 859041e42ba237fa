"""Reading and writing the state of one output directory: `experiment.yaml`, its
journal and its index, behind one `StateStore`.

`experiment.yaml` (its format is in `state`) is only ever replaced atomically.
Finishing a config must not cost a rewrite of the whole file (O(n) per result, O(n^2)
per run), so `StateStore.record` appends one line to the journal (`journal`) instead;
`StateStore.load` applies the journal over the YAML, and `StateStore.save` writes the
YAML and then drops the journal (the fold). The index, `.experiment.index.json`, is a
JSON copy of the YAML's data, trusted while it names the YAML's exact bytes: loading
100,000 configs from JSON costs a tenth of parsing their YAML.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
from datetime import datetime
from pathlib import Path
from typing import Any, Generic, TypeVar

from pytest_delphyne import layout
from pytest_delphyne.errors import DelphyneError
from pytest_delphyne.files import atomic_write, open_append
from pytest_delphyne.identity import ConfigCodec, ConfigParamsError
from pytest_delphyne.journal import Journal, journal_entries
from pytest_delphyne.state import (
    MAX_STATE_BYTES,
    NO_STATE_PROBLEM,
    NOT_UTF8_PROBLEM,
    TOO_LARGE_PROBLEM,
    ConfigUpdate,
    ExperimentState,
    StateFileError,
    format_time,
    params_key,
    parse_state_yaml,
    render_state_data,
    state_data,
    state_from_data,
)

C = TypeVar("C")

STATE_EDITED_MESSAGE = (
    "{state_file} was edited during the run: it is left as edited, and this run's "
    "results stay in {journal}, applied over the edit at the next load (nothing is "
    "lost)"
)
SET_ASIDE_MESSAGE = (
    "{count} recorded results no longer match {state_file} (a config deleted or its "
    "params edited by hand): {names}; {kept} in {aside_file}"
)
SET_ASIDE_KEPT = "kept aside"
SET_ASIDE_PENDING = "to be kept aside by the next run"


class StateEditedError(DelphyneError):
    """`experiment.yaml` changed on disk since this process read or wrote it: a
    person's edit, which a fold must not overwrite."""

    def __init__(self, state_file: Path, journal_file: Path):
        super().__init__(
            STATE_EDITED_MESSAGE.format(state_file=state_file, journal=journal_file)
        )


_TIME_FIELDS = ("start_time", "end_time", "interruption_time")


def _times_as_text(data: object) -> object:
    # The index is JSON: each config's times as ISO text, which `parse_time` reads.
    if not isinstance(data, dict) or not isinstance(data.get("configs"), dict):
        return data
    configs: dict[Any, Any] = data["configs"]
    as_text: dict[Any, Any] = {}
    for name, entry in configs.items():
        if isinstance(entry, dict) and any(
            isinstance(entry.get(field), datetime) for field in _TIME_FIELDS
        ):
            entry = dict(entry)
            for field in _TIME_FIELDS:
                if isinstance(entry.get(field), datetime):
                    entry[field] = format_time(entry[field])
        as_text[name] = entry
    return {**data, "configs": as_text}


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
        self._journal = Journal(self.journal_file)
        self._cached: tuple[_Signature, ExperimentState[C]] | None = None
        # The state file as this store first read it or last wrote it: a fold over
        # any other is a fold over a person's edit.
        self._baseline: tuple[int, int, int] | None = None
        # Journal records the last load could not apply (see `load`).
        self.set_aside: list[ConfigUpdate] = []
        # Whether this store wrote `experiment.yaml`: what is derived from it (the
        # summary) is stale only then.
        self.written = False

    def exists(self) -> bool:
        """Whether the state file exists."""
        return self.state_file.exists()

    def _signature(self) -> _Signature:
        return (_stat(self.state_file), _stat_journal(self.journal_file))

    def load(self) -> ExperimentState[C]:
        """The state: `experiment.yaml` with the journal applied (nothing is written).

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
        # After a hand edit, each load parses the YAML until the next save indexes
        # it: reading (`status`, `--co`, `report`) writes nothing, not even a cache.
        data, text, _, edited = self._read_data()
        state = state_from_data(data, self.state_file, self.codec, text)
        aside: list[ConfigUpdate] = []
        keys: dict[str, str] = {}
        for _, update in journal_entries(self.journal_file):
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
            size = self.state_file.stat().st_size
        except FileNotFoundError:
            raise StateFileError(self.state_file, NO_STATE_PROBLEM) from None
        if size > MAX_STATE_BYTES:
            problem = TOO_LARGE_PROBLEM.format(size=size, limit=MAX_STATE_BYTES)
            raise StateFileError(self.state_file, problem)
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
        return parse_state_yaml(text, self.state_file), text, digest, True

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
        data = _times_as_text(data)
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
        text = render_state_data(data)
        atomic_write(self.state_file, text)
        self.written = True
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

        Without a journal, nothing has changed since the last save: nothing is
        written (a state the reference launcher wrote stays as it wrote it).

        Raises:
            StateEditedError: `experiment.yaml` changed on disk since this store
                first read it or last wrote it (a person's edit during the run):
                nothing is written, and the journal stays.
        """
        if self._baseline is not None and _stat(self.state_file) != self._baseline:
            raise StateEditedError(self.state_file, self.journal_file)
        state = self.load()
        if self.journal_file.exists():
            self.save(state)
        return state

    def record(self, update: ConfigUpdate) -> None:
        """Append one update to the journal: one `write` call, no fsync.

        The entry is in the kernel when this returns, so it survives the death of this
        process (not a power loss before the next fold, which fsyncs).
        """
        journal = self._journal
        journal.open()
        before = _journal_signature(journal.ino, journal.size)
        journal.append(update)
        # The state as cached, if it is the files' as they were before this entry, is
        # theirs with the entry applied. (The state file is not stat'ed here: only
        # the lock holder writes it, and `load()` checks it before trusting the cache.)
        cached = self._cached
        if (
            cached is not None
            and cached[0][1] == before
            and update.name in cached[1].configs
        ):
            cached[1].apply(update)
            after = _journal_signature(journal.ino, journal.size)
            self._cached = ((cached[0][0], after), cached[1])
        else:
            self._cached = None

    def close(self) -> None:
        """Close the journal file (the next `record` reopens it)."""
        self._journal.close()
