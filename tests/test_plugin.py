"""The pytest plugin, as a user drives it: each config a test item (SPEC §5)."""

from __future__ import annotations

import csv
import re
import textwrap
import xml.etree.ElementTree as ET
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import pytest
import yaml

from pytest_delphyne import layout
from pytest_delphyne.discovery import (
    AMBIGUOUS_MESSAGE,
    MISSING_FILE_MESSAGE,
    NO_EXPERIMENT_MESSAGE,
    UNKNOWN_ATTRIBUTE_MESSAGE,
)
from pytest_delphyne.items import DONE_REASON
from pytest_delphyne.ledger import parse_payments
from pytest_delphyne.recorder import STATE_SAVED_MESSAGE
from pytest_delphyne.results import RecordedResult

EXPERIMENT = """
from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

from pytest_delphyne import Experiment, Outcome, Run

CALLS = Path(__file__).parent / "calls.txt"


def square(x):
    with CALLS.open("a") as calls:
        calls.write(f"{x}\\n")
    return x * x


def program(env, x, fail):
    value = env.compute(square, x)
    env.spend(price=0.5, num_requests=1)
    if fail and not os.environ.get("EXPERIMENT_FIXED"):
        raise ValueError(f"config {x} broke")
    return Outcome(success=value > 1, values=[value])


@dataclass
class Config:
    x: int
    fail: bool = False

    def instantiate(self, context):
        if self.x < 0:
            raise RuntimeError("negative x cannot be instantiated")
        return Run(program=program, args={"x": self.x, "fail": self.fail})


experiment = Experiment(
    config_class=Config,
    output_dir="out",
    configs=[Config(x) for x in CONFIG_XS] + [Config(x, fail=True) for x in FAILING_XS],
    NAMING
)
"""


def write_experiment(
    pytester: pytest.Pytester,
    xs: Sequence[int],
    failing: Sequence[int] = (),
    *,
    named: bool = True,
) -> Path:
    source = (
        EXPERIMENT.replace("CONFIG_XS", repr(list(xs)))
        .replace("FAILING_XS", repr(list(failing)))
        .replace(
            "NAMING",
            'config_naming=lambda config, uuid: f"x{config.x}",' if named else "",
        )
    )
    return pytester.makepyfile(exp=source)


def literal(text: str) -> str:
    """`text` as an fnmatch pattern matching itself (item ids hold brackets)."""
    return re.sub(r"([\[\]])", r"[\1]", text)


def read_state(pytester: pytest.Pytester) -> dict[str, Any]:
    path = pytester.path / "out" / layout.STATE_FILE
    state: dict[str, Any] = yaml.safe_load(path.read_text())
    return state


def statuses(pytester: pytest.Pytester) -> dict[str, str]:
    return {
        name: info["status"] for name, info in read_state(pytester)["configs"].items()
    }


def calls(pytester: pytest.Pytester) -> list[int]:
    path = pytester.path / "calls.txt"
    if not path.exists():
        return []
    return [int(line) for line in path.read_text().split()]


def config_file(pytester: pytest.Pytester, name: str, file: str) -> Path:
    return layout.config_dir(pytester.path / "out", name) / file


@pytest.fixture
def first_run(pytester: pytest.Pytester) -> pytest.Pytester:
    """An experiment run once: x1 and x2 done, x3 failed."""
    write_experiment(pytester, [1, 2], [3])
    result = pytester.runpytest("--delphyne-exp=exp.py")
    result.assert_outcomes(passed=2, failed=1)
    (pytester.path / "calls.txt").unlink()
    return pytester


