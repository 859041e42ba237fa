"""The experiment report: one self-contained HTML page drawn from the files the
experiment already wrote (the state and each config's result and exception files).

It shows what a researcher would otherwise draw from `results_summary.csv` by hand:
status and spend, success rate by hyperparameter (and by pairs of them on small grids),
scaling curves (successful configs against a price or request threshold, per group),
durations, failures with the end of their tracebacks, and links to each config's files.

Plots are PNG images inlined as `data:` URLs, so the page needs no network and no other
file. matplotlib (the `report` extra) and pandas are imported only when a report is
made. Everything drawn is aggregated: 100,000 configs give the same number of plots and
at most `CONFIGS_SHOWN` rows in the table of configs.
"""

from __future__ import annotations

import base64
import html
import io
import os
import urllib.parse
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any, TypeVar

from pytest_delphyne import layout
from pytest_delphyne.errors import DelphyneError
from pytest_delphyne.files import atomic_write
from pytest_delphyne.identity import ConfigCodec
from pytest_delphyne.state import ExperimentState
from pytest_delphyne.summary import SUMMARY_BUDGET_ORDER as BUDGET_COLUMNS
from pytest_delphyne.summary import param_columns as flatten_params
from pytest_delphyne.summary import summary_rows

if TYPE_CHECKING:
    import pandas
    from matplotlib.axes import Axes
    from matplotlib.figure import Figure

C = TypeVar("C")

REPORT_FILE = "report.html"
MISSING_PLOTTING_MESSAGE = (
    "the experiment report draws its plots with matplotlib, which is not installed: "
    "pip install 'pytest-delphyne[report]'"
)
UNKNOWN_GROUP_MESSAGE = (
    "cannot group the report by {names}: not a hyperparameter of the experiment "
    "(its hyperparameters: {known})"
)

# Beyond these sizes the page aggregates instead of listing.
CONFIGS_SHOWN = 1_000
FAILURES_SHOWN = 100
SLOWEST_SHOWN = 15
LEVELS_SHOWN = 40  # values of one hyperparameter in its table and bar plot
PAIR_CELLS = 100  # largest grid of two hyperparameters shown as a heat map
PAIRS_SHOWN = 6
CURVES_SHOWN = 12
TRACEBACK_LINES = 6
STATUS_COLUMNS = ("status", "success", *BUDGET_COLUMNS, "duration")
# The columns of a summary row that are not hyperparameters.
RESULT_COLUMNS = frozenset({"success", *BUDGET_COLUMNS, "duration", "config_name"})


class ReportDependencyError(DelphyneError):
    """matplotlib, which draws the report's plots, is not installed."""

    def __init__(self) -> None:
        super().__init__(MISSING_PLOTTING_MESSAGE)


class UnknownGroupError(DelphyneError):
    """`group_by` names something that is not a hyperparameter."""

    def __init__(self, names: Sequence[str], known: Sequence[str]):
        super().__init__(
            UNKNOWN_GROUP_MESSAGE.format(
                names=", ".join(repr(name) for name in names),
                known=", ".join(known) or "none",
            )
        )


def require_plotting() -> None:
    """Check, before any work, that the report can be drawn.

    Raises:
        ReportDependencyError: matplotlib is missing.
    """
    try:
        import matplotlib  # noqa: F401
    except ImportError:
        raise ReportDependencyError from None


def parse_group_by(text: str | Sequence[str] | None) -> list[str]:
    """`"model,temperature"` (or a list of names) as a list of names."""
    if text is None:
        return []
    parts = text.split(",") if isinstance(text, str) else list(text)
    return [part.strip() for part in parts if part.strip()]


def check_group_by(names: Sequence[str], params: Sequence[str]) -> None:
    """Check that `names` are all hyperparameters (`params`).

    Raises:
        UnknownGroupError: naming those that are not.
    """
    unknown = [name for name in names if name not in params]
    if unknown:
        raise UnknownGroupError(unknown, params)


@dataclass
class ReportData:
    """One row per config of the state, with what its result records."""

    name: str | None
    description: str | None
    output_dir: Path
    frame: pandas.DataFrame
    params: list[str]
    """The hyperparameter columns (nested fields flattened as `outer.inner`)."""

    @property
    def varying(self) -> list[str]:
        """The hyperparameters that take more than one value."""
        return [
            column
            for column in self.params
            if self.frame[column].nunique(dropna=False) > 1
        ]


