"""pytest's `--lf` over experiments: what its status line says, and its exit code.

pytest's last-failed plugin counts the configs a session retries as "previous
failures", todo ones included, and a session whose configs are all done deselects
every item and ends with pytest's "no tests collected" (exit code 5). Here, a todo
config is counted as todo, and `--lf` with nothing to retry says so in one line and
exits 0 (SPEC §5: pytest's conventions hold).
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from pytest_delphyne.wording import plural

if TYPE_CHECKING:
    from collections.abc import Iterable

    from pytest_delphyne.wire import ExperimentPlan

NOTHING_TO_RETRY_MESSAGE = (
    "delphyne: --lf: nothing to retry, {configs} done (no failed or todo config)"
)


def has_nothing_to_retry(plans: Iterable[ExperimentPlan]) -> bool:
    """Whether every config of every experiment is done (`--lf` selects none)."""
    return all(
        planned["status"] == "done" for plan in plans for planned in plan["configs"]
    )


def nothing_to_retry_line(plans: Iterable[ExperimentPlan]) -> str:
    """The one line `--lf` says when every config is done."""
    count = sum(len(plan["configs"]) for plan in plans)
    configs = "the one config is" if count == 1 else f"all {count} configs are"
    return NOTHING_TO_RETRY_MESSAGE.format(configs=configs)


def last_failed_status(*, failed: int, todo: int, other_tests: int) -> str:
    """pytest's `run-last-failure:` status, with each config counted as what it is.

    Arguments:
        failed: the failed configs the session retries.
        todo: the todo configs it runs.
        other_tests: the items it keeps that are not configs (plain tests that
            failed last time).
    """
    parts = []
    if failed:
        parts.append(plural(failed, "failed config"))
    if todo:
        parts.append(plural(todo, "todo config"))
    if other_tests:
        parts.append(plural(other_tests, "previously failed test"))
    return "rerun " + ", ".join(parts) if parts else "nothing to rerun"
