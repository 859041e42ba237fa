"""The request cache: every oracle call of a config, recorded as it is made.

A config's LLM requests and expensive computations go through one `RequestCache`,
which keys each call by what is called (`key`), its arguments in canonical JSON, and
its *occurrence*: the same request asked three times is three entries, replayed in
the order they were recorded. This is what lets a finished config be replayed, and a
failed one be retried or debugged, without paying for its calls again.

The file, `configs/<name>/cache.yaml`, is an append-only YAML sequence. Each entry is
one `- ` item on one line, a JSON mapping (JSON is YAML's flow style), written with a
single `write` call on an `O_APPEND` descriptor the moment its answer is known:

    - {"key": "mymodule.fetch", "occurrence": 0, "args": {"args": [1], "kwargs": {}}, \
"answer": 0.734, "seconds": 0.012}

Why one JSON line rather than block YAML: PyYAML, even with libyaml, reads a
10,000-entry block cache in 2.4 s; one `json.loads` per line reads it in 0.1 s
(`benchmarks/cache_calls.py`), and recording a call costs 14 us instead of 69.
The file stays YAML that any YAML tool (or person) reads, with one caveat: a YAML 1.1
reader (PyYAML) takes a float written without a dot (`1e-06`) for a string; this
module reads the lines as JSON, so answers round-trip exactly. A file edited by hand
into block style is still accepted, through the slower YAML parser.

Nothing is buffered in the process, so a run killed with SIGKILL keeps every entry it
recorded (the kernel owns the bytes once `write` returns); only a crash of the whole
machine needs an fsync, which would cost milliseconds per call. A run killed in the
middle of a `write` leaves a torn last line (no final newline): `read_write` mode drops
it and cuts it from the file (the call is made again); the other modes refuse the file.
"""

from __future__ import annotations

import contextlib
import json
import os
import re
import threading
import time
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, Final, Literal, TypeVar, get_args

import yaml

from pytest_delphyne.errors import DelphyneError
from pytest_delphyne.files import open_append, truncate
from pytest_delphyne.plain_data import (
    canonical_json,
    load_yaml,
    plain_copy,
    yaml_error_line,
)

if TYPE_CHECKING:
    from collections.abc import Callable

T = TypeVar("T")

CacheMode = Literal["create", "replay", "replay_first_miss_live", "read_write", "off"]
"""How a config's run uses its cache file.

- `create`: a fresh run. The file starts empty; every call is made and recorded.
- `replay`: every call must have been recorded; a missing one is a `CacheMissError`.
  The file is read, never written.
- `replay_first_miss_live`: the replay of a config that raised. As `replay`, except
  that the first call missing from the cache is made (and not recorded): the call
  that raised in the recorded run (a tool that timed out, say) has no answer, and the
  replay must make it again to raise where the run raised. Any further miss is a
  `CacheMissError`, so that a program changed since the run is detected, and a
  replay pays for one call at most. The file is read, never written.
- `read_write`: a retry. Recorded calls are answered from the file; new ones are made
  and appended, so calls already paid for are not paid again.
- `off`: no file; every call is made.
"""
CACHE_MODES: Final[tuple[CacheMode, ...]] = get_args(CacheMode)
READ_ONLY_CACHE_MODES: Final[tuple[CacheMode, ...]] = (
    "replay",
    "replay_first_miss_live",
)
"""The modes that read the file and never write it."""

CACHE_MISS_MESSAGE: Final = (
    "replay: the cache {path} has no answer for call {key} with arguments {args} "
    "(occurrence {occurrence}): the program asked something the recorded run did not"
)
CACHE_FILE_MESSAGE: Final = "{path}, line {line}: {problem}"
CACHE_MODE_MESSAGE: Final = "unknown cache mode {mode!r}; expected one of {modes}"
_ENTRY_KEYS: Final = ("key", "occurrence", "args", "answer", "seconds")


class CacheMissError(DelphyneError):
    """A replay asked for a call that the recorded run did not make."""

    def __init__(self, path: Path | None, key: str, args_json: str, occurrence: int):
        super().__init__(
            CACHE_MISS_MESSAGE.format(
                path=path, key=key, args=args_json, occurrence=occurrence
            )
        )
        self.key = key
        self.args_json = args_json
        self.occurrence = occurrence