def report_data(
    output_dir: Path,
    state: ExperimentState[C],
    codec: ConfigCodec[C],
) -> ReportData:
    """Read the state and every done config's result into one frame.

    Columns: the hyperparameters, `status`, `success`, the budget columns, `duration`,
    `start_time`, `end_time`, `config_name`. Configs without a result (todo, failed,
    or done with its file gone) have no success, budget or duration.
    """
    import pandas

    results = {
        row["config_name"]: row
        for row in summary_rows(
            output_dir, state, codec, ignore_missing=True, add_timing=True
        )
    }
    rows: list[dict[str, Any]] = []
    params: dict[str, None] = {}
    for name, info in state.configs.items():
        result = results.get(name)
        if result is None:
            row = flatten_params(codec.dump(info.params))
            params.update(dict.fromkeys(row))
            row.update(dict.fromkeys(("success", *BUDGET_COLUMNS, "duration")))
        else:
            row = dict(result)
            params.update(
                dict.fromkeys(key for key in row if key not in RESULT_COLUMNS)
            )
        row["status"] = info.status
        row["start_time"] = info.start_time
        row["end_time"] = info.end_time
        row["config_name"] = name
        rows.append(row)
    columns = [*params, *STATUS_COLUMNS, "start_time", "end_time", "config_name"]
    frame = pandas.DataFrame(rows, columns=columns)
    frame["success"] = frame["success"].astype("boolean")
    for column in (*BUDGET_COLUMNS, "duration"):
        frame[column] = pandas.to_numeric(frame[column], errors="coerce")
    return ReportData(
        name=state.name,
        description=state.description,
        output_dir=output_dir,
        frame=frame,
        params=list(params),
    )


# ---------------------------------------------------------------- aggregation


def success_table(frame: pandas.DataFrame, by: list[str]) -> pandas.DataFrame:
    """Per value of `by`: counts by status, successes, success rate among the done
    configs, and what the done configs spent and took."""
    done = frame["status"] == "done"
    work = frame.assign(
        done=done,
        failed=frame["status"] == "failed",
        todo=frame["status"] == "todo",
        solved=frame["success"].fillna(False).astype(bool) & done,
    )
    grouped = work.groupby(by, dropna=False, sort=True)
    table = grouped.agg(
        configs=("config_name", "size"),
        done=("done", "sum"),
        failed=("failed", "sum"),
        todo=("todo", "sum"),
        successes=("solved", "sum"),
        price=("price", "sum"),
        duration=("duration", "sum"),
    )
    table["success_rate"] = table["successes"] / table["done"].where(table["done"] > 0)
    return table


def stat_rows(stats: pandas.DataFrame) -> list[tuple[Any, dict[Any, Any]]]:
    """A `success_table`'s rows with their group key."""
    return list(zip(stats.index, stats.to_dict("records"), strict=True))


def scaling_points(
    frame: pandas.DataFrame, column: str, by: list[str]
) -> dict[str, list[float]]:
    """For each group of `by` (one group without it), the sorted `column` values of
    its successful configs: the number of successes within a threshold `t` is the
    number of values `<= t`."""
    solved = (frame["status"] == "done") & frame["success"].fillna(False)
    if not by:
        return {"all configs": sorted(frame.loc[solved, column].fillna(0).tolist())}
    groups: dict[str, list[float]] = {}
    # Every group, also those without a success yet: their curve stays at zero.
    for key, part in frame.assign(solved=solved).groupby(by, dropna=False, sort=True):
        values = key if isinstance(key, tuple) else (key,)
        label = ", ".join(
            f"{name}={value}" for name, value in zip(by, values, strict=True)
        )
        groups[label] = sorted(part.loc[part["solved"], column].fillna(0).tolist())
    return groups


# ---------------------------------------------------------------- HTML pieces


class Markup(str):
    """HTML that is already escaped."""


def escape(value: object) -> str:
    if isinstance(value, Markup):
        return value
    return html.escape(format_value(value))


def is_missing(value: object) -> bool:
    """None, NaN, or pandas' missing markers (NA, NaT)."""
    if value is None:
        return True
    if isinstance(value, float):
        return value != value
    return type(value).__name__ in ("NAType", "NaTType")


