"""The scheduler that keeps each worker's queue full, when a worker has just died."""

from __future__ import annotations

from typing import Any

import pytest

from pytest_delphyne.xdist_scheduling import InFlightLoadScheduling


class DeadWorker:
    """A worker whose channel closed: every send fails as execnet's does."""

    shutting_down = False

    def __init__(self) -> None:
        self.gateway: Any = type("Gateway", (), {"id": "gw0"})()

    def send_runtest_some(self, indices: list[int]) -> None:
        raise OSError("cannot send (already closed?)")

    def shutdown(self) -> None:
        pass


def test_a_worker_dead_before_its_next_items_loses_none(
    pytester: pytest.Pytester,
) -> None:
    config = pytester.parseconfig("--tx", "popen")
    scheduler = InFlightLoadScheduling(config, queued=2)
    worker = DeadWorker()
    scheduler.add_node(worker)
    scheduler.collection = [f"exp.py::experiment[x{i}]" for i in range(5)]
    scheduler.pending = [1, 2, 3, 4]
    scheduler.node2pending[worker] = [0]  # x0 was running when the worker died

    scheduler.check_schedule(worker)  # no OSError: xdist would end in INTERNALERROR

    # Its down event then blames the running config alone and re-pends the others.
    crashed = scheduler.remove_node(worker)
    assert crashed == "exp.py::experiment[x0]"
    assert sorted(scheduler.pending) == [1, 2, 3, 4]
