"""Running one config without pytest: `Run`, `execute`, its result files.

`execute(run_factory, options)` is the whole life of one config's run:

1. the factory (`config.instantiate(context)`) builds the `Run`;
2. its program is called as `program(env, **args)`, where `env` (`Environment`)
   routes oracle calls through the config's `RequestCache`, counts what is spent
   against the `Run`'s budget, and writes log messages;
3. the outcome is written to `result.yaml`, or, when something raised (in the factory
   or the program), the traceback to `exception.txt`; `execute` itself does not raise
   for the program's errors, it returns a `RunRecord` that holds the live exception.

Replaying a config from its cache is `replays.replay`, which runs it through `execute`.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field, fields
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, Final

from pytest_delphyne import layout
from pytest_delphyne.cache import READ_ONLY_CACHE_MODES, CacheMode, RequestCache
from pytest_delphyne.environment import (
    BUDGET_FIELDS,
    DEFAULT_LOG_LEVEL,
    LOG_LEVELS,
    ZERO,
    Budget,
    BudgetExhausted,
    Environment,
    LogLevel,
)
from pytest_delphyne.errors import EndpointError
from pytest_delphyne.files import atomic_write, refuse_symlinks
from pytest_delphyne.ledger import LedgerWriter
from pytest_delphyne.plain_data import plain_copy
from pytest_delphyne.redaction import redact
from pytest_delphyne.results import (
    RecordedFailure,
    RecordedResult,
    ResultFileError,
    read_result,
    write_failure,
    write_result,
)
from pytest_delphyne.settings import DEFAULT_SETTINGS, RunSettings
from pytest_delphyne.tracebacks import format_user_frames
from pytest_delphyne.traces import write_traces

RETURNED_VALUES: Final = "the value returned by the program"

__all__ = [  # what this module offers, its own names, the `env`'s and the result's
    "BUDGET_FIELDS",
    "LOG_LEVELS",
    "Budget",
    "BudgetExhausted",
    "Environment",
    "LogLevel",
    "Outcome",
    "RecordedResult",
    "ResultFileError",
    "Run",
    "RunOptions",
    "RunRecord",
    "execute",
    "read_result",
]


@dataclass(frozen=True)
class Outcome:
    """What a program returns: whether it succeeded, and its values (plain data).

    A program may also return a plain value (success, one value) or `None` (no
    success, no value).
    """

    success: bool
    values: list[Any] = field(default_factory=list)


@dataclass(frozen=True)
class Run:
    """What `ExperimentConfig.instantiate(context)` returns: the program to run.

    Attributes:
        program: called as `program(env, **args)`; see `Environment` and `Outcome`.
        args: its keyword arguments.
        budget: the spending limit; reaching it ends the run with `success: false`.
        log_level: minimum level of the messages kept (default "info").
        export_log: write `log.txt` (default True).
        export_raw_trace: write `trace.yaml`, the oracle calls in order (default False).
        export_browsable_trace: write `trace.html`, the same to browse (default False).
        The experiment's and the command line's settings override the last four.
    """

    program: Callable[..., Any]
    args: Mapping[str, Any] = field(default_factory=dict)
    budget: Budget | None = None
    log_level: LogLevel | None = None
    export_log: bool | None = None
    export_raw_trace: bool | None = None
    export_browsable_trace: bool | None = None

    @property
    def settings(self) -> RunSettings:
        """The run's own settings, which the experiment's and the command line's
        override."""
        return RunSettings(
            log_level=self.log_level,
            export_log=self.export_log,
            export_raw_trace=self.export_raw_trace,
            export_browsable_trace=self.export_browsable_trace,
        )


@dataclass(frozen=True)
class RunOptions:
    """How `execute` runs one config.

    Attributes:
        config_name: the config's name (stored in `result.yaml`, given to `env`).
        directory: the config's directory: its cache, log, result and exception files.
        cache_mode: see `CacheMode`; "create" for a fresh run, "read_write" for a
            retry that reuses the calls already paid, "replay" to replay (and
            "replay_first_miss_live" to replay a config that raised).
        params: the config's parameters as plain data, stored in `result.yaml`.
        settings: overrides of the `Run`'s log level and exports (the experiment's
            and the command line's); `None` fields keep the `Run`'s own.
        write_files: False writes nothing at all (replays); then only the replay
            cache modes and "off" make sense, and other modes are run as "off".
        ledger: where each amount paid is counted as it is paid, if anywhere.
        on_notice: where the program's `env.notice` lines go (the config's name, the
            line), if anywhere.
    """

    config_name: str
    directory: Path
    cache_mode: CacheMode = "create"
    params: Mapping[str, Any] = field(default_factory=dict)
    settings: RunSettings = field(default_factory=RunSettings)
    write_files: bool = True
    ledger: LedgerWriter | None = None
    on_notice: Callable[[str, str], None] | None = None


@dataclass(frozen=True)
class RunRecord:
    """What happened when a config ran.

    Attributes:
        config_name: the config.
        success: the outcome's success (False when something raised).
        values: the outcome's values, as plain data (tuples turned into lists).
        spent: everything the program spent, answers replayed from the cache included
            (what the budget limit is checked against, and `result.yaml` stores).
        paid: the part of `spent` paid in this run (not replayed from the cache).
        start_time, end_time: UTC, aware.
        duration: seconds.
        traceback: the formatted traceback when the factory or program raised.
        exhausted: why the budget was exhausted, when it ended the run.
        exception: the live exception, so that a caller can re-raise it (a debugger
            then stops where it was raised). Ignored by `==` and dropped by pickle.
    """

    config_name: str
    success: bool
    values: list[Any]
    spent: Budget
    paid: Budget
    start_time: datetime
    end_time: datetime
    duration: float
    traceback: str | None = None
    exhausted: str | None = None
    exception: BaseException | None = field(default=None, compare=False, repr=False)

    @property
    def failed(self) -> bool:
        """Whether the run raised (a config failure, not an unsuccessful outcome)."""
        return self.traceback is not None

    def __reduce__(self) -> tuple[Any, ...]:
        # Exceptions may hold unpicklable frames and objects; the traceback text stays.
        values = [getattr(self, f.name) for f in fields(self)]
        return (RunRecord, (*values[:-1], None))


def _outcome(returned: Any) -> Outcome:
    if returned is None:
        return Outcome(False, [])
    if isinstance(returned, Outcome):
        values = plain_copy(list(returned.values), RETURNED_VALUES, "values")
        return Outcome(bool(returned.success), values)
    return Outcome(True, plain_copy([returned], RETURNED_VALUES, "values"))


def execute(
    run_factory: Callable[[], Run],
    options: RunOptions,
    *,
    on_environment: Callable[[Environment], None] | None = None,
) -> RunRecord:
    """Run one config, write its files, and say what happened.

    Everything the factory and the program raise (an `Exception`) is the config's
    failure: it is recorded, not raised. An `EndpointError` (the environment's
    fault), `KeyboardInterrupt` and `SystemExit` propagate (the config did not end),
    the files written so far staying put.

    Arguments:
        run_factory: builds the `Run`, typically `lambda: config.instantiate(ctx)`.
        options: see `RunOptions`.
        on_environment: called with the program's `env` before the program starts
            (a caller running several configs at once reads what each paid so far).

    Returns:
        The `RunRecord`; `result.yaml` (or `exception.txt`), `log.txt`, `cache.yaml`
        and the traces are in `options.directory` unless `options.write_files` is False.
    """
    start_ns = time.time_ns()
    directory = Path(options.directory)
    write = options.write_files
    if write:
        try:
            directory.mkdir()
        except FileNotFoundError:
            directory.mkdir(parents=True, exist_ok=True)
        except FileExistsError:
            # A directory just created holds no link planted by someone else.
            refuse_symlinks([directory, *(directory / name for name in _WRITTEN_FILES)])
            # A retry's files must not be mistaken for this run's (a directory just
            # created has none: five system calls saved per config).
            for stale in _RUN_FILES:
                (directory / stale).unlink(missing_ok=True)
    mode: CacheMode = options.cache_mode
    if not write and mode not in READ_ONLY_CACHE_MODES:
        mode = "off"
    env: Environment | None = None
    outcome = Outcome(False, [])
    error: Exception | None = None
    exhausted: str | None = None
    traces = (False, False)
    try:
        run = run_factory()
        chosen = options.settings.over(run.settings).over(DEFAULT_SETTINGS)
        traces = (
            bool(chosen.export_raw_trace) and write,
            bool(chosen.export_browsable_trace) and write,
        )
        export_log = bool(chosen.export_log) and write
        cache_path = None if mode == "off" else directory / layout.CACHE_FILE
        cache = RequestCache(cache_path, mode)
        env = Environment(
            options.config_name,
            cache,
            limit=run.budget,
            log_level=chosen.log_level or DEFAULT_LOG_LEVEL,
            log_path=directory / layout.LOG_FILE if export_log else None,
            trace=any(traces),
            on_paid=_ledger_record(options.ledger, cache),
            on_notice=options.on_notice,
        )
        if on_environment is not None:
            on_environment(env)
        outcome = _outcome(run.program(env, **run.args))
    except BudgetExhausted as stop:
        exhausted = str(stop)
    except EndpointError:
        # The environment's fault, not the config's: nothing of it is recorded
        # as the config's outcome (the session stops; the config stays todo).
        raise
    except Exception as exception:
        error = exception
    finally:
        if env is not None:
            env.close()
    end_ns = time.time_ns()
    spent = env.spent if env is not None else ZERO
    record = RunRecord(
        config_name=options.config_name,
        success=outcome.success and error is None,
        values=outcome.values if error is None else [],
        spent=spent,
        paid=env.paid if env is not None else ZERO,
        start_time=datetime.fromtimestamp(start_ns / 1e9, UTC),
        end_time=datetime.fromtimestamp(end_ns / 1e9, UTC),
        duration=(end_ns - start_ns) / 1e9,
        traceback=_format_traceback(error) if error is not None else None,
        exhausted=exhausted,
        exception=error,
    )
    if write:
        if env is not None and env.calls is not None:
            write_traces(directory, options.config_name, env.calls, *traces)
        if record.traceback is not None:
            atomic_write(
                directory / layout.EXCEPTION_FILE, record.traceback, durable=False
            )
            # After the traceback: a load that finds this file finds both.
            write_failure(directory, _failure(record, options.params))
        else:
            write_result(directory, _recorded(record, options.params))
    return record


def _ledger_record(
    ledger: LedgerWriter | None, cache: RequestCache
) -> Callable[[Budget], None] | None:
    """What counts each amount paid in the ledger, if anything does."""
    if ledger is None:
        return None
    if cache.mode not in READ_ONLY_CACHE_MODES:
        return ledger.record

    def record_live(amount: Budget) -> None:
        # A replay answers every call from the cache but the one missing call it
        # may make live: before that call, nothing is paid, whatever the program
        # tells `env.spend`.
        if cache.made_live_miss:
            ledger.record(amount)

    return record_live


_RUN_FILES: Final = (
    layout.RESULT_FILE,
    layout.EXCEPTION_FILE,
    layout.FAILURE_FILE,
    layout.LOG_FILE,
    layout.RAW_TRACE_FILE,
    layout.BROWSABLE_TRACE_FILE,
)


_WRITTEN_FILES: Final = (*_RUN_FILES, layout.CACHE_FILE)


def _format_traceback(error: BaseException) -> str:
    # The frames of `execute`, `env.compute` or the model say nothing about the
    # program; a message may quote a credential the program read or a server echoed.
    return redact(format_user_frames(error))


def _failure(record: RunRecord, params: Mapping[str, Any]) -> RecordedFailure:
    return RecordedFailure(
        config_name=record.config_name,
        params=dict(params),
        start_time=record.start_time,
        end_time=record.end_time,
    )


def _recorded(record: RunRecord, params: Mapping[str, Any]) -> RecordedResult:
    return RecordedResult(
        config_name=record.config_name,
        params=dict(params),
        success=record.success,
        values=record.values,
        spent=record.spent,
        start_time=record.start_time,
        end_time=record.end_time,
        duration=record.duration,
    )
