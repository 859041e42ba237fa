"""Comparing experiments: the table must be pandas' computation on the same rows,
and on Delphyne's own find_invariants summaries it must be what that example's
`analysis.py` prints.

`fixtures/find_invariants/` holds the two summaries of Delphyne's
`examples/find_invariants/experiments/analysis/data/` (commit e451493f), and what
that directory's `analysis.py` gives on them: `analysis_output.txt` is what it
prints (`python analysis.py`, pandas 3.1), and `analysis_table.csv` its
`analyze_table(...)` result after `apply_cutout_price(data, 0.2)`, written with
`to_csv(index=False)`.
"""

from __future__ import annotations

import os
import re
import shutil
import sys
import urllib.parse
from pathlib import Path

import numpy
import pandas
import pytest
from report_page import ReportPage, chromium_path, open_in_chromium

from pytest_delphyne import compare, layout
from pytest_delphyne.comparison import ComparisonError, SourceError
from pytest_delphyne.comparison.__main__ import WRITTEN_MESSAGE
from pytest_delphyne.comparison.figures import (
    COLUMN_WIDTH,
    PGF_WITHOUT_TEX_MESSAGE,
    scaling_curves,
    success_by,
    tex_available,
)
from pytest_delphyne.comparison.page import PAGE_FILE
from pytest_delphyne.comparison.sources import NO_SUMMARY_IN_DIRECTORY_MESSAGE
from pytest_delphyne.comparison.table import AGENT_COLUMN, SEED_COLUMN

FIXTURES = Path(__file__).parent / "fixtures" / "find_invariants"
FIND_INVARIANTS_ARGS = [
    str(FIXTURES / "baseline.csv"),
    str(FIXTURES / "abduction.csv"),
    "--agent-by",
    "baseline:model_name,temperature,max_feedback_cycles",
    "--agent-by",
    "abduction:max_requests_per_attempt,temperature",
    "--seed-field",
    "seed",
    "--price-cutoff",
    "0.2",
    "--price-unit",
    "cents",
]
MEASURES = [
    "problems_solved_mean",
    "problems_solved_std",
    "avg_price_mean",
    "avg_price_std",
    "median_price_mean",
    "median_price_std",
]


def run_compare(pytester: pytest.Pytester, *args: str) -> pytest.RunResult:
    return pytester.run(sys.executable, "-m", "pytest_delphyne.comparison", *args)


