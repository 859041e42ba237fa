"""The experiment's own command line, and the `pytest.main` call behind `resume()`.

An experiment file ending with `experiment.run_cli()` becomes a program:

    python exp.py run --max-workers 8 --retry-errors
    python exp.py status
    python exp.py replay --config NAME
    python exp.py clean-index
    python exp.py force-summary --add-timing
    python exp.py report --output report.html --group-by model

`run` and `Experiment.resume()` run configs the one way there is: through the pytest
plugin, in a `pytest.main` call. The other commands read the state and the config
files directly.
"""

from __future__ import annotations

import argparse
import contextlib
import os
import sys
import threading
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import IO, TYPE_CHECKING, Any, NoReturn

import pytest

from pytest_delphyne import layout
from pytest_delphyne.environment import LOG_LEVELS
from pytest_delphyne.errors import DelphyneError
from pytest_delphyne.files import atomic_write
from pytest_delphyne.lock import ExperimentLockedError
from pytest_delphyne.plan import ProvidedExperiment
from pytest_delphyne.recorder import Recorder
from pytest_delphyne.spending import describe_budget, total_spent

if TYPE_CHECKING:
    from collections.abc import Sequence

    from pytest_delphyne.experiment import Experiment

NOT_IN_A_FILE_MESSAGE = (
    "Experiment.resume() needs an experiment defined in a Python file; this one was "
    "created in an interactive session"
)
NOT_AT_MODULE_LEVEL_MESSAGE = (
    "{file} holds no module-level name for this experiment; assign it to one (for "
    "example `experiment = Experiment(...)`) so that pytest can collect it"
)
STATUS_MESSAGE = (
    "Experiment {name}({output_dir}):\n"
    "  - {todo} configurations to do\n"
    "  - {done} configurations done\n"
    "  - {failed} configurations failed\n"
    "  - spent: {spent}"
)
SNAPSHOT_MESSAGE = "delphyne: snapshot written to {path}"
UNNAMED_CONFIGS_MESSAGE = (
    "  - {count} more configurations listed by the code, not in the state yet: "
    "a run names them when it starts (the experiment is being run by {holder})"
)


@dataclass(frozen=True)
class RunRequest:
    """How to run an experiment's pending configs.

    Attributes:
        max_workers: Worker processes (xdist's `-n`); 1 runs in this process.
        retry_errors: Also rerun the failed configs (pytest's `--lf`).
        interactive: Pressing Enter prints elapsed times and writes a snapshot.
        quiet: Less progress output (`-q`).
        cache, log, raw_trace, browsable_trace, verbose_snapshots: Overrides of the
            experiment's settings; `None` keeps them.
        log_level: Override of the experiment's log level.
    """

    max_workers: int = 1
    retry_errors: bool = False
    interactive: bool = False
    quiet: bool = False
    cache: bool | None = None
    log: bool | None = None
    log_level: str | None = None
    raw_trace: bool | None = None
    browsable_trace: bool | None = None
    verbose_snapshots: bool | None = None


def locate_experiment(experiment: Experiment[Any]) -> tuple[Path, str]:
    """The file defining `experiment`, and the module-level name that holds it."""
    file = experiment.defined_in
    if file is None:
        raise DelphyneError(NOT_IN_A_FILE_MESSAGE)
    file = file.resolve()
    for module in list(sys.modules.values()):
        module_file = getattr(module, "__file__", None)
        if module_file is None or Path(module_file).resolve() != file:
            continue
        for name, value in vars(module).items():
            if value is experiment:
                return file, name
    raise DelphyneError(NOT_AT_MODULE_LEVEL_MESSAGE.format(file=file))


