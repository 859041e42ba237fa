"""The figures a paper includes, at a paper column's size: scaling curves (problems
solved within a budget per problem, one curve per agent, log x) and success by a
hyperparameter, each averaged over the seeds with a band or bar of one standard
deviation.

Each figure is saved as PDF, PGF when a TeX system is installed (matplotlib's PGF
backend asks TeX to measure the text) and SVG otherwise, and PNG for the page.
"""

from __future__ import annotations

import io
import shutil
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

from pytest_delphyne.comparison.table import (
    AGENT_COLUMN,
    EXPERIMENT_COLUMN,
    SEED_COLUMN,
    ComparisonError,
)
from pytest_delphyne.files import atomic_write

if TYPE_CHECKING:
    import numpy
    import pandas
    from matplotlib.figure import Figure
    from matplotlib.typing import RcKeyType

FIGURE_FORMATS = ("pdf", "pgf", "svg", "png")
# A column of a two-column paper (ACM, IEEE, LNCS are 3.3 to 3.5 in), in inches.
COLUMN_WIDTH = 3.3
FIGURE_HEIGHT = 2.1
LEGEND_ROW_HEIGHT = 0.14
# Longer legend labels than this (in characters) take the whole width.
LEGEND_LABEL_PER_COLUMN = 24
PNG_DPI = 200
PAPER_STYLE: dict[RcKeyType, Any] = {
    "font.size": 8,
    "axes.labelsize": 8,
    "xtick.labelsize": 7,
    "ytick.labelsize": 7,
    "legend.fontsize": 6,
    "lines.linewidth": 1.1,
}
# Beyond this many distinct spendings, curves are drawn at this many thresholds
# evenly spaced on the log axis instead of at every one.
MAX_THRESHOLDS = 400
UNKNOWN_FORMAT_MESSAGE = "--figure-format: {name!r} is none of {known}"
PGF_WITHOUT_TEX_MESSAGE = (
    "--figure-format: pgf needs a TeX system to measure the text ({tex} is not "
    "installed); ask for svg instead"
)
UNKNOWN_SUCCESS_FIELD_MESSAGE = (
    "--success-by: no experiment has a hyperparameter {field!r}"
)


def tex_available() -> str | None:
    """The TeX program matplotlib's PGF backend runs, if it is installed."""
    from matplotlib import rcParams

    program = str(rcParams["pgf.texsystem"])
    return program if shutil.which(program) else None


def default_formats() -> tuple[str, ...]:
    return ("pdf", "pgf" if tex_available() else "svg", "png")


def parse_formats(text: str | Sequence[str] | None) -> tuple[str, ...]:
    """`"pdf,svg"` as formats, PNG always added (the page shows it).

    Raises:
        ComparisonError: an unknown format, or PGF without TeX.
    """
    if text is None:
        return default_formats()
    names = text.split(",") if isinstance(text, str) else list(text)
    formats = [name.strip().lower() for name in names if name.strip()]
    for name in formats:
        if name not in FIGURE_FORMATS:
            raise ComparisonError(
                UNKNOWN_FORMAT_MESSAGE.format(
                    name=name, known=", ".join(FIGURE_FORMATS)
                )
            )
    if "pgf" in formats and tex_available() is None:
        from matplotlib import rcParams

        raise ComparisonError(
            PGF_WITHOUT_TEX_MESSAGE.format(tex=rcParams["pgf.texsystem"])
        )
    return tuple(dict.fromkeys([*formats, "png"]))


# ---------------------------------------------------------------- the numbers


def scaling_thresholds(rows: pandas.DataFrame, column: str) -> numpy.ndarray[Any, Any]:
    """Where the curves of `column` step: every positive spending of a solved
    problem, from half the smallest one to the largest spending of any row."""
    import numpy

    spent = rows[column].astype(float)
    positive = spent[spent > 0]
    if not len(positive):
        return numpy.array([1.0])
    floor, ceiling = float(positive.min()) / 2, float(positive.max())
    solved = spent[rows["success"] & (spent > 0)].unique()
    if len(solved) > MAX_THRESHOLDS:
        return numpy.geomspace(floor, ceiling, MAX_THRESHOLDS)
    return numpy.unique(numpy.concatenate([[floor], solved, [ceiling]]))


def scaling_curves(
    rows: pandas.DataFrame,
    order: Sequence[str],
    column: str,
    thresholds: numpy.ndarray[Any, Any],
) -> pandas.DataFrame:
    """Per agent and threshold `t`: the mean and standard deviation over seeds of
    the number of problems solved having spent at most `t` of `column`.

    Columns: `agent`, `threshold`, `problems_solved_mean`, `problems_solved_std`.
    """
    import numpy
    import pandas

    parts = []
    for agent in order:
        mine = rows[rows[AGENT_COLUMN] == agent]
        counts = []
        for _, seed_rows in mine.groupby(SEED_COLUMN, sort=True):
            spent = seed_rows.loc[seed_rows["success"], column].astype(float)
            values = numpy.sort(spent.to_numpy())
            counts.append(numpy.searchsorted(values, thresholds, side="right"))
        per_seed = pandas.DataFrame(numpy.array(counts, dtype=float).T)
        parts.append(
            pandas.DataFrame(
                {
                    AGENT_COLUMN: agent,
                    "threshold": thresholds,
                    "problems_solved_mean": per_seed.mean(axis=1),
                    "problems_solved_std": per_seed.std(axis=1),
                }
            )
        )
    return pandas.concat(parts, ignore_index=True)