@pytest.mark.parametrize("workers", [[], ["-n", "2"]], ids=["no-xdist", "xdist"])
def test_todo_configs_run_and_their_results_are_recorded(
    pytester: pytest.Pytester, workers: list[str]
) -> None:
    write_experiment(pytester, [1, 2], [3])
    result = pytester.runpytest_subprocess("--delphyne-exp=exp.py", *workers)
    result.assert_outcomes(passed=2, failed=1)
    assert statuses(pytester) == {"x1": "done", "x2": "done", "x3": "failed"}
    assert sorted(calls(pytester)) == [1, 2, 3]
    recorded = yaml.safe_load(
        config_file(pytester, "x2", layout.RESULT_FILE).read_text()
    )
    assert recorded["outcome"]["result"]["success"] is True
    assert recorded["outcome"]["result"]["values"] == [4]
    exception = config_file(pytester, "x3", layout.EXCEPTION_FILE).read_text()
    assert "ValueError: config 3 broke" in exception
    state = read_state(pytester)
    for name in ("x1", "x2", "x3"):
        assert state["configs"][name]["start_time"] is not None
        assert state["configs"][name]["end_time"] is not None
    # Not every config is done: no summary yet.
    assert not (pytester.path / "out" / layout.SUMMARY_FILE).exists()


def test_failure_shows_the_programs_traceback_not_the_plugins(
    first_run: pytest.Pytester,
) -> None:
    (first_run.path / "out" / layout.STATE_FILE).unlink()
    # Else the load would find x3's failure on disk and report it without running.
    config_file(first_run, "x3", layout.FAILURE_FILE).unlink()
    result = first_run.runpytest("--delphyne-exp=exp.py")
    result.stdout.fnmatch_lines(['*raise ValueError(f"config {x} broke")*'])
    failure = result.stdout.str().split("FAILURES")[1].split("short test summary")[0]
    assert "pytest_delphyne/" not in failure
    assert "_pytest/" not in failure
    assert failure.count("exp.py:") == 1


def test_done_configs_are_skipped_and_failed_ones_reported_from_the_state(
    first_run: pytest.Pytester,
) -> None:
    result = first_run.runpytest("--delphyne-exp=exp.py", "-rs")
    result.assert_outcomes(skipped=2, failed=1)
    result.stdout.fnmatch_lines(
        [
            "*config x3 failed in an earlier run*Use --lf to retry*",
            "*ValueError: config 3 broke*",
            f"SKIPPED [[]2[]] exp.py:*: {DONE_REASON}",
        ]
    )
    assert calls(first_run) == []
    assert statuses(first_run) == {"x1": "done", "x2": "done", "x3": "failed"}


def test_stored_failures_are_reported_after_everything_that_runs(
    first_run: pytest.Pytester,
) -> None:
    write_experiment(first_run, [1, 2, 4], [3])
    result = first_run.runpytest("--delphyne-exp=exp.py", "-v")
    lines = [line for line in result.outlines if line.startswith("exp.py::")]
    assert len(lines) == 4
    assert lines[-1].startswith("exp.py::experiment[x3] FAILED")
    assert any(line.startswith("exp.py::experiment[x4] PASSED") for line in lines)


@pytest.mark.parametrize("workers", [[], ["-n", "2"]], ids=["no-xdist", "xdist"])
def test_failed_config_is_rerun_with_lf_and_done_ones_are_deselected(
    first_run: pytest.Pytester, monkeypatch: pytest.MonkeyPatch, workers: list[str]
) -> None:
    monkeypatch.setenv("EXPERIMENT_FIXED", "1")
    result = first_run.runpytest_subprocess("--delphyne-exp=exp.py", "--lf", *workers)
    # xdist does not report what its workers deselected.
    result.assert_outcomes(passed=1, deselected=0 if workers else 2)
    assert calls(first_run) == [3]
    assert statuses(first_run) == {"x1": "done", "x2": "done", "x3": "done"}


