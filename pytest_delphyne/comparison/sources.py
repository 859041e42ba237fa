"""The experiments a comparison reads, each as one frame of summary rows.

A source is an output directory (its `results_summary.csv`), an experiment file (its
done configs, read from the state and the result files, so no summary is needed), or
a summary CSV, the reference launcher's included. `LABEL=PATH` names it; otherwise
it is named after the file or directory.
"""

from __future__ import annotations

import runpy
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from pytest_delphyne import layout
from pytest_delphyne.errors import DelphyneError
from pytest_delphyne.experiment import Experiment
from pytest_delphyne.report.data import RESULT_COLUMNS
from pytest_delphyne.script_experiment import experiment_of_script
from pytest_delphyne.summary import summary_columns, summary_rows

if TYPE_CHECKING:
    import pandas

MISSING_SOURCE_MESSAGE = "{path}: no such file or directory"
NO_SUMMARY_IN_DIRECTORY_MESSAGE = (
    "{path}: no {summary} in this directory; pass the experiment file instead, or "
    "write the summary first (python exp.py force-summary)"
)
UNREADABLE_CSV_MESSAGE = "{path}: not a summary CSV ({problem})"
MISSING_RESULT_COLUMNS_MESSAGE = (
    "{path}: not a summary CSV, it lacks the column(s) {columns}"
)
SEVERAL_EXPERIMENTS_MESSAGE = (
    "{path} defines several experiments ({names}); compare their output directories"
)
DUPLICATE_LABEL_MESSAGE = (
    "two experiments are named {label!r}; name them apart with LABEL=PATH"
)
EMPTY_LABEL_MESSAGE = "{text!r}: the experiment's name before '=' is empty"
REQUIRED_COLUMNS = ("success", "price")


class SourceError(DelphyneError):
    """A source that cannot be read as an experiment's summary."""


@dataclass(frozen=True)
class Source:
    """One experiment of a comparison.

    Attributes:
        label: Its name in the table and the figures.
        path: What was given: an output directory, an experiment file or a CSV.
    """

    label: str
    path: Path


@dataclass
class ExperimentRows:
    """The summary rows of one experiment, one per done config."""

    source: Source
    frame: pandas.DataFrame

    @property
    def params(self) -> list[str]:
        """The hyperparameter columns: every column that is not a result."""
        return [column for column in self.frame.columns if column not in RESULT_COLUMNS]


def parse_source(text: str) -> Source:
    """`PATH` or `LABEL=PATH` as a `Source`.

    Raises:
        SourceError: the label is empty.
    """
    label, separator, path_text = text.partition("=")
    if not separator or Path(text).exists():
        path = Path(text)
        return Source(default_label(path), path)
    if not label.strip():
        raise SourceError(EMPTY_LABEL_MESSAGE.format(text=text))
    return Source(label.strip(), Path(path_text))


def default_label(path: Path) -> str:
    """The directory's name, or the file's without its suffixes (a summary is named
    after the directory it lies in)."""
    if path.name == layout.SUMMARY_FILE:
        return path.absolute().parent.name
    return layout.path_stem(path) if path.is_file() else path.absolute().name


def read_sources(sources: list[Source]) -> list[ExperimentRows]:
    """Read every source, in order.

    Raises:
        SourceError: one cannot be read, or two share a label.
    """
    seen: set[str] = set()
    for source in sources:
        if source.label in seen:
            raise SourceError(DUPLICATE_LABEL_MESSAGE.format(label=source.label))
        seen.add(source.label)
    return [ExperimentRows(source, read_frame(source.path)) for source in sources]


def read_frame(path: Path) -> pandas.DataFrame:
    """The summary rows that `path` holds or leads to.

    Raises:
        SourceError: naming the path and what is wrong with it.
    """
    if path.is_dir():
        summary = layout.summary_file_path(path)
        if not summary.is_file():
            raise SourceError(
                NO_SUMMARY_IN_DIRECTORY_MESSAGE.format(
                    path=path, summary=layout.SUMMARY_FILE
                )
            )
        return read_summary_csv(summary)
    if not path.is_file():
        raise SourceError(MISSING_SOURCE_MESSAGE.format(path=path))
    if path.suffix == ".py":
        return experiment_frame(path)
    return read_summary_csv(path)


def read_summary_csv(path: Path) -> pandas.DataFrame:
    import pandas

    try:
        frame = pandas.read_csv(path)
    except (ValueError, UnicodeDecodeError) as error:
        problem = str(error).splitlines()[0] if str(error) else type(error).__name__
        raise SourceError(
            UNREADABLE_CSV_MESSAGE.format(path=path, problem=problem)
        ) from None
    missing = [column for column in REQUIRED_COLUMNS if column not in frame.columns]
    if missing:
        raise SourceError(
            MISSING_RESULT_COLUMNS_MESSAGE.format(path=path, columns=", ".join(missing))
        )
    return frame


def experiment_frame(path: Path) -> pandas.DataFrame:
    """The done configs of the experiment that the file defines, as summary rows."""
    import pandas

    experiment = defined_experiment(path.absolute())
    output_dir = experiment.absolute_output_dir
    rows = summary_rows(
        output_dir, experiment.load_state(), experiment.codec, ignore_missing=True
    )
    return pandas.DataFrame(rows, columns=summary_columns(rows, add_timing=False))


def defined_experiment(path: Path) -> Experiment[Any]:
    """The experiment a file defines at module level, or else builds when run as a
    script."""
    sys.path.insert(0, str(path.parent))
    try:
        # Not `__main__`: a script's `run_cli()` must not run.
        namespace = runpy.run_path(str(path), run_name=f"delphyne_compare_{path.stem}")
    finally:
        sys.path.remove(str(path.parent))
    found = {
        name: value
        for name, value in namespace.items()
        if isinstance(value, Experiment)
    }
    if len(found) > 1:
        raise SourceError(
            SEVERAL_EXPERIMENTS_MESSAGE.format(
                path=path, names=", ".join(sorted(found))
            )
        )
    if found:
        return next(iter(found.values()))
    return experiment_of_script(path)
