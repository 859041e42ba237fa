"""The grammar of the experiment's command line (`cli.py`): argparse's parser of every
command and flag of the reference's `ExperimentCLI`, in argparse's spellings and in
python-fire's, which the reference's users type.

python-fire takes dashes or underscores (`force_summary`, `--max_workers`), on/off
flags as `--flag`, `--noflag` and `--flag=True|False`, and a method's parameters by
position too (`replay NAME`); `parse_command_line` accepts them all. A bad command
line is one line on stderr, not a usage dump.
"""

from __future__ import annotations

import argparse
from typing import TYPE_CHECKING, Any, NoReturn

from pytest_delphyne.environment import LOG_LEVELS

if TYPE_CHECKING:
    from collections.abc import Sequence


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


def _flag(
    parser: argparse.ArgumentParser,
    name: str,
    help: str,
    *,
    default: bool | None = None,
) -> None:
    """An on/off flag: `--name[=BOOL]`, off with `--no-name`, `--noname` (Fire's
    spelling) or `--no_name`; underscores for dashes too."""
    names = sorted({name, name.replace("-", "_")})
    dest = names[-1]
    parser.add_argument(
        *(f"--{spelling}" for spelling in names),
        action=_Toggle,
        nargs="?",
        dest=dest,
        default=default,
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


def build_parser(prog: str | None = None) -> argparse.ArgumentParser:
    """The parser of every command and flag of the reference's `ExperimentCLI`, in
    argparse's spellings and python-fire's (see `parse_command_line`)."""
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
        "--concurrency",
        type=int,
        default=1,
        metavar="K",
        help="Configs in flight in each process, for programs that wait on "
        "models (default: 1)",
    )
    _flag(run, "retry-errors", "Rerun the failed configurations too", default=False)
    _flag(
        run,
        "interactive",
        "Pressing Enter prints elapsed times and writes a snapshot",
        default=False,
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
    # python-fire passes a method's parameters by position too: `replay NAME`.
    replay.add_argument(
        "config_by_position",
        nargs="?",
        metavar="NAME",
        help="The same, by position (python-fire's spelling)",
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
    _flag(summary, "add-timing", "Add each configuration's duration", default=False)
    summary.add_argument(
        "add_timing_by_position",
        nargs="?",
        choices=sorted(_TRUE_WORDS | _FALSE_WORDS, key=str.lower),
        type=str.lower,
        help=argparse.SUPPRESS,
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


def parse_command_line(
    argv: Sequence[str], prog: str | None = None
) -> argparse.Namespace:
    """Parse a command line as the reference's python-fire parses it.

    Commands and flags take dashes or underscores (`force_summary`, `--max_workers`),
    on/off flags `--flag`, `--noflag` and `--flag=True|False`, options their value
    after `=` or a space, and `replay` and `force_summary` their argument by position
    (`replay NAME`). Without a command, `command` is `None`.

    Raises:
        SystemExit: a command line that does not parse, after one line on stderr.
    """
    parser = build_parser(prog)
    arguments = parser.parse_args(list(argv))
    if arguments.command is not None:
        arguments.command = arguments.command.replace("_", "-")
    positional_config = getattr(arguments, "config_by_position", None)
    if positional_config is not None:
        if arguments.config is not None:
            parser.error("replay: give the config by position or with --config")
        arguments.config = positional_config
    positional_timing = getattr(arguments, "add_timing_by_position", None)
    if positional_timing is not None:
        arguments.add_timing = positional_timing in _TRUE_WORDS
    return arguments