class CacheFileError(DelphyneError):
    """A cache file that cannot be read: truncated, corrupt, or not a cache."""

    def __init__(self, path: Path, line: int, problem: str):
        super().__init__(
            CACHE_FILE_MESSAGE.format(path=path, line=line, problem=problem)
        )
        self.path = path
        self.line = line


class CacheModeError(DelphyneError):
    """A cache mode that is not one of `CACHE_MODES`."""


def canonical_args_json(data: Any, what: str) -> str:
    """Sorted-key compact JSON of plain data: the cache's key for a call's arguments."""
    return canonical_json(plain_copy(data, what))


@dataclass(frozen=True)
class CacheAnswer:
    """What `RequestCache.lookup_or_call` returns.

    Attributes:
        value: the answer (plain data, tuples turned into lists).
        hit: True when the answer was read from the cache rather than computed.
        occurrence: how many identical calls came before this one in the run.
        seconds: how long the call took when it was made (recorded or now).
    """

    value: Any
    hit: bool
    occurrence: int
    seconds: float


class RequestCache:
    """The recorded oracle calls of one config's run, in one file.

    Open it for a run, send every call through `call` (or `lookup_or_call`), and
    `close` it at the end (it is a context manager). Opening reads the whole file in
    the replay modes and `read_write` mode, truncates it in `create` mode, and does
    nothing in `off` mode.

    Arguments:
        path: the cache file (`configs/<name>/cache.yaml`); `None` only with `off`.
        mode: see `CacheMode`.

    Raises:
        CacheFileError: the file is truncated or corrupt (a torn last entry is
            dropped, and the file cut back to its last whole entry, in `read_write`).
        CacheModeError: `mode` is unknown.
    """

    def __init__(self, path: Path | None, mode: CacheMode):
        if mode not in CACHE_MODES:
            raise CacheModeError(
                CACHE_MODE_MESSAGE.format(mode=mode, modes=CACHE_MODES)
            )
        if path is None and mode != "off":
            raise CacheModeError(f"cache mode {mode!r} needs a cache file path")
        self.path = path
        self.mode: CacheMode = mode
        self._recorded: dict[tuple[str, str, int], tuple[Any, float]] = {}
        self._counts: dict[tuple[str, str], int] = {}
        self._lock = threading.Lock()
        self._fd: int | None = None
        # How many calls missing from the cache may still be made in a replay mode.
        self._live_misses_left = 1 if mode == "replay_first_miss_live" else 0
        if path is None or mode == "off":
            return
        if mode != "create":
            if path.exists():
                self._load(path)
            elif mode in READ_ONLY_CACHE_MODES:
                raise CacheFileError(path, 0, "no such cache file to replay")
        if mode not in READ_ONLY_CACHE_MODES:
            fresh = mode == "create"
            try:
                self._fd = open_append(path, truncate=fresh)
            except FileNotFoundError:  # the directory is usually there already
                path.parent.mkdir(parents=True, exist_ok=True)
                self._fd = open_append(path, truncate=fresh)

    def __len__(self) -> int:
        """The number of recorded entries (read from the file or recorded since)."""
        return len(self._recorded)

    def __enter__(self) -> RequestCache:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()

    def close(self) -> None:
        """Close the file (every entry is already written)."""
        if self._fd is not None:
            os.close(self._fd)
            self._fd = None

    def call(self, key: str, args_json: str, compute: Callable[[], T]) -> T:
        """The answer of a call: recorded if the cache has it, else `compute()`.

        Arguments:
            key: what is called, e.g. a function's `module.qualname`.
            args_json: the call's arguments as canonical JSON (see
                `canonical_args_json`); identical calls must give identical strings.
            compute: makes the call; its answer must be plain data.

        Raises:
            CacheMissError: in a replay mode, the call was not recorded (and, in
                `replay_first_miss_live` mode, another missing call was made before).
            NotPlainDataError: the answer is not plain data.
        """
        answer: T = self.lookup_or_call(key, args_json, compute).value
        return answer

    def lookup_or_call(
        self, key: str, args_json: str, compute: Callable[[], Any]
    ) -> CacheAnswer:
        """Like `call`, and also says whether the answer came from the cache."""
        with self._lock:
            occurrence = self._counts.get((key, args_json), 0)
            self._counts[(key, args_json)] = occurrence + 1
        recorded = self._recorded.get((key, args_json, occurrence))
        if recorded is not None:
            return CacheAnswer(recorded[0], True, occurrence, recorded[1])
        if self.mode in READ_ONLY_CACHE_MODES and not self._claim_live_miss():
            raise CacheMissError(self.path, key, args_json, occurrence)
        start = time.perf_counter()
        value = plain_copy(compute(), f"the answer of call {key}")
        seconds = time.perf_counter() - start
        if self._fd is not None:
            self._append(key, args_json, occurrence, value, seconds)
        return CacheAnswer(value, False, occurrence, seconds)

    @property
    def made_live_miss(self) -> bool:
        """Whether this replay made the one call missing from the cache that
        `replay_first_miss_live` allows (a paid call)."""
        return self.mode == "replay_first_miss_live" and self._live_misses_left == 0

    def _claim_live_miss(self) -> bool:
        """Whether a replay may make this missing call (see `CacheMode`)."""
        with self._lock:
            if self._live_misses_left == 0:
                return False
            self._live_misses_left -= 1
            return True

    def _append(
        self, key: str, args_json: str, occurrence: int, value: Any, seconds: float
    ) -> None:
        line = (
            f'- {{"key": {json.dumps(key, ensure_ascii=False)}, '
            f'"occurrence": {occurrence}, "args": {args_json}, '
            f'"answer": {json.dumps(value, ensure_ascii=False)}, '
            f'"seconds": {seconds:.6f}}}\n'
        )
        data = _YAML_UNSAFE_CHARACTERS.sub(_escape, line).encode()
        with self._lock:
            self._recorded[(key, args_json, occurrence)] = (value, seconds)
            if self._fd is None:  # closed by another thread meanwhile
                return
            # One write per entry: a kill loses at most the entry being written.
            written = os.write(self._fd, data)
            while written < len(data):  # pragma: no cover - regular files write all
                written += os.write(self._fd, data[written:])

    def _load(self, path: Path) -> None:
        text = path.read_text(encoding="utf-8")
        entries, torn_line = _parse_entries(path, text)
        if torn_line is not None:
            if self.mode != "read_write":
                raise CacheFileError(path, torn_line, "the last entry is cut short")
            # A run killed mid-write: drop its torn entry, and cut it from the file
            # so that new entries follow whole ones.
            truncate(path, len(text[: text.rindex("\n") + 1].encode()))
        for entry in entries:
            args_json = canonical_json(entry["args"])
            self._recorded[(entry["key"], args_json, entry["occurrence"])] = (
                entry["answer"],
                entry["seconds"],
            )


