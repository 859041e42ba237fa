"""An experiment that pays for its calls as an LLM client does, for the tests that
count money and try a person's mistakes from outside the fault suite.

Each config asks one paid question through the cache (`env.cached_call`) and spends one
request and a price of 0.001 when the answer was not replayed; every real execution
appends a line to `paid.txt` (the side file that counts every real paid call), and
every program its pid to `pids.txt`.
`FAULTS=3=block,5=raise,7=wait` makes config x3 block after paying (until killed or
interrupted), x5 raise after paying, and x7 wait after paying until `go.txt` exists.
"""

from __future__ import annotations

import re
from collections import Counter
from pathlib import Path

import yaml

from pytest_delphyne import layout

EXPERIMENT = """
from __future__ import annotations

import os
import time
from dataclasses import dataclass
from pathlib import Path

from pytest_delphyne import Experiment, Outcome, Run

HERE = Path(__file__).parent
FAULTS = dict(
    (int(x), fault)
    for x, _, fault in (
        item.partition("=") for item in os.environ.get("FAULTS", "").split(",") if item
    )
)


def note(file, line):
    with (HERE / file).open("a") as handle:
        handle.write(line + "\\n")


def program(env, x, delay):
    note("pids.txt", str(os.getpid()))
    def paid_call():
        note("paid.txt", f"x{x}")
        return x * x

    # Its key ends with "paid_call", as `faults.harness.cached_calls` looks for.
    answer = env.cached_call("paid_call", {"x": x}, paid_call)
    env.spend(num_requests=1, price=0.001, replayed=answer.hit)
    fault = FAULTS.get(x)
    if fault == "block":
        note("blocking.txt", f"x{x}")
        time.sleep(600)
    if fault == "wait":
        note("waiting.txt", f"x{x}")
        while not (HERE / "go.txt").exists():
            time.sleep(0.01)
    if fault == "raise":
        raise ValueError(f"config {x} is broken")
    time.sleep(delay)
    note("finished.txt", f"x{x}")
    return Outcome(success=True, values=[answer.value])


@dataclass
class Config:
    x: int
    delay: float = DELAY

    def instantiate(self, context):
        return Run(program=program, args={"x": self.x, "delay": self.delay})


experiment = Experiment(
    config_class=Config,
    output_dir="out",
    configs=[Config(x) for x in range(CONFIGS)],
    config_naming=lambda config, uuid: f"x{config.x}",
)

if __name__ == "__main__":
    experiment.run_cli()
"""


def paying_experiment(configs: int, delay: float = 0.01) -> str:
    return EXPERIMENT.replace("CONFIGS", str(configs)).replace("DELAY", str(delay))


def paid_calls(directory: Path) -> Counter[str]:
    """How many times each config's question was really paid for."""
    path = directory / "paid.txt"
    return Counter(path.read_text().split() if path.exists() else [])


def yaml_configs(out: Path) -> dict[str, dict[str, object]]:
    configs: dict[str, dict[str, object]] = yaml.safe_load(
        (out / layout.STATE_FILE).read_text()
    )["configs"]
    return configs


def requests_in(output: str, label: str) -> int:
    """The number of requests a terminal line `  <label>: N requests, ...` shows."""
    found = re.search(rf"^  (?:- )?{re.escape(label)}: (\d+) requests", output, re.M)
    assert found is not None, f"no {label!r} line in:\n{output}"
    return int(found.group(1))
