"""The `pytest11` entry point: options, and the session-wide objects they configure.

`pytest --delphyne-exp=exp.py` makes each configuration of the experiment in `exp.py`
a test item. `pytest_configure` reads the options once into two records (what each
config does: `SelectionOptions`; the overrides of the experiments' settings:
`RunSettings`), starts the session (`controller.py` on the controller, which loads each
experiment and names new configs before anything is collected; `worker_start.py` on an
xdist worker, which receives the controller's plans through `workerinput`), and
registers the plugin objects this process needs, each under its own stash key;
`pytest_unconfigure` unregisters them.
"""

from __future__ import annotations

import gc
import os
from typing import IO, TYPE_CHECKING, Any, TypeVar

import pytest

from pytest_delphyne.concurrency import (
    WORKSTEAL_MESSAGE,
    ConfigPool,
    SessionQueue,
    pool_key,
)
from pytest_delphyne.controller import Controller, SessionReports
from pytest_delphyne.discovery import ExperimentSpec
from pytest_delphyne.memory import freeze_at_exit, session_long_lived
from pytest_delphyne.notices import TerminalNotices, notices_key
from pytest_delphyne.options import (
    add_options,
    apply_ini_settings,
    command_line_settings,
    experiment_specs,
    selection_options,
)
from pytest_delphyne.recorder import Recorder
from pytest_delphyne.session import DelphyneSession, pdb_without_workers_key
from pytest_delphyne.snapshots import InteractiveSnapshots
from pytest_delphyne.wire import worker_input
from pytest_delphyne.worker_start import start_worker
from pytest_delphyne.workers import XdistHooks, worker_queue

if TYPE_CHECKING:
    from collections.abc import Generator

T = TypeVar("T")

session_key = pytest.StashKey[DelphyneSession]()
controller_key = pytest.StashKey[Controller]()
xdist_hooks_key = pytest.StashKey[XdistHooks]()
recorder_key = pytest.StashKey[Recorder]()
reports_key = pytest.StashKey[SessionReports]()
snapshots_key = pytest.StashKey[InteractiveSnapshots]()
# The pool's key is `concurrency.pool_key`: items find the pool through it.
interactive_input_key = pytest.StashKey[IO[str]]()

# Each registered object's stash key and plugin name, in the order of registration.
_PLUGIN_KEYS: tuple[tuple[pytest.StashKey[Any], str], ...] = (
    (session_key, "delphyne-session"),
    (xdist_hooks_key, "delphyne-xdist"),
    (recorder_key, "delphyne-recorder"),
    (reports_key, "delphyne-report"),
    (snapshots_key, "delphyne-snapshots"),
    (pool_key, "delphyne-concurrency"),
)


@pytest.hookimpl
def pytest_addoption(parser: pytest.Parser) -> None:
    add_options(parser)


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
    _start_pool(config, is_worker=workerinput is not None)
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
    notices = TerminalNotices(config)
    config.stash[notices_key] = notices.show
    xdist: XdistHooks | None = None
    if config.pluginmanager.hasplugin("xdist"):
        xdist = _register(
            config,
            xdist_hooks_key,
            XdistHooks(
                config,
                session.plans,
                controller.setup_bytes,
                on_worker_collection=session.write_plan_lines,
                shipped_experiments=controller.shipped_experiments,
            ),
        )
        xdist.on_notice = notices.show
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


def configs_in_flight(config: pytest.Config) -> int:
    """How many configs each process keeps in flight: one under `--pdb` and
    `--delphyne-replay`, which run one config at a time."""
    if selection_options(config).replay:
        return 1
    return int(config.getoption("delphyne_concurrency") or 1)


def _start_pool(config: pytest.Config, *, is_worker: bool) -> None:
    concurrency = configs_in_flight(config)
    if concurrency == 1 or config.getoption("collectonly"):
        return
    if config.getoption("dist", "no") == "worksteal":
        raise pytest.UsageError(WORKSTEAL_MESSAGE.format(value=concurrency))
    if is_worker:
        _register(
            config, pool_key, ConfigPool(config, concurrency, worker_queue(config))
        )
        return
    recorder = config.stash.get(recorder_key, None)
    xdist = config.stash.get(xdist_hooks_key, None)
    if xdist is not None and recorder is not None:
        xdist.on_unfinished = recorder.mark_unfinished
        xdist.concurrency = concurrency
    _register(
        config,
        pool_key,
        ConfigPool(
            config,
            concurrency,
            SessionQueue().upcoming,
            on_unfinished=recorder.mark_unfinished if recorder is not None else None,
        ),
    )


@pytest.hookimpl
def pytest_unconfigure(config: pytest.Config) -> None:
    controller = config.stash.get(controller_key, None)
    if controller is not None:
        controller.close()
        del config.stash[controller_key]
    for key, _ in reversed(_PLUGIN_KEYS):
        plugin = config.stash.get(key, None)
        if plugin is not None:
            config.pluginmanager.unregister(plugin)
            del config.stash[key]
    source = config.stash.get(interactive_input_key, None)
    if source is not None:
        source.close()
        del config.stash[interactive_input_key]
