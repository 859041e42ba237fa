from __future__ import annotations

import functools
import os
import pickle
import random
import re
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path
from typing import Any

import pytest
import yaml

import pytest_delphyne
from pytest_delphyne import layout
from pytest_delphyne.cache import CacheMissError
from pytest_delphyne.environment import BUDGET_MESSAGE, LogLevel, call_key
from pytest_delphyne.plain_data import NOT_PLAIN_DATA_MESSAGE, NotPlainDataError
from pytest_delphyne.replays import replay
from pytest_delphyne.results import ResultFileError
from pytest_delphyne.runtime import (
    RETURNED_VALUES,
    Budget,
    Environment,
    Outcome,
    Run,
    RunOptions,
    RunRecord,
    execute,
    read_result,
)
from pytest_delphyne.settings import SETTING_NAMES, RunSettings

ZERO_SPENT = {
    "num_requests": 0,
    "num_completions": 0,
    "input_tokens": 0,
    "cached_input_tokens": 0,
    "output_tokens": 0,
    "price": 0.0,
}


def draw() -> float:
    return random.random()


def draw_many(env: Environment, n: int) -> Outcome:
    return Outcome(True, [env.compute(draw) for _ in range(n)])


def _options(directory: Path, **overrides: Any) -> RunOptions:
    settings = {
        name: overrides.pop(name) for name in SETTING_NAMES if name in overrides
    }
    return RunOptions(
        config_name="c1",
        directory=directory,
        settings=RunSettings(**settings),
        **overrides,
    )