# What JSON leaves raw but YAML refuses or reads as a line break.
_YAML_UNSAFE_CHARACTERS: Final = re.compile("[\x7f-\x9f\u2028\u2029\ufffe\uffff]")


def _escape(match: re.Match[str]) -> str:
    return f"\\u{ord(match.group()):04x}"


def _parse_entries(path: Path, text: str) -> tuple[list[dict[str, Any]], int | None]:
    """The whole entries of a cache file's text, and the line of a torn last one."""
    lines = text.split("\n")
    tail = lines.pop()  # what follows the last newline: a torn entry, if anything
    entries = []
    for line in lines:
        entry: Any = None
        if line.startswith("- {"):
            with contextlib.suppress(ValueError):
                entry = json.loads(line[2:])
        if not _is_entry(entry):
            return _parse_yaml_entries(path, text), None  # edited by hand?
        entries.append(entry)
    return entries, (len(lines) + 1 if tail else None)


def _parse_yaml_entries(path: Path, text: str) -> list[dict[str, Any]]:
    try:
        entries = load_yaml(text)
    except yaml.YAMLError as error:
        line = yaml_error_line(error) or 1
        raise CacheFileError(path, line, f"corrupt YAML: {error}") from None
    if entries is None:
        return []
    if not isinstance(entries, list):
        raise CacheFileError(path, 1, "not a YAML sequence of cache entries")
    for index, entry in enumerate(entries):
        if not _is_entry(entry):
            raise CacheFileError(
                path,
                _item_line(text, index),
                f"entry {index} is not a cache entry with keys {_ENTRY_KEYS}",
            )
    return entries


def _is_entry(entry: object) -> bool:
    return (
        isinstance(entry, dict)
        and entry.keys() == set(_ENTRY_KEYS)
        and isinstance(entry["key"], str)
        and isinstance(entry["occurrence"], int)
        and isinstance(entry["seconds"], float | int)
    )


def _item_line(text: str, index: int) -> int:
    starts = [n for n, line in enumerate(text.split("\n")) if line.startswith("-")]
    return starts[index] + 1 if index < len(starts) else 1
