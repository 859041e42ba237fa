"""Ctrl-C, as a terminal sends it: SIGINT to pytest's whole process group."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
import xml.etree.ElementTree as ET
from pathlib import Path
from typing import Any

import pytest
import yaml

from pytest_delphyne import layout
from pytest_delphyne.recorder import STATE_SAVED_MESSAGE

# x=1 finishes at once; x=2 and x=3 announce themselves, then block until killed.
EXPERIMENT = """
from __future__ import annotations

import os
import time
from dataclasses import dataclass
from pathlib import Path

from pytest_delphyne import Experiment, Outcome, Run

HERE = Path(__file__).parent


def program(env, x):
    if x > 1:
        (HERE / f"started-{x}").write_text(str(os.getpid()))
        time.sleep(600)
    return Outcome(success=True, values=[x])


@dataclass
class Config:
    x: int

    def instantiate(self, context):
        return Run(program=program, args={"x": self.x})


experiment = Experiment(
    config_class=Config,
    output_dir="out",
    configs=[Config(1), Config(2), Config(3), Config(4)],
    config_naming=lambda config, uuid: f"x{config.x}",
)
"""


def wait_for(predicate: Any, timeout: float = 60.0) -> None:
    deadline = time.monotonic() + timeout
    while not predicate():
        if time.monotonic() > deadline:
            raise TimeoutError("the run never reached the expected point")
        time.sleep(0.05)


def start_run(
    directory: Path, *args: str, output: int = subprocess.DEVNULL
) -> subprocess.Popen[str]:
    """`pytest --delphyne-exp=exp.py` in a process group of its own, as a terminal
    starts it: a terminal's Ctrl-C reaches every process of the foreground group."""
    return subprocess.Popen(
        [sys.executable, "-m", "pytest", "--delphyne-exp=exp.py", *args],
        cwd=directory,
        stdout=output,
        stderr=subprocess.STDOUT,
        text=True,
        start_new_session=True,
        # A shell's background job (a CI runner's) would pass on SIGINT ignored.
        preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL),
    )


