"""An OpenAI-compatible chat model whose requests are cached, counted and priced.

    model = OpenAIChatModel("gpt-4o-mini")  # or base_url= any compatible server
    answer = model.chat(env, [{"role": "user", "content": "2+2?"}], temperature=0)
    answer.text, answer.price

Requests go through the config's cache (`env.cached_call`), so a replay needs neither
a server nor an API key; usage and price are spent through `env.spend`. The cache key
is the model, the messages and the options: never the API key, the base URL or the
transport options (`TRANSPORT_OPTIONS`: headers, query parameters, timeout), which are
sent but never stored. The `openai` package is an optional extra (`pip install
'pytest-delphyne[openai]'`), imported on the first request that reaches a server.
"""

from __future__ import annotations

import os
import random
import threading
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Final

from pytest_delphyne.errors import DelphyneError, EndpointError

# `ModelPrice` stays importable from here, beside the model it prices.
from pytest_delphyne.model_prices import DEFAULT_PRICES, find_price
from pytest_delphyne.model_prices import ModelPrice as ModelPrice
from pytest_delphyne.redaction import add_secret, redact_exception

if TYPE_CHECKING:
    import openai

    from pytest_delphyne.environment import Environment

MISSING_OPENAI_MESSAGE: Final = (
    "OpenAIChatModel needs the `openai` package, from the `openai` extra: "
    "pip install 'pytest-delphyne[openai]'"
)
CHAT_KEY: Final = "openai.chat.completions.create"
"""The cache key of chat requests (the request itself is model, messages, options)."""
TRANSPORT_OPTIONS: Final = frozenset({"extra_headers", "extra_query", "timeout"})
OPENAI_URL: Final = "https://api.openai.com/v1"
NO_KEY: Final = "no-key"
"""What is sent as the key to an endpoint of the user's (`base_url`) when none is
given: the client refuses to send a request without one, and such an endpoint
needs one only if it says so (a 401)."""
UNREACHABLE_MESSAGE: Final = (
    "cannot reach {url} ({cause}): start the server, or fix base_url"
)
NO_KEY_MESSAGE: Final = (
    "no API key for {url}: set OPENAI_API_KEY, or pass OpenAIChatModel(api_key=...)"
)
KEY_NEEDED_MESSAGE: Final = (
    "{url} needs an API key ({status}) and none was given: set OPENAI_API_KEY, or "
    "pass OpenAIChatModel(api_key=...)"
)
KEY_REJECTED_MESSAGE: Final = (
    "{url} rejected the API key ({status}): check OPENAI_API_KEY or api_key="
)
UNKNOWN_MODEL_MESSAGE: Final = (
    "{url} does not serve model {model!r} ({status}): fix the model name or base_url"
)
RETRY_NOTICE_AFTER: Final = 5.0
"""Seconds since a request's first attempt after which each of its retries is said on
the terminal (`env.notice`): a short wait passes unseen, a long one is explained."""
RETRY_NOTICE_MESSAGE: Final = "{url} {cause}; retry {attempt} in {delay:.1f} s"


class MissingExtraError(DelphyneError):
    """An optional dependency is not installed; the message names the extra."""


@dataclass(frozen=True)
class ChatAnswer:
    """A chat completion, as the program sees it (from the server or the cache).

    Attributes:
        texts: the content of each choice (`n` options gives several).
        finish_reasons: why each choice ended ("stop", "length", ...).
        model: the model that answered, as the server names it.
        input_tokens, cached_input_tokens, output_tokens: the request's usage.
        price: its cost in dollars.
        cached: True when the answer was replayed from the cache.
        response: the whole response, as plain data (tool calls, logprobs...).
    """

    texts: tuple[str, ...]
    finish_reasons: tuple[str | None, ...]
    model: str
    input_tokens: int
    cached_input_tokens: int
    output_tokens: int
    price: float
    cached: bool
    response: Mapping[str, Any]

    @property
    def text(self) -> str:
        """The content of the first choice."""
        return self.texts[0]


