"""The report's plots: matplotlib figures drawn from the report's data and returned as
PNG images inlined in `<img>` tags, so the page needs no other file.

matplotlib is imported inside `new_figure`, only when a report is made: the plugin
imports this package to check its options and must not pay for matplotlib then.
"""

from __future__ import annotations

import base64
import io
from typing import TYPE_CHECKING, Any

from pytest_delphyne.report.data import CURVES_SHOWN, LEVELS_SHOWN, scaling_points
from pytest_delphyne.report.markup import Markup, escape, format_value, slug

if TYPE_CHECKING:
    import pandas
    from matplotlib.axes import Axes
    from matplotlib.figure import Figure


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


def success_rate_plot(column: str, stats: pandas.DataFrame) -> Markup:
    """The success rate by value of `column` (a `success_table`): a bar per value, or
    the distribution of the rates when there are too many values for bars."""
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


def pair_heat_map(grid: pandas.DataFrame, first: str, second: str) -> Markup:
    """The success rates of `grid` (values of `first` by values of `second`)."""
    figure, axes = new_figure(4.4, 2.8)
    image = axes.imshow(grid.to_numpy(), vmin=0, vmax=1, cmap="viridis", aspect="auto")
    axes.set_xticks(range(len(grid.columns)))
    axes.set_xticklabels([format_value(c) for c in grid.columns])
    axes.set_yticks(range(len(grid.index)))
    axes.set_yticklabels([format_value(i) for i in grid.index])
    axes.set_xlabel(second)
    axes.set_ylabel(first)
    figure.colorbar(image, ax=axes, label="success rate")
    return plot_image(
        figure,
        plot_id=f"plot-pair-{slug(first)}-{slug(second)}",
        alt=f"success rate by {first} and {second}",
    )


def scaling_plot(
    frame: pandas.DataFrame, column: str, label: str, by: list[str]
) -> Markup:
    """One step curve per group of `by`: its successful configs against a threshold on
    what each spent in `column`, with its caption."""
    groups = scaling_points(frame, column, by)
    figure, axes = new_figure(5.4, 3.5)
    spent = frame[column].dropna()
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
        note = f" ({CURVES_SHOWN} of {len(groups)} groups, those with most successes)"
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


def duration_histogram(durations: pandas.Series[float]) -> Markup:
    """The distribution of the configs' durations, on a log scale when they span more
    than two orders of magnitude."""
    figure, axes = new_figure(6.0, 3.4)
    if len(durations):
        low, high = max(durations.min(), 1e-3), max(durations.max(), 1e-3)
        if high / low > 100:
            bins: Any = [low * (high / low) ** (i / 30) for i in range(31)]
            axes.set_xscale("log")
            axes.hist(durations.clip(lower=low), bins=bins, color="#55a868")
        else:
            axes.hist(durations, bins=30, color="#55a868")
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
    return plot_image(figure, plot_id="plot-durations", alt="durations")
