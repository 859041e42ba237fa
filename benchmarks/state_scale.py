"""How the state scales with the number of configs (a script, not a test).

    python benchmarks/state_scale.py                 # 1,000 / 10,000 / 100,000 configs
    python benchmarks/state_scale.py 1000 5000       # chosen sizes

Each size runs in a fresh process (so peak memory is per size) and prints one row:

- create: `load()` on an empty directory (names every config, writes the state);
- load: `load()` of a fresh `Experiment` on that state (nothing cached in memory): the
  state comes from its JSON index, since the YAML is as the project wrote it;
- edited: the same after a comment is added to `experiment.yaml` by hand, so the
  index no longer matches and the YAML is parsed (a load writes no index);
- yaml parse: one `yaml.load(..., CSafeLoader)` of that file, the floor for `edited`;
- get_status: right after a load (cached);
- collect: `python -m pytest --delphyne-exp=exp.py --co -q` on the state, a whole
  process (import, `load()`, plan, one item per config), and its peak memory;
- record: median of 1,000 `StateStore.record` calls;
- fold: `StateStore.fold()` with 1,000 journal entries;
- summary: `save_summary()` with every config done and its `result.yaml` written;
- peak: this process's peak memory (`ru_maxrss`), the summary included.

Targets at 100,000 configs (issue 8): load + collect <= 5 s while the YAML is unedited,
edited never worse than one parse of the YAML, record < 1 ms, controller peak (the
collect process) <= 500 MiB.
"""

from __future__ import annotations

import json
import resource
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

ROOT = Path(__file__).absolute().parent.parent
sys.path.insert(0, str(ROOT))

import yaml  # noqa: E402

from pytest_delphyne import layout  # noqa: E402
from pytest_delphyne.experiment import Experiment  # noqa: E402
from pytest_delphyne.runtime import Run  # noqa: E402
from pytest_delphyne.state import ConfigUpdate, utc_now  # noqa: E402

DEFAULT_SIZES = (1_000, 10_000, 100_000)
RECORDS = 1_000
COLUMNS = (
    "configs",
    "create s",
    "load s",
    "edited s",
    "yaml parse s",
    "get_status s",
    "collect s",
    "collect MB",
    "record ms",
    "fold s",
    "summary s",
    "peak MB",
)

EXPERIMENT_FILE = """\
from dataclasses import dataclass

from pytest_delphyne import Experiment, Run


@dataclass
class Config:
    model: str
    temperature: float = 0.7
    seed: int = 0
    max_tokens: int = 1000

    def instantiate(self, context):
        return Run(program=lambda env: None)


experiment = Experiment(
    config_class=Config,
    output_dir={output_dir!r},
    configs=[Config(f"model-{{i % 7}}", 0.1 * (i % 10), i) for i in range({size})],
)
"""

RESULT_TEMPLATE = """\
config_name: {name}
params: {{}}
start_time: '2024-05-01T12:00:00+00:00'
end_time: '2024-05-01T12:00:01+00:00'
duration: 1.0
outcome:
  result:
    success: true
    values: []
    spent_budget:
      num_requests: 1
      num_completions: 1
      input_tokens: 100
      cached_input_tokens: 0
      output_tokens: 20
      price: 0.001
"""


@dataclass
class Config:
    model: str
    temperature: float = 0.7
    seed: int = 0
    max_tokens: int = 1000

    def instantiate(self, context: object) -> Run:
        return Run(program=lambda env: None)


def configs_of_size(size: int) -> list[Config]:
    """The benchmarks' grid: 7 models, 10 temperatures, a seed per config."""
    return [Config(f"model-{i % 7}", 0.1 * (i % 10), i) for i in range(size)]


def _timed(action: Callable[[], object]) -> float:
    start = time.perf_counter()
    action()
    return time.perf_counter() - start


# Runs pytest and prints its wall time and peak memory. A child's peak memory counts
# what its parent had mapped when it forked: the child of this small process, not of
# the measuring one (which holds a whole state), is measured.
PEAK_OF_CHILD = """\
import resource, subprocess, sys, time
start = time.perf_counter()
code = subprocess.run(sys.argv[1:], stdout=subprocess.DEVNULL).returncode
elapsed = time.perf_counter() - start
print(elapsed, resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss, code)
"""


def _collect(size: int, directory: Path) -> tuple[float, float]:
    """Wall time and peak memory (MB) of `pytest --co` on the experiment."""
    project = directory.parent
    (project / "pytest.ini").write_text("[pytest]\n")
    (project / "exp.py").write_text(
        EXPERIMENT_FILE.format(output_dir=str(directory), size=size)
    )
    command = [sys.executable, "-c", PEAK_OF_CHILD, sys.executable, "-m", "pytest"]
    command += ["-p", "no:cacheprovider", "--delphyne-exp=exp.py", "--co", "-q"]
    output = subprocess.run(
        command, cwd=project, capture_output=True, text=True, check=True
    ).stdout
    elapsed, peak_kb, code = output.split()
    if code != "0":
        sys.exit(f"pytest --co exited with {code}")
    return float(elapsed), int(peak_kb) / 1024


def _parse_once(path: Path) -> float:
    text = path.read_text()
    return _timed(lambda: yaml.load(text, Loader=yaml.CSafeLoader))


def measure(size: int, directory: Path) -> dict[str, float]:
    configs = configs_of_size(size)

    def experiment() -> Experiment[Config]:
        return Experiment(config_class=Config, output_dir=directory, configs=configs)

    row: dict[str, float] = {"configs": size}
    row["create s"] = _timed(experiment().load)
    fresh = experiment()
    row["load s"] = _timed(fresh.load)
    state_file = layout.state_file_path(directory)
    with state_file.open("a") as file:
        file.write("# edited by hand\n")
    row["edited s"] = _timed(experiment().load)
    row["yaml parse s"] = _parse_once(state_file)
    fresh = experiment()
    fresh.load()
    row["get_status s"] = _timed(fresh.get_status)
    row["collect s"], row["collect MB"] = _collect(size, directory)

    names = list(fresh.load_state().configs)
    durations = []
    for name in names[:RECORDS]:
        now = utc_now()
        update = ConfigUpdate(name, "done", now, now)
        start = time.perf_counter()
        fresh.store.record(update)
        durations.append(time.perf_counter() - start)
    row["record ms"] = statistics.median(durations) * 1000
    row["fold s"] = _timed(fresh.store.fold)

    for name in names:
        directory_of = layout.config_dir(directory, name)
        directory_of.mkdir(parents=True)
        (directory_of / layout.RESULT_FILE).write_text(
            RESULT_TEMPLATE.format(name=name)
        )
        fresh.store.record(ConfigUpdate(name, "done"))
    fresh.store.fold()
    row["summary s"] = _timed(fresh.save_summary)
    row["peak MB"] = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    return row


def main(argv: list[str]) -> None:
    if argv[:1] == ["--one"]:
        with tempfile.TemporaryDirectory() as directory:
            print(json.dumps(measure(int(argv[1]), Path(directory) / "out")))
        return
    sizes = [int(arg) for arg in argv] or list(DEFAULT_SIZES)
    print(" | ".join(f"{column:>12}" for column in COLUMNS))
    for size in sizes:
        output = subprocess.run(
            [sys.executable, __file__, "--one", str(size)],
            capture_output=True,
            text=True,
            check=True,
        ).stdout
        row = json.loads(output)
        cells = [f"{int(row['configs']):>12,}"]
        cells += [f"{row[column]:>12.3f}" for column in COLUMNS[1:]]
        print(" | ".join(cells), flush=True)


if __name__ == "__main__":
    main(sys.argv[1:])
