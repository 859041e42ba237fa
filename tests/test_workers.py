"""xdist workers: `WorkersSetup`, crashed workers, workers that cannot see the output
directory, and the rule that only the controller writes the state (SPEC §5, §6)."""

from __future__ import annotations

import json
import os
import stat
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from pytest_delphyne import layout
from pytest_delphyne.environment import Budget
from pytest_delphyne.items import REMOTE_REPLAY_MESSAGE
from pytest_delphyne.ledger import LedgerWriter
from pytest_delphyne.recorder import STATE_SAVED_MESSAGE
from pytest_delphyne.spend_cap import SpendMeter
from pytest_delphyne.wire import (
    PLANS_KEY,
    SETUP_VALUES_KEY,
    ExperimentPlan,
    encode_plans,
)
from pytest_delphyne.workers import (
    UNPICKLABLE_MESSAGE,
    WORKER_EXIT_MESSAGE,
    WORKER_KILLED_HINT,
    WORKER_SIGNAL_MESSAGE,
)

EXPERIMENT = """
from __future__ import annotations

import ctypes
import os
import signal
import threading
import time
from dataclasses import dataclass
from pathlib import Path

from pytest_delphyne import Experiment, Outcome, Run, WorkersSetup

HERE = Path(__file__).parent
SETUP_LOG = HERE / "setup.log"


def log(line):
    with SETUP_LOG.open("a") as file:
        file.write(line + "\\n")


def start_server():
    log(f"common {os.getpid()}")
    yield COMMON_VALUE
    log(f"teardown {os.getpid()}")


def connect(port):
    log(f"per_worker {os.getpid()} {port}")


def program(env, x, crash):
    if crash == "exit":
        os._exit(3)
    if crash == "kill":
        os.kill(os.getpid(), signal.SIGKILL)
    if crash == "segfault":
        ctypes.string_at(0)
    if crash == "raise":
        raise ValueError(f"config {x} failed")
    if crash == "slow":
        time.sleep(1)
    sees_state = (HERE / "out" / "experiment.yaml").exists()
    env.compute(str, x)
    return Outcome(success=True, values=[x * x, sees_state])


@dataclass
class Config:
    x: int
    crash: str | None = None

    def instantiate(self, context):
        return Run(program=program, args={"x": self.x, "crash": self.crash})


experiment = Experiment(
    config_class=Config,
    output_dir="out",
    configs=[Config(x, crash=CRASHES.get(x)) for x in range(1, 7)],
    config_naming=lambda config, uuid: f"x{config.x}",
    workers_setup=WorkersSetup(common=start_server, per_worker=connect),
    configs_context=CONTEXT,
)
"""


def write_experiment(
    pytester: pytest.Pytester,
    *,
    crashes: dict[int, str] | None = None,
    common_value: str = "4242",
    context: str = "None",
) -> Path:
    source = (
        EXPERIMENT.replace("CRASHES", repr(crashes or {}))
        .replace("COMMON_VALUE", common_value)
        .replace("CONTEXT", context)
    )
    return pytester.makepyfile(exp=source)


def setup_log(pytester: pytest.Pytester) -> list[list[str]]:
    path = pytester.path / "setup.log"
    return [line.split() for line in path.read_text().splitlines()]


def statuses(pytester: pytest.Pytester) -> dict[str, str]:
    state = yaml.safe_load((pytester.path / "out" / layout.STATE_FILE).read_text())
    return {name: info["status"] for name, info in state["configs"].items()}


@pytest.mark.parametrize(
    ("workers", "expected_per_worker"),
    [([], 1), (["-n", "1"], 1), (["-n", "2"], 2)],
    ids=["no-xdist", "n1", "n2"],
)
def test_common_runs_once_and_per_worker_once_in_each_worker(
    pytester: pytest.Pytester, workers: list[str], expected_per_worker: int
) -> None:
    write_experiment(pytester)
    result = pytester.runpytest_subprocess("--delphyne-exp=exp.py", *workers)
    result.assert_outcomes(passed=6)
    log = setup_log(pytester)
    commons = [entry for entry in log if entry[0] == "common"]
    per_workers = [entry for entry in log if entry[0] == "per_worker"]
    teardowns = [entry for entry in log if entry[0] == "teardown"]
    assert len(commons) == 1
    # The generator's teardown runs once, in the process that ran `common`, last.
    assert teardowns == [["teardown", commons[0][1]]]
    assert log[-1] == teardowns[0]
    assert len(per_workers) == expected_per_worker
    assert len({pid for _, pid, _ in per_workers}) == expected_per_worker
    # Each worker received what `common` returned.
    assert all(value == "4242" for _, _, value in per_workers)
    if not workers:
        assert per_workers[0][1] == commons[0][1]
    else:
        assert commons[0][1] not in {pid for _, pid, _ in per_workers}
    # per_worker ran before any config of its process.
    assert log.index(per_workers[0]) > log.index(commons[0])


