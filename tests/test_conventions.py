"""pytest's conventions, kept by a session over experiments (SPEC §5)."""

from __future__ import annotations

import os
import textwrap
import xml.etree.ElementTree as ET
from collections.abc import Sequence
from pathlib import Path

import pytest

from pytest_delphyne import layout
from pytest_delphyne.retry import NOTHING_TO_RETRY_MESSAGE
from pytest_delphyne.wording import plural

EXPERIMENT = """
import os
from dataclasses import dataclass

from pytest_delphyne import Experiment, Outcome, Run


def program(env, x, fail):
    env.spend(price=0.5, num_requests=1)
    if fail and not os.environ.get("EXPERIMENT_FIXED"):
        raise ValueError(f"config {x} broke")
    return Outcome(success=True, values=[x])


@dataclass
class Config:
    x: int
    fail: bool = False

    def instantiate(self, context):
        return Run(program=program, args={"x": self.x, "fail": self.fail})


experiment = Experiment(
    config_class=Config,
    output_dir="out",
    configs=[Config(x) for x in XS] + [Config(x, fail=True) for x in FAILING],
    config_naming=lambda config, uuid: f"x{config.x}",
)
"""


def write_experiment(
    pytester: pytest.Pytester, xs: Sequence[int], failing: Sequence[int] = ()
) -> None:
    pytester.makepyfile(
        exp=EXPERIMENT.replace("FAILING", repr(list(failing))).replace(
            "XS", repr(list(xs))
        )
    )


WORKERS = pytest.mark.parametrize(
    "workers", [[], ["-n", "2"]], ids=["no-xdist", "xdist"]
)


@WORKERS
def test_lf_with_every_config_done_says_so_in_one_line_and_exits_0(
    pytester: pytest.Pytester, workers: list[str]
) -> None:
    write_experiment(pytester, [1, 2, 3])
    pytester.runpytest("--delphyne-exp=exp.py").assert_outcomes(passed=3)
    result = pytester.runpytest_subprocess("--delphyne-exp=exp.py", "--lf", *workers)
    assert result.ret == pytest.ExitCode.OK
    expected = NOTHING_TO_RETRY_MESSAGE.format(configs="all 3 configs are")
    assert result.stdout.lines.count(expected) == 1
    assert "no previously failed tests" not in result.stdout.str()
    assert "delphyne: experiment: 3 configs" not in result.stdout.str()


def test_lf_with_a_failure_left_still_fails_when_k_selects_nothing(
    pytester: pytest.Pytester,
) -> None:
    write_experiment(pytester, [1], [2])
    pytester.runpytest("--delphyne-exp=exp.py")
    result = pytester.runpytest("--delphyne-exp=exp.py", "--lf", "-k", "nothing")
    # Something is left to retry: pytest's own "no tests collected" stands.
    assert result.ret == pytest.ExitCode.NO_TESTS_COLLECTED


def test_lf_status_counts_failed_and_todo_configs_as_what_they_are(
    pytester: pytest.Pytester,
) -> None:
    write_experiment(pytester, [1, 2], [3])
    pytester.runpytest("--delphyne-exp=exp.py").assert_outcomes(passed=2, failed=1)
    write_experiment(pytester, [1, 2, 4, 5], [3])
    result = pytester.runpytest("--delphyne-exp=exp.py", "--lf")
    result.assert_outcomes(passed=2, failed=1, deselected=2)
    result.stdout.fnmatch_lines(
        ["run-last-failure: rerun 1 failed config, 2 todo configs"]
    )
    assert "previous" not in result.stdout.str()


def test_lf_status_of_a_run_interrupted_before_any_failure_names_todo_configs(
    pytester: pytest.Pytester,
) -> None:
    write_experiment(pytester, [1, 2, 3, 4])
    result = pytester.runpytest("--delphyne-exp=exp.py", "--lf")
    result.assert_outcomes(passed=4)
    result.stdout.fnmatch_lines(["run-last-failure: rerun 4 todo configs"])


def test_lf_status_counts_a_failed_plain_test_apart_from_configs(
    pytester: pytest.Pytester,
) -> None:
    write_experiment(pytester, [1], [2])
    pytester.makepyfile(
        test_unit=textwrap.dedent(
            """
            import os

            def test_fixed_later():
                assert os.environ.get("EXPERIMENT_FIXED")
            """
        )
    )
    pytester.runpytest("--delphyne-exp=exp.py", "test_unit.py")
    result = pytester.runpytest("--delphyne-exp=exp.py", "test_unit.py", "--lf")
    result.assert_outcomes(failed=2, deselected=1)
    result.stdout.fnmatch_lines(
        ["run-last-failure: rerun 1 failed config, 1 previously failed test"]
    )


