"""HTML pieces of the report: escaping, the formatting of values in cells, and tables.

Text reaches the page only through `escape`; `Markup` marks what is already HTML, so
that a hyperparameter value or a traceback line can never inject markup.
"""

from __future__ import annotations

import html
from collections.abc import Iterable, Sequence
from datetime import datetime


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


def slug(text: str) -> str:
    return "".join(char if char.isalnum() else "-" for char in text).strip("-").lower()


COMMON_STYLE = """\
body { font-family: system-ui, sans-serif; margin: 2em; color: #222; }
h2 { border-bottom: 1px solid #ccc; padding-bottom: 0.2em; margin-top: 2em; }
.row { display: flex; flex-wrap: wrap; gap: 2em; align-items: flex-start; }
figcaption { color: #555; font-size: 0.85em; }
figure { margin: 0; }
td.num { text-align: right; font-variant-numeric: tabular-nums; }
th { background: #f3f3f3; text-align: left; }
th, td { border: 1px solid #ddd; padding: 0.25em 0.6em; vertical-align: top; }
table { border-collapse: collapse; font-size: 0.9em; margin: 0.5em 0; }
"""
"""The style rules the report and the comparison pages share."""
