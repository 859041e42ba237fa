from __future__ import annotations

import json
import sys
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler
from pathlib import Path
from typing import Any

import pytest
from loopback import serving

from pytest_delphyne import layout
from pytest_delphyne.cache import RequestCache
from pytest_delphyne.environment import Environment
from pytest_delphyne.model_prices import (
    DEFAULT_PRICES,
    ModelPrice,
    UnknownModelPriceError,
)
from pytest_delphyne.models import (
    MISSING_OPENAI_MESSAGE,
    MissingExtraError,
    OpenAIChatModel,
)
from pytest_delphyne.replays import replay
from pytest_delphyne.runtime import Budget, Outcome, Run, RunOptions, execute

SECRET = "sk-test-0123456789abcdef-never-on-disk"
PRICE = ModelPrice(input=2.0, cached_input=0.5, output=10.0)
COMPLETION = {
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
    "usage": {
        "prompt_tokens": 1000,
        "completion_tokens": 200,
        "total_tokens": 1200,
        "prompt_tokens_details": {"cached_tokens": 400},
    },
}
# (1000 - 400) * 2.0 + 400 * 0.5 + 200 * 10.0 dollars per million tokens
EXPECTED_PRICE = 0.0034


@dataclass
class FakeServer:
    """An OpenAI-compatible `/v1/chat/completions` on 127.0.0.1."""

    url: str = ""
    failures: int = 0  # how many of the next requests get a 429
    requests: list[tuple[str, dict[str, str], Any]] = field(default_factory=list)


@pytest.fixture
def server() -> Iterator[FakeServer]:
    state = FakeServer()

    class Handler(BaseHTTPRequestHandler):
        def do_POST(self) -> None:
            body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
            headers = {k.lower(): v for k, v in self.headers.items()}
            state.requests.append((self.path, headers, body))
            payload: dict[str, Any]
            if state.failures > 0:
                state.failures -= 1
                status, payload = 429, {"error": {"message": "slow down"}}
            else:
                status, payload = 200, COMPLETION
            data = json.dumps(payload).encode()
            self.send_response(status)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(data)))
            self.send_header("Retry-After", "0")
            self.end_headers()
            self.wfile.write(data)

        def log_message(self, format: str, *args: Any) -> None:
            pass

    with serving(Handler) as url:
        state.url = url
        yield state


def _model(server: FakeServer, sleeps: list[float], **kwargs: Any) -> OpenAIChatModel:
    return OpenAIChatModel(
        "test-model",
        base_url=server.url,
        prices={"test-model": PRICE},
        backoff=0.01,
        sleep=sleeps.append,
        **kwargs,
    )


def ask(env: Environment, model: OpenAIChatModel) -> Outcome:
    answer = model.chat(env, [{"role": "user", "content": "2+2?"}], temperature=0)
    return Outcome(answer.text == "4", [answer.text, answer.price])


