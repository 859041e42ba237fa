"""The report's sections that list configs one by one (the slowest, the failed, and
the table of all of them), each with links to its files beside the page.

Each list is cut at a limit of `data` (`SLOWEST_SHOWN`, `FAILURES_SHOWN`,
`CONFIGS_SHOWN`), so that the page stays small at 100,000 configs.
"""

from __future__ import annotations

import os
import urllib.parse
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from pytest_delphyne import layout
from pytest_delphyne.report.data import (
    CONFIGS_SHOWN,
    FAILURES_SHOWN,
    SLOWEST_SHOWN,
    TRACEBACK_LINES,
    ReportData,
)
from pytest_delphyne.report.markup import (
    Markup,
    escape,
    format_price,
    format_seconds,
    format_value,
    table,
)
from pytest_delphyne.report.plots import duration_histogram


@dataclass(frozen=True)
class ConfigFiles:
    """Links from the page at `page` to the files of each config in `output_dir`,
    relative, so that the page and the output directory can move together."""

    output_dir: Path
    page: Path

    def link(self, name: str, file_name: str, label: str | None = None) -> Markup:
        target = layout.config_dir(self.output_dir, name) / file_name
        relative = os.path.relpath(target, self.page.parent)
        href = urllib.parse.quote(Path(relative).as_posix())
        return Markup(f'<a href="{href}">{escape(label or file_name)}</a>')

    def file_links(self, name: str) -> Markup:
        directory = layout.config_dir(self.output_dir, name)
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


def params_text(row: Any, columns: Sequence[str]) -> str:
    return ", ".join(f"{column}={format_value(row[column])}" for column in columns)


# ------------------------------------------------------------ sections


def durations_section(data: ReportData, files: ConfigFiles) -> Markup:
    done = data.frame[data.frame["duration"].notna()]
    parts = ['<section id="durations"><h2>Durations</h2><div class="row">']
    parts.append(duration_histogram(done["duration"].astype(float)))
    slowest = done.sort_values("duration", ascending=False).head(SLOWEST_SHOWN)
    varying = data.varying
    parts.append(
        table(
            ["config", "hyperparameters", "duration (s)", "success"],
            (
                (
                    files.link(
                        row["config_name"], layout.RESULT_FILE, row["config_name"]
                    ),
                    params_text(row, varying),
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


def failures_section(data: ReportData, files: ConfigFiles) -> Markup:
    failed = data.frame[data.frame["status"] == "failed"]
    parts = [f'<section id="failures"><h2>Failed configs ({len(failed)})</h2>']
    if not len(failed):
        parts.append("<p>No config failed.</p></section>")
        return Markup("".join(parts))
    if len(failed) > FAILURES_SHOWN:
        parts.append(f"<p>The first {FAILURES_SHOWN} are shown.</p>")
    varying = data.varying
    rows = []
    for _, row in failed.head(FAILURES_SHOWN).iterrows():
        name = row["config_name"]
        path = layout.exception_file_path(data.output_dir, name)
        try:
            lines = path.read_text(encoding="utf-8", errors="replace").splitlines()
        except OSError:
            lines = ["(no exception.txt)"]
        tail = "\n".join(lines[-TRACEBACK_LINES:])
        rows.append(
            (
                Markup(escape(name)),
                params_text(row, varying),
                Markup(f"<pre>{escape(tail)}</pre>"),
                files.link(name, layout.EXCEPTION_FILE),
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


def configs_section(data: ReportData, files: ConfigFiles) -> Markup:
    frame = data.frame
    parts = [f'<section id="configs"><h2>Configs ({len(frame)})</h2>']
    if len(frame) > CONFIGS_SHOWN:
        parts.append(
            f"<p>The first {CONFIGS_SHOWN} are listed; every config's files are "
            f"under {escape(layout.config_dir(data.output_dir, ''))}.</p>"
        )
    varying = data.varying
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
                    files.file_links(row["config_name"]),
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
