from __future__ import annotations

import os
from pathlib import Path

import pytest

from pytest_delphyne.files import (
    PLANTED_SYMLINK_MESSAGE,
    PlantedSymlinkError,
    atomic_write,
    open_append,
    open_log,
    refuse_symlinks,
)


@pytest.fixture
def target(tmp_path: Path) -> Path:
    """A file outside the output directory, and a link to it planted inside."""
    outside = tmp_path / "outside.txt"
    outside.write_text("the user's own file\n")
    (tmp_path / "out").mkdir()
    (tmp_path / "out" / "planted").symlink_to(outside)
    return outside


def refused(link: Path) -> str:
    return PLANTED_SYMLINK_MESSAGE.format(path=link)


def test_atomic_write_refuses_to_replace_a_link(tmp_path: Path, target: Path) -> None:
    link = tmp_path / "out" / "planted"
    with pytest.raises(PlantedSymlinkError) as raised:
        atomic_write(link, "new")
    assert str(raised.value) == refused(link)
    assert link.is_symlink()
    assert target.read_text() == "the user's own file\n"


def test_atomic_write_never_writes_through_a_planted_temporary(
    tmp_path: Path, target: Path
) -> None:
    path = tmp_path / "out" / "state.yaml"
    temporary = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    temporary.symlink_to(target)
    with pytest.raises(PlantedSymlinkError):
        atomic_write(path, "new")
    assert target.read_text() == "the user's own file\n"
    assert not path.exists()


def test_append_and_log_opens_refuse_a_link(tmp_path: Path, target: Path) -> None:
    link = tmp_path / "out" / "planted"
    with pytest.raises(PlantedSymlinkError, match="planted is a symbolic link"):
        open_append(link, truncate=True)
    with pytest.raises(PlantedSymlinkError, match="planted is a symbolic link"):
        open_log(link)
    assert target.read_text() == "the user's own file\n"


def test_refuse_symlinks_names_the_first_link_and_skips_missing_paths(
    tmp_path: Path, target: Path
) -> None:
    out = tmp_path / "out"
    (out / "dir").mkdir()
    refuse_symlinks([out / "missing", out / "dir", target])
    with pytest.raises(PlantedSymlinkError) as raised:
        refuse_symlinks([out / "dir", out / "planted", out / "missing"])
    assert raised.value.path == out / "planted"
    # A missing path before the link does not end the check.
    with pytest.raises(PlantedSymlinkError) as raised:
        refuse_symlinks([out / "missing", out / "planted"])
    assert raised.value.path == out / "planted"