def success_by(rows: pandas.DataFrame, field: str) -> pandas.DataFrame:
    """Per experiment having `field` and per value of it: the mean and standard
    deviation over seeds of the success rate.

    Columns: `experiment`, the field, `success_rate_mean`, `success_rate_std`.

    Raises:
        ComparisonError: no experiment has the field.
    """
    if field not in rows.columns or rows[field].isna().all():
        raise ComparisonError(UNKNOWN_SUCCESS_FIELD_MESSAGE.format(field=field))
    present = rows[rows[field].notna()]
    per_seed = (
        present.groupby([EXPERIMENT_COLUMN, field, SEED_COLUMN], sort=False)["success"]
        .mean()
        .rename("success_rate")
    )
    table = per_seed.groupby(level=[EXPERIMENT_COLUMN, field], sort=False).agg(
        ["mean", "std"]
    )
    table.columns = ["success_rate_mean", "success_rate_std"]
    return table.reset_index()


# ---------------------------------------------------------------- drawing


def paper_figure(labels: Sequence[str]) -> tuple[Figure, Any, int]:
    """A figure a column wide, grown to hold its legend below the plot, with the
    legend's number of columns."""
    from matplotlib.figure import Figure

    columns = 2 if max(map(len, labels), default=0) <= LEGEND_LABEL_PER_COLUMN else 1
    legend_rows = -(-len(labels) // columns)
    height = FIGURE_HEIGHT + LEGEND_ROW_HEIGHT * legend_rows
    figure = Figure(figsize=(COLUMN_WIDTH, height), layout="constrained")
    return figure, figure.add_subplot(), columns


def paper_style() -> dict[RcKeyType, Any]:
    from cycler import cycler
    from matplotlib import colormaps

    colours = colormaps["tab20"].colors  # type: ignore[attr-defined]
    # Enough colours for 20 agents: the strong shades of tab20 first, then the light.
    ordered = [*colours[0::2], *colours[1::2]]
    return {**PAPER_STYLE, "axes.prop_cycle": cycler(color=ordered)}


def draw_scaling(curves: pandas.DataFrame, order: Sequence[str], xlabel: str) -> Figure:
    figure, axes, columns = paper_figure(order)
    for agent in order:
        curve = curves[curves[AGENT_COLUMN] == agent]
        (line,) = axes.step(
            curve["threshold"],
            curve["problems_solved_mean"],
            where="post",
            label=agent,
        )
        std = curve["problems_solved_std"].fillna(0)
        if std.any():
            axes.fill_between(
                curve["threshold"],
                curve["problems_solved_mean"] - std,
                curve["problems_solved_mean"] + std,
                step="post",
                alpha=0.2,
                color=line.get_color(),
                linewidth=0,
            )
    axes.set_xscale("log")
    axes.set_xlabel(xlabel)
    axes.set_ylabel("Problems solved")
    axes.grid(True, alpha=0.3, linewidth=0.5)
    figure.legend(loc="outside lower center", ncols=columns, frameon=False)
    return figure


def draw_success_by(table: pandas.DataFrame, field: str) -> Figure:
    experiments = list(dict.fromkeys(table[EXPERIMENT_COLUMN]))
    values = sorted(set(table[field]), key=lambda value: (str(type(value)), value))
    positions = {value: index for index, value in enumerate(values)}
    figure, axes, columns = paper_figure(experiments)
    for experiment in experiments:
        mine = table[table[EXPERIMENT_COLUMN] == experiment]
        mine = mine.assign(position=mine[field].map(positions)).sort_values("position")
        axes.errorbar(
            mine["position"],
            mine["success_rate_mean"],
            yerr=mine["success_rate_std"].fillna(0),
            marker="o",
            markersize=3,
            capsize=2,
            label=experiment,
        )
    axes.set_xticks(range(len(values)))
    axes.set_xticklabels([str(value) for value in values])
    axes.set_ylim(0, 1.05)
    axes.set_xlabel(field)
    axes.set_ylabel("Success rate")
    axes.grid(True, alpha=0.3, linewidth=0.5)
    figure.legend(loc="outside lower center", ncols=columns, frameon=False)
    return figure


def save_figure(
    figure: Figure, directory: Path, stem: str, formats: Sequence[str]
) -> dict[str, Path]:
    """Write the figure in every format; returns the files by format."""
    written = {}
    for name in formats:
        path = directory / f"{stem}.{name}"
        buffer = io.BytesIO()
        figure.savefig(buffer, format=name, dpi=PNG_DPI if name == "png" else None)
        # Figures are rebuilt by running again: no fsync needed.
        atomic_write(path, buffer.getvalue(), durable=False)
        written[name] = path
    return written
