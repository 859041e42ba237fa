"""How the project writes files: whole files replaced atomically, logs and append-only
files opened for appending. Every file the project writes is opened here.

A whole file (the state, its index, `result.yaml`, `exception.txt`, the traces, the
summary, the report, snapshots, the files a worker ships) is written by `atomic_write`:
to a temporary file in the same directory, then renamed over the target, so a reader
never sees half a file and a process killed mid-write leaves the old file (or none),
and its temporary removed: the idiom of pytest's `assertion/rewrite.py::_write_pyc`.

`durable=True` also fsyncs the file and its directory, so that the new file survives a
crash of the machine. Only the state, which holds what every config has cost, pays
for it by default. The per-config files (`result.yaml`, `exception.txt`, traces,
shipped files) skip it: two fsyncs cost milliseconds per config, more than running
it, and a config whose file is lost to a power cut is rerun (its state, fsynced at
the fold, does not claim more than the files hold).

The journal and the cache are append-only: `open_append` gives a descriptor opened
with `O_APPEND`, on which each `os.write` of a whole line lands at the end even with
several writers, and which the kernel keeps once the call returns (SIGKILL loses
nothing written). A log is a stream of lines: `open_log` opens it for writing text.
"""

from __future__ import annotations

import os
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from pathlib import Path
    from typing import TextIO

_FILE_MODE = 0o644


def atomic_write(path: Path, content: str | bytes, *, durable: bool = True) -> None:
    """Replace `path` with `content` (text is written as UTF-8), never leaving a
    half-written file in its place nor a temporary file beside it.

    Arguments:
        path: the file; its directory must exist.
        content: the whole new content.
        durable: fsync the file and its directory (see the module's docstring for
            which files skip it, and why).
    """
    data = content.encode("utf-8") if isinstance(content, str) else content
    temporary = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    fd = os.open(temporary, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, _FILE_MODE)
    try:
        try:
            view = memoryview(data)
            while view:
                view = view[os.write(fd, view) :]
            if durable:
                os.fsync(fd)
        finally:
            os.close(fd)
        os.replace(temporary, path)
    except BaseException:
        temporary.unlink(missing_ok=True)
        raise
    if durable:
        _fsync_directory(path.parent)


def _fsync_directory(directory: Path) -> None:
    # The rename is only durable once the directory entry is on disk.
    fd = os.open(directory, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def open_append(path: Path, *, create: bool = True, truncate: bool = False) -> int:
    """A descriptor of `path` opened for appending (`O_APPEND`) and reading.

    Arguments:
        path: the file.
        create: create it when missing (else `FileNotFoundError`).
        truncate: empty it first (a fresh cache).
    """
    flags = os.O_RDWR | os.O_APPEND
    if create:
        flags |= os.O_CREAT
    if truncate:
        flags |= os.O_TRUNC
    return os.open(path, flags, _FILE_MODE)


def open_log(path: Path) -> TextIO:
    """`path` emptied and opened for writing UTF-8 lines (a run's log)."""
    return open(path, "w", encoding="utf-8")


def truncate(path: Path, size: int) -> None:
    """Cut `path` to its first `size` bytes (a torn line of an append-only file)."""
    os.truncate(path, size)
