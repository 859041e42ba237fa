"""Several workers crash in one run, and again while --lf retries (SPEC §6: a worker
that dies fails only the config it was running, with a message that says so)."""

from __future__ import annotations

from collections import Counter
from pathlib import Path

import pytest

from faults.harness import CONFIGS, experiment_source, paid, run, state_configs
from pytest_delphyne import layout
from pytest_delphyne.workers import (
    WORKER_EXIT_MESSAGE,
    WORKER_KILLED_HINT,
    WORKER_SIGNAL_MESSAGE,
)

KILLED = WORKER_SIGNAL_MESSAGE.format(number=9, name="SIGKILL") + WORKER_KILLED_HINT
EXITED = WORKER_EXIT_MESSAGE.format(code=7)
# The program lowers its own address-space limit (RLIMIT_AS) and allocates past it:
# Python raises MemoryError, an exception like any other, so the config fails with
# its traceback and the worker lives on.
OUT_OF_MEMORY = "MemoryError"


def explanation(out: Path, name: str) -> str:
    return layout.exception_file_path(out, name).read_text().strip()


def check_failures(out: Path, expected: dict[str, str]) -> None:
    configs = state_configs(out)
    failed = {name for name, info in configs.items() if info["status"] == "failed"}
    assert failed == set(expected)
    assert {info["status"] for info in configs.values()} <= {"done", "failed"}
    for name, how in expected.items():
        text = explanation(out, name)
        if how == OUT_OF_MEMORY:
            assert text.splitlines()[-1] == "MemoryError", text
            assert "bytearray(2 * limit)" in text
        else:
            assert "its xdist worker crashed" in text
            assert f"crashed while running 'exp.py::experiment[{name}]'" in text
            assert text.endswith(how), text
        assert not layout.result_file_path(out, name).exists()


def test_several_worker_crashes_fail_only_their_configs_also_under_lf(
    pytester: pytest.Pytester, figures: Counter[str]
) -> None:
    pytester.makepyfile(exp=experiment_source())
    out = pytester.path / "out"
    options = ["-n", "2"]
    first = run(
        pytester.path,
        *options,
        faults="3=kill,17=exit,40=memory,41=kill,90=exit,119=kill",
    )
    assert "INTERNALERROR" not in first.stdout + first.stderr
    assert "6 failed, 114 passed" in first.stdout, first.stdout
    check_failures(
        out,
        {
            "x3": KILLED,
            "x17": EXITED,
            "x40": OUT_OF_MEMORY,
            "x41": KILLED,
            "x90": EXITED,
            "x119": KILLED,
        },
    )
    figures["worker crashes"] += 5
    assert set(paid(pytester.path).values()) == {1}

    # Retry the failures: some crash again, differently; x40 and x90 now succeed.
    retry = run(
        pytester.path,
        *options,
        "--lf",
        "--delphyne-reuse-cache",
        faults="3=exit,17=kill,41=memory,119=kill",
    )
    assert "INTERNALERROR" not in retry.stdout + retry.stderr
    assert "4 failed, 2 passed" in retry.stdout, retry.stdout
    check_failures(
        out, {"x3": EXITED, "x17": KILLED, "x41": OUT_OF_MEMORY, "x119": KILLED}
    )
    figures["worker crashes"] += 3
    # Nothing that was done ran again; the retried calls came from their caches.
    assert set(paid(pytester.path).values()) == {1}

    last = run(pytester.path, *options, "--lf", "--delphyne-reuse-cache")
    assert last.returncode == 0, last.stdout + last.stderr
    configs = state_configs(out)
    assert len(configs) == CONFIGS
    assert {info["status"] for info in configs.values()} == {"done"}
    assert (out / layout.SUMMARY_FILE).exists()
    assert set(paid(pytester.path).values()) == {1}


@pytest.mark.slow
def test_memory_error_without_xdist_fails_only_its_config(
    pytester: pytest.Pytester,
) -> None:
    pytester.makepyfile(exp=experiment_source())
    out = pytester.path / "out"
    result = run(pytester.path, "-p", "no:cacheprovider", faults="2=memory,50=memory")
    assert "2 failed, 118 passed" in result.stdout, result.stdout
    check_failures(out, {"x2": OUT_OF_MEMORY, "x50": OUT_OF_MEMORY})
