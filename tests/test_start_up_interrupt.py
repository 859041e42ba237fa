"""Ctrl-C while the xdist workers start: the usual one-line ending and the summary,
with no traceback from a worker's interpreter (issue 20). A real process group and a
real SIGINT, as a terminal sends it."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time

import pytest
import yaml
from test_xdist_status_line import EXPERIMENT

from pytest_delphyne import layout

# Each worker's interpreter, still importing `site`, waits: the Ctrl-C lands there.
SLOW_WORKER_START = """
import sys, time
from pathlib import Path
if sys.argv[:1] == ["-c"]:
    Path("worker-starting").touch()
    time.sleep(5)
"""


def test_ctrl_c_while_workers_start_ends_with_the_summary(
    pytester: pytest.Pytester,
) -> None:
    pytester.makepyfile(exp=EXPERIMENT, sitecustomize=SLOW_WORKER_START)
    env = {**os.environ, "PYTHONPATH": str(pytester.path)}
    process = subprocess.Popen(
        [sys.executable, "-m", "pytest", "--delphyne-exp", "exp.py", "-n", "2"],
        cwd=pytester.path,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        start_new_session=True,
        preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL),
    )
    deadline = time.monotonic() + 60
    while not (pytester.path / "worker-starting").exists():
        assert time.monotonic() < deadline, "no worker started"
        time.sleep(0.05)
    time.sleep(0.5)
    os.killpg(process.pid, signal.SIGINT)
    output, _ = process.communicate(timeout=120)
    assert process.returncode == pytest.ExitCode.INTERRUPTED, output
    assert "Traceback" not in output
    assert "Fatal Python error" not in output
    lines = output.splitlines()
    assert "experiment (out): 0 done, 0 failed, 3 todo" in lines
    assert any(line.strip("! ") == "KeyboardInterrupt" for line in lines)
    state = yaml.safe_load((pytester.path / "out" / layout.STATE_FILE).read_text())
    assert {info["status"] for info in state["configs"].values()} == {"todo"}
