"""The program's `env`: oracle calls through the cache, budgets, log messages.

A config's program is called as `program(env, **args)`. Everything it does that costs
money or cannot be redone identically goes through `env`: `env.compute(fn, ...)` and
`env.cached_call(...)` (recorded in the config's cache and replayed from it),
`env.spend(...)` (counted against the `Run`'s `Budget`), and `env.log(...)`.
"""

from __future__ import annotations

import sys
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, Final, Literal, TypeVar, get_args

from pytest_delphyne.cache import CacheAnswer, RequestCache, canonical_args_json
from pytest_delphyne.errors import DelphyneError
from pytest_delphyne.files import open_log
from pytest_delphyne.plain_data import plain_copy
from pytest_delphyne.redaction import redact

T = TypeVar("T")

LogLevel = Literal["trace", "debug", "info", "warn", "error"]
"""Log levels, from the most verbose to the most severe."""
LOG_LEVELS: Final[tuple[LogLevel, ...]] = get_args(LogLevel)
DEFAULT_LOG_LEVEL: Final[LogLevel] = "info"

LOG_LEVEL_MESSAGE: Final = "unknown log level {level!r}; expected one of {levels}"
BUDGET_MESSAGE: Final = (
    "budget exhausted: {field} spent {spent} {relation} limit {limit}"
)
BUDGET_FIELDS: Final = (
    "num_requests",
    "num_completions",
    "input_tokens",
    "cached_input_tokens",
    "output_tokens",
    "price",
)


class LogLevelError(DelphyneError):
    """A log level that is not one of `LOG_LEVELS`."""


class BudgetExhausted(Exception):
    """Spending went over the `Run`'s budget limit.

    Uncaught, it ends the program normally with `success: false`: a run that reaches
    its limit has failed to find an answer within it, it has not crashed.
    """


@dataclass(frozen=True)
class Budget:
    """Amounts of resources: a limit (`None` fields are unlimited) or a spending.

    Attributes:
        num_requests: requests sent to a model.
        num_completions: completions received (a request may ask for several).
        input_tokens: prompt tokens, cached ones included.
        cached_input_tokens: the part of `input_tokens` the provider had cached.
        output_tokens: completion tokens.
        price: cost in dollars.
    """

    num_requests: int | None = None
    num_completions: int | None = None
    input_tokens: int | None = None
    cached_input_tokens: int | None = None
    output_tokens: int | None = None
    price: float | None = None

    def __add__(self, other: Budget) -> Budget:
        sums: dict[str, Any] = {}
        for name in BUDGET_FIELDS:
            mine, theirs = getattr(self, name), getattr(other, name)
            sums[name] = (
                None if mine is None and theirs is None else (mine or 0) + (theirs or 0)
            )
        return Budget(**sums)

    def exceeds(self, limit: Budget, *, or_reaches: bool = False) -> str | None:
        """Why this spending is over `limit` (or at it, with `or_reaches`), or None."""
        for name in BUDGET_FIELDS:
            spent, bound = getattr(self, name) or 0, getattr(limit, name)
            if bound is not None and (spent > bound or (or_reaches and spent >= bound)):
                relation = ">" if spent > bound else "reaches"
                return BUDGET_MESSAGE.format(
                    field=name, spent=spent, relation=relation, limit=bound
                )
        return None

    def as_dict(self) -> dict[str, int | float]:
        """Every field, as spent: zero for `None`, `price` a float."""
        data: dict[str, int | float] = {n: getattr(self, n) or 0 for n in BUDGET_FIELDS}
        data["price"] = float(data["price"])
        return data

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> Budget:
        """The budget of a mapping of field names (unknown keys are ignored)."""
        return cls(**{n: data[n] for n in BUDGET_FIELDS if n in data})


ZERO: Final = Budget(0, 0, 0, 0, 0, 0.0)


def call_key(fn: Callable[..., Any]) -> str:
    """The name a function's calls are recorded under: `<file stem>.<qualname>`.

    The same file is `__main__` when run as `python exp.py` and has another module
    name when pytest imports it; its stem is the same either way, so a run recorded
    under one replays under the other.
    """
    module = sys.modules.get(fn.__module__)
    file = getattr(module, "__file__", None)
    prefix = Path(file).stem if file else fn.__module__
    return f"{prefix}.{fn.__qualname__}"