def test_per_worker_runs_in_every_worker_also_one_without_configs(
    pytester: pytest.Pytester,
) -> None:
    write_experiment(pytester)
    result = pytester.runpytest_subprocess(
        "--delphyne-exp=exp.py", "-n", "3", "-k", "x1 or x2"
    )
    result.assert_outcomes(passed=2)
    per_workers = [entry for entry in setup_log(pytester) if entry[0] == "per_worker"]
    # Two configs for three workers: each worker still set up, once.
    assert len({pid for _, pid, _ in per_workers}) == len(per_workers) == 3


def test_no_setup_when_every_config_is_done(pytester: pytest.Pytester) -> None:
    write_experiment(pytester)
    pytester.runpytest_subprocess("--delphyne-exp=exp.py").assert_outcomes(passed=6)
    (pytester.path / "setup.log").unlink()
    again = pytester.runpytest_subprocess("--delphyne-exp=exp.py", "-n", "2")
    again.assert_outcomes(skipped=6)
    # Nothing runs or replays: no server of `common` is started for nothing.
    assert not (pytester.path / "setup.log").exists()


@pytest.mark.parametrize(
    ("crash", "how"),
    [
        ("exit", WORKER_EXIT_MESSAGE.format(code=3)),
        (
            "kill",
            WORKER_SIGNAL_MESSAGE.format(number=9, name="SIGKILL") + WORKER_KILLED_HINT,
        ),
        ("segfault", WORKER_SIGNAL_MESSAGE.format(number=11, name="SIGSEGV")),
    ],
)
def test_crashed_worker_fails_only_the_config_it_was_running(
    pytester: pytest.Pytester, crash: str, how: str
) -> None:
    write_experiment(pytester, crashes={3: crash})
    result = pytester.runpytest_subprocess("--delphyne-exp=exp.py", "-n", "2")
    result.assert_outcomes(passed=5, failed=1)
    assert statuses(pytester) == {
        "x1": "done",
        "x2": "done",
        "x3": "failed",
        "x4": "done",
        "x5": "done",
        "x6": "done",
    }
    exception = (
        layout.exception_file_path(pytester.path / "out", "x3").read_text().strip()
    )
    assert "its xdist worker crashed" in exception
    assert "crashed while running 'exp.py::experiment[x3]'" in exception
    assert exception.endswith(how)
    result.stdout.fnmatch_lines(["*replacing crashed worker*"])


@pytest.mark.parametrize(
    "options",
    [["-n", "auto"], ["-n", "2", "--dist", "worksteal"], ["-n", "2", "--dist", "load"]],
    ids=["auto", "worksteal", "load"],
)
def test_every_distribution_mode_records_every_config(
    pytester: pytest.Pytester, options: list[str]
) -> None:
    write_experiment(pytester)
    result = pytester.runpytest_subprocess("--delphyne-exp=exp.py", *options)
    result.assert_outcomes(passed=6)
    assert set(statuses(pytester).values()) == {"done"}
    assert (pytester.path / "out" / layout.SUMMARY_FILE).exists()


def test_maxfail_with_workers_leaves_the_configs_not_run_todo(
    pytester: pytest.Pytester,
) -> None:
    # The others take a second each: the stop lands before they can all run.
    write_experiment(
        pytester, crashes={1: "raise"} | dict.fromkeys(range(2, 7), "slow")
    )
    result = pytester.runpytest_subprocess(
        "--delphyne-exp=exp.py", "-n", "2", "--maxfail=1"
    )
    found = statuses(pytester)
    assert found["x1"] == "failed"
    assert "todo" in found.values()
    assert list(found.values()).count("failed") == 1
    state_path = pytester.path / "out" / layout.STATE_FILE
    assert (
        STATE_SAVED_MESSAGE.format(path=state_path.relative_to(pytester.path))
        in result.stdout.str()
    )
    for name, status in found.items():
        has_result = layout.result_file_path(pytester.path / "out", name).exists()
        assert has_result == (status == "done")


