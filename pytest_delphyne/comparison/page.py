"""The comparison page: the experiments, the agents' table and every figure (inline
PNG images), with links to the files a paper includes. It stands alone, like the
experiment report."""

from __future__ import annotations

import base64
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

from pytest_delphyne.comparison.sources import ExperimentRows
from pytest_delphyne.report.markup import COMMON_STYLE, Markup, escape, table

PAGE_FILE = "comparison.html"


@dataclass(frozen=True)
class PageContent:
    """What the page shows.

    Attributes:
        title: The page's title.
        settings: Lines saying how agents, seeds and the cutoff were chosen.
        experiments: The experiments compared.
        headers: The agents' table header.
        rows: The agents' table cells.
        figures: Each figure's PNG file, by its caption, in order.
        files: Every file written beside the page, by what it holds.
    """

    title: str
    settings: Sequence[str]
    experiments: Sequence[ExperimentRows]
    headers: Sequence[str]
    rows: Sequence[Sequence[str]]
    figures: Mapping[str, Path]
    files: Mapping[str, Sequence[Path]]


def render_page(content: PageContent) -> str:
    experiments = table(
        ["experiment", "source", "configs", "hyperparameters"],
        (
            (
                experiment.source.label,
                str(experiment.source.path),
                len(experiment.frame),
                ", ".join(experiment.params),
            )
            for experiment in content.experiments
        ),
        table_id="experiments",
        numeric=[False, False, True, False],
    )
    agents = table(
        content.headers,
        content.rows,
        table_id="agents",
        numeric=[False, *[True] * (len(content.headers) - 1)],
    )
    figures = "".join(
        f"<figure>{inline_png(path, caption)}"
        f"<figcaption>{escape(caption)}</figcaption></figure>"
        for caption, path in content.figures.items()
    )
    files = "".join(
        f"<li>{escape(what)}: "
        + " ".join(
            f'<a href="{escape(path.name)}">{escape(path.name)}</a>' for path in paths
        )
        + "</li>"
        for what, paths in content.files.items()
    )
    settings = "".join(f"<li>{escape(line)}</li>" for line in content.settings)
    body = (
        f"<ul id='settings'>{settings}</ul>"
        f"<section id='experiments-section'><h2>Experiments</h2>{experiments}</section>"
        f"<section id='agents-section'><h2>Agents</h2>{agents}</section>"
        f"<section id='figures'><h2>Figures</h2><div class='row'>{figures}</div>"
        "</section>"
        f"<section id='files'><h2>Files</h2><ul>{files}</ul></section>"
    )
    return PAGE.format(
        common_style=COMMON_STYLE,
        title=escape(content.title),
        generated=escape(datetime.now(UTC).strftime("%Y-%m-%d %H:%M UTC")),
        body=body,
    )


def inline_png(path: Path, alt: str) -> Markup:
    data = base64.b64encode(path.read_bytes()).decode("ascii")
    return Markup(
        f'<img class="plot" id="plot-{escape(path.stem)}" alt="{escape(alt)}" '
        f'src="data:image/png;base64,{data}">'
    )


PAGE = """<!DOCTYPE html>
<html lang="en">
<head>
<meta charset="utf-8">
<title>{title}: comparison of experiments</title>
<style>
{common_style}
.meta {{ color: #555; }}
img.plot {{ width: 495px; max-width: 100%; }}
</style>
</head>
<body>
<h1>{title}</h1>
<p class="meta">Comparison made {generated}.</p>
{body}
</body>
</html>
"""
