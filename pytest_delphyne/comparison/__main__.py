"""`delphyne-compare` (also `python -m pytest_delphyne.comparison`): see the package's
docstring."""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence
from typing import get_args

from pytest_delphyne.comparison import compare
from pytest_delphyne.comparison.figures import FIGURE_FORMATS
from pytest_delphyne.comparison.table import PriceUnit
from pytest_delphyne.errors import DelphyneError

PROGRAM = "delphyne-compare"
WRITTEN_MESSAGE = "Comparison written to {page}"


def parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog=PROGRAM,
        description=(
            "Compare experiments: one page, the agents' table as LaTeX, Markdown and "
            "CSV, and the figures a paper includes."
        ),
    )
    parser.add_argument(
        "sources",
        nargs="+",
        metavar="[LABEL=]PATH",
        help="An output directory, an experiment file or a results_summary.csv",
    )
    parser.add_argument(
        "-o",
        "--output",
        default="comparison",
        help="The directory to write into (default: comparison)",
    )
    parser.add_argument(
        "--agent-by",
        action="append",
        default=[],
        metavar="[LABEL:]FIELDS",
        help=(
            "Hyperparameters that tell agents apart, comma-separated, for every "
            "experiment or for the one before the colon. May be repeated."
        ),
    )
    parser.add_argument(
        "--seed-field", help="The hyperparameter averaged over (with its deviation)"
    )
    parser.add_argument(
        "--price-cutoff",
        type=float,
        help="A config that spent more counts as unsolved, at this price (dollars)",
    )
    parser.add_argument(
        "--price-unit",
        choices=get_args(PriceUnit),
        default="dollars",
        help="The unit of prices in the table and the price figure (default: dollars)",
    )
    parser.add_argument(
        "--success-by",
        action="append",
        metavar="FIELDS",
        help=(
            "Hyperparameters to draw the success rate against (default: those of "
            "--agent-by). May be repeated."
        ),
    )
    parser.add_argument(
        "--figure-format",
        metavar="FORMATS",
        help=(
            f"The figures' formats besides PNG, among {', '.join(FIGURE_FORMATS)} "
            "(default: pdf, and pgf with a TeX system, svg without)"
        ),
    )
    parser.add_argument("--title", help="The page's title")
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Run the command; a bad input exits with status 2 and a one-line error."""
    command = parser()
    arguments = command.parse_args(argv)
    success_by = None
    if arguments.success_by is not None:
        success_by = [
            name.strip()
            for text in arguments.success_by
            for name in text.split(",")
            if name.strip()
        ]
    try:
        comparison = compare(
            arguments.sources,
            arguments.output,
            agent_by=arguments.agent_by,
            seed_field=arguments.seed_field,
            price_cutoff=arguments.price_cutoff,
            price_unit=arguments.price_unit,
            success_by=success_by,
            figure_formats=arguments.figure_format,
            title=arguments.title,
        )
    except DelphyneError as error:
        command.error(str(error))
    print(comparison.tables["md"].read_text(encoding="utf-8"), end="")
    print(WRITTEN_MESSAGE.format(page=comparison.page))
    return 0


if __name__ == "__main__":
    sys.exit(main())
