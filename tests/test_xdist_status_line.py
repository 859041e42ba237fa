"""xdist's status line under `-q`: written once, not once per stage of the workers'
start."""

from __future__ import annotations

import pytest

EXPERIMENT = """
from dataclasses import dataclass

from pytest_delphyne import Experiment, Outcome, Run


def program(env, x):
    return Outcome(True, [x])


@dataclass
class Config:
    x: int

    def instantiate(self, context):
        return Run(program=program, args={"x": self.x})


experiment = Experiment(
    config_class=Config,
    output_dir="out",
    configs=[Config(x) for x in range(3)],
    config_naming=lambda config, uuid: f"x{config.x}",
)
"""

BRINGING_UP = "bringing up nodes..."


def test_bringing_up_nodes_is_written_once_under_quiet_xdist(
    pytester: pytest.Pytester,
) -> None:
    pytester.makepyfile(exp=EXPERIMENT)
    result = pytester.runpytest_subprocess("--delphyne-exp", "exp.py", "-q", "-n", "2")
    result.assert_outcomes(passed=3)
    assert result.outlines.count(BRINGING_UP) == 1


def test_worker_status_lines_are_kept_at_default_verbosity(
    pytester: pytest.Pytester,
) -> None:
    pytester.makepyfile(exp=EXPERIMENT)
    result = pytester.runpytest_subprocess("--delphyne-exp", "exp.py", "-n", "2")
    result.assert_outcomes(passed=3)
    result.stdout.fnmatch_lines(["created: 2/2 workers", "2 workers [[]3 items[]]"])
