"""Ways to read the state back, compared on the file the project writes (a script,
not a test).

    python benchmarks/state_formats.py                # 1,000 / 10,000 / 100,000 configs
    python benchmarks/state_formats.py 10000 --runs 5

`experiment.yaml` is the state, as a person reads and edits it; what reads it back at
100,000 configs decides how long `load()` takes. For each size, the state is written
by `Experiment.load()` (every config `todo`, as on a first run), then read back by:

- PyYAML's pure-Python `SafeLoader` and its libyaml-based `CSafeLoader`;
- the YAML libraries with a compiled core that are on PyPI: `ryaml` and `yaml_rs`
  (Rust), `rapidyaml` (C++; its tree is emitted as JSON, then parsed by `json`);
- the JSON index the project keeps beside the YAML (`.experiment.index.json`, the same
  data), with the standard `json` module and with `orjson`.

Each cell is the median of `--runs` parses of the file's bytes (once for the slowest
reader at 100,000 configs, which takes minutes). A reader whose data differs from
`CSafeLoader`'s (the YAML 1.1 reading the project writes for) is marked `differs`; one
that is not installed, `-` (`pip install -e '.[bench]'` installs them all).

Last, each YAML reader reads a small hand edit (`yes`, `off`, `010`, an unquoted
timestamp): the compiled YAML 1.2 readers read these differently from PyYAML's YAML 1.1
(the strings "yes" and "off", the int 10, a string), so a person's edit would change
meaning with the reader.

The project reads the index while the YAML's sha256 matches it (so the fast path is a
JSON parse, faster than any YAML reader) and parses the YAML with `CSafeLoader` after a
hand edit (`state.py`), keeping the reading the edit was made for.
"""

from __future__ import annotations

import argparse
import importlib
import json
import statistics
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

ROOT = Path(__file__).absolute().parent.parent
sys.path.insert(0, str(ROOT))

import yaml  # noqa: E402
from state_scale import Config, configs_of_size  # noqa: E402

from pytest_delphyne import layout  # noqa: E402
from pytest_delphyne.experiment import Experiment  # noqa: E402

DEFAULT_SIZES = (1_000, 10_000, 100_000)
# Above this many configs, the pure-Python loader is timed once.
SLOW_READER_SINGLE_RUN = 20_000


def _optional(module: str) -> Any:
    try:
        return importlib.import_module(module)
    except ImportError:
        return None


def _rapidyaml_reader(ryml: Any) -> Callable[[bytes], object]:
    def read(data: bytes) -> object:
        tree = ryml.parse_in_arena(data)
        return json.loads(ryml.emit_json(tree))

    return read


def readers() -> dict[str, tuple[str, Callable[[bytes], object] | None]]:
    """Each reader: the file it reads ("yaml" or "index") and a function of the
    file's bytes (None when its library is not installed)."""
    ryaml, yaml_rs, ryml, orjson = (
        _optional(name) for name in ("ryaml", "yaml_rs", "ryml", "orjson")
    )
    return {
        "PyYAML SafeLoader": (
            "yaml",
            lambda data: yaml.load(data, Loader=yaml.SafeLoader),
        ),
        "PyYAML CSafeLoader": (
            "yaml",
            lambda data: yaml.load(data, Loader=yaml.CSafeLoader),
        ),
        "ryaml": ("yaml", None if ryaml is None else lambda d: ryaml.loads(d.decode())),
        "yaml_rs": (
            "yaml",
            None if yaml_rs is None else lambda d: yaml_rs.loads(d.decode()),
        ),
        "rapidyaml + json": (
            "yaml",
            None if ryml is None else _rapidyaml_reader(ryml),
        ),
        "index, json": ("index", lambda data: json.loads(data)["state"]),
        "index, orjson": (
            "index",
            None if orjson is None else lambda data: orjson.loads(data)["state"],
        ),
    }


# What a person may type when editing the state by hand, which YAML 1.1 (PyYAML, the
# reading the project has always given) and YAML 1.2 read differently.
HAND_EDIT = b"""\
configs:
  c1:
    params: {model: gpt, sampled: yes, seed: 010, note: off}
    status: todo
    start_time: 2024-05-01 12:00:00+00:00
"""


def _write_state(size: int, directory: Path) -> dict[str, bytes]:
    configs = configs_of_size(size)
    Experiment(config_class=Config, output_dir=directory, configs=configs).load()
    return {
        "yaml": layout.state_file_path(directory).read_bytes(),
        "index": (directory / layout.STATE_INDEX_FILE).read_bytes(),
    }


def measure(size: int, runs: int) -> dict[str, str]:
    """One cell per reader: its median time, or why there is none."""
    with tempfile.TemporaryDirectory() as directory:
        files = _write_state(size, Path(directory) / "out")
    reference = yaml.load(files["yaml"], Loader=yaml.CSafeLoader)
    cells: dict[str, str] = {}
    for name, (source, read) in readers().items():
        if read is None:
            cells[name] = "-"
            continue
        data = files[source]
        count = (
            1 if name == "PyYAML SafeLoader" and size > SLOW_READER_SINGLE_RUN else runs
        )
        durations = []
        for _ in range(count):
            start = time.perf_counter()
            try:
                result = read(data)
            except Exception as error:  # a library that cannot read the file at all
                cells[name] = f"fails: {type(error).__name__}"
                break
            durations.append(time.perf_counter() - start)
        else:
            same = result == reference
            cells[name] = f"{statistics.median(durations):.3f} s" + (
                "" if same else " differs"
            )
    return cells


def hand_edit_readings() -> dict[str, str]:
    """Whether each YAML reader reads `HAND_EDIT` as `CSafeLoader` does."""
    reference = yaml.load(HAND_EDIT, Loader=yaml.CSafeLoader)
    cells: dict[str, str] = {}
    for name, (source, read) in readers().items():
        if source != "yaml":
            continue
        if read is None:
            cells[name] = "-"
            continue
        try:
            cells[name] = "same" if read(HAND_EDIT) == reference else "differs"
        except Exception as error:
            cells[name] = f"fails: {type(error).__name__}"
    return cells


def main(argv: list[str]) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("sizes", nargs="*", type=int, default=list(DEFAULT_SIZES))
    parser.add_argument("--runs", type=int, default=3, help="parses per median")
    options = parser.parse_args(argv)
    names = list(readers())
    print(" | ".join(f"{column:>20}" for column in ["configs", *names]))
    for size in options.sizes:
        cells = measure(size, options.runs)
        row = [f"{size:>20,}"] + [f"{cells[name]:>20}" for name in names]
        print(" | ".join(row), flush=True)
    readings = hand_edit_readings()
    print(
        "\nA hand edit (yes, off, 010, an unquoted timestamp), read as PyYAML reads it:"
    )
    for name, cell in readings.items():
        print(f"{name:>20} | {cell}")


if __name__ == "__main__":
    main(sys.argv[1:])
