"""What an experiment is built from, besides its configs' values: the protocol every
config class follows, where the experiment runs, and the setup its workers need.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Generic, Protocol, TypeVar

if TYPE_CHECKING:
    from pytest_delphyne.runtime import Run

T = TypeVar("T")


class ExperimentConfig(Protocol):
    """A configuration: a dataclass holding hyperparameters, which `instantiate`
    turns into a run of the program."""

    def instantiate(self, context: object) -> Run:
        """The run this configuration stands for: the program, its arguments, its
        budget limit and its log and trace settings.

        Arguments:
            context: the experiment's `configs_context` (`None` by default).
        """
        ...


@dataclass(frozen=True)
class ExecutionContext:
    """Where an experiment runs.

    Attributes:
        workspace_root: the directory a relative `Experiment.output_dir` is relative
            to. When `None`, it is the directory of the file defining the experiment.
    """

    workspace_root: Path | None = None


@dataclass(frozen=True)
class WorkersSetup(Generic[T]):
    """Setup work that every process running configs needs.

    Attributes:
        common: called once, on the main process, before any config runs; it must
            return a picklable value. It may be a generator function yielding that
            value: the code after its `yield` runs at the end of the session (to stop
            a server it started, say).
        per_worker: called once in each worker before its first config, with the
            value of `common`.

    !!! tip "Example"
        To share one proving server among all workers, start it in `common` and
        return its port; `per_worker` connects each worker to that port.
    """

    common: Callable[[], T] | Callable[[], Iterator[T]]
    per_worker: Callable[[T], None]