def format_value(value: object) -> str:
    if is_missing(value):
        return ""
    if isinstance(value, float):
        if value.is_integer() and abs(value) < 1e15:
            return str(int(value))
        return f"{value:.4g}"
    if isinstance(value, datetime):
        return value.strftime("%Y-%m-%d %H:%M:%S")
    return str(value)


def format_rate(value: object) -> str:
    """A success rate as a percentage with one decimal."""
    return "" if is_missing(value) else f"{float(value):.1%}"  # type: ignore[arg-type]


def format_price(value: object) -> str:
    """A price with four significant digits."""
    return "" if is_missing(value) else f"{float(value):.4g}"  # type: ignore[arg-type]


def format_seconds(value: object) -> str:
    """Seconds with millisecond precision."""
    return "" if is_missing(value) else f"{float(value):.3f}"  # type: ignore[arg-type]


def table(
    headers: Sequence[str],
    rows: Iterable[Sequence[object]],
    *,
    table_id: str,
    numeric: Sequence[bool] | None = None,
) -> Markup:
    head = "".join(f"<th>{escape(header)}</th>" for header in headers)
    numeric = numeric or [False] * len(headers)
    body = "\n".join(
        "<tr>"
        + "".join(
            f'<td class="num">{escape(cell)}</td>'
            if is_number
            else f"<td>{escape(cell)}</td>"
            for cell, is_number in zip(row, numeric, strict=True)
        )
        + "</tr>"
        for row in rows
    )
    return Markup(
        f'<table id="{escape(table_id)}"><thead><tr>{head}</tr></thead>'
        f"<tbody>\n{body}\n</tbody></table>"
    )


def plot_image(figure: Figure, *, plot_id: str, alt: str) -> Markup:
    """The figure as an inline PNG."""
    buffer = io.BytesIO()
    figure.savefig(buffer, format="png")
    data = base64.b64encode(buffer.getvalue()).decode("ascii")
    return Markup(
        f'<img class="plot" id="{escape(plot_id)}" alt="{escape(alt)}" '
        f'src="data:image/png;base64,{data}">'
    )


def new_figure(width: float = 7.0, height: float = 3.6) -> tuple[Figure, Axes]:
    from matplotlib.figure import Figure

    figure = Figure(figsize=(width, height), dpi=100, layout="constrained")
    return figure, figure.add_subplot()


def slug(text: str) -> str:
    return "".join(char if char.isalnum() else "-" for char in text).strip("-").lower()


