"""Ctrl-C, once and twice in a row, on a 120-config run (SPEC §5: interrupted configs
stay todo with their interruption time, and a message says the state was saved)."""

from __future__ import annotations

import os
import signal
import subprocess
import time
from collections import Counter

import pytest

from faults.harness import (
    CONFIGS,
    cached_calls,
    experiment_source,
    kill_group,
    lines,
    paid,
    run,
    start,
    state_configs,
    wait_for,
    wait_until_gone,
)
from pytest_delphyne import layout
from pytest_delphyne.recorder import STATE_SAVED_MESSAGE

# With -n 2, xdist's first chunks are x0-x14 and x15-x29: one blocking config each.
BLOCKING = {"": ["x5"], "xdist": ["x5", "x20"]}


def interrupt(
    pytester: pytest.Pytester,
    figures: Counter[str],
    workers: list[str],
    second_after: float | None,
) -> None:
    pytester.makepyfile(exp=experiment_source())
    out = pytester.path / "out"
    blocking = BLOCKING["xdist" if workers else ""]
    faults = ",".join(f"{name[1:]}=block" for name in blocking)
    process = start(
        pytester.path,
        *workers,
        "-p",
        "no:cacheprovider",
        faults=faults,
        output=subprocess.PIPE,
    )
    try:
        wait_for(
            lambda: (
                len(lines(pytester.path, "blocking.txt")) == len(blocking)
                or process.poll() is not None
            )
        )
    except TimeoutError:
        kill_group(process)
        pytest.fail(f"the run never blocked:\n{process.communicate()[0]}")
    if process.poll() is not None:
        pytest.fail(f"the run ended before Ctrl-C:\n{process.communicate()[0]}")
    # A terminal sends Ctrl-C to the whole foreground group.
    os.killpg(process.pid, signal.SIGINT)
    figures["ctrl-c sent"] += 1
    if second_after is not None:
        time.sleep(second_after)
        if process.poll() is None:
            os.killpg(process.pid, signal.SIGINT)
            figures["ctrl-c sent"] += 1
    output, _ = process.communicate(timeout=120)

    state_path = out / layout.STATE_FILE
    shown = state_path.relative_to(pytester.path)
    assert output.count(STATE_SAVED_MESSAGE.format(path=shown)) == 1, output
    # Folded: experiment.yaml alone holds the state.
    assert not (out / layout.JOURNAL_FILE).exists()
    configs = state_configs(out)
    finished = set(lines(pytester.path, "finished.txt"))
    for name in blocking:
        assert configs[name]["status"] == "todo"
        assert configs[name]["interruption_time"] is not None
        assert not layout.result_file_path(out, name).exists()
    for name, info in configs.items():
        if info["status"] == "done":
            assert name in finished
            assert layout.result_file_path(out, name).exists()
        elif info["status"] == "todo" and info["interruption_time"] is None:
            assert info["start_time"] is None, name
    assert "failed" not in {info["status"] for info in configs.values()}
    # No process that ran a config outlives the run.
    wait_until_gone({int(pid) for pid in lines(pytester.path, "pids.txt")})

    recorded_calls = cached_calls(out)
    before = paid(pytester.path)
    resumed = run(
        pytester.path, *workers, "-p", "no:cacheprovider", "--delphyne-reuse-cache"
    )
    assert resumed.returncode == 0, resumed.stdout + resumed.stderr
    configs = state_configs(out)
    assert len(configs) == CONFIGS
    assert {info["status"] for info in configs.values()} == {"done"}
    after = paid(pytester.path)
    paid_twice = [name for name in recorded_calls if after[name] != before[name]]
    figures["recorded calls paid twice"] += len(paid_twice)
    assert paid_twice == []
    assert set(blocking) <= recorded_calls


@pytest.mark.parametrize("workers", [[], ["-n", "2"]], ids=["no-xdist", "xdist"])
def test_ctrl_c_saves_the_state_and_leaves_no_worker(
    pytester: pytest.Pytester, figures: Counter[str], workers: list[str]
) -> None:
    interrupt(pytester, figures, workers, second_after=None)


@pytest.mark.parametrize("workers", [[], ["-n", "2"]], ids=["no-xdist", "xdist"])
def test_second_ctrl_c_right_after_the_first_still_saves_the_state(
    pytester: pytest.Pytester, figures: Counter[str], workers: list[str]
) -> None:
    interrupt(pytester, figures, workers, second_after=0.05)


@pytest.mark.slow
@pytest.mark.parametrize("second_after", [0.0, 0.01, 0.2, 0.5, 1.0])
@pytest.mark.parametrize("workers", [[], ["-n", "2"]], ids=["no-xdist", "xdist"])
def test_second_ctrl_c_at_other_moments_still_saves_the_state(
    pytester: pytest.Pytester,
    figures: Counter[str],
    workers: list[str],
    second_after: float,
) -> None:
    interrupt(pytester, figures, workers, second_after=second_after)
