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

Nothing is written outside the output directory (SPEC §3): a symbolic link planted in
it (`ln -s /elsewhere out/configs/a`) would send files wherever it points, overwriting
what is there. Every file is opened here with `O_NOFOLLOW`, `atomic_write` refuses to
replace a link, and the directories the project writes in are checked with
`refuse_symlinks` before they are used: a planted link is a `PlantedSymlinkError`
naming it.
"""

from __future__ import annotations

import errno
import os
import stat
from typing import TYPE_CHECKING, Final

from pytest_delphyne.errors import DelphyneError

if TYPE_CHECKING:
    from collections.abc import Iterable
    from pathlib import Path
    from typing import TextIO

_FILE_MODE = 0o644
# Fail (ELOOP) rather than open what a symbolic link points at.
_NO_FOLLOW: Final = getattr(os, "O_NOFOLLOW", 0)

PLANTED_SYMLINK_MESSAGE: Final = (
    "{path} is a symbolic link: refusing to write through it, outside the output "
    "directory; remove it and run again"
)


class PlantedSymlinkError(DelphyneError):
    """A path the project would write is a symbolic link."""

    def __init__(self, path: Path):
        self.path = path
        super().__init__(PLANTED_SYMLINK_MESSAGE.format(path=path))


def refuse_symlinks(paths: Iterable[Path]) -> None:
    """Check that none of `paths` is a symbolic link (a missing path is fine).

    Raises:
        PlantedSymlinkError: naming the first link found.
    """
    for path in paths:
        try:
            mode = os.lstat(path).st_mode
        except FileNotFoundError:
            continue
        if stat.S_ISLNK(mode):
            raise PlantedSymlinkError(path)


def _open(path: Path, flags: int) -> int:
    try:
        return os.open(path, flags | _NO_FOLLOW, _FILE_MODE)
    except OSError as error:
        if _NO_FOLLOW and error.errno == errno.ELOOP:
            raise PlantedSymlinkError(path) from None
        raise


def atomic_write(path: Path, content: str | bytes, *, durable: bool = True) -> None:
    """Replace `path` with `content` (text is written as UTF-8), never leaving a
    half-written file in its place nor a temporary file beside it.

    Arguments:
        path: the file; its directory must exist.
        content: the whole new content; a file that holds it already is left
            untouched.
        durable: fsync the file and its directory (see the module's docstring for
            which files skip it, and why).

    Raises:
        PlantedSymlinkError: `path` is a symbolic link.
    """
    data = content.encode("utf-8") if isinstance(content, str) else content
    refuse_symlinks([path])
    if _holds(path, data):
        return
    temporary = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    fd = _open(temporary, os.O_WRONLY | os.O_CREAT | os.O_TRUNC)
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


def _holds(path: Path, data: bytes) -> bool:
    # A file that already holds `data` is left alone (its modification time too): a
    # session that changes nothing (a replay, a run where every config is skipped)
    # must not look like a change to a file watcher or a sync tool.
    try:
        return path.stat().st_size == len(data) and path.read_bytes() == data
    except OSError:
        return False


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

    Raises:
        PlantedSymlinkError: `path` is a symbolic link.
    """
    flags = os.O_RDWR | os.O_APPEND
    if create:
        flags |= os.O_CREAT
    if truncate:
        flags |= os.O_TRUNC
    return _open(path, flags)


def open_log(path: Path) -> TextIO:
    """`path` emptied and opened for writing UTF-8 lines (a run's log).

    Raises:
        PlantedSymlinkError: `path` is a symbolic link.
    """
    fd = _open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC)
    return open(fd, "w", encoding="utf-8")


def truncate(path: Path, size: int) -> None:
    """Cut `path` to its first `size` bytes (a torn line of an append-only file)."""
    os.truncate(path, size)
