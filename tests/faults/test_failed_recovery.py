"""A failure on disk is a failure (SPEC §3, a result on disk is a result): a config
whose program raised while its controller stalled, then was killed, is recorded
`failed` by the next run, not run and paid again; `--lf` reruns it."""

from __future__ import annotations

import os
import signal
import time

import pytest

from faults.harness import kill_group, lines, run, start, wait_for
from faults.ledger_harness import paid_calls, paying_experiment, yaml_configs
from pytest_delphyne import layout
from pytest_delphyne.journal import read_journal

NO_CACHEPROVIDER = ("-p", "no:cacheprovider")
CONFIGS = 40
# Every odd config from x5 on raises after paying for its call.
RAISING = [x for x in range(5, CONFIGS, 2)]


def test_failed_configs_of_a_stalled_then_killed_controller_are_not_paid_again(
    pytester: pytest.Pytester,
) -> None:
    pytester.makepyfile(exp=paying_experiment(CONFIGS, delay=0.05))
    out = pytester.path / "out"
    faults = ",".join(f"{x}=raise" for x in RAISING)
    process = start(pytester.path, "-n", "2", *NO_CACHEPROVIDER, faults=faults)
    wait_for(lambda: len(lines(pytester.path, "finished.txt")) >= 4, timeout=120)
    # The workers go on while the controller is stopped: what they finish is on
    # disk and never reaches the controller.
    os.kill(process.pid, signal.SIGSTOP)
    time.sleep(3)
    kill_group(process)
    recorded = {update.name for update in read_journal(out / layout.JOURNAL_FILE)}
    failed_on_disk = {
        f"x{x}" for x in RAISING if layout.exception_file_path(out, f"x{x}").exists()
    }
    unrecorded = failed_on_disk - recorded
    assert unrecorded, "no failure was left unrecorded: stall the controller longer"

    resumed = run(pytester.path, "-n", "2", *NO_CACHEPROVIDER, faults=faults)

    assert resumed.returncode == 1, resumed.stdout
    assert "recorded from its result file, not run again" in resumed.stdout
    paid = paid_calls(pytester.path)
    assert {name: paid[name] for name in sorted(unrecorded)} == dict.fromkeys(
        sorted(unrecorded), 1
    )
    statuses = {name: info["status"] for name, info in yaml_configs(out).items()}
    assert statuses == {
        f"x{x}": "failed" if x in RAISING else "done" for x in range(CONFIGS)
    }

    retried = run(pytester.path, "--lf")

    assert retried.returncode == 0, retried.stdout
    # Rerun without the fault: each failed config paid once more.
    assert paid_calls(pytester.path) == {
        f"x{x}": paid[f"x{x}"] + (x in RAISING) for x in range(CONFIGS)
    }
    assert {info["status"] for info in yaml_configs(out).values()} == {"done"}
