"""The experiment report, built for the example project as a user builds it, and read
back: its numbers must be pandas' computation from `results_summary.csv`."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import urllib.parse
from pathlib import Path

import pandas
import pytest
import yaml
from report_page import ReportPage, chromium_path, open_in_chromium

from pytest_delphyne import Experiment, Run, layout
from pytest_delphyne.report import (
    CONFIGS_SHOWN,
    LEVELS_SHOWN,
    MISSING_PLOTTING_MESSAGE,
    ReportDependencyError,
    UnknownGroupError,
)
from pytest_delphyne.spending import RECORDED_IN_TOTAL
from pytest_delphyne.state import ConfigUpdate

EXAMPLE = Path(__file__).parent.parent / "example_project"
PARAMS = ["problem", "proposer", "temperature", "seed"]


def run(
    project: Path, *args: str, env: dict[str, str] | None = None
) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, *args],
        cwd=project,
        env={**os.environ, **(env or {})},
        capture_output=True,
        text=True,
        timeout=300,
    )


def copy_example(directory: Path) -> Path:
    shutil.copytree(
        EXAMPLE, directory / "example_project", ignore=shutil.ignore_patterns("output")
    )
    return directory


@pytest.fixture(scope="module")
def complete(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The example run to the end as the README runs it, with the report asked of
    pytest on both runs: the one with failures, then the `--lf` retry."""
    project = copy_example(tmp_path_factory.mktemp("complete"))
    command = [
        "-m",
        "pytest",
        "--delphyne-exp",
        "example_project/experiment.py",
        "--delphyne-report=report.html",
        "--delphyne-report-group-by=proposer",
    ]
    first = run(project, *command, "-n", "2")
    assert first.returncode == 1, first.stdout + first.stderr
    assert "report written to" in first.stdout
    retry = run(project, *command, "--lf", env={"CHECKER_TIME_LIMIT": "5"})
    assert retry.returncode == 0, retry.stdout + retry.stderr
    # Relative to where pytest runs, as its test files are shown.
    assert "experiment: report written to report.html" in retry.stdout
    return project