def test_identical_computes_replay_in_order_without_calling(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    record = execute(lambda: Run(draw_many, {"n": 3}), _options(tmp_path))
    assert record.success
    assert len(set(record.values)) == 3

    @functools.wraps(draw)
    def raising() -> float:
        raise AssertionError("replay made a call")

    monkeypatch.setattr(sys.modules[__name__], "draw", raising)
    report = replay(lambda: Run(draw_many, {"n": 3}), tmp_path)
    assert report.replayed.traceback is None
    assert report.replayed.values == record.values
    assert report.matches
    assert report.differences == ()


class EchoClient:
    """A client of the user's own (a tool server, another vendor's SDK): the
    environment caches it as it caches chat requests."""

    def __init__(self) -> None:
        self.requests: list[dict[str, Any]] = []

    def ask(self, env: Environment, question: str) -> str:
        request = {"question": question, "style": "terse"}

        def send() -> str:
            self.requests.append(request)
            return question.upper()

        call = env.cached_call("echo.ask", request, send)
        env.spend(num_requests=1, price=0.25, replayed=call.hit)
        answer: str = call.value
        return answer


def test_a_users_client_is_recorded_and_replayed_through_cached_call(
    tmp_path: Path,
) -> None:
    client = EchoClient()

    def program(env: Environment) -> Outcome:
        return Outcome(True, [client.ask(env, "hi"), client.ask(env, "there")])

    record = execute(lambda: Run(program), _options(tmp_path))
    assert record.values == ["HI", "THERE"]
    assert len(client.requests) == 2
    assert record.paid.price == 0.5
    cached = (tmp_path / layout.CACHE_FILE).read_text()
    assert '"question":"hi"' in cached
    assert '"THERE"' in cached
    # The replay answers from the file: the client is not asked, nothing is paid.
    report = replay(lambda: Run(program), tmp_path)
    assert report.matches
    assert len(client.requests) == 2
    assert report.replayed.paid.price == 0.0
    assert report.replayed.spent.price == 0.5


def test_replay_of_a_call_not_recorded_fails_naming_it(tmp_path: Path) -> None:
    execute(lambda: Run(draw_many, {"n": 2}), _options(tmp_path))
    before = {p.name: p.read_bytes() for p in tmp_path.iterdir()}
    report = replay(lambda: Run(draw_many, {"n": 3}), tmp_path)
    assert not report.matches
    assert isinstance(report.replayed.exception, CacheMissError)
    key = f"{__name__}.draw"
    assert f"call {key} with arguments" in str(report.replayed.exception)
    assert report.differences[0].startswith("the replay raised")
    assert key in report.differences[0]
    assert {p.name: p.read_bytes() for p in tmp_path.iterdir()} == before


def test_replay_reports_a_changed_success_with_the_same_values(
    tmp_path: Path,
) -> None:
    execute(lambda: Run(lambda env: Outcome(True, [1])), _options(tmp_path))
    report = replay(lambda: Run(lambda env: Outcome(False, [1])), tmp_path)
    assert not report.matches
    assert report.differences == ("success: recorded True, replayed False",)


def test_replay_reports_different_values(tmp_path: Path) -> None:
    execute(lambda: Run(draw_many, {"n": 1}), _options(tmp_path))
    report = replay(lambda: Run(lambda env: random.random()), tmp_path)
    assert not report.matches
    assert report.differences[0].startswith("values: recorded [")


def spend_forever(env: Environment) -> str:
    while True:
        env.check_budget()
        env.spend(num_requests=1, price=0.25)


def test_budget_limit_ends_the_run_without_success(tmp_path: Path) -> None:
    run = Run(spend_forever, budget=Budget(num_requests=3))
    record = execute(lambda: run, _options(tmp_path))
    assert (record.success, record.values, record.traceback) == (False, [], None)
    assert not record.failed
    assert record.exhausted == BUDGET_MESSAGE.format(
        field="num_requests", spent=3, relation="reaches", limit=3
    )
    assert record.spent == Budget(3, 0, 0, 0, 0, 0.75)
    assert read_result(tmp_path).success is False
    assert read_result(tmp_path).spent == record.spent
    assert not (tmp_path / layout.EXCEPTION_FILE).exists()


@pytest.mark.parametrize("field", ["num_requests", "price"])
def test_a_program_that_spends_exactly_its_limit_and_returns_succeeds(
    tmp_path: Path, field: str
) -> None:
    def program(env: Environment) -> Outcome:
        env.spend(num_requests=1, price=0.25)
        env.spend(num_requests=2, price=0.5)
        return Outcome(True, ["answer"])

    limit = Budget(num_requests=3) if field == "num_requests" else Budget(price=0.75)
    record = execute(lambda: Run(program, budget=limit), _options(tmp_path))
    assert (record.success, record.values, record.exhausted) == (True, ["answer"], None)
    assert record.spent == Budget(3, 0, 0, 0, 0, 0.75)
    assert read_result(tmp_path).success is True
    assert read_result(tmp_path).values == ["answer"]


def test_a_sum_of_budgets_adds_each_field_and_keeps_unset_ones_unlimited() -> None:
    total = Budget(num_requests=1) + Budget(price=0.5) + Budget(num_requests=2)
    assert total == Budget(num_requests=3, price=0.5)
    assert total.output_tokens is None


def test_spending_is_paid_unless_said_replayed(tmp_path: Path) -> None:
    def program(env: Environment) -> Outcome:
        env.spend(num_requests=1, price=0.25)
        env.spend(num_requests=2, price=0.5, replayed=True)
        return Outcome(True, [])

    record = execute(lambda: Run(program), _options(tmp_path))
    assert record.paid == Budget(1, 0, 0, 0, 0, 0.25)
    assert record.spent == Budget(3, 0, 0, 0, 0, 0.75)


def test_spending_over_the_limit_raises_budget_exhausted(tmp_path: Path) -> None:
    def program(env: Environment) -> None:
        env.spend(price=0.1)
        env.spend(price=0.2)
        raise AssertionError("not reached")

    record = execute(
        lambda: Run(program, budget=Budget(price=0.25)), _options(tmp_path)
    )
    assert record.exhausted is not None
    assert record.exhausted.startswith("budget exhausted: price spent 0.3")
    assert not record.failed


def _scalar(value: object) -> str:
    return yaml.safe_dump(value).removesuffix("\n...\n").strip()


def test_result_file_content(tmp_path: Path) -> None:
    def program(env: Environment) -> Outcome:
        env.spend(num_requests=2, input_tokens=10, output_tokens=3, price=0.5)
        return Outcome(True, [{"answer": 42, "pair": (1, 2)}])

    options = _options(tmp_path, params={"model": "m", "temperature": 0.5})
    record = execute(lambda: Run(program), options)
    assert (tmp_path / layout.RESULT_FILE).read_text() == textwrap.dedent(
        f"""\
        config_name: c1
        params:
          model: m
          temperature: 0.5
        start_time: {record.start_time.isoformat(" ")}
        end_time: {record.end_time.isoformat(" ")}
        duration: {_scalar(record.duration)}
        outcome:
          result:
            success: true
            values:
            - answer: 42
              pair:
              - 1
              - 2
            spent_budget:
              num_requests: 2
              num_completions: 0
              input_tokens: 10
              cached_input_tokens: 0
              output_tokens: 3
              price: 0.5
        """
    )
    assert record.duration == pytest.approx(
        (record.end_time - record.start_time).total_seconds(), abs=1e-5
    )
    assert record.start_time.tzinfo is not None
    result = read_result(tmp_path)
    assert (result.start_time, result.end_time) == (record.start_time, record.end_time)


@pytest.mark.parametrize(
    ("returned", "values", "success"),
    [(None, [], False), (7, [7], True), (Outcome(False, [(1,)]), [[1]], False)],
)
def test_plain_return_values(
    tmp_path: Path, returned: object, values: list[Any], success: bool
) -> None:
    execute(lambda: Run(lambda env: returned), _options(tmp_path))
    data = yaml.safe_load((tmp_path / layout.RESULT_FILE).read_text())
    assert data["outcome"]["result"] == {
        "success": success,
        "values": values,
        "spent_budget": ZERO_SPENT,
    }


def test_non_plain_return_value_fails_naming_it(tmp_path: Path) -> None:
    record = execute(lambda: Run(lambda env: {"x": {1, 2}}), _options(tmp_path))
    assert record.failed
    assert isinstance(record.exception, NotPlainDataError)
    message = NOT_PLAIN_DATA_MESSAGE.format(
        what=RETURNED_VALUES, path="values[0]['x']", type_name="a set"
    )
    assert str(record.exception) == message
    text = (tmp_path / layout.EXCEPTION_FILE).read_text()
    assert (
        text.splitlines()[-1]
        == f"pytest_delphyne.plain_data.NotPlainDataError: {message}"
    )
    assert not (tmp_path / layout.RESULT_FILE).exists()


def failing_program(env: Environment) -> None:
    env.compute(draw)
    raise ValueError("the program broke")


def test_raising_program_writes_its_traceback(tmp_path: Path) -> None:
    (tmp_path / layout.RESULT_FILE).write_text("stale from an earlier attempt")
    record = execute(lambda: Run(failing_program), _options(tmp_path))
    assert (record.success, record.values, record.failed) == (False, [], True)
    assert isinstance(record.exception, ValueError)
    text = (tmp_path / layout.EXCEPTION_FILE).read_text()
    assert text == record.traceback
    assert text.startswith("Traceback (most recent call last):\n")
    assert 'in failing_program\n    raise ValueError("the program broke")' in text
    assert text.endswith("ValueError: the program broke\n")
    assert "pytest_delphyne/runtime.py" not in text
    assert not (tmp_path / layout.RESULT_FILE).exists()
    assert (tmp_path / layout.CACHE_FILE).exists()
    tb = record.exception.__traceback__
    while tb is not None and tb.tb_next is not None:
        tb = tb.tb_next
    assert tb is not None
    assert tb.tb_frame.f_code.co_name == "failing_program"


def test_raising_factory_is_the_configs_failure(tmp_path: Path) -> None:
    def instantiate() -> Run:
        raise KeyError("no such model")

    record = execute(instantiate, _options(tmp_path))
    assert record.failed
    assert isinstance(record.exception, KeyError)
    text = (tmp_path / layout.EXCEPTION_FILE).read_text()
    assert "in instantiate\n" in text
    assert text.endswith("KeyError: 'no such model'\n")
    assert sorted(p.name for p in tmp_path.iterdir()) == [
        layout.EXCEPTION_FILE,
        layout.FAILURE_FILE,
    ]


def test_retry_after_failure_removes_the_stale_traceback(tmp_path: Path) -> None:
    execute(lambda: Run(failing_program), _options(tmp_path))
    record = execute(lambda: Run(draw_many, {"n": 1}), _options(tmp_path))
    assert record.success
    assert not (tmp_path / layout.EXCEPTION_FILE).exists()
    assert not (tmp_path / layout.FAILURE_FILE).exists()


def log_everything(env: Environment) -> None:
    for level in ("trace", "debug", "info", "warn", "error"):
        env.log(f"at {level}", level)
    env.log("two\nlines", "error", step=3, name="x")


LINE = r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}\+00:00 "


