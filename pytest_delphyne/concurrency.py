"""Several configs in flight in one process: `--delphyne-concurrency=K`.

A config's program mostly waits for a model's endpoint. With K > 1, when an item's
turn comes, this process's `ConfigPool` also starts the programs of the next run-items
of its queue (the rest of the session's items, or the items xdist queued on this
worker), up to K not yet reported; the item then waits for its own program and
reports its outcome, with its own traceback. pytest still runs and reports one item
at a time, in order.

Each program runs in a thread: the programs users write are plain synchronous
functions that block on I/O (an HTTP client, a subprocess), and a blocking call
releases the GIL, so threads overlap their waits without asking users to rewrite their
programs for asyncio; they also share the process's clients (one connection pool).
Each config keeps its own `env`, cache, log and directory, as `runtime.execute` makes
them.

Started programs that are not reported when the session stops (`-x`, `--maxfail`,
Ctrl-C, the spend cap) are the configs in flight: the controller records them `todo`
with their interruption time (an xdist worker hands them over in its `workeroutput`).
Their threads are left to the process's exit: Python cannot stop a thread, and
whatever a program paid is already in its cache.
"""

from __future__ import annotations

import tempfile
import threading
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any, Final, NoReturn, TypedDict, TypeGuard

import pytest

from pytest_delphyne import layout
from pytest_delphyne.runtime import execute
from pytest_delphyne.spend_cap import SPEND_CAP_REASON

if TYPE_CHECKING:
    from collections.abc import Callable, Iterable, Iterator

    from pytest_delphyne.environment import Environment
    from pytest_delphyne.items import ConfigItem
    from pytest_delphyne.runtime import RunRecord

CONCURRENCY_MESSAGE: Final = (
    "--delphyne-concurrency must be a whole number of configs >= 1, not {value!r}"
)
WORKSTEAL_MESSAGE: Final = (
    "--delphyne-concurrency={value} cannot be used with --dist worksteal: a worker's "
    "configs start before their turn, and another worker would steal and run them "
    "again; use --dist load (the default of -n)"
)
UNFINISHED_KEY: Final = "delphyne_unfinished"
"""The `workeroutput` key of a worker's configs that were in flight when it stopped."""

# How far past the current item the pool looks for configs to start: a queue of
# done (skipped) items is not scanned to its end at every item.
_LOOKAHEAD_PER_SLOT: Final = 4


class UnfinishedConfig(TypedDict):
    """A config whose program started but that was not reported: it was in flight."""

    experiment: str
    config: str
    start_time: str


class ConcurrencyError(ValueError):
    """A concurrency that is not a whole number >= 1."""


def check_concurrency(value: object) -> int:
    """The number of configs in flight per process, checked.

    Raises:
        ConcurrencyError: `value` is not a whole number >= 1.
    """
    try:
        number = int(str(value).strip())
    except ValueError:
        raise ConcurrencyError(CONCURRENCY_MESSAGE.format(value=value)) from None
    if number < 1:
        raise ConcurrencyError(CONCURRENCY_MESSAGE.format(value=number))
    return number


@dataclass
class _Flight:
    """A config's program, started in a thread of its own."""

    item: ConfigItem
    directory: Path
    start_time: datetime
    done: threading.Event = field(default_factory=threading.Event)
    record: RunRecord | None = None
    # What escaped `execute`: KeyboardInterrupt, SystemExit.
    escaped: BaseException | None = None
    env: Environment | None = None

    def paid_so_far(self) -> float:
        if self.record is not None:
            return self.record.paid.price or 0.0
        env = self.env
        return (env.paid.price or 0.0) if env is not None else 0.0


def config_directory(item: ConfigItem) -> Path:
    """Where a config's program writes: its own directory, or a scratch one when this
    process does not see the output directory (its files travel in the report)."""
    binding = item.binding
    if binding.shares_output_dir:
        return layout.config_dir(binding.output_dir, item.config_name)
    return Path(tempfile.mkdtemp(prefix=f"delphyne-{item.config_name}-"))


def _execute(
    item: ConfigItem,
    directory: Path,
    on_environment: Callable[[Environment], None] | None = None,
) -> RunRecord:
    binding = item.binding
    # A worker without the output directory counts in its scratch directory, whose
    # ledger travels back with the config's files.
    ledger = item._ledger(
        binding.output_dir if binding.shares_output_dir else directory
    )
    try:
        options = item._run_options(
            directory,
            cache_mode=item.decision.cache_mode,
            write_files=True,
            ledger=ledger,
        )
        return execute(item._run_factory(), options, on_environment=on_environment)
    finally:
        ledger.close()


def _spend_cap_reached(item: ConfigItem, in_flight: float) -> bool:
    cap = item.binding.options.max_price
    return cap is not None and item.binding.meter.total() + in_flight >= cap


def _skip_for_spend_cap(item: ConfigItem) -> NoReturn:
    raise pytest.skip.Exception(
        SPEND_CAP_REASON.format(cap=item.binding.options.max_price),
        _use_item_location=True,
    )


pool_key = pytest.StashKey["ConfigPool"]()
"""This process's pool, when it keeps several configs in flight."""


