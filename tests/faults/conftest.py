"""The fault suite's figures, and its slow cases kept out of the default run.

`python -m pytest` runs the quick cases; `python -m pytest -m slow tests/faults` runs
the long ones (CI runs both).
"""

from __future__ import annotations

import subprocess
from collections import Counter
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from faults.harness import mount_tmpfs

figures_key = pytest.StashKey[Counter[str]]()


@pytest.hookimpl
def pytest_configure(config: pytest.Config) -> None:
    config.stash[figures_key] = Counter()


@pytest.hookimpl
def pytest_collection_modifyitems(
    config: pytest.Config, items: list[pytest.Item]
) -> None:
    if config.getoption("markexpr"):
        return  # `-m` decides
    slow = [item for item in items if item.get_closest_marker("slow")]
    if slow:
        items[:] = [item for item in items if not item.get_closest_marker("slow")]
        config.hook.pytest_deselected(items=slow)


@pytest.fixture
def figures(request: pytest.FixtureRequest) -> Counter[str]:
    """What the fault tests measured (kills tried, configs lost, calls paid twice)."""
    return request.config.stash[figures_key]


@pytest.hookimpl
def pytest_sessionfinish(session: pytest.Session) -> None:
    # An xdist worker hands its figures to the controller, which prints the sum.
    workeroutput = getattr(session.config, "workeroutput", None)
    if workeroutput is not None:
        figures: Counter[str] = session.config.stash[figures_key]
        workeroutput["fault_figures"] = dict(figures)


@pytest.hookimpl(optionalhook=True)
def pytest_testnodedown(node: Any, error: object) -> None:
    counts = node.config.stash[figures_key]
    counts.update(getattr(node, "workeroutput", {}).get("fault_figures", {}))


@pytest.hookimpl
def pytest_terminal_summary(terminalreporter: Any, config: pytest.Config) -> None:
    counts = config.stash.get(figures_key, Counter())
    if counts:
        terminalreporter.section("faults")
        for name, value in sorted(counts.items()):
            terminalreporter.write_line(f"{name}: {value}")


@pytest.fixture
def small_disk(pytester: pytest.Pytester) -> Iterator[Path]:
    """`out/` on a tmpfs of 600 KiB (unmounted at teardown): a disk that fills up."""
    out = pytester.path / "out"
    problem = mount_tmpfs(out, "600k")
    if problem is not None:
        pytest.skip(f"cannot mount a tmpfs (needs root): {problem}")
    try:
        yield out
    finally:
        subprocess.run(["umount", "-l", str(out)], check=False)
