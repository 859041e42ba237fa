"""The output directory's disk fills up while results are recorded: a clear error,
and a state on disk that stays valid and loadable, then resumes (SPEC §3)."""

from __future__ import annotations

import csv
import errno
from collections import Counter
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

import pytest

from faults.harness import (
    CONFIGS,
    cached_calls,
    experiment_source,
    grow,
    paid,
    run,
    state_configs,
    statuses,
)
from pytest_delphyne import layout
from pytest_delphyne.identity import codec_for
from pytest_delphyne.results import read_result
from pytest_delphyne.state import ConfigInfo, ConfigUpdate, ExperimentState
from pytest_delphyne.state_store import StateStore

NO_SPACE = "No space left on device"


def fill(disk: Path) -> Path:
    """Write a file until the disk refuses more; the file."""
    filler = disk / "filler"
    with filler.open("wb", buffering=0) as file:
        try:
            while True:
                file.write(b"\0" * 4096)
        except OSError as error:
            if error.errno != errno.ENOSPC:
                raise
    return filler


@pytest.mark.parametrize(
    "workers",
    [
        pytest.param(["-n", "2"], id="xdist"),
        pytest.param([], id="no-xdist", marks=pytest.mark.slow),
    ],
)
def test_full_disk_stops_the_run_clearly_and_the_state_stays_loadable(
    pytester: pytest.Pytester,
    small_disk: Path,
    figures: Counter[str],
    workers: list[str],
) -> None:
    pytester.makepyfile(exp=experiment_source())
    out = small_disk
    result = run(pytester.path, *workers, "-p", "no:cacheprovider")
    output = result.stdout + result.stderr
    assert result.returncode != 0
    assert "INTERNALERROR" not in output, output
    assert f"cannot write to the output directory {out}" in output, output
    assert NO_SPACE in output
    assert "make room, then run again with --lf" in output
    figures["runs on a full disk"] += 1

    # Still full: experiment.yaml parses, the journal applies over it, and every
    # done config has its result.
    found = statuses(out)
    assert len(found) == CONFIGS
    done = [name for name, status in found.items() if status == "done"]
    assert 0 < len(done) < CONFIGS, "the disk did not fill up mid-run"
    for name in done:
        assert read_result(layout.config_dir(out, name)).values == [int(name[1:]) ** 2]
    # Reading needs neither a lock nor room.
    plan = run(pytester.path, "--co", "-q", "-p", "no:cacheprovider")
    assert plan.returncode == 0, plan.stdout + plan.stderr
    # A run on a disk still full stops as clearly, and runs no done config again.
    before = paid(pytester.path)
    again = run(pytester.path, *workers, "-p", "no:cacheprovider")
    assert "INTERNALERROR" not in again.stdout + again.stderr
    assert NO_SPACE in again.stdout + again.stderr
    assert [name for name in done if paid(pytester.path)[name] != before[name]] == []

    grow(out)
    recorded_calls = cached_calls(out)
    before = paid(pytester.path)
    resumed = run(
        pytester.path, *workers, "-p", "no:cacheprovider", "--delphyne-reuse-cache"
    )
    assert resumed.returncode == 0, resumed.stdout + resumed.stderr
    configs = state_configs(out)
    assert {info["status"] for info in configs.values()} == {"done"}
    with (out / layout.SUMMARY_FILE).open() as file:
        assert len(list(csv.DictReader(file))) == CONFIGS
    after = paid(pytester.path)
    assert sorted(done) == sorted(
        set(done) - {n for n in done if after[n] != before[n]}
    )
    paid_twice = [name for name in recorded_calls if after[name] != before[name]]
    figures["recorded calls paid twice"] += len(paid_twice)
    assert paid_twice == []


@dataclass
class Point:
    x: int


def update(name: str) -> ConfigUpdate:
    now = datetime.now(UTC)
    return ConfigUpdate(name=name, status="done", start_time=now, end_time=now)


def test_journal_line_cut_by_a_full_disk_leaves_the_journal_readable(
    small_disk: Path,
) -> None:
    store = StateStore(small_disk, codec_for(Point))
    store.save(
        ExperimentState(None, None, {f"x{i}": ConfigInfo(Point(i)) for i in range(9)})
    )
    state_bytes = (small_disk / layout.STATE_FILE).read_bytes()
    # Bring the journal near the end of its page: the next line needs a new page.
    line = len(update("x0").to_json()) + 1
    store.record(update("x0"))
    while not 0 < 4096 - store.journal_file.stat().st_size % 4096 < line:
        store.record(update("x0"))
    filler = fill(small_disk)
    size = store.journal_file.stat().st_size
    with pytest.raises(OSError, match=NO_SPACE):
        store.record(update("x1"))
    # The half of the line the disk took is cut.
    assert store.journal_file.stat().st_size == size
    # A fold on the full disk fails without touching experiment.yaml.
    with pytest.raises(OSError, match=NO_SPACE):
        store.fold()
    assert (small_disk / layout.STATE_FILE).read_bytes() == state_bytes
    filler.unlink()
    store.record(update("x2"))
    loaded = StateStore(small_disk, codec_for(Point)).load()
    assert {name for name, info in loaded.configs.items() if info.status == "done"} == {
        "x0",
        "x2",
    }
