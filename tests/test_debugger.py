"""`pytest --pdb` on a failed config, in a real pseudo-terminal."""

from __future__ import annotations

import sys

import pexpect
import pytest

EXPERIMENT = """
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from pytest_delphyne import Experiment, Outcome, Run

CALLS = Path(__file__).parent / "calls.txt"


def ask_oracle(x):
    with CALLS.open("a") as calls:
        calls.write(f"{x}\\n")
    return x + 1


def program(env, x):
    answer = env.compute(ask_oracle, x)
    if answer == 3:
        raise ValueError(f"the oracle answered {answer}")
    return Outcome(success=True, values=[answer])


@dataclass
class Config:
    x: int

    def instantiate(self, context):
        return Run(program=program, args={"x": self.x})


experiment = Experiment(
    config_class=Config,
    output_dir="out",
    configs=[Config(1), Config(2)],
    config_naming=lambda config, uuid: f"x{config.x}",
)
"""


def test_pdb_stops_at_the_raising_line_of_a_replayed_failure(
    pytester: pytest.Pytester,
) -> None:
    pytester.makepyfile(exp=EXPERIMENT)
    pytester.runpytest_subprocess("--delphyne-exp=exp.py").assert_outcomes(
        passed=1, failed=1
    )
    calls = pytester.path / "calls.txt"
    assert calls.read_text().split() == ["1", "2"]

    child = pexpect.spawn(
        sys.executable,
        ["-m", "pytest", "--delphyne-exp=exp.py", "--pdb", "-k", "x2", "-n", "2"],
        cwd=str(pytester.path),
        encoding="utf-8",
        timeout=60,
    )
    child.expect(r"\(Pdb\) ")
    before = child.before
    assert isinstance(before, str)
    assert "runs configs in this process, without xdist workers" in before
    # The debugger sits in the program's frame, at the line that raised.
    assert "exp.py(20)program()" in before
    assert 'raise ValueError(f"the oracle answered {answer}")' in before
    child.sendline("p answer")
    child.expect(r"\(Pdb\) ")
    assert "3" in str(child.before)
    child.sendline("c")
    child.expect(pexpect.EOF)
    output = str(child.before)
    assert "CacheMissError" not in output
    assert "1 failed" in output
    # The replay answered from the cache: the oracle was not asked again.
    assert calls.read_text().split() == ["1", "2"]


def test_quitting_the_debugger_of_a_replay_changes_and_claims_nothing(
    pytester: pytest.Pytester,
) -> None:
    pytester.makepyfile(exp=EXPERIMENT)
    pytester.runpytest_subprocess("--delphyne-exp=exp.py").assert_outcomes(
        passed=1, failed=1
    )
    state = pytester.path / "out" / "experiment.yaml"
    before = state.read_bytes()
    child = pexpect.spawn(
        sys.executable,
        ["-m", "pytest", "--delphyne-exp=exp.py", "--pdb", "-k", "x2"],
        cwd=str(pytester.path),
        encoding="utf-8",
        timeout=60,
    )
    child.expect(r"\(Pdb\) ")
    child.sendline("q")
    child.expect(pexpect.EOF)
    output = str(child.before)
    assert "Quitting debugger" in output
    assert "state saved" not in output
    assert state.read_bytes() == before
