"""The plugin's options and ini keys, read once into the records the session uses.

The command line wins over the ini file. What decides each config's action becomes
`SelectionOptions`, the overrides of the experiments' settings one `RunSettings`; the
launcher turns a `RunSettings` back into options (`settings_arguments`).
"""

from __future__ import annotations

import pytest

from pytest_delphyne.concurrency import ConcurrencyError, check_concurrency
from pytest_delphyne.discovery import ExperimentSpec
from pytest_delphyne.environment import LOG_LEVELS
from pytest_delphyne.progress import DEFAULT_PROGRESS_INTERVAL
from pytest_delphyne.selection import SelectionOptions
from pytest_delphyne.settings import RunSettings
from pytest_delphyne.spend_cap import BadSpendCapError, check_spend_cap
from pytest_delphyne.wire import PLANS_KEY, worker_input

# The settings of `RunSettings` the command line overrides, as on/off options: the
# setting, its option's name, help.
SETTING_OPTIONS = (
    ("cache_requests", "cache", "Record and replay oracle calls"),
    ("export_log", "log", "Write each config's log.txt"),
    ("export_raw_trace", "raw-trace", "Write each config's trace.yaml"),
    ("export_browsable_trace", "browsable-trace", "Write each config's trace.html"),
    (
        "verbose_snapshots",
        "verbose-snapshots",
        "Put each running config's recent log in interactive snapshots",
    ),
)


def add_options(parser: pytest.Parser) -> None:
    """The plugin's command-line options and ini keys."""
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
        "--delphyne-concurrency",
        action="store",
        type=int,
        dest="delphyne_concurrency",
        default=None,
        metavar="K",
        help="Keep up to K configs in flight in each process, for programs that "
        "wait on models (items are still reported one at a time, in order)",
    )
    group.addoption(
        "--delphyne-reuse-cache",
        action="store_true",
        dest="delphyne_reuse_cache",
        default=False,
        help="Let retried configs replay the calls their failed attempt recorded "
        "instead of paying for them again",
    )
    for setting, name, what in SETTING_OPTIONS:
        dest = f"delphyne_{setting}"
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
        "--delphyne-interactive",
        action="store_true",
        dest="delphyne_interactive",
        default=False,
        help="Pressing Enter prints each running config's elapsed time and writes "
        "a snapshot of the running configs under the output directory",
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
    group.addoption(
        "--delphyne-progress-interval",
        action="store",
        type=float,
        dest="delphyne_progress_interval",
        default=DEFAULT_PROGRESS_INTERVAL,
        metavar="SECONDS",
        help="Seconds between the lines showing what the session paid so far "
        "(0: after every config; -q shows none)",
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
        "delphyne_concurrency",
        type="string",
        help="Configs in flight in each process, as --delphyne-concurrency",
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
    cap_origin = "--delphyne-max-price"
    if option.delphyne_max_price is None and price:
        cap_origin = f"delphyne_max_price in {where}"
        try:
            option.delphyne_max_price = float(price)
        except ValueError:
            raise pytest.UsageError(f"{cap_origin}: {price!r} is not a price") from None
    if option.delphyne_max_price is not None:
        try:
            check_spend_cap(option.delphyne_max_price, cap_origin)
        except BadSpendCapError as error:
            raise pytest.UsageError(str(error)) from None
    concurrency = str(config.getini("delphyne_concurrency")).strip()
    if option.delphyne_concurrency is None and concurrency:
        try:
            option.delphyne_concurrency = check_concurrency(concurrency)
        except ConcurrencyError as error:
            raise pytest.UsageError(
                f"delphyne_concurrency in {where}: {error}"
            ) from None
    if option.delphyne_concurrency is not None:
        try:
            check_concurrency(option.delphyne_concurrency)
        except ConcurrencyError as error:
            raise pytest.UsageError(str(error)) from None
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
    """The experiments of this session: the command line's, else the ini file's
    when the command line names no path (as pytest's `testpaths`)."""
    given: list[str] = config.getoption("delphyne_exp")
    if given:
        base = config.invocation_params.dir
        return [ExperimentSpec.parse(text, base) for text in given]
    if not ini_experiments_apply(config):
        return []
    from_ini: list[str] = config.getini("delphyne_exp")
    base = config.inipath.parent if config.inipath else config.rootpath
    return [ExperimentSpec.parse(text, base) for text in from_ini]


def ini_experiments_apply(config: pytest.Config) -> bool:
    """Whether the ini file's `delphyne_exp` is this session's: only when the command
    line gives no path, as pytest's `testpaths` (`pytest tests/test_unit.py` runs
    that file only). A worker follows its controller: the plans come with it."""
    workerinput = worker_input(config)
    if workerinput is not None:
        return PLANS_KEY in workerinput
    return config.args_source != pytest.Config.ArgsSource.ARGS


def selection_options(config: pytest.Config) -> SelectionOptions:
    """What decides each config's action, from the command line and the ini file."""
    return SelectionOptions(
        # The cache provider defines these; `-p no:cacheprovider` removes them.
        last_failed=bool(config.getoption("lf", False)),
        failed_first=bool(config.getoption("failedfirst", False)),
        replay=bool(config.getoption("usepdb"))
        or bool(config.getoption("delphyne_replay")),
        reuse_cache=bool(config.getoption("delphyne_reuse_cache")),
        max_price=config.getoption("delphyne_max_price"),
    )


def command_line_settings(config: pytest.Config) -> RunSettings:
    """The command line's (and the ini file's) overrides of the experiments'
    settings."""
    values = {
        setting: config.getoption(f"delphyne_{setting}")
        for setting, _, _ in SETTING_OPTIONS
    }
    return RunSettings(log_level=config.getoption("delphyne_log_level"), **values)


def settings_arguments(settings: RunSettings) -> list[str]:
    """The command-line options that give `settings` (the launcher's `run`)."""
    arguments: list[str] = []
    for setting, name, _ in SETTING_OPTIONS:
        value = getattr(settings, setting)
        if value is not None:
            arguments.append(f"--delphyne-{name}" if value else f"--delphyne-no-{name}")
    if settings.log_level is not None:
        arguments.append(f"--delphyne-log-level={settings.log_level}")
    return arguments
