"""What the recorded results account for (`status` and the session's end say it as
"recorded in total"): every done config's result, whatever comes between them."""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from pathlib import Path

import yaml

from pytest_delphyne import Experiment, layout
from pytest_delphyne.runtime import Run
from pytest_delphyne.spending import total_spent
from pytest_delphyne.state import ConfigUpdate, Status, utc_now


@dataclass
class Config:
    x: int

    def instantiate(self, context: object) -> Run:
        return Run(program=lambda env: None)


def by_x(config: Config, _: uuid.UUID) -> str:
    return f"x{config.x}"


def ran(experiment: Experiment[Config], name: str, status: Status) -> None:
    now = utc_now()
    experiment.store.record(ConfigUpdate(name, status, now, now))
    if status == "done":
        directory = experiment.config_dir(name)
        directory.mkdir(parents=True)
        result = {"success": True, "values": [], "spent_budget": {"num_requests": 1}}
        (directory / layout.RESULT_FILE).write_text(
            yaml.safe_dump({"config_name": name, "outcome": {"result": result}})
        )


def test_recorded_total_counts_every_done_config_past_failed_and_missing_ones(
    tmp_path: Path,
) -> None:
    configs = [Config(x) for x in range(1, 6)]
    experiment = Experiment(
        config_class=Config, output_dir=tmp_path, configs=configs, config_naming=by_x
    ).load()
    ran(experiment, "x1", "done")
    ran(experiment, "x2", "failed")
    ran(experiment, "x3", "done")
    ran(experiment, "x4", "done")
    ran(experiment, "x5", "done")
    # x4's result is gone (the summary's error names it): the others still count.
    (experiment.config_dir("x4") / layout.RESULT_FILE).unlink()
    assert total_spent(experiment)["num_requests"] == 3
