"""The `pytest11` entry point: options, and the session-wide objects they configure.

`pytest --delphyne-exp=exp.py` makes each configuration of the experiment in `exp.py`
a test item. The controller (the one process that is not an xdist worker) loads each
experiment before anything is collected: it names new configs, holds the run lock and
decides, from the state, what each config does (`session.py`). Workers receive that plan
through `workerinput`, so every process collects the same items under the same names.
"""

from __future__ import annotations

import atexit
import functools
import gc
from typing import TYPE_CHECKING

import pytest

from pytest_delphyne.environment import LOG_LEVELS
from pytest_delphyne.plan import ExperimentSpec
from pytest_delphyne.session import (
    DelphyneSession,
    delphyne_session_key,
    pdb_without_workers_key,
)

if TYPE_CHECKING:
    from collections.abc import Generator


# Experiment settings the command line overrides: option name, dest, help.
OVERRIDDEN_SETTINGS = [
    ("cache", "delphyne_cache_requests", "Record and replay oracle calls"),
    ("log", "delphyne_export_log", "Write each config's log.txt"),
    ("raw-trace", "delphyne_export_raw_trace", "Write each config's trace.yaml"),
    (
        "browsable-trace",
        "delphyne_export_browsable_trace",
        "Write each config's trace.html",
    ),
    (
        "verbose-snapshots",
        "delphyne_verbose_snapshots",
        "Put each running config's recent log in interactive snapshots",
    ),
]


def pytest_addoption(parser: pytest.Parser) -> None:
    group = parser.getgroup("delphyne", "experiments of oracular programs")
    group.addoption(
        "--delphyne-exp",
        action="append",
        dest="delphyne_exp",
        default=[],
        metavar="PATH[::ATTR]",
        help="Experiment file whose configs to run as tests, with the attribute "
        "naming the Experiment when the file defines several (repeatable)",
    )
    group.addoption(
        "--delphyne-replay",
        action="store_true",
        dest="delphyne_replay",
        default=False,
        help="Replay done and failed configs from their caches, without LLM calls, "
        "and fail those whose outcome differs from the recorded one",
    )
    group.addoption(
        "--delphyne-max-price",
        action="store",
        type=float,
        dest="delphyne_max_price",
        default=None,
        metavar="PRICE",
        help="Start no more configs once this session has spent PRICE; the rest "
        "stay todo",
    )
    group.addoption(
        "--delphyne-reuse-cache",
        action="store_true",
        dest="delphyne_reuse_cache",
        default=False,
        help="Let retried configs replay the calls their failed attempt recorded "
        "instead of paying for them again",
    )
    for name, dest, what in OVERRIDDEN_SETTINGS:
        group.addoption(
            f"--delphyne-{name}",
            action="store_true",
            dest=dest,
            default=None,
            help=f"{what}, whatever the experiment says",
        )
        group.addoption(
            f"--delphyne-no-{name}",
            action="store_false",
            dest=dest,
            default=None,
            help=f"Do not {what[0].lower()}{what[1:]}",
        )
    group.addoption(
        "--delphyne-log-level",
        action="store",
        dest="delphyne_log_level",
        default=None,
        choices=LOG_LEVELS,
        help="Lowest level of the log messages kept, whatever the experiment says",
    )
    group.addoption(
        "--delphyne-report",
        action="store",
        dest="delphyne_report",
        default=None,
        metavar="PATH",
        help="At session end, write the experiment's HTML report to PATH (needs "
        "the 'report' extra)",
    )
    group.addoption(
        "--delphyne-report-group-by",
        action="store",
        dest="delphyne_report_group_by",
        default=None,
        metavar="NAMES",
        help="Hyperparameters, comma-separated, whose values each get their own "
        "scaling curve in the report",
    )
    parser.addini(
        "delphyne_exp",
        type="linelist",
        help="Experiment files to run as tests, as with --delphyne-exp",
        default=[],
    )
    parser.addini(
        "delphyne_max_price",
        type="string",
        help="A spend cap for each session, as --delphyne-max-price",
        default="",
    )
    parser.addini(
        "delphyne_reuse_cache",
        type="bool",
        help="Let retried configs replay what their failed attempt paid for, as "
        "--delphyne-reuse-cache",
        default=False,
    )
    parser.addini(
        "delphyne_log_level",
        type="string",
        help="Lowest level of the log messages kept, as --delphyne-log-level",
        default="",
    )


