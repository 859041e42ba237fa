"""The plugin's options beyond selection: reusing a failed attempt's cache, several
experiments in one session, and the overrides of an experiment's settings (SPEC §4,
§5; README, "Turning things off")."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import pytest
import yaml

from pytest_delphyne import layout

# A config records a call (appending `<tag>:<x>` to calls.txt), logs a debug and an
# info message, and fails after its call when it is a failing one and the program is
# not fixed yet.
EXPERIMENT = """
from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

from pytest_delphyne import Experiment, Outcome, Run

CALLS = Path(__file__).parent / "calls.txt"


def square(tag, x):
    with CALLS.open("a") as calls:
        calls.write(f"{tag}:{x}\\n")
    return x * x


def program(env, tag, x, fail):
    env.log("about to square", level="debug", x=x)
    value = env.compute(square, tag, x)
    env.log("squared", value=value)
    env.spend(price=0.5, num_requests=1)
    if fail and not os.environ.get("EXPERIMENT_FIXED"):
        raise ValueError(f"config {x} broke")
    return Outcome(success=True, values=[value])


@dataclass
class Config:
    tag: str
    x: int
    fail: bool = False

    def instantiate(self, context):
        return Run(
            program=program, args={"tag": self.tag, "x": self.x, "fail": self.fail}
        )


def experiment_of(tag, xs, failing=(), **settings):
    return Experiment(
        config_class=Config,
        output_dir=f"out_{tag}",
        configs=[Config(tag, x) for x in xs] + [Config(tag, x, True) for x in failing],
        config_naming=lambda config, uuid: f"x{config.x}",
        **settings,
    )
