"""A config whose program raised leaves its failure on disk (`exception.txt` and
`failure.yaml`); a load that finds it `todo` records it `failed` (SPEC §3: a result on
disk is a result)."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml

from pytest_delphyne import layout
from pytest_delphyne.recovery import RECOVERED_MESSAGE
from pytest_delphyne.results import ResultFileError, read_failure

# x3 raises unless `fixed.txt` exists; every real run of a program appends its config to
# `calls.txt`.
EXPERIMENT = """
from dataclasses import dataclass
from pathlib import Path

from pytest_delphyne import Experiment, Outcome, Run

HERE = Path(__file__).parent


def program(env, x):
    with (HERE / "calls.txt").open("a") as calls:
        calls.write(f"x{x}\\n")
    if x == 3 and not (HERE / "fixed.txt").exists():
        raise ValueError(f"config {x} broke")
    return Outcome(success=True, values=[x])


@dataclass
class Config:
    x: int

    def instantiate(self, context):
        return Run(program=program, args={"x": self.x})


experiment = Experiment(
    config_class=Config,
    output_dir="out",
    configs=[Config(x) for x in (1, 2, 3)],
    config_naming=lambda config, uuid: f"x{config.x}",
)
"""


def calls(pytester: pytest.Pytester) -> list[str]:
    path = pytester.path / "calls.txt"
    return path.read_text().split() if path.exists() else []


def statuses(pytester: pytest.Pytester) -> dict[str, str]:
    state = yaml.safe_load((pytester.path / "out" / layout.STATE_FILE).read_text())
    return {name: info["status"] for name, info in state["configs"].items()}


def forget_record(pytester: pytest.Pytester, name: str) -> None:
    """The state says `name` is todo again, as when the controller was killed
    before recording it."""
    state_file = pytester.path / "out" / layout.STATE_FILE
    text = state_file.read_text()
    block = text.index(f"  {name}:")
    state_file.write_text(
        text[:block] + text[block:].replace("status: failed", "status: todo", 1)
    )
    assert statuses(pytester)[name] == "todo"


@pytest.fixture
def failed_once(pytester: pytest.Pytester) -> pytest.Pytester:
    pytester.makepyfile(exp=EXPERIMENT)
    pytester.runpytest("--delphyne-exp=exp.py").assert_outcomes(passed=2, failed=1)
    assert calls(pytester) == ["x1", "x2", "x3"]
    return pytester


def test_failed_run_leaves_its_params_and_times_beside_its_traceback(
    failed_once: pytest.Pytester,
) -> None:
    directory = layout.config_dir(failed_once.path / "out", "x3")
    failure = read_failure(directory)
    assert (failure.config_name, failure.params) == ("x3", {"x": 3})
    assert failure.start_time <= failure.end_time
    assert (
        "ValueError: config 3 broke" in (directory / layout.EXCEPTION_FILE).read_text()
    )
    # A done config has none.
    with pytest.raises(ResultFileError, match="no such result file") as missing:
        read_failure(layout.config_dir(failed_once.path / "out", "x1"))
    assert missing.value.missing


def test_todo_config_whose_failure_is_on_disk_is_recorded_failed_not_rerun(
    failed_once: pytest.Pytester,
) -> None:
    pytester = failed_once
    forget_record(pytester, "x3")
    result = pytester.runpytest("--delphyne-exp=exp.py")
    # Reported from its stored traceback, as any failed config.
    result.assert_outcomes(skipped=2, failed=1)
    result.stdout.fnmatch_lines([f"*{RECOVERED_MESSAGE.format(names='x3')}"])
    assert calls(pytester) == ["x1", "x2", "x3"]
    assert statuses(pytester) == {"x1": "done", "x2": "done", "x3": "failed"}
    # --lf reruns it, and its fixed run is a result.
    (pytester.path / "fixed.txt").touch()
    pytester.runpytest("--delphyne-exp=exp.py", "--lf").assert_outcomes(
        passed=1, deselected=2
    )
    assert calls(pytester) == ["x1", "x2", "x3", "x3"]
    assert statuses(pytester)["x3"] == "done"
    directory = layout.config_dir(pytester.path / "out", "x3")
    assert not (directory / layout.FAILURE_FILE).exists()


@pytest.mark.parametrize(
    "spoil",
    ["other-params", "no-traceback", "corrupt"],
)
def test_failure_on_disk_that_does_not_match_is_run_again(
    failed_once: pytest.Pytester, spoil: str
) -> None:
    pytester = failed_once
    directory = layout.config_dir(pytester.path / "out", "x3")
    failure_file = directory / layout.FAILURE_FILE
    if spoil == "other-params":
        failure_file.write_text(failure_file.read_text().replace("x: 3", "x: 33"))
    elif spoil == "no-traceback":
        (directory / layout.EXCEPTION_FILE).unlink()
    else:
        failure_file.write_text("config_name: x3\nparams: [\n")
    forget_record(pytester, "x3")
    pytester.runpytest("--delphyne-exp=exp.py").assert_outcomes(skipped=2, failed=1)
    assert calls(pytester) == ["x1", "x2", "x3", "x3"]


def test_failed_configs_marked_todo_run_again(failed_once: pytest.Pytester) -> None:
    pytester = failed_once
    pytester.makepyfile(
        mark="from exp import experiment\nexperiment.mark_errors_as_todos()\n"
    )
    assert pytester.runpython(Path("mark.py")).ret == 0
    assert statuses(pytester)["x3"] == "todo"
    pytester.runpytest("--delphyne-exp=exp.py").assert_outcomes(skipped=2, failed=1)
    assert calls(pytester) == ["x1", "x2", "x3", "x3"]


@pytest.mark.parametrize("field", ["config_name", "params", "start_time", "end_time"])
@pytest.mark.parametrize("spoil", ["missing", "wrong-type"])
def test_failure_file_without_one_of_its_fields_is_not_a_failure_record(
    failed_once: pytest.Pytester, field: str, spoil: str
) -> None:
    directory = layout.config_dir(failed_once.path / "out", "x3")
    failure_file = directory / layout.FAILURE_FILE
    data = yaml.safe_load(failure_file.read_text())
    if spoil == "missing":
        del data[field]
    else:
        data[field] = ["not", "it"]
    failure_file.write_text(yaml.safe_dump(data))
    with pytest.raises(ResultFileError, match="no config_name, params, start_time"):
        read_failure(directory)
