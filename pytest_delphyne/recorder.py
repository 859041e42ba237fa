"""The controller's recorder: the only writer of an experiment's state.

Each config's report reaches the controller (from this process, or from an xdist worker)
carrying a `ResultPayload` in its `user_properties`. The recorder has the files a
worker shipped written (`shipped_files`), then records the config's new status in the
state's journal: one O(1) append per config, durable the moment it is written, and
settles what it paid (`session_ledger`). At session end it folds the journal into
`experiment.yaml`, marks configs that were running when the session stopped as
interrupted, writes the summary when every config is done, and reports what was spent.
Which config a report is about: `recorded_experiments`.
"""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any, TypeVar

import pytest

from pytest_delphyne import layout
from pytest_delphyne.errors import DelphyneError
from pytest_delphyne.files import PlantedSymlinkError
from pytest_delphyne.interrupts import SigintGuard, sigint_deferred
from pytest_delphyne.ledger import LedgerReader
from pytest_delphyne.lock import LockLostError
from pytest_delphyne.progress import CostProgress, progress_line, write_progress_line
from pytest_delphyne.recorded_experiments import ConfigsToRecord, parse_time
from pytest_delphyne.recorded_experiments import (
    RecordedExperiment as RecordedExperiment,  # the controller makes them
)
from pytest_delphyne.selection import SelectionOptions
from pytest_delphyne.session_ledger import SessionLedger
from pytest_delphyne.shipped_files import write_no_report_file, write_shipped_files
from pytest_delphyne.spending import summary_totals, total_spent
from pytest_delphyne.state import Status
from pytest_delphyne.state_store import StateEditedError
from pytest_delphyne.summary import KnownResult, save_summary
from pytest_delphyne.wire import (
    ENDPOINT_ERROR_PROPERTY,
    RESULT_PROPERTY,
    ResultPayload,
    decode_result,
)
from pytest_delphyne.wording import shown_path

if TYPE_CHECKING:
    from collections.abc import Callable, Generator

    from pytest_delphyne.concurrency import UnfinishedConfig
    from pytest_delphyne.workers import XdistHooks

T = TypeVar("T")

STATE_SAVED_MESSAGE = (
    "delphyne: the session stopped before every config ran; state saved to {path}"
)
STORAGE_ERROR_MESSAGE = (
    "delphyne: cannot write to the output directory {output_dir} ({error}); the "
    "session stopped. Every result recorded before is kept in {state_file} and its "
    "journal; make room, then run again with --lf to resume and retry the configs "
    "that failed for want of room"
)
NO_SUMMARY_MESSAGE = "delphyne: no summary written: {error}"


def _storage_error(exp: RecordedExperiment, error: OSError) -> str:
    output_dir = exp.experiment.absolute_output_dir
    return STORAGE_ERROR_MESSAGE.format(
        output_dir=output_dir,
        error=error,
        state_file=layout.state_file_path(output_dir),
    )


