"""A run started on a disk that is almost full is refused before any config runs."""

from __future__ import annotations

import errno
import os
from pathlib import Path

import pytest

from faults.harness import experiment_source, paid, run, statuses
from pytest_delphyne import layout


def test_a_run_on_an_almost_full_disk_is_refused_before_any_config_runs(
    pytester: pytest.Pytester, small_disk: Path
) -> None:
    pytester.makepyfile(exp=experiment_source(configs=5))
    # The state exists and asks for nothing to be written: only the check refuses.
    assert run(pytester.path, "--co").returncode == 0
    assert set(statuses(small_disk).values()) == {"todo"}
    filler = small_disk / "filler"
    with filler.open("wb", buffering=0) as file:
        try:
            while True:
                file.write(bytes(4096))
        except OSError as error:
            if error.errno != errno.ENOSPC:
                raise
    # Room for the lock's small files, not for a config's.
    os.truncate(filler, filler.stat().st_size - 16 * 1024)
    state = (small_disk / layout.STATE_FILE).read_bytes()

    refused = run(pytester.path)
    assert refused.returncode == pytest.ExitCode.USAGE_ERROR
    assert f"no room to write in {small_disk} (No space left on device)" in (
        refused.stderr
    )
    assert not paid(pytester.path)
    assert (small_disk / layout.STATE_FILE).read_bytes() == state
    assert not (small_disk / ".room-check").exists()

    filler.unlink()
    ran = run(pytester.path)
    assert ran.returncode == 0, ran.stdout + ran.stderr
    assert set(statuses(small_disk).values()) == {"done"}
