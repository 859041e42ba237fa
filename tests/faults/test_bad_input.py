"""Bad input through the plugin, as a user meets it (SPEC §8): each gets one clear
line as a usage error (exit code 4, no INTERNALERROR), and changes nothing on disk."""

from __future__ import annotations

import csv
import re
import shutil
import subprocess
import sys
from collections import Counter
from collections.abc import Callable
from pathlib import Path

import pytest

from faults.harness import (
    experiment_source,
    kill_group,
    lines,
    paid,
    run,
    start,
    state_configs,
    statuses,
    wait_for,
)
from pytest_delphyne import layout
from pytest_delphyne.items import CACHE_GONE_MESSAGE
from pytest_delphyne.plan import MISSING_DIRECTORY_MESSAGE
from pytest_delphyne.recorder import NO_SUMMARY_MESSAGE

CONFIGS = 10


@pytest.fixture
def done_run(pytester: pytest.Pytester) -> pytest.Pytester:
    """An experiment of 10 configs, all done."""
    pytester.makepyfile(exp=experiment_source(CONFIGS))
    result = run(pytester.path)
    assert result.returncode == 0, result.stdout + result.stderr
    return pytester


def snapshot(out: Path) -> dict[Path, bytes]:
    return {path: path.read_bytes() for path in out.rglob("*") if path.is_file()}


def edit_state(old: str, new: str) -> Callable[[Path], None]:
    def edit(directory: Path) -> None:
        path = directory / "out" / layout.STATE_FILE
        text = path.read_text()
        assert old in text
        path.write_text(text.replace(old, new, 1))

    return edit


def truncate_state(directory: Path) -> None:
    path = directory / "out" / layout.STATE_FILE
    data = path.read_bytes()
    # In the middle of a line: after `x1:` 's params, before its status.
    path.write_bytes(data[: data.index(b"x1:\n") + len(b"x1:\n    params:\n      x")])


def edit_code(old: str, new: str) -> Callable[[Path], None]:
    def edit(directory: Path) -> None:
        path = directory / "exp.py"
        text = path.read_text()
        assert old in text
        path.write_text(text.replace(old, new, 1))

    return edit


LISTED = "configs=[Config(x) for x in range(10)],"
NAMING = 'config_naming=lambda config, uuid: f"x{config.x}",'


def new_config_named(naming: str) -> Callable[[Path], None]:
    """An eleventh config, named by `naming` (the ten others keep their names)."""

    def edit(directory: Path) -> None:
        edit_code(LISTED, "configs=[Config(x) for x in range(11)],")(directory)
        edit_code(NAMING, f"config_naming=lambda config, uuid: {naming},")(directory)

    return edit


@pytest.mark.parametrize(
    ("damage", "message"),
    [
        pytest.param(
            truncate_state,
            r"{state}:\d+: config 'x1' has no 'status'",
            id="truncated-state",
        ),
        pytest.param(
            edit_state("      x: 0\n", "      x: [\n"),
            r"{state}:\d+: not valid YAML .*; the file was left untouched",
            id="corrupt-state",
        ),
        pytest.param(
            edit_state("status: done", "status: finished"),
            r"{state}:\d+: config 'x0' has status 'finished'; expected one of todo, "
            "done, failed",
            id="unknown-status",
        ),
        pytest.param(
            edit_state("x: 3\n", "x: three\n"),
            r"The stored params of config 'x3' do not fit Config: "
            r"expected int, got str @ params\.x$",
            id="params-no-longer-fit",
        ),
        pytest.param(
            edit_code(LISTED, "configs=[Config(x) for x in range(10)] + [{'x': 10}],"),
            r"configs\[10\] is a dict, not a Config: every config of the experiment "
            "must be an instance of its config_class",
            id="not-a-config",
        ),
        pytest.param(
            new_config_named('"a/b" if config.x == 10 else f"x{config.x}"'),
            r"Invalid config name 'a/b'",
            id="unsafe-name",
        ),
        pytest.param(
            new_config_named('f"x{config.x % 10}"'),
            r"config_naming gives the name 'x0' to configs\[10\] \(Config\(x=10, "
            r"delay=0\.01\)\), but it already names configs\[0\] \(Config\(x=0, "
            r"delay=0\.01\)\)",
            id="duplicate-name",
        ),
    ],
)
def test_bad_input_is_one_clear_usage_error_and_changes_nothing(
    done_run: pytest.Pytester,
    damage: Callable[[Path], None],
    message: str,
) -> None:
    directory = done_run.path
    damage(directory)
    out = directory / "out"
    before = snapshot(out)
    executions = paid(directory)
    for workers in ([], ["-n", "2"]):
        result = run(directory, *workers)
        assert result.returncode == pytest.ExitCode.USAGE_ERROR, result.stderr
        assert "INTERNALERROR" not in result.stdout + result.stderr
        assert "Traceback" not in result.stdout + result.stderr
        first = result.stderr.strip().splitlines()[0]
        state = re.escape(str(out / layout.STATE_FILE))
        assert re.match(
            "ERROR: --delphyne-exp=exp.py: " + message.format(state=state), first
        ), result.stderr
        assert snapshot(out) == before
        assert paid(directory) == executions


