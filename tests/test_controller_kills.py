"""SIGKILL the controller at random moments, then resume: nothing recorded is lost or
paid twice (SPEC §3: a finished config is durable the moment it is reported)."""

from __future__ import annotations

import csv
import os
import random
import signal
import subprocess
import sys
import time
from collections import Counter
from pathlib import Path

import pytest
import yaml

from pytest_delphyne import layout
from pytest_delphyne.state import read_journal

CONFIGS = 100

# Every real execution of the oracle leaves a line in executions.txt.
EXPERIMENT = f"""
from __future__ import annotations

import time
from dataclasses import dataclass
from pathlib import Path

from pytest_delphyne import Experiment, Outcome, Run

EXECUTIONS = Path(__file__).parent / "executions.txt"


def oracle(x):
    with EXECUTIONS.open("a") as file:
        file.write(f"{{x}}\\n")
    time.sleep(0.03)
    return x + 1


def program(env, x):
    return Outcome(success=True, values=[env.compute(oracle, x)])


@dataclass
class Config:
    x: int

    def instantiate(self, context):
        return Run(program=program, args={{"x": self.x}})


experiment = Experiment(
    config_class=Config,
    output_dir="out",
    configs=[Config(x) for x in range({CONFIGS})],
    config_naming=lambda config, uuid: f"x{{config.x}}",
)
"""


def recorded_done(out: Path) -> set[str]:
    """The configs the state says are done: the YAML, then the journal over it."""
    state = yaml.safe_load((out / layout.STATE_FILE).read_text())
    statuses = {name: info["status"] for name, info in state["configs"].items()}
    for update in read_journal(out / layout.JOURNAL_FILE):
        statuses[update.name] = update.status
    return {name for name, status in statuses.items() if status == "done"}


def executions(directory: Path) -> Counter[str]:
    path = directory / "executions.txt"
    lines = path.read_text().split() if path.exists() else []
    return Counter(f"x{line}" for line in lines)


@pytest.mark.parametrize("workers", [[], ["-n", "2"]], ids=["no-xdist", "xdist"])
@pytest.mark.parametrize("seed", [1, 2])
def test_killed_controller_loses_nothing_recorded_and_resume_finishes(
    pytester: pytest.Pytester, workers: list[str], seed: int
) -> None:
    pytester.makepyfile(exp=EXPERIMENT)
    out = pytester.path / "out"
    rng = random.Random(seed)
    command = [sys.executable, "-m", "pytest", "--delphyne-exp=exp.py", *workers]
    kills = 0
    recorded: set[str] = set()
    # How often each config had been executed when the state first said it was done.
    paid_when_recorded: dict[str, int] = {}
    # Kill the whole process group (a machine crash) at a random moment of the run,
    # twice, then let a third run finish.
    for _ in range(2):
        process = subprocess.Popen(
            command,
            cwd=pytester.path,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
            start_new_session=True,
        )
        deadline = time.monotonic() + 60
        # Wait until this run has recorded a config of its own, so that the kill
        # lands mid-run, with something recorded and something still to do.
        while not (out / layout.STATE_FILE).exists() or recorded_done(out) <= recorded:
            assert time.monotonic() < deadline, "the run never recorded a config"
            time.sleep(0.01)
        time.sleep(rng.uniform(0.0, 0.5))
        os.killpg(process.pid, signal.SIGKILL)
        process.wait(timeout=60)
        kills += 1
        done = recorded_done(out)
        # What was recorded before a kill is still recorded after it.
        assert recorded <= done
        recorded = done
        paid = executions(pytester.path)
        for name in done - paid_when_recorded.keys():
            paid_when_recorded[name] = paid[name]
    assert 0 < len(recorded) < CONFIGS

    finished = subprocess.run(
        command, cwd=pytester.path, capture_output=True, text=True, timeout=300
    )
    assert finished.returncode == 0, finished.stdout + finished.stderr
    state = yaml.safe_load((out / layout.STATE_FILE).read_text())
    assert len(state["configs"]) == CONFIGS
    assert {info["status"] for info in state["configs"].values()} == {"done"}
    with (out / layout.SUMMARY_FILE).open() as file:
        rows = list(csv.DictReader(file))
    assert sorted(row["config_name"] for row in rows) == sorted(state["configs"])
    paid = executions(pytester.path)
    for name, count in paid_when_recorded.items():
        # Once recorded, never run again, whatever was killed afterwards.
        assert paid[name] == count, name
    for name in state["configs"]:
        # Not recorded before a kill: run again, at most once per run it lived in.
        assert 1 <= paid[name] <= 1 + kills, name
