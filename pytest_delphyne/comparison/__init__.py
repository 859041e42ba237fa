"""From experiments to the paper: compare several experiments on one page and as
the files a paper includes.

    delphyne-compare baseline=out/baseline abduction=abduction.csv \\
        --agent-by baseline:model,temperature --agent-by abduction:temperature \\
        --seed-field seed --price-cutoff 0.2 --price-unit cents -o comparison

An agent is an experiment, or a group of named hyperparameters within one; a named
seed field is averaged over, with its standard deviation. The output directory gets
the agents' table (`table.tex`, `table.md`, `table.csv`), the scaling curves and the
success by hyperparameter (PDF, PGF or SVG, PNG, and each curve's points as CSV), and
`comparison.html`, which shows them all.

pandas, matplotlib and the table writers pandas uses (the `report` extra) are
imported only when a comparison is made.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING

from pytest_delphyne.comparison.sources import (
    ExperimentRows,
    Source,
    SourceError,
    parse_source,
    read_sources,
)
from pytest_delphyne.comparison.table import (
    AgentSpec,
    ComparisonError,
    PriceUnit,
    agent_rows,
    agent_table,
    apply_price_cutoff,
    check_price_cutoff,
    parse_agent_by,
)
from pytest_delphyne.files import atomic_write
from pytest_delphyne.report import require_plotting
from pytest_delphyne.report.markup import slug

if TYPE_CHECKING:
    import pandas

__all__ = [
    "Comparison",
    "ComparisonError",
    "ComparisonSettings",
    "Source",
    "SourceError",
    "compare",
]

TABLE_STEM = "table"
SCALING = {"price": "scaling-price", "num_requests": "scaling-requests"}
SUCCESS_BY_STEM = "success-by-{field}"
MISSING_TABLE_WRITERS_MESSAGE = (
    "the comparison writes its tables with pandas' LaTeX and Markdown writers, which "
    "need jinja2 and tabulate: pip install 'pytest-delphyne[report]'"
)


@dataclass(frozen=True)
class ComparisonSettings:
    """How the experiments are compared.

    Attributes:
        agents: Which hyperparameters tell agents apart (none: one agent per
            experiment).
        seed_field: The hyperparameter averaged over, with its standard deviation
            (none: each agent has one seed and no deviation).
        price_cutoff: A config that spent more counts as unsolved, at this price.
        price_unit: `"dollars"` (the summaries' unit) or `"cents"`.
        success_by: The hyperparameters to draw success against (by default, those
            that tell agents apart).
        figure_formats: The figures' file formats besides PNG (by default PDF, and
            PGF when a TeX system is installed, SVG otherwise).
        title: The page's title.
    """

    agents: AgentSpec = field(default_factory=AgentSpec)
    seed_field: str | None = None
    price_cutoff: float | None = None
    price_unit: PriceUnit = "dollars"
    success_by: tuple[str, ...] | None = None
    figure_formats: tuple[str, ...] | None = None
    title: str = "Comparison of experiments"


@dataclass(frozen=True)
class Comparison:
    """What `compare` wrote.

    Attributes:
        page: `comparison.html`.
        table: The agents' table, one row per agent (`table.TABLE_COLUMNS`).
        tables: The table's files, by format (`tex`, `md`, `csv`).
        figures: Each figure's files, by its name, then by format.
    """

    page: Path
    table: pandas.DataFrame
    tables: Mapping[str, Path]
    figures: Mapping[str, Mapping[str, Path]]


def compare(
    sources: Sequence[str | Path | Source],
    output_dir: str | Path,
    *,
    agent_by: str | Sequence[str] | None = None,
    seed_field: str | None = None,
    price_cutoff: float | None = None,
    price_unit: PriceUnit = "dollars",
    success_by: Sequence[str] | None = None,
    figure_formats: str | Sequence[str] | None = None,
    title: str | None = None,
) -> Comparison:
    """Compare experiments and write the page, the tables and the figures into
    `output_dir` (created if needed).

    Arguments:
        sources: Output directories, experiment files or summary CSVs; a string
            `LABEL=PATH` names the experiment (by default, after the file or
            directory).
        output_dir: Where to write.
        agent_by: Hyperparameters that tell agents apart within an experiment:
            `"model,temperature"` for every experiment, `"baseline:model"` for the
            experiment labelled `baseline`; a list gives several.
        seed_field: The hyperparameter to average over.
        price_cutoff: A config that spent more counts as unsolved, at this price.
        price_unit: `"dollars"` or `"cents"`, in the table and the price figure.
        success_by: Hyperparameters to draw success against (default: those of
            `agent_by`).
        figure_formats: `"pdf,svg"` or a list; PNG is always written.
        title: The page's title.

    Raises:
        SourceError: a source cannot be read, or two share a label.
        ComparisonError: a field named is not a hyperparameter, the cutoff is not a
            positive price, or a figure format cannot be written.
        ReportDependencyError: matplotlib, jinja2 or tabulate is missing.
    """
    from pytest_delphyne.comparison.figures import parse_formats

    texts = [agent_by] if isinstance(agent_by, str) else list(agent_by or [])
    require_table_writers()
    settings = ComparisonSettings(
        agents=parse_agent_by(texts),
        seed_field=seed_field,
        price_cutoff=price_cutoff,
        price_unit=price_unit,
        success_by=None if success_by is None else tuple(success_by),
        figure_formats=parse_formats(figure_formats),
        title=title or ComparisonSettings.title,
    )
    parsed = [
        source if isinstance(source, Source) else parse_source(str(source))
        for source in sources
    ]
    return write_comparison(read_sources(parsed), Path(output_dir), settings)


def require_table_writers() -> None:
    """Raises ReportDependencyError or ComparisonError: matplotlib, or a library
    pandas writes the tables with, is missing."""
    require_plotting()
    try:
        import jinja2  # noqa: F401
        import tabulate  # noqa: F401
    except ImportError:
        raise ComparisonError(MISSING_TABLE_WRITERS_MESSAGE) from None


def write_comparison(
    experiments: list[ExperimentRows], output_dir: Path, settings: ComparisonSettings
) -> Comparison:
    """Check everything, then write every file (see `compare`)."""
    import matplotlib

    from pytest_delphyne.comparison import figures, formats
    from pytest_delphyne.comparison.page import PAGE_FILE, PageContent, render_page

    check_price_cutoff(settings.price_cutoff)
    rows, order = agent_rows(experiments, settings.agents, settings.seed_field)
    if settings.price_cutoff is not None:
        rows = apply_price_cutoff(rows, settings.price_cutoff)
    success_fields = success_by_fields(experiments, settings)
    success_tables = {name: figures.success_by(rows, name) for name in success_fields}
    table = agent_table(rows, order, settings.price_unit)

    output_dir.mkdir(parents=True, exist_ok=True)
    tables = {
        "tex": output_dir / f"{TABLE_STEM}.tex",
        "md": output_dir / f"{TABLE_STEM}.md",
        "csv": output_dir / f"{TABLE_STEM}.csv",
    }
    atomic_write(tables["tex"], formats.latex_table(table, settings.price_unit))
    atomic_write(tables["md"], formats.markdown_table(table, settings.price_unit))
    atomic_write(tables["csv"], formats.csv_text(table))

    scaled = rows.copy()
    if settings.price_unit == "cents":
        scaled["price"] = scaled["price"] * 100
    written: dict[str, dict[str, Path]] = {}
    captions: dict[str, Path] = {}
    data_files: list[Path] = []
    formats_ = settings.figure_formats or figures.default_formats()
    with matplotlib.rc_context(figures.paper_style()):
        for column, stem in SCALING.items():
            if column not in scaled.columns or scaled[column].isna().all():
                continue
            thresholds = figures.scaling_thresholds(scaled, column)
            curves = figures.scaling_curves(scaled, order, column, thresholds)
            data_files.append(output_dir / f"{stem}.csv")
            atomic_write(data_files[-1], str(curves.to_csv(index=False)))
            label = (
                f"Budget per problem ({settings.price_unit})"
                if column == "price"
                else "Requests per problem"
            )
            figure = figures.draw_scaling(curves, order, label)
            written[stem] = figures.save_figure(figure, output_dir, stem, formats_)
            captions[f"Problems solved against the {label.lower()}"] = written[stem][
                "png"
            ]
        for name, success in success_tables.items():
            stem = SUCCESS_BY_STEM.format(field=slug(name))
            figure = figures.draw_success_by(success, name)
            written[stem] = figures.save_figure(figure, output_dir, stem, formats_)
            captions[f"Success rate by {name}"] = written[stem]["png"]

    page = output_dir / PAGE_FILE
    content = PageContent(
        title=settings.title,
        settings=settings_lines(experiments, settings),
        experiments=experiments,
        headers=formats.headers(settings.price_unit),
        rows=formats.formatted_rows(table, settings.price_unit),
        figures=captions,
        files={
            "the agents' table": list(tables.values()),
            **{
                f"figure {stem}": list(paths.values())
                for stem, paths in written.items()
            },
            "the scaling curves' points": data_files,
        },
    )
    atomic_write(page, render_page(content))
    return Comparison(page=page, table=table, tables=tables, figures=written)


def success_by_fields(
    experiments: list[ExperimentRows], settings: ComparisonSettings
) -> list[str]:
    if settings.success_by is not None:
        return list(settings.success_by)
    names: dict[str, None] = {}
    for experiment in experiments:
        names.update(dict.fromkeys(settings.agents.fields_of(experiment.source.label)))
    return list(names)


def settings_lines(
    experiments: list[ExperimentRows], settings: ComparisonSettings
) -> list[str]:
    lines = []
    for experiment in experiments:
        label = experiment.source.label
        fields = settings.agents.fields_of(label)
        lines.append(
            f"Agents of {label}: by {', '.join(fields)}"
            if fields
            else f"Agents of {label}: the experiment as a whole"
        )
    lines.append(
        f"Averaged over the seed field {settings.seed_field!r}, with the standard "
        "deviation over seeds"
        if settings.seed_field
        else "No seed field: one run per agent, no standard deviation"
    )
    if settings.price_cutoff is not None:
        lines.append(
            f"Price cutoff: a config that spent more than {settings.price_cutoff} "
            "dollars counts as unsolved, at that price"
        )
    return lines