def pytest_arguments(
    file: Path, attr: str, output_dir: Path, request: RunRequest
) -> list[str]:
    """The pytest command line that runs the experiment as `request` asks."""
    arguments = [
        f"--delphyne-exp={file}::{attr}",
        # The file as the positional path: collect it alone, whatever `testpaths` the
        # surrounding project configures.
        str(file),
        f"--rootdir={file.parent}",
        # pytest's own cache belongs with the experiment, not in the working directory.
        "-o",
        f"cache_dir={output_dir / '.pytest_cache'}",
    ]
    if request.max_workers > 1:
        arguments += ["-n", str(request.max_workers)]
    if request.retry_errors:
        arguments.append("--lf")
    if request.quiet:
        arguments.append("-q")
    for name, value in (
        ("cache", request.cache),
        ("log", request.log),
        ("raw-trace", request.raw_trace),
        ("browsable-trace", request.browsable_trace),
        ("verbose-snapshots", request.verbose_snapshots),
    ):
        if value is not None:
            arguments.append(f"--delphyne-{name}" if value else f"--delphyne-no-{name}")
    if request.log_level is not None:
        arguments.append(f"--delphyne-log-level={request.log_level}")
    return arguments


def run_experiment(experiment: Experiment[Any], request: RunRequest) -> int:
    """Run the experiment's pending configs through the pytest plugin.

    Returns:
        pytest's exit code.
    """
    file, attr = locate_experiment(experiment)
    plugins: list[object] = [ProvidedExperiment(file, attr, experiment)]
    if request.interactive:
        plugins.append(InteractiveSnapshots(experiment))
    arguments = pytest_arguments(file, attr, experiment.absolute_output_dir, request)
    return int(pytest.main(arguments, plugins=plugins))