class Environment:
    """The program's `env`: its cache, its budget, its log.

    Arguments:
        config_name: the config being run.
        cache: where oracle calls go.
        limit: the `Run`'s budget, if any.
        log_level: minimum level kept.
        log_path: the `log.txt` to write, if any.
        trace: whether to keep the calls for `trace.yaml`/`trace.html`.
        on_paid: called with each amount paid (not replayed), as it is paid: the
            ledger of paid calls.
        on_notice: called with the config's name and each `notice`, as it happens:
            the session's terminal.
    """

    def __init__(
        self,
        config_name: str,
        cache: RequestCache,
        *,
        limit: Budget | None = None,
        log_level: LogLevel = DEFAULT_LOG_LEVEL,
        log_path: Path | None = None,
        trace: bool = False,
        on_paid: Callable[[Budget], None] | None = None,
        on_notice: Callable[[str, str], None] | None = None,
    ):
        self.config_name = config_name
        self._on_paid = on_paid
        self._on_notice = on_notice
        self.limit = limit
        self.cache = cache
        self._threshold = _level_index(log_level)
        self._log_file = open_log(log_path) if log_path else None
        self._spent = ZERO
        self._paid = ZERO
        self.calls: list[dict[str, Any]] | None = [] if trace else None

    @property
    def spent(self) -> Budget:
        """Everything spent so far, replayed answers included."""
        return self._spent

    @property
    def paid(self) -> Budget:
        """What was paid in this run: `spent` minus the replayed answers."""
        return self._paid

    def compute(self, fn: Callable[..., T], /, *args: Any, **kwargs: Any) -> T:
        """`fn(*args, **kwargs)` through the cache, keyed by `fn` (see `call_key`),
        its arguments (plain data) and how many identical calls came before.

        Raises:
            CacheMissError: replaying a call that was not recorded.
            NotPlainDataError: an argument or the answer is not plain data.
        """
        key = call_key(fn)
        request = {"args": list(args), "kwargs": kwargs}
        answer: T = self.cached_call(key, request, lambda: fn(*args, **kwargs)).value
        return answer

    def cached_call(
        self, key: str, request: Any, compute: Callable[[], Any]
    ) -> CacheAnswer:
        """Any client's call through the cache (`compute` makes it; `request`, plain
        data, identifies it with `key`). Says whether the answer was replayed, so that
        the caller can pass `replayed=` to `spend`. Never put secrets in `request`."""
        args_json = canonical_args_json(request, f"the arguments of call {key}")
        answer = self.cache.lookup_or_call(key, args_json, compute)
        if self.calls is not None:
            self.calls.append(
                {
                    "key": key,
                    "occurrence": answer.occurrence,
                    "args": plain_copy(request, key),
                    "cached": answer.hit,
                    "seconds": round(answer.seconds, 6),
                    "answer": answer.value,
                    "spent": {},
                }
            )
        return answer

    def spend(
        self,
        *,
        num_requests: int = 0,
        num_completions: int = 0,
        input_tokens: int = 0,
        cached_input_tokens: int = 0,
        output_tokens: int = 0,
        price: float = 0.0,
        replayed: bool = False,
    ) -> None:
        """Count resources spent, and stop the program when over the limit.

        Arguments:
            replayed: the amounts were paid by an earlier run whose answer the cache
                replayed: they count towards the limit and `spent`, not `paid`.

        Raises:
            BudgetExhausted: `spent` is now over the `Run`'s budget.
        """
        amount = Budget(
            num_requests,
            num_completions,
            input_tokens,
            cached_input_tokens,
            output_tokens,
            float(price),
        )
        self._spent = self._spent + amount
        if not replayed:
            self._paid = self._paid + amount
            if self._on_paid is not None:
                # Counted the moment it is paid: a run killed next keeps the count.
                self._on_paid(amount)
        if self.calls:
            spent = self.calls[-1]["spent"]
            for name, value in amount.as_dict().items():
                if value:
                    spent[name] = spent.get(name, 0) + value
        if self.limit is not None and (why := self._spent.exceeds(self.limit)):
            raise BudgetExhausted(why)

    def check_budget(self) -> None:
        """Stop the program if the limit is already reached (call before paying).

        Raises:
            BudgetExhausted: some limited field of `spent` is at or over its limit.
        """
        if self.limit is not None and (
            why := self._spent.exceeds(self.limit, or_reaches=True)
        ):
            raise BudgetExhausted(why)

    def log(self, message: str, level: LogLevel = "info", **metadata: Any) -> None:
        """Record a message in `log.txt` (if exported and `level` passes the filter).

        A line is: UTC time, level, message (newlines escaped), metadata as JSON.
        """
        if _level_index(level) < self._threshold or self._log_file is None:
            return
        line = (
            f"{datetime.now(UTC).isoformat(timespec='milliseconds')} {level.upper():5} "
        )
        line += message.replace("\\", "\\\\").replace("\n", "\\n").replace("\r", "\\r")
        if metadata:
            line += " " + canonical_args_json(_loggable(metadata), "log metadata")
        self._log_file.write(redact(line) + "\n")
        self._log_file.flush()

    def notice(self, message: str) -> None:
        """Say `message` to the user now, while the config runs (what they would
        otherwise wait for in silence: a request retried after waiting). Not logged:
        `log` is for that."""
        if self._on_notice is not None:
            self._on_notice(self.config_name, redact(message))

    def close(self) -> None:
        """Close the cache and the log file."""
        self.cache.close()
        if self._log_file is not None:
            self._log_file.close()
            self._log_file = None


def _loggable(value: Any) -> Any:
    try:
        return plain_copy(value, "log metadata")
    except DelphyneError:
        return {k: repr(v) for k, v in value.items()}


def _level_index(level: str) -> int:
    if level not in LOG_LEVELS:
        raise LogLevelError(LOG_LEVEL_MESSAGE.format(level=level, levels=LOG_LEVELS))
    return LOG_LEVELS.index(level)