def run_config(item: ConfigItem) -> tuple[RunRecord, Path]:
    """Run the item's config (through this process's pool, if any); its record and
    the directory its files are in.

    Raises:
        pytest.skip.Exception: the session's spend cap was reached before it started.
    """
    pool = item.config.stash.get(pool_key, None)
    if pool is not None:
        return pool.run(item)
    if _spend_cap_reached(item, 0.0):
        _skip_for_spend_cap(item)
    # One at a time, in this thread: a debugger stops in the program, and Ctrl-C
    # interrupts the program itself.
    directory = config_directory(item)
    return _execute(item, directory), directory


def may_start_ahead(item: pytest.Item) -> TypeGuard[ConfigItem]:
    """Whether an item's program may start before its turn (see
    `ConfigItem.may_start_ahead`); other items never do."""
    check = getattr(item, "may_start_ahead", None)
    return callable(check) and bool(check())


class ConfigPool:
    """This process's configs in flight (see the module docstring); registered as a
    plugin when the concurrency is above 1.

    Arguments:
        config: pytest's config.
        concurrency: the most configs started and not yet reported.
        upcoming: the items this process will run after a given one, in order.
        on_unfinished: on the controller, records the configs in flight when the
            session stopped (an xdist worker puts them in its `workeroutput`).
    """

    def __init__(
        self,
        config: pytest.Config,
        concurrency: int,
        upcoming: Callable[[pytest.Item], Iterable[pytest.Item]],
        on_unfinished: Callable[[list[UnfinishedConfig]], None] | None = None,
    ) -> None:
        self.config = config
        self.concurrency = concurrency
        self.upcoming = upcoming
        self.on_unfinished = on_unfinished
        self._flights: dict[str, _Flight] = {}

    def run(self, item: ConfigItem) -> tuple[RunRecord, Path]:
        """Start the item's program unless it started ahead, start the next items'
        programs, and wait for the item's.

        Raises:
            pytest.skip.Exception: the spend cap was reached before it started.
        """
        flight = self._flights.get(item.nodeid)
        if flight is None:
            if _spend_cap_reached(item, self._in_flight_price()):
                _skip_for_spend_cap(item)
            flight = self._start(item)
        self._start_ahead(item)
        flight.done.wait()
        del self._flights[item.nodeid]
        if flight.escaped is not None:
            raise flight.escaped
        if flight.record is None:  # pragma: no cover - `fly` sets one or the other
            raise RuntimeError(f"config {item.config_name} ended without a record")
        return flight.record, flight.directory

    def _start(self, item: ConfigItem) -> _Flight:
        flight = _Flight(item, config_directory(item), datetime.now(UTC))
        self._flights[item.nodeid] = flight

        def keep_environment(env: Environment) -> None:
            flight.env = env

        def fly() -> None:
            try:
                flight.record = _execute(item, flight.directory, keep_environment)
            except BaseException as escaped:
                flight.escaped = escaped
            finally:
                flight.done.set()

        # Daemon: a program still waiting when the session stops must not keep the
        # process alive; its config is recorded as interrupted.
        threading.Thread(
            target=fly, name=f"delphyne-{item.config_name}", daemon=True
        ).start()
        return flight

    def _start_ahead(self, current: pytest.Item) -> None:
        scan = self.concurrency * _LOOKAHEAD_PER_SLOT
        for item in self.upcoming(current):
            if len(self._flights) >= self.concurrency or scan == 0:
                return
            scan -= 1
            if item.nodeid in self._flights or not may_start_ahead(item):
                continue
            if _spend_cap_reached(item, self._in_flight_price()):
                return
            self._start(item)

    def _in_flight_price(self) -> float:
        # What configs in flight paid is in their ledger as soon as it is paid; only
        # one that this process's meter does not read counts here.
        return sum(
            flight.paid_so_far()
            for flight in self._flights.values()
            if not flight.item.binding.shares_output_dir
        )

    def unfinished(self) -> list[UnfinishedConfig]:
        """The configs started and not reported: in flight."""
        return [
            UnfinishedConfig(
                experiment=flight.item.binding.plan["key"],
                config=flight.item.config_name,
                start_time=flight.start_time.isoformat(),
            )
            for flight in self._flights.values()
        ]

    # tryfirst: before the recorder saves the state (which marks these configs
    # interrupted), and before an xdist worker sends its `workeroutput` (xdist's
    # hook wraps this one).
    @pytest.hookimpl(tryfirst=True)
    def pytest_sessionfinish(self, session: pytest.Session) -> None:
        unfinished = self.unfinished()
        workeroutput: dict[str, Any] | None = getattr(self.config, "workeroutput", None)
        if workeroutput is not None:
            workeroutput[UNFINISHED_KEY] = unfinished
        elif self.on_unfinished is not None and unfinished:
            self.on_unfinished(unfinished)


class SessionQueue:
    """The items after a given one in a session without xdist, where every item of
    the session runs in this process in order."""

    def __init__(self) -> None:
        self._positions: dict[str, int] | None = None

    def upcoming(self, item: pytest.Item) -> Iterator[pytest.Item]:
        items = item.session.items
        if self._positions is None:
            self._positions = {each.nodeid: i for i, each in enumerate(items)}
        index = self._positions.get(item.nodeid)
        if index is None:
            return
        for position in range(index + 1, len(items)):
            yield items[position]
