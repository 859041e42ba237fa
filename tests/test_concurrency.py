"""Several configs in flight in each process: `--delphyne-concurrency=K` (SPEC §6).

The experiment's programs wait (as programs that wait on a model do) and write down
when they started and ended: the intervals tell how many ran at once in each process.
Each real execution of the paid call appends to `paid.txt`, the experiment's bill.
Every run goes through a subprocess: a program left running in a thread when a
session stops must not outlive the test in this process.
"""

from __future__ import annotations

import os
import pickle
import signal
import subprocess
import sys
import threading
import time
from collections import Counter, defaultdict
from pathlib import Path
from typing import Any, ClassVar

import pytest
import yaml

from pytest_delphyne import OpenAIChatModel, layout
from pytest_delphyne.cache import RequestCache
from pytest_delphyne.concurrency import CONCURRENCY_MESSAGE, WORKSTEAL_MESSAGE
from pytest_delphyne.environment import Environment
from pytest_delphyne.recorder import STATE_SAVED_MESSAGE

EXPERIMENT = """
from __future__ import annotations

import os
import time
from dataclasses import dataclass
from pathlib import Path

from pytest_delphyne import Experiment, Outcome, Run, WorkersSetup

HERE = Path(__file__).parent
DELAY = {delay}
FAILING = {failing}
BLOCKING = {blocking}
PRICE = {price}


def note(file, line):
    with (HERE / file).open("a") as handle:
        handle.write(line + "\\n")


def paid_call(x):
    note("paid.txt", f"x{{x}}")
    if x in BLOCKING:
        time.sleep(3600)
    time.sleep(DELAY)
    return x * x


def program(env, x):
    start = time.monotonic()
    note("started.txt", f"x{{x}}")
    if PRICE:
        env.spend(price=PRICE)
    if x in FAILING:
        raise ValueError(f"config {{x}} failed on purpose")
    value = env.compute(paid_call, x)
    note("intervals.txt", f"x{{x}} {{os.getpid()}} {{start}} {{time.monotonic()}}")
    return Outcome(success=True, values=[value])


def per_worker(value):
    note("per_worker.txt", str(os.getpid()))


@dataclass
class Config:
    x: int

    def instantiate(self, context):
        return Run(program=program, args={{"x": self.x}})


experiment = Experiment(
    config_class=Config,
    output_dir="out",
    configs=[Config(x) for x in range({configs})],
    config_naming=lambda config, uuid: f"x{{config.x}}",
    workers_setup=WorkersSetup(common=lambda: None, per_worker=per_worker),
)

if __name__ == "__main__":
    experiment.run_cli()
"""


def experiment_source(
    configs: int = 8,
    *,
    delay: float = 0.3,
    failing: frozenset[int] = frozenset(),
    blocking: frozenset[int] = frozenset(),
    price: float = 0.0,
) -> str:
    return EXPERIMENT.format(
        configs=configs,
        delay=delay,
        failing=set(failing) or "set()",
        blocking=set(blocking) or "set()",
        price=price,
    )


def lines(directory: Path, name: str) -> list[str]:
    path = directory / name
    return path.read_text().splitlines() if path.exists() else []


def most_at_once(directory: Path) -> dict[str, int]:
    """For each process, the most programs that ran at the same time."""
    events: dict[str, list[tuple[float, int]]] = defaultdict(list)
    for line in lines(directory, "intervals.txt"):
        _, pid, start, end = line.split()
        events[pid] += [(float(start), 1), (float(end), -1)]
    most: dict[str, int] = {}
    for pid, changes in events.items():
        running = peak = 0
        # An end sorts before a start at the same instant: those did not overlap.
        for _, change in sorted(changes):
            running += change
            peak = max(peak, running)
        most[pid] = peak
    return most


def state_configs(out: Path) -> dict[str, dict[str, Any]]:
    configs: dict[str, dict[str, Any]] = yaml.safe_load(
        (out / layout.STATE_FILE).read_text()
    )["configs"]
    return configs


def statuses(out: Path) -> dict[str, str]:
    return {name: info["status"] for name, info in state_configs(out).items()}