def test_unpicklable_configs_context_is_refused_before_any_config_runs(
    pytester: pytest.Pytester,
) -> None:
    write_experiment(pytester, context="threading.Lock()")
    result = pytester.runpytest_subprocess("--delphyne-exp=exp.py", "-n", "2")
    assert result.ret == pytest.ExitCode.USAGE_ERROR
    message = UNPICKLABLE_MESSAGE.format(
        what="Experiment.configs_context",
        experiment=f"{pytester.path / 'exp.py'}::experiment",
        error="cannot pickle '_thread.lock' object",
    )
    assert message in result.stderr.str()
    assert not (pytester.path / "out" / layout.CONFIGS_DIR).exists()
    # Without workers, nothing needs to be pickled.
    pytester.runpytest_subprocess("--delphyne-exp=exp.py").assert_outcomes(passed=6)


def test_unpicklable_common_result_is_refused_before_any_config_runs(
    pytester: pytest.Pytester,
) -> None:
    write_experiment(pytester, common_value="threading.Lock()")
    result = pytester.runpytest_subprocess("--delphyne-exp=exp.py", "-n", "2")
    assert result.ret == pytest.ExitCode.USAGE_ERROR
    assert "The value returned by WorkersSetup.common" in result.stderr.str()
    assert "cannot be sent to xdist workers" in result.stderr.str()
    assert not (pytester.path / "out" / layout.CONFIGS_DIR).exists()
    assert [entry[0] for entry in setup_log(pytester)] == ["common", "teardown"]


def _can_unshare_mounts() -> bool:
    try:
        probe = subprocess.run(
            ["unshare", "-m", "true"], capture_output=True, timeout=10
        )
    except (OSError, subprocess.TimeoutExpired):
        return False
    return probe.returncode == 0


def hidden_output_python(directory: Path, out: Path) -> Path:
    """A Python for xdist's `--tx popen//python=`: it starts in a mount namespace
    where an empty tmpfs hides `out`, as on a machine that does not share it."""
    script = directory / "hidden-output-python"
    script.write_text(
        "#!/bin/sh\n"
        f'exec unshare -m sh -c \'mount -t tmpfs none "{out}" && exec "$0" "$@"\' '
        f'"{sys.executable}" "$@"\n'
    )
    script.chmod(script.stat().st_mode | stat.S_IEXEC)
    return script


@pytest.mark.skipif(
    not _can_unshare_mounts(), reason="needs `unshare -m` (root, mount namespaces)"
)
def test_worker_that_cannot_see_the_output_dir_ships_its_files_to_the_controller(
    pytester: pytest.Pytester, monkeypatch: pytest.MonkeyPatch
) -> None:
    write_experiment(pytester)
    out = pytester.path / "out"
    hidden_python = hidden_output_python(pytester.path, out)
    scratch = pytester.path / "scratch"
    scratch.mkdir()
    monkeypatch.setenv("TMPDIR", str(scratch))
    result = pytester.runpytest_subprocess(
        "--delphyne-exp=exp.py", "-d", "--tx", f"popen//python={hidden_python}"
    )
    result.assert_outcomes(passed=6)
    # The worker's scratch directories went away once their files were shipped.
    assert not [path for path in scratch.iterdir() if "delphyne" in path.name]
    assert set(statuses(pytester).values()) == {"done"}
    for x in range(1, 7):
        config_dir = layout.config_dir(out, f"x{x}")
        recorded = yaml.safe_load((config_dir / layout.RESULT_FILE).read_text())
        # The program ran where the state was not visible, and its files came back.
        assert recorded["outcome"]["result"]["values"] == [x * x, False]
        cache_entries = (config_dir / layout.CACHE_FILE).read_text()
        assert json.dumps(str(x)) in cache_entries
    assert (out / layout.SUMMARY_FILE).exists()


