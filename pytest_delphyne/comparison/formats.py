"""The agents' table as a paper prints it: LaTeX (booktabs), Markdown and CSV.

Each measure is `mean ± std` over the seeds, problems solved with one decimal and
prices with two in cents or four in dollars, as Delphyne's `find_invariants` analysis
prints them. With a single seed there is no standard deviation, and the cell shows the
mean alone.
"""

from __future__ import annotations

import math
from typing import TYPE_CHECKING

from pytest_delphyne.comparison.table import (
    AGENT_COLUMN,
    PRICE_DECIMALS,
    TABLE_COLUMNS,
    PriceUnit,
)

if TYPE_CHECKING:
    import pandas

LATEX_PLUS_MINUS = " $\\pm$ "
TEXT_PLUS_MINUS = " ± "


def headers(price_unit: PriceUnit) -> list[str]:
    return [
        "Agent",
        "Problems solved",
        f"Mean price per problem ({price_unit})",
        f"Median price per problem ({price_unit})",
    ]


def mean_and_std(mean: float, std: float, decimals: int, plus_minus: str) -> str:
    if math.isnan(std):
        return f"{mean:.{decimals}f}"
    return f"{mean:.{decimals}f}{plus_minus}{std:.{decimals}f}"


def formatted_rows(
    table: pandas.DataFrame, price_unit: PriceUnit, plus_minus: str = TEXT_PLUS_MINUS
) -> list[list[str]]:
    """One row of cell texts per agent, in `headers` order."""
    price_decimals = PRICE_DECIMALS[price_unit]
    rows = []
    for record in table.to_dict("records"):
        rows.append(
            [
                str(record[AGENT_COLUMN]),
                mean_and_std(
                    record["problems_solved_mean"],
                    record["problems_solved_std"],
                    1,
                    plus_minus,
                ),
                *(
                    mean_and_std(
                        record[f"{measure}_mean"],
                        record[f"{measure}_std"],
                        price_decimals,
                        plus_minus,
                    )
                    for measure in ("avg_price", "median_price")
                ),
            ]
        )
    return rows


def latex_table(table: pandas.DataFrame, price_unit: PriceUnit) -> str:
    """A booktabs `tabular`, agents' names escaped for LaTeX."""
    import pandas

    cells = pandas.DataFrame(
        formatted_rows(table, price_unit, LATEX_PLUS_MINUS), columns=headers(price_unit)
    )
    # pandas' Styler escapes what LaTeX would read as markup (`_`, `&`, `%`, `#`) in
    # the names only: the cells' `$\pm$` is markup on purpose.
    styled = (
        cells.style.hide(axis="index")
        .format(escape="latex", subset=["Agent"])
        .format_index(escape="latex", axis="columns")
    )
    return str(styled.to_latex(hrules=True, column_format="l" + "r" * 3))


def markdown_table(table: pandas.DataFrame, price_unit: PriceUnit) -> str:
    """A pipe table; a `|` in an agent's name is escaped."""
    import pandas

    rows = formatted_rows(table, price_unit)
    for row in rows:
        row[0] = row[0].replace("|", "\\|")
    cells = pandas.DataFrame(rows, columns=headers(price_unit))
    # The cells are text already: tabulate must not read "49.0" as the number 49.
    text = cells.to_markdown(
        index=False, colalign=("left", "right", "right", "right"), disable_numparse=True
    )
    return f"{text}\n"


def csv_text(table: pandas.DataFrame) -> str:
    """Every number at full precision (prices in the table's unit)."""
    return str(table[list(TABLE_COLUMNS)].to_csv(index=False))