"""


def write_file(
    pytester: pytest.Pytester, name: str, experiments: dict[str, str]
) -> Path:
    """`name`.py with the template and one `attr = experiment_of(...)` per entry."""
    lines = [f"{attr} = experiment_of({call})" for attr, call in experiments.items()]
    return pytester.makepyfile(**{name: EXPERIMENT + "\n" + "\n".join(lines) + "\n"})


def read_state(pytester: pytest.Pytester, tag: str) -> dict[str, Any]:
    path = pytester.path / f"out_{tag}" / layout.STATE_FILE
    state: dict[str, Any] = yaml.safe_load(path.read_text())
    return state


def statuses(pytester: pytest.Pytester, tag: str) -> dict[str, str]:
    configs = read_state(pytester, tag)["configs"]
    return {name: info["status"] for name, info in configs.items()}


def calls(pytester: pytest.Pytester) -> list[str]:
    path = pytester.path / "calls.txt"
    return path.read_text().split() if path.exists() else []


def config_dir(pytester: pytest.Pytester, tag: str, name: str) -> Path:
    return layout.config_dir(pytester.path / f"out_{tag}", name)


def config_files(pytester: pytest.Pytester, tag: str, name: str) -> set[str]:
    return {path.name for path in config_dir(pytester, tag, name).iterdir()}


# --delphyne-reuse-cache


@pytest.fixture
def failed_after_a_call(pytester: pytest.Pytester) -> pytest.Pytester:
    """x1 done; x3 failed after its call to `square` was recorded."""
    write_file(pytester, "exp", {"experiment": "'e', [1], [3]"})
    result = pytester.runpytest("--delphyne-exp=exp.py")
    result.assert_outcomes(passed=1, failed=1)
    assert sorted(calls(pytester)) == ["e:1", "e:3"]
    assert layout.CACHE_FILE in config_files(pytester, "e", "x3")
    return pytester


@pytest.mark.parametrize("workers", [[], ["-n", "2"]], ids=["no-xdist", "xdist"])
def test_retry_with_reuse_cache_replays_the_call_the_failed_attempt_paid_for(
    failed_after_a_call: pytest.Pytester,
    monkeypatch: pytest.MonkeyPatch,
    workers: list[str],
) -> None:
    pytester = failed_after_a_call
    monkeypatch.setenv("EXPERIMENT_FIXED", "1")
    result = pytester.runpytest_subprocess(
        "--delphyne-exp=exp.py", "--lf", "--delphyne-reuse-cache", *workers
    )
    result.assert_outcomes(passed=1, deselected=0 if workers else 1)
    # The call x3 made before failing is not made again.
    assert sorted(calls(pytester)) == ["e:1", "e:3"]
    assert statuses(pytester, "e") == {"x1": "done", "x3": "done"}
    recorded = yaml.safe_load(
        (config_dir(pytester, "e", "x3") / layout.RESULT_FILE).read_text()
    )
    assert recorded["outcome"]["result"]["values"] == [9]
    # The reused cache still replays: the retried config's record is complete.
    replay = pytester.runpytest("--delphyne-exp=exp.py", "--delphyne-replay")
    replay.assert_outcomes(passed=2)
    assert sorted(calls(pytester)) == ["e:1", "e:3"]


# The template, with a call that says when its answer was replayed, so that its price
# counts as spent but not paid.
REPLAY_AWARE_EXPERIMENT = EXPERIMENT.replace(
    "value = env.compute(square, tag, x)",
    "call = env.cached_call('square', [tag, x], lambda: square(tag, x))\n"
    "    value = call.value",
).replace(
    "env.spend(price=0.5, num_requests=1)",
    "env.spend(price=0.5, num_requests=1, replayed=call.hit)",
)


@pytest.mark.parametrize("workers", [[], ["-n", "2"]], ids=["no-xdist", "xdist"])
def test_totals_after_a_retry_with_reuse_cache_count_the_replayed_part(
    pytester: pytest.Pytester, monkeypatch: pytest.MonkeyPatch, workers: list[str]
) -> None:
    experiment = "experiment = experiment_of('e', [1], [3])\n"
    pytester.makepyfile(exp=REPLAY_AWARE_EXPERIMENT + experiment)
    pytester.runpytest("--delphyne-exp=exp.py").assert_outcomes(passed=1, failed=1)
    monkeypatch.setenv("EXPERIMENT_FIXED", "1")
    result = pytester.runpytest_subprocess(
        "--delphyne-exp=exp.py", "--lf", "--delphyne-reuse-cache", *workers
    )
    result.assert_outcomes(passed=1, deselected=0 if workers else 1)
    assert sorted(calls(pytester)) == ["e:1", "e:3"]
    # x3's retry paid nothing: its call was replayed. What it spent, the failed
    # attempt's price, is recorded in its result and counts in the totals.
    result.stdout.fnmatch_lines(
        [
            "*paid this session: 0 requests*price 0.0000",
            "*recorded in total: 2 requests*price 1.0000",
        ]
    )
    summary = (pytester.path / "out_e" / layout.SUMMARY_FILE).read_text()
    assert summary.splitlines() == [
        "tag,x,fail,success,num_completions,num_requests,input_tokens,"
        "cached_input_tokens,output_tokens,price,config_name",
        "e,1,False,True,0,1,0,0,0,0.5,x1",
        "e,3,True,True,0,1,0,0,0,0.5,x3",
    ]


def test_lf_reruns_the_failures_of_an_experiment_pytest_cache_does_not_list(
    pytester: pytest.Pytester, monkeypatch: pytest.MonkeyPatch
) -> None:
    write_file(pytester, "exp", {"experiment": "'e', [1], [3]"})
    write_file(pytester, "other", {"experiment": "'o', [1], [5]"})
    both = ("--delphyne-exp=exp.py", "--delphyne-exp=other.py")
    pytester.runpytest(*both).assert_outcomes(passed=2, failed=2)
    # pytest's cache remembers only exp.py's failure (other.py's run elsewhere, say):
    # the state still knows that other.py's x5 failed.
    lastfailed = pytester.path / ".pytest_cache/v/cache/lastfailed"
    lastfailed.write_text('{"exp.py::experiment[x3]": true}')
    monkeypatch.setenv("EXPERIMENT_FIXED", "1")
    result = pytester.runpytest(*both, "--lf")
    result.assert_outcomes(passed=2, deselected=2)
    assert sorted(calls(pytester)) == ["e:1", "e:3", "e:3", "o:1", "o:5", "o:5"]
    assert statuses(pytester, "e") == {"x1": "done", "x3": "done"}
    assert statuses(pytester, "o") == {"x1": "done", "x5": "done"}


def test_retry_without_reuse_cache_makes_the_call_again(
    failed_after_a_call: pytest.Pytester, monkeypatch: pytest.MonkeyPatch
) -> None:
    pytester = failed_after_a_call
    monkeypatch.setenv("EXPERIMENT_FIXED", "1")
    result = pytester.runpytest("--delphyne-exp=exp.py", "--lf")
    result.assert_outcomes(passed=1, deselected=1)
    assert sorted(calls(pytester)) == ["e:1", "e:3", "e:3"]
    assert statuses(pytester, "e") == {"x1": "done", "x3": "done"}


# Several --delphyne-exp options


def literal(text: str) -> str:
    """`text` as an fnmatch pattern matching itself (item ids hold brackets)."""
    return re.sub(r"([\[\]])", r"[\1]", text)


@pytest.mark.parametrize("workers", [[], ["-n", "2"]], ids=["no-xdist", "xdist"])
def test_several_experiments_run_in_one_session_each_with_its_own_state(
    pytester: pytest.Pytester, workers: list[str]
) -> None:
    # Each experiment has a config named x1: the ids differ by file and attribute.
    write_file(pytester, "exp", {"first": "'first', [1, 2]", "second": "'second', [1]"})
    write_file(pytester, "other", {"experiment": "'other', [1, 3]"})
    result = pytester.runpytest_subprocess(
        "--delphyne-exp=exp.py::first",
        "--delphyne-exp=exp.py::second",
        "--delphyne-exp=other.py",
        "-rA",
        *workers,
    )
    result.assert_outcomes(passed=5)
    ids = [
        line.removeprefix("PASSED ")
        for line in result.outlines
        if line.startswith("PASSED ")
    ]
    assert sorted(ids) == [
        "exp.py::first[x1]",
        "exp.py::first[x2]",
        "exp.py::second[x1]",
        "other.py::experiment[x1]",
        "other.py::experiment[x3]",
    ]
    assert sorted(calls(pytester)) == [
        "first:1",
        "first:2",
        "other:1",
        "other:3",
        "second:1",
    ]
    assert statuses(pytester, "first") == {"x1": "done", "x2": "done"}
    assert statuses(pytester, "second") == {"x1": "done"}
    assert statuses(pytester, "other") == {"x1": "done", "x3": "done"}
    # Each state holds its own experiment's params, and each result its own value.
    assert read_state(pytester, "second")["configs"]["x1"]["params"]["tag"] == "second"
    recorded = yaml.safe_load(
        (config_dir(pytester, "other", "x3") / layout.RESULT_FILE).read_text()
    )
    assert recorded["outcome"]["result"]["values"] == [9]
    for tag in ("first", "second", "other"):
        result.stdout.fnmatch_lines([f"*summary: out_{tag}/{layout.SUMMARY_FILE}"])
    # A rerun finds every config of each experiment done.
    again = pytester.runpytest(
        "--delphyne-exp=exp.py::first",
        "--delphyne-exp=exp.py::second",
        "--delphyne-exp=other.py",
    )
    again.assert_outcomes(skipped=5)
    assert len(calls(pytester)) == 5


# Overrides of the experiment's settings


def run_with_and_without(
    pytester: pytest.Pytester, settings: str, *options: str
) -> None:
    """x1 run with the experiment's own settings, then x2 with `options` too."""
    write_file(pytester, "exp", {"experiment": f"'e', [1], {settings}"})
    pytester.runpytest("--delphyne-exp=exp.py").assert_outcomes(passed=1)
    write_file(pytester, "exp", {"experiment": f"'e', [1, 2], {settings}"})
    result = pytester.runpytest("--delphyne-exp=exp.py", *options)
    result.assert_outcomes(passed=1, skipped=1)
    assert statuses(pytester, "e") == {"x1": "done", "x2": "done"}