@pytest.mark.skipif(
    not _can_unshare_mounts(), reason="needs `unshare -m` (root, mount namespaces)"
)
def test_a_replay_on_a_worker_that_cannot_see_the_output_dir_is_refused(
    pytester: pytest.Pytester,
) -> None:
    write_experiment(pytester)
    out = pytester.path / "out"
    pytester.runpytest_subprocess("--delphyne-exp=exp.py").assert_outcomes(passed=6)
    before = {path: path.read_bytes() for path in out.rglob("*") if path.is_file()}
    hidden_python = hidden_output_python(pytester.path, out)
    result = pytester.runpytest_subprocess(
        "--delphyne-exp=exp.py",
        "--delphyne-replay",
        "-d",
        "--tx",
        f"popen//python={hidden_python}",
    )
    # Its caches are out of the worker's sight: each config says so, in one line.
    result.assert_outcomes(failed=6)
    output = result.stdout.str()
    for x in range(1, 7):
        message = REMOTE_REPLAY_MESSAGE.format(name=f"x{x}", output_dir=out)
        assert message in output, output
    assert "pytest_delphyne/" not in output, output
    after = {path: path.read_bytes() for path in out.rglob("*") if path.is_file()}
    assert after == before


@pytest.mark.skipif(
    not _can_unshare_mounts(), reason="needs `unshare -m` (root, mount namespaces)"
)
def test_a_worker_that_cannot_see_the_output_dir_stops_at_the_spend_cap(
    pytester: pytest.Pytester,
) -> None:
    # Each config pays 1.0; the cap is 2.0. The worker counts what it paid itself,
    # since the ledger it wrote is out of its sight until the controller gets it.
    source = write_experiment(pytester).read_text()
    compute = "    env.compute(str, x)\n"
    paying = source.replace(compute, compute + "    env.spend(price=1.0)\n")
    assert paying != source
    pytester.makepyfile(exp=paying)
    out = pytester.path / "out"
    hidden_python = hidden_output_python(pytester.path, out)
    result = pytester.runpytest_subprocess(
        "--delphyne-exp=exp.py",
        "--delphyne-max-price=2",
        "-d",
        "--tx",
        f"popen//python={hidden_python}",
    )
    assert list(statuses(pytester).values()).count("done") == 2, result.stdout.str()
    assert "failed" not in statuses(pytester).values()


@pytest.mark.skipif(
    not _can_unshare_mounts(), reason="needs `unshare -m` (root, mount namespaces)"
)
def test_worker_running_from_another_copy_of_the_project_is_recorded(
    pytester: pytest.Pytester,
) -> None:
    write_experiment(pytester)
    out = pytester.path / "out"
    # A machine of its own: the project checked out elsewhere, the output hidden.
    elsewhere = pytester.path / "elsewhere"
    elsewhere.mkdir()
    (elsewhere / "exp.py").write_text((pytester.path / "exp.py").read_text())
    hidden_python = hidden_output_python(pytester.path, out)
    result = pytester.runpytest_subprocess(
        "--delphyne-exp=exp.py",
        "-d",
        "--tx",
        f"2*popen//chdir={elsewhere}//python={hidden_python}",
    )
    result.assert_outcomes(passed=6)
    assert set(statuses(pytester).values()) == {"done"}
    # The workers set up and ran in their own copy; the controller recorded it all.
    remote_log = (elsewhere / "setup.log").read_text().split()
    assert remote_log.count("per_worker") == 2
    assert not (elsewhere / "out").exists()
    for x in range(1, 7):
        assert layout.result_file_path(out, f"x{x}").exists()


# On the worker, each shipped config's files lose their result.yaml on the way, as
# when a remote worker's program ended without writing one.
RESULT_LOST_IN_TRANSIT = """
import pytest

@pytest.hookimpl(wrapper=True)
def pytest_runtest_makereport(item, call):
    report = yield
    if hasattr(item.config, "workerinput") and call.when == "call":
        properties = []
        for name, value in report.user_properties:
            if name == "delphyne.result":
                text, files = value
                value = (text, {k: v for k, v in files.items() if k != "result.yaml"})
            properties.append((name, value))
        report.user_properties = properties
    return report
"""


