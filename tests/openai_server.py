"""A loopback OpenAI-compatible server for tests that run an experiment in a process.

`OpenAIServer(reply)` answers `POST /v1/chat/completions` on 127.0.0.1 with
`reply(request_body)` as the assistant's message, and keeps every request (path,
lower-cased headers, body) for the test to inspect. Use it as a context manager, or
call `start` and `stop` (stopping it proves a later replay makes no call).
"""

from __future__ import annotations

import json
import threading
from collections.abc import Callable
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from types import TracebackType
from typing import Any

PROMPT_TOKENS = 50
COMPLETION_TOKENS = 5


def completion(model: str, content: str) -> dict[str, Any]:
    """A `chat.completion` response with one choice and fixed token usage."""
    return {
        "id": "chatcmpl-loopback",
        "object": "chat.completion",
        "created": 1700000000,
        "model": model,
        "choices": [
            {
                "index": 0,
                "message": {"role": "assistant", "content": content},
                "finish_reason": "stop",
            }
        ],
        "usage": {
            "prompt_tokens": PROMPT_TOKENS,
            "completion_tokens": COMPLETION_TOKENS,
            "total_tokens": PROMPT_TOKENS + COMPLETION_TOKENS,
        },
    }


class OpenAIServer:
    """An OpenAI-compatible endpoint on 127.0.0.1, at `url` (ends with `/v1`)."""

    def __init__(self, reply: Callable[[dict[str, Any]], str]) -> None:
        self.requests: list[tuple[str, dict[str, str], dict[str, Any]]] = []
        requests = self.requests

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
                headers = {k.lower(): v for k, v in self.headers.items()}
                requests.append((self.path, headers, body))
                data = json.dumps(completion(body["model"], reply(body))).encode()
                self.send_response(200)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

            def log_message(self, format: str, *args: Any) -> None:
                pass

        self._httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self._httpd.server_address[1]}/v1"
        self._thread = threading.Thread(
            target=self._httpd.serve_forever, args=(0.01,), daemon=True
        )

    def start(self) -> None:
        self._thread.start()

    def stop(self) -> None:
        """Stop serving and close the port (idempotent)."""
        if self._thread.is_alive():
            self._httpd.shutdown()
            self._thread.join()
        self._httpd.server_close()

    def __enter__(self) -> OpenAIServer:
        self.start()
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        self.stop()