def pytest_command(*args: str) -> list[str]:
    return [sys.executable, "-m", "pytest", "--delphyne-exp=exp.py", *args]


def run(directory: Path, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        pytest_command(*args),
        cwd=directory,
        capture_output=True,
        text=True,
        timeout=240,
    )


WORKERS = pytest.mark.parametrize(
    "workers", [[], ["-n", "2"]], ids=["no-workers", "xdist"]
)


@WORKERS
def test_configs_run_concurrency_at_once_in_each_process(
    pytester: pytest.Pytester, workers: list[str]
) -> None:
    pytester.makepyfile(exp=experiment_source(configs=16))
    result = run(pytester.path, *workers, "--delphyne-concurrency=4", "-v")
    assert result.returncode == 0, result.stdout + result.stderr
    most = most_at_once(pytester.path)
    assert set(most.values()) == {4}, most
    assert len(most) == (2 if workers else 1)
    assert statuses(pytester.path / "out") == {f"x{x}": "done" for x in range(16)}
    assert sorted(lines(pytester.path, "paid.txt")) == sorted(
        f"x{x}" for x in range(16)
    )
    # `per_worker` once in each process that runs configs.
    assert len(lines(pytester.path, "per_worker.txt")) == len(most)
    for x in range(16):
        result_file = pytester.path / "out" / "configs" / f"x{x}" / layout.RESULT_FILE
        outcome = yaml.safe_load(result_file.read_text())["outcome"]["result"]
        assert outcome["success"] is True
        assert outcome["values"] == [x * x]


def test_items_are_reported_in_order_one_at_a_time(pytester: pytest.Pytester) -> None:
    pytester.makepyfile(exp=experiment_source(configs=8))
    result = run(pytester.path, "--delphyne-concurrency=8", "-v")
    assert result.returncode == 0, result.stdout
    reported = [
        line.split("[")[1].split("]")[0]
        for line in result.stdout.splitlines()
        if line.startswith("exp.py::experiment[") and "PASSED" in line
    ]
    assert reported == [f"x{x}" for x in range(8)]
    assert most_at_once(pytester.path) == {next(iter(most_at_once(pytester.path))): 8}


def test_without_the_option_one_config_runs_at_a_time(
    pytester: pytest.Pytester,
) -> None:
    pytester.makepyfile(exp=experiment_source(configs=4, delay=0.1))
    result = run(pytester.path)
    assert result.returncode == 0, result.stdout
    assert set(most_at_once(pytester.path).values()) == {1}


@WORKERS
def test_failed_config_reports_its_own_traceback_in_its_turn(
    pytester: pytest.Pytester, workers: list[str]
) -> None:
    pytester.makepyfile(exp=experiment_source(configs=8, failing=frozenset({3})))
    result = run(pytester.path, *workers, "--delphyne-concurrency=4")
    assert result.returncode == 1, result.stdout
    assert "1 failed, 7 passed" in result.stdout
    assert 'raise ValueError(f"config {x} failed on purpose")' in result.stdout
    assert "ValueError: config 3 failed on purpose" in result.stdout
    failure = result.stdout.split("FAILURES")[1].split("short test summary")[0]
    # The program's frames only: none of the plugin's, nor of the thread it ran in.
    assert "pytest_delphyne/" not in failure
    assert "threading.py" not in failure
    out = pytester.path / "out"
    assert statuses(out) == {f"x{x}": "failed" if x == 3 else "done" for x in range(8)}
    exception = (out / "configs" / "x3" / layout.EXCEPTION_FILE).read_text()
    assert exception.rstrip().endswith("ValueError: config 3 failed on purpose")
    assert sorted(lines(pytester.path, "paid.txt")) == sorted(
        f"x{x}" for x in range(8) if x != 3
    )