@pytest.fixture(scope="module")
def find_invariants(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The comparison of the find_invariants summaries, as the README makes it."""
    import subprocess

    output = tmp_path_factory.mktemp("find_invariants") / "comparison"
    done = subprocess.run(
        [
            sys.executable,
            "-m",
            "pytest_delphyne.comparison",
            *FIND_INVARIANTS_ARGS,
            "--figure-format",
            "pdf,svg",
            "-o",
            str(output),
        ],
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert done.returncode == 0, done.stderr
    (output / "stdout.txt").write_text(done.stdout)
    return output


def latex_rows(text: str) -> dict[str, list[str]]:
    """The body rows of a LaTeX tabular, by their first cell."""
    rows = {}
    for line in text.splitlines():
        if line.endswith("\\\\") and "$\\pm$" in line:
            cells = [cell.strip() for cell in line.removesuffix("\\\\").split("&")]
            rows[cells[0].replace("\\_", "_")] = cells[1:]
    return rows


def test_find_invariants_table_is_analysis_py_table_cell_for_cell(
    find_invariants: Path,
) -> None:
    expected = pandas.read_csv(FIXTURES / "analysis_table.csv").set_index("agent")
    ours = pandas.read_csv(find_invariants / "table.csv").set_index("agent")
    assert sorted(ours.index) == sorted(expected.index)
    assert len(expected) == 13
    pandas.testing.assert_frame_equal(
        ours.loc[expected.index, MEASURES], expected[MEASURES], rtol=1e-12
    )
    assert set(ours["seeds"]) == {3}
    assert set(ours["problems"]) == {124}

    printed = (FIXTURES / "analysis_output.txt").read_text()
    latex = printed.split("LaTeX table:\n")[1]
    tex = (find_invariants / "table.tex").read_text()
    assert latex_rows(tex) == latex_rows(latex)
    assert len(latex_rows(tex)) == 13
    assert tex.startswith("\\begin{tabular}{lrrr}\n\\toprule\n")
    assert "\\midrule\n" in tex
    assert tex.endswith("\\bottomrule\n\\end{tabular}\n")

    # Experiments in the order given, then agents by their fields' values.
    assert list(ours.index[:3]) == [
        f"baseline-gpt-4o-2024-08-06-0.7-{c}" for c in "013"
    ]
    assert list(ours.index[-4:]) == [
        "abduction-4-1.5",
        "abduction-4-1.7",
        "abduction-6-1.5",
        "abduction-6-1.7",
    ]
    stdout = (find_invariants / "stdout.txt").read_text()
    assert "| abduction-6-1.7 " in stdout
    assert "123.7 ± 0.6 |" in stdout
    assert stdout.splitlines()[-1] == WRITTEN_MESSAGE.format(
        page=find_invariants / PAGE_FILE
    )
    markdown = (find_invariants / "table.md").read_text()
    assert markdown.splitlines()[0].startswith("| Agent ")
    assert markdown in stdout


def test_find_invariants_figures_are_written_at_a_column_width(
    find_invariants: Path,
) -> None:
    stems = [
        "scaling-price",
        "scaling-requests",
        "success-by-model-name",
        "success-by-temperature",
        "success-by-max-feedback-cycles",
        "success-by-max-requests-per-attempt",
    ]
    for stem in stems:
        pdf = (find_invariants / f"{stem}.pdf").read_bytes()
        assert pdf.startswith(b"%PDF")
        width = float(re.search(rb"/MediaBox \[ 0 0 ([\d.]+) ", pdf)[1])  # type: ignore[index]
        assert width == pytest.approx(COLUMN_WIDTH * 72)
        assert (find_invariants / f"{stem}.svg").read_text().startswith("<?xml")
        png = (find_invariants / f"{stem}.png").read_bytes()
        assert png.startswith(b"\x89PNG\r\n\x1a\n")
    curve = pandas.read_csv(find_invariants / "scaling-price.csv")
    last = curve.groupby(AGENT_COLUMN)["problems_solved_mean"].last()
    table = pandas.read_csv(find_invariants / "table.csv").set_index("agent")
    # At the largest budget, every problem solved is counted.
    pandas.testing.assert_series_equal(
        last.sort_index(),
        table["problems_solved_mean"].sort_index(),
        check_names=False,
    )


def synthetic_summary(seed: int, models: list[str]) -> pandas.DataFrame:
    rng = numpy.random.default_rng(seed)
    rows = []
    for model in models:
        for temperature in (0.0, 0.7):
            for run in range(4):
                for problem in range(10):
                    price = float(rng.lognormal(-3, 1.2))
                    rows.append(
                        {
                            "problem": f"p{problem}",
                            "model": model,
                            "temperature": temperature,
                            "run": run,
                            "success": bool(rng.random() < 0.6),
                            "num_requests": int(rng.integers(0, 20)),
                            "price": price if problem else 0.0,
                        }
                    )
    return pandas.DataFrame(rows)


def pandas_table(frame: pandas.DataFrame, cutoff: float) -> pandas.DataFrame:
    """The table computed directly, as a researcher would with pandas."""
    frame = frame.copy()
    over = frame["price"] > cutoff
    frame["success"] = frame["success"] & ~over
    frame["price"] = frame["price"].clip(upper=cutoff)
    per_run = frame.groupby(["agent", "run"]).agg(
        solved=("success", "sum"),
        mean_price=("price", "mean"),
        median_price=("price", "median"),
    )
    stats = per_run.groupby("agent").agg(["mean", "std"])
    stats.columns = pandas.Index(MEASURES)
    for column in MEASURES[2:]:
        stats[column] = stats[column] * 100
    return stats


def test_table_equals_pandas_on_the_same_rows(pytester: pytest.Pytester) -> None:
    first = synthetic_summary(1, ["small", "large"])
    second = synthetic_summary(2, ["huge"])
    first.to_csv(pytester.path / "first.csv", index=False)
    second.to_csv(pytester.path / "second.csv", index=False)
    result = run_compare(
        pytester,
        "one=first.csv",
        "two=second.csv",
        "--agent-by",
        "model,temperature",
        "--seed-field",
        "run",
        "--price-cutoff",
        "0.1",
        "--price-unit",
        "cents",
        "--figure-format",
        "pdf",
        "-o",
        "out",
    )
    assert result.ret == 0, result.stderr.str()
    both = pandas.concat(
        [
            first.assign(
                agent="one-" + first["model"] + "-" + first["temperature"].astype(str)
            ),
            second.assign(
                agent="two-" + second["model"] + "-" + second["temperature"].astype(str)
            ),
        ]
    )
    expected = pandas_table(both, 0.1)
    ours = pandas.read_csv(pytester.path / "out" / "table.csv").set_index("agent")
    assert list(ours.index) == [
        "one-large-0.0",
        "one-large-0.7",
        "one-small-0.0",
        "one-small-0.7",
        "two-huge-0.0",
        "two-huge-0.7",
    ]
    pandas.testing.assert_frame_equal(
        ours.loc[expected.index, MEASURES], expected, check_names=False, rtol=1e-12
    )
    assert list(ours["experiment"]) == ["one"] * 4 + ["two"] * 2
    assert set(ours["seeds"]) == {4}
    page = ReportPage.read(pytester.path / "out" / PAGE_FILE)
    cells = {row["Agent"]: row for row in page.table("agents")}
    huge = expected.loc["two-huge-0.7"]
    assert cells["two-huge-0.7"]["Median price per problem (cents)"] == (
        f"{huge['median_price_mean']:.2f} ± {huge['median_price_std']:.2f}"
    )


def test_without_seed_field_each_agent_is_one_run_without_deviation(
    pytester: pytest.Pytester,
) -> None:
    frame = synthetic_summary(3, ["small"])
    frame.to_csv(pytester.path / "runs.csv", index=False)
    comparison = compare([pytester.path / "runs.csv"], pytester.path / "out")
    table = comparison.table.set_index("agent")
    assert list(table.index) == ["runs"]
    assert table.at["runs", "seeds"] == 1
    assert table.at["runs", "problems_solved_mean"] == frame["success"].sum()
    assert table.at["runs", "avg_price_mean"] == pytest.approx(frame["price"].mean())
    assert table["problems_solved_std"].isna().all()
    markdown = comparison.tables["md"].read_text()
    cells = [cell.strip() for cell in markdown.splitlines()[2].strip("|").split("|")]
    assert cells == [
        "runs",
        f"{frame['success'].sum():.1f}",
        f"{frame['price'].mean():.4f}",
        f"{frame['price'].median():.4f}",
    ]
    # No agent-by: no success-by figure, the two scaling curves only.
    assert set(comparison.figures) == {"scaling-price", "scaling-requests"}


def test_scaling_curves_count_problems_solved_within_each_threshold() -> None:
    rows = synthetic_summary(4, ["small", "large"])
    rows[AGENT_COLUMN] = rows["model"]
    rows[SEED_COLUMN] = rows["run"]
    thresholds = numpy.array([0.0, 0.01, 0.05, 0.2, 1.0, 10.0])
    curves = scaling_curves(rows, ["small", "large"], "price", thresholds)
    assert len(curves) == 2 * len(thresholds)
    for point in curves.to_dict("records"):
        mine = rows[rows[AGENT_COLUMN] == point[AGENT_COLUMN]]
        within = mine["success"] & (mine["price"] <= point["threshold"])
        per_seed = within.groupby(mine["run"]).sum()
        assert point["problems_solved_mean"] == pytest.approx(per_seed.mean())
        assert point["problems_solved_std"] == pytest.approx(per_seed.std())

    rows["experiment"] = "exp"
    rates = success_by(rows, "temperature").set_index("temperature")
    for temperature, group in rows.groupby("temperature"):
        per_seed = group.groupby("run")["success"].mean()
        assert rates.at[temperature, "success_rate_mean"] == pytest.approx(
            per_seed.mean()
        )
        assert rates.at[temperature, "success_rate_std"] == pytest.approx(
            per_seed.std()
        )


EXPERIMENT = """
    from dataclasses import dataclass
    from pytest_delphyne import Budget, Experiment, Outcome, Run

    def solve(env, problem, model, seed):
        price = 0.01 * (1 + problem) * (2 if model == "big" else 1) + 0.001 * seed
        env.spend(price=price, num_requests=1 + problem)
        return Outcome(success=(problem + seed) % 3 != 0 or model == "big", values=[])

    @dataclass
    class Config:
        problem: int
        model: str
        seed: int

        def instantiate(self, context):
            return Run(
                program=solve,
                args={"problem": self.problem, "model": self.model, "seed": self.seed},
                budget=Budget(price=1.0),
            )

    experiment = Experiment(
        config_class=Config,
        output_dir="out/exp",
        configs=[
            Config(p, m, s) for p in range(4) for m in ("small", "big") for s in (0, 1)
        ],
    )
"""


def test_output_directory_and_experiment_file_give_the_same_table(
    pytester: pytest.Pytester,
) -> None:
    pytester.makepyfile(exp=EXPERIMENT)
    ran = pytester.runpytest("--delphyne-exp=exp.py")
    ran.assert_outcomes(passed=16)
    output_dir = pytester.path / "out" / "exp"
    assert layout.summary_file_path(output_dir).is_file()
    # The experiment file needs no summary: move it away.
    summary = layout.summary_file_path(output_dir)
    kept = pytester.path / "summary.csv"
    shutil.copy(summary, kept)
    from_file = compare(
        ["exp.py"], pytester.path / "a", agent_by="model", seed_field="seed"
    )
    summary.unlink()
    with pytest.raises(SourceError) as refused:
        compare([output_dir], pytester.path / "b", agent_by="model")
    assert str(refused.value) == NO_SUMMARY_IN_DIRECTORY_MESSAGE.format(
        path=output_dir, summary=layout.SUMMARY_FILE
    )
    shutil.copy(kept, summary)
    from_dir = compare(
        [f"exp={output_dir}"], pytester.path / "b", agent_by="model", seed_field="seed"
    )
    assert list(from_file.table["agent"]) == ["exp-big", "exp-small"]
    pandas.testing.assert_frame_equal(from_file.table, from_dir.table)
    expected = pandas.read_csv(kept)
    big = expected[expected["model"] == "big"]
    assert from_dir.table.at[0, "problems_solved_mean"] == 4
    assert from_dir.table.at[0, "avg_price_mean"] == pytest.approx(big["price"].mean())


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (
            ["exp.csv", "--agent-by", "model,size"],
            "--agent-by: exp has no hyperparameter 'size' (its hyperparameters: "
            "model, run)",
        ),
        (
            ["exp.csv", "--agent-by", "other:model"],
            "--agent-by: no experiment is named 'other' (the experiments: exp)",
        ),
        (
            ["exp.csv", "--seed-field", "seed"],
            "--seed-field: exp has no hyperparameter 'seed' (its hyperparameters: "
            "model, run)",
        ),
        (
            ["exp.csv", "--agent-by", "run", "--seed-field", "run"],
            "--agent-by: 'run' is the seed field, averaged over; it cannot also tell "
            "agents apart",
        ),
        (["exp.csv", "--price-cutoff", "0"], "--price-cutoff: 0.0 is not a positive"),
        (["exp.csv", "exp.csv"], "two experiments are named 'exp'"),
        (["nowhere.csv"], "nowhere.csv: no such file or directory"),
        (["notes.csv"], "notes.csv: not a summary CSV, it lacks the column(s) price"),
        (["exp.csv", "--figure-format", "jpg"], "--figure-format: 'jpg' is none of"),
        (
            ["exp.csv", "--success-by", "size"],
            "--success-by: no experiment has a hyperparameter 'size'",
        ),
    ],
)
def test_bad_input_is_refused_in_one_line_before_anything_is_written(
    pytester: pytest.Pytester, args: list[str], message: str
) -> None:
    pandas.DataFrame(
        {"model": ["a", "b"], "run": [0, 1], "success": [True, False], "price": [1, 2]}
    ).to_csv(pytester.path / "exp.csv", index=False)
    (pytester.path / "notes.csv").write_text("text,success\nhello,true\n")
    result = run_compare(pytester, *args, "-o", "out")
    assert result.ret == 2
    last = result.stderr.lines[-1]
    assert last.startswith("delphyne-compare: error: ")
    assert message in last
    assert not (pytester.path / "out").exists()


def test_pgf_without_tex_is_refused_with_the_tex_it_needs(tmp_path: Path) -> None:
    if tex_available():
        pytest.skip("a TeX system is installed: pgf is written")
    with pytest.raises(ComparisonError) as refused:
        compare([FIXTURES / "abduction.csv"], tmp_path, figure_formats="pdf,pgf")
    assert str(refused.value) == PGF_WITHOUT_TEX_MESSAGE.format(tex="xelatex")
    assert not any(tmp_path.iterdir())


def test_comparison_page_links_every_file_and_inlines_every_figure(
    find_invariants: Path,
) -> None:
    page_path = find_invariants / PAGE_FILE
    page = ReportPage.read(page_path)
    text = page_path.read_text()
    assert "<script" not in text
    agents = page.table("agents")
    tex = latex_rows((find_invariants / "table.tex").read_text())
    assert {row["Agent"]: list(row.values())[1:] for row in agents} == {
        agent: [cell.replace(" $\\pm$ ", " ± ") for cell in cells]
        for agent, cells in tex.items()
    }
    experiments = {row["experiment"]: row for row in page.table("experiments")}
    assert experiments["baseline"]["configs"] == "3348"
    assert experiments["abduction"]["configs"] == "1488"
    ids = {image["id"] for image in page.images}
    assert {"plot-scaling-price", "plot-scaling-requests"} <= ids
    assert len(ids) == 6
    for image in page.images:
        assert image["src"].startswith("data:image/png;base64,")
    assert {"table.tex", "table.md", "table.csv", "scaling-price.pdf"} <= set(
        page.links
    )
    for link in page.links:
        assert (find_invariants / urllib.parse.unquote(link)).is_file(), link
    assert "Price cutoff: a config that spent more than 0.2 dollars" in page.all_text()


def test_comparison_page_renders_in_headless_chromium_offline(
    find_invariants: Path, tmp_path: Path
) -> None:
    if chromium_path() is None:
        if os.environ.get("DELPHYNE_REQUIRE_BROWSER"):
            pytest.fail("DELPHYNE_REQUIRE_BROWSER is set but chromium is not installed")
        pytest.skip("chromium is not installed (.ci/run installs it)")
    page = find_invariants / PAGE_FILE
    screenshot = tmp_path / "comparison.png"
    found = open_in_chromium(page, screenshot)
    assert found["title"] == "Comparison of experiments: comparison of experiments"
    assert len(found["images"]) == 6
    for image in found["images"]:
        assert image["complete"], image
        assert image["width"] > 0, image
        assert image["shown"] > 0, image
    assert found["requests"] == [page.resolve().as_uri()]
    assert screenshot.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
