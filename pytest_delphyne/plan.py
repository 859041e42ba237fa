"""From an experiment file to the plan every process agrees on.

The controller loads each experiment (naming new configs) and turns it into an
`ExperimentPlan`: the configs in the code's
order, with their names, statuses and params, the stored tracebacks of failed ones, and
the configs the state holds that the code no longer lists; and the lines that say,
before anything runs, what the session will do with them.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import TYPE_CHECKING, Any

from pytest_delphyne import layout
from pytest_delphyne.selection import decide_action
from pytest_delphyne.wire import ExperimentPlan, PlannedConfig, file_identity
from pytest_delphyne.wording import describe_params, plural, verb_agreeing

if TYPE_CHECKING:
    from collections.abc import Iterator, Sequence

    from pytest_delphyne.discovery import ExperimentSpec
    from pytest_delphyne.experiment import Experiment
    from pytest_delphyne.selection import SelectionOptions

STORED_FAILURE_TAIL_LINES = 60
MISSING_DIRECTORY_MESSAGE = (
    "config {name} is done in {state_file}, but its directory {directory} is gone "
    "(deleted by hand?), with its result and cache. It is reported as failed, not "
    "rerun, and no summary is written without it; --lf runs it again"
)


def stored_traceback(experiment: Experiment[Any], name: str) -> str:
    path = layout.exception_file_path(experiment.absolute_output_dir, name)
    try:
        lines = path.read_text(errors="replace").splitlines()
    except OSError:
        return f"(no {layout.EXCEPTION_FILE} was kept for this config)"
    return "\n".join(lines[-STORED_FAILURE_TAIL_LINES:])


def attempt_was_interrupted(config_dir: Path) -> bool:
    """Whether the last attempt of a `todo` config whose directory exists started
    and never ended: a failed attempt (a config `mark_errors_as_todos` reset) left
    its traceback, and a finished one its result."""
    return not any(
        (config_dir / name).exists()
        for name in (layout.EXCEPTION_FILE, layout.RESULT_FILE)
    )


def build_plan(
    experiment: Experiment[Any],
    spec: ExperimentSpec,
    attr: str,
    rootpath: Path,
    names: list[str] | None = None,
    *,
    session: str = "",
) -> tuple[ExperimentPlan, dict[str, Any]]:
    """What every process must know of a loaded experiment, and its configs by name
    (those of `names`, by default every config the code lists)."""
    state = experiment.load_state()
    if names is None:
        # The names load() found or gave, in the code's order: nothing is recomputed.
        names = experiment.config_names()
    listed = set(names)
    configs: list[PlannedConfig] = []
    by_name: dict[str, Any] = {}
    stored_failures: dict[str, str] = {}
    # One listing rather than a stat per config: 100,000 configs cost 0.03 s.
    try:
        present = set(os.listdir(experiment.absolute_output_dir / layout.CONFIGS_DIR))
    except FileNotFoundError:
        present = set()
    for name in names:
        info = state.configs[name]
        by_name[name] = info.params
        status: str = info.status
        if status == "done" and name not in present:
            # A done config must have its result (SPEC §3): this one is a failure
            # to report, and --lf reruns it.
            status = "failed"
            stored_failures[name] = MISSING_DIRECTORY_MESSAGE.format(
                name=name,
                state_file=experiment.store.state_file,
                directory=experiment.config_dir(name),
            )
        configs.append(
            PlannedConfig(
                name=name,
                status=status,
                params=experiment.plain_params(name, info.params),
                interrupted=status == "todo"
                and name in present
                and attempt_was_interrupted(experiment.config_dir(name)),
            )
        )
        if info.status == "failed":
            stored_failures[name] = stored_traceback(experiment, name)
    output_dir = experiment.absolute_output_dir
    plan = ExperimentPlan(
        key=f"{spec.path}::{attr}",
        file=file_id(spec.path, rootpath),
        attr=attr,
        output_dir=str(output_dir),
        output_dir_id=file_identity(output_dir),
        configs=configs,
        stored_failures=stored_failures,
        orphans=[name for name in state.configs if name not in listed],
        session=session,
    )
    return plan, by_name


def file_id(path: Path, rootpath: Path) -> str:
    """The file's part of its items' node ids: relative to the rootdir."""
    try:
        return "/".join(path.relative_to(rootpath).parts)
    except ValueError:
        return str(path)


UNNAMED_PLAN_MESSAGE = (
    "delphyne: {count} listed by the code {are} not in the state yet: "
    "the run in progress holds the lock, and a run names them when it starts"
)


def plan_lines(
    plans: list[ExperimentPlan],
    selected: set[tuple[str, str]],
    options: SelectionOptions,
    *,
    unnamed: dict[str, int],
    collect_only: bool,
    notices: dict[str, list[str]] | None = None,
) -> list[str]:
    """What this session does with each experiment's configs, as terminal lines.

    Arguments:
        plans: the session's plans.
        selected: the (experiment key, config name) pairs left after `-k`, `-m`.
        options: the session's selection options.
        unnamed: by experiment key, configs the code lists that a run in progress
            keeps this `--co` from naming.
        collect_only: `--co`: each config's line too, with its params.
        notices: by experiment key, what loading it did that the user must hear
            of (results recorded from their files, records set aside).
    """
    lines: list[str] = []
    for plan in plans:
        key = plan["key"]
        decided = [
            decide_action(planned["status"], options)
            if (key, planned["name"]) in selected
            else "deselect"
            for planned in plan["configs"]
        ]
        actions: dict[str, int] = {}
        for action in decided:
            actions[action] = actions.get(action, 0) + 1
        attr = plan["attr"]
        summary = ", ".join(f"{count} {verb}" for verb, count in actions.items())
        configs = plural(len(plan["configs"]), "config")
        lines.append(f"delphyne: {attr}: {configs} ({summary})")
        lines.extend(
            f"delphyne: {attr}: {notice}" for notice in (notices or {}).get(key, [])
        )
        reported = actions.get("report", 0)
        if reported:
            lines.append(
                f"delphyne: {plural(reported, 'failed config')} "
                f"{verb_agreeing(reported, 'is', 'are')} reported from the state "
                f"without running; use --lf to retry "
                f"{verb_agreeing(reported, 'it', 'them')}"
            )
        if unnamed.get(key):
            count = unnamed[key]
            lines.append(
                UNNAMED_PLAN_MESSAGE.format(
                    count=plural(count, "more config"),
                    are=verb_agreeing(count, "is", "are"),
                )
            )
        if plan["orphans"]:
            orphans = len(plan["orphans"])
            lines.append(
                f"delphyne: {plural(orphans, 'config')} in the state "
                f"{verb_agreeing(orphans, 'is', 'are')} no longer listed by the code "
                "(--co names them; the clean-index command removes them)"
            )
        if collect_only and (plan["configs"] or plan["orphans"]):
            # One block, written at once: 100,000 lines written one by one cost
            # pytest's terminal writer half a second.
            lines.append("\n".join(_collect_only_plan(plan, decided)))
    return lines


def _collect_only_plan(plan: ExperimentPlan, decided: Sequence[str]) -> Iterator[str]:
    attr = plan["attr"]
    for planned, action in zip(plan["configs"], decided, strict=True):
        yield (
            f"  {attr}[{planned['name']}] {planned['status']} -> {action}: "
            f"{describe_params(planned['params'])}"
        )
    for name in plan["orphans"]:
        yield f"  {name}: in the state but no longer listed by the code"
