"""The experiment-file collector, one test item per config, and what each item does.

What an item does, and in which cache mode, follows from its config's status and the
command line: `selection.decide` (SPEC §5's table).
"""

from __future__ import annotations

import shutil
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pytest

from pytest_delphyne import layout
from pytest_delphyne.bindings import ExperimentBinding, bindings_key, worker_setup_key
from pytest_delphyne.concurrency import run_config
from pytest_delphyne.errors import EndpointError
from pytest_delphyne.experiment import Experiment
from pytest_delphyne.files import PlantedSymlinkError
from pytest_delphyne.ledger import LedgerWriter, ledger_file_path, new_attempt_id
from pytest_delphyne.memory import session_long_lived
from pytest_delphyne.notices import notices_key
from pytest_delphyne.plain_data import flatten_params
from pytest_delphyne.program_tracebacks import program_traceback
from pytest_delphyne.redaction import redact_exception
from pytest_delphyne.replays import replay
from pytest_delphyne.results import ResultFileError, read_result
from pytest_delphyne.runtime import RunOptions, execute
from pytest_delphyne.selection import Decision, decide
from pytest_delphyne.settings import RunSettings
from pytest_delphyne.shipping import ShippingError, load_experiment
from pytest_delphyne.tracebacks import without_plugin_frames
from pytest_delphyne.wire import (
    ENDPOINT_ERROR_PROPERTY,
    RESULT_PROPERTY,
    ResultPayload,
    encode_result,
)

if TYPE_CHECKING:
    from collections.abc import Iterable

    from _pytest._code.code import ExceptionInfo, TerminalRepr, TracebackStyle

    from pytest_delphyne.cache import CacheMode
    from pytest_delphyne.runtime import Run, RunRecord

DONE_REASON = "done"
STORED_FAILURE_MESSAGE = (
    "config {name} failed in an earlier run; it is not rerun. "
    "Use --lf to retry the failed configs.\n\nStored traceback ({path}):\n\n{text}"
)
REPLAY_MISMATCH_MESSAGE = (
    "replaying config {name} from its cache gave a different outcome than the "
    "recorded one:\n{differences}"
)
CACHE_GONE_MESSAGE = (
    "config {name} cannot be replayed: its cache {path} is gone (was its directory "
    "deleted?); replaying it would make its calls again"
)
REMOTE_REPLAY_MESSAGE = (
    "config {name} cannot be replayed on a worker that does not see the output "
    "directory {output_dir}; replay without --tx or with -n 0"
)

NOT_SHIPPED_MESSAGE = (
    "this worker's import of the experiment file has no Experiment named {attr!r}, "
    "and the controller sent none"
)


class StoredFailure(Exception):
    """A config that failed in an earlier run, reported without running it."""


class ReplayMismatch(Exception):
    """A replay whose outcome differs from the recorded one."""


class ExperimentModule(pytest.Module):
    """An experiment file: its configs are the items, not its functions."""

    def collect(self) -> Iterable[pytest.Item | pytest.Collector]:
        with session_long_lived():
            return list(self._config_items())

    def _config_items(self) -> Iterator[ConfigItem]:
        module = self.obj
        for binding in self.config.stash[bindings_key].get(self.path, []):
            experiment = binding.experiment or getattr(module, binding.attr, None)
            if not isinstance(experiment, Experiment):
                if binding.shipped is None:
                    raise ShippingError(NOT_SHIPPED_MESSAGE.format(attr=binding.attr))
                # Not at module level (built under `if __name__ == "__main__":` or in
                # a function): the controller sent it, and this import of the file
                # provides what the script's `__main__` defined.
                experiment = binding.experiment = load_experiment(
                    binding.shipped, module
                )
            # The command line's settings over the experiment's, once per experiment.
            settings = binding.settings.over(experiment.settings)
            caches_requests = bool(settings.cache_requests)
            for planned in binding.plan["configs"]:
                name = planned["name"]
                decision = decide(
                    planned["status"],
                    binding.options,
                    caches_requests=caches_requests,
                    interrupted=planned["interrupted"],
                )
                item_name = f"{binding.attr}[{name}]"
                # An explicit nodeid keeps `[name]` a parameter suffix, as pytest parses
                # the ids it stores in its last-failed cache.
                item = ConfigItem.from_parent(
                    self,
                    name=item_name,
                    nodeid=f"{self.nodeid}::{item_name}",
                    binding=binding,
                    experiment=experiment,
                    config_name=name,
                    params=planned["params"],
                    decision=decision,
                    settings=settings,
                )
                yield item


