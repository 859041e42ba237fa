"""The example project, run as the READMEs run it: offline, no API key, in a process.

Each test runs in a copy of the repository's root (`example_project/`, the pytest
settings of `pyproject.toml` and the root `conftest.py`), so that the commands behave
as they do from a clone while the repository's own `example_project/output/` stays
untouched.
"""

from __future__ import annotations

import csv
import os
import re
import shutil
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml
from openai_server import COMPLETION_TOKENS, PROMPT_TOKENS, OpenAIServer

from pytest_delphyne import layout

ROOT = Path(__file__).parent.parent
SECRET = "sk-example-never-written-to-disk"
# The configs whose proposer reaches a true factor of the large problem within its
# budget: proving it prime takes longer than the checker's default time limit.
TIMED_OUT = [
    "large-narrow-t0.3-s0",
    "large-narrow-t0.3-s2",
    "large-narrow-t1.0-s0",
    "large-narrow-t1.0-s1",
    "large-narrow-t1.0-s2",
    "large-wide-t0.3-s0",
    "large-wide-t0.3-s1",
    "large-wide-t0.3-s2",
    "large-wide-t1.0-s0",
    "large-wide-t1.0-s1",
    "large-wide-t1.0-s2",
]


@pytest.fixture
def project(tmp_path: Path) -> Path:
    """A copy of what the README's commands see from the repository's root."""
    shutil.copytree(
        ROOT / "example_project",
        tmp_path / "example_project",
        ignore=shutil.ignore_patterns("output", "__pycache__"),
    )
    shutil.copy(ROOT / "pyproject.toml", tmp_path)
    shutil.copy(ROOT / "conftest.py", tmp_path)
    (tmp_path / "tests").mkdir()  # pyproject's `testpaths`
    return tmp_path


def run(
    project: Path, *args: str, env: dict[str, str] | None = None
) -> subprocess.CompletedProcess[str]:
    """`pytest ARGS` (the console script, as typed in the README) in `project`."""
    script = Path(sys.executable).parent / "pytest"
    command = [str(script)] if script.exists() else [sys.executable, "-m", "pytest"]
    return subprocess.run(
        [*command, *args],
        cwd=project,
        env=env if env is not None else without_endpoint(),
        capture_output=True,
        text=True,
        timeout=240,
    )


def without_endpoint(**extra: str) -> dict[str, str]:
    env = {
        k: v for k, v in os.environ.items() if not k.startswith(("OPENAI_", "CHECKER_"))
    }
    return {**env, **extra}


def test_first_readme_command_fails_timeouts_and_lf_with_more_time_passes_them(
    project: Path,
) -> None:
    first = run(project, "--delphyne-exp", "example_project/experiment.py", "-n", "2")
    assert first.returncode == pytest.ExitCode.TESTS_FAILED, first.stdout
    assert f"{len(TIMED_OUT)} failed, {36 - len(TIMED_OUT)} passed" in first.stdout
    output = project / "example_project" / "output" / "experiment"
    state = yaml.safe_load((output / layout.STATE_FILE).read_text())
    statuses = {name: info["status"] for name, info in state["configs"].items()}
    assert len(statuses) == 36
    assert sorted(n for n, s in statuses.items() if s == "failed") == sorted(TIMED_OUT)
    assert {s for n, s in statuses.items() if n not in TIMED_OUT} == {"done"}
    for name in TIMED_OUT:
        exception = layout.exception_file_path(output, name).read_text()
        assert re.search(
            r"CheckerTimeout: proving that \d+ is prime took more than 0\.05 s",
            exception,
        ), exception
    # A summary needs every config done: not yet.
    assert not (output / layout.SUMMARY_FILE).exists()

    # The documented retry: more time for the checker, only the failed configs, and
    # the proposals they already paid for replayed from their caches.
    retry = run(
        project,
        "--delphyne-exp",
        "example_project/experiment.py",
        "--lf",
        "--delphyne-reuse-cache",
        env=without_endpoint(CHECKER_TIME_LIMIT="5"),
    )
    assert retry.returncode == pytest.ExitCode.OK, retry.stdout
    assert f"{len(TIMED_OUT)} passed, {36 - len(TIMED_OUT)} deselected" in retry.stdout
    assert "paid this session: 0 requests" in retry.stdout
    with (output / layout.SUMMARY_FILE).open() as file:
        rows = {row["config_name"]: row for row in csv.DictReader(file)}
    assert set(rows) == set(statuses)
    # Each retried config found the factor its proposal was: the checker now proves it.
    assert {rows[name]["success"] for name in TIMED_OUT} == {"True"}
    assert {rows[name]["problem"] for name in TIMED_OUT} == {"large"}

    analysis = subprocess.run(
        [sys.executable, "example_project/analysis.py"],
        cwd=project,
        capture_output=True,
        text=True,
        timeout=60,
        check=True,
    )
    total_requests = sum(int(row["num_requests"]) for row in rows.values())
    assert analysis.stdout.splitlines()[-1].endswith(f"for {total_requests} requests")


