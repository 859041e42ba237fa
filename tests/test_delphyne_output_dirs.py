"""Output directories the reference launcher recorded, read and written here (SPEC §3).

The fixtures are Delphyne's own `test-output` directories (see
`fixtures/delphyne/README.md`): their state, results and the summaries the reference
wrote beside them.
"""

from __future__ import annotations

import csv
import os
import shutil
import subprocess
import sys
from datetime import datetime
from pathlib import Path

import pytest
import yaml

from pytest_delphyne import layout, path_stem
from pytest_delphyne.summary import SPENT_PREFIX

FIXTURES = Path(__file__).parent / "fixtures" / "delphyne"

EXPERIMENT = """
from dataclasses import dataclass

from pytest_delphyne import Experiment, Outcome, Run


def prove(env, bench_name):
    env.spend(num_requests=1, price=0.001)
    return Outcome(success=True, values=[bench_name])


@dataclass
class AbductionConfig:
    bench_name: str
    model_cycle: list[tuple[str, int]]
    temperature: float
    num_completions: int
    max_requests_per_attempt: int
    max_dollar_budget: float
    seed: int

    def instantiate(self, context):
        return Run(program=prove, args={"bench_name": self.bench_name})


@dataclass
class BaselineConfig:
    bench_name: str
    model_name: str
    temperature: float
    max_feedback_cycles: int
    seed: int

    def instantiate(self, context):
        return Run(program=prove, args={"bench_name": self.bench_name})


abduction = [
    AbductionConfig(
        bench_name=bench,
        model_cycle=[("gpt-4.1-nano", 2), ("gpt-4.1-mini", 1)],
        temperature=1.5,
        num_completions=4,
        max_requests_per_attempt=4,
        max_dollar_budget=0.1,
        seed=0,
    )
    for bench in BENCHES
]
baseline = [BaselineConfig("1", "mistral-small-2503", 1.0, 3, 0)]

if __name__ == "__main__":
    Experiment(
        config_class=CLASS,
        configs=CONFIGS,
        output_dir="out",
    ).run_cli()
"""


def recorded_dir(tmp_path: Path, which: str, benches: list[str]) -> Path:
    """A copy of a recorded directory as `out`, and an experiment file listing it."""
    shutil.copytree(FIXTURES / which, tmp_path / "out")
    kind = "abduction" if "abduction" in which else "baseline"
    text = EXPERIMENT.replace("BENCHES", repr(benches))
    config_class = "AbductionConfig" if kind == "abduction" else "BaselineConfig"
    text = text.replace("CLASS", config_class).replace("CONFIGS", kind)
    (tmp_path / "exp.py").write_text(text)
    return tmp_path


@pytest.fixture
def abduction(tmp_path: Path) -> Path:
    return recorded_dir(tmp_path, "test_abduction_experiment", ["1", "7"])


@pytest.fixture
def baseline(tmp_path: Path) -> Path:
    return recorded_dir(tmp_path, "test_baseline_experiment", ["1"])


def exp(
    path: Path, *args: str, env: dict[str, str] | None = None
) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "exp.py", *args],
        cwd=path,
        env={**os.environ, **(env or {})},
        capture_output=True,
        text=True,
        timeout=300,
    )


def snapshot(directory: Path) -> dict[str, tuple[bytes, int]]:
    """Every file under `directory`, with its bytes and modification time."""
    return {
        str(path.relative_to(directory)): (path.read_bytes(), path.stat().st_mtime_ns)
        for path in sorted(directory.rglob("*"))
        if path.is_file()
    }


def read_csv(path: Path) -> list[dict[str, str]]:
    with path.open(newline="") as file:
        return list(csv.DictReader(file))


def test_status_counts_what_the_reference_recorded_and_writes_nothing(
    abduction: Path,
) -> None:
    before = snapshot(abduction / "out")
    result = exp(abduction, "status")
    assert result.returncode == 0, result.stderr
    assert "  - 2 configurations done\n" in result.stdout
    # 7 + 1 requests, 0.0036566 + 0.0002142 dollars, as the result files hold.
    assert "recorded in total: 8 requests" in result.stdout
    assert "price 0.0039" in result.stdout
    assert snapshot(abduction / "out") == before


