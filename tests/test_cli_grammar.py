"""The reference's command line as python-fire parses it (SPEC §7).

Every command and flag of Delphyne's `ExperimentCLI`, in every spelling its users
type: `--flag`, `--noflag`, `--flag=True|False`, `--max_workers=2`,
`--max-workers 2`, positional arguments, and no command at all.
"""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from pytest_delphyne.cli_grammar import parse_command_line

RUN_DEFAULTS: dict[str, Any] = {
    "command": "run",
    "max_workers": 1,
    "retry_errors": False,
    "interactive": False,
    "log": None,
    "log_level": None,
    "cache": None,
    "raw_trace": None,
    "browsable_trace": None,
    "verbose_snapshots": None,
}


def run(**changes: Any) -> dict[str, Any]:
    return {**RUN_DEFAULTS, **changes}


SPELLINGS: list[tuple[str, dict[str, Any]]] = [
    ("run", run()),
    ("run --max_workers=2", run(max_workers=2)),
    ("run --max_workers 2", run(max_workers=2)),
    ("run --max-workers 2", run(max_workers=2)),
    ("run --max-workers=2", run(max_workers=2)),
    ("run --retry_errors", run(retry_errors=True)),
    ("run --retry-errors", run(retry_errors=True)),
    ("run --retry_errors=True", run(retry_errors=True)),
    ("run --retry_errors=true", run(retry_errors=True)),
    ("run --retry_errors=False", run(retry_errors=False)),
    ("run --noretry_errors", run(retry_errors=False)),
    ("run --interactive", run(interactive=True)),
    ("run --interactive=True", run(interactive=True)),
    ("run --nointeractive", run(interactive=False)),
    ("run --log", run(log=True)),
    ("run --log=False", run(log=False)),
    ("run --nolog", run(log=False)),
    ("run --no-log", run(log=False)),
    ("run --log_level=debug", run(log_level="debug")),
    ("run --log_level debug", run(log_level="debug")),
    ("run --log-level=debug", run(log_level="debug")),
    ("run --cache=False", run(cache=False)),
    ("run --nocache", run(cache=False)),
    ("run --cache", run(cache=True)),
    ("run --raw_trace", run(raw_trace=True)),
    ("run --raw_trace=True", run(raw_trace=True)),
    ("run --noraw_trace", run(raw_trace=False)),
    ("run --browsable_trace=True", run(browsable_trace=True)),
    ("run --nobrowsable_trace", run(browsable_trace=False)),
    ("run --verbose_snapshots", run(verbose_snapshots=True)),
    ("run --verbose_snapshots=False", run(verbose_snapshots=False)),
    (
        "run --max_workers=4 --retry_errors=True --log_level=info --nocache",
        run(max_workers=4, retry_errors=True, log_level="info", cache=False),
    ),
    ("status", {"command": "status"}),
    ("replay", {"command": "replay", "config": None}),
    ("replay NAME", {"command": "replay", "config": "NAME"}),
    ("replay --config NAME", {"command": "replay", "config": "NAME"}),
    ("replay --config=NAME", {"command": "replay", "config": "NAME"}),
    ("clean_index", {"command": "clean-index"}),
    ("clean-index", {"command": "clean-index"}),
    ("force_summary", {"command": "force-summary", "add_timing": False}),
    ("force-summary", {"command": "force-summary", "add_timing": False}),
    ("force_summary --add_timing", {"command": "force-summary", "add_timing": True}),
    ("force_summary --add-timing", {"command": "force-summary", "add_timing": True}),
    (
        "force_summary --add_timing=True",
        {"command": "force-summary", "add_timing": True},
    ),
    (
        "force_summary --add_timing=False",
        {"command": "force-summary", "add_timing": False},
    ),
    ("force_summary --noadd_timing", {"command": "force-summary", "add_timing": False}),
    ("force_summary True", {"command": "force-summary", "add_timing": True}),
]


@pytest.mark.parametrize(("argv", "expected"), SPELLINGS, ids=[s for s, _ in SPELLINGS])
def test_every_spelling_of_the_reference_parses_as_fire_does(
    argv: str, expected: dict[str, Any]
) -> None:
    arguments = vars(parse_command_line(argv.split(), prog="exp.py"))
    assert {key: arguments.get(key) for key in expected} == expected


REFUSED = [
    ("run --retry_errors=maybe", "--retry_errors: expected true or false, got 'maybe'"),
    ("run --max_workers=two", "argument --max-workers/--max_workers: invalid int"),
    ("replay ONE TWO", "unrecognized arguments: TWO"),
    ("run --bogus", "unrecognized arguments: --bogus"),
]


@pytest.mark.parametrize(("argv", "message"), REFUSED, ids=[a for a, _ in REFUSED])
def test_a_wrong_spelling_is_a_one_line_error(
    argv: str, message: str, capsys: pytest.CaptureFixture[str]
) -> None:
    with pytest.raises(SystemExit) as exit_info:
        parse_command_line(argv.split(), prog="exp.py")
    assert exit_info.value.code == 2
    error = capsys.readouterr().err
    assert error.count("\n") == 1
    assert message in error


def test_no_command_prints_the_commands_and_runs_nothing(tmp_path: Path) -> None:
    (tmp_path / "exp.py").write_text(
        "from dataclasses import dataclass\n"
        "from pytest_delphyne import Experiment, Run\n"
        "@dataclass\n"
        "class Config:\n"
        "    x: int\n"
        "    def instantiate(self, context):\n"
        "        return Run(program=print, args={})\n"
        "if __name__ == '__main__':\n"
        "    Experiment(config_class=Config, output_dir='out', configs=[Config(1)])"
        ".run_cli()\n"
    )
    result = subprocess.run(
        [sys.executable, "exp.py"],
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert result.returncode == 0, result.stderr
    for command in ("run", "status", "replay", "clean_index", "force_summary"):
        assert command in result.stdout
    assert not (tmp_path / "out").exists()