@pytest.mark.skipif(
    not _can_unshare_mounts(), reason="needs `unshare -m` (root, mount namespaces)"
)
def test_shipped_files_without_a_result_make_the_config_failed(
    pytester: pytest.Pytester,
) -> None:
    write_experiment(pytester)
    pytester.makeconftest(RESULT_LOST_IN_TRANSIT)
    out = pytester.path / "out"
    hidden_python = hidden_output_python(pytester.path, out)
    pytester.runpytest_subprocess(
        "--delphyne-exp=exp.py", "-d", "--tx", f"popen//python={hidden_python}"
    )
    # "done" only once a result file is on disk: none came, so none is claimed.
    assert set(statuses(pytester).values()) == {"failed"}
    for x in range(1, 7):
        config_dir = layout.config_dir(out, f"x{x}")
        assert not (config_dir / layout.RESULT_FILE).exists()
        exception = (config_dir / layout.EXCEPTION_FILE).read_text()
        assert f"config x{x} ended without a result file" in exception
        # What the worker paid for still arrived.
        assert json.dumps(str(x)) in (config_dir / layout.CACHE_FILE).read_text()
    assert not (out / layout.SUMMARY_FILE).exists()


def test_a_worker_writes_only_the_directory_of_its_config(
    pytester: pytest.Pytester,
) -> None:
    write_experiment(pytester)
    out = pytester.path / "out"
    out.mkdir()
    output_stat = out.stat()
    plan: ExperimentPlan = {
        "key": f"{pytester.path / 'exp.py'}::experiment",
        "file": "exp.py",
        "attr": "experiment",
        "output_dir": str(out),
        "output_dir_id": [output_stat.st_dev, output_stat.st_ino],
        "configs": [
            {
                "name": "x1",
                "status": "todo",
                "params": {"x": 1, "crash": None},
                "interrupted": False,
            }
        ],
        "stored_failures": {},
        "orphans": [],
        "session": "a-session",
    }
    workerinput = {
        PLANS_KEY: encode_plans([plan]),
        SETUP_VALUES_KEY: {},
        "workerid": "gw0",
    }
    pytester.makeconftest(
        f"""
        import pytest

        # Pretend to be an xdist worker that received the controller's plan.
        @pytest.hookimpl(tryfirst=True)
        def pytest_configure(config):
            config.workerinput = {workerinput!r}
        """
    )
    result = pytester.runpytest("--delphyne-exp=exp.py")
    result.assert_outcomes(passed=1)
    written = sorted(str(path.relative_to(out)) for path in out.rglob("*"))
    assert written == [
        "configs",
        "configs/x1",
        "configs/x1/cache.yaml",
        "configs/x1/log.txt",
        "configs/x1/result.yaml",
    ]
    # per_worker ran with what the controller sent (here: nothing was sent).
    assert setup_log(pytester) == [["per_worker", str(os.getpid()), "None"]]


def test_meters_reading_one_ledger_count_every_payment_of_their_session(
    tmp_path: Path,
) -> None:
    path = tmp_path / layout.LEDGER_FILE
    first, second = SpendMeter(), SpendMeter()
    first.watch(path, "s1")
    second.watch(path, "s1")
    assert first.total() == 0.0  # no ledger yet
    paying = LedgerWriter(path, config="x1", attempt="a1", session="s1")
    paying.record(Budget(price=0.25))
    assert (first.total(), second.total()) == (0.25, 0.25)
    # Another session's payments (an earlier run) are not this session's.
    earlier = LedgerWriter(path, config="x2", attempt="a0", session="s0")
    earlier.record(Budget(price=5.0))
    earlier.close()
    # A config in flight has paid: it counts before it ends.
    paying.record(Budget(price=0.5))
    assert first.total() == 0.75
    # A line still being written counts once it is whole.
    with path.open("ab") as file:
        file.write(b'{"config":"x3","attempt":"a3","session":"s1",')
        file.flush()
        assert first.total() == 0.75
        file.write(b'"spent":{"price":0.125}}\n')
    assert (first.total(), second.total()) == (0.875, 0.875)
    # What a process paid for configs whose ledger it does not read, it adds.
    second.add(1.0)
    assert (first.total(), second.total()) == (0.875, 1.875)
    paying.close()