@pytest.mark.parametrize(
    ("which", "arguments"),
    [
        ("test_abduction_experiment", ["--add_timing=True"]),
        ("test_baseline_experiment", []),
    ],
    ids=["abduction-with-timing", "baseline"],
)
def test_summary_of_a_recorded_directory_matches_the_references_cell_for_cell(
    tmp_path: Path, which: str, arguments: list[str]
) -> None:
    benches = ["1", "7"] if "abduction" in which else ["1"]
    path = recorded_dir(tmp_path, which, benches)
    reference = read_csv(FIXTURES / which / layout.SUMMARY_FILE)
    result = exp(path, "force_summary", *arguments)
    assert result.returncode == 0, result.stderr
    ours = read_csv(path / "out" / layout.SUMMARY_FILE)
    assert len(ours) == len(reference)
    for mine, theirs in zip(ours, reference, strict=True):
        for column, value in theirs.items():
            # The reference overwrote a param named like a budget column; here the
            # budget keeps the column under a prefix, and the param its own.
            if column in mine and f"{SPENT_PREFIX}{column}" in mine:
                assert mine[f"{SPENT_PREFIX}{column}"] == value, column
            else:
                assert mine[column] == value, column


def test_summary_keeps_every_column_of_the_reference_in_its_order(
    abduction: Path,
) -> None:
    assert exp(abduction, "force_summary", "--add_timing").returncode == 0
    with (abduction / "out" / layout.SUMMARY_FILE).open() as file:
        header = file.readline().rstrip("\n").split(",")
    assert header == [
        "bench_name",
        "model_cycle",
        "temperature",
        "num_completions",
        "max_requests_per_attempt",
        "max_dollar_budget",
        "seed",
        "success",
        f"{SPENT_PREFIX}num_completions",
        "num_requests",
        "input_tokens",
        "cached_input_tokens",
        "output_tokens",
        "price",
        "duration",
        "config_name",
    ]
    rows = read_csv(abduction / "out" / layout.SUMMARY_FILE)
    # The hyperparameter is kept, and the budget beside it.
    assert [row["num_completions"] for row in rows] == ["4", "4"]
    assert [row[f"{SPENT_PREFIX}num_completions"] for row in rows] == ["28", "4"]
    assert [row["duration"] for row in rows] == ["18.732235", "3.054119"]


def test_times_the_reference_wrote_are_kept_as_written_in_any_zone(
    abduction: Path,
) -> None:
    # A third bench: the run adds it, runs it and rewrites the state.
    (abduction / "exp.py").write_text(
        (abduction / "exp.py").read_text().replace("['1', '7']", "['1', '7', '9']")
    )
    result = exp(abduction, "run", env={"TZ": "America/New_York"})
    assert result.returncode == 0, result.stdout + result.stderr
    text = (abduction / "out" / layout.STATE_FILE).read_text()
    assert "    start_time: 2025-11-05 19:23:36.877135\n" in text
    assert "    end_time: 2025-11-05 19:23:55.609370\n" in text
    assert "'" not in text.split("configs:")[1].split("params")[0]
    # As the reference's summary reads the state: every time is a YAML timestamp.
    state = yaml.safe_load(text)
    for info in state["configs"].values():
        assert isinstance(info["start_time"], datetime)
        assert isinstance(info["end_time"], datetime)
        assert (info["end_time"] - info["start_time"]).total_seconds() >= 0
    assert len(state["configs"]) == 3


def test_retrying_a_recorded_directory_without_failures_changes_nothing(
    abduction: Path,
) -> None:
    before = snapshot(abduction / "out")
    result = exp(abduction, "run", "--retry_errors=True")
    assert result.returncode == 0, result.stdout + result.stderr
    # The reference's summary too, with the timing column our run would not write.
    # (`run` keeps pytest's own cache, for `--lf`, in the output directory.)
    assert "duration" in (abduction / "out" / layout.SUMMARY_FILE).read_text()
    after = snapshot(abduction / "out")
    assert {
        k: v for k, v in after.items() if not k.startswith(".pytest_cache")
    } == before


def test_plan_and_report_of_a_recorded_directory_only_read(
    pytester: pytest.Pytester, abduction: Path
) -> None:
    before = snapshot(abduction / "out")
    plan = pytester.runpytest_subprocess(
        f"--delphyne-exp={abduction / 'exp.py'}", "--co", "-p", "no:cacheprovider"
    )
    assert plan.ret == 0
    plan.stdout.fnmatch_lines(["*473d263f-c542-45f7-84d2-d8e3ba379d81*done*"])
    report = exp(abduction, "report", "--output", str(pytester.path / "report.html"))
    assert report.returncode == 0, report.stderr
    html = (pytester.path / "report.html").read_text()
    assert "87e5408d-b44a-4fc3-8501-ff77a6abcdae" in html
    assert snapshot(abduction / "out") == before


@pytest.mark.parametrize(
    ("path", "stem"),
    [
        ("exp.py", "exp"),
        ("/a/b/exp.v2.py", "exp.v2"),
        (Path("x/run.tar.py"), "run.tar"),
    ],
)
def test_path_stem_drops_the_last_suffix_only(path: str | Path, stem: str) -> None:
    assert path_stem(path) == stem
