"""File names of an experiment's output directory, and the paths built from them.

Everything an experiment writes lives under its output directory:

    <output_dir>/experiment.yaml              the state (see `state.py`)
    <output_dir>/experiment.journal           results recorded since the last fold
    <output_dir>/.experiment.index.json       a fast copy of the state (see `state.py`)
    <output_dir>/.run.lock                    the run lock, and who holds it
    <output_dir>/configs/<name>/result.yaml   a config's outcome
    <output_dir>/configs/<name>/cache.yaml    its recorded oracle calls
    <output_dir>/configs/<name>/log.txt       its log messages
    <output_dir>/configs/<name>/exception.txt the traceback of a failed run
    <output_dir>/configs/<name>/failure.yaml  its params and times (see `results.py`)
    <output_dir>/results_summary.csv          one row per config
    <output_dir>/results_totals.csv           paid in total, recorded in total
"""

from __future__ import annotations

from pathlib import Path

STATE_FILE = "experiment.yaml"
JOURNAL_FILE = "experiment.journal"
# Every amount paid, by config and attempt (`ledger.py`).
LEDGER_FILE = "experiment.ledger"
# Journal records that no longer fit the state (edited by hand), kept rather than lost.
JOURNAL_ASIDE_FILE = "experiment.journal.aside"
# A JSON copy of experiment.yaml's data, read instead of it while it is unchanged.
STATE_INDEX_FILE = ".experiment.index.json"
LOCK_HOLDER_FILE = ".run.lock.holder"
CONFIGS_DIR = "configs"
RESULT_FILE = "result.yaml"
CACHE_FILE = "cache.yaml"
LOG_FILE = "log.txt"
EXCEPTION_FILE = "exception.txt"
# Beside `exception.txt`: what a load needs to record a failed run it finds on disk.
FAILURE_FILE = "failure.yaml"
RAW_TRACE_FILE = "trace.yaml"
BROWSABLE_TRACE_FILE = "trace.html"
SUMMARY_FILE = "results_summary.csv"
# Beside the summary, whose rows stay one per config: what was paid and recorded.
TOTALS_FILE = "results_totals.csv"
SNAPSHOTS_DIR = "snapshots"


def path_stem(path: Path | str) -> str:
    """The name of a file without its directory and its last suffix, as the
    reference's (`exp.v2.py` gives `exp.v2`): the output directory an experiment names
    after its script stays where the reference put it.

    Handy to name an output directory after the script that defines the experiment:
    `output_dir=f"output/{path_stem(__file__)}"`.
    """
    return Path(path).stem


def anchored_output_dir(output_dir: Path | str, anchor: Path | str) -> Path:
    """`output_dir` (`~` expanded) as an absolute path: itself if it is absolute,
    else relative to `anchor`."""
    path = Path(output_dir).expanduser()
    if path.is_absolute():
        return path
    return Path(anchor).absolute() / path


def state_file_path(output_dir: Path) -> Path:
    return output_dir / STATE_FILE


def journal_file_path(output_dir: Path) -> Path:
    return output_dir / JOURNAL_FILE


def config_dir(output_dir: Path, config_name: str) -> Path:
    """The directory holding every file of one config."""
    return output_dir / CONFIGS_DIR / config_name


def result_file_path(output_dir: Path, config_name: str) -> Path:
    return config_dir(output_dir, config_name) / RESULT_FILE


def cache_file_path(output_dir: Path, config_name: str) -> Path:
    return config_dir(output_dir, config_name) / CACHE_FILE


def exception_file_path(output_dir: Path, config_name: str) -> Path:
    return config_dir(output_dir, config_name) / EXCEPTION_FILE


def summary_file_path(output_dir: Path) -> Path:
    return output_dir / SUMMARY_FILE
