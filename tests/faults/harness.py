"""The experiment the fault tests attack, and what they read back from it.

Every real execution of the paid call (`env.compute(paid_call, x)`) appends a line to
`paid.txt`: the ledger of what the experiment cost. A program that returns appends to
`finished.txt`; every program writes its pid to `pids.txt`. `FAULTS=3=kill,7=exit`
makes config x3 SIGKILL its process and x7 call `os._exit(7)` after paying.
"""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import signal
import subprocess
import sys
import time
from collections import Counter
from collections.abc import Callable
from pathlib import Path
from typing import Any

import yaml

from pytest_delphyne import layout
from pytest_delphyne.journal import read_journal

CONFIGS = 120

EXPERIMENT = """
from __future__ import annotations

import os
import resource
import signal
import time
from dataclasses import dataclass
from pathlib import Path

from pytest_delphyne import Experiment, Outcome, Run

HERE = Path(__file__).parent
FAULTS = dict(
    (int(x), fault)
    for x, _, fault in (
        item.partition("=") for item in os.environ.get("FAULTS", "").split(",") if item
    )
)


def note(file, line):
    with (HERE / file).open("a") as handle:
        handle.write(line + "\\n")


def paid_call(x):
    note("paid.txt", f"x{x}")
    return x * x


class Opaque:
    pass


def program(env, x, delay):
    note("pids.txt", str(os.getpid()))
    value = env.compute(paid_call, x)
    fault = FAULTS.get(x)
    if fault == "kill":
        os.kill(os.getpid(), signal.SIGKILL)
    if fault == "exit":
        os._exit(7)
    if fault == "memory":
        limit = 512 * 2**20
        resource.setrlimit(resource.RLIMIT_AS, (limit, resource.RLIM_INFINITY))
        try:
            value = len(bytearray(2 * limit))
        finally:
            resource.setrlimit(
                resource.RLIMIT_AS, (resource.RLIM_INFINITY, resource.RLIM_INFINITY)
            )
    if fault == "raise":
        raise ValueError(f"config {x} is broken")
    if fault == "opaque":
        return Outcome(success=True, values=[Opaque()])
    if fault == "block":
        note("blocking.txt", f"x{x}")
        time.sleep(600)
    time.sleep(delay)
    note("finished.txt", f"x{x}")
    return Outcome(success=True, values=[value])


@dataclass
class Config:
    x: int
    delay: float = DELAY

    def instantiate(self, context):
        return Run(program=program, args={"x": self.x, "delay": self.delay})


experiment = Experiment(
    config_class=Config,
    output_dir="out",
    configs=[Config(x) for x in range(CONFIGS)],
    config_naming=lambda config, uuid: f"x{config.x}",
)
"""


def experiment_source(configs: int = CONFIGS, delay: float = 0.01) -> str:
    return EXPERIMENT.replace("CONFIGS", str(configs)).replace("DELAY", str(delay))


def lines(directory: Path, name: str) -> list[str]:
    path = directory / name
    return path.read_text().split() if path.exists() else []


def paid(directory: Path) -> Counter[str]:
    """How many times each config's call was really executed."""
    return Counter(lines(directory, "paid.txt"))


def statuses(out: Path) -> dict[str, str]:
    """Each config's status: experiment.yaml (which must parse), the journal over it."""
    state = yaml.safe_load((out / layout.STATE_FILE).read_text())
    found = {name: info["status"] for name, info in state["configs"].items()}
    for update in read_journal(out / layout.JOURNAL_FILE):
        found[update.name] = update.status
    return found


def state_configs(out: Path) -> dict[str, dict[str, Any]]:
    configs: dict[str, dict[str, Any]] = yaml.safe_load(
        (out / layout.STATE_FILE).read_text()
    )["configs"]
    return configs


def cached_calls(out: Path) -> set[str]:
    """The configs whose paid call is recorded in their cache.yaml."""
    found = set()
    configs = out / layout.CONFIGS_DIR
    for directory in configs.iterdir() if configs.exists() else []:
        cache = directory / layout.CACHE_FILE
        if not cache.exists():
            continue
        for line in cache.read_text().split("\n")[:-1]:  # a torn last line is not
            if json.loads(line[2:])["key"].endswith("paid_call"):
                found.add(directory.name)
    return found


def takes_ctrl_c() -> None:
    """In a child before it runs pytest: a terminal's foreground job takes Ctrl-C,
    but a shell's background job (a CI runner's, say) starts with SIGINT ignored,
    which its children would inherit."""
    signal.signal(signal.SIGINT, signal.SIG_DFL)


def start(
    directory: Path,
    *args: str,
    faults: str = "",
    output: int = subprocess.DEVNULL,
) -> subprocess.Popen[str]:
    """`pytest --delphyne-exp=exp.py` in a process group of its own, as a terminal
    starts it."""
    return subprocess.Popen(
        [sys.executable, "-m", "pytest", "--delphyne-exp=exp.py", *args],
        cwd=directory,
        stdout=output,
        stderr=subprocess.STDOUT,
        text=True,
        start_new_session=True,
        preexec_fn=takes_ctrl_c,
        env={**os.environ, "FAULTS": faults},
    )


def run(
    directory: Path, *args: str, faults: str = "", timeout: float = 300
) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "pytest", "--delphyne-exp=exp.py", *args],
        cwd=directory,
        capture_output=True,
        text=True,
        timeout=timeout,
        env={**os.environ, "FAULTS": faults},
    )


def wait_for(predicate: Callable[[], bool], timeout: float = 180.0) -> None:
    deadline = time.monotonic() + timeout
    while not predicate():
        if time.monotonic() > deadline:
            raise TimeoutError("the run never reached the expected point")
        time.sleep(0.005)


def process_exists(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    # A zombie waiting for its parent to reap it runs nothing.
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return False
    return stat.rpartition(")")[2].split()[0] != "Z"


def kill_group(process: subprocess.Popen[str]) -> None:
    with contextlib.suppress(ProcessLookupError):
        os.killpg(process.pid, signal.SIGKILL)
    process.wait(timeout=60)


def mount_tmpfs(directory: Path, size: str) -> str | None:
    directory.mkdir(parents=True, exist_ok=True)
    if shutil.which("mount") is None:
        return "no mount command"
    done = subprocess.run(
        ["mount", "-t", "tmpfs", "-o", f"size={size}", "tmpfs", str(directory)],
        capture_output=True,
        text=True,
    )
    return None if done.returncode == 0 else done.stderr.strip() or "mount failed"


def grow(disk: Path, size: str = "64m") -> None:
    """Make room on a `small_disk`."""
    subprocess.run(
        ["mount", "-o", f"remount,size={size}", str(disk)], check=True, timeout=30
    )


def wait_for_executions(
    directory: Path, count: int, process: subprocess.Popen[str]
) -> None:
    """Until `count` real executions are in the ledger, or the run has ended."""
    wait_for(
        lambda: sum(paid(directory).values()) >= count or process.poll() is not None
    )


def wait_until_gone(pids: set[int], timeout: float = 60) -> None:
    wait_for(lambda: not any(process_exists(pid) for pid in pids), timeout)