def apply_ini_settings(config: pytest.Config) -> None:
    """The ini file's settings, for the options the command line leaves unset (a
    lab's spend cap in its pytest.ini, say); the command line wins."""
    option = config.option
    where = config.inipath or "the ini file"
    price = str(config.getini("delphyne_max_price")).strip()
    if option.delphyne_max_price is None and price:
        try:
            option.delphyne_max_price = float(price)
        except ValueError:
            raise pytest.UsageError(
                f"delphyne_max_price in {where}: {price!r} is not a price"
            ) from None
    if not option.delphyne_reuse_cache and config.getini("delphyne_reuse_cache"):
        option.delphyne_reuse_cache = True
    level = str(config.getini("delphyne_log_level")).strip()
    if option.delphyne_log_level is None and level:
        if level not in LOG_LEVELS:
            raise pytest.UsageError(
                f"delphyne_log_level in {where}: {level!r} is not one of "
                f"{', '.join(LOG_LEVELS)}"
            )
        option.delphyne_log_level = level


def experiment_specs(config: pytest.Config) -> list[ExperimentSpec]:
    """The experiments of this session: the command line's, else the ini file's."""
    given: list[str] = config.getoption("delphyne_exp")
    if given:
        base = config.invocation_params.dir
        return [ExperimentSpec.parse(text, base) for text in given]
    from_ini: list[str] = config.getini("delphyne_exp")
    base = config.inipath.parent if config.inipath else config.rootpath
    return [ExperimentSpec.parse(text, base) for text in from_ini]


# wrapper: must run before xdist's own `pytest_cmdline_main`, which refuses --pdb
# together with -n.
@pytest.hookimpl(wrapper=True)
def pytest_cmdline_main(config: pytest.Config) -> Generator[None, object, object]:
    option = config.option
    distributed = bool(getattr(option, "numprocesses", None)) or bool(
        getattr(option, "tx", None)
    )
    if config.getoption("usepdb") and distributed and config.getoption("delphyne_exp"):
        option.numprocesses = 0
        option.dist = "no"
        option.tx = []
        config.stash[pdb_without_workers_key] = True
    return (yield)


@functools.cache
def _freeze_at_exit() -> None:
    # When the process ends, nothing is left worth collecting: frozen, the objects
    # of the session are skipped by the interpreter's last collection. That shutdown
    # took 0.7 s of a 10,000-config run, in each xdist worker (which the controller
    # waits for) and in the controller. Python promises no finalizer to objects
    # still alive at exit anyway, and the plugin's files are all closed by then
    # (the journal is written unbuffered, a config's files when it ends).
    atexit.register(gc.freeze)


@pytest.hookimpl
def pytest_configure(config: pytest.Config) -> None:
    specs = experiment_specs(config)
    if specs:
        apply_ini_settings(config)
    if not specs or config.getoption("help"):
        return
    # The session freezes what lives as long as it does (`gc.freeze`). Unfrozen by
    # the last cleanup: this one, added before pytest's own, runs after them, and
    # pytest's full collections at the end of the run (0.7 s at 100,000 configs)
    # skip the frozen objects.
    config.add_cleanup(gc.unfreeze)
    _freeze_at_exit()
    session = DelphyneSession(config)
    config.stash[delphyne_session_key] = session
    config.pluginmanager.register(session, "delphyne-session")
    session.start(specs)
    if config.args_source != pytest.Config.ArgsSource.ARGS:
        # Without positional paths, the experiments are the whole test run.
        config.args[:] = [str(path) for path in session.bindings]
    else:
        config.args.extend(
            str(path) for path in session.bindings if str(path) not in config.args
        )


@pytest.hookimpl
def pytest_unconfigure(config: pytest.Config) -> None:
    session = config.stash.get(delphyne_session_key, None)
    if session is None:
        return
    session.close()
    config.pluginmanager.unregister(session)
    del config.stash[delphyne_session_key]
