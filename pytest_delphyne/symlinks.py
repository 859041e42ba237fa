"""Nothing is written outside the output directory (SPEC §3): a symbolic link planted
in it (`ln -s /elsewhere out/configs/a`) would send a config's files, or the state's
journal, wherever it points, overwriting what is there.

Every path the project writes under the output directory is checked here before it
is opened or created; the files it appends to are also opened with `O_NOFOLLOW`
(`NO_FOLLOW`), which closes the gap between the check and the open.
"""

from __future__ import annotations

import os
import stat
from typing import TYPE_CHECKING, Final

from pytest_delphyne.errors import DelphyneError

if TYPE_CHECKING:
    from collections.abc import Iterable
    from pathlib import Path

PLANTED_SYMLINK_MESSAGE: Final = (
    "{path} is a symbolic link: refusing to write through it, outside the output "
    "directory; remove it and run again"
)
NO_FOLLOW: Final = getattr(os, "O_NOFOLLOW", 0)
"""`os.open` flag: fail (ELOOP) rather than open the target of a symbolic link."""


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
