"""Interactive snapshots of a running session (`--delphyne-interactive`, the CLI's
`run --interactive`).

Pressing Enter prints each running config's elapsed time and writes a snapshot of the
running configs under `<output_dir>/snapshots/<timestamp>/`: an `index.md`, and one
page per running config (with its recent log when `verbose_snapshots` is on).

The standard input is duplicated by the plugin before pytest's capture replaces it
(`pytest_load_initial_conftests`), and read here by a daemon thread for the whole
session. Registered on the controller only: it reads what the recorder knows.
"""

from __future__ import annotations

import contextlib
import threading
from datetime import UTC, datetime
from typing import IO, TYPE_CHECKING

import pytest

from pytest_delphyne import layout
from pytest_delphyne.files import atomic_write
from pytest_delphyne.settings import DEFAULT_SETTINGS, RunSettings

if TYPE_CHECKING:
    from pathlib import Path

    from pytest_delphyne.recorder import RecordedExperiment, Recorder

SNAPSHOT_MESSAGE = "delphyne: snapshot written to {path}"
_LOG_TAIL_LINES = 20


class InteractiveSnapshots:
    """Writes a snapshot each time a line arrives on `source` (Enter)."""

    def __init__(
        self,
        config: pytest.Config,
        recorder: Recorder,
        source: IO[str],
        settings: RunSettings,
    ):
        self.config = config
        self.recorder = recorder
        self.source = source
        self.settings = settings

    @pytest.hookimpl
    def pytest_sessionstart(self) -> None:
        threading.Thread(target=self._listen, daemon=True).start()

    def _listen(self) -> None:
        for _ in self.source:
            self.snapshot()

    def snapshot(self) -> list[Path]:
        """Print the running configs' elapsed times and write a snapshot of each
        experiment; return the snapshots' directories."""
        now = datetime.now(UTC)
        experiments = list(self.recorder.experiments.values())
        running = [
            (exp, sorted(list(exp.running.items()), key=lambda item: item[1]))
            for exp in experiments
        ]
        lines = [
            f"{name}: running for {(now - start).total_seconds():.1f} s"
            for _, configs in running
            for name, start in configs
        ] or ["no config is running"]
        self._print(["", *(f"delphyne: {line}" for line in lines)])
        directories = [self._write(exp, configs, now) for exp, configs in running]
        self._print([SNAPSHOT_MESSAGE.format(path=path) for path in directories])
        return directories

    def _write(
        self,
        exp: RecordedExperiment,
        running: list[tuple[str, datetime]],
        now: datetime,
    ) -> Path:
        experiment = exp.experiment
        settings = self.settings.over(experiment.settings).over(DEFAULT_SETTINGS)
        directory = (
            experiment.absolute_output_dir
            / layout.SNAPSHOTS_DIR
            / now.strftime("%Y-%m-%dT%H-%M-%S-%f")
        )
        directory.mkdir(parents=True, exist_ok=True)
        status = experiment.get_status()
        index = [
            f"# Snapshot of {experiment.name or 'the experiment'} at {now.isoformat()}",
            "",
            f"{status['done']} done, {status['failed']} failed, "
            f"{status['todo']} todo; {len(running)} running.",
            "",
            "| config | started | elapsed (s) |",
            "|---|---|---|",
            *(
                f"| [{name}]({name}.md) | {start.isoformat()} | "
                f"{(now - start).total_seconds():.1f} |"
                for name, start in running
            ),
        ]
        atomic_write(directory / "index.md", "\n".join(index) + "\n", durable=False)
        for name, start in running:
            details = [
                f"# {name}",
                "",
                f"- status: running since {start.isoformat()}",
                f"- elapsed: {(now - start).total_seconds():.1f} s",
            ]
            log = experiment.config_dir(name) / layout.LOG_FILE
            if settings.verbose_snapshots and log.exists():
                tail = log.read_text(errors="replace").splitlines()[-_LOG_TAIL_LINES:]
                details += ["", "## Recent log", "", "```", *tail, "```"]
            text = "\n".join(details) + "\n"
            atomic_write(directory / f"{name}.md", text, durable=False)
        return directory

    def _print(self, lines: list[str]) -> None:
        writer = self.config.get_terminal_writer()
        capture = self.config.pluginmanager.get_plugin("capturemanager")
        # While a config runs, pytest captures the terminal's file descriptor: step
        # out of the capture to write, as pytest's live logging does.
        suspended = (
            capture.global_and_fixture_disabled()
            if capture is not None
            else contextlib.nullcontext()
        )
        with suspended:
            for line in lines:
                writer.line(line)
            writer.flush()
