"""SIGKILL the controller at random moments, then resume (SPEC §3: a finished config
is durable the moment it is reported; only the configs still running are lost)."""

from __future__ import annotations

import contextlib
import csv
import os
import random
import signal
from collections import Counter

import pytest
import yaml

from faults.harness import (
    CONFIGS,
    cached_calls,
    experiment_source,
    kill_group,
    lines,
    paid,
    run,
    start,
    statuses,
    wait_for_executions,
    wait_until_gone,
)
from pytest_delphyne import layout

KILLS_PER_CASE = 3


def kill_and_resume(
    pytester: pytest.Pytester,
    figures: Counter[str],
    *,
    seed: int,
    workers: list[str],
    whole_group: bool,
) -> None:
    pytester.makepyfile(exp=experiment_source())
    out = pytester.path / "out"
    rng = random.Random(seed)
    # Resumes reuse the calls an interrupted attempt recorded (the first run is fresh).
    options = [*workers, "-p", "no:cacheprovider"]
    resume = [*options, "--delphyne-reuse-cache"]
    done_at: dict[str, int] = {}  # config -> executions when first recorded done
    cached_at: dict[str, int] = {}  # config -> executions when its call was cached
    kills = 0
    for attempt in range(KILLS_PER_CASE):
        before = sum(paid(pytester.path).values())
        process = start(pytester.path, *(resume if attempt else options))
        # A random moment: after the n-th real execution of this attempt, up to the
        # very last one (the kill then lands in the final fold).
        target = before + rng.randint(1, max(1, CONFIGS - len(done_at)))
        wait_for_executions(pytester.path, target, process)
        if process.poll() is not None:
            break  # the run finished first: nothing left to kill
        if whole_group:
            kill_group(process)  # a machine crash: the workers die with it
        else:
            with contextlib.suppress(ProcessLookupError):
                os.kill(process.pid, signal.SIGKILL)
            process.wait(timeout=60)
        kills += 1
        figures["controller kills"] += 1
        # A worker outlives its controller only until the kernel kills it.
        pids = {int(pid) for pid in lines(pytester.path, "pids.txt")}
        wait_until_gone(pids)
        found = statuses(out)
        done = {name for name, status in found.items() if status == "done"}
        # What was recorded before a kill is still recorded after it...
        assert done_at.keys() <= done
        executions = paid(pytester.path)
        for name in done - done_at.keys():
            # ...and only with its result on disk.
            assert layout.result_file_path(out, name).exists(), name
            done_at[name] = executions[name]
        for name in cached_calls(out) - cached_at.keys():
            cached_at[name] = executions[name]

    finished = run(pytester.path, *resume)
    assert finished.returncode == 0, finished.stdout + finished.stderr
    assert "INTERNALERROR" not in finished.stdout + finished.stderr
    state = yaml.safe_load((out / layout.STATE_FILE).read_text())
    assert len(state["configs"]) == CONFIGS
    assert {info["status"] for info in state["configs"].values()} == {"done"}
    with (out / layout.SUMMARY_FILE).open() as file:
        rows = list(csv.DictReader(file))
    assert sorted(row["config_name"] for row in rows) == sorted(state["configs"])
    executions = paid(pytester.path)
    lost = [name for name, count in done_at.items() if executions[name] != count]
    paid_twice = [
        name for name, count in cached_at.items() if executions[name] != count
    ]
    figures["configs recorded before a kill"] += len(done_at)
    figures["configs lost (recorded, then run again)"] += len(lost)
    figures["recorded calls paid twice"] += len(paid_twice)
    figures["calls paid again (never recorded)"] += sum(executions.values()) - CONFIGS
    assert lost == []
    assert paid_twice == []
    assert kills > 0, "the kills missed the run"
    for name in state["configs"]:
        # Never recorded: run once more per kill it lived through, at most.
        assert 1 <= executions[name] <= 1 + KILLS_PER_CASE, name


@pytest.mark.parametrize(
    ("workers", "whole_group", "seed"),
    [
        pytest.param(["-n", "2"], True, 1, id="xdist-machine-crash"),
        pytest.param(["-n", "2"], False, 2, id="xdist-controller-only"),
        pytest.param([], True, 3, id="no-xdist"),
    ],
)
def test_killed_controller_loses_nothing_recorded_and_resume_finishes(
    pytester: pytest.Pytester,
    figures: Counter[str],
    workers: list[str],
    whole_group: bool,
    seed: int,
) -> None:
    kill_and_resume(
        pytester, figures, seed=seed, workers=workers, whole_group=whole_group
    )


@pytest.mark.slow
@pytest.mark.parametrize("seed", range(10, 16))
@pytest.mark.parametrize("whole_group", [True, False], ids=["group", "controller"])
@pytest.mark.parametrize("workers", [[], ["-n", "2"]], ids=["no-xdist", "xdist"])
def test_killed_controller_at_more_random_moments(
    pytester: pytest.Pytester,
    figures: Counter[str],
    workers: list[str],
    whole_group: bool,
    seed: int,
) -> None:
    kill_and_resume(
        pytester, figures, seed=seed, workers=workers, whole_group=whole_group
    )