@pytest.mark.parametrize(
    ("own", "override", "expected"),
    [
        (None, None, ["INFO  at info", "WARN  at warn"]),
        ("warn", None, ["WARN  at warn"]),
        ("error", "debug", ["DEBUG at debug", "INFO  at info", "WARN  at warn"]),
    ],
)
def test_log_is_filtered_by_level(
    tmp_path: Path, own: LogLevel | None, override: LogLevel | None, expected: list[str]
) -> None:
    run = Run(log_everything, log_level=own)
    execute(lambda: run, _options(tmp_path, log_level=override))
    lines = (tmp_path / layout.LOG_FILE).read_text().splitlines()
    expected += ["ERROR at error", 'ERROR two\\nlines {"name":"x","step":3}']
    assert len(lines) == len(expected)
    for line, end in zip(lines, expected, strict=True):
        assert re.fullmatch(LINE + re.escape(end), line), line


def test_export_log_override_wins(tmp_path: Path) -> None:
    run = Run(log_everything, export_log=True)
    execute(lambda: run, _options(tmp_path, export_log=False))
    assert not (tmp_path / layout.LOG_FILE).exists()


def test_traces_list_the_calls_in_order(tmp_path: Path) -> None:
    def program(env: Environment) -> None:
        env.compute(draw)
        env.spend(num_requests=1, price=0.5)
        env.compute(max, 1, 2)

    run = Run(program, export_raw_trace=True, export_browsable_trace=True)
    execute(lambda: run, _options(tmp_path))
    trace = yaml.safe_load((tmp_path / layout.RAW_TRACE_FILE).read_text())
    assert [(c["key"], c["occurrence"], c["cached"], c["spent"]) for c in trace] == [
        (f"{__name__}.draw", 0, False, {"num_requests": 1, "price": 0.5}),
        ("builtins.max", 0, False, {}),
    ]
    assert trace[1]["args"] == {"args": [1, 2], "kwargs": {}}
    assert trace[1]["answer"] == 2
    page = (tmp_path / layout.BROWSABLE_TRACE_FILE).read_text()
    assert page.startswith("<!DOCTYPE html>")
    assert "builtins.max" in page
    assert "<script src" not in page
    assert "<link" not in page