@pytest.mark.parametrize(
    ("option", "settings", "file"),
    [
        ("--delphyne-no-cache", "", layout.CACHE_FILE),
        ("--delphyne-cache", "cache_requests=False", layout.CACHE_FILE),
        ("--delphyne-no-log", "", layout.LOG_FILE),
        ("--delphyne-log", "export_log=False", layout.LOG_FILE),
        ("--delphyne-raw-trace", "", layout.RAW_TRACE_FILE),
        ("--delphyne-no-raw-trace", "export_raw_trace=True", layout.RAW_TRACE_FILE),
        ("--delphyne-browsable-trace", "", layout.BROWSABLE_TRACE_FILE),
        (
            "--delphyne-no-browsable-trace",
            "export_browsable_trace=True",
            layout.BROWSABLE_TRACE_FILE,
        ),
    ],
)
def test_option_overrides_whether_the_experiment_writes_a_file(
    pytester: pytest.Pytester, option: str, settings: str, file: str
) -> None:
    run_with_and_without(pytester, settings, option)
    written_by_default = file in config_files(pytester, "e", "x1")
    written_with_option = file in config_files(pytester, "e", "x2")
    assert written_with_option is not option.startswith("--delphyne-no-")
    assert written_by_default is not written_with_option
    # Whatever else the option turns off, the result is always written.
    assert layout.RESULT_FILE in config_files(pytester, "e", "x2")


