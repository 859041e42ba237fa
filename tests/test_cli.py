"""`python exp.py <command>`: the experiment's own command line (SPEC §7)."""

from __future__ import annotations

import argparse
import csv
import os
import shutil
import subprocess
import sys
import time
from pathlib import Path
from typing import Any, cast

import pytest
import yaml

from pytest_delphyne import layout
from pytest_delphyne.cli import (
    STATUS_MESSAGE,
    UNNAMED_CONFIGS_MESSAGE,
)
from pytest_delphyne.plan import UNNAMED_PLAN_MESSAGE
from pytest_delphyne.snapshots import SNAPSHOT_MESSAGE

EXPERIMENT = """
from __future__ import annotations

import os
import time
from dataclasses import dataclass
from pathlib import Path

from pytest_delphyne import Experiment, Outcome, Run

HERE = Path(__file__).parent


def double(x):
    with (HERE / "calls.txt").open("a") as calls:
        calls.write(f"{x}\\n")
    return 2 * x


def program(env, x):
    env.log("about to double", level="debug", x=x)
    value = env.compute(double, x)
    env.spend(num_requests=1, input_tokens=10, output_tokens=2, price=0.25)
    env.log("doubled", value=value)
    if x == 3 and not os.environ.get("FIXED"):
        raise ValueError("three is broken")
    if x == 4 and os.environ.get("BLOCK"):
        (HERE / "blocking").write_text("")
        time.sleep(600)
    return Outcome(success=True, values=[value])


@dataclass
class Config:
    x: int

    def instantiate(self, context):
        return Run(program=program, args={"x": self.x})


experiment = Experiment(
    config_class=Config,
    output_dir="out",
    configs=[Config(x) for x in XS],
    config_naming=lambda config, uuid: f"x{config.x}",
    name="doubling",
    verbose_snapshots=bool(os.environ.get("VERBOSE_SNAPSHOTS")),
)

if __name__ == "__main__":
    experiment.run_cli()
"""


def write_experiment(path: Path, xs: list[int]) -> Path:
    file = path / "exp.py"
    file.write_text(EXPERIMENT.replace("XS", repr(xs)))
    return file


def exp(
    path: Path, *args: str, env: dict[str, str] | None = None, input: str = ""
) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "exp.py", *args],
        cwd=path,
        env={**os.environ, **(env or {})},
        capture_output=True,
        text=True,
        input=input,
        timeout=300,
    )


def statuses(path: Path) -> dict[str, str]:
    state = yaml.safe_load((path / "out" / layout.STATE_FILE).read_text())
    return {name: info["status"] for name, info in state["configs"].items()}


def calls(path: Path) -> list[str]:
    calls_file = path / "calls.txt"
    return calls_file.read_text().split() if calls_file.exists() else []


def config_file(path: Path, name: str, file: str) -> Path:
    return layout.config_dir(path / "out", name) / file


@pytest.fixture
def ran(tmp_path: Path) -> Path:
    """`python exp.py run` done once: x1, x2 done, x3 failed."""
    write_experiment(tmp_path, [1, 2, 3])
    result = exp(tmp_path, "run")
    assert result.returncode == 1, result.stdout + result.stderr
    return tmp_path


def test_run_records_every_config_through_the_plugin(tmp_path: Path) -> None:
    write_experiment(tmp_path, [1, 2, 3])
    result = exp(tmp_path, "run")
    assert result.returncode == 1
    assert "1 failed, 2 passed" in result.stdout
    assert statuses(tmp_path) == {"x1": "done", "x2": "done", "x3": "failed"}
    # pytest's own cache stays with the experiment.
    assert (tmp_path / "out" / ".pytest_cache").is_dir()
    assert not (tmp_path / ".pytest_cache").exists()


@pytest.mark.parametrize("spelling", ["--retry-errors", "--retry_errors"])
def test_retry_errors_reruns_the_failed_configs_only(ran: Path, spelling: str) -> None:
    (ran / "calls.txt").unlink()
    result = exp(ran, "run", spelling, env={"FIXED": "1"})
    assert result.returncode == 0, result.stdout
    assert "1 passed, 2 deselected" in result.stdout
    assert calls(ran) == ["3"]
    assert statuses(ran) == {"x1": "done", "x2": "done", "x3": "done"}
    assert (ran / "out" / layout.SUMMARY_FILE).exists()


