"""A request retried after waiting a while says so on the terminal, one line per
retry, also from an xdist worker (issue 20). Against a real HTTP server on 127.0.0.1
that answers 503 a few times, then 200."""

from __future__ import annotations

import json
from collections.abc import Iterator
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler
from typing import Any

import pytest
import yaml
from loopback import serving

from pytest_delphyne import layout
from pytest_delphyne.models import RETRY_NOTICE_MESSAGE
from pytest_delphyne.notices import NOTICE_LINE

KEY = "sk-retry-notice-key"
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

# Each refusal asks for a 1 s wait (Retry-After): the retries happen 1 s and 2 s
# after the first attempt, and only the second one is past the 1.5 s threshold.
EXPERIMENT = """
import os
from dataclasses import dataclass

from pytest_delphyne import Experiment, ModelPrice, OpenAIChatModel, Outcome, Run


def ask(env, x):
    model = OpenAIChatModel(
        "test-model",
        base_url=os.environ["TEST_BASE_URL"],
        price=ModelPrice(1.0, 0.5, 2.0),
        backoff=0.01,
        max_retries=4,
        retry_notice_after=1.5,
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
    configs=[Config(2)],
    config_naming=lambda config, uuid: f"x{config.x}",
)
"""


@dataclass
class FlakyEndpoint:
    url: str = ""
    refusals: int = 3  # how many of the next requests get a 503
    requests: list[str | None] = field(default_factory=list)


@pytest.fixture
def endpoint() -> Iterator[FlakyEndpoint]:
    state = FlakyEndpoint()

    class Handler(BaseHTTPRequestHandler):
        def do_POST(self) -> None:
            self.rfile.read(int(self.headers["Content-Length"]))
            state.requests.append(self.headers.get("Authorization"))
            status, payload = 200, COMPLETION
            if state.refusals > 0:
                state.refusals -= 1
                status, payload = 503, {"error": {"message": "overloaded"}}
            data = json.dumps(payload).encode()
            self.send_response(status)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(data)))
            if status == 503:
                self.send_header("Retry-After", "1")
            self.end_headers()
            self.wfile.write(data)

        def log_message(self, format: str, *args: Any) -> None:
            pass

    with serving(Handler) as url:
        state.url = url
        yield state


def notice(url: str, attempt: int) -> str:
    message = RETRY_NOTICE_MESSAGE.format(
        url=url, cause="answered 503", attempt=attempt, delay=1.0
    )
    return NOTICE_LINE.format(config="x2", message=message)


@pytest.mark.parametrize("workers", [[], ["-n", "2"]], ids=["no-xdist", "xdist"])
@pytest.mark.parametrize("verbosity", [[], ["-q"]], ids=["default", "quiet"])
def test_a_retry_after_waiting_says_so_on_the_terminal(
    pytester: pytest.Pytester,
    monkeypatch: pytest.MonkeyPatch,
    endpoint: FlakyEndpoint,
    workers: list[str],
    verbosity: list[str],
) -> None:
    monkeypatch.setenv("TEST_BASE_URL", endpoint.url)
    monkeypatch.setenv("OPENAI_API_KEY", KEY)
    pytester.makepyfile(exp=EXPERIMENT)
    result = pytester.runpytest_subprocess(
        "--delphyne-exp=exp.py", *workers, *verbosity
    )
    result.assert_outcomes(passed=1)
    assert len(endpoint.requests) == 4
    # Retries 1 and 2 came within the threshold: they are not shown.
    notices = [line for line in result.outlines if line.startswith("delphyne: x2:")]
    assert notices == [notice(endpoint.url, 3)]
    assert KEY not in result.stdout.str()
    state = yaml.safe_load((pytester.path / "out" / layout.STATE_FILE).read_text())
    assert state["configs"]["x2"]["status"] == "done"