class Recorder:
    """Records each config's result as its report arrives; registered on the
    controller only (the process that is not an xdist worker)."""

    def __init__(
        self,
        config: pytest.Config,
        experiments: list[RecordedExperiment],
        options: SelectionOptions,
        xdist: XdistHooks | None = None,
        *,
        session_id: str = "",
    ):
        self.config = config
        self.session_id = session_id
        self.ledger = SessionLedger(session_id)
        self.xdist = xdist
        self.experiments = {exp.key: exp for exp in experiments}
        self.to_record = ConfigsToRecord(experiments, options, config.rootpath)
        self.progress = CostProgress(
            interval=config.getoption("delphyne_progress_interval", 30.0)
        )
        self._finished = 0
        self._shown = 0
        self.interrupted = False
        self.storage_error: str | None = None
        self.sigint = SigintGuard(on_stop_after_saving=self._say_saved)

    @pytest.hookimpl
    def pytest_runtest_logstart(self, nodeid: str) -> None:
        found = self.to_record.config_of(nodeid)
        if found is not None:
            exp, name = found
            exp.running[name] = datetime.now(UTC)

    # tryfirst: the payload must leave `user_properties` before junitxml writes them
    # as properties.
    @pytest.hookimpl(tryfirst=True)
    def pytest_runtest_logreport(self, report: pytest.TestReport) -> None:
        if report.when == "call":
            self._stop_at_endpoint_error(report)
        payload = self._pop_payload(report)
        if payload is not None:
            # Every report of an item carries its properties; the call's is the one.
            if report.when == "call":
                self._storing(self._record_payload, payload)
            return
        if report.failed and report.when != "teardown":
            self._storing(self._record_failure_without_payload, report)
        elif report.when == "teardown":
            found = self.to_record.config_of(report.nodeid)
            if found is not None:
                found[0].running.pop(found[1], None)

    def _stop_at_endpoint_error(self, report: pytest.TestReport) -> None:
        for name, value in report.user_properties:
            if name == ENDPOINT_ERROR_PROPERTY:
                self._stop(f"delphyne: {value}")
                return

    @staticmethod
    def _pop_payload(report: pytest.TestReport) -> ResultPayload | None:
        payload: ResultPayload | None = None
        kept: list[tuple[str, object]] = []
        for name, value in report.user_properties:
            if name == RESULT_PROPERTY:
                payload = decode_result(value)
            else:
                kept.append((name, value))
        if payload is not None:
            report.user_properties = kept
        return payload

    def _record_payload(self, payload: ResultPayload) -> None:
        exp = self.experiments.get(payload["experiment"])
        if exp is None:
            return
        name = payload["config"]
        shipped = payload["files"]
        self.ledger.receive_shipped(exp.output_dir, shipped)
        status: Status = write_shipped_files(
            layout.config_dir(exp.output_dir, name),
            name,
            shipped,
            "failed" if payload["status"] == "failed" else "done",
        )
        start, end = parse_time(payload["start_time"]), parse_time(payload["end_time"])
        exp.experiment.store.record(exp.update(name, status, start, end))
        if status == "done" and payload["success"] is not None:
            exp.results[name] = KnownResult(payload["success"], payload["spent"])
        exp.running.pop(name, None)
        self._ledger_reader(exp).settle(name)
        self._check_spend_cap()
        self._finished += 1

    # After the terminal's own letter for the config: the line does not split it.
    @pytest.hookimpl
    def pytest_runtest_logfinish(self) -> None:
        if self._finished == self._shown:
            return
        if self.config.get_verbosity() < 0 or not self.progress.due():
            return
        self._shown = self._finished
        terminal = self.config.pluginmanager.get_plugin("terminalreporter")
        if terminal is not None:
            spent = self.session_spent()
            line = progress_line(self._finished, self.to_record.count, spent)
            write_progress_line(terminal, line)

    def mark_unfinished(self, unfinished: list[UnfinishedConfig]) -> None:
        """Configs whose programs started ahead of their items and were not
        reported: the session stopped while they were in flight."""
        for entry in unfinished:
            exp = self.experiments.get(entry["experiment"])
            if exp is not None:
                exp.running.setdefault(
                    entry["config"], datetime.fromisoformat(entry["start_time"])
                )

    def _record_failure_without_payload(self, report: pytest.TestReport) -> None:
        found = self.to_record.config_of(report.nodeid)
        if found is None:
            return
        exp, name = found
        reason = (
            "its xdist worker crashed"
            if report.when not in ("setup", "call")
            else f"an error during {report.when}"
        )
        write_no_report_file(
            exp.experiment.config_dir(name), name, reason, report.longreprtext
        )
        start = exp.running.pop(name, None)
        self._ledger_reader(exp).settle(name)
        end = datetime.now(UTC)
        exp.experiment.store.record(exp.update(name, "failed", start, end))

    def _storing(self, record: Callable[[T], None], argument: T) -> None:
        # A full disk (or any failing write) is no bug of the session: stop it with
        # a clear message, keeping what is on disk loadable, rather than crash.
        if self.storage_error is not None:
            return
        try:
            record(argument)
        except PlantedSymlinkError as error:
            self.storage_error = f"delphyne: {error}"
            self._stop(self.storage_error)
        except OSError as error:
            exp = next(iter(self.experiments.values()))
            for candidate in self.experiments.values():
                if str(candidate.experiment.absolute_output_dir) in str(error.filename):
                    exp = candidate
            self.storage_error = _storage_error(exp, error)
            self._stop(self.storage_error)

    def _check_spend_cap(self) -> None:
        cap: float | None = self.config.getoption("delphyne_max_price")
        if cap is None:
            return
        if self.session_price_paid() < cap:
            return
        self._stop(f"delphyne: session spend cap of {cap} reached")

    def _stop(self, reason: str) -> None:
        if self.xdist is not None:
            self.xdist.stop(reason)
        session: pytest.Session | None = getattr(self, "session", None)
        if session is not None:
            session.shouldstop = reason

    def _ledger_reader(self, exp: RecordedExperiment) -> LedgerReader:
        return self.ledger.reader(exp.key, exp.output_dir)

    def session_spent(self) -> dict[str, float]:
        """What this session paid for the configs it recorded, by budget field, as
        the experiments' ledgers say (a config in flight counts once it ends)."""
        return self.ledger.paid(
            (exp.key, exp.output_dir) for exp in self.experiments.values()
        )

    def session_price_paid(self) -> float:
        """What this session paid, in price, as the experiments' ledgers say."""
        return self.session_spent().get("price", 0.0)

    @pytest.hookimpl
    def pytest_sessionstart(self, session: pytest.Session) -> None:
        self.session = session
        self.sigint.install()

    def _say_saved(self) -> None:
        terminalreporter = self.config.pluginmanager.get_plugin("terminalreporter")
        if terminalreporter is not None:
            for exp in self.experiments.values():
                message = self._saved_message(exp)
                if message is not None:
                    terminalreporter.write_line(message)

    def _saved_message(self, exp: RecordedExperiment) -> str | None:
        # Only a session that could run configs has a state to speak of; one that
        # only replays (`--pdb` quit with `q`) wrote nothing.
        if not (self.interrupted and self.to_record.count):
            return None
        return STATE_SAVED_MESSAGE.format(
            path=self._display(
                layout.state_file_path(exp.experiment.absolute_output_dir)
            )
        )

    def _display(self, path: Path) -> str:
        return shown_path(path, self.config.invocation_params.dir)

    @pytest.hookimpl
    def pytest_unconfigure(self) -> None:
        self.sigint.restore()

    @pytest.hookimpl
    def pytest_keyboard_interrupt(self) -> None:
        self.interrupted = True
        self.sigint.stopping = True

    @pytest.hookimpl(wrapper=True, specname="pytest_sessionfinish")
    def pytest_sessionfinish_around_the_others(self) -> Generator[None]:
        # Around every plugin's sessionfinish. A Ctrl-C from here on waits for the
        # state to be saved: one in xdist's wait for its workers, or in junitxml's
        # write, would stop pytest before this recorder saves. And before junitxml
        # writes its file: the events still queued count in every report.
        self.sigint.stopping = True
        with sigint_deferred():
            self._catch_up_with_workers()
        return (yield)

    @pytest.hookimpl
    def pytest_sessionfinish(self, session: pytest.Session) -> None:
        if session.shouldfail or session.shouldstop:
            # -x, --maxfail or the spend cap, without xdist (with xdist they arrive
            # as an interruption).
            self.interrupted = True
        if self.storage_error is not None:
            self.interrupted = True
        with sigint_deferred():
            self._catch_up_with_workers()
            for exp in self.experiments.values():
                self._save(exp)
            self.sigint.saved = True
        if self.sigint.held:
            self.sigint.restore()
            self._say_saved()
            raise KeyboardInterrupt

    def _catch_up_with_workers(self) -> None:
        # What xdist's workers sent that its stopped controller loop left unread.
        if self.xdist is not None:
            self.xdist.deliver_queued_events()

    def _save(self, exp: RecordedExperiment) -> None:
        now = datetime.now(UTC)
        try:
            for name, start in exp.running.items():
                update = exp.update(name, "todo", start, interrupted=now)
                exp.experiment.store.record(update)
                self.interrupted = True
            exp.running.clear()
            if exp.lock is not None:
                # Still the directory this run locked: else another run may own it.
                exp.lock.check()
            exp.experiment.store.fold()
            experiment = exp.experiment
            output_dir = experiment.absolute_output_dir
            # A session that changed no state leaves the summary as it is (one the
            # reference launcher wrote with its timing column, say).
            if experiment.is_done() and (
                experiment.store.written
                or not layout.summary_file_path(output_dir).exists()
            ):
                exp.summary_path = save_summary(
                    experiment.absolute_output_dir,
                    experiment.load_state(),
                    experiment.codec,
                    known=exp.results,
                )
        except OSError as error:
            # The journal stays beside the YAML: the next load applies it.
            exp.problems.append(_storage_error(exp, error))
        except (StateEditedError, LockLostError) as error:
            # A person's edit wins: the journal keeps every result of this run.
            exp.problems.append(f"delphyne: {error}")
        except DelphyneError as error:
            # A done config whose result file is gone, say: no summary without it.
            exp.problems.append(NO_SUMMARY_MESSAGE.format(error=error))

    @staticmethod
    def _recorded_total(exp: RecordedExperiment) -> dict[str, float]:
        # The summary just read every result file: sum it rather than read them again.
        if exp.summary_path is not None:
            return summary_totals(exp.summary_path)
        return total_spent(exp.experiment)

    @pytest.hookimpl
    def pytest_terminal_summary(self, terminalreporter: Any) -> None:
        write = terminalreporter.write_line
        terminalreporter.section("delphyne")
        for exp in self.experiments.values():
            status = exp.experiment.get_status()
            write(
                f"{exp.attr} ({self._display(exp.experiment.absolute_output_dir)}): "
                f"{status['done']} done, {status['failed']} failed, "
                f"{status['todo']} todo"
            )
            for line in self.ledger.totals_lines(
                exp.experiment.absolute_output_dir, self._recorded_total(exp)
            ):
                write(line)
            if exp.summary_path is not None:
                write(f"  summary: {self._display(exp.summary_path)}")
            for problem in exp.problems:
                write(problem, red=True)
            if self.storage_error is not None and not exp.problems:
                write(self.storage_error, red=True)
            message = self._saved_message(exp)
            if message is not None:
                write(message)
        self.sigint.restore()
