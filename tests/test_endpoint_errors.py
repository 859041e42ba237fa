"""The environment's faults are not a config's (SPEC §5): a dead endpoint, a missing
or rejected key, an unknown model stop the session with one line naming the endpoint,
and the configs stay todo. Against a real HTTP server on 127.0.0.1."""

from __future__ import annotations

import json
import socket
from collections.abc import Iterator
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler
from typing import Any

import pytest
import yaml
from loopback import serving

from pytest_delphyne import layout
from pytest_delphyne.models import (
    KEY_NEEDED_MESSAGE,
    KEY_REJECTED_MESSAGE,
    NO_KEY,
    NO_KEY_MESSAGE,
    OPENAI_URL,
    UNKNOWN_MODEL_MESSAGE,
    UNREACHABLE_MESSAGE,
)

KEY = "sk-endpoint-test-key"
COMPLETION: dict[str, Any] = {
    "id": "chatcmpl-1",
    "object": "chat.completion",
    "created": 1700000000,
    "model": "test-model",
    "choices": [
        {
            "index": 0,
            "message": {"role": "assistant", "content": "4"},
            "finish_reason": "stop",
        }
    ],
    "usage": {"prompt_tokens": 10, "completion_tokens": 2, "total_tokens": 12},
}

EXPERIMENT = """
import os
from dataclasses import dataclass

from pytest_delphyne import Experiment, ModelPrice, OpenAIChatModel, Outcome, Run


def ask(env, x):
    model = OpenAIChatModel(
        os.environ.get("TEST_MODEL", "test-model"),
        base_url=os.environ.get("TEST_BASE_URL") or None,
        price=ModelPrice(1.0, 0.5, 2.0),
        backoff=0.01,
        max_retries=2,
    )
    answer = model.chat(env, [{"role": "user", "content": f"{x}+{x}?"}])
    return Outcome(answer.text == "4", [answer.text])


@dataclass
class Config:
    x: int

    def instantiate(self, context):
        return Run(program=ask, args={"x": self.x})


experiment = Experiment(
    config_class=Config,
    output_dir="out",
    configs=[Config(x) for x in range(4)],
    config_naming=lambda config, uuid: f"x{config.x}",
)
"""


@dataclass
class Endpoint:
    """What the server answers, and what it was asked."""

    url: str = ""
    required_key: str | None = None
    status: int = 200
    server_errors: int = 0  # how many of the next requests get a 503
    authorizations: list[str | None] = field(default_factory=list)


@pytest.fixture
def endpoint() -> Iterator[Endpoint]:
    state = Endpoint()

    class Handler(BaseHTTPRequestHandler):
        def do_POST(self) -> None:
            self.rfile.read(int(self.headers["Content-Length"]))
            authorization = self.headers.get("Authorization")
            state.authorizations.append(authorization)
            status = state.status
            payload: dict[str, Any] = COMPLETION
            if state.server_errors > 0:
                state.server_errors -= 1
                status = 503
            elif state.required_key is not None and authorization != (
                f"Bearer {state.required_key}"
            ):
                status = 401
            if status != 200:
                payload = {"error": {"message": f"status {status}"}}
            data = json.dumps(payload).encode()
            self.send_response(status)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(data)))
            self.end_headers()
            self.wfile.write(data)

        def log_message(self, format: str, *args: Any) -> None:
            pass

    with serving(Handler) as url:
        state.url = url
        yield state


