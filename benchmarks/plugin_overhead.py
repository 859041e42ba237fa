"""The plugin's cost per config against pytest's cost per test (a script, not a test).

    python benchmarks/plugin_overhead.py                  # N = 1,000 and 10,000
    python benchmarks/plugin_overhead.py 1000 --runs 5    # chosen sizes and runs
    python benchmarks/plugin_overhead.py 100000 -n 2 --runs 1 --dir /dev/shm

For each N and each of `-n 0` and `-n 2`, it times whole `python -m pytest` processes
(wall clock, median of several runs, `-p no:cacheprovider -q`) on both sides:

- pytest: one test function parametrized over `range(N)` whose body is `pass`;
- plugin: `--delphyne-exp` on an experiment of N configs whose program returns at once,
  into a fresh output directory each run, so every config runs and writes its
  `cache.yaml`, `log.txt` and `result.yaml`, and the state (`experiment.yaml`, its
  journal, the summary) is written as a real first run writes it. The output
  directories are deleted after the last run: deleting thousands of files just before
  a run slows the file system down during that run.

It prints one row per (N, -n) with both medians, the ratio plugin/pytest, the
plugin's extra cost per config, and each side's peak memory (of its largest process,
the controller). `--dir /dev/shm` runs on a RAM file system, which
separates the plugin's own cost from the disk's (file creation on a busy virtual
disk varies from 0.1 to 1 ms). Targets (issue 8): ratio <= 1.25 under `-n 2` and
<= 2.0 under `-n 0`.
"""

from __future__ import annotations

import argparse
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
from dataclasses import dataclass
from pathlib import Path

from state_scale import PEAK_OF_CHILD

DEFAULT_SIZES = (1_000, 10_000)
WORKERS = ("0", "2")
TARGETS = {"0": 2.0, "2": 1.25}

EXPERIMENT = """\
import os
from dataclasses import dataclass

from pytest_delphyne import Experiment, Run


def noop(env):
    return None


@dataclass
class Config:
    index: int

    def instantiate(self, context):
        return Run(program=noop)


experiment = Experiment(
    config_class=Config,
    output_dir=os.environ.get("DELPHYNE_BENCH_OUT", "out"),
    configs=[Config(i) for i in range({size})],
    config_naming=lambda config, _: f"c{{config.index}}",
)
"""

TRIVIAL_TESTS = """\
import pytest


@pytest.mark.parametrize("index", range({size}))
def test_trivial(index):
    pass
"""


def _timed_run(command: list[str], cwd: Path, out: str = "out") -> tuple[float, float]:
    """Wall time and peak memory (MB) of the largest process: the controller."""
    env = {**os.environ, "DELPHYNE_BENCH_OUT": out}
    completed = subprocess.run(
        [sys.executable, "-c", PEAK_OF_CHILD, *command],
        cwd=cwd,
        capture_output=True,
        text=True,
        env=env,
    )
    *_, elapsed, peak_kb, code = completed.stdout.split()
    if code != "0":
        sys.exit(f"{' '.join(command)} exited with {code}:\n{completed.stderr[-3000:]}")
    return float(elapsed), int(peak_kb) / 1024


def _project(size: int, base: str | None) -> Path:
    directory = Path(tempfile.mkdtemp(prefix=f"delphyne-overhead-{size}-", dir=base))
    # An ini file of its own: the repository's pytest settings must not apply.
    (directory / "pytest.ini").write_text("[pytest]\n")
    (directory / "exp.py").write_text(EXPERIMENT.format(size=size))
    (directory / "test_trivial.py").write_text(TRIVIAL_TESTS.format(size=size))
    return directory


@dataclass
class Figures:
    """Medians over the runs of one side: wall time and the controller's peak."""

    seconds: float
    peak_mb: float


def measure(
    size: int, workers: str, runs: int, where: str | None = None
) -> tuple[Figures, Figures]:
    """pytest's trivial tests' figures, then the plugin's configs'."""
    directory = _project(size, where)
    base = [sys.executable, "-m", "pytest", "-p", "no:cacheprovider", "-q"]
    base += ["-n", workers]
    pytest_runs: list[tuple[float, float]] = []
    plugin_runs: list[tuple[float, float]] = []
    try:
        for run in range(runs):
            # Interleaved, so that a noisy moment of the machine hits both sides.
            pytest_runs.append(_timed_run([*base, "test_trivial.py"], directory))
            plugin_runs.append(
                _timed_run([*base, "--delphyne-exp=exp.py"], directory, f"out{run}")
            )
    finally:
        shutil.rmtree(directory, ignore_errors=True)
    return _figures(pytest_runs), _figures(plugin_runs)


def _figures(runs: list[tuple[float, float]]) -> Figures:
    return Figures(
        statistics.median(seconds for seconds, _ in runs),
        statistics.median(peak for _, peak in runs),
    )


def main(argv: list[str]) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("sizes", nargs="*", type=int, default=list(DEFAULT_SIZES))
    parser.add_argument("--runs", type=int, default=None, help="runs per median")
    parser.add_argument("-n", dest="workers", action="append", choices=WORKERS)
    parser.add_argument("--dir", help="where the projects go (default: the temp dir)")
    options = parser.parse_args(argv)
    where = options.dir or tempfile.gettempdir()
    print(f"python {sys.version.split()[0]}, {os.cpu_count()} CPUs, in {where}")
    header = (
        "N",
        "-n",
        "pytest s",
        "plugin s",
        "ratio",
        "target",
        "extra ms/config",
        "pytest MB",
        "plugin MB",
    )
    print(" | ".join(f"{column:>15}" for column in header))
    for size in options.sizes:
        runs = options.runs or (5 if size <= 1_000 else 3)
        for workers in options.workers or WORKERS:
            floor, plugin = measure(size, workers, runs, options.dir)
            cells = [
                f"{size:>15,}",
                f"{workers:>15}",
                f"{floor.seconds:>15.2f}",
                f"{plugin.seconds:>15.2f}",
                f"{plugin.seconds / floor.seconds:>15.2f}",
                f"{'<= ' + str(TARGETS[workers]):>15}",
                f"{(plugin.seconds - floor.seconds) / size * 1000:>15.3f}",
                f"{floor.peak_mb:>15.0f}",
                f"{plugin.peak_mb:>15.0f}",
            ]
            print(" | ".join(cells), flush=True)


if __name__ == "__main__":
    main(sys.argv[1:])