def test_record_pickles_without_its_exception(tmp_path: Path) -> None:
    record = execute(lambda: Run(failing_program), _options(tmp_path))
    copy: RunRecord = pickle.loads(pickle.dumps(record))
    assert copy == record
    assert copy.exception is None
    assert copy.traceback == record.traceback


def test_replay_writes_nothing_and_matches_a_recorded_failure(tmp_path: Path) -> None:
    execute(lambda: Run(failing_program), _options(tmp_path))
    before = {p.name: p.read_bytes() for p in tmp_path.iterdir()}
    report = replay(lambda: Run(failing_program), tmp_path)
    assert report.matches
    assert report.recorded is None
    assert isinstance(report.replayed.exception, ValueError)
    assert {p.name: p.read_bytes() for p in tmp_path.iterdir()} == before


TOOL_CALLS: list[int] = []


def tool(x: int) -> int:
    TOOL_CALLS.append(x)
    if x == 1:
        raise TimeoutError(f"the tool timed out on {x}")
    return 10 * x


def ask_tool(env: Environment, xs: list[int]) -> list[int]:
    env.compute(draw)
    return [env.compute(tool, x) for x in xs]


def _run_raising_in_a_call(
    directory: Path, monkeypatch: pytest.MonkeyPatch
) -> dict[str, bytes]:
    """Run `ask_tool` to its raising call (never recorded), with `TOOL_CALLS` empty
    and `draw` not to be called again; the directory's files, as they are after."""
    monkeypatch.setattr(sys.modules[__name__], "TOOL_CALLS", [])
    record = execute(lambda: Run(ask_tool, {"xs": [1]}), _options(directory))
    assert isinstance(record.exception, TimeoutError)
    assert TOOL_CALLS == [1]

    @functools.wraps(draw)
    def raising() -> float:
        raise AssertionError("replay made a recorded call")

    monkeypatch.setattr(sys.modules[__name__], "draw", raising)
    return {p.name: p.read_bytes() for p in directory.iterdir()}