def test_chat_is_retried_priced_recorded_and_replayed_without_server(
    server: FakeServer, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("OPENAI_API_KEY", raising=False)
    server.failures = 1
    sleeps: list[float] = []
    directory = tmp_path / "configs" / "c"
    run = Run(
        ask,
        {"model": _model(server, sleeps, api_key=SECRET)},
        export_raw_trace=True,
        export_browsable_trace=True,
    )
    record = execute(lambda: run, RunOptions("c", directory))
    assert record.traceback is None
    assert (record.success, record.values) == (True, ["4", EXPECTED_PRICE])
    assert record.spent == Budget(1, 1, 1000, 400, 200, EXPECTED_PRICE)
    assert record.paid == record.spent
    assert len(server.requests) == 2  # one 429, then the answer
    assert len(sleeps) == 1
    path, headers, body = server.requests[-1]
    assert path == "/v1/chat/completions"
    assert headers["authorization"] == f"Bearer {SECRET}"
    assert body == {
        "model": "test-model",
        "messages": [{"role": "user", "content": "2+2?"}],
        "temperature": 0,
    }
    assert "retrying a chat request" in (directory / layout.LOG_FILE).read_text()

    server.url = "http://127.0.0.1:9/v1"  # nothing listens there: no call may be made
    replayed = Run(ask, {"model": _model(server, sleeps)})
    report = replay(lambda: replayed, directory)
    assert report.matches, report.differences
    assert report.replayed.spent == record.spent
    assert report.replayed.paid == Budget(0, 0, 0, 0, 0, 0.0)
    assert len(server.requests) == 2

    files = [p for p in tmp_path.rglob("*") if p.is_file()]
    assert {p.name for p in files} >= {"cache.yaml", "result.yaml", "trace.html"}
    for file in files:
        assert SECRET not in file.read_text(), file
        assert "Bearer" not in file.read_text(), file


def ask_with_credentials(header: str, query: str) -> Callable[..., Outcome]:
    def program(env: Environment, model: OpenAIChatModel) -> Outcome:
        answer = model.chat(
            env,
            [{"role": "user", "content": "2+2?"}],
            temperature=0,
            extra_headers={"Authorization": f"Bearer {header}"},
            extra_query={"key": query},
            extra_body={"top_k": 5},
            timeout=30.0,
        )
        return Outcome(answer.text == "4", [answer.text])

    return program


def test_headers_and_query_are_sent_but_neither_stored_nor_keyed(
    server: FakeServer, tmp_path: Path
) -> None:
    server.failures = 1  # a retry, so that log.txt has a line about this request
    sleeps: list[float] = []
    directory = tmp_path / "configs" / "c"
    run = Run(
        ask_with_credentials("sk-secret-header", "sk-secret-query"),
        {"model": _model(server, sleeps, api_key=SECRET)},
        export_raw_trace=True,
        export_browsable_trace=True,
    )
    record = execute(lambda: run, RunOptions("c", directory))
    assert record.traceback is None
    assert (record.success, record.values) == (True, ["4"])
    assert len(server.requests) == 2
    for path, headers, body in server.requests:
        assert path == "/v1/chat/completions?key=sk-secret-query"
        assert headers["authorization"] == "Bearer sk-secret-header"
        assert body["top_k"] == 5

    files = [p for p in directory.rglob("*") if p.is_file()]
    assert {p.name for p in files} >= {
        layout.CACHE_FILE,
        layout.RAW_TRACE_FILE,
        layout.LOG_FILE,
        layout.RESULT_FILE,
    }
    assert "retrying a chat request" in (directory / layout.LOG_FILE).read_text()
    assert '"top_k":5' in (directory / layout.CACHE_FILE).read_text()
    for file in files:
        text = file.read_text()
        for secret in ("sk-secret-header", "sk-secret-query", "Bearer", SECRET):
            assert secret not in text, (file, secret)

    # The server still listens: a cache miss would reach it.
    replayed = Run(
        ask_with_credentials("sk-other", "sk-other"), {"model": _model(server, sleeps)}
    )
    report = replay(lambda: replayed, directory)
    assert report.matches, report.differences
    assert report.replayed.paid == Budget(0, 0, 0, 0, 0, 0.0)
    assert len(server.requests) == 2


def test_rate_limit_after_the_last_retry_fails_the_config(
    server: FakeServer, tmp_path: Path
) -> None:
    server.failures = 5
    sleeps: list[float] = []
    run = Run(ask, {"model": _model(server, sleeps, api_key=SECRET, max_retries=2)})
    record = execute(lambda: run, RunOptions("c", tmp_path))
    assert record.failed
    assert type(record.exception).__name__ == "RateLimitError"
    assert len(server.requests) == 3
    assert len(sleeps) == 2
    assert sleeps[1] > sleeps[0] / 2  # exponential, with jitter in [0.5, 1]
    assert (tmp_path / layout.CACHE_FILE).read_text() == ""


def test_missing_openai_names_the_extra(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(sys.modules, "openai", None)
    model = OpenAIChatModel("gpt-4o", api_key=SECRET)
    env = Environment("c", RequestCache(None, "off"))
    with pytest.raises(MissingExtraError) as info:
        model.chat(env, [{"role": "user", "content": "hi"}])
    assert str(info.value) == MISSING_OPENAI_MESSAGE


@pytest.mark.parametrize(
    ("model", "priced_as"),
    [
        ("gpt-4o", "gpt-4o"),
        ("gpt-4o-2024-08-06", "gpt-4o"),
        ("gpt-4o-mini-2024-07-18", "gpt-4o-mini"),
    ],
)
def test_dated_models_take_their_family_price(model: str, priced_as: str) -> None:
    assert OpenAIChatModel(model).price == DEFAULT_PRICES[priced_as]


def test_unknown_model_price_is_refused() -> None:
    with pytest.raises(UnknownModelPriceError, match="no price for model 'mystery'"):
        OpenAIChatModel("mystery")


def test_api_key_is_not_in_the_repr() -> None:
    assert SECRET not in repr(OpenAIChatModel("gpt-4o", api_key=SECRET))


def test_price_of_usage() -> None:
    assert PRICE.cost(1000, 400, 200) == pytest.approx(EXPECTED_PRICE)