def test_exitfirst_leaves_configs_in_flight_todo_with_their_interruption_time(
    pytester: pytest.Pytester,
) -> None:
    # x0 to x3 start together; x1 fails at once, x2 and x3 never end. x1's turn
    # comes once x0 ends, and it starts x4 (four configs not yet reported), which is
    # still waiting when x1's failure stops the session.
    pytester.makepyfile(
        exp=experiment_source(
            configs=8, delay=0.5, failing=frozenset({1}), blocking=frozenset({2, 3})
        )
    )
    result = run(pytester.path, "--delphyne-concurrency=4", "-x")
    assert result.returncode == 1, result.stdout
    assert "1 failed, 1 passed" in result.stdout
    configs = state_configs(pytester.path / "out")
    assert {name: info["status"] for name, info in configs.items()} == {
        "x0": "done",
        "x1": "failed",
        **{f"x{x}": "todo" for x in range(2, 8)},
    }
    interrupted = {name for name, info in configs.items() if info["interruption_time"]}
    assert interrupted == {"x2", "x3", "x4"}
    assert configs["x2"]["start_time"] is not None
    assert configs["x5"]["start_time"] is None
    # Started once each, and nothing after x4; x4's thread may not have reached its
    # program when the session stopped.
    started = Counter(lines(pytester.path, "started.txt"))
    assert set(started) - {"x4"} == {"x0", "x1", "x2", "x3"}
    assert set(started.values()) == {1}
    paid = Counter(lines(pytester.path, "paid.txt"))
    assert set(paid) - {"x4"} == {"x0", "x2", "x3"}
    assert set(paid.values()) == {1}


@WORKERS
def test_configs_done_or_failed_earlier_are_not_started_ahead(
    pytester: pytest.Pytester, workers: list[str]
) -> None:
    # x0 and x2 done, x1 failed, by a first session; the second runs x3 to x5.
    pytester.makepyfile(exp=experiment_source(configs=6, failing=frozenset({1})))
    first = run(pytester.path, "-k", "x0 or x1 or x2")
    assert first.returncode == 1, first.stdout
    result = run(pytester.path, "--delphyne-concurrency=3", *workers)
    assert result.returncode == 1, result.stdout  # x1's stored failure
    assert statuses(pytester.path / "out") == {
        **{f"x{x}": "done" for x in range(6)},
        "x1": "failed",
    }
    # Not a program more than the configs to run: the others only report.
    assert Counter(lines(pytester.path, "started.txt")) == {
        f"x{x}": 1 for x in range(6)
    }
    assert Counter(lines(pytester.path, "paid.txt")) == {
        f"x{x}": 1 for x in range(6) if x != 1
    }


def test_configs_whose_worker_setup_failed_are_not_started_ahead(
    pytester: pytest.Pytester,
) -> None:
    # exp.py's configs run; b.py's worker setup fails, so its configs (x10 to x13)
    # fail in their turn. The configs exp.py's turns start ahead must skip them.
    source = experiment_source(configs=4)
    pytester.makepyfile(exp=source)
    setup = 'note("per_worker.txt", str(os.getpid()))'
    assert setup in source
    assert "range(4)" in source
    failing_setup = source.replace(setup, 'raise RuntimeError("no GPU for b")')
    pytester.makepyfile(
        b=failing_setup.replace("range(4)", "range(10, 14)").replace(
            'output_dir="out"', 'output_dir="out_b"'
        )
    )
    result = subprocess.run(
        pytest_command("--delphyne-exp=b.py", "--delphyne-concurrency=3"),
        cwd=pytester.path,
        capture_output=True,
        text=True,
        timeout=240,
    )
    assert result.returncode == 1, result.stdout
    assert "4 failed, 4 passed" in result.stdout, result.stdout
    assert "no GPU for b" in result.stdout
    assert set(statuses(pytester.path / "out_b").values()) == {"failed"}
    # No program of b.py ran, nor was paid for.
    assert Counter(lines(pytester.path, "started.txt")) == {
        f"x{x}": 1 for x in range(4)
    }
    assert Counter(lines(pytester.path, "paid.txt")) == {f"x{x}": 1 for x in range(4)}


def takes_ctrl_c() -> None:
    # A background job's children start with SIGINT ignored (see tests/faults).
    signal.signal(signal.SIGINT, signal.SIG_DFL)


