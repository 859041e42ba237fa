"""xdist's load scheduling, keeping enough items queued on each worker for its pool.

A worker keeps K configs in flight (`--delphyne-concurrency=K`) only if it knows its
next K items: xdist's `LoadScheduling` tops a worker up only once fewer than a
quarter of the pending items per worker are queued on it, and holds items back from a
worker whose last item took 0.1 s or more (every config that waits on a model). This
scheduler sends a worker more items whenever fewer than `queued` wait on it.

Imported only when pytest-xdist is installed (by `workers.XdistHooks`).
"""

from __future__ import annotations

import contextlib
from typing import TYPE_CHECKING

from xdist.scheduler import LoadScheduling

if TYPE_CHECKING:
    import pytest
    from xdist.remote import Producer
    from xdist.workermanage import WorkerController


# pytest-xdist ships no type information (no py.typed): its classes are `Any`.
class InFlightLoadScheduling(LoadScheduling):  # type: ignore[misc]
    """`LoadScheduling` that keeps at least `queued` items on each worker while
    items are pending (see the module docstring).

    Arguments:
        queued: the items each worker needs queued: its concurrency, plus the
            next item xdist's worker holds before it runs the current one.
    """

    def __init__(
        self, config: pytest.Config, log: Producer | None = None, *, queued: int
    ) -> None:
        super().__init__(config, log)
        self.queued = queued

    def check_schedule(self, node: WorkerController, duration: float = 0) -> None:
        if node.shutting_down:
            return
        if not self.pending:
            node.shutdown()
            return
        waiting = len(self.node2pending[node])
        if waiting < self.queued:
            # Twice the need: one message per `queued` items, not one per item.
            count = min(2 * self.queued - waiting, len(self.pending))
            # The worker may have died since its last report (a crash in a config):
            # its `errordown` event comes next, and `remove_node` puts the items
            # just assigned to it back in `pending`.
            with contextlib.suppress(OSError):
                self._send_tests(node, count)

    def schedule(self) -> None:
        first = self.collection is None
        super().schedule()
        if first and self.pending:
            # xdist's first chunks can be short of what each worker needs.
            for node in self.nodes:
                self.check_schedule(node)
