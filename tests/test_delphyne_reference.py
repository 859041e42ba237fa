"""The reference launcher reads what this project writes (SPEC §3, both ways).

These tests run Delphyne's own `Experiment.load()`, `get_status()` and
`save_summary(add_timing=True)` on an output directory this project wrote. Delphyne
needs Python 3.12 and is not on this project's package index, so they run only where
`DELPHYNE_REFERENCE_PYTHON` names a Python that imports `delphyne`; elsewhere they are
skipped with that reason. What the reference's summary needs of the state (every time
a YAML timestamp) is checked without it in `test_delphyne_output_dirs.py`.
"""

from __future__ import annotations

import csv
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from pytest_delphyne import layout

REFERENCE_PYTHON_VARIABLE = "DELPHYNE_REFERENCE_PYTHON"
NO_REFERENCE_REASON = (
    f"the reference launcher (delphyne, Python 3.12) is not installed: set "
    f"{REFERENCE_PYTHON_VARIABLE} to a Python that imports delphyne"
)


def reference_python() -> str | None:
    python = os.environ.get(REFERENCE_PYTHON_VARIABLE)
    if not python:
        return None
    found = subprocess.run(
        [python, "-c", "import delphyne"], capture_output=True, timeout=120
    )
    return python if found.returncode == 0 else None


OURS = """
from dataclasses import dataclass

from pytest_delphyne import Experiment, Outcome, Run


def program(env, x):
    env.spend(num_requests=1, num_completions=2, price=0.25)
    return Outcome(success=x % 2 == 0, values=[x])


@dataclass
class Config:
    x: int
    num_completions: int = 4
    models: tuple[str, ...] = ("gpt-4.1-nano",)

    def instantiate(self, context):
        return Run(program=program, args={"x": self.x})


if __name__ == "__main__":
    Experiment(
        config_class=Config, output_dir="out", configs=[Config(x) for x in (1, 2)]
    ).run_cli()
"""

THEIRS = """
import json
import sys
from dataclasses import dataclass
from pathlib import Path

import delphyne as dp


@dataclass
class Config:
    x: int
    num_completions: int = 4
    models: tuple[str, ...] = ("gpt-4.1-nano",)

    def instantiate(self, context):
        raise NotImplementedError


experiment = dp.Experiment(
    config_class=Config,
    context=dp.ExecutionContext().with_root(Path(sys.argv[1])),
    output_dir="out",
    configs=[Config(x) for x in (1, 2)],
).load()
status = experiment.get_status()
experiment.save_summary(add_timing=True)
print(json.dumps(status))
"""


@pytest.fixture
def reference() -> str:
    python = reference_python()
    if python is None:
        pytest.skip(NO_REFERENCE_REASON)
    return python


def test_the_reference_loads_summarises_and_times_what_this_project_wrote(
    tmp_path: Path, reference: str
) -> None:
    (tmp_path / "exp.py").write_text(OURS)
    ran = subprocess.run(
        [sys.executable, "exp.py", "run"],
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert ran.returncode == 0, ran.stdout + ran.stderr
    (tmp_path / "theirs.py").write_text(THEIRS)
    read = subprocess.run(
        [reference, "theirs.py", str(tmp_path)],
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert read.returncode == 0, read.stdout + read.stderr
    assert json.loads(read.stdout.splitlines()[-1]) == {
        "todo": 0,
        "done": 2,
        "failed": 0,
    }
    with (tmp_path / "out" / layout.SUMMARY_FILE).open() as file:
        rows = list(csv.DictReader(file))
    assert [row["success"] for row in rows] == ["False", "True"]
    assert all(float(row["duration"]) >= 0 for row in rows)
