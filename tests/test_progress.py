"""A long run shows what it paid as it goes (`--delphyne-progress-interval`)."""

from __future__ import annotations

import pytest

from pytest_delphyne.progress import PROGRESS_MESSAGE, CostProgress, progress_line

EXPERIMENT = """
from dataclasses import dataclass

from pytest_delphyne import Experiment, Outcome, Run


def program(env, x):
    env.spend(price=0.5, num_requests=1)
    return Outcome(success=True, values=[x])


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


def test_a_line_is_due_once_per_interval() -> None:
    now = [100.0]
    progress = CostProgress(interval=30.0, clock=lambda: now[0])
    assert not progress.due()
    now[0] = 129.0
    assert not progress.due()
    now[0] = 130.0
    assert progress.due()
    now[0] = 131.0
    assert not progress.due()
    now[0] = 160.0
    assert progress.due()


def test_the_line_counts_configs_and_the_price() -> None:
    line = progress_line(2, 5, {"price": 0.25, "num_requests": 1})
    assert line == PROGRESS_MESSAGE.format(
        finished=2, total=5, spent="0.2500 (1 request)"
    )


@pytest.mark.parametrize("workers", [[], ["-n", "2"]], ids=["no-xdist", "xdist"])
def test_each_finished_config_shows_the_cost_so_far_at_interval_0(
    pytester: pytest.Pytester, workers: list[str]
) -> None:
    pytester.makepyfile(exp=EXPERIMENT)
    result = pytester.runpytest_subprocess(
        "--delphyne-exp=exp.py", "--delphyne-progress-interval=0", *workers
    )
    result.assert_outcomes(passed=3)
    shown = [line for line in result.outlines if "configs finished" in line]
    every_config = [
        progress_line(count, 3, {"price": 0.5 * count, "num_requests": count})
        for count in (1, 2, 3)
    ]
    if not workers:
        assert shown == every_config
    else:
        # Two workers' results may both arrive before the first one's item ends: the
        # line then says 2/3 at once. Each line still counts what was paid, in order,
        # and the last one the whole run.
        assert shown[-1] == every_config[-1]
        assert shown == [line for line in every_config if line in shown]


@pytest.mark.parametrize(
    "options",
    [["-q", "--delphyne-progress-interval=0"], []],
    ids=["quiet", "short-run"],
)
def test_no_progress_line_under_q_or_before_the_interval(
    pytester: pytest.Pytester, options: list[str]
) -> None:
    pytester.makepyfile(exp=EXPERIMENT)
    result = pytester.runpytest("--delphyne-exp=exp.py", *options)
    result.assert_outcomes(passed=3)
    assert "configs finished" not in result.stdout.str()