def process_exists(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    # A zombie left for its parent to reap is gone in every way that matters here.
    stat = Path(f"/proc/{pid}/stat")
    return stat.exists() and stat.read_text().split(")")[-1].split()[0] != "Z"


# On the controller: a second Ctrl-C comes while xdist waits for its workers to end,
# before the recorder saves the state.
SECOND_CTRL_C_IN_TEARDOWN = """
import os
import signal

import pytest

CONFIG = []


def pytest_configure(config):
    CONFIG.append(config)


def pytest_keyboard_interrupt(excinfo):
    dsession = CONFIG[0].pluginmanager.get_plugin("dsession")
    if dsession is None:
        return
    teardown = dsession.nodemanager.teardown_nodes

    def teardown_nodes():
        os.kill(os.getpid(), signal.SIGINT)
        teardown()

    dsession.nodemanager.teardown_nodes = teardown_nodes
"""


@pytest.mark.parametrize(
    ("workers", "running", "conftest"),
    [
        ([], ["x2"], None),
        (["-n", "2"], ["x2", "x3"], None),
        (["-n", "2"], ["x2", "x3"], SECOND_CTRL_C_IN_TEARDOWN),
    ],
    ids=["no-xdist", "xdist", "xdist-second-ctrl-c-in-teardown"],
)
def test_ctrl_c_leaves_running_configs_todo_with_their_interruption_time(
    pytester: pytest.Pytester,
    workers: list[str],
    running: list[str],
    conftest: str | None,
) -> None:
    pytester.makepyfile(exp=EXPERIMENT)
    if conftest is not None:
        pytester.makeconftest(conftest)
    process = start_run(
        pytester.path, "-p", "no:cacheprovider", *workers, output=subprocess.PIPE
    )
    started = [pytester.path / f"started-{name[1:]}" for name in running]
    wait_for(lambda: all(path.exists() and path.read_text() for path in started))
    program_pids = [int(path.read_text()) for path in started]
    os.killpg(process.pid, signal.SIGINT)
    output, _ = process.communicate(timeout=120)

    state_path = pytester.path / "out" / layout.STATE_FILE
    saved = STATE_SAVED_MESSAGE.format(path=state_path.relative_to(pytester.path))
    assert output.count(saved) == 1, output
    assert "INTERNALERROR" not in output, output
    configs = yaml.safe_load(state_path.read_text())["configs"]
    assert configs["x1"]["status"] == "done"
    for name in running:
        assert configs[name]["status"] == "todo"
        assert configs[name]["interruption_time"] is not None
        assert configs[name]["start_time"] is not None
        assert not layout.result_file_path(pytester.path / "out", name).exists()
    for name in {"x2", "x3", "x4"} - set(running):
        assert configs[name] == {
            **configs[name],
            "status": "todo",
            "interruption_time": None,
        }
    # The journal was folded into the state: nothing is left to replay.
    assert not (pytester.path / "out" / layout.JOURNAL_FILE).exists()
    # No process that ran a config outlives the run.
    wait_for(lambda: not any(process_exists(pid) for pid in program_pids), 30)


# On the controller: the events of x2's end and of x3's start stay in xdist's queue,
# unprocessed, when Ctrl-C arrives (as on a busy controller, where workers run ahead).
QUEUED_AT_CTRL_C = """
import os
import signal
import time
from pathlib import Path

import pytest

HELD = []


@pytest.hookimpl(trylast=True)
def pytest_sessionstart(session):
    dsession = session.config.pluginmanager.get_plugin("dsession")
    if dsession is None:
        return  # a worker

    def holding(name, handle):
        def handler(**kwargs):
            nodeid = kwargs["nodeid"] if name == "logstart" else kwargs["rep"].nodeid
            if not HELD and not (nodeid.endswith("[x2]") and name == "testreport"
                                 and kwargs["rep"].when == "call"):
                return handle(**kwargs)
            HELD.append((name, kwargs))
            if name == "logstart" and nodeid.endswith("[x3]"):
                for event in HELD:
                    dsession.queue.put(event)
                # Ctrl-C reaches the worker too, once x3 runs there.
                started = Path(__file__).parent / "started-3"
                deadline = time.monotonic() + 60
                while time.monotonic() < deadline:
                    if started.exists() and started.read_text():
                        break
                    time.sleep(0.01)
                os.kill(int(started.read_text()), signal.SIGINT)
                raise KeyboardInterrupt

        return handler

    dsession.worker_logstart = holding("logstart", dsession.worker_logstart)
    dsession.worker_testreport = holding("testreport", dsession.worker_testreport)
"""


def test_ctrl_c_records_what_the_xdist_controller_had_not_processed_yet(
    pytester: pytest.Pytester,
) -> None:
    """x2's result is kept (and reported), and x3, whose start was still queued,
    gets its interruption time."""
    pytester.makepyfile(exp=EXPERIMENT.replace("if x > 1:", "if x > 2:"))
    pytester.makeconftest(QUEUED_AT_CTRL_C)
    result = pytester.runpytest_subprocess(
        "--delphyne-exp=exp.py",
        "-n",
        "1",
        "-p",
        "no:cacheprovider",
        "--junitxml=junit.xml",
        timeout=120,
    )
    # The terminal and junitxml count x2 too, as the state does.
    result.assert_outcomes(passed=2)
    junit = ET.parse(pytester.path / "junit.xml")
    cases = {
        case.attrib["name"]: case
        for case in junit.iter("testcase")
        if "name" in case.attrib  # junitxml's own entry for the interruption
    }
    assert set(cases) == {"experiment[x1]", "experiment[x2]"}
    properties = {
        prop.attrib["name"]: prop.attrib["value"]
        for prop in cases["experiment[x2]"].iter("property")
    }
    assert properties["param.x"] == "2"
    state_path = pytester.path / "out" / layout.STATE_FILE
    assert (
        STATE_SAVED_MESSAGE.format(path=state_path.relative_to(pytester.path))
        in result.stdout.str()
    )
    configs = yaml.safe_load(state_path.read_text())["configs"]
    assert configs["x1"]["status"] == "done"
    assert configs["x2"]["status"] == "done"
    assert configs["x2"]["end_time"] is not None
    assert layout.result_file_path(pytester.path / "out", "x2").exists()
    assert configs["x3"]["status"] == "todo"
    assert configs["x3"]["start_time"] is not None
    assert configs["x3"]["interruption_time"] is not None
    assert configs["x4"] == {**configs["x4"], "status": "todo", "start_time": None}
    assert configs["x4"]["interruption_time"] is None


def test_interrupted_configs_run_again_on_resume(pytester: pytest.Pytester) -> None:
    pytester.makepyfile(exp=EXPERIMENT)
    process = start_run(pytester.path, "-p", "no:cacheprovider")
    wait_for((pytester.path / "started-2").exists)
    os.killpg(process.pid, signal.SIGINT)
    process.wait(timeout=60)
    # The blocking program is not what this test is about: make it finish now.
    source = (pytester.path / "exp.py").read_text()
    (pytester.path / "exp.py").write_text(source.replace("time.sleep(600)", "pass"))
    result = pytester.runpytest_subprocess("--delphyne-exp=exp.py", "-rs")
    result.assert_outcomes(passed=3, skipped=1)
    configs = yaml.safe_load((pytester.path / "out" / layout.STATE_FILE).read_text())
    assert {name: info["status"] for name, info in configs["configs"].items()} == {
        "x1": "done",
        "x2": "done",
        "x3": "done",
        "x4": "done",
    }


# Far more than a refused run or a plan takes, far less than pytest-timeout's limit.
REFUSAL_TIMEOUT = 60
SECOND_RUN_ADMITTED = (
    "a second run was admitted while the first held the lock: it ran configs "
    f"for {REFUSAL_TIMEOUT}s instead of being refused"
)


def test_a_second_run_is_refused_while_the_first_holds_the_lock(
    pytester: pytest.Pytester,
) -> None:
    pytester.makepyfile(exp=EXPERIMENT)
    first = start_run(pytester.path)
    try:
        wait_for((pytester.path / "started-2").exists)
        state_before = (pytester.path / "out" / layout.STATE_FILE).read_bytes()
        # Admitted, the second run would block in x2 as the first does: it must be
        # refused at once, and a failure must say so rather than wait for the timeout.
        try:
            second = pytester.runpytest_subprocess(
                "--delphyne-exp=exp.py", timeout=REFUSAL_TIMEOUT
            )
        except pytester.TimeoutExpired:
            pytest.fail(SECOND_RUN_ADMITTED)
        assert second.ret == pytest.ExitCode.USAGE_ERROR
        second.stderr.fnmatch_lines(
            [f"*is already being run by process {first.pid} on *(command: *pytest*"]
        )
        assert (pytester.path / "out" / layout.STATE_FILE).read_bytes() == state_before
        # Reading needs no lock.
        plan = pytester.runpytest_subprocess(
            "--delphyne-exp=exp.py", "--co", "-q", timeout=REFUSAL_TIMEOUT
        )
        assert plan.ret == pytest.ExitCode.OK
    finally:
        os.killpg(first.pid, signal.SIGKILL)
        first.wait(timeout=60)
    # The kernel released the killed holder's lock: the next run is admitted, and x1,
    # recorded before the kill, is not run again.
    source = (pytester.path / "exp.py").read_text()
    (pytester.path / "exp.py").write_text(source.replace("time.sleep(600)", "pass"))
    resumed = pytester.runpytest_subprocess("--delphyne-exp=exp.py")
    resumed.assert_outcomes(passed=3, skipped=1)


# The start of each conftest below, which sends a Ctrl-C at a chosen moment. As a
# terminal starts pytest: a shell's background job would get SIGINT ignored.
CTRL_C_CONFTEST = """
import os
import signal

import pytest

signal.signal(signal.SIGINT, signal.default_int_handler)
"""


def run_with_ctrl_c_from(
    pytester: pytest.Pytester, hooks: str, *args: str
) -> tuple[pytest.RunResult, str, dict[str, dict[str, Any]]]:
    """A run of four configs that finish at once, with a conftest of `hooks` that
    sends a Ctrl-C; the run, its output and the state's configs."""
    pytester.makepyfile(exp=EXPERIMENT.replace("if x > 1:", "if x > 4:"))
    pytester.makeconftest(CTRL_C_CONFTEST + hooks)
    result = pytester.runpytest_subprocess(
        "--delphyne-exp=exp.py", "-p", "no:cacheprovider", *args, timeout=120
    )
    output = result.stdout.str() + result.stderr.str()
    state = yaml.safe_load((pytester.path / "out" / layout.STATE_FILE).read_text())
    return result, output, state["configs"]


# As the session ends, before the recorder's save: in another plugin's
# sessionfinish, or while xdist waits for its workers to end.
CTRL_C_AS_THE_SESSION_ENDS = """
@pytest.hookimpl(tryfirst=True)
def pytest_sessionfinish(session):
    if hasattr(session.config, "workerinput"):
        return
    dsession = session.config.pluginmanager.get_plugin("dsession")
    if dsession is None:
        os.kill(os.getpid(), signal.SIGINT)
        return
    teardown = dsession.nodemanager.teardown_nodes

    def teardown_nodes():
        os.kill(os.getpid(), signal.SIGINT)
        teardown()

    dsession.nodemanager.teardown_nodes = teardown_nodes
"""


@pytest.mark.parametrize("workers", [[], ["-n", "2"]], ids=["no-xdist", "xdist"])
def test_a_ctrl_c_as_the_session_ends_waits_for_the_state_to_be_saved(
    pytester: pytest.Pytester, workers: list[str]
) -> None:
    result, output, configs = run_with_ctrl_c_from(
        pytester, CTRL_C_AS_THE_SESSION_ENDS, *workers
    )
    # The Ctrl-C still stops pytest, once the state is saved.
    assert result.ret != pytest.ExitCode.OK, output
    assert "KeyboardInterrupt" in output, output
    assert {name: info["status"] for name, info in configs.items()} == {
        "x1": "done",
        "x2": "done",
        "x3": "done",
        "x4": "done",
    }
    # Saved in full: the journal folded, the summary written.
    out = pytester.path / "out"
    assert not (out / layout.JOURNAL_FILE).exists(), output
    summary = layout.summary_file_path(out).read_text().splitlines()
    assert len(summary) == 5, output
    # Every config ran: there is no interruption to speak of.
    assert "state saved" not in output, output


# Once the state is saved, before pytest writes its summary: in the sessionfinish
# of a plugin that runs after the recorder's.
CTRL_C_AFTER_THE_SAVE = """
@pytest.hookimpl(trylast=True)
def pytest_sessionfinish(session):
    if not hasattr(session.config, "workerinput"):
        os.kill(os.getpid(), signal.SIGINT)
"""


@pytest.mark.parametrize("workers", [[], ["-n", "2"]], ids=["no-xdist", "xdist"])
def test_a_ctrl_c_once_the_state_is_saved_stops_pytest_at_once(
    pytester: pytest.Pytester, workers: list[str]
) -> None:
    result, output, configs = run_with_ctrl_c_from(
        pytester, CTRL_C_AFTER_THE_SAVE, *workers
    )
    assert result.ret != pytest.ExitCode.OK, output
    assert "KeyboardInterrupt" in output, output
    # Stopped where it was: the summary's last line never came.
    assert not [line for line in result.stdout.lines if " passed in " in line], output
    assert {info["status"] for info in configs.values()} == {"done"}
    assert not (pytester.path / "out" / layout.JOURNAL_FILE).exists(), output


# Between two configs: x1 reported, x2 not started.
CTRL_C_BETWEEN_TWO_CONFIGS = """
def pytest_runtest_logfinish(nodeid):
    if nodeid.endswith("[x1]"):
        os.kill(os.getpid(), signal.SIGINT)
"""


def test_a_ctrl_c_between_two_configs_says_the_state_was_saved(
    pytester: pytest.Pytester,
) -> None:
    result, output, configs = run_with_ctrl_c_from(pytester, CTRL_C_BETWEEN_TWO_CONFIGS)
    assert result.ret == pytest.ExitCode.INTERRUPTED, output
    state_path = pytester.path / "out" / layout.STATE_FILE
    saved = STATE_SAVED_MESSAGE.format(path=state_path.relative_to(pytester.path))
    assert result.stdout.str().count(saved) == 1, output
    assert configs["x1"]["status"] == "done"
    for name in ("x2", "x3", "x4"):
        assert configs[name]["status"] == "todo"
        assert configs[name]["start_time"] is None
        assert configs[name]["interruption_time"] is None
