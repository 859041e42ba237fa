"""A replay pays only for calls it makes live, and the ledger counts them (SPEC §3:
every live call counted where it is paid)."""

from __future__ import annotations

import sys

import pytest

from pytest_delphyne import layout
from pytest_delphyne.ledger import read_payments

# x2's call raises while `flaky.txt` exists, before its answer is recorded; every real
# call appends its config to `paid.txt`, the count kept on the side.
EXPERIMENT = """
from dataclasses import dataclass
from pathlib import Path

from pytest_delphyne import Experiment, Outcome, Run

HERE = Path(__file__).parent


def program(env, x):
    def ask():
        if x == 2 and (HERE / "flaky.txt").exists():
            raise ConnectionError("the endpoint dropped the call")
        with (HERE / "paid.txt").open("a") as paid:
            paid.write(f"x{x}\\n")
        return x * x

    answer = env.cached_call("ask", {"x": x}, ask)
    env.spend(num_requests=1, price=0.25, replayed=answer.hit)
    return Outcome(success=True, values=[answer.value])


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

if __name__ == "__main__":
    experiment.run_cli()
"""


@pytest.fixture
def failed_in_a_call(pytester: pytest.Pytester) -> pytest.Pytester:
    """x1 done; x2 failed in its call, which was not answered nor paid."""
    pytester.makepyfile(exp=EXPERIMENT)
    (pytester.path / "flaky.txt").touch()
    pytester.runpytest("--delphyne-exp=exp.py").assert_outcomes(passed=1, failed=1)
    (pytester.path / "flaky.txt").unlink()
    assert (pytester.path / "paid.txt").read_text().split() == ["x1"]
    return pytester


def paid_calls(pytester: pytest.Pytester) -> list[str]:
    return (pytester.path / "paid.txt").read_text().split()


def test_replay_of_a_failed_config_counts_its_live_call_in_the_ledger(
    failed_in_a_call: pytest.Pytester,
) -> None:
    pytester = failed_in_a_call
    output_dir = pytester.path / "out"
    before = read_payments(output_dir)
    result = pytester.runpytest("--delphyne-exp=exp.py", "--delphyne-replay")
    # The call that raised is made again and answers this time: a different outcome.
    result.assert_outcomes(passed=1, failed=1)
    assert paid_calls(pytester) == ["x1", "x2"]
    payments = read_payments(output_dir)
    assert payments[: len(before)] == before
    (new,) = payments[len(before) :]
    assert (new.config, new.spent) == ("x2", {"num_requests": 1, "price": 0.25})
    # A fresh attempt of x2, not one of the first session's.
    assert new.attempt not in {payment.attempt for payment in before}
    # Nothing of x2 was written but the ledger line: it stays failed, unanswered.
    assert not (output_dir / "configs" / "x2" / layout.RESULT_FILE).exists()
    result = pytester.runpytest("--delphyne-exp=exp.py", "--delphyne-replay")
    assert paid_calls(pytester) == ["x1", "x2", "x2"]
    assert [payment.config for payment in read_payments(output_dir)] == [
        "x1",
        "x2",
        "x2",
    ]


def test_replay_command_counts_the_live_call_in_the_ledger(
    failed_in_a_call: pytest.Pytester,
) -> None:
    pytester = failed_in_a_call
    result = pytester.run(sys.executable, "exp.py", "replay", "x2")
    assert paid_calls(pytester) == ["x1", "x2"]
    payments = read_payments(pytester.path / "out")
    assert [(payment.config, payment.spent) for payment in payments] == [
        ("x1", {"num_requests": 1, "price": 0.25}),
        ("x2", {"num_requests": 1, "price": 0.25}),
    ]
    assert payments[0].attempt != payments[1].attempt
    result.stdout.fnmatch_lines(["*recorded run raised ConnectionError*did not*"])


def test_a_replay_pays_nothing_the_program_says_it_spent(
    pytester: pytest.Pytester,
) -> None:
    # A program that counts what it spends without telling a replayed answer apart:
    # replayed from its cache, it makes no call, and the ledger gets no line.
    source = EXPERIMENT.replace("replayed=answer.hit", "")
    assert source != EXPERIMENT
    pytester.makepyfile(exp=source)
    pytester.runpytest("--delphyne-exp=exp.py").assert_outcomes(passed=2)
    before = read_payments(pytester.path / "out")
    assert [payment.config for payment in before] == ["x1", "x2"]
    replayed = pytester.runpytest("--delphyne-exp=exp.py", "--delphyne-replay")
    replayed.assert_outcomes(passed=2)
    assert paid_calls(pytester) == ["x1", "x2"]
    assert read_payments(pytester.path / "out") == before