@pytest.mark.parametrize("workers", [[], ["-n", "1"]], ids=["no-workers", "xdist"])
def test_ctrl_c_leaves_every_config_in_flight_todo_with_its_interruption_time(
    pytester: pytest.Pytester, workers: list[str]
) -> None:
    blocking = frozenset({1, 2, 3})
    pytester.makepyfile(exp=experiment_source(configs=8, blocking=blocking))
    process = subprocess.Popen(
        pytest_command(*workers, "--delphyne-concurrency=4", "-p", "no:cacheprovider"),
        cwd=pytester.path,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        start_new_session=True,
        preexec_fn=takes_ctrl_c,
    )
    try:
        deadline = time.monotonic() + 120
        while len(lines(pytester.path, "paid.txt")) < 5:
            assert process.poll() is None, process.communicate()[0]
            assert time.monotonic() < deadline
            time.sleep(0.05)
        # x0 done and x4 in flight: x1, x2, x3 block, so x4 starts as x0 ends.
        os.killpg(process.pid, signal.SIGINT)
        output, _ = process.communicate(timeout=120)
    finally:
        if process.poll() is None:
            os.killpg(process.pid, signal.SIGKILL)
            process.wait()
    out = pytester.path / "out"
    # Shown relative to where the command ran, as every path of the terminal summary.
    shown = (out / layout.STATE_FILE).relative_to(pytester.path)
    assert STATE_SAVED_MESSAGE.format(path=shown) in output
    configs = state_configs(out)
    assert configs["x0"]["status"] == "done"
    assert {name for name, info in configs.items() if info["status"] == "todo"} == {
        f"x{x}" for x in range(1, 8)
    }
    started = set(lines(pytester.path, "started.txt"))
    interrupted = {name for name, info in configs.items() if info["interruption_time"]}
    assert {"x1", "x2", "x3", "x4"} <= started
    assert interrupted == started - {"x0"}
    assert all(
        count == 1 for count in Counter(lines(pytester.path, "paid.txt")).values()
    )


def test_spend_cap_counts_what_configs_in_flight_paid(
    pytester: pytest.Pytester,
) -> None:
    # Each config pays 1.0 as it starts, then waits. x0 and x1 start together; once
    # x0 ends, the session paid 1.0 and x1 in flight another 1.0: 2.0 reaches the cap
    # of 1.5, so x2 does not start.
    pytester.makepyfile(exp=experiment_source(configs=6, delay=0.5, price=1.0))
    result = run(
        pytester.path, "--delphyne-concurrency=2", "--delphyne-max-price=1.5", "-rs"
    )
    # The cap stops the session once the results that reached it are recorded.
    assert result.returncode == pytest.ExitCode.INTERRUPTED, result.stdout
    assert "Interrupted: delphyne: session spend cap of 1.5 reached" in result.stdout
    assert "2 passed" in result.stdout
    assert statuses(pytester.path / "out") == {
        "x0": "done",
        "x1": "done",
        **{f"x{x}": "todo" for x in range(2, 6)},
    }
    assert sorted(lines(pytester.path, "started.txt")) == ["x0", "x1"]
    assert (
        "0 output tokens, price 2.0000" in result.stdout.split("paid this session")[1]
    )


def test_replay_runs_one_config_at_a_time(pytester: pytest.Pytester) -> None:
    pytester.makepyfile(exp=experiment_source(configs=4, delay=0.2))
    assert run(pytester.path, "--delphyne-concurrency=4").returncode == 0
    (pytester.path / "intervals.txt").unlink()
    result = run(pytester.path, "--delphyne-concurrency=4", "--delphyne-replay")
    assert result.returncode == 0, result.stdout
    assert "4 passed" in result.stdout
    assert set(most_at_once(pytester.path).values()) == {1}
    assert len(lines(pytester.path, "paid.txt")) == 4


def test_cli_run_concurrency(pytester: pytest.Pytester) -> None:
    pytester.makepyfile(exp=experiment_source(configs=6))
    result = subprocess.run(
        [sys.executable, "exp.py", "run", "--concurrency", "3"],
        cwd=pytester.path,
        capture_output=True,
        text=True,
        timeout=240,
    )
    assert result.returncode == 0, result.stdout + result.stderr
    assert set(most_at_once(pytester.path).values()) == {3}
    assert set(statuses(pytester.path / "out").values()) == {"done"}