class OpenAIChatModel:
    """A chat model served by OpenAI or any OpenAI-compatible endpoint.

    Arguments:
        model: the model name sent to the server, also the key of its price.
        base_url: the endpoint (e.g. "http://127.0.0.1:8000/v1"); default OpenAI's.
        api_key: default the `OPENAI_API_KEY` environment variable. Held in memory
            only: it is not part of the cache key, the repr, or any file. Needed by
            OpenAI's endpoint; a `base_url` of your own needs one only if its server
            asks for one.
        prices: entries added to (or replacing) `DEFAULT_PRICES`.
        price: this model's price, whatever the tables say.
        max_retries: retries of a request after a rate limit (429), a timeout, a
            connection that broke or a server error (5xx); then the error is raised.
            What waiting cannot mend (no connection made, a missing or rejected
            key, an unknown model) raises `EndpointError` at once.
        backoff: seconds before the first retry, doubled at each one (with jitter),
            at most `max_backoff`. A server's `Retry-After` is honoured up to it.
        timeout: seconds per attempt.
        retry_notice_after: seconds a request may wait before each retry is said on
            the terminal (`RETRY_NOTICE_AFTER`; `float("inf")`: never, the config's
            `log.txt` records every retry anyway).
        sleep: how to wait between attempts (tests pass a fake).

    Raises:
        UnknownModelPriceError: no price for `model`.
    """

    def __init__(
        self,
        model: str,
        *,
        base_url: str | None = None,
        api_key: str | None = None,
        prices: Mapping[str, ModelPrice] | None = None,
        price: ModelPrice | None = None,
        max_retries: int = 6,
        backoff: float = 1.0,
        max_backoff: float = 60.0,
        timeout: float = 600.0,
        retry_notice_after: float = RETRY_NOTICE_AFTER,
        sleep: Callable[[float], None] = time.sleep,
    ):
        self.model = model
        self.base_url = base_url
        self.price = price or find_price(model, {**DEFAULT_PRICES, **(prices or {})})
        self.max_retries = max_retries
        self.backoff = backoff
        self.max_backoff = max_backoff
        self.timeout = timeout
        self.retry_notice_after = retry_notice_after
        self._api_key = api_key
        self._sleep = sleep
        self._client: openai.OpenAI | None = None
        # Configs in flight in one process share the model, so its client: one
        # connection pool (the client itself is safe to share between threads).
        self._client_lock = threading.Lock()
        self._keyless = False

    def __getstate__(self) -> dict[str, Any]:
        # A model in `configs_context` travels to xdist workers: each process opens
        # its own client (a lock and a connection pool do not cross processes).
        state = dict(self.__dict__)
        state["_client"] = None
        del state["_client_lock"]
        return state

    def __setstate__(self, state: dict[str, Any]) -> None:
        self.__dict__.update(state)
        self._client_lock = threading.Lock()

    def __repr__(self) -> str:
        return f"OpenAIChatModel(model={self.model!r}, base_url={self.base_url!r})"

    def chat(
        self, env: Environment, messages: Sequence[Mapping[str, Any]], **options: Any
    ) -> ChatAnswer:
        """Ask for a chat completion, through the config's cache.

        Arguments:
            env: the program's environment.
            messages: the conversation, as the OpenAI API takes it (plain data).
            options: other request parameters (`temperature`, `max_tokens`, `n`,
                `seed`, `response_format`, `tools`, `extra_body`...), plain data; no
                streaming. The `TRANSPORT_OPTIONS` (`extra_headers`, `extra_query`,
                `timeout`) are sent but kept out of the cache key and of every file:
                they carry credentials, and do not change what is asked.

        Raises:
            BudgetExhausted: the budget was already reached (nothing is sent), or this
                request went over it.
            CacheMissError: replaying a request that was not recorded.
            EndpointError: the endpoint cannot serve this session (see
                `endpoint_error`); the session stops, and the config stays todo.
            openai.APIError: the server refused the request, or kept failing.
        """
        env.check_budget()
        # Providers take keys in headers and query strings: what is stored (and keys
        # the cache) must never hold them, and requests differing only there are one.
        transport = {k: v for k, v in options.items() if k in TRANSPORT_OPTIONS}
        content = {k: v for k, v in options.items() if k not in TRANSPORT_OPTIONS}
        request = {"model": self.model, "messages": list(messages), **content}
        call = env.cached_call(
            CHAT_KEY, request, lambda: self._create(env, request, transport)
        )
        answer = self._answer(call.value, call.hit)
        env.spend(
            num_requests=1,
            num_completions=len(answer.texts),
            input_tokens=answer.input_tokens,
            cached_input_tokens=answer.cached_input_tokens,
            output_tokens=answer.output_tokens,
            price=answer.price,
            replayed=call.hit,
        )
        return answer

    def _answer(self, response: Mapping[str, Any], cached: bool) -> ChatAnswer:
        usage = response.get("usage") or {}
        details = usage.get("prompt_tokens_details") or {}
        input_tokens = usage.get("prompt_tokens") or 0
        cached_tokens = details.get("cached_tokens") or 0
        output_tokens = usage.get("completion_tokens") or 0
        choices = response.get("choices") or []
        return ChatAnswer(
            texts=tuple((c.get("message") or {}).get("content") or "" for c in choices),
            finish_reasons=tuple(c.get("finish_reason") for c in choices),
            model=response.get("model", self.model),
            input_tokens=input_tokens,
            cached_input_tokens=cached_tokens,
            output_tokens=output_tokens,
            price=self.price.cost(input_tokens, cached_tokens, output_tokens),
            cached=cached,
            response=response,
        )

    def _create(
        self, env: Environment, request: dict[str, Any], transport: dict[str, Any]
    ) -> dict[str, Any]:
        openai = _import_openai()
        remember_credentials(transport)
        client = self._shared_client(openai)
        retryable = (
            openai.RateLimitError,
            openai.APIConnectionError,  # APITimeoutError included
            openai.InternalServerError,
        )
        first_attempt = time.monotonic()
        for attempt in range(self.max_retries + 1):
            try:
                response = client.chat.completions.create(**request, **transport)
            except openai.APIError as error:
                fault = self.endpoint_error(error)
                if fault is not None:
                    raise fault from None
                if not isinstance(error, retryable) or attempt == self.max_retries:
                    redact_exception(error)
                    raise
                delay = self._delay(attempt, error)
                env.log(
                    f"retrying a chat request in {delay:.2f}s",
                    level="warn",
                    model=self.model,
                    attempt=attempt + 1,
                    error=type(error).__name__,
                )
                if time.monotonic() - first_attempt >= self.retry_notice_after:
                    env.notice(
                        RETRY_NOTICE_MESSAGE.format(
                            url=self.url,
                            cause=retry_cause(error),
                            attempt=attempt + 1,
                            delay=delay,
                        )
                    )
                self._sleep(delay)
            except Exception as error:
                # A server may echo the request's headers in its refusal.
                redact_exception(error)
                raise
            else:
                data: dict[str, Any] = response.model_dump(
                    mode="json", exclude_unset=True
                )
                return data
        raise AssertionError("unreachable")  # pragma: no cover

    def _shared_client(self, module: Any) -> openai.OpenAI:
        with self._client_lock:
            if self._client is None:
                api_key = self._api_key or os.environ.get("OPENAI_API_KEY")
                if not api_key:
                    if self.base_url is None:
                        raise EndpointError(NO_KEY_MESSAGE.format(url=OPENAI_URL))
                    api_key = NO_KEY
                    self._keyless = True
                add_secret(api_key)
                # The client's own retries are off: ours is the only retry loop, so
                # that each attempt is logged and `max_retries` means what it says.
                self._client = module.OpenAI(
                    api_key=api_key,
                    base_url=self.base_url,
                    max_retries=0,
                    timeout=self.timeout,
                )
            return self._client

    @property
    def url(self) -> str:
        """The endpoint requests go to."""
        return (self.base_url or OPENAI_URL).rstrip("/")

    def endpoint_error(self, error: Exception) -> EndpointError | None:
        """The session-stopping error `error` means, if waiting cannot help: no
        connection can be made (refused, unknown host), the key is missing or
        rejected (401, 403), the model is unknown (404). None for the rest: a rate
        limit, a server error or a timeout may pass, and is retried."""
        openai = _import_openai()
        url = self.url
        if isinstance(error, openai.APITimeoutError):
            return None
        if isinstance(error, openai.APIConnectionError):
            cause = error.__cause__
            # A connection that could not be made; one that broke mid-way may not
            # break again.
            if cause is not None and type(cause).__name__ == "ConnectError":
                return EndpointError(UNREACHABLE_MESSAGE.format(url=url, cause=cause))
            return None
        status = getattr(error, "status_code", None)
        described = f"HTTP {status}"
        if status == 401 and self._keyless:
            return EndpointError(KEY_NEEDED_MESSAGE.format(url=url, status=described))
        if status in (401, 403):
            return EndpointError(KEY_REJECTED_MESSAGE.format(url=url, status=described))
        if status == 404:
            return EndpointError(
                UNKNOWN_MODEL_MESSAGE.format(
                    url=url, model=self.model, status=described
                )
            )
        return None

    def _delay(self, attempt: int, error: Exception) -> float:
        delay: float = self.backoff * 2**attempt * (0.5 + random.random() / 2)
        response = getattr(error, "response", None)
        retry_after = (
            response.headers.get("retry-after") if response is not None else None
        )
        # An HTTP date (not seconds) is ignored: our own backoff applies.
        if retry_after is not None and retry_after.replace(".", "", 1).isdigit():
            delay = max(delay, float(retry_after))
        return float(min(delay, self.max_backoff))


def retry_cause(error: Exception) -> str:
    """What went wrong with an attempt that is retried, as the notice says it."""
    status = getattr(error, "status_code", None)
    if status is not None:
        return f"answered {status}"
    if type(error).__name__ == "APITimeoutError":
        return "did not answer in time"
    return "broke the connection"


def remember_credentials(transport: Mapping[str, Any]) -> None:
    """Every header and query value sent with a request may be a credential:
    `redaction.redact` keeps them out of what is written or shown."""
    for option in ("extra_headers", "extra_query"):
        values = transport.get(option) or {}
        for value in values.values():
            add_secret(value)


def _import_openai() -> Any:
    try:
        import openai
    except ImportError as error:
        raise MissingExtraError(MISSING_OPENAI_MESSAGE) from error
    return openai
