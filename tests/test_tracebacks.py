"""What a user reads of a failure or a Ctrl-C: the program's frames, not the plugin's
(SPEC §5)."""

from __future__ import annotations

import os
import signal
import subprocess

import pytest
from traceback_text import without_markers

from pytest_delphyne import layout

EXPERIMENT = """
from dataclasses import dataclass

from pytest_delphyne import Experiment, Outcome, Run


def divide(x):
    return 1 / (x - x)


def program(env, x):
    value = env.compute(divide, x)
    return Outcome(success=True, values=[value])


@dataclass
class Config:
    x: int

    def instantiate(self, context):
        return Run(program=program, args={"x": self.x})


experiment = Experiment(
    config_class=Config,
    output_dir="out",
    configs=[Config(1)],
    config_naming=lambda config, uuid: f"x{config.x}",
)
"""


def test_a_failure_through_env_compute_shows_the_program_and_the_computed_call(
    pytester: pytest.Pytester,
) -> None:
    pytester.makepyfile(exp=EXPERIMENT)
    result = pytester.runpytest("--delphyne-exp=exp.py")
    result.assert_outcomes(failed=1)
    failure = result.stdout.str().split("FAILURES")[1].split("short test summary")[0]
    stored = layout.exception_file_path(pytester.path / "out", "x1").read_text().strip()
    for shown in (failure, stored):
        assert "pytest_delphyne/" not in shown
        assert "_pytest/" not in shown
        assert "value = env.compute(divide, x)" in shown
        assert "return 1 / (x - x)" in shown
    path = pytester.path / "exp.py"
    # The markers under a line (`~~^~~`) differ between Python versions.
    assert without_markers(stored) == [
        "Traceback (most recent call last):",
        f'  File "{path}", line 11, in program',
        "    value = env.compute(divide, x)",
        f'  File "{path}", line 7, in divide',
        "    return 1 / (x - x)",
        "ZeroDivisionError: division by zero",
    ]


SLEEPING_PROGRAM = """
import time
from dataclasses import dataclass
from pathlib import Path

from pytest_delphyne import Experiment, Outcome, Run


def program(env):
    (Path(__file__).parent / "started").write_text("")
    time.sleep(600)
    return Outcome(success=True, values=[])


@dataclass
class Config:
    x: int

    def instantiate(self, context):
        return Run(program=program, args={})


experiment = Experiment(config_class=Config, output_dir="out", configs=[Config(1)])
"""


def test_ctrl_c_is_reported_where_the_program_was(pytester: pytest.Pytester) -> None:
    from test_interrupts import start_run, wait_for

    pytester.makepyfile(exp=SLEEPING_PROGRAM)
    process = start_run(pytester.path, output=subprocess.PIPE)
    try:
        wait_for(lambda: (pytester.path / "started").exists())
        os.killpg(process.pid, signal.SIGINT)
        output, _ = process.communicate(timeout=120)
    finally:
        if process.poll() is None:
            os.killpg(process.pid, signal.SIGKILL)
            process.wait()
    assert process.returncode == pytest.ExitCode.INTERRUPTED
    path = pytester.path / "exp.py"
    sleep_line = path.read_text().splitlines().index("    time.sleep(600)") + 1
    assert f"{path}:{sleep_line}: KeyboardInterrupt" in output.splitlines()
    assert "pytest_delphyne/" not in output