class ConfigItem(pytest.Item):
    """One configuration of an experiment, run (or skipped, replayed, reported) as a
    test.

    Its keywords hold `key:value` for each parameter, so `-k "model:gpt"` selects on
    parameter values whatever the config names are.
    """

    def __init__(
        self,
        *,
        binding: ExperimentBinding,
        experiment: Experiment[Any],
        config_name: str,
        params: dict[str, Any],
        decision: Decision,
        settings: RunSettings,
        **kwargs: Any,
    ) -> None:
        super().__init__(**kwargs)
        self.binding = binding
        self.experiment = experiment
        self.config_name = config_name
        self.params = params
        self.decision = decision
        self.action = decision.action
        # The experiment's settings with the command line's overrides; `None`
        # fields leave the `Run`'s own.
        self.settings = settings
        self.junit_properties: list[tuple[str, object]] = []
        if self.config.option.keyword:
            # Only `-k` reads them: 100,000 configs need not pay for them otherwise.
            self.extra_keyword_matches.update(
                f"{key}:{value}" for key, value in flatten_params(params).items()
            )

    def may_start_ahead(self) -> bool:
        """Whether this config's program may start before its turn
        (`--delphyne-concurrency`): a config to run whose `per_worker` succeeded (one
        whose setup failed fails in its turn, with the setup's error)."""
        if self.action != "run":
            return False
        try:
            self.config.stash[worker_setup_key](self.binding, self.experiment)
        except Exception:
            return False
        return True

    def runtest(self) -> None:
        # What junitxml writes for each config, whatever it does; it reads the
        # teardown's report, which carries them (see
        # `DelphyneSession.pytest_runtest_makereport`).
        self.junit_properties.extend(
            (f"param.{key}", value)
            for key, value in flatten_params(self.params).items()
        )
        if self.action in ("run", "replay"):
            self.config.stash[worker_setup_key](self.binding, self.experiment)
        if self.action == "skip":
            self._add_recorded_outcome()
            # Located at the config's item, not in this plugin, in the skip summary.
            raise pytest.skip.Exception(DONE_REASON, _use_item_location=True)
        if self.action == "report":
            raise StoredFailure(self._stored_failure_text())
        if self.action == "replay":
            self._replay()
            return
        self._run()

    def _config(self) -> Any:
        config = self.binding.configs.get(self.config_name)
        if config is None:
            config = self.experiment.codec.load(
                self.params, config_name=self.config_name
            )
        return config

    def _run_factory(self) -> Callable[[], Run]:
        experiment = self.experiment

        def instantiate() -> Run:
            run: Run = self._config().instantiate(experiment.configs_context)
            return run

        return instantiate

    def _run_options(
        self,
        directory: Path,
        *,
        cache_mode: CacheMode,
        write_files: bool,
        ledger: LedgerWriter | None = None,
    ) -> RunOptions:
        return RunOptions(
            config_name=self.config_name,
            directory=directory,
            cache_mode=cache_mode,
            params=self.params,
            settings=self.settings,
            write_files=write_files,
            ledger=ledger,
            on_notice=self.config.stash.get(notices_key, None),
        )

    def _ledger(self, directory: Path) -> LedgerWriter:
        """Where this attempt counts what it pays."""
        return LedgerWriter(
            ledger_file_path(directory),
            config=self.config_name,
            attempt=new_attempt_id(),
            session=self.binding.plan["session"],
        )

    def _caches_requests(self) -> bool:
        return bool(self.settings.cache_requests)

    def _run(self) -> None:
        binding = self.binding
        try:
            # Checks the spend cap; may have started this config ahead of its turn.
            record, directory = run_config(self)
        except KeyboardInterrupt as interrupt:
            # The config stays todo; pytest's report of the interruption shows where
            # the program was (its last frame), not this plugin.
            raise interrupt.with_traceback(
                without_plugin_frames(interrupt.__traceback__)
            ) from None
        except EndpointError as error:
            # Not the config's failure: skipped, it stays todo, and the controller
            # stops the session with this one line (`Recorder`).
            self.user_properties.append((ENDPOINT_ERROR_PROPERTY, str(error)))
            raise pytest.skip.Exception(str(error), _use_item_location=True) from None
        if not binding.shares_output_dir:
            # Its payments are in a ledger only the controller will read.
            binding.meter.add(record.paid.price or 0.0)
        files: dict[str, bytes] = {}
        if not binding.shares_output_dir:
            files = {
                path.name: path.read_bytes()
                for path in directory.iterdir()
                if path.is_file()
            }
            # The files travel in the report; the controller keeps them.
            shutil.rmtree(directory, ignore_errors=True)
        self._report_result(record, files=files)
        if record.exception is not None:
            raise record.exception

    def _report_result(self, record: RunRecord, *, files: dict[str, bytes]) -> None:
        spent = record.spent.as_dict()
        payload = ResultPayload(
            experiment=self.binding.plan["key"],
            config=self.config_name,
            action=self.action,
            status="failed" if record.failed else "done",
            start_time=record.start_time.isoformat(),
            end_time=record.end_time.isoformat(),
            success=record.success,
            spent=spent,
            paid=record.paid.as_dict(),
            files=files,
        )
        self.user_properties.append((RESULT_PROPERTY, encode_result(payload)))
        self._add_outcome_properties(record.success, spent)

    def _add_outcome_properties(
        self, success: bool | None, spent: dict[str, float]
    ) -> None:
        self.junit_properties.append(("success", success))
        self.junit_properties.extend(
            (f"spent.{key}", value) for key, value in spent.items()
        )

    def _add_recorded_outcome(self) -> None:
        # A done config's outcome is in its result file: read only for junitxml.
        if not self.config.getoption("xmlpath", None):
            return
        if not self.binding.shares_output_dir:
            return
        try:
            recorded = read_result(
                layout.config_dir(self.binding.output_dir, self.config_name)
            )
        except ResultFileError:
            return
        self._add_outcome_properties(recorded.success, recorded.spent.as_dict())

    def _replay(self) -> None:
        binding = self.binding
        if not binding.shares_output_dir:
            pytest.fail(
                REMOTE_REPLAY_MESSAGE.format(
                    name=self.config_name, output_dir=binding.output_dir
                ),
                pytrace=False,
            )
        directory = layout.config_dir(binding.output_dir, self.config_name)
        cache_path = directory / layout.CACHE_FILE
        has_cache = cache_path.exists()
        if (
            self._caches_requests()
            and not has_cache
            and not (directory / layout.EXCEPTION_FILE).exists()
        ):
            # Only a config that raised before its first call (in `instantiate`)
            # ran without a cache; any other must not pay for its calls again.
            pytest.fail(
                CACHE_GONE_MESSAGE.format(name=self.config_name, path=cache_path),
                pytrace=False,
            )
        # A replay writes no file of the config, but what it pays live (every call
        # without a cache, or a failed config's call that raised) is in the ledger.
        ledger = self._ledger(binding.output_dir)
        try:
            self._replay_from(directory, has_cache=has_cache, ledger=ledger)
        finally:
            ledger.close()

    def _replay_from(
        self, directory: Path, *, has_cache: bool, ledger: LedgerWriter
    ) -> None:
        if not self._caches_requests() or not has_cache:
            # Nothing recorded to replay from: run live, and write nothing.
            record = execute(
                self._run_factory(),
                self._run_options(
                    directory, cache_mode="off", write_files=False, ledger=ledger
                ),
            )
            self._add_outcome_properties(record.success, record.spent.as_dict())
            if record.exception is not None:
                raise record.exception
            return
        report = replay(self._run_factory(), directory, ledger=ledger)
        replayed = report.replayed
        self._add_outcome_properties(replayed.success, replayed.spent.as_dict())
        if report.replayed.exception is not None:
            raise report.replayed.exception
        if not report.matches:
            raise ReplayMismatch(
                REPLAY_MISMATCH_MESSAGE.format(
                    name=self.config_name, differences="\n".join(report.differences)
                )
            )

    def _stored_failure_text(self) -> str:
        path = layout.exception_file_path(self.binding.output_dir, self.config_name)
        text = self.binding.plan["stored_failures"].get(self.config_name, "")
        return STORED_FAILURE_MESSAGE.format(
            name=self.config_name, path=path, text=text.rstrip()
        )

    def repr_failure(
        self,
        excinfo: ExceptionInfo[BaseException],
        style: TracebackStyle | None = None,
    ) -> str | TerminalRepr:
        if isinstance(
            excinfo.value, StoredFailure | ReplayMismatch | PlantedSymlinkError
        ):
            return str(excinfo.value)
        excinfo.traceback = program_traceback(excinfo.traceback)
        # The message may quote a credential the program read or a server echoed.
        redact_exception(excinfo.value)
        return super().repr_failure(excinfo, style)

    def reportinfo(self) -> tuple[Path, int, str]:
        return self.path, 0, self.name