# ---------------------------------------------------------------- the report


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

    def link(self, name: str, file_name: str, label: str | None = None) -> Markup:
        target = layout.config_dir(self.data.output_dir, name) / file_name
        relative = os.path.relpath(target, self.path.parent)
        href = urllib.parse.quote(Path(relative).as_posix())
        return Markup(f'<a href="{href}">{escape(label or file_name)}</a>')

    def file_links(self, name: str) -> Markup:
        directory = layout.config_dir(self.data.output_dir, name)
        files = (
            layout.RESULT_FILE,
            layout.LOG_FILE,
            layout.CACHE_FILE,
            layout.EXCEPTION_FILE,
        )
        return Markup(
            " ".join(
                self.link(name, file) for file in files if (directory / file).exists()
            )
        )

    def params_text(self, row: Any, columns: Sequence[str]) -> str:
        return ", ".join(f"{column}={format_value(row[column])}" for column in columns)

    # ------------------------------------------------------------ sections

    def overview(self) -> Markup:
        frame = self.frame
        counts = frame["status"].value_counts()
        status_rows = [
            (status, int(counts.get(status, 0)))
            for status in ("done", "failed", "todo")
        ]
        status_rows.append(("total", len(frame)))
        done = frame[frame["status"] == "done"]
        spent_rows = [(column, done[column].sum()) for column in BUDGET_COLUMNS]
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
                ["spent by the done configs", "total"],
                [(name, value) for name, value in spent_rows],
                table_id="spent-budget",
                numeric=[False, True],
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
            parts.append(self.rate_plot(column, stats))
            parts.append("</div>")
        parts.append(self.pairs(varying))
        parts.append("</section>")
        return Markup("".join(parts))

    def rate_plot(self, column: str, stats: pandas.DataFrame) -> Markup:
        figure, axes = new_figure(5.5, 3.2)
        rates = stats["success_rate"].astype(float)
        if len(stats) > LEVELS_SHOWN:
            axes.hist(rates.dropna(), bins=20, range=(0, 1), color="#4c72b0")
            axes.set_xlabel(f"success rate of a value of {column}")
            axes.set_ylabel("values")
        else:
            labels = [format_value(value) for value in stats.index]
            axes.bar(labels, rates.fillna(0), color="#4c72b0")
            axes.set_ylim(0, 1)
            axes.set_xlabel(column)
            axes.set_ylabel("success rate (done configs)")
            if len(labels) > 6:
                axes.tick_params(axis="x", labelrotation=60)
        return plot_image(
            figure, plot_id=f"plot-by-{slug(column)}", alt=f"success rate by {column}"
        )

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
            figure, axes = new_figure(4.4, 2.8)
            image = axes.imshow(
                grid.to_numpy(), vmin=0, vmax=1, cmap="viridis", aspect="auto"
            )
            axes.set_xticks(range(len(grid.columns)))
            axes.set_xticklabels([format_value(c) for c in grid.columns])
            axes.set_yticks(range(len(grid.index)))
            axes.set_yticklabels([format_value(i) for i in grid.index])
            axes.set_xlabel(second)
            axes.set_ylabel(first)
            figure.colorbar(image, ax=axes, label="success rate")
            parts.append(
                plot_image(
                    figure,
                    plot_id=f"plot-pair-{slug(first)}-{slug(second)}",
                    alt=f"success rate by {first} and {second}",
                )
            )
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
            parts.append(self.scaling_plot(column, label, by))
        parts.append("</div></section>")
        return Markup("".join(parts))

    def scaling_plot(self, column: str, label: str, by: list[str]) -> Markup:
        groups = scaling_points(self.frame, column, by)
        figure, axes = new_figure(5.4, 3.5)
        spent = self.frame[column].dropna()
        positive = spent[spent > 0]
        floor = float(positive.min()) / 2 if len(positive) else 1.0
        ceiling = float(positive.max()) if len(positive) else 1.0
        ordered = sorted(groups.items(), key=lambda item: -len(item[1]))
        for group, values in ordered[:CURVES_SHOWN]:
            xs = [max(value, floor) for value in values]
            counts = list(range(1, len(xs) + 1)) or [0]
            xs = xs or [floor]
            # A step from the floor, so that every curve starts at zero successes.
            # From the floor (no success yet) to the largest spending of any config,
            # where the curve reaches the group's number of successes.
            axes.step(
                [floor, *xs, max(ceiling, xs[-1])],
                [0, *counts, counts[-1]],
                where="post",
                label=group,
            )
        axes.set_xscale("log")
        axes.set_xlabel(f"{label} threshold per config (log scale)")
        axes.set_ylabel("successful configs")
        if len(groups) > 1 or by:
            axes.legend(fontsize="small")
        if not any(groups.values()):
            axes.text(
                0.5,
                0.5,
                "no successful config yet",
                ha="center",
                transform=axes.transAxes,
            )
        note = ""
        if len(groups) > CURVES_SHOWN:
            note = (
                f" ({CURVES_SHOWN} of {len(groups)} groups, those with most successes)"
            )
        return Markup(
            "<figure>"
            + plot_image(
                figure,
                plot_id=f"plot-scaling-{slug(label)}",
                alt=f"successful configs by {label} threshold",
            )
            + f"<figcaption>Successes by {escape(label)}{escape(note)}; a config "
            f"that spent nothing counts at the left edge.</figcaption></figure>"
        )

    def durations(self) -> Markup:
        done = self.frame[self.frame["duration"].notna()]
        parts = ['<section id="durations"><h2>Durations</h2><div class="row">']
        figure, axes = new_figure(6.0, 3.4)
        values = done["duration"].astype(float)
        if len(values):
            low, high = max(values.min(), 1e-3), max(values.max(), 1e-3)
            if high / low > 100:
                bins: Any = [low * (high / low) ** (i / 30) for i in range(31)]
                axes.set_xscale("log")
                axes.hist(values.clip(lower=low), bins=bins, color="#55a868")
            else:
                axes.hist(values, bins=30, color="#55a868")
        else:
            axes.text(
                0.5,
                0.5,
                "no duration recorded yet",
                ha="center",
                transform=axes.transAxes,
            )
        axes.set_xlabel("duration of a config (s)")
        axes.set_ylabel("configs")
        parts.append(plot_image(figure, plot_id="plot-durations", alt="durations"))
        slowest = done.sort_values("duration", ascending=False).head(SLOWEST_SHOWN)
        varying = self.data.varying
        parts.append(
            table(
                ["config", "hyperparameters", "duration (s)", "success"],
                (
                    (
                        self.link(
                            row["config_name"], layout.RESULT_FILE, row["config_name"]
                        ),
                        self.params_text(row, varying),
                        format_seconds(row["duration"]),
                        format_value(row["success"]),
                    )
                    for _, row in slowest.iterrows()
                ),
                table_id="slowest",
                numeric=[False, False, True, False],
            )
        )
        parts.append("</div></section>")
        return Markup("".join(parts))

    def failures(self) -> Markup:
        failed = self.frame[self.frame["status"] == "failed"]
        parts = [f'<section id="failures"><h2>Failed configs ({len(failed)})</h2>']
        if not len(failed):
            parts.append("<p>No config failed.</p></section>")
            return Markup("".join(parts))
        if len(failed) > FAILURES_SHOWN:
            parts.append(f"<p>The first {FAILURES_SHOWN} are shown.</p>")
        varying = self.data.varying
        rows = []
        for _, row in failed.head(FAILURES_SHOWN).iterrows():
            name = row["config_name"]
            path = layout.exception_file_path(self.data.output_dir, name)
            try:
                lines = path.read_text(encoding="utf-8", errors="replace").splitlines()
            except OSError:
                lines = ["(no exception.txt)"]
            tail = "\n".join(lines[-TRACEBACK_LINES:])
            rows.append(
                (
                    Markup(escape(name)),
                    self.params_text(row, varying),
                    Markup(f"<pre>{escape(tail)}</pre>"),
                    self.link(name, layout.EXCEPTION_FILE),
                )
            )
        parts.append(
            table(
                ["config", "hyperparameters", "end of the traceback", "file"],
                rows,
                table_id="failed-configs",
            )
        )
        parts.append("</section>")
        return Markup("".join(parts))

    def configs(self) -> Markup:
        frame = self.frame
        parts = [f'<section id="configs"><h2>Configs ({len(frame)})</h2>']
        if len(frame) > CONFIGS_SHOWN:
            parts.append(
                f"<p>The first {CONFIGS_SHOWN} are listed; every config's files are "
                f"under {escape(layout.config_dir(self.data.output_dir, ''))}.</p>"
            )
        varying = self.data.varying
        parts.append(
            table(
                [
                    "config",
                    *varying,
                    "status",
                    "success",
                    "price",
                    "requests",
                    "duration (s)",
                    "files",
                ],
                (
                    (
                        row["config_name"],
                        *(row[column] for column in varying),
                        row["status"],
                        format_value(row["success"]),
                        format_price(row["price"]),
                        format_value(row["num_requests"]),
                        format_seconds(row["duration"]),
                        self.file_links(row["config_name"]),
                    )
                    for _, row in frame.head(CONFIGS_SHOWN).iterrows()
                ),
                table_id="config-table",
                numeric=[
                    False,
                    *[False] * len(varying),
                    False,
                    False,
                    True,
                    True,
                    True,
                    False,
                ],
            )
        )
        parts.append("</section>")
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
                self.durations(),
                self.failures(),
                self.configs(),
            ]
        )
        return PAGE.format(
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


PAGE = """<!DOCTYPE html>
<html lang="en">
<head>
<meta charset="utf-8">
<title>{title}: experiment report</title>
<style>
body {{ font-family: system-ui, sans-serif; margin: 2em; color: #222; }}
h1 {{ margin-bottom: 0.2em; }}
h2 {{ border-bottom: 1px solid #ccc; padding-bottom: 0.2em; margin-top: 2em; }}
.meta, .description {{ color: #555; }}
.row {{ display: flex; flex-wrap: wrap; gap: 2em; align-items: flex-start; }}
.row > * {{ flex: 0 0 auto; }}
table {{ border-collapse: collapse; font-size: 0.9em; margin: 0.5em 0; }}
th, td {{ border: 1px solid #ddd; padding: 0.25em 0.6em; vertical-align: top; }}
th {{ background: #f3f3f3; text-align: left; }}
td.num {{ text-align: right; font-variant-numeric: tabular-nums; }}
pre {{ margin: 0; font-size: 0.85em; white-space: pre-wrap; max-width: 60em; }}
img.plot {{ max-width: 100%; }}
figure {{ margin: 0; }}
figcaption {{ color: #555; font-size: 0.85em; }}
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