def word_problem_answer(body: dict[str, Any]) -> str:
    """What a model good at arithmetic answers to the example's word problems."""
    question = body["messages"][-1]["content"]
    numbers = [int(n) for n in re.findall(r"\d+", question)]
    if "gives away" in question:
        return f"Answer: {numbers[0] - numbers[1]}"
    if "each hour" in question:
        return f"Answer: {numbers[0] * numbers[1]}"
    return f"Answer: {numbers[0] + numbers[1]}"


@pytest.fixture
def server() -> Iterator[OpenAIServer]:
    with OpenAIServer(word_problem_answer) as server:
        yield server


def test_llm_example_asks_the_endpoint_and_replays_without_it(
    project: Path, server: OpenAIServer
) -> None:
    env = without_endpoint(
        OPENAI_BASE_URL=server.url,
        OPENAI_API_KEY=SECRET,
        OPENAI_MODEL="local-model",
        OPENAI_PRICE_INPUT="1.0",
        OPENAI_PRICE_OUTPUT="2.0",
    )
    first = run(project, "--delphyne-exp", "example_project/llm_experiment.py", env=env)
    assert first.returncode == pytest.ExitCode.OK, first.stdout + first.stderr
    assert "4 passed" in first.stdout
    assert len(server.requests) == 4 * 3  # configs x problems
    path, headers, body = server.requests[0]
    assert path == "/v1/chat/completions"
    assert headers["authorization"] == f"Bearer {SECRET}"
    assert body["model"] == "local-model"
    output = project / "example_project" / "output" / "llm_experiment"
    result = yaml.safe_load(
        layout.result_file_path(output, "local-model-direct-t0.0").read_text()
    )
    assert result["outcome"]["result"]["success"] is True
    assert result["outcome"]["result"]["values"] == [3]
    spent = result["outcome"]["result"]["spent_budget"]
    assert spent["num_requests"] == 3
    assert spent["input_tokens"] == 3 * PROMPT_TOKENS
    assert spent["output_tokens"] == 3 * COMPLETION_TOKENS
    assert spent["price"] == pytest.approx(
        (3 * PROMPT_TOKENS * 1.0 + 3 * COMPLETION_TOKENS * 2.0) / 1e6
    )
    for file in output.rglob("*"):
        if file.is_file():
            assert SECRET not in file.read_text(errors="replace"), file

    server.stop()
    replayed = run(
        project,
        "--delphyne-exp",
        "example_project/llm_experiment.py",
        "--delphyne-replay",
        env=env,
    )
    assert replayed.returncode == pytest.ExitCode.OK, replayed.stdout
    assert "4 passed" in replayed.stdout
    assert len(server.requests) == 4 * 3


def test_llm_example_without_an_endpoint_stops_with_one_clear_line(
    project: Path,
) -> None:
    message = (
        "no OpenAI-compatible endpoint is configured: set OPENAI_BASE_URL (and "
        "OPENAI_API_KEY if it needs one) to run this experiment; see its docstring"
    )
    under_pytest = run(project, "--delphyne-exp", "example_project/llm_experiment.py")
    assert under_pytest.returncode == pytest.ExitCode.USAGE_ERROR
    assert under_pytest.stderr.strip() == (
        f"ERROR: --delphyne-exp=example_project/llm_experiment.py: {message}"
    )

    as_script = subprocess.run(
        [sys.executable, "example_project/llm_experiment.py", "status"],
        cwd=project,
        env=without_endpoint(),
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert as_script.returncode == 1
    assert as_script.stderr.strip() == f"example_project/llm_experiment.py: {message}"
    assert not (project / "example_project" / "output").exists()
