"""What the fault suite does not try: a person's mistakes and a stalled controller
(SPEC §3: one run at a time, a result on disk is a result, every paid call counted;
SPEC §4: an interrupted config replays what it paid for)."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time

import pytest
import yaml

from faults.harness import kill_group, lines, run, start, wait_for
from faults.ledger_harness import (
    paid_calls,
    paying_experiment,
    requests_in,
    yaml_configs,
)
from pytest_delphyne import layout
from pytest_delphyne.journal import read_journal

NO_CACHEPROVIDER = ("-p", "no:cacheprovider")


def status_command(directory: os.PathLike[str]) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "exp.py", "status"],
        cwd=directory,
        capture_output=True,
        text=True,
        timeout=120,
    )


def start_and_wait(
    pytester: pytest.Pytester, marker: str, *args: str, faults: str
) -> subprocess.Popen[str]:
    """Start a run and wait until a config wrote `marker` (it blocks or waits)."""
    process = start(
        pytester.path, *args, *NO_CACHEPROVIDER, faults=faults, output=subprocess.PIPE
    )
    try:
        wait_for(
            lambda: bool(lines(pytester.path, marker)) or process.poll() is not None,
            timeout=120,
        )
    except TimeoutError:
        kill_group(process)
        raise
    if process.poll() is not None:
        pytest.fail(f"the run ended too early:\n{process.communicate()[0]}")
    return process


def test_deleting_the_hidden_files_lets_no_second_run_start(
    pytester: pytest.Pytester,
) -> None:
    pytester.makepyfile(exp=paying_experiment(6))
    out = pytester.path / "out"
    first = start_and_wait(pytester, "blocking.txt", faults="2=block")
    try:
        # A person tidying up the hidden files, or a sync tool.
        for hidden in out.glob(".*"):
            hidden.unlink()
        second = run(pytester.path, *NO_CACHEPROVIDER, timeout=120)
    finally:
        kill_group(first)
        first.communicate()
    assert second.returncode == pytest.ExitCode.USAGE_ERROR, second.stdout
    assert "is already being run by" in second.stderr, second.stderr
    # The second run paid for nothing.
    assert paid_calls(pytester.path) == {"x0": 1, "x1": 1, "x2": 1}


def test_todo_config_with_a_matching_result_is_recorded_not_rerun(
    pytester: pytest.Pytester,
) -> None:
    pytester.makepyfile(exp=paying_experiment(6))
    out = pytester.path / "out"
    assert run(pytester.path, *NO_CACHEPROVIDER).returncode == 0
    # The records of x2 and x4 are lost (a controller killed while stalled), their
    # result files are on disk; x4's does not match its params.
    state = yaml_configs(out)
    state["x2"]["status"] = state["x4"]["status"] = "todo"
    state_file = out / layout.STATE_FILE
    text = state_file.read_text()
    for name in ("x2", "x4"):
        start_of_block = text.index(f"  {name}:")
        text = text[:start_of_block] + text[start_of_block:].replace(
            "status: done", "status: todo", 1
        )
    state_file.write_text(text)
    result_file = layout.result_file_path(out, "x4")
    result_file.write_text(result_file.read_text().replace("x: 4", "x: 44"))

    resumed = run(pytester.path, *NO_CACHEPROVIDER)

    assert resumed.returncode == 0, resumed.stdout
    assert "recorded from its result file, not run again: x2" in resumed.stdout
    assert paid_calls(pytester.path) == {f"x{x}": 2 if x == 4 else 1 for x in range(6)}
    assert {info["status"] for info in yaml_configs(out).values()} == {"done"}


def test_stalled_then_killed_controller_loses_no_finished_config(
    pytester: pytest.Pytester,
) -> None:
    pytester.makepyfile(exp=paying_experiment(40, delay=0.05))
    out = pytester.path / "out"
    process = start(pytester.path, "-n", "2", *NO_CACHEPROVIDER)
    wait_for(lambda: len(lines(pytester.path, "finished.txt")) >= 4, timeout=120)
    # A laptop lid, a swapping machine, a debugger: the workers go on.
    os.kill(process.pid, signal.SIGSTOP)
    time.sleep(3)
    kill_group(process)
    on_disk = {
        name
        for name in yaml_configs(out)
        if layout.result_file_path(out, name).exists()
    }
    assert on_disk

    resumed = run(pytester.path, "-n", "2", *NO_CACHEPROVIDER)

    assert resumed.returncode == 0, resumed.stdout
    paid = paid_calls(pytester.path)
    assert [name for name in sorted(on_disk) if paid[name] != 1] == []
    assert {info["status"] for info in yaml_configs(out).values()} == {"done"}


@pytest.mark.parametrize("workers", [[], ["-n", "2"]], ids=["no-xdist", "xdist"])
def test_interrupted_config_counts_its_calls_and_does_not_pay_them_again(
    pytester: pytest.Pytester, workers: list[str]
) -> None:
    pytester.makepyfile(exp=paying_experiment(6))
    process = start_and_wait(pytester, "blocking.txt", *workers, faults="3=block")
    os.killpg(process.pid, signal.SIGINT)
    output, _ = process.communicate(timeout=120)
    paid_before = sum(paid_calls(pytester.path).values())
    assert requests_in(output, "paid this session") == paid_before
    assert requests_in(output, "paid in total") == paid_before

    status = status_command(pytester.path)
    assert status.returncode == 0, status.stderr
    assert requests_in(status.stdout, "paid in total") == paid_before

    resumed = run(pytester.path, *workers, *NO_CACHEPROVIDER)

    assert resumed.returncode == 0, resumed.stdout
    # Resumed without --delphyne-reuse-cache: x3's call is replayed, not paid again.
    assert paid_calls(pytester.path) == {f"x{x}": 1 for x in range(6)}
    assert requests_in(resumed.stdout, "paid in total") == 6


def test_failed_config_spending_counts_in_the_totals(
    pytester: pytest.Pytester,
) -> None:
    pytester.makepyfile(exp=paying_experiment(5))
    done = run(pytester.path, *NO_CACHEPROVIDER, faults="1=raise")
    assert done.returncode == 1, done.stdout
    assert requests_in(done.stdout, "paid this session") == 5
    assert requests_in(done.stdout, "paid in total") == 5
    # What the recorded results account for: the four done configs.
    assert requests_in(done.stdout, "recorded in total") == 4

    retried = run(pytester.path, "--lf")

    assert retried.returncode == 0, retried.stdout
    # A failed config's rerun pays again without --delphyne-reuse-cache.
    assert paid_calls(pytester.path)["x1"] == 2
    assert requests_in(retried.stdout, "paid in total") == 6
    assert requests_in(retried.stdout, "recorded in total") == 5


def test_deleting_a_config_from_the_state_during_a_run_blocks_no_command(
    pytester: pytest.Pytester,
) -> None:
    pytester.makepyfile(exp=paying_experiment(8))
    out = pytester.path / "out"
    process = start_and_wait(pytester, "waiting.txt", faults="4=wait")
    state_file = out / layout.STATE_FILE
    text = state_file.read_text()
    # x1 is done (recorded in the journal): a person deletes its block.
    start_of_block = text.index("  x1:\n")
    end_of_block = text.index("  x2:\n")
    state_file.write_text(text[:start_of_block] + text[end_of_block:])
    (pytester.path / "go.txt").touch()
    output, _ = process.communicate(timeout=120)

    assert "Traceback" not in output, output
    assert f"{state_file} was edited during the run" in output, output
    status = status_command(pytester.path)
    assert status.returncode == 0, status.stderr
    # status only reads: the record of x1 is reported, to be kept aside by the next
    # run, and x1, which the code still lists, is left for the next run to name.
    assert "to be kept aside by the next run" in status.stdout, status.stdout
    assert "  - 1 more configuration listed by the code, not in the state yet: " in (
        status.stdout
    ), status.stdout
    again = run(pytester.path, *NO_CACHEPROVIDER)
    assert again.returncode == 0, again.stdout + again.stderr
    # The next run keeps the record aside, adds x1 again and finds it done from its
    # result file.
    assert "kept aside" in again.stdout, again.stdout
    assert "recorded from its result file, not run again: x1" in again.stdout
    aside = (out / layout.JOURNAL_ASIDE_FILE).read_text()
    assert '"name":"x1"' in aside
    # Nothing that finished is lost, nothing paid twice.
    assert {name: info["status"] for name, info in yaml_configs(out).items()} == {
        f"x{x}": "done" for x in range(8)
    }
    assert paid_calls(pytester.path) == {f"x{x}": 1 for x in range(8)}
    # Reported once: a later command is quiet.
    quiet = status_command(pytester.path)
    assert "x1" not in quiet.stdout + quiet.stderr


def test_editing_a_todo_config_during_a_run_records_no_result_under_new_params(
    pytester: pytest.Pytester,
) -> None:
    pytester.makepyfile(exp=paying_experiment(8))
    out = pytester.path / "out"
    process = start_and_wait(pytester, "waiting.txt", faults="2=wait")
    state_file = out / layout.STATE_FILE
    text = state_file.read_text()
    start_of_block = text.index("  x6:\n")
    edited = text[start_of_block:].replace("x: 6", "x: 60", 1)
    state_file.write_text(text[:start_of_block] + edited)
    (pytester.path / "go.txt").touch()
    output, _ = process.communicate(timeout=120)

    assert "Traceback" not in output, output
    assert f"{state_file} was edited during the run" in output, output
    # x6 ran with x=6 (the plan's), and its result is not recorded under x=60.
    assert paid_calls(pytester.path)["x6"] == 1
    assert "x: 6\n" in layout.result_file_path(out, "x6").read_text()
    state = yaml.safe_load(state_file.read_text())
    assert state["configs"]["x6"] == {
        "params": {"x": 60, "delay": 0.01},
        "status": "todo",
        "start_time": None,
        "end_time": None,
        "interruption_time": None,
    }
    records = [update.name for update in read_journal(out / layout.JOURNAL_FILE)]
    assert "x6" in records  # kept, never lost

    # The person makes the code say what the state says. The next run applies the
    # journal over the edit, but not x6's record, made under other params: x6 runs
    # again, with x=60.
    source = (pytester.path / "exp.py").read_text()
    assert "range(8)" in source
    (pytester.path / "exp.py").write_text(
        source.replace("range(8)", "[0, 1, 2, 3, 4, 5, 60, 7]")
    )
    resumed = run(pytester.path, "-p", "no:cacheprovider")
    assert resumed.returncode == 0, resumed.stdout + resumed.stderr
    assert paid_calls(pytester.path)["x60"] == 1
    assert "x: 60\n" in layout.result_file_path(out, "x6").read_text()
    assert yaml.safe_load(state_file.read_text())["configs"]["x6"]["status"] == "done"
