"""How the state scales with the number of configs (a script, not a test).

    python benchmarks/state_scale.py                 # 1,000 / 10,000 / 100,000 configs
    python benchmarks/state_scale.py 1000 5000       # chosen sizes

Each size runs in a fresh process (so peak memory is per size) and prints one row:
creating the state (`load()` on an empty directory), `load()` on an existing state
(fresh process view: nothing cached), `get_status()` right after (cached), recording
one result (median of 1,000 `record` calls), the fold (`StateStore.fold()` with 1,000
journal entries), `save_summary()` (every config done with a result file), and peak
memory (`ru_maxrss`). Targets at 100,000 configs: load < 5 s, record < 1 ms.
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
    "get_status s",
    "record ms",
    "fold s",
    "summary s",
    "peak MB",
)

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


def _timed(action: Callable[[], object]) -> float:
    start = time.perf_counter()
    action()
    return time.perf_counter() - start


def measure(size: int, directory: Path) -> dict[str, float]:
    configs = [Config(f"model-{i % 7}", 0.1 * (i % 10), i) for i in range(size)]

    def experiment() -> Experiment[Config]:
        return Experiment(config_class=Config, output_dir=directory, configs=configs)

    row: dict[str, float] = {"configs": size}
    row["create s"] = _timed(experiment().load)
    fresh = experiment()
    row["load s"] = _timed(fresh.load)
    row["get_status s"] = _timed(fresh.get_status)

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
