"""The files the controller writes into a config's directory for its worker.

A worker that does not see the output directory (a remote xdist worker) sends its
config's files (result, cache, log, exception) with its report; the controller writes
them into the config's directory, refusing symlinks planted there. When something did
not come, an exception file says so: a "done" config whose worker shipped files but no
result is failed, and a config whose item ended without a report (a crashed worker, a
failing setup) gets the reason. Only the files: the recorder records the status.
"""

from __future__ import annotations

import contextlib
from typing import TYPE_CHECKING

from pytest_delphyne import layout
from pytest_delphyne.files import PlantedSymlinkError, atomic_write, refuse_symlinks

if TYPE_CHECKING:
    from pathlib import Path

    from pytest_delphyne.state import Status

MISSING_RESULT_MESSAGE = (
    "config {name} ended without a result file at {path}; it is recorded as failed"
)
NO_REPORT_MESSAGE = "config {name} ended without a result: {reason}\n\n{details}"


def write_shipped_file(path: Path, data: bytes) -> None:
    """Write `data` at `path`, creating its directory.

    Raises:
        PlantedSymlinkError: the directory or the file is a symlink.
    """
    refuse_symlinks([path.parent, path])
    path.parent.mkdir(parents=True, exist_ok=True)
    atomic_write(path, data, durable=False)


def write_shipped_files(
    config_dir: Path, name: str, shipped: dict[str, bytes], status: Status
) -> Status:
    """Write the files a worker shipped for config `name`; return the status to
    record (`status`, or "failed" for a "done" config shipped without a result)."""
    for file_name, data in shipped.items():
        write_shipped_file(config_dir / file_name, data)
    # A worker that shares the output directory wrote its result before reporting
    # "done" (no stat needed); one that does not ships it, or has none.
    if status == "done" and shipped and layout.RESULT_FILE not in shipped:
        result_path = config_dir / layout.RESULT_FILE
        write_shipped_file(
            config_dir / layout.EXCEPTION_FILE,
            MISSING_RESULT_MESSAGE.format(name=name, path=result_path).encode(),
        )
        return "failed"
    return status


def write_no_report_file(
    config_dir: Path, name: str, reason: str, details: str
) -> None:
    """Say in the exception file of config `name` why it ended without a result."""
    with contextlib.suppress(PlantedSymlinkError):
        # The item's own failure already names the link.
        write_shipped_file(
            config_dir / layout.EXCEPTION_FILE,
            NO_REPORT_MESSAGE.format(
                name=name, reason=reason, details=details
            ).encode(),
        )
