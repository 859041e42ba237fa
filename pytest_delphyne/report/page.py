"""The report's page: one self-contained HTML document with its sections (overview,
scaling, success by hyperparameter, durations, failures, configs), written atomically.

Here are the sections that aggregate (overview, scaling curves, success by
hyperparameter); `listings` adds those that list configs one by one. A `ReportWriter`
lays out what `data` computed and `plots` drew.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any, TypeVar

from pytest_delphyne.files import atomic_write
from pytest_delphyne.identity import ConfigCodec
from pytest_delphyne.report.data import (
    LEVELS_SHOWN,
    PAIR_CELLS,
    PAIRS_SHOWN,
    ReportData,
    report_data,
    stat_rows,
    success_table,
)
from pytest_delphyne.report.listings import (
    ConfigFiles,
    configs_section,
    durations_section,
    failures_section,
)
from pytest_delphyne.report.markup import (
    COMMON_STYLE,
    Markup,
    escape,
    format_price,
    format_rate,
    format_seconds,
    format_value,
    slug,
    table,
)
from pytest_delphyne.report.plots import (
    pair_heat_map,
    scaling_plot,
    success_rate_plot,
)
from pytest_delphyne.report.request import (
    check_group_by,
    parse_group_by,
    require_plotting,
)
from pytest_delphyne.spending import PAID_IN_TOTAL, RECORDED_IN_TOTAL
from pytest_delphyne.state import ExperimentState
from pytest_delphyne.summary import SUMMARY_BUDGET_ORDER

if TYPE_CHECKING:
    import pandas

    from pytest_delphyne.experiment import Experiment

C = TypeVar("C")

REPORT_FILE = "report.html"


@dataclass
class ReportWriter:
    """Builds the page of one experiment; `path` is where it will be written (the
    links to each config's files are relative to it)."""

    data: ReportData
    path: Path
    group_by: list[str]

    def __post_init__(self) -> None:
        check_group_by(self.group_by, self.data.params)

    @property
    def frame(self) -> pandas.DataFrame:
        return self.data.frame

    @property
    def files(self) -> ConfigFiles:
        return ConfigFiles(self.data.output_dir, self.path)

    def overview(self) -> Markup:
        frame = self.frame
        counts = frame["status"].value_counts()
        status_rows = [
            (status, int(counts.get(status, 0)))
            for status in ("done", "failed", "todo")
        ]
        status_rows.append(("total", len(frame)))
        done = frame[frame["status"] == "done"]
        paid = self.data.paid
        spent_rows = [
            (column, paid.get(column, 0), done[column].sum())
            for column in SUMMARY_BUDGET_ORDER
        ]
        starts = frame["start_time"].dropna()
        ends = frame["end_time"].dropna()
        wall = (
            (max(ends) - min(starts)).total_seconds()
            if len(starts) and len(ends)
            else None
        )
        time_rows = [
            ("first start", min(starts) if len(starts) else None),
            ("last end", max(ends) if len(ends) else None),
            ("wall time (s), first start to last end", format_seconds(wall)),
            ("configs' total duration (s)", format_seconds(done["duration"].sum())),
        ]
        successes = int((done["success"].fillna(False)).sum())
        rate = successes / len(done) if len(done) else None
        return Markup(
            '<section id="overview"><h2>Overview</h2><div class="row">'
            + table(
                ["status", "configs"],
                status_rows,
                table_id="status-counts",
                numeric=[False, True],
            )
            + table(
                ["spent", PAID_IN_TOTAL, RECORDED_IN_TOTAL],
                spent_rows,
                table_id="spent-budget",
                numeric=[False, True, True],
            )
            + table(
                ["time", ""],
                time_rows,
                table_id="times",
                numeric=[False, True],
            )
            + "</div>"
            + f'<p id="success-overall">{successes} of {len(done)} done configs '
            f"succeeded ({escape(format_rate(rate))}).</p></section>"
        )

    def by_parameter(self) -> Markup:
        parts = ['<section id="by-parameter"><h2>Success by hyperparameter</h2>']
        varying = self.data.varying
        if not varying:
            parts.append("<p>No hyperparameter takes more than one value.</p>")
        for column in varying:
            stats = success_table(self.frame, [column])
            shown = stats
            note = ""
            if len(stats) > LEVELS_SHOWN:
                shown = stats.sort_values(
                    ["success_rate", "configs"], ascending=[True, False]
                ).head(LEVELS_SHOWN)
                note = (
                    f"<p>{len(stats)} values; the table shows the "
                    f"{LEVELS_SHOWN} with the lowest success rate, the plot the "
                    "distribution of success rates over all of them.</p>"
                )
            parts.append(f"<h3>{escape(column)}</h3>{note}<div class='row'>")
            parts.append(
                table(
                    [
                        column,
                        "configs",
                        "done",
                        "failed",
                        "todo",
                        "successes",
                        "success rate",
                        "price",
                        "duration (s)",
                    ],
                    (
                        (
                            value,
                            int(row["configs"]),
                            int(row["done"]),
                            int(row["failed"]),
                            int(row["todo"]),
                            int(row["successes"]),
                            format_rate(row["success_rate"]),
                            format_price(row["price"]),
                            format_seconds(row["duration"]),
                        )
                        for value, row in stat_rows(shown)
                    ),
                    table_id=f"by-{slug(column)}",
                    numeric=[False, *[True] * 8],
                )
            )
            parts.append(success_rate_plot(column, stats))
            parts.append("</div>")
        parts.append(self.pairs(varying))
        parts.append("</section>")
        return Markup("".join(parts))

    def pairs(self, varying: list[str]) -> str:
        levels = {
            column: self.frame[column].nunique(dropna=False) for column in varying
        }
        pairs = [
            (first, second)
            for index, first in enumerate(varying)
            for second in varying[index + 1 :]
            if levels[first] * levels[second] <= PAIR_CELLS
        ][:PAIRS_SHOWN]
        if not pairs:
            return ""
        parts = ["<h3>Pairs of hyperparameters</h3>"]
        for first, second in pairs:
            stats = success_table(self.frame, [first, second])
            grid = stats["success_rate"].astype(float).unstack(second)
            parts.append(
                f"<h4>{escape(first)} by {escape(second)}</h4><div class='row'>"
            )
            parts.append(
                table(
                    [f"{first} \\ {second}", *(format_value(c) for c in grid.columns)],
                    (
                        (value, *(format_rate(rate) for rate in grid.loc[value]))
                        for value in grid.index
                    ),
                    table_id=f"pair-{slug(first)}-{slug(second)}",
                    numeric=[False, *[True] * len(grid.columns)],
                )
            )
            parts.append(pair_heat_map(grid, first, second))
            parts.append("</div>")
        return "".join(parts)

    def scaling(self) -> Markup:
        parts = ['<section id="scaling"><h2>Successes within a budget</h2>']
        by = self.group_by
        grouping = ", ".join(by) if by else "no grouping (--group-by names some)"
        parts.append(
            f"<p>Each curve counts the successful configs whose spending is at most "
            f"the threshold; one curve per group of {escape(grouping)}.</p>"
        )
        stats = success_table(self.frame, by) if by else None
        if stats is not None:
            parts.append(
                table(
                    [*by, "configs", "done", "successes", "success rate", "price"],
                    (
                        (
                            *(key if isinstance(key, tuple) else (key,)),
                            int(row["configs"]),
                            int(row["done"]),
                            int(row["successes"]),
                            format_rate(row["success_rate"]),
                            format_price(row["price"]),
                        )
                        for key, row in stat_rows(stats)
                    ),
                    table_id="groups",
                    numeric=[*[False] * len(by), *[True] * 5],
                )
            )
        parts.append("<div class='row'>")
        for column, label in (("price", "price"), ("num_requests", "requests")):
            parts.append(scaling_plot(self.frame, column, label, by))
        parts.append("</div></section>")
        return Markup("".join(parts))

    def render(self) -> str:
        title = self.data.name or self.data.output_dir.name
        description = (
            f"<p class='description'>{escape(self.data.description)}</p>"
            if self.data.description
            else ""
        )
        generated = datetime.now(UTC).strftime("%Y-%m-%d %H:%M UTC")
        body = "\n".join(
            [
                self.overview(),
                self.scaling(),
                self.by_parameter(),
                durations_section(self.data, self.files),
                failures_section(self.data, self.files),
                configs_section(self.data, self.files),
            ]
        )
        return PAGE.format(
            common_style=COMMON_STYLE,
            title=escape(title),
            description=description,
            output_dir=escape(self.data.output_dir),
            generated=escape(generated),
            body=body,
        )


def write_report(
    output_dir: Path,
    state: ExperimentState[C],
    codec: ConfigCodec[C],
    path: Path | None = None,
    *,
    group_by: str | Sequence[str] | None = None,
) -> Path:
    """Write the report of the experiment in `output_dir` (atomically) and return its
    path (by default `<output_dir>/report.html`).

    Raises:
        ReportDependencyError: matplotlib is missing.
        UnknownGroupError: `group_by` names something that is not a hyperparameter.
    """
    require_plotting()
    path = (path or output_dir / REPORT_FILE).absolute()
    data = report_data(output_dir, state, codec)
    writer = ReportWriter(data, path, parse_group_by(group_by))
    page = writer.render()
    path.parent.mkdir(parents=True, exist_ok=True)
    atomic_write(path, page)
    return path


def write_experiment_report(
    experiment: Experiment[Any],
    path: Path | str | None = None,
    group_by: str | Sequence[str] | None = None,
) -> Path:
    """`Experiment.report()`: `write_report` for `experiment`, refusing before even
    its state is read when matplotlib is missing."""
    require_plotting()
    return write_report(
        experiment.absolute_output_dir,
        experiment.load_state(),
        experiment.codec,
        Path(path) if path is not None else None,
        group_by=group_by,
    )


PAGE = """<!DOCTYPE html>
<html lang="en">
<head>
<meta charset="utf-8">
<title>{title}: experiment report</title>
<style>
{common_style}
h1 {{ margin-bottom: 0.2em; }}
.meta, .description {{ color: #555; }}
.row > * {{ flex: 0 0 auto; }}
pre {{ margin: 0; font-size: 0.85em; white-space: pre-wrap; max-width: 60em; }}
img.plot {{ max-width: 100%; }}
</style>
</head>
<body>
<h1>{title}</h1>
{description}
<p class="meta">Output directory {output_dir}; report made {generated}.</p>
{body}
</body>
</html>
"""