def test_deleted_config_directory_is_reported_and_never_paid_for_silently(
    done_run: pytest.Pytester,
) -> None:
    directory = done_run.path
    out = directory / "out"
    shutil.rmtree(layout.config_dir(out, "x4"))
    (out / layout.SUMMARY_FILE).unlink()
    before = snapshot(out)
    executions = paid(directory)
    state_path = out / layout.STATE_FILE
    gone = MISSING_DIRECTORY_MESSAGE.format(
        name="x4", state_file=state_path, directory=layout.config_dir(out, "x4")
    )
    # A plain run reports it, runs nothing, and writes no summary without it.
    plain = run(directory, "-rs")
    assert "INTERNALERROR" not in plain.stdout + plain.stderr
    assert "1 failed, 9 skipped" in plain.stdout
    assert gone in plain.stdout
    assert NO_SUMMARY_MESSAGE.format(error="") in plain.stdout
    assert "x4" in plain.stdout.split(NO_SUMMARY_MESSAGE.format(error=""))[1]
    # A replay says the cache is gone rather than paying for its calls again.
    replayed = run(directory, "--delphyne-replay")
    assert "1 failed, 9 passed" in replayed.stdout, replayed.stdout
    cache = layout.cache_file_path(out, "x4")
    assert CACHE_GONE_MESSAGE.format(name="x4", path=cache) in replayed.stdout
    assert snapshot(out) == before
    assert paid(directory) == executions
    # --lf runs it again, once; then the summary has every config.
    retried = run(directory, "--lf")
    assert retried.returncode == 0, retried.stdout + retried.stderr
    assert paid(directory) - executions == Counter({"x4": 1})
    with (out / layout.SUMMARY_FILE).open() as file:
        assert len(list(csv.DictReader(file))) == CONFIGS


def test_replay_of_a_cache_truncated_in_the_middle_names_the_file_and_line(
    done_run: pytest.Pytester,
) -> None:
    directory = done_run.path
    out = directory / "out"
    cache = layout.cache_file_path(out, "x2")
    data = cache.read_bytes()
    cache.write_bytes(data[: len(data) // 2])
    before = snapshot(out)
    executions = paid(directory)
    replayed = run(directory, "--delphyne-replay", "-k", "x2")
    assert "1 failed" in replayed.stdout, replayed.stdout
    assert "INTERNALERROR" not in replayed.stdout + replayed.stderr
    assert f"{cache}, line 1: the last entry is cut short" in replayed.stdout
    assert snapshot(out) == before
    assert paid(directory) == executions


def test_a_value_that_is_not_plain_data_fails_only_its_config(
    pytester: pytest.Pytester,
) -> None:
    pytester.makepyfile(exp=experiment_source(CONFIGS))
    result = run(pytester.path, "-n", "2", faults="6=opaque")
    assert "1 failed, 9 passed" in result.stdout, result.stdout
    out = pytester.path / "out"
    configs = state_configs(out)
    assert [name for name, info in configs.items() if info["status"] != "done"] == [
        "x6"
    ]
    text = layout.exception_file_path(out, "x6").read_text()
    assert "the value returned by the program is not plain data" in text
    assert "is a Opaque" in text


def test_second_run_is_refused_naming_the_holder_also_with_workers(
    pytester: pytest.Pytester,
) -> None:
    pytester.makepyfile(exp=experiment_source(120))
    # Both workers block in their first chunk (x0-x14, x15-x29): the first run holds
    # the lock and pays for nothing more meanwhile.
    first = start(pytester.path, "-n", "2", faults="5=block,20=block")
    out = pytester.path / "out"
    try:
        wait_for(lambda: len(lines(pytester.path, "blocking.txt")) == 2)
        # And the controller has recorded the ten configs before them: on a busy
        # machine their reports may still be on their way when the workers block.
        wait_for(lambda: list(statuses(out).values()).count("done") == 10)
        before = snapshot(out)
        executions = paid(pytester.path)
        for workers in ([], ["-n", "2"]):
            second = run(pytester.path, *workers)
            assert second.returncode == pytest.ExitCode.USAGE_ERROR
            first_line = second.stderr.strip().splitlines()[0]
            assert re.match(
                r"ERROR: --delphyne-exp=exp.py: The experiment in .* is already being "
                rf"run by process {first.pid} on .* \(command: .*pytest.*\), since ",
                first_line,
            ), second.stderr
            assert paid(pytester.path) == executions
        assert snapshot(out) == before
    finally:
        kill_group(first)


@pytest.mark.skipif(
    not (Path(__file__).parents[2] / "pytest_delphyne" / "cli.py").exists(),
    reason="no CLI yet",
)
def test_replay_of_an_unknown_config_name_is_refused(
    done_run: pytest.Pytester,
) -> None:
    with (done_run.path / "exp.py").open("a") as source:
        source.write('\nif __name__ == "__main__":\n    experiment.run_cli()\n')
    out = done_run.path / "out"
    before = snapshot(out)
    result = subprocess.run(
        [sys.executable, "exp.py", "replay", "--config", "nope"],
        cwd=done_run.path,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert result.returncode != 0
    assert "Traceback" not in result.stderr
    assert "nope" in result.stdout + result.stderr
    assert snapshot(out) == before
