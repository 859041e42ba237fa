"""The experiment report at 1,000 / 10,000 / 100,000 configs: time to build it and the
size of the page.

    python benchmarks/report_scale.py [SIZE ...] [--dir DIR]

Each size is an experiment over models x benchmark items whose configs are all done
(one in six unsuccessfully) with a result file each, as a finished run leaves them;
`--dir /dev/shm` keeps the disk out of the figures. Each size runs in its own process.
"""

from __future__ import annotations

import argparse
import json
import resource
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

from pytest_delphyne import Experiment, Run, layout
from pytest_delphyne.state import ConfigUpdate

DEFAULT_SIZES = (1_000, 10_000, 100_000)
MODELS = 4

RESULT_TEMPLATE = """\
duration: {duration}
outcome:
  result:
    success: {success}
    values: []
    spent_budget:
      num_requests: {requests}
      num_completions: {requests}
      input_tokens: {tokens}
      cached_input_tokens: 0
      output_tokens: 20
      price: {price}
"""


@dataclass
class Config:
    model: str
    item: int
    temperature: float = 0.7

    def instantiate(self, context: object) -> Run:
        return Run(program=lambda env: None)


def measure(size: int, directory: Path) -> dict[str, float]:
    experiment = Experiment(
        config_class=Config,
        output_dir=directory,
        configs=[Config(f"model-{i % MODELS}", i // MODELS) for i in range(size)],
    ).load()
    for index, name in enumerate(experiment.load_state().configs):
        config_dir = experiment.config_dir(name)
        config_dir.mkdir(parents=True)
        (config_dir / layout.RESULT_FILE).write_text(
            RESULT_TEMPLATE.format(
                duration=0.5 + index % 89,
                success="false" if index % 6 == 0 else "true",
                requests=1 + index % 7,
                tokens=100 * (1 + index % 7),
                price=0.0004 * (1 + index % 7),
            )
        )
        experiment.store.record(ConfigUpdate(name, "done"))
    experiment.store.fold()
    start = time.perf_counter()
    path = experiment.report(group_by="model")
    seconds = time.perf_counter() - start
    return {
        "configs": size,
        "report s": seconds,
        "page MB": path.stat().st_size / 1e6,
        "peak MB": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("sizes", nargs="*", type=int, default=list(DEFAULT_SIZES))
    parser.add_argument("--dir", default=None, help="Where to build the experiments")
    parser.add_argument("--one", type=int, help=argparse.SUPPRESS)
    arguments = parser.parse_args()
    if arguments.one:
        with tempfile.TemporaryDirectory(dir=arguments.dir) as directory:
            row = measure(arguments.one, Path(directory) / "out")
        print(json.dumps(row))
        return
    columns = ["configs", "report s", "page MB", "peak MB"]
    print(" | ".join(f"{column:>10}" for column in columns))
    for size in arguments.sizes:
        command = [sys.executable, __file__, "--one", str(size)]
        if arguments.dir:
            command += ["--dir", arguments.dir]
        output = subprocess.run(command, capture_output=True, text=True, check=True)
        row = json.loads(output.stdout)
        cells = [f"{size:>10,}"] + [f"{row[column]:>10.2f}" for column in columns[1:]]
        print(" | ".join(cells), flush=True)


if __name__ == "__main__":
    main()
