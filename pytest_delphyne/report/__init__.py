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

Modules, each importing only those above it: `request` (the checks made before any
work), `data` (the state and results as one frame, and its aggregates), `markup` (HTML
escaping, cell formats, tables), `plots` (figures as inline PNG), `listings` (the
sections listing configs one by one), `page` (the page and `write_report`).
"""

from __future__ import annotations

from pytest_delphyne.report.data import (
    CONFIGS_SHOWN,
    CURVES_SHOWN,
    FAILURES_SHOWN,
    LEVELS_SHOWN,
    PAIR_CELLS,
    PAIRS_SHOWN,
    SLOWEST_SHOWN,
    TRACEBACK_LINES,
)
from pytest_delphyne.report.page import (
    REPORT_FILE,
    write_experiment_report,
    write_report,
)
from pytest_delphyne.report.request import (
    MISSING_PLOTTING_MESSAGE,
    UNKNOWN_GROUP_MESSAGE,
    ReportDependencyError,
    UnknownGroupError,
    check_group_by,
    parse_group_by,
    require_plotting,
)

__all__ = [
    "CONFIGS_SHOWN",
    "CURVES_SHOWN",
    "FAILURES_SHOWN",
    "LEVELS_SHOWN",
    "MISSING_PLOTTING_MESSAGE",
    "PAIRS_SHOWN",
    "PAIR_CELLS",
    "REPORT_FILE",
    "SLOWEST_SHOWN",
    "TRACEBACK_LINES",
    "UNKNOWN_GROUP_MESSAGE",
    "ReportDependencyError",
    "UnknownGroupError",
    "check_group_by",
    "parse_group_by",
    "require_plotting",
    "write_experiment_report",
    "write_report",
]