@pytest.fixture
def dead_url() -> str:
    """A local URL where nothing listens: connections are refused."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    return f"http://127.0.0.1:{port}/v1"


@pytest.fixture
def llm_project(
    pytester: pytest.Pytester, monkeypatch: pytest.MonkeyPatch
) -> pytest.Pytester:
    monkeypatch.delenv("OPENAI_API_KEY", raising=False)
    monkeypatch.delenv("OPENAI_BASE_URL", raising=False)
    pytester.makepyfile(exp=EXPERIMENT)
    return pytester


def statuses(pytester: pytest.Pytester) -> dict[str, str]:
    path = pytester.path / "out" / layout.STATE_FILE
    state = yaml.safe_load(path.read_text())
    return {name: info["status"] for name, info in state["configs"].items()}


def assert_stopped_with(
    result: pytest.RunResult, pytester: pytest.Pytester, message: str
) -> None:
    """The session stopped with `message` on one line, no traceback, every config
    todo and none of them holding an exception file."""
    assert result.ret == pytest.ExitCode.INTERRUPTED, result.stdout.str()
    result.stdout.fnmatch_lines([f"*Interrupted: delphyne: {message}*"])
    output = result.stdout.str()
    assert "Traceback" not in output
    assert "pytest_delphyne/" not in output
    assert set(statuses(pytester).values()) == {"todo"}
    assert not list((pytester.path / "out").rglob(layout.EXCEPTION_FILE))


@pytest.mark.parametrize("workers", [[], ["-n", "2"]], ids=["no-xdist", "xdist"])
def test_a_refused_connection_stops_the_session_and_configs_stay_todo(
    llm_project: pytest.Pytester,
    monkeypatch: pytest.MonkeyPatch,
    dead_url: str,
    workers: list[str],
) -> None:
    monkeypatch.setenv("TEST_BASE_URL", dead_url)
    monkeypatch.setenv("OPENAI_API_KEY", KEY)
    # -rs: the skip's summary line is located at the config, not in the plugin.
    result = llm_project.runpytest_subprocess("--delphyne-exp=exp.py", "-rs", *workers)
    result.stdout.fnmatch_lines(["SKIPPED [[]*[]] exp.py:*"])
    message = UNREACHABLE_MESSAGE.format(
        url=dead_url, cause="[[]Errno 111[]] Connection refused"
    )
    assert_stopped_with(result, llm_project, message)
    outcomes = result.parseoutcomes()
    assert "failed" not in outcomes
    if not workers:
        # The first config met it; the others never started.
        assert outcomes == {"skipped": 1}


def test_a_local_endpoint_needs_no_key(
    llm_project: pytest.Pytester, monkeypatch: pytest.MonkeyPatch, endpoint: Endpoint
) -> None:
    monkeypatch.setenv("TEST_BASE_URL", endpoint.url)
    result = llm_project.runpytest("--delphyne-exp=exp.py")
    result.assert_outcomes(passed=4)
    assert set(statuses(llm_project).values()) == {"done"}
    assert endpoint.authorizations == [f"Bearer {NO_KEY}"] * 4


def test_an_endpoint_asking_for_a_key_when_none_was_given_stops_the_session(
    llm_project: pytest.Pytester, monkeypatch: pytest.MonkeyPatch, endpoint: Endpoint
) -> None:
    monkeypatch.setenv("TEST_BASE_URL", endpoint.url)
    endpoint.required_key = KEY
    result = llm_project.runpytest("--delphyne-exp=exp.py")
    message = KEY_NEEDED_MESSAGE.format(url=endpoint.url, status="HTTP 401")
    assert_stopped_with(result, llm_project, message)
    # The first config met it; the others were never started.
    assert len(endpoint.authorizations) == 1


@pytest.mark.parametrize("status", [401, 403])
def test_a_rejected_key_stops_the_session(
    llm_project: pytest.Pytester,
    monkeypatch: pytest.MonkeyPatch,
    endpoint: Endpoint,
    status: int,
) -> None:
    monkeypatch.setenv("TEST_BASE_URL", endpoint.url)
    monkeypatch.setenv("OPENAI_API_KEY", "sk-wrong")
    endpoint.status = status
    result = llm_project.runpytest("--delphyne-exp=exp.py")
    message = KEY_REJECTED_MESSAGE.format(url=endpoint.url, status=f"HTTP {status}")
    assert_stopped_with(result, llm_project, message)
    assert len(endpoint.authorizations) == 1


def test_an_unknown_model_stops_the_session(
    llm_project: pytest.Pytester, monkeypatch: pytest.MonkeyPatch, endpoint: Endpoint
) -> None:
    monkeypatch.setenv("TEST_BASE_URL", endpoint.url)
    monkeypatch.setenv("TEST_MODEL", "no-such-model")
    endpoint.status = 404
    result = llm_project.runpytest("--delphyne-exp=exp.py")
    message = UNKNOWN_MODEL_MESSAGE.format(
        url=endpoint.url, model="no-such-model", status="HTTP 404"
    )
    assert_stopped_with(result, llm_project, message)


def test_openai_without_a_key_stops_the_session_before_any_request(
    llm_project: pytest.Pytester, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("TEST_BASE_URL", raising=False)
    result = llm_project.runpytest("--delphyne-exp=exp.py")
    assert_stopped_with(result, llm_project, NO_KEY_MESSAGE.format(url=OPENAI_URL))


def test_a_server_error_is_retried_and_the_config_is_done(
    llm_project: pytest.Pytester, monkeypatch: pytest.MonkeyPatch, endpoint: Endpoint
) -> None:
    monkeypatch.setenv("TEST_BASE_URL", endpoint.url)
    endpoint.server_errors = 2
    result = llm_project.runpytest("--delphyne-exp=exp.py")
    result.assert_outcomes(passed=4)
    assert len(endpoint.authorizations) == 6
    assert set(statuses(llm_project).values()) == {"done"}
