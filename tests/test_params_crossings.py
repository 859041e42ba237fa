"""How often one config's params cross between their dataclass and plain data on their
way from `Experiment.configs` to the state, `result.yaml` and `results_summary.csv`
(CONTRIBUTING.md, "One config's path"). A crossing is a pass over every config of a
100,000-config grid: the count is held here, in every process of a run, so that it
cannot grow back unnoticed."""

from __future__ import annotations

import csv
from collections import Counter

import pytest
import yaml

from pytest_delphyne import layout

EXPERIMENT = """
from dataclasses import dataclass

from pytest_delphyne import Experiment, Outcome, Run


def program(env, x):
    env.spend(price=0.5, num_requests=1)
    return Outcome(success=True, values=[x * x])


@dataclass
class Config:
    x: int
    model: str = "small"

    def instantiate(self, context):
        return Run(program=program, args={"x": self.x})


experiment = Experiment(
    config_class=Config,
    output_dir="out",
    configs=[Config(3)],
    config_naming=lambda config, _: f"x{config.x}",
)
"""

# Imported by the controller and by each xdist worker: every crossing of a config's
# params in that process is a line of `crossings.txt`.
COUNTING_CONFTEST = """
import os
from pathlib import Path

from pytest_delphyne import results
from pytest_delphyne.identity import ConfigCodec

LOG = Path(__file__).parent / "crossings.txt"
ROLE = "worker" if "PYTEST_XDIST_WORKER" in os.environ else "controller"


def counting(kind, real):
    def wrapper(*args, **kwargs):
        with LOG.open("a") as log:
            log.write(f"{ROLE} {kind}\\n")
        return real(*args, **kwargs)

    return wrapper


ConfigCodec.dump = counting("dump", ConfigCodec.dump)
ConfigCodec.load = counting("load", ConfigCodec.load)
# `result.yaml` copies the plain params it is given: a pass, though no crossing.
real_copy = results.plain_copy


def copy_of_params(value, what, path=""):
    if "params" in what:
        with LOG.open("a") as log:
            log.write(f"{ROLE} copy\\n")
    return real_copy(value, what, path)


results.plain_copy = copy_of_params
"""

# Into the state, a new config is made canonical: dumped (to look it up), loaded back
# (its canonical dataclass: `Config(1)` and `Config(1.0)` are one config) and dumped
# again. That canonical dump is carried from then on: the state file, the plan,
# `result.yaml` and the summary need no other. A worker loads the plan's plain
# params back into their dataclass once, to call `instantiate`.
ON_THE_CONTROLLER = {"controller dump": 2, "controller load": 1}
RESULT_COPY = 1


@pytest.mark.parametrize(
    ("args", "in_the_runner"),
    [
        pytest.param((), {"controller copy": RESULT_COPY}, id="one process"),
        pytest.param(
            ("-n", "1"),
            {"worker load": 1, "worker copy": RESULT_COPY},
            id="xdist worker",
        ),
    ],
)
def test_a_new_config_crosses_from_dataclass_to_plain_data_once_into_the_state(
    pytester: pytest.Pytester,
    monkeypatch: pytest.MonkeyPatch,
    args: tuple[str, ...],
    in_the_runner: dict[str, int],
) -> None:
    # Under `-n`, this test's own worker would make the run's controller a worker.
    monkeypatch.delenv("PYTEST_XDIST_WORKER", raising=False)
    pytester.makepyfile(exp=EXPERIMENT)
    pytester.makeconftest(COUNTING_CONFTEST)
    result = pytester.runpytest_subprocess("--delphyne-exp=exp.py", *args)
    result.assert_outcomes(passed=1)
    log = (pytester.path / "crossings.txt").read_text().splitlines()
    assert Counter(log) == Counter({**ON_THE_CONTROLLER, **in_the_runner})
    # The one plain form is what each file holds.
    output_dir = pytester.path / "out"
    written = yaml.safe_load(layout.result_file_path(output_dir, "x3").read_text())
    assert written["params"] == {"x": 3, "model": "small"}
    state = yaml.safe_load(layout.state_file_path(output_dir).read_text())
    assert state["configs"]["x3"]["params"] == {"x": 3, "model": "small"}
    with layout.summary_file_path(output_dir).open() as summary:
        (row,) = csv.DictReader(summary)
    assert (row["x"], row["model"], row["config_name"]) == ("3", "small", "x3")