@pytest.mark.parametrize("spelling", ["--max-workers", "--max_workers"])
def test_max_workers_runs_on_xdist_workers(tmp_path: Path, spelling: str) -> None:
    write_experiment(tmp_path, [1, 2, 4, 5])
    result = exp(tmp_path, "run", spelling, "2")
    assert result.returncode == 0, result.stdout
    assert "created: 2/2 workers" in result.stdout
    assert set(statuses(tmp_path).values()) == {"done"}


def test_run_flags_override_the_experiments_settings(tmp_path: Path) -> None:
    write_experiment(tmp_path, [1])
    result = exp(
        tmp_path,
        "run",
        "--no-log",
        "--no-cache",
        "--raw-trace",
        "--browsable-trace",
    )
    assert result.returncode == 0, result.stdout
    files = sorted(
        path.name for path in layout.config_dir(tmp_path / "out", "x1").iterdir()
    )
    assert files == [
        layout.RESULT_FILE,
        layout.BROWSABLE_TRACE_FILE,
        layout.RAW_TRACE_FILE,
    ]


@pytest.mark.parametrize(
    ("cache_off", "trace_on"),
    [
        ("--nocache", "--raw_trace"),
        ("--no_cache", "--raw-trace=true"),
        ("--cache=False", "--raw_trace=1"),
        ("--cache=no", "--raw-trace"),
    ],
)
def test_on_off_flags_take_the_reference_spellings(
    tmp_path: Path, cache_off: str, trace_on: str
) -> None:
    write_experiment(tmp_path, [1])
    result = exp(tmp_path, "run", cache_off, trace_on)
    assert result.returncode == 0, result.stdout + result.stderr
    config_dir = layout.config_dir(tmp_path / "out", "x1")
    assert not (config_dir / layout.CACHE_FILE).exists()
    assert (config_dir / layout.RAW_TRACE_FILE).exists()


def test_on_off_flag_refuses_a_value_that_is_neither(tmp_path: Path) -> None:
    write_experiment(tmp_path, [1])
    result = exp(tmp_path, "run", "--cache=maybe")
    assert result.returncode == 2
    assert "--cache: expected true or false, got 'maybe'" in result.stderr
    assert not (tmp_path / "out").exists()


def test_log_level_keeps_debug_messages_when_asked(tmp_path: Path) -> None:
    write_experiment(tmp_path, [1, 2])
    exp(tmp_path, "run", "--log", "--log-level", "debug")
    debug_log = config_file(tmp_path, "x1", layout.LOG_FILE).read_text()
    assert "about to double" in debug_log
    assert "doubled" in debug_log
    # A result on disk is a result: only a fresh output directory runs again.
    shutil.rmtree(tmp_path / "out")
    exp(tmp_path, "run", "--log_level=warn")
    assert config_file(tmp_path, "x1", layout.LOG_FILE).read_text() == ""


def test_status_prints_counts_and_spending(ran: Path) -> None:
    result = exp(ran, "status")
    assert result.returncode == 0
    assert (
        result.stdout
        == STATUS_MESSAGE.format(
            name="'doubling' ",
            # Relative to where the command runs, as pytest shows test files.
            output_dir="out",
            todo="0 configurations",
            done="2 configurations",
            failed="1 configuration",
            spent=(
                "2 requests, 20 input tokens (0 cached), 4 output tokens, price 0.5000"
            ),
            # The failed config paid too.
            paid=(
                "3 requests, 30 input tokens (0 cached), 6 output tokens, price 0.7500"
            ),
        )
        + "\n"
    )


