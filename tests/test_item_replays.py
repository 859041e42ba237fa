"""`--delphyne-replay` where a config has no cache to replay from (SPEC §4): run
without caching, a config that raised before its first call, a cache deleted since.
A replay writes no file of the config; it pays only for what it runs live."""

from __future__ import annotations

from pathlib import Path

import pytest
from test_replay_ledger import EXPERIMENT as LEDGER_EXPERIMENT
from test_replay_ledger import paid_calls

from pytest_delphyne import layout
from pytest_delphyne.items import CACHE_GONE_MESSAGE

# The replay ledger's experiment (x1 and x2 each ask one paid question, appended to
# `paid.txt` when really made), where x2 raises in `instantiate`, before any call.
EXPERIMENT = LEDGER_EXPERIMENT.replace(
    "    def instantiate(self, context):\n",
    "    def instantiate(self, context):\n"
    "        if self.x == 2:\n"
    '            raise RuntimeError("no model named for x2")\n',
)


def config_files(pytester: pytest.Pytester) -> dict[Path, bytes]:
    configs = pytester.path / "out" / layout.CONFIGS_DIR
    return {path: path.read_bytes() for path in configs.rglob("*") if path.is_file()}


# Run without caching, or with it and then replayed without.
@pytest.mark.parametrize("first_run", [["--delphyne-no-cache"], []], ids=["off", "on"])
def test_a_replay_without_caching_runs_live_and_writes_nothing(
    pytester: pytest.Pytester, first_run: list[str]
) -> None:
    pytester.makepyfile(exp=EXPERIMENT)
    ran = pytester.runpytest("--delphyne-exp=exp.py", *first_run)
    ran.assert_outcomes(passed=1, failed=1)
    cache = layout.cache_file_path(pytester.path / "out", "x1")
    assert cache.exists() is (first_run == [])
    before = config_files(pytester)

    replayed = pytester.runpytest(
        "--delphyne-exp=exp.py", "--delphyne-replay", "--delphyne-no-cache"
    )
    replayed.assert_outcomes(passed=1, failed=1)
    # Nothing recorded to replay from: x1's call is made, and paid, again.
    assert paid_calls(pytester) == ["x1", "x1"]
    assert "no model named for x2" in replayed.stdout.str()
    assert config_files(pytester) == before


def test_a_config_that_raised_before_its_first_call_replays_live(
    pytester: pytest.Pytester,
) -> None:
    pytester.makepyfile(exp=EXPERIMENT)
    pytester.runpytest("--delphyne-exp=exp.py").assert_outcomes(passed=1, failed=1)
    out = pytester.path / "out"
    assert not layout.cache_file_path(out, "x2").exists()
    before = config_files(pytester)

    replayed = pytester.runpytest("--delphyne-exp=exp.py", "--delphyne-replay")
    replayed.assert_outcomes(passed=1, failed=1)
    output = replayed.stdout.str()
    # x2 fails as it did, with its own error; x1 replays from its cache, unpaid.
    assert "RuntimeError: no model named for x2" in output, output
    assert "cannot be replayed" not in output, output
    assert paid_calls(pytester) == ["x1"]
    assert config_files(pytester) == before


def test_a_config_whose_cache_is_gone_is_not_replayed(
    pytester: pytest.Pytester,
) -> None:
    pytester.makepyfile(exp=EXPERIMENT.replace("if self.x == 2:", "if False:"))
    pytester.runpytest("--delphyne-exp=exp.py").assert_outcomes(passed=2)
    cache = layout.cache_file_path(pytester.path / "out", "x2")
    cache.unlink()
    before = config_files(pytester)

    replayed = pytester.runpytest("--delphyne-exp=exp.py", "--delphyne-replay")
    replayed.assert_outcomes(passed=1, failed=1)
    output = replayed.stdout.str()
    assert CACHE_GONE_MESSAGE.format(name="x2", path=cache) in output, output
    # The message alone: no traceback of the plugin's code.
    assert "items.py" not in output, output
    assert "pytest.fail(" not in output, output
    assert paid_calls(pytester) == ["x1", "x2"]
    assert config_files(pytester) == before
