"""A broken experiment file, or a path that is not one: a usage error in a few lines
that shows the user's own code, never the import machinery's or the plugin's."""

from __future__ import annotations

import pytest
from traceback_text import without_markers

from pytest_delphyne import layout
from pytest_delphyne.discovery import (
    DIRECTORY_MESSAGE,
    IMPORT_FAILED_MESSAGE,
    NOT_PYTHON_MESSAGE,
    STATE_FILE_MESSAGE,
)

EXPERIMENT = """
from dataclasses import dataclass

from pytest_delphyne import Experiment, Outcome, Run


@dataclass
class Config:
    x: int

    def instantiate(self, context):
        return Run(program=lambda env: Outcome(True, []), args={})


experiment = Experiment(config_class=Config, output_dir="out", configs=[Config(1)])
"""


def error_text(result: pytest.RunResult) -> str:
    assert result.ret == pytest.ExitCode.USAGE_ERROR, result.stdout.str()
    return result.stderr.str()


def assert_only_user_frames(text: str) -> None:
    for machinery in ("importlib", "_pytest", "pytest_delphyne/", "pluggy"):
        assert machinery not in text


def test_a_syntax_error_shows_the_users_line_only(pytester: pytest.Pytester) -> None:
    path = pytester.makepyfile(exp="import os\nvalue = (\n")
    text = error_text(pytester.runpytest("--delphyne-exp=exp.py"))
    assert_only_user_frames(text)
    header = IMPORT_FAILED_MESSAGE.format(path=path, error="").rstrip("\n")
    lines = text.strip().splitlines()
    assert lines[0] == f"ERROR: {header}"
    assert lines[1] == f'  File "{path}", line 2'
    assert lines[-1] == "SyntaxError: '(' was never closed"
    assert len(lines) <= 5


def test_an_import_error_shows_the_users_frames_only(
    pytester: pytest.Pytester,
) -> None:
    pytester.makepyfile(helper="def load():\n    import no_such_module_here\n")
    path = pytester.makepyfile(exp="import helper\n\nhelper.load()\n")
    text = error_text(pytester.runpytest("--delphyne-exp=exp.py"))
    assert_only_user_frames(text)
    # The markers under a line (`~~^~~`) differ between Python versions.
    assert without_markers(text.strip())[1:] == [
        "Traceback (most recent call last):",
        f'  File "{path}", line 3, in <module>',
        "    helper.load()",
        f'  File "{pytester.path / "helper.py"}", line 2, in load',
        "    import no_such_module_here",
        "ModuleNotFoundError: No module named 'no_such_module_here'",
    ]


def test_the_state_file_given_as_the_experiment_gets_a_hint(
    pytester: pytest.Pytester,
) -> None:
    pytester.makepyfile(exp=EXPERIMENT)
    pytester.runpytest("--delphyne-exp=exp.py").assert_outcomes(passed=1)
    state_file = pytester.path / "out" / layout.STATE_FILE
    text = error_text(pytester.runpytest(f"--delphyne-exp={state_file}"))
    assert text.strip() == f"ERROR: {STATE_FILE_MESSAGE.format(path=state_file)}"


def test_a_directory_given_as_the_experiment_names_the_candidates(
    pytester: pytest.Pytester,
) -> None:
    pytester.makepyfile(exp=EXPERIMENT, helper="VALUE = 1\n")
    text = error_text(pytester.runpytest(f"--delphyne-exp={pytester.path}"))
    message = DIRECTORY_MESSAGE.format(
        path=pytester.path, candidates=" (candidates: exp.py)"
    )
    assert text.strip() == f"ERROR: {message}"


def test_a_file_that_is_not_python_gets_a_hint(pytester: pytest.Pytester) -> None:
    path = pytester.makefile(".toml", settings="[tool]\n")
    text = error_text(pytester.runpytest("--delphyne-exp=settings.toml"))
    assert text.strip() == f"ERROR: {NOT_PYTHON_MESSAGE.format(path=path)}"