@pytest.fixture(scope="module")
def partial(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Only the large and small problems run (4 of them fail); medium stays todo.
    The report comes from `python exp.py report`, the partial summary from
    `force-summary`."""
    project = copy_example(tmp_path_factory.mktemp("partial"))
    ran = run(
        project,
        "-m",
        "pytest",
        "--delphyne-exp",
        "example_project/experiment.py",
        "-k",
        "large or small",
    )
    assert ran.returncode == 1, ran.stdout + ran.stderr
    assert "4 failed, 12 passed, 8 deselected" in ran.stdout
    script = "example_project/experiment.py"
    summary = run(project, script, "force-summary")
    assert summary.returncode == 0, summary.stderr
    report = run(project, script, "report", "--group-by", "proposer,temperature")
    assert report.returncode == 0, report.stderr
    path = output_dir(project) / "report.html"
    assert report.stdout.strip() == f"Report written to {path.relative_to(project)}"
    return project


def output_dir(project: Path) -> Path:
    return project / "example_project" / "output" / "experiment"


def rate(successes: float, done: float) -> str:
    return f"{successes / done:.1%}" if done else ""


def by_value(rows: list[dict[str, str]], column: str) -> dict[str, dict[str, str]]:
    return {row[column]: row for row in rows}


def value_text(value: object) -> str:
    if isinstance(value, float) and value.is_integer():
        return str(int(value))
    return str(value)


def test_complete_report_tables_equal_pandas_on_the_summary(complete: Path) -> None:
    page = ReportPage.read(complete / "report.html")
    summary = pandas.read_csv(output_dir(complete) / layout.SUMMARY_FILE)
    assert len(summary) == 24

    statuses = {row["status"]: row["configs"] for row in page.table("status-counts")}
    assert statuses == {"done": "24", "failed": "0", "todo": "0", "total": "24"}
    spent = {row["spent"]: row[RECORDED_IN_TOTAL] for row in page.table("spent-budget")}
    assert spent["num_requests"] == str(int(summary["num_requests"].sum()))
    assert spent["input_tokens"] == str(int(summary["input_tokens"].sum()))
    assert spent["price"] == f"{summary['price'].sum():.4g}"
    successes = int(summary["success"].sum())
    assert f"{successes} of 24 done configs succeeded" in page.all_text()

    for param in PARAMS:
        rows = by_value(page.table(f"by-{param}"), param)
        grouped = summary.groupby(param)
        assert set(rows) == {value_text(value) for value in grouped.groups}
        for value, group in grouped:
            row = rows[value_text(value)]
            assert row["configs"] == row["done"] == str(len(group))
            assert row["failed"] == row["todo"] == "0"
            assert row["successes"] == str(int(group["success"].sum()))
            assert row["success rate"] == f"{group['success'].mean():.1%}"
            assert row["price"] == f"{group['price'].sum():.4g}"

    groups = by_value(page.table("groups"), "proposer")
    for value, group in summary.groupby("proposer"):
        assert groups[str(value)]["successes"] == str(int(group["success"].sum()))
        assert groups[str(value)]["success rate"] == f"{group['success'].mean():.1%}"

    pair = page.table("pair-problem-proposer")
    pivot = summary.pivot_table(
        index="problem", columns="proposer", values="success", aggfunc="mean"
    )
    for row in pair:
        for proposer in pivot.columns:
            expected = pivot.at[row["problem \\ proposer"], proposer]
            assert row[str(proposer)] == f"{expected:.1%}"  # type: ignore[str-bytes-safe]

    configs = page.table("config-table")
    assert sorted(row["config"] for row in configs) == sorted(summary["config_name"])
    assert "failed-configs" not in page.tables
    assert "No config failed." in page.all_text()


def test_complete_report_has_every_plot_inline_and_links_that_resolve(
    complete: Path,
) -> None:
    report = complete / "report.html"
    page = ReportPage.read(report)
    ids = {image["id"] for image in page.images}
    expected = {f"plot-by-{param}" for param in PARAMS}
    expected |= {"plot-scaling-price", "plot-scaling-requests", "plot-durations"}
    expected |= {"plot-pair-problem-proposer", "plot-pair-temperature-seed"}
    assert expected <= ids
    for image in page.images:
        assert image["src"].startswith("data:image/png;base64,")
    # No page or script is fetched from anywhere: the page stands alone.
    assert "<script" not in report.read_text()
    assert not [link for link in page.links if "://" in link]
    assert len(page.links) >= 24 * 3
    for link in page.links:
        assert (report.parent / urllib.parse.unquote(link)).is_file(), link


def test_partial_report_shows_todo_and_failed_configs(partial: Path) -> None:
    output = output_dir(partial)
    page = ReportPage.read(output / "report.html")
    summary = pandas.read_csv(output / layout.SUMMARY_FILE)
    state = yaml.safe_load((output / layout.STATE_FILE).read_text())["configs"]
    failed = sorted(name for name, info in state.items() if info["status"] == "failed")
    assert len(summary) == 12
    assert len(failed) == 4

    statuses = {row["status"]: row["configs"] for row in page.table("status-counts")}
    assert statuses == {"done": "12", "failed": "4", "todo": "8", "total": "24"}

    problems = by_value(page.table("by-problem"), "problem")
    assert problems["medium"] == {
        "problem": "medium",
        "configs": "8",
        "done": "0",
        "failed": "0",
        "todo": "8",
        "successes": "0",
        "success rate": "",
        "price": "0",
        "duration (s)": "0.000",
    }
    for value, group in summary.groupby("problem"):
        row = problems[str(value)]
        assert row["done"] == str(len(group))
        assert row["successes"] == str(int(group["success"].sum()))
        assert row["success rate"] == rate(group["success"].sum(), len(group))
    assert problems["large"]["failed"] == "4"

    groups = page.table("groups")
    for (proposer, temperature), group in summary.groupby(["proposer", "temperature"]):
        (row,) = [
            row
            for row in groups
            if row["proposer"] == proposer
            and row["temperature"] == value_text(temperature)
        ]
        assert row["successes"] == str(int(group["success"].sum()))

    failures = page.table("failed-configs")
    assert sorted(row["config"] for row in failures) == failed
    for row in failures:
        assert "CheckerTimeout: proving that" in row["end of the traceback"]
        assert row["file"] == "exception.txt"
    statuses_listed = {
        row["config"]: row["status"] for row in page.table("config-table")
    }
    assert statuses_listed == {name: info["status"] for name, info in state.items()}


def test_report_group_by_a_name_that_is_no_hyperparameter_is_refused(
    partial: Path,
) -> None:
    script = "example_project/experiment.py"
    before = (output_dir(partial) / "report.html").read_bytes()
    refused = run(partial, script, "report", "--group-by", "proposer,model")
    assert refused.returncode == 2
    assert "cannot group the report by 'model'" in refused.stderr
    assert "problem, proposer, temperature, seed, max_proposals" in refused.stderr
    assert (output_dir(partial) / "report.html").read_bytes() == before

    # Through pytest, before any config runs.
    refused = run(
        partial,
        "-m",
        "pytest",
        "--delphyne-exp",
        script,
        "--delphyne-report=r.html",
        "--delphyne-report-group-by=modle",
    )
    assert refused.returncode == 4
    assert "--delphyne-report-group-by: cannot group the report by 'modle'" in (
        refused.stderr
    )
    state = yaml.safe_load((output_dir(partial) / layout.STATE_FILE).read_text())
    assert sum(info["status"] == "todo" for info in state["configs"].values()) == 8
    assert not (partial / "r.html").exists()


def test_report_output_option_writes_where_asked(partial: Path) -> None:
    script = "example_project/experiment.py"
    written = run(partial, script, "report", "--output", "reports/partial.html")
    assert written.returncode == 0, written.stderr
    report = partial / "reports" / "partial.html"
    page = ReportPage.read(report)
    # Links are relative to where the report lies.
    assert page.links
    for link in page.links:
        assert (report.parent / urllib.parse.unquote(link)).is_file(), link


@pytest.fixture
def without_matplotlib(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(sys.modules, "matplotlib", None)


@pytest.mark.usefixtures("without_matplotlib")
def test_report_without_matplotlib_names_the_extra(pytester: pytest.Pytester) -> None:
    pytester.makepyfile(
        exp="""
        from dataclasses import dataclass
        from pytest_delphyne import Experiment, Run

        @dataclass
        class Config:
            x: int

            def instantiate(self, context):
                return Run(program=lambda env: None)

        experiment = Experiment(
            config_class=Config, output_dir="out", configs=[Config(1), Config(2)]
        )
        """
    )
    result = pytester.runpytest("--delphyne-exp=exp.py", "--delphyne-report=r.html")
    assert result.ret == pytest.ExitCode.USAGE_ERROR
    assert f"ERROR: --delphyne-report: {MISSING_PLOTTING_MESSAGE}" in str(result.stderr)
    assert "pip install 'pytest-delphyne[report]'" in MISSING_PLOTTING_MESSAGE
    # Refused before anything ran: no config has a result.
    assert not (pytester.path / "out" / layout.CONFIGS_DIR).exists()

    sys.path.insert(0, str(pytester.path))
    try:
        import exp  # type: ignore[import-not-found]
    finally:
        sys.path.remove(str(pytester.path))
        sys.modules.pop("exp", None)
    with pytest.raises(ReportDependencyError, match=r"pytest-delphyne\[report\]"):
        exp.experiment.report()


def test_report_of_a_large_grid_aggregates_and_stays_small(tmp_path: Path) -> None:
    """20,000 configs over 5,000 benchmark items: too many to list or to plot one
    by one."""
    from dataclasses import dataclass

    @dataclass
    class Config:
        model: str
        item: int

        def instantiate(self, context: object) -> Run:
            return Run(program=lambda env: None)

    size = 20_000
    experiment = Experiment(
        config_class=Config,
        output_dir=tmp_path / "out",
        configs=[Config(f"model-{i % 4}", i // 4) for i in range(size)],
    ).load()
    names = list(experiment.load_state().configs)
    for index, name in enumerate(names):
        if index % 5 == 4:
            continue  # one in five stays todo
        directory = experiment.config_dir(name)
        directory.mkdir(parents=True)
        (directory / layout.RESULT_FILE).write_text(
            "duration: {}\noutcome:\n  result:\n    success: {}\n"
            "    spent_budget: {{num_requests: {}, price: {}}}\n".format(
                0.5 + index % 97,
                "true" if index % 3 else "false",
                1 + index % 9,
                0.001 * (1 + index % 50),
            )
        )
        experiment.store.record(ConfigUpdate(name, "done"))
    experiment.store.fold()

    path = experiment.report(group_by="model")
    size_mb = path.stat().st_size / 1e6
    assert size_mb < 3, f"{size_mb:.1f} MB"
    page = ReportPage.read(path)
    assert len(page.table("config-table")) == CONFIGS_SHOWN
    assert f"The first {CONFIGS_SHOWN} are listed" in page.all_text()
    items = page.table("by-item")
    assert len(items) == LEVELS_SHOWN
    assert "5000 values" in page.all_text()
    models = by_value(page.table("by-model"), "model")
    assert sum(int(row["configs"]) for row in models.values()) == size
    assert sum(int(row["done"]) for row in models.values()) == size * 4 // 5
    # One plot per figure, not one mark per config: the same plots as a small grid.
    assert {image["id"] for image in page.images} == {
        "plot-by-model",
        "plot-by-item",
        "plot-scaling-price",
        "plot-scaling-requests",
        "plot-durations",
    }


def test_report_group_by_unknown_name_in_the_api(tmp_path: Path) -> None:
    from dataclasses import dataclass

    @dataclass
    class Config:
        x: int

        def instantiate(self, context: object) -> Run:
            return Run(program=lambda env: None)

    experiment = Experiment(
        config_class=Config, output_dir=tmp_path, configs=[Config(1), Config(2)]
    ).load()
    with pytest.raises(UnknownGroupError, match=r"'y'.*hyperparameters: x"):
        experiment.report(group_by=["y"])
    assert not (tmp_path / "report.html").exists()
    # Nothing ran yet: the report still says so.
    page = ReportPage.read(experiment.report())
    statuses = {row["status"]: row["configs"] for row in page.table("status-counts")}
    assert statuses == {"done": "0", "failed": "0", "todo": "2", "total": "2"}


def test_report_renders_in_headless_chromium_offline(
    complete: Path, tmp_path: Path
) -> None:
    if chromium_path() is None:
        if os.environ.get("DELPHYNE_REQUIRE_BROWSER"):
            pytest.fail("DELPHYNE_REQUIRE_BROWSER is set but chromium is not installed")
        pytest.skip("chromium is not installed (.ci/run installs it)")
    report = complete / "report.html"
    screenshot = tmp_path / "report.png"
    found = open_in_chromium(report, screenshot)
    assert found["title"] == "factor-search: experiment report"
    plots = ReportPage.read(report).images
    assert len(found["images"]) == len(plots) >= 9
    for image in found["images"]:
        assert image["complete"], image
        assert image["width"] > 0, image
        assert image["height"] > 0, image
        assert image["shown"] > 0, image
    # The page asked for nothing but itself.
    assert found["requests"] == [report.resolve().as_uri()]
    assert screenshot.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert screenshot.stat().st_size > 50_000