def test_overrides_reach_xdist_workers(pytester: pytest.Pytester) -> None:
    write_file(pytester, "exp", {"experiment": "'e', [1, 2], log_level='warn'"})
    result = pytester.runpytest_subprocess(
        "--delphyne-exp=exp.py",
        "-n",
        "2",
        "--delphyne-no-cache",
        "--delphyne-raw-trace",
        "--delphyne-browsable-trace",
        "--delphyne-log-level=debug",
    )
    result.assert_outcomes(passed=2)
    for name in ("x1", "x2"):
        assert config_files(pytester, "e", name) == {
            layout.RESULT_FILE,
            layout.LOG_FILE,
            layout.RAW_TRACE_FILE,
            layout.BROWSABLE_TRACE_FILE,
        }
        log = (config_dir(pytester, "e", name) / layout.LOG_FILE).read_text()
        assert "about to square" in log


@pytest.mark.parametrize(
    ("option", "settings", "debug_kept"),
    [
        ("--delphyne-log-level=debug", "", True),
        ("--delphyne-log-level=info", "log_level='debug'", False),
    ],
)
def test_log_level_option_overrides_the_experiments_level(
    pytester: pytest.Pytester, option: str, settings: str, debug_kept: bool
) -> None:
    run_with_and_without(pytester, settings, option)
    default_log = (config_dir(pytester, "e", "x1") / layout.LOG_FILE).read_text()
    option_log = (config_dir(pytester, "e", "x2") / layout.LOG_FILE).read_text()
    assert "squared" in default_log
    assert "squared" in option_log
    assert ("about to square" in default_log) is not debug_kept
    assert ("about to square" in option_log) is debug_kept
    assert ("DEBUG" in option_log) is debug_kept


def test_unknown_log_level_is_a_usage_error(pytester: pytest.Pytester) -> None:
    write_file(pytester, "exp", {"experiment": "'e', [1]"})
    result = pytester.runpytest_subprocess(
        "--delphyne-exp=exp.py", "--delphyne-log-level=loud"
    )
    assert result.ret == pytest.ExitCode.USAGE_ERROR
    result.stderr.fnmatch_lines(["*--delphyne-log-level*invalid choice*'loud'*"])
    assert calls(pytester) == []