class InteractiveSnapshots:
    """Pressing Enter prints each running config's elapsed time and writes a snapshot
    of the running configs under `<output_dir>/snapshots/<timestamp>/`.

    The standard input is duplicated when this plugin is created, before pytest's
    capture replaces it, and read by a daemon thread for the whole session.
    """

    def __init__(self, experiment: Experiment[Any]):
        self.experiment = experiment
        self.config: pytest.Config | None = None
        self._input: IO[str] | None = None
        if sys.stdin is not None and not sys.stdin.closed:
            self._input = os.fdopen(os.dup(sys.stdin.fileno()), "r")

    @pytest.hookimpl
    def pytest_configure(self, config: pytest.Config) -> None:
        self.config = config
        if self._input is not None:
            threading.Thread(target=self._listen, daemon=True).start()

    def _listen(self) -> None:
        assert self._input is not None
        for _ in self._input:
            self.snapshot()

    def running(self) -> dict[str, datetime]:
        """The configs running now, with their start times."""
        assert self.config is not None
        recorder = self.config.pluginmanager.get_plugin("delphyne-recorder")
        if not isinstance(recorder, Recorder):
            return {}
        return {
            name: start
            for exp in recorder.experiments.values()
            for name, start in list(exp.running.items())
        }

    def snapshot(self) -> Path:
        """Print the running configs' elapsed times and write a snapshot."""
        assert self.config is not None
        now = datetime.now(UTC)
        running = sorted(self.running().items(), key=lambda item: item[1])
        lines = [
            f"{name}: running for {(now - start).total_seconds():.1f} s"
            for name, start in running
        ] or ["no config is running"]
        self._print(["", *(f"delphyne: {line}" for line in lines)])
        # The command line wins over the experiment's own setting.
        chosen = self.config.getoption("delphyne_verbose_snapshots", None)
        verbose = bool(self.experiment.verbose_snapshots if chosen is None else chosen)
        directory = (
            self.experiment.absolute_output_dir
            / layout.SNAPSHOTS_DIR
            / now.strftime("%Y-%m-%dT%H-%M-%S-%f")
        )
        directory.mkdir(parents=True, exist_ok=True)
        status = self.experiment.get_status()
        index = [
            f"# Snapshot of {self.experiment.name or 'the experiment'} at "
            f"{now.isoformat()}",
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
            log = self.experiment.config_dir(name) / layout.LOG_FILE
            if verbose and log.exists():
                tail = log.read_text(errors="replace").splitlines()[-20:]
                details += ["", "## Recent log", "", "```", *tail, "```"]
            text = "\n".join(details) + "\n"
            atomic_write(directory / f"{name}.md", text, durable=False)
        self._print([SNAPSHOT_MESSAGE.format(path=directory)])
        return directory

    def _print(self, lines: list[str]) -> None:
        assert self.config is not None
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


class _ArgumentParser(argparse.ArgumentParser):
    # A bad command line is one line on stderr, not a usage dump.
    def error(self, message: str) -> NoReturn:
        self.exit(2, f"{self.prog}: error: {message}\n")


_TRUE_WORDS = frozenset({"true", "yes", "on", "1"})
_FALSE_WORDS = frozenset({"false", "no", "off", "0"})


class _Toggle(argparse.Action):
    """`--flag` or `--flag=VALUE` (true/false, yes/no, on/off, 1/0), as the
    reference's command line (Python Fire) took them."""

    def __call__(
        self,
        parser: argparse.ArgumentParser,
        namespace: argparse.Namespace,
        values: Any,
        option_string: str | None = None,
    ) -> None:
        word = "true" if values is None else str(values).lower()
        if word not in _TRUE_WORDS | _FALSE_WORDS:
            parser.error(f"{option_string}: expected true or false, got {values!r}")
        setattr(namespace, self.dest, word in _TRUE_WORDS)


def _flag(parser: argparse.ArgumentParser, name: str, help: str) -> None:
    """An on/off flag: `--name[=BOOL]`, off with `--no-name`, `--noname` (Fire's
    spelling) or `--no_name`; underscores for dashes too."""
    names = sorted({name, name.replace("-", "_")})
    dest = names[-1]
    parser.add_argument(
        *(f"--{spelling}" for spelling in names),
        action=_Toggle,
        nargs="?",
        dest=dest,
        default=None,
        metavar="BOOL",
        help=f"{help} (off: --no-{name})",
    )
    parser.add_argument(
        *(
            f"--{prefix}{spelling}"
            for spelling in names
            for prefix in ("no-", "no_", "no")
        ),
        action="store_const",
        const=False,
        dest=dest,
        help=argparse.SUPPRESS,
    )


class ExperimentCLI:
    """A command-line application that controls an experiment from the shell.

    Commands: `run` (the default), `status`, `replay`, `clean-index`,
    `force-summary`, `report`; the reference's underscore spellings of flags are
    accepted.
    """

    def __init__(self, experiment: Experiment[Any]):
        self.experiment = experiment

    def parser(self, prog: str | None = None) -> argparse.ArgumentParser:
        parser = _ArgumentParser(
            prog=prog, description="Control the experiment from the shell."
        )
        commands = parser.add_subparsers(
            dest="command", parser_class=_ArgumentParser, metavar="COMMAND"
        )
        run = commands.add_parser("run", help="Start or resume the experiment.")
        run.add_argument(
            "--max-workers",
            "--max_workers",
            type=int,
            default=1,
            metavar="N",
            help="Parallel worker processes (default: 1, this process)",
        )
        run.add_argument(
            "--retry-errors",
            "--retry_errors",
            action="store_true",
            help="Rerun the failed configurations too",
        )
        run.add_argument(
            "--interactive",
            action="store_true",
            help="Pressing Enter prints elapsed times and writes a snapshot",
        )
        _flag(run, "log", "Write each configuration's log.txt")
        run.add_argument(
            "--log-level",
            "--log_level",
            choices=LOG_LEVELS,
            default=None,
            help="Lowest level of the log messages kept",
        )
        _flag(run, "cache", "Record and replay LLM requests and computations")
        _flag(run, "raw-trace", "Write each configuration's trace.yaml")
        _flag(run, "browsable-trace", "Write each configuration's trace.html")
        _flag(run, "verbose-snapshots", "Put recent log lines in snapshots")
        commands.add_parser("status", help="Print the status of the experiment.")
        replay = commands.add_parser(
            "replay", help="Replay one or all configurations from their caches."
        )
        replay.add_argument(
            "--config",
            metavar="NAME",
            help="The configuration to replay (default: all)",
        )
        commands.add_parser(
            "clean-index",
            aliases=["clean_index"],
            help="Remove from the state the configurations the code no longer lists.",
        )
        summary = commands.add_parser(
            "force-summary",
            aliases=["force_summary"],
            help="Write the summary even if not every configuration is done.",
        )
        summary.add_argument(
            "--add-timing",
            "--add_timing",
            action="store_true",
            help="Add each configuration's duration",
        )
        report = commands.add_parser(
            "report",
            help="Write the experiment's HTML report (it works while it runs too).",
        )
        report.add_argument(
            "--output",
            "-o",
            metavar="PATH",
            default=None,
            help="Where to write it (default: report.html in the output directory)",
        )
        report.add_argument(
            "--group-by",
            "--group_by",
            metavar="NAMES",
            default=None,
            help="Hyperparameters, comma-separated, whose values each get their own "
            "scaling curve",
        )
        return parser

    def main(self, argv: Sequence[str] | None = None) -> int:
        """Run one command; return the process's exit code."""
        prog = Path(sys.argv[0]).name if sys.argv and sys.argv[0] else None
        arguments = self.parser(prog).parse_args(argv)
        command = arguments.command or "run"
        try:
            if command == "run":
                return self.run(arguments)
            if command == "status":
                return self.status()
            if command == "replay":
                return self.replay(arguments.config)
            if command in ("clean-index", "clean_index"):
                return self.clean_index()
            if command == "report":
                return self.report(arguments.output, arguments.group_by)
            return self.force_summary(add_timing=arguments.add_timing)
        except DelphyneError as error:
            print(f"{prog or 'experiment'}: error: {error}", file=sys.stderr)
            return 2

    def run(self, arguments: argparse.Namespace) -> int:
        """Start or resume the experiment."""
        request = RunRequest(
            max_workers=getattr(arguments, "max_workers", 1),
            retry_errors=getattr(arguments, "retry_errors", False),
            interactive=getattr(arguments, "interactive", False),
            cache=getattr(arguments, "cache", None),
            log=getattr(arguments, "log", None),
            log_level=getattr(arguments, "log_level", None),
            raw_trace=getattr(arguments, "raw_trace", None),
            browsable_trace=getattr(arguments, "browsable_trace", None),
            verbose_snapshots=getattr(arguments, "verbose_snapshots", None),
        )
        return run_experiment(self.experiment, request)

    def status(self) -> int:
        """Print the status counts and what the done configurations spent."""
        experiment = self.experiment
        try:
            experiment.load()
            unnamed = 0
        except ExperimentLockedError as locked:
            # The code lists configs the state lacks, and a run holds the lock:
            # reading needs no lock, so say what the state holds, and how many more
            # the next run will name.
            _, unnamed = experiment.names_in_state()
            if not unnamed:
                raise
            holder = locked.holder.describe() if locked.holder else "another process"
        counts = experiment.get_status()
        print(
            STATUS_MESSAGE.format(
                name=f"{experiment.name!r} " if experiment.name else "",
                output_dir=experiment.absolute_output_dir,
                spent=describe_budget(total_spent(experiment)),
                **counts,
            )
        )
        if unnamed:
            print(UNNAMED_CONFIGS_MESSAGE.format(count=unnamed, holder=holder))
        return 0

    def replay(self, config: str | None) -> int:
        """Replay one or every configuration; exit 1 if any outcome differs."""
        experiment = self.experiment.load()
        if config is None:
            reports = experiment.replay_all_configs()
        else:
            reports = {config: experiment.replay_config_by_name(config)}
        for name, report in reports.items():
            if report.matches:
                print(f"{name}: replayed, same outcome as recorded")
            else:
                print(f"{name}: DIFFERENT outcome: " + "; ".join(report.differences))
        return 0 if all(report.matches for report in reports.values()) else 1

    def clean_index(self) -> int:
        """Remove from the state the configurations the code no longer lists."""
        experiment = self.experiment.load()
        before = len(experiment.load_state().configs)
        experiment.clean_index()
        removed = before - len(experiment.load_state().configs)
        print(f"Removed {removed} configuration(s) from the state.")
        return 0

    def force_summary(self, *, add_timing: bool) -> int:
        """Write the summary of the done configurations."""
        experiment = self.experiment.load()
        experiment.save_summary(ignore_missing=True, add_timing=add_timing)
        print(f"Summary written to {experiment.summary_file_path}")
        return 0

    def report(self, output: str | None, group_by: str | None) -> int:
        """Write the HTML report of what the state records so far."""
        path = self.experiment.report(output, group_by=group_by)
        print(f"Report written to {path}")
        return 0