@pytest.mark.parametrize("value", ["0", "-2"])
def test_concurrency_below_one_is_refused(
    pytester: pytest.Pytester, value: str
) -> None:
    pytester.makepyfile(exp=experiment_source(configs=2))
    result = pytester.runpytest(
        "--delphyne-exp=exp.py", f"--delphyne-concurrency={value}"
    )
    assert result.ret == pytest.ExitCode.USAGE_ERROR
    result.stderr.fnmatch_lines([f"*{CONCURRENCY_MESSAGE.format(value=int(value))}*"])
    assert not (pytester.path / "out" / layout.STATE_FILE).exists()


def test_concurrency_from_the_ini_file(pytester: pytest.Pytester) -> None:
    pytester.makepyfile(exp=experiment_source(configs=6))
    pytester.makeini("[pytest]\ndelphyne_concurrency = 3\n")
    result = run(pytester.path)
    assert result.returncode == 0, result.stdout
    assert set(most_at_once(pytester.path).values()) == {3}


def test_ini_concurrency_that_is_not_a_number_is_refused(
    pytester: pytest.Pytester,
) -> None:
    pytester.makepyfile(exp=experiment_source(configs=2))
    pytester.makeini("[pytest]\ndelphyne_concurrency = many\n")
    result = pytester.runpytest("--delphyne-exp=exp.py")
    assert result.ret == pytest.ExitCode.USAGE_ERROR
    result.stderr.fnmatch_lines(["*delphyne_concurrency*'many'*"])


class _SlowClient:
    """Stands for `openai.OpenAI`: slow to build, as a real client is."""

    made: ClassVar[list[_SlowClient]] = []

    def __init__(self, **options: Any) -> None:
        time.sleep(0.05)
        self.made.append(self)
        self.chat = self
        self.completions = self

    def create(self, **request: Any) -> _SlowClient:
        return self

    def model_dump(self, **options: Any) -> dict[str, Any]:
        usage = {"prompt_tokens": 3, "completion_tokens": 1}
        return {"choices": [{"message": {"content": "4"}}], "usage": usage}


def test_configs_in_flight_share_one_client_per_model(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    openai = pytest.importorskip("openai")
    monkeypatch.setattr(openai, "OpenAI", _SlowClient)
    model = OpenAIChatModel("gpt-4o-mini", api_key="not-a-key")
    answers: list[str] = []

    def ask(x: int) -> None:
        env = Environment(f"x{x}", RequestCache(None, "off"))
        answers.append(model.chat(env, [{"role": "user", "content": "2+2?"}]).text)

    threads = [threading.Thread(target=ask, args=(x,)) for x in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert answers == ["4"] * 8
    assert len(_SlowClient.made) == 1
    # Sent to a worker, the model opens a client of its own there.
    copy = pickle.loads(pickle.dumps(model))
    copy.chat(Environment("x", RequestCache(None, "off")), [{"role": "user"}])
    assert len(_SlowClient.made) == 2


def test_resume_with_concurrency(pytester: pytest.Pytester) -> None:
    pytester.makepyfile(exp=experiment_source(configs=6))
    pytester.makepyfile(
        launch="import exp\nraise SystemExit(exp.experiment.resume(concurrency=3))\n"
    )
    result = subprocess.run(
        [sys.executable, "launch.py"],
        cwd=pytester.path,
        capture_output=True,
        text=True,
        timeout=240,
    )
    assert result.returncode == 0, result.stdout + result.stderr
    assert set(most_at_once(pytester.path).values()) == {3}
    assert set(statuses(pytester.path / "out").values()) == {"done"}


def test_work_stealing_is_refused_with_configs_in_flight(
    pytester: pytest.Pytester,
) -> None:
    pytester.makepyfile(exp=experiment_source(configs=4))
    result = pytester.runpytest_subprocess(
        "--delphyne-exp=exp.py",
        "-n",
        "2",
        "--dist=worksteal",
        "--delphyne-concurrency=2",
    )
    assert result.ret == pytest.ExitCode.USAGE_ERROR
    result.stderr.fnmatch_lines([f"*{WORKSTEAL_MESSAGE.format(value=2)}*"])
    assert not (pytester.path / "paid.txt").exists()
