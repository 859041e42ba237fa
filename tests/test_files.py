"""The one way files are written: atomic replacement and append-only descriptors."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from pytest_delphyne.files import atomic_write, open_append, truncate


@pytest.mark.parametrize("durable", [True, False])
def test_atomic_write_writes_text_and_bytes_and_leaves_no_temporary(
    tmp_path: Path, durable: bool
) -> None:
    path = tmp_path / "f.txt"
    atomic_write(path, "été\n", durable=durable)
    assert path.read_bytes() == "été\n".encode()
    atomic_write(path, b"\x00raw", durable=durable)
    assert path.read_bytes() == b"\x00raw"
    assert os.listdir(tmp_path) == ["f.txt"]


def test_atomic_write_replaces_content_of_the_same_size(tmp_path: Path) -> None:
    path = tmp_path / "f.txt"
    atomic_write(path, "abc")
    atomic_write(path, "xyz")
    assert path.read_text() == "xyz"


def test_atomic_write_of_what_the_file_holds_leaves_it_untouched(
    tmp_path: Path,
) -> None:
    # A session that changes nothing must not look like a change to a file watcher.
    path = tmp_path / "f.txt"
    atomic_write(path, "abc")
    os.utime(path, ns=(0, 0))
    atomic_write(path, "abc")
    assert path.stat().st_mtime_ns == 0
    atomic_write(path, "abcd")
    assert path.stat().st_mtime_ns != 0


def test_a_failed_atomic_write_keeps_the_old_file_and_removes_its_temporary(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    path = tmp_path / "result.yaml"
    path.write_text("paid for\n")

    def refuse(source: object, target: object) -> None:
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(os, "replace", refuse)
    with pytest.raises(OSError, match="No space left"):
        atomic_write(path, "half", durable=False)
    assert path.read_text() == "paid for\n"
    assert os.listdir(tmp_path) == ["result.yaml"]


def test_a_durable_write_fsyncs_the_file_and_its_directory(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    synced: list[int] = []
    real_fsync = os.fsync

    def counting(fd: int) -> None:
        synced.append(fd)
        real_fsync(fd)

    monkeypatch.setattr(os, "fsync", counting)
    atomic_write(tmp_path / "a", "x", durable=False)
    assert synced == []
    atomic_write(tmp_path / "b", "x")
    assert len(synced) == 2


def test_open_append_appends_creates_and_truncates(tmp_path: Path) -> None:
    path = tmp_path / "journal"
    with pytest.raises(FileNotFoundError):
        open_append(path, create=False)
    for line in (b"one\n", b"two\n"):
        fd = open_append(path)
        os.lseek(fd, 0, os.SEEK_SET)  # O_APPEND writes at the end all the same
        os.write(fd, line)
        os.close(fd)
    assert path.read_bytes() == b"one\ntwo\n"
    truncate(path, 4)
    assert path.read_bytes() == b"one\n"
    os.close(open_append(path, truncate=True))
    assert path.read_bytes() == b""