def test_lf_follows_the_state_when_pytest_cache_was_deleted(
    first_run: pytest.Pytester, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("EXPERIMENT_FIXED", "1")
    cache = first_run.path / ".pytest_cache"
    assert cache.exists()
    import shutil

    shutil.rmtree(cache)
    result = first_run.runpytest("--delphyne-exp=exp.py", "--lf")
    result.assert_outcomes(passed=1, deselected=2)
    assert calls(first_run) == [3]


def test_lf_follows_the_state_when_pytest_cache_disagrees(
    first_run: pytest.Pytester,
) -> None:
    # pytest's cache claims x1 failed and knows nothing of x3; the state says
    # otherwise, and wins.
    lastfailed = first_run.path / ".pytest_cache/v/cache/lastfailed"
    lastfailed.write_text('{"exp.py::experiment[x1]": true}')
    result = first_run.runpytest("--delphyne-exp=exp.py", "--lf")
    result.assert_outcomes(failed=1, deselected=2)
    assert calls(first_run) == [3]


def test_todo_configs_also_run_under_lf(first_run: pytest.Pytester) -> None:
    write_experiment(first_run, [1, 2, 4], [3])
    result = first_run.runpytest("--delphyne-exp=exp.py", "--lf")
    result.assert_outcomes(passed=1, failed=1, deselected=2)
    assert sorted(calls(first_run)) == [3, 4]


def test_ff_reruns_failed_first_then_todo_and_skips_done(
    first_run: pytest.Pytester, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("EXPERIMENT_FIXED", "1")
    write_experiment(first_run, [1, 2, 4], [3])
    result = first_run.runpytest("--delphyne-exp=exp.py", "--ff", "-v")
    result.assert_outcomes(passed=2, skipped=2)
    lines = [line for line in result.outlines if line.startswith("exp.py::")]
    assert len(lines) == 4
    assert lines[0].startswith("exp.py::experiment[x3] PASSED")
    assert calls(first_run) == [3, 4]


@pytest.mark.parametrize("option", ["--delphyne-replay", "--pdb"])
def test_replay_reruns_done_and_failed_configs_from_their_cache(
    first_run: pytest.Pytester, option: str
) -> None:
    write_experiment(first_run, [1, 2, 4], [3])
    out = first_run.path / "out"
    before = {path: path.read_bytes() for path in out.rglob("*") if path.is_file()}
    if option == "--pdb":
        # A failing config would stop in the debugger: this test leaves it out.
        result = first_run.runpytest("--delphyne-exp=exp.py", option, "-k", "not x3")
    else:
        result = first_run.runpytest("--delphyne-exp=exp.py", option)
    if option == "--delphyne-replay":
        # x1, x2 replay and match; x3 replays its failure; x4 runs live.
        result.assert_outcomes(passed=3, failed=1)
        result.stdout.fnmatch_lines(["*ValueError: config 3 broke*"])
    else:
        result.assert_outcomes(passed=3, deselected=1)
    # Only the todo config made a real call.
    assert calls(first_run) == [4]
    after = {path: path.read_bytes() for path in out.rglob("*") if path.is_file()}
    for path, data in before.items():
        if path.name in (
            layout.JOURNAL_FILE,
            layout.STATE_FILE,
            layout.STATE_INDEX_FILE,
            layout.LEDGER_FILE,
        ):
            continue
        assert after[path] == data, path
    assert statuses(first_run)["x4"] == "done"
    # The ledger of paid calls grew by the todo config's call alone.
    ledger = out / layout.LEDGER_FILE
    grown = after[ledger][len(before[ledger]) :]
    assert after[ledger].startswith(before[ledger])
    assert [payment.config for payment in parse_payments(grown)] == ["x4"]


def test_replay_fails_when_the_outcome_differs_from_the_recorded_one(
    first_run: pytest.Pytester,
) -> None:
    result_file = config_file(first_run, "x2", layout.RESULT_FILE)
    recorded = yaml.safe_load(result_file.read_text())
    recorded["outcome"]["result"]["values"] = [5]
    result_file.write_text(yaml.safe_dump(recorded))
    result = first_run.runpytest("--delphyne-exp=exp.py", "--delphyne-replay")
    result.assert_outcomes(passed=1, failed=2)
    result.stdout.fnmatch_lines(
        ["*replaying config x2*different outcome*", "*[5]*[4]*"]
    )


FLOAT_FIELD_EXPERIMENT = """
from dataclasses import dataclass
from pathlib import Path

from pytest_delphyne import Experiment, Outcome, Run

RAN = Path(__file__).parent / "ran.txt"


def program(env, temperature):
    with RAN.open("a") as ran:
        ran.write(f"{temperature}\\n")
    env.spend(price=0.5)
    return Outcome(success=True, values=[temperature])


@dataclass
class Config:
    temperature: float

    def instantiate(self, context):
        return Run(program=program, args={"temperature": self.temperature})


# An int given for a float field, and the default (uuid) names.
experiment = Experiment(config_class=Config, output_dir="out", configs=[Config(1)])
"""


def test_an_int_given_for_a_float_field_is_one_config_run_once_across_loads(
    pytester: pytest.Pytester,
) -> None:
    pytester.makepyfile(exp=FLOAT_FIELD_EXPERIMENT)
    pytester.runpytest("--delphyne-exp=exp.py").assert_outcomes(passed=1)
    for _ in range(2):
        pytester.runpytest("--delphyne-exp=exp.py").assert_outcomes(skipped=1)
    assert (pytester.path / "ran.txt").read_text() == "1.0\n"
    ((name, info),) = read_state(pytester)["configs"].items()
    assert (info["params"], info["status"]) == ({"temperature": 1.0}, "done")
    assert (pytester.path / "out" / layout.SUMMARY_FILE).read_text().splitlines()[
        1:
    ] == [f"1.0,True,0,0,0,0,0,0.5,{name}"]


def test_k_selects_configs_by_parameter_value_with_uuid_names(
    pytester: pytest.Pytester,
) -> None:
    write_experiment(pytester, [1, 2, 3], named=False)
    result = pytester.runpytest("--delphyne-exp=exp.py", "-k", "x:2")
    result.assert_outcomes(passed=1, deselected=2)
    assert calls(pytester) == [2]


def test_verbose_output_shows_each_configs_parameters(
    pytester: pytest.Pytester,
) -> None:
    write_experiment(pytester, [1])
    result = pytester.runpytest("--delphyne-exp=exp.py", "-v")
    result.stdout.fnmatch_lines(
        [literal("exp.py::experiment[x1] PASSED (x=1 fail=False)") + "*"]
    )


def test_collect_only_lists_ids_and_the_plan_without_running(
    first_run: pytest.Pytester,
) -> None:
    write_experiment(first_run, [1, 2, 4], [3])
    result = first_run.runpytest("--delphyne-exp=exp.py", "--co")
    result.stdout.fnmatch_lines(
        [
            "*" + literal("experiment[x1] done -> skip: x=1 fail=False"),
            "*" + literal("experiment[x2] done -> skip: x=2 fail=False"),
            "*" + literal("experiment[x4] todo -> run: x=4 fail=False"),
            "*" + literal("experiment[x3] failed -> report: x=3 fail=True"),
        ]
    )
    quiet = first_run.runpytest("--delphyne-exp=exp.py", "--co", "-q")
    quiet.stdout.fnmatch_lines(
        [
            literal("exp.py::experiment[x1]"),
            literal("exp.py::experiment[x2]"),
            literal("exp.py::experiment[x4]"),
            literal("exp.py::experiment[x3]"),
        ]
    )
    assert calls(first_run) == []


def test_collect_only_plan_follows_k(first_run: pytest.Pytester) -> None:
    write_experiment(first_run, [1, 2, 4], [3])
    result = first_run.runpytest("--delphyne-exp=exp.py", "--co", "-k", "x3 or x4")
    result.stdout.fnmatch_lines(
        [
            "*" + literal("experiment[x1] done -> deselect: x=1 fail=False"),
            "*" + literal("experiment[x2] done -> deselect: x=2 fail=False"),
            "*" + literal("experiment[x4] todo -> run: x=4 fail=False"),
            "*" + literal("experiment[x3] failed -> report: x=3 fail=True"),
        ]
    )


def test_collect_only_names_every_config_whose_stored_params_no_longer_fit(
    pytester: pytest.Pytester,
) -> None:
    write_experiment(pytester, [1, 2, 3])
    pytester.runpytest("--delphyne-exp=exp.py").assert_outcomes(passed=3)
    source = (pytester.path / "exp.py").read_text()
    (pytester.path / "exp.py").write_text(source.replace("    x: int", "    x: str"))
    result = pytester.runpytest_subprocess("--delphyne-exp=exp.py", "--co")
    assert result.ret == pytest.ExitCode.USAGE_ERROR
    errors = result.stderr.str()
    assert "the stored params of 3 configs no longer fit Config" in errors
    for name in ("x1", "x2", "x3"):
        assert f"config '{name}' do not fit Config: expected str, got int" in errors


def test_collect_only_names_configs_the_code_no_longer_lists(
    first_run: pytest.Pytester,
) -> None:
    write_experiment(first_run, [1], [3])
    result = first_run.runpytest("--delphyne-exp=exp.py", "--co")
    result.stdout.fnmatch_lines(["*x2: in the state but no longer listed by the code"])


def test_summary_is_written_when_every_config_is_done(
    pytester: pytest.Pytester,
) -> None:
    write_experiment(pytester, [1, 2])
    result = pytester.runpytest("--delphyne-exp=exp.py")
    result.assert_outcomes(passed=2)
    summary = pytester.path / "out" / layout.SUMMARY_FILE
    # Relative to where pytest runs, as its test files are shown.
    result.stdout.fnmatch_lines([f"*summary: out/{layout.SUMMARY_FILE}"])
    with summary.open() as file:
        rows = list(csv.DictReader(file))
    assert list(rows[0]) == [
        "x",
        "fail",
        "success",
        "num_completions",
        "num_requests",
        "input_tokens",
        "cached_input_tokens",
        "output_tokens",
        "price",
        "config_name",
    ]
    by_name = {row["config_name"]: row for row in rows}
    assert by_name["x1"]["success"] == "False"
    assert by_name["x2"]["success"] == "True"
    assert by_name["x2"]["price"] == "0.5"
    assert by_name["x2"]["num_requests"] == "1"


def test_summary_reads_only_the_results_of_earlier_sessions(
    first_run: pytest.Pytester, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The results reported in this session reach the summary from their reports;
    only x1 and x2, done in the first session, are read from their files."""
    from pytest_delphyne import results, summary

    read: list[str] = []
    read_result = results.read_result

    def counting(directory: Path) -> RecordedResult:
        read.append(directory.name)
        return read_result(directory)

    monkeypatch.setattr(summary, "read_result", counting)
    monkeypatch.setenv("EXPERIMENT_FIXED", "1")
    result = first_run.runpytest("--delphyne-exp=exp.py", "--lf")
    result.assert_outcomes(passed=1)
    assert sorted(read) == ["x1", "x2"]
    with (first_run.path / "out" / layout.SUMMARY_FILE).open() as file:
        rows = {row["config_name"]: row for row in csv.DictReader(file)}
    assert rows["x3"]["success"] == "True"
    assert rows["x3"]["price"] == "0.5"
    assert rows["x1"]["success"] == "False"


@pytest.mark.parametrize("workers", [[], ["-n", "2"]], ids=["no-xdist", "xdist"])
def test_the_result_travels_with_the_call_report_only(
    pytester: pytest.Pytester, workers: list[str]
) -> None:
    """Not again with the teardown's report (a remote worker's files included)."""
    write_experiment(pytester, [1, 2], [3])
    pytester.makeconftest(
        """
        import pytest

        SEEN = []

        @pytest.hookimpl(wrapper=True)
        def pytest_runtest_logreport(report):
            names = [name for name, _ in report.user_properties]
            SEEN.append((report.when, "delphyne.result" in names, "param.x" in names))
            return (yield)

        def pytest_terminal_summary(terminalreporter):
            for when, has_result, has_param in SEEN:
                terminalreporter.write_line(f"seen {when} {has_result} {has_param}")
        """
    )
    result = pytester.runpytest_subprocess("--delphyne-exp=exp.py", *workers)
    result.assert_outcomes(passed=2, failed=1)
    seen = sorted(line for line in result.outlines if line.startswith("seen "))
    # The junitxml properties go with the teardown's report, the one junitxml reads.
    assert (
        seen
        == ["seen call True False"] * 3
        + ["seen setup False False"] * 3
        + ["seen teardown False True"] * 3
    )


@pytest.mark.parametrize("workers", [[], ["-n", "2"]], ids=["no-xdist", "xdist"])
def test_plan_line_counts_what_k_deselects(
    pytester: pytest.Pytester, workers: list[str]
) -> None:
    write_experiment(pytester, [1, 2, 3])
    result = pytester.runpytest_subprocess(
        "--delphyne-exp=exp.py", "-k", "x1 or x3", *workers
    )
    # xdist's controller does not count what its workers deselect; the plan line does.
    result.assert_outcomes(passed=2, deselected=0 if workers else 1)
    plan_line = "delphyne: experiment: 3 configs (2 run, 1 deselect)"
    # Once, though every worker collects.
    assert result.outlines.count(plan_line) == 1


def test_terminal_summary_shows_counts_and_spending(first_run: pytest.Pytester) -> None:
    write_experiment(first_run, [1, 2, 4], [3])
    result = first_run.runpytest("--delphyne-exp=exp.py")
    result.stdout.fnmatch_lines(
        [
            "*experiment (*out): 3 done, 1 failed, 0 todo",
            "*paid this session: 1 request, *price 0.5000",
            "*recorded in total: 3 requests*price 1.5000",
        ]
    )


@pytest.mark.parametrize("workers", [[], ["-n", "2"]], ids=["no-xdist", "xdist"])
def test_junitxml_has_each_configs_parameters_success_and_spending(
    pytester: pytest.Pytester, workers: list[str]
) -> None:
    write_experiment(pytester, [2])
    pytester.runpytest_subprocess(
        "--delphyne-exp=exp.py", "--junitxml=junit.xml", *workers
    )
    tree = ET.parse(pytester.path / "junit.xml")
    case = tree.find(".//testcase")
    assert case is not None
    properties = {
        prop.attrib["name"]: prop.attrib["value"] for prop in case.iter("property")
    }
    assert properties["param.x"] == "2"
    assert properties["param.fail"] == "False"
    assert properties["success"] == "True"
    assert properties["spent.price"] == "0.5"
    assert properties["spent.num_requests"] == "1"
    assert "delphyne.result" not in properties


def test_spend_cap_leaves_the_remaining_configs_todo(
    pytester: pytest.Pytester,
) -> None:
    write_experiment(pytester, [1, 2, 3, 4])
    result = pytester.runpytest("--delphyne-exp=exp.py", "--delphyne-max-price=0.9")
    assert statuses(pytester) == {
        "x1": "done",
        "x2": "done",
        "x3": "todo",
        "x4": "todo",
    }
    assert calls(pytester) == [1, 2]
    result.stdout.fnmatch_lines(["*spend cap of 0.9 reached*"])


# x1 pays the whole cap at once; every other config takes a second and pays 0.1.
CAPPED_EXPERIMENT = """
import time
from dataclasses import dataclass
from pathlib import Path

from pytest_delphyne import Experiment, Outcome, Run

RAN = Path(__file__).parent / "ran.txt"


def program(env, x):
    with RAN.open("a") as ran:
        ran.write(f"{x}\\n")
    if x != 1:
        time.sleep(1)
    env.spend(price=1.0 if x == 1 else 0.1)
    return Outcome(success=True, values=[x])


@dataclass
class Config:
    x: int

    def instantiate(self, context):
        return Run(program=program, args={"x": self.x})


experiment = Experiment(
    config_class=Config,
    output_dir="out",
    configs=[Config(x) for x in range(1, 9)],
    config_naming=lambda config, uuid: f"x{config.x}",
)
"""


def test_spend_cap_counts_what_every_xdist_worker_paid(
    pytester: pytest.Pytester, monkeypatch: pytest.MonkeyPatch
) -> None:
    pytester.makepyfile(exp=CAPPED_EXPERIMENT)
    scratch = pytester.mkdir("scratch")
    monkeypatch.setenv("TMPDIR", str(scratch))
    result = pytester.runpytest_subprocess(
        "--delphyne-exp=exp.py", "--delphyne-max-price=1.0", "-n", "2"
    )
    # x1 starts first on one worker; the other may have started a config before x1
    # paid the cap, but starts nothing after, though it paid only 0.1 itself.
    ran = (pytester.path / "ran.txt").read_text().split()
    assert "1" in ran
    assert len(ran) <= 2
    done = {name for name, status in statuses(pytester).items() if status == "done"}
    assert done == {f"x{x}" for x in ran}
    price = "1.1000" if len(ran) == 2 else "1.0000"
    result.stdout.fnmatch_lines([f"*paid this session*price {price}"])
    # The configs the cap kept from running never started: they were not interrupted.
    not_run = {
        name: (info["status"], info["start_time"], info["interruption_time"])
        for name, info in read_state(pytester)["configs"].items()
        if name not in done
    }
    assert not_run == {
        f"x{x}": ("todo", None, None) for x in range(1, 9) if f"x{x}" not in done
    }
    # The workers count in the experiment's ledger: no file outside the output
    # directory.
    assert [path.name for path in scratch.iterdir()] == []


def test_spend_cap_from_the_ini_file_unless_the_command_line_says(
    pytester: pytest.Pytester,
) -> None:
    write_experiment(pytester, [1, 2, 3, 4])
    pytester.makeini("[pytest]\ndelphyne_max_price = 0.9\n")
    pytester.runpytest("--delphyne-exp=exp.py")
    assert calls(pytester) == [1, 2]
    # The command line wins over the ini file.
    pytester.runpytest("--delphyne-exp=exp.py", "--delphyne-max-price=5")
    assert calls(pytester) == [1, 2, 3, 4]


def test_ini_setting_that_is_not_a_price_is_refused(pytester: pytest.Pytester) -> None:
    write_experiment(pytester, [1])
    pytester.makeini("[pytest]\ndelphyne_max_price = a lot\n")
    result = pytester.runpytest("--delphyne-exp=exp.py")
    assert result.ret == pytest.ExitCode.USAGE_ERROR
    result.stderr.fnmatch_lines(["*delphyne_max_price in *: 'a lot' is not a price"])
    assert calls(pytester) == []


def test_exitfirst_leaves_the_configs_not_started_todo(
    pytester: pytest.Pytester,
) -> None:
    write_experiment(pytester, [], [1, 2])
    pytester.makepyfile(
        exp=(pytester.path / "exp.py")
        .read_text()
        .replace(
            "[Config(x) for x in []] + [Config(x, fail=True) for x in [1, 2]]",
            "[Config(1, fail=True), Config(2), Config(3)]",
        )
    )
    result = pytester.runpytest("--delphyne-exp=exp.py", "-x")
    result.assert_outcomes(failed=1)
    assert statuses(pytester) == {"x1": "failed", "x2": "todo", "x3": "todo"}
    state_path = pytester.path / "out" / layout.STATE_FILE
    assert (
        STATE_SAVED_MESSAGE.format(path=state_path.relative_to(pytester.path))
        in result.stdout.str()
    )
    assert calls(pytester) == [1]


def test_exception_in_instantiate_fails_that_config_only(
    pytester: pytest.Pytester,
) -> None:
    write_experiment(pytester, [1, -1, 2])
    result = pytester.runpytest("--delphyne-exp=exp.py")
    result.assert_outcomes(passed=2, failed=1)
    assert statuses(pytester) == {"x1": "done", "x-1": "failed", "x2": "done"}
    exception = config_file(pytester, "x-1", layout.EXCEPTION_FILE).read_text()
    assert "RuntimeError: negative x cannot be instantiated" in exception


def test_corrupt_state_is_a_usage_error_and_the_file_is_left_untouched(
    first_run: pytest.Pytester,
) -> None:
    state_path = first_run.path / "out" / layout.STATE_FILE
    corrupt = state_path.read_bytes() + b"configs: {x1: [\n"
    state_path.write_bytes(corrupt)
    result = first_run.runpytest_subprocess("--delphyne-exp=exp.py")
    assert result.ret == pytest.ExitCode.USAGE_ERROR
    result.stderr.fnmatch_lines([f"ERROR: --delphyne-exp=exp.py: {state_path}:*"])
    assert "INTERNALERROR" not in result.stderr.str() + result.stdout.str()
    assert state_path.read_bytes() == corrupt
    assert calls(first_run) == []


def test_missing_experiment_file_is_a_usage_error(pytester: pytest.Pytester) -> None:
    result = pytester.runpytest("--delphyne-exp=nothere.py")
    assert result.ret == pytest.ExitCode.USAGE_ERROR
    message = MISSING_FILE_MESSAGE.format(path=pytester.path / "nothere.py")
    result.stderr.fnmatch_lines(["*" + literal(message) + "*"])


def test_file_without_experiment_is_a_usage_error(pytester: pytest.Pytester) -> None:
    pytester.makepyfile(exp="VALUE = 1\n")
    result = pytester.runpytest("--delphyne-exp=exp.py")
    assert result.ret == pytest.ExitCode.USAGE_ERROR
    message = NO_EXPERIMENT_MESSAGE.format(path=pytester.path / "exp.py")
    result.stderr.fnmatch_lines(["*" + literal(message) + "*"])


def test_file_with_several_experiments_needs_an_attribute(
    pytester: pytest.Pytester,
) -> None:
    write_experiment(pytester, [1])
    source = (pytester.path / "exp.py").read_text()
    source += "\nother = experiment\n"
    (pytester.path / "exp.py").write_text(source)
    result = pytester.runpytest("--delphyne-exp=exp.py")
    assert result.ret == pytest.ExitCode.USAGE_ERROR
    message = AMBIGUOUS_MESSAGE.format(
        path=pytester.path / "exp.py", found="experiment, other"
    )
    result.stderr.fnmatch_lines(["*" + literal(message) + "*"])
    chosen = pytester.runpytest("--delphyne-exp=exp.py::other")
    chosen.assert_outcomes(passed=1)
    chosen.stdout.fnmatch_lines(["*other*"])
    unknown = pytester.runpytest("--delphyne-exp=exp.py::nope")
    message = UNKNOWN_ATTRIBUTE_MESSAGE.format(
        path=pytester.path / "exp.py", attr="nope", found="experiment, other"
    )
    unknown.stderr.fnmatch_lines(["*" + literal(message) + "*"])


def test_experiment_in_a_project_with_conftest_files(
    pytester: pytest.Pytester,
) -> None:
    # conftest files make pytest call hooks on subsets of the registered plugins.
    pytester.makeconftest("")
    experiments = pytester.mkpydir("experiments")
    (experiments / "conftest.py").write_text("")
    write_experiment(pytester, [1, 2])
    (pytester.path / "exp.py").rename(experiments / "exp.py")
    result = pytester.runpytest("--delphyne-exp=experiments/exp.py", "-n", "2")
    result.assert_outcomes(passed=2)


def test_experiment_from_the_ini_file(pytester: pytest.Pytester) -> None:
    write_experiment(pytester, [1])
    pytester.makeini(
        textwrap.dedent(
            """
            [pytest]
            delphyne_exp = exp.py
            """
        )
    )
    result = pytester.runpytest()
    result.assert_outcomes(passed=1)


def test_without_positional_paths_only_experiments_are_collected(
    pytester: pytest.Pytester,
) -> None:
    write_experiment(pytester, [1])
    pytester.makepyfile(test_other="def test_other():\n    pass\n")
    result = pytester.runpytest("--delphyne-exp=exp.py")
    result.assert_outcomes(passed=1)
    both = pytester.runpytest("--delphyne-exp=exp.py", "test_other.py")
    both.assert_outcomes(passed=1, skipped=1)


def test_replaying_a_config_that_failed_inside_a_call_raises_where_it_raised(
    pytester: pytest.Pytester,
) -> None:
    write_experiment(pytester, [1, 13])
    source = (
        (pytester.path / "exp.py")
        .read_text()
        .replace(
            "def square(x):\n",
            "def square(x):\n    if x == 13:\n        raise OverflowError('unlucky')\n",
        )
    )
    (pytester.path / "exp.py").write_text(source)
    pytester.runpytest("--delphyne-exp=exp.py").assert_outcomes(passed=1, failed=1)
    config_dir = layout.config_dir(pytester.path / "out", "x13")
    before = {path.name: path.read_bytes() for path in config_dir.iterdir()}
    result = pytester.runpytest("--delphyne-exp=exp.py", "--delphyne-replay")
    # The recorded calls replay; the call the run died in runs again and raises.
    result.assert_outcomes(passed=1, failed=1)
    result.stdout.fnmatch_lines(
        ["*raise OverflowError('unlucky')", "E*OverflowError: unlucky"]
    )
    assert "CacheMissError" not in result.stdout.str()
    after = {path.name: path.read_bytes() for path in config_dir.iterdir()}
    assert after == before
