"""Which configs a load records from the files on disk (SPEC §3: a result on disk is
a result), whatever the order in which the directory lists them: a config that is
not recovered never hides one listed after it."""

from __future__ import annotations

import os
from dataclasses import dataclass
from datetime import datetime, timedelta, timezone
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import pytest

from pytest_delphyne import layout, recovery
from pytest_delphyne.environment import Budget
from pytest_delphyne.identity import codec_for
from pytest_delphyne.recovery import describe_set_aside, recover_results
from pytest_delphyne.results import RecordedResult, write_result
from pytest_delphyne.state import ConfigInfo, ExperimentState, Status
from pytest_delphyne.state_store import SET_ASIDE_KEPT, SET_ASIDE_PENDING

# A result written in another zone than UTC: recovered as the same instant.
START = datetime(2025, 11, 5, 12, 0, tzinfo=timezone(timedelta(hours=2)))
END = START + timedelta(seconds=3)


@dataclass
class Config:
    x: int

    def instantiate(self, context: object) -> object:
        return None


def result(
    name: str,
    params: dict[str, Any],
    start: datetime | None = START,
    end: datetime | None = END,
) -> RecordedResult:
    return RecordedResult(name, params, True, [], Budget(), start, end, 3.0)


# Each config's status in the state (None: not in it) and the result on disk (None:
# an empty directory). Only a_ok and j_ok are complete results of their params.
CASES: dict[str, tuple[Status | None, RecordedResult | None]] = {
    "a_ok": ("todo", result("a_ok", {"x": 1})),
    "b_not_in_state": (None, result("b_not_in_state", {"x": 2})),
    "c_done": ("done", result("c_done", {"x": 3})),
    "d_empty": ("todo", None),
    "e_other_name": ("todo", result("zzz", {"x": 5})),
    "f_no_start": ("todo", result("f_no_start", {"x": 6}, start=None)),
    "g_no_end": ("todo", result("g_no_end", {"x": 7}, end=None)),
    "h_bad_params": ("todo", result("h_bad_params", {"x": "eight"})),
    "i_other_params": ("todo", result("i_other_params", {"x": 99})),
    "j_ok": ("todo", result("j_ok", {"x": 10})),
}


@pytest.mark.parametrize("order", [sorted, lambda names: sorted(names, reverse=True)])
def test_only_complete_results_of_todo_configs_are_recorded(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, order: Any
) -> None:
    state = ExperimentState[Config](None, None, {})
    for x, (name, (status, recorded)) in enumerate(CASES.items(), start=1):
        directory = layout.config_dir(tmp_path, name)
        directory.mkdir(parents=True)
        if recorded is not None:
            write_result(directory, recorded)
        if status is not None:
            state.configs[name] = ConfigInfo(Config(x), status)
    monkeypatch.setattr(
        recovery, "os", SimpleNamespace(listdir=lambda path: order(os.listdir(path)))
    )
    assert recover_results(tmp_path, state, codec_for(Config)) == ["a_ok", "j_ok"]
    statuses = {name: info.status for name, info in state.configs.items()}
    expected = {name: status for name, (status, _) in CASES.items() if status}
    assert statuses == expected | {"a_ok": "done", "j_ok": "done"}
    assert (state.configs["a_ok"].start_time, state.configs["a_ok"].end_time) == (
        START,
        END,
    )
    assert state.configs["a_ok"].start_time.utcoffset() == timedelta(0)  # type: ignore[union-attr]


def test_set_aside_message_says_whether_the_aside_file_holds_them(
    tmp_path: Path,
) -> None:
    kept = describe_set_aside(tmp_path, ["x1", "x2"], kept=True)
    pending = describe_set_aside(tmp_path, ["x1"], kept=False)
    assert kept.startswith("2 recorded results no longer match")
    assert f"x1, x2; {SET_ASIDE_KEPT} in " in kept
    assert f"x1; {SET_ASIDE_PENDING} in " in pending