@pytest.fixture
def ini_project(pytester: pytest.Pytester) -> pytest.Pytester:
    """An experiment named by the ini file, with a stored failure, beside a passing
    unit-test file."""
    write_experiment(pytester, [1], [2])
    pytester.makeini("[pytest]\ndelphyne_exp = exp.py\n")
    pytester.makepyfile(test_unit="def test_unit():\n    assert True\n")
    pytester.runpytest().assert_outcomes(passed=1, failed=1)
    return pytester


@WORKERS
def test_ini_experiment_is_left_out_when_the_command_line_names_a_path(
    ini_project: pytest.Pytester, workers: list[str]
) -> None:
    result = ini_project.runpytest_subprocess("test_unit.py", *workers)
    result.assert_outcomes(passed=1)
    assert result.ret == pytest.ExitCode.OK
    assert "exp.py" not in result.stdout.str()


@WORKERS
def test_ini_experiment_runs_when_the_command_line_names_no_path(
    ini_project: pytest.Pytester, workers: list[str]
) -> None:
    result = ini_project.runpytest_subprocess(*workers)
    result.assert_outcomes(skipped=1, failed=1)
    assert "test_unit" not in result.stdout.str()


def file_times(directory: Path) -> dict[str, int]:
    return {
        str(path.relative_to(directory)): path.stat().st_mtime_ns
        for path in directory.rglob("*")
        if path.is_file()
    }


@pytest.mark.parametrize(
    "command",
    [[], ["-n", "2"], ["--delphyne-replay"], ["--pdb"]],
    ids=["all-skipped", "all-skipped-xdist", "replay", "pdb"],
)
def test_a_command_that_changes_nothing_writes_nothing(
    pytester: pytest.Pytester, command: list[str]
) -> None:
    write_experiment(pytester, [1, 2])
    pytester.runpytest("--delphyne-exp=exp.py").assert_outcomes(passed=2)
    output = pytester.path / "out"
    assert (output / layout.SUMMARY_FILE).exists()
    assert (output / layout.STATE_INDEX_FILE).exists()
    # A time long past: any write, whatever the clock's resolution, shows.
    for path in output.rglob("*"):
        os.utime(path, ns=(1_000_000_000, 1_000_000_000))
    before = file_times(output)
    result = pytester.runpytest_subprocess("--delphyne-exp=exp.py", *command)
    assert result.ret == pytest.ExitCode.OK, result.stdout.str()
    assert file_times(output) == before


@pytest.mark.parametrize(
    ("count", "expected"),
    [(0, "0 requests"), (1, "1 request"), (2, "2 requests")],
)
def test_plural_counts_its_noun(count: int, expected: str) -> None:
    assert plural(count, "request") == expected


def test_one_config_and_one_request_are_singular_on_the_terminal(
    pytester: pytest.Pytester,
) -> None:
    write_experiment(pytester, [], [1])
    first = pytester.runpytest("--delphyne-exp=exp.py")
    first.assert_outcomes(failed=1)
    first.stdout.fnmatch_lines(
        [
            "delphyne: experiment: 1 config (1 run)",
            "*paid this session: 1 request, 0 input tokens (0 cached), "
            "0 output tokens, price 0.5000",
        ]
    )
    result = pytester.runpytest("--delphyne-exp=exp.py")
    result.stdout.fnmatch_lines(
        [
            "delphyne: experiment: 1 config (1 report)",
            "delphyne: 1 failed config is reported from the state without running; "
            "use --lf to retry it",
        ]
    )


def junit_properties(path: Path) -> dict[str, dict[str, str]]:
    """Each test case's properties, by the config's name."""
    tree = ET.parse(path)
    return {
        case.attrib["name"].split("[")[1].rstrip("]"): {
            prop.attrib["name"]: prop.attrib["value"] for prop in case.iter("property")
        }
        for case in tree.iter("testcase")
    }


@WORKERS
def test_junitxml_has_properties_for_skipped_reported_and_replayed_configs(
    pytester: pytest.Pytester, workers: list[str]
) -> None:
    write_experiment(pytester, [1], [2])
    pytester.runpytest("--delphyne-exp=exp.py").assert_outcomes(passed=1, failed=1)
    outcome = {"success": "True", "spent.price": "0.5", "spent.num_requests": "1"}
    pytester.runpytest_subprocess(
        "--delphyne-exp=exp.py", "--junitxml=skipped.xml", *workers
    ).assert_outcomes(skipped=1, failed=1)
    skipped = junit_properties(pytester.path / "skipped.xml")
    assert skipped["x1"]["param.x"] == "1"
    assert outcome.items() <= skipped["x1"].items()
    assert skipped["x2"]["param.x"] == "2"
    assert skipped["x2"]["param.fail"] == "True"
    pytester.runpytest_subprocess(
        "--delphyne-exp=exp.py", "--delphyne-replay", "-k", "x1", "--junitxml=r.xml"
    ).assert_outcomes(passed=1, deselected=1)
    replayed = junit_properties(pytester.path / "r.xml")
    assert replayed["x1"]["param.x"] == "1"
    assert outcome.items() <= replayed["x1"].items()
