"""The status table of SPEC §5 as one function, and the settings record."""

from __future__ import annotations

import pytest

from pytest_delphyne.selection import SelectionOptions, decide
from pytest_delphyne.settings import DEFAULT_SETTINGS, SETTING_NAMES, RunSettings

PLAIN = SelectionOptions()
LAST_FAILED = SelectionOptions(last_failed=True)
FAILED_FIRST = SelectionOptions(failed_first=True)
REPLAY = SelectionOptions(replay=True)
REUSE = SelectionOptions(last_failed=True, reuse_cache=True)


@pytest.mark.parametrize(
    ("status", "options", "action", "cache_mode"),
    [
        ("todo", PLAIN, "run", "create"),
        ("todo", LAST_FAILED, "run", "create"),
        ("todo", FAILED_FIRST, "run", "create"),
        ("todo", REPLAY, "run", "create"),
        ("done", PLAIN, "skip", "off"),
        ("done", LAST_FAILED, "deselect", "off"),
        ("done", FAILED_FIRST, "skip", "off"),
        ("done", REPLAY, "replay", "replay"),
        ("failed", PLAIN, "report", "off"),
        ("failed", LAST_FAILED, "run", "create"),
        ("failed", FAILED_FIRST, "run", "create"),
        ("failed", REPLAY, "replay", "replay_first_miss_live"),
        # A retry that may reuse what its failed attempt paid for.
        ("failed", REUSE, "run", "read_write"),
        ("todo", REUSE, "run", "read_write"),
    ],
)
def test_each_status_and_option_decides_an_action_and_a_cache_mode(
    status: str, options: SelectionOptions, action: str, cache_mode: str
) -> None:
    decision = decide(status, options, caches_requests=True)
    assert (decision.action, decision.cache_mode) == (action, cache_mode)


@pytest.mark.parametrize("status", ["todo", "done", "failed"])
@pytest.mark.parametrize("options", [PLAIN, LAST_FAILED, REPLAY, REUSE])
def test_without_caching_no_action_uses_a_cache(
    status: str, options: SelectionOptions
) -> None:
    decision = decide(status, options, caches_requests=False)
    assert decision.cache_mode == "off"
    assert decision.action == decide(status, options, caches_requests=True).action


def test_settings_stack_the_upper_level_wins_where_it_says_something() -> None:
    command_line = RunSettings(log_level="debug", export_log=False)
    experiment = RunSettings(cache_requests=False, log_level="warn")
    stacked = command_line.over(experiment)
    assert stacked == RunSettings(
        cache_requests=False, log_level="debug", export_log=False
    )
    assert stacked.given() == {
        "cache_requests": False,
        "log_level": "debug",
        "export_log": False,
    }
    # Down to the defaults, every setting has a value.
    assert None not in stacked.over(DEFAULT_SETTINGS).given().values()
    assert set(stacked.over(DEFAULT_SETTINGS).given()) == set(SETTING_NAMES)


def test_a_false_setting_is_a_setting_not_silence() -> None:
    assert RunSettings(cache_requests=False).over(
        RunSettings(cache_requests=True)
    ) == RunSettings(cache_requests=False)


@pytest.mark.parametrize(
    ("status", "options", "cache_mode"),
    [
        # What the interrupted attempt paid for is replayed, then it goes on live.
        ("todo", PLAIN, "read_write"),
        ("todo", LAST_FAILED, "read_write"),
        # A failed config's rerun keeps its own choice.
        ("failed", LAST_FAILED, "create"),
        ("failed", REUSE, "read_write"),
        ("done", REPLAY, "replay"),
    ],
)
def test_config_whose_last_attempt_was_interrupted_resumes_from_its_cache(
    status: str, options: SelectionOptions, cache_mode: str
) -> None:
    decision = decide(status, options, caches_requests=True, interrupted=True)
    assert decision.cache_mode == cache_mode