def test_replay_of_a_failure_makes_the_call_that_raised_again(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    before = _run_raising_in_a_call(tmp_path, monkeypatch)
    report = replay(lambda: Run(ask_tool, {"xs": [1]}), tmp_path)
    assert report.matches, report.differences
    assert isinstance(report.replayed.exception, TimeoutError)
    tb = report.replayed.exception.__traceback__
    while tb is not None and tb.tb_next is not None:
        tb = tb.tb_next
    assert tb is not None
    assert tb.tb_frame.f_code.co_name == "tool"
    assert TOOL_CALLS == [1, 1]
    assert {p.name: p.read_bytes() for p in tmp_path.iterdir()} == before


def test_replay_of_a_changed_failed_config_makes_one_missing_call_at_most(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    before = _run_raising_in_a_call(tmp_path, monkeypatch)
    # The program now asks the tool two things the recorded run did not: the first
    # stands for the call that raised, the second is a changed program's.
    report = replay(lambda: Run(ask_tool, {"xs": [2, 3]}), tmp_path)
    assert not report.matches
    assert isinstance(report.replayed.exception, CacheMissError)
    key = call_key(tool)
    assert f'call {key} with arguments {{"args":[3],' in str(report.replayed.exception)
    assert report.differences == (
        "recorded run raised TimeoutError: the tool timed out on 1; the replay raised "
        f"pytest_delphyne.cache.CacheMissError: {report.replayed.exception}",
    )
    assert TOOL_CALLS == [1, 2]
    assert {p.name: p.read_bytes() for p in tmp_path.iterdir()} == before


KILLED_RUN = """
import os, random, sys, time
from pathlib import Path
from pytest_delphyne.runtime import Run, RunOptions, execute

directory, side_file, mode = Path(sys.argv[1]), Path(sys.argv[2]), sys.argv[3]

def work(i):
    with open(side_file, "a") as f:
        f.write(f"{i}\\n")
    if mode == "create" and i == 5:
        time.sleep(60)  # killed here, by the test
    return random.random()

def program(env):
    return [env.compute(work, i) for i in range(10)]

record = execute(lambda: Run(program), RunOptions("c", directory, cache_mode=mode))
print(record.success)
"""


@pytest.mark.timeout(60)
def test_sigkilled_run_keeps_its_entries_and_retry_pays_only_the_rest(
    tmp_path: Path,
) -> None:
    script = tmp_path / "run.py"
    script.write_text(KILLED_RUN)
    directory, side = tmp_path / "configs" / "c", tmp_path / "executions.txt"
    root = str(Path(pytest_delphyne.__file__).parent.parent)
    env = {**os.environ, "PYTHONPATH": root}
    command = [sys.executable, str(script), str(directory), str(side)]
    child = subprocess.Popen([*command, "create"], env=env)
    deadline = time.monotonic() + 30
    while not (side.exists() and "5\n" in side.read_text()):
        assert child.poll() is None, "the run ended before being killed"
        assert time.monotonic() < deadline
        time.sleep(0.01)
    os.kill(child.pid, signal.SIGKILL)
    assert child.wait() == -signal.SIGKILL
    assert side.read_text().split() == [str(i) for i in range(6)]
    cache_text = (directory / layout.CACHE_FILE).read_text()
    recorded = [entry["answer"] for entry in yaml.safe_load(cache_text)]
    assert len(recorded) == 5
    side.write_text("")
    retry = subprocess.run(
        [*command, "read_write"], env=env, capture_output=True, text=True, check=True
    )
    assert retry.stdout == "True\n"
    assert side.read_text().split() == [str(i) for i in range(5, 10)]
    assert (directory / layout.CACHE_FILE).read_text().startswith(cache_text)
    values = read_result(directory).values[0]
    assert values[:5] == recorded
    assert len(set(values)) == 10


def test_replay_of_a_config_that_never_ended_names_its_missing_result(
    tmp_path: Path,
) -> None:
    with pytest.raises(ResultFileError) as info:
        replay(lambda: Run(failing_program), tmp_path)
    assert info.value.missing
    assert info.value.path == tmp_path / layout.RESULT_FILE


@pytest.mark.parametrize(
    ("raw", "browsable"), [(False, False), (True, False), (False, True)]
)
def test_each_trace_is_written_only_when_asked(
    tmp_path: Path, raw: bool, browsable: bool
) -> None:
    run = Run(
        draw_many, {"n": 1}, export_raw_trace=raw, export_browsable_trace=browsable
    )
    execute(lambda: run, _options(tmp_path))
    assert (tmp_path / layout.RAW_TRACE_FILE).exists() == raw
    assert (tmp_path / layout.BROWSABLE_TRACE_FILE).exists() == browsable


def test_replay_runs_under_the_given_then_the_recorded_then_the_directory_name(
    tmp_path: Path,
) -> None:
    directory = tmp_path / "configs" / "d1"
    execute(lambda: Run(draw_many, {"n": 1}), _options(directory))

    def factory() -> Run:
        return Run(draw_many, {"n": 1})

    assert replay(factory, directory, config_name="given").replayed.config_name == (
        "given"
    )
    assert replay(factory, directory).replayed.config_name == "c1"
    result = directory / layout.RESULT_FILE
    result.write_text(result.read_text().replace("config_name: c1\n", ""))
    assert replay(factory, directory).replayed.config_name == "d1"