def test_reading_during_a_run_counts_configs_the_code_added_without_the_lock(
    tmp_path: Path,
) -> None:
    """`status` and `--co` need no lock, even when the code lists new configs."""
    write_experiment(tmp_path, [1, 4])
    run = subprocess.Popen(
        [sys.executable, "exp.py", "run"],
        cwd=tmp_path,
        env={**os.environ, "BLOCK": "1"},
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        deadline = time.monotonic() + 60
        while not (tmp_path / "blocking").exists():
            assert time.monotonic() < deadline, "the blocking config never started"
            time.sleep(0.05)
        # The code now lists two more configs; the run in progress holds the lock.
        write_experiment(tmp_path, [1, 4, 5, 6])
        result = exp(tmp_path, "status")
        plan = subprocess.run(
            [sys.executable, "-m", "pytest", "--delphyne-exp=exp.py", "--co"],
            cwd=tmp_path,
            capture_output=True,
            text=True,
            timeout=300,
        )
    finally:
        run.kill()
        run.wait(timeout=60)
    assert result.returncode == 0, result.stderr
    assert "configuration done" in result.stdout
    assert "  - 1 configuration to do" in result.stdout  # x4, running
    holder = f"process {run.pid} on "
    expected = UNNAMED_CONFIGS_MESSAGE.format(
        count="2 more configurations", holder=holder
    )
    assert expected.split(holder)[0] + holder in result.stdout
    assert plan.returncode == 0, plan.stdout + plan.stderr
    assert UNNAMED_PLAN_MESSAGE.format(count="2 more configs", are="are") in plan.stdout
    assert "experiment[x4] todo -> run: x=4" in plan.stdout
    # Nothing was written: the running process is the state's only writer.
    assert set(statuses(tmp_path)) == {"x1", "x4"}


def test_replay_all_replays_every_config_that_ran_without_calls(ran: Path) -> None:
    (ran / "calls.txt").unlink()
    result = exp(ran, "replay")
    assert result.returncode == 0, result.stdout
    assert result.stdout.splitlines() == [
        "x1: replayed, same outcome as recorded",
        "x2: replayed, same outcome as recorded",
        "x3: replayed, same outcome as recorded",
    ]
    assert calls(ran) == []


def test_replay_of_one_config_reports_a_different_outcome(ran: Path) -> None:
    result_file = config_file(ran, "x2", layout.RESULT_FILE)
    recorded = yaml.safe_load(result_file.read_text())
    recorded["outcome"]["result"]["values"] = [5]
    result_file.write_text(yaml.safe_dump(recorded))
    result = exp(ran, "replay", "--config", "x2")
    assert result.returncode == 1
    assert result.stdout.startswith("x2: DIFFERENT outcome: values: recorded [5]")
    assert exp(ran, "replay", "--config", "x1").returncode == 0


def test_unknown_config_or_flag_is_a_one_line_error(ran: Path) -> None:
    unknown = exp(ran, "replay", "--config", "nope")
    assert unknown.returncode == 2
    assert unknown.stderr == (
        f"exp.py: error: No config named 'nope' in {ran / 'out' / layout.STATE_FILE}\n"
    )
    flag = exp(ran, "run", "--bogus")
    assert flag.returncode == 2
    assert flag.stderr == "exp.py: error: unrecognized arguments: --bogus\n"


@pytest.mark.parametrize(
    "command", ["run", "status", "replay", "clean-index", "force-summary"]
)
def test_every_command_has_help(tmp_path: Path, command: str) -> None:
    write_experiment(tmp_path, [1])
    result = exp(tmp_path, command, "--help")
    assert result.returncode == 0
    assert result.stdout.startswith(f"usage: exp.py {command}")
    assert not (tmp_path / "out").exists()


@pytest.mark.parametrize("spelling", ["clean-index", "clean_index"])
def test_clean_index_removes_configs_the_code_no_longer_lists(
    ran: Path, spelling: str
) -> None:
    write_experiment(ran, [1, 3])
    result = exp(ran, spelling)
    assert result.returncode == 0
    assert result.stdout == "Removed 1 configuration(s) from the state.\n"
    assert statuses(ran) == {"x1": "done", "x3": "failed"}


@pytest.mark.parametrize("spelling", ["--add-timing", "--add_timing"])
def test_force_summary_writes_the_done_configs_with_their_timing(
    ran: Path, spelling: str
) -> None:
    result = exp(ran, "force-summary", spelling)
    assert result.returncode == 0
    with (ran / "out" / layout.SUMMARY_FILE).open() as file:
        rows = list(csv.DictReader(file))
    assert [row["config_name"] for row in rows] == ["x1", "x2"]
    assert list(rows[0]) == [
        "x",
        "success",
        "num_completions",
        "num_requests",
        "input_tokens",
        "cached_input_tokens",
        "output_tokens",
        "price",
        "duration",
        "config_name",
    ]
    assert float(rows[0]["duration"]) > 0


@pytest.mark.parametrize(
    ("flags", "experiment_setting", "shows_log"),
    [
        (["--verbose-snapshots"], "", True),
        ([], "1", True),
        # The command line wins over the experiment's setting.
        (["--no-verbose-snapshots"], "1", False),
    ],
    ids=["flag", "experiment", "flag-overrides-experiment"],
)
def test_interactive_enter_prints_elapsed_times_and_writes_a_snapshot(
    tmp_path: Path, flags: list[str], experiment_setting: str, shows_log: bool
) -> None:
    write_experiment(tmp_path, [1, 4])
    process = subprocess.Popen(
        [sys.executable, "exp.py", "run", "--interactive", *flags],
        cwd=tmp_path,
        env={**os.environ, "BLOCK": "1", "VERBOSE_SNAPSHOTS": experiment_setting},
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    assert process.stdin is not None
    try:
        deadline = time.monotonic() + 60
        while not (tmp_path / "blocking").exists():
            assert time.monotonic() < deadline, "the blocking config never started"
            time.sleep(0.05)
        process.stdin.write("\n")
        process.stdin.flush()
        snapshots = tmp_path / "out" / layout.SNAPSHOTS_DIR
        while not any(snapshots.glob("*/x4.md")):
            assert time.monotonic() < deadline, "no snapshot was written"
            time.sleep(0.05)
    finally:
        process.kill()
        output, _ = process.communicate(timeout=60)
    (snapshot,) = snapshots.iterdir()
    index = (snapshot / "index.md").read_text()
    assert "1 done, 0 failed, 1 todo; 1 running." in index
    assert "| [x4](x4.md) |" in index
    details = (snapshot / "x4.md").read_text()
    assert details.startswith("# x4\n\n- status: running since ")
    assert ("## Recent log" in details) == shows_log
    assert ("doubled" in details) == shows_log
    assert "delphyne: x4: running for " in output
    assert SNAPSHOT_MESSAGE.format(path=snapshot) in output


SCRIPT = """
from dataclasses import dataclass
from pathlib import Path

from pytest_delphyne import Experiment, Outcome, Run, WorkersSetup


def program(env, x):
    import os

    return Outcome(success=True, values=[x * x, os.getpid()])


@dataclass
class Config:
    x: int

    def instantiate(self, context):
        return Run(program=program, args={"x": self.x})


if __name__ == "__main__":
    experiment = Experiment(
        config_class=Config,
        output_dir="out",
        configs=[Config(x) for x in range(6)],
    )
    code = experiment.resume(max_workers=2)
    print("resume returned", code, experiment.get_status())
"""


def test_resume_runs_an_experiment_defined_under_main_on_two_workers(
    tmp_path: Path,
) -> None:
    (tmp_path / "script.py").write_text(SCRIPT)
    result = subprocess.run(
        [sys.executable, "script.py"],
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert result.returncode == 0, result.stdout + result.stderr
    assert "6 passed" in result.stdout
    assert "resume returned 0 {'todo': 0, 'done': 6, 'failed': 0}" in result.stdout
    state = yaml.safe_load((tmp_path / "out" / layout.STATE_FILE).read_text())
    pids = set()
    for name in state["configs"]:
        recorded = yaml.safe_load(
            layout.result_file_path(tmp_path / "out", name).read_text()
        )
        pids.add(recorded["outcome"]["result"]["values"][1])
    # Two worker processes ran the configs, and neither is the script itself.
    assert len(pids) == 2


def test_every_command_the_parser_offers_has_a_handler_and_no_other() -> None:
    from pytest_delphyne.cli import COMMANDS, ExperimentCLI
    from pytest_delphyne.experiment import Experiment

    # The parser does not look at the experiment.
    parser = ExperimentCLI(cast("Experiment[Any]", None)).parser("exp.py")
    (subparsers,) = (
        action
        for action in parser._actions
        if isinstance(action, argparse._SubParsersAction)
    )
    assert set(subparsers.choices) == set(COMMANDS)
