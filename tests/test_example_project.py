"""The example project, run as the README runs it (offline, no API key)."""

from __future__ import annotations

import csv
import json
import os
import re
import shutil
import subprocess
import sys
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest
import yaml

from pytest_delphyne import layout

EXAMPLE = Path(__file__).parent.parent / "example_project"
SECRET = "sk-example-never-written-to-disk"


@pytest.fixture
def project(tmp_path: Path) -> Path:
    """A copy of the example project, so the repository's output stays untouched."""
    shutil.copytree(
        EXAMPLE, tmp_path / "example_project", ignore=shutil.ignore_patterns("output")
    )
    return tmp_path


def pytest_run(
    project: Path, *args: str, env: dict[str, str] | None = None
) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "pytest", *args],
        cwd=project,
        env={**os.environ, **(env or {})},
        capture_output=True,
        text=True,
        timeout=300,
    )


def test_readme_first_command_runs_the_example_and_lf_retries_its_timeouts(
    project: Path,
) -> None:
    first = pytest_run(
        project, "--delphyne-exp", "example_project/experiment.py", "-n", "2"
    )
    assert first.returncode == 1, first.stdout
    assert "4 failed, 20 passed" in first.stdout
    output = project / "example_project" / "output" / "experiment"
    state = yaml.safe_load((output / layout.STATE_FILE).read_text())
    failed = sorted(n for n, i in state["configs"].items() if i["status"] == "failed")
    assert failed == [
        "large-narrow-t1.0-s0",
        "large-narrow-t1.0-s1",
        "large-wide-t1.0-s0",
        "large-wide-t1.0-s1",
    ]
    for name in failed:
        exception = layout.exception_file_path(output, name).read_text()
        assert "CheckerTimeout: proving that" in exception
        assert "took more than 0.05 s" in exception

    retry = pytest_run(
        project,
        "--delphyne-exp",
        "example_project/experiment.py",
        "--lf",
        env={"CHECKER_TIME_LIMIT": "5"},
    )
    assert retry.returncode == 0, retry.stdout
    assert "4 passed, 20 deselected" in retry.stdout
    with (output / layout.SUMMARY_FILE).open() as file:
        rows = list(csv.DictReader(file))
    assert len(rows) == 24
    assert {row["config_name"] for row in rows} == set(state["configs"])
    by_name = {row["config_name"]: row for row in rows}
    # The large problem is solved once the checker has the time to prove it.
    assert by_name["large-wide-t1.0-s0"]["success"] == "True"


class WordProblemServer:
    """An OpenAI-compatible endpoint on 127.0.0.1 that does the arithmetic."""

    def __init__(self) -> None:
        self.requests: list[dict[str, Any]] = []
        self.headers: list[dict[str, str]] = []

        server = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
                server.requests.append(body)
                server.headers.append(dict(self.headers))
                question = body["messages"][-1]["content"]
                numbers = [int(n) for n in re.findall(r"\d+", question)]
                if "gives away" in question:
                    answer = numbers[0] - numbers[1]
                elif "each hour" in question:
                    answer = numbers[0] * numbers[1]
                else:
                    answer = numbers[0] + numbers[1]
                payload = {
                    "id": "chatcmpl-example",
                    "object": "chat.completion",
                    "created": 1700000000,
                    "model": body["model"],
                    "choices": [
                        {
                            "index": 0,
                            "message": {
                                "role": "assistant",
                                "content": f"Answer: {answer}",
                            },
                            "finish_reason": "stop",
                        }
                    ],
                    "usage": {
                        "prompt_tokens": 50,
                        "completion_tokens": 5,
                        "total_tokens": 55,
                    },
                }
                data = json.dumps(payload).encode()
                self.send_response(200)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

            def log_message(self, format: str, *args: Any) -> None:
                pass

        self.httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.httpd.server_address[1]}/v1"
        self.thread = threading.Thread(target=self.httpd.serve_forever, daemon=True)

    def stop(self) -> None:
        self.httpd.shutdown()
        self.httpd.server_close()
        self.thread.join()


@pytest.fixture
def server() -> Iterator[WordProblemServer]:
    server = WordProblemServer()
    server.thread.start()
    yield server
    if server.thread.is_alive():
        server.stop()


def test_llm_example_asks_the_endpoint_and_replays_without_it(
    project: Path, server: WordProblemServer
) -> None:
    env = {
        "OPENAI_BASE_URL": server.url,
        "OPENAI_API_KEY": SECRET,
        "OPENAI_MODEL": "local-model",
        "OPENAI_PRICE_INPUT": "1.0",
        "OPENAI_PRICE_OUTPUT": "2.0",
    }
    run = pytest_run(
        project, "--delphyne-exp", "example_project/llm_experiment.py", env=env
    )
    assert run.returncode == 0, run.stdout + run.stderr
    assert "4 passed" in run.stdout
    assert len(server.requests) == 4 * 3
    assert {k.lower(): v for k, v in server.headers[0].items()}["authorization"] == (
        f"Bearer {SECRET}"
    )
    output = project / "example_project" / "output" / "llm_experiment"
    recorded = yaml.safe_load(
        layout.result_file_path(output, "local-model-direct-t0.0").read_text()
    )
    spent = recorded["outcome"]["result"]["spent_budget"]
    assert spent["num_requests"] == 3
    assert spent["input_tokens"] == 150
    assert spent["price"] == pytest.approx((150 * 1.0 + 15 * 2.0) / 1e6)
    for path in output.rglob("*"):
        if path.is_file():
            assert SECRET not in path.read_text(errors="replace"), path

    server.stop()
    replayed = pytest_run(
        project,
        "--delphyne-exp",
        "example_project/llm_experiment.py",
        "--delphyne-replay",
        env=env,
    )
    assert replayed.returncode == 0, replayed.stdout
    assert "4 passed" in replayed.stdout


def test_llm_example_without_an_endpoint_stops_with_a_clear_message(
    project: Path,
) -> None:
    env = {key: value for key, value in os.environ.items() if key != "OPENAI_BASE_URL"}
    run = subprocess.run(
        [
            sys.executable,
            "-m",
            "pytest",
            "--delphyne-exp",
            "example_project/llm_experiment.py",
        ],
        cwd=project,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert run.returncode == pytest.ExitCode.USAGE_ERROR
    assert run.stderr.strip() == (
        "ERROR: --delphyne-exp=example_project/llm_experiment.py: no OpenAI-compatible "
        "endpoint is configured: set OPENAI_BASE_URL (and OPENAI_API_KEY if it needs "
        "one) to run this experiment; see its docstring"
    )
    assert not (project / "example_project" / "output").exists()
