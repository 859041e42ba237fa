"""The `pytest11` entry point: options, and the session-wide objects they configure.

`pytest --delphyne-exp=exp.py` makes each configuration of the experiment in `exp.py`
a test item. `pytest_configure` reads the options once into two records (what each
config does: `SelectionOptions`; the overrides of the experiments' settings:
`RunSettings`), starts the session (`controller.py` on the controller, which loads each
experiment and names new configs before anything is collected; `workers.start_worker`
on an xdist worker, which receives the controller's plans through `workerinput`), and
registers the plugin objects this process needs, each under its own stash key;
`pytest_unconfigure` unregisters them.
"""

from __future__ import annotations

import gc
import os
from typing import IO, TYPE_CHECKING, Any, TypeVar

import pytest

from pytest_delphyne.controller import Controller, SessionReports
from pytest_delphyne.discovery import ExperimentSpec
from pytest_delphyne.environment import LOG_LEVELS
from pytest_delphyne.memory import freeze_at_exit, session_long_lived
from pytest_delphyne.recorder import Recorder
from pytest_delphyne.selection import SelectionOptions
from pytest_delphyne.session import DelphyneSession, pdb_without_workers_key
from pytest_delphyne.settings import RunSettings
from pytest_delphyne.snapshots import InteractiveSnapshots
from pytest_delphyne.wire import worker_input
from pytest_delphyne.workers import XdistHooks, start_worker

if TYPE_CHECKING:
    from collections.abc import Generator

T = TypeVar("T")

session_key = pytest.StashKey[DelphyneSession]()
controller_key = pytest.StashKey[Controller]()
xdist_hooks_key = pytest.StashKey[XdistHooks]()
recorder_key = pytest.StashKey[Recorder]()
reports_key = pytest.StashKey[SessionReports]()
snapshots_key = pytest.StashKey[InteractiveSnapshots]()
interactive_input_key = pytest.StashKey[IO[str]]()

# Each registered object's stash key and plugin name, in the order of registration.
_PLUGIN_KEYS: tuple[tuple[pytest.StashKey[Any], str], ...] = (
    (session_key, "delphyne-session"),
    (xdist_hooks_key, "delphyne-xdist"),
    (recorder_key, "delphyne-recorder"),
    (reports_key, "delphyne-report"),
    (snapshots_key, "delphyne-snapshots"),
)

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


# wrapper, tryfirst: around pytest's capture plugin, which replaces the standard input
# when it starts capturing here; interactive snapshots read the real one.
@pytest.hookimpl(wrapper=True, tryfirst=True)
def pytest_load_initial_conftests(
    early_config: pytest.Config,
) -> Generator[None, None, None]:
    if getattr(early_config.known_args_namespace, "delphyne_interactive", False):
        early_config.stash[interactive_input_key] = os.fdopen(os.dup(0), "r")
    return (yield)


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


def _register(config: pytest.Config, key: pytest.StashKey[T], plugin: T) -> T:
    name = dict(_PLUGIN_KEYS)[key]
    config.stash[key] = plugin
    config.pluginmanager.register(plugin, name)
    return plugin


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
    freeze_at_exit()
    session = _register(
        config,
        session_key,
        DelphyneSession(
            config, selection_options(config), command_line_settings(config)
        ),
    )
    with session_long_lived():
        workerinput = worker_input(config)
        if workerinput is not None:
            start_worker(session, workerinput)
        else:
            _start_controller(config, session, specs)
        session.align_last_failed()
    paths = [str(path) for path in session.bindings]
    if config.args_source != pytest.Config.ArgsSource.ARGS:
        # Without positional paths, the experiments are the whole test run.
        config.args[:] = paths
    else:
        config.args.extend(path for path in paths if path not in config.args)


def _start_controller(
    config: pytest.Config, session: DelphyneSession, specs: list[ExperimentSpec]
) -> None:
    controller = Controller(session)
    config.stash[controller_key] = controller
    controller.start(specs)
    xdist: XdistHooks | None = None
    if config.pluginmanager.hasplugin("xdist"):
        xdist = _register(
            config,
            xdist_hooks_key,
            XdistHooks(
                config,
                session.plans,
                controller.setup_bytes,
                controller.spend_ledger,
                on_worker_collection=session.write_plan_lines,
            ),
        )
    if not controller.runs_configs:
        return
    recorder = _register(
        config,
        recorder_key,
        Recorder(
            config,
            controller.experiments,
            session.selection,
            xdist,
            session_id=session.session_id,
        ),
    )
    report_path = config.getoption("delphyne_report")
    if report_path:
        _register(
            config,
            reports_key,
            SessionReports(
                config.invocation_params.dir / report_path,
                config.getoption("delphyne_report_group_by"),
                controller.experiments,
            ),
        )
    source = config.stash.get(interactive_input_key, None)
    if source is not None:
        _register(
            config,
            snapshots_key,
            InteractiveSnapshots(config, recorder, source, session.settings),
        )


@pytest.hookimpl
def pytest_unconfigure(config: pytest.Config) -> None:
    controller = config.stash.get(controller_key, None)
    if controller is not None:
        controller.close()
        del config.stash[controller_key]
    session = config.stash.get(session_key, None)
    if session is not None:
        session.close()
    for key, _ in reversed(_PLUGIN_KEYS):
        plugin = config.stash.get(key, None)
        if plugin is not None:
            config.pluginmanager.unregister(plugin)
            del config.stash[key]
    source = config.stash.get(interactive_input_key, None)
    if source is not None:
        source.close()
        del config.stash[interactive_input_key]
