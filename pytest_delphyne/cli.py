"""The experiment's own command line (`experiment.run_cli()`).

An experiment file ending with `experiment.run_cli()` becomes a program:

    python exp.py run --max-workers 8 --retry-errors
    python exp.py run --max-workers 2 --concurrency 32
    python exp.py status
    python exp.py replay --config NAME     # or: replay NAME
    python exp.py clean-index
    python exp.py force-summary --add-timing
    python exp.py report --output report.html --group-by model

`run` goes through the launcher (`launcher.py`), as `Experiment.resume()` does: configs
run one way, through the pytest plugin. The other commands are `Experiment` methods
that read the state and the config files directly; `COMMANDS` maps each command to
its method. The parser, in argparse's and python-fire's spellings: `cli_grammar`.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any

from pytest_delphyne.cli_grammar import build_parser, parse_command_line
from pytest_delphyne.errors import DelphyneError
from pytest_delphyne.launcher import RunRequest, run_experiment
from pytest_delphyne.ledger import read_payments, total_paid
from pytest_delphyne.lock import read_lock_holder
from pytest_delphyne.recovery import (
    RECOVERABLE_MESSAGE,
    describe_set_aside,
    recover_results,
)
from pytest_delphyne.settings import RunSettings
from pytest_delphyne.spending import describe_budget, total_spent
from pytest_delphyne.wording import plural, shown_path

if TYPE_CHECKING:
    from collections.abc import Sequence

    from pytest_delphyne.experiment import Experiment

STATUS_MESSAGE = (
    "Experiment {name}({output_dir}):\n"
    "  - {todo} to do\n"
    "  - {done} done\n"
    "  - {failed} failed\n"
    "  - paid in total: {paid}\n"
    "  - recorded in total: {spent}"
)
NEXT_RUN_NAMES_MESSAGE = (
    "  - {count} listed by the code, not in the state yet: the next run names them"
)
UNNAMED_CONFIGS_MESSAGE = (
    "  - {count} listed by the code, not in the state yet: "
    "a run names them when it starts (the experiment is being run by {holder})"
)


class ExperimentCLI:
    """A command-line application that controls an experiment from the shell.

    Commands: `run`, `status`, `replay`, `clean-index`, `force-summary`, `report`;
    without one, it lists them. The reference's spellings (python-fire's) are
    accepted too: see `parse_command_line`.
    """

    def __init__(self, experiment: Experiment[Any]):
        self.experiment = experiment

    def parser(self, prog: str | None = None) -> argparse.ArgumentParser:
        """The command line's parser (it does not look at the experiment)."""
        return build_parser(prog)

    def main(self, argv: Sequence[str] | None = None) -> int:
        """Run one command; return the process's exit code."""
        prog = Path(sys.argv[0]).name if sys.argv and sys.argv[0] else None
        arguments = parse_command_line(sys.argv[1:] if argv is None else argv, prog)
        if arguments.command is None:
            # As the reference (python-fire) does: list the commands, run nothing.
            build_parser(prog).print_help()
            return 0
        # argparse accepts only the commands of the table: none reaches another method.
        command = COMMANDS[arguments.command]
        try:
            return command(self, arguments)
        except DelphyneError as error:
            print(f"{prog or 'experiment'}: error: {error}", file=sys.stderr)
            return 2

    def run(self, arguments: argparse.Namespace) -> int:
        """Start or resume the experiment."""
        settings = RunSettings(
            cache_requests=arguments.cache,
            log_level=arguments.log_level,
            export_log=arguments.log,
            export_raw_trace=arguments.raw_trace,
            export_browsable_trace=arguments.browsable_trace,
            verbose_snapshots=arguments.verbose_snapshots,
        )
        request = RunRequest(
            max_workers=arguments.max_workers,
            concurrency=arguments.concurrency,
            retry_errors=arguments.retry_errors,
            interactive=arguments.interactive,
            settings=settings,
        )
        return run_experiment(self.experiment, request)

    def status(self) -> int:
        """Print the status counts, what the done configurations spent and what
        every attempt paid.

        It only reads, as the reference's `status` does: configs the code lists and
        the state lacks are counted, and left for the next run to name; results on
        disk of `todo` configs and journal records that no longer fit the state are
        named, and left for the next run to record or set aside.
        """
        experiment = self.experiment
        recoverable: list[str] = []
        set_aside: list[str] = []
        if experiment.store.exists():
            _, unnamed = experiment.names_in_state()
            counts = experiment.get_status()
            spent = total_spent(experiment)
            set_aside = [update.name for update in experiment.store.set_aside]
            # On a copy of the state: status writes nothing.
            recoverable = recover_results(
                experiment.absolute_output_dir,
                experiment.load_state(),
                experiment.codec,
            )
        else:
            unnamed = len(experiment.configs or ())
            counts = dict.fromkeys(("todo", "done", "failed"), 0)
            spent = {}
        print(
            STATUS_MESSAGE.format(
                name=f"{experiment.name!r} " if experiment.name else "",
                output_dir=shown_path(experiment.absolute_output_dir, Path.cwd()),
                spent=describe_budget(spent),
                paid=describe_budget(
                    total_paid(read_payments(experiment.absolute_output_dir))
                ),
                **{
                    status: plural(count, "configuration")
                    for status, count in counts.items()
                },
            )
        )
        if unnamed:
            holder = read_lock_holder(experiment.absolute_output_dir)
            if holder is None:
                count = plural(unnamed, "more configuration")
                print(NEXT_RUN_NAMES_MESSAGE.format(count=count))
            else:
                print(
                    UNNAMED_CONFIGS_MESSAGE.format(
                        count=plural(unnamed, "more configuration"),
                        holder=holder.describe(),
                    )
                )
        if recoverable:
            print(f"  - {RECOVERABLE_MESSAGE.format(names=', '.join(recoverable))}")
        if set_aside:
            output_dir = experiment.absolute_output_dir
            print(f"  - {describe_set_aside(output_dir, set_aside, kept=False)}")
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
        print(f"Report written to {shown_path(path, Path.cwd())}")
        return 0


CommandHandler = Callable[[ExperimentCLI, argparse.Namespace], int]

COMMANDS: dict[str, CommandHandler] = {
    "run": ExperimentCLI.run,
    "status": lambda cli, _: cli.status(),
    "replay": lambda cli, arguments: cli.replay(arguments.config),
    "clean-index": lambda cli, _: cli.clean_index(),
    "force-summary": lambda cli, arguments: cli.force_summary(
        add_timing=arguments.add_timing
    ),
    "report": lambda cli, arguments: cli.report(arguments.output, arguments.group_by),
}
"""Each command of the CLI, and what it does; the parser offers these and no other
(the reference's underscore spellings are aliases of the same entries)."""
COMMANDS.update(
    clean_index=COMMANDS["clean-index"], force_summary=COMMANDS["force-summary"]
)
